/* kestrel_preprocess_image: the driver of the fused preprocessing kernels.
 *
 * Geometry is kestrel_preprocess's: every tensor pixel maps back to a
 * footprint of the crop; it is averaged when either axis shrinks by 2x or
 * more, else sampled bilinearly with half-pixel centres. The driver walks
 * tensor rows; for an averaged row the ISA's rowacc sums the footprint's
 * source rows of each plane into uint32 accumulators (only the crop's
 * columns, and chroma rows with their multiplicity at luma resolution),
 * then exact integer column sums give each tensor pixel's mean, and the
 * ISA's output pass converts, normalizes and quantizes a run of pixels
 * into the tensor. No buffer larger than a few source rows exists.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/preprocess.h>

#include "preprocess_kernels.h"

#define MAX_SIDE 65535
#define MAX_TENSOR_SIDE 16384
#define ALIGN 64

/* --- kernel tables --------------------------------------------------------- */

static const kn_pp_kernels ref_kernels = {KN_ISA_REF, kestrel_u8_rowacc__ref,
                                          kestrel_pp_output__ref};
#ifdef KESTREL_HAVE_AVX2
static const kn_pp_kernels avx2_kernels = {
    KN_ISA_AVX2, kestrel_u8_rowacc__avx2, kestrel_pp_output__avx2};
#endif
#ifdef KESTREL_HAVE_NEON
static const kn_pp_kernels neon_kernels = {
    KN_ISA_NEON, kestrel_u8_rowacc__neon, kestrel_pp_output__neon};
#endif

const kn_pp_kernels *kn_pp_kernels_for(kn_isa isa) {
  /* kn_kernels_for knows whether the CPU runs the ISA. */
  if (!kn_kernels_for(isa))
    return NULL;
  switch (isa) {
  case KN_ISA_REF:
    return &ref_kernels;
#ifdef KESTREL_HAVE_AVX2
  case KN_ISA_AVX2:
    return &avx2_kernels;
#endif
#ifdef KESTREL_HAVE_NEON
  case KN_ISA_NEON:
    return &neon_kernels;
#endif
  default:
    return NULL;
  }
}

const kn_pp_kernels *kn_pp_kernels_get(void) {
  const kn_pp_kernels *k = kn_pp_kernels_for(kn_isa_detect());
  return k ? k : &ref_kernels;
}

/* --- pixel formats ------------------------------------------------------------ */

/* Where channel c (R,G,B or Y,U,V) of luma-grid pixel (X, Y) lives:
 * planes[plane][(Y >> plane_sy) * stride + (X >> sx) * unit + off]. */
typedef struct {
  int plane, sx, unit, off;
} channel_layout;

typedef struct {
  int yuv;
  int num_planes;
  int plane_sy[3];
  channel_layout ch[3];
} format_layout;

static int get_layout(kestrel_pixel_format f, format_layout *l) {
  static const format_layout layouts[] = {
      [KESTREL_PIXEL_RGB] = {0, 1, {0}, {{0, 0, 3, 0}, {0, 0, 3, 1}, {0, 0, 3, 2}}},
      [KESTREL_PIXEL_BGR] = {0, 1, {0}, {{0, 0, 3, 2}, {0, 0, 3, 1}, {0, 0, 3, 0}}},
      [KESTREL_PIXEL_RGBX] = {0, 1, {0}, {{0, 0, 4, 0}, {0, 0, 4, 1}, {0, 0, 4, 2}}},
      [KESTREL_PIXEL_BGRX] = {0, 1, {0}, {{0, 0, 4, 2}, {0, 0, 4, 1}, {0, 0, 4, 0}}},
      [KESTREL_PIXEL_I420] = {1, 3, {0, 1, 1}, {{0, 0, 1, 0}, {1, 1, 1, 0}, {2, 1, 1, 0}}},
      [KESTREL_PIXEL_NV12] = {1, 2, {0, 1}, {{0, 0, 1, 0}, {1, 1, 2, 0}, {1, 1, 2, 1}}},
      [KESTREL_PIXEL_YUY2] = {1, 1, {0}, {{0, 0, 2, 0}, {0, 1, 4, 1}, {0, 1, 4, 3}}},
      [KESTREL_PIXEL_Y42B] = {1, 3, {0, 0, 0}, {{0, 0, 1, 0}, {1, 1, 1, 0}, {2, 1, 1, 0}}},
      [KESTREL_PIXEL_Y444] = {1, 3, {0, 0, 0}, {{0, 0, 1, 0}, {1, 0, 1, 0}, {2, 0, 1, 0}}},
  };
  if ((int)f < 0 || (size_t)f >= sizeof(layouts) / sizeof(layouts[0]))
    return 0;
  *l = layouts[f];
  return 1;
}

static void set_error(kestrel_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(kestrel_error *err, const char *fmt, ...) {
  if (!err)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
}

void kestrel_image_set_yuv(kestrel_image *img, double kr, double kb,
                           int full_range) {
  double kg = 1.0 - kr - kb;
  kestrel_yuv_coeffs *c = &img->yuv;
  if (full_range) {
    c->y_offset = 0.0f;
    c->y_scale = 1.0f;
    c->c_scale = 1.0f;
  } else {
    c->y_offset = 16.0f;
    c->y_scale = 255.0f / 219.0f;
    c->c_scale = 255.0f / 224.0f;
  }
  c->cr_r = (float)(2.0 * (1.0 - kr));
  c->cb_b = (float)(2.0 * (1.0 - kb));
  c->cb_g = (float)(-2.0 * kb * (1.0 - kb) / kg);
  c->cr_g = (float)(-2.0 * kr * (1.0 - kr) / kg);
}

kestrel_status kestrel_image_init(kestrel_image *img,
                                  kestrel_pixel_format format, int width,
                                  int height, const uint8_t *const planes[3],
                                  const size_t strides[3]) {
  format_layout l;
  memset(img, 0, sizeof(*img));
  if (!get_layout(format, &l) || width < 1 || height < 1 ||
      width > MAX_SIDE || height > MAX_SIDE || !planes || !strides)
    return KESTREL_ERROR_INVALID_ARGUMENT;
  for (int p = 0; p < l.num_planes; p++)
    if (!planes[p])
      return KESTREL_ERROR_INVALID_ARGUMENT;
  /* Each row must hold the last pixel of every channel stored in it. */
  for (int c = 0; c < 3; c++) {
    const channel_layout *ch = &l.ch[c];
    size_t need = (size_t)((width - 1) >> ch->sx) * (size_t)ch->unit +
                  (size_t)ch->off + 1;
    if (strides[ch->plane] < need)
      return KESTREL_ERROR_INVALID_ARGUMENT;
  }
  img->format = format;
  img->width = width;
  img->height = height;
  for (int p = 0; p < 3; p++) {
    img->planes[p] = p < l.num_planes ? planes[p] : NULL;
    img->strides[p] = p < l.num_planes ? strides[p] : 0;
  }
  kestrel_image_set_yuv(img, 0.299, 0.114, 0);
  return KESTREL_OK;
}

/* --- geometry (also used by nn/src/decode/sidecar.c) -------------------------- */

void kn_preprocess_make_transform(const kestrel_sidecar *sc, int iw, int ih,
                                  int tw, int th, kestrel_transform *tf) {
  tf->image_width = iw;
  tf->image_height = ih;
  tf->tensor_width = tw;
  tf->tensor_height = th;
  tf->pad_x = tf->pad_y = 0;
  switch (sc->resize) {
  case KESTREL_RESIZE_LETTERBOX: {
    float s = fminf((float)tw / iw, (float)th / ih);
    tf->scale_x = tf->scale_y = s;
    tf->pad_x = 0.5f * (tw - iw * s);
    tf->pad_y = 0.5f * (th - ih * s);
    break;
  }
  case KESTREL_RESIZE_PAD_RIGHT: {
    /* PaddleOCR cls: height fills the tensor, width follows the aspect
     * (ceil) up to the tensor width; the rest is padding. */
    double rw = ceil((double)th * iw / ih);
    if (rw > tw)
      rw = tw;
    if (rw < 1)
      rw = 1;
    tf->scale_x = (float)(rw / iw);
    tf->scale_y = (float)th / ih;
    break;
  }
  default:
    tf->scale_x = (float)tw / iw;
    tf->scale_y = (float)th / ih;
    break;
  }
}

/* Where tensor column (or row) t samples the crop along one axis. */
typedef struct {
  int inside, area; /* area: the footprint spans 2 pixels or more */
  int a0, a1;       /* footprint [a0, a1) */
  int b0, b1;       /* bilinear taps */
  float weight;     /* of b1 */
} axis_sample;

static void sample_axis(int t, float pad, float scale, int size,
                        axis_sample *s) {
  float s0 = (t - pad) / scale, s1 = (t + 1 - pad) / scale;
  float c = 0.5f * (s0 + s1);
  memset(s, 0, sizeof(*s));
  s->inside = !(c < 0 || c >= size);
  s->area = s1 - s0 >= 2.0f;
  if (!s->inside)
    return;
  int a0 = (int)floorf(s0 + 0.5f), a1 = (int)floorf(s1 + 0.5f);
  if (a0 < 0)
    a0 = 0;
  if (a1 > size)
    a1 = size;
  if (a1 <= a0) {
    a0 = a0 < size ? a0 : size - 1;
    a1 = a0 + 1;
  }
  s->a0 = a0;
  s->a1 = a1;
  float f = c - 0.5f;
  if (f < 0)
    f = 0;
  int b0 = (int)f;
  if (b0 > size - 1)
    b0 = size - 1;
  s->b0 = b0;
  s->b1 = b0 + 1 < size ? b0 + 1 : size - 1;
  s->weight = f - b0;
  if (s->weight > 1)
    s->weight = 1;
}

/* --- scratch ------------------------------------------------------------------ */

static size_t align_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

/* One accumulator row per plane: at most 4 bytes per luma pixel + slack. */
static size_t acc_elems(int width) { return (size_t)width * 4 + 16; }

size_t kestrel_preprocess_image_scratch(const kestrel_image *img,
                                        int tensor_width, int tensor_height) {
  if (!img || img->width < 1 || tensor_width < 1 || tensor_height < 1)
    return 0;
  return align_up((size_t)tensor_width * sizeof(axis_sample)) +
         align_up((size_t)tensor_height * sizeof(axis_sample)) +
         3 * align_up(acc_elems(img->width) * sizeof(uint32_t)) +
         3 * align_up((size_t)tensor_width * sizeof(float)) + ALIGN;
}

/* --- the pass ------------------------------------------------------------------- */

typedef struct {
  const kestrel_image *img;
  format_layout l;
  int ox, oy, cw, ch; /* crop in stored pixels */
  uint32_t *acc[3];
  size_t start[3], count[3]; /* accumulated bytes of each plane's row */
} pass_state;

/* Sum of channel c's accumulator over luma columns [x0, x1) (absolute). */
static uint64_t column_sum(const pass_state *s, int c, int x0, int x1) {
  const channel_layout *ch = &s->l.ch[c];
  const uint32_t *acc = s->acc[ch->plane];
  size_t base = s->start[ch->plane];
  uint64_t sum = 0;
  if (ch->sx == 0) {
    const uint32_t *p = acc + (size_t)x0 * ch->unit + ch->off - base;
    for (int x = x0; x < x1; x++, p += ch->unit)
      sum += *p;
    return sum;
  }
  /* Subsampled: each sample counts once per luma column it covers. */
  for (int k = x0 >> ch->sx; k <= (x1 - 1) >> ch->sx; k++) {
    int lo = k << ch->sx, hi = (k + 1) << ch->sx;
    int w = (hi < x1 ? hi : x1) - (lo > x0 ? lo : x0);
    sum += (uint64_t)w * acc[(size_t)k * ch->unit + ch->off - base];
  }
  return sum;
}

static inline float fetch(const pass_state *s, int c, int x, int y) {
  const channel_layout *ch = &s->l.ch[c];
  const kestrel_image *img = s->img;
  return (float)img->planes[ch->plane]
      [(size_t)(y >> s->l.plane_sy[ch->plane]) * img->strides[ch->plane] +
       (size_t)(x >> ch->sx) * ch->unit + ch->off];
}

/* Sums source rows [y0, y1) (absolute, luma grid) of every plane. */
static void accumulate_rows(const kn_pp_kernels *k, pass_state *s, int y0,
                            int y1) {
  for (int p = 0; p < s->l.num_planes; p++) {
    int sy = s->l.plane_sy[p];
    int first = 1;
    for (int r = y0 >> sy; r <= (y1 - 1) >> sy; r++) {
      int lo = r << sy, hi = (r + 1) << sy;
      int w = (hi < y1 ? hi : y1) - (lo > y0 ? lo : y0);
      const uint8_t *row =
          s->img->planes[p] + (size_t)r * s->img->strides[p] + s->start[p];
      k->rowacc(row, s->count[p], (uint32_t)w, s->acc[p], first);
      first = 0;
    }
  }
}

static void write_pad(const kn_pp_output *o, void *base, size_t first,
                      size_t n, float pad_f32, int pad_int) {
  for (size_t i = first; i < first + n; i++)
    for (int c = 0; c < 3; c++) {
      size_t idx = o->nhwc ? i * 3 + (size_t)c : (size_t)c * o->channel_stride + i;
      if (o->dtype == KN_PP_F32)
        ((float *)base)[idx] = pad_f32;
      else if (o->dtype == KN_PP_U8)
        ((uint8_t *)base)[idx] = (uint8_t)pad_int;
      else
        ((int8_t *)base)[idx] = (int8_t)pad_int;
    }
}

int kn_preprocess_image_with(const kn_pp_kernels *k, const kestrel_sidecar *sc,
                             const kestrel_image *img, const kestrel_crop *crop,
                             kestrel_tensor *input, kestrel_transform *tf,
                             void *scratch, size_t scratch_size,
                             kestrel_error *err) {
  pass_state s;
  memset(&s, 0, sizeof(s));
  if (!k || !sc || !img || !input || !input->data || !tf) {
    set_error(err, "preprocess: NULL argument");
    return KESTREL_ERROR_INVALID_ARGUMENT;
  }
  if (!get_layout(img->format, &s.l) || img->width < 1 || img->height < 1 ||
      img->width > MAX_SIDE || img->height > MAX_SIDE) {
    set_error(err, "preprocess: bad image (format %d, %dx%d)", (int)img->format,
              img->width, img->height);
    return KESTREL_ERROR_INVALID_ARGUMENT;
  }
  for (int p = 0; p < s.l.num_planes; p++)
    if (!img->planes[p]) {
      set_error(err, "preprocess: plane %d missing", p);
      return KESTREL_ERROR_INVALID_ARGUMENT;
    }
  s.img = img;
  int fw = img->frame_width > 0 ? img->frame_width : img->width;
  int fh = img->frame_height > 0 ? img->frame_height : img->height;
  if (fw > MAX_SIDE || fh > MAX_SIDE) {
    set_error(err, "preprocess: frame size %dx%d out of range", fw, fh);
    return KESTREL_ERROR_INVALID_ARGUMENT;
  }

  /* The crop in frame pixels, clipped. */
  int64_t cx0 = 0, cy0 = 0, cx1 = fw, cy1 = fh;
  if (crop) {
    cx0 = crop->x > 0 ? crop->x : 0;
    cy0 = crop->y > 0 ? crop->y : 0;
    cx1 = (int64_t)crop->x + crop->width;
    cy1 = (int64_t)crop->y + crop->height;
    if (cx1 > fw)
      cx1 = fw;
    if (cy1 > fh)
      cy1 = fh;
    if (crop->width <= 0 || crop->height <= 0 || cx1 <= cx0 || cy1 <= cy0) {
      set_error(err, "preprocess: crop %d,%d %dx%d lies outside the %dx%d frame",
                crop->x, crop->y, crop->width, crop->height, fw, fh);
      return KESTREL_ERROR_INVALID_ARGUMENT;
    }
  }
  /* ... and in stored pixels (the same unless the image is a reduced view):
   * the smallest stored rectangle covering it. */
  int64_t sx0 = cx0 * img->width / fw, sy0 = cy0 * img->height / fh;
  int64_t sx1 = (cx1 * img->width + fw - 1) / fw;
  int64_t sy1 = (cy1 * img->height + fh - 1) / fh;
  if (sx1 <= sx0)
    sx1 = sx0 + 1;
  if (sy1 <= sy0)
    sy1 = sy0 + 1;
  if (sx1 > img->width) {
    sx1 = img->width;
    sx0 = sx0 < sx1 ? sx0 : sx1 - 1;
  }
  if (sy1 > img->height) {
    sy1 = img->height;
    sy0 = sy0 < sy1 ? sy0 : sy1 - 1;
  }
  s.ox = (int)sx0;
  s.oy = (int)sy0;
  s.cw = (int)(sx1 - sx0);
  s.ch = (int)(sy1 - sy0);

  if (input->ndim != 4) {
    set_error(err, "preprocess: input '%s' has rank %d, want 4",
              input->name ? input->name : "", input->ndim);
    return KESTREL_ERROR_SHAPE;
  }
  int nhwc = sc->layout == KESTREL_LAYOUT_NHWC;
  int64_t c_dim = nhwc ? input->dims[3] : input->dims[1];
  int64_t th64 = nhwc ? input->dims[1] : input->dims[2];
  int64_t tw64 = nhwc ? input->dims[2] : input->dims[3];
  if (input->dims[0] != 1 || c_dim != 3 || th64 < 1 || tw64 < 1 ||
      th64 > MAX_TENSOR_SIDE || tw64 > MAX_TENSOR_SIDE) {
    set_error(err, "preprocess: input '%s' is not a 3-channel %s image",
              input->name ? input->name : "", nhwc ? "NHWC" : "NCHW");
    return KESTREL_ERROR_SHAPE;
  }
  int tw = (int)tw64, th = (int)th64;

  kn_pp_output o;
  memset(&o, 0, sizeof(o));
  switch (input->dtype) {
  case KESTREL_DTYPE_F32:
    o.dtype = KN_PP_F32;
    break;
  case KESTREL_DTYPE_U8:
    o.dtype = KN_PP_U8;
    break;
  case KESTREL_DTYPE_I8:
    o.dtype = KN_PP_I8;
    break;
  default:
    set_error(err, "preprocess: input '%s' dtype %d not supported",
              input->name ? input->name : "", (int)input->dtype);
    return KESTREL_ERROR_UNSUPPORTED;
  }
  int lo = o.dtype == KN_PP_I8 ? -128 : 0, hi = o.dtype == KN_PP_I8 ? 127 : 255;
  if (o.dtype != KN_PP_F32 && input->quant.count == 1 && input->quant.scale &&
      input->quant.zero_point) {
    float qs = input->quant.scale[0];
    int32_t zp = input->quant.zero_point[0];
    if (!(qs > 0.0f) || !isfinite(qs) || zp < lo || zp > hi) {
      set_error(err, "preprocess: input '%s' has quantization scale %g zero "
                "point %d", input->name ? input->name : "", (double)qs, (int)zp);
      return KESTREL_ERROR_UNSUPPORTED;
    }
    o.quant = 1;
    o.qinv = 1.0f / qs;
    o.zero_point = zp;
  }
  for (int c = 0; c < 3; c++) {
    o.mul[c] = sc->scale / sc->std[c];
    o.add[c] = -sc->mean[c] / sc->std[c];
    o.source[c] = sc->bgr ? 2 - c : c;
  }
  o.yuv = s.l.yuv;
  o.y_offset = img->yuv.y_offset;
  o.y_scale = img->yuv.y_scale;
  o.c_scale = img->yuv.c_scale;
  o.cr_r = img->yuv.cr_r;
  o.cb_g = img->yuv.cb_g;
  o.cr_g = img->yuv.cr_g;
  o.cb_b = img->yuv.cb_b;
  o.nhwc = nhwc;
  o.channel_stride = (size_t)tw * th;
  int pad_int = lo;
  if (o.quant) {
    float x = sc->pad_value * o.qinv;
    float qlo = (float)(lo - o.zero_point), qhi = (float)(hi - o.zero_point);
    x = x < qlo ? qlo : x;
    x = x > qhi ? qhi : x;
    pad_int = (int)lrintf(x) + o.zero_point;
  }

  /* Scratch. */
  size_t need = kestrel_preprocess_image_scratch(img, tw, th);
  void *owned = NULL;
  if (!scratch) {
    owned = scratch = malloc(need);
    scratch_size = need;
    if (!owned) {
      set_error(err, "preprocess: out of memory (%zu bytes of scratch)", need);
      return KESTREL_ERROR_OUT_OF_MEMORY;
    }
  }
  if (scratch_size < need) {
    set_error(err, "preprocess: scratch of %zu bytes, need %zu", scratch_size,
              need);
    return KESTREL_ERROR_INVALID_ARGUMENT;
  }
  uint8_t *sp = (uint8_t *)(((uintptr_t)scratch + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
  axis_sample *xtab = (axis_sample *)sp;
  sp += align_up((size_t)tw * sizeof(axis_sample));
  axis_sample *ytab = (axis_sample *)sp;
  sp += align_up((size_t)th * sizeof(axis_sample));
  for (int p = 0; p < 3; p++) {
    s.acc[p] = (uint32_t *)sp;
    sp += align_up(acc_elems(img->width) * sizeof(uint32_t));
  }
  float *vals[3];
  for (int c = 0; c < 3; c++) {
    vals[c] = (float *)sp;
    sp += align_up((size_t)tw * sizeof(float));
  }

  /* Bytes of each plane's rows the crop touches. */
  for (int p = 0; p < s.l.num_planes; p++) {
    size_t first = SIZE_MAX, end = 0;
    for (int c = 0; c < 3; c++) {
      const channel_layout *ch = &s.l.ch[c];
      if (ch->plane != p)
        continue;
      size_t b0 = (size_t)(s.ox >> ch->sx) * ch->unit + ch->off;
      size_t b1 = (size_t)((s.ox + s.cw - 1) >> ch->sx) * ch->unit + ch->off + 1;
      first = b0 < first ? b0 : first;
      end = b1 > end ? b1 : end;
    }
    s.start[p] = first;
    s.count[p] = end - first;
  }

  kn_preprocess_make_transform(sc, (int)(cx1 - cx0), (int)(cy1 - cy0), tw, th,
                               tf);
  kestrel_transform stf;
  kn_preprocess_make_transform(sc, s.cw, s.ch, tw, th, &stf);
  int x_lo = tw, x_hi = 0, x_any_area = 0;
  for (int t = 0; t < tw; t++) {
    sample_axis(t, stf.pad_x, stf.scale_x, s.cw, &xtab[t]);
    if (xtab[t].inside) {
      x_lo = t < x_lo ? t : x_lo;
      x_hi = t + 1;
      x_any_area |= xtab[t].area;
    }
  }
  for (int t = 0; t < th; t++)
    sample_axis(t, stf.pad_y, stf.scale_y, s.ch, &ytab[t]);

  size_t esize = o.dtype == KN_PP_F32 ? 4 : 1;
  for (int ty = 0; ty < th; ty++) {
    const axis_sample *ys = &ytab[ty];
    size_t row0 = (size_t)ty * tw;
    if (!ys->inside || x_hi <= x_lo) {
      write_pad(&o, input->data, row0, (size_t)tw, sc->pad_value, pad_int);
      continue;
    }
    write_pad(&o, input->data, row0, (size_t)x_lo, sc->pad_value, pad_int);
    write_pad(&o, input->data, row0 + (size_t)x_hi, (size_t)(tw - x_hi),
              sc->pad_value, pad_int);
    if (ys->area || x_any_area)
      accumulate_rows(k, &s, s.oy + ys->a0, s.oy + ys->a1);
    int ny = ys->a1 - ys->a0;
    for (int tx = x_lo; tx < x_hi; tx++) {
      const axis_sample *xs = &xtab[tx];
      size_t i = (size_t)(tx - x_lo);
      if (ys->area || xs->area) {
        float inv = 1.0f / (float)((xs->a1 - xs->a0) * ny);
        for (int c = 0; c < 3; c++)
          vals[c][i] = (float)column_sum(&s, c, s.ox + xs->a0, s.ox + xs->a1) * inv;
      } else {
        int x0 = s.ox + xs->b0, x1 = s.ox + xs->b1;
        int y0 = s.oy + ys->b0, y1 = s.oy + ys->b1;
        for (int c = 0; c < 3; c++) {
          float p00 = fetch(&s, c, x0, y0), p01 = fetch(&s, c, x1, y0);
          float p10 = fetch(&s, c, x0, y1), p11 = fetch(&s, c, x1, y1);
          float top = p00 + (p01 - p00) * xs->weight;
          float bot = p10 + (p11 - p10) * xs->weight;
          vals[c][i] = top + (bot - top) * ys->weight;
        }
      }
    }
    size_t first = row0 + (size_t)x_lo;
    k->output(&o, vals[0], vals[1], vals[2], (size_t)(x_hi - x_lo),
              (uint8_t *)input->data + (nhwc ? first * 3 : first) * esize);
  }
  free(owned);
  return KESTREL_OK;
}

kestrel_status kestrel_preprocess_image(const kestrel_sidecar *sc,
                                        const kestrel_image *img,
                                        const kestrel_crop *crop,
                                        kestrel_tensor *input,
                                        kestrel_transform *tf, void *scratch,
                                        size_t scratch_size,
                                        kestrel_error *err) {
  return (kestrel_status)kn_preprocess_image_with(
      kn_pp_kernels_get(), sc, img, crop, input, tf, scratch, scratch_size, err);
}
