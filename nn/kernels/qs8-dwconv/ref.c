/* Portable C reference of the qs8 depthwise convolution (any kernel size,
 * stride, dilation, padding): the oracle for the SIMD kernels.
 *
 * Contract: in [H,W,C] int8, out [OH,OW,C] int8 (one image, NHWC, dense);
 * a_zero_point and rq->zero_point in [-128,127]; packed from
 * kn_qs8_dwconv_pack(C, KH, KW, ...). acc = bias + sum over taps inside the
 * image of w * (x - a_zero_point).
 */
#include <assert.h>
#include <string.h>

#include "kernels.h"

void kestrel_qs8_dwconv__ref(const kn_dwconv_params *p,
                             const int8_t *restrict in, int32_t a_zero_point,
                             const void *restrict packed,
                             int8_t *restrict out, const kn_qs8_requant *rq) {
  assert(a_zero_point >= -128 && a_zero_point <= 127);
  assert(p->stride_h >= 1 && p->stride_w >= 1);
  assert(p->dilation_h >= 1 && p->dilation_w >= 1);
  const size_t C = p->channels, taps = p->kernel_h * p->kernel_w;
  const size_t block_bytes = KN_QS8_DWCONV_CR * (sizeof(int32_t) + taps);
  for (size_t oy = 0; oy < p->out_h; oy++)
    for (size_t ox = 0; ox < p->out_w; ox++)
      for (size_t ch = 0; ch < C; ch++) {
        const uint8_t *blk =
            (const uint8_t *)packed + (ch / KN_QS8_DWCONV_CR) * block_bytes;
        size_t lane = ch % KN_QS8_DWCONV_CR;
        /* Unsigned: wraps like the SIMD lanes for absurd biases. */
        uint32_t acc;
        memcpy(&acc, blk + lane * sizeof(int32_t), sizeof acc);
        const int8_t *w =
            (const int8_t *)(blk + KN_QS8_DWCONV_CR * sizeof(int32_t));
        for (size_t ky = 0; ky < p->kernel_h; ky++) {
          /* Signed position: padding sits at negative coordinates. */
          ptrdiff_t iy = (ptrdiff_t)(oy * p->stride_h + ky * p->dilation_h) -
                         (ptrdiff_t)p->pad_top;
          if (iy < 0 || iy >= (ptrdiff_t)p->in_h)
            continue;
          for (size_t kx = 0; kx < p->kernel_w; kx++) {
            ptrdiff_t ix = (ptrdiff_t)(ox * p->stride_w + kx * p->dilation_w) -
                           (ptrdiff_t)p->pad_left;
            if (ix < 0 || ix >= (ptrdiff_t)p->in_w)
              continue;
            int32_t x = in[((size_t)iy * p->in_w + (size_t)ix) * C + ch];
            acc += (uint32_t)(w[(ky * p->kernel_w + kx) * KN_QS8_DWCONV_CR + lane] *
                              (x - a_zero_point));
          }
        }
        out[(oy * p->out_w + ox) * C + ch] =
            kn_qs8_requantize((int32_t)acc, rq->scale[ch], rq);
      }
}
