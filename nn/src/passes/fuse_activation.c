/* recognize_hardswish (x*relu6(x+3)/6 and x*HardSigmoid(x) spelled out in
 * ONNX exports become one HardSwish) and fuse_activation (an activation
 * node becomes the "activation" epilogue of the Conv/Gemm/Add feeding it,
 * so the output is written once instead of twice). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"

static int producer(const kn_graph *g, int t) {
  if (t < 0)
    return -1;
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_outputs; k++)
      if (n->outputs[k] == t)
        return i;
  }
  return -1;
}

/* t is read only by node `consumer` and is not a graph output. */
static bool private_edge(const kn_graph *g, int t, int consumer) {
  return t >= 0 && !kn_edit_is_graph_output(g, t) &&
         kn_edit_single_consumer(g, t) == consumer;
}

static bool near(float a, float b) { return fabsf(a - b) <= 1e-6f * fabsf(b); }

/* Constant operand of a binary node equal to `want`; sets *other to the
 * index of the other operand's slot. */
static bool binary_with_const(kn_graph *g, const kn_node *n, kn_op op,
                              float want, int *other_slot) {
  if (n->op != op || n->num_inputs != 2 ||
      kn_attr_int(n, "activation", KN_ACT_NONE) != KN_ACT_NONE)
    return false;
  for (int s = 0; s < 2; s++) {
    /* Div is not commutative: the constant must be the divisor. */
    if (op == KN_OP_DIV && s == 0)
      continue;
    float v;
    if (kn_edit_const_scalar(kn_in(g, n, s), &v) && near(v, want)) {
      *other_slot = 1 - s;
      return true;
    }
  }
  return false;
}

/* Clip bounds from inputs (opset 11+) or attributes. */
static bool clip_bounds(kn_graph *g, const kn_node *n, float *lo, float *hi) {
  *lo = kn_attr_float(n, "min", -FLT_MAX);
  *hi = kn_attr_float(n, "max", FLT_MAX);
  kn_tensor *a = kn_in(g, n, 1), *b = kn_in(g, n, 2);
  if (a && !kn_edit_const_scalar(a, lo))
    return false;
  if (b && !kn_edit_const_scalar(b, hi))
    return false;
  return true;
}

/* If tensor t is Clip(Add(x, 3), 0, 6) (or Relu6 of it) with private
 * intermediate edges toward `consumer`, returns x and lists the nodes. */
static int relu6_of_x_plus_3(kn_graph *g, int t, int consumer, int *nodes,
                             int *count) {
  int ci = producer(g, t);
  if (ci < 0 || !private_edge(g, t, consumer))
    return -1;
  kn_node *c = &g->nodes[ci];
  float lo, hi;
  if (c->op != KN_OP_CLIP || !clip_bounds(g, c, &lo, &hi) || lo != 0.0f ||
      hi != 6.0f)
    return -1;
  int ai = producer(g, c->inputs[0]);
  if (ai < 0 || !private_edge(g, c->inputs[0], ci))
    return -1;
  int slot;
  if (!binary_with_const(g, &g->nodes[ai], KN_OP_ADD, 3.0f, &slot))
    return -1;
  nodes[(*count)++] = ci;
  nodes[(*count)++] = ai;
  return g->nodes[ai].inputs[slot];
}

/* If tensor t equals hardsigmoid(x) = relu6(x+3)/6 built from nodes
 * private to `consumer`, returns x. */
static int hardsigmoid_of(kn_graph *g, int t, int consumer, int *nodes,
                          int *count) {
  int pi = producer(g, t);
  if (pi < 0 || !private_edge(g, t, consumer))
    return -1;
  kn_node *p = &g->nodes[pi];
  if (p->op == KN_OP_HARDSIGMOID) {
    if (!near(kn_attr_float(p, "alpha", 0.2f), 1.0f / 6.0f) ||
        kn_attr_float(p, "beta", 0.5f) != 0.5f)
      return -1;
    nodes[(*count)++] = pi;
    return p->inputs[0];
  }
  int slot;
  if (binary_with_const(g, p, KN_OP_DIV, 6.0f, &slot) ||
      binary_with_const(g, p, KN_OP_MUL, 1.0f / 6.0f, &slot)) {
    int save = *count;
    nodes[(*count)++] = pi;
    int x = relu6_of_x_plus_3(g, p->inputs[slot], pi, nodes, count);
    if (x < 0)
      *count = save;
    return x;
  }
  return -1;
}

/* Matches node fi as the last node of a hard-swish; returns x or -1. */
static int match_hardswish(kn_graph *g, int fi, int *nodes, int *count) {
  kn_node *f = &g->nodes[fi];
  *count = 0;
  if (f->num_outputs != 1 || f->num_inputs != 2 ||
      kn_attr_int(f, "activation", KN_ACT_NONE) != KN_ACT_NONE)
    return -1;
  int slot;
  /* (x * relu6(x+3)) / 6  and  (x * relu6(x+3)) * (1/6) */
  if (binary_with_const(g, f, KN_OP_DIV, 6.0f, &slot) ||
      binary_with_const(g, f, KN_OP_MUL, 1.0f / 6.0f, &slot)) {
    int mi = producer(g, f->inputs[slot]);
    if (mi < 0 || !private_edge(g, f->inputs[slot], fi))
      return -1;
    kn_node *m = &g->nodes[mi];
    if (m->op != KN_OP_MUL || m->num_inputs != 2 ||
        kn_attr_int(m, "activation", KN_ACT_NONE) != KN_ACT_NONE)
      return -1;
    for (int s = 0; s < 2; s++) {
      *count = 0;
      nodes[(*count)++] = mi;
      int x = relu6_of_x_plus_3(g, m->inputs[1 - s], mi, nodes, count);
      if (x >= 0 && x == m->inputs[s])
        return x;
    }
    return -1;
  }
  /* x * hardsigmoid(x) */
  if (f->op == KN_OP_MUL) {
    for (int s = 0; s < 2; s++) {
      *count = 0;
      int x = hardsigmoid_of(g, f->inputs[1 - s], fi, nodes, count);
      if (x >= 0 && x == f->inputs[s])
        return x;
    }
  }
  return -1;
}

kestrel_status kn_pass_recognize_hardswish(kn_graph *g, int *changed,
                                           kestrel_error *err) {
  (void)err;
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *f = &g->nodes[i];
    if (f->dead || (f->op != KN_OP_MUL && f->op != KN_OP_DIV))
      continue;
    int nodes[8], count = 0;
    int x = match_hardswish(g, i, nodes, &count);
    if (x < 0)
      continue;
    kn_tensor *xt = &g->tensors[x], *yt = kn_out(g, f, 0);
    if (xt->dtype != KESTREL_DTYPE_F32 || !yt || xt->ndim != yt->ndim ||
        memcmp(xt->dims, yt->dims, sizeof(int64_t) * (size_t)xt->ndim))
      continue;
    for (int k = 0; k < count; k++)
      g->nodes[nodes[k]].dead = true;
    /* Turn the final node into the HardSwish, keeping its output tensor. */
    for (int a = 0; a < f->num_attrs; a++) {
      free(f->attrs[a].name);
      free(f->attrs[a].ints);
      free(f->attrs[a].floats);
      free(f->attrs[a].s);
    }
    free(f->attrs);
    f->attrs = NULL;
    f->num_attrs = 0;
    f->op = KN_OP_HARDSWISH;
    char *op_name = strdup(kn_op_name(KN_OP_HARDSWISH));
    if (op_name) {
      free(f->op_name);
      f->op_name = op_name;
    }
    f->inputs[0] = x;
    f->num_inputs = 1;
    kn_log(g, "recognize_hardswish: %d nodes ending at '%s' -> HardSwish",
           count + 1, f->name);
    (*changed)++;
  }
  return KESTREL_OK;
}

/* ---- fuse_activation ----------------------------------------------------- */

typedef struct act_desc {
  int kind;
  float alpha, beta, lo, hi;
  bool has_alpha, has_beta, has_bounds;
} act_desc;

static bool activation_of(kn_graph *g, const kn_node *n, act_desc *a) {
  memset(a, 0, sizeof(*a));
  switch (n->op) {
  case KN_OP_RELU: a->kind = KN_ACT_RELU; return true;
  case KN_OP_SIGMOID: a->kind = KN_ACT_SIGMOID; return true;
  case KN_OP_TANH: a->kind = KN_ACT_TANH; return true;
  case KN_OP_HARDSWISH: a->kind = KN_ACT_HARDSWISH; return true;
  case KN_OP_LEAKY_RELU:
    a->kind = KN_ACT_LEAKY_RELU;
    a->alpha = kn_attr_float(n, "alpha", 0.01f);
    a->has_alpha = true;
    return true;
  case KN_OP_HARDSIGMOID:
    a->kind = KN_ACT_HARDSIGMOID;
    a->alpha = kn_attr_float(n, "alpha", 0.2f);
    a->beta = kn_attr_float(n, "beta", 0.5f);
    a->has_alpha = a->has_beta = true;
    return true;
  case KN_OP_CLIP: {
    float lo, hi;
    if (!clip_bounds(g, n, &lo, &hi))
      return false;
    if (lo == 0.0f && hi == 6.0f) {
      a->kind = KN_ACT_RELU6;
    } else if (lo == 0.0f && hi >= FLT_MAX) {
      a->kind = KN_ACT_RELU;
    } else {
      a->kind = KN_ACT_CLIP;
      a->lo = lo;
      a->hi = hi;
      a->has_bounds = true;
    }
    return true;
  }
  default: return false;
  }
}

/* Which producers run which fused activations in their epilogue. Add goes
 * through the element-wise activation, which lacks HardSigmoid. */
static bool producer_takes(const kn_node *p, int kind) {
  switch (p->op) {
  case KN_OP_CONV:
  case KN_OP_CONV_TRANSPOSE:
  case KN_OP_GEMM: return true;
  case KN_OP_ADD: return kind != KN_ACT_HARDSIGMOID;
  default: return false;
  }
}

kestrel_status kn_pass_fuse_activation(kn_graph *g, int *changed,
                                       kestrel_error *err) {
  (void)err;
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    act_desc a;
    if (n->dead || n->num_outputs != 1 || n->num_inputs < 1 ||
        !activation_of(g, n, &a))
      continue;
    int t = n->inputs[0];
    int pi = producer(g, t);
    if (pi < 0 || !private_edge(g, t, i))
      continue;
    kn_node *p = &g->nodes[pi];
    if (!producer_takes(p, a.kind) || p->num_outputs != 1 ||
        kn_attr_int(p, "activation", KN_ACT_NONE) != KN_ACT_NONE ||
        kn_attr_int(p, "packed", 0))
      continue;
    kn_tensor *x = &g->tensors[t], *y = kn_out(g, n, 0);
    /* Float only: a quantized activation would change the requantization
     * range, which the quantizer owns. */
    if (x->dtype != KESTREL_DTYPE_F32 || y->dtype != KESTREL_DTYPE_F32)
      continue;
    if (p->op == KN_OP_ADD && (p->num_inputs != 2))
      continue;
    kn_node_set_int(p, "activation", a.kind);
    if (a.has_alpha)
      kn_node_set_float(p, "activation_alpha", a.alpha);
    if (a.has_beta)
      kn_node_set_float(p, "activation_beta", a.beta);
    if (a.has_bounds) {
      kn_node_set_float(p, "activation_min", a.lo);
      kn_node_set_float(p, "activation_max", a.hi);
    }
    p->outputs[0] = n->outputs[0];
    n->dead = true;
    kn_log(g, "fuse_activation: folded %s '%s' into %s '%s'", n->op_name,
           n->name, p->op_name, p->name);
    (*changed)++;
  }
  return KESTREL_OK;
}
