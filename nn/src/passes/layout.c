/* convert_layout_nhwc: one memory layout for the whole graph. Every 4-D
 * activation that a layout-aware op produces or reads is stored NHWC, so
 * the fast kernels see channels innermost everywhere. Spatial ops get
 * "layout" = NHWC; ops with axes (Concat, Softmax, Reduce*, Slice, Pad,
 * Resize, Split) get their axes remapped; constant operands of element-wise
 * ops are permuted once here. Transposes appear only where a tensor crosses
 * into or out of the NHWC region: at graph inputs/outputs and in front of
 * ops that depend on NCHW order (Reshape, Flatten, MatMul, ...). When that
 * crossing is free (C == 1 or H*W == 1: both orders are the same bytes) a
 * Reshape, which the memory planner aliases, stands in for the Transpose.
 * The graph keeps its NCHW interface: callers see the shapes they gave. */
#include <stdlib.h>
#include <string.h>

#include "ops/ops_common.h"
#include "passes.h"

/* NHWC dims[i] = NCHW dims[to_nhwc_perm[i]]; an NCHW axis a lands at
 * nchw_axis_in_nhwc[a]. */
static const int64_t to_nhwc_perm[4] = {0, 2, 3, 1};
static const int64_t to_nchw_perm[4] = {0, 3, 1, 2};
static const int nchw_axis_in_nhwc[4] = {0, 3, 1, 2};

typedef struct layout_state {
  kn_graph *g;
  int cap;
  char *nhwc;    /* tensor is stored NHWC */
  int *as_nhwc;  /* NHWC twin of an NCHW tensor, -1 if none yet */
  int *as_nchw;  /* NCHW twin of an NHWC tensor */
  int *permuted; /* permuted copy of a constant */
  int transposes, reshapes, constants;
} layout_state;

static bool grow(layout_state *s) {
  int need = s->g->num_tensors + 1;
  if (need <= s->cap)
    return true;
  int cap = need * 2;
  char *a = realloc(s->nhwc, (size_t)cap);
  if (!a)
    return false;
  s->nhwc = a;
  int **arrays[3] = {&s->as_nhwc, &s->as_nchw, &s->permuted};
  for (int k = 0; k < 3; k++) {
    int *p = realloc(*arrays[k], sizeof(int) * (size_t)cap);
    if (!p)
      return false;
    *arrays[k] = p;
  }
  for (int i = s->cap; i < cap; i++) {
    s->nhwc[i] = 0;
    s->as_nhwc[i] = s->as_nchw[i] = s->permuted[i] = -1;
  }
  s->cap = cap;
  return true;
}

static bool is_act4(const kn_graph *g, int t) {
  return t >= 0 && g->tensors[t].kind != KN_TENSOR_CONSTANT &&
         !g->tensors[t].optional_absent && g->tensors[t].ndim == 4;
}

static bool is_const(const kn_graph *g, int t) {
  return t >= 0 && g->tensors[t].kind == KN_TENSOR_CONSTANT &&
         g->tensors[t].data;
}

static void permute_dims(int64_t *dims, const int64_t *perm) {
  int64_t old[4];
  memcpy(old, dims, sizeof(old));
  for (int i = 0; i < 4; i++)
    dims[i] = old[perm[i]];
}

/* Both orders hold the same bytes when there is one channel or one pixel. */
static bool order_free(const int64_t *nchw_dims) {
  return nchw_dims[1] == 1 || nchw_dims[2] * nchw_dims[3] == 1;
}

/* Node that turns tensor `from` into a new tensor of dims `dims` (which is
 * `from` reordered by perm). */
static int convert_tensor(layout_state *s, int from, const int64_t *perm,
                          const char *suffix, bool free_reorder,
                          kestrel_error *err, kestrel_status *st) {
  kn_graph *g = s->g;
  char name[300];
  snprintf(name, sizeof(name), "%s/%s", g->tensors[from].name, suffix);
  int t = kn_edit_new_activation(g, name, from);
  if (t < 0 || !grow(s)) {
    *st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    return -1;
  }
  permute_dims(g->tensors[t].dims, perm);
  int node;
  if (free_reorder) {
    snprintf(name, sizeof(name), "%s/%s_shape", g->tensors[from].name,
             suffix);
    int64_t four = 4;
    int shape = kn_edit_new_const(g, name, KESTREL_DTYPE_I64, 1, &four);
    if (shape < 0 || !grow(s)) {
      *st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      return -1;
    }
    memcpy(g->tensors[shape].data, g->tensors[t].dims, sizeof(int64_t) * 4);
    int in[2] = {from, shape};
    snprintf(name, sizeof(name), "%s/%s", g->tensors[from].name, suffix);
    node = kn_edit_add_node(g, KN_OP_RESHAPE, name, in, 2, &t, 1);
    s->reshapes++;
  } else {
    snprintf(name, sizeof(name), "%s/%s", g->tensors[from].name, suffix);
    node = kn_edit_add_node(g, KN_OP_TRANSPOSE, name, &from, 1, &t, 1);
    if (node >= 0)
      kn_node_set_ints(&g->nodes[node], "perm", perm, 4);
    s->transposes++;
    kn_log(g, "convert_layout_nhwc: transpose %s for '%s'", suffix,
           g->tensors[from].name);
  }
  if (node < 0) {
    *st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    return -1;
  }
  return t;
}

static int get_nhwc(layout_state *s, int t, kestrel_error *err,
                    kestrel_status *st) {
  if (s->nhwc[t])
    return t;
  if (s->as_nhwc[t] >= 0)
    return s->as_nhwc[t];
  bool free_reorder = order_free(s->g->tensors[t].dims);
  int u = convert_tensor(s, t, to_nhwc_perm, "nhwc", free_reorder, err, st);
  if (u < 0)
    return -1;
  s->nhwc[u] = 1;
  s->as_nhwc[t] = u;
  s->as_nchw[u] = t;
  return u;
}

static int get_nchw(layout_state *s, int t, kestrel_error *err,
                    kestrel_status *st) {
  if (!s->nhwc[t])
    return t;
  if (s->as_nchw[t] >= 0)
    return s->as_nchw[t];
  int64_t nchw[4];
  memcpy(nchw, s->g->tensors[t].dims, sizeof(nchw));
  permute_dims(nchw, to_nchw_perm);
  int u = convert_tensor(s, t, to_nchw_perm, "nchw", order_free(nchw), err,
                         st);
  if (u < 0)
    return -1;
  s->as_nchw[t] = u;
  s->as_nhwc[u] = t;
  return u;
}

/* Constant of rank <= 4 broadcast against a 4-D NCHW operand, as the
 * equivalent constant against the NHWC operand: leading 1s to rank 4, then
 * the data reordered. Returns the new tensor (cached). */
static int permute_const(layout_state *s, int t, kestrel_error *err,
                         kestrel_status *st) {
  if (s->permuted[t] >= 0)
    return s->permuted[t];
  kn_graph *g = s->g;
  kn_tensor *c = &g->tensors[t];
  int64_t d4[4] = {1, 1, 1, 1};
  for (int i = 0; i < c->ndim; i++)
    d4[4 - c->ndim + i] = c->dims[i];
  int64_t out[4];
  memcpy(out, d4, sizeof(out));
  permute_dims(out, to_nhwc_perm);
  char name[300];
  snprintf(name, sizeof(name), "%s/nhwc", c->name);
  kestrel_dtype dt = c->dtype;
  int u = kn_edit_new_const(g, name, dt, 4, out);
  if (u < 0 || !grow(s)) {
    *st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    return -1;
  }
  c = &g->tensors[t];
  kn_tensor *d = &g->tensors[u];
  if (c->q_count)
    kn_tensor_set_quant(d, c->q_axis < 0 ? -1 : nchw_axis_in_nhwc[c->q_axis + 4 - c->ndim],
                        c->q_count, c->q_scale, c->q_zero_point);
  size_t es = kestrel_dtype_size(dt);
  const uint8_t *src = c->data;
  uint8_t *dst = d->data;
  int64_t i = 0;
  for (int64_t n = 0; n < out[0]; n++)
    for (int64_t h = 0; h < out[1]; h++)
      for (int64_t w = 0; w < out[2]; w++)
        for (int64_t ch = 0; ch < out[3]; ch++, i++) {
          int64_t from = ((n * d4[1] + ch) * d4[2] + h) * d4[3] + w;
          memcpy(dst + (size_t)i * es, src + (size_t)from * es, es);
        }
  s->permuted[t] = u;
  s->constants++;
  return u;
}

/* New I64 constant holding values. */
static int int_const(layout_state *s, const char *name, const int64_t *values,
                     int count, kestrel_error *err, kestrel_status *st) {
  int64_t dim = count;
  int u = kn_edit_new_const(s->g, name, KESTREL_DTYPE_I64, 1, &dim);
  if (u < 0 || !grow(s)) {
    *st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    return -1;
  }
  memcpy(s->g->tensors[u].data, values, sizeof(int64_t) * (size_t)count);
  return u;
}

static bool remap_axis(int64_t a, int64_t *out) {
  if (a < 0)
    a += 4;
  if (a < 0 || a > 3)
    return false;
  *out = nchw_axis_in_nhwc[a];
  return true;
}

typedef enum op_class {
  CLASS_OTHER = 0, /* needs NCHW inputs */
  CLASS_SPATIAL,   /* takes the layout attribute */
  CLASS_UNARY,
  CLASS_BINARY,
  CLASS_CONCAT,
  CLASS_AXIS,   /* one "axis" attribute: Softmax, Split */
  CLASS_REDUCE, /* axes attribute or input 1, keepdims */
  CLASS_RESIZE,
  CLASS_PAD,
  CLASS_SLICE,
} op_class;

static op_class class_of(const kn_graph *g, const kn_node *n) {
  switch (n->op) {
  case KN_OP_CONV:
  case KN_OP_CONV_TRANSPOSE:
  case KN_OP_AVGPOOL:
  case KN_OP_GLOBAL_AVGPOOL:
  case KN_OP_GLOBAL_MAXPOOL:
  case KN_OP_BATCHNORM:
  case KN_OP_INSTANCE_NORM:
  case KN_OP_LRN:
  case KN_OP_DEPTH_TO_SPACE:
  case KN_OP_SPACE_TO_DEPTH:
    return CLASS_SPATIAL;
  case KN_OP_MAXPOOL:
    /* Indices are NCHW offsets by definition. */
    return n->num_outputs > 1 && n->outputs[1] >= 0 ? CLASS_OTHER
                                                     : CLASS_SPATIAL;
  case KN_OP_RELU: case KN_OP_CLIP: case KN_OP_LEAKY_RELU:
  case KN_OP_HARDSWISH: case KN_OP_HARDSIGMOID: case KN_OP_SIGMOID:
  case KN_OP_TANH: case KN_OP_EXP: case KN_OP_SQRT: case KN_OP_NEG:
  case KN_OP_ABS: case KN_OP_FLOOR: case KN_OP_CEIL: case KN_OP_RECIPROCAL:
  case KN_OP_LOG: case KN_OP_ERF: case KN_OP_ELU: case KN_OP_SELU:
  case KN_OP_SOFTPLUS: case KN_OP_SOFTSIGN: case KN_OP_SIGN:
  case KN_OP_ROUND: case KN_OP_IDENTITY: case KN_OP_CAST:
  case KN_OP_QUANTIZE_LINEAR: case KN_OP_DEQUANTIZE_LINEAR:
    if (n->op == KN_OP_QUANTIZE_LINEAR || n->op == KN_OP_DEQUANTIZE_LINEAR) {
      /* Per-tensor (de)quantization is element-wise, so any layout does;
       * per-axis keeps an axis attribute: leave it. Without a scale input
       * the parameters are the quantized tensor's own (Q: output, DQ:
       * input), as the quantizer writes them. */
      const kn_tensor *sc = kn_in((kn_graph *)g, n, 1);
      int qt = n->op == KN_OP_QUANTIZE_LINEAR ? n->outputs[0] : n->inputs[0];
      if (sc ? kn_tensor_numel(sc) != 1
             : (qt < 0 || g->tensors[qt].q_count != 1))
        return CLASS_OTHER;
      if (kn_attr_int(n, "dynamic", 0))
        return CLASS_OTHER;
    }
    return CLASS_UNARY;
  case KN_OP_ADD: case KN_OP_SUB: case KN_OP_MUL: case KN_OP_DIV:
  case KN_OP_MAX: case KN_OP_MIN: case KN_OP_POW: case KN_OP_PRELU:
  case KN_OP_SUM: case KN_OP_MEAN:
    return CLASS_BINARY;
  case KN_OP_CONCAT: return CLASS_CONCAT;
  case KN_OP_SOFTMAX: case KN_OP_LOG_SOFTMAX: case KN_OP_HARDMAX:
    /* Before opset 13 these flatten at the axis: order-dependent. */
    return g->opset > 0 && g->opset < 13 ? CLASS_OTHER : CLASS_AXIS;
  case KN_OP_SPLIT: return CLASS_AXIS;
  case KN_OP_REDUCE_MEAN: case KN_OP_REDUCE_MAX: case KN_OP_REDUCE_MIN:
  case KN_OP_REDUCE_SUM: case KN_OP_REDUCE_PROD: case KN_OP_REDUCE_L1:
  case KN_OP_REDUCE_L2: case KN_OP_REDUCE_SUM_SQUARE:
  case KN_OP_REDUCE_LOG_SUM: case KN_OP_REDUCE_LOG_SUM_EXP:
    return kn_attr_int(n, "keepdims", 1) ? CLASS_REDUCE : CLASS_OTHER;
  case KN_OP_RESIZE: return CLASS_RESIZE;
  case KN_OP_PAD: return CLASS_PAD;
  case KN_OP_SLICE: return CLASS_SLICE;
  default: return CLASS_OTHER;
  }
}

/* Can node n run on NHWC data (checked before changing anything)? */
static bool convertible(layout_state *s, const kn_node *n, op_class cls) {
  kn_graph *g = s->g;
  if (cls == CLASS_OTHER)
    return false;
  int act4 = 0;
  for (int k = 0; k < n->num_inputs; k++)
    act4 += is_act4(g, n->inputs[k]);
  if (!act4)
    return false;
  if (cls != CLASS_BINARY && cls != CLASS_CONCAT && !is_act4(g, n->inputs[0]))
    return false;
  for (int k = 0; k < n->num_outputs; k++) {
    int t = n->outputs[k];
    if (t >= 0 && g->tensors[t].ndim != 4)
      return false;
  }
  switch (cls) {
  case CLASS_SPATIAL:
  case CLASS_UNARY:
  case CLASS_AXIS:
  case CLASS_REDUCE:
  case CLASS_RESIZE:
  case CLASS_PAD:
  case CLASS_SLICE:
    /* Data is input 0; the others are parameters (constants or absent). */
    for (int k = 1; k < n->num_inputs; k++) {
      int t = n->inputs[k];
      if (t < 0 || g->tensors[t].optional_absent)
        continue;
      bool residual = cls == CLASS_SPATIAL && n->op == KN_OP_CONV && k == 3;
      if (residual ? !is_act4(g, t) : !is_const(g, t))
        return false;
    }
    if (cls == CLASS_SPATIAL && g->tensors[n->inputs[0]].ndim != 4)
      return false;
    {
      int layout;
      if (cls == CLASS_SPATIAL &&
          (!kn_layout_attr(n, &layout) || layout != KN_LAYOUT_NCHW))
        return false;
    }
    return true;
  case CLASS_BINARY:
  case CLASS_CONCAT:
    for (int k = 0; k < n->num_inputs; k++) {
      int t = n->inputs[k];
      if (t < 0)
        return false;
      const kn_tensor *x = &g->tensors[t];
      if (is_act4(g, t))
        continue;
      if (cls == CLASS_BINARY && kn_tensor_numel(x) == 1)
        continue; /* a scalar broadcasts the same way in any order */
      if (!is_const(g, t) || x->ndim > 4 ||
          (cls == CLASS_CONCAT && x->ndim != 4))
        return false;
    }
    return true;
  default:
    return false;
  }
}

/* Rewrites an axes list (attribute or constant input) into NHWC axes. */
static kestrel_status remap_axes_input(layout_state *s, int ni, int slot,
                                       kestrel_error *err) {
  kn_graph *g = s->g;
  kn_node *n = &g->nodes[ni];
  kestrel_status st = KESTREL_OK;
  int t = slot < n->num_inputs ? n->inputs[slot] : -1;
  if (t < 0 || g->tensors[t].optional_absent)
    return KESTREL_OK;
  int64_t vals[KN_MAX_DIMS];
  int64_t count = kn_tensor_numel(&g->tensors[t]);
  if (count > KN_MAX_DIMS)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "too many axes");
  for (int64_t i = 0; i < count; i++)
    if (!remap_axis(kn_read_int(&g->tensors[t], i), &vals[i]))
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad axis");
  char name[300];
  snprintf(name, sizeof(name), "%s/axes_nhwc", g->tensors[t].name);
  int u = int_const(s, name, vals, (int)count, err, &st);
  if (u < 0)
    return st;
  g->nodes[ni].inputs[slot] = u;
  return KESTREL_OK;
}

static kestrel_status remap_axes_attr(kn_node *n, const char *key,
                                      kestrel_error *err) {
  const int64_t *a;
  int count = kn_attr_ints(n, key, &a);
  if (!count)
    return KESTREL_OK;
  int64_t vals[KN_MAX_DIMS];
  if (count > KN_MAX_DIMS)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "too many axes");
  for (int i = 0; i < count; i++)
    if (!remap_axis(a[i], &vals[i]))
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad axis");
  kn_node_set_ints(n, key, vals, count);
  return KESTREL_OK;
}

/* Reorders a begin/end list of 4 + 4 values (pads, roi) or a 4-list. */
static void permute_list(int64_t *v, int count) {
  int64_t old[8];
  memcpy(old, v, sizeof(int64_t) * (size_t)count);
  for (int half = 0; half < count / 4; half++)
    for (int i = 0; i < 4; i++)
      v[half * 4 + i] = old[half * 4 + to_nhwc_perm[i]];
}

/* Same for a constant input holding 4 or 8 numbers (any dtype). */
static kestrel_status permute_list_input(layout_state *s, int ni, int slot,
                                         kestrel_error *err) {
  kn_graph *g = s->g;
  kn_node *n = &g->nodes[ni];
  int t = slot < n->num_inputs ? n->inputs[slot] : -1;
  if (t < 0 || g->tensors[t].optional_absent)
    return KESTREL_OK;
  kn_tensor *c = &g->tensors[t];
  int64_t count = kn_tensor_numel(c);
  if (count == 0)
    return KESTREL_OK;
  if (count != 4 && count != 8)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "%lld values for a rank-4 input", (long long)count);
  char name[300];
  snprintf(name, sizeof(name), "%s/nhwc", c->name);
  int64_t dims[KN_MAX_DIMS];
  memcpy(dims, c->dims, sizeof(dims));
  int nd = c->ndim;
  kestrel_dtype dt = c->dtype;
  int u = kn_edit_new_const(g, name, dt, nd, dims);
  if (u < 0 || !grow(s))
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  c = &g->tensors[t];
  size_t es = kestrel_dtype_size(dt);
  const uint8_t *src = c->data;
  uint8_t *dst = g->tensors[u].data;
  for (int half = 0; half < count / 4; half++)
    for (int i = 0; i < 4; i++)
      memcpy(dst + (size_t)(half * 4 + i) * es,
             src + (size_t)(half * 4 + to_nhwc_perm[i]) * es, es);
  g->nodes[ni].inputs[slot] = u;
  return KESTREL_OK;
}

static kestrel_status convert_node(layout_state *s, int ni, op_class cls,
                                   kestrel_error *err) {
  kn_graph *g = s->g;
  kestrel_status st = KESTREL_OK;
  /* Activation inputs to NHWC, constants of element-wise ops permuted. */
  for (int k = 0; k < g->nodes[ni].num_inputs; k++) {
    int t = g->nodes[ni].inputs[k];
    if (is_act4(g, t)) {
      int u = get_nhwc(s, t, err, &st);
      if (u < 0)
        return st;
      g->nodes[ni].inputs[k] = u;
    } else if ((cls == CLASS_BINARY || cls == CLASS_CONCAT) &&
               is_const(g, t) && kn_tensor_numel(&g->tensors[t]) != 1) {
      int u = permute_const(s, t, err, &st);
      if (u < 0)
        return st;
      g->nodes[ni].inputs[k] = u;
    } else if (cls == CLASS_CONCAT && is_const(g, t)) {
      int u = permute_const(s, t, err, &st);
      if (u < 0)
        return st;
      g->nodes[ni].inputs[k] = u;
    }
  }
  kn_node *n = &g->nodes[ni];
  switch (cls) {
  case CLASS_SPATIAL:
    kn_node_set_int(n, "layout", KN_LAYOUT_NHWC);
    break;
  case CLASS_CONCAT:
  case CLASS_AXIS: {
    int64_t def = n->op == KN_OP_SPLIT ? 0 : -1;
    int64_t a = kn_attr_int(n, "axis", def), na;
    if (!remap_axis(a, &na))
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad axis %lld",
                          (long long)a);
    kn_node_set_int(n, "axis", na);
    break;
  }
  case CLASS_REDUCE:
    if (kn_node_attr(n, "axes"))
      st = remap_axes_attr(n, "axes", err);
    else
      st = remap_axes_input(s, ni, 1, err);
    break;
  case CLASS_RESIZE:
    if (kn_node_attr(n, "axes")) {
      st = remap_axes_attr(n, "axes", err);
    } else {
      for (int k = 1; st == KESTREL_OK && k < n->num_inputs; k++)
        st = permute_list_input(s, ni, k, err);
    }
    break;
  case CLASS_PAD:
    if (n->num_inputs > 3 && n->inputs[3] >= 0) {
      st = remap_axes_input(s, ni, 3, err);
    } else if (n->num_inputs > 1 && n->inputs[1] >= 0) {
      st = permute_list_input(s, ni, 1, err);
    } else {
      const int64_t *p;
      const char *key = kn_node_attr(n, "pads") ? "pads" : "paddings";
      int count = kn_attr_ints(n, key, &p);
      if (count == 8) {
        int64_t v[8];
        memcpy(v, p, sizeof(v));
        permute_list(v, 8);
        kn_node_set_ints(n, key, v, 8);
      } else if (count) {
        return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "%d pads",
                            count);
      }
    }
    break;
  case CLASS_SLICE:
    if (n->num_inputs >= 3) {
      if (n->num_inputs > 3 && n->inputs[3] >= 0 &&
          !g->tensors[n->inputs[3]].optional_absent) {
        st = remap_axes_input(s, ni, 3, err);
      } else {
        /* Default axes are 0..len(starts)-1: write them out, remapped. */
        int64_t count = kn_tensor_numel(&g->tensors[n->inputs[1]]);
        int64_t vals[KN_MAX_DIMS];
        if (count > 4)
          return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad starts");
        for (int64_t i = 0; i < count; i++)
          vals[i] = nchw_axis_in_nhwc[i];
        char name[300];
        snprintf(name, sizeof(name), "%s/axes_nhwc", n->name);
        int u = int_const(s, name, vals, (int)count, err, &st);
        if (u < 0)
          return st;
        kn_node *m = &g->nodes[ni];
        if (m->num_inputs < 4) {
          int *in = realloc(m->inputs, sizeof(int) * 5);
          if (!in)
            return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
          m->inputs = in;
          m->num_inputs = 4;
        }
        m->inputs[3] = u;
      }
    } else {
      const int64_t *a;
      int count = kn_attr_ints(n, "axes", &a);
      if (count) {
        st = remap_axes_attr(n, "axes", err);
      } else {
        const int64_t *starts;
        int ns = kn_attr_ints(n, "starts", &starts);
        int64_t vals[4];
        if (ns > 4)
          return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad starts");
        for (int i = 0; i < ns; i++)
          vals[i] = nchw_axis_in_nhwc[i];
        kn_node_set_ints(n, "axes", vals, ns);
      }
    }
    break;
  default:
    break;
  }
  if (st != KESTREL_OK)
    return st;
  n = &g->nodes[ni];
  for (int k = 0; k < n->num_outputs; k++) {
    int t = n->outputs[k];
    if (t < 0 || g->tensors[t].ndim != 4)
      continue;
    permute_dims(g->tensors[t].dims, to_nhwc_perm);
    s->nhwc[t] = 1;
  }
  return KESTREL_OK;
}

static bool graph_is_nhwc_already(const kn_graph *g, int *nchw_spatial) {
  bool any_nhwc = false;
  *nchw_spatial = 0;
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead || class_of(g, n) != CLASS_SPATIAL)
      continue;
    if (kn_attr_int(n, "layout", KN_LAYOUT_NCHW) == KN_LAYOUT_NHWC)
      any_nhwc = true;
    else
      (*nchw_spatial)++;
  }
  return any_nhwc;
}

kestrel_status kn_pass_convert_layout_nhwc(kn_graph *g, int *changed,
                                           kestrel_error *err) {
  int nchw_spatial;
  if (graph_is_nhwc_already(g, &nchw_spatial) || nchw_spatial == 0) {
    kn_log(g, "convert_layout_nhwc: graph is already in one layout");
    return KESTREL_OK;
  }
  layout_state s;
  memset(&s, 0, sizeof(s));
  s.g = g;
  kestrel_status st = KESTREL_OK;
  if (!grow(&s)) {
    st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  int original = g->num_nodes;
  int converted = 0;
  for (int i = 0; i < original; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    op_class cls = class_of(g, n);
    if (convertible(&s, n, cls)) {
      st = convert_node(&s, i, cls, err);
      if (st != KESTREL_OK)
        goto done;
      converted++;
      continue;
    }
    /* This node needs NCHW: give it the NCHW twin of every NHWC input. */
    for (int k = 0; k < g->nodes[i].num_inputs; k++) {
      int t = g->nodes[i].inputs[k];
      if (t < 0 || !s.nhwc[t])
        continue;
      int u = get_nchw(&s, t, err, &st);
      if (u < 0)
        goto done;
      g->nodes[i].inputs[k] = u;
    }
  }
  /* Graph outputs keep their NCHW shape and name: the NHWC data moves to a
   * new tensor and a converting node writes the output. */
  for (int o = 0; o < g->num_outputs; o++) {
    int t = g->outputs[o];
    if (!s.nhwc[t])
      continue;
    char name[300];
    snprintf(name, sizeof(name), "%s/nhwc", g->tensors[t].name);
    int u = kn_edit_new_activation(g, name, t);
    if (u < 0 || !grow(&s)) {
      st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      goto done;
    }
    for (int i = 0; i < g->num_nodes; i++) {
      kn_node *n = &g->nodes[i];
      if (n->dead)
        continue;
      for (int k = 0; k < n->num_outputs; k++)
        if (n->outputs[k] == t)
          n->outputs[k] = u;
    }
    kn_edit_replace_uses(g, t, u);
    s.nhwc[u] = 1;
    s.nhwc[t] = 0;
    if (s.as_nchw[t] >= 0) {
      s.as_nchw[u] = s.as_nchw[t];
      s.as_nchw[t] = -1;
    }
    permute_dims(g->tensors[t].dims, to_nchw_perm);
    bool free_reorder = order_free(g->tensors[t].dims);
    int node;
    if (free_reorder) {
      snprintf(name, sizeof(name), "%s/nchw_shape", g->tensors[t].name);
      int64_t four = 4;
      int shape = kn_edit_new_const(g, name, KESTREL_DTYPE_I64, 1, &four);
      if (shape < 0 || !grow(&s)) {
        st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
        goto done;
      }
      memcpy(g->tensors[shape].data, g->tensors[t].dims, sizeof(int64_t) * 4);
      int in[2] = {u, shape};
      snprintf(name, sizeof(name), "%s/nchw", g->tensors[t].name);
      node = kn_edit_add_node(g, KN_OP_RESHAPE, name, in, 2, &t, 1);
      s.reshapes++;
    } else {
      snprintf(name, sizeof(name), "%s/nchw", g->tensors[t].name);
      node = kn_edit_add_node(g, KN_OP_TRANSPOSE, name, &u, 1, &t, 1);
      if (node >= 0)
        kn_node_set_ints(&g->nodes[node], "perm", to_nchw_perm, 4);
      s.transposes++;
      kn_log(g, "convert_layout_nhwc: transpose to NCHW for output '%s'",
             g->tensors[t].name);
    }
    if (node < 0) {
      st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      goto done;
    }
  }
  kn_log(g,
         "convert_layout_nhwc: %d nodes now NHWC, %d transposes, %d free "
         "reshapes at layout boundaries, %d constants permuted",
         converted, s.transposes, s.reshapes, s.constants);
  *changed += converted;
done:
  free(s.nhwc);
  free(s.as_nhwc);
  free(s.as_nchw);
  free(s.permuted);
  return st;
}
