#include "huginn/tensor.h"

#include <cmath>
#include <cstring>

#include "compute/quant.h"
#include "huginn/error.h"

namespace huginn {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_SB: return "Q4_SB";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view n) {
  if (n == "F32") return DType::F32;
  if (n == "F16") return DType::F16;
  if (n == "BF16") return DType::BF16;
  if (n == "Q8_0") return DType::Q8_0;
  if (n == "Q4_0") return DType::Q4_0;
  if (n == "Q4_SB") return DType::Q4_SB;
  return std::nullopt;
}

int64_t dtype_block_size(DType t) {
  switch (t) {
    case DType::Q8_0: return quant::kQ8_0Block;
    case DType::Q4_0: return quant::kQ4_0Block;
    case DType::Q4_SB: return quant::kQ4SBBlock;
    default: return 1;
  }
}

size_t dtype_row_bytes(DType t, int64_t cols) {
  switch (t) {
    case DType::F32: return static_cast<size_t>(cols) * 4;
    case DType::F16:
    case DType::BF16: return static_cast<size_t>(cols) * 2;
    case DType::Q8_0: return static_cast<size_t>(cols / quant::kQ8_0Block) * sizeof(quant::BlockQ8_0);
    case DType::Q4_0: return static_cast<size_t>(cols / quant::kQ4_0Block) * sizeof(quant::BlockQ4_0);
    case DType::Q4_SB: return static_cast<size_t>(cols / quant::kQ4SBBlock) * sizeof(quant::BlockQ4SB);
  }
  return 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

int64_t TensorView::cols() const {
  if (shape.size() <= 1) return numel();
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while ((man & 0x400) == 0);
      u = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | man << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00);  // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
  if (a < 0x38800000u) {  // subnormal or zero in half
    float af;
    std::memcpy(&af, &a, 4);
    // 2^-24 is the half subnormal step; nearbyint gives round-to-even.
    uint32_t m = static_cast<uint32_t>(std::nearbyint(af * 16777216.0f));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // round to nearest even on the dropped 13 bits
  return static_cast<uint16_t>(sign | ((r - 0x38000000u) >> 13));
}

void to_f32(DType t, const std::byte* src, int64_t n, float* dst) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::BF16: {
      const auto* s = reinterpret_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      const auto* s = reinterpret_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_SB: quant::dequantize_row(t, src, n, dst); return;
  }
  throw Error("to_f32: unsupported dtype");
}

}  // namespace huginn
