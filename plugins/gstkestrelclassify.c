/* kestrelclassify: runs a classification model on whole frames or on each
 * region of interest a detector attached, and stores the best class. */

/**
 * SECTION:element-kestrelclassify
 * @title: kestrelclassify
 *
 * Runs a classification model (a `.kestrel`, ONNX or TFLite file whose
 * sidecar names the `classify` decoder) on raw video, in I420, NV12, YUY2,
 * RGB, BGR, RGBx or BGRx, cropping, resizing and normalizing by itself.
 *
 * What it classifies (`inference-region`):
 * - roi-list: each #GstVideoRegionOfInterestMeta that carries a "detection"
 *   params structure (as kestreldetect writes), optionally only those whose
 *   label is in `object-class`. The best class goes into that ROI's params
 *   as a structure named after the model's first output (for example
 *   "softmax_0.tmp_0"), with label (string), label_id (gint), confidence
 *   (gdouble) and stale (gboolean).
 * - full-frame: the whole frame (or the `roi` property's part of it). The
 *   result goes on the frame as a ROI meta covering the classified area,
 *   with roi_type "frame" and the same structure as above as its params
 *   (no "detection" structure, so trackers and overlays can tell it apart).
 * - auto (default): roi-list when the frame carries detection ROIs, else
 *   full-frame.
 *
 * Objects that a tracker has given an id ("object_id" params with field id)
 * are re-classified only every `reclassify-interval` frames; in between
 * they carry the last class, marked stale. The threading model, model swaps,
 * `interval`, `stats` and the bus message are those of kestreldetect (see
 * its documentation); the message's objects are the classified regions,
 * with the class as label and the tracker's id as track-id.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=clip.avi ! decodebin ! kestreldetect model=face.kestrel ! kestreltrack ! kestrelclassify model=age.onnx reclassify-interval=10 ! kestreloverlay ! videoconvert ! autovideosink
 * gst-launch-1.0 videotestsrc num-buffers=10 ! kestrelclassify model=ch_ppocr_mobile_v2.0_cls_infer.onnx inference-region=full-frame message=true ! fakesink -m
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstkestrelclassify.h"

GST_DEBUG_CATEGORY_STATIC (gst_kestrel_classify_debug);
#define GST_CAT_DEFAULT gst_kestrel_classify_debug

#define GST_TYPE_KESTREL_CLASSIFY_REGION (gst_kestrel_classify_region_get_type ())

typedef enum
{
  REGION_AUTO = 0,
  REGION_FULL_FRAME = 1,
  REGION_ROI_LIST = 2,
} GstKestrelClassifyRegion;

#define DEFAULT_OBJECT_CLASS NULL
#define DEFAULT_RECLASSIFY_INTERVAL 1
#define DEFAULT_INFERENCE_REGION REGION_AUTO

/* Forget a tracked object's class once it has been gone this long. */
#define CACHE_EXPIRY_FRAMES 300

enum
{
  PROP_0,
  PROP_OBJECT_CLASS,
  PROP_RECLASSIFY_INTERVAL,
  PROP_INFERENCE_REGION,
};

typedef struct
{
  gchar *label;
  gint label_id;
  gdouble confidence;
  guint64 classified_frame;
  guint64 seen_frame;
} CacheEntry;

struct _GstKestrelClassify
{
  GstKestrelInfer parent;

  /* under the object lock */
  gchar *object_class_text;
  gchar **object_class;
  guint reclassify_interval;
  GstKestrelClassifyRegion region;

  /* streaming thread only */
  GHashTable *cache;            /* object id -> CacheEntry */
  guint64 ingested_frame;       /* newest result folded into the cache */
  gboolean ingested_any;
};

G_DEFINE_TYPE (GstKestrelClassify, gst_kestrel_classify,
    GST_TYPE_KESTREL_INFER);
GST_ELEMENT_REGISTER_DEFINE (kestrelclassify, "kestrelclassify",
    GST_RANK_NONE, GST_TYPE_KESTREL_CLASSIFY);

static GType
gst_kestrel_classify_region_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {REGION_AUTO, "Each detection ROI if the frame has any, else the frame",
        "auto"},
    {REGION_FULL_FRAME, "The whole frame (or the roi property's part)",
        "full-frame"},
    {REGION_ROI_LIST, "Each detection ROI", "roi-list"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstKestrelClassifyRegion", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* One classified region; label owned (results outlive models). */
typedef struct
{
  KestrelRegion region;
  gboolean has_class;
  gchar *label;
  gint label_id;
  gdouble confidence;
} ClassifyItem;

typedef struct
{
  GArray *items;                /* ClassifyItem */
  gchar *name;                  /* params structure name */
} ClassifyData;

static void
classify_data_free (gpointer data)
{
  ClassifyData *d = data;

  for (guint i = 0; i < d->items->len; i++)
    g_free (g_array_index (d->items, ClassifyItem, i).label);
  g_array_unref (d->items);
  g_free (d->name);
  g_free (d);
}

static void
cache_entry_free (gpointer data)
{
  CacheEntry *e = data;

  g_free (e->label);
  g_free (e);
}

static gboolean
gst_kestrel_classify_check_model (GstKestrelInfer * infer,
    const KestrelInferModel * model, GError ** error)
{
  kestrel_decoder_type d = model->sidecar.decoder;

  if (d == KESTREL_DECODER_CLASSIFY)
    return TRUE;
  g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE,
      "model '%s' is not a classifier (its sidecar's decoder is '%s'); "
      "kestrelclassify needs a classify model%s", model->path,
      d == KESTREL_DECODER_SSD ? "ssd" : d == KESTREL_DECODER_DBNET ?
      "dbnet" : "none", d == KESTREL_DECODER_NONE ? "" :
      " (use kestreldetect for this one)");
  return FALSE;
}

/* Detection ROIs are the ones we classify; our own "frame" ROIs and
 * foreign ROIs without "detection" params are not objects. */
static gboolean
roi_is_detection (GstVideoRegionOfInterestMeta * roi)
{
  return gst_video_region_of_interest_meta_get_param (roi,
      "detection") != NULL;
}

static gboolean
buffer_has_detections (GstBuffer * buffer)
{
  gpointer state = NULL;
  GstMeta *meta;

  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    if (roi_is_detection ((GstVideoRegionOfInterestMeta *) meta))
      return TRUE;
  return FALSE;
}

static gboolean
use_roi_list (GstKestrelClassifyRegion region, GstBuffer * buffer)
{
  if (region == REGION_AUTO)
    return buffer_has_detections (buffer);
  return region == REGION_ROI_LIST;
}

static void
gst_kestrel_classify_plan (GstKestrelInfer * infer, GstBuffer * buffer,
    const GstVideoInfo * info, guint64 frame_number, const KestrelRect * roi,
    GArray * regions)
{
  GstKestrelClassify *self = GST_KESTREL_CLASSIFY (infer);
  GstKestrelClassifyRegion mode;
  guint reclassify;
  gchar **classes;
  gpointer state = NULL;
  GstMeta *meta;

  GST_OBJECT_LOCK (self);
  mode = self->region;
  reclassify = self->reclassify_interval;
  classes = g_strdupv (self->object_class);
  GST_OBJECT_UNLOCK (self);

  if (!use_roi_list (mode, buffer)) {
    KestrelRegion r = {.rect = *roi,.object_id = -1,.roi_id = -1 };
    g_array_append_val (regions, r);
    goto done;
  }
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *m = (GstVideoRegionOfInterestMeta *) meta;
    KestrelRegion r = {.object_id = -1 };
    CacheEntry *e;

    if (!roi_is_detection (m)
        || !gst_kestrel_infer_class_wanted (classes,
            g_quark_to_string (m->roi_type)))
      continue;
    r.rect.x = (gint) m->x;
    r.rect.y = (gint) m->y;
    r.rect.width = (gint) m->w;
    r.rect.height = (gint) m->h;
    r.roi_id = m->id;
    r.object_id = gst_kestrel_infer_roi_object_id (m);
    /* Only the part inside the roi property's area is looked at. */
    {
      KestrelRect in_roi = {.x = r.rect.x - roi->x,.y = r.rect.y - roi->y,
        .width = r.rect.width,.height = r.rect.height
      };
      if (!kestrel_rect_clip (&in_roi, roi->width, roi->height))
        continue;
      r.rect.x = in_roi.x + roi->x;
      r.rect.y = in_roi.y + roi->y;
      r.rect.width = in_roi.width;
      r.rect.height = in_roi.height;
    }
    if (r.object_id >= 0) {
      e = g_hash_table_lookup (self->cache, GINT_TO_POINTER (r.object_id));
      if (e && frame_number - e->classified_frame < reclassify)
        continue;
    }
    g_array_append_val (regions, r);
  }

done:
  g_strfreev (classes);
}

static gpointer
gst_kestrel_classify_process (GstKestrelInfer * infer,
    KestrelInferModel * model, const KestrelFrame * frame,
    const KestrelRegion * regions, guint num_regions,
    const KestrelDecodeSettings * settings, GError ** error)
{
  ClassifyData *d = g_new0 (ClassifyData, 1);
  kestrel_result res = { 0 };

  d->items = g_array_new (FALSE, FALSE, sizeof (ClassifyItem));
  d->name = g_strdup (model ? model->output_name : "classification");
  for (guint i = 0; i < num_regions; i++) {
    ClassifyItem item = {.region = regions[i] };
    if (!gst_kestrel_infer_run_region (infer, model, frame, &regions[i].rect,
            settings, &res, error))
      goto error;
    if (res.num_classes > 0) {
      gchar buf[256];
      item.has_class = TRUE;
      item.label_id = res.classes[0].label_id;
      item.confidence = res.classes[0].score;
      item.label = g_strdup (gst_kestrel_infer_label (infer,
              res.classes[0].label, item.label_id, buf, sizeof (buf)));
    }
    g_array_append_val (d->items, item);
  }
  kestrel_result_free (&res);
  return d;

error:
  kestrel_result_free (&res);
  classify_data_free (d);
  return NULL;
}

/* Folds a new result's tracked objects into the cache, once. */
static void
ingest (GstKestrelClassify * self, KestrelInferResult * result)
{
  ClassifyData *d = result->data;

  if (!d || (self->ingested_any
          && result->frame_number <= self->ingested_frame))
    return;
  self->ingested_any = TRUE;
  self->ingested_frame = result->frame_number;
  for (guint i = 0; i < d->items->len; i++) {
    ClassifyItem *it = &g_array_index (d->items, ClassifyItem, i);
    CacheEntry *e;
    if (it->region.object_id < 0 || !it->has_class)
      continue;
    e = g_new0 (CacheEntry, 1);
    e->label = g_strdup (it->label);
    e->label_id = it->label_id;
    e->confidence = it->confidence;
    e->classified_frame = e->seen_frame = result->frame_number;
    g_hash_table_replace (self->cache, GINT_TO_POINTER (it->region.object_id),
        e);
  }
}

static gboolean
entry_expired (gpointer key, gpointer value, gpointer user_data)
{
  CacheEntry *e = value;
  guint64 now = *(guint64 *) user_data;

  return now - e->seen_frame > CACHE_EXPIRY_FRAMES;
}

static gdouble
rect_iou (const KestrelRect * a, const KestrelRect * b)
{
  gint x0 = MAX (a->x, b->x), y0 = MAX (a->y, b->y);
  gint x1 = MIN (a->x + a->width, b->x + b->width);
  gint y1 = MIN (a->y + a->height, b->y + b->height);
  gdouble inter, uni;

  if (x1 <= x0 || y1 <= y0)
    return 0;
  inter = (gdouble) (x1 - x0) * (y1 - y0);
  uni = (gdouble) a->width * a->height + (gdouble) b->width * b->height -
      inter;
  return uni > 0 ? inter / uni : 0;
}

static void
add_class (GstVideoRegionOfInterestMeta * m, const gchar * name,
    const gchar * label, gint label_id, gdouble confidence, gboolean stale)
{
  if (gst_video_region_of_interest_meta_get_param (m, name))
    return;                     /* an upstream classifier said it already */
  gst_video_region_of_interest_meta_add_param (m,
      gst_structure_new (name, "label", G_TYPE_STRING, label,
          "label_id", G_TYPE_INT, label_id,
          "confidence", G_TYPE_DOUBLE, confidence,
          "stale", G_TYPE_BOOLEAN, stale, NULL));
}

static void
gst_kestrel_classify_attach (GstKestrelInfer * infer, GstBuffer * buffer,
    const GstVideoInfo * info, guint64 frame_number,
    KestrelInferResult * result, gboolean stale, GValue * objects)
{
  GstKestrelClassify *self = GST_KESTREL_CLASSIFY (infer);
  ClassifyData *d = result ? result->data : NULL;
  GstKestrelClassifyRegion mode;
  gchar **classes;
  gpointer state = NULL;
  GstMeta *meta;
  GPtrArray *rois;

  if (result)
    ingest (self, result);
  if (frame_number % 64 == 0)
    g_hash_table_foreach_remove (self->cache, entry_expired, &frame_number);

  GST_OBJECT_LOCK (self);
  mode = self->region;
  classes = g_strdupv (self->object_class);
  GST_OBJECT_UNLOCK (self);

  if (!use_roi_list (mode, buffer)) {
    ClassifyItem *it = NULL;
    GstVideoRegionOfInterestMeta *m;
    for (guint i = 0; d && i < d->items->len; i++) {
      ClassifyItem *c = &g_array_index (d->items, ClassifyItem, i);
      if (c->region.roi_id < 0 && c->has_class)
        it = c;
    }
    if (!it)
      goto done;
    m = gst_buffer_add_video_region_of_interest_meta (buffer, "frame",
        it->region.rect.x, it->region.rect.y, it->region.rect.width,
        it->region.rect.height);
    add_class (m, d->name, it->label, it->label_id, it->confidence, stale);
    if (objects)
      gst_kestrel_infer_append_object (objects, it->label, it->confidence,
          it->region.rect.x, it->region.rect.y, it->region.rect.width,
          it->region.rect.height, -1);
    goto done;
  }

  /* Collect first: adding params does not add metas, but keep the walk
   * separate from the writes anyway. */
  rois = g_ptr_array_new ();
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *m = (GstVideoRegionOfInterestMeta *) meta;
    if (roi_is_detection (m)
        && gst_kestrel_infer_class_wanted (classes,
            g_quark_to_string (m->roi_type)))
      g_ptr_array_add (rois, m);
  }
  for (guint r = 0; r < rois->len; r++) {
    GstVideoRegionOfInterestMeta *m = g_ptr_array_index (rois, r);
    gint object_id = gst_kestrel_infer_roi_object_id (m);
    KestrelRect box = { (gint) m->x, (gint) m->y, (gint) m->w, (gint) m->h };
    const gchar *label = NULL;
    gint label_id = -1;
    gdouble confidence = 0;
    gboolean item_stale = TRUE;
    CacheEntry *e = object_id >= 0 ? g_hash_table_lookup (self->cache,
        GINT_TO_POINTER (object_id)) : NULL;

    if (e) {
      e->seen_frame = frame_number;
      label = e->label;
      label_id = e->label_id;
      confidence = e->confidence;
      item_stale = e->classified_frame != frame_number;
    } else if (d) {
      /* Untracked: the same ROI of this frame, else the best overlap in
       * the latest result. */
      ClassifyItem *best = NULL;
      gdouble best_iou = 0.5;
      for (guint i = 0; i < d->items->len; i++) {
        ClassifyItem *c = &g_array_index (d->items, ClassifyItem, i);
        gdouble iou;
        if (!c->has_class || c->region.roi_id < 0)
          continue;
        if (!stale && c->region.roi_id == m->id) {
          best = c;
          break;
        }
        iou = rect_iou (&c->region.rect, &box);
        if (iou >= best_iou) {
          best_iou = iou;
          best = c;
        }
      }
      if (best) {
        label = best->label;
        label_id = best->label_id;
        confidence = best->confidence;
        item_stale = stale;
      }
    }
    if (!label)
      continue;
    add_class (m, d ? d->name : "classification", label, label_id,
        confidence, item_stale);
    if (objects)
      gst_kestrel_infer_append_object (objects, label, confidence, box.x,
          box.y, box.width, box.height, object_id);
  }
  g_ptr_array_unref (rois);

done:
  g_strfreev (classes);
}

static gboolean
gst_kestrel_classify_stop (GstBaseTransform * trans)
{
  GstKestrelClassify *self = GST_KESTREL_CLASSIFY (trans);
  gboolean ret;

  ret = GST_BASE_TRANSFORM_CLASS (gst_kestrel_classify_parent_class)->stop
      (trans);
  g_hash_table_remove_all (self->cache);
  self->ingested_any = FALSE;
  return ret;
}

static void
gst_kestrel_classify_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstKestrelClassify *self = GST_KESTREL_CLASSIFY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_OBJECT_CLASS:{
      const gchar *text = g_value_get_string (value);
      g_free (self->object_class_text);
      g_strfreev (self->object_class);
      self->object_class_text = g_strdup (text);
      self->object_class = gst_kestrel_infer_parse_classes (text);
      break;
    }
    case PROP_RECLASSIFY_INTERVAL:
      self->reclassify_interval = g_value_get_uint (value);
      break;
    case PROP_INFERENCE_REGION:
      self->region = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_classify_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstKestrelClassify *self = GST_KESTREL_CLASSIFY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_OBJECT_CLASS:
      g_value_set_string (value, self->object_class_text);
      break;
    case PROP_RECLASSIFY_INTERVAL:
      g_value_set_uint (value, self->reclassify_interval);
      break;
    case PROP_INFERENCE_REGION:
      g_value_set_enum (value, self->region);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_classify_finalize (GObject * object)
{
  GstKestrelClassify *self = GST_KESTREL_CLASSIFY (object);

  g_free (self->object_class_text);
  g_strfreev (self->object_class);
  g_hash_table_unref (self->cache);
  G_OBJECT_CLASS (gst_kestrel_classify_parent_class)->finalize (object);
}

static void
gst_kestrel_classify_class_init (GstKestrelClassifyClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstKestrelInferClass *infer_class = GST_KESTREL_INFER_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_kestrel_classify_debug, "kestrelclassify", 0,
      "Kestrel classification");

  gobject_class->set_property = gst_kestrel_classify_set_property;
  gobject_class->get_property = gst_kestrel_classify_get_property;
  gobject_class->finalize = gst_kestrel_classify_finalize;

  g_object_class_install_property (gobject_class, PROP_OBJECT_CLASS,
      g_param_spec_string ("object-class", "Object class",
          "Comma-separated ROI labels to classify; other ROIs are left alone "
          "(NULL: all)", DEFAULT_OBJECT_CLASS, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_RECLASSIFY_INTERVAL,
      g_param_spec_uint ("reclassify-interval", "Reclassify interval",
          "Classify a tracked object (one with an \"object_id\" params "
          "structure) again only every N frames; in between it keeps its "
          "last class, marked stale (1: every frame)", 1, G_MAXINT,
          DEFAULT_RECLASSIFY_INTERVAL, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_INFERENCE_REGION,
      g_param_spec_enum ("inference-region", "Inference region",
          "What to classify: each detection ROI (roi-list), the whole frame "
          "(full-frame, result in a ROI meta of type \"frame\"), or auto: "
          "ROIs when the frame has detections, else the frame",
          GST_TYPE_KESTREL_CLASSIFY_REGION, DEFAULT_INFERENCE_REGION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_set_static_metadata (element_class,
      "Kestrel classification", "Filter/Analyzer/Video",
      "Classifies raw video frames, or each detected object, with a Kestrel "
      "model and stores the class in region-of-interest metadata",
      "Kestrel developers");

  trans_class->stop = GST_DEBUG_FUNCPTR (gst_kestrel_classify_stop);

  infer_class->check_model = gst_kestrel_classify_check_model;
  infer_class->plan = gst_kestrel_classify_plan;
  infer_class->process = gst_kestrel_classify_process;
  infer_class->free_data = classify_data_free;
  infer_class->attach = gst_kestrel_classify_attach;

  gst_type_mark_as_plugin_api (GST_TYPE_KESTREL_CLASSIFY_REGION, 0);
}

static void
gst_kestrel_classify_init (GstKestrelClassify * self)
{
  self->reclassify_interval = DEFAULT_RECLASSIFY_INTERVAL;
  self->region = DEFAULT_INFERENCE_REGION;
  self->cache = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
      cache_entry_free);
}
