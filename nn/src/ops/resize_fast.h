/* Fast path of Resize for the layout every NHWC graph has: rank 4, the
 * last axis (channels) unscaled, the batch axis one tap, H and/or W
 * interpolated (linear or cubic, float32 or 8-bit). Output pixels are
 * built from whole contiguous channel vectors of the input with the tap
 * tables the reference computes (pool.c, in the node's planned scratch),
 * so the arithmetic is the reference's, term for term and in the same
 * order: identical bytes for float32 and 8-bit tensors alike.
 */
#ifndef KESTREL_RESIZE_FAST_H
#define KESTREL_RESIZE_FAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph.h"

/* One source position of an output coordinate along one axis: element
 * offset (index times the axis's stride) and weight. Up to KN_RESIZE_TAPS
 * per coordinate; unused ones have weight 0. */
typedef struct kn_resize_tap {
  int64_t off;
  double w;
} kn_resize_tap;

#define KN_RESIZE_TAPS 4

/* Extra scratch bytes the fast path needs after the tap tables (one
 * double accumulator per channel, plus alignment). */
size_t kn_resize_fast_scratch(const kn_tensor *y);

/* Runs the resize when the shapes and taps fit (see above) and returns
 * true; false leaves everything to the reference loop. taps[a] holds
 * KN_RESIZE_TAPS entries per output coordinate of axis a, ntaps[a] the
 * most any coordinate uses, outside[a] a flag per coordinate
 * (tf_crop_and_resize extrapolation). scratch: at least
 * kn_resize_fast_scratch(y) bytes; output rows are split over pool's
 * threads when it holds one such accumulator per thread (identical bytes
 * for any thread count). */
struct kn_threadpool;
bool kn_resize_fast_run(const kn_tensor *x, kn_tensor *y,
                        const kn_resize_tap *const *taps, const int *ntaps,
                        const uint8_t *const *outside, void *scratch,
                        size_t scratch_bytes, struct kn_threadpool *pool);

#endif
