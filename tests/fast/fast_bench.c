/* fast_bench: a development tool (not a test) for the fast path: loads a
 * model, optionally quantizes it in memory (calibrating on preprocessed
 * real photos given as .npy), runs the graph passes with pack_weights, and
 * times session runs. benchmarks/int8-vs-ort.sh uses the real CLI
 * (`kestrel compile/quantize/bench`); this tool compares modes in one go
 * and, with FAST_BENCH_LIST=1 in the environment, lists every Conv/Gemm
 * left unpacked and every other op with its output size and dtype.
 *
 *   fast_bench MODEL --shape 1,3,640,640 [--mode ref|fp32|int8]
 *              [--calib A.npy,B.npy,...] [--input X.npy] [--threads N]
 *              [--iters N] [--warmup N] [--export-onnx OUT.onnx]
 *
 * Prints one line: median_ms=... min_ms=... load_ms=... prepare_ms=...
 * weights_bytes=... arena_bytes=... peak_rss_kb=... packed=... nodes=...
 * mode=... threads=... isa=...
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <kestrel/quantize.h>

#include "fast_model.h"
#include "kernels.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int die(const char *msg, const char *detail) {
  fprintf(stderr, "fast_bench: %s%s%s\n", msg, detail ? ": " : "",
          detail ? detail : "");
  return 1;
}

/* Reads a little-endian float32 C-order .npy of exactly `count` values. */
static float *read_npy(const char *path, size_t count) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  unsigned char pre[10];
  float *data = NULL;
  if (fread(pre, 1, 10, f) == 10 && pre[0] == 0x93 &&
      !memcmp(pre + 1, "NUMPY", 5) && pre[6] == 1) {
    size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    char header[65536];
    if (hlen < sizeof header && fread(header, 1, hlen, f) == hlen) {
      header[hlen] = 0;
      if (strstr(header, "'<f4'") && strstr(header, "False")) {
        data = malloc(count * sizeof(float) + 1);
        if (data && fread(data, sizeof(float), count, f) != count) {
          free(data);
          data = NULL;
        }
      }
    }
  }
  fclose(f);
  return data;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static long peak_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *mode = "fp32", *calib = NULL, *input = NULL,
             *export_path = NULL;
  int64_t shape[4] = {0};
  int ndim = 0, threads = 1, iters = 20, warmup = 3;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--shape") && v) {
      char *end;
      const char *p = v;
      for (ndim = 0; ndim < 4 && *p; ndim++) {
        shape[ndim] = strtoll(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
      }
      i++;
    } else if (!strcmp(a, "--mode") && v) {
      mode = v, i++;
    } else if (!strcmp(a, "--calib") && v) {
      calib = v, i++;
    } else if (!strcmp(a, "--input") && v) {
      input = v, i++;
    } else if (!strcmp(a, "--export-onnx") && v) {
      export_path = v, i++;
    } else if (!strcmp(a, "--threads") && v) {
      threads = atoi(v), i++;
    } else if (!strcmp(a, "--iters") && v) {
      iters = atoi(v), i++;
    } else if (!strcmp(a, "--warmup") && v) {
      warmup = atoi(v), i++;
    } else if (a[0] != '-' && !model_path) {
      model_path = a;
    } else {
      return die("bad argument", a);
    }
  }
  if (!model_path || ndim != 4 || iters < 1)
    return die("usage: fast_bench MODEL --shape N,C,H,W [--mode ref|fp32|int8]"
               " [--calib A.npy,...] [--threads N] [--iters N]",
               NULL);
  size_t count = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
  kestrel_error err;
  memset(&err, 0, sizeof err);
  kestrel_model *m = NULL;
  double t0 = now_ms();
  int fast = strcmp(mode, "ref") != 0;
  int int8 = !strcmp(mode, "int8");
  /* int8 quantizes the loaded FP32 model first, then optimizes. */
  if (fm_load(model_path, shape, 4, fast && !int8, &m, &err) != KESTREL_OK)
    return die("load", err.message);
  double t_load = now_ms() - t0;
  if (int8) {
    kestrel_quantize_options qo = kestrel_quantize_options_default();
    kestrel_calibrator *cal = NULL;
    if (kestrel_calibrator_create(m, &qo, &cal, &err) != KESTREL_OK)
      return die("calibrator", err.message);
    char *list = strdup(calib ? calib : "");
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
      float *x = read_npy(tok, count);
      if (!x)
        return die("cannot read calibration tensor", tok);
      if (kestrel_calibrator_add(cal, x, &err) != KESTREL_OK)
        return die("calibrate", err.message);
      free(x);
    }
    free(list);
    if (!kestrel_calibrator_count(cal))
      return die("--mode int8 needs --calib", NULL);
    kestrel_model *q = NULL;
    if (kestrel_quantize(cal, &q, &err) != KESTREL_OK)
      return die("quantize", err.message);
    kestrel_calibrator_free(cal);
    kestrel_model_free(m);
    m = q;
    if (export_path && kestrel_export_onnx(m, export_path, &err) != KESTREL_OK)
      return die("export-onnx", err.message);
    kn_optimize_options opt = kn_optimize_options_default();
    opt.fuse = true;
    opt.layout_nhwc = true;
    opt.pack_weights = true;
    if (kn_optimize(m->graph, &opt, &err) != KESTREL_OK)
      return die("optimize", err.message);
  }
  double t_prep = now_ms() - t0;
  if (getenv("FAST_BENCH_LIST")) { /* which Conv/Gemm stayed unpacked */
    kn_graph *lg = m->graph;
    for (int i = 0; i < lg->num_nodes; i++) {
      kn_node *n = &lg->nodes[i];
      if (n->dead || kn_node_attr(n, "packed"))
        continue;
      if (n->op != KN_OP_CONV && n->op != KN_OP_GEMM &&
          n->op != KN_OP_CONV_TRANSPOSE) {
        kn_tensor *o = kn_out(lg, n, 0);
        fprintf(stderr, "other %s %s %lld act %lld\n", kn_op_name(n->op),
                kestrel_dtype_name(o->dtype), (long long)kn_tensor_numel(o),
                (long long)kn_attr_int(n, "activation", 0));
        continue;
      }
      kn_tensor *x = kn_in(lg, n, 0), *w = kn_in(lg, n, 1), *y = kn_out(lg, n, 0);
      if (n->op != KN_OP_CONV && n->op != KN_OP_GEMM &&
          n->op != KN_OP_CONV_TRANSPOSE)
        continue;
      fprintf(stderr, "unpacked %s %s x %s layout %lld act %lld w %s q%d y %s q%d inputs %d\n",
              kn_op_name(n->op), n->name, kestrel_dtype_name(x->dtype),
              (long long)kn_attr_int(n, "layout", 0),
              (long long)kn_attr_int(n, "activation", 0),
              kestrel_dtype_name(w->dtype), w->q_count,
              kestrel_dtype_name(y->dtype), y->q_count, n->num_inputs);
    }
  }
  int packed = 0, live = 0;
  size_t weights = 0;
  kn_graph *g = m->graph;
  for (int i = 0; i < g->num_nodes; i++) {
    live += !g->nodes[i].dead;
    packed += !g->nodes[i].dead && kn_node_attr(&g->nodes[i], "packed");
  }
  /* Constants some live node reads: what a compiled file would hold. */
  char *used = calloc((size_t)g->num_tensors + 1, 1);
  for (int i = 0; i < g->num_nodes; i++)
    for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].num_inputs; k++)
      if (g->nodes[i].inputs[k] >= 0)
        used[g->nodes[i].inputs[k]] = 1;
  for (int t = 0; t < g->num_tensors; t++)
    if (used[t] && g->tensors[t].kind == KN_TENSOR_CONSTANT)
      weights += kn_tensor_bytes(&g->tensors[t]);
  free(used);
  kestrel_session_options so;
  memset(&so, 0, sizeof so);
  so.threads = threads;
  kestrel_session *s = NULL;
  if (kestrel_session_create(m, &so, &s, &err) != KESTREL_OK)
    return die("session", err.message);
  kestrel_tensor *in = kestrel_session_input(s, 0);
  float *x = input ? read_npy(input, count) : NULL;
  if (input && !x)
    return die("cannot read input", input);
  for (size_t i = 0; i < count; i++)
    ((float *)in->data)[i] = x ? x[i] : (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  free(x);
  if (in->dtype != KESTREL_DTYPE_F32)
    return die("input is not float32", NULL);
  double *ms = malloc(sizeof(double) * (size_t)iters);
  for (int i = 0; i < warmup + iters; i++) {
    double a = now_ms();
    if (kestrel_session_run(s, &err) != KESTREL_OK)
      return die("run", err.message);
    if (i >= warmup)
      ms[i - warmup] = now_ms() - a;
  }
  qsort(ms, (size_t)iters, sizeof(double), cmp_double);
  double median = iters % 2 ? ms[iters / 2]
                            : (ms[iters / 2 - 1] + ms[iters / 2]) / 2;
  printf("median_ms=%.3f min_ms=%.3f load_ms=%.2f prepare_ms=%.2f "
         "weights_bytes=%zu arena_bytes=%zu peak_rss_kb=%ld packed=%d "
         "nodes=%d mode=%s threads=%d isa=%s\n",
         median, ms[0], t_load, t_prep, weights,
         kestrel_session_arena_bytes(s), peak_rss_kb(), packed, live, mode,
         threads, kn_isa_name(kn_kernels_get()->isa));
  free(ms);
  kestrel_session_free(s);
  kestrel_model_free(m);
  return 0;
}
