/* Small graph-editing tools the passes share (use counts, rewiring, new
 * tensors, compaction) and kn_optimize, which runs the passes in order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

kn_optimize_options kn_optimize_options_default(void) {
  kn_optimize_options o;
  o.fuse = true;
  o.layout_nhwc = true;
  o.pack_weights = false;
  return o;
}

int kn_edit_use_count(const kn_graph *g, int t) {
  int uses = 0;
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_inputs; k++)
      if (n->inputs[k] == t)
        uses++;
  }
  return uses;
}

int kn_edit_single_consumer(const kn_graph *g, int t) {
  int found = -1;
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_inputs; k++) {
      if (n->inputs[k] != t)
        continue;
      if (found >= 0)
        return -1; /* a second reader (or a second slot of the same node) */
      found = i;
    }
  }
  return found;
}

bool kn_edit_is_graph_output(const kn_graph *g, int t) {
  for (int i = 0; i < g->num_outputs; i++)
    if (g->outputs[i] == t)
      return true;
  return false;
}

bool kn_edit_is_graph_input(const kn_graph *g, int t) {
  for (int i = 0; i < g->num_inputs; i++)
    if (g->inputs[i] == t)
      return true;
  return false;
}

void kn_edit_replace_uses(kn_graph *g, int from, int to) {
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_inputs; k++)
      if (n->inputs[k] == from)
        n->inputs[k] = to;
  }
}

/* Index of the live node producing t (scan: producer fields go stale while
 * passes rewire). */
static int producer_of(const kn_graph *g, int t, int *slot) {
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_outputs; k++)
      if (n->outputs[k] == t) {
        if (slot)
          *slot = k;
        return i;
      }
  }
  return -1;
}

bool kn_edit_bypass(kn_graph *g, int ni, int in_slot) {
  kn_node *n = &g->nodes[ni];
  if (in_slot >= n->num_inputs || n->num_outputs < 1)
    return false;
  int in = n->inputs[in_slot], out = n->outputs[0];
  if (in < 0 || out < 0)
    return false;
  /* Extra outputs (Dropout's mask) must be unread. */
  for (int k = 1; k < n->num_outputs; k++)
    if (n->outputs[k] >= 0 && (kn_edit_use_count(g, n->outputs[k]) ||
                               kn_edit_is_graph_output(g, n->outputs[k])))
      return false;
  if (!kn_edit_is_graph_output(g, out)) {
    n->dead = true;
    kn_edit_replace_uses(g, out, in);
    return true;
  }
  /* The output's name is part of the API: let the input's producer write
   * it directly. */
  int slot;
  int p = producer_of(g, in, &slot);
  if (p < 0 || p == ni || kn_edit_is_graph_output(g, in) ||
      kn_edit_is_graph_input(g, in))
    return false;
  n->dead = true;
  g->nodes[p].outputs[slot] = out;
  kn_edit_replace_uses(g, in, out);
  g->tensors[out].producer = p;
  return true;
}

int kn_edit_new_const(kn_graph *g, const char *name, kestrel_dtype dtype,
                      int ndim, const int64_t *dims) {
  int t = kn_graph_add_tensor(g, name);
  if (t < 0)
    return -1;
  if (!kn_tensor_alloc_data(&g->tensors[t], dtype, ndim, dims))
    return -1;
  return t;
}

int kn_edit_new_activation(kn_graph *g, const char *name, int like) {
  int t = kn_graph_add_tensor(g, name);
  if (t < 0)
    return -1;
  kn_tensor *src = &g->tensors[like], *dst = &g->tensors[t];
  kn_set_shape(dst, src->dtype, src->ndim, src->dims);
  dst->kind = KN_TENSOR_ACTIVATION;
  if (src->q_count)
    kn_tensor_set_quant(dst, src->q_axis, src->q_count, src->q_scale,
                        src->q_zero_point);
  return t;
}

int kn_edit_add_node(kn_graph *g, kn_op op, const char *name,
                     const int *inputs, int num_inputs, const int *outputs,
                     int num_outputs) {
  int ni = kn_graph_add_node(g, op, name, kn_op_name(op), inputs, num_inputs,
                             outputs, num_outputs);
  if (ni >= 0)
    for (int k = 0; k < num_outputs; k++)
      g->tensors[outputs[k]].producer = ni;
  return ni;
}

bool kn_edit_const_scalar(const kn_tensor *t, float *value) {
  if (!t || t->kind != KN_TENSOR_CONSTANT || !t->data || t->ndim < 0)
    return false;
  if (t->dtype != KESTREL_DTYPE_F32 && t->dtype != KESTREL_DTYPE_F64 &&
      t->dtype != KESTREL_DTYPE_F16)
    return false;
  int64_t n = kn_tensor_numel(t);
  if (n < 1)
    return false;
  double v = kn_read_double(t, 0);
  for (int64_t i = 1; i < n; i++)
    if (kn_read_double(t, i) != v)
      return false;
  *value = (float)v;
  return true;
}

static void free_node(kn_node *n) {
  free(n->name);
  free(n->op_name);
  free(n->inputs);
  free(n->outputs);
  for (int a = 0; a < n->num_attrs; a++) {
    free(n->attrs[a].name);
    free(n->attrs[a].ints);
    free(n->attrs[a].floats);
    free(n->attrs[a].s);
  }
  free(n->attrs);
}

kestrel_status kn_edit_compact(kn_graph *g, kestrel_error *err) {
  int nt = g->num_tensors;
  int *remap = malloc(sizeof(int) * ((size_t)nt + 1));
  if (!remap)
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  for (int t = 0; t < nt; t++)
    remap[t] = -1;
  /* Mark what is still referenced. */
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_inputs; k++)
      if (n->inputs[k] >= 0)
        remap[n->inputs[k]] = 0;
    for (int k = 0; k < n->num_outputs; k++)
      if (n->outputs[k] >= 0)
        remap[n->outputs[k]] = 0;
  }
  for (int i = 0; i < g->num_inputs; i++)
    remap[g->inputs[i]] = 0;
  for (int i = 0; i < g->num_outputs; i++)
    remap[g->outputs[i]] = 0;
  int kept = 0;
  for (int t = 0; t < nt; t++) {
    kn_tensor *x = &g->tensors[t];
    if (remap[t] < 0) {
      free(x->name);
      if (x->data_owned)
        free(x->data);
      free(x->q_scale);
      free(x->q_zero_point);
      continue;
    }
    remap[t] = kept;
    if (kept != t)
      g->tensors[kept] = *x;
    kept++;
  }
  g->num_tensors = kept;
  int live = 0;
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead) {
      free_node(n);
      continue;
    }
    for (int k = 0; k < n->num_inputs; k++)
      if (n->inputs[k] >= 0)
        n->inputs[k] = remap[n->inputs[k]];
    for (int k = 0; k < n->num_outputs; k++)
      if (n->outputs[k] >= 0)
        n->outputs[k] = remap[n->outputs[k]];
    if (live != i)
      g->nodes[live] = *n;
    live++;
  }
  g->num_nodes = live;
  for (int i = 0; i < g->num_inputs; i++)
    g->inputs[i] = remap[g->inputs[i]];
  for (int i = 0; i < g->num_outputs; i++)
    g->outputs[i] = remap[g->outputs[i]];
  free(remap);
  return KESTREL_OK;
}

kestrel_status kn_edit_revalidate(kn_graph *g, kestrel_error *err) {
  for (int t = 0; t < g->num_tensors; t++)
    g->tensors[t].producer = -1;
  int verbose = g->verbose;
  /* Prepare logs the sort; that is noise after the passes. */
  g->verbose = 0;
  kestrel_status st = kn_graph_prepare(g, NULL, err);
  g->verbose = verbose;
  return st;
}

typedef kestrel_status (*pass_fn)(kn_graph *g, int *changed,
                                  kestrel_error *err);

static kestrel_status run_pass(kn_graph *g, const char *name, pass_fn fn,
                               int *total, kestrel_error *err) {
  int changed = 0;
  kestrel_status st = fn(g, &changed, err);
  if (st != KESTREL_OK)
    return st;
  kn_log(g, "%s: %d change%s", name, changed, changed == 1 ? "" : "s");
  *total += changed;
  return KESTREL_OK;
}

kestrel_status kn_optimize(kn_graph *g, const kn_optimize_options *opt,
                           kestrel_error *err) {
  kn_optimize_options def = kn_optimize_options_default();
  if (!opt)
    opt = &def;
  int live_before = 0;
  for (int i = 0; i < g->num_nodes; i++)
    live_before += !g->nodes[i].dead;
  int total = 0;
  kestrel_status st = KESTREL_OK;
#define PASS(name)                                                             \
  do {                                                                         \
    st = run_pass(g, #name, kn_pass_##name, &total, err);                      \
    if (st != KESTREL_OK)                                                      \
      return st;                                                               \
  } while (0)
  if (opt->fuse) {
    PASS(eliminate_identity);
    PASS(fold_constants);
    PASS(fuse_conv_batchnorm);
    PASS(fuse_conv_mul_add);
    PASS(recognize_hardswish);
    PASS(fold_pad_into_conv);
    PASS(fuse_activation);
    PASS(fuse_residual_add);
  }
  if (opt->layout_nhwc) {
    st = kn_edit_compact(g, err);
    if (st == KESTREL_OK)
      st = kn_edit_revalidate(g, err);
    if (st != KESTREL_OK)
      return st;
    PASS(convert_layout_nhwc);
    if (opt->fuse)
      PASS(eliminate_identity);
  }
  if (opt->pack_weights) {
    PASS(pack_weights);
    if (opt->fuse) {
      PASS(fuse_int8_tables);
      PASS(fuse_affine_epilogue);
      PASS(fuse_int8_residual_add);
    }
  }
#undef PASS
  st = kn_edit_compact(g, err);
  if (st == KESTREL_OK)
    st = kn_edit_revalidate(g, err);
  if (st != KESTREL_OK)
    return st;
  kn_log(g, "optimize: %d rewrites, %d nodes -> %d nodes", total, live_before,
         g->num_nodes);
  return KESTREL_OK;
}
