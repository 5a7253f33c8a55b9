/* Throughput of the qs8 GEMM kernels on 1x1-convolution shapes (M = 56*56
 * pixels, K input and N output channels; activations ~K*3 KiB and weights
 * in L2/L1), as GMAC/s and as a fraction of this core's int16
 * multiply-add peak measured in the same run (benchmarks/peak). Also the
 * f32 6x16 GEMM against the FMA peak. One thread; each figure is the
 * median of repeated runs.
 * Usage: kestrel-bench-kernels [runs] (default 31). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels_isa.h"
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

/* Median over runs; *best gets the fastest run (on a shared, loaded machine
 * the best run is the one least disturbed by other tenants). */
static double best_run;
static double median_gmacs(int runs, double macs, void (*call)(void *), void *ctx) {
  double r[101];
  if (runs > 101) runs = 101;
  call(ctx); /* warm caches */
  for (int i = 0; i < runs; i++) {
    double t0 = now();
    call(ctx);
    r[i] = macs / (now() - t0) * 1e-9;
  }
  qsort(r, (size_t)runs, sizeof *r, cmp_double);
  best_run = r[runs - 1];
  return r[runs / 2];
}

typedef struct {
  kn_qs8_gemm_fn fn;
  size_t m, n, k;
  int8_t *a, *c;
  void *packed;
  kn_qs8_requant rq;
} qs8_ctx;

static void call_qs8(void *p) {
  qs8_ctx *x = p;
  x->fn(x->m, x->n, x->k, x->a, x->k, x->packed, x->c, x->n, &x->rq);
}

typedef struct {
  kn_f32_gemm_fn fn;
  size_t m, n, k;
  float *a, *c;
  void *packed;
} f32_ctx;

static void call_f32(void *p) {
  f32_ctx *x = p;
  x->fn(x->m, x->n, x->k, x->a, x->k, x->packed, x->c, x->n, -1e30f, 1e30f);
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 31;
  if (runs < 1) runs = 1;
  const kn_kernels *kern = kn_kernels_get();
  double peak_i16 = kn_peak_int16_gmacs(51), peak_f32 = kn_peak_f32_gmacs(51);
  printf("kernels %s; int16 multiply-add peak %.1f GMAC/s (%s); f32 FMA peak %.1f GMAC/s\n",
         kern->name, peak_i16, kn_peak_int16_insn(), peak_f32);
  printf("cells: median GMAC/s (median %% of peak) / best run %% of peak\n");

  struct { const char *name; kn_qs8_gemm_fn fn; } qs8[] = {
      {"qs8_gemm (table)", kern->qs8_gemm},
#ifdef KESTREL_HAVE_AVX2
      {"qs8_gemm_1x8__avx2", kern->isa == KN_ISA_AVX2 ? kestrel_qs8_gemm_1x8__avx2 : NULL},
      {"qs8_gemm_2x8__avx2", kern->isa == KN_ISA_AVX2 ? kestrel_qs8_gemm_2x8__avx2 : NULL},
      {"qs8_gemm_3x8__avx2", kern->isa == KN_ISA_AVX2 ? kestrel_qs8_gemm_3x8__avx2 : NULL},
      {"qs8_gemm_4x8__avx2", kern->isa == KN_ISA_AVX2 ? kestrel_qs8_gemm_4x8__avx2 : NULL},
#endif
#ifdef KESTREL_HAVE_AVXVNNI
      /* vpdpbusd does 4 multiply-adds per int32 lane, so against the
       * vpmaddwd (2 per lane) peak these can pass 100%. */
      {"qs8_gemm_4x8__avxvnni", kn_cpu_has_avxvnni() ? kestrel_qs8_gemm_4x8__avxvnni : NULL},
      {"qs8_gemm_6x8__avxvnni", kn_cpu_has_avxvnni() ? kestrel_qs8_gemm_6x8__avxvnni : NULL},
#endif
  };
  static const size_t shapes[][2] = {{64, 64},   {64, 128},  {128, 128}, {128, 256},
                                     {256, 256}, {256, 64}, {96, 576}, {576, 96}};
  const size_t M = 56 * 56;
  printf("\nqs8 1x1 conv, M=%zu (56x56 pixels): GMAC/s and fraction of int16 peak\n", M);
  printf("%-22s", "K x N");
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    char b[32];
    snprintf(b, sizeof b, "%zux%zu", shapes[s][0], shapes[s][1]);
    printf("%18s", b);
  }
  printf("\n");
  for (size_t f = 0; f < sizeof qs8 / sizeof *qs8; f++) {
    if (!qs8[f].fn) continue;
    printf("%-22s", qs8[f].name);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
      size_t K = shapes[s][0], N = shapes[s][1];
      qs8_ctx x = {qs8[f].fn, M, N, K, malloc(M * K), malloc(M * N),
                   malloc(kn_qs8_gemm_packed_size(N, K)), {0}};
      int8_t *w = malloc(N * K);
      int32_t *bias = calloc(N, sizeof *bias);
      float *scale = malloc(N * sizeof *scale);
      for (size_t i = 0; i < M * K; i++) x.a[i] = (int8_t)(rand() & 0xFF);
      for (size_t i = 0; i < N * K; i++) w[i] = (int8_t)(rand() % 255 - 127);
      for (size_t i = 0; i < N; i++) scale[i] = 0.001f;
      kn_qs8_gemm_pack(N, K, w, bias, 3, x.packed);
      x.rq = (kn_qs8_requant){scale, -2, -128, 127};
      double g = median_gmacs(runs, (double)M * N * K, call_qs8, &x);
      char b[48];
      snprintf(b, sizeof b, "%.1f (%2.0f%%)/%2.0f%%", g, 100.0 * g / peak_i16,
               100.0 * best_run / peak_i16);
      printf("%18s", b);
      free(x.a); free(x.c); free(x.packed); free(w); free(bias); free(scale);
    }
    printf("\n");
  }

  printf("\nf32 GEMM, M=%zu: GMAC/s and fraction of f32 FMA peak\n", M);
  printf("%-22s", "f32_gemm (table)");
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    size_t K = shapes[s][0], N = shapes[s][1];
    f32_ctx x = {kern->f32_gemm, M, N, K, malloc(M * K * 4), malloc(M * N * 4),
                 malloc(kn_f32_gemm_packed_size(N, K))};
    float *w = malloc(N * K * 4);
    for (size_t i = 0; i < M * K; i++) x.a[i] = (float)(rand() % 100) * 0.01f;
    for (size_t i = 0; i < N * K; i++) w[i] = (float)(rand() % 100) * 0.01f;
    kn_f32_gemm_pack(N, K, w, NULL, x.packed);
    double g = median_gmacs(runs, (double)M * N * K, call_f32, &x);
    char b[48];
    snprintf(b, sizeof b, "%.1f (%2.0f%%)/%2.0f%%", g, 100.0 * g / peak_f32,
             100.0 * best_run / peak_f32);
    printf("%18s", b);
    free(x.a); free(x.c); free(x.packed); free(w);
  }
  printf("\n");
  return 0;
}
