// The compute interface the forward pass is written against. A backend owns
// its threads and implements every operation the model needs on float32
// activations laid out as [tokens, features] row-major. The CPU backend is in
// compute/cpu/; a CUDA backend implements the same interface later.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "huginn/tensor.h"

namespace huginn {

// cos/sin of the interleaved ("complex") RoPE, [positions, head_dim/2].
struct RopeTable {
  int64_t positions = 0;
  int64_t half_dim = 0;
  std::vector<float> cos, sin;
};

// One sequence's share of an attention call: `n_q` query rows, and the `n_kv`
// key/value rows it may see, given as row pointers (rows live in the KV cache,
// which is not contiguous across pages and strategies). The last n_q entries
// are the queries' own tokens; query i sees entries [0, n_kv - n_q + i]
// (causal mask aligned bottom-right).
struct AttentionSegment {
  const float* q = nullptr;  // row t at q + t * q_stride, heads concatenated
  int64_t q_stride = 0;
  int64_t n_q = 0;
  const float* const* k = nullptr;  // n_kv pointers to rows of n_heads*head_dim
  const float* const* v = nullptr;
  int64_t n_kv = 0;
  float* out = nullptr;  // row t at out + t * out_stride
  int64_t out_stride = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual int num_threads() const = 0;

  // Y[n, W.rows] = X[n, W.cols] * W^T for a [rows, cols] weight of any dtype.
  virtual void matmul(const TensorView& W, const float* X, int64_t n, float* Y) = 0;
  // Y = rmsnorm(X + R) * w per row (R may be null); Y may alias X.
  virtual void rmsnorm(const float* X, const float* R, const float* w, int64_t n, int64_t dim, float eps, float* Y) = 0;
  // GU rows are [gate(inter) | up(inter)]; Y[t] = silu(gate) * up.
  virtual void silu_mul(const float* GU, int64_t n, int64_t inter, float* Y) = 0;
  // In place on QKV rows [q(E) | k(E) | v(E)]: q += q_bias, k += k_bias (either
  // may be null), then RoPE at pos[t] on q and k.
  virtual void bias_rope(float* QKV, int64_t n, const int64_t* pos, const float* q_bias, const float* k_bias,
                         const RopeTable& rope, int64_t n_heads, int64_t head_dim) = 0;
  // Softmax attention with scale 1/sqrt(head_dim) for several sequences.
  virtual void attention(const AttentionSegment* segs, int64_t n_segs, int64_t n_heads, int64_t head_dim) = 0;
  // Y[t] = row ids[t] of `table` (any dtype) * scale.
  virtual void embed(const TensorView& table, const int32_t* ids, int64_t n, float scale, float* Y) = 0;
};

struct BackendOptions {
  int threads = 0;  // 0: one per available core
};

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& opts = {});

}  // namespace huginn
