/* Portable references of the preprocessing kernels: the test oracles, and
 * the definition every ISA matches byte for byte. */
#include <math.h>

#include "preprocess_kernels.h"

void kestrel_u8_rowacc__ref(const uint8_t *restrict row, size_t n,
                            uint32_t weight, uint32_t *restrict acc,
                            int first) {
  if (first) {
    for (size_t i = 0; i < n; i++)
      acc[i] = weight * row[i];
  } else {
    for (size_t i = 0; i < n; i++)
      acc[i] += weight * row[i];
  }
}

static inline float clamp255(float x) {
  return x > 255.0f ? 255.0f : (x < 0.0f ? 0.0f : x);
}

void kestrel_pp_output__ref(const kn_pp_output *p, const float *restrict c0,
                            const float *restrict c1,
                            const float *restrict c2, size_t n,
                            void *restrict dst) {
  int lo = p->dtype == KN_PP_I8 ? -128 : 0;
  int hi = p->dtype == KN_PP_I8 ? 127 : 255;
  float qlo = (float)(lo - p->zero_point), qhi = (float)(hi - p->zero_point);
  for (size_t i = 0; i < n; i++) {
    float rgb[3];
    if (p->yuv) {
      float y = (c0[i] - p->y_offset) * p->y_scale;
      float u = (c1[i] - 128.0f) * p->c_scale;
      float v = (c2[i] - 128.0f) * p->c_scale;
      rgb[0] = clamp255(y + p->cr_r * v);
      rgb[1] = clamp255(y + p->cb_g * u + p->cr_g * v);
      rgb[2] = clamp255(y + p->cb_b * u);
    } else {
      rgb[0] = c0[i];
      rgb[1] = c1[i];
      rgb[2] = c2[i];
    }
    for (int c = 0; c < 3; c++) {
      float px = rgb[p->source[c]];
      size_t idx = p->nhwc ? i * 3 + (size_t)c : (size_t)c * p->channel_stride + i;
      if (p->dtype == KN_PP_F32) {
        ((float *)dst)[idx] = px * p->mul[c] + p->add[c];
        continue;
      }
      int q;
      if (p->quant) {
        float x = (px * p->mul[c] + p->add[c]) * p->qinv;
        x = x < qlo ? qlo : x;
        x = x > qhi ? qhi : x;
        q = (int)lrintf(x) + p->zero_point;
      } else {
        q = (int)lrintf(px) + lo; /* raw pixels; px is in [0, 255] */
      }
      if (p->dtype == KN_PP_U8)
        ((uint8_t *)dst)[idx] = (uint8_t)q;
      else
        ((int8_t *)dst)[idx] = (int8_t)q;
    }
  }
}
