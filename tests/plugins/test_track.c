/* Tests of the tracker (kestreltracker.c, plain C) and of the kestreltrack
 * element in a GstHarness: assignment against brute force, stable ids
 * through motion, crossing and occlusion, min-hits and max-age, labels,
 * hostile boxes, stale frames, property changes mid-stream, flushes and a
 * stress run. */
#include <math.h>
#include <stdio.h>

#include "kestrel_check.h"
#include "kestreltracker.h"

/* --- the algorithm --------------------------------------------------------- */

static kestrel_tracker *
new_tracker (float iou, int max_age, int min_hits)
{
  kestrel_tracker_params p = { iou, max_age, min_hits };
  kestrel_tracker *t = kestrel_tracker_new (&p);

  fail_unless (t != NULL);
  return t;
}

static kestrel_track_box
box (float x, float y, float w, float h)
{
  kestrel_track_box b = { x, y, w, h, 0 };
  return b;
}

/* Minimum cost over all injective row -> column maps (rows <= cols <= 6),
 * counting only allowed pairs and preferring more matches. */
static void
brute_force (const float *cost, int n, int m, float forbidden, int row,
    guint used, int matches, float sum, int *best_matches, float *best_sum)
{
  if (row == n) {
    if (matches > *best_matches || (matches == *best_matches
            && sum < *best_sum - 1e-5f)) {
      *best_matches = matches;
      *best_sum = sum;
    }
    return;
  }
  /* Row left unmatched. */
  brute_force (cost, n, m, forbidden, row + 1, used, matches, sum,
      best_matches, best_sum);
  for (int j = 0; j < m; j++) {
    float c = cost[row * m + j];
    if ((used & (1u << j)) || c >= forbidden)
      continue;
    brute_force (cost, n, m, forbidden, row + 1, used | (1u << j),
        matches + 1, sum + c, best_matches, best_sum);
  }
}

GST_START_TEST (test_assign_matches_brute_force)
{
  GRand *rand = g_rand_new_with_seed (42);

  for (int trial = 0; trial < 2000; trial++) {
    int n = g_rand_int_range (rand, 1, 7), m = g_rand_int_range (rand, 1, 7);
    float cost[36];
    int match[6], matches, best_matches = -1;
    float sum = 0, best_sum = INFINITY;
    guint cols = 0;

    for (int i = 0; i < n * m; i++)
      cost[i] = g_rand_double (rand) < 0.3 ? 5.0f
          : (float) g_rand_double_range (rand, 0.0, 1.0);
    matches = kestrel_track_assign (cost, n, m, 2.0f, match);
    brute_force (cost, n, m, 2.0f, 0, 0, 0, 0, &best_matches, &best_sum);
    for (int i = 0; i < n; i++) {
      if (match[i] < 0)
        continue;
      fail_unless (match[i] < m);
      fail_if (cols & (1u << match[i]), "trial %d: column %d used twice",
          trial, match[i]);
      cols |= 1u << match[i];
      fail_unless (cost[i * m + match[i]] < 2.0f,
          "trial %d: forbidden pair %d-%d chosen", trial, i, match[i]);
      sum += cost[i * m + match[i]];
    }
    fail_unless_equals_int (matches, best_matches);
    fail_unless (fabsf (sum - best_sum) < 1e-4f,
        "trial %d (%dx%d): cost %f, best %f", trial, n, m, sum, best_sum);
  }
  g_rand_free (rand);
}

GST_END_TEST;

GST_START_TEST (test_assign_edges)
{
  float all_forbidden[4] = { 9, 9, 9, 9 };
  int match[2];

  fail_unless_equals_int (kestrel_track_assign (NULL, 0, 0, 1.0f, match), 0);
  fail_unless_equals_int (kestrel_track_assign (all_forbidden, 2, 2, 1.0f,
          match), 0);
  fail_unless (match[0] == -1 && match[1] == -1);
  fail_unless_equals_int (kestrel_track_assign (all_forbidden, 100000, 2,
          1.0f, match), -1);
}

GST_END_TEST;

GST_START_TEST (test_iou)
{
  kestrel_track_box a = box (0, 0, 10, 10), b = box (5, 0, 10, 10);
  kestrel_track_box far = box (100, 100, 5, 5), empty = box (0, 0, 0, 10);

  fail_unless (fabsf (kestrel_track_iou (&a, &a) - 1.0f) < 1e-6f);
  fail_unless (fabsf (kestrel_track_iou (&a, &b) - 50.0f / 150.0f) < 1e-6f);
  fail_unless (kestrel_track_iou (&a, &far) == 0.0f);
  fail_unless (kestrel_track_iou (&a, &empty) == 0.0f);
}

GST_END_TEST;

GST_START_TEST (test_params)
{
  kestrel_tracker_params p;
  kestrel_tracker *t;

  kestrel_tracker_params_default (&p);
  fail_unless (p.iou_threshold > 0 && p.max_age > 0 && p.min_hits > 0);
  t = kestrel_tracker_new (&p);
  p.iou_threshold = 0.0f;
  fail_unless (kestrel_tracker_new (&p) == NULL);
  fail_unless_equals_int (kestrel_tracker_set_params (t, &p), -1);
  p.iou_threshold = 0.5f;
  p.min_hits = 0;
  fail_unless_equals_int (kestrel_tracker_set_params (t, &p), -1);
  p.min_hits = 1;
  p.max_age = -1;
  fail_unless (kestrel_tracker_new (&p) == NULL);
  kestrel_tracker_free (t);
  kestrel_tracker_free (NULL);
}

GST_END_TEST;

/* Two objects moving steadily keep their ids; ids appear after min_hits
 * frames and are 1 and 2 in input order. */
GST_START_TEST (test_ids_stable_min_hits)
{
  kestrel_tracker *t = new_tracker (0.3f, 5, 3);
  int ids[2];

  for (int f = 0; f < 60; f++) {
    kestrel_track_box b[2] = { box (10 + 3 * f, 20, 50, 60),
      box (400 - 2 * f, 200 + f, 40, 40)
    };
    int n = kestrel_tracker_update (t, b, 2, ids);
    if (f < 2) {
      fail_unless_equals_int (n, 0);
      fail_unless (ids[0] == 0 && ids[1] == 0, "frame %d: ids %d %d", f,
          ids[0], ids[1]);
    } else {
      fail_unless_equals_int (n, 2);
      fail_unless (ids[0] == 1 && ids[1] == 2, "frame %d: ids %d %d", f,
          ids[0], ids[1]);
    }
  }
  kestrel_tracker_free (t);
}

GST_END_TEST;

/* Objects crossing each other: the velocity, not only the overlap, says
 * which is which after the crossing. */
GST_START_TEST (test_crossing)
{
  kestrel_tracker *t = new_tracker (0.2f, 5, 1);
  int ids[2], first[2] = { 0, 0 };

  for (int f = 0; f < 40; f++) {
    kestrel_track_box b[2] = { box (100 + 8 * f, 100, 60, 60),
      box (420 - 8 * f, 110, 60, 60)
    };
    kestrel_tracker_update (t, b, 2, ids);
    if (f == 0) {
      first[0] = ids[0];
      first[1] = ids[1];
    }
    fail_unless (ids[0] == first[0] && ids[1] == first[1],
        "frame %d: ids %d %d, started as %d %d", f, ids[0], ids[1], first[0],
        first[1]);
  }
  kestrel_tracker_free (t);
}

GST_END_TEST;

/* A missed detection for fewer than max_age frames keeps the id; a longer
 * absence retires it and the object comes back with a new one. */
GST_START_TEST (test_occlusion_and_max_age)
{
  kestrel_tracker *t = new_tracker (0.3f, 4, 2);
  kestrel_track_info info[4];
  int id = 0, f = 0;

  for (; f < 10; f++) {
    kestrel_track_box b = box (100 + 2 * f, 50, 80, 80);
    kestrel_tracker_update (t, &b, 1, &id);
  }
  fail_unless_equals_int (id, 1);
  /* Four frames unseen: still alive, coasting along its velocity. */
  for (int k = 0; k < 4; k++, f++)
    kestrel_tracker_update (t, NULL, 0, NULL);
  fail_unless_equals_int (kestrel_tracker_get_tracks (t, info, 4), 1);
  fail_unless_equals_int (info[0].age, 4);
  fail_unless (fabsf (info[0].box.x - (100 + 2 * (f - 1))) < 6.0f,
      "coasted to x %f, object at %d", info[0].box.x, 100 + 2 * (f - 1));
  {
    kestrel_track_box b = box (100 + 2 * f, 50, 80, 80);
    kestrel_tracker_update (t, &b, 1, &id);
    f++;
  }
  fail_unless_equals_int (id, 1);

  /* Five frames unseen (> max_age): gone; back as id 2 after min_hits. */
  for (int k = 0; k < 5; k++, f++)
    kestrel_tracker_update (t, NULL, 0, NULL);
  fail_unless_equals_int (kestrel_tracker_get_tracks (t, info, 4), 0);
  for (int k = 0; k < 2; k++, f++) {
    kestrel_track_box b = box (100 + 2 * f, 50, 80, 80);
    kestrel_tracker_update (t, &b, 1, &id);
  }
  fail_unless_equals_int (id, 2);
  kestrel_tracker_free (t);
}

GST_END_TEST;

/* One-frame false positives never get an id, and leave no gap in ids. */
GST_START_TEST (test_false_positives_no_gaps)
{
  kestrel_tracker *t = new_tracker (0.3f, 10, 3);
  int ids[2];

  for (int f = 0; f < 30; f++) {
    kestrel_track_box b[2] = { box (10, 10, 50, 50),
      box (300 + 97 * (f % 7), 300 - 41 * (f % 5), 30, 30)
    };
    kestrel_tracker_update (t, b, 2, ids);
    fail_unless_equals_int (ids[1], 0);
  }
  /* A second steady object is id 2, not 2 + the flickers. */
  for (int f = 0; f < 3; f++) {
    kestrel_track_box b[2] = { box (10, 10, 50, 50), box (600, 400, 40, 40) };
    kestrel_tracker_update (t, b, 2, ids);
  }
  fail_unless (ids[0] == 1 && ids[1] == 2, "ids %d %d", ids[0], ids[1]);
  kestrel_tracker_free (t);
}

GST_END_TEST;

GST_START_TEST (test_labels_do_not_mix)
{
  kestrel_tracker *t = new_tracker (0.3f, 10, 1);
  kestrel_track_box b = box (10, 10, 50, 50);
  int id1, id2;

  kestrel_tracker_update (t, &b, 1, &id1);
  b.label_id = 1;
  kestrel_tracker_update (t, &b, 1, &id2);
  fail_unless (id1 > 0 && id2 > 0 && id1 != id2);
  kestrel_tracker_free (t);
}

GST_END_TEST;

GST_START_TEST (test_hostile_boxes)
{
  kestrel_tracker *t = new_tracker (0.3f, 3, 1);
  kestrel_track_box b[6] = { box (NAN, 0, 10, 10), box (0, 0, INFINITY, 10),
    box (0, 0, 0, 10), box (0, 0, -5, 10), box (1e30f, 1e30f, 10, 10),
    box (5, 5, 10, 10)
  };
  int ids[6];
  static kestrel_track_box many[KESTREL_TRACKER_MAX_DETECTIONS + 50];
  static int many_ids[KESTREL_TRACKER_MAX_DETECTIONS + 50];

  for (int f = 0; f < 5; f++) {
    kestrel_tracker_update (t, b, 6, ids);
    for (int i = 0; i < 5; i++)
      fail_unless_equals_int (ids[i], 0);
    fail_unless (ids[5] > 0);
  }
  /* More detections than the limit: the first ones are tracked, the rest
   * get no id, nothing breaks; the tracker never holds more than its cap. */
  for (int i = 0; i < (int) G_N_ELEMENTS (many); i++)
    many[i] = box ((i % 20) * 60.0f, (i / 20) * 60.0f, 50, 50);
  for (int f = 0; f < 5; f++)
    kestrel_tracker_update (t, many, G_N_ELEMENTS (many), many_ids);
  fail_unless (many_ids[0] > 0);
  fail_unless_equals_int (many_ids[G_N_ELEMENTS (many) - 1], 0);
  kestrel_tracker_update (t, b, -3, ids);
  kestrel_tracker_reset (t);
  fail_unless_equals_int (kestrel_tracker_get_tracks (t, NULL, 0), 0);
  kestrel_tracker_update (t, &b[5], 1, ids);
  fail_unless_equals_int (ids[0], 1);
  kestrel_tracker_free (t);
}

GST_END_TEST;

/* --- the element --------------------------------------------------------- */

static GstHarness *
track_harness (void)
{
  GstHarness *h = gst_harness_new ("kestreltrack");

  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=I420,width=640,height=480,framerate=30/1");
  return h;
}

/* A frame with detection ROIs as kestreldetect writes them. */
static GstBuffer *
frame_with_boxes (const gint (*boxes)[4], guint n, gboolean stale)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 640 * 480 * 3 / 2, NULL);

  for (guint i = 0; i < n; i++) {
    GstVideoRegionOfInterestMeta *m =
        gst_buffer_add_video_region_of_interest_meta (buf, "face",
        boxes[i][0], boxes[i][1], boxes[i][2], boxes[i][3]);
    gst_video_region_of_interest_meta_add_param (m,
        gst_structure_new ("detection", "x_min", G_TYPE_DOUBLE,
            boxes[i][0] / 640.0, "y_min", G_TYPE_DOUBLE, boxes[i][1] / 480.0,
            "x_max", G_TYPE_DOUBLE, (boxes[i][0] + boxes[i][2]) / 640.0,
            "y_max", G_TYPE_DOUBLE, (boxes[i][1] + boxes[i][3]) / 480.0,
            "confidence", G_TYPE_DOUBLE, 0.9, "label_id", G_TYPE_INT, 0,
            "label", G_TYPE_STRING, "face", "stale", G_TYPE_BOOLEAN, stale,
            NULL));
  }
  return buf;
}

static gint
roi_id (GstBuffer * buf, guint index)
{
  GstVideoRegionOfInterestMeta *m = kc_nth_roi (buf, "detection", index);
  GstStructure *s;
  gint id = 0;

  fail_unless (m != NULL);
  s = gst_video_region_of_interest_meta_get_param (m, "object_id");
  if (s)
    fail_unless (gst_structure_get_int (s, "id", &id));
  return id;
}

static GstBuffer *
push_pull (GstHarness * h, GstBuffer * in)
{
  GstBuffer *out;

  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  return out;
}

GST_START_TEST (test_element_ids)
{
  GstHarness *h = track_harness ();

  for (gint f = 0; f < 20; f++) {
    gint b[2][4] = { {10 + 4 * f, 40, 80, 80}, {400, 300 - 2 * f, 60, 60} };
    GstBuffer *out = push_pull (h, frame_with_boxes (b, 2, FALSE));
    fail_unless_equals_int (kc_count_rois (out, "detection"), 2);
    if (f < 2) {
      fail_unless_equals_int (kc_count_rois (out, "object_id"), 0);
    } else {
      fail_unless_equals_int (roi_id (out, 0), 1);
      fail_unless_equals_int (roi_id (out, 1), 2);
    }
    gst_buffer_unref (out);
  }
  {
    GstStructure *stats = NULL;
    guint64 frames = 0, identified = 0;
    g_object_get (h->element, "stats", &stats, NULL);
    fail_unless (gst_structure_get_uint64 (stats, "frames", &frames));
    fail_unless (gst_structure_get_uint64 (stats, "identified", &identified));
    fail_unless_equals_int ((gint) frames, 20);
    fail_unless_equals_int ((gint) identified, 36);
    gst_structure_free (stats);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_element_caps_any_format)
{
  const gchar *caps[] = {
    "video/x-raw,format=NV12,width=1,height=1",
    "video/x-raw,format=RGB,width=4097,height=3",
    "video/x-raw,format=GRAY8,width=7,height=5",
  };

  for (guint i = 0; i < G_N_ELEMENTS (caps); i++) {
    GstHarness *h = gst_harness_new ("kestreltrack");
    GstBuffer *out;
    gst_harness_set_src_caps_str (h, caps[i]);
    out = push_pull (h, gst_buffer_new_allocate (NULL, 64, NULL));
    fail_unless_equals_int (kc_count_rois (out, NULL), 0);
    gst_buffer_unref (out);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* Stale frames (the detector repeating its last result) keep the ids and
 * do not age or move the tracks. */
GST_START_TEST (test_element_stale_frames)
{
  GstHarness *h = track_harness ();
  gint b[1][4] = { {100, 100, 90, 90} };
  GstBuffer *out;

  g_object_set (h->element, "min-hits", 1, "max-age", 2, NULL);
  out = push_pull (h, frame_with_boxes (b, 1, FALSE));
  fail_unless_equals_int (roi_id (out, 0), 1);
  gst_buffer_unref (out);
  /* Many more stale frames than max-age: a real update would not be needed
   * to keep the track, and the id stays. */
  for (gint f = 0; f < 10; f++) {
    out = push_pull (h, frame_with_boxes (b, 1, TRUE));
    fail_unless_equals_int (roi_id (out, 0), 1);
    gst_buffer_unref (out);
  }
  b[0][0] += 5;
  out = push_pull (h, frame_with_boxes (b, 1, FALSE));
  fail_unless_equals_int (roi_id (out, 0), 1);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Properties: defaults, ranges, and changes while playing take effect at the
 * next frame. */
GST_START_TEST (test_element_properties)
{
  GstHarness *h = track_harness ();
  gdouble iou;
  gint max_age, min_hits;
  gint b[1][4] = { {100, 100, 90, 90} };
  gint c[1][4] = { {300, 300, 90, 90} };
  GstBuffer *out;

  g_object_get (h->element, "iou-threshold", &iou, "max-age", &max_age,
      "min-hits", &min_hits, NULL);
  fail_unless (fabs (iou - 0.3) < 1e-6);
  fail_unless_equals_int (max_age, 15);
  fail_unless_equals_int (min_hits, 3);

  out = push_pull (h, frame_with_boxes (b, 1, FALSE));
  fail_unless_equals_int (roi_id (out, 0), 0);
  gst_buffer_unref (out);
  g_object_set (h->element, "min-hits", 1, NULL);
  out = push_pull (h, frame_with_boxes (c, 1, FALSE));
  fail_unless_equals_int (roi_id (out, 0), 1);
  gst_buffer_unref (out);

  /* A strict IoU threshold breaks the track of a box that jumped. */
  g_object_set (h->element, "iou-threshold", 0.95, NULL);
  c[0][0] += 20;
  out = push_pull (h, frame_with_boxes (c, 1, FALSE));
  fail_unless_equals_int (roi_id (out, 0), 2);
  gst_buffer_unref (out);

  /* max-age=0: one missed frame retires the id. */
  g_object_set (h->element, "max-age", 0, "iou-threshold", 0.3, NULL);
  out = push_pull (h, frame_with_boxes (c, 0, FALSE));
  gst_buffer_unref (out);
  out = push_pull (h, frame_with_boxes (c, 1, FALSE));
  fail_unless_equals_int (roi_id (out, 0), 3);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A flush (seek) starts the tracker afresh; a second tracker replaces the
 * first one's object_id rather than adding another. */
GST_START_TEST (test_element_flush_and_retrack)
{
  GstHarness *h = track_harness ();
  gint b[1][4] = { {100, 100, 90, 90} };
  GstBuffer *out;

  g_object_set (h->element, "min-hits", 1, NULL);
  out = push_pull (h, frame_with_boxes (b, 1, FALSE));
  fail_unless_equals_int (roi_id (out, 0), 1);
  /* Through the tracker again (a second kestreltrack): one object_id. */
  gst_harness_push_event (h, gst_event_new_flush_start ());
  gst_harness_push_event (h, gst_event_new_flush_stop (TRUE));
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=I420,width=640,height=480,framerate=30/1");
  {
    GstBuffer *again = push_pull (h, gst_buffer_ref (out));
    GstVideoRegionOfInterestMeta *m = kc_nth_roi (again, "detection", 0);
    guint n = 0;
    for (GList * l = m->params; l; l = l->next)
      n += gst_structure_has_name (l->data, "object_id");
    fail_unless_equals_int (n, 1);
    /* After the flush the tracker began again at id 1. */
    fail_unless_equals_int (roi_id (again, 0), 1);
    gst_buffer_unref (again);
  }
  gst_buffer_unref (out);
  b[0][0] = 400;
  out = push_pull (h, frame_with_boxes (b, 1, FALSE));
  fail_unless_equals_int (roi_id (out, 0), 2);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Many frames of random boxes, mixed with stale frames, empty frames and a
 * property change: no crash, ids stay positive and unique per frame. */
GST_START_TEST (test_element_stress)
{
  GstHarness *h = track_harness ();
  GRand *rand = g_rand_new_with_seed (7);

  for (gint f = 0; f < 2000; f++) {
    gint n = g_rand_int_range (rand, 0, 12), b[12][4];
    GstBuffer *out;
    for (gint i = 0; i < n; i++) {
      b[i][0] = g_rand_int_range (rand, -50, 640);
      b[i][1] = g_rand_int_range (rand, -50, 480);
      b[i][2] = g_rand_int_range (rand, 1, 200);
      b[i][3] = g_rand_int_range (rand, 1, 200);
      b[i][0] = MAX (b[i][0], 0);
      b[i][1] = MAX (b[i][1], 0);
    }
    if (f == 1000)
      g_object_set (h->element, "min-hits", 1, "max-age", 100, NULL);
    out = push_pull (h, frame_with_boxes (b, n, f % 5 == 3));
    {
      GHashTable *seen = g_hash_table_new (NULL, NULL);
      for (gint i = 0; i < n; i++) {
        gint id = roi_id (out, i);
        fail_unless (id >= 0);
        if (id > 0) {
          fail_if (g_hash_table_contains (seen, GINT_TO_POINTER (id)),
              "frame %d: id %d twice", f, id);
          g_hash_table_add (seen, GINT_TO_POINTER (id));
        }
      }
      g_hash_table_unref (seen);
    }
    gst_buffer_unref (out);
  }
  g_rand_free (rand);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
track_suite (void)
{
  Suite *s = suite_create ("kestreltrack");
  TCase *tc = tcase_create ("tracker");
  TCase *te = tcase_create ("element");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_assign_matches_brute_force);
  tcase_add_test (tc, test_assign_edges);
  tcase_add_test (tc, test_iou);
  tcase_add_test (tc, test_params);
  tcase_add_test (tc, test_ids_stable_min_hits);
  tcase_add_test (tc, test_crossing);
  tcase_add_test (tc, test_occlusion_and_max_age);
  tcase_add_test (tc, test_false_positives_no_gaps);
  tcase_add_test (tc, test_labels_do_not_mix);
  tcase_add_test (tc, test_hostile_boxes);

  suite_add_tcase (s, te);
  tcase_set_timeout (te, 120);
  tcase_add_test (te, test_element_ids);
  tcase_add_test (te, test_element_caps_any_format);
  tcase_add_test (te, test_element_stale_frames);
  tcase_add_test (te, test_element_properties);
  tcase_add_test (te, test_element_flush_and_retrack);
  tcase_add_test (te, test_element_stress);
  return s;
}

GST_CHECK_MAIN (track);
