/* `kestrel bench`: latency (median and min over iterations) and peak
 * resident memory of one model. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"

static const char bench_help[] =
    "usage: kestrel bench MODEL [--threads N] [--iters N] [--warmup N]\n"
    "                     [--input-shape N,C,H,W] [--json] [--profile]\n"
    "                     [--no-optimize]\n"
    "\n"
    "Fills the inputs with fixed pseudo-random values, runs --warmup\n"
    "untimed iterations, then --iters timed ones, and reports the median\n"
    "and minimum latency in ms and the peak resident set (getrusage).\n"
    "When input 0 has dynamic dimensions and no --input-shape is given, the\n"
    "model's sidecar size is used (e.g. 960x960 for PP-OCR det). \"load\" is\n"
    "loading plus, for ONNX/TFLite, optimizing (see --no-optimize).\n"
    "\n"
    "  --threads N          worker threads (default 1)\n"
    "  --iters N            timed runs (default 20)\n"
    "  --warmup N           untimed runs first (default 3)\n"
    "  --input-shape SHAPE  fix input 0, e.g. 1,3,640,640\n"
    "  --json               {\"median_ms\",\"min_ms\",\"mean_ms\",\"peak_rss_kb\",...}\n"
    CLI_NO_OPTIMIZE_HELP
    "  --profile            also time every node: the nodes and the op types\n"
    "                       that cost most (mean ms per run, share of the total)\n"
    "  -h, --help           this text\n";

static int by_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Deterministic values in [-1, 1): timings must not depend on the run. */
static void fill_pseudo_random(kestrel_tensor *t) {
  uint32_t s = 12345;
  size_t n = kestrel_tensor_numel(t);
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    float v = (float)(s >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    switch (t->dtype) {
    case KESTREL_DTYPE_F32: ((float *)t->data)[i] = v; break;
    case KESTREL_DTYPE_F16: ((uint16_t *)t->data)[i] = kestrel_f32_to_f16(v); break;
    case KESTREL_DTYPE_U8: ((uint8_t *)t->data)[i] = (uint8_t)(s >> 24); break;
    case KESTREL_DTYPE_I8: ((int8_t *)t->data)[i] = (int8_t)(s >> 24); break;
    default: memset(t->data, 0, kestrel_tensor_bytes(t)); return;
    }
  }
}

static int by_total_desc(const void *a, const void *b) {
  double x = ((const kestrel_node_profile *)a)->total_ms;
  double y = ((const kestrel_node_profile *)b)->total_ms;
  return (x < y) - (x > y);
}

/* The 25 costliest nodes, then the time per op type (with its node count).
 * Profiled runs include the warm-up ones; means are per run. */
static void print_profile(const kestrel_session *session) {
  size_t n = kestrel_session_profile(session, NULL, 0);
  kestrel_node_profile *p = n ? calloc(n, sizeof(*p)) : NULL;
  if (!p)
    return;
  kestrel_session_profile(session, p, n);
  double total = 0;
  for (size_t i = 0; i < n; i++)
    total += p[i].total_ms;
  long runs = p[0].runs > 0 ? p[0].runs : 1;
  qsort(p, n, sizeof(*p), by_total_desc);
  printf("\nprofile: %zu nodes, %.3f ms per run in nodes (%ld runs)\n", n,
         total / (double)runs, runs);
  printf("%9s %6s  %-22s %-34s %s\n", "ms/run", "share", "op", "detail",
         "node");
  for (size_t i = 0; i < n && i < 25; i++)
    printf("%9.4f %5.1f%%  %-22s %-34s %s\n", p[i].total_ms / (double)runs,
           total > 0 ? 100.0 * p[i].total_ms / total : 0.0, p[i].op,
           p[i].detail, p[i].name);
  /* By op type: fold entries with the same op name (small n: quadratic). */
  printf("\n%9s %6s %6s  %s\n", "ms/run", "share", "nodes", "op");
  for (size_t i = 0; i < n; i++) {
    if (!p[i].op)
      continue;
    double sum = p[i].total_ms;
    int count = 1;
    for (size_t j = i + 1; j < n; j++)
      if (p[j].op && strcmp(p[j].op, p[i].op) == 0) {
        sum += p[j].total_ms;
        count++;
        p[j].op = NULL;
      }
    printf("%9.4f %5.1f%% %6d  %s\n", sum / (double)runs,
           total > 0 ? 100.0 * sum / total : 0.0, count, p[i].op);
  }
  free(p);
}

/* ,"profile":[{"name","op","detail","ms"}...] in execution order, ms per
 * run. */
static void print_profile_json(const kestrel_session *session) {
  size_t n = kestrel_session_profile(session, NULL, 0);
  kestrel_node_profile *p = n ? calloc(n, sizeof(*p)) : NULL;
  printf(",\"profile\":[");
  if (p) {
    kestrel_session_profile(session, p, n);
    for (size_t i = 0; i < n; i++) {
      printf("%s{\"name\":", i ? "," : "");
      json_string(stdout, p[i].name);
      printf(",\"op\":");
      json_string(stdout, p[i].op);
      printf(",\"detail\":");
      json_string(stdout, p[i].detail);
      printf(",\"ms\":%.6f}",
             p[i].runs ? p[i].total_ms / (double)p[i].runs : 0.0);
    }
  }
  printf("]");
  free(p);
}

int cmd_bench(int argc, char **argv) {
  static const struct option opts[] = {
      {"threads", required_argument, NULL, 't'},
      {"iters", required_argument, NULL, 'n'},
      {"warmup", required_argument, NULL, 'w'},
      {"input-shape", required_argument, NULL, 's'},
      {"json", no_argument, NULL, 'j'},
      {"profile", no_argument, NULL, 'p'},
      {"no-optimize", no_argument, NULL, 'N'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  long threads = 1, iters = 20, warmup = 3;
  int json = 0, profile = 0, optimize = 1;
  kestrel_load_options lo = kestrel_load_options_default();
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 't':
      if (cli_parse_int(optarg, 1, 256, &threads))
        return cli_usage_error("bench ", "bad --threads '%s'", optarg);
      break;
    case 'n':
      if (cli_parse_int(optarg, 1, 1000000, &iters))
        return cli_usage_error("bench ", "bad --iters '%s'", optarg);
      break;
    case 'w':
      if (cli_parse_int(optarg, 0, 1000000, &warmup))
        return cli_usage_error("bench ", "bad --warmup '%s'", optarg);
      break;
    case 's':
      if (cli_parse_shape(optarg, &lo))
        return cli_usage_error("bench ", "bad --input-shape '%s'", optarg);
      break;
    case 'j': json = 1; break;
    case 'p': profile = 1; break;
    case 'N': optimize = 0; break;
    case 'h': fputs(bench_help, stdout); return EXIT_OK;
    default:
      return cli_usage_error("bench ", "unknown or incomplete option '%s'",
                             argv[optind - 1]);
    }
  }
  if (optind != argc - 1)
    return cli_usage_error("bench ", "want exactly one MODEL");
  const char *path = argv[optind];

  kestrel_error err;
  kestrel_model *model;
  double t_load = now_ms();
  if (cli_load_model(path, &lo, &model, &err))
    return cli_error("%s", err.message);
  if (cli_prepare_model(model, optimize, &err)) {
    kestrel_model_free(model);
    return cli_error("%s: %s", path, err.message);
  }
  t_load = now_ms() - t_load;
  kestrel_session *session;
  kestrel_session_options so = {.threads = (int)threads, .profile = profile};
  if (kestrel_session_create(model, &so, &session, &err)) {
    kestrel_model_free(model);
    return cli_error("%s: %s", path, err.message);
  }
  for (size_t i = 0; i < kestrel_model_num_inputs(model); i++)
    fill_pseudo_random(kestrel_session_input(session, i));
  double *times = malloc((size_t)iters * sizeof(double));
  int rc = EXIT_OK;
  if (!times) {
    rc = cli_error("out of memory");
    goto done;
  }
  for (long i = 0; i < warmup + iters; i++) {
    double t0 = now_ms();
    if (kestrel_session_run(session, &err)) {
      rc = cli_error("%s: %s", path, err.message);
      goto done;
    }
    if (i >= warmup)
      times[i - warmup] = now_ms() - t0;
  }
  double sum = 0;
  for (long i = 0; i < iters; i++)
    sum += times[i];
  qsort(times, (size_t)iters, sizeof(double), by_double);
  double median = iters % 2 ? times[iters / 2]
                            : 0.5 * (times[iters / 2 - 1] + times[iters / 2]);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const kestrel_tensor *in0 = kestrel_model_input(model, 0);
  char shape[128] = "";
  size_t len = 0;
  for (int d = 0; in0 && d < in0->ndim; d++)
    len += (size_t)snprintf(shape + len, sizeof(shape) - len, "%s%lld",
                            d ? "," : "", (long long)in0->dims[d]);
  if (json) {
    printf("{\"model\":");
    json_string(stdout, path);
    printf(",\"input_shape\":[%s],\"threads\":%ld,\"iters\":%ld,"
           "\"warmup\":%ld,\"median_ms\":%.3f,\"min_ms\":%.3f,"
           "\"mean_ms\":%.3f,\"max_ms\":%.3f,\"load_ms\":%.3f,"
           "\"arena_bytes\":%zu,\"peak_rss_kb\":%ld",
           shape, threads, iters, warmup, median, times[0], sum / iters,
           times[iters - 1], t_load, kestrel_session_arena_bytes(session),
           ru.ru_maxrss);
    if (profile)
      print_profile_json(session);
    printf("}\n");
  } else {
    printf("model:       %s\ninput shape: [%s]\nthreads:     %ld\n"
           "iterations:  %ld (+%ld warm-up)\nmedian:      %.3f ms\n"
           "min:         %.3f ms\nmean:        %.3f ms\nload:        %.1f ms\n"
           "arena:       %.2f MiB\npeak RSS:    %ld KiB\n",
           path, shape, threads, iters, warmup, median, times[0], sum / iters,
           t_load, kestrel_session_arena_bytes(session) / 1048576.0,
           ru.ru_maxrss);
  }
  if (profile && !json)
    print_profile(session);
done:
  free(times);
  kestrel_session_free(session);
  kestrel_model_free(model);
  return rc;
}
