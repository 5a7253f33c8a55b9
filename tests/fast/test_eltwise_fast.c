/* int8 Add/Mul fast path (ops/eltwise_fast.c) against the reference's
 * arithmetic (kn_ew_dequant, kn_ew_act_apply1, kn_ew_requant from
 * elementwise.c), byte for byte, for every ISA (KESTREL_ISA), with 1 and 2
 * threads; and a shape the fast path does not take, to check it declines
 * (the reference then runs and must agree too). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ops/eltwise_fast.h"
#include "ops/ops_common.h"
#include "ops/ops_eltwise.h"
#include "threadpool.h"

static uint64_t rng = 88172645463325252ull;
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
  return lo + (hi - lo) * (float)(rnd() >> 8) / 16777216.0f;
}

static int failures;

static int tensor(kn_graph *g, const char *name, int ndim, const int64_t *dims,
                  float scale, int32_t zero) {
  int t = kn_graph_add_tensor(g, name);
  kn_tensor_alloc_data(&g->tensors[t], KESTREL_DTYPE_I8, ndim, dims);
  kn_tensor_set_quant(&g->tensors[t], -1, 1, &scale, &zero);
  int8_t *p = g->tensors[t].data;
  for (int64_t i = 0; i < kn_tensor_numel(&g->tensors[t]); i++)
    p[i] = (int8_t)irange(-128, 127);
  return t;
}

/* b_kind: 0 same shape, 1 per channel, 2 scalar, 3 per channel as input 0,
 * 4 a middle-axis broadcast (not a fast shape). */
static void check(kn_op op, int b_kind, int act, int threads) {
  int64_t h = irange(1, 9), w = irange(1, 13), c = irange(1, 70);
  int64_t full[4] = {1, h, w, c};
  int64_t chan[4] = {1, 1, 1, c}, one[1] = {1}, mid[4] = {1, h, 1, c};
  kn_graph *g = kn_graph_new();
  int a = tensor(g, "a", 4, full, frange(0.01f, 0.1f), irange(-100, 100));
  int b;
  switch (b_kind) {
  case 0: b = tensor(g, "b", 4, full, frange(0.01f, 0.1f), irange(-100, 100)); break;
  case 1: case 3: b = tensor(g, "b", 4, chan, frange(0.01f, 0.1f), irange(-100, 100)); break;
  case 2: b = tensor(g, "b", 1, one, frange(0.01f, 0.1f), irange(-100, 100)); break;
  default: b = tensor(g, "b", 4, mid, frange(0.01f, 0.1f), irange(-100, 100)); break;
  }
  float ys = op == KN_OP_MUL ? frange(0.001f, 0.02f) : frange(0.02f, 0.1f);
  int y = tensor(g, "y", 4, full, ys, irange(-50, 50));
  int ins[2] = {a, b};
  if (b_kind == 3)
    ins[0] = b, ins[1] = a;
  int ni = kn_graph_add_node(g, op, "op", kn_op_name(op), ins, 2, &y, 1);
  kn_node *n = &g->nodes[ni];
  if (act != KN_ACT_NONE)
    kn_node_set_int(n, "activation", act);
  if (act == KN_ACT_CLIP) {
    kn_node_set_float(n, "activation_min", -0.3f);
    kn_node_set_float(n, "activation_max", 0.4f);
  }
  const kn_tensor *ta = &g->tensors[ins[0]], *tb = &g->tensors[ins[1]];
  kn_tensor *ty = &g->tensors[y];
  /* The oracle: the reference's per-element arithmetic. */
  size_t count = (size_t)kn_tensor_numel(ty);
  int8_t *want = malloc(count);
  kn_ew_quant qa = kn_ew_quant_of(ta), qb = kn_ew_quant_of(tb),
              qy = kn_ew_quant_of(ty);
  kn_ew_act ea;
  kestrel_error err;
  kn_ew_act_read(n, &ea, &err);
  for (size_t i = 0; i < count; i++) {
    size_t ch = i % (size_t)c, pix = i / (size_t)c, row = pix / (size_t)w;
    size_t ia = i, ib = i;
    if (b_kind == 1)
      ib = ch;
    if (b_kind == 2)
      ib = 0;
    if (b_kind == 3)
      ia = ch;
    if (b_kind == 4)
      ib = row * (size_t)c + ch;
    float va = kn_ew_dequant(&qa, ((const int8_t *)ta->data)[ia]);
    float vb = kn_ew_dequant(&qb, ((const int8_t *)tb->data)[ib]);
    float v = op == KN_OP_MUL ? va * vb : va + vb;
    want[i] = (int8_t)kn_ew_requant(&qy, kn_ew_act_apply1(&ea, v));
  }
  kn_threadpool *pool = kn_threadpool_create(threads);
  kn_exec x = {g, NULL, 0, kn_threadpool_threads(pool), pool};
  bool fast = kn_eltwise_fast_binary(&x, n);
  if (!fast) {
    const kn_op_info *info = kn_op_get(op);
    if (info->infer(g, n, &err) != KESTREL_OK ||
        info->run(&x, n, &err) != KESTREL_OK) {
      fprintf(stderr, "FAIL reference run: %s\n", err.message);
      failures++;
    }
  }
  kn_threadpool_destroy(pool);
  /* [1,h,1,c] is a fast shape too when h or w is 1. */
  bool expect_fast = b_kind != 4 || h == 1 || w == 1;
  if (fast != expect_fast) {
    fprintf(stderr, "FAIL %s b_kind %d: fast path %s\n", kn_op_name(op),
            b_kind, fast ? "taken" : "declined");
    failures++;
  }
  const int8_t *got = ty->data;
  for (size_t i = 0; i < count; i++)
    if (got[i] != want[i]) {
      fprintf(stderr,
              "FAIL %s b_kind %d act %d threads %d [1,%lld,%lld,%lld] isa %s:"
              " element %zu = %d, reference %d\n",
              kn_op_name(op), b_kind, act, threads, (long long)h, (long long)w,
              (long long)c, kn_isa_name(kn_kernels_get()->isa), i, got[i],
              want[i]);
      failures++;
      break;
    }
  free(want);
  kn_graph_free(g);
}

/* A one-input int8 op over `count` values, through kn_op_get's run (the
 * table path for large tensors), against the same op run on pieces below
 * the table threshold (the plain reference loop). */
static void check_unary(kn_op op, int count, int threads) {
  float xs = frange(0.01f, 0.1f), ys = frange(0.005f, 0.05f);
  int32_t xz = irange(-60, 60), yz = irange(-60, 60);
  int64_t dims[1] = {count};
  kn_graph *g = kn_graph_new();
  int x = tensor(g, "x", 1, dims, xs, xz), y = tensor(g, "y", 1, dims, ys, yz);
  int ni = kn_graph_add_node(g, op, "op", kn_op_name(op), &x, 1, &y, 1);
  if (op == KN_OP_LEAKY_RELU)
    kn_node_set_float(&g->nodes[ni], "alpha", 0.1f);
  const kn_op_info *info = kn_op_get(op);
  kestrel_error err;
  kn_threadpool *pool = kn_threadpool_create(threads);
  kn_exec ex = {g, NULL, 0, kn_threadpool_threads(pool), pool};
  if (info->infer(g, &g->nodes[ni], &err) != KESTREL_OK ||
      info->run(&ex, &g->nodes[ni], &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: %s\n", kn_op_name(op), err.message);
    failures++;
  }
  kn_threadpool_destroy(pool);
  /* The oracle: pieces of 1000. */
  const int8_t *xd = g->tensors[x].data, *got = g->tensors[y].data;
  for (int start = 0; start < count; start += 1000) {
    int len = count - start < 1000 ? count - start : 1000;
    int64_t pd[1] = {len};
    kn_graph *h = kn_graph_new();
    int px = tensor(h, "x", 1, pd, xs, xz), py = tensor(h, "y", 1, pd, ys, yz);
    memcpy(h->tensors[px].data, xd + start, (size_t)len);
    int pi = kn_graph_add_node(h, op, "op", kn_op_name(op), &px, 1, &py, 1);
    if (op == KN_OP_LEAKY_RELU)
      kn_node_set_float(&h->nodes[pi], "alpha", 0.1f);
    kn_exec hx = {h, NULL, 0, 1, NULL};
    info->infer(h, &h->nodes[pi], &err);
    info->run(&hx, &h->nodes[pi], &err);
    const int8_t *want = h->tensors[py].data;
    for (int i = 0; i < len; i++)
      if (got[start + i] != want[i]) {
        fprintf(stderr,
                "FAIL %s threads %d: element %d (x %d) = %d, reference %d\n",
                kn_op_name(op), threads, start + i, xd[start + i],
                got[start + i], want[i]);
        failures++;
        start = count;
        break;
      }
    kn_graph_free(h);
  }
  kn_graph_free(g);
}

/* Quantize/Dequantize fast paths against the reference's arithmetic
 * (quant.c: kn_round_even(v / scale) + zero, saturated; (float)(q - zero)
 * * scale), with NaN, infinities and huge values mixed in. */
static void check_quant(int threads) {
  size_t count = 20000 + (size_t)irange(0, 999);
  float *x = malloc(count * sizeof(float)), *back = malloc(count * sizeof(float));
  int8_t *q = malloc(count);
  float scale = frange(0.001f, 0.1f);
  int32_t zero = irange(-128, 127);
  for (size_t i = 0; i < count; i++) {
    x[i] = frange(-200.0f, 200.0f) * scale;
    if (i % 97 == 0)
      x[i] = (float)irange(-300, 300) * scale * 0.5f; /* exact ties */
  }
  x[3] = NAN;
  x[5] = INFINITY;
  x[7] = -INFINITY;
  x[11] = 3e38f;
  kn_threadpool *pool = kn_threadpool_create(threads);
  kn_exec ex = {NULL, NULL, 0, kn_threadpool_threads(pool), pool};
  kn_quantize_f32_i8_fast(&ex, x, q, count, scale, zero);
  kn_dequantize_i8_f32_fast(&ex, q, back, count, scale, zero);
  kn_threadpool_destroy(pool);
  for (size_t i = 0; i < count; i++) {
    /* kn_round_even gives INT64_MAX/MIN for infinities; bound it before
     * adding the zero point (the sum would overflow otherwise). */
    int64_t r = kn_round_even(x[i] / scale);
    r = r > 1000000 ? 1000000 : (r < -1000000 ? -1000000 : r);
    r += zero;
    int8_t want = (int8_t)kn_saturate(r, KESTREL_DTYPE_I8);
    float want_back = (float)((int64_t)q[i] - zero) * scale;
    if (q[i] != want || back[i] != want_back) {
      fprintf(stderr,
              "FAIL quantize threads %d: x %g -> %d (reference %d), back %g "
              "(reference %g)\n",
              threads, (double)x[i], q[i], want, (double)back[i],
              (double)want_back);
      failures++;
      break;
    }
  }
  free(x), free(back), free(q);
}

/* GlobalAveragePool NHWC (fast path) against the same data laid out NCHW
 * (the reference loop), byte for byte: both sum each channel in pixel
 * order. */
static void check_global_pool(kestrel_dtype dt) {
  int64_t h = irange(1, 20), w = irange(1, 20), c = irange(1, 300);
  int64_t nhwc[4] = {2, h, w, c}, nchw[4] = {2, c, h, w};
  kn_graph *g[2];
  int ys[2];
  float xs = frange(0.01f, 0.1f), ysc = frange(0.01f, 0.1f);
  int32_t xz = irange(-20, 20), yz = irange(-20, 20);
  uint64_t seed = rng;
  for (int v = 0; v < 2; v++) {
    rng = seed;
    g[v] = kn_graph_new();
    int x = kn_graph_add_tensor(g[v], "x");
    kn_tensor_alloc_data(&g[v]->tensors[x], dt, 4, v ? nchw : nhwc);
    int y = kn_graph_add_tensor(g[v], "y");
    if (dt != KESTREL_DTYPE_F32) {
      kn_tensor_set_quant(&g[v]->tensors[x], -1, 1, &xs, &xz);
      kn_tensor_set_quant(&g[v]->tensors[y], -1, 1, &ysc, &yz);
    }
    /* Same values at the same (n, h, w, c). */
    for (int64_t n = 0; n < 2; n++)
      for (int64_t i = 0; i < h; i++)
        for (int64_t j = 0; j < w; j++)
          for (int64_t k = 0; k < c; k++) {
            int64_t at = v ? ((n * c + k) * h + i) * w + j
                           : ((n * h + i) * w + j) * c + k;
            uint32_t r = (uint32_t)((n * 7919 + i * 104729 + j * 1299709 +
                                     k * 15485863) % 1000003);
            if (dt == KESTREL_DTYPE_F32)
              ((float *)g[v]->tensors[x].data)[at] = (float)r / 1000003.0f - 0.4f;
            else
              ((int8_t *)g[v]->tensors[x].data)[at] = (int8_t)(r % 256);
          }
    int ni = kn_graph_add_node(g[v], KN_OP_GLOBAL_AVGPOOL, "gap",
                               "GlobalAveragePool", &x, 1, &y, 1);
    if (!v)
      kn_node_set_int(&g[v]->nodes[ni], "layout", KN_LAYOUT_NHWC);
    const kn_op_info *info = kn_op_get(KN_OP_GLOBAL_AVGPOOL);
    kestrel_error err;
    kn_node *nd = &g[v]->nodes[ni];
    if (info->infer(g[v], nd, &err) != KESTREL_OK) {
      fprintf(stderr, "FAIL gap infer: %s\n", err.message);
      failures++;
      return;
    }
    kn_tensor *yt = &g[v]->tensors[y];
    yt->data = calloc(1, kn_tensor_bytes(yt) + 1);
    yt->data_owned = true;
    size_t sb = info->scratch ? info->scratch(g[v], nd) : 0;
    void *scratch = sb ? malloc(sb) : NULL;
    kn_exec ex = {g[v], scratch, sb, 1, NULL};
    if (info->run(&ex, nd, &err) != KESTREL_OK) {
      fprintf(stderr, "FAIL gap run: %s\n", err.message);
      failures++;
    }
    free(scratch);
    ys[v] = y;
  }
  if (memcmp(g[0]->tensors[ys[0]].data, g[1]->tensors[ys[1]].data,
             kn_tensor_bytes(&g[0]->tensors[ys[0]]))) {
    fprintf(stderr, "FAIL GlobalAveragePool %s NHWC [2,%lld,%lld,%lld] "
            "differs from NCHW\n", kestrel_dtype_name(dt), (long long)h,
            (long long)w, (long long)c);
    failures++;
  }
  kn_graph_free(g[0]);
  kn_graph_free(g[1]);
}

/* MaxPool NHWC (fast path) against the same data NCHW (reference loop). */
static void check_maxpool(kestrel_dtype dt) {
  int64_t h = irange(1, 17), w = irange(1, 17), c = irange(1, 40);
  int64_t k = irange(1, 3), st = irange(1, 2), pad = irange(0, k - 1);
  if (h + 2 * pad < k || w + 2 * pad < k)
    return;
  int64_t nhwc[4] = {1, h, w, c}, nchw[4] = {1, c, h, w};
  kn_graph *g[2];
  int ys[2];
  float xs = frange(0.01f, 0.1f), ysc = frange(0.01f, 0.1f);
  int32_t xz = irange(-20, 20), yz = irange(-20, 20);
  for (int v = 0; v < 2; v++) {
    g[v] = kn_graph_new();
    int x = kn_graph_add_tensor(g[v], "x");
    kn_tensor_alloc_data(&g[v]->tensors[x], dt, 4, v ? nchw : nhwc);
    int y = kn_graph_add_tensor(g[v], "y");
    if (dt != KESTREL_DTYPE_F32) {
      kn_tensor_set_quant(&g[v]->tensors[x], -1, 1, &xs, &xz);
      kn_tensor_set_quant(&g[v]->tensors[y], -1, 1, &ysc, &yz);
    }
    for (int64_t i = 0; i < h; i++)
      for (int64_t j = 0; j < w; j++)
        for (int64_t kk = 0; kk < c; kk++) {
          int64_t at = v ? (kk * h + i) * w + j : (i * w + j) * c + kk;
          uint32_t r = (uint32_t)((i * 104729 + j * 1299709 + kk * 15485863) %
                                  1000003);
          if (dt == KESTREL_DTYPE_F32)
            ((float *)g[v]->tensors[x].data)[at] = (float)(r % 50) - 25.0f;
          else
            ((int8_t *)g[v]->tensors[x].data)[at] = (int8_t)(r % 256);
        }
    int ni = kn_graph_add_node(g[v], KN_OP_MAXPOOL, "mp", "MaxPool", &x, 1,
                               &y, 1);
    kn_node *nd = &g[v]->nodes[ni];
    int64_t ks[2] = {k, k}, ss[2] = {st, st}, pd[4] = {pad, pad, pad, pad};
    kn_node_set_ints(nd, "kernel_shape", ks, 2);
    kn_node_set_ints(nd, "strides", ss, 2);
    kn_node_set_ints(nd, "pads", pd, 4);
    if (!v)
      kn_node_set_int(nd, "layout", KN_LAYOUT_NHWC);
    const kn_op_info *info = kn_op_get(KN_OP_MAXPOOL);
    kestrel_error err;
    if (info->infer(g[v], nd, &err) != KESTREL_OK) {
      fprintf(stderr, "FAIL maxpool infer: %s\n", err.message);
      failures++;
      return;
    }
    kn_tensor *yt = &g[v]->tensors[y];
    yt->data = calloc(1, kn_tensor_bytes(yt) + 1);
    yt->data_owned = true;
    size_t sb = info->scratch ? info->scratch(g[v], nd) : 0;
    void *scratch = sb ? malloc(sb) : NULL;
    kn_threadpool *pool = kn_threadpool_create(1 + v);
    kn_exec ex = {g[v], scratch, sb, kn_threadpool_threads(pool), pool};
    if (info->run(&ex, nd, &err) != KESTREL_OK) {
      fprintf(stderr, "FAIL maxpool run: %s\n", err.message);
      failures++;
    }
    kn_threadpool_destroy(pool);
    free(scratch);
    ys[v] = y;
  }
  const kn_tensor *a = &g[0]->tensors[ys[0]], *b = &g[1]->tensors[ys[1]];
  int64_t oh = a->dims[1], ow = a->dims[2];
  size_t es = kestrel_dtype_size(dt);
  for (int64_t i = 0; i < oh; i++)
    for (int64_t j = 0; j < ow; j++)
      for (int64_t kk = 0; kk < c; kk++) {
        const uint8_t *pa = (const uint8_t *)a->data + (size_t)((i * ow + j) * c + kk) * es;
        const uint8_t *pb = (const uint8_t *)b->data + (size_t)((kk * oh + i) * ow + j) * es;
        if (memcmp(pa, pb, es)) {
          fprintf(stderr, "FAIL MaxPool %s NHWC [1,%lld,%lld,%lld] k%lld s%lld "
                  "p%lld differs from NCHW at (%lld,%lld,%lld)\n",
                  kestrel_dtype_name(dt), (long long)h, (long long)w,
                  (long long)c, (long long)k, (long long)st, (long long)pad,
                  (long long)i, (long long)j, (long long)kk);
          failures++;
          i = oh;
          j = ow;
          break;
        }
      }
  kn_graph_free(g[0]);
  kn_graph_free(g[1]);
}

/* float32 Add/Mul fast path against the reference's arithmetic (a op b,
 * then kn_ew_act_apply1), bit for bit, infinities included. */
static void check_f32(kn_op op, int b_kind, int act, int threads) {
  int64_t h = irange(1, 9), w = irange(1, 13), c = irange(1, 70);
  int64_t full[4] = {1, h, w, c}, chan[4] = {1, 1, 1, c}, one[1] = {1};
  kn_graph *g = kn_graph_new();
  int a = kn_graph_add_tensor(g, "a"), b = kn_graph_add_tensor(g, "b"),
      y = kn_graph_add_tensor(g, "y");
  kn_tensor_alloc_data(&g->tensors[a], KESTREL_DTYPE_F32, 4, full);
  if (b_kind == 0)
    kn_tensor_alloc_data(&g->tensors[b], KESTREL_DTYPE_F32, 4, full);
  else if (b_kind == 1)
    kn_tensor_alloc_data(&g->tensors[b], KESTREL_DTYPE_F32, 4, chan);
  else
    kn_tensor_alloc_data(&g->tensors[b], KESTREL_DTYPE_F32, 1, one);
  kn_tensor_alloc_data(&g->tensors[y], KESTREL_DTYPE_F32, 4, full);
  float *pa = g->tensors[a].data, *pb = g->tensors[b].data;
  int64_t na = kn_tensor_numel(&g->tensors[a]), nb = kn_tensor_numel(&g->tensors[b]);
  for (int64_t i = 0; i < na; i++)
    pa[i] = frange(-3, 3);
  for (int64_t i = 0; i < nb; i++)
    pb[i] = frange(-3, 3);
  pa[0] = INFINITY;
  if (na > 2)
    pa[2] = -INFINITY;
  int ins[2] = {a, b};
  int ni = kn_graph_add_node(g, op, "op", kn_op_name(op), ins, 2, &y, 1);
  kn_node *n = &g->nodes[ni];
  if (act != KN_ACT_NONE)
    kn_node_set_int(n, "activation", act);
  if (act == KN_ACT_CLIP) {
    kn_node_set_float(n, "activation_min", -0.3f);
    kn_node_set_float(n, "activation_max", 0.4f);
  }
  kn_ew_act ea;
  kestrel_error err;
  kn_ew_act_read(n, &ea, &err);
  size_t count = (size_t)na;
  float *want = malloc(count * sizeof(float));
  for (size_t i = 0; i < count; i++) {
    float vb = pb[b_kind == 0 ? i : b_kind == 1 ? i % (size_t)c : 0];
    float v = op == KN_OP_MUL ? pa[i] * vb : pa[i] + vb;
    want[i] = act != KN_ACT_NONE ? kn_ew_act_apply1(&ea, v) : v;
  }
  kn_threadpool *pool = kn_threadpool_create(threads);
  kn_exec ex = {g, NULL, 0, kn_threadpool_threads(pool), pool};
  if (!kn_eltwise_fast_binary(&ex, n)) {
    fprintf(stderr, "FAIL f32 %s b_kind %d: fast path declined\n",
            kn_op_name(op), b_kind);
    failures++;
  } else if (memcmp(g->tensors[y].data, want, count * sizeof(float))) {
    fprintf(stderr, "FAIL f32 %s b_kind %d act %d threads %d differs\n",
            kn_op_name(op), b_kind, act, threads);
    failures++;
  }
  kn_threadpool_destroy(pool);
  free(want);
  kn_graph_free(g);
}

int main(void) {
  static const int f32_acts[] = {KN_ACT_NONE, KN_ACT_RELU, KN_ACT_RELU6,
                                 KN_ACT_CLIP};
  for (int rep = 0; rep < 20; rep++)
    for (int k = 0; k < 3; k++)
      for (int ai = 0; ai < 4; ai++) {
        check_f32(KN_OP_ADD, k, f32_acts[ai], 1 + rep % 2);
        check_f32(KN_OP_MUL, k, f32_acts[ai], 1 + rep % 2);
      }
  for (int i = 0; i < 40; i++) {
    check_maxpool(KESTREL_DTYPE_F32);
    check_maxpool(KESTREL_DTYPE_I8);
  }
  for (int i = 0; i < 20; i++) {
    check_global_pool(KESTREL_DTYPE_F32);
    check_global_pool(KESTREL_DTYPE_I8);
  }
  check_quant(1);
  check_quant(2);
  static const kn_op unary[] = {KN_OP_RELU, KN_OP_SIGMOID, KN_OP_HARDSWISH,
                                KN_OP_HARDSIGMOID, KN_OP_TANH,
                                KN_OP_LEAKY_RELU};
  for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++)
    for (int threads = 1; threads <= 2; threads++)
      check_unary(unary[i], 5000 + irange(0, 20000), threads);
  static const int acts[] = {KN_ACT_NONE, KN_ACT_RELU, KN_ACT_RELU6,
                             KN_ACT_CLIP};
  for (int rep = 0; rep < 30; rep++)
    for (int k = 0; k < 5; k++)
      for (int ai = 0; ai < 4; ai++) {
        check(KN_OP_ADD, k, acts[ai], 1 + rep % 2);
        check(KN_OP_MUL, k, acts[ai], 1 + rep % 2);
      }
  if (failures) {
    fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  printf("int8 add/mul fast path matches the reference (isa %s)\n",
         kn_isa_name(kn_kernels_get()->isa));
  return 0;
}
