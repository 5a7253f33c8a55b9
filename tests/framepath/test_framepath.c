/* The frame path (issue 5): kestreljpegdec against jpegdec on real frames,
 * DCT-scaled decodes, damaged frames made here from real ones (truncated,
 * no EOI, flipped bytes, zeroed middle, not a JPEG) dropped or shown and
 * counted without stalling, ROI metadata carried through the decoder,
 * kestreldetect on image/jpeg (boxes in full-size pixels, agreeing with
 * detection on the full decode), and the recorded 1920x1080 MJPEG clip
 * through the fast pipelines. The fake camera runs in tests/framepath/
 * meson.build (it needs LD_PRELOAD before the process starts). */
#include <math.h>
#include <string.h>

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#define CLIP "clips/faces-1080p-mjpeg.avi"

static gchar *
cache_path (const gchar * rel)
{
  const gchar *cache = g_getenv ("KESTREL_CACHE");
  gchar *path;

  fail_unless (cache != NULL && *cache, "KESTREL_CACHE is not set");
  path = g_build_filename (cache, rel, NULL);
  fail_unless (g_file_test (path, G_FILE_TEST_EXISTS),
      "%s is missing: run scripts/setup.sh", path);
  return path;
}

/* INT8 BlazeFace full range from set-up, else the FP32 TFLite. */
static gchar *
detect_description (void)
{
  const gchar *cache = g_getenv ("KESTREL_CACHE");
  const gchar *src = g_getenv ("KESTREL_SOURCE_DIR");
  gchar *model = g_build_filename (cache, "compiled",
      "face_detection_full_range.int8.kestrel", NULL);
  gchar *sidecar, *desc;

  fail_unless (src != NULL, "KESTREL_SOURCE_DIR is not set");
  if (!g_file_test (model, G_FILE_TEST_EXISTS)) {
    g_free (model);
    model = cache_path ("models/face_detection_full_range.tflite");
  }
  sidecar = g_build_filename (src, "assets", "models",
      "face_detection_full_range.sidecar", NULL);
  desc = g_strdup_printf ("kestreldetect name=dut model=%s config=%s "
      "mode=sync", model, sidecar);
  g_free (model);
  g_free (sidecar);
  return desc;
}

/* The first n JPEG frames of the 1080p clip. */
static GPtrArray *
clip_frames (guint n)
{
  gchar *clip = cache_path (CLIP);
  gchar *desc = g_strdup_printf ("filesrc location=%s ! avidemux "
      "! appsink name=sink sync=false", clip);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstElement *sink;
  GPtrArray *frames = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_buffer_unref);

  fail_unless (pipeline != NULL);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  while (frames->len < n) {
    GstSample *s = NULL;
    g_signal_emit_by_name (sink, "pull-sample", &s);
    if (!s)
      break;
    g_ptr_array_add (frames, gst_buffer_copy_deep (gst_sample_get_buffer (s)));
    gst_sample_unref (s);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_free (desc);
  g_free (clip);
  fail_unless_equals_int (frames->len, n);
  return frames;
}

/* --- damaging real frames ------------------------------------------------ */

typedef enum
{
  DAMAGE_TRUNCATE,              /* cut at 55% */
  DAMAGE_NO_EOI,                /* last two bytes gone */
  DAMAGE_FLIP,                  /* 64 bytes of entropy data inverted */
  DAMAGE_ZERO_MIDDLE,           /* a fifth of the middle zeroed */
  DAMAGE_NOT_JPEG,              /* no SOI: a stray payload */
  DAMAGE_HEADER_ONLY,           /* headers, no scan data */
  NUM_DAMAGES
} Damage;

static const gchar *damage_name[] = { "truncated", "no-eoi", "flipped",
  "zeroed-middle", "not-jpeg", "header-only"
};

static GstBuffer *
damage (GstBuffer * good, Damage d)
{
  GstMapInfo map;
  guint8 *data;
  gsize size, n;
  GstBuffer *out;

  fail_unless (gst_buffer_map (good, &map, GST_MAP_READ));
  size = map.size;
  data = g_memdup2 (map.data, size);
  gst_buffer_unmap (good, &map);
  n = size;
  switch (d) {
    case DAMAGE_TRUNCATE:
      n = size * 55 / 100;
      break;
    case DAMAGE_NO_EOI:
      n = size - 2;
      break;
    case DAMAGE_FLIP:
      for (gsize i = 0; i < 64; i++)
        data[size / 2 + i * 97] ^= 0xFF;
      break;
    case DAMAGE_ZERO_MIDDLE:
      memset (data + size * 2 / 5, 0, size / 5);
      break;
    case DAMAGE_NOT_JPEG:
      for (gsize i = 0; i < size; i++)
        data[i] = (guint8) (i * 131 + 7);
      break;
    case DAMAGE_HEADER_ONLY:
      n = 700;
      break;
    default:
      break;
  }
  out = gst_buffer_new_wrapped (data, n);
  GST_BUFFER_PTS (out) = GST_BUFFER_PTS (good);
  return out;
}

static gint
bus_warnings (GstBus * bus)
{
  gint n = 0;
  GstMessage *m;

  while ((m = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING))) {
    n++;
    gst_message_unref (m);
  }
  return n;
}

/* The element under test inside a harness made by gst_harness_new_parse
 * (its description names it "dut"). */
static guint64
stat_u64 (GstElement * bin, const gchar * field)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (bin), "dut");
  GstStructure *s = NULL;
  guint64 v = 0;

  fail_unless (e != NULL);
  g_object_get (e, "stats", &s, NULL);
  gst_object_unref (e);
  fail_unless (s != NULL);
  fail_unless (gst_structure_get_uint64 (s, field, &v), "no %s in stats",
      field);
  gst_structure_free (s);
  return v;
}

static GstHarness *
jpegdec_harness (const gchar * props)
{
  gchar *desc = g_strdup_printf ("kestreljpegdec name=dut %s",
      props ? props : "");
  GstHarness *h = gst_harness_new_parse (desc);

  g_free (desc);
  gst_harness_set_src_caps_str (h,
      "image/jpeg,width=1920,height=1080,framerate=30/1");
  return h;
}

static gdouble
plane_diff (const GstVideoFrame * a, const GstVideoFrame * b, gint plane)
{
  gint w = GST_VIDEO_FRAME_COMP_WIDTH (a, plane);
  gint h = GST_VIDEO_FRAME_COMP_HEIGHT (a, plane);
  gdouble sum = 0;

  for (gint y = 0; y < h; y++) {
    const guint8 *p = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (a, plane)
        + y * GST_VIDEO_FRAME_PLANE_STRIDE (a, plane);
    const guint8 *q = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (b, plane)
        + y * GST_VIDEO_FRAME_PLANE_STRIDE (b, plane);
    for (gint x = 0; x < w; x++)
      sum += abs (p[x] - q[x]);
  }
  return sum / ((gdouble) w * h);
}

/* --- decoding -------------------------------------------------------------- */

/* Full-size decode equals GStreamer's jpegdec (the same libjpeg-turbo) on
 * real 4:2:0 frames, plane for plane, with no RGB in between. */
GST_START_TEST (test_decode_matches_jpegdec)
{
  GPtrArray *frames = clip_frames (3);
  GstHarness *ours = jpegdec_harness (NULL);
  GstHarness *ref = gst_harness_new_parse ("jpegdec");
  GstVideoInfo info;

  gst_harness_set_src_caps_str (ref,
      "image/jpeg,width=1920,height=1080,framerate=30/1");
  for (guint i = 0; i < frames->len; i++) {
    GstBuffer *a, *b;
    GstVideoFrame fa, fb;
    GstCaps *caps;
    fail_unless_equals_int (gst_harness_push (ours,
            gst_buffer_ref (frames->pdata[i])), GST_FLOW_OK);
    fail_unless_equals_int (gst_harness_push (ref,
            gst_buffer_ref (frames->pdata[i])), GST_FLOW_OK);
    a = gst_harness_pull (ours);
    b = gst_harness_pull (ref);
    caps = gst_pad_get_current_caps (ours->sinkpad);
    fail_unless (gst_video_info_from_caps (&info, caps));
    gst_caps_unref (caps);
    fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&info),
        GST_VIDEO_FORMAT_I420);
    fail_unless_equals_int (info.width, 1920);
    fail_unless_equals_int (info.height, 1080);
    fail_unless_equals_int (info.colorimetry.range,
        GST_VIDEO_COLOR_RANGE_0_255);
    {
      GstVideoInfo rinfo;
      caps = gst_pad_get_current_caps (ref->sinkpad);
      fail_unless (gst_video_info_from_caps (&rinfo, caps));
      gst_caps_unref (caps);
      fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&rinfo),
          GST_VIDEO_FORMAT_I420);
      fail_unless (gst_video_frame_map (&fa, &info, a, GST_MAP_READ));
      fail_unless (gst_video_frame_map (&fb, &rinfo, b, GST_MAP_READ));
    }
    for (gint p = 0; p < 3; p++) {
      gdouble d = plane_diff (&fa, &fb, p);
      GST_INFO ("frame %u plane %d: mean |ours - jpegdec| = %g", i, p, d);
      fail_unless (d < 0.5, "frame %u plane %d differs from jpegdec by %g",
          i, p, d);
    }
    gst_video_frame_unmap (&fa);
    gst_video_frame_unmap (&fb);
    gst_buffer_unref (a);
    gst_buffer_unref (b);
  }
  gst_harness_teardown (ours);
  gst_harness_teardown (ref);
  g_ptr_array_unref (frames);
}

GST_END_TEST;

/* scale=2/4/8 decodes in the DCT domain: ceil(size/scale) and the picture
 * of the full decode, averaged down. */
GST_START_TEST (test_decode_scaled)
{
  GPtrArray *frames = clip_frames (1);
  GstHarness *full = jpegdec_harness (NULL);
  GstBuffer *fb;
  GstVideoInfo finfo;
  GstVideoFrame ff;
  GstCaps *caps;
  const gint scales[] = { 2, 4, 8 };

  gst_harness_push (full, gst_buffer_ref (frames->pdata[0]));
  fb = gst_harness_pull (full);
  caps = gst_pad_get_current_caps (full->sinkpad);
  gst_video_info_from_caps (&finfo, caps);
  gst_caps_unref (caps);
  fail_unless (gst_video_frame_map (&ff, &finfo, fb, GST_MAP_READ));

  for (guint i = 0; i < G_N_ELEMENTS (scales); i++) {
    gchar *props = g_strdup_printf ("scale=%d", scales[i]);
    GstHarness *h = jpegdec_harness (props);
    GstVideoInfo info;
    GstVideoFrame f;
    GstBuffer *b;
    gdouble sum = 0;
    gint s = scales[i];

    gst_harness_push (h, gst_buffer_ref (frames->pdata[0]));
    b = gst_harness_pull (h);
    caps = gst_pad_get_current_caps (h->sinkpad);
    gst_video_info_from_caps (&info, caps);
    gst_caps_unref (caps);
    fail_unless_equals_int (info.width, (1920 + s - 1) / s);
    fail_unless_equals_int (info.height, (1080 + s - 1) / s);
    fail_unless (gst_video_frame_map (&f, &info, b, GST_MAP_READ));
    for (gint y = 0; y < 1080 / s; y++)
      for (gint x = 0; x < 1920 / s; x++) {
        guint acc = 0;
        for (gint dy = 0; dy < s; dy++)
          for (gint dx = 0; dx < s; dx++)
            acc += ((const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&ff, 0))
                [(y * s + dy) * GST_VIDEO_FRAME_PLANE_STRIDE (&ff, 0) +
                x * s + dx];
        sum += fabs ((gdouble) acc / (s * s) -
            ((const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0))
            [y * GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0) + x]);
      }
    sum /= (1920 / s) * (1080 / s);
    GST_INFO ("1/%d: mean |scaled - box(full)| = %g", s, sum);
    fail_unless (sum < 2.5, "1/%d decode differs from the full one by %g", s,
        sum);
    gst_video_frame_unmap (&f);
    gst_buffer_unref (b);
    gst_harness_teardown (h);
    g_free (props);
  }
  gst_video_frame_unmap (&ff);
  gst_buffer_unref (fb);
  gst_harness_teardown (full);
  g_ptr_array_unref (frames);
}

GST_END_TEST;

/* Pushes good, bad, good, bad, ... (every damage twice) and returns the
 * PTS of the frames that came out. */
static GArray *
push_damaged (GstHarness * h, GPtrArray * frames, GstBus * bus)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (GstClockTime));
  guint k = 0;

  gst_element_set_bus (h->element, bus);
  for (gint round = 0; round < 2; round++)
    for (gint d = 0; d < NUM_DAMAGES; d++) {
      GstBuffer *good = gst_buffer_copy (frames->pdata[k % frames->len]);
      GstBuffer *bad = damage (frames->pdata[(k + 1) % frames->len], d);
      GST_BUFFER_PTS (good) = (2 * k) * GST_MSECOND;
      GST_BUFFER_PTS (bad) = (2 * k + 1) * GST_MSECOND;
      fail_unless_equals_int (gst_harness_push (h, good), GST_FLOW_OK);
      fail_unless (gst_harness_push (h, bad) == GST_FLOW_OK,
          "a %s frame stopped the stream", damage_name[d]);
      k++;
    }
  /* and the stream goes on */
  for (gint i = 0; i < 3; i++) {
    GstBuffer *good = gst_buffer_copy (frames->pdata[i % frames->len]);
    GST_BUFFER_PTS (good) = (100 + i) * GST_MSECOND;
    fail_unless_equals_int (gst_harness_push (h, good), GST_FLOW_OK);
  }
  while (gst_harness_buffers_in_queue (h) > 0) {
    GstBuffer *b = gst_harness_pull (h);
    GstClockTime pts = GST_BUFFER_PTS (b);
    g_array_append_val (out, pts);
    gst_buffer_unref (b);
  }
  return out;
}

static gboolean
has_pts (GArray * a, GstClockTime pts)
{
  for (guint i = 0; i < a->len; i++)
    if (g_array_index (a, GstClockTime, i) == pts)
      return TRUE;
  return FALSE;
}

/* bad-frames=drop: every good frame out, no damaged one; all counted; one
 * warning for the whole burst (warning-interval); never a stall. */
GST_START_TEST (test_bad_frames_dropped)
{
  GPtrArray *frames = clip_frames (4);
  GstHarness *h = jpegdec_harness ("warning-interval=3600");
  GstBus *bus = gst_bus_new ();
  GArray *out = push_damaged (h, frames, bus);
  guint64 pushed = 2 * NUM_DAMAGES * 2 + 3;
  guint64 frames_seen = stat_u64 (h->element, "frames");
  guint64 decoded = stat_u64 (h->element, "decoded");
  guint64 damaged = stat_u64 (h->element, "damaged");
  guint64 failed = stat_u64 (h->element, "failed");
  guint64 dropped = stat_u64 (h->element, "dropped");
  guint64 truncated = stat_u64 (h->element, "truncated");

  GST_INFO ("decoded %" G_GUINT64_FORMAT " damaged %" G_GUINT64_FORMAT
      " failed %" G_GUINT64_FORMAT " truncated %" G_GUINT64_FORMAT, decoded,
      damaged, failed, truncated);
  fail_unless_equals_int (frames_seen, pushed);
  fail_unless_equals_int (decoded + damaged + failed, pushed);
  fail_unless_equals_int (dropped, damaged + failed);
  fail_unless_equals_int (out->len, decoded);
  /* Good frames all came out; truncated, no-EOI, header-only and non-JPEG
   * ones cannot have (2 of each, plus their missing EOIs). */
  for (guint k = 0; k < 2 * NUM_DAMAGES; k++)
    fail_unless (has_pts (out, (2 * k) * GST_MSECOND), "good frame %u lost",
        k);
  for (guint k = 0; k < 2 * NUM_DAMAGES; k++) {
    Damage d = k % NUM_DAMAGES;
    if (d == DAMAGE_TRUNCATE || d == DAMAGE_NO_EOI || d == DAMAGE_NOT_JPEG
        || d == DAMAGE_HEADER_ONLY)
      fail_if (has_pts (out, (2 * k + 1) * GST_MSECOND),
          "a %s frame was shown", damage_name[d]);
  }
  fail_unless (damaged + failed >= 8);
  fail_unless (truncated >= 6, "truncated %" G_GUINT64_FORMAT, truncated);
  fail_unless_equals_int (bus_warnings (bus), 1);
  g_array_unref (out);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  g_ptr_array_unref (frames);
}

GST_END_TEST;

/* bad-frames=show: damaged frames come out as far as they decoded;
 * unusable ones are still dropped. */
GST_START_TEST (test_bad_frames_shown)
{
  GPtrArray *frames = clip_frames (4);
  GstHarness *h = jpegdec_harness ("bad-frames=show warning-interval=0");
  GstBus *bus = gst_bus_new ();
  GArray *out = push_damaged (h, frames, bus);
  guint64 decoded = stat_u64 (h->element, "decoded");
  guint64 damaged = stat_u64 (h->element, "damaged");
  guint64 failed = stat_u64 (h->element, "failed");
  guint64 shown = stat_u64 (h->element, "shown-damaged");

  fail_unless (damaged >= 4, "damaged %" G_GUINT64_FORMAT, damaged);
  fail_unless_equals_int (shown, damaged);
  fail_unless_equals_int (out->len, decoded + damaged);
  /* A truncated frame is shown (its top half decoded); non-JPEG is not. */
  fail_unless (has_pts (out, 1 * GST_MSECOND), "truncated frame not shown");
  fail_if (has_pts (out, (2 * DAMAGE_NOT_JPEG + 1) * GST_MSECOND));
  /* warning-interval=0: one warning per bad frame. */
  fail_unless_equals_int (bus_warnings (bus), damaged + failed);
  g_array_unref (out);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  g_ptr_array_unref (frames);
}

GST_END_TEST;

/* A size change on one corrupt header does not renegotiate; two frames in
 * a row of a new size do. */
GST_START_TEST (test_size_change_confirmed)
{
  GPtrArray *frames = clip_frames (2);
  GstHarness *h = jpegdec_harness (NULL);
  GstHarness *enc = gst_harness_new_parse ("videoconvert ! jpegenc");
  GstBuffer *small;
  GstCaps *caps;
  GstVideoInfo info;

  gst_harness_set_src_caps_str (enc,
      "video/x-raw,format=I420,width=320,height=240,framerate=30/1");
  small = gst_harness_create_buffer (enc, 320 * 240 * 3 / 2);
  gst_buffer_memset (small, 0, 100, 320 * 240 * 3 / 2);
  gst_harness_push (enc, small);
  small = gst_harness_pull (enc);

  gst_harness_push (h, gst_buffer_ref (frames->pdata[0]));
  gst_buffer_unref (gst_harness_pull (h));
  gst_harness_push (h, gst_buffer_ref (small));
  gst_harness_push (h, gst_buffer_ref (frames->pdata[1]));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 1);
  gst_buffer_unref (gst_harness_pull (h));
  gst_harness_push (h, gst_buffer_ref (small));
  gst_harness_push (h, gst_buffer_ref (small));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 1);
  gst_buffer_unref (gst_harness_pull (h));
  caps = gst_pad_get_current_caps (h->sinkpad);
  gst_video_info_from_caps (&info, caps);
  gst_caps_unref (caps);
  fail_unless_equals_int (info.width, 320);
  fail_unless_equals_int (stat_u64 (h->element, "failed"), 2);
  gst_buffer_unref (small);
  gst_harness_teardown (enc);
  gst_harness_teardown (h);
  g_ptr_array_unref (frames);
}

GST_END_TEST;

/* ROI metadata on the JPEG (e.g. from kestreldetect before the decoder)
 * reaches the decoded frame, scaled to its size, with its params. */
GST_START_TEST (test_roi_meta_carried)
{
  GPtrArray *frames = clip_frames (1);
  const gint scales[] = { 1, 4 };

  for (guint i = 0; i < G_N_ELEMENTS (scales); i++) {
    gchar *props = g_strdup_printf ("scale=%d", scales[i]);
    GstHarness *h = jpegdec_harness (props);
    GstBuffer *in = gst_buffer_copy (frames->pdata[0]), *out;
    GstVideoRegionOfInterestMeta *roi;
    GstStructure *det;
    gdouble conf = 0;
    gint s = scales[i];

    roi = gst_buffer_add_video_region_of_interest_meta (in, "face", 400, 200,
        320, 240);
    roi->id = 7;
    gst_video_region_of_interest_meta_add_param (roi,
        gst_structure_new ("detection", "confidence", G_TYPE_DOUBLE, 0.9,
            NULL));
    gst_harness_push (h, in);
    out = gst_harness_pull (h);
    roi = gst_buffer_get_video_region_of_interest_meta (out);
    fail_unless (roi != NULL, "scale %d: ROI meta lost", s);
    fail_unless_equals_int (roi->x, 400 / s);
    fail_unless_equals_int (roi->y, 200 / s);
    fail_unless_equals_int (roi->w, 320 / s);
    fail_unless_equals_int (roi->h, 240 / s);
    fail_unless_equals_int (roi->id, 7);
    fail_unless_equals_string (g_quark_to_string (roi->roi_type), "face");
    det = gst_video_region_of_interest_meta_get_param (roi, "detection");
    fail_unless (det != NULL && gst_structure_get_double (det, "confidence",
            &conf) && conf == 0.9);
    {
      gpointer state = NULL;
      gint n = 0;
      while (gst_buffer_iterate_meta_filtered (out, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
        n++;
      fail_unless_equals_int (n, 1);
    }
    gst_buffer_unref (out);
    gst_harness_teardown (h);
    g_free (props);
  }
  g_ptr_array_unref (frames);
}

GST_END_TEST;

/* --- kestreldetect on image/jpeg -------------------------------------------- */

typedef struct
{
  gdouble x, y, w, h;
} Box;

static GArray *
boxes_of (GstBuffer * b)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (Box));
  gpointer state = NULL;
  GstMeta *m;

  while ((m = gst_buffer_iterate_meta_filtered (b, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *r = (GstVideoRegionOfInterestMeta *) m;
    Box box = { r->x, r->y, r->w, r->h };
    g_array_append_val (a, box);
  }
  return a;
}

static gdouble
iou (const Box * a, const Box * b)
{
  gdouble x0 = MAX (a->x, b->x), y0 = MAX (a->y, b->y);
  gdouble x1 = MIN (a->x + a->w, b->x + b->w);
  gdouble y1 = MIN (a->y + a->h, b->y + b->h);
  gdouble inter = MAX (0, x1 - x0) * MAX (0, y1 - y0);
  return inter / (a->w * a->h + b->w * b->h - inter);
}

/* The JPEG passes on byte for byte with ROI metadata in 1920x1080 pixels,
 * found on a 1/8 decode, matching detection on the full I420 decode. */
GST_START_TEST (test_detect_on_jpeg)
{
  GPtrArray *frames = clip_frames (60);
  gchar *detect = detect_description ();
  GstHarness *on_jpeg = gst_harness_new_parse (detect);
  gchar *full_desc = g_strdup_printf ("kestreljpegdec ! %s", detect);
  GstHarness *on_full = gst_harness_new_parse (full_desc);
  guint compared = 0;
  gdouble iou_sum = 0;

  gst_harness_set_src_caps_str (on_jpeg,
      "image/jpeg,width=1920,height=1080,framerate=30/1");
  gst_harness_set_src_caps_str (on_full,
      "image/jpeg,width=1920,height=1080,framerate=30/1");
  for (guint i = 0; i < frames->len; i += 6) {
    GstBuffer *in = frames->pdata[i], *a, *b;
    GArray *ba, *bb;
    GstMapInfo mi, ma;
    gst_harness_push (on_jpeg, gst_buffer_ref (in));
    gst_harness_push (on_full, gst_buffer_ref (in));
    a = gst_harness_pull (on_jpeg);
    b = gst_harness_pull (on_full);
    fail_unless (gst_buffer_map (in, &mi, GST_MAP_READ));
    fail_unless (gst_buffer_map (a, &ma, GST_MAP_READ));
    fail_unless (mi.size == ma.size && !memcmp (mi.data, ma.data, mi.size),
        "the JPEG changed");
    gst_buffer_unmap (in, &mi);
    gst_buffer_unmap (a, &ma);
    ba = boxes_of (a);
    bb = boxes_of (b);
    fail_unless (bb->len > 0, "frame %u: no face on the full decode", i);
    fail_unless (ba->len > 0, "frame %u: no face on the JPEG path", i);
    for (guint k = 0; k < ba->len; k++) {
      Box *x = &g_array_index (ba, Box, k);
      gdouble best = 0;
      fail_unless (x->x >= 0 && x->y >= 0 && x->x + x->w <= 1920
          && x->y + x->h <= 1080);
      for (guint j = 0; j < bb->len; j++)
        best = MAX (best, iou (x, &g_array_index (bb, Box, j)));
      GST_INFO ("frame %u box %u (%g,%g %gx%g): best IoU %g", i, k, x->x,
          x->y, x->w, x->h, best);
      iou_sum += best;
      compared++;
    }
    g_array_unref (ba);
    g_array_unref (bb);
    gst_buffer_unref (a);
    gst_buffer_unref (b);
  }
  fail_unless (compared >= 10);
  fail_unless (iou_sum / compared > 0.75,
      "boxes from the 1/8 decode agree with the full decode by mean IoU %g",
      iou_sum / compared);
  {
    GstCaps *caps = gst_pad_get_current_caps (on_jpeg->sinkpad);
    fail_unless (gst_structure_has_name (gst_caps_get_structure (caps, 0),
            "image/jpeg"));
    gst_caps_unref (caps);
  }
  gst_harness_teardown (on_jpeg);
  gst_harness_teardown (on_full);
  g_free (full_desc);
  g_free (detect);
  g_ptr_array_unref (frames);
}

GST_END_TEST;

/* Damaged JPEGs pass through kestreldetect untouched, are not inferred on,
 * and are counted (stats bad-frames). */
GST_START_TEST (test_detect_bad_jpeg)
{
  GPtrArray *frames = clip_frames (2);
  gchar *detect = detect_description ();
  GstHarness *h = gst_harness_new_parse (detect);
  GstBus *bus = gst_bus_new ();

  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h,
      "image/jpeg,width=1920,height=1080,framerate=30/1");
  for (gint d = 0; d < NUM_DAMAGES; d++) {
    GstBuffer *bad = damage (frames->pdata[0], d), *out;
    gsize size = gst_buffer_get_size (bad);
    fail_unless_equals_int (gst_harness_push (h, bad), GST_FLOW_OK);
    out = gst_harness_pull (h);
    fail_unless_equals_int (gst_buffer_get_size (out), size);
    if (d == DAMAGE_TRUNCATE || d == DAMAGE_NO_EOI || d == DAMAGE_NOT_JPEG
        || d == DAMAGE_HEADER_ONLY)
      fail_unless (gst_buffer_get_video_region_of_interest_meta (out) == NULL,
          "boxes on a %s frame", damage_name[d]);
    gst_buffer_unref (out);
  }
  gst_harness_push (h, gst_buffer_ref (frames->pdata[1]));
  {
    GstBuffer *out = gst_harness_pull (h);
    fail_unless (gst_buffer_get_video_region_of_interest_meta (out) != NULL,
        "no face after the bad frames");
    gst_buffer_unref (out);
  }
  {
    guint64 bad = stat_u64 (h->element, "bad-frames");
    fail_unless (bad >= 4, "bad-frames %" G_GUINT64_FORMAT, bad);
  }
  /* One warning for the burst (rate-limited). */
  fail_unless_equals_int (bus_warnings (bus), 1);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  g_free (detect);
  g_ptr_array_unref (frames);
}

GST_END_TEST;

/* --- the recorded clip through whole pipelines -------------------------------- */

typedef struct
{
  guint frames, with_faces, out_of_bounds;
  gint width, height;
} ClipCount;

static GstPadProbeReturn
count_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  ClipCount *c = user_data;
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  GArray *boxes = boxes_of (b);

  c->frames++;
  if (boxes->len > 0)
    c->with_faces++;
  for (guint i = 0; i < boxes->len; i++) {
    Box *x = &g_array_index (boxes, Box, i);
    if (x->x < 0 || x->y < 0 || x->x + x->w > c->width
        || x->y + x->h > c->height)
      c->out_of_bounds++;
  }
  g_array_unref (boxes);
  return GST_PAD_PROBE_OK;
}

static ClipCount
run_clip (const gchar * middle, gint width, gint height)
{
  gchar *clip = cache_path (CLIP);
  gchar *desc = g_strdup_printf ("filesrc location=%s ! avidemux ! %s "
      "! fakesink name=sink", clip, middle);
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &error);
  GstElement *sink;
  GstPad *pad;
  GstMessage *msg;
  ClipCount c = { 0, 0, 0, width, height };

  fail_unless (pipeline != NULL, "%s: %s", desc, error ? error->message : "");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_probe, &c, NULL);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipeline),
      120 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "%s: timed out", desc);
  fail_unless (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS, "%s: error", desc);
  gst_message_unref (msg);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_free (desc);
  g_free (clip);
  GST_INFO ("%s: %u frames, %u with faces", middle, c.frames, c.with_faces);
  return c;
}

/* Display path: decode once at full size, detect on I420, draw on the
 * planes. All 300 frames, faces on nearly all. */
GST_START_TEST (test_clip_full_size)
{
  gchar *detect = detect_description ();
  gchar *middle = g_strdup_printf ("kestreljpegdec ! %s ! kestreloverlay",
      detect);
  ClipCount c = run_clip (middle, 1920, 1080);

  fail_unless_equals_int (c.frames, 300);
  fail_unless (c.with_faces >= 270, "faces on %u of 300 frames",
      c.with_faces);
  fail_unless_equals_int (c.out_of_bounds, 0);
  g_free (middle);
  g_free (detect);
}

GST_END_TEST;

/* Metadata path: detect on the JPEGs (1/8 decode), then a 1/2 preview
 * decode downstream still has the boxes, in its own pixels. */
GST_START_TEST (test_clip_metadata_then_preview)
{
  gchar *detect = detect_description ();
  ClipCount meta = run_clip (detect, 1920, 1080);
  gchar *middle = g_strdup_printf ("%s ! kestreljpegdec scale=2 "
      "! kestreloverlay", detect);
  ClipCount preview = run_clip (middle, 960, 540);

  fail_unless_equals_int (meta.frames, 300);
  fail_unless (meta.with_faces >= 270, "faces on %u of 300 frames",
      meta.with_faces);
  fail_unless_equals_int (meta.out_of_bounds, 0);
  fail_unless_equals_int (preview.frames, 300);
  fail_unless_equals_int (preview.with_faces, meta.with_faces);
  fail_unless_equals_int (preview.out_of_bounds, 0);
  g_free (middle);
  g_free (detect);
}

GST_END_TEST;

static Suite *
framepath_suite (void)
{
  Suite *s = suite_create ("framepath");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_decode_matches_jpegdec);
  tcase_add_test (tc, test_decode_scaled);
  tcase_add_test (tc, test_bad_frames_dropped);
  tcase_add_test (tc, test_bad_frames_shown);
  tcase_add_test (tc, test_size_change_confirmed);
  tcase_add_test (tc, test_roi_meta_carried);
  tcase_add_test (tc, test_detect_on_jpeg);
  tcase_add_test (tc, test_detect_bad_jpeg);
  tcase_add_test (tc, test_clip_full_size);
  tcase_add_test (tc, test_clip_metadata_then_preview);
  return s;
}

GST_CHECK_MAIN (framepath);
