/* `kestrel`: inspect, run, benchmark models and run their decoders from
 * the command line. Exit status: 0 success, 1 error (one line on stderr),
 * 2 bad usage. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
  fputs("usage: kestrel COMMAND [ARGS...]\n"
        "\n"
        "commands:\n"
        "  info MODEL     inputs, outputs, ops, parameters and MACs\n"
        "  run MODEL      run on .npy/.pb/image inputs, write outputs as .npy\n"
        "  detect MODEL IMAGE...  run the model's decoder on images\n"
        "  bench MODEL    measure latency and peak memory\n"
        "  compile MODEL -o OUT.kestrel  optimize and save a compiled model\n"
        "  quantize MODEL --calib DIR -o OUT.kestrel  post-training INT8\n"
        "  export-onnx IN.kestrel -o OUT.onnx  a model as ONNX (QDQ for INT8)\n"
        "\n"
        "'kestrel COMMAND --help' describes each command.\n"
        "Exit status: 0 success, 1 error, 2 bad usage.\n",
        f);
}

int main(int argc, char **argv) {
  if (argc < 2)
    return cli_usage_error("", "missing command");
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return EXIT_OK;
  }
  if (!strcmp(cmd, "info"))
    return cmd_info(argc - 1, argv + 1);
  if (!strcmp(cmd, "run"))
    return cmd_run(argc - 1, argv + 1);
  if (!strcmp(cmd, "detect"))
    return cmd_detect(argc - 1, argv + 1);
  if (!strcmp(cmd, "bench"))
    return cmd_bench(argc - 1, argv + 1);
  if (!strcmp(cmd, "compile"))
    return cmd_compile(argc - 1, argv + 1);
  if (!strcmp(cmd, "quantize"))
    return cmd_quantize(argc - 1, argv + 1);
  if (!strcmp(cmd, "export-onnx"))
    return cmd_export_onnx(argc - 1, argv + 1);
  return cli_usage_error("", "unknown command '%s'", cmd);
}
