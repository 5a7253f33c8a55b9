/* kn_qs8_binary_rows (ops/eltwise_fast.c: the int8 Add/Mul rows that the
 * eltwise fast path and conv_fast.c's fused int8 residual share) against
 * the reference's arithmetic (kn_ew_dequant, kn_ew_act_apply1 with a clamp,
 * kn_ew_requant), byte for byte, under the ISA KESTREL_ISA picks: counts
 * around the 32- and 8-element steps, in place (y == a, as the conv
 * epilogue runs it), parameters that leave the vector loop (huge, NaN or
 * infinite scales, zero points outside int8, lo > hi) and int8 Mul by a
 * per-channel vector wider than the loop's 256-column block. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ops/eltwise_fast.h"
#include "ops/ops_common.h"
#include "ops/ops_eltwise.h"
#include "threadpool.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}
static int irange(int lo, int hi) {
  return lo + (int)(rnd() % (uint32_t)(hi - lo + 1));
}
static float frange(float lo, float hi) {
  return lo + (hi - lo) * (float)(rnd() >> 8) / 16777216.0f;
}

static int failures;

static int8_t oracle1(const kn_qs8_binary *p, int8_t a, int8_t b) {
  kn_ew_quant qa = {p->sa, p->za, -128, 127}, qb = {p->sb, p->zb, -128, 127};
  kn_ew_quant qy = {p->sy, p->zy, -128, 127};
  kn_ew_act act = {KN_ACT_CLIP, 0.0f, p->lo, p->hi};
  float va = kn_ew_dequant(&qa, a), vb = kn_ew_dequant(&qb, b);
  return (int8_t)kn_ew_requant(&qy, kn_ew_act_apply1(&act,
                                                     p->mul ? va * vb : va + vb));
}

static void check_rows(kn_qs8_binary p, size_t count, bool in_place,
                       const char *what) {
  kn_qs8_binary_prepare(&p);
  int8_t *a = malloc(count + 1), *b = malloc(count + 1), *y = malloc(count + 1);
  int8_t *want = malloc(count + 1);
  for (size_t i = 0; i < count; i++) {
    a[i] = (int8_t)irange(-128, 127);
    b[i] = (int8_t)irange(-128, 127);
    want[i] = oracle1(&p, a[i], b[i]);
  }
  memset(y, 0x55, count);
  int8_t *out = in_place ? a : y;
  kn_qs8_binary_rows(&p, a, b, out, count);
  for (size_t i = 0; i < count; i++)
    if (out[i] != want[i]) {
      fprintf(stderr,
              "FAIL %s: %s count %zu%s sa %g za %d sb %g zb %d sy %g zy %d "
              "lo %g hi %g (vector %d, isa %s): element %zu = %d, "
              "reference %d\n",
              what, p.mul ? "Mul" : "Add", count, in_place ? " in place" : "",
              (double)p.sa, p.za, (double)p.sb, p.zb, (double)p.sy, p.zy,
              (double)p.lo, (double)p.hi, p.vec,
              kn_isa_name(kn_kernels_get()->isa), i, out[i], want[i]);
      failures++;
      break;
    }
  free(a), free(b), free(y), free(want);
}

static kn_qs8_binary typical(bool mul) {
  kn_qs8_binary p;
  memset(&p, 0, sizeof p);
  p.mul = mul;
  p.sa = frange(0.01f, 0.1f);
  p.sb = frange(0.01f, 0.1f);
  p.sy = mul ? frange(0.0005f, 0.02f) : frange(0.01f, 0.1f);
  p.za = irange(-128, 127);
  p.zb = irange(-128, 127);
  p.zy = irange(-128, 127);
  p.lo = -INFINITY;
  p.hi = INFINITY;
  switch (irange(0, 3)) {
  case 1: p.lo = 0.0f; break;
  case 2: p.lo = 0.0f, p.hi = 6.0f; break;
  case 3: p.lo = frange(-2.0f, 0.0f), p.hi = frange(0.0f, 2.0f); break;
  default: break;
  }
  return p;
}

/* int8 Mul [1, h, w, c] x [1, 1, 1, c] through the node, as PP-OCR's SE
 * blocks run it, against the per-element reference. */
static void check_channel_mul(int64_t h, int64_t w, int64_t c, int threads) {
  kn_graph *g = kn_graph_new();
  int64_t full[4] = {1, h, w, c}, chan[4] = {1, 1, 1, c};
  float s[3] = {frange(0.01f, 0.1f), frange(0.002f, 0.01f),
                frange(0.0005f, 0.005f)};
  int32_t z[3] = {irange(-128, 127), -128, irange(-128, 127)};
  const int64_t *dims[3] = {full, chan, full};
  int t[3];
  for (int k = 0; k < 3; k++) {
    t[k] = kn_graph_add_tensor(g, k == 0 ? "a" : k == 1 ? "b" : "y");
    kn_tensor *x = &g->tensors[t[k]];
    int8_t *v = kn_tensor_alloc_data(x, KESTREL_DTYPE_I8, 4, dims[k]);
    kn_tensor_set_quant(x, -1, 1, &s[k], &z[k]);
    for (int64_t i = 0; i < kn_tensor_numel(x); i++)
      v[i] = (int8_t)irange(-128, 127);
  }
  int ni = kn_graph_add_node(g, KN_OP_MUL, "mul", "Mul", t, 2, &t[2], 1);
  kn_threadpool *pool = kn_threadpool_create(threads);
  kn_exec x = {g, NULL, 0, kn_threadpool_threads(pool), pool};
  bool fast = kn_eltwise_fast_binary(&x, &g->nodes[ni]);
  kn_threadpool_destroy(pool);
  kn_qs8_binary p;
  memset(&p, 0, sizeof p);
  p.mul = true;
  p.sa = s[0], p.sb = s[1], p.sy = s[2];
  p.za = z[0], p.zb = z[1], p.zy = z[2];
  p.lo = -INFINITY, p.hi = INFINITY;
  const int8_t *a = g->tensors[t[0]].data, *b = g->tensors[t[1]].data;
  const int8_t *y = g->tensors[t[2]].data;
  size_t count = (size_t)(h * w * c);
  if (!fast) {
    fprintf(stderr, "FAIL channel Mul [1,%lld,%lld,%lld]: fast path declined\n",
            (long long)h, (long long)w, (long long)c);
    failures++;
  }
  for (size_t i = 0; fast && i < count; i++) {
    int8_t want = oracle1(&p, a[i], b[i % (size_t)c]);
    if (y[i] != want) {
      fprintf(stderr,
              "FAIL channel Mul [1,%lld,%lld,%lld] threads %d isa %s: "
              "element %zu = %d, reference %d\n",
              (long long)h, (long long)w, (long long)c, threads,
              kn_isa_name(kn_kernels_get()->isa), i, y[i], want);
      failures++;
      break;
    }
  }
  kn_graph_free(g);
}

int main(void) {
  static const size_t counts[] = {1, 7, 8, 9, 31, 32, 33, 40, 63, 64, 65,
                                  100, 257, 1000};
  for (int rep = 0; rep < 40; rep++)
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
      check_rows(typical(rep % 2), counts[k], rep % 3 == 0, "typical");
    }
  /* Outside the vector loop's preconditions: the scalar path. */
  for (int rep = 0; rep < 8; rep++) {
    kn_qs8_binary p = typical(rep % 2);
    p.sa = 1e20f;
    check_rows(p, 77, false, "huge scale");
    p = typical(rep % 2);
    p.sb = NAN;
    check_rows(p, 77, false, "NaN scale");
    p = typical(rep % 2);
    p.sa = INFINITY;
    check_rows(p, 77, true, "infinite scale");
    p = typical(rep % 2);
    p.sy = INFINITY;
    check_rows(p, 77, false, "infinite output scale");
    p = typical(rep % 2);
    p.zy = 300;
    check_rows(p, 77, false, "zero point 300");
    p = typical(rep % 2);
    p.lo = 0.5f, p.hi = -0.5f;
    check_rows(p, 77, false, "lo > hi");
  }
  /* Inside them but at the edges: tiny and huge output scales, the
   * largest scales the loop takes, clamps that map everything to one
   * byte. */
  for (int rep = 0; rep < 8; rep++) {
    kn_qs8_binary p = typical(rep % 2);
    p.sy = 1e-30f;
    check_rows(p, 77, false, "tiny output scale");
    p = typical(rep % 2);
    p.sy = 1e30f;
    check_rows(p, 77, false, "huge output scale");
    p = typical(rep % 2);
    p.sa = p.sb = 1e15f;
    p.sy = 1e20f;
    check_rows(p, 77, false, "largest vector scales");
    p = typical(rep % 2);
    p.lo = 1e6f, p.hi = 1e7f;
    check_rows(p, 77, false, "clamp above the range");
    p = typical(rep % 2);
    p.lo = -1e7f, p.hi = -1e6f;
    check_rows(p, 77, false, "clamp below the range");
  }
  static const int64_t channels[] = {8, 40, 200, 255, 256, 257, 300, 600};
  for (size_t k = 0; k < sizeof channels / sizeof channels[0]; k++)
    for (int threads = 1; threads <= 2; threads++)
      check_channel_mul(irange(1, 3), irange(1, 40), channels[k], threads);
  if (failures) {
    fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  printf("kn_qs8_binary_rows matches the reference (isa %s)\n",
         kn_isa_name(kn_kernels_get()->isa));
  return 0;
}
