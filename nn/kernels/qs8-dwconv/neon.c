/* NEON int8 depthwise convolution, NHWC, 16 channels per step.
 *
 * Contract: as kestrel_qs8_dwconv__ref (kernels.h): in [H,W,C], out
 * [OH,OW,C] int8, dense, one image; zero points in [-128,127]; weights in
 * [-127,127]. Never touches memory outside the tensors (channel tail via
 * 16-byte copies). Bit-exact with the reference.
 *
 * x - a_zero_point is formed exactly in int16 (vsubl_s8), widened-multiplied
 * by the int16 weight into int32 (vmlal_s16). Padding taps are skipped.
 * 3x3 and 5x5 with stride 1 or 2 get unrolled copies for interior pixels.
 */
#include <arm_neon.h>
#include <assert.h>
#include <string.h>

#include "kernels_isa.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define CR KN_QS8_DWCONV_CR

typedef struct {
  float32x4_t lo, hi;
  int32x4_t zp;
  int8x8_t azp;
} dw_consts;

static ALWAYS_INLINE void mac_tap(int32x4_t acc[4], int8x16_t x,
                                  const int8_t *w, int8x8_t azp) {
  int16x8_t x0 = vsubl_s8(vget_low_s8(x), azp);
  int16x8_t x1 = vsubl_s8(vget_high_s8(x), azp);
  int8x16_t wv = vld1q_s8(w);
  int16x8_t w0 = vmovl_s8(vget_low_s8(wv)), w1 = vmovl_s8(vget_high_s8(wv));
  acc[0] = vmlal_s16(acc[0], vget_low_s16(x0), vget_low_s16(w0));
  acc[1] = vmlal_s16(acc[1], vget_high_s16(x0), vget_high_s16(w0));
  acc[2] = vmlal_s16(acc[2], vget_low_s16(x1), vget_low_s16(w1));
  acc[3] = vmlal_s16(acc[3], vget_high_s16(x1), vget_high_s16(w1));
}

static ALWAYS_INLINE int16x4_t requant4(int32x4_t acc, const float *scale,
                                        const dw_consts *k) {
  float32x4_t x = vmulq_f32(vcvtq_f32_s32(acc), vld1q_f32(scale));
  x = vminq_f32(vmaxq_f32(x, k->lo), k->hi);
  return vqmovn_s32(vaddq_s32(vcvtnq_s32_f32(x), k->zp));
}

static ALWAYS_INLINE int8x16_t finish(int32x4_t acc[4], const float *scale,
                                      const dw_consts *k) {
  int16x8_t q0 = vcombine_s16(requant4(acc[0], scale, k),
                              requant4(acc[1], scale + 4, k));
  int16x8_t q1 = vcombine_s16(requant4(acc[2], scale + 8, k),
                              requant4(acc[3], scale + 12, k));
  return vcombine_s8(vqmovn_s16(q0), vqmovn_s16(q1));
}

static ALWAYS_INLINE void pixel(const int8_t *in, ptrdiff_t origin,
                                ptrdiff_t tap_dy, ptrdiff_t tap_dx,
                                size_t C, const uint8_t *packed,
                                const float *scale, size_t kw, size_t taps,
                                size_t ky0, size_t ky1, size_t kx0,
                                size_t kx1, int8_t *out, const dw_consts *k) {
  const size_t block_bytes = CR * (sizeof(int32_t) + taps);
  for (size_t c0 = 0; c0 < C; c0 += CR) {
    const size_t rest = C - c0 < CR ? C - c0 : CR;
    const uint8_t *blk = packed + (c0 / CR) * block_bytes;
    int32x4_t acc[4];
    for (size_t j = 0; j < 4; j++)
      acc[j] = vld1q_s32((const int32_t *)blk + 4 * j);
    const int8_t *w = (const int8_t *)(blk + CR * sizeof(int32_t));
    for (size_t ky = ky0; ky < ky1; ky++)
      for (size_t kx = kx0; kx < kx1; kx++) {
        const int8_t *src =
            in + (origin + (ptrdiff_t)ky * tap_dy + (ptrdiff_t)kx * tap_dx + (ptrdiff_t)c0);
        int8x16_t x;
        if (rest == CR) {
          x = vld1q_s8(src);
        } else {
          int8_t tmp[CR] = {0};
          memcpy(tmp, src, rest);
          x = vld1q_s8(tmp);
        }
        mac_tap(acc, x, w + (ky * kw + kx) * CR, k->azp);
      }
    if (rest == CR) {
      vst1q_s8(out + c0, finish(acc, scale + c0, k));
    } else {
      float sc[CR] = {0};
      memcpy(sc, scale + c0, rest * sizeof(float));
      int8_t tmp[CR];
      vst1q_s8(tmp, finish(acc, sc, k));
      memcpy(out + c0, tmp, rest);
    }
  }
}

static ALWAYS_INLINE void dwconv(const kn_dwconv_params *p, const int8_t *in,
                                 int32_t a_zero_point, const void *packed,
                                 int8_t *out, const kn_qs8_requant *rq,
                                 const size_t kh, const size_t kw,
                                 const size_t sh, const size_t sw,
                                 const size_t dh, const size_t dw) {
  assert(a_zero_point >= -128 && a_zero_point <= 127);
  assert(rq->zero_point >= -128 && rq->zero_point <= 127);
  const size_t C = p->channels, taps = kh * kw;
  dw_consts k;
  k.lo = vdupq_n_f32((float)(rq->out_min - rq->zero_point));
  k.hi = vdupq_n_f32((float)(rq->out_max - rq->zero_point));
  k.zp = vdupq_n_s32(rq->zero_point);
  k.azp = vdup_n_s8((int8_t)a_zero_point);
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
      int8_t *o = out + (oy * p->out_w + ox) * C;
      if (ky0 == 0 && ky1 == kh && kx0 == 0 && kx1 == kw)
        pixel(in, origin, tap_dy, tap_dx, C, packed, rq->scale, kw, taps, 0,
              kh, 0, kw, o, &k);
      else
        pixel(in, origin, tap_dy, tap_dx, C, packed, rq->scale, kw, taps, ky0,
              ky1, kx0, kx1, o, &k);
    }
  }
}

#define DEFINE_FIXED(KS, S)                                                    \
  static void kestrel_qs8_dwconv_##KS##x##KS##s##S##__neon(                    \
      const kn_dwconv_params *p, const int8_t *in, int32_t azp,                \
      const void *packed, int8_t *out, const kn_qs8_requant *rq) {             \
    dwconv(p, in, azp, packed, out, rq, KS, KS, S, S, 1, 1);                   \
  }
DEFINE_FIXED(3, 1)
DEFINE_FIXED(3, 2)
DEFINE_FIXED(5, 1)
DEFINE_FIXED(5, 2)

void kestrel_qs8_dwconv__neon(const kn_dwconv_params *p,
                              const int8_t *restrict in, int32_t a_zero_point,
                              const void *restrict packed,
                              int8_t *restrict out, const kn_qs8_requant *rq) {
  const size_t kh = p->kernel_h, kw = p->kernel_w, sh = p->stride_h,
               sw = p->stride_w;
  if (kh == kw && sh == sw && sh <= 2 && p->dilation_h == 1 &&
      p->dilation_w == 1) {
    if (kh == 3 && sh == 1)
      return kestrel_qs8_dwconv_3x3s1__neon(p, in, a_zero_point, packed, out, rq);
    if (kh == 3 && sh == 2)
      return kestrel_qs8_dwconv_3x3s2__neon(p, in, a_zero_point, packed, out, rq);
    if (kh == 5 && sh == 1)
      return kestrel_qs8_dwconv_5x5s1__neon(p, in, a_zero_point, packed, out, rq);
    if (kh == 5 && sh == 2)
      return kestrel_qs8_dwconv_5x5s2__neon(p, in, a_zero_point, packed, out, rq);
  }
  dwconv(p, in, a_zero_point, packed, out, rq, kh, kw, sh, sw, p->dilation_h,
         p->dilation_w);
}
