/* kestreloverlay: draws the ROI metadata of kestreldetect, kestreltrack and
 * kestrelclassify into the frames themselves, with kestreldraw.c. */

/**
 * SECTION:element-kestreloverlay
 * @title: kestreloverlay
 *
 * Draws, in place, every #GstVideoRegionOfInterestMeta on a frame: its box,
 * a label line (label, confidence, track id from the "object_id" params,
 * and the classes kestrelclassify added), and the keypoints of the
 * "detection" params. Classes of the whole frame (ROIs with roi_type
 * "frame" and no "detection") are listed at the top left. With `hud`, a line
 * at the top shows the frames per second this element sees, the mean
 * inference time of the nearest kestreldetect or kestrelclassify upstream
 * and the number of objects on the frame.
 *
 * Works on I420, NV12, YUY2, RGB, BGR, RGBx and BGRx without converting:
 * YUV frames are drawn on their planes. Text uses a built-in 5x7 bitmap
 * font. Boxes take a colour per track id (or per label when untracked).
 * Line width and text size follow the frame height unless set.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=clip.avi ! decodebin ! kestreldetect model=face.kestrel ! kestreltrack ! kestreloverlay hud=true ! videoconvert ! autovideosink
 * gst-launch-1.0 filesrc location=clip.avi ! decodebin ! kestreldetect model=face.kestrel ! kestreloverlay ! videoconvert ! pngenc ! multifilesink location=frame%05d.png
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gst/video/video.h>

#include "gstkestreloverlay.h"
#include "kestreldraw.h"

GST_DEBUG_CATEGORY_STATIC (gst_kestrel_overlay_debug);
#define GST_CAT_DEFAULT gst_kestrel_overlay_debug

#define DEFAULT_SHOW_LABELS TRUE
#define DEFAULT_SHOW_CONFIDENCE TRUE
#define DEFAULT_SHOW_TRACK_ID TRUE
#define DEFAULT_SHOW_KEYPOINTS TRUE
#define DEFAULT_HUD FALSE
#define DEFAULT_THICKNESS 0
#define DEFAULT_FONT_SCALE 0

/* How often the HUD re-reads the upstream element's statistics. */
#define HUD_REFRESH_US (500 * G_TIME_SPAN_MILLISECOND)

enum
{
  PROP_0,
  PROP_SHOW_LABELS,
  PROP_SHOW_CONFIDENCE,
  PROP_SHOW_TRACK_ID,
  PROP_SHOW_KEYPOINTS,
  PROP_HUD,
  PROP_THICKNESS,
  PROP_FONT_SCALE,
};

typedef struct
{
  gboolean show_labels, show_confidence, show_track_id, show_keypoints;
  gboolean hud;
  gint thickness, font_scale;
} OverlaySettings;

struct _GstKestrelOverlay
{
  GstVideoFilter parent;

  /* under the object lock */
  OverlaySettings settings;

  /* streaming thread only */
  kestrel_draw_format format;
  gint64 fps_window_start;      /* monotonic us */
  guint fps_window_frames;
  gdouble fps;
  gint64 hud_refreshed;
  gdouble inference_ms;         /* < 0: no inference element upstream */
  GQuark frame_quark;
};

G_DEFINE_TYPE (GstKestrelOverlay, gst_kestrel_overlay, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (kestreloverlay, "kestreloverlay", GST_RANK_NONE,
    GST_TYPE_KESTREL_OVERLAY);

#define OVERLAY_CAPS \
    GST_VIDEO_CAPS_MAKE ("{ I420, NV12, YUY2, RGB, BGR, RGBx, BGRx }")

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (OVERLAY_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (OVERLAY_CAPS));

/* Saturated, mutually distinct colours; a track keeps its colour. */
static const kestrel_color palette[] = {
  {255, 64, 64}, {64, 220, 64}, {64, 128, 255}, {255, 200, 0},
  {255, 64, 255}, {0, 230, 230}, {255, 140, 0}, {160, 96, 255},
};

static const kestrel_color hud_color = { 0, 0, 0 };
static const kestrel_color frame_class_color = { 255, 255, 255 };

static kestrel_color
text_color_on (kestrel_color bg)
{
  gint luma = (299 * bg.r + 587 * bg.g + 114 * bg.b) / 1000;
  kestrel_color black = { 0, 0, 0 }, white = { 255, 255, 255 };

  return luma > 128 ? black : white;
}

static gboolean
gst_kestrel_overlay_set_info (GstVideoFilter * filter, GstCaps * incaps,
    GstVideoInfo * in_info, GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstKestrelOverlay *self = GST_KESTREL_OVERLAY (filter);

  switch (GST_VIDEO_INFO_FORMAT (in_info)) {
    case GST_VIDEO_FORMAT_I420:
      self->format = KESTREL_DRAW_I420;
      break;
    case GST_VIDEO_FORMAT_NV12:
      self->format = KESTREL_DRAW_NV12;
      break;
    case GST_VIDEO_FORMAT_YUY2:
      self->format = KESTREL_DRAW_YUY2;
      break;
    case GST_VIDEO_FORMAT_RGB:
      self->format = KESTREL_DRAW_RGB;
      break;
    case GST_VIDEO_FORMAT_BGR:
      self->format = KESTREL_DRAW_BGR;
      break;
    case GST_VIDEO_FORMAT_RGBx:
      self->format = KESTREL_DRAW_RGBX;
      break;
    case GST_VIDEO_FORMAT_BGRx:
      self->format = KESTREL_DRAW_BGRX;
      break;
    default:
      goto not_supported;
  }
  return TRUE;

not_supported:
  GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
      ("unsupported format %s: put videoconvert in front",
          gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (in_info))));
  return FALSE;
}

/* The nearest GstKestrelInfer (kestreldetect, kestrelclassify) upstream,
 * following the first sink pad of each element on the way. */
static GstElement *
find_inference_upstream (GstKestrelOverlay * self)
{
  GType infer_type = g_type_from_name ("GstKestrelInfer");
  GstPad *pad = gst_object_ref (GST_BASE_TRANSFORM_SINK_PAD (self));
  GstElement *found = NULL;

  if (!infer_type) {
    gst_object_unref (pad);
    return NULL;
  }
  for (gint hop = 0; hop < 32 && pad && !found; hop++) {
    GstPad *peer = gst_pad_get_peer (pad);
    GstElement *element = NULL;

    gst_object_unref (pad);
    pad = NULL;
    if (!peer)
      break;
    /* A bin's ghost pad: look inside at its target. */
    while (GST_IS_GHOST_PAD (peer)) {
      GstPad *target = gst_ghost_pad_get_target (GST_GHOST_PAD (peer));
      gst_object_unref (peer);
      peer = target;
      if (!peer)
        break;
    }
    if (!peer)
      break;
    element = gst_pad_get_parent_element (peer);
    gst_object_unref (peer);
    if (!element)
      break;
    if (g_type_is_a (G_OBJECT_TYPE (element), infer_type)) {
      found = element;
      break;
    }
    GST_OBJECT_LOCK (element);
    if (element->sinkpads)
      pad = gst_object_ref (element->sinkpads->data);
    GST_OBJECT_UNLOCK (element);
    gst_object_unref (element);
  }
  if (pad)
    gst_object_unref (pad);
  return found;
}

static void
update_hud_numbers (GstKestrelOverlay * self)
{
  gint64 now = g_get_monotonic_time ();

  /* Frames per second over windows of about a second. */
  if (self->fps_window_start == 0)
    self->fps_window_start = now;
  self->fps_window_frames++;
  if (now - self->fps_window_start >= G_USEC_PER_SEC) {
    self->fps = self->fps_window_frames * (gdouble) G_USEC_PER_SEC /
        (now - self->fps_window_start);
    self->fps_window_start = now;
    self->fps_window_frames = 0;
  }

  if (self->hud_refreshed == 0 || now - self->hud_refreshed >= HUD_REFRESH_US) {
    GstElement *infer = find_inference_upstream (self);
    self->hud_refreshed = now;
    self->inference_ms = -1.0;
    if (infer) {
      GstStructure *stats = NULL;
      g_object_get (infer, "stats", &stats, NULL);
      if (stats) {
        gst_structure_get_double (stats, "mean-inference-ms",
            &self->inference_ms);
        gst_structure_free (stats);
      }
      gst_object_unref (infer);
    }
  }
}

/* Appends " label 93%" for each classification structure of a ROI: any
 * params other than "detection" and "object_id" that carry a label. */
static void
append_classes (GString * text, GstVideoRegionOfInterestMeta * roi,
    gboolean show_confidence)
{
  for (GList * l = roi->params; l; l = l->next) {
    GstStructure *s = l->data;
    const gchar *label;
    gdouble confidence;

    if (gst_structure_has_name (s, "detection")
        || gst_structure_has_name (s, "object_id"))
      continue;
    label = gst_structure_get_string (s, "label");
    if (!label)
      continue;
    g_string_append_printf (text, "%s%s", text->len ? " " : "", label);
    if (show_confidence && gst_structure_get_double (s, "confidence",
            &confidence))
      g_string_append_printf (text, " %.0f%%", confidence * 100.0);
  }
}

static void
draw_label (const kestrel_canvas * canvas, gint x, gint y, gint box_h,
    gint scale, const gchar * text, kestrel_color color)
{
  gint pad = scale, tw = kestrel_draw_text_width (text, scale);
  gint th = kestrel_draw_text_height (scale);
  gint bw = tw + 2 * pad, bh = th + 2 * pad, by;

  if (tw == 0)
    return;
  /* Above the box if it fits, else just inside its top edge. */
  by = y - bh >= 0 ? y - bh : y;
  if (box_h < bh && by == y)
    by = y + box_h;
  x = CLAMP (x, 0, MAX (canvas->width - bw, 0));
  kestrel_draw_fill (canvas, x, by, bw, bh, color);
  kestrel_draw_text (canvas, x + pad, by + pad, scale, text,
      text_color_on (color));
}

static GstFlowReturn
gst_kestrel_overlay_transform_frame_ip (GstVideoFilter * filter,
    GstVideoFrame * frame)
{
  GstKestrelOverlay *self = GST_KESTREL_OVERLAY (filter);
  kestrel_canvas canvas;
  OverlaySettings set;
  gint width = GST_VIDEO_FRAME_WIDTH (frame);
  gint height = GST_VIDEO_FRAME_HEIGHT (frame);
  gint thickness, scale, frame_text_y, objects = 0;
  gpointer state = NULL;
  GstMeta *meta;
  GString *text = g_string_new (NULL);

  GST_OBJECT_LOCK (self);
  set = self->settings;
  GST_OBJECT_UNLOCK (self);

  canvas.format = self->format;
  canvas.width = width;
  canvas.height = height;
  for (guint p = 0; p < 3; p++) {
    gboolean has = p < GST_VIDEO_FRAME_N_PLANES (frame);
    canvas.planes[p] = has ? GST_VIDEO_FRAME_PLANE_DATA (frame, p) : NULL;
    canvas.strides[p] = has ? GST_VIDEO_FRAME_PLANE_STRIDE (frame, p) : 0;
  }
  /* 2 px lines and 10x14 px glyphs at 720p (height / 360, rounded). */
  thickness = set.thickness > 0 ? set.thickness : MAX (1, (height + 180) / 360);
  scale = set.font_scale > 0 ? set.font_scale : MAX (1, (height + 180) / 360);
  frame_text_y = scale;

  while ((meta = gst_buffer_iterate_meta_filtered (frame->buffer, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    objects += gst_video_region_of_interest_meta_get_param
        ((GstVideoRegionOfInterestMeta *) meta, "detection") != NULL;

  if (set.hud) {
    update_hud_numbers (self);
    g_string_printf (text, "%.1f fps", self->fps);
    if (self->inference_ms >= 0)
      g_string_append_printf (text, "  infer %.1f ms", self->inference_ms);
    g_string_append_printf (text, "  %d object%s", objects,
        objects == 1 ? "" : "s");
    draw_label (&canvas, 0, 0, height, scale, text->str, hud_color);
    frame_text_y += kestrel_draw_text_height (scale) + 3 * scale;
  }

  state = NULL;
  while ((meta = gst_buffer_iterate_meta_filtered (frame->buffer, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    GstStructure *det =
        gst_video_region_of_interest_meta_get_param (roi, "detection");
    GstStructure *oid =
        gst_video_region_of_interest_meta_get_param (roi, "object_id");
    const gchar *label = NULL;
    gint id = -1, label_id = 0;
    gdouble confidence = -1.0;
    kestrel_color color;

    if (!det && roi->roi_type == self->frame_quark) {
      /* Classes of the whole frame: a line each at the top left. */
      g_string_truncate (text, 0);
      append_classes (text, roi, set.show_confidence);
      if (text->len) {
        draw_label (&canvas, scale, frame_text_y, height, scale, text->str,
            frame_class_color);
        frame_text_y += kestrel_draw_text_height (scale) + 3 * scale;
      }
      continue;
    }

    if (oid)
      gst_structure_get_int (oid, "id", &id);
    if (det) {
      label = gst_structure_get_string (det, "label");
      gst_structure_get_int (det, "label_id", &label_id);
      gst_structure_get_double (det, "confidence", &confidence);
    }
    if (!label)
      label = g_quark_to_string (roi->roi_type);
    color = palette[(guint) (id > 0 ? id : label_id) % G_N_ELEMENTS (palette)];

    kestrel_draw_rect (&canvas, roi->x, roi->y, roi->w, roi->h, thickness,
        color);

    if (det && set.show_keypoints) {
      const GValue *kp = gst_structure_get_value (det, "keypoints");
      if (kp && GST_VALUE_HOLDS_ARRAY (kp)) {
        guint n = gst_value_array_get_size (kp);
        for (guint k = 0; k + 1 < n; k += 2) {
          const GValue *vx = gst_value_array_get_value (kp, k);
          const GValue *vy = gst_value_array_get_value (kp, k + 1);
          gdouble px, py;
          if (!G_VALUE_HOLDS_DOUBLE (vx) || !G_VALUE_HOLDS_DOUBLE (vy))
            continue;
          px = g_value_get_double (vx) * width;
          py = g_value_get_double (vy) * height;
          if (isfinite (px) && isfinite (py) && fabs (px) < 1e6
              && fabs (py) < 1e6)
            kestrel_draw_point (&canvas, (gint) px, (gint) py, thickness,
                color);
        }
      }
    }

    if (set.show_labels) {
      g_string_assign (text, label ? label : "");
      if (set.show_confidence && confidence >= 0)
        g_string_append_printf (text, " %.0f%%", confidence * 100.0);
      if (set.show_track_id && id > 0)
        g_string_append_printf (text, " #%d", id);
      append_classes (text, roi, set.show_confidence);
      draw_label (&canvas, roi->x, roi->y, roi->h, scale, text->str, color);
    }
  }
  g_string_free (text, TRUE);
  return GST_FLOW_OK;
}

static gboolean
gst_kestrel_overlay_start (GstBaseTransform * trans)
{
  GstKestrelOverlay *self = GST_KESTREL_OVERLAY (trans);

  self->fps_window_start = 0;
  self->fps_window_frames = 0;
  self->fps = 0.0;
  self->hud_refreshed = 0;
  self->inference_ms = -1.0;
  return TRUE;
}

static void
gst_kestrel_overlay_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstKestrelOverlay *self = GST_KESTREL_OVERLAY (object);
  OverlaySettings *s = &self->settings;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SHOW_LABELS:
      s->show_labels = g_value_get_boolean (value);
      break;
    case PROP_SHOW_CONFIDENCE:
      s->show_confidence = g_value_get_boolean (value);
      break;
    case PROP_SHOW_TRACK_ID:
      s->show_track_id = g_value_get_boolean (value);
      break;
    case PROP_SHOW_KEYPOINTS:
      s->show_keypoints = g_value_get_boolean (value);
      break;
    case PROP_HUD:
      s->hud = g_value_get_boolean (value);
      break;
    case PROP_THICKNESS:
      s->thickness = g_value_get_int (value);
      break;
    case PROP_FONT_SCALE:
      s->font_scale = g_value_get_int (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_overlay_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstKestrelOverlay *self = GST_KESTREL_OVERLAY (object);
  OverlaySettings *s = &self->settings;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SHOW_LABELS:
      g_value_set_boolean (value, s->show_labels);
      break;
    case PROP_SHOW_CONFIDENCE:
      g_value_set_boolean (value, s->show_confidence);
      break;
    case PROP_SHOW_TRACK_ID:
      g_value_set_boolean (value, s->show_track_id);
      break;
    case PROP_SHOW_KEYPOINTS:
      g_value_set_boolean (value, s->show_keypoints);
      break;
    case PROP_HUD:
      g_value_set_boolean (value, s->hud);
      break;
    case PROP_THICKNESS:
      g_value_set_int (value, s->thickness);
      break;
    case PROP_FONT_SCALE:
      g_value_set_int (value, s->font_scale);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_overlay_class_init (GstKestrelOverlayClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING;

  GST_DEBUG_CATEGORY_INIT (gst_kestrel_overlay_debug, "kestreloverlay", 0,
      "Kestrel overlay");

  gobject_class->set_property = gst_kestrel_overlay_set_property;
  gobject_class->get_property = gst_kestrel_overlay_get_property;

  g_object_class_install_property (gobject_class, PROP_SHOW_LABELS,
      g_param_spec_boolean ("show-labels", "Show labels",
          "Draw a label line above each box (label, confidence, track id, "
          "classes)", DEFAULT_SHOW_LABELS, flags));
  g_object_class_install_property (gobject_class, PROP_SHOW_CONFIDENCE,
      g_param_spec_boolean ("show-confidence", "Show confidence",
          "Put the confidence, in percent, in the label line",
          DEFAULT_SHOW_CONFIDENCE, flags));
  g_object_class_install_property (gobject_class, PROP_SHOW_TRACK_ID,
      g_param_spec_boolean ("show-track-id", "Show track id",
          "Put the tracker's id (#n) in the label line",
          DEFAULT_SHOW_TRACK_ID, flags));
  g_object_class_install_property (gobject_class, PROP_SHOW_KEYPOINTS,
      g_param_spec_boolean ("show-keypoints", "Show keypoints",
          "Draw the detection's keypoints (eyes, nose, ... of a face)",
          DEFAULT_SHOW_KEYPOINTS, flags));
  g_object_class_install_property (gobject_class, PROP_HUD,
      g_param_spec_boolean ("hud", "HUD",
          "Draw a status line at the top: frames per second seen here, mean "
          "inference ms of the nearest Kestrel inference element upstream, "
          "objects on the frame", DEFAULT_HUD, flags));
  g_object_class_install_property (gobject_class, PROP_THICKNESS,
      g_param_spec_int ("thickness", "Thickness",
          "Box line width in pixels (0: frame height / 360, rounded, at "
          "least 1)", 0, 64, DEFAULT_THICKNESS, flags));
  g_object_class_install_property (gobject_class, PROP_FONT_SCALE,
      g_param_spec_int ("font-scale", "Font scale",
          "Size of a font pixel in frame pixels; glyphs are 5x7 font pixels "
          "(0: frame height / 360, rounded, at least 1)", 0, 16,
          DEFAULT_FONT_SCALE, flags));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Kestrel overlay", "Filter/Effect/Video",
      "Draws detected objects, track ids, classes, keypoints and a status "
      "line into raw video", "Kestrel developers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_kestrel_overlay_start);
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_kestrel_overlay_set_info);
  filter_class->transform_frame_ip =
      GST_DEBUG_FUNCPTR (gst_kestrel_overlay_transform_frame_ip);
}

static void
gst_kestrel_overlay_init (GstKestrelOverlay * self)
{
  self->settings.show_labels = DEFAULT_SHOW_LABELS;
  self->settings.show_confidence = DEFAULT_SHOW_CONFIDENCE;
  self->settings.show_track_id = DEFAULT_SHOW_TRACK_ID;
  self->settings.show_keypoints = DEFAULT_SHOW_KEYPOINTS;
  self->settings.hud = DEFAULT_HUD;
  self->settings.thickness = DEFAULT_THICKNESS;
  self->settings.font_scale = DEFAULT_FONT_SCALE;
  self->inference_ms = -1.0;
  self->frame_quark = g_quark_from_static_string ("frame");
}
