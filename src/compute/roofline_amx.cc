// The AMX probe's inner loop (bf16 tile products), compiled for AMX (called
// only after cpu::use_amx(), which has asked the OS for the tile state).
#include <immintrin.h>

#include <cstdint>

#include "compute/cpu/kernels_amx.h"

namespace huginn::probe {

// Four independent accumulators, as the GEMM's 2x2 block, operands loaded
// once: the tile unit's own rate, 16 x 16 x 32 multiply-adds per product.
float amx_bf16_loop(int64_t iters) {
  const cpu::amx::TileConfig cfg;
  alignas(64) static thread_local uint16_t ab[2][16 * 32];
  alignas(64) static thread_local float c[16 * 16];
  for (int i = 0; i < 16 * 32; ++i) ab[0][i] = ab[1][i] = 0x3c00;  // 2^-7
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ab[0], 64);
  _tile_loadd(5, ab[0] + 16 * 16, 64);
  _tile_loadd(6, ab[1], 64);
  _tile_loadd(7, ab[1] + 16 * 16, 64);
  for (int64_t k = 0; k < iters; ++k) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, 64);
  _tile_release();
  return c[0];
}

}  // namespace huginn::probe
