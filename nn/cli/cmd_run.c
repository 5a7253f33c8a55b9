/* `kestrel run`: feed a model tensors (.npy, ONNX .pb) or preprocessed
 * images, write every output as .npy. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

#define MAX_INPUTS 64

static const char run_help[] =
    "usage: kestrel run MODEL [--input FILE]... --output-dir DIR\n"
    "                   [--input-shape N,C,H,W] [--config SIDECAR] [--json]\n"
    "                   [--threads N] [--no-optimize]\n"
    "\n"
    "Runs MODEL once. Each --input fills the next model input, in model\n"
    "order. FILE is a .npy array (C order, little-endian), an ONNX\n"
    "TensorProto .pb, or a .jpg/.png image preprocessed as the model's\n"
    "sidecar says (found by sha256, next to the model, or --config).\n"
    "Values are converted when the file's dtype differs from the input's.\n"
    "Without --input-shape, input 0's shape comes from its file or image.\n"
    "Writes DIR/output_<i>.npy (float32, or the output's integer type).\n"
    "\n"
    "  --input FILE         an input tensor or image (repeatable)\n"
    "  --output-dir DIR     where to write outputs (created if missing)\n"
    "  --input-shape SHAPE  fix input 0's shape, e.g. 1,3,640,640\n"
    "  --config FILE        sidecar for image inputs\n"
    "  --threads N          worker threads (default 1)\n"
    CLI_NO_OPTIMIZE_HELP
    "  --json               print a JSON summary on stdout\n"
    "  -h, --help           this text\n";

static double get_value(kestrel_dtype d, const void *p, size_t i) {
  switch (d) {
  case KESTREL_DTYPE_F32: return ((const float *)p)[i];
  case KESTREL_DTYPE_F64: return ((const double *)p)[i];
  case KESTREL_DTYPE_F16: return kestrel_f16_to_f32(((const uint16_t *)p)[i]);
  case KESTREL_DTYPE_I8: return ((const int8_t *)p)[i];
  case KESTREL_DTYPE_U8: return ((const uint8_t *)p)[i];
  case KESTREL_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
  case KESTREL_DTYPE_I16: return ((const int16_t *)p)[i];
  case KESTREL_DTYPE_I32: return ((const int32_t *)p)[i];
  case KESTREL_DTYPE_I64: return (double)((const int64_t *)p)[i];
  default: return 0;
  }
}

static void set_value(kestrel_dtype d, void *p, size_t i, double v) {
  switch (d) {
  case KESTREL_DTYPE_F32: ((float *)p)[i] = (float)v; break;
  case KESTREL_DTYPE_F64: ((double *)p)[i] = v; break;
  case KESTREL_DTYPE_F16: ((uint16_t *)p)[i] = kestrel_f32_to_f16((float)v); break;
  case KESTREL_DTYPE_I8: ((int8_t *)p)[i] = (int8_t)fmax(-128, fmin(127, v)); break;
  case KESTREL_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)fmax(0, fmin(255, v)); break;
  case KESTREL_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; break;
  case KESTREL_DTYPE_I16: ((int16_t *)p)[i] = (int16_t)fmax(-32768, fmin(32767, v)); break;
  case KESTREL_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)fmax(-2147483648.0, fmin(2147483647.0, v)); break;
  case KESTREL_DTYPE_I64: ((int64_t *)p)[i] = (int64_t)fmax(-9.2e18, fmin(9.2e18, v)); break;
  default: break;
  }
}

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcasecmp(s + n - m, suffix);
}

/* Copies a file tensor into a session input of the same shape. */
static int fill_input(kestrel_tensor *in, const cli_tensor *t,
                      const char *file) {
  int same = in->ndim == t->ndim;
  for (int d = 0; same && d < t->ndim; d++)
    same = in->dims[d] == t->dims[d];
  if (!same) {
    char a[128] = "", b[128] = "";
    size_t la = 0, lb = 0;
    for (int d = 0; d < in->ndim; d++)
      la += (size_t)snprintf(a + la, sizeof(a) - la, "%s%lld", d ? "," : "",
                             (long long)in->dims[d]);
    for (int d = 0; d < t->ndim; d++)
      lb += (size_t)snprintf(b + lb, sizeof(b) - lb, "%s%lld", d ? "," : "",
                             (long long)t->dims[d]);
    return cli_error("%s: shape [%s] does not match input '%s' [%s]", file, b,
                     in->name ? in->name : "", a);
  }
  size_t n = kestrel_tensor_numel(in);
  if (in->dtype == t->dtype)
    memcpy(in->data, t->data, kestrel_tensor_bytes(in));
  else
    for (size_t i = 0; i < n; i++)
      set_value(in->dtype, in->data, i, get_value(t->dtype, t->data, i));
  return EXIT_OK;
}

static kestrel_status load_tensor_file(const char *path, cli_tensor *t,
                                       kestrel_error *err) {
  if (has_suffix(path, ".npy"))
    return npy_load(path, t, err);
  if (has_suffix(path, ".pb"))
    return pb_load(path, t, err);
  /* Unknown suffix: .npy has a magic number, protobuf does not. */
  FILE *f = fopen(path, "rb");
  char magic[6] = {0};
  if (f) {
    size_t got = fread(magic, 1, 6, f);
    (void)got;
    fclose(f);
  }
  if (!memcmp(magic, "\x93NUMPY", 6))
    return npy_load(path, t, err);
  return pb_load(path, t, err);
}

int cmd_run(int argc, char **argv) {
  static const struct option opts[] = {
      {"input", required_argument, NULL, 'i'},
      {"output-dir", required_argument, NULL, 'o'},
      {"input-shape", required_argument, NULL, 's'},
      {"config", required_argument, NULL, 'c'},
      {"threads", required_argument, NULL, 't'},
      {"no-optimize", no_argument, NULL, 'N'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *inputs[MAX_INPUTS];
  int num_inputs = 0, json = 0;
  long threads = 1;
  int optimize = 1;
  const char *outdir = NULL, *config = NULL;
  kestrel_load_options lo = kestrel_load_options_default();
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'i':
      if (num_inputs >= MAX_INPUTS)
        return cli_usage_error("run ", "more than %d inputs", MAX_INPUTS);
      inputs[num_inputs++] = optarg;
      break;
    case 'o': outdir = optarg; break;
    case 'c': config = optarg; break;
    case 'j': json = 1; break;
    case 's':
      if (cli_parse_shape(optarg, &lo))
        return cli_usage_error("run ", "bad --input-shape '%s'", optarg);
      break;
    case 't':
      if (cli_parse_int(optarg, 1, 256, &threads))
        return cli_usage_error("run ", "bad --threads '%s'", optarg);
      break;
    case 'N': optimize = 0; break;
    case 'h': fputs(run_help, stdout); return EXIT_OK;
    default:
      return cli_usage_error("run ", "unknown or incomplete option '%s'",
                             argv[optind - 1]);
    }
  }
  if (optind != argc - 1)
    return cli_usage_error("run ", "want exactly one MODEL");
  if (!outdir)
    return cli_usage_error("run ", "--output-dir is required");
  const char *model_path = argv[optind];

  int rc = EXIT_ERROR;
  kestrel_error err;
  cli_tensor files[MAX_INPUTS];
  memset(files, 0, sizeof(files));
  cli_image images[MAX_INPUTS];
  memset(images, 0, sizeof(images));
  kestrel_sidecar sc;
  kestrel_sidecar_init(&sc);
  int have_sidecar = 0;
  kestrel_model *model = NULL;
  kestrel_session *session = NULL;

  for (int i = 0; i < num_inputs; i++) {
    if (path_is_image(inputs[i])) {
      if (image_load(inputs[i], &images[i], &err)) {
        cli_error("%s", err.message);
        goto done;
      }
      if (!have_sidecar) {
        if (cli_load_sidecar(model_path, config, &sc, &err)) {
          cli_error("%s", err.message);
          goto done;
        }
        have_sidecar = 1;
      }
    } else if (load_tensor_file(inputs[i], &files[i], &err)) {
      cli_error("%s", err.message);
      goto done;
    }
  }
  /* Input 0's shape follows its file unless given. */
  if (lo.input_shape_ndim == 0 && num_inputs > 0) {
    if (images[0].rgb) {
      int tw, th;
      if (kestrel_preprocess_size(&sc, images[0].width, images[0].height, &tw,
                                  &th, &err)) {
        cli_error("%s: %s", inputs[0], err.message);
        goto done;
      }
      int64_t nchw[4] = {1, 3, th, tw}, nhwc[4] = {1, th, tw, 3};
      memcpy(lo.input_shape,
             sc.layout == KESTREL_LAYOUT_NHWC ? nhwc : nchw, sizeof(nchw));
      lo.input_shape_ndim = 4;
    } else if (files[0].ndim > 0) {
      lo.input_shape_ndim = files[0].ndim;
      memcpy(lo.input_shape, files[0].dims, sizeof(files[0].dims));
    }
  }
  if (kestrel_model_load(model_path, &lo, &model, &err) ||
      cli_prepare_model(model, optimize, &err)) {
    cli_error("%s: %s", model_path, err.message);
    goto done;
  }
  size_t model_inputs = kestrel_model_num_inputs(model);
  if ((size_t)num_inputs != model_inputs) {
    cli_error("%s takes %zu inputs, %d given", model_path, model_inputs,
              num_inputs);
    goto done;
  }
  kestrel_session_options so = {.threads = (int)threads};
  if (kestrel_session_create(model, &so, &session, &err)) {
    cli_error("%s: %s", model_path, err.message);
    goto done;
  }
  for (int i = 0; i < num_inputs; i++) {
    kestrel_tensor *in = kestrel_session_input(session, (size_t)i);
    if (images[i].rgb) {
      kestrel_transform tf;
      if (kestrel_preprocess(&sc, images[i].rgb, images[i].width,
                             images[i].height, (size_t)images[i].width * 3,
                             in, &tf, &err)) {
        cli_error("%s: %s", inputs[i], err.message);
        goto done;
      }
    } else if (fill_input(in, &files[i], inputs[i])) {
      goto done;
    }
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (kestrel_session_run(session, &err)) {
    cli_error("%s: %s", model_path, err.message);
    goto done;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;

  if (mkdir(outdir, 0777) && errno != EEXIST) {
    cli_error("%s: %s", outdir, strerror(errno));
    goto done;
  }
  size_t nout = kestrel_model_num_outputs(model);
  if (json) {
    printf("{\"model\":");
    json_string(stdout, model_path);
    printf(",\"time_ms\":%.3f,\"outputs\":[", ms);
  }
  for (size_t i = 0; i < nout; i++) {
    const kestrel_tensor *t = kestrel_session_output(session, i);
    char path[4096];
    snprintf(path, sizeof(path), "%s/output_%zu.npy", outdir, i);
    if (npy_save(path, t, &err)) {
      if (json)
        printf("]}\n");
      cli_error("%s", err.message);
      goto done;
    }
    if (json) {
      printf("%s{\"name\":", i ? "," : "");
      json_string(stdout, t->name);
      printf(",\"shape\":[");
      for (int d = 0; d < t->ndim; d++)
        printf("%s%lld", d ? "," : "", (long long)t->dims[d]);
      printf("],\"dtype\":");
      json_string(stdout, kestrel_dtype_name(t->dtype));
      printf(",\"file\":");
      json_string(stdout, path);
      printf("}");
    }
  }
  if (json)
    printf("]}\n");
  rc = EXIT_OK;
done:
  if (session)
    kestrel_session_free(session);
  if (model)
    kestrel_model_free(model);
  for (int i = 0; i < num_inputs; i++) {
    cli_tensor_free(&files[i]);
    image_free(&images[i]);
  }
  kestrel_sidecar_free(&sc);
  return rc;
}
