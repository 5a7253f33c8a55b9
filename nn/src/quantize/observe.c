/* Graph plumbing for quantization: deep copies of a graph, wrapping a
 * graph as a public model, and an observing executor. The runtime's arena
 * reuses memory, so calibration cannot look at intermediate tensors there;
 * this executor gives each activation its own buffer, calls back after each
 * node, and frees a buffer after its last reader. */
#include "quant_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

static char *dup_str(const char *s) {
  size_t n = strlen(s ? s : "");
  char *d = malloc(n + 1);
  if (d)
    memcpy(d, s ? s : "", n + 1);
  return d;
}

static int copy_attr(kn_attr *d, const kn_attr *s) {
  *d = *s;
  d->name = dup_str(s->name);
  d->ints = NULL;
  d->floats = NULL;
  d->s = NULL;
  if (!d->name)
    return -1;
  if (s->ints) {
    d->ints = malloc(sizeof(int64_t) * (size_t)(s->count + 1));
    if (!d->ints)
      return -1;
    memcpy(d->ints, s->ints, sizeof(int64_t) * (size_t)s->count);
  }
  if (s->floats) {
    d->floats = malloc(sizeof(float) * (size_t)(s->count + 1));
    if (!d->floats)
      return -1;
    memcpy(d->floats, s->floats, sizeof(float) * (size_t)s->count);
  }
  if (s->s && !(d->s = dup_str(s->s)))
    return -1;
  return 0;
}

kn_graph *kq_graph_clone(const kn_graph *g) {
  kn_graph *c = kn_graph_new();
  if (!c)
    return NULL;
  c->opset = g->opset;
  c->format = g->format;
  c->verbose = g->verbose;
  for (int i = 0; i < g->num_tensors; i++) {
    const kn_tensor *s = &g->tensors[i];
    int t = kn_graph_add_tensor(c, s->name);
    if (t < 0)
      goto fail;
    kn_tensor *d = &c->tensors[t];
    char *name = d->name;
    *d = *s;
    d->name = name;
    d->data = NULL;
    d->data_owned = false;
    d->q_scale = NULL;
    d->q_zero_point = NULL;
    d->q_count = 0;
    if (s->q_count > 0 &&
        kn_tensor_set_quant(d, s->q_axis, s->q_count, s->q_scale,
                            s->q_zero_point))
      goto fail;
    if (s->kind == KN_TENSOR_CONSTANT && s->data) {
      size_t bytes = kn_tensor_bytes(s);
      d->data = malloc(bytes + 1);
      if (!d->data)
        goto fail;
      memcpy(d->data, s->data, bytes);
      d->data_owned = true;
    }
  }
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *s = &g->nodes[i];
    if (s->dead)
      continue;
    int k = kn_graph_add_node(c, s->op, s->name, s->op_name, s->inputs,
                              s->num_inputs, s->outputs, s->num_outputs);
    if (k < 0)
      goto fail;
    kn_node *d = &c->nodes[k];
    if (s->num_attrs) {
      d->attrs = calloc((size_t)s->num_attrs, sizeof(kn_attr));
      if (!d->attrs)
        goto fail;
      for (int a = 0; a < s->num_attrs; a++) {
        d->num_attrs = a + 1;
        if (copy_attr(&d->attrs[a], &s->attrs[a]))
          goto fail;
      }
    }
  }
  for (int i = 0; i < g->num_inputs; i++)
    if (kn_graph_add_input(c, g->inputs[i]))
      goto fail;
  for (int i = 0; i < g->num_outputs; i++)
    if (kn_graph_add_output(c, g->outputs[i]))
      goto fail;
  return c;
fail:
  kn_graph_free(c);
  return NULL;
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

kestrel_status kq_model_wrap(kn_graph *g, const char *sha256,
                             kestrel_model_format format,
                             kestrel_model **out, kestrel_error *err) {
  *out = NULL;
  kestrel_model *m = calloc(1, sizeof(*m));
  if (!m) {
    kn_graph_free(g);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  m->graph = g;
  m->format = format;
  snprintf(m->sha256, sizeof(m->sha256), "%s", sha256 ? sha256 : "");
  m->input_views = calloc((size_t)g->num_inputs + 1, sizeof(kestrel_tensor));
  m->output_views = calloc((size_t)g->num_outputs + 1, sizeof(kestrel_tensor));
  if (!m->input_views || !m->output_views) {
    kestrel_model_free(m);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  for (int i = 0; i < g->num_inputs; i++)
    fill_view(&m->input_views[i], &g->tensors[g->inputs[i]]);
  for (int i = 0; i < g->num_outputs; i++)
    fill_view(&m->output_views[i], &g->tensors[g->outputs[i]]);
  *out = m;
  return KESTREL_OK;
}

kn_graph *kq_model_graph(const kestrel_model *m) { return m->graph; }

const char *kq_model_sha(const kestrel_model *m) { return m->sha256; }

/* ---- observing executor ------------------------------------------------- */

kestrel_status kq_exec_init(kq_exec *x, const kn_graph *g, int keep_all,
                            kestrel_error *err) {
  memset(x, 0, sizeof(*x));
  x->src = g;
  x->keep_all = keep_all;
  x->g = malloc(sizeof(kn_graph));
  int nt = g->num_tensors;
  x->buf = calloc((size_t)nt + 1, sizeof(void *));
  x->last_use = malloc(sizeof(int) * ((size_t)nt + 1));
  if (!x->g || !x->buf || !x->last_use) {
    kq_exec_free(x);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  *x->g = *g;
  x->g->tensors = malloc(sizeof(kn_tensor) * ((size_t)nt + 1));
  if (!x->g->tensors) {
    free(x->g);
    x->g = NULL;
    kq_exec_free(x);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  memcpy(x->g->tensors, g->tensors, sizeof(kn_tensor) * (size_t)nt);
  for (int t = 0; t < nt; t++) {
    x->last_use[t] = -1;
    if (x->g->tensors[t].kind != KN_TENSOR_CONSTANT)
      x->g->tensors[t].data = NULL;
  }
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_inputs; k++)
      if (n->inputs[k] >= 0 && n->inputs[k] < nt)
        x->last_use[n->inputs[k]] = i;
    const kn_op_info *op = kn_op_get(n->op);
    if (!op || !op->run) {
      kq_exec_free(x);
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n, "no kernel");
    }
    size_t s = op->scratch ? op->scratch(x->g, n) : 0;
    if (s > x->scratch_bytes)
      x->scratch_bytes = s;
  }
  for (int i = 0; i < g->num_outputs; i++)
    x->last_use[g->outputs[i]] = INT_MAX;
  if (x->scratch_bytes && !(x->scratch = calloc(1, x->scratch_bytes))) {
    kq_exec_free(x);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  return KESTREL_OK;
}

static void drop(kq_exec *x, int t) {
  free(x->buf[t]);
  x->buf[t] = NULL;
  x->g->tensors[t].data = NULL;
}

void kq_exec_release(kq_exec *x) {
  if (!x->g)
    return;
  for (int t = 0; t < x->g->num_tensors; t++)
    if (x->buf[t])
      drop(x, t);
}

static kestrel_status alloc_tensor(kq_exec *x, int t, kestrel_error *err) {
  if (x->buf[t])
    return KESTREL_OK;
  kn_tensor *tt = &x->g->tensors[t];
  size_t bytes = kn_tensor_bytes(tt);
  x->buf[t] = calloc(1, bytes + 16);
  if (!x->buf[t])
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY,
                   "cannot allocate %zu bytes for '%s'", bytes, tt->name);
  tt->data = x->buf[t];
  return KESTREL_OK;
}

kestrel_status kq_exec_run(kq_exec *x, const void *const *inputs,
                           kq_after_fn after, void *user, kestrel_error *err) {
  kn_graph *g = x->g;
  kestrel_status st = KESTREL_OK;
  kq_exec_release(x);
  for (int i = 0; i < g->num_inputs; i++) {
    int t = g->inputs[i];
    if ((st = alloc_tensor(x, t, err)))
      return st;
    memcpy(x->buf[t], inputs[i], kn_tensor_bytes(&g->tensors[t]));
  }
  kn_exec ex = {.graph = g, .scratch = x->scratch,
                .scratch_bytes = x->scratch_bytes, .num_threads = 1};
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_outputs; k++)
      if ((st = alloc_tensor(x, n->outputs[k], err)))
        return st;
    for (int k = 0; k < n->num_inputs; k++) {
      kn_tensor *t = kn_in(g, n, k);
      if (t && !t->optional_absent && !t->data)
        return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n,
                            "input '%s' has no data", t->name);
    }
    if ((st = kn_op_get(n->op)->run(&ex, n, err)))
      return st;
    if (after && (st = after(user, x, i, err)))
      return st;
    if (x->keep_all)
      continue;
    for (int k = 0; k < n->num_inputs; k++) {
      int t = n->inputs[k];
      if (t >= 0 && x->buf[t] && x->last_use[t] == i)
        drop(x, t);
    }
    for (int k = 0; k < n->num_outputs; k++) {
      int t = n->outputs[k];
      if (x->buf[t] && x->last_use[t] < i)
        drop(x, t); /* nobody reads it */
    }
  }
  return KESTREL_OK;
}

void kq_exec_free(kq_exec *x) {
  kq_exec_release(x);
  if (x->g)
    free(x->g->tensors);
  free(x->g);
  free(x->buf);
  free(x->last_use);
  free(x->scratch);
  memset(x, 0, sizeof(*x));
}

