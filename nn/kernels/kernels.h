/* Kestrel's compute kernels: the contract between the graph (ops/) and the
 * per-ISA implementations in nn/kernels/<family>/.
 *
 * Every family has a portable C reference (`__ref`), the oracle, and fast
 * variants (`__avx2`, `__neon`) chosen at run time. Integer kernels are
 * bit-exact with the reference; float kernels state their tolerance.
 *
 *   const kn_kernels *k = kn_kernels_get();          // active ISA
 *   size_t bytes = kn_qs8_gemm_packed_size(N, K);
 *   kn_qs8_gemm_pack(N, K, weights, bias, a_zero_point, packed);
 *   k->qs8_gemm(M, N, K, a, lda, packed, c, ldc, &requant);
 *
 * Packed weight layouts are ISA-independent: the same bytes run on every
 * path (so compiled .kestrel files are portable and the paths comparable).
 * Kernels never allocate; scratch they need is sized by a _scratch_size()
 * function and handed in.
 */
#ifndef KESTREL_KERNELS_H
#define KESTREL_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum kn_isa {
  KN_ISA_REF = 0,
  KN_ISA_AVX2 = 1, /* x86-64 AVX2 + FMA */
  KN_ISA_NEON = 2, /* aarch64 Advanced SIMD */
} kn_isa;

/* Best ISA this CPU supports, unless KESTREL_ISA=ref|avx2|avxvnni|neon
 * forces one (forcing one the CPU lacks falls back to ref with a warning).
 * On x86-64 with AVX-VNNI the default table (kn_kernels_get) is the AVX2
 * one with the int8 GEMM on vpdpbusd; KESTREL_ISA=avx2 keeps plain AVX2. */
kn_isa kn_isa_detect(void);
const char *kn_isa_name(kn_isa isa);

/* --- requantization -------------------------------------------------------
 * int8 outputs: out = clamp(lrintf((float)acc * scale[n]) + zero_point,
 *                           out_min, out_max)
 * acc is the int32 accumulator including bias. The float product and the
 * round-half-to-even conversion are exactly what cvtps2dq / fcvtns do, so
 * every path gives identical bytes (kernel files build with
 * -ffp-contract=off). out_min/out_max carry fused Relu/Relu6/clip.
 * Kernels clamp the float product to [out_min - zp, out_max - zp] before
 * rounding: the same result (the bounds are integers and rounding is
 * monotone), but no int32 overflow for huge products. scale[n] finite >= 0. */
typedef struct kn_qs8_requant {
  const float *scale; /* per output channel, in_scale * w_scale / out_scale */
  int32_t zero_point; /* output zero point, [-128, 127] */
  int32_t out_min, out_max; /* [-128, 127], out_min <= out_max */
} kn_qs8_requant;

/* --- qs8 GEMM: C[M,N] = requant(A[M,K] . W[N,K]^T + bias') ----------------
 * A: int8 rows (activations, NHWC pixels or im2col rows), stride lda bytes.
 * W: int8 symmetric per-channel weights in [-127, 127] (-128 is refused by
 *    the pack: NEON sums two int8 products in int16, which -128*-128 breaks).
 * bias': int32 bias minus a_zero_point * sum_k W[n,k], folded at pack time,
 *    so A is used raw.
 * Packed (qs8-gemm/pack.c): per block of KN_QS8_GEMM_NR channels, int32
 * bias'[NR], then K in groups of KN_QS8_GEMM_KR (zero weights past K), each
 * group holding NR x KR bytes in channel order 0,4,1,5,2,6,3,7. The kernels
 * never read A past column K-1 nor past row M-1. */
#define KN_QS8_GEMM_NR 8
#define KN_QS8_GEMM_KR 8
size_t kn_qs8_gemm_packed_size(size_t n, size_t k);
void kn_qs8_gemm_pack(size_t n, size_t k, const int8_t *weights,
                      const int32_t *bias, int32_t a_zero_point, void *packed);
typedef void (*kn_qs8_gemm_fn)(size_t m, size_t n, size_t k,
                               const int8_t *a, size_t lda,
                               const void *packed, int8_t *c, size_t ldc,
                               const kn_qs8_requant *rq);

/* --- qs8 depthwise conv, NHWC, one image --------------------------------
 * acc[c] = bias[c] + sum over taps inside the image of w * (x - a_zero_point)
 * (taps in the padding add nothing: padding reads a_zero_point). Kernel
 * sizes 3x3 and 5x5 with strides 1 and 2 are fast; any other size runs the
 * generic loop (same packed layout). Weights in [-127, 127].
 * Packed (qs8-dwconv/pack.c): per block of KN_QS8_DWCONV_CR channels, int32
 * bias[CR], then for each tap (row-major kh, kw) CR int8 weights; channels
 * past C are zero. */
#define KN_QS8_DWCONV_CR 16
typedef struct kn_dwconv_params {
  size_t in_h, in_w, channels;
  size_t out_h, out_w;
  size_t kernel_h, kernel_w;
  size_t stride_h, stride_w;
  size_t dilation_h, dilation_w;
  size_t pad_top, pad_left; /* bottom/right follow from out_h/out_w */
} kn_dwconv_params;
size_t kn_qs8_dwconv_packed_size(size_t channels, size_t kh, size_t kw);
void kn_qs8_dwconv_pack(size_t channels, size_t kh, size_t kw,
                        const int8_t *weights /* [C][KH][KW] */,
                        const int32_t *bias, void *packed);
typedef void (*kn_qs8_dwconv_fn)(const kn_dwconv_params *p, const int8_t *in,
                                 int32_t a_zero_point, const void *packed,
                                 int8_t *out, const kn_qs8_requant *rq);

/* --- f32 GEMM: C[M,N] = act(A[M,K] . W[N,K]^T + bias) ---------------------
 * Tolerance vs reference: |fast - ref| <= 1e-5 * (|bias| + sum_k |a*w|)
 * (summation order and FMA differ). act = clamp to [out_min, out_max].
 * Packed (f32-gemm/pack.c): per block of KN_F32_GEMM_NR channels, bias[NR],
 * then for each k the NR weights; channels past N are zero. */
#define KN_F32_GEMM_NR 16
size_t kn_f32_gemm_packed_size(size_t n, size_t k);
void kn_f32_gemm_pack(size_t n, size_t k, const float *weights,
                      const float *bias, void *packed);
typedef void (*kn_f32_gemm_fn)(size_t m, size_t n, size_t k, const float *a,
                               size_t lda, const void *packed, float *c,
                               size_t ldc, float out_min, float out_max);

/* --- f32 depthwise conv, NHWC ----------------------------------------------
 * Same geometry as qs8; padding reads 0. Tolerance as f32 GEMM.
 * Packed (f32-dwconv/pack.c): per block of KN_F32_DWCONV_CR channels,
 * bias[CR], then for each tap CR weights; channels past C are zero. */
#define KN_F32_DWCONV_CR 8
size_t kn_f32_dwconv_packed_size(size_t channels, size_t kh, size_t kw);
void kn_f32_dwconv_pack(size_t channels, size_t kh, size_t kw,
                        const float *weights /* [C][KH][KW] */,
                        const float *bias, void *packed);
typedef void (*kn_f32_dwconv_fn)(const kn_dwconv_params *p, const float *in,
                                 const void *packed, float *out,
                                 float out_min, float out_max);

/* --- im2col for k x k convs, NHWC -> rows of KH*KW*C ------------------------
 * Writes rows [row_begin, row_end) of the M = out_h*out_w row matrix; pad
 * value is a_zero_point (int8) or 0 (f32). */
typedef struct kn_conv_geometry {
  size_t in_h, in_w, in_c;
  size_t out_h, out_w;
  size_t kernel_h, kernel_w;
  size_t stride_h, stride_w;
  size_t dilation_h, dilation_w;
  size_t pad_top, pad_left;
} kn_conv_geometry;
void kn_qs8_im2col(const kn_conv_geometry *g, const int8_t *in,
                   int8_t pad_value, size_t row_begin, size_t row_end,
                   int8_t *rows);
void kn_f32_im2col(const kn_conv_geometry *g, const float *in,
                   size_t row_begin, size_t row_end, float *rows);

/* --- 8-bit table lookup: y[i] = table[x[i]] ----------------------------------
 * table: 256 bytes indexed by the unsigned byte. x and y may be the same
 * buffer (in place). The int8 activation tables and one-input int8 ops. */
typedef void (*kn_x8_lut_fn)(size_t n, const uint8_t *x, uint8_t *y,
                             const uint8_t *table);

/* --- qs8 direct conv for few input channels (a network's first conv) ------
 * The result of im2col + qs8 GEMM on the same packed GEMM weights
 * (kn_qs8_gemm_pack with K = KH*KW*C, k = (ky*KW + kx)*C + c), without the
 * im2col: each output pixel reads its KH runs of KW*C elements straight from
 * a widened copy of the input rows, and the weights are re-laid out per call
 * into scratch (the packed layout in files does not change). For C = 3 the
 * GEMM path pads K = 27 to 32 and spends most of its time outside the
 * multiplies (im2col, horizontal adds); this does neither.
 * Computes output rows [oy_begin, oy_end) of one NHWC image: `out` points at
 * row oy_begin, pixels of N dense channels. Padding reads a_zero_point.
 * Preconditions: kn_qs8_conv_smallc_fits(g, n); scratch holds
 * kn_qs8_conv_smallc_scratch_size(g, n) bytes (any alignment; clobbered).
 * weights_ready: the scratch still holds the re-laid-out weights of an
 * earlier call with the same g, n, packed and rq (so a caller cutting an
 * image into row blocks lays them out once). */
#define KN_QS8_CONV_SMALLC_MAX_RUN 32 /* KW * C */
#define KN_QS8_CONV_SMALLC_MAX_KH 16
#define KN_QS8_CONV_SMALLC_MAX_N 512
bool kn_qs8_conv_smallc_fits(const kn_conv_geometry *g, size_t n);
size_t kn_qs8_conv_smallc_scratch_size(const kn_conv_geometry *g, size_t n);
typedef void (*kn_qs8_conv_smallc_fn)(const kn_conv_geometry *g,
                                      const int8_t *in, int32_t a_zero_point,
                                      const void *packed, size_t n,
                                      size_t oy_begin, size_t oy_end,
                                      int8_t *out, const kn_qs8_requant *rq,
                                      void *scratch, bool weights_ready);

/* The active implementation of every family. */
typedef struct kn_kernels {
  kn_isa isa;
  kn_qs8_gemm_fn qs8_gemm;
  kn_qs8_dwconv_fn qs8_dwconv;
  kn_f32_gemm_fn f32_gemm;
  kn_f32_dwconv_fn f32_dwconv;
  kn_x8_lut_fn x8_lut;
  /* "ref", "avx2", "avx2+avxvnni" (the AVX2 table with the int8 GEMM on
   * AVX-VNNI; isa is KN_ISA_AVX2), "neon". */
  const char *name;
  /* NULL where the ISA has no direct kernel (im2col + GEMM then). */
  kn_qs8_conv_smallc_fn qs8_conv_smallc;
} kn_kernels;

/* Table for the detected (or forced) ISA. */
const kn_kernels *kn_kernels_get(void);
/* Table for one ISA, NULL if not compiled in or unsupported by this CPU
 * (KN_ISA_AVX2: plain AVX2, without the AVX-VNNI GEMM). */
const kn_kernels *kn_kernels_for(kn_isa isa);

/* Requantize one accumulator (the definition every path matches). */
static inline int8_t kn_qs8_requantize(int32_t acc, float scale,
                                       const kn_qs8_requant *rq) {
  float x = (float)acc * scale;
  float lo = (float)(rq->out_min - rq->zero_point);
  float hi = (float)(rq->out_max - rq->zero_point);
  /* A hostile file can make the scale inf and the product NaN: map it to
   * the zero point instead of converting NaN (undefined). Valid models
   * never take this branch, so SIMD paths need not match it. */
  if (!(x == x))
    x = 0.0f;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  /* x is within int range now, so the conversion (nearbyintf: round half
   * to even in the default mode) is defined. */
  return (int8_t)((int32_t)__builtin_nearbyintf(x) + rq->zero_point);
}

/* References, always available (the test oracles). */
void kestrel_qs8_gemm__ref(size_t m, size_t n, size_t k, const int8_t *a,
                           size_t lda, const void *packed, int8_t *c,
                           size_t ldc, const kn_qs8_requant *rq);
void kestrel_qs8_dwconv__ref(const kn_dwconv_params *p, const int8_t *in,
                             int32_t a_zero_point, const void *packed,
                             int8_t *out, const kn_qs8_requant *rq);
void kestrel_f32_gemm__ref(size_t m, size_t n, size_t k, const float *a,
                           size_t lda, const void *packed, float *c,
                           size_t ldc, float out_min, float out_max);
void kestrel_f32_dwconv__ref(const kn_dwconv_params *p, const float *in,
                             const void *packed, float *out, float out_min,
                             float out_max);
void kestrel_x8_lut__ref(size_t n, const uint8_t *x, uint8_t *y,
                         const uint8_t *table);
void kestrel_qs8_conv_smallc__ref(const kn_conv_geometry *g, const int8_t *in,
                                  int32_t a_zero_point, const void *packed,
                                  size_t n, size_t oy_begin, size_t oy_end,
                                  int8_t *out, const kn_qs8_requant *rq,
                                  void *scratch, bool weights_ready);

#endif
