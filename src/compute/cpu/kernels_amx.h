// AMX kernels (defined in *_amx.cc, compiled with -mamx-tile -mamx-bf16 and
// the AVX-512 flags). Call only when cpu::use_amx() is true.
#pragma once

#include <cstdint>

#include "compute/cpu/thread_pool.h"
#include "huginn/tensor.h"

namespace huginn::cpu::amx {

// LDTILECFG's 64-byte operand (palette 1), every tile 16 rows x 64 bytes:
// what the GEMM and the roofline probe use for all eight tiles.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

// Prefill GEMM for BF16 weights, Y[n, rows] = X[n, cols] * W^T, as exact as
// the f32 GEMM: each f32 activation is split into three bf16 parts,
// x = hi + mid + lo exactly, and the tile unit multiplies every part by the
// bf16 weight (a bf16 x bf16 product is exact in f32) and sums in f32.
// That is three tile products where plain bf16 needs one, still several times
// the f32 FMA throughput. Requires cols % 32 == 0; rows beyond the last
// multiple of 32 go through the f32 GEMM. Any n; cpu::matmul hands it at
// most 256 tokens at a time.
void gemm(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y);

}  // namespace huginn::cpu::amx
