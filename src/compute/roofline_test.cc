#include "compute/roofline.h"

#include "compute/cpu/kernels.h"

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

// The int8 and AMX probes run exactly where the kernels use those units, and
// report a rate in the same unit as the FMA probe (2 operations per
// multiply-add); switched off, they report 0.
TEST(Roofline, UnitProbesFollowTheKernels) {
  for (bool off : {false, true}) {
    cpu::disable_vnni(off);
    cpu::disable_amx(off);
    const double vnni = measure_vnni_peak_gops(1), amx = measure_amx_bf16_peak_gflops(1);
    EXPECT_EQ(vnni > 0, cpu::use_vnni()) << vnni;
    EXPECT_EQ(amx > 0, cpu::use_amx()) << amx;
    EXPECT_LT(vnni, 1e5);
    EXPECT_LT(amx, 1e6);
  }
  cpu::disable_vnni(false);
  cpu::disable_amx(false);
}

TEST(Roofline, ReadBandwidthIsPositive) {
  const BandwidthResult r = measure_read_bandwidth(size_t{16} << 20, 1, false, 2);
  EXPECT_GT(r.gb_per_s, 0.1);
  EXPECT_FALSE(r.huge_pages);
}

}  // namespace
}  // namespace huginn
