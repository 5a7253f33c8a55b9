/* The INT8 rewrite of a prepared FP32 graph.
 *
 * Every node of the supported set becomes an int8 node: its float
 * activations turn into I8 tensors carrying calibrated (scale, zero point),
 * its weights into per-output-channel symmetric I8 constants and its bias
 * into an I32 constant with scale in_scale * w_scale. Nodes outside the set
 * (or kept float on request) read a DequantizeLinear of their int8 inputs;
 * int8 nodes reading a float tensor read a QuantizeLinear of it. Graph
 * inputs stay float (a QuantizeLinear follows), graph outputs are float (a
 * DequantizeLinear produces them under their original names).
 *
 * The reference ops already run such graphs (dequantize, compute,
 * requantize; int32 accumulation in conv/gemm), and the fast kernels take
 * over the same graph. */
#include "quant_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum op_class {
  OPC_NONE = 0,
  OPC_WEIGHTED, /* Conv, ConvTranspose, Gemm, MatMul (constant weights) */
  OPC_BINARY,   /* Add/Sub/Mul/Div: constant operands quantized per tensor */
  OPC_COMPUTE,  /* own calibrated output range */
  OPC_FIXED01,  /* output in [0, 1] by definition */
  OPC_STRICT,   /* byte copies: output shares the input's parameters */
  OPC_SOFT,     /* shares the input's parameters, may requantize */
  OPC_CONCAT,
} op_class;

static op_class class_of(kn_op op) {
  switch (op) {
  case KN_OP_CONV:
  case KN_OP_CONV_TRANSPOSE:
  case KN_OP_GEMM:
  case KN_OP_MATMUL: return OPC_WEIGHTED;
  case KN_OP_ADD:
  case KN_OP_SUB:
  case KN_OP_MUL:
  case KN_OP_DIV: return OPC_BINARY;
  case KN_OP_RELU:
  case KN_OP_CLIP:
  case KN_OP_LEAKY_RELU:
  case KN_OP_HARDSWISH:
  case KN_OP_TANH:
  case KN_OP_AVGPOOL:
  case KN_OP_GLOBAL_AVGPOOL: return OPC_COMPUTE;
  case KN_OP_SIGMOID:
  case KN_OP_HARDSIGMOID:
  case KN_OP_SOFTMAX: return OPC_FIXED01;
  case KN_OP_RESHAPE:
  case KN_OP_FLATTEN:
  case KN_OP_SQUEEZE:
  case KN_OP_UNSQUEEZE:
  case KN_OP_TRANSPOSE:
  case KN_OP_IDENTITY:
  case KN_OP_DROPOUT:
  case KN_OP_SLICE:
  case KN_OP_SPLIT:
  case KN_OP_DEPTH_TO_SPACE:
  case KN_OP_SPACE_TO_DEPTH:
  case KN_OP_PAD: return OPC_STRICT;
  case KN_OP_MAXPOOL:
  case KN_OP_GLOBAL_MAXPOOL:
  case KN_OP_RESIZE: return OPC_SOFT;
  case KN_OP_CONCAT: return OPC_CONCAT;
  default: return OPC_NONE;
  }
}

static bool is_act(const kn_tensor *t) {
  return t && !t->optional_absent && t->kind != KN_TENSOR_CONSTANT;
}

static bool is_f32_const(const kn_tensor *t) {
  return t && t->kind == KN_TENSOR_CONSTANT && t->data &&
         t->dtype == KESTREL_DTYPE_F32;
}

int kq_node_quantizable(const kn_graph *g0, const kn_node *n) {
  kn_graph *g = (kn_graph *)g0;
  op_class c = class_of(n->op);
  if (c == OPC_NONE || n->num_outputs < 1)
    return 0;
  for (int k = 0; k < n->num_outputs; k++) {
    kn_tensor *t = kn_out(g, n, k);
    if (!t || t->optional_absent) {
      if (k == 0)
        return 0;
      continue;
    }
    if (t->dtype != KESTREL_DTYPE_F32)
      return 0;
  }
  /* Data inputs must be float activations (or float constants). */
  int acts = 0;
  for (int k = 0; k < n->num_inputs; k++) {
    kn_tensor *t = kn_in(g, n, k);
    if (is_act(t)) {
      if (t->dtype != KESTREL_DTYPE_F32)
        return 0;
      acts++;
    }
  }
  if (!acts)
    return 0;
  kn_tensor *x = kn_in(g, n, 0);
  if (!is_act(x))
    return n->op == KN_OP_ADD || n->op == KN_OP_MUL || n->op == KN_OP_CONCAT;
  switch (c) {
  case OPC_WEIGHTED: {
    kn_tensor *w = kn_in(g, n, 1), *b = n->num_inputs > 2 ? kn_in(g, n, 2) : NULL;
    if (!is_f32_const(w) || acts != 1)
      return 0;
    if (b && !b->optional_absent && !is_f32_const(b))
      return 0;
    if (n->op == KN_OP_MATMUL)
      return x->ndim == 2 && w->ndim == 2 && n->num_inputs == 2;
    if (n->op == KN_OP_GEMM) {
      if (w->ndim != 2 || kn_attr_float(n, "alpha", 1.0f) != 1.0f ||
          kn_attr_float(n, "beta", 1.0f) != 1.0f)
        return 0;
      int64_t nn = kn_attr_int(n, "transB", 0) ? w->dims[0] : w->dims[1];
      if (b && !b->optional_absent &&
          (kn_tensor_numel(b) != nn || (b->ndim == 2 && b->dims[0] != 1)))
        return 0;
    }
    return 1;
  }
  case OPC_BINARY:
    if (n->num_inputs != 2)
      return 0;
    for (int k = 0; k < 2; k++) {
      kn_tensor *t = kn_in(g, n, k);
      if (!is_act(t) && !is_f32_const(t))
        return 0;
    }
    return 1;
  case OPC_CONCAT:
    for (int k = 0; k < n->num_inputs; k++) {
      kn_tensor *t = kn_in(g, n, k);
      if (!is_act(t) && !is_f32_const(t))
        return 0;
    }
    return 1;
  default:
    /* Other inputs (Clip bounds, shapes, pads, scales) must be constants. */
    return acts == 1;
  }
}

/* ---- building ----------------------------------------------------------- */

typedef struct builder {
  kn_graph *q;
  int nt0;
  float *scale;  /* per original tensor: activation parameters */
  int32_t *zero;
  bool *has_param;
  bool *home_i8; /* the tensor itself becomes I8 */
  int *qcache, *dqcache;
  int *consumers;
  const kq_range *ranges;
  kestrel_error *err;
} builder;

static char *strcat3(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *s = malloc(la + lb + 1);
  if (s) {
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
  }
  return s;
}

/* A new tensor named base+suffix; -1 on OOM. */
static int new_tensor(kn_graph *q, const char *base, const char *suffix) {
  char *name = strcat3(base, suffix);
  if (!name)
    return -1;
  int t = kn_graph_add_tensor(q, name);
  free(name);
  return t;
}

static int new_node(kn_graph *q, kn_op op, const char *base,
                    const char *suffix, const int *in, int nin, const int *out,
                    int nout) {
  char *name = strcat3(base, suffix);
  if (!name)
    return -1;
  int k = kn_graph_add_node(q, op, name, NULL, in, nin, out, nout);
  free(name);
  return k;
}

static bool set_param_from_range(builder *b, int t, double lo, double hi) {
  kq_asym_params(lo, hi, &b->scale[t], &b->zero[t]);
  b->has_param[t] = true;
  return true;
}

/* Parameters of an activation tensor (its calibrated range). */
static bool ensure_param(builder *b, int t) {
  if (b->has_param[t])
    return true;
  if (t >= b->nt0 || !b->ranges[t].has_range)
    return false;
  return set_param_from_range(b, t, b->ranges[t].lo, b->ranges[t].hi);
}

/* The I8 version of a float-home activation: QuantizeLinear(t). */
static int get_q(builder *b, int t) {
  if (b->qcache[t] >= 0)
    return b->qcache[t];
  if (!ensure_param(b, t))
    return -1;
  kn_graph *q = b->q;
  int qt = new_tensor(q, q->tensors[t].name, "_q");
  if (qt < 0)
    return -1;
  kn_tensor *s = &q->tensors[t], *d = &q->tensors[qt];
  kn_set_shape(d, KESTREL_DTYPE_I8, s->ndim, s->dims);
  if (kn_tensor_set_quant(d, -1, 1, &b->scale[t], &b->zero[t]))
    return -1;
  if (new_node(q, KN_OP_QUANTIZE_LINEAR, q->tensors[t].name, "_quantize", &t,
               1, &qt, 1) < 0)
    return -1;
  b->qcache[t] = qt;
  return qt;
}

/* The float version of an I8-home activation: DequantizeLinear(t). */
static int get_dq(builder *b, int t) {
  if (b->dqcache[t] >= 0)
    return b->dqcache[t];
  kn_graph *q = b->q;
  int dt = new_tensor(q, q->tensors[t].name, "_dq");
  if (dt < 0)
    return -1;
  kn_tensor *s = &q->tensors[t], *d = &q->tensors[dt];
  kn_set_shape(d, KESTREL_DTYPE_F32, s->ndim, s->dims);
  if (new_node(q, KN_OP_DEQUANTIZE_LINEAR, q->tensors[t].name, "_dequantize",
               &t, 1, &dt, 1) < 0)
    return -1;
  b->dqcache[t] = dt;
  return dt;
}

/* Per-channel symmetric int8 weights along axis (-1: per tensor). Bias
 * scales must stay representable: bias/(x_scale*w_scale) < 2^30. */
static int quantize_weights(kn_graph *q, int wt, int axis, const float *bias,
                            float x_scale, float **scales_out) {
  kn_tensor *w = &q->tensors[wt];
  int64_t ch = axis < 0 ? 1 : w->dims[axis];
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; d++)
    outer *= w->dims[d];
  for (int d = axis + 1; axis >= 0 && d < w->ndim; d++)
    inner *= w->dims[d];
  if (axis < 0)
    inner = kn_tensor_numel(w);
  float *sc = calloc((size_t)ch + 1, sizeof(float));
  if (!sc)
    return -1;
  const float *wv = w->data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t c = 0; c < ch; c++)
      for (int64_t i = 0; i < inner; i++) {
        float a = fabsf(wv[(o * ch + c) * inner + i]);
        if (a > sc[c])
          sc[c] = a;
      }
  for (int64_t c = 0; c < ch; c++) {
    sc[c] /= 127.0f;
    if (bias && axis >= 0) {
      float need = fabsf(bias[c]) / (x_scale * 1073741824.0f);
      if (need > sc[c])
        sc[c] = need;
    }
    if (!(sc[c] > 0))
      sc[c] = 1.0f / 127.0f;
  }
  int nwt = new_tensor(q, q->tensors[wt].name, "_int8");
  if (nwt < 0) {
    free(sc);
    return -1;
  }
  w = &q->tensors[wt];
  kn_tensor *d = &q->tensors[nwt];
  int64_t dims[KN_MAX_DIMS];
  memcpy(dims, w->dims, sizeof(dims));
  int8_t *out = kn_tensor_alloc_data(d, KESTREL_DTYPE_I8, w->ndim, dims);
  if (!out) {
    free(sc);
    return -1;
  }
  d->data_owned = true;
  wv = q->tensors[wt].data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t c = 0; c < ch; c++)
      for (int64_t i = 0; i < inner; i++) {
        int64_t idx = (o * ch + c) * inner + i;
        long v = lrintf(wv[idx] / sc[c]);
        out[idx] = (int8_t)(v < -127 ? -127 : v > 127 ? 127 : v);
      }
  int32_t *zeros = calloc((size_t)ch + 1, sizeof(int32_t));
  int rc = zeros ? kn_tensor_set_quant(d, axis, (int)ch, sc, zeros) : -1;
  free(zeros);
  if (scales_out)
    *scales_out = sc;
  else
    free(sc);
  return rc ? -1 : nwt;
}

/* int32 bias with scale x_scale * w_scale[c] (rounded to nearest). */
static int quantize_bias(kn_graph *q, int bt, float x_scale, const float *ws,
                         int64_t nws, int64_t m) {
  const float *bv = q->tensors[bt].data;
  int nbt = new_tensor(q, q->tensors[bt].name, "_int32");
  if (nbt < 0)
    return -1;
  bv = q->tensors[bt].data;
  kn_tensor *d = &q->tensors[nbt];
  int32_t *out = kn_tensor_alloc_data(d, KESTREL_DTYPE_I32, 1, &m);
  float *sc = malloc(sizeof(float) * (size_t)(m + 1));
  int32_t *zeros = calloc((size_t)m + 1, sizeof(int32_t));
  if (!out || !sc || !zeros) {
    free(sc);
    free(zeros);
    return -1;
  }
  d->data_owned = true;
  for (int64_t c = 0; c < m; c++) {
    sc[c] = x_scale * ws[nws > 1 ? c : 0];
    double v = rint((double)bv[c] / (double)sc[c]);
    if (v > 2147483647.0)
      v = 2147483647.0;
    if (v < -2147483648.0)
      v = -2147483648.0;
    out[c] = (int32_t)v;
  }
  int rc = kn_tensor_set_quant(d, 0, (int)m, sc, zeros);
  free(sc);
  free(zeros);
  return rc ? -1 : nbt;
}

/* A float constant as a per-tensor int8 constant with given parameters
 * (own range when scale is 0). */
static int quantize_const(kn_graph *q, int ct, float scale, int32_t zero) {
  kn_tensor *c = &q->tensors[ct];
  int64_t n = kn_tensor_numel(c);
  const float *v = c->data;
  if (scale == 0) {
    double lo = 0, hi = 0;
    for (int64_t i = 0; i < n; i++) {
      lo = v[i] < lo ? v[i] : lo;
      hi = v[i] > hi ? v[i] : hi;
    }
    kq_asym_params(lo, hi, &scale, &zero);
  }
  int nct = new_tensor(q, c->name, "_int8");
  if (nct < 0)
    return -1;
  c = &q->tensors[ct];
  v = c->data;
  kn_tensor *d = &q->tensors[nct];
  int64_t dims[KN_MAX_DIMS];
  memcpy(dims, c->dims, sizeof(dims));
  int8_t *out = kn_tensor_alloc_data(d, KESTREL_DTYPE_I8, c->ndim, dims);
  if (!out)
    return -1;
  d->data_owned = true;
  for (int64_t i = 0; i < n; i++) {
    long r = lrintf(v[i] / scale) + zero;
    out[i] = (int8_t)(r < -128 ? -128 : r > 127 ? 127 : r);
  }
  return kn_tensor_set_quant(d, -1, 1, &scale, &zero) ? -1 : nct;
}

/* Bias correction (Nagel et al., 2019): int8 weights change each output
 * channel's response to the input's mean, which on large flat image areas
 * is a systematic offset that later layers amplify. Returns per output
 * channel E[(w_q - w) . x] from the calibrated input channel means, or NULL
 * when they are unknown (caller frees). Conv only. */
static float *bias_correction(const builder *b, const kn_node *n, int x,
                              int wt, int nwt, int64_t m) {
  if (n->op != KN_OP_CONV || x >= b->nt0)
    return NULL;
  const kq_range *r = &b->ranges[x];
  bool nhwc = kn_attr_int(n, "layout", KN_LAYOUT_NCHW) == KN_LAYOUT_NHWC;
  const double *sum = nhwc ? r->sum_clast : r->sum_c1;
  int64_t nc = nhwc ? r->n_clast : r->n_c1;
  double count = nhwc ? r->count_clast : r->count_c1;
  const kn_tensor *w = &b->q->tensors[wt], *wq = &b->q->tensors[nwt];
  int64_t group = kn_attr_int(n, "group", 1);
  if (!sum || count <= 0 || w->ndim < 3 || group < 1 || w->dims[0] != m ||
      m % group != 0 || nc != w->dims[1] * group)
    return NULL;
  int64_t cg = w->dims[1], mg = m / group, taps = 1;
  for (int d = 2; d < w->ndim; d++)
    taps *= w->dims[d];
  float *corr = calloc((size_t)m + 1, sizeof(float));
  if (!corr)
    return NULL;
  const float *wf = w->data;
  const int8_t *wi = wq->data;
  for (int64_t o = 0; o < m; o++) {
    float sc = wq->q_scale[wq->q_count > 1 ? o : 0];
    int64_t g = o / mg;
    double acc = 0;
    for (int64_t c = 0; c < cg; c++) {
      double mean = sum[g * cg + c] / count;
      int64_t base = (o * cg + c) * taps;
      double dw = 0;
      for (int64_t k = 0; k < taps; k++)
        dw += (double)wi[base + k] * sc - wf[base + k];
      acc += dw * mean;
    }
    corr[o] = (float)acc;
  }
  return corr;
}

static kestrel_status oom(builder *b) {
  return kn_fail(b->err, KESTREL_ERROR_OUT_OF_MEMORY,
                 "out of memory quantizing");
}

/* Rewrites node i (int8) of b->q: constants quantized, float inputs
 * through QuantizeLinear. */
static kestrel_status rewrite_int8_node(builder *b, int i) {
  kn_graph *q = b->q;
  kn_node *n = &q->nodes[i];
  op_class c = class_of(n->op);
  int x = n->inputs[0];
  if (c == OPC_WEIGHTED) {
    int xq = b->home_i8[x] ? x : get_q(b, x);
    if (xq < 0)
      return oom(b);
    n = &q->nodes[i];
    n->inputs[0] = xq;
    float xs = b->scale[x];
    int wt = n->inputs[1];
    int bt = n->num_inputs > 2 ? n->inputs[2] : -1;
    if (bt >= 0 && q->tensors[bt].optional_absent)
      bt = -1;
    kn_tensor *w = &q->tensors[wt];
    int axis = 0;
    int64_t m = w->dims[0];
    int64_t group = kn_attr_int(n, "group", 1);
    if (n->op == KN_OP_CONV_TRANSPOSE) {
      axis = group == 1 ? 1 : -1;
      m = w->dims[1] * group;
    } else if (n->op == KN_OP_GEMM) {
      bool tb = kn_attr_int(n, "transB", 0) != 0;
      axis = tb ? 0 : 1;
      m = tb ? w->dims[0] : w->dims[1];
    } else if (n->op == KN_OP_MATMUL) {
      axis = 1;
      m = w->dims[1];
    }
    const float *bias = bt >= 0 ? q->tensors[bt].data : NULL;
    float *ws = NULL;
    int nwt = quantize_weights(q, wt, axis, axis >= 0 ? bias : NULL, xs, &ws);
    if (nwt < 0)
      return oom(b);
    int nbt = -1;
    float *corr = bias_correction(b, &q->nodes[i], x, wt, nwt, m);
    if (corr) {
      /* Corrected float bias (a new constant; the old one may be shared). */
      int cb = new_tensor(q, q->nodes[i].name, "_bias_corrected");
      float *cv = cb >= 0 ? kn_tensor_alloc_data(&q->tensors[cb],
                                                 KESTREL_DTYPE_F32, 1, &m)
                          : NULL;
      if (!cv) {
        free(corr);
        free(ws);
        return oom(b);
      }
      q->tensors[cb].data_owned = true;
      const float *old = bt >= 0 ? q->tensors[bt].data : NULL;
      for (int64_t o = 0; o < m; o++)
        cv[o] = (old ? old[o] : 0.0f) - corr[o];
      free(corr);
      if (bt < 0) {
        n = &q->nodes[i];
        int *ins = realloc(n->inputs, sizeof(int) * 3);
        if (!ins) {
          free(ws);
          return oom(b);
        }
        n->inputs = ins;
        n->inputs[2] = cb;
        n->num_inputs = 3;
      }
      bt = cb;
    }
    if (bt >= 0) {
      nbt = quantize_bias(q, bt, xs, ws, axis < 0 ? 1 : m, m);
      if (nbt < 0) {
        free(ws);
        return oom(b);
      }
    }
    free(ws);
    n = &q->nodes[i];
    n->inputs[1] = nwt;
    if (nbt >= 0)
      n->inputs[2] = nbt;
    if (n->op == KN_OP_MATMUL) {
      /* Gemm has the int8 path (and the bias); MatMul with a constant 2-D
       * B is the same product. */
      n->op = KN_OP_GEMM;
      free(n->op_name);
      n->op_name = strcat3("Gemm", "");
    }
    return KESTREL_OK;
  }
  for (int k = 0; k < n->num_inputs; k++) {
    int t = n->inputs[k];
    if (t < 0 || q->tensors[t].optional_absent)
      continue;
    kn_tensor *tt = &q->tensors[t];
    if (tt->kind == KN_TENSOR_CONSTANT) {
      if (c == OPC_BINARY || c == OPC_CONCAT) {
        int out = n->outputs[0];
        int nct = c == OPC_CONCAT
                      ? quantize_const(q, t, b->scale[out], b->zero[out])
                      : quantize_const(q, t, 0, 0);
        if (nct < 0)
          return oom(b);
        n = &q->nodes[i];
        n->inputs[k] = nct;
      }
      continue;
    }
    if (!b->home_i8[t]) {
      int qt = get_q(b, t);
      if (qt < 0)
        return kn_node_fail(b->err, KESTREL_ERROR_INTERNAL, n,
                            "input '%s' was never calibrated", tt->name);
      n = &q->nodes[i];
      n->inputs[k] = qt;
    }
  }
  return KESTREL_OK;
}

/* Drops the data of constants no live node reads any more (the float
 * weights replaced by int8 ones), so saved files do not carry them. */
void kq_drop_unused_constants(kn_graph *q) {
  char *used = calloc((size_t)q->num_tensors + 1, 1);
  if (!used)
    return;
  for (int i = 0; i < q->num_nodes; i++) {
    kn_node *n = &q->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_inputs; k++)
      if (n->inputs[k] >= 0)
        used[n->inputs[k]] = 1;
  }
  for (int t = 0; t < q->num_tensors; t++) {
    kn_tensor *x = &q->tensors[t];
    if (x->kind != KN_TENSOR_CONSTANT || used[t] || x->is_output)
      continue;
    if (x->data_owned)
      free(x->data);
    x->data = NULL;
    x->data_owned = false;
    x->ndim = 1;
    x->dims[0] = 0;
  }
  free(used);
}

kestrel_status kq_build_static(const kn_graph *g, const kq_range *ranges,
                               const unsigned char *keep_float, int verbose,
                               kn_graph **out, kestrel_error *err) {
  *out = NULL;
  kn_graph *q = kq_graph_clone(g);
  if (!q)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  q->verbose = verbose;
  int nt0 = q->num_tensors, nn0 = q->num_nodes;
  builder b = {.q = q, .nt0 = nt0, .ranges = ranges, .err = err};
  b.scale = calloc((size_t)nt0 + 1, sizeof(float));
  b.zero = calloc((size_t)nt0 + 1, sizeof(int32_t));
  b.has_param = calloc((size_t)nt0 + 1, sizeof(bool));
  b.home_i8 = calloc((size_t)nt0 + 1, sizeof(bool));
  b.qcache = malloc(sizeof(int) * ((size_t)nt0 + 1));
  b.dqcache = malloc(sizeof(int) * ((size_t)nt0 + 1));
  b.consumers = calloc((size_t)nt0 + 1, sizeof(int));
  unsigned char *int8 = calloc((size_t)nn0 + 1, 1);
  kestrel_status st = KESTREL_OK;
  if (!b.scale || !b.zero || !b.has_param || !b.home_i8 || !b.qcache ||
      !b.dqcache || !b.consumers || !int8) {
    st = oom(&b);
    goto done;
  }
  for (int t = 0; t < nt0; t++)
    b.qcache[t] = b.dqcache[t] = -1;

  /* Which nodes run in int8. Clone order = g's live nodes in order. */
  int live = 0, n_int8 = 0;
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *gn = &g->nodes[i];
    if (gn->dead)
      continue;
    kn_node *n = &q->nodes[live];
    bool ok = !(keep_float && keep_float[i]) && kq_node_quantizable(q, n);
    for (int k = 0; ok && k < n->num_outputs; k++) {
      int t = n->outputs[k];
      op_class c = class_of(n->op);
      if (c != OPC_STRICT && c != OPC_SOFT && c != OPC_FIXED01 &&
          !q->tensors[t].optional_absent && !ranges[t].has_range)
        ok = false; /* never observed: leave it float */
    }
    int8[live] = ok;
    n_int8 += ok;
    if (!ok && verbose)
      kn_log(q, "quantize: node '%s' (%s) stays float%s", n->name,
             n->op_name, keep_float && keep_float[i] ? " (asked)" : "");
    live++;
  }
  for (int i = 0; i < nn0; i++) {
    kn_node *n = &q->nodes[i];
    for (int k = 0; k < n->num_inputs; k++)
      if (n->inputs[k] >= 0)
        b.consumers[n->inputs[k]]++;
  }

  /* Output parameters, in topological order. */
  for (int i = 0; i < nn0; i++) {
    if (!int8[i])
      continue;
    kn_node *n = &q->nodes[i];
    op_class c = class_of(n->op);
    for (int k = 0; k < n->num_outputs; k++) {
      int t = n->outputs[k];
      if (q->tensors[t].optional_absent)
        continue;
      if (c == OPC_STRICT || c == OPC_SOFT) {
        int x = n->inputs[0];
        if (!ensure_param(&b, x)) {
          st = kn_node_fail(err, KESTREL_ERROR_INTERNAL, n,
                            "input '%s' was never calibrated",
                            q->tensors[x].name);
          goto done;
        }
        b.scale[t] = b.scale[x];
        b.zero[t] = b.zero[x];
        b.has_param[t] = true;
      } else if (c == OPC_FIXED01) {
        set_param_from_range(&b, t, 0.0, 1.0);
      } else {
        ensure_param(&b, t);
      }
      b.home_i8[t] = true;
    }
  }
  /* Concat inputs made only for the concat take its parameters, so the
   * concat is a copy; the others are requantized by it. */
  for (int i = 0; i < nn0; i++) {
    kn_node *n = &q->nodes[i];
    if (!int8[i] || n->op != KN_OP_CONCAT)
      continue;
    int y = n->outputs[0];
    for (int k = 0; k < n->num_inputs; k++) {
      int t = n->inputs[k];
      kn_tensor *tt = &q->tensors[t];
      int p = -1;
      for (int j = 0; j < nn0 && p < 0; j++)
        for (int o = 0; o < q->nodes[j].num_outputs; o++)
          if (q->nodes[j].outputs[o] == t)
            p = j;
      if (p < 0 || !int8[p] || !b.home_i8[t] || b.consumers[t] != 1 ||
          tt->is_output || class_of(q->nodes[p].op) == OPC_STRICT)
        continue;
      b.scale[t] = b.scale[y];
      b.zero[t] = b.zero[y];
    }
  }
  for (int t = 0; t < nt0; t++) {
    if (!b.home_i8[t])
      continue;
    kn_tensor *tt = &q->tensors[t];
    tt->dtype = KESTREL_DTYPE_I8;
    if (kn_tensor_set_quant(tt, -1, 1, &b.scale[t], &b.zero[t])) {
      st = oom(&b);
      goto done;
    }
  }

  /* Rewire. Nodes are appended as we go: index, never hold pointers. */
  for (int i = 0; i < nn0; i++) {
    if (int8[i]) {
      if ((st = rewrite_int8_node(&b, i)))
        goto done;
      continue;
    }
    for (int k = 0; k < q->nodes[i].num_inputs; k++) {
      int t = q->nodes[i].inputs[k];
      if (t < 0 || t >= nt0 || !b.home_i8[t])
        continue;
      int dt = get_dq(&b, t);
      if (dt < 0) {
        st = oom(&b);
        goto done;
      }
      q->nodes[i].inputs[k] = dt;
    }
  }
  /* Outputs: float under their original names. */
  for (int i = 0; i < q->num_outputs; i++) {
    int t = q->outputs[i];
    if (t >= nt0 || !b.home_i8[t])
      continue;
    char *orig = q->tensors[t].name;
    char *renamed = strcat3(orig, "_int8");
    int ft = renamed ? kn_graph_add_tensor(q, orig) : -1;
    if (ft < 0) {
      free(renamed);
      st = oom(&b);
      goto done;
    }
    q->tensors[t].name = renamed;
    free(orig);
    q->tensors[t].is_output = false;
    kn_tensor *s = &q->tensors[t];
    kn_set_shape(&q->tensors[ft], KESTREL_DTYPE_F32, s->ndim, s->dims);
    if (new_node(q, KN_OP_DEQUANTIZE_LINEAR, q->tensors[ft].name,
                 "_dequantize", &t, 1, &ft, 1) < 0) {
      st = oom(&b);
      goto done;
    }
    q->outputs[i] = ft;
  }
  kq_drop_unused_constants(q);
  kn_log(q, "quantize: %d of %d nodes in int8", n_int8, nn0);
  st = kn_graph_prepare(q, NULL, err);
done:
  free(b.scale);
  free(b.zero);
  free(b.has_param);
  free(b.home_i8);
  free(b.qcache);
  free(b.dqcache);
  free(b.consumers);
  free(int8);
  if (st != KESTREL_OK) {
    kn_graph_free(q);
    return st;
  }
  *out = q;
  return KESTREL_OK;
}
