/* Unit tests for the task decoders: sidecar parsing, preprocessing, SSD
 * anchors and decoding, (weighted) NMS, min-area rectangles and DBNet
 * post-processing on synthetic maps. Everything here is computed by hand
 * from the definitions, not from earlier output of the code.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/decode.h>

static int failures;

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      failures++;                                                            \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__,       \
              #cond);                                                        \
      fprintf(stderr, __VA_ARGS__);                                          \
      fputc('\n', stderr);                                                   \
    }                                                                        \
  } while (0)

#define NEAR(a, b, tol) (fabs((double)(a) - (double)(b)) <= (tol))

static const char *source_dir(void) {
  const char *s = getenv("KESTREL_SOURCE_DIR");
  return s ? s : ".";
}

static int parse(const char *text, kestrel_sidecar *sc, kestrel_error *err) {
  return kestrel_sidecar_parse(text, strlen(text), "t.sidecar", NULL, sc,
                               err);
}

/* --- sidecars --------------------------------------------------------- */

static void test_real_sidecars(void) {
  static const char *names[] = {
      "face_detection_short_range", "face_detection_full_range",
      "ch_ppocr_mobile_v2.0_cls_infer", "ch_PP-OCRv4_det_infer"};
  static const kestrel_decoder_type types[] = {
      KESTREL_DECODER_SSD, KESTREL_DECODER_SSD, KESTREL_DECODER_CLASSIFY,
      KESTREL_DECODER_DBNET};
  for (int i = 0; i < 4; i++) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/assets/models/%s.sidecar", source_dir(),
             names[i]);
    kestrel_sidecar sc;
    kestrel_error err = {{0}};
    kestrel_status st = kestrel_sidecar_load(path, &sc, &err);
    CHECK(st == KESTREL_OK, "%s: %s", path, err.message);
    if (st)
      continue;
    CHECK(sc.decoder == types[i], "%s: decoder %d", names[i], sc.decoder);
    CHECK(strlen(sc.sha256) == 64, "%s: sha256 '%s'", names[i], sc.sha256);
    CHECK(!strcmp(sc.name, names[i]), "%s: name '%s'", names[i], sc.name);
    kestrel_sidecar_free(&sc);
  }

  char path[1024];
  snprintf(path, sizeof(path), "%s/assets/models/face_detection_full_range.sidecar",
           source_dir());
  kestrel_sidecar sc;
  kestrel_error err;
  if (kestrel_sidecar_load(path, &sc, &err) == KESTREL_OK) {
    CHECK(sc.num_keypoint_names == 6 && sc.ssd.num_keypoints == 6,
          "keypoints %d/%d", sc.num_keypoint_names, sc.ssd.num_keypoints);
    CHECK(sc.num_labels == 1 && !strcmp(sc.labels[0], "face"), "labels");
    CHECK(NEAR(sc.pad_value, -1.0, 1e-6), "pad %g", sc.pad_value);
    kestrel_sidecar_free(&sc);
  }

  /* Finding by sha256 in the asset folder. */
  char assets[1024], found[1024];
  snprintf(assets, sizeof(assets), "%s/assets/models", source_dir());
  kestrel_status st = kestrel_sidecar_find(
      "/nonexistent/x.tflite",
      "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
      assets, found, sizeof(found), &err);
  CHECK(st == KESTREL_OK && strstr(found, "face_detection_full_range.sidecar"),
        "find: %d %s", st, st ? err.message : found);
  st = kestrel_sidecar_find("/nonexistent/x.tflite",
                            "0000000000000000000000000000000000000000000000000000000000000000",
                            assets, found, sizeof(found), &err);
  CHECK(st == KESTREL_ERROR_IO, "find of unknown sha gave %d", st);
}

static void test_sidecar_errors(void) {
  static const struct {
    const char *text;
    const char *needle; /* must appear in the message */
  } cases[] = {
      {"[input]\nwidht = 3\n", "t.sidecar:2: key 'widht'"},
      {"[input]\nwidth = 0\n", "out of range"},
      {"[input]\nwidth = 99999999999999999999\n", "key 'width'"},
      {"[input]\nscale = abc\n", "not a number"},
      {"[input]\nstd = 0\n", "std must not be 0"},
      {"[input]\nmean = 1, 2\n", "1 or 3"},
      {"[inptu]\n", "unknown section"},
      {"width = 3\n", "outside any [section]"},
      {"[input\n", "malformed section"},
      {"[input]\njust words\n", "expected 'key = value'"},
      {"[decoder]\nlabels = \"a, b\n", "quote"},
      {"[decoder]\ntype = yolo\n", "unknown value"},
      {"[ssd]\nnum_layers = 2\nstrides = 8\n", "num_layers"},
      {"[decoder]\ntype = ssd\n[input]\nwidth = 8\nheight = 8\n[ssd]\n"
       "strides = 8\nnum_coords = 8\nnum_keypoints = 6\n",
       "keypoints exceed"},
      {"[decoder]\nlabels_file = /nonexistent/labels.txt\n", "labels_file"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    kestrel_sidecar sc;
    kestrel_error err = {{0}};
    kestrel_status st = parse(cases[i].text, &sc, &err);
    CHECK(st == KESTREL_ERROR_MALFORMED, "case %zu: status %d for <<%s>>", i,
          st, cases[i].text);
    CHECK(strstr(err.message, cases[i].needle), "case %zu: message '%s' lacks '%s'",
          i, err.message, cases[i].needle);
  }
  /* Quoted list items keep commas and spaces; comments are skipped. */
  kestrel_sidecar sc;
  kestrel_error err;
  kestrel_status st = parse("# c\n[decoder]\n; c\nlabels = \"a, b\", c ,d\n",
                            &sc, &err);
  CHECK(st == KESTREL_OK, "%s", err.message);
  if (!st) {
    CHECK(sc.num_labels == 3, "num_labels %d", sc.num_labels);
    if (sc.num_labels == 3)
      CHECK(!strcmp(sc.labels[0], "a, b") && !strcmp(sc.labels[1], "c") &&
                !strcmp(sc.labels[2], "d"),
            "labels '%s' '%s' '%s'", sc.labels[0], sc.labels[1], sc.labels[2]);
    kestrel_sidecar_free(&sc);
  }
  /* A line without a newline at the end of the text still counts. */
  st = parse("[input]\nwidth = 7\nheight = 9", &sc, &err);
  CHECK(st == KESTREL_OK && sc.width == 7 && sc.height == 9, "no final newline");
  if (!st)
    kestrel_sidecar_free(&sc);
}

/* --- preprocessing ------------------------------------------------------ */

static void test_preprocess(void) {
  kestrel_sidecar sc;
  kestrel_error err;
  CHECK(parse("[input]\nwidth = 4\nheight = 4\nlayout = nchw\nscale = 1\n"
              "mean = 0\nstd = 1\nresize = letterbox\npad_value = -7\n",
              &sc, &err) == KESTREL_OK,
        "%s", err.message);
  /* 4x2 image into 4x4: scale 1, 1 row of padding above and below. */
  uint8_t img[2 * 4 * 3];
  for (int i = 0; i < 24; i++)
    img[i] = (uint8_t)(10 * i);
  float data[3 * 4 * 4];
  kestrel_tensor t = {.name = "in", .dtype = KESTREL_DTYPE_F32, .ndim = 4,
                      .dims = {1, 3, 4, 4}, .data = data};
  kestrel_transform tf;
  kestrel_status st = kestrel_preprocess(&sc, img, 4, 2, 12, &t, &tf, &err);
  CHECK(st == KESTREL_OK, "%s", err.message);
  CHECK(NEAR(tf.scale_x, 1, 1e-6) && NEAR(tf.pad_y, 1, 1e-6) &&
            NEAR(tf.pad_x, 0, 1e-6),
        "tf scale %g pad %g,%g", tf.scale_x, tf.pad_x, tf.pad_y);
  CHECK(data[0] == -7.0f && data[15] == -7.0f, "pad rows %g %g", data[0],
        data[15]);
  /* Row 1 of the tensor is image row 0, exact copy at scale 1. */
  for (int x = 0; x < 4; x++)
    for (int c = 0; c < 3; c++)
      CHECK(NEAR(data[c * 16 + 4 + x], img[x * 3 + c], 1e-4),
            "x %d c %d: %g vs %d", x, c, data[c * 16 + 4 + x], img[x * 3 + c]);
  kestrel_sidecar_free(&sc);

  /* PP-OCR det sizes: longest side to 960, sides rounded to 32. */
  CHECK(parse("[input]\nresize = multiple\nlimit_side = 960\n", &sc, &err) ==
            KESTREL_OK,
        "%s", err.message);
  int tw, th;
  kestrel_preprocess_size(&sc, 1920, 1080, &tw, &th, &err);
  CHECK(tw == 960 && th == 544, "1920x1080 -> %dx%d", tw, th);
  kestrel_preprocess_size(&sc, 500, 20, &tw, &th, &err);
  CHECK(tw == 512 && th == 32, "500x20 -> %dx%d", tw, th);
  kestrel_sidecar_free(&sc);

  /* PP-OCR cls: height 48, width by aspect, padded on the right. */
  CHECK(parse("[input]\nwidth = 192\nheight = 48\nresize = pad_right\n", &sc,
              &err) == KESTREL_OK,
        "%s", err.message);
  uint8_t line[10 * 100 * 3];
  memset(line, 255, sizeof(line));
  float cls[3 * 48 * 192];
  kestrel_tensor ct = {.dtype = KESTREL_DTYPE_F32, .ndim = 4,
                       .dims = {1, 3, 48, 192}, .data = cls};
  st = kestrel_preprocess(&sc, line, 100, 10, 300, &ct, &tf, &err);
  CHECK(st == KESTREL_OK, "%s", err.message);
  /* 100x10 at height 48 is 480 wide: squeezed to 192, no padding. */
  CHECK(NEAR(tf.scale_x, 1.92, 1e-5), "cls scale_x %g", tf.scale_x);
  line[0] = 0;
  st = kestrel_preprocess(&sc, line, 20, 10, 60, &ct, &tf, &err);
  /* 20x10 -> 96x48, pixels 96.. are padding (0 after normalization). */
  CHECK(NEAR(tf.scale_x, 4.8, 1e-5), "cls scale_x %g", tf.scale_x);
  CHECK(cls[95] > 0.9f && cls[96] == 0.0f, "cls pad %g %g", cls[95], cls[96]);
  kestrel_sidecar_free(&sc);
}

/* --- SSD ---------------------------------------------------------------- */

static kestrel_sidecar face_sidecar(const char *name) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/assets/models/%s.sidecar", source_dir(),
           name);
  kestrel_sidecar sc;
  kestrel_error err;
  if (kestrel_sidecar_load(path, &sc, &err) != KESTREL_OK) {
    fprintf(stderr, "cannot load %s: %s\n", path, err.message);
    exit(1);
  }
  return sc;
}

static void test_anchors(void) {
  kestrel_error err;
  kestrel_sidecar s = face_sidecar("face_detection_short_range");
  int n = kestrel_ssd_anchors(&s.ssd, 128, 128, NULL, 0, &err);
  CHECK(n == 896, "short range anchors %d", n);
  float *a = malloc(896 * 4 * sizeof(float));
  n = kestrel_ssd_anchors(&s.ssd, 128, 128, a, 896, &err);
  /* 16x16 grid, 2 per cell, then 8x8 with 6 per cell. */
  CHECK(NEAR(a[0], 0.5 / 16, 1e-6) && NEAR(a[1], 0.5 / 16, 1e-6) &&
            a[2] == 1.0f && a[3] == 1.0f,
        "first anchor %g %g %g %g", a[0], a[1], a[2], a[3]);
  CHECK(NEAR(a[4 * 2], 1.5 / 16, 1e-6), "third anchor x %g", a[8]);
  CHECK(NEAR(a[4 * 512], 0.5 / 8, 1e-6) && NEAR(a[4 * 517], 0.5 / 8, 1e-6) &&
            NEAR(a[4 * 518], 1.5 / 8, 1e-6),
        "layer-2 anchors %g %g %g", a[4 * 512], a[4 * 517], a[4 * 518]);
  CHECK(NEAR(a[4 * 895], 7.5 / 8, 1e-6) && NEAR(a[4 * 895 + 1], 7.5 / 8, 1e-6),
        "last anchor %g %g", a[4 * 895], a[4 * 895 + 1]);
  free(a);
  kestrel_sidecar_free(&s);

  kestrel_sidecar f = face_sidecar("face_detection_full_range");
  n = kestrel_ssd_anchors(&f.ssd, 192, 192, NULL, 0, &err);
  CHECK(n == 2304, "full range anchors %d", n);
  kestrel_sidecar_free(&f);

  /* Non-fixed sizes: scale (min+max)/2 for one layer, ratio 4 -> w=2h. */
  kestrel_ssd_options o = {.num_layers = 1, .strides = {32}, .min_scale = 0.2f,
                           .max_scale = 0.6f, .num_aspect_ratios = 2,
                           .aspect_ratios = {1.0f, 4.0f}};
  float b[4 * 2 * 4];
  n = kestrel_ssd_anchors(&o, 64, 64, b, 8, &err);
  CHECK(n == 8, "anchors %d", n);
  CHECK(NEAR(b[2], 0.4, 1e-6) && NEAR(b[3], 0.4, 1e-6) && NEAR(b[6], 0.8, 1e-6) &&
            NEAR(b[7], 0.2, 1e-6),
        "sizes %g %g %g %g", b[2], b[3], b[6], b[7]);
  n = kestrel_ssd_anchors(&o, 64, 64, b, 4, &err);
  CHECK(n == -1, "small buffer accepted: %d", n);
}

static void test_ssd_decode(void) {
  kestrel_sidecar sc = face_sidecar("face_detection_full_range");
  enum { N = 2304, C = 16 };
  float *boxes = calloc(N * C, sizeof(float));
  float *scores = malloc(N * sizeof(float));
  for (int i = 0; i < N; i++)
    scores[i] = -10.0f;
  /* Anchor at grid (x=24, y=12): centre (24.5/48, 12.5/48). Offsets are in
   * input pixels (x_scale 192): +9.6 px in x, box 48x24 px. */
  int i = 12 * 48 + 24;
  scores[i] = 3.0f; /* sigmoid 0.9526 */
  boxes[i * C + 0] = 9.6f;
  boxes[i * C + 1] = 0.0f;
  boxes[i * C + 2] = 48.0f;
  boxes[i * C + 3] = 24.0f;
  boxes[i * C + 4] = -10.0f; /* keypoint 0 */
  boxes[i * C + 5] = 5.0f;
  /* A weaker duplicate one cell right, same box: merged by weighted NMS. */
  int j = i + 1;
  scores[j] = 1.0f; /* sigmoid 0.7311 */
  boxes[j * C + 0] = 9.6f - 4.0f; /* anchor is 4 px further right */
  boxes[j * C + 2] = 48.0f;
  boxes[j * C + 3] = 24.0f;
  kestrel_tensor tb = {.name = "regressors", .dtype = KESTREL_DTYPE_F32,
                       .ndim = 3, .dims = {1, N, C}, .data = boxes};
  kestrel_tensor ts = {.name = "classificators", .dtype = KESTREL_DTYPE_F32,
                       .ndim = 3, .dims = {1, N, 1}, .data = scores};
  /* Image 384x192 letterboxed into 192x192: scale 0.5, pad_y 48. */
  kestrel_transform tf = {.image_width = 384, .image_height = 192,
                          .tensor_width = 192, .tensor_height = 192,
                          .scale_x = 0.5f, .scale_y = 0.5f, .pad_x = 0,
                          .pad_y = 48};
  /* Scores first: the decoder must tell the heads apart by size. */
  const kestrel_tensor *outs[2] = {&ts, &tb};
  kestrel_result res = {0};
  kestrel_error err;
  kestrel_status st = kestrel_decode(&sc, outs, 2, &tf, &res, &err);
  CHECK(st == KESTREL_OK, "%s", err.message);
  CHECK(res.num_objects == 1, "objects %zu", res.num_objects);
  if (res.num_objects >= 1) {
    const kestrel_object *o = &res.objects[0];
    /* Centre in tensor px: x = 24.5*4 + 9.6 = 107.6, y = 12.5*4 = 50.
     * Image: x = 107.6/0.5 = 215.2, y = (50-48)/0.5 = 4; size 96x48. */
    CHECK(NEAR(o->x, 215.2 - 48, 0.05) && NEAR(o->y, 4 - 24, 0.05) &&
              NEAR(o->w, 96, 0.05) && NEAR(o->h, 48, 0.05),
          "box %g %g %g %g", o->x, o->y, o->w, o->h);
    CHECK(NEAR(o->confidence, 1 / (1 + exp(-3.0)), 1e-4), "conf %g",
          o->confidence);
    CHECK(!strcmp(o->label, "face") && o->num_keypoints == 6, "label %s nk %d",
          o->label, o->num_keypoints);
    /* Keypoint 0 of the best box alone: (98 - 10, 50 + 5) tensor px; the
     * duplicate's keypoint 0 is its anchor centre (102, 50). */
    double w1 = 1 / (1 + exp(-3.0)), w2 = 1 / (1 + exp(-1.0));
    double kx = ((88 / 0.5) * w1 + (102 / 0.5) * w2) / (w1 + w2);
    double ky = (((55 - 48) / 0.5) * w1 + ((50 - 48) / 0.5) * w2) / (w1 + w2);
    CHECK(NEAR(o->keypoints[0].x, kx, 0.05) && NEAR(o->keypoints[0].y, ky, 0.05),
          "keypoint %g %g want %g %g", o->keypoints[0].x, o->keypoints[0].y,
          kx, ky);
  }
  /* Plain NMS keeps the best box untouched. */
  sc.ssd.nms = KESTREL_NMS_PLAIN;
  st = kestrel_decode(&sc, outs, 2, &tf, &res, &err);
  CHECK(st == KESTREL_OK && res.num_objects == 1 &&
            NEAR(res.objects[0].keypoints[0].x, 176, 0.05),
        "plain nms: %zu objects", res.num_objects);
  /* No NMS: both. Higher threshold: none. */
  sc.ssd.nms = KESTREL_NMS_NONE;
  st = kestrel_decode(&sc, outs, 2, &tf, &res, &err);
  CHECK(st == KESTREL_OK && res.num_objects == 2, "no nms: %zu", res.num_objects);
  sc.ssd.min_score = 0.99f;
  st = kestrel_decode(&sc, outs, 2, &tf, &res, &err);
  CHECK(st == KESTREL_OK && res.num_objects == 0, "thresh: %zu", res.num_objects);
  /* Wrong output sizes are an error, not a crash. */
  tb.dims[1] = 100;
  st = kestrel_decode(&sc, outs, 2, &tf, &res, &err);
  CHECK(st == KESTREL_ERROR_SHAPE, "bad shape gave %d", st);
  kestrel_result_free(&res);
  free(boxes);
  free(scores);
  kestrel_sidecar_free(&sc);
}

/* --- NMS ---------------------------------------------------------------- */

static kestrel_object box(float x, float y, float w, float h, float conf) {
  kestrel_object o;
  memset(&o, 0, sizeof(o));
  o.x = x, o.y = y, o.w = w, o.h = h, o.confidence = conf;
  return o;
}

static void test_nms(void) {
  kestrel_object a = box(0, 0, 10, 10, 0.5f), b = box(5, 0, 10, 10, 0.5f);
  CHECK(NEAR(kestrel_box_iou(&a, &b), 50.0 / 150.0, 1e-6), "iou %g",
        kestrel_box_iou(&a, &b));
  kestrel_object c = box(20, 20, 1, 1, 0.5f);
  CHECK(kestrel_box_iou(&a, &c) == 0.0f, "disjoint iou");

  kestrel_object v[4] = {box(100, 100, 10, 10, 0.6f), box(0, 0, 10, 10, 0.9f),
                         box(1, 0, 10, 10, 0.8f), box(6, 0, 10, 10, 0.7f)};
  /* IoU(0.9 box, 0.8 box) = 90/110 > 0.5: dropped; IoU with the x=6 box
   * is 40/160: kept. */
  size_t n = kestrel_nms(v, 4, KESTREL_NMS_PLAIN, 0.5f, 100);
  CHECK(n == 3, "plain kept %zu", n);
  CHECK(v[0].confidence == 0.9f && v[0].x == 0 && v[1].confidence == 0.7f &&
            v[2].confidence == 0.6f,
        "plain order %g %g %g", v[0].confidence, v[1].confidence,
        v[2].confidence);

  kestrel_object w[3] = {box(0, 0, 10, 10, 0.75f), box(2, 2, 10, 10, 0.25f),
                         box(50, 50, 4, 4, 0.5f)};
  n = kestrel_nms(w, 3, KESTREL_NMS_WEIGHTED, 0.3f, 100);
  /* IoU = 64/136 = 0.47 > 0.3: blended 3:1 -> x0 = 0.5, x1 = 10.5. */
  CHECK(n == 2, "weighted kept %zu", n);
  CHECK(NEAR(w[0].x, 0.5, 1e-5) && NEAR(w[0].y, 0.5, 1e-5) &&
            NEAR(w[0].w, 10, 1e-5) && NEAR(w[0].confidence, 0.75, 1e-6),
        "blend %g %g %g %g", w[0].x, w[0].y, w[0].w, w[0].confidence);
  CHECK(w[1].x == 50, "second %g", w[1].x);

  kestrel_object m[3] = {box(0, 0, 1, 1, 0.1f), box(5, 5, 1, 1, 0.3f),
                         box(9, 9, 1, 1, 0.2f)};
  n = kestrel_nms(m, 3, KESTREL_NMS_PLAIN, 0.5f, 2);
  CHECK(n == 2 && m[0].confidence == 0.3f && m[1].confidence == 0.2f,
        "max_keep: %zu", n);
  CHECK(kestrel_nms(NULL, 0, KESTREL_NMS_PLAIN, 0.5f, 5) == 0, "empty");
}

/* --- min-area rectangle -------------------------------------------------- */

static void test_min_area_rect(void) {
  kestrel_point corners[4];
  /* Axis-aligned 4x2 rectangle with interior points. */
  kestrel_point r[] = {{0, 0}, {4, 0}, {4, 2}, {0, 2}, {1, 1}, {3, 1}, {2, 0}};
  float area = kestrel_min_area_rect(r, 7, corners);
  CHECK(NEAR(area, 8, 1e-4), "rect area %g", area);
  CHECK(NEAR(corners[0].x, 0, 1e-4) && NEAR(corners[0].y, 0, 1e-4) &&
            NEAR(corners[2].x, 4, 1e-4) && NEAR(corners[2].y, 2, 1e-4),
        "corners (%g,%g) (%g,%g)", corners[0].x, corners[0].y, corners[2].x,
        corners[2].y);
  /* Diamond: a square of side sqrt(2) turned 45 degrees; its axis-aligned
   * box would have area 4. */
  kestrel_point d[] = {{1, 0}, {2, 1}, {1, 2}, {0, 1}};
  area = kestrel_min_area_rect(d, 4, corners);
  CHECK(NEAR(area, 2, 1e-4), "diamond area %g", area);
  /* Rectangle 10x4 rotated by 30 degrees about (50, 50), points on its
   * edges only. */
  kestrel_point rot[40];
  double ca = cos(M_PI / 6), sa = sin(M_PI / 6);
  int n = 0;
  for (int k = 0; k < 10; k++) {
    double ux[4] = {-5 + k, 5, 5 - k, -5}, vy[4] = {-2, -2 + 0.4 * k, 2,
                                                     2 - 0.4 * k};
    for (int e = 0; e < 4; e++) {
      rot[n].x = (float)(50 + ux[e] * ca - vy[e] * sa);
      rot[n].y = (float)(50 + ux[e] * sa + vy[e] * ca);
      n++;
    }
  }
  area = kestrel_min_area_rect(rot, (size_t)n, corners);
  CHECK(NEAR(area, 40, 1e-2), "rotated area %g", area);
  double w = hypot(corners[1].x - corners[0].x, corners[1].y - corners[0].y);
  double h = hypot(corners[2].x - corners[1].x, corners[2].y - corners[1].y);
  CHECK((NEAR(w, 10, 1e-3) && NEAR(h, 4, 1e-3)) ||
            (NEAR(w, 4, 1e-3) && NEAR(h, 10, 1e-3)),
        "rotated sides %g %g", w, h);
  /* Degenerate inputs. */
  kestrel_point one = {3, 4};
  CHECK(kestrel_min_area_rect(&one, 1, corners) == 0.0f, "single point");
  kestrel_point line[] = {{0, 0}, {1, 1}, {2, 2}};
  CHECK(NEAR(kestrel_min_area_rect(line, 3, corners), 0, 1e-5), "collinear");
}

/* --- DBNet ---------------------------------------------------------------- */

static void fill_rect(float *map, int w, int x0, int y0, int x1, int y1,
                      float v) {
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++)
      map[y * w + x] = v;
}

static void test_dbnet(void) {
  enum { W = 200, H = 100 };
  float *map = calloc(W * H, sizeof(float));
  fill_rect(map, W, 20, 10, 59, 29, 0.9f);   /* 40x20 pixels */
  fill_rect(map, W, 100, 50, 179, 79, 0.8f); /* 80x30 pixels */
  fill_rect(map, W, 5, 90, 6, 91, 0.95f);    /* too small */
  fill_rect(map, W, 150, 5, 190, 20, 0.4f);  /* above threshold, low score */
  kestrel_dbnet_options opt = {.threshold = 0.3f, .box_threshold = 0.6f,
                               .unclip_ratio = 1.5f, .max_candidates = 1000,
                               .min_size = 3};
  kestrel_result res = {0};
  kestrel_error err;
  kestrel_status st = kestrel_dbnet_decode(&opt, map, W, H, NULL, &res, &err);
  CHECK(st == KESTREL_OK, "%s", err.message);
  CHECK(res.num_objects == 2, "objects %zu", res.num_objects);
  if (res.num_objects == 2) {
    /* Pixel centres span 39x19; d = 39*19*1.5/(2*58) = 9.582. */
    double d = 39.0 * 19.0 * 1.5 / 116.0;
    const kestrel_object *o = &res.objects[0];
    CHECK(NEAR(o->x, 20 - d, 0.01) && NEAR(o->y, 10 - d, 0.01) &&
              NEAR(o->w, 39 + 2 * d, 0.01) && NEAR(o->h, 19 + 2 * d, 0.01),
          "box0 %g %g %g %g (d %g)", o->x, o->y, o->w, o->h, d);
    CHECK(NEAR(o->confidence, 0.9, 1e-4), "score %g", o->confidence);
    CHECK(o->has_quad && NEAR(o->quad[0].x, o->x, 1e-3) &&
              NEAR(o->quad[2].y, o->y + o->h, 1e-3),
          "quad");
    o = &res.objects[1];
    double d2 = 79.0 * 29.0 * 1.5 / (2 * (79.0 + 29.0));
    CHECK(NEAR(o->x, 100 - d2, 0.01) && NEAR(o->w, 79 + 2 * d2, 0.01),
          "box1 %g %g (d %g)", o->x, o->w, d2);
  }
  /* Through a transform: the map covers a 400x200 image at scale 0.5. */
  kestrel_transform tf = {.image_width = 400, .image_height = 200,
                          .tensor_width = W, .tensor_height = H,
                          .scale_x = 0.5f, .scale_y = 0.5f};
  res.num_objects = 0;
  st = kestrel_dbnet_decode(&opt, map, W, H, &tf, &res, &err);
  CHECK(st == KESTREL_OK && res.num_objects == 2, "tf objects %zu",
        res.num_objects);
  if (res.num_objects == 2) {
    double d = 39.0 * 19.0 * 1.5 / 116.0;
    CHECK(NEAR(res.objects[0].x, 2 * (20 - d), 0.02) &&
              NEAR(res.objects[0].y, 2 * (10 - d), 0.02),
          "tf box %g %g", res.objects[0].x, res.objects[0].y);
  }
  /* Boxes reaching past the map edge are clipped to the image. */
  fill_rect(map, W, 0, 0, 30, 8, 0.9f);
  res.num_objects = 0;
  st = kestrel_dbnet_decode(&opt, map, W, H, &tf, &res, &err);
  CHECK(st == KESTREL_OK && res.num_objects == 3, "edge objects %zu",
        res.num_objects);
  for (size_t i = 0; i < res.num_objects; i++)
    CHECK(res.objects[i].x >= 0 && res.objects[i].y >= 0 &&
              res.objects[i].x + res.objects[i].w <= 400.001f,
          "object %zu not clipped: %g %g %g", i, res.objects[i].x,
          res.objects[i].y, res.objects[i].w);
  /* A rotated bar: the quad follows it, the axis-aligned box does not. */
  memset(map, 0, W * H * sizeof(float));
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      double u = (x - 100) * cos(M_PI / 4) + (y - 50) * sin(M_PI / 4);
      double v = -(x - 100) * sin(M_PI / 4) + (y - 50) * cos(M_PI / 4);
      if (fabs(u) <= 40 && fabs(v) <= 6)
        map[y * W + x] = 0.9f;
    }
  res.num_objects = 0;
  st = kestrel_dbnet_decode(&opt, map, W, H, NULL, &res, &err);
  CHECK(st == KESTREL_OK && res.num_objects == 1, "rotated: %zu",
        res.num_objects);
  if (res.num_objects == 1) {
    const kestrel_object *o = &res.objects[0];
    double s1 = hypot(o->quad[1].x - o->quad[0].x, o->quad[1].y - o->quad[0].y);
    double s2 = hypot(o->quad[2].x - o->quad[1].x, o->quad[2].y - o->quad[1].y);
    double lo = fmin(s1, s2), hi = fmax(s1, s2);
    /* ~80x12 before unclip (d ~ 7.8), so ~96x28 after. */
    CHECK(hi > 88 && hi < 104 && lo > 20 && lo < 36, "rotated sides %g %g",
          lo, hi);
    CHECK(o->confidence > 0.85f, "rotated score %g", o->confidence);
  }
  /* max_candidates bounds the work. */
  memset(map, 0, W * H * sizeof(float));
  for (int k = 0; k < 10; k++)
    fill_rect(map, W, 5 + 18 * k, 40, 15 + 18 * k, 60, 0.9f);
  opt.max_candidates = 4;
  res.num_objects = 0;
  kestrel_dbnet_decode(&opt, map, W, H, NULL, &res, &err);
  CHECK(res.num_objects == 4, "max_candidates: %zu", res.num_objects);
  kestrel_result_free(&res);
  free(map);
}

/* --- classification ---------------------------------------------------- */

static void test_classify(void) {
  kestrel_sidecar sc;
  kestrel_error err;
  CHECK(parse("[decoder]\ntype = classify\nlabels = a, b, c\n[classify]\n"
              "softmax = true\ntop_k = 2\n",
              &sc, &err) == KESTREL_OK,
        "%s", err.message);
  float logits[3] = {1.0f, 3.0f, 2.0f};
  kestrel_tensor t = {.dtype = KESTREL_DTYPE_F32, .ndim = 2, .dims = {1, 3},
                      .data = logits};
  const kestrel_tensor *outs[1] = {&t};
  kestrel_result res = {0};
  kestrel_status st = kestrel_decode(&sc, outs, 1, NULL, &res, &err);
  CHECK(st == KESTREL_OK && res.num_classes == 2, "classes %zu",
        res.num_classes);
  if (res.num_classes == 2) {
    double z = exp(1.0) + exp(3.0) + exp(2.0);
    CHECK(!strcmp(res.classes[0].label, "b") &&
              NEAR(res.classes[0].score, exp(3.0) / z, 1e-5) &&
              !strcmp(res.classes[1].label, "c"),
          "top %s %g", res.classes[0].label, res.classes[0].score);
  }
  kestrel_result_free(&res);
  kestrel_sidecar_free(&sc);
}

int main(void) {
  test_real_sidecars();
  test_sidecar_errors();
  test_preprocess();
  test_anchors();
  test_ssd_decode();
  test_nms();
  test_min_area_rect();
  test_dbnet();
  test_classify();
  if (failures) {
    fprintf(stderr, "test_decode: %d check(s) failed\n", failures);
    return 1;
  }
  printf("test_decode: all checks passed\n");
  return 0;
}
