// AVX2+FMA+F16C matrix products. See kernels.h for the design.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "compute/cpu/kernels_avx2.h"
#include "compute/cpu/kernels_avx512.h"
#include "compute/cpu/kernels_vnni.h"
#include "compute/cpu/scratch.h"
#include "compute/cpu/simd_avx2.h"
#include "compute/quant.h"

namespace huginn::cpu::avx2 {
namespace {

// ---------------------------------------------------------------------------
// Float weights, small n. A step covers 16 columns: two f32 vectors a (the
// "A" columns) and b (the "B" columns). For F32/F16 A = cols 0..7 and B =
// 8..15; for BF16 A = the even and B = the odd columns of the group (one
// 256-bit load, a shift and a mask), so X is permuted to match once per call.

template <DType DT>
inline void load16(const std::byte* row, int64_t c, __m256& a, __m256& b) {
  if constexpr (DT == DType::F32) {
    const float* p = reinterpret_cast<const float*>(row) + c;
    a = _mm256_loadu_ps(p);
    b = _mm256_loadu_ps(p + 8);
  } else if constexpr (DT == DType::F16) {
    const std::byte* p = row + 2 * c;
    a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));
  } else {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * c));
    a = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    b = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
}

template <DType DT>
inline float scalar_w(const std::byte* row, int64_t c) {
  uint16_t h;
  if constexpr (DT == DType::F32) {
    float f;
    std::memcpy(&f, row + 4 * c, 4);
    return f;
  } else if constexpr (DT == DType::F16) {
    std::memcpy(&h, row + 2 * c, 2);
    return _cvtsh_ss(h);
  } else {
    std::memcpy(&h, row + 2 * c, 2);
    return bf16_to_f32(h);
  }
}

struct FloatArgs {
  const std::byte* W;
  size_t row_bytes;
  int64_t rows, cols, cols16;
  const float* xp;  // prepared X (BF16: permuted groups of 16), stride cols
  const float* x;   // original X, stride cols (tail columns)
  float* Y;
  // Tiles of 2+ tokens prefetch the next rows into L2 where prefetch_l2()
  // (Xeon: BM_LayerStream BF16 n=4 16.2 -> 19.5 GB/s; at n=1 no steady
  // gain, 22-26 GB/s either way); elsewhere none, as measured on Zen 3.
  bool l2 = prefetch_l2();
};

// R rows starting at r0, tokens [t0, t0 + T).
template <DType DT, int R, int T>
inline void float_tile(const FloatArgs& A, int64_t r0, int64_t t0) {
  const std::byte* w[R];
  for (int r = 0; r < R; ++r) w[r] = A.W + static_cast<size_t>(r0 + r) * A.row_bytes;
  const float* xp = A.xp + t0 * A.cols;
  float out[R][T];
  if constexpr (T == 1) {
    __m256 acc_a[R], acc_b[R];
    for (int r = 0; r < R; ++r) acc_a[r] = acc_b[r] = _mm256_setzero_ps();
    for (int64_t c = 0; c < A.cols16; c += 16) {
      const __m256 xa = _mm256_loadu_ps(xp + c), xb = _mm256_loadu_ps(xp + c + 8);
      for (int r = 0; r < R; ++r) {
        __m256 a, b;
        load16<DT>(w[r], c, a, b);
        acc_a[r] = _mm256_fmadd_ps(a, xa, acc_a[r]);
        acc_b[r] = _mm256_fmadd_ps(b, xb, acc_b[r]);
      }
    }
    for (int r = 0; r < R; ++r) out[r][0] = hsum(_mm256_add_ps(acc_a[r], acc_b[r]));
  } else {
    __m256 acc[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    NextRows next(A.W, A.row_bytes, A.rows, r0, R, A.cols16 / 16, true);
    for (int64_t c = 0; c < A.cols16; c += 16) {
      if (A.l2) next.step();
      for (int r = 0; r < R; ++r) {
        __m256 a, b;
        load16<DT>(w[r], c, a, b);
        for (int t = 0; t < T; ++t) {
          const float* xt = xp + t * A.cols + c;
          acc[r][t] = _mm256_fmadd_ps(a, _mm256_loadu_ps(xt), acc[r][t]);
          acc[r][t] = _mm256_fmadd_ps(b, _mm256_loadu_ps(xt + 8), acc[r][t]);
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) out[r][t] = hsum(acc[r][t]);
  }
  for (int64_t c = A.cols16; c < A.cols; ++c)
    for (int r = 0; r < R; ++r) {
      const float wv = scalar_w<DT>(w[r], c);
      for (int t = 0; t < T; ++t) out[r][t] += wv * A.x[(t0 + t) * A.cols + c];
    }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) A.Y[(t0 + t) * A.rows + r0 + r] = out[r][t];
}

// Rows [r0, r0 + R) against all n tokens.
template <DType DT, int R>
inline void float_rows(const FloatArgs& A, int64_t r0, int64_t n) {
  int64_t t = 0;
  if (n == 1) return float_tile<DT, R, 1>(A, r0, 0);
  if (n == 2) return float_tile<DT, R, 2>(A, r0, 0);
  for (; t + 4 <= n; t += 4) {
    float_tile<DT, (R > 2 ? 2 : R), 4>(A, r0, t);
    if constexpr (R > 2) float_tile<DT, 2, 4>(A, r0 + 2, t);
  }
  switch (n - t) {
    case 3: float_tile<DT, R, 3>(A, r0, t); break;
    case 2: float_tile<DT, R, 2>(A, r0, t); break;
    case 1: float_tile<DT, R, 1>(A, r0, t); break;
    default: break;
  }
}

template <DType DT>
void float_chunk(const FloatArgs& A, int64_t b, int64_t e, int64_t n) {
  int64_t r = b;
  for (; r + 4 <= e; r += 4) float_rows<DT, 4>(A, r, n);
  for (; r < e; ++r) float_rows<DT, 1>(A, r, n);
}

// ---------------------------------------------------------------------------
// Quantized weights, small n, int8 activations.

// Q4_0 activations re-laid out per block pair (see q4_pairs).
struct Q4Acts {
  const int8_t* qp;   // [n][cols], pair-interleaved
  const float* sub8;  // [n][nb]: 8 * dx * sum(x) of each block
};

struct QuantArgs {
  const std::byte* W;
  size_t row_bytes;
  int64_t rows, nb;
  const QuantizedActs* xa;
  float* Y;
  const Q4Acts* q4 = nullptr;  // Q4_0 only
  const float* xdT = nullptr;  // Q8_0 with n >= 4: activation scales transposed, [nb][n]
  bool l2 = prefetch_l2();     // next rows into L2 (see NextRows)
};

// Returns v unchanged through an empty asm GCC cannot see into, so the value
// stays in a register as written: GCC neither folds a pinned load into each
// of its users nor reassociates a pinned chain of sums into a tree that
// spills.
inline __attribute__((always_inline)) __m256i pin(__m256i v) {
  asm("" : "+x"(v));
  return v;
}

// acc holds per-token partial sums in both 128-bit halves ([a b c d | a b c d]
// or, for a pair, [a b a b | a b a b]): adds the halves and stores the first
// cnt tokens to y[0], y[stride], ...
inline void store_token_halves(__m256 acc, float* y, int64_t stride, int cnt) {
  float v[4];
  _mm_storeu_ps(v, _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
  for (int t = 0; t < cnt; ++t) y[t * stride] = v[t];
}

template <int R, int T>
inline void q8_tile(const QuantArgs& A, int64_t r0, int64_t t0) {
  using quant::BlockQ8_0;
  const BlockQ8_0* w[R];
  for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const BlockQ8_0*>(A.W + static_cast<size_t>(r0 + r) * A.row_bytes);
  const int64_t cols = A.nb * 32;
  const int8_t* xq = A.xa->q + t0 * cols;
  const float* xd = A.xa->d + t0 * A.nb;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  // The next tile's rows, as NextRows does; written out here because with
  // the class GCC slowed this loop by a third (Q8_0 n=4 from DRAM 11 -> 7 GB/s).
  const char* pf = reinterpret_cast<const char*>(A.W + static_cast<size_t>(r0 + R) * A.row_bytes);
  const int64_t next_lines = r0 + 2 * R <= A.rows ? static_cast<int64_t>(R * A.row_bytes / 64) : 0;
  int64_t owed = 0;
  for (int64_t bi = 0; bi < A.nb; ++bi) {
    for (owed += next_lines; owed >= A.nb; owed -= A.nb, pf += 64) avx2::prefetch_next(pf, A.l2);
    for (int r = 0; r < R; ++r) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r][bi].q));
      const __m256i aq = _mm256_sign_epi8(q, q);
      const float dw = _cvtsh_ss(w[r][bi].d);
      for (int t = 0; t < T; ++t) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + t * cols + bi * 32));
        const __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(x, q));
        const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
        acc[r][t] = _mm256_fmadd_ps(s, _mm256_set1_ps(dw * xd[t * A.nb + bi]), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) A.Y[(t0 + t) * A.rows + r0 + r] = hsum(acc[r][t]);
}

// Q8_0, two rows against four tokens: batched decode's LM head when the
// rest of the model is Q4_SB. Per block and token, sign + maddubs + madd
// leave eight int32 partial sums; two levels of hadd fold the four tokens
// into one vector [a b c d | a b c d] (each half sums its own lanes), so the
// convert, the scale multiply and the FMA run once per block and row
// instead of once per block, row and token, with the scales [dx_a .. dx_d]
// one 16-byte load from the transposed array (as in Q4_SB). The activation
// vectors are loaded once per block for both rows.
inline void q8_tile_2x4(const QuantArgs& A, int64_t r0, int64_t t0) {
  using quant::BlockQ8_0;
  const BlockQ8_0* w0 = reinterpret_cast<const BlockQ8_0*>(A.W + static_cast<size_t>(r0) * A.row_bytes);
  const BlockQ8_0* w1 = reinterpret_cast<const BlockQ8_0*>(A.W + static_cast<size_t>(r0 + 1) * A.row_bytes);
  const int64_t cols = A.nb * 32, n = A.xa->n;
  const int8_t* xq = A.xa->q + t0 * cols;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  NextRows next(A.W, A.row_bytes, A.rows, r0, 2, A.nb, A.l2);
  for (int64_t bi = 0; bi < A.nb; ++bi) {
    next.step();
    auto ldx = [&](int t) { return pin(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + t * cols + bi * 32))); };
    const __m256i x0 = ldx(0), x1 = ldx(1), x2 = ldx(2), x3 = ldx(3);
    const __m256 xd = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(A.xdT + bi * n + t0));
    auto row = [&](const BlockQ8_0& b, __m256& acc) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q));
      const __m256i aq = _mm256_sign_epi8(q, q);
      auto dot = [&](__m256i x) { return _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(x, q)), ones); };
      const __m256i m = _mm256_hadd_epi32(_mm256_hadd_epi32(dot(x0), dot(x1)), _mm256_hadd_epi32(dot(x2), dot(x3)));
      int16_t dbits;
      std::memcpy(&dbits, &b.d, sizeof dbits);
      const __m256 f = _mm256_mul_ps(_mm256_cvtph_ps(_mm_set1_epi16(dbits)), xd);
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), f, acc);
    };
    row(w0[bi], acc0);
    row(w1[bi], acc1);
  }
  store_token_halves(acc0, A.Y + t0 * A.rows + r0, A.rows, 4);
  store_token_halves(acc1, A.Y + t0 * A.rows + r0 + 1, A.rows, 4);
}

// f32 scales of blocks b[0..cnt) (cnt <= 8, 18 bytes apart), zero above.
template <bool Full>
inline __m256 q4_scales8(const quant::BlockQ4_0* b, int cnt) {
  if constexpr (Full) {
    __m128i h = _mm_cvtsi32_si128(b[0].d);
    h = _mm_insert_epi16(h, b[1].d, 1), h = _mm_insert_epi16(h, b[2].d, 2), h = _mm_insert_epi16(h, b[3].d, 3);
    h = _mm_insert_epi16(h, b[4].d, 4), h = _mm_insert_epi16(h, b[5].d, 5), h = _mm_insert_epi16(h, b[6].d, 6);
    h = _mm_insert_epi16(h, b[7].d, 7);
    return _mm256_cvtph_ps(h);
  } else {  // built in registers, not through a stack array (store forwarding)
    uint64_t lo = 0, hi = 0;
    for (int i = 0; i < cnt; ++i) (i < 4 ? lo : hi) |= uint64_t{b[i].d} << (16 * (i % 4));
    return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo)));
  }
}

// The first cnt (< 8) floats at p, zeros above. A masked load: filling a
// stack array and loading it as a vector stalled on store forwarding, once
// per row and token, ~10% of the Q4_0 4-token tile.
inline __m256 load_partial8(const float* p, int64_t cnt) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cnt)), idx));
}

thread_local std::vector<float> g_q4_scales;

// Q4_0, two blocks per step. The nibbles of a block pair (A, B) are loaded
// with their 4-byte groups interleaved, [qA0-3 qB0-3 qA4-7 qB4-7 | qA8-11 ...]
// (two unpacks), and the activations are re-laid out to match once per call
// (prepare_q4_acts). One AND gives both blocks' low halves and one shift +
// AND the high halves; maddubs of the two halves are summed in int16
// (|q x| <= 15 * 127 * 2 per half: no overflow) and one madd leaves block A
// in the even int32 lanes and B in the odd ones. The pair's two scales are
// then one 64-bit broadcast from memory: [sA sB sA sB ...]. With A in lanes
// 0-3 and B in 4-7 instead, the scale vector needed an insert per pair and
// token, which cost 1.7x in the 4-token tile (standalone loop, L2).
// The weights are q - 8, so each block also owes dw * dx * 8 * sum(x); that
// term does not depend on the nibbles, so it is a dot product of the row's
// scales with a per-token vector (sub8), done 8 blocks at a time in pass 1
// instead of an int32 load and subtract per block pair and token.
template <int R, int T>
inline void q4_pairs(const QuantArgs& A, const Q4Acts& P, int64_t r0, int64_t t0) {
  using quant::BlockQ4_0;
  const BlockQ4_0* w[R];
  for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const BlockQ4_0*>(A.W + static_cast<size_t>(r0 + r) * A.row_bytes);
  const int64_t nb = A.nb, cols = nb * 32, paired = nb / 2 * 2, full = paired / 8 * 8;
  const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0f);
  // Pass 1: every block's combined scale dw * dx, [R][T][paired], kept out of
  // the pair loop (the 8-insert gather is a long dependency chain), and the
  // "- 8 sum x" correction. This pass touches every line of the tile, so it
  // is where DRAM misses land; pass 2 reads from L1/L2.
  const int64_t stride = (paired + 7) / 8 * 8;
  float* sc = scratch(g_q4_scales, static_cast<size_t>(R * T * stride));
  // Pointers held in locals: the may_alias vector stores would otherwise
  // force a reload of every pointer reached through A after each store.
  float out[R][T];
  const float* dx[T];
  const float* sx[T];
  float* st[R][T];  // dw * dx of row r, token t
  for (int t = 0; t < T; ++t) dx[t] = A.xa->d + (t0 + t) * nb, sx[t] = P.sub8 + (t0 + t) * nb;
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) st[r][t] = sc + (r * T + t) * stride;
  for (int r = 0; r < R; ++r) {
    __m256 corr[T];
    for (int t = 0; t < T; ++t) corr[t] = _mm256_setzero_ps();
    // One group of 8 blocks; load(p) reads its 8 (or fewer) floats.
    auto group = [&](int64_t g, __m256 dw, auto load) {
      for (int t = 0; t < T; ++t) {
        _mm256_storeu_ps(st[r][t] + g, _mm256_mul_ps(dw, load(dx[t] + g)));
        corr[t] = _mm256_fmadd_ps(dw, load(sx[t] + g), corr[t]);
      }
    };
    int64_t g = 0;
    for (; g < full; g += 8) group(g, q4_scales8<true>(w[r] + g, 8), [](const float* p) { return _mm256_loadu_ps(p); });
    if (const int64_t left = paired - g; left > 0)
      group(g, q4_scales8<false>(w[r] + g, static_cast<int>(left)), [left](const float* p) { return load_partial8(p, left); });
    for (int t = 0; t < T; ++t) out[r][t] = -hsum(corr[t]);
  }
  // Pass 2: the dot products, two blocks per step.
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  // Pass 2 runs from L1/L2; meanwhile fetch the next tile's rows so DRAM
  // does not idle until its pass 1.
  NextRows next(A.W, A.row_bytes, A.rows, r0, R, paired / 2, A.l2);
  const int8_t* xt[T];
  for (int t = 0; t < T; ++t) xt[t] = P.qp + (t0 + t) * cols;
  for (int64_t j = 0; j < paired; j += 2) {
    next.step();
    for (int r = 0; r < R; ++r) {
      const __m128i qa = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[r][j].q));
      const __m128i qb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[r][j + 1].q));
      const __m256i v = _mm256_set_m128i(_mm_unpackhi_epi32(qa, qb), _mm_unpacklo_epi32(qa, qb));
      const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      for (int t = 0; t < T; ++t) {
        const int8_t* x = xt[t] + j * 32;
        const __m256i p16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x))),
                                             _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32))));
        const __m256 scale = _mm256_castpd_ps(_mm256_broadcast_sd(reinterpret_cast<const double*>(st[r][t] + j)));
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones)), scale, acc[r][t]);
      }
    }
  }
  if (nb % 2) {  // last block alone, natural activation layout, into the same accumulators
    const int64_t bi = nb - 1;
    for (int r = 0; r < R; ++r) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[r][bi].q));
      const __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), m4);
      const float dw = _cvtsh_ss(w[r][bi].d);
      for (int t = 0; t < T; ++t) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(A.xa->q + (t0 + t) * cols + bi * 32));
        const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), ones);
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw * dx[t][bi]), acc[r][t]);
        out[r][t] -= dw * sx[t][bi];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[r][t] += hsum(acc[r][t]);
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) A.Y[(t0 + t) * A.rows + r0 + r] = out[r][t];
}

// Q4_SB: one super-block of 160 per step. Its nibbles are three loads
// (32 + 32 + 16 bytes) in natural order, so the activations need no re-layout:
// low and high nibbles of the first 32 bytes are elements 0-31 and 32-63, and
// so on. The five maddubs of a super-block add up in int16: lane L of the sum
// holds the elements i with (i % 32) / 2 == L (10 of them, |sum| <= 19050,
// and after subtracting 8 * sum(x) at most 10160). Sub-block j is lanes 2j
// and 2j + 1, so one madd with [sc0 sc0 sc1 sc1 ...] applies all eight
// sub-scales, and the convert and FMA run once per super-block and token
// instead of once per block pair as in Q4_0.
struct SBArgs {
  const std::byte* W;
  size_t row_bytes;
  int64_t rows, nsb, n;
  const SuperActs* xa;
  const int16_t* xs2;  // per token pair (2k, 2k + 1) and super-block, see q4sb_token_data
  const float* xdT;    // activation scales transposed, [nsb][n]
  float* Y;
  bool l2 = prefetch_l2();  // next rows into L2 (see NextRows)
};

// One super-block of one row against T tokens.
//
// Per token, five maddubs summed in int16 give lane L = the elements with
// (i % 32) / 2 == L, before the "- 8". Two tokens a, b then meet in one hadd:
// lane j of each 128-bit half is the sum of a's lanes 2j and 2j + 1 for
// j < 4 and of b's lanes 2(j - 4) and 2(j - 4) + 1 for j >= 4, i.e. one
// sub-block of one token. The int16 arithmetic wraps on the
// way but the result is exact, as the true sub-block sum after the "- 8"
// (xs2, the two tokens' lane sums hadd-ed the same way) stays within
// 20 * 8 * 127 = 20320. One madd with [sc0 sc1 sc2 sc3 sc0 sc1 sc2 sc3 |
// sc4 .. sc7 sc4 .. sc7] applies the sub-scales: int32 [a a b b | a a b b].
// For four tokens one hadd of the two pairs gives [a b c d | a b c d], so a
// single convert, multiply and FMA (scales [dx_a dx_b dx_c dx_d] straight
// from the transposed array) finish the super-block: about 15 vector ops per
// token against 19 with a madd, convert and FMA per token, and the tile is
// bound by vector ops, not by its multiplies (turning the maddubs into adds
// changed its speed by under 10%). A pair alone hadds with itself,
// [a b a b | a b a b]; an odd last token runs alone with a madd of
// [sc0 sc0 sc1 sc1 ...].
template <int T>
inline __attribute__((always_inline)) void q4sb_step(const quant::BlockQ4SB& b, const int8_t* const* xq,
                                                     const int16_t* const* xs, const int16_t* const* xs2,
                                                     const float* xdT, int64_t n, int64_t sb, __m256* acc) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q));
  const __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q + 32));
  // The last 16 bytes in both halves; the upper half shifted for the high nibbles.
  const __m256i c2 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q + 64)));
  const __m256i lo0 = _mm256_and_si256(c0, m4), hi0 = _mm256_and_si256(_mm256_srli_epi16(c0, 4), m4);
  const __m256i lo1 = _mm256_and_si256(c1, m4), hi1 = _mm256_and_si256(_mm256_srli_epi16(c1, 4), m4);
  const __m256i q2 = _mm256_and_si256(_mm256_srlv_epi32(c2, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), m4);
  const __m128i sc8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.sc));
  int16_t dbits;
  std::memcpy(&dbits, &b.d, sizeof dbits);
  const __m256 dv = _mm256_cvtph_ps(_mm_set1_epi16(dbits));
  const float* xd = xdT + sb * n;  // this super-block's scales of the tile's tokens
  auto raw = [&](int t) {
    const int8_t* x = xq[t] + sb * 160;
    auto ld = [x](int o) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + o)); };
    // A chain, not a tree: the tokens give the parallelism. Left alone, GCC
    // reassociates the sums into a tree, holds ten products at once and
    // spills them; the empty asm pins each partial sum.
    __m256i p = _mm256_maddubs_epi16(lo0, ld(0));
    p = pin(_mm256_add_epi16(p, _mm256_maddubs_epi16(hi0, ld(32))));
    p = pin(_mm256_add_epi16(p, _mm256_maddubs_epi16(lo1, ld(64))));
    p = pin(_mm256_add_epi16(p, _mm256_maddubs_epi16(hi1, ld(96))));
    return _mm256_add_epi16(p, _mm256_maddubs_epi16(q2, ld(128)));
  };
  if constexpr (T >= 2) {
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, _mm_setr_epi8(0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7)));
    auto pair = [&](int k) {  // int32 [a a b b | a a b b]
      const __m256i p = _mm256_sub_epi16(_mm256_hadd_epi16(raw(k), raw(k + 1)),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs2[k / 2] + sb * 16)));
      return _mm256_madd_epi16(p, sc);
    };
    if constexpr (T == 4) {
      const __m256i m = _mm256_hadd_epi32(pair(0), pair(2));
      const __m256 f = _mm256_mul_ps(dv, _mm256_broadcast_ps(reinterpret_cast<const __m128*>(xd)));
      acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), f, acc[0]);
    } else {
      const __m256i p = pair(0);
      // [dx_a dx_b] repeated; a 64-bit integer load, as xd is only 4-byte aligned.
      const __m256 xab = _mm256_castsi256_ps(_mm256_broadcastq_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(xd))));
      const __m256 f = _mm256_mul_ps(dv, xab);
      acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_hadd_epi32(p, p)), f, acc[0]);
    }
  }
  if constexpr (T % 2) {
    constexpr int t = T - 1;
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(sc8, sc8));
    const __m256i p = _mm256_sub_epi16(raw(t), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs[t] + sb * 16)));
    acc[T / 2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p, sc)), _mm256_mul_ps(dv, _mm256_set1_ps(xd[t])),
                                 acc[T / 2]);
  }
}

// Two rows against four tokens, the fast path of batched decode. Per token
// the arithmetic is q4sb_step's, but the loops run the other way round: for
// each 32-byte column group, both rows' weights are unpacked and each
// token's activations are loaded once for both. The activation loads, 20 per
// super-block and row in q4sb_step, bound that tile more than its
// arithmetic (with them hoisted out of the loop it ran 20% faster); here
// they are 10. Named chains, not arrays: with arrays GCC kept them on the
// stack.
inline __attribute__((always_inline)) void q4sb_step_2x4(const quant::BlockQ4SB& b0, const quant::BlockQ4SB& b1,
                                                         const int8_t* const* xq, const int16_t* const* xs2,
                                                         const float* xdT, int64_t n, int64_t sb, __m256& acc0,
                                                         __m256& acc1) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const int8_t* x[4] = {xq[0] + sb * 160, xq[1] + sb * 160, xq[2] + sb * 160, xq[3] + sb * 160};
  // a*: row 0, e*: row 1, one chain per token.
  __m256i a0, a1, a2, a3, e0, e1, e2, e3;
  auto group = [&](bool first, __m256i w0, __m256i w1, int o) {
    auto tok = [&](const int8_t* xt, __m256i& a, __m256i& e) {
      // Pinned: left alone, GCC folds the load into both maddubs and loads it twice.
      const __m256i xv = pin(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xt + o)));
      const __m256i p = _mm256_maddubs_epi16(w0, xv), q = _mm256_maddubs_epi16(w1, xv);
      a = first ? p : pin(_mm256_add_epi16(a, p));
      e = first ? q : pin(_mm256_add_epi16(e, q));
    };
    tok(x[0], a0, e0), tok(x[1], a1, e1), tok(x[2], a2, e2), tok(x[3], a3, e3);
  };
  auto lo = [&](__m256i c) { return _mm256_and_si256(c, m4); };
  auto hi = [&](__m256i c) { return _mm256_and_si256(_mm256_srli_epi16(c, 4), m4); };
  auto ld = [](const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
  {
    const __m256i c = ld(b0.q), d = ld(b1.q);
    group(true, lo(c), lo(d), 0);
    group(false, hi(c), hi(d), 32);
  }
  {
    const __m256i c = ld(b0.q + 32), d = ld(b1.q + 32);
    group(false, lo(c), lo(d), 64);
    group(false, hi(c), hi(d), 96);
  }
  {
    const __m256i sh = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    auto last = [&](const uint8_t* p) {
      return lo(_mm256_srlv_epi32(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), sh));
    };
    group(false, last(b0.q + 64), last(b1.q + 64), 128);
  }
  // As in q4sb_step for four tokens, once per row.
  const __m256i xs_ab = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs2[0] + sb * 16));
  const __m256i xs_cd = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs2[1] + sb * 16));
  const __m256 xd = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(xdT + sb * n));
  auto finish = [&](const quant::BlockQ4SB& b, __m256i ta, __m256i tb, __m256i tc, __m256i td, __m256& acc) {
    const __m128i sc8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.sc));
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, _mm_setr_epi8(0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7)));
    const __m256i P = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_hadd_epi16(ta, tb), xs_ab), sc);
    const __m256i Q = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_hadd_epi16(tc, td), xs_cd), sc);
    int16_t dbits;
    std::memcpy(&dbits, &b.d, sizeof dbits);
    const __m256 f = _mm256_mul_ps(_mm256_cvtph_ps(_mm_set1_epi16(dbits)), xd);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_hadd_epi32(P, Q)), f, acc);
  };
  finish(b0, a0, a1, a2, a3, acc0);
  finish(b1, e0, e1, e2, e3, acc1);
}

template <int T>
struct SBTokens {
  const int8_t* xq[T];
  const int16_t* xs[T];
  const int16_t* xs2[T / 2 + 1];
  const float* xdT;
  SBTokens(const SBArgs& A, int64_t t0) : xdT(A.xdT + t0) {
    for (int t = 0; t < T; ++t) xq[t] = A.xa->q + (t0 + t) * A.nsb * 160, xs[t] = A.xa->xs + (t0 + t) * A.nsb * 16;
    for (int k = 0; k + 2 <= T; k += 2) xs2[k / 2] = A.xs2 + (t0 + k) / 2 * A.nsb * 16;  // t0 is even
  }
};

// Rows [r0, r0 + R) x tokens [t0, t0 + T), whole rows (T <= 4). One
// accumulator per row, two for 3 tokens (see q4sb_step for the lanes).
template <int R, int T>
inline void q4sb_tile(const SBArgs& A, int64_t r0, int64_t t0) {
  static_assert(T >= 1 && T <= 4);
  using quant::BlockQ4SB;
  constexpr int NA = T == 3 ? 2 : 1;
  const BlockQ4SB* w[R];
  for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const BlockQ4SB*>(A.W + static_cast<size_t>(r0 + r) * A.row_bytes);
  const int64_t nsb = A.nsb;
  const SBTokens<T> X(A, t0);
  __m256 acc[R][NA];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < NA; ++k) acc[r][k] = _mm256_setzero_ps();
  NextRows next(A.W, A.row_bytes, A.rows, r0, R, nsb, A.l2);
  if constexpr (R == 2 && T == 4) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;  // not acc[][]: GCC stored those every step
    for (int64_t sb = 0; sb < nsb; ++sb) {
      next.step();
      q4sb_step_2x4(w[0][sb], w[1][sb], X.xq, X.xs2, X.xdT, A.n, sb, acc0, acc1);
    }
    acc[0][0] = acc0, acc[1][0] = acc1;
  } else {
    for (int64_t sb = 0; sb < nsb; ++sb) {
      next.step();
      for (int r = 0; r < R; ++r) q4sb_step<T>(w[r][sb], X.xq, X.xs, X.xs2, X.xdT, A.n, sb, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* y = A.Y + t0 * A.rows + r0 + r;
    if constexpr (T == 1) {
      y[0] = hsum(acc[r][0]);
    } else {
      store_token_halves(acc[r][0], y, A.rows, T == 4 ? 4 : 2);
      if constexpr (T == 3) y[2 * A.rows] = hsum(acc[r][1]);
    }
  }
}

// Per token pair (2k, 2k + 1) and super-block, the two tokens' "- 8" lane
// sums hadd-ed the way q4sb_step hadds their products; and the activation
// scales transposed to [nsb][n], so a tile's tokens' scales are adjacent.
void q4sb_token_data(const SuperActs& sa, int64_t nsb, int16_t* xs2, float* xdT) {
  for (int64_t k = 0; k + 1 < sa.n; k += 2)
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const auto ld = [&](int64_t t) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sa.xs + (t * nsb + sb) * 16)); };
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xs2 + (k / 2 * nsb + sb) * 16), _mm256_hadd_epi16(ld(k), ld(k + 1)));
    }
  for (int64_t t = 0; t < sa.n; ++t)
    for (int64_t sb = 0; sb < nsb; ++sb) xdT[sb * sa.n + t] = sa.d[t * nsb + sb];
}

// Rows [r0, r0 + R) against all n tokens. Tiles of 4 tokens take two rows
// at a time (see q4sb_step_2x4).
template <int R>
inline void q4sb_rows(const SBArgs& A, int64_t r0, int64_t n) {
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) {
    for (int r = 0; r + 2 <= R; r += 2) q4sb_tile<2, 4>(A, r0 + r, t);
    if constexpr (R % 2) q4sb_tile<1, 4>(A, r0 + R - 1, t);
  }
  switch (n - t) {
    case 3:
      for (int r = 0; r < R; ++r) q4sb_tile<1, 3>(A, r0 + r, t);
      break;
    case 2:
      if constexpr (R >= 2) {
        for (int r = 0; r + 2 <= R; r += 2) q4sb_tile<2, 2>(A, r0 + r, t);
        if constexpr (R % 2) q4sb_tile<1, 2>(A, r0 + R - 1, t);
      } else {
        q4sb_tile<1, 2>(A, r0, t);
      }
      break;
    case 1: q4sb_tile<R, 1>(A, r0, t); break;
    default: break;
  }
}

void q4sb_chunk(const SBArgs& A, int64_t b, int64_t e, int64_t n) {
  int64_t r = b;
  for (; r + 4 <= e; r += 4) q4sb_rows<4>(A, r, n);
  for (; r < e; ++r) q4sb_rows<1>(A, r, n);
}

// Q8_0, n = 1, 4 rows: named accumulators (arrays made GCC spill them), one
// activation block load shared by the 4 rows.
inline void q8rows4_n1(const QuantArgs& A, int64_t r0) {
  const std::byte* base = A.W + static_cast<size_t>(r0) * A.row_bytes;
  const size_t rb = A.row_bytes;
  constexpr size_t bs = sizeof(quant::BlockQ8_0);
  const int8_t* xq = A.xa->q;
  const float* xd = A.xa->d;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  auto block = [&](const std::byte* blk, __m256i x, float dx, __m256& acc) {
    uint16_t h;
    std::memcpy(&h, blk, 2);
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q)), ones);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(_cvtsh_ss(h) * dx), acc);
  };
  NextRows next(A.W, rb, A.rows, r0, 4, A.nb, A.l2);
  for (int64_t bi = 0; bi < A.nb; ++bi) {
    next.step();
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + bi * 32));
    const float dx = xd[bi];
    const std::byte* p = base + bi * bs;
    block(p, x, dx, a0);
    block(p + rb, x, dx, a1);
    block(p + 2 * rb, x, dx, a2);
    block(p + 3 * rb, x, dx, a3);
  }
  A.Y[r0] = hsum(a0), A.Y[r0 + 1] = hsum(a1), A.Y[r0 + 2] = hsum(a2), A.Y[r0 + 3] = hsum(a3);
}

template <bool Q4, int R, int T>
inline void qtile(const QuantArgs& A, int64_t r0, int64_t t0) {
  if constexpr (Q4)
    q4_pairs<R, T>(A, *A.q4, r0, t0);
  else
    q8_tile<R, T>(A, r0, t0);
}

template <bool Q4, int R>
inline void quant_rows(const QuantArgs& A, int64_t r0, int64_t n) {
  if constexpr (R == 4 && !Q4) {
    if (n == 1) return q8rows4_n1(A, r0);
  }
  int64_t t = 0;
  // Q4_0 4-token tiles one row at a time: with 2 rows x 4 tokens the
  // accumulators no longer fit in registers and every FMA went through the
  // stack. Q8_0 folds its tokens into one accumulator per row (q8_tile_2x4).
  for (; t + 4 <= n; t += 4) {
    if constexpr (!Q4) {
      for (int r = 0; r + 2 <= R; r += 2) q8_tile_2x4(A, r0 + r, t);
      if constexpr (R % 2) qtile<Q4, 1, 4>(A, r0 + R - 1, t);
    } else {
      for (int r = 0; r < R; ++r) qtile<Q4, 1, 4>(A, r0 + r, t);
    }
  }
  switch (n - t) {
    case 3: qtile<Q4, R, 3>(A, r0, t); break;
    case 2: qtile<Q4, R, 2>(A, r0, t); break;
    case 1: qtile<Q4, R, 1>(A, r0, t); break;
    default: break;
  }
}

template <bool Q4>
void quant_chunk(const QuantArgs& A, int64_t b, int64_t e, int64_t n) {
  int64_t r = b;
  for (; r + 4 <= e; r += 4) quant_rows<Q4, 4>(A, r, n);
  for (; r < e; ++r) quant_rows<Q4, 1>(A, r, n);
}

// Rows per dynamically handed-out chunk: enough work to amortize the claim
// (tens of microseconds at most), small enough that a descheduled thread
// holds back little.
int64_t row_chunk(int64_t rows, size_t row_bytes, int64_t n, int threads) {
  int64_t c = std::max<int64_t>(4, static_cast<int64_t>((64 * 1024) / std::max<size_t>(1, row_bytes)) /
                                       std::max<int64_t>(1, n / 4 + 1));
  c = (c + 3) / 4 * 4;
  // At least ~8 chunks per thread so the split balances.
  const int64_t cap = std::max<int64_t>(4, (rows / (8 * threads) + 3) / 4 * 4);
  return std::min(c, cap);
}

// Builds the Q4 pair layout from quantized activations (natural layout) and
// each block's 8 * dx * sum(x) (see q4_pairs).
void prepare_q4_acts(const QuantizedActs& qa, int64_t n, int64_t cols, int8_t* qp, float* sub8) {
  const int64_t nb = cols / 32;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t k = 0; k < nb / 2; ++k) {
      const int8_t* a = qa.q + t * cols + k * 64;  // block A; block B at a + 32
      int8_t* o = qp + t * cols + k * 64;
      // 4-byte group g of each half alternates A and B (see q4_pairs); the
      // second half holds the elements 16 further on.
      for (int g = 0; g < 8; ++g) {
        const int8_t* src = a + (g % 2) * 32 + (g / 2) * 4;
        std::memcpy(o + 4 * g, src, 4), std::memcpy(o + 32 + 4 * g, src + 16, 4);
      }
    }
    for (int64_t b = 0; b < nb; ++b) sub8[t * nb + b] = 8.0f * qa.d[t * nb + b] * static_cast<float>(qa.sum[t * nb + b]);
  }
}

thread_local std::vector<int8_t> g_qp;
thread_local std::vector<float> g_sub8;
thread_local std::vector<float> g_xp;
thread_local std::vector<int8_t> g_xq;
thread_local std::vector<float> g_xd;
thread_local std::vector<int32_t> g_xs;
thread_local std::vector<int16_t> g_xs16, g_xs2;
thread_local std::vector<float> g_xdT;

// max |x[i]| over n floats (n a multiple of 8).
inline float abs_max(const float* x, int n) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), absmask));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  return _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
}

// 32 floats times vid, rounded to nearest even, as int8 in order (the packs
// interleave 128-bit lanes; a permute restores the order).
inline __m256i quantize32(const float* x, __m256 vid) {
  __m256i qi[4];
  for (int i = 0; i < 4; ++i)
    qi[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), vid),
                                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __m256i p8 = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
  return _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
}

}  // namespace

void quantize_acts(const float* X, int64_t n, int64_t cols, QuantizedActs& out) {
  const int64_t nb = cols / 32;
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* x = X + t * cols + b * 32;
      const float d = abs_max(x, 32) / 127.0f;
      const __m256i p8 = quantize32(x, _mm256_set1_ps(d != 0 ? 1.0f / d : 0.0f));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.q + t * cols + b * 32), p8);
      out.d[t * nb + b] = d;
      out.sum[t * nb + b] = hsum_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(ones8, p8), ones16));
    }
  }
}

void quantize_acts_sb(const float* X, int64_t n, int64_t cols, SuperActs& out) {
  const int64_t nsb = cols / 160;
  const __m256i ones8 = _mm256_set1_epi8(1);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t b = 0; b < nsb; ++b) {
      const float* x = X + t * cols + b * 160;
      const float d = abs_max(x, 160) / 127.0f;
      const __m256 vid = _mm256_set1_ps(d != 0 ? 1.0f / d : 0.0f);
      int8_t* q = out.q + t * cols + b * 160;
      __m256i xs = _mm256_setzero_si256();
      for (int g = 0; g < 5; ++g) {
        const __m256i p8 = quantize32(x + 32 * g, vid);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * g), p8);
        xs = _mm256_add_epi16(xs, _mm256_maddubs_epi16(ones8, p8));  // lane L: q[2L] + q[2L + 1]
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.xs + (t * nsb + b) * 16), _mm256_slli_epi16(xs, 3));
      out.d[t * nsb + b] = d;
    }
  }
}

void matmul_small(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y) {
  const int64_t rows = W.rows(), cols = W.cols();
  const size_t row_bytes = dtype_row_bytes(W.dtype, cols);
  const int64_t chunk = row_chunk(rows, row_bytes, n, pool.size());
  if (W.dtype == DType::Q4_SB) {
    const int64_t nsb = cols / 160;
    SuperActs sa{n, cols, scratch(g_xq, static_cast<size_t>(n * cols)), scratch(g_xd, static_cast<size_t>(n * nsb)),
                 scratch(g_xs16, static_cast<size_t>(n * nsb * 16))};
    quantize_acts_sb(X, n, cols, sa);
    if (n >= 2 && use_vnni()) return vnni::q4sb_matmul(pool, W, sa, n, Y, chunk);
    int16_t* xs2 = scratch(g_xs2, static_cast<size_t>(n / 2 * nsb * 16));
    float* xdT = scratch(g_xdT, static_cast<size_t>(n * nsb));
    q4sb_token_data(sa, nsb, xs2, xdT);
    const SBArgs A{W.data, row_bytes, rows, nsb, n, &sa, xs2, xdT, Y};
    pool.parallel_for(rows, chunk, [&](int64_t b, int64_t e, int) { q4sb_chunk(A, b, e, n); });
    return;
  }
  if (W.dtype == DType::Q8_0 || W.dtype == DType::Q4_0) {
    const int64_t nb = cols / 32;
    QuantizedActs qa{n, cols, scratch(g_xq, static_cast<size_t>(n * cols) + 32), scratch(g_xd, static_cast<size_t>(n * nb)),
                     scratch(g_xs, static_cast<size_t>(n * nb))};
    quantize_acts(X, n, cols, qa);
    const bool q4 = W.dtype == DType::Q4_0;
    if (use_vnni()) return vnni::q8_q4_matmul(pool, W, qa, n, Y, chunk);
    Q4Acts q4a{nullptr, nullptr};
    if (q4) {
      int8_t* qp = scratch(g_qp, static_cast<size_t>(n * cols));
      float* sub8 = scratch(g_sub8, static_cast<size_t>(n * nb));
      prepare_q4_acts(qa, n, cols, qp, sub8);
      q4a = {qp, sub8};
    }
    float* xdT = nullptr;
    if (!q4 && n >= 4) {
      xdT = scratch(g_xdT, static_cast<size_t>(n * nb));
      for (int64_t t = 0; t < n; ++t)
        for (int64_t b = 0; b < nb; ++b) xdT[b * n + t] = qa.d[t * nb + b];
    }
    const QuantArgs A{W.data, row_bytes, rows, nb, &qa, Y, &q4a, xdT};
    pool.parallel_for(rows, chunk, [&](int64_t b, int64_t e, int) {
      if (q4)
        quant_chunk<true>(A, b, e, n);
      else
        quant_chunk<false>(A, b, e, n);
    });
    return;
  }
  const int64_t cols16 = cols / 16 * 16;
  const float* xp = X;
  if (W.dtype == DType::BF16) {
    float* p = scratch(g_xp, static_cast<size_t>(n * cols));
    for (int64_t t = 0; t < n; ++t) {
      const float* x = X + t * cols;
      float* o = p + t * cols;
      for (int64_t c = 0; c < cols16; c += 16)
        for (int j = 0; j < 8; ++j) o[c + j] = x[c + 2 * j], o[c + 8 + j] = x[c + 2 * j + 1];
    }
    xp = p;
  }
  const FloatArgs A{W.data, row_bytes, rows, cols, cols16, xp, X, Y};
  const DType dt = W.dtype;
  pool.parallel_for(rows, chunk, [&](int64_t b, int64_t e, int) {
    switch (dt) {
      case DType::F32: float_chunk<DType::F32>(A, b, e, n); break;
      case DType::F16: float_chunk<DType::F16>(A, b, e, n); break;
      default: float_chunk<DType::BF16>(A, b, e, n); break;
    }
  });
}

// ---------------------------------------------------------------------------
// Blocked GEMM. X is packed as Xt[panel][k][16] (16 tokens per panel, zero
// padded). Work item: 6*kPanelsPerItem weight rows. For each K block of kKc
// columns the item converts its rows to f32 weight panels of 6 rows, then for
// every token panel and weight panel runs the 6x16 micro-kernel, accumulating
// in a small C buffer that is written to Y at the end. With avx512 the panels
// (chunks of 16 columns), their conversion and the 6x64 micro-kernel come from
// gemm_avx512.cc; the rest is shared.
//
// A weight panel is laid out in chunks of 4 columns, [k / 4][6 rows][4]: the
// micro-kernel reads it as one sequential stream, 24 bytes per k-step, where
// one row after the other meant 6 streams 2 KiB apart. Alone over an item's
// panels in L2, the micro-kernel ran 12-15% faster that way; the whole GEMM
// (n=64, 2 threads, paired in one process with the row layout, see
// bench/matmul_ab.sh) gained 4-8% for BF16, 3% for Q4_SB and about nothing
// for Q8_0 / Q4_0, as the conversion now does the transposition (PanelPair).

constexpr int kMr = 6;             // weight rows per micro-tile (broadcast)
constexpr int kNr = 16;            // tokens per micro-tile (two vectors)
constexpr int64_t kKc = 512;       // K block (multiple of 32)
constexpr int kPanelsPerItem = 8;  // 48 rows per work item
constexpr int kMaxPrefetch = kKc / 4;  // lines one micro-kernel call can issue
constexpr int64_t kChunk = kMr * 4;    // floats per 4 columns of a weight panel
static_assert(avx512::kPanelRows == kMr);

namespace {

// The converters fill two adjacent rows of a panel at once (slots dst and
// dst + 4): the 4-column pieces of both rows are neighbours in a chunk, so
// each pair of 8-column vectors goes out as two 32-byte stores instead of
// four 16-byte ones. Converting a K block's panels (BF16, 48 rows x 512
// columns, a standalone loop) took 25-35% less time than row by row.
struct PanelPair {
  float* dst;  // slot of the first row in the panel's first chunk
  bool zero_b;  // the second row is padding: store zeros

  // Columns i..i+7 (i % 4 == 0, relative to the K block) of both rows.
  void put8(int64_t i, __m256 a, __m256 b) const {
    if (zero_b) b = _mm256_setzero_ps();
    float* p = dst + (i / 4) * kChunk;
    _mm256_storeu_ps(p, _mm256_permute2f128_ps(a, b, 0x20));
    _mm256_storeu_ps(p + kChunk, _mm256_permute2f128_ps(a, b, 0x31));
  }
  // Columns i..i+15 of both rows, each row given as lo = [i..i+3 | i+8..i+11]
  // and hi = [i+4..i+7 | i+12..i+15] (the order of 16-bit unpacks).
  void put16(int64_t i, __m256 alo, __m256 ahi, __m256 blo, __m256 bhi) const {
    if (zero_b) blo = bhi = _mm256_setzero_ps();
    float* p = dst + (i / 4) * kChunk;
    _mm256_storeu_ps(p, _mm256_permute2f128_ps(alo, blo, 0x20));
    _mm256_storeu_ps(p + kChunk, _mm256_permute2f128_ps(ahi, bhi, 0x20));
    _mm256_storeu_ps(p + 2 * kChunk, _mm256_permute2f128_ps(alo, blo, 0x31));
    _mm256_storeu_ps(p + 3 * kChunk, _mm256_permute2f128_ps(ahi, bhi, 0x31));
  }
  // Columns i..i+15 of both rows from 16 int8 each, times d = [da x4 | db x4].
  // Interleaving the rows in groups of 4 bytes gives each chunk's [a | b]
  // before the convert, so no permutes after it.
  void put16_i8(int64_t i, __m128i qa, __m128i qb, __m256 d) const {
    if (zero_b) qb = _mm_setzero_si128();
    const __m128i lo = _mm_unpacklo_epi32(qa, qb), hi = _mm_unpackhi_epi32(qa, qb);
    const __m128i g[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    float* p = dst + (i / 4) * kChunk;
    for (int c = 0; c < 4; ++c)
      _mm256_storeu_ps(p + c * kChunk, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(g[c]))));
  }
  void put1(int64_t i, float a, float b) const {
    float* p = dst + (i / 4) * kChunk + i % 4;
    p[0] = a;
    p[4] = zero_b ? 0.0f : b;
  }
};

// [da x4 | db x4] from two f16 block scales, for PanelPair::put16_i8.
inline __m256 pair_scale(uint16_t da, uint16_t db) {
  return _mm256_set_m128(_mm_set1_ps(_cvtsh_ss(db)), _mm_set1_ps(_cvtsh_ss(da)));
}

// Q4_SB cols [k0, k0 + len) (multiples of 32) of rows a and b to f32. A
// 32-element group m of a super-block is one half of a 32-byte load (m < 4)
// or the 16-byte tail; its 8-element piece k spans sub-blocks 2k and 2k + 1,
// whose scales are permuted into place once per super-block.
void convert_q4sb(const std::byte* a, const std::byte* b, int64_t k0, int64_t len, const PanelPair& out) {
  const quant::BlockQ4SB* blocks[2] = {reinterpret_cast<const quant::BlockQ4SB*>(a),
                                       reinterpret_cast<const quant::BlockQ4SB*>(b)};
  int64_t g = k0 / 32;
  const int64_t g1 = (k0 + len) / 32;
  int64_t sb = g / 5;
  int m = static_cast<int>(g % 5);
  int64_t i = 0;
  for (; g < g1; ++sb, m = 0) {
    __m256 s[2][4];
    for (int h = 0; h < 2; ++h) {
      const quant::BlockQ4SB& blk = blocks[h][sb];
      const __m256 sc =
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk.sc))));
      const __m256 ss = _mm256_mul_ps(sc, _mm256_set1_ps(_cvtsh_ss(blk.d)));
      for (int k = 0; k < 4; ++k)
        s[h][k] = _mm256_permutevar8x32_ps(
            ss, _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1));
    }
    for (; m < 5 && g < g1; ++m, ++g, i += 32) {
      __m128i parts[2][4];
      for (int h = 0; h < 2; ++h) {
        const __m256i q = q4sb_group(blocks[h][sb], m);
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        parts[h][0] = lo, parts[h][1] = _mm_srli_si128(lo, 8), parts[h][2] = hi, parts[h][3] = _mm_srli_si128(hi, 8);
      }
      for (int k = 0; k < 4; ++k)
        out.put8(i + 8 * k, _mm256_mul_ps(s[0][k], _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[0][k]))),
                 _mm256_mul_ps(s[1][k], _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[1][k]))));
    }
  }
}

// Converts cols [k0, k0 + len) of weight rows a and b to f32 (see PanelPair).
void convert_range(DType dt, const std::byte* a, const std::byte* b, int64_t k0, int64_t len, const PanelPair& out) {
  switch (dt) {
    case DType::F32: {
      const float* sa = reinterpret_cast<const float*>(a) + k0;
      const float* sb = reinterpret_cast<const float*>(b) + k0;
      int64_t i = 0;
      for (; i + 8 <= len; i += 8) out.put8(i, _mm256_loadu_ps(sa + i), _mm256_loadu_ps(sb + i));
      for (; i < len; ++i) out.put1(i, sa[i], sb[i]);
      return;
    }
    case DType::F16: {
      const auto* sa = reinterpret_cast<const uint16_t*>(a) + k0;
      const auto* sb = reinterpret_cast<const uint16_t*>(b) + k0;
      auto cvt = [](const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
      int64_t i = 0;
      for (; i + 8 <= len; i += 8) out.put8(i, cvt(sa + i), cvt(sb + i));
      for (; i < len; ++i) out.put1(i, _cvtsh_ss(sa[i]), _cvtsh_ss(sb[i]));
      return;
    }
    case DType::BF16: {
      const auto* sa = reinterpret_cast<const uint16_t*>(a) + k0;
      const auto* sb = reinterpret_cast<const uint16_t*>(b) + k0;
      auto cvt = [](const uint16_t* p) {
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
      };
      // bf16 -> f32 puts the 16 bits in the high half: interleaving a 32-byte
      // load with zeros converts 16 columns in two ops.
      const __m256i zero = _mm256_setzero_si256();
      auto lo = [&](__m256i v) { return _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v)); };
      auto hi = [&](__m256i v) { return _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v)); };
      int64_t i = 0;
      for (; i + 16 <= len; i += 16) {
        const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sa + i));
        const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb + i));
        out.put16(i, lo(va), hi(va), lo(vb), hi(vb));
      }
      for (; i + 8 <= len; i += 8) out.put8(i, cvt(sa + i), cvt(sb + i));
      for (; i < len; ++i) out.put1(i, bf16_to_f32(sa[i]), bf16_to_f32(sb[i]));
      return;
    }
    case DType::Q8_0: {
      const auto* ba = reinterpret_cast<const quant::BlockQ8_0*>(a) + k0 / 32;
      const auto* bb = reinterpret_cast<const quant::BlockQ8_0*>(b) + k0 / 32;
      for (int64_t j = 0; j < len / 32; ++j) {
        const __m256 d = pair_scale(ba[j].d, bb[j].d);
        for (int h = 0; h < 2; ++h)
          out.put16_i8(32 * j + 16 * h, _mm_loadu_si128(reinterpret_cast<const __m128i*>(ba[j].q + 16 * h)),
                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(bb[j].q + 16 * h)), d);
      }
      return;
    }
    case DType::Q4_SB: convert_q4sb(a, b, k0, len, out); return;
    case DType::Q4_0: {
      const auto* ba = reinterpret_cast<const quant::BlockQ4_0*>(a) + k0 / 32;
      const auto* bb = reinterpret_cast<const quant::BlockQ4_0*>(b) + k0 / 32;
      for (int64_t j = 0; j < len / 32; ++j) {
        const __m256 d = pair_scale(ba[j].d, bb[j].d);
        for (int h = 0; h < 2; ++h) out.put16_i8(32 * j + 16 * h, q4_0_half(ba[j], h), q4_0_half(bb[j], h), d);
      }
      return;
    }
  }
}

// C[6][NV*8] (+)= Wp[6 rows][k] * Xt[k][NV*8] over kc columns, Wp a weight
// panel in chunks of 4 columns (see above).
// Accumulators are named variables: with arrays GCC kept spilling them. Not
// inlined: inside the work loop GCC kept the second x vector in memory and
// reloaded it for every FMA (13 loads per 12 FMAs instead of 8).
// pf[0..npf): cache lines to prefetch into L2, one every 4 k-steps, so that
// they trickle out instead of filling the miss buffers in a burst.
template <int NV>
__attribute__((noinline)) void micro(const float* wp, const float* xt, int64_t kc, float* C, bool accumulate,
                                     const char* const* pf, int npf) {
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  if (accumulate) {
    c00 = _mm256_loadu_ps(C + 0), c10 = _mm256_loadu_ps(C + 16), c20 = _mm256_loadu_ps(C + 32);
    c30 = _mm256_loadu_ps(C + 48), c40 = _mm256_loadu_ps(C + 64), c50 = _mm256_loadu_ps(C + 80);
    if constexpr (NV == 2) {
      c01 = _mm256_loadu_ps(C + 8), c11 = _mm256_loadu_ps(C + 24), c21 = _mm256_loadu_ps(C + 40);
      c31 = _mm256_loadu_ps(C + 56), c41 = _mm256_loadu_ps(C + 72), c51 = _mm256_loadu_ps(C + 88);
    }
  } else {
    c00 = c10 = c20 = c30 = c40 = c50 = _mm256_setzero_ps();
    c01 = c11 = c21 = c31 = c41 = c51 = _mm256_setzero_ps();
  }
  // Column k of the chunk at w (j = k % 4): row r's weight is w[4 * r + j].
  auto step = [&](const float* w, int64_t k, int64_t j) __attribute__((always_inline)) {
    const __m256 x0 = _mm256_loadu_ps(xt + k * 16);
    if constexpr (NV == 2) {
      const __m256 x1 = _mm256_loadu_ps(xt + k * 16 + 8);
      __m256 b;
      b = _mm256_broadcast_ss(w + j), c00 = _mm256_fmadd_ps(b, x0, c00), c01 = _mm256_fmadd_ps(b, x1, c01);
      b = _mm256_broadcast_ss(w + 4 + j), c10 = _mm256_fmadd_ps(b, x0, c10), c11 = _mm256_fmadd_ps(b, x1, c11);
      b = _mm256_broadcast_ss(w + 8 + j), c20 = _mm256_fmadd_ps(b, x0, c20), c21 = _mm256_fmadd_ps(b, x1, c21);
      b = _mm256_broadcast_ss(w + 12 + j), c30 = _mm256_fmadd_ps(b, x0, c30), c31 = _mm256_fmadd_ps(b, x1, c31);
      b = _mm256_broadcast_ss(w + 16 + j), c40 = _mm256_fmadd_ps(b, x0, c40), c41 = _mm256_fmadd_ps(b, x1, c41);
      b = _mm256_broadcast_ss(w + 20 + j), c50 = _mm256_fmadd_ps(b, x0, c50), c51 = _mm256_fmadd_ps(b, x1, c51);
    } else {
      c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + j), x0, c00);
      c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 4 + j), x0, c10);
      c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 8 + j), x0, c20);
      c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 12 + j), x0, c30);
      c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 16 + j), x0, c40);
      c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 20 + j), x0, c50);
    }
  };
  int i = 0;
  int64_t k = 0;
  const float* w = wp;
  for (; k + 4 <= kc; k += 4, w += kChunk) {
    if (i < npf) _mm_prefetch(pf[i++], _MM_HINT_T1);
    step(w, k, 0), step(w, k + 1, 1), step(w, k + 2, 2), step(w, k + 3, 3);
  }
  for (int64_t j = 0; k < kc; ++k, ++j) step(w, k, j);
  for (; i < npf; ++i) _mm_prefetch(pf[i], _MM_HINT_T1);
  _mm256_storeu_ps(C + 0, c00), _mm256_storeu_ps(C + 16, c10), _mm256_storeu_ps(C + 32, c20);
  _mm256_storeu_ps(C + 48, c30), _mm256_storeu_ps(C + 64, c40), _mm256_storeu_ps(C + 80, c50);
  if constexpr (NV == 2) {
    _mm256_storeu_ps(C + 8, c01), _mm256_storeu_ps(C + 24, c11), _mm256_storeu_ps(C + 40, c21);
    _mm256_storeu_ps(C + 56, c31), _mm256_storeu_ps(C + 72, c41), _mm256_storeu_ps(C + 88, c51);
  }
}

thread_local std::vector<float> g_xt;

}  // namespace

void gemm(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y, bool avx512) {
  const int64_t rows = W.rows(), K = W.cols();
  const size_t row_bytes = dtype_row_bytes(W.dtype, K);
  const int64_t n_tp = (n + kNr - 1) / kNr;  // token panels
  float* xt = scratch(g_xt, static_cast<size_t>(n_tp * K * kNr));
  // Pack X transposed, in parallel over token panels x K blocks.
  const int64_t kblocks = (K + kKc - 1) / kKc;
  pool.parallel_for(n_tp * kblocks, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t p = it / kblocks, k0 = (it % kblocks) * kKc, k1 = std::min(K, k0 + kKc);
      float* dst = xt + p * K * kNr;
      for (int64_t j = 0; j < kNr; ++j) {
        const int64_t t = p * kNr + j;
        if (t < n) {
          const float* src = X + t * K;
          for (int64_t k = k0; k < k1; ++k) dst[k * kNr + j] = src[k];
        } else {
          for (int64_t k = k0; k < k1; ++k) dst[k * kNr + j] = 0.0f;
        }
      }
    }
  });
  constexpr int64_t kItemRows = kMr * kPanelsPerItem;
  const int64_t items = (rows + kItemRows - 1) / kItemRows;
  const DType dt = W.dtype;
  pool.parallel_for(items, 1, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<float> wf_buf, c_buf;
    float* wf = scratch(wf_buf, static_cast<size_t>(kItemRows * kKc));
    float* cb = scratch(c_buf, static_cast<size_t>(kPanelsPerItem * n_tp * kMr * kNr));
    const char* pfl[kMaxPrefetch];
    for (int64_t item = b; item < e; ++item) {
      const int64_t r0 = item * kItemRows, nr = std::min(kItemRows, rows - r0);
      const int64_t npan = (nr + kMr - 1) / kMr;
      for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t kc = std::min(kKc, K - k0);
        // The weight rows come from DRAM in 1-2 KiB pieces per row, too short
        // for the hardware prefetcher: fetch the next K block while this one
        // computes, each micro-kernel call issuing its share of the rows (a
        // burst of all of them would stall on the miss buffers).
        // After the last block: the first block of the next item, which this
        // thread claims next unless the other one steals it (the pool hands
        // out one item per call, so e == item + 1 says nothing about that).
        const bool next_item = k0 + kKc >= K;
        const int64_t pf_r0 = next_item ? r0 + kItemRows : r0, pf_k0 = next_item ? 0 : k0 + kKc;
        const int64_t pf_nr = next_item ? (item + 1 < items ? std::min(kItemRows, rows - pf_r0) : 0) : nr;
        // Bytes of the blocks holding cols [pf_k0, pf_k0 + kKc) (Q4_SB blocks
        // of 160 straddle the K blocks).
        const int64_t bsz = dtype_block_size(dt), pf_k1 = std::min(K, pf_k0 + kKc);
        const size_t pf_off = dtype_row_bytes(dt, pf_k0 / bsz * bsz);
        const size_t pf_len = dtype_row_bytes(dt, (pf_k1 + bsz - 1) / bsz * bsz) - pf_off;
        // The AVX-512 tile takes up to 4 token panels at once (groups).
        const int64_t group = avx512 ? 4 : 1, n_groups = (n_tp + group - 1) / group;
        const int64_t calls = n_groups * npan;
        int64_t owed = 0, pf_row = 0;
        // Panel p's rows into dst (AVX2: in pairs); rows from nr on are
        // padding and get zeros (AVX2: reading them from an all-zero row
        // instead of the zero_b flag measured 2-4% slower, paired with
        // bench/matmul_ab.sh).
        auto convert_panel = [&](int64_t p, float* dst) {
          if (avx512) {
            for (int64_t r = p * kMr; r < (p + 1) * kMr; ++r)
              avx512::convert_row(dt, r < nr ? W.data + static_cast<size_t>(r0 + r) * row_bytes : nullptr, k0, kc,
                                  dst + (r % kMr) * 16);
            return;
          }
          for (int64_t r = p * kMr; r < (p + 1) * kMr; r += 2) {
            float* slot = dst + (r % kMr) * 4;
            if (r < nr) {
              const std::byte* a = W.data + static_cast<size_t>(r0 + r) * row_bytes;
              const bool pad_b = r + 1 >= nr;
              convert_range(dt, a, pad_b ? a : a + row_bytes, k0, kc, PanelPair{slot, pad_b});
            } else {
              for (int64_t c = 0; c < kc; c += 4) std::memset(slot + (c / 4) * kChunk, 0, 32);
            }
          }
        };
        // One micro-kernel call: weight panel p against token panels from tp.
        // No software prefetch of the next x panel: it is read as one
        // sequential stream, which the hardware prefetcher follows. Adding its
        // lines to each call's list made pp64 0-10% slower (7 alternated pairs,
        // BF16, Q8_0, Q4_SB).
        auto call = [&](int64_t p, int64_t tp, const float* panel) {
          // This call's share of the prefetches, handed to the micro-kernel.
          int npf = 0;
          auto add = [&](const char* line) {
            if (npf < kMaxPrefetch)
              pfl[npf++] = line;
            else
              _mm_prefetch(line, _MM_HINT_T1);
          };
          // Rows spread over the calls with a running remainder.
          for (owed += pf_nr; owed >= calls; owed -= calls, ++pf_row) {
            const char* q = reinterpret_cast<const char*>(W.data + static_cast<size_t>(pf_r0 + pf_row) * row_bytes + pf_off);
            for (size_t o = 0; o < pf_len; o += 64) add(q + o);
          }
          const float* xk = xt + tp * K * kNr + k0 * kNr;
          float* C = cb + (p * n_tp + tp) * kMr * kNr;
          if (avx512)
            avx512::gemm_micro(static_cast<int>(std::min(group, n_tp - tp)), panel, xk, K * kNr, kc, C, k0 > 0, pfl,
                               npf);
          else if (n - tp * kNr <= 8)
            micro<1>(panel, xk, kc, C, k0 > 0, pfl, npf);
          else
            micro<2>(panel, xk, kc, C, k0 > 0, pfl, npf);
        };
        if (avx512) {
          // Panel by panel, each converted right before its calls into one
          // 12 KiB buffer (a quarter of L1): with 64 tokens in one call a
          // panel is used once. Converting all 8 panels first measured the same
          // (paired, 1 and 2 threads, BF16 qkv).
          for (int64_t p = 0; p < npan; ++p) {
            convert_panel(p, wf);
            for (int64_t tp = 0; tp < n_tp; tp += group) call(p, tp, wf);
          }
        } else {
          // All panels first, then token panel by token panel: each x panel is
          // reused by the 8 weight panels. Tried and slower: converting each
          // panel right before its first use, and panel by panel with the 4 x
          // panels streamed from L2 (3 alternated pairs each, BF16 pp64, Zen 3).
          for (int64_t p = 0; p < npan; ++p) convert_panel(p, wf + p * kMr * kKc);
          for (int64_t tp = 0; tp < n_tp; ++tp)
            for (int64_t p = 0; p < npan; ++p) call(p, tp, wf + p * kMr * kKc);
        }
      }
      // C -> Y, each token's rows contiguous in Y. Pointers in locals: every
      // float store may alias what the lambda captured by reference.
      float* const yb = Y + r0;
      const float* const cbuf = cb;
      const int64_t yrows = rows;
      for (int64_t t = 0; t < n; ++t) {
        const int64_t tp = t / kNr, j = t % kNr;
        float* y = yb + t * yrows;
        for (int64_t p = 0; p < npan; ++p) {
          const float* C = cbuf + (p * n_tp + tp) * kMr * kNr + j;
          const int64_t m = std::min<int64_t>(kMr, nr - p * kMr);
          for (int64_t r = 0; r < m; ++r) y[p * kMr + r] = C[r * kNr];
        }
      }
    }
  });
}

}  // namespace huginn::cpu::avx2
