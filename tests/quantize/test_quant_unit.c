/* Unit tests of the quantizer's pieces: clip-range methods on known
 * distributions, asymmetric parameters with an exact zero, and the INT8
 * rewrite of a small Conv -> Relu -> Add graph (dtypes, per-channel
 * weights, int32 bias scale, Q/DQ at the boundary, accuracy vs FP32). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantize/quant_internal.h"

static int failures;
#define CHECK(c, ...)                                                          \
  do {                                                                         \
    if (!(c)) {                                                                \
      failures++;                                                              \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #c);             \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
    }                                                                          \
  } while (0)

static unsigned rng = 12345;
static double uniform(void) {
  rng = rng * 1103515245u + 12345u;
  return ((rng >> 8) & 0xffffff) / 16777216.0 + 1e-9;
}
static double gauss(void) {
  return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
}

static void test_ranges(void) {
  /* N(0,1) plus a handful of far outliers at +-50. */
  int n = 200000;
  float *v = malloc(sizeof(float) * (size_t)n);
  for (int i = 0; i < n; i++)
    v[i] = (float)gauss();
  v[0] = 50;
  v[1] = -50;
  v[2] = 49;
  kq_stats *s = calloc(1, sizeof(*s));
  /* Two batches: the second widens the histogram (rebinning path). */
  kq_stats_add(s, v + 3, n / 2);
  kq_stats_add(s, v, n / 2);
  kq_stats_add(s, v + n / 2, n - n / 2);
  double lo, hi;
  kq_stats_range(s, KESTREL_CALIB_MINMAX, 99.99, &lo, &hi);
  CHECK(lo == -50 && hi == 50, "minmax [%g, %g]", lo, hi);
  kq_stats_range(s, KESTREL_CALIB_PERCENTILE, 99.99, &lo, &hi);
  CHECK(hi > 3.0 && hi < 5.0 && lo < -3.0 && lo > -5.0,
        "percentile [%g, %g]", lo, hi);
  /* MSE weighs the outliers' squared error: it clips less than the
   * percentile but still clips. */
  kq_stats_range(s, KESTREL_CALIB_MSE, 99.99, &lo, &hi);
  CHECK(hi > 3.0 && hi < 45.0, "mse [%g, %g]", lo, hi);
  kq_stats_range(s, KESTREL_CALIB_ENTROPY, 99.99, &lo, &hi);
  CHECK(hi > 2.0 && hi < 20.0, "entropy [%g, %g]", lo, hi);
  /* One-sided (post-ReLU) data keeps 0 as the lower end. */
  memset(s, 0, sizeof(*s));
  for (int i = 0; i < n; i++)
    v[i] = fabsf(v[i]);
  kq_stats_add(s, v, n);
  kq_stats_range(s, KESTREL_CALIB_PERCENTILE, 99.99, &lo, &hi);
  CHECK(lo >= 0 && lo < 1e-3 && hi > 3 && hi < 5, "relu percentile [%g, %g]",
        lo, hi);
  free(s);
  free(v);
  float sc;
  int32_t z;
  kq_asym_params(-1.0, 3.0, &sc, &z);
  CHECK(fabsf(sc - 4.0f / 255) < 1e-7f && z == -64, "params %g %d", sc, z);
  kq_asym_params(0.0, 6.0, &sc, &z);
  CHECK(z == -128, "relu6 zero point %d", z);
  kq_asym_params(0.5, 2.0, &sc, &z); /* range must include 0 */
  CHECK(z == -128 && fabsf(sc - 2.0f / 255) < 1e-7f, "params %g %d", sc, z);
}

/* x[1,2,5,5] -> Conv 3x3 (3 out, pad 1, bias) -> Relu -> Add(const) -> y */
static kn_graph *small_graph(void) {
  kn_graph *g = kn_graph_new();
  int x = kn_graph_add_tensor(g, "x"), w = kn_graph_add_tensor(g, "w");
  int b = kn_graph_add_tensor(g, "b"), c = kn_graph_add_tensor(g, "c");
  int r = kn_graph_add_tensor(g, "r"), k = kn_graph_add_tensor(g, "k");
  int y = kn_graph_add_tensor(g, "y");
  int64_t xd[4] = {1, 2, 5, 5}, wd[4] = {3, 2, 3, 3}, bd[1] = {3};
  int64_t kd[4] = {1, 3, 1, 1};
  kn_set_shape(&g->tensors[x], KESTREL_DTYPE_F32, 4, xd);
  g->tensors[x].kind = KN_TENSOR_INPUT;
  float *wv = kn_tensor_alloc_data(&g->tensors[w], KESTREL_DTYPE_F32, 4, wd);
  float *bv = kn_tensor_alloc_data(&g->tensors[b], KESTREL_DTYPE_F32, 1, bd);
  float *kv = kn_tensor_alloc_data(&g->tensors[k], KESTREL_DTYPE_F32, 4, kd);
  g->tensors[w].data_owned = g->tensors[b].data_owned = true;
  g->tensors[k].data_owned = true;
  for (int i = 0; i < 54; i++) /* channels of very different magnitude */
    wv[i] = (float)gauss() * (i < 18 ? 0.01f : i < 36 ? 1.0f : 10.0f);
  for (int i = 0; i < 3; i++) {
    bv[i] = 0.1f * (float)(i + 1);
    kv[i] = 0.5f * (float)i;
  }
  int cin[3] = {x, w, b};
  int n = kn_graph_add_node(g, KN_OP_CONV, "conv", NULL, cin, 3, &c, 1);
  int64_t pads[4] = {1, 1, 1, 1};
  kn_node_set_ints(&g->nodes[n], "pads", pads, 4);
  kn_graph_add_node(g, KN_OP_RELU, "relu", NULL, &c, 1, &r, 1);
  int ain[2] = {r, k};
  kn_graph_add_node(g, KN_OP_ADD, "add", NULL, ain, 2, &y, 1);
  kn_graph_add_input(g, x);
  kn_graph_add_output(g, y);
  kestrel_error err;
  if (kn_graph_prepare(g, NULL, &err)) {
    fprintf(stderr, "prepare: %s\n", err.message);
    exit(1);
  }
  return g;
}

static kestrel_status collect(void *user, kq_exec *x, int node,
                              kestrel_error *err) {
  kq_stats **st = user;
  const kn_node *n = &x->g->nodes[node];
  for (int k = 0; k < n->num_outputs; k++) {
    kn_tensor *t = &x->g->tensors[n->outputs[k]];
    kq_stats_add(st[n->outputs[k]], t->data, kn_tensor_numel(t));
  }
  (void)err;
  return KESTREL_OK;
}

static void test_rewrite(void) {
  kn_graph *g = small_graph();
  kestrel_error err;
  kq_exec fx, qx;
  CHECK(kq_exec_init(&fx, g, 0, &err) == KESTREL_OK, "%s", err.message);
  kq_stats **st = calloc((size_t)g->num_tensors, sizeof(kq_stats *));
  for (int t = 0; t < g->num_tensors; t++)
    st[t] = calloc(1, sizeof(kq_stats));
  float in[50];
  for (int s = 0; s < 400; s++) {
    for (int i = 0; i < 50; i++)
      in[i] = (float)gauss();
    kq_stats_add(st[0], in, 50);
    const void *ins[1] = {in};
    CHECK(kq_exec_run(&fx, ins, collect, st, &err) == KESTREL_OK, "%s",
          err.message);
  }
  kq_range *rg = calloc((size_t)g->num_tensors, sizeof(kq_range));
  for (int t = 0; t < g->num_tensors; t++)
    if (st[t]->seen) {
      kq_stats_range(st[t], KESTREL_CALIB_MINMAX, 99.99, &rg[t].lo,
                     &rg[t].hi);
      rg[t].has_range = 1;
    }
  kn_graph *q;
  CHECK(kq_build_static(g, rg, NULL, 0, &q, &err) == KESTREL_OK, "%s",
        err.message);
  /* conv output int8, weights per channel, bias int32 at x_scale*w_scale */
  int c = kn_graph_find_tensor(q, "c"), y = kn_graph_find_tensor(q, "y");
  CHECK(q->tensors[c].dtype == KESTREL_DTYPE_I8, "c is %d",
        q->tensors[c].dtype);
  CHECK(q->tensors[y].dtype == KESTREL_DTYPE_F32, "output y stays float");
  const kn_node *conv = NULL;
  int nq = 0, ndq = 0;
  for (int i = 0; i < q->num_nodes; i++) {
    if (q->nodes[i].op == KN_OP_CONV)
      conv = &q->nodes[i];
    nq += q->nodes[i].op == KN_OP_QUANTIZE_LINEAR;
    ndq += q->nodes[i].op == KN_OP_DEQUANTIZE_LINEAR;
  }
  CHECK(nq == 1 && ndq == 1, "%d Q and %d DQ nodes", nq, ndq);
  CHECK(conv != NULL, "no conv");
  if (conv) {
    const kn_tensor *xq = kn_in(q, conv, 0), *wq = kn_in(q, conv, 1);
    const kn_tensor *bq = kn_in(q, conv, 2);
    CHECK(wq->dtype == KESTREL_DTYPE_I8 && wq->q_count == 3 &&
              wq->q_axis == 0,
          "weights %d count %d", wq->dtype, wq->q_count);
    CHECK(bq->dtype == KESTREL_DTYPE_I32 && bq->q_count == 3, "bias");
    for (int m = 0; m < 3; m++) {
      CHECK(fabsf(bq->q_scale[m] - xq->q_scale[0] * wq->q_scale[m]) <=
                1e-6f * bq->q_scale[m],
            "bias scale %d", m);
      int amax = 0;
      for (int i = 0; i < 18; i++) {
        int v = abs(((const int8_t *)wq->data)[m * 18 + i]);
        amax = v > amax ? v : amax;
      }
      CHECK(amax == 127, "channel %d max |q| %d", m, amax);
    }
  }
  /* Accuracy on fresh inputs. */
  CHECK(kq_exec_init(&qx, q, 0, &err) == KESTREL_OK, "%s", err.message);
  double sig = 0, noise = 0;
  for (int s = 0; s < 10; s++) {
    for (int i = 0; i < 50; i++)
      in[i] = (float)gauss();
    const void *ins[1] = {in};
    kq_exec_run(&fx, ins, NULL, NULL, &err);
    kq_exec_run(&qx, ins, NULL, NULL, &err);
    const float *a = fx.g->tensors[g->outputs[0]].data;
    const float *b = qx.g->tensors[q->outputs[0]].data;
    for (int i = 0; i < 75; i++) {
      sig += (double)a[i] * a[i];
      noise += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    }
  }
  double snr = 10 * log10(sig / noise);
  CHECK(snr > 30, "int8 small graph SNR %.1f dB", snr);
  /* Keep-float: the conv stays float, a DQ/Q pair appears around it. */
  unsigned char keep[8] = {0};
  for (int i = 0; i < g->num_nodes; i++)
    keep[i] = g->nodes[i].op == KN_OP_CONV;
  kn_graph *k;
  CHECK(kq_build_static(g, rg, keep, 0, &k, &err) == KESTREL_OK, "%s",
        err.message);
  CHECK(k->tensors[kn_graph_find_tensor(k, "c")].dtype == KESTREL_DTYPE_F32,
        "kept conv output is float");
  kn_graph_free(k);
  /* Dynamic: ConvInteger appears, output stays float and close. */
  kn_graph *d;
  CHECK(kq_build_dynamic(g, 0, &d, &err) == KESTREL_OK, "%s", err.message);
  int ci = 0;
  for (int i = 0; i < d->num_nodes; i++)
    ci += !d->nodes[i].dead && d->nodes[i].op == KN_OP_CONV_INTEGER;
  CHECK(ci == 1, "%d ConvInteger", ci);
  kq_exec dx;
  CHECK(kq_exec_init(&dx, d, 0, &err) == KESTREL_OK, "%s", err.message);
  const void *ins[1] = {in};
  kq_exec_run(&fx, ins, NULL, NULL, &err);
  kq_exec_run(&dx, ins, NULL, NULL, &err);
  const float *a = fx.g->tensors[g->outputs[0]].data;
  const float *b = dx.g->tensors[d->outputs[0]].data;
  CHECK(kestrel_snr_db(a, b, 75) > 30, "dynamic SNR %.1f",
        kestrel_snr_db(a, b, 75));
  kq_exec_free(&dx);
  kn_graph_free(d);
  kq_exec_free(&fx);
  kq_exec_free(&qx);
  kn_graph_free(q);
  kn_graph_free(g);
  for (int t = 0; t < 7; t++)
    free(st[t]);
  free(st);
  free(rg);
}

int main(void) {
  test_ranges();
  test_rewrite();
  if (failures)
    fprintf(stderr, "%d failure(s)\n", failures);
  else
    printf("PASS\n");
  return failures ? 1 : 0;
}
