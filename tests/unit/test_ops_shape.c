/* Unit tests for the shape and misc reference kernels (nn/src/ops/shape.c,
 * misc.c): Slice, Transpose, Concat, Gather on random shapes against naive
 * index loops; Reshape/Squeeze/Unsqueeze/Split/Expand/Tile/Cast/Range; the
 * dynamic-shape refusal; Softmax (both opset forms), reductions, ArgMax,
 * CumSum, TopK. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

static int failures;
static kn_graph *G;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);                    \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
    }                                                                          \
  } while (0)

/* ---- harness (same as test_ops_elementwise.c) --------------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}

static void reset_graph(int opset) {
  if (G)
    kn_graph_free(G);
  G = kn_graph_new();
  G->opset = opset;
}

static int tensor(kestrel_dtype dt, int nd, const int64_t *dims) {
  char name[32];
  snprintf(name, sizeof(name), "t%d", G->num_tensors);
  int t = kn_graph_add_tensor(G, name);
  kn_tensor_alloc_data(&G->tensors[t], dt, nd, dims);
  return t;
}

/* Float tensor filled with its own flat index (plus an offset), so every
 * element is distinct and mix-ups show. */
static int iota_f32(int nd, const int64_t *dims, float base) {
  int t = tensor(KESTREL_DTYPE_F32, nd, dims);
  float *p = G->tensors[t].data;
  for (int64_t i = 0; i < kn_numel(nd, dims); i++)
    p[i] = base + (float)i;
  return t;
}

static int ints(int count, const int64_t *v) {
  int64_t d[1] = {count};
  int t = tensor(KESTREL_DTYPE_I64, 1, d);
  if (count)
    memcpy(G->tensors[t].data, v, sizeof(int64_t) * (size_t)count);
  return t;
}

static int out_tensor(void) {
  char name[32];
  snprintf(name, sizeof(name), "o%d", G->num_tensors);
  return kn_graph_add_tensor(G, name);
}

static kn_tensor *T(int t) { return &G->tensors[t]; }
static float *F(int t) { return G->tensors[t].data; }

static int node(kn_op op, const int *in, int nin, const int *out, int nout) {
  return kn_graph_add_node(G, op, "test", kn_op_name(op), in, nin, out, nout);
}

static kestrel_status exec(int ni, kestrel_error *err) {
  kn_node *n = &G->nodes[ni];
  const kn_op_info *info = kn_op_get(n->op);
  if (!info)
    return kn_fail(err, KESTREL_ERROR_UNSUPPORTED, "no op %d", n->op);
  kestrel_status st = info->infer(G, n, err);
  if (st != KESTREL_OK)
    return st;
  for (int k = 0; k < n->num_outputs; k++) {
    kn_tensor *t = kn_out(G, n, k);
    int64_t dims[KN_MAX_DIMS];
    memcpy(dims, t->dims, sizeof(dims));
    if (!kn_tensor_alloc_data(t, t->dtype, t->ndim, dims))
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "alloc");
  }
  size_t sb = info->scratch ? info->scratch(G, n) : 0;
  void *scratch = sb ? calloc(1, sb) : NULL;
  kn_exec x = {G, scratch, sb, 1, NULL};
  st = info->run(&x, n, err);
  free(scratch);
  return st;
}

static void random_shape(int nd, int64_t *dims, int maxd) {
  for (int d = 0; d < nd; d++)
    dims[d] = 1 + rnd() % (unsigned)maxd;
}

static void strides_of(int nd, const int64_t *dims, int64_t *st) {
  int64_t s = 1;
  for (int d = nd - 1; d >= 0; d--) {
    st[d] = s;
    s *= dims[d];
  }
}

static bool next_index(int nd, const int64_t *dims, int64_t *idx) {
  for (int d = nd - 1; d >= 0; d--) {
    if (++idx[d] < dims[d])
      return true;
    idx[d] = 0;
  }
  return false;
}

static void print_case(const char *what, int nd, const int64_t *d) {
  fprintf(stderr, "  %s [", what);
  for (int i = 0; i < nd; i++)
    fprintf(stderr, "%s%lld", i ? "," : "", (long long)d[i]);
  fprintf(stderr, "]\n");
}

/* ---- Slice --------------------------------------------------------------- */

/* The ONNX Slice rule as the spec words it (and ONNX Runtime does it):
 * negative indices count from the end, then start clamps to [0, len] for
 * positive steps and [0, len-1] for negative ones, end to [0, len] or
 * [-1, len-1]. (numpy differs only for a start before -len with a negative
 * step, which ONNX clamps to 0 and numpy treats as empty.) */
static int64_t onnx_slice(int64_t len, int64_t start, int64_t stop,
                          int64_t step, int64_t *first) {
  if (len == 0) {
    *first = 0;
    return 0;
  }
  if (start < 0)
    start = start < -len ? -1 : start + len;
  if (stop < 0)
    stop = stop < -len ? -1 : stop + len;
  int64_t lo = 0, hi = step < 0 ? len - 1 : len;
  start = start < lo ? lo : start > hi ? hi : start;
  lo = step < 0 ? -1 : 0;
  stop = stop < lo ? lo : stop > hi ? hi : stop;
  *first = start;
  int64_t count = 0;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
    count++;
  return count;
}

static void test_slice(void) {
  int cases = 0;
  for (int trial = 0; trial < 400; trial++) {
    reset_graph(13);
    int nd = 1 + rnd() % 5;
    int64_t dims[8];
    random_shape(nd, dims, 6);
    if (rnd() % 10 == 0)
      dims[rnd() % nd] = 0; /* zero-size input */
    int x = iota_f32(nd, dims, 0.0f);
    /* A random subset of axes, in random order, some negative. */
    int nax = 1 + rnd() % nd;
    int64_t axes[8], starts[8], ends[8], steps[8];
    bool used[8] = {false};
    for (int i = 0; i < nax; i++) {
      int a;
      do
        a = rnd() % nd;
      while (used[a]);
      used[a] = true;
      axes[i] = rnd() % 2 ? a : a - nd;
      int64_t len = dims[a];
      starts[i] = (int64_t)(rnd() % (unsigned)(2 * len + 5)) - len - 2;
      ends[i] = (int64_t)(rnd() % (unsigned)(2 * len + 5)) - len - 2;
      if (rnd() % 8 == 0)
        ends[i] = rnd() % 2 ? INT64_MAX : INT64_MIN;
      steps[i] = (int64_t)(1 + rnd() % 3) * (rnd() % 3 == 0 ? -1 : 1);
    }
    int in[5] = {x, ints(nax, starts), ints(nax, ends), ints(nax, axes),
                 ints(nax, steps)};
    int y = out_tensor();
    kestrel_error err = {{0}};
    kestrel_status st = exec(node(KN_OP_SLICE, in, 5, &y, 1), &err);
    cases++;
    CHECK(st == KESTREL_OK, "Slice trial %d: %s", trial, err.message);
    if (st != KESTREL_OK)
      continue;
    int64_t first[8], step[8], odims[8];
    for (int d = 0; d < nd; d++) {
      first[d] = 0;
      step[d] = 1;
      odims[d] = dims[d];
    }
    for (int i = 0; i < nax; i++) {
      int a = (int)(axes[i] < 0 ? axes[i] + nd : axes[i]);
      step[a] = steps[i];
      odims[a] = onnx_slice(dims[a], starts[i], ends[i], steps[i], &first[a]);
    }
    bool shape_ok = T(y)->ndim == nd;
    for (int d = 0; shape_ok && d < nd; d++)
      shape_ok = T(y)->dims[d] == odims[d];
    if (!shape_ok) {
      print_case("input", nd, dims);
      print_case("want", nd, odims);
      print_case("got", T(y)->ndim, T(y)->dims);
      for (int i = 0; i < nax; i++)
        fprintf(stderr, "  axis %lld start %lld end %lld step %lld\n",
                (long long)axes[i], (long long)starts[i], (long long)ends[i],
                (long long)steps[i]);
    }
    CHECK(shape_ok, "Slice trial %d: output shape", trial);
    if (!shape_ok || kn_numel(nd, odims) == 0)
      continue;
    int64_t ist[8], idx[8] = {0};
    strides_of(nd, dims, ist);
    int bad = 0;
    int64_t k = 0;
    do {
      int64_t off = 0;
      for (int d = 0; d < nd; d++)
        off += (first[d] + idx[d] * step[d]) * ist[d];
      if (F(y)[k] != (float)off)
        bad++;
      k++;
    } while (next_index(nd, odims, idx));
    CHECK(bad == 0, "Slice trial %d: %d mismatches", trial, bad);
  }
  /* Opset 9: attributes instead of inputs. */
  reset_graph(9);
  int64_t d[2] = {4, 5};
  int x = iota_f32(2, d, 0), y = out_tensor();
  int ni = node(KN_OP_SLICE, &x, 1, &y, 1);
  kn_node_set_ints(&G->nodes[ni], "starts", (const int64_t[]){1, -3}, 2);
  kn_node_set_ints(&G->nodes[ni], "ends", (const int64_t[]){1000, -1}, 2);
  kestrel_error err = {{0}};
  CHECK(exec(ni, &err) == KESTREL_OK, "Slice-9: %s", err.message);
  CHECK(T(y)->dims[0] == 3 && T(y)->dims[1] == 2, "Slice-9 shape");
  CHECK(F(y)[0] == 7 && F(y)[1] == 8 && F(y)[5] == 18, "Slice-9 values");
  printf("slice: %d cases\n", cases);
}

/* ---- Transpose, Concat, Gather ------------------------------------------ */

static void test_transpose(void) {
  for (int trial = 0; trial < 300; trial++) {
    reset_graph(13);
    int nd = 1 + rnd() % 6;
    int64_t dims[8], perm[8];
    random_shape(nd, dims, 5);
    for (int d = 0; d < nd; d++)
      perm[d] = d;
    for (int d = nd - 1; d > 0; d--) {
      int j = rnd() % (unsigned)(d + 1);
      int64_t t = perm[d];
      perm[d] = perm[j];
      perm[j] = t;
    }
    bool default_perm = rnd() % 5 == 0;
    if (default_perm)
      for (int d = 0; d < nd; d++)
        perm[d] = nd - 1 - d;
    int x = iota_f32(nd, dims, 0), y = out_tensor();
    int ni = node(KN_OP_TRANSPOSE, &x, 1, &y, 1);
    if (!default_perm)
      kn_node_set_ints(&G->nodes[ni], "perm", perm, nd);
    kestrel_error err = {{0}};
    kestrel_status st = exec(ni, &err);
    CHECK(st == KESTREL_OK, "Transpose: %s", err.message);
    if (st != KESTREL_OK)
      continue;
    int64_t odims[8], ist[8], idx[8] = {0};
    for (int d = 0; d < nd; d++)
      odims[d] = dims[perm[d]];
    strides_of(nd, dims, ist);
    int bad = 0;
    int64_t k = 0;
    do {
      int64_t off = 0;
      for (int d = 0; d < nd; d++)
        off += idx[d] * ist[perm[d]];
      if (F(y)[k++] != (float)off)
        bad++;
    } while (next_index(nd, odims, idx));
    if (bad)
      print_case("input", nd, dims), print_case("perm", nd, perm);
    CHECK(bad == 0, "Transpose trial %d: %d mismatches", trial, bad);
  }
}

static void test_concat(void) {
  for (int trial = 0; trial < 300; trial++) {
    reset_graph(13);
    int nd = 1 + rnd() % 5, count = 1 + rnd() % 4;
    int64_t dims[8];
    random_shape(nd, dims, 4);
    int axis = rnd() % nd;
    int in[4];
    int64_t sizes[4], total = 0;
    for (int i = 0; i < count; i++) {
      int64_t d[8];
      memcpy(d, dims, sizeof(d));
      d[axis] = rnd() % 4; /* zero allowed */
      sizes[i] = d[axis];
      total += d[axis];
      in[i] = iota_f32(nd, d, 1000.0f * (float)i);
    }
    int y = out_tensor();
    int ni = node(KN_OP_CONCAT, in, count, &y, 1);
    kn_node_set_int(&G->nodes[ni], "axis", rnd() % 2 ? axis : axis - nd);
    kestrel_error err = {{0}};
    kestrel_status st = exec(ni, &err);
    CHECK(st == KESTREL_OK, "Concat: %s", err.message);
    if (st != KESTREL_OK)
      continue;
    int64_t odims[8];
    memcpy(odims, dims, sizeof(odims));
    odims[axis] = total;
    CHECK(T(y)->dims[axis] == total, "Concat shape");
    if (total == 0)
      continue;
    int64_t idx[8] = {0}, k = 0;
    int bad = 0;
    do {
      int64_t a = idx[axis];
      int which = 0;
      while (a >= sizes[which])
        a -= sizes[which++];
      int64_t d[8], ist[8], off = 0;
      memcpy(d, dims, sizeof(d));
      d[axis] = sizes[which];
      strides_of(nd, d, ist);
      for (int j = 0; j < nd; j++)
        off += (j == axis ? a : idx[j]) * ist[j];
      if (F(y)[k++] != 1000.0f * (float)which + (float)off)
        bad++;
    } while (next_index(nd, odims, idx));
    CHECK(bad == 0, "Concat trial %d: %d mismatches", trial, bad);
  }
}

static void test_gather(void) {
  for (int trial = 0; trial < 300; trial++) {
    reset_graph(13);
    int nd = 1 + rnd() % 4, qd = rnd() % 3;
    int64_t dims[8], qdims[8];
    random_shape(nd, dims, 5);
    random_shape(qd, qdims, 3);
    int axis = rnd() % nd;
    int x = iota_f32(nd, dims, 0);
    bool i32 = rnd() % 2;
    int q = tensor(i32 ? KESTREL_DTYPE_I32 : KESTREL_DTYPE_I64, qd, qdims);
    int64_t nq = kn_numel(qd, qdims);
    for (int64_t i = 0; i < nq; i++) {
      /* valid range [-dim, dim) */
      int64_t v = (int64_t)(rnd() % (unsigned)(2 * dims[axis])) - dims[axis];
      if (i32)
        ((int32_t *)T(q)->data)[i] = (int32_t)v;
      else
        ((int64_t *)T(q)->data)[i] = v;
    }
    int y = out_tensor(), in[2] = {x, q};
    int ni = node(KN_OP_GATHER, in, 2, &y, 1);
    kn_node_set_int(&G->nodes[ni], "axis", rnd() % 2 ? axis : axis - nd);
    kestrel_error err = {{0}};
    kestrel_status st = exec(ni, &err);
    CHECK(st == KESTREL_OK, "Gather: %s", err.message);
    if (st != KESTREL_OK)
      continue;
    CHECK(T(y)->ndim == nd - 1 + qd, "Gather rank");
    int64_t ist[8];
    strides_of(nd, dims, ist);
    int64_t outer = kn_numel(axis, dims);
    int64_t inner = kn_numel(nd - axis - 1, dims + axis + 1);
    int bad = 0;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t j = 0; j < nq; j++)
        for (int64_t i = 0; i < inner; i++) {
          int64_t v = kn_read_int(T(q), j);
          if (v < 0)
            v += dims[axis];
          float want = (float)((o * dims[axis] + v) * inner + i);
          if (F(y)[(o * nq + j) * inner + i] != want)
            bad++;
        }
    CHECK(bad == 0, "Gather trial %d: %d mismatches", trial, bad);
  }
  /* Out-of-range index is an error at run time, not a crash. */
  reset_graph(13);
  int64_t d[1] = {3};
  int x = iota_f32(1, d, 0), q = ints(1, (const int64_t[]){3}), y = out_tensor();
  int in[2] = {x, q};
  kestrel_error err = {{0}};
  CHECK(exec(node(KN_OP_GATHER, in, 2, &y, 1), &err) != KESTREL_OK,
        "Gather index 3 of 3 accepted");
}

/* ---- the rest of the shape family ---------------------------------------- */

static bool dims_are(int t, int nd, const int64_t *want) {
  if (T(t)->ndim != nd)
    return false;
  for (int d = 0; d < nd; d++)
    if (T(t)->dims[d] != want[d])
      return false;
  return true;
}

static void test_shape_family(void) {
  kestrel_error err = {{0}};
  reset_graph(14);
  int64_t d[4] = {2, 3, 4, 1};
  int x = iota_f32(4, d, 0);
  /* Reshape with 0 (copy) and -1 (infer) */
  int y = out_tensor(), in[2] = {x, ints(3, (const int64_t[]){0, -1, 2})};
  CHECK(exec(node(KN_OP_RESHAPE, in, 2, &y, 1), &err) == KESTREL_OK,
        "Reshape: %s", err.message);
  CHECK(dims_are(y, 3, (const int64_t[]){2, 6, 2}), "Reshape 0/-1 shape");
  CHECK(F(y)[23] == 23.0f, "Reshape data");
  /* allowzero=1 keeps a literal 0: 24 elements cannot be [0, 24] */
  y = out_tensor();
  in[1] = ints(2, (const int64_t[]){0, 24});
  int ni = node(KN_OP_RESHAPE, in, 2, &y, 1);
  kn_node_set_int(&G->nodes[ni], "allowzero", 1);
  CHECK(exec(ni, &err) == KESTREL_ERROR_SHAPE, "Reshape allowzero");
  /* A non-constant shape is a dynamic shape: UNSUPPORTED. */
  y = out_tensor();
  in[1] = ints(2, (const int64_t[]){4, 6});
  T(in[1])->kind = KN_TENSOR_ACTIVATION;
  CHECK(exec(node(KN_OP_RESHAPE, in, 2, &y, 1), &err) ==
            KESTREL_ERROR_UNSUPPORTED,
        "dynamic Reshape shape accepted");
  CHECK(strstr(err.message, "dynamic shape") != NULL, "message: %s",
        err.message);
  /* Flatten axis -1 */
  y = out_tensor();
  ni = node(KN_OP_FLATTEN, &x, 1, &y, 1);
  kn_node_set_int(&G->nodes[ni], "axis", -1);
  CHECK(exec(ni, &err) == KESTREL_OK, "Flatten");
  CHECK(dims_are(y, 2, (const int64_t[]){24, 1}), "Flatten shape");
  /* Squeeze (opset 13 axes input) and without axes */
  y = out_tensor();
  in[1] = ints(1, (const int64_t[]){-1});
  CHECK(exec(node(KN_OP_SQUEEZE, in, 2, &y, 1), &err) == KESTREL_OK,
        "Squeeze: %s", err.message);
  CHECK(dims_are(y, 3, (const int64_t[]){2, 3, 4}), "Squeeze shape");
  y = out_tensor();
  in[1] = ints(1, (const int64_t[]){0});
  CHECK(exec(node(KN_OP_SQUEEZE, in, 2, &y, 1), &err) == KESTREL_ERROR_SHAPE,
        "Squeeze of a size-2 dim accepted");
  /* Unsqueeze with unsorted, negative axes: [2,3,4,1] -> [1,2,3,1,4,1,1]? */
  y = out_tensor();
  in[1] = ints(3, (const int64_t[]){-1, 0, 3});
  CHECK(exec(node(KN_OP_UNSQUEEZE, in, 2, &y, 1), &err) == KESTREL_OK,
        "Unsqueeze: %s", err.message);
  CHECK(dims_are(y, 7, (const int64_t[]){1, 2, 3, 1, 4, 1, 1}),
        "Unsqueeze shape");
  /* Split with sizes input, and equal split */
  int outs[3] = {out_tensor(), out_tensor(), out_tensor()};
  in[1] = ints(3, (const int64_t[]){1, 0, 3});
  ni = node(KN_OP_SPLIT, in, 2, outs, 3);
  kn_node_set_int(&G->nodes[ni], "axis", 2);
  CHECK(exec(ni, &err) == KESTREL_OK, "Split: %s", err.message);
  CHECK(dims_are(outs[0], 4, (const int64_t[]){2, 3, 1, 1}) &&
            dims_are(outs[1], 4, (const int64_t[]){2, 3, 0, 1}) &&
            dims_are(outs[2], 4, (const int64_t[]){2, 3, 3, 1}),
        "Split shapes");
  CHECK(F(outs[0])[1] == 4.0f && F(outs[2])[0] == 1.0f &&
            F(outs[2])[3] == 5.0f,
        "Split values");
  /* Expand [3,1] to [2,1,4] -> [2,3,4] */
  int64_t d31[2] = {3, 1};
  int e = iota_f32(2, d31, 0);
  y = out_tensor();
  int ein[2] = {e, ints(3, (const int64_t[]){2, 1, 4})};
  CHECK(exec(node(KN_OP_EXPAND, ein, 2, &y, 1), &err) == KESTREL_OK,
        "Expand: %s", err.message);
  CHECK(dims_are(y, 3, (const int64_t[]){2, 3, 4}), "Expand shape");
  for (int i = 0; i < 24; i++)
    CHECK(F(y)[i] == (float)((i / 4) % 3), "Expand value %d", i);
  /* Tile [3,1] by [2,3] */
  y = out_tensor();
  ein[1] = ints(2, (const int64_t[]){2, 3});
  CHECK(exec(node(KN_OP_TILE, ein, 2, &y, 1), &err) == KESTREL_OK,
        "Tile: %s", err.message);
  CHECK(dims_are(y, 2, (const int64_t[]){6, 3}), "Tile shape");
  for (int i = 0; i < 18; i++)
    CHECK(F(y)[i] == (float)((i / 3) % 3), "Tile value %d", i);
  /* Shape with start/end, Size */
  y = out_tensor();
  ni = node(KN_OP_SHAPE, &x, 1, &y, 1);
  kn_node_set_int(&G->nodes[ni], "start", -3);
  kn_node_set_int(&G->nodes[ni], "end", -1);
  CHECK(exec(ni, &err) == KESTREL_OK, "Shape");
  CHECK(dims_are(y, 1, (const int64_t[]){2}) &&
            ((int64_t *)T(y)->data)[0] == 3 && ((int64_t *)T(y)->data)[1] == 4,
        "Shape start/end values");
  y = out_tensor();
  CHECK(exec(node(KN_OP_SIZE, &x, 1, &y, 1), &err) == KESTREL_OK, "Size");
  CHECK(T(y)->ndim == 0 && ((int64_t *)T(y)->data)[0] == 24, "Size value");
  /* Range int64 and float */
  int r[3] = {ints(1, (const int64_t[]){10}), ints(1, (const int64_t[]){1}),
              ints(1, (const int64_t[]){-3})};
  y = out_tensor();
  CHECK(exec(node(KN_OP_RANGE, r, 3, &y, 1), &err) == KESTREL_OK, "Range: %s",
        err.message);
  CHECK(dims_are(y, 1, (const int64_t[]){3}) &&
            ((int64_t *)T(y)->data)[2] == 4,
        "Range values");
  /* Cast f32 -> i8 (truncates), f16 round trip, -> bool */
  int64_t d5[1] = {5};
  int c = tensor(KESTREL_DTYPE_F32, 1, d5);
  const float cv[5] = {-2.7f, -0.5f, 0.0f, 1.9f, 65504.0f};
  memcpy(F(c), cv, sizeof(cv));
  int yi = out_tensor(), yh = out_tensor(), yb = out_tensor(),
      yf = out_tensor();
  ni = node(KN_OP_CAST, &c, 1, &yi, 1);
  kn_node_set_int(&G->nodes[ni], "to", 6); /* INT32 */
  CHECK(exec(ni, &err) == KESTREL_OK, "Cast i32");
  ni = node(KN_OP_CAST, &c, 1, &yh, 1);
  kn_node_set_int(&G->nodes[ni], "to", 10); /* FLOAT16 */
  CHECK(exec(ni, &err) == KESTREL_OK, "Cast f16");
  ni = node(KN_OP_CAST, &c, 1, &yb, 1);
  kn_node_set_int(&G->nodes[ni], "to", 9); /* BOOL */
  CHECK(exec(ni, &err) == KESTREL_OK, "Cast bool");
  ni = node(KN_OP_CAST, &yh, 1, &yf, 1);
  kn_node_set_int(&G->nodes[ni], "to", 1); /* back to FLOAT */
  CHECK(exec(ni, &err) == KESTREL_OK, "Cast f16->f32");
  const int32_t wi[5] = {-2, 0, 0, 1, 65504};
  const uint8_t wb[5] = {1, 1, 0, 1, 1};
  CHECK(memcmp(T(yi)->data, wi, sizeof(wi)) == 0, "Cast i32 values");
  CHECK(memcmp(T(yb)->data, wb, sizeof(wb)) == 0, "Cast bool values");
  CHECK(F(yf)[0] == -2.69921875f && F(yf)[4] == 65504.0f, "f16 round trip %g",
        F(yf)[0]);
  /* ConstantOfShape as the ONNX importer encodes it */
  y = out_tensor();
  int shp = ints(2, (const int64_t[]){2, 3});
  ni = node(KN_OP_CONSTANT_OF_SHAPE, &shp, 1, &y, 1);
  kn_node_set_ints(&G->nodes[ni], "value", (const int64_t[]){7}, 1);
  kn_node_set_int(&G->nodes[ni], "value_dtype", KESTREL_DTYPE_I32);
  CHECK(exec(ni, &err) == KESTREL_OK, "ConstantOfShape: %s", err.message);
  CHECK(T(y)->dtype == KESTREL_DTYPE_I32 && ((int32_t *)T(y)->data)[5] == 7,
        "ConstantOfShape value");
}

/* ---- misc: softmax, reductions, arg, cumsum, topk ------------------------ */

static void test_misc(void) {
  kestrel_error err = {{0}};
  int64_t d[3] = {2, 3, 4};
  /* Softmax opset 13: along axis 1 only. */
  reset_graph(13);
  int x = iota_f32(3, d, 0), y = out_tensor();
  int ni = node(KN_OP_SOFTMAX, &x, 1, &y, 1);
  kn_node_set_int(&G->nodes[ni], "axis", 1);
  CHECK(exec(ni, &err) == KESTREL_OK, "Softmax-13");
  int bad = 0;
  for (int o = 0; o < 2; o++)
    for (int i = 0; i < 4; i++) {
      double sum = 0;
      for (int k = 0; k < 3; k++)
        sum += exp(F(x)[(o * 3 + k) * 4 + i]);
      for (int k = 0; k < 3; k++) {
        double want = exp(F(x)[(o * 3 + k) * 4 + i]) / sum;
        if (fabs(F(y)[(o * 3 + k) * 4 + i] - want) > 1e-6)
          bad++;
      }
    }
  CHECK(bad == 0, "Softmax-13 values: %d bad", bad);
  /* Softmax opset 11: coerced to [2, 12] at axis 1. */
  reset_graph(11);
  x = iota_f32(3, d, 0);
  for (int i = 0; i < 24; i++)
    F(x)[i] *= 0.25f;
  y = out_tensor();
  ni = node(KN_OP_LOG_SOFTMAX, &x, 1, &y, 1);
  CHECK(exec(ni, &err) == KESTREL_OK, "LogSoftmax-11");
  bad = 0;
  for (int o = 0; o < 2; o++) {
    double sum = 0;
    for (int k = 0; k < 12; k++)
      sum += exp(F(x)[o * 12 + k]);
    for (int k = 0; k < 12; k++)
      if (fabs(F(y)[o * 12 + k] - (F(x)[o * 12 + k] - log(sum))) > 1e-5)
        bad++;
  }
  CHECK(bad == 0, "LogSoftmax-11 values: %d bad", bad);

  /* Reductions over random axis subsets against a naive loop. */
  static const kn_op rops[] = {KN_OP_REDUCE_SUM, KN_OP_REDUCE_MEAN,
                               KN_OP_REDUCE_MAX, KN_OP_REDUCE_MIN,
                               KN_OP_REDUCE_PROD, KN_OP_REDUCE_L1,
                               KN_OP_REDUCE_L2, KN_OP_REDUCE_SUM_SQUARE,
                               KN_OP_REDUCE_LOG_SUM_EXP};
  for (int trial = 0; trial < 180; trial++) {
    kn_op op = rops[trial % 9];
    reset_graph(13);
    int nd = 1 + rnd() % 4;
    int64_t dims[8];
    random_shape(nd, dims, 4);
    x = iota_f32(nd, dims, 0);
    /* Products of near-1 values stay finite in float. */
    for (int64_t i = 0; i < kn_numel(nd, dims); i++)
      F(x)[i] = op == KN_OP_REDUCE_PROD
                    ? 0.8f + (float)(rnd() % 100) / 250.0f
                    : (float)((rnd() % 200) - 100) / 50.0f;
    bool red[8] = {false};
    int64_t axes[8];
    int nax = rnd() % (nd + 1);
    for (int i = 0; i < nax; i++) {
      int a;
      do
        a = rnd() % nd;
      while (red[a]);
      red[a] = true;
      axes[i] = a;
    }
    if (nax == 0)
      for (int i = 0; i < nd; i++)
        red[i] = true;
    bool keep = rnd() % 2;
    y = out_tensor();
    int in[2] = {x, ints(nax, axes)};
    /* ReduceSum-13 takes axes as input, the others as attribute. */
    ni = node(op, in, op == KN_OP_REDUCE_SUM ? 2 : 1, &y, 1);
    if (op != KN_OP_REDUCE_SUM && nax)
      kn_node_set_ints(&G->nodes[ni], "axes", axes, nax);
    kn_node_set_int(&G->nodes[ni], "keepdims", keep);
    kestrel_status st = exec(ni, &err);
    CHECK(st == KESTREL_OK, "%s: %s", kn_op_name(op), err.message);
    if (st != KESTREL_OK)
      continue;
    /* Output positions: index over kept dims only. */
    int64_t kd[8], nk = 0;
    for (int dd = 0; dd < nd; dd++)
      if (!red[dd])
        kd[nk++] = dims[dd];
    CHECK(kn_tensor_numel(T(y)) == kn_numel((int)nk, kd), "%s numel",
          kn_op_name(op));
    CHECK(T(y)->ndim == (keep ? nd : (int)nk), "%s rank", kn_op_name(op));
    int64_t ist[8];
    strides_of(nd, dims, ist);
    bad = 0;
    int64_t kidx[8] = {0}, o = 0;
    do {
      double acc = op == KN_OP_REDUCE_PROD  ? 1
                   : op == KN_OP_REDUCE_MAX ? -INFINITY
                   : op == KN_OP_REDUCE_MIN ? INFINITY
                                            : 0;
      int64_t cnt = 0, full[8] = {0};
      do {
        int64_t off = 0;
        for (int dd = 0, k = 0; dd < nd; dd++) {
          int64_t c = red[dd] ? full[dd] : kidx[k];
          if (!red[dd])
            k++;
          off += c * ist[dd];
        }
        double v = F(x)[off];
        cnt++;
        switch (op) {
        case KN_OP_REDUCE_MAX: acc = fmax(acc, v); break;
        case KN_OP_REDUCE_MIN: acc = fmin(acc, v); break;
        case KN_OP_REDUCE_PROD: acc *= v; break;
        case KN_OP_REDUCE_L1: acc += fabs(v); break;
        case KN_OP_REDUCE_L2:
        case KN_OP_REDUCE_SUM_SQUARE: acc += v * v; break;
        case KN_OP_REDUCE_LOG_SUM_EXP: acc += exp(v); break;
        default: acc += v; break;
        }
        /* advance over reduced dims only */
        int dd;
        for (dd = nd - 1; dd >= 0; dd--) {
          if (!red[dd])
            continue;
          if (++full[dd] < dims[dd])
            break;
          full[dd] = 0;
        }
        if (dd < 0)
          break;
      } while (1);
      if (op == KN_OP_REDUCE_MEAN)
        acc /= (double)cnt;
      if (op == KN_OP_REDUCE_L2)
        acc = sqrt(acc);
      if (op == KN_OP_REDUCE_LOG_SUM_EXP)
        acc = log(acc);
      if (fabs(F(y)[o] - acc) > 1e-4 + 1e-4 * fabs(acc) && bad++ < 2)
        fprintf(stderr, "  %s out %lld: %g want %g\n", kn_op_name(op),
                (long long)o, F(y)[o], acc);
      o++;
    } while (next_index((int)nk, kd, kidx));
    CHECK(bad == 0, "%s trial %d: %d mismatches", kn_op_name(op), trial, bad);
  }
  /* noop_with_empty_axes: identity */
  reset_graph(13);
  x = iota_f32(3, d, 0);
  y = out_tensor();
  ni = node(KN_OP_REDUCE_SUM, &x, 1, &y, 1);
  kn_node_set_int(&G->nodes[ni], "noop_with_empty_axes", 1);
  CHECK(exec(ni, &err) == KESTREL_OK && dims_are(y, 3, d) && F(y)[23] == 23,
        "ReduceSum noop");

  /* ArgMax with ties and select_last_index */
  int64_t d6[1] = {6};
  x = tensor(KESTREL_DTYPE_F32, 1, d6);
  memcpy(F(x), (const float[]){1, 5, 2, 5, 0, 5}, 24);
  int y1 = out_tensor(), y2 = out_tensor();
  CHECK(exec(node(KN_OP_ARGMAX, &x, 1, &y1, 1), &err) == KESTREL_OK, "ArgMax");
  ni = node(KN_OP_ARGMAX, &x, 1, &y2, 1);
  kn_node_set_int(&G->nodes[ni], "select_last_index", 1);
  kn_node_set_int(&G->nodes[ni], "keepdims", 0);
  CHECK(exec(ni, &err) == KESTREL_OK, "ArgMax last");
  CHECK(((int64_t *)T(y1)->data)[0] == 1 && ((int64_t *)T(y2)->data)[0] == 5 &&
            T(y2)->ndim == 0,
        "ArgMax values");
  /* CumSum exclusive + reverse */
  int ax = ints(1, (const int64_t[]){0});
  y = out_tensor();
  int cin[2] = {x, ax};
  ni = node(KN_OP_CUMSUM, cin, 2, &y, 1);
  kn_node_set_int(&G->nodes[ni], "exclusive", 1);
  kn_node_set_int(&G->nodes[ni], "reverse", 1);
  CHECK(exec(ni, &err) == KESTREL_OK, "CumSum: %s", err.message);
  const float wc[6] = {17, 12, 10, 5, 5, 0};
  CHECK(memcmp(F(y), wc, sizeof(wc)) == 0, "CumSum values");
  /* TopK largest with ties: lower index first */
  int vals = out_tensor(), idx = out_tensor();
  int tin[2] = {x, ints(1, (const int64_t[]){4})};
  int touts[2] = {vals, idx};
  CHECK(exec(node(KN_OP_TOPK, tin, 2, touts, 2), &err) == KESTREL_OK,
        "TopK: %s", err.message);
  const float wv[4] = {5, 5, 5, 2};
  const int64_t wi[4] = {1, 3, 5, 2};
  CHECK(memcmp(F(vals), wv, sizeof(wv)) == 0 &&
            memcmp(T(idx)->data, wi, sizeof(wi)) == 0,
        "TopK values/indices");
}

int main(void) {
  test_slice();
  test_transpose();
  test_concat();
  test_gather();
  test_shape_family();
  test_misc();
  kn_graph_free(G);
  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("all shape/misc tests passed\n");
  return 0;
}
