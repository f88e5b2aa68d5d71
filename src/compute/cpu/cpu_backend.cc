// CPU backend: threads from a persistent pool, kernels from compute/cpu/kernels.h.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "compute/backend.h"
#include "compute/cpu/kernels.h"
#include "compute/cpu/thread_pool.h"
#include "huginn/error.h"
#include "huginn/engine.h"

namespace huginn {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads) {}

  std::string name() const override { return "cpu (" + cpu::kernel_isa() + ")"; }
  int num_threads() const override { return pool_.size(); }

  void matmul(const TensorView& W, const float* X, int64_t n, float* Y) override {
    cpu::matmul(pool_, W, X, n, Y);
  }

  void rmsnorm(const float* X, const float* R, const float* w, int64_t n, int64_t dim, float eps, float* Y) override {
    pool_.parallel_for(n, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) cpu::rmsnorm_row(X + t * dim, R ? R + t * dim : nullptr, w, dim, eps, Y + t * dim);
    });
  }

  void silu_mul(const float* GU, int64_t n, int64_t inter, float* Y) override {
    // Split rows in pieces so that one token still uses every thread.
    constexpr int64_t kPiece = 2048;
    const int64_t pieces = (inter + kPiece - 1) / kPiece;
    pool_.parallel_for(n * pieces, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t it = b; it < e; ++it) {
        const int64_t t = it / pieces, i0 = (it % pieces) * kPiece, len = std::min(kPiece, inter - i0);
        const float* g = GU + t * 2 * inter + i0;
        cpu::silu_mul_row(g, g + inter, len, Y + t * inter + i0);
      }
    });
  }

  void bias_rope(float* QKV, int64_t n, const int64_t* pos, const float* qb, const float* kb, const RopeTable& rope,
                 int64_t n_heads, int64_t head_dim) override {
    const int64_t E = n_heads * head_dim;
    for (int64_t t = 0; t < n; ++t) {
      if (pos[t] < 0 || pos[t] >= rope.positions)
        throw Error("position " + std::to_string(pos[t]) + " is outside the RoPE table (block_size " +
                    std::to_string(rope.positions) + ")");
    }
    pool_.parallel_for(2 * n, 2, [&](int64_t b, int64_t e, int) {
      for (int64_t it = b; it < e; ++it) {
        const int64_t t = it / 2, part = it % 2;
        const float* c = rope.cos.data() + pos[t] * rope.half_dim;
        const float* s = rope.sin.data() + pos[t] * rope.half_dim;
        cpu::bias_rope_row(QKV + t * 3 * E + part * E, part == 0 ? qb : kb, c, s, n_heads, head_dim);
      }
    });
  }

  void attention(const AttentionSegment* segs, int64_t n_segs, int64_t n_heads, int64_t head_dim) override {
    // Work items: (segment, head, query row); each is independent.
    std::vector<int64_t> first(static_cast<size_t>(n_segs) + 1, 0);
    for (int64_t s = 0; s < n_segs; ++s) first[s + 1] = first[s] + segs[s].n_q * n_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    pool_.parallel_for(first[n_segs], 1, [&](int64_t b, int64_t e, int thread) {
      auto& scores = scratch_[static_cast<size_t>(thread)];
      for (int64_t item = b; item < e; ++item) {
        int64_t s = std::upper_bound(first.begin(), first.end(), item) - first.begin() - 1;
        const AttentionSegment& seg = segs[s];
        int64_t local = item - first[s];
        int64_t t = local / n_heads, h = local % n_heads;
        int64_t visible = seg.n_kv - seg.n_q + t + 1;
        if (scores.size() < static_cast<size_t>(visible)) scores.resize(static_cast<size_t>(visible));
        cpu::attention_row(seg.q + t * seg.q_stride + h * head_dim, seg.k, seg.v, h * head_dim, visible, head_dim,
                           scale, scores.data(), seg.out + t * seg.out_stride + h * head_dim);
      }
    });
  }

  void embed(const TensorView& table, const int32_t* ids, int64_t n, float scale, float* Y) override {
    const int64_t dim = table.cols();
    const size_t row_bytes = dtype_row_bytes(table.dtype, dim);
    for (int64_t t = 0; t < n; ++t) {
      if (ids[t] < 0 || ids[t] >= table.rows())
        throw Error("token id " + std::to_string(ids[t]) + " is outside the vocabulary (size " +
                    std::to_string(table.rows()) + ")");
      to_f32(table.dtype, table.data + static_cast<size_t>(ids[t]) * row_bytes, dim, Y + t * dim);
      for (int64_t i = 0; i < dim; ++i) Y[t * dim + i] *= scale;
    }
  }

 private:
  ThreadPool pool_;
  std::vector<std::vector<float>> scratch_ = std::vector<std::vector<float>>(64);
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& opts) {
  int threads = opts.threads;
  threads = resolve_threads(threads);
  if (threads > 64) throw Error("at most 64 threads are supported, got " + std::to_string(threads));
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace huginn
