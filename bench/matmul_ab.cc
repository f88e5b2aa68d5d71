// Paired A/B of the AVX2 matmul kernels inside one process. bench/matmul_ab.sh
// compiles matmul_avx2.cc of an older revision twice, into the namespaces
// avx2_ref and avx2_ctl, and links this file against the current library
// (avx2). Every round calls the three versions back to back on the same
// weights, so a neighbour that slows the machine slows all three alike: the
// per-round ratio new/ref is what to read, and ctl/ref shows how far two
// copies of the same code drift apart (about 1-2% on the project machine,
// where separate bench processes differ by 5-10%).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "compute/cpu/kernels.h"
#include "compute/cpu/kernels_avx2.h"
#include "compute/cpu/simd_avx2.h"
#include "compute/cpu/thread_pool.h"
#include "compute/quant.h"
#include "matmul_ref.cc"  // generated: namespace huginn::cpu::avx2_ref
#include "matmul_ctl.cc"  // generated: namespace huginn::cpu::avx2_ctl

namespace {

using namespace huginn;

struct Shape {
  const char* name;
  int64_t rows, cols;
};
// Huginn's dense layers (E = 5280, I = 17920).
constexpr Shape kShapes[] = {{"qkv", 15840, 5280}, {"fc", 35840, 5280}, {"mlp_proj", 5280, 17920}};

std::vector<std::byte> make_weight(DType t, const Shape& sh) {
  const size_t rb = dtype_row_bytes(t, sh.cols);
  std::vector<std::byte> w(rb * static_cast<size_t>(sh.rows));
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> row(static_cast<size_t>(sh.cols));
  for (int64_t r = 0; r < sh.rows; ++r) {
    for (float& v : row) v = nd(rng);
    std::byte* dst = w.data() + rb * static_cast<size_t>(r);
    if (t == DType::BF16) {
      for (int64_t c = 0; c < sh.cols; ++c) {
        const uint16_t h = f32_to_bf16(row[static_cast<size_t>(c)]);
        std::memcpy(dst + 2 * c, &h, 2);
      }
    } else {
      quant::quantize_row(t, row.data(), sh.cols, dst);
    }
  }
  return w;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 9;
  const std::string types = argc > 2 ? argv[2] : "BF16,Q8_0,Q4_SB";
  const int64_t n = argc > 3 ? std::atoll(argv[3]) : 64;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  if (reps < 1 || n < 1 || threads < 1) {
    std::fprintf(stderr, "usage: matmul_ab [REPS [TYPES [N [THREADS]]]]\n");
    return 2;
  }
  ThreadPool pool(threads);
  const bool big = n >= cpu::kGemmMinTokens;
  std::printf("n=%lld, %d threads, %d rounds, %s path; GFLOP/s medians and per-round ratios to ref\n",
              static_cast<long long>(n), threads, reps, big ? "GEMM" : "small-n");
  for (DType t : {DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_SB}) {
    const std::string tn(dtype_name(t));
    if (("," + types + ",").find("," + tn + ",") == std::string::npos) continue;
    for (const Shape& sh : kShapes) {
      std::vector<std::byte> wbuf = make_weight(t, sh);
      TensorView W;
      W.name = sh.name;
      W.dtype = t;
      W.shape = {sh.rows, sh.cols};
      W.data = wbuf.data();
      W.nbytes = wbuf.size();
      std::vector<float> X(static_cast<size_t>(n * sh.cols)), Y0(static_cast<size_t>(n * sh.rows)), Y(Y0.size());
      std::mt19937 rng(1);
      std::normal_distribution<float> nd;
      for (float& x : X) x = nd(rng);
      // REV's gemm may predate the avx512 argument (session 9); where it has
      // it, every version runs what the dispatcher would pick.
      const bool wide = cpu::use_avx512();
      auto rev_gemm = [&](auto& pool_, bool ctl, float* y) {
        auto call = [&](auto... wide_arg) {
          if (ctl)
            cpu::avx2_ctl::gemm(pool_, W, X.data(), n, y, wide_arg...);
          else
            cpu::avx2_ref::gemm(pool_, W, X.data(), n, y, wide_arg...);
        };
        if constexpr (requires { cpu::avx2_ref::gemm(pool_, W, X.data(), n, y, wide); })
          call(wide);
        else
          call();
      };
      auto run = [&](int v, float* y) {
        if (v == 0) big ? rev_gemm(pool, false, y) : cpu::avx2_ref::matmul_small(pool, W, X.data(), n, y);
        if (v == 1) big ? rev_gemm(pool, true, y) : cpu::avx2_ctl::matmul_small(pool, W, X.data(), n, y);
        if (v == 2) big ? cpu::avx2::gemm(pool, W, X.data(), n, y, wide) : cpu::avx2::matmul_small(pool, W, X.data(), n, y);
      };
      // Same inputs, so the versions should agree up to summation order.
      run(0, Y0.data());
      run(2, Y.data());
      double maxdiff = 0, maxref = 0;
      for (size_t i = 0; i < Y.size(); ++i) {
        maxdiff = std::max(maxdiff, static_cast<double>(std::fabs(Y[i] - Y0[i])));
        maxref = std::max(maxref, static_cast<double>(std::fabs(Y0[i])));
      }
      std::vector<double> g[3], ctl, neu;
      for (int r = 0; r < reps; ++r) {
        double rate[3];
        for (int v = 0; v < 3; ++v) {
          const auto t0 = std::chrono::steady_clock::now();
          run(v, Y.data());
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          rate[v] = 2.0 * static_cast<double>(sh.rows * sh.cols * n) / s / 1e9;
          g[v].push_back(rate[v]);
        }
        ctl.push_back(rate[1] / rate[0]);
        neu.push_back(rate[2] / rate[0]);
      }
      std::printf("%-5s %-8s ref %6.1f  ctl %6.1f  new %6.1f  | ctl/ref %.3f  new/ref %.3f  | max |new-ref| %.1e of %.1e\n",
                  tn.c_str(), sh.name, median(g[0]), median(g[1]), median(g[2]), median(ctl), median(neu), maxdiff,
                  maxref);
      std::fflush(stdout);
    }
  }
  return 0;
}
