/* Packing of f32 depthwise weights: per block of CR = 8 channels, bias[8],
 * then for each tap (row-major over kh, kw) 8 weights; channels past C are
 * zero. One tap of a channel block is one 32-byte load (AVX2) or two
 * 16-byte loads (NEON). */
#include <string.h>

#include "kernels.h"

size_t kn_f32_dwconv_packed_size(size_t channels, size_t kh, size_t kw) {
  size_t blocks = (channels + KN_F32_DWCONV_CR - 1) / KN_F32_DWCONV_CR;
  return blocks * KN_F32_DWCONV_CR * (1 + kh * kw) * sizeof(float);
}

void kn_f32_dwconv_pack(size_t channels, size_t kh, size_t kw,
                        const float *weights, const float *bias,
                        void *packed) {
  float *out = packed;
  size_t taps = kh * kw;
  for (size_t c0 = 0; c0 < channels; c0 += KN_F32_DWCONV_CR) {
    for (size_t j = 0; j < KN_F32_DWCONV_CR; j++)
      *out++ = (bias && c0 + j < channels) ? bias[c0 + j] : 0.0f;
    for (size_t t = 0; t < taps; t++)
      for (size_t j = 0; j < KN_F32_DWCONV_CR; j++) {
        size_t ch = c0 + j;
        *out++ = ch < channels ? weights[ch * taps + t] : 0.0f;
      }
  }
}
