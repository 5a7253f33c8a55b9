/* eliminate_identity and fold_constants: passes that remove work without
 * changing any kernel (Identity/Dropout/no-op reshapes; nodes whose inputs
 * are all known at compile time). */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

static bool same_shape(const kn_tensor *a, const kn_tensor *b) {
  if (a->ndim != b->ndim || a->dtype != b->dtype)
    return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->dims[d] != b->dims[d])
      return false;
  return true;
}

static bool is_identity_perm(const kn_node *n, int rank) {
  const int64_t *perm;
  int np = kn_attr_ints(n, "perm", &perm);
  if (np == 0)
    return rank <= 1; /* default perm reverses the axes */
  for (int i = 0; i < np; i++)
    if (perm[i] != i)
      return false;
  return true;
}

kestrel_status kn_pass_eliminate_identity(kn_graph *g, int *changed,
                                          kestrel_error *err) {
  (void)err;
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead || n->num_inputs < 1 || n->num_outputs < 1)
      continue;
    kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
    if (!x || !y || x->kind == KN_TENSOR_CONSTANT)
      continue;
    bool noop = false;
    switch (n->op) {
    case KN_OP_IDENTITY:
    case KN_OP_DROPOUT:
      noop = true;
      break;
    case KN_OP_RESHAPE:
    case KN_OP_FLATTEN:
    case KN_OP_SQUEEZE:
    case KN_OP_UNSQUEEZE:
    case KN_OP_CAST:
      noop = same_shape(x, y);
      break;
    case KN_OP_TRANSPOSE:
      noop = same_shape(x, y) && is_identity_perm(n, x->ndim);
      break;
    default:
      break;
    }
    if (!noop || !same_shape(x, y) || x->q_count != y->q_count)
      continue;
    const char *op = n->op_name, *name = n->name;
    if (kn_edit_bypass(g, i, 0)) {
      kn_log(g, "eliminate_identity: removed %s '%s'", op, name);
      (*changed)++;
    }
  }
  return KESTREL_OK;
}

static bool all_inputs_constant(const kn_graph *g, const kn_node *n) {
  for (int k = 0; k < n->num_inputs; k++) {
    int t = n->inputs[k];
    if (t < 0 || g->tensors[t].optional_absent)
      continue;
    if (g->tensors[t].kind != KN_TENSOR_CONSTANT || !g->tensors[t].data)
      return false;
  }
  return true;
}

/* Loading already folds every node whose inputs are constant; this catches
 * nodes that became so through the passes (and graphs built by hand). */
kestrel_status kn_pass_fold_constants(kn_graph *g, int *changed,
                                      kestrel_error *err) {
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead || !all_inputs_constant(g, n))
      continue;
    bool is_out = false;
    for (int k = 0; k < n->num_outputs; k++)
      if (n->outputs[k] >= 0 && kn_edit_is_graph_output(g, n->outputs[k]))
        is_out = true;
    /* A graph output stays an activation: sessions hand it out as a
     * buffer the caller may read after each run. */
    if (is_out)
      continue;
    const kn_op_info *op = kn_op_get(n->op);
    if (!op || !op->run)
      continue;
    for (int k = 0; k < n->num_outputs; k++) {
      kn_tensor *t = kn_out(g, n, k);
      if (!t)
        continue;
      int64_t dims[KN_MAX_DIMS];
      memcpy(dims, t->dims, sizeof(dims));
      if (!kn_tensor_alloc_data(t, t->dtype, t->ndim, dims))
        return kn_node_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                            "cannot allocate folded output '%s'", t->name);
    }
    size_t bytes = op->scratch ? op->scratch(g, n) : 0;
    void *scratch = bytes ? calloc(1, bytes) : NULL;
    if (bytes && !scratch)
      return kn_node_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                          "cannot allocate %zu bytes of scratch", bytes);
    kn_exec x = {g, scratch, bytes, 1, NULL};
    kestrel_status st = op->run(&x, n, err);
    free(scratch);
    if (st != KESTREL_OK)
      return st;
    n->dead = true;
    kn_log(g, "fold_constants: folded %s '%s'", n->op_name, n->name);
    (*changed)++;
  }
  return KESTREL_OK;
}
