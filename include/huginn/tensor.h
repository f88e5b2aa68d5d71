// Element types and read-only weight views shared by the loader and the
// compute backends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace huginn {

enum class DType : uint8_t {
  F32,
  F16,
  BF16,
  // Block-quantized formats (see src/compute/quant.h).
  Q8_0,
  Q4_0,
  Q4_SB,
};

// Name as written in safetensors headers ("F32", "BF16", ...).
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);
// Bytes used by one row of `cols` elements (handles block formats; cols must
// be a multiple of the block size for those).
size_t dtype_row_bytes(DType t, int64_t cols);
// Elements per quantization block (1 for plain types).
int64_t dtype_block_size(DType t);

// A tensor whose bytes live elsewhere (usually a memory-mapped file).
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  // Elements per row for a 2-D [rows, cols] weight; numel() for vectors.
  int64_t cols() const;
  std::string shape_string() const;
};

// Exact conversions used everywhere a reduced-precision value is read.
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
// Round-to-nearest-even, NaN preserved (as torch does).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts `n` elements of a plain (F32/F16/BF16) row to float32.
void to_f32(DType t, const std::byte* src, int64_t n, float* dst);

}  // namespace huginn
