// The prefill GEMM's weight conversion and micro-kernel with 512-bit vectors
// (AVX-512F). The driver (X packing, work items, prefetch schedule) is shared
// with the AVX2 path in matmul_avx2.cc; the panel layout and tile differ.
#include <immintrin.h>

#include <cstring>

#include "compute/cpu/kernels_avx512.h"
#include "compute/cpu/simd_avx2.h"
#include "compute/quant.h"

namespace huginn::cpu::avx512 {

namespace {

constexpr int64_t kChunk = kPanelRows * 16;  // floats per 16 columns of a panel

inline void put(float* dst, int64_t i, __m512 v) { _mm512_storeu_ps(dst + (i / 16) * kChunk, v); }

// 16 int8 to f32 times d.
inline __m512 i8_to_f32(__m128i q, __m512 d) { return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))); }

}  // namespace

void convert_row(DType dt, const std::byte* row, int64_t k0, int64_t len, float* dst) {
  if (row == nullptr) {  // a padding row
    for (int64_t i = 0; i < len; i += 16) std::memset(dst + (i / 16) * kChunk, 0, 64);
    return;
  }
  int64_t i = 0;
  switch (dt) {
    case DType::F32: {
      const float* s = reinterpret_cast<const float*>(row) + k0;
      for (; i + 16 <= len; i += 16) put(dst, i, _mm512_loadu_ps(s + i));
      for (; i < len; ++i) dst[(i / 16) * kChunk + i % 16] = s[i];
      return;
    }
    case DType::F16: {
      const auto* s = reinterpret_cast<const uint16_t*>(row) + k0;
      for (; i + 16 <= len; i += 16)
        put(dst, i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
      for (; i < len; ++i) dst[(i / 16) * kChunk + i % 16] = _cvtsh_ss(s[i]);
      return;
    }
    case DType::BF16: {
      // bf16 is the high half of an f32: widen and shift.
      const auto* s = reinterpret_cast<const uint16_t*>(row) + k0;
      for (; i + 16 <= len; i += 16) {
        const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
        put(dst, i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
      }
      for (; i < len; ++i) dst[(i / 16) * kChunk + i % 16] = bf16_to_f32(s[i]);
      return;
    }
    case DType::Q8_0: {
      const auto* b = reinterpret_cast<const quant::BlockQ8_0*>(row) + k0 / 32;
      for (; i < len; i += 32, ++b) {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(b->d));
        put(dst, i, i8_to_f32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->q)), d));
        put(dst, i + 16, i8_to_f32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->q + 16)), d));
      }
      return;
    }
    case DType::Q4_0: {
      const auto* b = reinterpret_cast<const quant::BlockQ4_0*>(row) + k0 / 32;
      for (; i < len; i += 32, ++b) {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(b->d));
        put(dst, i, i8_to_f32(avx2::q4_0_half(*b, 0), d));
        put(dst, i + 16, i8_to_f32(avx2::q4_0_half(*b, 1), d));
      }
      return;
    }
    case DType::Q4_SB: {
      // 32-element groups (avx2::q4sb_group). Element e of a group has
      // sub-scale e / 4, so a 16-element half h takes sub-scales 4h..4h+3,
      // four lanes each.
      const auto* blocks = reinterpret_cast<const quant::BlockQ4SB*>(row);
      const __m512i idx_lo = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
      const __m512i idx_hi = _mm512_add_epi32(idx_lo, _mm512_set1_epi32(4));
      int64_t g = k0 / 32, sb = -1;
      __m512 s_lo = _mm512_setzero_ps(), s_hi = s_lo;
      for (; i < len; i += 32, ++g) {
        const quant::BlockQ4SB& blk = blocks[g / 5];
        if (g / 5 != sb) {
          sb = g / 5;
          const __m256 sc =
              _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk.sc))));
          const __m512 ss = _mm512_castps256_ps512(_mm256_mul_ps(sc, _mm256_set1_ps(_cvtsh_ss(blk.d))));
          s_lo = _mm512_permutexvar_ps(idx_lo, ss);
          s_hi = _mm512_permutexvar_ps(idx_hi, ss);
        }
        const __m256i q = avx2::q4sb_group(blk, static_cast<int>(g % 5));
        put(dst, i, _mm512_mul_ps(s_lo, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)))));
        put(dst, i + 16, _mm512_mul_ps(s_hi, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)))));
      }
      return;
    }
  }
}

namespace {

// 6 rows x NV token panels of 16: 6*NV zmm accumulators (24 at most) and NV
// x vectors of the 32 registers; each broadcast weight feeds NV FMAs, so a
// k-step is NV + 6 loads for 6*NV FMAs (10 per 24 with 64 tokens, against 8
// per 12 for the AVX2 6x16 tile). With every index a constant after
// unrolling, GCC keeps the arrays in registers.
template <int NV>
__attribute__((noinline)) void micro(const float* wp, const float* xt, int64_t xs, int64_t kc, float* C,
                                     bool accumulate, const char* const* pf, int npf) {
  __m512 c[kPanelRows][NV];
#pragma GCC unroll 8
  for (int r = 0; r < kPanelRows; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      c[r][v] = accumulate ? _mm512_loadu_ps(C + v * kPanelRows * 16 + r * 16) : _mm512_setzero_ps();
  // Column k of the chunk at w (j = k % 16): row r's weight is w[16 * r + j].
  auto step = [&](const float* w, int64_t k, int j) __attribute__((always_inline)) {
    __m512 x[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) x[v] = _mm512_loadu_ps(xt + v * xs + k * 16);
#pragma GCC unroll 8
    for (int r = 0; r < kPanelRows; ++r) {
      const __m512 b = _mm512_set1_ps(w[16 * r + j]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) c[r][v] = _mm512_fmadd_ps(b, x[v], c[r][v]);
    }
  };
  int i = 0;
  int64_t k = 0;
  const float* w = wp;
  for (; k + 16 <= kc; k += 16, w += kChunk) {
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      if (i < npf) _mm_prefetch(pf[i++], _MM_HINT_T1);
      step(w, k + 4 * q, 4 * q), step(w, k + 4 * q + 1, 4 * q + 1);
      step(w, k + 4 * q + 2, 4 * q + 2), step(w, k + 4 * q + 3, 4 * q + 3);
    }
  }
  for (int j = 0; k < kc; ++k, ++j) step(w, k, j);
  for (; i < npf; ++i) _mm_prefetch(pf[i], _MM_HINT_T1);
#pragma GCC unroll 8
  for (int r = 0; r < kPanelRows; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(C + v * kPanelRows * 16 + r * 16, c[r][v]);
}

}  // namespace

void gemm_micro(int nv, const float* wp, const float* xt, int64_t xstride, int64_t kc, float* C, bool accumulate,
                const char* const* pf, int npf) {
  switch (nv) {
    case 1: return micro<1>(wp, xt, xstride, kc, C, accumulate, pf, npf);
    case 2: return micro<2>(wp, xt, xstride, kc, C, accumulate, pf, npf);
    case 3: return micro<3>(wp, xt, xstride, kc, C, accumulate, pf, npf);
    default: return micro<4>(wp, xt, xstride, kc, C, accumulate, pf, npf);
  }
}

}  // namespace huginn::cpu::avx512
