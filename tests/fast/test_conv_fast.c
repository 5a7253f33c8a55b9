/* The fast Conv/Gemm path (ops/conv_fast.c + passes/pack_weights.c) against
 * the reference ops, on random NHWC graphs whose shapes break the kernels'
 * tiles, and threads=1 against threads=2 byte for byte.
 *
 * int8: the packed node must equal, byte for byte, an independent integer
 * oracle written here from the definition in kernels.h (exact int32
 * accumulation, then kn_qs8_requantize); run under KESTREL_ISA=ref and
 * KESTREL_ISA=avx2 (tests/fast/meson.build) so every path is held to it.
 * The reference Conv op requantizes in double, so against it int8 may
 * differ by one step on exact ties; that is checked too (|diff| <= 1).
 * f32: within 1e-4 relative of the reference op.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ops/conv_fast.h"
#include "passes/passes.h"
#include "threadpool.h"

/* xorshift64*: the same sequence on every machine. */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (uint32_t)((rng * 2685821657736338717ull) >> 32);
}
static int irange(int lo, int hi) {
  return lo + (int)(rnd() % (uint32_t)(hi - lo + 1));
}
static float frange(float lo, float hi) {
  return lo + (hi - lo) * (float)(rnd() >> 8) / 16777216.0f;
}

static int failures;
/* Share of int8 oracle outputs at the rails: a test whose outputs all
 * saturate would prove nothing. */
static size_t saturated, int8_total;

typedef struct conv_case {
  int q; /* int8 */
  int dw;
  int batch, h, w, c, n, kh, kw, sh, sw, dh, dwil, pt, pl, pb, pr;
  int act;      /* KN_ACT_* (clamps for int8) */
  int residual; /* fused residual input */
} conv_case;

static void describe(const conv_case *k, char *buf, size_t size) {
  snprintf(buf, size,
           "%s %s N%d H%d W%d C%d -> %d k%dx%d s%dx%d d%dx%d pads %d,%d,%d,%d "
           "act %d residual %d isa %s",
           k->q ? "int8" : "f32", k->dw ? "dw" : "conv", k->batch, k->h, k->w,
           k->c, k->n, k->kh, k->kw, k->sh, k->sw, k->dh, k->dwil, k->pt, k->pl,
           k->pb, k->pr, k->act, k->residual,
           kn_isa_name(kn_kernels_get()->isa));
}

static int add_tensor(kn_graph *g, const char *name, kestrel_dtype dt,
                      int ndim, const int64_t *dims) {
  int t = kn_graph_add_tensor(g, name);
  if (t < 0 || !kn_tensor_alloc_data(&g->tensors[t], dt, ndim, dims))
    abort();
  return t;
}

static void set_q(kn_graph *g, int t, float scale, int32_t zero) {
  kn_tensor_set_quant(&g->tensors[t], -1, 1, &scale, &zero);
}

/* Data for one case, shared by the reference and the packed graph. */
typedef struct case_data {
  void *x, *w, *b, *r;
  float *w_scale;
  float x_scale, y_scale, r_scale, sum_scale;
  int32_t x_zero, y_zero, r_zero, sum_zero;
  int64_t xdims[4], wdims[4], rdims[4];
  size_t xn, wn, rn;
} case_data;

static void out_hw(const conv_case *k, int *oh, int *ow) {
  *oh = (k->h + k->pt + k->pb - ((k->kh - 1) * k->dh + 1)) / k->sh + 1;
  *ow = (k->w + k->pl + k->pr - ((k->kw - 1) * k->dwil + 1)) / k->sw + 1;
}

static void make_data(const conv_case *k, case_data *d) {
  memset(d, 0, sizeof(*d));
  int oh, ow;
  out_hw(k, &oh, &ow);
  int64_t xd[4] = {k->batch, k->h, k->w, k->c};
  int64_t wd[4] = {k->n, k->dw ? 1 : k->c, k->kh, k->kw};
  int64_t rd[4] = {k->batch, oh, ow, k->n};
  memcpy(d->xdims, xd, sizeof xd);
  memcpy(d->wdims, wd, sizeof wd);
  memcpy(d->rdims, rd, sizeof rd);
  d->xn = (size_t)(xd[0] * xd[1] * xd[2] * xd[3]);
  d->wn = (size_t)(wd[0] * wd[1] * wd[2] * wd[3]);
  d->rn = (size_t)(rd[0] * rd[1] * rd[2] * rd[3]);
  size_t es = k->q ? 1 : 4;
  d->x = malloc(d->xn * es + 1);
  d->w = malloc(d->wn * es + 1);
  d->b = malloc((size_t)k->n * 4 + 1);
  d->r = malloc(d->rn * es + 1);
  d->w_scale = malloc((size_t)k->n * sizeof(float));
  if (k->q) {
    int8_t *x = d->x, *w = d->w, *r = d->r;
    int32_t *b = d->b;
    for (size_t i = 0; i < d->xn; i++)
      x[i] = (int8_t)irange(-128, 127);
    /* Extreme weights (+-127) and activations (-128) on purpose: the
     * kernels must not saturate on them. */
    for (size_t i = 0; i < d->wn; i++)
      w[i] = (int8_t)(rnd() % 7 == 0 ? (rnd() & 1 ? 127 : -127)
                                     : irange(-127, 127));
    for (int i = 0; i < k->n; i++) {
      b[i] = irange(-20000, 20000);
      d->w_scale[i] = frange(0.002f, 0.02f);
    }
    for (size_t i = 0; i < d->rn; i++)
      r[i] = (int8_t)irange(-128, 127);
    d->x_scale = frange(0.01f, 0.05f);
    d->x_zero = irange(-128, 127);
    int taps = k->kh * k->kw * (k->dw ? 1 : k->c);
    /* An output scale that spreads results over the int8 range. */
    /* acc has a spread of about 64 * 74 * sqrt(taps); map it to +-50. */
    d->y_scale = d->x_scale * 0.011f * 64.0f * 74.0f * sqrtf((float)taps) / 50.0f;
    d->y_zero = irange(-20, 20);
    d->sum_scale = d->y_scale * frange(0.7f, 1.3f);
    d->sum_zero = irange(-10, 10);
    d->r_scale = d->y_scale * frange(0.5f, 1.5f);
    d->r_zero = irange(-10, 10);
  } else {
    float *x = d->x, *w = d->w, *b = d->b, *r = d->r;
    for (size_t i = 0; i < d->xn; i++)
      x[i] = frange(-1, 1);
    for (size_t i = 0; i < d->wn; i++)
      w[i] = frange(-1, 1);
    for (int i = 0; i < k->n; i++)
      b[i] = frange(-1, 1);
    for (size_t i = 0; i < d->rn; i++)
      r[i] = frange(-1, 1);
  }
}

static void free_data(case_data *d) {
  free(d->x), free(d->w), free(d->b), free(d->r), free(d->w_scale);
}

/* A one-Conv graph; with residual, a Conv + Add pair for the reference
 * (fused = 0) or one Conv with input [3] and sum_* attributes (fused). */
static kn_graph *build(const conv_case *k, const case_data *d, int fused,
                       int *out_tensor) {
  kn_graph *g = kn_graph_new();
  kestrel_dtype dt = k->q ? KESTREL_DTYPE_I8 : KESTREL_DTYPE_F32;
  int x = add_tensor(g, "x", dt, 4, d->xdims);
  g->tensors[x].kind = KN_TENSOR_INPUT;
  memcpy(g->tensors[x].data, d->x, kn_tensor_bytes(&g->tensors[x]));
  int w = add_tensor(g, "w", dt, 4, d->wdims);
  g->tensors[w].kind = KN_TENSOR_CONSTANT;
  memcpy(g->tensors[w].data, d->w, kn_tensor_bytes(&g->tensors[w]));
  int64_t bd[1] = {k->n};
  int b = add_tensor(g, "b", k->q ? KESTREL_DTYPE_I32 : KESTREL_DTYPE_F32, 1,
                     bd);
  g->tensors[b].kind = KN_TENSOR_CONSTANT;
  memcpy(g->tensors[b].data, d->b, (size_t)k->n * 4);
  int r = -1;
  if (k->residual) {
    r = add_tensor(g, "r", dt, 4, d->rdims);
    g->tensors[r].kind = KN_TENSOR_INPUT;
    memcpy(g->tensors[r].data, d->r, kn_tensor_bytes(&g->tensors[r]));
  }
  int y = kn_graph_add_tensor(g, "y");
  if (k->q) {
    set_q(g, x, d->x_scale, d->x_zero);
    int32_t zeros[4096] = {0};
    kn_tensor_set_quant(&g->tensors[w], 0, k->n, d->w_scale, zeros);
    if (k->residual) {
      set_q(g, r, d->r_scale, d->r_zero);
      set_q(g, y, fused ? d->y_scale : d->sum_scale,
            fused ? d->y_zero : d->sum_zero);
    } else {
      set_q(g, y, d->y_scale, d->y_zero);
    }
    g->tensors[y].dtype = KESTREL_DTYPE_I8;
  }
  int ins[4] = {x, w, b, r};
  int ci = kn_graph_add_node(g, KN_OP_CONV, "conv", "Conv", ins,
                             k->residual && fused ? 4 : 3, &y, 1);
  kn_node *n = &g->nodes[ci];
  int64_t ks[2] = {k->kh, k->kw}, st[2] = {k->sh, k->sw};
  int64_t dl[2] = {k->dh, k->dwil}, pd[4] = {k->pt, k->pl, k->pb, k->pr};
  kn_node_set_int(n, "layout", KN_LAYOUT_NHWC);
  kn_node_set_ints(n, "kernel_shape", ks, 2);
  kn_node_set_ints(n, "strides", st, 2);
  kn_node_set_ints(n, "dilations", dl, 2);
  kn_node_set_ints(n, "pads", pd, 4);
  kn_node_set_int(n, "group", k->dw ? k->c : 1);
  int act_on_conv = !k->residual || fused;
  if (act_on_conv && k->act != KN_ACT_NONE) {
    kn_node_set_int(n, "activation", k->act);
    if (k->act == KN_ACT_CLIP) {
      kn_node_set_float(n, "activation_min", -0.5f);
      kn_node_set_float(n, "activation_max", 0.75f);
    }
  }
  if (k->residual && fused && k->q) {
    kn_node_set_float(n, "sum_scale", d->sum_scale);
    kn_node_set_int(n, "sum_zero_point", d->sum_zero);
  }
  int out = y;
  if (k->residual && !fused) {
    int z = kn_graph_add_tensor(g, "z");
    if (k->q) {
      set_q(g, z, d->y_scale, d->y_zero);
      g->tensors[z].dtype = KESTREL_DTYPE_I8;
    }
    int ains[2] = {y, r};
    int ai = kn_graph_add_node(g, KN_OP_ADD, "add", "Add", ains, 2, &z, 1);
    if (k->act != KN_ACT_NONE) {
      kn_node_set_int(&g->nodes[ai], "activation", k->act);
      if (k->act == KN_ACT_CLIP) {
        kn_node_set_float(&g->nodes[ai], "activation_min", -0.5f);
        kn_node_set_float(&g->nodes[ai], "activation_max", 0.75f);
      }
    }
    out = z;
  }
  kn_graph_add_input(g, x);
  if (r >= 0)
    kn_graph_add_input(g, r);
  kn_graph_add_output(g, out);
  *out_tensor = out;
  return g;
}

/* Infers and runs every node in order with its own buffers; threads > 1
 * uses a pool and per-thread scratch slices as a session does. */
static kestrel_status run_graph(kn_graph *g, int threads, kestrel_error *err) {
  kn_threadpool *pool = kn_threadpool_create(threads);
  int nt = kn_threadpool_threads(pool);
  kestrel_status st = KESTREL_OK;
  for (int i = 0; i < g->num_nodes && st == KESTREL_OK; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    const kn_op_info *op = kn_op_get(n->op);
    st = op->infer(g, n, err);
    if (st != KESTREL_OK)
      break;
    kn_tensor *y = kn_out(g, n, 0);
    size_t bytes = kn_tensor_bytes(y);
    if (y->data_owned)
      free(y->data);
    y->data = malloc(bytes + 1);
    memset(y->data, 0x55, bytes); /* poison */
    y->data_owned = true;
    size_t sb = op->scratch ? op->scratch(g, n) : 0;
    sb = (sb + 63) / 64 * 64 * (size_t)nt;
    void *scratch = sb ? malloc(sb) : NULL;
    kn_exec x = {g, scratch, sb, nt, pool};
    st = op->run(&x, n, err);
    free(scratch);
  }
  kn_threadpool_destroy(pool);
  return st;
}

/* The int8 oracle: the definition of kernels.h, straight from the
 * unpacked weights. */
static void int8_oracle(const conv_case *k, const case_data *d, int8_t *out) {
  int oh, ow;
  out_hw(k, &oh, &ow);
  const int8_t *x = d->x, *w = d->w, *r = d->r;
  const int32_t *b = d->b;
  int cg = k->dw ? 1 : k->c;
  /* The activation's clamp bounds in the output's integers. */
  float lo = -INFINITY, hi = INFINITY;
  if (k->act == KN_ACT_RELU)
    lo = 0;
  if (k->act == KN_ACT_RELU6)
    lo = 0, hi = 6;
  if (k->act == KN_ACT_CLIP)
    lo = -0.5f, hi = 0.75f;
  for (int bi = 0; bi < k->batch; bi++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        for (int o = 0; o < k->n; o++) {
          int64_t acc = b[o];
          for (int ci = 0; ci < cg; ci++)
            for (int ky = 0; ky < k->kh; ky++)
              for (int kx = 0; kx < k->kw; kx++) {
                int iy = oy * k->sh + ky * k->dh - k->pt;
                int ix = ox * k->sw + kx * k->dwil - k->pl;
                if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w)
                  continue;
                int c = k->dw ? o : ci;
                int xv = x[((bi * k->h + iy) * k->w + ix) * k->c + c];
                int wv = w[((o * cg + ci) * k->kh + ky) * k->kw + kx];
                acc += (int64_t)wv * (xv - d->x_zero);
              }
          size_t oi = (((size_t)bi * oh + oy) * ow + ox) * k->n + o;
          if (k->residual) {
            float s = (float)((double)d->x_scale * d->w_scale[o] /
                              d->sum_scale);
            kn_qs8_requant rq = {&s, d->sum_zero, -128, 127};
            int8_t c = kn_qs8_requantize((int32_t)acc, s, &rq);
            float va = d->sum_scale * (float)(c - d->sum_zero);
            float vb = d->r_scale * (float)(r[oi] - d->r_zero);
            float v = va + vb;
            v = v < lo ? lo : (v > hi ? hi : v);
            float qv = rintf(v / d->y_scale);
            int32_t q = (int32_t)qv + d->y_zero;
            out[oi] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
          } else {
            float s = (float)((double)d->x_scale * d->w_scale[o] / d->y_scale);
            int32_t qlo = -128, qhi = 127;
            if (!isinf(lo)) {
              double v = nearbyint((double)lo / d->y_scale) + d->y_zero;
              qlo = v < -128 ? -128 : (v > 127 ? 127 : (int32_t)v);
            }
            if (!isinf(hi)) {
              double v = nearbyint((double)hi / d->y_scale) + d->y_zero;
              qhi = v < -128 ? -128 : (v > 127 ? 127 : (int32_t)v);
            }
            kn_qs8_requant rq = {&s, d->y_zero, qlo, qhi};
            out[oi] = kn_qs8_requantize((int32_t)acc, s, &rq);
          }
        }
}

static void check_case(const conv_case *k) {
  char what[256];
  describe(k, what, sizeof what);
  case_data d;
  make_data(k, &d);
  kestrel_error err;
  memset(&err, 0, sizeof err);
  int yref, y1, y2;
  kn_graph *gref = build(k, &d, 0, &yref);
  kn_graph *g1 = build(k, &d, 1, &y1);
  kn_graph *g2 = build(k, &d, 1, &y2);
  int packed1 = 0, packed2 = 0;
  if (run_graph(gref, 1, &err) != KESTREL_OK ||
      kn_pass_pack_weights(g1, &packed1, &err) != KESTREL_OK ||
      kn_pass_pack_weights(g2, &packed2, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: %s\n", what, err.message);
    failures++;
    goto done;
  }
  if (packed1 != 1 || packed2 != 1) {
    fprintf(stderr, "FAIL %s: pack_weights packed %d nodes\n", what, packed1);
    failures++;
    goto done;
  }
  if (run_graph(g1, 1, &err) != KESTREL_OK ||
      run_graph(g2, 2, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: %s\n", what, err.message);
    failures++;
    goto done;
  }
  const kn_tensor *tr = &gref->tensors[yref], *t1 = &g1->tensors[y1],
                  *t2 = &g2->tensors[y2];
  size_t count = (size_t)kn_tensor_numel(tr);
  if ((size_t)kn_tensor_numel(t1) != count ||
      memcmp(tr->dims, t1->dims, sizeof(int64_t) * 4)) {
    fprintf(stderr, "FAIL %s: output shape differs\n", what);
    failures++;
    goto done;
  }
  if (memcmp(t1->data, t2->data, kn_tensor_bytes(t1))) {
    fprintf(stderr, "FAIL %s: threads=1 and threads=2 differ\n", what);
    failures++;
  }
  if (k->q) {
    int8_t *want = malloc(count + 1);
    int8_oracle(k, &d, want);
    const int8_t *got = t1->data, *ref = tr->data;
    for (size_t i = 0; i < count; i++) {
      if (got[i] != want[i]) {
        fprintf(stderr, "FAIL %s: element %zu = %d, oracle %d\n", what, i,
                got[i], want[i]);
        failures++;
        break;
      }
      /* With a residual the one step of the intermediate is rescaled. */
      if (abs(got[i] - ref[i]) > (k->residual ? 2 : 1)) {
        fprintf(stderr, "FAIL %s: element %zu = %d, reference op %d\n", what,
                i, got[i], ref[i]);
        failures++;
        break;
      }
    }
    for (size_t i = 0; i < count; i++)
      saturated += want[i] == -128 || want[i] == 127;
    int8_total += count;
    free(want);
  } else {
    const float *got = t1->data, *ref = tr->data;
    for (size_t i = 0; i < count; i++) {
      float diff = fabsf(got[i] - ref[i]);
      if (!(diff <= 1e-4f * (1.0f + fabsf(ref[i])))) {
        fprintf(stderr, "FAIL %s: element %zu = %g, reference %g\n", what, i,
                (double)got[i], (double)ref[i]);
        failures++;
        break;
      }
    }
  }
done:
  kn_graph_free(gref);
  kn_graph_free(g1);
  kn_graph_free(g2);
  free_data(&d);
}

static void conv_cases(int q) {
  static const int acts_f32[] = {KN_ACT_NONE, KN_ACT_RELU, KN_ACT_RELU6,
                                 KN_ACT_HARDSWISH, KN_ACT_CLIP,
                                 KN_ACT_SIGMOID};
  static const int acts_q[] = {KN_ACT_NONE, KN_ACT_RELU, KN_ACT_RELU6,
                               KN_ACT_CLIP};
  /* Hand-picked shapes first: 1x1 (direct GEMM), 3x3 s1/s2, 5x5, tails of
   * every tile (N % 8, N % 16, M % 3, M % 6, K % 8), big pads, dilation. */
  static const conv_case fixed[] = {
      {0, 0, 1, 7, 5, 3, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0},
      {0, 0, 1, 9, 11, 17, 33, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0},
      {0, 0, 2, 8, 8, 3, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0},
      {0, 0, 1, 13, 7, 5, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
      {0, 0, 1, 10, 10, 4, 7, 5, 5, 1, 2, 2, 1, 4, 3, 2, 5, 0, 0},
      {0, 0, 1, 6, 6, 8, 8, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0},
      {0, 1, 1, 9, 9, 19, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
      {0, 1, 1, 12, 11, 8, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0},
      {0, 1, 1, 10, 13, 17, 17, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0},
      {0, 1, 2, 11, 10, 33, 33, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 0, 0},
      {0, 1, 1, 7, 8, 5, 5, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 0, 0},
      {0, 1, 1, 5, 6, 3, 3, 2, 4, 1, 3, 1, 1, 0, 3, 1, 0, 0, 0},
      /* Wide reductions: the weights are cut into column chunks. */
      {0, 0, 1, 5, 5, 200, 37, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
      {0, 0, 1, 6, 6, 3000, 50, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0},
      {0, 0, 1, 4, 4, 800, 45, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
  };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    conv_case k = fixed[i];
    k.q = q;
    for (size_t a = 0; a < (q ? 4u : 6u); a++) {
      k.act = q ? acts_q[a] : acts_f32[a];
      k.residual = 0;
      check_case(&k);
      if (a < 2) {
        k.residual = 1;
        check_case(&k);
      }
    }
  }
  /* Then random ones. */
  for (int i = 0; i < 60; i++) {
    conv_case k;
    memset(&k, 0, sizeof k);
    k.q = q;
    k.dw = irange(0, 2) == 0;
    k.batch = irange(1, 2);
    k.h = irange(1, 14);
    k.w = irange(1, 14);
    k.c = irange(1, k.dw ? 40 : 24);
    k.n = k.dw ? k.c : irange(1, 40);
    k.kh = irange(1, k.dw ? 5 : 3) | (k.dw ? 1 : 0);
    k.kw = k.dw ? k.kh : irange(1, 3);
    k.sh = irange(1, 2);
    k.sw = k.dw ? k.sh : irange(1, 2);
    k.dh = k.dwil = irange(0, 4) == 0 ? 2 : 1;
    k.pt = irange(0, k.kh - 1);
    k.pl = irange(0, k.kw - 1);
    k.pb = irange(0, k.kh - 1);
    k.pr = irange(0, k.kw - 1);
    if (k.h + k.pt + k.pb < (k.kh - 1) * k.dh + 1 ||
        k.w + k.pl + k.pr < (k.kw - 1) * k.dwil + 1)
      continue;
    k.act = q ? acts_q[irange(0, 3)] : acts_f32[irange(0, 5)];
    k.residual = irange(0, 3) == 0;
    check_case(&k);
  }
}

/* Packed Gemm (f32 with alpha/beta/transB; int8) against the reference. */
static void gemm_case(int q, int m, int kk, int nn, int trans_b) {
  char what[160];
  snprintf(what, sizeof what, "%s Gemm M%d K%d N%d transB %d isa %s",
           q ? "int8" : "f32", m, kk, nn, trans_b,
           kn_isa_name(kn_kernels_get()->isa));
  kn_graph *gs[3];
  int ys[3];
  kestrel_error err;
  memset(&err, 0, sizeof err);
  uint64_t seed = rng;
  for (int v = 0; v < 3; v++) {
    rng = seed;
    kn_graph *g = kn_graph_new();
    kestrel_dtype dt = q ? KESTREL_DTYPE_I8 : KESTREL_DTYPE_F32;
    int64_t ad[2] = {m, kk}, bd[2] = {trans_b ? nn : kk, trans_b ? kk : nn};
    int64_t cd[1] = {nn};
    int a = add_tensor(g, "a", dt, 2, ad), b = add_tensor(g, "b", dt, 2, bd);
    int c = add_tensor(g, "c", q ? KESTREL_DTYPE_I32 : KESTREL_DTYPE_F32, 1,
                       cd);
    g->tensors[a].kind = KN_TENSOR_INPUT;
    g->tensors[b].kind = g->tensors[c].kind = KN_TENSOR_CONSTANT;
    int y = kn_graph_add_tensor(g, "y");
    for (int i = 0; i < m * kk; i++) {
      if (q)
        ((int8_t *)g->tensors[a].data)[i] = (int8_t)irange(-128, 127);
      else
        ((float *)g->tensors[a].data)[i] = frange(-1, 1);
    }
    for (int i = 0; i < kk * nn; i++) {
      if (q)
        ((int8_t *)g->tensors[b].data)[i] = (int8_t)irange(-127, 127);
      else
        ((float *)g->tensors[b].data)[i] = frange(-1, 1);
    }
    for (int i = 0; i < nn; i++) {
      if (q)
        ((int32_t *)g->tensors[c].data)[i] = irange(-5000, 5000);
      else
        ((float *)g->tensors[c].data)[i] = frange(-1, 1);
    }
    if (q) {
      set_q(g, a, 0.02f, irange(-50, 50));
      float ws[512];
      int32_t wz[512] = {0};
      for (int i = 0; i < nn; i++)
        ws[i] = frange(0.005f, 0.01f);
      kn_tensor_set_quant(&g->tensors[b], trans_b ? 0 : 1, nn, ws, wz);
      set_q(g, y, 0.02f * 0.0075f * 73.0f * 74.0f * sqrtf((float)kk) / 50.0f,
            irange(-10, 10));
      g->tensors[y].dtype = KESTREL_DTYPE_I8;
    }
    int ins[3] = {a, b, c};
    int ni = kn_graph_add_node(g, KN_OP_GEMM, "gemm", "Gemm", ins, 3, &y, 1);
    kn_node_set_int(&g->nodes[ni], "transB", trans_b);
    if (!q) {
      kn_node_set_float(&g->nodes[ni], "alpha", 0.75f);
      kn_node_set_float(&g->nodes[ni], "beta", 1.5f);
    }
    kn_graph_add_input(g, a);
    kn_graph_add_output(g, y);
    int packed = 0;
    if (v > 0 && (kn_pass_pack_weights(g, &packed, &err) != KESTREL_OK ||
                  packed != 1)) {
      fprintf(stderr, "FAIL %s: not packed (%s)\n", what, err.message);
      failures++;
    }
    if (run_graph(g, v == 2 ? 2 : 1, &err) != KESTREL_OK) {
      fprintf(stderr, "FAIL %s: %s\n", what, err.message);
      failures++;
    }
    gs[v] = g;
    ys[v] = y;
  }
  const kn_tensor *tr = &gs[0]->tensors[ys[0]], *t1 = &gs[1]->tensors[ys[1]],
                  *t2 = &gs[2]->tensors[ys[2]];
  size_t count = (size_t)m * (size_t)nn;
  if (tr->data && t1->data && t2->data) {
    if (memcmp(t1->data, t2->data, kn_tensor_bytes(t1))) {
      fprintf(stderr, "FAIL %s: threads=1 and threads=2 differ\n", what);
      failures++;
    }
    for (size_t i = 0; i < count; i++) {
      float got = q ? ((int8_t *)t1->data)[i] : ((float *)t1->data)[i];
      float want = q ? ((int8_t *)tr->data)[i] : ((float *)tr->data)[i];
      float tol = q ? 1.0f : 1e-4f * (1.0f + fabsf(want));
      if (!(fabsf(got - want) <= tol)) {
        fprintf(stderr, "FAIL %s: element %zu = %g, reference %g\n", what, i,
                (double)got, (double)want);
        failures++;
        break;
      }
    }
  }
  for (int v = 0; v < 3; v++)
    kn_graph_free(gs[v]);
}

/* Packed ConvTranspose (stride == kernel) against the reference op, and
 * for int8 also against the integer oracle, byte for byte. */
static void deconv_case(int q, int h, int w, int c, int m, int kh, int kw,
                        int act) {
  char what[160];
  snprintf(what, sizeof what,
           "%s ConvTranspose H%d W%d C%d -> %d k%dx%d act %d isa %s",
           q ? "int8" : "f32", h, w, c, m, kh, kw, act,
           kn_isa_name(kn_kernels_get()->isa));
  kn_graph *gs[3];
  int ys[3];
  kestrel_error err;
  memset(&err, 0, sizeof err);
  uint64_t seed = rng;
  float xs = 0, ys_scale = 0, wsc[64];
  int32_t xz = 0, yz = 0;
  for (int v = 0; v < 3; v++) {
    rng = seed;
    kn_graph *g = kn_graph_new();
    kestrel_dtype dt = q ? KESTREL_DTYPE_I8 : KESTREL_DTYPE_F32;
    int64_t xd[4] = {1, h, w, c}, wd[4] = {c, m, kh, kw}, bd[1] = {m};
    int x = add_tensor(g, "x", dt, 4, xd), wt = add_tensor(g, "w", dt, 4, wd);
    int b = add_tensor(g, "b", q ? KESTREL_DTYPE_I32 : KESTREL_DTYPE_F32, 1,
                       bd);
    g->tensors[x].kind = KN_TENSOR_INPUT;
    g->tensors[wt].kind = g->tensors[b].kind = KN_TENSOR_CONSTANT;
    int y = kn_graph_add_tensor(g, "y");
    for (int i = 0; i < h * w * c; i++) {
      if (q)
        ((int8_t *)g->tensors[x].data)[i] = (int8_t)irange(-128, 127);
      else
        ((float *)g->tensors[x].data)[i] = frange(-1, 1);
    }
    for (int i = 0; i < c * m * kh * kw; i++) {
      if (q)
        ((int8_t *)g->tensors[wt].data)[i] = (int8_t)irange(-127, 127);
      else
        ((float *)g->tensors[wt].data)[i] = frange(-1, 1);
    }
    for (int i = 0; i < m; i++) {
      if (q)
        ((int32_t *)g->tensors[b].data)[i] = irange(-3000, 3000);
      else
        ((float *)g->tensors[b].data)[i] = frange(-1, 1);
    }
    if (q) {
      xs = 0.02f;
      xz = irange(-50, 50);
      set_q(g, x, xs, xz);
      int32_t wz[64] = {0};
      for (int i = 0; i < m; i++)
        wsc[i] = frange(0.005f, 0.01f);
      kn_tensor_set_quant(&g->tensors[wt], 1, m, wsc, wz);
      ys_scale = 0.02f * 0.0075f * 73.0f * 74.0f * sqrtf((float)c) / 50.0f;
      yz = irange(-10, 10);
      set_q(g, y, ys_scale, yz);
      g->tensors[y].dtype = KESTREL_DTYPE_I8;
    }
    int ins[3] = {x, wt, b};
    int ni = kn_graph_add_node(g, KN_OP_CONV_TRANSPOSE, "deconv",
                               "ConvTranspose", ins, 3, &y, 1);
    int64_t ks[2] = {kh, kw};
    kn_node_set_int(&g->nodes[ni], "layout", KN_LAYOUT_NHWC);
    kn_node_set_ints(&g->nodes[ni], "kernel_shape", ks, 2);
    kn_node_set_ints(&g->nodes[ni], "strides", ks, 2);
    if (act != KN_ACT_NONE)
      kn_node_set_int(&g->nodes[ni], "activation", act);
    kn_graph_add_input(g, x);
    kn_graph_add_output(g, y);
    int packed = 0;
    if (v > 0 && (kn_pass_pack_weights(g, &packed, &err) != KESTREL_OK ||
                  packed != 1)) {
      fprintf(stderr, "FAIL %s: not packed (%s)\n", what, err.message);
      failures++;
    }
    if (run_graph(g, v == 2 ? 2 : 1, &err) != KESTREL_OK) {
      fprintf(stderr, "FAIL %s: %s\n", what, err.message);
      failures++;
    }
    gs[v] = g;
    ys[v] = y;
  }
  const kn_tensor *tr = &gs[0]->tensors[ys[0]], *t1 = &gs[1]->tensors[ys[1]],
                  *t2 = &gs[2]->tensors[ys[2]];
  size_t count = (size_t)(h * kh) * (size_t)(w * kw) * (size_t)m;
  if (tr->data && t1->data && t2->data &&
      (size_t)kn_tensor_numel(t1) == count) {
    if (memcmp(t1->data, t2->data, kn_tensor_bytes(t1))) {
      fprintf(stderr, "FAIL %s: threads=1 and threads=2 differ\n", what);
      failures++;
    }
    const kn_tensor *xt = &gs[0]->tensors[gs[0]->nodes[0].inputs[0]];
    const kn_tensor *wt = &gs[0]->tensors[gs[0]->nodes[0].inputs[1]];
    const kn_tensor *bt = &gs[0]->tensors[gs[0]->nodes[0].inputs[2]];
    for (size_t i = 0; i < count; i++) {
      float got = q ? ((int8_t *)t1->data)[i] : ((float *)t1->data)[i];
      float want = q ? ((int8_t *)tr->data)[i] : ((float *)tr->data)[i];
      float tol = q ? 1.0f : 1e-4f * (1.0f + fabsf(want));
      if (!(fabsf(got - want) <= tol)) {
        fprintf(stderr, "FAIL %s: element %zu = %g, reference %g\n", what, i,
                (double)got, (double)want);
        failures++;
        break;
      }
      if (q) {
        size_t mm = i % (size_t)m, px = i / (size_t)m;
        size_t ox = px % (size_t)(w * kw), oy = px / (size_t)(w * kw);
        size_t ix = ox / (size_t)kw, kx = ox % (size_t)kw;
        size_t iy = oy / (size_t)kh, ky = oy % (size_t)kh;
        int64_t acc = ((const int32_t *)bt->data)[mm];
        for (int cc = 0; cc < c; cc++)
          acc += (int64_t)(((const int8_t *)xt->data)[(iy * (size_t)w + ix) *
                                                       (size_t)c + (size_t)cc] -
                           xz) *
                 ((const int8_t *)wt->data)[(((size_t)cc * (size_t)m + mm) *
                                                 (size_t)kh + ky) *
                                                (size_t)kw + kx];
        float sc = (float)((double)xs * wsc[mm] / ys_scale);
        kn_qs8_requant rq = {&sc, yz, act == KN_ACT_RELU ? yz : -128, 127};
        int8_t o = kn_qs8_requantize((int32_t)acc, sc, &rq);
        if (o != (int8_t)got) {
          fprintf(stderr, "FAIL %s: element %zu = %g, oracle %d\n", what, i,
                  (double)got, o);
          failures++;
          break;
        }
      }
    }
  } else {
    fprintf(stderr, "FAIL %s: no output\n", what);
    failures++;
  }
  for (int v = 0; v < 3; v++)
    kn_graph_free(gs[v]);
}

/* The pool itself: every item exactly once, chunks on grain boundaries. */
static void count_items(void *ctx, size_t b, size_t e, int thread) {
  (void)thread;
  unsigned char *seen = ctx;
  for (size_t i = b; i < e; i++)
    seen[i]++;
}

static void check_pool(void) {
  for (int threads = 1; threads <= 4; threads++) {
    kn_threadpool *p = kn_threadpool_create(threads);
    for (size_t count = 0; count < 300; count += 7) {
      for (size_t grain = 1; grain < 20; grain += 6) {
        unsigned char seen[300] = {0};
        for (int rep = 0; rep < 3; rep++)
          kn_parallel_for(p, count, grain, count_items, seen);
        for (size_t i = 0; i < count; i++)
          if (seen[i] != 3) {
            fprintf(stderr,
                    "FAIL pool threads %d count %zu grain %zu: item %zu run "
                    "%d times\n",
                    threads, count, grain, i, seen[i] / 3);
            failures++;
            break;
          }
      }
    }
    kn_threadpool_destroy(p);
  }
}

/* fuse_int8_tables: an int8 packed conv (clamp or table activation)
 * followed by a Mul and an Add with int8 scalar constants (PP-OCR's
 * learnable affine block) must give the same bytes once both are folded
 * into the conv's table as when the reference Mul/Add run after it. */
static int scalar_i8(kn_graph *g, const char *name, int8_t v, float scale,
                     int32_t zero) {
  int64_t one = 1;
  int t = add_tensor(g, name, KESTREL_DTYPE_I8, 1, &one);
  ((int8_t *)g->tensors[t].data)[0] = v;
  g->tensors[t].kind = KN_TENSOR_CONSTANT;
  set_q(g, t, scale, zero);
  return t;
}

static void table_case(int dw, int act) {
  conv_case k = {.q = 1, .dw = dw, .batch = 1, .h = 7, .w = 9, .c = dw ? 24 : 13,
                 .n = dw ? 24 : 21, .kh = 3, .kw = 3, .sh = 1, .sw = 2, .dh = 1,
                 .dwil = 1, .pt = 1, .pl = 1, .pb = 1, .pr = 1, .act = act};
  char what[256];
  describe(&k, what, sizeof what);
  case_data d;
  make_data(&k, &d);
  kestrel_error err;
  memset(&err, 0, sizeof err);
  kn_graph *gs[2];
  int outs[2];
  for (int v = 0; v < 2; v++) {
    int y;
    kn_graph *g = gs[v] = build(&k, &d, 1, &y);
    float sm = d.y_scale * 0.9f, sa = sm * 1.2f;
    int m = scalar_i8(g, "m", 90, 0.02f, -3);
    int a = scalar_i8(g, "a", -70, 0.01f, 5);
    int z1 = kn_graph_add_tensor(g, "z1"), z2 = kn_graph_add_tensor(g, "z2");
    set_q(g, z1, sm, 4);
    set_q(g, z2, sa, -6);
    g->tensors[z1].dtype = g->tensors[z2].dtype = KESTREL_DTYPE_I8;
    int mi[2] = {m, y}, ai[2] = {z1, a};
    kn_graph_add_node(g, KN_OP_MUL, "mul", "Mul", mi, 2, &z1, 1);
    kn_graph_add_node(g, KN_OP_ADD, "add", "Add", ai, 2, &z2, 1);
    g->outputs[0] = z2;
    outs[v] = z2;
    int packed = 0, tables = 0;
    if (kn_pass_pack_weights(g, &packed, &err) != KESTREL_OK ||
        (v == 1 && kn_pass_fuse_int8_tables(g, &tables, &err) != KESTREL_OK)) {
      fprintf(stderr, "FAIL table %s: %s\n", what, err.message);
      failures++;
      goto done;
    }
    if (packed != 1 || (v == 1 && tables != 2)) {
      fprintf(stderr, "FAIL table %s: packed %d, folded %d ops\n", what,
              packed, tables);
      failures++;
      goto done;
    }
    if (run_graph(g, v + 1, &err) != KESTREL_OK) {
      fprintf(stderr, "FAIL table %s: %s\n", what, err.message);
      failures++;
      goto done;
    }
  }
  if (memcmp(gs[0]->tensors[outs[0]].data, gs[1]->tensors[outs[1]].data,
             kn_tensor_bytes(&gs[0]->tensors[outs[0]]))) {
    fprintf(stderr, "FAIL table %s: folded Mul/Add differ\n", what);
    failures++;
  }
done:
  kn_graph_free(gs[0]);
  kn_graph_free(gs[1]);
  free_data(&d);
}

int main(void) {
  printf("isa %s\n", kn_isa_name(kn_kernels_get()->isa));
  check_pool();
  conv_cases(0);
  conv_cases(1);
  static const int shapes[][3] = {{1, 1, 1},   {1, 1280, 2}, {5, 17, 9},
                                  {7, 64, 33}, {13, 9, 16},  {2, 200, 100}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int tb = 0; tb < 2; tb++)
      for (int q = 0; q < 2; q++)
        gemm_case(q, shapes[i][0], shapes[i][1], shapes[i][2], tb);
  printf("int8 outputs at the rails: %zu of %zu\n", saturated, int8_total);
  if (saturated * 4 > int8_total) {
    fprintf(stderr, "FAIL: too many saturated int8 outputs\n");
    failures++;
  }
  static const int deconvs[][6] = {{5, 7, 24, 24, 2, 2}, {3, 4, 5, 1, 2, 2},
                                   {4, 9, 17, 9, 3, 2},  {1, 1, 1, 3, 1, 1},
                                   {6, 5, 33, 20, 2, 2}};
  for (size_t i = 0; i < sizeof deconvs / sizeof deconvs[0]; i++)
    for (int q = 0; q < 2; q++)
      for (int act = 0; act < 2; act++)
        deconv_case(q, deconvs[i][0], deconvs[i][1], deconvs[i][2],
                    deconvs[i][3], deconvs[i][4], deconvs[i][5],
                    act ? KN_ACT_RELU : KN_ACT_NONE);
  /* Last, so that the cases above keep their random data. */
  for (int dw = 0; dw < 2; dw++) {
    table_case(dw, KN_ACT_NONE);
    table_case(dw, KN_ACT_RELU);
    table_case(dw, KN_ACT_HARDSWISH);
  }
  if (failures) {
    fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  printf("all fast conv/gemm cases pass\n");
  return 0;
}
