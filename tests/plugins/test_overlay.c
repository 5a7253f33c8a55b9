/* Tests of the drawing code (kestreldraw.c) and of kestreloverlay in a
 * GstHarness: every format draws the same shapes where the boxes are and
 * nowhere else, clipping of hostile coordinates, odd frame sizes, text,
 * keypoints, the HUD, frame classes, properties mid-stream, a stress run. */
#include <stdio.h>
#include <string.h>

#include "kestrel_check.h"
#include "kestreldraw.h"

static const gchar *formats[] = {
  "I420", "NV12", "YUY2", "RGB", "BGR", "RGBx", "BGRx"
};

static const kestrel_draw_format draw_formats[] = {
  KESTREL_DRAW_I420, KESTREL_DRAW_NV12, KESTREL_DRAW_YUY2, KESTREL_DRAW_RGB,
  KESTREL_DRAW_BGR, KESTREL_DRAW_RGBX, KESTREL_DRAW_BGRX
};

/* A mid-grey frame (128 in every byte: grey in RGB and in YUV alike). */
static GstBuffer *
grey_frame (const gchar * format, gint width, gint height, GstVideoInfo * info)
{
  GstBuffer *buf;
  GstMapInfo map;

  fail_unless (gst_video_info_set_format (info,
          gst_video_format_from_string (format), width, height));
  buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (info), NULL);
  gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE,
      GST_VIDEO_INFO_FORMAT (info), width, height,
      GST_VIDEO_INFO_N_PLANES (info), info->offset, info->stride);
  fail_unless (gst_buffer_map (buf, &map, GST_MAP_WRITE));
  memset (map.data, 128, map.size);
  gst_buffer_unmap (buf, &map);
  return buf;
}

/* Has the pixel at x, y changed from grey (any of its components)? */
static gboolean
pixel_changed (GstVideoFrame * f, gint x, gint y)
{
  const guint8 *p0 = GST_VIDEO_FRAME_PLANE_DATA (f, 0);
  gint s0 = GST_VIDEO_FRAME_PLANE_STRIDE (f, 0);

  switch (GST_VIDEO_FRAME_FORMAT (f)) {
    case GST_VIDEO_FORMAT_I420:{
      const guint8 *u = GST_VIDEO_FRAME_PLANE_DATA (f, 1);
      const guint8 *v = GST_VIDEO_FRAME_PLANE_DATA (f, 2);
      gint su = GST_VIDEO_FRAME_PLANE_STRIDE (f, 1);
      gint sv = GST_VIDEO_FRAME_PLANE_STRIDE (f, 2);
      return p0[y * s0 + x] != 128 || u[(y / 2) * su + x / 2] != 128
          || v[(y / 2) * sv + x / 2] != 128;
    }
    case GST_VIDEO_FORMAT_NV12:{
      const guint8 *uv = GST_VIDEO_FRAME_PLANE_DATA (f, 1);
      gint suv = GST_VIDEO_FRAME_PLANE_STRIDE (f, 1);
      return p0[y * s0 + x] != 128 || uv[(y / 2) * suv + (x / 2) * 2] != 128;
    }
    case GST_VIDEO_FORMAT_YUY2:
      return p0[y * s0 + 2 * x] != 128;
    case GST_VIDEO_FORMAT_RGB:
    case GST_VIDEO_FORMAT_BGR:
      return memcmp (p0 + y * s0 + 3 * x, "\x80\x80\x80", 3) != 0;
    default:
      return memcmp (p0 + y * s0 + 4 * x, "\x80\x80\x80", 3) != 0;
  }
}

/* Luma only (the exact footprint; chroma of YUV spreads to 2x2 blocks). */
static gboolean
luma_changed (GstVideoFrame * f, gint x, gint y)
{
  const guint8 *p0 = GST_VIDEO_FRAME_PLANE_DATA (f, 0);
  gint s0 = GST_VIDEO_FRAME_PLANE_STRIDE (f, 0);

  switch (GST_VIDEO_FRAME_FORMAT (f)) {
    case GST_VIDEO_FORMAT_I420:
    case GST_VIDEO_FORMAT_NV12:
      return p0[y * s0 + x] != 128;
    case GST_VIDEO_FORMAT_YUY2:
      return p0[y * s0 + 2 * x] != 128;
    default:
      return pixel_changed (f, x, y);
  }
}

static void
canvas_from_frame (kestrel_canvas * c, GstVideoFrame * f, guint format_index)
{
  c->format = draw_formats[format_index];
  c->width = GST_VIDEO_FRAME_WIDTH (f);
  c->height = GST_VIDEO_FRAME_HEIGHT (f);
  for (guint p = 0; p < 3; p++) {
    gboolean has = p < GST_VIDEO_FRAME_N_PLANES (f);
    c->planes[p] = has ? GST_VIDEO_FRAME_PLANE_DATA (f, p) : NULL;
    c->strides[p] = has ? GST_VIDEO_FRAME_PLANE_STRIDE (f, p) : 0;
  }
}

/* The luma footprint of a shape is the same in every format; a box edge is
 * drawn exactly where it belongs and nothing else changes. */
GST_START_TEST (test_draw_rect_every_format)
{
  const kestrel_color red = { 255, 0, 0 };

  for (guint i = 0; i < G_N_ELEMENTS (formats); i++) {
    GstVideoInfo info;
    GstBuffer *buf = grey_frame (formats[i], 64, 48, &info);
    GstVideoFrame f;
    kestrel_canvas c;

    fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_READWRITE));
    canvas_from_frame (&c, &f, i);
    kestrel_draw_rect (&c, 10, 8, 20, 16, 2, red);
    for (gint y = 0; y < 48; y++)
      for (gint x = 0; x < 64; x++) {
        gboolean inside = x >= 10 && x < 30 && y >= 8 && y < 24;
        gboolean edge = inside && (x < 12 || x >= 28 || y < 10 || y >= 22);
        fail_unless_equals_int (luma_changed (&f, x, y), edge);
        if (edge)
          fail_unless (pixel_changed (&f, x, y), "%s: %d,%d", formats[i], x, y);
      }
    gst_video_frame_unmap (&f);
    gst_buffer_unref (buf);
  }
}

GST_END_TEST;

/* The colour is right: red in RGB formats; in YUV, BT.601 red. */
GST_START_TEST (test_draw_colors)
{
  const kestrel_color c = { 255, 0, 0 };

  for (guint i = 0; i < G_N_ELEMENTS (formats); i++) {
    GstVideoInfo info;
    GstBuffer *buf = grey_frame (formats[i], 8, 8, &info);
    GstVideoFrame f;
    kestrel_canvas cv;
    const guint8 *p;

    fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_READWRITE));
    canvas_from_frame (&cv, &f, i);
    kestrel_draw_fill (&cv, 0, 0, 8, 8, c);
    p = GST_VIDEO_FRAME_PLANE_DATA (&f, 0);
    switch (GST_VIDEO_INFO_FORMAT (&info)) {
      case GST_VIDEO_FORMAT_RGB:
      case GST_VIDEO_FORMAT_RGBx:
        fail_unless (p[0] == 255 && p[1] == 0 && p[2] == 0);
        break;
      case GST_VIDEO_FORMAT_BGR:
      case GST_VIDEO_FORMAT_BGRx:
        fail_unless (p[0] == 0 && p[1] == 0 && p[2] == 255);
        break;
      case GST_VIDEO_FORMAT_YUY2:
        fail_unless (p[0] == 82 && p[1] == 90 && p[3] == 240,
            "YUY2 red %d %d %d", p[0], p[1], p[3]);
        break;
      default:{
        const guint8 *u = GST_VIDEO_FRAME_PLANE_DATA (&f, 1);
        fail_unless (p[0] == 82 && u[0] == 90, "%s red %d %d", formats[i],
            p[0], u[0]);
        break;
      }
    }
    gst_video_frame_unmap (&f);
    gst_buffer_unref (buf);
  }
}

GST_END_TEST;

/* Shapes off the frame, huge or negative sizes, 1x1 and odd-sized frames:
 * everything clips, nothing is written outside (the buffers are exact, so
 * valgrind/ASan would catch an overrun). */
GST_START_TEST (test_draw_clipping)
{
  const gint sizes[][2] = { {1, 1}, {7, 5}, {4097, 3}, {3, 9} };
  const kestrel_color white = { 255, 255, 255 };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
    for (guint i = 0; i < G_N_ELEMENTS (formats); i++) {
      GstVideoInfo info;
      GstBuffer *buf = grey_frame (formats[i], sizes[s][0], sizes[s][1],
          &info);
      GstVideoFrame f;
      kestrel_canvas c;

      fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_READWRITE));
      canvas_from_frame (&c, &f, i);
      kestrel_draw_rect (&c, -5, -5, 10000, 10000, 3, white);
      kestrel_draw_rect (&c, G_MAXINT - 2, G_MAXINT - 2, G_MAXINT, 5, 2, white);
      kestrel_draw_fill (&c, G_MININT, G_MININT, G_MAXINT, G_MAXINT, white);
      kestrel_draw_fill (&c, 0, 0, -4, 3, white);
      kestrel_draw_point (&c, sizes[s][0] - 1, sizes[s][1] - 1, 4, white);
      kestrel_draw_text (&c, sizes[s][0] - 3, -2, 3, "Hi \x01\xff~", white);
      kestrel_draw_text (&c, -100, sizes[s][1] - 2, 1, "clipped", white);
      fail_unless (pixel_changed (&f, sizes[s][0] - 1, sizes[s][1] - 1));
      gst_video_frame_unmap (&f);
      gst_buffer_unref (buf);
    }
}

GST_END_TEST;

GST_START_TEST (test_draw_text)
{
  const kestrel_color white = { 255, 255, 255 };
  GstVideoInfo info;
  GstBuffer *buf = grey_frame ("RGB", 200, 40, &info);
  GstVideoFrame f;
  kestrel_canvas c;
  gint width, lit = 0, min_x = 1000, max_x = -1, min_y = 1000, max_y = -1;

  fail_unless_equals_int (kestrel_draw_text_width ("", 2), 0);
  fail_unless_equals_int (kestrel_draw_text_width ("ab", 1), 11);
  fail_unless_equals_int (kestrel_draw_text_width ("ab\ncd", 2), 22);
  fail_unless_equals_int (kestrel_draw_text_height (2), 14);
  /* Every printable glyph but space has ink; space has none. */
  for (gint ch = 33; ch < 127; ch++) {
    const guint8 *g = kestrel_font_glyph (ch);
    gint ink = 0;
    for (gint r = 0; r < 7; r++)
      ink |= g[r];
    fail_unless (ink != 0 && (ink & ~0x1f) == 0, "glyph %c", ch);
  }
  fail_unless (kestrel_font_glyph (200) == kestrel_font_glyph ('?'));

  fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_READWRITE));
  canvas_from_frame (&c, &f, 3);
  width = kestrel_draw_text (&c, 10, 5, 2, "face 97% #3", white);
  fail_unless_equals_int (width, kestrel_draw_text_width ("face 97% #3", 2));
  for (gint y = 0; y < 40; y++)
    for (gint x = 0; x < 200; x++)
      if (pixel_changed (&f, x, y)) {
        lit++;
        min_x = MIN (min_x, x);
        max_x = MAX (max_x, x);
        min_y = MIN (min_y, y);
        max_y = MAX (max_y, y);
      }
  fail_unless (lit > 100);
  fail_unless (min_x >= 10 && max_x < 10 + width, "x %d..%d", min_x, max_x);
  fail_unless (min_y >= 5 && max_y < 5 + 14, "y %d..%d", min_y, max_y);
  gst_video_frame_unmap (&f);
  gst_buffer_unref (buf);
}

GST_END_TEST;

/* --- the element --------------------------------------------------------- */

static void
add_detection (GstBuffer * buf, gint x, gint y, gint w, gint h, gint id,
    gint width, gint height, gboolean keypoints)
{
  GstVideoRegionOfInterestMeta *m =
      gst_buffer_add_video_region_of_interest_meta (buf, "face", x, y, w, h);
  GstStructure *s = gst_structure_new ("detection",
      "x_min", G_TYPE_DOUBLE, (gdouble) x / width,
      "y_min", G_TYPE_DOUBLE, (gdouble) y / height,
      "x_max", G_TYPE_DOUBLE, (gdouble) (x + w) / width,
      "y_max", G_TYPE_DOUBLE, (gdouble) (y + h) / height,
      "confidence", G_TYPE_DOUBLE, 0.875, "label_id", G_TYPE_INT, 0,
      "label", G_TYPE_STRING, "face", NULL);

  if (keypoints) {
    GValue arr = G_VALUE_INIT, v = G_VALUE_INIT;
    gdouble kp[4] = { 0.9, 0.9, 0.95, 0.1 };
    g_value_init (&arr, GST_TYPE_ARRAY);
    g_value_init (&v, G_TYPE_DOUBLE);
    for (gint k = 0; k < 4; k++) {
      g_value_set_double (&v, kp[k]);
      gst_value_array_append_value (&arr, &v);
    }
    g_value_unset (&v);
    gst_structure_take_value (s, "keypoints", &arr);
  }
  gst_video_region_of_interest_meta_add_param (m, s);
  if (id > 0)
    gst_video_region_of_interest_meta_add_param (m,
        gst_structure_new ("object_id", "id", G_TYPE_INT, id, NULL));
}

static GstHarness *
overlay_harness (const GstVideoInfo * info)
{
  GstHarness *h = gst_harness_new ("kestreloverlay");
  gchar *caps = kc_caps_string (info);

  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  return h;
}

/* Every format negotiates; the box edges change, the box's inside and the
 * far corner stay grey; the label sits above the box. */
GST_START_TEST (test_overlay_every_format)
{
  for (guint i = 0; i < G_N_ELEMENTS (formats); i++) {
    GstVideoInfo info;
    GstBuffer *buf = grey_frame (formats[i], 320, 240, &info);
    GstHarness *h = overlay_harness (&info);
    GstBuffer *out;
    GstVideoFrame f;

    g_object_set (h->element, "thickness", 2, "font-scale", 1, NULL);
    add_detection (buf, 100, 80, 60, 50, 3, 320, 240, FALSE);
    out = gst_harness_push_and_pull (h, buf);
    fail_unless (out != NULL, "%s: no output", formats[i]);
    fail_unless (gst_video_frame_map (&f, &info, out, GST_MAP_READ));
    for (gint x = 100; x < 160; x += 3) {
      fail_unless (luma_changed (&f, x, 80), "%s: top edge %d", formats[i], x);
      fail_unless (luma_changed (&f, x, 129), "%s: bottom edge", formats[i]);
    }
    for (gint y = 80; y < 130; y += 3) {
      fail_unless (luma_changed (&f, 100, y), "%s: left edge", formats[i]);
      fail_unless (luma_changed (&f, 159, y), "%s: right edge", formats[i]);
    }
    fail_if (luma_changed (&f, 130, 105), "%s: inside", formats[i]);
    fail_if (luma_changed (&f, 300, 220), "%s: far corner", formats[i]);
    /* The label box above the top edge (9 px tall at scale 1). */
    fail_unless (luma_changed (&f, 101, 75), "%s: label", formats[i]);
    gst_video_frame_unmap (&f);
    gst_buffer_unref (out);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

GST_START_TEST (test_overlay_rejects_other_formats)
{
  GstHarness *h = gst_harness_new ("kestreloverlay");
  GstCaps *caps = gst_caps_from_string ("video/x-raw,format=GRAY8,width=8,"
      "height=8,framerate=30/1");

  fail_if (gst_pad_peer_query_accept_caps (h->srcpad, caps));
  gst_caps_unref (caps);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Odd sizes (1x1, 4097x3, odd widths for I420/NV12) with boxes larger than
 * the frame and keypoints outside it. */
GST_START_TEST (test_overlay_odd_sizes)
{
  const gint sizes[][2] = { {1, 1}, {4097, 3}, {7, 5}, {641, 361} };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
    for (guint i = 0; i < G_N_ELEMENTS (formats); i++) {
      GstVideoInfo info;
      gint w = sizes[s][0], ht = sizes[s][1];
      GstBuffer *buf = grey_frame (formats[i], w, ht, &info);
      GstHarness *h = overlay_harness (&info);
      GstBuffer *out;
      GstVideoFrame f;

      g_object_set (h->element, "hud", TRUE, NULL);
      add_detection (buf, 0, 0, w, ht, 1, w, ht, TRUE);
      add_detection (buf, w / 2, ht / 2, 10000, 10000, 2, w, ht, TRUE);
      out = gst_harness_push_and_pull (h, buf);
      fail_unless (out != NULL);
      fail_unless (gst_video_frame_map (&f, &info, out, GST_MAP_READ));
      fail_unless (luma_changed (&f, 0, 0), "%s %dx%d", formats[i], w, ht);
      gst_video_frame_unmap (&f);
      gst_buffer_unref (out);
      gst_harness_teardown (h);
    }
}

GST_END_TEST;

static gint
count_changed (GstBuffer * buf, const GstVideoInfo * info)
{
  GstVideoFrame f;
  gint n = 0;

  fail_unless (gst_video_frame_map (&f, info, buf, GST_MAP_READ));
  for (gint y = 0; y < GST_VIDEO_INFO_HEIGHT (info); y++)
    for (gint x = 0; x < GST_VIDEO_INFO_WIDTH (info); x++)
      n += luma_changed (&f, x, y);
  gst_video_frame_unmap (&f);
  return n;
}

/* Each property changes what is drawn, set while playing, frame by frame. */
GST_START_TEST (test_overlay_properties)
{
  GstVideoInfo info;
  GstBuffer *buf = grey_frame ("RGB", 320, 240, &info);
  GstHarness *h = overlay_harness (&info);
  gint box_only, with_label, with_keypoints, with_hud, thick, no_conf,
      no_id, scaled;
  gboolean b;

  g_object_get (h->element, "show-labels", &b, NULL);
  fail_unless (b);
  g_object_get (h->element, "hud", &b, NULL);
  fail_if (b);

#define DRAW(var) do { \
    GstBuffer *in = gst_buffer_copy_deep (buf), *out; \
    add_detection (in, 100, 100, 80, 60, 4, 320, 240, TRUE); \
    out = gst_harness_push_and_pull (h, in); \
    var = count_changed (out, &info); \
    gst_buffer_unref (out); \
  } while (0)

  g_object_set (h->element, "thickness", 1, "font-scale", 1,
      "show-labels", FALSE, "show-keypoints", FALSE, NULL);
  DRAW (box_only);
  fail_unless_equals_int (box_only, 2 * 80 + 2 * 58);
  g_object_set (h->element, "show-keypoints", TRUE, NULL);
  DRAW (with_keypoints);
  /* Two 3x3 keypoints, both away from the box. */
  fail_unless_equals_int (with_keypoints, box_only + 2 * 9);
  g_object_set (h->element, "show-labels", TRUE, NULL);
  DRAW (with_label);
  fail_unless (with_label > with_keypoints + 100);
  g_object_set (h->element, "show-confidence", FALSE, NULL);
  DRAW (no_conf);
  fail_unless (no_conf < with_label);
  g_object_set (h->element, "show-track-id", FALSE, NULL);
  DRAW (no_id);
  fail_unless (no_id < no_conf);
  g_object_set (h->element, "font-scale", 3, NULL);
  DRAW (scaled);
  fail_unless (scaled > no_id * 3);
  g_object_set (h->element, "show-labels", FALSE, "show-keypoints", FALSE,
      "thickness", 4, NULL);
  DRAW (thick);
  fail_unless_equals_int (thick, 2 * 80 * 4 + 2 * (60 - 8) * 4);
  g_object_set (h->element, "hud", TRUE, NULL);
  DRAW (with_hud);
  fail_unless (with_hud > thick + 100);
#undef DRAW

  gst_buffer_unref (buf);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Classes of the whole frame (ROI "frame" without "detection") are written
 * at the top left; a frame without metadata is left alone. */
GST_START_TEST (test_overlay_frame_classes_and_empty)
{
  GstVideoInfo info;
  GstBuffer *buf = grey_frame ("NV12", 320, 240, &info), *out;
  GstHarness *h = overlay_harness (&info);
  GstVideoRegionOfInterestMeta *m;

  out = gst_harness_push_and_pull (h, gst_buffer_copy_deep (buf));
  fail_unless_equals_int (count_changed (out, &info), 0);
  gst_buffer_unref (out);

  m = gst_buffer_add_video_region_of_interest_meta (buf, "frame", 0, 0, 320,
      240);
  gst_video_region_of_interest_meta_add_param (m,
      gst_structure_new ("softmax_0.tmp_0", "label", G_TYPE_STRING, "180",
          "label_id", G_TYPE_INT, 1, "confidence", G_TYPE_DOUBLE, 0.93, NULL));
  out = gst_harness_push_and_pull (h, buf);
  {
    GstVideoFrame f;
    gint top = 0, rest = 0;
    fail_unless (gst_video_frame_map (&f, &info, out, GST_MAP_READ));
    for (gint y = 0; y < 240; y++)
      for (gint x = 0; x < 320; x++)
        if (luma_changed (&f, x, y))
          (y < 20 && x < 100) ? top++ : rest++;
    gst_video_frame_unmap (&f);
    fail_unless (top > 50);
    /* The frame-sized ROI is not drawn as a box. */
    fail_unless_equals_int (rest, 0);
  }
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Many frames with many boxes in every format, flipping properties. */
GST_START_TEST (test_overlay_stress)
{
  GRand *rand = g_rand_new_with_seed (3);

  for (guint i = 0; i < G_N_ELEMENTS (formats); i++) {
    GstVideoInfo info;
    GstBuffer *grey = grey_frame (formats[i], 333, 177, &info);
    GstHarness *h = overlay_harness (&info);

    for (gint f = 0; f < 60; f++) {
      GstBuffer *buf = gst_buffer_copy_deep (grey), *out;
      for (gint k = 0; k < 40; k++)
        add_detection (buf, g_rand_int_range (rand, -100, 400),
            g_rand_int_range (rand, -100, 300), g_rand_int_range (rand, 0,
                300), g_rand_int_range (rand, 0, 300), k, 333, 177, TRUE);
      g_object_set (h->element, "hud", f % 2 == 0, "thickness", f % 7,
          "font-scale", f % 4, NULL);
      out = gst_harness_push_and_pull (h, buf);
      fail_unless (out != NULL);
      gst_buffer_unref (out);
    }
    gst_buffer_unref (grey);
    gst_harness_teardown (h);
  }
  g_rand_free (rand);
}

GST_END_TEST;

static Suite *
overlay_suite (void)
{
  Suite *s = suite_create ("kestreloverlay");
  TCase *tc = tcase_create ("draw");
  TCase *te = tcase_create ("element");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_draw_rect_every_format);
  tcase_add_test (tc, test_draw_colors);
  tcase_add_test (tc, test_draw_clipping);
  tcase_add_test (tc, test_draw_text);

  suite_add_tcase (s, te);
  tcase_set_timeout (te, 300);
  tcase_add_test (te, test_overlay_every_format);
  tcase_add_test (te, test_overlay_rejects_other_formats);
  tcase_add_test (te, test_overlay_odd_sizes);
  tcase_add_test (te, test_overlay_properties);
  tcase_add_test (te, test_overlay_frame_classes_and_empty);
  tcase_add_test (te, test_overlay_stress);
  return s;
}

GST_CHECK_MAIN (overlay);
