/* Fused preprocessing kernels (nn/kernels/preprocess/): every ISA this
 * machine runs against the C reference, byte for byte, for the row
 * accumulator, the output pass and the whole driver (every pixel format,
 * odd sizes, crops, reduced views, letterbox/stretch/pad-right, NCHW/NHWC,
 * float32/uint8/int8 raw and quantized); and the reference driver against
 * a naive per-pixel oracle written here from the documented semantics
 * (kestrel/preprocess.h), which it must match exactly too.
 * A failing case prints every parameter. Exit status: failures (capped).
 * KESTREL_TEST_QUICK=1 shrinks the sweeps (used under qemu). */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/preprocess.h>

#include "preprocess/preprocess_kernels.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}
static int rnd_range(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

static int failures, quick;

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  failures++;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

/* --- rowacc ------------------------------------------------------------------ */

static void test_rowacc(const kn_pp_kernels *k) {
  static const uint32_t weights[] = {1, 2, 3, 256};
  size_t max_n = quick ? 300 : 2100;
  uint8_t *row = xmalloc(max_n + 1);
  uint32_t *a = xmalloc(sizeof(uint32_t) * (max_n + 1));
  uint32_t *b = xmalloc(sizeof(uint32_t) * (max_n + 1));
  for (size_t n = 0; n <= max_n; n += n < 80 ? 1 : 97) {
    for (size_t w = 0; w < 4; w++)
      for (int first = 0; first < 2; first++) {
        for (size_t i = 0; i <= n; i++) {
          row[i] = (uint8_t)(i % 7 == 0 ? 255 : rnd());
          a[i] = b[i] = rnd() & 0xFFFFFF;
        }
        /* +1 on the row: the kernel must not read (use) or write past n. */
        kestrel_u8_rowacc__ref(row + 1, n, weights[w], a + 1, first);
        k->rowacc(row + 1, n, weights[w], b + 1, first);
        if (memcmp(a, b, sizeof(uint32_t) * (n + 1)))
          fail("%s rowacc n=%zu weight=%u first=%d differs", kn_isa_name(k->isa), n,
               weights[w], first);
      }
  }
  free(row);
  free(a);
  free(b);
}

/* --- output pass -------------------------------------------------------------- */

static const char *dtype_name[] = {"f32", "u8", "i8"};

static void test_output(const kn_pp_kernels *k) {
  size_t max_n = 41;
  float *c[3];
  for (int i = 0; i < 3; i++)
    c[i] = xmalloc(sizeof(float) * max_n);
  uint8_t *a = xmalloc((max_n + 3) * 3 * 4 + 64), *b = xmalloc((max_n + 3) * 3 * 4 + 64);
  for (int dt = 0; dt < 3; dt++)
    for (int yuv = 0; yuv < 2; yuv++)
      for (int quant = 0; quant < (dt ? 2 : 1); quant++)
        for (int nhwc = 0; nhwc < 2; nhwc++)
          for (size_t n = 0; n <= max_n; n++) {
            kn_pp_output o;
            memset(&o, 0, sizeof(o));
            o.dtype = (kn_pp_dtype)dt;
            o.yuv = yuv;
            o.y_offset = 16.0f;
            o.y_scale = 255.0f / 219.0f;
            o.c_scale = 255.0f / 224.0f;
            o.cr_r = 1.402f;
            o.cb_g = -0.344136f;
            o.cr_g = -0.714136f;
            o.cb_b = 1.772f;
            o.quant = quant;
            o.qinv = quant ? 1.0f / 0.0078125f : 0;
            o.zero_point = dt == 2 ? rnd_range(-128, 127) : rnd_range(0, 255);
            o.nhwc = nhwc;
            o.channel_stride = n + 3;
            int bgr = (int)(rnd() & 1);
            for (int ch = 0; ch < 3; ch++) {
              o.source[ch] = bgr ? 2 - ch : ch;
              o.mul[ch] = 1.0f / 127.5f;
              o.add[ch] = ch == 1 ? -0.0f : -1.0f;
            }
            for (size_t i = 0; i < n; i++)
              for (int ch = 0; ch < 3; ch++) {
                /* Halves test round-half-even; 0 and 255 the clamps. */
                int r = rnd_range(0, 9);
                c[ch][i] = r == 0 ? 0.0f : r == 1 ? 255.0f
                           : r == 2 ? (float)rnd_range(0, 254) + 0.5f
                                    : (float)(rnd() % 25600) / 100.0f;
              }
            size_t bytes = (n + 3) * 3 * (dt ? 1 : 4);
            memset(a, 0x5A, bytes + 64);
            memset(b, 0x5A, bytes + 64);
            kestrel_pp_output__ref(&o, c[0], c[1], c[2], n, a);
            k->output(&o, c[0], c[1], c[2], n, b);
            if (memcmp(a, b, bytes + 64))
              fail("%s output n=%zu dtype=%s yuv=%d quant=%d nhwc=%d bgr=%d differs",
                   kn_isa_name(k->isa), n, dtype_name[dt], yuv, quant, nhwc, bgr);
          }
  for (int i = 0; i < 3; i++)
    free(c[i]);
  free(a);
  free(b);
}

/* --- images ---------------------------------------------------------------------- */

typedef struct {
  kestrel_pixel_format format;
  const char *name;
  int planes;
  int yuv;
  int sx[3], sy[3], unit[3]; /* per plane: subsampling and bytes per unit */
} fmt_info;

static const fmt_info formats[] = {
    {KESTREL_PIXEL_RGB, "RGB", 1, 0, {0}, {0}, {3}},
    {KESTREL_PIXEL_BGR, "BGR", 1, 0, {0}, {0}, {3}},
    {KESTREL_PIXEL_RGBX, "RGBx", 1, 0, {0}, {0}, {4}},
    {KESTREL_PIXEL_BGRX, "BGRx", 1, 0, {0}, {0}, {4}},
    {KESTREL_PIXEL_I420, "I420", 3, 1, {0, 1, 1}, {0, 1, 1}, {1, 1, 1}},
    {KESTREL_PIXEL_NV12, "NV12", 2, 1, {0, 1}, {0, 1}, {1, 2}},
    {KESTREL_PIXEL_YUY2, "YUY2", 1, 1, {1}, {0}, {4}},
    {KESTREL_PIXEL_Y42B, "Y42B", 3, 1, {0, 1, 1}, {0, 0, 0}, {1, 1, 1}},
    {KESTREL_PIXEL_Y444, "Y444", 3, 1, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}},
};
#define NUM_FORMATS (sizeof(formats) / sizeof(formats[0]))

typedef struct {
  uint8_t *mem[3];
  kestrel_image img;
} test_image;

/* Smooth content with noise and a few hard edges, like a photo. */
static void make_image(test_image *t, const fmt_info *f, int w, int h) {
  const uint8_t *planes[3] = {NULL, NULL, NULL};
  size_t strides[3] = {0, 0, 0};
  for (int p = 0; p < f->planes; p++) {
    size_t units = (size_t)((w + (1 << f->sx[p]) - 1) >> f->sx[p]);
    size_t rows = (size_t)((h + (1 << f->sy[p]) - 1) >> f->sy[p]);
    strides[p] = units * f->unit[p] + (size_t)rnd_range(0, 5);
    t->mem[p] = xmalloc(strides[p] * rows);
    for (size_t y = 0; y < rows; y++)
      for (size_t x = 0; x < strides[p]; x++) {
        int v = (int)((x * 7 + y * 3) % 256) + rnd_range(-20, 20);
        if ((x / 13 + y / 9) % 5 == 0)
          v = rnd_range(0, 1) ? 255 : 0;
        t->mem[p][y * strides[p] + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
      }
    planes[p] = t->mem[p];
  }
  if (kestrel_image_init(&t->img, f->format, w, h, planes, strides) != KESTREL_OK) {
    fail("kestrel_image_init %s %dx%d refused", f->name, w, h);
    exit(1);
  }
  if (rnd() & 1)
    kestrel_image_set_yuv(&t->img, 0.2126, 0.0722, (int)(rnd() & 1));
}

static void free_image(test_image *t) {
  for (int p = 0; p < 3; p++)
    free(t->mem[p]);
  memset(t, 0, sizeof(*t));
}

/* --- the oracle: one tensor pixel at a time, straight from the definition ------ */

static int oracle_fetch(const kestrel_image *img, const fmt_info *f, int c, int x,
                        int y) {
  switch (img->format) {
  case KESTREL_PIXEL_RGB:
  case KESTREL_PIXEL_BGR:
  case KESTREL_PIXEL_RGBX:
  case KESTREL_PIXEL_BGRX: {
    int size = img->format <= KESTREL_PIXEL_BGR ? 3 : 4;
    int bgr = img->format == KESTREL_PIXEL_BGR || img->format == KESTREL_PIXEL_BGRX;
    return img->planes[0][(size_t)y * img->strides[0] + (size_t)x * size +
                          (bgr ? 2 - c : c)];
  }
  case KESTREL_PIXEL_NV12:
    if (c == 0)
      return img->planes[0][(size_t)y * img->strides[0] + x];
    return img->planes[1][(size_t)(y >> 1) * img->strides[1] + (size_t)(x & ~1) + c - 1];
  case KESTREL_PIXEL_YUY2: {
    const uint8_t *row = img->planes[0] + (size_t)y * img->strides[0];
    return c == 0 ? row[x * 2] : row[(x >> 1) * 4 + (c == 1 ? 1 : 3)];
  }
  default: /* planar */
    return img->planes[c][(size_t)(y >> f->sy[c]) * img->strides[c] +
                          (size_t)(x >> f->sx[c])];
  }
}

static void oracle_transform(const kestrel_sidecar *sc, int iw, int ih, int tw,
                             int th, kestrel_transform *tf) {
  tf->image_width = iw;
  tf->image_height = ih;
  tf->tensor_width = tw;
  tf->tensor_height = th;
  tf->pad_x = tf->pad_y = 0;
  if (sc->resize == KESTREL_RESIZE_LETTERBOX) {
    float s = fminf((float)tw / iw, (float)th / ih);
    tf->scale_x = tf->scale_y = s;
    tf->pad_x = 0.5f * (tw - iw * s);
    tf->pad_y = 0.5f * (th - ih * s);
  } else if (sc->resize == KESTREL_RESIZE_PAD_RIGHT) {
    double rw = ceil((double)th * iw / ih);
    rw = rw > tw ? tw : rw < 1 ? 1 : rw;
    tf->scale_x = (float)(rw / iw);
    tf->scale_y = (float)th / ih;
  } else {
    tf->scale_x = (float)tw / iw;
    tf->scale_y = (float)th / ih;
  }
}

static float clampf(float x) { return x > 255.0f ? 255.0f : (x < 0.0f ? 0.0f : x); }

/* The tensor kestrel_preprocess_image must produce for a crop already in
 * stored pixels (ox, oy, cw, ch) with the given sampling transform. */
static void oracle(const kestrel_sidecar *sc, const kestrel_image *img,
                   const fmt_info *f, int ox, int oy, int cw, int ch,
                   const kestrel_tensor *t, const kestrel_transform *stf) {
  int nhwc = sc->layout == KESTREL_LAYOUT_NHWC;
  int th = (int)(nhwc ? t->dims[1] : t->dims[2]);
  int tw = (int)(nhwc ? t->dims[2] : t->dims[3]);
  int q = t->dtype != KESTREL_DTYPE_F32 && t->quant.count == 1;
  int lo = t->dtype == KESTREL_DTYPE_I8 ? -128 : 0, hi = lo + 255;
  for (int ty = 0; ty < th; ty++)
    for (int tx = 0; tx < tw; tx++) {
      float sx0 = (tx - stf->pad_x) / stf->scale_x, sx1 = (tx + 1 - stf->pad_x) / stf->scale_x;
      float sy0 = (ty - stf->pad_y) / stf->scale_y, sy1 = (ty + 1 - stf->pad_y) / stf->scale_y;
      float cx = 0.5f * (sx0 + sx1), cy = 0.5f * (sy0 + sy1);
      int inside = !(cx < 0 || cx >= cw || cy < 0 || cy >= ch);
      float st[3] = {0, 0, 0}, rgb[3];
      if (inside && (sx1 - sx0 >= 2.0f || sy1 - sy0 >= 2.0f)) {
        int x0 = (int)floorf(sx0 + 0.5f), x1 = (int)floorf(sx1 + 0.5f);
        int y0 = (int)floorf(sy0 + 0.5f), y1 = (int)floorf(sy1 + 0.5f);
        x0 = x0 < 0 ? 0 : x0;
        y0 = y0 < 0 ? 0 : y0;
        x1 = x1 > cw ? cw : x1;
        y1 = y1 > ch ? ch : y1;
        if (x1 <= x0) {
          x0 = x0 < cw ? x0 : cw - 1;
          x1 = x0 + 1;
        }
        if (y1 <= y0) {
          y0 = y0 < ch ? y0 : ch - 1;
          y1 = y0 + 1;
        }
        uint32_t acc[3] = {0, 0, 0};
        for (int y = y0; y < y1; y++)
          for (int x = x0; x < x1; x++)
            for (int c = 0; c < 3; c++)
              acc[c] += (uint32_t)oracle_fetch(img, f, c, ox + x, oy + y);
        float inv = 1.0f / (float)((x1 - x0) * (y1 - y0));
        for (int c = 0; c < 3; c++)
          st[c] = acc[c] * inv;
      } else if (inside) {
        float fx = cx - 0.5f, fy = cy - 0.5f;
        fx = fx < 0 ? 0 : fx;
        fy = fy < 0 ? 0 : fy;
        int x0 = (int)fx, y0 = (int)fy;
        x0 = x0 > cw - 1 ? cw - 1 : x0;
        y0 = y0 > ch - 1 ? ch - 1 : y0;
        int x1 = x0 + 1 < cw ? x0 + 1 : cw - 1, y1 = y0 + 1 < ch ? y0 + 1 : ch - 1;
        float ax = fx - x0, ay = fy - y0;
        ax = ax > 1 ? 1 : ax;
        ay = ay > 1 ? 1 : ay;
        for (int c = 0; c < 3; c++) {
          float p00 = (float)oracle_fetch(img, f, c, ox + x0, oy + y0);
          float p01 = (float)oracle_fetch(img, f, c, ox + x1, oy + y0);
          float p10 = (float)oracle_fetch(img, f, c, ox + x0, oy + y1);
          float p11 = (float)oracle_fetch(img, f, c, ox + x1, oy + y1);
          float top = p00 + (p01 - p00) * ax, bot = p10 + (p11 - p10) * ax;
          st[c] = top + (bot - top) * ay;
        }
      }
      if (f->yuv) {
        const kestrel_yuv_coeffs *k = &img->yuv;
        float y = (st[0] - k->y_offset) * k->y_scale;
        float u = (st[1] - 128.0f) * k->c_scale, v = (st[2] - 128.0f) * k->c_scale;
        rgb[0] = clampf(y + k->cr_r * v);
        rgb[1] = clampf(y + k->cb_g * u + k->cr_g * v);
        rgb[2] = clampf(y + k->cb_b * u);
      } else {
        memcpy(rgb, st, sizeof(rgb));
      }
      for (int c = 0; c < 3; c++) {
        float px = rgb[sc->bgr ? 2 - c : c];
        float mul = sc->scale / sc->std[c], add = -sc->mean[c] / sc->std[c];
        size_t idx = nhwc ? ((size_t)ty * tw + tx) * 3 + c
                          : (size_t)c * tw * th + (size_t)ty * tw + tx;
        if (t->dtype == KESTREL_DTYPE_F32) {
          ((float *)t->data)[idx] = inside ? px * mul + add : sc->pad_value;
          continue;
        }
        int v;
        if (q) {
          float x = (inside ? px * mul + add : sc->pad_value) * (1.0f / t->quant.scale[0]);
          float qlo = (float)(lo - t->quant.zero_point[0]);
          float qhi = (float)(hi - t->quant.zero_point[0]);
          x = x < qlo ? qlo : x > qhi ? qhi : x;
          v = (int)lrintf(x) + t->quant.zero_point[0];
        } else {
          v = inside ? (int)lrintf(px) + lo : lo;
        }
        if (t->dtype == KESTREL_DTYPE_U8)
          ((uint8_t *)t->data)[idx] = (uint8_t)v;
        else
          ((int8_t *)t->data)[idx] = (int8_t)v;
      }
    }
}

/* --- whole driver ---------------------------------------------------------------- */

static void make_sidecar(kestrel_sidecar *sc, int tw, int th, int resize, int nhwc,
                         int bgr) {
  memset(sc, 0, sizeof(*sc));
  sc->width = tw;
  sc->height = th;
  sc->layout = nhwc ? KESTREL_LAYOUT_NHWC : KESTREL_LAYOUT_NCHW;
  sc->bgr = bgr;
  sc->scale = 1.0f / 255.0f;
  sc->mean[0] = 0.485f, sc->mean[1] = 0.456f, sc->mean[2] = 0.406f;
  sc->std[0] = 0.229f, sc->std[1] = 0.224f, sc->std[2] = 0.225f;
  sc->resize = (kestrel_resize_mode)resize;
  sc->pad_value = resize == KESTREL_RESIZE_LETTERBOX ? -1.0f : 0.0f;
}

static const char *resize_name[] = {"stretch", "letterbox", "pad-right"};

typedef struct {
  const fmt_info *f;
  int w, h, fw, fh; /* image, and the frame it shows (0: same) */
  kestrel_crop crop;
  int use_crop;
  int tw, th, resize, nhwc, bgr;
  kestrel_dtype dtype;
  int quant;
} driver_case;

/* Standalone builds have no libkestrel-nn: name dtypes here. */
static const char *dtype_text(kestrel_dtype d) {
  return d == KESTREL_DTYPE_F32 ? "f32" : d == KESTREL_DTYPE_U8 ? "u8" : "i8";
}

static void case_text(const driver_case *c, char *buf, size_t len) {
  snprintf(buf, len,
           "%s %dx%d (frame %dx%d) crop %s%d,%d %dx%d tensor %dx%d %s %s bgr=%d %s%s",
           c->f->name, c->w, c->h, c->fw, c->fh, c->use_crop ? "" : "(none) ",
           c->crop.x, c->crop.y, c->crop.width, c->crop.height, c->tw, c->th,
           resize_name[c->resize], c->nhwc ? "NHWC" : "NCHW", c->bgr,
           dtype_text(c->dtype), c->quant ? " quantized" : "");
}


static void run_case(const driver_case *c, const kn_pp_kernels *const *isas,
                     int num_isas) {
  char text[256];
  test_image ti;
  memset(&ti, 0, sizeof(ti));
  make_image(&ti, c->f, c->w, c->h);
  ti.img.frame_width = c->fw;
  ti.img.frame_height = c->fh;
  kestrel_sidecar sc;
  make_sidecar(&sc, c->tw, c->th, c->resize, c->nhwc, c->bgr);
  float qscale = 0.017f;
  int32_t qzp = c->dtype == KESTREL_DTYPE_I8 ? -3 : 120;
  kestrel_tensor t;
  memset(&t, 0, sizeof(t));
  t.dtype = c->dtype;
  t.ndim = 4;
  int64_t nchw[4] = {1, 3, c->th, c->tw}, nhwc[4] = {1, c->th, c->tw, 3};
  memcpy(t.dims, c->nhwc ? nhwc : nchw, sizeof(nchw));
  if (c->quant) {
    t.quant.axis = -1;
    t.quant.count = 1;
    t.quant.scale = &qscale;
    t.quant.zero_point = &qzp;
  }
  size_t bytes = (size_t)c->tw * c->th * 3 * (c->dtype == KESTREL_DTYPE_F32 ? 4 : 1);
  uint8_t *want = xmalloc(bytes), *got = xmalloc(bytes);
  size_t scratch_size = kestrel_preprocess_image_scratch(&ti.img, c->tw, c->th);
  void *scratch = xmalloc(scratch_size);
  kestrel_transform tf_ref, tf;
  kestrel_error err;
  case_text(c, text, sizeof(text));

  /* The reference driver against the oracle. */
  memset(want, 0xA5, bytes);
  t.data = want;
  const kestrel_crop *crop = c->use_crop ? &c->crop : NULL;
  int st = kn_preprocess_image_with(kn_pp_kernels_for(KN_ISA_REF), &sc, &ti.img, crop,
                                    &t, &tf_ref, scratch, scratch_size, &err);
  if (st != KESTREL_OK) {
    fail("%s: ref driver failed: %s", text, err.message);
    goto done;
  }
  {
    int fw = c->fw ? c->fw : c->w, fh = c->fh ? c->fh : c->h;
    int x0 = 0, y0 = 0, x1 = fw, y1 = fh;
    if (crop) {
      x0 = crop->x < 0 ? 0 : crop->x;
      y0 = crop->y < 0 ? 0 : crop->y;
      x1 = crop->x + crop->width > fw ? fw : crop->x + crop->width;
      y1 = crop->y + crop->height > fh ? fh : crop->y + crop->height;
    }
    kestrel_transform otf, stf;
    oracle_transform(&sc, x1 - x0, y1 - y0, c->tw, c->th, &otf);
    if (memcmp(&otf, &tf_ref, sizeof(otf)))
      fail("%s: transform differs from the definition", text);
    /* Stored crop: the smallest stored rectangle covering the frame crop. */
    int64_t sx0 = (int64_t)x0 * c->w / fw, sy0 = (int64_t)y0 * c->h / fh;
    int64_t sx1 = ((int64_t)x1 * c->w + fw - 1) / fw;
    int64_t sy1 = ((int64_t)y1 * c->h + fh - 1) / fh;
    if (sx1 <= sx0)
      sx1 = sx0 + 1;
    if (sy1 <= sy0)
      sy1 = sy0 + 1;
    if (sx1 > c->w) {
      sx1 = c->w;
      sx0 = sx0 < sx1 ? sx0 : sx1 - 1;
    }
    if (sy1 > c->h) {
      sy1 = c->h;
      sy0 = sy0 < sy1 ? sy0 : sy1 - 1;
    }
    oracle_transform(&sc, (int)(sx1 - sx0), (int)(sy1 - sy0), c->tw, c->th, &stf);
    t.data = got;
    memset(got, 0x3C, bytes);
    oracle(&sc, &ti.img, c->f, (int)sx0, (int)sy0, (int)(sx1 - sx0), (int)(sy1 - sy0),
           &t, &stf);
    if (memcmp(want, got, bytes)) {
      size_t i = 0;
      while (want[i] == got[i])
        i++;
      fail("%s: reference differs from the oracle (first at byte %zu)", text, i);
    }
  }
  /* Every ISA against the reference. */
  for (int k = 0; k < num_isas; k++) {
    if (isas[k]->isa == KN_ISA_REF)
      continue;
    memset(got, 0x3C, bytes);
    t.data = got;
    st = kn_preprocess_image_with(isas[k], &sc, &ti.img, crop, &t, &tf, scratch,
                                  scratch_size, &err);
    if (st != KESTREL_OK)
      fail("%s: %s driver failed: %s", text, kn_isa_name(isas[k]->isa), err.message);
    else if (memcmp(want, got, bytes) || memcmp(&tf, &tf_ref, sizeof(tf)))
      fail("%s: %s differs from the reference", text, kn_isa_name(isas[k]->isa));
  }
done:
  free(want);
  free(got);
  free(scratch);
  free_image(&ti);
}

static void test_driver(const kn_pp_kernels *const *isas, int num_isas) {
  static const int sizes[][2] = {{1, 1}, {2, 2}, {7, 5}, {33, 17}, {64, 48},
                                 {161, 97}, {400, 226}, {1280, 720}};
  static const int tensors[][2] = {{1, 1}, {5, 3}, {16, 16}, {48, 32}, {128, 128},
                                   {192, 192}};
  static const kestrel_dtype dtypes[] = {KESTREL_DTYPE_F32, KESTREL_DTYPE_U8,
                                         KESTREL_DTYPE_I8};
  int cases = 0, limit = quick ? 150 : 900;
  for (int i = 0; i < limit; i++) {
    driver_case c;
    memset(&c, 0, sizeof(c));
    c.f = &formats[(size_t)i % NUM_FORMATS];
    int z = rnd_range(0, (int)(sizeof(sizes) / sizeof(sizes[0])) - 1);
    if (quick && z == 7)
      z = 5;
    c.w = sizes[z][0] + (i % 3 == 0 ? rnd_range(0, 3) : 0);
    c.h = sizes[z][1] + (i % 5 == 0 ? rnd_range(0, 3) : 0);
    int tz = rnd_range(0, (int)(sizeof(tensors) / sizeof(tensors[0])) - 1);
    c.tw = tensors[tz][0];
    c.th = tensors[tz][1];
    c.resize = rnd_range(0, 2);
    c.nhwc = (int)(rnd() & 1);
    c.bgr = (int)(rnd() & 1);
    c.dtype = dtypes[rnd_range(0, 2)];
    c.quant = c.dtype != KESTREL_DTYPE_F32 && (rnd() & 1);
    if (i % 4 == 1) {
      /* A reduced view: the image shows a frame 2, 4 or 8 times larger. */
      int s = 1 << rnd_range(1, 3);
      c.fw = c.w * s - rnd_range(0, s - 1);
      c.fh = c.h * s - rnd_range(0, s - 1);
    }
    int fw = c.fw ? c.fw : c.w, fh = c.fh ? c.fh : c.h;
    if (i % 3 == 2) {
      c.use_crop = 1;
      c.crop.x = rnd_range(-3, fw - 1);
      c.crop.y = rnd_range(-3, fh - 1);
      c.crop.width = rnd_range(1, fw + 2);
      c.crop.height = rnd_range(1, fh + 2);
      if (c.crop.x + c.crop.width <= 0 || c.crop.y + c.crop.height <= 0)
        c.crop.x = c.crop.y = 0;
    }
    run_case(&c, isas, num_isas);
    cases++;
  }
  /* The frame path's own shapes: 1080p (and its 1/8 view) to BlazeFace. */
  for (size_t f = 0; f < NUM_FORMATS; f++) {
    driver_case c;
    memset(&c, 0, sizeof(c));
    c.f = &formats[f];
    c.w = quick ? 240 : 1920;
    c.h = quick ? 135 : 1080;
    c.fw = 1920;
    c.fh = 1080;
    c.tw = c.th = 192;
    c.resize = KESTREL_RESIZE_LETTERBOX;
    c.nhwc = 1;
    c.dtype = KESTREL_DTYPE_F32;
    run_case(&c, isas, num_isas);
    cases++;
  }
  printf("driver: %d cases\n", cases);
}

static void test_refusals(void) {
  test_image ti;
  memset(&ti, 0, sizeof(ti));
  make_image(&ti, &formats[4], 32, 16);
  kestrel_sidecar sc;
  make_sidecar(&sc, 8, 8, 0, 0, 0);
  float data[3 * 8 * 8];
  kestrel_tensor t = {.dtype = KESTREL_DTYPE_F32, .ndim = 4, .dims = {1, 3, 8, 8},
                      .data = data};
  kestrel_transform tf;
  kestrel_error err;
  kestrel_crop outside = {40, 0, 4, 4}, empty = {0, 0, 0, 5};
  if (kestrel_preprocess_image(&sc, &ti.img, &outside, &t, &tf, NULL, 0, &err) ==
      KESTREL_OK)
    fail("a crop outside the frame was accepted");
  if (kestrel_preprocess_image(&sc, &ti.img, &empty, &t, &tf, NULL, 0, &err) ==
      KESTREL_OK)
    fail("an empty crop was accepted");
  char small[16];
  if (kestrel_preprocess_image(&sc, &ti.img, NULL, &t, &tf, small, sizeof(small),
                               &err) == KESTREL_OK)
    fail("a too small scratch was accepted");
  t.dims[1] = 4;
  if (kestrel_preprocess_image(&sc, &ti.img, NULL, &t, &tf, NULL, 0, &err) ==
      KESTREL_OK)
    fail("a 4-channel tensor was accepted");
  const uint8_t *planes[3] = {ti.mem[0], ti.mem[1], NULL};
  size_t strides[3] = {64, 16, 16};
  kestrel_image img;
  if (kestrel_image_init(&img, KESTREL_PIXEL_I420, 32, 16, planes, strides) ==
      KESTREL_OK)
    fail("an I420 image without a V plane was accepted");
  planes[2] = ti.mem[2];
  strides[0] = 31;
  if (kestrel_image_init(&img, KESTREL_PIXEL_I420, 32, 16, planes, strides) ==
      KESTREL_OK)
    fail("a stride shorter than a row was accepted");
  free_image(&ti);
}

int main(void) {
  const char *q = getenv("KESTREL_TEST_QUICK");
  quick = q && *q == '1';
  const kn_pp_kernels *isas[3];
  int n = 0;
  static const kn_isa all[] = {KN_ISA_REF, KN_ISA_AVX2, KN_ISA_NEON};
  for (int i = 0; i < 3; i++)
    if (kn_pp_kernels_for(all[i]))
      isas[n++] = kn_pp_kernels_for(all[i]);
  for (int i = 0; i < n; i++) {
    if (isas[i]->isa == KN_ISA_REF)
      continue;
    int before = failures;
    test_rowacc(isas[i]);
    test_output(isas[i]);
    if (failures == before)
      printf("%s: preprocessing kernels match the reference\n", kn_isa_name(isas[i]->isa));
  }
  test_driver(isas, n);
  test_refusals();
  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return failures > 100 ? 100 : failures;
  }
  for (int i = 0; i < n; i++)
    printf("%s: all preprocessing paths match the reference\n",
           kn_isa_name(isas[i]->isa));
  return 0;
}
