/* Portable C reference of the f32 GEMM: the oracle for the SIMD kernels.
 *
 * Contract: A [M,K] f32 rows, stride lda >= K (elements); C [M,N], stride
 * ldc >= N; packed from kn_f32_gemm_pack(N, K, ...);
 * C = clamp(bias + A . W^T, out_min, out_max).
 */
#include <assert.h>

#include "kernels.h"

void kestrel_f32_gemm__ref(size_t m, size_t n, size_t k,
                           const float *restrict a, size_t lda,
                           const void *restrict packed, float *restrict c,
                           size_t ldc, float out_min, float out_max) {
  assert(lda >= k && ldc >= n);
  const float *blk = packed;
  for (size_t n0 = 0; n0 < n; n0 += KN_F32_GEMM_NR) {
    for (size_t j = 0; j < KN_F32_GEMM_NR && n0 + j < n; j++)
      for (size_t i = 0; i < m; i++) {
        float acc = blk[j];
        for (size_t kk = 0; kk < k; kk++)
          acc += a[i * lda + kk] * blk[KN_F32_GEMM_NR * (1 + kk) + j];
        acc = acc < out_min ? out_min : acc;
        acc = acc > out_max ? out_max : acc;
        c[i * ldc + n0 + j] = acc;
      }
    blk += KN_F32_GEMM_NR * (1 + k);
  }
}
