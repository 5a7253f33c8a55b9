/* pack_weights: replaces the constant weights (and bias) of every Conv and
 * Gemm the fast path can run by the kernels' packed bytes, a constant U8
 * tensor, and marks the node with int attribute "packed" (conv_fast.h has
 * the full convention). Packed bytes are ordinary constants, so a compiled
 * file stores them as they are and a load maps them without a copy.
 *
 * Nodes the kernels cannot run (NCHW layout, grouped non-depthwise convs,
 * int8 weights with a zero point or the value -128, int8 with a non-clamp
 * activation, Gemm with a per-row C) are left to the reference ops.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/kernels.h"
#include "ops/conv_fast.h"
#include "ops/ops_common.h"
#include "passes/passes.h"

/* What one node's packing needs, gathered before the graph is touched. */
typedef struct pack_src {
  int64_t kind;
  size_t n, k, kh, kw, c; /* N out channels, K reduction, kernel, in ch */
  int x, w, b, y, res;    /* tensor indices, -1 absent */
  float alpha, beta;      /* Gemm */
  bool trans_b;
  bool act_lut; /* int8 with a table activation */
  bool deconv;  /* ConvTranspose, stride == kernel: KH GEMMs of KW*N cols */
} pack_src;

/* Real input range of a non-clamp activation worth representing, given
 * the quantized output y: inputs beyond it give saturated outputs. false
 * when the activation has no table form here. */
static bool act_input_range(const kn_act *a, const kn_tensor *y, double *lo,
                            double *hi) {
  double sy = y->q_scale[0], zy = y->q_zero_point[0];
  double ylo = (-128 - zy) * sy, yhi = (127 - zy) * sy;
  switch (a->kind) {
  case KN_ACT_HARDSWISH:
    /* Below -3 the output is 0; above 3 it is x. */
    *lo = -3.0;
    *hi = yhi >= 3.0 ? yhi : (-3.0 + sqrt(9.0 + 24.0 * fmax(yhi, 0.0))) / 2.0;
    break;
  case KN_ACT_HARDSIGMOID:
    if (!(a->alpha > 0.0f))
      return false;
    *lo = (fmax(ylo, 0.0) - a->beta) / a->alpha;
    *hi = (fmin(yhi, 1.0) - a->beta) / a->alpha;
    break;
  case KN_ACT_SIGMOID: {
    double l = fmin(fmax(ylo, 1.0 / 1024), 0.5), h = fmax(fmin(yhi, 1.0 - 1.0 / 1024), 0.5);
    *lo = log(l / (1.0 - l));
    *hi = log(h / (1.0 - h));
    break;
  }
  default:
    return false;
  }
  /* Keep 0 exact and the zero point inside int8. */
  *lo = fmin(*lo, 0.0);
  *hi = fmax(*hi, 0.0);
  return *hi - *lo > 1e-6 && isfinite(*lo) && isfinite(*hi);
}

/* A new owned constant (kept local so this pass needs only graph.c). */
static int new_const(kn_graph *g, const char *name, kestrel_dtype dtype,
                     int64_t count) {
  int t = kn_graph_add_tensor(g, name);
  if (t < 0)
    return -1;
  int64_t dims[1] = {count};
  if (!kn_tensor_alloc_data(&g->tensors[t], dtype, 1, dims))
    return -1;
  g->tensors[t].kind = KN_TENSOR_CONSTANT;
  return t;
}

static bool const_t(const kn_graph *g, int t) {
  return t >= 0 && t < g->num_tensors && kn_is_const(&g->tensors[t]);
}

static int opt_input(const kn_graph *g, const kn_node *n, int i) {
  if (i >= n->num_inputs || n->inputs[i] < 0 ||
      g->tensors[n->inputs[i]].optional_absent)
    return -1;
  return n->inputs[i];
}

static bool act_clamp(const kn_node *n) {
  int64_t a = kn_attr_int(n, "activation", KN_ACT_NONE);
  return a == KN_ACT_NONE || a == KN_ACT_RELU || a == KN_ACT_RELU6 ||
         a == KN_ACT_RELU_N1_TO_1 || a == KN_ACT_CLIP;
}

/* int8 weights the qs8 kernels take: symmetric (zero point 0), per tensor
 * or per output channel along `axis`, no -128. */
static bool qs8_weights_ok(const kn_tensor *w, int axis, size_t n) {
  if (w->dtype != KESTREL_DTYPE_I8 || !w->q_count || !w->q_scale)
    return false;
  if (w->q_count != 1 && ((size_t)w->q_count != n || w->q_axis != axis))
    return false;
  for (int i = 0; i < w->q_count; i++) {
    if (w->q_zero_point && w->q_zero_point[i] != 0)
      return false;
    if (!(w->q_scale[i] > 0.0f) || isinf(w->q_scale[i]))
      return false;
  }
  const int8_t *v = w->data;
  int64_t count = kn_tensor_numel(w);
  for (int64_t i = 0; i < count; i++)
    if (v[i] == -128)
      return false;
  return true;
}

static bool per_tensor_i8(const kn_tensor *t) {
  return t->dtype == KESTREL_DTYPE_I8 && t->q_count == 1 && t->q_scale &&
         t->q_zero_point && t->q_scale[0] > 0.0f;
}

/* Fills s when node n can be packed. */
static bool classify(const kn_graph *g, const kn_node *n, pack_src *s) {
  memset(s, 0, sizeof(*s));
  if (n->dead || kn_node_attr(n, "packed") || n->num_outputs < 1 ||
      n->num_inputs < 2 || n->num_inputs > 4)
    return false;
  if (n->op != KN_OP_CONV && n->op != KN_OP_GEMM &&
      n->op != KN_OP_CONV_TRANSPOSE)
    return false;
  s->x = n->inputs[0];
  s->w = n->inputs[1];
  s->b = opt_input(g, n, 2);
  s->res = opt_input(g, n, 3);
  s->y = n->outputs[0];
  if (s->x < 0 || !const_t(g, s->w) || (s->b >= 0 && !const_t(g, s->b)))
    return false;
  const kn_tensor *x = &g->tensors[s->x], *w = &g->tensors[s->w];
  const kn_tensor *y = &g->tensors[s->y];
  const kn_tensor *b = s->b >= 0 ? &g->tensors[s->b] : NULL;
  bool q = x->dtype == KESTREL_DTYPE_I8;
  if (q) {
    if (!per_tensor_i8(x) || !per_tensor_i8(y) ||
        (b && b->dtype != KESTREL_DTYPE_I32))
      return false;
    if (s->res >= 0 && (!kn_node_attr(n, "sum_scale") || !act_clamp(n)))
      return false;
    if (!act_clamp(n)) {
      double lo, hi;
      kn_act a = kn_act_from_node(n);
      if (!act_input_range(&a, y, &lo, &hi))
        return false;
      s->act_lut = true;
    }
  } else if (x->dtype != KESTREL_DTYPE_F32 || w->dtype != KESTREL_DTYPE_F32 ||
             (b && b->dtype != KESTREL_DTYPE_F32)) {
    return false;
  }
  if (n->op == KN_OP_CONV_TRANSPOSE) {
    /* [C, M, KH, KW] weights; only the non-overlapping kind (stride ==
     * kernel, no pads, no output padding), which is a plain GEMM. */
    const int64_t *st, *pd, *dl, *op;
    int ns = kn_attr_ints(n, "strides", &st);
    int np = kn_attr_ints(n, "pads", &pd);
    int nd = kn_attr_ints(n, "dilations", &dl);
    int nop = kn_attr_ints(n, "output_padding", &op);
    const char *ap = kn_attr_string(n, "auto_pad", "NOTSET");
    if (kn_attr_int(n, "layout", KN_LAYOUT_NCHW) != KN_LAYOUT_NHWC ||
        x->ndim != 4 || w->ndim != 4 || kn_attr_int(n, "group", 1) != 1 ||
        w->dims[0] != x->dims[3] || ns != 2 || st[0] != w->dims[2] ||
        st[1] != w->dims[3] || s->res >= 0 ||
        kn_node_attr(n, "output_shape") || (strcmp(ap, "NOTSET") && ap[0]))
      return false;
    for (int i = 0; i < np; i++)
      if (pd[i])
        return false;
    for (int i = 0; i < nd; i++)
      if (dl[i] != 1)
        return false;
    for (int i = 0; i < nop; i++)
      if (op[i])
        return false;
    s->deconv = true;
    s->c = (size_t)x->dims[3];
    s->n = (size_t)w->dims[1];
    s->kh = (size_t)w->dims[2];
    s->kw = (size_t)w->dims[3];
    s->k = s->c;
    s->kind = q ? KN_PACKED_QS8_GEMM : KN_PACKED_F32_GEMM;
    if (b && kn_tensor_numel(b) != (int64_t)s->n)
      return false;
    if (q && !qs8_weights_ok(w, 1, s->n))
      return false;
    return s->n > 0 && s->k > 0;
  }
  if (n->op == KN_OP_CONV) {
    if (kn_attr_int(n, "layout", KN_LAYOUT_NCHW) != KN_LAYOUT_NHWC ||
        x->ndim != 4 || w->ndim != 4)
      return false;
    int64_t group = kn_attr_int(n, "group", 1);
    int64_t o = w->dims[0], c = x->dims[3];
    s->n = (size_t)o;
    s->kh = (size_t)w->dims[2];
    s->kw = (size_t)w->dims[3];
    s->c = (size_t)c;
    if (b && kn_tensor_numel(b) != o)
      return false;
    if (group == 1 && w->dims[1] == c) {
      s->kind = q ? KN_PACKED_QS8_GEMM : KN_PACKED_F32_GEMM;
      s->k = s->kh * s->kw * s->c;
    } else if (group == c && o == c && w->dims[1] == 1) {
      s->kind = q ? KN_PACKED_QS8_DWCONV : KN_PACKED_F32_DWCONV;
      s->k = s->kh * s->kw;
    } else {
      return false;
    }
    if (q && !qs8_weights_ok(w, 0, s->n))
      return false;
    return true;
  }
  /* Gemm: Y[M,N] = alpha * A . op(B) + beta * C, C broadcast along rows. */
  if (x->ndim != 2 || w->ndim != 2 || kn_attr_int(n, "transA", 0) != 0 ||
      s->res >= 0)
    return false;
  s->trans_b = kn_attr_int(n, "transB", 0) != 0;
  s->alpha = kn_attr_float(n, "alpha", 1.0f);
  s->beta = kn_attr_float(n, "beta", 1.0f);
  s->k = (size_t)(s->trans_b ? w->dims[1] : w->dims[0]);
  s->n = (size_t)(s->trans_b ? w->dims[0] : w->dims[1]);
  s->kind = q ? KN_PACKED_QS8_GEMM : KN_PACKED_F32_GEMM;
  if (b) {
    int64_t bn = kn_tensor_numel(b);
    bool row = (b->ndim == 1 && bn == (int64_t)s->n) ||
               (b->ndim == 2 && b->dims[0] == 1 &&
                b->dims[1] == (int64_t)s->n) ||
               (!q && bn == 1);
    if (!row)
      return false;
  }
  if (q && (s->alpha != 1.0f || s->beta != 1.0f ||
            !qs8_weights_ok(w, s->trans_b ? 0 : 1, s->n)))
    return false;
  return s->n > 0 && s->k > 0;
}

/* Weight element (out channel o, reduction index r) in the order the
 * kernels want: for convs r runs over (kh, kw, c), matching NHWC im2col
 * rows; for Gemm over K. Source weights are [O, C, KH, KW] / [N,K] / [K,N]. */
static size_t src_index(const pack_src *s, bool conv, size_t blk, size_t o,
                        size_t r) {
  if (s->deconv) { /* block ky, column o = (kx, m), row r = c */
    size_t kx = o / s->n, m = o % s->n;
    return ((r * s->n + m) * s->kh + blk) * s->kw + kx;
  }
  if (conv) {
    size_t c = r % s->c, t = r / s->c;
    size_t kx = t % s->kw, ky = t / s->kw;
    return ((o * s->c + c) * s->kh + ky) * s->kw + kx;
  }
  return s->trans_b ? o * s->k + r : r * s->n + o;
}

static kestrel_status pack_node(kn_graph *g, int ni, const pack_src *s,
                                kestrel_error *err) {
  kn_node *n = &g->nodes[ni];
  bool conv = n->op == KN_OP_CONV || n->op == KN_OP_CONV_TRANSPOSE;
  bool q = s->kind == KN_PACKED_QS8_GEMM || s->kind == KN_PACKED_QS8_DWCONV;
  bool dw = s->kind == KN_PACKED_F32_DWCONV || s->kind == KN_PACKED_QS8_DWCONV;
  /* A ConvTranspose is KH GEMMs of gn = KW * N columns each. */
  size_t blocks = s->deconv ? s->kh : 1;
  size_t gn = s->deconv ? s->kw * s->n : s->n;
  size_t bytes;
  switch (s->kind) {
  case KN_PACKED_F32_GEMM: bytes = kn_f32_gemm_packed_size(gn, s->k); break;
  case KN_PACKED_QS8_GEMM: bytes = kn_qs8_gemm_packed_size(gn, s->k); break;
  case KN_PACKED_F32_DWCONV:
    bytes = kn_f32_dwconv_packed_size(s->n, s->kh, s->kw);
    break;
  default: bytes = kn_qs8_dwconv_packed_size(s->n, s->kh, s->kw); break;
  }
  size_t block_bytes = bytes;
  bytes *= blocks;
  size_t es = q ? 1 : sizeof(float);
  void *wbuf = malloc(blocks * gn * s->k * es + 1);
  void *bbuf = malloc(gn * 4 + 1);
  if (!wbuf || !bbuf) {
    free(wbuf), free(bbuf);
    return kn_node_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                        "out of memory packing weights");
  }
  /* Gather before adding tensors: that may move the tensor table. */
  const kn_tensor *w = &g->tensors[s->w];
  const kn_tensor *b = s->b >= 0 ? &g->tensors[s->b] : NULL;
  const kn_tensor *x = &g->tensors[s->x], *y = &g->tensors[s->y];
  float *scales = NULL;
  int32_t a_zero = q ? x->q_zero_point[0] : 0;
  float act_scale = 0.0f;
  int32_t act_zero = 0;
  int8_t lut[256];
  if (q) {
    int8_t *dst = wbuf;
    const int8_t *src = w->data;
    for (size_t blk = 0; blk < blocks; blk++)
      for (size_t o = 0; o < gn; o++)
        for (size_t r = 0; r < s->k; r++)
          dst[(blk * gn + o) * s->k + r] =
              dw ? src[o * s->k + r] : src[src_index(s, conv, blk, o, r)];
    int32_t *bias = bbuf;
    for (size_t o = 0; o < gn; o++)
      bias[o] = b ? ((const int32_t *)b->data)[o % s->n] : 0;
    scales = malloc(gn * sizeof(float) + 1);
    if (!scales) {
      free(wbuf), free(bbuf);
      return kn_node_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                          "out of memory packing weights");
    }
    /* Requantize to the fused Add's input when a residual is fused, to
     * the activation's input when a table follows. */
    double out_scale = s->res >= 0 ? kn_attr_float(n, "sum_scale", 1.0f)
                                   : y->q_scale[0];
    if (s->act_lut) {
      kn_act a = kn_act_from_node(n);
      double lo, hi;
      act_input_range(&a, y, &lo, &hi);
      act_scale = (float)((hi - lo) / 255.0);
      double z = nearbyint(-128.0 - lo / act_scale);
      act_zero = (int32_t)(z < -128 ? -128 : (z > 127 ? 127 : z));
      float sy = y->q_scale[0];
      int32_t zy = y->q_zero_point[0];
      for (int q8 = -128; q8 < 128; q8++) {
        float v = kn_act_apply1(&a, act_scale * (float)(q8 - act_zero));
        float r = rintf(v / sy);
        r = r > 1000.0f ? 1000.0f : (r < -1000.0f ? -1000.0f : r);
        int32_t o = (int32_t)r + zy;
        lut[q8 + 128] = (int8_t)(o < -128 ? -128 : (o > 127 ? 127 : o));
      }
      out_scale = act_scale;
    }
    for (size_t o = 0; o < gn; o++) {
      double ws = w->q_scale[w->q_count == 1 ? 0 : o % s->n];
      scales[o] = (float)((double)x->q_scale[0] * ws / out_scale);
    }
  } else {
    float *dst = wbuf;
    const float *src = w->data;
    for (size_t blk = 0; blk < blocks; blk++)
      for (size_t o = 0; o < gn; o++)
        for (size_t r = 0; r < s->k; r++)
          dst[(blk * gn + o) * s->k + r] =
              dw ? src[o * s->k + r]
                 : src[src_index(s, conv, blk, o, r)] *
                       (conv ? 1.0f : s->alpha);
    float *bias = bbuf;
    int64_t bn = b ? kn_tensor_numel(b) : 0;
    for (size_t o = 0; o < gn; o++)
      bias[o] = b ? ((const float *)b->data)[bn == 1 ? 0 : (int64_t)(o % s->n)] *
                        (conv ? 1.0f : s->beta)
                  : 0.0f;
  }
  char name[256];
  snprintf(name, sizeof name, "%s/packed", n->name ? n->name : "node");
  int pt = new_const(g, name, KESTREL_DTYPE_U8, (int64_t)bytes);
  int st = -1;
  if (pt >= 0 && q) {
    snprintf(name, sizeof name, "%s/requant_scales", n->name ? n->name : "node");
    st = new_const(g, name, KESTREL_DTYPE_F32, (int64_t)gn);
    if (st >= 0)
      memcpy(g->tensors[st].data, scales, gn * sizeof(float));
  }
  int lt = -1;
  if (st >= 0 && s->act_lut) {
    snprintf(name, sizeof name, "%s/activation_table",
             n->name ? n->name : "node");
    lt = new_const(g, name, KESTREL_DTYPE_I8, 256);
    if (lt >= 0)
      memcpy(g->tensors[lt].data, lut, sizeof lut);
  }
  int *inputs = pt >= 0 && (!q || st >= 0) && (!s->act_lut || lt >= 0)
                    ? malloc(5 * sizeof(int))
                    : NULL;
  if (!inputs) {
    free(wbuf), free(bbuf), free(scales);
    return kn_node_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                        "out of memory packing weights");
  }
  uint8_t *packed = g->tensors[pt].data;
  switch (s->kind) {
  case KN_PACKED_F32_GEMM:
    for (size_t blk = 0; blk < blocks; blk++)
      kn_f32_gemm_pack(gn, s->k, (const float *)wbuf + blk * gn * s->k, bbuf,
                       packed + blk * block_bytes);
    break;
  case KN_PACKED_QS8_GEMM:
    for (size_t blk = 0; blk < blocks; blk++)
      kn_qs8_gemm_pack(gn, s->k, (const int8_t *)wbuf + blk * gn * s->k, bbuf,
                       a_zero, packed + blk * block_bytes);
    break;
  case KN_PACKED_F32_DWCONV:
    kn_f32_dwconv_pack(s->n, s->kh, s->kw, wbuf, bbuf, packed);
    break;
  default:
    kn_qs8_dwconv_pack(s->n, s->kh, s->kw, wbuf, bbuf, packed);
    break;
  }
  free(wbuf), free(bbuf), free(scales);
  inputs[0] = s->x;
  inputs[1] = pt;
  inputs[2] = q ? st : -1;
  inputs[3] = s->res;
  inputs[4] = lt;
  int count = lt >= 0 ? 5 : s->res >= 0 ? 4 : (q ? 3 : 2);
  n = &g->nodes[ni];
  free(n->inputs);
  n->inputs = inputs;
  n->num_inputs = count;
  kn_node_set_int(n, "packed", s->kind);
  kn_node_set_int(n, "packed_channels", (int64_t)s->n);
  if (conv) {
    int64_t ks[2] = {(int64_t)s->kh, (int64_t)s->kw};
    kn_node_set_ints(n, "kernel_shape", ks, 2);
  } else {
    kn_node_set_float(n, "alpha", 1.0f);
    kn_node_set_float(n, "beta", 1.0f);
    kn_node_set_int(n, "transB", 1);
  }
  if (s->kind == KN_PACKED_QS8_GEMM)
    kn_node_set_int(n, "packed_a_zero_point", a_zero);
  if (lt >= 0) {
    kn_node_set_float(n, "act_in_scale", act_scale);
    kn_node_set_int(n, "act_in_zero_point", act_zero);
  }
  if (!kn_node_attr(n, "packed") || !kn_node_attr(n, "packed_channels"))
    return kn_node_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                        "out of memory packing weights");
  return KESTREL_OK;
}

kestrel_status kn_pass_pack_weights(kn_graph *g, int *changed,
                                    kestrel_error *err) {
  static const char *const kind_names[] = {"", "f32 gemm", "f32 dwconv",
                                           "qs8 gemm", "qs8 dwconv"};
  int count = 0;
  for (int i = 0; i < g->num_nodes; i++) {
    pack_src s;
    if (!classify(g, &g->nodes[i], &s))
      continue;
    kestrel_status st = pack_node(g, i, &s, err);
    if (st != KESTREL_OK)
      return st;
    kn_log(g, "pack_weights: %s '%s' as %s (N %zu, K %zu)",
           kn_op_name(g->nodes[i].op),
           g->nodes[i].name ? g->nodes[i].name : "", kind_names[s.kind], s.n,
           s.k);
    count++;
  }
  if (changed)
    *changed = count;
  return KESTREL_OK;
}

/* ---- fuse_int8_tables -------------------------------------------------------
 * An int8 op with one int8 input whose other operands are scalar constants
 * (the scale and shift PP-OCR's backbone applies after every activation,
 * an int8 Sigmoid, a Clip...) is a function of the input byte. When such an
 * op is the only reader of a packed int8 conv's output, the function folds
 * into the conv's output table (creating one for a clamp conv: requantize
 * to the conv's own output over the full range, then clamp and map in the
 * table), and the op disappears. The function is computed by the op's own
 * reference run over the 256 byte values, so no output byte changes. */

static bool byte_op(kn_op op) {
  switch (op) {
  case KN_OP_ADD: case KN_OP_SUB: case KN_OP_MUL: case KN_OP_DIV:
  case KN_OP_MAX: case KN_OP_MIN: case KN_OP_RELU: case KN_OP_CLIP:
  case KN_OP_SIGMOID: case KN_OP_HARDSWISH: case KN_OP_HARDSIGMOID:
  case KN_OP_LEAKY_RELU: case KN_OP_TANH:
    return true;
  default:
    return false;
  }
}

/* Table of node c over the 256 values of its input `slot` (every other
 * input a one-element constant), or false when c is not such a function. */
#define TABLE_MAX_INPUTS 4
static bool byte_table(kn_graph *g, const kn_node *c, int slot,
                       int8_t table[256]) {
  if (!byte_op(c->op) || c->num_outputs != 1 || c->num_inputs < 1 ||
      c->num_inputs > TABLE_MAX_INPUTS || c->outputs[0] < 0)
    return false;
  const kn_op_info *info = kn_op_get(c->op);
  if (!info || !info->run || (info->scratch && info->scratch(g, c)))
    return false;
  const kn_tensor *y = &g->tensors[c->outputs[0]];
  if (!per_tensor_i8(y))
    return false;
  kn_tensor t[TABLE_MAX_INPUTS + 1];
  int in_index[TABLE_MAX_INPUTS];
  uint8_t values[256];
  for (int v = 0; v < 256; v++)
    values[v] = (uint8_t)v; /* as int8: 0..127, then -128..-1 */
  int8_t raw[256];
  for (int k = 0; k < c->num_inputs; k++) {
    int ti = c->inputs[k];
    in_index[k] = -1;
    if (ti < 0 || g->tensors[ti].optional_absent) {
      if (k == slot)
        return false;
      continue;
    }
    t[k] = g->tensors[ti];
    if (k == slot) {
      if (!per_tensor_i8(&t[k]))
        return false;
      t[k].ndim = 1;
      t[k].dims[0] = 256;
      t[k].data = values;
      t[k].kind = KN_TENSOR_ACTIVATION;
    } else {
      if (!kn_is_const(&t[k]) || kn_tensor_numel(&t[k]) != 1)
        return false;
      t[k].ndim = 1;
      t[k].dims[0] = 1;
    }
    in_index[k] = k;
  }
  int out_index = c->num_inputs;
  t[out_index] = *y;
  t[out_index].ndim = 1;
  t[out_index].dims[0] = 256;
  t[out_index].data = raw;
  t[out_index].kind = KN_TENSOR_ACTIVATION;
  kn_node tn = *c;
  tn.inputs = in_index;
  tn.outputs = &out_index;
  kn_graph tg = *g;
  tg.tensors = t;
  tg.num_tensors = out_index + 1;
  tg.verbose = 0;
  kn_exec tx = {&tg, NULL, 0, 1, NULL};
  kestrel_error err;
  if (info->run(&tx, &tn, &err) != KESTREL_OK)
    return false;
  /* raw is indexed by the byte (0..255 = 0..127, -128..-1); tables by
   * q + 128. */
  for (int q8 = -128; q8 < 128; q8++)
    table[q8 + 128] = raw[(uint8_t)(int8_t)q8];
  return true;
}

/* Clamp bounds of a clamp activation on the output quantization, as
 * conv_fast.c computes them. */
static void clamp_bounds_q(const kn_node *n, const kn_tensor *y, int32_t *lo,
                           int32_t *hi) {
  kn_act a = kn_act_from_node(n);
  double rl = -INFINITY, rh = INFINITY;
  switch (a.kind) {
  case KN_ACT_RELU: rl = 0.0; break;
  case KN_ACT_RELU6: rl = 0.0; rh = 6.0; break;
  case KN_ACT_RELU_N1_TO_1: rl = -1.0; rh = 1.0; break;
  case KN_ACT_CLIP: rl = a.lo; rh = a.hi; break;
  default: break;
  }
  float s = y->q_scale[0];
  int32_t zp = y->q_zero_point[0];
  double b[2] = {rl, rh};
  int32_t out[2] = {-128, 127};
  for (int i = 0; i < 2; i++) {
    if (isinf(b[i]) || !(s > 0.0f))
      continue;
    double q = nearbyint(b[i] / (double)s) + zp;
    out[i] = q < -128.0 ? -128 : (q > 127.0 ? 127 : (int32_t)q);
  }
  *lo = out[0];
  *hi = out[1] < out[0] ? out[0] : out[1];
}

kestrel_status kn_pass_fuse_int8_tables(kn_graph *g, int *changed,
                                        kestrel_error *err) {
  int count = 0;
  for (int pass = 0, again = 1; again && pass < 8; pass++) {
    again = 0;
    for (int i = 0; i < g->num_nodes; i++) {
      kn_node *n = &g->nodes[i];
      int64_t kind = kn_attr_int(n, "packed", 0);
      if (n->dead || (kind != KN_PACKED_QS8_GEMM &&
                      kind != KN_PACKED_QS8_DWCONV) ||
          n->num_outputs != 1 || opt_input(g, n, 3) >= 0 ||
          n->num_inputs < 3)
        continue;
      int t = n->outputs[0];
      int ci = kn_edit_single_consumer(g, t);
      if (ci < 0 || kn_edit_is_graph_output(g, t))
        continue;
      const kn_node *c = &g->nodes[ci];
      int slot = -1;
      for (int k = 0; k < c->num_inputs; k++)
        if (c->inputs[k] == t)
          slot = k;
      int8_t f[256];
      if (slot < 0 || !per_tensor_i8(&g->tensors[t]) ||
          !byte_table(g, c, slot, f))
        continue;
      int old = opt_input(g, n, 4);
      int8_t table[256];
      if (old >= 0) {
        const int8_t *ot = g->tensors[old].data;
        if (g->tensors[old].dtype != KESTREL_DTYPE_I8 ||
            kn_tensor_numel(&g->tensors[old]) != 256)
          continue;
        for (int q8 = 0; q8 < 256; q8++)
          table[q8] = f[ot[q8] + 128];
      } else {
        int32_t lo, hi;
        clamp_bounds_q(n, &g->tensors[t], &lo, &hi);
        for (int q8 = -128; q8 < 128; q8++)
          table[q8 + 128] =
              f[(q8 < lo ? lo : (q8 > hi ? hi : q8)) + 128];
      }
      char name[256];
      snprintf(name, sizeof name, "%s/table_%s",
               n->name ? n->name : "node", c->name ? c->name : "op");
      float y_scale = g->tensors[t].q_scale[0];
      int32_t y_zero = g->tensors[t].q_zero_point[0];
      int lt = new_const(g, name, KESTREL_DTYPE_I8, 256);
      if (lt < 0)
        return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      memcpy(g->tensors[lt].data, table, sizeof table);
      n = &g->nodes[i];
      c = &g->nodes[ci];
      if (n->num_inputs < 5) {
        int *in = realloc(n->inputs, 5 * sizeof(int));
        if (!in)
          return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
        for (int k = n->num_inputs; k < 5; k++)
          in[k] = -1;
        n->inputs = in;
        n->num_inputs = 5;
      }
      n->inputs[4] = lt;
      if (old < 0) {
        /* The clamp is in the table now; requantize to the conv's own
         * output over the full range. */
        kn_node_set_int(n, "activation", KN_ACT_NONE);
        kn_node_set_float(n, "act_in_scale", y_scale);
        kn_node_set_int(n, "act_in_zero_point", y_zero);
      }
      n->outputs[0] = c->outputs[0];
      g->nodes[ci].dead = true;
      kn_log(g, "fuse_int8_tables: folded %s '%s' into the table of %s '%s'",
             kn_op_name(g->nodes[ci].op),
             g->nodes[ci].name ? g->nodes[ci].name : "",
             kn_op_name(n->op), n->name ? n->name : "");
      count++;
      again = 1;
    }
  }
  if (changed)
    *changed = count;
  return KESTREL_OK;
}

/* ---- fuse_affine_epilogue ---------------------------------------------------
 * The float twin of fuse_int8_tables: a Mul and then an Add by scalar
 * constants right after a packed f32 conv (PP-OCR's learnable affine block
 * after each activation) become attributes "post_mul" / "post_add" that
 * the conv's epilogue applies to each finished tile: y = act(conv) * m + a,
 * the same two roundings as the Mul and the Add, in the same order. */
static bool scalar_f32_operand(const kn_graph *g, const kn_node *c, int t,
                               float *v) {
  if (c->num_inputs != 2 || c->num_outputs != 1 ||
      kn_attr_int(c, "activation", KN_ACT_NONE) != KN_ACT_NONE)
    return false;
  int o = c->inputs[0] == t ? c->inputs[1] : c->inputs[0];
  if (o < 0 || o == t || (c->inputs[0] != t && c->inputs[1] != t))
    return false;
  const kn_tensor *k = &g->tensors[o];
  if (!kn_is_const(k) || k->dtype != KESTREL_DTYPE_F32 ||
      kn_tensor_numel(k) != 1 || k->q_count)
    return false;
  *v = ((const float *)k->data)[0];
  const kn_tensor *x = &g->tensors[t], *y = &g->tensors[c->outputs[0]];
  return y->dtype == KESTREL_DTYPE_F32 && y->ndim == x->ndim &&
         !memcmp(y->dims, x->dims, sizeof(int64_t) * (size_t)x->ndim);
}

kestrel_status kn_pass_fuse_affine_epilogue(kn_graph *g, int *changed,
                                            kestrel_error *err) {
  (void)err;
  int count = 0;
  for (int pass = 0, again = 1; again && pass < 4; pass++) {
    again = 0;
    for (int i = 0; i < g->num_nodes; i++) {
      kn_node *n = &g->nodes[i];
      int64_t kind = kn_attr_int(n, "packed", 0);
      if (n->dead || (kind != KN_PACKED_F32_GEMM &&
                      kind != KN_PACKED_F32_DWCONV) ||
          n->num_outputs != 1 || kn_node_attr(n, "post_add"))
        continue;
      int t = n->outputs[0];
      int ci = kn_edit_single_consumer(g, t);
      if (ci < 0 || kn_edit_is_graph_output(g, t))
        continue;
      kn_node *c = &g->nodes[ci];
      float v;
      if ((c->op != KN_OP_MUL && c->op != KN_OP_ADD) ||
          !scalar_f32_operand(g, c, t, &v) ||
          (c->op == KN_OP_MUL && kn_node_attr(n, "post_mul")))
        continue;
      kn_node_set_float(n, c->op == KN_OP_MUL ? "post_mul" : "post_add", v);
      n->outputs[0] = c->outputs[0];
      c->dead = true;
      kn_log(g, "fuse_affine_epilogue: folded %s '%s' into %s '%s'",
             kn_op_name(c->op), c->name ? c->name : "", kn_op_name(n->op),
             n->name ? n->name : "");
      count++;
      again = 1;
    }
  }
  if (changed)
    *changed = count;
  return KESTREL_OK;
}
