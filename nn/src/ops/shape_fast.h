/* Fast paths for the two data-movement ops of NHWC int8 graphs: Pad in
 * constant mode (BlazeFace's channel padding, spatial pads) and Transpose
 * where it is a batched 2-D transpose (the NCHW -> NHWC input transpose
 * and its inverse). Pure byte movement, so the bytes are the reference's
 * by construction; each returns false, having done nothing, for a case
 * that is not its own, and the reference then runs. Work is split across
 * the session's threads by output rows or tiles. */
#ifndef KESTREL_SHAPE_FAST_H
#define KESTREL_SHAPE_FAST_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

/* Constant-mode Pad of x into y (dense, same dtype; element size 1, 2, 4
 * or 8) with non-negative pads pb/pe per axis (x->ndim of each) and the
 * pad value as the element's bytes (value[0..es)). Each output row (last
 * axis) is a fill, one copy of the source row, a fill; rows wholly in the
 * pad are fills. */
bool kn_pad_constant_fast(const kn_exec *ex, const kn_tensor *x, kn_tensor *y,
                          const int64_t *pb, const int64_t *pe,
                          const uint8_t *value);

/* Transpose of x into y by perm (x->ndim entries, a permutation) when,
 * after dropping size-1 axes and merging axes that stay adjacent, it is
 * [B, R, C] -> [B, C, R] (or [R, C] -> [C, R]): a tiled copy, with a
 * shuffle kernel for R = 3 of 1- or 4-byte elements (an RGB plane set,
 * uint8 or float32, to interleaved). */
bool kn_transpose_fast(const kn_exec *ex, const kn_tensor *x, kn_tensor *y,
                       const int *perm);

#endif
