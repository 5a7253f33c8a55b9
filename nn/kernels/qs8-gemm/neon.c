/* NEON int8 GEMM, 2x8 tile (aarch64 Advanced SIMD, no dotprod needed).
 *
 * Contract: as kestrel_qs8_gemm__ref (kernels.h): A [M,K] int8 rows with
 * stride lda >= K, C [M,N] with stride ldc >= N, packed from
 * kn_qs8_gemm_pack, weights in [-127,127]. A is never read past column
 * K-1 (K tail via an 8-byte copy); C is never written past column N-1.
 * Bit-exact with the reference.
 *
 * Per channel and 16 values of k: vmull_s8 + vmlal_s8 put two int8 products
 * in each int16 lane (|2 * 128 * 127| = 32512 < 32768: this is why the pack
 * refuses weight -128), then vpadalq_s16 adds lane pairs into int32. The
 * packed group holds 8 k of channels 0,4,1,5,2,6,3,7 as 8-byte rows.
 */
#include <arm_neon.h>
#include <assert.h>
#include <string.h>

#include "kernels_isa.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define KN_UNROLL _Pragma("GCC unroll 8")

/* Packed row r holds channel kOrder[r]. */
static const unsigned kOrder[8] = {0, 4, 1, 5, 2, 6, 3, 7};

static ALWAYS_INLINE int8x8_t requant8(int32x4_t lo4, int32x4_t hi4,
                                       const float *scale, float32x4_t lo,
                                       float32x4_t hi, int32x4_t zp) {
  float32x4_t x0 = vmulq_f32(vcvtq_f32_s32(lo4), vld1q_f32(scale));
  float32x4_t x1 = vmulq_f32(vcvtq_f32_s32(hi4), vld1q_f32(scale + 4));
  x0 = vminq_f32(vmaxq_f32(x0, lo), hi);
  x1 = vminq_f32(vmaxq_f32(x1, lo), hi);
  /* fcvtns: round to nearest, ties to even, like lrintf / cvtps2dq. */
  int32x4_t q0 = vaddq_s32(vcvtnq_s32_f32(x0), zp);
  int32x4_t q1 = vaddq_s32(vcvtnq_s32_f32(x1), zp);
  return vqmovn_s16(vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1)));
}

static ALWAYS_INLINE void tile(const size_t mr, size_t k, const int8_t *a,
                               size_t lda, const uint8_t *blk, int8_t *c,
                               size_t ldc, size_t nc, const float *scale,
                               float32x4_t lo, float32x4_t hi, int32x4_t zp) {
  int32x4_t acc[2][8];
  const int8_t *ap[2];
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    ap[i] = a + i * lda;
    KN_UNROLL
    for (size_t j = 0; j < 8; j++)
      acc[i][j] = vdupq_n_s32(0);
  }
  const int8_t *w = (const int8_t *)(blk + KN_QS8_GEMM_NR * sizeof(int32_t));
  size_t kk = 0;
  for (; kk + 16 <= k; kk += 16, w += 128) {
    int8x8_t a0[2], a1[2];
    KN_UNROLL
    for (size_t i = 0; i < mr; i++) {
      a0[i] = vld1_s8(ap[i] + kk);
      a1[i] = vld1_s8(ap[i] + kk + 8);
    }
    KN_UNROLL
    for (size_t r = 0; r < 8; r++) {
      int8x8_t w0 = vld1_s8(w + 8 * r), w1 = vld1_s8(w + 64 + 8 * r);
      KN_UNROLL
      for (size_t i = 0; i < mr; i++) {
        int16x8_t p = vmull_s8(a0[i], w0);
        p = vmlal_s8(p, a1[i], w1);
        acc[i][kOrder[r]] = vpadalq_s16(acc[i][kOrder[r]], p);
      }
    }
  }
  for (; kk < k; kk += 8, w += 64) {
    int8x8_t a0[2];
    KN_UNROLL
    for (size_t i = 0; i < mr; i++) {
      if (kk + 8 <= k) {
        a0[i] = vld1_s8(ap[i] + kk);
      } else {
        /* Tail: never read past the row; weights past K are zero. */
        int8_t tmp[8] = {0};
        memcpy(tmp, ap[i] + kk, k - kk);
        a0[i] = vld1_s8(tmp);
      }
    }
    KN_UNROLL
    for (size_t r = 0; r < 8; r++) {
      int8x8_t w0 = vld1_s8(w + 8 * r);
      KN_UNROLL
      for (size_t i = 0; i < mr; i++)
        acc[i][kOrder[r]] = vpadalq_s16(acc[i][kOrder[r]], vmull_s8(a0[i], w0));
    }
  }
  const int32x4_t b0 = vld1q_s32((const int32_t *)blk);
  const int32x4_t b1 = vld1q_s32((const int32_t *)blk + 4);
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    int32x4_t s0 = vpaddq_s32(vpaddq_s32(acc[i][0], acc[i][1]),
                              vpaddq_s32(acc[i][2], acc[i][3]));
    int32x4_t s1 = vpaddq_s32(vpaddq_s32(acc[i][4], acc[i][5]),
                              vpaddq_s32(acc[i][6], acc[i][7]));
    int8x8_t out = requant8(vaddq_s32(s0, b0), vaddq_s32(s1, b1), scale, lo,
                            hi, zp);
    if (nc == 8) {
      vst1_s8(c + i * ldc, out);
    } else {
      int8_t tmp[8];
      vst1_s8(tmp, out);
      memcpy(c + i * ldc, tmp, nc);
    }
  }
}

void kestrel_qs8_gemm_2x8__neon(size_t m, size_t n, size_t k,
                                const int8_t *restrict a, size_t lda,
                                const void *restrict packed,
                                int8_t *restrict c, size_t ldc,
                                const kn_qs8_requant *rq) {
  assert(lda >= k && ldc >= n);
  assert(rq->zero_point >= -128 && rq->zero_point <= 127);
  assert(rq->out_min <= rq->out_max);
  const size_t groups = (k + KN_QS8_GEMM_KR - 1) / KN_QS8_GEMM_KR;
  const size_t block_bytes = KN_QS8_GEMM_NR * sizeof(int32_t) +
                             groups * KN_QS8_GEMM_NR * KN_QS8_GEMM_KR;
  const float32x4_t lo = vdupq_n_f32((float)(rq->out_min - rq->zero_point));
  const float32x4_t hi = vdupq_n_f32((float)(rq->out_max - rq->zero_point));
  const int32x4_t zp = vdupq_n_s32(rq->zero_point);
  for (size_t i = 0; i < m; i += 2) {
    const uint8_t *blk = packed;
    for (size_t n0 = 0; n0 < n; n0 += KN_QS8_GEMM_NR, blk += block_bytes) {
      size_t nc = n - n0 < KN_QS8_GEMM_NR ? n - n0 : KN_QS8_GEMM_NR;
      float sc[8] = {0};
      memcpy(sc, rq->scale + n0, nc * sizeof(float));
      if (m - i >= 2)
        tile(2, k, a + i * lda, lda, blk, c + i * ldc + n0, ldc, nc, sc, lo, hi, zp);
      else
        tile(1, k, a + i * lda, lda, blk, c + i * ldc + n0, ldc, nc, sc, lo, hi, zp);
    }
  }
}
