/* .kestrel files: round trip of a real model (PP-OCR cls from the cache),
 * mmap loading, the --input-shape rule, and corrupt files (truncated at
 * many offsets, flipped bytes with and without a repaired checksum, wrong
 * magic, version and checksum), each of which must fail with a clear
 * message and never crash. Also prints the mapped load time.
 *
 *   test_format MODEL_DIR OUT_DIR */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kestrel/compile.h>
#include <kestrel/model.h>
#include <kestrel/run.h>

#include "format/format.h"

static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs a model on a fixed pseudo-random input; returns output 0 (malloc'd). */
static float *run_once(kestrel_model *m, size_t *count) {
  kestrel_session *s;
  kestrel_error err;
  if (kestrel_session_create(m, NULL, &s, &err) != KESTREL_OK) {
    fprintf(stderr, "session: %s\n", err.message);
    return NULL;
  }
  kestrel_tensor *in = kestrel_session_input(s, 0);
  size_t n = kestrel_tensor_numel(in);
  uint32_t state = 12345;
  for (size_t i = 0; i < n; i++) {
    state = state * 1664525u + 1013904223u;
    ((float *)in->data)[i] = (float)(state >> 8) / (float)(1u << 24) - 0.5f;
  }
  float *out = NULL;
  if (kestrel_session_run(s, &err) == KESTREL_OK) {
    const kestrel_tensor *o = kestrel_session_output(s, 0);
    *count = kestrel_tensor_numel(o);
    out = malloc(sizeof(float) * *count + 1);
    if (out)
      memcpy(out, o->data, sizeof(float) * *count);
  } else {
    fprintf(stderr, "run: %s\n", err.message);
  }
  kestrel_session_free(s);
  return out;
}

static void fix_crc(uint8_t *b, size_t size) {
  uint32_t crc = kn_format_checksum(b, size);
  for (int k = 0; k < 4; k++)
    b[KN_KESTREL_CRC_OFFSET + k] = (uint8_t)(crc >> (8 * k));
}

/* Loads bytes that must be rejected: not OK, a message, no crash. */
static void expect_reject(const uint8_t *b, size_t size, const char *what,
                          const char *want_in_message) {
  kestrel_model *m = NULL;
  kestrel_error err;
  err.message[0] = '\0';
  kestrel_status st = kestrel_model_load_memory(b, size, NULL, &m, &err);
  CHECK(st != KESTREL_OK, "%s: loaded", what);
  CHECK(st == KESTREL_OK || err.message[0], "%s: no message", what);
  if (st != KESTREL_OK && want_in_message)
    CHECK(strstr(err.message, want_in_message), "%s: message '%s' lacks '%s'",
          what, err.message, want_in_message);
  kestrel_model_free(m);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: test_format MODEL_DIR OUT_DIR\n");
    return 2;
  }
  char src[4096], out[4096];
  snprintf(src, sizeof(src), "%s/ch_ppocr_mobile_v2.0_cls_infer.onnx", argv[1]);
  snprintf(out, sizeof(out), "%s/test_format_cls.kestrel", argv[2]);
  kestrel_error err;
  kestrel_model *m;
  kestrel_load_options src_lo = kestrel_load_options_default();
  src_lo.input_shape_ndim = 4;
  int64_t cls_shape[4] = {1, 3, 48, 192};
  memcpy(src_lo.input_shape, cls_shape, sizeof(cls_shape));
  if (kestrel_model_load(src, &src_lo, &m, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL: %s\n", err.message);
    return 1;
  }
  size_t n_ref = 0;
  float *ref = run_once(m, &n_ref);
  CHECK(ref, "source model did not run");
  char sha[65];
  snprintf(sha, sizeof(sha), "%s", kestrel_model_sha256(m));
  kestrel_compile_options co = kestrel_compile_options_default();
  const char sidecar[] = "[model]\nname = test\n";
  co.sidecar = sidecar;
  co.sidecar_size = sizeof(sidecar) - 1;
  CHECK(kestrel_model_optimize(m, &co, &err) == KESTREL_OK, "optimize: %s",
        err.message);
  size_t n_opt = 0;
  float *opt = run_once(m, &n_opt);
  void *bytes;
  size_t size;
  CHECK(kestrel_model_serialize(m, &co, &bytes, &size, &err) == KESTREL_OK,
        "serialize: %s", err.message);
  CHECK(kestrel_model_save(m, out, &co, &err) == KESTREL_OK, "save: %s",
        err.message);
  kestrel_model_free(m);
  CHECK(opt && n_opt == n_ref, "optimized model output count");
  for (size_t i = 0; opt && ref && i < n_ref && i < n_opt; i++)
    CHECK(fabsf(opt[i] - ref[i]) <= 1e-4f, "optimized output %zu: %g vs %g",
          i, opt[i], ref[i]);

  /* Mapped load: same outputs, source sha, sidecar, shape rule. */
  kestrel_load_options lo = kestrel_load_options_default();
  CHECK(kestrel_model_load(out, &lo, &m, &err) == KESTREL_OK, "load: %s",
        err.message);
  if (m) {
    CHECK(kestrel_model_source_format(m) == KESTREL_FORMAT_KESTREL,
          "format %d", kestrel_model_source_format(m));
    CHECK(!strcmp(kestrel_model_sha256(m), sha), "sha %s vs %s",
          kestrel_model_sha256(m), sha);
    size_t sn;
    const char *st = kestrel_model_sidecar(m, &sn);
    CHECK(st && sn == sizeof(sidecar) - 1 && !memcmp(st, sidecar, sn),
          "embedded sidecar differs");
    size_t n_k = 0;
    float *k = run_once(m, &n_k);
    CHECK(k && n_k == n_ref, "compiled output count");
    for (size_t i = 0; k && ref && i < n_ref && i < n_k; i++)
      CHECK(fabsf(k[i] - ref[i]) <= 1e-4f, "compiled output %zu: %g vs %g", i,
            k[i], ref[i]);
    free(k);
    kestrel_model_free(m);
  }
  char *text;
  size_t tn;
  CHECK(kestrel_compiled_sidecar(out, &text, &tn, &err) == KESTREL_OK &&
            tn == sizeof(sidecar) - 1,
        "compiled_sidecar: %s", err.message);
  if (tn)
    free(text);
  CHECK(kestrel_is_compiled_file(out) == 1, "is_compiled_file");
  CHECK(kestrel_is_compiled_file(src) == 0, "is_compiled_file on onnx");
  lo.input_shape_ndim = 4;
  int64_t same[4] = {1, 3, 48, 192}, other[4] = {1, 3, 48, 320};
  memcpy(lo.input_shape, same, sizeof(same));
  CHECK(kestrel_model_load(out, &lo, &m, &err) == KESTREL_OK,
        "equal --input-shape rejected: %s", err.message);
  kestrel_model_free(m);
  memcpy(lo.input_shape, other, sizeof(other));
  CHECK(kestrel_model_load(out, &lo, &m, &err) == KESTREL_ERROR_SHAPE &&
            strstr(err.message, "compiled for input shape 1,3,48,192"),
        "different --input-shape: %s", err.message);

  /* Load time of the mapped file (median of 21). */
  double times[21];
  for (int r = 0; r < 21; r++) {
    double t0 = now_ms();
    kestrel_model *x;
    if (kestrel_model_load(out, NULL, &x, &err) == KESTREL_OK)
      kestrel_model_free(x);
    times[r] = now_ms() - t0;
  }
  for (int a = 1; a < 21; a++)
    for (int b = a; b > 0 && times[b] < times[b - 1]; b--) {
      double t = times[b];
      times[b] = times[b - 1];
      times[b - 1] = t;
    }
  printf("cls .kestrel: %zu bytes, mapped load median %.3f ms\n", size,
         times[10]);

  /* Corruptions. */
  uint8_t *b = bytes;
  uint8_t *c = malloc(size);
  size_t cuts[] = {0, 1, 7, 8, 12, 64, 127, 128, 200, size / 3, size / 2,
                   size - 65, size - 1};
  for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
    char what[64];
    snprintf(what, sizeof(what), "truncated at %zu", cuts[i]);
    expect_reject(b, cuts[i], what, NULL);
    /* Truncated with a repaired checksum and size: the parser must still
     * find what is missing. */
    if (cuts[i] >= KN_KESTREL_HEADER_SIZE) {
      memcpy(c, b, cuts[i]);
      for (int k = 0; k < 8; k++)
        c[16 + k] = (uint8_t)((uint64_t)cuts[i] >> (8 * k));
      fix_crc(c, cuts[i]);
      snprintf(what, sizeof(what), "truncated+fixed at %zu", cuts[i]);
      expect_reject(c, cuts[i], what, NULL);
    }
  }
  memcpy(c, b, size);
  c[0] ^= 0xff;
  expect_reject(c, size, "wrong magic", NULL);
  memcpy(c, b, size);
  c[8] = 99;
  fix_crc(c, size);
  expect_reject(c, size, "wrong version", "version 99 is not supported");
  memcpy(c, b, size);
  c[KN_KESTREL_CRC_OFFSET] ^= 1;
  expect_reject(c, size, "wrong checksum", "checksum mismatch");
  /* Flipped bytes all over the file: the checksum catches every one. */
  int flips = 0;
  for (size_t at = 0; at < size; at += size / 97 + 1, flips++) {
    memcpy(c, b, size);
    c[at] ^= 0x5a;
    char what[64];
    snprintf(what, sizeof(what), "byte %zu flipped", at);
    expect_reject(c, size, what, NULL);
  }
  /* Flipped bytes with a repaired checksum: anything may happen except a
   * crash; a load that succeeds must also plan and run. */
  int loaded = 0;
  for (size_t at = KN_KESTREL_HEADER_SIZE; at < size; at += size / 301 + 1) {
    memcpy(c, b, size);
    c[at] ^= 0xa5;
    fix_crc(c, size);
    kestrel_model *x = NULL;
    if (kestrel_model_load_memory(c, size, NULL, &x, &err) == KESTREL_OK) {
      loaded++;
      size_t cnt;
      free(run_once(x, &cnt));
      kestrel_model_free(x);
    }
  }
  printf("%d flipped files rejected; %d repaired-checksum mutants loaded\n",
         flips, loaded);
  free(c);
  free(bytes);
  free(ref);
  free(opt);
  remove(out);
  if (failures)
    fprintf(stderr, "%d failures\n", failures);
  return failures ? 1 : 0;
}
