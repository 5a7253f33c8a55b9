/* Kestrel's side of the TFLite reference comparison
 * (test_tflite_vs_reference.sh drives it):
 *
 *   test_tflite_vs_reference prep PHOTO.jpg SIZE OUT.npy
 *       decode a JPEG, stretch it to SIZE x SIZE (bilinear, pixel centres at
 *       +0.5), RGB scaled to [-1, 1] as BlazeFace expects: [1,SIZE,SIZE,3] f32
 *   test_tflite_vs_reference run MODEL.tflite IN.npy OUTDIR
 *       load with the public API, run once, write OUTDIR/output_<i>.npy
 *       (float32) and OUTDIR/names.txt
 *   test_tflite_vs_reference expect-error MODEL.tflite STATUS TEXT
 *       loading must fail with status STATUS (a number) and a message
 *       containing TEXT
 *   test_tflite_vs_reference damage MODEL.tflite
 *       every truncation (in steps) must fail to load; deterministic byte
 *       changes must load or fail cleanly (run it under ASan/valgrind to
 *       catch what a plain build cannot see)
 *
 * The public API is used directly (not the CLI) so that this test depends
 * on the importer and the engine only.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include <kestrel/model.h>
#include <kestrel/run.h>

static int fail(const char *what, const char *detail) {
  fprintf(stderr, "test_tflite_vs_reference: %s%s%s\n", what,
          detail ? ": " : "", detail ? detail : "");
  return 1;
}

static unsigned char *read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  unsigned char *buf = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long n = ftell(f);
    if (n >= 0 && n < (1L << 30) && fseek(f, 0, SEEK_SET) == 0) {
      buf = malloc((size_t)n + 1);
      if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
      }
      *size = (size_t)n;
    }
  }
  fclose(f);
  return buf;
}

static int write_npy_f32(const char *path, int ndim, const int64_t *dims,
                         const float *data) {
  char shape[256] = "";
  size_t count = 1;
  for (int d = 0; d < ndim; d++) {
    char part[32];
    snprintf(part, sizeof(part), "%lld%s", (long long)dims[d],
             ndim == 1 ? "," : (d + 1 < ndim ? ", " : ""));
    strncat(shape, part, sizeof(shape) - strlen(shape) - 1);
    count *= (size_t)dims[d];
  }
  char header[512];
  int n = snprintf(header, sizeof(header),
                   "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                   shape);
  int total = 10 + n + 1;
  int pad = (64 - total % 64) % 64;
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
  uint16_t hlen = (uint16_t)(n + pad + 1);
  pre[8] = (unsigned char)(hlen & 0xff);
  pre[9] = (unsigned char)(hlen >> 8);
  fwrite(pre, 1, 10, f);
  fwrite(header, 1, (size_t)n, f);
  for (int i = 0; i < pad; i++)
    fputc(' ', f);
  fputc('\n', f);
  fwrite(data, sizeof(float), count, f);
  return fclose(f);
}

/* Reads a little-endian float32, C-order .npy written by write_npy_f32 or
 * numpy. Returns malloc'd data. */
static float *read_npy_f32(const char *path, int *ndim, int64_t *dims) {
  size_t size;
  unsigned char *b = read_all(path, &size);
  if (!b || size < 10 || memcmp(b + 1, "NUMPY", 5) != 0) {
    free(b);
    return NULL;
  }
  size_t hlen = b[8] | ((size_t)b[9] << 8), start = 10;
  if (b[6] >= 2) {
    hlen = b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) |
           ((size_t)b[11] << 24);
    start = 12;
  }
  if (start + hlen > size) {
    free(b);
    return NULL;
  }
  char header[1024];
  size_t hl = hlen < sizeof(header) - 1 ? hlen : sizeof(header) - 1;
  memcpy(header, b + start, hl);
  header[hl] = 0;
  const char *sp = strstr(header, "'shape': (");
  if (!strstr(header, "'<f4'") || !sp) {
    free(b);
    return NULL;
  }
  sp += 10;
  *ndim = 0;
  size_t count = 1;
  while (*sp && *sp != ')' && *ndim < KESTREL_MAX_DIMS) {
    char *end;
    long long v = strtoll(sp, &end, 10);
    if (end == sp)
      break;
    dims[(*ndim)++] = v;
    count *= (size_t)v;
    sp = end;
    while (*sp == ',' || *sp == ' ')
      sp++;
  }
  if (start + hlen + count * 4 > size) {
    free(b);
    return NULL;
  }
  float *data = malloc(count * 4 + 4);
  if (data)
    memcpy(data, b + start + hlen, count * 4);
  free(b);
  return data;
}

static int prep(const char *photo, int side, const char *out) {
  size_t size;
  unsigned char *jpg = read_all(photo, &size);
  if (!jpg)
    return fail("cannot read", photo);
  tjhandle tj = tjInitDecompress();
  int w, h, sub, cs;
  if (!tj || tjDecompressHeader3(tj, jpg, (unsigned long)size, &w, &h, &sub,
                                 &cs) != 0 ||
      w <= 0 || h <= 0 || w > 16384 || h > 16384)
    return fail("not a JPEG", photo);
  unsigned char *rgb = malloc((size_t)w * (size_t)h * 3);
  if (!rgb || tjDecompress2(tj, jpg, (unsigned long)size, rgb, w, 0, h,
                            TJPF_RGB, TJFLAG_ACCURATEDCT) != 0)
    return fail("JPEG decode failed", photo);
  tjDestroy(tj);
  free(jpg);
  float *x = malloc(sizeof(float) * (size_t)side * (size_t)side * 3);
  if (!x)
    return fail("out of memory", NULL);
  /* Plain bilinear stretch; the comparison needs identical input for both
   * runtimes, not a faithful letterbox. */
  for (int oy = 0; oy < side; oy++) {
    float fy = ((float)oy + 0.5f) * (float)h / (float)side - 0.5f;
    if (fy < 0)
      fy = 0;
    int y0 = (int)fy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
    float wy = fy - (float)y0;
    for (int ox = 0; ox < side; ox++) {
      float fx = ((float)ox + 0.5f) * (float)w / (float)side - 0.5f;
      if (fx < 0)
        fx = 0;
      int x0 = (int)fx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
      float wx = fx - (float)x0;
      for (int c = 0; c < 3; c++) {
        float a = rgb[((size_t)y0 * w + x0) * 3 + c];
        float b = rgb[((size_t)y0 * w + x1) * 3 + c];
        float d = rgb[((size_t)y1 * w + x0) * 3 + c];
        float e = rgb[((size_t)y1 * w + x1) * 3 + c];
        float v = (a * (1 - wx) + b * wx) * (1 - wy) + (d * (1 - wx) + e * wx) * wy;
        x[((size_t)oy * side + ox) * 3 + c] = v / 127.5f - 1.0f;
      }
    }
  }
  free(rgb);
  int64_t dims[4] = {1, side, side, 3};
  int rc = write_npy_f32(out, 4, dims, x);
  free(x);
  return rc ? fail("cannot write", out) : 0;
}

static int run(const char *model_path, const char *in_path, const char *dir) {
  int ndim;
  int64_t dims[KESTREL_MAX_DIMS];
  float *x = read_npy_f32(in_path, &ndim, dims);
  if (!x)
    return fail("cannot read float32 .npy", in_path);
  kestrel_load_options opts = kestrel_load_options_default();
  opts.format = KESTREL_FORMAT_TFLITE;
  kestrel_model *m;
  kestrel_session *s;
  kestrel_error err;
  if (kestrel_model_load(model_path, &opts, &m, &err) != KESTREL_OK)
    return fail("load", err.message);
  if (kestrel_session_create(m, NULL, &s, &err) != KESTREL_OK)
    return fail("session", err.message);
  kestrel_tensor *in = kestrel_session_input(s, 0);
  if (in->dtype != KESTREL_DTYPE_F32 || in->ndim != ndim ||
      memcmp(in->dims, dims, sizeof(int64_t) * (size_t)ndim) != 0)
    return fail("input shape or type differs from the model's", in_path);
  memcpy(in->data, x, kestrel_tensor_bytes(in));
  free(x);
  if (kestrel_session_run(s, &err) != KESTREL_OK)
    return fail("run", err.message);
  char path[4096];
  snprintf(path, sizeof(path), "%s/names.txt", dir);
  FILE *names = fopen(path, "w");
  if (!names)
    return fail("cannot write", path);
  for (size_t i = 0; i < kestrel_model_num_outputs(m); i++) {
    const kestrel_tensor *t = kestrel_session_output(s, i);
    size_t n = kestrel_tensor_numel(t);
    float *y = malloc(sizeof(float) * (n + 1));
    if (!y)
      return fail("out of memory", NULL);
    for (size_t k = 0; k < n; k++) {
      /* Quantized outputs are compared as real values. */
      if (t->dtype == KESTREL_DTYPE_F32) {
        y[k] = ((const float *)t->data)[k];
      } else if (t->dtype == KESTREL_DTYPE_I8 || t->dtype == KESTREL_DTYPE_U8) {
        int q = t->dtype == KESTREL_DTYPE_I8 ? ((const int8_t *)t->data)[k]
                                             : ((const uint8_t *)t->data)[k];
        y[k] = t->quant.count ? t->quant.scale[0] *
                                    (float)(q - t->quant.zero_point[0])
                              : (float)q;
      } else {
        return fail("unexpected output dtype", kestrel_dtype_name(t->dtype));
      }
    }
    snprintf(path, sizeof(path), "%s/output_%zu.npy", dir, i);
    if (write_npy_f32(path, t->ndim, t->dims, y) != 0)
      return fail("cannot write", path);
    fprintf(names, "%s\n", t->name);
    printf("kestrel: output %zu '%s' %s\n", i, t->name,
           kestrel_dtype_name(t->dtype));
    free(y);
  }
  fclose(names);
  kestrel_session_free(s);
  kestrel_model_free(m);
  return 0;
}

static int expect_error(const char *model_path, int want, const char *text) {
  kestrel_load_options opts = kestrel_load_options_default();
  kestrel_model *m;
  kestrel_error err;
  kestrel_status st = kestrel_model_load(model_path, &opts, &m, &err);
  if (st == KESTREL_OK) {
    kestrel_model_free(m);
    return fail("loaded, but an error was expected", model_path);
  }
  printf("status %d (%s): %s\n", (int)st, kestrel_status_string(st),
         err.message);
  if ((int)st != want || !strstr(err.message, text)) {
    fprintf(stderr, "FAIL: wanted status %d and a message with '%s'\n", want,
            text);
    return 1;
  }
  printf("PASS\n");
  return 0;
}

static int damage(const char *model_path) {
  size_t size;
  unsigned char *bytes = read_all(model_path, &size);
  if (!bytes)
    return fail("cannot read", model_path);
  kestrel_load_options opts = kestrel_load_options_default();
  opts.format = KESTREL_FORMAT_TFLITE;
  kestrel_model *m;
  kestrel_error err;
  if (kestrel_model_load_memory(bytes, size, &opts, &m, &err) != KESTREL_OK)
    return fail("the intact model does not load", err.message);
  kestrel_model_free(m);
  /* Every byte of a flatbuffer written front to back is referenced up to
   * the last buffer, so any truncation must be refused. */
  /* Fewer tries on big models keep the test within seconds. */
  bool big = size > ((size_t)64 << 10);
  int rounds = big ? 1000 : 3000;
  size_t step = size / (big ? 1200 : 4000) + 1, truncations = 0;
  for (size_t n = 0; n < size; n += step, truncations++) {
    kestrel_status st = kestrel_model_load_memory(bytes, n, &opts, &m, &err);
    if (st == KESTREL_OK) {
      kestrel_model_free(m);
      fprintf(stderr, "FAIL: a truncation to %zu of %zu bytes loaded\n", n,
              size);
      return 1;
    }
  }
  /* Byte changes at LCG-chosen places: load or fail, never crash. */
  unsigned char *copy = malloc(size);
  if (!copy)
    return fail("out of memory", NULL);
  uint32_t rng = 2024u;
  int loaded = 0, failed = 0;
  for (int round = 0; round < rounds; round++) {
    memcpy(copy, bytes, size);
    for (int k = 0; k < 1 + round % 4; k++) {
      rng = rng * 1664525u + 1013904223u;
      size_t at = (rng >> 4) % size;
      rng = rng * 1664525u + 1013904223u;
      copy[at] = (unsigned char)(round % 3 == 0 ? copy[at] ^ (1u << (rng >> 29))
                                                : rng >> 24);
    }
    if (kestrel_model_load_memory(copy, size, &opts, &m, &err) == KESTREL_OK) {
      loaded++;
      kestrel_model_free(m);
    } else {
      failed++;
      if (err.message[0] == 0 || strlen(err.message) >= sizeof(err.message))
        return fail("an error came without a message", NULL);
    }
  }
  printf("%zu truncations refused; %d damaged copies: %d loaded, %d refused"
         "\nPASS\n",
         truncations, rounds, loaded, failed);
  free(copy);
  free(bytes);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "prep") == 0)
    return prep(argv[2], atoi(argv[3]), argv[4]);
  if (argc == 5 && strcmp(argv[1], "run") == 0)
    return run(argv[2], argv[3], argv[4]);
  if (argc == 5 && strcmp(argv[1], "expect-error") == 0)
    return expect_error(argv[2], atoi(argv[3]), argv[4]);
  if (argc == 3 && strcmp(argv[1], "damage") == 0)
    return damage(argv[2]);
  fprintf(stderr, "usage: %s prep PHOTO.jpg SIZE OUT.npy\n"
                  "       %s run MODEL.tflite IN.npy OUTDIR\n"
                  "       %s expect-error MODEL.tflite STATUS TEXT\n"
                  "       %s damage MODEL.tflite\n",
          argv[0], argv[0], argv[0], argv[0]);
  return 2;
}
