/* Sessions: plan one activation arena from tensor lifetimes, then run the
 * live nodes in order. Running never allocates.
 *
 * The arena layout comes from kn_plan_memory (passes/plan_memory.c):
 * lifetimes, in-place reuse and aliases. A session works on its own
 * shallow copy of the model's tensor table, so several sessions can share
 * one (read-only) model: only data pointers differ between the copies. */
#include "model_internal.h"
#include "passes/passes.h"
#include "threadpool.h"

#include <stdlib.h>
#include <string.h>

#define KN_ARENA_ALIGN 64

struct kestrel_session {
  const kestrel_model *model;
  kn_graph graph; /* shallow copy with a private tensor table */
  uint8_t *arena;
  size_t arena_bytes;
  void *scratch;
  size_t scratch_bytes;
  int threads;
  kn_threadpool *pool; /* NULL when single-threaded */
  kestrel_tensor *inputs;
  kestrel_tensor *outputs;
};

static size_t align_up(size_t v) {
  return (v + KN_ARENA_ALIGN - 1) & ~(size_t)(KN_ARENA_ALIGN - 1);
}

static void view_of(kestrel_tensor *v, const kn_tensor *t) {
  memset(v, 0, sizeof(*v));
  v->name = t->name;
  v->dtype = t->dtype;
  v->ndim = t->ndim;
  for (int d = 0; d < t->ndim; d++)
    v->dims[d] = t->dims[d];
  v->data = t->data;
  v->quant.axis = t->q_axis;
  v->quant.count = t->q_count;
  v->quant.scale = t->q_scale;
  v->quant.zero_point = t->q_zero_point;
}

kestrel_status kestrel_session_create(const kestrel_model *model,
                                      const kestrel_session_options *options,
                                      kestrel_session **out,
                                      kestrel_error *err) {
  if (!model || !out)
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  *out = NULL;
  kestrel_session *s = calloc(1, sizeof(*s));
  if (!s)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  s->model = model;
  s->threads = options && options->threads > 1 ? options->threads : 1;
  if (s->threads > KN_MAX_THREADS)
    s->threads = KN_MAX_THREADS;
  s->pool = kn_threadpool_create(s->threads);
  s->threads = kn_threadpool_threads(s->pool); /* what actually started */
  const kn_graph *mg = model->graph;
  s->graph = *mg;
  s->graph.tensors = malloc(sizeof(kn_tensor) * ((size_t)mg->num_tensors + 1));
  s->inputs = calloc((size_t)mg->num_inputs + 1, sizeof(kestrel_tensor));
  s->outputs = calloc((size_t)mg->num_outputs + 1, sizeof(kestrel_tensor));
  if (!s->graph.tensors || !s->inputs || !s->outputs) {
    kestrel_session_free(s);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  if (mg->num_tensors > 0)
    memcpy(s->graph.tensors, mg->tensors,
           sizeof(kn_tensor) * (size_t)mg->num_tensors);
  kn_graph *g = &s->graph;
  kn_memory_plan plan;
  kestrel_status st = kn_plan_memory(g, &plan, err);
  s->arena_bytes = plan.arena_bytes;
  if (st != KESTREL_OK) {
    kestrel_session_free(s);
    return st;
  }
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    const kn_op_info *op = kn_op_get(n->op);
    if (!op) {
      kestrel_session_free(s);
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "unsupported op '%s'", n->op_name);
    }
    size_t need = op->scratch ? op->scratch(g, n) : 0;
    if (need > s->scratch_bytes)
      s->scratch_bytes = need;
  }
  /* One slice per thread (see kn_exec.pool). */
  if (s->scratch_bytes)
    s->scratch_bytes = align_up(s->scratch_bytes) * (size_t)s->threads;
  /* +KN_ARENA_ALIGN so zero-size tensors still get a valid pointer. */
  s->arena = aligned_alloc(KN_ARENA_ALIGN, align_up(s->arena_bytes) +
                                               KN_ARENA_ALIGN);
  s->scratch = s->scratch_bytes
                   ? aligned_alloc(KN_ARENA_ALIGN, align_up(s->scratch_bytes))
                   : NULL;
  if (!s->arena || (s->scratch_bytes && !s->scratch)) {
    size_t wanted = s->arena_bytes;
    kestrel_session_free(s);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY,
                   "cannot allocate a %zu-byte arena", wanted);
  }
  memset(s->arena, 0, align_up(s->arena_bytes) + KN_ARENA_ALIGN);
  for (int t = 0; t < g->num_tensors; t++) {
    kn_tensor *x = &g->tensors[t];
    if (x->kind == KN_TENSOR_CONSTANT)
      continue;
    x->data_owned = false;
    x->data = x->arena_offset >= 0 ? s->arena + x->arena_offset : s->arena;
  }
  for (int i = 0; i < g->num_inputs; i++)
    view_of(&s->inputs[i], &g->tensors[g->inputs[i]]);
  for (int i = 0; i < g->num_outputs; i++)
    view_of(&s->outputs[i], &g->tensors[g->outputs[i]]);
  *out = s;
  return KESTREL_OK;
}

void kestrel_session_free(kestrel_session *s) {
  if (!s)
    return;
  kn_threadpool_destroy(s->pool);
  free(s->graph.tensors);
  free(s->arena);
  free(s->scratch);
  free(s->inputs);
  free(s->outputs);
  free(s);
}

kestrel_tensor *kestrel_session_input(kestrel_session *s, size_t i) {
  return i < (size_t)s->graph.num_inputs ? &s->inputs[i] : NULL;
}

const kestrel_tensor *kestrel_session_output(const kestrel_session *s,
                                             size_t i) {
  return i < (size_t)s->graph.num_outputs ? &s->outputs[i] : NULL;
}

size_t kestrel_session_arena_bytes(const kestrel_session *s) {
  return s->arena_bytes;
}

kestrel_status kestrel_session_run(kestrel_session *s, kestrel_error *err) {
  kn_graph *g = &s->graph;
  kn_exec x = {g, s->scratch, s->scratch_bytes, s->threads, s->pool};
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    const kn_op_info *op = kn_op_get(n->op);
    kestrel_status st = op->run(&x, n, err);
    if (st != KESTREL_OK)
      return st;
  }
  return KESTREL_OK;
}
