// Small AVX2 helpers shared by the *_avx2.cc and *_avx512.cc kernels (include
// only from files compiled with -mavx2).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

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

// Four rows of 8 dwords each to dst + s * stride bytes (s = 0..7), 16 bytes
// per step: dword s of rows 0..3, i.e. a 4 x 8 transpose of 32-bit pieces
// (the layouts of the VNNI and AMX GEMMs, whose lanes or tile columns are rows).
inline void store_4x8(std::byte* dst, int64_t stride, __m256i a0, __m256i a1, __m256i a2, __m256i a3) {
  const __m256i t0 = _mm256_unpacklo_epi32(a0, a1), t1 = _mm256_unpackhi_epi32(a0, a1);
  const __m256i t2 = _mm256_unpacklo_epi32(a2, a3), t3 = _mm256_unpackhi_epi32(a2, a3);
  const __m256i u[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2), _mm256_unpacklo_epi64(t1, t3),
                        _mm256_unpackhi_epi64(t1, t3)};
  for (int s = 0; s < 4; ++s) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + s * stride), _mm256_castsi256_si128(u[s]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (s + 4) * stride), _mm256_extracti128_si256(u[s], 1));
  }
}

// Prefetches into L2 the cache lines of `nrows` weight rows (`row_bytes`
// apart), `lines` lines from `first` in each, spread evenly over `steps`
// calls of step(): the VNNI and AMX GEMMs fetch the next panel's rows while
// computing the current one. Counters, not a division per line (+6% for the
// AMX GEMM).
// One line of the rows a decode kernel reads next, into L2 or L1
// (cpu::prefetch_l2(), read once per call by the caller).
inline void prefetch_next(const void* p, bool l2) {
  if (l2)
    _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
  else
    _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
}

// Prefetches the R rows after [r0, r0 + R) (the next tile's: rows are
// contiguous, and a thread's chunks follow each other) into L1, or L2 where
// cpu::prefetch_l2(), spread evenly over a loop of `steps` iterations with a
// running remainder, not a division. Every quantized decode tile uses it,
// and the float tiles of 2+ tokens where prefetch_l2(); without it each new
// row started cold (Zen 3: Q8_0 decode moved 10-20% fewer bytes per
// second from DRAM, Q4_SB batch 4 20%).
class NextRows {
 public:
  NextRows(const std::byte* W, size_t row_bytes, int64_t rows, int64_t r0, int R, int64_t steps, bool l2)
      : l2_(l2),
        p_(reinterpret_cast<const char*>(W + static_cast<size_t>(r0 + R) * row_bytes)),
        lines_(r0 + 2 * R <= rows ? static_cast<int64_t>(static_cast<size_t>(R) * row_bytes / 64) : 0),
        steps_(std::max<int64_t>(1, steps)) {}
  void step() {
    for (owed_ += lines_; owed_ >= steps_; owed_ -= steps_, p_ += 64) avx2::prefetch_next(p_, l2_);
  }

 private:
  bool l2_;
  const char* p_;
  int64_t lines_, steps_, owed_ = 0;
};

class RowPrefetch {
 public:
  RowPrefetch(const std::byte* first, size_t row_bytes, int64_t nrows, int64_t lines, int64_t steps)
      : p_(first), row_bytes_(row_bytes), lines_(lines), total_(nrows * lines), steps_(steps > 0 ? steps : 1) {}
  void step() {
    const int64_t until = step_ < steps_ ? total_ * ++step_ / steps_ : total_;
    for (; issued_ < until; ++issued_) {
      _mm_prefetch(reinterpret_cast<const char*>(p_ + line_ * 64), _MM_HINT_T1);
      if (++line_ == lines_) line_ = 0, p_ += row_bytes_;
    }
  }

 private:
  const std::byte* p_;
  size_t row_bytes_;
  int64_t lines_, total_, steps_, step_ = 0, issued_ = 0, line_ = 0;
};

}  // namespace huginn::cpu::avx2
