// CPU kernels. Each has a plain scalar reference (namespace ref, the
// definition of correct) and, where it pays, an AVX2+FMA+F16C version
// (matmul_avx2.cc, elementwise_avx2.cc) chosen at run time.
//
// matmul paths (Y[n, rows] = X[n, cols] * W^T):
//  - n < kGemmMinTokens ("decode"): each weight row is read from memory once
//    per call and applied to all n tokens (register tiles of R rows x T tokens;
//    the tokens beyond the first tile re-read the row from L1/L2). BF16/F16/F32
//    are converted to f32 in registers; Q8_0/Q4_0 are multiplied against
//    activations quantized on the fly to int8 blocks of 32 (scale = amax/127,
//    round to nearest even), as llama.cpp does; Q4_SB against blocks of 160.
//  - n >= kGemmMinTokens ("prefill"): a blocked GEMM: X is packed once per call
//    (transposed, 16 tokens per panel), each thread converts a panel of 6 weight
//    rows x 512 columns to f32 and runs a 6x16 register-blocked micro-kernel
//    (6x64 with AVX-512F: 4 token panels of one zmm each).
//    Quantized weights are dequantized there (activations stay f32), except
//    on AVX-512 VNNI CPUs: there Q8_0 / Q4_0 / Q4_SB run an int8 GEMM with the
//    decode path's quantized activations (gemm_int8_vnni.cc); and on AMX
//    CPUs BF16 runs on tiles with each activation split into three bf16
//    parts, exact as the f32 GEMM (gemm_bf16_amx.cc).
// Work is split in row chunks handed out dynamically by the pool.
#pragma once

#include <cstdint>
#include <string>

#include "compute/cpu/thread_pool.h"
#include "huginn/tensor.h"

namespace huginn::cpu {

// Which instruction set the dispatched kernels use: "scalar", or
// "avx2+fma+f16c" followed by ", avx512f gemm" where the prefill micro-kernel
// uses 512-bit vectors, ", avx512vnni int8 gemm and decode" where quantized
// prefill and Q8_0 / Q4_0 / Q4_SB decode run on VNNI, ", amx bf16
// gemm" where BF16 prefill runs on AMX, and ", L2 prefetch" where the decode
// kernels prefetch into L2 (prefetch_l2()).
std::string kernel_isa();
// True when the AVX2 kernels are in use. `force_scalar` (tests, benchmarks)
// switches them off process-wide; also HUGINN_FORCE_SCALAR=1 in the environment.
bool use_avx2();
void force_scalar(bool on);
// True when the prefill GEMM runs its AVX-512F micro-kernel (CPU has it, AVX2
// in use). `disable_avx512` (tests, benchmarks) or HUGINN_NO_AVX512=1 keeps
// the AVX2 one.
bool use_avx512();
void disable_avx512(bool on);
// True when the prefill GEMM of Q8_0 / Q4_0 / Q4_SB weights runs on AVX-512
// VNNI with int8 activations (CPU has it, AVX-512 in use). `disable_vnni`
// (tests, benchmarks) or HUGINN_NO_VNNI=1 keeps the f32 GEMM for them.
bool use_vnni();
void disable_vnni(bool on);
// True when the prefill GEMM of BF16 weights runs on AMX tiles (CPU and OS
// allow them, AVX-512 in use). `disable_amx` (tests, benchmarks) or
// HUGINN_NO_AMX=1 keeps the f32 GEMM.
bool use_amx();
void disable_amx(bool on);
// True when the decode kernels prefetch the rows they read next into L2
// (prefetcht1) instead of L1 (prefetcht0): the default on Intel CPUs, where
// the L1 hint cost 10-25% of the DRAM stream with both cores busy (session
// 11, Xeon). Elsewhere (AMD Zen 3, where L1 was measured) it stays L1.
// `force_prefetch_l1` (tests, benchmarks) or HUGINN_PREFETCH_L1=1 keeps L1.
bool prefetch_l2();
void force_prefetch_l1(bool on);

// Token count from which matmul uses the blocked GEMM.
inline constexpr int64_t kGemmMinTokens = 12;

// Y[n, W.rows] = X[n, W.cols] * W^T, multi-threaded.
void matmul(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y);
// Same, choosing the path explicitly (tests and benchmarks).
enum class MatmulPath { Auto, Small, Gemm };
void matmul(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y, MatmulPath path);

// y = rmsnorm(x + r) * w (r may be null; y may alias x).
void rmsnorm_row(const float* x, const float* r, const float* w, int64_t dim, float eps, float* y);
// y[i] = silu(g[i]) * u[i] (y may alias g or u).
void silu_mul_row(const float* g, const float* u, int64_t n, float* y);
// In place on one row of n_heads*head_dim values: x += bias (may be null),
// then interleaved RoPE with cos/sin rows of head_dim/2 values.
void bias_rope_row(float* x, const float* bias, const float* cos, const float* sin, int64_t n_heads,
                   int64_t head_dim);

// One query row of one head against `n` key/value rows (offset `off` within
// each row); scores is scratch of n floats.
void attention_row(const float* q, const float* const* k, const float* const* v, int64_t off, int64_t n, int64_t d,
                   float scale, float* scores, float* out);

// Activations quantized for the Q8_0/Q4_0 dot products: per block of 32,
// d = amax/127, q = nearbyint(x/d), and the sum of the 32 q values.
struct QuantizedActs {
  int64_t n = 0, cols = 0;
  int8_t* q = nullptr;    // [n][cols]
  float* d = nullptr;     // [n][cols/32]
  int32_t* sum = nullptr; // [n][cols/32]
};
void quantize_acts_ref(const float* X, int64_t n, int64_t cols, QuantizedActs& out);

// Activations for Q4_SB weights: per super-block of 160, d = amax/127 and
// q = nearbyint(x/d) (one scale per super-block, so its integer sum can run
// across the eight sub-blocks), and xs[16] per super-block: 8 times the sum of
// the q whose index i has (i % 32) / 2 == lane (the "- 8" of the weights).
struct SuperActs {
  int64_t n = 0, cols = 0;
  int8_t* q = nullptr;    // [n][cols]
  float* d = nullptr;     // [n][cols/160]
  int16_t* xs = nullptr;  // [n][cols/160][16]
};
void quantize_acts_sb_ref(const float* X, int64_t n, int64_t cols, SuperActs& out);

namespace ref {
// Scalar references (tests compare the dispatched kernels against these).
// matmul: weights converted to f32 exactly, sums in double.
void matmul(const TensorView& W, const float* X, int64_t n, float* Y);
// Q8_0/Q4_0/Q4_SB weights against int8-quantized activations (the scheme the
// fast kernels use), exact integer block dots, sums in double.
void matmul_q8act(const TensorView& W, const float* X, int64_t n, float* Y);
float dot(const float* a, const float* b, int64_t n);
void silu_mul_row(const float* g, const float* u, int64_t n, float* y);
void bias_rope_row(float* x, const float* bias, const float* cos, const float* sin, int64_t n_heads,
                   int64_t head_dim);
void attention_row(const float* q, const float* const* k, const float* const* v, int64_t off, int64_t n, int64_t d,
                   float scale, float* scores, float* out);
void rmsnorm_row(const float* x, const float* r, const float* w, int64_t dim, float eps, float* y);
}  // namespace ref

}  // namespace huginn::cpu
