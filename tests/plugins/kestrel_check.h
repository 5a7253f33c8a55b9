/* Helpers shared by the plugin's GstHarness tests: cache paths, decoding
 * real photos into raw frames, reading ROI metadata and bus messages. */
#ifndef KESTREL_CHECK_H
#define KESTREL_CHECK_H

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <string.h>

/* $KESTREL_CACHE/rel; the test fails if it is missing (CI runs set-up). */
static inline gchar *
kc_cache_path (const gchar * rel)
{
  const gchar *cache = g_getenv ("KESTREL_CACHE");
  gchar *path;

  fail_unless (cache != NULL && *cache, "KESTREL_CACHE is not set");
  path = g_build_filename (cache, rel, NULL);
  fail_unless (g_file_test (path, G_FILE_TEST_EXISTS),
      "%s is missing: run scripts/setup.sh", path);
  return path;
}

static inline gchar *
kc_source_path (const gchar * rel)
{
  const gchar *src = g_getenv ("KESTREL_SOURCE_DIR");

  fail_unless (src != NULL && *src, "KESTREL_SOURCE_DIR is not set");
  return g_build_filename (src, rel, NULL);
}

/* Decodes a JPEG with GStreamer into one raw frame in `format`, scaled to
 * width x height when they are > 0. Returns the buffer, info filled. */
static inline GstBuffer *
kc_load_image (const gchar * path, const gchar * format, gint width,
    gint height, GstVideoInfo * info)
{
  gchar *desc, *size = width > 0 ? g_strdup_printf (",width=%d,height=%d",
      width, height) : g_strdup ("");
  GstElement *pipeline, *sink;
  GstSample *sample = NULL;
  GstBuffer *buffer;
  GError *error = NULL;

  /* Scale in RGB, then convert: every format shows the same picture
   * (videoscale's kernels differ between formats). */
  desc = g_strdup_printf ("filesrc location=\"%s\" ! jpegdec ! videoconvert "
      "! videoscale ! video/x-raw,format=RGB%s ! videoconvert "
      "! video/x-raw,format=%s ! appsink name=sink sync=false", path, size,
      format);
  pipeline = gst_parse_launch (desc, &error);
  fail_unless (pipeline != NULL, "%s: %s", desc, error ? error->message : "");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  g_signal_emit_by_name (sink, "pull-sample", &sample);
  fail_unless (sample != NULL, "no frame decoded from %s", path);
  fail_unless (gst_video_info_from_caps (info, gst_sample_get_caps (sample)));
  buffer = gst_buffer_ref (gst_sample_get_buffer (sample));
  gst_sample_unref (sample);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_free (desc);
  g_free (size);
  return buffer;
}

/* The caps string of an info (for gst_harness_set_src_caps_str). */
static inline gchar *
kc_caps_string (const GstVideoInfo * info)
{
  GstCaps *caps = gst_video_info_to_caps (info);
  gchar *s = gst_caps_to_string (caps);

  gst_caps_unref (caps);
  return s;
}

static inline void
kc_info_from_string (GstVideoInfo * info, const gchar * caps_string)
{
  GstCaps *caps = gst_caps_from_string (caps_string);

  fail_unless (caps != NULL && gst_video_info_from_caps (info, caps),
      "bad caps %s", caps_string);
  gst_caps_unref (caps);
}

/* Counts the ROI metas carrying params `param` (NULL: all). */
static inline guint
kc_count_rois (GstBuffer * buffer, const gchar * param)
{
  gpointer state = NULL;
  GstMeta *meta;
  guint n = 0;

  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *m = (GstVideoRegionOfInterestMeta *) meta;
    if (!param || gst_video_region_of_interest_meta_get_param (m, param))
      n++;
  }
  return n;
}

/* The n-th ROI meta with params `param`, or NULL. */
static inline GstVideoRegionOfInterestMeta *
kc_nth_roi (GstBuffer * buffer, const gchar * param, guint index)
{
  gpointer state = NULL;
  GstMeta *meta;
  guint n = 0;

  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *m = (GstVideoRegionOfInterestMeta *) meta;
    if (param && !gst_video_region_of_interest_meta_get_param (m, param))
      continue;
    if (n++ == index)
      return m;
  }
  return NULL;
}

/* A bus for a harnessed element (GstHarness gives it none). */
static inline GstBus *
kc_attach_bus (GstElement * element)
{
  GstBus *bus = gst_bus_new ();

  gst_element_set_bus (element, bus);
  return bus;
}

/* Pops the next element message named `name`, or NULL. */
static inline GstMessage *
kc_pop_element_message (GstBus * bus, const gchar * name)
{
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT))) {
    const GstStructure *s = gst_message_get_structure (msg);
    if (s && gst_structure_has_name (s, name))
      return msg;
    gst_message_unref (msg);
  }
  return NULL;
}

/* Reads a guint64/double/string field of the element's stats. */
static inline guint64
kc_stat_u64 (GstElement * element, const gchar * field)
{
  GstStructure *s = NULL;
  guint64 v = 0;

  g_object_get (element, "stats", &s, NULL);
  fail_unless (s != NULL);
  fail_unless (gst_structure_get_uint64 (s, field, &v), "no stats field %s",
      field);
  gst_structure_free (s);
  return v;
}

static inline gchar *
kc_stat_string (GstElement * element, const gchar * field)
{
  GstStructure *s = NULL;
  gchar *v;

  g_object_get (element, "stats", &s, NULL);
  fail_unless (s != NULL);
  v = g_strdup (gst_structure_get_string (s, field));
  gst_structure_free (s);
  return v;
}

/* A buffer of `size` bytes filled with a deterministic pattern. */
static inline GstBuffer *
kc_pattern_buffer (gsize size, guint seed)
{
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, size, NULL);
  GstMapInfo map;

  fail_unless (gst_buffer_map (buffer, &map, GST_MAP_WRITE));
  for (gsize i = 0; i < size; i++)
    map.data[i] = (guint8) ((i * 131 + seed * 7) >> 3);
  gst_buffer_unmap (buffer, &map);
  return buffer;
}

#endif
