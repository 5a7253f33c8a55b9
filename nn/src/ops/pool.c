/* Reference kernels for the pooling and spatial-rearrangement family:
 * MaxPool, AveragePool, LpPool and their global forms, Pad, Resize (and
 * Upsample), DepthToSpace, SpaceToDepth, BatchNormalization,
 * InstanceNormalization and LRN. Float32; pools also take 8-bit tensors by
 * dequantizing into planned scratch and requantizing the result. */
#include <float.h>
#include <string.h>

#include "eltwise_fast.h"
#include "ops_common.h"
#include "pool_fast.h"
#include "resize_fast.h"
#include "shape_fast.h"

/* Optional output i: NULL when absent. */
static kn_tensor *opt_out(kn_graph *g, const kn_node *n, int i) {
  kn_tensor *t = kn_out(g, n, i);
  return t && !t->optional_absent ? t : NULL;
}

/* [N, C, P] view of a tensor of rank >= 2 for per-channel ops: P spatial
 * positions (all dims but N and C flattened) at stride stride_p. */
typedef struct chan_view {
  int64_t n, c, p;
  int64_t stride_n, stride_c, stride_p;
} chan_view;

static bool chan_view_of(const kn_tensor *t, int layout, chan_view *v) {
  if (t->ndim < 2)
    return false;
  int64_t p = 1;
  for (int i = 2; i < t->ndim; i++)
    p *= t->dims[i - (layout == KN_LAYOUT_NHWC ? 1 : 0)];
  v->n = t->dims[0];
  v->p = p;
  if (layout == KN_LAYOUT_NHWC) {
    v->c = t->dims[t->ndim - 1];
    v->stride_c = 1;
    v->stride_p = v->c;
  } else {
    v->c = t->dims[1];
    v->stride_c = p;
    v->stride_p = 1;
  }
  v->stride_n = v->c * p;
  return true;
}

/* ---- pools --------------------------------------------------------------- */

enum { POOL_MAX, POOL_AVG, POOL_LP };

typedef struct pool_plan {
  int kind;
  bool global;
  int layout;
  kn_spatial xv, yv;
  kn_window win;
  bool count_include_pad;
  int64_t p; /* LpPool exponent */
  int storage_order;
} pool_plan;

static int pool_kind(kn_op op) {
  switch (op) {
  case KN_OP_MAXPOOL:
  case KN_OP_GLOBAL_MAXPOOL:
    return POOL_MAX;
  case KN_OP_LP_POOL:
  case KN_OP_GLOBAL_LP_POOL:
    return POOL_LP;
  default:
    return POOL_AVG;
  }
}

static bool pool_is_global(kn_op op) {
  return op == KN_OP_GLOBAL_AVGPOOL || op == KN_OP_GLOBAL_MAXPOOL ||
         op == KN_OP_GLOBAL_LP_POOL;
}

/* Geometry from x alone (y's shape is what infer derives from it). */
static kestrel_status pool_plan_make(const kn_node *n, const kn_tensor *x,
                                     pool_plan *p, kestrel_error *err) {
  memset(p, 0, sizeof(*p));
  p->kind = pool_kind(n->op);
  p->global = pool_is_global(n->op);
  if (!kn_layout_attr(n, &p->layout))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad layout");
  if (!kn_spatial_view(x, p->layout, &p->xv))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "input rank %d (need 3..5)", x->ndim);
  p->p = kn_attr_int(n, "p", 2);
  if (p->kind == POOL_LP && (p->p < 1 || p->p > 64))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad p %lld",
                        (long long)p->p);
  p->count_include_pad = kn_attr_int(n, "count_include_pad", 0) != 0;
  p->storage_order = (int)kn_attr_int(n, "storage_order", 0);
  if (p->global) {
    for (int i = 0; i < KN_MAX_SPATIAL; i++) {
      p->win.k[i] = p->xv.sp[i];
      p->win.s[i] = p->win.d[i] = 1;
      p->win.pb[i] = p->win.pe[i] = 0;
      p->win.out[i] = 1;
    }
  } else {
    bool ceil_mode = kn_attr_int(n, "ceil_mode", 0) != 0;
    kestrel_status st =
        kn_window_geometry(n, p->xv.nsp, p->xv.sp, NULL, ceil_mode, &p->win,
                           err);
    if (st != KESTREL_OK)
      return st;
  }
  return KESTREL_OK;
}

static kestrel_status pool_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  kn_tensor *idx = opt_out(g, n, 1);
  if (!x || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs an input and an output");
  if (x->dtype != KESTREL_DTYPE_F32 && !kn_is_q8(x->dtype))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "dtype %s (float32 or 8-bit only)",
                        kestrel_dtype_name(x->dtype));
  pool_plan p;
  kestrel_status st = pool_plan_make(n, x, &p, err);
  if (st != KESTREL_OK)
    return st;
  if (idx && (n->op != KN_OP_MAXPOOL || p.layout != KN_LAYOUT_NCHW))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "indices output only for NCHW MaxPool");
  int64_t dims[KN_MAX_DIMS];
  kn_spatial_dims(&p.xv, p.layout, p.xv.c, p.win.out, dims);
  kn_set_shape(y, x->dtype, x->ndim, dims);
  if (idx)
    kn_set_shape(idx, KESTREL_DTYPE_I64, x->ndim, dims);
  return KESTREL_OK;
}

/* Float pool over densely packed x/y of the plan's views. indices (MaxPool
 * second output) are flat NCHW positions, spatial part row-major or, with
 * storage_order 1, column-major. */
static void pool_f32(const pool_plan *p, const float *x, float *y,
                     int64_t *indices) {
  const kn_spatial *xv = &p->xv, *yv = &p->yv;
  const kn_window *w = &p->win;
  int64_t plane = xv->sp[0] * xv->sp[1] * xv->sp[2];
  for (int64_t in = 0; in < xv->n; in++)
    for (int64_t c = 0; c < xv->c; c++) {
      const float *xc = x + in * xv->stride_n + c * xv->stride_c;
      for (int64_t od = 0; od < yv->sp[0]; od++)
        for (int64_t oh = 0; oh < yv->sp[1]; oh++)
          for (int64_t ow = 0; ow < yv->sp[2]; ow++) {
            int64_t o[3] = {od, oh, ow};
            int64_t start[3], end[3]; /* window before clipping */
            int64_t padded = 1;
            for (int a = 0; a < 3; a++) {
              start[a] = o[a] * w->s[a] - w->pb[a];
              end[a] = start[a] + (w->k[a] - 1) * w->d[a] + 1;
              /* count_include_pad counts the pad cells, not what lies
               * beyond the end pad (ceil_mode windows). */
              int64_t e = end[a] < xv->sp[a] + w->pe[a] ? end[a]
                                                        : xv->sp[a] + w->pe[a];
              int64_t cnt = 0;
              for (int64_t t = start[a]; t < e; t += w->d[a])
                cnt++;
              padded *= cnt;
            }
            double acc = p->kind == POOL_MAX ? -INFINITY : 0.0;
            int64_t best = -1, count = 0;
            for (int64_t id = start[0]; id < end[0]; id += w->d[0]) {
              if (id < 0 || id >= xv->sp[0])
                continue;
              for (int64_t ih = start[1]; ih < end[1]; ih += w->d[1]) {
                if (ih < 0 || ih >= xv->sp[1])
                  continue;
                for (int64_t iw = start[2]; iw < end[2]; iw += w->d[2]) {
                  if (iw < 0 || iw >= xv->sp[2])
                    continue;
                  float v = xc[id * xv->stride_sp[0] + ih * xv->stride_sp[1] +
                               iw * xv->stride_sp[2]];
                  count++;
                  if (p->kind == POOL_MAX) {
                    if (v > acc || best < 0) {
                      acc = v;
                      best = p->storage_order
                                 ? id + ih * xv->sp[0] +
                                       iw * xv->sp[0] * xv->sp[1]
                                 : (id * xv->sp[1] + ih) * xv->sp[2] + iw;
                    }
                  } else if (p->kind == POOL_AVG) {
                    acc += v;
                  } else if (p->p == 1) {
                    acc += fabs(v);
                  } else if (p->p == 2) {
                    acc += (double)v * v;
                  } else {
                    acc += pow(fabs(v), (double)p->p);
                  }
                }
              }
            }
            float r;
            if (p->kind == POOL_MAX)
              r = (float)acc;
            else if (p->kind == POOL_AVG) {
              int64_t div = p->count_include_pad ? padded : count;
              r = div > 0 ? (float)(acc / (double)div) : 0.0f;
            } else
              r = (float)(p->p == 1 ? acc
                                    : (p->p == 2 ? sqrt(acc)
                                                 : pow(acc, 1.0 / p->p)));
            int64_t yi = in * yv->stride_n + c * yv->stride_c +
                         od * yv->stride_sp[0] + oh * yv->stride_sp[1] +
                         ow * yv->stride_sp[2];
            y[yi] = r;
            if (indices)
              indices[yi] = best < 0 ? -1 : (in * xv->c + c) * plane + best;
          }
    }
}

static size_t pool_scratch(kn_graph *g, const kn_node *n) {
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  if (!x || !y || x->dtype == KESTREL_DTYPE_F32)
    return 0;
  return (size_t)(kn_tensor_numel(x) + kn_tensor_numel(y)) * sizeof(float);
}

static kestrel_status pool_run(const kn_exec *ex, const kn_node *n,
                               kestrel_error *err) {
  kn_graph *g = ex->graph;
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  kn_tensor *idx = opt_out(g, n, 1);
  pool_plan p;
  kestrel_status st = pool_plan_make(n, x, &p, err);
  if (st != KESTREL_OK)
    return st;
  if (!kn_spatial_view(y, p.layout, &p.yv))
    return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n, "bad output");
  int64_t nx = kn_tensor_numel(x), ny = kn_tensor_numel(y);
  if (ny == 0)
    return KESTREL_OK;
  /* NHWC global average (SE blocks): integer byte sums for 8-bit tensors,
   * else channel-vector sums in double; the reference's bytes either way. */
  if (p.kind == POOL_AVG && p.global && p.layout == KN_LAYOUT_NHWC && !idx &&
      (kn_global_avgpool_q8_nhwc_fast(ex, x, y) ||
       kn_global_avgpool_nhwc_fast(ex, x, y)))
    return KESTREL_OK;
  /* NHWC MaxPool: channel-vector maxima over the window's taps, the
   * reference's bytes for 8-bit and float32. */
  if (p.kind == POOL_MAX && !p.global && p.layout == KN_LAYOUT_NHWC && !idx &&
      kn_maxpool_2d_nhwc_fast(ex, x, y, &p.xv, &p.yv, &p.win))
    return KESTREL_OK;
  if (x->dtype == KESTREL_DTYPE_F32) {
    pool_f32(&p, x->data, y->data, idx ? idx->data : NULL);
    return KESTREL_OK;
  }
  /* 8-bit: pool the real values, requantize to y's parameters (x's when y
   * has none, as for a plain uint8 MaxPool). */
  size_t need = (size_t)(nx + ny) * sizeof(float);
  if (!ex->scratch || ex->scratch_bytes < need)
    return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n,
                        "scratch %zu bytes, need %zu", ex->scratch_bytes, need);
  float *fx = ex->scratch, *fy = fx + nx;
  float xs = kn_q_scale(x, 0);
  int32_t xz = kn_q_zero(x, 0);
  for (int64_t i = 0; i < nx; i++)
    fx[i] = (float)(kn_load_int(x->data, x->dtype, i) - xz) * xs;
  pool_f32(&p, fx, fy, idx ? idx->data : NULL);
  const kn_tensor *qy = y->q_count ? y : x;
  float ys = kn_q_scale(qy, 0);
  int32_t yz = kn_q_zero(qy, 0);
  for (int64_t i = 0; i < ny; i++) {
    int64_t v = kn_round_even((double)fy[i] / ys) + yz;
    kn_store_int(y->data, y->dtype, i, kn_saturate(v, y->dtype));
  }
  return KESTREL_OK;
}

/* ---- Pad ----------------------------------------------------------------- */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

typedef struct pad_plan {
  int mode;
  int ndim;
  int64_t pb[KN_MAX_DIMS], pe[KN_MAX_DIMS];
} pad_plan;

/* Reads pads (input 1 from opset 11, else the attribute) and axes. */
static kestrel_status pad_plan_make(kn_graph *g, const kn_node *n,
                                    const kn_tensor *x, pad_plan *p,
                                    kestrel_error *err) {
  memset(p, 0, sizeof(*p));
  p->ndim = x->ndim;
  const char *mode = kn_attr_string(n, "mode", "constant");
  if (!strcmp(mode, "constant"))
    p->mode = PAD_CONSTANT;
  else if (!strcmp(mode, "reflect"))
    p->mode = PAD_REFLECT;
  else if (!strcmp(mode, "edge"))
    p->mode = PAD_EDGE;
  else if (!strcmp(mode, "wrap"))
    p->mode = PAD_WRAP;
  else
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "mode '%s'", mode);
  int r = x->ndim;
  int64_t vals[2 * KN_MAX_DIMS];
  int nv;
  kn_tensor *pt = kn_opt_in(g, n, 1);
  if (pt) {
    if (!kn_is_const(pt) || pt->ndim > 1)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "pads must be a constant 1-D tensor");
    int64_t cnt = kn_tensor_numel(pt);
    if (cnt > 2 * KN_MAX_DIMS || cnt % 2)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "%lld pads",
                          (long long)cnt);
    nv = (int)cnt;
    for (int i = 0; i < nv; i++)
      vals[i] = kn_read_int(pt, i);
  } else {
    const int64_t *a;
    nv = kn_attr_ints(n, "pads", &a);
    if (!nv)
      nv = kn_attr_ints(n, "paddings", &a);
    if (nv > 2 * KN_MAX_DIMS || nv % 2)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "%d pads", nv);
    for (int i = 0; i < nv; i++)
      vals[i] = a[i];
  }
  /* Axes the pads refer to: input 3 (opset 18) or all of them. */
  int axes[KN_MAX_DIMS];
  int na = nv / 2;
  kn_tensor *at = kn_opt_in(g, n, 3);
  if (at) {
    if (!kn_is_const(at) || kn_tensor_numel(at) != na)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "axes must be constant, one per pad pair");
    for (int i = 0; i < na; i++) {
      int64_t a = kn_read_int(at, i);
      if (a < 0)
        a += r;
      if (a < 0 || a >= r)
        return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad axis");
      axes[i] = (int)a;
    }
  } else {
    if (na != r)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "%d pads for rank %d", nv, r);
    for (int i = 0; i < na; i++)
      axes[i] = i;
  }
  for (int i = 0; i < na; i++) {
    int64_t b = vals[i], e = vals[i + na];
    if (b > (INT64_C(1) << 31) || e > (INT64_C(1) << 31) ||
        b < -(INT64_C(1) << 40) || e < -(INT64_C(1) << 40))
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "pad too large");
    p->pb[axes[i]] = b;
    p->pe[axes[i]] = e;
  }
  for (int i = 0; i < r; i++) {
    int64_t out = x->dims[i] + p->pb[i] + p->pe[i];
    if (out < 0)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "pads crop axis %d below zero", i);
    if (p->mode != PAD_CONSTANT && x->dims[i] == 0 && out > 0)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "cannot %s-pad an empty axis", mode);
  }
  return KESTREL_OK;
}

static kestrel_status pad_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  if (!x || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs an input and an output");
  size_t es = kestrel_dtype_size(x->dtype);
  if (es == 0 || es > 8)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "dtype %s",
                        kestrel_dtype_name(x->dtype));
  pad_plan p;
  kestrel_status st = pad_plan_make(g, n, x, &p, err);
  if (st != KESTREL_OK)
    return st;
  int64_t dims[KN_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++)
    dims[i] = x->dims[i] + p.pb[i] + p.pe[i];
  kn_set_shape(y, x->dtype, x->ndim, dims);
  return KESTREL_OK;
}

/* Source index of output position o on an axis of size len, -1 for the
 * constant. Reflection and wrap repeat for pads longer than the axis. */
static int64_t pad_source(int mode, int64_t o, int64_t pb, int64_t len) {
  int64_t i = o - pb;
  if (i >= 0 && i < len)
    return i;
  switch (mode) {
  case PAD_EDGE:
    return i < 0 ? 0 : len - 1;
  case PAD_WRAP:
    i %= len;
    return i < 0 ? i + len : i;
  case PAD_REFLECT: {
    if (len == 1)
      return 0;
    int64_t period = 2 * (len - 1);
    i %= period;
    if (i < 0)
      i += period;
    return i < len ? i : period - i;
  }
  default:
    return -1;
  }
}

/* The pad value converted to the tensor's dtype, as bytes. */
static void pad_value_bytes(kn_graph *g, const kn_node *n, const kn_tensor *x,
                            uint8_t *out) {
  kn_tensor *vt = kn_opt_in(g, n, 2);
  double v;
  if (vt && vt->data && kn_tensor_numel(vt) >= 1) {
    v = kn_read_double(vt, 0);
    /* A float pad value for a quantized tensor is a real value. */
    if (x->q_count && kn_is_q8(x->dtype) &&
        (vt->dtype == KESTREL_DTYPE_F32 || vt->dtype == KESTREL_DTYPE_F64))
      v = (double)(kn_round_even(v / kn_q_scale(x, 0)) + kn_q_zero(x, 0));
  } else if (!vt && kn_node_attr(n, "value")) {
    v = kn_attr_float(n, "value", 0.0f);
    if (x->q_count && kn_is_q8(x->dtype))
      v = (double)(kn_round_even(v / kn_q_scale(x, 0)) + kn_q_zero(x, 0));
  } else {
    /* Quantized tensors pad with the real value 0. */
    v = x->q_count ? (double)kn_q_zero(x, 0) : 0.0;
  }
  memset(out, 0, 8);
  switch (x->dtype) {
  case KESTREL_DTYPE_F32: { float f = (float)v; memcpy(out, &f, 4); break; }
  case KESTREL_DTYPE_F64: memcpy(out, &v, 8); break;
  case KESTREL_DTYPE_F16: {
    uint16_t h = kestrel_f32_to_f16((float)v);
    memcpy(out, &h, 2);
    break;
  }
  case KESTREL_DTYPE_I64: {
    int64_t i = (int64_t)v;
    memcpy(out, &i, 8);
    break;
  }
  case KESTREL_DTYPE_BOOL: out[0] = v != 0.0; break;
  default:
    kn_store_int(out, x->dtype, 0, kn_saturate((int64_t)v, x->dtype));
    break;
  }
}

static kestrel_status pad_run(const kn_exec *ex, const kn_node *n,
                              kestrel_error *err) {
  kn_graph *g = ex->graph;
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  pad_plan p;
  kestrel_status st = pad_plan_make(g, n, x, &p, err);
  if (st != KESTREL_OK)
    return st;
  size_t es = kestrel_dtype_size(x->dtype);
  uint8_t value[8];
  pad_value_bytes(g, n, x, value);
  int64_t ny = kn_tensor_numel(y);
  if (ny == 0)
    return KESTREL_OK;
  int r = x->ndim;
  if (r == 0) {
    memcpy(y->data, x->data, es);
    return KESTREL_OK;
  }
  /* Non-negative constant pads (channel padding, spatial borders): runs
   * copied and filled whole, split across the threads. */
  if (p.mode == PAD_CONSTANT &&
      kn_pad_constant_fast(ex, x, y, p.pb, p.pe, value))
    return KESTREL_OK;
  int64_t xstride[KN_MAX_DIMS];
  int64_t s = 1;
  for (int i = r - 1; i >= 0; i--) {
    xstride[i] = s;
    s *= x->dims[i];
  }
  int64_t row = y->dims[r - 1], len = x->dims[r - 1];
  int64_t rows = ny / row;
  int64_t o[KN_MAX_DIMS] = {0};
  const uint8_t *xd = x->data;
  uint8_t *yd = y->data;
  /* Columns whose source is inside the row copy as one block. */
  int64_t lo = p.pb[r - 1] > 0 ? p.pb[r - 1] : 0;
  int64_t hi = p.pb[r - 1] + len < row ? p.pb[r - 1] + len : row;
  for (int64_t ri = 0; ri < rows; ri++) {
    uint8_t *dst = yd + (size_t)(ri * row) * es;
    int64_t src = 0;
    bool constant = false;
    for (int a = 0; a < r - 1; a++) {
      int64_t i = pad_source(p.mode, o[a], p.pb[a], x->dims[a]);
      if (i < 0)
        constant = true;
      src += i * xstride[a];
    }
    if (constant) {
      for (int64_t j = 0; j < row; j++)
        memcpy(dst + j * es, value, es);
    } else {
      const uint8_t *srow = xd + (size_t)src * es;
      for (int64_t j = 0; j < lo && j < row; j++) {
        int64_t i = pad_source(p.mode, j, p.pb[r - 1], len);
        memcpy(dst + j * es, i < 0 ? value : srow + i * es, es);
      }
      if (hi > lo)
        memcpy(dst + lo * es, srow + (lo - p.pb[r - 1]) * es,
               (size_t)(hi - lo) * es);
      for (int64_t j = hi > lo ? hi : lo; j < row; j++) {
        int64_t i = pad_source(p.mode, j, p.pb[r - 1], len);
        memcpy(dst + j * es, i < 0 ? value : srow + i * es, es);
      }
    }
    for (int a = r - 2; a >= 0; a--) {
      if (++o[a] < y->dims[a])
        break;
      o[a] = 0;
    }
  }
  return KESTREL_OK;
}

/* ---- Resize (and Upsample) ----------------------------------------------- */

enum { RESIZE_NEAREST, RESIZE_LINEAR, RESIZE_CUBIC };
enum {
  COORD_HALF_PIXEL,
  COORD_PYTORCH_HALF_PIXEL,
  COORD_ALIGN_CORNERS,
  COORD_ASYMMETRIC,
  COORD_TF_HALF_PIXEL_FOR_NN,
  COORD_TF_CROP_AND_RESIZE,
  COORD_HALF_PIXEL_SYMMETRIC,
};
enum {
  NEAREST_ROUND_PREFER_FLOOR,
  NEAREST_ROUND_PREFER_CEIL,
  NEAREST_FLOOR,
  NEAREST_CEIL,
  NEAREST_SIMPLE, /* Upsample / Resize-10: floor up, ceil down */
};

/* Output elements beyond this are refused as hostile. */
#define RESIZE_MAX_NUMEL (INT64_C(1) << 36)

typedef struct resize_plan {
  int mode, coord, nearest;
  double cubic_a;
  bool exclude_outside;
  float extrapolation;
  int ndim;
  double scale[KN_MAX_DIMS];
  double roi_start[KN_MAX_DIMS], roi_end[KN_MAX_DIMS];
  int64_t out[KN_MAX_DIMS];
} resize_plan;

static int lookup(const char *s, const char *const *names, int count) {
  for (int i = 0; i < count; i++)
    if (!strcmp(s, names[i]))
      return i;
  return -1;
}

static kestrel_status resize_plan_make(kn_graph *g, const kn_node *n,
                                       const kn_tensor *x, resize_plan *p,
                                       kestrel_error *err) {
  memset(p, 0, sizeof(*p));
  int r = x->ndim;
  p->ndim = r;
  /* Upsample and Resize-10 take (X, scales) and use asymmetric coordinates
   * with "simple" nearest rounding, as ONNX Runtime does. */
  bool legacy = (n->op_name && !strcmp(n->op_name, "Upsample")) ||
                (g->opset > 0 && g->opset < 11);
  static const char *const modes[] = {"nearest", "linear", "cubic"};
  const char *ms = kn_attr_string(n, "mode", "nearest");
  p->mode = !strcmp(ms, "bilinear") ? RESIZE_LINEAR : lookup(ms, modes, 3);
  static const char *const coords[] = {
      "half_pixel",    "pytorch_half_pixel",        "align_corners",
      "asymmetric",    "tf_half_pixel_for_nearest", "tf_crop_and_resize",
      "half_pixel_symmetric"};
  const char *cs = kn_attr_string(n, "coordinate_transformation_mode",
                                  legacy ? "asymmetric" : "half_pixel");
  p->coord = lookup(cs, coords, 7);
  if (!strcmp(cs, "tf_half_pixel_for_nn")) /* early spelling (opset 10/11) */
    p->coord = COORD_TF_HALF_PIXEL_FOR_NN;
  static const char *const nearests[] = {"round_prefer_floor",
                                         "round_prefer_ceil", "floor", "ceil"};
  const char *ns = kn_attr_string(n, "nearest_mode", NULL);
  p->nearest = ns ? lookup(ns, nearests, 4)
                  : (legacy ? NEAREST_SIMPLE : NEAREST_ROUND_PREFER_FLOOR);
  if (p->mode < 0 || p->coord < 0 || p->nearest < 0)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "mode '%s', coordinate mode '%s', nearest mode '%s'",
                        ms, cs, ns ? ns : "default");
  if (kn_attr_int(n, "antialias", 0))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "antialias");
  p->cubic_a = kn_attr_float(n, "cubic_coeff_a", -0.75f);
  p->exclude_outside = kn_attr_int(n, "exclude_outside", 0) != 0;
  p->extrapolation = kn_attr_float(n, "extrapolation_value", 0.0f);

  /* Axes the scales/sizes/roi refer to (opset 18), default all. */
  int axes[KN_MAX_DIMS], na;
  const int64_t *av;
  na = kn_attr_ints(n, "axes", &av);
  if (na) {
    if (na > r)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "too many axes");
    for (int i = 0; i < na; i++) {
      int64_t a = av[i] < 0 ? av[i] + r : av[i];
      if (a < 0 || a >= r)
        return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad axis");
      axes[i] = (int)a;
    }
  } else {
    na = r;
    for (int i = 0; i < r; i++)
      axes[i] = i;
  }
  for (int i = 0; i < r; i++) {
    p->scale[i] = 1.0;
    p->roi_start[i] = 0.0;
    p->roi_end[i] = 1.0;
    p->out[i] = x->dims[i];
  }
  kn_tensor *roi = NULL, *scales = NULL, *sizes = NULL;
  if (legacy) {
    scales = kn_opt_in(g, n, 1);
  } else {
    roi = kn_opt_in(g, n, 1);
    scales = kn_opt_in(g, n, 2);
    sizes = kn_opt_in(g, n, 3);
  }
  if (scales && kn_tensor_numel(scales) == 0)
    scales = NULL;
  if (sizes && kn_tensor_numel(sizes) == 0)
    sizes = NULL;
  if (roi && kn_tensor_numel(roi) == 0)
    roi = NULL;
  const float *attr_scales;
  int n_attr_scales = kn_attr_floats(n, "scales", &attr_scales);
  if ((scales && !kn_is_const(scales)) || (sizes && !kn_is_const(sizes)) ||
      (roi && p->coord == COORD_TF_CROP_AND_RESIZE && !kn_is_const(roi)))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "scales/sizes/roi must be known at load time");
  if (scales && sizes)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "both scales and sizes given");
  if (roi && p->coord == COORD_TF_CROP_AND_RESIZE) {
    if (kn_tensor_numel(roi) != 2 * na)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "roi needs %d values",
                          2 * na);
    for (int i = 0; i < na; i++) {
      p->roi_start[axes[i]] = kn_read_double(roi, i);
      p->roi_end[axes[i]] = kn_read_double(roi, i + na);
    }
  }
  if (scales || (!sizes && n_attr_scales)) {
    int64_t cnt = scales ? kn_tensor_numel(scales) : n_attr_scales;
    if (cnt != na)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "%lld scales for %d axes", (long long)cnt, na);
    for (int i = 0; i < na; i++) {
      double s = scales ? kn_read_double(scales, i) : attr_scales[i];
      int a = axes[i];
      if (!(s > 0.0) || s > 1.0e6)
        return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad scale %g", s);
      p->scale[a] = s;
      /* tf_crop_and_resize scales the cropped extent. */
      double extent = p->coord == COORD_TF_CROP_AND_RESIZE
                          ? (p->roi_end[a] - p->roi_start[a]) * x->dims[a]
                          : (double)x->dims[a];
      double o = floor(extent * s);
      if (!(o >= 0.0) || o > 1.0e12)
        return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad output size");
      p->out[a] = (int64_t)o;
    }
  } else if (sizes) {
    if (kn_tensor_numel(sizes) != na)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "%lld sizes for %d axes",
                          (long long)kn_tensor_numel(sizes), na);
    const char *policy = kn_attr_string(n, "keep_aspect_ratio_policy",
                                        "stretch");
    bool larger = !strcmp(policy, "not_larger");
    bool smaller = !strcmp(policy, "not_smaller");
    if (!larger && !smaller && strcmp(policy, "stretch"))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "keep_aspect_ratio_policy '%s'", policy);
    double common = larger ? INFINITY : 0.0;
    for (int i = 0; i < na; i++) {
      int64_t sz = kn_read_int(sizes, i);
      int a = axes[i];
      if (sz < 0 || sz > (INT64_C(1) << 32))
        return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad size %lld",
                            (long long)sz);
      p->out[a] = sz;
      double s = x->dims[a] ? (double)sz / (double)x->dims[a] : 1.0;
      p->scale[a] = s;
      if (larger && s < common)
        common = s;
      if (smaller && s > common)
        common = s;
    }
    if (larger || smaller)
      for (int i = 0; i < na; i++) {
        int a = axes[i];
        p->scale[a] = common;
        p->out[a] = (int64_t)nearbyint(common * (double)x->dims[a]);
      }
  } else {
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs scales or sizes");
  }
  double total = 1.0;
  for (int i = 0; i < r; i++)
    total *= (double)p->out[i];
  if (total > (double)RESIZE_MAX_NUMEL)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "output too large");
  return KESTREL_OK;
}

static kestrel_status resize_infer(kn_graph *g, kn_node *n,
                                   kestrel_error *err) {
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  if (!x || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs an input and an output");
  /* 8-bit (quantized) tensors resize their real values, requantized to
   * y's parameters (x's when y has none). */
  if (x->dtype != KESTREL_DTYPE_F32 && !kn_is_q8_tensor(x))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "dtype %s (float32 or quantized 8-bit only)",
                        kestrel_dtype_name(x->dtype));
  if (x->ndim < 1)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "scalar input");
  resize_plan p;
  kestrel_status st = resize_plan_make(g, n, x, &p, err);
  if (st != KESTREL_OK)
    return st;
  kn_set_shape(y, x->dtype, x->ndim, p.out);
  if (x->dtype != KESTREL_DTYPE_F32 && !y->q_count)
    kn_tensor_set_quant(y, -1, 1, x->q_scale, x->q_zero_point);
  return KESTREL_OK;
}

/* One axis's source positions for an output coordinate: up to four taps
 * (element offset along the axis times its stride, weight). */
typedef kn_resize_tap resize_tap;

#define RESIZE_TAPS KN_RESIZE_TAPS

static double resize_coord(const resize_plan *p, int a, int64_t xo,
                           int64_t in) {
  double s = p->scale[a], x = (double)xo;
  int64_t out = p->out[a];
  /* With scales, the resized length is in*scale before flooring; ONNX's
   * align_corners and crop divide by that, not by the integer size. */
  double len = s * (double)in;
  switch (p->coord) {
  case COORD_PYTORCH_HALF_PIXEL:
    return out > 1 ? (x + 0.5) / s - 0.5 : 0.0;
  case COORD_ALIGN_CORNERS:
    return out == 1 ? 0.0 : x * (double)(in - 1) / (len - 1.0);
  case COORD_ASYMMETRIC:
    return x / s;
  case COORD_TF_HALF_PIXEL_FOR_NN:
    return (x + 0.5) / s;
  case COORD_TF_CROP_AND_RESIZE: {
    double b = p->roi_start[a], e = p->roi_end[a];
    return out > 1 ? b * (double)(in - 1) +
                         x * (e - b) * (double)(in - 1) / (len - 1.0)
                   : 0.5 * (b + e) * (double)(in - 1);
  }
  case COORD_HALF_PIXEL_SYMMETRIC: {
    double adj = (double)out / (s * (double)in);
    double center = (double)in / 2.0;
    return center * (1.0 - adj) + (x + 0.5) / s - 0.5;
  }
  default:
    return (x + 0.5) / s - 0.5;
  }
}

/* Fills taps (RESIZE_TAPS slots, unused ones weight 0) for one output
 * position; returns false when it lies outside tf_crop_and_resize's input. */
static bool resize_taps(const resize_plan *p, int a, int64_t xo, int64_t in,
                        int64_t stride, resize_tap *t) {
  double xf = resize_coord(p, a, xo, in);
  for (int i = 0; i < RESIZE_TAPS; i++)
    t[i] = (resize_tap){0, 0.0};
  if (p->coord == COORD_TF_CROP_AND_RESIZE &&
      (xf < 0.0 || xf > (double)(in - 1)))
    return false;
  int64_t idx[RESIZE_TAPS];
  double w[RESIZE_TAPS] = {0};
  int nt;
  if (p->mode == RESIZE_NEAREST) {
    double f = floor(xf), frac = xf - f;
    int64_t i;
    switch (p->nearest) {
    case NEAREST_FLOOR: i = (int64_t)f; break;
    case NEAREST_CEIL: i = (int64_t)ceil(xf); break;
    case NEAREST_ROUND_PREFER_CEIL:
      i = (int64_t)(frac >= 0.5 ? f + 1 : f);
      break;
    case NEAREST_SIMPLE:
      i = p->scale[a] < 1.0 ? (int64_t)ceil(xf) : (int64_t)xf;
      break;
    default:
      i = (int64_t)(frac > 0.5 ? f + 1 : f);
      break;
    }
    idx[0] = i;
    w[0] = 1.0;
    nt = 1;
  } else if (p->mode == RESIZE_LINEAR) {
    double f = floor(xf), t1 = xf - f;
    idx[0] = (int64_t)f;
    idx[1] = idx[0] + 1;
    w[0] = 1.0 - t1;
    w[1] = t1;
    nt = 2;
  } else {
    double f = floor(xf), t1 = xf - f, A = p->cubic_a;
    double d0 = t1 + 1.0, d1 = t1, d2 = 1.0 - t1, d3 = 2.0 - t1;
    w[0] = ((A * d0 - 5.0 * A) * d0 + 8.0 * A) * d0 - 4.0 * A;
    w[1] = ((A + 2.0) * d1 - (A + 3.0)) * d1 * d1 + 1.0;
    w[2] = ((A + 2.0) * d2 - (A + 3.0)) * d2 * d2 + 1.0;
    w[3] = ((A * d3 - 5.0 * A) * d3 + 8.0 * A) * d3 - 4.0 * A;
    for (int i = 0; i < 4; i++)
      idx[i] = (int64_t)f - 1 + i;
    nt = 4;
    if (p->exclude_outside) {
      double sum = 0.0;
      for (int i = 0; i < 4; i++) {
        if (idx[i] < 0 || idx[i] >= in)
          w[i] = 0.0;
        sum += w[i];
      }
      if (sum != 0.0)
        for (int i = 0; i < 4; i++)
          w[i] /= sum;
    }
  }
  /* Clamp to the edge, then merge taps that landed on the same element so
   * that unchanged axes cost a single tap. */
  int m = 0;
  for (int i = 0; i < nt; i++) {
    int64_t j = idx[i] < 0 ? 0 : (idx[i] >= in ? in - 1 : idx[i]);
    if (w[i] == 0.0 && nt > 1)
      continue;
    int k;
    for (k = 0; k < m; k++)
      if (t[k].off == j * stride)
        break;
    if (k == m)
      t[m++] = (resize_tap){j * stride, 0.0};
    t[k].w += w[i];
  }
  return true;
}

static size_t resize_scratch(kn_graph *g, const kn_node *n) {
  kn_tensor *y = kn_out(g, n, 0);
  if (!y || y->ndim < 1)
    return 0;
  size_t positions = 0;
  for (int i = 0; i < y->ndim; i++)
    positions += (size_t)y->dims[i];
  return positions * (RESIZE_TAPS * sizeof(resize_tap) + 1) + 64 +
         kn_resize_fast_scratch(y);
}

/* Fast path (ops/eltwise_fast.c's sibling, for FPN upsampling): every
 * axis takes one tap of weight 1 (nearest, or an unscaled axis) and the
 * last axis is unscaled (NHWC channels), so output rows are input rows
 * copied whole, or mapped through a 256-entry table for 8-bit tensors;
 * the table holds exactly what the general loop below computes. */
static bool resize_single_tap(const kn_tensor *xt, kn_tensor *yt,
                              const resize_plan *p, resize_tap *const *taps,
                              uint8_t *const *outside) {
  int r = xt->ndim;
  if (r < 1 || p->out[r - 1] != xt->dims[r - 1])
    return false;
  int64_t inner = p->out[r - 1];
  for (int a = 0; a < r; a++)
    for (int64_t o = 0; o < p->out[a]; o++) {
      const resize_tap *t = taps[a] + o * RESIZE_TAPS;
      if (outside[a][o] || t->w != 1.0 || (a == r - 1 && t->off != o))
        return false;
    }
  bool q8 = xt->dtype != KESTREL_DTYPE_F32;
  if (q8 && (xt->dtype != yt->dtype || (xt->dtype != KESTREL_DTYPE_I8 &&
                                        xt->dtype != KESTREL_DTYPE_U8)))
    return false;
  uint8_t lut[256];
  bool copy = true;
  if (q8) {
    float xs = kn_q_scale(xt, 0), ys = kn_q_scale(yt, 0);
    int32_t xz = kn_q_zero(xt, 0), yz = kn_q_zero(yt, 0);
    for (int v = 0; v < 256; v++) {
      int32_t in = xt->dtype == KESTREL_DTYPE_I8 ? v - 128 : v;
      /* The general loop's RS_X / RS_Y with wbase = 1.0. */
      float real = (float)(1.0 * ((float)(in - xz) * xs));
      int32_t out = kn_saturate(kn_round_even((double)real / ys) + yz,
                                yt->dtype);
      lut[v] = (uint8_t)out;
      copy = copy && out == in;
    }
  }
  size_t es = kestrel_dtype_size(xt->dtype);
  int64_t rows = kn_tensor_numel(yt) / inner;
  int64_t o[KN_MAX_DIMS] = {0};
  const uint8_t *x = xt->data;
  uint8_t *y = yt->data;
  for (int64_t row = 0; row < rows; row++) {
    int64_t base = 0;
    for (int a = 0; a < r - 1; a++)
      base += taps[a][o[a] * RESIZE_TAPS].off;
    const uint8_t *src = x + (size_t)base * es;
    uint8_t *dst = y + (size_t)(row * inner) * es;
    if (copy) {
      memcpy(dst, src, (size_t)inner * es);
    } else if (xt->dtype == KESTREL_DTYPE_I8) {
      for (int64_t i = 0; i < inner; i++)
        dst[i] = lut[(uint8_t)((int8_t)src[i] + 128)];
    } else {
      for (int64_t i = 0; i < inner; i++)
        dst[i] = lut[src[i]];
    }
    for (int a = r - 2; a >= 0; a--) {
      if (++o[a] < p->out[a])
        break;
      o[a] = 0;
    }
  }
  return true;
}

static kestrel_status resize_run(const kn_exec *ex, const kn_node *n,
                                 kestrel_error *err) {
  kn_graph *g = ex->graph;
  kn_tensor *xt = kn_in(g, n, 0), *yt = kn_out(g, n, 0);
  resize_plan p;
  kestrel_status st = resize_plan_make(g, n, xt, &p, err);
  if (st != KESTREL_OK)
    return st;
  int r = xt->ndim;
  int64_t ny = kn_tensor_numel(yt);
  if (ny == 0)
    return KESTREL_OK;
  if (kn_tensor_numel(xt) == 0)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "resizing an empty tensor to a non-empty one");
  size_t positions = 0;
  for (int a = 0; a < r; a++)
    positions += (size_t)p.out[a];
  size_t need = positions * (RESIZE_TAPS * sizeof(resize_tap) + 1);
  if (!ex->scratch || ex->scratch_bytes < need)
    return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n,
                        "scratch %zu bytes, need %zu", ex->scratch_bytes, need);
  /* Per-axis tap tables, then a flag byte per position for "outside". */
  resize_tap *taps[KN_MAX_DIMS];
  uint8_t *outside[KN_MAX_DIMS];
  int ntaps[KN_MAX_DIMS];
  resize_tap *tp = ex->scratch;
  uint8_t *fp = (uint8_t *)(tp + positions * RESIZE_TAPS);
  int64_t stride = 1;
  for (int a = r - 1; a >= 0; a--) {
    taps[a] = tp;
    outside[a] = fp;
    ntaps[a] = 1;
    for (int64_t o = 0; o < p.out[a]; o++) {
      resize_tap *t = tp + o * RESIZE_TAPS;
      fp[o] = !resize_taps(&p, a, o, xt->dims[a], stride, t);
      for (int i = 1; i < RESIZE_TAPS; i++)
        if (t[i].w != 0.0 && i + 1 > ntaps[a])
          ntaps[a] = i + 1;
    }
    tp += p.out[a] * RESIZE_TAPS;
    fp += p.out[a];
    stride *= xt->dims[a];
  }
  /* Axes needing more than one tap; the others only move the base. */
  int active[KN_MAX_DIMS], nact = 0;
  for (int a = 0; a < r; a++)
    if (ntaps[a] > 1)
      active[nact++] = a;
  if (nact == 0 && resize_single_tap(xt, yt, &p, taps, outside))
    return KESTREL_OK;
  if (nact > 0 &&
      kn_resize_fast_run(xt, yt, (const resize_tap *const *)taps, ntaps,
                         (const uint8_t *const *)outside, fp,
                         ex->scratch_bytes - need, ex->pool))
    return KESTREL_OK;
  const float *x = xt->data;
  float *y = yt->data;
  /* Quantized: read real values, write requantized ones. */
  bool q8 = xt->dtype != KESTREL_DTYPE_F32;
  float xs = kn_q_scale(xt, 0), ys = kn_q_scale(yt, 0);
  int32_t xz = kn_q_zero(xt, 0), yz = kn_q_zero(yt, 0);
#define RS_X(i)                                                                \
  (q8 ? (float)(kn_load_int(xt->data, xt->dtype, (i)) - xz) * xs : x[(i)])
#define RS_Y(i, v)                                                             \
  do {                                                                         \
    if (q8)                                                                    \
      kn_store_int(yt->data, yt->dtype, (i),                                   \
                   kn_saturate(kn_round_even((double)(v) / ys) + yz,           \
                               yt->dtype));                                    \
    else                                                                       \
      y[(i)] = (v);                                                            \
  } while (0)
  int64_t o[KN_MAX_DIMS] = {0};
  for (int64_t e = 0; e < ny; e++) {
    bool out = false;
    int64_t base = 0;
    double wbase = 1.0;
    for (int a = 0; a < r; a++) {
      if (outside[a][o[a]])
        out = true;
      if (ntaps[a] == 1) {
        const resize_tap *t = taps[a] + o[a] * RESIZE_TAPS;
        base += t->off;
        wbase *= t->w;
      }
    }
    if (out) {
      RS_Y(e, p.extrapolation);
    } else if (nact == 0) {
      RS_Y(e, (float)(wbase * RS_X(base)));
    } else {
      int tc[KN_MAX_DIMS] = {0};
      double sum = 0.0;
      for (;;) {
        int64_t off = base;
        double w = wbase;
        for (int i = 0; i < nact; i++) {
          const resize_tap *t =
              taps[active[i]] + o[active[i]] * RESIZE_TAPS + tc[i];
          off += t->off;
          w *= t->w;
        }
        if (w != 0.0)
          sum += w * RS_X(off);
        int i = nact - 1;
        for (; i >= 0; i--) {
          if (++tc[i] < ntaps[active[i]])
            break;
          tc[i] = 0;
        }
        if (i < 0)
          break;
      }
      RS_Y(e, (float)sum);
    }
    for (int a = r - 1; a >= 0; a--) {
      if (++o[a] < p.out[a])
        break;
      o[a] = 0;
    }
  }
#undef RS_X
#undef RS_Y
  return KESTREL_OK;
}

/* ---- DepthToSpace / SpaceToDepth ----------------------------------------- */

static kestrel_status d2s_check(const kn_node *n, const kn_tensor *x,
                                int *layout, int64_t *bs, kestrel_error *err) {
  if (!kn_layout_attr(n, layout))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad layout");
  *bs = kn_attr_int(n, "blocksize", 0);
  if (*bs < 1 || *bs > 4096)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad blocksize %lld",
                        (long long)*bs);
  if (x->ndim != 4)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "input rank %d (need 4)",
                        x->ndim);
  size_t es = kestrel_dtype_size(x->dtype);
  if (es == 0 || es > 8)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "dtype %s",
                        kestrel_dtype_name(x->dtype));
  return KESTREL_OK;
}

static bool d2s_crd(const kn_node *n) {
  return !strcmp(kn_attr_string(n, "mode", "DCR"), "CRD");
}

static kestrel_status d2s_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  if (!x || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs an input and an output");
  int layout;
  int64_t bs;
  kestrel_status st = d2s_check(n, x, &layout, &bs, err);
  if (st != KESTREL_OK)
    return st;
  const char *mode = kn_attr_string(n, "mode", "DCR");
  if (n->op == KN_OP_DEPTH_TO_SPACE && strcmp(mode, "DCR") &&
      strcmp(mode, "CRD"))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "mode '%s'", mode);
  kn_spatial v;
  kn_spatial_view(x, layout, &v);
  int64_t sp[3] = {1, v.sp[1], v.sp[2]}, c;
  if (n->op == KN_OP_DEPTH_TO_SPACE) {
    if (v.c % (bs * bs))
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "%lld channels not divisible by blocksize^2",
                          (long long)v.c);
    c = v.c / (bs * bs);
    sp[1] *= bs;
    sp[2] *= bs;
  } else {
    if (sp[1] % bs || sp[2] % bs)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "spatial dims not divisible by blocksize");
    c = v.c * bs * bs;
    sp[1] /= bs;
    sp[2] /= bs;
  }
  int64_t dims[4];
  kn_spatial_dims(&v, layout, c, sp, dims);
  kn_set_shape(y, x->dtype, 4, dims);
  return KESTREL_OK;
}

/* Both directions walk the space side [N, C', H*b, W*b] and move one element
 * to or from its place on the depth side [N, C'*b*b, H, W]. */
static kestrel_status d2s_run(const kn_exec *ex, const kn_node *n,
                              kestrel_error *err) {
  kn_graph *g = ex->graph;
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  int layout;
  int64_t bs;
  kestrel_status st = d2s_check(n, x, &layout, &bs, err);
  if (st != KESTREL_OK)
    return st;
  bool to_space = n->op == KN_OP_DEPTH_TO_SPACE;
  kn_spatial xv, yv;
  kn_spatial_view(x, layout, &xv);
  kn_spatial_view(y, layout, &yv);
  const kn_spatial *space = to_space ? &yv : &xv, *depth = to_space ? &xv : &yv;
  bool crd = to_space && d2s_crd(n);
  size_t es = kestrel_dtype_size(x->dtype);
  uint8_t *sd = to_space ? y->data : x->data;
  uint8_t *dd = to_space ? x->data : y->data;
  for (int64_t in = 0; in < space->n; in++)
    for (int64_t c = 0; c < space->c; c++)
      for (int64_t h = 0; h < space->sp[1]; h++)
        for (int64_t w = 0; w < space->sp[2]; w++) {
          int64_t i = h % bs, j = w % bs;
          int64_t dc = crd ? (c * bs + i) * bs + j : (i * bs + j) * space->c + c;
          int64_t si = in * space->stride_n + c * space->stride_c +
                       h * space->stride_sp[1] + w * space->stride_sp[2];
          int64_t di = in * depth->stride_n + dc * depth->stride_c +
                       (h / bs) * depth->stride_sp[1] +
                       (w / bs) * depth->stride_sp[2];
          if (to_space)
            memcpy(sd + (size_t)si * es, dd + (size_t)di * es, es);
          else
            memcpy(dd + (size_t)di * es, sd + (size_t)si * es, es);
        }
  return KESTREL_OK;
}

/* ---- BatchNormalization / InstanceNormalization / LRN -------------------- */

static kestrel_status norm_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  if (!x || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs an input and an output");
  if (x->dtype != KESTREL_DTYPE_F32)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "dtype %s (float32 only)",
                        kestrel_dtype_name(x->dtype));
  int layout;
  chan_view v;
  if (!kn_layout_attr(n, &layout))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad layout");
  if (!chan_view_of(x, layout, &v))
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "input rank %d (need >= 2)",
                        x->ndim);
  int nparams = n->op == KN_OP_BATCHNORM ? 4
                : n->op == KN_OP_INSTANCE_NORM ? 2 : 0;
  for (int i = 1; i <= nparams; i++) {
    kn_tensor *t = kn_in(g, n, i);
    if (!t || t->dtype != KESTREL_DTYPE_F32 || kn_tensor_numel(t) != v.c)
      return kn_node_fail(err, t && t->dtype != KESTREL_DTYPE_F32
                                   ? KESTREL_ERROR_UNSUPPORTED
                                   : KESTREL_ERROR_SHAPE,
                          n, "parameter %d must be float32 [%lld]", i,
                          (long long)v.c);
  }
  if (n->op == KN_OP_BATCHNORM) {
    if (kn_attr_int(n, "training_mode", 0))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "training mode");
    /* Old opsets list running statistics as outputs: in inference they are
     * the inputs unchanged. */
    for (int i = 1; i < n->num_outputs; i++) {
      kn_tensor *o = opt_out(g, n, i);
      if (o) {
        int64_t c = v.c;
        kn_set_shape(o, KESTREL_DTYPE_F32, 1, &c);
      }
    }
  }
  if (n->op == KN_OP_LRN) {
    int64_t size = kn_attr_int(n, "size", 0);
    if (size < 1 || size > 1 << 20)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad size %lld",
                          (long long)size);
  }
  kn_set_shape(y, KESTREL_DTYPE_F32, x->ndim, x->dims);
  return KESTREL_OK;
}

static kestrel_status batchnorm_run(const kn_exec *ex, const kn_node *n,
                                    kestrel_error *err) {
  (void)err;
  kn_graph *g = ex->graph;
  kn_tensor *xt = kn_in(g, n, 0), *yt = kn_out(g, n, 0);
  const float *scale = kn_in(g, n, 1)->data, *bias = kn_in(g, n, 2)->data;
  const float *mean = kn_in(g, n, 3)->data, *var = kn_in(g, n, 4)->data;
  float eps = kn_attr_float(n, "epsilon", 1e-5f);
  int layout = KN_LAYOUT_NCHW;
  chan_view v = {0};
  kn_layout_attr(n, &layout);
  chan_view_of(xt, layout, &v);
  const float *x = xt->data;
  float *y = yt->data;
  for (int64_t c = 0; c < v.c; c++) {
    float a = scale[c] / sqrtf(var[c] + eps);
    float b = bias[c] - mean[c] * a;
    for (int64_t in = 0; in < v.n; in++) {
      int64_t base = in * v.stride_n + c * v.stride_c;
      for (int64_t i = 0; i < v.p; i++)
        y[base + i * v.stride_p] = x[base + i * v.stride_p] * a + b;
    }
  }
  for (int i = 1; i < n->num_outputs && i < 5; i++) {
    kn_tensor *o = opt_out(g, n, i);
    if (o && o->data)
      memcpy(o->data, (i % 2) ? mean : var, (size_t)v.c * sizeof(float));
  }
  return KESTREL_OK;
}

static kestrel_status instnorm_run(const kn_exec *ex, const kn_node *n,
                                   kestrel_error *err) {
  (void)err;
  kn_graph *g = ex->graph;
  kn_tensor *xt = kn_in(g, n, 0), *yt = kn_out(g, n, 0);
  const float *scale = kn_in(g, n, 1)->data, *bias = kn_in(g, n, 2)->data;
  float eps = kn_attr_float(n, "epsilon", 1e-5f);
  int layout = KN_LAYOUT_NCHW;
  chan_view v = {0};
  kn_layout_attr(n, &layout);
  chan_view_of(xt, layout, &v);
  const float *x = xt->data;
  float *y = yt->data;
  for (int64_t in = 0; in < v.n; in++)
    for (int64_t c = 0; c < v.c; c++) {
      int64_t base = in * v.stride_n + c * v.stride_c;
      double sum = 0.0, sq = 0.0;
      for (int64_t i = 0; i < v.p; i++)
        sum += x[base + i * v.stride_p];
      double mean = v.p ? sum / (double)v.p : 0.0;
      for (int64_t i = 0; i < v.p; i++) {
        double d = x[base + i * v.stride_p] - mean;
        sq += d * d;
      }
      double var = v.p ? sq / (double)v.p : 0.0;
      double a = scale[c] / sqrt(var + eps);
      for (int64_t i = 0; i < v.p; i++)
        y[base + i * v.stride_p] =
            (float)((x[base + i * v.stride_p] - mean) * a + bias[c]);
    }
  return KESTREL_OK;
}

static kestrel_status lrn_run(const kn_exec *ex, const kn_node *n,
                              kestrel_error *err) {
  (void)err;
  kn_graph *g = ex->graph;
  kn_tensor *xt = kn_in(g, n, 0), *yt = kn_out(g, n, 0);
  double alpha = kn_attr_float(n, "alpha", 1e-4f);
  double beta = kn_attr_float(n, "beta", 0.75f);
  double bias = kn_attr_float(n, "bias", 1.0f);
  int64_t size = kn_attr_int(n, "size", 1);
  int64_t before = (size - 1) / 2, after = size - 1 - before;
  int layout = KN_LAYOUT_NCHW;
  chan_view v = {0};
  kn_layout_attr(n, &layout);
  chan_view_of(xt, layout, &v);
  const float *x = xt->data;
  float *y = yt->data;
  for (int64_t in = 0; in < v.n; in++)
    for (int64_t i = 0; i < v.p; i++) {
      int64_t base = in * v.stride_n + i * v.stride_p;
      for (int64_t c = 0; c < v.c; c++) {
        int64_t lo = c - before < 0 ? 0 : c - before;
        int64_t hi = c + after >= v.c ? v.c - 1 : c + after;
        double sq = 0.0;
        for (int64_t k = lo; k <= hi; k++) {
          double t = x[base + k * v.stride_c];
          sq += t * t;
        }
        y[base + c * v.stride_c] = (float)(
            x[base + c * v.stride_c] /
            pow(bias + alpha / (double)size * sq, beta));
      }
    }
  return KESTREL_OK;
}

/* ---- registration -------------------------------------------------------- */

void kn_register_ops_pool(kn_op_info *t) {
  static const kn_op pools[] = {KN_OP_MAXPOOL,        KN_OP_AVGPOOL,
                                KN_OP_GLOBAL_AVGPOOL, KN_OP_GLOBAL_MAXPOOL,
                                KN_OP_LP_POOL,        KN_OP_GLOBAL_LP_POOL};
  for (size_t i = 0; i < sizeof(pools) / sizeof(pools[0]); i++)
    t[pools[i]] = (kn_op_info){.name = t[pools[i]].name,
                               .infer = pool_infer, .run = pool_run,
                               .scratch = pool_scratch};
  t[KN_OP_PAD] = (kn_op_info){.name = t[KN_OP_PAD].name, .infer = pad_infer,
                              .run = pad_run};
  t[KN_OP_RESIZE] = (kn_op_info){.name = t[KN_OP_RESIZE].name,
                                 .infer = resize_infer, .run = resize_run,
                                 .scratch = resize_scratch};
  t[KN_OP_DEPTH_TO_SPACE] = (kn_op_info){
      .name = t[KN_OP_DEPTH_TO_SPACE].name, .infer = d2s_infer, .run = d2s_run};
  t[KN_OP_SPACE_TO_DEPTH] = (kn_op_info){
      .name = t[KN_OP_SPACE_TO_DEPTH].name, .infer = d2s_infer, .run = d2s_run};
  t[KN_OP_BATCHNORM] = (kn_op_info){.name = t[KN_OP_BATCHNORM].name,
                                    .infer = norm_infer, .run = batchnorm_run};
  t[KN_OP_INSTANCE_NORM] = (kn_op_info){.name = t[KN_OP_INSTANCE_NORM].name,
                                        .infer = norm_infer,
                                        .run = instnorm_run};
  t[KN_OP_LRN] = (kn_op_info){.name = t[KN_OP_LRN].name, .infer = norm_infer,
                              .run = lrn_run};
}
