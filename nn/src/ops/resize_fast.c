/* Resize fast path (resize_fast.h): per output pixel, the combined taps of
 * the interpolated axes, then each tap's contiguous channel vector
 * accumulated into a per-channel double sum, in the reference's order. */
#include "resize_fast.h"

#include <math.h>
#include <string.h>

#include "ops_common.h"

/* Taps of one output pixel: at most 4 x 4 (cubic in both H and W). */
#define MAX_COMBOS (KN_RESIZE_TAPS * KN_RESIZE_TAPS)

size_t kn_resize_fast_scratch(const kn_tensor *y) {
  if (!y || y->ndim != 4 || y->dims[3] < 1)
    return 0;
  return (size_t)y->dims[3] * sizeof(double) + 64;
}

/* The reference's "outer" arithmetic, reproduced: sum += w * x with x the
 * float value (dequantized as (float)(q - zero) * scale) and w a double. */
static void accumulate_f32(double *restrict acc, const float *restrict src,
                           double w, size_t c) {
  for (size_t i = 0; i < c; i++)
    acc[i] += w * (double)src[i];
}

static void accumulate_q8(double *restrict acc, const uint8_t *restrict src,
                          const float *restrict real, double w, size_t c) {
  for (size_t i = 0; i < c; i++)
    acc[i] += w * (double)real[src[i]];
}

bool kn_resize_fast_run(const kn_tensor *xt, kn_tensor *yt,
                        const kn_resize_tap *const *taps, const int *ntaps,
                        const uint8_t *const *outside, void *scratch,
                        size_t scratch_bytes) {
  if (xt->ndim != 4 || yt->ndim != 4)
    return false;
  bool q8 = xt->dtype != KESTREL_DTYPE_F32;
  if (q8 && (xt->dtype != yt->dtype || (xt->dtype != KESTREL_DTYPE_I8 &&
                                        xt->dtype != KESTREL_DTYPE_U8)))
    return false;
  if (!q8 && yt->dtype != KESTREL_DTYPE_F32)
    return false;
  int64_t c = xt->dims[3];
  if (c < 1 || yt->dims[3] != c || yt->dims[0] != xt->dims[0] ||
      ntaps[0] != 1 || ntaps[3] != 1 || (ntaps[1] == 1 && ntaps[2] == 1))
    return false;
  /* Channels map to themselves with weight 1; nothing extrapolates. */
  for (int64_t o = 0; o < c; o++)
    if (taps[3][o * KN_RESIZE_TAPS].off != o ||
        taps[3][o * KN_RESIZE_TAPS].w != 1.0 || outside[3][o])
      return false;
  for (int a = 0; a < 3; a++)
    for (int64_t o = 0; o < yt->dims[a]; o++)
      if (outside[a][o])
        return false;
  uintptr_t base_addr = ((uintptr_t)scratch + 31) & ~(uintptr_t)31;
  size_t lost = (size_t)(base_addr - (uintptr_t)scratch);
  if (!scratch || scratch_bytes < lost + (size_t)c * sizeof(double))
    return false;
  double *acc = (double *)base_addr;

  float real[256];
  float xs = 1.0f, ys = 1.0f;
  int32_t xz = 0, yz = 0;
  if (q8) {
    xs = kn_q_scale(xt, 0);
    ys = kn_q_scale(yt, 0);
    xz = kn_q_zero(xt, 0);
    yz = kn_q_zero(yt, 0);
    /* Indexed by the raw byte. */
    for (int b = 0; b < 256; b++) {
      int32_t v = xt->dtype == KESTREL_DTYPE_I8 ? (int32_t)(int8_t)b : b;
      real[b] = (float)(v - xz) * xs;
    }
  }
  size_t es = kestrel_dtype_size(xt->dtype);
  const uint8_t *x = xt->data;
  uint8_t *y = yt->data;
  int64_t oh_n = yt->dims[1], ow_n = yt->dims[2];
  size_t pixel = 0;
  for (int64_t on = 0; on < yt->dims[0]; on++) {
    const kn_resize_tap *tn = taps[0] + on * KN_RESIZE_TAPS;
    for (int64_t oh = 0; oh < oh_n; oh++) {
      const kn_resize_tap *th = taps[1] + oh * KN_RESIZE_TAPS;
      for (int64_t ow = 0; ow < ow_n; ow++, pixel++) {
        const kn_resize_tap *tw = taps[2] + ow * KN_RESIZE_TAPS;
        /* The reference: wbase and base over one-tap axes in axis order,
         * then the active axes' taps, last active axis fastest. */
        int64_t base = tn->off;
        double wbase = 1.0 * tn->w;
        if (ntaps[1] == 1) {
          base += th->off;
          wbase *= th->w;
        }
        if (ntaps[2] == 1) {
          base += tw->off;
          wbase *= tw->w;
        }
        wbase *= 1.0; /* the channel axis' weight */
        int64_t off[MAX_COMBOS];
        double wt[MAX_COMBOS];
        int nc = 0;
        int nh = ntaps[1] > 1 ? ntaps[1] : 1;
        int nw = ntaps[2] > 1 ? ntaps[2] : 1;
        for (int i = 0; i < nh; i++)
          for (int j = 0; j < nw; j++) {
            int64_t o = base;
            double w = wbase;
            if (ntaps[1] > 1) {
              o += th[i].off;
              w *= th[i].w;
            }
            if (ntaps[2] > 1) {
              o += tw[j].off;
              w *= tw[j].w;
            }
            if (w != 0.0) {
              off[nc] = o;
              wt[nc] = w;
              nc++;
            }
          }
        memset(acc, 0, (size_t)c * sizeof(double));
        for (int k = 0; k < nc; k++) {
          if (q8)
            accumulate_q8(acc, x + (size_t)off[k], real, wt[k], (size_t)c);
          else
            accumulate_f32(acc, (const float *)x + off[k], wt[k], (size_t)c);
        }
        uint8_t *dst = y + pixel * (size_t)c * es;
        if (!q8) {
          float *d = (float *)dst;
          for (int64_t i = 0; i < c; i++)
            d[i] = (float)acc[i];
        } else {
          for (int64_t i = 0; i < c; i++) {
            float v = (float)acc[i];
            int32_t q = kn_saturate(kn_round_even((double)v / ys) + yz,
                                    yt->dtype);
            dst[i] = (uint8_t)q;
          }
        }
      }
    }
  }
  return true;
}
