/* AVX-VNNI int8 GEMM: the qs8 GEMM on CPUs with `vpdpbusd` (VEX-encoded,
 * 256-bit: Intel since Alder Lake, AMD since Zen 5). Chosen at run time
 * over the AVX2 kernel where the CPU has it (dispatch.c); same packed
 * weights, same contract (qs8-gemm/avx2.c), bit-exact with
 * kestrel_qs8_gemm__ref.
 *
 * vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the four
 * products to an int32 lane without saturation (|4 * 255 * 127| < 2^17),
 * so a kernel built on it cannot overflow anywhere but in the int32
 * accumulator, exactly as the reference. Activations are signed, so each A
 * byte is biased to a + 128 (xor 0x80) and the kernel subtracts
 * 128 * sum_k W[n,k] per channel, computed once per call from the packed
 * weights; everything wraps mod 2^32 like the reference's int32 sum, so the
 * result is the same integer.
 *
 * Lanes: a packed 64-byte group holds rows (ch j | ch j+4) of 8 k for
 * j = 0..3; one 32-byte load covers two rows, i.e. int32 lanes
 * [j k0-3, j k4-7, j+4 k0-3, j+4 k4-7, j+1 ..., j+5 ...]. The A row's 8
 * bytes are broadcast to every qword, so one vpdpbusd adds 4 products into
 * each lane; per 8 k a row needs two of them (rows 0-1 and rows 2-3).
 * After K, vphaddd of the two accumulators gives channels
 * [0 4 2 6 | 1 5 3 7], which one vpermd puts in order.
 */
#include <assert.h>
#include <immintrin.h>
#include <string.h>

#include "kernels_isa.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define KN_UNROLL _Pragma("GCC unroll 8")

/* Channels whose weight-sum corrections one pass computes (stack bytes:
 * 4 per channel). */
#define CORR_CHUNK 512

static ALWAYS_INLINE __m256i dot(__m256i acc, __m256i a, __m256i w) {
  return _mm256_dpbusd_avx_epi32(acc, a, w);
}

/* 8 bytes of A as unsigned (a + 128) in every qword. */
static ALWAYS_INLINE __m256i broadcast_a8(const int8_t *p, __m256i flip) {
  int64_t v;
  memcpy(&v, p, sizeof v);
  return _mm256_xor_si256(_mm256_set1_epi64x(v), flip);
}

static ALWAYS_INLINE __m128i requant8(__m256i acc, __m256 scale, __m256 lo,
                                      __m256 hi, __m256i zp) {
  __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(x), zp);
  __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q),
                                _mm256_extracti128_si256(q, 1));
  return _mm_packs_epi16(q16, q16);
}

/* bias' - 128 * sum_k W[n, k] for the 8 channels of one packed block, in
 * channel order. */
static void block_offsets(size_t groups, const uint8_t *blk, int32_t *out) {
  const __m256i ones = _mm256_set1_epi8(1);
  __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
  const int8_t *w = (const int8_t *)(blk + KN_QS8_GEMM_NR * sizeof(int32_t));
  for (size_t gi = 0; gi < groups; gi++, w += 64) {
    s0 = dot(s0, ones, _mm256_loadu_si256((const __m256i *)w));
    s1 = dot(s1, ones, _mm256_loadu_si256((const __m256i *)(w + 32)));
  }
  const __m256i order = _mm256_setr_epi32(0, 4, 2, 6, 1, 5, 3, 7);
  __m256i sum = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(s0, s1), order);
  __m256i bias = _mm256_loadu_si256((const __m256i *)blk);
  /* sum * 128 as a wrapping shift, like the int32 arithmetic it stands
   * for. */
  _mm256_storeu_si256((__m256i *)out,
                      _mm256_sub_epi32(bias, _mm256_slli_epi32(sum, 7)));
}

static ALWAYS_INLINE void tile(const size_t mr, size_t k, const int8_t *a,
                               size_t lda, const uint8_t *blk,
                               const int32_t *offset, int8_t *c, size_t ldc,
                               size_t nc, __m256 scale, __m256 lo, __m256 hi,
                               __m256i zp) {
  const __m256i flip = _mm256_set1_epi8((char)0x80);
  __m256i acc[6][2];
  const int8_t *ap[6];
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    ap[i] = a + i * lda;
    acc[i][0] = _mm256_setzero_si256();
    acc[i][1] = _mm256_setzero_si256();
  }
  const int8_t *w = (const int8_t *)(blk + KN_QS8_GEMM_NR * sizeof(int32_t));
  size_t kk = 0;
  for (; kk + 8 <= k; kk += 8, w += 64) {
    const __m256i w0 = _mm256_loadu_si256((const __m256i *)w);
    const __m256i w1 = _mm256_loadu_si256((const __m256i *)(w + 32));
    KN_UNROLL
    for (size_t i = 0; i < mr; i++) {
      const __m256i av = broadcast_a8(ap[i] + kk, flip);
      acc[i][0] = dot(acc[i][0], av, w0);
      acc[i][1] = dot(acc[i][1], av, w1);
    }
  }
  if (kk < k) {
    /* K tail: the packed weights past K are zero, so whatever the copy's
     * padding becomes after the bias, it adds nothing. */
    const __m256i w0 = _mm256_loadu_si256((const __m256i *)w);
    const __m256i w1 = _mm256_loadu_si256((const __m256i *)(w + 32));
    KN_UNROLL
    for (size_t i = 0; i < mr; i++) {
      int8_t tmp[8] = {0};
      memcpy(tmp, ap[i] + kk, k - kk);
      const __m256i av = broadcast_a8(tmp, flip);
      acc[i][0] = dot(acc[i][0], av, w0);
      acc[i][1] = dot(acc[i][1], av, w1);
    }
  }
  const __m256i order = _mm256_setr_epi32(0, 4, 2, 6, 1, 5, 3, 7);
  const __m256i off = _mm256_loadu_si256((const __m256i *)offset);
  KN_UNROLL
  for (size_t i = 0; i < mr; i++) {
    __m256i sum = _mm256_permutevar8x32_epi32(
        _mm256_hadd_epi32(acc[i][0], acc[i][1]), order);
    __m128i out = requant8(_mm256_add_epi32(sum, off), scale, lo, hi, zp);
    if (nc == 8) {
      _mm_storel_epi64((__m128i *)(c + i * ldc), out);
    } else {
      int8_t tmp[16];
      _mm_storeu_si128((__m128i *)tmp, out);
      memcpy(c + i * ldc, tmp, nc);
    }
  }
}

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
  int32_t offsets[CORR_CHUNK];
  for (size_t c0 = 0; c0 < n; c0 += CORR_CHUNK) {
    size_t cn = n - c0 < CORR_CHUNK ? n - c0 : CORR_CHUNK;
    const uint8_t *blk0 = (const uint8_t *)packed + c0 / KN_QS8_GEMM_NR * block_bytes;
    for (size_t b = 0; b * KN_QS8_GEMM_NR < cn; b++)
      block_offsets(groups, blk0 + b * block_bytes,
                    offsets + b * KN_QS8_GEMM_NR);
    for (size_t i = 0; i < m;) {
      size_t rows = m - i;
      const uint8_t *blk = blk0;
      for (size_t n0 = 0; n0 < cn; n0 += KN_QS8_GEMM_NR, blk += block_bytes) {
        size_t nc = cn - n0 < KN_QS8_GEMM_NR ? cn - n0 : KN_QS8_GEMM_NR;
        __m256 scale;
        if (nc == KN_QS8_GEMM_NR) {
          scale = _mm256_loadu_ps(rq->scale + c0 + n0);
        } else {
          float tmp[8] = {0};
          memcpy(tmp, rq->scale + c0 + n0, nc * sizeof(float));
          scale = _mm256_loadu_ps(tmp);
        }
        const int8_t *ai = a + i * lda;
        int8_t *ci = c + i * ldc + c0 + n0;
        const int32_t *off = offsets + n0;
#define T(MR) tile(MR, k, ai, lda, blk, off, ci, ldc, nc, scale, lo, hi, zp)
        if (rows >= mr_max) {
          switch (mr_max) {
          case 6: T(6); break;
          case 4: T(4); break;
          default: T(1); break;
          }
        } else {
          switch (rows) {
          case 5: T(5); break;
          case 4: T(4); break;
          case 3: T(3); break;
          case 2: T(2); break;
          default: T(1); break;
          }
        }
#undef T
      }
      i += rows >= mr_max ? mr_max : rows;
    }
  }
}

void kestrel_qs8_gemm_4x8__avxvnni(size_t m, size_t n, size_t k,
                                   const int8_t *a, size_t lda,
                                   const void *packed, int8_t *c, size_t ldc,
                                   const kn_qs8_requant *rq) {
  gemm(4, m, n, k, a, lda, packed, c, ldc, rq);
}

void kestrel_qs8_gemm_6x8__avxvnni(size_t m, size_t n, size_t k,
                                   const int8_t *a, size_t lda,
                                   const void *packed, int8_t *c, size_t ldc,
                                   const kn_qs8_requant *rq) {
  gemm(6, m, n, k, a, lda, packed, c, ldc, rq);
}
