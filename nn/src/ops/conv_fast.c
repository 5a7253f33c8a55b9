/* Conv/Gemm on packed weights (see conv_fast.h): geometry checks at load
 * time, then at run time a parallel loop over output rows that feeds the
 * kernels of nn/kernels and finishes each tile with the epilogue work the
 * kernels do not do themselves (residual add, non-clamp activations). */
#include "conv_fast.h"

#include <math.h>
#include <string.h>

#include "../../kernels/kernels.h"
#include "eltwise_fast.h"
#include "ops_common.h"
#include "threadpool.h"

/* im2col tile per thread: small enough to stay in L2 next to the weights
 * the GEMM streams, large enough that the GEMM call overhead vanishes. */
#define IM2COL_TILE_BYTES (96 * 1024)
/* Row grain: a multiple of the qs8 (3) and f32 (6) kernels' row tiles, so
 * thread boundaries do not create remainder tiles. */
#define ROW_GRAIN 12

bool kn_node_is_packed(const kn_node *n) {
  return kn_node_attr(n, "packed") != NULL;
}

static bool kind_is_int8(int64_t kind) {
  return kind == KN_PACKED_QS8_GEMM || kind == KN_PACKED_QS8_DWCONV;
}

static bool kind_is_dw(int64_t kind) {
  return kind == KN_PACKED_F32_DWCONV || kind == KN_PACKED_QS8_DWCONV;
}

static bool act_is_clamp(int kind) {
  return kind == KN_ACT_NONE || kind == KN_ACT_RELU || kind == KN_ACT_RELU6 ||
         kind == KN_ACT_RELU_N1_TO_1 || kind == KN_ACT_CLIP;
}

/* Real-valued clamp bounds of a clamp activation. */
static void act_bounds(const kn_act *a, float *lo, float *hi) {
  *lo = -INFINITY;
  *hi = INFINITY;
  switch (a->kind) {
  case KN_ACT_RELU: *lo = 0.0f; break;
  case KN_ACT_RELU6: *lo = 0.0f; *hi = 6.0f; break;
  case KN_ACT_RELU_N1_TO_1: *lo = -1.0f; *hi = 1.0f; break;
  case KN_ACT_CLIP: *lo = a->lo; *hi = a->hi; break;
  default: break;
  }
}

/* The quantized bound of a real bound: rounding is monotone, so clamping
 * the rounded value equals rounding the clamped one. */
static int32_t q_bound(float real, float scale, int32_t zp, int32_t dflt) {
  if (isinf(real) || !(scale > 0.0f))
    return dflt;
  double q = nearbyint((double)real / scale) + zp;
  if (q < -128.0)
    return -128;
  if (q > 127.0)
    return 127;
  return (int32_t)q;
}

/* ---- geometry -------------------------------------------------------------- */

typedef struct fast_geo {
  int64_t kind;
  bool is_conv, is_dw, direct; /* direct: 1x1 s1 p0 conv or Gemm */
  /* ConvTranspose with stride == kernel, no pads: every input pixel
   * writes its own KH x KW output block, so each (input row, ky) is one
   * GEMM of the row's pixels against KH packed blocks of N = KW * M. */
  bool is_deconv;
  size_t batch, m, n, k;       /* m rows per image, k reduction */
  size_t in_c;
  kn_conv_geometry geo;
} fast_geo;

static kestrel_status fast_geometry(kn_graph *g, const kn_node *n,
                                    fast_geo *fg, int64_t *ydims,
                                    kestrel_error *err) {
  memset(fg, 0, sizeof(*fg));
  kn_tensor *x = kn_in(g, n, 0);
  fg->kind = kn_attr_int(n, "packed", 0);
  if (fg->kind < KN_PACKED_F32_GEMM || fg->kind > KN_PACKED_QS8_DWCONV)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "bad packed kind %lld", (long long)fg->kind);
  int64_t nch = kn_attr_int(n, "packed_channels", 0);
  if (nch < 1 || nch > (INT64_C(1) << 24))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "bad packed_channels %lld", (long long)nch);
  fg->n = (size_t)nch;
  fg->is_conv = n->op == KN_OP_CONV || n->op == KN_OP_CONV_TRANSPOSE;
  fg->is_deconv = n->op == KN_OP_CONV_TRANSPOSE;
  fg->is_dw = kind_is_dw(fg->kind);
  if (!x || x->ndim < 0)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "missing input");
  if (fg->is_deconv) {
    const int64_t *ks, *st, *pd;
    int nk = kn_attr_ints(n, "kernel_shape", &ks);
    int ns = kn_attr_ints(n, "strides", &st);
    int np = kn_attr_ints(n, "pads", &pd);
    int layout;
    if (fg->is_dw || !kn_layout_attr(n, &layout) ||
        layout != KN_LAYOUT_NHWC || x->ndim != 4 || nk != 2 || ns != 2 ||
        st[0] != ks[0] || st[1] != ks[1] || ks[0] < 1 || ks[1] < 1 ||
        ks[0] > 64 || ks[1] > 64 || kn_attr_int(n, "group", 1) != 1 ||
        (np && (np != 4 || pd[0] || pd[1] || pd[2] || pd[3])) ||
        x->dims[1] > (INT64_C(1) << 24) || x->dims[2] > (INT64_C(1) << 24))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "packed ConvTranspose needs NHWC, group 1, "
                          "strides equal to a 2-D kernel_shape, no pads");
    fg->batch = (size_t)x->dims[0];
    fg->in_c = (size_t)x->dims[3];
    fg->geo.in_h = (size_t)x->dims[1];
    fg->geo.in_w = (size_t)x->dims[2];
    fg->geo.in_c = fg->in_c;
    fg->geo.kernel_h = (size_t)ks[0];
    fg->geo.kernel_w = (size_t)ks[1];
    fg->geo.out_h = fg->geo.in_h * (size_t)ks[0];
    fg->geo.out_w = fg->geo.in_w * (size_t)ks[1];
    fg->m = fg->geo.in_h * fg->geo.in_w;
    fg->n = (size_t)ks[1] * (size_t)nch; /* one GEMM's columns: (kx, m) */
    fg->k = fg->in_c;
    ydims[0] = x->dims[0];
    ydims[1] = (int64_t)fg->geo.out_h;
    ydims[2] = (int64_t)fg->geo.out_w;
    ydims[3] = nch;
    return KESTREL_OK;
  }
  if (!fg->is_conv) {
    if (n->op != KN_OP_GEMM || fg->is_dw)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "packed kind %lld on this op", (long long)fg->kind);
    if (x->ndim != 2 || kn_attr_int(n, "transA", 0) != 0 ||
        kn_attr_float(n, "alpha", 1.0f) != 1.0f ||
        kn_attr_float(n, "beta", 1.0f) != 1.0f)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "packed Gemm needs a 2-D A, transA=0, alpha=beta=1");
    fg->batch = 1;
    fg->m = (size_t)x->dims[0];
    fg->k = (size_t)x->dims[1];
    fg->direct = true;
    ydims[0] = x->dims[0];
    ydims[1] = nch;
    return KESTREL_OK;
  }
  int layout;
  if (!kn_layout_attr(n, &layout) || layout != KN_LAYOUT_NHWC || x->ndim != 4)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "packed Conv needs a rank-4 NHWC input");
  const int64_t *ks;
  if (kn_attr_ints(n, "kernel_shape", &ks) != 2)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "packed Conv needs a 2-D kernel_shape");
  kn_spatial xv;
  if (!kn_spatial_view(x, layout, &xv))
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bad input");
  kn_window w;
  kestrel_status st = kn_window_geometry(n, 2, xv.sp, ks, false, &w, err);
  if (st != KESTREL_OK)
    return st;
  int64_t group = kn_attr_int(n, "group", 1);
  if (fg->is_dw ? (group != xv.c || nch != xv.c) : group != 1)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "packed kind %lld with group %lld, %lld -> %lld "
                        "channels",
                        (long long)fg->kind, (long long)group,
                        (long long)xv.c, (long long)nch);
  /* Window values are capped by kn_window_geometry; sizes by the caller's
   * tensor checks, so these products fit. */
  kn_conv_geometry *cg = &fg->geo;
  cg->in_h = (size_t)xv.sp[1];
  cg->in_w = (size_t)xv.sp[2];
  cg->in_c = (size_t)xv.c;
  cg->out_h = (size_t)w.out[1];
  cg->out_w = (size_t)w.out[2];
  cg->kernel_h = (size_t)w.k[1];
  cg->kernel_w = (size_t)w.k[2];
  cg->stride_h = (size_t)w.s[1];
  cg->stride_w = (size_t)w.s[2];
  cg->dilation_h = (size_t)w.d[1];
  cg->dilation_w = (size_t)w.d[2];
  cg->pad_top = (size_t)w.pb[1];
  cg->pad_left = (size_t)w.pb[2];
  fg->batch = (size_t)xv.n;
  fg->in_c = (size_t)xv.c;
  fg->m = cg->out_h * cg->out_w;
  fg->k = fg->is_dw ? cg->kernel_h * cg->kernel_w
                    : cg->kernel_h * cg->kernel_w * cg->in_c;
  /* int8 1x1 convs whose K is not a whole number of the GEMM's k groups
   * (C = 12, 18 in PP-OCR det) copy their rows into padded scratch rows
   * (im2col_k) instead: the GEMM's K-tail path is slower than the copy. */
  fg->direct = !fg->is_dw && cg->kernel_h == 1 && cg->kernel_w == 1 &&
               cg->stride_h == 1 && cg->stride_w == 1 && cg->pad_top == 0 &&
               cg->pad_left == 0 && w.pe[1] == 0 && w.pe[2] == 0 &&
               !(kind_is_int8(fg->kind) && fg->k % KN_QS8_GEMM_KR);
  ydims[0] = xv.n;
  ydims[1] = w.out[1];
  ydims[2] = w.out[2];
  ydims[3] = nch;
  return KESTREL_OK;
}

/* Sizes beyond these are hostile files, not models; below them every
 * packed-size product fits in size_t. */
#define MAX_REDUCTION (UINT64_C(1) << 28)

static size_t packed_bytes(const fast_geo *fg) {
  if (fg->k == 0 || (uint64_t)fg->k > MAX_REDUCTION ||
      (uint64_t)fg->n > (UINT64_C(1) << 30))
    return 0;
  if (fg->is_deconv)
    return fg->geo.kernel_h * (fg->kind == KN_PACKED_QS8_GEMM
                                   ? kn_qs8_gemm_packed_size(fg->n, fg->k)
                                   : kn_f32_gemm_packed_size(fg->n, fg->k));
  switch (fg->kind) {
  case KN_PACKED_F32_GEMM:
    return kn_f32_gemm_packed_size(fg->n, fg->k);
  case KN_PACKED_QS8_GEMM:
    return kn_qs8_gemm_packed_size(fg->n, fg->k);
  case KN_PACKED_F32_DWCONV:
    return kn_f32_dwconv_packed_size(fg->n, fg->geo.kernel_h,
                                     fg->geo.kernel_w);
  case KN_PACKED_QS8_DWCONV:
    return kn_qs8_dwconv_packed_size(fg->n, fg->geo.kernel_h,
                                     fg->geo.kernel_w);
  default:
    return 0;
  }
}

/* Row length of the im2col buffer. int8 rows are padded to whole groups
 * of KN_QS8_GEMM_KR bytes (pad = zero): the packed weights are zero there,
 * so the GEMM can run with K rounded up and skip its K-tail path, which is
 * most of the work of a first conv with K = 3*3*3 = 27. */
static size_t im2col_k(const fast_geo *fg) {
  if (!kind_is_int8(fg->kind))
    return fg->k;
  return (fg->k + KN_QS8_GEMM_KR - 1) / KN_QS8_GEMM_KR * KN_QS8_GEMM_KR;
}

static size_t tile_rows(const fast_geo *fg) {
  size_t es = kind_is_int8(fg->kind) ? 1 : sizeof(float);
  size_t rows = IM2COL_TILE_BYTES / (im2col_k(fg) * es + 1);
  rows -= rows % ROW_GRAIN;
  if (rows < ROW_GRAIN)
    rows = ROW_GRAIN;
  if (rows > fg->m)
    rows = fg->m;
  return rows;
}

/* Few input channels (a network's first conv, C = 3): the direct kernel
 * instead of im2col + GEMM, where the active ISA has one. Past C = 8 the
 * kernel rows are long enough for the GEMM to do as well. */
#define SMALLC_MAX_C 8

static bool use_smallc(const fast_geo *fg) {
  return fg->kind == KN_PACKED_QS8_GEMM && fg->is_conv && !fg->is_deconv &&
         !fg->direct && fg->in_c <= SMALLC_MAX_C &&
         kn_kernels_get()->qs8_conv_smallc &&
         kn_qs8_conv_smallc_fits(&fg->geo, fg->n);
}

/* Output rows per direct-kernel call when an epilogue follows (table or
 * residual): it then runs on rows still in cache. */
#define SMALLC_BLOCK_BYTES (32 * 1024)

kestrel_status kn_conv_fast_infer(kn_graph *g, kn_node *n,
                                  kestrel_error *err) {
  kn_tensor *x = kn_in(g, n, 0), *wp = kn_in(g, n, 1);
  kn_tensor *sc = kn_opt_in(g, n, 2), *res = kn_opt_in(g, n, 3);
  kn_tensor *y = kn_out(g, n, 0);
  if (!x || !wp || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "packed node needs X, weights and an output");
  fast_geo fg;
  int64_t ydims[4] = {1, 1, 1, 1};
  kestrel_status st = fast_geometry(g, n, &fg, ydims, err);
  if (st != KESTREL_OK)
    return st;
  if (!kn_is_const(wp) || wp->dtype != KESTREL_DTYPE_U8 || wp->ndim != 1 ||
      packed_bytes(&fg) == 0 ||
      (uint64_t)wp->dims[0] != (uint64_t)packed_bytes(&fg))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "packed weights must be a constant U8 [%zu] "
                        "(N %zu, K %zu)",
                        packed_bytes(&fg), fg.n, fg.k);
  kn_act act = kn_act_from_node(n);
  if (!kn_act_valid(&act))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "unknown fused activation %d", act.kind);
  bool q = kind_is_int8(fg.kind);
  if (q) {
    if (x->dtype != KESTREL_DTYPE_I8 || !kn_is_q8_tensor(x) ||
        x->q_count != 1 || !x->q_zero_point)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "int8 packed node needs a per-tensor int8 input");
    if (y->dtype != KESTREL_DTYPE_I8 || y->q_count != 1 || !y->q_scale ||
        !y->q_zero_point || !(y->q_scale[0] > 0.0f))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "int8 packed node needs a per-tensor int8 output");
    if (!kn_is_const(sc) || sc->dtype != KESTREL_DTYPE_F32 ||
        kn_tensor_numel(sc) != (int64_t)fg.n)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "requant scales must be a constant F32 [%zu]", fg.n);
    const float *s = sc->data;
    for (size_t i = 0; i < fg.n; i++)
      if (!(s[i] >= 0.0f) || isinf(s[i]))
        return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                            "requant scale %zu is %g", i, (double)s[i]);
    kn_tensor *lut = kn_opt_in(g, n, 4);
    if (!act_is_clamp(act.kind) || lut) {
      /* Requantized to (act_in_scale, act_in_zero_point), then a table
       * (which holds any clamp too: fuse_int8_tables). */
      float as = kn_attr_float(n, "act_in_scale", 0.0f);
      int64_t az2 = kn_attr_int(n, "act_in_zero_point", 0);
      if (res || !kn_is_const(lut) || lut->dtype != KESTREL_DTYPE_I8 ||
          kn_tensor_numel(lut) != 256 || !(as > 0.0f) || isinf(as) ||
          az2 < -128 || az2 > 127)
        return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                            "int8 packed node with activation %d needs "
                            "act_in_scale/act_in_zero_point and a 256-entry "
                            "int8 table at input 4 (and no residual)",
                            act.kind);
    }
    int64_t az = kn_attr_int(n, "packed_a_zero_point", 0);
    if (fg.kind == KN_PACKED_QS8_GEMM && az != x->q_zero_point[0])
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "weights packed for input zero point %lld, input "
                          "has %d",
                          (long long)az, (int)x->q_zero_point[0]);
    if (res) {
      float ss = kn_attr_float(n, "sum_scale", 0.0f);
      int64_t sz = kn_attr_int(n, "sum_zero_point", 0);
      if (!(ss > 0.0f) || isinf(ss) || sz < -128 || sz > 127 ||
          res->dtype != KESTREL_DTYPE_I8 || res->q_count != 1 ||
          !res->q_scale || !res->q_zero_point)
        return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                            "int8 residual needs sum_scale/sum_zero_point "
                            "and a per-tensor int8 residual");
    }
  } else {
    if (x->dtype != KESTREL_DTYPE_F32)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "f32 packed node on a %s input",
                          kestrel_dtype_name(x->dtype));
    if (sc)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "f32 packed node with requant scales");
  }
  if (fg.k == 0 || fg.k > (SIZE_MAX / 64) / fg.n)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "empty or huge reduction");
  int ndim = fg.is_conv ? 4 : 2;
  kn_set_shape(y, q ? KESTREL_DTYPE_I8 : KESTREL_DTYPE_F32, ndim, ydims);
  if (res && (res->ndim != ndim || res->dtype != y->dtype ||
              memcmp(res->dims, ydims, sizeof(int64_t) * (size_t)ndim)))
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "residual must have the output's shape and dtype");
  return KESTREL_OK;
}

size_t kn_conv_fast_scratch(kn_graph *g, const kn_node *n) {
  fast_geo fg;
  int64_t ydims[4] = {1, 1, 1, 1};
  kestrel_error err;
  if (fast_geometry(g, n, &fg, ydims, &err) != KESTREL_OK || fg.is_dw ||
      fg.direct || fg.is_deconv || fg.m == 0)
    return 0;
  if (use_smallc(&fg))
    return kn_qs8_conv_smallc_scratch_size(&fg.geo, fg.n);
  size_t es = kind_is_int8(fg.kind) ? 1 : sizeof(float);
  return tile_rows(&fg) * im2col_k(&fg) * es;
}

uint64_t kn_conv_fast_macs(kn_graph *g, const kn_node *n) {
  fast_geo fg;
  int64_t ydims[4] = {1, 1, 1, 1};
  kestrel_error err;
  if (fast_geometry(g, n, &fg, ydims, &err) != KESTREL_OK)
    return 0;
  return (uint64_t)fg.batch * fg.m * fg.n * fg.k *
         (fg.is_deconv ? fg.geo.kernel_h : 1);
}

/* ---- run ------------------------------------------------------------------- */

typedef struct fast_job {
  const kn_kernels *kern;
  fast_geo fg;
  kn_dwconv_params dw;
  const uint8_t *x; /* this image */
  uint8_t *y;
  const uint8_t *res;
  const void *packed;
  /* int8 */
  kn_qs8_requant rq;
  int32_t a_zero;
  /* int8 residual: conv result requantized to (sum_scale, sum_zero) in y,
   * then y = requant_y(act(sum_scale*(y-sum_zero) + res_scale*(r-res_zero)))
   * exactly as the reference quantized Add: its own row code (sum.sa,
   * sum.za: the conv result; sum.sb, sum.zb: the residual). */
  kn_qs8_binary sum;
  float y_scale;
  int32_t y_zero;
  const int8_t *lut; /* int8 table activation: y = lut[y + 128] */
  uint8_t table[256]; /* the same, indexed by the raw byte (x8_lut) */
  /* f32 */
  float lo, hi;         /* clamp inside the kernels */
  float act_lo, act_hi; /* clamp activation run by the epilogue */
  kn_act act;
  bool post_act; /* run act over finished rows */
  bool has_mul, has_add; /* "post_mul" / "post_add" after the activation */
  float post_mul, post_add;
  /* scratch */
  uint8_t *scratch;
  size_t slice, tile;
} fast_job;

static float act_f32(const kn_act *a, float v) { return kn_act_apply1(a, v); }

/* The f32 activations the detector heads use most, as plain loops the
 * compiler vectorizes (the AVX2 clone only where the CPU has it, chosen by
 * the active kernel ISA so KESTREL_ISA=ref stays portable). Same float
 * operations as kn_act_apply1, no FMA contraction (no "fma" target). */
#define ACT_LOOPS(SUFFIX, ATTR)                                                \
  ATTR static void hardswish_##SUFFIX(float *restrict y, size_t count) {       \
    for (size_t i = 0; i < count; i++) {                                       \
      float v = y[i], r = v + 3.0f;                                            \
      r = r < 0.0f ? 0.0f : (r > 6.0f ? 6.0f : r);                             \
      y[i] = v * r * (1.0f / 6.0f);                                            \
    }                                                                          \
  }                                                                            \
  ATTR static void clamp_##SUFFIX(float *restrict y, size_t count, float lo,   \
                                  float hi) {                                  \
    for (size_t i = 0; i < count; i++)                                         \
      y[i] = y[i] < lo ? lo : (y[i] > hi ? hi : y[i]);                         \
  }                                                                            \
  ATTR static void add_##SUFFIX(float *restrict y, const float *restrict r,    \
                                size_t count) {                                \
    for (size_t i = 0; i < count; i++)                                         \
      y[i] += r[i];                                                            \
  }                                                                            \
  ATTR static void affine_##SUFFIX(float *restrict y, size_t count, float m,   \
                                   float a, bool has_mul, bool has_add) {      \
    if (has_mul)                                                               \
      for (size_t i = 0; i < count; i++)                                       \
        y[i] *= m;                                                             \
    if (has_add)                                                               \
      for (size_t i = 0; i < count; i++)                                       \
        y[i] += a;                                                             \
  }
ACT_LOOPS(generic, )
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_LOOPS 1
ACT_LOOPS(avx2, __attribute__((target("avx2"))))
#endif

static bool use_avx2_loops(void) {
#ifdef HAVE_AVX2_LOOPS
  return kn_kernels_get()->isa == KN_ISA_AVX2;
#else
  return false;
#endif
}

/* Residual add / activation over elements [0, count) at element offset
 * off of this image's output. */
static void epilogue(const fast_job *j, size_t off, size_t count) {
  if (kind_is_int8(j->fg.kind)) {
    if (j->lut) {
      uint8_t *y = j->y + off;
      j->kern->x8_lut(count, y, y, j->table);
      return;
    }
    if (!j->res)
      return;
    int8_t *y = (int8_t *)j->y + off;
    kn_qs8_binary_rows(&j->sum, y, (const int8_t *)j->res + off, y, count);
    return;
  }
  float *y = (float *)j->y + off;
  bool avx2 = use_avx2_loops();
#ifdef HAVE_AVX2_LOOPS
#define PICK(name, ...)                                                        \
  (avx2 ? name##_avx2(__VA_ARGS__) : name##_generic(__VA_ARGS__))
#else
#define PICK(name, ...) ((void)avx2, name##_generic(__VA_ARGS__))
#endif
  if (j->res) {
    const float *r = (const float *)j->res + off;
    if (r == y) /* the residual aliases the output (in-place plan) */
      for (size_t i = 0; i < count; i++)
        y[i] += y[i];
    else
      PICK(add, y, r, count);
  }
  if (j->post_act && j->act.kind == KN_ACT_HARDSWISH)
    PICK(hardswish, y, count);
  else if (j->post_act && act_is_clamp(j->act.kind))
    PICK(clamp, y, count, j->act_lo, j->act_hi);
  else if (j->post_act) /* sigmoid, tanh, leaky relu, hardsigmoid */
    for (size_t i = 0; i < count; i++)
      y[i] = act_f32(&j->act, y[i]);
  if (j->has_mul || j->has_add)
    PICK(affine, y, count, j->post_mul, j->post_add, j->has_mul, j->has_add);
#undef PICK
}

/* The GEMM kernels walk all N for each small tile of rows, so the packed
 * weights they stream should stay in L2: big layers (3x3x256 -> 256 is
 * 2.4 MB in f32) are cut into column chunks of about this many bytes. */
#define WEIGHT_CHUNK_BYTES (256 * 1024)

static void gemm_rows(const fast_job *j, const uint8_t *a, size_t lda,
                      size_t k, size_t rows, size_t row0) {
  size_t n = j->fg.n;
  bool q = kind_is_int8(j->fg.kind);
  size_t nr = q ? KN_QS8_GEMM_NR : KN_F32_GEMM_NR;
  /* Bytes of one packed block of nr columns (kernels.h layouts). */
  size_t block = q ? kn_qs8_gemm_packed_size(nr, k)
                   : kn_f32_gemm_packed_size(nr, k);
  size_t chunk = WEIGHT_CHUNK_BYTES / block * nr;
  if (chunk < nr)
    chunk = nr;
  for (size_t n0 = 0; n0 < n; n0 += chunk) {
    size_t nc = n - n0 < chunk ? n - n0 : chunk;
    const uint8_t *w = (const uint8_t *)j->packed + n0 / nr * block;
    if (q) {
      kn_qs8_requant rq = j->rq;
      rq.scale = j->rq.scale + n0;
      j->kern->qs8_gemm(rows, nc, k, (const int8_t *)a, lda, w,
                        (int8_t *)j->y + row0 * n + n0, n, &rq);
    } else {
      j->kern->f32_gemm(rows, nc, k, (const float *)a, lda, w,
                        (float *)j->y + row0 * n + n0, n, j->lo, j->hi);
    }
  }
  epilogue(j, row0 * n, rows * n);
}

/* Copies n bytes; the short runs of convs with few channels inline rather
 * than as one libc call each. */
static inline void copy_run(uint8_t *restrict dst, const uint8_t *restrict src,
                            size_t n) {
  if (n > 32) {
    memcpy(dst, src, n);
  } else if (n >= 8) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
      memcpy(dst + i, src + i, 8);
    if (i < n) /* the last 8 bytes again, overlapping */
      memcpy(dst + n - 8, src + n - 8, 8);
  } else {
    for (size_t i = 0; i < n; i++)
      dst[i] = src[i];
  }
}

/* im2col rows [r0, r1) (layout of kn_*_im2col in kernels.h): where a
 * kernel row lies wholly inside the image with dilation 1, its KW taps are
 * KW * C contiguous input elements, copied at once; that matters for the
 * first conv of a network (C = 3: nine 3-byte copies per row otherwise).
 * Other taps go through the kernels' im2col one row at a time. */
static void im2col_rows(const fast_job *j, size_t r0, size_t r1, uint8_t *buf) {
  const kn_conv_geometry *g = &j->fg.geo;
  bool q = kind_is_int8(j->fg.kind);
  size_t es = q ? 1 : sizeof(float);
  size_t c = g->in_c, kw = g->kernel_w, run = kw * c * es;
  size_t row_bytes = im2col_k(&j->fg) * es, pad = row_bytes - j->fg.k * es;
  if (pad)
    for (size_t r = r0; r < r1; r++)
      memset(buf + (r - r0) * row_bytes + j->fg.k * es, 0, pad);
  if (g->dilation_w != 1) {
    if (q && pad) {
      for (size_t r = r0; r < r1; r++)
        kn_qs8_im2col(g, (const int8_t *)j->x, (int8_t)j->a_zero, r, r + 1,
                      (int8_t *)buf + (r - r0) * row_bytes);
    } else if (q) {
      kn_qs8_im2col(g, (const int8_t *)j->x, (int8_t)j->a_zero, r0, r1,
                    (int8_t *)buf);
    } else {
      kn_f32_im2col(g, (const float *)j->x, r0, r1, (float *)buf);
    }
    return;
  }
  for (size_t r = r0; r < r1; r++) {
    size_t oy = r / g->out_w, ox = r % g->out_w;
    ptrdiff_t ix0 = (ptrdiff_t)(ox * g->stride_w) - (ptrdiff_t)g->pad_left;
    uint8_t *dst = buf + (r - r0) * row_bytes;
    if (ix0 < 0 || (size_t)ix0 + kw > g->in_w) {
      /* Touches the left/right padding: the per-tap path. */
      if (q)
        kn_qs8_im2col(g, (const int8_t *)j->x, (int8_t)j->a_zero, r, r + 1,
                      (int8_t *)dst);
      else
        kn_f32_im2col(g, (const float *)j->x, r, r + 1, (float *)dst);
      continue;
    }
    for (size_t ky = 0; ky < g->kernel_h; ky++, dst += run) {
      ptrdiff_t iy = (ptrdiff_t)(oy * g->stride_h + ky * g->dilation_h) -
                     (ptrdiff_t)g->pad_top;
      if (iy < 0 || iy >= (ptrdiff_t)g->in_h) {
        if (q)
          memset(dst, (int8_t)j->a_zero, run);
        else
          memset(dst, 0, run);
        continue;
      }
      const uint8_t *src = j->x + (((size_t)iy * g->in_w + (size_t)ix0) * c) * es;
      copy_run(dst, src, run);
    }
  }
}

static void run_gemm_chunk(void *ctx, size_t b, size_t e, int thread) {
  const fast_job *j = ctx;
  size_t es = kind_is_int8(j->fg.kind) ? 1 : sizeof(float);
  if (j->fg.direct) {
    /* Pixels (or Gemm rows) are already the K-long rows the GEMM wants. */
    size_t step = j->tile ? j->tile : e - b;
    for (size_t r = b; r < e; r += step) {
      size_t rows = e - r < step ? e - r : step;
      gemm_rows(j, j->x + r * j->fg.k * es, j->fg.k, j->fg.k, rows, r);
    }
    return;
  }
  uint8_t *buf = j->scratch + (size_t)thread * j->slice;
  for (size_t r = b; r < e; r += j->tile) {
    size_t rows = e - r < j->tile ? e - r : j->tile;
    im2col_rows(j, r, r + rows, buf);
    size_t kp = im2col_k(&j->fg);
    gemm_rows(j, buf, kp, kp, rows, r);
  }
}

/* Output rows [b, e) through the direct small-C kernel; with an epilogue,
 * in blocks of rows that stay in cache for it. */
static void run_smallc_chunk(void *ctx, size_t b, size_t e, int thread) {
  const fast_job *j = ctx;
  const kn_conv_geometry *g = &j->fg.geo;
  size_t n = j->fg.n, row = g->out_w * n;
  size_t step = e - b;
  if (j->lut || j->res) {
    step = SMALLC_BLOCK_BYTES / row;
    if (step < 1)
      step = 1;
  }
  void *scratch = j->scratch + (size_t)thread * j->slice;
  for (size_t r = b; r < e; r += step) {
    size_t r1 = e - r < step ? e : r + step;
    j->kern->qs8_conv_smallc(g, (const int8_t *)j->x, j->a_zero, j->packed, n,
                             r, r1, (int8_t *)j->y + r * row, &j->rq, scratch,
                             r != b);
    epilogue(j, r * row, (r1 - r) * row);
  }
}

/* Input rows [b, e) of a stride == kernel ConvTranspose: per (row, ky)
 * one GEMM whose C rows are the row's pixels and whose KW*M columns land
 * contiguously in output row y*KH + ky. */
static void run_deconv_chunk(void *ctx, size_t b, size_t e, int thread) {
  (void)thread;
  const fast_job *j = ctx;
  const fast_geo *fg = &j->fg;
  size_t es = kind_is_int8(fg->kind) ? 1 : sizeof(float);
  size_t in_w = fg->geo.in_w, kh = fg->geo.kernel_h;
  size_t block = fg->kind == KN_PACKED_QS8_GEMM
                     ? kn_qs8_gemm_packed_size(fg->n, fg->k)
                     : kn_f32_gemm_packed_size(fg->n, fg->k);
  size_t out_row = fg->geo.out_w * (fg->n / fg->geo.kernel_w); /* elements */
  for (size_t y = b; y < e; y++) {
    const uint8_t *a = j->x + y * in_w * fg->k * es;
    for (size_t ky = 0; ky < kh; ky++) {
      const uint8_t *w = (const uint8_t *)j->packed + ky * block;
      size_t off = (y * kh + ky) * out_row;
      if (kind_is_int8(fg->kind))
        j->kern->qs8_gemm(in_w, fg->n, fg->k, (const int8_t *)a, fg->k, w,
                          (int8_t *)j->y + off, fg->n, &j->rq);
      else
        j->kern->f32_gemm(in_w, fg->n, fg->k, (const float *)a, fg->k, w,
                          (float *)j->y + off, fg->n, j->lo, j->hi);
      epilogue(j, off, out_row);
    }
  }
}

/* Output rows [b, e) of a depthwise conv: the kernel sees a window of the
 * image starting at the first input row those outputs read. */
static void run_dw_chunk(void *ctx, size_t b, size_t e, int thread) {
  (void)thread;
  const fast_job *j = ctx;
  kn_dwconv_params p = j->dw;
  size_t es = kind_is_int8(j->fg.kind) ? 1 : sizeof(float);
  ptrdiff_t iy0 = (ptrdiff_t)(b * p.stride_h) - (ptrdiff_t)p.pad_top;
  size_t row_bytes = p.in_w * p.channels * es;
  const uint8_t *in = j->x;
  if (iy0 >= 0) {
    in += (size_t)iy0 * row_bytes;
    p.in_h -= (size_t)iy0;
    p.pad_top = 0;
  } else {
    p.pad_top = (size_t)-iy0;
  }
  p.out_h = e - b;
  size_t off = b * p.out_w * p.channels;
  if (kind_is_int8(j->fg.kind))
    j->kern->qs8_dwconv(&p, (const int8_t *)in, j->a_zero, j->packed,
                        (int8_t *)j->y + off, &j->rq);
  else
    j->kern->f32_dwconv(&p, (const float *)in, j->packed, (float *)j->y + off,
                        j->lo, j->hi);
  epilogue(j, off, p.out_h * p.out_w * p.channels);
}

kestrel_status kn_conv_fast_run(const kn_exec *ex, const kn_node *n,
                                kestrel_error *err) {
  kn_graph *g = ex->graph;
  kn_tensor *x = kn_in(g, n, 0), *wp = kn_in(g, n, 1);
  kn_tensor *sc = kn_opt_in(g, n, 2), *res = kn_opt_in(g, n, 3);
  kn_tensor *y = kn_out(g, n, 0);
  fast_job j;
  memset(&j, 0, sizeof(j));
  int64_t ydims[4] = {1, 1, 1, 1};
  kestrel_status st = fast_geometry(g, n, &j.fg, ydims, err);
  if (st != KESTREL_OK)
    return st;
  if (j.fg.m == 0 || j.fg.batch == 0)
    return KESTREL_OK;
  j.kern = kn_kernels_get();
  j.packed = wp->data;
  j.act = kn_act_from_node(n);
  bool q = kind_is_int8(j.fg.kind);
  size_t es = q ? 1 : sizeof(float);
  if (q) {
    j.a_zero = x->q_zero_point[0];
    j.y_scale = y->q_scale[0];
    j.y_zero = y->q_zero_point[0];
    j.rq.scale = sc->data;
    if (res) {
      /* The GEMM produces the pre-Add tensor; the epilogue does the Add
       * and the activation. */
      /* The activation is a clamp (infer): the Add's own clamp form, with
       * which kn_act_apply1's gives the same bytes (they differ only on
       * NaN and -0, which both requantize to y_zero). */
      j.sum.sa = kn_attr_float(n, "sum_scale", 1.0f);
      j.sum.za = (int32_t)kn_attr_int(n, "sum_zero_point", 0);
      j.sum.sb = res->q_scale[0];
      j.sum.zb = res->q_zero_point[0];
      j.sum.sy = j.y_scale;
      j.sum.zy = j.y_zero;
      act_bounds(&j.act, &j.sum.lo, &j.sum.hi);
      kn_qs8_binary_prepare(&j.sum);
      j.rq.zero_point = j.sum.za;
      j.rq.out_min = -128;
      j.rq.out_max = 127;
    } else if (kn_opt_in(g, n, 4)) {
      j.lut = kn_opt_in(g, n, 4)->data;
      for (int b = 0; b < 256; b++)
        j.table[b] = (uint8_t)j.lut[(int8_t)(uint8_t)b + 128];
      j.rq.zero_point = (int32_t)kn_attr_int(n, "act_in_zero_point", 0);
      j.rq.out_min = -128;
      j.rq.out_max = 127;
    } else {
      float lo, hi;
      act_bounds(&j.act, &lo, &hi);
      j.rq.zero_point = j.y_zero;
      j.rq.out_min = q_bound(lo, j.y_scale, j.y_zero, -128);
      j.rq.out_max = q_bound(hi, j.y_scale, j.y_zero, 127);
      if (j.rq.out_min > j.rq.out_max)
        j.rq.out_min = j.rq.out_max;
    }
  } else {
    j.has_mul = kn_node_attr(n, "post_mul") != NULL;
    j.has_add = kn_node_attr(n, "post_add") != NULL;
    j.post_mul = kn_attr_float(n, "post_mul", 1.0f);
    j.post_add = kn_attr_float(n, "post_add", 0.0f);
    /* The GEMM clamps only when nothing comes between it and the clamp. */
    j.lo = -INFINITY;
    j.hi = INFINITY;
    act_bounds(&j.act, &j.act_lo, &j.act_hi);
    if (act_is_clamp(j.act.kind) && !res) {
      j.lo = j.act_lo;
      j.hi = j.act_hi;
    } else {
      j.post_act = j.act.kind != KN_ACT_NONE;
    }
  }
  int threads = ex->pool ? ex->num_threads : 1;
  if (threads < 1)
    threads = 1;
  if (!j.fg.is_dw && !j.fg.direct && !j.fg.is_deconv) {
    size_t need = kn_conv_fast_scratch(g, n);
    size_t slice = ex->scratch_bytes / (size_t)threads;
    if (!ex->scratch || slice < need)
      return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n,
                          "scratch slice %zu bytes, need %zu", slice, need);
    j.scratch = ex->scratch;
    j.slice = slice;
    j.tile = tile_rows(&j.fg);
  } else if (j.fg.direct) {
    /* Row tiles keep A and the epilogue's rows in cache while the column
     * chunks of gemm_rows stream the weights. */
    j.tile = tile_rows(&j.fg);
  }
  if (j.fg.is_dw) {
    kn_conv_geometry *cg = &j.fg.geo;
    j.dw = (kn_dwconv_params){
        .in_h = cg->in_h, .in_w = cg->in_w, .channels = cg->in_c,
        .out_h = cg->out_h, .out_w = cg->out_w,
        .kernel_h = cg->kernel_h, .kernel_w = cg->kernel_w,
        .stride_h = cg->stride_h, .stride_w = cg->stride_w,
        .dilation_h = cg->dilation_h, .dilation_w = cg->dilation_w,
        .pad_top = cg->pad_top, .pad_left = cg->pad_left};
  }
  size_t x_img = j.fg.is_conv ? j.fg.geo.in_h * j.fg.geo.in_w * j.fg.in_c * es
                              : 0;
  size_t y_img = (size_t)(ydims[1] * ydims[2] * ydims[3]) * es;
  for (size_t b = 0; b < j.fg.batch; b++) {
    j.x = (const uint8_t *)x->data + b * x_img;
    j.y = (uint8_t *)y->data + b * y_img;
    j.res = res ? (const uint8_t *)res->data + b * y_img : NULL;
    if (j.fg.is_deconv)
      kn_parallel_for(ex->pool, j.fg.geo.in_h, 1, run_deconv_chunk, &j);
    else if (j.fg.is_dw)
      kn_parallel_for(ex->pool, j.fg.geo.out_h, 1, run_dw_chunk, &j);
    else if (use_smallc(&j.fg))
      kn_parallel_for(ex->pool, j.fg.geo.out_h, 1, run_smallc_chunk, &j);
    else
      kn_parallel_for(ex->pool, j.fg.m, ROW_GRAIN, run_gemm_chunk, &j);
  }
  return KESTREL_OK;
}
