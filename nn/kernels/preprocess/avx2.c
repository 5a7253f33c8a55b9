/* AVX2 preprocessing kernels: byte-exact with preprocess/ref.c.
 * rowacc widens 32 bytes at a time into four 8 x uint32 accumulators; the
 * output pass converts 8 tensor pixels per step with the reference's float
 * operations in the reference's order (no FMA), and clamps with max/min
 * operand orders that reproduce the reference's comparisons exactly
 * (including the sign of zero). */
#include <immintrin.h>
#include <math.h>

#include "preprocess_kernels.h"

void kestrel_u8_rowacc__avx2(const uint8_t *restrict row, size_t n,
                             uint32_t weight, uint32_t *restrict acc,
                             int first) {
  size_t i = 0;
  const __m256i w = _mm256_set1_epi32((int)weight);
  for (; i + 32 <= n; i += 32) {
    __m128i lo = _mm_loadu_si128((const __m128i *)(row + i));
    __m128i hi = _mm_loadu_si128((const __m128i *)(row + i + 16));
    __m256i v0 = _mm256_cvtepu8_epi32(lo);
    __m256i v1 = _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8));
    __m256i v2 = _mm256_cvtepu8_epi32(hi);
    __m256i v3 = _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8));
    if (weight != 1) {
      v0 = _mm256_mullo_epi32(v0, w);
      v1 = _mm256_mullo_epi32(v1, w);
      v2 = _mm256_mullo_epi32(v2, w);
      v3 = _mm256_mullo_epi32(v3, w);
    }
    __m256i *a = (__m256i *)(acc + i);
    if (!first) {
      v0 = _mm256_add_epi32(v0, _mm256_loadu_si256(a));
      v1 = _mm256_add_epi32(v1, _mm256_loadu_si256(a + 1));
      v2 = _mm256_add_epi32(v2, _mm256_loadu_si256(a + 2));
      v3 = _mm256_add_epi32(v3, _mm256_loadu_si256(a + 3));
    }
    _mm256_storeu_si256(a, v0);
    _mm256_storeu_si256(a + 1, v1);
    _mm256_storeu_si256(a + 2, v2);
    _mm256_storeu_si256(a + 3, v3);
  }
  for (; i + 8 <= n; i += 8) {
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + i)));
    if (weight != 1)
      v = _mm256_mullo_epi32(v, w);
    if (!first)
      v = _mm256_add_epi32(v, _mm256_loadu_si256((const __m256i *)(acc + i)));
    _mm256_storeu_si256((__m256i *)(acc + i), v);
  }
  for (; i < n; i++)
    acc[i] = (first ? 0 : acc[i]) + weight * row[i];
}

/* x < 0 ? 0 : x, then x > 255 ? 255 : x, as the reference writes it:
 * maxps returns its first operand only when it is strictly greater. */
static inline __m256 clamp255(__m256 x, __m256 zero, __m256 c255) {
  return _mm256_min_ps(c255, _mm256_max_ps(zero, x));
}

void kestrel_pp_output__avx2(const kn_pp_output *p, const float *restrict c0,
                             const float *restrict c1,
                             const float *restrict c2, size_t n,
                             void *restrict dst) {
  const __m256 zero = _mm256_setzero_ps(), c255 = _mm256_set1_ps(255.0f);
  const __m256 c128 = _mm256_set1_ps(128.0f);
  const __m256 yoff = _mm256_set1_ps(p->y_offset);
  const __m256 ysc = _mm256_set1_ps(p->y_scale);
  const __m256 csc = _mm256_set1_ps(p->c_scale);
  const __m256 cr_r = _mm256_set1_ps(p->cr_r), cb_g = _mm256_set1_ps(p->cb_g);
  const __m256 cr_g = _mm256_set1_ps(p->cr_g), cb_b = _mm256_set1_ps(p->cb_b);
  const int lo = p->dtype == KN_PP_I8 ? -128 : 0;
  const __m256 qlo = _mm256_set1_ps((float)(lo - p->zero_point));
  const __m256 qhi = _mm256_set1_ps(
      (float)((p->dtype == KN_PP_I8 ? 127 : 255) - p->zero_point));
  const __m256 qinv = _mm256_set1_ps(p->qinv);
  const __m256i zp = _mm256_set1_epi32(p->quant ? p->zero_point : lo);
  __m256 mul[3], add[3];
  for (int c = 0; c < 3; c++) {
    mul[c] = _mm256_set1_ps(p->mul[c]);
    add[c] = _mm256_set1_ps(p->add[c]);
  }
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 rgb[3];
    __m256 a = _mm256_loadu_ps(c0 + i), b = _mm256_loadu_ps(c1 + i);
    __m256 d = _mm256_loadu_ps(c2 + i);
    if (p->yuv) {
      __m256 y = _mm256_mul_ps(_mm256_sub_ps(a, yoff), ysc);
      __m256 u = _mm256_mul_ps(_mm256_sub_ps(b, c128), csc);
      __m256 v = _mm256_mul_ps(_mm256_sub_ps(d, c128), csc);
      rgb[0] = clamp255(_mm256_add_ps(y, _mm256_mul_ps(cr_r, v)), zero, c255);
      rgb[1] = clamp255(_mm256_add_ps(_mm256_add_ps(y, _mm256_mul_ps(cb_g, u)),
                                      _mm256_mul_ps(cr_g, v)),
                        zero, c255);
      rgb[2] = clamp255(_mm256_add_ps(y, _mm256_mul_ps(cb_b, u)), zero, c255);
    } else {
      rgb[0] = a;
      rgb[1] = b;
      rgb[2] = d;
    }
    if (p->dtype == KN_PP_F32) {
      float out[3][8];
      for (int c = 0; c < 3; c++) {
        __m256 o = _mm256_add_ps(_mm256_mul_ps(rgb[p->source[c]], mul[c]), add[c]);
        if (p->nhwc)
          _mm256_storeu_ps(out[c], o);
        else
          _mm256_storeu_ps((float *)dst + (size_t)c * p->channel_stride + i, o);
      }
      if (p->nhwc) {
        float *o = (float *)dst + i * 3;
        for (int k = 0; k < 8; k++) {
          o[3 * k] = out[0][k];
          o[3 * k + 1] = out[1][k];
          o[3 * k + 2] = out[2][k];
        }
      }
      continue;
    }
    int32_t q[3][8];
    for (int c = 0; c < 3; c++) {
      __m256 px = rgb[p->source[c]];
      __m256i r;
      if (p->quant) {
        __m256 x = _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(px, mul[c]), add[c]), qinv);
        x = _mm256_min_ps(qhi, _mm256_max_ps(qlo, x));
        r = _mm256_add_epi32(_mm256_cvtps_epi32(x), zp);
      } else {
        r = _mm256_add_epi32(_mm256_cvtps_epi32(px), zp);
      }
      _mm256_storeu_si256((__m256i *)q[c], r);
    }
    for (int k = 0; k < 8; k++)
      for (int c = 0; c < 3; c++) {
        size_t idx = p->nhwc ? (i + (size_t)k) * 3 + (size_t)c
                             : (size_t)c * p->channel_stride + i + (size_t)k;
        if (p->dtype == KN_PP_U8)
          ((uint8_t *)dst)[idx] = (uint8_t)q[c][k];
        else
          ((int8_t *)dst)[idx] = (int8_t)q[c][k];
      }
  }
  if (i < n) {
    size_t off = p->nhwc ? i * 3 : i;
    size_t esize = p->dtype == KN_PP_F32 ? 4 : 1;
    kestrel_pp_output__ref(p, c0 + i, c1 + i, c2 + i, n - i,
                           (uint8_t *)dst + off * esize);
  }
}
