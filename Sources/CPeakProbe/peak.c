// Twelve independent accumulators per round: enough to cover the FMA latency (4-5 cycles) on two
// pipes, so the loop runs at the issue rate rather than the dependency chain's. The target
// attributes let this one file carry AVX-512 and AVX2 code whatever the package is compiled for;
// the CPU is asked at run time which it can execute.
#include "CPeakProbe.h"
#include <immintrin.h>

#define CHAINS 12

int attn_fma_width(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return 16;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
  return 0;
}

// Named accumulators, not an array: an array is kept in memory and each FMA waits on a load and a
// store.
#define ROUND(FMA)                                                                                  \
  a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c);                  \
  a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c);                  \
  a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c);
#define SUM (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11)

__attribute__((target("avx512f"))) static double probe512(long rounds) {
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3);
  __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7);
  __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
  for (long r = 0; r < rounds; r++) {
    ROUND(_mm512_fmadd_ps)
  }
  volatile float sink = _mm512_reduce_add_ps(SUM);  // keeps the loop from being optimised away
  (void)sink;
  return (double)rounds * CHAINS * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double probe256(long rounds) {
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3);
  __m256 a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7);
  __m256 a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
  for (long r = 0; r < rounds; r++) {
    ROUND(_mm256_fmadd_ps)
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, SUM);
  volatile float sink = lanes[0];
  (void)sink;
  return (double)rounds * CHAINS * 8 * 2;
}

// Scalar fallback: without FMA the peak is a multiply and an add per cycle per lane, which the
// compiler's plain loop approximates.
static double probeScalar(long rounds) {
#define MULADD(x, y, z) ((x) * (y) + (z))
  const float m = 0.999999f, c = 1e-7f;
  float a0 = 0, a1 = 1, a2 = 2, a3 = 3, a4 = 4, a5 = 5, a6 = 6, a7 = 7, a8 = 8, a9 = 9, a10 = 10, a11 = 11;
  for (long r = 0; r < rounds; r++) {
    ROUND(MULADD)
  }
  volatile float sink = SUM;
  (void)sink;
  return (double)rounds * CHAINS * 2;
}

double attn_fma_probe(long rounds) {
  switch (attn_fma_width()) {
  case 16: return probe512(rounds);
  case 8: return probe256(rounds);
  default: return probeScalar(rounds);
  }
}
