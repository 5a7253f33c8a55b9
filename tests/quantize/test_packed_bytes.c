/* A real INT8 model run packed (the fast kernels) and unpacked (the
 * reference ops) must give identical output bytes: both requantize with
 * kernels.h's definition (nn/src/ops/q8_requant.h). The model is quantized
 * from the FP32 one on real photos, saved portable, loaded twice and
 * optimized with and without pack_weights (same fusion and NHWC layout),
 * then both run on held-out real photos.
 *
 *   test_packed_bytes MODEL SIDECAR N,C,H,W --calib IMG... --eval IMG...
 *
 * Run once per kernel ISA (KESTREL_ISA=ref|avx2, tests/quantize/meson.build).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/compile.h>
#include <kestrel/decode.h>
#include <kestrel/quantize.h>
#include <kestrel/run.h>

#include "cli.h"
#include "quantize/quant_internal.h"

static int fail(const char *what, const kestrel_error *err) {
  fprintf(stderr, "FAIL: %s: %s\n", what, err ? err->message : "");
  exit(1);
}

static float *load_input(const char *path, const kestrel_sidecar *sc,
                         const kestrel_tensor *shape) {
  kestrel_error err;
  cli_image img;
  if (image_load(path, &img, &err))
    fail(path, &err);
  float *data = malloc(kestrel_tensor_bytes(shape));
  if (!data)
    fail("out of memory", NULL);
  kestrel_tensor t = *shape;
  t.data = data;
  t.dtype = KESTREL_DTYPE_F32;
  kestrel_transform tf;
  if (kestrel_preprocess(sc, img.rgb, img.width, img.height,
                         (size_t)img.width * 3, &t, &tf, &err))
    fail(path, &err);
  image_free(&img);
  return data;
}

/* Nodes of the optimized graph whose weights were packed. */
static int packed_nodes(const kestrel_model *m) {
  const kn_graph *g = kq_model_graph(m);
  int count = 0;
  for (int i = 0; i < g->num_nodes; i++)
    count += !g->nodes[i].dead && kn_attr_int(&g->nodes[i], "packed", 0) > 2;
  return count;
}

int main(int argc, char **argv) {
  if (argc < 7 || strcmp(argv[4], "--calib")) {
    fprintf(stderr, "usage: test_packed_bytes MODEL SIDECAR N,C,H,W --calib "
                    "IMG... --eval IMG...\n");
    return 2;
  }
  kestrel_error err;
  kestrel_load_options lo = kestrel_load_options_default();
  if (cli_parse_shape(argv[3], &lo))
    return 2;
  kestrel_sidecar sc;
  if (kestrel_sidecar_load(argv[2], &sc, &err))
    fail(argv[2], &err);
  if (sc.resize == KESTREL_RESIZE_MULTIPLE)
    sc.resize = KESTREL_RESIZE_LETTERBOX;
  kestrel_model *fp32;
  if (kestrel_model_load(argv[1], &lo, &fp32, &err))
    fail(argv[1], &err);
  const kestrel_tensor *in = kestrel_model_input(fp32, 0);

  kestrel_quantize_options qo = kestrel_quantize_options_default();
  kestrel_calibrator *cal;
  if (kestrel_calibrator_create(fp32, &qo, &cal, &err))
    fail("calibrator", &err);
  int i = 5;
  for (; i < argc && strcmp(argv[i], "--eval"); i++) {
    float *x = load_input(argv[i], &sc, in);
    if (kestrel_calibrator_add(cal, x, &err))
      fail(argv[i], &err);
    free(x);
  }
  if (i >= argc - 1)
    return 2;
  int eval0 = i + 1;
  kestrel_model *int8;
  if (kestrel_quantize(cal, &int8, &err))
    fail("quantize", &err);

  /* One portable file, loaded twice: the two runs differ only in packing. */
  kestrel_compile_options plain = kestrel_compile_options_default();
  plain.fuse = plain.layout_nhwc = plain.pack_weights = 0;
  void *bytes;
  size_t size;
  if (kestrel_model_serialize(int8, &plain, &bytes, &size, &err))
    fail("serialize", &err);
  kestrel_model *m[2];
  kestrel_session *s[2];
  for (int k = 0; k < 2; k++) {
    kestrel_compile_options co = kestrel_compile_options_default();
    co.pack_weights = k == 0;
    if (kestrel_model_load_memory(bytes, size, NULL, &m[k], &err) ||
        kestrel_model_optimize(m[k], &co, &err) ||
        kestrel_session_create(m[k], NULL, &s[k], &err))
      fail("load/optimize/session", &err);
  }
  int packed = packed_nodes(m[0]), unpacked = packed_nodes(m[1]);
  printf("%s: %d int8 nodes packed, %d in the unpacked model\n", argv[1],
         packed, unpacked);
  if (packed < 5 || unpacked != 0)
    fail("the two models do not differ in packing as intended", NULL);

  int failures = 0, runs = 0;
  for (i = eval0; i < argc; i++) {
    float *x = load_input(argv[i], &sc, in);
    for (int k = 0; k < 2; k++) {
      memcpy(kestrel_session_input(s[k], 0)->data, x,
             kestrel_tensor_bytes(in));
      if (kestrel_session_run(s[k], &err))
        fail("run", &err);
    }
    free(x);
    for (size_t o = 0; o < kestrel_model_num_outputs(m[0]); o++) {
      const kestrel_tensor *a = kestrel_session_output(s[0], o);
      const kestrel_tensor *b = kestrel_session_output(s[1], o);
      size_t nb = kestrel_tensor_bytes(a);
      runs++;
      if (nb != kestrel_tensor_bytes(b) || memcmp(a->data, b->data, nb)) {
        size_t n = kestrel_tensor_numel(a), diff = 0;
        const float *fa = a->data, *fb = b->data;
        for (size_t e = 0; e < n && a->dtype == KESTREL_DTYPE_F32; e++)
          diff += fa[e] != fb[e];
        fprintf(stderr, "FAIL: %s output %zu: %zu of %zu values differ\n",
                argv[i], o, diff, n);
        failures++;
      }
    }
  }
  printf("%d output comparisons, %d differ\n", runs, failures);
  for (int k = 0; k < 2; k++) {
    kestrel_session_free(s[k]);
    kestrel_model_free(m[k]);
  }
  free(bytes);
  kestrel_model_free(int8);
  kestrel_calibrator_free(cal);
  kestrel_model_free(fp32);
  kestrel_sidecar_free(&sc);
  return failures ? 1 : 0;
}
