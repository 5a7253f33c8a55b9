/* kestrel_model: file bytes → importer → prepared graph, plus the public
 * queries about a model (inputs, outputs, stats, op histogram). */
#include "model_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "format/format.h"
#include "sha256.h"

/* Model files larger than this are refused before reading: edge models are
 * megabytes, and ONNX (protobuf) cannot exceed 2 GiB anyway. */
#define KN_MAX_MODEL_BYTES ((size_t)2 << 30)

kestrel_load_options kestrel_load_options_default(void) {
  kestrel_load_options o;
  memset(&o, 0, sizeof(o));
  return o;
}

static void fill_view(kestrel_tensor *v, const kn_tensor *t) {
  memset(v, 0, sizeof(*v));
  v->name = t->name;
  v->dtype = t->dtype;
  v->ndim = t->ndim < 0 ? 0 : t->ndim;
  for (int d = 0; d < v->ndim; d++)
    v->dims[d] = t->dims[d];
  v->quant.axis = t->q_axis;
  v->quant.count = t->q_count;
  v->quant.scale = t->q_scale;
  v->quant.zero_point = t->q_zero_point;
}

static kestrel_model_format sniff_format(const uint8_t *data, size_t size) {
  if (kn_format_is_kestrel(data, size))
    return KESTREL_FORMAT_KESTREL;
  /* TFLite flatbuffers carry the file identifier "TFL3" at offset 4. */
  if (size >= 8 && memcmp(data + 4, "TFL3", 4) == 0)
    return KESTREL_FORMAT_TFLITE;
  return KESTREL_FORMAT_ONNX;
}

/* Takes ownership of bytes (malloc'd, or a read-only mmap when mapped) in
 * every case. */
static kestrel_status load_owned(uint8_t *bytes, size_t size, bool mapped,
                                 const kestrel_load_options *options,
                                 kestrel_model **out, kestrel_error *err) {
  *out = NULL;
  kestrel_model *m = calloc(1, sizeof(*m));
  if (!m) {
    if (mapped)
      munmap(bytes, size);
    else
      free(bytes);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  m->bytes = bytes;
  m->size = size;
  m->mapped = mapped;
  /* A .kestrel file carries its source model's hash (hashing megabytes
   * would also cost more than the whole mapped load). */
  if (!kn_format_is_kestrel(bytes, size))
    kn_sha256_hex(bytes, size, m->sha256);
  m->graph = kn_graph_new();
  if (!m->graph) {
    kestrel_model_free(m);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  if (options)
    m->graph->verbose = options->verbose;
  kestrel_model_format fmt = options ? options->format : KESTREL_FORMAT_AUTO;
  if (fmt == KESTREL_FORMAT_AUTO)
    fmt = sniff_format(bytes, size);
  m->format = fmt;
  m->graph->format = fmt;
  kestrel_status st;
  if (fmt == KESTREL_FORMAT_TFLITE)
    st = kn_import_tflite(m->graph, bytes, size, err);
  else if (fmt == KESTREL_FORMAT_ONNX)
    st = kn_import_onnx(m->graph, bytes, size, err);
  else if (fmt == KESTREL_FORMAT_KESTREL)
    st = kn_format_load(m, options, err); /* prepares too */
  else
    st = kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "unknown model format");
  if (st == KESTREL_OK && fmt != KESTREL_FORMAT_KESTREL)
    st = kn_graph_prepare(m->graph, options, err);
  if (st == KESTREL_OK) {
    kn_graph *g = m->graph;
    m->input_views = calloc((size_t)g->num_inputs + 1, sizeof(kestrel_tensor));
    m->output_views =
        calloc((size_t)g->num_outputs + 1, sizeof(kestrel_tensor));
    if (!m->input_views || !m->output_views)
      st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; st == KESTREL_OK && i < g->num_inputs; i++)
      fill_view(&m->input_views[i], &g->tensors[g->inputs[i]]);
    for (int i = 0; st == KESTREL_OK && i < g->num_outputs; i++)
      fill_view(&m->output_views[i], &g->tensors[g->outputs[i]]);
  }
  if (st != KESTREL_OK) {
    kestrel_model_free(m);
    return st;
  }
  *out = m;
  return KESTREL_OK;
}

kestrel_status kestrel_model_load_memory(const void *data, size_t size,
                                         const kestrel_load_options *options,
                                         kestrel_model **out,
                                         kestrel_error *err) {
  if (!out || (!data && size))
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  *out = NULL;
  if (size > KN_MAX_MODEL_BYTES)
    return kn_fail(err, KESTREL_ERROR_MALFORMED, "model is too large (%zu bytes)",
                   size);
  uint8_t *copy = malloc(size + 1);
  if (!copy)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  if (size)
    memcpy(copy, data, size);
  return load_owned(copy, size, false, options, out, err);
}

kestrel_status kestrel_model_load(const char *path,
                                  const kestrel_load_options *options,
                                  kestrel_model **out, kestrel_error *err) {
  if (!path || !out)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return kn_fail(err, KESTREL_ERROR_IO, "cannot open '%s': %s", path,
                   strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return kn_fail(err, KESTREL_ERROR_IO, "'%s' is not a regular file", path);
  }
  if ((uint64_t)sb.st_size > KN_MAX_MODEL_BYTES) {
    fclose(f);
    return kn_fail(err, KESTREL_ERROR_MALFORMED,
                   "'%s' is too large for a model (%lld bytes)", path,
                   (long long)sb.st_size);
  }
  size_t size = (size_t)sb.st_size;
  /* Compiled files are mapped, not read: constants are used in place. */
  char magic[KN_KESTREL_MAGIC_SIZE];
  if (size >= KN_KESTREL_HEADER_SIZE &&
      fread(magic, 1, sizeof(magic), f) == sizeof(magic) &&
      kn_format_is_kestrel((const uint8_t *)magic, sizeof(magic))) {
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fileno(f), 0);
    fclose(f);
    if (map == MAP_FAILED)
      return kn_fail(err, KESTREL_ERROR_IO, "cannot map '%s': %s", path,
                     strerror(errno));
    kestrel_status st = load_owned(map, size, true, options, out, err);
    if (st != KESTREL_OK && err) {
      char msg[sizeof(err->message)];
      memcpy(msg, err->message, sizeof(msg));
      msg[sizeof(msg) - 1] = '\0';
      snprintf(err->message, sizeof(err->message), "%.200s: %.300s", path,
               msg);
    }
    return st;
  }
  rewind(f);
  uint8_t *bytes = malloc(size + 1);
  if (!bytes) {
    fclose(f);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  size_t got = size ? fread(bytes, 1, size, f) : 0;
  fclose(f);
  if (got != size) {
    free(bytes);
    return kn_fail(err, KESTREL_ERROR_IO, "short read on '%s'", path);
  }
  kestrel_status st = load_owned(bytes, size, false, options, out, err);
  if (st != KESTREL_OK && err) {
    /* Prefix the file name so CLI users know which file was bad. */
    char msg[sizeof(err->message)];
    size_t plen = strlen(path);
    if (plen > 200)
      path += plen - 200; /* keep the tail, which names the file */
    memcpy(msg, err->message, sizeof(msg));
    msg[sizeof(msg) - 1] = '\0';
    int k = snprintf(err->message, sizeof(err->message), "%s: ", path);
    if (k > 0 && (size_t)k < sizeof(err->message))
      snprintf(err->message + k, sizeof(err->message) - (size_t)k, "%.*s",
               (int)(sizeof(err->message) - (size_t)k - 1), msg);
  }
  return st;
}

void kestrel_model_free(kestrel_model *m) {
  if (!m)
    return;
  kn_graph_free(m->graph);
  free(m->input_views);
  free(m->output_views);
  if (m->mapped)
    munmap(m->bytes, m->size);
  else
    free(m->bytes);
  free(m);
}

size_t kestrel_model_num_inputs(const kestrel_model *m) {
  return (size_t)m->graph->num_inputs;
}

size_t kestrel_model_num_outputs(const kestrel_model *m) {
  return (size_t)m->graph->num_outputs;
}

const kestrel_tensor *kestrel_model_input(const kestrel_model *m, size_t i) {
  return i < (size_t)m->graph->num_inputs ? &m->input_views[i] : NULL;
}

const kestrel_tensor *kestrel_model_output(const kestrel_model *m, size_t i) {
  return i < (size_t)m->graph->num_outputs ? &m->output_views[i] : NULL;
}

kestrel_model_format kestrel_model_source_format(const kestrel_model *m) {
  return m->format;
}

const char *kestrel_model_sha256(const kestrel_model *m) { return m->sha256; }

void kestrel_model_get_stats(const kestrel_model *m,
                             kestrel_model_stats *stats) {
  memset(stats, 0, sizeof(*stats));
  kn_graph *g = m->graph;
  char *counted = calloc((size_t)g->num_tensors + 1, 1);
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    stats->num_nodes++;
    const kn_op_info *op = kn_op_get(n->op);
    if (op && op->macs)
      stats->macs += op->macs(g, n);
    for (int k = 0; k < n->num_inputs; k++) {
      kn_tensor *t = kn_in(g, n, k);
      int idx = n->inputs[k];
      if (!t || t->kind != KN_TENSOR_CONSTANT || (counted && counted[idx]))
        continue;
      if (counted)
        counted[idx] = 1;
      stats->num_params += (size_t)kn_tensor_numel(t);
      stats->weight_bytes += kn_tensor_bytes(t);
    }
  }
  free(counted);
}

size_t kestrel_model_op_histogram(const kestrel_model *m, const char **names,
                                  size_t *counts, size_t capacity) {
  size_t used = 0;
  kn_graph *g = m->graph;
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    size_t j = 0;
    while (j < used && strcmp(names[j], n->op_name) != 0)
      j++;
    if (j == used) {
      if (used == capacity)
        continue;
      names[used] = n->op_name;
      counts[used] = 0;
      used++;
    }
    counts[j]++;
  }
  return used;
}
