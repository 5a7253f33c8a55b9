/* NEON f32 GEMM, 4x16 tile: 16 accumulators, 4 weight vectors, A by lane.
 *
 * Contract: as kestrel_f32_gemm__ref (kernels.h). A read only in [0,K) of
 * each row, C written only in [0,N). Tolerance: see kernels.h (fused
 * multiply-add rounds once).
 */
#include <arm_neon.h>
#include <assert.h>
#include <string.h>

#include "kernels_isa.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define KN_UNROLL _Pragma("GCC unroll 8")

static ALWAYS_INLINE void tile(const size_t mr, size_t k, const float *a,
                               size_t lda, const float *blk, float *c,
                               size_t ldc, size_t nc, float32x4_t lo,
                               float32x4_t hi) {
  float32x4_t acc[4][4];
  const float *ap[4];
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    ap[i] = a + i * lda;
    KN_UNROLL
    for (size_t j = 0; j < 4; j++)
      acc[i][j] = vld1q_f32(blk + 4 * j);
  }
  const float *w = blk + KN_F32_GEMM_NR;
  for (size_t kk = 0; kk < k; kk++, w += KN_F32_GEMM_NR) {
    float32x4_t wv[4];
    KN_UNROLL
    for (size_t j = 0; j < 4; j++)
      wv[j] = vld1q_f32(w + 4 * j);
    KN_UNROLL
    for (size_t i = 0; i < mr; i++) {
      const float av = ap[i][kk];
      KN_UNROLL
      for (size_t j = 0; j < 4; j++)
        acc[i][j] = vfmaq_n_f32(acc[i][j], wv[j], av);
    }
  }
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    float tmp[16];
    KN_UNROLL
    for (size_t j = 0; j < 4; j++)
      vst1q_f32(tmp + 4 * j, vminq_f32(vmaxq_f32(acc[i][j], lo), hi));
    memcpy(c + i * ldc, tmp, nc * sizeof(float));
  }
}

void kestrel_f32_gemm_4x16__neon(size_t m, size_t n, size_t k,
                                 const float *restrict a, size_t lda,
                                 const void *restrict packed,
                                 float *restrict c, size_t ldc, float out_min,
                                 float out_max) {
  assert(lda >= k && ldc >= n);
  const float32x4_t lo = vdupq_n_f32(out_min), hi = vdupq_n_f32(out_max);
  const size_t block = KN_F32_GEMM_NR * (1 + k);
  for (size_t i = 0; i < m; i += 4) {
    size_t rows = m - i < 4 ? m - i : 4;
    const float *blk = packed;
    for (size_t n0 = 0; n0 < n; n0 += KN_F32_GEMM_NR, blk += block) {
      size_t nc = n - n0 < KN_F32_GEMM_NR ? n - n0 : KN_F32_GEMM_NR;
      const float *ai = a + i * lda;
      float *ci = c + i * ldc + n0;
      switch (rows) {
      case 4: tile(4, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
      case 3: tile(3, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
      case 2: tile(2, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
      default: tile(1, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
      }
    }
  }
}
