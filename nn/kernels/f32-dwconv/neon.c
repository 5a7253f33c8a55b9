/* NEON f32 depthwise convolution, NHWC, 8 channels per step.
 *
 * Contract: as kestrel_f32_dwconv__ref (kernels.h). Never touches memory
 * outside the tensors (channel tail via 8-float copies). Padding taps are
 * skipped. Tolerance: see kernels.h. 3x3/5x5 s1/s2 unrolled as in qs8.
 */
#include <arm_neon.h>
#include <assert.h>
#include <string.h>

#include "kernels_isa.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define CR KN_F32_DWCONV_CR

static ALWAYS_INLINE void pixel(const float *in, ptrdiff_t origin,
                                ptrdiff_t tap_dy, ptrdiff_t tap_dx, size_t C,
                                const float *packed, size_t kw, size_t taps,
                                size_t ky0, size_t ky1, size_t kx0,
                                size_t kx1, float *out, float32x4_t lo,
                                float32x4_t hi) {
  const size_t block = CR * (1 + taps);
  for (size_t c0 = 0; c0 < C; c0 += CR) {
    const size_t rest = C - c0 < CR ? C - c0 : CR;
    const float *blk = packed + (c0 / CR) * block;
    float32x4_t acc0 = vld1q_f32(blk), acc1 = vld1q_f32(blk + 4);
    const float *w = blk + CR;
    for (size_t ky = ky0; ky < ky1; ky++)
      for (size_t kx = kx0; kx < kx1; kx++) {
        const float *src =
            in + (origin + (ptrdiff_t)ky * tap_dy + (ptrdiff_t)kx * tap_dx + (ptrdiff_t)c0);
        const float *wt = w + (ky * kw + kx) * CR;
        float32x4_t x0, x1;
        if (rest == CR) {
          x0 = vld1q_f32(src);
          x1 = vld1q_f32(src + 4);
        } else {
          float tmp[CR] = {0};
          memcpy(tmp, src, rest * sizeof(float));
          x0 = vld1q_f32(tmp);
          x1 = vld1q_f32(tmp + 4);
        }
        acc0 = vfmaq_f32(acc0, x0, vld1q_f32(wt));
        acc1 = vfmaq_f32(acc1, x1, vld1q_f32(wt + 4));
      }
    acc0 = vminq_f32(vmaxq_f32(acc0, lo), hi);
    acc1 = vminq_f32(vmaxq_f32(acc1, lo), hi);
    if (rest == CR) {
      vst1q_f32(out + c0, acc0);
      vst1q_f32(out + c0 + 4, acc1);
    } else {
      float tmp[CR];
      vst1q_f32(tmp, acc0);
      vst1q_f32(tmp + 4, acc1);
      memcpy(out + c0, tmp, rest * sizeof(float));
    }
  }
}

static ALWAYS_INLINE void dwconv(const kn_dwconv_params *p, const float *in,
                                 const void *packed, float *out,
                                 float out_min, float out_max, const size_t kh,
                                 const size_t kw, const size_t sh,
                                 const size_t sw, const size_t dh,
                                 const size_t dw) {
  const size_t C = p->channels, taps = kh * kw;
  const float32x4_t lo = vdupq_n_f32(out_min), hi = vdupq_n_f32(out_max);
  const ptrdiff_t tap_dy = (ptrdiff_t)(dh * p->in_w * C), tap_dx = (ptrdiff_t)(dw * C);
  const ptrdiff_t H = (ptrdiff_t)p->in_h, W = (ptrdiff_t)p->in_w;
  for (size_t oy = 0; oy < p->out_h; oy++) {
    const ptrdiff_t iy0 = (ptrdiff_t)(oy * sh) - (ptrdiff_t)p->pad_top;
    size_t ky0 = 0, ky1 = kh;
    while (ky0 < kh && iy0 + (ptrdiff_t)(ky0 * dh) < 0) ky0++;
    while (ky1 > ky0 && iy0 + (ptrdiff_t)((ky1 - 1) * dh) >= H) ky1--;
    for (size_t ox = 0; ox < p->out_w; ox++) {
      const ptrdiff_t ix0 = (ptrdiff_t)(ox * sw) - (ptrdiff_t)p->pad_left;
      size_t kx0 = 0, kx1 = kw;
      while (kx0 < kw && ix0 + (ptrdiff_t)(kx0 * dw) < 0) kx0++;
      while (kx1 > kx0 && ix0 + (ptrdiff_t)((kx1 - 1) * dw) >= W) kx1--;
      const ptrdiff_t origin = (iy0 * W + ix0) * (ptrdiff_t)C;
      float *o = out + (oy * p->out_w + ox) * C;
      if (ky0 == 0 && ky1 == kh && kx0 == 0 && kx1 == kw)
        pixel(in, origin, tap_dy, tap_dx, C, packed, kw, taps, 0, kh, 0, kw, o,
              lo, hi);
      else
        pixel(in, origin, tap_dy, tap_dx, C, packed, kw, taps, ky0, ky1, kx0,
              kx1, o, lo, hi);
    }
  }
}

#define DEFINE_FIXED(KS, S)                                                    \
  static void kestrel_f32_dwconv_##KS##x##KS##s##S##__neon(                    \
      const kn_dwconv_params *p, const float *in, const void *packed,          \
      float *out, float out_min, float out_max) {                              \
    dwconv(p, in, packed, out, out_min, out_max, KS, KS, S, S, 1, 1);          \
  }
DEFINE_FIXED(3, 1)
DEFINE_FIXED(3, 2)
DEFINE_FIXED(5, 1)
DEFINE_FIXED(5, 2)

void kestrel_f32_dwconv__neon(const kn_dwconv_params *p,
                              const float *restrict in,
                              const void *restrict packed,
                              float *restrict out, float out_min,
                              float out_max) {
  assert(p->stride_h >= 1 && p->stride_w >= 1);
  const size_t kh = p->kernel_h, kw = p->kernel_w, sh = p->stride_h,
               sw = p->stride_w;
  if (kh == kw && sh == sw && sh <= 2 && p->dilation_h == 1 &&
      p->dilation_w == 1) {
    if (kh == 3 && sh == 1)
      return kestrel_f32_dwconv_3x3s1__neon(p, in, packed, out, out_min, out_max);
    if (kh == 3 && sh == 2)
      return kestrel_f32_dwconv_3x3s2__neon(p, in, packed, out, out_min, out_max);
    if (kh == 5 && sh == 1)
      return kestrel_f32_dwconv_5x5s1__neon(p, in, packed, out, out_min, out_max);
    if (kh == 5 && sh == 2)
      return kestrel_f32_dwconv_5x5s2__neon(p, in, packed, out, out_min, out_max);
  }
  dwconv(p, in, packed, out, out_min, out_max, kh, kw, sh, sw, p->dilation_h,
         p->dilation_w);
}
