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
    int64_t r = kn_round_even(x[i] / scale) + zero;
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

int main(void) {
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
