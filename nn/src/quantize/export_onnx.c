/* ONNX export in QDQ form (opset 13), written with the protobuf-c code
 * generated from onnx.proto.
 *
 * An int8 activation T becomes: its producer computes float "T__f", a
 * QuantizeLinear with T's scale/zero point gives int8 "T", and consumers
 * read "T__dq" = DequantizeLinear(T). Int8 weights are int8 initializers
 * behind a per-axis DequantizeLinear, int32 biases likewise. ONNX Runtime
 * recognizes these patterns and runs its own int8 kernels, so it executes
 * the same INT8 model Kestrel does.
 *
 * Kestrel-only node features are spelled out: a fused activation becomes
 * the ONNX activation op after the node, a fused residual an Add. Nodes in
 * NHWC layout ("layout" = 1, after `kestrel compile` or from TFLite) read a
 * Transpose to NCHW and write through a Transpose back, which keeps every
 * ONNX op in its only layout; ONNX Runtime's optimizer cancels the pairs.
 * Weights packed for Kestrel's kernels cannot be exported. */
#include "quant_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "ops/q8_requant.h"

/* ---- a tiny allocation pool: everything is freed at the end ------------- */

typedef struct exporter {
  void **blocks;
  size_t nblocks, capblocks;
  Onnx__NodeProto **nodes;
  size_t nnodes, capnodes;
  Onnx__TensorProto **inits;
  size_t ninits, capinits;
  const kn_graph *g;
  int oom;
} exporter;

static void *palloc(exporter *e, size_t n) {
  if (e->oom)
    return NULL;
  if (e->nblocks == e->capblocks) {
    size_t cap = e->capblocks ? e->capblocks * 2 : 256;
    void **b = realloc(e->blocks, cap * sizeof(void *));
    if (!b) {
      e->oom = 1;
      return NULL;
    }
    e->blocks = b;
    e->capblocks = cap;
  }
  void *p = calloc(1, n ? n : 1);
  if (!p) {
    e->oom = 1;
    return NULL;
  }
  e->blocks[e->nblocks++] = p;
  return p;
}

static char *pfmt(exporter *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *pfmt(exporter *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = n >= 0 ? palloc(e, (size_t)n + 1) : NULL;
  if (!s)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

static int push(exporter *e, void ***arr, size_t *n, size_t *cap, void *v) {
  if (!v || e->oom)
    return -1;
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    void **a = realloc(*arr, c * sizeof(void *));
    if (!a) {
      e->oom = 1;
      return -1;
    }
    *arr = a;
    *cap = c;
  }
  (*arr)[(*n)++] = v;
  return 0;
}

/* ---- building blocks ------------------------------------------------------ */

static int onnx_type(kestrel_dtype dt) {
  switch (dt) {
  case KESTREL_DTYPE_F32: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  case KESTREL_DTYPE_F16: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
  case KESTREL_DTYPE_I8: return ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
  case KESTREL_DTYPE_U8: return ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
  case KESTREL_DTYPE_I32: return ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
  case KESTREL_DTYPE_I64: return ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
  case KESTREL_DTYPE_BOOL: return ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
  case KESTREL_DTYPE_F64: return ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
  case KESTREL_DTYPE_I16: return ONNX__TENSOR_PROTO__DATA_TYPE__INT16;
  default: return 0;
  }
}

/* An initializer holding a copy of bytes (little-endian raw_data). */
static int add_init(exporter *e, const char *name, kestrel_dtype dt, int ndim,
                    const int64_t *dims, const void *data, size_t bytes) {
  Onnx__TensorProto *t = palloc(e, sizeof(*t));
  if (!t)
    return -1;
  onnx__tensor_proto__init(t);
  t->name = pfmt(e, "%s", name);
  t->has_data_type = 1;
  t->data_type = onnx_type(dt);
  t->n_dims = (size_t)ndim;
  t->dims = palloc(e, sizeof(int64_t) * (size_t)(ndim + 1));
  void *copy = palloc(e, bytes);
  if (!t->name || !t->dims || !copy)
    return -1;
  for (int i = 0; i < ndim; i++)
    t->dims[i] = dims[i];
  if (bytes)
    memcpy(copy, data, bytes);
  t->has_raw_data = 1;
  t->raw_data.len = bytes;
  t->raw_data.data = copy;
  return push(e, (void ***)&e->inits, &e->ninits, &e->capinits, t);
}

static int add_scalar_f32(exporter *e, const char *name, float v) {
  return add_init(e, name, KESTREL_DTYPE_F32, 0, NULL, &v, sizeof(v));
}

static Onnx__NodeProto *add_node(exporter *e, const char *op, const char *name,
                                 const char *const *in, int nin,
                                 const char *const *out, int nout) {
  Onnx__NodeProto *n = palloc(e, sizeof(*n));
  if (!n)
    return NULL;
  onnx__node_proto__init(n);
  n->op_type = pfmt(e, "%s", op);
  n->name = pfmt(e, "%s", name);
  n->input = palloc(e, sizeof(char *) * (size_t)(nin + 1));
  n->output = palloc(e, sizeof(char *) * (size_t)(nout + 1));
  if (!n->op_type || !n->name || !n->input || !n->output)
    return NULL;
  for (int i = 0; i < nin; i++)
    n->input[i] = pfmt(e, "%s", in[i] ? in[i] : "");
  for (int i = 0; i < nout; i++)
    n->output[i] = pfmt(e, "%s", out[i]);
  n->n_input = (size_t)nin;
  n->n_output = (size_t)nout;
  if (push(e, (void ***)&e->nodes, &e->nnodes, &e->capnodes, n))
    return NULL;
  return n;
}

static Onnx__AttributeProto *new_attr(exporter *e, Onnx__NodeProto *n,
                                      const char *name) {
  Onnx__AttributeProto *a = palloc(e, sizeof(*a));
  Onnx__AttributeProto **arr =
      palloc(e, sizeof(void *) * (n->n_attribute + 1));
  if (!a || !arr)
    return NULL;
  onnx__attribute_proto__init(a);
  a->name = pfmt(e, "%s", name);
  if (n->n_attribute)
    memcpy(arr, n->attribute, sizeof(void *) * n->n_attribute);
  arr[n->n_attribute++] = a;
  n->attribute = arr;
  a->has_type = 1;
  return a;
}

static void attr_int(exporter *e, Onnx__NodeProto *n, const char *name,
                     int64_t v) {
  Onnx__AttributeProto *a = new_attr(e, n, name);
  if (!a)
    return;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  a->has_i = 1;
  a->i = v;
}

static void attr_float(exporter *e, Onnx__NodeProto *n, const char *name,
                       float v) {
  Onnx__AttributeProto *a = new_attr(e, n, name);
  if (!a)
    return;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  a->has_f = 1;
  a->f = v;
}

static void attr_ints(exporter *e, Onnx__NodeProto *n, const char *name,
                      const int64_t *v, int count) {
  Onnx__AttributeProto *a = new_attr(e, n, name);
  int64_t *c = palloc(e, sizeof(int64_t) * (size_t)(count + 1));
  if (!a || !c)
    return;
  memcpy(c, v, sizeof(int64_t) * (size_t)count);
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  a->n_ints = (size_t)count;
  a->ints = c;
}

/* Kestrel's own attributes, which ONNX does not know. */
static int internal_attr(const char *name) {
  return !strcmp(name, "layout") || !strncmp(name, "activation", 10) ||
         !strcmp(name, "residual") || !strncmp(name, "packed", 6) ||
         !strncmp(name, "sum_", 4) || !strcmp(name, "dynamic");
}

static void copy_attrs(exporter *e, Onnx__NodeProto *o, const kn_node *n) {
  for (int i = 0; i < n->num_attrs; i++) {
    const kn_attr *a = &n->attrs[i];
    if (internal_attr(a->name))
      continue;
    Onnx__AttributeProto *x = new_attr(e, o, a->name);
    if (!x)
      return;
    switch (a->type) {
    case KN_ATTR_INT:
      x->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
      x->has_i = 1;
      x->i = a->i;
      break;
    case KN_ATTR_FLOAT:
      x->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
      x->has_f = 1;
      x->f = a->f;
      break;
    case KN_ATTR_INTS:
      x->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
      x->n_ints = (size_t)a->count;
      x->ints = palloc(e, sizeof(int64_t) * (size_t)(a->count + 1));
      if (x->ints && a->count)
        memcpy(x->ints, a->ints, sizeof(int64_t) * (size_t)a->count);
      break;
    case KN_ATTR_FLOATS:
      x->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
      x->n_floats = (size_t)a->count;
      x->floats = palloc(e, sizeof(float) * (size_t)(a->count + 1));
      if (x->floats && a->count)
        memcpy(x->floats, a->floats, sizeof(float) * (size_t)a->count);
      break;
    case KN_ATTR_STRING:
      x->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
      x->has_s = 1;
      x->s.data = (uint8_t *)pfmt(e, "%s", a->s ? a->s : "");
      x->s.len = a->s ? strlen(a->s) : 0;
      break;
    }
  }
}

/* Scale and zero-point initializers of a quantized tensor; names out. */
static int qparam_inits(exporter *e, const kn_tensor *t, kestrel_dtype zdt,
                        char **sname, char **zname) {
  *sname = pfmt(e, "%s__scale", t->name);
  *zname = pfmt(e, "%s__zero_point", t->name);
  if (!*sname || !*zname)
    return -1;
  int64_t c = t->q_count;
  int nd = t->q_count > 1 ? 1 : 0;
  if (add_init(e, *sname, KESTREL_DTYPE_F32, nd, &c, t->q_scale,
               sizeof(float) * (size_t)c))
    return -1;
  size_t zs = kestrel_dtype_size(zdt);
  uint8_t *z = palloc(e, zs * (size_t)c);
  if (!z)
    return -1;
  for (int64_t i = 0; i < c; i++) {
    int32_t v = t->q_zero_point ? t->q_zero_point[i] : 0;
    if (zdt == KESTREL_DTYPE_I8)
      ((int8_t *)z)[i] = (int8_t)v;
    else if (zdt == KESTREL_DTYPE_U8)
      ((uint8_t *)z)[i] = (uint8_t)v;
    else
      ((int32_t *)z)[i] = v;
  }
  return add_init(e, *zname, zdt, nd, &c, z, zs * (size_t)c);
}

static int is_q_act(const kn_tensor *t) {
  return t && t->kind != KN_TENSOR_CONSTANT && !t->optional_absent &&
         (t->dtype == KESTREL_DTYPE_I8 || t->dtype == KESTREL_DTYPE_U8) &&
         t->q_count == 1;
}

static int is_q_const(const kn_tensor *t) {
  return t && t->kind == KN_TENSOR_CONSTANT && t->data && t->q_count >= 1 &&
         (t->dtype == KESTREL_DTYPE_I8 || t->dtype == KESTREL_DTYPE_U8 ||
          t->dtype == KESTREL_DTYPE_I32);
}

/* Name a float consumer reads for tensor t (emitting what it needs). */
static const char *float_name(exporter *e, int ti) {
  const kn_tensor *t = &e->g->tensors[ti];
  if (is_q_act(t))
    return pfmt(e, "%s__dq", t->name);
  if (is_q_const(t))
    return pfmt(e, "%s__dequant", t->name);
  return t->name;
}

/* Q/DQ after an int8 activation's float producer wrote "T__f". */
static int quantize_output(exporter *e, int ti) {
  const kn_tensor *t = &e->g->tensors[ti];
  char *s, *z;
  if (qparam_inits(e, t, t->dtype, &s, &z))
    return -1;
  const char *fin = pfmt(e, "%s__f", t->name);
  const char *qi[3] = {fin, s, z};
  const char *qo[1] = {t->name};
  if (!add_node(e, "QuantizeLinear", pfmt(e, "%s__quantize", t->name), qi, 3,
                qo, 1))
    return -1;
  const char *di[3] = {t->name, s, z};
  const char *dout[1] = {pfmt(e, "%s__dq", t->name)};
  return add_node(e, "DequantizeLinear", pfmt(e, "%s__dequantize", t->name),
                  di, 3, dout, 1)
             ? 0
             : -1;
}

/* An int8 Conv/Gemm/ConvTranspose whose activation is a table: its result
 * is requantized to the activation's input before the table. */
static bool table_epilogue(const kn_graph *g, const kn_node *n) {
  if (n->op != KN_OP_CONV && n->op != KN_OP_GEMM &&
      n->op != KN_OP_CONV_TRANSPOSE)
    return false;
  const kn_tensor *x = &g->tensors[n->inputs[0]];
  const kn_tensor *y = &g->tensors[n->outputs[0]];
  if (!is_q_act(x) || !is_q_act(y) || y->dtype != KESTREL_DTYPE_I8)
    return false;
  kn_act a = kn_act_from_node(n);
  kn_q8_epilogue epi;
  kn_q8_epilogue_init(&epi, &a, y->q_scale[0], y->q_zero_point[0], y->dtype);
  return epi.kind == KN_Q8_EPI_TABLE;
}

/* ONNX activation node for a fused activation: in -> out. */
static int emit_activation(exporter *e, const kn_node *n, const char *in,
                           const char *out) {
  int kind = (int)kn_attr_int(n, "activation", KN_ACT_NONE);
  const char *ii[3] = {in, NULL, NULL};
  const char *oo[1] = {out};
  const char *nm = pfmt(e, "%s__act", n->name);
  float lo = 0, hi = 0;
  switch (kind) {
  case KN_ACT_RELU: return add_node(e, "Relu", nm, ii, 1, oo, 1) ? 0 : -1;
  case KN_ACT_TANH: return add_node(e, "Tanh", nm, ii, 1, oo, 1) ? 0 : -1;
  case KN_ACT_SIGMOID:
    return add_node(e, "Sigmoid", nm, ii, 1, oo, 1) ? 0 : -1;
  case KN_ACT_HARDSWISH: {
    /* HardSwish is opset 14: x * HardSigmoid(x; 1/6, 1/2) is the same. */
    const char *hs[1] = {pfmt(e, "%s__hardsigmoid", out)};
    Onnx__NodeProto *o = add_node(e, "HardSigmoid", nm, ii, 1, hs, 1);
    if (!o)
      return -1;
    attr_float(e, o, "alpha", 1.0f / 6.0f);
    attr_float(e, o, "beta", 0.5f);
    const char *mi[2] = {in, hs[0]};
    return add_node(e, "Mul", pfmt(e, "%s__mul", nm), mi, 2, oo, 1) ? 0 : -1;
  }
  case KN_ACT_LEAKY_RELU: {
    Onnx__NodeProto *o = add_node(e, "LeakyRelu", nm, ii, 1, oo, 1);
    if (!o)
      return -1;
    attr_float(e, o, "alpha", kn_attr_float(n, "activation_alpha", 0.01f));
    return 0;
  }
  case KN_ACT_HARDSIGMOID: {
    Onnx__NodeProto *o = add_node(e, "HardSigmoid", nm, ii, 1, oo, 1);
    if (!o)
      return -1;
    attr_float(e, o, "alpha", kn_attr_float(n, "activation_alpha", 0.2f));
    attr_float(e, o, "beta", kn_attr_float(n, "activation_beta", 0.5f));
    return 0;
  }
  case KN_ACT_RELU6: lo = 0, hi = 6; break;
  case KN_ACT_RELU_N1_TO_1: lo = -1, hi = 1; break;
  case KN_ACT_CLIP:
    lo = kn_attr_float(n, "activation_min", -3.4e38f);
    hi = kn_attr_float(n, "activation_max", 3.4e38f);
    break;
  default: return -1;
  }
  ii[1] = pfmt(e, "%s__act_min", n->name);
  ii[2] = pfmt(e, "%s__act_max", n->name);
  if (!ii[1] || !ii[2] || add_scalar_f32(e, ii[1], lo) ||
      add_scalar_f32(e, ii[2], hi))
    return -1;
  return add_node(e, "Clip", nm, ii, 3, oo, 1) ? 0 : -1;
}

static const int64_t to_nchw[4] = {0, 3, 1, 2}, to_nhwc[4] = {0, 2, 3, 1};

static int emit_transpose(exporter *e, const char *in, const char *out,
                          const int64_t *perm) {
  const char *ii[1] = {in}, *oo[1] = {out};
  Onnx__NodeProto *o =
      add_node(e, "Transpose", pfmt(e, "%s__transpose", out), ii, 1, oo, 1);
  if (!o)
    return -1;
  attr_ints(e, o, "perm", perm, 4);
  return 0;
}

static kestrel_status emit_node(exporter *e, const kn_node *n,
                                kestrel_error *err) {
  const kn_graph *g = e->g;
  if (kn_attr_int(n, "packed", 0))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "weights are packed for Kestrel's kernels; quantize "
                        "or compile with --no-optimize / --no-pack to export");
  /* Kestrel's own Q/DQ nodes: graph-input quantization, output
   * dequantization, and the dynamic variant. */
  if (n->op == KN_OP_QUANTIZE_LINEAR && kn_attr_int(n, "dynamic", 0)) {
    const char *ii[1] = {g->tensors[n->inputs[0]].name};
    const char *oo[3];
    for (int k = 0; k < 3; k++)
      oo[k] = g->tensors[n->outputs[k]].name;
    return add_node(e, "DynamicQuantizeLinear", n->name, ii, 1, oo, 3)
               ? KESTREL_OK
               : KESTREL_ERROR_OUT_OF_MEMORY;
  }
  if ((n->op == KN_OP_QUANTIZE_LINEAR || n->op == KN_OP_DEQUANTIZE_LINEAR) &&
      n->num_inputs == 1) {
    int qi = n->op == KN_OP_QUANTIZE_LINEAR ? n->outputs[0] : n->inputs[0];
    const kn_tensor *qt = &g->tensors[qi];
    char *s, *z;
    if (qparam_inits(e, qt, qt->dtype, &s, &z))
      return KESTREL_ERROR_OUT_OF_MEMORY;
    const char *ii[3] = {g->tensors[n->inputs[0]].name, s, z};
    const char *oo[1] = {g->tensors[n->outputs[0]].name};
    if (!add_node(e, n->op == KN_OP_QUANTIZE_LINEAR ? "QuantizeLinear"
                                                   : "DequantizeLinear",
                  n->name, ii, 3, oo, 1))
      return KESTREL_ERROR_OUT_OF_MEMORY;
    if (n->op == KN_OP_QUANTIZE_LINEAR && is_q_act(qt)) {
      const char *di[3] = {qt->name, s, z};
      const char *dout[1] = {pfmt(e, "%s__dq", qt->name)};
      if (!add_node(e, "DequantizeLinear", pfmt(e, "%s__dequantize", qt->name),
                    di, 3, dout, 1))
        return KESTREL_ERROR_OUT_OF_MEMORY;
    }
    return KESTREL_OK;
  }
  int layout = (int)kn_attr_int(n, "layout", KN_LAYOUT_NCHW);
  bool nhwc = layout == KN_LAYOUT_NHWC;
  int act = (int)kn_attr_int(n, "activation", KN_ACT_NONE);
  int res = kn_attr_int(n, "residual", 0) && n->num_inputs > 3 ? n->inputs[3]
                                                               : -1;
  int nin = res >= 0 ? 3 : n->num_inputs;
  const char **ii = palloc(e, sizeof(char *) * (size_t)(nin + 1));
  const char **oo = palloc(e, sizeof(char *) * (size_t)(n->num_outputs + 1));
  if (!ii || !oo)
    return KESTREL_ERROR_OUT_OF_MEMORY;
  for (int k = 0; k < nin; k++) {
    int t = n->inputs[k];
    if (t < 0 || g->tensors[t].optional_absent) {
      ii[k] = "";
      continue;
    }
    ii[k] = float_name(e, t);
    if (nhwc && k == 0) {
      const char *tr = pfmt(e, "%s__nchw_for_%s", ii[k], n->name);
      if (!tr || emit_transpose(e, ii[k], tr, to_nchw))
        return KESTREL_ERROR_OUT_OF_MEMORY;
      ii[k] = tr;
    }
  }
  /* The op writes float; epilogue steps chain names until the real output
   * ("T__f" for int8 outputs, which quantize_output then picks up). */
  for (int k = 0; k < n->num_outputs; k++) {
    const kn_tensor *t = &g->tensors[n->outputs[k]];
    oo[k] = is_q_act(t) ? pfmt(e, "%s__f", t->name) : t->name;
  }
  const char *final0 = oo[0];
  bool post = act != KN_ACT_NONE || res >= 0 || nhwc;
  if (post)
    oo[0] = pfmt(e, "%s__raw", final0);
  const char *op = kn_op_name(n->op);
  Onnx__NodeProto *o = add_node(e, op, n->name, ii, nin, oo, n->num_outputs);
  if (!o)
    return KESTREL_ERROR_OUT_OF_MEMORY;
  copy_attrs(e, o, n);
  if (post) {
    const char *cur = oo[0];
    if (nhwc) {
      const char *tr = pfmt(e, "%s__nhwc", final0);
      if (!tr || emit_transpose(e, cur, tr, to_nhwc))
        return KESTREL_ERROR_OUT_OF_MEMORY;
      cur = tr;
    }
    if (res >= 0) {
      const char *sum = pfmt(e, "%s__sum", final0);
      const char *ai[2] = {cur, float_name(e, res)};
      const char *ao[1] = {act != KN_ACT_NONE ? sum : final0};
      if (!add_node(e, "Add", pfmt(e, "%s__residual", n->name), ai, 2, ao, 1))
        return KESTREL_ERROR_OUT_OF_MEMORY;
      cur = ao[0];
    }
    if (act != KN_ACT_NONE && table_epilogue(g, n)) {
      /* Kestrel's int8 conv rounds its result to the activation's input
       * grid before the table (q8_requant.h): the same Q/DQ pair here. */
      const kn_tensor *y = &g->tensors[n->outputs[0]];
      kn_act a = kn_act_from_node(n);
      kn_q8_epilogue epi;
      kn_q8_epilogue_init(&epi, &a, y->q_scale[0], y->q_zero_point[0],
                          y->dtype);
      const char *sn = pfmt(e, "%s__act_in_scale", n->name);
      const char *zn = pfmt(e, "%s__act_in_zero_point", n->name);
      const char *qn = pfmt(e, "%s__act_in", n->name);
      const char *dn = pfmt(e, "%s__act_in_dq", n->name);
      float sc = (float)epi.out_scale;
      int8_t zp = (int8_t)epi.zero_point;
      if (!sn || !zn || !qn || !dn ||
          add_init(e, sn, KESTREL_DTYPE_F32, 0, NULL, &sc, sizeof(sc)) ||
          add_init(e, zn, KESTREL_DTYPE_I8, 0, NULL, &zp, sizeof(zp)))
        return KESTREL_ERROR_OUT_OF_MEMORY;
      const char *qi[3] = {cur, sn, zn}, *qo[1] = {qn};
      const char *di[3] = {qn, sn, zn}, *dout[1] = {dn};
      if (!add_node(e, "QuantizeLinear", pfmt(e, "%s__act_in_quantize",
                                              n->name), qi, 3, qo, 1) ||
          !add_node(e, "DequantizeLinear", pfmt(e, "%s__act_in_dequantize",
                                                n->name), di, 3, dout, 1))
        return KESTREL_ERROR_OUT_OF_MEMORY;
      cur = dn;
    }
    if (act != KN_ACT_NONE) {
      if (emit_activation(e, n, cur, final0))
        return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                            "fused activation %d has no ONNX form", act);
    } else if (strcmp(cur, final0)) {
      const char *ci[1] = {cur}, *co[1] = {final0};
      if (!add_node(e, "Identity", pfmt(e, "%s__out", n->name), ci, 1, co, 1))
        return KESTREL_ERROR_OUT_OF_MEMORY;
    }
  }
  for (int k = 0; k < n->num_outputs; k++)
    if (is_q_act(&g->tensors[n->outputs[k]]) &&
        quantize_output(e, n->outputs[k]))
      return KESTREL_ERROR_OUT_OF_MEMORY;
  return KESTREL_OK;
}

static Onnx__ValueInfoProto *value_info(exporter *e, const kn_tensor *t) {
  Onnx__ValueInfoProto *v = palloc(e, sizeof(*v));
  Onnx__TypeProto *tp = palloc(e, sizeof(*tp));
  Onnx__TypeProto__Tensor *tt = palloc(e, sizeof(*tt));
  Onnx__TensorShapeProto *sh = palloc(e, sizeof(*sh));
  int nd = t->ndim < 0 ? 0 : t->ndim;
  Onnx__TensorShapeProto__Dimension **dims =
      palloc(e, sizeof(void *) * (size_t)(nd + 1));
  if (!v || !tp || !tt || !sh || !dims)
    return NULL;
  onnx__value_info_proto__init(v);
  onnx__type_proto__init(tp);
  onnx__type_proto__tensor__init(tt);
  onnx__tensor_shape_proto__init(sh);
  for (int d = 0; d < nd; d++) {
    dims[d] = palloc(e, sizeof(Onnx__TensorShapeProto__Dimension));
    if (!dims[d])
      return NULL;
    onnx__tensor_shape_proto__dimension__init(dims[d]);
    dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    dims[d]->dim_value = t->dims[d];
  }
  sh->n_dim = (size_t)nd;
  sh->dim = dims;
  tt->has_elem_type = 1;
  tt->elem_type = onnx_type(t->dtype);
  tt->shape = sh;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  v->name = pfmt(e, "%s", t->name);
  v->type = tp;
  return v->name ? v : NULL;
}

static kestrel_status build(exporter *e, Onnx__ModelProto *m,
                            kestrel_error *err) {
  const kn_graph *g = e->g;
  /* Constants read by live nodes. */
  char *used = palloc(e, (size_t)g->num_tensors + 1);
  if (!used)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_inputs; k++)
      if (n->inputs[k] >= 0)
        used[n->inputs[k]] = 1;
  }
  for (int t = 0; t < g->num_tensors; t++) {
    const kn_tensor *x = &g->tensors[t];
    if (!used[t] || x->kind != KN_TENSOR_CONSTANT || !x->data)
      continue;
    if (!onnx_type(x->dtype))
      return kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
                     "constant '%s' has dtype %s, which ONNX lacks", x->name,
                     kestrel_dtype_name(x->dtype));
    if (add_init(e, x->name, x->dtype, x->ndim, x->dims, x->data,
                 kn_tensor_bytes(x)))
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    if (is_q_const(x)) {
      /* int8 weights / int32 bias behind a (per-axis) DequantizeLinear. */
      char *s, *z;
      kestrel_dtype zdt = x->dtype;
      if (qparam_inits(e, x, zdt, &s, &z))
        return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      const char *ii[3] = {x->name, s, z};
      const char *oo[1] = {pfmt(e, "%s__dequant", x->name)};
      Onnx__NodeProto *o = add_node(e, "DequantizeLinear",
                                    pfmt(e, "%s__dequantize", x->name), ii, 3,
                                    oo, 1);
      if (!o)
        return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      if (x->q_count > 1)
        attr_int(e, o, "axis", x->q_axis);
    }
  }
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    kestrel_status st = emit_node(e, n, err);
    if (st == KESTREL_ERROR_OUT_OF_MEMORY || e->oom)
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    if (st)
      return st;
  }
  Onnx__GraphProto *gp = palloc(e, sizeof(*gp));
  if (!gp)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  onnx__graph_proto__init(gp);
  gp->name = pfmt(e, "kestrel");
  gp->n_node = e->nnodes;
  gp->node = e->nodes;
  gp->n_initializer = e->ninits;
  gp->initializer = e->inits;
  gp->n_input = (size_t)g->num_inputs;
  gp->input = palloc(e, sizeof(void *) * (size_t)(g->num_inputs + 1));
  gp->n_output = (size_t)g->num_outputs;
  gp->output = palloc(e, sizeof(void *) * (size_t)(g->num_outputs + 1));
  if (!gp->input || !gp->output)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  for (int i = 0; i < g->num_inputs; i++)
    if (!(gp->input[i] = value_info(e, &g->tensors[g->inputs[i]])))
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  for (int i = 0; i < g->num_outputs; i++)
    if (!(gp->output[i] = value_info(e, &g->tensors[g->outputs[i]])))
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  Onnx__OperatorSetIdProto *ops = palloc(e, sizeof(*ops));
  Onnx__OperatorSetIdProto **opsv = palloc(e, sizeof(void *));
  if (!ops || !opsv)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  onnx__operator_set_id_proto__init(ops);
  ops->domain = pfmt(e, "%s", "");
  ops->has_version = 1;
  ops->version = g->opset > 13 ? g->opset : 13;
  opsv[0] = ops;
  onnx__model_proto__init(m);
  m->has_ir_version = 1;
  m->ir_version = 7; /* the IR of opset 13 */
  m->producer_name = pfmt(e, "kestrel");
  m->producer_version = pfmt(e, "0.1");
  m->n_opset_import = 1;
  m->opset_import = opsv;
  m->graph = gp;
  return e->oom ? kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory")
                : KESTREL_OK;
}

kestrel_status kestrel_export_onnx(const kestrel_model *model,
                                   const char *path, kestrel_error *err) {
  if (!model || !path)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  exporter e;
  memset(&e, 0, sizeof(e));
  e.g = kq_model_graph(model);
  Onnx__ModelProto m;
  kestrel_status st = build(&e, &m, err);
  if (st == KESTREL_OK) {
    size_t size = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
      st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    } else {
      size_t n = onnx__model_proto__pack(&m, buf);
      FILE *f = fopen(path, "wb");
      if (!f) {
        st = kn_fail(err, KESTREL_ERROR_IO, "cannot write '%s': %s", path,
                     strerror(errno));
      } else {
        int bad = fwrite(buf, 1, n, f) != n;
        bad |= fclose(f) != 0;
        if (bad)
          st = kn_fail(err, KESTREL_ERROR_IO, "short write on '%s'", path);
      }
      free(buf);
    }
  }
  for (size_t i = 0; i < e.nblocks; i++)
    free(e.blocks[i]);
  free(e.blocks);
  free(e.nodes);
  free(e.inits);
  return st;
}
