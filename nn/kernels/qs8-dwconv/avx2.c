/* AVX2 int8 depthwise convolution, NHWC, 16 channels per step.
 *
 * Contract: in [H,W,C] int8 and out [OH,OW,C] int8, dense, one image;
 * a_zero_point, rq->zero_point in [-128,127]; weights in [-127,127];
 * packed from kn_qs8_dwconv_pack. Never reads past the input or writes past
 * the output (loads that would are taken from stack copies, partial
 * channel blocks are stored byte-exact). Bit-exact with
 * kestrel_qs8_dwconv__ref.
 *
 * Two paths. 3x3 and 5x5 without dilation (every conv of the shipped
 * models), any strides, run dwconv_pairs below: vertical tap pairs on
 * vpmaddwd, strips of output pixels sharing their widened inputs. Other
 * kernel sizes and dilations run the generic per-pixel loop first in this
 * file: per tap, x - a_zero_point is in [-255,255] and w in [-127,127], so
 * their product fits int16 exactly (|p| <= 32385): one vpmullw per 16
 * channels, then widened into two int32 accumulators; taps in the padding
 * are skipped (they would add w * 0); a channel tail of 8 is one 8-byte
 * step, only the last 1..7 channels go through staging buffers.
 */
#include <assert.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels_isa.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define CR KN_QS8_DWCONV_CR

typedef struct {
  __m256 lo, hi;
  __m256i zp;
  __m256i azp16;
  int32_t out_zp, out_min; /* scalar copies for the int16 epilogue */
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

/* ---- 3x3 / 5x5 without dilation: vertical tap pairs on vpmaddwd ----------
 *
 * The image rows a kernel window covers are taken two at a time: for rows
 * (r, r+1) and column kx, the int16 inputs of both rows are interleaved
 * per channel (one vpunpck{l,h}wd pair per 16 channels) and one vpmaddwd
 * with the matching interleaved weights adds 8 int32 sums of two products.
 * That interleaved vector depends only on the input column, so with stride
 * 1 each one serves kw horizontally adjacent output pixels: a strip of
 * output pixels is computed together and every input is widened once per
 * strip. An odd last row pairs with itself under a zero weight.
 *
 * Inputs are used raw: the zero point is folded into the bias (bias -
 * a_zero_point * sum of the weights used), the same int32 sum modulo 2^32
 * as the reference. Only rows inside the image are visited (border rows
 * re-prepare the weights for their range); output pixels whose window
 * crosses the left/right edge, or whose last load would pass the end of
 * the input (channel tails), read a window copied to the stack and padded
 * with a_zero_point.
 *
 * Channel layout inside the accumulators (unpack works within 128-bit
 * lanes): "lo" holds channels 0-3 | 8-11, "hi" 4-7 | 12-15, so that
 * vpackssdw(lo, hi) is channels 0-15 in order. A tail of 1..8 channels
 * puts two output pixels in the two 128-bit lanes instead (lo: channels
 * 0-3 of pixel n | of pixel n+1, hi: 4-7). */

#define MAX_K 5
#define MAX_GROUPS ((MAX_K + 1) / 2)
#define STRIP 4 /* output pixels (or pixel pairs) computed together */

typedef struct {
  __m256i w[MAX_GROUPS][MAX_K][2];  /* [row pair][kx][lo/hi] */
  __m256i w8[MAX_GROUPS][MAX_K][2]; /* 8-channel tail: lane 0 in both lanes */
  __m256i bias[2], bias8[2];        /* minus a_zero_point * sum(w) */
  __m256 scale[2], scale8[2];
  size_t groups;
} dw_block;

/* Widen the block's weights for output rows whose in-image window rows are
 * [ky0, ky1): row pair g is rows ky0 + 2g and ky0 + 2g + 1. */
static ALWAYS_INLINE void prepare_block(dw_block *b, const uint8_t *blk,
                                        size_t kw, size_t ky0, size_t ky1,
                                        int32_t a_zero_point) {
  const int8_t *w = (const int8_t *)(blk + CR * sizeof(int32_t));
  const __m256i azp = _mm256_set1_epi16((int16_t)a_zero_point);
  __m256i sum_lo = _mm256_setzero_si256(), sum_hi = _mm256_setzero_si256();
  b->groups = (ky1 - ky0 + 1) / 2;
  for (size_t g = 0; g < b->groups; g++) {
    const size_t ra = ky0 + 2 * g, rb = ra + 1;
    for (size_t kx = 0; kx < kw; kx++) {
      __m256i wa = _mm256_cvtepi8_epi16(
          _mm_loadu_si128((const __m128i *)(w + (ra * kw + kx) * CR)));
      __m256i wb = _mm256_setzero_si256();
      if (rb < ky1)
        wb = _mm256_cvtepi8_epi16(
            _mm_loadu_si128((const __m128i *)(w + (rb * kw + kx) * CR)));
      __m256i lo = _mm256_unpacklo_epi16(wa, wb);
      __m256i hi = _mm256_unpackhi_epi16(wa, wb);
      b->w[g][kx][0] = lo;
      b->w[g][kx][1] = hi;
      b->w8[g][kx][0] = _mm256_permute2x128_si256(lo, lo, 0x00);
      b->w8[g][kx][1] = _mm256_permute2x128_si256(hi, hi, 0x00);
      sum_lo = _mm256_add_epi32(sum_lo, _mm256_madd_epi16(lo, azp));
      sum_hi = _mm256_add_epi32(sum_hi, _mm256_madd_epi16(hi, azp));
    }
  }
  __m256i b0 = _mm256_loadu_si256((const __m256i *)blk);
  __m256i b1 = _mm256_loadu_si256((const __m256i *)(blk + 32));
  __m256i lo = _mm256_sub_epi32(_mm256_permute2x128_si256(b0, b1, 0x20), sum_lo);
  __m256i hi = _mm256_sub_epi32(_mm256_permute2x128_si256(b0, b1, 0x31), sum_hi);
  b->bias[0] = lo;
  b->bias[1] = hi;
  b->bias8[0] = _mm256_permute2x128_si256(lo, lo, 0x00);
  b->bias8[1] = _mm256_permute2x128_si256(hi, hi, 0x00);
}

static void prepare_scale(dw_block *b, const float *scale, size_t count) {
  float sc[CR] = {0};
  memcpy(sc, scale, count * sizeof(float));
  __m256 s0 = _mm256_loadu_ps(sc), s1 = _mm256_loadu_ps(sc + 8);
  b->scale[0] = _mm256_permute2f128_ps(s0, s1, 0x20);
  b->scale[1] = _mm256_permute2f128_ps(s0, s1, 0x31);
  b->scale8[0] = _mm256_permute2f128_ps(s0, s0, 0x00);
  b->scale8[1] = _mm256_permute2f128_ps(s0, s0, 0x11);
}

/* int16 inputs at one window column. Full mode: 16 channels of one pixel.
 * Pair mode: 8 channels of the pixel at p and 8 of the pixel at
 * p + lane_off (the same column of the next output pixel); `joined` when
 * those 16 bytes are contiguous (C == 8, stride 1). */
static ALWAYS_INLINE __m256i load_x(const int8_t *p, int pair, int joined,
                                    ptrdiff_t lane_off) {
  if (!pair || joined)
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
  return _mm256_cvtepi8_epi16(
      _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)p),
                         _mm_loadl_epi64((const __m128i *)(p + lane_off))));
}

/* Adds row pair g (upper row `ra`, lower `rb`, or ra alone when `single`)
 * to the accumulators of n outputs; output i's window starts at column
 * i * ostep (bytes: i * ostep * dx). */
static ALWAYS_INLINE void strip_rows(const int8_t *ra, const int8_t *rb,
                                     int single, const __m256i (*w)[2],
                                     size_t kw, size_t n, size_t ostep,
                                     ptrdiff_t dx, int pair, int joined,
                                     ptrdiff_t lane_off, __m256i (*acc)[2]) {
  const size_t cols = (n - 1) * ostep + kw;
#pragma GCC unroll 16
  for (size_t c = 0; c < cols; c++) {
    __m256i xa = load_x(ra + (ptrdiff_t)c * dx, pair, joined, lane_off);
    __m256i xb = single ? xa : load_x(rb + (ptrdiff_t)c * dx, pair, joined, lane_off);
    __m256i plo = _mm256_unpacklo_epi16(xa, xb);
    __m256i phi = _mm256_unpackhi_epi16(xa, xb);
#pragma GCC unroll 8
    for (size_t i = 0; i < n; i++) {
      if (c < i * ostep || c - i * ostep >= kw)
        continue;
      const size_t kx = c - i * ostep;
      acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(plo, w[kx][0]));
      acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(phi, w[kx][1]));
    }
  }
}

/* n outputs (pair mode: n pixel pairs) whose windows start at rows[ky] +
 * i * ostep * dx; rows[0] is the first row inside the image. Stores
 * `count` channels per pixel, pixels `out_step` bytes apart. */
static ALWAYS_INLINE void strip(const int8_t *const *rows, const dw_block *b,
                                size_t kw, size_t n, size_t ostep,
                                ptrdiff_t dx, int pair, int joined,
                                ptrdiff_t lane_off, size_t count,
                                int8_t *out, size_t out_step,
                                size_t pixels_last, const dw_consts *k) {
  __m256i acc[STRIP][2];
  const __m256i *bias = pair ? b->bias8 : b->bias;
#pragma GCC unroll 8
  for (size_t i = 0; i < n; i++) {
    acc[i][0] = bias[0];
    acc[i][1] = bias[1];
  }
  const size_t groups = b->groups;
  for (size_t g = 0; g < groups; g++) {
    const __m256i(*w)[2] = pair ? b->w8[g] : b->w[g];
    if (rows[2 * g + 1])
      strip_rows(rows[2 * g], rows[2 * g + 1], 0, w, kw, n, ostep, dx, pair,
                 joined, lane_off, acc);
    else
      strip_rows(rows[2 * g], rows[2 * g], 1, w, kw, n, ostep, dx, pair,
                 joined, lane_off, acc);
  }
  /* Requantization with the lower clamp moved after rounding (same bytes:
   * the bounds are integers and rounding is monotone). Only the upper
   * bound is needed in float, against int32 overflow; a product below
   * INT32_MIN converts to INT32_MIN, which saturates to -32768 and then
   * clamps to out_min like any other value below it. */
  const __m256 *scale = pair ? b->scale8 : b->scale;
  const __m256i zp16 = _mm256_set1_epi16((int16_t)k->out_zp);
  const __m256i min16 = _mm256_set1_epi16((int16_t)k->out_min);
#pragma GCC unroll 8
  for (size_t i = 0; i < n; i++) {
    __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[i][0]), scale[0]);
    __m256i q_lo = _mm256_cvtps_epi32(_mm256_min_ps(x, k->hi));
    x = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[i][1]), scale[1]);
    __m256i q_hi = _mm256_cvtps_epi32(_mm256_min_ps(x, k->hi));
    __m256i q16 = _mm256_packs_epi32(q_lo, q_hi);
    q16 = _mm256_max_epi16(_mm256_adds_epi16(q16, zp16), min16);
    __m128i q8 = _mm_packs_epi16(_mm256_castsi256_si128(q16),
                                 _mm256_extracti128_si256(q16, 1));
    int8_t *o = out + i * (pair ? 2 : 1) * out_step;
    if (!pair) {
      if (count == 16) {
        _mm_storeu_si128((__m128i *)o, q8);
      } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, q8);
        memcpy(o, tmp, count);
      }
    } else if (count == 8) {
      _mm_storel_epi64((__m128i *)o, q8);
      if (i + 1 < n || pixels_last == 2)
        _mm_storel_epi64((__m128i *)(o + out_step), _mm_unpackhi_epi64(q8, q8));
    } else {
      int8_t tmp[16];
      _mm_storeu_si128((__m128i *)tmp, q8);
      memcpy(o, tmp, count);
      if (i + 1 < n || pixels_last == 2)
        memcpy(o + out_step, tmp + 8, count);
    }
  }
}

static ALWAYS_INLINE void dwconv_pairs(const kn_dwconv_params *p,
                                       const int8_t *in, int32_t a_zero_point,
                                       const void *packed, int8_t *out,
                                       const kn_qs8_requant *rq,
                                       const size_t kh, const size_t kw,
                                       const size_t sw) {
  assert(a_zero_point >= -128 && a_zero_point <= 127);
  assert(rq->zero_point >= -128 && rq->zero_point <= 127);
  assert(kh <= MAX_K && kw <= MAX_K && sw >= 1);
  const size_t C = p->channels, taps = kh * kw;
  const size_t H = p->in_h, W = p->in_w, sh = p->stride_h;
  const size_t block_bytes = CR * (sizeof(int32_t) + taps);
  const size_t in_size = H * W * C;
  dw_consts k;
  k.lo = _mm256_set1_ps((float)(rq->out_min - rq->zero_point));
  k.hi = _mm256_set1_ps((float)(rq->out_max - rq->zero_point));
  k.zp = _mm256_set1_epi32(rq->zero_point);
  k.out_zp = rq->zero_point;
  k.out_min = rq->out_min;
  dw_block b;
  memset(&b, 0, sizeof b); /* prepared before use; gcc cannot see it */
  int8_t window[MAX_K * MAX_K][CR];
  for (size_t c0 = 0; c0 < C; c0 += CR) {
    const uint8_t *blk = (const uint8_t *)packed + (c0 / CR) * block_bytes;
    const size_t count = C - c0 < CR ? C - c0 : CR;
    const int pair = count <= 8; /* two output pixels per vector */
    const size_t load_bytes = pair ? 8 : 16;
    const size_t run = pair ? 2 * STRIP : STRIP; /* pixels per strip */
    prepare_scale(&b, rq->scale + c0, count);
    size_t prepared_ky0 = SIZE_MAX, prepared_ky1 = SIZE_MAX;
    for (size_t oy = 0; oy < p->out_h; oy++) {
      const ptrdiff_t iy0 = (ptrdiff_t)(oy * sh) - (ptrdiff_t)p->pad_top;
      size_t ky0 = 0, ky1 = kh;
      while (ky0 < kh && iy0 + (ptrdiff_t)ky0 < 0) ky0++;
      while (ky1 > ky0 && iy0 + (ptrdiff_t)(ky1 - 1) >= (ptrdiff_t)H) ky1--;
      if (ky0 != prepared_ky0 || ky1 != prepared_ky1) {
        prepare_block(&b, blk, kw, ky0, ky1, a_zero_point);
        prepared_ky0 = ky0;
        prepared_ky1 = ky1;
      }
      /* rows[i]: i-th row inside the image; NULL past the last one (an odd
       * last row pairs with itself). */
      const int8_t *rows[MAX_K + 1] = {0};
      for (size_t ky = ky0; ky < ky1; ky++)
        rows[ky - ky0] = in + ((size_t)iy0 + ky) * W * C + c0;
      const size_t last_row = ky1 > ky0 ? (size_t)iy0 + ky1 - 1 : 0;
      int8_t *o = out + oy * p->out_w * C + c0;
      size_t ox = 0;
      while (ox < p->out_w) {
        const ptrdiff_t ix0 = (ptrdiff_t)(ox * sw) - (ptrdiff_t)p->pad_left;
        const size_t left = p->out_w - ox;
        /* A whole strip inside the image, its last load inside the
         * input. */
        if (left >= run && ix0 >= 0 &&
            ix0 + (ptrdiff_t)((run - 1) * sw + kw) <= (ptrdiff_t)W &&
            (last_row * W + (size_t)ix0 + (run - 1) * sw + kw - 1) * C + c0 +
                    load_bytes <= in_size) {
          const int8_t *r[MAX_K + 1];
          for (size_t i = 0; i <= MAX_K; i++)
            r[i] = rows[i] ? rows[i] + (size_t)ix0 * C : NULL;
          if (!pair)
            strip(r, &b, kw, STRIP, sw, (ptrdiff_t)C, 0, 0, 0, count, o, C, 2, &k);
          else if (C == 8 && sw == 1)
            strip(r, &b, kw, STRIP, 2 * sw, (ptrdiff_t)C, 1, 1, 8, count, o, C,
                  2, &k);
          else
            strip(r, &b, kw, STRIP, 2 * sw, (ptrdiff_t)C, 1, 0,
                  (ptrdiff_t)(sw * C), count, o, C, 2, &k);
          ox += run;
          o += run * C;
          continue;
        }
        /* One pixel: read in place when its window is inside, else from a
         * stack copy of the window (rows inside the image, columns padded
         * with the zero point). */
        if (ix0 >= 0 && ix0 + (ptrdiff_t)kw <= (ptrdiff_t)W &&
            (last_row * W + (size_t)ix0 + kw - 1) * C + c0 + load_bytes <=
                in_size) {
          const int8_t *r[MAX_K + 1];
          for (size_t i = 0; i <= MAX_K; i++)
            r[i] = rows[i] ? rows[i] + (size_t)ix0 * C : NULL;
          strip(r, &b, kw, 1, 1, (ptrdiff_t)C, pair, 0, 0, count, o, C, 1, &k);
          ox++;
          o += C;
          continue;
        }
        /* Fixed-size copies where the block is whole: these pixels are a
         * large share of small images (6x6), a libc call each would show. */
        const size_t used = ky1 - ky0;
        const __m128i pad = _mm_set1_epi8((char)a_zero_point);
        const int8_t *r[MAX_K + 1] = {0};
        for (size_t i = 0; i < used; i++) {
          r[i] = window[i * kw];
          for (size_t kx = 0; kx < kw; kx++) {
            ptrdiff_t ix = ix0 + (ptrdiff_t)kx;
            int8_t *dst = window[i * kw + kx];
            _mm_storeu_si128((__m128i *)dst, pad);
            if (ix < 0 || ix >= (ptrdiff_t)W)
              continue;
            const int8_t *src = rows[i] + (size_t)ix * C;
            if (count == CR)
              memcpy(dst, src, CR);
            else if (count == 8)
              memcpy(dst, src, 8);
            else
              memcpy(dst, src, count);
          }
        }
        strip(r, &b, kw, 1, 1, CR, pair, 0, 0, count, o, C, 1, &k);
        ox++;
        o += C;
      }
    }
  }
}

#define DEFINE_FIXED(KS)                                                       \
  static void kestrel_qs8_dwconv_##KS##x##KS##__avx2(                          \
      const kn_dwconv_params *p, const int8_t *in, int32_t azp,                \
      const void *packed, int8_t *out, const kn_qs8_requant *rq) {             \
    if (p->stride_w == 1)                                                      \
      dwconv_pairs(p, in, azp, packed, out, rq, KS, KS, 1);                    \
    else if (p->stride_w == 2)                                                 \
      dwconv_pairs(p, in, azp, packed, out, rq, KS, KS, 2);                    \
    else                                                                       \
      dwconv_pairs(p, in, azp, packed, out, rq, KS, KS, p->stride_w);          \
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
