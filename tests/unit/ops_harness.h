/* Tiny harness for op unit tests: builds a one-node graph by hand, runs the
 * op's infer() and run() directly on buffers the test owns, and offers a
 * seeded random source. Header-only; each test includes it once. */
#ifndef KESTREL_OPS_HARNESS_H
#define KESTREL_OPS_HARNESS_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

/* xorshift64*: the same sequence on every machine. */
static uint64_t h_rng_state = 0x9E3779B97F4A7C15ull;

static inline void h_seed(uint64_t s) { h_rng_state = s * 2654435761ull + 1; }

static inline uint32_t h_rand(void) {
  h_rng_state ^= h_rng_state >> 12;
  h_rng_state ^= h_rng_state << 25;
  h_rng_state ^= h_rng_state >> 27;
  return (uint32_t)((h_rng_state * 2685821657736338717ull) >> 32);
}

/* Uniform integer in [lo, hi]. */
static inline int h_range(int lo, int hi) {
  return lo + (int)(h_rand() % (uint32_t)(hi - lo + 1));
}

static inline float h_uniform(float lo, float hi) {
  return lo + (hi - lo) * (float)(h_rand() >> 8) / 16777216.0f;
}

/* A tensor with owned data copied from src (or zeroed when src is NULL). */
static inline int h_tensor(kn_graph *g, const char *name, kestrel_dtype dt, int ndim,
                    const int64_t *dims, const void *src) {
  int t = kn_graph_add_tensor(g, name);
  if (t < 0)
    return -1;
  void *p = kn_tensor_alloc_data(&g->tensors[t], dt, ndim, dims);
  if (!p)
    return -1;
  if (src)
    memcpy(p, src, kn_tensor_bytes(&g->tensors[t]));
  return t;
}

static inline int h_f32(kn_graph *g, const char *name, int ndim, const int64_t *dims,
                 const float *src) {
  return h_tensor(g, name, KESTREL_DTYPE_F32, ndim, dims, src);
}

static inline int h_i64(kn_graph *g, const char *name, int count,
                 const int64_t *values) {
  int64_t d = count;
  return h_tensor(g, name, KESTREL_DTYPE_I64, 1, &d, values);
}

/* An output tensor: shape comes from infer(). */
static inline int h_output(kn_graph *g, const char *name) {
  return kn_graph_add_tensor(g, name);
}

/* Runs node ni: infer, allocate outputs (and scratch), run. */
static inline kestrel_status h_run_node(kn_graph *g, int ni, kestrel_error *err) {
  kn_node *n = &g->nodes[ni];
  const kn_op_info *op = kn_op_get(n->op);
  if (!op) {
    snprintf(err->message, sizeof(err->message), "op %d not registered",
             (int)n->op);
    return KESTREL_ERROR_UNSUPPORTED;
  }
  kestrel_status st = op->infer(g, n, err);
  if (st != KESTREL_OK)
    return st;
  for (int i = 0; i < n->num_outputs; i++) {
    kn_tensor *t = kn_out(g, n, i);
    if (!t || t->optional_absent)
      continue;
    size_t bytes = kn_tensor_bytes(t);
    if (t->data_owned)
      free(t->data);
    /* Poison so that unwritten outputs show up. */
    t->data = malloc(bytes ? bytes : 1);
    if (!t->data)
      return KESTREL_ERROR_OUT_OF_MEMORY;
    memset(t->data, 0x7f, bytes);
    t->data_owned = true;
  }
  size_t sb = op->scratch ? op->scratch(g, n) : 0;
  void *scratch = sb ? malloc(sb) : NULL;
  kn_exec x = {g, scratch, sb, 1, NULL};
  st = op->run(&x, n, err);
  free(scratch);
  return st;
}

static inline float *h_data(kn_graph *g, int t) { return g->tensors[t].data; }

/* Failure bookkeeping: every failure prints its case description. */
static int h_failures;

static inline void h_fail(const char *what, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void h_fail(const char *what, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAIL %s: ", what);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  h_failures++;
}

/* Compares got against want with a relative+absolute tolerance; returns
 * the index of the first mismatch or -1. */
static inline int64_t h_compare(const float *got, const float *want, int64_t n,
                         float tol) {
  for (int64_t i = 0; i < n; i++) {
    if (got[i] == want[i]) /* also equal infinities */
      continue;
    float d = fabsf(got[i] - want[i]);
    if (!(d <= tol * (1.0f + fabsf(want[i]))))
      return i;
  }
  return -1;
}

static inline void h_fill(float *p, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    p[i] = h_uniform(-1.0f, 1.0f);
}

static inline int64_t h_numel(int ndim, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= dims[i];
  return n;
}

/* NC... <-> N...C for a tensor with nsp spatial dims. */
static inline void h_to_nhwc(const float *src, float *dst, int64_t n, int64_t c,
                      int64_t plane) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t p = 0; p < plane; p++)
        dst[(i * plane + p) * c + ch] = src[(i * c + ch) * plane + p];
}

static inline void h_from_nhwc(const float *src, float *dst, int64_t n, int64_t c,
                        int64_t plane) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t p = 0; p < plane; p++)
        dst[(i * c + ch) * plane + p] = src[(i * plane + p) * c + ch];
}

static inline void h_dims_str(char *buf, size_t cap, int ndim, const int64_t *dims) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, cap - o, "[");
  for (int i = 0; i < ndim && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? "," : "",
                          (long long)dims[i]);
  if (o < cap)
    snprintf(buf + o, cap - o, "]");
}

#endif
