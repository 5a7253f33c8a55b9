/* Graph passes, each on a small graph built by hand: the graph is built
 * twice from the same seed, the first copy runs as built, the second runs
 * after the pass (plus compaction and re-validation) inside one arena laid
 * out by kn_plan_memory, and the outputs must agree on random inputs. Each
 * case also checks that the pass did rewrite what it should (op counts). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

static int failures;
static uint32_t rng_state;

static float rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)(rng_state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

/* ---- building ----------------------------------------------------------- */

static int act(kn_graph *g, const char *name) { return kn_graph_add_tensor(g, name); }

static int input(kn_graph *g, const char *name, int ndim, const int64_t *dims) {
  int t = kn_graph_add_tensor(g, name);
  kn_set_shape(&g->tensors[t], KESTREL_DTYPE_F32, ndim, dims);
  g->tensors[t].kind = KN_TENSOR_INPUT;
  kn_graph_add_input(g, t);
  return t;
}

/* Constant with random values in [lo, hi]. */
static int cst(kn_graph *g, const char *name, int ndim, const int64_t *dims,
               float lo, float hi) {
  int t = kn_graph_add_tensor(g, name);
  float *p = kn_tensor_alloc_data(&g->tensors[t], KESTREL_DTYPE_F32, ndim, dims);
  int64_t n = kn_numel(ndim, dims);
  for (int64_t i = 0; i < n; i++)
    p[i] = lo + (rnd() * 0.5f + 0.5f) * (hi - lo);
  return t;
}

static int scalar(kn_graph *g, const char *name, float v) {
  int t = kn_graph_add_tensor(g, name);
  int64_t one = 1;
  float *p = kn_tensor_alloc_data(&g->tensors[t], KESTREL_DTYPE_F32, 0, &one);
  p[0] = v;
  return t;
}

static int ints(kn_graph *g, const char *name, int count, const int64_t *v) {
  int t = kn_graph_add_tensor(g, name);
  int64_t d = count;
  int64_t *p = kn_tensor_alloc_data(&g->tensors[t], KESTREL_DTYPE_I64, 1, &d);
  memcpy(p, v, sizeof(int64_t) * (size_t)count);
  return t;
}

static kn_node *node(kn_graph *g, kn_op op, const char *name, int nin,
                     const int *in, int out) {
  int ni = kn_graph_add_node(g, op, name, NULL, in, nin, &out, 1);
  return &g->nodes[ni];
}

static void conv_attrs(kn_node *n, int k, int pad, int group) {
  int64_t ks[2] = {k, k}, pads[4] = {pad, pad, pad, pad};
  kn_node_set_ints(n, "kernel_shape", ks, 2);
  kn_node_set_ints(n, "pads", pads, 4);
  kn_node_set_int(n, "group", group);
}

/* Conv C->M, k x k, "same" padding, on x; returns its output. */
static int conv(kn_graph *g, const char *name, int x, int64_t c, int64_t m,
                int k) {
  char buf[64];
  int64_t wd[4] = {m, c, k, k}, bd[1] = {m};
  snprintf(buf, sizeof(buf), "%s.w", name);
  int w = cst(g, buf, 4, wd, -0.5f, 0.5f);
  snprintf(buf, sizeof(buf), "%s.b", name);
  int b = cst(g, buf, 1, bd, -0.2f, 0.2f);
  snprintf(buf, sizeof(buf), "%s.y", name);
  int y = act(g, buf);
  int in[3] = {x, w, b};
  conv_attrs(node(g, KN_OP_CONV, name, 3, in, y), k, k / 2, 1);
  return y;
}

/* ---- running ------------------------------------------------------------ */

typedef struct run_result {
  float *data;
  int64_t count;
} run_result;

/* Runs every live node; activations get their own buffers, or (planned)
 * one arena laid out by kn_plan_memory. Input values from the seed. */
static int run_graph(kn_graph *g, bool planned, uint32_t seed,
                     run_result *out) {
  kestrel_error err;
  void **bufs = calloc((size_t)g->num_tensors + 1, sizeof(void *));
  uint8_t *arena = NULL;
  kn_memory_plan plan;
  if (planned) {
    if (kn_plan_memory(g, &plan, &err) != KESTREL_OK) {
      fprintf(stderr, "plan: %s\n", err.message);
      return -1;
    }
    if (plan.arena_bytes < plan.lower_bound && !plan.aliased) {
      fprintf(stderr, "arena %zu below its lower bound %zu\n",
              plan.arena_bytes, plan.lower_bound);
      failures++;
    }
    arena = aligned_alloc(64, plan.arena_bytes + 64);
    memset(arena, 0xcd, plan.arena_bytes + 64); /* garbage, not zeros */
  }
  size_t scratch_bytes = 0;
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_op_info *op = kn_op_get(g->nodes[i].op);
    if (!g->nodes[i].dead && op && op->scratch) {
      size_t s = op->scratch(g, &g->nodes[i]);
      if (s > scratch_bytes)
        scratch_bytes = s;
    }
  }
  void *scratch = scratch_bytes ? calloc(1, scratch_bytes) : NULL;
  for (int t = 0; t < g->num_tensors; t++) {
    kn_tensor *x = &g->tensors[t];
    if (x->kind == KN_TENSOR_CONSTANT || x->ndim < 0)
      continue;
    if (planned) {
      x->data = arena + (x->arena_offset >= 0 ? x->arena_offset : 0);
    } else {
      bufs[t] = calloc(1, kn_tensor_bytes(x) + 64);
      x->data = bufs[t];
    }
    x->data_owned = false;
  }
  uint32_t s = seed;
  for (int i = 0; i < g->num_inputs; i++) {
    kn_tensor *x = &g->tensors[g->inputs[i]];
    rng_state = s + (uint32_t)i;
    for (int64_t k = 0; k < kn_tensor_numel(x); k++)
      ((float *)x->data)[k] = rnd() * 4.0f;
  }
  int rc = 0;
  kn_exec ex;
  memset(&ex, 0, sizeof(ex));
  ex.graph = g;
  ex.scratch = scratch;
  ex.scratch_bytes = scratch_bytes;
  ex.num_threads = 1;
  for (int i = 0; i < g->num_nodes && !rc; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    if (kn_op_get(n->op)->run(&ex, n, &err) != KESTREL_OK) {
      fprintf(stderr, "run: %s\n", err.message);
      rc = -1;
    }
  }
  kn_tensor *y = &g->tensors[g->outputs[0]];
  out->count = kn_tensor_numel(y);
  out->data = malloc(sizeof(float) * (size_t)out->count + 1);
  memcpy(out->data, y->data, sizeof(float) * (size_t)out->count);
  for (int t = 0; t < g->num_tensors; t++) {
    if (g->tensors[t].kind != KN_TENSOR_CONSTANT)
      g->tensors[t].data = NULL;
    free(bufs[t]);
  }
  free(bufs);
  free(arena);
  free(scratch);
  return rc;
}

static int count_op(const kn_graph *g, kn_op op) {
  int c = 0;
  for (int i = 0; i < g->num_nodes; i++)
    c += !g->nodes[i].dead && g->nodes[i].op == op;
  return c;
}

typedef void (*build_fn)(kn_graph *g);
typedef kestrel_status (*pass_fn)(kn_graph *g, int *changed,
                                  kestrel_error *err);

/* Builds twice, runs the pass list on the second copy, compares. Returns
 * the optimized graph for structural checks (caller frees). */
static kn_graph *check_case(const char *name, build_fn build,
                            const pass_fn *passes, int npasses,
                            int want_changes) {
  kestrel_error err;
  kn_graph *a = kn_graph_new(), *b = kn_graph_new();
  rng_state = 7;
  build(a);
  rng_state = 7;
  build(b);
  if (kn_graph_prepare(a, NULL, &err) != KESTREL_OK ||
      kn_graph_prepare(b, NULL, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: prepare: %s\n", name, err.message);
    failures++;
    kn_graph_free(a);
    return b;
  }
  int changed = 0;
  for (int p = 0; p < npasses; p++) {
    if (passes[p](b, &changed, &err) != KESTREL_OK) {
      fprintf(stderr, "FAIL %s: pass: %s\n", name, err.message);
      failures++;
    }
  }
  if (kn_edit_compact(b, &err) != KESTREL_OK ||
      kn_edit_revalidate(b, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: graph invalid after the pass: %s\n", name,
            err.message);
    failures++;
  }
  if (changed < want_changes) {
    fprintf(stderr, "FAIL %s: %d changes, want %d\n", name, changed,
            want_changes);
    failures++;
  }
  for (uint32_t seed = 1; seed <= 3; seed++) {
    run_result ra, rb;
    if (run_graph(a, false, seed, &ra) || run_graph(b, true, seed, &rb)) {
      fprintf(stderr, "FAIL %s: run\n", name);
      failures++;
      break;
    }
    double worst = 0.0, scale = 1e-6;
    for (int64_t i = 0; i < ra.count && ra.count == rb.count; i++) {
      double d = fabs((double)ra.data[i] - rb.data[i]);
      if (!(d <= worst))
        worst = d;
      if (fabs(ra.data[i]) > scale)
        scale = fabs(ra.data[i]);
    }
    if (ra.count != rb.count || !(worst <= 1e-5 * scale + 1e-6)) {
      fprintf(stderr, "FAIL %s (seed %u): max abs diff %g (scale %g), %lld vs "
              "%lld outputs\n", name, seed, worst, scale,
              (long long)ra.count, (long long)rb.count);
      failures++;
    }
    free(ra.data);
    free(rb.data);
  }
  printf("%-28s %d changes, %d nodes\n", name, changed, b->num_nodes);
  kn_graph_free(a);
  return b;
}

#define EXPECT(cond, ...)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* ---- cases ---------------------------------------------------------------- */

static const int64_t img[4] = {1, 3, 9, 11};

static void build_identity(kn_graph *g) {
  int x = input(g, "x", 4, img);
  int a = act(g, "a"), b = act(g, "b"), c = act(g, "c"), d = act(g, "d");
  node(g, KN_OP_IDENTITY, "id", 1, &x, a);
  node(g, KN_OP_RELU, "relu", 1, &a, b);
  node(g, KN_OP_DROPOUT, "drop", 1, &b, c);
  int64_t same[4] = {1, 3, 9, 11};
  int in[2] = {c, ints(g, "shape", 4, same)};
  node(g, KN_OP_RESHAPE, "noop_reshape", 2, in, d);
  kn_graph_add_output(g, d);
}

static void build_conv_bn(kn_graph *g) {
  int x = input(g, "x", 4, img);
  int y = conv(g, "conv", x, 3, 5, 3);
  int64_t c5[1] = {5};
  int in[5] = {y, cst(g, "gamma", 1, c5, 0.5f, 2.0f),
               cst(g, "beta", 1, c5, -1.0f, 1.0f),
               cst(g, "mean", 1, c5, -1.0f, 1.0f),
               cst(g, "var", 1, c5, 0.1f, 2.0f)};
  int z = act(g, "z");
  kn_node_set_float(node(g, KN_OP_BATCHNORM, "bn", 5, in, z), "epsilon", 1e-3f);
  /* ConvTranspose (grouped) + BN too. */
  int64_t wd[4] = {5, 2, 3, 3}, c4[1] = {4};
  int tin[2] = {z, cst(g, "wt", 4, wd, -0.5f, 0.5f)};
  int t = act(g, "t");
  kn_node *ct = node(g, KN_OP_CONV_TRANSPOSE, "convt", 2, tin, t);
  int64_t ks[2] = {3, 3}, st[2] = {2, 2};
  kn_node_set_ints(ct, "kernel_shape", ks, 2);
  kn_node_set_ints(ct, "strides", st, 2);
  (void)c4;
  int64_t c2[1] = {2};
  int bin[5] = {t, cst(g, "g2", 1, c2, 0.5f, 2.0f), cst(g, "b2", 1, c2, -1, 1),
                cst(g, "m2", 1, c2, -1, 1), cst(g, "v2", 1, c2, 0.1f, 2.0f)};
  int u = act(g, "u");
  node(g, KN_OP_BATCHNORM, "bn2", 5, bin, u);
  kn_graph_add_output(g, u);
}

static void build_gemm_bn(kn_graph *g) {
  int64_t xd[2] = {3, 6}, wd[2] = {4, 6}, c4[1] = {4};
  int x = input(g, "x", 2, xd);
  int in[3] = {x, cst(g, "w", 2, wd, -1, 1), cst(g, "c", 1, c4, -1, 1)};
  int y = act(g, "y");
  kn_node *gm = node(g, KN_OP_GEMM, "gemm", 3, in, y);
  kn_node_set_int(gm, "transB", 1);
  kn_node_set_float(gm, "alpha", 0.7f);
  kn_node_set_float(gm, "beta", 1.3f);
  int bin[5] = {y, cst(g, "g", 1, c4, 0.5f, 2), cst(g, "b", 1, c4, -1, 1),
                cst(g, "m", 1, c4, -1, 1), cst(g, "v", 1, c4, 0.1f, 2)};
  int z = act(g, "z");
  node(g, KN_OP_BATCHNORM, "bn", 5, bin, z);
  kn_graph_add_output(g, z);
}

static void build_conv_mul_add(kn_graph *g) {
  int x = input(g, "x", 4, img);
  int y = conv(g, "conv", x, 3, 4, 3);
  int64_t cd[3] = {4, 1, 1}, ad[4] = {1, 4, 1, 1};
  int m = act(g, "m"), a = act(g, "a"), s = act(g, "s"), d = act(g, "d");
  int min[2] = {cst(g, "mc", 3, cd, 0.5f, 2), y};
  node(g, KN_OP_MUL, "mul", 2, min, m);
  int ain[2] = {m, cst(g, "ac", 4, ad, -1, 1)};
  node(g, KN_OP_ADD, "add", 2, ain, a);
  int sin[2] = {scalar(g, "sc", 0.25f), a};
  node(g, KN_OP_SUB, "sub", 2, sin, s);
  int din[2] = {s, scalar(g, "dc", 4.0f)};
  node(g, KN_OP_DIV, "div", 2, din, d);
  kn_graph_add_output(g, d);
}

/* x * relu6(x + 3) / 6 (Div last) and x * HardSigmoid(x). */
static void build_hardswish(kn_graph *g) {
  int x = input(g, "x", 4, img);
  int a = act(g, "a"), c = act(g, "c"), m = act(g, "m"), y = act(g, "y");
  int ain[2] = {x, scalar(g, "three", 3.0f)};
  node(g, KN_OP_ADD, "add3", 2, ain, a);
  int cin[3] = {a, scalar(g, "zero", 0.0f), scalar(g, "six", 6.0f)};
  node(g, KN_OP_CLIP, "clip", 3, cin, c);
  int min[2] = {x, c};
  node(g, KN_OP_MUL, "mul", 2, min, m);
  int din[2] = {m, scalar(g, "six2", 6.0f)};
  node(g, KN_OP_DIV, "div", 2, din, y);
  int h = act(g, "h"), z = act(g, "z");
  kn_node *hs = node(g, KN_OP_HARDSIGMOID, "hsig", 1, &y, h);
  kn_node_set_float(hs, "alpha", 1.0f / 6.0f);
  kn_node_set_float(hs, "beta", 0.5f);
  int zin[2] = {h, y};
  node(g, KN_OP_MUL, "mul2", 2, zin, z);
  kn_graph_add_output(g, z);
}

static void build_activations(kn_graph *g) {
  int x = input(g, "x", 4, img);
  int y1 = conv(g, "c1", x, 3, 4, 3), r1 = act(g, "r1");
  node(g, KN_OP_RELU, "relu", 1, &y1, r1);
  int y2 = conv(g, "c2", r1, 4, 4, 1), r2 = act(g, "r2");
  int cin[3] = {y2, scalar(g, "lo", 0.0f), scalar(g, "hi", 6.0f)};
  node(g, KN_OP_CLIP, "relu6", 3, cin, r2);
  int y3 = conv(g, "c3", r2, 4, 4, 3), r3 = act(g, "r3");
  kn_node_set_float(node(g, KN_OP_LEAKY_RELU, "leaky", 1, &y3, r3), "alpha",
                    0.1f);
  int y4 = conv(g, "c4", r3, 4, 4, 1), r4 = act(g, "r4");
  kn_node *hs = node(g, KN_OP_HARDSIGMOID, "hsig", 1, &y4, r4);
  kn_node_set_float(hs, "alpha", 0.3f);
  kn_node_set_float(hs, "beta", 0.4f);
  int a = act(g, "a"), s = act(g, "s");
  int ain[2] = {r4, r3};
  node(g, KN_OP_ADD, "add", 2, ain, a);
  node(g, KN_OP_SIGMOID, "sig", 1, &a, s);
  int y5 = conv(g, "c5", s, 4, 4, 3), r5 = act(g, "r5");
  int c2in[3] = {y5, scalar(g, "lo2", -0.5f), scalar(g, "hi2", 0.5f)};
  node(g, KN_OP_CLIP, "clip", 3, c2in, r5);
  kn_graph_add_output(g, r5);
}

static void build_pad(kn_graph *g) {
  int x = input(g, "x", 4, img);
  int p = act(g, "p"), y = act(g, "y");
  int64_t pads[8] = {0, 0, 1, 2, 0, 0, 2, 1};
  int pin[2] = {x, ints(g, "pads", 8, pads)};
  node(g, KN_OP_PAD, "pad", 2, pin, p);
  int64_t wd[4] = {4, 3, 3, 3};
  int cin[2] = {p, cst(g, "w", 4, wd, -1, 1)};
  conv_attrs(node(g, KN_OP_CONV, "conv", 2, cin, y), 3, 0, 1);
  /* -inf pad into MaxPool, zero pad into AveragePool. */
  int q = act(g, "q"), mp = act(g, "mp"), r = act(g, "r"), ap = act(g, "ap");
  int64_t pads2[8] = {0, 0, 1, 1, 0, 0, 1, 1};
  int qin[3] = {y, ints(g, "pads2", 8, pads2), scalar(g, "ninf", -INFINITY)};
  node(g, KN_OP_PAD, "pad_inf", 3, qin, q);
  kn_node *mpn = node(g, KN_OP_MAXPOOL, "maxpool", 1, &q, mp);
  int64_t ks[2] = {3, 3}, st[2] = {2, 2};
  kn_node_set_ints(mpn, "kernel_shape", ks, 2);
  kn_node_set_ints(mpn, "strides", st, 2);
  int rin[2] = {mp, ints(g, "pads3", 8, pads2)};
  node(g, KN_OP_PAD, "pad0", 2, rin, r);
  kn_node *apn = node(g, KN_OP_AVGPOOL, "avgpool", 1, &r, ap);
  kn_node_set_ints(apn, "kernel_shape", ks, 2);
  kn_graph_add_output(g, ap);
}

static void build_residual(kn_graph *g) {
  int x = input(g, "x", 4, img);
  int s = conv(g, "stem", x, 3, 4, 3);
  int y = conv(g, "body", s, 4, 4, 3);
  int a = act(g, "a"), r = act(g, "r");
  int ain[2] = {s, y}; /* conv output second: either side is found */
  node(g, KN_OP_ADD, "add", 2, ain, a);
  node(g, KN_OP_RELU, "relu", 1, &a, r);
  kn_graph_add_output(g, r);
}

/* NCHW graph with the ops PP-OCR uses: conv, SE block (GAP, conv, hard
 * sigmoid, Mul), Concat on channels, Resize, per-channel constant Mul,
 * Softmax over channels, then GAP + Reshape + MatMul (order-dependent). */
static void build_layout(kn_graph *g) {
  g->opset = 13;
  int x = input(g, "x", 4, img);
  int a = conv(g, "c1", x, 3, 4, 3), r = act(g, "r");
  node(g, KN_OP_RELU, "relu", 1, &a, r);
  int gp = act(g, "gap"), se = act(g, "se"), m = act(g, "m");
  int64_t ks1[2] = {1, 1};
  (void)ks1;
  node(g, KN_OP_GLOBAL_AVGPOOL, "gap", 1, &r, gp);
  int sc = conv(g, "se_conv", gp, 4, 4, 1);
  node(g, KN_OP_HARDSIGMOID, "hsig", 1, &sc, se);
  int min[2] = {r, se};
  node(g, KN_OP_MUL, "se_mul", 2, min, m);
  int b = conv(g, "c2", m, 4, 2, 3);
  int cat = act(g, "cat");
  int catin[2] = {m, b};
  kn_node_set_int(node(g, KN_OP_CONCAT, "concat", 2, catin, cat), "axis", 1);
  int64_t cd[3] = {6, 1, 1};
  int pm = act(g, "pm");
  int pin[2] = {cat, cst(g, "pc", 3, cd, 0.5f, 1.5f)};
  node(g, KN_OP_MUL, "chan_mul", 2, pin, pm);
  int rs = act(g, "resized");
  float scales[4] = {1, 1, 2, 2};
  int st = kn_graph_add_tensor(g, "scales");
  int64_t four = 4;
  memcpy(kn_tensor_alloc_data(&g->tensors[st], KESTREL_DTYPE_F32, 1, &four),
         scales, sizeof(scales));
  int absent = kn_graph_add_tensor(g, "");
  g->tensors[absent].optional_absent = true;
  int rin[3] = {pm, absent, st};
  node(g, KN_OP_RESIZE, "resize", 3, rin, rs);
  int sm = act(g, "sm");
  kn_node_set_int(node(g, KN_OP_SOFTMAX, "softmax", 1, &rs, sm), "axis", 1);
  int gp2 = act(g, "gap2"), fl = act(g, "flat"), out = act(g, "out");
  node(g, KN_OP_GLOBAL_AVGPOOL, "gap2", 1, &sm, gp2);
  int64_t shape[2] = {1, 6};
  int fin[2] = {gp2, ints(g, "shape", 2, shape)};
  node(g, KN_OP_RESHAPE, "flatten", 2, fin, fl);
  int64_t wd[2] = {6, 3};
  int mmin[2] = {fl, cst(g, "fc", 2, wd, -1, 1)};
  node(g, KN_OP_MATMUL, "fc", 2, mmin, out);
  kn_graph_add_output(g, out);
  kn_graph_add_output(g, sm); /* a 4-D NHWC tensor as a graph output */
}

/* PP-OCR det's head: ConvTranspose -> Add(bias) -> BatchNorm -> Relu ->
 * ConvTranspose -> Add(bias) -> Sigmoid. fuse_conv_mul_add folds the bias
 * Adds and then the BatchNorm they exposed; fuse_activation folds Relu and
 * Sigmoid into the ConvTransposes. */
static void build_deconv_head(kn_graph *g) {
  int x = input(g, "x", 4, img);
  int64_t w1d[4] = {3, 4, 2, 2}, w2d[4] = {4, 1, 2, 2}, c4[1] = {4};
  int64_t b1d[4] = {1, 4, 1, 1}, b2d[4] = {1, 1, 1, 1};
  int64_t ks[2] = {2, 2}, st[2] = {2, 2};
  int t1 = act(g, "t1"), a1 = act(g, "a1"), n1 = act(g, "n1"), r1 = act(g, "r1");
  int t2 = act(g, "t2"), a2 = act(g, "a2"), y = act(g, "y");
  int in1[2] = {x, cst(g, "w1", 4, w1d, -0.5f, 0.5f)};
  kn_node *c1 = node(g, KN_OP_CONV_TRANSPOSE, "convt1", 2, in1, t1);
  kn_node_set_ints(c1, "kernel_shape", ks, 2);
  kn_node_set_ints(c1, "strides", st, 2);
  int ain1[2] = {t1, cst(g, "bias1", 4, b1d, -0.3f, 0.3f)};
  node(g, KN_OP_ADD, "add1", 2, ain1, a1);
  int bin[5] = {a1, cst(g, "g", 1, c4, 0.5f, 2.0f), cst(g, "b", 1, c4, -1, 1),
                cst(g, "m", 1, c4, -1, 1), cst(g, "v", 1, c4, 0.1f, 2.0f)};
  node(g, KN_OP_BATCHNORM, "bn", 5, bin, n1);
  node(g, KN_OP_RELU, "relu", 1, &n1, r1);
  int in2[2] = {r1, cst(g, "w2", 4, w2d, -0.5f, 0.5f)};
  kn_node *c2 = node(g, KN_OP_CONV_TRANSPOSE, "convt2", 2, in2, t2);
  kn_node_set_ints(c2, "kernel_shape", ks, 2);
  kn_node_set_ints(c2, "strides", st, 2);
  int ain2[2] = {t2, cst(g, "bias2", 4, b2d, -0.3f, 0.3f)};
  node(g, KN_OP_ADD, "add2", 2, ain2, a2);
  node(g, KN_OP_SIGMOID, "sigmoid", 1, &a2, y);
  kn_graph_add_output(g, y);
}

/* A per-tensor Quantize/DequantizeLinear pair between two convs, with the
 * parameters on the quantized tensor (no scale inputs, as the quantizer
 * writes them): element-wise, so convert_layout_nhwc keeps it NHWC and
 * adds no transposes around it. */
static void build_qdq_layout(kn_graph *g) {
  int x = input(g, "x", 4, img);
  int a = conv(g, "c1", x, 3, 4, 3);
  int q = act(g, "q"), dq = act(g, "dq");
  float scale = 0.05f;
  int32_t zero = 3;
  kn_tensor_set_quant(&g->tensors[q], -1, 1, &scale, &zero);
  g->tensors[q].dtype = KESTREL_DTYPE_I8;
  node(g, KN_OP_QUANTIZE_LINEAR, "quant", 1, &a, q);
  node(g, KN_OP_DEQUANTIZE_LINEAR, "dequant", 1, &q, dq);
  int b = conv(g, "c2", dq, 4, 2, 3);
  kn_graph_add_output(g, b);
}

static kestrel_status pass_all(kn_graph *g, int *changed, kestrel_error *err) {
  kn_optimize_options o = kn_optimize_options_default();
  o.pack_weights = false;
  kestrel_status st = kn_optimize(g, &o, err);
  *changed += st == KESTREL_OK;
  return st;
}

int main(void) {
  kn_graph *g;
  {
    pass_fn p[] = {kn_pass_eliminate_identity};
    g = check_case("eliminate_identity", build_identity, p, 1, 3);
    EXPECT(count_op(g, KN_OP_IDENTITY) + count_op(g, KN_OP_DROPOUT) +
                   count_op(g, KN_OP_RESHAPE) == 0 &&
               count_op(g, KN_OP_RELU) == 1,
           "eliminate_identity left %d nodes", g->num_nodes);
    /* The output keeps its name. */
    EXPECT(!strcmp(g->tensors[g->outputs[0]].name, "d"), "output renamed");
    kn_graph_free(g);
  }
  {
    pass_fn p[] = {kn_pass_fuse_conv_batchnorm};
    g = check_case("fuse_conv_batchnorm", build_conv_bn, p, 1, 2);
    EXPECT(count_op(g, KN_OP_BATCHNORM) == 0, "BatchNorm left");
    kn_graph_free(g);
    g = check_case("fuse_conv_batchnorm(gemm)", build_gemm_bn, p, 1, 1);
    EXPECT(count_op(g, KN_OP_BATCHNORM) == 0, "BatchNorm left after Gemm");
    kn_graph_free(g);
  }
  {
    pass_fn p[] = {kn_pass_fuse_conv_mul_add};
    g = check_case("fuse_conv_mul_add", build_conv_mul_add, p, 1, 4);
    EXPECT(g->num_nodes == 1, "%d nodes left", g->num_nodes);
    kn_graph_free(g);
  }
  {
    pass_fn p[] = {kn_pass_recognize_hardswish};
    g = check_case("recognize_hardswish", build_hardswish, p, 1, 2);
    EXPECT(count_op(g, KN_OP_HARDSWISH) == 2 && g->num_nodes == 2,
           "%d HardSwish in %d nodes", count_op(g, KN_OP_HARDSWISH),
           g->num_nodes);
    kn_graph_free(g);
  }
  {
    pass_fn p[] = {kn_pass_fuse_activation};
    g = check_case("fuse_activation", build_activations, p, 1, 6);
    EXPECT(g->num_nodes == 6, "%d nodes left", g->num_nodes);
    kn_graph_free(g);
  }
  {
    pass_fn p[] = {kn_pass_fold_pad_into_conv};
    g = check_case("fold_pad_into_conv", build_pad, p, 1, 3);
    EXPECT(count_op(g, KN_OP_PAD) == 0, "%d Pad left", count_op(g, KN_OP_PAD));
    kn_graph_free(g);
  }
  {
    pass_fn p[] = {kn_pass_fuse_activation, kn_pass_fuse_residual_add};
    g = check_case("fuse_residual_add", build_residual, p, 2, 2);
    EXPECT(count_op(g, KN_OP_ADD) == 0 && count_op(g, KN_OP_RELU) == 0,
           "Add/Relu left");
    kn_graph_free(g);
  }
  {
    pass_fn p[] = {kn_pass_convert_layout_nhwc};
    g = check_case("convert_layout_nhwc", build_layout, p, 1, 5);
    /* One transpose at the input, one for the 4-D output; the Reshape in
     * front of MatMul reads a 1x1 map, which needs none. */
    EXPECT(count_op(g, KN_OP_TRANSPOSE) == 2, "%d transposes",
           count_op(g, KN_OP_TRANSPOSE));
    int nhwc = 0;
    for (int i = 0; i < g->num_nodes; i++)
      nhwc += kn_attr_int(&g->nodes[i], "layout", 0) == KN_LAYOUT_NHWC;
    EXPECT(nhwc == 5, "%d NHWC spatial nodes", nhwc);
    kn_graph_free(g);
  }
  {
    pass_fn p[] = {kn_pass_fuse_conv_mul_add, kn_pass_fuse_activation};
    g = check_case("deconv head", build_deconv_head, p, 2, 5);
    EXPECT(g->num_nodes == 2 && count_op(g, KN_OP_CONV_TRANSPOSE) == 2,
           "%d nodes left", g->num_nodes);
    kn_graph_free(g);
  }
  {
    pass_fn p[] = {kn_pass_convert_layout_nhwc};
    g = check_case("convert_layout_nhwc (q/dq)", build_qdq_layout, p, 1, 4);
    EXPECT(count_op(g, KN_OP_TRANSPOSE) == 2, "%d transposes",
           count_op(g, KN_OP_TRANSPOSE));
    kn_graph_free(g);
  }
  {
    /* Everything together, on every graph above. */
    pass_fn p[] = {pass_all};
    build_fn builds[] = {build_identity, build_conv_bn, build_gemm_bn,
                         build_conv_mul_add, build_hardswish,
                         build_activations, build_pad, build_residual,
                         build_layout, build_deconv_head, build_qdq_layout};
    for (size_t i = 0; i < sizeof(builds) / sizeof(builds[0]); i++) {
      char name[32];
      snprintf(name, sizeof(name), "optimize #%zu", i);
      kn_graph_free(check_case(name, builds[i], p, 1, 1));
    }
  }
  {
    /* plan_memory: a chain of element-wise ops runs in place. */
    kn_graph *c = kn_graph_new();
    rng_state = 3;
    build_identity(c);
    kestrel_error err;
    kn_memory_plan plan;
    EXPECT(kn_graph_prepare(c, NULL, &err) == KESTREL_OK, "prepare");
    EXPECT(kn_plan_memory(c, &plan, &err) == KESTREL_OK, "plan");
    printf("plan_memory: arena %zu, lower bound %zu, %d in place\n",
           plan.arena_bytes, plan.lower_bound, plan.aliased);
    /* x (input, kept) + one buffer shared by the rest. */
    EXPECT(plan.aliased >= 3, "only %d aliases", plan.aliased);
    EXPECT(plan.arena_bytes <= 2 * 1216, "arena %zu", plan.arena_bytes);
    kn_graph_free(c);
  }
  if (failures)
    fprintf(stderr, "%d failures\n", failures);
  return failures ? 1 : 0;
}
