/* Small helpers shared by the CLI commands: errors, number parsing, file
 * reading, locating sidecars, JSON strings. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kestrel/compile.h>

#include "cli.h"
#include "sha256.h"

#ifndef KESTREL_DATADIR
#define KESTREL_DATADIR "/usr/local/share/kestrel/models"
#endif

int cli_error(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  /* One line, whatever the message held. */
  for (char *p = msg; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  fprintf(stderr, "kestrel: %s\n", msg);
  return EXIT_ERROR;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fprintf(stderr, "kestrel: %s (see 'kestrel %s--help')\n", msg,
          cmd ? cmd : "");
  return EXIT_USAGE;
}

int cli_parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

int cli_parse_float(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

int cli_parse_shape(const char *s, kestrel_load_options *opts) {
  char buf[256];
  if (strlen(s) >= sizeof(buf))
    return -1;
  strcpy(buf, s);
  int n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    long v;
    if (n >= KESTREL_MAX_DIMS || cli_parse_int(tok, 1, 1 << 20, &v))
      return -1;
    opts->input_shape[n++] = v;
  }
  if (n == 0)
    return -1;
  opts->input_shape_ndim = n;
  return 0;
}

int cli_read_file(const char *path, size_t limit, uint8_t **data,
                  size_t *size, kestrel_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err->message, sizeof(err->message), "%s: %s", path,
             strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
    fclose(f);
    snprintf(err->message, sizeof(err->message), "%s: not a regular file",
             path);
    return -1;
  }
  if ((uint64_t)sb.st_size > limit) {
    fclose(f);
    snprintf(err->message, sizeof(err->message),
             "%s: %lld bytes, more than the %zu accepted", path,
             (long long)sb.st_size, limit);
    return -1;
  }
  size_t n = (size_t)sb.st_size;
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf || fread(buf, 1, n, f) != n) {
    free(buf);
    fclose(f);
    snprintf(err->message, sizeof(err->message), "%s: read failed", path);
    return -1;
  }
  fclose(f);
  *data = buf;
  *size = n;
  return 0;
}

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

const char *cli_asset_dir(void) {
  static char dir[PATH_MAX + 32];
  const char *env = getenv("KESTREL_ASSETS");
  if (env && *env)
    return env;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      /* build/nn/kestrel -> <source>/assets/models when the build folder
       * sits in the source tree (meson's usual layout). */
      snprintf(dir, sizeof(dir), "%s/../../assets/models", exe);
      if (is_dir(dir))
        return dir;
    }
  }
  if (is_dir(KESTREL_DATADIR))
    return KESTREL_DATADIR;
#ifdef KESTREL_SOURCE_ASSETS
  /* Build folders outside the source tree. */
  if (is_dir(KESTREL_SOURCE_ASSETS))
    return KESTREL_SOURCE_ASSETS;
#endif
  return KESTREL_DATADIR;
}

kestrel_status cli_load_sidecar(const char *model_path, const char *config,
                                kestrel_sidecar *sc, kestrel_error *err) {
  if (config)
    return kestrel_sidecar_load(config, sc, err);
  /* A compiled model carries its sidecar inside. */
  if (kestrel_is_compiled_file(model_path)) {
    char *text;
    size_t n;
    kestrel_status st = kestrel_compiled_sidecar(model_path, &text, &n, err);
    if (st == KESTREL_OK) {
      st = kestrel_sidecar_parse(text, n, model_path, NULL, sc, err);
      free(text);
      return st;
    }
    if (st != KESTREL_ERROR_IO)
      return st;
  }
  uint8_t *data;
  size_t size;
  /* Models are read whole by the loader as well; 2 GiB is protobuf's cap. */
  if (cli_read_file(model_path, (size_t)1 << 31, &data, &size, err))
    return KESTREL_ERROR_IO;
  char sha[65];
  kn_sha256_hex(data, size, sha);
  free(data);
  char path[4096];
  kestrel_status st = kestrel_sidecar_find(model_path, sha, cli_asset_dir(),
                                           path, sizeof(path), err);
  if (st)
    return st;
  return kestrel_sidecar_load(path, sc, err);
}

/* The sidecar's input size as input 0's shape, for models whose input
 * has dynamic dimensions. Returns 0 when lo was set. */
int cli_shape_from_sidecar(const char *model_path, kestrel_load_options *lo) {
  kestrel_sidecar sc;
  kestrel_error err;
  if (cli_load_sidecar(model_path, NULL, &sc, &err))
    return -1;
  int w = sc.width, h = sc.height;
  if (sc.resize == KESTREL_RESIZE_MULTIPLE && (w < 1 || h < 1))
    w = h = sc.limit_side - sc.limit_side % sc.multiple;
  int set = w > 0 && h > 0;
  if (set) {
    int64_t nchw[4] = {1, 3, h, w}, nhwc[4] = {1, h, w, 3};
    memcpy(lo->input_shape, sc.layout == KESTREL_LAYOUT_NHWC ? nhwc : nchw,
           sizeof(nchw));
    lo->input_shape_ndim = 4;
  }
  kestrel_sidecar_free(&sc);
  return set ? 0 : -1;
}

/* Loads a model; when that fails on a dynamic input and no shape was
 * given, retries with the sidecar's input size. */
kestrel_status cli_load_model(const char *path, kestrel_load_options *lo,
                              kestrel_model **model, kestrel_error *err) {
  kestrel_status st = kestrel_model_load(path, lo, model, err);
  if (st == KESTREL_ERROR_SHAPE && lo->input_shape_ndim == 0 &&
      cli_shape_from_sidecar(path, lo) == 0)
    st = kestrel_model_load(path, lo, model, err);
  return st;
}

kestrel_status cli_prepare_model(kestrel_model *model, int optimize,
                                 kestrel_error *err) {
  if (!optimize ||
      kestrel_model_source_format(model) == KESTREL_FORMAT_KESTREL)
    return KESTREL_OK;
  kestrel_compile_options co = kestrel_compile_options_default();
  return kestrel_model_optimize(model, &co, err);
}

void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (*p < 0x20)
        fprintf(f, "\\u%04x", *p);
      else
        fputc(*p, f);
    }
  }
  fputc('"', f);
}

const char *dtype_name_json(kestrel_dtype d) {
  return kestrel_dtype_name(d);
}
