/* Helpers shared by the conv/pool/quant reference kernels (ops/conv.c,
 * ops/pool.c, ops/quant.c): optional inputs, fused activations, quantization
 * arithmetic and the layout-independent view of spatial tensors. */
#ifndef KESTREL_OPS_COMMON_H
#define KESTREL_OPS_COMMON_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

/* Spatial ops handle 1-D, 2-D and 3-D windows; fewer dims are padded with
 * leading size-1 dims so one loop nest serves all of them. */
#define KN_MAX_SPATIAL 3

/* Input i when present: not -1 and not an ONNX "" placeholder. */
static inline kn_tensor *kn_opt_in(kn_graph *g, const kn_node *n, int i) {
  kn_tensor *t = kn_in(g, n, i);
  if (t && t->optional_absent)
    return NULL;
  return t;
}

static inline bool kn_is_const(const kn_tensor *t) {
  return t && t->kind == KN_TENSOR_CONSTANT && t->data;
}

/* ---- fused activation ---------------------------------------------------- */

typedef struct kn_act {
  int kind;
  float alpha, beta, lo, hi;
} kn_act;

static inline kn_act kn_act_from_node(const kn_node *n) {
  kn_act a;
  a.kind = (int)kn_attr_int(n, "activation", KN_ACT_NONE);
  a.alpha = kn_attr_float(n, "activation_alpha",
                          a.kind == KN_ACT_HARDSIGMOID ? 0.2f : 0.01f);
  a.beta = kn_attr_float(n, "activation_beta", 0.5f);
  a.lo = kn_attr_float(n, "activation_min", -INFINITY);
  a.hi = kn_attr_float(n, "activation_max", INFINITY);
  return a;
}

static inline bool kn_act_valid(const kn_act *a) {
  return a->kind >= KN_ACT_NONE && a->kind <= KN_ACT_HARDSIGMOID;
}

static inline float kn_act_apply1(const kn_act *a, float v) {
  switch (a->kind) {
  case KN_ACT_RELU:
    return v > 0.0f ? v : 0.0f;
  case KN_ACT_RELU_N1_TO_1:
    return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
  case KN_ACT_RELU6:
    return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
  case KN_ACT_TANH:
    return tanhf(v);
  case KN_ACT_SIGMOID:
    return 1.0f / (1.0f + expf(-v));
  case KN_ACT_HARDSWISH: {
    float r = v + 3.0f;
    r = r < 0.0f ? 0.0f : (r > 6.0f ? 6.0f : r);
    return v * r * (1.0f / 6.0f);
  }
  case KN_ACT_LEAKY_RELU:
    return v >= 0.0f ? v : v * a->alpha;
  case KN_ACT_CLIP:
    return v < a->lo ? a->lo : (v > a->hi ? a->hi : v);
  case KN_ACT_HARDSIGMOID:
    return fmaxf(0.0f, fminf(1.0f, a->alpha * v + a->beta));
  default:
    return v;
  }
}

static inline void kn_act_apply(const kn_act *a, float *p, int64_t count) {
  if (a->kind == KN_ACT_NONE)
    return;
  for (int64_t i = 0; i < count; i++)
    p[i] = kn_act_apply1(a, p[i]);
}

/* ---- quantization -------------------------------------------------------- */

static inline bool kn_is_q8(kestrel_dtype dt) {
  return dt == KESTREL_DTYPE_I8 || dt == KESTREL_DTYPE_U8;
}

/* Round half to even: the default FP rounding mode does exactly that.
 * Results are clamped to +-2^40, far outside every quantized range yet far
 * from int64 overflow, so callers may add a zero point before saturating
 * (an infinite input would otherwise overflow there). */
#define KN_ROUND_LIMIT 1099511627776.0 /* 2^40 */
static inline int64_t kn_round_even(double v) {
  if (!(v == v))
    return 0;
  if (v > KN_ROUND_LIMIT)
    return (int64_t)KN_ROUND_LIMIT;
  if (v < -KN_ROUND_LIMIT)
    return -(int64_t)KN_ROUND_LIMIT;
  return (int64_t)nearbyint(v);
}

static inline int32_t kn_saturate(int64_t v, kestrel_dtype dt) {
  int64_t lo, hi;
  switch (dt) {
  case KESTREL_DTYPE_U8: lo = 0; hi = 255; break;
  case KESTREL_DTYPE_I8: lo = -128; hi = 127; break;
  case KESTREL_DTYPE_I16: lo = INT16_MIN; hi = INT16_MAX; break;
  default: lo = INT32_MIN; hi = INT32_MAX; break;
  }
  return (int32_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* Element i of an 8/16/32-bit integer buffer, widened. */
static inline int32_t kn_load_int(const void *p, kestrel_dtype dt, int64_t i) {
  switch (dt) {
  case KESTREL_DTYPE_U8: return ((const uint8_t *)p)[i];
  case KESTREL_DTYPE_I8: return ((const int8_t *)p)[i];
  case KESTREL_DTYPE_I16: return ((const int16_t *)p)[i];
  case KESTREL_DTYPE_I32: return ((const int32_t *)p)[i];
  default: return 0;
  }
}

static inline void kn_store_int(void *p, kestrel_dtype dt, int64_t i,
                                int32_t v) {
  switch (dt) {
  case KESTREL_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
  case KESTREL_DTYPE_I8: ((int8_t *)p)[i] = (int8_t)v; break;
  case KESTREL_DTYPE_I16: ((int16_t *)p)[i] = (int16_t)v; break;
  case KESTREL_DTYPE_I32: ((int32_t *)p)[i] = v; break;
  default: break;
  }
}

/* Scale / zero point of a tensor's own quantization for channel ch (ignored
 * when per-tensor); scale 1 and zero point 0 when it has none, so plain
 * uint8 tensors (MaxPool on uint8) go through the same path. */
static inline float kn_q_scale(const kn_tensor *t, int64_t ch) {
  if (!t->q_count || !t->q_scale)
    return 1.0f;
  if (t->q_count == 1 || ch < 0 || ch >= t->q_count)
    return t->q_scale[0];
  return t->q_scale[ch];
}

static inline int32_t kn_q_zero(const kn_tensor *t, int64_t ch) {
  if (!t->q_count || !t->q_zero_point)
    return 0;
  if (t->q_count == 1 || ch < 0 || ch >= t->q_count)
    return t->q_zero_point[0];
  return t->q_zero_point[ch];
}

/* Per-tensor quantized 8-bit activation (TFLite full-integer models). */
static inline bool kn_is_q8_tensor(const kn_tensor *t) {
  return t && kn_is_q8(t->dtype) && t->q_count >= 1 && t->q_scale;
}

/* ---- spatial tensors ----------------------------------------------------- */

/* [N, C, D, H, W] view of an NC... or N...C tensor through element strides. */
typedef struct kn_spatial {
  int nsp; /* spatial dims of the tensor (1..3) */
  int64_t n, c;
  int64_t sp[KN_MAX_SPATIAL]; /* D, H, W; leading ones when nsp < 3 */
  int64_t stride_n, stride_c, stride_sp[KN_MAX_SPATIAL];
} kn_spatial;

/* Window geometry of Conv/pools, padded to 3 spatial dims. */
typedef struct kn_window {
  int64_t k[KN_MAX_SPATIAL], s[KN_MAX_SPATIAL], d[KN_MAX_SPATIAL];
  int64_t pb[KN_MAX_SPATIAL], pe[KN_MAX_SPATIAL]; /* pads begin/end */
  int64_t out[KN_MAX_SPATIAL];
} kn_window;

/* Fills v from t's dims for layout (KN_LAYOUT_*). t must have rank 3..5. */
bool kn_spatial_view(const kn_tensor *t, int layout, kn_spatial *v);
/* Output dims of a tensor with the view's layout but channels c and spatial
 * sizes sp (nsp of them, padded form). */
void kn_spatial_dims(const kn_spatial *v, int layout, int64_t c,
                     const int64_t *sp, int64_t *dims);
/* Reads kernel/strides/dilations/pads/auto_pad of node n for nsp spatial
 * dims with input sizes in (padded form) and kernel (unpadded, nsp long),
 * and computes the output size. ceil_mode as in pools. */
kestrel_status kn_window_geometry(const kn_node *n, int nsp,
                                  const int64_t *in, const int64_t *kernel,
                                  bool ceil_mode, kn_window *w,
                                  kestrel_error *err);
/* Reads the "layout" attribute; false when invalid. */
bool kn_layout_attr(const kn_node *n, int *layout);

/* Floor / ceiling division for any sign of a and b > 0. */
static inline int64_t kn_floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}
static inline int64_t kn_ceil_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a > 0) ? q + 1 : q;
}

/* Range [lo, hi) of output positions o in [0, out) whose input position
 * o*s + off lands inside [0, in). */
static inline void kn_valid_range(int64_t out, int64_t in, int64_t s,
                                  int64_t off, int64_t *lo, int64_t *hi) {
  int64_t a = kn_ceil_div(-off, s);
  int64_t b = kn_floor_div(in - 1 - off, s) + 1;
  if (a < 0) a = 0;
  if (b > out) b = out;
  if (b < a) b = a;
  *lo = a;
  *hi = b;
}

/* ---- batched matrix products (MatMul, MatMulInteger, QLinearMatMul) ----- */

typedef struct kn_matmul_shape {
  int64_t m, k, n;
  int batch_ndim;
  int64_t batch[KN_MAX_DIMS];
  int64_t a_batch_stride[KN_MAX_DIMS], b_batch_stride[KN_MAX_DIMS];
  int64_t num_batches;
  int out_ndim;
  int64_t out_dims[KN_MAX_DIMS];
} kn_matmul_shape;

/* numpy.matmul shape rules, 1-D operands included. */
kestrel_status kn_matmul_shape_of(const kn_node *n, const kn_tensor *a,
                                  const kn_tensor *b, kn_matmul_shape *s,
                                  kestrel_error *err);
/* Element offsets of batch bi's A and B matrices. */
void kn_matmul_batch_offsets(const kn_matmul_shape *s, int64_t bi,
                             int64_t *a_off, int64_t *b_off);

/* ---- integer convolution core (Conv on q8, QLinearConv, ConvInteger) ---- */

typedef struct kn_qconv {
  const kn_tensor *x, *w, *bias; /* bias int32 [M] or NULL */
  kn_tensor *y; /* layout comes from the node's attribute */
  int32_t x_zero;
  const kn_tensor *w_zero; /* NULL, scalar or [M] */
  int32_t w_zero_const;    /* used when w_zero == NULL */
  /* Output: raw int32 accumulators, or requantized:
   * y = sat(round(act(acc * x_scale * w_scale[m]) / y_scale) + y_zero). */
  bool raw_int32;
  float x_scale, y_scale;
  const float *w_scale; /* w_scale_count of them (1 or M) */
  int64_t w_scale_count;
  int32_t y_zero;
  kn_act act;
} kn_qconv;

/* Validates shapes and attributes, sets y's shape (dtype ydt). */
kestrel_status kn_conv_infer_common(kn_graph *g, kn_node *n, kn_tensor *x,
                                    kn_tensor *w, kn_tensor *b, kn_tensor *y,
                                    kestrel_dtype ydt, kestrel_error *err);
kestrel_status kn_qconv_run(const kn_node *n, const kn_qconv *q,
                            kestrel_error *err);
uint64_t kn_conv_macs(kn_graph *g, const kn_node *n);

/* ---- integer GEMM core (Gemm on q8, MatMulInteger, QLinearMatMul) -------- */

typedef struct kn_qgemm {
  /* C[i,j] = sum_k (A[i,k] - a_zero[i]) * (B[k,j] - b_zero[j]) (+ bias[j]);
   * element (i,k) of A sits at a[i*a_rs + k*a_cs], likewise for B. */
  const void *a, *b;
  kestrel_dtype a_dt, b_dt;
  int64_t a_rs, a_cs, b_rs, b_cs;
  int64_t m, k, n;
  const void *a_zero, *b_zero; /* NULL: use the _const value */
  kestrel_dtype a_zero_dt, b_zero_dt;
  int64_t a_zero_count, b_zero_count; /* 1 = scalar, else per row/column */
  int32_t a_zero_const, b_zero_const;
  const int32_t *bias; /* [n] or NULL */
  /* Output [m,n] at y, row-major; raw int32 or requantized as kn_qconv. */
  void *y;
  kestrel_dtype y_dt;
  bool raw_int32;
  float a_scale, y_scale;
  const float *b_scale;
  int64_t b_scale_count; /* 1 or n */
  int32_t y_zero;
  kn_act act;
} kn_qgemm;

void kn_qgemm_run(const kn_qgemm *q);

#endif
