#include "compute/roofline.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "compute/cpu/kernels.h"
#include "huginn/error.h"

namespace huginn {
namespace probe {
float read_sum_avx2(const float* p, size_t n);
float fma_loop_avx2(int64_t iters);
float fma_loop_avx512(int64_t iters);
int32_t vnni_loop(int64_t iters);
float amx_bf16_loop(int64_t iters);
}  // namespace probe

namespace {

bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool has_avx512() { return has_avx2() && __builtin_cpu_supports("avx512f"); }

float read_sum(const float* p, size_t n) {
  if (has_avx2()) return probe::read_sum_avx2(p, n);
  float a[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] += p[i + j];
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

volatile float g_sink;

// Best rate (G operations per second) of 9 runs of body() on `threads`
// threads, each doing `ops` operations.
template <typename Body>
double best_rate(int threads, double ops, Body body) {
  threads = std::max(1, threads);
  std::vector<double> rates;
  for (int r = 0; r < 9; ++r) {
    std::vector<std::thread> pool;
    double t0 = now();
    for (int t = 1; t < threads; ++t) pool.emplace_back(body);
    body();
    for (auto& th : pool) th.join();
    rates.push_back(ops * threads / (now() - t0) / 1e9);
  }
  return *std::max_element(rates.begin(), rates.end());
}

}  // namespace

BandwidthResult measure_read_bandwidth(size_t bytes, int threads, bool huge_pages, int repeats) {
  threads = std::max(1, threads);
  bytes = (bytes + (size_t{2} << 20) - 1) / (size_t{2} << 20) * (size_t{2} << 20);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Error("bandwidth probe: cannot allocate " + std::to_string(bytes) + " bytes");
  if (huge_pages) ::madvise(p, bytes, MADV_HUGEPAGE);
  else ::madvise(p, bytes, MADV_NOHUGEPAGE);
  std::memset(p, 1, bytes);  // fault every page in before timing
  const float* f = static_cast<const float*>(p);
  const size_t n = bytes / sizeof(float), per = n / static_cast<size_t>(threads) / 32 * 32;
  std::vector<double> rates;
  for (int r = 0; r < repeats + 1; ++r) {
    std::vector<std::thread> pool;
    double t0 = now();
    for (int t = 1; t < threads; ++t) pool.emplace_back([&, t] { g_sink = read_sum(f + per * static_cast<size_t>(t), per); });
    g_sink = read_sum(f, per);
    for (auto& th : pool) th.join();
    double dt = now() - t0;
    if (r > 0) rates.push_back(static_cast<double>(per * static_cast<size_t>(threads) * sizeof(float)) / dt / 1e9);
  }
  ::munmap(p, bytes);
  return {*std::max_element(rates.begin(), rates.end()), huge_pages};
}

double measure_fma_peak_gflops(int threads) {
  const int64_t iters = 20'000'000;
  // The hardware's peak, whatever the kernels use (HUGINN_NO_AVX512 does not
  // lower it): on an AVX-512 CPU the AVX2 loop would report about half.
  const double flop_per_iter = has_avx512() ? 16.0 * 32.0 : 12.0 * (has_avx2() ? 16.0 : 2.0);
  return best_rate(threads, flop_per_iter * static_cast<double>(iters), [&] {
    if (has_avx512()) {
      g_sink = probe::fma_loop_avx512(iters);
    } else if (has_avx2()) {
      g_sink = probe::fma_loop_avx2(iters);
    } else {
      float a[12];
      for (int i = 0; i < 12; ++i) a[i] = 0.001f * static_cast<float>(i);
      for (int64_t k = 0; k < iters; ++k)
        for (float& x : a) x = x * 0.999999f + 1e-7f;
      g_sink = a[0];
    }
  });
}

double measure_vnni_peak_gops(int threads) {
  if (!cpu::use_vnni()) return 0;
  const int64_t iters = 10'000'000;
  return best_rate(threads, 16.0 * 64 * 2 * static_cast<double>(iters),
                   [&] { g_sink = static_cast<float>(probe::vnni_loop(iters)); });
}

double measure_amx_bf16_peak_gflops(int threads) {
  if (!cpu::use_amx()) return 0;
  const int64_t iters = 100'000;
  return best_rate(threads, 4.0 * 16 * 16 * 32 * 2 * static_cast<double>(iters),
                   [&] { g_sink = probe::amx_bf16_loop(iters); });
}

const char* fma_probe_isa() { return has_avx512() ? "avx512f" : has_avx2() ? "avx2+fma" : "scalar"; }

}  // namespace huginn
