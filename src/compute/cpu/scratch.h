// Per-thread scratch buffers for the kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace huginn::cpu {

// Scratch that grows and is reused (keep one per thread), 64-byte aligned so
// vector loads never straddle two cache lines (and 512-bit aligned loads and
// AMX tile loads get whole lines).
template <typename T>
T* scratch(std::vector<T>& v, size_t n) {
  constexpr size_t pad = 64 / sizeof(T);
  if (v.size() < n + pad) v.resize(n + pad);
  const auto addr = reinterpret_cast<uintptr_t>(v.data());
  return v.data() + ((64 - addr % 64) % 64) / sizeof(T);
}

}  // namespace huginn::cpu
