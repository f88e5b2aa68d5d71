// Small AVX2 helpers shared by the *_avx2.cc and *_avx512.cc kernels (include
// only from files compiled with -mavx2).
#pragma once

#include <immintrin.h>

#include "compute/quant.h"

namespace huginn::cpu::avx2 {

// Sum of the 8 lanes.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Half h of a Q4_0 block (elements 16h..16h+15: the low nibbles for h = 0,
// the high ones for h = 1) as 16 int8 values q - 8.
inline __m128i q4_0_half(const quant::BlockQ4_0& blk, int h) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.q));
  return _mm_sub_epi8(_mm_and_si128(h ? _mm_srli_epi16(v, 4) : v, _mm_set1_epi8(0x0f)), _mm_set1_epi8(8));
}

// Group m (0..4, 32 elements) of a Q4_SB super-block as 32 int8 values q - 8
// in element order: one half of a 32-byte load (m < 4) or the 16-byte tail.
inline __m256i q4sb_group(const quant::BlockQ4SB& blk, int m) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256i q;
  if (m < 4) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.q + (m / 2) * 32));
    q = _mm256_and_si256(m % 2 ? _mm256_srli_epi16(v, 4) : v, m4);
  } else {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.q + 64));
    q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), m4);
  }
  return _mm256_sub_epi8(q, _mm256_set1_epi8(8));
}

}  // namespace huginn::cpu::avx2
