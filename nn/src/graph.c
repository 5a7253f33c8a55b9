/* Building and reading the graph IR: tensors, nodes, attributes, errors. */
#include "graph.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static char *dup_string(const char *s) {
  if (!s)
    s = "";
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d)
    memcpy(d, s, n + 1);
  return d;
}

kn_graph *kn_graph_new(void) { return calloc(1, sizeof(kn_graph)); }

static void free_attr(kn_attr *a) {
  free(a->name);
  free(a->ints);
  free(a->floats);
  free(a->s);
}

void kn_graph_free(kn_graph *g) {
  if (!g)
    return;
  for (int i = 0; i < g->num_tensors; i++) {
    kn_tensor *t = &g->tensors[i];
    free(t->name);
    if (t->data_owned)
      free(t->data);
    free(t->q_scale);
    free(t->q_zero_point);
  }
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    free(n->name);
    free(n->op_name);
    free(n->inputs);
    free(n->outputs);
    for (int a = 0; a < n->num_attrs; a++)
      free_attr(&n->attrs[a]);
    free(n->attrs);
  }
  free(g->tensors);
  free(g->nodes);
  free(g->inputs);
  free(g->outputs);
  free(g);
}

int kn_graph_add_tensor(kn_graph *g, const char *name) {
  if (g->num_tensors == g->cap_tensors) {
    int cap = g->cap_tensors ? g->cap_tensors * 2 : 64;
    kn_tensor *t = realloc(g->tensors, (size_t)cap * sizeof(*t));
    if (!t)
      return -1;
    g->tensors = t;
    g->cap_tensors = cap;
  }
  kn_tensor *t = &g->tensors[g->num_tensors];
  memset(t, 0, sizeof(*t));
  t->name = dup_string(name);
  if (!t->name)
    return -1;
  t->ndim = -1;
  t->q_axis = -1;
  t->producer = -1;
  t->last_use = -1;
  t->arena_offset = -1;
  return g->num_tensors++;
}

int kn_graph_find_tensor(const kn_graph *g, const char *name) {
  for (int i = 0; i < g->num_tensors; i++)
    if (strcmp(g->tensors[i].name, name) == 0)
      return i;
  return -1;
}

int kn_graph_add_node(kn_graph *g, kn_op op, const char *name,
                      const char *op_name, const int *inputs, int num_inputs,
                      const int *outputs, int num_outputs) {
  if (num_inputs < 0 || num_outputs < 0)
    return -1;
  if (g->num_nodes == g->cap_nodes) {
    int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
    kn_node *n = realloc(g->nodes, (size_t)cap * sizeof(*n));
    if (!n)
      return -1;
    g->nodes = n;
    g->cap_nodes = cap;
  }
  kn_node *n = &g->nodes[g->num_nodes];
  memset(n, 0, sizeof(*n));
  n->op = op;
  n->name = dup_string(name);
  n->op_name = dup_string(op_name ? op_name : kn_op_name(op));
  n->inputs = malloc(sizeof(int) * (size_t)(num_inputs + 1));
  n->outputs = malloc(sizeof(int) * (size_t)(num_outputs + 1));
  if (!n->name || !n->op_name || !n->inputs || !n->outputs) {
    free(n->name);
    free(n->op_name);
    free(n->inputs);
    free(n->outputs);
    return -1;
  }
  if (num_inputs)
    memcpy(n->inputs, inputs, sizeof(int) * (size_t)num_inputs);
  if (num_outputs)
    memcpy(n->outputs, outputs, sizeof(int) * (size_t)num_outputs);
  n->num_inputs = num_inputs;
  n->num_outputs = num_outputs;
  return g->num_nodes++;
}

static int append_index(int **arr, int *count, int v) {
  int *a = realloc(*arr, sizeof(int) * (size_t)(*count + 1));
  if (!a)
    return -1;
  a[*count] = v;
  *arr = a;
  (*count)++;
  return 0;
}

int kn_graph_add_input(kn_graph *g, int tensor) {
  return append_index(&g->inputs, &g->num_inputs, tensor);
}

int kn_graph_add_output(kn_graph *g, int tensor) {
  return append_index(&g->outputs, &g->num_outputs, tensor);
}

int64_t kn_numel(int ndim, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= dims[i];
  return n;
}

int64_t kn_tensor_numel(const kn_tensor *t) {
  return t->ndim < 0 ? 0 : kn_numel(t->ndim, t->dims);
}

size_t kn_tensor_bytes(const kn_tensor *t) {
  return (size_t)kn_tensor_numel(t) * kestrel_dtype_size(t->dtype);
}

void kn_set_shape(kn_tensor *t, kestrel_dtype dtype, int ndim,
                  const int64_t *dims) {
  t->dtype = dtype;
  t->ndim = ndim;
  for (int i = 0; i < ndim && i < KN_MAX_DIMS; i++)
    t->dims[i] = dims[i];
}

void *kn_tensor_alloc_data(kn_tensor *t, kestrel_dtype dtype, int ndim,
                           const int64_t *dims) {
  if (ndim < 0 || ndim > KN_MAX_DIMS)
    return NULL;
  /* Overflow-checked size; a zero-size tensor still gets a valid pointer. */
  uint64_t count = 1;
  for (int i = 0; i < ndim; i++) {
    if (dims[i] < 0)
      return NULL;
    if (dims[i] && count > (UINT64_C(1) << 40) / (uint64_t)dims[i])
      return NULL;
    count *= (uint64_t)dims[i];
  }
  size_t es = kestrel_dtype_size(dtype);
  if (es == 0 || count > (UINT64_C(1) << 40) / es)
    return NULL;
  void *p = calloc(1, (size_t)(count * es) + 1);
  if (!p)
    return NULL;
  if (t->data_owned)
    free(t->data);
  t->data = p;
  t->data_owned = true;
  kn_set_shape(t, dtype, ndim, dims);
  t->kind = KN_TENSOR_CONSTANT;
  return p;
}

int kn_tensor_set_quant(kn_tensor *t, int axis, int count, const float *scale,
                        const int32_t *zero_point) {
  free(t->q_scale);
  free(t->q_zero_point);
  t->q_scale = NULL;
  t->q_zero_point = NULL;
  t->q_count = 0;
  t->q_axis = -1;
  if (count <= 0)
    return 0;
  t->q_scale = malloc(sizeof(float) * (size_t)count);
  t->q_zero_point = calloc((size_t)count, sizeof(int32_t));
  if (!t->q_scale || !t->q_zero_point)
    return -1;
  memcpy(t->q_scale, scale, sizeof(float) * (size_t)count);
  if (zero_point)
    memcpy(t->q_zero_point, zero_point, sizeof(int32_t) * (size_t)count);
  t->q_count = count;
  t->q_axis = axis;
  return 0;
}

kn_attr *kn_node_add_attr(kn_node *n, const char *name, kn_attr_type type) {
  /* Replace an attribute of the same name rather than shadowing it. */
  for (int i = 0; i < n->num_attrs; i++) {
    if (strcmp(n->attrs[i].name, name) == 0) {
      kn_attr *a = &n->attrs[i];
      free(a->ints);
      free(a->floats);
      free(a->s);
      a->ints = NULL;
      a->floats = NULL;
      a->s = NULL;
      a->count = 0;
      a->type = type;
      return a;
    }
  }
  kn_attr *attrs = realloc(n->attrs, sizeof(kn_attr) * (size_t)(n->num_attrs + 1));
  if (!attrs)
    return NULL;
  n->attrs = attrs;
  kn_attr *a = &attrs[n->num_attrs];
  memset(a, 0, sizeof(*a));
  a->name = dup_string(name);
  if (!a->name)
    return NULL;
  a->type = type;
  n->num_attrs++;
  return a;
}

void kn_node_set_int(kn_node *n, const char *name, int64_t v) {
  kn_attr *a = kn_node_add_attr(n, name, KN_ATTR_INT);
  if (a)
    a->i = v;
}

void kn_node_set_float(kn_node *n, const char *name, float v) {
  kn_attr *a = kn_node_add_attr(n, name, KN_ATTR_FLOAT);
  if (a)
    a->f = v;
}

void kn_node_set_ints(kn_node *n, const char *name, const int64_t *v,
                      int count) {
  kn_attr *a = kn_node_add_attr(n, name, KN_ATTR_INTS);
  if (!a || count < 0)
    return;
  a->ints = malloc(sizeof(int64_t) * (size_t)(count + 1));
  if (!a->ints)
    return;
  if (count)
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
  a->count = count;
}

void kn_node_set_floats(kn_node *n, const char *name, const float *v,
                        int count) {
  kn_attr *a = kn_node_add_attr(n, name, KN_ATTR_FLOATS);
  if (!a || count < 0)
    return;
  a->floats = malloc(sizeof(float) * (size_t)(count + 1));
  if (!a->floats)
    return;
  if (count)
    memcpy(a->floats, v, sizeof(float) * (size_t)count);
  a->count = count;
}

void kn_node_set_string(kn_node *n, const char *name, const char *s) {
  kn_attr *a = kn_node_add_attr(n, name, KN_ATTR_STRING);
  if (a)
    a->s = dup_string(s);
}

const kn_attr *kn_node_attr(const kn_node *n, const char *name) {
  for (int i = 0; i < n->num_attrs; i++)
    if (strcmp(n->attrs[i].name, name) == 0)
      return &n->attrs[i];
  return NULL;
}

int64_t kn_attr_int(const kn_node *n, const char *name, int64_t def) {
  const kn_attr *a = kn_node_attr(n, name);
  if (!a)
    return def;
  if (a->type == KN_ATTR_INT)
    return a->i;
  /* A float where an int is expected: convert only when representable
   * (NaN, inf or huge values from a hostile file would be undefined). */
  if (a->type == KN_ATTR_FLOAT && a->f > -9.2e18f && a->f < 9.2e18f)
    return (int64_t)a->f;
  return def;
}

float kn_attr_float(const kn_node *n, const char *name, float def) {
  const kn_attr *a = kn_node_attr(n, name);
  if (!a)
    return def;
  if (a->type == KN_ATTR_FLOAT)
    return a->f;
  if (a->type == KN_ATTR_INT)
    return (float)a->i;
  return def;
}

int kn_attr_ints(const kn_node *n, const char *name, const int64_t **values) {
  const kn_attr *a = kn_node_attr(n, name);
  if (!a || a->type != KN_ATTR_INTS) {
    *values = NULL;
    return 0;
  }
  *values = a->ints;
  return a->count;
}

int kn_attr_floats(const kn_node *n, const char *name, const float **values) {
  const kn_attr *a = kn_node_attr(n, name);
  if (!a || a->type != KN_ATTR_FLOATS) {
    *values = NULL;
    return 0;
  }
  *values = a->floats;
  return a->count;
}

const char *kn_attr_string(const kn_node *n, const char *name,
                           const char *def) {
  const kn_attr *a = kn_node_attr(n, name);
  if (!a || a->type != KN_ATTR_STRING || !a->s)
    return def;
  return a->s;
}

kn_tensor *kn_in(kn_graph *g, const kn_node *n, int i) {
  if (i < 0 || i >= n->num_inputs || n->inputs[i] < 0 ||
      n->inputs[i] >= g->num_tensors)
    return NULL;
  kn_tensor *t = &g->tensors[n->inputs[i]];
  return t->optional_absent ? NULL : t;
}

kn_tensor *kn_out(kn_graph *g, const kn_node *n, int i) {
  if (i < 0 || i >= n->num_outputs || n->outputs[i] < 0 ||
      n->outputs[i] >= g->num_tensors)
    return NULL;
  return &g->tensors[n->outputs[i]];
}

int64_t kn_read_int(const kn_tensor *t, int64_t i) {
  const void *p = t->data;
  switch (t->dtype) {
  case KESTREL_DTYPE_I64: return ((const int64_t *)p)[i];
  case KESTREL_DTYPE_I32: return ((const int32_t *)p)[i];
  case KESTREL_DTYPE_I16: return ((const int16_t *)p)[i];
  case KESTREL_DTYPE_I8: return ((const int8_t *)p)[i];
  case KESTREL_DTYPE_U8: return ((const uint8_t *)p)[i];
  case KESTREL_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
  case KESTREL_DTYPE_F32: return (int64_t)((const float *)p)[i];
  case KESTREL_DTYPE_F64: return (int64_t)((const double *)p)[i];
  case KESTREL_DTYPE_F16:
    return (int64_t)kestrel_f16_to_f32(((const uint16_t *)p)[i]);
  default: return 0;
  }
}

double kn_read_double(const kn_tensor *t, int64_t i) {
  const void *p = t->data;
  switch (t->dtype) {
  case KESTREL_DTYPE_F32: return ((const float *)p)[i];
  case KESTREL_DTYPE_F64: return ((const double *)p)[i];
  case KESTREL_DTYPE_F16: return kestrel_f16_to_f32(((const uint16_t *)p)[i]);
  default: return (double)kn_read_int(t, i);
  }
}

kestrel_status kn_fail(kestrel_error *err, kestrel_status status,
                       const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
  }
  return status;
}

kestrel_status kn_node_fail(kestrel_error *err, kestrel_status status,
                            const kn_node *n, const char *fmt, ...) {
  if (err) {
    int k = snprintf(err->message, sizeof(err->message), "node '%s' (%s): ",
                     n->name ? n->name : "", n->op_name ? n->op_name : "?");
    if (k < 0)
      k = 0;
    if ((size_t)k < sizeof(err->message)) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(err->message + k, sizeof(err->message) - (size_t)k, fmt, ap);
      va_end(ap);
    }
  }
  return status;
}

void kn_log(const kn_graph *g, const char *fmt, ...) {
  if (!g || !g->verbose)
    return;
  va_list ap;
  va_start(ap, fmt);
  fputs("kestrel: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
