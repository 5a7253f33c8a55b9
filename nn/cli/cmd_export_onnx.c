/* `kestrel export-onnx`: a model (typically an INT8 .kestrel from
 * `kestrel quantize`) as an ONNX file, so ONNX Runtime can run the same
 * INT8 model. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <kestrel/quantize.h>

#include "cli.h"

static const char export_help[] =
    "usage: kestrel export-onnx MODEL -o OUT.onnx [--input-shape S]\n"
    "\n"
    "Writes MODEL (.kestrel, ONNX or TFLite) as ONNX, opset 13. Int8 tensors\n"
    "become QuantizeLinear/DequantizeLinear pairs around float ops (QDQ),\n"
    "weights int8 with a per-axis DequantizeLinear, biases int32; ONNX\n"
    "Runtime fuses them back into its int8 kernels. Graphs compiled to NHWC\n"
    "are written NCHW where ONNX requires it, with a Transpose at each graph\n"
    "input and output. Weights packed for Kestrel's fast kernels cannot be\n"
    "exported: quantize with --no-optimize for an exportable file.\n"
    "\n"
    "  -o, --output FILE    the .onnx file to write\n"
    "  --input-shape SHAPE  fix input 0 of a model with dynamic dimensions\n"
    "  -h, --help           this text\n";

int cmd_export_onnx(int argc, char **argv) {
  static const struct option opts[] = {
      {"output", required_argument, NULL, 'o'},
      {"input-shape", required_argument, NULL, 's'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *out = NULL;
  kestrel_load_options lo = kestrel_load_options_default();
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (c) {
    case 'o': out = optarg; break;
    case 's':
      if (cli_parse_shape(optarg, &lo))
        return cli_usage_error("export-onnx ", "bad --input-shape '%s'",
                               optarg);
      break;
    case 'h': fputs(export_help, stdout); return EXIT_OK;
    default:
      return cli_usage_error("export-onnx ",
                             "unknown or incomplete option '%s'",
                             argv[optind - 1]);
    }
  }
  if (optind != argc - 1)
    return cli_usage_error("export-onnx ", "want exactly one MODEL");
  if (!out)
    return cli_usage_error("export-onnx ", "missing -o OUT.onnx");
  kestrel_error err;
  kestrel_model *m;
  if (cli_load_model(argv[optind], &lo, &m, &err))
    return cli_error("%s", err.message);
  kestrel_status st = kestrel_export_onnx(m, out, &err);
  kestrel_model_free(m);
  if (st)
    return cli_error("%s", err.message);
  printf("%s -> %s\n", argv[optind], out);
  return EXIT_OK;
}
