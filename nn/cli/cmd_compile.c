/* `kestrel compile`: optimize a model (fusion, one NHWC layout, packed
 * weights, memory plan) and save it as a .kestrel file that loads with one
 * mmap. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <kestrel/compile.h>

#include "cli.h"

static const char compile_help[] =
    "usage: kestrel compile MODEL -o OUT.kestrel [--verbose]\n"
    "                       [--input-shape N,C,H,W] [--config SIDECAR]\n"
    "                       [--no-fuse] [--no-nhwc] [--no-pack]\n"
    "\n"
    "Optimizes MODEL (ONNX, TFLite or .kestrel) and writes one compiled\n"
    "file: the fused graph, prepacked weights, the memory plan and the\n"
    "model's sidecar (found as 'kestrel detect' finds it, or --config).\n"
    "The compiled file fixes the input shape: dynamic dimensions come from\n"
    "--input-shape, else from the sidecar.\n"
    "\n"
    "  -o, --output FILE    where to write the .kestrel file\n"
    "  -v, --verbose        log every pass and what it changed\n"
    "  --input-shape SHAPE  fix input 0, e.g. 1,3,640,640\n"
    "  --config FILE        sidecar to embed\n"
    "  --no-fuse            skip the fusion passes\n"
    "  --no-nhwc            keep the source layout\n"
    "  --no-pack            keep plain weights (reference kernels)\n"
    "  -h, --help           this text\n";

static long long file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int cmd_compile(int argc, char **argv) {
  static const struct option opts[] = {
      {"output", required_argument, NULL, 'o'},
      {"verbose", no_argument, NULL, 'v'},
      {"input-shape", required_argument, NULL, 's'},
      {"config", required_argument, NULL, 'c'},
      {"no-fuse", no_argument, NULL, 'F'},
      {"no-nhwc", no_argument, NULL, 'N'},
      {"no-pack", no_argument, NULL, 'P'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *out = NULL, *config = NULL;
  kestrel_load_options lo = kestrel_load_options_default();
  kestrel_compile_options co = kestrel_compile_options_default();
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "o:vh", opts, NULL)) != -1) {
    switch (c) {
    case 'o': out = optarg; break;
    case 'v': co.verbose = 1; break;
    case 's':
      if (cli_parse_shape(optarg, &lo))
        return cli_usage_error("compile ", "bad --input-shape '%s'", optarg);
      break;
    case 'c': config = optarg; break;
    case 'F': co.fuse = 0; break;
    case 'N': co.layout_nhwc = 0; break;
    case 'P': co.pack_weights = 0; break;
    case 'h': fputs(compile_help, stdout); return EXIT_OK;
    default:
      return cli_usage_error("compile ", "unknown or incomplete option '%s'",
                             argv[optind - 1]);
    }
  }
  if (optind != argc - 1)
    return cli_usage_error("compile ", "want exactly one MODEL");
  if (!out)
    return cli_usage_error("compile ", "missing -o OUT.kestrel");
  const char *path = argv[optind];
  kestrel_error err;
  kestrel_model *m;
  double t0 = now_ms();
  lo.verbose = co.verbose; /* load-time folding is the first pass */
  if (cli_load_model(path, &lo, &m, &err) != KESTREL_OK)
    return cli_error("%s", err.message);
  kestrel_model_stats before;
  kestrel_model_get_stats(m, &before);

  /* The sidecar travels inside the compiled file. A .kestrel input keeps
   * its own unless --config replaces it. */
  uint8_t *sidecar = NULL;
  size_t sidecar_size = 0;
  const char *sidecar_from = NULL;
  char found[4096];
  if (config) {
    sidecar_from = config;
  } else if (kestrel_model_source_format(m) != KESTREL_FORMAT_KESTREL &&
             kestrel_sidecar_find(path, kestrel_model_sha256(m),
                                  cli_asset_dir(), found, sizeof(found),
                                  &err) == KESTREL_OK) {
    sidecar_from = found;
  }
  if (sidecar_from) {
    if (cli_read_file(sidecar_from, (size_t)1 << 20, &sidecar, &sidecar_size,
                      &err)) {
      kestrel_model_free(m);
      return cli_error("%s", err.message);
    }
    /* Refuse to embed a sidecar that would not parse at detect time. */
    kestrel_sidecar sc;
    if (kestrel_sidecar_parse((const char *)sidecar, sidecar_size,
                              sidecar_from, NULL, &sc, &err) != KESTREL_OK) {
      free(sidecar);
      kestrel_model_free(m);
      return cli_error("%s", err.message);
    }
    kestrel_sidecar_free(&sc);
    co.sidecar = (const char *)sidecar;
    co.sidecar_size = sidecar_size;
    if (co.verbose)
      fprintf(stderr, "kestrel: embedding sidecar %s\n", sidecar_from);
  } else if (co.verbose &&
             kestrel_model_source_format(m) != KESTREL_FORMAT_KESTREL) {
    fprintf(stderr, "kestrel: no sidecar found; compiling without one\n");
  }

  kestrel_status st = kestrel_model_optimize(m, &co, &err);
  if (st == KESTREL_OK)
    st = kestrel_model_save(m, out, &co, &err);
  double t1 = now_ms();
  if (st != KESTREL_OK) {
    free(sidecar);
    kestrel_model_free(m);
    return cli_error("%s", err.message);
  }
  kestrel_model_stats after;
  kestrel_model_get_stats(m, &after);
  kestrel_memory_report mem;
  memset(&mem, 0, sizeof(mem));
  kestrel_model_memory_plan(m, &mem, &err);
  printf("%s -> %s: %zu -> %zu nodes, %lld -> %lld bytes, arena %zu bytes "
         "(lower bound %zu), %.0f ms\n",
         path, out, before.num_nodes, after.num_nodes, file_size(path),
         file_size(out), mem.arena_bytes, mem.lower_bound, t1 - t0);
  free(sidecar);
  kestrel_model_free(m);
  return EXIT_OK;
}
