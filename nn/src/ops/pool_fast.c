/* NHWC pooling fast paths (see pool_fast.h): GlobalAveragePool on 8-bit
 * tensors by integer byte sums, and MaxPool by channel-vector maxima. */
#include "pool_fast.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "kernels.h"
#include "ops_common.h"
#include "threadpool.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#endif

/* ---- GlobalAveragePool, 8-bit ---------------------------------------------- */

/* Channels per work item; the int32 byte sums of one item live on the
 * stack. */
#define GAP_BLOCK 64
/* Bounds every partial sum of the reference to < 2^53 units of u (terms
 * below 2^34 units, see the guard on the zero point), so it is exact. */
#define GAP_MAX_PIXELS (1 << 18)

typedef struct gap_q8 {
  const uint8_t *x;
  uint8_t *y;
  bool i8, avx2;
  bool flat; /* c divides 16: the whole plane is one run of bytes */
  size_t c, pixels, blocks;
  int32_t xz, yz;
  float xs, ys;
  double unit;        /* u = 2^exp, a normal double */
  double scale;       /* 1 / u */
  int64_t m;          /* xs / u */
  int64_t dmin, dmax; /* bounds of d over every byte */
} gap_q8;

/* The reference's requantization of the channel sum acc (pool_f32, then
 * pool_run's 8-bit tail); non-decreasing in acc when ys > 0, and
 * non-increasing when ys < 0. */
static int32_t gap_requant(const gap_q8 *g, double acc, kestrel_dtype dt) {
  float r = (float)(acc / (double)g->pixels);
  double v = (double)r / g->ys;
  /* kn_round_even without its libm call (nearbyint, most of this
   * function's time): below 2^51, adding and subtracting 1.5 * 2^52
   * rounds to an integer half to even in the default rounding mode, as
   * nearbyint does; the rest (and NaN) takes kn_round_even itself. */
  int64_t q = fabs(v) < 0x1p51 ? (int64_t)((v + 0x1.8p52) - 0x1.8p52)
                                : kn_round_even(v);
  return kn_saturate(q + g->yz, dt);
}

/* Plain byte sums of count channels at stride c (the tail channels of the
 * vector loops, and CPUs without them). */
static void gap_sum_generic(int32_t *restrict sums, const uint8_t *restrict x,
                            size_t pixels, size_t c, size_t count, bool i8) {
  if (i8) {
    for (size_t p = 0; p < pixels; p++) {
      const int8_t *row = (const int8_t *)x + p * c;
      for (size_t i = 0; i < count; i++)
        sums[i] += row[i];
    }
  } else {
    for (size_t p = 0; p < pixels; p++) {
      const uint8_t *row = x + p * c;
      for (size_t i = 0; i < count; i++)
        sums[i] += row[i];
    }
  }
}

#ifdef HAVE_AVX2_PATH
/* Bytes are summed in int16 lanes, widened to the int32 sums every
 * GAP_LANE_TERMS terms per lane: 128 * -128 and 128 * 255 fit in int16. */
#define GAP_LANE_TERMS 128

__attribute__((target("avx2"), always_inline)) static inline __m256i
gap_widen16(const uint8_t *p, bool i8) {
  __m128i v = _mm_loadu_si128((const __m128i *)p);
  return i8 ? _mm256_cvtepi8_epi16(v) : _mm256_cvtepu8_epi16(v);
}

__attribute__((target("avx2"), always_inline)) static inline __m128i
gap_widen8(const uint8_t *p, bool i8) {
  __m128i v = _mm_loadl_epi64((const __m128i *)p);
  return i8 ? _mm_cvtepi8_epi16(v) : _mm_cvtepu8_epi16(v);
}

/* sums[0..16) += the int16 lanes of a. */
__attribute__((target("avx2"), always_inline)) static inline void
gap_flush16(int32_t *sums, __m256i a) {
  __m256i lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(a));
  __m256i hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a, 1));
  _mm256_storeu_si256(
      (__m256i *)sums,
      _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)sums), lo));
  _mm256_storeu_si256(
      (__m256i *)(sums + 8),
      _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(sums + 8)), hi));
}

/* nv 16-channel vectors and, with has8, one 8-channel half, at stride c.
 * Inlined with constant nv, has8 and i8 so the accumulators stay in
 * registers. */
__attribute__((target("avx2"), always_inline)) static inline void
gap_sum_block_avx2(int32_t *restrict sums, const uint8_t *restrict x,
                   size_t pixels, size_t c, int nv, bool has8, bool i8) {
  for (size_t p0 = 0; p0 < pixels; p0 += GAP_LANE_TERMS) {
    size_t p1 = pixels - p0 < GAP_LANE_TERMS ? pixels : p0 + GAP_LANE_TERMS;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    __m128i a8 = _mm_setzero_si128();
    for (size_t p = p0; p < p1; p++) {
      const uint8_t *row = x + p * c;
      if (nv > 0)
        a0 = _mm256_add_epi16(a0, gap_widen16(row, i8));
      if (nv > 1)
        a1 = _mm256_add_epi16(a1, gap_widen16(row + 16, i8));
      if (nv > 2)
        a2 = _mm256_add_epi16(a2, gap_widen16(row + 32, i8));
      if (nv > 3)
        a3 = _mm256_add_epi16(a3, gap_widen16(row + 48, i8));
      if (has8)
        a8 = _mm_add_epi16(a8, gap_widen8(row + 16 * nv, i8));
    }
    if (nv > 0)
      gap_flush16(sums, a0);
    if (nv > 1)
      gap_flush16(sums + 16, a1);
    if (nv > 2)
      gap_flush16(sums + 32, a2);
    if (nv > 3)
      gap_flush16(sums + 48, a3);
    if (has8) {
      int32_t *s = sums + 16 * nv;
      _mm256_storeu_si256(
          (__m256i *)s, _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)s),
                                         _mm256_cvtepi16_epi32(a8)));
    }
  }
}

/* Sums the first channels of a block (count <= GAP_BLOCK) in whole
 * 16- and 8-channel vectors; returns how many it did. Loads stay inside
 * each pixel's count channels, so nothing is read past the tensor. */
__attribute__((target("avx2"))) static size_t
gap_sum_avx2(int32_t *restrict sums, const uint8_t *restrict x, size_t pixels,
             size_t c, size_t count, bool i8) {
  int nv = (int)(count / 16);
  bool has8 = count % 16 >= 8;
#define GAP_CASE(NV, H8)                                                       \
  case NV * 2 + H8:                                                            \
    if (i8)                                                                    \
      gap_sum_block_avx2(sums, x, pixels, c, NV, H8, true);                    \
    else                                                                       \
      gap_sum_block_avx2(sums, x, pixels, c, NV, H8, false);                   \
    break;
  switch (nv * 2 + has8) {
    GAP_CASE(0, 1)
    GAP_CASE(1, 0)
    GAP_CASE(1, 1)
    GAP_CASE(2, 0)
    GAP_CASE(2, 1)
    GAP_CASE(3, 0)
    GAP_CASE(3, 1)
    GAP_CASE(4, 0)
  default:
    break;
  }
#undef GAP_CASE
  return (size_t)nv * 16 + (has8 ? 8 : 0);
}

/* c in {1, 2, 4, 8} (a few channels over many pixels: the first SE block):
 * the plane is summed as one run of bytes, 32 per step, so that lane l
 * holds channel l % c; the lanes fold into the c sums at the end. */
__attribute__((target("avx2"))) static void
gap_sum_flat_avx2(int32_t *restrict sums, const uint8_t *restrict x,
                  size_t pixels, size_t c, bool i8) {
  size_t total = pixels * c, i = 0;
  int32_t lanes[16] = {0};
  while (total - i >= 16) {
    /* Up to GAP_LANE_TERMS vectors into each of two accumulators. */
    size_t left = (total - i) / 16;
    size_t steps = left < 2 * GAP_LANE_TERMS ? left : 2 * GAP_LANE_TERMS;
    __m256i a = _mm256_setzero_si256(), b = a;
    size_t s = 0;
    if (i8)
      for (; s + 2 <= steps; s += 2, i += 32) {
        a = _mm256_add_epi16(a, gap_widen16(x + i, true));
        b = _mm256_add_epi16(b, gap_widen16(x + i + 16, true));
      }
    else
      for (; s + 2 <= steps; s += 2, i += 32) {
        a = _mm256_add_epi16(a, gap_widen16(x + i, false));
        b = _mm256_add_epi16(b, gap_widen16(x + i + 16, false));
      }
    if (s < steps) {
      a = _mm256_add_epi16(a, gap_widen16(x + i, i8));
      i += 16;
    }
    gap_flush16(lanes, a);
    gap_flush16(lanes, b);
  }
  /* i is a multiple of 16, hence of c: byte i + l is channel l % c. */
  for (size_t l = 0; i + l < total; l++)
    lanes[l] += i8 ? (int32_t)(int8_t)x[i + l] : (int32_t)x[i + l];
  for (size_t l = 0; l < 16; l++)
    sums[l % c] += lanes[l];
}
#endif

static void gap_items(void *ctx, size_t begin, size_t end, int thread) {
  (void)thread;
  const gap_q8 *g = ctx;
  kestrel_dtype dt = g->i8 ? KESTREL_DTYPE_I8 : KESTREL_DTYPE_U8;
  int32_t sums[GAP_BLOCK];
  for (size_t item = begin; item < end; item++) {
    size_t b = item / g->blocks, c0 = item % g->blocks * GAP_BLOCK;
    size_t count = g->c - c0 < GAP_BLOCK ? g->c - c0 : GAP_BLOCK;
    const uint8_t *x = g->x + b * g->pixels * g->c + c0;
    memset(sums, 0, sizeof(sums));
    /* |sum| <= 255 * 2^18 < 2^31, in any order. */
    size_t done = 0;
#ifdef HAVE_AVX2_PATH
    if (g->avx2 && g->flat) {
      gap_sum_flat_avx2(sums, x, g->pixels, g->c, g->i8);
      done = count;
    } else if (g->avx2) {
      done = gap_sum_avx2(sums, x, g->pixels, g->c, count, g->i8);
    }
#endif
    gap_sum_generic(sums + done, x + done, g->pixels, g->c, count - done,
                    g->i8);
    int64_t n = (int64_t)g->pixels;
    for (size_t i = 0; i < count; i++) {
      int64_t k = (int64_t)sums[i] - n * g->xz;
      /* Multiplying by the power of two u is exact here (the integers
       * are below 2^53 and u >= 2^-149 keeps the products normal). */
      double lo = (double)(g->m * k - n * g->dmax) * g->unit;
      double hi = (double)(g->m * k - n * g->dmin) * g->unit;
      int32_t q = gap_requant(g, lo, dt);
      if (gap_requant(g, hi, dt) != q) {
        /* Near a rounding boundary: the exact sum, as the reference. */
        int64_t s = 0;
        for (size_t p = 0; p < g->pixels; p++) {
          int32_t v = g->i8 ? (int32_t)(int8_t)x[p * g->c + i]
                            : (int32_t)x[p * g->c + i];
          s += (int64_t)((double)((float)(v - g->xz) * g->xs) * g->scale);
        }
        q = gap_requant(g, (double)s * g->unit, dt);
      }
      g->y[b * g->c + c0 + i] = (uint8_t)q;
    }
  }
}

bool kn_global_avgpool_q8_nhwc_fast(const kn_exec *ex, const kn_tensor *x,
                                    kn_tensor *y) {
  if (x->ndim < 3 || y->ndim != x->ndim || !kn_is_q8(x->dtype) ||
      y->dtype != x->dtype || x->q_count != 1 || y->q_count > 1 || !x->q_scale)
    return false;
  size_t c = (size_t)x->dims[x->ndim - 1], pixels = 1;
  for (int d = 1; d < x->ndim - 1; d++) {
    pixels *= (size_t)x->dims[d];
    if (y->dims[d] != 1 || pixels > GAP_MAX_PIXELS)
      return false;
  }
  if (y->dims[0] != x->dims[0] ||
      y->dims[y->ndim - 1] != x->dims[x->ndim - 1] || pixels == 0 || c == 0 ||
      x->dims[0] < 1)
    return false;
  gap_q8 job, *g = &job;
  float xs = kn_q_scale(x, 0);
  const kn_tensor *qy = y->q_count ? y : x;
  g->x = x->data;
  g->y = y->data;
  g->i8 = x->dtype == KESTREL_DTYPE_I8;
  g->avx2 = kn_kernels_get()->isa == KN_ISA_AVX2;
  g->flat = c < 16 && 16 % c == 0;
  g->c = c;
  g->pixels = pixels;
  g->blocks = (c + GAP_BLOCK - 1) / GAP_BLOCK;
  g->xz = kn_q_zero(x, 0);
  g->xs = xs;
  g->ys = kn_q_scale(qy, 0);
  g->yz = kn_q_zero(qy, 0);
  /* A normal scale (terms are multiples of its ulp), a zero point within
   * a byte's reach (|q - xz| < 2^9), a usable output scale. */
  if (!isnormal(xs) || xs < 0.0f || !isfinite(g->ys) || g->ys == 0.0f ||
      g->xz < -255 || g->xz > 255 || g->yz < -(1 << 24) || g->yz > (1 << 24))
    return false;
  int exp = ilogbf(xs) - 23;
  g->unit = ldexp(1.0, exp);
  g->scale = ldexp(1.0, -exp);
  g->m = (int64_t)((double)xs * g->scale);
  /* |d| <= half an ulp of the largest term, in units of u: terms below
   * 2^(e+1) round by at most 2^(e-24). Looser than the exact range by at
   * most 2x, and costs no table per run. */
  int32_t qlo = g->i8 ? -128 : 0, qhi = g->i8 ? 127 : 255;
  int32_t kmax = qhi - g->xz > g->xz - qlo ? qhi - g->xz : g->xz - qlo;
  float top = (float)kmax * xs;
  if (!isfinite(top) || !isfinite(-top))
    return false;
  int shift = ilogbf(top) - ilogbf(xs) - 1;
  g->dmax = shift < 0 ? 0 : INT64_C(1) << shift;
  g->dmin = -g->dmax;
  kn_parallel_for(ex->pool, (size_t)x->dims[0] * g->blocks, 1, gap_items, g);
  return true;
}

/* ---- MaxPool ---------------------------------------------------------------- */

/* Windows with more taps decline (the reference runs). */
#define MAXPOOL_MAX_TAPS 64
/* Input bytes a thread should at least read before the pool is woken. */
#define MAXPOOL_MIN_CHUNK_BYTES 16384

enum { MAXPOOL_I8, MAXPOOL_U8, MAXPOOL_F32 };

/* count output pixels of bytes each, dense from dst; the taps of pixel i
 * start at src + i * src_step + off[t], t < taps (taps >= 1), in the
 * reference's order (rows, then columns). */
typedef void (*maxpool_pixels_fn)(uint8_t *restrict dst,
                                  const uint8_t *restrict src,
                                  const ptrdiff_t *off, size_t taps,
                                  size_t bytes, size_t count, size_t src_step);

/* `s > a ? s : a` from the first tap on is the reference's fold (pool_f32:
 * the first valid tap, then `v > acc`): for floats it keeps the first of
 * equal values and skips a NaN after the first tap; maxps(s, a) computes
 * exactly that. */
#define MAXPOOL_PIXELS_C(NAME, T)                                              \
  static void NAME(uint8_t *restrict dst, const uint8_t *restrict src,         \
                   const ptrdiff_t *off, size_t taps, size_t bytes,            \
                   size_t count, size_t src_step) {                            \
    size_t n = bytes / sizeof(T);                                              \
    for (size_t i = 0; i < count; i++, dst += bytes, src += src_step) {        \
      T *restrict d = (T *)(void *)dst;                                        \
      const T *s0 = (const T *)(const void *)(src + off[0]);                   \
      for (size_t k = 0; k < n; k++)                                           \
        d[k] = s0[k];                                                          \
      for (size_t t = 1; t < taps; t++) {                                      \
        const T *s = (const T *)(const void *)(src + off[t]);                  \
        for (size_t k = 0; k < n; k++)                                         \
          d[k] = s[k] > d[k] ? s[k] : d[k];                                    \
      }                                                                        \
    }                                                                          \
  }
MAXPOOL_PIXELS_C(maxpool_i8_generic, int8_t)
MAXPOOL_PIXELS_C(maxpool_u8_generic, uint8_t)
MAXPOOL_PIXELS_C(maxpool_f32_generic, float)

#ifdef HAVE_AVX2_PATH
#define MAXPOOL_F32_256(s, a)                                                  \
  _mm256_castps_si256(                                                         \
      _mm256_max_ps(_mm256_castsi256_ps(s), _mm256_castsi256_ps(a)))
#define MAXPOOL_F32_128(s, a)                                                  \
  _mm_castps_si128(_mm_max_ps(_mm_castsi128_ps(s), _mm_castsi128_ps(a)))

/* 32 bytes per vector; a pixel that is not a whole number of vectors
 * ends with one that overlaps the previous (it recomputes the same
 * lanes from the same taps), below 32 bytes two 16- or 8-byte vectors
 * do the same, and below 8 bytes (int8 with c < 8, float with c = 1)
 * scalars. Loads stay within each tap's pixel. */
#define MAXPOOL_PIXELS_AVX2(NAME, MAX256, MAX128, T)                           \
  __attribute__((target("avx2"))) static void NAME(                            \
      uint8_t *restrict dst, const uint8_t *restrict src,                      \
      const ptrdiff_t *off, size_t taps, size_t bytes, size_t count,           \
      size_t src_step) {                                                       \
    for (size_t i = 0; i < count; i++, dst += bytes, src += src_step) {        \
      if (bytes >= 32) {                                                       \
        for (size_t o = 0;; o += 32) {                                         \
          if (o + 32 > bytes)                                                  \
            o = bytes - 32;                                                    \
          __m256i a = _mm256_loadu_si256((const __m256i *)(src + off[0] + o)); \
          for (size_t t = 1; t < taps; t++)                                    \
            a = MAX256(_mm256_loadu_si256((const __m256i *)(src + off[t] + o)), \
                       a);                                                     \
          _mm256_storeu_si256((__m256i *)(dst + o), a);                        \
          if (o + 32 == bytes)                                                 \
            break;                                                             \
        }                                                                      \
      } else if (bytes >= 16) {                                                \
        size_t o = 0;                                                          \
        for (int h = 0; h < 2; h++, o = bytes - 16) {                          \
          __m128i a = _mm_loadu_si128((const __m128i *)(src + off[0] + o));    \
          for (size_t t = 1; t < taps; t++)                                    \
            a = MAX128(_mm_loadu_si128((const __m128i *)(src + off[t] + o)),   \
                       a);                                                     \
          _mm_storeu_si128((__m128i *)(dst + o), a);                           \
        }                                                                      \
      } else if (bytes >= 8) {                                                 \
        size_t o = 0;                                                          \
        for (int h = 0; h < 2; h++, o = bytes - 8) {                           \
          __m128i a = _mm_loadl_epi64((const __m128i *)(src + off[0] + o));    \
          for (size_t t = 1; t < taps; t++)                                    \
            a = MAX128(_mm_loadl_epi64((const __m128i *)(src + off[t] + o)),   \
                       a);                                                     \
          _mm_storel_epi64((__m128i *)(dst + o), a);                           \
        }                                                                      \
      } else {                                                                 \
        T *restrict d = (T *)(void *)dst;                                      \
        for (size_t k = 0; k < bytes / sizeof(T); k++) {                       \
          T a = ((const T *)(const void *)(src + off[0]))[k];                  \
          for (size_t t = 1; t < taps; t++) {                                  \
            T s = ((const T *)(const void *)(src + off[t]))[k];                \
            a = s > a ? s : a;                                                 \
          }                                                                    \
          d[k] = a;                                                            \
        }                                                                      \
      }                                                                        \
    }                                                                          \
  }
MAXPOOL_PIXELS_AVX2(maxpool_i8_avx2, _mm256_max_epi8, _mm_max_epi8, int8_t)
MAXPOOL_PIXELS_AVX2(maxpool_u8_avx2, _mm256_max_epu8, _mm_max_epu8, uint8_t)
MAXPOOL_PIXELS_AVX2(maxpool_f32_avx2, MAXPOOL_F32_256, MAXPOOL_F32_128, float)
#endif

typedef struct maxpool_job {
  const uint8_t *x;
  uint8_t *y;
  maxpool_pixels_fn pixels;
  size_t es, pix; /* element and pixel (c elements) bytes */
  int64_t ih, iw, oh, ow;
  int64_t kh, kw, sh, sw, dh, dw, ph, pw;
  int64_t ox_lo, ox_hi; /* outputs whose window lies inside the row */
  bool remap;           /* 8-bit output parameters differ from x's */
  uint8_t empty[4];     /* the element of a window without a valid tap */
  uint8_t lut[256];     /* 8-bit: the reference's byte for each max byte */
} maxpool_job;

/* Taps [k0, k1) of a window of k taps d apart starting at o that land in
 * [0, len); k0 == k1 when none does. */
static void maxpool_taps(int64_t o, int64_t k, int64_t d, int64_t len,
                         int64_t *k0, int64_t *k1) {
  int64_t lo = o >= 0 ? 0 : (d - 1 - o) / d;
  int64_t hi = o > len - 1 ? 0 : (len - 1 - o) / d + 1;
  if (hi > k)
    hi = k;
  if (lo > hi)
    lo = hi;
  *k0 = lo;
  *k1 = hi;
}

static void maxpool_fill_empty(const maxpool_job *j, uint8_t *dst,
                               size_t pixels) {
  for (size_t i = 0; i < pixels * j->pix; i += j->es)
    memcpy(dst + i, j->empty, j->es);
}

static void maxpool_remap(const maxpool_job *j, uint8_t *dst, size_t bytes) {
  if (j->remap)
    for (size_t i = 0; i < bytes; i++)
      dst[i] = j->lut[dst[i]];
}

/* Output pixels [ox0, ox1) of a row whose window is clipped in x. */
static void maxpool_edges(const maxpool_job *j, uint8_t *out,
                          const uint8_t *image, int64_t y0, int64_t ky0,
                          int64_t ky1, int64_t ox0, int64_t ox1) {
  ptrdiff_t off[MAXPOOL_MAX_TAPS];
  size_t pix = j->pix;
  for (int64_t ox = ox0; ox < ox1; ox++) {
    int64_t x0 = ox * j->sw - j->pw, kx0, kx1;
    maxpool_taps(x0, j->kw, j->dw, j->iw, &kx0, &kx1);
    uint8_t *dst = out + (size_t)ox * pix;
    if (kx0 == kx1) {
      maxpool_fill_empty(j, dst, 1);
      continue;
    }
    size_t nt = 0;
    for (int64_t ky = ky0; ky < ky1; ky++)
      for (int64_t kx = kx0; kx < kx1; kx++)
        off[nt++] = (ptrdiff_t)(((y0 + ky * j->dh) * j->iw + x0 + kx * j->dw) *
                                (int64_t)pix);
    j->pixels(dst, image, off, nt, pix, 1, 0);
    maxpool_remap(j, dst, pix);
  }
}

static void maxpool_rows(void *ctx, size_t begin, size_t end, int thread) {
  (void)thread;
  const maxpool_job *j = ctx;
  size_t pix = j->pix;
  ptrdiff_t off[MAXPOOL_MAX_TAPS];
  for (size_t row = begin; row < end; row++) { /* row = n * OH + oy */
    int64_t n = (int64_t)row / j->oh, oy = (int64_t)row % j->oh;
    const uint8_t *image = j->x + (size_t)(n * j->ih * j->iw) * pix;
    uint8_t *out = j->y + row * (size_t)j->ow * pix;
    int64_t y0 = oy * j->sh - j->ph, ky0, ky1;
    maxpool_taps(y0, j->kh, j->dh, j->ih, &ky0, &ky1);
    if (ky0 == ky1) {
      maxpool_fill_empty(j, out, (size_t)j->ow);
      continue;
    }
    maxpool_edges(j, out, image, y0, ky0, ky1, 0, j->ox_lo);
    if (j->ox_lo < j->ox_hi) {
      /* Every window of the run has the same taps relative to its
       * first column x0 = ox * sw - pw >= 0. */
      size_t nt = 0;
      for (int64_t ky = ky0; ky < ky1; ky++)
        for (int64_t kx = 0; kx < j->kw; kx++)
          off[nt++] = (ptrdiff_t)(((y0 + ky * j->dh) * j->iw + kx * j->dw) *
                                  (int64_t)pix);
      uint8_t *dst = out + (size_t)j->ox_lo * pix;
      size_t count = (size_t)(j->ox_hi - j->ox_lo);
      j->pixels(dst, image + (size_t)(j->ox_lo * j->sw - j->pw) * pix, off,
                nt, pix, count, (size_t)j->sw * pix);
      maxpool_remap(j, dst, count * pix);
    }
    maxpool_edges(j, out, image, y0, ky0, ky1, j->ox_hi, j->ow);
  }
}

bool kn_maxpool_2d_nhwc_fast(const kn_exec *ex, const kn_tensor *x,
                             kn_tensor *y, const kn_spatial *xv,
                             const kn_spatial *yv, const kn_window *w) {
  if (x->ndim < 3 || x->ndim > 4 || y->ndim != x->ndim ||
      y->dtype != x->dtype || xv->nsp > 2 || yv->nsp != xv->nsp)
    return false;
  int kind;
  switch (x->dtype) {
  case KESTREL_DTYPE_I8: kind = MAXPOOL_I8; break;
  case KESTREL_DTYPE_U8: kind = MAXPOOL_U8; break;
  case KESTREL_DTYPE_F32: kind = MAXPOOL_F32; break;
  default: return false;
  }
  /* The depth axis of a 1-D/2-D view is a placeholder of one. */
  if (xv->sp[0] != 1 || yv->sp[0] != 1 || w->k[0] != 1 || w->pb[0] != 0 ||
      yv->n != xv->n || yv->c != xv->c || yv->sp[1] != w->out[1] ||
      yv->sp[2] != w->out[2] || w->k[1] > MAXPOOL_MAX_TAPS ||
      w->k[2] > MAXPOOL_MAX_TAPS || w->k[1] * w->k[2] > MAXPOOL_MAX_TAPS)
    return false;
  int64_t nx = kn_tensor_numel(x), ny = kn_tensor_numel(y);
  size_t es = kestrel_dtype_size(x->dtype);
  if (nx <= 0 || ny <= 0 || !x->data || !y->data)
    return false;
  /* Separate buffers: a window reads pixels other outputs overwrite. */
  const uint8_t *xb = x->data, *yb = y->data;
  if (xb < yb + (size_t)ny * es && yb < xb + (size_t)nx * es)
    return false;
  maxpool_job job, *j = &job;
  memset(j, 0, sizeof(*j));
  j->x = x->data;
  j->y = y->data;
  j->es = es;
  j->pix = (size_t)xv->c * es;
  j->ih = xv->sp[1];
  j->iw = xv->sp[2];
  j->oh = yv->sp[1];
  j->ow = yv->sp[2];
  j->kh = w->k[1];
  j->kw = w->k[2];
  j->sh = w->s[1];
  j->sw = w->s[2];
  j->dh = w->d[1];
  j->dw = w->d[2];
  j->ph = w->pb[1];
  j->pw = w->pb[2];
  /* Interior outputs: x0 = ox * sw - pw >= 0 and x0 + (kw - 1) * dw <
   * iw. */
  j->ox_lo = (j->pw + j->sw - 1) / j->sw;
  if (j->ox_lo > j->ow)
    j->ox_lo = j->ow;
  int64_t last = j->iw - 1 - (j->kw - 1) * j->dw + j->pw;
  j->ox_hi = last < 0 ? 0 : last / j->sw + 1;
  if (j->ox_hi > j->ow)
    j->ox_hi = j->ow;
  if (j->ox_hi < j->ox_lo)
    j->ox_hi = j->ox_lo;
  bool avx2 = kn_kernels_get()->isa == KN_ISA_AVX2;
  (void)avx2;
  if (kind == MAXPOOL_F32) {
    float empty = -INFINITY; /* the reference's value of an empty window */
    memcpy(j->empty, &empty, sizeof(empty));
    j->pixels = maxpool_f32_generic;
#ifdef HAVE_AVX2_PATH
    if (avx2)
      j->pixels = maxpool_f32_avx2;
#endif
  } else {
    /* The reference pools (float)(q - xz) * xs, which for a finite xs > 0
     * does not decrease with q: the real of the max byte is the max of
     * the reals. Its requantization is then a table of the reference's
     * own formula. */
    const kn_tensor *qy = y->q_count ? y : x;
    float xs = kn_q_scale(x, 0), ys = kn_q_scale(qy, 0);
    int32_t xz = kn_q_zero(x, 0), yz = kn_q_zero(qy, 0);
    if (x->q_count > 1 || y->q_count > 1 || !isfinite(xs) || !(xs > 0.0f) ||
        xz < -(1 << 24) || xz > (1 << 24) || yz < -(1 << 24) ||
        yz > (1 << 24))
      return false;
    for (int b = 0; b < 256; b++) {
      int32_t v = kind == MAXPOOL_I8 ? (int32_t)(int8_t)b : b;
      float real = (float)(v - xz) * xs;
      j->lut[b] = (uint8_t)kn_saturate(
          kn_round_even((double)real / ys) + yz, x->dtype);
      j->remap |= j->lut[b] != (uint8_t)b;
    }
    float none = -INFINITY;
    j->empty[0] = (uint8_t)kn_saturate(
        kn_round_even((double)none / ys) + yz, x->dtype);
    j->pixels = kind == MAXPOOL_I8 ? maxpool_i8_generic : maxpool_u8_generic;
#ifdef HAVE_AVX2_PATH
    if (avx2)
      j->pixels = kind == MAXPOOL_I8 ? maxpool_i8_avx2 : maxpool_u8_avx2;
#endif
  }
  size_t rows = (size_t)(yv->n * yv->sp[1]);
  size_t row_bytes = (size_t)(j->ow * j->kh * j->kw) * j->pix;
  size_t grain = row_bytes >= MAXPOOL_MIN_CHUNK_BYTES
                     ? 1
                     : MAXPOOL_MIN_CHUNK_BYTES / (row_bytes ? row_bytes : 1);
  kn_parallel_for(ex->pool, rows, grain, maxpool_rows, j);
  return true;
}
