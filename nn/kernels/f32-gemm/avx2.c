/* AVX2+FMA f32 GEMM, 6x16 tile: 12 accumulators, 2 weight vectors and one
 * broadcast A value per k, which fills the 16 ymm registers.
 *
 * Contract: A [M,K] f32, stride lda >= K; C [M,N], stride ldc >= N; packed
 * from kn_f32_gemm_pack. A is read only inside [0,K) of each row; C only
 * written inside [0,N). Tolerance vs kestrel_f32_gemm__ref: see kernels.h
 * (FMA rounds once where the reference rounds twice).
 */
#include <assert.h>
#include <immintrin.h>
#include <string.h>

#include "kernels_isa.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Register tiles live in arrays indexed by constant loop counters: fully
 * unrolled loops let the compiler keep them in registers. */
#define KN_UNROLL _Pragma("GCC unroll 8")

static ALWAYS_INLINE void store16(float *c, __m256 v0, __m256 v1, size_t nc) {
  if (nc == 16) {
    _mm256_storeu_ps(c, v0);
    _mm256_storeu_ps(c + 8, v1);
  } else {
    float tmp[16];
    _mm256_storeu_ps(tmp, v0);
    _mm256_storeu_ps(tmp + 8, v1);
    memcpy(c, tmp, nc * sizeof(float));
  }
}

static ALWAYS_INLINE void tile(const size_t mr, size_t k, const float *a,
                               size_t lda, const float *blk, float *c,
                               size_t ldc, size_t nc, __m256 lo, __m256 hi) {
  __m256 acc[6][2];
  const float *ap[6];
  const __m256 b0 = _mm256_loadu_ps(blk), b1 = _mm256_loadu_ps(blk + 8);
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    ap[i] = a + i * lda;
    acc[i][0] = b0;
    acc[i][1] = b1;
  }
  const float *w = blk + KN_F32_GEMM_NR;
  for (size_t kk = 0; kk < k; kk++, w += KN_F32_GEMM_NR) {
    const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
    KN_UNROLL
    for (size_t i = 0; i < mr; i++) {
      const __m256 av = _mm256_broadcast_ss(ap[i] + kk);
      acc[i][0] = _mm256_fmadd_ps(av, w0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, w1, acc[i][1]);
    }
  }
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    __m256 v0 = _mm256_min_ps(_mm256_max_ps(acc[i][0], lo), hi);
    __m256 v1 = _mm256_min_ps(_mm256_max_ps(acc[i][1], lo), hi);
    store16(c + i * ldc, v0, v1, nc);
  }
}

/* A block with at most 8 live columns (the last block of N = 24, 40, ...):
 * half the FMAs of the 16-wide tile, same packed layout. */
static ALWAYS_INLINE void tile8(const size_t mr, size_t k, const float *a,
                                size_t lda, const float *blk, float *c,
                                size_t ldc, size_t nc, __m256 lo, __m256 hi) {
  __m256 acc[6];
  const float *ap[6];
  const __m256 b0 = _mm256_loadu_ps(blk);
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    ap[i] = a + i * lda;
    acc[i] = b0;
  }
  const float *w = blk + KN_F32_GEMM_NR;
  for (size_t kk = 0; kk < k; kk++, w += KN_F32_GEMM_NR) {
    const __m256 w0 = _mm256_loadu_ps(w);
    KN_UNROLL
    for (size_t i = 0; i < mr; i++)
      acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ap[i] + kk), w0, acc[i]);
  }
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    __m256 v = _mm256_min_ps(_mm256_max_ps(acc[i], lo), hi);
    if (nc == 8) {
      _mm256_storeu_ps(c + i * ldc, v);
    } else {
      float tmp[8];
      _mm256_storeu_ps(tmp, v);
      memcpy(c + i * ldc, tmp, nc * sizeof(float));
    }
  }
}

void kestrel_f32_gemm_6x16__avx2(size_t m, size_t n, size_t k,
                                 const float *restrict a, size_t lda,
                                 const void *restrict packed,
                                 float *restrict c, size_t ldc, float out_min,
                                 float out_max) {
  assert(lda >= k && ldc >= n);
  const __m256 lo = _mm256_set1_ps(out_min), hi = _mm256_set1_ps(out_max);
  const size_t block = KN_F32_GEMM_NR * (1 + k);
  for (size_t i = 0; i < m; i += 6) {
    size_t rows = m - i < 6 ? m - i : 6;
    const float *blk = packed;
    for (size_t n0 = 0; n0 < n; n0 += KN_F32_GEMM_NR, blk += block) {
      size_t nc = n - n0 < KN_F32_GEMM_NR ? n - n0 : KN_F32_GEMM_NR;
      const float *ai = a + i * lda;
      float *ci = c + i * ldc + n0;
      if (nc <= 8) {
        switch (rows) {
        case 6: tile8(6, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
        case 5: tile8(5, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
        case 4: tile8(4, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
        case 3: tile8(3, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
        case 2: tile8(2, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
        default: tile8(1, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
        }
        continue;
      }
      switch (rows) {
      case 6: tile(6, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
      case 5: tile(5, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
      case 4: tile(4, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
      case 3: tile(3, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
      case 2: tile(2, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
      default: tile(1, k, ai, lda, blk, ci, ldc, nc, lo, hi); break;
      }
    }
  }
}
