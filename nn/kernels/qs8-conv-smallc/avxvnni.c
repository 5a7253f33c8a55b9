/* qs8 direct conv for few input channels on AVX-VNNI (vpdpbusd on unsigned
 * byte quads); the body is x86.h. */
#define SMALLC_VNNI 1
#include "kernels_isa.h"
#include "x86.h"

void kestrel_qs8_conv_smallc__avxvnni(const kn_conv_geometry *g,
                                      const int8_t *in, int32_t a_zero_point,
                                      const void *packed, size_t n,
                                      size_t oy_begin, size_t oy_end,
                                      int8_t *out, const kn_qs8_requant *rq,
                                      void *scratch, bool weights_ready) {
  conv_smallc(g, in, a_zero_point, packed, n, oy_begin, oy_end, out, rq,
              scratch, weights_ready);
}
