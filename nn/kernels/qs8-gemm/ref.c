/* Portable C reference of the qs8 GEMM: the oracle the SIMD kernels must
 * match byte for byte. Reads the packed layout of pack.c directly.
 *
 * Contract: A [M,K] int8 rows, stride lda >= K; C [M,N] int8, stride
 * ldc >= N; packed from kn_qs8_gemm_pack(N, K, ...); requant as kernels.h.
 */
#include <assert.h>
#include <string.h>

#include "kernels.h"

void kestrel_qs8_gemm__ref(size_t m, size_t n, size_t k,
                           const int8_t *restrict a, size_t lda,
                           const void *restrict packed, int8_t *restrict c,
                           size_t ldc, const kn_qs8_requant *rq) {
  assert(lda >= k && ldc >= n);
  assert(rq->zero_point >= -128 && rq->zero_point <= 127);
  assert(rq->out_min <= rq->out_max);
  static const unsigned order[KN_QS8_GEMM_NR] = {0, 4, 1, 5, 2, 6, 3, 7};
  size_t groups = (k + KN_QS8_GEMM_KR - 1) / KN_QS8_GEMM_KR;
  size_t block_bytes =
      KN_QS8_GEMM_NR * sizeof(int32_t) + groups * KN_QS8_GEMM_NR * KN_QS8_GEMM_KR;
  for (size_t n0 = 0; n0 < n; n0 += KN_QS8_GEMM_NR) {
    const uint8_t *blk = (const uint8_t *)packed + (n0 / KN_QS8_GEMM_NR) * block_bytes;
    int32_t bias[KN_QS8_GEMM_NR];
    memcpy(bias, blk, sizeof bias);
    const int8_t *w = (const int8_t *)(blk + sizeof bias);
    for (size_t r = 0; r < KN_QS8_GEMM_NR; r++) {
      size_t ch = n0 + order[r];
      if (ch >= n)
        continue;
      for (size_t i = 0; i < m; i++) {
        const int8_t *row = a + i * lda;
        /* Unsigned arithmetic: wraps like the SIMD int32 lanes would, and
         * stays defined for the sanitizers. */
        uint32_t acc = (uint32_t)bias[order[r]];
        for (size_t kk = 0; kk < k; kk++) {
          const int8_t *wg = w + (kk / KN_QS8_GEMM_KR) * KN_QS8_GEMM_NR * KN_QS8_GEMM_KR;
          acc += (uint32_t)((int32_t)row[kk] * wg[r * KN_QS8_GEMM_KR + kk % KN_QS8_GEMM_KR]);
        }
        c[i * ldc + ch] = kn_qs8_requantize((int32_t)acc, rq->scale[ch], rq);
      }
    }
  }
}
