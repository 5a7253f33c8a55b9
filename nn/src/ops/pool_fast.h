/* Integer fast path of GlobalAveragePool for per-tensor quantized 8-bit
 * NHWC tensors (the SE blocks of PP-OCR cls): per channel an integer sum
 * of the bytes, and from it the reference's exact result. */
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
 * not is summed exactly, term by term. Returns false, having done
 * nothing, for tensors it does not cover. */
bool kn_global_avgpool_q8_nhwc_fast(const kn_exec *ex, const kn_tensor *x,
                                    kn_tensor *y);

#endif
