/* Raw frame -> model input tensor without an intermediate RGB image: the
 * GStreamer side of the engine's fused preprocessing kernels
 * (kestrel/preprocess.h, nn/kernels/preprocess/). This file only describes
 * the frame's planes and colorimetry to the engine and keeps a per-thread
 * scratch buffer; crop, resize, colour conversion, normalization and
 * quantization happen in one pass there (C reference, AVX2 or NEON). */
#include <string.h>

#include <kestrel/preprocess.h>

#include "kestrelframe.h"

gboolean
kestrel_frame_format_supported (GstVideoFormat format)
{
  switch (format) {
    case GST_VIDEO_FORMAT_I420:
    case GST_VIDEO_FORMAT_NV12:
    case GST_VIDEO_FORMAT_YUY2:
    case GST_VIDEO_FORMAT_Y42B:
    case GST_VIDEO_FORMAT_Y444:
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
      || format == GST_VIDEO_FORMAT_YUY2 || format == GST_VIDEO_FORMAT_Y42B
      || format == GST_VIDEO_FORMAT_Y444;
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
  frame->width = frame->stored_width = width;
  frame->height = frame->stored_height = height;
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

void
kestrel_frame_set_full_size (KestrelFrame * frame, gint full_width,
    gint full_height)
{
  if (full_width > 0 && full_height > 0) {
    frame->width = full_width;
    frame->height = full_height;
  }
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

static void
set_error (kestrel_error * err, const char *message)
{
  if (err)
    g_strlcpy (err->message, message, sizeof (err->message));
}

/* --- into the tensor ------------------------------------------------------ */

static gboolean
pixel_format (GstVideoFormat format, kestrel_pixel_format * out)
{
  switch (format) {
    case GST_VIDEO_FORMAT_I420:
      *out = KESTREL_PIXEL_I420;
      return TRUE;
    case GST_VIDEO_FORMAT_NV12:
      *out = KESTREL_PIXEL_NV12;
      return TRUE;
    case GST_VIDEO_FORMAT_YUY2:
      *out = KESTREL_PIXEL_YUY2;
      return TRUE;
    case GST_VIDEO_FORMAT_Y42B:
      *out = KESTREL_PIXEL_Y42B;
      return TRUE;
    case GST_VIDEO_FORMAT_Y444:
      *out = KESTREL_PIXEL_Y444;
      return TRUE;
    case GST_VIDEO_FORMAT_RGB:
      *out = KESTREL_PIXEL_RGB;
      return TRUE;
    case GST_VIDEO_FORMAT_BGR:
      *out = KESTREL_PIXEL_BGR;
      return TRUE;
    case GST_VIDEO_FORMAT_RGBx:
      *out = KESTREL_PIXEL_RGBX;
      return TRUE;
    case GST_VIDEO_FORMAT_BGRx:
      *out = KESTREL_PIXEL_BGRX;
      return TRUE;
    default:
      return FALSE;
  }
}

/* Scratch of the thread running inferences (the streaming thread or the
 * worker): grown to the largest need seen, freed with the thread. */
typedef struct
{
  gpointer data;
  gsize size;
} Scratch;

static void
scratch_free (gpointer p)
{
  Scratch *s = p;

  if (s) {
    g_free (s->data);
    g_free (s);
  }
}

static GPrivate scratch_key = G_PRIVATE_INIT (scratch_free);

static gpointer
scratch_get (gsize size)
{
  Scratch *s = g_private_get (&scratch_key);

  if (!s) {
    s = g_new0 (Scratch, 1);
    g_private_set (&scratch_key, s);
  }
  if (s->size < size) {
    g_free (s->data);
    s->data = g_malloc (size);
    s->size = size;
  }
  return s->data;
}

kestrel_status
kestrel_frame_preprocess (const kestrel_sidecar * sc,
    const KestrelFrame * frame, const KestrelRect * crop,
    kestrel_tensor * input, kestrel_transform * tf, kestrel_error * err)
{
  kestrel_pixel_format pf;
  kestrel_image img;
  kestrel_crop kc, *kcp = NULL;
  const uint8_t *planes[3];
  size_t strides[3];
  gboolean nhwc;
  gint tw, th;
  gsize need;

  if (!sc || !frame || !input || !input->data || !tf) {
    set_error (err, "frame preprocess: NULL argument");
    return KESTREL_ERROR_INVALID_ARGUMENT;
  }
  if (!pixel_format (frame->format, &pf) || frame->width < 1
      || frame->height < 1) {
    set_error (err, "frame preprocess: unsupported frame");
    return KESTREL_ERROR_INVALID_ARGUMENT;
  }
  for (gint i = 0; i < 3; i++) {
    planes[i] = frame->data[i];
    strides[i] = frame->stride[i] > 0 ? (size_t) frame->stride[i] : 0;
  }
  if (kestrel_image_init (&img, pf, frame->stored_width,
          frame->stored_height, planes, strides) != KESTREL_OK) {
    set_error (err, "frame preprocess: bad frame planes or size");
    return KESTREL_ERROR_INVALID_ARGUMENT;
  }
  img.yuv.y_offset = frame->y_offset;
  img.yuv.y_scale = frame->y_scale;
  img.yuv.c_scale = frame->c_scale;
  img.yuv.cr_r = frame->cr_r;
  img.yuv.cb_g = frame->cb_g;
  img.yuv.cr_g = frame->cr_g;
  img.yuv.cb_b = frame->cb_b;
  img.frame_width = frame->width;
  img.frame_height = frame->height;
  if (crop) {
    KestrelRect r = *crop;
    if (!kestrel_rect_clip (&r, frame->width, frame->height)) {
      set_error (err, "frame preprocess: crop lies outside the frame");
      return KESTREL_ERROR_INVALID_ARGUMENT;
    }
    kc.x = r.x;
    kc.y = r.y;
    kc.width = r.width;
    kc.height = r.height;
    kcp = &kc;
  }
  if (input->ndim != 4) {
    g_snprintf (err ? err->message : NULL, err ? sizeof (err->message) : 0,
        "frame preprocess: input '%s' has rank %d, want 4",
        input->name ? input->name : "", input->ndim);
    return KESTREL_ERROR_SHAPE;
  }
  nhwc = sc->layout == KESTREL_LAYOUT_NHWC;
  th = (gint) CLAMP (nhwc ? input->dims[1] : input->dims[2], 1, 16384);
  tw = (gint) CLAMP (nhwc ? input->dims[2] : input->dims[3], 1, 16384);
  need = kestrel_preprocess_image_scratch (&img, tw, th);
  return kestrel_preprocess_image (sc, &img, kcp, input, tf,
      scratch_get (need), need, err);
}
