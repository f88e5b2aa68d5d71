// CPU kernels. Each has a plain scalar reference (kernels_ref.cc, the
// definition of correct) and, where it pays, a vectorized version chosen at
// run time.
#pragma once

#include <cstdint>

#include "compute/cpu/thread_pool.h"
#include "huginn/tensor.h"

namespace huginn::cpu {

// Which instruction set the dispatched kernels use ("avx2+fma" or "scalar").
const char* kernel_isa();

// Y[n, W.rows] = X[n, W.cols] * W^T, multi-threaded.
void matmul(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y);

// y = rmsnorm(x + r) * w (r may be null; y may alias x).
void rmsnorm_row(const float* x, const float* r, const float* w, int64_t dim, float eps, float* y);

// One query row of one head against `n` key/value rows (offset `off` within
// each row); scores is scratch of n floats.
void attention_row(const float* q, const float* const* k, const float* const* v, int64_t off, int64_t n, int64_t d,
                   float scale, float* scores, float* out);

namespace ref {
// Scalar references (tests compare the dispatched kernels against these).
void matmul(const TensorView& W, const float* X, int64_t n, float* Y);
float dot(const float* a, const float* b, int64_t n);
}  // namespace ref

}  // namespace huginn::cpu
