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
  float lo, hi; /* activation clamp on the real value (+-FLT_MAX: none) */
  const int8_t *a, *b;
  int8_t *y;
  size_t inner;     /* elements per row */
  bool b_per_row;   /* b has `inner` values reused by every row */
  bool b_scalar;    /* b has one value */
  bool avx2;
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

static void row(const q8_binary *p, const int8_t *a, const int8_t *b,
                size_t b_step, int8_t *y, size_t count) {
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
  if (p->b_per_row) {
    for (size_t r = begin; r < end; r++)
      row(p, p->a + r * p->inner, p->b, 1, p->y + r * p->inner, p->inner);
  } else if (p->b_scalar) {
    row(p, p->a + begin, p->b, 0, p->y + begin, end - begin);
  } else {
    row(p, p->a + begin, p->b + begin, 1, p->y + begin, end - begin);
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
  if (!a || !b || !y || a->dtype != KESTREL_DTYPE_I8 ||
      b->dtype != KESTREL_DTYPE_I8 || y->dtype != KESTREL_DTYPE_I8 ||
      !kn_ew_is_quantized(a) || !kn_ew_is_quantized(b) ||
      !kn_ew_is_quantized(y))
    return false;
  kn_ew_act act;
  kestrel_error err;
  if (kn_ew_act_read(n, &act, &err) != KESTREL_OK)
    return false;
  q8_binary p;
  memset(&p, 0, sizeof p);
  p.lo = -FLT_MAX;
  p.hi = FLT_MAX;
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
  kn_ew_quant qa = kn_ew_quant_of(a), qb = kn_ew_quant_of(b),
              qy = kn_ew_quant_of(y);
  p.mul = n->op == KN_OP_MUL;
  p.sa = qa.scale;
  p.za = qa.zero_point;
  p.sb = qb.scale;
  p.zb = qb.zero_point;
  p.sy = qy.scale;
  p.zy = qy.zero_point;
  p.a = a->data;
  p.b = b->data;
  p.y = y->data;
  p.avx2 = kn_kernels_get()->isa == KN_ISA_AVX2;
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
  for (size_t i = begin; i < end; i++)
    j->y[i] = j->lut[j->x[i]];
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
