/* Pad (constant) and Transpose (batched 2-D) fast paths, see shape_fast.h.
 * The reference loops (pool.c pad_run, shape.c transpose_run) move one
 * element per memcpy call; these move whole runs, or 16-pixel (bytes) and
 * 8-pixel (4-byte elements) shuffles. */
#include "shape_fast.h"

#include <string.h>

#include "kernels.h"
#include "threadpool.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#endif

/* Bytes one thread should at least move: below this, waking the pool
 * costs more than the copy. */
#define MIN_BYTES_PER_CHUNK 16384

static size_t grain_for(size_t bytes_per_item) {
  if (bytes_per_item == 0 || bytes_per_item >= MIN_BYTES_PER_CHUNK)
    return 1;
  return MIN_BYTES_PER_CHUNK / bytes_per_item;
}

/* Short runs (a pixel's channels) are the common case: fixed-size moves
 * the compiler turns into vector loads and stores, the last one
 * overlapping the previous, instead of a libc call per run. */
static inline void copy_run(uint8_t *restrict d, const uint8_t *restrict s,
                            size_t n) {
  if (n >= 32) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
      memcpy(d + i, s + i, 32);
    if (i < n)
      memcpy(d + n - 32, s + n - 32, 32);
  } else if (n >= 16) {
    memcpy(d, s, 16);
    memcpy(d + n - 16, s + n - 16, 16);
  } else if (n >= 8) {
    memcpy(d, s, 8);
    memcpy(d + n - 8, s + n - 8, 8);
  } else {
    for (size_t i = 0; i < n; i++)
      d[i] = s[i];
  }
}

/* n bytes of the 32-byte pattern pat (whole elements of the pad value).
 * n is a multiple of the element size es <= 8, so every overlapping store
 * below starts on an element boundary of d and writes whole elements. */
static inline void fill_run(uint8_t *restrict d, const uint8_t *restrict pat,
                            size_t n) {
  if (n >= 32) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
      memcpy(d + i, pat, 32);
    if (i < n)
      memcpy(d + n - 32, pat, 32);
  } else if (n >= 16) {
    memcpy(d, pat, 16);
    memcpy(d + n - 16, pat, 16);
  } else if (n >= 8) {
    memcpy(d, pat, 8);
    memcpy(d + n - 8, pat, 8);
  } else {
    for (size_t i = 0; i < n; i++)
      d[i] = pat[i];
  }
}

/* ---- Pad ----------------------------------------------------------------- */

typedef struct pad_job {
  const uint8_t *x;
  uint8_t *y;
  int r;
  const int64_t *xdims, *ydims, *pb;
  int64_t xstride[KN_MAX_DIMS]; /* bytes */
  size_t head, body, tail;      /* bytes of an output row */
  uint8_t pat[32];
} pad_job;

static void pad_rows(void *ctx, size_t begin, size_t end, int thread) {
  (void)thread;
  const pad_job *j = ctx;
  int r = j->r;
  size_t row_bytes = j->head + j->body + j->tail;
  int64_t o[KN_MAX_DIMS] = {0};
  int64_t rest = (int64_t)begin;
  for (int a = r - 2; a >= 0; a--) {
    o[a] = rest % j->ydims[a];
    rest /= j->ydims[a];
  }
  for (size_t row = begin; row < end; row++) {
    uint8_t *dst = j->y + row * row_bytes;
    bool inside = true;
    int64_t src = 0;
    for (int a = 0; a < r - 1; a++) {
      int64_t i = o[a] - j->pb[a];
      if (i < 0 || i >= j->xdims[a])
        inside = false;
      src += i * j->xstride[a];
    }
    if (!inside) {
      fill_run(dst, j->pat, row_bytes);
    } else {
      fill_run(dst, j->pat, j->head);
      copy_run(dst + j->head, j->x + src, j->body);
      fill_run(dst + j->head + j->body, j->pat, j->tail);
    }
    for (int a = r - 2; a >= 0; a--) {
      if (++o[a] < j->ydims[a])
        break;
      o[a] = 0;
    }
  }
}

bool kn_pad_constant_fast(const kn_exec *ex, const kn_tensor *x, kn_tensor *y,
                          const int64_t *pb, const int64_t *pe,
                          const uint8_t *value) {
  int r = x->ndim;
  size_t es = kestrel_dtype_size(x->dtype);
  if (r < 1 || r > KN_MAX_DIMS || y->ndim != r || y->dtype != x->dtype ||
      (es != 1 && es != 2 && es != 4 && es != 8) || !y->data)
    return false;
  for (int a = 0; a < r; a++)
    if (pb[a] < 0 || pe[a] < 0 || y->dims[a] != x->dims[a] + pb[a] + pe[a])
      return false;
  int64_t ny = kn_tensor_numel(y);
  if (ny <= 0 || (kn_tensor_numel(x) > 0 && !x->data))
    return false;
  pad_job j;
  memset(&j, 0, sizeof(j));
  j.x = x->data;
  j.y = y->data;
  j.r = r;
  j.xdims = x->dims;
  j.ydims = y->dims;
  j.pb = pb;
  int64_t s = (int64_t)es;
  for (int a = r - 1; a >= 0; a--) {
    j.xstride[a] = s;
    s *= x->dims[a];
  }
  j.head = (size_t)pb[r - 1] * es;
  j.body = (size_t)x->dims[r - 1] * es;
  j.tail = (size_t)pe[r - 1] * es;
  for (size_t i = 0; i < sizeof(j.pat); i++)
    j.pat[i] = value[i % es];
  size_t row_bytes = j.head + j.body + j.tail;
  size_t rows = (size_t)ny / (size_t)y->dims[r - 1];
  kn_parallel_for(ex->pool, rows, grain_for(row_bytes), pad_rows, &j);
  return true;
}

/* ---- Transpose ----------------------------------------------------------- */

/* Columns of the [R, C] source one work item covers. */
#define TILE_COLS 64
/* Rows of a tile: a TILE_ROWS x TILE_COLS block of 8-byte elements still
 * sits in L1 while its columns are written out as rows. */
#define TILE_ROWS 32

typedef struct transpose_job {
  const uint8_t *x;
  uint8_t *y;
  size_t es, rows, cols; /* x is [batch, rows, cols], y [batch, cols, rows] */
  size_t tiles;          /* per batch: ceil(cols / TILE_COLS) */
  bool rgb_avx2;         /* rows == 3, es == 1 or 4: AVX2 shuffles */
} transpose_job;

#define TRANSPOSE_TILE(T)                                                      \
  static void tile_##T(T *restrict out, const T *restrict in, size_t rows,     \
                       size_t cols, size_t c0, size_t c1) {                    \
    for (size_t r0 = 0; r0 < rows; r0 += TILE_ROWS) {                          \
      size_t r1 = r0 + TILE_ROWS < rows ? r0 + TILE_ROWS : rows;               \
      for (size_t c = c0; c < c1; c++)                                         \
        for (size_t r = r0; r < r1; r++)                                       \
          out[c * rows + r] = in[r * cols + c];                                \
    }                                                                          \
  }
TRANSPOSE_TILE(uint8_t)
TRANSPOSE_TILE(uint16_t)
TRANSPOSE_TILE(uint32_t)
TRANSPOSE_TILE(uint64_t)

/* Three byte planes to interleaved triples, plain C (the tail, and CPUs
 * without AVX2). */
static void interleave3(uint8_t *restrict out, const uint8_t *restrict p0,
                        const uint8_t *restrict p1, const uint8_t *restrict p2,
                        size_t c0, size_t c1) {
  for (size_t c = c0; c < c1; c++) {
    out[3 * c] = p0[c];
    out[3 * c + 1] = p1[c];
    out[3 * c + 2] = p2[c];
  }
}

#ifdef HAVE_AVX2_PATH
/* 16 pixels per step: byte k of the 48 output bytes is pixel k / 3 of
 * plane k % 3, gathered from each plane by pshufb (0x80 lanes give zero)
 * and OR-ed. Returns the first column it did not do. */
__attribute__((target("avx2"))) static size_t
interleave3_avx2(uint8_t *restrict out, const uint8_t *restrict p0,
                 const uint8_t *restrict p1, const uint8_t *restrict p2,
                 size_t c0, size_t c1) {
  /* [output vector][plane][byte]: byte k = 16 * vector + byte of the
   * output is pixel k / 3 of plane k % 3; 0x80 makes pshufb give zero. */
  static const uint8_t masks[3][3][16] = {
      {
          {0, 0x80, 0x80, 1, 0x80, 0x80, 2, 0x80, 0x80, 3, 0x80, 0x80, 4, 0x80,
           0x80, 5},
          {0x80, 0, 0x80, 0x80, 1, 0x80, 0x80, 2, 0x80, 0x80, 3, 0x80, 0x80, 4,
           0x80, 0x80},
          {0x80, 0x80, 0, 0x80, 0x80, 1, 0x80, 0x80, 2, 0x80, 0x80, 3, 0x80,
           0x80, 4, 0x80},
      },
      {
          {0x80, 0x80, 6, 0x80, 0x80, 7, 0x80, 0x80, 8, 0x80, 0x80, 9, 0x80,
           0x80, 10, 0x80},
          {5, 0x80, 0x80, 6, 0x80, 0x80, 7, 0x80, 0x80, 8, 0x80, 0x80, 9, 0x80,
           0x80, 10},
          {0x80, 5, 0x80, 0x80, 6, 0x80, 0x80, 7, 0x80, 0x80, 8, 0x80, 0x80, 9,
           0x80, 0x80},
      },
      {
          {0x80, 11, 0x80, 0x80, 12, 0x80, 0x80, 13, 0x80, 0x80, 14, 0x80, 0x80,
           15, 0x80, 0x80},
          {0x80, 0x80, 11, 0x80, 0x80, 12, 0x80, 0x80, 13, 0x80, 0x80, 14, 0x80,
           0x80, 15, 0x80},
          {10, 0x80, 0x80, 11, 0x80, 0x80, 12, 0x80, 0x80, 13, 0x80, 0x80, 14,
           0x80, 0x80, 15},
      },
  };
  __m128i m[3][3];
  for (int v = 0; v < 3; v++)
    for (int p = 0; p < 3; p++)
      m[v][p] = _mm_loadu_si128((const __m128i *)masks[v][p]);
  size_t c = c0;
  for (; c + 16 <= c1; c += 16) {
    __m128i a = _mm_loadu_si128((const __m128i *)(p0 + c));
    __m128i b = _mm_loadu_si128((const __m128i *)(p1 + c));
    __m128i d = _mm_loadu_si128((const __m128i *)(p2 + c));
    for (int v = 0; v < 3; v++) {
      __m128i o = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, m[v][0]),
                                            _mm_shuffle_epi8(b, m[v][1])),
                               _mm_shuffle_epi8(d, m[v][2]));
      _mm_storeu_si128((__m128i *)(out + 3 * c + 16 * v), o);
    }
  }
  return c;
}
#endif

/* Three planes of 4-byte elements to interleaved triples, plain C. */
static void interleave3_u32(uint32_t *restrict out, const uint32_t *restrict p0,
                            const uint32_t *restrict p1,
                            const uint32_t *restrict p2, size_t c0,
                            size_t c1) {
  for (size_t c = c0; c < c1; c++) {
    out[3 * c] = p0[c];
    out[3 * c + 1] = p1[c];
    out[3 * c + 2] = p2[c];
  }
}

#ifdef HAVE_AVX2_PATH
/* 8 elements per step, the float32 input of an NCHW RGB model. shufps
 * works within 128-bit lanes, so each lane does 4 pixels: from a, b, d =
 * planes 0..2 it builds a0 b0 d0 a1 | b1 d1 a2 b2 | d2 a3 b3 d3 with two
 * shuffles per output vector, and the six 4-element quarters are stored
 * in order. Shuffles and moves only: the bits (NaN payloads included)
 * pass unchanged. Returns the first column it did not do. */
__attribute__((target("avx2"))) static size_t
interleave3_u32_avx2(uint32_t *restrict out, const uint32_t *restrict p0,
                     const uint32_t *restrict p1, const uint32_t *restrict p2,
                     size_t c0, size_t c1) {
  size_t c = c0;
  for (; c + 8 <= c1; c += 8) {
    __m256 a = _mm256_loadu_ps((const float *)(p0 + c));
    __m256 b = _mm256_loadu_ps((const float *)(p1 + c));
    __m256 d = _mm256_loadu_ps((const float *)(p2 + c));
    /* a0 a0 b0 b0, d0 d0 a1 a1 -> a0 b0 d0 a1 */
    __m256 o0 = _mm256_shuffle_ps(_mm256_shuffle_ps(a, b, 0x00),
                                  _mm256_shuffle_ps(d, a, 0x50), 0x88);
    /* b1 b1 d1 d1, a2 a2 b2 b2 -> b1 d1 a2 b2 */
    __m256 o1 = _mm256_shuffle_ps(_mm256_shuffle_ps(b, d, 0x55),
                                  _mm256_shuffle_ps(a, b, 0xaa), 0x88);
    /* d2 d2 a3 a3, b3 b3 d3 d3 -> d2 a3 b3 d3 */
    __m256 o2 = _mm256_shuffle_ps(_mm256_shuffle_ps(d, a, 0xfa),
                                  _mm256_shuffle_ps(b, d, 0xff), 0x88);
    float *o = (float *)(out + 3 * c);
    _mm_storeu_ps(o, _mm256_castps256_ps128(o0));
    _mm_storeu_ps(o + 4, _mm256_castps256_ps128(o1));
    _mm_storeu_ps(o + 8, _mm256_castps256_ps128(o2));
    _mm_storeu_ps(o + 12, _mm256_extractf128_ps(o0, 1));
    _mm_storeu_ps(o + 16, _mm256_extractf128_ps(o1, 1));
    _mm_storeu_ps(o + 20, _mm256_extractf128_ps(o2, 1));
  }
  return c;
}
#endif

static void transpose_tiles(void *ctx, size_t begin, size_t end, int thread) {
  (void)thread;
  const transpose_job *j = ctx;
  size_t plane = j->rows * j->cols * j->es;
  for (size_t item = begin; item < end; item++) {
    size_t b = item / j->tiles, c0 = item % j->tiles * TILE_COLS;
    size_t c1 = c0 + TILE_COLS < j->cols ? c0 + TILE_COLS : j->cols;
    const uint8_t *in = j->x + b * plane;
    uint8_t *out = j->y + b * plane;
    if (j->rows == 3 && j->es == 1) {
      size_t c = c0;
#ifdef HAVE_AVX2_PATH
      if (j->rgb_avx2)
        c = interleave3_avx2(out, in, in + j->cols, in + 2 * j->cols, c0, c1);
#endif
      interleave3(out, in, in + j->cols, in + 2 * j->cols, c, c1);
      continue;
    }
    if (j->rows == 3 && j->es == 4) {
      const uint32_t *p = (const uint32_t *)(const void *)in;
      uint32_t *o = (uint32_t *)(void *)out;
      size_t c = c0;
#ifdef HAVE_AVX2_PATH
      if (j->rgb_avx2)
        c = interleave3_u32_avx2(o, p, p + j->cols, p + 2 * j->cols, c0, c1);
#endif
      interleave3_u32(o, p, p + j->cols, p + 2 * j->cols, c, c1);
      continue;
    }
    switch (j->es) {
    case 1:
      tile_uint8_t(out, in, j->rows, j->cols, c0, c1);
      break;
    case 2:
      tile_uint16_t((uint16_t *)out, (const uint16_t *)in, j->rows, j->cols, c0,
                    c1);
      break;
    case 4:
      tile_uint32_t((uint32_t *)out, (const uint32_t *)in, j->rows, j->cols, c0,
                    c1);
      break;
    default:
      tile_uint64_t((uint64_t *)out, (const uint64_t *)in, j->rows, j->cols, c0,
                    c1);
      break;
    }
  }
}

bool kn_transpose_fast(const kn_exec *ex, const kn_tensor *x, kn_tensor *y,
                       const int *perm) {
  int r = x->ndim;
  size_t es = kestrel_dtype_size(x->dtype);
  if (r < 2 || r > KN_MAX_DIMS || y->ndim != r || y->dtype != x->dtype ||
      (es != 1 && es != 2 && es != 4 && es != 8))
    return false;
  int64_t numel = kn_tensor_numel(x);
  if (numel <= 0 || !x->data || !y->data)
    return false;
  for (int d = 0; d < r; d++)
    if (y->dims[d] != x->dims[perm[d]])
      return false;
  /* Size-1 axes do not move anything: drop them, renumbering the rest. */
  int keep[KN_MAX_DIMS], nk = 0, newid[KN_MAX_DIMS];
  for (int a = 0; a < r; a++) {
    newid[a] = x->dims[a] == 1 ? -1 : nk;
    if (x->dims[a] != 1)
      keep[nk++] = a;
  }
  int p[KN_MAX_DIMS], np = 0;
  for (int d = 0; d < r; d++)
    if (newid[perm[d]] >= 0)
      p[np++] = newid[perm[d]];
  /* Output-order runs of consecutive source axes merge into one axis. */
  int first[KN_MAX_DIMS], ng = 0;
  int64_t gsize[KN_MAX_DIMS];
  for (int d = 0; d < np; d++) {
    int64_t size = x->dims[keep[p[d]]];
    if (d > 0 && p[d] == p[d - 1] + 1) {
      gsize[ng - 1] *= size;
    } else {
      first[ng] = p[d];
      gsize[ng++] = size;
    }
  }
  /* Groups in source order: rank of each group's first axis. */
  int order[KN_MAX_DIMS];
  for (int g = 0; g < ng; g++) {
    order[g] = 0;
    for (int h = 0; h < ng; h++)
      order[g] += first[h] < first[g];
  }
  size_t batch, rows, cols;
  if (ng <= 1) {
    memmove(y->data, x->data, (size_t)numel * es);
    return true;
  } else if (ng == 2 && order[0] == 1 && order[1] == 0) {
    batch = 1;
    rows = (size_t)gsize[1];
    cols = (size_t)gsize[0];
  } else if (ng == 3 && order[0] == 0 && order[1] == 2 && order[2] == 1) {
    batch = (size_t)gsize[0];
    rows = (size_t)gsize[2];
    cols = (size_t)gsize[1];
  } else {
    return false;
  }
  transpose_job j = {x->data, y->data, es,
                     rows,    cols,    (cols + TILE_COLS - 1) / TILE_COLS,
                     false};
#ifdef HAVE_AVX2_PATH
  j.rgb_avx2 = kn_kernels_get()->isa == KN_ISA_AVX2;
#endif
  size_t items = batch * j.tiles;
  kn_parallel_for(ex->pool, items, grain_for(rows * TILE_COLS * es),
                  transpose_tiles, &j);
  return true;
}
