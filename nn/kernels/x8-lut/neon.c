/* NEON 256-entry byte table lookup (contract: x8-lut/ref.c): four 64-byte
 * table lookups per 16 bytes; tbx leaves lanes whose index is out of its
 * 64-entry range unchanged. Exact, as the reference. */
#include <arm_neon.h>

#include "kernels_isa.h"

void kestrel_x8_lut__neon(size_t n, const uint8_t *x, uint8_t *y,
                          const uint8_t *table) {
  uint8x16x4_t t[4];
  for (int q = 0; q < 4; q++)
    t[q] = vld1q_u8_x4(table + 64 * q);
  const uint8x16_t s64 = vdupq_n_u8(64);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint8x16_t v = vld1q_u8(x + i);
    uint8x16_t r = vqtbl4q_u8(t[0], v);
    v = vsubq_u8(v, s64);
    r = vqtbx4q_u8(r, t[1], v);
    v = vsubq_u8(v, s64);
    r = vqtbx4q_u8(r, t[2], v);
    v = vsubq_u8(v, s64);
    r = vqtbx4q_u8(r, t[3], v);
    vst1q_u8(y + i, r);
  }
  for (; i < n; i++)
    y[i] = table[x[i]];
}
