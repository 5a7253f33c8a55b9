/* The public face of graph optimization and compiled files (compile.h):
 * optimize a loaded model in place, serialize and save it, and read back
 * what a .kestrel file embeds. */
#include <kestrel/compile.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"

kestrel_compile_options kestrel_compile_options_default(void) {
  kestrel_compile_options o;
  memset(&o, 0, sizeof(o));
  o.fuse = 1;
  o.layout_nhwc = 1;
  o.pack_weights = 1;
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

kestrel_status kestrel_model_optimize(kestrel_model *model,
                                      const kestrel_compile_options *options,
                                      kestrel_error *err) {
  if (!model)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null model");
  kestrel_compile_options def = kestrel_compile_options_default();
  if (!options)
    options = &def;
  kn_graph *g = model->graph;
  int verbose = g->verbose;
  g->verbose = options->verbose;
  kn_optimize_options o = kn_optimize_options_default();
  o.fuse = options->fuse != 0;
  o.layout_nhwc = options->layout_nhwc != 0;
  o.pack_weights = options->pack_weights != 0;
  kestrel_status st = kn_optimize(g, &o, err);
  if (st == KESTREL_OK) {
    /* Tensor indices moved: the public views are rebuilt. */
    for (int i = 0; i < g->num_inputs; i++)
      fill_view(&model->input_views[i], &g->tensors[g->inputs[i]]);
    for (int i = 0; i < g->num_outputs; i++)
      fill_view(&model->output_views[i], &g->tensors[g->outputs[i]]);
    kn_memory_plan plan;
    st = kn_plan_memory(g, &plan, err);
    if (st == KESTREL_OK)
      kn_log(g,
             "plan_memory: arena %zu bytes, lower bound %zu bytes (%.2fx), "
             "%d tensors in place",
             plan.arena_bytes, plan.lower_bound,
             plan.lower_bound ? (double)plan.arena_bytes /
                                    (double)plan.lower_bound
                              : 1.0,
             plan.aliased);
  }
  g->verbose = verbose;
  return st;
}

kestrel_status kestrel_model_serialize(kestrel_model *model,
                                       const kestrel_compile_options *options,
                                       void **data, size_t *size,
                                       kestrel_error *err) {
  if (!model || !data || !size)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  kn_graph *g = model->graph;
  kestrel_status st = kn_edit_compact(g, err);
  if (st != KESTREL_OK)
    return st;
  for (int i = 0; i < g->num_inputs; i++)
    fill_view(&model->input_views[i], &g->tensors[g->inputs[i]]);
  for (int i = 0; i < g->num_outputs; i++)
    fill_view(&model->output_views[i], &g->tensors[g->outputs[i]]);
  kn_memory_plan plan;
  st = kn_plan_memory(g, &plan, err);
  if (st != KESTREL_OK)
    return st;
  kn_format_source src;
  memset(&src, 0, sizeof(src));
  src.sha256_hex = model->sha256;
  src.format = model->format == KESTREL_FORMAT_KESTREL ? g->format
                                                       : model->format;
  src.plan = &plan;
  if (options && options->sidecar) {
    src.sidecar = options->sidecar;
    src.sidecar_size = options->sidecar_size;
  } else {
    src.sidecar = model->sidecar;
    src.sidecar_size = model->sidecar_size;
  }
  uint8_t *bytes;
  st = kn_format_write(g, &src, &bytes, size, err);
  if (st == KESTREL_OK)
    *data = bytes;
  return st;
}

kestrel_status kestrel_model_save(kestrel_model *model, const char *path,
                                  const kestrel_compile_options *options,
                                  kestrel_error *err) {
  if (!path)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null path");
  void *data;
  size_t size;
  kestrel_status st = kestrel_model_serialize(model, options, &data, &size,
                                              err);
  if (st != KESTREL_OK)
    return st;
  char tmp[4096];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid()) >=
      (int)sizeof(tmp)) {
    free(data);
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "path too long");
  }
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    free(data);
    return kn_fail(err, KESTREL_ERROR_IO, "cannot create '%s': %s", tmp,
                   strerror(errno));
  }
  size_t wrote = fwrite(data, 1, size, f);
  int closed = fclose(f);
  free(data);
  if (wrote != size || closed != 0) {
    remove(tmp);
    return kn_fail(err, KESTREL_ERROR_IO, "cannot write '%s'", path);
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    return kn_fail(err, KESTREL_ERROR_IO, "cannot write '%s': %s", path,
                   strerror(e));
  }
  return KESTREL_OK;
}

const char *kestrel_model_sidecar(const kestrel_model *model, size_t *size) {
  if (size)
    *size = model && model->sidecar ? model->sidecar_size : 0;
  return model ? model->sidecar : NULL;
}

int kestrel_is_compiled_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return 0;
  uint8_t magic[KN_KESTREL_MAGIC_SIZE];
  size_t got = fread(magic, 1, sizeof(magic), f);
  fclose(f);
  return kn_format_is_kestrel(magic, got);
}

kestrel_status kestrel_compiled_sidecar(const char *path, char **text,
                                        size_t *size, kestrel_error *err) {
  if (!path || !text || !size)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  *text = NULL;
  *size = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return kn_fail(err, KESTREL_ERROR_IO, "cannot open '%s': %s", path,
                   strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
      (uint64_t)sb.st_size > ((uint64_t)2 << 30)) {
    close(fd);
    return kn_fail(err, KESTREL_ERROR_IO, "'%s' is not a model file", path);
  }
  size_t fsize = (size_t)sb.st_size;
  void *map = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED)
    return kn_fail(err, KESTREL_ERROR_IO, "cannot map '%s': %s", path,
                   strerror(errno));
  const char *s;
  size_t n;
  kestrel_status st = kn_format_find_sidecar(map, fsize, &s, &n, err);
  if (st == KESTREL_OK && n == 0)
    st = kn_fail(err, KESTREL_ERROR_IO, "'%s' embeds no sidecar", path);
  if (st == KESTREL_OK) {
    *text = malloc(n + 1);
    if (!*text) {
      st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    } else {
      memcpy(*text, s, n);
      (*text)[n] = '\0';
      *size = n;
    }
  }
  munmap(map, fsize);
  return st;
}

kestrel_status kestrel_model_memory_plan(const kestrel_model *model,
                                         kestrel_memory_report *report,
                                         kestrel_error *err) {
  if (!model || !report)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  kn_memory_plan plan;
  /* Planning writes only the offsets/last_use fields, which every session
   * recomputes on its own copy anyway. */
  kestrel_status st = kn_plan_memory(model->graph, &plan, err);
  if (st != KESTREL_OK)
    return st;
  report->arena_bytes = plan.arena_bytes;
  report->lower_bound = plan.lower_bound;
  report->in_place = plan.aliased;
  return KESTREL_OK;
}
