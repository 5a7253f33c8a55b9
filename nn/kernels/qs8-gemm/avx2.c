/* AVX2 int8 GEMM (1x1 conv / fully connected / im2col conv workhorse).
 *
 * Contract: A [M,K] int8 rows with stride lda >= K bytes, C [M,N] int8
 * rows with stride ldc >= N, packed weights from kn_qs8_gemm_pack (layout
 * in pack.c; no alignment needed), requant as kernels.h. A is never read
 * past column K-1 (the K tail goes through an 8-byte copy) and C is never
 * written past column N-1. Bit-exact with kestrel_qs8_gemm__ref.
 *
 * Why vpmaddwd and not vpmaddubsw: vpmaddubsw adds two u8*s8 products in
 * int16 with saturation, which an int8 kernel cannot avoid hitting (e.g.
 * 255*127*2). Here A and W are sign-extended to int16 (vpmovsxbw) and
 * vpmaddwd sums pairs of int16 products into int32, which cannot overflow
 * (|2 * 128 * 127| << 2^31) — the only wrap is the int32 accumulator
 * itself, as in the reference.
 *
 * Scheme (per MR x 8 tile, per 8 values of k): each A row's 8 bytes are
 * broadcast to both 128-bit halves and sign-extended (one vpmovsxbw per row);
 * each of the four weight rows holds 8 k of channel j (low half) and of
 * channel j+4 (high half), sign-extended once per k step and shared by all
 * MR rows. acc[i][j] collects 4 pair sums per channel; three rounds of
 * vphaddd at the end reduce them to channels 0..3 | 4..7 in order.
 */
#include <assert.h>
#include <immintrin.h>
#include <string.h>

#include "kernels_isa.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Register tiles live in arrays indexed by constant loop counters: fully
 * unrolled loops let the compiler keep them in registers. */
#define KN_UNROLL _Pragma("GCC unroll 8")
/* Two k steps per iteration give the scheduler independent loads to
 * overlap with the multiplies (measured: +1-2 points of peak for 4x8). */
#define KN_UNROLL2 _Pragma("GCC unroll 2")

static ALWAYS_INLINE __m256i broadcast_a8(const int8_t *p) {
  int64_t v;
  memcpy(&v, p, sizeof v);
  return _mm256_cvtepi8_epi16(_mm_set1_epi64x(v));
}

static ALWAYS_INLINE __m256i load_w16(const int8_t *p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
}

/* Requantize 8 int32 (channels in order) and return them packed to int8 in
 * the low 8 bytes. */
static ALWAYS_INLINE __m128i requant8(__m256i acc, __m256 scale, __m256 lo,
                                      __m256 hi, __m256i zp) {
  __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(x), zp);
  __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q),
                                _mm256_extracti128_si256(q, 1));
  return _mm_packs_epi16(q16, q16);
}

static ALWAYS_INLINE void tile(const size_t mr, size_t k, const int8_t *a,
                               size_t lda, const uint8_t *blk, int8_t *c,
                               size_t ldc, size_t nc, __m256 scale, __m256 lo,
                               __m256 hi, __m256i zp) {
  __m256i acc[4][4];
  const int8_t *ap[4];
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    ap[i] = a + i * lda;
    KN_UNROLL
    for (size_t j = 0; j < 4; j++)
      acc[i][j] = _mm256_setzero_si256();
  }
  const int8_t *w = (const int8_t *)(blk + KN_QS8_GEMM_NR * sizeof(int32_t));
  size_t kk = 0;
  KN_UNROLL2
  for (; kk + 8 <= k; kk += 8) {
    __m256i av[4];
    KN_UNROLL
    for (size_t i = 0; i < mr; i++)
      av[i] = broadcast_a8(ap[i] + kk);
    KN_UNROLL
    for (size_t j = 0; j < 4; j++) {
      __m256i wv = load_w16(w + 16 * j);
      KN_UNROLL
      for (size_t i = 0; i < mr; i++)
        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(av[i], wv));
    }
    w += 64;
  }
  if (kk < k) {
    /* K tail: copy the last k%8 bytes of each row so nothing past the row is
     * read; the packed weights past K are zero, so the copy's zero fill adds
     * nothing. */
    __m256i av[4];
    KN_UNROLL
    for (size_t i = 0; i < mr; i++) {
      int8_t tmp[8] = {0};
      memcpy(tmp, ap[i] + kk, k - kk);
      av[i] = broadcast_a8(tmp);
    }
    KN_UNROLL
    for (size_t j = 0; j < 4; j++) {
      __m256i wv = load_w16(w + 16 * j);
      KN_UNROLL
      for (size_t i = 0; i < mr; i++)
        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(av[i], wv));
    }
  }
  const __m256i bias = _mm256_loadu_si256((const __m256i *)blk);
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    __m256i h01 = _mm256_hadd_epi32(acc[i][0], acc[i][1]);
    __m256i h23 = _mm256_hadd_epi32(acc[i][2], acc[i][3]);
    __m256i sum = _mm256_add_epi32(_mm256_hadd_epi32(h01, h23), bias);
    __m128i out = requant8(sum, scale, lo, hi, zp);
    if (nc == 8) {
      _mm_storel_epi64((__m128i *)(c + i * ldc), out);
    } else {
      int8_t tmp[16];
      _mm_storeu_si128((__m128i *)tmp, out);
      memcpy(c + i * ldc, tmp, nc);
    }
  }
}

/* All of C with MR-row tiles (smaller tiles for the M remainder). Rows are
 * the outer loop so an A panel stays in L1 while the weight blocks stream. */
static ALWAYS_INLINE void gemm(const size_t mr_max, size_t m, size_t n,
                               size_t k, const int8_t *restrict a, size_t lda,
                               const void *restrict packed,
                               int8_t *restrict c, size_t ldc,
                               const kn_qs8_requant *rq) {
  assert(lda >= k && ldc >= n);
  assert(rq->zero_point >= -128 && rq->zero_point <= 127);
  assert(rq->out_min <= rq->out_max);
  const size_t groups = (k + KN_QS8_GEMM_KR - 1) / KN_QS8_GEMM_KR;
  const size_t block_bytes = KN_QS8_GEMM_NR * sizeof(int32_t) +
                             groups * KN_QS8_GEMM_NR * KN_QS8_GEMM_KR;
  const __m256 lo = _mm256_set1_ps((float)(rq->out_min - rq->zero_point));
  const __m256 hi = _mm256_set1_ps((float)(rq->out_max - rq->zero_point));
  const __m256i zp = _mm256_set1_epi32(rq->zero_point);
  for (size_t i = 0; i < m;) {
    size_t rows = m - i;
    const uint8_t *blk = packed;
    for (size_t n0 = 0; n0 < n; n0 += KN_QS8_GEMM_NR, blk += block_bytes) {
      size_t nc = n - n0 < KN_QS8_GEMM_NR ? n - n0 : KN_QS8_GEMM_NR;
      __m256 scale;
      if (nc == KN_QS8_GEMM_NR) {
        scale = _mm256_loadu_ps(rq->scale + n0);
      } else {
        float tmp[8] = {0};
        memcpy(tmp, rq->scale + n0, nc * sizeof(float));
        scale = _mm256_loadu_ps(tmp);
      }
      const int8_t *ai = a + i * lda;
      int8_t *ci = c + i * ldc + n0;
      /* Constant mr per call so each instance is fully unrolled. */
      if (rows >= mr_max) {
        switch (mr_max) {
        case 4: tile(4, k, ai, lda, blk, ci, ldc, nc, scale, lo, hi, zp); break;
        case 3: tile(3, k, ai, lda, blk, ci, ldc, nc, scale, lo, hi, zp); break;
        case 2: tile(2, k, ai, lda, blk, ci, ldc, nc, scale, lo, hi, zp); break;
        default: tile(1, k, ai, lda, blk, ci, ldc, nc, scale, lo, hi, zp); break;
        }
      } else if (rows == 3) {
        tile(3, k, ai, lda, blk, ci, ldc, nc, scale, lo, hi, zp);
      } else if (rows == 2) {
        tile(2, k, ai, lda, blk, ci, ldc, nc, scale, lo, hi, zp);
      } else {
        tile(1, k, ai, lda, blk, ci, ldc, nc, scale, lo, hi, zp);
      }
    }
    i += rows >= mr_max ? mr_max : rows;
  }
}

#define DEFINE_TILE_ENTRY(MR)                                                  \
  void kestrel_qs8_gemm_##MR##x8__avx2(                                        \
      size_t m, size_t n, size_t k, const int8_t *a, size_t lda,               \
      const void *packed, int8_t *c, size_t ldc, const kn_qs8_requant *rq) {   \
    gemm(MR, m, n, k, a, lda, packed, c, ldc, rq);                             \
  }
DEFINE_TILE_ENTRY(1)
DEFINE_TILE_ENTRY(2)
DEFINE_TILE_ENTRY(3)
DEFINE_TILE_ENTRY(4)

/* 4x8 spills a little (16 accumulators fill the register file) but
 * shares each sign-extended weight row across 4 A rows; on the machine
 * here it measured ahead of 3x8 for K >= 128 and level for K = 64
 * (docs/BENCHMARKS.md, "Kernels"). */
void kestrel_qs8_gemm__avx2(size_t m, size_t n, size_t k, const int8_t *a,
                            size_t lda, const void *packed, int8_t *c,
                            size_t ldc, const kn_qs8_requant *rq) {
  kestrel_qs8_gemm_4x8__avx2(m, n, k, a, lda, packed, c, ldc, rq);
}
