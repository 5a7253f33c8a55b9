/* Passes that fold neighbours into a convolution (or Gemm): BatchNorm and
 * constant per-channel Mul/Add/Sub/Div become new weights and bias, a
 * zero Pad becomes the conv's own padding, and a residual Add becomes an
 * extra conv input added before the activation (attr "residual" = 1;
 * float before packing, int8 after it). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv_fast.h"
#include "ops/ops_common.h"
#include "passes.h"

/* ---- helpers ------------------------------------------------------------- */

static bool is_f32_const(const kn_tensor *t) {
  return t && t->kind == KN_TENSOR_CONSTANT && t->data &&
         t->dtype == KESTREL_DTYPE_F32 && !t->q_count;
}

static bool set_input(kn_graph *g, int ni, int slot, int t) {
  kn_node *n = &g->nodes[ni];
  if (slot >= n->num_inputs) {
    int *in = realloc(n->inputs, sizeof(int) * (size_t)(slot + 2));
    if (!in)
      return false;
    for (int k = n->num_inputs; k <= slot; k++)
      in[k] = -1;
    n->inputs = in;
    n->num_inputs = slot + 1;
  }
  n->inputs[slot] = t;
  return true;
}

/* Output channel count of a Conv / ConvTranspose / Gemm node and its axis
 * in the output tensor; false for anything else. */
static bool out_channels(kn_graph *g, const kn_node *n, int64_t *channels,
                         int *axis) {
  kn_tensor *y = kn_out(g, n, 0);
  if (!y || y->ndim < 2)
    return false;
  if (n->op == KN_OP_GEMM) {
    if (y->ndim != 2)
      return false;
    *axis = 1;
  } else {
    int layout;
    if (!kn_layout_attr(n, &layout))
      return false;
    *axis = layout == KN_LAYOUT_NHWC ? y->ndim - 1 : 1;
  }
  *channels = y->dims[*axis];
  return *channels > 0;
}

/* A float Conv/ConvTranspose/Gemm with constant weights whose epilogue is
 * still free (no activation, no residual, not packed): its output can take
 * a per-channel affine map. */
static bool affine_target(kn_graph *g, int ni) {
  kn_node *n = &g->nodes[ni];
  if (n->dead || (n->op != KN_OP_CONV && n->op != KN_OP_CONV_TRANSPOSE &&
                  n->op != KN_OP_GEMM))
    return false;
  if (kn_attr_int(n, "activation", KN_ACT_NONE) != KN_ACT_NONE ||
      kn_attr_int(n, "residual", 0) || kn_attr_int(n, "packed", 0) ||
      n->num_outputs != 1)
    return false;
  kn_tensor *x = kn_in(g, n, 0), *w = kn_in(g, n, 1), *b = kn_in(g, n, 2),
            *y = kn_out(g, n, 0);
  if (!x || x->dtype != KESTREL_DTYPE_F32 || !is_f32_const(w) || !y ||
      y->dtype != KESTREL_DTYPE_F32)
    return false;
  if (n->op == KN_OP_GEMM) {
    if (kn_attr_int(n, "transA", 0) || w->ndim != 2)
      return false;
    /* C must be absent or a constant that is one value per column. */
    if (b && (!is_f32_const(b) ||
              (kn_tensor_numel(b) != 1 && kn_tensor_numel(b) != y->dims[1]) ||
              (b->ndim == 2 && b->dims[0] != 1)))
      return false;
    return true;
  }
  if (n->num_inputs > 3)
    return false;
  return !b || (is_f32_const(b) && b->ndim == 1);
}

/* Rewrites node ni so that its output becomes y*scale[c] + shift[c] for
 * output channel c. New weight/bias tensors are created (the old ones may
 * be shared or borrowed from the file). */
static kestrel_status apply_channel_affine(kn_graph *g, int ni,
                                           const float *scale,
                                           const float *shift,
                                           kestrel_error *err) {
  kn_node *n = &g->nodes[ni];
  int64_t m;
  int axis;
  if (!out_channels(g, n, &m, &axis))
    return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n, "no channel axis");
  int wi = n->inputs[1];
  int bi = n->num_inputs > 2 ? n->inputs[2] : -1;
  if (bi >= 0 && g->tensors[bi].optional_absent)
    bi = -1;
  char name[300];
  snprintf(name, sizeof(name), "%s/fused_weights", n->name);
  kn_tensor *w = &g->tensors[wi];
  int64_t wdims[KN_MAX_DIMS];
  memcpy(wdims, w->dims, sizeof(wdims));
  int wnd = w->ndim;
  int nw = kn_edit_new_const(g, name, KESTREL_DTYPE_F32, wnd, wdims);
  snprintf(name, sizeof(name), "%s/fused_bias", n->name);
  int64_t bdim = m;
  int nb = kn_edit_new_const(g, name, KESTREL_DTYPE_F32, 1, &bdim);
  if (nw < 0 || nb < 0)
    return kn_node_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                        "cannot allocate fused weights");
  n = &g->nodes[ni];
  const kn_tensor *ow = &g->tensors[wi];
  const kn_tensor *ob = bi >= 0 ? &g->tensors[bi] : NULL;
  float *dw = g->tensors[nw].data, *db = g->tensors[nb].data;
  const float *sw = ow->data;
  int64_t total = kn_tensor_numel(ow);
  if (n->op == KN_OP_CONV) {
    int64_t per = total / m; /* [M, C/group, k...] */
    for (int64_t o = 0; o < m; o++)
      for (int64_t i = 0; i < per; i++)
        dw[o * per + i] = sw[o * per + i] * scale[o];
  } else if (n->op == KN_OP_CONV_TRANSPOSE) {
    /* [C, M/group, k...]: output channel of (ci, j) is gi*(M/group) + j. */
    int64_t group = kn_attr_int(n, "group", 1);
    int64_t cin = ow->dims[0], mg = ow->dims[1];
    int64_t per = total / (cin * mg);
    int64_t cg = cin / group;
    for (int64_t ci = 0; ci < cin; ci++)
      for (int64_t j = 0; j < mg; j++) {
        int64_t o = (ci / cg) * mg + j;
        for (int64_t i = 0; i < per; i++) {
          int64_t at = (ci * mg + j) * per + i;
          dw[at] = sw[at] * scale[o];
        }
      }
  } else { /* Gemm: B is [K, N], or [N, K] with transB */
    bool tb = kn_attr_int(n, "transB", 0) != 0;
    int64_t r = ow->dims[0], c = ow->dims[1];
    for (int64_t i = 0; i < r; i++)
      for (int64_t j = 0; j < c; j++)
        dw[i * c + j] = sw[i * c + j] * scale[tb ? i : j];
  }
  float beta = n->op == KN_OP_GEMM ? kn_attr_float(n, "beta", 1.0f) : 1.0f;
  int64_t bn = ob ? kn_tensor_numel(ob) : 0;
  for (int64_t o = 0; o < m; o++) {
    float b = ob ? ((const float *)ob->data)[bn == 1 ? 0 : o] * beta : 0.0f;
    db[o] = b * scale[o] + shift[o];
  }
  if (!set_input(g, ni, 1, nw) || !set_input(g, ni, 2, nb))
    return kn_node_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, n, "out of memory");
  if (n->op == KN_OP_GEMM)
    kn_node_set_float(&g->nodes[ni], "beta", 1.0f);
  return KESTREL_OK;
}

/* Live producer of tensor t, or -1. */
static int producer(const kn_graph *g, int t) {
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

/* Tensor t (output of node p) may be rewritten away: only `consumer` reads
 * it and it is not a graph output. */
static bool private_edge(const kn_graph *g, int t, int consumer) {
  return t >= 0 && !kn_edit_is_graph_output(g, t) &&
         kn_edit_single_consumer(g, t) == consumer;
}

/* ---- fuse_conv_batchnorm ------------------------------------------------- */

kestrel_status kn_pass_fuse_conv_batchnorm(kn_graph *g, int *changed,
                                           kestrel_error *err) {
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead || n->op != KN_OP_BATCHNORM || n->num_inputs < 5)
      continue;
    bool extra_used = false;
    for (int k = 1; k < n->num_outputs; k++)
      if (n->outputs[k] >= 0 && (kn_edit_use_count(g, n->outputs[k]) ||
                                 kn_edit_is_graph_output(g, n->outputs[k])))
        extra_used = true;
    if (extra_used || kn_attr_int(n, "training_mode", 0))
      continue;
    int x = n->inputs[0];
    int p = producer(g, x);
    if (p < 0 || !private_edge(g, x, i) || !affine_target(g, p))
      continue;
    int64_t m;
    int axis, bn_layout;
    if (!out_channels(g, &g->nodes[p], &m, &axis) ||
        !kn_layout_attr(n, &bn_layout))
      continue;
    int bn_axis = bn_layout == KN_LAYOUT_NHWC ? g->tensors[x].ndim - 1 : 1;
    if (bn_axis != axis)
      continue;
    const kn_tensor *prm[4];
    bool ok = true;
    for (int k = 0; k < 4; k++) {
      prm[k] = kn_in(g, n, k + 1);
      ok = ok && is_f32_const(prm[k]) && kn_tensor_numel(prm[k]) == m;
    }
    if (!ok)
      continue;
    float eps = kn_attr_float(n, "epsilon", 1e-5f);
    float *scale = malloc(sizeof(float) * (size_t)m * 2);
    if (!scale)
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    float *shift = scale + m;
    const float *gamma = prm[0]->data, *beta = prm[1]->data,
                *mean = prm[2]->data, *var = prm[3]->data;
    for (int64_t c = 0; c < m; c++) {
      /* double: the fused weights then match BN's own float math best */
      double s = (double)gamma[c] / sqrt((double)var[c] + (double)eps);
      scale[c] = (float)s;
      shift[c] = (float)((double)beta[c] - (double)mean[c] * s);
    }
    kestrel_status st = apply_channel_affine(g, p, scale, shift, err);
    free(scale);
    if (st != KESTREL_OK)
      return st;
    n = &g->nodes[i];
    g->nodes[p].outputs[0] = n->outputs[0];
    n->dead = true;
    kn_log(g, "fuse_conv_batchnorm: folded '%s' into %s '%s'", n->name,
           g->nodes[p].op_name, g->nodes[p].name);
    (*changed)++;
  }
  return KESTREL_OK;
}

/* ---- fuse_conv_mul_add --------------------------------------------------- */

/* Per-channel values of constant c broadcast against an output of rank r
 * with channel axis `axis` of size m: every other axis must be 1. */
static bool channel_values(const kn_tensor *c, int r, int axis, int64_t m,
                           float *v) {
  if (!is_f32_const(c) || c->ndim > r)
    return false;
  int64_t cdim = 1;
  for (int d = 0; d < c->ndim; d++) {
    int a = d + r - c->ndim;
    if (a == axis)
      cdim = c->dims[d];
    else if (c->dims[d] != 1)
      return false;
  }
  if (cdim != 1 && cdim != m)
    return false;
  const float *p = c->data;
  for (int64_t i = 0; i < m; i++)
    v[i] = p[cdim == 1 ? 0 : i];
  return true;
}

static kestrel_status fold_mul_add_sweep(kn_graph *g, int *changed,
                                         kestrel_error *err) {
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead || n->num_inputs != 2 || n->num_outputs != 1 ||
        (n->op != KN_OP_MUL && n->op != KN_OP_ADD && n->op != KN_OP_SUB &&
         n->op != KN_OP_DIV) ||
        kn_attr_int(n, "activation", KN_ACT_NONE) != KN_ACT_NONE)
      continue;
    for (int side = 0; side < 2; side++) {
      int t = n->inputs[side];
      int p = t >= 0 ? producer(g, t) : -1;
      if (p < 0 || !private_edge(g, t, i) || !affine_target(g, p))
        continue;
      if ((n->op == KN_OP_DIV && side == 1))
        continue;
      kn_tensor *y = kn_out(g, n, 0), *pt = &g->tensors[t];
      if (y->ndim != pt->ndim ||
          memcmp(y->dims, pt->dims, sizeof(int64_t) * (size_t)y->ndim))
        continue; /* the constant would broadcast the output larger */
      int64_t m;
      int axis;
      if (!out_channels(g, &g->nodes[p], &m, &axis))
        continue;
      float *v = malloc(sizeof(float) * (size_t)m * 3);
      if (!v)
        return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      float *scale = v + m, *shift = v + 2 * m;
      if (!channel_values(kn_in(g, n, 1 - side), pt->ndim, axis, m, v)) {
        free(v);
        continue;
      }
      bool ok = true;
      for (int64_t c = 0; c < m; c++) {
        switch (n->op) {
        case KN_OP_MUL: scale[c] = v[c]; shift[c] = 0.0f; break;
        case KN_OP_ADD: scale[c] = 1.0f; shift[c] = v[c]; break;
        case KN_OP_SUB: /* y - v, or v - y */
          scale[c] = side == 0 ? 1.0f : -1.0f;
          shift[c] = side == 0 ? -v[c] : v[c];
          break;
        default: /* DIV: y / v */
          if (v[c] == 0.0f || !isfinite(1.0f / v[c]))
            ok = false;
          scale[c] = 1.0f / v[c];
          shift[c] = 0.0f;
          break;
        }
      }
      kestrel_status st = KESTREL_OK;
      if (ok)
        st = apply_channel_affine(g, p, scale, shift, err);
      free(v);
      if (st != KESTREL_OK)
        return st;
      if (!ok)
        continue;
      n = &g->nodes[i];
      g->nodes[p].outputs[0] = n->outputs[0];
      n->dead = true;
      kn_log(g, "fuse_conv_mul_add: folded %s '%s' into %s '%s'", n->op_name,
             n->name, g->nodes[p].op_name, g->nodes[p].name);
      (*changed)++;
      break;
    }
  }
  return KESTREL_OK;
}

/* A folded bias Add can expose a BatchNorm behind it (PP-OCR det's head:
 * ConvTranspose -> Add(bias) -> BatchNormalization, which ran as float and
 * split the int8 graph), and a folded BatchNorm a Mul/Add behind it: sweep
 * both until neither changes anything. */
kestrel_status kn_pass_fuse_conv_mul_add(kn_graph *g, int *changed,
                                         kestrel_error *err) {
  for (int round = 0; round < 16; round++) {
    int mul_add = 0, bn = 0;
    kestrel_status st = fold_mul_add_sweep(g, &mul_add, err);
    if (st == KESTREL_OK && mul_add)
      st = kn_pass_fuse_conv_batchnorm(g, &bn, err);
    if (st != KESTREL_OK)
      return st;
    *changed += mul_add + bn;
    if (!bn)
      break;
  }
  return KESTREL_OK;
}

/* ---- fold_pad_into_conv -------------------------------------------------- */

/* Reads a Pad node's per-axis pads (begin, end), as pool.c's Pad does. */
static bool read_pads(kn_graph *g, const kn_node *n, int r, int64_t *pb,
                      int64_t *pe) {
  int64_t vals[2 * KN_MAX_DIMS];
  int nv;
  kn_tensor *pt = kn_in(g, n, 1);
  if (pt) {
    if (pt->kind != KN_TENSOR_CONSTANT || !pt->data || pt->ndim > 1)
      return false;
    int64_t cnt = kn_tensor_numel(pt);
    if (cnt > 2 * KN_MAX_DIMS || cnt % 2)
      return false;
    nv = (int)cnt;
    for (int i = 0; i < nv; i++)
      vals[i] = kn_read_int(pt, i);
  } else {
    const int64_t *a;
    nv = kn_attr_ints(n, "pads", &a);
    if (!nv)
      nv = kn_attr_ints(n, "paddings", &a);
    if (nv > 2 * KN_MAX_DIMS || nv % 2)
      return false;
    for (int i = 0; i < nv; i++)
      vals[i] = a[i];
  }
  int na = nv / 2;
  int axes[KN_MAX_DIMS];
  kn_tensor *at = kn_in(g, n, 3);
  if (at) {
    if (at->kind != KN_TENSOR_CONSTANT || !at->data ||
        kn_tensor_numel(at) != na)
      return false;
    for (int i = 0; i < na; i++) {
      int64_t a = kn_read_int(at, i);
      if (a < 0)
        a += r;
      if (a < 0 || a >= r)
        return false;
      axes[i] = (int)a;
    }
  } else {
    if (na != r)
      return false;
    for (int i = 0; i < na; i++)
      axes[i] = i;
  }
  for (int i = 0; i < r; i++)
    pb[i] = pe[i] = 0;
  for (int i = 0; i < na; i++) {
    pb[axes[i]] = vals[i];
    pe[axes[i]] = vals[i + na];
  }
  return true;
}

static bool pad_value(kn_graph *g, const kn_node *n, float *v) {
  kn_tensor *c = kn_in(g, n, 2);
  if (!c) {
    *v = kn_attr_float(n, "value", 0.0f);
    return true;
  }
  if (c->kind != KN_TENSOR_CONSTANT || !c->data || kn_tensor_numel(c) != 1)
    return false;
  *v = (float)kn_read_double(c, 0);
  return true;
}

kestrel_status kn_pass_fold_pad_into_conv(kn_graph *g, int *changed,
                                          kestrel_error *err) {
  (void)err;
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead || n->op != KN_OP_PAD || n->num_outputs != 1)
      continue;
    if (strcmp(kn_attr_string(n, "mode", "constant"), "constant"))
      continue;
    kn_tensor *x = kn_in(g, n, 0);
    int y = n->outputs[0];
    if (!x || x->dtype != KESTREL_DTYPE_F32 || x->q_count)
      continue;
    int ci = kn_edit_single_consumer(g, y);
    if (ci < 0 || kn_edit_is_graph_output(g, y))
      continue;
    kn_node *c = &g->nodes[ci];
    if (c->inputs[0] != y ||
        (c->op != KN_OP_CONV && c->op != KN_OP_AVGPOOL &&
         c->op != KN_OP_MAXPOOL))
      continue;
    float value;
    int64_t pb[KN_MAX_DIMS], pe[KN_MAX_DIMS];
    int r = x->ndim, layout;
    if (!pad_value(g, n, &value) || !read_pads(g, n, r, pb, pe) ||
        !kn_layout_attr(c, &layout) || r < 3)
      continue;
    /* What the consumer's own padding reads: zeros for Conv and for
     * AveragePool counting pads, nothing (= -inf) for MaxPool. */
    bool fits;
    if (c->op == KN_OP_MAXPOOL)
      fits = value == -INFINITY && (c->num_outputs < 2 || c->outputs[1] < 0);
    else
      fits = value == 0.0f;
    const char *ap = kn_attr_string(c, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") && strcmp(ap, "VALID") && ap[0])
      fits = false;
    int nsp = r - 2;
    int first_sp = layout == KN_LAYOUT_NHWC ? 1 : 2;
    int c_axis = layout == KN_LAYOUT_NHWC ? r - 1 : 1;
    if (pb[0] || pe[0] || pb[c_axis] || pe[c_axis])
      fits = false;
    for (int d = 0; d < r; d++)
      if (pb[d] < 0 || pe[d] < 0)
        fits = false;
    const int64_t *old;
    int nold = kn_attr_ints(c, "pads", &old);
    if (!strcmp(ap, "VALID"))
      nold = 0;
    if (nold && nold != 2 * nsp)
      fits = false;
    bool old_zero = true;
    for (int k = 0; k < nold; k++)
      old_zero = old_zero && old[k] == 0;
    if (c->op == KN_OP_AVGPOOL &&
        (kn_attr_int(c, "ceil_mode", 0) ||
         (!old_zero && !kn_attr_int(c, "count_include_pad", 0))))
      fits = false;
    if (!fits)
      continue;
    int64_t pads[2 * 3];
    for (int s = 0; s < nsp; s++) {
      pads[s] = (nold ? old[s] : 0) + pb[first_sp + s];
      pads[nsp + s] = (nold ? old[nsp + s] : 0) + pe[first_sp + s];
    }
    kn_node_set_ints(c, "pads", pads, 2 * nsp);
    kn_node_set_string(c, "auto_pad", "NOTSET");
    if (c->op == KN_OP_AVGPOOL)
      kn_node_set_int(c, "count_include_pad", 1);
    c->inputs[0] = n->inputs[0];
    n->dead = true;
    kn_log(g, "fold_pad_into_conv: folded Pad '%s' into %s '%s'", n->name,
           c->op_name, c->name);
    (*changed)++;
  }
  return KESTREL_OK;
}

/* ---- fuse_residual_add --------------------------------------------------- */

static bool same_dims(const kn_tensor *a, const kn_tensor *b) {
  return a->ndim == b->ndim && a->dtype == b->dtype &&
         !memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->ndim);
}

kestrel_status kn_pass_fuse_residual_add(kn_graph *g, int *changed,
                                         kestrel_error *err) {
  (void)err;
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead || n->op != KN_OP_ADD || n->num_inputs != 2 ||
        n->num_outputs != 1)
      continue;
    kn_tensor *y = kn_out(g, n, 0);
    if (!y || y->dtype != KESTREL_DTYPE_F32)
      continue;
    int best = -1, best_side = -1;
    for (int side = 0; side < 2; side++) {
      int t = n->inputs[side], o = n->inputs[1 - side];
      if (t < 0 || o < 0 || t == o)
        continue;
      int p = producer(g, t);
      if (p < 0 || !private_edge(g, t, i))
        continue;
      kn_node *c = &g->nodes[p];
      if (c->op != KN_OP_CONV || c->num_inputs > 3 ||
          kn_attr_int(c, "activation", KN_ACT_NONE) != KN_ACT_NONE ||
          kn_attr_int(c, "residual", 0) || kn_attr_int(c, "packed", 0))
        continue;
      kn_tensor *cx = kn_in(g, c, 0);
      if (!cx || cx->dtype != KESTREL_DTYPE_F32 || cx->q_count)
        continue;
      if (!same_dims(&g->tensors[t], y) || !same_dims(&g->tensors[o], y))
        continue;
      /* The conv then reads the other operand: prefer the conv that runs
       * last so the schedule barely moves. */
      if (p > best) {
        best = p;
        best_side = side;
      }
    }
    if (best < 0)
      continue;
    int other = n->inputs[1 - best_side];
    if (!set_input(g, best, 3, other))
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    n = &g->nodes[i];
    kn_node *c = &g->nodes[best];
    kn_node_set_int(c, "residual", 1);
    int act = (int)kn_attr_int(n, "activation", KN_ACT_NONE);
    if (act != KN_ACT_NONE) {
      kn_node_set_int(c, "activation", act);
      const char *keys[] = {"activation_alpha", "activation_beta",
                            "activation_min", "activation_max"};
      for (int k = 0; k < 4; k++) {
        const kn_attr *a = kn_node_attr(n, keys[k]);
        if (a && a->type == KN_ATTR_FLOAT)
          kn_node_set_float(c, keys[k], a->f);
      }
    }
    c->outputs[0] = n->outputs[0];
    n->dead = true;
    kn_log(g, "fuse_residual_add: folded Add '%s' into Conv '%s'", n->name,
           c->name);
    (*changed)++;
  }
  return KESTREL_OK;
}

/* ---- fuse_int8_residual_add ---------------------------------------------- */

/* A per-tensor int8 activation whose parameters the int8 epilogue takes
 * (conv_fast.c infer checks the same). */
static bool q8_act(const kn_tensor *t) {
  return t && t->dtype == KESTREL_DTYPE_I8 && t->q_count == 1 && t->q_scale &&
         t->q_zero_point && t->q_scale[0] > 0.0f && !isinf(t->q_scale[0]) &&
         t->q_zero_point[0] >= -128 && t->q_zero_point[0] <= 127;
}

/* A packed int8 Conv whose epilogue is free: no activation (its clamp
 * would come before the Add), no table, no residual yet. Its requant
 * scales were made for its own output T, which is then exactly the
 * (sum_scale, sum_zero_point) of the fused form. */
static bool int8_residual_target(kn_graph *g, int p) {
  kn_node *c = &g->nodes[p];
  int64_t kind = kn_attr_int(c, "packed", 0);
  if (c->dead || c->op != KN_OP_CONV || c->num_outputs != 1 ||
      (kind != KN_PACKED_QS8_GEMM && kind != KN_PACKED_QS8_DWCONV) ||
      kn_attr_int(c, "activation", KN_ACT_NONE) != KN_ACT_NONE ||
      kn_node_attr(c, "act_in_scale") || kn_node_attr(c, "sum_scale") ||
      kn_attr_int(c, "residual", 0) || kn_opt_in(g, c, 3) ||
      kn_opt_in(g, c, 4))
    return false;
  return q8_act(kn_in(g, c, 0)) && q8_act(kn_out(g, c, 0));
}

static const char *clamp_name(int act) {
  switch (act) {
  case KN_ACT_RELU: return "Relu";
  case KN_ACT_RELU6: return "Relu6";
  case KN_ACT_RELU_N1_TO_1: return "Relu_n1_to_1";
  case KN_ACT_CLIP: return "Clip";
  default: return "no activation";
  }
}

/* The int8 twin of fuse_residual_add, run after pack_weights: an int8
 * Add (+ clamp activation) of a packed int8 conv's output T and another
 * int8 tensor R of the same shape becomes the conv's residual input [3].
 * The conv still requantizes to T's parameters ("sum_scale" /
 * "sum_zero_point"), then its epilogue computes the Add with the
 * reference Add's own arithmetic (kn_qs8_binary_rows) and writes the
 * Add's output: the bytes do not change. The reference Conv has no int8
 * residual, so only packed convs are candidates. */
kestrel_status kn_pass_fuse_int8_residual_add(kn_graph *g, int *changed,
                                              kestrel_error *err) {
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead || n->op != KN_OP_ADD || n->num_inputs != 2 ||
        n->num_outputs != 1)
      continue;
    kn_tensor *y = kn_out(g, n, 0);
    if (!q8_act(y))
      continue;
    int act = (int)kn_attr_int(n, "activation", KN_ACT_NONE);
    if (act != KN_ACT_NONE && act != KN_ACT_RELU && act != KN_ACT_RELU6 &&
        act != KN_ACT_RELU_N1_TO_1 && act != KN_ACT_CLIP)
      continue; /* the int8 epilogue clamps; tables need no residual */
    int best = -1, best_side = -1;
    for (int side = 0; side < 2; side++) {
      int t = n->inputs[side], o = n->inputs[1 - side];
      if (t < 0 || o < 0 || t == o)
        continue;
      int p = producer(g, t);
      if (p < 0 || !private_edge(g, t, i) || !int8_residual_target(g, p))
        continue;
      kn_tensor *r = &g->tensors[o];
      if (r->optional_absent || !q8_act(r) || !same_dims(&g->tensors[t], y) ||
          !same_dims(r, y))
        continue;
      if (p > best) { /* as fuse_residual_add: the conv that runs last */
        best = p;
        best_side = side;
      }
    }
    if (best < 0)
      continue;
    int t = n->inputs[best_side], other = n->inputs[1 - best_side];
    if (!set_input(g, best, 3, other))
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    n = &g->nodes[i];
    kn_node *c = &g->nodes[best];
    kn_node_set_int(c, "residual", 1);
    kn_node_set_float(c, "sum_scale", g->tensors[t].q_scale[0]);
    kn_node_set_int(c, "sum_zero_point", g->tensors[t].q_zero_point[0]);
    if (act != KN_ACT_NONE) {
      kn_node_set_int(c, "activation", act);
      if (act == KN_ACT_CLIP) {
        /* The bounds the Add read (elementwise.c's defaults), spelled out:
         * the conv's defaults differ. */
        kn_node_set_float(c, "activation_min",
                          kn_attr_float(n, "activation_min", -FLT_MAX));
        kn_node_set_float(c, "activation_max",
                          kn_attr_float(n, "activation_max", FLT_MAX));
      }
    }
    c->outputs[0] = n->outputs[0];
    n->dead = true;
    kn_log(g, "fuse_int8_residual_add: folded Add '%s' (%s) into int8 Conv "
           "'%s' (sum %g/%d, residual '%s')",
           n->name, clamp_name(act), c->name, (double)g->tensors[t].q_scale[0],
           (int)g->tensors[t].q_zero_point[0], g->tensors[other].name);
    (*changed)++;
  }
  return KESTREL_OK;
}
