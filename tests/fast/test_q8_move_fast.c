/* The int8 graphs' non-conv fast paths against their references, byte for
 * byte, over shapes that break vector blocks and tiles (channels 1, 3, 5,
 * 17, 48, 96; spatial sizes 1..13):
 * - Resize (ops/resize_fast.c) int8/uint8 linear and cubic, 2x and other
 *   scales, four coordinate modes, random scales and zero points, against
 *   the general loop of ops/pool.c (run with scratch for the tap tables
 *   only, so the fast path declines);
 * - Pad (ops/shape_fast.c) constant mode, channel/spatial/any-axis pads
 *   and crops, against a plain index loop;
 * - Transpose (ops/shape_fast.c) every rank-4 permutation, element sizes
 *   1, 2, 4 and 8, against a plain index loop;
 * - GlobalAveragePool int8/uint8 NHWC (ops/pool_fast.c) against the
 *   reference pool loop run on the same values laid out NCHW.
 * Pad, Transpose and the pool also run with a 3-thread pool. KESTREL_ISA=ref|avx2
 * picks the kernels (meson runs both). On failure every parameter of the
 * case is printed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_common.h"
#include "ops/resize_fast.h"
#include "threadpool.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}
static int irange(int lo, int hi) {
  return lo + (int)(rnd() % (uint32_t)(hi - lo + 1));
}
static float frange(float lo, float hi) {
  return lo + (hi - lo) * (float)(rnd() >> 8) / (float)(1u << 24);
}

static const int channel_set[] = {1, 3, 5, 17, 48, 96};
static int pick_channels(void) { return channel_set[irange(0, 5)]; }

static int failures, cases, fast_runs;

static void fill_random(kestrel_dtype dt, void *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (dt == KESTREL_DTYPE_F32)
      ((float *)p)[i] = (float)((int)(rnd() % 20001) - 10000) / 997.0f;
    else
      for (size_t b = 0; b < kestrel_dtype_size(dt); b++)
        ((uint8_t *)p)[i * kestrel_dtype_size(dt) + b] = (uint8_t)rnd();
  }
}

static void print_dims(const char *what, int nd, const int64_t *d) {
  fprintf(stderr, " %s [", what);
  for (int i = 0; i < nd; i++)
    fprintf(stderr, "%s%lld", i ? "," : "", (long long)d[i]);
  fprintf(stderr, "]");
}

/* ---- Resize -------------------------------------------------------------- */

typedef struct resize_case {
  kestrel_dtype dt;
  const char *mode, *coord;
  int64_t in[4], out[4];
  bool by_scales;
  float scale_h, scale_w;
  float xs, ys;
  int32_t xz, yz;
} resize_case;

/* Runs the case with the op's planned scratch (full) or only the tap
 * tables (the reference loop); returns whether the scratch past the tap
 * tables was written, i.e. the fast path ran. */
static bool resize_run_once(const resize_case *rc, bool full,
                            const void *xdata, void *ydata, bool *ok) {
  kn_graph *g = kn_graph_new();
  int x = kn_graph_add_tensor(g, "x");
  kn_tensor_alloc_data(&g->tensors[x], rc->dt, 4, rc->in);
  memcpy(g->tensors[x].data, xdata, kn_tensor_bytes(&g->tensors[x]));
  if (rc->dt != KESTREL_DTYPE_F32)
    kn_tensor_set_quant(&g->tensors[x], -1, 1, &rc->xs, &rc->xz);
  int roi = kn_graph_add_tensor(g, "roi");
  g->tensors[roi].optional_absent = true;
  int scales = kn_graph_add_tensor(g, "scales");
  int sizes = kn_graph_add_tensor(g, "sizes");
  int64_t four[1] = {4};
  if (rc->by_scales) {
    float *s = kn_tensor_alloc_data(&g->tensors[scales], KESTREL_DTYPE_F32,
                                    1, four);
    s[0] = 1.0f;
    s[1] = rc->scale_h;
    s[2] = rc->scale_w;
    s[3] = 1.0f;
    g->tensors[scales].kind = KN_TENSOR_CONSTANT;
    g->tensors[sizes].optional_absent = true;
  } else {
    int64_t *sz = kn_tensor_alloc_data(&g->tensors[sizes], KESTREL_DTYPE_I64,
                                       1, four);
    memcpy(sz, rc->out, sizeof(rc->out));
    g->tensors[sizes].kind = KN_TENSOR_CONSTANT;
    g->tensors[scales].optional_absent = true;
  }
  int y = kn_graph_add_tensor(g, "y");
  if (rc->dt != KESTREL_DTYPE_F32) {
    kn_set_shape(&g->tensors[y], rc->dt, 4, rc->out);
    kn_tensor_set_quant(&g->tensors[y], -1, 1, &rc->ys, &rc->yz);
  }
  int ins[4] = {x, roi, scales, sizes};
  int ni =
      kn_graph_add_node(g, KN_OP_RESIZE, "resize", "Resize", ins, 4, &y, 1);
  kn_node *n = &g->nodes[ni];
  kn_node_set_string(n, "mode", rc->mode);
  kn_node_set_string(n, "coordinate_transformation_mode", rc->coord);
  const kn_op_info *info = kn_op_get(KN_OP_RESIZE);
  kestrel_error err;
  bool wrote = false;
  *ok = false;
  if (info->infer(g, n, &err) != KESTREL_OK) {
    fprintf(stderr, "infer: %s\n", err.message);
    kn_graph_free(g);
    return false;
  }
  kn_tensor *yt = &g->tensors[y];
  if (memcmp(yt->dims, rc->out, sizeof(rc->out)) ||
      !kn_tensor_alloc_data(yt, yt->dtype, 4, rc->out)) {
    fprintf(stderr, "output shape differs from the case's\n");
    kn_graph_free(g);
    return false;
  }
  size_t planned = info->scratch(g, n);
  size_t taps = 0;
  for (int a = 0; a < 4; a++)
    taps += (size_t)rc->out[a];
  taps *= KN_RESIZE_TAPS * sizeof(kn_resize_tap) + 1;
  unsigned char *scratch = malloc(planned + 1);
  memset(scratch, 0xab, planned + 1);
  kn_exec ex = {g, scratch, full ? planned : taps, 1, NULL};
  if (info->run(&ex, n, &err) == KESTREL_OK) {
    *ok = true;
    memcpy(ydata, yt->data, kn_tensor_bytes(yt));
  } else {
    fprintf(stderr, "run: %s\n", err.message);
  }
  for (size_t i = taps; i < planned; i++)
    wrote |= scratch[i] != 0xab;
  free(scratch);
  kn_graph_free(g);
  return wrote;
}

static void resize_check(resize_case *rc) {
  cases++;
  size_t es = kestrel_dtype_size(rc->dt);
  size_t xn = (size_t)kn_numel(4, rc->in), yn = (size_t)kn_numel(4, rc->out);
  unsigned char *xd = malloc(xn * es), *fast = malloc(yn * es + 1),
                *ref = malloc(yn * es + 1);
  fill_random(rc->dt, xd, xn);
  bool ok1, ok2;
  bool took = resize_run_once(rc, true, xd, fast, &ok1);
  bool ref_took = resize_run_once(rc, false, xd, ref, &ok2);
  fast_runs += took;
  size_t bad = yn;
  if (ok1 && ok2 && !ref_took)
    for (size_t i = 0; i < yn && bad == yn; i++)
      if (memcmp(fast + i * es, ref + i * es, es))
        bad = i;
  if (!ok1 || !ok2 || ref_took || bad < yn) {
    fprintf(stderr, "FAIL resize %s %s %s", kestrel_dtype_name(rc->dt),
            rc->mode, rc->coord);
    print_dims("in", 4, rc->in);
    print_dims("out", 4, rc->out);
    if (rc->by_scales)
      fprintf(stderr, " scales %g,%g", rc->scale_h, rc->scale_w);
    fprintf(stderr, " xs %.9g xz %d ys %.9g yz %d fast path %s", rc->xs,
            rc->xz, rc->ys, rc->yz, took ? "ran" : "declined");
    if (ref_took)
      fprintf(stderr, " (the reference run took the fast path)");
    if (bad < yn) {
      double got, want;
      if (rc->dt == KESTREL_DTYPE_F32) {
        got = ((float *)fast)[bad];
        want = ((float *)ref)[bad];
      } else {
        got = rc->dt == KESTREL_DTYPE_I8 ? (int8_t)fast[bad] : fast[bad];
        want = rc->dt == KESTREL_DTYPE_I8 ? (int8_t)ref[bad] : ref[bad];
      }
      fprintf(stderr, ": element %zu = %.9g, reference %.9g", bad, got, want);
    }
    fprintf(stderr, "\n");
    failures++;
  }
  free(xd);
  free(fast);
  free(ref);
}

static void resize_cases(void) {
  static const char *const coords[] = {"half_pixel", "align_corners",
                                       "asymmetric", "pytorch_half_pixel"};
  static const kestrel_dtype dts[] = {KESTREL_DTYPE_I8, KESTREL_DTYPE_U8,
                                      KESTREL_DTYPE_F32};
  static const float factors[] = {2.0f, 2.0f, 2.0f, 1.5f, 3.0f, 0.5f};
  for (int rep = 0; rep < 160; rep++) {
    resize_case rc;
    memset(&rc, 0, sizeof(rc));
    rc.dt = dts[rep % 8 < 5 ? 0 : (rep % 8 < 7 ? 1 : 2)];
    rc.mode = rep % 10 == 9 ? "cubic" : "linear";
    rc.coord = coords[irange(0, 3)];
    rc.in[0] = irange(1, 2);
    rc.in[1] = irange(1, 13);
    rc.in[2] = irange(1, 13);
    rc.in[3] = pick_channels();
    rc.out[0] = rc.in[0];
    rc.out[3] = rc.in[3];
    rc.by_scales = rep % 3 != 2;
    if (rc.by_scales) {
      rc.scale_h = factors[irange(0, 5)];
      rc.scale_w = irange(0, 2) ? rc.scale_h : factors[irange(0, 5)];
      if (irange(0, 5) == 0)
        rc.scale_h = 1.0f; /* only W */
      rc.out[1] = (int64_t)floor((double)rc.in[1] * rc.scale_h);
      rc.out[2] = (int64_t)floor((double)rc.in[2] * rc.scale_w);
      if (rc.out[1] < 1 || rc.out[2] < 1)
        continue;
    } else {
      rc.out[1] = irange(1, 13);
      rc.out[2] = irange(1, 13);
    }
    /* Scales from tiny to large, ratios either way, zero points anywhere
     * in range: the requantization rounds near ties with some of them. */
    rc.xs = ldexpf(frange(1.0f, 2.0f), irange(-12, 0));
    rc.ys = rc.xs * frange(0.25f, 4.0f);
    if (rep % 7 == 0)
      rc.ys = rc.xs; /* same quantization in and out */
    if (rep % 4 == 0) {
      /* Scales with a short odd mantissa: every term and the sum are
       * exact, so v / ys lands exactly on .5 often, where only the
       * reference's exact division and half-to-even rounding agree. */
      static const float odd[] = {1.0f, 3.0f, 5.0f, 7.0f};
      rc.xs = ldexpf(odd[irange(0, 3)], -irange(4, 10));
      rc.ys = rc.xs * (float)(1 << irange(0, 2));
    }
    rc.xz = rc.dt == KESTREL_DTYPE_I8 ? irange(-128, 127) : irange(0, 255);
    rc.yz = rc.dt == KESTREL_DTYPE_I8 ? irange(-128, 127) : irange(0, 255);
    resize_check(&rc);
  }
}

/* ---- Pad ----------------------------------------------------------------- */

static void pad_oracle(const uint8_t *x, const int64_t *xd, uint8_t *y,
                       const int64_t *yd, const int64_t *pb, size_t es,
                       const uint8_t *value) {
  int64_t yn = kn_numel(4, yd);
  for (int64_t e = 0; e < yn; e++) {
    int64_t o[4], rest = e, src = 0;
    bool inside = true;
    for (int a = 3; a >= 0; a--) {
      o[a] = rest % yd[a];
      rest /= yd[a];
    }
    for (int a = 0; a < 4; a++) {
      int64_t i = o[a] - pb[a];
      if (i < 0 || i >= xd[a])
        inside = false;
      src = src * xd[a] + i;
    }
    memcpy(y + e * (int64_t)es, inside ? x + src * (int64_t)es : value, es);
  }
}

static void pad_check(kn_threadpool *pool, kestrel_dtype dt,
                      const int64_t *in, const int64_t *pads, bool quant) {
  cases++;
  size_t es = kestrel_dtype_size(dt);
  int64_t out[4];
  for (int a = 0; a < 4; a++)
    out[a] = in[a] + pads[a] + pads[a + 4];
  kn_graph *g = kn_graph_new();
  int x = kn_graph_add_tensor(g, "x");
  kn_tensor_alloc_data(&g->tensors[x], dt, 4, in);
  size_t xn = (size_t)kn_numel(4, in), yn = (size_t)kn_numel(4, out);
  fill_random(dt, g->tensors[x].data, xn);
  float xs = 0.03f;
  int32_t xz = quant ? irange(-128, 127) : 0;
  if (dt == KESTREL_DTYPE_U8)
    xz = irange(0, 255);
  if (quant)
    kn_tensor_set_quant(&g->tensors[x], -1, 1, &xs, &xz);
  int pt = kn_graph_add_tensor(g, "pads");
  int64_t eight[1] = {8};
  memcpy(kn_tensor_alloc_data(&g->tensors[pt], KESTREL_DTYPE_I64, 1, eight),
         pads, 8 * sizeof(int64_t));
  g->tensors[pt].kind = KN_TENSOR_CONSTANT;
  /* Unquantized tensors pad with a random value given as input 2, so that
   * its bytes differ from each other and from zero. */
  uint8_t value[8] = {0};
  int nin = 2;
  int vt = kn_graph_add_tensor(g, "value");
  if (quant) {
    value[0] = (uint8_t)xz;
  } else {
    int64_t one[1] = {1};
    uint8_t *v = kn_tensor_alloc_data(&g->tensors[vt], dt, 0, one);
    fill_random(dt, v, 1);
    if (dt == KESTREL_DTYPE_I64) /* goes through a double on the way */
      *(int64_t *)v = (int64_t)(rnd() % 2000001u) - 1000000;
    memcpy(value, v, es);
    g->tensors[vt].kind = KN_TENSOR_CONSTANT;
    nin = 3;
  }
  int y = kn_graph_add_tensor(g, "y");
  int ins[3] = {x, pt, vt};
  int ni = kn_graph_add_node(g, KN_OP_PAD, "pad", "Pad", ins, nin, &y, 1);
  kn_node *n = &g->nodes[ni];
  const kn_op_info *info = kn_op_get(KN_OP_PAD);
  kestrel_error err;
  bool ok = info->infer(g, n, &err) == KESTREL_OK;
  kn_tensor *yt = &g->tensors[y];
  ok = ok && !memcmp(yt->dims, out, sizeof(out)) &&
       kn_tensor_alloc_data(yt, dt, 4, out);
  uint8_t *want = malloc(yn * es + 1);
  if (ok) {
    pad_oracle(g->tensors[x].data, in, want, out, pads, es, value);
    kn_exec ex = {g, NULL, 0, kn_threadpool_threads(pool), pool};
    ok = info->run(&ex, n, &err) == KESTREL_OK;
  }
  size_t bad = yn;
  for (size_t i = 0; ok && i < yn && bad == yn; i++)
    if (memcmp((uint8_t *)yt->data + i * es, want + i * es, es))
      bad = i;
  if (!ok || bad < yn) {
    fprintf(stderr, "FAIL pad %s%s %d threads", kestrel_dtype_name(dt),
            quant ? " quantized" : "", kn_threadpool_threads(pool));
    print_dims("in", 4, in);
    print_dims("pads", 8, pads);
    if (bad < yn)
      fprintf(stderr, ": byte element %zu differs", bad);
    else
      fprintf(stderr, ": %s", err.message);
    fprintf(stderr, "\n");
    failures++;
  }
  free(want);
  kn_graph_free(g);
}

static void pad_cases(kn_threadpool *pool) {
  static const kestrel_dtype dts[] = {KESTREL_DTYPE_I8, KESTREL_DTYPE_U8,
                                      KESTREL_DTYPE_F32, KESTREL_DTYPE_I16,
                                      KESTREL_DTYPE_I64};
  for (int rep = 0; rep < 150; rep++) {
    kestrel_dtype dt = dts[rep % 10 < 6 ? 0 : (rep % 10 < 7 ? 1 : rep % 5)];
    int64_t in[4] = {irange(1, 2), irange(1, 13), irange(1, 13),
                     pick_channels()};
    int64_t pads[8] = {0};
    switch (rep % 4) {
    case 0: /* BlazeFace's channel padding */
      pads[7] = irange(1, 48);
      break;
    case 1: /* spatial borders */
      for (int a = 1; a <= 2; a++) {
        pads[a] = irange(0, 3);
        pads[a + 4] = irange(0, 3);
      }
      break;
    case 2: /* any axis, either side */
      for (int i = 0; i < 8; i++)
        pads[i] = irange(0, 4);
      break;
    default: /* crops (negative pads): the reference path, still checked */
      for (int i = 0; i < 8; i++)
        pads[i] = irange(-1, 2);
      for (int a = 0; a < 4; a++)
        while (in[a] + pads[a] + pads[a + 4] < 1)
          pads[a + 4]++;
      break;
    }
    bool quant = dt == KESTREL_DTYPE_I8 || dt == KESTREL_DTYPE_U8;
    pad_check(rep % 2 ? pool : NULL, dt, in, pads, quant);
  }
}

/* ---- Transpose ----------------------------------------------------------- */

static void transpose_check(kn_threadpool *pool, kestrel_dtype dt,
                            const int64_t *in, const int64_t *perm) {
  cases++;
  size_t es = kestrel_dtype_size(dt);
  int64_t out[4];
  for (int d = 0; d < 4; d++)
    out[d] = in[perm[d]];
  kn_graph *g = kn_graph_new();
  int x = kn_graph_add_tensor(g, "x");
  kn_tensor_alloc_data(&g->tensors[x], dt, 4, in);
  size_t n_el = (size_t)kn_numel(4, in);
  fill_random(dt, g->tensors[x].data, n_el);
  int y = kn_graph_add_tensor(g, "y");
  int ni = kn_graph_add_node(g, KN_OP_TRANSPOSE, "transpose", "Transpose", &x,
                             1, &y, 1);
  kn_node *n = &g->nodes[ni];
  kn_node_set_ints(n, "perm", perm, 4);
  const kn_op_info *info = kn_op_get(KN_OP_TRANSPOSE);
  kestrel_error err;
  bool ok = info->infer(g, n, &err) == KESTREL_OK;
  kn_tensor *yt = &g->tensors[y];
  ok = ok && !memcmp(yt->dims, out, sizeof(out)) &&
       kn_tensor_alloc_data(yt, dt, 4, out);
  if (ok) {
    kn_exec ex = {g, NULL, 0, kn_threadpool_threads(pool), pool};
    ok = info->run(&ex, n, &err) == KESTREL_OK;
  }
  size_t bad = n_el;
  const uint8_t *xd = g->tensors[x].data;
  for (size_t e = 0; ok && e < n_el && bad == n_el; e++) {
    int64_t o[4], rest = (int64_t)e, i[4], src = 0;
    for (int d = 3; d >= 0; d--) {
      o[d] = rest % out[d];
      rest /= out[d];
    }
    for (int d = 0; d < 4; d++)
      i[perm[d]] = o[d];
    for (int a = 0; a < 4; a++)
      src = src * in[a] + i[a];
    if (memcmp((uint8_t *)yt->data + e * es, xd + (size_t)src * es, es))
      bad = e;
  }
  if (!ok || bad < n_el) {
    fprintf(stderr, "FAIL transpose %s %d threads perm (%d,%d,%d,%d)",
            kestrel_dtype_name(dt), kn_threadpool_threads(pool), (int)perm[0],
            (int)perm[1], (int)perm[2], (int)perm[3]);
    print_dims("in", 4, in);
    if (bad < n_el)
      fprintf(stderr, ": element %zu differs", bad);
    else
      fprintf(stderr, ": %s", err.message);
    fprintf(stderr, "\n");
    failures++;
  }
  kn_graph_free(g);
}

static void transpose_cases(kn_threadpool *pool) {
  static const kestrel_dtype dts[] = {KESTREL_DTYPE_I8, KESTREL_DTYPE_F16,
                                      KESTREL_DTYPE_F32, KESTREL_DTYPE_I64};
  int64_t perms[24][4], np = 0;
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++)
      for (int c = 0; c < 4; c++)
        for (int d = 0; d < 4; d++)
          if (a != b && a != c && a != d && b != c && b != d && c != d) {
            int64_t p[4] = {a, b, c, d};
            memcpy(perms[np++], p, sizeof(p));
          }
  for (int rep = 0; rep < 240; rep++) {
    const int64_t *perm = perms[rep % 24];
    /* NCHW <-> NHWC, the models' pair, more often than the others. */
    static const int64_t to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
    if (rep % 3 == 1)
      perm = rep % 2 ? to_nhwc : to_nchw;
    kestrel_dtype dt = rep % 4 < 2 ? KESTREL_DTYPE_I8 : dts[rep % 4];
    if (rep % 16 == 15)
      dt = dts[1];
    int64_t in[4] = {irange(1, 2), pick_channels(), irange(1, 13),
                     irange(1, 13)};
    if (perm == to_nchw) { /* its input is NHWC */
      int64_t c = in[1];
      in[1] = in[2];
      in[2] = in[3];
      in[3] = c;
    }
    if (rep % 24 == 7) { /* the cls model's input, 48x192 RGB */
      int64_t big[4] = {1, 3, 48, 192};
      memcpy(in, big, sizeof(big));
      perm = to_nhwc;
    }
    transpose_check(rep % 2 ? pool : NULL, dt, in, perm);
  }
}

/* ---- GlobalAveragePool ---------------------------------------------------- */

/* Runs GlobalAveragePool on x (dims in, layout as given) into y. */
static bool gap_run(kn_threadpool *pool, kestrel_dtype dt, const int64_t *in,
                    int layout, const void *xdata, float xs, int32_t xz,
                    float ys, int32_t yz, void *ydata) {
  kn_graph *g = kn_graph_new();
  int x = kn_graph_add_tensor(g, "x");
  kn_tensor_alloc_data(&g->tensors[x], dt, 4, in);
  memcpy(g->tensors[x].data, xdata, kn_tensor_bytes(&g->tensors[x]));
  kn_tensor_set_quant(&g->tensors[x], -1, 1, &xs, &xz);
  int y = kn_graph_add_tensor(g, "y");
  int ni = kn_graph_add_node(g, KN_OP_GLOBAL_AVGPOOL, "gap",
                             "GlobalAveragePool", &x, 1, &y, 1);
  kn_node *n = &g->nodes[ni];
  kn_node_set_int(n, "layout", layout);
  const kn_op_info *info = kn_op_get(KN_OP_GLOBAL_AVGPOOL);
  kestrel_error err;
  bool ok = info->infer(g, n, &err) == KESTREL_OK;
  kn_tensor *yt = &g->tensors[y];
  if (ok) {
    int64_t out[4];
    memcpy(out, yt->dims, sizeof(out));
    ok = kn_tensor_alloc_data(yt, dt, 4, out) != NULL;
    kn_tensor_set_quant(yt, -1, 1, &ys, &yz);
  }
  size_t sb = ok ? info->scratch(g, n) : 0;
  void *scratch = malloc(sb + 1);
  if (ok) {
    kn_exec ex = {g, scratch, sb, kn_threadpool_threads(pool), pool};
    ok = info->run(&ex, n, &err) == KESTREL_OK;
    if (!ok)
      fprintf(stderr, "run: %s\n", err.message);
  }
  if (ok)
    memcpy(ydata, yt->data, kn_tensor_bytes(yt));
  free(scratch);
  kn_graph_free(g);
  return ok;
}

/* NHWC (the fast paths) against NCHW of the same values (the reference
 * pool loop, which no fast path takes). */
static void gap_cases(kn_threadpool *pool) {
  for (int rep = 0; rep < 400; rep++) {
    cases++;
    kestrel_dtype dt = rep % 4 == 3 ? KESTREL_DTYPE_U8 : KESTREL_DTYPE_I8;
    int64_t nhwc[4] = {irange(1, 2), irange(1, 13), irange(1, 13),
                       pick_channels()};
    if (rep % 50 == 0) { /* large planes */
      nhwc[1] = irange(40, 120);
      nhwc[2] = irange(40, 120);
    }
    int64_t nchw[4] = {nhwc[0], nhwc[3], nhwc[1], nhwc[2]};
    size_t n = (size_t)kn_numel(4, nhwc), c = (size_t)nhwc[3];
    size_t plane = (size_t)(nhwc[1] * nhwc[2]);
    float xs = ldexpf(frange(1.0f, 2.0f), irange(-10, -2));
    int32_t xz = dt == KESTREL_DTYPE_I8 ? irange(-128, 127) : irange(0, 255);
    float ys = xs * frange(0.3f, 3.0f);
    int32_t yz = dt == KESTREL_DTYPE_I8 ? irange(-128, 127) : irange(0, 255);
    bool narrow = rep % 2 == 1;
    if (narrow) {
      /* Bytes near the zero point and a fine output scale: averages land
       * close to rounding boundaries, where the integer bounds disagree
       * and the exact per-channel sum decides. */
      ys = xs / 64.0f;
      yz = 0;
    }
    /* Values summing to exactly the zero point per channel with a tiny
     * output scale: the true average is the sum of the dequantized
     * floats' rounding errors alone, far from zero in output steps, which
     * an integer sum of the bytes alone would miss. */
    bool cancel = rep % 4 == 2;
    if (cancel) {
      xz = dt == KESTREL_DTYPE_I8 ? 0 : 128;
      ys = ldexpf(xs, -irange(17, 21));
      yz = 0;
    }
    uint8_t *a = malloc(n), *b = malloc(n);
    uint8_t fast[200], ref[200];
    for (size_t i = 0; i < n; i++) {
      int32_t q = narrow ? xz + irange(-2, 2) : (int32_t)(rnd() & 255);
      if (cancel)
        q = xz + irange(-128, 127);
      if (dt == KESTREL_DTYPE_I8)
        q = q < -128 ? -128 : (q > 127 ? 127 : q);
      else
        q = q < 0 ? 0 : (q > 255 ? 255 : q);
      a[i] = (uint8_t)q;
    }
    for (size_t bi = 0; cancel && bi < (size_t)nhwc[0]; bi++)
      for (size_t ch = 0; ch < c; ch++) {
        uint8_t *v = a + bi * plane * c + ch;
        int32_t sum = 0;
        for (size_t p = 0; p < plane; p++)
          sum += (dt == KESTREL_DTYPE_I8 ? (int8_t)v[p * c] : v[p * c]) - xz;
        /* Walk pixels toward the zero point until the sum is zero. */
        for (size_t p = 0; sum != 0; p = (p + 1) % plane) {
          int32_t k = (dt == KESTREL_DTYPE_I8 ? (int8_t)v[p * c] : v[p * c]) -
                      xz;
          int32_t nk = k - sum;
          nk = nk < -128 ? -128 : (nk > 127 ? 127 : nk);
          sum += nk - k;
          v[p * c] = (uint8_t)(nk + xz);
        }
      }
    for (size_t bi = 0; bi < (size_t)nhwc[0]; bi++)
      for (size_t p = 0; p < plane; p++)
        for (size_t ch = 0; ch < c; ch++)
          b[(bi * c + ch) * plane + p] = a[(bi * plane + p) * c + ch];
    kn_threadpool *use = rep % 3 ? NULL : pool;
    bool ok = gap_run(use, dt, nhwc, KN_LAYOUT_NHWC, a, xs, xz, ys, yz, fast) &&
              gap_run(NULL, dt, nchw, KN_LAYOUT_NCHW, b, xs, xz, ys, yz, ref);
    size_t ny = (size_t)nhwc[0] * c, bad = ny;
    for (size_t i = 0; ok && i < ny && bad == ny; i++)
      if (fast[i] != ref[i])
        bad = i;
    if (!ok || bad < ny) {
      fprintf(stderr, "FAIL gap %s %d threads", kestrel_dtype_name(dt),
              kn_threadpool_threads(use));
      print_dims("in", 4, nhwc);
      fprintf(stderr, " xs %.9g xz %d ys %.9g yz %d", xs, xz, ys, yz);
      if (bad < ny)
        fprintf(stderr, ": channel %zu = %d, reference %d", bad,
                dt == KESTREL_DTYPE_I8 ? (int8_t)fast[bad] : fast[bad],
                dt == KESTREL_DTYPE_I8 ? (int8_t)ref[bad] : ref[bad]);
      fprintf(stderr, "\n");
      failures++;
    }
    free(a);
    free(b);
  }
}

int main(void) {
  kn_threadpool *pool = kn_threadpool_create(3);
  resize_cases();
  int resize_cases_run = cases;
  pad_cases(pool);
  transpose_cases(pool);
  gap_cases(pool);
  printf("%d cases (%d resize, %d of them on the fast path), %d failures\n",
         cases, resize_cases_run, fast_runs, failures);
  /* Cases where every output lands on one input element take the
   * single-tap copy instead; most must have run the fast path. */
  if (fast_runs < resize_cases_run * 7 / 10) {
    fprintf(stderr, "FAIL: the resize fast path ran in only %d of %d cases\n",
            fast_runs, resize_cases_run);
    failures++;
  }
  kn_threadpool_destroy(pool);
  return failures ? 1 : 0;
}
