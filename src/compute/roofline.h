// Probes of what this machine can do, measured in the same run as a
// benchmark: streaming read bandwidth, FP32 FMA throughput, and the int8 /
// bf16 units where the kernels use them.
#pragma once

#include <cstddef>

namespace huginn {

struct BandwidthResult {
  double gb_per_s = 0;  // 1 GB = 1e9 bytes
  bool huge_pages = false;
};

// Reads a `bytes` anonymous buffer (asking for 2 MiB pages when huge_pages)
// with `threads` threads, `repeats` times; returns the best rate. The best,
// not the median: on a shared machine a neighbour only ever lowers a sample,
// and a roofline is what the hardware can do (shares against it are then
// conservative).
BandwidthResult measure_read_bandwidth(size_t bytes, int threads, bool huge_pages, int repeats = 7);

// FP32 fused multiply-add throughput (GFLOP/s, 2 FLOP per FMA lane) with
// `threads` threads, using the widest FMA instructions this CPU has; the
// best of several short runs, for the same reason.
double measure_fma_peak_gflops(int threads);
// The instructions that probe uses: "avx512f", "avx2+fma" or "scalar".
const char* fma_probe_isa();

// Peaks of the other units the prefill GEMMs use, in the same unit (2
// operations per multiply-add): int8 multiply-adds with AVX-512 VNNI
// (vpdpbusd, the Q8_0 / Q4_0 GEMM) and bf16 AMX tile products (tdpbf16ps,
// the BF16 GEMM, which needs three of them per f32-exact product). 0 where
// the kernels do not use that unit (cpu::use_vnni / cpu::use_amx).
double measure_vnni_peak_gops(int threads);
double measure_amx_bf16_peak_gflops(int threads);

}  // namespace huginn
