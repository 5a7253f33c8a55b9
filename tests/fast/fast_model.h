/* Loading a model onto the fast path for tests and benchmarks: load, then
 * run the graph passes (fusion, NHWC layout, pack_weights) on the loaded
 * graph in place, as `kestrel compile` does before writing a file. */
#ifndef KESTREL_TESTS_FAST_MODEL_H
#define KESTREL_TESTS_FAST_MODEL_H

#include <kestrel/model.h>
#include <kestrel/run.h>

#include "model_internal.h"
#include "passes/passes.h"

/* fast = 0: the model as loaded (reference ops, NCHW); 1: optimized and
 * packed. shape may be NULL (the model's own input shape). */
static inline kestrel_status fm_load(const char *path, const int64_t *shape,
                                     int ndim, int fast, kestrel_model **out,
                                     kestrel_error *err) {
  kestrel_load_options lo = kestrel_load_options_default();
  if (shape) {
    lo.input_shape_ndim = ndim;
    for (int i = 0; i < ndim; i++)
      lo.input_shape[i] = shape[i];
  }
  kestrel_status st = kestrel_model_load(path, &lo, out, err);
  if (st != KESTREL_OK || !fast)
    return st;
  kn_optimize_options opt = kn_optimize_options_default();
  opt.fuse = true;
  opt.layout_nhwc = true;
  opt.pack_weights = true;
  st = kn_optimize((*out)->graph, &opt, err);
  if (st != KESTREL_OK) {
    kestrel_model_free(*out);
    *out = NULL;
  }
  return st;
}

#endif
