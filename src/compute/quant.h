// Block-quantized weight formats. Blocks of 32 divide all of Huginn's inner
// dimensions (5280, 10560, 17920), unlike 256-element super-blocks.
//   Q8_0: 32 int8 values and one f16 scale d:           x = d * q
//   Q4_0: 32 4-bit values (packed two per byte) and d:   x = d * (q - 8)
// Row layout: cols/32 consecutive blocks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "huginn/tensor.h"

namespace huginn::quant {

inline constexpr int64_t kQ8_0Block = 32;
inline constexpr int64_t kQ4_0Block = 32;

struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t q[32];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_0 {
  uint16_t d;      // f16 scale
  uint8_t q[16];   // element j in low nibble of q[j], element j+16 in high nibble
};
static_assert(sizeof(BlockQ4_0) == 18);

// Scalar reference implementations (also used by `huginn quantize`).
void quantize_row(DType t, const float* src, int64_t n, std::byte* dst);
void dequantize_row(DType t, const std::byte* src, int64_t n, float* dst);

}  // namespace huginn::quant
