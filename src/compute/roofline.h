// Probes of what this machine can do, measured in the same run as a
// benchmark: streaming read bandwidth and FP32 FMA throughput.
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

}  // namespace huginn
