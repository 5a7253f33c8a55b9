/* The per-ISA kernels behind the kn_kernels tables (dispatch.c), declared
 * for the dispatcher, the kernel tests and the benchmarks. A symbol exists
 * only where its ISA is compiled in (KESTREL_HAVE_AVX2 / KESTREL_HAVE_NEON,
 * set by nn/kernels/meson.build). Graph code uses kn_kernels_get(). */
#ifndef KESTREL_KERNELS_ISA_H
#define KESTREL_KERNELS_ISA_H

#include <stdbool.h>

#include "kernels.h"

#define KN_DECLARE_QS8_GEMM(name)                                              \
  void name(size_t m, size_t n, size_t k, const int8_t *a, size_t lda,          \
            const void *packed, int8_t *c, size_t ldc,                         \
            const kn_qs8_requant *rq)
#define KN_DECLARE_F32_GEMM(name)                                              \
  void name(size_t m, size_t n, size_t k, const float *a, size_t lda,           \
            const void *packed, float *c, size_t ldc, float out_min,            \
            float out_max)
#define KN_DECLARE_QS8_DWCONV(name)                                            \
  void name(const kn_dwconv_params *p, const int8_t *in, int32_t a_zero_point,  \
            const void *packed, int8_t *out, const kn_qs8_requant *rq)
#define KN_DECLARE_F32_DWCONV(name)                                            \
  void name(const kn_dwconv_params *p, const float *in, const void *packed,     \
            float *out, float out_min, float out_max)

#define KN_DECLARE_QS8_CONV_SMALLC(name)                                       \
  void name(const kn_conv_geometry *g, const int8_t *in, int32_t a_zero_point,  \
            const void *packed, size_t n, size_t oy_begin, size_t oy_end,       \
            int8_t *out, const kn_qs8_requant *rq, void *scratch,             \
            bool weights_ready)

/* x86-64 AVX2 + FMA. The GEMM entry points pick MR tiles internally
 * (qs8: 3x8 main tile, f32: 6x16) and handle every remainder; the
 * fixed-tile names exist for the benchmarks. */
KN_DECLARE_QS8_GEMM(kestrel_qs8_gemm__avx2);
KN_DECLARE_QS8_GEMM(kestrel_qs8_gemm_1x8__avx2);
KN_DECLARE_QS8_GEMM(kestrel_qs8_gemm_2x8__avx2);
KN_DECLARE_QS8_GEMM(kestrel_qs8_gemm_3x8__avx2);
KN_DECLARE_QS8_GEMM(kestrel_qs8_gemm_4x8__avx2);
KN_DECLARE_QS8_DWCONV(kestrel_qs8_dwconv__avx2);
KN_DECLARE_F32_GEMM(kestrel_f32_gemm_6x16__avx2);
KN_DECLARE_F32_DWCONV(kestrel_f32_dwconv__avx2);
void kestrel_x8_lut__avx2(size_t n, const uint8_t *x, uint8_t *y,
                          const uint8_t *table);
KN_DECLARE_QS8_CONV_SMALLC(kestrel_qs8_conv_smallc__avx2);

/* x86-64 AVX2 + AVX-VNNI (vpdpbusd, VEX): the int8 GEMM only; compiled
 * where the compiler knows -mavxvnni (KESTREL_HAVE_AVXVNNI), run only where
 * kn_cpu_has_avxvnni(). */
KN_DECLARE_QS8_GEMM(kestrel_qs8_gemm_4x8__avxvnni);
KN_DECLARE_QS8_GEMM(kestrel_qs8_gemm_6x8__avxvnni);
KN_DECLARE_QS8_CONV_SMALLC(kestrel_qs8_conv_smallc__avxvnni);
bool kn_cpu_has_avxvnni(void);

/* aarch64 Advanced SIMD (no dotprod needed). */
KN_DECLARE_QS8_GEMM(kestrel_qs8_gemm_2x8__neon);
KN_DECLARE_QS8_DWCONV(kestrel_qs8_dwconv__neon);
KN_DECLARE_F32_GEMM(kestrel_f32_gemm_4x16__neon);
KN_DECLARE_F32_DWCONV(kestrel_f32_dwconv__neon);
void kestrel_x8_lut__neon(size_t n, const uint8_t *x, uint8_t *y,
                          const uint8_t *table);

#endif
