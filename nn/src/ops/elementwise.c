/* Portable FP32 reference kernels for ONNX element-wise ops: unary math and
 * activations, Clip, PRelu, broadcasting binary/variadic arithmetic,
 * comparisons, logic, Where. They are the oracles the SIMD kernels are
 * tested against, so they favour obvious code over speed; only float32
 * gets dedicated loops, other dtypes go through double/int64 element access.
 * Quantized (TFLite, per-tensor) tensors are dequantized, computed in float
 * and requantized to the output's params (round half to even, saturate).
 *
 * Tolerance, for kernels tested against these: + - * / min max are exact
 * IEEE float32; the transcendental ops are libm's float functions (a few
 * ulp); f16 and f64 inputs are computed in float32 and converted back.
 * Integer arithmetic wraps, and division by zero gives 0. Any input may be
 * the same buffer as the output when their shapes are equal. */
#include "eltwise_fast.h"
#include "ops_eltwise.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* ======================================================================
 * Shared helpers (declared in ops_eltwise.h)
 * ====================================================================== */

bool kn_ew_dtype_is_int(kestrel_dtype dt) {
  return dt == KESTREL_DTYPE_I8 || dt == KESTREL_DTYPE_U8 ||
         dt == KESTREL_DTYPE_I16 || dt == KESTREL_DTYPE_I32 ||
         dt == KESTREL_DTYPE_I64;
}

bool kn_ew_dtype_is_float(kestrel_dtype dt) {
  return dt == KESTREL_DTYPE_F32 || dt == KESTREL_DTYPE_F64 ||
         dt == KESTREL_DTYPE_F16;
}

/* Float to int64 without undefined behaviour: truncate, saturate, NaN->0. */
static int64_t f64_to_i64(double v) {
  if (v != v)
    return 0;
  if (v >= 9223372036854775807.0)
    return INT64_MAX;
  if (v <= -9223372036854775808.0)
    return INT64_MIN;
  return (int64_t)v;
}

double kn_ew_load_f64(const void *data, kestrel_dtype dt, int64_t i) {
  switch (dt) {
  case KESTREL_DTYPE_F32: return ((const float *)data)[i];
  case KESTREL_DTYPE_F64: return ((const double *)data)[i];
  case KESTREL_DTYPE_F16:
    return kestrel_f16_to_f32(((const uint16_t *)data)[i]);
  default: return (double)kn_ew_load_i64(data, dt, i);
  }
}

int64_t kn_ew_load_i64(const void *data, kestrel_dtype dt, int64_t i) {
  switch (dt) {
  case KESTREL_DTYPE_I64: return ((const int64_t *)data)[i];
  case KESTREL_DTYPE_I32: return ((const int32_t *)data)[i];
  case KESTREL_DTYPE_I16: return ((const int16_t *)data)[i];
  case KESTREL_DTYPE_I8: return ((const int8_t *)data)[i];
  case KESTREL_DTYPE_U8: return ((const uint8_t *)data)[i];
  case KESTREL_DTYPE_BOOL: return ((const uint8_t *)data)[i] != 0;
  case KESTREL_DTYPE_F32:
  case KESTREL_DTYPE_F64:
  case KESTREL_DTYPE_F16: return f64_to_i64(kn_ew_load_f64(data, dt, i));
  default: return 0;
  }
}

void kn_ew_store_i64(void *data, kestrel_dtype dt, int64_t i, int64_t v) {
  /* Narrowing goes through unsigned types: modular, as numpy's astype. */
  switch (dt) {
  case KESTREL_DTYPE_I64: ((int64_t *)data)[i] = v; break;
  case KESTREL_DTYPE_I32: ((int32_t *)data)[i] = (int32_t)(uint32_t)v; break;
  case KESTREL_DTYPE_I16: ((int16_t *)data)[i] = (int16_t)(uint16_t)v; break;
  case KESTREL_DTYPE_I8: ((int8_t *)data)[i] = (int8_t)(uint8_t)v; break;
  case KESTREL_DTYPE_U8: ((uint8_t *)data)[i] = (uint8_t)v; break;
  case KESTREL_DTYPE_BOOL: ((uint8_t *)data)[i] = v != 0; break;
  case KESTREL_DTYPE_F32: ((float *)data)[i] = (float)v; break;
  case KESTREL_DTYPE_F64: ((double *)data)[i] = (double)v; break;
  case KESTREL_DTYPE_F16:
    ((uint16_t *)data)[i] = kestrel_f32_to_f16((float)v);
    break;
  default: break;
  }
}

void kn_ew_store_f64(void *data, kestrel_dtype dt, int64_t i, double v) {
  switch (dt) {
  case KESTREL_DTYPE_F32: ((float *)data)[i] = (float)v; break;
  case KESTREL_DTYPE_F64: ((double *)data)[i] = v; break;
  case KESTREL_DTYPE_F16:
    ((uint16_t *)data)[i] = kestrel_f32_to_f16((float)v);
    break;
  case KESTREL_DTYPE_BOOL: ((uint8_t *)data)[i] = v != 0; break;
  default: kn_ew_store_i64(data, dt, i, f64_to_i64(v)); break;
  }
}

void kn_ew_convert(const void *src, kestrel_dtype sdt, void *dst,
                   kestrel_dtype ddt, int64_t n) {
  if (sdt == ddt) {
    if (n > 0 && src != dst)
      memmove(dst, src, (size_t)n * kestrel_dtype_size(sdt));
    return;
  }
  bool src_float = kn_ew_dtype_is_float(sdt);
  for (int64_t i = 0; i < n; i++) {
    if (src_float)
      kn_ew_store_f64(dst, ddt, i, kn_ew_load_f64(src, sdt, i));
    else
      kn_ew_store_i64(dst, ddt, i, kn_ew_load_i64(src, sdt, i));
  }
}

bool kn_ew_axis(int64_t axis, int rank, int *out) {
  if (axis < -(int64_t)rank || axis >= (int64_t)rank)
    return false;
  *out = (int)(axis < 0 ? axis + rank : axis);
  return true;
}

kestrel_status kn_ew_need_const(const kn_tensor *t, const kn_node *n,
                                const char *what, kestrel_error *err) {
  if (!t)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "missing %s input",
                        what);
  if (t->kind != KN_TENSOR_CONSTANT || (!t->data && kn_tensor_numel(t) > 0))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "dynamic shape: %s input '%s' is not a constant", what,
                        t->name);
  if (t->ndim > 1)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "%s input '%s' must be a scalar or 1-D", what,
                        t->name);
  return KESTREL_OK;
}

kestrel_status kn_ew_check_io(kn_graph *g, const kn_node *n, int min_inputs,
                              int min_outputs, kestrel_error *err) {
  if (n->num_inputs < min_inputs || n->num_outputs < min_outputs)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs %d inputs and %d outputs, has %d and %d",
                        min_inputs, min_outputs, n->num_inputs,
                        n->num_outputs);
  for (int i = 0; i < min_inputs; i++) {
    const kn_tensor *t = kn_in(g, n, i);
    if (!t)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "input %d is missing", i);
    if (t->ndim < 0 || t->ndim > KN_MAX_DIMS)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "input '%s' has rank %d", t->name, t->ndim);
    if (kestrel_dtype_size(t->dtype) == 0)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "input '%s' has an unsupported dtype", t->name);
  }
  for (int i = 0; i < min_outputs; i++)
    if (!kn_out(g, n, i))
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "output %d is missing", i);
  return KESTREL_OK;
}

bool kn_ew_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b,
                           int *nd, int64_t *out) {
  int n = na > nb ? na : nb;
  if (n > KN_MAX_DIMS)
    return false;
  /* out may alias a or b: build the result aside. */
  int64_t res[KN_MAX_DIMS];
  for (int i = 0; i < n; i++) {
    /* Right-aligned; a missing leading dimension acts as 1. */
    int64_t da = i < n - na ? 1 : a[i - (n - na)];
    int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
    if (da == db || db == 1)
      res[i] = da;
    else if (da == 1)
      res[i] = db;
    else
      return false;
  }
  memcpy(out, res, sizeof(int64_t) * (size_t)n);
  *nd = n;
  return true;
}

void kn_ew_bcast_init(kn_ew_bcast *it, int nd, const int64_t *dims, int count,
                      const kn_tensor *const *operands) {
  memset(it, 0, sizeof(*it));
  it->count = count;
  int64_t numel = 1;
  for (int d = 0; d < nd; d++)
    numel *= dims[d];
  for (int k = 0; k < count; k++) {
    const kn_tensor *t = operands[k];
    int64_t stride = 1;
    for (int d = nd - 1; d >= 0; d--) {
      int td = d - (nd - t->ndim);
      if (td < 0 || t->dims[td] == 1) {
        it->strides[k][d] = 0;
      } else {
        it->strides[k][d] = stride;
        stride *= t->dims[td];
      }
    }
  }
  /* Merge dimension d into d+1 (the faster one) when every operand steps
   * through d exactly as if the two were one dimension. Size-1 dimensions
   * merge with anything. */
  int64_t md[KN_MAX_DIMS];
  int64_t ms[KN_EW_MAX_OPERANDS][KN_MAX_DIMS];
  int m = 0;
  for (int d = nd - 1; d >= 0; d--) {
    if (dims[d] == 1)
      continue;
    bool merge = m > 0;
    for (int k = 0; merge && k < count; k++)
      if (it->strides[k][d] != ms[k][m - 1] * md[m - 1])
        merge = false;
    if (merge) {
      md[m - 1] *= dims[d];
    } else {
      md[m] = dims[d];
      for (int k = 0; k < count; k++)
        ms[k][m] = it->strides[k][d];
      m++;
    }
  }
  /* md/ms are innermost-first; store outermost-first. */
  it->nd = m;
  for (int d = 0; d < m; d++) {
    it->dims[d] = md[m - 1 - d];
    for (int k = 0; k < count; k++)
      it->strides[k][d] = ms[k][m - 1 - d];
  }
  if (m == 0) {
    it->inner = 1;
    it->rows = numel == 0 ? 0 : 1;
    return;
  }
  it->inner = it->dims[m - 1];
  for (int k = 0; k < count; k++)
    it->step[k] = it->strides[k][m - 1];
  it->rows = numel == 0 ? 0 : numel / it->inner;
}

void kn_ew_bcast_next(kn_ew_bcast *it) {
  for (int d = it->nd - 2; d >= 0; d--) {
    it->idx[d]++;
    for (int k = 0; k < it->count; k++)
      it->off[k] += it->strides[k][d];
    if (it->idx[d] < it->dims[d])
      return;
    for (int k = 0; k < it->count; k++)
      it->off[k] -= it->strides[k][d] * it->dims[d];
    it->idx[d] = 0;
  }
}

bool kn_ew_is_quantized(const kn_tensor *t) {
  return t && (t->dtype == KESTREL_DTYPE_I8 || t->dtype == KESTREL_DTYPE_U8) &&
         t->q_count >= 1 && t->q_scale && t->q_zero_point;
}

kn_ew_quant kn_ew_quant_of(const kn_tensor *t) {
  kn_ew_quant q;
  q.scale = t->q_scale[0];
  q.zero_point = t->q_zero_point[0];
  if (t->dtype == KESTREL_DTYPE_U8) {
    q.qmin = 0;
    q.qmax = 255;
  } else {
    q.qmin = -128;
    q.qmax = 127;
  }
  return q;
}

int32_t kn_ew_requant(const kn_ew_quant *q, float x) {
  float r = rintf(x / q->scale);
  if (r != r)
    return q->zero_point < q->qmin ? q->qmin : q->zero_point;
  /* Clamp in float first so the int conversion cannot overflow. */
  if (r > 65536.0f)
    r = 65536.0f;
  if (r < -65536.0f)
    r = -65536.0f;
  int32_t v = (int32_t)r + q->zero_point;
  return v < q->qmin ? q->qmin : v > q->qmax ? q->qmax : v;
}

void kn_ew_inherit_quant(kn_tensor *out, const kn_tensor *in) {
  if (kn_ew_is_quantized(in) && !kn_ew_is_quantized(out) &&
      out->dtype == in->dtype)
    kn_tensor_set_quant(out, -1, 1, in->q_scale, in->q_zero_point);
}

kestrel_status kn_ew_act_read(const kn_node *n, kn_ew_act *act,
                              kestrel_error *err) {
  act->kind = (int)kn_attr_int(n, "activation", KN_ACT_NONE);
  act->alpha = kn_attr_float(n, "activation_alpha", 0.2f);
  act->lo = kn_attr_float(n, "activation_min", -FLT_MAX);
  act->hi = kn_attr_float(n, "activation_max", FLT_MAX);
  if (act->kind < KN_ACT_NONE || act->kind > KN_ACT_CLIP)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "unknown fused activation %d", act->kind);
  return KESTREL_OK;
}

float kn_ew_act_apply1(const kn_ew_act *act, float v) {
  switch (act->kind) {
  case KN_ACT_RELU: return v < 0.0f ? 0.0f : v;
  case KN_ACT_RELU_N1_TO_1: return v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
  case KN_ACT_RELU6: return v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v;
  case KN_ACT_TANH: return tanhf(v);
  case KN_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
  case KN_ACT_HARDSWISH: {
    float g = v / 6.0f + 0.5f;
    return v * (g < 0.0f ? 0.0f : g > 1.0f ? 1.0f : g);
  }
  case KN_ACT_LEAKY_RELU: return v < 0.0f ? act->alpha * v : v;
  case KN_ACT_CLIP: return v < act->lo ? act->lo : v > act->hi ? act->hi : v;
  default: return v;
  }
}

void kn_ew_act_apply(const kn_ew_act *act, float *y, int64_t n) {
  if (act->kind == KN_ACT_NONE)
    return;
  for (int64_t i = 0; i < n; i++)
    y[i] = kn_ew_act_apply1(act, y[i]);
}

/* ======================================================================
 * Unary ops
 * ====================================================================== */

typedef struct unary_params {
  float alpha, beta, gamma, bias, lambd;
  float lo, hi; /* Clip */
} unary_params;

/* Ops whose maths only makes sense in floating point. */
static bool unary_is_float_only(kn_op op) {
  switch (op) {
  case KN_OP_NEG:
  case KN_OP_ABS:
  case KN_OP_SIGN:
  case KN_OP_RELU:
  case KN_OP_CLIP:
  case KN_OP_NOT:
  case KN_OP_ISNAN:
  case KN_OP_ISINF: return false;
  default: return true;
  }
}

static void unary_params_read(const kn_node *n, unary_params *p) {
  float alpha = 0.0f;
  switch (n->op) {
  case KN_OP_LEAKY_RELU: alpha = 0.01f; break;
  case KN_OP_HARDSIGMOID: alpha = 0.2f; break;
  case KN_OP_SELU: alpha = 1.67326319217681884765625f; break;
  default: alpha = 1.0f; break;
  }
  p->alpha = kn_attr_float(n, "alpha", alpha);
  p->beta = kn_attr_float(n, "beta", 0.5f);
  p->gamma = kn_attr_float(n, "gamma", 1.05070102214813232421875f);
  p->bias = kn_attr_float(n, "bias", 0.0f);
  p->lambd = kn_attr_float(n, "lambd", 0.5f);
  p->lo = -FLT_MAX;
  p->hi = FLT_MAX;
}

/* y = f(x) for float32; x and y may be the same buffer. */
static void unary_f32(kn_op op, const unary_params *p, const float *x, float *y,
                      int64_t n) {
#define MAP(EXPR)                                                              \
  for (int64_t i = 0; i < n; i++) {                                            \
    const float v = x[i];                                                      \
    y[i] = (EXPR);                                                             \
  }                                                                            \
  break
  const float alpha = p->alpha, beta = p->beta, gamma = p->gamma;
  switch (op) {
  /* Comparisons written so NaN propagates, as numpy does. */
  case KN_OP_RELU: MAP(v < 0.0f ? 0.0f : v);
  case KN_OP_LEAKY_RELU: MAP(v < 0.0f ? alpha * v : v);
  case KN_OP_SIGMOID:
    MAP(v >= 0.0f ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v)));
  case KN_OP_TANH: MAP(tanhf(v));
  case KN_OP_HARDSIGMOID: MAP(fmaxf(0.0f, fminf(1.0f, alpha * v + beta)));
  case KN_OP_HARDSWISH:
    MAP(v * fmaxf(0.0f, fminf(1.0f, v * (1.0f / 6.0f) + 0.5f)));
  case KN_OP_ELU: MAP(v < 0.0f ? alpha * expm1f(v) : v);
  case KN_OP_SELU: MAP(v > 0.0f ? gamma * v : gamma * alpha * expm1f(v));
  case KN_OP_CELU:
    MAP(fmaxf(0.0f, v) + fminf(0.0f, alpha * expm1f(v / alpha)));
  /* log(1 + e^x) without overflow for large x. */
  case KN_OP_SOFTPLUS:
    MAP(v > 0.0f ? v + log1pf(expf(-v)) : log1pf(expf(v)));
  case KN_OP_SOFTSIGN: MAP(v / (1.0f + fabsf(v)));
  case KN_OP_THRESHOLDED_RELU: MAP(v > alpha ? v : 0.0f);
  case KN_OP_SHRINK:
    MAP(v < -p->lambd ? v + p->bias : v > p->lambd ? v - p->bias : 0.0f);
  case KN_OP_EXP: MAP(expf(v));
  case KN_OP_LOG: MAP(logf(v));
  case KN_OP_SQRT: MAP(sqrtf(v));
  case KN_OP_NEG: MAP(-v);
  case KN_OP_ABS: MAP(fabsf(v));
  case KN_OP_RECIPROCAL: MAP(1.0f / v);
  case KN_OP_FLOOR: MAP(floorf(v));
  case KN_OP_CEIL: MAP(ceilf(v));
  /* rint rounds half to even under the default rounding mode. */
  case KN_OP_ROUND: MAP(rintf(v));
  case KN_OP_SIGN: MAP(v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : v);
  case KN_OP_ERF: MAP(erff(v));
  case KN_OP_SIN: MAP(sinf(v));
  case KN_OP_COS: MAP(cosf(v));
  case KN_OP_TAN: MAP(tanf(v));
  case KN_OP_ASIN: MAP(asinf(v));
  case KN_OP_ACOS: MAP(acosf(v));
  case KN_OP_ATAN: MAP(atanf(v));
  case KN_OP_SINH: MAP(sinhf(v));
  case KN_OP_COSH: MAP(coshf(v));
  case KN_OP_ASINH: MAP(asinhf(v));
  case KN_OP_ACOSH: MAP(acoshf(v));
  case KN_OP_ATANH: MAP(atanhf(v));
  case KN_OP_CLIP: MAP(v < p->lo ? p->lo : v > p->hi ? p->hi : v);
  default: MAP(v);
  }
#undef MAP
}

static int64_t unary_i64(kn_op op, const unary_params *p, int64_t lo,
                         int64_t hi, int64_t v) {
  (void)p;
  switch (op) {
  case KN_OP_NEG: return (int64_t)(0u - (uint64_t)v);
  case KN_OP_ABS: return v < 0 ? (int64_t)(0u - (uint64_t)v) : v;
  case KN_OP_SIGN: return (v > 0) - (v < 0);
  case KN_OP_RELU: return v < 0 ? 0 : v;
  case KN_OP_CLIP: return v < lo ? lo : v > hi ? hi : v;
  default: return v;
  }
}

static kestrel_status unary_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  kestrel_dtype dt = x->dtype, out_dt = x->dtype;
  if (n->op == KN_OP_NOT) {
    if (dt != KESTREL_DTYPE_BOOL)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "Not needs bool input, got %s",
                          kestrel_dtype_name(dt));
  } else if (n->op == KN_OP_ISNAN || n->op == KN_OP_ISINF) {
    if (!kn_ew_dtype_is_float(dt))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "needs a float input, got %s",
                          kestrel_dtype_name(dt));
    out_dt = KESTREL_DTYPE_BOOL;
  } else if (!kn_ew_dtype_is_float(dt) && !kn_ew_is_quantized(x) &&
             (unary_is_float_only(n->op) || !kn_ew_dtype_is_int(dt))) {
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "unsupported input dtype %s", kestrel_dtype_name(dt));
  }
  if (n->op == KN_OP_CLIP) {
    for (int i = 1; i < 3; i++) {
      const kn_tensor *b = kn_in(g, n, i);
      if (b && kn_tensor_numel(b) != 1)
        return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                            "Clip bound '%s' must hold one value", b->name);
      if (b && kestrel_dtype_size(b->dtype) == 0)
        return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                            "Clip bound '%s' has an unsupported dtype",
                            b->name);
    }
  }
  kn_set_shape(y, out_dt, x->ndim, x->dims);
  kn_ew_inherit_quant(y, x);
  return KESTREL_OK;
}

/* Clip bounds: optional inputs (opset 11+) win over attributes (opset < 11,
 * and what the TFLite importer emits). */
static void clip_bounds(kn_graph *g, const kn_node *n, unary_params *p,
                        int64_t *ilo, int64_t *ihi) {
  p->lo = kn_attr_float(n, "min", -FLT_MAX);
  p->hi = kn_attr_float(n, "max", FLT_MAX);
  *ilo = INT64_MIN;
  *ihi = INT64_MAX;
  const kn_tensor *lo = kn_in(g, n, 1), *hi = kn_in(g, n, 2);
  if (lo && lo->data) {
    p->lo = (float)kn_ew_load_f64(lo->data, lo->dtype, 0);
    *ilo = kn_ew_load_i64(lo->data, lo->dtype, 0);
  }
  if (hi && hi->data) {
    p->hi = (float)kn_ew_load_f64(hi->data, hi->dtype, 0);
    *ihi = kn_ew_load_i64(hi->data, hi->dtype, 0);
  }
}

/* Chunk for dtypes computed through float (f16, f64, quantized). */
#define KN_EW_CHUNK 256

static kestrel_status unary_run(const kn_exec *x, const kn_node *n,
                                kestrel_error *err) {
  kestrel_status fast_st;
  if (kn_eltwise_fast_unary(x, n, unary_run, &fast_st, err))
    return fast_st; /* 8-bit: a table this function computed */
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *out = kn_out(g, n, 0);
  int64_t count = kn_tensor_numel(in);
  unary_params p;
  unary_params_read(n, &p);
  int64_t ilo = 0, ihi = 0;
  if (n->op == KN_OP_CLIP)
    clip_bounds(g, n, &p, &ilo, &ihi);
  const void *src = in->data;
  void *dst = out->data;

  if (n->op == KN_OP_NOT) {
    for (int64_t i = 0; i < count; i++)
      ((uint8_t *)dst)[i] = !((const uint8_t *)src)[i];
    return KESTREL_OK;
  }
  if (n->op == KN_OP_ISNAN || n->op == KN_OP_ISINF) {
    bool neg = kn_attr_int(n, "detect_negative", 1) != 0;
    bool pos = kn_attr_int(n, "detect_positive", 1) != 0;
    for (int64_t i = 0; i < count; i++) {
      double v = kn_ew_load_f64(src, in->dtype, i);
      bool r = n->op == KN_OP_ISNAN
                   ? v != v
                   : (isinf(v) && ((v > 0 && pos) || (v < 0 && neg)));
      ((uint8_t *)dst)[i] = r;
    }
    return KESTREL_OK;
  }
  if (in->dtype == KESTREL_DTYPE_F32) {
    unary_f32(n->op, &p, src, dst, count);
    return KESTREL_OK;
  }
  if (kn_ew_is_quantized(in)) {
    kn_ew_quant qi = kn_ew_quant_of(in), qo = kn_ew_quant_of(out);
    float buf[KN_EW_CHUNK];
    for (int64_t i0 = 0; i0 < count; i0 += KN_EW_CHUNK) {
      int64_t m = count - i0 < KN_EW_CHUNK ? count - i0 : KN_EW_CHUNK;
      for (int64_t i = 0; i < m; i++)
        buf[i] = kn_ew_dequant(
            &qi, (int32_t)kn_ew_load_i64(src, in->dtype, i0 + i));
      unary_f32(n->op, &p, buf, buf, m);
      for (int64_t i = 0; i < m; i++)
        kn_ew_store_i64(dst, out->dtype, i0 + i, kn_ew_requant(&qo, buf[i]));
    }
    return KESTREL_OK;
  }
  if (kn_ew_dtype_is_int(in->dtype)) {
    if (unary_is_float_only(n->op))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "integer input without quantization");
    for (int64_t i = 0; i < count; i++)
      kn_ew_store_i64(dst, out->dtype, i,
                      unary_i64(n->op, &p, ilo, ihi,
                                kn_ew_load_i64(src, in->dtype, i)));
    return KESTREL_OK;
  }
  /* f16 and f64: compute in float32, which is what these kernels promise. */
  float buf[KN_EW_CHUNK];
  for (int64_t i0 = 0; i0 < count; i0 += KN_EW_CHUNK) {
    int64_t m = count - i0 < KN_EW_CHUNK ? count - i0 : KN_EW_CHUNK;
    for (int64_t i = 0; i < m; i++)
      buf[i] = (float)kn_ew_load_f64(src, in->dtype, i0 + i);
    unary_f32(n->op, &p, buf, buf, m);
    for (int64_t i = 0; i < m; i++)
      kn_ew_store_f64(dst, out->dtype, i0 + i, buf[i]);
  }
  return KESTREL_OK;
}

/* ======================================================================
 * Binary and variadic ops with numpy broadcasting
 * ====================================================================== */

typedef enum bin_kind {
  BIN_ARITH,   /* output dtype = input dtype */
  BIN_COMPARE, /* any numeric in, bool out */
  BIN_LOGIC,   /* bool in, bool out */
} bin_kind;

static bin_kind binary_kind(kn_op op) {
  switch (op) {
  case KN_OP_EQUAL:
  case KN_OP_LESS:
  case KN_OP_GREATER:
  case KN_OP_LESS_OR_EQUAL:
  case KN_OP_GREATER_OR_EQUAL: return BIN_COMPARE;
  case KN_OP_AND:
  case KN_OP_OR:
  case KN_OP_XOR: return BIN_LOGIC;
  default: return BIN_ARITH;
  }
}

static bool binary_is_variadic(kn_op op) {
  return op == KN_OP_SUM || op == KN_OP_MEAN || op == KN_OP_MAX ||
         op == KN_OP_MIN;
}

/* The pairwise op a variadic op folds with. */
static kn_op binary_pair_op(kn_op op) {
  return op == KN_OP_SUM || op == KN_OP_MEAN ? KN_OP_ADD : op;
}

static float bin_f32(kn_op op, float a, float b, bool c_fmod) {
  switch (op) {
  case KN_OP_ADD: return a + b;
  case KN_OP_SUB: return a - b;
  case KN_OP_MUL: return a * b;
  case KN_OP_DIV: return a / b;
  case KN_OP_POW: return powf(a, b);
  case KN_OP_MAX: return a > b || a != a ? a : b;
  case KN_OP_MIN: return a < b || a != a ? a : b;
  case KN_OP_PRELU: return a < 0.0f ? a * b : a;
  case KN_OP_MOD: {
    float r = fmodf(a, b);
    /* fmod=0 is Python's %: the result takes the divisor's sign. */
    if (!c_fmod && r != 0.0f && ((r < 0.0f) != (b < 0.0f)))
      r += b;
    return r;
  }
  default: return 0.0f;
  }
}

static double bin_f64(kn_op op, double a, double b, bool c_fmod) {
  switch (op) {
  case KN_OP_ADD: return a + b;
  case KN_OP_SUB: return a - b;
  case KN_OP_MUL: return a * b;
  case KN_OP_DIV: return a / b;
  case KN_OP_POW: return pow(a, b);
  case KN_OP_MAX: return a > b || a != a ? a : b;
  case KN_OP_MIN: return a < b || a != a ? a : b;
  case KN_OP_PRELU: return a < 0.0 ? a * b : a;
  case KN_OP_MOD: {
    double r = fmod(a, b);
    if (!c_fmod && r != 0.0 && ((r < 0.0) != (b < 0.0)))
      r += b;
    return r;
  }
  default: return 0.0;
  }
}

/* Integer arithmetic wraps (through uint64) instead of overflowing, and
 * division by zero gives 0 instead of a trap: the data is untrusted. */
static int64_t bin_i64(kn_op op, int64_t a, int64_t b, bool c_fmod,
                       bool shift_left) {
  uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
  switch (op) {
  case KN_OP_ADD: return (int64_t)(ua + ub);
  case KN_OP_SUB: return (int64_t)(ua - ub);
  case KN_OP_MUL: return (int64_t)(ua * ub);
  case KN_OP_DIV:
    if (b == 0)
      return 0;
    if (b == -1)
      return (int64_t)(0u - ua);
    return a / b;
  case KN_OP_MOD: {
    if (b == 0 || b == -1)
      return 0;
    int64_t r = a % b;
    if (!c_fmod && r != 0 && ((r < 0) != (b < 0)))
      r += b;
    return r;
  }
  case KN_OP_POW: {
    double r = pow((double)a, (double)b);
    return f64_to_i64(r);
  }
  case KN_OP_MAX: return a > b ? a : b;
  case KN_OP_MIN: return a < b ? a : b;
  case KN_OP_PRELU: return a < 0 ? (int64_t)(ua * ub) : a;
  case KN_OP_AND: return (a != 0) && (b != 0);
  case KN_OP_OR: return (a != 0) || (b != 0);
  case KN_OP_XOR: return (a != 0) != (b != 0);
  case KN_OP_BITSHIFT:
    if (b < 0 || b >= 64)
      return 0;
    return shift_left ? (int64_t)(ua << b) : (int64_t)(ua >> b);
  default: return 0;
  }
}

static bool cmp_f64(kn_op op, double a, double b) {
  switch (op) {
  case KN_OP_EQUAL: return a == b;
  case KN_OP_LESS: return a < b;
  case KN_OP_GREATER: return a > b;
  case KN_OP_LESS_OR_EQUAL: return a <= b;
  case KN_OP_GREATER_OR_EQUAL: return a >= b;
  default: return false;
  }
}

static bool cmp_i64(kn_op op, int64_t a, int64_t b) {
  switch (op) {
  case KN_OP_EQUAL: return a == b;
  case KN_OP_LESS: return a < b;
  case KN_OP_GREATER: return a > b;
  case KN_OP_LESS_OR_EQUAL: return a <= b;
  case KN_OP_GREATER_OR_EQUAL: return a >= b;
  default: return false;
  }
}

/* One broadcast row of a float32 arithmetic op: y[j] = a[j*sa] op b[j*sb]. */
static void row_f32(kn_op op, const float *a, int64_t sa, const float *b,
                    int64_t sb, float *y, int64_t n, bool c_fmod) {
/* The dense and scalar-operand cases get their own loops so the compiler
 * can vectorize them; they are what [N,C,H,W] op [1,C,1,1] reduces to. */
#define ROW(EXPR)                                                              \
  if (sa == 1 && sb == 1) {                                                    \
    for (int64_t j = 0; j < n; j++) {                                          \
      const float va = a[j], vb = b[j];                                        \
      y[j] = (EXPR);                                                           \
    }                                                                          \
  } else if (sa == 1 && sb == 0) {                                             \
    const float vb = b[0];                                                     \
    for (int64_t j = 0; j < n; j++) {                                          \
      const float va = a[j];                                                   \
      y[j] = (EXPR);                                                           \
    }                                                                          \
  } else if (sa == 0 && sb == 1) {                                             \
    const float va = a[0];                                                     \
    for (int64_t j = 0; j < n; j++) {                                          \
      const float vb = b[j];                                                   \
      y[j] = (EXPR);                                                           \
    }                                                                          \
  } else {                                                                     \
    for (int64_t j = 0; j < n; j++) {                                          \
      const float va = a[j * sa], vb = b[j * sb];                              \
      y[j] = (EXPR);                                                           \
    }                                                                          \
  }                                                                            \
  break
  switch (op) {
  case KN_OP_ADD: ROW(va + vb);
  case KN_OP_SUB: ROW(va - vb);
  case KN_OP_MUL: ROW(va * vb);
  case KN_OP_DIV: ROW(va / vb);
  case KN_OP_PRELU: ROW(va < 0.0f ? va * vb : va);
  default: ROW(bin_f32(op, va, vb, c_fmod));
  }
#undef ROW
}

static kestrel_status binary_infer(kn_graph *g, kn_node *n,
                                   kestrel_error *err) {
  bool variadic = binary_is_variadic(n->op);
  int need = n->op == KN_OP_WHERE ? 3 : variadic ? 1 : 2;
  kestrel_status st = kn_ew_check_io(g, n, need, 1, err);
  if (st != KESTREL_OK)
    return st;
  if (!variadic && n->num_inputs != need)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs %d inputs, has %d", need, n->num_inputs);
  for (int i = 0; i < n->num_inputs; i++) {
    const kn_tensor *t = kn_in(g, n, i);
    if (!t || t->ndim < 0 || t->ndim > KN_MAX_DIMS)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "input %d is missing or has no shape", i);
  }
  const kn_tensor *a = kn_in(g, n, 0);
  int nd = a->ndim;
  int64_t dims[KN_MAX_DIMS];
  memcpy(dims, a->dims, sizeof(dims));
  for (int i = 1; i < n->num_inputs; i++) {
    const kn_tensor *t = kn_in(g, n, i);
    if (!kn_ew_broadcast_shape(nd, dims, t->ndim, t->dims, &nd, dims))
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "input '%s' does not broadcast with the others",
                          t->name);
  }
  kn_tensor *y = kn_out(g, n, 0);

  if (n->op == KN_OP_WHERE) {
    const kn_tensor *c = kn_in(g, n, 0), *tx = kn_in(g, n, 1),
                    *ty = kn_in(g, n, 2);
    if (c->dtype != KESTREL_DTYPE_BOOL || tx->dtype != ty->dtype ||
        kestrel_dtype_size(tx->dtype) == 0)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "Where needs a bool condition and equal dtypes");
    kn_set_shape(y, tx->dtype, nd, dims);
    return KESTREL_OK;
  }
  if (n->op == KN_OP_PRELU) {
    /* Slope broadcasts to X (unidirectional): the result keeps X's shape. */
    bool same = nd == a->ndim;
    for (int d = 0; same && d < nd; d++)
      same = dims[d] == a->dims[d];
    if (!same)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "slope does not broadcast to X");
  }

  kestrel_dtype dt = a->dtype;
  bool quant = kn_ew_is_quantized(a);
  for (int i = 1; i < n->num_inputs; i++) {
    const kn_tensor *t = kn_in(g, n, i);
    /* Pow's exponent (opset 12+) and BitShift's amount may differ. */
    if (t->dtype != dt && n->op != KN_OP_POW)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "mixed input dtypes %s and %s",
                          kestrel_dtype_name(dt),
                          kestrel_dtype_name(t->dtype));
    if (n->op == KN_OP_POW && kestrel_dtype_size(t->dtype) == 0)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "unsupported exponent dtype");
    if (kn_ew_is_quantized(t) != quant)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "mixes quantized and plain integer inputs");
  }
  bin_kind kind = binary_kind(n->op);
  kestrel_dtype out_dt = dt;
  if (kind == BIN_LOGIC) {
    if (dt != KESTREL_DTYPE_BOOL)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "needs bool inputs");
  } else if (kind == BIN_COMPARE) {
    out_dt = KESTREL_DTYPE_BOOL;
    if (dt == KESTREL_DTYPE_BOOL && n->op != KN_OP_EQUAL)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "ordering bool inputs");
  } else if (n->op == KN_OP_BITSHIFT) {
    if (!kn_ew_dtype_is_int(dt))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "needs integer inputs");
    const char *dir = kn_attr_string(n, "direction", "");
    if (strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "direction must be LEFT or RIGHT");
  } else {
    if (dt == KESTREL_DTYPE_BOOL)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "arithmetic on bool");
    if (quant && (variadic && n->num_inputs > 2))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "quantized variadic op");
  }
  kn_ew_act act;
  st = kn_ew_act_read(n, &act, err);
  if (st != KESTREL_OK)
    return st;
  kn_set_shape(y, out_dt, nd, dims);
  if (quant && kind == BIN_ARITH)
    kn_ew_inherit_quant(y, a);
  return KESTREL_OK;
}

/* out = a op b with broadcasting; out has the full (broadcast) shape and may
 * be the same buffer as a when a already has that shape. */
static void binary_apply(kn_op op, const kn_tensor *out, const kn_tensor *a,
                         const kn_tensor *b, bool c_fmod, bool shift_left,
                         const kn_ew_act *act) {
  const kn_tensor *ops3[3] = {out, a, b};
  kn_ew_bcast it;
  kn_ew_bcast_init(&it, out->ndim, out->dims, 3, ops3);
  bin_kind kind = binary_kind(op);
  bool quant = kn_ew_is_quantized(a) && kind == BIN_ARITH;
  kn_ew_quant qa = {0}, qb = {0}, qy = {0};
  if (quant) {
    qa = kn_ew_quant_of(a);
    qb = kn_ew_quant_of(b);
    qy = kn_ew_quant_of(out);
  }
  bool fast = !quant && kind == BIN_ARITH && a->dtype == KESTREL_DTYPE_F32 &&
              b->dtype == KESTREL_DTYPE_F32;
  bool as_float = kn_ew_dtype_is_float(a->dtype) ||
                  kn_ew_dtype_is_float(b->dtype);
  for (int64_t r = 0; r < it.rows; r++, kn_ew_bcast_next(&it)) {
    int64_t oy = it.off[0], oa = it.off[1], ob = it.off[2];
    int64_t sy = it.step[0], sa = it.step[1], sb = it.step[2];
    if (fast) {
      float *y = (float *)out->data + oy;
      row_f32(op, (const float *)a->data + oa, sa, (const float *)b->data + ob,
              sb, y, it.inner, c_fmod);
      kn_ew_act_apply(act, y, it.inner);
      continue;
    }
    for (int64_t j = 0; j < it.inner; j++) {
      int64_t ia = oa + j * sa, ib = ob + j * sb, iy = oy + j * sy;
      if (quant) {
        float va = kn_ew_dequant(&qa, (int32_t)kn_ew_load_i64(a->data, a->dtype, ia));
        float vb = kn_ew_dequant(&qb, (int32_t)kn_ew_load_i64(b->data, b->dtype, ib));
        float v = kn_ew_act_apply1(act, bin_f32(op, va, vb, c_fmod));
        kn_ew_store_i64(out->data, out->dtype, iy, kn_ew_requant(&qy, v));
      } else if (kind == BIN_COMPARE) {
        bool v = as_float
                     ? cmp_f64(op, kn_ew_load_f64(a->data, a->dtype, ia),
                               kn_ew_load_f64(b->data, b->dtype, ib))
                     : cmp_i64(op, kn_ew_load_i64(a->data, a->dtype, ia),
                               kn_ew_load_i64(b->data, b->dtype, ib));
        ((uint8_t *)out->data)[iy] = v;
      } else if (kn_ew_dtype_is_float(out->dtype)) {
        double v = bin_f64(op, kn_ew_load_f64(a->data, a->dtype, ia),
                           kn_ew_load_f64(b->data, b->dtype, ib), c_fmod);
        if (act->kind != KN_ACT_NONE)
          v = kn_ew_act_apply1(act, (float)v);
        kn_ew_store_f64(out->data, out->dtype, iy, v);
      } else if (op == KN_OP_POW && as_float) {
        /* Integer base, float exponent. */
        double v = pow(kn_ew_load_f64(a->data, a->dtype, ia),
                       kn_ew_load_f64(b->data, b->dtype, ib));
        kn_ew_store_f64(out->data, out->dtype, iy, v);
      } else {
        int64_t v = bin_i64(op, kn_ew_load_i64(a->data, a->dtype, ia),
                            kn_ew_load_i64(b->data, b->dtype, ib), c_fmod,
                            shift_left);
        kn_ew_store_i64(out->data, out->dtype, iy, v);
      }
    }
  }
}

static kestrel_status where_run(const kn_exec *x, const kn_node *n) {
  kn_graph *g = x->graph;
  const kn_tensor *ops[4] = {kn_out(g, n, 0), kn_in(g, n, 0), kn_in(g, n, 1),
                             kn_in(g, n, 2)};
  const kn_tensor *out = ops[0];
  size_t es = kestrel_dtype_size(out->dtype);
  /* Two passes of the 3-operand walker: first X where cond, then Y. */
  for (int pass = 0; pass < 2; pass++) {
    const kn_tensor *src = ops[2 + pass];
    const kn_tensor *three[3] = {out, ops[1], src};
    kn_ew_bcast it;
    kn_ew_bcast_init(&it, out->ndim, out->dims, 3, three);
    const uint8_t *cond = ops[1]->data;
    for (int64_t r = 0; r < it.rows; r++, kn_ew_bcast_next(&it))
      for (int64_t j = 0; j < it.inner; j++) {
        bool c = cond[it.off[1] + j * it.step[1]] != 0;
        if (c != (pass == 0))
          continue;
        memcpy((uint8_t *)out->data + (size_t)(it.off[0] + j * it.step[0]) * es,
               (const uint8_t *)src->data +
                   (size_t)(it.off[2] + j * it.step[2]) * es,
               es);
      }
  }
  return KESTREL_OK;
}

static kestrel_status binary_run(const kn_exec *x, const kn_node *n,
                                 kestrel_error *err) {
  if (n->op == KN_OP_WHERE)
    return where_run(x, n);
  if (kn_eltwise_fast_binary(x, n)) /* int8 Add/Mul, same bytes */
    return KESTREL_OK;
  kn_graph *g = x->graph;
  kn_tensor *out = kn_out(g, n, 0);
  kn_ew_act act;
  kestrel_status st = kn_ew_act_read(n, &act, err);
  if (st != KESTREL_OK)
    return st;
  bool c_fmod = kn_attr_int(n, "fmod", 0) != 0;
  bool left = strcmp(kn_attr_string(n, "direction", ""), "LEFT") == 0;
  int count = n->num_inputs;
  const kn_tensor *a = kn_in(g, n, 0);
  kn_op op = binary_pair_op(n->op);
  if (count == 1) {
    /* Variadic op of one input: a (broadcast-free) copy. */
    kn_ew_convert(a->data, a->dtype, out->data, out->dtype,
                  kn_tensor_numel(out));
    return KESTREL_OK;
  }
  kn_ew_act none = {KN_ACT_NONE, 0.0f, 0.0f, 0.0f};
  /* Fold left to right; the activation applies to the final value only. */
  binary_apply(op, out, a, kn_in(g, n, 1), c_fmod, left,
               count == 2 && n->op != KN_OP_MEAN ? &act : &none);
  for (int i = 2; i < count; i++)
    binary_apply(op, out, out, kn_in(g, n, i), c_fmod, left,
                 i == count - 1 && n->op != KN_OP_MEAN ? &act : &none);
  if (n->op == KN_OP_MEAN) {
    int64_t m = kn_tensor_numel(out);
    for (int64_t i = 0; i < m; i++) {
      if (kn_ew_dtype_is_float(out->dtype))
        kn_ew_store_f64(out->data, out->dtype, i,
                        kn_ew_load_f64(out->data, out->dtype, i) / count);
      else
        kn_ew_store_i64(out->data, out->dtype, i,
                        kn_ew_load_i64(out->data, out->dtype, i) / count);
    }
  }
  return KESTREL_OK;
}

static uint64_t eltwise_macs(kn_graph *g, const kn_node *n) {
  const kn_tensor *y = kn_out(g, n, 0);
  return y ? (uint64_t)kn_tensor_numel(y) : 0;
}

void kn_register_ops_elementwise(kn_op_info *t) {
  static const kn_op unary[] = {
      KN_OP_RELU,     KN_OP_LEAKY_RELU, KN_OP_SIGMOID,  KN_OP_TANH,
      KN_OP_HARDSIGMOID, KN_OP_HARDSWISH, KN_OP_ELU,    KN_OP_SELU,
      KN_OP_CELU,     KN_OP_SOFTPLUS,   KN_OP_SOFTSIGN, KN_OP_THRESHOLDED_RELU,
      KN_OP_SHRINK,   KN_OP_EXP,        KN_OP_LOG,      KN_OP_SQRT,
      KN_OP_NEG,      KN_OP_ABS,        KN_OP_RECIPROCAL, KN_OP_FLOOR,
      KN_OP_CEIL,     KN_OP_ROUND,      KN_OP_SIGN,     KN_OP_ERF,
      KN_OP_SIN,      KN_OP_COS,        KN_OP_TAN,      KN_OP_ASIN,
      KN_OP_ACOS,     KN_OP_ATAN,       KN_OP_SINH,     KN_OP_COSH,
      KN_OP_ASINH,    KN_OP_ACOSH,      KN_OP_ATANH,    KN_OP_ISNAN,
      KN_OP_ISINF,    KN_OP_NOT,        KN_OP_CLIP,
  };
  static const kn_op binary[] = {
      KN_OP_ADD,   KN_OP_SUB,     KN_OP_MUL,     KN_OP_DIV,
      KN_OP_POW,   KN_OP_MOD,     KN_OP_MAX,     KN_OP_MIN,
      KN_OP_SUM,   KN_OP_MEAN,    KN_OP_EQUAL,   KN_OP_LESS,
      KN_OP_GREATER, KN_OP_LESS_OR_EQUAL, KN_OP_GREATER_OR_EQUAL, KN_OP_AND,
      KN_OP_OR,    KN_OP_XOR,     KN_OP_WHERE,   KN_OP_BITSHIFT,
      KN_OP_PRELU,
  };
  for (size_t i = 0; i < sizeof(unary) / sizeof(unary[0]); i++)
    t[unary[i]] = (kn_op_info){.infer = unary_infer, .run = unary_run,
                               .macs = eltwise_macs};
  for (size_t i = 0; i < sizeof(binary) / sizeof(binary[0]); i++)
    t[binary[i]] = (kn_op_info){.infer = binary_infer, .run = binary_run,
                                .macs = eltwise_macs};
}
