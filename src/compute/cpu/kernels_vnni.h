// AVX-512 VNNI kernels (defined in *_vnni.cc, compiled with -mavx512f
// -mavx512bw -mavx512vl -mavx512vnni and the AVX2 flags). Call only when
// cpu::use_vnni() is true.
#pragma once

#include <cstdint>

#include "compute/cpu/kernels.h"
#include "compute/cpu/thread_pool.h"
#include "huginn/tensor.h"

namespace huginn::cpu::vnni {

// Prefill GEMM for Q8_0 / Q4_0 / Q4_SB weights: Y[n, rows] = X[n, cols] * W^T
// with the activations quantized to int8 as the decode kernels do
// (quantize_acts / quantize_acts_sb), so prompt and decode tokens see the same
// arithmetic: exact integer dot products per block of 32 (Q4_SB: super-block
// of 160), scaled and summed in f32. One VNNI instruction does 64 int8
// multiply-adds (Q4_SB: 32 int16 ones) where an f32 FMA does 16. Any n;
// cpu::matmul hands it at most 256 tokens at a time.
void gemm(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y);

// Q8_0 / Q4_0 decode of n tokens: Y[n, rows] = X W^T with X quantized by
// quantize_acts (same arithmetic as the AVX2 kernels: exact integer dot
// products per block of 32, scaled by dw * dx in f32). Rows are handed out
// in chunks of `chunk`.
void q8_q4_matmul(ThreadPool& pool, const TensorView& W, const QuantizedActs& xa, int64_t n, float* Y, int64_t chunk);

// Q4_SB decode of n tokens (n >= 2; any n works) with activations from
// quantize_acts_sb: the AVX2 kernel's arithmetic (exact int dot products per
// super-block of 160, scaled in f32), two tokens per 512-bit vector.
void q4sb_matmul(ThreadPool& pool, const TensorView& W, const SuperActs& xa, int64_t n, float* Y, int64_t chunk);

}  // namespace huginn::cpu::vnni
