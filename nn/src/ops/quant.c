/* Reference kernels for ONNX's quantization ops: QuantizeLinear,
 * DequantizeLinear, QLinearConv, ConvInteger, MatMulInteger and
 * QLinearMatMul. Integer products accumulate exactly in int32; requantizing
 * rounds half to even and saturates. The conv and GEMM cores live in conv.c
 * and also serve TFLite's full-integer Conv and FullyConnected. */
#include <string.h>

#include "eltwise_fast.h"
#include "ops_common.h"

/* ONNX TensorProto element types for QuantizeLinear's output_dtype. */
enum { ONNX_UINT8 = 2, ONNX_INT8 = 3, ONNX_INT16 = 5, ONNX_INT32 = 6 };

static bool is_float_scalar_or_vec(const kn_tensor *t) {
  return t && t->dtype == KESTREL_DTYPE_F32 && t->ndim <= 1 &&
         kn_tensor_numel(t) >= 1;
}

/* Scale/zero point per element along "axis": count 1 is per-tensor. */
static kestrel_status qaxis_of(const kn_node *n, const kn_tensor *x,
                               int64_t count, int64_t *inner, int64_t *len,
                               kestrel_error *err) {
  *inner = 1;
  *len = 1;
  if (count == 1)
    return KESTREL_OK;
  int64_t axis = kn_attr_int(n, "axis", 1);
  if (axis < 0)
    axis += x->ndim;
  if (axis < 0 || axis >= x->ndim || x->dims[axis] != count)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "%lld scales do not match axis %lld",
                        (long long)count, (long long)axis);
  for (int i = (int)axis + 1; i < x->ndim; i++)
    *inner *= x->dims[i];
  *len = count;
  return KESTREL_OK;
}

/* ---- QuantizeLinear / DequantizeLinear ----------------------------------- */

/* Scale and zero point of a (De)QuantizeLinear: inputs 1 and 2, or the
 * quantization the importer attached to the quantized tensor. */
typedef struct qparams {
  const float *scale;
  int64_t count;
  const void *zero;
  kestrel_dtype zero_dt;
  int64_t zero_count;
} qparams;

static kestrel_status qparams_of(kn_graph *g, const kn_node *n,
                                 const kn_tensor *qt, qparams *q,
                                 kestrel_error *err) {
  kn_tensor *s = kn_opt_in(g, n, 1), *z = kn_opt_in(g, n, 2);
  memset(q, 0, sizeof(*q));
  if (s) {
    if (!is_float_scalar_or_vec(s))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "scale must be float32, scalar or 1-D");
    q->scale = s->data;
    q->count = kn_tensor_numel(s);
  } else if (qt->q_count >= 1 && qt->q_scale) {
    q->scale = qt->q_scale;
    q->count = qt->q_count;
  } else {
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "no scale");
  }
  if (z) {
    if (z->ndim > 1 || (kn_tensor_numel(z) != q->count))
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "zero point does not match scale");
    q->zero = z->data;
    q->zero_dt = z->dtype;
    q->zero_count = kn_tensor_numel(z);
  } else if (!s && qt->q_zero_point) {
    q->zero = qt->q_zero_point;
    q->zero_dt = KESTREL_DTYPE_I32;
    q->zero_count = qt->q_count;
  }
  return KESTREL_OK;
}

static int32_t qparams_zero(const qparams *q, int64_t ch) {
  if (!q->zero)
    return 0;
  return kn_load_int(q->zero, q->zero_dt, q->zero_count > 1 ? ch : 0);
}

/* QuantizeLinear with int attribute dynamic=1 is ONNX's
 * DynamicQuantizeLinear: outputs y (uint8), y_scale and y_zero_point
 * (scalars) computed from this run's min/max, range widened to hold 0.
 * Dynamic quantization (kestrel quantize --calib none) feeds ConvInteger /
 * MatMulInteger with it. */
static kestrel_status dynq_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  kn_tensor *x = kn_in(g, n, 0);
  if (!x || n->num_outputs != 3 || !kn_out(g, n, 1) || !kn_out(g, n, 2))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "dynamic quantization needs an input and 3 outputs");
  if (x->dtype != KESTREL_DTYPE_F32)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "input dtype %s",
                        kestrel_dtype_name(x->dtype));
  kn_set_shape(kn_out(g, n, 0), KESTREL_DTYPE_U8, x->ndim, x->dims);
  kn_set_shape(kn_out(g, n, 1), KESTREL_DTYPE_F32, 0, NULL);
  kn_set_shape(kn_out(g, n, 2), KESTREL_DTYPE_U8, 0, NULL);
  return KESTREL_OK;
}

static kestrel_status dynq_run(const kn_exec *ex, const kn_node *n) {
  kn_graph *g = ex->graph;
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  const float *xv = x->data;
  int64_t total = kn_tensor_numel(x);
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < total; i++) {
    if (xv[i] < lo)
      lo = xv[i];
    if (xv[i] > hi)
      hi = xv[i];
  }
  float scale = (hi - lo) / 255.0f;
  if (!(scale > 0.0f))
    scale = 1.0f;
  int32_t zp = kn_saturate(kn_round_even(-lo / scale), KESTREL_DTYPE_U8);
  uint8_t *yv = y->data;
  for (int64_t i = 0; i < total; i++)
    yv[i] = (uint8_t)kn_saturate(kn_round_even(xv[i] / scale) + zp,
                                 KESTREL_DTYPE_U8);
  *(float *)kn_out(g, n, 1)->data = scale;
  *(uint8_t *)kn_out(g, n, 2)->data = (uint8_t)zp;
  return KESTREL_OK;
}

static kestrel_status quantize_infer(kn_graph *g, kn_node *n,
                                     kestrel_error *err) {
  if (kn_attr_int(n, "dynamic", 0))
    return dynq_infer(g, n, err);
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  kn_tensor *z = kn_opt_in(g, n, 2);
  if (!x || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs an input and an output");
  if (x->dtype != KESTREL_DTYPE_F32 && x->dtype != KESTREL_DTYPE_I32)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "input dtype %s",
                        kestrel_dtype_name(x->dtype));
  if (kn_attr_int(n, "block_size", 0))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "blocked quantization");
  kestrel_dtype ydt = KESTREL_DTYPE_U8;
  int64_t odt = kn_attr_int(n, "output_dtype", 0);
  if (z)
    ydt = z->dtype;
  else if (odt == ONNX_INT8)
    ydt = KESTREL_DTYPE_I8;
  else if (odt == ONNX_INT16)
    ydt = KESTREL_DTYPE_I16;
  else if (odt == ONNX_INT32)
    ydt = KESTREL_DTYPE_I32;
  else if (odt && odt != ONNX_UINT8)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "output_dtype %lld", (long long)odt);
  else if (!odt && kn_is_q8(y->dtype) && y->q_count)
    ydt = y->dtype; /* importer-typed output (TFLite QUANTIZE) */
  if (ydt != KESTREL_DTYPE_U8 && ydt != KESTREL_DTYPE_I8 &&
      ydt != KESTREL_DTYPE_I16 && ydt != KESTREL_DTYPE_I32)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "output dtype %s",
                        kestrel_dtype_name(ydt));
  qparams q;
  kestrel_status st = qparams_of(g, n, y, &q, err);
  if (st != KESTREL_OK)
    return st;
  int64_t inner, len;
  st = qaxis_of(n, x, q.count, &inner, &len, err);
  if (st != KESTREL_OK)
    return st;
  kn_set_shape(y, ydt, x->ndim, x->dims);
  return KESTREL_OK;
}

static kestrel_status quantize_run(const kn_exec *ex, const kn_node *n,
                                   kestrel_error *err) {
  if (kn_attr_int(n, "dynamic", 0))
    return dynq_run(ex, n);
  kn_graph *g = ex->graph;
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  qparams q;
  kestrel_status st = qparams_of(g, n, y, &q, err);
  if (st != KESTREL_OK)
    return st;
  int64_t inner, len;
  st = qaxis_of(n, x, q.count, &inner, &len, err);
  if (st != KESTREL_OK)
    return st;
  int64_t total = kn_tensor_numel(x);
  if (q.count == 1 && x->dtype == KESTREL_DTYPE_F32 &&
      y->dtype == KESTREL_DTYPE_I8) { /* same bytes, SIMD and threads */
    kn_quantize_f32_i8_fast(ex, x->data, y->data, (size_t)total, q.scale[0],
                            qparams_zero(&q, 0));
    return KESTREL_OK;
  }
  for (int64_t i = 0; i < total; i++) {
    int64_t ch = (i / inner) % len;
    float v = x->dtype == KESTREL_DTYPE_F32 ? ((const float *)x->data)[i]
                                            : (float)((const int32_t *)x->data)[i];
    /* Float division as the ONNX reference does, then half-to-even. */
    int64_t r = kn_round_even(v / q.scale[q.count > 1 ? ch : 0]) +
                qparams_zero(&q, ch);
    kn_store_int(y->data, y->dtype, i, kn_saturate(r, y->dtype));
  }
  return KESTREL_OK;
}

static kestrel_status dequantize_infer(kn_graph *g, kn_node *n,
                                       kestrel_error *err) {
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  if (!x || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs an input and an output");
  if (!kn_is_q8(x->dtype) && x->dtype != KESTREL_DTYPE_I32 &&
      x->dtype != KESTREL_DTYPE_I16)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "input dtype %s",
                        kestrel_dtype_name(x->dtype));
  if (kn_attr_int(n, "block_size", 0))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "blocked quantization");
  qparams q;
  kestrel_status st = qparams_of(g, n, x, &q, err);
  if (st != KESTREL_OK)
    return st;
  int64_t inner, len;
  st = qaxis_of(n, x, q.count, &inner, &len, err);
  if (st != KESTREL_OK)
    return st;
  kn_set_shape(y, KESTREL_DTYPE_F32, x->ndim, x->dims);
  return KESTREL_OK;
}

static kestrel_status dequantize_run(const kn_exec *ex, const kn_node *n,
                                     kestrel_error *err) {
  kn_graph *g = ex->graph;
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  qparams q;
  kestrel_status st = qparams_of(g, n, x, &q, err);
  if (st != KESTREL_OK)
    return st;
  int64_t inner, len;
  st = qaxis_of(n, x, q.count, &inner, &len, err);
  if (st != KESTREL_OK)
    return st;
  int64_t total = kn_tensor_numel(x);
  float *out = y->data;
  if (q.count == 1 && x->dtype == KESTREL_DTYPE_I8) { /* a 256-entry table */
    kn_dequantize_i8_f32_fast(ex, x->data, out, (size_t)total, q.scale[0],
                              qparams_zero(&q, 0));
    return KESTREL_OK;
  }
  for (int64_t i = 0; i < total; i++) {
    int64_t ch = (i / inner) % len;
    int64_t d = (int64_t)kn_load_int(x->data, x->dtype, i) -
                qparams_zero(&q, ch);
    out[i] = (float)d * q.scale[q.count > 1 ? ch : 0];
  }
  return KESTREL_OK;
}

/* ---- QLinearConv / ConvInteger ------------------------------------------- */

static float scalar_f32(const kn_tensor *t) {
  return t && t->data && kn_tensor_numel(t) >= 1 ? ((const float *)t->data)[0]
                                                 : 1.0f;
}

static int32_t scalar_int(const kn_tensor *t) {
  return t && t->data && kn_tensor_numel(t) >= 1
             ? kn_load_int(t->data, t->dtype, 0)
             : 0;
}

static kestrel_status qconv_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  bool qlinear = n->op == KN_OP_QLINEAR_CONV;
  kn_tensor *x = kn_in(g, n, 0), *w = kn_in(g, n, qlinear ? 3 : 1);
  kn_tensor *b = qlinear ? kn_opt_in(g, n, 8) : NULL, *y = kn_out(g, n, 0);
  if (!x || !w || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs X and W inputs and an output");
  if (!kn_is_q8(x->dtype) || !kn_is_q8(w->dtype) ||
      (b && b->dtype != KESTREL_DTYPE_I32))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "dtypes %s x %s (8-bit only)",
                        kestrel_dtype_name(x->dtype),
                        kestrel_dtype_name(w->dtype));
  kestrel_dtype ydt = KESTREL_DTYPE_I32;
  if (qlinear) {
    kn_tensor *xs = kn_in(g, n, 1), *ws = kn_in(g, n, 4);
    kn_tensor *ys = kn_in(g, n, 6), *yz = kn_opt_in(g, n, 7);
    kn_tensor *wz = kn_opt_in(g, n, 5);
    if (!is_float_scalar_or_vec(xs) || !is_float_scalar_or_vec(ws) ||
        !is_float_scalar_or_vec(ys))
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "scales must be float32");
    int64_t m = w->ndim >= 1 ? w->dims[0] : 0;
    if (kn_tensor_numel(ws) != 1 && kn_tensor_numel(ws) != m)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "w_scale must have 1 or %lld values", (long long)m);
    if (wz && kn_tensor_numel(wz) != 1 && kn_tensor_numel(wz) != m)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "w_zero_point must have 1 or %lld values",
                          (long long)m);
    ydt = yz ? yz->dtype : x->dtype;
    if (!kn_is_q8(ydt))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "output dtype %s", kestrel_dtype_name(ydt));
  } else {
    kn_tensor *wz = kn_opt_in(g, n, 3);
    int64_t m = w->ndim >= 1 ? w->dims[0] : 0;
    if (wz && kn_tensor_numel(wz) != 1 && kn_tensor_numel(wz) != m)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "w_zero_point must have 1 or %lld values",
                          (long long)m);
  }
  return kn_conv_infer_common(g, n, x, w, b, y, ydt, err);
}

static kestrel_status qconv_run(const kn_exec *ex, const kn_node *n,
                                kestrel_error *err) {
  kn_graph *g = ex->graph;
  bool qlinear = n->op == KN_OP_QLINEAR_CONV;
  kn_qconv q;
  memset(&q, 0, sizeof(q));
  q.x = kn_in(g, n, 0);
  q.y = kn_out(g, n, 0);
  if (kn_tensor_numel(q.y) == 0)
    return KESTREL_OK;
  if (qlinear) {
    q.w = kn_in(g, n, 3);
    q.bias = kn_opt_in(g, n, 8);
    q.x_scale = scalar_f32(kn_in(g, n, 1));
    q.x_zero = scalar_int(kn_opt_in(g, n, 2));
    kn_tensor *ws = kn_in(g, n, 4);
    q.w_scale = ws->data;
    q.w_scale_count = kn_tensor_numel(ws);
    q.w_zero = kn_opt_in(g, n, 5);
    q.y_scale = scalar_f32(kn_in(g, n, 6));
    q.y_zero = scalar_int(kn_opt_in(g, n, 7));
    q.act = kn_act_from_node(n);
  } else {
    q.w = kn_in(g, n, 1);
    q.x_zero = scalar_int(kn_opt_in(g, n, 2));
    q.w_zero = kn_opt_in(g, n, 3);
    q.raw_int32 = true;
  }
  return kn_qconv_run(n, &q, err);
}

static uint64_t qconv_macs(kn_graph *g, const kn_node *n) {
  kn_tensor *w = kn_in(g, n, n->op == KN_OP_QLINEAR_CONV ? 3 : 1);
  kn_tensor *y = kn_out(g, n, 0);
  if (!w || !y || w->ndim < 2 || y->ndim < 0)
    return 0;
  int64_t per = 1;
  for (int i = 1; i < w->ndim; i++)
    per *= w->dims[i];
  return (uint64_t)(kn_tensor_numel(y) * per);
}

/* ---- MatMulInteger / QLinearMatMul --------------------------------------- */

static kestrel_status qmatmul_infer(kn_graph *g, kn_node *n,
                                    kestrel_error *err) {
  bool qlinear = n->op == KN_OP_QLINEAR_MATMUL;
  kn_tensor *a = kn_in(g, n, 0), *b = kn_in(g, n, qlinear ? 3 : 1);
  kn_tensor *y = kn_out(g, n, 0);
  if (!a || !b || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs A and B inputs and an output");
  if (!kn_is_q8(a->dtype) || !kn_is_q8(b->dtype))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "dtypes %s x %s (8-bit only)",
                        kestrel_dtype_name(a->dtype),
                        kestrel_dtype_name(b->dtype));
  kn_matmul_shape s;
  kestrel_status st = kn_matmul_shape_of(n, a, b, &s, err);
  if (st != KESTREL_OK)
    return st;
  /* Zero points: scalar, or per row of A (M) / per column of B (N). */
  kn_tensor *az = kn_opt_in(g, n, qlinear ? 2 : 2);
  kn_tensor *bz = kn_opt_in(g, n, qlinear ? 5 : 3);
  if ((az && kn_tensor_numel(az) != 1 && kn_tensor_numel(az) != s.m) ||
      (bz && kn_tensor_numel(bz) != 1 && kn_tensor_numel(bz) != s.n))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "zero points must be scalar, per row or per column");
  kestrel_dtype ydt = KESTREL_DTYPE_I32;
  if (qlinear) {
    kn_tensor *as = kn_in(g, n, 1), *bs = kn_in(g, n, 4);
    kn_tensor *ys = kn_in(g, n, 6), *yz = kn_opt_in(g, n, 7);
    if (!is_float_scalar_or_vec(as) || !is_float_scalar_or_vec(bs) ||
        !is_float_scalar_or_vec(ys) || kn_tensor_numel(as) != 1 ||
        kn_tensor_numel(ys) != 1 ||
        (kn_tensor_numel(bs) != 1 && kn_tensor_numel(bs) != s.n))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "scales must be float32 scalars (B: per column)");
    ydt = yz ? yz->dtype : a->dtype;
    if (!kn_is_q8(ydt))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "output dtype %s",
                          kestrel_dtype_name(ydt));
  }
  kn_set_shape(y, ydt, s.out_ndim, s.out_dims);
  return KESTREL_OK;
}

static kestrel_status qmatmul_run(const kn_exec *ex, const kn_node *n,
                                  kestrel_error *err) {
  kn_graph *g = ex->graph;
  bool qlinear = n->op == KN_OP_QLINEAR_MATMUL;
  kn_tensor *a = kn_in(g, n, 0), *b = kn_in(g, n, qlinear ? 3 : 1);
  kn_tensor *y = kn_out(g, n, 0);
  kn_matmul_shape s;
  kestrel_status st = kn_matmul_shape_of(n, a, b, &s, err);
  if (st != KESTREL_OK)
    return st;
  kn_qgemm q;
  memset(&q, 0, sizeof(q));
  q.a_dt = a->dtype;
  q.b_dt = b->dtype;
  q.a_rs = s.k;
  q.a_cs = 1;
  q.b_rs = s.n;
  q.b_cs = 1;
  q.m = s.m;
  q.k = s.k;
  q.n = s.n;
  kn_tensor *az = kn_opt_in(g, n, 2), *bz = kn_opt_in(g, n, qlinear ? 5 : 3);
  if (az) {
    q.a_zero = az->data;
    q.a_zero_dt = az->dtype;
    q.a_zero_count = kn_tensor_numel(az);
  }
  if (bz) {
    q.b_zero = bz->data;
    q.b_zero_dt = bz->dtype;
    q.b_zero_count = kn_tensor_numel(bz);
  }
  q.y_dt = y->dtype;
  if (qlinear) {
    q.a_scale = scalar_f32(kn_in(g, n, 1));
    kn_tensor *bs = kn_in(g, n, 4);
    q.b_scale = bs->data;
    q.b_scale_count = kn_tensor_numel(bs);
    q.y_scale = scalar_f32(kn_in(g, n, 6));
    q.y_zero = scalar_int(kn_opt_in(g, n, 7));
  } else {
    q.raw_int32 = true;
  }
  size_t ea = kestrel_dtype_size(a->dtype), eb = kestrel_dtype_size(b->dtype);
  size_t ey = kestrel_dtype_size(y->dtype);
  for (int64_t bi = 0; bi < s.num_batches; bi++) {
    int64_t ao, bo;
    kn_matmul_batch_offsets(&s, bi, &ao, &bo);
    q.a = (const uint8_t *)a->data + (size_t)ao * ea;
    q.b = (const uint8_t *)b->data + (size_t)bo * eb;
    q.y = (uint8_t *)y->data + (size_t)(bi * s.m * s.n) * ey;
    kn_qgemm_run(&q);
  }
  return KESTREL_OK;
}

static uint64_t qmatmul_macs(kn_graph *g, const kn_node *n) {
  kn_tensor *a = kn_in(g, n, 0);
  kn_tensor *b = kn_in(g, n, n->op == KN_OP_QLINEAR_MATMUL ? 3 : 1);
  kn_matmul_shape s;
  kestrel_error err;
  if (!a || !b || a->ndim < 1 || b->ndim < 1 ||
      kn_matmul_shape_of(n, a, b, &s, &err) != KESTREL_OK)
    return 0;
  return (uint64_t)(s.num_batches * s.m * s.k * s.n);
}

/* ---- registration -------------------------------------------------------- */

void kn_register_ops_quant(kn_op_info *t) {
  t[KN_OP_QUANTIZE_LINEAR] =
      (kn_op_info){.name = t[KN_OP_QUANTIZE_LINEAR].name,
                   .infer = quantize_infer, .run = quantize_run};
  t[KN_OP_DEQUANTIZE_LINEAR] =
      (kn_op_info){.name = t[KN_OP_DEQUANTIZE_LINEAR].name,
                   .infer = dequantize_infer, .run = dequantize_run};
  t[KN_OP_QLINEAR_CONV] = (kn_op_info){.name = t[KN_OP_QLINEAR_CONV].name,
                                       .infer = qconv_infer, .run = qconv_run,
                                       .macs = qconv_macs};
  t[KN_OP_CONV_INTEGER] = (kn_op_info){.name = t[KN_OP_CONV_INTEGER].name,
                                       .infer = qconv_infer, .run = qconv_run,
                                       .macs = qconv_macs};
  t[KN_OP_MATMUL_INTEGER] =
      (kn_op_info){.name = t[KN_OP_MATMUL_INTEGER].name,
                   .infer = qmatmul_infer, .run = qmatmul_run,
                   .macs = qmatmul_macs};
  t[KN_OP_QLINEAR_MATMUL] =
      (kn_op_info){.name = t[KN_OP_QLINEAR_MATMUL].name,
                   .infer = qmatmul_infer, .run = qmatmul_run,
                   .macs = qmatmul_macs};
}
