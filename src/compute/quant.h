// Block-quantized weight formats. Blocks of 32 divide all of Huginn's inner
// dimensions (5280, 10560, 17920), unlike 256-element super-blocks.
//   Q8_0: 32 int8 values and one f16 scale d:           x = d * q
//   Q4_0: 32 4-bit values (packed two per byte) and d:   x = d * (q - 8)
//   Q4_SB: super-blocks of 160 = 5 x 32 4-bit values (160 divides 5280 and
//     17920; 256 does not), an f16 scale d and eight int8 sub-scales:
//     x = d * sc[j] * (q - 8), sub-block j = the elements i with (i % 32) / 4 == j.
//     Strided sub-blocks of 20 are what lets the AVX2 kernel sum a whole
//     super-block in int16 lanes and apply all eight sub-scales with one madd.
// Row layout: consecutive blocks.
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

inline constexpr int64_t kQ4SBBlock = 160;

struct BlockQ4SB {
  uint16_t d;      // f16 super-block scale
  int8_t sc[8];    // sub-block scales
  // Nibbles in natural order per 32-element group: element i < 128 sits in
  // q[(i / 64) * 32 + i % 32], low nibble when i % 64 < 32; element 128 + i
  // (i < 32) in q[64 + i % 16], low nibble when i < 16.
  uint8_t q[80];
};
static_assert(sizeof(BlockQ4SB) == 90);

// Where element i (0..159) of a Q4_SB block sits: byte of q, high nibble or not.
inline int q4sb_byte(int i) { return i < 128 ? (i / 64) * 32 + i % 32 : 64 + (i - 128) % 16; }
inline bool q4sb_high(int i) { return i < 128 ? i % 64 >= 32 : i >= 144; }
inline int q4sb_nibble(const BlockQ4SB& b, int i) {
  return q4sb_high(i) ? b.q[q4sb_byte(i)] >> 4 : b.q[q4sb_byte(i)] & 0x0f;
}

// Scalar reference implementations (also used by `huginn quantize`).
void quantize_row(DType t, const float* src, int64_t n, std::byte* dst);
void dequantize_row(DType t, const std::byte* src, int64_t n, float* dst);

}  // namespace huginn::quant
