// Dispatched kernels against the scalar references on odd shapes.
#include "compute/cpu/kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "compute/cpu/kernels_avx2.h"
#include "compute/cpu/thread_pool.h"
#include "huginn/engine.h"
#include "compute/quant.h"

namespace huginn::cpu {
namespace {

struct Weight {
  std::vector<std::byte> bytes;
  TensorView view;
};

Weight make_weight(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> f(static_cast<size_t>(rows * cols));
  for (auto& v : f) v = nd(rng);
  Weight w;
  const size_t rb = dtype_row_bytes(t, cols);
  w.bytes.resize(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    std::byte* dst = w.bytes.data() + static_cast<size_t>(r) * rb;
    const float* src = f.data() + r * cols;
    switch (t) {
      case DType::F32: std::memcpy(dst, src, rb); break;
      case DType::BF16:
        for (int64_t c = 0; c < cols; ++c) {
          uint16_t h = f32_to_bf16(src[c]);
          std::memcpy(dst + 2 * c, &h, 2);
        }
        break;
      case DType::F16:
        for (int64_t c = 0; c < cols; ++c) {
          uint16_t h = f32_to_f16(src[c]);
          std::memcpy(dst + 2 * c, &h, 2);
        }
        break;
      default: quant::quantize_row(t, src, cols, dst); break;
    }
  }
  w.view.name = "w";
  w.view.dtype = t;
  w.view.shape = {rows, cols};
  w.view.data = w.bytes.data();
  w.view.nbytes = w.bytes.size();
  return w;
}

std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// |a - b| <= tol * (sum over the dot of |w| |x|) per element, computed from the reference.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& scale,
                  double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(std::fabs(static_cast<double>(got[i]) - want[i]), rel * scale[i] + 1e-30)
        << what << " at " << i << ": got " << got[i] << " want " << want[i];
  }
}

// sum_k |w_rk| |x_tk| for each output, the natural scale of rounding errors.
std::vector<float> abs_scale(const TensorView& W, const std::vector<float>& X, int64_t n) {
  std::vector<float> ax(X.size());
  for (size_t i = 0; i < X.size(); ++i) ax[i] = std::fabs(X[i]);
  const int64_t rows = W.rows(), cols = W.cols();
  std::vector<float> w(static_cast<size_t>(cols)), out(static_cast<size_t>(n * rows));
  const size_t rb = dtype_row_bytes(W.dtype, cols);
  for (int64_t r = 0; r < rows; ++r) {
    to_f32(W.dtype, W.data + static_cast<size_t>(r) * rb, cols, w.data());
    for (auto& v : w) v = std::fabs(v);
    for (int64_t t = 0; t < n; ++t) out[static_cast<size_t>(t * rows + r)] = ref::dot(w.data(), ax.data() + t * cols, cols);
  }
  return out;
}

struct Case {
  DType t;
  int64_t rows, cols;
};

class MatmulTest : public testing::TestWithParam<DType> {};

TEST_P(MatmulTest, MatchesReferenceOnOddShapes) {
  const DType t = GetParam();
  const bool q = t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_SB;
  ThreadPool pool(3);
  std::vector<Case> cases = {{t, 1, 64}, {t, 7, 96}, {t, 13, 160}, {t, 37, 352}, {t, 130, 544}};
  if (t == DType::Q4_SB) cases = {{t, 1, 160}, {t, 7, 320}, {t, 13, 480}, {t, 37, 800}, {t, 130, 1120}, {t, 9, 5280}};
  if (!q) cases.push_back({t, 19, 120}), cases.push_back({t, 11, 17}), cases.push_back({t, 5, 3});
  for (const Case& c : cases) {
    Weight w = make_weight(c.t, c.rows, c.cols, static_cast<uint32_t>(c.rows * 31 + c.cols));
    for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 17, 33, 64}) {
      auto X = random_vec(static_cast<size_t>(n * c.cols), static_cast<uint32_t>(n + 7));
      std::vector<float> want(static_cast<size_t>(n * c.rows)), exact(want.size());
      ref::matmul(w.view, X.data(), n, exact.data());
      const auto scale = abs_scale(w.view, X, n);
      const std::string base = std::string(dtype_name(t)) + " " + std::to_string(c.rows) + "x" +
                               std::to_string(c.cols) + " n=" + std::to_string(n);
      // The GEMM runs its AVX-512 micro-kernel where the CPU has one, for
      // quantized weights the int8 VNNI GEMM and for BF16 the AMX one where
      // it has those; there, check the AVX2 one and the f32 AVX-512 one too.
      const bool special = (q && use_vnni()) || (t == DType::BF16 && use_amx());
      struct Run {
        MatmulPath path;
        bool avx2_gemm;
        bool f32_gemm;  // VNNI and AMX off
      };
      // With VNNI, Q8_0 / Q4_0 decode and Q4_SB decode of 2+ tokens have their own
      // kernels: the AVX2 ones run with VNNI off (the Small run with f32_gemm).
      for (Run run : {Run{MatmulPath::Small, false, false}, Run{MatmulPath::Gemm, false, false},
                      Run{MatmulPath::Gemm, true, false}, Run{MatmulPath::Gemm, false, true},
                      Run{MatmulPath::Small, false, true}, Run{MatmulPath::Auto, false, false}}) {
        if (run.avx2_gemm && !use_avx512()) continue;
        if (run.f32_gemm && !special) continue;
        const MatmulPath path = run.path;
        std::vector<float> got(want.size(), NAN);
        disable_avx512(run.avx2_gemm);
        disable_vnni(run.f32_gemm);
        disable_amx(run.f32_gemm);
        const bool vnni = q && use_vnni();
        matmul(pool, w.view, X.data(), n, got.data(), path);
        disable_avx512(false);
        disable_vnni(false);
        disable_amx(false);
        const std::string what =
            base + (run.avx2_gemm ? " (AVX2 GEMM)" : run.f32_gemm ? " (VNNI and AMX off)" : "");
        const bool small = path == MatmulPath::Small || (path == MatmulPath::Auto && n < kGemmMinTokens);
        const bool int8_acts = q && use_avx2() && (small || vnni);
        const bool scalar_int8 = q && !use_avx2();
        if (int8_acts || scalar_int8) {
          // Same integer scheme as the reference: only float summation order differs.
          ref::matmul_q8act(w.view, X.data(), n, want.data());
          expect_close(got, want, scale, 2e-6, what + " (int8 activations)");
          // And the drift from activation quantization stays small.
          expect_close(got, exact, scale, 1.5e-2, what + " (drift)");
        } else {
          expect_close(got, exact, scale, 2e-6, what);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTest,
                         testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_SB),
                         [](const testing::TestParamInfo<DType>& p) { return std::string(dtype_name(p.param)); });

// The AMX GEMM splits each activation into three bf16 parts; the split must be
// exact over the whole f32 range, and its blocking (128-row items, K blocks
// of 512, 32-token groups, the f32 GEMM for the last rows % 32) must cover
// every output once.
TEST(MatmulTest, AmxBf16IsExactOverWideRangesAndCoversAllBlocks) {
  if (!use_amx()) GTEST_SKIP() << "no AMX";
  ThreadPool pool(2);
  const int64_t rows = 300, cols = 1056;
  Weight w = make_weight(DType::BF16, rows, cols, 77);
  for (int64_t n : {12, 45, 64, 600}) {  // 600: blocks of 256 tokens
    auto X = random_vec(static_cast<size_t>(n * cols), static_cast<uint32_t>(n));
    // Magnitudes from 1e-30 to 1e30 within each row.
    for (size_t i = 0; i < X.size(); ++i) X[i] *= std::pow(10.0f, static_cast<float>(static_cast<int>(i % 61) - 30));
    std::vector<float> got(static_cast<size_t>(n * rows), NAN), want(got.size());
    matmul(pool, w.view, X.data(), n, got.data(), MatmulPath::Gemm);
    ref::matmul(w.view, X.data(), n, want.data());
    expect_close(got, want, abs_scale(w.view, X, n), 2e-6, "AMX n=" + std::to_string(n));
  }
}

// Long prompts go through the VNNI GEMM in blocks of 256 tokens.
TEST(MatmulTest, VnniGemmBlocksLongPrompts) {
  if (!use_vnni()) GTEST_SKIP() << "no AVX-512 VNNI";
  ThreadPool pool(2);
  for (DType t : {DType::Q8_0, DType::Q4_SB}) {
    Weight w = make_weight(t, 50, 320, 3);
    const int64_t n = 600;
    auto X = random_vec(static_cast<size_t>(n * 320), 21);
    std::vector<float> got(static_cast<size_t>(n * 50), NAN), want(got.size());
    matmul(pool, w.view, X.data(), n, got.data(), MatmulPath::Gemm);
    ref::matmul_q8act(w.view, X.data(), n, want.data());
    expect_close(got, want, abs_scale(w.view, X, n), 2e-6, std::string(dtype_name(t)) + " n=600");
  }
}

TEST(MatmulTest, ScalarFallbackMatches) {
  ThreadPool pool(2);
  for (DType t : {DType::BF16, DType::Q4_0, DType::Q4_SB}) {
    const int64_t cols = t == DType::Q4_SB ? 320 : 96;
    Weight w = make_weight(t, 21, cols, 5);
    auto X = random_vec(static_cast<size_t>(3 * cols), 9);
    std::vector<float> a(3 * 21), b(3 * 21);
    matmul(pool, w.view, X.data(), 3, a.data());
    force_scalar(true);
    matmul(pool, w.view, X.data(), 3, b.data());
    force_scalar(false);
    const auto scale = abs_scale(w.view, X, 3);
    expect_close(a, b, scale, 2e-6, "scalar vs dispatched");
  }
}

TEST(QuantizeActs, DispatchedMatchesReference) {
  // The AVX2 path quantizes inside matmul; compare through a Q8_0 identity-like product.
  auto X = random_vec(5 * 64, 3);
  X[7] = 0;
  for (int j = 32; j < 64; ++j) X[j] = 0;  // an all-zero block
  std::vector<int8_t> q(5 * 64);
  std::vector<float> d(10);
  std::vector<int32_t> s(10);
  QuantizedActs qa{5, 64, q.data(), d.data(), s.data()};
  quantize_acts_ref(X.data(), 5, 64, qa);
  EXPECT_EQ(d[1], 0.0f);
  for (int i = 0; i < 5 * 64; ++i) EXPECT_LE(std::fabs(q[i] * d[i / 32] - X[i]), d[i / 32] * 0.5f + 1e-7f);
  if (!use_avx2()) GTEST_SKIP() << "no AVX2";
  std::vector<int8_t> q2(5 * 64);
  std::vector<float> d2(10);
  std::vector<int32_t> s2(10);
  QuantizedActs qb{5, 64, q2.data(), d2.data(), s2.data()};
  avx2::quantize_acts(X.data(), 5, 64, qb);
  EXPECT_EQ(q, q2);
  EXPECT_EQ(d, d2);
  EXPECT_EQ(s, s2);
}

TEST(QuantizeActs, SuperBlocksDispatchedMatchesReferenceExactly) {
  auto X = random_vec(3 * 320, 4, 2.0f);
  for (int j = 160; j < 320; ++j) X[j] = 0;  // an all-zero super-block
  X[5] = 40;                                   // an outlier sets its block's scale
  std::vector<int8_t> q1(X.size()), q2(X.size());
  std::vector<float> d1(6), d2(6);
  std::vector<int16_t> s1(6 * 16), s2(6 * 16);
  SuperActs a{3, 320, q1.data(), d1.data(), s1.data()}, b{3, 320, q2.data(), d2.data(), s2.data()};
  quantize_acts_sb_ref(X.data(), 3, 320, a);
  EXPECT_EQ(d1[1], 0.0f);
  EXPECT_EQ(q1[5], 127);
  for (size_t i = 0; i < X.size(); ++i) ASSERT_LE(std::fabs(q1[i] * d1[i / 160] - X[i]), d1[i / 160] * 0.5f + 1e-6f) << i;
  for (int lane = 0; lane < 16; ++lane) {  // xs: 8 * the sum of the lane's 10 values
    int want = 0;
    for (int i = 0; i < 160; ++i)
      if ((i % 32) / 2 == lane) want += 8 * q1[i];
    EXPECT_EQ(s1[lane], want) << lane;
  }
  if (!use_avx2()) GTEST_SKIP() << "no AVX2";
  avx2::quantize_acts_sb(X.data(), 3, 320, b);
  EXPECT_EQ(q1, q2);
  EXPECT_EQ(d1, d2);
  EXPECT_EQ(s1, s2);
}

// Q4_SB round trip: every element within about one step of its sub-block
// (a wrong nibble or sub-block mapping is off by several), and a smaller
// error than Q4_0 at the same 4.5 bits per weight.
TEST(QuantFormats, Q4SBRoundTrip) {
  auto x = random_vec(5280, 11);
  for (int i = 0; i < 5280; i += 97) x[static_cast<size_t>(i)] *= 6;  // outliers
  std::fill(x.begin() + 320, x.begin() + 480, 0.0f);                   // an all-zero super-block
  std::vector<std::byte> sb(dtype_row_bytes(DType::Q4_SB, 5280)), q40(dtype_row_bytes(DType::Q4_0, 5280));
  EXPECT_EQ(sb.size(), q40.size());
  std::vector<float> y(5280), y0(5280);
  quant::quantize_row(DType::Q4_SB, x.data(), 5280, sb.data());
  quant::dequantize_row(DType::Q4_SB, sb.data(), 5280, y.data());
  quant::quantize_row(DType::Q4_0, x.data(), 5280, q40.data());
  quant::dequantize_row(DType::Q4_0, q40.data(), 5280, y0.data());
  const auto* blocks = reinterpret_cast<const quant::BlockQ4SB*>(sb.data());
  double e_sb = 0, e_q4 = 0;
  for (int i = 0; i < 5280; ++i) {
    const auto& b = blocks[i / 160];
    const float step = std::fabs(f16_to_f32(b.d) * b.sc[(i % 160 % 32) / 4]);
    ASSERT_LE(std::fabs(y[i] - x[i]), 1.25f * step + 1e-6f) << i;
    e_sb += (y[i] - x[i]) * (y[i] - x[i]), e_q4 += (y0[i] - x[i]) * (y0[i] - x[i]);
  }
  for (int i = 320; i < 480; ++i) EXPECT_EQ(y[i], 0.0f);
  EXPECT_LT(e_sb, 0.9 * e_q4);
}

TEST(Elementwise, RmsnormMatchesReference) {
  for (int64_t dim : {1, 7, 8, 120, 5280, 5283}) {
    auto x = random_vec(dim, 1), r = random_vec(dim, 2), w = random_vec(dim, 3);
    std::vector<float> a(dim), b(dim);
    for (const float* rr : {static_cast<const float*>(nullptr), static_cast<const float*>(r.data())}) {
      rmsnorm_row(x.data(), rr, w.data(), dim, 1e-6f, a.data());
      ref::rmsnorm_row(x.data(), rr, w.data(), dim, 1e-6f, b.data());
      for (int64_t i = 0; i < dim; ++i) ASSERT_NEAR(a[i], b[i], 1e-6f * (std::fabs(b[i]) + 1e-3f)) << dim << " " << i;
    }
  }
}

TEST(Elementwise, SiluMulMatchesReference) {
  for (int64_t n : {1, 9, 328, 17920}) {
    auto g = random_vec(n, 4, 6.0f), u = random_vec(n, 5);
    if (n > 8) g[3] = -100.0f, g[4] = 100.0f, g[5] = -87.0f, g[6] = 0.0f;
    std::vector<float> a(n), b(n);
    silu_mul_row(g.data(), u.data(), n, a.data());
    ref::silu_mul_row(g.data(), u.data(), n, b.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(a[i], b[i], 4e-7f * std::fabs(b[i]) + 1e-30f) << n << " " << i;
  }
}

TEST(Elementwise, BiasRopeMatchesReference) {
  for (int64_t hd : {96, 24, 6, 10}) {
    const int64_t heads = 5, E = heads * hd;
    auto x = random_vec(E, 6), bias = random_vec(E, 7), c = random_vec(hd / 2, 8), s = random_vec(hd / 2, 9);
    auto a = x, b = x;
    bias_rope_row(a.data(), bias.data(), c.data(), s.data(), heads, hd);
    ref::bias_rope_row(b.data(), bias.data(), c.data(), s.data(), heads, hd);
    for (int64_t i = 0; i < E; ++i) ASSERT_NEAR(a[i], b[i], 1e-5f * (std::fabs(b[i]) + 1.0f)) << hd << " " << i;
  }
}

TEST(Elementwise, AttentionRowMatchesReference) {
  for (int64_t d : {96, 8, 40, 13}) {
    for (int64_t n : {1, 2, 7, 8, 9, 64, 300}) {
      const int64_t H = 3, off = d;  // head 1 of 3
      auto q = random_vec(d, 10), kv = random_vec(static_cast<size_t>(2 * n * H * d), static_cast<uint32_t>(n));
      std::vector<const float*> k(n), v(n);
      for (int64_t j = 0; j < n; ++j) k[j] = kv.data() + j * H * d, v[j] = kv.data() + (n + j) * H * d;
      std::vector<float> s1(n), s2(n), a(d), b(d);
      const float scale = 1.0f / std::sqrt(static_cast<float>(d));
      attention_row(q.data(), k.data(), v.data(), off, n, d, scale, s1.data(), a.data());
      ref::attention_row(q.data(), k.data(), v.data(), off, n, d, scale, s2.data(), b.data());
      for (int64_t i = 0; i < d; ++i) ASSERT_NEAR(a[i], b[i], 2e-6f) << d << " " << n << " " << i;
    }
  }
}

TEST(ThreadPool, ResolveThreads) {
  EXPECT_EQ(resolve_threads(3), 3);
  EXPECT_EQ(resolve_threads(0), static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  EXPECT_EQ(resolve_threads(-1), resolve_threads(0));
}

TEST(ThreadPool, CoversEveryItemOnceAndSurvivesManyCalls) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(1000);
    for (int rep = 0; rep < 3000; ++rep) {
      const int64_t n = 1 + rep % 997, chunk = 1 + rep % 13;
      pool.parallel_for(n, chunk, [&](int64_t b, int64_t e, int tid) {
        ASSERT_GE(tid, 0);
        ASSERT_LT(tid, threads);
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].exchange(0), 1) << rep << " " << i;
      if (rep % 500 == 0) pool.set_spin_us(rep % 1000 == 0 ? 0 : 100);  // also exercise the sleeping path
    }
  }
}

// Each thread starts on its own contiguous slice and walks it front to back
// (what keeps a matmul's rows one sequential stream per thread). Whatever it
// took after its own slice was stolen from the back of another slice, so it
// runs backwards. (A spinning worker may steal all of a late thread's slice,
// so no thread is sure to get a chunk.)
TEST(ThreadPool, OwnSliceFrontToBackThenStealsFromTheBack) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 500; ++rep) {
      const int64_t n = 40 + rep % 61, chunk = 1 + rep % 3, count = (n + chunk - 1) / chunk;
      std::vector<std::vector<int64_t>> seen(static_cast<size_t>(threads));
      pool.parallel_for(n, chunk, [&](int64_t b, int64_t, int tid) { seen[static_cast<size_t>(tid)].push_back(b / chunk); });
      for (int t = 0; t < threads; ++t) {
        const auto& c = seen[static_cast<size_t>(t)];
        const int64_t lo = count * t / threads, hi = count * (t + 1) / threads;
        size_t i = 0;
        // Own slice: a prefix lo, lo + 1, ... in order.
        for (; i < c.size() && c[i] >= lo && c[i] < hi; ++i) ASSERT_EQ(c[i], lo + static_cast<int64_t>(i)) << t;
        // Stolen chunks: strictly decreasing within each victim slice.
        auto slice_of = [&](int64_t k) {
          int s = 0;
          while (k >= count * (s + 1) / threads) ++s;
          return s;
        };
        for (; i + 1 < c.size(); ++i) {
          if (slice_of(c[i]) == slice_of(c[i + 1])) {
            ASSERT_LT(c[i + 1], c[i]) << t;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace huginn::cpu

namespace huginn {
namespace {
// A pool destroyed right after it is built (workers not yet started) must not hang.
TEST(ThreadPool, ImmediateDestroyAndLateStartingWorkers) {
  for (int i = 0; i < 300; ++i) {
    ThreadPool pool(2 + i % 3);
    if (i % 2) {
      std::atomic<int> sum{0};
      pool.parallel_for(100, 7, [&](int64_t b, int64_t e, int) { sum += static_cast<int>(e - b); });
      ASSERT_EQ(sum.load(), 100);
    }
  }
}
}  // namespace
}  // namespace huginn
