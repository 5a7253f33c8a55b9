/* The qs8 direct conv for few input channels (nn/kernels/qs8-conv-smallc):
 * the reference against a naive convolution on unpacked weights, and every
 * SIMD variant this machine runs against the reference, byte for byte, over
 * shapes that break its tiles: C = 1..5 and 8, kernel rows of 1..32
 * elements, widths 1..13 and 96/97 (pixel tails of 6- and 12-wide tiles),
 * N = 1..40 (channel-block tails), strides 1..3, asymmetric and oversized
 * pads, dilated rows, partial row ranges. Extreme values (activations and
 * zero points at -128/127, weights at +-127) are in every sweep: they are
 * what overflows an int16 sum. A failing case prints every parameter.
 * Exit status: number of failures (capped). KESTREL_TEST_QUICK=1 shrinks
 * the sweep (qemu). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_isa.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}
static int rnd_range(int lo, int hi) {
  return lo + (int)(rnd() % (uint32_t)(hi - lo + 1));
}

static int failures, cases;

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

typedef struct variant {
  const char *name;
  kn_qs8_conv_smallc_fn fn;
} variant;

/* Output size of one spatial axis, as the graph computes it. */
static size_t out_size(size_t in, size_t k, size_t s, size_t d, size_t p0,
                       size_t p1) {
  size_t span = (k - 1) * d + 1;
  if (in + p0 + p1 < span)
    return 0;
  return (in + p0 + p1 - span) / s + 1;
}

static void describe(const kn_conv_geometry *g, size_t n, int32_t az,
                     const kn_qs8_requant *rq, int fill, char *buf,
                     size_t size) {
  snprintf(buf, size,
           "H%zu W%zu C%zu -> N%zu out %zux%zu k%zux%zu s%zux%zu dh%zu pad "
           "t%zu l%zu az %d zp %d clamp [%d,%d] fill %d",
           g->in_h, g->in_w, g->in_c, n, g->out_h, g->out_w, g->kernel_h,
           g->kernel_w, g->stride_h, g->stride_w, g->dilation_h, g->pad_top,
           g->pad_left, (int)az, (int)rq->zero_point, (int)rq->out_min,
           (int)rq->out_max, fill);
}

/* fill: 0 random, 1 extremes (x and w at their ends, the worst sums). */
static void run_case(const variant *vs, size_t nv, size_t in_h, size_t in_w,
                     size_t c, size_t n, size_t kh, size_t kw, size_t sh,
                     size_t sw, size_t dh, size_t pt, size_t pl, size_t pb,
                     size_t pr, int fill) {
  kn_conv_geometry g = {.in_h = in_h,
                        .in_w = in_w,
                        .in_c = c,
                        .kernel_h = kh,
                        .kernel_w = kw,
                        .stride_h = sh,
                        .stride_w = sw,
                        .dilation_h = dh,
                        .dilation_w = 1,
                        .pad_top = pt,
                        .pad_left = pl};
  g.out_h = out_size(in_h, kh, sh, dh, pt, pb);
  g.out_w = out_size(in_w, kw, sw, 1, pl, pr);
  if (!g.out_h || !g.out_w)
    return;
  if (!kn_qs8_conv_smallc_fits(&g, n)) {
    failures++;
    fprintf(stderr, "FAIL: fits() refuses a valid small-C geometry\n");
    return;
  }
  cases++;
  size_t k = kh * kw * c, m = g.out_h * g.out_w;
  int8_t *x = xmalloc(in_h * in_w * c), *w = xmalloc(n * k);
  int32_t *bias = xmalloc(n * sizeof(int32_t));
  float *scale = xmalloc(n * sizeof(float));
  int32_t az = fill ? (rnd() & 1 ? -128 : 127) : rnd_range(-128, 127);
  for (size_t i = 0; i < in_h * in_w * c; i++)
    x[i] = (int8_t)(fill ? (rnd() & 1 ? -128 : 127) : rnd_range(-128, 127));
  for (size_t i = 0; i < n * k; i++)
    w[i] = (int8_t)(fill ? (rnd() & 1 ? -127 : 127) : rnd_range(-127, 127));
  for (size_t i = 0; i < n; i++) {
    bias[i] = rnd_range(-100000, 100000);
    /* Some channels' scales small enough to land inside the range. */
    scale[i] = (float)rnd_range(1, 1000) * (i % 3 ? 1e-6f : 1e-4f);
    if (i % 13 == 12) /* products past the int32 range either way */
      scale[i] = 1e30f;
    if (i % 17 == 16)
      scale[i] = 0.0f;
  }
  kn_qs8_requant rq = {scale, rnd_range(-128, 127), -128, 127};
  if (rnd() % 3 == 0) { /* a fused clamp */
    rq.out_min = rnd_range(-128, rq.zero_point);
    rq.out_max = rnd_range(rq.out_min, 127);
  }
  void *packed = xmalloc(kn_qs8_gemm_packed_size(n, k));
  kn_qs8_gemm_pack(n, k, w, bias, az, packed);
  /* Naive oracle: the int8 convolution on unpacked weights. */
  int8_t *want = xmalloc(m * n);
  for (size_t oy = 0; oy < g.out_h; oy++)
    for (size_t ox = 0; ox < g.out_w; ox++)
      for (size_t o = 0; o < n; o++) {
        int64_t acc = bias[o];
        for (size_t ky = 0; ky < kh; ky++)
          for (size_t kx = 0; kx < kw; kx++) {
            long iy = (long)(oy * sh + ky * dh) - (long)pt;
            long ix = (long)(ox * sw + kx) - (long)pl;
            if (iy < 0 || iy >= (long)in_h || ix < 0 || ix >= (long)in_w)
              continue;
            for (size_t ci = 0; ci < c; ci++)
              acc += (int64_t)w[o * k + (ky * kw + kx) * c + ci] *
                     (x[((size_t)iy * in_w + (size_t)ix) * c + ci] - az);
          }
        want[(oy * g.out_w + ox) * n + o] =
            kn_qs8_requantize((int32_t)acc, scale[o], &rq);
      }
  size_t scratch_bytes = kn_qs8_conv_smallc_scratch_size(&g, n);
  uint8_t *scratch = xmalloc(scratch_bytes + 1);
  /* One byte past the output: a write past N or past the last row shows. */
  int8_t *got = xmalloc(m * n + 1);
  char what[256];
  for (size_t v = 0; v < nv; v++) {
    /* The whole image (scratch misaligned on purpose), then the rows in
     * two uneven parts, the second reusing the laid-out weights. */
    size_t split = g.out_h > 1 ? (size_t)rnd_range(1, (int)g.out_h - 1) : 1;
    for (int part = 0; part < 2; part++) {
      memset(got, 0x5A, m * n + 1);
      if (part == 0) {
        vs[v].fn(&g, x, az, packed, n, 0, g.out_h, got, &rq, scratch + 1,
                 false);
      } else {
        vs[v].fn(&g, x, az, packed, n, 0, split, got, &rq, scratch, false);
        vs[v].fn(&g, x, az, packed, n, split, g.out_h,
                 got + split * g.out_w * n, &rq, scratch, true);
      }
      size_t bad = m * n;
      for (size_t i = 0; i < m * n; i++)
        if (got[i] != want[i]) {
          bad = i;
          break;
        }
      if (bad < m * n || got[m * n] != 0x5A) {
        describe(&g, n, az, &rq, fill, what, sizeof what);
        if (bad < m * n)
          fprintf(stderr,
                  "FAIL %s (%s): %s: first difference at pixel %zu channel "
                  "%zu: %d, want %d\n",
                  vs[v].name, part ? "split rows" : "whole", what, bad / n,
                  bad % n, got[bad], want[bad]);
        else
          fprintf(stderr, "FAIL %s: %s: wrote past the output\n", vs[v].name,
                  what);
        failures++;
      }
    }
  }
  free(x), free(w), free(bias), free(scale), free(packed), free(want);
  free(scratch), free(got);
}

int main(void) {
  const char *q = getenv("KESTREL_TEST_QUICK");
  int quick = q && *q && *q != '0';
  variant vs[4];
  size_t nv = 0;
  vs[nv++] = (variant){"ref", kestrel_qs8_conv_smallc__ref};
#ifdef KESTREL_HAVE_AVX2
  if (kn_kernels_for(KN_ISA_AVX2))
    vs[nv++] = (variant){"avx2", kestrel_qs8_conv_smallc__avx2};
#endif
#ifdef KESTREL_HAVE_AVXVNNI
  if (kn_cpu_has_avxvnni())
    vs[nv++] = (variant){"avxvnni", kestrel_qs8_conv_smallc__avxvnni};
#endif
  /* The table's own entry is one of those (or NULL: im2col + GEMM). */
  const kn_kernels *active = kn_kernels_get();
  printf("variants:");
  for (size_t v = 0; v < nv; v++)
    printf(" %s", vs[v].name);
  printf(" (active table %s: %s)\n", active->name,
         active->qs8_conv_smallc ? "direct kernel" : "none");

  static const size_t cs[] = {1, 2, 3, 4, 5, 8};
  static const size_t ns_full[] = {1, 3, 7, 8, 9, 15, 16, 17, 24, 32, 33, 40};
  static const size_t ns_quick[] = {1, 8, 17, 32};
  const size_t *ns = quick ? ns_quick : ns_full;
  size_t nn = quick ? 4 : sizeof ns_full / sizeof *ns_full;
  /* The first-conv shapes: 3x3 stride 1 and 2, every width 1..13 and 96/97,
   * pads 0/1 each side. */
  for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ci++)
    for (size_t s = 1; s <= 2; s++)
      for (size_t w = 1; w <= 13; w++)
        for (size_t ni = 0; ni < nn; ni += quick ? 1 : 2) {
          size_t p = rnd() & 1, pr = rnd() & 1;
          run_case(vs, nv, (size_t)rnd_range(1, 6), w, cs[ci], ns[ni], 3, 3, s,
                   s, 1, p, p, pr, pr, (int)(w % 4 == 0));
        }
  for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ci++)
    for (size_t wi = 96; wi <= 97; wi++)
      for (size_t s = 1; s <= 2; s++)
        for (size_t ni = 0; ni < nn; ni++)
          run_case(vs, nv, 5, wi, cs[ci], ns[ni], 3, 3, s, s, 1, 1, 1, 1, 1,
                   (int)(ni % 3 == 0));
  /* Other kernels, strides, pads (oversized, asymmetric) and dilated rows. */
  int random_cases = quick ? 150 : 1500;
  for (int t = 0; t < random_cases; t++) {
    size_t c = cs[rnd() % 6];
    size_t kw = (size_t)rnd_range(1, 7);
    if (kw * c > KN_QS8_CONV_SMALLC_MAX_RUN)
      kw = KN_QS8_CONV_SMALLC_MAX_RUN / c;
    size_t kh = (size_t)rnd_range(1, 7), sh = (size_t)rnd_range(1, 3),
           sw = (size_t)rnd_range(1, 3), dh = (size_t)rnd_range(1, 2);
    size_t n = (size_t)rnd_range(1, 40);
    run_case(vs, nv, (size_t)rnd_range(1, 9), (size_t)rnd_range(1, 30), c, n,
             kh, kw, sh, sw, dh, (size_t)rnd_range(0, 4),
             (size_t)rnd_range(0, 4), (size_t)rnd_range(0, 4),
             (size_t)rnd_range(0, 4), (int)(t % 5 == 0));
  }
  printf("%d cases x %zu variants, %d failure(s)\n", cases, nv, failures);
  return failures > 100 ? 100 : failures;
}
