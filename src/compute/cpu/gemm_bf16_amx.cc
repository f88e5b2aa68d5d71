// Prefill GEMM for BF16 weights on AMX tiles (see kernels_amx.h).
//
// Tiles: four f32 accumulators C (16 weight rows x 16 tokens each, a 32 x 32
// block), two weight tiles A (16 rows x 32 columns, loaded straight from the
// weight rows, no conversion: AMX reads bf16 rows as they are stored) and two
// activation tiles B (32 columns x 16 tokens, stored as 16 column pairs of
// [16 tokens][2 bf16], the pair layout the tile product wants). Per 32
// columns: two A loads, then for each of the three activation parts two B
// loads and four tile products.
//
// Blocking: a work item is 128 weight rows; it walks K in blocks of 512
// columns, and for each block every 32-row pair against every 32-token group,
// keeping C in a 32 KiB buffer between blocks. A block's activations (3 parts
// x 64 tokens x 512 columns, 192 KiB) stay in L2 for all the thread's items;
// a weight block (128 KiB) is read from DRAM once (prefetched during the
// previous block) and from L2 for the second token group.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "compute/cpu/kernels.h"
#include "compute/cpu/kernels_amx.h"
#include "compute/cpu/kernels_avx2.h"
#include "compute/cpu/scratch.h"
#include "compute/cpu/simd_avx2.h"

namespace huginn::cpu::amx {

namespace {

constexpr int64_t kKc = 512;        // K block (16 chunks of 32 columns)
constexpr int64_t kItemRows = 128;  // weight rows per work item (4 row pairs)
constexpr int64_t kGroup = 32;      // tokens per group (two B tiles)
constexpr int64_t kTile = 16 * 16;  // floats in a C tile

// x rounded to bf16 (nearest even), left in the high half of each lane.
inline __m512i round_bf16(__m512i bits) {
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  return _mm512_and_si512(r, _mm512_set1_epi32(static_cast<int>(0xffff0000u)));
}

// 16 f32 as three bf16 vectors with hi + mid + lo == x exactly: each rounding
// keeps the top 8 significant bits of what is left, and after two of them at
// most 8 bits of the 24 remain, which the third takes as they are.
inline void split3(__m512 x, __m256i part[3]) {
  __m512i bits = _mm512_castps_si512(x);
  for (int p = 0; p < 3; ++p) {
    const __m512i h = p < 2 ? round_bf16(bits) : bits;
    part[p] = _mm512_cvtepi32_epi16(_mm512_srli_epi32(h, 16));
    if (p < 2) bits = _mm512_castps_si512(_mm512_sub_ps(_mm512_castsi512_ps(bits), _mm512_castsi512_ps(h)));
  }
}

thread_local std::vector<std::byte> g_xb;
thread_local std::vector<float> g_rem;

}  // namespace

void gemm(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y) {
  const int64_t rows = W.rows(), K = W.cols();
  const size_t rb = dtype_row_bytes(DType::BF16, K);
  const int64_t ng = (n + kGroup - 1) / kGroup, ntt = 2 * ng;  // token groups, token tiles
  const int64_t rows_amx = rows / 32 * 32;

  // Pack X: xb[token group][chunk of 32 columns][part][tile of the group]
  // [column pair][16 tokens][2 bf16], padding tokens zero, so the six B tiles
  // of one chunk are 6 KiB in a row and a pass over a K block reads one
  // sequential stream (with the parts and tiles in separate arrays, six
  // streams, the B loads took longer than the tile products). In parallel
  // over token tiles x K blocks.
  const int64_t nch = K / 32;
  constexpr size_t kChunkBytes = 6 * 1024;
  std::byte* xb = scratch(g_xb, static_cast<size_t>(ng * nch) * kChunkBytes);
  const int64_t kblocks = (K + kKc - 1) / kKc;
  pool.parallel_for(ntt * kblocks, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t tt = it / kblocks, k0 = (it % kblocks) * kKc, k1 = std::min(K, k0 + kKc);
      for (int64_t t0 = 0; t0 < 16; t0 += 4)
        for (int64_t k = k0; k < k1; k += 16) {
          __m256i parts[4][3];
          for (int i = 0; i < 4; ++i) {
            const int64_t t = tt * 16 + t0 + i;
            if (t < n) {
              split3(_mm512_loadu_ps(X + t * K + k), parts[i]);
            } else {
              parts[i][0] = parts[i][1] = parts[i][2] = _mm256_setzero_si256();
            }
          }
          for (int p = 0; p < 3; ++p)
            avx2::store_4x8(xb + static_cast<size_t>((tt / 2) * nch + k / 32) * kChunkBytes + (p * 2 + tt % 2) * 1024 +
                                static_cast<size_t>((k / 2) % 16) * 64 + t0 * 4,
                            64,
                            parts[0][p], parts[1][p], parts[2][p], parts[3][p]);
        }
    }
  });

  const TileConfig cfg;
  const int64_t items = (rows_amx + kItemRows - 1) / kItemRows;
  pool.parallel_for(items, 1, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<float> c_buf;
    float* cbuf = scratch(c_buf, static_cast<size_t>(kItemRows / 32 * ng * 4 * kTile));
    _tile_loadconfig(&cfg);
    for (int64_t item = b; item < e; ++item) {
      const int64_t r0 = item * kItemRows, nrp = std::min(kItemRows, rows_amx - r0) / 32;
      for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t chunks = std::min(kKc, K - k0) / 32;
        for (int64_t rp = 0; rp < nrp; ++rp) {
          const std::byte* a0 = W.data + static_cast<size_t>(r0 + rp * 32) * rb + k0 * 2;
          const std::byte* a1 = a0 + 16 * rb;
          // The next row pair's block of weights (after the last pair: the
          // next block's first, or the next item's), fetched into L2 while
          // this pair computes, spread over its steps. A whole block ahead
          // measured slower: lines prefetched that early were partly gone.
          int64_t pr0 = r0 + (rp + 1) * 32, pk0 = k0;
          if (rp + 1 == nrp) pr0 = k0 + kKc < K ? r0 : r0 + kItemRows, pk0 = k0 + kKc < K ? k0 + kKc : 0;
          const bool pf_rows = pr0 < rows_amx;
          avx2::RowPrefetch pf(pf_rows ? W.data + static_cast<size_t>(pr0) * rb + pk0 * 2 : W.data, rb, pf_rows ? 32 : 0,
                               std::min(kKc, K - pk0) * 2 / 64, ng * chunks);
          for (int64_t g = 0; g < ng; ++g) {
            float* cb = cbuf + (rp * ng + g) * 4 * kTile;
            if (k0 == 0) {
              _tile_zero(0);
              _tile_zero(1);
              _tile_zero(2);
              _tile_zero(3);
            } else {
              _tile_loadd(0, cb, 64);
              _tile_loadd(1, cb + kTile, 64);
              _tile_loadd(2, cb + 2 * kTile, 64);
              _tile_loadd(3, cb + 3 * kTile, 64);
            }
            const std::byte* bp = xb + static_cast<size_t>(g * nch + k0 / 32) * kChunkBytes;
            for (int64_t c = 0; c < chunks; ++c) {
              pf.step();
              _tile_loadd(4, a0 + c * 64, rb);
              _tile_loadd(5, a1 + c * 64, rb);
              for (int p = 0; p < 3; ++p) {
                const std::byte* bc = bp + c * kChunkBytes + p * 2048;
                _tile_loadd(6, bc, 64);
                _tile_loadd(7, bc + 1024, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
              }
            }
            _tile_stored(0, cb, 64);
            _tile_stored(1, cb + kTile, 64);
            _tile_stored(2, cb + 2 * kTile, 64);
            _tile_stored(3, cb + 3 * kTile, 64);
          }
        }
      }
      // C tiles -> Y: tile j of a group holds rows 16 * (j / 2) + [0, 16) x
      // tokens 16 * (j % 2) + [0, 16), row-major.
      for (int64_t rp = 0; rp < nrp; ++rp)
        for (int64_t g = 0; g < ng; ++g)
          for (int j = 0; j < 4; ++j) {
            const float* ct = cbuf + ((rp * ng + g) * 4 + j) * kTile;
            const int64_t rbase = r0 + rp * 32 + 16 * (j / 2), tbase = g * kGroup + 16 * (j % 2);
            for (int64_t tc = 0; tc < 16 && tbase + tc < n; ++tc) {
              float* y = Y + (tbase + tc) * rows + rbase;
              for (int64_t i = 0; i < 16; ++i) y[i] = ct[i * 16 + tc];
            }
          }
    }
    _tile_release();
  });

  // The last rows % 32 rows: the f32 GEMM into a scratch, then into Y.
  if (const int64_t rem = rows - rows_amx; rem > 0) {
    TensorView tail;
    tail.dtype = DType::BF16;
    tail.shape = {rem, K};
    tail.data = W.data + static_cast<size_t>(rows_amx) * rb;
    tail.nbytes = static_cast<size_t>(rem) * rb;
    float* tmp = scratch(g_rem, static_cast<size_t>(n * rem));
    avx2::gemm(pool, tail, X, n, tmp, use_avx512());
    for (int64_t t = 0; t < n; ++t) std::memcpy(Y + t * rows + rows_amx, tmp + t * rem, static_cast<size_t>(rem) * 4);
  }
}

}  // namespace huginn::cpu::amx
