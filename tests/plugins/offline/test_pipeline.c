/* Full pipeline: decode -> kestreldetect -> kestreltrack -> kestrelmetapublish
 * -> kestreloverlay -> JPEG -> AVI file, on Megamind.avi. The written file
 * must hold every input frame, and its pixels must differ from the undrawn
 * frames on the edges of the published boxes and (nearly) nowhere far from
 * them. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "../kestrel_check.h"

#define THICKNESS 3
/* Pixels further than this from every box and its label are "far". */
#define MARGIN 48

typedef struct
{
  gint x, y, w, h;
} Box;

static gchar *work_dir;

static void
setup_work (void)
{
  work_dir = g_dir_make_tmp ("kestrel-pipeline-XXXXXX", NULL);
  fail_unless (work_dir != NULL);
}

static void
teardown_work (void)
{
  GDir *dir = g_dir_open (work_dir, 0, NULL);
  const gchar *name;

  while (dir && (name = g_dir_read_name (dir))) {
    gchar *p = g_build_filename (work_dir, name, NULL);
    g_unlink (p);
    g_free (p);
  }
  if (dir)
    g_dir_close (dir);
  g_rmdir (work_dir);
  g_free (work_dir);
}

/* Runs a pipeline to EOS; fails with the error message otherwise. */
static void
run_to_eos (const gchar * desc)
{
  GError *error = NULL;
  GstElement *p = gst_parse_launch (desc, &error);
  GstBus *bus;
  GstMessage *msg;

  fail_unless (p != NULL, "%s: %s", desc, error ? error->message : "");
  bus = gst_element_get_bus (p);
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (bus, 600 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no EOS within 600 s: %s", desc);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *debug = NULL;
    gst_message_parse_error (msg, &error, &debug);
    fail ("%s: %s (%s)", desc, error->message, debug ? debug : "");
  }
  gst_message_unref (msg);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (p);
}

/* A pipeline ending in appsink "s" delivering RGB frames. */
static GstElement *
start_rgb_reader (const gchar * head, GstElement ** sink)
{
  gchar *desc = g_strdup_printf ("%s ! videoconvert ! video/x-raw,format=RGB "
      "! appsink name=s sync=false max-buffers=4", head);
  GError *error = NULL;
  GstElement *p = gst_parse_launch (desc, &error);

  fail_unless (p != NULL, "%s: %s", desc, error ? error->message : "");
  *sink = gst_bin_get_by_name (GST_BIN (p), "s");
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  g_free (desc);
  return p;
}

static GstSample *
pull (GstElement * sink)
{
  GstSample *sample = NULL;

  g_signal_emit_by_name (sink, "pull-sample", &sample);
  return sample;
}

/* Sum over R, G, B of |a - b| at x, y. */
static gint
rgb_diff (const GstVideoFrame * a, const GstVideoFrame * b, gint x, gint y)
{
  const guint8 *pa = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (a, 0)
      + y * GST_VIDEO_FRAME_PLANE_STRIDE (a, 0) + 3 * x;
  const guint8 *pb = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (b, 0)
      + y * GST_VIDEO_FRAME_PLANE_STRIDE (b, 0) + 3 * x;

  return ABS (pa[0] - pb[0]) + ABS (pa[1] - pb[1]) + ABS (pa[2] - pb[2]);
}

static GArray **
read_boxes (const gchar * path, guint * num_frames)
{
  gchar *text = NULL;
  gchar **lines;
  GArray **frames;
  guint n;
  JsonParser *parser = json_parser_new ();

  fail_unless (g_file_get_contents (path, &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  n = g_strv_length (lines);
  fail_unless (n >= 1 && lines[n - 1][0] == '\0');
  n--;
  frames = g_new0 (GArray *, n);
  for (guint i = 0; i < n; i++) {
    JsonObject *o;
    JsonArray *objects;
    fail_unless (json_parser_load_from_data (parser, lines[i], -1, NULL),
        "line %u is not JSON", i + 1);
    o = json_node_get_object (json_parser_get_root (parser));
    fail_unless_equals_int (json_object_get_int_member (o, "frame"), i);
    objects = json_object_get_array_member (o, "objects");
    frames[i] = g_array_new (FALSE, FALSE, sizeof (Box));
    for (guint k = 0; k < json_array_get_length (objects); k++) {
      JsonObject *b = json_object_get_object_member
          (json_array_get_object_element (objects, k), "box");
      Box box = { json_object_get_int_member (b, "x"),
        json_object_get_int_member (b, "y"),
        json_object_get_int_member (b, "width"),
        json_object_get_int_member (b, "height")
      };
      g_array_append_val (frames[i], box);
    }
  }
  g_strfreev (lines);
  g_free (text);
  g_object_unref (parser);
  *num_frames = n;
  return frames;
}

GST_START_TEST (test_full_pipeline)
{
  gchar *video = kc_cache_path ("opencv/usr/share/doc/opencv-doc/examples/"
      "data/Megamind.avi");
  gchar *model = kc_cache_path ("models/face_detection_full_range.tflite");
  gchar *sidecar = kc_source_path ("assets/models/"
      "face_detection_full_range.sidecar");
  gchar *out = g_build_filename (work_dir, "out.avi", NULL);
  gchar *jsonl = g_build_filename (work_dir, "boxes.jsonl", NULL);
  gchar *desc, *head;
  GstElement *pa, *pb, *sa, *sb;
  GArray **boxes;
  guint num_lines, frames = 0, checked_frames = 0, checked_boxes = 0;
  gdouble far_sum = 0;
  guint64 far_count = 0;

  desc = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! videoconvert "
      "! video/x-raw,format=I420 ! kestreldetect model=\"%s\" config=\"%s\" "
      "mode=sync ! kestreltrack ! kestrelmetapublish location=\"%s\" "
      "! kestreloverlay thickness=%d ! jpegenc quality=95 ! avimux "
      "! filesink location=\"%s\"", video, model, sidecar, jsonl, THICKNESS,
      out);
  run_to_eos (desc);
  g_free (desc);
  boxes = read_boxes (jsonl, &num_lines);

  /* The written file against the undrawn input, frame by frame. */
  head = g_strdup_printf ("filesrc location=\"%s\" ! avidemux ! jpegdec", out);
  pa = start_rgb_reader (head, &sa);
  g_free (head);
  /* The reference goes through the same JPEG round trip, so that only the
   * drawing differs (jpegdec marks its output full range, for one). */
  head = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! videoconvert "
      "! video/x-raw,format=I420 ! jpegenc quality=95 ! jpegdec", video);
  pb = start_rgb_reader (head, &sb);
  g_free (head);

  for (;;) {
    GstSample *a = pull (sa), *b = pull (sb);
    GstVideoInfo ia, ib;
    GstVideoFrame fa, fb;
    gint w, h;

    if (!a || !b) {
      fail_unless (!a && !b, "the output has %s frames than the input",
          a ? "more" : "fewer");
      break;
    }
    fail_unless (frames < num_lines, "more frames than metadata lines");
    fail_unless (gst_video_info_from_caps (&ia, gst_sample_get_caps (a)));
    fail_unless (gst_video_info_from_caps (&ib, gst_sample_get_caps (b)));
    fail_unless (gst_video_frame_map (&fa, &ia, gst_sample_get_buffer (a),
            GST_MAP_READ));
    fail_unless (gst_video_frame_map (&fb, &ib, gst_sample_get_buffer (b),
            GST_MAP_READ));
    w = GST_VIDEO_INFO_WIDTH (&ia);
    h = GST_VIDEO_INFO_HEIGHT (&ia);
    fail_unless (w == GST_VIDEO_INFO_WIDTH (&ib)
        && h == GST_VIDEO_INFO_HEIGHT (&ib));

    /* Each box's outline, sampled along the middle of its 3 px line, must
     * differ clearly: the drawn colours are saturated. */
    for (guint k = 0; k < boxes[frames]->len; k++) {
      Box *bx = &g_array_index (boxes[frames], Box, k);
      gint x0 = bx->x + 1, y0 = bx->y + 1;
      gint x1 = bx->x + bx->w - 2, y1 = bx->y + bx->h - 2;
      gdouble sum = 0;
      gint n = 0;
      if (bx->w < 8 || bx->h < 8)
        continue;
      for (gint x = x0; x <= x1; x++) {
        sum += rgb_diff (&fa, &fb, x, y0) + rgb_diff (&fa, &fb, x, y1);
        n += 2;
      }
      for (gint y = y0; y <= y1; y++) {
        sum += rgb_diff (&fa, &fb, x0, y) + rgb_diff (&fa, &fb, x1, y);
        n += 2;
      }
      fail_unless (sum / n > 60.0, "frame %u box %d,%d %dx%d: edge differs "
          "by only %.1f on average", frames, bx->x, bx->y, bx->w, bx->h,
          sum / n);
      checked_boxes++;
    }
    checked_frames += boxes[frames]->len > 0;

    /* Far from every box (and label) only JPEG noise. */
    for (gint y = 0; y < h; y += 3)
      for (gint x = 0; x < w; x += 3) {
        gboolean near = FALSE;
        for (guint k = 0; k < boxes[frames]->len && !near; k++) {
          Box *bx = &g_array_index (boxes[frames], Box, k);
          near = x > bx->x - MARGIN && x < bx->x + bx->w + MARGIN
              && y > bx->y - MARGIN && y < bx->y + bx->h + MARGIN;
        }
        if (!near) {
          far_sum += rgb_diff (&fa, &fb, x, y);
          far_count++;
        }
      }

    gst_video_frame_unmap (&fa);
    gst_video_frame_unmap (&fb);
    gst_sample_unref (a);
    gst_sample_unref (b);
    frames++;
  }

  g_print ("full pipeline: %u frames in, %u out, %u metadata lines; %u boxes "
      "on %u frames drawn; far pixels differ by %.2f on average\n",
      frames, frames, num_lines, checked_boxes, checked_frames,
      far_count ? far_sum / far_count : 0.0);
  fail_unless_equals_int (frames, num_lines);
  fail_unless (frames >= 270, "only %u frames", frames);
  fail_unless (checked_boxes > 100, "only %u boxes checked", checked_boxes);
  fail_unless (far_count > 0 && far_sum / far_count < 10.0,
      "pixels far from boxes changed by %.2f on average", far_sum / far_count);

  gst_element_set_state (pa, GST_STATE_NULL);
  gst_element_set_state (pb, GST_STATE_NULL);
  gst_object_unref (sa);
  gst_object_unref (sb);
  gst_object_unref (pa);
  gst_object_unref (pb);
  for (guint i = 0; i < num_lines; i++)
    g_array_free (boxes[i], TRUE);
  g_free (boxes);
  g_free (video);
  g_free (model);
  g_free (sidecar);
  g_free (out);
  g_free (jsonl);
}

GST_END_TEST;

static Suite *
pipeline_suite (void)
{
  Suite *s = suite_create ("kestrel-pipeline");
  TCase *tc = tcase_create ("pipeline");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 900);
  tcase_add_checked_fixture (tc, setup_work, teardown_work);
  tcase_add_test (tc, test_full_pipeline);
  return s;
}

GST_CHECK_MAIN (pipeline);
