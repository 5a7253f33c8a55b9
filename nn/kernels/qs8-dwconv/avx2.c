/* AVX2 int8 depthwise convolution, NHWC, 16 channels per step.
 *
 * Contract: in [H,W,C] int8 and out [OH,OW,C] int8, dense, one image;
 * a_zero_point, rq->zero_point in [-128,127]; weights in [-127,127];
 * packed from kn_qs8_dwconv_pack. Never reads past the input or writes past
 * the output (the channel tail goes through 16-byte copies). Bit-exact with
 * kestrel_qs8_dwconv__ref.
 *
 * Per tap: x - a_zero_point is in [-255,255] and w in [-127,127], so their
 * product fits int16 exactly (|p| <= 32385): one vpmullw per 16 channels,
 * then widened into two int32 accumulators. Taps in the padding are skipped
 * (they would add w * 0). The 3x3 and 5x5 kernels with stride 1 or 2 and
 * no dilation get specialised copies (constant tap loops, fully unrolled);
 * interior pixels take the unrolled path, border pixels the same loop with
 * the tap range cut to the image.
 */
#include <assert.h>
#include <immintrin.h>
#include <string.h>

#include "kernels_isa.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define CR KN_QS8_DWCONV_CR

typedef struct {
  __m256 lo, hi;
  __m256i zp;
  __m256i azp16;
} dw_consts;

static ALWAYS_INLINE void mac_tap(__m256i *acc_lo, __m256i *acc_hi,
                                  __m128i x8, const int8_t *w,
                                  __m256i azp16) {
  __m256i x = _mm256_sub_epi16(_mm256_cvtepi8_epi16(x8), azp16);
  __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w));
  __m256i prod = _mm256_mullo_epi16(x, wv);
  *acc_lo = _mm256_add_epi32(*acc_lo,
                             _mm256_cvtepi16_epi32(_mm256_castsi256_si128(prod)));
  *acc_hi = _mm256_add_epi32(*acc_hi,
                             _mm256_cvtepi16_epi32(_mm256_extracti128_si256(prod, 1)));
}

static ALWAYS_INLINE __m256i requant(__m256i acc, const float *scale,
                                     const dw_consts *k) {
  __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(scale));
  x = _mm256_min_ps(_mm256_max_ps(x, k->lo), k->hi);
  return _mm256_add_epi32(_mm256_cvtps_epi32(x), k->zp);
}

/* One output pixel: taps ky in [ky0,ky1), kx in [kx0,kx1) are inside the
 * image; `origin` is the element offset of the input pixel under tap (0,0),
 * which may lie outside the image (an offset, so no out-of-bounds pointer
 * is ever formed). */
static ALWAYS_INLINE void pixel(const int8_t *in, ptrdiff_t origin,
                                ptrdiff_t tap_dy, ptrdiff_t tap_dx,
                                size_t C, const uint8_t *packed,
                                const float *scale, size_t kw, size_t taps,
                                size_t ky0, size_t ky1, size_t kx0,
                                size_t kx1, int8_t *out, const dw_consts *k) {
  const size_t block_bytes = CR * (sizeof(int32_t) + taps);
  size_t c0 = 0;
  for (; c0 + CR <= C; c0 += CR) {
    const uint8_t *blk = packed + (c0 / CR) * block_bytes;
    __m256i acc_lo = _mm256_loadu_si256((const __m256i *)blk);
    __m256i acc_hi = _mm256_loadu_si256((const __m256i *)(blk + 32));
    const int8_t *w = (const int8_t *)(blk + CR * sizeof(int32_t));
    for (size_t ky = ky0; ky < ky1; ky++)
      for (size_t kx = kx0; kx < kx1; kx++) {
        const int8_t *src =
            in + (origin + (ptrdiff_t)ky * tap_dy + (ptrdiff_t)kx * tap_dx + (ptrdiff_t)c0);
        mac_tap(&acc_lo, &acc_hi, _mm_loadu_si128((const __m128i *)src),
                w + (ky * kw + kx) * CR, k->azp16);
      }
    __m256i q_lo = requant(acc_lo, scale + c0, k);
    __m256i q_hi = requant(acc_hi, scale + c0 + 8, k);
    __m256i q16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q_lo, q_hi), 0xD8);
    __m128i q8 = _mm_packs_epi16(_mm256_castsi256_si128(q16),
                                 _mm256_extracti128_si256(q16, 1));
    _mm_storeu_si128((__m128i *)(out + c0), q8);
  }
  if (c0 < C) {
    /* Channel tail: stage inputs, scales and outputs through 16-lane
     * buffers so that nothing outside the tensors is touched. */
    const size_t rest = C - c0;
    const uint8_t *blk = packed + (c0 / CR) * block_bytes;
    __m256i acc_lo = _mm256_loadu_si256((const __m256i *)blk);
    __m256i acc_hi = _mm256_loadu_si256((const __m256i *)(blk + 32));
    const int8_t *w = (const int8_t *)(blk + CR * sizeof(int32_t));
    for (size_t ky = ky0; ky < ky1; ky++)
      for (size_t kx = kx0; kx < kx1; kx++) {
        int8_t tmp[CR] = {0};
        memcpy(tmp,
               in + (origin + (ptrdiff_t)ky * tap_dy + (ptrdiff_t)kx * tap_dx + (ptrdiff_t)c0),
               rest);
        mac_tap(&acc_lo, &acc_hi, _mm_loadu_si128((const __m128i *)tmp),
                w + (ky * kw + kx) * CR, k->azp16);
      }
    float sc[CR] = {0};
    memcpy(sc, scale + c0, rest * sizeof(float));
    __m256i q_lo = requant(acc_lo, sc, k);
    __m256i q_hi = requant(acc_hi, sc + 8, k);
    __m256i q16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q_lo, q_hi), 0xD8);
    __m128i q8 = _mm_packs_epi16(_mm256_castsi256_si128(q16),
                                 _mm256_extracti128_si256(q16, 1));
    int8_t tmp[CR];
    _mm_storeu_si128((__m128i *)tmp, q8);
    memcpy(out + c0, tmp, rest);
  }
}

static ALWAYS_INLINE void dwconv(const kn_dwconv_params *p,
                                 const int8_t *in, int32_t a_zero_point,
                                 const void *packed, int8_t *out,
                                 const kn_qs8_requant *rq, const size_t kh,
                                 const size_t kw, const size_t sh,
                                 const size_t sw, const size_t dh,
                                 const size_t dw) {
  assert(a_zero_point >= -128 && a_zero_point <= 127);
  assert(rq->zero_point >= -128 && rq->zero_point <= 127);
  const size_t C = p->channels, taps = kh * kw;
  dw_consts k;
  k.lo = _mm256_set1_ps((float)(rq->out_min - rq->zero_point));
  k.hi = _mm256_set1_ps((float)(rq->out_max - rq->zero_point));
  k.zp = _mm256_set1_epi32(rq->zero_point);
  k.azp16 = _mm256_set1_epi16((int16_t)a_zero_point);
  const ptrdiff_t row_stride = (ptrdiff_t)(p->in_w * C);
  const ptrdiff_t tap_dy = (ptrdiff_t)dh * row_stride, tap_dx = (ptrdiff_t)(dw * C);
  const ptrdiff_t H = (ptrdiff_t)p->in_h, W = (ptrdiff_t)p->in_w;
  for (size_t oy = 0; oy < p->out_h; oy++) {
    const ptrdiff_t iy0 = (ptrdiff_t)(oy * sh) - (ptrdiff_t)p->pad_top;
    /* Valid ky: 0 <= iy0 + ky*dh < H. */
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
      /* Interior pixels call with constant tap ranges: fully unrolled. */
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
  static void kestrel_qs8_dwconv_##KS##x##KS##s##S##__avx2(                    \
      const kn_dwconv_params *p, const int8_t *in, int32_t azp,                \
      const void *packed, int8_t *out, const kn_qs8_requant *rq) {             \
    dwconv(p, in, azp, packed, out, rq, KS, KS, S, S, 1, 1);                   \
  }
DEFINE_FIXED(3, 1)
DEFINE_FIXED(3, 2)
DEFINE_FIXED(5, 1)
DEFINE_FIXED(5, 2)

void kestrel_qs8_dwconv__avx2(const kn_dwconv_params *p,
                              const int8_t *restrict in, int32_t a_zero_point,
                              const void *restrict packed,
                              int8_t *restrict out, const kn_qs8_requant *rq) {
  const size_t kh = p->kernel_h, kw = p->kernel_w, sh = p->stride_h,
               sw = p->stride_w;
  if (kh == kw && sh == sw && sh <= 2 && p->dilation_h == 1 &&
      p->dilation_w == 1) {
    if (kh == 3 && sh == 1)
      return kestrel_qs8_dwconv_3x3s1__avx2(p, in, a_zero_point, packed, out, rq);
    if (kh == 3 && sh == 2)
      return kestrel_qs8_dwconv_3x3s2__avx2(p, in, a_zero_point, packed, out, rq);
    if (kh == 5 && sh == 1)
      return kestrel_qs8_dwconv_5x5s1__avx2(p, in, a_zero_point, packed, out, rq);
    if (kh == 5 && sh == 2)
      return kestrel_qs8_dwconv_5x5s2__avx2(p, in, a_zero_point, packed, out, rq);
  }
  dwconv(p, in, a_zero_point, packed, out, rq, kh, kw, sh, sw, p->dilation_h,
         p->dilation_w);
}
