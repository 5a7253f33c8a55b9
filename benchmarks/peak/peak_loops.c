/* This core's arithmetic peaks, measured: the throughput of independent
 * vpmaddwd (int16 multiply-add: 16 products summed in pairs into 8 int32,
 * counted as 16 MACs) and vfmadd231ps (8 f32 MACs) on 256-bit registers,
 * and the NEON equivalents (smlal: 8 int16 MACs into int32; fmla.4s: 4 f32
 * MACs). Each loop issues 12 independent instructions per iteration so
 * neither latency nor a dependency chain limits it; the result is the
 * median of many short timed runs, in GMAC/s. One thread. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "peak.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ~2 ms per run: short enough that most runs on a shared machine are not
 * preempted, so the median is the undisturbed rate (a long run would
 * average in the time stolen by other tenants). */
#define ITERS 400000L

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void loop_pmaddwd(long n) {
  __asm__ volatile(
      "vpxor %%ymm14, %%ymm14, %%ymm14\n\t"
      "vpxor %%ymm15, %%ymm15, %%ymm15\n\t"
      "1:\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm0\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm1\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm2\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm3\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm4\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm5\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm6\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm7\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm8\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm9\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm10\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm11\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm14", "xmm15", "cc");
}

/* Twelve accumulation chains (latency 4-5 cycles, 2 per cycle: 12 chains
 * cover it). */
__attribute__((target("avx2,fma"))) static void loop_fma(long n) {
  __asm__ volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
      "vxorps %%ymm1, %%ymm1, %%ymm1\n\t"
      "vxorps %%ymm2, %%ymm2, %%ymm2\n\t"
      "vxorps %%ymm3, %%ymm3, %%ymm3\n\t"
      "vxorps %%ymm4, %%ymm4, %%ymm4\n\t"
      "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
      "vxorps %%ymm6, %%ymm6, %%ymm6\n\t"
      "vxorps %%ymm7, %%ymm7, %%ymm7\n\t"
      "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"
      "vxorps %%ymm9, %%ymm9, %%ymm9\n\t"
      "vxorps %%ymm10, %%ymm10, %%ymm10\n\t"
      "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
      "vxorps %%ymm14, %%ymm14, %%ymm14\n\t"
      "vxorps %%ymm15, %%ymm15, %%ymm15\n\t"
      "1:\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm1\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm3\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm7\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm9\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm11\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm14", "xmm15", "cc");
}
#define INT_MACS_PER_INSN 16.0
#define F32_MACS_PER_INSN 8.0
#define HAVE_PEAK 1
#elif defined(__aarch64__)
static void loop_pmaddwd(long n) {
  __asm__ volatile(
      "movi v30.8h, #1\n\t"
      "movi v31.8h, #2\n\t"
      "1:\n\t"
      "smlal v0.4s, v30.4h, v31.4h\n\t"
      "smlal v1.4s, v30.4h, v31.4h\n\t"
      "smlal v2.4s, v30.4h, v31.4h\n\t"
      "smlal v3.4s, v30.4h, v31.4h\n\t"
      "smlal v4.4s, v30.4h, v31.4h\n\t"
      "smlal v5.4s, v30.4h, v31.4h\n\t"
      "smlal v6.4s, v30.4h, v31.4h\n\t"
      "smlal v7.4s, v30.4h, v31.4h\n\t"
      "smlal v16.4s, v30.4h, v31.4h\n\t"
      "smlal v17.4s, v30.4h, v31.4h\n\t"
      "smlal v18.4s, v30.4h, v31.4h\n\t"
      "smlal v19.4s, v30.4h, v31.4h\n\t"
      "subs %0, %0, #1\n\t"
      "b.ne 1b\n\t"
      : "+r"(n)
      :
      : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18",
        "v19", "v30", "v31", "cc");
}
static void loop_fma(long n) {
  __asm__ volatile(
      "movi v30.4s, #0\n\t"
      "movi v31.4s, #0\n\t"
      "1:\n\t"
      "fmla v0.4s, v30.4s, v31.4s\n\t"
      "fmla v1.4s, v30.4s, v31.4s\n\t"
      "fmla v2.4s, v30.4s, v31.4s\n\t"
      "fmla v3.4s, v30.4s, v31.4s\n\t"
      "fmla v4.4s, v30.4s, v31.4s\n\t"
      "fmla v5.4s, v30.4s, v31.4s\n\t"
      "fmla v6.4s, v30.4s, v31.4s\n\t"
      "fmla v7.4s, v30.4s, v31.4s\n\t"
      "fmla v16.4s, v30.4s, v31.4s\n\t"
      "fmla v17.4s, v30.4s, v31.4s\n\t"
      "fmla v18.4s, v30.4s, v31.4s\n\t"
      "fmla v19.4s, v30.4s, v31.4s\n\t"
      "subs %0, %0, #1\n\t"
      "b.ne 1b\n\t"
      : "+r"(n)
      :
      : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18",
        "v19", "v30", "v31", "cc");
}
#define INT_MACS_PER_INSN 4.0
#define F32_MACS_PER_INSN 4.0
#define HAVE_PEAK 1
#endif

#ifdef HAVE_PEAK
static double measure(void (*loop)(long), double macs_per_insn, int runs) {
  double rates[101];
  if (runs > 101) runs = 101;
  if (runs < 1) runs = 1;
  loop(ITERS / 10); /* warm up: clocks, power state */
  for (int r = 0; r < runs; r++) {
    double t0 = now();
    loop(ITERS);
    double t = now() - t0;
    rates[r] = (double)ITERS * 12.0 * macs_per_insn / t * 1e-9;
  }
  qsort(rates, (size_t)runs, sizeof *rates, cmp_double);
  return rates[runs / 2];
}

double kn_peak_int16_gmacs(int runs) {
  return measure(loop_pmaddwd, INT_MACS_PER_INSN, runs);
}
double kn_peak_f32_gmacs(int runs) {
  return measure(loop_fma, F32_MACS_PER_INSN, runs);
}
const char *kn_peak_int16_insn(void) {
#if defined(__x86_64__)
  return "vpmaddwd ymm (16 MACs)";
#else
  return "smlal .4s (4 MACs)";
#endif
}
#else
double kn_peak_int16_gmacs(int runs) { (void)runs; return 0.0; }
double kn_peak_f32_gmacs(int runs) { (void)runs; return 0.0; }
const char *kn_peak_int16_insn(void) { return "none"; }
#endif
