/* Fast paths for the element-wise ops that dominate quantized CNNs once
 * their convolutions are packed: int8 Add and Mul (residual adds, SE-block
 * channel scaling) with the reference's exact float requantization, split
 * across the session's threads. */
#ifndef KESTREL_ELTWISE_FAST_H
#define KESTREL_ELTWISE_FAST_H

#include "graph.h"

/* Runs node n when it is an int8 Add/Mul of a shape the fast path covers
 * (same shapes, per-channel or scalar broadcast of one operand) and returns
 * true; returns false, having done nothing, otherwise. Bytes equal the
 * reference's: out = sat(rint(act(sa*(a-za) op sb*(b-zb)) / sy) + zy) with
 * the same float operations in the same order. */
bool kn_eltwise_fast_binary(const kn_exec *x, const kn_node *n);

/* Any one-input element-wise op on a per-tensor quantized 8-bit tensor is
 * a function of the byte: the reference itself (`ref`, the op's own run
 * function) computes it once over the 256 possible values into a table on
 * the stack, then the tensor is mapped through the table across the
 * threads. Returns true (with *st set) when it ran the node. Tensors
 * smaller than a few thousand elements are left to `ref` directly, which
 * is also what stops the table's own run from recursing. */
typedef kestrel_status (*kn_run_fn)(const kn_exec *x, const kn_node *n,
                                    kestrel_error *err);
bool kn_eltwise_fast_unary(const kn_exec *x, const kn_node *n, kn_run_fn ref,
                           kestrel_status *st, kestrel_error *err);

/* Per-tensor QuantizeLinear float32 -> int8 and DequantizeLinear int8 ->
 * float32 (the graph's edges and float islands), split across the threads,
 * with the reference's exact arithmetic: sat(rint(x / scale) + zero) (NaN
 * gives zero) and (float)(q - zero) * scale. */
void kn_quantize_f32_i8_fast(const kn_exec *x, const float *in, int8_t *out,
                             size_t count, float scale, int32_t zero);
void kn_dequantize_i8_f32_fast(const kn_exec *x, const int8_t *in, float *out,
                               size_t count, float scale, int32_t zero);

#endif
