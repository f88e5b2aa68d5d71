// AVX-512F kernels (defined in *_avx512.cc, compiled with -mavx512f and the
// AVX2 flags). Call only when cpu::use_avx512() is true.
#pragma once

#include <cstddef>
#include <cstdint>

#include "huginn/tensor.h"

namespace huginn::cpu::avx512 {

// The prefill GEMM's weight panels for this path hold kPanelRows rows in
// chunks of 16 columns, [k / 16][row][16]: a chunk row is one 64-byte vector,
// so converting a row needs no shuffles, and the micro-kernel still reads the
// panel as one stream.
inline constexpr int kPanelRows = 6;

// Columns [k0, k0 + len) of one weight row to f32, into the row's slot of a
// panel (dst = the slot in the first chunk; chunks kPanelRows * 16 floats
// apart). row == nullptr writes zeros (padding rows). Quantized rows need k0
// and len in whole blocks of 32.
void convert_row(DType dt, const std::byte* row, int64_t k0, int64_t len, float* dst);

// C (+)= Wp * Xt for one weight panel and nv in 1..4 token panels of 16
// (Xt[panel][k][16], panels xstride floats apart), over kc columns. C holds nv
// blocks of [6 rows][16 tokens], one per token panel. pf[0..npf): cache lines
// to prefetch into L2, one every 4 k-steps.
void gemm_micro(int nv, const float* wp, const float* xt, int64_t xstride, int64_t kc, float* C, bool accumulate,
                const char* const* pf, int npf);

}  // namespace huginn::cpu::avx512
