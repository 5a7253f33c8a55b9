/* The NHWC pool fast paths (ops/pool_fast.c) and the float 3-plane
 * Transpose (ops/shape_fast.c) against their references, byte for byte,
 * over shapes that break vector blocks (channels 1..200, spatial sizes
 * 1..13 and a few large planes), with 1 and 3 threads:
 * - MaxPool int8/uint8/float32, kernels 1..5 (and 8x8), strides 1..3,
 *   dilations 1..2, pads up to past the window (empty windows), ceil_mode,
 *   1-D and 2-D, requantizing or not, floats with NaN and signed zeros;
 *   the NHWC run (which takes the fast path) against the reference loop of
 *   pool.c on the same values laid out NCHW, and the fast entry point
 *   called directly must accept the case;
 * - GlobalAveragePool int8/uint8 likewise, with planes past the int16
 *   lane flush (128 pixels) and bytes at the extremes;
 * - Transpose [B, 3, H, W] -> [B, H, W, 3] of 4-byte elements (random
 *   bits: NaN payloads must survive) against an index loop.
 * KESTREL_ISA=ref|avx2 picks the kernels (meson runs each). On failure
 * every parameter of the case is printed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_common.h"
#include "ops/pool_fast.h"
#include "threadpool.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
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

static int failures, cases, fast_runs, fast_expected;

static void print_dims(const char *what, int nd, const int64_t *d) {
  fprintf(stderr, " %s [", what);
  for (int i = 0; i < nd; i++)
    fprintf(stderr, "%s%lld", i ? "," : "", (long long)d[i]);
  fprintf(stderr, "]");
}

/* NHWC (dims nhwc, rank r) to NCHW, elements of es bytes. */
static void to_nchw(const uint8_t *src, uint8_t *dst, int r,
                    const int64_t *nhwc, size_t es) {
  size_t n = (size_t)nhwc[0], c = (size_t)nhwc[r - 1], plane = 1;
  for (int d = 1; d < r - 1; d++)
    plane *= (size_t)nhwc[d];
  for (size_t b = 0; b < n; b++)
    for (size_t p = 0; p < plane; p++)
      for (size_t ch = 0; ch < c; ch++)
        memcpy(dst + ((b * c + ch) * plane + p) * es,
               src + ((b * plane + p) * c + ch) * es, es);
}

static void nchw_dims(int r, const int64_t *nhwc, int64_t *nchw) {
  nchw[0] = nhwc[0];
  nchw[1] = nhwc[r - 1];
  for (int d = 1; d < r - 1; d++)
    nchw[d + 1] = nhwc[d];
}

/* ---- pools ------------------------------------------------------------- */

typedef struct pool_case {
  kn_op op;
  kestrel_dtype dt;
  int r;         /* rank 3 or 4 */
  int64_t in[4]; /* NHWC */
  int64_t k[2], s[2], d[2], pads[4];
  bool ceil_mode;
  float xs, ys;
  int32_t xz, yz;
} pool_case;

static void pool_print(const pool_case *pc, kn_threadpool *pool) {
  fprintf(stderr, "%s %s %d threads",
          pc->op == KN_OP_MAXPOOL ? "maxpool" : "gap",
          kestrel_dtype_name(pc->dt), kn_threadpool_threads(pool));
  print_dims("in NHWC", pc->r, pc->in);
  if (pc->op == KN_OP_MAXPOOL) {
    int nsp = pc->r - 2;
    print_dims("kernel", nsp, pc->k);
    print_dims("strides", nsp, pc->s);
    print_dims("dilations", nsp, pc->d);
    print_dims("pads", 2 * nsp, pc->pads);
    fprintf(stderr, " ceil_mode %d", pc->ceil_mode);
  }
  if (pc->dt != KESTREL_DTYPE_F32)
    fprintf(stderr, " xs %.9g xz %d ys %.9g yz %d", pc->xs, pc->xz, pc->ys,
            pc->yz);
}

/* Runs the pool on x (layout as given; dims NHWC or NCHW) into *out
 * (malloc'ed). With direct, calls the fast entry point itself instead of
 * the op and reports in *took whether it accepted. */
static bool pool_run(const pool_case *pc, kn_threadpool *pool, int layout,
                     const int64_t *dims, const void *xdata, bool direct,
                     bool *took, uint8_t **out, size_t *out_bytes) {
  kn_graph *g = kn_graph_new();
  int x = kn_graph_add_tensor(g, "x");
  kn_tensor_alloc_data(&g->tensors[x], pc->dt, pc->r, dims);
  memcpy(g->tensors[x].data, xdata, kn_tensor_bytes(&g->tensors[x]));
  if (pc->dt != KESTREL_DTYPE_F32)
    kn_tensor_set_quant(&g->tensors[x], -1, 1, &pc->xs, &pc->xz);
  int y = kn_graph_add_tensor(g, "y");
  int ni = kn_graph_add_node(g, pc->op, "pool", "Pool", &x, 1, &y, 1);
  kn_node *n = &g->nodes[ni];
  kn_node_set_int(n, "layout", layout);
  int nsp = pc->r - 2;
  if (pc->op == KN_OP_MAXPOOL) {
    kn_node_set_ints(n, "kernel_shape", pc->k, nsp);
    kn_node_set_ints(n, "strides", pc->s, nsp);
    kn_node_set_ints(n, "dilations", pc->d, nsp);
    int64_t pads[4];
    for (int i = 0; i < nsp; i++) {
      pads[i] = pc->pads[i];
      pads[i + nsp] = pc->pads[i + nsp];
    }
    kn_node_set_ints(n, "pads", pads, 2 * nsp);
    kn_node_set_int(n, "ceil_mode", pc->ceil_mode);
  }
  const kn_op_info *info = kn_op_get(pc->op);
  kestrel_error err;
  bool ok = info->infer(g, n, &err) == KESTREL_OK;
  if (!ok)
    fprintf(stderr, "infer: %s\n", err.message);
  kn_tensor *xt = &g->tensors[x], *yt = &g->tensors[y];
  if (ok) {
    int64_t od[4];
    memcpy(od, yt->dims, sizeof(od));
    ok = kn_tensor_alloc_data(yt, pc->dt, pc->r, od) != NULL;
    if (pc->dt != KESTREL_DTYPE_F32)
      kn_tensor_set_quant(yt, -1, 1, &pc->ys, &pc->yz);
  }
  int threads = kn_threadpool_threads(pool);
  size_t sb = ok ? info->scratch(g, n) * (size_t)threads : 0;
  void *scratch = malloc(sb + 1);
  kn_exec ex = {g, scratch, sb, threads, pool};
  if (ok && direct) {
    kn_spatial xv, yv;
    kn_window w;
    ok = kn_spatial_view(xt, layout, &xv) && kn_spatial_view(yt, layout, &yv);
    if (ok && pc->op == KN_OP_MAXPOOL) {
      ok = kn_window_geometry(n, xv.nsp, xv.sp, NULL, pc->ceil_mode, &w,
                              &err) == KESTREL_OK;
      *took = ok && kn_maxpool_2d_nhwc_fast(&ex, xt, yt, &xv, &yv, &w);
    } else if (ok) {
      *took = kn_global_avgpool_q8_nhwc_fast(&ex, xt, yt);
    }
  } else if (ok) {
    ok = info->run(&ex, n, &err) == KESTREL_OK;
    if (!ok)
      fprintf(stderr, "run: %s\n", err.message);
  }
  if (ok) {
    *out_bytes = kn_tensor_bytes(yt);
    *out = malloc(*out_bytes + 1);
    memcpy(*out, yt->data, *out_bytes);
    ok = true;
  }
  free(scratch);
  kn_graph_free(g);
  return ok;
}

/* First differing element of two outputs, or count. */
static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t count,
                         size_t es) {
  for (size_t i = 0; i < count; i++)
    if (memcmp(a + i * es, b + i * es, es))
      return i;
  return count;
}

static void print_element(kestrel_dtype dt, const uint8_t *p) {
  if (dt == KESTREL_DTYPE_F32) {
    float f;
    uint32_t bits;
    memcpy(&f, p, 4);
    memcpy(&bits, p, 4);
    fprintf(stderr, "%.9g (0x%08x)", f, bits);
  } else {
    fprintf(stderr, "%d", dt == KESTREL_DTYPE_I8 ? (int)(int8_t)*p : (int)*p);
  }
}

/* NHWC through the op (fast path) and the entry point called directly,
 * against NCHW through the op (the reference loop). expect_fast: the
 * case is one the fast path must take. */
static void pool_check(const pool_case *pc, kn_threadpool *pool,
                       const uint8_t *xdata, bool expect_fast) {
  cases++;
  size_t es = kestrel_dtype_size(pc->dt);
  size_t nx = (size_t)kn_numel(pc->r, pc->in);
  uint8_t *xc = malloc(nx * es + 1);
  to_nchw(xdata, xc, pc->r, pc->in, es);
  int64_t cdims[4];
  nchw_dims(pc->r, pc->in, cdims);
  uint8_t *fast = NULL, *direct = NULL, *ref = NULL, *ref_nhwc = NULL;
  size_t fast_bytes = 0, direct_bytes = 0, ref_bytes = 0;
  bool took = false, unused;
  bool ok = pool_run(pc, pool, KN_LAYOUT_NHWC, pc->in, xdata, false, &unused,
                     &fast, &fast_bytes) &&
            pool_run(pc, pool, KN_LAYOUT_NHWC, pc->in, xdata, true, &took,
                     &direct, &direct_bytes) &&
            pool_run(pc, NULL, KN_LAYOUT_NCHW, cdims, xc, false, &unused, &ref,
                     &ref_bytes);
  fast_runs += took;
  fast_expected += expect_fast;
  const char *what = NULL;
  size_t bad = 0;
  if (!ok) {
    what = "a run failed";
  } else if (fast_bytes != ref_bytes || direct_bytes != ref_bytes) {
    what = "output sizes differ";
  } else if (expect_fast && !took) {
    what = "the fast path declined";
  } else {
    /* The reference's NCHW output back to NHWC, element by element. */
    size_t ny = ref_bytes / es, c = (size_t)pc->in[pc->r - 1];
    size_t plane = ny / ((size_t)pc->in[0] * c);
    ref_nhwc = malloc(ref_bytes + 1);
    for (size_t b = 0; b < (size_t)pc->in[0]; b++)
      for (size_t p = 0; p < plane; p++)
        for (size_t ch = 0; ch < c; ch++)
          memcpy(ref_nhwc + ((b * plane + p) * c + ch) * es,
                 ref + ((b * c + ch) * plane + p) * es, es);
    const uint8_t *got = fast;
    bad = first_diff(fast, ref_nhwc, ny, es);
    if (bad < ny) {
      what = "the op's NHWC output differs";
    } else if (took) {
      got = direct;
      bad = first_diff(direct, ref_nhwc, ny, es);
      if (bad < ny)
        what = "the fast entry point's output differs";
    }
    if (what) {
      fprintf(stderr, "FAIL ");
      pool_print(pc, pool);
      fprintf(stderr, ": %s at NHWC element %zu: got ", what, bad);
      print_element(pc->dt, got + bad * es);
      fprintf(stderr, ", reference ");
      print_element(pc->dt, ref_nhwc + bad * es);
      fprintf(stderr, "\n");
      failures++;
      what = NULL;
    }
  }
  if (what) {
    fprintf(stderr, "FAIL ");
    pool_print(pc, pool);
    fprintf(stderr, ": %s\n", what);
    failures++;
  }
  free(xc);
  free(fast);
  free(direct);
  free(ref);
  free(ref_nhwc);
}

static const int channel_set[] = {1, 3, 5, 8, 17, 32, 48};
static const int gap_channel_set[] = {1,  2,  3,  4,  5,  8,  16, 17,
                                      24, 32, 48, 64, 65, 88, 200};

static void random_quant(pool_case *pc) {
  bool i8 = pc->dt == KESTREL_DTYPE_I8;
  pc->xs = ldexpf(frange(1.0f, 2.0f), irange(-10, -2));
  pc->xz = i8 ? irange(-128, 127) : irange(0, 255);
  switch (irange(0, 3)) {
  case 0: /* y keeps x's parameters: no requantization table */
    pc->ys = pc->xs;
    pc->yz = pc->xz;
    break;
  case 1:
    pc->ys = pc->xs * frange(0.3f, 3.0f);
    pc->yz = i8 ? irange(-128, 127) : irange(0, 255);
    break;
  case 2: /* a negative output scale reverses the table */
    pc->ys = -pc->xs * frange(0.5f, 2.0f);
    pc->yz = i8 ? irange(-128, 127) : irange(0, 255);
    break;
  default: /* saturating: zero points far off */
    pc->ys = pc->xs * frange(0.1f, 0.5f);
    pc->yz = irange(-300, 300);
    break;
  }
}

static void fill_values(kestrel_dtype dt, uint8_t *p, size_t n, bool special) {
  for (size_t i = 0; i < n; i++) {
    if (dt != KESTREL_DTYPE_F32) {
      p[i] = (uint8_t)rnd();
      continue;
    }
    float f = (float)((int)(rnd() % 2001) - 1000) / 97.0f;
    if (special) {
      /* Ties, signed zeros and NaNs: the reference keeps the first of
       * equal values and a NaN only as the first tap. */
      switch (rnd() % 8) {
      case 0: f = 0.0f; break;
      case 1: f = -0.0f; break;
      case 2: f = NAN; break;
      case 3: f = 1.0f; break;
      case 4: f = -INFINITY; break;
      default: break;
      }
    }
    memcpy(p + 4 * i, &f, 4);
  }
}

static void maxpool_cases(kn_threadpool *pool3) {
  static const kestrel_dtype dts[] = {KESTREL_DTYPE_I8, KESTREL_DTYPE_U8,
                                      KESTREL_DTYPE_F32};
  static const int kernels[] = {1, 2, 2, 3, 3, 5};
  for (int rep = 0; rep < 1500; rep++) {
    pool_case pc;
    memset(&pc, 0, sizeof(pc));
    pc.op = KN_OP_MAXPOOL;
    pc.dt = dts[rep % 3];
    pc.r = rep % 7 == 6 ? 3 : 4;
    int nsp = pc.r - 2;
    pc.in[0] = irange(1, 2);
    for (int a = 0; a < nsp; a++)
      pc.in[1 + a] = irange(1, 13);
    pc.in[pc.r - 1] = channel_set[irange(0, 6)];
    if (rep % 100 == 0) { /* a BlazeFace-sized plane */
      pc.in[0] = 1;
      for (int a = 0; a < nsp; a++)
        pc.in[1 + a] = irange(40, 96);
    }
    for (int a = 0; a < nsp; a++) {
      pc.k[a] = kernels[irange(0, 5)];
      pc.s[a] = irange(1, 3) == 3 ? irange(1, 3) : irange(1, 2);
      pc.d[a] = rep % 5 == 4 ? irange(1, 2) : 1;
      int64_t span = (pc.k[a] - 1) * pc.d[a] + 1;
      int64_t maxpad = rep % 11 == 10 ? span + 2 : span - 1;
      pc.pads[a] = irange(0, (int)maxpad);
      pc.pads[a + nsp] = irange(0, (int)maxpad);
      /* The window must fit the padded input. */
      while (pc.in[1 + a] + pc.pads[a] + pc.pads[a + nsp] < span)
        pc.pads[a + nsp]++;
    }
    if (rep % 13 == 12 && nsp == 2) { /* 64 taps, the most it takes */
      pc.k[0] = pc.k[1] = 8;
      pc.d[0] = pc.d[1] = 1;
      pc.pads[0] = pc.pads[2] = 4;
      pc.pads[1] = pc.pads[3] = 4;
    }
    pc.ceil_mode = rep % 4 == 3;
    bool special = pc.dt == KESTREL_DTYPE_F32 && rep % 2;
    if (pc.dt != KESTREL_DTYPE_F32)
      random_quant(&pc);
    size_t nx = (size_t)kn_numel(pc.r, pc.in);
    uint8_t *x = malloc(nx * kestrel_dtype_size(pc.dt) + 1);
    fill_values(pc.dt, x, nx, special);
    pool_check(&pc, rep % 2 ? pool3 : NULL, x, true);
    free(x);
  }
  /* Cases it must decline (the reference then runs, still checked):
   * windows past 64 taps, a non-positive input scale. */
  for (int rep = 0; rep < 20; rep++) {
    pool_case pc;
    memset(&pc, 0, sizeof(pc));
    pc.op = KN_OP_MAXPOOL;
    pc.dt = rep % 2 ? KESTREL_DTYPE_I8 : KESTREL_DTYPE_F32;
    pc.r = 4;
    int64_t in[4] = {1, irange(9, 12), irange(9, 12), channel_set[irange(0, 6)]};
    memcpy(pc.in, in, sizeof(in));
    pc.k[0] = pc.k[1] = 9;
    pc.s[0] = pc.s[1] = pc.d[0] = pc.d[1] = 1;
    if (pc.dt != KESTREL_DTYPE_F32) {
      random_quant(&pc);
      if (rep % 4 == 1) { /* 3x3, but a negative input scale */
        pc.k[0] = pc.k[1] = 3;
        pc.xs = -pc.xs;
      }
    }
    size_t nx = (size_t)kn_numel(4, pc.in);
    uint8_t *x = malloc(nx * kestrel_dtype_size(pc.dt) + 1);
    fill_values(pc.dt, x, nx, false);
    pool_check(&pc, NULL, x, false);
    free(x);
  }
}

static void gap_cases(kn_threadpool *pool3) {
  for (int rep = 0; rep < 600; rep++) {
    pool_case pc;
    memset(&pc, 0, sizeof(pc));
    pc.op = KN_OP_GLOBAL_AVGPOOL;
    pc.dt = rep % 3 == 2 ? KESTREL_DTYPE_U8 : KESTREL_DTYPE_I8;
    pc.r = 4;
    pc.in[0] = irange(1, 2);
    pc.in[1] = irange(1, 13);
    pc.in[2] = irange(1, 13);
    pc.in[3] = gap_channel_set[irange(0, 14)];
    if (rep % 10 == 0) { /* past the 128-pixel int16 flush */
      pc.in[1] = irange(12, 50);
      pc.in[2] = irange(12, 100);
    }
    if (rep % 50 == 0) { /* PP-OCR cls's first SE block */
      int64_t cls[4] = {1, 24, 96, 8};
      memcpy(pc.in, cls, sizeof(cls));
    }
    random_quant(&pc);
    size_t nx = (size_t)kn_numel(4, pc.in);
    uint8_t *x = malloc(nx + 1);
    fill_values(pc.dt, x, nx, false);
    int extreme = rep % 7;
    if (extreme < 2) {
      /* Every byte at one end of its range: the int16 lanes' worst
       * case. */
      uint8_t v = pc.dt == KESTREL_DTYPE_I8 ? (extreme ? 0x80 : 0x7f)
                                            : (extreme ? 0 : 0xff);
      for (size_t i = 0; i < nx; i++)
        if (rnd() % 16)
          x[i] = v;
    }
    pool_check(&pc, rep % 2 ? pool3 : NULL, x, true);
    free(x);
  }
}

/* ---- Transpose, 3 planes of 4-byte elements ---------------------------- */

static void transpose3_check(kn_threadpool *pool, kestrel_dtype dt,
                             const int64_t *in) {
  cases++;
  static const int64_t perm[4] = {0, 2, 3, 1};
  int64_t out[4] = {in[0], in[2], in[3], in[1]};
  kn_graph *g = kn_graph_new();
  int x = kn_graph_add_tensor(g, "x");
  uint32_t *xd = kn_tensor_alloc_data(&g->tensors[x], dt, 4, in);
  size_t n_el = (size_t)kn_numel(4, in);
  for (size_t i = 0; i < n_el; i++)
    xd[i] = rnd(); /* any bits: NaN payloads included */
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
  const uint32_t *yd = ok ? yt->data : NULL;
  size_t plane = (size_t)(in[2] * in[3]);
  for (size_t b = 0; ok && b < (size_t)in[0]; b++)
    for (size_t p = 0; p < plane && bad == n_el; p++)
      for (size_t ch = 0; ch < 3; ch++)
        if (yd[(b * plane + p) * 3 + ch] != xd[(b * 3 + ch) * plane + p])
          bad = (b * plane + p) * 3 + ch;
  if (!ok || bad < n_el) {
    fprintf(stderr, "FAIL transpose %s %d threads", kestrel_dtype_name(dt),
            kn_threadpool_threads(pool));
    print_dims("in", 4, in);
    if (bad < n_el)
      fprintf(stderr, ": output element %zu differs", bad);
    fprintf(stderr, "\n");
    failures++;
  }
  kn_graph_free(g);
}

static void transpose3_cases(kn_threadpool *pool3) {
  for (int rep = 0; rep < 200; rep++) {
    int64_t in[4] = {irange(1, 2), 3, irange(1, 13), irange(1, 70)};
    if (rep % 20 == 0) { /* PP-OCR cls's input */
      in[0] = 1;
      in[2] = 48;
      in[3] = 192;
    }
    transpose3_check(rep % 2 ? pool3 : NULL,
                     rep % 3 ? KESTREL_DTYPE_F32 : KESTREL_DTYPE_I32, in);
  }
}

int main(void) {
  kn_threadpool *pool3 = kn_threadpool_create(3);
  maxpool_cases(pool3);
  gap_cases(pool3);
  transpose3_cases(pool3);
  printf("%d cases, fast path took %d of the %d it must take, %d failures\n",
         cases, fast_runs, fast_expected, failures);
  kn_threadpool_destroy(pool3);
  return failures ? 1 : 0;
}
