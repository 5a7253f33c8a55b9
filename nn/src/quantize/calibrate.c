/* Calibration: per-tensor statistics (exact min/max and a 2048-bin
 * histogram that widens as new extremes arrive) collected while the FP32
 * graph runs on real inputs, and the four ways to pick a clip range from
 * them. Ranges become asymmetric int8 parameters with an exact zero. */
#include "quant_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- histogram ------------------------------------------------------------ */

static double bin_width(const kq_stats *s) { return (s->hi - s->lo) / KQ_BINS; }

/* Moves the counts to a wider range; each old bin lands where its centre
 * falls (the new bins are at least as wide, so at most one bin). */
static void rebin(kq_stats *s, double nlo, double nhi) {
  double old[KQ_BINS];
  memcpy(old, s->hist, sizeof(old));
  double ow = bin_width(s), nw = (nhi - nlo) / KQ_BINS;
  memset(s->hist, 0, sizeof(s->hist));
  for (int i = 0; i < KQ_BINS; i++) {
    if (old[i] == 0)
      continue;
    double x = s->lo + (i + 0.5) * ow;
    int j = (int)((x - nlo) / nw);
    j = j < 0 ? 0 : j >= KQ_BINS ? KQ_BINS - 1 : j;
    s->hist[j] += old[i];
  }
  s->lo = nlo;
  s->hi = nhi;
}

void kq_stats_add(kq_stats *s, const float *v, int64_t n) {
  if (n <= 0)
    return;
  double bmin = DBL_MAX, bmax = -DBL_MAX;
  for (int64_t i = 0; i < n; i++) {
    double x = v[i];
    if (!(x == x) || isinf(x))
      continue; /* NaN/inf says nothing useful about a clip range */
    if (x < bmin)
      bmin = x;
    if (x > bmax)
      bmax = x;
  }
  if (bmin > bmax)
    return;
  if (!s->seen) {
    s->min = bmin;
    s->max = bmax;
    double lo = bmin, hi = bmax;
    if (hi - lo < 1e-6)
      hi = lo + 1e-6;
    s->lo = lo;
    s->hi = hi;
    s->seen = 1;
  } else {
    if (bmin < s->min)
      s->min = bmin;
    if (bmax > s->max)
      s->max = bmax;
    if (bmin < s->lo || bmax > s->hi) {
      /* Grow a little beyond the new extreme so a slowly drifting range
       * does not rebin (and blur) on every input. */
      double span = s->hi - s->lo;
      double nlo = bmin < s->lo ? bmin - 0.1 * span : s->lo;
      double nhi = bmax > s->hi ? bmax + 0.1 * span : s->hi;
      rebin(s, nlo, nhi);
    }
  }
  double w = bin_width(s), inv = 1.0 / w;
  for (int64_t i = 0; i < n; i++) {
    double x = v[i];
    if (!(x == x) || isinf(x))
      continue;
    int j = (int)((x - s->lo) * inv);
    j = j < 0 ? 0 : j >= KQ_BINS ? KQ_BINS - 1 : j;
    s->hist[j] += 1.0;
  }
}

/* ---- range selection ------------------------------------------------------ */

/* Value below which `frac` of the mass lies (linear inside a bin). */
static double quantile(const kq_stats *s, double frac) {
  double total = 0;
  for (int i = 0; i < KQ_BINS; i++)
    total += s->hist[i];
  double want = frac * total, acc = 0, w = bin_width(s);
  for (int i = 0; i < KQ_BINS; i++) {
    if (acc + s->hist[i] >= want && s->hist[i] > 0) {
      double f = (want - acc) / s->hist[i];
      return s->lo + (i + f) * w;
    }
    acc += s->hist[i];
  }
  return s->hi;
}

static int bin_of(const kq_stats *s, double x) {
  int j = (int)floor((x - s->lo) / bin_width(s));
  return j < 0 ? 0 : j > KQ_BINS ? KQ_BINS : j;
}

/* KL(P || Q) for the clip range of bins [ia, ib): P is the clipped
 * histogram with the outliers folded into its edge bins, Q the same bins
 * seen through 255 quantization levels (each level's mass spread evenly
 * over the level's non-empty bins), as TensorRT's calibrator does. */
static double kl_for_range(const kq_stats *s, int ia, int ib) {
  int nb = ib - ia;
  double *p = malloc(sizeof(double) * (size_t)nb * 2);
  if (!p)
    return INFINITY;
  double *q = p + nb;
  double left = 0, right = 0;
  for (int i = 0; i < ia; i++)
    left += s->hist[i];
  for (int i = ib; i < KQ_BINS; i++)
    right += s->hist[i];
  for (int i = 0; i < nb; i++)
    p[i] = s->hist[ia + i];
  const int levels = 255;
  for (int k = 0; k < levels; k++) {
    int b0 = (int)((int64_t)k * nb / levels);
    int b1 = (int)((int64_t)(k + 1) * nb / levels);
    double mass = 0;
    int nonzero = 0;
    for (int i = b0; i < b1; i++) {
      mass += p[i];
      nonzero += p[i] > 0;
    }
    for (int i = b0; i < b1; i++)
      q[i] = p[i] > 0 ? mass / nonzero : 0;
  }
  p[0] += left;
  p[nb - 1] += right;
  double sp = 0, sq = 0;
  for (int i = 0; i < nb; i++) {
    sp += p[i];
    sq += q[i];
  }
  double kl = 0;
  if (sp > 0 && sq > 0) {
    for (int i = 0; i < nb; i++) {
      if (p[i] <= 0)
        continue;
      double pi = p[i] / sp;
      double qi = q[i] > 0 ? q[i] / sq : 1e-10;
      kl += pi * log(pi / qi);
    }
  }
  free(p);
  return kl;
}

/* Expected squared quantization error for the clip range [a, b]: uniform
 * rounding noise inside, clipping error outside. */
static double mse_for_range(const kq_stats *s, double a, double b) {
  double step = (b - a) / 255.0, w = bin_width(s), e = 0;
  double inside = step * step / 12.0;
  for (int i = 0; i < KQ_BINS; i++) {
    if (s->hist[i] == 0)
      continue;
    double x = s->lo + (i + 0.5) * w;
    if (x < a)
      e += s->hist[i] * ((a - x) * (a - x) + inside);
    else if (x > b)
      e += s->hist[i] * ((x - b) * (x - b) + inside);
    else
      e += s->hist[i] * inside;
  }
  return e;
}

void kq_stats_range(const kq_stats *s, kestrel_calib_method method,
                    double percentile, double *lo, double *hi) {
  double mn = s->seen ? s->min : 0, mx = s->seen ? s->max : 0;
  *lo = mn;
  *hi = mx;
  if (!s->seen || mx - mn <= 0)
    return;
  double zlo = mn < 0 ? mn : 0, zhi = mx > 0 ? mx : 0;
  switch (method) {
  case KESTREL_CALIB_MINMAX:
    return;
  case KESTREL_CALIB_PERCENTILE: {
    double tail = 1.0 - percentile / 100.0;
    if (tail < 0)
      tail = 0;
    if (mn < 0)
      *lo = fmax(mn, quantile(s, tail));
    if (mx > 0)
      *hi = fmin(mx, quantile(s, 1.0 - tail));
    return;
  }
  case KESTREL_CALIB_ENTROPY:
  case KESTREL_CALIB_MSE: {
    /* Shrink [zlo, zhi] towards zero by f: zero keeps its place, which is
     * what the asymmetric grid needs; the best f wins. */
    double best = INFINITY, best_f = 1.0;
    for (int k = 0; k <= 200; k++) {
      double f = 0.02 + 0.98 * k / 200.0;
      double a = f * zlo, b = f * zhi, cost;
      if (method == KESTREL_CALIB_ENTROPY) {
        int ia = bin_of(s, a), ib = bin_of(s, b) + 1;
        if (ib > KQ_BINS)
          ib = KQ_BINS;
        if (ib - ia < 256)
          continue; /* coarser than the grid: KL says nothing */
        cost = kl_for_range(s, ia, ib);
      } else {
        cost = mse_for_range(s, a, b);
      }
      if (cost < best) {
        best = cost;
        best_f = f;
      }
    }
    *lo = fmax(mn, best_f * zlo);
    *hi = fmin(mx, best_f * zhi);
    return;
  }
  }
}

void kq_asym_params(double lo, double hi, float *scale, int32_t *zero) {
  if (lo > 0)
    lo = 0;
  if (hi < 0)
    hi = 0;
  if (hi - lo < 1e-8)
    hi = lo + 1e-8;
  double sc = (hi - lo) / 255.0;
  double z = -128.0 - lo / sc;
  long zi = lrint(z);
  if (zi < -128)
    zi = -128;
  if (zi > 127)
    zi = 127;
  *scale = (float)sc;
  *zero = (int32_t)zi;
}

/* ---- per-channel means (bias correction) --------------------------------- */

void kq_stats_add_channels(kq_stats *s, const float *v, int ndim,
                           const int64_t *dims) {
  if (ndim < 3)
    return;
  int64_t c1 = dims[1], cl = dims[ndim - 1];
  int64_t outer = dims[0], inner = 1;
  for (int d = 2; d < ndim; d++)
    inner *= dims[d];
  if (!s->sum_c1 && c1 > 0 && c1 <= (1 << 20)) {
    s->sum_c1 = calloc((size_t)c1, sizeof(double));
    s->n_c1 = s->sum_c1 ? c1 : 0;
  }
  if (!s->sum_clast && cl > 0 && cl <= (1 << 20)) {
    s->sum_clast = calloc((size_t)cl, sizeof(double));
    s->n_clast = s->sum_clast ? cl : 0;
  }
  if (s->sum_c1 && s->n_c1 == c1) {
    for (int64_t o = 0; o < outer; o++)
      for (int64_t c = 0; c < c1; c++) {
        const float *p = v + (o * c1 + c) * inner;
        double acc = 0;
        for (int64_t i = 0; i < inner; i++)
          acc += p[i];
        s->sum_c1[c] += acc;
      }
    s->count_c1 += (double)(outer * inner);
  }
  if (s->sum_clast && s->n_clast == cl) {
    int64_t rows = outer * c1 * inner / cl;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cl; c++)
        s->sum_clast[c] += v[r * cl + c];
    s->count_clast += (double)rows;
  }
}

void kq_stats_free_channels(kq_stats *s) {
  free(s->sum_c1);
  free(s->sum_clast);
  s->sum_c1 = s->sum_clast = NULL;
}
