/* im2col for k x k convolutions in NHWC: output row r (= oy*out_w + ox)
 * holds, for each tap (ky, kx) in row-major order, the in_c channels of
 * the input pixel under that tap, or the pad value where the tap falls
 * outside the image. Row length KH*KW*C matches a [N, KH, KW, C] weight
 * matrix (what the qs8/f32 GEMMs then consume). Each tap is one memcpy of
 * C contiguous channels, which is as fast as a SIMD copy for real C.
 *
 * Contract: in [H,W,C] dense; rows [row_end - row_begin, KH*KW*C] dense;
 * row_begin <= row_end <= out_h*out_w.
 */
#include <assert.h>
#include <string.h>

#include "kernels.h"

#define IM2COL_BODY(T, PAD_FILL)                                               \
  const size_t C = g->in_c;                                                    \
  for (size_t r = row_begin; r < row_end; r++) {                               \
    size_t oy = r / g->out_w, ox = r % g->out_w;                               \
    T *dst = rows + (r - row_begin) * g->kernel_h * g->kernel_w * C;           \
    for (size_t ky = 0; ky < g->kernel_h; ky++) {                              \
      ptrdiff_t iy = (ptrdiff_t)(oy * g->stride_h + ky * g->dilation_h) -      \
                     (ptrdiff_t)g->pad_top;                                    \
      for (size_t kx = 0; kx < g->kernel_w; kx++, dst += C) {                  \
        ptrdiff_t ix = (ptrdiff_t)(ox * g->stride_w + kx * g->dilation_w) -    \
                       (ptrdiff_t)g->pad_left;                                 \
        if (iy < 0 || iy >= (ptrdiff_t)g->in_h || ix < 0 ||                    \
            ix >= (ptrdiff_t)g->in_w) {                                        \
          PAD_FILL;                                                            \
        } else {                                                               \
          memcpy(dst, in + ((size_t)iy * g->in_w + (size_t)ix) * C,            \
                 C * sizeof(T));                                               \
        }                                                                      \
      }                                                                        \
    }                                                                          \
  }

void kn_qs8_im2col(const kn_conv_geometry *g, const int8_t *restrict in,
                   int8_t pad_value, size_t row_begin, size_t row_end,
                   int8_t *restrict rows) {
  assert(row_begin <= row_end && row_end <= g->out_h * g->out_w);
  IM2COL_BODY(int8_t, memset(dst, pad_value, C))
}

void kn_f32_im2col(const kn_conv_geometry *g, const float *restrict in,
                   size_t row_begin, size_t row_end, float *restrict rows) {
  assert(row_begin <= row_end && row_end <= g->out_h * g->out_w);
  IM2COL_BODY(float, memset(dst, 0, C * sizeof(float)))
}
