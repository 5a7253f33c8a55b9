/* ONNX backend node tests (Debian libonnx-testdata) run through Kestrel:
 * each test directory's model.onnx is loaded, every test_data_set_* is fed
 * in and the outputs are compared with the reference outputs.
 *
 *   onnx_conformance [DATA_DIR] [--filter=SUBSTR] [--known=FILE]
 *                    [--min-pass=N] [--no-fork] [-v]
 *
 * A model Kestrel rejects as UNSUPPORTED is skipped (the op is counted in a
 * histogram); anything else that goes wrong is a failure. Each model runs in
 * a child process so that a crash or a hang fails one test, not the run.
 * Exit status: non-zero on any failure not listed in the known-failures
 * file, or when fewer than --min-pass tests (default 250) pass.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kestrel/model.h>
#include <kestrel/run.h>

#include "onnx.pb-c.h"

#define DEFAULT_DATA_DIR "/usr/share/libonnx-testdata/data/node"
#define RTOL 1e-3
#define ATOL 1e-5
#define PER_MODEL_TIMEOUT_S 60
#define MAX_FILE_BYTES ((size_t)256 << 20)

/* ---- small utilities ---------------------------------------------------- */

static uint8_t *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
      (uint64_t)sb.st_size > MAX_FILE_BYTES) {
    fclose(f);
    return NULL;
  }
  size_t n = (size_t)sb.st_size;
  uint8_t *buf = malloc(n + 1);
  if (buf && n && fread(buf, 1, n, f) != n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *size = n;
  return buf;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entries of dir whose names start with prefix; count in *n. */
static char **list_dir(const char *dir, const char *prefix, size_t *n) {
  *n = 0;
  DIR *d = opendir(dir);
  if (!d)
    return NULL;
  char **names = NULL;
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
      continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 64;
      char **grown = realloc(names, cap * sizeof(char *));
      if (!grown)
        break;
      names = grown;
    }
    names[(*n)++] = strdup(e->d_name);
  }
  closedir(d);
  if (names)
    qsort(names, *n, sizeof(char *), cmp_str);
  return names;
}

static void free_list(char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

/* ---- reference tensors -------------------------------------------------- */

typedef struct ref_tensor {
  kestrel_dtype dtype;
  int ndim;
  int64_t dims[KESTREL_MAX_DIMS];
  size_t numel;
  void *data; /* malloc'd, numel * dtype size (+1) */
} ref_tensor;

static kestrel_dtype dtype_from_onnx(int32_t t) {
  switch (t) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return KESTREL_DTYPE_F32;
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return KESTREL_DTYPE_F16;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return KESTREL_DTYPE_I8;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return KESTREL_DTYPE_U8;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: return KESTREL_DTYPE_I16;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return KESTREL_DTYPE_I32;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return KESTREL_DTYPE_I64;
  case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return KESTREL_DTYPE_BOOL;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return KESTREL_DTYPE_F64;
  default: return KESTREL_DTYPE_UNDEFINED;
  }
}

/* Decodes a TensorProto file. Returns NULL on success, else why not;
 * *unsupported tells a data type Kestrel lacks (a skip) from broken data. */
static const char *load_ref_tensor(const char *path, ref_tensor *out,
                                   bool *unsupported) {
  memset(out, 0, sizeof(*out));
  *unsupported = false;
  size_t size;
  uint8_t *bytes = read_file(path, &size);
  if (!bytes)
    return "cannot read file";
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, bytes);
  free(bytes);
  if (!tp)
    return "not a TensorProto";
  const char *why = NULL;
  out->dtype = dtype_from_onnx(tp->has_data_type ? tp->data_type : 0);
  size_t es = kestrel_dtype_size(out->dtype);
  out->numel = 1;
  if (out->dtype == KESTREL_DTYPE_UNDEFINED) {
    static const char *const names[] = {
        "UNDEFINED", "FLOAT", "UINT8",  "INT8",   "UINT16",    "INT16",
        "INT32",     "INT64", "STRING", "BOOL",   "FLOAT16",   "DOUBLE",
        "UINT32",    "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
    int32_t t = tp->has_data_type ? tp->data_type : 0;
    why = t >= 0 && (size_t)t < sizeof(names) / sizeof(names[0])
              ? names[t]
              : "an unknown data type";
    *unsupported = true;
    goto done;
  }
  if (tp->n_dims > KESTREL_MAX_DIMS || tp->segment || tp->n_external_data) {
    why = "unsupported tensor layout";
    goto done;
  }
  out->ndim = (int)tp->n_dims;
  for (int i = 0; i < out->ndim; i++) {
    if (tp->dims[i] < 0 || tp->dims[i] > (1 << 28)) {
      why = "bad dimension";
      goto done;
    }
    out->dims[i] = tp->dims[i];
    out->numel *= (size_t)tp->dims[i];
  }
  if (out->numel > ((size_t)1 << 28)) {
    why = "too large";
    goto done;
  }
  out->data = calloc(out->numel * es + 1, 1);
  if (!out->data) {
    why = "out of memory";
    goto done;
  }
  if (tp->has_raw_data) {
    if (tp->raw_data.len != out->numel * es) {
      why = "raw_data size does not match the shape";
      goto done;
    }
    if (out->numel)
      memcpy(out->data, tp->raw_data.data, tp->raw_data.len);
    goto done;
  }
  size_t have;
  switch (out->dtype) {
  case KESTREL_DTYPE_F32: have = tp->n_float_data; break;
  case KESTREL_DTYPE_I64: have = tp->n_int64_data; break;
  case KESTREL_DTYPE_F64: have = tp->n_double_data; break;
  default: have = tp->n_int32_data; break;
  }
  if (have != out->numel) {
    why = "typed data count does not match the shape";
    goto done;
  }
  for (size_t i = 0; i < out->numel; i++) {
    switch (out->dtype) {
    case KESTREL_DTYPE_F32: ((float *)out->data)[i] = tp->float_data[i]; break;
    case KESTREL_DTYPE_I64: ((int64_t *)out->data)[i] = tp->int64_data[i]; break;
    case KESTREL_DTYPE_F64: ((double *)out->data)[i] = tp->double_data[i]; break;
    case KESTREL_DTYPE_I32: ((int32_t *)out->data)[i] = tp->int32_data[i]; break;
    case KESTREL_DTYPE_F16:
    case KESTREL_DTYPE_I16:
      ((uint16_t *)out->data)[i] = (uint16_t)tp->int32_data[i];
      break;
    default: ((uint8_t *)out->data)[i] = (uint8_t)tp->int32_data[i]; break;
    }
  }
done:
  onnx__tensor_proto__free_unpacked(tp, NULL);
  if (why) {
    free(out->data);
    out->data = NULL;
  }
  return why;
}

static double element(kestrel_dtype dt, const void *p, size_t i) {
  switch (dt) {
  case KESTREL_DTYPE_F32: return ((const float *)p)[i];
  case KESTREL_DTYPE_F16: return kestrel_f16_to_f32(((const uint16_t *)p)[i]);
  case KESTREL_DTYPE_F64: return ((const double *)p)[i];
  case KESTREL_DTYPE_I8: return ((const int8_t *)p)[i];
  case KESTREL_DTYPE_U8: return ((const uint8_t *)p)[i];
  case KESTREL_DTYPE_I16: return ((const int16_t *)p)[i];
  case KESTREL_DTYPE_I32: return ((const int32_t *)p)[i];
  case KESTREL_DTYPE_I64: return (double)((const int64_t *)p)[i];
  case KESTREL_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
  default: return NAN;
  }
}

static int dtype_class(kestrel_dtype dt) {
  switch (dt) {
  case KESTREL_DTYPE_F32:
  case KESTREL_DTYPE_F16:
  case KESTREL_DTYPE_F64: return 1;
  case KESTREL_DTYPE_BOOL: return 2;
  default: return 3;
  }
}

static bool close_enough(double got, double want) {
  if (isnan(want) || isnan(got))
    return isnan(want) && isnan(got);
  if (isinf(want) || isinf(got))
    return got == want;
  return fabs(got - want) <= ATOL + RTOL * fabs(want);
}

/* Compares one output; on mismatch writes why into msg and returns false. */
static bool compare(const kestrel_tensor *got, const ref_tensor *want,
                    char *msg, size_t cap) {
  if (dtype_class(got->dtype) != dtype_class(want->dtype)) {
    snprintf(msg, cap, "dtype %s, expected %s", kestrel_dtype_name(got->dtype),
             kestrel_dtype_name(want->dtype));
    return false;
  }
  bool same_shape = got->ndim == want->ndim;
  for (int d = 0; same_shape && d < got->ndim; d++)
    same_shape = got->dims[d] == want->dims[d];
  if (!same_shape) {
    char a[128] = "", b[128] = "";
    for (int d = 0; d < got->ndim && d < KESTREL_MAX_DIMS; d++)
      snprintf(a + strlen(a), sizeof(a) - strlen(a), "%s%lld", d ? "," : "",
               (long long)got->dims[d]);
    for (int d = 0; d < want->ndim; d++)
      snprintf(b + strlen(b), sizeof(b) - strlen(b), "%s%lld", d ? "," : "",
               (long long)want->dims[d]);
    snprintf(msg, cap, "shape [%s], expected [%s]", a, b);
    return false;
  }
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < want->numel; i++) {
    double g = element(got->dtype, got->data, i);
    double w = element(want->dtype, want->data, i);
    if (!close_enough(g, w)) {
      if (!bad)
        first = i;
      bad++;
      double e = fabs(g - w);
      if (!(e <= worst))
        worst = e;
    }
  }
  if (bad) {
    snprintf(msg, cap,
             "%zu of %zu values differ; first at %zu: got %.9g, expected "
             "%.9g; worst |diff| %.3g",
             bad, want->numel, first, element(got->dtype, got->data, first),
             element(want->dtype, want->data, first), worst);
    return false;
  }
  return true;
}

/* ---- one model ---------------------------------------------------------- */

/* Results travel from the child to the parent as lines on a pipe:
 * "<P|F|S>\t<test>\t<op for skips>\t<detail>\n". */
static FILE *result_out;

static void report(char kind, const char *test, const char *op,
                   const char *fmt, ...) {
  char detail[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof(detail), fmt, ap);
  va_end(ap);
  for (char *c = detail; *c; c++)
    if (*c == '\n' || *c == '\t')
      *c = ' ';
  fprintf(result_out, "%c\t%s\t%s\t%s\n", kind, test, op && *op ? op : "-",
          detail);
  fflush(result_out);
}

/* The op a rejection is about: "unsupported op 'X'" or "node 'N' (X):",
 * else the model's first node. */
static void op_from_message(const char *msg, const char *fallback, char *op,
                            size_t cap) {
  const char *p = strstr(msg, "unsupported op '");
  if (p) {
    p += strlen("unsupported op '");
    size_t n = strcspn(p, "'");
    snprintf(op, cap, "%.*s", (int)n, p);
    return;
  }
  if (strncmp(msg, "node '", 6) == 0) {
    const char *q = strstr(msg, "' (");
    if (q) {
      q += 3;
      size_t n = strcspn(q, ")");
      snprintf(op, cap, "%.*s", (int)n, q);
      return;
    }
  }
  snprintf(op, cap, "%s", fallback);
}

static bool is_initializer(const Onnx__GraphProto *g, const char *name) {
  for (size_t i = 0; i < g->n_initializer; i++)
    if (g->initializer[i] && g->initializer[i]->name &&
        strcmp(g->initializer[i]->name, name) == 0)
      return true;
  return false;
}

/* Fixes the model's dynamic input dims to the test data's shapes, since
 * load options can only shape input 0. Returns false if it cannot. */
static bool fix_input_shape(Onnx__ValueInfoProto *vi, const ref_tensor *r) {
  Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
  bool unknown_rank = !tt->shape; /* a shape with no dims is a scalar */
  if (unknown_rank) {
    tt->shape = malloc(sizeof(*tt->shape));
    if (!tt->shape)
      return false;
    onnx__tensor_shape_proto__init(tt->shape);
  }
  Onnx__TensorShapeProto *sh = tt->shape;
  if (unknown_rank && r->ndim > 0) {
    sh->dim = calloc((size_t)r->ndim, sizeof(*sh->dim));
    if (!sh->dim)
      return false;
    for (int d = 0; d < r->ndim; d++) {
      sh->dim[d] = malloc(sizeof(*sh->dim[d]));
      if (!sh->dim[d])
        return false;
      onnx__tensor_shape_proto__dimension__init(sh->dim[d]);
      sh->n_dim++;
    }
  }
  if ((int)sh->n_dim != r->ndim)
    return false;
  for (int d = 0; d < r->ndim; d++) {
    Onnx__TensorShapeProto__Dimension *dim = sh->dim[d];
    if (dim->value_case ==
        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
      continue;
    if (dim->value_case ==
        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
      free(dim->dim_param);
    dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    dim->dim_value = r->dims[d];
  }
  return true;
}

static int32_t onnx_from_dtype(kestrel_dtype dt) {
  switch (dt) {
  case KESTREL_DTYPE_F32: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  case KESTREL_DTYPE_F16: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
  case KESTREL_DTYPE_I8: return ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
  case KESTREL_DTYPE_U8: return ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
  case KESTREL_DTYPE_I16: return ONNX__TENSOR_PROTO__DATA_TYPE__INT16;
  case KESTREL_DTYPE_I32: return ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
  case KESTREL_DTYPE_I64: return ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
  case KESTREL_DTYPE_BOOL: return ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
  case KESTREL_DTYPE_F64: return ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
  default: return ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED;
  }
}

/* Appends r as an initializer called name (memory as protobuf-c's default
 * allocator would have it, so free_unpacked releases it). */
static bool add_initializer(Onnx__GraphProto *g, const char *name,
                            const ref_tensor *r) {
  Onnx__TensorProto **grown =
      realloc(g->initializer, (g->n_initializer + 1) * sizeof(*grown));
  if (!grown)
    return false;
  g->initializer = grown;
  Onnx__TensorProto *tp = malloc(sizeof(*tp));
  if (!tp)
    return false;
  onnx__tensor_proto__init(tp);
  g->initializer[g->n_initializer++] = tp;
  size_t bytes = r->numel * kestrel_dtype_size(r->dtype);
  tp->name = strdup(name);
  tp->dims = malloc(sizeof(int64_t) * ((size_t)r->ndim + 1));
  tp->raw_data.data = malloc(bytes + 1);
  if (!tp->name || !tp->dims || !tp->raw_data.data)
    return false;
  tp->has_data_type = 1;
  tp->data_type = onnx_from_dtype(r->dtype);
  tp->n_dims = (size_t)r->ndim;
  memcpy(tp->dims, r->dims, sizeof(int64_t) * (size_t)r->ndim);
  tp->has_raw_data = 1;
  tp->raw_data.len = bytes;
  if (bytes)
    memcpy(tp->raw_data.data, r->data, bytes);
  return true;
}

/* A rejection that baking inputs into the model could cure. */
static bool needs_constant(const char *msg) {
  return strstr(msg, "not a constant") || strstr(msg, "known at load time") ||
         strstr(msg, "must be a constant") || strstr(msg, "dynamic shape");
}

/* Loads the model with graph input i shaped as inputs[i], or turned into an
 * initializer holding inputs[i] when bake[i], and creates a session. */
static kestrel_status load_variant(const uint8_t *bytes, size_t size,
                                   const ref_tensor *inputs, size_t n_inputs,
                                   const bool *bake, kestrel_model **model,
                                   kestrel_session **session,
                                   kestrel_error *err) {
  kestrel_session_free(*session);
  kestrel_model_free(*model);
  *session = NULL;
  *model = NULL;
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, bytes);
  if (!mp || !mp->graph) {
    if (mp)
      onnx__model_proto__free_unpacked(mp, NULL);
    snprintf(err->message, sizeof(err->message), "runner: cannot reparse");
    return KESTREL_ERROR_INTERNAL;
  }
  Onnx__GraphProto *g = mp->graph;
  kestrel_status st = KESTREL_OK;
  size_t k = 0, kept = 0;
  for (size_t i = 0; i < g->n_input; i++) {
    Onnx__ValueInfoProto *vi = g->input[i];
    if (is_initializer(g, vi->name) || k >= n_inputs) {
      g->input[kept++] = vi;
      continue;
    }
    size_t idx = k++;
    if (bake[idx]) {
      if (!add_initializer(g, vi->name, &inputs[idx])) {
        snprintf(err->message, sizeof(err->message), "runner: out of memory");
        st = KESTREL_ERROR_OUT_OF_MEMORY;
      }
      onnx__value_info_proto__free_unpacked(vi, NULL);
      continue;
    }
    g->input[kept++] = vi;
    if (st == KESTREL_OK && !fix_input_shape(vi, &inputs[idx])) {
      snprintf(err->message, sizeof(err->message),
               "runner: input '%s' has rank %d in the test data, the model "
               "disagrees",
               vi->name, inputs[idx].ndim);
      st = KESTREL_ERROR_SHAPE;
    }
  }
  g->n_input = kept;
  uint8_t *packed = NULL;
  size_t packed_size = 0;
  if (st == KESTREL_OK) {
    packed_size = onnx__model_proto__get_packed_size(mp);
    packed = malloc(packed_size + 1);
    if (!packed) {
      snprintf(err->message, sizeof(err->message), "runner: out of memory");
      st = KESTREL_ERROR_OUT_OF_MEMORY;
    }
  }
  if (st == KESTREL_OK) {
    onnx__model_proto__pack(mp, packed);
    kestrel_load_options opts = kestrel_load_options_default();
    opts.format = KESTREL_FORMAT_ONNX;
    st = kestrel_model_load_memory(packed, packed_size, &opts, model, err);
  }
  if (st == KESTREL_OK)
    st = kestrel_session_create(*model, NULL, session, err);
  free(packed);
  onnx__model_proto__free_unpacked(mp, NULL);
  return st;
}

static bool verbose;

static void run_data_set(const char *test, const char *model_path,
                         const char *set_dir, const char *first_op,
                         bool *failed, bool *skipped, bool *baked) {
  char label[600];
  snprintf(label, sizeof(label), "%s/%s", test, strrchr(set_dir, '/') + 1);
  size_t mp_size = 0;
  uint8_t *mp_bytes = read_file(model_path, &mp_size);
  Onnx__ModelProto *mp =
      mp_bytes ? onnx__model_proto__unpack(NULL, mp_size, mp_bytes) : NULL;
  bool *bake = NULL;
  ref_tensor *inputs = NULL, *outputs = NULL;
  size_t n_in_files = 0, n_out_files = 0;
  char **in_files = list_dir(set_dir, "input_", &n_in_files);
  char **out_files = list_dir(set_dir, "output_", &n_out_files);
  kestrel_model *model = NULL;
  kestrel_session *session = NULL;
  kestrel_error err;
  err.message[0] = '\0';
  char path[4096], msg[800];

  if (!mp || !mp->graph) {
    report('F', label, first_op, "the runner cannot parse model.onnx");
    *failed = true;
    goto done;
  }
  Onnx__GraphProto *g = mp->graph;
  /* Sequence, map and optional values also "parse" as TensorProto files;
   * the model's declared types tell them apart. */
  for (size_t i = 0; i < g->n_input + g->n_output; i++) {
    Onnx__ValueInfoProto *vi =
        i < g->n_input ? g->input[i] : g->output[i - g->n_input];
    if (i < g->n_input && is_initializer(g, vi->name))
      continue;
    if (!vi->type ||
        vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
      report('S', label, "<non-tensor value>",
             "'%s' is a sequence, map or optional", vi->name);
      *skipped = true;
      goto done;
    }
  }
  inputs = calloc(n_in_files + 1, sizeof(*inputs));
  outputs = calloc(n_out_files + 1, sizeof(*outputs));
  if (!inputs || !outputs) {
    report('F', label, first_op, "out of memory");
    *failed = true;
    goto done;
  }
  for (size_t i = 0; i < n_in_files; i++) {
    snprintf(path, sizeof(path), "%s/%s", set_dir, in_files[i]);
    bool unsupported;
    const char *why = load_ref_tensor(path, &inputs[i], &unsupported);
    if (why) {
      report(unsupported ? 'S' : 'F', label, "<test data dtype>", "%s: %s",
             in_files[i], why);
      *(unsupported ? skipped : failed) = true;
      goto done;
    }
  }
  for (size_t i = 0; i < n_out_files; i++) {
    snprintf(path, sizeof(path), "%s/%s", set_dir, out_files[i]);
    bool unsupported;
    const char *why = load_ref_tensor(path, &outputs[i], &unsupported);
    if (why) {
      report(unsupported ? 'S' : 'F', label, "<test data dtype>", "%s: %s",
             out_files[i], why);
      *(unsupported ? skipped : failed) = true;
      goto done;
    }
  }

  size_t n_graph_inputs = 0;
  for (size_t i = 0; i < g->n_input; i++)
    if (!is_initializer(g, g->input[i]->name))
      n_graph_inputs++;
  if (n_graph_inputs != n_in_files) {
    report('F', label, first_op, "model has %zu inputs, test data %zu",
           n_graph_inputs, n_in_files);
    *failed = true;
    goto done;
  }
  bake = calloc(n_in_files + 1, sizeof(bool));
  if (!bake) {
    report('F', label, first_op, "out of memory");
    *failed = true;
    goto done;
  }
  /* Kestrel fixes every shape at load time, so an input that decides a
   * shape (Reshape's shape, Range's limits, ...) cannot stay an input.
   * When loading says so, the test is retried with the inputs after the
   * first, then all inputs, baked into the model as initializers: that
   * still checks the op (its kernel then runs in constant folding). */
  kestrel_status st = KESTREL_OK;
  char first_error[sizeof(err.message)] = "";
  for (int attempt = 0; attempt < 3; attempt++) {
    if (attempt == 1 && n_in_files < 2)
      continue;
    for (size_t i = 0; i < n_in_files; i++)
      bake[i] = attempt == 2 || (attempt == 1 && i > 0);
    st = load_variant(mp_bytes, mp_size, inputs, n_in_files, bake, &model,
                      &session, &err);
    if (attempt == 0)
      memcpy(first_error, err.message, sizeof(first_error));
    if (st != KESTREL_ERROR_UNSUPPORTED || !needs_constant(err.message))
      break;
  }
  for (size_t i = 0; i < n_in_files; i++)
    *baked |= st == KESTREL_OK && bake[i];
  if (st == KESTREL_ERROR_UNSUPPORTED) {
    /* The first attempt's reason is the real one. */
    const char *why = needs_constant(err.message) ? first_error : err.message;
    char op[128];
    op_from_message(why, first_op, op, sizeof(op));
    report('S', label, op, "%s", why);
    *skipped = true;
    goto done;
  }
  if (st != KESTREL_OK) {
    report('F', label, first_op, "load: %s: %s", kestrel_status_string(st),
           err.message);
    *failed = true;
    goto done;
  }
  size_t n_fed = 0;
  for (size_t i = 0; i < n_in_files; i++)
    n_fed += !bake[i];
  if (kestrel_model_num_inputs(model) != n_fed ||
      kestrel_model_num_outputs(model) != n_out_files) {
    report('F', label, first_op,
           "model has %zu inputs and %zu outputs, test data %zu and %zu",
           kestrel_model_num_inputs(model), kestrel_model_num_outputs(model),
           n_fed, n_out_files);
    *failed = true;
    goto done;
  }
  for (size_t i = 0, k = 0; i < n_in_files; i++) {
    if (bake[i])
      continue;
    kestrel_tensor *in = kestrel_session_input(session, k++);
    const ref_tensor *r = &inputs[i];
    if (in->dtype != r->dtype) {
      report('F', label, first_op, "input %zu is %s, test data is %s", i,
             kestrel_dtype_name(in->dtype), kestrel_dtype_name(r->dtype));
      *failed = true;
      goto done;
    }
    if (kestrel_tensor_numel(in) != r->numel) {
      report('F', label, first_op,
             "input %zu has %zu elements, test data %zu", i,
             kestrel_tensor_numel(in), r->numel);
      *failed = true;
      goto done;
    }
    if (r->numel)
      memcpy(in->data, r->data, r->numel * kestrel_dtype_size(r->dtype));
  }
  st = kestrel_session_run(session, &err);
  if (st == KESTREL_ERROR_UNSUPPORTED) {
    char op[128];
    op_from_message(err.message, first_op, op, sizeof(op));
    report('S', label, op, "run: %s", err.message);
    *skipped = true;
    goto done;
  }
  if (st != KESTREL_OK) {
    report('F', label, first_op, "run: %s: %s", kestrel_status_string(st),
           err.message);
    *failed = true;
    goto done;
  }
  for (size_t i = 0; i < n_out_files; i++) {
    const kestrel_tensor *out = kestrel_session_output(session, i);
    if (!compare(out, &outputs[i], msg, sizeof(msg))) {
      report('F', label, first_op, "output %zu ('%s'): %s", i,
             out->name ? out->name : "?", msg);
      *failed = true;
      goto done;
    }
  }
  if (verbose)
    report('p', label, first_op, "ok");

done:
  kestrel_session_free(session);
  kestrel_model_free(model);
  free(mp_bytes);
  free(bake);
  for (size_t i = 0; inputs && i < n_in_files; i++)
    free(inputs[i].data);
  for (size_t i = 0; outputs && i < n_out_files; i++)
    free(outputs[i].data);
  free(inputs);
  free(outputs);
  free_list(in_files, n_in_files);
  free_list(out_files, n_out_files);
  if (mp)
    onnx__model_proto__free_unpacked(mp, NULL);
}

/* Runs every data set of one test directory; reports one final line. */
static void run_model_dir(const char *data_dir, const char *test) {
  char dir[1024], model_path[1100];
  snprintf(dir, sizeof(dir), "%s/%s", data_dir, test);
  snprintf(model_path, sizeof(model_path), "%s/model.onnx", dir);
  char first_op[128] = "?";
  size_t size;
  uint8_t *bytes = read_file(model_path, &size);
  if (!bytes) {
    report('F', test, "?", "cannot read %s", model_path);
    return;
  }
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, bytes);
  free(bytes);
  if (mp && mp->graph && mp->graph->n_node && mp->graph->node[0]->op_type)
    snprintf(first_op, sizeof(first_op), "%s", mp->graph->node[0]->op_type);
  if (mp)
    onnx__model_proto__free_unpacked(mp, NULL);

  size_t n_sets;
  char **sets = list_dir(dir, "test_data_set_", &n_sets);
  if (n_sets == 0) {
    report('S', test, "<no data>", "no test_data_set_*");
    free_list(sets, n_sets);
    return;
  }
  bool failed = false, skipped = false, baked = false;
  for (size_t i = 0; i < n_sets && !failed && !skipped; i++) {
    char set_dir[2048];
    snprintf(set_dir, sizeof(set_dir), "%s/%s", dir, sets[i]);
    run_data_set(test, model_path, set_dir, first_op, &failed, &skipped,
                 &baked);
  }
  if (!failed && !skipped)
    report('P', test, first_op, "%zu data set(s)%s", n_sets,
           baked ? ", inputs baked as constants" : "");
  free_list(sets, n_sets);
}

/* ---- driver ------------------------------------------------------------- */

typedef struct known_failure {
  char *test;
  bool seen;
} known_failure;

static known_failure *load_known(const char *path, size_t *n) {
  *n = 0;
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f)
    return NULL;
  known_failure *list = NULL;
  size_t cap = 0;
  char line[1024];
  while (fgets(line, sizeof(line), f)) {
    char *p = line + strspn(line, " \t");
    size_t len = strcspn(p, " \t\r\n#");
    if (len == 0)
      continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      known_failure *grown = realloc(list, cap * sizeof(*list));
      if (!grown)
        break;
      list = grown;
    }
    list[*n].test = strndup(p, len);
    list[*n].seen = false;
    (*n)++;
  }
  fclose(f);
  return list;
}

static known_failure *find_known(known_failure *list, size_t n,
                                 const char *test) {
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(list[i].test);
    /* A data-set label "test_x/test_data_set_0" matches "test_x". */
    if (strncmp(test, list[i].test, len) == 0 &&
        (test[len] == '\0' || test[len] == '/'))
      return &list[i];
  }
  return NULL;
}

typedef struct histogram_entry {
  char op[128];
  int count;
} histogram_entry;

static int by_count(const void *a, const void *b) {
  const histogram_entry *x = a, *y = b;
  if (x->count != y->count)
    return y->count - x->count;
  return strcmp(x->op, y->op);
}

int main(int argc, char **argv) {
  const char *data_dir = DEFAULT_DATA_DIR;
  const char *filter = NULL;
  const char *known_path = NULL;
  char known_default[1024];
  long min_pass = 250;
  bool use_fork = true;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--filter=", 9) == 0)
      filter = argv[i] + 9;
    else if (strncmp(argv[i], "--known=", 8) == 0)
      known_path = argv[i] + 8;
    else if (strncmp(argv[i], "--min-pass=", 11) == 0)
      min_pass = strtol(argv[i] + 11, NULL, 10);
    else if (strcmp(argv[i], "--no-fork") == 0)
      use_fork = false;
    else if (strcmp(argv[i], "-v") == 0)
      verbose = true;
    else if (argv[i][0] == '-') {
      fprintf(stderr,
              "usage: %s [DATA_DIR] [--filter=SUBSTR] [--known=FILE] "
              "[--min-pass=N] [--no-fork] [-v]\n",
              argv[0]);
      return 2;
    } else
      data_dir = argv[i];
  }
  if (!known_path && getenv("KESTREL_SOURCE_DIR")) {
    snprintf(known_default, sizeof(known_default),
             "%s/tests/conformance/known_failures.txt",
             getenv("KESTREL_SOURCE_DIR"));
    known_path = known_default;
  }
  size_t n_known;
  known_failure *known = load_known(known_path, &n_known);

  size_t n_tests;
  char **tests = list_dir(data_dir, "test_", &n_tests);
  if (n_tests == 0) {
    fprintf(stderr, "onnx_conformance: no test_* directories in %s\n",
            data_dir);
    return 1;
  }

  int run = 0, passed = 0, passed_baked = 0, failed = 0, known_failed = 0;
  int skipped = 0;
  histogram_entry *hist = calloc(n_tests + 1, sizeof(*hist));
  size_t n_hist = 0;
  for (size_t t = 0; t < n_tests; t++) {
    const char *test = tests[t];
    if (filter && !strstr(test, filter))
      continue;
    char buf[2048];
    FILE *results;
    pid_t pid = -1;
    int fds[2];
    fflush(stdout);
    fflush(stderr);
    if (use_fork) {
      if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
      }
      pid = fork();
      if (pid < 0) {
        perror("fork");
        return 1;
      }
      if (pid == 0) {
        close(fds[0]);
        result_out = fdopen(fds[1], "w");
        alarm(PER_MODEL_TIMEOUT_S);
        run_model_dir(data_dir, test);
        fclose(result_out);
        _exit(0);
      }
      close(fds[1]);
      results = fdopen(fds[0], "r");
    } else {
      results = tmpfile();
      result_out = results;
      run_model_dir(data_dir, test);
      rewind(results);
    }
    bool any = false;
    while (fgets(buf, sizeof(buf), results)) {
      char *fields[4] = {buf, NULL, NULL, NULL};
      for (int k = 1; k < 4; k++) {
        char *tab = fields[k - 1] ? strchr(fields[k - 1], '\t') : NULL;
        if (tab) {
          *tab = '\0';
          fields[k] = tab + 1;
        }
      }
      if (!fields[3])
        continue;
      fields[3][strcspn(fields[3], "\n")] = '\0';
      char kind = fields[0][0];
      const char *label = fields[1], *op = fields[2], *detail = fields[3];
      if (kind == 'p') {
        printf("ok   %s\n", label);
        continue;
      }
      any = true;
      if (kind == 'P') {
        run++;
        passed++;
        known_failure *k = find_known(known, n_known, label);
        if (k) {
          k->seen = true;
          printf("PASS %s (listed as a known failure: remove it)\n", label);
        } else if (strstr(detail, "baked")) {
          passed_baked++;
          printf("PASS %s (inputs baked as constants)\n", label);
        } else {
          printf("PASS %s\n", label);
        }
      } else if (kind == 'S') {
        skipped++;
        printf("SKIP %s [%s] %s\n", label, op, detail);
        size_t h = 0;
        while (h < n_hist && strcmp(hist[h].op, op) != 0)
          h++;
        if (h == n_hist) {
          snprintf(hist[h].op, sizeof(hist[h].op), "%s", op);
          n_hist++;
        }
        hist[h].count++;
      } else {
        run++;
        known_failure *k = find_known(known, n_known, label);
        if (k) {
          k->seen = true;
          known_failed++;
          printf("FAIL %s (known) %s\n", label, detail);
        } else {
          failed++;
          printf("FAIL %s %s\n", label, detail);
        }
      }
    }
    fclose(results);
    if (use_fork) {
      int status = 0;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
      bool died = WIFSIGNALED(status) || (WIFEXITED(status) &&
                                          WEXITSTATUS(status) != 0);
      if (died) {
        char why[64];
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
          snprintf(why, sizeof(why), "timed out after %d s",
                   PER_MODEL_TIMEOUT_S);
        else if (WIFSIGNALED(status))
          snprintf(why, sizeof(why), "crashed with signal %d (%s)",
                   WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
          snprintf(why, sizeof(why), "exited with status %d",
                   WEXITSTATUS(status));
        run++;
        known_failure *k = find_known(known, n_known, test);
        if (k) {
          k->seen = true;
          known_failed++;
          printf("FAIL %s (known) %s\n", test, why);
        } else {
          failed++;
          printf("FAIL %s %s\n", test, why);
        }
      } else if (!any) {
        run++;
        failed++;
        printf("FAIL %s reported nothing\n", test);
      }
    }
  }

  qsort(hist, n_hist, sizeof(*hist), by_count);
  printf("\nops causing skips (tests):\n");
  for (size_t h = 0; h < n_hist; h++)
    printf("  %4d  %s\n", hist[h].count, hist[h].op);
  for (size_t k = 0; k < n_known; k++)
    if (!known[k].seen && !filter)
      printf("note: known failure '%s' was not seen\n", known[k].test);
  printf("\nrun %d, passed %d (%d with inputs baked as constants), failed %d "
         "(+%d known), skipped %d (of %zu test directories)\n",
         run, passed, passed_baked, failed, known_failed, skipped, n_tests);
  bool ok = failed == 0 && passed >= min_pass;
  if (passed < min_pass)
    printf("FAILED: %d tests passed, at least %ld required\n", passed,
           min_pass);
  free(hist);
  for (size_t k = 0; k < n_known; k++)
    free(known[k].test);
  free(known);
  free_list(tests, n_tests);
  return ok ? 0 : 1;
}
