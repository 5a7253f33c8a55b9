/* GstHarness tests of kestreldetect (and of the raw-frame sampler it uses):
 * formats, properties, model swaps, bad models, odd frame sizes, real
 * photos, live sources and a stress run. Models: the FP32 BlazeFace TFLite
 * files in $KESTREL_CACHE/models. */
#include <math.h>
#include <stdio.h>
#include <kestrel/decode.h>

#include "kestrel_check.h"
#include "kestrelframe.h"

static const gchar *formats[] = {
  "I420", "NV12", "YUY2", "RGB", "BGR", "RGBx", "BGRx"
};

static gchar *full_model, *short_model, *cls_model;

static void
setup_models (void)
{
  full_model = kc_cache_path ("models/face_detection_full_range.tflite");
  short_model = kc_cache_path ("models/face_detection_short_range.tflite");
  cls_model = kc_cache_path ("models/ch_ppocr_mobile_v2.0_cls_infer.onnx");
}

static void
teardown_models (void)
{
  g_free (full_model);
  g_free (short_model);
  g_free (cls_model);
}

/* The harness starts the element at once: the model must be set first.
 * The harness's source says it is live, so mode=auto would go async: the
 * tests ask for sync (deterministic) unless they test async. */
static GstHarness *
model_harness (const gchar * factory, const gchar * model)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  fail_unless (e != NULL, "no %s element (GST_PLUGIN_PATH?)", factory);
  g_object_set (e, "model", model, "mode", 1 /* sync */ , NULL);
  return gst_harness_new_with_element (e, "sink", "src");
}

static GstHarness *
detect_harness (const gchar * model, const GstVideoInfo * info)
{
  GstHarness *h = model_harness ("kestreldetect", model);
  gchar *caps = kc_caps_string (info);

  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  return h;
}

/* Faces marked by hand in tests/data/faces_marked.json (x, y, w, h). */
typedef struct
{
  const gchar *image;
  gint faces[5][4];
  gint num_faces;
} MarkedPhoto;

static const MarkedPhoto marked[] = {
  {"sample1.jpg", {{415, 370, 190, 228}, {835, 425, 185, 230},
          {1490, 215, 175, 225}}, 3},
  {"sample4.jpg", {{290, 225, 135, 200}, {670, 80, 175, 215},
          {995, 195, 175, 220}, {1285, 160, 140, 245}}, 4},
};

static gdouble
box_iou (const gint a[4], const gdouble b[4])
{
  gdouble x0 = MAX (a[0], b[0]), y0 = MAX (a[1], b[1]);
  gdouble x1 = MIN (a[0] + a[2], b[0] + b[2]);
  gdouble y1 = MIN (a[1] + a[3], b[1] + b[3]);
  gdouble inter = (x1 > x0 && y1 > y0) ? (x1 - x0) * (y1 - y0) : 0;
  return inter / ((gdouble) a[2] * a[3] + b[2] * b[3] - inter);
}

/* Every marked face has a detection overlapping it (IoU >= 0.3: marked
 * boxes run hairline to chin, BlazeFace's are squarer); scale maps photo
 * pixels to frame pixels. Returns the number of detections. */
static guint
check_marked_faces (GstBuffer * out, const MarkedPhoto * photo,
    gdouble scale, const gchar * what)
{
  guint n = kc_count_rois (out, "detection");

  for (gint f = 0; f < photo->num_faces; f++) {
    gdouble best = 0;
    for (guint i = 0; i < n; i++) {
      GstVideoRegionOfInterestMeta *m = kc_nth_roi (out, "detection", i);
      gdouble b[4] = { m->x / scale, m->y / scale, m->w / scale,
        m->h / scale
      };
      best = MAX (best, box_iou (photo->faces[f], b));
    }
    fail_unless (best >= 0.3, "%s %s: marked face %d (%d,%d %dx%d) found "
        "with IoU %.2f only (%u detections)", what, photo->image, f,
        photo->faces[f][0], photo->faces[f][1], photo->faces[f][2],
        photo->faces[f][3], best, n);
  }
  return n;
}

/* --- the raw-frame sampler ----------------------------------------------- */

static kestrel_sidecar
load_sidecar (const gchar * name)
{
  kestrel_sidecar sc;
  kestrel_error err;
  gchar *rel = g_strdup_printf ("assets/models/%s", name);
  gchar *path = kc_source_path (rel);

  fail_unless (kestrel_sidecar_load (path, &sc, &err) == KESTREL_OK, "%s",
      err.message);
  g_free (path);
  g_free (rel);
  return sc;
}

static kestrel_tensor
make_tensor (const kestrel_sidecar * sc, gint w, gint h)
{
  kestrel_tensor t = {.dtype = KESTREL_DTYPE_F32,.ndim = 4 };
  gint64 nchw[4] = { 1, 3, h, w }, nhwc[4] = { 1, h, w, 3 };

  memcpy (t.dims, sc->layout == KESTREL_LAYOUT_NHWC ? nhwc : nchw,
      sizeof (nchw));
  t.data = g_malloc0 (sizeof (gfloat) * 3 * w * h);
  return t;
}

/* An RGB frame through kestrel_frame_preprocess gives exactly the tensor
 * and transform kestrel_preprocess gives, for every resize mode, shrinking
 * and enlarging, whole frame and crops. */
GST_START_TEST (test_frame_rgb_matches_engine)
{
  const gchar *sidecars[] = { "face_detection_full_range.sidecar",
    "ch_ppocr_mobile_v2.0_cls_infer.sidecar"
  };
  const gint sizes[][2] = { {1920, 1280}, {97, 61}, {1, 1}, {300, 20} };
  const KestrelRect crops[] = { {0, 0, 0, 0}, {10, 5, 40, 33}, {0, 0, 1, 1} };
  gchar *photo = kc_cache_path ("photos/sample1.jpg");

  for (guint s = 0; s < G_N_ELEMENTS (sidecars); s++) {
    kestrel_sidecar sc = load_sidecar (sidecars[s]);
    for (guint z = 0; z < G_N_ELEMENTS (sizes); z++) {
      GstVideoInfo info;
      GstBuffer *buf = kc_load_image (photo, "RGB", sizes[z][0], sizes[z][1],
          &info);
      GstVideoFrame vf;
      KestrelFrame frame;
      fail_unless (gst_video_frame_map (&vf, &info, buf, GST_MAP_READ));
      fail_unless (kestrel_frame_init_from_video_frame (&frame, &vf));
      for (guint c = 0; c < G_N_ELEMENTS (crops); c++) {
        KestrelRect crop = crops[c];
        kestrel_tensor a = make_tensor (&sc, sc.width, sc.height);
        kestrel_tensor b = make_tensor (&sc, sc.width, sc.height);
        kestrel_transform ta, tb;
        kestrel_error err;
        const guint8 *rgb = GST_VIDEO_FRAME_PLANE_DATA (&vf, 0);
        gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (&vf, 0);
        if (crop.width == 0) {
          crop.width = info.width;
          crop.height = info.height;
        }
        if (!kestrel_rect_clip (&crop, info.width, info.height))
          continue;
        fail_unless_equals_int (kestrel_frame_preprocess (&sc, &frame, &crop,
                &a, &ta, &err), KESTREL_OK);
        fail_unless_equals_int (kestrel_preprocess (&sc,
                rgb + (gsize) crop.y * stride + crop.x * 3, crop.width,
                crop.height, stride, &b, &tb, &err), KESTREL_OK);
        fail_unless (memcmp (&ta, &tb, sizeof (ta)) == 0,
            "%s %dx%d crop %d: transforms differ", sidecars[s], sizes[z][0],
            sizes[z][1], c);
        fail_unless (memcmp (a.data, b.data, kestrel_tensor_bytes (&a)) == 0,
            "%s %dx%d crop %d,%d %dx%d: tensors differ", sidecars[s],
            sizes[z][0], sizes[z][1], crop.x, crop.y, crop.width,
            crop.height);
        g_free (a.data);
        g_free (b.data);
      }
      gst_video_frame_unmap (&vf);
      gst_buffer_unref (buf);
    }
    kestrel_sidecar_free (&sc);
  }
  g_free (photo);
}

GST_END_TEST;

static kestrel_tensor
frame_tensor (const kestrel_sidecar * sc, const gchar * photo,
    const gchar * format, gint width, gint height)
{
  GstVideoInfo info;
  GstBuffer *buf = kc_load_image (photo, format, width, height, &info);
  kestrel_tensor t = make_tensor (sc, sc->width, sc->height);
  kestrel_transform tf;
  kestrel_error err;
  GstVideoFrame vf;
  KestrelFrame frame;

  fail_unless (gst_video_frame_map (&vf, &info, buf, GST_MAP_READ));
  fail_unless (kestrel_frame_init_from_video_frame (&frame, &vf));
  fail_unless_equals_int (kestrel_frame_preprocess (sc, &frame, NULL, &t, &tf,
          &err), KESTREL_OK);
  gst_video_frame_unmap (&vf);
  gst_buffer_unref (buf);
  return t;
}

/* Every format of the same photo (converted by videoconvert) gives the
 * tensor of the RGB frame: exactly for the other RGB layouts, closely for
 * YUV (chroma subsampling and rounding differ). This checks the colour
 * matrix and the chroma addressing; odd sizes exercise the chroma edges. */
GST_START_TEST (test_frame_formats_agree)
{
  const gint sizes[][2] = { {640, 427}, {333, 221}, {7, 5} };
  gchar *photo = kc_cache_path ("photos/sample3.jpg");
  kestrel_sidecar sc = load_sidecar ("face_detection_full_range.sidecar");

  for (guint z = 0; z < G_N_ELEMENTS (sizes); z++) {
    kestrel_tensor ref = frame_tensor (&sc, photo, "RGB", sizes[z][0],
        sizes[z][1]);
    gsize n = kestrel_tensor_numel (&ref);
    for (guint f = 0; f < G_N_ELEMENTS (formats); f++) {
      kestrel_tensor t = frame_tensor (&sc, photo, formats[f], sizes[z][0],
          sizes[z][1]);
      const gfloat *a = ref.data, *b = t.data;
      gdouble sum = 0, worst = 0;
      for (gsize i = 0; i < n; i++) {
        gdouble d = fabs ((gdouble) a[i] - b[i]);
        sum += d;
        worst = MAX (worst, d);
      }
      GST_INFO ("%s %dx%d: mean %g worst %g", formats[f], sizes[z][0],
          sizes[z][1], sum / n, worst);
      if (formats[f][0] == 'R' || formats[f][0] == 'B')
        fail_unless (worst == 0, "%s %dx%d differs from RGB by %g",
            formats[f], sizes[z][0], sizes[z][1], worst);
      else
        /* A 7x5 frame keeps 4x3 chroma samples: colour edges smear. */
        fail_unless (sum / n < (sizes[z][0] < 16 ? 0.1 : 0.03),
            "%s %dx%d: mean difference %g from RGB "
            "(tensor units, 2/255 per level)", formats[f], sizes[z][0],
            sizes[z][1], sum / n);
      g_free (t.data);
    }
    g_free (ref.data);
  }
  kestrel_sidecar_free (&sc);
  g_free (photo);
}

GST_END_TEST;

/* --- the element --------------------------------------------------------- */

/* Real photos in every format: the faces marked by hand are found, boxes
 * lie in the frame, the detection params follow the DL Streamer layout. */
GST_START_TEST (test_detect_faces_every_format)
{
  for (guint p = 0; p < G_N_ELEMENTS (marked); p++) {
    gchar *rel = g_strdup_printf ("photos/%s", marked[p].image);
    gchar *photo = kc_cache_path (rel);
    for (guint f = 0; f < G_N_ELEMENTS (formats); f++) {
      GstVideoInfo info;
      /* Half size keeps the test quick; odd width for the YUV paths. */
      GstBuffer *in = kc_load_image (photo, formats[f], 961, 641, &info);
      GstHarness *h = detect_harness (full_model, &info);
      GstBuffer *out;
      GstVideoRegionOfInterestMeta *m;
      GstStructure *s;
      gdouble x_min, x_max, conf;
      gint label_id;
      const GValue *kp;

      out = gst_harness_push_and_pull (h, in);
      fail_unless (out != NULL);
      check_marked_faces (out, &marked[p], 961.0 / 1920.0, formats[f]);
      m = kc_nth_roi (out, "detection", 0);
      fail_unless_equals_string (g_quark_to_string (m->roi_type), "face");
      fail_unless (m->x + m->w <= (guint) info.width
          && m->y + m->h <= (guint) info.height);
      s = gst_video_region_of_interest_meta_get_param (m, "detection");
      fail_unless (gst_structure_get_double (s, "x_min", &x_min));
      fail_unless (gst_structure_get_double (s, "x_max", &x_max));
      fail_unless (gst_structure_get_double (s, "confidence", &conf));
      fail_unless (gst_structure_get_int (s, "label_id", &label_id));
      fail_unless_equals_string (gst_structure_get_string (s, "label"),
          "face");
      fail_unless (0 <= x_min && x_min < x_max && x_max <= 1);
      fail_unless (fabs (x_min * info.width - m->x) <= 1.0);
      fail_unless (conf >= 0.6 && conf <= 1.0, "confidence %g", conf);
      kp = gst_structure_get_value (s, "keypoints");
      fail_unless (kp && gst_value_array_get_size (kp) == 12);
      gst_buffer_unref (out);
      gst_harness_teardown (h);
    }
    g_free (photo);
    g_free (rel);
  }
}

GST_END_TEST;

/* The caps of every format pass through unchanged; the element refuses
 * formats it cannot read. */
GST_START_TEST (test_detect_caps)
{
  for (guint f = 0; f < G_N_ELEMENTS (formats); f++) {
    GstHarness *h = model_harness ("kestreldetect", short_model);
    gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=64,height=48,"
        "framerate=30/1", formats[f]);
    GstVideoInfo info;
    GstCaps *out_caps;

    gst_harness_set_src_caps_str (h, caps);
    kc_info_from_string (&info, caps);
    gst_buffer_unref (gst_harness_push_and_pull (h,
            kc_pattern_buffer (info.size, f)));
    out_caps = gst_pad_get_current_caps (h->sinkpad);
    fail_unless (out_caps != NULL);
    {
      GstCaps *in_caps = gst_caps_from_string (caps);
      fail_unless (gst_caps_is_equal (out_caps, in_caps));
      gst_caps_unref (in_caps);
    }
    gst_caps_unref (out_caps);
    gst_harness_teardown (h);
    g_free (caps);
  }
  {
    GstElement *e = gst_element_factory_make ("kestreldetect", NULL);
    GstPad *sink = gst_element_get_static_pad (e, "sink");
    GstCaps *gray = gst_caps_from_string ("video/x-raw,format=GRAY8,"
        "width=64,height=48");
    GstCaps *accepted = gst_pad_query_caps (sink, NULL);
    fail_if (gst_caps_can_intersect (gray, accepted));
    gst_caps_unref (gray);
    gst_caps_unref (accepted);
    gst_object_unref (sink);
    gst_object_unref (e);
  }
}

GST_END_TEST;

static GstBuffer *
photo_frame (const gchar * name, const gchar * format, gint w, gint h,
    GstVideoInfo * info)
{
  gchar *rel = g_strdup_printf ("photos/%s", name);
  gchar *photo = kc_cache_path (rel);
  GstBuffer *buf = kc_load_image (photo, format, w, h, info);

  g_free (photo);
  g_free (rel);
  return buf;
}

static guint
detections_with (const gchar * prop, const GValue * value, GstBuffer * in,
    const GstVideoInfo * info)
{
  GstHarness *h = detect_harness (full_model, info);
  GstBuffer *out;
  guint n;

  if (prop)
    g_object_set_property (G_OBJECT (h->element), prop, value);
  out = gst_harness_push_and_pull (h, gst_buffer_ref (in));
  n = kc_count_rois (out, "detection");
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  return n;
}

/* Each property round-trips and does what it says. */
GST_START_TEST (test_detect_properties)
{
  GstVideoInfo info;
  GstBuffer *in = photo_frame ("sample4.jpg", "I420", 960, 724, &info);
  GValue v = G_VALUE_INIT;
  guint base = detections_with (NULL, NULL, in, &info);
  GstHarness *h;
  GstBuffer *out;
  GstBus *bus;
  GstMessage *msg;
  gchar *s;
  gint i;
  gdouble d;
  guint u;

  fail_unless (base >= 4, "only %u faces", base);

  g_value_init (&v, G_TYPE_DOUBLE);
  g_value_set_double (&v, 0.999);
  fail_unless (detections_with ("threshold", &v, in, &info) < base);
  g_value_unset (&v);

  g_value_init (&v, G_TYPE_INT);
  g_value_set_int (&v, 2);
  fail_unless_equals_int (detections_with ("max-detections", &v, in, &info),
      2);
  g_value_unset (&v);

  g_value_init (&v, G_TYPE_STRING);
  g_value_set_string (&v, "cat,dog");
  fail_unless_equals_int (detections_with ("object-class", &v, in, &info), 0);
  g_value_set_string (&v, "dog, face");
  fail_unless_equals_int (detections_with ("object-class", &v, in, &info),
      base);
  /* The left half holds two of the four faces. */
  g_value_set_string (&v, "0,0,480,724");
  fail_unless_equals_int (detections_with ("roi", &v, in, &info), 2);
  g_value_unset (&v);

  /* nms-iou 0 suppresses every overlap; 1 keeps all: never fewer. */
  g_value_init (&v, G_TYPE_DOUBLE);
  g_value_set_double (&v, 1.0);
  fail_unless (detections_with ("nms-iou", &v, in, &info) >= base);
  g_value_unset (&v);

  g_value_init (&v, G_TYPE_INT);
  g_value_set_int (&v, 2);
  fail_unless_equals_int (detections_with ("threads", &v, in, &info), base);
  g_value_unset (&v);

  /* labels, config, message, roi box placement, read-backs. */
  h = detect_harness (full_model, &info);
  {
    gchar *sidecar = kc_source_path
        ("assets/models/face_detection_full_range.sidecar");
    g_object_set (h->element, "labels", "person", "config", sidecar,
        "message", TRUE, "roi", "480,0,480,724", NULL);
    g_object_get (h->element, "config", &s, NULL);
    fail_unless_equals_string (s, sidecar);
    g_free (s);
    g_free (sidecar);
  }
  bus = kc_attach_bus (h->element);
  out = gst_harness_push_and_pull (h, gst_buffer_ref (in));
  fail_unless (kc_count_rois (out, "detection") >= 1);
  for (u = 0; u < kc_count_rois (out, "detection"); u++) {
    GstVideoRegionOfInterestMeta *m = kc_nth_roi (out, "detection", u);
    fail_unless_equals_string (g_quark_to_string (m->roi_type), "person");
    fail_unless (m->x >= 470, "box at x=%u outside roi", m->x);
  }
  msg = kc_pop_element_message (bus, "kestrel-inference");
  fail_unless (msg != NULL);
  {
    const GstStructure *st = gst_message_get_structure (msg);
    const GValue *objects = gst_structure_get_value (st, "objects");
    guint64 frame;
    gboolean stale;
    const GstStructure *o;
    fail_unless (gst_structure_get_uint64 (st, "frame-number", &frame));
    fail_unless_equals_uint64 (frame, 0);
    fail_unless (gst_structure_get_boolean (st, "stale", &stale));
    fail_if (stale);
    fail_unless (gst_structure_get_double (st, "inference-ms", &d) && d > 0);
    fail_unless (gst_structure_has_field_typed (st, "timestamp",
            G_TYPE_UINT64));
    fail_unless_equals_int (gst_value_array_get_size (objects),
        kc_count_rois (out, "detection"));
    o = gst_value_get_structure (gst_value_array_get_value (objects, 0));
    fail_unless_equals_string (gst_structure_get_string (o, "label"),
        "person");
    fail_unless (gst_structure_get_int (o, "track-id", &i) && i == -1);
    fail_unless (gst_structure_get_int (o, "width", &i) && i > 0);
    fail_unless (gst_structure_has_field_typed (o, "confidence",
            G_TYPE_DOUBLE));
    gst_message_unref (msg);
  }
  gst_buffer_unref (out);
  g_object_get (h->element, "labels", &s, NULL);
  fail_unless_equals_string (s, "person");
  g_free (s);
  g_object_get (h->element, "roi", &s, NULL);
  fail_unless_equals_string (s, "480,0,480,724");
  g_free (s);
  /* A bad roi is refused and the previous one kept. */
  g_object_set (h->element, "roi", "1,2,three", NULL);
  g_object_get (h->element, "roi", &s, NULL);
  fail_unless_equals_string (s, "480,0,480,724");
  g_free (s);
  fail_unless_equals_uint64 (kc_stat_u64 (h->element, "frames"), 1);
  fail_unless_equals_uint64 (kc_stat_u64 (h->element, "inferences"), 1);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  gst_buffer_unref (in);
}

GST_END_TEST;

/* interval=3: frames 1, 2, 4, 5 carry frame 0's / 3's boxes, marked stale
 * in the params and in the message; only 2 inferences run. */
GST_START_TEST (test_detect_interval_stale)
{
  GstVideoInfo info;
  GstBuffer *in = photo_frame ("sample1.jpg", "NV12", 640, 427, &info);
  GstHarness *h = detect_harness (full_model, &info);
  GstBus *bus = kc_attach_bus (h->element);

  g_object_set (h->element, "interval", 3, "message", TRUE, NULL);
  for (guint64 f = 0; f < 6; f++) {
    GstBuffer *out = gst_harness_push_and_pull (h, gst_buffer_copy (in));
    GstMessage *msg = kc_pop_element_message (bus, "kestrel-inference");
    gboolean stale, roi_stale;
    GstStructure *s;

    fail_unless (msg != NULL);
    fail_unless (gst_structure_get_boolean (gst_message_get_structure (msg),
            "stale", &stale));
    fail_unless_equals_int (stale, f % 3 != 0);
    fail_unless (kc_count_rois (out, "detection") >= 2,
        "frame %" G_GUINT64_FORMAT " carries no boxes", f);
    s = gst_video_region_of_interest_meta_get_param (kc_nth_roi (out,
            "detection", 0), "detection");
    fail_unless (gst_structure_get_boolean (s, "stale", &roi_stale));
    fail_unless_equals_int (roi_stale, stale);
    gst_message_unref (msg);
    gst_buffer_unref (out);
  }
  fail_unless_equals_uint64 (kc_stat_u64 (h->element, "inferences"), 2);
  fail_unless_equals_uint64 (kc_stat_u64 (h->element, "frames"), 6);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  gst_buffer_unref (in);
}

GST_END_TEST;

/* Pushes frames until the stats' running model is `want` (or gives up). */
static gboolean
push_until_model (GstHarness * h, GstBuffer * in, const gchar * want)
{
  for (gint i = 0; i < 200; i++) {
    gchar *running;
    gboolean done;
    gst_buffer_unref (gst_harness_push_and_pull (h, gst_buffer_copy (in)));
    running = kc_stat_string (h->element, "model");
    done = !g_strcmp0 (running, want);
    g_free (running);
    if (done)
      return TRUE;
    g_usleep (20000);
  }
  return FALSE;
}

/* Swapping the model while playing: the new one takes over between frames
 * and detects; a model that cannot load leaves the old one running and
 * posts a warning. */
GST_START_TEST (test_detect_model_swap)
{
  GstVideoInfo info;
  GstBuffer *in = photo_frame ("sample1.jpg", "BGRx", 960, 640, &info);
  GstHarness *h = detect_harness (full_model, &info);
  GstBus *bus = kc_attach_bus (h->element);
  GstBuffer *out;
  GstMessage *msg;
  gchar *missing = g_build_filename (g_get_tmp_dir (), "no-such-model.tflite",
      NULL);

  out = gst_harness_push_and_pull (h, gst_buffer_copy (in));
  fail_unless (kc_count_rois (out, "detection") >= 3);
  gst_buffer_unref (out);

  g_object_set (h->element, "model", short_model, NULL);
  fail_unless (push_until_model (h, in, short_model),
      "the short-range model never took over");
  out = gst_harness_push_and_pull (h, gst_buffer_copy (in));
  fail_unless (kc_count_rois (out, "detection") >= 1);
  gst_buffer_unref (out);

  /* Wrong kind (a classifier), then a missing file: warnings, old model
   * still running and detecting. */
  g_object_set (h->element, "model", cls_model, NULL);
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no warning for a classifier given to detect");
  {
    GError *err = NULL;
    gst_message_parse_warning (msg, &err, NULL);
    fail_unless (strstr (err->message, "not a detector") != NULL, "%s",
        err->message);
    g_error_free (err);
  }
  gst_message_unref (msg);
  g_object_set (h->element, "model", missing, NULL);
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no warning for a missing model");
  gst_message_unref (msg);
  out = gst_harness_push_and_pull (h, gst_buffer_copy (in));
  fail_unless (kc_count_rois (out, "detection") >= 1);
  gst_buffer_unref (out);
  {
    gchar *running = kc_stat_string (h->element, "model");
    fail_unless_equals_string (running, short_model);
    g_free (running);
  }

  /* And back to the full-range model. */
  g_object_set (h->element, "model", full_model, NULL);
  fail_unless (push_until_model (h, in, full_model));
  out = gst_harness_push_and_pull (h, gst_buffer_copy (in));
  fail_unless (kc_count_rois (out, "detection") >= 3);
  gst_buffer_unref (out);

  g_free (missing);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  gst_buffer_unref (in);
}

GST_END_TEST;

/* Starting with a bad model fails with an error naming the problem. */
static void
expect_start_error (const gchar * factory, const gchar * model,
    const gchar * config, const gchar * needle)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  GstBus *bus = kc_attach_bus (e);
  GstMessage *msg;
  GError *err = NULL;

  g_object_set (e, "model", model, "config", config, NULL);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error for model %s", model);
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (strstr (err->message, needle) != NULL,
      "error '%s' does not say '%s'", err->message, needle);
  g_error_free (err);
  gst_message_unref (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_START_TEST (test_detect_bad_models)
{
  gchar *dir = g_dir_make_tmp ("kestrel-detect-XXXXXX", NULL);
  gchar *corrupt = g_build_filename (dir, "corrupt.tflite", NULL);
  gchar *truncated = g_build_filename (dir, "face_detection_full_range.tflite",
      NULL);
  gchar *sidecar = kc_source_path
      ("assets/models/face_detection_full_range.sidecar");
  gchar *contents;
  gsize size;

  expect_start_error ("kestreldetect", NULL, NULL, "no model set");
  expect_start_error ("kestreldetect", "/nonexistent/model.tflite", NULL,
      "does not exist");
  expect_start_error ("kestreldetect", cls_model, NULL, "not a detector");
  /* A classifier with the face sidecar: its outputs do not decode. */
  expect_start_error ("kestreldetect", cls_model, sidecar, "cannot load");

  /* Garbage with a sidecar: the loader rejects it. */
  fail_unless (g_file_set_contents (corrupt, "TFL3 this is not a model at "
          "all, just bytes", -1, NULL));
  expect_start_error ("kestreldetect", corrupt, sidecar, "cannot load");
  /* No sidecar anywhere for garbage: the error says how to give one. */
  expect_start_error ("kestreldetect", corrupt, NULL, "config");
  /* The real model cut in half. */
  fail_unless (g_file_get_contents (full_model, &contents, &size, NULL));
  fail_unless (g_file_set_contents (truncated, contents, size / 2, NULL));
  expect_start_error ("kestreldetect", truncated, sidecar, "cannot load");
  /* A sidecar that does not parse. */
  fail_unless (g_file_set_contents (corrupt, "[input]\nwidth = banana\n", -1,
          NULL));
  expect_start_error ("kestreldetect", full_model, corrupt, "config");

  g_free (contents);
  g_unlink (corrupt);
  g_unlink (truncated);
  g_rmdir (dir);
  g_free (corrupt);
  g_free (truncated);
  g_free (sidecar);
  g_free (dir);
}

GST_END_TEST;

/* Odd sizes: 1x1, 4097x3, odd widths and heights in the chroma-subsampled
 * formats, a roi partly or wholly outside the frame. No crash, every buffer
 * comes out. */
GST_START_TEST (test_detect_odd_sizes)
{
  const gint sizes[][2] = { {1, 1}, {4097, 3}, {3, 4097}, {33, 17}, {2, 1},
  {641, 479}
  };
  const gchar *rois[] = { NULL, "0,0,1,1", "4000,2,500,500", "9000,9000,5,5" };

  for (guint f = 0; f < G_N_ELEMENTS (formats); f++)
    for (guint z = 0; z < G_N_ELEMENTS (sizes); z++) {
      GstHarness *h = model_harness ("kestreldetect", short_model);
      gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,"
          "height=%d,framerate=25/1", formats[f], sizes[z][0], sizes[z][1]);
      GstVideoInfo info;

      g_object_set (h->element, "message", TRUE, NULL);
      gst_harness_set_src_caps_str (h, caps);
      kc_info_from_string (&info, caps);
      for (guint r = 0; r < G_N_ELEMENTS (rois); r++) {
        g_object_set (h->element, "roi", rois[r], NULL);
        gst_buffer_unref (gst_harness_push_and_pull (h,
                kc_pattern_buffer (info.size, r)));
      }
      gst_harness_teardown (h);
      g_free (caps);
    }
}

GST_END_TEST;

/* A frame source that is faster than the model: with async inference each
 * push returns quickly (frames are not held back), inferences that found
 * the worker busy are counted as dropped, and frames carry the latest
 * (stale) boxes. */
GST_START_TEST (test_detect_live_harness)
{
  GstVideoInfo info;
  GstBuffer *in = photo_frame ("sample1.jpg", "I420", 640, 427, &info);
  GstHarness *h;
  gint64 worst = 0, start;
  guint with_boxes = 0, n = 40;
  guint64 inferences, dropped;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_I420, 640, 427);
  info.fps_n = 30;
  info.fps_d = 1;
  h = detect_harness (short_model, &info);
  g_object_set (h->element, "mode", 2 /* async */ , "inference-delay", 250,
      NULL);
  start = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++) {
    GstBuffer *buf = gst_buffer_copy (in), *out;
    gint64 t0 = g_get_monotonic_time (), dt;
    GST_BUFFER_PTS (buf) = i * GST_SECOND / 30;
    out = gst_harness_push_and_pull (h, buf);
    dt = g_get_monotonic_time () - t0;
    worst = MAX (worst, dt);
    if (kc_count_rois (out, "detection") > 0)
      with_boxes++;
    gst_buffer_unref (out);
    /* Pace at ~30 fps like a camera. */
    while (g_get_monotonic_time () < start + (gint64) (i + 1) * 33333)
      g_usleep (1000);
  }
  inferences = kc_stat_u64 (h->element, "inferences");
  dropped = kc_stat_u64 (h->element, "dropped");
  GST_INFO ("worst push %.1f ms, %" G_GUINT64_FORMAT " inferences, %"
      G_GUINT64_FORMAT " dropped", worst / 1000.0, inferences, dropped);
  /* Half a frame (16.7 ms) of waiting plus copying; a loaded CI machine
   * gets generous slack, still far below the 250 ms model. */
  fail_unless (worst < 150000, "a frame was held %.1f ms", worst / 1000.0);
  fail_unless (dropped > 0, "no inference was dropped");
  fail_unless (inferences < n / 3, "%" G_GUINT64_FORMAT " inferences",
      inferences);
  fail_unless (with_boxes > n / 2, "only %u of %u frames carried boxes",
      with_boxes, n);
  fail_unless_equals_uint64 (kc_stat_u64 (h->element, "frames"), n);
  gst_harness_teardown (h);
  gst_buffer_unref (in);
}

GST_END_TEST;

static void
count_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer user_data)
{
  g_atomic_int_inc ((gint *) user_data);
}

/* A real live pipeline (videotestsrc is-live, fakesink sync=true) with a
 * model slower than the frame rate: auto mode goes async, all frames reach
 * the sink in about real time, the LATENCY query includes our wait. */
GST_START_TEST (test_detect_live_pipeline)
{
  gchar *desc = g_strdup_printf ("videotestsrc is-live=true num-buffers=45 "
      "! video/x-raw,format=NV12,width=320,height=240,framerate=30/1 "
      "! kestreldetect name=d model=\"%s\" inference-delay=200 "
      "! fakesink name=s sync=true signal-handoffs=true", short_model);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstElement *d = gst_bin_get_by_name (GST_BIN (pipeline), "d");
  GstElement *s = gst_bin_get_by_name (GST_BIN (pipeline), "s");
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg;
  GstQuery *q;
  gint frames = 0;
  gint64 t0;
  gboolean live;
  GstClockTime min, max;

  g_signal_connect (s, "handoff", G_CALLBACK (count_handoff), &frames);
  t0 = g_get_monotonic_time ();
  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  fail_unless (gst_element_get_state (pipeline, NULL, NULL, 30 * GST_SECOND)
      == GST_STATE_CHANGE_SUCCESS);
  q = gst_query_new_latency ();
  fail_unless (gst_element_query (d, q));
  gst_query_parse_latency (q, &live, &min, &max);
  gst_query_unref (q);
  fail_unless (live);
  /* Our part: half a frame at 30 fps. */
  fail_unless (min >= 16 * GST_MSECOND, "latency %" GST_TIME_FORMAT,
      GST_TIME_ARGS (min));
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS);
  gst_message_unref (msg);
  {
    gdouble secs = (g_get_monotonic_time () - t0) / 1e6;
    guint64 dropped = kc_stat_u64 (d, "dropped");
    GST_INFO ("45 frames in %.2f s, %" G_GUINT64_FORMAT " dropped", secs,
        dropped);
    fail_unless_equals_int (g_atomic_int_get (&frames), 45);
    /* 1.5 s of video; 45 inline inferences would take >= 9 s. */
    fail_unless (secs < 5.0, "45 frames took %.2f s", secs);
    fail_unless (dropped > 0);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (d);
  gst_object_unref (s);
  gst_object_unref (pipeline);
  g_free (desc);
}

GST_END_TEST;

/* Many buffers with properties flipping between them, in both modes, with
 * model swaps: every buffer comes out, nothing crashes or leaks a lock. */
GST_START_TEST (test_detect_stress)
{
  GstVideoInfo info;
  GstBuffer *in = photo_frame ("sample5.jpg", "YUY2", 320, 233, &info);
  const gchar *rois[] = { NULL, "0,0,160,120", "100,50,300,300", "" };

  for (gint mode = 1; mode <= 2; mode++) {
    GstHarness *h = detect_harness (short_model, &info);
    GstBus *bus = kc_attach_bus (h->element);
    guint n = 150;
    g_object_set (h->element, "mode", mode, NULL);
    for (guint i = 0; i < n; i++) {
      GstMessage *msg;
      g_object_set (h->element, "threshold", (i % 5) * 0.2 - (i % 5 == 0),
          "interval", 1 + i % 3, "roi", rois[i % 4], "message", i % 2 == 0,
          "max-detections", (gint) (i % 4) - 1, "object-class",
          i % 7 ? NULL : "face", "labels", i % 11 ? NULL : "x,y", NULL);
      if (i % 50 == 25)
        g_object_set (h->element, "model", i % 100 == 25 ? full_model :
            short_model, NULL);
      if (i % 60 == 30)
        g_object_set (h->element, "threads", 1 + i % 2, NULL);
      gst_buffer_unref (gst_harness_push_and_pull (h, gst_buffer_copy (in)));
      while ((msg = gst_bus_pop (bus)))
        gst_message_unref (msg);
    }
    fail_unless_equals_uint64 (kc_stat_u64 (h->element, "frames"), n);
    /* Async frames outrun the worker: give its first inference time. */
    for (gint wait = 0; wait < 300
        && kc_stat_u64 (h->element, "inferences") == 0; wait++)
      g_usleep (100000);
    fail_unless (kc_stat_u64 (h->element, "inferences") > 0,
        "mode %d: no inference (%" G_GUINT64_FORMAT " dropped)", mode,
        kc_stat_u64 (h->element, "dropped"));
    gst_element_set_bus (h->element, NULL);
    gst_object_unref (bus);
    gst_harness_teardown (h);
  }
  gst_buffer_unref (in);
}

GST_END_TEST;

static Suite *
kestreldetect_suite (void)
{
  Suite *s = suite_create ("kestreldetect");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 600);
  tcase_add_checked_fixture (tc, setup_models, teardown_models);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_frame_rgb_matches_engine);
  tcase_add_test (tc, test_frame_formats_agree);
  tcase_add_test (tc, test_detect_caps);
  tcase_add_test (tc, test_detect_faces_every_format);
  tcase_add_test (tc, test_detect_properties);
  tcase_add_test (tc, test_detect_interval_stale);
  tcase_add_test (tc, test_detect_model_swap);
  tcase_add_test (tc, test_detect_bad_models);
  tcase_add_test (tc, test_detect_odd_sizes);
  tcase_add_test (tc, test_detect_live_harness);
  tcase_add_test (tc, test_detect_live_pipeline);
  tcase_add_test (tc, test_detect_stress);
  return s;
}

GST_CHECK_MAIN (kestreldetect);
