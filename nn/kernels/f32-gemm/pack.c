/* Packing of f32 GEMM weights: per block of NR = 16 output channels,
 * bias[16], then for each k the 16 weights W[n0..n0+15, k] (0 past N).
 * A k step of a block is two 32-byte loads (AVX2) or four 16-byte loads
 * (NEON). */
#include "kernels.h"

size_t kn_f32_gemm_packed_size(size_t n, size_t k) {
  size_t blocks = (n + KN_F32_GEMM_NR - 1) / KN_F32_GEMM_NR;
  return blocks * KN_F32_GEMM_NR * (1 + k) * sizeof(float);
}

void kn_f32_gemm_pack(size_t n, size_t k, const float *weights,
                      const float *bias, void *packed) {
  float *out = packed;
  for (size_t n0 = 0; n0 < n; n0 += KN_F32_GEMM_NR) {
    for (size_t j = 0; j < KN_F32_GEMM_NR; j++)
      *out++ = (bias && n0 + j < n) ? bias[n0 + j] : 0.0f;
    for (size_t kk = 0; kk < k; kk++)
      for (size_t j = 0; j < KN_F32_GEMM_NR; j++)
        *out++ = n0 + j < n ? weights[(n0 + j) * k + kk] : 0.0f;
  }
}
