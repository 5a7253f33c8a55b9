/* Portable C reference of the qs8 direct conv for few input channels (the
 * oracle of the SIMD variants), plus the geometry limits and scratch size
 * every variant shares. Reads the packed GEMM layout directly; computes
 * exactly what im2col + kestrel_qs8_gemm__ref compute.
 *
 * Contract (kernels.h): in [H,W,C] int8 dense; out rows [oy_begin, oy_end)
 * of [out_h, out_w, N] dense; packed from kn_qs8_gemm_pack(N, KH*KW*C).
 */
#include <assert.h>
#include <string.h>

#include "layout.h"

bool kn_qs8_conv_smallc_fits(const kn_conv_geometry *g, size_t n) {
  return g->in_h >= 1 && g->in_w >= 1 && g->in_c >= 1 && g->out_h >= 1 &&
         g->out_w >= 1 && g->kernel_h >= 1 &&
         g->kernel_h <= KN_QS8_CONV_SMALLC_MAX_KH && g->kernel_w >= 1 &&
         g->in_c <= KN_QS8_CONV_SMALLC_MAX_RUN &&
         g->kernel_w * g->in_c <= KN_QS8_CONV_SMALLC_MAX_RUN &&
         g->stride_h >= 1 && g->stride_w >= 1 && g->dilation_h >= 1 &&
         g->dilation_w == 1 && n >= 1 && n <= KN_QS8_CONV_SMALLC_MAX_N &&
         g->out_w <= (SIZE_MAX / 64) / (g->stride_w * g->in_c + g->kernel_w);
}

size_t kn_qs8_conv_smallc_scratch_size(const kn_conv_geometry *g, size_t n) {
  smallc_layout l;
  return smallc_layout_make(g, n, 2, sizeof(int16_t), NULL, &l);
}

void kestrel_qs8_conv_smallc__ref(
    const kn_conv_geometry *g, const int8_t *restrict in, int32_t a_zero_point,
    const void *restrict packed, size_t n, size_t oy_begin, size_t oy_end,
    int8_t *restrict out, const kn_qs8_requant *rq, void *scratch,
    bool weights_ready) {
  (void)scratch, (void)weights_ready;
  assert(kn_qs8_conv_smallc_fits(g, n));
  assert(oy_begin <= oy_end && oy_end <= g->out_h);
  assert(a_zero_point >= -128 && a_zero_point <= 127);
  const size_t C = g->in_c, K = g->kernel_h * g->kernel_w * C;
  const size_t block_bytes = KN_QS8_GEMM_NR * sizeof(int32_t) +
                             (K + KN_QS8_GEMM_KR - 1) / KN_QS8_GEMM_KR *
                                 KN_QS8_GEMM_NR * KN_QS8_GEMM_KR;
  for (size_t oy = oy_begin; oy < oy_end; oy++)
    for (size_t ox = 0; ox < g->out_w; ox++)
      for (size_t ch = 0; ch < n; ch++) {
        const uint8_t *blk = (const uint8_t *)packed + ch / 8 * block_bytes;
        int32_t bias;
        memcpy(&bias, blk + ch % 8 * sizeof(int32_t), sizeof bias);
        /* Unsigned: wraps as the int32 lanes of the SIMD kernels do. */
        uint32_t acc = (uint32_t)bias;
        size_t k = 0;
        for (size_t ky = 0; ky < g->kernel_h; ky++) {
          ptrdiff_t iy = (ptrdiff_t)(oy * g->stride_h + ky * g->dilation_h) -
                         (ptrdiff_t)g->pad_top;
          for (size_t kx = 0; kx < g->kernel_w; kx++) {
            ptrdiff_t ix =
                (ptrdiff_t)(ox * g->stride_w + kx) - (ptrdiff_t)g->pad_left;
            bool inside = iy >= 0 && iy < (ptrdiff_t)g->in_h && ix >= 0 &&
                          ix < (ptrdiff_t)g->in_w;
            const int8_t *px =
                inside ? in + ((size_t)iy * g->in_w + (size_t)ix) * C : NULL;
            for (size_t c = 0; c < C; c++, k++) {
              int32_t x = px ? px[c] : a_zero_point;
              acc += (uint32_t)(x * smallc_packed_weight(blk, ch % 8, k));
            }
          }
        }
        out[((oy - oy_begin) * g->out_w + ox) * n + ch] =
            kn_qs8_requantize((int32_t)acc, rq->scale[ch], rq);
      }
}
