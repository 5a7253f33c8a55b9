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
 * (they would add w * 0). The 3x3 and 5x5 kernels without dilation get
 * specialised copies for any stride pair (constant tap loops, fully
 * unrolled); interior pixels take the unrolled path, border pixels the same
 * loop with the tap range cut to the image. A channel tail of 8 is one
 * 8-byte step, only the last 1..7 channels go through staging buffers.
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

/* Up to 8 channels at lane `lane` (0 or 8) of one packed block; `base` is
 * the element offset of channel 0 of them under tap (0,0). cnt == 8 loads
 * directly, fewer go through staging buffers. */
static ALWAYS_INLINE void half(const int8_t *in, ptrdiff_t base,
                               ptrdiff_t tap_dy, ptrdiff_t tap_dx,
                               const uint8_t *blk, size_t lane, size_t cnt,
                               const float *scale, size_t kw, size_t ky0,
                               size_t ky1, size_t kx0, size_t kx1,
                               int8_t *out, const dw_consts *k) {
  __m256i acc = _mm256_loadu_si256((const __m256i *)(blk + lane * 4));
  const int8_t *w = (const int8_t *)(blk + CR * sizeof(int32_t)) + lane;
  const __m128i azp = _mm256_castsi256_si128(k->azp16);
  for (size_t ky = ky0; ky < ky1; ky++)
    for (size_t kx = kx0; kx < kx1; kx++) {
      const int8_t *src =
          in + (base + (ptrdiff_t)ky * tap_dy + (ptrdiff_t)kx * tap_dx);
      __m128i x8;
      if (cnt == 8) {
        x8 = _mm_loadl_epi64((const __m128i *)src);
      } else {
        int8_t tmp[8] = {0};
        memcpy(tmp, src, cnt);
        x8 = _mm_loadl_epi64((const __m128i *)tmp);
      }
      __m128i x = _mm_sub_epi16(_mm_cvtepi8_epi16(x8), azp);
      __m128i wv = _mm_cvtepi8_epi16(
          _mm_loadl_epi64((const __m128i *)(w + (ky * kw + kx) * CR)));
      acc = _mm256_add_epi32(acc,
                             _mm256_cvtepi16_epi32(_mm_mullo_epi16(x, wv)));
    }
  __m256i q;
  if (cnt == 8) {
    q = requant(acc, scale, k);
  } else {
    float sc[8] = {0};
    memcpy(sc, scale, cnt * sizeof(float));
    q = requant(acc, sc, k);
  }
  __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q),
                                _mm256_extracti128_si256(q, 1));
  __m128i q8 = _mm_packs_epi16(q16, q16);
  if (cnt == 8) {
    _mm_storel_epi64((__m128i *)out, q8);
  } else {
    int8_t tmp[16];
    _mm_storeu_si128((__m128i *)tmp, q8);
    memcpy(out, tmp, cnt);
  }
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
  /* Channel tail (< 16): 8 channels with 8-byte loads, then any last
   * 1..7 through staging buffers, so nothing outside the tensors is
   * touched. */
  if (c0 < C) {
    const uint8_t *blk = packed + (c0 / CR) * block_bytes;
    size_t rest = C - c0;
    size_t first = rest < 8 ? rest : 8;
    half(in, origin + (ptrdiff_t)c0, tap_dy, tap_dx, blk, 0, first,
         scale + c0, kw, ky0, ky1, kx0, kx1, out + c0, k);
    if (rest > 8)
      half(in, origin + (ptrdiff_t)(c0 + 8), tap_dy, tap_dx, blk, 8, rest - 8,
           scale + c0 + 8, kw, ky0, ky1, kx0, kx1, out + c0 + 8, k);
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

/* 3x3 and 5x5 without dilation get their own copies, with the tap loops
 * unrolled; the strides stay run-time values (they only move the origin),
 * so stride (2,1) and every other pair take the fast copy too. */
#define DEFINE_FIXED(KS)                                                       \
  static void kestrel_qs8_dwconv_##KS##x##KS##__avx2(                          \
      const kn_dwconv_params *p, const int8_t *in, int32_t azp,                \
      const void *packed, int8_t *out, const kn_qs8_requant *rq) {             \
    dwconv(p, in, azp, packed, out, rq, KS, KS, p->stride_h, p->stride_w, 1,   \
           1);                                                                 \
  }
DEFINE_FIXED(3)
DEFINE_FIXED(5)

void kestrel_qs8_dwconv__avx2(const kn_dwconv_params *p,
                              const int8_t *restrict in, int32_t a_zero_point,
                              const void *restrict packed,
                              int8_t *restrict out, const kn_qs8_requant *rq) {
  const size_t kh = p->kernel_h, kw = p->kernel_w;
  if (kh == kw && p->dilation_h == 1 && p->dilation_w == 1) {
    if (kh == 3)
      return kestrel_qs8_dwconv_3x3__avx2(p, in, a_zero_point, packed, out, rq);
    if (kh == 5)
      return kestrel_qs8_dwconv_5x5__avx2(p, in, a_zero_point, packed, out, rq);
  }
  dwconv(p, in, a_zero_point, packed, out, rq, kh, kw, p->stride_h,
         p->stride_w, p->dilation_h, p->dilation_w);
}
