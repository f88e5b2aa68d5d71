// AVX2+FMA elementwise kernels: rmsnorm, silu*mul, bias+RoPE, attention row.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "compute/cpu/kernels_avx2.h"
#include "compute/cpu/simd_avx2.h"

namespace huginn::cpu::avx2 {
namespace {

inline double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

// exp(x) for float lanes, about 1-2 ulp on [-87, 88] (Cephes expf polynomial;
// range reduction x = n ln2 + r with ln2 split in two).
inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

}  // namespace

void rmsnorm_row(const float* x, const float* r, const float* w, int64_t dim, float eps, float* y) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (r) v = _mm256_add_ps(v, _mm256_loadu_ps(r + i));
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    s0 = _mm256_fmadd_pd(lo, lo, s0);
    s1 = _mm256_fmadd_pd(hi, hi, s1);
  }
  double ss = hsum_pd(_mm256_add_pd(s0, s1));
  for (; i < dim; ++i) {
    const float v = r ? x[i] + r[i] : x[i];
    ss += static_cast<double>(v) * v;
  }
  const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + eps);
  const __m256 vinv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= dim; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (r) v = _mm256_add_ps(v, _mm256_loadu_ps(r + i));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(v, vinv), _mm256_loadu_ps(w + i)));
  }
  for (; i < dim; ++i) {
    const float v = r ? x[i] + r[i] : x[i];
    y[i] = (v * inv) * w[i];
  }
}

void silu_mul_row(const float* g, const float* u, int64_t n, float* y) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
  }
  for (; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void bias_rope_row(float* x, const float* bias, const float* cos, const float* sin, int64_t n_heads,
                   int64_t head_dim) {
  const int64_t E = n_heads * head_dim, half = head_dim / 2;
  if (bias) {
    int64_t i = 0;
    for (; i + 8 <= E; i += 8) _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(bias + i)));
    for (; i < E; ++i) x[i] += bias[i];
  }
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    int64_t j = 0;
    for (; j + 4 <= half; j += 4) {
      const __m128 c4 = _mm_loadu_ps(cos + j), s4 = _mm_loadu_ps(sin + j);
      const __m256 c = _mm256_set_m128(_mm_unpackhi_ps(c4, c4), _mm_unpacklo_ps(c4, c4));
      const __m256 s = _mm256_set_m128(_mm_unpackhi_ps(s4, s4), _mm_unpacklo_ps(s4, s4));
      const __m256 v = _mm256_loadu_ps(xh + 2 * j);
      const __m256 sw = _mm256_permute_ps(v, 0xb1);  // (b, a) pairs
      // even lanes: a c - b s; odd lanes: b c + a s
      _mm256_storeu_ps(xh + 2 * j, _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(sw, s)));
    }
    for (; j < half; ++j) {
      const float a = xh[2 * j], b = xh[2 * j + 1];
      xh[2 * j] = a * cos[j] - b * sin[j];
      xh[2 * j + 1] = b * cos[j] + a * sin[j];
    }
  }
}

void attention_row(const float* q, const float* const* k, const float* const* v, int64_t off, int64_t n, int64_t d,
                   float scale, float* scores, float* out) {
  const int64_t d8 = d / 8 * 8;
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const float* kj = k[j] + off;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= d8; i += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kj + i), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(kj + i + 8), a1);
    }
    if (i < d8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kj + i), a0);
    float s = hsum(_mm256_add_ps(a0, a1));
    for (i = d8; i < d; ++i) s += q[i] * kj[i];
    scores[j] = s * scale;
    mx = std::max(mx, scores[j]);
  }
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(scores + j), vmx));
    _mm256_storeu_ps(scores + j, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = hsum(vsum);
  for (; j < n; ++j) {
    scores[j] = std::exp(scores[j] - mx);
    sum += scores[j];
  }
  const float inv = 1.0f / sum;
  // out = sum_j p_j v_j, 32 output values at a time kept in registers.
  int64_t i0 = 0;
  for (; i0 + 32 <= d8; i0 += 32) {
    __m256 o0 = _mm256_setzero_ps(), o1 = _mm256_setzero_ps(), o2 = _mm256_setzero_ps(), o3 = _mm256_setzero_ps();
    for (j = 0; j < n; ++j) {
      const float* vj = v[j] + off + i0;
      const __m256 p = _mm256_set1_ps(scores[j]);
      o0 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj), o0);
      o1 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8), o1);
      o2 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 16), o2);
      o3 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 24), o3);
    }
    const __m256 vi = _mm256_set1_ps(inv);
    _mm256_storeu_ps(out + i0, _mm256_mul_ps(o0, vi));
    _mm256_storeu_ps(out + i0 + 8, _mm256_mul_ps(o1, vi));
    _mm256_storeu_ps(out + i0 + 16, _mm256_mul_ps(o2, vi));
    _mm256_storeu_ps(out + i0 + 24, _mm256_mul_ps(o3, vi));
  }
  for (; i0 + 8 <= d8; i0 += 8) {
    __m256 o0 = _mm256_setzero_ps();
    for (j = 0; j < n; ++j) o0 = _mm256_fmadd_ps(_mm256_set1_ps(scores[j]), _mm256_loadu_ps(v[j] + off + i0), o0);
    _mm256_storeu_ps(out + i0, _mm256_mul_ps(o0, _mm256_set1_ps(inv)));
  }
  for (int64_t i = d8; i < d; ++i) {
    float o = 0;
    for (j = 0; j < n; ++j) o += scores[j] * v[j][off + i];
    out[i] = o * inv;
  }
}

}  // namespace huginn::cpu::avx2
