/* kestrelmetapublish: one JSON line per frame with the objects and classes
 * that the Kestrel elements attached (schema: docs/metadata-schema.md). */

/**
 * SECTION:element-kestrelmetapublish
 * @title: kestrelmetapublish
 *
 * Writes each frame's #GstVideoRegionOfInterestMeta results as one line of
 * JSON (schema version 1, documented in docs/metadata-schema.md) to the
 * file named by `location`, or to standard output when `location` is unset
 * or "-". Buffers pass through unchanged (the element is a passthrough
 * transform that only reads metadata).
 *
 * A line looks like (wrapped here):
 * |[
 * {"version":1,"frame":12,"timestamp":800000000,"width":1280,"height":720,
 *  "objects":[{"label":"face","label_id":0,"confidence":0.9731,
 *   "box":{"x":412,"y":118,"width":161,"height":161},
 *   "box_normalized":{"x_min":0.3219,"y_min":0.1639,
 *     "x_max":0.4477,"y_max":0.3875},
 *   "track_id":3,"stale":false,"keypoints":[[0.3711,0.2344],...],
 *   "classifications":[]}],
 *  "classifications":[]}
 * ]|
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=clip.avi ! decodebin ! kestreldetect model=face.kestrel ! kestreltrack ! kestrelmetapublish location=out.jsonl ! fakesink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gst/video/video.h>

#include "gstkestrelmetapublish.h"

GST_DEBUG_CATEGORY_STATIC (gst_kestrel_meta_publish_debug);
#define GST_CAT_DEFAULT gst_kestrel_meta_publish_debug

#define SCHEMA_VERSION 1
#define DEFAULT_LOCATION NULL
#define DEFAULT_FLUSH TRUE

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_FLUSH,
};

struct _GstKestrelMetaPublish
{
  GstBaseTransform parent;

  /* under the object lock */
  gchar *location;
  gboolean flush;

  /* streaming thread only */
  FILE *file;
  gboolean owns_file;
  guint64 frame_number;
  gint width, height;
  GString *line;
};

G_DEFINE_TYPE (GstKestrelMetaPublish, gst_kestrel_meta_publish,
    GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (kestrelmetapublish, "kestrelmetapublish",
    GST_RANK_NONE, GST_TYPE_KESTREL_META_PUBLISH);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));

/* --- JSON writing -------------------------------------------------------- */

static void
json_string (GString * out, const gchar * s)
{
  g_string_append_c (out, '"');
  for (const guchar * p = (const guchar *)(s ? s : ""); *p; p++) {
    switch (*p) {
      case '"':
        g_string_append (out, "\\\"");
        break;
      case '\\':
        g_string_append (out, "\\\\");
        break;
      case '\n':
        g_string_append (out, "\\n");
        break;
      case '\r':
        g_string_append (out, "\\r");
        break;
      case '\t':
        g_string_append (out, "\\t");
        break;
      default:
        if (*p < 0x20 || *p == 0x7f)
          g_string_append_printf (out, "\\u%04x", *p);
        else
          g_string_append_c (out, (gchar) * p);
    }
  }
  g_string_append_c (out, '"');
}

/* Fixed four decimals, C locale; JSON has no NaN or infinity: null. */
static void
json_number (GString * out, gdouble v)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (v)) {
    g_string_append (out, "null");
    return;
  }
  g_ascii_formatd (buf, sizeof (buf), "%.4f", v);
  /* "-0.0000" and "0.0000" should read the same. */
  if (strcmp (buf, "-0.0000") == 0)
    g_string_append (out, "0.0000");
  else
    g_string_append (out, buf);
}

static void
json_double_field (GString * out, const gchar * name, gdouble v)
{
  g_string_append_printf (out, "\"%s\":", name);
  json_number (out, v);
}

/* The classification structures of a ROI: every params structure except
 * "detection" and "object_id" that carries a label. */
static void
json_classifications (GString * out, GstVideoRegionOfInterestMeta * roi)
{
  gboolean first = TRUE;

  g_string_append (out, "\"classifications\":[");
  for (GList * l = roi->params; l; l = l->next) {
    GstStructure *s = l->data;
    const gchar *label = gst_structure_get_string (s, "label");
    gdouble confidence = 0;
    gint label_id = -1;
    gboolean stale = FALSE;

    if (gst_structure_has_name (s, "detection")
        || gst_structure_has_name (s, "object_id") || !label)
      continue;
    gst_structure_get_double (s, "confidence", &confidence);
    gst_structure_get_int (s, "label_id", &label_id);
    gst_structure_get_boolean (s, "stale", &stale);
    if (!first)
      g_string_append_c (out, ',');
    first = FALSE;
    g_string_append (out, "{\"name\":");
    json_string (out, gst_structure_get_name (s));
    g_string_append (out, ",\"label\":");
    json_string (out, label);
    g_string_append_printf (out, ",\"label_id\":%d,", label_id);
    json_double_field (out, "confidence", confidence);
    g_string_append_printf (out, ",\"stale\":%s}", stale ? "true" : "false");
  }
  g_string_append_c (out, ']');
}

static void
json_object (GString * out, GstVideoRegionOfInterestMeta * roi,
    GstStructure * det, gint width, gint height)
{
  GstStructure *oid =
      gst_video_region_of_interest_meta_get_param (roi, "object_id");
  const gchar *label = gst_structure_get_string (det, "label");
  const GValue *kp = gst_structure_get_value (det, "keypoints");
  gdouble confidence = 0, x_min, y_min, x_max, y_max;
  gint label_id = -1, track_id = 0;
  gboolean stale = FALSE;

  gst_structure_get_double (det, "confidence", &confidence);
  gst_structure_get_int (det, "label_id", &label_id);
  gst_structure_get_boolean (det, "stale", &stale);
  /* The normalized box as the detector wrote it, else from the pixels. */
  if (!gst_structure_get_double (det, "x_min", &x_min))
    x_min = width ? (gdouble) roi->x / width : 0;
  if (!gst_structure_get_double (det, "y_min", &y_min))
    y_min = height ? (gdouble) roi->y / height : 0;
  if (!gst_structure_get_double (det, "x_max", &x_max))
    x_max = width ? (gdouble) (roi->x + roi->w) / width : 0;
  if (!gst_structure_get_double (det, "y_max", &y_max))
    y_max = height ? (gdouble) (roi->y + roi->h) / height : 0;

  g_string_append (out, "{\"label\":");
  json_string (out, label ? label : g_quark_to_string (roi->roi_type));
  g_string_append_printf (out, ",\"label_id\":%d,", label_id);
  json_double_field (out, "confidence", confidence);
  g_string_append_printf (out,
      ",\"box\":{\"x\":%u,\"y\":%u,\"width\":%u,\"height\":%u}",
      roi->x, roi->y, roi->w, roi->h);
  g_string_append (out, ",\"box_normalized\":{");
  json_double_field (out, "x_min", x_min);
  g_string_append_c (out, ',');
  json_double_field (out, "y_min", y_min);
  g_string_append_c (out, ',');
  json_double_field (out, "x_max", x_max);
  g_string_append_c (out, ',');
  json_double_field (out, "y_max", y_max);
  g_string_append_c (out, '}');
  if (oid && gst_structure_get_int (oid, "id", &track_id))
    g_string_append_printf (out, ",\"track_id\":%d", track_id);
  else
    g_string_append (out, ",\"track_id\":null");
  g_string_append_printf (out, ",\"stale\":%s", stale ? "true" : "false");
  g_string_append (out, ",\"keypoints\":[");
  if (kp && GST_VALUE_HOLDS_ARRAY (kp)) {
    guint n = gst_value_array_get_size (kp);
    for (guint k = 0; k + 1 < n; k += 2) {
      const GValue *vx = gst_value_array_get_value (kp, k);
      const GValue *vy = gst_value_array_get_value (kp, k + 1);
      if (!G_VALUE_HOLDS_DOUBLE (vx) || !G_VALUE_HOLDS_DOUBLE (vy))
        continue;
      g_string_append (out, k ? ",[" : "[");
      json_number (out, g_value_get_double (vx));
      g_string_append_c (out, ',');
      json_number (out, g_value_get_double (vy));
      g_string_append_c (out, ']');
    }
  }
  g_string_append (out, "],");
  json_classifications (out, roi);
  g_string_append_c (out, '}');
}

static void
build_line (GstKestrelMetaPublish * self, GstBuffer * buf, GString * out)
{
  gpointer state = NULL;
  GstMeta *meta;
  gboolean first = TRUE;

  g_string_printf (out, "{\"version\":%d,\"frame\":%" G_GUINT64_FORMAT
      ",\"timestamp\":", SCHEMA_VERSION, self->frame_number);
  if (GST_BUFFER_PTS_IS_VALID (buf))
    g_string_append_printf (out, "%" G_GUINT64_FORMAT, GST_BUFFER_PTS (buf));
  else
    g_string_append (out, "null");
  g_string_append_printf (out, ",\"width\":%d,\"height\":%d,\"objects\":[",
      self->width, self->height);

  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    GstStructure *det =
        gst_video_region_of_interest_meta_get_param (roi, "detection");
    if (!det)
      continue;
    if (!first)
      g_string_append_c (out, ',');
    first = FALSE;
    json_object (out, roi, det, self->width, self->height);
  }

  /* Classes of the whole frame: ROIs without a "detection". */
  g_string_append (out, "],\"classifications\":[");
  first = TRUE;
  state = NULL;
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    GString *classes;
    if (gst_video_region_of_interest_meta_get_param (roi, "detection"))
      continue;
    classes = g_string_new (NULL);
    json_classifications (classes, roi);
    /* Strip `"classifications":[` and `]` to splice the items in. */
    {
      const gchar *items = classes->str + strlen ("\"classifications\":[");
      gsize len = strlen (items) - 1;
      if (len > 0) {
        if (!first)
          g_string_append_c (out, ',');
        first = FALSE;
        g_string_append_len (out, items, len);
      }
    }
    g_string_free (classes, TRUE);
  }
  g_string_append (out, "]}\n");
}

/* --- element ------------------------------------------------------------- */

static gboolean
gst_kestrel_meta_publish_start (GstBaseTransform * trans)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (trans);
  gchar *location;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  GST_OBJECT_UNLOCK (self);

  self->frame_number = 0;
  self->width = self->height = 0;
  if (!location || !*location || g_str_equal (location, "-")) {
    self->file = stdout;
    self->owns_file = FALSE;
  } else {
    self->file = g_fopen (location, "w");
    if (!self->file)
      goto open_failed;
    self->owns_file = TRUE;
  }
  self->line = g_string_sized_new (1024);
  GST_INFO_OBJECT (self, "writing JSON lines to %s",
      self->owns_file ? location : "stdout");
  g_free (location);
  return TRUE;

open_failed:
  GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
      ("Could not open \"%s\" for writing: %s.", location,
          g_strerror (errno)),
      ("set location to a writable file, or leave it unset for stdout"));
  g_free (location);
  return FALSE;
}

static gboolean
gst_kestrel_meta_publish_stop (GstBaseTransform * trans)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (trans);
  gboolean ok = TRUE;

  if (self->file) {
    if (self->owns_file)
      ok = fclose (self->file) == 0;
    else
      fflush (self->file);
  }
  self->file = NULL;
  if (self->line)
    g_string_free (self->line, TRUE);
  self->line = NULL;
  if (!ok)
    GST_ELEMENT_WARNING (self, RESOURCE, CLOSE, (NULL),
        ("closing the output failed (%s): it may be incomplete",
            g_strerror (errno)));
  return TRUE;
}

static gboolean
gst_kestrel_meta_publish_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (trans);
  GstStructure *s = gst_caps_get_structure (incaps, 0);

  self->width = self->height = 0;
  gst_structure_get_int (s, "width", &self->width);
  gst_structure_get_int (s, "height", &self->height);
  return TRUE;
}

static gboolean
gst_kestrel_meta_publish_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (trans);

  /* Readers of the file see everything once the stream has ended. */
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS && self->file)
    fflush (self->file);
  return GST_BASE_TRANSFORM_CLASS (gst_kestrel_meta_publish_parent_class)
      ->sink_event (trans, event);
}

static GstFlowReturn
gst_kestrel_meta_publish_transform_ip (GstBaseTransform * trans,
    GstBuffer * buf)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (trans);
  gboolean flush;

  if (!self->file)
    goto not_started;
  GST_OBJECT_LOCK (self);
  flush = self->flush;
  GST_OBJECT_UNLOCK (self);

  build_line (self, buf, self->line);
  if (fwrite (self->line->str, 1, self->line->len, self->file)
      != self->line->len || (flush && fflush (self->file) != 0))
    goto write_failed;
  self->frame_number++;
  return GST_FLOW_OK;

not_started:
  GST_ELEMENT_ERROR (self, CORE, STATE_CHANGE, (NULL),
      ("buffer arrived before the output was opened"));
  return GST_FLOW_ERROR;
write_failed:
  GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
      ("Could not write metadata: %s.", g_strerror (errno)),
      ("frame %" G_GUINT64_FORMAT ": check free space on the output's disk",
          self->frame_number));
  return GST_FLOW_ERROR;
}

static void
gst_kestrel_meta_publish_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      /* Read once at start; a change applies at the next start. */
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_FLUSH:
      self->flush = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_meta_publish_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_FLUSH:
      g_value_set_boolean (value, self->flush);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_kestrel_meta_publish_finalize (GObject * object)
{
  GstKestrelMetaPublish *self = GST_KESTREL_META_PUBLISH (object);

  g_free (self->location);
  G_OBJECT_CLASS (gst_kestrel_meta_publish_parent_class)->finalize (object);
}

static void
gst_kestrel_meta_publish_class_init (GstKestrelMetaPublishClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_kestrel_meta_publish_debug,
      "kestrelmetapublish", 0, "Kestrel metadata publisher");

  gobject_class->set_property = gst_kestrel_meta_publish_set_property;
  gobject_class->get_property = gst_kestrel_meta_publish_get_property;
  gobject_class->finalize = gst_kestrel_meta_publish_finalize;

  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "File to write JSON lines to, truncated at start (NULL or \"-\": "
          "standard output)", DEFAULT_LOCATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_FLUSH,
      g_param_spec_boolean ("flush", "Flush",
          "Flush the output after every line, so that readers see each "
          "frame at once (FALSE: buffered, flushed at EOS and stop)",
          DEFAULT_FLUSH, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Kestrel metadata publisher", "Filter/Metadata/Video",
      "Writes the objects, track ids and classes attached to each frame as "
      "JSON lines; passes the frames through unchanged", "Kestrel developers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_kestrel_meta_publish_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_kestrel_meta_publish_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_kestrel_meta_publish_set_caps);
  trans_class->sink_event =
      GST_DEBUG_FUNCPTR (gst_kestrel_meta_publish_sink_event);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_kestrel_meta_publish_transform_ip);
}

static void
gst_kestrel_meta_publish_init (GstKestrelMetaPublish * self)
{
  self->location = g_strdup (DEFAULT_LOCATION);
  self->flush = DEFAULT_FLUSH;
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}
