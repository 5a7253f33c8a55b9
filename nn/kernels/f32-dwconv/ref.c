/* Portable C reference of the f32 depthwise convolution (any kernel size,
 * stride, dilation, padding): the oracle for the SIMD kernels.
 *
 * Contract: in [H,W,C] f32, out [OH,OW,C] f32 (one image, NHWC, dense);
 * padding reads 0; out = clamp(bias + sum w*x, out_min, out_max).
 */
#include <assert.h>

#include "kernels.h"

void kestrel_f32_dwconv__ref(const kn_dwconv_params *p,
                             const float *restrict in,
                             const void *restrict packed,
                             float *restrict out, float out_min,
                             float out_max) {
  assert(p->stride_h >= 1 && p->stride_w >= 1);
  assert(p->dilation_h >= 1 && p->dilation_w >= 1);
  const size_t C = p->channels, taps = p->kernel_h * p->kernel_w;
  const size_t block = KN_F32_DWCONV_CR * (1 + taps);
  for (size_t oy = 0; oy < p->out_h; oy++)
    for (size_t ox = 0; ox < p->out_w; ox++)
      for (size_t ch = 0; ch < C; ch++) {
        const float *blk = (const float *)packed + (ch / KN_F32_DWCONV_CR) * block;
        size_t lane = ch % KN_F32_DWCONV_CR;
        float acc = blk[lane];
        const float *w = blk + KN_F32_DWCONV_CR;
        for (size_t ky = 0; ky < p->kernel_h; ky++) {
          ptrdiff_t iy = (ptrdiff_t)(oy * p->stride_h + ky * p->dilation_h) -
                         (ptrdiff_t)p->pad_top;
          if (iy < 0 || iy >= (ptrdiff_t)p->in_h)
            continue;
          for (size_t kx = 0; kx < p->kernel_w; kx++) {
            ptrdiff_t ix = (ptrdiff_t)(ox * p->stride_w + kx * p->dilation_w) -
                           (ptrdiff_t)p->pad_left;
            if (ix < 0 || ix >= (ptrdiff_t)p->in_w)
              continue;
            acc += w[(ky * p->kernel_w + kx) * KN_F32_DWCONV_CR + lane] *
                   in[((size_t)iy * p->in_w + (size_t)ix) * C + ch];
          }
        }
        acc = acc < out_min ? out_min : acc;
        acc = acc > out_max ? out_max : acc;
        out[(oy * p->out_w + ox) * C + ch] = acc;
      }
}
