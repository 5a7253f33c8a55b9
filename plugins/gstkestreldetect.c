/* kestreldetect: runs a detection model (SSD faces, DBNet text) on raw video
 * frames and attaches one GstVideoRegionOfInterestMeta per object. */

/**
 * SECTION:element-kestreldetect
 * @title: kestreldetect
 *
 * Runs a detection model — a compiled `.kestrel`, ONNX or TFLite file whose
 * sidecar names an `ssd` or `dbnet` decoder — on raw video and attaches one
 * #GstVideoRegionOfInterestMeta per object, as Intel DL Streamer does:
 * roi_type is the label, x/y/w/h are buffer pixels, and a params structure
 * "detection" holds x_min, y_min, x_max, y_max (gdouble, normalized to the
 * frame), confidence (gdouble), label_id (gint), label (string) and stale
 * (gboolean), plus keypoints (normalized x,y pairs) and keypoint-names when
 * the model has keypoints, and quad (8 normalized corner coordinates) for
 * rotated text boxes.
 *
 * Frames in I420, NV12, YUY2, RGB, BGR, RGBx or BGRx go in as they are: the
 * element crops (`roi`), resizes, converts and normalizes them into the
 * model's input itself, so no videoconvert or videoscale is needed. Float
 * models run in FP32 (the log says so at INFO level); INT8 `.kestrel` models
 * run quantized.
 *
 * Threading: with a non-live source (mode=auto or sync) each due frame waits
 * for its own inference on the streaming thread. With a live source
 * (mode=auto or async) a worker thread runs the model: each frame waits at
 * most half a frame duration, then leaves with the latest results (marked
 * stale if they come from an earlier frame); a frame arriving while the
 * worker is busy replaces the one waiting for it, which counts as dropped in
 * `stats`. The LATENCY query adds that wait (async) or the inference time
 * (sync). Changing `model` (or `config`, `threads`) while playing loads the
 * new model on another thread and swaps it in between two frames; a model
 * that fails to load leaves the old one running and posts a warning.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=clip.avi ! decodebin ! kestreldetect model=face_detection_full_range.tflite message=true ! fakesink -m
 * gst-launch-1.0 v4l2src ! kestreldetect model=face.kestrel interval=2 ! kestreloverlay ! videoconvert ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <string.h>

#include "gstkestreldetect.h"

GST_DEBUG_CATEGORY_STATIC (gst_kestrel_detect_debug);
#define GST_CAT_DEFAULT gst_kestrel_detect_debug

#define DEFAULT_NMS_IOU -1.0
#define DEFAULT_MAX_DETECTIONS -1
#define DEFAULT_OBJECT_CLASS NULL

enum
{
  PROP_0,
  PROP_NMS_IOU,
  PROP_MAX_DETECTIONS,
  PROP_OBJECT_CLASS,
};

struct _GstKestrelDetect
{
  GstKestrelInfer parent;

  /* under the object lock */
  gdouble nms_iou;
  gint max_detections;
  gchar *object_class_text;
  gchar **object_class;         /* NULL: every label */
};

G_DEFINE_TYPE (GstKestrelDetect, gst_kestrel_detect, GST_TYPE_KESTREL_INFER);
GST_ELEMENT_REGISTER_DEFINE (kestreldetect, "kestreldetect", GST_RANK_NONE,
    GST_TYPE_KESTREL_DETECT);

/* One detection, owning its strings: results outlive the model that made
 * them (a swap may free its sidecar while frames still carry them). */
typedef struct
{
  kestrel_object object;
  gchar *label;
} DetectObject;

typedef struct
{
  GArray *objects;              /* DetectObject */
  gchar **keypoint_names;
} DetectData;

static void
detect_data_free (gpointer data)
{
  DetectData *d = data;

  for (guint i = 0; i < d->objects->len; i++)
    g_free (g_array_index (d->objects, DetectObject, i).label);
  g_array_unref (d->objects);
  g_strfreev (d->keypoint_names);
  g_free (d);
}

static gboolean
gst_kestrel_detect_check_model (GstKestrelInfer * infer,
    const KestrelInferModel * model, GError ** error)
{
  kestrel_decoder_type d = model->sidecar.decoder;

  if (d == KESTREL_DECODER_SSD || d == KESTREL_DECODER_DBNET)
    return TRUE;
  g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE,
      "model '%s' is not a detector (its sidecar's decoder is '%s'); "
      "kestreldetect needs an ssd or dbnet model%s", model->path,
      d == KESTREL_DECODER_CLASSIFY ? "classify" : "none",
      d == KESTREL_DECODER_CLASSIFY ? " (use kestrelclassify for this one)" :
      "");
  return FALSE;
}

static void
gst_kestrel_detect_plan (GstKestrelInfer * infer, GstBuffer * buffer,
    const GstVideoInfo * info, guint64 frame_number, const KestrelRect * roi,
    GArray * regions)
{
  KestrelRegion r = {.rect = *roi,.object_id = -1,.roi_id = -1 };

  g_array_append_val (regions, r);
}

static gpointer
gst_kestrel_detect_process (GstKestrelInfer * infer, KestrelInferModel * model,
    const KestrelFrame * frame, const KestrelRegion * regions,
    guint num_regions, const KestrelDecodeSettings * base_settings,
    GError ** error)
{
  GstKestrelDetect *self = GST_KESTREL_DETECT (infer);
  KestrelDecodeSettings settings = *base_settings;
  DetectData *d = g_new0 (DetectData, 1);
  kestrel_result res = { 0 };

  d->objects = g_array_new (FALSE, FALSE, sizeof (DetectObject));
  if (num_regions == 0)
    return d;
  GST_OBJECT_LOCK (self);
  settings.nms_iou = self->nms_iou;
  settings.max_detections = self->max_detections;
  GST_OBJECT_UNLOCK (self);

  for (guint i = 0; i < num_regions; i++) {
    if (!gst_kestrel_infer_run_region (infer, model, frame, &regions[i].rect,
            &settings, &res, error))
      goto error;
    for (size_t k = 0; k < res.num_objects; k++) {
      DetectObject o = {.object = res.objects[k] };
      gchar buf[256];
      o.label = g_strdup (gst_kestrel_infer_label (infer, o.object.label,
              o.object.label_id, buf, sizeof (buf)));
      o.object.label = NULL;
      g_array_append_val (d->objects, o);
    }
  }
  if (model->sidecar.num_keypoint_names > 0) {
    gint n = model->sidecar.num_keypoint_names;
    d->keypoint_names = g_new0 (gchar *, n + 1);
    for (gint k = 0; k < n; k++)
      d->keypoint_names[k] = g_strdup (model->sidecar.keypoint_names[k]);
  }
  kestrel_result_free (&res);
  return d;

error:
  kestrel_result_free (&res);
  detect_data_free (d);
  return NULL;
}

static void
append_doubles (GstStructure * s, const gchar * field, const gdouble * v,
    guint n)
{
  GValue array = G_VALUE_INIT, item = G_VALUE_INIT;

  g_value_init (&array, GST_TYPE_ARRAY);
  g_value_init (&item, G_TYPE_DOUBLE);
  for (guint i = 0; i < n; i++) {
    g_value_set_double (&item, v[i]);
    gst_value_array_append_value (&array, &item);
  }
  g_value_unset (&item);
  gst_structure_take_value (s, field, &array);
}

static void
gst_kestrel_detect_attach (GstKestrelInfer * infer, GstBuffer * buffer,
    const GstVideoInfo * info, guint64 frame_number,
    KestrelInferResult * result, gboolean stale, GValue * objects)
{
  GstKestrelDetect *self = GST_KESTREL_DETECT (infer);
  DetectData *d = result ? result->data : NULL;
  gint fw = GST_VIDEO_INFO_WIDTH (info), fh = GST_VIDEO_INFO_HEIGHT (info);
  gchar **classes;

  if (!d)
    return;
  GST_OBJECT_LOCK (self);
  classes = g_strdupv (self->object_class);
  GST_OBJECT_UNLOCK (self);

  for (guint i = 0; i < d->objects->len; i++) {
    DetectObject *o = &g_array_index (d->objects, DetectObject, i);
    const kestrel_object *ko = &o->object;
    GstVideoRegionOfInterestMeta *meta;
    GstStructure *s;
    gint x0, y0, x1, y1;

    if (!gst_kestrel_infer_class_wanted (classes, o->label))
      continue;
    x0 = CLAMP ((gint) floorf (ko->x), 0, fw);
    y0 = CLAMP ((gint) floorf (ko->y), 0, fh);
    x1 = CLAMP ((gint) ceilf (ko->x + ko->w), 0, fw);
    y1 = CLAMP ((gint) ceilf (ko->y + ko->h), 0, fh);
    if (x1 <= x0 || y1 <= y0)
      continue;

    meta = gst_buffer_add_video_region_of_interest_meta (buffer, o->label,
        x0, y0, x1 - x0, y1 - y0);
    s = gst_structure_new ("detection",
        "x_min", G_TYPE_DOUBLE, CLAMP (ko->x / fw, 0.0, 1.0),
        "y_min", G_TYPE_DOUBLE, CLAMP (ko->y / fh, 0.0, 1.0),
        "x_max", G_TYPE_DOUBLE, CLAMP ((ko->x + ko->w) / fw, 0.0, 1.0),
        "y_max", G_TYPE_DOUBLE, CLAMP ((ko->y + ko->h) / fh, 0.0, 1.0),
        "confidence", G_TYPE_DOUBLE, (gdouble) ko->confidence,
        "label_id", G_TYPE_INT, ko->label_id,
        "label", G_TYPE_STRING, o->label,
        "stale", G_TYPE_BOOLEAN, stale, NULL);
    if (ko->num_keypoints > 0) {
      gdouble kp[2 * KESTREL_MAX_KEYPOINTS];
      for (gint k = 0; k < ko->num_keypoints; k++) {
        kp[2 * k] = ko->keypoints[k].x / fw;
        kp[2 * k + 1] = ko->keypoints[k].y / fh;
      }
      append_doubles (s, "keypoints", kp, 2 * ko->num_keypoints);
      if (d->keypoint_names
          && g_strv_length (d->keypoint_names) == (guint) ko->num_keypoints) {
        GValue names = G_VALUE_INIT, item = G_VALUE_INIT;
        g_value_init (&names, GST_TYPE_ARRAY);
        g_value_init (&item, G_TYPE_STRING);
        for (gint k = 0; k < ko->num_keypoints; k++) {
          g_value_set_string (&item, d->keypoint_names[k]);
          gst_value_array_append_value (&names, &item);
        }
        g_value_unset (&item);
        gst_structure_take_value (s, "keypoint-names", &names);
      }
    }
    if (ko->has_quad) {
      gdouble q[8];
      for (gint k = 0; k < 4; k++) {
        q[2 * k] = ko->quad[k].x / fw;
        q[2 * k + 1] = ko->quad[k].y / fh;
      }
      append_doubles (s, "quad", q, 8);
    }
    gst_video_region_of_interest_meta_add_param (meta, s);

    if (objects)
      gst_kestrel_infer_append_object (objects, o->label, ko->confidence,
          x0, y0, x1 - x0, y1 - y0, -1);
  }
  g_strfreev (classes);
}

static void
gst_kestrel_detect_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstKestrelDetect *self = GST_KESTREL_DETECT (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_NMS_IOU:
      self->nms_iou = g_value_get_double (value);
      break;
    case PROP_MAX_DETECTIONS:
      self->max_detections = g_value_get_int (value);
      break;
    case PROP_OBJECT_CLASS:{
      const gchar *text = g_value_get_string (value);
      g_free (self->object_class_text);
      g_strfreev (self->object_class);
      self->object_class_text = g_strdup (text);
      self->object_class = gst_kestrel_infer_parse_classes (text);
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_detect_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstKestrelDetect *self = GST_KESTREL_DETECT (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_NMS_IOU:
      g_value_set_double (value, self->nms_iou);
      break;
    case PROP_MAX_DETECTIONS:
      g_value_set_int (value, self->max_detections);
      break;
    case PROP_OBJECT_CLASS:
      g_value_set_string (value, self->object_class_text);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_detect_finalize (GObject * object)
{
  GstKestrelDetect *self = GST_KESTREL_DETECT (object);

  g_free (self->object_class_text);
  g_strfreev (self->object_class);
  G_OBJECT_CLASS (gst_kestrel_detect_parent_class)->finalize (object);
}

static void
gst_kestrel_detect_class_init (GstKestrelDetectClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstKestrelInferClass *infer_class = GST_KESTREL_INFER_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_kestrel_detect_debug, "kestreldetect", 0,
      "Kestrel object detection");

  gobject_class->set_property = gst_kestrel_detect_set_property;
  gobject_class->get_property = gst_kestrel_detect_get_property;
  gobject_class->finalize = gst_kestrel_detect_finalize;

  g_object_class_install_property (gobject_class, PROP_NMS_IOU,
      g_param_spec_double ("nms-iou", "NMS IoU",
          "Overlap (intersection over union) above which non-maximum "
          "suppression merges or drops boxes, 0..1 (-1: the sidecar's)",
          -1.0, 1.0, DEFAULT_NMS_IOU, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MAX_DETECTIONS,
      g_param_spec_int ("max-detections", "Max detections",
          "Most objects reported per frame, best first (-1: the sidecar's)",
          -1, 100000, DEFAULT_MAX_DETECTIONS, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_OBJECT_CLASS,
      g_param_spec_string ("object-class", "Object class",
          "Comma-separated labels to report; other objects are left out "
          "(NULL: all)", DEFAULT_OBJECT_CLASS, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_set_static_metadata (element_class,
      "Kestrel object detection", "Filter/Analyzer/Video",
      "Detects objects (faces, text) in raw video with a Kestrel model and "
      "attaches them as region-of-interest metadata",
      "Kestrel developers");

  infer_class->check_model = gst_kestrel_detect_check_model;
  infer_class->plan = gst_kestrel_detect_plan;
  infer_class->process = gst_kestrel_detect_process;
  infer_class->free_data = detect_data_free;
  infer_class->attach = gst_kestrel_detect_attach;
}

static void
gst_kestrel_detect_init (GstKestrelDetect * self)
{
  self->nms_iou = DEFAULT_NMS_IOU;
  self->max_detections = DEFAULT_MAX_DETECTIONS;
}
