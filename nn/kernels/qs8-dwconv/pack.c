/* Packing of int8 depthwise weights into the ISA-independent layout:
 * per block of CR = 16 channels, int32 bias[16], then for each tap
 * (row-major over kh, kw) 16 int8 weights; channels past C are zero.
 * One tap's weights for a channel block are one 16-byte load. */
#include <assert.h>
#include <string.h>

#include "kernels.h"

size_t kn_qs8_dwconv_packed_size(size_t channels, size_t kh, size_t kw) {
  size_t blocks = (channels + KN_QS8_DWCONV_CR - 1) / KN_QS8_DWCONV_CR;
  return blocks * KN_QS8_DWCONV_CR * (sizeof(int32_t) + kh * kw);
}

void kn_qs8_dwconv_pack(size_t channels, size_t kh, size_t kw,
                        const int8_t *weights, const int32_t *bias,
                        void *packed) {
  uint8_t *out = packed;
  size_t taps = kh * kw;
  for (size_t c0 = 0; c0 < channels; c0 += KN_QS8_DWCONV_CR) {
    int32_t b[KN_QS8_DWCONV_CR] = {0};
    for (size_t j = 0; j < KN_QS8_DWCONV_CR && c0 + j < channels; j++)
      b[j] = bias ? bias[c0 + j] : 0;
    memcpy(out, b, sizeof b);
    out += sizeof b;
    for (size_t t = 0; t < taps; t++)
      for (size_t j = 0; j < KN_QS8_DWCONV_CR; j++) {
        size_t ch = c0 + j;
        int8_t w = ch < channels ? weights[ch * taps + t] : 0;
        assert(w != -128);
        *out++ = (uint8_t)w;
      }
  }
}
