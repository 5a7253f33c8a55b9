/* Fast paths for the ops that dominate CNNs once their convolutions are
 * packed: Add and Mul (residual adds, SE-block channel scaling; int8 with
 * the reference's exact float requantization), 8-bit tables for one-input
 * ops, Quantize/DequantizeLinear, NHWC global average and max pooling.
 * Every one gives the reference's bytes and splits its work across the
 * session's threads; each returns false when a case is not its own, and
 * the reference then runs as before. */
#ifndef KESTREL_ELTWISE_FAST_H
#define KESTREL_ELTWISE_FAST_H

#include "graph.h"

/* Runs node n when it is an int8 or float32 Add/Mul of a shape the fast
 * path covers (same shapes, per-channel or scalar broadcast of one operand;
 * no activation or a clamp one) and returns true; returns false, having
 * done nothing, otherwise. Bytes equal the reference's: int8 out =
 * sat(rint(act(sa*(a-za) op sb*(b-zb)) / sy) + zy), float32 out =
 * act(a op b), with the same float operations in the same order. */
bool kn_eltwise_fast_binary(const kn_exec *x, const kn_node *n);

/* The reference's int8 Add/Mul arithmetic on rows, for the ops above and
 * for epilogues that finish a fused Add (conv_fast.c's int8 residual):
 *   y = sat(rint(clamp(sa*(a-za) op sb*(b-zb), lo, hi) / sy) + zy)
 * with clamp(v) = v < lo ? lo : (v > hi ? hi : v) and every float step as
 * elementwise.c does it (NaN gives zy), so the bytes are the reference's.
 * Fill the first block, call kn_qs8_binary_prepare once, then run rows. */
typedef struct kn_qs8_binary {
  bool mul; /* Mul, else Add */
  float sa, sb, sy;
  int32_t za, zb, zy;
  float lo, hi; /* clamp activation on the real value; +-inf: none */
  /* set by kn_qs8_binary_prepare */
  bool avx2, vec;
  int32_t lo8, hi8;
} kn_qs8_binary;
void kn_qs8_binary_prepare(kn_qs8_binary *p);
/* Same-shape a and b, count elements; y may be a or b (element i is read
 * before it is written). */
void kn_qs8_binary_rows(const kn_qs8_binary *p, const int8_t *a,
                        const int8_t *b, int8_t *y, size_t count);

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

/* GlobalAveragePool on an NHWC tensor (float32, or 8-bit per-tensor):
 * per channel, the sum over pixels in double in pixel order, exactly as the
 * reference (pool.c) sums it, so the bytes are the same; the 8-bit terms
 * are the reference's dequantized floats, whose double sum is exact in any
 * order. Returns false (nothing done) for other tensors. */
bool kn_global_avgpool_nhwc_fast(const kn_exec *x, const kn_tensor *in,
                                 kn_tensor *out);

#endif
