/* The public quantization API: a calibrator observes the FP32 model on
 * real inputs, picks clip ranges, builds the INT8 model (honouring
 * keep-float requests and an output SNR target) and reports the per-layer
 * error of the result against FP32. */
#include "quant_internal.h"

#include "passes/passes.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Inputs kept for the SNR search and the report; calibration itself takes
 * any number. */
#define KQ_MAX_KEPT_INPUTS 64
/* Inputs the --target-snr search evaluates each candidate on. */
#define KQ_SEARCH_INPUTS 16

typedef struct layer_stat {
  int qnode;       /* node of the quantized graph */
  int int8;        /* its output is int8 */
  double sig, noise, dot, nref, ntest; /* chain error vs FP32 */
  double lsig, lnoise;                 /* local: from exact int8 inputs */
  double rnoise; /* rounding alone: FP32 output quantized with its params */
  int has_local;
} layer_stat;

struct kestrel_calibrator {
  const kestrel_model *model;
  kn_graph *g;
  kestrel_quantize_options opt;
  char **keep_names;
  kq_stats **stats;
  int nt;
  float **inputs;
  size_t count, kept;
  size_t in_elems;
  float **ref_out; /* per kept input: every output, concatenated */
  size_t out_elems;
  kq_exec exec;
  int exec_ready;
  /* After kestrel_quantize. */
  kn_graph *qgraph; /* private copy for the report */
  kq_range *ranges;
  unsigned char *keep_nodes;
  int num_kept_float;
};

kestrel_quantize_options kestrel_quantize_options_default(void) {
  kestrel_quantize_options o;
  memset(&o, 0, sizeof(o));
  /* Chosen by measurement on held-out photos (docs/BENCHMARKS.md,
   * "Quantization"). */
  o.method = KESTREL_CALIB_MSE;
  o.percentile = 99.99;
  return o;
}

static const char *const method_names[] = {"minmax", "percentile", "entropy",
                                           "mse"};

int kestrel_calib_method_parse(const char *name, kestrel_calib_method *out) {
  for (int i = 0; i < 4; i++)
    if (name && !strcmp(name, method_names[i])) {
      *out = (kestrel_calib_method)i;
      return 0;
    }
  return -1;
}

const char *kestrel_calib_method_name(kestrel_calib_method m) {
  return (unsigned)m < 4 ? method_names[m] : "?";
}

double kestrel_snr_db(const float *ref, const float *test, size_t n) {
  double s = 0, e = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)ref[i] - test[i];
    s += (double)ref[i] * ref[i];
    e += d * d;
  }
  if (e == 0)
    return INFINITY;
  if (s == 0)
    return -INFINITY;
  return 10.0 * log10(s / e);
}

double kestrel_cosine(const float *ref, const float *test, size_t n) {
  double d = 0, a = 0, b = 0;
  for (size_t i = 0; i < n; i++) {
    d += (double)ref[i] * test[i];
    a += (double)ref[i] * ref[i];
    b += (double)test[i] * test[i];
  }
  if (a == 0 && b == 0)
    return 1.0;
  if (a == 0 || b == 0)
    return 0.0;
  return d / sqrt(a * b);
}

static double snr_of(double sig, double noise) {
  if (noise <= 0)
    return sig > 0 ? 200.0 : 0.0; /* exact: report a large finite value */
  if (sig <= 0)
    return -200.0;
  return 10.0 * log10(sig / noise);
}

static void progress(kestrel_calibrator *c, const char *stage, size_t done,
                     size_t total) {
  if (c->opt.progress)
    c->opt.progress(c->opt.progress_user, stage, done, total);
}

/* kn_optimize's fusion passes, except fuse_residual_add: a residual Add
 * stays a node so that the conv result and the sum get their own int8
 * parameters (the int8 residual epilogue needs both). Layout is kept. */
static kestrel_status fuse_for_quantization(kn_graph *g, kestrel_error *err) {
  kestrel_status (*const passes[])(kn_graph *, int *, kestrel_error *) = {
      kn_pass_eliminate_identity,  kn_pass_fold_constants,
      kn_pass_fuse_conv_batchnorm, kn_pass_fuse_conv_mul_add,
      kn_pass_recognize_hardswish, kn_pass_fold_pad_into_conv,
      kn_pass_fuse_activation,
  };
  for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++) {
    int changed = 0;
    kestrel_status st = passes[i](g, &changed, err);
    if (st)
      return st;
  }
  kestrel_status st = kn_edit_compact(g, err);
  return st ? st : kn_edit_revalidate(g, err);
}

kestrel_status kestrel_calibrator_create(const kestrel_model *model,
                                         const kestrel_quantize_options *opt,
                                         kestrel_calibrator **out,
                                         kestrel_error *err) {
  if (!model || !out)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  *out = NULL;
  kn_graph *g = kq_model_graph(model);
  if (g->num_inputs != 1)
    return kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
                   "quantization wants a model with one input (it has %d)",
                   g->num_inputs);
  kn_tensor *in = &g->tensors[g->inputs[0]];
  if (in->dtype != KESTREL_DTYPE_F32)
    return kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
                   "input '%s' is %s: the model is already quantized or not "
                   "a float model",
                   in->name, kestrel_dtype_name(in->dtype));
  kestrel_calibrator *c = calloc(1, sizeof(*c));
  if (!c)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  c->model = model;
  c->opt = opt ? *opt : kestrel_quantize_options_default();
  /* Quantize what will run: BatchNorm folded into convs, activations
   * fused (a conv's range is then its activated output's). */
  c->g = kq_graph_clone(g);
  if (!c->g) {
    free(c);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  c->g->verbose = c->opt.verbose;
  if (!c->opt.no_fuse) {
    kestrel_status st = fuse_for_quantization(c->g, err);
    if (st) {
      kn_graph_free(c->g);
      free(c);
      return st;
    }
  }
  g = c->g;
  /* Node indices changed (clone compaction, passes): renumber producers. */
  for (int t = 0; t < g->num_tensors; t++)
    g->tensors[t].producer = -1;
  for (int i = 0; i < g->num_nodes; i++)
    for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].num_outputs; k++)
      g->tensors[g->nodes[i].outputs[k]].producer = i;
  if (!(c->opt.percentile > 0 && c->opt.percentile <= 100))
    c->opt.percentile = 99.99;
  c->nt = g->num_tensors;
  c->in_elems = (size_t)kn_tensor_numel(in);
  for (int i = 0; i < g->num_outputs; i++)
    c->out_elems += (size_t)kn_tensor_numel(&g->tensors[g->outputs[i]]);
  c->stats = calloc((size_t)c->nt + 1, sizeof(kq_stats *));
  c->inputs = calloc(KQ_MAX_KEPT_INPUTS, sizeof(float *));
  c->ref_out = calloc(KQ_MAX_KEPT_INPUTS, sizeof(float *));
  c->keep_names = calloc(c->opt.num_keep_float + 1, sizeof(char *));
  if (!c->stats || !c->inputs || !c->ref_out || !c->keep_names) {
    kestrel_calibrator_free(c);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  for (size_t i = 0; i < c->opt.num_keep_float; i++) {
    const char *s = c->opt.keep_float[i] ? c->opt.keep_float[i] : "";
    c->keep_names[i] = malloc(strlen(s) + 1);
    if (!c->keep_names[i]) {
      kestrel_calibrator_free(c);
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    }
    strcpy(c->keep_names[i], s);
  }
  c->opt.keep_float = (const char *const *)c->keep_names;
  for (int t = 0; t < c->nt; t++) {
    kn_tensor *x = &g->tensors[t];
    if (x->kind == KN_TENSOR_CONSTANT || x->dtype != KESTREL_DTYPE_F32)
      continue;
    if (!(c->stats[t] = calloc(1, sizeof(kq_stats)))) {
      kestrel_calibrator_free(c);
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    }
  }
  *out = c;
  return KESTREL_OK;
}

static kestrel_status observe_node(void *user, kq_exec *x, int node,
                                   kestrel_error *err) {
  kestrel_calibrator *c = user;
  const kn_node *n = &x->g->nodes[node];
  for (int k = 0; k < n->num_outputs; k++) {
    int t = n->outputs[k];
    kn_tensor *tt = &x->g->tensors[t];
    if (t < c->nt && c->stats[t] && tt->data) {
      kq_stats_add(c->stats[t], tt->data, kn_tensor_numel(tt));
      kq_stats_add_channels(c->stats[t], tt->data, tt->ndim, tt->dims);
    }
  }
  (void)err;
  return KESTREL_OK;
}

kestrel_status kestrel_calibrator_add(kestrel_calibrator *c,
                                      const float *input, kestrel_error *err) {
  if (!c || !input)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  kestrel_status st;
  if (!c->exec_ready) {
    if ((st = kq_exec_init(&c->exec, c->g, 0, err)))
      return st;
    c->exec_ready = 1;
  }
  const void *ins[1] = {input};
  int it = c->g->inputs[0];
  if (c->stats[it]) {
    kn_tensor *x = &c->g->tensors[it];
    kq_stats_add(c->stats[it], input, (int64_t)c->in_elems);
    kq_stats_add_channels(c->stats[it], input, x->ndim, x->dims);
  }
  if ((st = kq_exec_run(&c->exec, ins, observe_node, c, err)))
    return st;
  if (c->kept < KQ_MAX_KEPT_INPUTS) {
    float *keep = malloc(sizeof(float) * (c->in_elems + 1));
    float *ref = malloc(sizeof(float) * (c->out_elems + 1));
    if (!keep || !ref) {
      free(keep);
      free(ref);
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    }
    memcpy(keep, input, sizeof(float) * c->in_elems);
    size_t at = 0;
    for (int i = 0; i < c->g->num_outputs; i++) {
      kn_tensor *o = &c->exec.g->tensors[c->g->outputs[i]];
      size_t n = (size_t)kn_tensor_numel(o);
      if (o->dtype == KESTREL_DTYPE_F32 && o->data)
        memcpy(ref + at, o->data, n * sizeof(float));
      else
        memset(ref + at, 0, n * sizeof(float));
      at += n;
    }
    c->inputs[c->kept] = keep;
    c->ref_out[c->kept] = ref;
    c->kept++;
  }
  kq_exec_release(&c->exec);
  c->count++;
  return KESTREL_OK;
}

size_t kestrel_calibrator_count(const kestrel_calibrator *c) {
  return c ? c->count : 0;
}

/* ---- evaluation of a quantized graph -------------------------------------- */

/* Tensor of the FP32 graph a quantized-graph tensor stands for (-1: none):
 * the same index, or the source of the Q/DQ node that made it. */
static int *origins_of(const kn_graph *q, int nt_fp32) {
  int *o = malloc(sizeof(int) * ((size_t)q->num_tensors + 1));
  if (!o)
    return NULL;
  for (int t = 0; t < q->num_tensors; t++)
    o[t] = t < nt_fp32 && q->tensors[t].kind != KN_TENSOR_CONSTANT ? t : -1;
  for (int i = 0; i < q->num_nodes; i++) {
    const kn_node *n = &q->nodes[i];
    if (n->dead || n->num_inputs < 1 || n->num_outputs < 1)
      continue;
    if ((n->op == KN_OP_QUANTIZE_LINEAR || n->op == KN_OP_DEQUANTIZE_LINEAR) &&
        n->inputs[0] >= 0 && n->outputs[0] >= nt_fp32)
      o[n->outputs[0]] = o[n->inputs[0]];
  }
  return o;
}

/* Real value of element i (dequantized for 8-bit tensors). */
static float real_at(const kn_tensor *t, int64_t i) {
  if (t->dtype == KESTREL_DTYPE_F32)
    return ((const float *)t->data)[i];
  float s = t->q_count ? t->q_scale[0] : 1.0f;
  int32_t z = t->q_count ? t->q_zero_point[0] : 0;
  int32_t v = t->dtype == KESTREL_DTYPE_I8 ? ((const int8_t *)t->data)[i]
              : t->dtype == KESTREL_DTYPE_U8 ? ((const uint8_t *)t->data)[i]
                                              : 0;
  return (float)(v - z) * s;
}

/* Output SNR (worst output) of q over the first `limit` kept inputs. */
static kestrel_status eval_outputs(kestrel_calibrator *c, const kn_graph *q,
                                   size_t limit, double *worst,
                                   kestrel_error *err) {
  kq_exec x;
  kestrel_status st = kq_exec_init(&x, q, 0, err);
  if (st)
    return st;
  int no = q->num_outputs;
  double *sig = calloc((size_t)no + 1, sizeof(double));
  double *noise = calloc((size_t)no + 1, sizeof(double));
  if (!sig || !noise) {
    st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    goto out;
  }
  size_t n = c->kept < limit ? c->kept : limit;
  for (size_t s = 0; s < n; s++) {
    const void *ins[1] = {c->inputs[s]};
    if ((st = kq_exec_run(&x, ins, NULL, NULL, err)))
      goto out;
    size_t at = 0;
    for (int i = 0; i < no; i++) {
      kn_tensor *o = &x.g->tensors[q->outputs[i]];
      int64_t cnt = kn_tensor_numel(o);
      const float *ref = c->ref_out[s] + at;
      for (int64_t e = 0; e < cnt; e++) {
        double r = ref[e], v = real_at(o, e);
        sig[i] += r * r;
        noise[i] += (r - v) * (r - v);
      }
      at += (size_t)cnt;
    }
  }
  *worst = INFINITY;
  for (int i = 0; i < no; i++) {
    double v = snr_of(sig[i], noise[i]);
    if (v < *worst)
      *worst = v;
  }
out:
  free(sig);
  free(noise);
  kq_exec_free(&x);
  return st;
}

/* Per-layer statistics: chain error (the int8 graph as it runs) and local
 * error (each int8 node fed with the FP32 inputs quantized), per node of q,
 * over the first `limit` kept inputs. */
static kestrel_status layer_stats(kestrel_calibrator *c, const kn_graph *q,
                                  size_t limit, layer_stat **out,
                                  kestrel_error *err) {
  *out = NULL;
  kq_exec fx, qx;
  memset(&qx, 0, sizeof(qx));
  kestrel_status st = kq_exec_init(&fx, c->g, 1, err);
  if (st)
    return st;
  if ((st = kq_exec_init(&qx, q, 1, err))) {
    kq_exec_free(&fx);
    return st;
  }
  int *origin = origins_of(q, c->nt);
  layer_stat *ls = calloc((size_t)q->num_nodes + 1, sizeof(layer_stat));
  size_t tmp_cap = 0;
  void **tmp = calloc(KN_MAX_DIMS * 2 + 8, sizeof(void *));
  if (!origin || !ls || !tmp) {
    st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    goto out;
  }
  for (int i = 0; i < q->num_nodes; i++) {
    ls[i].qnode = i;
    const kn_node *n = &q->nodes[i];
    ls[i].int8 = n->num_outputs > 0 &&
                 q->tensors[n->outputs[0]].dtype == KESTREL_DTYPE_I8;
  }
  size_t n = c->kept < limit ? c->kept : limit;
  for (size_t s = 0; s < n; s++) {
    const void *ins[1] = {c->inputs[s]};
    if ((st = kq_exec_run(&fx, ins, NULL, NULL, err)) ||
        (st = kq_exec_run(&qx, ins, NULL, NULL, err)))
      goto out;
    for (int i = 0; i < q->num_nodes; i++) {
      const kn_node *nd = &q->nodes[i];
      if (nd->dead || nd->num_outputs < 1)
        continue;
      if ((nd->op == KN_OP_QUANTIZE_LINEAR ||
           nd->op == KN_OP_DEQUANTIZE_LINEAR) &&
          !q->tensors[nd->outputs[0]].is_output)
        continue;
      int t = nd->outputs[0];
      int f = origin[t];
      kn_tensor *qt = &qx.g->tensors[t];
      if (f < 0 || !fx.g->tensors[f].data || !qt->data ||
          fx.g->tensors[f].dtype != KESTREL_DTYPE_F32)
        continue;
      const float *ref = fx.g->tensors[f].data;
      int64_t cnt = kn_tensor_numel(qt);
      layer_stat *L = &ls[i];
      for (int64_t e = 0; e < cnt; e++) {
        double r = ref[e], v = real_at(qt, e);
        L->sig += r * r;
        L->noise += (r - v) * (r - v);
        L->dot += r * v;
        L->nref += r * r;
        L->ntest += v * v;
      }
      if (qt->dtype == KESTREL_DTYPE_I8 && qt->q_count) {
        float sc = qt->q_scale[0];
        int32_t z = qt->q_zero_point[0];
        for (int64_t e = 0; e < cnt; e++) {
          long v = lrintf(ref[e] / sc) + z;
          v = v < -128 ? -128 : v > 127 ? 127 : v;
          double d = ref[e] - (double)(v - z) * sc;
          L->rnoise += d * d;
        }
      }
      if (!L->int8 || nd->num_inputs > KN_MAX_DIMS * 2)
        continue;
      /* Local: rerun the node on quantized FP32 inputs. */
      const kn_op_info *op = kn_op_get(nd->op);
      void *saved_in[KN_MAX_DIMS * 2 + 4];
      int ok = 1;
      for (int k = 0; k < nd->num_inputs && ok; k++) {
        int it = nd->inputs[k];
        saved_in[k] = NULL;
        if (it < 0)
          continue;
        kn_tensor *a = &qx.g->tensors[it];
        saved_in[k] = a->data;
        if (a->kind == KN_TENSOR_CONSTANT || a->optional_absent)
          continue;
        int fa = origin[it];
        if (fa < 0 || !fx.g->tensors[fa].data) {
          ok = 0;
          break;
        }
        const float *fr = fx.g->tensors[fa].data;
        int64_t na = kn_tensor_numel(a);
        size_t bytes = kn_tensor_bytes(a) + 16;
        free(tmp[k]);
        tmp[k] = malloc(bytes);
        if (!tmp[k]) {
          ok = 0;
          break;
        }
        if (a->dtype == KESTREL_DTYPE_I8) {
          float sc = a->q_scale[0];
          int32_t z = a->q_zero_point[0];
          int8_t *d = tmp[k];
          for (int64_t e = 0; e < na; e++) {
            long v = lrintf(fr[e] / sc) + z;
            d[e] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
          }
        } else {
          memcpy(tmp[k], fr, kn_tensor_bytes(a));
        }
        a->data = tmp[k];
      }
      void *saved_out = qt->data;
      size_t obytes = kn_tensor_bytes(qt) + 16;
      if (obytes > tmp_cap) {
        free(tmp[KN_MAX_DIMS * 2 + 4]);
        tmp[KN_MAX_DIMS * 2 + 4] = malloc(obytes);
        tmp_cap = tmp[KN_MAX_DIMS * 2 + 4] ? obytes : 0;
      }
      if (ok && tmp_cap && nd->num_outputs == 1) {
        qt->data = tmp[KN_MAX_DIMS * 2 + 4];
        kn_exec ex = {.graph = qx.g, .scratch = qx.scratch,
                      .scratch_bytes = qx.scratch_bytes, .num_threads = 1};
        if (op->run(&ex, nd, err) == KESTREL_OK) {
          for (int64_t e = 0; e < cnt; e++) {
            double r = ref[e], v = real_at(qt, e);
            L->lsig += r * r;
            L->lnoise += (r - v) * (r - v);
          }
          L->has_local = 1;
        }
      }
      qt->data = saved_out;
      /* Reverse order: a tensor read twice was saved twice. */
      for (int k = nd->num_inputs - 1; k >= 0; k--)
        if (nd->inputs[k] >= 0)
          qx.g->tensors[nd->inputs[k]].data = saved_in[k];
    }
    progress(c, "report", s + 1, n);
  }
out:
  if (tmp) {
    for (int k = 0; k < KN_MAX_DIMS * 2 + 8; k++)
      free(tmp[k]);
    free(tmp);
  }
  free(origin);
  kq_exec_free(&fx);
  kq_exec_free(&qx);
  if (st) {
    free(ls);
    return st;
  }
  *out = ls;
  return KESTREL_OK;
}

/* ---- quantizing ------------------------------------------------------------ */

/* Node of the FP32 graph that q's node i came from (via its first output,
 * whose tensor index the rewrite keeps), -1 if none. */
static int fp32_node_of(const kestrel_calibrator *c, const kn_graph *q, int i) {
  const kn_node *n = &q->nodes[i];
  if (n->num_outputs < 1 || n->outputs[0] >= c->nt || n->outputs[0] < 0)
    return -1;
  return c->g->tensors[n->outputs[0]].producer;
}

static kestrel_status resolve_keep_float(kestrel_calibrator *c,
                                         kestrel_error *err) {
  kn_graph *g = c->g;
  for (size_t k = 0; k < c->opt.num_keep_float; k++) {
    const char *name = c->opt.keep_float[k];
    int found = 0;
    for (int i = 0; i < g->num_nodes; i++) {
      kn_node *n = &g->nodes[i];
      if (n->dead)
        continue;
      int hit = !strcmp(n->name, name);
      for (int o = 0; !hit && o < n->num_outputs; o++)
        hit = !strcmp(g->tensors[n->outputs[o]].name, name);
      if (hit) {
        c->keep_nodes[i] = 1;
        found = 1;
      }
    }
    if (!found)
      return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                     "--keep-float: no node or tensor named '%s'", name);
  }
  return KESTREL_OK;
}

typedef struct ranked {
  int node; /* FP32 graph node */
  double snr;
} ranked;

static int by_snr(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  return x->snr < y->snr ? -1 : x->snr > y->snr;
}

/* Keeps in FP32 the fewest of the worst nodes (by local SNR) that bring the
 * worst output SNR to the target: a binary search over how many, each
 * candidate built and run on the calibration inputs. */
static kestrel_status search_target_snr(kestrel_calibrator *c, kn_graph **q,
                                        kestrel_error *err) {
  double snr;
  kestrel_status st = eval_outputs(c, *q, KQ_SEARCH_INPUTS, &snr, err);
  if (st)
    return st;
  if (c->opt.verbose)
    fprintf(stderr, "quantize: all-int8 output SNR %.2f dB (target %.2f)\n",
            snr, c->opt.target_snr_db);
  if (snr >= c->opt.target_snr_db)
    return KESTREL_OK;
  layer_stat *ls;
  if ((st = layer_stats(c, *q, KQ_SEARCH_INPUTS < 8 ? KQ_SEARCH_INPUTS : 8,
                        &ls, err)))
    return st;
  int nq = (*q)->num_nodes, nr = 0;
  ranked *r = calloc((size_t)nq + 1, sizeof(ranked));
  unsigned char *base = malloc((size_t)c->g->num_nodes + 1);
  if (!r || !base) {
    free(ls);
    free(r);
    free(base);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  memcpy(base, c->keep_nodes, (size_t)c->g->num_nodes);
  for (int i = 0; i < nq; i++) {
    if (!ls[i].int8 || !ls[i].has_local)
      continue;
    int fn = fp32_node_of(c, *q, i);
    if (fn < 0 || base[fn])
      continue;
    r[nr].node = fn;
    r[nr].snr = snr_of(ls[i].lsig, ls[i].lnoise);
    nr++;
  }
  free(ls);
  qsort(r, (size_t)nr, sizeof(ranked), by_snr);
  /* Invariant: hi float nodes reach the target (all of them do: the float
   * model is the reference), lo do not. */
  int lo = 0, hi = nr;
  kn_graph *best = NULL;
  size_t step = 0, steps = 1;
  for (int span = nr; span > 1; span = (span + 1) / 2)
    steps++;
  while (hi - lo > 1) {
    int mid = (lo + hi) / 2;
    memcpy(c->keep_nodes, base, (size_t)c->g->num_nodes);
    for (int k = 0; k < mid; k++)
      c->keep_nodes[r[k].node] = 1;
    kn_graph *cand;
    if ((st = kq_build_static(c->g, c->ranges, c->keep_nodes, 0, &cand, err)))
      break;
    double s;
    if ((st = eval_outputs(c, cand, KQ_SEARCH_INPUTS, &s, err))) {
      kn_graph_free(cand);
      break;
    }
    if (c->opt.verbose)
      fprintf(stderr, "quantize: %d node%s in FP32 -> output SNR %.2f dB\n",
              mid, mid == 1 ? "" : "s", s);
    if (s >= c->opt.target_snr_db) {
      hi = mid;
      kn_graph_free(best);
      best = cand;
    } else {
      lo = mid;
      kn_graph_free(cand);
    }
    progress(c, "target-snr", ++step, steps);
  }
  if (st == KESTREL_OK) {
    memcpy(c->keep_nodes, base, (size_t)c->g->num_nodes);
    for (int k = 0; k < hi; k++)
      c->keep_nodes[r[k].node] = 1;
    if (!best && hi > 0)
      st = kq_build_static(c->g, c->ranges, c->keep_nodes, 0, &best, err);
    if (st == KESTREL_OK && best) {
      kn_graph_free(*q);
      *q = best;
      best = NULL;
    }
    if (c->opt.verbose)
      for (int k = 0; k < hi; k++)
        fprintf(stderr, "quantize: keeping '%s' in FP32 (local SNR %.1f dB)\n",
                c->g->nodes[r[k].node].name, r[k].snr);
  }
  kn_graph_free(best);
  free(r);
  free(base);
  return st;
}

kestrel_status kestrel_quantize(kestrel_calibrator *c, kestrel_model **out,
                                kestrel_error *err) {
  if (!c || !out)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  *out = NULL;
  kestrel_status st;
  kn_graph *q = NULL;
  if (c->opt.dynamic) {
    if ((st = kq_build_dynamic(c->g, c->opt.verbose, &q, err)))
      return st;
  } else {
    if (c->count == 0)
      return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                     "no calibration inputs (use dynamic quantization for "
                     "none)");
    free(c->ranges);
    free(c->keep_nodes);
    c->ranges = calloc((size_t)c->nt + 1, sizeof(kq_range));
    c->keep_nodes = calloc((size_t)c->g->num_nodes + 1, 1);
    if (!c->ranges || !c->keep_nodes)
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    for (int t = 0; t < c->nt; t++) {
      kq_stats *s = c->stats[t];
      if (!s || !s->seen)
        continue;
      /* Clipping an answer changes it: outputs keep everything seen. */
      kestrel_calib_method m =
          c->g->tensors[t].is_output ? KESTREL_CALIB_MINMAX : c->opt.method;
      kq_stats_range(s, m, c->opt.percentile, &c->ranges[t].lo,
                     &c->ranges[t].hi);
      c->ranges[t].has_range = 1;
      c->ranges[t].sum_c1 = s->sum_c1;
      c->ranges[t].n_c1 = s->n_c1;
      c->ranges[t].count_c1 = s->count_c1;
      c->ranges[t].sum_clast = s->sum_clast;
      c->ranges[t].n_clast = s->n_clast;
      c->ranges[t].count_clast = s->count_clast;
    }
    if ((st = resolve_keep_float(c, err)))
      return st;
    if ((st = kq_build_static(c->g, c->ranges, c->keep_nodes,
                              c->opt.verbose, &q, err)))
      return st;
    if (c->opt.target_snr_db > 0 &&
        (st = search_target_snr(c, &q, err))) {
      kn_graph_free(q);
      return st;
    }
  }
  kn_graph_free(c->qgraph);
  c->qgraph = kq_graph_clone(q);
  if (!c->qgraph) {
    kn_graph_free(q);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  /* The report keeps FP32 tensor numbering (c->qgraph); the model itself
   * sheds the records of the replaced float weights (kn_edit_compact;
   * if it runs out of memory the graph stays as it is, still valid). */
  if (kn_edit_compact(q, err) == KESTREL_OK &&
      (st = kn_graph_prepare(q, NULL, err))) {
    kn_graph_free(q);
    return st;
  }
  return kq_model_wrap(q, kq_model_sha(c->model),
                       kestrel_model_source_format(c->model), out, err);
}

/* ---- report -------------------------------------------------------------- */

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; s && *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

static void xml_str(FILE *f, const char *s) {
  for (; s && *s; s++) {
    if (*s == '<')
      fputs("&lt;", f);
    else if (*s == '>')
      fputs("&gt;", f);
    else if (*s == '&')
      fputs("&amp;", f);
    else if (*s == '"')
      fputs("&quot;", f);
    else
      fputc(*s, f);
  }
}

static FILE *open_in(const char *dir, const char *name, kestrel_error *err) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f)
    kn_fail(err, KESTREL_ERROR_IO, "cannot write '%s': %s", path,
            strerror(errno));
  return f;
}

kestrel_status kestrel_quantize_report_write(kestrel_calibrator *c,
                                             const char *dir,
                                             kestrel_error *err) {
  if (!c || !dir)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  if (!c->qgraph)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "report: call kestrel_quantize first");
  if (!c->kept)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "report: no calibration inputs to compare on");
  if (mkdir(dir, 0777) != 0 && errno != EEXIST)
    return kn_fail(err, KESTREL_ERROR_IO, "cannot create '%s': %s", dir,
                   strerror(errno));
  layer_stat *ls;
  kn_graph *q = c->qgraph;
  kestrel_status st = layer_stats(c, q, c->kept, &ls, err);
  if (st)
    return st;
  FILE *ft = open_in(dir, "report.txt", err);
  FILE *fj = ft ? open_in(dir, "report.json", err) : NULL;
  FILE *fs = fj ? open_in(dir, "report.svg", err) : NULL;
  if (!fs) {
    if (ft)
      fclose(ft);
    if (fj)
      fclose(fj);
    free(ls);
    return KESTREL_ERROR_IO;
  }
  int rows = 0, n_int8 = 0, n_float = 0;
  for (int i = 0; i < q->num_nodes; i++) {
    if (ls[i].nref > 0 || ls[i].noise > 0)
      rows++;
    const kn_node *n = &q->nodes[i];
    if (n->op == KN_OP_QUANTIZE_LINEAR || n->op == KN_OP_DEQUANTIZE_LINEAR)
      continue;
    if (ls[i].int8)
      n_int8++;
    else
      n_float++;
  }
  fprintf(ft,
          "Kestrel INT8 quantization report\n"
          "method: %s, calibration inputs: %zu (compared on %zu)\n"
          "nodes: %d int8, %d float (Q/DQ not counted)\n"
          "SNR and cosine: the int8 graph as it runs vs FP32; local: the node\n"
          "alone, fed FP32 inputs quantized; rounding: FP32 output quantized\n\n"
          "%-4s %-40s %-18s %-5s %9s %9s %9s %9s\n",
          c->opt.dynamic ? "dynamic" : kestrel_calib_method_name(c->opt.method),
          c->count, c->kept, n_int8, n_float, "#", "node", "op", "type",
          "SNR(dB)", "cosine", "local", "rounding");
  fprintf(fj, "{\"method\":");
  json_str(fj, c->opt.dynamic ? "dynamic"
                              : kestrel_calib_method_name(c->opt.method));
  fprintf(fj, ",\"calibration_inputs\":%zu,\"compared_inputs\":%zu,"
              "\"int8_nodes\":%d,\"float_nodes\":%d,\"layers\":[",
          c->count, c->kept, n_int8, n_float);
  int bar_h = 14, width = 900, left = 330, plot = 480;
  fprintf(fs,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
          "height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n"
          "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
          "<text x=\"10\" y=\"18\" font-size=\"14\">Per-layer SNR vs FP32 "
          "(dB, bar; 0..60) and cosine similarity (text); blue int8, grey "
          "float</text>\n",
          width, 40 + rows * (bar_h + 2) + 20);
  for (int g10 = 0; g10 <= 60; g10 += 10) {
    int x = left + plot * g10 / 60;
    fprintf(fs,
            "<line x1=\"%d\" y1=\"28\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>"
            "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>\n",
            x, x, 36 + rows * (bar_h + 2), x, 50 + rows * (bar_h + 2), g10);
  }
  int row = 0, first = 1;
  for (int i = 0; i < q->num_nodes; i++) {
    layer_stat *L = &ls[i];
    if (!(L->nref > 0 || L->noise > 0))
      continue;
    const kn_node *n = &q->nodes[i];
    const char *tname = q->tensors[n->outputs[0]].name;
    double snr = snr_of(L->sig, L->noise);
    double cosv = L->nref > 0 && L->ntest > 0
                      ? L->dot / sqrt(L->nref * L->ntest)
                      : (L->nref == L->ntest ? 1.0 : 0.0);
    double lsnr = L->has_local ? snr_of(L->lsig, L->lnoise) : NAN;
    const char *label = n->name && *n->name ? n->name : tname;
    fprintf(ft, "%-4d %-40.40s %-18.18s %-5s %9.2f %9.6f ", i, label,
            n->op_name, L->int8 ? "int8" : "float", snr, cosv);
    if (L->has_local)
      fprintf(ft, "%9.2f", lsnr);
    else
      fprintf(ft, "%9s", "-");
    if (L->int8)
      fprintf(ft, " %9.2f\n", snr_of(L->sig, L->rnoise));
    else
      fprintf(ft, " %9s\n", "-");
    fprintf(fj, "%s\n{\"index\":%d,\"node\":", first ? "" : ",", i);
    json_str(fj, n->name);
    fprintf(fj, ",\"tensor\":");
    json_str(fj, tname);
    fprintf(fj, ",\"op\":");
    json_str(fj, n->op_name);
    fprintf(fj, ",\"int8\":%s,\"snr_db\":%.4f,\"cosine\":%.8f",
            L->int8 ? "true" : "false", snr, cosv);
    if (L->has_local)
      fprintf(fj, ",\"local_snr_db\":%.4f", lsnr);
    if (L->int8)
      fprintf(fj, ",\"rounding_snr_db\":%.4f", snr_of(L->sig, L->rnoise));
    fprintf(fj, "}");
    first = 0;
    double clamped = snr < 0 ? 0 : snr > 60 ? 60 : snr;
    int y = 32 + row * (bar_h + 2);
    fprintf(fs, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6,
            y + bar_h - 3);
    xml_str(fs, label);
    fprintf(fs, " (%s)</text>", n->op_name);
    fprintf(fs,
            "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
            "fill=\"%s\"><title>%.2f dB, cosine %.6f</title></rect>"
            "<text x=\"%d\" y=\"%d\">%.1f dB  cos %.5f</text>\n",
            left, y, (int)(plot * clamped / 60.0), bar_h,
            L->int8 ? "#3b6fb6" : "#999999", snr, cosv,
            left + plot + 6, y + bar_h - 3, snr, cosv);
    row++;
  }
  fprintf(fj, "\n],\"outputs\":[");
  double worst = INFINITY;
  for (int i = 0; i < q->num_outputs; i++) {
    int t = q->outputs[i];
    double sig = 0, noise = 0;
    for (int k = 0; k < q->num_nodes; k++)
      if (q->nodes[k].num_outputs > 0 && q->nodes[k].outputs[0] == t) {
        sig = ls[k].sig;
        noise = ls[k].noise;
      }
    double s = snr_of(sig, noise);
    if (s < worst)
      worst = s;
    fprintf(fj, "%s{\"name\":", i ? "," : "");
    json_str(fj, q->tensors[t].name);
    fprintf(fj, ",\"snr_db\":%.4f}", s);
    fprintf(ft, "%soutput %s: SNR %.2f dB\n", i ? "" : "\n",
            q->tensors[t].name, s);
  }
  fprintf(fj, "]}\n");
  fprintf(fs, "</svg>\n");
  free(ls);
  int bad = fclose(ft) | fclose(fj) | fclose(fs);
  if (bad)
    return kn_fail(err, KESTREL_ERROR_IO, "cannot write the report in '%s'",
                   dir);
  return KESTREL_OK;
}

void kestrel_calibrator_free(kestrel_calibrator *c) {
  if (!c)
    return;
  if (c->exec_ready)
    kq_exec_free(&c->exec);
  if (c->stats)
    for (int t = 0; t < c->nt; t++)
      if (c->stats[t]) {
        kq_stats_free_channels(c->stats[t]);
        free(c->stats[t]);
      }
  free(c->stats);
  for (size_t i = 0; i < c->kept; i++) {
    free(c->inputs[i]);
    free(c->ref_out[i]);
  }
  free(c->inputs);
  free(c->ref_out);
  if (c->keep_names)
    for (size_t i = 0; i < c->opt.num_keep_float; i++)
      free(c->keep_names[i]);
  free(c->keep_names);
  kn_graph_free(c->qgraph);
  kn_graph_free(c->g);
  free(c->ranges);
  free(c->keep_nodes);
  free(c);
}
