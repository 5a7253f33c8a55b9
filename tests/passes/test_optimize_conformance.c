/* Every ONNX conformance model with float inputs and outputs goes through
 * kestrel_model_optimize (all passes, packed weights), is serialized to a
 * .kestrel image and loaded back, and must give the source model's outputs
 * on the same pseudo-random inputs. Hundreds of small graphs (every conv,
 * pool, resize, pad, slice, reduce... variant the suite has) exercise the
 * layout conversion and the fusions far beyond the hand-built cases.
 *
 *   test_optimize_conformance MODEL.onnx... */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/compile.h>
#include <kestrel/run.h>

static void fill(kestrel_session *s, size_t count) {
  for (size_t i = 0; i < count; i++) {
    kestrel_tensor *t = kestrel_session_input(s, i);
    uint32_t st = 1234 + (uint32_t)i;
    for (size_t k = 0; k < kestrel_tensor_numel(t); k++) {
      st = st * 1664525u + 1013904223u;
      ((float *)t->data)[k] = (float)(st >> 8) / (float)(1u << 24) * 2 - 1;
    }
  }
}

static int all_float(const kestrel_model *m) {
  for (size_t i = 0; i < kestrel_model_num_inputs(m); i++)
    if (kestrel_model_input(m, i)->dtype != KESTREL_DTYPE_F32)
      return 0;
  for (size_t i = 0; i < kestrel_model_num_outputs(m); i++)
    if (kestrel_model_output(m, i)->dtype != KESTREL_DTYPE_F32)
      return 0;
  return 1;
}

/* 0 when the compiled model matches; prints why not. */
static int check(const char *path, int *tested) {
  kestrel_model *src, *opt, *back = NULL;
  kestrel_error err;
  if (kestrel_model_load(path, NULL, &src, &err) != KESTREL_OK)
    return 0; /* not loadable at all: the conformance suite's business */
  if (!all_float(src)) {
    kestrel_model_free(src);
    return 0;
  }
  int bad = 0;
  kestrel_session *s1 = NULL, *s2 = NULL;
  void *bytes = NULL;
  size_t size;
  kestrel_compile_options co = kestrel_compile_options_default();
  if (kestrel_model_load(path, NULL, &opt, &err) != KESTREL_OK ||
      kestrel_model_optimize(opt, &co, &err) != KESTREL_OK ||
      kestrel_model_serialize(opt, &co, &bytes, &size, &err) != KESTREL_OK ||
      kestrel_model_load_memory(bytes, size, NULL, &back, &err) !=
          KESTREL_OK) {
    printf("FAIL %s: %s\n", path, err.message);
    bad = 1;
    goto done;
  }
  if (kestrel_session_create(src, NULL, &s1, &err) != KESTREL_OK ||
      kestrel_session_create(back, NULL, &s2, &err) != KESTREL_OK) {
    printf("FAIL %s: session: %s\n", path, err.message);
    bad = 1;
    goto done;
  }
  fill(s1, kestrel_model_num_inputs(src));
  fill(s2, kestrel_model_num_inputs(back));
  kestrel_status r1 = kestrel_session_run(s1, &err);
  kestrel_status r2 = kestrel_session_run(s2, &err);
  if (r1 != r2) {
    printf("FAIL %s: run status %d vs %d: %s\n", path, r1, r2, err.message);
    bad = 1;
    goto done;
  }
  if (r1 != KESTREL_OK)
    goto done;
  (*tested)++;
  for (size_t i = 0; i < kestrel_model_num_outputs(src); i++) {
    const kestrel_tensor *x = kestrel_session_output(s1, i);
    const kestrel_tensor *y = kestrel_session_output(s2, i);
    size_t n = kestrel_tensor_numel(x);
    int same_shape = x->ndim == y->ndim && n == kestrel_tensor_numel(y);
    for (int d = 0; same_shape && d < x->ndim; d++)
      same_shape = x->dims[d] == y->dims[d];
    if (!same_shape) {
      printf("FAIL %s: output %zu changed shape\n", path, i);
      bad = 1;
      break;
    }
    double worst = 0.0, scale = 1e-3;
    for (size_t k = 0; k < n; k++) {
      float p = ((const float *)x->data)[k], q = ((const float *)y->data)[k];
      if (isnan(p) && isnan(q))
        continue;
      double d = fabs((double)p - q);
      if (!(d <= worst))
        worst = d;
      if (fabs(p) > scale)
        scale = fabs(p);
    }
    if (!(worst <= 1e-4 * scale)) {
      printf("FAIL %s: output %zu differs by %g (scale %g)\n", path, i, worst,
             scale);
      bad = 1;
    }
  }
done:
  free(bytes);
  kestrel_session_free(s1);
  kestrel_session_free(s2);
  kestrel_model_free(src);
  kestrel_model_free(opt);
  kestrel_model_free(back);
  return bad;
}

int main(int argc, char **argv) {
  int tested = 0, bad = 0;
  for (int a = 1; a < argc; a++)
    bad += check(argv[a], &tested);
  printf("%d float models compared, %d failures\n", tested, bad);
  /* The suite has hundreds: a handful means the data went missing. */
  if (tested < 100) {
    printf("FAIL: only %d models compared (is libonnx-testdata installed?)\n",
           tested);
    return 1;
  }
  return bad ? 1 : 0;
}
