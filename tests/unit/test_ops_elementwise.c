/* Unit tests for the element-wise reference kernels (nn/src/ops/elementwise.c):
 * broadcasting in every rank combination against a naive index loop, integer
 * and bool dtypes, quantized Add/Mul requantization, unary maths against
 * double-precision libm, Clip in both opset forms, fused activations. */
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

/* ---- harness ------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}
static float rndf(float lo, float hi) {
  return lo + (hi - lo) * (float)(rnd() % 100000) / 100000.0f;
}

static void reset_graph(int opset) {
  if (G)
    kn_graph_free(G);
  G = kn_graph_new();
  G->opset = opset;
}

/* A constant tensor with zeroed data of the given dtype/shape. */
static int tensor(kestrel_dtype dt, int nd, const int64_t *dims) {
  char name[32];
  snprintf(name, sizeof(name), "t%d", G->num_tensors);
  int t = kn_graph_add_tensor(G, name);
  kn_tensor_alloc_data(&G->tensors[t], dt, nd, dims);
  return t;
}

static int tensor_f32(int nd, const int64_t *dims, const float *v) {
  int t = tensor(KESTREL_DTYPE_F32, nd, dims);
  if (v)
    memcpy(G->tensors[t].data, v, sizeof(float) * (size_t)kn_numel(nd, dims));
  return t;
}

static int out_tensor(void) {
  char name[32];
  snprintf(name, sizeof(name), "o%d", G->num_tensors);
  return kn_graph_add_tensor(G, name);
}

static void *data(int t) { return G->tensors[t].data; }
static kn_tensor *T(int t) { return &G->tensors[t]; }

static int node(kn_op op, const int *in, int nin, const int *out, int nout) {
  return kn_graph_add_node(G, op, "test", kn_op_name(op), in, nin, out, nout);
}

/* infer + allocate outputs + run, as loading and a session would. */
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

/* ---- naive broadcasting reference -------------------------------------- */

/* Offset in a right-aligned operand of (nd_t, dims_t) for output index idx. */
static int64_t bcast_offset(int nd, const int64_t *idx, int nd_t,
                            const int64_t *dims_t) {
  int64_t off = 0;
  for (int d = 0; d < nd_t; d++) {
    int od = d + (nd - nd_t);
    off = off * dims_t[d] + (dims_t[d] == 1 ? 0 : idx[od]);
  }
  return off;
}

static float ref_f32(kn_op op, float a, float b) {
  switch (op) {
  case KN_OP_ADD: return a + b;
  case KN_OP_SUB: return a - b;
  case KN_OP_MUL: return a * b;
  case KN_OP_DIV: return a / b;
  case KN_OP_MAX: return a > b ? a : b;
  case KN_OP_MIN: return a < b ? a : b;
  case KN_OP_POW: return powf(a, b);
  case KN_OP_PRELU: return a < 0 ? a * b : a;
  case KN_OP_MOD: return fmodf(a, b);
  case KN_OP_EQUAL: return a == b;
  case KN_OP_LESS: return a < b;
  case KN_OP_GREATER: return a > b;
  case KN_OP_LESS_OR_EQUAL: return a <= b;
  case KN_OP_GREATER_OR_EQUAL: return a >= b;
  default: return NAN;
  }
}

static bool is_compare(kn_op op) {
  return op == KN_OP_EQUAL || op == KN_OP_LESS || op == KN_OP_GREATER ||
         op == KN_OP_LESS_OR_EQUAL || op == KN_OP_GREATER_OR_EQUAL;
}

static void print_shape(const char *what, int nd, const int64_t *d) {
  fprintf(stderr, "  %s [", what);
  for (int i = 0; i < nd; i++)
    fprintf(stderr, "%s%lld", i ? "," : "", (long long)d[i]);
  fprintf(stderr, "]\n");
}

/* Random shape pair of ranks ra, rb that broadcast together. */
static void random_pair(int ra, int rb, int64_t *da, int64_t *db, int *nd,
                        int64_t *dout, bool allow_zero) {
  int n = ra > rb ? ra : rb;
  for (int i = 0; i < n; i++) {
    int64_t full = 1 + rnd() % 4;
    if (allow_zero && rnd() % 20 == 0)
      full = 0;
    dout[i] = full;
  }
  for (int i = 0; i < ra; i++)
    da[i] = rnd() % 3 == 0 ? 1 : dout[i + n - ra];
  for (int i = 0; i < rb; i++)
    db[i] = rnd() % 3 == 0 ? 1 : dout[i + n - rb];
  /* The true output is the broadcast of the two, not dout. */
  for (int i = 0; i < n; i++) {
    int64_t a = i < n - ra ? 1 : da[i - (n - ra)];
    int64_t b = i < n - rb ? 1 : db[i - (n - rb)];
    dout[i] = a == 1 ? b : a;
  }
  *nd = n;
}

static void test_broadcast_f32(void) {
  static const kn_op ops[] = {KN_OP_ADD,   KN_OP_SUB,  KN_OP_MUL,
                              KN_OP_DIV,   KN_OP_MAX,  KN_OP_MIN,
                              KN_OP_POW,   KN_OP_MOD,  KN_OP_EQUAL,
                              KN_OP_LESS,  KN_OP_GREATER,
                              KN_OP_LESS_OR_EQUAL, KN_OP_GREATER_OR_EQUAL};
  int cases = 0;
  for (int ra = 0; ra <= 5; ra++)
    for (int rb = 0; rb <= 5; rb++)
      for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++)
        for (int trial = 0; trial < 3; trial++) {
          kn_op op = ops[o];
          reset_graph(17);
          int64_t da[8], db[8], dy[8];
          int nd;
          random_pair(ra, rb, da, db, &nd, dy, true);
          int a = tensor_f32(ra, da, NULL), b = tensor_f32(rb, db, NULL);
          int64_t na = kn_numel(ra, da), nb = kn_numel(rb, db);
          float *pa = data(a), *pb = data(b);
          for (int64_t i = 0; i < na; i++)
            pa[i] = op == KN_OP_POW ? rndf(0.1f, 3.0f) : rndf(-4.0f, 4.0f);
          for (int64_t i = 0; i < nb; i++) {
            pb[i] = op == KN_OP_POW ? rndf(-2.0f, 2.0f) : rndf(-4.0f, 4.0f);
            if (op == KN_OP_DIV || op == KN_OP_MOD)
              pb[i] = (pb[i] < 0 ? -0.5f : 0.5f) + pb[i];
            if (is_compare(op) && rnd() % 3 == 0 && na)
              pb[i] = pa[rnd() % na]; /* exercise equality */
          }
          int y = out_tensor();
          int in[2] = {a, b};
          int ni = node(op, in, 2, &y, 1);
          if (op == KN_OP_MOD)
            kn_node_set_int(&G->nodes[ni], "fmod", 1);
          kestrel_error err = {{0}};
          kestrel_status st = exec(ni, &err);
          cases++;
          CHECK(st == KESTREL_OK, "%s ranks %d,%d: %s", kn_op_name(op), ra, rb,
                err.message);
          if (st != KESTREL_OK)
            continue;
          const kn_tensor *ty = T(y);
          bool shape_ok = ty->ndim == nd;
          for (int d = 0; shape_ok && d < nd; d++)
            shape_ok = ty->dims[d] == dy[d];
          CHECK(shape_ok, "%s ranks %d,%d: wrong output shape",
                kn_op_name(op), ra, rb);
          if (!shape_ok)
            continue;
          int64_t ny = kn_numel(nd, dy), idx[8] = {0};
          int bad = 0;
          for (int64_t i = 0; i < ny; i++) {
            float va = pa[bcast_offset(nd, idx, ra, da)];
            float vb = pb[bcast_offset(nd, idx, rb, db)];
            float want = ref_f32(op, va, vb);
            float got = is_compare(op) ? (float)((uint8_t *)ty->data)[i]
                                       : ((float *)ty->data)[i];
            if (!(got == want || (isnan(got) && isnan(want))) && bad++ < 3)
              fprintf(stderr, "  %s elem %lld: %g op %g = %g, want %g\n",
                      kn_op_name(op), (long long)i, va, vb, got, want);
            for (int d = nd - 1; d >= 0; d--) {
              if (++idx[d] < dy[d])
                break;
              idx[d] = 0;
            }
          }
          if (bad) {
            print_shape("A", ra, da);
            print_shape("B", rb, db);
          }
          CHECK(bad == 0, "%s ranks %d,%d: %d mismatches", kn_op_name(op), ra,
                rb, bad);
        }
  printf("broadcast f32: %d cases\n", cases);
}

/* Integer dtypes (exporters' shape arithmetic) through the same sweep. */
static void test_broadcast_int(void) {
  static const kestrel_dtype dts[] = {KESTREL_DTYPE_I64, KESTREL_DTYPE_I32,
                                      KESTREL_DTYPE_I8, KESTREL_DTYPE_U8};
  static const kn_op ops[] = {KN_OP_ADD, KN_OP_SUB, KN_OP_MUL, KN_OP_DIV,
                              KN_OP_MAX, KN_OP_EQUAL, KN_OP_GREATER};
  int cases = 0;
  for (size_t t = 0; t < 4; t++)
    for (int ra = 0; ra <= 4; ra++)
      for (int rb = 0; rb <= 4; rb++)
        for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
          kn_op op = ops[o];
          kestrel_dtype dt = dts[t];
          reset_graph(17);
          int64_t da[8], db[8], dy[8];
          int nd;
          random_pair(ra, rb, da, db, &nd, dy, false);
          int a = tensor(dt, ra, da), b = tensor(dt, rb, db);
          int64_t na = kn_numel(ra, da), nb = kn_numel(rb, db);
          for (int64_t i = 0; i < na; i++) {
            int64_t v = (int64_t)(rnd() % 21) - 10;
            if (dt == KESTREL_DTYPE_U8)
              v = rnd() % 16;
            switch (dt) {
            case KESTREL_DTYPE_I64: ((int64_t *)data(a))[i] = v; break;
            case KESTREL_DTYPE_I32: ((int32_t *)data(a))[i] = (int32_t)v; break;
            case KESTREL_DTYPE_I8: ((int8_t *)data(a))[i] = (int8_t)v; break;
            default: ((uint8_t *)data(a))[i] = (uint8_t)v; break;
            }
          }
          for (int64_t i = 0; i < nb; i++) {
            int64_t v = (int64_t)(rnd() % 9) + 1; /* non-zero divisors */
            if (dt != KESTREL_DTYPE_U8 && rnd() % 2)
              v = -v;
            switch (dt) {
            case KESTREL_DTYPE_I64: ((int64_t *)data(b))[i] = v; break;
            case KESTREL_DTYPE_I32: ((int32_t *)data(b))[i] = (int32_t)v; break;
            case KESTREL_DTYPE_I8: ((int8_t *)data(b))[i] = (int8_t)v; break;
            default: ((uint8_t *)data(b))[i] = (uint8_t)v; break;
            }
          }
          int y = out_tensor(), in[2] = {a, b};
          int ni = node(op, in, 2, &y, 1);
          kestrel_error err = {{0}};
          kestrel_status st = exec(ni, &err);
          cases++;
          CHECK(st == KESTREL_OK, "%s %s: %s", kn_op_name(op),
                kestrel_dtype_name(dt), err.message);
          if (st != KESTREL_OK)
            continue;
          const kn_tensor *ty = T(y);
          CHECK(ty->dtype == (is_compare(op) ? KESTREL_DTYPE_BOOL : dt),
                "%s output dtype %s", kn_op_name(op),
                kestrel_dtype_name(ty->dtype));
          int64_t ny = kn_numel(nd, dy), idx[8] = {0};
          int bad = 0;
          for (int64_t i = 0; i < ny; i++) {
            int64_t va = kn_read_int(T(a), bcast_offset(nd, idx, ra, da));
            int64_t vb = kn_read_int(T(b), bcast_offset(nd, idx, rb, db));
            int64_t want;
            switch (op) {
            case KN_OP_ADD: want = va + vb; break;
            case KN_OP_SUB: want = va - vb; break;
            case KN_OP_MUL: want = va * vb; break;
            case KN_OP_DIV: want = va / vb; break; /* C truncation */
            case KN_OP_MAX: want = va > vb ? va : vb; break;
            case KN_OP_EQUAL: want = va == vb; break;
            default: want = va > vb; break;
            }
            /* Wrap to the output's width as the kernel stores it. */
            int64_t got = kn_read_int(ty, i);
            if (ty->dtype == KESTREL_DTYPE_U8)
              want = (uint8_t)want;
            else if (ty->dtype == KESTREL_DTYPE_I8)
              want = (int8_t)want;
            if (got != want && bad++ < 3)
              fprintf(stderr, "  %s %s: %lld op %lld = %lld, want %lld\n",
                      kn_op_name(op), kestrel_dtype_name(dt), (long long)va,
                      (long long)vb, (long long)got, (long long)want);
            for (int d = nd - 1; d >= 0; d--) {
              if (++idx[d] < dy[d])
                break;
              idx[d] = 0;
            }
          }
          CHECK(bad == 0, "%s %s ranks %d,%d: %d mismatches", kn_op_name(op),
                kestrel_dtype_name(dt), ra, rb, bad);
        }
  printf("broadcast int: %d cases\n", cases);
}

static void test_where_and_variadic(void) {
  for (int trial = 0; trial < 200; trial++) {
    reset_graph(17);
    int rc = rnd() % 4, rx = rnd() % 4, ry = rnd() % 4;
    int64_t dfull[8];
    int n = rc > rx ? rc : rx;
    n = n > ry ? n : ry;
    for (int i = 0; i < n; i++)
      dfull[i] = 1 + rnd() % 3;
    int64_t dc[8], dx[8], dyy[8];
    for (int i = 0; i < rc; i++)
      dc[i] = rnd() % 2 ? 1 : dfull[i + n - rc];
    for (int i = 0; i < rx; i++)
      dx[i] = rnd() % 2 ? 1 : dfull[i + n - rx];
    for (int i = 0; i < ry; i++)
      dyy[i] = rnd() % 2 ? 1 : dfull[i + n - ry];
    int c = tensor(KESTREL_DTYPE_BOOL, rc, dc);
    int x = tensor_f32(rx, dx, NULL), y = tensor_f32(ry, dyy, NULL);
    for (int64_t i = 0; i < kn_numel(rc, dc); i++)
      ((uint8_t *)data(c))[i] = rnd() % 2;
    for (int64_t i = 0; i < kn_numel(rx, dx); i++)
      ((float *)data(x))[i] = rndf(-5, 5);
    for (int64_t i = 0; i < kn_numel(ry, dyy); i++)
      ((float *)data(y))[i] = rndf(-5, 5);
    /* Where */
    int o = out_tensor(), in[3] = {c, x, y};
    kestrel_error err = {{0}};
    kestrel_status st = exec(node(KN_OP_WHERE, in, 3, &o, 1), &err);
    CHECK(st == KESTREL_OK, "Where: %s", err.message);
    /* Sum, Mean, Max over the three as floats (cond as 0/1 via x) */
    int o2 = out_tensor(), in2[3] = {x, y, x};
    st = exec(node(KN_OP_MEAN, in2, 3, &o2, 1), &err);
    CHECK(st == KESTREL_OK, "Mean: %s", err.message);
    int o3 = out_tensor();
    st = exec(node(KN_OP_MAX, in2, 3, &o3, 1), &err);
    CHECK(st == KESTREL_OK, "Max: %s", err.message);
    if (failures)
      return;
    int64_t idx[8] = {0}, ny = kn_numel(n, dfull);
    /* The real output shape of Where is the broadcast of all three. */
    const kn_tensor *to = T(o);
    int bad = 0;
    ny = kn_tensor_numel(to);
    int nd = to->ndim;
    for (int64_t i = 0; i < ny; i++) {
      bool cv = ((uint8_t *)data(c))[bcast_offset(nd, idx, rc, dc)];
      float xv = ((float *)data(x))[bcast_offset(nd, idx, rx, dx)];
      float yv = ((float *)data(y))[bcast_offset(nd, idx, ry, dyy)];
      if (((float *)to->data)[i] != (cv ? xv : yv))
        bad++;
      (void)ny;
      for (int d = nd - 1; d >= 0; d--) {
        if (++idx[d] < to->dims[d])
          break;
        idx[d] = 0;
      }
    }
    CHECK(bad == 0, "Where trial %d: %d mismatches", trial, bad);
    const kn_tensor *tm = T(o2), *tx = T(o3);
    memset(idx, 0, sizeof(idx));
    nd = tm->ndim;
    bad = 0;
    for (int64_t i = 0; i < kn_tensor_numel(tm); i++) {
      float xv = ((float *)data(x))[bcast_offset(nd, idx, rx, dx)];
      float yv = ((float *)data(y))[bcast_offset(nd, idx, ry, dyy)];
      float mean = ((xv + yv) + xv) / 3.0f, mx = xv > yv ? xv : yv;
      if (fabsf(((float *)tm->data)[i] - mean) > 1e-5f ||
          ((float *)tx->data)[i] != mx)
        bad++;
      for (int d = nd - 1; d >= 0; d--) {
        if (++idx[d] < tm->dims[d])
          break;
        idx[d] = 0;
      }
    }
    CHECK(bad == 0, "Mean/Max trial %d: %d mismatches", trial, bad);
  }
}

/* ---- quantized ---------------------------------------------------------- */

static int qtensor(kestrel_dtype dt, int nd, const int64_t *dims, float scale,
                   int32_t zp) {
  int t = tensor(dt, nd, dims);
  kn_tensor_set_quant(T(t), -1, 1, &scale, &zp);
  return t;
}

/* Round half to even in double, then saturate: the spec of requantization. */
static int32_t ref_requant(double real, double scale, int32_t zp, int lo,
                           int hi) {
  double q = real / scale;
  double r = floor(q);
  double frac = q - r;
  if (frac > 0.5 || (frac == 0.5 && fmod(r, 2.0) != 0.0))
    r += 1.0;
  double v = r + zp;
  return v < lo ? lo : v > hi ? hi : (int32_t)v;
}

static void test_quantized(void) {
  /* Exact ties: A in units of 0.5, output scale 1 -> x.5 rounds to even. */
  reset_graph(0);
  int64_t d5[1] = {6};
  int a = qtensor(KESTREL_DTYPE_I8, 1, d5, 0.5f, 0);
  int b = qtensor(KESTREL_DTYPE_I8, 1, d5, 1.0f, 0);
  int y = out_tensor();
  float one = 1.0f;
  int32_t zero = 0;
  kn_tensor_set_quant(T(y), -1, 1, &one, &zero);
  T(y)->dtype = KESTREL_DTYPE_I8;
  int8_t av[6] = {1, 3, 5, -1, -3, 127};
  int8_t bv[6] = {0, 0, 0, 0, 0, 100};
  memcpy(data(a), av, 6);
  memcpy(data(b), bv, 6);
  int in[2] = {a, b};
  kestrel_error err = {{0}};
  kestrel_status st = exec(node(KN_OP_ADD, in, 2, &y, 1), &err);
  CHECK(st == KESTREL_OK, "quant Add: %s", err.message);
  const int8_t want_ties[6] = {0, 2, 2, 0, -2, 127}; /* 0.5 1.5 2.5 -.5 -1.5 sat */
  for (int i = 0; st == KESTREL_OK && i < 6; i++)
    CHECK(((int8_t *)data(y))[i] == want_ties[i],
          "tie %d: got %d want %d", i, ((int8_t *)data(y))[i], want_ties[i]);

  /* Random broadcast Add/Sub/Mul int8 and uint8 against double reference,
   * also with fused RELU6. */
  static const kn_op ops[] = {KN_OP_ADD, KN_OP_SUB, KN_OP_MUL};
  int checked = 0, ties_skipped = 0;
  for (int trial = 0; trial < 120; trial++) {
    kn_op op = ops[trial % 3];
    bool u8 = trial % 2;
    int act = trial % 5 == 0 ? KN_ACT_RELU6 : KN_ACT_NONE;
    kestrel_dtype dt = u8 ? KESTREL_DTYPE_U8 : KESTREL_DTYPE_I8;
    int lo = u8 ? 0 : -128, hi = u8 ? 255 : 127;
    reset_graph(0);
    int64_t da[8], db[8], dy[8];
    int nd;
    /* A has the full shape (quantized outputs keep A's), B broadcasts. */
    random_pair(1 + rnd() % 4, 0, da, db, &nd, dy, false);
    int rank_a = nd, rank_b = (int)(rnd() % (unsigned)(nd + 1));
    for (int i = 0; i < rank_b; i++)
      db[i] = rnd() % 2 ? 1 : dy[i + nd - rank_b];
    for (int i = 0; i < rank_a; i++)
      da[i] = dy[i];
    float sa = 0.01f + (float)(rnd() % 100) / 500.0f;
    float sb = 0.01f + (float)(rnd() % 100) / 500.0f;
    float sy = 0.02f + (float)(rnd() % 100) / 300.0f;
    int32_t za = (int32_t)(rnd() % 21) - 10 + (u8 ? 128 : 0);
    int32_t zb = (int32_t)(rnd() % 21) - 10 + (u8 ? 128 : 0);
    int32_t zy = (int32_t)(rnd() % 21) - 10 + (u8 ? 128 : 0);
    a = qtensor(dt, rank_a, da, sa, za);
    b = qtensor(dt, rank_b, db, sb, zb);
    for (int64_t i = 0; i < kn_tensor_numel(T(a)); i++)
      ((uint8_t *)data(a))[i] = (uint8_t)rnd();
    for (int64_t i = 0; i < kn_tensor_numel(T(b)); i++)
      ((uint8_t *)data(b))[i] = (uint8_t)rnd();
    y = out_tensor();
    kn_tensor_set_quant(T(y), -1, 1, &sy, &zy);
    T(y)->dtype = dt;
    in[0] = a;
    in[1] = b;
    int ni = node(op, in, 2, &y, 1);
    if (act)
      kn_node_set_int(&G->nodes[ni], "activation", act);
    st = exec(ni, &err);
    CHECK(st == KESTREL_OK, "quant %s: %s", kn_op_name(op), err.message);
    if (st != KESTREL_OK)
      continue;
    int64_t idx[8] = {0};
    int bad = 0;
    for (int64_t i = 0; i < kn_tensor_numel(T(y)); i++) {
      double va = sa * (double)(kn_read_int(T(a), bcast_offset(nd, idx, rank_a, da)) - za);
      double vb = sb * (double)(kn_read_int(T(b), bcast_offset(nd, idx, rank_b, db)) - zb);
      double r = op == KN_OP_ADD ? va + vb : op == KN_OP_SUB ? va - vb : va * vb;
      if (act == KN_ACT_RELU6)
        r = r < 0 ? 0 : r > 6 ? 6 : r;
      double q = r / sy;
      /* Float vs double may disagree on a near-tie; those are not bugs. */
      if (fabs(q - floor(q) - 0.5) < 1e-3) {
        ties_skipped++;
      } else {
        int32_t want = ref_requant(r, sy, zy, lo, hi);
        int64_t got = kn_read_int(T(y), i);
        if (got != want && bad++ < 3)
          fprintf(stderr, "  quant %s %s: %g op %g -> %lld want %d\n",
                  kn_op_name(op), kestrel_dtype_name(dt), va, vb,
                  (long long)got, want);
        checked++;
      }
      for (int d = nd - 1; d >= 0; d--) {
        if (++idx[d] < dy[d])
          break;
        idx[d] = 0;
      }
    }
    CHECK(bad == 0, "quant %s trial %d: %d mismatches", kn_op_name(op), trial,
          bad);
  }
  printf("quantized: %d elements checked, %d near-ties skipped\n", checked,
         ties_skipped);

  /* Quantized activation: Logistic on int8 with TFLite's fixed output
   * params (scale 1/256, zero point -128). */
  reset_graph(0);
  int64_t d1[1] = {256};
  a = qtensor(KESTREL_DTYPE_I8, 1, d1, 0.0625f, 0);
  for (int i = 0; i < 256; i++)
    ((int8_t *)data(a))[i] = (int8_t)(i - 128);
  y = out_tensor();
  float s256 = 1.0f / 256.0f;
  int32_t zm128 = -128;
  kn_tensor_set_quant(T(y), -1, 1, &s256, &zm128);
  T(y)->dtype = KESTREL_DTYPE_I8;
  st = exec(node(KN_OP_SIGMOID, &a, 1, &y, 1), &err);
  CHECK(st == KESTREL_OK, "quant Sigmoid: %s", err.message);
  int bad = 0;
  for (int i = 0; st == KESTREL_OK && i < 256; i++) {
    double x = 0.0625 * (i - 128);
    int want = ref_requant(1.0 / (1.0 + exp(-x)), 1.0 / 256.0, -128, -128, 127);
    int got = ((int8_t *)data(y))[i];
    if (abs(got - want) > 0)
      bad++;
  }
  CHECK(bad == 0, "quant Sigmoid: %d mismatches", bad);
}

/* ---- unary -------------------------------------------------------------- */

static double ref_unary(kn_op op, double v) {
  switch (op) {
  case KN_OP_RELU: return v < 0 ? 0 : v;
  case KN_OP_LEAKY_RELU: return v < 0 ? 0.01 * v : v;
  case KN_OP_SIGMOID: return 1.0 / (1.0 + exp(-v));
  case KN_OP_TANH: return tanh(v);
  case KN_OP_HARDSIGMOID: return fmax(0, fmin(1, 0.2 * v + 0.5));
  case KN_OP_HARDSWISH: return v * fmax(0, fmin(1, v / 6 + 0.5));
  case KN_OP_ELU: return v < 0 ? exp(v) - 1 : v;
  case KN_OP_SELU:
    return v > 0 ? 1.0507009873554805 * v
                 : 1.0507009873554805 * 1.6732632423543772 * (exp(v) - 1);
  case KN_OP_CELU: return fmax(0, v) + fmin(0, exp(v) - 1);
  case KN_OP_SOFTPLUS: return log(1 + exp(v));
  case KN_OP_SOFTSIGN: return v / (1 + fabs(v));
  case KN_OP_THRESHOLDED_RELU: return v > 1 ? v : 0;
  case KN_OP_SHRINK: return v < -0.5 ? v : v > 0.5 ? v : 0;
  case KN_OP_EXP: return exp(v);
  case KN_OP_LOG: return log(fabs(v) + 0.1);
  case KN_OP_NEG: return -v;
  case KN_OP_ABS: return fabs(v);
  case KN_OP_FLOOR: return floor(v);
  case KN_OP_CEIL: return ceil(v);
  case KN_OP_SIGN: return v > 0 ? 1 : v < 0 ? -1 : 0;
  case KN_OP_ERF: return erf(v);
  case KN_OP_SIN: return sin(v);
  case KN_OP_COS: return cos(v);
  case KN_OP_ATAN: return atan(v);
  case KN_OP_SINH: return sinh(v);
  case KN_OP_ASINH: return asinh(v);
  default: return NAN;
  }
}

static void test_unary(void) {
  static const kn_op ops[] = {
      KN_OP_RELU,  KN_OP_LEAKY_RELU, KN_OP_SIGMOID,  KN_OP_TANH,
      KN_OP_HARDSIGMOID, KN_OP_HARDSWISH, KN_OP_ELU, KN_OP_SELU,
      KN_OP_CELU,  KN_OP_SOFTPLUS,   KN_OP_SOFTSIGN, KN_OP_THRESHOLDED_RELU,
      KN_OP_SHRINK, KN_OP_EXP,       KN_OP_LOG,      KN_OP_NEG,
      KN_OP_ABS,   KN_OP_FLOOR,      KN_OP_CEIL,     KN_OP_SIGN,
      KN_OP_ERF,   KN_OP_SIN,        KN_OP_COS,      KN_OP_ATAN,
      KN_OP_SINH,  KN_OP_ASINH};
  for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
    for (int f64 = 0; f64 < 2; f64++) {
      reset_graph(17);
      int64_t dims[3] = {3, 1, 67};
      kestrel_dtype dt = f64 ? KESTREL_DTYPE_F64 : KESTREL_DTYPE_F32;
      int x = tensor(dt, 3, dims);
      for (int i = 0; i < 201; i++) {
        double v = -6.0 + 12.0 * i / 200.0;
        if (ops[o] == KN_OP_LOG)
          v = fabs(v) + 0.1;
        if (f64)
          ((double *)data(x))[i] = v;
        else
          ((float *)data(x))[i] = (float)v;
      }
      int y = out_tensor();
      kestrel_error err = {{0}};
      kestrel_status st = exec(node(ops[o], &x, 1, &y, 1), &err);
      CHECK(st == KESTREL_OK, "%s: %s", kn_op_name(ops[o]), err.message);
      if (st != KESTREL_OK)
        continue;
      int bad = 0;
      for (int i = 0; i < 201; i++) {
        double v = kn_read_double(T(x), i);
        double want = ops[o] == KN_OP_LOG ? log(v) : ref_unary(ops[o], v);
        double got = kn_read_double(T(y), i);
        if (fabs(got - want) > 1e-5 + 1e-5 * fabs(want) && bad++ < 3)
          fprintf(stderr, "  %s(%g) = %.9g, want %.9g\n", kn_op_name(ops[o]),
                  v, got, want);
      }
      CHECK(bad == 0, "%s %s: %d mismatches", kn_op_name(ops[o]),
            kestrel_dtype_name(dt), bad);
    }
  }
  /* Round is half to even. */
  reset_graph(17);
  int64_t d[1] = {8};
  float rv[8] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4f, -2.6f};
  float rw[8] = {0.0f, 2.0f, 2.0f, -0.0f, -2.0f, -2.0f, 2.0f, -3.0f};
  int x = tensor_f32(1, d, rv), y = out_tensor();
  kestrel_error err = {{0}};
  CHECK(exec(node(KN_OP_ROUND, &x, 1, &y, 1), &err) == KESTREL_OK, "Round");
  for (int i = 0; i < 8; i++)
    CHECK(((float *)data(y))[i] == rw[i], "Round(%g) = %g", rv[i],
          ((float *)data(y))[i]);

  /* IsNaN / IsInf (detect_negative=0) / Not */
  float sv[4] = {NAN, INFINITY, -INFINITY, 1.0f};
  int64_t d4[1] = {4};
  x = tensor_f32(1, d4, sv);
  y = out_tensor();
  int y2 = out_tensor();
  CHECK(exec(node(KN_OP_ISNAN, &x, 1, &y, 1), &err) == KESTREL_OK, "IsNaN");
  int ni = node(KN_OP_ISINF, &x, 1, &y2, 1);
  kn_node_set_int(&G->nodes[ni], "detect_negative", 0);
  CHECK(exec(ni, &err) == KESTREL_OK, "IsInf");
  const uint8_t nan_want[4] = {1, 0, 0, 0}, inf_want[4] = {0, 1, 0, 0};
  CHECK(memcmp(data(y), nan_want, 4) == 0, "IsNaN values");
  CHECK(memcmp(data(y2), inf_want, 4) == 0, "IsInf values");
  CHECK(T(y)->dtype == KESTREL_DTYPE_BOOL, "IsNaN dtype");
}

static void test_clip_and_activation(void) {
  int64_t d[1] = {7};
  float xv[7] = {-3, -1, 0, 0.5f, 2, 6.5f, 9};
  kestrel_error err = {{0}};
  /* opset 6: attributes */
  reset_graph(6);
  int x = tensor_f32(1, d, xv), y = out_tensor();
  int ni = node(KN_OP_CLIP, &x, 1, &y, 1);
  kn_node_set_float(&G->nodes[ni], "min", -1.0f);
  kn_node_set_float(&G->nodes[ni], "max", 2.0f);
  CHECK(exec(ni, &err) == KESTREL_OK, "Clip-6: %s", err.message);
  for (int i = 0; i < 7; i++)
    CHECK(((float *)data(y))[i] == fminf(fmaxf(xv[i], -1), 2), "Clip-6 %d", i);
  /* opset 13: optional inputs, min absent (-1 index) */
  reset_graph(13);
  x = tensor_f32(1, d, xv);
  float mx = 0.75f;
  int hi = tensor_f32(0, NULL, &mx);
  y = out_tensor();
  int in[3] = {x, -1, hi};
  CHECK(exec(node(KN_OP_CLIP, in, 3, &y, 1), &err) == KESTREL_OK,
        "Clip-13: %s", err.message);
  for (int i = 0; i < 7; i++)
    CHECK(((float *)data(y))[i] == fminf(xv[i], 0.75f), "Clip-13 %d", i);
  /* int8 Clip */
  reset_graph(13);
  x = tensor(KESTREL_DTYPE_I8, 1, d);
  for (int i = 0; i < 7; i++)
    ((int8_t *)data(x))[i] = (int8_t)(i * 20 - 60);
  int lo = tensor(KESTREL_DTYPE_I8, 0, NULL);
  ((int8_t *)data(lo))[0] = -5;
  y = out_tensor();
  int in2[2] = {x, lo};
  CHECK(exec(node(KN_OP_CLIP, in2, 2, &y, 1), &err) == KESTREL_OK,
        "Clip int8: %s", err.message);
  for (int i = 0; i < 7; i++) {
    int v = i * 20 - 60;
    CHECK(((int8_t *)data(y))[i] == (v < -5 ? -5 : v), "Clip int8 %d", i);
  }
  /* Fused RELU6 on a broadcast f32 Mul, and LeakyRelu on Sub. */
  reset_graph(0);
  int64_t da[2] = {2, 7}, db[1] = {1};
  float av[14], bv[1] = {1.5f};
  for (int i = 0; i < 14; i++)
    av[i] = (float)i - 5.0f;
  int a = tensor_f32(2, da, av), b = tensor_f32(1, db, bv);
  y = out_tensor();
  int ab[2] = {a, b};
  ni = node(KN_OP_MUL, ab, 2, &y, 1);
  kn_node_set_int(&G->nodes[ni], "activation", KN_ACT_RELU6);
  CHECK(exec(ni, &err) == KESTREL_OK, "Mul+RELU6: %s", err.message);
  for (int i = 0; i < 14; i++)
    CHECK(((float *)data(y))[i] == fminf(fmaxf(av[i] * 1.5f, 0), 6),
          "Mul+RELU6 %d", i);
  y = out_tensor();
  ni = node(KN_OP_SUB, ab, 2, &y, 1);
  kn_node_set_int(&G->nodes[ni], "activation", KN_ACT_LEAKY_RELU);
  kn_node_set_float(&G->nodes[ni], "activation_alpha", 0.25f);
  CHECK(exec(ni, &err) == KESTREL_OK, "Sub+LeakyRelu: %s", err.message);
  for (int i = 0; i < 14; i++) {
    float v = av[i] - 1.5f;
    CHECK(((float *)data(y))[i] == (v < 0 ? 0.25f * v : v), "Sub+Leaky %d",
          i);
  }
  /* PRelu with a per-channel slope [C,1,1] on [N,C,H,W]. */
  reset_graph(17);
  int64_t dx[4] = {2, 3, 2, 2}, ds[3] = {3, 1, 1};
  float xs[24], ss[3] = {0.1f, 0.2f, 0.3f};
  for (int i = 0; i < 24; i++)
    xs[i] = (float)i - 12.0f;
  x = tensor_f32(4, dx, xs);
  int s = tensor_f32(3, ds, ss);
  y = out_tensor();
  int xs_in[2] = {x, s};
  CHECK(exec(node(KN_OP_PRELU, xs_in, 2, &y, 1), &err) == KESTREL_OK,
        "PRelu: %s", err.message);
  for (int i = 0; i < 24; i++) {
    int c = (i / 4) % 3;
    float want = xs[i] < 0 ? xs[i] * ss[c] : xs[i];
    CHECK(((float *)data(y))[i] == want, "PRelu %d", i);
  }
}

static void test_misc_dtypes(void) {
  kestrel_error err = {{0}};
  /* Mod with fmod=0 on int64 follows the divisor's sign (Python %). */
  reset_graph(17);
  int64_t d[1] = {4};
  int a = tensor(KESTREL_DTYPE_I64, 1, d), b = tensor(KESTREL_DTYPE_I64, 1, d);
  int64_t av[4] = {7, -7, 7, -7}, bv[4] = {3, 3, -3, -3};
  memcpy(data(a), av, sizeof(av));
  memcpy(data(b), bv, sizeof(bv));
  int y = out_tensor(), in[2] = {a, b};
  CHECK(exec(node(KN_OP_MOD, in, 2, &y, 1), &err) == KESTREL_OK, "Mod: %s",
        err.message);
  const int64_t want_mod[4] = {1, 2, -2, -1};
  CHECK(memcmp(data(y), want_mod, sizeof(want_mod)) == 0, "Mod values");
  /* BitShift on uint8 */
  a = tensor(KESTREL_DTYPE_U8, 1, d);
  b = tensor(KESTREL_DTYPE_U8, 1, d);
  const uint8_t sa[4] = {16, 4, 1, 255}, sb[4] = {1, 2, 3, 4};
  memcpy(data(a), sa, 4);
  memcpy(data(b), sb, 4);
  y = out_tensor();
  in[0] = a;
  in[1] = b;
  int ni = node(KN_OP_BITSHIFT, in, 2, &y, 1);
  kn_node_set_string(&G->nodes[ni], "direction", "LEFT");
  CHECK(exec(ni, &err) == KESTREL_OK, "BitShift: %s", err.message);
  const uint8_t want_shift[4] = {32, 16, 8, 240};
  CHECK(memcmp(data(y), want_shift, 4) == 0, "BitShift values");
  /* And / Xor / Not on bool */
  a = tensor(KESTREL_DTYPE_BOOL, 1, d);
  b = tensor(KESTREL_DTYPE_BOOL, 1, d);
  const uint8_t la[4] = {0, 0, 1, 1}, lb[4] = {0, 1, 0, 1};
  memcpy(data(a), la, 4);
  memcpy(data(b), lb, 4);
  in[0] = a;
  in[1] = b;
  int y1 = out_tensor(), y2 = out_tensor(), y3 = out_tensor();
  CHECK(exec(node(KN_OP_AND, in, 2, &y1, 1), &err) == KESTREL_OK, "And");
  CHECK(exec(node(KN_OP_XOR, in, 2, &y2, 1), &err) == KESTREL_OK, "Xor");
  CHECK(exec(node(KN_OP_NOT, &a, 1, &y3, 1), &err) == KESTREL_OK, "Not");
  const uint8_t w_and[4] = {0, 0, 0, 1}, w_xor[4] = {0, 1, 1, 0},
                w_not[4] = {1, 1, 0, 0};
  CHECK(memcmp(data(y1), w_and, 4) == 0, "And values");
  CHECK(memcmp(data(y2), w_xor, 4) == 0, "Xor values");
  CHECK(memcmp(data(y3), w_not, 4) == 0, "Not values");
  /* Pow: float base, int64 exponent (opset 12+) */
  a = tensor_f32(1, d, (const float[]){2, 3, -2, 0.5f});
  b = tensor(KESTREL_DTYPE_I64, 1, d);
  memcpy(data(b), (const int64_t[]){3, 2, 3, -1}, 32);
  in[0] = a;
  in[1] = b;
  y = out_tensor();
  CHECK(exec(node(KN_OP_POW, in, 2, &y, 1), &err) == KESTREL_OK, "Pow: %s",
        err.message);
  const float w_pow[4] = {8, 9, -8, 2};
  CHECK(memcmp(data(y), w_pow, sizeof(w_pow)) == 0, "Pow values");
  /* Zero-size broadcast runs and gives a zero-size result. */
  int64_t dz[2] = {0, 3}, d3[1] = {3};
  a = tensor_f32(2, dz, NULL);
  b = tensor_f32(1, d3, (const float[]){1, 2, 3});
  in[0] = a;
  in[1] = b;
  y = out_tensor();
  CHECK(exec(node(KN_OP_ADD, in, 2, &y, 1), &err) == KESTREL_OK,
        "zero-size Add: %s", err.message);
  CHECK(T(y)->ndim == 2 && T(y)->dims[0] == 0 && T(y)->dims[1] == 3,
        "zero-size shape");
  /* Incompatible shapes are a SHAPE error, mixed dtypes UNSUPPORTED. */
  int64_t d2[1] = {2};
  b = tensor_f32(1, d2, NULL);
  a = tensor_f32(1, d3, NULL);
  in[0] = a;
  in[1] = b;
  y = out_tensor();
  CHECK(exec(node(KN_OP_ADD, in, 2, &y, 1), &err) == KESTREL_ERROR_SHAPE,
        "incompatible broadcast accepted");
  b = tensor(KESTREL_DTYPE_I64, 1, d3);
  in[1] = b;
  y = out_tensor();
  CHECK(exec(node(KN_OP_ADD, in, 2, &y, 1), &err) ==
            KESTREL_ERROR_UNSUPPORTED,
        "mixed dtypes accepted");
}

int main(void) {
  test_broadcast_f32();
  test_broadcast_int();
  test_where_and_variadic();
  test_quantized();
  test_unary();
  test_clip_and_activation();
  test_misc_dtypes();
  kn_graph_free(G);
  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("all element-wise tests passed\n");
  return 0;
}
