/* The per-ISA pieces of the fused frame -> tensor preprocessing
 * (kestrel/preprocess.h; the driver is preprocess/image.c).
 *
 * The driver walks the tensor rows. For a row that shrinks by 2x or more it
 * sums the footprint's source rows of every plane into uint32 accumulators
 * (rowacc: the only pass that touches every source byte), then sums each
 * tensor pixel's columns (exact integers, shared C) and takes the mean; a
 * bilinear row reads its four taps directly. The output pass turns the
 * per-channel values of a run of tensor pixels into the tensor: Y'CbCr ->
 * RGB, channel order, normalization, rounding/quantization, NCHW or NHWC.
 *
 * Every path gives identical bytes: rowacc is integer; the output pass does
 * the same IEEE float operations in the same order (files build with
 * -ffp-contract=off; no FMA) and rounds half to even (lrintf, cvtps2dq,
 * fcvtns).
 */
#ifndef KESTREL_PREPROCESS_KERNELS_H
#define KESTREL_PREPROCESS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* acc[i] = (first ? 0 : acc[i]) + weight * row[i] for i < n.
 * weight in [1, 256]; the caller keeps every acc[i] below 2^32. */
typedef void (*kn_u8_rowacc_fn)(const uint8_t *restrict row, size_t n,
                                uint32_t weight, uint32_t *restrict acc,
                                int first);

typedef enum kn_pp_dtype {
  KN_PP_F32 = 0,
  KN_PP_U8 = 1,
  KN_PP_I8 = 2,
} kn_pp_dtype;

/* What the output pass does with one tensor pixel whose stored values are
 * (c0, c1, c2), floats in [0, 255] (R, G, B or Y, U, V):
 *   yuv: R,G,B = clamp(YUV -> RGB with the coefficients, 0, 255)
 *   px[c] = RGB[source[c]]                       (channel order, BGR models)
 *   F32:            out = px * mul[c] + add[c]
 *   U8/I8, !quant:  out = lrintf(px) (- 128 for I8)   (raw pixels)
 *   U8/I8, quant:   v = px * mul[c] + add[c];
 *                   out = clamp(lrintf(clamp(v * qinv, lo - zp, hi - zp)) + zp)
 *                   with [lo, hi] the dtype's range.
 * NHWC writes 3 consecutive elements per pixel; NCHW writes channel c at
 * dst + c * channel_stride (elements), one per pixel. */
typedef struct kn_pp_output {
  int yuv;
  float y_offset, y_scale, c_scale;
  float cr_r, cb_g, cr_g, cb_b;
  int source[3];
  kn_pp_dtype dtype;
  int quant;
  float mul[3], add[3];
  float qinv;
  int32_t zero_point;
  int nhwc;
  size_t channel_stride;
} kn_pp_output;

/* Writes n pixels; dst points at pixel 0's channel-0 element. */
typedef void (*kn_pp_output_fn)(const kn_pp_output *p,
                                const float *restrict c0,
                                const float *restrict c1,
                                const float *restrict c2, size_t n,
                                void *restrict dst);

typedef struct kn_pp_kernels {
  kn_isa isa;
  kn_u8_rowacc_fn rowacc;
  kn_pp_output_fn output;
} kn_pp_kernels;

void kestrel_u8_rowacc__ref(const uint8_t *restrict row, size_t n,
                            uint32_t weight, uint32_t *restrict acc,
                            int first);
void kestrel_pp_output__ref(const kn_pp_output *p, const float *restrict c0,
                            const float *restrict c1,
                            const float *restrict c2, size_t n,
                            void *restrict dst);
void kestrel_u8_rowacc__avx2(const uint8_t *restrict row, size_t n,
                             uint32_t weight, uint32_t *restrict acc,
                             int first);
void kestrel_pp_output__avx2(const kn_pp_output *p, const float *restrict c0,
                             const float *restrict c1,
                             const float *restrict c2, size_t n,
                             void *restrict dst);
void kestrel_u8_rowacc__neon(const uint8_t *restrict row, size_t n,
                             uint32_t weight, uint32_t *restrict acc,
                             int first);
void kestrel_pp_output__neon(const kn_pp_output *p, const float *restrict c0,
                             const float *restrict c1,
                             const float *restrict c2, size_t n,
                             void *restrict dst);

/* The table for one ISA (NULL if not compiled in or not on this CPU), and
 * for the active one (kn_isa_detect, KESTREL_ISA). */
const kn_pp_kernels *kn_pp_kernels_for(kn_isa isa);
const kn_pp_kernels *kn_pp_kernels_get(void);

/* kestrel_preprocess_image with a given kernel table (tests compare ISAs
 * through the whole driver). */
struct kestrel_sidecar;
struct kestrel_image;
struct kestrel_crop;
struct kestrel_tensor;
struct kestrel_transform;
struct kestrel_error;
/* Image (iw x ih) -> tensor (tw x th) placement for the sidecar's resize
 * mode (stretch, letterbox, PaddleOCR pad-right): scales and padding.
 * Shared by this driver and kestrel_preprocess (nn/src/decode/sidecar.c)
 * so that both always map boxes back the same way. */
void kn_preprocess_make_transform(const struct kestrel_sidecar *sc, int iw,
                                  int ih, int tw, int th,
                                  struct kestrel_transform *tf);
int kn_preprocess_image_with(const kn_pp_kernels *k,
                             const struct kestrel_sidecar *sc,
                             const struct kestrel_image *img,
                             const struct kestrel_crop *crop,
                             struct kestrel_tensor *input,
                             struct kestrel_transform *tf, void *scratch,
                             size_t scratch_size, struct kestrel_error *err);

#endif
