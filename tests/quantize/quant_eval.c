/* INT8 vs FP32 accuracy on real images: calibrates a model on one set of
 * photos, quantizes it, then runs both models on held-out images and
 * compares what a user sees after decoding. Used by tests/quantize (small
 * sets, thresholds from the issue) and benchmarks/quant-accuracy.sh (full
 * sets).
 *
 *   quant_eval TASK MODEL SIDECAR [options] --calib IMG... --eval IMG...
 *     TASK: cls (top-1 agreement on text-line crops, also of PaddleOCR's
 *           rotate decision, label 180 with score >= 0.9), det (probability-map
 *           SNR and text-box F1 at IoU >= 0.5), face (face-box F1)
 *     --shape N,C,H,W   model input shape (det: fixed size, letterboxed)
 *     --method M        minmax | percentile | entropy | mse
 *     --dynamic         dynamic quantization instead of calibration
 *     --min-agree X --min-decision X --min-confident X (top-1 agreement
 *     where FP32 scores >= 0.9, at least 5 such) --min-snr DB --min-f1 X
 *                       fail (exit 1) below these
 *     --report DIR      per-layer report of the quantized model
 *     --export-onnx F   also write the INT8 model as ONNX QDQ
 *     --input-noise K   no quantization: compare FP32 on the evaluation
 *                       images against FP32 on the same images with uniform
 *                       noise of +-K grey levels added to every RGB byte
 *                       (a camera's noise floor), to put INT8 numbers in
 *                       context
 * Prints one JSON line with the measurements. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/decode.h>
#include <kestrel/quantize.h>
#include <kestrel/run.h>

#include "cli.h"

typedef struct sample {
  float *data;
  kestrel_transform tf;
} sample;

static int die(const char *what, const kestrel_error *err) {
  fprintf(stderr, "quant_eval: %s: %s\n", what, err ? err->message : "");
  exit(2);
}

/* Text-line-like crops for the direction classifier: horizontal strips of
 * aspect about 4:1 from the image, upright and turned 180 degrees. */
static int make_crops(const cli_image *img, cli_image *out, int max) {
  int n = 0;
  int h = img->height / 6 > 16 ? img->height / 6 : 16;
  if (h > img->height)
    h = img->height;
  int w = 4 * h < img->width ? 4 * h : img->width;
  for (int y = 0; y + h <= img->height && n + 2 <= max; y += h) {
    for (int x = 0; x + w <= img->width && n + 2 <= max; x += w) {
      for (int rot = 0; rot < 2; rot++) {
        cli_image *c = &out[n++];
        c->width = w;
        c->height = h;
        c->rgb = malloc((size_t)w * h * 3);
        if (!c->rgb)
          exit(2);
        for (int yy = 0; yy < h; yy++)
          for (int xx = 0; xx < w; xx++) {
            int sx = rot ? w - 1 - xx : xx, sy = rot ? h - 1 - yy : yy;
            memcpy(c->rgb + ((size_t)yy * w + xx) * 3,
                   img->rgb + ((size_t)(y + sy) * img->width + x + sx) * 3, 3);
          }
      }
    }
  }
  return n;
}

/* Uniform integer noise in [-k, k] on every byte (fixed seed: repeatable). */
static void add_noise(cli_image *img, int k) {
  static unsigned state = 2463534242u;
  size_t n = (size_t)img->width * img->height * 3;
  for (size_t i = 0; i < n; i++) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    int v = img->rgb[i] + (int)(state % (unsigned)(2 * k + 1)) - k;
    img->rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
  }
}

static int load_samples(char **paths, int count, const kestrel_sidecar *sc,
                        const kestrel_tensor *shape, int crops, int noise,
                        sample **out) {
  int cap = crops ? count * 64 : count, n = 0;
  sample *s = calloc((size_t)cap + 1, sizeof(sample));
  size_t elems = kestrel_tensor_numel(shape);
  kestrel_error err;
  for (int i = 0; i < count; i++) {
    cli_image img;
    if (image_load(paths[i], &img, &err)) {
      fprintf(stderr, "quant_eval: skipping %s: %s\n", paths[i], err.message);
      continue;
    }
    if (noise > 0)
      add_noise(&img, noise);
    cli_image parts[64];
    int np = 1;
    if (crops)
      np = make_crops(&img, parts, 64);
    else
      parts[0] = img;
    for (int p = 0; p < np && n < cap; p++) {
      kestrel_tensor t = *shape;
      s[n].data = malloc(sizeof(float) * elems);
      t.data = s[n].data;
      t.dtype = KESTREL_DTYPE_F32;
      if (kestrel_preprocess(sc, parts[p].rgb, parts[p].width,
                             parts[p].height, (size_t)parts[p].width * 3, &t,
                             &s[n].tf, &err))
        die(paths[i], &err);
      n++;
    }
    if (crops)
      for (int p = 0; p < np; p++)
        image_free(&parts[p]);
    image_free(&img);
  }
  *out = s;
  return n;
}

/* Greedy one-to-one matching at IoU >= 0.5 between two detection sets. */
static void match(const kestrel_result *ref, const kestrel_result *test,
                  int *tp, int *nref, int *ntest) {
  char used[4096] = {0};
  *nref += (int)ref->num_objects;
  *ntest += (int)test->num_objects;
  for (size_t i = 0; i < ref->num_objects; i++) {
    double best = 0.5;
    int bj = -1;
    for (size_t j = 0; j < test->num_objects && j < sizeof(used); j++) {
      if (used[j])
        continue;
      double iou = kestrel_box_iou(&ref->objects[i], &test->objects[j]);
      if (iou >= best) {
        best = iou;
        bj = (int)j;
      }
    }
    if (bj >= 0) {
      used[bj] = 1;
      (*tp)++;
    }
  }
}

static void copy_result(kestrel_result *dst, const kestrel_result *src) {
  dst->num_objects = 0;
  if (src->num_objects > dst->cap_objects) {
    dst->objects = realloc(dst->objects, src->num_objects * sizeof(kestrel_object));
    dst->cap_objects = src->num_objects;
  }
  memcpy(dst->objects, src->objects, src->num_objects * sizeof(kestrel_object));
  dst->num_objects = src->num_objects;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: quant_eval TASK MODEL SIDECAR [options] --calib "
                    "IMG... --eval IMG...\n");
    return 2;
  }
  const char *task = argv[1], *model_path = argv[2], *sc_path = argv[3];
  kestrel_quantize_options qo = kestrel_quantize_options_default();
  kestrel_load_options lo = kestrel_load_options_default();
  double min_agree = -1, min_snr = -INFINITY, min_f1 = -1, min_decision = -1;
  double min_confident = -1;
  int input_noise = 0;
  const char *report = NULL, *onnx = NULL;
  char **calib = NULL, **eval = NULL;
  int ncalib = 0, neval = 0;
  for (int i = 4; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--shape") && i + 1 < argc) {
      if (cli_parse_shape(argv[++i], &lo))
        return 2;
    } else if (!strcmp(a, "--method") && i + 1 < argc) {
      if (kestrel_calib_method_parse(argv[++i], &qo.method))
        return 2;
    } else if (!strcmp(a, "--percentile") && i + 1 < argc) {
      qo.percentile = atof(argv[++i]);
    } else if (!strcmp(a, "--dynamic")) {
      qo.dynamic = 1;
    } else if (!strcmp(a, "--target-snr") && i + 1 < argc) {
      qo.target_snr_db = atof(argv[++i]);
    } else if (!strcmp(a, "--min-agree") && i + 1 < argc) {
      min_agree = atof(argv[++i]);
    } else if (!strcmp(a, "--min-confident") && i + 1 < argc) {
      min_confident = atof(argv[++i]);
    } else if (!strcmp(a, "--min-decision") && i + 1 < argc) {
      min_decision = atof(argv[++i]);
    } else if (!strcmp(a, "--min-snr") && i + 1 < argc) {
      min_snr = atof(argv[++i]);
    } else if (!strcmp(a, "--min-f1") && i + 1 < argc) {
      min_f1 = atof(argv[++i]);
    } else if (!strcmp(a, "--report") && i + 1 < argc) {
      report = argv[++i];
    } else if (!strcmp(a, "--export-onnx") && i + 1 < argc) {
      onnx = argv[++i];
    } else if (!strcmp(a, "--input-noise") && i + 1 < argc) {
      input_noise = atoi(argv[++i]);
      if (input_noise < 1 || input_noise > 64)
        return 2;
    } else if (!strcmp(a, "--verbose")) {
      qo.verbose = 1;
    } else if (!strcmp(a, "--calib")) {
      calib = argv + i + 1;
      while (i + 1 < argc && strncmp(argv[i + 1], "--", 2))
        i++, ncalib++;
    } else if (!strcmp(a, "--eval")) {
      eval = argv + i + 1;
      while (i + 1 < argc && strncmp(argv[i + 1], "--", 2))
        i++, neval++;
    } else {
      fprintf(stderr, "quant_eval: bad argument '%s'\n", a);
      return 2;
    }
  }
  kestrel_error err;
  kestrel_sidecar sc;
  if (kestrel_sidecar_load(sc_path, &sc, &err))
    die(sc_path, &err);
  /* A fixed-size model cannot follow each image's size: letterbox. */
  if (sc.resize == KESTREL_RESIZE_MULTIPLE)
    sc.resize = KESTREL_RESIZE_LETTERBOX;
  kestrel_model *fp32, *int8;
  if (kestrel_model_load(model_path, &lo, &fp32, &err))
    die(model_path, &err);
  const kestrel_tensor *in = kestrel_model_input(fp32, 0);
  int is_cls = !strcmp(task, "cls");
  sample *cs = NULL, *es = NULL;
  sample *ns = NULL;
  int nc = input_noise ? 0 : load_samples(calib, ncalib, &sc, in, is_cls, 0, &cs);
  int ne = load_samples(eval, neval, &sc, in, is_cls, 0, &es);
  if (input_noise &&
      load_samples(eval, neval, &sc, in, is_cls, input_noise, &ns) != ne) {
    fprintf(stderr, "quant_eval: noisy evaluation set differs\n");
    return 2;
  }
  if ((!qo.dynamic && !input_noise && nc == 0) || ne == 0) {
    fprintf(stderr, "quant_eval: no calibration or evaluation images\n");
    return 2;
  }
  kestrel_calibrator *cal = NULL;
  if (input_noise) {
    /* The "quantized" side is the FP32 model itself on noisy inputs. */
    if (kestrel_model_load(model_path, &lo, &int8, &err))
      die(model_path, &err);
  } else {
    if (kestrel_calibrator_create(fp32, &qo, &cal, &err))
      die("calibrator", &err);
    for (int i = 0; i < nc && !qo.dynamic; i++)
      if (kestrel_calibrator_add(cal, cs[i].data, &err))
        die("calibrate", &err);
    if (kestrel_quantize(cal, &int8, &err))
      die("quantize", &err);
    if (report && kestrel_quantize_report_write(cal, report, &err))
      die("report", &err);
    if (onnx && kestrel_export_onnx(int8, onnx, &err))
      die("export", &err);
  }
  kestrel_session *sf, *sq;
  if (kestrel_session_create(fp32, NULL, &sf, &err) ||
      kestrel_session_create(int8, NULL, &sq, &err))
    die("session", &err);
  int agree = 0, tp = 0, nref = 0, ntest = 0;
  int decide = 0, confident = 0, confident_agree = 0;
  double sig = 0, noise = 0;
  kestrel_result rf = {0}, rq = {0}, keep = {0};
  for (int i = 0; i < ne; i++) {
    size_t bytes = kestrel_tensor_bytes(in);
    memcpy(kestrel_session_input(sf, 0)->data, es[i].data, bytes);
    memcpy(kestrel_session_input(sq, 0)->data, ns ? ns[i].data : es[i].data,
           bytes);
    if (kestrel_session_run(sf, &err) || kestrel_session_run(sq, &err))
      die("run", &err);
    size_t no = kestrel_model_num_outputs(fp32);
    const kestrel_tensor *of[8], *oq[8];
    for (size_t k = 0; k < no && k < 8; k++) {
      of[k] = kestrel_session_output(sf, k);
      oq[k] = kestrel_session_output(sq, k);
    }
    const float *a = of[0]->data, *b = oq[0]->data;
    size_t n0 = kestrel_tensor_numel(of[0]);
    for (size_t e = 0; e < n0; e++) {
      sig += (double)a[e] * a[e];
      noise += ((double)a[e] - b[e]) * ((double)a[e] - b[e]);
    }
    if (is_cls) {
      size_t af = 0, aq = 0;
      for (size_t e = 1; e < n0; e++) {
        af = a[e] > a[af] ? e : af;
        aq = b[e] > b[aq] ? e : aq;
      }
      agree += af == aq;
      /* What PaddleOCR does with it: turn the line only when the class is
       * "180" with a score of at least cls_thresh = 0.9. */
      int turn_f = af == 1 && a[1] >= 0.9f, turn_q = aq == 1 && b[1] >= 0.9f;
      decide += turn_f == turn_q;
      confident += a[af] >= 0.9f;
      confident_agree += a[af] >= 0.9f && af == aq;
      continue;
    }
    if (kestrel_decode(&sc, of, no, &es[i].tf, &rf, &err))
      die("decode", &err);
    copy_result(&keep, &rf);
    if (kestrel_decode(&sc, oq, no, &es[i].tf, &rq, &err))
      die("decode", &err);
    match(&keep, &rq, &tp, &nref, &ntest);
  }
  double snr = noise > 0 ? 10 * log10(sig / noise) : 200.0;
  double f1 = nref + ntest ? 2.0 * tp / (nref + ntest) : 1.0;
  double agreement = (double)agree / ne;
  char how[64];
  if (input_noise)
    snprintf(how, sizeof(how), "fp32-noise-%d", input_noise);
  else
    snprintf(how, sizeof(how), "%s",
             qo.dynamic ? "dynamic" : kestrel_calib_method_name(qo.method));
  printf("{\"task\":\"%s\",\"method\":\"%s\",\"calib_inputs\":%d,"
         "\"eval_inputs\":%d,\"output_snr_db\":%.2f",
         task, how, nc, ne, snr);
  if (is_cls)
    printf(",\"top1_agreement\":%.4f,\"rotate_decision_agreement\":%.4f,"
           "\"confident_inputs\":%d,\"confident_top1_agreement\":%.4f",
           agreement, (double)decide / ne, confident,
           confident ? (double)confident_agree / confident : 1.0);
  else
    printf(",\"boxes_fp32\":%d,\"boxes_int8\":%d,\"matched\":%d,\"f1\":%.4f",
           nref, ntest, tp, f1);
  printf("}\n");
  int fail = 0;
  if (is_cls && min_agree >= 0 && agreement < min_agree)
    fail = fprintf(stderr, "FAIL: top-1 agreement %.4f < %.4f\n", agreement,
                   min_agree);
  if (is_cls && min_decision >= 0 && (double)decide / ne < min_decision)
    fail = fprintf(stderr, "FAIL: rotate-decision agreement %.4f < %.4f\n",
                   (double)decide / ne, min_decision);
  if (is_cls && min_confident >= 0 &&
      (confident < 5 || (double)confident_agree / confident < min_confident))
    fail = fprintf(stderr, "FAIL: %d confident inputs, agreement %d\n",
                   confident, confident_agree);
  if (snr < min_snr)
    fail = fprintf(stderr, "FAIL: output SNR %.2f dB < %.2f\n", snr, min_snr);
  if (!is_cls && min_f1 >= 0 && f1 < min_f1)
    fail = fprintf(stderr, "FAIL: F1 %.4f < %.4f\n", f1, min_f1);
  kestrel_result_free(&rf);
  kestrel_result_free(&rq);
  free(keep.objects);
  kestrel_session_free(sf);
  kestrel_session_free(sq);
  kestrel_calibrator_free(cal);
  kestrel_model_free(int8);
  kestrel_model_free(fp32);
  kestrel_sidecar_free(&sc);
  for (int i = 0; i < nc; i++)
    free(cs[i].data);
  for (int i = 0; i < ne; i++) {
    free(es[i].data);
    if (ns)
      free(ns[i].data);
  }
  free(ns);
  free(cs);
  free(es);
  return fail ? 1 : 0;
}
