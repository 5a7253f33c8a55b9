/* `kestrel info`: what a model takes, gives and costs. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char info_help[] =
    "usage: kestrel info MODEL [--json] [--input-shape N,C,H,W]\n"
    "\n"
    "Prints the inputs and outputs (name, shape, dtype), a histogram of\n"
    "ops, the parameter count, multiply-accumulates for one run and the\n"
    "bytes of weights. Dynamic input dimensions are fixed by --input-shape,\n"
    "else by the model's sidecar size (PP-OCR det: 960x960).\n"
    "\n"
    "  --json               one JSON object on stdout\n"
    "  --input-shape SHAPE  fix input 0, e.g. 1,3,640,640\n"
    "  -h, --help           this text\n";

static void print_shape(FILE *f, const kestrel_tensor *t, int json) {
  fputc('[', f);
  for (int i = 0; i < t->ndim; i++)
    fprintf(f, "%s%lld", i ? (json ? "," : ", ") : "", (long long)t->dims[i]);
  fputc(']', f);
}

static void print_tensors(const kestrel_model *m, int outputs, int json) {
  size_t n = outputs ? kestrel_model_num_outputs(m) : kestrel_model_num_inputs(m);
  for (size_t i = 0; i < n; i++) {
    const kestrel_tensor *t =
        outputs ? kestrel_model_output(m, i) : kestrel_model_input(m, i);
    if (json) {
      printf("%s{\"name\":", i ? "," : "");
      json_string(stdout, t->name);
      printf(",\"shape\":");
      print_shape(stdout, t, 1);
      printf(",\"dtype\":");
      json_string(stdout, kestrel_dtype_name(t->dtype));
      printf("}");
    } else {
      printf("  %-24s ", t->name ? t->name : "");
      print_shape(stdout, t, 0);
      printf(" %s\n", kestrel_dtype_name(t->dtype));
    }
  }
}

int cmd_info(int argc, char **argv) {
  static const struct option opts[] = {
      {"json", no_argument, NULL, 'j'},
      {"input-shape", required_argument, NULL, 's'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int json = 0;
  kestrel_load_options lo = kestrel_load_options_default();
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': json = 1; break;
    case 's':
      if (cli_parse_shape(optarg, &lo))
        return cli_usage_error("info ", "bad --input-shape '%s'", optarg);
      break;
    case 'h': fputs(info_help, stdout); return EXIT_OK;
    default:
      return cli_usage_error("info ", "unknown or incomplete option '%s'",
                             argv[optind - 1]);
    }
  }
  if (optind != argc - 1)
    return cli_usage_error("info ", "want exactly one MODEL");
  const char *path = argv[optind];
  kestrel_model *m;
  kestrel_error err;
  if (cli_load_model(path, &lo, &m, &err) != KESTREL_OK)
    return cli_error("%s", err.message);

  kestrel_model_stats st;
  kestrel_model_get_stats(m, &st);
  const char *names[512];
  size_t counts[512];
  size_t nops = kestrel_model_op_histogram(m, names, counts, 512);
  if (nops > 512)
    nops = 512;
  kestrel_model_format mf = kestrel_model_source_format(m);
  const char *fmt = mf == KESTREL_FORMAT_TFLITE    ? "tflite"
                    : mf == KESTREL_FORMAT_KESTREL ? "kestrel"
                                                   : "onnx";
  if (json) {
    printf("{\"model\":");
    json_string(stdout, path);
    printf(",\"format\":\"%s\",\"sha256\":\"%s\",\"inputs\":[", fmt,
           kestrel_model_sha256(m));
    print_tensors(m, 0, 1);
    printf("],\"outputs\":[");
    print_tensors(m, 1, 1);
    printf("],\"nodes\":%zu,\"params\":%zu,\"macs\":%llu,"
           "\"weight_bytes\":%zu,\"ops\":{",
           st.num_nodes, st.num_params, (unsigned long long)st.macs,
           st.weight_bytes);
    for (size_t i = 0; i < nops; i++) {
      printf("%s", i ? "," : "");
      json_string(stdout, names[i]);
      printf(":%zu", counts[i]);
    }
    printf("}}\n");
  } else {
    printf("model:   %s (%s)\nsha256:  %s\ninputs:\n", path, fmt,
           kestrel_model_sha256(m));
    print_tensors(m, 0, 0);
    printf("outputs:\n");
    print_tensors(m, 1, 0);
    printf("nodes:   %zu\nparams:  %zu\nMACs:    %llu (%.3f G)\n"
           "weights: %zu bytes (%.2f MiB)\nops:\n",
           st.num_nodes, st.num_params, (unsigned long long)st.macs,
           st.macs / 1e9, st.weight_bytes, st.weight_bytes / 1048576.0);
    for (size_t i = 0; i < nops; i++)
      printf("  %-24s %zu\n", names[i], counts[i]);
  }
  kestrel_model_free(m);
  return EXIT_OK;
}
