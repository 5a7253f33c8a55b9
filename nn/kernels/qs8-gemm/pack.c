/* Packing of int8 GEMM weights (1x1 conv, fully connected, im2col conv)
 * into the ISA-independent layout every qs8 GEMM kernel reads.
 *
 * Per block of NR = 8 output channels:
 *   int32 bias'[8]  bias[n] - a_zero_point * sum_k W[n,k]  (0 past N)
 *   ceil(K/8) groups of 64 bytes: for j = 0..3, 8 weights (k..k+7) of
 *     channel j then 8 of channel j+4 (0 past N or K).
 * Channel j and j+4 share one 16-byte row so that an AVX2 register holds
 * them in its two 128-bit halves, and the final horizontal adds come out
 * in channel order without a cross-lane permute. NEON reads the same
 * 8-byte rows one channel at a time. Blocks are 32-byte aligned relative to
 * the start of `packed`.
 */
#include <assert.h>
#include <string.h>

#include "kernels.h"

size_t kn_qs8_gemm_packed_size(size_t n, size_t k) {
  size_t blocks = (n + KN_QS8_GEMM_NR - 1) / KN_QS8_GEMM_NR;
  size_t groups = (k + KN_QS8_GEMM_KR - 1) / KN_QS8_GEMM_KR;
  return blocks * (KN_QS8_GEMM_NR * sizeof(int32_t) +
                   groups * KN_QS8_GEMM_NR * KN_QS8_GEMM_KR);
}

void kn_qs8_gemm_pack(size_t n, size_t k, const int8_t *weights,
                      const int32_t *bias, int32_t a_zero_point,
                      void *packed) {
  assert(a_zero_point >= -128 && a_zero_point <= 127);
  size_t groups = (k + KN_QS8_GEMM_KR - 1) / KN_QS8_GEMM_KR;
  uint8_t *out = packed;
  for (size_t n0 = 0; n0 < n; n0 += KN_QS8_GEMM_NR) {
    int32_t b[KN_QS8_GEMM_NR] = {0};
    for (size_t j = 0; j < KN_QS8_GEMM_NR && n0 + j < n; j++) {
      const int8_t *w = weights + (n0 + j) * k;
      int64_t sum = 0;
      for (size_t kk = 0; kk < k; kk++) {
        assert(w[kk] != -128);
        sum += w[kk];
      }
      /* int64 so a pathological bias cannot overflow while folding; the
       * stored value wraps like the int32 accumulator would. */
      int64_t v = (bias ? bias[n0 + j] : 0) - (int64_t)a_zero_point * sum;
      b[j] = (int32_t)(uint32_t)v;
    }
    memcpy(out, b, sizeof b);
    out += sizeof b;
    for (size_t g = 0; g < groups; g++) {
      static const unsigned order[KN_QS8_GEMM_NR] = {0, 4, 1, 5, 2, 6, 3, 7};
      for (size_t r = 0; r < KN_QS8_GEMM_NR; r++) {
        size_t ch = n0 + order[r];
        for (size_t kk = 0; kk < KN_QS8_GEMM_KR; kk++) {
          size_t col = g * KN_QS8_GEMM_KR + kk;
          *out++ = (ch < n && col < k) ? (uint8_t)weights[ch * k + col] : 0;
        }
      }
    }
  }
}
