#include "compute/quant.h"

#include <algorithm>
#include <cmath>

#include "huginn/error.h"

namespace huginn::quant {

void quantize_row(DType t, const float* x, int64_t n, std::byte* dst) {
  if (t == DType::Q8_0) {
    auto* b = reinterpret_cast<BlockQ8_0*>(dst);
    for (int64_t i = 0; i < n / kQ8_0Block; ++i, x += kQ8_0Block) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
      float d = amax / 127.0f;
      b[i].d = f32_to_f16(d);
      float id = d != 0 ? 1.0f / d : 0.0f;
      for (int j = 0; j < 32; ++j) b[i].q[j] = static_cast<int8_t>(std::lround(x[j] * id));
    }
    return;
  }
  if (t == DType::Q4_0) {
    auto* b = reinterpret_cast<BlockQ4_0*>(dst);
    for (int64_t i = 0; i < n / kQ4_0Block; ++i, x += kQ4_0Block) {
      // The signed extreme maps to -8 so that the full 16 levels are used.
      float maxv = 0, amax = 0;
      for (int j = 0; j < 32; ++j) {
        if (std::fabs(x[j]) > amax) {
          amax = std::fabs(x[j]);
          maxv = x[j];
        }
      }
      float d = maxv / -8.0f;
      b[i].d = f32_to_f16(d);
      float id = d != 0 ? 1.0f / d : 0.0f;
      for (int j = 0; j < 16; ++j) {
        int lo = std::clamp(static_cast<int>(std::floor(x[j] * id + 8.5f)), 0, 15);
        int hi = std::clamp(static_cast<int>(std::floor(x[j + 16] * id + 8.5f)), 0, 15);
        b[i].q[j] = static_cast<uint8_t>(lo | hi << 4);
      }
    }
    return;
  }
  throw Error("quantize_row: not a quantized type");
}

void dequantize_row(DType t, const std::byte* src, int64_t n, float* y) {
  if (t == DType::Q8_0) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(src);
    for (int64_t i = 0; i < n / kQ8_0Block; ++i, y += kQ8_0Block) {
      float d = f16_to_f32(b[i].d);
      for (int j = 0; j < 32; ++j) y[j] = d * b[i].q[j];
    }
    return;
  }
  if (t == DType::Q4_0) {
    const auto* b = reinterpret_cast<const BlockQ4_0*>(src);
    for (int64_t i = 0; i < n / kQ4_0Block; ++i, y += kQ4_0Block) {
      float d = f16_to_f32(b[i].d);
      for (int j = 0; j < 16; ++j) {
        y[j] = d * ((b[i].q[j] & 0x0f) - 8);
        y[j + 16] = d * ((b[i].q[j] >> 4) - 8);
      }
    }
    return;
  }
  throw Error("dequantize_row: not a quantized type");
}

}  // namespace huginn::quant
