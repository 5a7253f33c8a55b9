/* 8-bit table lookup y[i] = table[x[i]]: the int8 activation tables
 * (hardswish, sigmoid, folded per-byte ops) and one-input int8 ops.
 * Contract: x and y n bytes, may be the same buffer (in place) but not
 * otherwise overlap; table has 256 entries indexed by the unsigned byte. */
#include "kernels.h"

void kestrel_x8_lut__ref(size_t n, const uint8_t *x, uint8_t *y,
                         const uint8_t *table) {
  for (size_t i = 0; i < n; i++)
    y[i] = table[x[i]];
}
