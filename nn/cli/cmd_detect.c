/* `kestrel detect`: images in, decoded objects (or classes) out. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_OUTPUTS 64

static const char detect_help[] =
    "usage: kestrel detect MODEL IMAGE... [--json] [--threshold T]\n"
    "                      [--config SIDECAR] [--threads N] [--no-optimize]\n"
    "\n"
    "Preprocesses each JPEG/PNG image as the model's sidecar says, runs the\n"
    "model and its decoder (SSD face detection, DBNet text detection or\n"
    "classification) and prints what it found. Boxes are [x, y, w, h] in\n"
    "image pixels. The sidecar is --config, else MODEL.sidecar or\n"
    "BASENAME.sidecar next to the model, else the one in the asset folder\n"
    "($KESTREL_ASSETS, or assets/models) whose sha256 matches the model.\n"
    "\n"
    "  --json         one JSON object per image per line:\n"
    "                 {\"image\",\"width\",\"height\",\"objects\":[{\"label\",\n"
    "                 \"confidence\",\"box\":[x,y,w,h],\"keypoints\":[[x,y],..]}]}\n"
    "                 (\"quad\" for text boxes, \"classes\" for classifiers)\n"
    "  --threshold T  minimum score (SSD min_score, DBNet box_threshold,\n"
    "                 classifier min_score)\n"
    "  --config FILE  sidecar to use\n"
    "  --threads N    worker threads (default 1)\n"
    CLI_NO_OPTIMIZE_HELP
    "  -h, --help     this text\n";

static void print_json(const char *image, int w, int h,
                       const kestrel_sidecar *sc, const kestrel_result *r) {
  printf("{\"image\":");
  json_string(stdout, image);
  printf(",\"width\":%d,\"height\":%d,\"objects\":[", w, h);
  for (size_t i = 0; i < r->num_objects; i++) {
    const kestrel_object *o = &r->objects[i];
    printf("%s{\"label\":", i ? "," : "");
    if (o->label)
      json_string(stdout, o->label);
    else
      printf("\"%d\"", o->label_id);
    printf(",\"label_id\":%d,\"confidence\":%.4f,\"box\":[%.1f,%.1f,%.1f,%.1f]",
           o->label_id, o->confidence, o->x, o->y, o->w, o->h);
    if (o->num_keypoints > 0) {
      printf(",\"keypoints\":[");
      for (int k = 0; k < o->num_keypoints; k++)
        printf("%s[%.1f,%.1f]", k ? "," : "", o->keypoints[k].x,
               o->keypoints[k].y);
      printf("]");
      if (sc->num_keypoint_names == o->num_keypoints) {
        printf(",\"keypoint_names\":[");
        for (int k = 0; k < o->num_keypoints; k++) {
          printf("%s", k ? "," : "");
          json_string(stdout, sc->keypoint_names[k]);
        }
        printf("]");
      }
    }
    if (o->has_quad) {
      printf(",\"quad\":[");
      for (int k = 0; k < 4; k++)
        printf("%s[%.1f,%.1f]", k ? "," : "", o->quad[k].x, o->quad[k].y);
      printf("]");
    }
    printf("}");
  }
  printf("]");
  if (sc->decoder == KESTREL_DECODER_CLASSIFY) {
    printf(",\"classes\":[");
    for (size_t i = 0; i < r->num_classes; i++) {
      const kestrel_class *c = &r->classes[i];
      printf("%s{\"label\":", i ? "," : "");
      if (c->label)
        json_string(stdout, c->label);
      else
        printf("\"%d\"", c->label_id);
      printf(",\"label_id\":%d,\"score\":%.4f}", c->label_id, c->score);
    }
    printf("]");
  }
  printf("}\n");
}

static void print_text(const char *image, int w, int h,
                       const kestrel_sidecar *sc, const kestrel_result *r) {
  if (sc->decoder == KESTREL_DECODER_CLASSIFY) {
    printf("%s (%dx%d):", image, w, h);
    for (size_t i = 0; i < r->num_classes; i++) {
      const kestrel_class *c = &r->classes[i];
      if (c->label)
        printf(" %s %.4f", c->label, c->score);
      else
        printf(" #%d %.4f", c->label_id, c->score);
    }
    printf("\n");
    return;
  }
  printf("%s (%dx%d): %zu object%s\n", image, w, h, r->num_objects,
         r->num_objects == 1 ? "" : "s");
  for (size_t i = 0; i < r->num_objects; i++) {
    const kestrel_object *o = &r->objects[i];
    if (o->label)
      printf("  %-8s", o->label);
    else
      printf("  #%-7d", o->label_id);
    printf(" %.3f  box %.0f,%.0f %.0fx%.0f", o->confidence, o->x, o->y, o->w,
           o->h);
    for (int k = 0; k < o->num_keypoints; k++) {
      const char *kn = k < sc->num_keypoint_names ? sc->keypoint_names[k] : "";
      printf("%s%s(%.0f,%.0f)", k ? " " : "  ", kn, o->keypoints[k].x,
             o->keypoints[k].y);
    }
    printf("\n");
  }
}

int cmd_detect(int argc, char **argv) {
  static const struct option opts[] = {
      {"json", no_argument, NULL, 'j'},
      {"threshold", required_argument, NULL, 'T'},
      {"config", required_argument, NULL, 'c'},
      {"threads", required_argument, NULL, 't'},
      {"no-optimize", no_argument, NULL, 'N'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int json = 0;
  double threshold = -1;
  long threads = 1;
  int optimize = 1;
  const char *config = NULL;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': json = 1; break;
    case 'c': config = optarg; break;
    case 'T':
      if (cli_parse_float(optarg, 0, 1, &threshold))
        return cli_usage_error("detect ", "bad --threshold '%s' (0..1)",
                               optarg);
      break;
    case 't':
      if (cli_parse_int(optarg, 1, 256, &threads))
        return cli_usage_error("detect ", "bad --threads '%s'", optarg);
      break;
    case 'N': optimize = 0; break;
    case 'h': fputs(detect_help, stdout); return EXIT_OK;
    default:
      return cli_usage_error("detect ", "unknown or incomplete option '%s'",
                             argv[optind - 1]);
    }
  }
  if (argc - optind < 2)
    return cli_usage_error("detect ", "want MODEL and at least one IMAGE");
  const char *model_path = argv[optind];

  kestrel_error err;
  kestrel_sidecar sc;
  if (cli_load_sidecar(model_path, config, &sc, &err))
    return cli_error("%s", err.message);
  if (sc.decoder == KESTREL_DECODER_NONE) {
    kestrel_sidecar_free(&sc);
    return cli_error("%s: the sidecar names no decoder ([decoder] type)",
                     model_path);
  }
  if (threshold >= 0) {
    sc.ssd.min_score = (float)threshold;
    sc.dbnet.box_threshold = (float)threshold;
    sc.classify.min_score = (float)threshold;
  }

  int rc = EXIT_OK;
  kestrel_model *model = NULL;
  kestrel_session *session = NULL;
  int model_w = 0, model_h = 0;
  kestrel_result res = {0};
  for (int a = optind + 1; a < argc && rc == EXIT_OK; a++) {
    const char *path = argv[a];
    cli_image img;
    if (image_load(path, &img, &err)) {
      rc = cli_error("%s", err.message);
      break;
    }
    int tw, th;
    if (kestrel_preprocess_size(&sc, img.width, img.height, &tw, &th, &err)) {
      rc = cli_error("%s: %s", path, err.message);
      goto next;
    }
    /* One model per tensor size: DBNet's size follows each image. */
    if (!model || tw != model_w || th != model_h) {
      if (session)
        kestrel_session_free(session);
      if (model)
        kestrel_model_free(model);
      session = NULL;
      model = NULL;
      kestrel_load_options lo = kestrel_load_options_default();
      int64_t nchw[4] = {1, 3, th, tw}, nhwc[4] = {1, th, tw, 3};
      memcpy(lo.input_shape, sc.layout == KESTREL_LAYOUT_NHWC ? nhwc : nchw,
             sizeof(nchw));
      lo.input_shape_ndim = 4;
      if (kestrel_model_load(model_path, &lo, &model, &err) ||
          cli_prepare_model(model, optimize, &err)) {
        rc = cli_error("%s: %s", model_path, err.message);
        goto next;
      }
      kestrel_session_options so = {.threads = (int)threads};
      if (kestrel_session_create(model, &so, &session, &err)) {
        rc = cli_error("%s: %s", model_path, err.message);
        goto next;
      }
      model_w = tw;
      model_h = th;
    }
    kestrel_transform tf;
    if (kestrel_preprocess(&sc, img.rgb, img.width, img.height,
                           (size_t)img.width * 3,
                           kestrel_session_input(session, 0), &tf, &err)) {
      rc = cli_error("%s: %s", path, err.message);
      goto next;
    }
    if (kestrel_session_run(session, &err)) {
      rc = cli_error("%s: %s", model_path, err.message);
      goto next;
    }
    const kestrel_tensor *outs[MAX_OUTPUTS];
    size_t nout = kestrel_model_num_outputs(model);
    if (nout > MAX_OUTPUTS)
      nout = MAX_OUTPUTS;
    for (size_t i = 0; i < nout; i++)
      outs[i] = kestrel_session_output(session, i);
    if (kestrel_decode(&sc, outs, nout, &tf, &res, &err)) {
      rc = cli_error("%s: %s", path, err.message);
      goto next;
    }
    if (json)
      print_json(path, img.width, img.height, &sc, &res);
    else
      print_text(path, img.width, img.height, &sc, &res);
    fflush(stdout);
  next:
    image_free(&img);
  }
  kestrel_result_free(&res);
  if (session)
    kestrel_session_free(session);
  if (model)
    kestrel_model_free(model);
  kestrel_sidecar_free(&sc);
  return rc;
}
