/* Reference kernels for Conv, ConvTranspose, Gemm and MatMul (float32, and
 * the integer cores their quantized forms share). These are the oracles the
 * SIMD kernels are tested against: plain loops, innermost over contiguous
 * memory where the layout allows it. Layout (NCHW/NHWC) is handled through
 * element strides, so there is one loop nest per op. */
#include <limits.h>
#include <string.h>

#include "conv_fast.h"
#include "ops_common.h"
#include "q8_requant.h"

/* Output positions accumulated at once in a stack row (kernels never
 * allocate; a row of this many floats stays in L1). */
#define CONV_TILE 256

/* Attribute values beyond this are treated as hostile. */
#define MAX_WINDOW_VALUE (INT64_C(1) << 24)

/* ---- geometry shared with pool.c / quant.c ------------------------------- */

bool kn_layout_attr(const kn_node *n, int *layout) {
  int64_t l = kn_attr_int(n, "layout", KN_LAYOUT_NCHW);
  if (l != KN_LAYOUT_NCHW && l != KN_LAYOUT_NHWC)
    return false;
  *layout = (int)l;
  return true;
}

bool kn_spatial_view(const kn_tensor *t, int layout, kn_spatial *v) {
  int r = t->ndim;
  if (r < 3 || r > 2 + KN_MAX_SPATIAL)
    return false;
  memset(v, 0, sizeof(*v));
  v->nsp = r - 2;
  int64_t strides[KN_MAX_DIMS];
  int64_t s = 1;
  for (int i = r - 1; i >= 0; i--) {
    strides[i] = s;
    s *= t->dims[i];
  }
  int first_sp = layout == KN_LAYOUT_NHWC ? 1 : 2;
  int c_axis = layout == KN_LAYOUT_NHWC ? r - 1 : 1;
  v->n = t->dims[0];
  v->stride_n = strides[0];
  v->c = t->dims[c_axis];
  v->stride_c = strides[c_axis];
  int pad = KN_MAX_SPATIAL - v->nsp;
  for (int i = 0; i < KN_MAX_SPATIAL; i++) {
    if (i < pad) {
      v->sp[i] = 1;
      v->stride_sp[i] = 0;
    } else {
      v->sp[i] = t->dims[first_sp + i - pad];
      v->stride_sp[i] = strides[first_sp + i - pad];
    }
  }
  return true;
}

void kn_spatial_dims(const kn_spatial *v, int layout, int64_t c,
                     const int64_t *sp, int64_t *dims) {
  int pad = KN_MAX_SPATIAL - v->nsp;
  dims[0] = v->n;
  if (layout == KN_LAYOUT_NHWC) {
    for (int i = 0; i < v->nsp; i++)
      dims[1 + i] = sp[pad + i];
    dims[1 + v->nsp] = c;
  } else {
    dims[1] = c;
    for (int i = 0; i < v->nsp; i++)
      dims[2 + i] = sp[pad + i];
  }
}

kestrel_status kn_window_geometry(const kn_node *n, int nsp,
                                  const int64_t *in, const int64_t *kernel,
                                  bool ceil_mode, kn_window *w,
                                  kestrel_error *err) {
  const int64_t *ks = NULL, *st = NULL, *dl = NULL, *pd = NULL;
  int nk = kn_attr_ints(n, "kernel_shape", &ks);
  int ns = kn_attr_ints(n, "strides", &st);
  int nd = kn_attr_ints(n, "dilations", &dl);
  int np = kn_attr_ints(n, "pads", &pd);
  const char *auto_pad = kn_attr_string(n, "auto_pad", "NOTSET");
  if (nk == 0 && !kernel)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "missing kernel_shape");
  if ((nk && nk != nsp) || (ns && ns != nsp) || (nd && nd != nsp) ||
      (np && np != 2 * nsp))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "kernel_shape/strides/dilations/pads do not match "
                        "%d spatial dims",
                        nsp);
  int mode; /* 0 NOTSET, 1 VALID, 2 SAME_UPPER, 3 SAME_LOWER */
  if (!strcmp(auto_pad, "NOTSET") || !auto_pad[0])
    mode = 0;
  else if (!strcmp(auto_pad, "VALID"))
    mode = 1;
  else if (!strcmp(auto_pad, "SAME_UPPER"))
    mode = 2;
  else if (!strcmp(auto_pad, "SAME_LOWER"))
    mode = 3;
  else
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad auto_pad '%s'",
                        auto_pad);
  int pad = KN_MAX_SPATIAL - nsp;
  for (int i = 0; i < KN_MAX_SPATIAL; i++) {
    if (i < pad) {
      w->k[i] = w->s[i] = w->d[i] = 1;
      w->pb[i] = w->pe[i] = 0;
      w->out[i] = in[i];
      continue;
    }
    int j = i - pad;
    int64_t k = nk ? ks[j] : kernel[j];
    int64_t s = ns ? st[j] : 1;
    int64_t d = nd ? dl[j] : 1;
    int64_t pb = np ? pd[j] : 0, pe = np ? pd[j + nsp] : 0;
    if (k < 1 || s < 1 || d < 1 || k > MAX_WINDOW_VALUE ||
        s > MAX_WINDOW_VALUE || d > MAX_WINDOW_VALUE || pb < 0 || pe < 0 ||
        pb > MAX_WINDOW_VALUE || pe > MAX_WINDOW_VALUE)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "bad window on axis %d: kernel %lld stride %lld "
                          "dilation %lld pads %lld,%lld",
                          j, (long long)k, (long long)s, (long long)d,
                          (long long)pb, (long long)pe);
    int64_t ek = (k - 1) * d + 1;
    int64_t out;
    if (mode == 2 || mode == 3) {
      out = kn_ceil_div(in[i], s);
      int64_t total = (out - 1) * s + ek - in[i];
      if (total < 0)
        total = 0;
      pb = mode == 2 ? total / 2 : total - total / 2;
      pe = total - pb;
    } else {
      if (mode == 1)
        pb = pe = 0;
      int64_t span = in[i] + pb + pe - ek;
      if (span < 0) {
        if (in[i] != 0)
          return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                              "window %lld larger than padded input %lld on "
                              "axis %d",
                              (long long)ek, (long long)(in[i] + pb + pe), j);
        out = 0;
      } else if (ceil_mode) {
        out = kn_ceil_div(span, s) + 1;
        /* The last window must start inside the input or its left pad. */
        if ((out - 1) * s >= in[i] + pb)
          out--;
      } else {
        out = span / s + 1;
      }
    }
    w->k[i] = k;
    w->s[i] = s;
    w->d[i] = d;
    w->pb[i] = pb;
    w->pe[i] = pe;
    w->out[i] = out;
  }
  return KESTREL_OK;
}

/* ---- Conv ---------------------------------------------------------------- */

kestrel_status kn_conv_infer_common(kn_graph *g, kn_node *n, kn_tensor *x,
                                    kn_tensor *w, kn_tensor *b, kn_tensor *y,
                                    kestrel_dtype ydt, kestrel_error *err) {
  (void)g;
  int layout;
  if (!kn_layout_attr(n, &layout))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad layout");
  kn_spatial xv;
  if (!kn_spatial_view(x, layout, &xv))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "input rank %d (need 3..5)", x->ndim);
  if (w->ndim != x->ndim)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "weight rank %d differs from input rank %d", w->ndim,
                        x->ndim);
  int64_t group = kn_attr_int(n, "group", 1);
  int64_t m = w->dims[0];
  if (group < 1 || group > INT32_MAX || m % group != 0 ||
      w->dims[1] * group != xv.c)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "channels: input %lld, weight [%lld,%lld], group %lld",
                        (long long)xv.c, (long long)m, (long long)w->dims[1],
                        (long long)group);
  if (b && (b->ndim != 1 || b->dims[0] != m))
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "bias must be [%lld]", (long long)m);
  const int64_t *ks;
  int nk = kn_attr_ints(n, "kernel_shape", &ks);
  for (int i = 0; i < nk && i < xv.nsp; i++)
    if (ks[i] != w->dims[2 + i])
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "kernel_shape disagrees with weights");
  kn_window win;
  kestrel_status st =
      kn_window_geometry(n, xv.nsp, xv.sp, w->dims + 2, false, &win, err);
  if (st != KESTREL_OK)
    return st;
  kn_act act = kn_act_from_node(n);
  if (!kn_act_valid(&act))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "unknown fused activation %d", act.kind);
  int64_t dims[KN_MAX_DIMS];
  kn_spatial_dims(&xv, layout, m, win.out, dims);
  kn_set_shape(y, ydt, x->ndim, dims);
  return KESTREL_OK;
}

static kestrel_status conv_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  if (kn_node_is_packed(n)) /* prepacked weights: the fast path */
    return kn_conv_fast_infer(g, n, err);
  kn_tensor *x = kn_in(g, n, 0), *w = kn_in(g, n, 1);
  kn_tensor *b = kn_opt_in(g, n, 2), *y = kn_out(g, n, 0);
  if (!x || !w || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs X and W inputs and an output");
  kestrel_dtype ydt = KESTREL_DTYPE_F32;
  if (kn_is_q8_tensor(x)) {
    /* TFLite full-integer conv: int8 weights, int32 bias. */
    if (!kn_is_q8(w->dtype) || !w->q_count ||
        (b && b->dtype != KESTREL_DTYPE_I32))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "quantized conv needs quantized weights and int32 "
                          "bias");
    if (w->q_count != 1 && w->q_count != w->dims[0])
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "weight scales: %d for %lld output channels",
                          w->q_count, (long long)w->dims[0]);
    ydt = kn_is_q8(y->dtype) && y->q_count ? y->dtype : x->dtype;
  } else if (x->dtype != KESTREL_DTYPE_F32 || w->dtype != KESTREL_DTYPE_F32 ||
             (b && b->dtype != KESTREL_DTYPE_F32)) {
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "dtype %s (float32 only)",
                        kestrel_dtype_name(x->dtype));
  }
  kestrel_status st = kn_conv_infer_common(g, n, x, w, b, y, ydt, err);
  kn_tensor *res = kn_opt_in(g, n, 3);
  if (st == KESTREL_OK && res &&
      (ydt != KESTREL_DTYPE_F32 || res->dtype != KESTREL_DTYPE_F32 ||
       res->ndim != y->ndim ||
       memcmp(res->dims, y->dims, sizeof(int64_t) * (size_t)y->ndim)))
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "residual input '%s' must be float32 shaped as the "
                        "output", res->name);
  if (st == KESTREL_OK && ydt != KESTREL_DTYPE_F32 && !y->q_count)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "quantized conv output has no quantization");
  return st;
}

/* Geometry of one conv invocation, read back from the tensors at run time. */
typedef struct conv_plan {
  kn_spatial xv, yv;
  kn_window win;
  int64_t group, cg, mg; /* group count, input / output channels per group */
  int64_t ksize;         /* KD*KH*KW */
} conv_plan;

static kestrel_status conv_plan_make(const kn_node *n, const kn_tensor *x,
                                     const kn_tensor *w, const kn_tensor *y,
                                     int *layout, conv_plan *p,
                                     kestrel_error *err) {
  if (!kn_layout_attr(n, layout) || !kn_spatial_view(x, *layout, &p->xv) ||
      !kn_spatial_view(y, *layout, &p->yv))
    return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n, "bad conv tensors");
  kestrel_status st = kn_window_geometry(n, p->xv.nsp, p->xv.sp, w->dims + 2,
                                         false, &p->win, err);
  if (st != KESTREL_OK)
    return st;
  p->group = kn_attr_int(n, "group", 1);
  p->cg = p->xv.c / p->group;
  p->mg = p->yv.c / p->group;
  p->ksize = p->win.k[0] * p->win.k[1] * p->win.k[2];
  return KESTREL_OK;
}

/* acc[j] += wv * xrow[(o*s + off) * xs] for o = o0 + j in [lo, hi). */
static void conv_tap_f32(float *restrict acc, const float *restrict xrow,
                         float wv, int64_t o0, int64_t lo, int64_t hi,
                         int64_t s, int64_t off, int64_t xs) {
  if (s == 1 && xs == 1) {
    const float *src = xrow + off;
    for (int64_t o = lo; o < hi; o++)
      acc[o - o0] += wv * src[o];
  } else {
    for (int64_t o = lo; o < hi; o++)
      acc[o - o0] += wv * xrow[(o * s + off) * xs];
  }
}

/* Float conv, weights [M, C/group, KD, KH, KW]: for each output row tile the
 * accumulators stay in L1 while every (input channel, tap) adds a strided
 * input row to them. */
static void conv_f32(const conv_plan *p, const float *x, const float *wt,
                     const float *bias, const float *residual, float *y,
                     const kn_act *act) {
  const kn_spatial *xv = &p->xv, *yv = &p->yv;
  const kn_window *w = &p->win;
  float acc[CONV_TILE];
  for (int64_t in = 0; in < xv->n; in++) {
    for (int64_t m = 0; m < yv->c; m++) {
      int64_t g = m / p->mg;
      const float *wm = wt + m * p->cg * p->ksize;
      float bv = bias ? bias[m] : 0.0f;
      for (int64_t od = 0; od < yv->sp[0]; od++) {
        for (int64_t oh = 0; oh < yv->sp[1]; oh++) {
          float *yrow = y + in * yv->stride_n + m * yv->stride_c +
                        od * yv->stride_sp[0] + oh * yv->stride_sp[1];
          for (int64_t ow0 = 0; ow0 < yv->sp[2]; ow0 += CONV_TILE) {
            int64_t nw = yv->sp[2] - ow0;
            if (nw > CONV_TILE)
              nw = CONV_TILE;
            for (int64_t j = 0; j < nw; j++)
              acc[j] = bv;
            for (int64_t ic = 0; ic < p->cg; ic++) {
              const float *xc =
                  x + in * xv->stride_n + (g * p->cg + ic) * xv->stride_c;
              for (int64_t kd = 0; kd < w->k[0]; kd++) {
                int64_t id = od * w->s[0] - w->pb[0] + kd * w->d[0];
                if (id < 0 || id >= xv->sp[0])
                  continue;
                for (int64_t kh = 0; kh < w->k[1]; kh++) {
                  int64_t ih = oh * w->s[1] - w->pb[1] + kh * w->d[1];
                  if (ih < 0 || ih >= xv->sp[1])
                    continue;
                  const float *xrow =
                      xc + id * xv->stride_sp[0] + ih * xv->stride_sp[1];
                  const float *wk = wm + ((ic * w->k[0] + kd) * w->k[1] + kh) *
                                             w->k[2];
                  for (int64_t kw = 0; kw < w->k[2]; kw++) {
                    int64_t off = kw * w->d[2] - w->pb[2], lo, hi;
                    kn_valid_range(yv->sp[2], xv->sp[2], w->s[2], off, &lo,
                                   &hi);
                    if (lo < ow0)
                      lo = ow0;
                    if (hi > ow0 + nw)
                      hi = ow0 + nw;
                    conv_tap_f32(acc, xrow, wk[kw], ow0, lo, hi, w->s[2], off,
                                 xv->stride_sp[2]);
                  }
                }
              }
            }
            /* A fused residual Add ("residual" = 1) lands before the
             * activation, as the Add did. */
            if (residual) {
              const float *rrow = residual + (yrow - y);
              for (int64_t j = 0; j < nw; j++)
                acc[j] += rrow[(ow0 + j) * yv->stride_sp[2]];
            }
            for (int64_t j = 0; j < nw; j++)
              yrow[(ow0 + j) * yv->stride_sp[2]] = kn_act_apply1(act, acc[j]);
          }
        }
      }
    }
  }
}

/* Integer tap: acc[j] += wv * (x - x_zero) over the valid range. */
static void conv_tap_q8(int32_t *restrict acc, const void *xrow,
                        kestrel_dtype dt, int32_t wv, int32_t xz, int64_t o0,
                        int64_t lo, int64_t hi, int64_t s, int64_t off,
                        int64_t xs) {
  if (dt == KESTREL_DTYPE_U8) {
    const uint8_t *r = xrow;
    for (int64_t o = lo; o < hi; o++)
      acc[o - o0] += wv * ((int32_t)r[(o * s + off) * xs] - xz);
  } else {
    const int8_t *r = xrow;
    for (int64_t o = lo; o < hi; o++)
      acc[o - o0] += wv * ((int32_t)r[(o * s + off) * xs] - xz);
  }
}

static int32_t qconv_w_zero(const kn_qconv *q, int64_t m) {
  if (!q->w_zero)
    return q->w_zero_const;
  int64_t nz = kn_tensor_numel(q->w_zero);
  if (nz <= 0)
    return 0;
  return kn_load_int(q->w_zero->data, q->w_zero->dtype, nz == 1 ? 0 : m);
}

kestrel_status kn_qconv_run(const kn_node *n, const kn_qconv *q,
                            kestrel_error *err) {
  conv_plan p;
  int layout;
  kestrel_status st = conv_plan_make(n, q->x, q->w, q->y, &layout, &p, err);
  if (st != KESTREL_OK)
    return st;
  const kn_spatial *xv = &p.xv, *yv = &p.yv;
  const kn_window *w = &p.win;
  const uint8_t *x = q->x->data;
  size_t xel = kestrel_dtype_size(q->x->dtype);
  const int32_t *bias = q->bias ? q->bias->data : NULL;
  int32_t acc[CONV_TILE];
  /* The packed kernels' requantization (q8_requant.h), so that packing a
   * model changes no output byte. */
  kn_q8_epilogue epi;
  if (!q->raw_int32)
    kn_q8_epilogue_init(&epi, &q->act, q->y_scale, q->y_zero, q->y->dtype);
  for (int64_t in = 0; in < xv->n; in++) {
    for (int64_t m = 0; m < yv->c; m++) {
      int64_t g = m / p.mg;
      int64_t wbase = m * p.cg * p.ksize;
      int32_t wz = qconv_w_zero(q, m);
      int32_t bv = bias ? bias[m] : 0;
      float mult = 1.0f;
      if (!q->raw_int32) {
        float ws = q->w_scale_count > 1 ? q->w_scale[m] : q->w_scale[0];
        mult = kn_q8_channel_scale(&epi, q->x_scale, ws);
      }
      for (int64_t od = 0; od < yv->sp[0]; od++) {
        for (int64_t oh = 0; oh < yv->sp[1]; oh++) {
          int64_t yrow = in * yv->stride_n + m * yv->stride_c +
                         od * yv->stride_sp[0] + oh * yv->stride_sp[1];
          for (int64_t ow0 = 0; ow0 < yv->sp[2]; ow0 += CONV_TILE) {
            int64_t nw = yv->sp[2] - ow0;
            if (nw > CONV_TILE)
              nw = CONV_TILE;
            for (int64_t j = 0; j < nw; j++)
              acc[j] = bv;
            for (int64_t ic = 0; ic < p.cg; ic++) {
              int64_t xc = in * xv->stride_n + (g * p.cg + ic) * xv->stride_c;
              for (int64_t kd = 0; kd < w->k[0]; kd++) {
                int64_t id = od * w->s[0] - w->pb[0] + kd * w->d[0];
                if (id < 0 || id >= xv->sp[0])
                  continue;
                for (int64_t kh = 0; kh < w->k[1]; kh++) {
                  int64_t ih = oh * w->s[1] - w->pb[1] + kh * w->d[1];
                  if (ih < 0 || ih >= xv->sp[1])
                    continue;
                  const uint8_t *xrow =
                      x + (size_t)(xc + id * xv->stride_sp[0] +
                                   ih * xv->stride_sp[1]) *
                              xel;
                  int64_t wk =
                      wbase + ((ic * w->k[0] + kd) * w->k[1] + kh) * w->k[2];
                  for (int64_t kw = 0; kw < w->k[2]; kw++) {
                    int32_t wv =
                        kn_load_int(q->w->data, q->w->dtype, wk + kw) - wz;
                    int64_t off = kw * w->d[2] - w->pb[2], lo, hi;
                    kn_valid_range(yv->sp[2], xv->sp[2], w->s[2], off, &lo,
                                   &hi);
                    if (lo < ow0)
                      lo = ow0;
                    if (hi > ow0 + nw)
                      hi = ow0 + nw;
                    conv_tap_q8(acc, xrow, q->x->dtype, wv, q->x_zero, ow0, lo,
                                hi, w->s[2], off, xv->stride_sp[2]);
                  }
                }
              }
            }
            for (int64_t j = 0; j < nw; j++) {
              int64_t yi = yrow + (ow0 + j) * yv->stride_sp[2];
              if (q->raw_int32) {
                ((int32_t *)q->y->data)[yi] = acc[j];
              } else {
                kn_store_int(q->y->data, q->y->dtype, yi,
                             kn_q8_epilogue_apply(&epi, acc[j], mult));
              }
            }
          }
        }
      }
    }
  }
  return KESTREL_OK;
}

static kestrel_status conv_run(const kn_exec *x, const kn_node *n,
                               kestrel_error *err) {
  if (kn_node_is_packed(n))
    return kn_conv_fast_run(x, n, err);
  kn_graph *g = x->graph;
  kn_tensor *in = kn_in(g, n, 0), *w = kn_in(g, n, 1);
  kn_tensor *b = kn_opt_in(g, n, 2), *y = kn_out(g, n, 0);
  kn_act act = kn_act_from_node(n);
  if (kn_numel(y->ndim, y->dims) == 0)
    return KESTREL_OK;
  if (kn_is_q8_tensor(in)) {
    kn_qconv q;
    memset(&q, 0, sizeof(q));
    q.x = in;
    q.w = w;
    q.bias = b;
    q.y = y;
    q.x_zero = kn_q_zero(in, 0);
    q.x_scale = kn_q_scale(in, 0);
    /* TFLite weights carry their own (int32) zero points, normally 0. */
    q.w_zero_const = kn_q_zero(w, 0);
    q.w_scale = w->q_scale;
    q.w_scale_count = w->q_count;
    q.y_scale = kn_q_scale(y, 0);
    q.y_zero = kn_q_zero(y, 0);
    q.act = act;
    return kn_qconv_run(n, &q, err);
  }
  conv_plan p;
  int layout;
  kestrel_status st = conv_plan_make(n, in, w, y, &layout, &p, err);
  if (st != KESTREL_OK)
    return st;
  kn_tensor *res = kn_opt_in(g, n, 3);
  conv_f32(&p, in->data, w->data, b ? b->data : NULL, res ? res->data : NULL,
           y->data, &act);
  return KESTREL_OK;
}

uint64_t kn_conv_macs(kn_graph *g, const kn_node *n) {
  if (kn_node_is_packed(n))
    return kn_conv_fast_macs(g, n);
  kn_tensor *w = kn_in(g, n, 1), *y = kn_out(g, n, 0);
  if (!w || !y || w->ndim < 2 || y->ndim < 0)
    return 0;
  /* Every output element takes (C/group) * kernel taps. */
  int64_t per = 1;
  for (int i = 1; i < w->ndim; i++)
    per *= w->dims[i];
  return (uint64_t)(kn_tensor_numel(y) * per);
}

/* ---- ConvTranspose ------------------------------------------------------- */

/* Output sizes and begin pads of a transposed conv (padded to 3 dims). */
static kestrel_status convt_geometry(const kn_node *n, const kn_spatial *xv,
                                     const kn_tensor *w, kn_window *win,
                                     kestrel_error *err) {
  int nsp = xv->nsp, pad = KN_MAX_SPATIAL - nsp;
  const int64_t *ks = NULL, *st = NULL, *dl = NULL, *pd = NULL, *op = NULL,
                *os = NULL;
  int nk = kn_attr_ints(n, "kernel_shape", &ks);
  int ns = kn_attr_ints(n, "strides", &st);
  int nd = kn_attr_ints(n, "dilations", &dl);
  int np = kn_attr_ints(n, "pads", &pd);
  int nop = kn_attr_ints(n, "output_padding", &op);
  int nos = kn_attr_ints(n, "output_shape", &os);
  const char *auto_pad = kn_attr_string(n, "auto_pad", "NOTSET");
  bool same_upper = !strcmp(auto_pad, "SAME_UPPER");
  bool same = same_upper || !strcmp(auto_pad, "SAME_LOWER");
  bool valid = !strcmp(auto_pad, "VALID");
  if (!same && !valid && strcmp(auto_pad, "NOTSET") && auto_pad[0])
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad auto_pad '%s'",
                        auto_pad);
  /* output_shape may list all dims or only the spatial ones. */
  if (nos == nsp + 2) {
    os += 2;
    nos = nsp;
  }
  if ((nk && nk != nsp) || (ns && ns != nsp) || (nd && nd != nsp) ||
      (np && np != 2 * nsp) || (nop && nop != nsp) || (nos && nos != nsp))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "attribute lengths do not match %d spatial dims", nsp);
  for (int i = 0; i < KN_MAX_SPATIAL; i++) {
    if (i < pad) {
      win->k[i] = win->s[i] = win->d[i] = 1;
      win->pb[i] = win->pe[i] = 0;
      win->out[i] = 1;
      continue;
    }
    int j = i - pad;
    int64_t k = nk ? ks[j] : w->dims[2 + j];
    int64_t s = ns ? st[j] : 1, d = nd ? dl[j] : 1;
    int64_t opad = nop ? op[j] : 0;
    int64_t pb = np ? pd[j] : 0, pe = np ? pd[j + nsp] : 0;
    if (k != w->dims[2 + j] || s < 1 || d < 1 || s > MAX_WINDOW_VALUE ||
        d > MAX_WINDOW_VALUE || k > MAX_WINDOW_VALUE || opad < 0 ||
        opad > MAX_WINDOW_VALUE || pb < 0 || pe < 0 ||
        pb > MAX_WINDOW_VALUE || pe > MAX_WINDOW_VALUE)
      return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                          "bad window on axis %d", j);
    int64_t in = xv->sp[i], ek = (k - 1) * d + 1;
    int64_t full = s * (in - 1) + opad + ek; /* output before cropping */
    int64_t out;
    if (nos || same) {
      if (nos) {
        out = os[j];
        if (out < 0 || out > MAX_WINDOW_VALUE * 64)
          return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                              "bad output_shape");
      } else {
        out = in * s;
      }
      int64_t total = full - out;
      if (total < 0)
        total = 0; /* extra output past the last tap stays at bias */
      if (same_upper) {
        pb = total / 2;
        pe = total - pb;
      } else {
        pb = total - total / 2;
        pe = total / 2;
      }
    } else {
      if (valid)
        pb = pe = 0;
      out = full - pb - pe;
    }
    if (in == 0)
      out = nos ? out : 0;
    if (out < 0)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "negative output size on axis %d", j);
    win->k[i] = k;
    win->s[i] = s;
    win->d[i] = d;
    win->pb[i] = pb;
    win->pe[i] = pe;
    win->out[i] = out;
  }
  return KESTREL_OK;
}

static kestrel_status convt_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  if (kn_node_is_packed(n))
    return kn_conv_fast_infer(g, n, err);
  kn_tensor *x = kn_in(g, n, 0), *w = kn_in(g, n, 1);
  kn_tensor *b = kn_opt_in(g, n, 2), *y = kn_out(g, n, 0);
  if (!x || !w || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs X and W inputs and an output");
  kestrel_dtype ydt = KESTREL_DTYPE_F32;
  if (kn_is_q8_tensor(x)) {
    /* Quantized: int8 weights (per-tensor, or per output channel when
     * group is 1), int32 bias, int32 accumulation. */
    if (!kn_is_q8(w->dtype) || !w->q_count ||
        (b && b->dtype != KESTREL_DTYPE_I32) || !kn_is_q8_tensor(y))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "quantized ConvTranspose needs quantized weights "
                          "and output and an int32 bias");
    ydt = y->dtype;
  } else if (x->dtype != KESTREL_DTYPE_F32 || w->dtype != KESTREL_DTYPE_F32 ||
             (b && b->dtype != KESTREL_DTYPE_F32)) {
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "dtype %s (float32 only)",
                        kestrel_dtype_name(x->dtype));
  }
  int layout;
  if (!kn_layout_attr(n, &layout))
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n, "bad layout");
  kn_spatial xv;
  if (!kn_spatial_view(x, layout, &xv))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "input rank %d (need 3..5)", x->ndim);
  int64_t group = kn_attr_int(n, "group", 1);
  if (w->ndim != x->ndim || group < 1 || group > INT32_MAX ||
      w->dims[0] != xv.c || xv.c % group != 0)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "weights do not match %lld input channels, group %lld",
                        (long long)xv.c, (long long)group);
  int64_t m = w->dims[1] * group;
  if (b && (b->ndim != 1 || b->dims[0] != m))
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n, "bias must be [%lld]",
                        (long long)m);
  if (ydt != KESTREL_DTYPE_F32 && w->q_count != 1 &&
      (group != 1 || w->q_count != m))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "weight scales: %d for %lld output channels",
                        w->q_count, (long long)m);
  kn_act act = kn_act_from_node(n);
  if (!kn_act_valid(&act))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "unknown fused activation %d", act.kind);
  kn_window win;
  kestrel_status st = convt_geometry(n, &xv, w, &win, err);
  if (st != KESTREL_OK)
    return st;
  int64_t dims[KN_MAX_DIMS];
  kn_spatial_dims(&xv, layout, m, win.out, dims);
  kn_set_shape(y, ydt, x->ndim, dims);
  return KESTREL_OK;
}

static size_t convt_scratch(kn_graph *g, const kn_node *n) {
  kn_tensor *x = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  if (!x || !y || !kn_is_q8(x->dtype) || y->ndim < 0)
    return 0;
  return (size_t)kn_tensor_numel(y) * sizeof(int32_t);
}

/* Quantized scatter: int32 accumulators in scratch (bias first), products
 * of (x - x_zero) and (w - w_zero), then one requantization per output:
 * y = sat(round(act(acc * x_scale * w_scale[m]) / y_scale) + y_zero). */
static kestrel_status convt_run_q8(const kn_exec *ex, const kn_node *n,
                                   const kn_spatial *xv, const kn_spatial *yv,
                                   const kn_window *w, int64_t cg, int64_t mg,
                                   int64_t ksize, kestrel_error *err) {
  kn_graph *g = ex->graph;
  kn_tensor *xt = kn_in(g, n, 0), *wt = kn_in(g, n, 1);
  kn_tensor *bt = kn_opt_in(g, n, 2), *yt = kn_out(g, n, 0);
  int64_t total = kn_tensor_numel(yt);
  if (!ex->scratch || ex->scratch_bytes < (size_t)total * sizeof(int32_t))
    return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n, "scratch too small");
  int32_t *acc = ex->scratch;
  const int32_t *bias = bt ? bt->data : NULL;
  int32_t xz = kn_q_zero(xt, 0);
  for (int64_t in = 0; in < yv->n; in++)
    for (int64_t m = 0; m < yv->c; m++)
      for (int64_t a = 0; a < yv->sp[0]; a++)
        for (int64_t b = 0; b < yv->sp[1]; b++)
          for (int64_t c = 0; c < yv->sp[2]; c++)
            acc[in * yv->stride_n + m * yv->stride_c + a * yv->stride_sp[0] +
                b * yv->stride_sp[1] + c * yv->stride_sp[2]] =
                bias ? bias[m] : 0;
  for (int64_t in = 0; in < xv->n; in++) {
    for (int64_t m = 0; m < yv->c; m++) {
      int64_t gi = m / mg, mm = m - gi * mg;
      int32_t wz = kn_q_zero(wt, wt->q_count > 1 ? m : 0);
      int32_t *ym = acc + in * yv->stride_n + m * yv->stride_c;
      for (int64_t ic = 0; ic < cg; ic++) {
        int64_t c = gi * cg + ic;
        int64_t xc = in * xv->stride_n + c * xv->stride_c;
        int64_t wk = (c * mg + mm) * ksize;
        for (int64_t kd = 0; kd < w->k[0]; kd++)
          for (int64_t kh = 0; kh < w->k[1]; kh++)
            for (int64_t kw = 0; kw < w->k[2]; kw++) {
              int32_t wv =
                  kn_load_int(wt->data, wt->dtype,
                              wk + (kd * w->k[1] + kh) * w->k[2] + kw) -
                  wz;
              int64_t offw = kw * w->d[2] - w->pb[2], lo, hi;
              kn_valid_range(xv->sp[2], yv->sp[2], w->s[2], offw, &lo, &hi);
              for (int64_t id = 0; id < xv->sp[0]; id++) {
                int64_t od = id * w->s[0] - w->pb[0] + kd * w->d[0];
                if (od < 0 || od >= yv->sp[0])
                  continue;
                for (int64_t ih = 0; ih < xv->sp[1]; ih++) {
                  int64_t oh = ih * w->s[1] - w->pb[1] + kh * w->d[1];
                  if (oh < 0 || oh >= yv->sp[1])
                    continue;
                  int64_t xrow =
                      xc + id * xv->stride_sp[0] + ih * xv->stride_sp[1];
                  int32_t *yrow =
                      ym + od * yv->stride_sp[0] + oh * yv->stride_sp[1];
                  for (int64_t iw = lo; iw < hi; iw++)
                    yrow[(iw * w->s[2] + offw) * yv->stride_sp[2]] +=
                        wv * (kn_load_int(xt->data, xt->dtype,
                                          xrow + iw * xv->stride_sp[2]) -
                              xz);
                }
              }
            }
      }
    }
  }
  kn_act act = kn_act_from_node(n);
  float xs = kn_q_scale(xt, 0);
  kn_q8_epilogue epi;
  kn_q8_epilogue_init(&epi, &act, kn_q_scale(yt, 0), kn_q_zero(yt, 0),
                      yt->dtype);
  for (int64_t in = 0; in < yv->n; in++)
    for (int64_t m = 0; m < yv->c; m++) {
      float mult = kn_q8_channel_scale(
          &epi, xs, kn_q_scale(wt, wt->q_count > 1 ? m : 0));
      for (int64_t a = 0; a < yv->sp[0]; a++)
        for (int64_t b = 0; b < yv->sp[1]; b++)
          for (int64_t c = 0; c < yv->sp[2]; c++) {
            int64_t i = in * yv->stride_n + m * yv->stride_c +
                        a * yv->stride_sp[0] + b * yv->stride_sp[1] +
                        c * yv->stride_sp[2];
            kn_store_int(yt->data, yt->dtype, i,
                         kn_q8_epilogue_apply(&epi, acc[i], mult));
          }
    }
  return KESTREL_OK;
}

/* Scatter form: each input element times each tap adds to one output
 * element; weights [C, M/group, KD, KH, KW]. */
static kestrel_status convt_run(const kn_exec *ex, const kn_node *n,
                                kestrel_error *err) {
  if (kn_node_is_packed(n))
    return kn_conv_fast_run(ex, n, err);
  kn_graph *g = ex->graph;
  kn_tensor *xt = kn_in(g, n, 0), *wt = kn_in(g, n, 1);
  kn_tensor *bt = kn_opt_in(g, n, 2), *yt = kn_out(g, n, 0);
  int layout;
  kn_spatial xv, yv;
  kn_window w;
  if (!kn_layout_attr(n, &layout) || !kn_spatial_view(xt, layout, &xv) ||
      !kn_spatial_view(yt, layout, &yv))
    return kn_node_fail(err, KESTREL_ERROR_INTERNAL, n, "bad tensors");
  kestrel_status st = convt_geometry(n, &xv, wt, &w, err);
  if (st != KESTREL_OK)
    return st;
  const float *x = xt->data, *wd = wt->data;
  const float *bias = bt ? bt->data : NULL;
  float *y = yt->data;
  int64_t group = kn_attr_int(n, "group", 1);
  int64_t cg = xv.c / group, mg = yv.c / group;
  int64_t ksize = w.k[0] * w.k[1] * w.k[2];
  int64_t total = kn_tensor_numel(yt);
  if (total == 0)
    return KESTREL_OK;
  if (kn_is_q8(xt->dtype))
    return convt_run_q8(ex, n, &xv, &yv, &w, cg, mg, ksize, err);
  /* Bias first: positions no tap reaches keep it. */
  for (int64_t in = 0; in < yv.n; in++)
    for (int64_t m = 0; m < yv.c; m++)
      for (int64_t a = 0; a < yv.sp[0]; a++)
        for (int64_t b = 0; b < yv.sp[1]; b++)
          for (int64_t c = 0; c < yv.sp[2]; c++)
            y[in * yv.stride_n + m * yv.stride_c + a * yv.stride_sp[0] +
              b * yv.stride_sp[1] + c * yv.stride_sp[2]] =
                bias ? bias[m] : 0.0f;
  for (int64_t in = 0; in < xv.n; in++) {
    for (int64_t m = 0; m < yv.c; m++) {
      int64_t gi = m / mg, mm = m - gi * mg;
      float *ym = y + in * yv.stride_n + m * yv.stride_c;
      for (int64_t ic = 0; ic < cg; ic++) {
        int64_t c = gi * cg + ic;
        const float *xc = x + in * xv.stride_n + c * xv.stride_c;
        const float *wk = wd + (c * mg + mm) * ksize;
        for (int64_t kd = 0; kd < w.k[0]; kd++)
          for (int64_t kh = 0; kh < w.k[1]; kh++)
            for (int64_t kw = 0; kw < w.k[2]; kw++) {
              float wv = wk[(kd * w.k[1] + kh) * w.k[2] + kw];
              int64_t offw = kw * w.d[2] - w.pb[2], lo, hi;
              kn_valid_range(xv.sp[2], yv.sp[2], w.s[2], offw, &lo, &hi);
              for (int64_t id = 0; id < xv.sp[0]; id++) {
                int64_t od = id * w.s[0] - w.pb[0] + kd * w.d[0];
                if (od < 0 || od >= yv.sp[0])
                  continue;
                for (int64_t ih = 0; ih < xv.sp[1]; ih++) {
                  int64_t oh = ih * w.s[1] - w.pb[1] + kh * w.d[1];
                  if (oh < 0 || oh >= yv.sp[1])
                    continue;
                  const float *xrow =
                      xc + id * xv.stride_sp[0] + ih * xv.stride_sp[1];
                  float *yrow = ym + od * yv.stride_sp[0] + oh * yv.stride_sp[1];
                  for (int64_t iw = lo; iw < hi; iw++)
                    yrow[(iw * w.s[2] + offw) * yv.stride_sp[2]] +=
                        wv * xrow[iw * xv.stride_sp[2]];
                }
              }
            }
      }
    }
  }
  kn_act act = kn_act_from_node(n);
  kn_act_apply(&act, y, total);
  return KESTREL_OK;
}

static uint64_t convt_macs(kn_graph *g, const kn_node *n) {
  if (kn_node_is_packed(n))
    return kn_conv_fast_macs(g, n);
  kn_tensor *x = kn_in(g, n, 0), *w = kn_in(g, n, 1);
  if (!x || !w || x->ndim < 0 || w->ndim < 2)
    return 0;
  /* Every input element feeds (M/group) * kernel taps. */
  int64_t per = 1;
  for (int i = 1; i < w->ndim; i++)
    per *= w->dims[i];
  return (uint64_t)(kn_tensor_numel(x) * per);
}

/* ---- integer GEMM core --------------------------------------------------- */

void kn_qgemm_run(const kn_qgemm *q) {
  kn_q8_epilogue epi;
  if (!q->raw_int32)
    kn_q8_epilogue_init(&epi, &q->act, q->y_scale, q->y_zero, q->y_dt);
  for (int64_t i = 0; i < q->m; i++) {
    int32_t az = q->a_zero ? kn_load_int(q->a_zero, q->a_zero_dt,
                                         q->a_zero_count > 1 ? i : 0)
                           : q->a_zero_const;
    for (int64_t j = 0; j < q->n; j++) {
      int32_t bz = q->b_zero ? kn_load_int(q->b_zero, q->b_zero_dt,
                                           q->b_zero_count > 1 ? j : 0)
                             : q->b_zero_const;
      int32_t acc = q->bias ? q->bias[j] : 0;
      for (int64_t k = 0; k < q->k; k++) {
        int32_t av = kn_load_int(q->a, q->a_dt, i * q->a_rs + k * q->a_cs);
        int32_t bv = kn_load_int(q->b, q->b_dt, k * q->b_rs + j * q->b_cs);
        acc += (av - az) * (bv - bz);
      }
      int64_t yi = i * q->n + j;
      if (q->raw_int32) {
        ((int32_t *)q->y)[yi] = acc;
      } else {
        float bs = q->b_scale_count > 1 ? q->b_scale[j] : q->b_scale[0];
        kn_store_int(q->y, q->y_dt, yi,
                     kn_q8_epilogue_apply(
                         &epi, acc, kn_q8_channel_scale(&epi, q->a_scale, bs)));
      }
    }
  }
}

/* ---- Gemm ---------------------------------------------------------------- */

static kestrel_status gemm_infer(kn_graph *g, kn_node *n, kestrel_error *err) {
  if (kn_node_is_packed(n))
    return kn_conv_fast_infer(g, n, err);
  kn_tensor *a = kn_in(g, n, 0), *b = kn_in(g, n, 1);
  kn_tensor *c = kn_opt_in(g, n, 2), *y = kn_out(g, n, 0);
  if (!a || !b || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs A and B inputs and an output");
  if (a->ndim != 2 || b->ndim != 2)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "A and B must be 2-D (ranks %d, %d)", a->ndim, b->ndim);
  int64_t ta = kn_attr_int(n, "transA", 0), tb = kn_attr_int(n, "transB", 0);
  int64_t m = ta ? a->dims[1] : a->dims[0], k = ta ? a->dims[0] : a->dims[1];
  int64_t k2 = tb ? b->dims[1] : b->dims[0], nn = tb ? b->dims[0] : b->dims[1];
  if (k != k2)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "inner dims differ: %lld vs %lld", (long long)k,
                        (long long)k2);
  if (c) {
    if (c->ndim > 2 ||
        (c->ndim == 2 && ((c->dims[0] != 1 && c->dims[0] != m) ||
                          (c->dims[1] != 1 && c->dims[1] != nn))) ||
        (c->ndim == 1 && c->dims[0] != 1 && c->dims[0] != nn))
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "C does not broadcast to [%lld,%lld]", (long long)m,
                          (long long)nn);
  }
  kn_act act = kn_act_from_node(n);
  if (!kn_act_valid(&act))
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "unknown fused activation %d", act.kind);
  kestrel_dtype ydt = KESTREL_DTYPE_F32;
  if (kn_is_q8_tensor(a)) {
    int64_t bcount = b->q_count;
    if (!kn_is_q8(b->dtype) || !b->q_count || (bcount != 1 && bcount != nn) ||
        (c && (c->dtype != KESTREL_DTYPE_I32 || kn_tensor_numel(c) != nn)))
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "quantized Gemm needs quantized B and int32 [N] bias");
    ydt = kn_is_q8(y->dtype) && y->q_count ? y->dtype : a->dtype;
    if (!y->q_count)
      return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                          "quantized Gemm output has no quantization");
  } else if (a->dtype != KESTREL_DTYPE_F32 || b->dtype != KESTREL_DTYPE_F32 ||
             (c && c->dtype != KESTREL_DTYPE_F32)) {
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "dtype %s (float32 only)",
                        kestrel_dtype_name(a->dtype));
  }
  int64_t dims[2] = {m, nn};
  kn_set_shape(y, ydt, 2, dims);
  return KESTREL_OK;
}

static kestrel_status gemm_run(const kn_exec *ex, const kn_node *n,
                               kestrel_error *err) {
  if (kn_node_is_packed(n))
    return kn_conv_fast_run(ex, n, err);
  kn_graph *g = ex->graph;
  kn_tensor *at = kn_in(g, n, 0), *bt = kn_in(g, n, 1);
  kn_tensor *ct = kn_opt_in(g, n, 2), *yt = kn_out(g, n, 0);
  int64_t ta = kn_attr_int(n, "transA", 0), tb = kn_attr_int(n, "transB", 0);
  int64_t m = yt->dims[0], nn = yt->dims[1];
  int64_t k = ta ? at->dims[0] : at->dims[1];
  /* Element (i,k) of op(A) is at i*a_rs + k*a_cs; same for op(B). */
  int64_t a_rs = ta ? 1 : k, a_cs = ta ? m : 1;
  int64_t b_rs = tb ? 1 : nn, b_cs = tb ? k : 1;
  kn_act act = kn_act_from_node(n);
  if (kn_is_q8_tensor(at)) {
    kn_qgemm q;
    memset(&q, 0, sizeof(q));
    q.a = at->data;
    q.b = bt->data;
    q.a_dt = at->dtype;
    q.b_dt = bt->dtype;
    q.a_rs = a_rs;
    q.a_cs = a_cs;
    q.b_rs = b_rs;
    q.b_cs = b_cs;
    q.m = m;
    q.k = k;
    q.n = nn;
    q.a_zero_const = kn_q_zero(at, 0);
    q.b_zero_const = kn_q_zero(bt, 0);
    q.bias = ct ? ct->data : NULL;
    q.y = yt->data;
    q.y_dt = yt->dtype;
    q.a_scale = kn_q_scale(at, 0);
    q.b_scale = bt->q_scale;
    q.b_scale_count = bt->q_count;
    q.y_scale = kn_q_scale(yt, 0);
    q.y_zero = kn_q_zero(yt, 0);
    q.act = act;
    kn_qgemm_run(&q);
    return KESTREL_OK;
  }
  float alpha = kn_attr_float(n, "alpha", 1.0f);
  float beta = kn_attr_float(n, "beta", 1.0f);
  const float *a = at->data, *b = bt->data;
  const float *c = ct ? ct->data : NULL;
  float *y = yt->data;
  /* C broadcast through strides (0 along size-1 dims). */
  int64_t c_rs = 0, c_cs = 0;
  if (c && ct->ndim == 2) {
    c_rs = ct->dims[0] == 1 ? 0 : ct->dims[1];
    c_cs = ct->dims[1] == 1 ? 0 : 1;
  } else if (c && ct->ndim == 1) {
    c_cs = ct->dims[0] == 1 ? 0 : 1;
  }
  if (c && kn_tensor_numel(ct) == 0)
    c = NULL;
  for (int64_t i = 0; i < m; i++) {
    float *yrow = y + i * nn;
    for (int64_t j = 0; j < nn; j++)
      yrow[j] = 0.0f;
    if (!tb) {
      for (int64_t kk = 0; kk < k; kk++) {
        float av = a[i * a_rs + kk * a_cs];
        const float *brow = b + kk * nn;
        for (int64_t j = 0; j < nn; j++)
          yrow[j] += av * brow[j];
      }
    } else {
      for (int64_t j = 0; j < nn; j++) {
        const float *bcol = b + j * k;
        float s = 0.0f;
        for (int64_t kk = 0; kk < k; kk++)
          s += a[i * a_rs + kk * a_cs] * bcol[kk];
        yrow[j] = s;
      }
    }
    for (int64_t j = 0; j < nn; j++) {
      float v = alpha * yrow[j];
      if (c)
        v += beta * c[i * c_rs + j * c_cs];
      yrow[j] = kn_act_apply1(&act, v);
    }
  }
  return KESTREL_OK;
}

static uint64_t gemm_macs(kn_graph *g, const kn_node *n) {
  if (kn_node_is_packed(n))
    return kn_conv_fast_macs(g, n);
  kn_tensor *a = kn_in(g, n, 0), *y = kn_out(g, n, 0);
  if (!a || !y || a->ndim != 2 || y->ndim != 2)
    return 0;
  int64_t k = kn_attr_int(n, "transA", 0) ? a->dims[0] : a->dims[1];
  return (uint64_t)(y->dims[0] * y->dims[1] * k);
}

/* ---- MatMul -------------------------------------------------------------- */

kestrel_status kn_matmul_shape_of(const kn_node *n, const kn_tensor *a,
                                  const kn_tensor *b, kn_matmul_shape *s,
                                  kestrel_error *err) {
  int ra = a->ndim, rb = b->ndim;
  if (ra < 1 || rb < 1)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "operands must have rank >= 1 (%d, %d)", ra, rb);
  memset(s, 0, sizeof(*s));
  s->m = ra == 1 ? 1 : a->dims[ra - 2];
  s->k = a->dims[ra - 1];
  int64_t k2 = rb == 1 ? b->dims[0] : b->dims[rb - 2];
  s->n = rb == 1 ? 1 : b->dims[rb - 1];
  if (k2 != s->k)
    return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                        "inner dims differ: %lld vs %lld", (long long)s->k,
                        (long long)k2);
  int ba = ra > 2 ? ra - 2 : 0, bb = rb > 2 ? rb - 2 : 0;
  int nb = ba > bb ? ba : bb;
  s->batch_ndim = nb;
  int64_t sa = s->m * s->k, sb = s->k * s->n; /* running strides */
  s->num_batches = 1;
  for (int i = nb - 1; i >= 0; i--) {
    int ia = i - (nb - ba), ib = i - (nb - bb);
    int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return kn_node_fail(err, KESTREL_ERROR_SHAPE, n,
                          "batch dims %lld and %lld do not broadcast",
                          (long long)da, (long long)db);
    s->batch[i] = da == 1 ? db : da;
    s->a_batch_stride[i] = da == 1 ? 0 : sa;
    s->b_batch_stride[i] = db == 1 ? 0 : sb;
    sa *= da;
    sb *= db;
    s->num_batches *= s->batch[i];
  }
  int o = 0;
  for (int i = 0; i < nb; i++)
    s->out_dims[o++] = s->batch[i];
  if (ra > 1)
    s->out_dims[o++] = s->m;
  if (rb > 1)
    s->out_dims[o++] = s->n;
  s->out_ndim = o;
  return KESTREL_OK;
}

void kn_matmul_batch_offsets(const kn_matmul_shape *s, int64_t bi,
                             int64_t *a_off, int64_t *b_off) {
  int64_t ao = 0, bo = 0;
  for (int i = s->batch_ndim - 1; i >= 0; i--) {
    int64_t idx = bi % s->batch[i];
    bi /= s->batch[i];
    ao += idx * s->a_batch_stride[i];
    bo += idx * s->b_batch_stride[i];
  }
  *a_off = ao;
  *b_off = bo;
}

static kestrel_status matmul_infer(kn_graph *g, kn_node *n,
                                   kestrel_error *err) {
  kn_tensor *a = kn_in(g, n, 0), *b = kn_in(g, n, 1), *y = kn_out(g, n, 0);
  if (!a || !b || !y)
    return kn_node_fail(err, KESTREL_ERROR_MALFORMED, n,
                        "needs two inputs and an output");
  if (a->dtype != KESTREL_DTYPE_F32 || b->dtype != KESTREL_DTYPE_F32)
    return kn_node_fail(err, KESTREL_ERROR_UNSUPPORTED, n,
                        "dtype %s (float32 only)",
                        kestrel_dtype_name(a->dtype));
  kn_matmul_shape s;
  kestrel_status st = kn_matmul_shape_of(n, a, b, &s, err);
  if (st != KESTREL_OK)
    return st;
  kn_set_shape(y, KESTREL_DTYPE_F32, s.out_ndim, s.out_dims);
  return KESTREL_OK;
}

static kestrel_status matmul_run(const kn_exec *ex, const kn_node *n,
                                 kestrel_error *err) {
  kn_graph *g = ex->graph;
  kn_tensor *at = kn_in(g, n, 0), *bt = kn_in(g, n, 1), *yt = kn_out(g, n, 0);
  kn_matmul_shape s;
  kestrel_status st = kn_matmul_shape_of(n, at, bt, &s, err);
  if (st != KESTREL_OK)
    return st;
  const float *a = at->data, *b = bt->data;
  float *y = yt->data;
  for (int64_t bi = 0; bi < s.num_batches; bi++) {
    int64_t ao, bo;
    kn_matmul_batch_offsets(&s, bi, &ao, &bo);
    for (int64_t i = 0; i < s.m; i++) {
      float *yrow = y + (bi * s.m + i) * s.n;
      for (int64_t j = 0; j < s.n; j++)
        yrow[j] = 0.0f;
      for (int64_t kk = 0; kk < s.k; kk++) {
        float av = a[ao + i * s.k + kk];
        const float *brow = b + bo + kk * s.n;
        for (int64_t j = 0; j < s.n; j++)
          yrow[j] += av * brow[j];
      }
    }
  }
  return KESTREL_OK;
}

static uint64_t matmul_macs(kn_graph *g, const kn_node *n) {
  kn_tensor *a = kn_in(g, n, 0), *b = kn_in(g, n, 1);
  kn_matmul_shape s;
  kestrel_error err;
  if (!a || !b || a->ndim < 1 || b->ndim < 1 ||
      kn_matmul_shape_of(n, a, b, &s, &err) != KESTREL_OK)
    return 0;
  return (uint64_t)(s.num_batches * s.m * s.k * s.n);
}

/* ---- registration -------------------------------------------------------- */

/* Only packed nodes (im2col tiles) need scratch. */
static size_t conv_gemm_scratch(kn_graph *g, const kn_node *n) {
  return kn_node_is_packed(n) ? kn_conv_fast_scratch(g, n) : 0;
}

void kn_register_ops_conv(kn_op_info *t) {
  /* Names stay as registry.c set them. */
  t[KN_OP_CONV] = (kn_op_info){.name = t[KN_OP_CONV].name,
                               .infer = conv_infer, .run = conv_run,
                               .scratch = conv_gemm_scratch,
                               .macs = kn_conv_macs};
  t[KN_OP_CONV_TRANSPOSE] =
      (kn_op_info){.name = t[KN_OP_CONV_TRANSPOSE].name, .infer = convt_infer,
                   .run = convt_run, .scratch = convt_scratch,
                   .macs = convt_macs};
  t[KN_OP_GEMM] = (kn_op_info){.name = t[KN_OP_GEMM].name,
                               .infer = gemm_infer, .run = gemm_run,
                               .scratch = conv_gemm_scratch,
                               .macs = gemm_macs};
  t[KN_OP_MATMUL] = (kn_op_info){.name = t[KN_OP_MATMUL].name,
                                 .infer = matmul_infer, .run = matmul_run,
                                 .macs = matmul_macs};
}
