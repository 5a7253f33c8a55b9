/* kestreltrack: stable object ids across frames, from the detections that
 * kestreldetect attached, with the SORT-like tracker of kestreltracker.c. */

/**
 * SECTION:element-kestreltrack
 * @title: kestreltrack
 *
 * Follows the objects that an upstream detector attached as
 * #GstVideoRegionOfInterestMeta with a "detection" params structure (the DL
 * Streamer convention kestreldetect writes) and gives each one a stable id:
 * a params structure "object_id" with field id (gint, 1, 2, 3, ...) is added
 * to every ROI whose track is confirmed.
 *
 * Each track predicts its box with a constant-velocity Kalman filter;
 * detections are matched to the predictions by IoU (the Hungarian
 * algorithm, same label only, at least `iou-threshold`). A new object gets
 * its id after `min-hits` frames in a row (so one-frame false positives get
 * none) and keeps it through up to `max-age` frames without a detection
 * (short occlusion, a missed detection). Objects of frames whose detections
 * are all stale (kestreldetect with interval > 1 repeats its last results)
 * keep the ids they had, without moving the tracks.
 *
 * The tracker runs in the streaming thread; it costs microseconds per
 * frame. A flush (seek) or a change of frame size starts it afresh.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=clip.avi ! decodebin ! kestreldetect model=face.kestrel ! kestreltrack max-age=30 ! kestreloverlay ! videoconvert ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <string.h>

#include <gst/video/video.h>

#include "gstkestreltrack.h"
#include "kestreltracker.h"

GST_DEBUG_CATEGORY_STATIC (gst_kestrel_track_debug);
#define GST_CAT_DEFAULT gst_kestrel_track_debug

#define DEFAULT_IOU_THRESHOLD 0.3
#define DEFAULT_MAX_AGE 15
#define DEFAULT_MIN_HITS 3

enum
{
  PROP_0,
  PROP_IOU_THRESHOLD,
  PROP_MAX_AGE,
  PROP_MIN_HITS,
  PROP_STATS,
};

/* What the last real (non-stale) update gave out, to label stale frames. */
typedef struct
{
  gint x, y, w, h;
  GQuark label;
  gint id;
} TrackedBox;

struct _GstKestrelTrack
{
  GstBaseTransform parent;

  /* under the object lock */
  kestrel_tracker_params params;
  gboolean params_changed;
  guint64 frames, updates, detections, identified;

  /* streaming thread only */
  kestrel_tracker *tracker;
  GArray *last;                 /* TrackedBox */
  gint width, height;
};

G_DEFINE_TYPE (GstKestrelTrack, gst_kestrel_track, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (kestreltrack, "kestreltrack", GST_RANK_NONE,
    GST_TYPE_KESTREL_TRACK);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));

static void
reset_tracker (GstKestrelTrack * self)
{
  if (self->tracker)
    kestrel_tracker_reset (self->tracker);
  if (self->last)
    g_array_set_size (self->last, 0);
}

static gboolean
gst_kestrel_track_start (GstBaseTransform * trans)
{
  GstKestrelTrack *self = GST_KESTREL_TRACK (trans);
  kestrel_tracker_params params;

  GST_OBJECT_LOCK (self);
  params = self->params;
  self->params_changed = FALSE;
  self->frames = self->updates = self->detections = self->identified = 0;
  GST_OBJECT_UNLOCK (self);

  self->tracker = kestrel_tracker_new (&params);
  if (!self->tracker)
    goto no_tracker;
  self->last = g_array_new (FALSE, FALSE, sizeof (TrackedBox));
  self->width = self->height = 0;
  return TRUE;

no_tracker:
  GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
      ("cannot create the tracker (out of memory or invalid properties)"));
  return FALSE;
}

static gboolean
gst_kestrel_track_stop (GstBaseTransform * trans)
{
  GstKestrelTrack *self = GST_KESTREL_TRACK (trans);

  kestrel_tracker_free (self->tracker);
  self->tracker = NULL;
  if (self->last)
    g_array_free (self->last, TRUE);
  self->last = NULL;
  return TRUE;
}

static gboolean
gst_kestrel_track_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstKestrelTrack *self = GST_KESTREL_TRACK (trans);
  GstStructure *s = gst_caps_get_structure (incaps, 0);
  gint width = 0, height = 0;

  gst_structure_get_int (s, "width", &width);
  gst_structure_get_int (s, "height", &height);
  /* Boxes of another frame size do not carry over. */
  if (width != self->width || height != self->height) {
    GST_DEBUG_OBJECT (self, "frame size %dx%d: tracks start afresh", width,
        height);
    reset_tracker (self);
    self->width = width;
    self->height = height;
  }
  return TRUE;
}

static gboolean
gst_kestrel_track_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstKestrelTrack *self = GST_KESTREL_TRACK (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP)
    reset_tracker (self);
  return GST_BASE_TRANSFORM_CLASS (gst_kestrel_track_parent_class)->sink_event
      (trans, event);
}

/* Replaces any earlier "object_id" params (a second tracker downstream of a
 * first one wins) with id. */
static void
set_object_id (GstVideoRegionOfInterestMeta * roi, gint id)
{
  GList *l = roi->params;

  while (l) {
    GList *next = l->next;
    if (gst_structure_has_name (l->data, "object_id")) {
      gst_structure_free (l->data);
      roi->params = g_list_delete_link (roi->params, l);
    }
    l = next;
  }
  if (id > 0)
    gst_video_region_of_interest_meta_add_param (roi,
        gst_structure_new ("object_id", "id", G_TYPE_INT, id, NULL));
}

static GstFlowReturn
gst_kestrel_track_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstKestrelTrack *self = GST_KESTREL_TRACK (trans);
  GPtrArray *rois = g_ptr_array_new ();
  GArray *boxes = g_array_new (FALSE, FALSE, sizeof (kestrel_track_box));
  gint *ids;
  gboolean all_stale = TRUE;
  gpointer state = NULL;
  GstMeta *meta;
  guint identified = 0;

  /* Property changes take effect at a frame boundary. */
  GST_OBJECT_LOCK (self);
  if (self->params_changed) {
    kestrel_tracker_set_params (self->tracker, &self->params);
    self->params_changed = FALSE;
  }
  GST_OBJECT_UNLOCK (self);

  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    GstStructure *det =
        gst_video_region_of_interest_meta_get_param (roi, "detection");
    kestrel_track_box b;
    gboolean stale = FALSE;

    if (!det)
      continue;                 /* frame-level classification and the like */
    b.x = roi->x;
    b.y = roi->y;
    b.w = roi->w;
    b.h = roi->h;
    if (!gst_structure_get_int (det, "label_id", &b.label_id))
      b.label_id = (gint) roi->roi_type;
    gst_structure_get_boolean (det, "stale", &stale);
    all_stale = all_stale && stale;
    g_ptr_array_add (rois, roi);
    g_array_append_val (boxes, b);
  }

  ids = g_new0 (gint, MAX (boxes->len, 1));
  if (rois->len > 0 && all_stale) {
    /* The detector repeated an earlier frame's boxes: hand out the ids that
     * those boxes got then, and do not count this as an observation. */
    for (guint i = 0; i < rois->len; i++) {
      GstVideoRegionOfInterestMeta *roi = rois->pdata[i];
      for (guint k = 0; k < self->last->len; k++) {
        TrackedBox *t = &g_array_index (self->last, TrackedBox, k);
        if (t->x == (gint) roi->x && t->y == (gint) roi->y
            && t->w == (gint) roi->w && t->h == (gint) roi->h
            && t->label == roi->roi_type) {
          ids[i] = t->id;
          break;
        }
      }
    }
  } else {
    kestrel_tracker_update (self->tracker,
        (const kestrel_track_box *) boxes->data, (gint) boxes->len, ids);
    g_array_set_size (self->last, 0);
    for (guint i = 0; i < rois->len; i++) {
      GstVideoRegionOfInterestMeta *roi = rois->pdata[i];
      TrackedBox t = { roi->x, roi->y, roi->w, roi->h, roi->roi_type, ids[i] };
      g_array_append_val (self->last, t);
    }
  }

  for (guint i = 0; i < rois->len; i++) {
    set_object_id (rois->pdata[i], ids[i]);
    identified += ids[i] > 0;
  }

  GST_LOG_OBJECT (self, "frame %" GST_TIME_FORMAT ": %u objects, %u with ids%s",
      GST_TIME_ARGS (GST_BUFFER_PTS (buf)), rois->len, identified,
      rois->len && all_stale ? " (stale)" : "");

  GST_OBJECT_LOCK (self);
  self->frames++;
  self->updates += !(rois->len > 0 && all_stale);
  self->detections += rois->len;
  self->identified += identified;
  GST_OBJECT_UNLOCK (self);

  g_free (ids);
  g_array_free (boxes, TRUE);
  g_ptr_array_free (rois, TRUE);
  return GST_FLOW_OK;
}

static void
gst_kestrel_track_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstKestrelTrack *self = GST_KESTREL_TRACK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_IOU_THRESHOLD:
      self->params.iou_threshold = (float) g_value_get_double (value);
      self->params_changed = TRUE;
      break;
    case PROP_MAX_AGE:
      self->params.max_age = g_value_get_int (value);
      self->params_changed = TRUE;
      break;
    case PROP_MIN_HITS:
      self->params.min_hits = g_value_get_int (value);
      self->params_changed = TRUE;
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_track_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstKestrelTrack *self = GST_KESTREL_TRACK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_IOU_THRESHOLD:
      g_value_set_double (value, self->params.iou_threshold);
      break;
    case PROP_MAX_AGE:
      g_value_set_int (value, self->params.max_age);
      break;
    case PROP_MIN_HITS:
      g_value_set_int (value, self->params.min_hits);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, gst_structure_new ("kestrel-track-stats",
              "frames", G_TYPE_UINT64, self->frames,
              "updates", G_TYPE_UINT64, self->updates,
              "detections", G_TYPE_UINT64, self->detections,
              "identified", G_TYPE_UINT64, self->identified, NULL));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_track_class_init (GstKestrelTrackClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_kestrel_track_debug, "kestreltrack", 0,
      "Kestrel object tracking");

  gobject_class->set_property = gst_kestrel_track_set_property;
  gobject_class->get_property = gst_kestrel_track_get_property;

  g_object_class_install_property (gobject_class, PROP_IOU_THRESHOLD,
      g_param_spec_double ("iou-threshold", "IoU threshold",
          "Least overlap (intersection over union) between a track's "
          "predicted box and a detection for them to match, 0.01..1",
          0.01, 1.0, DEFAULT_IOU_THRESHOLD, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MAX_AGE,
      g_param_spec_int ("max-age", "Max age",
          "Frames a track survives without a matching detection (occlusion, "
          "missed detections) before its id is retired", 0, 100000,
          DEFAULT_MAX_AGE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MIN_HITS,
      g_param_spec_int ("min-hits", "Min hits",
          "Frames in a row an object must be detected before it gets an id "
          "(1: at once)", 1, 100000, DEFAULT_MIN_HITS, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Counters since start: frames, updates (frames with fresh "
          "detections or none), detections, identified (detections given "
          "an id)", GST_TYPE_STRUCTURE,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Kestrel object tracker", "Filter/Analyzer/Video",
      "Gives each detected object (region-of-interest metadata) a stable "
      "id across frames", "Kestrel developers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_kestrel_track_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_kestrel_track_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_kestrel_track_set_caps);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_kestrel_track_sink_event);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_kestrel_track_transform_ip);
  trans_class->passthrough_on_same_caps = FALSE;
}

static void
gst_kestrel_track_init (GstKestrelTrack * self)
{
  self->params.iou_threshold = DEFAULT_IOU_THRESHOLD;
  self->params.max_age = DEFAULT_MAX_AGE;
  self->params.min_hits = DEFAULT_MIN_HITS;
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}
