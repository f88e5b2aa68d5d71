#include "compute/roofline.h"

#include <gtest/gtest.h>

#include <string>

namespace huginn {
namespace {

// The FMA probe must use the widest vectors the CPU has: on an AVX-512 CPU
// the AVX2 loop reports about half the peak, and every share against it
// would be doubled.
TEST(Roofline, FmaProbeUsesWidestVectors) {
  const std::string isa = fma_probe_isa();
  if (__builtin_cpu_supports("avx512f"))
    EXPECT_EQ(isa, "avx512f");
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    EXPECT_EQ(isa, "avx2+fma");
  else
    EXPECT_EQ(isa, "scalar");
  const double one = measure_fma_peak_gflops(1);
  EXPECT_GT(one, 0.5);  // GFLOP/s; even the scalar loop does far more
  EXPECT_LT(one, 1e4);
}

TEST(Roofline, ReadBandwidthIsPositive) {
  const BandwidthResult r = measure_read_bandwidth(size_t{16} << 20, 1, false, 2);
  EXPECT_GT(r.gb_per_s, 0.1);
  EXPECT_FALSE(r.huge_pages);
}

}  // namespace
}  // namespace huginn
