// The FMA probe's inner loop for 512-bit vectors, compiled for AVX-512F
// (called only after a CPU check).
#include <immintrin.h>

#include <cstdint>

namespace huginn::probe {

// 16 independent chains cover the 4-cycle latency on two 512-bit FMA ports.
float fma_loop_avx512(int64_t iters) {
  __m512 a[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  }
  __m512 s = a[0];
#pragma GCC unroll 16
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
  float out[16];  // not _mm512_reduce_add_ps: GCC 12's header warns inside it
  _mm512_storeu_ps(out, s);
  return out[0];
}

}  // namespace huginn::probe
