/* Static memory planning: one arena for all activations, offsets fixed at
 * plan time from tensor lifetimes over the node schedule.
 *
 * Two kinds of sharing come first: reshape-like ops (Reshape, Flatten,
 * Squeeze, Unsqueeze, Identity, Dropout) make their output an alias of
 * their input (copy_run skips the copy when the pointers match), and an
 * element-wise op whose input dies at that op writes its output in place
 * (the reference loops read element i before writing element i). Each
 * resulting group of tensors is then one interval [first, last] of a
 * given size, and intervals are packed by two greedy orders (largest first;
 * earliest first with best fit), keeping the smaller arena. */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

typedef struct group {
  int root;
  size_t bytes;
  int first, last;
  bool has_input; /* holds a graph input: the caller's data, never clobbered */
  size_t offset;
} group;

static size_t align_up(size_t v) {
  return (v + KN_PLAN_ALIGN - 1) & ~(size_t)(KN_PLAN_ALIGN - 1);
}

static int find(int *parent, int t) {
  while (parent[t] != t) {
    parent[t] = parent[parent[t]];
    t = parent[t];
  }
  return t;
}

static bool is_alias_op(kn_op op) {
  switch (op) {
  case KN_OP_RESHAPE:
  case KN_OP_FLATTEN:
  case KN_OP_SQUEEZE:
  case KN_OP_UNSQUEEZE:
  case KN_OP_IDENTITY:
  case KN_OP_DROPOUT: return true;
  default: return false;
  }
}

static bool is_inplace_op(kn_op op) {
  switch (op) {
  case KN_OP_RELU: case KN_OP_CLIP: case KN_OP_LEAKY_RELU:
  case KN_OP_HARDSWISH: case KN_OP_HARDSIGMOID: case KN_OP_SIGMOID:
  case KN_OP_TANH: case KN_OP_EXP: case KN_OP_SQRT: case KN_OP_NEG:
  case KN_OP_ABS: case KN_OP_FLOOR: case KN_OP_CEIL: case KN_OP_RECIPROCAL:
  case KN_OP_LOG: case KN_OP_ERF: case KN_OP_ELU: case KN_OP_SELU:
  case KN_OP_SOFTPLUS: case KN_OP_SOFTSIGN:
  case KN_OP_ADD: case KN_OP_SUB: case KN_OP_MUL: case KN_OP_DIV:
  case KN_OP_MAX: case KN_OP_MIN: return true;
  default: return false;
  }
}

static bool same_layout(const kn_tensor *a, const kn_tensor *b) {
  return a->dtype == b->dtype && a->ndim == b->ndim &&
         !memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->ndim);
}

static bool overlap_time(const group *a, const group *b) {
  return !(a->last < b->first || b->last < a->first);
}

/* Places groups in `order` one by one at the lowest offset that fits
 * among the already placed groups alive at the same time (best fit: the
 * smallest gap that holds it). Returns the arena size. */
static size_t pack(group *gr, const int *order, int count, size_t *offsets,
                   int *placed) {
  size_t total = 0;
  for (int i = 0; i < count; i++) {
    group *x = &gr[order[i]];
    /* Collect the busy ranges of placed, time-overlapping groups. */
    int nb = 0;
    for (int j = 0; j < i; j++) {
      group *y = &gr[order[j]];
      if (overlap_time(x, y))
        placed[nb++] = order[j];
    }
    /* Sort busy ranges by offset (insertion sort: counts are small). */
    for (int a = 1; a < nb; a++) {
      int v = placed[a], b = a - 1;
      while (b >= 0 && offsets[placed[b]] > offsets[v]) {
        placed[b + 1] = placed[b];
        b--;
      }
      placed[b + 1] = v;
    }
    size_t best = SIZE_MAX, best_gap = SIZE_MAX, cursor = 0;
    for (int a = 0; a <= nb; a++) {
      size_t start = a < nb ? offsets[placed[a]] : SIZE_MAX;
      if (start > cursor && start - cursor >= x->bytes) {
        size_t gap = start - cursor;
        if (gap < best_gap) {
          best_gap = gap;
          best = cursor;
        }
      }
      if (a < nb) {
        size_t end = offsets[placed[a]] + gr[placed[a]].bytes;
        if (end > cursor)
          cursor = end;
      }
    }
    if (best == SIZE_MAX)
      best = cursor;
    offsets[order[i]] = best;
    if (best + x->bytes > total)
      total = best + x->bytes;
  }
  return total;
}

/* Orders for pack(); a stable insertion sort with the groups as context
 * (qsort has none, and a static would race between sessions). */
static bool before_by_size(const group *x, const group *y) {
  if (x->bytes != y->bytes)
    return x->bytes > y->bytes;
  return x->root < y->root;
}
static bool before_by_first(const group *x, const group *y) {
  if (x->first != y->first)
    return x->first < y->first;
  return before_by_size(x, y);
}
static void sort_order(int *order, int count, const group *gr,
                       bool (*before)(const group *, const group *)) {
  for (int i = 0; i < count; i++)
    order[i] = i;
  for (int i = 1; i < count; i++) {
    int v = order[i], j = i - 1;
    while (j >= 0 && before(&gr[v], &gr[order[j]])) {
      order[j + 1] = order[j];
      j--;
    }
    order[j + 1] = v;
  }
}

kestrel_status kn_plan_memory(kn_graph *g, kn_memory_plan *plan,
                              kestrel_error *err) {
  memset(plan, 0, sizeof(*plan));
  int nt = g->num_tensors, nn = g->num_nodes;
  const int never = -2, forever = nn + 1;
  int *first = malloc(sizeof(int) * ((size_t)nt + 1));
  int *last = malloc(sizeof(int) * ((size_t)nt + 1));
  int *parent = malloc(sizeof(int) * ((size_t)nt + 1));
  int *gindex = malloc(sizeof(int) * ((size_t)nt + 1));
  group *gr = calloc((size_t)nt + 1, sizeof(group));
  int *order = calloc((size_t)nt + 1, sizeof(int));
  int *scratch = malloc(sizeof(int) * ((size_t)nt + 1));
  size_t *off_a = malloc(sizeof(size_t) * ((size_t)nt + 1));
  size_t *off_b = malloc(sizeof(size_t) * ((size_t)nt + 1));
  kestrel_status st = KESTREL_OK;
  if (!first || !last || !parent || !gindex || !gr || !order || !scratch ||
      !off_a || !off_b) {
    st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory planning");
    goto done;
  }
  for (int t = 0; t < nt; t++) {
    first[t] = INT32_MAX;
    last[t] = never;
    parent[t] = t;
  }
  for (int i = 0; i < g->num_inputs; i++) {
    first[g->inputs[i]] = -1;
    last[g->inputs[i]] = -1;
  }
  for (int i = 0; i < nn; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_inputs; k++) {
      int t = n->inputs[k];
      if (t >= 0 && t < nt && last[t] < i)
        last[t] = i;
    }
    for (int k = 0; k < n->num_outputs; k++) {
      int t = n->outputs[k];
      if (t < 0 || t >= nt)
        continue;
      if (first[t] > i)
        first[t] = i;
      if (last[t] < i)
        last[t] = i;
    }
  }
  for (int i = 0; i < g->num_outputs; i++)
    last[g->outputs[i]] = forever;

  /* Lifetime of a group = union of its members'; kept at the root. */
  for (int t = 0; t < nt; t++) {
    g->tensors[t].last_use = last[t] == forever ? INT32_MAX : last[t];
    g->tensors[t].arena_offset = -1;
  }
  bool *input_group = calloc((size_t)nt + 1, 1);
  if (!input_group) {
    st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory planning");
    goto done;
  }
  for (int i = 0; i < g->num_inputs; i++)
    input_group[g->inputs[i]] = true;
  for (int i = 0; i < nn; i++) {
    kn_node *n = &g->nodes[i];
    if (n->dead || n->num_outputs < 1 || n->num_inputs < 1)
      continue;
    int out = n->outputs[0];
    if (out < 0 || out >= nt || parent[out] != out)
      continue;
    kn_tensor *y = &g->tensors[out];
    if (y->kind == KN_TENSOR_CONSTANT)
      continue;
    if (is_alias_op(n->op)) {
      int in = n->inputs[0];
      if (in < 0 || in >= nt)
        continue;
      kn_tensor *x = &g->tensors[in];
      if (x->kind == KN_TENSOR_CONSTANT || x->optional_absent ||
          x->dtype != y->dtype || kn_tensor_bytes(x) != kn_tensor_bytes(y))
        continue;
      int r = find(parent, in);
      parent[out] = r;
      if (first[out] < first[r])
        first[r] = first[out];
      if (last[out] > last[r])
        last[r] = last[out];
      plan->aliased++;
      continue;
    }
    if (!is_inplace_op(n->op) || n->num_outputs != 1)
      continue;
    if (y->dtype != KESTREL_DTYPE_F32 && y->dtype != KESTREL_DTYPE_I8 &&
        y->dtype != KESTREL_DTYPE_U8)
      continue;
    for (int k = 0; k < n->num_inputs; k++) {
      int in = n->inputs[k];
      if (in < 0 || in >= nt)
        continue;
      kn_tensor *x = &g->tensors[in];
      if (x->kind == KN_TENSOR_CONSTANT || x->optional_absent ||
          !same_layout(x, y))
        continue;
      int r = find(parent, in);
      /* The whole group must die here, and hold no caller input. */
      if (last[r] != i || input_group[r])
        continue;
      bool shared = false;
      for (int j = 0; j < n->num_inputs; j++)
        if (j != k && n->inputs[j] >= 0 && n->inputs[j] != in &&
            find(parent, n->inputs[j]) == r)
          shared = true;
      if (shared)
        continue;
      parent[out] = r;
      if (last[out] > last[r])
        last[r] = last[out];
      plan->aliased++;
      break;
    }
  }
  /* Propagate input membership to roots (alias of an input is one too). */
  for (int t = 0; t < nt; t++)
    if (input_group[t])
      input_group[find(parent, t)] = true;
  free(input_group);

  int count = 0;
  for (int t = 0; t < nt; t++)
    gindex[t] = -1;
  for (int t = 0; t < nt; t++) {
    kn_tensor *x = &g->tensors[t];
    if (x->kind == KN_TENSOR_CONSTANT || x->optional_absent ||
        first[t] == INT32_MAX)
      continue;
    int r = find(parent, t);
    if (gindex[r] < 0) {
      gindex[r] = count;
      gr[count].root = r;
      gr[count].first = first[r];
      gr[count].last = last[r];
      count++;
    }
    group *q = &gr[gindex[r]];
    size_t b = align_up(kn_tensor_bytes(x));
    if (b == 0)
      b = KN_PLAN_ALIGN; /* a distinct valid address even when empty */
    if (b > q->bytes)
      q->bytes = b;
    if (first[t] < q->first)
      q->first = first[t];
    if (last[t] > q->last)
      q->last = last[t];
  }

  /* Lower bound: the most bytes alive at one step. */
  for (int s = -1; s <= forever; s++) {
    size_t live = 0;
    for (int i = 0; i < count; i++)
      if (gr[i].first <= s && s <= gr[i].last)
        live += gr[i].bytes;
    if (live > plan->lower_bound)
      plan->lower_bound = live;
  }

  sort_order(order, count, gr, before_by_size);
  size_t size_a = pack(gr, order, count, off_a, scratch);
  sort_order(order, count, gr, before_by_first);
  size_t size_b = pack(gr, order, count, off_b, scratch);
  size_t *off = size_a <= size_b ? off_a : off_b;
  plan->arena_bytes = size_a <= size_b ? size_a : size_b;
  for (int t = 0; t < nt; t++) {
    if (first[t] == INT32_MAX || g->tensors[t].kind == KN_TENSOR_CONSTANT ||
        g->tensors[t].optional_absent)
      continue;
    int r = find(parent, t);
    g->tensors[t].arena_offset = (int64_t)off[gindex[r]];
  }
done:
  free(first);
  free(last);
  free(parent);
  free(gindex);
  free(gr);
  free(order);
  free(scratch);
  free(off_a);
  free(off_b);
  return st;
}
