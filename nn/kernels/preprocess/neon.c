/* NEON (aarch64) preprocessing kernels: byte-exact with preprocess/ref.c.
 * rowacc widens 16 bytes at a time (vmovl + vmlal/vaddw); the output pass
 * does 4 tensor pixels per step with the reference's float operations in
 * its order, clamps by compare-and-select (FMAX/FMIN order signed zeros
 * differently from the reference's comparisons) and rounds with fcvtns
 * (half to even, as lrintf). */
#include <arm_neon.h>
#include <math.h>

#include "preprocess_kernels.h"

void kestrel_u8_rowacc__neon(const uint8_t *restrict row, size_t n,
                             uint32_t weight, uint32_t *restrict acc,
                             int first) {
  size_t i = 0;
  const uint16x4_t w4 = vdup_n_u16((uint16_t)weight);
  const int one = weight == 1;
  for (; i + 16 <= n; i += 16) {
    uint8x16_t v = vld1q_u8(row + i);
    uint16x8_t lo = vmovl_u8(vget_low_u8(v)), hi = vmovl_u8(vget_high_u8(v));
    uint32x4_t a0, a1, a2, a3;
    if (first) {
      a0 = a1 = a2 = a3 = vdupq_n_u32(0);
    } else {
      a0 = vld1q_u32(acc + i);
      a1 = vld1q_u32(acc + i + 4);
      a2 = vld1q_u32(acc + i + 8);
      a3 = vld1q_u32(acc + i + 12);
    }
    if (one) {
      a0 = vaddw_u16(a0, vget_low_u16(lo));
      a1 = vaddw_u16(a1, vget_high_u16(lo));
      a2 = vaddw_u16(a2, vget_low_u16(hi));
      a3 = vaddw_u16(a3, vget_high_u16(hi));
    } else {
      /* weight <= 256 and pixels <= 255: the u16 x u16 -> u32 product is
       * exact. */
      a0 = vmlal_u16(a0, vget_low_u16(lo), w4);
      a1 = vmlal_u16(a1, vget_high_u16(lo), w4);
      a2 = vmlal_u16(a2, vget_low_u16(hi), w4);
      a3 = vmlal_u16(a3, vget_high_u16(hi), w4);
    }
    vst1q_u32(acc + i, a0);
    vst1q_u32(acc + i + 4, a1);
    vst1q_u32(acc + i + 8, a2);
    vst1q_u32(acc + i + 12, a3);
  }
  for (; i < n; i++)
    acc[i] = (first ? 0 : acc[i]) + weight * row[i];
}

/* x < lo ? lo : x, then x > hi ? hi : x, exactly as the reference. */
static inline float32x4_t clamp_select(float32x4_t x, float32x4_t lo,
                                       float32x4_t hi) {
  x = vbslq_f32(vcltq_f32(x, lo), lo, x);
  return vbslq_f32(vcgtq_f32(x, hi), hi, x);
}

void kestrel_pp_output__neon(const kn_pp_output *p, const float *restrict c0,
                             const float *restrict c1,
                             const float *restrict c2, size_t n,
                             void *restrict dst) {
  const float32x4_t zero = vdupq_n_f32(0.0f), c255 = vdupq_n_f32(255.0f);
  const float32x4_t c128 = vdupq_n_f32(128.0f);
  const float32x4_t yoff = vdupq_n_f32(p->y_offset);
  const float32x4_t ysc = vdupq_n_f32(p->y_scale);
  const float32x4_t csc = vdupq_n_f32(p->c_scale);
  const float32x4_t cr_r = vdupq_n_f32(p->cr_r), cb_g = vdupq_n_f32(p->cb_g);
  const float32x4_t cr_g = vdupq_n_f32(p->cr_g), cb_b = vdupq_n_f32(p->cb_b);
  const int lo = p->dtype == KN_PP_I8 ? -128 : 0;
  const float32x4_t qlo = vdupq_n_f32((float)(lo - p->zero_point));
  const float32x4_t qhi = vdupq_n_f32(
      (float)((p->dtype == KN_PP_I8 ? 127 : 255) - p->zero_point));
  const float32x4_t qinv = vdupq_n_f32(p->qinv);
  const int32x4_t zp = vdupq_n_s32(p->quant ? p->zero_point : lo);
  float32x4_t mul[3], add[3];
  for (int c = 0; c < 3; c++) {
    mul[c] = vdupq_n_f32(p->mul[c]);
    add[c] = vdupq_n_f32(p->add[c]);
  }
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t rgb[3];
    float32x4_t a = vld1q_f32(c0 + i), b = vld1q_f32(c1 + i);
    float32x4_t d = vld1q_f32(c2 + i);
    if (p->yuv) {
      float32x4_t y = vmulq_f32(vsubq_f32(a, yoff), ysc);
      float32x4_t u = vmulq_f32(vsubq_f32(b, c128), csc);
      float32x4_t v = vmulq_f32(vsubq_f32(d, c128), csc);
      rgb[0] = clamp_select(vaddq_f32(y, vmulq_f32(cr_r, v)), zero, c255);
      rgb[1] = clamp_select(vaddq_f32(vaddq_f32(y, vmulq_f32(cb_g, u)),
                                      vmulq_f32(cr_g, v)),
                            zero, c255);
      rgb[2] = clamp_select(vaddq_f32(y, vmulq_f32(cb_b, u)), zero, c255);
    } else {
      rgb[0] = a;
      rgb[1] = b;
      rgb[2] = d;
    }
    if (p->dtype == KN_PP_F32) {
      float32x4x3_t o;
      for (int c = 0; c < 3; c++) {
        o.val[c] = vaddq_f32(vmulq_f32(rgb[p->source[c]], mul[c]), add[c]);
        if (!p->nhwc)
          vst1q_f32((float *)dst + (size_t)c * p->channel_stride + i, o.val[c]);
      }
      if (p->nhwc)
        vst3q_f32((float *)dst + i * 3, o);
      continue;
    }
    int32_t q[3][4];
    for (int c = 0; c < 3; c++) {
      float32x4_t px = rgb[p->source[c]];
      int32x4_t r;
      if (p->quant) {
        float32x4_t x =
            vmulq_f32(vaddq_f32(vmulq_f32(px, mul[c]), add[c]), qinv);
        r = vaddq_s32(vcvtnq_s32_f32(clamp_select(x, qlo, qhi)), zp);
      } else {
        r = vaddq_s32(vcvtnq_s32_f32(px), zp);
      }
      vst1q_s32(q[c], r);
    }
    for (int k = 0; k < 4; k++)
      for (int c = 0; c < 3; c++) {
        size_t idx = p->nhwc ? (i + (size_t)k) * 3 + (size_t)c
                             : (size_t)c * p->channel_stride + i + (size_t)k;
        if (p->dtype == KN_PP_U8)
          ((uint8_t *)dst)[idx] = (uint8_t)q[c][k];
        else
          ((int8_t *)dst)[idx] = (int8_t)q[c][k];
      }
  }
  if (i < n) {
    size_t off = p->nhwc ? i * 3 : i;
    size_t esize = p->dtype == KN_PP_F32 ? 4 : 1;
    kestrel_pp_output__ref(p, c0 + i, c1 + i, c2 + i, n - i,
                           (uint8_t *)dst + off * esize);
  }
}
