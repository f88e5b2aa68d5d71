// The int8 VNNI probe's inner loop (vpdpbusd on 512-bit vectors), compiled
// for AVX-512 VNNI (called only after a CPU check).
#include <immintrin.h>

#include <cstdint>

namespace huginn::probe {

// 16 independent chains, as in the FMA probe; 64 multiply-adds per instruction.
int32_t vnni_loop(int64_t iters) {
  __m512i a[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_epi32(i);
  const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-1);
  for (int64_t k = 0; k < iters; ++k) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) a[i] = _mm512_dpbusd_epi32(a[i], u, s);
  }
  __m512i sum = a[0];
#pragma GCC unroll 16
  for (int i = 1; i < 16; ++i) sum = _mm512_add_epi32(sum, a[i]);
  int32_t out[16];
  _mm512_storeu_si512(out, sum);
  return out[0];
}

}  // namespace huginn::probe
