/* Conv, ConvTranspose, Gemm and MatMul reference kernels against naive loops
 * written here from the ONNX definitions, on seeded random shapes that stress
 * the awkward cases: groups and depthwise, dilation, stride > kernel, pads
 * larger than the kernel, asymmetric and automatic pads, 1x1 spatial, odd
 * channel counts, and NHWC giving the same numbers as NCHW. */
#include "ops_harness.h"

#define TOL 1e-4f

/* ---- Conv ---------------------------------------------------------------- */

typedef struct conv_case {
  int nsp, n, c, m, group;
  int64_t in[3], k[3], s[3], d[3], pb[3], pe[3];
  int auto_pad; /* 0 NOTSET, 1 VALID, 2 SAME_UPPER, 3 SAME_LOWER */
  bool bias, kernel_attr;
  int act;
  float act_alpha, act_min, act_max;
} conv_case;

static const char *const auto_pad_names[] = {"NOTSET", "VALID", "SAME_UPPER",
                                             "SAME_LOWER"};

static void conv_case_str(const conv_case *cc, char *buf, size_t cap) {
  int o = snprintf(buf, cap,
                   "nsp=%d N=%d C=%d M=%d group=%d auto_pad=%s bias=%d "
                   "act=%d(%g,%g,%g)",
                   cc->nsp, cc->n, cc->c, cc->m, cc->group,
                   auto_pad_names[cc->auto_pad], cc->bias, cc->act,
                   cc->act_alpha, cc->act_min, cc->act_max);
  for (int i = 0; i < cc->nsp && o < (int)cap; i++)
    o += snprintf(buf + o, cap - (size_t)o,
                  " | axis%d in=%lld k=%lld s=%lld d=%lld pads=%lld,%lld", i,
                  (long long)cc->in[i], (long long)cc->k[i],
                  (long long)cc->s[i], (long long)cc->d[i],
                  (long long)cc->pb[i], (long long)cc->pe[i]);
}

static float ref_act(const conv_case *cc, float v) {
  switch (cc->act) {
  case KN_ACT_RELU: return v < 0 ? 0 : v;
  case KN_ACT_RELU6: return v < 0 ? 0 : (v > 6 ? 6 : v);
  case KN_ACT_LEAKY_RELU: return v < 0 ? v * cc->act_alpha : v;
  case KN_ACT_CLIP:
    return v < cc->act_min ? cc->act_min : (v > cc->act_max ? cc->act_max : v);
  default: return v;
  }
}

/* Output size and effective begin pads per the ONNX Conv definition. */
static bool ref_conv_geometry(const conv_case *cc, int64_t *out,
                              int64_t *pad_begin) {
  for (int i = 0; i < cc->nsp; i++) {
    int64_t ek = (cc->k[i] - 1) * cc->d[i] + 1;
    if (cc->auto_pad >= 2) {
      out[i] = (cc->in[i] + cc->s[i] - 1) / cc->s[i];
      int64_t total = (out[i] - 1) * cc->s[i] + ek - cc->in[i];
      if (total < 0)
        total = 0;
      pad_begin[i] = cc->auto_pad == 2 ? total / 2 : total - total / 2;
    } else {
      int64_t pb = cc->auto_pad == 1 ? 0 : cc->pb[i];
      int64_t pe = cc->auto_pad == 1 ? 0 : cc->pe[i];
      if (cc->in[i] + pb + pe < ek)
        return false;
      out[i] = (cc->in[i] + pb + pe - ek) / cc->s[i] + 1;
      pad_begin[i] = pb;
    }
  }
  return true;
}

static void ref_conv(const conv_case *cc, const float *x, const float *w,
                     const float *b, const int64_t *out, const int64_t *pb,
                     float *y) {
  /* Pad everything to 3 spatial dims with size-1 axes. */
  int64_t in3[3] = {1, 1, 1}, out3[3] = {1, 1, 1}, k3[3] = {1, 1, 1};
  int64_t s3[3] = {1, 1, 1}, d3[3] = {1, 1, 1}, p3[3] = {0, 0, 0};
  int off = 3 - cc->nsp;
  for (int i = 0; i < cc->nsp; i++) {
    in3[off + i] = cc->in[i];
    out3[off + i] = out[i];
    k3[off + i] = cc->k[i];
    s3[off + i] = cc->s[i];
    d3[off + i] = cc->d[i];
    p3[off + i] = pb[i];
  }
  int cg = cc->c / cc->group, mg = cc->m / cc->group;
  int64_t in_plane = in3[0] * in3[1] * in3[2];
  int64_t out_plane = out3[0] * out3[1] * out3[2];
  int64_t kvol = k3[0] * k3[1] * k3[2];
  for (int n = 0; n < cc->n; n++)
    for (int m = 0; m < cc->m; m++)
      for (int64_t a = 0; a < out3[0]; a++)
        for (int64_t bb = 0; bb < out3[1]; bb++)
          for (int64_t c = 0; c < out3[2]; c++) {
            double sum = b ? b[m] : 0.0;
            int g = m / mg;
            for (int ic = 0; ic < cg; ic++)
              for (int64_t ka = 0; ka < k3[0]; ka++)
                for (int64_t kb = 0; kb < k3[1]; kb++)
                  for (int64_t kc = 0; kc < k3[2]; kc++) {
                    int64_t ia = a * s3[0] - p3[0] + ka * d3[0];
                    int64_t ib = bb * s3[1] - p3[1] + kb * d3[1];
                    int64_t icc = c * s3[2] - p3[2] + kc * d3[2];
                    if (ia < 0 || ia >= in3[0] || ib < 0 || ib >= in3[1] ||
                        icc < 0 || icc >= in3[2])
                      continue;
                    float xv = x[((int64_t)n * cc->c + g * cg + ic) * in_plane +
                                 (ia * in3[1] + ib) * in3[2] + icc];
                    float wv = w[((int64_t)m * cg + ic) * kvol +
                                 (ka * k3[1] + kb) * k3[2] + kc];
                    sum += (double)xv * wv;
                  }
            y[((int64_t)n * cc->m + m) * out_plane + (a * out3[1] + bb) * out3[2] +
              c] = ref_act(cc, (float)sum);
          }
}

static void set_conv_attrs(kn_node *node, const conv_case *cc, int layout) {
  if (cc->kernel_attr)
    kn_node_set_ints(node, "kernel_shape", cc->k, cc->nsp);
  kn_node_set_ints(node, "strides", cc->s, cc->nsp);
  kn_node_set_ints(node, "dilations", cc->d, cc->nsp);
  if (cc->auto_pad == 0) {
    int64_t pads[6];
    for (int i = 0; i < cc->nsp; i++) {
      pads[i] = cc->pb[i];
      pads[i + cc->nsp] = cc->pe[i];
    }
    kn_node_set_ints(node, "pads", pads, 2 * cc->nsp);
  } else {
    kn_node_set_string(node, "auto_pad", auto_pad_names[cc->auto_pad]);
  }
  if (cc->group != 1)
    kn_node_set_int(node, "group", cc->group);
  if (cc->act) {
    kn_node_set_int(node, "activation", cc->act);
    kn_node_set_float(node, "activation_alpha", cc->act_alpha);
    kn_node_set_float(node, "activation_min", cc->act_min);
    kn_node_set_float(node, "activation_max", cc->act_max);
  }
  if (layout)
    kn_node_set_int(node, "layout", layout);
}

/* Runs one case through the op in both layouts and compares. */
static void check_conv(const conv_case *cc) {
  char desc[1024];
  conv_case_str(cc, desc, sizeof(desc));
  int64_t out[3], pb[3];
  if (!ref_conv_geometry(cc, out, pb))
    return;
  int64_t xd[5] = {cc->n, cc->c}, wd[5] = {cc->m, cc->c / cc->group};
  int64_t yd[5] = {cc->n, cc->m};
  int64_t in_plane = 1, out_plane = 1;
  for (int i = 0; i < cc->nsp; i++) {
    xd[2 + i] = cc->in[i];
    wd[2 + i] = cc->k[i];
    yd[2 + i] = out[i];
    in_plane *= cc->in[i];
    out_plane *= out[i];
  }
  int r = cc->nsp + 2;
  int64_t nx = h_numel(r, xd), nw = h_numel(r, wd), ny = h_numel(r, yd);
  float *x = malloc(sizeof(float) * (size_t)(nx + 1));
  float *w = malloc(sizeof(float) * (size_t)(nw + 1));
  float *b = malloc(sizeof(float) * (size_t)(cc->m + 1));
  float *want = malloc(sizeof(float) * (size_t)(ny + 1));
  float *xt = malloc(sizeof(float) * (size_t)(nx + 1));
  float *got = malloc(sizeof(float) * (size_t)(ny + 1));
  h_fill(x, nx);
  h_fill(w, nw);
  h_fill(b, cc->m);
  ref_conv(cc, x, w, cc->bias ? b : NULL, out, pb, want);
  for (int layout = 0; layout < 2; layout++) {
    kn_graph *g = kn_graph_new();
    int64_t xdl[5], ydl[5];
    memcpy(xdl, xd, sizeof(xd));
    if (layout) {
      /* N, spatial..., C */
      for (int i = 0; i < cc->nsp; i++)
        xdl[1 + i] = cc->in[i];
      xdl[r - 1] = cc->c;
      h_to_nhwc(x, xt, cc->n, cc->c, in_plane);
    }
    int ti = h_f32(g, "x", r, xdl, layout ? xt : x);
    int tw = h_f32(g, "w", r, wd, w);
    int64_t bd = cc->m;
    int tb = cc->bias ? h_f32(g, "b", 1, &bd, b) : -1;
    int ty = h_output(g, "y");
    int ins[3] = {ti, tw, tb};
    int ni = kn_graph_add_node(g, KN_OP_CONV, "conv", NULL, ins,
                               cc->bias ? 3 : 2, &ty, 1);
    set_conv_attrs(&g->nodes[ni], cc, layout);
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    if (st != KESTREL_OK) {
      h_fail("conv", "layout %d: status %d (%s) for %s", layout, st,
             err.message, desc);
      kn_graph_free(g);
      continue;
    }
    kn_tensor *yt = &g->tensors[ty];
    memcpy(ydl, yd, sizeof(yd));
    if (layout) {
      for (int i = 0; i < cc->nsp; i++)
        ydl[1 + i] = out[i];
      ydl[r - 1] = cc->m;
    }
    if (yt->ndim != r || memcmp(yt->dims, ydl, sizeof(int64_t) * (size_t)r)) {
      char a[128], e[128];
      h_dims_str(a, sizeof(a), yt->ndim, yt->dims);
      h_dims_str(e, sizeof(e), r, ydl);
      h_fail("conv", "layout %d: shape %s, expected %s for %s", layout, a, e,
             desc);
    } else {
      if (layout)
        h_from_nhwc(yt->data, got, cc->n, cc->m, out_plane);
      else
        memcpy(got, yt->data, sizeof(float) * (size_t)ny);
      int64_t bad = h_compare(got, want, ny, TOL);
      if (bad >= 0)
        h_fail("conv", "layout %d: element %lld got %g want %g for %s",
               layout, (long long)bad, got[bad], want[bad], desc);
    }
    kn_graph_free(g);
  }
  free(x);
  free(w);
  free(b);
  free(want);
  free(xt);
  free(got);
}

static void random_conv_case(conv_case *cc) {
  memset(cc, 0, sizeof(*cc));
  int shape = h_range(0, 9);
  cc->nsp = shape < 2 ? 1 : (shape < 9 ? 2 : 3);
  cc->n = h_range(1, 2);
  int kind = h_range(0, 3); /* dense, grouped, depthwise, dense 1x1 */
  if (kind == 2) {
    cc->c = h_range(1, 13);
    cc->group = cc->c;
    cc->m = cc->c * h_range(1, 2);
  } else if (kind == 1) {
    cc->group = h_range(2, 3);
    cc->c = cc->group * h_range(1, 4);
    cc->m = cc->group * h_range(1, 3);
  } else {
    cc->group = 1;
    cc->c = h_range(1, 11);
    cc->m = h_range(1, 9);
  }
  cc->auto_pad = h_range(0, 6);
  if (cc->auto_pad > 3)
    cc->auto_pad = 0;
  for (int i = 0; i < cc->nsp; i++) {
    int small = cc->nsp == 3;
    cc->k[i] = kind == 3 ? 1 : h_range(1, small ? 3 : 5);
    cc->s[i] = h_range(1, 4); /* 4 > most kernels */
    cc->d[i] = h_range(0, 2) ? 1 : h_range(2, 3);
    cc->in[i] = h_range(1, small ? 7 : 19);
    cc->pb[i] = h_range(0, 2) ? h_range(0, 2) : h_range(3, 7);
    cc->pe[i] = h_range(0, 2) ? h_range(0, 2) : h_range(3, 7);
  }
  cc->bias = h_range(0, 3) != 0;
  cc->kernel_attr = h_range(0, 1);
  int acts[] = {KN_ACT_NONE, KN_ACT_RELU, KN_ACT_RELU6, KN_ACT_LEAKY_RELU,
                KN_ACT_CLIP};
  cc->act = acts[h_range(0, 4)];
  cc->act_alpha = 0.1f;
  cc->act_min = -0.5f;
  cc->act_max = 0.7f;
}

static void test_conv(void) {
  h_seed(1);
  int ran = 0;
  for (int i = 0; i < 400; i++) {
    conv_case cc;
    random_conv_case(&cc);
    int64_t out[3], pb[3];
    if (!ref_conv_geometry(&cc, out, pb))
      continue;
    check_conv(&cc);
    ran++;
  }
  /* Hand-picked: 1x1 spatial input, wide rows past the kernel's row tile,
   * and a pad larger than the kernel on every side. */
  conv_case fixed[3];
  memset(fixed, 0, sizeof(fixed));
  fixed[0] = (conv_case){.nsp = 2, .n = 1, .c = 3, .m = 5, .group = 1,
                         .in = {1, 1}, .k = {3, 3}, .s = {1, 1}, .d = {1, 1},
                         .pb = {1, 1}, .pe = {1, 1}, .bias = true};
  fixed[1] = (conv_case){.nsp = 2, .n = 1, .c = 4, .m = 4, .group = 4,
                         .in = {3, 600}, .k = {3, 3}, .s = {1, 1},
                         .d = {1, 1}, .pb = {1, 1}, .pe = {1, 1},
                         .bias = true};
  fixed[2] = (conv_case){.nsp = 2, .n = 1, .c = 2, .m = 3, .group = 1,
                         .in = {4, 5}, .k = {2, 2}, .s = {3, 2}, .d = {2, 1},
                         .pb = {5, 4}, .pe = {6, 3}, .act = KN_ACT_RELU};
  for (int i = 0; i < 3; i++) {
    check_conv(&fixed[i]);
    ran++;
  }
  printf("conv: %d cases\n", ran);
}

/* A zero-size batch must infer and run without touching memory. */
static void test_conv_empty(void) {
  kn_graph *g = kn_graph_new();
  int64_t xd[4] = {0, 3, 8, 8}, wd[4] = {4, 3, 3, 3};
  float w[108] = {0};
  int ti = h_f32(g, "x", 4, xd, NULL), tw = h_f32(g, "w", 4, wd, w);
  int ty = h_output(g, "y");
  int ins[2] = {ti, tw};
  int ni = kn_graph_add_node(g, KN_OP_CONV, "conv", NULL, ins, 2, &ty, 1);
  kestrel_error err = {{0}};
  kestrel_status st = h_run_node(g, ni, &err);
  if (st != KESTREL_OK || g->tensors[ty].dims[0] != 0 ||
      g->tensors[ty].dims[1] != 4)
    h_fail("conv_empty", "status %d (%s)", st, err.message);
  kn_graph_free(g);
}

/* Float64 input must be refused as unsupported, not computed. */
static void test_conv_dtype(void) {
  kn_graph *g = kn_graph_new();
  int64_t xd[4] = {1, 1, 4, 4}, wd[4] = {1, 1, 1, 1};
  int ti = h_tensor(g, "x", KESTREL_DTYPE_F64, 4, xd, NULL);
  int tw = h_tensor(g, "w", KESTREL_DTYPE_F64, 4, wd, NULL);
  int ty = h_output(g, "y");
  int ins[2] = {ti, tw};
  int ni = kn_graph_add_node(g, KN_OP_CONV, "conv", NULL, ins, 2, &ty, 1);
  kestrel_error err = {{0}};
  kestrel_status st = h_run_node(g, ni, &err);
  if (st != KESTREL_ERROR_UNSUPPORTED)
    h_fail("conv_dtype", "float64 conv gave status %d", st);
  kn_graph_free(g);
}

/* ---- quantized Conv (TFLite full-integer style) -------------------------- */

static void test_conv_q8(void) {
  h_seed(7);
  for (int iter = 0; iter < 60; iter++) {
    int n = 1, c = h_range(1, 9), m = h_range(1, 7), kh = h_range(1, 3),
        kw = h_range(1, 3), h = h_range(kh, 9), wdt = h_range(kw, 11);
    int s = h_range(1, 2), p = h_range(0, 1);
    bool depthwise = h_range(0, 2) == 0;
    int group = depthwise ? c : 1;
    if (depthwise)
      m = c;
    int cg = c / group;
    int oh = (h + 2 * p - kh) / s + 1, ow = (wdt + 2 * p - kw) / s + 1;
    int act = h_range(0, 1) ? KN_ACT_RELU : KN_ACT_NONE;
    int64_t xd[4] = {n, h, wdt, c}, wd[4] = {m, cg, kh, kw}, bd = m;
    int64_t nx = h_numel(4, xd), nwt = h_numel(4, wd);
    int8_t *x = malloc((size_t)nx), *w = malloc((size_t)nwt);
    int32_t *b = malloc(sizeof(int32_t) * (size_t)m);
    for (int64_t i = 0; i < nx; i++)
      x[i] = (int8_t)h_range(-128, 127);
    for (int64_t i = 0; i < nwt; i++)
      w[i] = (int8_t)h_range(-127, 127);
    for (int i = 0; i < m; i++)
      b[i] = h_range(-2000, 2000);
    float xs = 0.02f, ys = h_uniform(0.05f, 0.3f);
    int32_t xz = h_range(-20, 20), yz = h_range(-10, 10);
    float *ws = malloc(sizeof(float) * (size_t)m);
    int32_t *wz = calloc((size_t)m, sizeof(int32_t));
    for (int i = 0; i < m; i++)
      ws[i] = h_uniform(0.001f, 0.02f);

    kn_graph *g = kn_graph_new();
    int ti = h_tensor(g, "x", KESTREL_DTYPE_I8, 4, xd, x);
    int tw = h_tensor(g, "w", KESTREL_DTYPE_I8, 4, wd, w);
    int tb = h_tensor(g, "b", KESTREL_DTYPE_I32, 1, &bd, b);
    int ty = h_output(g, "y");
    kn_tensor_set_quant(&g->tensors[ti], -1, 1, &xs, &xz);
    kn_tensor_set_quant(&g->tensors[tw], 0, m, ws, wz);
    g->tensors[ty].dtype = KESTREL_DTYPE_I8;
    kn_tensor_set_quant(&g->tensors[ty], -1, 1, &ys, &yz);
    int ins[3] = {ti, tw, tb};
    int ni = kn_graph_add_node(g, KN_OP_CONV, "qconv", NULL, ins, 3, &ty, 1);
    kn_node *node = &g->nodes[ni];
    int64_t st2[2] = {s, s}, pads[4] = {p, p, p, p};
    kn_node_set_ints(node, "strides", st2, 2);
    kn_node_set_ints(node, "pads", pads, 4);
    kn_node_set_int(node, "group", group);
    kn_node_set_int(node, "layout", KN_LAYOUT_NHWC);
    kn_node_set_int(node, "activation", act);
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    char desc[256];
    snprintf(desc, sizeof(desc),
             "C=%d M=%d group=%d k=%dx%d in=%dx%d s=%d p=%d act=%d xz=%d "
             "yz=%d ys=%g",
             c, m, group, kh, kw, h, wdt, s, p, act, xz, yz, ys);
    if (st != KESTREL_OK) {
      h_fail("conv_q8", "status %d (%s) for %s", st, err.message, desc);
    } else {
      const int8_t *y = g->tensors[ty].data;
      int bad = 0;
      for (int oy = 0; oy < oh && !bad; oy++)
        for (int ox = 0; ox < ow && !bad; ox++)
          for (int mo = 0; mo < m && !bad; mo++) {
            int32_t acc = b[mo];
            int gi = mo / (m / group);
            for (int ic = 0; ic < cg; ic++)
              for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++) {
                  int iy = oy * s - p + ky, ix = ox * s - p + kx;
                  if (iy < 0 || iy >= h || ix < 0 || ix >= wdt)
                    continue;
                  int32_t xv = x[(iy * wdt + ix) * c + gi * cg + ic] - xz;
                  int32_t wv = w[((mo * cg + ic) * kh + ky) * kw + kx];
                  acc += xv * wv;
                }
            float real = (float)((double)acc * ((double)xs * ws[mo]));
            if (act == KN_ACT_RELU && real < 0)
              real = 0;
            double q = nearbyint((double)real / ys) + yz;
            int want = q < -128 ? -128 : (q > 127 ? 127 : (int)q);
            int gotv = y[(oy * ow + ox) * m + mo];
            if (gotv != want) {
              h_fail("conv_q8", "at (%d,%d,%d) got %d want %d for %s", oy, ox,
                     mo, gotv, want, desc);
              bad = 1;
            }
          }
    }
    kn_graph_free(g);
    free(x);
    free(w);
    free(b);
    free(ws);
    free(wz);
  }
}

/* ---- ConvTranspose ------------------------------------------------------- */

static void test_conv_transpose(void) {
  h_seed(3);
  int ran = 0;
  for (int iter = 0; iter < 200; iter++) {
    int nsp = h_range(1, 2), n = h_range(1, 2), group = h_range(1, 2);
    int c = group * h_range(1, 3), m = group * h_range(1, 3);
    int64_t in[2], k[2], s[2], d[2], pb[2], pe[2], op[2], out[2];
    bool use_shape = h_range(0, 3) == 0;
    bool ok = true;
    for (int i = 0; i < nsp; i++) {
      in[i] = h_range(1, 7);
      k[i] = h_range(1, 4);
      s[i] = h_range(1, 3);
      d[i] = h_range(1, 2);
      op[i] = h_range(0, (int)(s[i] > d[i] ? s[i] : d[i]) - 1);
      pb[i] = h_range(0, 2);
      pe[i] = h_range(0, 2);
      int64_t full = s[i] * (in[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1;
      if (use_shape) {
        out[i] = full - h_range(0, 2);
        int64_t total = full - out[i];
        pb[i] = total - total / 2;
        pe[i] = total / 2;
      } else {
        out[i] = full - pb[i] - pe[i];
      }
      if (out[i] < 1)
        ok = false;
    }
    if (!ok)
      continue;
    int cg = c / group, mg = m / group;
    int64_t xd[4] = {n, c}, wd[4] = {c, mg}, yd[4] = {n, m};
    for (int i = 0; i < nsp; i++) {
      xd[2 + i] = in[i];
      wd[2 + i] = k[i];
      yd[2 + i] = out[i];
    }
    int r = nsp + 2;
    int64_t nx = h_numel(r, xd), nw = h_numel(r, wd), ny = h_numel(r, yd);
    float *x = malloc(sizeof(float) * (size_t)nx);
    float *w = malloc(sizeof(float) * (size_t)nw);
    float b[8];
    float *want = malloc(sizeof(float) * (size_t)ny);
    h_fill(x, nx);
    h_fill(w, nw);
    h_fill(b, m);
    /* Naive scatter, 2-D with a unit leading axis for 1-D. */
    int64_t in2[2] = {1, 1}, out2[2] = {1, 1}, k2[2] = {1, 1}, s2[2] = {1, 1},
            d2[2] = {1, 1}, p2[2] = {0, 0};
    for (int i = 0; i < nsp; i++) {
      int j = 2 - nsp + i;
      in2[j] = in[i];
      out2[j] = out[i];
      k2[j] = k[i];
      s2[j] = s[i];
      d2[j] = d[i];
      p2[j] = pb[i];
    }
    for (int64_t i = 0; i < ny; i++)
      want[i] = b[(i / (out2[0] * out2[1])) % m];
    for (int in_ = 0; in_ < n; in_++)
      for (int ci = 0; ci < c; ci++)
        for (int64_t ia = 0; ia < in2[0]; ia++)
          for (int64_t ib = 0; ib < in2[1]; ib++)
            for (int mm = 0; mm < mg; mm++)
              for (int64_t ka = 0; ka < k2[0]; ka++)
                for (int64_t kb = 0; kb < k2[1]; kb++) {
                  int64_t oa = ia * s2[0] - p2[0] + ka * d2[0];
                  int64_t ob = ib * s2[1] - p2[1] + kb * d2[1];
                  if (oa < 0 || oa >= out2[0] || ob < 0 || ob >= out2[1])
                    continue;
                  int mo = (ci / cg) * mg + mm;
                  want[((int64_t)in_ * m + mo) * out2[0] * out2[1] +
                       oa * out2[1] + ob] +=
                      x[((int64_t)in_ * c + ci) * in2[0] * in2[1] +
                        ia * in2[1] + ib] *
                      w[((int64_t)ci * mg + mm) * k2[0] * k2[1] + ka * k2[1] +
                        kb];
                }
    kn_graph *g = kn_graph_new();
    int64_t bd = m;
    int ins[3] = {h_f32(g, "x", r, xd, x), h_f32(g, "w", r, wd, w),
                  h_f32(g, "b", 1, &bd, b)};
    int ty = h_output(g, "y");
    int ni =
        kn_graph_add_node(g, KN_OP_CONV_TRANSPOSE, "convt", NULL, ins, 3, &ty, 1);
    kn_node *node = &g->nodes[ni];
    kn_node_set_ints(node, "strides", s, nsp);
    kn_node_set_ints(node, "dilations", d, nsp);
    kn_node_set_ints(node, "output_padding", op, nsp);
    if (group > 1)
      kn_node_set_int(node, "group", group);
    if (use_shape) {
      kn_node_set_ints(node, "output_shape", out, nsp);
    } else {
      int64_t pads[4];
      for (int i = 0; i < nsp; i++) {
        pads[i] = pb[i];
        pads[i + nsp] = pe[i];
      }
      kn_node_set_ints(node, "pads", pads, 2 * nsp);
    }
    char desc[512];
    snprintf(desc, sizeof(desc),
             "nsp=%d N=%d C=%d M=%d group=%d output_shape=%d in=%lld,%lld "
             "k=%lld,%lld s=%lld,%lld d=%lld,%lld pads=%lld,%lld,%lld,%lld "
             "outpad=%lld,%lld",
             nsp, n, c, m, group, use_shape, (long long)in[0],
             (long long)in[nsp - 1], (long long)k[0], (long long)k[nsp - 1],
             (long long)s[0], (long long)s[nsp - 1], (long long)d[0],
             (long long)d[nsp - 1], (long long)pb[0], (long long)pb[nsp - 1],
             (long long)pe[0], (long long)pe[nsp - 1], (long long)op[0],
             (long long)op[nsp - 1]);
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    kn_tensor *yt = &g->tensors[ty];
    if (st != KESTREL_OK)
      h_fail("convtranspose", "status %d (%s) for %s", st, err.message, desc);
    else if (yt->ndim != r || memcmp(yt->dims, yd, sizeof(int64_t) * (size_t)r))
      h_fail("convtranspose", "wrong shape for %s", desc);
    else {
      int64_t bad = h_compare(yt->data, want, ny, TOL);
      if (bad >= 0)
        h_fail("convtranspose", "element %lld got %g want %g for %s",
               (long long)bad, ((float *)yt->data)[bad], want[bad], desc);
    }
    ran++;
    kn_graph_free(g);
    free(x);
    free(w);
    free(want);
  }
  printf("convtranspose: %d cases\n", ran);
}

/* ---- Gemm ---------------------------------------------------------------- */

static void test_gemm(void) {
  h_seed(4);
  for (int iter = 0; iter < 200; iter++) {
    int m = h_range(1, 17), k = h_range(1, 19), nn = h_range(1, 21);
    int ta = h_range(0, 1), tb = h_range(0, 1);
    int cshape = h_range(0, 5); /* none, [1], [N], [M,1], [1,N], [M,N] */
    float alpha = h_range(0, 1) ? 1.0f : h_uniform(-2, 2);
    float beta = h_range(0, 1) ? 1.0f : h_uniform(-2, 2);
    int64_t ad[2] = {ta ? k : m, ta ? m : k}, bd[2] = {tb ? nn : k, tb ? k : nn};
    int64_t cd[2];
    int cr = 0;
    switch (cshape) {
    case 1: cr = 1; cd[0] = 1; break;
    case 2: cr = 1; cd[0] = nn; break;
    case 3: cr = 2; cd[0] = m; cd[1] = 1; break;
    case 4: cr = 2; cd[0] = 1; cd[1] = nn; break;
    case 5: cr = 2; cd[0] = m; cd[1] = nn; break;
    default: break;
    }
    float *a = malloc(sizeof(float) * (size_t)(m * k));
    float *b = malloc(sizeof(float) * (size_t)(k * nn));
    float *c = malloc(sizeof(float) * (size_t)(m * nn));
    float *want = malloc(sizeof(float) * (size_t)(m * nn));
    h_fill(a, m * k);
    h_fill(b, k * nn);
    h_fill(c, m * nn);
    for (int i = 0; i < m; i++)
      for (int j = 0; j < nn; j++) {
        double s = 0;
        for (int q = 0; q < k; q++)
          s += (double)(ta ? a[q * m + i] : a[i * k + q]) *
               (tb ? b[j * k + q] : b[q * nn + j]);
        double cv = 0;
        if (cshape == 1) cv = c[0];
        else if (cshape == 2) cv = c[j];
        else if (cshape == 3) cv = c[i];
        else if (cshape == 4) cv = c[j];
        else if (cshape == 5) cv = c[i * nn + j];
        want[i * nn + j] = (float)(alpha * s + beta * cv);
      }
    kn_graph *g = kn_graph_new();
    int ins[3] = {h_f32(g, "a", 2, ad, a), h_f32(g, "b", 2, bd, b),
                  cshape ? h_f32(g, "c", cr, cd, c) : -1};
    int ty = h_output(g, "y");
    int ni = kn_graph_add_node(g, KN_OP_GEMM, "gemm", NULL, ins,
                               cshape ? 3 : 2, &ty, 1);
    kn_node *node = &g->nodes[ni];
    kn_node_set_int(node, "transA", ta);
    kn_node_set_int(node, "transB", tb);
    kn_node_set_float(node, "alpha", alpha);
    kn_node_set_float(node, "beta", beta);
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    char desc[200];
    snprintf(desc, sizeof(desc),
             "M=%d K=%d N=%d transA=%d transB=%d C-shape=%d alpha=%g beta=%g",
             m, k, nn, ta, tb, cshape, alpha, beta);
    kn_tensor *yt = &g->tensors[ty];
    if (st != KESTREL_OK)
      h_fail("gemm", "status %d (%s) for %s", st, err.message, desc);
    else if (yt->ndim != 2 || yt->dims[0] != m || yt->dims[1] != nn)
      h_fail("gemm", "wrong shape for %s", desc);
    else {
      int64_t bad = h_compare(yt->data, want, m * nn, TOL);
      if (bad >= 0)
        h_fail("gemm", "element %lld got %g want %g for %s", (long long)bad,
               ((float *)yt->data)[bad], want[bad], desc);
    }
    kn_graph_free(g);
    free(a);
    free(b);
    free(c);
    free(want);
  }
}

/* TFLite FullyConnected as Gemm: int8 A [M,K], int8 B [N,K] (transB) with
 * per-output-channel scales, int32 bias, int8 output. */
static void test_gemm_q8(void) {
  h_seed(6);
  for (int iter = 0; iter < 40; iter++) {
    int m = h_range(1, 5), k = h_range(1, 33), nn = h_range(1, 9);
    int act = h_range(0, 1) ? KN_ACT_RELU6 : KN_ACT_NONE;
    int8_t a[5 * 33], b[9 * 33];
    int32_t bias[9], bz[9] = {0};
    float bs[9];
    for (int i = 0; i < m * k; i++)
      a[i] = (int8_t)h_range(-128, 127);
    for (int i = 0; i < nn * k; i++)
      b[i] = (int8_t)h_range(-127, 127);
    for (int i = 0; i < nn; i++) {
      bias[i] = h_range(-500, 500);
      bs[i] = h_uniform(0.002f, 0.02f);
    }
    float as = 0.05f, ys = h_uniform(0.02f, 0.1f);
    int32_t az = h_range(-5, 5), yz = h_range(-128, -100);
    int64_t ad[2] = {m, k}, bd[2] = {nn, k}, cd = nn;
    kn_graph *g = kn_graph_new();
    int ins[3] = {h_tensor(g, "a", KESTREL_DTYPE_I8, 2, ad, a),
                  h_tensor(g, "b", KESTREL_DTYPE_I8, 2, bd, b),
                  h_tensor(g, "c", KESTREL_DTYPE_I32, 1, &cd, bias)};
    int ty = h_output(g, "y");
    kn_tensor_set_quant(&g->tensors[ins[0]], -1, 1, &as, &az);
    kn_tensor_set_quant(&g->tensors[ins[1]], 0, nn, bs, bz);
    g->tensors[ty].dtype = KESTREL_DTYPE_I8;
    kn_tensor_set_quant(&g->tensors[ty], -1, 1, &ys, &yz);
    int ni = kn_graph_add_node(g, KN_OP_GEMM, "fc", NULL, ins, 3, &ty, 1);
    kn_node_set_int(&g->nodes[ni], "transB", 1);
    kn_node_set_int(&g->nodes[ni], "activation", act);
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    if (st != KESTREL_OK) {
      h_fail("gemm_q8", "status %d (%s) M=%d K=%d N=%d", st, err.message, m,
             k, nn);
    } else {
      const int8_t *y = g->tensors[ty].data;
      for (int i = 0; i < m * nn; i++) {
        int r = i / nn, c = i % nn;
        int32_t acc = bias[c];
        for (int q = 0; q < k; q++)
          acc += (a[r * k + q] - az) * b[c * k + q];
        float real = (float)((double)acc * as * bs[c]);
        if (act == KN_ACT_RELU6)
          real = real < 0 ? 0 : (real > 6 ? 6 : real);
        double qv = nearbyint((double)real / ys) + yz;
        int want = qv < -128 ? -128 : (qv > 127 ? 127 : (int)qv);
        if (y[i] != want) {
          h_fail("gemm_q8", "M=%d K=%d N=%d act=%d at %d: got %d want %d", m,
                 k, nn, act, i, y[i], want);
          break;
        }
      }
    }
    kn_graph_free(g);
  }
}

/* ---- MatMul -------------------------------------------------------------- */

static void test_matmul(void) {
  h_seed(5);
  for (int iter = 0; iter < 200; iter++) {
    int ra = h_range(1, 4), rb = h_range(1, 4);
    int m = h_range(1, 6), k = h_range(1, 7), nn = h_range(1, 6);
    int nb = (ra > rb ? ra : rb) - 2;
    if (nb < 0)
      nb = 0;
    int64_t batch[2] = {h_range(1, 3), h_range(1, 3)};
    int64_t ad[4], bd[4];
    int ia = 0, ib = 0;
    /* Batch dims right-aligned; each operand keeps the dim or has 1. */
    for (int i = 0; i < ra - 2; i++)
      ad[ia++] = h_range(0, 2) ? batch[nb - (ra - 2) + i] : 1;
    for (int i = 0; i < rb - 2; i++)
      bd[ib++] = h_range(0, 2) ? batch[nb - (rb - 2) + i] : 1;
    if (ra >= 2)
      ad[ia++] = m;
    ad[ia++] = k;
    bd[ib++] = k;
    if (rb >= 2)
      bd[ib++] = nn;
    int64_t na = h_numel(ra, ad), nbt = h_numel(rb, bd);
    float *a = malloc(sizeof(float) * (size_t)na);
    float *b = malloc(sizeof(float) * (size_t)nbt);
    h_fill(a, na);
    h_fill(b, nbt);
    /* Expected: broadcast batch, matrix dims dropped for 1-D operands. */
    int64_t ob[2] = {1, 1};
    for (int i = 0; i < nb; i++) {
      int64_t da = (i - (nb - (ra - 2)) >= 0 && ra > 2) ? ad[i - (nb - (ra - 2))] : 1;
      int64_t db = (i - (nb - (rb - 2)) >= 0 && rb > 2) ? bd[i - (nb - (rb - 2))] : 1;
      ob[i] = da > db ? da : db;
    }
    int64_t total_b = nb >= 1 ? ob[0] * (nb == 2 ? ob[1] : 1) : 1;
    int mm = ra >= 2 ? m : 1, nnn = rb >= 2 ? nn : 1;
    float *want = malloc(sizeof(float) * (size_t)(total_b * mm * nnn));
    for (int64_t bi = 0; bi < total_b; bi++) {
      int64_t idx[2] = {0, 0};
      if (nb == 2) {
        idx[0] = bi / ob[1];
        idx[1] = bi % ob[1];
      } else if (nb == 1) {
        idx[0] = bi;
      }
      int64_t aoff = 0, boff = 0, sa = (int64_t)mm * k, sb = (int64_t)k * nnn;
      for (int i = nb - 1; i >= 0; i--) {
        int ja = i - (nb - (ra - 2)), jb = i - (nb - (rb - 2));
        if (ra > 2 && ja >= 0) {
          aoff += (ad[ja] == 1 ? 0 : idx[i]) * sa;
          sa *= ad[ja];
        }
        if (rb > 2 && jb >= 0) {
          boff += (bd[jb] == 1 ? 0 : idx[i]) * sb;
          sb *= bd[jb];
        }
      }
      for (int i = 0; i < mm; i++)
        for (int j = 0; j < nnn; j++) {
          double s = 0;
          for (int q = 0; q < k; q++)
            s += (double)a[aoff + i * k + q] * b[boff + q * nnn + j];
          want[(bi * mm + i) * nnn + j] = (float)s;
        }
    }
    kn_graph *g = kn_graph_new();
    int ins[2] = {h_f32(g, "a", ra, ad, a), h_f32(g, "b", rb, bd, b)};
    int ty = h_output(g, "y");
    int ni = kn_graph_add_node(g, KN_OP_MATMUL, "mm", NULL, ins, 2, &ty, 1);
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    char sa_[64], sb_[64], desc[200];
    h_dims_str(sa_, sizeof(sa_), ra, ad);
    h_dims_str(sb_, sizeof(sb_), rb, bd);
    snprintf(desc, sizeof(desc), "A%s x B%s", sa_, sb_);
    kn_tensor *yt = &g->tensors[ty];
    int64_t want_rank = nb + (ra >= 2) + (rb >= 2);
    if (st != KESTREL_OK)
      h_fail("matmul", "status %d (%s) for %s", st, err.message, desc);
    else if (yt->ndim != want_rank ||
             kn_tensor_numel(yt) != total_b * mm * nnn)
      h_fail("matmul", "wrong shape (rank %d) for %s", yt->ndim, desc);
    else {
      int64_t bad = h_compare(yt->data, want, total_b * mm * nnn, TOL);
      if (bad >= 0)
        h_fail("matmul", "element %lld got %g want %g for %s", (long long)bad,
               ((float *)yt->data)[bad], want[bad], desc);
    }
    kn_graph_free(g);
    free(a);
    free(b);
    free(want);
  }
}

int main(void) {
  test_conv();
  test_conv_empty();
  test_conv_dtype();
  test_conv_q8();
  test_conv_transpose();
  test_gemm();
  test_gemm_q8();
  test_matmul();
  if (h_failures) {
    fprintf(stderr, "%d failures\n", h_failures);
    return 1;
  }
  printf("all conv/gemm/matmul tests passed\n");
  return 0;
}
