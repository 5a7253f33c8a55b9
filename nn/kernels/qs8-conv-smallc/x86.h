/* Body of the x86 qs8 small-C direct conv, included by avx2.c (SMALLC_VNNI
 * 0: int16 pairs through vpmaddwd) and avxvnni.c (SMALLC_VNNI 1: unsigned
 * byte quads through vpdpbusd). Contract in kernels.h; bit-exact with
 * kestrel_qs8_conv_smallc__ref.
 *
 * Scheme: each needed input row is widened once per output row into a
 * buffer that starts at pixel -pad_left and holds the padding too, so every
 * output pixel's kernel row is `run` = KW*C contiguous elements at
 * ox*stride*C. A slot of 2 (or 4) consecutive elements is broadcast to all
 * 8 lanes and multiplied by 8 channels' weights for those elements, so the
 * accumulators come out in channel order: no horizontal adds, no im2col.
 * The run is cut into whole slots per kernel row; the elements a slot
 * reads past the run meet zero weights. Integer sums wrap mod 2^32 in any
 * order, so the result is the reference's.
 *
 * AVX2: x sign-extended to int16; vpmaddwd adds two int16 products into
 * int32 without overflow (2 * 128 * 127 < 2^31).
 * VNNI: x + 128 as an unsigned byte; vpdpbusd adds four u8*s8 products into
 * an int32 lane without saturation; the bias absorbs -128 * sum W.
 */
#include <assert.h>
#include <immintrin.h>
#include <string.h>

#include "layout.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define KN_UNROLL _Pragma("GCC unroll 16")

#if SMALLC_VNNI
#define SLOT 4
typedef uint8_t elem_t;
static ALWAYS_INLINE __m256i dot(__m256i acc, __m256i x, __m256i w) {
  return _mm256_dpbusd_avx_epi32(acc, x, w);
}
#else
#define SLOT 2
typedef int16_t elem_t;
static ALWAYS_INLINE __m256i dot(__m256i acc, __m256i x, __m256i w) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(x, w));
}
#endif

/* One slot of elements, in every 32-bit lane. */
static ALWAYS_INLINE __m256i broadcast_slot(const elem_t *p) {
  int32_t v;
  memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

static ALWAYS_INLINE elem_t widen(int32_t x) {
#if SMALLC_VNNI
  return (elem_t)(x + 128);
#else
  return (elem_t)x;
#endif
}

/* Weights, bias and scales into the layout of layout.h. */
static void prepare(const kn_conv_geometry *g, size_t n, const void *packed,
                    const kn_qs8_requant *rq, const smallc_layout *l) {
  const size_t K = g->kernel_h * l->run;
  const size_t block_bytes = KN_QS8_GEMM_NR * sizeof(int32_t) +
                             (K + KN_QS8_GEMM_KR - 1) / KN_QS8_GEMM_KR *
                                 KN_QS8_GEMM_NR * KN_QS8_GEMM_KR;
  for (size_t b = 0; b < l->nb; b++) {
    const uint8_t *blk = (const uint8_t *)packed + b * block_bytes;
    for (size_t j = 0; j < 8; j++) {
      size_t ch = b * 8 + j;
      int32_t bias;
      memcpy(&bias, blk + j * sizeof(int32_t), sizeof bias);
      uint32_t sum = 0;
      for (size_t ky = 0; ky < g->kernel_h; ky++)
        for (size_t gi = 0; gi < l->groups; gi++) {
          elem_t *w = (elem_t *)(l->weights +
                                 ((ky * l->groups + gi) * l->nb + b) * 32) +
                      j * SLOT;
          for (size_t s = 0; s < SLOT; s++) {
            size_t e = gi * SLOT + s;
            int8_t v = ch < n && e < l->run
                           ? smallc_packed_weight(blk, j, ky * l->run + e)
                           : 0;
            w[s] = (elem_t)v;
            sum += (uint32_t)(int32_t)v;
          }
        }
#if SMALLC_VNNI
      /* x + 128 in place of x: take 128 * sum W back out (wrapping). */
      bias = (int32_t)((uint32_t)bias - (sum << 7));
#else
      (void)sum;
#endif
      l->bias[ch] = ch < n ? bias : 0;
      l->scale[ch] = ch < n ? rq->scale[ch] : 0.0f;
    }
  }
}

/* Input row iy (or padding where iy is NULL) widened into dst: pixels
 * -pad_left .. width_px - pad_left - 1, then the slack. */
static void widen_row(const kn_conv_geometry *g, const smallc_layout *l,
                      const int8_t *src, int32_t a_zero_point, elem_t *dst) {
  const size_t C = g->in_c;
  const elem_t pad = widen(a_zero_point);
  size_t left = g->pad_left < l->width_px ? g->pad_left : l->width_px;
  size_t inside = 0;
  if (src && l->width_px > g->pad_left)
    inside = l->width_px - g->pad_left < g->in_w ? l->width_px - g->pad_left
                                                 : g->in_w;
  size_t e = 0;
  for (; e < left * C; e++)
    dst[e] = pad;
  size_t count = inside * C, i = 0;
  elem_t *d = dst + e;
#if SMALLC_VNNI
  const __m256i flip = _mm256_set1_epi8((char)0x80);
  for (; i + 32 <= count; i += 32)
    _mm256_storeu_si256(
        (__m256i *)(d + i),
        _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(src + i)), flip));
#else
  for (; i + 16 <= count; i += 16)
    _mm256_storeu_si256(
        (__m256i *)(d + i),
        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
  for (; i < count; i++)
    d[i] = widen(src[i]);
  for (e += count; e < l->row_elems; e++)
    dst[e] = pad;
}

/* Max slot groups of one output pixel: KH rows of up to 16 pairs. */
#define SMALLC_MAX_STEPS                                                       \
  (KN_QS8_CONV_SMALLC_MAX_KH * (KN_QS8_CONV_SMALLC_MAX_RUN / 2))

typedef struct smallc_row {
  /* Slot group s of pixel ox sits at base + at[s] + ox * step: the kernel
   * rows and their groups as one flat loop (with two nested loops gcc 12
   * stores every accumulator on each pass). */
  const elem_t *base;
  ptrdiff_t at[SMALLC_MAX_STEPS];
  size_t steps, step; /* step: elements per output pixel */
  size_t w_stride;    /* bytes from one slot group's weights to the next */
  __m256i zp16;       /* zero point, int16 lanes */
  __m256i out_min, out_max; /* fused clamp, int8 lanes */
} smallc_row;

/* mr pixels from ox, nt blocks of 8 channels from block b0; the last block
 * stores nc_last channels. */
static ALWAYS_INLINE void tile(const size_t mr, const size_t nt,
                               const smallc_row *r, const smallc_layout *l,
                               size_t ox, size_t b0, size_t nc_last,
                               int8_t *out, size_t ldc) {
  __m256i acc[12][2];
  KN_UNROLL
  for (size_t j = 0; j < nt; j++) {
    const __m256i b =
        _mm256_load_si256((const __m256i *)(l->bias + (b0 + j) * 8));
    KN_UNROLL
    for (size_t i = 0; i < mr; i++)
      acc[i][j] = b;
  }
  const uint8_t *w = l->weights + b0 * 32;
  const elem_t *x0 = r->base + ox * r->step;
  const size_t step = r->step, w_stride = r->w_stride;
  for (size_t s = 0; s < r->steps; s++, w += w_stride) {
    const elem_t *x = x0 + r->at[s];
    __m256i wv[2];
    KN_UNROLL
    for (size_t j = 0; j < nt; j++)
      wv[j] = _mm256_load_si256((const __m256i *)(w + 32 * j));
    KN_UNROLL
    for (size_t i = 0; i < mr; i++) {
      const __m256i xv = broadcast_slot(x + i * step);
      KN_UNROLL
      for (size_t j = 0; j < nt; j++)
        acc[i][j] = dot(acc[i][j], xv, wv[j]);
    }
  }
  /* Requantization, 32 outputs at a time: the float product, rounded by
   * cvtps2dq, packed to int16 with signed saturation, the zero point added
   * in saturating int16, packed to int8, and the fused clamp on bytes.
   * Saturating first and clamping after equals the reference's
   * clamp-then-round: rounding is monotone and the bounds are integers.
   * Products at or past 2^31 are capped below it (cvtps2dq would give
   * INT32_MIN); those at or below -2^31 give INT32_MIN, which saturates to
   * -128 as it should. Half the instructions of requantizing 8 at a time,
   * which measured a quarter of the kernel's time with VNNI. */
  const __m256 cap = _mm256_set1_ps(2147483520.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
#define QUANT(v, sc)                                                           \
  _mm256_cvtps_epi32(                                                          \
      _mm256_min_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(v), sc), cap))
  if (nt == 2) {
    /* Two pixels of 16 channels per vector. */
    const __m256 s0 = _mm256_load_ps(l->scale + b0 * 8);
    const __m256 s1 = _mm256_load_ps(l->scale + b0 * 8 + 8);
    KN_UNROLL
    for (size_t i = 0; i < mr; i += 2) {
      const size_t i1 = i + 1 < mr ? i + 1 : i;
      __m256i p0 = _mm256_adds_epi16(
          _mm256_packs_epi32(QUANT(acc[i][0], s0), QUANT(acc[i][1], s1)),
          r->zp16);
      __m256i p1 = _mm256_adds_epi16(
          _mm256_packs_epi32(QUANT(acc[i1][0], s0), QUANT(acc[i1][1], s1)),
          r->zp16);
      __m256i q =
          _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p0, p1), order);
      q = _mm256_min_epi8(_mm256_max_epi8(q, r->out_min), r->out_max);
      int8_t *c = out + i * ldc;
      if (nc_last == 8 && ldc == 16 && i1 != i) {
        _mm256_storeu_si256((__m256i *)c, q);
      } else if (nc_last == 8) {
        _mm_storeu_si128((__m128i *)c, _mm256_castsi256_si128(q));
        if (i1 != i)
          _mm_storeu_si128((__m128i *)(c + ldc),
                           _mm256_extracti128_si256(q, 1));
      } else {
        int8_t tmp[32];
        _mm256_storeu_si256((__m256i *)tmp, q);
        memcpy(c, tmp, 8 + nc_last);
        if (i1 != i)
          memcpy(c + ldc, tmp + 16, 8 + nc_last);
      }
    }
  } else {
    /* Four pixels of 8 channels per vector. */
    const __m256 s0 = _mm256_load_ps(l->scale + b0 * 8);
    KN_UNROLL
    for (size_t i = 0; i < mr; i += 4) {
      const size_t cnt = mr - i < 4 ? mr - i : 4;
      const size_t i1 = i + (cnt > 1), i2 = i + (cnt > 2 ? 2 : 0),
                   i3 = i + (cnt > 3 ? 3 : 0);
      __m256i p0 = _mm256_adds_epi16(
          _mm256_packs_epi32(QUANT(acc[i][0], s0), QUANT(acc[i1][0], s0)),
          r->zp16);
      __m256i p1 = _mm256_adds_epi16(
          _mm256_packs_epi32(QUANT(acc[i2][0], s0), QUANT(acc[i3][0], s0)),
          r->zp16);
      __m256i q =
          _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p0, p1), order);
      q = _mm256_min_epi8(_mm256_max_epi8(q, r->out_min), r->out_max);
      int8_t *c = out + i * ldc;
      if (nc_last == 8 && ldc == 8 && cnt == 4) {
        _mm256_storeu_si256((__m256i *)c, q);
      } else {
        int8_t tmp[32];
        _mm256_storeu_si256((__m256i *)tmp, q);
        KN_UNROLL
        for (size_t t = 0; t < cnt; t++) {
          if (nc_last == 8)
            memcpy(c + t * ldc, tmp + 8 * t, 8);
          else
            memcpy(c + t * ldc, tmp + 8 * t, nc_last);
        }
      }
    }
  }
#undef QUANT
}

/* Tile shapes: NT blocks of 8 channels by MR pixels; 6 x 2 measured best
 * with vpmaddwd and 5 x 2 with vpdpbusd (Zen 4, C = 3, N = 16 and 32). */
#if SMALLC_VNNI
#define MR_NT2 5
#else
#define MR_NT2 6
#endif
#define MR_NT1 12

/* One out-of-line function per tile shape: inlined into one big loop nest,
 * gcc 12 keeps the accumulators in memory (a store per multiply-add). */
typedef void (*tile_fn)(const smallc_row *r, const smallc_layout *l, size_t ox,
                        size_t b0, size_t nc_last, int8_t *out, size_t ldc);
#define TILE_FN(MR, NT)                                                        \
  static __attribute__((noinline)) void tile_##MR##x##NT(                      \
      const smallc_row *r, const smallc_layout *l, size_t ox, size_t b0,       \
      size_t nc_last, int8_t *out, size_t ldc) {                               \
    tile(MR, NT, r, l, ox, b0, nc_last, out, ldc);                             \
  }
/* clang-format off */
TILE_FN(1, 2) TILE_FN(2, 2) TILE_FN(3, 2) TILE_FN(4, 2) TILE_FN(5, 2)
TILE_FN(6, 2)
TILE_FN(1, 1) TILE_FN(2, 1) TILE_FN(3, 1) TILE_FN(4, 1) TILE_FN(5, 1)
TILE_FN(6, 1) TILE_FN(7, 1) TILE_FN(8, 1) TILE_FN(9, 1) TILE_FN(10, 1)
TILE_FN(11, 1) TILE_FN(12, 1)
/* clang-format on */
#undef TILE_FN
/* [nt - 1][mr]: the tile for the last mr pixels of a row. */
static const tile_fn tiles[2][MR_NT1 + 1] = {
    {NULL, tile_1x1, tile_2x1, tile_3x1, tile_4x1, tile_5x1, tile_6x1,
     tile_7x1, tile_8x1, tile_9x1, tile_10x1, tile_11x1, tile_12x1},
    {NULL, tile_1x2, tile_2x2, tile_3x2, tile_4x2, tile_5x2, tile_6x2},
};

static void output_row(const smallc_row *r, const smallc_layout *l,
                       size_t out_w, size_t n, int8_t *out) {
  for (size_t b0 = 0; b0 < l->nb;) {
    size_t nt = l->nb - b0 >= 2 ? 2 : 1;
    size_t mr = nt == 2 ? MR_NT2 : MR_NT1;
    size_t nc_last = n - (b0 + nt - 1) * 8;
    if (nc_last > 8)
      nc_last = 8;
    int8_t *o = out + b0 * 8;
    size_t ox = 0;
    tile_fn full = tiles[nt - 1][mr];
    for (; ox + mr <= out_w; ox += mr)
      full(r, l, ox, b0, nc_last, o + ox * n, n);
    if (ox < out_w)
      tiles[nt - 1][out_w - ox](r, l, ox, b0, nc_last, o + ox * n, n);
    b0 += nt;
  }
}

static void conv_smallc(const kn_conv_geometry *g, const int8_t *restrict in,
                        int32_t a_zero_point, const void *restrict packed,
                        size_t n, size_t oy_begin, size_t oy_end,
                        int8_t *restrict out, const kn_qs8_requant *rq,
                        void *scratch, bool weights_ready) {
  assert(kn_qs8_conv_smallc_fits(g, n));
  assert(oy_begin <= oy_end && oy_end <= g->out_h);
  assert(a_zero_point >= -128 && a_zero_point <= 127);
  assert(rq->out_min <= rq->out_max);
  if (oy_begin == oy_end)
    return;
  smallc_layout l;
  smallc_layout_make(g, n, SLOT, sizeof(elem_t), scratch, &l);
  if (!weights_ready)
    prepare(g, n, packed, rq, &l);
  elem_t *bufs = (elem_t *)l.rows;
  elem_t *pad_row = bufs + g->kernel_h * l.row_elems;
  widen_row(g, &l, NULL, a_zero_point, pad_row);
  smallc_row r;
  r.base = bufs;
  r.steps = g->kernel_h * l.groups;
  r.step = g->stride_w * g->in_c;
  r.w_stride = l.nb * 32;
  r.zp16 = _mm256_set1_epi16((int16_t)rq->zero_point);
  r.out_min = _mm256_set1_epi8((char)rq->out_min);
  r.out_max = _mm256_set1_epi8((char)rq->out_max);
  const size_t row_bytes = g->in_w * g->in_c;
  for (size_t oy = oy_begin; oy < oy_end; oy++) {
    for (size_t ky = 0; ky < g->kernel_h; ky++) {
      ptrdiff_t iy = (ptrdiff_t)(oy * g->stride_h + ky * g->dilation_h) -
                     (ptrdiff_t)g->pad_top;
      size_t buf = g->kernel_h; /* the padding row */
      if (iy >= 0 && iy < (ptrdiff_t)g->in_h) {
        buf = ky;
        widen_row(g, &l, in + (size_t)iy * row_bytes, a_zero_point,
                  bufs + ky * l.row_elems);
      }
      for (size_t gi = 0; gi < l.groups; gi++)
        r.at[ky * l.groups + gi] = (ptrdiff_t)(buf * l.row_elems + gi * SLOT);
    }
    output_row(&r, &l, g->out_w, n, out + (oy - oy_begin) * g->out_w * n);
  }
}
