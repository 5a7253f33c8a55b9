/* fuse_int8_residual_add on a small hand-built int8 NHWC graph: the same
 * graph packed (pack_weights) with and without the pass must give the same
 * output bytes, with 1 and 2 threads, under the ISA that KESTREL_ISA picks
 * (meson runs it for ref and avx2). Shapes are odd (batch 2, 7x13 pixels,
 * 13 channels) so no row, tile or vector width divides them; scales are
 * chosen so that many results saturate. Also checks what is fused and what
 * must not be: an Add after a conv that has its own activation, an Add
 * whose conv output has a second reader, an Add with a non-clamp
 * activation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ops/ops_common.h"
#include "passes/passes.h"
#include "threadpool.h"

static int failures;
static uint32_t rng_state;

static uint32_t rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return rng_state >> 8;
}
static int irange(int lo, int hi) {
  return lo + (int)(rnd() % (uint32_t)(hi - lo + 1));
}

#define N 2
#define H 7
#define W 13
#define C 13

static const int64_t img[4] = {N, H, W, C};

/* An int8 activation tensor with per-tensor parameters (no data). */
static int q_act(kn_graph *g, const char *name, float scale, int32_t zero) {
  int t = kn_graph_add_tensor(g, name);
  kn_tensor_set_quant(&g->tensors[t], -1, 1, &scale, &zero);
  g->tensors[t].dtype = KESTREL_DTYPE_I8;
  return t;
}

/* Conv C->C, k x k, "same" padding (group C: depthwise), int8 weights
 * per channel without -128 (pack_weights takes those), int32 bias. */
static int conv(kn_graph *g, const char *name, int x, int k, bool dw,
                int act, float out_scale, int32_t out_zero) {
  char buf[64];
  int64_t wd[4] = {C, dw ? 1 : C, k, k}, bd[1] = {C};
  snprintf(buf, sizeof buf, "%s.w", name);
  int w = kn_graph_add_tensor(g, buf);
  int8_t *wp = kn_tensor_alloc_data(&g->tensors[w], KESTREL_DTYPE_I8, 4, wd);
  for (int64_t i = 0; i < kn_numel(4, wd); i++)
    wp[i] = (int8_t)irange(-127, 127);
  float ws[C];
  int32_t wz[C] = {0};
  for (int i = 0; i < C; i++)
    ws[i] = 0.002f + 0.0005f * (float)irange(0, 8);
  kn_tensor_set_quant(&g->tensors[w], 0, C, ws, wz);
  snprintf(buf, sizeof buf, "%s.b", name);
  int b = kn_graph_add_tensor(g, buf);
  int32_t *bp = kn_tensor_alloc_data(&g->tensors[b], KESTREL_DTYPE_I32, 1, bd);
  for (int i = 0; i < C; i++)
    bp[i] = irange(-2000, 2000);
  snprintf(buf, sizeof buf, "%s.y", name);
  int y = q_act(g, buf, out_scale, out_zero);
  int in[3] = {x, w, b};
  int ni = kn_graph_add_node(g, KN_OP_CONV, name, NULL, in, 3, &y, 1);
  kn_node *n = &g->nodes[ni];
  int64_t ks[2] = {k, k}, pads[4] = {k / 2, k / 2, k / 2, k / 2};
  kn_node_set_ints(n, "kernel_shape", ks, 2);
  kn_node_set_ints(n, "pads", pads, 4);
  kn_node_set_int(n, "group", dw ? C : 1);
  kn_node_set_int(n, "layout", KN_LAYOUT_NHWC);
  if (act != KN_ACT_NONE)
    kn_node_set_int(n, "activation", act);
  return y;
}

static int add(kn_graph *g, const char *name, int a, int b, int act,
               float scale, int32_t zero) {
  int y = q_act(g, name, scale, zero);
  int in[2] = {a, b};
  int ni = kn_graph_add_node(g, KN_OP_ADD, name, NULL, in, 2, &y, 1);
  kn_node *n = &g->nodes[ni];
  if (act != KN_ACT_NONE)
    kn_node_set_int(n, "activation", act);
  if (act == KN_ACT_CLIP) {
    kn_node_set_float(n, "activation_min", -0.4f);
    kn_node_set_float(n, "activation_max", 0.9f);
  }
  if (act == KN_ACT_LEAKY_RELU)
    kn_node_set_float(n, "activation_alpha", 0.1f);
  return y;
}

/* x -> c1 (3x3) ----------------> + relu (c1 output second) -> a1
 * a1 -> c2 (dw 3x3) ------------> + clip(-0.4, 0.9) with a1  -> a2
 * a2 -> c3 (1x1) ---------------> + none with a1 (side 0)    -> a3
 * a3 -> c4 (1x1, relu6) --------> + relu6 with a3  (stays: conv act)
 * a4 -> c5 (3x3) -> t5, read by + relu with a4 and by c6 (stays)
 * t5 -> c6 (dw 3x3) ------------> + leaky relu (stays: not a clamp)
 * the last two Adds -> + relu6 (no conv operand: stays) -> out */
static void build(kn_graph *g) {
  int x = kn_graph_add_tensor(g, "x");
  kn_tensor *xt = &g->tensors[x];
  int8_t *xp = kn_tensor_alloc_data(xt, KESTREL_DTYPE_I8, 4, img);
  for (int64_t i = 0; i < kn_numel(4, img); i++)
    xp[i] = (int8_t)irange(-128, 127);
  float xs = 0.05f;
  int32_t xz = -7;
  kn_tensor_set_quant(xt, -1, 1, &xs, &xz);
  xt->kind = KN_TENSOR_INPUT;
  kn_graph_add_input(g, x);
  int t1 = conv(g, "c1", x, 3, false, KN_ACT_NONE, 0.08f, 5);
  int a1 = add(g, "add1", x, t1, KN_ACT_RELU, 0.06f, -100);
  int t2 = conv(g, "c2", a1, 3, true, KN_ACT_NONE, 0.03f, -3);
  int a2 = add(g, "add2", t2, a1, KN_ACT_CLIP, 0.007f, 12);
  int t3 = conv(g, "c3", a2, 1, false, KN_ACT_NONE, 0.05f, 0);
  int a3 = add(g, "add3", t3, a1, KN_ACT_NONE, 0.04f, 30);
  int t4 = conv(g, "c4", a3, 1, false, KN_ACT_RELU6, 0.03f, -128);
  int a4 = add(g, "add4", t4, a3, KN_ACT_RELU6, 0.05f, -128);
  int t5 = conv(g, "c5", a4, 3, false, KN_ACT_NONE, 0.05f, 2);
  int a5 = add(g, "add5", t5, a4, KN_ACT_RELU, 0.05f, -20);
  int t6 = conv(g, "c6", t5, 3, true, KN_ACT_NONE, 0.05f, 1);
  int a6 = add(g, "add6", t6, a3, KN_ACT_LEAKY_RELU, 0.05f, 0);
  int out = add(g, "add7", a5, a6, KN_ACT_RELU6, 0.05f, -100);
  kn_graph_add_output(g, out);
}

static int count_op(const kn_graph *g, kn_op op) {
  int c = 0;
  for (int i = 0; i < g->num_nodes; i++)
    c += !g->nodes[i].dead && g->nodes[i].op == op;
  return c;
}

/* Runs the prepared graph in schedule order; returns the output bytes. */
static int8_t *run(kn_graph *g, int threads, size_t *count) {
  kn_threadpool *pool = kn_threadpool_create(threads);
  int nt = kn_threadpool_threads(pool);
  kestrel_error err;
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    const kn_op_info *op = kn_op_get(n->op);
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
    kestrel_status st = op->run(&x, n, &err);
    free(scratch);
    if (st != KESTREL_OK) {
      fprintf(stderr, "FAIL run %s: %s\n", n->name, err.message);
      failures++;
      kn_threadpool_destroy(pool);
      return NULL;
    }
  }
  kn_threadpool_destroy(pool);
  kn_tensor *y = &g->tensors[g->outputs[0]];
  *count = (size_t)kn_tensor_numel(y);
  int8_t *out = malloc(*count + 1);
  memcpy(out, y->data, *count);
  return out;
}

/* Builds, packs, optionally fuses, re-validates. */
static kn_graph *make(uint32_t seed, bool fuse, int *fused) {
  kestrel_error err;
  kn_graph *g = kn_graph_new();
  rng_state = seed;
  build(g);
  int packed = 0;
  *fused = 0;
  if (kn_graph_prepare(g, NULL, &err) != KESTREL_OK ||
      kn_pass_pack_weights(g, &packed, &err) != KESTREL_OK ||
      (fuse && kn_pass_fuse_int8_residual_add(g, fused, &err) != KESTREL_OK) ||
      kn_edit_compact(g, &err) != KESTREL_OK ||
      kn_edit_revalidate(g, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL seed %u fuse %d: %s\n", seed, fuse, err.message);
    failures++;
    kn_graph_free(g);
    return NULL;
  }
  if (packed != 6) {
    fprintf(stderr, "FAIL seed %u: pack_weights packed %d convs, want 6\n",
            seed, packed);
    failures++;
  }
  return g;
}

int main(void) {
  long saturated = 0, total = 0;
  for (uint32_t seed = 1; seed <= 6; seed++) {
    int fused_a, fused_b;
    kn_graph *a = make(seed, false, &fused_a), *b = make(seed, true, &fused_b);
    if (!a || !b) {
      kn_graph_free(a);
      kn_graph_free(b);
      continue;
    }
    if (fused_b != 3 || count_op(b, KN_OP_ADD) != 4) {
      fprintf(stderr, "FAIL seed %u: %d Adds fused, %d left; want 3 and 4\n",
              seed, fused_b, count_op(b, KN_OP_ADD));
      failures++;
    }
    int residual = 0;
    for (int i = 0; i < b->num_nodes; i++)
      residual += b->nodes[i].op == KN_OP_CONV &&
                  kn_attr_int(&b->nodes[i], "residual", 0) &&
                  kn_node_attr(&b->nodes[i], "sum_scale");
    if (residual != 3) {
      fprintf(stderr, "FAIL seed %u: %d convs with an int8 residual\n", seed,
              residual);
      failures++;
    }
    for (int threads = 1; threads <= 2; threads++) {
      size_t na = 0, nb = 0;
      int8_t *ya = run(a, threads, &na), *yb = run(b, threads, &nb);
      if (ya && yb && na == nb) {
        for (size_t i = 0; i < na; i++) {
          if (ya[i] != yb[i]) {
            fprintf(stderr,
                    "FAIL seed %u threads %d isa %s [%d,%d,%d,%d]: element "
                    "%zu fused %d, unfused %d\n",
                    seed, threads, kn_isa_name(kn_kernels_get()->isa), N, H,
                    W, C, i, yb[i], ya[i]);
            failures++;
            break;
          }
        }
      } else if (ya && yb) {
        fprintf(stderr, "FAIL seed %u: %zu vs %zu outputs\n", seed, na, nb);
        failures++;
      }
      free(ya);
      free(yb);
      /* How much of the fused epilogues' output saturates. */
      for (int i = 0; i < b->num_nodes; i++) {
        if (!kn_attr_int(&b->nodes[i], "residual", 0))
          continue;
        const kn_tensor *t = kn_out(b, &b->nodes[i], 0);
        const int8_t *v = t->data;
        for (int64_t k = 0; k < kn_tensor_numel(t); k++)
          saturated += v[k] == -128 || v[k] == 127;
        total += kn_tensor_numel(t);
      }
    }
    kn_graph_free(a);
    kn_graph_free(b);
  }
  if (failures) {
    fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  printf("fuse_int8_residual_add: fused == unfused bytes (isa %s, %ld of %ld "
         "fused outputs saturated)\n",
         kn_isa_name(kn_kernels_get()->isa), saturated, total);
  return 0;
}
