// AVX2+FMA+F16C kernels (defined in *_avx2.cc, compiled with -mavx2 -mfma
// -mf16c). Call only when cpu::use_avx2() is true.
#pragma once

#include <cstdint>

#include "compute/cpu/kernels.h"

namespace huginn::cpu::avx2 {

// Decode-sized products (any n, best for n < kGemmMinTokens).
void matmul_small(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y);
// Blocked GEMM for prefill-sized n; avx512: run the 512-bit micro-kernel
// (only when cpu::use_avx512()).
void gemm(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y, bool avx512);
// Same numbers as quantize_acts_ref.
void quantize_acts(const float* X, int64_t n, int64_t cols, QuantizedActs& out);
// Same numbers as quantize_acts_sb_ref.
void quantize_acts_sb(const float* X, int64_t n, int64_t cols, SuperActs& out);

void rmsnorm_row(const float* x, const float* r, const float* w, int64_t dim, float eps, float* y);
void silu_mul_row(const float* g, const float* u, int64_t n, float* y);
void bias_rope_row(float* x, const float* bias, const float* cos, const float* sin, int64_t n_heads,
                   int64_t head_dim);
void attention_row(const float* q, const float* const* k, const float* const* v, int64_t off, int64_t n, int64_t d,
                   float scale, float* scores, float* out);

}  // namespace huginn::cpu::avx2
