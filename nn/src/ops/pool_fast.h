/* NHWC pooling fast paths, byte-identical to the reference loop of pool.c:
 * GlobalAveragePool for per-tensor quantized 8-bit tensors (the SE blocks
 * of PP-OCR cls) by integer byte sums, and MaxPool (int8, uint8, float32;
 * BlazeFace's 2x2/2 pools) by channel-vector maxima. */
#ifndef KESTREL_POOL_FAST_H
#define KESTREL_POOL_FAST_H

#include <stdbool.h>

#include "graph.h"

/* The reference (pool.c) sums, per channel and in double, the dequantized
 * floats (float)(q - xz) * xs, divides by the pixel count, rounds to float
 * and requantizes. Each term is an integer multiple of u = ulp(xs), so the
 * double sum is exact: u * sum(T[q]). T[q] = (q - xz) * M - d[q], with
 * M = xs / u and d a small rounding residue; the output is a monotone
 * function of the sum, so the bounds M * K - N * max d and M * K - N *
 * min d (K = sum of q - xz, N pixels) give the reference's byte whenever
 * they requantize alike, which is nearly always; a channel where they do
 * not is summed exactly, term by term. The byte sums K run in int16 lanes
 * (AVX2) widened to int32 every 128 pixels. Returns false, having done
 * nothing, for tensors it does not cover. */
bool kn_global_avgpool_q8_nhwc_fast(const kn_exec *ex, const kn_tensor *x,
                                    kn_tensor *y);

/* MaxPool of the dense NHWC tensor x ([N, H, W, C] or [N, W, C]) into y,
 * with the window the reference computed (xv, yv: kn_spatial_view of x
 * and y; w: kn_window_geometry): any kernel up to 64 taps, stride,
 * dilation, pads, ceil_mode. Per output pixel the channel vector is the
 * max over the valid taps, in the reference's tap order (for float32 the
 * reference's fold `v > acc` after the first tap, NaN and signed zeros
 * included); a window with no valid tap gives the reference's value of
 * -inf. 8-bit: dequantization does not decrease with the byte (x's scale
 * finite and > 0, else it declines), so the max byte's real is the max of
 * the reals; the requantization to y's parameters (x's when y has none)
 * is a 256-entry table of the reference's formula, skipped when it is the
 * identity. Rows of the output are split over the session's threads.
 * Returns false, having done nothing, for other tensors (and for x and y
 * sharing memory). */
struct kn_spatial;
struct kn_window;
bool kn_maxpool_2d_nhwc_fast(const kn_exec *ex, const kn_tensor *x,
                             kn_tensor *y, const struct kn_spatial *xv,
                             const struct kn_spatial *yv,
                             const struct kn_window *w);

#endif
