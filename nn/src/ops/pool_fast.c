/* GlobalAveragePool int8/uint8 NHWC by integer sums (see pool_fast.h). */
#include "pool_fast.h"

#include <math.h>
#include <string.h>

#include "ops_common.h"
#include "threadpool.h"

/* Channels per work item; the int32 byte sums of one item live on the
 * stack. */
#define GAP_BLOCK 64
/* Bounds every partial sum of the reference to < 2^53 units of u (terms
 * below 2^34 units, see the guard on the zero point), so it is exact. */
#define GAP_MAX_PIXELS (1 << 18)

typedef struct gap_q8 {
  const uint8_t *x;
  uint8_t *y;
  bool i8;
  size_t c, pixels, blocks;
  int32_t xz, yz;
  float xs, ys;
  int exp;            /* u = 2^exp */
  double scale;       /* 1 / u */
  int64_t m;          /* xs / u */
  int64_t dmin, dmax; /* bounds of d over every byte */
} gap_q8;

/* The reference's requantization of the channel sum acc (pool_f32, then
 * pool_run's 8-bit tail); non-decreasing in acc when ys > 0, and
 * non-increasing when ys < 0. */
static int32_t gap_requant(const gap_q8 *g, double acc, kestrel_dtype dt) {
  float r = (float)(acc / (double)g->pixels);
  return kn_saturate(kn_round_even((double)r / g->ys) + g->yz, dt);
}

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
    /* |sum| <= 255 * 2^18 < 2^31. */
    if (g->i8) {
      for (size_t p = 0; p < g->pixels; p++) {
        const int8_t *row = (const int8_t *)x + p * g->c;
        for (size_t i = 0; i < count; i++)
          sums[i] += row[i];
      }
    } else {
      for (size_t p = 0; p < g->pixels; p++) {
        const uint8_t *row = x + p * g->c;
        for (size_t i = 0; i < count; i++)
          sums[i] += row[i];
      }
    }
    int64_t n = (int64_t)g->pixels;
    for (size_t i = 0; i < count; i++) {
      int64_t k = (int64_t)sums[i] - n * g->xz;
      double lo = ldexp((double)(g->m * k - n * g->dmax), g->exp);
      double hi = ldexp((double)(g->m * k - n * g->dmin), g->exp);
      int32_t q = gap_requant(g, lo, dt);
      if (gap_requant(g, hi, dt) != q) {
        /* Near a rounding boundary: the exact sum, as the reference. */
        int64_t s = 0;
        for (size_t p = 0; p < g->pixels; p++) {
          int32_t v = g->i8 ? (int32_t)(int8_t)x[p * g->c + i]
                            : (int32_t)x[p * g->c + i];
          s += (int64_t)((double)((float)(v - g->xz) * g->xs) * g->scale);
        }
        q = gap_requant(g, ldexp((double)s, g->exp), dt);
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
  g->exp = ilogbf(xs) - 23;
  g->scale = ldexp(1.0, -g->exp);
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
