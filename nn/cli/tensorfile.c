/* Tensor files for `kestrel run`: NumPy .npy (read and write) and ONNX
 * TensorProto .pb (read). Both come from users or test suites, so every
 * header field and size is checked against the bytes actually present.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#ifdef KESTREL_HAVE_ONNX
#include "onnx.pb-c.h"
#endif

/* Inputs larger than this are not images or test vectors. */
#define TENSOR_FILE_MAX ((size_t)1 << 31)

void cli_tensor_free(cli_tensor *t) {
  if (!t)
    return;
  free(t->data);
  memset(t, 0, sizeof(*t));
}

static kestrel_status fail(kestrel_error *err, kestrel_status st,
                           const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kestrel_status fail(kestrel_error *err, kestrel_status st,
                           const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  return st;
}

/* Element count with overflow checks; -1 when dims are bad. */
static int64_t checked_numel(int ndim, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (dims[i] < 0)
      return -1;
    if (dims[i] > 0 && n > INT64_MAX / dims[i])
      return -1;
    n *= dims[i];
  }
  return n;
}

/* --- .npy ----------------------------------------------------------------- */

static const struct {
  const char *descr; /* without the byte-order character */
  kestrel_dtype dtype;
} npy_types[] = {
    {"f4", KESTREL_DTYPE_F32}, {"f2", KESTREL_DTYPE_F16},
    {"f8", KESTREL_DTYPE_F64}, {"i1", KESTREL_DTYPE_I8},
    {"u1", KESTREL_DTYPE_U8},  {"i2", KESTREL_DTYPE_I16},
    {"i4", KESTREL_DTYPE_I32}, {"i8", KESTREL_DTYPE_I64},
    {"b1", KESTREL_DTYPE_BOOL},
};

/* Finds 'key' in the header dict and returns a pointer just past the ':'
 * that follows it, NULL when absent. */
static const char *dict_value(const char *hdr, const char *key) {
  char quoted[32];
  for (int q = 0; q < 2; q++) {
    snprintf(quoted, sizeof(quoted), q ? "\"%s\"" : "'%s'", key);
    const char *p = strstr(hdr, quoted);
    if (!p)
      continue;
    p += strlen(quoted);
    while (*p == ' ')
      p++;
    if (*p != ':')
      return NULL;
    p++;
    while (*p == ' ')
      p++;
    return p;
  }
  return NULL;
}

kestrel_status npy_parse(const uint8_t *data, size_t size, const char *name,
                         cli_tensor *out, kestrel_error *err) {
  memset(out, 0, sizeof(*out));
  if (size < 10 || memcmp(data, "\x93NUMPY", 6))
    return fail(err, KESTREL_ERROR_MALFORMED,
                "%s: not a .npy file (bad magic at byte 0)", name);
  int major = data[6];
  size_t hlen, hstart;
  if (major == 1) {
    hlen = data[8] | (size_t)data[9] << 8;
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12)
      return fail(err, KESTREL_ERROR_MALFORMED, "%s: truncated header", name);
    hlen = data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 |
           (size_t)data[11] << 24;
    hstart = 12;
  } else {
    return fail(err, KESTREL_ERROR_UNSUPPORTED,
                "%s: .npy version %d at byte 6 not supported", name, major);
  }
  if (hlen > size - hstart || hlen > 65536)
    return fail(err, KESTREL_ERROR_MALFORMED,
                "%s: header length %zu at byte 8 exceeds the file (%zu bytes)",
                name, hlen, size);
  char hdr[65537];
  memcpy(hdr, data + hstart, hlen);
  hdr[hlen] = '\0';
  if (strlen(hdr) != hlen)
    return fail(err, KESTREL_ERROR_MALFORMED, "%s: NUL byte in header", name);

  const char *d = dict_value(hdr, "descr");
  if (!d || (*d != '\'' && *d != '"'))
    return fail(err, KESTREL_ERROR_MALFORMED, "%s: header has no 'descr'",
                name);
  char quote = *d++;
  const char *dend = strchr(d, quote);
  if (!dend || dend - d < 2 || dend - d > 8)
    return fail(err, KESTREL_ERROR_MALFORMED, "%s: bad 'descr'", name);
  char descr[16];
  memcpy(descr, d, (size_t)(dend - d));
  descr[dend - d] = '\0';
  char order = descr[0];
  const char *code = descr + 1;
  if (order != '<' && order != '|' && order != '=')
    return fail(err, KESTREL_ERROR_UNSUPPORTED,
                "%s: dtype '%s' is not little-endian", name, descr);
  out->dtype = KESTREL_DTYPE_UNDEFINED;
  for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++)
    if (!strcmp(code, npy_types[i].descr))
      out->dtype = npy_types[i].dtype;
  if (out->dtype == KESTREL_DTYPE_UNDEFINED)
    return fail(err, KESTREL_ERROR_UNSUPPORTED, "%s: dtype '%s' not supported",
                name, descr);

  const char *fo = dict_value(hdr, "fortran_order");
  if (!fo)
    return fail(err, KESTREL_ERROR_MALFORMED,
                "%s: header has no 'fortran_order'", name);
  if (!strncmp(fo, "True", 4))
    return fail(err, KESTREL_ERROR_UNSUPPORTED,
                "%s: Fortran-order arrays not supported", name);
  if (strncmp(fo, "False", 5))
    return fail(err, KESTREL_ERROR_MALFORMED, "%s: bad 'fortran_order'",
                name);

  const char *sh = dict_value(hdr, "shape");
  if (!sh || *sh != '(')
    return fail(err, KESTREL_ERROR_MALFORMED, "%s: header has no 'shape'",
                name);
  sh++;
  for (;;) {
    while (*sh == ' ' || *sh == ',')
      sh++;
    if (*sh == ')')
      break;
    if (!isdigit((unsigned char)*sh))
      return fail(err, KESTREL_ERROR_MALFORMED, "%s: bad 'shape'", name);
    if (out->ndim >= KESTREL_MAX_DIMS)
      return fail(err, KESTREL_ERROR_UNSUPPORTED,
                  "%s: more than %d dimensions", name, KESTREL_MAX_DIMS);
    char *end;
    errno = 0;
    long long v = strtoll(sh, &end, 10);
    if (errno || v < 0)
      return fail(err, KESTREL_ERROR_MALFORMED, "%s: bad dimension", name);
    out->dims[out->ndim++] = v;
    sh = end;
    while (*sh == ' ')
      sh++;
    if (*sh != ',' && *sh != ')')
      return fail(err, KESTREL_ERROR_MALFORMED, "%s: bad 'shape'", name);
  }
  int64_t n = checked_numel(out->ndim, out->dims);
  size_t item = kestrel_dtype_size(out->dtype);
  size_t avail = size - hstart - hlen;
  if (n < 0 || (uint64_t)n > avail / item)
    return fail(err, KESTREL_ERROR_MALFORMED,
                "%s: shape needs more data than the %zu bytes after the "
                "header at byte %zu",
                name, avail, hstart + hlen);
  out->bytes = (size_t)n * item;
  out->data = malloc(out->bytes ? out->bytes : 1);
  if (!out->data)
    return fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "%s: out of memory", name);
  memcpy(out->data, data + hstart + hlen, out->bytes);
  return KESTREL_OK;
}

kestrel_status npy_load(const char *path, cli_tensor *out, kestrel_error *err) {
  uint8_t *data;
  size_t size;
  if (cli_read_file(path, TENSOR_FILE_MAX, &data, &size, err))
    return KESTREL_ERROR_IO;
  kestrel_status st = npy_parse(data, size, path, out, err);
  free(data);
  return st;
}

kestrel_status npy_save(const char *path, const kestrel_tensor *t,
                        kestrel_error *err) {
  const char *descr;
  kestrel_dtype out_dtype = t->dtype;
  switch (t->dtype) {
  case KESTREL_DTYPE_F32:
  case KESTREL_DTYPE_F16:
  case KESTREL_DTYPE_F64:
    descr = "<f4";
    out_dtype = KESTREL_DTYPE_F32;
    break;
  case KESTREL_DTYPE_I8: descr = "|i1"; break;
  case KESTREL_DTYPE_U8: descr = "|u1"; break;
  case KESTREL_DTYPE_I16: descr = "<i2"; break;
  case KESTREL_DTYPE_I32: descr = "<i4"; break;
  case KESTREL_DTYPE_I64: descr = "<i8"; break;
  case KESTREL_DTYPE_BOOL: descr = "|b1"; break;
  default:
    return fail(err, KESTREL_ERROR_UNSUPPORTED, "%s: cannot write dtype %s",
                path, kestrel_dtype_name(t->dtype));
  }
  char shape[256] = "";
  size_t len = 0;
  for (int i = 0; i < t->ndim; i++)
    len += (size_t)snprintf(shape + len, sizeof(shape) - len, "%lld,%s",
                            (long long)t->dims[i],
                            i + 1 < t->ndim ? " " : "");
  if (t->ndim > 1) /* Python writes (3,) for rank 1 only */
    shape[len - 1] = '\0';
  char hdr[512];
  int hl = snprintf(hdr, sizeof(hdr),
                    "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                    descr, shape);
  /* Pad with spaces so data starts on a 64-byte boundary; end with \n. */
  size_t total = 10 + (size_t)hl + 1;
  size_t pad = (64 - total % 64) % 64;
  memset(hdr + hl, ' ', pad);
  hdr[hl + pad] = '\n';
  size_t hlen = (size_t)hl + pad + 1;
  FILE *f = fopen(path, "wb");
  if (!f)
    return fail(err, KESTREL_ERROR_IO, "%s: %s", path, strerror(errno));
  uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff),
                     (uint8_t)(hlen >> 8)};
  fwrite(pre, 1, 10, f);
  fwrite(hdr, 1, hlen, f);
  size_t n = kestrel_tensor_numel(t);
  if (out_dtype == t->dtype) {
    fwrite(t->data, 1, n * kestrel_dtype_size(t->dtype), f);
  } else {
    for (size_t i = 0; i < n; i++) {
      float v = t->dtype == KESTREL_DTYPE_F16
                    ? kestrel_f16_to_f32(((const uint16_t *)t->data)[i])
                    : (float)((const double *)t->data)[i];
      fwrite(&v, sizeof(v), 1, f);
    }
  }
  if (ferror(f) | fclose(f))
    return fail(err, KESTREL_ERROR_IO, "%s: write failed", path);
  return KESTREL_OK;
}

/* --- ONNX TensorProto ----------------------------------------------------- */

#ifdef KESTREL_HAVE_ONNX

static kestrel_dtype onnx_dtype(int32_t t) {
  switch (t) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return KESTREL_DTYPE_F32;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return KESTREL_DTYPE_U8;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return KESTREL_DTYPE_I8;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: return KESTREL_DTYPE_I16;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return KESTREL_DTYPE_I32;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return KESTREL_DTYPE_I64;
  case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return KESTREL_DTYPE_BOOL;
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return KESTREL_DTYPE_F16;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return KESTREL_DTYPE_F64;
  default: return KESTREL_DTYPE_UNDEFINED;
  }
}

kestrel_status pb_load(const char *path, cli_tensor *out, kestrel_error *err) {
  memset(out, 0, sizeof(*out));
  uint8_t *data;
  size_t size;
  if (cli_read_file(path, TENSOR_FILE_MAX, &data, &size, err))
    return KESTREL_ERROR_IO;
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, data);
  free(data);
  if (!tp)
    return fail(err, KESTREL_ERROR_MALFORMED,
                "%s: not a protobuf TensorProto", path);
  kestrel_status st = KESTREL_OK;
  /* Sequence/Optional protos also "parse" as TensorProto; they carry no
   * data_type, which is how we tell. */
  if (!tp->has_data_type) {
    st = fail(err, KESTREL_ERROR_UNSUPPORTED,
              "%s: no data_type: not a plain tensor (sequence/optional?)",
              path);
    goto done;
  }
  out->dtype = onnx_dtype(tp->data_type);
  if (out->dtype == KESTREL_DTYPE_UNDEFINED) {
    st = fail(err, KESTREL_ERROR_UNSUPPORTED, "%s: data_type %d not supported",
              path, (int)tp->data_type);
    goto done;
  }
  if (tp->n_dims > KESTREL_MAX_DIMS) {
    st = fail(err, KESTREL_ERROR_UNSUPPORTED, "%s: %zu dimensions", path,
              tp->n_dims);
    goto done;
  }
  out->ndim = (int)tp->n_dims;
  for (size_t i = 0; i < tp->n_dims; i++)
    out->dims[i] = tp->dims[i];
  int64_t n = checked_numel(out->ndim, out->dims);
  size_t item = kestrel_dtype_size(out->dtype);
  if (n < 0 || (uint64_t)n > TENSOR_FILE_MAX / item) {
    st = fail(err, KESTREL_ERROR_MALFORMED, "%s: bad dims", path);
    goto done;
  }
  out->bytes = (size_t)n * item;
  out->data = calloc(out->bytes ? out->bytes : 1, 1);
  if (!out->data) {
    st = fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
    goto done;
  }
  if (tp->has_raw_data) {
    if (tp->raw_data.len != out->bytes) {
      st = fail(err, KESTREL_ERROR_MALFORMED,
                "%s: raw_data has %zu bytes, dims need %zu", path,
                tp->raw_data.len, out->bytes);
      goto done;
    }
    if (out->bytes)
      memcpy(out->data, tp->raw_data.data, out->bytes);
    goto done;
  }
  /* Typed repeated fields: which one holds what is fixed by onnx.proto. */
  size_t have;
  switch (out->dtype) {
  case KESTREL_DTYPE_F32:
    have = tp->n_float_data;
    if (have == (size_t)n && n)
      memcpy(out->data, tp->float_data, out->bytes);
    break;
  case KESTREL_DTYPE_F64:
    have = tp->n_double_data;
    if (have == (size_t)n && n)
      memcpy(out->data, tp->double_data, out->bytes);
    break;
  case KESTREL_DTYPE_I64:
    have = tp->n_int64_data;
    if (have == (size_t)n && n)
      memcpy(out->data, tp->int64_data, out->bytes);
    break;
  default:
    have = tp->n_int32_data;
    if (have == (size_t)n) {
      for (size_t i = 0; i < have; i++) {
        int32_t v = tp->int32_data[i];
        switch (out->dtype) {
        case KESTREL_DTYPE_I32: ((int32_t *)out->data)[i] = v; break;
        case KESTREL_DTYPE_I16: ((int16_t *)out->data)[i] = (int16_t)v; break;
        case KESTREL_DTYPE_F16: ((uint16_t *)out->data)[i] = (uint16_t)v; break;
        case KESTREL_DTYPE_I8: ((int8_t *)out->data)[i] = (int8_t)v; break;
        default: ((uint8_t *)out->data)[i] = (uint8_t)v; break;
        }
      }
    }
    break;
  }
  if (have != (size_t)n)
    st = fail(err, KESTREL_ERROR_MALFORMED,
              "%s: %zu values stored, dims need %lld", path, have,
              (long long)n);
done:
  onnx__tensor_proto__free_unpacked(tp, NULL);
  if (st)
    cli_tensor_free(out);
  return st;
}

#else /* !KESTREL_HAVE_ONNX */

kestrel_status pb_load(const char *path, cli_tensor *out, kestrel_error *err) {
  memset(out, 0, sizeof(*out));
  return fail(err, KESTREL_ERROR_UNSUPPORTED,
              "%s: .pb tensors: built without ONNX support (meson -Donnx)",
              path);
}

#endif
