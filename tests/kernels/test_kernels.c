/* Kernel tests: every fast kernel of every ISA this machine runs, against
 * the portable references, over shapes that break tiled code (remainders of
 * every tile dimension, 1x1, odd channels, C=1, large pads, stride > kernel)
 * and extreme values (activations at -128/127, weights at -127/127, zero
 * points at both ends, tiny and huge scales). Integers must match byte for
 * byte (memcmp over the whole output buffer, so writes into row padding are
 * caught too); floats within the tolerance kernels.h states. The references
 * themselves are checked against naive formulas on unpacked weights.
 * A failing case prints every parameter. Exit status: number of failures
 * (capped), 0 on success.
 *
 * KESTREL_TEST_QUICK=1 shrinks the sweeps (used under qemu). */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_isa.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}
static int rnd_range(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }
static float rnd_float(float lo, float hi) {
  return lo + (hi - lo) * (float)(rnd() & 0xFFFFFF) / (float)0x1000000;
}

static int failures;
static int quick;

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  failures++;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

/* Value regimes for int8 data: random, all at one extreme, alternating. */
enum { FILL_RANDOM, FILL_MIN, FILL_MAX, FILL_ALTERNATE, FILL_COUNT };
static const char *fill_name[] = {"random", "min", "max", "alternate"};
static void fill_i8(int8_t *p, size_t n, int mode, int lo, int hi) {
  for (size_t i = 0; i < n; i++) {
    switch (mode) {
    case FILL_MIN: p[i] = (int8_t)lo; break;
    case FILL_MAX: p[i] = (int8_t)hi; break;
    case FILL_ALTERNATE: p[i] = (int8_t)((i & 1) ? hi : lo); break;
    default: p[i] = (int8_t)rnd_range(lo, hi); break;
    }
  }
}

/* The requantization formula exactly as kernels.h states it (in int64 so it
 * is defined for any product), to check kn_qs8_requantize's clamp-first
 * form. */
static int8_t requant_literal(int32_t acc, float scale, const kn_qs8_requant *rq) {
  float x = (float)acc * scale;
  int64_t r;
  if (x > 1e15f)
    r = INT64_MAX / 2;
  else if (x < -1e15f)
    r = INT64_MIN / 2;
  else
    r = llrintf(x);
  r += rq->zero_point;
  if (r < rq->out_min) r = rq->out_min;
  if (r > rq->out_max) r = rq->out_max;
  return (int8_t)r;
}

typedef struct {
  int zp, out_min, out_max;
  float scale_lo, scale_hi;
  const char *name;
} requant_case;

static const requant_case rq_cases[] = {
    {0, -128, 127, 1e-4f, 1e-2f, "typical"},
    {-128, -128, 127, 1e-3f, 3e-3f, "zp=-128"},
    {127, -128, 127, 1e-3f, 3e-3f, "zp=127"},
    {-5, -5, 127, 1e-3f, 1e-2f, "relu"},
    {3, 3, 60, 1e-3f, 1e-2f, "relu6-like"},
    {10, -128, 127, 1e-9f, 1e-8f, "tiny scale"},
    {-20, -128, 127, 10.0f, 1000.0f, "huge scale"},
    {0, 7, 7, 1e-3f, 1.0f, "min=max"},
};
#define N_RQ (sizeof rq_cases / sizeof rq_cases[0])

/* ---------------------------------------------------------------- qs8 gemm */

/* Naive C = requant(A W^T + bias - azp * rowsum(W)) on unpacked weights. */
static void naive_qs8_gemm(size_t m, size_t n, size_t k, const int8_t *a, size_t lda,
                           const int8_t *w, const int32_t *bias, int32_t azp,
                           int8_t *c, size_t ldc, const kn_qs8_requant *rq) {
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < n; j++) {
      int64_t acc = bias[j];
      for (size_t kk = 0; kk < k; kk++)
        acc += (int64_t)(a[i * lda + kk] - azp) * w[j * k + kk];
      c[i * ldc + j] = requant_literal((int32_t)acc, rq->scale[j], rq);
    }
}

static void test_qs8_gemm_case(const char *isa, kn_qs8_gemm_fn fn, size_t m, size_t n,
                               size_t k, size_t lda, size_t ldc, int afill, int wfill,
                               const requant_case *rc, int azp) {
  size_t a_bytes = (m - 1) * lda + k; /* exact: over-reads hit ASan */
  size_t c_bytes = (m - 1) * ldc + n;
  int8_t *a = xmalloc(a_bytes), *w = xmalloc(n * k);
  int32_t *bias = xmalloc(n * sizeof *bias);
  float *scale = xmalloc(n * sizeof *scale);
  int8_t *c_ref = xmalloc(c_bytes), *c_fast = xmalloc(c_bytes), *c_naive = xmalloc(c_bytes);
  fill_i8(a, a_bytes, afill, -128, 127);
  fill_i8(w, n * k, wfill, -127, 127);
  for (size_t j = 0; j < n; j++) {
    bias[j] = rnd_range(-100000, 100000);
    scale[j] = rnd_float(rc->scale_lo, rc->scale_hi);
  }
  kn_qs8_requant rq = {scale, rc->zp, rc->out_min, rc->out_max};
  void *packed = xmalloc(kn_qs8_gemm_packed_size(n, k));
  kn_qs8_gemm_pack(n, k, w, bias, azp, packed);
  memset(c_ref, 0x5A, c_bytes);
  memset(c_fast, 0x5A, c_bytes);
  memset(c_naive, 0x5A, c_bytes);
  kestrel_qs8_gemm__ref(m, n, k, a, lda, packed, c_ref, ldc, &rq);
  naive_qs8_gemm(m, n, k, a, lda, w, bias, azp, c_naive, ldc, &rq);
  if (memcmp(c_ref, c_naive, c_bytes))
    fail("qs8_gemm ref vs naive: M=%zu N=%zu K=%zu lda=%zu ldc=%zu a=%s w=%s rq=%s azp=%d",
         m, n, k, lda, ldc, fill_name[afill], fill_name[wfill], rc->name, azp);
  if (fn) {
    fn(m, n, k, a, lda, packed, c_fast, ldc, &rq);
    if (memcmp(c_ref, c_fast, c_bytes)) {
      size_t at = 0;
      while (c_ref[at] == c_fast[at]) at++;
      fail("qs8_gemm %s: M=%zu N=%zu K=%zu lda=%zu ldc=%zu a=%s w=%s rq=%s "
           "(zp=%d min=%d max=%d) azp=%d: first diff at byte %zu (row %zu col %zu) "
           "ref=%d got=%d", isa, m, n, k, lda, ldc, fill_name[afill], fill_name[wfill],
           rc->name, rc->zp, rc->out_min, rc->out_max, azp, at, at / ldc, at % ldc,
           c_ref[at], c_fast[at]);
    }
  }
  free(a); free(w); free(bias); free(scale); free(c_ref); free(c_fast); free(c_naive);
  free(packed);
}

static void test_qs8_gemm(const char *isa, kn_qs8_gemm_fn fn) {
  static const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17, 31};
  static const size_t ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25, 33, 64};
  static const size_t ks[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 33, 64, 100};
  size_t step = quick ? 3 : 1;
  for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi += step)
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni += (quick ? 2 : 1))
      for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
        size_t m = ms[mi], n = ns[ni], k = ks[ki];
        int padded = (int)((mi + ni + ki) % 3 == 0);
        const requant_case *rc = &rq_cases[(mi * 7 + ni * 3 + ki) % N_RQ];
        int azp = rnd_range(-128, 127);
        test_qs8_gemm_case(isa, fn, m, n, k, k + (padded ? 5 : 0), n + (padded ? 3 : 0),
                           FILL_RANDOM, FILL_RANDOM, rc, azp);
      }
  /* Extremes: every product at its largest magnitude, long K, both signs, so
   * any int16 saturation or int32 mishandling shows. */
  static const size_t big_k[] = {64, 255, 512, 1000, 4096};
  for (size_t ki = 0; ki < sizeof big_k / sizeof *big_k; ki++)
    for (int af = 0; af < FILL_COUNT; af++)
      for (int wf = 0; wf < FILL_COUNT; wf++)
        for (size_t r = 0; r < N_RQ; r += (quick ? 3 : 1)) {
          static const int azps[] = {-128, 127, 0};
          test_qs8_gemm_case(isa, fn, 5, 11, big_k[ki], big_k[ki], 11, af, wf,
                             &rq_cases[r], azps[(ki + r) % 3]);
        }
  /* Wide N: kernels that precompute per-channel terms in chunks of a few
   * hundred channels (avxvnni) cross their chunk boundary here. */
  static const size_t wide_n[] = {513, 1030};
  for (size_t ni = 0; ni < sizeof wide_n / sizeof *wide_n; ni++)
    test_qs8_gemm_case(isa, fn, 7, wide_n[ni], 37, 37, wide_n[ni] + 1,
                       FILL_RANDOM, FILL_RANDOM, &rq_cases[ni % N_RQ], -5);
}

/* -------------------------------------------------------------- dwconv */

typedef struct {
  kn_dwconv_params p;
  size_t pad_bottom, pad_right;
} dw_shape;

static int make_shape(dw_shape *s, size_t in_h, size_t in_w, size_t c, size_t kh, size_t kw,
                      size_t stride, size_t dil, size_t pt, size_t pl, size_t pb, size_t pr) {
  size_t eff_h = dil * (kh - 1) + 1, eff_w = dil * (kw - 1) + 1;
  if (in_h + pt + pb < eff_h || in_w + pl + pr < eff_w)
    return 0;
  kn_dwconv_params p = {in_h, in_w, c, (in_h + pt + pb - eff_h) / stride + 1,
                        (in_w + pl + pr - eff_w) / stride + 1, kh, kw, stride, stride,
                        dil, dil, pt, pl};
  s->p = p;
  s->pad_bottom = pb;
  s->pad_right = pr;
  return 1;
}

static void print_shape(char *buf, size_t len, const dw_shape *s) {
  const kn_dwconv_params *p = &s->p;
  snprintf(buf, len, "in=%zux%zu C=%zu out=%zux%zu kernel=%zux%zu stride=%zux%zu "
           "dilation=%zux%zu pad(t,l,b,r)=%zu,%zu,%zu,%zu", p->in_h, p->in_w, p->channels,
           p->out_h, p->out_w, p->kernel_h, p->kernel_w, p->stride_h, p->stride_w,
           p->dilation_h, p->dilation_w, p->pad_top, p->pad_left, s->pad_bottom, s->pad_right);
}

static void naive_qs8_dwconv(const kn_dwconv_params *p, const int8_t *in, int32_t azp,
                             const int8_t *w, const int32_t *bias, int8_t *out,
                             const kn_qs8_requant *rq) {
  size_t C = p->channels;
  for (size_t oy = 0; oy < p->out_h; oy++)
    for (size_t ox = 0; ox < p->out_w; ox++)
      for (size_t c = 0; c < C; c++) {
        int64_t acc = bias[c];
        for (size_t ky = 0; ky < p->kernel_h; ky++)
          for (size_t kx = 0; kx < p->kernel_w; kx++) {
            long iy = (long)(oy * p->stride_h + ky * p->dilation_h) - (long)p->pad_top;
            long ix = (long)(ox * p->stride_w + kx * p->dilation_w) - (long)p->pad_left;
            int32_t x = azp; /* padding reads the zero point */
            if (iy >= 0 && iy < (long)p->in_h && ix >= 0 && ix < (long)p->in_w)
              x = in[((size_t)iy * p->in_w + (size_t)ix) * C + c];
            acc += (int64_t)(x - azp) * w[(c * p->kernel_h + ky) * p->kernel_w + kx];
          }
        out[(oy * p->out_w + ox) * C + c] = requant_literal((int32_t)acc, rq->scale[c], rq);
      }
}

static void test_qs8_dwconv_case(const char *isa, kn_qs8_dwconv_fn fn, const dw_shape *s,
                                 int afill, int wfill, const requant_case *rc, int azp) {
  const kn_dwconv_params *p = &s->p;
  size_t C = p->channels, taps = p->kernel_h * p->kernel_w;
  size_t in_bytes = p->in_h * p->in_w * C, out_bytes = p->out_h * p->out_w * C;
  int8_t *in = xmalloc(in_bytes), *w = xmalloc(C * taps);
  int32_t *bias = xmalloc(C * sizeof *bias);
  float *scale = xmalloc(C * sizeof *scale);
  int8_t *o_ref = xmalloc(out_bytes), *o_fast = xmalloc(out_bytes), *o_naive = xmalloc(out_bytes);
  fill_i8(in, in_bytes, afill, -128, 127);
  fill_i8(w, C * taps, wfill, -127, 127);
  for (size_t c = 0; c < C; c++) {
    bias[c] = rnd_range(-50000, 50000);
    scale[c] = rnd_float(rc->scale_lo, rc->scale_hi);
  }
  kn_qs8_requant rq = {scale, rc->zp, rc->out_min, rc->out_max};
  void *packed = xmalloc(kn_qs8_dwconv_packed_size(C, p->kernel_h, p->kernel_w));
  kn_qs8_dwconv_pack(C, p->kernel_h, p->kernel_w, w, bias, packed);
  kestrel_qs8_dwconv__ref(p, in, azp, packed, o_ref, &rq);
  naive_qs8_dwconv(p, in, azp, w, bias, o_naive, &rq);
  char desc[256];
  print_shape(desc, sizeof desc, s);
  if (memcmp(o_ref, o_naive, out_bytes))
    fail("qs8_dwconv ref vs naive: %s azp=%d rq=%s", desc, azp, rc->name);
  if (fn) {
    memset(o_fast, 0x5A, out_bytes);
    fn(p, in, azp, packed, o_fast, &rq);
    if (memcmp(o_ref, o_fast, out_bytes)) {
      size_t at = 0;
      while (o_ref[at] == o_fast[at]) at++;
      fail("qs8_dwconv %s: %s in=%s w=%s azp=%d rq=%s (zp=%d min=%d max=%d): first diff "
           "at pixel %zu channel %zu ref=%d got=%d", isa, desc, fill_name[afill],
           fill_name[wfill], azp, rc->name, rc->zp, rc->out_min, rc->out_max, at / C,
           at % C, o_ref[at], o_fast[at]);
    }
  }
  free(in); free(w); free(bias); free(scale); free(o_ref); free(o_fast); free(o_naive);
  free(packed);
}

static void naive_f32_dwconv(const kn_dwconv_params *p, const float *in, const float *w,
                             const float *bias, double *out, double *mag) {
  size_t C = p->channels;
  for (size_t oy = 0; oy < p->out_h; oy++)
    for (size_t ox = 0; ox < p->out_w; ox++)
      for (size_t c = 0; c < C; c++) {
        double acc = bias[c], m = fabs(bias[c]);
        for (size_t ky = 0; ky < p->kernel_h; ky++)
          for (size_t kx = 0; kx < p->kernel_w; kx++) {
            long iy = (long)(oy * p->stride_h + ky * p->dilation_h) - (long)p->pad_top;
            long ix = (long)(ox * p->stride_w + kx * p->dilation_w) - (long)p->pad_left;
            if (iy < 0 || iy >= (long)p->in_h || ix < 0 || ix >= (long)p->in_w)
              continue;
            double t = (double)in[((size_t)iy * p->in_w + (size_t)ix) * C + c] *
                       w[(c * p->kernel_h + ky) * p->kernel_w + kx];
            acc += t;
            m += fabs(t);
          }
        out[(oy * p->out_w + ox) * C + c] = acc;
        mag[(oy * p->out_w + ox) * C + c] = m;
      }
}

/* |got - want| <= 1e-5 * magnitude (+ a denormal floor), after clamping
 * want the same way. */
static int f32_close(float got, double want, double mag, float lo, float hi) {
  want = want < lo ? lo : want;
  want = want > hi ? hi : want;
  return fabs((double)got - want) <= 1e-5 * mag + 1e-30;
}

static void test_f32_dwconv_case(const char *isa, kn_f32_dwconv_fn fn, const dw_shape *s,
                                 float lo, float hi) {
  const kn_dwconv_params *p = &s->p;
  size_t C = p->channels, taps = p->kernel_h * p->kernel_w;
  size_t in_n = p->in_h * p->in_w * C, out_n = p->out_h * p->out_w * C;
  float *in = xmalloc(in_n * sizeof(float)), *w = xmalloc(C * taps * sizeof(float));
  float *bias = xmalloc(C * sizeof(float)), *o_ref = xmalloc(out_n * sizeof(float));
  float *o_fast = xmalloc(out_n * sizeof(float));
  double *want = xmalloc(out_n * sizeof(double)), *mag = xmalloc(out_n * sizeof(double));
  for (size_t i = 0; i < in_n; i++) in[i] = rnd_float(-4, 4);
  for (size_t i = 0; i < C * taps; i++) w[i] = rnd_float(-1, 1);
  for (size_t i = 0; i < C; i++) bias[i] = rnd_float(-2, 2);
  void *packed = xmalloc(kn_f32_dwconv_packed_size(C, p->kernel_h, p->kernel_w));
  kn_f32_dwconv_pack(C, p->kernel_h, p->kernel_w, w, bias, packed);
  kestrel_f32_dwconv__ref(p, in, packed, o_ref, lo, hi);
  naive_f32_dwconv(p, in, w, bias, want, mag);
  char desc[256];
  print_shape(desc, sizeof desc, s);
  for (size_t i = 0; i < out_n; i++)
    if (!f32_close(o_ref[i], want[i], mag[i], lo, hi)) {
      fail("f32_dwconv ref vs naive: %s clamp=[%g,%g] at %zu: ref=%.9g want=%.9g", desc,
           lo, hi, i, o_ref[i], want[i]);
      break;
    }
  if (fn) {
    for (size_t i = 0; i < out_n; i++) o_fast[i] = NAN;
    fn(p, in, packed, o_fast, lo, hi);
    for (size_t i = 0; i < out_n; i++)
      if (!f32_close(o_fast[i], want[i], mag[i], lo, hi)) {
        fail("f32_dwconv %s: %s clamp=[%g,%g] at pixel %zu channel %zu: got=%.9g "
             "want=%.9g ref=%.9g", isa, desc, lo, hi, i / C, i % C, o_fast[i], want[i],
             o_ref[i]);
        break;
      }
  }
  free(in); free(w); free(bias); free(o_ref); free(o_fast); free(want); free(mag);
  free(packed);
}

static void dwconv_sweep(const char *isa, kn_qs8_dwconv_fn qfn, kn_f32_dwconv_fn ffn) {
  static const size_t chans[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 72};
  static const size_t kernels[][2] = {{3, 3}, {5, 5}, {1, 1}, {2, 2}, {3, 1}, {7, 7}};
  static const size_t sizes[][2] = {{1, 1}, {2, 3}, {5, 5}, {7, 4}, {9, 13}, {16, 11}};
  size_t count = 0;
  for (size_t ki = 0; ki < sizeof kernels / sizeof *kernels; ki++)
    for (size_t stride = 1; stride <= 3; stride++)
      for (size_t dil = 1; dil <= 2; dil++)
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
          for (size_t ci = 0; ci < sizeof chans / sizeof *chans; ci++) {
            if (quick && (ci + si + stride) % 4 != 0)
              continue;
            if (dil == 2 && (ci % 3) != 0)
              continue;
            size_t kh = kernels[ki][0], kw = kernels[ki][1];
            /* Pads from none to past the kernel (output pixels wholly in the
             * padding), different on each side. */
            size_t pt = (ci + si) % (kh + 2), pl = (ci * 3 + stride) % (kw + 2);
            size_t pb = (ci + ki) % (kh + 1), pr = (si + dil) % (kw + 2);
            dw_shape s;
            if (!make_shape(&s, sizes[si][0], sizes[si][1], chans[ci], kh, kw, stride, dil,
                            pt, pl, pb, pr))
              continue;
            const requant_case *rc = &rq_cases[count % N_RQ];
            test_qs8_dwconv_case(isa, qfn, &s, FILL_RANDOM, FILL_RANDOM, rc,
                                 rnd_range(-128, 127));
            float lo = (count % 3 == 0) ? 0.0f : -INFINITY;
            float hi = (count % 3 == 0) ? 6.0f : INFINITY;
            test_f32_dwconv_case(isa, ffn, &s, lo, hi);
            count++;
          }
  /* Unequal stride pairs on the fast kernel sizes (PP-OCR cls has (2,1)),
   * with channel counts around the 8- and 16-channel steps. */
  static const size_t pairs[][2] = {{2, 1}, {1, 2}, {3, 2}};
  for (size_t ki = 0; ki < 2; ki++)
    for (size_t pi = 0; pi < sizeof pairs / sizeof *pairs; pi++)
      for (size_t ci = 0; ci < sizeof chans / sizeof *chans; ci += (quick ? 3 : 1)) {
        dw_shape s;
        size_t k = kernels[ki][0], pad = k / 2;
        if (!make_shape(&s, 9, 13, chans[ci], k, k, 1, 1, pad, pad, pad, pad))
          continue;
        s.p.stride_h = pairs[pi][0];
        s.p.stride_w = pairs[pi][1];
        s.p.out_h = (9 + 2 * pad - k) / s.p.stride_h + 1;
        s.p.out_w = (13 + 2 * pad - k) / s.p.stride_w + 1;
        test_qs8_dwconv_case(isa, qfn, &s, FILL_RANDOM, FILL_RANDOM,
                             &rq_cases[(ci + pi) % N_RQ], rnd_range(-128, 127));
        test_f32_dwconv_case(isa, ffn, &s, -INFINITY, INFINITY);
      }
  /* The real models' shapes (BlazeFace, PP-OCR cls) and the cuts of the
   * AVX2 3x3/5x5 kernel: 16-channel blocks, 8-channel tails computed as
   * pixel pairs, strips of 4 output pixels (8 for tails), rows with only
   * some taps inside the image, the last pixels of the input (tail loads
   * must not pass its end) and widths around the strip length. */
  static const size_t real_c[] = {1, 7, 8, 12, 16, 24, 40, 88, 200};
  static const size_t real_hw[][2] = {{2, 96}, {3, 96}, {6, 96}, {2, 2}, {3, 7},
                                      {5, 9}, {7, 6}, {4, 17}, {96, 96}};
  size_t real_count = 0;
  for (size_t ki = 0; ki < 2; ki++)
    for (size_t si = 0; si < sizeof real_hw / sizeof *real_hw; si++)
      for (size_t ci = 0; ci < sizeof real_c / sizeof *real_c; ci++)
        for (size_t sp = 0; sp < 4; sp++) {
          static const size_t strides[][2] = {{1, 1}, {2, 2}, {2, 1}, {1, 2}};
          size_t k = kernels[ki][0], h = real_hw[si][0], w = real_hw[si][1];
          /* 96x96 only with the channel counts BlazeFace has there. */
          if (h == 96 && real_c[ci] != 8 && real_c[ci] != 12 && real_c[ci] != 24)
            continue;
          if (quick && (si + ci + sp) % 3 != 0)
            continue;
          /* Symmetric "same" padding, or TF's stride-2 (0 top/left). */
          size_t pt = (sp == 1 && real_count % 2) ? 0 : k / 2;
          dw_shape s;
          if (!make_shape(&s, h, w, real_c[ci], k, k, 1, 1, pt, pt, k / 2, k / 2))
            continue;
          s.p.stride_h = strides[sp][0];
          s.p.stride_w = strides[sp][1];
          s.p.out_h = (h + pt + k / 2 - k) / s.p.stride_h + 1;
          s.p.out_w = (w + pt + k / 2 - k) / s.p.stride_w + 1;
          test_qs8_dwconv_case(isa, qfn, &s, FILL_RANDOM, FILL_RANDOM,
                               &rq_cases[real_count % N_RQ], rnd_range(-128, 127));
          real_count++;
        }
  /* Extremes on the fast shapes: max-magnitude products on every tap. */
  for (size_t ki = 0; ki < 2; ki++)
    for (size_t stride = 1; stride <= 2; stride++)
      for (int af = 0; af < FILL_COUNT; af++)
        for (int wf = 0; wf < FILL_COUNT; wf++) {
          dw_shape s;
          size_t k = kernels[ki][0];
          make_shape(&s, 9, 10, 35, k, k, stride, 1, k / 2, k / 2, k / 2, k / 2);
          static const int azps[] = {-128, 127, 0, -1};
          test_qs8_dwconv_case(isa, qfn, &s, af, wf, &rq_cases[(size_t)(af + wf) % N_RQ],
                               azps[(af + 2 * wf) % 4]);
        }
}

/* ------------------------------------------------------------- f32 gemm */

static void test_f32_gemm_case(const char *isa, kn_f32_gemm_fn fn, size_t m, size_t n,
                               size_t k, size_t lda, size_t ldc, float lo, float hi) {
  size_t a_n = (m - 1) * lda + k, c_n = (m - 1) * ldc + n;
  float *a = xmalloc(a_n * sizeof(float)), *w = xmalloc(n * k * sizeof(float));
  float *bias = xmalloc(n * sizeof(float)), *c_ref = xmalloc(c_n * sizeof(float));
  float *c_fast = xmalloc(c_n * sizeof(float));
  for (size_t i = 0; i < a_n; i++) a[i] = rnd_float(-2, 2);
  for (size_t i = 0; i < n * k; i++) w[i] = rnd_float(-1, 1);
  for (size_t i = 0; i < n; i++) bias[i] = rnd_float(-1, 1);
  void *packed = xmalloc(kn_f32_gemm_packed_size(n, k));
  kn_f32_gemm_pack(n, k, w, bias, packed);
  for (size_t i = 0; i < c_n; i++) c_ref[i] = c_fast[i] = -12345.0f;
  kestrel_f32_gemm__ref(m, n, k, a, lda, packed, c_ref, ldc, lo, hi);
  if (fn)
    fn(m, n, k, a, lda, packed, c_fast, ldc, lo, hi);
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < ldc && i * ldc + j < c_n; j++) {
      size_t at = i * ldc + j;
      if (j >= n) { /* row padding must stay untouched */
        if (c_ref[at] != -12345.0f || (fn && c_fast[at] != -12345.0f)) {
          fail("f32_gemm %s: M=%zu N=%zu K=%zu lda=%zu ldc=%zu wrote padding at row %zu "
               "col %zu", isa, m, n, k, lda, ldc, i, j);
          goto done;
        }
        continue;
      }
      double want = bias[j], mag = fabs(bias[j]);
      for (size_t kk = 0; kk < k; kk++) {
        double t = (double)a[i * lda + kk] * w[j * k + kk];
        want += t;
        mag += fabs(t);
      }
      if (!f32_close(c_ref[at], want, mag, lo, hi)) {
        fail("f32_gemm ref vs naive: M=%zu N=%zu K=%zu at row %zu col %zu: ref=%.9g want=%.9g",
             m, n, k, i, j, c_ref[at], want);
        goto done;
      }
      if (fn && !f32_close(c_fast[at], want, mag, lo, hi)) {
        fail("f32_gemm %s: M=%zu N=%zu K=%zu lda=%zu ldc=%zu clamp=[%g,%g] at row %zu col "
             "%zu: got=%.9g want=%.9g ref=%.9g", isa, m, n, k, lda, ldc, lo, hi, i, j,
             c_fast[at], want, c_ref[at]);
        goto done;
      }
    }
done:
  free(a); free(w); free(bias); free(c_ref); free(c_fast); free(packed);
}

static void test_f32_gemm(const char *isa, kn_f32_gemm_fn fn) {
  static const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 25};
  static const size_t ns[] = {1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48};
  static const size_t ks[] = {1, 2, 3, 4, 7, 8, 9, 16, 31, 64, 129};
  size_t count = 0;
  for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi += (quick ? 2 : 1))
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
      for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki += (quick ? 2 : 1), count++) {
        int padded = count % 3 == 0;
        float lo = count % 4 == 0 ? 0.0f : -INFINITY, hi = count % 4 == 0 ? 6.0f : INFINITY;
        test_f32_gemm_case(isa, fn, ms[mi], ns[ni], ks[ki], ks[ki] + (padded ? 3 : 0),
                           ns[ni] + (padded ? 5 : 0), lo, hi);
      }
}

/* --------------------------------------------------------------- im2col */

/* im2col + reference GEMM must equal a direct k x k convolution. */
static void test_im2col(void) {
  static const size_t cases[][8] = {
      /* in_h in_w C kh stride dil pad out-chans */
      {7, 9, 3, 3, 1, 1, 1, 5}, {8, 8, 16, 3, 2, 1, 1, 8}, {5, 6, 1, 5, 2, 1, 2, 3},
      {4, 4, 7, 3, 1, 2, 3, 9}, {6, 5, 2, 1, 3, 1, 0, 4}, {3, 3, 4, 3, 4, 1, 4, 2},
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
    const size_t *cs = cases[ci];
    size_t H = cs[0], W = cs[1], C = cs[2], K = cs[3], S = cs[4], D = cs[5], P = cs[6];
    size_t N = cs[7], eff = D * (K - 1) + 1;
    kn_conv_geometry g = {H, W, C, (H + 2 * P - eff) / S + 1, (W + 2 * P - eff) / S + 1,
                          K, K, S, S, D, D, P, P};
    size_t M = g.out_h * g.out_w, KK = K * K * C;
    int8_t *in = xmalloc(H * W * C), *w = xmalloc(N * KK), *rows = xmalloc(M * KK);
    int8_t *got = xmalloc(M * N), *want = xmalloc(M * N);
    float *inf = xmalloc(H * W * C * sizeof(float)), *rowsf = xmalloc(M * KK * sizeof(float));
    int32_t *bias = xmalloc(N * sizeof(int32_t));
    float *scale = xmalloc(N * sizeof(float));
    fill_i8(in, H * W * C, FILL_RANDOM, -128, 127);
    fill_i8(w, N * KK, FILL_RANDOM, -127, 127);
    for (size_t i = 0; i < H * W * C; i++) inf[i] = (float)in[i];
    for (size_t j = 0; j < N; j++) { bias[j] = rnd_range(-1000, 1000); scale[j] = 0.003f; }
    int azp = rnd_range(-128, 127);
    kn_qs8_requant rq = {scale, 3, -128, 127};
    /* Two halves, to exercise row_begin. */
    kn_qs8_im2col(&g, in, (int8_t)azp, 0, M / 2, rows);
    kn_qs8_im2col(&g, in, (int8_t)azp, M / 2, M, rows + (M / 2) * KK);
    kn_f32_im2col(&g, inf, 0, M, rowsf);
    void *packed = xmalloc(kn_qs8_gemm_packed_size(N, KK));
    kn_qs8_gemm_pack(N, KK, w, bias, azp, packed);
    kestrel_qs8_gemm__ref(M, N, KK, rows, KK, packed, got, N, &rq);
    int float_ok = 1;
    for (size_t oy = 0; oy < g.out_h; oy++)
      for (size_t ox = 0; ox < g.out_w; ox++) {
        for (size_t n = 0; n < N; n++) {
          int64_t acc = bias[n];
          for (size_t ky = 0; ky < K; ky++)
            for (size_t kx = 0; kx < K; kx++)
              for (size_t c = 0; c < C; c++) {
                long iy = (long)(oy * S + ky * D) - (long)P, ix = (long)(ox * S + kx * D) - (long)P;
                int x = azp;
                if (iy >= 0 && iy < (long)H && ix >= 0 && ix < (long)W)
                  x = in[((size_t)iy * W + (size_t)ix) * C + c];
                acc += (int64_t)(x - azp) * w[n * KK + (ky * K + kx) * C + c];
              }
          want[(oy * g.out_w + ox) * N + n] = requant_literal((int32_t)acc, scale[n], &rq);
        }
        size_t r = oy * g.out_w + ox;
        for (size_t t = 0; t < KK; t++) {
          size_t ky = t / (K * C), kx = (t / C) % K, c = t % C;
          long iy = (long)(oy * S + ky * D) - (long)P, ix = (long)(ox * S + kx * D) - (long)P;
          float expect = 0.0f;
          if (iy >= 0 && iy < (long)H && ix >= 0 && ix < (long)W)
            expect = inf[((size_t)iy * W + (size_t)ix) * C + c];
          if (rowsf[r * KK + t] != expect) float_ok = 0;
        }
      }
    if (memcmp(got, want, M * N))
      fail("qs8 im2col+gemm vs direct conv: in=%zux%zu C=%zu kernel=%zu stride=%zu "
           "dilation=%zu pad=%zu N=%zu azp=%d", H, W, C, K, S, D, P, N, azp);
    if (!float_ok)
      fail("f32 im2col differs from direct gather: in=%zux%zu C=%zu kernel=%zu stride=%zu "
           "dilation=%zu pad=%zu", H, W, C, K, S, D, P);
    free(in); free(w); free(rows); free(got); free(want); free(inf); free(rowsf);
    free(bias); free(scale); free(packed);
  }
}

/* ----------------------------------------------------------------- main */

static void requant_checks(void) {
  /* The clamp-first form in kernels.h against the literal formula, over
   * accumulators around rounding ties and the int32 extremes. */
  static const float scales[] = {0.5f, 0.25f, 1.0f, 1e-3f, 3.0f, 1e6f};
  static const int32_t accs[] = {0, 1, -1, 3, -3, 5, -5, 255, -255, 257, INT32_MAX,
                                 INT32_MIN, 1 << 24, -(1 << 24) - 1};
  for (size_t r = 0; r < N_RQ; r++)
    for (size_t s = 0; s < sizeof scales / sizeof *scales; s++)
      for (size_t a = 0; a < sizeof accs / sizeof *accs; a++) {
        kn_qs8_requant rq = {NULL, rq_cases[r].zp, rq_cases[r].out_min, rq_cases[r].out_max};
        int8_t x = kn_qs8_requantize(accs[a], scales[s], &rq);
        int8_t y = requant_literal(accs[a], scales[s], &rq);
        if (x != y)
          fail("requantize acc=%d scale=%g rq=%s: %d, formula says %d", accs[a],
               scales[s], rq_cases[r].name, x, y);
      }
}

/* ---------------------------------------------------------------- x8 lut */

static void test_x8_lut(const char *isa, kn_x8_lut_fn fn) {
  static const size_t sizes[] = {0, 1, 15, 31, 32, 33, 63, 64, 65, 100, 1000};
  uint8_t table[256], x[1100], want[1100], got[1100];
  for (int t = 0; t < 4; t++) {
    for (int i = 0; i < 256; i++) /* random, identity, reversed, constant */
      table[i] = t == 0 ? (uint8_t)rnd_range(0, 255)
                 : t == 1 ? (uint8_t)i : t == 2 ? (uint8_t)(255 - i) : 0x5A;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
      size_t n = sizes[si];
      for (size_t i = 0; i < n; i++) /* every byte value appears */
        x[i] = (uint8_t)(i < 256 ? i * 7 + (size_t)t : (size_t)rnd_range(0, 255));
      for (size_t i = 0; i < n; i++)
        want[i] = table[x[i]];
      memset(got, 0xEE, sizeof got);
      fn(n, x, got, table);
      if (memcmp(want, got, n) || got[n] != 0xEE)
        fail("x8_lut %s: n=%zu table #%d differs (or wrote past n)", isa, n, t);
      memcpy(got, x, n); /* in place */
      fn(n, got, got, table);
      if (memcmp(want, got, n))
        fail("x8_lut %s in place: n=%zu table #%d differs", isa, n, t);
    }
  }
}

int main(void) {
  const char *q = getenv("KESTREL_TEST_QUICK");
  quick = q && *q && *q != '0';
  requant_checks();
  test_im2col();
  /* The references against the naive formulas (fn = NULL). */
  test_qs8_gemm("ref", NULL);
  test_f32_gemm("ref", NULL);
  dwconv_sweep("ref", NULL, NULL);

  int tested = 0;
  for (int isa = KN_ISA_AVX2; isa <= KN_ISA_NEON; isa++) {
    const kn_kernels *k = kn_kernels_for((kn_isa)isa);
    if (!k)
      continue;
    const char *name = kn_isa_name((kn_isa)isa);
    int before = failures;
    test_qs8_gemm(name, k->qs8_gemm);
    test_f32_gemm(name, k->f32_gemm);
    test_x8_lut(name, k->x8_lut);
    dwconv_sweep(name, k->qs8_dwconv, k->f32_dwconv);
#ifdef KESTREL_HAVE_AVX2
    if (isa == KN_ISA_AVX2) {
      /* Every fixed tile, not just the one the table picked. */
      test_qs8_gemm("avx2 1x8", kestrel_qs8_gemm_1x8__avx2);
      test_qs8_gemm("avx2 2x8", kestrel_qs8_gemm_2x8__avx2);
      test_qs8_gemm("avx2 3x8", kestrel_qs8_gemm_3x8__avx2);
      test_qs8_gemm("avx2 4x8", kestrel_qs8_gemm_4x8__avx2);
    }
#endif
#ifdef KESTREL_HAVE_AVXVNNI
    if (isa == KN_ISA_AVX2 && kn_cpu_has_avxvnni()) {
      test_qs8_gemm("avxvnni 4x8", kestrel_qs8_gemm_4x8__avxvnni);
      test_qs8_gemm("avxvnni 6x8", kestrel_qs8_gemm_6x8__avxvnni);
      printf("avxvnni: qs8 GEMM tiles tested (%s)\n",
             failures == before ? "match" : "FAILED");
    } else if (isa == KN_ISA_AVX2) {
      printf("avxvnni: not on this CPU, its GEMM untested here\n");
    }
#endif
    printf("%s: %s\n", name, failures == before ? "all kernels match the reference" : "FAILED");
    tested++;
  }
  printf("ISAs tested besides ref: %d (active: %s)\n", tested, kn_isa_name(kn_isa_detect()));
  if (failures)
    printf("%d failure(s)\n", failures);
  return failures > 100 ? 100 : failures;
}
