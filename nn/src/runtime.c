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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KN_ARENA_ALIGN 64
/* No edge model needs more; a hostile file asking for more gets an error
 * instead of an allocation the OS may grant lazily and then kill us for. */
#define KN_MAX_ARENA_BYTES (UINT64_C(4) << 30)

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
  /* Profiling (options.profile): one entry per live node, in order. */
  kestrel_node_profile *prof;
  int *prof_node; /* node index of each entry */
  size_t num_prof;
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

/* "5x5/2 g=96 i8 [1,48,48,96]": what decides which kernel a node gets. */
static void describe_node(const kn_graph *g, const kn_node *n, char *out,
                          size_t cap) {
  size_t len = 0;
  const int64_t *k = NULL, *st = NULL;
  int nk = kn_attr_ints(n, "kernel_shape", &k);
  int ns = kn_attr_ints(n, "strides", &st);
  if (nk == 2)
    len += (size_t)snprintf(out + len, cap - len, "%lldx%lld",
                            (long long)k[0], (long long)k[1]);
  if (nk == 2 && ns == 2 && (st[0] != 1 || st[1] != 1))
    len += (size_t)snprintf(out + len, cap - len, "/%lld", (long long)st[0]);
  int64_t group = kn_attr_int(n, "group", 1);
  if (len < cap && group > 1)
    len += (size_t)snprintf(out + len, cap - len, " g=%lld",
                            (long long)group);
  if (len < cap && n->num_outputs > 0 && n->outputs[0] >= 0) {
    const kn_tensor *t = &g->tensors[n->outputs[0]];
    len += (size_t)snprintf(out + len, cap - len, "%s%s [", len ? " " : "",
                            kestrel_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim && len < cap; d++)
      len += (size_t)snprintf(out + len, cap - len, "%s%lld", d ? "," : "",
                              (long long)t->dims[d]);
    if (len < cap)
      snprintf(out + len, cap - len, "]");
  }
}

static bool profile_init(kestrel_session *s) {
  const kn_graph *g = &s->graph;
  s->prof = calloc((size_t)g->num_nodes + 1, sizeof(*s->prof));
  s->prof_node = calloc((size_t)g->num_nodes + 1, sizeof(int));
  if (!s->prof || !s->prof_node)
    return false;
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    kestrel_node_profile *p = &s->prof[s->num_prof];
    p->name = n->name ? n->name : "";
    p->op = kn_op_name(n->op);
    describe_node(g, n, p->detail, sizeof(p->detail));
    s->prof_node[s->num_prof++] = i;
  }
  return true;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

size_t kestrel_session_profile(const kestrel_session *s,
                               kestrel_node_profile *out, size_t max) {
  if (!s || !s->prof)
    return 0;
  for (size_t i = 0; i < s->num_prof && i < max; i++)
    out[i] = s->prof[i];
  return s->num_prof;
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
  if ((uint64_t)s->arena_bytes > KN_MAX_ARENA_BYTES) {
    size_t wanted = s->arena_bytes;
    kestrel_session_free(s);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY,
                   "the model needs a %zu-byte activation arena, more than "
                   "the %llu-byte limit",
                   wanted, (unsigned long long)KN_MAX_ARENA_BYTES);
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
  if (options && options->profile && !profile_init(s)) {
    kestrel_session_free(s);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
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
  free(s->prof);
  free(s->prof_node);
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
  if (s->prof) {
    for (size_t p = 0; p < s->num_prof; p++) {
      kn_node *n = &g->nodes[s->prof_node[p]];
      double t0 = now_ms();
      kestrel_status st = kn_op_get(n->op)->run(&x, n, err);
      s->prof[p].total_ms += now_ms() - t0;
      s->prof[p].runs++;
      if (st != KESTREL_OK)
        return st;
    }
    return KESTREL_OK;
  }
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
