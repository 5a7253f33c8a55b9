/* Tests of kestrelmetapublish in a GstHarness: every line parses as JSON
 * (json-glib) with the schema of docs/metadata-schema.md; hostile labels are
 * escaped; track ids and classes; buffers pass unchanged; an unwritable
 * location is a clear error; property defaults and changes. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "kestrel_check.h"

static gchar *
temp_path (const gchar * name)
{
  gchar *dir = g_dir_make_tmp ("kestrel-metapublish-XXXXXX", NULL);

  fail_unless (dir != NULL);
  {
    gchar *path = g_build_filename (dir, name, NULL);
    g_free (dir);
    return path;
  }
}

static void
remove_temp (gchar * path)
{
  gchar *dir = g_path_get_dirname (path);

  g_unlink (path);
  g_rmdir (dir);
  g_free (dir);
  g_free (path);
}

static GstHarness *
publish_harness (const gchar * location)
{
  GstElement *e = gst_element_factory_make ("kestrelmetapublish", NULL);

  fail_unless (e != NULL, "no kestrelmetapublish (GST_PLUGIN_PATH?)");
  g_object_set (e, "location", location, NULL);
  {
    GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
    gst_harness_set_src_caps_str (h,
        "video/x-raw,format=I420,width=640,height=480,framerate=30/1");
    return h;
  }
}

static GstVideoRegionOfInterestMeta *
add_object (GstBuffer * buf, const gchar * label, gint x, gint y, gint w,
    gint h, gdouble confidence, gint track_id)
{
  GstVideoRegionOfInterestMeta *m =
      gst_buffer_add_video_region_of_interest_meta (buf, label, x, y, w, h);
  GstStructure *s = gst_structure_new ("detection",
      "x_min", G_TYPE_DOUBLE, x / 640.0, "y_min", G_TYPE_DOUBLE, y / 480.0,
      "x_max", G_TYPE_DOUBLE, (x + w) / 640.0,
      "y_max", G_TYPE_DOUBLE, (y + h) / 480.0,
      "confidence", G_TYPE_DOUBLE, confidence, "label_id", G_TYPE_INT, 0,
      "label", G_TYPE_STRING, label, "stale", G_TYPE_BOOLEAN, FALSE, NULL);
  GValue arr = G_VALUE_INIT, v = G_VALUE_INIT;

  g_value_init (&arr, GST_TYPE_ARRAY);
  g_value_init (&v, G_TYPE_DOUBLE);
  for (gint k = 0; k < 4; k++) {
    g_value_set_double (&v, 0.25 * (k + 1));
    gst_value_array_append_value (&arr, &v);
  }
  g_value_unset (&v);
  gst_structure_take_value (s, "keypoints", &arr);
  gst_video_region_of_interest_meta_add_param (m, s);
  if (track_id > 0)
    gst_video_region_of_interest_meta_add_param (m,
        gst_structure_new ("object_id", "id", G_TYPE_INT, track_id, NULL));
  return m;
}

static gchar **
read_lines (const gchar * path)
{
  gchar *text = NULL;
  gchar **lines;
  guint n;

  fail_unless (g_file_get_contents (path, &text, NULL, NULL));
  fail_unless (g_str_has_suffix (text, "\n") || !*text);
  lines = g_strsplit (text, "\n", -1);
  n = g_strv_length (lines);
  /* The text ends with a newline: drop the empty last piece. */
  g_free (lines[n - 1]);
  lines[n - 1] = NULL;
  g_free (text);
  return lines;
}

static JsonObject *
parse_line (JsonParser * parser, const gchar * line)
{
  GError *error = NULL;
  JsonNode *root;

  fail_unless (json_parser_load_from_data (parser, line, -1, &error),
      "not JSON: %s (%s)", line, error ? error->message : "");
  root = json_parser_get_root (parser);
  fail_unless (JSON_NODE_HOLDS_OBJECT (root));
  return json_node_get_object (root);
}

GST_START_TEST (test_schema)
{
  gchar *path = temp_path ("out.jsonl");
  GstHarness *h = publish_harness (path);
  JsonParser *parser = json_parser_new ();
  gchar **lines;

  for (gint f = 0; f < 3; f++) {
    GstBuffer *buf = gst_buffer_new_allocate (NULL, 640 * 480 * 3 / 2, NULL);
    GST_BUFFER_PTS (buf) = f == 2 ? GST_CLOCK_TIME_NONE
        : (GstClockTime) f *33333333;
    if (f >= 1) {
      GstVideoRegionOfInterestMeta *m =
          add_object (buf, "face", 10, 20, 30, 40, 0.875, f == 2 ? 7 : 0);
      gst_video_region_of_interest_meta_add_param (m,
          gst_structure_new ("age", "label", G_TYPE_STRING, "adult",
              "label_id", G_TYPE_INT, 2, "confidence", G_TYPE_DOUBLE, 0.5,
              "stale", G_TYPE_BOOLEAN, TRUE, NULL));
    }
    if (f == 2) {
      GstVideoRegionOfInterestMeta *m =
          gst_buffer_add_video_region_of_interest_meta (buf, "frame", 0, 0,
          640, 480);
      gst_video_region_of_interest_meta_add_param (m,
          gst_structure_new ("softmax", "label", G_TYPE_STRING, "0",
              "label_id", G_TYPE_INT, 0, "confidence", G_TYPE_DOUBLE, 0.99,
              NULL));
    }
    gst_buffer_unref (gst_harness_push_and_pull (h, buf));
  }
  gst_harness_teardown (h);

  lines = read_lines (path);
  fail_unless_equals_int (g_strv_length (lines), 3);
  for (gint f = 0; f < 3; f++) {
    JsonObject *o = parse_line (parser, lines[f]);
    JsonArray *objects, *classes;

    fail_unless_equals_int (json_object_get_int_member (o, "version"), 1);
    fail_unless_equals_int (json_object_get_int_member (o, "frame"), f);
    fail_unless_equals_int (json_object_get_int_member (o, "width"), 640);
    fail_unless_equals_int (json_object_get_int_member (o, "height"), 480);
    if (f == 2) {
      fail_unless (json_object_get_null_member (o, "timestamp"));
    } else {
      fail_unless_equals_int64 (json_object_get_int_member (o, "timestamp"),
          f * 33333333);
    }
    objects = json_object_get_array_member (o, "objects");
    classes = json_object_get_array_member (o, "classifications");
    fail_unless_equals_int (json_array_get_length (objects), f >= 1);
    fail_unless_equals_int (json_array_get_length (classes), f == 2);
    if (f >= 1) {
      JsonObject *obj = json_array_get_object_element (objects, 0);
      JsonObject *box = json_object_get_object_member (obj, "box");
      JsonObject *norm = json_object_get_object_member (obj, "box_normalized");
      JsonArray *kp = json_object_get_array_member (obj, "keypoints");
      JsonArray *oc = json_object_get_array_member (obj, "classifications");
      JsonObject *c = json_array_get_object_element (oc, 0);

      fail_unless_equals_string (json_object_get_string_member (obj,
              "label"), "face");
      fail_unless (fabs (json_object_get_double_member (obj, "confidence")
              - 0.875) < 1e-9);
      fail_unless_equals_int (json_object_get_int_member (box, "x"), 10);
      fail_unless_equals_int (json_object_get_int_member (box, "y"), 20);
      fail_unless_equals_int (json_object_get_int_member (box, "width"), 30);
      fail_unless_equals_int (json_object_get_int_member (box, "height"), 40);
      fail_unless (fabs (json_object_get_double_member (norm, "x_max")
              - 40 / 640.0) < 1e-4);
      if (f == 2) {
        fail_unless_equals_int (json_object_get_int_member (obj, "track_id"),
            7);
      } else {
        fail_unless (json_object_get_null_member (obj, "track_id"));
      }
      fail_unless (!json_object_get_boolean_member (obj, "stale"));
      fail_unless_equals_int (json_array_get_length (kp), 2);
      fail_unless (fabs (json_array_get_double_element
              (json_array_get_array_element (kp, 1), 1) - 1.0) < 1e-9);
      fail_unless_equals_int (json_array_get_length (oc), 1);
      fail_unless_equals_string (json_object_get_string_member (c, "name"),
          "age");
      fail_unless_equals_string (json_object_get_string_member (c, "label"),
          "adult");
      fail_unless_equals_int (json_object_get_int_member (c, "label_id"), 2);
      fail_unless (json_object_get_boolean_member (c, "stale"));
    }
    if (f == 2) {
      JsonObject *c = json_array_get_object_element (classes, 0);
      fail_unless_equals_string (json_object_get_string_member (c, "name"),
          "softmax");
      fail_unless (fabs (json_object_get_double_member (c, "confidence")
              - 0.99) < 1e-9);
    }
  }
  g_strfreev (lines);
  g_object_unref (parser);
  remove_temp (path);
}

GST_END_TEST;

/* Labels with quotes, backslashes, control bytes and UTF-8 survive the trip;
 * a NaN confidence becomes null (JSON has no NaN). */
GST_START_TEST (test_escaping)
{
  const gchar *labels[] = {
    "a \"quoted\" label", "back\\slash", "tab\tnew\nline\r", "\x01\x1f\x7f",
    "caf\xc3\xa9 \xe2\x9c\x93", "", "}{][,:",
  };
  gchar *path = temp_path ("escape.jsonl");
  GstHarness *h = publish_harness (path);
  JsonParser *parser = json_parser_new ();
  gchar **lines;
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 16, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (labels); i++)
    add_object (buf, labels[i], i, i, 5, 5, i == 0 ? NAN : 0.5, 0);
  gst_buffer_unref (gst_harness_push_and_pull (h, buf));
  gst_harness_teardown (h);

  lines = read_lines (path);
  fail_unless_equals_int (g_strv_length (lines), 1);
  {
    JsonObject *o = parse_line (parser, lines[0]);
    JsonArray *objects = json_object_get_array_member (o, "objects");
    fail_unless_equals_int (json_array_get_length (objects),
        G_N_ELEMENTS (labels));
    for (guint i = 0; i < G_N_ELEMENTS (labels); i++) {
      JsonObject *obj = json_array_get_object_element (objects, i);
      fail_unless_equals_string (json_object_get_string_member (obj,
              "label"), labels[i]);
    }
    fail_unless (json_object_get_null_member (json_array_get_object_element
            (objects, 0), "confidence"));
  }
  g_strfreev (lines);
  g_object_unref (parser);
  remove_temp (path);
}

GST_END_TEST;

/* The element is a passthrough: the very same buffer, data and metas come
 * out. */
GST_START_TEST (test_passthrough)
{
  gchar *path = temp_path ("pass.jsonl");
  GstHarness *h = publish_harness (path);
  GstBuffer *buf = kc_pattern_buffer (640 * 480 * 3 / 2, 5), *out;
  GstBuffer *copy = gst_buffer_copy_deep (buf);

  add_object (buf, "face", 1, 2, 3, 4, 0.5, 2);
  gst_buffer_ref (buf);
  out = gst_harness_push_and_pull (h, buf);
  fail_unless (out == buf);
  {
    GstMapInfo a, b;
    fail_unless (gst_buffer_map (out, &a, GST_MAP_READ));
    fail_unless (gst_buffer_map (copy, &b, GST_MAP_READ));
    fail_unless (a.size == b.size && memcmp (a.data, b.data, a.size) == 0);
    gst_buffer_unmap (out, &a);
    gst_buffer_unmap (copy, &b);
  }
  fail_unless_equals_int (kc_count_rois (out, "object_id"), 1);
  gst_buffer_unref (out);
  gst_buffer_unref (buf);
  gst_buffer_unref (copy);
  gst_harness_teardown (h);
  remove_temp (path);
}

GST_END_TEST;

/* An unwritable location fails to start with an error naming the file. */
GST_START_TEST (test_unwritable_location)
{
  GstElement *e = gst_element_factory_make ("kestrelmetapublish", NULL);
  GstBus *bus = kc_attach_bus (e);
  GstMessage *msg;
  GError *error = NULL;
  gchar *debug = NULL;

  g_object_set (e, "location", "/nonexistent-dir/kestrel/out.jsonl", NULL);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error message");
  gst_message_parse_error (msg, &error, &debug);
  fail_unless (strstr (error->message, "/nonexistent-dir/kestrel/out.jsonl")
      != NULL, "error does not name the file: %s", error->message);
  g_error_free (error);
  g_free (debug);
  gst_message_unref (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_END_TEST;

/* Defaults; flush=false still leaves a complete file after EOS/stop; a new
 * location applies at the next start and frame numbers restart. */
GST_START_TEST (test_properties)
{
  GstElement *e = gst_element_factory_make ("kestrelmetapublish", NULL);
  gchar *location = NULL, *path = temp_path ("a.jsonl"), *path2;
  gboolean flush = FALSE;
  GstHarness *h;
  gchar **lines;

  g_object_get (e, "location", &location, "flush", &flush, NULL);
  fail_unless (location == NULL);
  fail_unless (flush);
  gst_object_unref (e);

  h = publish_harness (path);
  g_object_set (h->element, "flush", FALSE, NULL);
  for (gint f = 0; f < 50; f++)
    gst_buffer_unref (gst_harness_push_and_pull (h,
            gst_buffer_new_allocate (NULL, 8, NULL)));
  gst_harness_push_event (h, gst_event_new_eos ());
  lines = read_lines (path);
  fail_unless_equals_int (g_strv_length (lines), 50);
  g_strfreev (lines);

  /* The same element again, from NULL, with a new location. */
  path2 = temp_path ("b.jsonl");
  e = gst_object_ref (h->element);
  gst_harness_teardown (h);
  gst_element_set_state (e, GST_STATE_NULL);
  g_object_set (e, "location", path2, NULL);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=33,height=17,framerate=30/1");
  gst_buffer_unref (gst_harness_push_and_pull (h,
          gst_buffer_new_allocate (NULL, 8, NULL)));
  gst_harness_teardown (h);
  lines = read_lines (path2);
  fail_unless_equals_int (g_strv_length (lines), 1);
  fail_unless (strstr (lines[0], "\"frame\":0,") != NULL);
  fail_unless (strstr (lines[0], "\"width\":33,\"height\":17") != NULL);
  g_strfreev (lines);
  remove_temp (path);
  remove_temp (path2);
}

GST_END_TEST;

static Suite *
metapublish_suite (void)
{
  Suite *s = suite_create ("kestrelmetapublish");
  TCase *tc = tcase_create ("element");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_schema);
  tcase_add_test (tc, test_escaping);
  tcase_add_test (tc, test_passthrough);
  tcase_add_test (tc, test_unwritable_location);
  tcase_add_test (tc, test_properties);
  return s;
}

GST_CHECK_MAIN (metapublish);
