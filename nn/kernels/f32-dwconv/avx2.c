/* AVX2+FMA f32 depthwise convolution, NHWC, 8 channels per step.
 *
 * Contract: in [H,W,C] f32 and out [OH,OW,C] f32, dense, one image; packed
 * from kn_f32_dwconv_pack. Never touches memory outside the tensors (the
 * channel tail uses masked loads/stores). Padding taps are skipped (they
 * would add w * 0). Tolerance vs kestrel_f32_dwconv__ref: see kernels.h.
 * 3x3 and 5x5 with stride 1 or 2 get unrolled copies, as in the qs8 file.
 */
#include <assert.h>
#include <immintrin.h>

#include "kernels_isa.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define CR KN_F32_DWCONV_CR

static ALWAYS_INLINE void pixel(const float *in, ptrdiff_t origin,
                                ptrdiff_t tap_dy, ptrdiff_t tap_dx, size_t C,
                                const float *packed, size_t kw, size_t taps,
                                size_t ky0, size_t ky1, size_t kx0,
                                size_t kx1, float *out, __m256 lo, __m256 hi,
                                __m256i tail_mask) {
  const size_t block = CR * (1 + taps);
  size_t c0 = 0;
  for (; c0 + CR <= C; c0 += CR) {
    const float *blk = packed + (c0 / CR) * block;
    __m256 acc = _mm256_loadu_ps(blk);
    const float *w = blk + CR;
    for (size_t ky = ky0; ky < ky1; ky++)
      for (size_t kx = kx0; kx < kx1; kx++) {
        const float *src =
            in + (origin + (ptrdiff_t)ky * tap_dy + (ptrdiff_t)kx * tap_dx + (ptrdiff_t)c0);
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(src),
                              _mm256_loadu_ps(w + (ky * kw + kx) * CR), acc);
      }
    _mm256_storeu_ps(out + c0, _mm256_min_ps(_mm256_max_ps(acc, lo), hi));
  }
  if (c0 < C) {
    const float *blk = packed + (c0 / CR) * block;
    __m256 acc = _mm256_loadu_ps(blk);
    const float *w = blk + CR;
    for (size_t ky = ky0; ky < ky1; ky++)
      for (size_t kx = kx0; kx < kx1; kx++) {
        const float *src =
            in + (origin + (ptrdiff_t)ky * tap_dy + (ptrdiff_t)kx * tap_dx + (ptrdiff_t)c0);
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(src, tail_mask),
                              _mm256_loadu_ps(w + (ky * kw + kx) * CR), acc);
      }
    _mm256_maskstore_ps(out + c0, tail_mask,
                        _mm256_min_ps(_mm256_max_ps(acc, lo), hi));
  }
}

static ALWAYS_INLINE void dwconv(const kn_dwconv_params *p, const float *in,
                                 const void *packed, float *out,
                                 float out_min, float out_max, const size_t kh,
                                 const size_t kw, const size_t sh,
                                 const size_t sw, const size_t dh,
                                 const size_t dw) {
  const size_t C = p->channels, taps = kh * kw;
  const __m256 lo = _mm256_set1_ps(out_min), hi = _mm256_set1_ps(out_max);
  const int rest = (int)(C % CR);
  const __m256i tail_mask = _mm256_cmpgt_epi32(
      _mm256_set1_epi32(rest), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
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
              lo, hi, tail_mask);
      else
        pixel(in, origin, tap_dy, tap_dx, C, packed, kw, taps, ky0, ky1, kx0,
              kx1, o, lo, hi, tail_mask);
    }
  }
}

#define DEFINE_FIXED(KS, S)                                                    \
  static void kestrel_f32_dwconv_##KS##x##KS##s##S##__avx2(                    \
      const kn_dwconv_params *p, const float *in, const void *packed,          \
      float *out, float out_min, float out_max) {                              \
    dwconv(p, in, packed, out, out_min, out_max, KS, KS, S, S, 1, 1);          \
  }
DEFINE_FIXED(3, 1)
DEFINE_FIXED(3, 2)
DEFINE_FIXED(5, 1)
DEFINE_FIXED(5, 2)

void kestrel_f32_dwconv__avx2(const kn_dwconv_params *p,
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
      return kestrel_f32_dwconv_3x3s1__avx2(p, in, packed, out, out_min, out_max);
    if (kh == 3 && sh == 2)
      return kestrel_f32_dwconv_3x3s2__avx2(p, in, packed, out, out_min, out_max);
    if (kh == 5 && sh == 1)
      return kestrel_f32_dwconv_5x5s1__avx2(p, in, packed, out, out_min, out_max);
    if (kh == 5 && sh == 2)
      return kestrel_f32_dwconv_5x5s2__avx2(p, in, packed, out, out_min, out_max);
  }
  dwconv(p, in, packed, out, out_min, out_max, kh, kw, sh, sw, p->dilation_h,
         p->dilation_w);
}
