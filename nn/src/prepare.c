/* Readying an imported graph: fix input shapes, sort nodes topologically,
 * infer every shape, and fold what is known at load time (Shape/Gather/
 * Cast chains, fp16 weight dequantization, ...). After this the graph is
 * static: every tensor has a shape and every live node an implementation. */
#include "graph.h"

#include <stdlib.h>
#include <string.h>

/* Largest tensor we accept, in elements: far above any edge model, far
 * below what a hostile shape could ask for. */
#define KN_MAX_TENSOR_ELEMENTS (INT64_C(1) << 31)
/* Constant folding materialises outputs at load time. A file can describe
 * a small graph whose folded constants are enormous (ConstantOfShape, Tile,
 * Expand to 2^31 int64 elements is 16 GiB), so folding has limits: an
 * output above KN_FOLD_MAX_BYTES, or past KN_FOLD_BUDGET_BYTES folded in
 * total, stays a run-time node (and its size then counts against the
 * session's arena limit). Small outputs always fold: they are the
 * Shape/Gather/Concat chains that decide other shapes. */
#define KN_FOLD_MAX_BYTES (UINT64_C(64) << 20)
#define KN_FOLD_BUDGET_BYTES (UINT64_C(512) << 20)
#define KN_FOLD_ALWAYS_BYTES (UINT64_C(64) << 10)

static kestrel_status apply_input_shape(kn_graph *g,
                                        const kestrel_load_options *opt,
                                        kestrel_error *err) {
  for (int i = 0; i < g->num_inputs; i++) {
    kn_tensor *t = &g->tensors[g->inputs[i]];
    if (t->ndim < 0)
      return kn_fail(err, KESTREL_ERROR_SHAPE, "input '%s' has no shape",
                     t->name);
    if (i == 0 && opt && opt->input_shape_ndim > 0) {
      if (opt->input_shape_ndim != t->ndim)
        return kn_fail(err, KESTREL_ERROR_SHAPE,
                       "--input-shape has %d dimensions, input '%s' has %d",
                       opt->input_shape_ndim, t->name, t->ndim);
      for (int d = 0; d < t->ndim; d++) {
        int64_t want = opt->input_shape[d];
        if (want <= 0)
          return kn_fail(err, KESTREL_ERROR_SHAPE,
                         "--input-shape dimension %d must be positive", d);
        if (t->dims[d] >= 0 && t->dims[d] != want)
          return kn_fail(err, KESTREL_ERROR_SHAPE,
                         "--input-shape dimension %d is %lld but input '%s' "
                         "fixes it to %lld",
                         d, (long long)want, t->name, (long long)t->dims[d]);
        t->dims[d] = want;
      }
    }
    for (int d = 0; d < t->ndim; d++) {
      if (t->dims[d] >= 0)
        continue;
      /* A dynamic batch is almost always 1 on a camera; spatial sizes are
       * the caller's choice and must be given. */
      if (d == 0 && t->ndim >= 2) {
        t->dims[d] = 1;
        continue;
      }
      return kn_fail(err, KESTREL_ERROR_SHAPE,
                     "input '%s' has a dynamic dimension %d: give the shape "
                     "with --input-shape",
                     t->name, d);
    }
    if (kn_tensor_numel(t) > KN_MAX_TENSOR_ELEMENTS)
      return kn_fail(err, KESTREL_ERROR_SHAPE, "input '%s' is too large",
                     t->name);
  }
  return KESTREL_OK;
}

/* Min-heap of ints for the ready set of the topological sort. */
static void heap_push(int *heap, int *size, int v) {
  int i = (*size)++;
  heap[i] = v;
  while (i > 0 && heap[(i - 1) / 2] > heap[i]) {
    int p = (i - 1) / 2, tmp = heap[p];
    heap[p] = heap[i];
    heap[i] = tmp;
    i = p;
  }
}

static int heap_pop(int *heap, int *size) {
  int top = heap[0];
  heap[0] = heap[--(*size)];
  for (int i = 0;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < *size && heap[l] < heap[m])
      m = l;
    if (r < *size && heap[r] < heap[m])
      m = r;
    if (m == i)
      break;
    int tmp = heap[m];
    heap[m] = heap[i];
    heap[i] = tmp;
    i = m;
  }
  return top;
}

/* Kahn's algorithm over tensor producers. Importers usually emit sorted
 * nodes, but the file is untrusted: cycles and double producers are errors. */
static kestrel_status sort_nodes(kn_graph *g, kestrel_error *err) {
  int nt = g->num_tensors, nn = g->num_nodes;
  for (int t = 0; t < nt; t++)
    g->tensors[t].producer = -1;
  for (int i = 0; i < nn; i++) {
    kn_node *n = &g->nodes[i];
    for (int k = 0; k < n->num_inputs; k++)
      if (n->inputs[k] < -1 || n->inputs[k] >= nt)
        return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                            "input %d refers to tensor %d of %d", k,
                            n->inputs[k], nt);
    for (int k = 0; k < n->num_outputs; k++) {
      int o = n->outputs[k];
      if (o < 0 || o >= nt)
        return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                            "output %d refers to tensor %d of %d", k, o, nt);
      kn_tensor *t = &g->tensors[o];
      if (t->producer >= 0 || t->kind != KN_TENSOR_ACTIVATION)
        return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                            "tensor '%s' is produced more than once", t->name);
      t->producer = i;
    }
  }
  int *pending = calloc((size_t)nn + 1, sizeof(int));
  int *order = malloc(sizeof(int) * ((size_t)nn + 1));
  int *queue = malloc(sizeof(int) * ((size_t)nn + 1));
  /* consumers as CSR lists: for each node, which nodes wait on it */
  int *count = calloc((size_t)nn + 1, sizeof(int));
  int total_edges = 0;
  for (int i = 0; i < nn; i++)
    total_edges += g->nodes[i].num_inputs;
  int *edges = malloc(sizeof(int) * ((size_t)total_edges + 1));
  int *start = calloc((size_t)nn + 2, sizeof(int));
  if (!pending || !order || !queue || !count || !edges || !start) {
    free(pending), free(order), free(queue), free(count), free(edges),
        free(start);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory sorting");
  }
  for (int i = 0; i < nn; i++) {
    kn_node *n = &g->nodes[i];
    for (int k = 0; k < n->num_inputs; k++) {
      int t = n->inputs[k];
      if (t >= 0 && g->tensors[t].producer >= 0) {
        count[g->tensors[t].producer]++;
        pending[i]++;
      }
    }
  }
  for (int i = 0; i < nn; i++)
    start[i + 1] = start[i] + count[i];
  memset(count, 0, sizeof(int) * (size_t)nn);
  for (int i = 0; i < nn; i++) {
    kn_node *n = &g->nodes[i];
    for (int k = 0; k < n->num_inputs; k++) {
      int t = n->inputs[k];
      if (t >= 0 && g->tensors[t].producer >= 0) {
        int p = g->tensors[t].producer;
        edges[start[p] + count[p]++] = i;
      }
    }
  }
  /* The ready set is kept as a min-heap of node indices, so a file that is
   * already sorted keeps its order (what the exporter wrote is what runs,
   * and logs stay comparable with the source model). */
  int tail = 0, done = 0;
  for (int i = 0; i < nn; i++)
    if (pending[i] == 0)
      heap_push(queue, &tail, i);
  while (tail > 0) {
    int i = heap_pop(queue, &tail);
    order[done++] = i;
    for (int e = start[i]; e < start[i + 1]; e++)
      if (--pending[edges[e]] == 0)
        heap_push(queue, &tail, edges[e]);
  }
  kestrel_status st = KESTREL_OK;
  if (done != nn) {
    int culprit = 0;
    for (int i = 0; i < nn; i++)
      if (pending[i] > 0) {
        culprit = i;
        break;
      }
    st = kn_node_fail(err, KESTREL_ERROR_MALFORMED, &g->nodes[culprit],
                      "graph has a cycle, or reads a tensor no node produces");
  } else {
    int sorted = 1;
    for (int i = 0; i < nn; i++)
      if (order[i] != i)
        sorted = 0;
    if (!sorted) {
      kn_node *nodes = malloc(sizeof(kn_node) * ((size_t)nn + 1));
      if (!nodes) {
        st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      } else {
        for (int i = 0; i < nn; i++)
          nodes[i] = g->nodes[order[i]];
        memcpy(g->nodes, nodes, sizeof(kn_node) * (size_t)nn);
        free(nodes);
        kn_log(g, "sort_nodes: reordered %d nodes topologically", nn);
        for (int i = 0; i < nn; i++)
          for (int k = 0; k < g->nodes[i].num_outputs; k++)
            g->tensors[g->nodes[i].outputs[k]].producer = i;
      }
    }
  }
  free(pending), free(order), free(queue), free(count), free(edges),
      free(start);
  return st;
}

static bool node_is_foldable(const kn_graph *g, const kn_node *n) {
  if (n->op == KN_OP_SHAPE || n->op == KN_OP_SIZE)
    return true; /* only needs the (static) input shape */
  for (int k = 0; k < n->num_inputs; k++) {
    int t = n->inputs[k];
    if (t < 0 || g->tensors[t].optional_absent)
      continue;
    if (g->tensors[t].kind != KN_TENSOR_CONSTANT)
      return false;
  }
  return true;
}

/* Bytes the node's outputs would take as constants (shapes are inferred and
 * bounded by KN_MAX_TENSOR_ELEMENTS, so this cannot overflow). */
static uint64_t fold_bytes(const kn_graph *g, const kn_node *n) {
  uint64_t total = 0;
  for (int k = 0; k < n->num_outputs; k++) {
    const kn_tensor *t = &g->tensors[n->outputs[k]];
    uint64_t count = 1;
    for (int d = 0; d < t->ndim; d++)
      count *= (uint64_t)t->dims[d];
    total += count * kestrel_dtype_size(t->dtype);
  }
  return total;
}

static kestrel_status fold_node(kn_graph *g, kn_node *n, const kn_op_info *op,
                                kestrel_error *err) {
  for (int k = 0; k < n->num_outputs; k++) {
    kn_tensor *t = kn_out(g, n, k);
    int64_t dims[KN_MAX_DIMS];
    memcpy(dims, t->dims, sizeof(dims));
    if (!kn_tensor_alloc_data(t, t->dtype, t->ndim, dims))
      return kn_node_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                          "cannot allocate folded output '%s'", t->name);
  }
  size_t scratch_bytes = op->scratch ? op->scratch(g, n) : 0;
  void *scratch = scratch_bytes ? calloc(1, scratch_bytes) : NULL;
  if (scratch_bytes && !scratch)
    return kn_node_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                        "cannot allocate %zu bytes of scratch", scratch_bytes);
  kn_exec x = {g, scratch, scratch_bytes, 1, NULL};
  kestrel_status st = op->run(&x, n, err);
  free(scratch);
  if (st != KESTREL_OK)
    return st;
  n->dead = true;
  kn_log(g, "fold_constants: folded %s node '%s'", n->op_name, n->name);
  return KESTREL_OK;
}

kestrel_status kn_graph_prepare(kn_graph *g, const kestrel_load_options *opt,
                                kestrel_error *err) {
  if (opt)
    g->verbose = opt->verbose;
  kestrel_status st = apply_input_shape(g, opt, err);
  if (st != KESTREL_OK)
    return st;
  st = sort_nodes(g, err);
  if (st != KESTREL_OK)
    return st;
  for (int i = 0; i < g->num_outputs; i++) {
    if (g->outputs[i] < 0 || g->outputs[i] >= g->num_tensors)
      return kn_fail(err, KESTREL_ERROR_MALFORMED, "graph output %d is invalid",
                     i);
    g->tensors[g->outputs[i]].is_output = true;
  }

  int folded = 0;
  uint64_t folded_bytes = 0;
  for (int i = 0; i < g->num_nodes; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    const kn_op_info *op = kn_op_get(n->op);
    if (!op)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "unsupported op '%s'", n->op_name);
    for (int k = 0; k < n->num_inputs; k++) {
      kn_tensor *t = kn_in(g, n, k);
      if (t && t->ndim < 0)
        return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                            "input '%s' has no known shape", t->name);
    }
    st = op->infer(g, n, err);
    if (st != KESTREL_OK)
      return st;
    for (int k = 0; k < n->num_outputs; k++) {
      kn_tensor *t = kn_out(g, n, k);
      if (t->ndim < 0 || t->ndim > KN_MAX_DIMS)
        return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n,
                            "output '%s' got no shape", t->name);
      int64_t count = 1;
      for (int d = 0; d < t->ndim; d++) {
        if (t->dims[d] < 0)
          return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                              "output '%s' has negative dimension", t->name);
        if (t->dims[d] && count > KN_MAX_TENSOR_ELEMENTS / t->dims[d])
          return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                              "output '%s' is too large", t->name);
        count *= t->dims[d];
      }
      if (kestrel_dtype_size(t->dtype) == 0)
        return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n,
                            "output '%s' got no dtype", t->name);
    }
    if (node_is_foldable(g, n)) {
      uint64_t bytes = fold_bytes(g, n);
      if (bytes > KN_FOLD_ALWAYS_BYTES &&
          (bytes > KN_FOLD_MAX_BYTES ||
           folded_bytes + bytes > KN_FOLD_BUDGET_BYTES)) {
        kn_log(g, "fold_constants: '%s' left to run time (%llu bytes)",
               n->name, (unsigned long long)bytes);
        continue;
      }
      folded_bytes += bytes;
      st = fold_node(g, n, op, err);
      if (st != KESTREL_OK)
        return st;
      folded++;
    }
  }
  if (folded)
    kn_log(g, "fold_constants: %d nodes folded at load time", folded);

  for (int i = 0; i < g->num_outputs; i++) {
    kn_tensor *t = &g->tensors[g->outputs[i]];
    if (t->ndim < 0)
      return kn_fail(err, KESTREL_ERROR_MALFORMED,
                     "graph output '%s' is never produced", t->name);
  }
  return KESTREL_OK;
}
