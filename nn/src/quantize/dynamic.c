/* Dynamic quantization (`kestrel quantize --calib none`): no calibration
 * data, so activations stay float and every Conv / Gemm / MatMul with
 * constant weights quantizes its input at run time from that run's min/max:
 *
 *   x -> QuantizeLinear(dynamic=1) -> (xq uint8, x_scale, x_zero)
 *     -> ConvInteger / MatMulInteger(xq, w int8, x_zero) -> int32
 *     -> Cast(float) -> Mul(x_scale * w_scale[c]) -> Add(bias) [+ act]
 *
 * Weights are per-output-channel symmetric int8 as in static quantization.
 * It is a fallback: each run pays a min/max pass and the float epilogue,
 * and the other ops stay float. */
#include "quant_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ONNX_FLOAT = 1 };

static int add_named(kn_graph *q, const char *base, const char *suffix) {
  size_t lb = strlen(base), ls = strlen(suffix);
  char *name = malloc(lb + ls + 1);
  if (!name)
    return -1;
  memcpy(name, base, lb);
  memcpy(name + lb, suffix, ls + 1);
  int t = kn_graph_add_tensor(q, name);
  free(name);
  return t;
}

static int add_node(kn_graph *q, kn_op op, const char *base, const char *sfx,
                    const int *in, int nin, const int *out, int nout) {
  size_t lb = strlen(base), ls = strlen(sfx);
  char *name = malloc(lb + ls + 1);
  if (!name)
    return -1;
  memcpy(name, base, lb);
  memcpy(name + lb, sfx, ls + 1);
  int k = kn_graph_add_node(q, op, name, NULL, in, nin, out, nout);
  free(name);
  return k;
}

/* A float constant of shape [m, 1, ..] (ones to rank `rank` - 1 trailing
 * dims for NCHW; just [m] for channels-last) holding v. */
static int const_channel(kn_graph *q, const char *base, const char *sfx,
                         const float *v, int64_t m, int trailing_ones) {
  int t = add_named(q, base, sfx);
  if (t < 0)
    return -1;
  int64_t dims[KN_MAX_DIMS];
  dims[0] = m;
  for (int i = 0; i < trailing_ones; i++)
    dims[1 + i] = 1;
  float *d = kn_tensor_alloc_data(&q->tensors[t], KESTREL_DTYPE_F32,
                                  1 + trailing_ones, dims);
  if (!d)
    return -1;
  q->tensors[t].data_owned = true;
  memcpy(d, v, sizeof(float) * (size_t)m);
  return t;
}

/* Int8 weights, per channel c of `axis`, scales out (count ch). */
static int weights_int8(kn_graph *q, int wt, int axis, bool transpose2d,
                        float **scales, int64_t *count) {
  kn_tensor *w = &q->tensors[wt];
  int64_t dims[KN_MAX_DIMS];
  memcpy(dims, w->dims, sizeof(dims));
  int nd = w->ndim;
  if (transpose2d) {
    dims[0] = w->dims[1];
    dims[1] = w->dims[0];
  }
  int64_t ch = dims[axis], inner = 1, outer = 1;
  for (int d = 0; d < axis; d++)
    outer *= dims[d];
  for (int d = axis + 1; d < nd; d++)
    inner *= dims[d];
  int nt = add_named(q, q->tensors[wt].name, "_int8");
  float *sc = calloc((size_t)ch + 1, sizeof(float));
  if (nt < 0 || !sc) {
    free(sc);
    return -1;
  }
  const float *src = q->tensors[wt].data;
  int64_t rows = q->tensors[wt].dims[0], cols = q->tensors[wt].dims[1];
  int8_t *out = kn_tensor_alloc_data(&q->tensors[nt], KESTREL_DTYPE_I8, nd,
                                     dims);
  if (!out) {
    free(sc);
    return -1;
  }
  q->tensors[nt].data_owned = true;
  int64_t total = outer * ch * inner;
  /* Element e of the (possibly transposed) weights. */
#define WV(e) (transpose2d ? src[((e) % dims[1]) * cols + (e) / dims[1]] : src[e])
  (void)rows;
  for (int64_t e = 0; e < total; e++) {
    int64_t c = (e / inner) % ch;
    float a = fabsf(WV(e));
    if (a > sc[c])
      sc[c] = a;
  }
  for (int64_t c = 0; c < ch; c++)
    sc[c] = sc[c] > 0 ? sc[c] / 127.0f : 1.0f;
  for (int64_t e = 0; e < total; e++) {
    int64_t c = (e / inner) % ch;
    long v = lrintf(WV(e) / sc[c]);
    out[e] = (int8_t)(v < -127 ? -127 : v > 127 ? 127 : v);
  }
#undef WV
  int32_t *z = calloc((size_t)ch + 1, sizeof(int32_t));
  if (!z || kn_tensor_set_quant(&q->tensors[nt], axis, (int)ch, sc, z)) {
    free(z);
    free(sc);
    return -1;
  }
  free(z);
  *scales = sc;
  *count = ch;
  return nt;
}

static kestrel_status rewrite(kn_graph *q, int i, kestrel_error *err) {
  kn_node *n = &q->nodes[i];
  kn_op op = n->op;
  bool conv = op == KN_OP_CONV;
  bool tb = op == KN_OP_GEMM && kn_attr_int(n, "transB", 0);
  int x = n->inputs[0], wt = n->inputs[1];
  int bt = n->num_inputs > 2 && n->inputs[2] >= 0 &&
                   !q->tensors[n->inputs[2]].optional_absent
               ? n->inputs[2]
               : -1;
  int y = n->outputs[0];
  char *base = malloc(strlen(n->name) + 2);
  if (!base)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  strcpy(base, *n->name ? n->name : q->tensors[y].name);
  kestrel_status st = KESTREL_OK;
  float *ws = NULL;
  int64_t m = 0;
  int layout = (int)kn_attr_int(n, "layout", KN_LAYOUT_NCHW);
  int rank = q->tensors[y].ndim;
  int ones = conv && layout == KN_LAYOUT_NCHW ? rank - 2 : 0;
  int nwt = weights_int8(q, wt, conv ? 0 : 1, tb, &ws, &m);
  int xq = add_named(q, base, "_xq"), xs = add_named(q, base, "_xscale");
  int xz = add_named(q, base, "_xzero"), acc = add_named(q, base, "_acc");
  int accf = add_named(q, base, "_accf"), sc = add_named(q, base, "_scale");
  int wsc = nwt >= 0 ? const_channel(q, base, "_wscale", ws, m, ones) : -1;
  int bc = -1, scaled = -1;
  if (bt >= 0) {
    bc = const_channel(q, base, "_bias", q->tensors[bt].data, m, ones);
    scaled = add_named(q, base, "_scaled");
  }
  if (nwt < 0 || xq < 0 || xs < 0 || xz < 0 || acc < 0 || accf < 0 ||
      sc < 0 || wsc < 0 || (bt >= 0 && (bc < 0 || scaled < 0))) {
    st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    goto out;
  }
  int qouts[3] = {xq, xs, xz};
  int k = add_node(q, KN_OP_QUANTIZE_LINEAR, base, "_dynq", &x, 1, qouts, 3);
  if (k < 0)
    goto oom;
  kn_node_set_int(&q->nodes[k], "dynamic", 1);
  int iins[3] = {xq, nwt, xz};
  k = add_node(q, conv ? KN_OP_CONV_INTEGER : KN_OP_MATMUL_INTEGER, base,
               "_integer", iins, 3, &acc, 1);
  if (k < 0)
    goto oom;
  n = &q->nodes[i];
  if (conv) /* geometry attributes carry over; the activation does not */
    for (int a = 0; a < n->num_attrs; a++) {
      const kn_attr *at = &n->attrs[a];
      if (!strncmp(at->name, "activation", 10))
        continue;
      if (at->type == KN_ATTR_INT)
        kn_node_set_int(&q->nodes[k], at->name, at->i);
      else if (at->type == KN_ATTR_INTS)
        kn_node_set_ints(&q->nodes[k], at->name, at->ints, at->count);
      else if (at->type == KN_ATTR_STRING)
        kn_node_set_string(&q->nodes[k], at->name, at->s);
    }
  k = add_node(q, KN_OP_CAST, base, "_cast", &acc, 1, &accf, 1);
  if (k < 0)
    goto oom;
  kn_node_set_int(&q->nodes[k], "to", ONNX_FLOAT);
  int m1[2] = {xs, wsc};
  if (add_node(q, KN_OP_MUL, base, "_scale_mul", m1, 2, &sc, 1) < 0)
    goto oom;
  /* Element-wise ops cannot fuse HardSigmoid: it becomes its own node. */
  n = &q->nodes[i];
  bool hsig = kn_attr_int(n, "activation", KN_ACT_NONE) == KN_ACT_HARDSIGMOID;
  float hs_alpha = kn_attr_float(n, "activation_alpha", 0.2f);
  float hs_beta = kn_attr_float(n, "activation_beta", 0.5f);
  int last = y;
  if (hsig && (last = add_named(q, base, "_preact")) < 0)
    goto oom;
  int m2[2] = {accf, sc};
  k = add_node(q, KN_OP_MUL, base, "_rescale", m2, 2,
               bt >= 0 ? &scaled : &last, 1);
  if (k < 0)
    goto oom;
  if (bt >= 0) {
    int a2[2] = {scaled, bc};
    k = add_node(q, KN_OP_ADD, base, "_bias_add", a2, 2, &last, 1);
    if (k < 0)
      goto oom;
  }
  if (hsig) {
    int h = add_node(q, KN_OP_HARDSIGMOID, base, "_hardsigmoid", &last, 1,
                     &y, 1);
    if (h < 0)
      goto oom;
    kn_node_set_float(&q->nodes[h], "alpha", hs_alpha);
    kn_node_set_float(&q->nodes[h], "beta", hs_beta);
    q->nodes[i].dead = true;
    q->nodes[i].num_inputs = 0;
    q->nodes[i].num_outputs = 0;
    goto out;
  }
  /* The fused activation moves to the last element-wise node. */
  n = &q->nodes[i];
  for (int a = 0; a < n->num_attrs; a++) {
    const kn_attr *at = &n->attrs[a];
    if (strncmp(at->name, "activation", 10))
      continue;
    if (at->type == KN_ATTR_INT)
      kn_node_set_int(&q->nodes[k], at->name, at->i);
    else if (at->type == KN_ATTR_FLOAT)
      kn_node_set_float(&q->nodes[k], at->name, at->f);
  }
  /* Detach the replaced node: its output now has a new producer. */
  q->nodes[i].dead = true;
  q->nodes[i].num_inputs = 0;
  q->nodes[i].num_outputs = 0;
  goto out;
oom:
  st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
out:
  free(ws);
  free(base);
  return st;
}

kestrel_status kq_build_dynamic(const kn_graph *g, int verbose,
                                kn_graph **out, kestrel_error *err) {
  *out = NULL;
  kn_graph *q = kq_graph_clone(g);
  if (!q)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  q->verbose = verbose;
  int nn0 = q->num_nodes, done = 0;
  kestrel_status st = KESTREL_OK;
  for (int i = 0; i < nn0 && st == KESTREL_OK; i++) {
    kn_node *n = &q->nodes[i];
    if (n->op != KN_OP_CONV && n->op != KN_OP_GEMM && n->op != KN_OP_MATMUL)
      continue;
    if (!kq_node_quantizable(q, n) || kn_attr_int(n, "transA", 0))
      continue;
    kn_tensor *w = kn_in(q, n, 1);
    if (n->op != KN_OP_CONV && w->ndim != 2)
      continue;
    if (n->op == KN_OP_GEMM && kn_in(q, n, 0)->ndim != 2)
      continue;
    st = rewrite(q, i, err);
    done++;
  }
  if (st == KESTREL_OK) {
    kq_drop_unused_constants(q);
    kn_log(q, "quantize: %d nodes with dynamic int8 inputs", done);
    st = kn_graph_prepare(q, NULL, err);
  }
  if (st) {
    kn_graph_free(q);
    return st;
  }
  *out = q;
  return KESTREL_OK;
}
