#include <algorithm>
#include <cmath>
#include <vector>

#include "compute/cpu/kernels.h"

namespace huginn::cpu {

const char* kernel_isa() { return "scalar"; }

namespace {

// 8 independent partial sums so the compiler can vectorize without -ffast-math.
inline float dot8(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void matmul(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y) {
  const int64_t rows = W.rows(), cols = W.cols();
  const size_t row_bytes = dtype_row_bytes(W.dtype, cols);
  pool.parallel_for(rows, 16, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<float> w;
    if (w.size() < static_cast<size_t>(cols)) w.resize(static_cast<size_t>(cols));
    for (int64_t r = b; r < e; ++r) {
      to_f32(W.dtype, W.data + static_cast<size_t>(r) * row_bytes, cols, w.data());
      for (int64_t t = 0; t < n; ++t) Y[t * rows + r] = dot8(w.data(), X + t * cols, cols);
    }
  });
}

void rmsnorm_row(const float* x, const float* r, const float* w, int64_t dim, float eps, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < dim; ++i) {
    float v = r ? x[i] + r[i] : x[i];
    ss += static_cast<double>(v) * v;
  }
  float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + eps);
  for (int64_t i = 0; i < dim; ++i) {
    float v = r ? x[i] + r[i] : x[i];
    y[i] = (v * inv) * w[i];
  }
}

void attention_row(const float* q, const float* const* k, const float* const* v, int64_t off, int64_t n, int64_t d,
                   float scale, float* scores, float* out) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    scores[j] = dot8(q, k[j] + off, d) * scale;
    mx = std::max(mx, scores[j]);
  }
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - mx);
    sum += scores[j];
  }
  std::fill(out, out + d, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float p = scores[j] / sum;
    const float* vj = v[j] + off;
    for (int64_t i = 0; i < d; ++i) out[i] += p * vj[i];
  }
}

namespace ref {

float dot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(s);
}

void matmul(const TensorView& W, const float* X, int64_t n, float* Y) {
  const int64_t rows = W.rows(), cols = W.cols();
  const size_t row_bytes = dtype_row_bytes(W.dtype, cols);
  std::vector<float> w(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    to_f32(W.dtype, W.data + static_cast<size_t>(r) * row_bytes, cols, w.data());
    for (int64_t t = 0; t < n; ++t) Y[t * rows + r] = dot(w.data(), X + t * cols, cols);
  }
}

}  // namespace ref
}  // namespace huginn::cpu
