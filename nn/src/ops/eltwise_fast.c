/* int8 Add/Mul fast path (see eltwise_fast.h). The AVX2 loop computes,
 * 8 lanes at a time, exactly the reference's float value (elementwise.c
 * binary_apply + kn_ew_requant): int->float conversions are exact, each
 * multiply/add/divide rounds once, vcvtps2dq rounds as rintf does (half to
 * even under the default mode), and no FMA is enabled, so nothing is
 * contracted. Its clamps are merged and moved to the bytes
 * (kn_qs8_binary_prepare says why that is exact).
 */
#include "eltwise_fast.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "ops_common.h"
#include "ops_eltwise.h"
#include "threadpool.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#endif

/* ---- int8 Add / Mul rows -------------------------------------------------- */

/* Scales and zero points within these bounds keep every intermediate of
 * the reference finite: |a - za| <= 255, so |va|, |vb| <= 2.55e17 and
 * |va * vb| <= 6.6e34 < FLT_MAX; no inf, hence no inf - inf or 0 * inf,
 * hence no NaN (which the merged clamp would map differently). */
#define VEC_MAX_SCALE 1e15f

void kn_qs8_binary_prepare(kn_qs8_binary *p) {
  p->avx2 = kn_kernels_get()->isa == KN_ISA_AVX2;
  /* The vector loop's shortcut. For non-NaN v and 0 < sy < inf,
   * v -> rint(v / sy) is non-decreasing, so the reference's chain -- clamp
   * v to [lo, hi], r = rint(v / sy), clamp r to +-65536, add zy, saturate
   * to [-128, 127] -- equals: r = rint(v / sy), then sat8(r + zy), then a
   * clamp of that byte to [lo8, hi8] = [clamp(A, E, F), clamp(B, E, F)] + zy
   * with A, B = rint(lo / sy), rint(hi / sy) and E, F = -128 - zy,
   * 127 - zy (two clamps compose into one when A <= B). The loop rounds
   * with vcvtps2dq (rint under the default rounding mode) after capping
   * v / sy at 65536 (rint commutes with that cap; below -2^31 vcvtps2dq
   * gives INT_MIN, which saturates alike), saturates through int16
   * (+ zy with saturation there) to int8, and clamps the bytes. */
  p->vec = fabsf(p->sa) <= VEC_MAX_SCALE && fabsf(p->sb) <= VEC_MAX_SCALE &&
           p->sy > 0.0f && !isinf(p->sy) && p->za >= -128 && p->za <= 127 &&
           p->zb >= -128 && p->zb <= 127 && p->zy >= -128 && p->zy <= 127 &&
           p->lo <= p->hi;
  if (!p->vec)
    return;
  float e = (float)(-128 - p->zy), f = (float)(127 - p->zy);
  float a = rintf(p->lo / p->sy), b = rintf(p->hi / p->sy);
  p->lo8 = (int32_t)(a < e ? e : (a > f ? f : a)) + p->zy;
  p->hi8 = (int32_t)(b < e ? e : (b > f ? f : b)) + p->zy;
}

/* The reference's requantization of one value, clamp activation first. */
static inline int8_t requant1(const kn_qs8_binary *p, float v) {
  v = v < p->lo ? p->lo : (v > p->hi ? p->hi : v);
  float r = rintf(v / p->sy);
  if (r != r)
    return (int8_t)(p->zy < -128 ? -128 : (p->zy > 127 ? 127 : p->zy));
  r = r > 65536.0f ? 65536.0f : (r < -65536.0f ? -65536.0f : r);
  int32_t q = (int32_t)r + p->zy;
  return (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
}

static inline float dequant1(float s, int32_t z, int8_t q) {
  return s * (float)((int32_t)q - z);
}

/* Where b comes from: int8 b[i], float vb[i] (b's values dequantized once
 * for a whole row), or one float vb[0] for every element. */
enum { B_FLAT, B_ROW, B_SCALAR };

static void row_scalar(const kn_qs8_binary *p, const int8_t *a,
                       const int8_t *b, const float *vb, int b_mode, int8_t *y,
                       size_t count) {
  for (size_t i = 0; i < count; i++) {
    float va = dequant1(p->sa, p->za, a[i]);
    float v2 = b_mode == B_FLAT  ? dequant1(p->sb, p->zb, b[i])
               : b_mode == B_ROW ? vb[i]
                                 : vb[0];
    y[i] = requant1(p, p->mul ? va * v2 : va + v2);
  }
}

#ifdef HAVE_AVX2_PATH
#define AVX2_INLINE                                                            \
  __attribute__((target("avx2"), always_inline)) static inline

typedef struct vec_consts {
  __m256i za, zb;
  __m256 sa, sb, sy, cap;
  __m256 vb; /* B_SCALAR */
} vec_consts;

AVX2_INLINE __m256 dequant8(const int8_t *q, __m256i z, __m256 s) {
  __m256i i = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q));
  return _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_sub_epi32(i, z)));
}

/* Eight results as int32: rint(v / sy), before zy and the clamps. */
AVX2_INLINE __m256i eight(const vec_consts *k, const int8_t *a,
                          const int8_t *b, const float *vb, const int b_mode,
                          const bool mul) {
  __m256 va = dequant8(a, k->za, k->sa);
  __m256 v2 = b_mode == B_FLAT  ? dequant8(b, k->zb, k->sb)
              : b_mode == B_ROW ? _mm256_loadu_ps(vb)
                                : k->vb;
  __m256 v = mul ? _mm256_mul_ps(va, v2) : _mm256_add_ps(va, v2);
  return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_div_ps(v, k->sy), k->cap));
}

/* 32 elements a step: the four int32 vectors pack to int16, take zy
 * there, pack to int8, are clamped to [lo8, hi8] as bytes, and one dword
 * permute undoes the packs' lane interleave. */
AVX2_INLINE void row_loop(const kn_qs8_binary *p, const int8_t *a,
                          const int8_t *b, const float *vb, const int b_mode,
                          const bool mul, int8_t *y, size_t count) {
  vec_consts k;
  k.za = _mm256_set1_epi32(p->za);
  k.zb = _mm256_set1_epi32(p->zb);
  k.sa = _mm256_set1_ps(p->sa);
  k.sb = _mm256_set1_ps(p->sb);
  k.sy = _mm256_set1_ps(p->sy);
  k.cap = _mm256_set1_ps(65536.0f);
  k.vb = _mm256_set1_ps(b_mode == B_SCALAR ? vb[0] : 0.0f);
  const __m256i zy16 = _mm256_set1_epi16((int16_t)p->zy);
  const __m256i lo8 = _mm256_set1_epi8((char)p->lo8);
  const __m256i hi8 = _mm256_set1_epi8((char)p->hi8);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  /* Only the operand this mode reads is offset: the other may be NULL, and
   * even a zero offset from NULL is undefined (UBSan, fuzz_tflite). */
#define B_AT(off) (b_mode == B_FLAT ? b + (off) : b)
#define VB_AT(off) (b_mode == B_ROW ? vb + (off) : vb)
  size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    __m256i q0 = eight(&k, a + i, B_AT(i), VB_AT(i), b_mode, mul);
    __m256i q1 = eight(&k, a + i + 8, B_AT(i + 8), VB_AT(i + 8), b_mode, mul);
    __m256i q2 = eight(&k, a + i + 16, B_AT(i + 16), VB_AT(i + 16), b_mode, mul);
    __m256i q3 = eight(&k, a + i + 24, B_AT(i + 24), VB_AT(i + 24), b_mode, mul);
    __m256i h01 = _mm256_adds_epi16(_mm256_packs_epi32(q0, q1), zy16);
    __m256i h23 = _mm256_adds_epi16(_mm256_packs_epi32(q2, q3), zy16);
    __m256i q8 = _mm256_packs_epi16(h01, h23);
    q8 = _mm256_min_epi8(_mm256_max_epi8(q8, lo8), hi8);
    __m256i q = _mm256_permutevar8x32_epi32(q8, order);
    _mm256_storeu_si256((__m256i *)(y + i), q);
  }
  for (; i + 8 <= count; i += 8) {
    __m256i q = eight(&k, a + i, B_AT(i), VB_AT(i), b_mode, mul);
    __m128i q16 = _mm_adds_epi16(_mm_packs_epi32(_mm256_castsi256_si128(q),
                                                 _mm256_extracti128_si256(q, 1)),
                                 _mm256_castsi256_si128(zy16));
    __m128i q8 = _mm_packs_epi16(q16, q16);
    q8 = _mm_min_epi8(_mm_max_epi8(q8, _mm256_castsi256_si128(lo8)),
                      _mm256_castsi256_si128(hi8));
    _mm_storel_epi64((__m128i *)(y + i), q8);
  }
#undef B_AT
#undef VB_AT
  if (i < count)
    row_scalar(p, a + i, b_mode == B_FLAT ? b + i : b,
               b_mode == B_ROW ? vb + i : vb, b_mode, y + i, count - i);
}

/* One specialized loop per (b source, op): the branches above fold. */
__attribute__((target("avx2"))) static void
row_avx2(const kn_qs8_binary *p, const int8_t *a, const int8_t *b,
         const float *vb, int b_mode, int8_t *y, size_t count) {
  if (p->mul) {
    if (b_mode == B_FLAT)
      row_loop(p, a, b, vb, B_FLAT, true, y, count);
    else if (b_mode == B_ROW)
      row_loop(p, a, b, vb, B_ROW, true, y, count);
    else
      row_loop(p, a, b, vb, B_SCALAR, true, y, count);
  } else {
    if (b_mode == B_FLAT)
      row_loop(p, a, b, vb, B_FLAT, false, y, count);
    else if (b_mode == B_ROW)
      row_loop(p, a, b, vb, B_ROW, false, y, count);
    else
      row_loop(p, a, b, vb, B_SCALAR, false, y, count);
  }
}
#endif

static void q8_row(const kn_qs8_binary *p, const int8_t *a, const int8_t *b,
                   const float *vb, int b_mode, int8_t *y, size_t count) {
#ifdef HAVE_AVX2_PATH
  if (p->avx2 && p->vec) {
    row_avx2(p, a, b, vb, b_mode, y, count);
    return;
  }
#endif
  row_scalar(p, a, b, vb, b_mode, y, count);
}

void kn_qs8_binary_rows(const kn_qs8_binary *p, const int8_t *a,
                        const int8_t *b, int8_t *y, size_t count) {
  q8_row(p, a, b, NULL, B_FLAT, y, count);
}

/* ---- the node --------------------------------------------------------------- */

/* Columns of b's row dequantized at once (a stack buffer). */
#define ROW_BLOCK 256

typedef struct q8_binary {
  kn_qs8_binary q;
  const int8_t *a, *b;
  int8_t *y;
  size_t inner;     /* elements per row */
  bool b_per_row;   /* b has `inner` values reused by every row */
  bool b_scalar;    /* b has one value */
  bool f32;   /* float32 tensors (a, b, y point at floats) */
  bool clamp; /* f32: an activation clamp follows */
  size_t es;  /* element size */
} q8_binary;

/* float32: the reference's row loop (elementwise.c row_f32) followed by
 * its clamp activation, element by element: same operations, same bits. */
#define F32_ROW(SUFFIX, ATTR)                                                  \
  ATTR static void f32_row_##SUFFIX(bool mul, const float *restrict a,         \
                                    const float *restrict b, size_t b_step,    \
                                    float *y, size_t count, float lo,          \
                                    float hi, bool clamp) {                    \
    if (b_step) {                                                              \
      if (mul)                                                                 \
        for (size_t i = 0; i < count; i++)                                     \
          y[i] = a[i] * b[i];                                                  \
      else                                                                     \
        for (size_t i = 0; i < count; i++)                                     \
          y[i] = a[i] + b[i];                                                  \
    } else {                                                                   \
      const float vb = b[0];                                                   \
      if (mul)                                                                 \
        for (size_t i = 0; i < count; i++)                                     \
          y[i] = a[i] * vb;                                                    \
      else                                                                     \
        for (size_t i = 0; i < count; i++)                                     \
          y[i] = a[i] + vb;                                                    \
    }                                                                          \
    if (clamp)                                                                 \
      for (size_t i = 0; i < count; i++)                                       \
        y[i] = y[i] < lo ? lo : (y[i] > hi ? hi : y[i]);                       \
  }
F32_ROW(generic, )
#ifdef HAVE_AVX2_PATH
F32_ROW(avx2, __attribute__((target("avx2"))))
#endif

static void f32_row(const q8_binary *p, const uint8_t *a, const uint8_t *b,
                    size_t b_step, uint8_t *y, size_t count) {
  const float *fa = (const float *)(const void *)a;
  const float *fb = (const float *)(const void *)b;
  float *fy = (float *)(void *)y;
#ifdef HAVE_AVX2_PATH
  if (p->q.avx2) {
    f32_row_avx2(p->q.mul, fa, fb, b_step, fy, count, p->q.lo, p->q.hi,
                 p->clamp);
    return;
  }
#endif
  f32_row_generic(p->q.mul, fa, fb, b_step, fy, count, p->q.lo, p->q.hi,
                  p->clamp);
}

/* int8 rows [begin, end) of a per-channel broadcast: b's channels are
 * dequantized once per block of columns (what the reference computes for
 * them on every row), then every row of the chunk runs against them. Rows
 * are contiguous, so rows narrower than half the block run `rep` at a
 * time against `rep` copies of their channels: one long run instead of
 * many short ones (PP-OCR's SE blocks have 8 to 200 channels). */
static void q8_per_row_chunk(const q8_binary *p, size_t begin, size_t end) {
  float vb[ROW_BLOCK];
  size_t inner = p->inner;
  size_t rep = inner <= ROW_BLOCK / 2 ? ROW_BLOCK / inner : 1;
  for (size_t c0 = 0; c0 < inner; c0 += ROW_BLOCK) {
    size_t cn = inner - c0 < ROW_BLOCK ? inner - c0 : ROW_BLOCK;
    for (size_t c = 0; c < cn; c++)
      vb[c] = dequant1(p->q.sb, p->q.zb, p->b[c0 + c]);
    for (size_t k = 1; k < rep; k++)
      memcpy(vb + k * inner, vb, inner * sizeof(float));
    for (size_t r = begin; r < end; r += rep) {
      size_t rows = end - r < rep ? end - r : rep;
      q8_row(&p->q, p->a + r * inner + c0, NULL, vb, B_ROW,
             p->y + r * inner + c0, rep > 1 ? rows * inner : cn);
    }
  }
}

/* Items are rows when b repeats per row, else elements of one flat row. */
static void run_chunk(void *ctx, size_t begin, size_t end, int thread) {
  (void)thread;
  const q8_binary *p = ctx;
  size_t es = p->es;
  const uint8_t *a = (const uint8_t *)p->a, *b = (const uint8_t *)p->b;
  uint8_t *y = (uint8_t *)p->y;
  if (p->f32) {
    if (p->b_per_row)
      for (size_t r = begin; r < end; r++)
        f32_row(p, a + r * p->inner * es, b, 1, y + r * p->inner * es,
                p->inner);
    else if (p->b_scalar)
      f32_row(p, a + begin * es, b, 0, y + begin * es, end - begin);
    else
      f32_row(p, a + begin * es, b + begin * es, 1, y + begin * es,
              end - begin);
    return;
  }
  if (p->b_per_row) {
    q8_per_row_chunk(p, begin, end);
  } else if (p->b_scalar) {
    float vb = dequant1(p->q.sb, p->q.zb, p->b[0]);
    q8_row(&p->q, p->a + begin, NULL, &vb, B_SCALAR, p->y + begin,
           end - begin);
  } else {
    q8_row(&p->q, p->a + begin, p->b + begin, NULL, B_FLAT, p->y + begin,
           end - begin);
  }
}

static bool same_dims(const kn_tensor *x, const kn_tensor *y) {
  if (x->ndim != y->ndim)
    return false;
  for (int d = 0; d < x->ndim; d++)
    if (x->dims[d] != y->dims[d])
      return false;
  return true;
}

/* b is [..., 1, C] against y [..., C] (all but the last dim 1). */
static bool per_last_dim(const kn_tensor *b, const kn_tensor *y) {
  if (y->ndim < 1 || b->ndim < 1 || b->ndim > y->ndim)
    return false;
  if (b->dims[b->ndim - 1] != y->dims[y->ndim - 1])
    return false;
  for (int d = 0; d < b->ndim - 1; d++)
    if (b->dims[d] != 1)
      return false;
  return true;
}

bool kn_eltwise_fast_binary(const kn_exec *ex, const kn_node *n) {
  if ((n->op != KN_OP_ADD && n->op != KN_OP_MUL) || n->num_inputs != 2 ||
      n->num_outputs != 1)
    return false;
  kn_graph *g = ex->graph;
  const kn_tensor *a = kn_in(g, n, 0), *b = kn_in(g, n, 1);
  const kn_tensor *y = kn_out(g, n, 0);
  if (!a || !b || !y)
    return false;
  bool f32 = a->dtype == KESTREL_DTYPE_F32 && b->dtype == KESTREL_DTYPE_F32 &&
             y->dtype == KESTREL_DTYPE_F32;
  if (!f32 && (a->dtype != KESTREL_DTYPE_I8 || b->dtype != KESTREL_DTYPE_I8 ||
               y->dtype != KESTREL_DTYPE_I8 || !kn_ew_is_quantized(a) ||
               !kn_ew_is_quantized(b) || !kn_ew_is_quantized(y)))
    return false;
  kn_ew_act act;
  kestrel_error err;
  if (kn_ew_act_read(n, &act, &err) != KESTREL_OK)
    return false;
  q8_binary p;
  memset(&p, 0, sizeof p);
  float lo = -INFINITY; /* unbounded sides leave infinities alone, as */
  float hi = INFINITY;  /* the reference's one-sided activations do */
  switch (act.kind) {
  case KN_ACT_NONE: break;
  case KN_ACT_RELU: lo = 0.0f; break;
  case KN_ACT_RELU6: lo = 0.0f; hi = 6.0f; break;
  case KN_ACT_RELU_N1_TO_1: lo = -1.0f; hi = 1.0f; break;
  case KN_ACT_CLIP: lo = act.lo; hi = act.hi; break;
  default: return false; /* non-clamp activations stay on the reference */
  }
  /* The f32 clamp order (max then min) equals the reference's only when
   * lo <= hi; anything else is left to it. */
  if (!(lo <= hi))
    return false;
  /* Either operand may be the broadcast one: Add and Mul commute, and the
   * reference's float add/mul are commutative too, so swapping a and b
   * (with their parameters) changes no bit. */
  if (!same_dims(a, y)) {
    const kn_tensor *t = a;
    a = b;
    b = t;
  }
  if (!same_dims(a, y))
    return false;
  int64_t count = kn_tensor_numel(y);
  if (count <= 0)
    return count == 0;
  if (same_dims(b, y)) {
    /* flat */
  } else if (kn_tensor_numel(b) == 1) {
    p.b_scalar = true;
  } else if (per_last_dim(b, y)) {
    p.b_per_row = true;
  } else {
    return false;
  }
  p.q.mul = n->op == KN_OP_MUL;
  p.q.lo = lo;
  p.q.hi = hi;
  p.q.avx2 = kn_kernels_get()->isa == KN_ISA_AVX2;
  p.f32 = f32;
  p.es = f32 ? sizeof(float) : 1;
  p.a = a->data;
  p.b = b->data;
  p.y = y->data;
  if (f32) {
    /* The reference applies no clamp at all for KN_ACT_NONE. */
    p.clamp = act.kind != KN_ACT_NONE;
  } else {
    kn_ew_quant qa = kn_ew_quant_of(a), qb = kn_ew_quant_of(b),
                qy = kn_ew_quant_of(y);
    p.q.sa = qa.scale;
    p.q.za = qa.zero_point;
    p.q.sb = qb.scale;
    p.q.zb = qb.zero_point;
    p.q.sy = qy.scale;
    p.q.zy = qy.zero_point;
    kn_qs8_binary_prepare(&p.q);
  }
  if (p.b_per_row) {
    p.inner = (size_t)y->dims[y->ndim - 1];
    size_t rows = (size_t)count / p.inner;
    kn_parallel_for(ex->pool, rows, 16, run_chunk, &p);
  } else {
    kn_parallel_for(ex->pool, (size_t)count, 4096, run_chunk, &p);
  }
  return true;
}

/* ---- one-input ops through a table ---------------------------------------- */

#define TABLE_MIN_ELEMENTS 4096

typedef struct table_job {
  const uint8_t *x;
  uint8_t *y;
  uint8_t lut[256];
} table_job;

static void table_chunk(void *ctx, size_t begin, size_t end, int thread) {
  (void)thread;
  const table_job *j = ctx;
  kn_kernels_get()->x8_lut(end - begin, j->x + begin, j->y + begin, j->lut);
}

bool kn_eltwise_fast_unary(const kn_exec *ex, const kn_node *n, kn_run_fn ref,
                           kestrel_status *st, kestrel_error *err) {
  if (n->num_inputs != 1 || n->num_outputs != 1 || !ref)
    return false;
  kn_graph *g = ex->graph;
  const kn_tensor *x = kn_in(g, n, 0);
  kn_tensor *y = kn_out(g, n, 0);
  if (!x || !y || !kn_ew_is_quantized(x) || !kn_ew_is_quantized(y) ||
      x->dtype != y->dtype || kn_tensor_numel(x) != kn_tensor_numel(y) ||
      kn_tensor_numel(x) < TABLE_MIN_ELEMENTS)
    return false;
  /* A two-tensor graph over the 256 byte values, on the stack: the node is
   * the same (same attributes), only its tensors differ. */
  table_job j;
  uint8_t values[256];
  for (int v = 0; v < 256; v++)
    values[v] = (uint8_t)v; /* as int8 these are 0..127, -128..-1 */
  kn_tensor t[2];
  t[0] = *x;
  t[1] = *y;
  t[0].ndim = t[1].ndim = 1;
  t[0].dims[0] = t[1].dims[0] = 256;
  t[0].data = values;
  t[1].data = j.lut;
  t[0].kind = t[1].kind = KN_TENSOR_ACTIVATION;
  int in_index = 0, out_index = 1;
  kn_node tn = *n;
  tn.inputs = &in_index;
  tn.outputs = &out_index;
  kn_graph tg = *g;
  tg.tensors = t;
  tg.num_tensors = 2;
  kn_exec tx = {&tg, ex->scratch, ex->scratch_bytes, 1, NULL};
  *st = ref(&tx, &tn, err);
  if (*st != KESTREL_OK)
    return true;
  j.x = x->data;
  j.y = y->data;
  kn_parallel_for(ex->pool, (size_t)kn_tensor_numel(x), 4096, table_chunk, &j);
  return true;
}

/* ---- QuantizeLinear / DequantizeLinear ------------------------------------ */

typedef struct quant_job {
  const void *in;
  void *out;
  float scale;
  int32_t zero;
  bool avx2;
  float table[256]; /* dequantize: value of each byte */
} quant_job;

static inline int8_t quantize1(float v, float scale, int32_t zero) {
  float r = rintf(v / scale);
  if (r != r)
    r = 0.0f; /* the reference rounds NaN to 0 */
  r = r > 1e6f ? 1e6f : (r < -1e6f ? -1e6f : r);
  int32_t q = (int32_t)r + zero;
  return (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
}

#ifdef HAVE_AVX2_PATH
__attribute__((target("avx2"))) static void
quantize_avx2(const float *in, int8_t *out, size_t count, float scale,
              int32_t zero) {
  const __m256 s = _mm256_set1_ps(scale);
  const __m256 lo = _mm256_set1_ps(-1e6f), hi = _mm256_set1_ps(1e6f);
  const __m256i z = _mm256_set1_epi32(zero);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m256 r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(in + i), s),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q)); /* NaN -> 0 */
    r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(r), z);
    __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q),
                                  _mm256_extracti128_si256(q, 1));
    _mm_storel_epi64((__m128i *)(out + i), _mm_packs_epi16(q16, q16));
  }
  for (; i < count; i++)
    out[i] = quantize1(in[i], scale, zero);
}
#endif

static void quantize_chunk(void *ctx, size_t b, size_t e, int thread) {
  (void)thread;
  const quant_job *j = ctx;
  const float *in = (const float *)j->in + b;
  int8_t *out = (int8_t *)j->out + b;
#ifdef HAVE_AVX2_PATH
  if (j->avx2) {
    quantize_avx2(in, out, e - b, j->scale, j->zero);
    return;
  }
#endif
  for (size_t i = 0; i < e - b; i++)
    out[i] = quantize1(in[i], j->scale, j->zero);
}

void kn_quantize_f32_i8_fast(const kn_exec *ex, const float *in, int8_t *out,
                             size_t count, float scale, int32_t zero) {
  quant_job j;
  j.in = in;
  j.out = out;
  j.scale = scale;
  j.zero = zero;
  j.avx2 = kn_kernels_get()->isa == KN_ISA_AVX2;
  kn_parallel_for(ex->pool, count, 8192, quantize_chunk, &j);
}

static void dequantize_chunk(void *ctx, size_t b, size_t e, int thread) {
  (void)thread;
  const quant_job *j = ctx;
  const int8_t *in = j->in;
  float *out = j->out;
  for (size_t i = b; i < e; i++)
    out[i] = j->table[(int32_t)in[i] + 128];
}

void kn_dequantize_i8_f32_fast(const kn_exec *ex, const int8_t *in, float *out,
                               size_t count, float scale, int32_t zero) {
  quant_job j;
  j.in = in;
  j.out = out;
  for (int v = -128; v < 128; v++)
    j.table[v + 128] = (float)((int64_t)v - zero) * scale;
  kn_parallel_for(ex->pool, count, 8192, dequantize_chunk, &j);
}

/* ---- GlobalAveragePool, NHWC ---------------------------------------------- */


#define POOL_SUM(SUFFIX, ATTR)                                                 \
  ATTR static void sum_f32_##SUFFIX(double *restrict acc,                      \
                                    const float *restrict x, size_t pixels,   \
                                    size_t stride, size_t count) {            \
    for (size_t p = 0; p < pixels; p++)                                        \
      for (size_t c = 0; c < count; c++)                                       \
        acc[c] += (double)x[p * stride + c];                                   \
  }
/* 8-bit terms are the reference's dequantized floats, (float)(q - xz) *
 * xs (exact conversion, one rounding), widened to double. */
#define POOL_SUM_I8(SUFFIX, ATTR)                                              \
  ATTR static void sum_i8_##SUFFIX(double *restrict acc,                       \
                                   const int8_t *restrict x, size_t pixels,   \
                                   size_t stride, size_t count, int32_t xz,   \
                                   float xs) {                                 \
    for (size_t p = 0; p < pixels; p++)                                        \
      for (size_t c = 0; c < count; c++)                                       \
        acc[c] += (double)((float)((int32_t)x[p * stride + c] - xz) * xs);     \
  }
POOL_SUM(generic, )
POOL_SUM_I8(generic, )
#ifdef HAVE_AVX2_PATH
POOL_SUM(avx2, __attribute__((target("avx2"))))
POOL_SUM_I8(avx2, __attribute__((target("avx2"))))
#endif

typedef struct gap_job {
  const kn_tensor *in;
  kn_tensor *out;
  const float *table;
  size_t batch, c, pixels;
  float xs, ys;
  int32_t xz, yz;
  bool q8, avx2;
} gap_job;

/* Items are (image, block of GAP_ITEM channels): small enough that the
 * SE blocks' 100-400 channels still split across threads. */
#define GAP_ITEM 32

static void gap_chunk(void *ctx, size_t begin, size_t end, int thread) {
  (void)thread;
  const gap_job *j = ctx;
  const kn_tensor *in = j->in;
  kn_tensor *out = j->out;
  const float *table = j->table;
  size_t c = j->c, pixels = j->pixels;
  size_t blocks = (c + GAP_ITEM - 1) / GAP_ITEM;
  float xs = j->xs, ys = j->ys;
  int32_t xz = j->xz, yz = j->yz;
  bool q8 = j->q8, avx2 = j->avx2;
  double acc[GAP_ITEM];
  for (size_t item = begin; item < end; item++) {
    size_t b = item / blocks, c0 = item % blocks * GAP_ITEM;
    size_t count = c - c0 < GAP_ITEM ? c - c0 : GAP_ITEM;
    for (size_t i = 0; i < count; i++)
      acc[i] = 0.0;
    if (q8 && in->dtype == KESTREL_DTYPE_I8) {
      const int8_t *x = (const int8_t *)in->data + b * pixels * c + c0;
#ifdef HAVE_AVX2_PATH
      if (avx2)
        sum_i8_avx2(acc, x, pixels, c, count, xz, xs);
      else
#endif
        sum_i8_generic(acc, x, pixels, c, count, xz, xs);
    } else if (q8) {
      const uint8_t *x = (const uint8_t *)in->data + b * pixels * c + c0;
      for (size_t p = 0; p < pixels; p++)
        for (size_t i = 0; i < count; i++)
          acc[i] += (double)table[x[p * c + i]];
    } else {
      const float *x = (const float *)in->data + b * pixels * c + c0;
#ifdef HAVE_AVX2_PATH
      if (avx2)
        sum_f32_avx2(acc, x, pixels, c, count);
      else
#endif
        sum_f32_generic(acc, x, pixels, c, count);
    }
    for (size_t i = 0; i < count; i++) {
      float r = (float)(acc[i] / (double)pixels);
      size_t yi = b * c + c0 + i;
      if (q8) {
        int64_t v = kn_round_even((double)r / ys) + yz;
        kn_store_int(out->data, out->dtype, (int64_t)yi,
                     kn_saturate(v, out->dtype));
      } else {
        ((float *)out->data)[yi] = r;
      }
    }
  }
  (void)avx2;
}

bool kn_global_avgpool_nhwc_fast(const kn_exec *ex, const kn_tensor *in,
                                 kn_tensor *out) {
  if (in->ndim < 3 || out->ndim != in->ndim)
    return false;
  bool q8 = in->dtype == KESTREL_DTYPE_I8 || in->dtype == KESTREL_DTYPE_U8;
  if (in->dtype != KESTREL_DTYPE_F32 && !q8)
    return false;
  if (q8 && (out->dtype != in->dtype || in->q_count > 1 || out->q_count > 1))
    return false;
  size_t batch = (size_t)in->dims[0], c = (size_t)in->dims[in->ndim - 1];
  size_t pixels = 1;
  for (int d = 1; d < in->ndim - 1; d++) {
    pixels *= (size_t)in->dims[d];
    if (out->dims[d] != 1)
      return false;
  }
  if (out->dims[0] != in->dims[0] || out->dims[out->ndim - 1] != in->dims[in->ndim - 1] ||
      pixels == 0 || pixels > (1u << 20))
    return false;
  bool avx2 = kn_kernels_get()->isa == KN_ISA_AVX2;
  float table[256];
  float xs = 1.0f, ys = 1.0f;
  int32_t xz = 0, yz = 0;
  if (q8) {
    xs = kn_q_scale(in, 0);
    xz = kn_q_zero(in, 0);
    const kn_tensor *qy = out->q_count ? out : in;
    ys = kn_q_scale(qy, 0);
    yz = kn_q_zero(qy, 0);
    for (int v = 0; v < 256; v++) {
      int32_t val = in->dtype == KESTREL_DTYPE_I8 ? (int8_t)(uint8_t)v : v;
      table[v] = (float)(val - xz) * xs;
    }
  }
  gap_job j = {in, out, table, batch, c, pixels, xs, ys, xz, yz, q8, avx2};
  size_t blocks = (c + GAP_ITEM - 1) / GAP_ITEM;
  /* Channel blocks are independent (each channel's sum keeps its pixel
   * order), so splitting them across threads changes no byte. */
  kn_parallel_for(ex->pool, batch * blocks, 1, gap_chunk, &j);
  (void)avx2;
  return true;
}
