/* AVX2 256-entry byte table lookup (contract: x8-lut/ref.c), 32 bytes per
 * step with vpshufb, which looks up 16-entry tables.
 *
 * vpshufb gives tbl[idx & 15], or 0 where idx has bit 7 set. Split the
 * table in sixteen rows T_s of 16 bytes. For x < 128: idx_s = x - 16 s
 * with signed saturation is in [0, 15] + 16 k for s <= x / 16 and
 * negative (so 0) after, and stays negative; the XOR over s of
 * vpshufb(T_s ^ T_(s-1), idx_s) telescopes to T_(x/16)[x & 15]. Bytes
 * x >= 128 start negative and give 0. The upper half of the table does the
 * same on x ^ 0x80, and the two halves XOR together. Every byte is exact,
 * as in the reference. */
#include <immintrin.h>
#include <string.h>

#include "kernels_isa.h"

static inline __m256i half_lookup(__m256i idx, const __m256i *d) {
  const __m256i sixteen = _mm256_set1_epi8(16);
  __m256i y = _mm256_shuffle_epi8(d[0], idx);
  for (int s = 1; s < 8; s++) {
    idx = _mm256_subs_epi8(idx, sixteen);
    y = _mm256_xor_si256(y, _mm256_shuffle_epi8(d[s], idx));
  }
  return y;
}

void kestrel_x8_lut__avx2(size_t n, const uint8_t *x, uint8_t *y,
                          const uint8_t *table) {
  /* Telescoped rows, each broadcast to both 128-bit lanes. */
  __m256i d[16];
  for (int s = 0; s < 16; s++) {
    __m128i row = _mm_loadu_si128((const __m128i *)(table + 16 * s));
    if (s % 8)
      row = _mm_xor_si128(
          row, _mm_loadu_si128((const __m128i *)(table + 16 * (s - 1))));
    d[s] = _mm256_broadcastsi128_si256(row);
  }
  const __m256i flip = _mm256_set1_epi8((char)0x80);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(x + i));
    __m256i r = _mm256_xor_si256(half_lookup(v, d),
                                 half_lookup(_mm256_xor_si256(v, flip), d + 8));
    _mm256_storeu_si256((__m256i *)(y + i), r);
  }
  for (; i < n; i++)
    y[i] = table[x[i]];
}
