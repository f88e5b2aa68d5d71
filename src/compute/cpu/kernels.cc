#include "compute/cpu/kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "compute/cpu/kernels_amx.h"
#include "compute/cpu/kernels_avx2.h"
#include "compute/cpu/kernels_vnni.h"
#include "compute/quant.h"

namespace huginn::cpu {

namespace {

// A kernel switch in the environment (HUGINN_FORCE_SCALAR=1, HUGINN_NO_*=1):
// set, non-empty and not "0".
[[maybe_unused]] bool env_on(const char* name) {
  const char* s = std::getenv(name);
  return s && *s && *s != '0';
}

bool detect_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  if (env_on("HUGINN_FORCE_SCALAR")) return false;
  __builtin_cpu_init();
  // F16C via cpuid (leaf 1, ecx bit 29): clang 14's __builtin_cpu_supports lacks "f16c".
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
  return false;
#endif
}

const bool g_has_avx2 = detect_avx2();
std::atomic<bool> g_force_scalar{false};

// AVX-512F for the prefill micro-kernel, which is bound by FMA throughput that
// 512-bit vectors double; decode is bound by memory and keeps the AVX2 kernels.
bool detect_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  if (env_on("HUGINN_NO_AVX512")) return false;
  __builtin_cpu_init();
  return g_has_avx2 && __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

const bool g_has_avx512 = detect_avx512();
std::atomic<bool> g_no_avx512{false};

// AVX-512 VNNI (with BW and VL, which every VNNI CPU has) for the int8 prefill
// GEMM of block-quantized weights: 64 int8 multiply-adds per instruction.
bool detect_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  if (env_on("HUGINN_NO_VNNI")) return false;
  __builtin_cpu_init();
  return g_has_avx512 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

const bool g_has_vnni = detect_vnni();
std::atomic<bool> g_no_vnni{false};

// AMX tiles with bf16 products for the BF16 prefill GEMM. Linux hands out
// the 8 KiB of tile state only on request (arch_prctl), once per process.
bool detect_amx() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__linux__)
  if (env_on("HUGINN_NO_AMX")) return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!g_has_avx512 || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return amx_bf16 && amx_tile && syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

const bool g_has_amx = detect_amx();
std::atomic<bool> g_no_amx{false};

// Intel CPUs prefetch the decode kernels' next rows into L2 (prefetch_l2()).
bool detect_intel() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_is("intel");
#else
  return false;
#endif
}

const bool g_prefetch_l2 = detect_intel() && !env_on("HUGINN_PREFETCH_L1");
std::atomic<bool> g_prefetch_l1{false};

// 8 independent partial sums so the compiler can vectorize without -ffast-math.
inline float dot8(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

bool is_quant(DType t) { return t == DType::Q8_0 || t == DType::Q4_0; }

// Exact integer dot of one Q4_SB super-block with its quantized activations.
int32_t q4sb_block_dot(const quant::BlockQ4SB& b, const int8_t* xq) {
  int32_t sub[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 160; ++i) sub[(i % 32) / 4] += (quant::q4sb_nibble(b, i) - 8) * xq[i];
  int32_t acc = 0;
  for (int j = 0; j < 8; ++j) acc += b.sc[j] * sub[j];
  return acc;
}

// One Q4_SB weight row against one token's activations, summed in Acc
// (float for the fallback kernel, double for the reference).
template <typename Acc>
Acc q4sb_row_dot(const std::byte* row, const SuperActs& sa, int64_t t) {
  const auto* blk = reinterpret_cast<const quant::BlockQ4SB*>(row);
  const int64_t nsb = sa.cols / 160;
  Acc s = 0;
  for (int64_t i = 0; i < nsb; ++i)
    s += static_cast<Acc>(q4sb_block_dot(blk[i], sa.q + t * sa.cols + i * 160)) *
         (static_cast<Acc>(f16_to_f32(blk[i].d)) * sa.d[t * nsb + i]);
  return s;
}

struct SuperActBuffers {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int16_t> xs;
  SuperActs get(int64_t n, int64_t cols) {
    const size_t nsb = static_cast<size_t>(n * (cols / 160));
    q.resize(static_cast<size_t>(n * cols));
    d.resize(nsb);
    xs.resize(nsb * 16);
    return {n, cols, q.data(), d.data(), xs.data()};
  }
};

// Integer dot of one quantized weight row against one quantized activation
// row, float accumulation per block (the portable version of the AVX2 kernel).
float quant_row_dot(DType t, const std::byte* row, const int8_t* xq, const float* xd, const int32_t* xs, int64_t nb) {
  float s = 0;
  if (t == DType::Q8_0) {
    const auto* b = reinterpret_cast<const quant::BlockQ8_0*>(row);
    for (int64_t i = 0; i < nb; ++i) {
      int32_t acc = 0;
      for (int j = 0; j < 32; ++j) acc += static_cast<int32_t>(b[i].q[j]) * xq[i * 32 + j];
      s += static_cast<float>(acc) * (f16_to_f32(b[i].d) * xd[i]);
    }
  } else {
    const auto* b = reinterpret_cast<const quant::BlockQ4_0*>(row);
    for (int64_t i = 0; i < nb; ++i) {
      int32_t acc = 0;
      for (int j = 0; j < 16; ++j)
        acc += (b[i].q[j] & 0x0f) * xq[i * 32 + j] + (b[i].q[j] >> 4) * xq[i * 32 + 16 + j];
      acc -= 8 * xs[i];
      s += static_cast<float>(acc) * (f16_to_f32(b[i].d) * xd[i]);
    }
  }
  return s;
}

struct ActBuffers {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> s;
  QuantizedActs get(int64_t n, int64_t cols) {
    const size_t nb = static_cast<size_t>(n * (cols / 32));
    q.resize(static_cast<size_t>(n * cols));
    d.resize(nb);
    s.resize(nb);
    return {n, cols, q.data(), d.data(), s.data()};
  }
};

void matmul_scalar(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y) {
  const int64_t rows = W.rows(), cols = W.cols();
  const size_t row_bytes = dtype_row_bytes(W.dtype, cols);
  if (W.dtype == DType::Q4_SB) {
    thread_local SuperActBuffers buf;
    SuperActs sa = buf.get(n, cols);
    quantize_acts_sb_ref(X, n, cols, sa);
    pool.parallel_for(rows, 16, [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r)
        for (int64_t t = 0; t < n; ++t) Y[t * rows + r] = q4sb_row_dot<float>(W.data + static_cast<size_t>(r) * row_bytes, sa, t);
    });
    return;
  }
  if (is_quant(W.dtype)) {
    thread_local ActBuffers buf;
    QuantizedActs qa = buf.get(n, cols);
    quantize_acts_ref(X, n, cols, qa);
    const int64_t nb = cols / 32;
    pool.parallel_for(rows, 16, [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r)
        for (int64_t t = 0; t < n; ++t)
          Y[t * rows + r] = quant_row_dot(W.dtype, W.data + static_cast<size_t>(r) * row_bytes, qa.q + t * cols,
                                          qa.d + t * nb, qa.sum + t * nb, nb);
    });
    return;
  }
  pool.parallel_for(rows, 16, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<float> w;
    if (w.size() < static_cast<size_t>(cols)) w.resize(static_cast<size_t>(cols));
    for (int64_t r = b; r < e; ++r) {
      to_f32(W.dtype, W.data + static_cast<size_t>(r) * row_bytes, cols, w.data());
      for (int64_t t = 0; t < n; ++t) Y[t * rows + r] = dot8(w.data(), X + t * cols, cols);
    }
  });
}

}  // namespace

bool use_avx2() { return g_has_avx2 && !g_force_scalar.load(std::memory_order_relaxed); }
void force_scalar(bool on) { g_force_scalar.store(on, std::memory_order_relaxed); }
bool use_avx512() { return g_has_avx512 && use_avx2() && !g_no_avx512.load(std::memory_order_relaxed); }
void disable_avx512(bool on) { g_no_avx512.store(on, std::memory_order_relaxed); }
bool use_vnni() { return g_has_vnni && use_avx512() && !g_no_vnni.load(std::memory_order_relaxed); }
void disable_vnni(bool on) { g_no_vnni.store(on, std::memory_order_relaxed); }
bool use_amx() { return g_has_amx && use_avx512() && !g_no_amx.load(std::memory_order_relaxed); }
void disable_amx(bool on) { g_no_amx.store(on, std::memory_order_relaxed); }
bool prefetch_l2() { return g_prefetch_l2 && !g_prefetch_l1.load(std::memory_order_relaxed); }
void force_prefetch_l1(bool on) { g_prefetch_l1.store(on, std::memory_order_relaxed); }
std::string kernel_isa() {
  if (!use_avx2()) return "scalar";
  std::string s = "avx2+fma+f16c";
  if (use_avx512()) s += ", avx512f gemm";
  if (use_vnni()) s += ", avx512vnni int8 gemm and decode";
  if (use_amx()) s += ", amx bf16 gemm";
  if (prefetch_l2()) s += ", L2 prefetch";
  return s;
}

void quantize_acts_ref(const float* X, int64_t n, int64_t cols, QuantizedActs& out) {
  const int64_t nb = cols / 32;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      const float* x = X + t * cols + b * 32;
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
      const float d = amax / 127.0f;
      const float id = d != 0 ? 1.0f / d : 0.0f;
      int32_t sum = 0;
      for (int j = 0; j < 32; ++j) {
        const auto q = static_cast<int8_t>(std::nearbyint(x[j] * id));
        out.q[t * cols + b * 32 + j] = q;
        sum += q;
      }
      out.d[t * nb + b] = d;
      out.sum[t * nb + b] = sum;
    }
}

void quantize_acts_sb_ref(const float* X, int64_t n, int64_t cols, SuperActs& out) {
  const int64_t nsb = cols / 160;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t b = 0; b < nsb; ++b) {
      const float* x = X + t * cols + b * 160;
      int8_t* q = out.q + t * cols + b * 160;
      float amax = 0;
      for (int j = 0; j < 160; ++j) amax = std::max(amax, std::fabs(x[j]));
      const float d = amax / 127.0f;
      const float id = d != 0 ? 1.0f / d : 0.0f;
      int16_t* xs = out.xs + (t * nsb + b) * 16;
      std::fill(xs, xs + 16, int16_t{0});
      for (int j = 0; j < 160; ++j) {
        q[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
        xs[(j % 32) / 2] = static_cast<int16_t>(xs[(j % 32) / 2] + 8 * q[j]);
      }
      out.d[t * nsb + b] = d;
    }
}

void matmul(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y, MatmulPath path) {
  if (n <= 0 || W.rows() <= 0) return;
  if (!use_avx2()) return matmul_scalar(pool, W, X, n, Y);
  if (path == MatmulPath::Auto) path = n >= kGemmMinTokens ? MatmulPath::Gemm : MatmulPath::Small;
  if (path == MatmulPath::Small) return avx2::matmul_small(pool, W, X, n, Y);
  const bool block_quant = W.dtype == DType::Q8_0 || W.dtype == DType::Q4_0 || W.dtype == DType::Q4_SB;
  void (*unit_gemm)(ThreadPool&, const TensorView&, const float*, int64_t, float*) = nullptr;
  if (block_quant && use_vnni())
    unit_gemm = vnni::gemm;
  else if (W.dtype == DType::BF16 && W.cols() % 32 == 0 && W.rows() >= 32 && use_amx())
    unit_gemm = amx::gemm;
  if (!unit_gemm) return avx2::gemm(pool, W, X, n, Y, use_avx512());
  // Long prompts go to the VNNI / AMX GEMMs in blocks of 256 tokens: their
  // packed activations (kept per thread for reuse) stay bounded and in cache,
  // and each block reads the weights again, which at 256 tokens costs little.
  // GEMM 5280x5280, 2 threads: BF16 542 GFLOP/s at n=256 against 398 at
  // n=1024 in one piece; Q8_0 704 against 548.
  constexpr int64_t kBlock = 256;
  for (int64_t t0 = 0; t0 < n; t0 += kBlock)
    unit_gemm(pool, W, X + t0 * W.cols(), std::min(kBlock, n - t0), Y + t0 * W.rows());
}

void matmul(ThreadPool& pool, const TensorView& W, const float* X, int64_t n, float* Y) {
  matmul(pool, W, X, n, Y, MatmulPath::Auto);
}

void rmsnorm_row(const float* x, const float* r, const float* w, int64_t dim, float eps, float* y) {
  if (use_avx2()) return avx2::rmsnorm_row(x, r, w, dim, eps, y);
  ref::rmsnorm_row(x, r, w, dim, eps, y);
}

void silu_mul_row(const float* g, const float* u, int64_t n, float* y) {
  if (use_avx2()) return avx2::silu_mul_row(g, u, n, y);
  ref::silu_mul_row(g, u, n, y);
}

void bias_rope_row(float* x, const float* bias, const float* cos, const float* sin, int64_t n_heads,
                   int64_t head_dim) {
  if (use_avx2()) return avx2::bias_rope_row(x, bias, cos, sin, n_heads, head_dim);
  ref::bias_rope_row(x, bias, cos, sin, n_heads, head_dim);
}

void attention_row(const float* q, const float* const* k, const float* const* v, int64_t off, int64_t n, int64_t d,
                   float scale, float* scores, float* out) {
  if (use_avx2()) return avx2::attention_row(q, k, v, off, n, d, scale, scores, out);
  ref::attention_row(q, k, v, off, n, d, scale, scores, out);
}

namespace ref {

void rmsnorm_row(const float* x, const float* r, const float* w, int64_t dim, float eps, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < dim; ++i) {
    float v = r ? x[i] + r[i] : x[i];
    ss += static_cast<double>(v) * v;
  }
  float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + eps);
  for (int64_t i = 0; i < dim; ++i) {
    float v = r ? x[i] + r[i] : x[i];
    y[i] = (v * inv) * w[i];
  }
}

void silu_mul_row(const float* g, const float* u, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void bias_rope_row(float* x, const float* bias, const float* c, const float* s, int64_t n_heads, int64_t head_dim) {
  const int64_t E = n_heads * head_dim, half = head_dim / 2;
  if (bias)
    for (int64_t i = 0; i < E; ++i) x[i] += bias[i];
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    for (int64_t j = 0; j < half; ++j) {
      float a = xh[2 * j], bb = xh[2 * j + 1];
      xh[2 * j] = a * c[j] - bb * s[j];
      xh[2 * j + 1] = bb * c[j] + a * s[j];
    }
  }
}

void attention_row(const float* q, const float* const* k, const float* const* v, int64_t off, int64_t n, int64_t d,
                   float scale, float* scores, float* out) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    scores[j] = dot8(q, k[j] + off, d) * scale;
    mx = std::max(mx, scores[j]);
  }
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - mx);
    sum += scores[j];
  }
  std::fill(out, out + d, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float p = scores[j] / sum;
    const float* vj = v[j] + off;
    for (int64_t i = 0; i < d; ++i) out[i] += p * vj[i];
  }
}

float dot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(s);
}

void matmul(const TensorView& W, const float* X, int64_t n, float* Y) {
  const int64_t rows = W.rows(), cols = W.cols();
  const size_t row_bytes = dtype_row_bytes(W.dtype, cols);
  std::vector<float> w(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    to_f32(W.dtype, W.data + static_cast<size_t>(r) * row_bytes, cols, w.data());
    for (int64_t t = 0; t < n; ++t) Y[t * rows + r] = dot(w.data(), X + t * cols, cols);
  }
}

void matmul_q8act(const TensorView& W, const float* X, int64_t n, float* Y) {
  const int64_t rows = W.rows(), cols = W.cols(), nb = cols / 32;
  const size_t row_bytes = dtype_row_bytes(W.dtype, cols);
  if (W.dtype == DType::Q4_SB) {
    SuperActBuffers buf;
    SuperActs sa = buf.get(n, cols);
    quantize_acts_sb_ref(X, n, cols, sa);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < n; ++t)
        Y[t * rows + r] = static_cast<float>(q4sb_row_dot<double>(W.data + static_cast<size_t>(r) * row_bytes, sa, t));
    return;
  }
  ActBuffers buf;
  QuantizedActs qa = buf.get(n, cols);
  quantize_acts_ref(X, n, cols, qa);
  for (int64_t r = 0; r < rows; ++r) {
    const std::byte* row = W.data + static_cast<size_t>(r) * row_bytes;
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int64_t i = 0; i < nb; ++i) {
        int32_t acc = 0;
        const int8_t* xq = qa.q + t * cols + i * 32;
        if (W.dtype == DType::Q8_0) {
          const auto* b = reinterpret_cast<const quant::BlockQ8_0*>(row) + i;
          for (int j = 0; j < 32; ++j) acc += b->q[j] * xq[j];
          s += static_cast<double>(acc) * f16_to_f32(b->d) * qa.d[t * nb + i];
        } else {
          const auto* b = reinterpret_cast<const quant::BlockQ4_0*>(row) + i;
          for (int j = 0; j < 16; ++j) acc += ((b->q[j] & 0x0f) - 8) * xq[j] + ((b->q[j] >> 4) - 8) * xq[16 + j];
          s += static_cast<double>(acc) * f16_to_f32(b->d) * qa.d[t * nb + i];
        }
      }
      Y[t * rows + r] = static_cast<float>(s);
    }
  }
}

}  // namespace ref
}  // namespace huginn::cpu
