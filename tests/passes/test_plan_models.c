/* kn_plan_memory on the real models: each model is optimized (all passes,
 * packed weights), run once by a session, then run again in one arena laid
 * out by kn_plan_memory (in-place element-wise ops and aliased reshapes
 * included); the outputs must be identical. Prints arena vs lower bound.
 *
 *   test_plan_models MODEL_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/compile.h>
#include <kestrel/run.h>

#include "model_internal.h"
#include "passes/passes.h"

static void fill(float *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)(seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
  }
}

static int check(const char *dir, const char *file, int ndim,
                 const int64_t *shape) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  kestrel_load_options lo = kestrel_load_options_default();
  if (ndim) {
    lo.input_shape_ndim = ndim;
    memcpy(lo.input_shape, shape, sizeof(int64_t) * (size_t)ndim);
  }
  kestrel_model *m;
  kestrel_error err;
  if (kestrel_model_load(path, &lo, &m, &err) != KESTREL_OK ||
      kestrel_model_optimize(m, NULL, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: %s\n", file, err.message);
    return 1;
  }
  kestrel_session *s;
  if (kestrel_session_create(m, NULL, &s, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: %s\n", file, err.message);
    return 1;
  }
  kestrel_tensor *in = kestrel_session_input(s, 0);
  size_t n_in = kestrel_tensor_numel(in);
  fill(in->data, n_in, 99);
  int rc = 0;
  if (kestrel_session_run(s, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: %s\n", file, err.message);
    rc = 1;
  }

  /* The same graph, every activation placed by kn_plan_memory. */
  kn_graph g = *m->graph;
  g.tensors = malloc(sizeof(kn_tensor) * ((size_t)g.num_tensors + 1));
  memcpy(g.tensors, m->graph->tensors, sizeof(kn_tensor) * (size_t)g.num_tensors);
  kn_memory_plan plan;
  if (kn_plan_memory(&g, &plan, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL %s: plan: %s\n", file, err.message);
    return 1;
  }
  size_t scratch_bytes = 0;
  for (int i = 0; i < g.num_nodes; i++) {
    const kn_op_info *op = kn_op_get(g.nodes[i].op);
    size_t b = op->scratch ? op->scratch(&g, &g.nodes[i]) : 0;
    if (b > scratch_bytes)
      scratch_bytes = b;
  }
  uint8_t *arena = aligned_alloc(64, plan.arena_bytes + 64);
  void *scratch = aligned_alloc(64, (scratch_bytes + 127) / 64 * 64);
  memset(arena, 0xcd, plan.arena_bytes + 64);
  for (int t = 0; t < g.num_tensors; t++) {
    kn_tensor *x = &g.tensors[t];
    if (x->kind == KN_TENSOR_CONSTANT)
      continue;
    x->data_owned = false;
    x->data = arena + (x->arena_offset >= 0 ? x->arena_offset : 0);
  }
  fill(g.tensors[g.inputs[0]].data, n_in, 99);
  kn_exec ex;
  memset(&ex, 0, sizeof(ex));
  ex.graph = &g;
  ex.scratch = scratch;
  ex.scratch_bytes = scratch_bytes;
  ex.num_threads = 1;
  for (int i = 0; i < g.num_nodes && !rc; i++) {
    if (g.nodes[i].dead)
      continue;
    if (kn_op_get(g.nodes[i].op)->run(&ex, &g.nodes[i], &err) != KESTREL_OK) {
      fprintf(stderr, "FAIL %s: %s\n", file, err.message);
      rc = 1;
    }
  }
  for (int o = 0; o < g.num_outputs && !rc; o++) {
    const kestrel_tensor *a = kestrel_session_output(s, (size_t)o);
    const kn_tensor *b = &g.tensors[g.outputs[o]];
    if (memcmp(a->data, b->data, kestrel_tensor_bytes(a)) != 0) {
      fprintf(stderr, "FAIL %s: output %d differs with the planned arena\n",
              file, o);
      rc = 1;
    }
  }
  printf("%-40s arena %zu bytes, lower bound %zu (%.3fx), %d in place, "
         "session arena %zu\n",
         file, plan.arena_bytes, plan.lower_bound,
         (double)plan.arena_bytes / (double)plan.lower_bound, plan.aliased,
         kestrel_session_arena_bytes(s));
  free(arena);
  free(scratch);
  free(g.tensors);
  kestrel_session_free(s);
  kestrel_model_free(m);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_plan_models MODEL_DIR\n");
    return 2;
  }
  int64_t cls[4] = {1, 3, 48, 192}, det[4] = {1, 3, 640, 640};
  int rc = 0;
  rc |= check(argv[1], "ch_ppocr_mobile_v2.0_cls_infer.onnx", 4, cls);
  rc |= check(argv[1], "ch_PP-OCRv4_det_infer.onnx", 4, det);
  rc |= check(argv[1], "face_detection_short_range.tflite", 0, NULL);
  rc |= check(argv[1], "face_detection_full_range.tflite", 0, NULL);
  return rc;
}
