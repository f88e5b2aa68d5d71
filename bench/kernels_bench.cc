// Kernel benchmarks at Huginn shapes, plus a streaming-read bandwidth probe.
//
//   kernels_bench --benchmark_filter='ReadBW'                 # read bandwidth
//   kernels_bench --benchmark_filter='Matmul/BF16/.*/n:1$'    # decode
//   kernels_bench --benchmark_filter='Matmul/.*/n:64'         # prefill
//
// Counters: GB/s = weight bytes per second (each call reads the weight once);
// GFLOP/s = 2 * rows * cols * n per second; cpu = process CPU seconds per wall
// second (2.0 = both cores all the time; less means we were descheduled or
// waiting). Environment: HUGINN_THREADS (default 2), HUGINN_BENCH_PAGES =
// huge (default, weights in anonymous memory with MADV_HUGEPAGE) or small.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <immintrin.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "compute/cpu/kernels.h"
#include "compute/cpu/thread_pool.h"
#include "compute/quant.h"
#include "huginn/tensor.h"

namespace huginn {
namespace {

int bench_threads() {
  const char* s = std::getenv("HUGINN_THREADS");
  return s ? std::max(1, std::atoi(s)) : 2;
}

ThreadPool& pool() {
  static ThreadPool p(bench_threads());
  return p;
}

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// Anonymous memory, 2 MiB aligned, optionally on transparent huge pages.
struct AnonBuffer {
  std::byte* p = nullptr;
  size_t size = 0, mapped = 0;
  AnonBuffer(size_t n, bool huge) : size(n) {
    mapped = n + (2u << 20);
    void* m = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    auto a = (reinterpret_cast<uintptr_t>(m) + (2u << 20) - 1) & ~uintptr_t{(2u << 20) - 1};
    p = reinterpret_cast<std::byte*>(a);
    base = m;
    madvise(p, n, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  }
  ~AnonBuffer() { munmap(base, mapped); }
  void* base = nullptr;
};

bool huge_pages_wanted() {
  const char* s = std::getenv("HUGINN_BENCH_PAGES");
  return !(s && std::string(s) == "small");
}

// ---------------------------------------------------------------------------
// Read bandwidth: sum every 32-bit word of the buffer (AVX2), split in 2 MiB
// chunks handed out by the pool.

__attribute__((target("avx2"))) uint32_t read_sum(const std::byte* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi32(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi32(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi32(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi32(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  a0 = _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3));
  alignas(32) uint32_t t[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), a0);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

constexpr size_t kProbeBytes = size_t{1} << 30;

void run_read(benchmark::State& state, const std::byte* p, size_t n, int threads) {
  ThreadPool local(threads);
  const int64_t chunk = 2 << 20, chunks = static_cast<int64_t>(n / chunk);
  std::vector<uint32_t> sink(64);
  double cpu0 = process_cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    local.parallel_for(chunks, 1, [&](int64_t b, int64_t e, int tid) {
      for (int64_t c = b; c < e; ++c) sink[static_cast<size_t>(tid)] += read_sum(p + c * chunk, chunk);
    });
    benchmark::DoNotOptimize(sink.data());
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = process_cpu_seconds() - cpu0;
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(n) * state.iterations() / 1e9 / wall);
  state.counters["cpu"] = cpu / wall;
  // Per CPU-second: what one core reads while it runs (robust to neighbours).
  state.counters["GB/cpu_s"] = static_cast<double>(n) * state.iterations() / 1e9 / cpu;
}

// mode 0: anonymous 4 KiB pages; 1: anonymous with MADV_HUGEPAGE; 2: mmap of
// a file in the page cache.
void BM_ReadBW(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(1));
  if (mode < 2) {
    AnonBuffer buf(kProbeBytes, mode == 1);
    std::memset(buf.p, 1, kProbeBytes);
    run_read(state, buf.p, kProbeBytes, threads);
    return;
  }
  std::string path = "/tmp/huginn_readbw_" + std::to_string(getpid());
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return state.SkipWithError("cannot create temp file");
  std::vector<char> block(1 << 20, 1);
  for (size_t i = 0; i < kProbeBytes; i += block.size())
    if (write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) std::abort();
  void* m = mmap(nullptr, kProbeBytes, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  unlink(path.c_str());
  if (m == MAP_FAILED) return state.SkipWithError("mmap failed");
  madvise(m, kProbeBytes, MADV_WILLNEED);
  read_sum(static_cast<const std::byte*>(m), kProbeBytes);  // fault in
  run_read(state, static_cast<const std::byte*>(m), kProbeBytes, threads);
  munmap(m, kProbeBytes);
}
BENCHMARK(BM_ReadBW)
    ->ArgNames({"mode", "threads"})
    ->ArgsProduct({{0, 1, 2}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------
// Matmul at Huginn shapes.

struct Shape {
  const char* name;
  int64_t rows, cols;
};
constexpr Shape kShapes[] = {
    {"inl2_48x5280", 48, 5280}, {"proj_5280x5280", 5280, 5280},  {"qkv_15840x5280", 15840, 5280}, {"fc_35840x5280", 35840, 5280},
    {"mlp_proj_5280x17920", 5280, 17920}, {"adapter_5280x10560", 5280, 10560}, {"head_65536x5280", 65536, 5280},
};
constexpr DType kTypes[] = {DType::BF16, DType::F16, DType::F32, DType::Q8_0, DType::Q4_0, DType::Q4_SB};

// Random weights of reasonable magnitude, filled directly in the target format.
void fill_weight(DType t, std::byte* p, int64_t rows, int64_t cols) {
  const size_t rb = dtype_row_bytes(t, cols), total = rb * static_cast<size_t>(rows);
  uint64_t s = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  };
  switch (t) {
    case DType::F32:
      for (size_t i = 0; i < total / 4; ++i) {
        float f = static_cast<float>(static_cast<int32_t>(next() >> 40) - (1 << 23)) * 1e-9f;
        std::memcpy(p + 4 * i, &f, 4);
      }
      return;
    case DType::BF16:
    case DType::F16:
      for (size_t i = 0; i < total / 2; ++i) {
        float f = static_cast<float>(static_cast<int32_t>(next() >> 40) - (1 << 23)) * 1e-9f;
        uint16_t h = t == DType::BF16 ? f32_to_bf16(f) : f32_to_f16(f);
        std::memcpy(p + 2 * i, &h, 2);
      }
      return;
    default: {
      for (size_t i = 0; i + 8 <= total; i += 8) {
        uint64_t v = next();
        std::memcpy(p + i, &v, 8);
      }
      const size_t bs = t == DType::Q8_0   ? sizeof(quant::BlockQ8_0)
                        : t == DType::Q4_0 ? sizeof(quant::BlockQ4_0)
                                           : sizeof(quant::BlockQ4SB);
      const uint16_t d = f32_to_f16(1e-3f);
      for (size_t i = 0; i + bs <= total; i += bs) std::memcpy(p + i, &d, 2);
      return;
    }
  }
}

void BM_Matmul(benchmark::State& state, DType t, Shape sh, int64_t n, cpu::MatmulPath path) {
  const size_t bytes = dtype_row_bytes(t, sh.cols) * static_cast<size_t>(sh.rows);
  AnonBuffer buf(bytes, huge_pages_wanted());
  fill_weight(t, buf.p, sh.rows, sh.cols);
  TensorView W;
  W.name = sh.name;
  W.dtype = t;
  W.shape = {sh.rows, sh.cols};
  W.data = buf.p;
  W.nbytes = bytes;
  std::vector<float> X(static_cast<size_t>(n * sh.cols)), Y(static_cast<size_t>(n * sh.rows));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (auto& x : X) x = nd(rng);
  cpu::matmul(pool(), W, X.data(), n, Y.data(), path);  // warm up
  double cpu0 = process_cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    cpu::matmul(pool(), W, X.data(), n, Y.data(), path);
    benchmark::DoNotOptimize(Y.data());
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double it = static_cast<double>(state.iterations());
  const double cpu = process_cpu_seconds() - cpu0;
  const double flops = 2.0 * static_cast<double>(sh.rows) * static_cast<double>(sh.cols) * static_cast<double>(n) * it;
  state.counters["GB/s"] = static_cast<double>(bytes) * it / 1e9 / wall;
  state.counters["GFLOP/s"] = flops / 1e9 / wall;
  state.counters["cpu"] = cpu / wall;
  // Per CPU-second (one core's rate while it runs; robust to neighbours).
  state.counters["GB/cpu_s"] = static_cast<double>(bytes) * it / 1e9 / cpu;
  state.counters["GFLOP/cpu_s"] = flops / 1e9 / cpu;
}

// Decode as the model streams it: the four matmuls of a layer (qkv, attn
// proj, fc, mlp proj) over two layers' worth of weights (445 MB in Q4_SB),
// far more than L3, so every call reads its weights from DRAM and the thread
// pool's row order matters. 4 KiB pages, like the page-cache mmap.
void BM_LayerStream(benchmark::State& state, DType t, int64_t n) {
  constexpr Shape layer[] = {kShapes[2], kShapes[1], kShapes[3], kShapes[4]};
  std::vector<std::unique_ptr<AnonBuffer>> bufs;
  std::vector<TensorView> W;
  size_t total = 0;
  for (int l = 0; l < 2; ++l)
    for (const Shape& sh : layer) {
      const size_t bytes = dtype_row_bytes(t, sh.cols) * static_cast<size_t>(sh.rows);
      bufs.push_back(std::make_unique<AnonBuffer>(bytes, false));
      fill_weight(t, bufs.back()->p, sh.rows, sh.cols);
      TensorView v;
      v.name = sh.name, v.dtype = t, v.shape = {sh.rows, sh.cols}, v.data = bufs.back()->p, v.nbytes = bytes;
      W.push_back(v);
      total += bytes;
    }
  std::vector<float> X(static_cast<size_t>(n * 17920)), Y(static_cast<size_t>(n * 35840));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (auto& x : X) x = nd(rng);
  double cpu0 = process_cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (const TensorView& w : W) cpu::matmul(pool(), w, X.data(), n, Y.data());
    benchmark::DoNotOptimize(Y.data());
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double it = static_cast<double>(state.iterations());
  state.counters["GB/s"] = static_cast<double>(total) * it / 1e9 / wall;
  state.counters["cpu"] = (process_cpu_seconds() - cpu0) / wall;
}

// OpenBLAS sgemm, for the prefill decision: Y = X W^T with W in f32 (and the
// cost of converting a BF16 weight to f32 first, per call).
using sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
sgemm_fn openblas_sgemm() {
  static sgemm_fn f = [] {
    void* h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) return static_cast<sgemm_fn>(nullptr);
    if (auto set = reinterpret_cast<void (*)(int)>(dlsym(h, "openblas_set_num_threads"))) set(bench_threads());
    return reinterpret_cast<sgemm_fn>(dlsym(h, "cblas_sgemm"));
  }();
  return f;
}

void BM_OpenBLAS(benchmark::State& state, Shape sh, int64_t n, bool convert_bf16) {
  sgemm_fn sgemm = openblas_sgemm();
  if (!sgemm) return state.SkipWithError("libopenblas.so.0 not found");
  const size_t elems = static_cast<size_t>(sh.rows * sh.cols);
  AnonBuffer wf(elems * 4, true), wb(elems * 2, true);
  fill_weight(DType::BF16, wb.p, sh.rows, sh.cols);
  to_f32(DType::BF16, wb.p, static_cast<int64_t>(elems), reinterpret_cast<float*>(wf.p));
  std::vector<float> X(static_cast<size_t>(n * sh.cols), 0.5f), Y(static_cast<size_t>(n * sh.rows));
  auto* w = reinterpret_cast<float*>(wf.p);
  double cpu0 = process_cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (convert_bf16) {
      pool().parallel_for(sh.rows, 64, [&](int64_t b, int64_t e, int) {
        to_f32(DType::BF16, wb.p + static_cast<size_t>(b * sh.cols) * 2, (e - b) * sh.cols, w + b * sh.cols);
      });
    }
    // CblasRowMajor=101, CblasNoTrans=111, CblasTrans=112
    sgemm(101, 111, 112, static_cast<int>(n), static_cast<int>(sh.rows), static_cast<int>(sh.cols), 1.0f, X.data(),
          static_cast<int>(sh.cols), w, static_cast<int>(sh.cols), 0.0f, Y.data(), static_cast<int>(sh.rows));
    benchmark::DoNotOptimize(Y.data());
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double it = static_cast<double>(state.iterations());
  const double cpu = process_cpu_seconds() - cpu0;
  const double flops = 2.0 * static_cast<double>(sh.rows) * static_cast<double>(sh.cols) * static_cast<double>(n) * it;
  state.counters["GFLOP/s"] = flops / 1e9 / wall;
  state.counters["cpu"] = cpu / wall;
  state.counters["GFLOP/cpu_s"] = flops / 1e9 / cpu;
}

// Small elementwise kernels at decode size.
void BM_Attention(benchmark::State& state) {
  const int64_t n = state.range(0), H = 55, D = 96, E = H * D;
  std::vector<float> kv(static_cast<size_t>(2 * n * E), 0.01f), q(E, 0.02f), out(E), scores(static_cast<size_t>(n));
  std::vector<const float*> k(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) k[j] = kv.data() + j * E, v[j] = kv.data() + (n + j) * E;
  for (auto _ : state) {
    for (int64_t h = 0; h < H; ++h)
      cpu::attention_row(q.data() + h * D, k.data(), v.data(), h * D, n, D, 0.1f, scores.data(), out.data() + h * D);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["KV GB/s"] = benchmark::Counter(static_cast<double>(2 * n * E * 4) * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Attention)->Arg(64)->Arg(1024)->Arg(4096);

void BM_SiluMul(benchmark::State& state) {
  const int64_t I = 17920;
  std::vector<float> gu(2 * I, 0.3f), y(I);
  for (auto _ : state) {
    cpu::silu_mul_row(gu.data(), gu.data() + I, I, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * I);
}
BENCHMARK(BM_SiluMul);

void BM_Rmsnorm(benchmark::State& state) {
  const int64_t E = 5280;
  std::vector<float> x(E, 0.3f), r(E, 0.1f), w(E, 1.0f), y(E);
  for (auto _ : state) {
    cpu::rmsnorm_row(x.data(), r.data(), w.data(), E, 1e-6f, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * E);
}
BENCHMARK(BM_Rmsnorm);

void BM_ParallelForOverhead(benchmark::State& state) {
  std::vector<int> sink(64);
  for (auto _ : state) {
    pool().parallel_for(64, 1, [&](int64_t b, int64_t, int tid) { sink[static_cast<size_t>(tid)] += static_cast<int>(b); });
    benchmark::DoNotOptimize(sink.data());
  }
}
BENCHMARK(BM_ParallelForOverhead)->UseRealTime();

const bool registered = [] {
  for (DType t : kTypes)
    for (const Shape& sh : kShapes)
      for (int64_t n : {1, 2, 4, 8, 64}) {
        const std::string name = std::string("BM_Matmul/") + std::string(dtype_name(t)) + "/" + sh.name + "/n:" + std::to_string(n);
        benchmark::RegisterBenchmark(name.c_str(), BM_Matmul, t, sh, n, cpu::MatmulPath::Auto)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond)
            ->MinTime(0.5);
      }
  for (DType t : {DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_SB})
    for (int64_t n : {1, 4}) {
      const std::string name = std::string("BM_LayerStream/") + std::string(dtype_name(t)) + "/n:" + std::to_string(n);
      benchmark::RegisterBenchmark(name.c_str(), BM_LayerStream, t, n)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  // Path crossover (small-n kernel vs GEMM) around kGemmMinTokens.
  for (DType t : {DType::BF16, DType::Q8_0})
    for (int64_t n : {8, 12, 16, 32})
      for (auto path : {cpu::MatmulPath::Small, cpu::MatmulPath::Gemm}) {
        const std::string name = std::string("BM_MatmulPath/") + std::string(dtype_name(t)) +
                                 (path == cpu::MatmulPath::Small ? "/small" : "/gemm") + "/n:" + std::to_string(n);
        benchmark::RegisterBenchmark(name.c_str(), BM_Matmul, t, kShapes[2], n, path)->UseRealTime()->Unit(benchmark::kMillisecond);
      }
  for (const Shape& sh : {kShapes[2], kShapes[4]})
    for (bool conv : {false, true}) {
      const std::string name = std::string("BM_OpenBLAS/") + sh.name + (conv ? "/bf16_convert" : "/f32") + "/n:64";
      benchmark::RegisterBenchmark(name.c_str(), BM_OpenBLAS, sh, int64_t{64}, conv)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  return true;
}();

}  // namespace
}  // namespace huginn
