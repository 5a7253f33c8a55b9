/* Transpose, Concat (ops/shape.c) and Resize (ops/resize_fast.c, one
 * accumulator row per thread) split their rows over the session's thread
 * pool. Each output byte must be written the same way whatever the split,
 * so real models run with 1, 2 and 3 threads must give identical output
 * bytes. Models: the PP-OCR det INT8 .kestrel that set-up makes (input
 * NCHW->NHWC Transpose, the FPN Concat and Resizes, output Transpose), the
 * INT8 BlazeFace full range it makes (three int8 bilinear Resizes) and
 * BlazeFace short range FP32 optimized onto the fast path (two channel
 * Concats). Inputs are a fixed pseudo-random pattern in [-1, 1]. Run once
 * per ISA: under KESTREL_ISA=ref every Resize channel goes through the
 * per-thread accumulators.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fast_model.h"

static int count_op(const kestrel_model *m, kn_op op) {
  int c = 0;
  for (int i = 0; i < m->graph->num_nodes; i++)
    c += m->graph->nodes[i].op == op;
  return c;
}

/* Runs m once with `threads`; returns a malloc'd copy of every output's
 * bytes, concatenated (*bytes set), or NULL on error. */
static unsigned char *run_once(const kestrel_model *m, int threads,
                               size_t *bytes) {
  kestrel_error err = {0};
  kestrel_session_options so = {.threads = threads};
  kestrel_session *s = NULL;
  if (kestrel_session_create(m, &so, &s, &err) != KESTREL_OK) {
    fprintf(stderr, "session (%d threads): %s\n", threads, err.message);
    return NULL;
  }
  for (size_t i = 0; i < kestrel_model_num_inputs(m); i++) {
    kestrel_tensor *in = kestrel_session_input(s, i);
    if (in->dtype != KESTREL_DTYPE_F32) {
      fprintf(stderr, "input %zu is not float32\n", i);
      kestrel_session_free(s);
      return NULL;
    }
    float *x = in->data;
    uint32_t state = 12345u + (uint32_t)i;
    for (size_t k = 0; k < kestrel_tensor_numel(in); k++) {
      state = state * 1664525u + 1013904223u;
      x[k] = (float)(state >> 8) / (float)(1u << 23) - 1.0f;
    }
  }
  if (kestrel_session_run(s, &err) != KESTREL_OK) {
    fprintf(stderr, "run (%d threads): %s\n", threads, err.message);
    kestrel_session_free(s);
    return NULL;
  }
  size_t total = 0;
  for (size_t i = 0; i < kestrel_model_num_outputs(m); i++)
    total += kestrel_tensor_bytes(kestrel_session_output(s, i));
  unsigned char *buf = malloc(total ? total : 1);
  size_t at = 0;
  for (size_t i = 0; buf && i < kestrel_model_num_outputs(m); i++) {
    const kestrel_tensor *o = kestrel_session_output(s, i);
    memcpy(buf + at, o->data, kestrel_tensor_bytes(o));
    at += kestrel_tensor_bytes(o);
  }
  kestrel_session_free(s);
  *bytes = total;
  return buf;
}

static int check_model(const char *path, int fast) {
  kestrel_error err = {0};
  kestrel_model *m = NULL;
  if (fm_load(path, NULL, 0, fast, &m, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: %s\n", path, err.message);
    return 1;
  }
  int transposes = count_op(m, KN_OP_TRANSPOSE);
  int concats = count_op(m, KN_OP_CONCAT);
  int resizes = count_op(m, KN_OP_RESIZE);
  int fails = 0;
  if (concats + resizes == 0) {
    fprintf(stderr, "FAIL %s: no Concat or Resize left to test\n", path);
    fails++;
  }
  size_t n1 = 0;
  unsigned char *ref = run_once(m, 1, &n1);
  if (!ref || n1 == 0) {
    fprintf(stderr, "FAIL %s: 1-thread run\n", path);
    free(ref);
    kestrel_model_free(m);
    return 1;
  }
  for (int threads = 2; threads <= 3; threads++) {
    size_t nt = 0;
    unsigned char *got = run_once(m, threads, &nt);
    if (!got || nt != n1 || memcmp(got, ref, n1) != 0) {
      size_t first = 0;
      while (got && nt == n1 && first < n1 && got[first] == ref[first])
        first++;
      fprintf(stderr, "FAIL %s: %d threads differ from 1 (first byte %zu)\n",
              path, threads, first);
      fails++;
    }
    free(got);
  }
  if (!fails)
    printf("ok %s: %d Transpose, %d Concat, %d Resize; 1, 2, 3 threads "
           "identical (%zu output bytes)\n",
           path, transposes, concats, resizes, n1);
  free(ref);
  kestrel_model_free(m);
  return fails;
}

int main(void) {
  const char *cache = getenv("KESTREL_CACHE");
  if (!cache || !*cache) {
    fprintf(stderr, "FAIL: KESTREL_CACHE is not set\n");
    return 1;
  }
  char det[4096], face[4096], face8[4096];
  snprintf(det, sizeof(det), "%s/compiled/ch_PP-OCRv4_det_infer.int8.kestrel",
           cache);
  snprintf(face, sizeof(face), "%s/models/face_detection_short_range.tflite",
           cache);
  snprintf(face8, sizeof(face8),
           "%s/compiled/face_detection_full_range.int8.kestrel", cache);
  int fails = check_model(det, 0) + check_model(face, 1) +
              check_model(face8, 0);
  printf("%s\n", fails ? "FAIL" : "PASS");
  return fails ? 1 : 0;
}
