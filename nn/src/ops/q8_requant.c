/* The shared requantization of quantized Conv/Gemm/ConvTranspose outputs
 * (q8_requant.h): the reference ops use it so that an unpacked INT8 model
 * and the same model packed for the fast kernels give identical bytes. */
#include "q8_requant.h"

#include <math.h>
#include <string.h>

#include "kernels.h"

static bool is_clamp(int kind) {
  return kind == KN_ACT_NONE || kind == KN_ACT_RELU || kind == KN_ACT_RELU6 ||
         kind == KN_ACT_RELU_N1_TO_1 || kind == KN_ACT_CLIP;
}

bool kn_q8_act_input_range(const kn_act *a, float y_scale, int32_t y_zero,
                           double *lo, double *hi) {
  double sy = y_scale, zy = y_zero;
  double ylo = (-128 - zy) * sy, yhi = (127 - zy) * sy;
  switch (a->kind) {
  case KN_ACT_HARDSWISH:
    /* Below -3 the output is 0; above 3 it is x. */
    *lo = -3.0;
    *hi = yhi >= 3.0 ? yhi : (-3.0 + sqrt(9.0 + 24.0 * fmax(yhi, 0.0))) / 2.0;
    break;
  case KN_ACT_HARDSIGMOID:
    if (!(a->alpha > 0.0f))
      return false;
    *lo = (fmax(ylo, 0.0) - a->beta) / a->alpha;
    *hi = (fmin(yhi, 1.0) - a->beta) / a->alpha;
    break;
  case KN_ACT_SIGMOID: {
    double l = fmin(fmax(ylo, 1.0 / 1024), 0.5);
    double h = fmax(fmin(yhi, 1.0 - 1.0 / 1024), 0.5);
    *lo = log(l / (1.0 - l));
    *hi = log(h / (1.0 - h));
    break;
  }
  default:
    return false;
  }
  /* Keep 0 exact and the zero point inside int8. */
  *lo = fmin(*lo, 0.0);
  *hi = fmax(*hi, 0.0);
  return *hi - *lo > 1e-6 && isfinite(*lo) && isfinite(*hi);
}

/* A real clamp bound on the output grid; rounding is monotone, so clamping
 * the rounded value equals rounding the clamped one. */
static int32_t q_bound(float real, float scale, int32_t zp, int32_t lo,
                       int32_t hi, int32_t dflt) {
  if (isinf(real) || !(scale > 0.0f))
    return dflt;
  double q = nearbyint((double)real / scale) + zp;
  return q < lo ? lo : (q > hi ? hi : (int32_t)q);
}

void kn_q8_epilogue_init(kn_q8_epilogue *e, const kn_act *act, float y_scale,
                         int32_t y_zero, kestrel_dtype ydt) {
  memset(e, 0, sizeof(*e));
  int32_t dmin = ydt == KESTREL_DTYPE_U8 ? 0 : -128;
  int32_t dmax = ydt == KESTREL_DTYPE_U8 ? 255 : 127;
  e->act = *act;
  e->y_scale = y_scale;
  e->y_zero = y_zero;
  e->out_scale = y_scale;
  e->zero_point = y_zero;
  e->lo = dmin;
  e->hi = dmax;
  double alo, ahi;
  if (is_clamp(act->kind)) {
    e->kind = KN_Q8_EPI_CLAMP;
    float lo = -INFINITY, hi = INFINITY;
    switch (act->kind) {
    case KN_ACT_RELU: lo = 0.0f; break;
    case KN_ACT_RELU6: lo = 0.0f; hi = 6.0f; break;
    case KN_ACT_RELU_N1_TO_1: lo = -1.0f; hi = 1.0f; break;
    case KN_ACT_CLIP: lo = act->lo; hi = act->hi; break;
    default: break;
    }
    e->lo = q_bound(lo, y_scale, y_zero, dmin, dmax, dmin);
    e->hi = q_bound(hi, y_scale, y_zero, dmin, dmax, dmax);
    if (e->lo > e->hi)
      e->lo = e->hi;
  } else if (ydt == KESTREL_DTYPE_I8 &&
             kn_q8_act_input_range(act, y_scale, y_zero, &alo, &ahi)) {
    /* As pack_weights builds the table of a packed node. */
    e->kind = KN_Q8_EPI_TABLE;
    float act_scale = (float)((ahi - alo) / 255.0);
    double z = nearbyint(-128.0 - alo / act_scale);
    e->zero_point = (int32_t)(z < -128 ? -128 : (z > 127 ? 127 : z));
    e->out_scale = act_scale;
    for (int q8 = -128; q8 < 128; q8++) {
      float v = kn_act_apply1(act, act_scale * (float)(q8 - e->zero_point));
      float r = rintf(v / y_scale);
      r = r > 1000.0f ? 1000.0f : (r < -1000.0f ? -1000.0f : r);
      int32_t o = (int32_t)r + y_zero;
      e->lut[q8 + 128] = (int8_t)(o < -128 ? -128 : (o > 127 ? 127 : o));
    }
  } else {
    e->kind = KN_Q8_EPI_FLOAT;
  }
}

float kn_q8_channel_scale(const kn_q8_epilogue *e, float x_scale,
                          float w_scale) {
  if (e->kind == KN_Q8_EPI_FLOAT)
    return (float)((double)x_scale * (double)w_scale);
  return (float)((double)x_scale * (double)w_scale / e->out_scale);
}

int32_t kn_q8_epilogue_apply(const kn_q8_epilogue *e, int32_t acc,
                             float channel_scale) {
  if (e->kind == KN_Q8_EPI_FLOAT) {
    float real = kn_act_apply1(&e->act, (float)acc * channel_scale);
    double q = nearbyint((double)real / e->y_scale);
    /* NaN or far out of range: saturate without overflowing. */
    if (!(q == q))
      q = 0;
    q = q > 65536.0 ? 65536.0 : (q < -65536.0 ? -65536.0 : q);
    int32_t v = (int32_t)q + e->y_zero;
    return v < e->lo ? e->lo : (v > e->hi ? e->hi : v);
  }
  /* kernels.h's definition, generalized to the uint8 range. */
  kn_qs8_requant rq = {NULL, e->zero_point, e->lo, e->hi};
  int32_t v;
  if (e->lo >= -128 && e->hi <= 127) {
    v = kn_qs8_requantize(acc, channel_scale, &rq);
  } else {
    float x = (float)acc * channel_scale;
    if (!(x == x))
      x = 0.0f; /* NaN from a hostile scale: see kn_qs8_requantize */
    float lo = (float)(e->lo - e->zero_point);
    float hi = (float)(e->hi - e->zero_point);
    x = x < lo ? lo : x;
    x = x > hi ? hi : x;
    v = (int32_t)nearbyintf(x) + e->zero_point;
  }
  if (e->kind == KN_Q8_EPI_TABLE)
    return e->lut[v + 128];
  return v;
}
