/* kestreljpegdec: the display half of the frame path (docs/frame-path.md).
 * MJPEG camera frames decoded once, straight to I420 planes. */

/**
 * SECTION:element-kestreljpegdec
 * @title: kestreljpegdec
 *
 * Decodes JPEG frames (MJPEG cameras, MJPEG AVI) with libjpeg-turbo's
 * TurboJPEG API straight into I420 planes: no RGB, no colour conversion,
 * and for the usual 4:2:0 JPEG not even a copy (the decoder writes the
 * output buffer's planes). 4:2:2 and 4:4:4 JPEGs have their chroma
 * averaged to 4:2:0; greyscale gets neutral chroma. Output is full-range
 * BT.601, as JPEG codes it.
 *
 * With `scale` 2, 4 or 8 the frame is decoded at that fraction in the DCT
 * domain (a preview, or a small frame for a model), much cheaper than
 * decoding and scaling. For pipelines that need no picture at all (only
 * metadata), put kestreldetect/kestrelclassify on the JPEG itself
 * instead: it decodes a small copy for the model only.
 *
 * Region-of-interest metadata on the JPEG buffers (from a kestreldetect
 * upstream on image/jpeg) is carried over to the decoded frames, scaled to
 * the output size: GStreamer's own video decoders drop it.
 *
 * Damaged frames (truncated, no EOI, corrupt Huffman data), as USB cameras
 * send them, are dropped (`bad-frames=drop`, the default) or shown as far
 * as they decoded (`bad-frames=show`); frames with nothing usable (no
 * JPEG header, fatal decoder errors) are always dropped. Each is counted
 * in `stats`, and a warning is posted at most every `warning-interval`
 * seconds. The stream never stops for a bad frame. A change of frame size
 * is taken when two frames in a row agree on it (a corrupt header alone
 * does not renegotiate).
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 v4l2src ! image/jpeg,width=1920,height=1080 ! kestreljpegdec ! kestreldetect model=face.kestrel ! kestreloverlay ! autovideosink
 * gst-launch-1.0 filesrc location=clip.avi ! avidemux ! kestreldetect model=face.kestrel ! kestreljpegdec scale=2 ! kestreloverlay ! fakesink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/video/video.h>

#include "gstkestreljpegdec.h"
#include "kestreljpeg.h"

GST_DEBUG_CATEGORY_STATIC (gst_kestrel_jpegdec_debug);
#define GST_CAT_DEFAULT gst_kestrel_jpegdec_debug

#define DEFAULT_SCALE 1
#define DEFAULT_BAD_FRAMES GST_KESTREL_BAD_FRAMES_DROP
#define DEFAULT_WARNING_INTERVAL 5

enum
{
  PROP_0,
  PROP_SCALE,
  PROP_BAD_FRAMES,
  PROP_WARNING_INTERVAL,
  PROP_STATS,
};

struct _GstKestrelJpegdec
{
  GstVideoDecoder parent;

  /* properties (object lock) */
  gint scale;
  GstKestrelBadFrames bad_frames;
  guint warning_interval;

  /* streaming thread */
  KestrelJpeg *jpeg;
  GstVideoCodecState *input_state;
  GstVideoCodecState *output_state;
  gint width, height;           /* of the JPEGs the output was set up for */
  gint out_scale;
  gint pending_width, pending_height, pending_count;

  /* statistics (object lock) */
  guint64 frames, decoded, damaged, failed, truncated, dropped, shown;
  gdouble decode_ms_sum;
  gint64 last_warning;
  guint64 bad_since_warning;
};

G_DEFINE_TYPE (GstKestrelJpegdec, gst_kestrel_jpegdec, GST_TYPE_VIDEO_DECODER);
GST_ELEMENT_REGISTER_DEFINE (kestreljpegdec, "kestreljpegdec",
    GST_RANK_NONE, GST_TYPE_KESTREL_JPEGDEC);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("image/jpeg"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE ("I420")));

GType
gst_kestrel_bad_frames_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_KESTREL_BAD_FRAMES_DROP, "Drop damaged frames", "drop"},
    {GST_KESTREL_BAD_FRAMES_SHOW, "Show damaged frames as far as they "
          "decoded", "show"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstKestrelBadFrames", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
gst_kestrel_jpegdec_start (GstVideoDecoder * dec)
{
  GstKestrelJpegdec *self = GST_KESTREL_JPEGDEC (dec);

  self->jpeg = kestrel_jpeg_new ();
  if (!self->jpeg)
    goto no_decoder;
  self->width = self->height = 0;
  self->pending_count = 0;
  GST_OBJECT_LOCK (self);
  self->frames = self->decoded = self->damaged = self->failed = 0;
  self->truncated = self->dropped = self->shown = 0;
  self->decode_ms_sum = 0;
  self->last_warning = 0;
  self->bad_since_warning = 0;
  GST_OBJECT_UNLOCK (self);
  gst_video_decoder_set_packetized (dec, TRUE);
  return TRUE;

no_decoder:
  GST_ELEMENT_ERROR (self, LIBRARY, INIT, (NULL),
      ("tjInitDecompress failed: is libturbojpeg installed correctly?"));
  return FALSE;
}

static gboolean
gst_kestrel_jpegdec_stop (GstVideoDecoder * dec)
{
  GstKestrelJpegdec *self = GST_KESTREL_JPEGDEC (dec);

  kestrel_jpeg_free (self->jpeg);
  self->jpeg = NULL;
  g_clear_pointer (&self->input_state, gst_video_codec_state_unref);
  g_clear_pointer (&self->output_state, gst_video_codec_state_unref);
  return TRUE;
}

static gboolean
gst_kestrel_jpegdec_set_format (GstVideoDecoder * dec,
    GstVideoCodecState * state)
{
  GstKestrelJpegdec *self = GST_KESTREL_JPEGDEC (dec);

  g_clear_pointer (&self->input_state, gst_video_codec_state_unref);
  self->input_state = gst_video_codec_state_ref (state);
  return TRUE;
}

/* Sets up I420 output for width x height JPEGs at the current scale. */
static gboolean
setup_output (GstKestrelJpegdec * self, gint width, gint height)
{
  GstVideoDecoder *dec = GST_VIDEO_DECODER (self);
  GstVideoCodecState *state;
  gint scale;

  GST_OBJECT_LOCK (self);
  scale = self->scale;
  GST_OBJECT_UNLOCK (self);
  state = gst_video_decoder_set_output_state (dec, GST_VIDEO_FORMAT_I420,
      kestrel_jpeg_scaled (width, scale), kestrel_jpeg_scaled (height,
          scale), self->input_state);
  /* JFIF: BT.601 matrix, full range. */
  state->info.colorimetry.range = GST_VIDEO_COLOR_RANGE_0_255;
  state->info.colorimetry.matrix = GST_VIDEO_COLOR_MATRIX_BT601;
  state->info.colorimetry.transfer = GST_VIDEO_TRANSFER_UNKNOWN;
  state->info.colorimetry.primaries = GST_VIDEO_COLOR_PRIMARIES_UNKNOWN;
  state->info.chroma_site = GST_VIDEO_CHROMA_SITE_JPEG;
  g_clear_pointer (&self->output_state, gst_video_codec_state_unref);
  self->output_state = state;
  if (!gst_video_decoder_negotiate (dec))
    return FALSE;
  self->width = width;
  self->height = height;
  self->out_scale = scale;
  GST_INFO_OBJECT (self, "%dx%d JPEGs to %dx%d I420", width, height,
      GST_VIDEO_INFO_WIDTH (&state->info),
      GST_VIDEO_INFO_HEIGHT (&state->info));
  return TRUE;
}

/* Counts a bad frame and warns at most every warning-interval seconds. */
static void
report_bad_frame (GstKestrelJpegdec * self, KestrelJpegStatus status,
    gboolean shown, const gchar * why)
{
  gint64 now = g_get_monotonic_time ();
  guint64 count = 0, total = 0;
  gboolean warn = FALSE;

  GST_OBJECT_LOCK (self);
  if (status == KESTREL_JPEG_FAILED)
    self->failed++;
  else
    self->damaged++;
  if (shown)
    self->shown++;
  else
    self->dropped++;
  self->bad_since_warning++;
  if (self->last_warning == 0 || now - self->last_warning >=
      (gint64) self->warning_interval * G_USEC_PER_SEC) {
    warn = TRUE;
    count = self->bad_since_warning;
    total = self->damaged + self->failed;
    self->bad_since_warning = 0;
    self->last_warning = now;
  }
  GST_OBJECT_UNLOCK (self);

  GST_DEBUG_OBJECT (self, "bad frame (%s, %s): %s",
      status == KESTREL_JPEG_FAILED ? "unusable" : "damaged",
      shown ? "shown" : "dropped", why);
  if (warn)
    GST_ELEMENT_WARNING (self, STREAM, DECODE,
        ("%" G_GUINT64_FORMAT " bad JPEG frame(s) since the last warning "
            "(%" G_GUINT64_FORMAT " in all); the camera or cable may be "
            "faulty", count, total),
        ("last: %s (%s); see the stats property", why,
            shown ? "shown" : "dropped"));
}

/* ROI metadata does not survive GstVideoDecoder (its size tag stops the
 * default copy): carry it over, in output pixels. */
static void
copy_roi_metas (GstKestrelJpegdec * self, GstBuffer * in, GstBuffer * out)
{
  gpointer state = NULL;
  GstMeta *meta;
  gint ow = GST_VIDEO_INFO_WIDTH (&self->output_state->info);
  gint oh = GST_VIDEO_INFO_HEIGHT (&self->output_state->info);

  while ((meta = gst_buffer_iterate_meta_filtered (in, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *src = (GstVideoRegionOfInterestMeta *) meta;
    GstVideoRegionOfInterestMeta *dst;
    guint x = src->x, y = src->y, w = src->w, h = src->h;

    if (ow != self->width || oh != self->height) {
      /* Scale the edges, not the size: boxes stay inside the frame. */
      guint x1 = (guint) gst_util_uint64_scale_int_round ((guint64) x + w, ow,
          self->width);
      guint y1 = (guint) gst_util_uint64_scale_int_round ((guint64) y + h, oh,
          self->height);
      x = (guint) gst_util_uint64_scale_int_round (x, ow, self->width);
      y = (guint) gst_util_uint64_scale_int_round (y, oh, self->height);
      w = x1 > x ? x1 - x : 0;
      h = y1 > y ? y1 - y : 0;
    }
    dst = gst_buffer_add_video_region_of_interest_meta_id (out,
        src->roi_type, x, y, w, h);
    dst->id = src->id;
    dst->parent_id = src->parent_id;
    for (GList * l = src->params; l; l = l->next)
      gst_video_region_of_interest_meta_add_param (dst,
          gst_structure_copy (l->data));
  }
}

static gboolean
gst_kestrel_jpegdec_transform_meta (GstVideoDecoder * dec,
    GstVideoCodecFrame * frame, GstMeta * meta)
{
  /* Copied by copy_roi_metas, scaled. */
  if (meta->info->api == GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)
    return FALSE;
  return GST_VIDEO_DECODER_CLASS (gst_kestrel_jpegdec_parent_class)
      ->transform_meta (dec, frame, meta);
}

static GstFlowReturn
gst_kestrel_jpegdec_handle_frame (GstVideoDecoder * dec,
    GstVideoCodecFrame * frame)
{
  GstKestrelJpegdec *self = GST_KESTREL_JPEGDEC (dec);
  GstMapInfo in;
  GstVideoFrame out;
  GstFlowReturn ret;
  KestrelJpegStatus status;
  GstKestrelBadFrames policy;
  gchar why[256] = "";
  gint width, height, scale;
  gboolean eoi, show;
  gint64 t0;

  GST_OBJECT_LOCK (self);
  self->frames++;
  policy = self->bad_frames;
  scale = self->scale;
  GST_OBJECT_UNLOCK (self);

  if (!gst_buffer_map (frame->input_buffer, &in, GST_MAP_READ))
    goto map_failed;
  if (!kestrel_jpeg_header (self->jpeg, in.data, in.size, &width, &height,
          why, sizeof (why))) {
    gst_buffer_unmap (frame->input_buffer, &in);
    goto bad_frame;
  }

  if (!self->output_state || width != self->width || height != self->height
      || scale != self->out_scale) {
    /* A new size must be seen twice in a row: a damaged header alone does
     * not renegotiate the stream. */
    if (self->output_state && scale == self->out_scale) {
      if (width == self->pending_width && height == self->pending_height)
        self->pending_count++;
      else
        self->pending_count = 1;
      self->pending_width = width;
      self->pending_height = height;
      if (self->pending_count < 2) {
        g_snprintf (why, sizeof (why), "frame is %dx%d, stream is %dx%d",
            width, height, self->width, self->height);
        gst_buffer_unmap (frame->input_buffer, &in);
        goto bad_frame;
      }
    }
    self->pending_count = 0;
    if (!setup_output (self, width, height)) {
      gst_buffer_unmap (frame->input_buffer, &in);
      goto not_negotiated;
    }
  }
  self->pending_count = 0;

  ret = gst_video_decoder_allocate_output_frame (dec, frame);
  if (ret != GST_FLOW_OK) {
    gst_buffer_unmap (frame->input_buffer, &in);
    gst_video_decoder_drop_frame (dec, frame);
    return ret;
  }
  if (!gst_video_frame_map (&out, &self->output_state->info,
          frame->output_buffer, GST_MAP_WRITE)) {
    gst_buffer_unmap (frame->input_buffer, &in);
    goto map_failed;
  }

  eoi = kestrel_jpeg_has_eoi (in.data, in.size);
  t0 = g_get_monotonic_time ();
  {
    guint8 *planes[3];
    gint strides[3];
    for (gint i = 0; i < 3; i++) {
      planes[i] = GST_VIDEO_FRAME_PLANE_DATA (&out, i);
      strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE (&out, i);
    }
    status = kestrel_jpeg_decode_i420 (self->jpeg, in.data, in.size, width,
        height, self->out_scale, planes, strides, why, sizeof (why));
  }
  GST_OBJECT_LOCK (self);
  self->decode_ms_sum += (g_get_monotonic_time () - t0) / 1000.0;
  if (!eoi)
    self->truncated++;
  if (status == KESTREL_JPEG_OK)
    self->decoded++;
  GST_OBJECT_UNLOCK (self);
  gst_video_frame_unmap (&out);
  gst_buffer_unmap (frame->input_buffer, &in);

  if (status == KESTREL_JPEG_OK && !eoi) {
    /* Every byte decoded, yet the frame was cut before its EOI. */
    status = KESTREL_JPEG_DAMAGED;
    g_strlcpy (why, "no end-of-image marker", sizeof (why));
    GST_OBJECT_LOCK (self);
    self->decoded--;
    GST_OBJECT_UNLOCK (self);
  }
  if (status != KESTREL_JPEG_OK) {
    show = status == KESTREL_JPEG_DAMAGED
        && policy == GST_KESTREL_BAD_FRAMES_SHOW;
    report_bad_frame (self, status, show, why);
    if (!show)
      return gst_video_decoder_drop_frame (dec, frame);
  }
  copy_roi_metas (self, frame->input_buffer, frame->output_buffer);
  return gst_video_decoder_finish_frame (dec, frame);

bad_frame:
  report_bad_frame (self, KESTREL_JPEG_FAILED, FALSE, why);
  return gst_video_decoder_drop_frame (dec, frame);

map_failed:
  GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
      ("cannot map a buffer"));
  gst_video_decoder_drop_frame (dec, frame);
  return GST_FLOW_ERROR;

not_negotiated:
  GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
      ("downstream does not take I420 at %dx%d (scale 1/%d)", width, height,
          scale));
  gst_video_decoder_drop_frame (dec, frame);
  return GST_FLOW_NOT_NEGOTIATED;
}

static GstStructure *
make_stats (GstKestrelJpegdec * self)
{
  GstStructure *s;

  GST_OBJECT_LOCK (self);
  s = gst_structure_new ("kestrel-jpegdec-stats",
      "frames", G_TYPE_UINT64, self->frames,
      "decoded", G_TYPE_UINT64, self->decoded,
      "damaged", G_TYPE_UINT64, self->damaged,
      "failed", G_TYPE_UINT64, self->failed,
      "truncated", G_TYPE_UINT64, self->truncated,
      "dropped", G_TYPE_UINT64, self->dropped,
      "shown-damaged", G_TYPE_UINT64, self->shown,
      "mean-decode-ms", G_TYPE_DOUBLE,
      self->frames ? self->decode_ms_sum / self->frames : 0.0, NULL);
  GST_OBJECT_UNLOCK (self);
  return s;
}

static void
gst_kestrel_jpegdec_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstKestrelJpegdec *self = GST_KESTREL_JPEGDEC (object);

  switch (prop_id) {
    case PROP_SCALE:{
      gint scale = g_value_get_int (value);
      if (scale != 1 && scale != 2 && scale != 4 && scale != 8) {
        g_warning ("kestreljpegdec: scale %d is not 1, 2, 4 or 8", scale);
        break;
      }
      GST_OBJECT_LOCK (self);
      self->scale = scale;
      GST_OBJECT_UNLOCK (self);
      break;
    }
    case PROP_BAD_FRAMES:
      GST_OBJECT_LOCK (self);
      self->bad_frames = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_WARNING_INTERVAL:
      GST_OBJECT_LOCK (self);
      self->warning_interval = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_kestrel_jpegdec_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstKestrelJpegdec *self = GST_KESTREL_JPEGDEC (object);

  switch (prop_id) {
    case PROP_SCALE:
      GST_OBJECT_LOCK (self);
      g_value_set_int (value, self->scale);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_BAD_FRAMES:
      GST_OBJECT_LOCK (self);
      g_value_set_enum (value, self->bad_frames);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_WARNING_INTERVAL:
      GST_OBJECT_LOCK (self);
      g_value_set_uint (value, self->warning_interval);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, make_stats (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_kestrel_jpegdec_class_init (GstKestrelJpegdecClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstVideoDecoderClass *dec_class = GST_VIDEO_DECODER_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_kestrel_jpegdec_debug, "kestreljpegdec", 0,
      "Kestrel TurboJPEG decoder");

  gobject_class->set_property = gst_kestrel_jpegdec_set_property;
  gobject_class->get_property = gst_kestrel_jpegdec_get_property;

  g_object_class_install_property (gobject_class, PROP_SCALE,
      g_param_spec_int ("scale", "Scale",
          "Decode at 1/scale of the JPEG's size in the DCT domain: 1 (full "
          "size), 2, 4 or 8", 1, 8, DEFAULT_SCALE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_BAD_FRAMES,
      g_param_spec_enum ("bad-frames", "Bad frames",
          "Damaged frames (truncated, no EOI, corrupt data): drop them, or "
          "show what decoded (the rest is grey or garbled)",
          GST_TYPE_KESTREL_BAD_FRAMES, DEFAULT_BAD_FRAMES,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_WARNING_INTERVAL,
      g_param_spec_uint ("warning-interval", "Warning interval",
          "At most one bad-frame warning message per this many seconds "
          "(0: one per bad frame)", 0, G_MAXUINT, DEFAULT_WARNING_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Read-only \"kestrel-jpegdec-stats\" structure (guint64 unless "
          "said): frames (JPEGs received), decoded (cleanly), damaged "
          "(decoded with errors), failed (nothing usable, or a size change "
          "not yet confirmed), truncated (no EOI marker), dropped, "
          "shown-damaged, mean-decode-ms (gdouble)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Kestrel JPEG decoder", "Codec/Decoder/Image/Video",
      "Decodes MJPEG frames with TurboJPEG straight to I420, optionally "
      "scaled 1/2..1/8 in the DCT domain; keeps ROI metadata; drops or "
      "shows damaged frames", "Kestrel");

  dec_class->start = GST_DEBUG_FUNCPTR (gst_kestrel_jpegdec_start);
  dec_class->stop = GST_DEBUG_FUNCPTR (gst_kestrel_jpegdec_stop);
  dec_class->set_format = GST_DEBUG_FUNCPTR (gst_kestrel_jpegdec_set_format);
  dec_class->handle_frame =
      GST_DEBUG_FUNCPTR (gst_kestrel_jpegdec_handle_frame);
  dec_class->transform_meta =
      GST_DEBUG_FUNCPTR (gst_kestrel_jpegdec_transform_meta);

  gst_type_mark_as_plugin_api (GST_TYPE_KESTREL_BAD_FRAMES, 0);
}

static void
gst_kestrel_jpegdec_init (GstKestrelJpegdec * self)
{
  self->scale = DEFAULT_SCALE;
  self->bad_frames = DEFAULT_BAD_FRAMES;
  self->warning_interval = DEFAULT_WARNING_INTERVAL;
  gst_video_decoder_set_packetized (GST_VIDEO_DECODER (self), TRUE);
  gst_video_decoder_set_use_default_pad_acceptcaps (GST_VIDEO_DECODER_CAST
      (self), TRUE);
  GST_PAD_SET_ACCEPT_TEMPLATE (GST_VIDEO_DECODER_SINK_PAD (self));
}
