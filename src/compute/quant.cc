#include "compute/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "huginn/error.h"

namespace huginn::quant {

namespace {

// Scale s for the values x (q = clamp(round(x / s), -8, 7)) with the least
// squared error: 8 candidate divisors from 7 to 8.75 around the Q4_0 choice
// maxv / -8, each refitted by least squares for its q (error
// sum x^2 - (sum x q)^2 / sum q^2). The candidates are the inner loop: eight
// independent sums instead of one dependency chain per candidate.
float best_q4_scale(const float* x, int n) {
  float maxv = 0, amax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), maxv = x[i];
  if (amax == 0) return 0;
  constexpr int kC = 8;
  float inv[kC], xq[kC] = {}, qq[kC] = {};
  for (int c = 0; c < kC; ++c) inv[c] = -(7.0f + 0.25f * static_cast<float>(c)) / maxv;
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < kC; ++c) {
      // Round to nearest even by the 1.5 * 2^23 trick (|x * inv| <= 9).
      float q = (x[i] * inv[c] + 12582912.0f) - 12582912.0f;
      q = q < -8.0f ? -8.0f : q;
      q = q > 7.0f ? 7.0f : q;
      xq[c] += x[i] * q, qq[c] += q * q;
    }
  float best = maxv / -8.0f, best_gain = -1;  // (sum x q)^2 / sum q^2: larger = smaller error
  for (int c = 0; c < kC; ++c)
    if (qq[c] > 0 && xq[c] * xq[c] / qq[c] > best_gain) best_gain = xq[c] * xq[c] / qq[c], best = xq[c] / qq[c];
  return best;
}

void quantize_q4sb(const float* x, BlockQ4SB& b) {
  float sub[8][20];
  for (int i = 0; i < 160; ++i) sub[(i % 32) / 4][(i / 32) * 4 + i % 4] = x[i];
  float s[8], smax = 0;
  for (int j = 0; j < 8; ++j) s[j] = best_q4_scale(sub[j], 20), smax = std::max(smax, std::fabs(s[j]));
  b.d = f32_to_f16(smax / 127.0f);
  const float d = f16_to_f32(b.d);
  float inv[8];  // 1 / (d * sc[j]), 0 for an all-zero sub-block
  for (int j = 0; j < 8; ++j) {
    b.sc[j] = static_cast<int8_t>(d != 0 ? std::clamp(std::nearbyint(s[j] / d), -127.0f, 127.0f) : 0);
    inv[j] = b.sc[j] != 0 ? 1.0f / (d * b.sc[j]) : 0.0f;
  }
  std::memset(b.q, 0, sizeof b.q);
  for (int i = 0; i < 160; ++i) {
    const float v = (x[i] * inv[(i % 32) / 4] + 12582912.0f) - 12582912.0f;  // round to nearest even
    const int q = static_cast<int>(std::min(7.0f, std::max(-8.0f, v))) + 8;
    uint8_t& byte = b.q[q4sb_byte(i)];
    byte = static_cast<uint8_t>(byte | (q4sb_high(i) ? q << 4 : q));
  }
}

}  // namespace

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
  if (t == DType::Q4_SB) {
    auto* b = reinterpret_cast<BlockQ4SB*>(dst);
    for (int64_t i = 0; i < n / kQ4SBBlock; ++i, x += kQ4SBBlock) quantize_q4sb(x, b[i]);
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
  if (t == DType::Q4_SB) {
    const auto* b = reinterpret_cast<const BlockQ4SB*>(src);
    for (int64_t i = 0; i < n / kQ4SBBlock; ++i, y += kQ4SBBlock) {
      const float d = f16_to_f32(b[i].d);
      for (int e = 0; e < 160; ++e) y[e] = d * static_cast<float>(b[i].sc[(e % 32) / 4]) * static_cast<float>(q4sb_nibble(b[i], e) - 8);
    }
    return;
  }
  throw Error("dequantize_row: not a quantized type");
}

}  // namespace huginn::quant
