/* int8 Add/Mul fast path (see eltwise_fast.h). The AVX2 loop does, 8 lanes
 * at a time, exactly the scalar float operations of the reference
 * (elementwise.c binary_apply + kn_ew_requant): int->float conversions are
 * exact, each multiply/add/divide rounds once, cvtps2dq rounds half to
 * even as rintf does. No FMA is enabled for it, so nothing is contracted.
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

typedef struct q8_binary {
  bool mul;
  float sa, sb, sy;
  int32_t za, zb, zy;
  float lo, hi; /* activation clamp on the real value (+-inf: none) */
  const int8_t *a, *b;
  int8_t *y;
  size_t inner;     /* elements per row */
  bool b_per_row;   /* b has `inner` values reused by every row */
  bool b_scalar;    /* b has one value */
  bool avx2;
  bool f32;   /* float32 tensors (a, b, y point at floats) */
  bool clamp; /* f32: an activation clamp follows */
  size_t es;  /* element size */
} q8_binary;

static inline int8_t requant1(const q8_binary *p, float v) {
  v = v < p->lo ? p->lo : (v > p->hi ? p->hi : v);
  float r = rintf(v / p->sy);
  if (r != r)
    return (int8_t)(p->zy < -128 ? -128 : (p->zy > 127 ? 127 : p->zy));
  r = r > 65536.0f ? 65536.0f : (r < -65536.0f ? -65536.0f : r);
  int32_t q = (int32_t)r + p->zy;
  return (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
}

static void row_scalar(const q8_binary *p, const int8_t *a, const int8_t *b,
                       size_t b_step, int8_t *y, size_t count) {
  for (size_t i = 0; i < count; i++) {
    float va = p->sa * (float)((int32_t)a[i] - p->za);
    float vb = p->sb * (float)((int32_t)b[i * b_step] - p->zb);
    y[i] = requant1(p, p->mul ? va * vb : va + vb);
  }
}

#ifdef HAVE_AVX2_PATH
__attribute__((target("avx2"))) static void
row_avx2(const q8_binary *p, const int8_t *a, const int8_t *b, size_t b_step,
         int8_t *y, size_t count) {
  const __m256i za = _mm256_set1_epi32(p->za), zb = _mm256_set1_epi32(p->zb);
  const __m256i zy = _mm256_set1_epi32(p->zy);
  const __m256 sa = _mm256_set1_ps(p->sa), sb = _mm256_set1_ps(p->sb);
  const __m256 sy = _mm256_set1_ps(p->sy);
  const __m256 lo = _mm256_set1_ps(p->lo), hi = _mm256_set1_ps(p->hi);
  const __m256 rlo = _mm256_set1_ps(-65536.0f), rhi = _mm256_set1_ps(65536.0f);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m256i ia = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(a + i)));
    __m256i ib = b_step ? _mm256_cvtepi8_epi32(
                              _mm_loadl_epi64((const __m128i *)(b + i)))
                        : _mm256_set1_epi32(b[0]);
    __m256 va = _mm256_mul_ps(sa, _mm256_cvtepi32_ps(_mm256_sub_epi32(ia, za)));
    __m256 vb = _mm256_mul_ps(sb, _mm256_cvtepi32_ps(_mm256_sub_epi32(ib, zb)));
    __m256 v = p->mul ? _mm256_mul_ps(va, vb) : _mm256_add_ps(va, vb);
    /* max/min in this order match the scalar (v < lo ? lo : v) for
     * non-NaN v. */
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    __m256 r = _mm256_round_ps(_mm256_div_ps(v, sy),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_min_ps(_mm256_max_ps(r, rlo), rhi);
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(r), zy);
    /* Saturating packs: int32 -> int16 -> int8 clamps to [-128, 127]. */
    __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q),
                                  _mm256_extracti128_si256(q, 1));
    __m128i q8 = _mm_packs_epi16(q16, q16);
    _mm_storel_epi64((__m128i *)(y + i), q8);
  }
  if (i < count)
    row_scalar(p, a + i, b + i * b_step, b_step, y + i, count - i);
}
#endif

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

static void row(const q8_binary *p, const int8_t *a, const int8_t *b,
                size_t b_step, int8_t *y, size_t count) {
  if (p->f32) {
    const float *fa = (const float *)(const void *)a;
    const float *fb = (const float *)(const void *)b;
    float *fy = (float *)(void *)y;
#ifdef HAVE_AVX2_PATH
    if (p->avx2) {
      f32_row_avx2(p->mul, fa, fb, b_step, fy, count, p->lo, p->hi, p->clamp);
      return;
    }
#endif
    f32_row_generic(p->mul, fa, fb, b_step, fy, count, p->lo, p->hi,
                    p->clamp);
    return;
  }
#ifdef HAVE_AVX2_PATH
  if (p->avx2) {
    row_avx2(p, a, b, b_step, y, count);
    return;
  }
#endif
  row_scalar(p, a, b, b_step, y, count);
}

/* Items are rows when b repeats per row, else elements of one flat row. */
static void run_chunk(void *ctx, size_t begin, size_t end, int thread) {
  (void)thread;
  const q8_binary *p = ctx;
  size_t es = p->es;
  if (p->b_per_row) {
    for (size_t r = begin; r < end; r++)
      row(p, p->a + r * p->inner * es, p->b, 1, p->y + r * p->inner * es,
          p->inner);
  } else if (p->b_scalar) {
    row(p, p->a + begin * es, p->b, 0, p->y + begin * es, end - begin);
  } else {
    row(p, p->a + begin * es, p->b + begin * es, 1, p->y + begin * es,
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
  p.lo = -INFINITY; /* unbounded sides leave infinities alone, as the */
  p.hi = INFINITY;  /* reference's one-sided activations do */
  switch (act.kind) {
  case KN_ACT_NONE: break;
  case KN_ACT_RELU: p.lo = 0.0f; break;
  case KN_ACT_RELU6: p.lo = 0.0f; p.hi = 6.0f; break;
  case KN_ACT_RELU_N1_TO_1: p.lo = -1.0f; p.hi = 1.0f; break;
  case KN_ACT_CLIP: p.lo = act.lo; p.hi = act.hi; break;
  default: return false; /* non-clamp activations stay on the reference */
  }
  /* The clamp order (max then min) equals the reference's only when
   * lo <= hi; anything else is left to it. */
  if (!(p.lo <= p.hi))
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
  p.mul = n->op == KN_OP_MUL;
  p.avx2 = kn_kernels_get()->isa == KN_ISA_AVX2;
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
    p.sa = qa.scale;
    p.za = qa.zero_point;
    p.sb = qb.scale;
    p.zb = qb.zero_point;
    p.sy = qy.scale;
    p.zy = qy.zero_point;
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

/* ---- MaxPool, NHWC ------------------------------------------------------------ */

typedef struct maxpool_job {
  const kn_tensor *in;
  kn_tensor *out;
  const kn_spatial *xv, *yv;
  const kn_window *w;
  bool q8;
  int8_t empty8;    /* output of a window with no valid tap */
  uint8_t lut[256]; /* 8-bit: requantized value of each byte */
} maxpool_job;

static void maxpool_rows(void *ctx, size_t b, size_t e, int thread) {
  (void)thread;
  const maxpool_job *j = ctx;
  const kn_spatial *xv = j->xv, *yv = j->yv;
  const kn_window *w = j->w;
  size_t c = (size_t)xv->c;
  size_t oh = (size_t)yv->sp[1], ow = (size_t)yv->sp[2];
  for (size_t row = b; row < e; row++) { /* row = n * OH + oy */
    size_t n = row / oh, oy = row % oh;
    int64_t y0 = (int64_t)oy * w->s[1] - w->pb[1];
    for (size_t ox = 0; ox < ow; ox++) {
      int64_t x0 = (int64_t)ox * w->s[2] - w->pb[2];
      size_t yo = ((n * oh + oy) * ow + ox) * c;
      bool first = true;
      for (int64_t ky = 0; ky < w->k[1]; ky++) {
        int64_t iy = y0 + ky * w->d[1];
        if (iy < 0 || iy >= xv->sp[1])
          continue;
        for (int64_t kx = 0; kx < w->k[2]; kx++) {
          int64_t ix = x0 + kx * w->d[2];
          if (ix < 0 || ix >= xv->sp[2])
            continue;
          size_t xo = (size_t)(n * (size_t)xv->stride_n) +
                      (size_t)iy * (size_t)xv->stride_sp[1] +
                      (size_t)ix * (size_t)xv->stride_sp[2];
          if (j->q8 && j->in->dtype == KESTREL_DTYPE_I8) {
            const int8_t *src = (const int8_t *)j->in->data + xo;
            int8_t *dst = (int8_t *)j->out->data + yo;
            for (size_t k = 0; k < c; k++)
              dst[k] = first || src[k] > dst[k] ? src[k] : dst[k];
          } else if (j->q8) {
            const uint8_t *src = (const uint8_t *)j->in->data + xo;
            uint8_t *dst = (uint8_t *)j->out->data + yo;
            for (size_t k = 0; k < c; k++)
              dst[k] = first || src[k] > dst[k] ? src[k] : dst[k];
          } else {
            const float *src = (const float *)j->in->data + xo;
            float *dst = (float *)j->out->data + yo;
            /* The reference keeps the first of equal values and skips
             * NaNs after the first tap, as `v > acc` does. */
            for (size_t k = 0; k < c; k++)
              dst[k] = first || src[k] > dst[k] ? src[k] : dst[k];
          }
          first = false;
        }
      }
      if (j->q8) {
        uint8_t *dst = (uint8_t *)j->out->data + yo;
        if (first) {
          memset(dst, (uint8_t)j->empty8, c);
        } else if (j->in->dtype == KESTREL_DTYPE_I8) {
          for (size_t k = 0; k < c; k++)
            dst[k] = j->lut[(uint8_t)((int8_t)dst[k] + 128)];
        } else {
          for (size_t k = 0; k < c; k++)
            dst[k] = j->lut[dst[k]];
        }
      } else if (first) {
        float *dst = (float *)j->out->data + yo;
        for (size_t k = 0; k < c; k++)
          dst[k] = -INFINITY;
      }
    }
  }
}

bool kn_maxpool_nhwc_fast(const kn_exec *ex, const kn_tensor *in,
                          kn_tensor *out, const kn_spatial *xv,
                          const kn_spatial *yv, const kn_window *w) {
  if (in->ndim != 4 || xv->nsp != 2 || in->dtype != out->dtype)
    return false;
  bool q8 = in->dtype == KESTREL_DTYPE_I8 || in->dtype == KESTREL_DTYPE_U8;
  if (!q8 && in->dtype != KESTREL_DTYPE_F32)
    return false;
  if (q8 && (in->q_count > 1 || out->q_count > 1 ||
             (in->q_count && !(kn_q_scale(in, 0) > 0.0f))))
    return false;
  /* NHWC strides: channel innermost and dense. */
  if (xv->stride_c != 1 || yv->stride_c != 1 || xv->stride_sp[2] != xv->c)
    return false;
  maxpool_job j;
  j.in = in;
  j.out = out;
  j.xv = xv;
  j.yv = yv;
  j.w = w;
  j.q8 = q8;
  j.empty8 = 0;
  if (q8) {
    /* The reference: real = (float)(q - xz) * xs, pooled, then
     * sat(round((double)real / ys) + yz) with y's (or x's) parameters. */
    float xs = kn_q_scale(in, 0);
    int32_t xz = kn_q_zero(in, 0);
    const kn_tensor *qy = out->q_count ? out : in;
    float ys = kn_q_scale(qy, 0);
    int32_t yz = kn_q_zero(qy, 0);
    for (int v = 0; v < 256; v++) {
      int32_t val = in->dtype == KESTREL_DTYPE_I8 ? v - 128 : v;
      float real = (float)(val - xz) * xs;
      int32_t q = kn_saturate(kn_round_even((double)real / ys) + yz, out->dtype);
      j.lut[in->dtype == KESTREL_DTYPE_I8 ? v : val] = (uint8_t)q;
    }
    /* A window with no valid tap pools to -inf: the lowest value. */
    j.empty8 = (int8_t)(out->dtype == KESTREL_DTYPE_I8 ? -128 : 0);
  }
  size_t rows = (size_t)(yv->n * yv->sp[1]);
  kn_parallel_for(ex->pool, rows, 1, maxpool_rows, &j);
  return true;
}
