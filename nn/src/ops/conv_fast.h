/* The fast execution path of Conv and Gemm: nodes whose weights the
 * `pack_weights` pass replaced by the kernels' packed bytes run here, on
 * nn/kernels through kn_kernels_get(), split over the session's threads.
 *
 * A packed node (int attribute "packed", KN_PACKED_*) has inputs
 *   [0] X: NHWC activation (Conv, "layout" = NHWC, rank 4) or [M, K] (Gemm)
 *   [1] packed weights: constant U8 1-D, bias folded in (kernels.h layouts)
 *   [2] int8 kinds: constant F32 [N] requantization scales
 *       in_scale * w_scale[n] / out_scale; f32 kinds: absent (-1)
 *   [3] optional residual, same shape and dtype as Y, added before the
 *       fused activation (a folded `Add`)
 * and attributes
 *   "packed_channels"  N, output channels (the weights' shape is gone)
 *   "kernel_shape"     [KH, KW] (Conv; required once packed)
 *   "strides", "dilations", "pads", "group", "activation*" as before
 *   "packed_a_zero_point"  qs8 gemm: X zero point folded into the bias
 *   int8 with residual: "sum_scale" / "sum_zero_point", the quantization
 *       of the conv's own result before the folded Add (the pass
 *       fuse_int8_residual_add sets them); Y carries the Add's output
 *       quantization. The conv result is requantized to
 *       (sum_scale, sum_zero_point) first and the Add then computed exactly
 *       as the reference Add does, so fusing changes no output byte.
 * int8 fused activations that are clamps (none/relu/relu6/relu_n1_to_1/
 * clip) become the requantization bounds; any other (hardswish, sigmoid,
 * hardsigmoid) is a table: the result is requantized to attributes
 * "act_in_scale"/"act_in_zero_point" (the activation's input range) and
 * mapped through input [4], a constant I8 [256] with
 *   lut[q + 128] = sat(round(act(act_in_scale * (q - act_in_zero_point))
 *                            / y_scale) + y_zero)
 * (no residual then). A table may also come with a clamp activation (or
 * none): fuse_int8_tables folds a following per-byte op into it, clamp
 * included; the requantization then goes to (act_in_scale,
 * act_in_zero_point) over the full int8 range and the table gives Y's
 * byte. f32 activations may be anything (non-clamps run on each finished
 * tile).
 *
 * ConvTranspose with strides equal to its kernel and no pads (PP-OCR det's
 * upsampling head) packs too, as kind 1/3: its KH x KW output blocks do
 * not overlap, so each input row and kernel row ky is one GEMM of the row's
 * pixels against block ky of the packed weights (KH blocks, each the GEMM
 * packing of N = KW * channels columns ordered (kx, channel), K = C); the
 * requant scales then have KW * channels entries.
 *
 * Work split: output rows (pixels) in static chunks across the pool, so the
 * bytes computed do not depend on the thread count. kxk convs im2col a
 * tile of rows at a time into the thread's scratch slice.
 */
#ifndef KESTREL_CONV_FAST_H
#define KESTREL_CONV_FAST_H

#include "graph.h"

/* Values of the "packed" attribute. Stored in files: append-only. */
enum {
  KN_PACKED_NONE = 0,
  KN_PACKED_F32_GEMM = 1,
  KN_PACKED_F32_DWCONV = 2,
  KN_PACKED_QS8_GEMM = 3,
  KN_PACKED_QS8_DWCONV = 4,
};

/* True when n carries a "packed" attribute (any value: infer rejects bad
 * ones, so a corrupt file never reaches the reference with a U8 weight). */
bool kn_node_is_packed(const kn_node *n);

kestrel_status kn_conv_fast_infer(kn_graph *g, kn_node *n,
                                  kestrel_error *err);
kestrel_status kn_conv_fast_run(const kn_exec *x, const kn_node *n,
                                kestrel_error *err);
/* Scratch per thread (im2col tile); 0 when none. */
size_t kn_conv_fast_scratch(kn_graph *g, const kn_node *n);
uint64_t kn_conv_fast_macs(kn_graph *g, const kn_node *n);

/* The pass that creates packed nodes is kn_pass_pack_weights (passes.h,
 * nn/src/passes/pack_weights.c). */

#endif
