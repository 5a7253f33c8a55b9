/* Whole real models, FP32: the optimized graph (fusions, NHWC, packed
 * weights on the fast kernels) against the model as loaded (reference ops,
 * its own layout), same input; and the fast path with 2 threads against 1
 * thread, byte for byte.
 *
 *   test_models_fast            (models from $KESTREL_CACHE/models)
 *
 * The input is a fixed pseudo-random image in the model's normalized
 * range (noise drives PP-OCR det's map well away from 0); the tolerance is
 * relative to the output's largest magnitude, since a chain of ~100
 * convolutions accumulates each one's 1e-5-level reordering error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fast_model.h"
#include "kernels.h"

#define TOLERANCE 1e-3

typedef struct model_case {
  const char *file;
  int ndim;
  int64_t shape[4];
  float lo, hi; /* input value range: the model's normalized range */
} model_case;

static int failures;

static void fill_input(kestrel_tensor *t, float lo, float hi) {
  uint32_t s = 12345;
  size_t count = 1;
  for (int d = 0; d < t->ndim; d++)
    count *= (size_t)t->dims[d];
  float *p = t->data;
  for (size_t i = 0; i < count; i++) {
    s = s * 1664525u + 1013904223u;
    p[i] = lo + (hi - lo) * (float)(s >> 8) / 16777216.0f;
  }
}

static size_t numel(const kestrel_tensor *t) {
  size_t count = 1;
  for (int d = 0; d < t->ndim; d++)
    count *= (size_t)t->dims[d];
  return count;
}

static kestrel_status run_once(const model_case *mc, kestrel_model *m,
                               int threads, float **outs,
                               size_t *counts, size_t nout,
                               kestrel_error *err) {
  kestrel_session_options so;
  memset(&so, 0, sizeof so);
  so.threads = threads;
  kestrel_session *s = NULL;
  kestrel_status st = kestrel_session_create(m, &so, &s, err);
  if (st != KESTREL_OK)
    return st;
  fill_input(kestrel_session_input(s, 0), mc->lo, mc->hi);
  st = kestrel_session_run(s, err);
  for (size_t i = 0; st == KESTREL_OK && i < nout; i++) {
    const kestrel_tensor *o = kestrel_session_output(s, i);
    counts[i] = numel(o);
    outs[i] = malloc(counts[i] * sizeof(float) + 1);
    memcpy(outs[i], o->data, counts[i] * sizeof(float));
  }
  kestrel_session_free(s);
  return st;
}

static void check_model(const char *cache, const model_case *mc) {
  char path[1024];
  snprintf(path, sizeof path, "%s/models/%s", cache, mc->file);
  kestrel_error err;
  memset(&err, 0, sizeof err);
  kestrel_model *ref = NULL, *fast = NULL;
  const int64_t *shape = mc->ndim ? mc->shape : NULL;
  if (fm_load(path, shape, mc->ndim, 0, &ref, &err) != KESTREL_OK ||
      fm_load(path, shape, mc->ndim, 1, &fast, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: %s\n", mc->file, err.message);
    failures++;
    kestrel_model_free(ref);
    return;
  }
  int packed = 0;
  for (int i = 0; i < fast->graph->num_nodes; i++)
    packed += kn_node_attr(&fast->graph->nodes[i], "packed") != NULL;
  size_t nout = kestrel_model_num_outputs(ref);
  if (nout > 8)
    nout = 8;
  float *r[8] = {0}, *f1[8] = {0}, *f2[8] = {0};
  size_t cr[8], c1[8], c2[8];
  if (run_once(mc, ref, 1, r, cr, nout, &err) != KESTREL_OK ||
      run_once(mc, fast, 1, f1, c1, nout, &err) != KESTREL_OK ||
      run_once(mc, fast, 2, f2, c2, nout, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: %s\n", mc->file, err.message);
    failures++;
    goto done;
  }
  for (size_t i = 0; i < nout; i++) {
    if (cr[i] != c1[i] || c1[i] != c2[i]) {
      fprintf(stderr, "FAIL %s output %zu: %zu vs %zu elements\n", mc->file,
              i, cr[i], c1[i]);
      failures++;
      continue;
    }
    double peak = 0, worst = 0;
    size_t at = 0;
    for (size_t k = 0; k < cr[i]; k++)
      peak = fmax(peak, fabs(r[i][k]));
    for (size_t k = 0; k < cr[i]; k++) {
      double d = fabs((double)r[i][k] - f1[i][k]);
      if (!(d <= worst)) {
        worst = d;
        at = k;
      }
    }
    double rel = worst / (peak > 0 ? peak : 1);
    printf("%s output %zu: %zu values, %d packed nodes, max |fast - ref| = "
           "%.3g (%.3g of peak %.3g), isa %s\n",
           mc->file, i, cr[i], packed, worst, rel, peak,
           kn_isa_name(kn_kernels_get()->isa));
    if (!(rel <= TOLERANCE)) {
      fprintf(stderr, "FAIL %s output %zu: element %zu fast %g ref %g\n",
              mc->file, i, at, (double)f1[i][at], (double)r[i][at]);
      failures++;
    }
    if (memcmp(f1[i], f2[i], c1[i] * sizeof(float))) {
      fprintf(stderr, "FAIL %s output %zu: threads=2 differs from 1\n",
              mc->file, i);
      failures++;
    }
  }
  if (packed == 0) {
    fprintf(stderr, "FAIL %s: no node was packed\n", mc->file);
    failures++;
  }
done:
  for (size_t i = 0; i < nout; i++)
    free(r[i]), free(f1[i]), free(f2[i]);
  kestrel_model_free(ref);
  kestrel_model_free(fast);
}

int main(void) {
  const char *cache = getenv("KESTREL_CACHE");
  if (!cache || !*cache) {
    fprintf(stderr, "FAIL: KESTREL_CACHE is not set\n");
    return 1;
  }
  static const model_case cases[] = {
      {"ch_ppocr_mobile_v2.0_cls_infer.onnx", 4, {1, 3, 48, 192}, -1, 1},
      {"ch_PP-OCRv4_det_infer.onnx", 4, {1, 3, 320, 320}, -2, 2.5f},
      {"face_detection_short_range.tflite", 0, {0}, -1, 1},
      {"face_detection_full_range.tflite", 0, {0}, -1, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_model(cache, &cases[i]);
  if (failures) {
    fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  return 0;
}
