/* Pools, Pad, Resize, DepthToSpace/SpaceToDepth and BatchNormalization
 * against naive loops written here from the ONNX definitions, on seeded
 * random shapes (ceil_mode, dilations, pads larger than the window,
 * count_include_pad, every Resize coordinate mode, negative pads, NHWC
 * against NCHW). */
#include "ops_harness.h"

#define TOL 1e-4f

/* ---- MaxPool / AveragePool / LpPool -------------------------------------- */

typedef struct pool_case {
  kn_op op;
  int nsp, n, c;
  int64_t in[3], k[3], s[3], d[3], pb[3], pe[3];
  int auto_pad; /* 0 NOTSET, 1 VALID, 2 SAME_UPPER, 3 SAME_LOWER */
  bool ceil_mode, count_include_pad, indices;
} pool_case;

static const char *const auto_pad_names[] = {"NOTSET", "VALID", "SAME_UPPER",
                                             "SAME_LOWER"};

static void pool_case_str(const pool_case *pc, char *buf, size_t cap) {
  int o = snprintf(buf, cap,
                   "op=%s nsp=%d N=%d C=%d auto_pad=%s ceil=%d "
                   "count_include_pad=%d",
                   kn_op_name(pc->op), pc->nsp, pc->n, pc->c,
                   auto_pad_names[pc->auto_pad], pc->ceil_mode,
                   pc->count_include_pad);
  for (int i = 0; i < pc->nsp && o < (int)cap; i++)
    o += snprintf(buf + o, cap - (size_t)o,
                  " | axis%d in=%lld k=%lld s=%lld d=%lld pads=%lld,%lld", i,
                  (long long)pc->in[i], (long long)pc->k[i],
                  (long long)pc->s[i], (long long)pc->d[i],
                  (long long)pc->pb[i], (long long)pc->pe[i]);
}

/* Output size, begin pad and end pad per axis (ONNX pooling rules). */
static bool ref_pool_geometry(const pool_case *pc, int64_t *out, int64_t *pb,
                              int64_t *pe) {
  for (int i = 0; i < pc->nsp; i++) {
    int64_t ek = (pc->k[i] - 1) * pc->d[i] + 1;
    if (pc->auto_pad >= 2) {
      out[i] = (pc->in[i] + pc->s[i] - 1) / pc->s[i];
      int64_t total = (out[i] - 1) * pc->s[i] + ek - pc->in[i];
      if (total < 0)
        total = 0;
      pb[i] = pc->auto_pad == 2 ? total / 2 : total - total / 2;
      pe[i] = total - pb[i];
      continue;
    }
    pb[i] = pc->auto_pad == 1 ? 0 : pc->pb[i];
    pe[i] = pc->auto_pad == 1 ? 0 : pc->pe[i];
    int64_t span = pc->in[i] + pb[i] + pe[i] - ek;
    if (span < 0)
      return false;
    if (pc->ceil_mode) {
      out[i] = (span + pc->s[i] - 1) / pc->s[i] + 1;
      if ((out[i] - 1) * pc->s[i] >= pc->in[i] + pb[i])
        out[i]--;
    } else {
      out[i] = span / pc->s[i] + 1;
    }
  }
  return true;
}

static void check_pool(const pool_case *pc) {
  char desc[1024];
  pool_case_str(pc, desc, sizeof(desc));
  int64_t out[3], pb[3], pe[3];
  if (!ref_pool_geometry(pc, out, pb, pe))
    return;
  /* Padded to three spatial axes of size 1. */
  int64_t in3[3] = {1, 1, 1}, out3[3] = {1, 1, 1}, k3[3] = {1, 1, 1},
          s3[3] = {1, 1, 1}, d3[3] = {1, 1, 1}, pb3[3] = {0, 0, 0},
          pe3[3] = {0, 0, 0};
  int off = 3 - pc->nsp;
  int64_t xd[5] = {pc->n, pc->c}, yd[5] = {pc->n, pc->c};
  for (int i = 0; i < pc->nsp; i++) {
    in3[off + i] = pc->in[i];
    out3[off + i] = out[i];
    k3[off + i] = pc->k[i];
    s3[off + i] = pc->s[i];
    d3[off + i] = pc->d[i];
    pb3[off + i] = pb[i];
    pe3[off + i] = pe[i];
    xd[2 + i] = pc->in[i];
    yd[2 + i] = out[i];
  }
  int r = pc->nsp + 2;
  int64_t in_plane = in3[0] * in3[1] * in3[2],
          out_plane = out3[0] * out3[1] * out3[2];
  int64_t nx = h_numel(r, xd), ny = h_numel(r, yd);
  float *x = malloc(sizeof(float) * (size_t)nx);
  float *xt = malloc(sizeof(float) * (size_t)nx);
  float *want = malloc(sizeof(float) * (size_t)(ny + 1));
  float *got = malloc(sizeof(float) * (size_t)(ny + 1));
  int64_t *want_idx = malloc(sizeof(int64_t) * (size_t)(ny + 1));
  h_fill(x, nx);
  for (int64_t nc = 0; nc < (int64_t)pc->n * pc->c; nc++)
    for (int64_t o = 0; o < out_plane; o++) {
      int64_t oc[3] = {o / (out3[1] * out3[2]), (o / out3[2]) % out3[1],
                       o % out3[2]};
      double acc = pc->op == KN_OP_MAXPOOL ? -INFINITY : 0.0;
      int64_t cnt = 0, padded = 1, best = -1;
      for (int a = 0; a < 3; a++) {
        int64_t start = oc[a] * s3[a] - pb3[a], pc_cnt = 0;
        for (int64_t t = 0; t < k3[a]; t++) {
          int64_t pos = start + t * d3[a];
          if (pos < in3[a] + pe3[a])
            pc_cnt++;
        }
        padded *= pc_cnt;
      }
      for (int64_t ka = 0; ka < k3[0]; ka++)
        for (int64_t kb = 0; kb < k3[1]; kb++)
          for (int64_t kc = 0; kc < k3[2]; kc++) {
            int64_t ia = oc[0] * s3[0] - pb3[0] + ka * d3[0];
            int64_t ib = oc[1] * s3[1] - pb3[1] + kb * d3[1];
            int64_t ic = oc[2] * s3[2] - pb3[2] + kc * d3[2];
            if (ia < 0 || ia >= in3[0] || ib < 0 || ib >= in3[1] || ic < 0 ||
                ic >= in3[2])
              continue;
            int64_t flat = (ia * in3[1] + ib) * in3[2] + ic;
            float v = x[nc * in_plane + flat];
            cnt++;
            if (pc->op == KN_OP_MAXPOOL) {
              if (v > acc) {
                acc = v;
                best = nc * in_plane + flat;
              }
            } else if (pc->op == KN_OP_LP_POOL) {
              acc += (double)v * v;
            } else {
              acc += v;
            }
          }
      if (pc->op == KN_OP_AVGPOOL)
        acc /= (double)(pc->count_include_pad ? padded : cnt);
      if (pc->op == KN_OP_LP_POOL)
        acc = sqrt(acc);
      want[nc * out_plane + o] = (float)acc;
      want_idx[nc * out_plane + o] = best;
    }
  for (int layout = 0; layout < 2; layout++) {
    kn_graph *g = kn_graph_new();
    int64_t xdl[5], ydl[5];
    memcpy(xdl, xd, sizeof(xd));
    memcpy(ydl, yd, sizeof(yd));
    if (layout) {
      for (int i = 0; i < pc->nsp; i++) {
        xdl[1 + i] = pc->in[i];
        ydl[1 + i] = out[i];
      }
      xdl[r - 1] = ydl[r - 1] = pc->c;
      h_to_nhwc(x, xt, pc->n, pc->c, in_plane);
    }
    int ti = h_f32(g, "x", r, xdl, layout ? xt : x);
    int outs[2] = {h_output(g, "y"), h_output(g, "idx")};
    bool with_idx = pc->indices && layout == 0;
    int ni = kn_graph_add_node(g, pc->op, "pool", NULL, &ti, 1, outs,
                               with_idx ? 2 : 1);
    kn_node *node = &g->nodes[ni];
    kn_node_set_ints(node, "kernel_shape", pc->k, pc->nsp);
    kn_node_set_ints(node, "strides", pc->s, pc->nsp);
    if (pc->op == KN_OP_MAXPOOL)
      kn_node_set_ints(node, "dilations", pc->d, pc->nsp);
    if (pc->auto_pad) {
      kn_node_set_string(node, "auto_pad", auto_pad_names[pc->auto_pad]);
    } else {
      int64_t pads[6];
      for (int i = 0; i < pc->nsp; i++) {
        pads[i] = pc->pb[i];
        pads[i + pc->nsp] = pc->pe[i];
      }
      kn_node_set_ints(node, "pads", pads, 2 * pc->nsp);
    }
    kn_node_set_int(node, "ceil_mode", pc->ceil_mode);
    kn_node_set_int(node, "count_include_pad", pc->count_include_pad);
    if (layout)
      kn_node_set_int(node, "layout", layout);
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    kn_tensor *yt = &g->tensors[outs[0]];
    if (st != KESTREL_OK) {
      h_fail("pool", "layout %d: status %d (%s) for %s", layout, st,
             err.message, desc);
    } else if (yt->ndim != r ||
               memcmp(yt->dims, ydl, sizeof(int64_t) * (size_t)r)) {
      char a[128], e[128];
      h_dims_str(a, sizeof(a), yt->ndim, yt->dims);
      h_dims_str(e, sizeof(e), r, ydl);
      h_fail("pool", "layout %d: shape %s expected %s for %s", layout, a, e,
             desc);
    } else {
      if (layout)
        h_from_nhwc(yt->data, got, pc->n, pc->c, out_plane);
      else
        memcpy(got, yt->data, sizeof(float) * (size_t)ny);
      int64_t bad = h_compare(got, want, ny, TOL);
      if (bad >= 0)
        h_fail("pool", "layout %d: element %lld got %g want %g for %s", layout,
               (long long)bad, got[bad], want[bad], desc);
      if (with_idx) {
        const int64_t *idx = g->tensors[outs[1]].data;
        for (int64_t i = 0; i < ny; i++)
          if (idx[i] != want_idx[i]) {
            h_fail("pool", "index %lld got %lld want %lld for %s",
                   (long long)i, (long long)idx[i], (long long)want_idx[i],
                   desc);
            break;
          }
      }
    }
    kn_graph_free(g);
  }
  free(x);
  free(xt);
  free(want);
  free(got);
  free(want_idx);
}

static void test_pools(void) {
  h_seed(11);
  int ran = 0;
  for (int iter = 0; iter < 400; iter++) {
    pool_case pc;
    memset(&pc, 0, sizeof(pc));
    kn_op ops[] = {KN_OP_MAXPOOL, KN_OP_AVGPOOL, KN_OP_LP_POOL};
    pc.op = ops[h_range(0, 2)];
    pc.nsp = h_range(0, 7) ? 2 : (h_range(0, 1) ? 1 : 3);
    pc.n = h_range(1, 2);
    pc.c = h_range(1, 5);
    pc.auto_pad = h_range(0, 5);
    if (pc.auto_pad > 3)
      pc.auto_pad = 0;
    pc.ceil_mode = pc.auto_pad == 0 && h_range(0, 1);
    pc.count_include_pad = h_range(0, 1);
    pc.indices = pc.op == KN_OP_MAXPOOL && h_range(0, 1);
    for (int i = 0; i < pc.nsp; i++) {
      pc.k[i] = h_range(1, pc.nsp == 3 ? 3 : 4);
      pc.s[i] = h_range(1, 4);
      pc.d[i] = pc.op == KN_OP_MAXPOOL && h_range(0, 2) == 0 ? 2 : 1;
      pc.in[i] = h_range(1, pc.nsp == 3 ? 6 : 13);
      /* ONNX wants pads smaller than the window; keep them so. */
      int64_t ek = (pc.k[i] - 1) * pc.d[i] + 1;
      pc.pb[i] = h_range(0, (int)(ek - 1));
      pc.pe[i] = h_range(0, (int)(ek - 1));
    }
    int64_t out[3], pb[3], pe[3];
    if (!ref_pool_geometry(&pc, out, pb, pe))
      continue;
    check_pool(&pc);
    ran++;
  }
  printf("pools: %d cases\n", ran);
}

static void test_global_pools(void) {
  h_seed(12);
  kn_op ops[] = {KN_OP_GLOBAL_AVGPOOL, KN_OP_GLOBAL_MAXPOOL,
                 KN_OP_GLOBAL_LP_POOL};
  for (int iter = 0; iter < 30; iter++) {
    kn_op op = ops[iter % 3];
    int layout = h_range(0, 1);
    int64_t n = h_range(1, 2), c = h_range(1, 6), h = h_range(1, 9),
            w = h_range(1, 9);
    int64_t dims[4] = {n, layout ? h : c, layout ? w : h, layout ? c : w};
    int64_t nx = n * c * h * w;
    float *x = malloc(sizeof(float) * (size_t)nx);
    h_fill(x, nx);
    kn_graph *g = kn_graph_new();
    int ti = h_f32(g, "x", 4, dims, x), ty = h_output(g, "y");
    int ni = kn_graph_add_node(g, op, "gp", NULL, &ti, 1, &ty, 1);
    if (layout)
      kn_node_set_int(&g->nodes[ni], "layout", layout);
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    if (st != KESTREL_OK) {
      h_fail("global_pool", "status %d (%s)", st, err.message);
    } else {
      const float *y = g->tensors[ty].data;
      for (int64_t in = 0; in < n; in++)
        for (int64_t ch = 0; ch < c; ch++) {
          double acc = op == KN_OP_GLOBAL_MAXPOOL ? -INFINITY : 0.0;
          for (int64_t p = 0; p < h * w; p++) {
            float v = layout ? x[(in * h * w + p) * c + ch]
                             : x[(in * c + ch) * h * w + p];
            if (op == KN_OP_GLOBAL_MAXPOOL)
              acc = v > acc ? v : acc;
            else if (op == KN_OP_GLOBAL_LP_POOL)
              acc += (double)v * v;
            else
              acc += v;
          }
          if (op == KN_OP_GLOBAL_AVGPOOL)
            acc /= (double)(h * w);
          if (op == KN_OP_GLOBAL_LP_POOL)
            acc = sqrt(acc);
          float gv = y[in * c + ch]; /* [N,C,1,1] and [N,1,1,C] agree */
          if (fabsf(gv - (float)acc) > TOL * (1 + fabsf((float)acc))) {
            h_fail("global_pool",
                   "%s layout %d N=%lld C=%lld H=%lld W=%lld: (%lld,%lld) got "
                   "%g want %g",
                   kn_op_name(op), layout, (long long)n, (long long)c,
                   (long long)h, (long long)w, (long long)in, (long long)ch,
                   gv, acc);
            in = n;
            break;
          }
        }
    }
    kn_graph_free(g);
    free(x);
  }
}

/* uint8 MaxPool without quantization parameters (ONNX allows it). */
static void test_maxpool_u8(void) {
  uint8_t x[16];
  for (int i = 0; i < 16; i++)
    x[i] = (uint8_t)((i * 37) % 251);
  kn_graph *g = kn_graph_new();
  int64_t dims[4] = {1, 1, 4, 4};
  int ti = h_tensor(g, "x", KESTREL_DTYPE_U8, 4, dims, x);
  int ty = h_output(g, "y");
  int ni = kn_graph_add_node(g, KN_OP_MAXPOOL, "mp", NULL, &ti, 1, &ty, 1);
  int64_t k[2] = {2, 2}, s[2] = {2, 2};
  kn_node_set_ints(&g->nodes[ni], "kernel_shape", k, 2);
  kn_node_set_ints(&g->nodes[ni], "strides", s, 2);
  kestrel_error err = {{0}};
  kestrel_status st = h_run_node(g, ni, &err);
  if (st != KESTREL_OK) {
    h_fail("maxpool_u8", "status %d (%s)", st, err.message);
  } else {
    const uint8_t *y = g->tensors[ty].data;
    for (int oy = 0; oy < 2; oy++)
      for (int ox = 0; ox < 2; ox++) {
        uint8_t m = 0;
        for (int ky = 0; ky < 2; ky++)
          for (int kx = 0; kx < 2; kx++) {
            uint8_t v = x[(oy * 2 + ky) * 4 + ox * 2 + kx];
            m = v > m ? v : m;
          }
        if (y[oy * 2 + ox] != m)
          h_fail("maxpool_u8", "(%d,%d) got %d want %d", oy, ox,
                 y[oy * 2 + ox], m);
      }
  }
  kn_graph_free(g);
}

/* ---- Pad ----------------------------------------------------------------- */

static int64_t ref_pad_index(int mode, int64_t i, int64_t len) {
  /* mode: 0 constant, 1 reflect, 2 edge, 3 wrap; -1 means the constant. */
  if (i >= 0 && i < len)
    return i;
  if (mode == 0)
    return -1;
  if (mode == 2)
    return i < 0 ? 0 : len - 1;
  if (mode == 3)
    return ((i % len) + len) % len;
  if (len == 1)
    return 0;
  while (i < 0 || i >= len)
    i = i < 0 ? -i : 2 * (len - 1) - i;
  return i;
}

static void test_pad(void) {
  h_seed(13);
  static const char *const modes[] = {"constant", "reflect", "edge", "wrap"};
  for (int iter = 0; iter < 300; iter++) {
    int r = h_range(1, 4), mode = h_range(0, 3);
    bool as_attr = h_range(0, 3) == 0; /* opset < 11 form */
    int64_t dims[4], pads[8], odims[4];
    for (int i = 0; i < r; i++)
      dims[i] = h_range(1, 6);
    for (int i = 0; i < 2 * r; i++) {
      int64_t len = dims[i % r];
      /* Negative pads crop; keep at least one element. */
      pads[i] = h_range(0, 3) == 0 ? -h_range(0, (int)(len - 1) / 2)
                                   : h_range(0, mode == 1 ? 7 : 4);
    }
    for (int i = 0; i < r; i++)
      odims[i] = dims[i] + pads[i] + pads[i + r];
    float value = h_uniform(-3, 3);
    int64_t nx = h_numel(r, dims), ny = h_numel(r, odims);
    float *x = malloc(sizeof(float) * (size_t)nx);
    float *want = malloc(sizeof(float) * (size_t)(ny + 1));
    h_fill(x, nx);
    for (int64_t e = 0; e < ny; e++) {
      int64_t rem = e, src = 0, stride = 1;
      bool constant = false;
      for (int a = r - 1; a >= 0; a--) {
        int64_t o = rem % odims[a];
        rem /= odims[a];
        int64_t i = ref_pad_index(mode, o - pads[a], dims[a]);
        if (i < 0)
          constant = true;
        src += i * stride;
        stride *= dims[a];
      }
      want[e] = constant ? value : x[src];
    }
    kn_graph *g = kn_graph_new();
    int ins[3] = {h_f32(g, "x", r, dims, x), -1, -1};
    int64_t one = 1;
    if (!as_attr) {
      ins[1] = h_i64(g, "pads", 2 * r, pads);
      ins[2] = h_f32(g, "value", 0, &one, &value);
    }
    int ty = h_output(g, "y");
    int ni = kn_graph_add_node(g, KN_OP_PAD, "pad", NULL, ins, as_attr ? 1 : 3,
                               &ty, 1);
    kn_node *node = &g->nodes[ni];
    kn_node_set_string(node, "mode", modes[mode]);
    if (as_attr) {
      kn_node_set_ints(node, "pads", pads, 2 * r);
      kn_node_set_float(node, "value", value);
    }
    char ds[64], ps[128], desc[256];
    h_dims_str(ds, sizeof(ds), r, dims);
    h_dims_str(ps, sizeof(ps), 2 * r, pads);
    snprintf(desc, sizeof(desc), "x%s pads%s mode=%s value=%g attr=%d", ds, ps,
             modes[mode], value, as_attr);
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    kn_tensor *yt = &g->tensors[ty];
    if (st != KESTREL_OK)
      h_fail("pad", "status %d (%s) for %s", st, err.message, desc);
    else if (yt->ndim != r ||
             memcmp(yt->dims, odims, sizeof(int64_t) * (size_t)r))
      h_fail("pad", "wrong shape for %s", desc);
    else {
      int64_t bad = h_compare(yt->data, want, ny, 0.0f);
      if (bad >= 0)
        h_fail("pad", "element %lld got %g want %g for %s", (long long)bad,
               ((float *)yt->data)[bad], want[bad], desc);
    }
    kn_graph_free(g);
    free(x);
    free(want);
  }
}

/* ---- Resize -------------------------------------------------------------- */

static const char *const coord_names[] = {
    "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
    "tf_half_pixel_for_nearest", "tf_crop_and_resize"};
static const char *const nearest_names[] = {"round_prefer_floor",
                                            "round_prefer_ceil", "floor",
                                            "ceil"};

/* Source coordinate of output index x on one axis (ONNX Resize). */
static double ref_coord(int coord, double x, double scale, int64_t in,
                        int64_t out, double roi_b, double roi_e) {
  double len = scale * (double)in;
  switch (coord) {
  case 0: return (x + 0.5) / scale - 0.5;
  case 1: return out > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
  case 2: return out == 1 ? 0.0 : x * (double)(in - 1) / (len - 1.0);
  case 3: return x / scale;
  case 4: return (x + 0.5) / scale;
  default:
    return out > 1 ? roi_b * (double)(in - 1) +
                         x * (roi_e - roi_b) * (double)(in - 1) / (len - 1.0)
                   : 0.5 * (roi_b + roi_e) * (double)(in - 1);
  }
}

static int64_t clamp_index(int64_t i, int64_t len) {
  return i < 0 ? 0 : (i >= len ? len - 1 : i);
}

static void test_resize(void) {
  h_seed(14);
  for (int iter = 0; iter < 300; iter++) {
    int r = h_range(2, 4), linear = h_range(0, 1), coord = h_range(0, 5);
    int nearest = h_range(0, 3);
    bool use_sizes = h_range(0, 1);
    int64_t dims[4], odims[4];
    double scale[4];
    float scales_f[4];
    double roi_b[4], roi_e[4];
    float roi[8];
    for (int i = 0; i < r; i++) {
      dims[i] = h_range(1, 6);
      /* Leading axes usually untouched, as in NCHW images. */
      bool resized = i >= r - 2 || h_range(0, 3) == 0;
      if (use_sizes) {
        odims[i] = resized ? h_range(1, 11) : dims[i];
        scale[i] = (double)odims[i] / (double)dims[i];
      } else {
        static const float choices[] = {0.5f, 0.6f, 0.75f, 1.0f, 1.5f, 2.0f,
                                        2.5f, 3.0f};
        scales_f[i] = resized ? choices[h_range(0, 7)] : 1.0f;
        scale[i] = scales_f[i];
        odims[i] = (int64_t)floor((double)dims[i] * scale[i]);
      }
      roi_b[i] = coord == 5 ? h_uniform(0.0f, 0.4f) : 0.0;
      roi_e[i] = coord == 5 ? h_uniform(0.6f, 1.2f) : 1.0;
      roi[i] = (float)roi_b[i];
      roi[i + r] = (float)roi_e[i];
    }
    if (coord == 5 && !use_sizes)
      for (int i = 0; i < r; i++)
        odims[i] = (int64_t)floor((roi_e[i] - roi[i]) * (double)dims[i] *
                                  scale[i]);
    bool empty = false;
    for (int i = 0; i < r; i++)
      empty |= odims[i] < 1;
    if (empty)
      continue;
    float extrap = h_uniform(-2, 2);
    int64_t nx = h_numel(r, dims), ny = h_numel(r, odims);
    float *x = malloc(sizeof(float) * (size_t)nx);
    float *want = malloc(sizeof(float) * (size_t)ny);
    h_fill(x, nx);
    for (int64_t e = 0; e < ny; e++) {
      int64_t o[4], rem = e;
      for (int a = r - 1; a >= 0; a--) {
        o[a] = rem % odims[a];
        rem /= odims[a];
      }
      /* Per axis: two candidate indices and weights (one for nearest). */
      int64_t idx[4][2];
      double wt[4][2];
      bool outside = false;
      for (int a = 0; a < r; a++) {
        double xf = ref_coord(coord, (double)o[a], scale[a], dims[a], odims[a],
                              roi_b[a], roi_e[a]);
        if (coord == 5 && (xf < 0 || xf > (double)(dims[a] - 1)))
          outside = true;
        if (linear) {
          double f = floor(xf);
          idx[a][0] = clamp_index((int64_t)f, dims[a]);
          idx[a][1] = clamp_index((int64_t)f + 1, dims[a]);
          wt[a][1] = xf - f;
          wt[a][0] = 1.0 - wt[a][1];
        } else {
          double f = floor(xf), frac = xf - f;
          int64_t i;
          if (nearest == 2)
            i = (int64_t)f;
          else if (nearest == 3)
            i = (int64_t)ceil(xf);
          else if (frac == 0.5)
            i = (int64_t)(nearest == 0 ? f : f + 1);
          else
            i = (int64_t)(frac < 0.5 ? f : f + 1);
          idx[a][0] = idx[a][1] = clamp_index(i, dims[a]);
          wt[a][0] = 1.0;
          wt[a][1] = 0.0;
        }
      }
      if (outside) {
        want[e] = extrap;
        continue;
      }
      double sum = 0.0;
      for (int corner = 0; corner < (1 << r); corner++) {
        double w = 1.0;
        int64_t src = 0;
        for (int a = 0; a < r; a++) {
          int bit = (corner >> (r - 1 - a)) & 1;
          w *= wt[a][bit];
          src = src * dims[a] + idx[a][bit];
        }
        sum += w * x[src];
      }
      want[e] = (float)sum;
    }
    kn_graph *g = kn_graph_new();
    int64_t rn = r, rn2 = 2 * r;
    int ins[4] = {h_f32(g, "x", r, dims, x),
                  coord == 5 ? h_f32(g, "roi", 1, &rn2, roi) : -1,
                  use_sizes ? -1 : h_f32(g, "scales", 1, &rn, scales_f),
                  use_sizes ? h_i64(g, "sizes", r, odims) : -1};
    int ty = h_output(g, "y");
    int ni = kn_graph_add_node(g, KN_OP_RESIZE, "resize", NULL, ins,
                               use_sizes ? 4 : 3, &ty, 1);
    kn_node *node = &g->nodes[ni];
    kn_node_set_string(node, "mode", linear ? "linear" : "nearest");
    kn_node_set_string(node, "coordinate_transformation_mode",
                       coord_names[coord]);
    kn_node_set_string(node, "nearest_mode", nearest_names[nearest]);
    kn_node_set_float(node, "extrapolation_value", extrap);
    char ds[64], os[64], desc[300];
    h_dims_str(ds, sizeof(ds), r, dims);
    h_dims_str(os, sizeof(os), r, odims);
    snprintf(desc, sizeof(desc), "x%s -> %s mode=%s coord=%s nearest=%s %s",
             ds, os, linear ? "linear" : "nearest", coord_names[coord],
             nearest_names[nearest], use_sizes ? "sizes" : "scales");
    g->opset = 13;
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    kn_tensor *yt = &g->tensors[ty];
    if (st != KESTREL_OK)
      h_fail("resize", "status %d (%s) for %s", st, err.message, desc);
    else if (yt->ndim != r ||
             memcmp(yt->dims, odims, sizeof(int64_t) * (size_t)r))
      h_fail("resize", "wrong shape for %s", desc);
    else {
      int64_t bad = h_compare(yt->data, want, ny, TOL);
      if (bad >= 0)
        h_fail("resize", "element %lld got %g want %g for %s", (long long)bad,
               ((float *)yt->data)[bad], want[bad], desc);
    }
    kn_graph_free(g);
    free(x);
    free(want);
  }
}

/* ---- DepthToSpace / SpaceToDepth ----------------------------------------- */

static void test_depth_space(void) {
  h_seed(15);
  for (int iter = 0; iter < 40; iter++) {
    int64_t b = h_range(1, 3), n = h_range(1, 2), c = h_range(1, 3),
            h = h_range(1, 4), w = h_range(1, 4);
    bool crd = h_range(0, 1);
    /* DepthToSpace on [N, C*b*b, H, W] against the ONNX reshape/transpose
     * definition. */
    int64_t cin = c * b * b, xd[4] = {n, cin, h, w};
    int64_t nx = h_numel(4, xd);
    float *x = malloc(sizeof(float) * (size_t)nx);
    h_fill(x, nx);
    kn_graph *g = kn_graph_new();
    int ti = h_f32(g, "x", 4, xd, x), ty = h_output(g, "y");
    int ni = kn_graph_add_node(g, KN_OP_DEPTH_TO_SPACE, "d2s", NULL, &ti, 1,
                               &ty, 1);
    kn_node_set_int(&g->nodes[ni], "blocksize", b);
    kn_node_set_string(&g->nodes[ni], "mode", crd ? "CRD" : "DCR");
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    if (st != KESTREL_OK) {
      h_fail("depth_to_space", "status %d (%s)", st, err.message);
    } else {
      const float *y = g->tensors[ty].data;
      for (int64_t in = 0; in < n; in++)
        for (int64_t co = 0; co < c; co++)
          for (int64_t oy = 0; oy < h * b; oy++)
            for (int64_t ox = 0; ox < w * b; ox++) {
              int64_t i = oy % b, j = ox % b;
              int64_t ci = crd ? co * b * b + i * b + j : (i * b + j) * c + co;
              float want = x[((in * cin + ci) * h + oy / b) * w + ox / b];
              float got = y[((in * c + co) * h * b + oy) * w * b + ox];
              if (got != want) {
                h_fail("depth_to_space",
                       "b=%lld N=%lld C=%lld H=%lld W=%lld crd=%d at "
                       "(%lld,%lld,%lld,%lld)",
                       (long long)b, (long long)n, (long long)c, (long long)h,
                       (long long)w, crd, (long long)in, (long long)co,
                       (long long)oy, (long long)ox);
                in = n;
                co = c;
                oy = h * b;
                break;
              }
            }
      /* SpaceToDepth of the DCR result gives the input back. */
      if (!crd) {
        int t2 = h_output(g, "z");
        int n2 = kn_graph_add_node(g, KN_OP_SPACE_TO_DEPTH, "s2d", NULL, &ty,
                                   1, &t2, 1);
        kn_node_set_int(&g->nodes[n2], "blocksize", b);
        st = h_run_node(g, n2, &err);
        if (st != KESTREL_OK ||
            h_compare(g->tensors[t2].data, x, nx, 0.0f) >= 0)
          h_fail("space_to_depth", "round trip failed, b=%lld status %d",
                 (long long)b, st);
      }
    }
    kn_graph_free(g);
    free(x);
  }
}

/* ---- BatchNormalization -------------------------------------------------- */

static void test_batchnorm(void) {
  h_seed(16);
  for (int iter = 0; iter < 20; iter++) {
    int64_t n = h_range(1, 2), c = h_range(1, 7), h = h_range(1, 5),
            w = h_range(1, 5);
    int layout = h_range(0, 1);
    int64_t dims[4] = {n, layout ? h : c, layout ? w : h, layout ? c : w};
    int64_t nx = n * c * h * w;
    float *x = malloc(sizeof(float) * (size_t)nx);
    float p[4][8];
    h_fill(x, nx);
    for (int i = 0; i < 4; i++)
      h_fill(p[i], c);
    for (int i = 0; i < c; i++)
      p[3][i] = fabsf(p[3][i]) + 0.1f; /* variance */
    kn_graph *g = kn_graph_new();
    int ins[5] = {h_f32(g, "x", 4, dims, x)};
    for (int i = 0; i < 4; i++)
      ins[1 + i] = h_f32(g, "p", 1, &c, p[i]);
    int ty = h_output(g, "y");
    int ni = kn_graph_add_node(g, KN_OP_BATCHNORM, "bn", NULL, ins, 5, &ty, 1);
    if (layout)
      kn_node_set_int(&g->nodes[ni], "layout", layout);
    kestrel_error err = {{0}};
    kestrel_status st = h_run_node(g, ni, &err);
    if (st != KESTREL_OK) {
      h_fail("batchnorm", "status %d (%s)", st, err.message);
    } else {
      const float *y = g->tensors[ty].data;
      for (int64_t i = 0; i < nx; i++) {
        int64_t ch = layout ? i % c : (i / (h * w)) % c;
        float want = (x[i] - p[2][ch]) / sqrtf(p[3][ch] + 1e-5f) * p[0][ch] +
                     p[1][ch];
        if (fabsf(y[i] - want) > TOL * (1 + fabsf(want))) {
          h_fail("batchnorm", "layout %d C=%lld element %lld got %g want %g",
                 layout, (long long)c, (long long)i, y[i], want);
          break;
        }
      }
    }
    kn_graph_free(g);
    free(x);
  }
}

int main(void) {
  test_pools();
  test_global_pools();
  test_maxpool_u8();
  test_pad();
  test_resize();
  test_depth_space();
  test_batchnorm();
  if (h_failures) {
    fprintf(stderr, "%d failures\n", h_failures);
    return 1;
  }
  printf("all pool/pad/resize tests passed\n");
  return 0;
}
