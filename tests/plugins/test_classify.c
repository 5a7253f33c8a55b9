/* GstHarness tests of kestrelclassify with the PP-OCR text direction
 * classifier ($KESTREL_CACHE/models/ch_ppocr_mobile_v2.0_cls_infer.onnx):
 * whole frames, ROI lists, object-class, reclassify-interval, messages,
 * bad models, formats and odd sizes. */
#include <string.h>

#include "kestrel_check.h"

static const gchar *formats[] = {
  "I420", "NV12", "YUY2", "RGB", "BGR", "RGBx", "BGRx"
};

static gchar *cls_model, *face_model;

static void
setup_models (void)
{
  cls_model = kc_cache_path ("models/ch_ppocr_mobile_v2.0_cls_infer.onnx");
  face_model = kc_cache_path ("models/face_detection_short_range.tflite");
}

static void
teardown_models (void)
{
  g_free (cls_model);
  g_free (face_model);
}

static GstHarness *
classify_harness (const gchar * caps)
{
  GstElement *e = gst_element_factory_make ("kestrelclassify", NULL);
  GstHarness *h;

  fail_unless (e != NULL, "no kestrelclassify (GST_PLUGIN_PATH?)");
  /* The harness's source claims to be live: ask for sync inference. */
  g_object_set (e, "model", cls_model, "mode", 1 /* sync */ , NULL);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_harness_set_src_caps_str (h, caps);
  return h;
}

/* The class structure on a ROI: any structure other than "detection" and
 * "object_id" (its name is the model output's). */
static const GstStructure *
class_of (GstVideoRegionOfInterestMeta * m)
{
  for (GList * l = m->params; l; l = l->next) {
    const GstStructure *s = l->data;
    if (!gst_structure_has_name (s, "detection")
        && !gst_structure_has_name (s, "object_id"))
      return s;
  }
  return NULL;
}

/* A tight line of black text on white (the classifier expects text-line
 * crops, not a page), rendered by textoverlay, optionally
 * turned upside down: what the PP-OCR direction classifier is for. */
static GstBuffer *
text_frame (const gchar * format, gboolean upside_down, GstVideoInfo * info)
{
  gchar *desc = g_strdup_printf ("videotestsrc pattern=white num-buffers=1 "
      "! video/x-raw,width=360,height=48 ! textoverlay text=\"Kestrel "
      "reads this line\" font-desc=\"Sans 28\" color=0xff000000 "
      "shaded-background=false halignment=center valignment=center "
      "! videoflip video-direction=%s ! videoconvert ! video/x-raw,format=%s "
      "! appsink name=sink sync=false", upside_down ? "180" :
      "identity", format);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstElement *sink;
  GstSample *sample = NULL;
  GstBuffer *buf;

  fail_unless (pipeline != NULL, "%s", desc);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_signal_emit_by_name (sink, "pull-sample", &sample);
  fail_unless (sample != NULL);
  fail_unless (gst_video_info_from_caps (info, gst_sample_get_caps (sample)));
  buf = gst_buffer_ref (gst_sample_get_buffer (sample));
  gst_sample_unref (sample);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_free (desc);
  return buf;
}

/* Classifies a whole frame; returns the label (owned) and confidence. */
static gchar *
classify_frame (GstBuffer * in, const GstVideoInfo * info, gdouble * conf)
{
  gchar *caps = kc_caps_string (info);
  GstHarness *h = classify_harness (caps);
  GstBuffer *out = gst_harness_push_and_pull (h, in);
  GstVideoRegionOfInterestMeta *m;
  const GstStructure *s;
  gchar *label;
  gint id;
  gboolean stale;

  fail_unless_equals_int (kc_count_rois (out, NULL), 1);
  m = kc_nth_roi (out, NULL, 0);
  fail_unless_equals_string (g_quark_to_string (m->roi_type), "frame");
  fail_unless (m->x == 0 && m->y == 0 && m->w == (guint) info->width
      && m->h == (guint) info->height);
  s = class_of (m);
  fail_unless (s != NULL);
  fail_unless (gst_structure_get_double (s, "confidence", conf));
  fail_unless (gst_structure_get_int (s, "label_id", &id));
  fail_unless (gst_structure_get_boolean (s, "stale", &stale) && !stale);
  fail_unless (*conf >= 0 && *conf <= 1);
  label = g_strdup (gst_structure_get_string (s, "label"));
  fail_unless (!g_strcmp0 (label, "0") || !g_strcmp0 (label, "180"));
  fail_unless_equals_int (id, !g_strcmp0 (label, "180"));
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  g_free (caps);
  return label;
}

/* Whole frames in every format: the result sits in a "frame" ROI covering
 * the frame, and every format of the same picture gets the same class. */
GST_START_TEST (test_classify_every_format)
{
  for (gint flip = 0; flip < 2; flip++) {
    gchar *reference = NULL;
    for (guint f = 0; f < G_N_ELEMENTS (formats); f++) {
      GstVideoInfo info;
      gdouble conf;
      gchar *label = classify_frame (text_frame (formats[f], flip, &info),
          &info, &conf);
      if (!reference)
        reference = g_strdup (label);
      fail_unless_equals_string (label, reference);
      g_free (label);
    }
    g_free (reference);
  }
}

GST_END_TEST;

/* What the model is for: upright text is "0", text turned over "180".
 * (This fails when the engine's output stops depending on its input.) */
GST_START_TEST (test_classify_text_direction)
{
  for (gint flip = 0; flip < 2; flip++) {
    GstVideoInfo info;
    gdouble conf;
    gchar *label = classify_frame (text_frame ("I420", flip, &info), &info,
        &conf);
    fail_unless_equals_string (label, flip ? "180" : "0");
    fail_unless (conf > 0.6, "%s: confidence %g", label, conf);
    g_free (label);
  }
}

GST_END_TEST;

/* Adds a detection ROI the way kestreldetect (and kestreltrack) would. */
static void
add_detection (GstBuffer * buf, const gchar * label, guint x, guint y,
    guint w, guint h, gint track_id)
{
  GstVideoRegionOfInterestMeta *m =
      gst_buffer_add_video_region_of_interest_meta (buf, label, x, y, w, h);
  gst_video_region_of_interest_meta_add_param (m,
      gst_structure_new ("detection", "confidence", G_TYPE_DOUBLE, 0.9,
          "label", G_TYPE_STRING, label, "label_id", G_TYPE_INT, 0, NULL));
  if (track_id >= 0)
    gst_video_region_of_interest_meta_add_param (m,
        gst_structure_new ("object_id", "id", G_TYPE_INT, track_id, NULL));
}

/* ROI list: the text ROIs get a class, object-class leaves the others
 * alone, a tracked object is re-classified every reclassify-interval
 * frames and stale in between; the message lists them with track ids. */
GST_START_TEST (test_classify_roi_list)
{
  GstVideoInfo info;
  GstBuffer *upright = text_frame ("I420", FALSE, &info);
  GstBuffer *turned = text_frame ("I420", TRUE, &info);
  gchar *caps = kc_caps_string (&info);
  GstHarness *h = classify_harness (caps);
  GstBus *bus = kc_attach_bus (h->element);
  gchar *last_label = NULL;

  g_object_set (h->element, "object-class", "text", "reclassify-interval", 3,
      "message", TRUE, "inference-region", 2 /* roi-list */ , NULL);
  for (guint64 f = 0; f < 6; f++) {
    GstBuffer *in = gst_buffer_copy (f % 2 ? turned : upright), *out;
    GstVideoRegionOfInterestMeta *tracked, *untracked, *other;
    const GstStructure *s;
    gboolean stale;
    GstMessage *msg;
    const GValue *objects;
    gint track;

    /* The same box tracked and untracked: the same class when both run. */
    add_detection (in, "text", 10, 5, info.width - 20, info.height - 10, 7);
    add_detection (in, "text", 10, 5, info.width - 20, info.height - 10, -1);
    add_detection (in, "logo", 0, 0, 40, 40, 9);
    out = gst_harness_push_and_pull (h, in);
    tracked = kc_nth_roi (out, "detection", 0);
    untracked = kc_nth_roi (out, "detection", 1);
    other = kc_nth_roi (out, "detection", 2);
    fail_unless (class_of (other) == NULL, "object-class was ignored");

    /* Untracked: classified on every frame. */
    s = class_of (untracked);
    fail_unless (s != NULL);
    fail_unless (gst_structure_get_boolean (s, "stale", &stale) && !stale);
    if (f % 3 == 0) {
      g_free (last_label);
      last_label = g_strdup (gst_structure_get_string (s, "label"));
    }

    /* Tracked: frames 0 and 3 classify (upright at 0, turned at 3); the
     * frames in between keep that class, stale. */
    s = class_of (tracked);
    fail_unless (s != NULL);
    fail_unless (gst_structure_get_boolean (s, "stale", &stale));
    fail_unless_equals_int (stale, f % 3 != 0);
    fail_unless_equals_string (gst_structure_get_string (s, "label"),
        last_label);

    msg = kc_pop_element_message (bus, "kestrel-inference");
    fail_unless (msg != NULL);
    objects = gst_structure_get_value (gst_message_get_structure (msg),
        "objects");
    fail_unless_equals_int (gst_value_array_get_size (objects), 2);
    fail_unless (gst_structure_get_int (gst_value_get_structure
            (gst_value_array_get_value (objects, 0)), "track-id", &track));
    fail_unless_equals_int (track, 7);
    gst_message_unref (msg);
    gst_buffer_unref (out);
  }
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  gst_buffer_unref (upright);
  gst_buffer_unref (turned);
  g_free (last_label);
  g_free (caps);
}

GST_END_TEST;

/* inference-region=auto: frames without detections are classified whole,
 * frames with them per ROI. */
GST_START_TEST (test_classify_auto_region)
{
  GstVideoInfo info;
  GstBuffer *text = text_frame ("RGB", FALSE, &info), *in, *out;
  gchar *caps = kc_caps_string (&info);
  GstHarness *h = classify_harness (caps);
  gint region;

  g_object_get (h->element, "inference-region", &region, NULL);
  fail_unless_equals_int (region, 0);
  out = gst_harness_push_and_pull (h, gst_buffer_copy (text));
  fail_unless_equals_int (kc_count_rois (out, NULL), 1);
  fail_unless_equals_string (g_quark_to_string (kc_nth_roi (out, NULL,
              0)->roi_type), "frame");
  gst_buffer_unref (out);

  in = gst_buffer_copy (text);
  add_detection (in, "text", 20, 4, info.width - 40, info.height - 8, -1);
  out = gst_harness_push_and_pull (h, in);
  fail_unless_equals_int (kc_count_rois (out, NULL), 1);
  fail_unless (class_of (kc_nth_roi (out, "detection", 0)) != NULL);
  gst_buffer_unref (out);

  /* The roi property limits full-frame classification to its area. */
  g_object_set (h->element, "inference-region", 1, "roi", "100,10,200,30",
      NULL);
  out = gst_harness_push_and_pull (h, gst_buffer_copy (text));
  {
    GstVideoRegionOfInterestMeta *m = kc_nth_roi (out, NULL, 0);
    fail_unless (m->x == 100 && m->y == 10 && m->w == 200 && m->h == 30);
  }
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  gst_buffer_unref (text);
  g_free (caps);
}

GST_END_TEST;

GST_START_TEST (test_classify_bad_models)
{
  const gchar *models[] = { NULL, "/nonexistent/cls.onnx", NULL };
  const gchar *needles[] = { "no model set", "does not exist",
    "not a classifier"
  };

  models[2] = face_model;
  for (guint i = 0; i < G_N_ELEMENTS (models); i++) {
    GstElement *e = gst_element_factory_make ("kestrelclassify", NULL);
    GstBus *bus = kc_attach_bus (e);
    GstMessage *msg;
    GError *err = NULL;

    g_object_set (e, "model", models[i], NULL);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
        GST_STATE_CHANGE_FAILURE);
    msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    fail_unless (msg != NULL);
    gst_message_parse_error (msg, &err, NULL);
    fail_unless (strstr (err->message, needles[i]) != NULL, "'%s'",
        err->message);
    g_error_free (err);
    gst_message_unref (msg);
    gst_element_set_state (e, GST_STATE_NULL);
    gst_element_set_bus (e, NULL);
    gst_object_unref (bus);
    gst_object_unref (e);
  }
}

GST_END_TEST;

/* Odd sizes, ROIs partly outside the frame or empty, property flips and a
 * model swap to a detector (refused with a warning) mid-stream. */
GST_START_TEST (test_classify_odd_sizes_and_flips)
{
  const gint sizes[][2] = { {1, 1}, {4097, 3}, {33, 17}, {5, 7} };

  for (guint f = 0; f < G_N_ELEMENTS (formats); f++)
    for (guint z = 0; z < G_N_ELEMENTS (sizes); z++) {
      gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,"
          "height=%d,framerate=10/1", formats[f], sizes[z][0], sizes[z][1]);
      GstHarness *h = classify_harness (caps);
      GstBus *bus = kc_attach_bus (h->element);
      GstVideoInfo info;

      kc_info_from_string (&info, caps);
      for (guint i = 0; i < 6; i++) {
        GstBuffer *in = kc_pattern_buffer (info.size, i);
        GstMessage *msg;
        add_detection (in, "text", 0, 0, info.width, info.height, i % 2);
        add_detection (in, "text", info.width - 1, info.height - 1, 500, 500,
            -1);
        add_detection (in, "text", 0, 0, 0, 0, -1);
        g_object_set (h->element, "interval", 1 + i % 2, "message", TRUE,
            "inference-region", i % 3, "threshold", i == 4 ? 0.99 : -1.0,
            "labels", i == 2 ? "up" : NULL, "reclassify-interval", 1 + i,
            NULL);
        if (f == 0 && z == 0 && i == 3)
          g_object_set (h->element, "model", face_model, NULL);
        gst_buffer_unref (gst_harness_push_and_pull (h, in));
        while ((msg = gst_bus_pop (bus)))
          gst_message_unref (msg);
      }
      fail_unless_equals_uint64 (kc_stat_u64 (h->element, "frames"), 6);
      gst_element_set_bus (h->element, NULL);
      gst_object_unref (bus);
      gst_harness_teardown (h);
      g_free (caps);
    }
}

GST_END_TEST;

static Suite *
kestrelclassify_suite (void)
{
  Suite *s = suite_create ("kestrelclassify");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 600);
  tcase_add_checked_fixture (tc, setup_models, teardown_models);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_classify_every_format);
  tcase_add_test (tc, test_classify_text_direction);
  tcase_add_test (tc, test_classify_roi_list);
  tcase_add_test (tc, test_classify_auto_region);
  tcase_add_test (tc, test_classify_bad_models);
  tcase_add_test (tc, test_classify_odd_sizes_and_flips);
  return s;
}

GST_CHECK_MAIN (kestrelclassify);
