/* Resize fast path (ops/resize_fast.c) against the reference loop of
 * ops/pool.c: rank-4 NHWC-like tensors (channels last, unscaled) with H
 * and/or W resized, linear and cubic, four coordinate modes, up and down,
 * float32, int8 and uint8, odd channel counts. The reference runs on the
 * same node with scratch for the tap tables only (the fast path then
 * declines); outputs must be identical bytes. A scratch canary tells
 * whether the fast path ran: it must for nearly every case here (not
 * where all taps are single ones), and must not for an NCHW-style case
 * (last axis scaled). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_common.h"
#include "ops/resize_fast.h"

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

static int failures, fast_runs;

static const char *const coords[] = {"half_pixel", "align_corners",
                                     "asymmetric", "pytorch_half_pixel"};

/* Builds x -> Resize -> y and runs it with `scratch_bytes` of scratch
 * (SIZE_MAX: what the op plans). Returns whether the canary past the tap
 * tables changed (the fast path's accumulators). */
static bool run_case(kestrel_dtype dt, const int64_t *in, const int64_t *out,
                     const char *mode, const char *coord, bool full_scratch,
                     const void *xdata, void *ydata) {
  kn_graph *g = kn_graph_new();
  int x = kn_graph_add_tensor(g, "x");
  kn_tensor_alloc_data(&g->tensors[x], dt, 4, in);
  size_t xbytes = kn_tensor_bytes(&g->tensors[x]);
  memcpy(g->tensors[x].data, xdata, xbytes);
  float xs = 0.05f, ys = 0.04f;
  int32_t xz = dt == KESTREL_DTYPE_U8 ? 120 : -7;
  int32_t yz = dt == KESTREL_DTYPE_U8 ? 131 : 5;
  if (dt != KESTREL_DTYPE_F32)
    kn_tensor_set_quant(&g->tensors[x], -1, 1, &xs, &xz);
  int roi = kn_graph_add_tensor(g, "roi");
  g->tensors[roi].optional_absent = true;
  int scales = kn_graph_add_tensor(g, "scales");
  g->tensors[scales].optional_absent = true;
  int sizes = kn_graph_add_tensor(g, "sizes");
  int64_t four[1] = {4};
  int64_t *sz = kn_tensor_alloc_data(&g->tensors[sizes], KESTREL_DTYPE_I64, 1,
                                     four);
  memcpy(sz, out, 4 * sizeof(int64_t));
  g->tensors[sizes].kind = KN_TENSOR_CONSTANT;
  int y = kn_graph_add_tensor(g, "y");
  if (dt != KESTREL_DTYPE_F32) {
    kn_set_shape(&g->tensors[y], dt, 4, out);
    kn_tensor_set_quant(&g->tensors[y], -1, 1, &ys, &yz);
  }
  int ins[4] = {x, roi, scales, sizes};
  int ni = kn_graph_add_node(g, KN_OP_RESIZE, "resize", "Resize", ins, 4, &y,
                             1);
  kn_node *n = &g->nodes[ni];
  kn_node_set_string(n, "mode", mode);
  kn_node_set_string(n, "coordinate_transformation_mode", coord);
  const kn_op_info *info = kn_op_get(KN_OP_RESIZE);
  kestrel_error err;
  bool canary_changed = false;
  if (info->infer(g, n, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL infer: %s\n", err.message);
    failures++;
    kn_graph_free(g);
    return false;
  }
  if (!kn_tensor_alloc_data(&g->tensors[y], g->tensors[y].dtype, 4, out)) {
    failures++;
    kn_graph_free(g);
    return false;
  }
  size_t planned = info->scratch(g, n);
  size_t taps = 0;
  for (int a = 0; a < 4; a++)
    taps += (size_t)out[a];
  taps *= KN_RESIZE_TAPS * sizeof(kn_resize_tap) + 1;
  size_t sb = full_scratch ? planned : taps;
  unsigned char *scratch = malloc(planned + 1);
  memset(scratch, 0xab, planned + 1);
  kn_exec ex = {g, scratch, sb, 1, NULL};
  if (info->run(&ex, n, &err) != KESTREL_OK) {
    fprintf(stderr, "FAIL run: %s\n", err.message);
    failures++;
  }
  for (size_t i = taps; i < planned; i++)
    canary_changed |= scratch[i] != 0xab;
  memcpy(ydata, g->tensors[y].data, kn_tensor_bytes(&g->tensors[y]));
  free(scratch);
  kn_graph_free(g);
  return canary_changed;
}

static void check(kestrel_dtype dt, const char *mode, const char *coord,
                  bool nchw_like) {
  int64_t in[4] = {irange(1, 2), irange(1, 11), irange(1, 13),
                   irange(1, 70)};
  int64_t out[4] = {in[0], irange(1, 24), irange(1, 26), in[3]};
  if (irange(0, 3) == 0)
    out[1] = in[1]; /* only W interpolated */
  else if (irange(0, 3) == 0)
    out[2] = in[2]; /* only H */
  if (out[1] == in[1] && out[2] == in[2])
    out[2] = in[2] + 1;
  if (nchw_like)
    out[3] = in[3] + 3;
  size_t es = kestrel_dtype_size(dt);
  size_t xn = (size_t)(in[0] * in[1] * in[2] * in[3]);
  size_t yn = (size_t)(out[0] * out[1] * out[2] * out[3]);
  unsigned char *xd = malloc(xn * es), *fast = malloc(yn * es + 1),
                *ref = malloc(yn * es + 1);
  for (size_t i = 0; i < xn; i++) {
    if (dt == KESTREL_DTYPE_F32)
      ((float *)xd)[i] = (float)((int)(rnd() % 20001) - 10000) / 997.0f;
    else
      xd[i] = (unsigned char)rnd();
  }
  bool took = run_case(dt, in, out, mode, coord, true, xd, fast);
  bool ref_took = run_case(dt, in, out, mode, coord, false, xd, ref);
  fast_runs += took;
  const char *tn = kestrel_dtype_name(dt);
  /* Where every output coordinate lands on one input element (say
   * align_corners 9 -> 3, or a length-1 axis) the single-tap copy runs
   * instead: declining is fine there, main() counts how often it ran. */
  if ((nchw_like && took) || ref_took) {
    fprintf(stderr,
            "FAIL %s %s %s [%lld,%lld,%lld,%lld]->[%lld,%lld,%lld,%lld]: fast "
            "path %s (reference run: %s)\n",
            tn, mode, coord, (long long)in[0], (long long)in[1],
            (long long)in[2], (long long)in[3], (long long)out[0],
            (long long)out[1], (long long)out[2], (long long)out[3],
            took ? "taken" : "declined", ref_took ? "fast" : "reference");
    failures++;
  }
  if (memcmp(fast, ref, yn * es)) {
    size_t i = 0;
    while (i < yn && !memcmp(fast + i * es, ref + i * es, es))
      i++;
    double got = 0, want = 0;
    if (dt == KESTREL_DTYPE_F32) {
      got = ((float *)fast)[i];
      want = ((float *)ref)[i];
    } else {
      got = dt == KESTREL_DTYPE_I8 ? (int8_t)fast[i] : fast[i];
      want = dt == KESTREL_DTYPE_I8 ? (int8_t)ref[i] : ref[i];
    }
    fprintf(stderr,
            "FAIL %s %s %s [%lld,%lld,%lld,%lld]->[%lld,%lld,%lld,%lld]: "
            "element %zu = %.9g, reference %.9g\n",
            tn, mode, coord, (long long)in[0], (long long)in[1],
            (long long)in[2], (long long)in[3], (long long)out[0],
            (long long)out[1], (long long)out[2], (long long)out[3], i, got,
            want);
    failures++;
  }
  free(xd);
  free(fast);
  free(ref);
}

int main(void) {
  const kestrel_dtype dts[3] = {KESTREL_DTYPE_F32, KESTREL_DTYPE_I8,
                                KESTREL_DTYPE_U8};
  const char *const modes[2] = {"linear", "cubic"};
  int cases = 0;
  for (int rep = 0; rep < 12; rep++)
    for (int d = 0; d < 3; d++)
      for (int m = 0; m < 2; m++)
        for (int c = 0; c < 4; c++, cases++)
          check(dts[d], modes[m], coords[c], false);
  /* The last axis scaled: not the fast path's shape. */
  for (int d = 0; d < 3; d++, cases++)
    check(dts[d], "linear", "half_pixel", true);
  printf("%d cases, %d on the fast path, %d failures\n", cases, fast_runs,
         failures);
  if (fast_runs < (cases - 3) * 8 / 10) {
    fprintf(stderr, "FAIL: the fast path ran in only %d of %d cases\n",
            fast_runs, cases - 3);
    failures++;
  }
  return failures ? 1 : 0;
}
