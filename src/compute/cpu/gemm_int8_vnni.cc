// Prefill GEMM for block-quantized weights on AVX-512 VNNI (see kernels_vnni.h).
//
// Layout. Weights go through a panel of kRows = 48 rows per K block,
// converted right before use into [k-step][48 rows][4 bytes]: one k-step is
// 4 columns (Q8_0 / Q4_0, int8) or 2 columns (Q4_SB, int16), so a row vector
// of 16 rows is one aligned 64-byte load and each of its 32-bit lanes is one
// row's dot-product piece. The activations are packed once per call as
// [4-token tile][k-step][token][4 bytes], and a token's 4 bytes are broadcast
// to all lanes. The micro-tile is 48 rows x 4 tokens: 12 int32 accumulators
// for the current block and 12 f32 ones.
//
// Q8_0 / Q4_0: vpdpbusd multiplies unsigned by signed bytes, so the weights
// (signed, q or q - 8) are stored with 128 added (xor 0x80) and each block's
// int32 accumulator starts at -128 * sum(x q) of that token's block, which
// cancels the offset exactly. Per block of 32: acc_f += f32(acc_i) * (dw * dx).
//
// Q4_SB: its sub-scales vary every 4 elements within a super-block, so the
// weights are widened to int16 sc * (q - 8) (|.| <= 1016) and vpdpwssd takes
// pairs; one f32 update per super-block of 160 (the activations share one
// scale per super-block, as in the decode kernel).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "compute/cpu/kernels.h"
#include "compute/cpu/kernels_avx2.h"
#include "compute/cpu/kernels_vnni.h"
#include "compute/cpu/scratch.h"
#include "compute/cpu/simd_avx2.h"
#include "compute/quant.h"

namespace huginn::cpu::vnni {

namespace {

constexpr int kRv = 3;             // row vectors (16 rows each) per panel
constexpr int64_t kRows = 16 * kRv;  // weight rows per panel
constexpr int kT = 4;              // tokens per micro-tile
constexpr int64_t kStepBytes = kRows * 4;  // one k-step of a panel
constexpr int64_t kKcI8 = 512;     // K block, Q8_0 / Q4_0 (16 blocks of 32)
constexpr int64_t kKcSB = 320;     // K block, Q4_SB (2 super-blocks)

// Block j of a Q8_0 / Q4_0 row as 32 signed bytes.
inline __m256i block_i8(DType dt, const std::byte* row, int64_t j) {
  if (dt == DType::Q8_0) {
    const auto* b = reinterpret_cast<const quant::BlockQ8_0*>(row) + j;
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->q));
  }
  const auto& b = reinterpret_cast<const quant::BlockQ4_0*>(row)[j];
  return _mm256_set_m128i(avx2::q4_0_half(b, 1), avx2::q4_0_half(b, 0));
}

inline float block_scale(DType dt, const std::byte* row, int64_t j) {
  return _cvtsh_ss(dt == DType::Q8_0 ? reinterpret_cast<const quant::BlockQ8_0*>(row)[j].d
                                    : reinterpret_cast<const quant::BlockQ4_0*>(row)[j].d);
}

// Rows [0, nr) of the panel starting at `w` (rows beyond are padding: zero
// weights, zero scales), columns [k0, k0 + len), into `panel` and the block
// scales dw[block][kRows].
void convert_i8(DType dt, const std::byte* w, size_t row_bytes, int64_t nr, int64_t k0, int64_t len,
                std::byte* panel, float* dw) {
  const int64_t j0 = k0 / 32, nb = len / 32;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t r = 0; r < kRows; r += 4) {
    const std::byte* row[4];
    for (int i = 0; i < 4; ++i) row[i] = r + i < nr ? w + static_cast<size_t>(r + i) * row_bytes : nullptr;
    for (int64_t j = 0; j < nb; ++j) {
      __m256i v[4];
      for (int i = 0; i < 4; ++i) {
        v[i] = _mm256_xor_si256(row[i] ? block_i8(dt, row[i], j0 + j) : _mm256_setzero_si256(), flip);
        dw[j * kRows + r + i] = row[i] ? block_scale(dt, row[i], j0 + j) : 0.0f;
      }
      avx2::store_4x8(panel + (j * 8 * kRows + r) * 4, kStepBytes, v[0], v[1], v[2], v[3]);
    }
  }
}

// Q4_SB: the same for super-blocks, as int16 sc * (q - 8) in column pairs.
void convert_sb(const std::byte* w, size_t row_bytes, int64_t nr, int64_t k0, int64_t len, std::byte* panel,
                float* dw) {
  const int64_t s0 = k0 / 160, ns = len / 160;
  // Sub-scale j applies to elements 4j..4j+3 of each 32-element group: bytes
  // 0-15 of a group take sc[0..3], bytes 16-31 sc[4..7], each 4 times.
  const __m128i lo_idx = _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m128i hi_idx = _mm_add_epi8(lo_idx, _mm_set1_epi8(4));
  for (int64_t r = 0; r < kRows; r += 4) {
    const quant::BlockQ4SB* row[4];
    for (int i = 0; i < 4; ++i)
      row[i] = r + i < nr ? reinterpret_cast<const quant::BlockQ4SB*>(w + static_cast<size_t>(r + i) * row_bytes)
                          : nullptr;
    for (int64_t s = 0; s < ns; ++s) {
      __m256i sl[4], sh[4];
      for (int i = 0; i < 4; ++i) {
        if (!row[i]) {
          sl[i] = sh[i] = _mm256_setzero_si256();
          dw[s * kRows + r + i] = 0.0f;
          continue;
        }
        const quant::BlockQ4SB& b = row[i][s0 + s];
        const __m128i sc = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.sc));
        sl[i] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, lo_idx));
        sh[i] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, hi_idx));
        dw[s * kRows + r + i] = _cvtsh_ss(b.d);
      }
      for (int m = 0; m < 5; ++m) {
        __m256i lo[4], hi[4];
        for (int i = 0; i < 4; ++i) {
          const __m256i g = row[i] ? avx2::q4sb_group(row[i][s0 + s], m) : _mm256_setzero_si256();
          lo[i] = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(g)), sl[i]);
          hi[i] = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(g, 1)), sh[i]);
        }
        const int64_t k2 = s * 80 + m * 16;  // column pair of the group's first element
        avx2::store_4x8(panel + (k2 * kRows + r) * 4, kStepBytes, lo[0], lo[1], lo[2], lo[3]);
        avx2::store_4x8(panel + ((k2 + 8) * kRows + r) * 4, kStepBytes, hi[0], hi[1], hi[2], hi[3]);
      }
    }
  }
}

// C[token][kRows] (+)= one panel against kT tokens over nblk scale blocks
// (kSteps k-steps each). xp: the tile's packed activations at the first
// k-step (kT dwords per step); dx / corr: their per-block scales and int32
// starting values (kT per block); dw: the panel's scales, kRows per block.
// Not inlined, so the 24 accumulators get the whole register file.
template <bool kSB>
__attribute__((noinline)) void micro(const std::byte* wp, const int32_t* xp, const float* dw, const float* dx,
                                     const int32_t* corr, int64_t nblk, float* C, bool accumulate) {
  constexpr int kSteps = kSB ? 80 : 8;
  __m512 f[kRv][kT];
  for (int t = 0; t < kT; ++t)
    for (int v = 0; v < kRv; ++v) f[v][t] = accumulate ? _mm512_loadu_ps(C + t * kRows + v * 16) : _mm512_setzero_ps();
  for (int64_t b = 0; b < nblk; ++b, dw += kRows, dx += kT, corr += kT) {
    __m512i a[kRv][kT];
    for (int t = 0; t < kT; ++t) {
      const __m512i c0 = kSB ? _mm512_setzero_si512() : _mm512_set1_epi32(corr[t]);
      for (int v = 0; v < kRv; ++v) a[v][t] = c0;
    }
    for (int s = 0; s < kSteps; ++s, wp += kStepBytes, xp += kT) {
      __m512i w[kRv];
      for (int v = 0; v < kRv; ++v) w[v] = _mm512_load_si512(wp + v * 64);
      for (int t = 0; t < kT; ++t) {
        const __m512i x = _mm512_set1_epi32(xp[t]);
        for (int v = 0; v < kRv; ++v)
          a[v][t] = kSB ? _mm512_dpwssd_epi32(a[v][t], w[v], x) : _mm512_dpbusd_epi32(a[v][t], w[v], x);
      }
    }
    for (int v = 0; v < kRv; ++v) {
      const __m512 d = _mm512_loadu_ps(dw + v * 16);
      for (int t = 0; t < kT; ++t)
        f[v][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[v][t]), _mm512_mul_ps(d, _mm512_set1_ps(dx[t])), f[v][t]);
    }
  }
  for (int t = 0; t < kT; ++t)
    for (int v = 0; v < kRv; ++v) _mm512_storeu_ps(C + t * kRows + v * 16, f[v][t]);
}

// Per-call activation buffers (owned by the calling thread, shared by the
// workers during the call).
struct Acts {
  std::vector<int8_t> q;
  std::vector<float> d, dx;
  std::vector<int32_t> sum, xp, corr;
  std::vector<int16_t> xs;
};
thread_local Acts g_acts;

}  // namespace

void gemm(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y) {
  const DType dt = W.dtype;
  const bool sb = dt == DType::Q4_SB;
  const int64_t rows = W.rows(), K = W.cols();
  const size_t row_bytes = dtype_row_bytes(dt, K);
  const int64_t np = (n + kT - 1) / kT * kT;   // tokens padded to whole tiles
  const int64_t bsz = sb ? 160 : 32, nblk = K / bsz;
  const int64_t kpd = sb ? 2 : 4;              // columns per packed dword
  const int64_t steps = K / kpd;

  // Quantize (same numbers as the decode kernels) and pack, in parallel over
  // tokens, tile by tile: xp[tile][step][kT] = a token's 4 bytes (Q4_SB: 2
  // int16) of that step, and dx / corr [tile][block][kT], so each micro-tile
  // reads its activations as one sequential stream.
  Acts& A = g_acts;
  int8_t* q = scratch(A.q, static_cast<size_t>(n * K));
  float* d = scratch(A.d, static_cast<size_t>(n * nblk));
  int32_t* sum = sb ? nullptr : scratch(A.sum, static_cast<size_t>(n * nblk));
  int16_t* xs = sb ? scratch(A.xs, static_cast<size_t>(n * nblk * 16)) : nullptr;
  int32_t* xp = scratch(A.xp, static_cast<size_t>(steps * np));
  float* dx = scratch(A.dx, static_cast<size_t>(nblk * np));
  int32_t* corr = scratch(A.corr, static_cast<size_t>(nblk * np));
  auto at_step = [&](int64_t s, int64_t t) { return (t / kT) * steps * kT + s * kT + t % kT; };
  auto at_blk = [&](int64_t j, int64_t t) { return (t / kT) * nblk * kT + j * kT + t % kT; };
  pool.parallel_for(np, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      if (t >= n) {  // padding token: contributes exact zeros
        for (int64_t s = 0; s < steps; ++s) xp[at_step(s, t)] = 0;
        for (int64_t j = 0; j < nblk; ++j) dx[at_blk(j, t)] = 0.0f, corr[at_blk(j, t)] = 0;
        continue;
      }
      const int8_t* qt = q + t * K;
      if (sb) {
        SuperActs sa{1, K, q + t * K, d + t * nblk, xs + t * nblk * 16};
        avx2::quantize_acts_sb(X + t * K, 1, K, sa);
        for (int64_t s = 0; s < steps; ++s)
          xp[at_step(s, t)] = static_cast<int32_t>(static_cast<uint16_t>(static_cast<int16_t>(qt[2 * s])) |
                                                (static_cast<uint32_t>(static_cast<uint16_t>(qt[2 * s + 1])) << 16));
        for (int64_t j = 0; j < nblk; ++j) dx[at_blk(j, t)] = d[t * nblk + j], corr[at_blk(j, t)] = 0;
      } else {
        QuantizedActs qa{1, K, q + t * K, d + t * nblk, sum + t * nblk};
        avx2::quantize_acts(X + t * K, 1, K, qa);
        for (int64_t s = 0; s < steps; ++s) std::memcpy(&xp[at_step(s, t)], qt + 4 * s, 4);
        for (int64_t j = 0; j < nblk; ++j) dx[at_blk(j, t)] = d[t * nblk + j], corr[at_blk(j, t)] = -128 * sum[t * nblk + j];
      }
    }
  });

  const int64_t kc = sb ? kKcSB : kKcI8;
  const int64_t panels = (rows + kRows - 1) / kRows;
  pool.parallel_for(panels, 1, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<std::byte> panel_buf;
    thread_local std::vector<float> dw_buf, c_buf;
    std::byte* panel = scratch(panel_buf, static_cast<size_t>(kc / kpd * kStepBytes));
    float* dw = scratch(dw_buf, static_cast<size_t>(kc / 32 * kRows));
    float* C = scratch(c_buf, static_cast<size_t>(np * kRows));
    for (int64_t p = b; p < e; ++p) {
      const int64_t r0 = p * kRows, nr = std::min<int64_t>(kRows, rows - r0);
      const std::byte* w = W.data + static_cast<size_t>(r0) * row_bytes;
      for (int64_t k0 = 0; k0 < K; k0 += kc) {
        const int64_t len = std::min(kc, K - k0);
        if (sb)
          convert_sb(w, row_bytes, nr, k0, len, panel, dw);
        else
          convert_i8(dt, w, row_bytes, nr, k0, len, panel, dw);
        // The next K block's rows (or the next panel's first one), fetched
        // into L2 while this one computes, spread over the tiles: rows read
        // in pieces of a few hundred bytes are too short for the hardware
        // prefetcher.
        const bool next_panel = k0 + kc >= K;
        const int64_t pr0 = next_panel ? r0 + kRows : r0, pk0 = next_panel ? 0 : k0 + kc;
        const int64_t pnr = pr0 < rows ? std::min(kRows, rows - pr0) : 0;
        const size_t poff = dtype_row_bytes(dt, pk0), plen = dtype_row_bytes(dt, std::min(kc, K - pk0));
        // +1: the range need not start on a line boundary.
        const int64_t lines = static_cast<int64_t>((plen + 63) / 64) + 1;
        avx2::RowPrefetch pf(pnr > 0 ? W.data + static_cast<size_t>(pr0) * row_bytes + poff : W.data, row_bytes, pnr,
                             lines, np / kT);
        for (int64_t t0 = 0; t0 < np; t0 += kT) {
          pf.step();
          const int32_t* xk = xp + at_step(k0 / kpd, t0);
          const int64_t j0 = at_blk(k0 / bsz, t0);
          if (sb)
            micro<true>(panel, xk, dw, dx + j0, corr + j0, len / bsz, C + t0 * kRows, k0 > 0);
          else
            micro<false>(panel, xk, dw, dx + j0, corr + j0, len / bsz, C + t0 * kRows, k0 > 0);
        }
      }
      for (int64_t t = 0; t < n; ++t)
        std::memcpy(Y + t * rows + r0, C + t * kRows, static_cast<size_t>(nr) * sizeof(float));
    }
  });
}

}  // namespace huginn::cpu::vnni
