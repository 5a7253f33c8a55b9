/* Raw frame -> model input tensor without an intermediate RGB image.
 *
 * Each tensor pixel maps back to a footprint in the crop (the inverse of the
 * kestrel_transform the engine's decoders use). The footprint is averaged
 * when shrinking by 2x or more, else sampled bilinearly, exactly as
 * kestrel_preprocess does on RGB images; only the pixels a tensor pixel
 * needs are read, in the frame's own format. YUV is averaged/interpolated
 * in YUV and converted once per tensor pixel (the conversion is affine, so
 * this equals converting first, except for clamping). The fused SIMD
 * version of this file belongs to the frame-path work. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kestrelframe.h"

#define MAX_TENSOR_SIDE 16384

gboolean
kestrel_frame_format_supported (GstVideoFormat format)
{
  switch (format) {
    case GST_VIDEO_FORMAT_I420:
    case GST_VIDEO_FORMAT_NV12:
    case GST_VIDEO_FORMAT_YUY2:
    case GST_VIDEO_FORMAT_RGB:
    case GST_VIDEO_FORMAT_BGR:
    case GST_VIDEO_FORMAT_RGBx:
    case GST_VIDEO_FORMAT_BGRx:
      return TRUE;
    default:
      return FALSE;
  }
}

static gboolean
format_is_yuv (GstVideoFormat format)
{
  return format == GST_VIDEO_FORMAT_I420 || format == GST_VIDEO_FORMAT_NV12
      || format == GST_VIDEO_FORMAT_YUY2;
}

gboolean
kestrel_frame_init (KestrelFrame * frame, GstVideoFormat format, gint width,
    gint height, const guint8 * const data[3], const gint stride[3],
    GstVideoColorMatrix matrix, GstVideoColorRange range)
{
  gdouble kr, kb, kg;

  memset (frame, 0, sizeof (*frame));
  if (!kestrel_frame_format_supported (format) || width < 1 || height < 1)
    return FALSE;
  frame->format = format;
  frame->width = width;
  frame->height = height;
  for (gint i = 0; i < 3; i++) {
    frame->data[i] = data[i];
    frame->stride[i] = stride[i];
  }
  if (!format_is_yuv (format))
    return TRUE;

  /* Unknown or RGB matrices on YUV data: assume what cameras send. */
  if (!gst_video_color_matrix_get_Kr_Kb (matrix, &kr, &kb)) {
    kr = 0.299;
    kb = 0.114;
  }
  kg = 1.0 - kr - kb;
  if (range == GST_VIDEO_COLOR_RANGE_0_255) {
    frame->y_offset = 0.0f;
    frame->y_scale = 1.0f;
    frame->c_scale = 1.0f;
  } else {
    frame->y_offset = 16.0f;
    frame->y_scale = 255.0f / 219.0f;
    frame->c_scale = 255.0f / 224.0f;
  }
  frame->cr_r = (gfloat) (2.0 * (1.0 - kr));
  frame->cb_b = (gfloat) (2.0 * (1.0 - kb));
  frame->cb_g = (gfloat) (-2.0 * kb * (1.0 - kb) / kg);
  frame->cr_g = (gfloat) (-2.0 * kr * (1.0 - kr) / kg);
  return TRUE;
}

gboolean
kestrel_frame_init_from_video_frame (KestrelFrame * frame,
    const GstVideoFrame * video_frame)
{
  const GstVideoInfo *info = &video_frame->info;
  const guint8 *data[3] = { NULL, NULL, NULL };
  gint stride[3] = { 0, 0, 0 };

  for (guint i = 0; i < GST_VIDEO_FRAME_N_PLANES (video_frame) && i < 3; i++) {
    data[i] = GST_VIDEO_FRAME_PLANE_DATA (video_frame, i);
    stride[i] = GST_VIDEO_FRAME_PLANE_STRIDE (video_frame, i);
  }
  return kestrel_frame_init (frame, GST_VIDEO_INFO_FORMAT (info),
      GST_VIDEO_INFO_WIDTH (info), GST_VIDEO_INFO_HEIGHT (info), data, stride,
      info->colorimetry.matrix, info->colorimetry.range);
}

gboolean
kestrel_rect_clip (KestrelRect * rect, gint width, gint height)
{
  gint64 x0 = MAX (rect->x, 0), y0 = MAX (rect->y, 0);
  gint64 x1 = MIN ((gint64) rect->x + rect->width, (gint64) width);
  gint64 y1 = MIN ((gint64) rect->y + rect->height, (gint64) height);

  if (rect->width <= 0 || rect->height <= 0 || x1 <= x0 || y1 <= y0) {
    rect->width = rect->height = 0;
    return FALSE;
  }
  rect->x = (gint) x0;
  rect->y = (gint) y0;
  rect->width = (gint) (x1 - x0);
  rect->height = (gint) (y1 - y0);
  return TRUE;
}

/* --- reading pixels ------------------------------------------------------ */

/* Byte offsets of R, G, B inside one pixel, and the pixel size. */
static void
rgb_layout (GstVideoFormat format, gint offsets[3], gint * pixel_size)
{
  switch (format) {
    case GST_VIDEO_FORMAT_BGR:
      offsets[0] = 2, offsets[1] = 1, offsets[2] = 0, *pixel_size = 3;
      break;
    case GST_VIDEO_FORMAT_RGBx:
      offsets[0] = 0, offsets[1] = 1, offsets[2] = 2, *pixel_size = 4;
      break;
    case GST_VIDEO_FORMAT_BGRx:
      offsets[0] = 2, offsets[1] = 1, offsets[2] = 0, *pixel_size = 4;
      break;
    default:                   /* RGB */
      offsets[0] = 0, offsets[1] = 1, offsets[2] = 2, *pixel_size = 3;
      break;
  }
}

/* The three stored components (R,G,B or Y,U,V) of frame pixel (x, y). */
static inline void
fetch (const KestrelFrame * f, gint x, gint y, guint32 out[3])
{
  switch (f->format) {
    case GST_VIDEO_FORMAT_I420:{
      gsize c = (gsize) (y >> 1);
      out[0] = f->data[0][(gsize) y * f->stride[0] + x];
      out[1] = f->data[1][c * f->stride[1] + (x >> 1)];
      out[2] = f->data[2][c * f->stride[2] + (x >> 1)];
      break;
    }
    case GST_VIDEO_FORMAT_NV12:{
      const guint8 *uv = f->data[1] + (gsize) (y >> 1) * f->stride[1]
          + (gsize) (x & ~1);
      out[0] = f->data[0][(gsize) y * f->stride[0] + x];
      out[1] = uv[0];
      out[2] = uv[1];
      break;
    }
    case GST_VIDEO_FORMAT_YUY2:{
      const guint8 *row = f->data[0] + (gsize) y * f->stride[0];
      gsize pair = (gsize) (x >> 1) * 4;
      out[0] = row[(gsize) x * 2];
      out[1] = row[pair + 1];
      out[2] = row[pair + 3];
      break;
    }
    default:{
      gint off[3], size;
      const guint8 *p;
      rgb_layout (f->format, off, &size);
      p = f->data[0] + (gsize) y * f->stride[0] + (gsize) x * size;
      out[0] = p[off[0]];
      out[1] = p[off[1]];
      out[2] = p[off[2]];
      break;
    }
  }
}

/* Sums the stored components over pixels [x0, x1) of row y. */
static void
accumulate_row (const KestrelFrame * f, gint y, gint x0, gint x1,
    guint32 acc[3])
{
  switch (f->format) {
    case GST_VIDEO_FORMAT_RGB:
    case GST_VIDEO_FORMAT_BGR:
    case GST_VIDEO_FORMAT_RGBx:
    case GST_VIDEO_FORMAT_BGRx:{
      gint off[3], size;
      const guint8 *p;
      rgb_layout (f->format, off, &size);
      p = f->data[0] + (gsize) y * f->stride[0] + (gsize) x0 * size;
      for (gint x = x0; x < x1; x++, p += size) {
        acc[0] += p[off[0]];
        acc[1] += p[off[1]];
        acc[2] += p[off[2]];
      }
      break;
    }
    default:{
      guint32 px[3];
      for (gint x = x0; x < x1; x++) {
        fetch (f, x, y, px);
        acc[0] += px[0];
        acc[1] += px[1];
        acc[2] += px[2];
      }
      break;
    }
  }
}

/* Stored components (as floats) -> R, G, B in [0, 255]. */
static inline void
to_rgb (const KestrelFrame * f, const gfloat in[3], gfloat out[3])
{
  gfloat y, u, v;

  if (!format_is_yuv (f->format)) {
    out[0] = in[0], out[1] = in[1], out[2] = in[2];
    return;
  }
  y = (in[0] - f->y_offset) * f->y_scale;
  u = (in[1] - 128.0f) * f->c_scale;
  v = (in[2] - 128.0f) * f->c_scale;
  out[0] = CLAMP (y + f->cr_r * v, 0.0f, 255.0f);
  out[1] = CLAMP (y + f->cb_g * u + f->cr_g * v, 0.0f, 255.0f);
  out[2] = CLAMP (y + f->cb_b * u, 0.0f, 255.0f);
}

/* --- the transform -------------------------------------------------------- */

static void
set_error (kestrel_error * err, const char *message)
{
  if (err)
    g_strlcpy (err->message, message, sizeof (err->message));
}

/* Same geometry as the engine's make_transform (nn/src/decode/sidecar.c):
 * a tensor from kestrel_frame_preprocess decodes like one from
 * kestrel_preprocess. */
static void
make_transform (const kestrel_sidecar * sc, gint iw, gint ih, gint tw,
    gint th, kestrel_transform * tf)
{
  tf->image_width = iw;
  tf->image_height = ih;
  tf->tensor_width = tw;
  tf->tensor_height = th;
  tf->pad_x = tf->pad_y = 0;
  switch (sc->resize) {
    case KESTREL_RESIZE_LETTERBOX:{
      gfloat s = fminf ((gfloat) tw / iw, (gfloat) th / ih);
      tf->scale_x = tf->scale_y = s;
      tf->pad_x = 0.5f * (tw - iw * s);
      tf->pad_y = 0.5f * (th - ih * s);
      break;
    }
    case KESTREL_RESIZE_PAD_RIGHT:{
      gdouble rw = ceil ((gdouble) th * iw / ih);
      if (rw > tw)
        rw = tw;
      if (rw < 1)
        rw = 1;
      tf->scale_x = (gfloat) (rw / iw);
      tf->scale_y = (gfloat) th / ih;
      break;
    }
    default:
      tf->scale_x = (gfloat) tw / iw;
      tf->scale_y = (gfloat) th / ih;
      break;
  }
}

/* Where tensor column (or row) t samples in the crop, along one axis: both
 * the footprint (for shrinking) and the bilinear taps. */
typedef struct
{
  gboolean inside;
  gfloat span;                  /* footprint size in crop pixels */
  gint a0, a1;                  /* footprint [a0, a1) */
  gint b0, b1;                  /* bilinear taps */
  gfloat weight;                /* bilinear weight of b1 */
} AxisSample;

static void
axis_sample (gint t, gfloat pad, gfloat scale, gint size, AxisSample * s)
{
  gfloat s0 = (t - pad) / scale, s1 = (t + 1 - pad) / scale;
  gfloat c = 0.5f * (s0 + s1), f;
  gint a0, a1, b0;

  s->inside = !(c < 0 || c >= size);
  s->span = s1 - s0;
  if (!s->inside)
    return;
  a0 = (gint) floorf (s0 + 0.5f);
  a1 = (gint) floorf (s1 + 0.5f);
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

  f = c - 0.5f;
  if (f < 0)
    f = 0;
  b0 = (gint) f;
  if (b0 > size - 1)
    b0 = size - 1;
  s->b0 = b0;
  s->b1 = b0 + 1 < size ? b0 + 1 : size - 1;
  s->weight = f - b0;
  if (s->weight > 1)
    s->weight = 1;
}

kestrel_status
kestrel_frame_preprocess (const kestrel_sidecar * sc,
    const KestrelFrame * frame, const KestrelRect * crop,
    kestrel_tensor * input, kestrel_transform * tf, kestrel_error * err)
{
  KestrelRect r = { 0, 0, 0, 0 };
  gboolean nhwc;
  gint64 c_dim, th64, tw64;
  gint tw, th, ox, oy;
  gfloat mul[3], add[3];
  gsize plane;
  kestrel_dtype dt;

  if (!sc || !frame || !input || !input->data || !tf) {
    set_error (err, "frame preprocess: NULL argument");
    return KESTREL_ERROR_INVALID_ARGUMENT;
  }
  if (!kestrel_frame_format_supported (frame->format) || frame->width < 1
      || frame->height < 1) {
    set_error (err, "frame preprocess: unsupported frame");
    return KESTREL_ERROR_INVALID_ARGUMENT;
  }
  if (crop) {
    r = *crop;
    if (!kestrel_rect_clip (&r, frame->width, frame->height)) {
      set_error (err, "frame preprocess: crop lies outside the frame");
      return KESTREL_ERROR_INVALID_ARGUMENT;
    }
  } else {
    r.width = frame->width;
    r.height = frame->height;
  }
  if (input->ndim != 4) {
    snprintf (err ? err->message : NULL, err ? sizeof (err->message) : 0,
        "frame preprocess: input '%s' has rank %d, want 4",
        input->name ? input->name : "", input->ndim);
    return KESTREL_ERROR_SHAPE;
  }
  nhwc = sc->layout == KESTREL_LAYOUT_NHWC;
  c_dim = nhwc ? input->dims[3] : input->dims[1];
  th64 = nhwc ? input->dims[1] : input->dims[2];
  tw64 = nhwc ? input->dims[2] : input->dims[3];
  if (input->dims[0] != 1 || c_dim != 3 || th64 < 1 || tw64 < 1
      || th64 > MAX_TENSOR_SIDE || tw64 > MAX_TENSOR_SIDE) {
    snprintf (err ? err->message : NULL, err ? sizeof (err->message) : 0,
        "frame preprocess: input '%s' is not a 3-channel %s image",
        input->name ? input->name : "", nhwc ? "NHWC" : "NCHW");
    return KESTREL_ERROR_SHAPE;
  }
  tw = (gint) tw64;
  th = (gint) th64;
  dt = input->dtype;
  if (dt != KESTREL_DTYPE_F32 && dt != KESTREL_DTYPE_U8
      && dt != KESTREL_DTYPE_I8) {
    snprintf (err ? err->message : NULL, err ? sizeof (err->message) : 0,
        "frame preprocess: input dtype %s not supported",
        kestrel_dtype_name (dt));
    return KESTREL_ERROR_UNSUPPORTED;
  }
  make_transform (sc, r.width, r.height, tw, th, tf);

  for (gint c = 0; c < 3; c++) {
    mul[c] = sc->scale / sc->std[c];
    add[c] = -sc->mean[c] / sc->std[c];
  }
  plane = (gsize) tw * th;
  ox = r.x;
  oy = r.y;

  for (gint ty = 0; ty < th; ty++) {
    AxisSample ys;
    axis_sample (ty, tf->pad_y, tf->scale_y, r.height, &ys);
    for (gint tx = 0; tx < tw; tx++) {
      AxisSample xs;
      gfloat stored[3], px[3];
      gboolean inside, area;

      axis_sample (tx, tf->pad_x, tf->scale_x, r.width, &xs);
      inside = xs.inside && ys.inside;
      area = xs.span >= 2.0f || ys.span >= 2.0f;
      if (inside && area) {
        guint32 acc[3] = { 0, 0, 0 };
        gfloat inv;
        for (gint y = ys.a0; y < ys.a1; y++)
          accumulate_row (frame, oy + y, ox + xs.a0, ox + xs.a1, acc);
        inv = 1.0f / (gfloat) ((xs.a1 - xs.a0) * (ys.a1 - ys.a0));
        for (gint c = 0; c < 3; c++)
          stored[c] = acc[c] * inv;
      } else if (inside) {
        guint32 p00[3], p01[3], p10[3], p11[3];
        fetch (frame, ox + xs.b0, oy + ys.b0, p00);
        fetch (frame, ox + xs.b1, oy + ys.b0, p01);
        fetch (frame, ox + xs.b0, oy + ys.b1, p10);
        fetch (frame, ox + xs.b1, oy + ys.b1, p11);
        for (gint c = 0; c < 3; c++) {
          gfloat top = p00[c] + ((gfloat) p01[c] - (gfloat) p00[c]) * xs.weight;
          gfloat bot = p10[c] + ((gfloat) p11[c] - (gfloat) p10[c]) * xs.weight;
          stored[c] = top + (bot - top) * ys.weight;
        }
      }
      if (inside)
        to_rgb (frame, stored, px);

      for (gint c = 0; c < 3; c++) {
        gint src_c = sc->bgr ? 2 - c : c;
        gsize idx = nhwc ? ((gsize) ty * tw + tx) * 3 + c
            : c * plane + (gsize) ty * tw + tx;
        if (dt == KESTREL_DTYPE_F32) {
          ((gfloat *) input->data)[idx] =
              inside ? px[src_c] * mul[c] + add[c] : sc->pad_value;
        } else {
          /* Quantized inputs take raw pixels, as in kestrel_preprocess. */
          gint v = inside ? (gint) lrintf (px[src_c]) : 0;
          if (dt == KESTREL_DTYPE_U8)
            ((guint8 *) input->data)[idx] = (guint8) v;
          else
            ((gint8 *) input->data)[idx] = (gint8) (v - 128);
        }
      }
    }
  }
  return KESTREL_OK;
}
