/* Reference kernels for ONNX ops that work along an axis: Softmax family,
 * the Reduce* family, ArgMax/ArgMin, CumSum, TopK, plus Trilu and OneHot.
 * Values are accumulated in double through dtype-generic element access;
 * these are oracles, not the fast path. Quantized (per-tensor) tensors are
 * read dequantized and written requantized. */
#include "ops_eltwise.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Element i of t as a real number (dequantized when t is quantized). */
static double load_real(const kn_tensor *t, int64_t i) {
  if (kn_ew_is_quantized(t)) {
    kn_ew_quant q = kn_ew_quant_of(t);
    return kn_ew_dequant(&q, (int32_t)kn_ew_load_i64(t->data, t->dtype, i));
  }
  return kn_ew_load_f64(t->data, t->dtype, i);
}

static void store_real(kn_tensor *t, int64_t i, double v) {
  if (kn_ew_is_quantized(t)) {
    kn_ew_quant q = kn_ew_quant_of(t);
    kn_ew_store_i64(t->data, t->dtype, i, kn_ew_requant(&q, (float)v));
    return;
  }
  kn_ew_store_f64(t->data, t->dtype, i, v);
}

static bool is_real_dtype(const kn_tensor *t) {
  return kn_ew_dtype_is_float(t->dtype) || kn_ew_is_quantized(t);
}

/* Splits a shape around one axis: [outer, n, inner] with stride inner. */
static void split_at_axis(const kn_tensor *t, int axis, int64_t *outer,
                          int64_t *n, int64_t *inner) {
  *outer = kn_numel(axis, t->dims);
  *n = t->ndim ? t->dims[axis] : 1;
  *inner = t->ndim ? kn_numel(t->ndim - axis - 1, t->dims + axis + 1) : 1;
}

/* ============================================== Softmax, LogSoftmax, Hardmax */

/* Before opset 13 these coerce the input to 2-D at axis (default 1) and
 * normalize whole rows; from 13 on they work along the single axis
 * (default -1). TFLite graphs (opset 0) use the single-axis form. */
static bool softmax_legacy(const kn_graph *g) {
  return g->opset > 0 && g->opset < 13;
}

static kestrel_status softmax_geometry(kn_graph *g, const kn_node *n,
                                       int64_t *outer, int64_t *len,
                                       int64_t *inner, kestrel_error *err) {
  const kn_tensor *in = kn_in(g, n, 0);
  bool legacy = softmax_legacy(g);
  int64_t axis = kn_attr_int(n, "axis", legacy ? 1 : -1);
  int rank = in->ndim;
  if (rank == 0) {
    *outer = *len = *inner = 1;
    return KESTREL_OK;
  }
  if (legacy) {
    /* axis may equal rank here: coerce to [N, 1]. */
    if (axis < 0)
      axis += rank;
    if (axis < 0 || axis > rank)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "axis out of range");
    *outer = kn_numel((int)axis, in->dims);
    *len = kn_numel(rank - (int)axis, in->dims + axis);
    *inner = 1;
    return KESTREL_OK;
  }
  int a;
  if (!kn_ew_axis(axis, rank, &a))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "axis out of range");
  split_at_axis(in, a, outer, len, inner);
  return KESTREL_OK;
}

static kestrel_status softmax_infer(kn_graph *g, kn_node *n,
                                    kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  if (!is_real_dtype(in))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "dtype %s",
                        kestrel_dtype_name(in->dtype));
  int64_t o, l, i;
  st = softmax_geometry(g, n, &o, &l, &i, err);
  if (st != KESTREL_OK)
    return st;
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, in->dtype, in->ndim, in->dims);
  return KESTREL_OK;
}

static kestrel_status softmax_run(const kn_exec *x, const kn_node *n,
                                  kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *out = kn_out(g, n, 0);
  int64_t outer, len, inner;
  kestrel_status st = softmax_geometry(g, n, &outer, &len, &inner, err);
  if (st != KESTREL_OK)
    return st;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * len * inner + i;
      double mx = -INFINITY;
      int64_t arg = 0;
      for (int64_t k = 0; k < len; k++) {
        double v = load_real(in, base + k * inner);
        if (v > mx) {
          mx = v;
          arg = k;
        }
      }
      if (n->op == KN_OP_HARDMAX) {
        for (int64_t k = 0; k < len; k++)
          store_real(out, base + k * inner, k == arg ? 1.0 : 0.0);
        continue;
      }
      /* Subtracting the max keeps exp() finite. */
      double sum = 0.0;
      for (int64_t k = 0; k < len; k++)
        sum += exp(load_real(in, base + k * inner) - mx);
      double log_sum = log(sum);
      for (int64_t k = 0; k < len; k++) {
        double v = load_real(in, base + k * inner) - mx;
        store_real(out, base + k * inner,
                   n->op == KN_OP_LOG_SOFTMAX ? v - log_sum : exp(v) / sum);
      }
    }
  return KESTREL_OK;
}

/* ============================================================== Reduce* */

typedef struct reduce_plan {
  bool axis[KN_MAX_DIMS]; /* reduced? */
  bool keepdims;
  bool noop; /* empty axes with noop_with_empty_axes: identity */
} reduce_plan;

static kestrel_status reduce_make_plan(kn_graph *g, const kn_node *n,
                                       reduce_plan *p, kestrel_error *err) {
  const kn_tensor *in = kn_in(g, n, 0);
  int64_t axes[KN_MAX_DIMS];
  int count = 0;
  const kn_tensor *axes_t = kn_in(g, n, 1);
  if (axes_t) {
    /* ReduceSum from opset 13 (all of them from 18) take axes as input. */
    kestrel_status st = kn_ew_need_const(axes_t, n, "axes", err);
    if (st != KESTREL_OK)
      return st;
    int64_t m = kn_tensor_numel(axes_t);
    if (m > KN_MAX_DIMS || !kn_ew_dtype_is_int(axes_t->dtype))
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad axes input");
    for (int64_t i = 0; i < m; i++)
      axes[i] = kn_ew_load_i64(axes_t->data, axes_t->dtype, i);
    count = (int)m;
  } else {
    const int64_t *v;
    count = kn_attr_ints(n, "axes", &v);
    if (count > KN_MAX_DIMS)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "%d axes", count);
    for (int i = 0; i < count; i++)
      axes[i] = v[i];
  }
  p->keepdims = kn_attr_int(n, "keepdims", 1) != 0;
  p->noop = count == 0 && kn_attr_int(n, "noop_with_empty_axes", 0) != 0;
  for (int d = 0; d < KN_MAX_DIMS; d++)
    p->axis[d] = count == 0 && !p->noop;
  for (int i = 0; i < count; i++) {
    int a;
    if (!kn_ew_axis(axes[i], in->ndim, &a))
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "axis %lld out of range for rank %d",
                          (long long)axes[i], in->ndim);
    p->axis[a] = true;
  }
  return KESTREL_OK;
}

static kestrel_status reduce_infer(kn_graph *g, kn_node *n,
                                   kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  if (in->dtype == KESTREL_DTYPE_BOOL)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "bool input");
  reduce_plan p;
  st = reduce_make_plan(g, n, &p, err);
  if (st != KESTREL_OK)
    return st;
  int64_t dims[KN_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < in->ndim; d++) {
    if (!p.axis[d])
      dims[nd++] = in->dims[d];
    else if (p.keepdims)
      dims[nd++] = 1;
  }
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, in->dtype, nd, dims);
  kn_ew_inherit_quant(y, in);
  return KESTREL_OK;
}

/* Advances a multi-index over dims; returns the change in offset. */
static int64_t step_index(int64_t *idx, const int64_t *dims,
                          const int64_t *strides, int n) {
  int64_t delta = 0;
  for (int d = n - 1; d >= 0; d--) {
    delta += strides[d];
    if (++idx[d] < dims[d])
      return delta;
    delta -= strides[d] * dims[d];
    idx[d] = 0;
  }
  return delta;
}

static kestrel_status reduce_run(const kn_exec *x, const kn_node *n,
                                 kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *out = kn_out(g, n, 0);
  reduce_plan p;
  kestrel_status st = reduce_make_plan(g, n, &p, err);
  if (st != KESTREL_OK)
    return st;
  int64_t kdims[KN_MAX_DIMS], kstr[KN_MAX_DIMS], rdims[KN_MAX_DIMS],
      rstr[KN_MAX_DIMS];
  int nk = 0, nr = 0;
  int64_t s = 1;
  int64_t strides[KN_MAX_DIMS];
  for (int d = in->ndim - 1; d >= 0; d--) {
    strides[d] = s;
    s *= in->dims[d];
  }
  for (int d = 0; d < in->ndim; d++) {
    if (p.axis[d]) {
      rdims[nr] = in->dims[d];
      rstr[nr++] = strides[d];
    } else {
      kdims[nk] = in->dims[d];
      kstr[nk++] = strides[d];
    }
  }
  int64_t out_count = kn_numel(nk, kdims), red_count = kn_numel(nr, rdims);
  bool is_int = !is_real_dtype(in);
  /* Integer Reduce{Sum,Max,Min,Prod,L1,SumSquare} stay exact in int64;
   * the others go through double and are floored back. */
  bool exact_int = is_int && n->op != KN_OP_REDUCE_L2 &&
                   n->op != KN_OP_REDUCE_LOG_SUM &&
                   n->op != KN_OP_REDUCE_LOG_SUM_EXP &&
                   n->op != KN_OP_REDUCE_MEAN;
  int64_t kidx[KN_MAX_DIMS] = {0};
  int64_t base = 0;
  for (int64_t o = 0; o < out_count; o++) {
    int64_t ridx[KN_MAX_DIMS] = {0};
    int64_t off = base;
    double acc;
    switch (n->op) {
    case KN_OP_REDUCE_PROD: acc = 1.0; break;
    case KN_OP_REDUCE_MAX:
    case KN_OP_REDUCE_LOG_SUM_EXP: acc = -INFINITY; break;
    case KN_OP_REDUCE_MIN: acc = INFINITY; break;
    default: acc = 0.0; break;
    }
    int64_t iacc = n->op == KN_OP_REDUCE_PROD  ? 1
                   : n->op == KN_OP_REDUCE_MAX ? INT64_MIN
                   : n->op == KN_OP_REDUCE_MIN ? INT64_MAX
                                               : 0;
    double mx = -INFINITY; /* LogSumExp: max first, for stability */
    if (n->op == KN_OP_REDUCE_LOG_SUM_EXP) {
      int64_t o2 = off;
      int64_t i2[KN_MAX_DIMS] = {0};
      for (int64_t r = 0; r < red_count; r++) {
        double v = load_real(in, o2);
        if (v > mx)
          mx = v;
        o2 += step_index(i2, rdims, rstr, nr);
      }
      if (!isfinite(mx))
        mx = 0.0;
      acc = 0.0;
    }
    for (int64_t r = 0; r < red_count; r++) {
      if (exact_int) {
        int64_t v = kn_ew_load_i64(in->data, in->dtype, off);
        uint64_t u = (uint64_t)v;
        switch (n->op) {
        case KN_OP_REDUCE_MAX: iacc = v > iacc ? v : iacc; break;
        case KN_OP_REDUCE_MIN: iacc = v < iacc ? v : iacc; break;
        case KN_OP_REDUCE_PROD: iacc = (int64_t)((uint64_t)iacc * u); break;
        case KN_OP_REDUCE_L1:
          iacc = (int64_t)((uint64_t)iacc + (v < 0 ? 0u - u : u));
          break;
        case KN_OP_REDUCE_SUM_SQUARE:
          iacc = (int64_t)((uint64_t)iacc + u * u);
          break;
        default: iacc = (int64_t)((uint64_t)iacc + u); break;
        }
      } else {
        double v = load_real(in, off);
        switch (n->op) {
        case KN_OP_REDUCE_MAX: acc = v > acc || v != v ? v : acc; break;
        case KN_OP_REDUCE_MIN: acc = v < acc || v != v ? v : acc; break;
        case KN_OP_REDUCE_PROD: acc *= v; break;
        case KN_OP_REDUCE_L1: acc += fabs(v); break;
        case KN_OP_REDUCE_L2:
        case KN_OP_REDUCE_SUM_SQUARE: acc += v * v; break;
        case KN_OP_REDUCE_LOG_SUM_EXP: acc += exp(v - mx); break;
        default: acc += v; break;
        }
      }
      off += step_index(ridx, rdims, rstr, nr);
    }
    switch (n->op) {
    case KN_OP_REDUCE_MEAN: acc /= (double)red_count; break;
    case KN_OP_REDUCE_L2: acc = sqrt(acc); break;
    case KN_OP_REDUCE_LOG_SUM: acc = log(acc); break;
    case KN_OP_REDUCE_LOG_SUM_EXP: acc = log(acc) + mx; break;
    default: break;
    }
    if (exact_int)
      kn_ew_store_i64(out->data, out->dtype, o, iacc);
    else if (is_int)
      kn_ew_store_f64(out->data, out->dtype, o, acc); /* truncates */
    else
      store_real(out, o, acc);
    base += step_index(kidx, kdims, kstr, nk);
  }
  return KESTREL_OK;
}

/* ======================================================== ArgMax, ArgMin */

static kestrel_status arg_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  int axis;
  if (in->ndim == 0 || !kn_ew_axis(kn_attr_int(n, "axis", 0), in->ndim, &axis))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "axis out of range");
  if (in->dims[axis] == 0)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "arg of an empty dimension");
  if (in->dtype == KESTREL_DTYPE_BOOL)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "bool input");
  int64_t dims[KN_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < in->ndim; d++) {
    if (d != axis)
      dims[nd++] = in->dims[d];
    else if (kn_attr_int(n, "keepdims", 1))
      dims[nd++] = 1;
  }
  kn_set_shape(kn_out(g, n, 0), KESTREL_DTYPE_I64, nd, dims);
  return KESTREL_OK;
}

static kestrel_status arg_run(const kn_exec *x, const kn_node *n,
                              kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  int64_t *out = kn_out(g, n, 0)->data;
  int axis;
  kn_ew_axis(kn_attr_int(n, "axis", 0), in->ndim, &axis);
  bool last = kn_attr_int(n, "select_last_index", 0) != 0;
  bool is_max = n->op == KN_OP_ARGMAX;
  int64_t outer, len, inner;
  split_at_axis(in, axis, &outer, &len, &inner);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * len * inner + i, arg = 0;
      double best = load_real(in, base);
      for (int64_t k = 1; k < len; k++) {
        double v = load_real(in, base + k * inner);
        bool better = is_max ? v > best : v < best;
        if (better || (last && v == best)) {
          best = v;
          arg = k;
        }
      }
      out[o * inner + i] = arg;
    }
  return KESTREL_OK;
}

/* ================================================================ CumSum */

static kestrel_status cumsum_axis(kn_graph *g, const kn_node *n, int *axis,
                                  kestrel_error *err) {
  const kn_tensor *in = kn_in(g, n, 0), *a = kn_in(g, n, 1);
  if (!a || !a->data || kn_tensor_numel(a) != 1 ||
      !kn_ew_dtype_is_int(a->dtype))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "axis must be one integer");
  if (!kn_ew_axis(kn_ew_load_i64(a->data, a->dtype, 0), in->ndim, axis))
    return kn_node_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, n,
                        "axis out of range");
  return KESTREL_OK;
}

static kestrel_status cumsum_infer(kn_graph *g, kn_node *n,
                                   kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 2, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0), *a = kn_in(g, n, 1);
  if (in->ndim == 0 || in->dtype == KESTREL_DTYPE_BOOL)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "scalar or bool input");
  if (a->kind == KN_TENSOR_CONSTANT) {
    int axis;
    st = cumsum_axis(g, n, &axis, err);
    if (st != KESTREL_OK)
      return st;
  }
  kn_set_shape(kn_out(g, n, 0), in->dtype, in->ndim, in->dims);
  return KESTREL_OK;
}

static kestrel_status cumsum_run(const kn_exec *x, const kn_node *n,
                                 kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *out = kn_out(g, n, 0);
  int axis;
  kestrel_status st = cumsum_axis(g, n, &axis, err);
  if (st != KESTREL_OK)
    return st;
  bool exclusive = kn_attr_int(n, "exclusive", 0) != 0;
  bool reverse = kn_attr_int(n, "reverse", 0) != 0;
  bool is_int = !is_real_dtype(in);
  int64_t outer, len, inner;
  split_at_axis(in, axis, &outer, &len, &inner);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      double acc = 0.0;
      int64_t iacc = 0;
      for (int64_t t = 0; t < len; t++) {
        int64_t k = reverse ? len - 1 - t : t;
        int64_t at = (o * len + k) * inner + i;
        /* Read before writing: out may alias in. */
        double v = is_int ? 0.0 : load_real(in, at);
        int64_t iv = is_int ? kn_ew_load_i64(in->data, in->dtype, at) : 0;
        if (exclusive) {
          if (is_int)
            kn_ew_store_i64(out->data, out->dtype, at, iacc);
          else
            store_real(out, at, acc);
        }
        acc += v;
        iacc = (int64_t)((uint64_t)iacc + (uint64_t)iv);
        if (!exclusive) {
          if (is_int)
            kn_ew_store_i64(out->data, out->dtype, at, iacc);
          else
            store_real(out, at, acc);
        }
      }
    }
  return KESTREL_OK;
}

/* ================================================================= Trilu */

static kestrel_status trilu_infer(kn_graph *g, kn_node *n,
                                  kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0), *k = kn_in(g, n, 1);
  if (in->ndim < 2)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "rank below 2");
  if (k && kn_tensor_numel(k) != 1)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "k is not a scalar");
  kn_set_shape(kn_out(g, n, 0), in->dtype, in->ndim, in->dims);
  return KESTREL_OK;
}

static kestrel_status trilu_run(const kn_exec *x, const kn_node *n,
                                kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0), *kt = kn_in(g, n, 1);
  kn_tensor *out = kn_out(g, n, 0);
  int64_t k = kt && kt->data ? kn_ew_load_i64(kt->data, kt->dtype, 0) : 0;
  bool upper = kn_attr_int(n, "upper", 1) != 0;
  int64_t rows = in->dims[in->ndim - 2], cols = in->dims[in->ndim - 1];
  int64_t mats = kn_numel(in->ndim - 2, in->dims);
  size_t es = kestrel_dtype_size(in->dtype);
  for (int64_t m = 0; m < mats; m++)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) {
        size_t at = (size_t)((m * rows + r) * cols + c) * es;
        /* Compare as c - r against k without overflow for huge k. */
        bool keep = upper ? (double)c - (double)r >= (double)k
                          : (double)c - (double)r <= (double)k;
        if (keep)
          memmove((uint8_t *)out->data + at, (const uint8_t *)in->data + at,
                  es);
        else
          memset((uint8_t *)out->data + at, 0, es);
      }
  return KESTREL_OK;
}

/* ================================================================ OneHot */

static kestrel_status onehot_depth(kn_graph *g, const kn_node *n,
                                   int64_t *depth, kestrel_error *err) {
  const kn_tensor *d = kn_in(g, n, 1);
  kestrel_status st = kn_ew_need_const(d, n, "depth", err);
  if (st != KESTREL_OK)
    return st;
  if (kn_tensor_numel(d) != 1)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "depth not scalar");
  double v = kn_ew_load_f64(d->data, d->dtype, 0);
  if (!(v >= 1.0 && v <= (double)(INT64_C(1) << 31)))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "depth %g", v);
  *depth = (int64_t)v;
  return KESTREL_OK;
}

static kestrel_status onehot_infer(kn_graph *g, kn_node *n,
                                   kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 3, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *ind = kn_in(g, n, 0), *vals = kn_in(g, n, 2);
  int64_t depth;
  st = onehot_depth(g, n, &depth, err);
  if (st != KESTREL_OK)
    return st;
  if (kn_tensor_numel(vals) != 2)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "values must hold [off, on]");
  int nd = ind->ndim + 1, axis;
  if (nd > KN_MAX_DIMS || !kn_ew_axis(kn_attr_int(n, "axis", -1), nd, &axis))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "axis out of range or rank too high");
  int64_t dims[KN_MAX_DIMS];
  for (int d = 0, k = 0; d < nd; d++)
    dims[d] = d == axis ? depth : ind->dims[k++];
  kn_set_shape(kn_out(g, n, 0), vals->dtype, nd, dims);
  return KESTREL_OK;
}

static kestrel_status onehot_run(const kn_exec *x, const kn_node *n,
                                 kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *ind = kn_in(g, n, 0), *vals = kn_in(g, n, 2);
  kn_tensor *out = kn_out(g, n, 0);
  int64_t depth;
  kestrel_status st = onehot_depth(g, n, &depth, err);
  if (st != KESTREL_OK)
    return st;
  int axis;
  kn_ew_axis(kn_attr_int(n, "axis", -1), out->ndim, &axis);
  int64_t outer = kn_numel(axis, ind->dims);
  int64_t inner = kn_numel(ind->ndim - axis, ind->dims + axis);
  size_t es = kestrel_dtype_size(vals->dtype);
  const uint8_t *off = vals->data, *on = off + es;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t d = 0; d < depth; d++)
      for (int64_t i = 0; i < inner; i++) {
        /* Indices may be float; negative ones count from depth. */
        int64_t v = kn_ew_load_i64(ind->data, ind->dtype, o * inner + i);
        if (v < 0)
          v += depth;
        memcpy((uint8_t *)out->data + (size_t)((o * depth + d) * inner + i) * es,
               v == d ? on : off, es);
      }
  return KESTREL_OK;
}

/* ================================================================== TopK */

static kestrel_status topk_k(kn_graph *g, const kn_node *n, int axis,
                             int64_t *k, kestrel_error *err) {
  const kn_tensor *in = kn_in(g, n, 0), *kt = kn_in(g, n, 1);
  if (kt) {
    kestrel_status st = kn_ew_need_const(kt, n, "K", err);
    if (st != KESTREL_OK)
      return st;
    if (kn_tensor_numel(kt) != 1)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "K not one value");
    *k = kn_ew_load_i64(kt->data, kt->dtype, 0);
  } else {
    *k = kn_attr_int(n, "k", -1); /* TopK-1 */
  }
  if (*k < 0 || *k > in->dims[axis])
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "K = %lld for a dimension of %lld", (long long)*k,
                        (long long)in->dims[axis]);
  return KESTREL_OK;
}

static kestrel_status topk_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 2, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  int axis;
  if (in->ndim == 0 || !kn_ew_axis(kn_attr_int(n, "axis", -1), in->ndim, &axis))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "axis out of range");
  if (in->dtype == KESTREL_DTYPE_BOOL)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "bool input");
  int64_t k;
  st = topk_k(g, n, axis, &k, err);
  if (st != KESTREL_OK)
    return st;
  int64_t dims[KN_MAX_DIMS];
  memcpy(dims, in->dims, sizeof(dims));
  dims[axis] = k;
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, in->dtype, in->ndim, dims);
  kn_ew_inherit_quant(y, in);
  kn_set_shape(kn_out(g, n, 1), KESTREL_DTYPE_I64, in->ndim, dims);
  return KESTREL_OK;
}

/* Selection by repeated scans, O(len * k), so the kernel needs no scratch.
 * Order: by value (largest or smallest first), ties by lower index, which
 * makes the order total and the result deterministic. */
static kestrel_status topk_run(const kn_exec *x, const kn_node *n,
                               kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *vals = kn_out(g, n, 0);
  int64_t *idx = kn_out(g, n, 1)->data;
  int axis;
  kn_ew_axis(kn_attr_int(n, "axis", -1), in->ndim, &axis);
  int64_t k;
  kestrel_status st = topk_k(g, n, axis, &k, err);
  if (st != KESTREL_OK)
    return st;
  bool largest = kn_attr_int(n, "largest", 1) != 0;
  size_t es = kestrel_dtype_size(in->dtype);
  int64_t outer, len, inner;
  split_at_axis(in, axis, &outer, &len, &inner);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * len * inner + i;
      double prev_v = 0.0;
      int64_t prev_i = -1;
      for (int64_t j = 0; j < k; j++) {
        int64_t best_i = -1;
        double best_v = 0.0;
        for (int64_t t = 0; t < len; t++) {
          double v = load_real(in, base + t * inner);
          /* Skip what is already taken: everything ordered before prev. */
          if (prev_i >= 0) {
            bool before = largest ? (v > prev_v || (v == prev_v && t <= prev_i))
                                  : (v < prev_v || (v == prev_v && t <= prev_i));
            if (before)
              continue;
          }
          bool better = best_i < 0 ||
                        (largest ? v > best_v : v < best_v);
          if (better) {
            best_v = v;
            best_i = t;
          }
        }
        if (best_i < 0)
          best_i = 0; /* only with NaNs: keep the output defined */
        int64_t at = (o * k + j) * inner + i;
        memcpy((uint8_t *)vals->data + (size_t)at * es,
               (const uint8_t *)in->data + (size_t)(base + best_i * inner) * es,
               es);
        idx[at] = best_i;
        prev_v = best_v;
        prev_i = best_i;
      }
    }
  return KESTREL_OK;
}

static uint64_t misc_macs(kn_graph *g, const kn_node *n) {
  const kn_tensor *x = kn_in(g, n, 0);
  return x ? (uint64_t)kn_tensor_numel(x) : 0;
}

void kn_register_ops_misc(kn_op_info *t) {
  static const kn_op soft[] = {KN_OP_SOFTMAX, KN_OP_LOG_SOFTMAX,
                               KN_OP_HARDMAX};
  static const kn_op reduce[] = {
      KN_OP_REDUCE_MEAN,       KN_OP_REDUCE_SUM,  KN_OP_REDUCE_MAX,
      KN_OP_REDUCE_MIN,        KN_OP_REDUCE_PROD, KN_OP_REDUCE_L1,
      KN_OP_REDUCE_L2,         KN_OP_REDUCE_SUM_SQUARE,
      KN_OP_REDUCE_LOG_SUM,    KN_OP_REDUCE_LOG_SUM_EXP,
  };
  for (size_t i = 0; i < sizeof(soft) / sizeof(soft[0]); i++)
    t[soft[i]] = (kn_op_info){
        .infer = softmax_infer, .run = softmax_run, .macs = misc_macs};
  for (size_t i = 0; i < sizeof(reduce) / sizeof(reduce[0]); i++)
    t[reduce[i]] = (kn_op_info){
        .infer = reduce_infer, .run = reduce_run, .macs = misc_macs};
  t[KN_OP_ARGMAX] = (kn_op_info){.infer = arg_infer, .run = arg_run};
  t[KN_OP_ARGMIN] = (kn_op_info){.infer = arg_infer, .run = arg_run};
  t[KN_OP_CUMSUM] = (kn_op_info){.infer = cumsum_infer, .run = cumsum_run};
  t[KN_OP_TRILU] = (kn_op_info){.infer = trilu_infer, .run = trilu_run};
  t[KN_OP_ONE_HOT] = (kn_op_info){.infer = onehot_infer, .run = onehot_run};
  t[KN_OP_TOPK] = (kn_op_info){.infer = topk_infer, .run = topk_run};
}
