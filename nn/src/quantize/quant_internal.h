/* Internals of post-training quantization (nn/src/quantize/): graph
 * cloning, an observing executor that lets calibration and the per-layer
 * report look at every tensor, per-tensor statistics and range selection,
 * and the rewrite of an FP32 graph into an INT8 one. */
#ifndef KESTREL_QUANT_INTERNAL_H
#define KESTREL_QUANT_INTERNAL_H

#include <kestrel/quantize.h>

#include "graph.h"

/* Bins of the per-tensor histogram, as the usual KL calibration uses. */
#define KQ_BINS 2048

/* --- graph helpers (observe.c) ------------------------------------------ */

/* Deep copy without dead nodes; tensor indices are kept. NULL on OOM. */
kn_graph *kq_graph_clone(const kn_graph *g);
/* Wraps a prepared graph as a public model (takes ownership of g). */
kestrel_status kq_model_wrap(kn_graph *g, const char *sha256,
                             kestrel_model_format format,
                             kestrel_model **out, kestrel_error *err);
/* The graph inside a public model. */
kn_graph *kq_model_graph(const kestrel_model *m);
const char *kq_model_sha(const kestrel_model *m);

/* Observing executor: runs a prepared graph node by node, each activation
 * in its own buffer, and calls `after` once a node's outputs are ready.
 * Buffers are freed after their last reader unless keep_all. */
typedef struct kq_exec {
  kn_graph *g; /* shallow copy of the source graph's tensor table */
  const kn_graph *src;
  void **buf;      /* per tensor, NULL when not live */
  int *last_use;   /* node index (in g) of the last reader, INT_MAX outputs */
  void *scratch;
  size_t scratch_bytes;
  int keep_all;
} kq_exec;

typedef kestrel_status (*kq_after_fn)(void *user, kq_exec *x, int node,
                                      kestrel_error *err);

kestrel_status kq_exec_init(kq_exec *x, const kn_graph *g, int keep_all,
                            kestrel_error *err);
/* Copies input data (float32 or the input's dtype, bytes of input 0..n)
 * and runs. inputs[i] has kn_tensor_bytes(input i) bytes. */
kestrel_status kq_exec_run(kq_exec *x, const void *const *inputs,
                           kq_after_fn after, void *user, kestrel_error *err);
/* Frees every live buffer (between runs when keep_all). */
void kq_exec_release(kq_exec *x);
void kq_exec_free(kq_exec *x);

/* --- statistics (calibrate.c) -------------------------------------------- */

typedef struct kq_stats {
  int seen;
  double min, max;
  double lo, hi; /* histogram range */
  double hist[KQ_BINS];
  /* Per-channel sums for rank >= 3 tensors, channels on axis 1 (NCHW) and
   * on the last axis (NHWC), for bias correction. */
  double *sum_c1, *sum_clast;
  int64_t n_c1, n_clast;
  double count_c1, count_clast;
} kq_stats;

/* Adds per-channel sums of a tensor (rank >= 3) to s. */
void kq_stats_add_channels(kq_stats *s, const float *v, int ndim,
                           const int64_t *dims);
void kq_stats_free_channels(kq_stats *s);

void kq_stats_add(kq_stats *s, const float *v, int64_t n);
/* Clip range by method (percentile in percent, e.g. 99.99). */
void kq_stats_range(const kq_stats *s, kestrel_calib_method method,
                    double percentile, double *lo, double *hi);
/* Asymmetric int8 parameters covering [lo, hi] (0 always exact). */
void kq_asym_params(double lo, double hi, float *scale, int32_t *zero);

/* --- the rewrite (quantize.c) ---------------------------------------------- */

/* Per float graph tensor: calibrated range, or has_range 0. */
typedef struct kq_range {
  int has_range;
  double lo, hi;
  /* Mean of each channel (NULL: unknown): axis 1 and last axis. */
  const double *sum_c1, *sum_clast;
  int64_t n_c1, n_clast;
  double count_c1, count_clast;
} kq_range;

/* Builds the INT8 graph from the prepared FP32 graph g. keep_float[i]
 * marks node i of g (by index) to stay float. Returns a prepared graph. */
kestrel_status kq_build_static(const kn_graph *g, const kq_range *ranges,
                               const unsigned char *keep_float, int verbose,
                               kn_graph **out, kestrel_error *err);
kestrel_status kq_build_dynamic(const kn_graph *g, int verbose,
                                kn_graph **out, kestrel_error *err);

/* Frees the data of constants no live node reads (replaced weights). */
void kq_drop_unused_constants(kn_graph *q);

/* Whether node n of g computes in int8 when quantized (op support). */
int kq_node_quantizable(const kn_graph *g, const kn_node *n);

#endif
