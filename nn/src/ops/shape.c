/* Reference kernels for ONNX shape-manipulation ops: Reshape and its kin
 * (byte copies), Concat/Split/Slice/Transpose/Gather (index arithmetic),
 * Cast and the constant makers. They run on every dtype because load-time
 * folding of exporters' Shape->Gather->Concat chains goes through them with
 * int64 data. Shapes that depend on a tensor's values need that tensor to be
 * a constant; anything else is rejected as a dynamic shape. */
#include "ops_eltwise.h"
#include "shape_fast.h"
#include "threadpool.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Same cap as the loader's: no single tensor above 2^31 elements. */
#define KN_SHAPE_MAX_ELEMENTS (INT64_C(1) << 31)

static size_t elem_size(const kn_tensor *t) {
  return kestrel_dtype_size(t->dtype);
}

/* Reads a constant 1-D (or scalar) int tensor into vals; at most max. */
static kestrel_status read_const_ints(const kn_tensor *t, const kn_node *n,
                                      const char *what, int64_t *vals,
                                      int max, int *count, kestrel_error *err) {
  kestrel_status st = kn_ew_need_const(t, n, what, err);
  if (st != KESTREL_OK)
    return st;
  if (!kn_ew_dtype_is_int(t->dtype))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "%s input '%s' must be integer, is %s", what, t->name,
                        kestrel_dtype_name(t->dtype));
  int64_t m = kn_tensor_numel(t);
  if (m > max)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "%s input '%s' has %lld values, at most %d", what,
                        t->name, (long long)m, max);
  for (int64_t i = 0; i < m; i++)
    vals[i] = kn_ew_load_i64(t->data, t->dtype, i);
  *count = (int)m;
  return KESTREL_OK;
}

/* Product of dims with an overflow cap; -1 when above the cap. */
static int64_t checked_numel(int nd, const int64_t *dims) {
  int64_t m = 1;
  for (int d = 0; d < nd; d++) {
    if (dims[d] < 0)
      return -1;
    if (dims[d] && m > KN_SHAPE_MAX_ELEMENTS / dims[d])
      return -1;
    m *= dims[d];
  }
  return m;
}

static kestrel_status set_checked(kn_tensor *y, const kn_node *n,
                                  kestrel_dtype dt, int nd,
                                  const int64_t *dims, kestrel_error *err) {
  if (nd < 0 || nd > KN_MAX_DIMS)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "output rank %d above %d", nd, KN_MAX_DIMS);
  if (checked_numel(nd, dims) < 0)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "output shape is negative or too large");
  kn_set_shape(y, dt, nd, dims);
  return KESTREL_OK;
}

/* Copies the bytes of input 0 to output 0 (Reshape, Squeeze, Identity...). */
static kestrel_status copy_run(const kn_exec *x, const kn_node *n,
                               kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *out = kn_out(g, n, 0);
  size_t bytes = kn_tensor_bytes(out);
  if (bytes && in->data != out->data)
    memmove(out->data, in->data, bytes);
  /* Dropout's optional mask: inference keeps everything. */
  if (n->op == KN_OP_DROPOUT) {
    kn_tensor *mask = kn_out(g, n, 1);
    if (mask && mask->data)
      memset(mask->data, 1, kn_tensor_bytes(mask));
  }
  return KESTREL_OK;
}

/* ---------------------------------------------------------------- Reshape */

static kestrel_status reshape_infer(kn_graph *g, kn_node *n,
                                    kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  int64_t shape[KN_MAX_DIMS];
  int nd = 0;
  const kn_tensor *shape_t = kn_in(g, n, 1);
  if (shape_t) {
    st = read_const_ints(shape_t, n, "shape", shape, KN_MAX_DIMS, &nd, err);
    if (st != KESTREL_OK)
      return st;
  } else {
    /* Reshape-1 and TFLite builtin options carry the shape as attribute. */
    const int64_t *v;
    nd = kn_attr_ints(n, "shape", &v);
    if (nd > KN_MAX_DIMS)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "rank %d", nd);
    for (int i = 0; i < nd; i++)
      shape[i] = v[i];
  }
  bool allowzero = kn_attr_int(n, "allowzero", 0) != 0;
  int64_t total = kn_tensor_numel(in), known = 1;
  int infer_at = -1;
  for (int i = 0; i < nd; i++) {
    if (shape[i] == 0 && !allowzero) {
      if (i >= in->ndim)
        return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                            "shape[%d] = 0 copies a dimension the input "
                            "does not have", i);
      shape[i] = in->dims[i];
    } else if (shape[i] == -1) {
      if (infer_at >= 0)
        return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                            "shape has more than one -1");
      infer_at = i;
      continue;
    } else if (shape[i] < 0) {
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "shape[%d] = %lld", i, (long long)shape[i]);
    }
    if (shape[i] && known > KN_SHAPE_MAX_ELEMENTS / shape[i])
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "shape too large");
    known *= shape[i];
  }
  if (infer_at >= 0) {
    if (known == 0) {
      if (total != 0)
        return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                            "cannot infer -1 next to a zero dimension");
      shape[infer_at] = 0;
    } else {
      if (total % known)
        return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                            "%lld elements do not split into %lld-sized "
                            "rows", (long long)total, (long long)known);
      shape[infer_at] = total / known;
    }
    known = total;
  }
  if (known != total)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "reshape of %lld elements to %lld", (long long)total,
                        (long long)known);
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, in->dtype, nd, shape);
  kn_ew_inherit_quant(y, in);
  return KESTREL_OK;
}

/* ---------------------------------------------------------------- Flatten */

static kestrel_status flatten_infer(kn_graph *g, kn_node *n,
                                    kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  int64_t axis = kn_attr_int(n, "axis", 1);
  if (axis < 0)
    axis += in->ndim;
  if (axis < 0 || axis > in->ndim)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "axis %lld out of range for rank %d",
                        (long long)kn_attr_int(n, "axis", 1), in->ndim);
  int64_t dims[2] = {kn_numel((int)axis, in->dims),
                     kn_numel(in->ndim - (int)axis, in->dims + axis)};
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, in->dtype, 2, dims);
  kn_ew_inherit_quant(y, in);
  return KESTREL_OK;
}

/* ---------------------------------------------------- Identity, Dropout */

static kestrel_status identity_infer(kn_graph *g, kn_node *n,
                                     kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *y = kn_out(g, n, 0);
  if (n->op == KN_OP_DROPOUT) {
    /* Training mode with a non-zero ratio is random; we only do inference. */
    const kn_tensor *ratio = kn_in(g, n, 1), *training = kn_in(g, n, 2);
    if (training && training->kind == KN_TENSOR_CONSTANT && training->data &&
        kn_tensor_numel(training) == 1 &&
        kn_ew_load_i64(training->data, training->dtype, 0) != 0) {
      double r = 0.5;
      if (ratio && ratio->kind == KN_TENSOR_CONSTANT && ratio->data &&
          kn_tensor_numel(ratio) == 1)
        r = kn_ew_load_f64(ratio->data, ratio->dtype, 0);
      if (r != 0.0)
        return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                            "Dropout in training mode");
    } else if (training && training->kind != KN_TENSOR_CONSTANT) {
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "Dropout training_mode is not a constant");
    }
    kn_tensor *mask = kn_out(g, n, 1);
    if (mask)
      kn_set_shape(mask, KESTREL_DTYPE_BOOL, in->ndim, in->dims);
  }
  kn_set_shape(y, in->dtype, in->ndim, in->dims);
  kn_ew_inherit_quant(y, in);
  return KESTREL_OK;
}

/* -------------------------------------------------- Squeeze, Unsqueeze */

/* Axes come from input 1 (opset 13+) or the "axes" attribute. */
static kestrel_status read_axes(kn_graph *g, const kn_node *n, int input,
                                int64_t *axes, int max, int *count,
                                kestrel_error *err) {
  const kn_tensor *t = kn_in(g, n, input);
  if (t)
    return read_const_ints(t, n, "axes", axes, max, count, err);
  const int64_t *v;
  int m = kn_attr_ints(n, "axes", &v);
  if (m > max)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "%d axes", m);
  for (int i = 0; i < m; i++)
    axes[i] = v[i];
  *count = m;
  return KESTREL_OK;
}

static kestrel_status squeeze_infer(kn_graph *g, kn_node *n,
                                    kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  int64_t axes[KN_MAX_DIMS];
  int count = 0;
  st = read_axes(g, n, 1, axes, KN_MAX_DIMS, &count, err);
  if (st != KESTREL_OK)
    return st;
  bool drop[KN_MAX_DIMS] = {false};
  if (count == 0) {
    for (int d = 0; d < in->ndim; d++)
      drop[d] = in->dims[d] == 1;
  }
  for (int i = 0; i < count; i++) {
    int a;
    if (!kn_ew_axis(axes[i], in->ndim, &a))
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "axis %lld out of range", (long long)axes[i]);
    if (in->dims[a] != 1)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "cannot squeeze dimension %d of size %lld", a,
                          (long long)in->dims[a]);
    drop[a] = true;
  }
  int64_t dims[KN_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < in->ndim; d++)
    if (!drop[d])
      dims[nd++] = in->dims[d];
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, in->dtype, nd, dims);
  kn_ew_inherit_quant(y, in);
  return KESTREL_OK;
}

static kestrel_status unsqueeze_infer(kn_graph *g, kn_node *n,
                                      kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  int64_t axes[KN_MAX_DIMS];
  int count = 0;
  st = read_axes(g, n, 1, axes, KN_MAX_DIMS, &count, err);
  if (st != KESTREL_OK)
    return st;
  int nd = in->ndim + count;
  if (nd > KN_MAX_DIMS)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "output rank %d above %d", nd, KN_MAX_DIMS);
  bool added[KN_MAX_DIMS] = {false};
  for (int i = 0; i < count; i++) {
    int a;
    if (!kn_ew_axis(axes[i], nd, &a) || added[a])
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "axis %lld out of range or repeated",
                          (long long)axes[i]);
    added[a] = true;
  }
  int64_t dims[KN_MAX_DIMS];
  for (int d = 0, k = 0; d < nd; d++)
    dims[d] = added[d] ? 1 : in->dims[k++];
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, in->dtype, nd, dims);
  kn_ew_inherit_quant(y, in);
  return KESTREL_OK;
}

/* Elements one thread should at least get: below this the pool's wake-up
 * costs more than the copy. */
#define KN_SHAPE_PAR_GRAIN 16384

/* Items per chunk of a parallel-for so that a chunk moves at least that
 * many elements. */
static size_t par_grain(int64_t per_item) {
  if (per_item <= 0 || per_item >= KN_SHAPE_PAR_GRAIN)
    return 1;
  return (size_t)(KN_SHAPE_PAR_GRAIN / per_item);
}

/* ---------------------------------------------------------------- Concat */

static kestrel_status concat_infer(kn_graph *g, kn_node *n,
                                   kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *a = kn_in(g, n, 0);
  if (a->ndim == 0)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "scalar input");
  int axis;
  if (!kn_node_attr(n, "axis") ||
      !kn_ew_axis(kn_attr_int(n, "axis", 0), a->ndim, &axis))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "axis missing or out of range");
  int64_t dims[KN_MAX_DIMS];
  memcpy(dims, a->dims, sizeof(dims));
  dims[axis] = 0;
  for (int i = 0; i < n->num_inputs; i++) {
    const kn_tensor *t = kn_in(g, n, i);
    if (!t || t->ndim != a->ndim || t->dtype != a->dtype)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "input %d is missing or differs in rank or dtype",
                          i);
    for (int d = 0; d < a->ndim; d++)
      if (d != axis && t->dims[d] != a->dims[d])
        return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                            "input '%s' dimension %d is %lld, not %lld",
                            t->name, d, (long long)t->dims[d],
                            (long long)a->dims[d]);
    if (t->dims[axis] > KN_SHAPE_MAX_ELEMENTS - dims[axis])
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "output too large");
    dims[axis] += t->dims[axis];
  }
  kn_ew_act act;
  st = kn_ew_act_read(n, &act, err);
  if (st != KESTREL_OK)
    return st;
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, a->dtype, a->ndim, dims);
  kn_ew_inherit_quant(y, a);
  return KESTREL_OK;
}

typedef struct concat_job {
  kn_graph *g;
  const kn_node *n;
  kn_tensor *out;
  int axis;
  size_t es;
  int64_t inner, out_row;
  kn_ew_act act;
} concat_job;

/* Outer steps [begin, end): for each, every input's slice goes to its place
 * in the output row, then the fused activation runs on those rows. Each
 * output byte is written by exactly one chunk, the same way for any split. */
static void concat_chunk(void *ctx, size_t begin, size_t end, int thread) {
  (void)thread;
  const concat_job *j = ctx;
  const kn_tensor *out = j->out;
  bool quant_out = kn_ew_is_quantized(out);
  kn_ew_quant qo = quant_out ? kn_ew_quant_of(out) : (kn_ew_quant){0};
  int64_t at = 0; /* element offset of this input inside an output row */
  for (int i = 0; i < j->n->num_inputs; i++) {
    const kn_tensor *t = kn_in(j->g, j->n, i);
    int64_t chunk = t->dims[j->axis] * j->inner;
    bool requant = false;
    kn_ew_quant qi = {0};
    if (quant_out && kn_ew_is_quantized(t)) {
      qi = kn_ew_quant_of(t);
      requant = qi.scale != qo.scale || qi.zero_point != qo.zero_point;
    }
    for (int64_t o = (int64_t)begin; o < (int64_t)end && chunk > 0; o++) {
      const uint8_t *src =
          (const uint8_t *)t->data + (size_t)(o * chunk) * j->es;
      uint8_t *dst =
          (uint8_t *)out->data + (size_t)(o * j->out_row + at) * j->es;
      if (!requant) {
        memcpy(dst, src, (size_t)chunk * j->es);
        continue;
      }
      for (int64_t k = 0; k < chunk; k++) {
        float v =
            kn_ew_dequant(&qi, (int32_t)kn_ew_load_i64(src, t->dtype, k));
        kn_ew_store_i64(dst, out->dtype, k, kn_ew_requant(&qo, v));
      }
    }
    at += chunk;
  }
  if (j->act.kind != KN_ACT_NONE && out->dtype == KESTREL_DTYPE_F32)
    kn_ew_act_apply(&j->act, (float *)out->data + (size_t)begin * j->out_row,
                    (int64_t)(end - begin) * j->out_row);
}

static kestrel_status concat_run(const kn_exec *x, const kn_node *n,
                                 kestrel_error *err) {
  kn_graph *g = x->graph;
  concat_job j = {.g = g, .n = n, .out = kn_out(g, n, 0)};
  kn_tensor *out = j.out;
  kn_ew_axis(kn_attr_int(n, "axis", 0), out->ndim, &j.axis);
  j.es = elem_size(out);
  int64_t outer = kn_numel(j.axis, out->dims);
  j.inner = kn_numel(out->ndim - j.axis - 1, out->dims + j.axis + 1);
  j.out_row = out->dims[j.axis] * j.inner; /* elements per outer step */
  kestrel_status st = kn_ew_act_read(n, &j.act, err);
  if (st != KESTREL_OK)
    return st;
  /* NHWC channel concats have one outer step per pixel: split those over
   * the session's threads. */
  if (outer > 0)
    kn_parallel_for(x->pool, (size_t)outer, par_grain(j.out_row),
                    concat_chunk, &j);
  return KESTREL_OK;
}

/* ---------------------------------------------------------------- Split */

static kestrel_status split_sizes(kn_graph *g, const kn_node *n, int *axis,
                                  int64_t *sizes, kestrel_error *err) {
  const kn_tensor *in = kn_in(g, n, 0);
  if (!kn_ew_axis(kn_attr_int(n, "axis", 0), in->ndim, axis))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "axis out of range");
  int outs = n->num_outputs;
  int64_t dim = in->dims[*axis];
  const kn_tensor *st_t = kn_in(g, n, 1);
  const int64_t *attr;
  int count = kn_attr_ints(n, "split", &attr);
  if (st_t) {
    kestrel_status st = kn_ew_need_const(st_t, n, "split", err);
    if (st != KESTREL_OK)
      return st;
    count = (int)kn_tensor_numel(st_t);
    if (count != outs)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "split has %d sizes for %d outputs", count, outs);
    for (int i = 0; i < outs; i++)
      sizes[i] = kn_ew_load_i64(st_t->data, st_t->dtype, i);
  } else if (count > 0) {
    if (count != outs)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "split has %d sizes for %d outputs", count, outs);
    for (int i = 0; i < outs; i++)
      sizes[i] = attr[i];
  } else {
    /* Equal parts; an uneven tail goes to the last output (opset 18). */
    int64_t part = (dim + outs - 1) / outs;
    for (int i = 0; i < outs; i++) {
      int64_t left = dim - part * i;
      sizes[i] = left < 0 ? 0 : left < part ? left : part;
    }
  }
  int64_t sum = 0;
  for (int i = 0; i < outs; i++) {
    if (sizes[i] < 0 || sizes[i] > dim)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "split size %lld", (long long)sizes[i]);
    sum += sizes[i];
  }
  if (sum != dim)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "split sizes add to %lld, dimension is %lld",
                        (long long)sum, (long long)dim);
  return KESTREL_OK;
}

/* Enough for any split a real graph makes; keeps kernels allocation-free. */
#define KN_SPLIT_MAX_OUTPUTS 1024

static kestrel_status split_infer(kn_graph *g, kn_node *n,
                                  kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  if (n->num_outputs > KN_SPLIT_MAX_OUTPUTS)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "%d outputs",
                        n->num_outputs);
  const kn_tensor *in = kn_in(g, n, 0);
  if (in->ndim == 0)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "scalar input");
  int axis;
  int64_t sizes[KN_SPLIT_MAX_OUTPUTS];
  st = split_sizes(g, n, &axis, sizes, err);
  if (st != KESTREL_OK)
    return st;
  for (int i = 0; i < n->num_outputs; i++) {
    kn_tensor *y = kn_out(g, n, i);
    if (!y)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "output %d", i);
    int64_t dims[KN_MAX_DIMS];
    memcpy(dims, in->dims, sizeof(dims));
    dims[axis] = sizes[i];
    kn_set_shape(y, in->dtype, in->ndim, dims);
    kn_ew_inherit_quant(y, in);
  }
  return KESTREL_OK;
}

static kestrel_status split_run(const kn_exec *x, const kn_node *n,
                                kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  int axis;
  int64_t sizes[KN_SPLIT_MAX_OUTPUTS];
  kestrel_status st = split_sizes(g, n, &axis, sizes, err);
  if (st != KESTREL_OK)
    return st;
  size_t es = elem_size(in);
  int64_t outer = kn_numel(axis, in->dims);
  int64_t inner = kn_numel(in->ndim - axis - 1, in->dims + axis + 1);
  int64_t in_row = in->dims[axis] * inner;
  int64_t at = 0;
  for (int i = 0; i < n->num_outputs; i++) {
    kn_tensor *y = kn_out(g, n, i);
    int64_t chunk = sizes[i] * inner;
    for (int64_t o = 0; o < outer && chunk > 0; o++)
      memcpy((uint8_t *)y->data + (size_t)(o * chunk) * es,
             (const uint8_t *)in->data + (size_t)(o * in_row + at) * es,
             (size_t)chunk * es);
    at += chunk;
  }
  return KESTREL_OK;
}

/* -------------------------------------------------------------- Transpose */

static kestrel_status transpose_perm(kn_graph *g, const kn_node *n, int *perm,
                                     kestrel_error *err) {
  const kn_tensor *in = kn_in(g, n, 0);
  const int64_t *p;
  int count = kn_attr_ints(n, "perm", &p);
  if (count == 0) {
    for (int d = 0; d < in->ndim; d++)
      perm[d] = in->ndim - 1 - d;
    return KESTREL_OK;
  }
  if (count != in->ndim)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "perm has %d entries for rank %d", count, in->ndim);
  bool seen[KN_MAX_DIMS] = {false};
  for (int d = 0; d < count; d++) {
    if (p[d] < 0 || p[d] >= in->ndim || seen[p[d]])
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "perm is not a permutation");
    seen[p[d]] = true;
    perm[d] = (int)p[d];
  }
  return KESTREL_OK;
}

static kestrel_status transpose_infer(kn_graph *g, kn_node *n,
                                      kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  int perm[KN_MAX_DIMS];
  st = transpose_perm(g, n, perm, err);
  if (st != KESTREL_OK)
    return st;
  int64_t dims[KN_MAX_DIMS];
  for (int d = 0; d < in->ndim; d++)
    dims[d] = in->dims[perm[d]];
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, in->dtype, in->ndim, dims);
  kn_ew_inherit_quant(y, in);
  return KESTREL_OK;
}

/* Copies rows [row0, row1) of a strided view of src (element strides per
 * output dim; a row is the innermost dimension) into the same rows of the
 * dense dst. Shared by Transpose and Slice; Transpose splits the rows over
 * the thread pool, every row is copied the same way whoever copies it. */
static void strided_copy_rows(void *dst, const void *src, size_t es, int nd,
                              const int64_t *dims, const int64_t *strides,
                              int64_t base, int64_t row0, int64_t row1) {
  if (row0 >= row1)
    return;
  int64_t idx[KN_MAX_DIMS] = {0};
  int64_t inner = nd ? dims[nd - 1] : 1;
  int64_t step = nd ? strides[nd - 1] : 0;
  int64_t off = base;
  /* Start position: row0 as a mixed-radix index over dims[0..nd-2]. */
  int64_t r = row0;
  for (int k = nd - 2; k >= 0; k--) {
    idx[k] = r % dims[k];
    r /= dims[k];
    off += idx[k] * strides[k];
  }
  uint8_t *d = (uint8_t *)dst + (size_t)(row0 * inner) * es;
  const uint8_t *s = src;
  for (int64_t row = row0; row < row1; row++) {
    if (es == 4) {
      for (int64_t j = 0; j < inner; j++)
        memcpy(d + (size_t)j * 4, s + (size_t)(off + j * step) * 4, 4);
    } else {
      for (int64_t j = 0; j < inner; j++)
        memcpy(d + (size_t)j * es, s + (size_t)(off + j * step) * es, es);
    }
    d += (size_t)inner * es;
    for (int k = nd - 2; k >= 0; k--) {
      off += strides[k];
      if (++idx[k] < dims[k])
        break;
      off -= strides[k] * dims[k];
      idx[k] = 0;
    }
  }
}

/* Rows (innermost runs) of a dense tensor of shape dims; 0 if empty. */
static int64_t strided_rows(int nd, const int64_t *dims) {
  int64_t numel = kn_numel(nd, dims);
  int64_t inner = nd ? dims[nd - 1] : 1;
  return numel == 0 || inner == 0 ? 0 : numel / inner;
}

static void strided_copy(void *dst, const void *src, size_t es, int nd,
                         const int64_t *dims, const int64_t *strides,
                         int64_t base) {
  strided_copy_rows(dst, src, es, nd, dims, strides, base, 0,
                    strided_rows(nd, dims));
}

typedef struct transpose_job {
  void *dst;
  const void *src;
  size_t es;
  int nd;
  const int64_t *dims, *strides;
} transpose_job;

static void transpose_chunk(void *ctx, size_t begin, size_t end, int thread) {
  (void)thread;
  const transpose_job *j = ctx;
  strided_copy_rows(j->dst, j->src, j->es, j->nd, j->dims, j->strides, 0,
                    (int64_t)begin, (int64_t)end);
}

static kestrel_status transpose_run(const kn_exec *x, const kn_node *n,
                                    kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *out = kn_out(g, n, 0);
  int perm[KN_MAX_DIMS];
  kestrel_status st = transpose_perm(g, n, perm, err);
  if (st != KESTREL_OK)
    return st;
  /* A batched 2-D transpose (NCHW <-> NHWC): tiles, not element copies. */
  if (kn_transpose_fast(x, in, out, perm))
    return KESTREL_OK;
  int64_t in_strides[KN_MAX_DIMS], strides[KN_MAX_DIMS];
  int64_t s = 1;
  for (int d = in->ndim - 1; d >= 0; d--) {
    in_strides[d] = s;
    s *= in->dims[d];
  }
  for (int d = 0; d < in->ndim; d++)
    strides[d] = in_strides[perm[d]];
  /* The model's input transpose (NCHW -> NHWC) is a full pass over the
   * largest activation: split its rows over the session's threads. */
  transpose_job j = {out->data, in->data, elem_size(in), out->ndim,
                     out->dims, strides};
  int64_t rows = strided_rows(out->ndim, out->dims);
  if (rows > 0)
    kn_parallel_for(x->pool, (size_t)rows,
                    par_grain(out->ndim ? out->dims[out->ndim - 1] : 1),
                    transpose_chunk, &j);
  return KESTREL_OK;
}

/* ---------------------------------------------------------------- Slice */

typedef struct slice_plan {
  int64_t start[KN_MAX_DIMS];
  int64_t step[KN_MAX_DIMS];
  int64_t dims[KN_MAX_DIMS];
} slice_plan;

/* Reads starts/ends/axes/steps from inputs (opset 10+) or attributes
 * (opset < 10) and clamps them the ONNX way. */
static kestrel_status slice_make_plan(kn_graph *g, const kn_node *n,
                                      slice_plan *p, kestrel_error *err) {
  const kn_tensor *in = kn_in(g, n, 0);
  int64_t starts[KN_MAX_DIMS], ends[KN_MAX_DIMS], axes[KN_MAX_DIMS],
      steps[KN_MAX_DIMS];
  int ns = 0, ne = 0, na = -1, nst = -1;
  kestrel_status st;
  if (n->num_inputs >= 3 && kn_in(g, n, 1)) {
    if ((st = read_const_ints(kn_in(g, n, 1), n, "starts", starts,
                              KN_MAX_DIMS, &ns, err)) != KESTREL_OK ||
        (st = read_const_ints(kn_in(g, n, 2), n, "ends", ends, KN_MAX_DIMS,
                              &ne, err)) != KESTREL_OK)
      return st;
    if (kn_in(g, n, 3) &&
        (st = read_const_ints(kn_in(g, n, 3), n, "axes", axes, KN_MAX_DIMS,
                              &na, err)) != KESTREL_OK)
      return st;
    if (kn_in(g, n, 4) &&
        (st = read_const_ints(kn_in(g, n, 4), n, "steps", steps, KN_MAX_DIMS,
                              &nst, err)) != KESTREL_OK)
      return st;
  } else {
    const int64_t *v;
    ns = kn_attr_ints(n, "starts", &v);
    for (int i = 0; i < ns && i < KN_MAX_DIMS; i++)
      starts[i] = v[i];
    ne = kn_attr_ints(n, "ends", &v);
    for (int i = 0; i < ne && i < KN_MAX_DIMS; i++)
      ends[i] = v[i];
    if (kn_node_attr(n, "axes")) {
      na = kn_attr_ints(n, "axes", &v);
      for (int i = 0; i < na && i < KN_MAX_DIMS; i++)
        axes[i] = v[i];
    }
    if (ns > KN_MAX_DIMS || ne > KN_MAX_DIMS || na > KN_MAX_DIMS)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "too many slice entries");
  }
  if (ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "starts/ends/axes/steps lengths differ");
  for (int d = 0; d < in->ndim; d++) {
    p->start[d] = 0;
    p->step[d] = 1;
    p->dims[d] = in->dims[d];
  }
  bool used[KN_MAX_DIMS] = {false};
  for (int i = 0; i < ns; i++) {
    int axis;
    if (!kn_ew_axis(na >= 0 ? axes[i] : i, in->ndim, &axis) || used[axis])
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "slice axis out of range or repeated");
    used[axis] = true;
    int64_t dim = in->dims[axis];
    int64_t step = nst >= 0 ? steps[i] : 1;
    if (step == 0)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "step is 0");
    if (step == INT64_MIN)
      step = -INT64_MAX; /* keeps -step representable */
    int64_t s = starts[i], e = ends[i];
    if (s < 0)
      s = s < -dim ? -1 : s + dim; /* stays negative: clamps below */
    if (e < 0)
      e = e < -dim ? -1 : e + dim;
    int64_t len;
    if (dim == 0) {
      s = 0;
      len = 0;
    } else if (step > 0) {
      s = s < 0 ? 0 : s > dim ? dim : s;
      e = e < 0 ? 0 : e > dim ? dim : e;
      len = e > s ? (e - s + step - 1) / step : 0;
    } else {
      s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
      e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
      len = s > e ? (s - e + (-step) - 1) / (-step) : 0;
    }
    p->start[axis] = s;
    p->step[axis] = step;
    p->dims[axis] = len;
  }
  return KESTREL_OK;
}

static kestrel_status slice_infer(kn_graph *g, kn_node *n,
                                  kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  slice_plan p;
  st = slice_make_plan(g, n, &p, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, in->dtype, in->ndim, p.dims);
  kn_ew_inherit_quant(y, in);
  return KESTREL_OK;
}

static kestrel_status slice_run(const kn_exec *x, const kn_node *n,
                                kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *out = kn_out(g, n, 0);
  slice_plan p;
  kestrel_status st = slice_make_plan(g, n, &p, err);
  if (st != KESTREL_OK)
    return st;
  int64_t strides[KN_MAX_DIMS], base = 0, s = 1;
  for (int d = in->ndim - 1; d >= 0; d--) {
    strides[d] = s * p.step[d];
    base += s * p.start[d];
    s *= in->dims[d];
  }
  strided_copy(out->data, in->data, elem_size(in), out->ndim, out->dims,
               strides, kn_tensor_numel(out) ? base : 0);
  return KESTREL_OK;
}

/* ---------------------------------------------------------- Shape, Size */

static void shape_range(const kn_tensor *in, const kn_node *n, int64_t *start,
                        int64_t *end) {
  int64_t r = in->ndim;
  int64_t s = kn_attr_int(n, "start", 0), e = kn_attr_int(n, "end", r);
  if (s < 0)
    s += r;
  if (e < 0)
    e += r;
  s = s < 0 ? 0 : s > r ? r : s;
  e = e < 0 ? 0 : e > r ? r : e;
  *start = s;
  *end = e < s ? s : e;
}

static kestrel_status shape_infer(kn_graph *g, kn_node *n,
                                  kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *y = kn_out(g, n, 0);
  if (n->op == KN_OP_SIZE) {
    kn_set_shape(y, KESTREL_DTYPE_I64, 0, NULL);
    return KESTREL_OK;
  }
  int64_t s, e;
  shape_range(in, n, &s, &e);
  int64_t dims[1] = {e - s};
  kn_set_shape(y, KESTREL_DTYPE_I64, 1, dims);
  return KESTREL_OK;
}

/* Reads only the input's shape: its data may not exist (load-time fold). */
static kestrel_status shape_run(const kn_exec *x, const kn_node *n,
                                kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  int64_t *y = kn_out(g, n, 0)->data;
  if (n->op == KN_OP_SIZE) {
    y[0] = kn_tensor_numel(in);
    return KESTREL_OK;
  }
  int64_t s, e;
  shape_range(in, n, &s, &e);
  for (int64_t d = s; d < e; d++)
    y[d - s] = in->dims[d];
  return KESTREL_OK;
}

/* ---------------------------------------------------------------- Gather */

static kestrel_status gather_infer(kn_graph *g, kn_node *n,
                                   kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 2, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *data = kn_in(g, n, 0), *idx = kn_in(g, n, 1);
  if (idx->dtype != KESTREL_DTYPE_I32 && idx->dtype != KESTREL_DTYPE_I64)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "indices must be int32 or int64");
  int axis;
  if (data->ndim == 0 ||
      !kn_ew_axis(kn_attr_int(n, "axis", 0), data->ndim, &axis))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "axis out of range");
  int64_t dims[KN_MAX_DIMS];
  int nd = 0;
  if (n->op == KN_OP_GATHER_ELEMENTS) {
    if (idx->ndim != data->ndim)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "indices rank %d differs from data rank %d",
                          idx->ndim, data->ndim);
    nd = idx->ndim;
    memcpy(dims, idx->dims, sizeof(dims));
  } else {
    nd = data->ndim - 1 + idx->ndim;
    if (nd > KN_MAX_DIMS)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "output rank %d above %d", nd, KN_MAX_DIMS);
    int k = 0;
    for (int d = 0; d < axis; d++)
      dims[k++] = data->dims[d];
    for (int d = 0; d < idx->ndim; d++)
      dims[k++] = idx->dims[d];
    for (int d = axis + 1; d < data->ndim; d++)
      dims[k++] = data->dims[d];
  }
  kn_tensor *y = kn_out(g, n, 0);
  kn_set_shape(y, data->dtype, nd, dims);
  kn_ew_inherit_quant(y, data);
  return KESTREL_OK;
}

static kestrel_status gather_run(const kn_exec *x, const kn_node *n,
                                 kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *data = kn_in(g, n, 0), *idx = kn_in(g, n, 1);
  kn_tensor *out = kn_out(g, n, 0);
  int axis;
  kn_ew_axis(kn_attr_int(n, "axis", 0), data->ndim, &axis);
  size_t es = elem_size(data);
  int64_t dim = data->dims[axis];
  int64_t count = kn_tensor_numel(idx);
  const uint8_t *src = data->data;
  uint8_t *dst = out->data;
  if (n->op == KN_OP_GATHER) {
    int64_t outer = kn_numel(axis, data->dims);
    int64_t inner = kn_numel(data->ndim - axis - 1, data->dims + axis + 1);
    size_t row = (size_t)inner * es;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t k = 0; k < count; k++) {
        int64_t i = kn_ew_load_i64(idx->data, idx->dtype, k);
        if (i < 0)
          i += dim;
        if (i < 0 || i >= dim)
          return kn_node_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, n,
                              "index %lld out of range [0, %lld)",
                              (long long)kn_ew_load_i64(idx->data,
                                                        idx->dtype, k),
                              (long long)dim);
        memcpy(dst + (size_t)(o * count + k) * row,
               src + (size_t)(o * dim + i) * row, row);
      }
    return KESTREL_OK;
  }
  /* GatherElements: out[i...] = data[i... with i_axis replaced]. */
  int64_t dstr[KN_MAX_DIMS], s = 1;
  for (int d = data->ndim - 1; d >= 0; d--) {
    dstr[d] = s;
    s *= data->dims[d];
  }
  int64_t pos[KN_MAX_DIMS] = {0};
  for (int64_t k = 0; k < count; k++) {
    int64_t i = kn_ew_load_i64(idx->data, idx->dtype, k);
    if (i < 0)
      i += dim;
    if (i < 0 || i >= dim)
      return kn_node_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, n,
                          "index out of range [0, %lld)", (long long)dim);
    int64_t off = 0;
    bool inside = true;
    for (int d = 0; d < data->ndim; d++) {
      int64_t c = d == axis ? i : pos[d];
      if (c >= data->dims[d])
        inside = false;
      off += c * dstr[d];
    }
    if (!inside)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "indices larger than data off the axis");
    memcpy(dst + (size_t)k * es, src + (size_t)off * es, es);
    for (int d = idx->ndim - 1; d >= 0; d--) {
      if (++pos[d] < idx->dims[d])
        break;
      pos[d] = 0;
    }
  }
  return KESTREL_OK;
}

/* ---------------------------------------------------------------- Cast */

/* ONNX TensorProto.DataType codes, as Cast's "to" carries them. */
static kestrel_dtype dtype_from_onnx(int64_t code) {
  switch (code) {
  case 1: return KESTREL_DTYPE_F32;
  case 2: return KESTREL_DTYPE_U8;
  case 3: return KESTREL_DTYPE_I8;
  case 5: return KESTREL_DTYPE_I16;
  case 6: return KESTREL_DTYPE_I32;
  case 7: return KESTREL_DTYPE_I64;
  case 9: return KESTREL_DTYPE_BOOL;
  case 10: return KESTREL_DTYPE_F16;
  case 11: return KESTREL_DTYPE_F64;
  default: return KESTREL_DTYPE_UNDEFINED;
  }
}

static kestrel_status cast_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  kestrel_dtype to = dtype_from_onnx(kn_attr_int(n, "to", 0));
  if (to == KESTREL_DTYPE_UNDEFINED)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "cast to ONNX type %lld",
                        (long long)kn_attr_int(n, "to", 0));
  kn_set_shape(kn_out(g, n, 0), to, in->ndim, in->dims);
  return KESTREL_OK;
}

static kestrel_status cast_run(const kn_exec *x, const kn_node *n,
                               kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *out = kn_out(g, n, 0);
  kn_ew_convert(in->data, in->dtype, out->data, out->dtype,
                kn_tensor_numel(in));
  return KESTREL_OK;
}

/* ------------------------------------------------------------- Constant */

static kestrel_status constant_infer(kn_graph *g, kn_node *n,
                                     kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 0, 1, err);
  if (st != KESTREL_OK)
    return st;
  kn_tensor *y = kn_out(g, n, 0);
  const kn_attr *a;
  int64_t dims[1];
  if ((a = kn_node_attr(n, "value_float")) || (a = kn_node_attr(n, "value_int"))) {
    kn_set_shape(y,
                 a->type == KN_ATTR_FLOAT ? KESTREL_DTYPE_F32
                                          : KESTREL_DTYPE_I64,
                 0, NULL);
    return KESTREL_OK;
  }
  if ((a = kn_node_attr(n, "value_floats")) ||
      (a = kn_node_attr(n, "value_ints"))) {
    dims[0] = a->count;
    kn_set_shape(y,
                 a->type == KN_ATTR_FLOATS ? KESTREL_DTYPE_F32
                                           : KESTREL_DTYPE_I64,
                 1, dims);
    return KESTREL_OK;
  }
  return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                      "Constant without value_float(s)/value_int(s): the "
                      "importer must turn 'value' into a constant tensor");
}

static kestrel_status constant_run(const kn_exec *x, const kn_node *n,
                                   kestrel_error *err) {
  kn_tensor *y = kn_out(x->graph, n, 0);
  const kn_attr *a = kn_node_attr(n, "value_float");
  if (!a)
    a = kn_node_attr(n, "value_int");
  if (!a)
    a = kn_node_attr(n, "value_floats");
  if (!a)
    a = kn_node_attr(n, "value_ints");
  if (!a)
    return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n, "no value");
  switch (a->type) {
  case KN_ATTR_FLOAT: ((float *)y->data)[0] = a->f; break;
  case KN_ATTR_INT: ((int64_t *)y->data)[0] = a->i; break;
  case KN_ATTR_FLOATS:
    if (a->count)
      memcpy(y->data, a->floats, sizeof(float) * (size_t)a->count);
    break;
  case KN_ATTR_INTS:
    if (a->count)
      memcpy(y->data, a->ints, sizeof(int64_t) * (size_t)a->count);
    break;
  default:
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "value type");
  }
  return KESTREL_OK;
}

/* ------------------------------------------------------ ConstantOfShape */

/* The fill value: a one-element constant input 1 (how an importer can pass
 * ONNX's tensor attribute with its dtype), else a float/int attribute
 * "value" (dtype F32/I64, or the kestrel dtype in int "value_dtype"). */
static kestrel_dtype fill_value(kn_graph *g, const kn_node *n, double *fv,
                                int64_t *iv) {
  const kn_tensor *v = kn_in(g, n, 1);
  if (v && v->data && kn_tensor_numel(v) == 1) {
    *fv = kn_ew_load_f64(v->data, v->dtype, 0);
    *iv = kn_ew_load_i64(v->data, v->dtype, 0);
    return v->dtype;
  }
  const kn_attr *a = kn_node_attr(n, "value");
  kestrel_dtype dt = KESTREL_DTYPE_F32;
  *fv = 0.0;
  *iv = 0;
  if (a && a->type == KN_ATTR_INT) {
    dt = KESTREL_DTYPE_I64;
    *iv = a->i;
    *fv = (double)a->i;
  } else if (a && a->type == KN_ATTR_FLOAT) {
    *fv = a->f;
    *iv = (int64_t)a->f;
  } else if (a && a->type == KN_ATTR_FLOATS && a->count == 1) {
    *fv = a->floats[0];
  } else if (a && a->type == KN_ATTR_INTS && a->count == 1) {
    dt = KESTREL_DTYPE_I64;
    *iv = a->ints[0];
    *fv = (double)a->ints[0];
  }
  int64_t forced = kn_attr_int(n, "value_dtype", 0);
  if (forced && kestrel_dtype_size((kestrel_dtype)forced))
    dt = (kestrel_dtype)forced;
  return dt;
}

static kestrel_status constant_of_shape_infer(kn_graph *g, kn_node *n,
                                              kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 1, 1, err);
  if (st != KESTREL_OK)
    return st;
  int64_t dims[KN_MAX_DIMS];
  int nd;
  st = read_const_ints(kn_in(g, n, 0), n, "shape", dims, KN_MAX_DIMS, &nd,
                       err);
  if (st != KESTREL_OK)
    return st;
  double fv;
  int64_t iv;
  kestrel_dtype dt = fill_value(g, n, &fv, &iv);
  return set_checked(kn_out(g, n, 0), n, dt, nd, dims, err);
}

static kestrel_status constant_of_shape_run(const kn_exec *x,
                                            const kn_node *n,
                                            kestrel_error *err) {
  kn_tensor *y = kn_out(x->graph, n, 0);
  double fv;
  int64_t iv;
  fill_value(x->graph, n, &fv, &iv);
  int64_t m = kn_tensor_numel(y);
  bool is_float = kn_ew_dtype_is_float(y->dtype);
  for (int64_t i = 0; i < m; i++) {
    if (is_float)
      kn_ew_store_f64(y->data, y->dtype, i, fv);
    else
      kn_ew_store_i64(y->data, y->dtype, i, iv);
  }
  return KESTREL_OK;
}

/* ---------------------------------------------------------------- Expand */

static kestrel_status expand_infer(kn_graph *g, kn_node *n,
                                   kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 2, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  int64_t shape[KN_MAX_DIMS], dims[KN_MAX_DIMS];
  int ns, nd;
  st = read_const_ints(kn_in(g, n, 1), n, "shape", shape, KN_MAX_DIMS, &ns,
                       err);
  if (st != KESTREL_OK)
    return st;
  if (!kn_ew_broadcast_shape(in->ndim, in->dims, ns, shape, &nd, dims))
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "input does not broadcast to the shape");
  kn_tensor *y = kn_out(g, n, 0);
  st = set_checked(y, n, in->dtype, nd, dims, err);
  kn_ew_inherit_quant(y, in);
  return st;
}

static kestrel_status expand_run(const kn_exec *x, const kn_node *n,
                                 kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *out = kn_out(g, n, 0);
  const kn_tensor *ops[2] = {out, in};
  kn_ew_bcast it;
  kn_ew_bcast_init(&it, out->ndim, out->dims, 2, ops);
  size_t es = elem_size(in);
  uint8_t *dst = out->data;
  const uint8_t *src = in->data;
  for (int64_t r = 0; r < it.rows; r++, kn_ew_bcast_next(&it))
    for (int64_t j = 0; j < it.inner; j++)
      memcpy(dst + (size_t)(it.off[0] + j * it.step[0]) * es,
             src + (size_t)(it.off[1] + j * it.step[1]) * es, es);
  return KESTREL_OK;
}

/* ---------------------------------------------------------------- Tile */

static kestrel_status tile_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 2, 1, err);
  if (st != KESTREL_OK)
    return st;
  const kn_tensor *in = kn_in(g, n, 0);
  int64_t reps[KN_MAX_DIMS], dims[KN_MAX_DIMS];
  int nr;
  st = read_const_ints(kn_in(g, n, 1), n, "repeats", reps, KN_MAX_DIMS, &nr,
                       err);
  if (st != KESTREL_OK)
    return st;
  if (nr != in->ndim)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "%d repeats for rank %d", nr, in->ndim);
  for (int d = 0; d < nr; d++) {
    if (reps[d] < 0 ||
        (reps[d] && in->dims[d] > KN_SHAPE_MAX_ELEMENTS / reps[d]))
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "repeat %lld invalid or too large",
                          (long long)reps[d]);
    dims[d] = in->dims[d] * reps[d];
  }
  kn_tensor *y = kn_out(g, n, 0);
  st = set_checked(y, n, in->dtype, in->ndim, dims, err);
  kn_ew_inherit_quant(y, in);
  return st;
}

static kestrel_status tile_run(const kn_exec *x, const kn_node *n,
                               kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *in = kn_in(g, n, 0);
  kn_tensor *out = kn_out(g, n, 0);
  size_t es = elem_size(in);
  int64_t m = kn_tensor_numel(out);
  int64_t pos[KN_MAX_DIMS] = {0}, istr[KN_MAX_DIMS], s = 1;
  for (int d = in->ndim - 1; d >= 0; d--) {
    istr[d] = s;
    s *= in->dims[d];
  }
  for (int64_t k = 0; k < m; k++) {
    int64_t off = 0;
    for (int d = 0; d < in->ndim; d++)
      off += (pos[d] % in->dims[d]) * istr[d];
    memcpy((uint8_t *)out->data + (size_t)k * es,
           (const uint8_t *)in->data + (size_t)off * es, es);
    for (int d = out->ndim - 1; d >= 0; d--) {
      if (++pos[d] < out->dims[d])
        break;
      pos[d] = 0;
    }
  }
  return KESTREL_OK;
}

/* ---------------------------------------------------------------- Range */

static kestrel_status range_count(kn_graph *g, const kn_node *n,
                                  int64_t *count, kestrel_error *err) {
  const kn_tensor *t[3];
  for (int i = 0; i < 3; i++) {
    t[i] = kn_in(g, n, i);
    static const char *const what[3] = {"start", "limit", "delta"};
    kestrel_status st = kn_ew_need_const(t[i], n, what[i], err);
    if (st != KESTREL_OK)
      return st;
    if (kn_tensor_numel(t[i]) != 1 || t[i]->dtype != t[0]->dtype)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "%s must be one value of the start's dtype",
                          what[i]);
  }
  kestrel_dtype dt = t[0]->dtype;
  if (dt != KESTREL_DTYPE_F32 && dt != KESTREL_DTYPE_F64 &&
      dt != KESTREL_DTYPE_I16 && dt != KESTREL_DTYPE_I32 &&
      dt != KESTREL_DTYPE_I64)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "dtype %s",
                        kestrel_dtype_name(dt));
  double c;
  if (kn_ew_dtype_is_int(dt)) {
    int64_t s = kn_ew_load_i64(t[0]->data, dt, 0);
    int64_t l = kn_ew_load_i64(t[1]->data, dt, 0);
    int64_t d = kn_ew_load_i64(t[2]->data, dt, 0);
    if (d == 0)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "delta is 0");
    c = ceil(((double)l - (double)s) / (double)d);
  } else {
    double s = kn_ew_load_f64(t[0]->data, dt, 0);
    double l = kn_ew_load_f64(t[1]->data, dt, 0);
    double d = kn_ew_load_f64(t[2]->data, dt, 0);
    if (d == 0.0 || d != d)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "delta is 0");
    c = ceil((l - s) / d);
  }
  if (!(c <= (double)KN_SHAPE_MAX_ELEMENTS))
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "range too long");
  *count = c > 0 ? (int64_t)c : 0;
  return KESTREL_OK;
}

static kestrel_status range_infer(kn_graph *g, kn_node *n,
                                  kestrel_error *err) {
  kestrel_status st = kn_ew_check_io(g, n, 3, 1, err);
  if (st != KESTREL_OK)
    return st;
  int64_t count;
  st = range_count(g, n, &count, err);
  if (st != KESTREL_OK)
    return st;
  kn_set_shape(kn_out(g, n, 0), kn_in(g, n, 0)->dtype, 1, &count);
  return KESTREL_OK;
}

static kestrel_status range_run(const kn_exec *x, const kn_node *n,
                                kestrel_error *err) {
  kn_graph *g = x->graph;
  const kn_tensor *s = kn_in(g, n, 0), *d = kn_in(g, n, 2);
  kn_tensor *out = kn_out(g, n, 0);
  int64_t m = kn_tensor_numel(out);
  if (kn_ew_dtype_is_int(out->dtype)) {
    int64_t v = kn_ew_load_i64(s->data, s->dtype, 0);
    int64_t step = kn_ew_load_i64(d->data, d->dtype, 0);
    for (int64_t i = 0; i < m; i++)
      kn_ew_store_i64(out->data, out->dtype, i,
                      (int64_t)((uint64_t)v + (uint64_t)i * (uint64_t)step));
  } else {
    double v = kn_ew_load_f64(s->data, s->dtype, 0);
    double step = kn_ew_load_f64(d->data, d->dtype, 0);
    for (int64_t i = 0; i < m; i++)
      kn_ew_store_f64(out->data, out->dtype, i, v + (double)i * step);
  }
  return KESTREL_OK;
}

void kn_register_ops_shape(kn_op_info *t) {
  t[KN_OP_RESHAPE] = (kn_op_info){.infer = reshape_infer, .run = copy_run};
  t[KN_OP_FLATTEN] = (kn_op_info){.infer = flatten_infer, .run = copy_run};
  t[KN_OP_SQUEEZE] = (kn_op_info){.infer = squeeze_infer, .run = copy_run};
  t[KN_OP_UNSQUEEZE] = (kn_op_info){.infer = unsqueeze_infer, .run = copy_run};
  t[KN_OP_IDENTITY] = (kn_op_info){.infer = identity_infer, .run = copy_run};
  t[KN_OP_DROPOUT] = (kn_op_info){.infer = identity_infer, .run = copy_run};
  t[KN_OP_CONCAT] = (kn_op_info){.infer = concat_infer, .run = concat_run};
  t[KN_OP_SPLIT] = (kn_op_info){.infer = split_infer, .run = split_run};
  t[KN_OP_TRANSPOSE] =
      (kn_op_info){.infer = transpose_infer, .run = transpose_run};
  t[KN_OP_SLICE] = (kn_op_info){.infer = slice_infer, .run = slice_run};
  t[KN_OP_SHAPE] = (kn_op_info){.infer = shape_infer, .run = shape_run};
  t[KN_OP_SIZE] = (kn_op_info){.infer = shape_infer, .run = shape_run};
  t[KN_OP_GATHER] = (kn_op_info){.infer = gather_infer, .run = gather_run};
  t[KN_OP_GATHER_ELEMENTS] =
      (kn_op_info){.infer = gather_infer, .run = gather_run};
  t[KN_OP_CAST] = (kn_op_info){.infer = cast_infer, .run = cast_run};
  t[KN_OP_CONSTANT] =
      (kn_op_info){.infer = constant_infer, .run = constant_run};
  t[KN_OP_CONSTANT_OF_SHAPE] = (kn_op_info){
      .infer = constant_of_shape_infer, .run = constant_of_shape_run};
  t[KN_OP_EXPAND] = (kn_op_info){.infer = expand_infer, .run = expand_run};
  t[KN_OP_TILE] = (kn_op_info){.infer = tile_infer, .run = tile_run};
  t[KN_OP_RANGE] = (kn_op_info){.infer = range_infer, .run = range_run};
}
