/* `kestrel quantize`: post-training INT8 quantization calibrated on real
 * images (a folder, or frames sampled from a video), written as a
 * .kestrel file. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kestrel/compile.h>
#include <kestrel/quantize.h>

#include "cli.h"

#define MAX_KEEP_FLOAT 256
#define MAX_FILES 100000

static const char quantize_help[] =
    "usage: kestrel quantize MODEL --calib DIR|VIDEO|none -o OUT.kestrel\n"
    "                        [--method minmax|percentile|entropy|mse]\n"
    "                        [--percentile P] [--keep-float NODE]...\n"
    "                        [--target-snr DB] [--report DIR]\n"
    "                        [--input-shape N,C,H,W] [--config SIDECAR]\n"
    "                        [--max-images N] [--no-optimize] [--verbose]\n"
    "\n"
    "Post-training static INT8 quantization. The FP32 model (fused first:\n"
    "BatchNorm folded, activations fused) runs on the calibration images,\n"
    "preprocessed exactly as 'kestrel detect' does (the model's sidecar);\n"
    "every activation's range is chosen from what it saw, and the model is\n"
    "rewritten with per-channel int8 weights, int8 activations and int32\n"
    "biases, then optimized and saved like 'kestrel compile' does.\n"
    "\n"
    "  --calib DIR        JPEG/PNG images (other files are skipped with a note)\n"
    "  --calib VIDEO      frames sampled from a video (2 per second, decoded\n"
    "                     with gst-launch-1.0, or ffmpeg if present)\n"
    "  --calib none       no data: dynamic quantization of activations at run\n"
    "                     time (a fallback: slower and less accurate)\n"
    "  --method M         clip-range choice (default mse):\n"
    "                     minmax, percentile (each tail, --percentile 99.99),\n"
    "                     entropy (least KL divergence), mse (least expected\n"
    "                     quantization error; best on held-out photos, see\n"
    "                     docs/BENCHMARKS.md)\n"
    "  --keep-float NODE  keep this node (name or output tensor name) in FP32\n"
    "                     with Quantize/Dequantize around it; repeatable\n"
    "  --target-snr DB    keep in FP32 the fewest nodes, worst per-layer SNR\n"
    "                     first, that bring every output's SNR against FP32 on\n"
    "                     the calibration images to DB\n"
    "  --report DIR       per-layer SNR and cosine similarity vs FP32 as\n"
    "                     report.txt, report.json and report.svg\n"
    "  --input-shape S    fix input 0 (else the sidecar's size); models whose\n"
    "                     size follows the image (PP-OCR det) are letterboxed\n"
    "  --max-images N     calibration images used, evenly spaced (default 64)\n"
    "  --no-optimize      save the quantized graph without layout/packing\n"
    "                     passes (portable, NCHW; what export-onnx wants)\n"
    "  -o, --output FILE  the .kestrel file to write\n"
    "  -v, --verbose      log decisions\n"
    "  -h, --help         this text\n";

typedef struct progress_state {
  int tty;
  const char *stage;
} progress_state;

static void draw_bar(const char *stage, size_t done, size_t total) {
  int width = 30, fill = total ? (int)(width * done / total) : width;
  fprintf(stderr, "\r%-10s [", stage);
  for (int i = 0; i < width; i++)
    fputc(i < fill ? '#' : '.', stderr);
  fprintf(stderr, "] %zu/%zu", done, total);
  if (done >= total)
    fputc('\n', stderr);
  fflush(stderr);
}

static void on_progress(void *user, const char *stage, size_t done,
                        size_t total) {
  progress_state *p = user;
  if (p->tty)
    draw_bar(stage, done, total);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted regular files of a folder (full paths). */
static int list_dir(const char *dir, char ***out, size_t *count) {
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  char **v = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < MAX_FILES) {
    if (e->d_name[0] == '.')
      continue;
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *p = malloc(len);
    if (!p)
      break;
    snprintf(p, len, "%s/%s", dir, e->d_name);
    struct stat sb;
    if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      free(p);
      continue;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nv = realloc(v, cap * sizeof(char *));
      if (!nv) {
        free(p);
        break;
      }
      v = nv;
    }
    v[n++] = p;
  }
  closedir(d);
  if (n)
    qsort(v, n, sizeof(char *), cmp_str);
  *out = v;
  *count = n;
  return 0;
}

static void free_list(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* Runs argv (no shell), output discarded; returns the exit status. */
static int run_quiet(char *const argv[]) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    FILE *devnull = freopen("/dev/null", "w", stdout);
    (void)devnull;
    execvp(argv[0], argv);
    _exit(127);
  }
  int status;
  if (waitpid(pid, &status, 0) < 0)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Decodes ~2 frames per second of a video into JPEGs in tmpdir:
 * GStreamer's gst-launch-1.0 first (installed with the plugins), then
 * ffmpeg. The library never decodes video; only this command does. */
static int extract_frames(const char *video, const char *tmpdir) {
  char loc[4200], pattern[4200];
  snprintf(loc, sizeof(loc), "location=%s", video);
  snprintf(pattern, sizeof(pattern), "location=%s/frame%%05d.jpg", tmpdir);
  char *gst[] = {"gst-launch-1.0", "-q", "filesrc", loc, "!", "decodebin",
                 "!", "videoconvert", "!", "videorate", "!",
                 "video/x-raw,framerate=2/1", "!", "jpegenc", "!",
                 "multifilesink", pattern, NULL};
  if (run_quiet(gst) == 0)
    return 0;
  char out[4200];
  snprintf(out, sizeof(out), "%s/frame%%05d.jpg", tmpdir);
  char *ff[] = {"ffmpeg", "-loglevel", "error", "-i", (char *)video,
                "-vf", "fps=2", "-q:v", "2", out, NULL};
  return run_quiet(ff) == 0 ? 0 : -1;
}

static void remove_dir(const char *dir) {
  char **v;
  size_t n;
  if (list_dir(dir, &v, &n) == 0) {
    for (size_t i = 0; i < n; i++)
      unlink(v[i]);
    free_list(v, n);
  }
  rmdir(dir);
}

int cmd_quantize(int argc, char **argv) {
  static const struct option opts[] = {
      {"calib", required_argument, NULL, 'C'},
      {"method", required_argument, NULL, 'm'},
      {"percentile", required_argument, NULL, 'p'},
      {"keep-float", required_argument, NULL, 'k'},
      {"target-snr", required_argument, NULL, 't'},
      {"report", required_argument, NULL, 'r'},
      {"input-shape", required_argument, NULL, 's'},
      {"config", required_argument, NULL, 'c'},
      {"max-images", required_argument, NULL, 'n'},
      {"no-optimize", no_argument, NULL, 'N'},
      {"output", required_argument, NULL, 'o'},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *calib = NULL, *report = NULL, *out = NULL, *config = NULL;
  const char *keep[MAX_KEEP_FLOAT];
  size_t nkeep = 0;
  long max_images = 64;
  int optimize = 1;
  kestrel_quantize_options qo = kestrel_quantize_options_default();
  kestrel_load_options lo = kestrel_load_options_default();
  opterr = 0;
  int c;
  double v;
  while ((c = getopt_long(argc, argv, "o:vh", opts, NULL)) != -1) {
    switch (c) {
    case 'C': calib = optarg; break;
    case 'm':
      if (kestrel_calib_method_parse(optarg, &qo.method))
        return cli_usage_error("quantize ", "unknown --method '%s'", optarg);
      break;
    case 'p':
      if (cli_parse_float(optarg, 50, 100, &v))
        return cli_usage_error("quantize ", "bad --percentile '%s' (50..100)",
                               optarg);
      qo.percentile = v;
      break;
    case 'k':
      if (nkeep == MAX_KEEP_FLOAT)
        return cli_usage_error("quantize ", "too many --keep-float");
      keep[nkeep++] = optarg;
      break;
    case 't':
      if (cli_parse_float(optarg, 0.1, 200, &v))
        return cli_usage_error("quantize ", "bad --target-snr '%s' (dB)",
                               optarg);
      qo.target_snr_db = v;
      break;
    case 'r': report = optarg; break;
    case 's':
      if (cli_parse_shape(optarg, &lo))
        return cli_usage_error("quantize ", "bad --input-shape '%s'", optarg);
      break;
    case 'c': config = optarg; break;
    case 'n':
      if (cli_parse_int(optarg, 1, 100000, &max_images))
        return cli_usage_error("quantize ", "bad --max-images '%s'", optarg);
      break;
    case 'N': optimize = 0; break;
    case 'o': out = optarg; break;
    case 'v': qo.verbose = 1; break;
    case 'h': fputs(quantize_help, stdout); return EXIT_OK;
    default:
      return cli_usage_error("quantize ", "unknown or incomplete option '%s'",
                             argv[optind - 1]);
    }
  }
  if (optind != argc - 1)
    return cli_usage_error("quantize ", "want exactly one MODEL");
  if (!calib)
    return cli_usage_error("quantize ", "missing --calib DIR|VIDEO|none");
  if (!out)
    return cli_usage_error("quantize ", "missing -o OUT.kestrel");
  const char *model_path = argv[optind];
  qo.keep_float = keep;
  qo.num_keep_float = nkeep;
  qo.dynamic = !strcmp(calib, "none");
  progress_state ps = {isatty(2), NULL};
  qo.progress = on_progress;
  qo.progress_user = &ps;

  kestrel_error err;
  kestrel_sidecar sc;
  char found[4096];
  const char *sidecar_from = config;
  int have_sidecar = 0;
  int rc = EXIT_ERROR;
  kestrel_model *fp32 = NULL, *int8 = NULL;
  kestrel_calibrator *cal = NULL;
  char **files = NULL;
  size_t nfiles = 0;
  char tmpdir[4096];
  /* Honour TMPDIR (as mkdtemp users are expected to); /tmp otherwise. */
  const char *tmp_base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof(tmpdir), "%s/kestrel-calib-XXXXXX",
           tmp_base && *tmp_base ? tmp_base : "/tmp");
  int made_tmp = 0;
  float *buf = NULL;
  uint8_t *sidecar_text = NULL;
  size_t sidecar_size = 0;

  if (cli_load_model(model_path, &lo, &fp32, &err)) {
    cli_error("%s", err.message);
    goto done;
  }
  /* The sidecar travels inside the INT8 file exactly as `kestrel compile`
   * embeds it: --config, else the one a .kestrel input carries, else the
   * one `kestrel detect` would find for the source model. */
  if (!sidecar_from &&
      kestrel_model_source_format(fp32) == KESTREL_FORMAT_KESTREL) {
    size_t n = 0;
    const char *text = kestrel_model_sidecar(fp32, &n);
    if (text && n > 0) {
      sidecar_text = malloc(n + 1);
      if (!sidecar_text) {
        cli_error("out of memory");
        goto done;
      }
      memcpy(sidecar_text, text, n);
      sidecar_text[n] = '\0';
      sidecar_size = n;
      sidecar_from = model_path;
    }
  }
  if (!sidecar_from &&
      kestrel_model_source_format(fp32) != KESTREL_FORMAT_KESTREL &&
      kestrel_sidecar_find(model_path, kestrel_model_sha256(fp32),
                           cli_asset_dir(), found, sizeof(found),
                           &err) == KESTREL_OK)
    sidecar_from = found;
  if (sidecar_from) {
    if (!sidecar_text &&
        cli_read_file(sidecar_from, (size_t)1 << 20, &sidecar_text,
                      &sidecar_size, &err)) {
      cli_error("%s", err.message);
      goto done;
    }
    /* Parse the very bytes that get embedded: what calibration uses is
     * what detect, the plugin and the kiosk will read back. */
    if (kestrel_sidecar_parse((const char *)sidecar_text, sidecar_size,
                              sidecar_from, NULL, &sc, &err)) {
      cli_error("%s", err.message);
      goto done;
    }
    have_sidecar = 1;
    if (qo.verbose)
      fprintf(stderr, "kestrel: embedding sidecar %s\n", sidecar_from);
  }
  if (!qo.dynamic && !have_sidecar) {
    cli_error("%s: no sidecar found (give --config): calibration needs the "
              "model's preprocessing",
              model_path);
    goto done;
  }
  /* A compiled model has one input size; images that would each get their
   * own (PP-OCR det's "multiple" resize) are letterboxed into it. */
  if (have_sidecar && sc.resize == KESTREL_RESIZE_MULTIPLE)
    sc.resize = KESTREL_RESIZE_LETTERBOX;
  if (kestrel_calibrator_create(fp32, &qo, &cal, &err)) {
    cli_error("%s", err.message);
    goto done;
  }

  if (!qo.dynamic) {
    struct stat sb;
    if (stat(calib, &sb) != 0) {
      cli_error("--calib '%s': %s", calib, strerror(errno));
      goto done;
    }
    const char *dir = calib;
    if (!S_ISDIR(sb.st_mode)) {
      if (!mkdtemp(tmpdir)) {
        cli_error("cannot create a temporary folder: %s", strerror(errno));
        goto done;
      }
      made_tmp = 1;
      if (ps.tty)
        fprintf(stderr, "decoding frames of %s\n", calib);
      if (extract_frames(calib, tmpdir)) {
        cli_error("--calib '%s': not a folder, and neither gst-launch-1.0 "
                  "nor ffmpeg could decode it as a video",
                  calib);
        goto done;
      }
      dir = tmpdir;
    }
    char **all;
    size_t nall;
    if (list_dir(dir, &all, &nall)) {
      cli_error("--calib '%s': %s", dir, strerror(errno));
      goto done;
    }
    files = calloc(nall + 1, sizeof(char *));
    if (!files) {
      free_list(all, nall);
      cli_error("out of memory");
      goto done;
    }
    for (size_t i = 0; i < nall; i++) {
      if (path_is_image(all[i])) {
        files[nfiles++] = all[i];
      } else {
        fprintf(stderr, "kestrel: note: skipping %s (not a JPEG or PNG)\n",
                all[i]);
        free(all[i]);
      }
    }
    free(all);
    if (nfiles == 0) {
      cli_error("--calib '%s': no JPEG or PNG images", calib);
      goto done;
    }
    size_t use = nfiles < (size_t)max_images ? nfiles : (size_t)max_images;
    const kestrel_tensor *in = kestrel_model_input(fp32, 0);
    buf = malloc(kestrel_tensor_bytes(in) + 16);
    if (!buf) {
      cli_error("out of memory");
      goto done;
    }
    for (size_t k = 0; k < use; k++) {
      /* Evenly spaced over the set (frames of a video: over its length). */
      const char *path = files[k * nfiles / use];
      cli_image img;
      if (image_load(path, &img, &err)) {
        fprintf(stderr, "kestrel: note: skipping %s: %s\n", path,
                err.message);
        continue;
      }
      kestrel_tensor t = *in;
      t.data = buf;
      kestrel_transform tf;
      kestrel_status st = kestrel_preprocess(&sc, img.rgb, img.width,
                                             img.height,
                                             (size_t)img.width * 3, &t, &tf,
                                             &err);
      image_free(&img);
      if (st == KESTREL_OK)
        st = kestrel_calibrator_add(cal, buf, &err);
      if (st) {
        cli_error("%s: %s", path, err.message);
        goto done;
      }
      if (ps.tty)
        draw_bar("calibrate", k + 1, use);
    }
    if (kestrel_calibrator_count(cal) == 0) {
      cli_error("no calibration image could be used");
      goto done;
    }
  }
  if (kestrel_quantize(cal, &int8, &err)) {
    cli_error("%s", err.message);
    goto done;
  }
  if (report && kestrel_quantize_report_write(cal, report, &err)) {
    cli_error("%s", err.message);
    goto done;
  }
  kestrel_compile_options co = kestrel_compile_options_default();
  co.verbose = qo.verbose;
  co.sidecar = (const char *)sidecar_text;
  co.sidecar_size = sidecar_size;
  if (!optimize) {
    co.fuse = 0;
    co.layout_nhwc = 0;
    co.pack_weights = 0;
  }
  if (optimize && kestrel_model_optimize(int8, &co, &err)) {
    cli_error("optimizing the int8 model: %s", err.message);
    goto done;
  }
  if (kestrel_model_save(int8, out, &co, &err)) {
    cli_error("%s", err.message);
    goto done;
  }
  printf("%s -> %s: int8 (%s, %zu calibration image%s)\n", model_path, out,
         qo.dynamic ? "dynamic" : kestrel_calib_method_name(qo.method),
         kestrel_calibrator_count(cal),
         kestrel_calibrator_count(cal) == 1 ? "" : "s");
  rc = EXIT_OK;
done:
  free(buf);
  free(sidecar_text);
  if (files)
    free_list(files, nfiles);
  if (made_tmp)
    remove_dir(tmpdir);
  kestrel_calibrator_free(cal);
  kestrel_model_free(int8);
  kestrel_model_free(fp32);
  if (have_sidecar)
    kestrel_sidecar_free(&sc);
  return rc;
}
