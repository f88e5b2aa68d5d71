// Decode kernels (a few tokens) on AVX-512 VNNI (see kernels_vnni.h).
//
// Q8_0 and Q4_0 (any number of tokens; cpu::matmul sends fewer than 12 here).
//
// Why: the AVX2 kernel spends about 13 vector instructions per 34-byte block
// and token (sign, sign, maddubs, madd, convert, FMA and a scalar scale
// path), 2.5x BF16's per byte; with both cores streaming from DRAM it moved
// 16-18 GB/s where BF16 moves 21. Here two blocks share one zmm: per block
// pair and row, one insert, one xor, two scale broadcasts and a scale
// convert, shared by the tokens; per token one vpdpbusd, one int convert,
// one multiply and one FMA.
//
// vpdpbusd multiplies unsigned by signed bytes: the Q8_0 weights get 128
// added (xor 0x80) and each block's accumulator starts at -128 * sum(x) in
// its first lane, which cancels the offset exactly (x is in [-127, 127]).
// Q4_0 nibbles are unsigned as stored (q, for q - 8): the start is -8 * sum(x).
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "compute/cpu/kernels.h"
#include "compute/cpu/kernels_vnni.h"
#include "compute/cpu/scratch.h"
#include "compute/cpu/simd_avx2.h"
#include "compute/quant.h"

namespace huginn::cpu::vnni {

namespace {

thread_local std::vector<std::byte> g_pairs;  // PairActs[] of the current call (caller's thread)

// Per pair of activation blocks (2p, 2p + 1), in the lanes of the zmm that
// holds that pair of weight blocks: the accumulator start and the scales.
struct alignas(64) PairActs {
  int32_t corr[16];  // lane 0: -128 (Q4_0: -8) * sum(x) of block 2p, lane 8: of 2p + 1
  float dx[16];      // lanes 0-7: d of block 2p, lanes 8-15: of 2p + 1
};

struct Args {
  const std::byte* W;
  size_t row_bytes;
  int64_t rows, nb, n;
  const int8_t* xq;      // [n][cols]
  const PairActs* pairs;   // [n][(nb + 1) / 2]
  float* Y;
  bool l2;  // next rows into L2 (cpu::prefetch_l2())
};

// Bytes per block: f16 d, then 32 int8 (Q8_0) or 16 bytes of nibbles (Q4_0).
template <bool Q4>
constexpr size_t kBlock = Q4 ? sizeof(quant::BlockQ4_0) : sizeof(quant::BlockQ8_0);

// Blocks j and j + 1 as 64 unsigned bytes: Q8_0 q + 128 (xor 0x80); Q4_0 the
// nibbles as stored (elements 0-15 low, 16-31 high): each block's 16 bytes
// broadcast to two 128-bit lanes, the second shifted right by 4.
template <bool Q4>
inline __m512i block_pair_u8(const std::byte* blk) {
  if constexpr (Q4) {
    const __m512i q = _mm512_mask_broadcast_i32x4(
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2))), 0xFF00,
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kBlock<true> + 2)));
    return _mm512_and_si512(_mm512_srlv_epi64(q, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)), _mm512_set1_epi8(0x0f));
  } else {
    return _mm512_xor_si512(
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2))),
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kBlock<false> + 2)), 1),
        _mm512_set1_epi8(static_cast<char>(0x80)));
  }
}

// The last block alone (odd block count) as 32 unsigned bytes.
template <bool Q4>
inline __m256i block_u8(const std::byte* blk) {
  if constexpr (Q4) {
    const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
    return _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0f));
  } else {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)),
                            _mm256_set1_epi8(static_cast<char>(0x80)));
  }
}

// Rows [r0, r0 + R) against tokens [t0, t0 + T): per block pair and row, the
// unsigned weights and their scales are built once for the T tokens; the
// tokens' activation data are loaded once for the R rows. The next R rows
// are prefetched, spread over the loop.
template <bool Q4, int R, int T>
inline void q8_tile(const Args& A, int64_t r0, int64_t t0) {
  constexpr size_t kB = kBlock<Q4>;
  const std::byte* base = A.W + static_cast<size_t>(r0) * A.row_bytes;
  const size_t rb = A.row_bytes;
  const int64_t cols = A.nb * 32, np = A.nb / 2, nps = (A.nb + 1) / 2;
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  avx2::NextRows next(A.W, rb, A.rows, r0, R, np, A.l2);
  for (int64_t p = 0; p < np; ++p) {
    next.step();
    for (int r = 0; r < R; ++r) {
      const std::byte* blk = base + r * rb + p * 2 * kB;
      const __m512i u = block_pair_u8<Q4>(blk);
      uint16_t h0, h1;
      std::memcpy(&h0, blk, 2), std::memcpy(&h1, blk + kB, 2);
      const __m512 dw = _mm512_cvtph_ps(
          _mm256_mask_set1_epi16(_mm256_set1_epi16(static_cast<short>(h0)), 0xFF00, static_cast<short>(h1)));
      for (int t = 0; t < T; ++t) {
        const PairActs& q = A.pairs[(t0 + t) * nps + p];
        const __m512i s = _mm512_dpbusd_epi32(_mm512_load_si512(q.corr), u,
                                              _mm512_loadu_si512(A.xq + (t0 + t) * cols + p * 64));
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_load_ps(q.dx)), acc[r][t]);
      }
    }
  }
  if (A.nb % 2) {  // last block alone, in 256-bit registers
    const int64_t j = A.nb - 1;
    for (int r = 0; r < R; ++r) {
      const std::byte* blk = base + r * rb + j * kB;
      const __m256i u = block_u8<Q4>(blk);
      uint16_t h;
      std::memcpy(&h, blk, 2);
      const __m256 dw = _mm256_set1_ps(_cvtsh_ss(h));
      for (int t = 0; t < T; ++t) {
        const PairActs& q = A.pairs[(t0 + t) * nps + np];
        const __m256i s =
            _mm256_dpbusd_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(q.corr)), u,
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(A.xq + (t0 + t) * cols + j * 32)));
        const __m256 prod = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_load_ps(q.dx)));
        acc[r][t] = _mm512_add_ps(acc[r][t], _mm512_castps256_ps512(prod));
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) A.Y[(t0 + t) * A.rows + r0 + r] = _mm512_reduce_add_ps(acc[r][t]);
}

// Rows [r0, r0 + R) against all tokens, 4 at a time (4 rows x 4 tokens:
// 16 accumulators; 22% faster than 2 x 4 in L3, kernels_bench n=4).
template <bool Q4, int R>
inline void q8_rows(const Args& A, int64_t r0) {
  int64_t t = 0;
  for (; t + 4 <= A.n; t += 4) q8_tile<Q4, R, 4>(A, r0, t);
  switch (A.n - t) {
    case 3: q8_tile<Q4, R, 3>(A, r0, t); break;
    case 2: q8_tile<Q4, R, 2>(A, r0, t); break;
    case 1: q8_tile<Q4, R, 1>(A, r0, t); break;
    default: break;
  }
}

template <bool Q4>
void q8_chunk(const Args& A, int64_t b, int64_t e) {
  int64_t r = b;
  for (; r + 4 <= e; r += 4) q8_rows<Q4, 4>(A, r);
  for (; r < e; ++r) q8_rows<Q4, 1>(A, r);
}

// ---------------------------------------------------------------------------
// Q4_SB, tokens in pairs.
//
// A super-block's nibbles are 64 bytes holding the 32-element chunks c0 | c2
// (low nibbles) and c1 | c3 (high), plus 16 bytes holding c4. Each chunk is
// broadcast to both 256-bit halves of a zmm, and the pair's activations sit
// as [token a's chunk | token b's chunk], so one vpdpbusd per chunk serves
// two tokens. Int32 lane L of a half sums the 4 bytes at positions 4L..4L+3
// of each chunk: exactly sub-block L (elements with (i % 32) / 4 == L). The
// nibbles are unsigned (0..15); the accumulator starts at -8 * sum(x) of the
// sub-block, which leaves sum((q - 8) x). Then per pair one convert and one
// FMA with [sc_L * d * dx_a | sc_L * d * dx_b]. About 15 vector ops per row
// and super-block shared by the tokens and 8 per pair, against about 15 per
// token (256-bit) in the AVX2 tile.

// Per token pair and super-block: the activation chunks, the accumulator
// start and the activation scales, in the lanes the kernel uses them.
struct alignas(64) SBPair {
  int8_t x[5][64];   // chunk c: [token a | token b]
  int32_t corr[16];  // [a: -8 * sum of sub-block L, L = 0..7 | b: same]
  float dx[16];      // [a's d x 8 | b's d x 8]
};

thread_local std::vector<std::byte> g_sbpairs;

struct SBArgs {
  const std::byte* W;
  size_t row_bytes;
  int64_t rows, nsb, n, pairs;
  const SBPair* sp;  // [pair][nsb]
  float* Y;
  bool l2;
};

// Rows [r0, r0 + R) against P token pairs starting at pair k0.
template <int R, int P>
inline void q4sb_tile(const SBArgs& A, int64_t r0, int64_t k0) {
  const std::byte* base = A.W + static_cast<size_t>(r0) * A.row_bytes;
  const size_t rb = A.row_bytes;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i c4_shift = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
  __m512 acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < P; ++k) acc[r][k] = _mm512_setzero_ps();
  avx2::NextRows next(A.W, rb, A.rows, r0, R, A.nsb, A.l2);
  for (int64_t sb = 0; sb < A.nsb; ++sb) {
    next.step();
    for (int r = 0; r < R; ++r) {
      const auto& b = reinterpret_cast<const quant::BlockQ4SB*>(base + r * rb)[sb];
      const __m512i q = _mm512_loadu_si512(b.q);
      const __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      const __m512i w[5] = {
          _mm512_shuffle_i64x2(lo, lo, 0x44), _mm512_shuffle_i64x2(hi, hi, 0x44),
          _mm512_shuffle_i64x2(lo, lo, 0xee), _mm512_shuffle_i64x2(hi, hi, 0xee),
          _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q + 64))),
                                             c4_shift),
                           m4)};
      int64_t sc8;
      std::memcpy(&sc8, b.sc, 8);
      uint16_t dbits;
      std::memcpy(&dbits, &b.d, 2);
      const __m512 scale = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_set1_epi64x(sc8))),
                                         _mm512_cvtph_ps(_mm256_set1_epi16(static_cast<short>(dbits))));
      for (int k = 0; k < P; ++k) {
        const SBPair& x = A.sp[(k0 + k) * A.nsb + sb];
        __m512i s = _mm512_load_si512(x.corr);
        for (int c = 0; c < 5; ++c) s = _mm512_dpbusd_epi32(s, w[c], _mm512_load_si512(x.x[c]));
        acc[r][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(scale, _mm512_load_ps(x.dx)), acc[r][k]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < P; ++k) {
      const int64_t t = 2 * (k0 + k);
      A.Y[t * A.rows + r0 + r] = avx2::hsum(_mm512_castps512_ps256(acc[r][k]));
      if (t + 1 < A.n) A.Y[(t + 1) * A.rows + r0 + r] = avx2::hsum(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r][k]), 1)));
    }
}

template <int R>
inline void q4sb_rows(const SBArgs& A, int64_t r0) {
  int64_t k = 0;
  for (; k + 2 <= A.pairs; k += 2) q4sb_tile<R, 2>(A, r0, k);
  if (k < A.pairs) q4sb_tile<R, 1>(A, r0, k);
}

}  // namespace

void q8_q4_matmul(ThreadPool& pool, const TensorView& W, const QuantizedActs& xa, int64_t n, float* Y, int64_t chunk) {
  const int64_t rows = W.rows(), nb = W.cols() / 32, np = (nb + 1) / 2;
  const bool q4 = W.dtype == DType::Q4_0;
  PairActs* pairs = reinterpret_cast<PairActs*>(scratch(g_pairs, static_cast<size_t>(n * np) * sizeof(PairActs)));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t p = 0; p < np; ++p) {
      PairActs& q = pairs[t * np + p];
      std::memset(&q, 0, sizeof q);
      for (int h = 0; h < 2 && 2 * p + h < nb; ++h) {
        q.corr[8 * h] = (q4 ? -8 : -128) * xa.sum[t * nb + 2 * p + h];
        for (int i = 0; i < 8; ++i) q.dx[8 * h + i] = xa.d[t * nb + 2 * p + h];
      }
    }
  const Args A{W.data, dtype_row_bytes(W.dtype, W.cols()), rows, nb, n, xa.q, pairs, Y, prefetch_l2()};
  pool.parallel_for(rows, chunk, [&](int64_t b, int64_t e, int) {
    if (q4)
      q8_chunk<true>(A, b, e);
    else
      q8_chunk<false>(A, b, e);
  });
}

void q4sb_matmul(ThreadPool& pool, const TensorView& W, const SuperActs& xa, int64_t n, float* Y, int64_t chunk) {
  const int64_t rows = W.rows(), nsb = W.cols() / 160, pairs = (n + 1) / 2;
  SBPair* sp = reinterpret_cast<SBPair*>(scratch(g_sbpairs, static_cast<size_t>(pairs * nsb) * sizeof(SBPair)));
  for (int64_t k = 0; k < pairs; ++k)
    for (int64_t sb = 0; sb < nsb; ++sb) {
      SBPair& p = sp[k * nsb + sb];
      std::memset(&p, 0, sizeof p);
      for (int h = 0; h < 2 && 2 * k + h < n; ++h) {
        const int64_t t = 2 * k + h;
        const int8_t* q = xa.q + t * W.cols() + sb * 160;
        for (int c = 0; c < 5; ++c) std::memcpy(p.x[c] + 32 * h, q + 32 * c, 32);
        const int16_t* xs = xa.xs + (t * nsb + sb) * 16;  // 8 * sums over element pairs (i % 32) / 2
        for (int L = 0; L < 8; ++L) p.corr[8 * h + L] = -(xs[2 * L] + xs[2 * L + 1]);
        for (int i = 0; i < 8; ++i) p.dx[8 * h + i] = xa.d[t * nsb + sb];
      }
    }
  const SBArgs A{W.data, dtype_row_bytes(W.dtype, W.cols()), rows, nsb, n, pairs, sp, Y, prefetch_l2()};
  pool.parallel_for(rows, chunk, [&](int64_t b, int64_t e, int) {
    int64_t r = b;
    for (; r + 4 <= e; r += 4) q4sb_rows<4>(A, r);  // 4 rows: 10% faster than 2 (activation loads shared)
    for (; r < e; ++r) q4sb_rows<1>(A, r);
  });
}

}  // namespace huginn::cpu::vnni
