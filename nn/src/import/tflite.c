/* TFLite importer: a .tflite flatbuffer becomes a kn_graph.
 *
 * The file is read with our own bounds-checked flatbuffer reader
 * (flatbuf.h); every schema number comes from tflite_schema.h. Activations
 * stay NHWC: spatial ops get "layout" = KN_LAYOUT_NHWC, and only weights are
 * rearranged, once, into the [O, I/group, KH, KW] order Kestrel's Conv uses
 * (ConvTranspose: ONNX's [I, O/group, KH, KW]). DEQUANTIZE of a constant
 * (fp16 or int8 weights) is computed here, so the transposes see plain
 * float constants. Shapes of activations are left to shape inference; the
 * shapes the file declares are only used where an op's attributes depend
 * on them (channels for groups, batch/channels for Resize sizes, ...).
 */
#include "graph.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "flatbuf.h"
#include "tflite_schema.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "TFLite buffers are little-endian; the importer assumes a little-endian host"
#endif

/* Constant bytes the importer may allocate (copies, transposes, folded
 * dequantizations) beyond the file itself: a hostile file could otherwise
 * point many tensors at one large buffer. */
#define TFL_ALLOC_FACTOR 4
#define TFL_ALLOC_SLACK ((uint64_t)64 << 20)
/* Elements a declared shape may hold; shape inference re-checks. */
#define TFL_MAX_ELEMENTS (INT64_C(1) << 34)
#define TFL_MAX_OP_INPUTS 4096
/* Vectors of offsets may all point at one small table, so counts are not
 * bounded by the file size alone; edge models have a few thousand. */
#define TFL_MAX_TENSORS (1u << 20)
#define TFL_MAX_OPERATORS (1u << 20)

typedef struct tfl_tensor {
  int kn;                /* index in the kn_graph */
  int type;              /* TFLite TensorType */
  kestrel_dtype dtype;   /* 0 if the type is not one we handle */
  int ndim;              /* declared shape (the `shape` field) */
  int64_t dims[KN_MAX_DIMS];
  bool dynamic;          /* shape_signature has a -1 */
  bool sig_dynamic[KN_MAX_DIMS]; /* which dimensions */
  bool is_const;         /* has data (from a buffer or folded here) */
  int uses;              /* operator inputs reading it */
  /* quantization as declared, for new tensors that must carry it */
  int q_axis, q_count;
} tfl_tensor;

typedef struct tfl_ctx {
  kn_graph *g;
  kestrel_error *err;
  kn_fb fb;
  const uint8_t *file;
  size_t size;
  kn_fb_vector buffers;
  kn_fb_vector opcodes;
  tfl_tensor *tensors;
  uint32_t num_tensors;
  uint64_t alloc_bytes, alloc_limit;
  /* the operator being converted, for messages */
  int op_index;
  const char *op_name;
  char op_name_buf[64];
  kn_fb_vector op_inputs, op_outputs;
  /* open-addressing set of tensor names, to keep names unique */
  char **names;
  uint32_t names_cap, names_count, name_suffix;
  int transposed, folded;
} tfl_ctx;

/* ---- errors --------------------------------------------------------- */

static kestrel_status fb_error(tfl_ctx *c) {
  return kn_fail(c->err, KESTREL_ERROR_MALFORMED, "TFLite: %s at byte %zu",
                 c->fb.error_what ? c->fb.error_what : "bad flatbuffer",
                 c->fb.error_offset);
}

static kestrel_status op_fail(tfl_ctx *c, kestrel_status st, const char *fmt,
                              ...) __attribute__((format(printf, 3, 4)));
static kestrel_status op_fail(tfl_ctx *c, kestrel_status st, const char *fmt,
                              ...) {
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return kn_fail(c->err, st, "TFLite operator %d (%s): %s", c->op_index,
                 c->op_name ? c->op_name : "?", msg);
}

static kestrel_status oom(tfl_ctx *c) {
  return kn_fail(c->err, KESTREL_ERROR_OUT_OF_MEMORY,
                 "TFLite: out of memory while importing");
}

/* Accounts for constant bytes about to be allocated. */
static bool charge(tfl_ctx *c, uint64_t bytes) {
  if (bytes > c->alloc_limit - c->alloc_bytes)
    return false;
  c->alloc_bytes += bytes;
  return true;
}

/* ---- names ---------------------------------------------------------- */

static uint32_t hash_name(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static bool names_grow(tfl_ctx *c) {
  uint32_t cap = c->names_cap ? c->names_cap * 2 : 256;
  char **tab = calloc(cap, sizeof(char *));
  if (!tab)
    return false;
  for (uint32_t i = 0; i < c->names_cap; i++) {
    char *s = c->names[i];
    if (!s)
      continue;
    uint32_t h = hash_name(s) & (cap - 1);
    while (tab[h])
      h = (h + 1) & (cap - 1);
    tab[h] = s;
  }
  free(c->names);
  c->names = tab;
  c->names_cap = cap;
  return true;
}

/* Names point into the graph's tensors, which own them. */
static bool name_taken(const tfl_ctx *c, const char *s) {
  if (!c->names_cap)
    return false;
  uint32_t h = hash_name(s) & (c->names_cap - 1);
  while (c->names[h]) {
    if (strcmp(c->names[h], s) == 0)
      return true;
    h = (h + 1) & (c->names_cap - 1);
  }
  return false;
}

static bool name_insert(tfl_ctx *c, char *s) {
  if ((c->names_count + 1) * 2 > c->names_cap && !names_grow(c))
    return false;
  uint32_t h = hash_name(s) & (c->names_cap - 1);
  while (c->names[h])
    h = (h + 1) & (c->names_cap - 1);
  c->names[h] = s;
  c->names_count++;
  return true;
}

/* Adds a kn tensor whose name is `base` made unique. Returns index or -1. */
static int new_tensor(tfl_ctx *c, const char *base) {
  char buf[160];
  const char *name = base;
  /* The suffix counter only grows, so a file full of equal names costs
   * linear time, not quadratic. */
  while (name_taken(c, name)) {
    snprintf(buf, sizeof(buf), "%.120s_%u", base, ++c->name_suffix);
    name = buf;
  }
  int t = kn_graph_add_tensor(c->g, name);
  if (t < 0 || !name_insert(c, c->g->tensors[t].name))
    return -1;
  return t;
}

/* ---- tensors ---------------------------------------------------------- */

static kestrel_dtype map_type(int type) {
  switch (type) {
  case TFL_TYPE_FLOAT32: return KESTREL_DTYPE_F32;
  case TFL_TYPE_FLOAT16: return KESTREL_DTYPE_F16;
  case TFL_TYPE_INT32: return KESTREL_DTYPE_I32;
  case TFL_TYPE_UINT8: return KESTREL_DTYPE_U8;
  case TFL_TYPE_INT64: return KESTREL_DTYPE_I64;
  case TFL_TYPE_BOOL: return KESTREL_DTYPE_BOOL;
  case TFL_TYPE_INT16: return KESTREL_DTYPE_I16;
  case TFL_TYPE_INT8: return KESTREL_DTYPE_I8;
  case TFL_TYPE_FLOAT64: return KESTREL_DTYPE_F64;
  default: return KESTREL_DTYPE_UNDEFINED;
  }
}

static int64_t count_elements(int ndim, const int64_t *dims) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (dims[d] < 0)
      return -1;
    if (dims[d] && n > TFL_MAX_ELEMENTS / dims[d])
      return -1;
    n *= dims[d];
  }
  return n;
}

static kestrel_status read_quant(tfl_ctx *c, uint32_t index,
                                 const kn_fb_table *q, kn_tensor *t,
                                 tfl_tensor *info) {
  if (kn_fb_u8(q, TFL_QUANT_DETAILS_TYPE, 0) != 0)
    return kn_fail(c->err, KESTREL_ERROR_UNSUPPORTED,
                   "TFLite tensor %u ('%s'): custom quantization details",
                   index, t->name);
  kn_fb_vector scale, zp;
  bool has_scale = kn_fb_vector_field(q, TFL_QUANT_SCALE, 4, &scale);
  bool has_zp = kn_fb_vector_field(q, TFL_QUANT_ZERO_POINT, 8, &zp);
  if (kn_fb_failed(&c->fb))
    return fb_error(c);
  /* min/max only (or nothing): not a quantized tensor for us. */
  if (!has_scale || scale.count == 0)
    return KESTREL_OK;
  /* Scales on float tensors carry no meaning at run time. */
  if (t->dtype != KESTREL_DTYPE_I8 && t->dtype != KESTREL_DTYPE_U8 &&
      t->dtype != KESTREL_DTYPE_I16 && t->dtype != KESTREL_DTYPE_I32 &&
      t->dtype != KESTREL_DTYPE_I64)
    return KESTREL_OK;
  uint32_t count = scale.count;
  if (has_zp && zp.count != count && zp.count != 0)
    return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                   "TFLite tensor %u ('%s'): %u scales but %u zero points",
                   index, t->name, count, zp.count);
  int axis = -1;
  if (count > 1) {
    int32_t qd = kn_fb_i32(q, TFL_QUANT_QUANTIZED_DIMENSION, 0);
    if (qd < 0 || qd >= info->ndim || info->dims[qd] != (int64_t)count)
      return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                     "TFLite tensor %u ('%s'): %u scales do not match "
                     "quantized dimension %d",
                     index, t->name, count, (int)qd);
    axis = qd;
  }
  /* A zero point is a value of the tensor's own type. */
  int64_t zp_min = INT32_MIN, zp_max = INT32_MAX;
  if (t->dtype == KESTREL_DTYPE_I8)
    zp_min = INT8_MIN, zp_max = INT8_MAX;
  else if (t->dtype == KESTREL_DTYPE_U8)
    zp_min = 0, zp_max = UINT8_MAX;
  else if (t->dtype == KESTREL_DTYPE_I16)
    zp_min = INT16_MIN, zp_max = INT16_MAX;
  float *s = malloc(sizeof(float) * count);
  int32_t *z = calloc(count, sizeof(int32_t));
  if (!s || !z) {
    free(s);
    free(z);
    return oom(c);
  }
  kestrel_status st = KESTREL_OK;
  for (uint32_t i = 0; i < count && st == KESTREL_OK; i++) {
    s[i] = kn_fb_vec_f32(&scale, i);
    int64_t zv = (has_zp && zp.count) ? kn_fb_vec_i64(&zp, i) : 0;
    if (!isfinite(s[i]) || s[i] < 0.0f)
      st = kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                   "TFLite tensor %u ('%s'): bad scale %g", index, t->name,
                   (double)s[i]);
    else if (zv < zp_min || zv > zp_max)
      st = kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                   "TFLite tensor %u ('%s'): zero point %lld outside %s",
                   index, t->name, (long long)zv,
                   kestrel_dtype_name(t->dtype));
    z[i] = (int32_t)zv;
  }
  if (st == KESTREL_OK && kn_tensor_set_quant(t, axis, (int)count, s, z) != 0)
    st = oom(c);
  free(s);
  free(z);
  if (st == KESTREL_OK) {
    info->q_axis = axis;
    info->q_count = (int)count;
  }
  return st;
}

/* Points a constant at its bytes: borrowed from the file when aligned (the
 * model keeps the file), copied otherwise (kernels assume alignment). */
static kestrel_status set_const_data(tfl_ctx *c, kn_tensor *t,
                                     const uint8_t *bytes, size_t n) {
  if (((uintptr_t)bytes & 15) == 0) {
    t->data = (void *)(uintptr_t)bytes;
    t->data_owned = false;
  } else {
    if (!charge(c, n))
      return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                     "TFLite: constant data exceeds %llu bytes",
                     (unsigned long long)c->alloc_limit);
    void *p = malloc(n ? n : 1);
    if (!p)
      return oom(c);
    if (n)
      memcpy(p, bytes, n);
    t->data = p;
    t->data_owned = true;
  }
  t->kind = KN_TENSOR_CONSTANT;
  return KESTREL_OK;
}

/* ---- sparse constants ------------------------------------------------ */

#define TFL_MAX_SPARSE_LEVELS (2 * KN_MAX_DIMS)

/* One traversed dimension of a sparse tensor (TACO-style format). */
typedef struct sparse_level {
  bool csr;
  int64_t size;          /* extent of the expanded dimension */
  kn_fb_vector segments; /* CSR: row starts, non-decreasing */
  kn_fb_vector indices;  /* CSR: coordinates within the dimension */
  int seg_type, idx_type;
} sparse_level;

typedef struct sparse_walk {
  sparse_level level[TFL_MAX_SPARSE_LEVELS];
  int num_levels, rank;
  int order[TFL_MAX_SPARSE_LEVELS]; /* traversal_order */
  int block_of[KN_MAX_DIMS];        /* block index of a dense dim, or -1 */
  int64_t block_size[KN_MAX_DIMS];  /* per block index */
  int64_t dims[KN_MAX_DIMS];        /* the dense shape */
  int64_t coord[TFL_MAX_SPARSE_LEVELS];
  const uint8_t *values;
  uint64_t num_values;
  size_t elem_size;
  uint8_t *out;
  bool bad;
} sparse_walk;

static uint32_t index_at(const kn_fb_vector *v, int type, uint32_t i) {
  if (type == TFL_SPARSE_INDEX_UINT8)
    return kn_fb_vec_u8(v, i);
  if (type == TFL_SPARSE_INDEX_UINT16) {
    uint16_t x = (uint16_t)(kn_fb_vec_u8(v, 2 * i) |
                            (kn_fb_vec_u8(v, 2 * i + 1) << 8));
    return x;
  }
  return (uint32_t)kn_fb_vec_i32(v, i);
}

static uint32_t index_count(const kn_fb_vector *v, int type) {
  return type == TFL_SPARSE_INDEX_UINT16 ? v->count / 2 : v->count;
}

/* Reads a SparseIndexVector union field pair as a flat byte/int vector. */
static bool read_index_vector(tfl_ctx *c, const kn_fb_table *md, int type_id,
                              int id, kn_fb_vector *out, int *type) {
  *type = kn_fb_u8(md, type_id, TFL_SPARSE_INDEX_NONE);
  kn_fb_table iv;
  if (*type < TFL_SPARSE_INDEX_INT32 || *type > TFL_SPARSE_INDEX_UINT8 ||
      !kn_fb_table_field(md, id, &iv))
    return false;
  /* Read uint16 vectors byte-wise: the reader has no 16-bit accessor. */
  uint32_t stride = *type == TFL_SPARSE_INDEX_INT32 ? 4 : 1;
  if (!kn_fb_vector_field(&iv, TFL_INDEX_VECTOR_VALUES,
                          *type == TFL_SPARSE_INDEX_UINT16 ? 2 : stride, out))
    return false;
  if (*type == TFL_SPARSE_INDEX_UINT16) {
    out->count *= 2; /* now counts bytes */
    out->stride = 1;
  }
  return !kn_fb_failed(&c->fb);
}

static void sparse_place(sparse_walk *w, uint64_t value_pos) {
  if (value_pos >= w->num_values) {
    w->bad = true;
    return;
  }
  int64_t linear = 0;
  for (int d = 0; d < w->rank; d++) {
    int64_t x = w->coord[d];
    int b = w->block_of[d];
    if (b >= 0)
      x = x * w->block_size[b] + w->coord[w->rank + b];
    if (x < 0 || x >= w->dims[d]) {
      w->bad = true;
      return;
    }
    linear = linear * w->dims[d] + x;
  }
  memcpy(w->out + (size_t)linear * w->elem_size,
         w->values + (size_t)value_pos * w->elem_size, w->elem_size);
}

/* Depth-first over the levels; depth is bounded by TFL_MAX_SPARSE_LEVELS
 * and the work by the dense size plus the index counts. */
static void sparse_visit(sparse_walk *w, int l, uint64_t parent) {
  const sparse_level *lv = &w->level[l];
  bool last = l + 1 == w->num_levels;
  if (!lv->csr) {
    for (int64_t i = 0; i < lv->size && !w->bad; i++) {
      w->coord[w->order[l]] = i;
      uint64_t pos = parent * (uint64_t)lv->size + (uint64_t)i;
      if (last)
        sparse_place(w, pos);
      else
        sparse_visit(w, l + 1, pos);
    }
    return;
  }
  uint32_t nseg = index_count(&lv->segments, lv->seg_type);
  if (parent + 1 >= nseg) {
    w->bad = true;
    return;
  }
  uint32_t start = index_at(&lv->segments, lv->seg_type, (uint32_t)parent);
  uint32_t end = index_at(&lv->segments, lv->seg_type, (uint32_t)parent + 1);
  for (uint32_t k = start; k < end && !w->bad; k++) {
    uint32_t x = index_at(&lv->indices, lv->idx_type, k);
    if ((int64_t)x >= lv->size) {
      w->bad = true;
      return;
    }
    w->coord[w->order[l]] = x;
    if (last)
      sparse_place(w, k);
    else
      sparse_visit(w, l + 1, k);
  }
}

/* A sparse constant (SparsityParameters) becomes a dense constant; the
 * DENSIFY operator reading it is then folded like a copy. */
static kestrel_status densify(tfl_ctx *c, uint32_t index,
                              const kn_fb_table *sp, const uint8_t *values,
                              uint32_t values_bytes) {
  tfl_tensor *info = &c->tensors[index];
  kn_tensor *t = &c->g->tensors[info->kn];
  sparse_walk *w = calloc(1, sizeof(*w));
  if (!w)
    return oom(c);
  kestrel_status st = KESTREL_OK;
  kn_fb_vector order, block_map, meta;
  int rank = info->ndim;
  int64_t numel = count_elements(rank, info->dims);
  size_t es = kestrel_dtype_size(info->dtype);
  bool ok = numel >= 0 && rank > 0 &&
            kn_fb_vector_field(sp, TFL_SPARSITY_TRAVERSAL_ORDER, 4, &order) &&
            kn_fb_vector_field(sp, TFL_SPARSITY_DIM_METADATA, 4, &meta);
  if (!kn_fb_vector_field(sp, TFL_SPARSITY_BLOCK_MAP, 4, &block_map))
    block_map.count = 0;
  int levels = (int)order.count;
  ok = ok && !kn_fb_failed(&c->fb) && levels >= rank &&
       levels <= TFL_MAX_SPARSE_LEVELS && levels - rank <= rank &&
       (uint32_t)(levels - rank) == block_map.count &&
       meta.count == order.count && values_bytes % es == 0;
  if (!ok)
    goto bad;
  w->rank = rank;
  w->num_levels = levels;
  w->elem_size = es;
  w->values = values;
  w->num_values = values_bytes / es;
  for (int d = 0; d < rank; d++) {
    w->dims[d] = info->dims[d];
    w->block_of[d] = -1;
  }
  bool seen[TFL_MAX_SPARSE_LEVELS] = {false};
  for (int l = 0; l < levels; l++) {
    int32_t o = kn_fb_vec_i32(&order, (uint32_t)l);
    if (o < 0 || o >= levels || seen[o])
      goto bad;
    seen[o] = true;
    w->order[l] = o;
  }
  for (int b = 0; b < levels - rank; b++) {
    int32_t d = kn_fb_vec_i32(&block_map, (uint32_t)b);
    if (d < 0 || d >= rank || w->block_of[d] >= 0)
      goto bad;
    w->block_of[d] = b;
  }
  /* Block sizes come from the (dense) levels that traverse block dims. */
  for (int l = 0; l < levels; l++) {
    kn_fb_table md;
    if (!kn_fb_vec_table(&meta, (uint32_t)l, &md))
      goto bad;
    sparse_level *lv = &w->level[l];
    lv->csr = kn_fb_i8(&md, TFL_DIMMETA_FORMAT, TFL_DIM_DENSE) ==
              TFL_DIM_SPARSE_CSR;
    if (lv->csr) {
      if (!read_index_vector(c, &md, TFL_DIMMETA_ARRAY_SEGMENTS_TYPE,
                             TFL_DIMMETA_ARRAY_SEGMENTS, &lv->segments,
                             &lv->seg_type) ||
          !read_index_vector(c, &md, TFL_DIMMETA_ARRAY_INDICES_TYPE,
                             TFL_DIMMETA_ARRAY_INDICES, &lv->indices,
                             &lv->idx_type))
        goto bad;
      /* Non-decreasing segments bound the walk by the index count. */
      uint32_t nseg = index_count(&lv->segments, lv->seg_type);
      uint32_t nidx = index_count(&lv->indices, lv->idx_type);
      uint32_t prev = 0;
      for (uint32_t i = 0; i < nseg; i++) {
        uint32_t v = index_at(&lv->segments, lv->seg_type, i);
        if (v < prev || v > nidx || (i == 0 && v != 0))
          goto bad;
        prev = v;
      }
    } else {
      int32_t size = kn_fb_i32(&md, TFL_DIMMETA_DENSE_SIZE, 0);
      if (size <= 0)
        goto bad;
      lv->size = size;
      if (w->order[l] >= rank)
        w->block_size[w->order[l] - rank] = size;
    }
    if (kn_fb_failed(&c->fb))
      goto bad;
  }
  /* Extents of the expanded dims; a blocked dim is split exactly. */
  for (int l = 0; l < levels; l++) {
    int o = w->order[l];
    int64_t extent;
    if (o >= rank) {
      extent = w->block_size[o - rank];
    } else if (w->block_of[o] >= 0) {
      int64_t bs = w->block_size[w->block_of[o]];
      if (bs <= 0 || w->dims[o] % bs)
        goto bad;
      extent = w->dims[o] / bs;
    } else {
      extent = w->dims[o];
    }
    if (extent <= 0)
      goto bad;
    if (!w->level[l].csr && w->level[l].size != extent)
      goto bad;
    w->level[l].size = extent;
  }
  if (!charge(c, (uint64_t)numel * es)) {
    free(w);
    return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                   "TFLite: constant data exceeds %llu bytes",
                   (unsigned long long)c->alloc_limit);
  }
  w->out = kn_tensor_alloc_data(t, info->dtype, rank, info->dims);
  if (!w->out) {
    free(w);
    return oom(c);
  }
  sparse_visit(w, 0, 0);
  if (w->bad || kn_fb_failed(&c->fb))
    goto bad;
  info->is_const = true;
  free(w);
  return KESTREL_OK;
bad:
  free(w);
  if (kn_fb_failed(&c->fb))
    return fb_error(c);
  st = kn_fail(c->err, KESTREL_ERROR_MALFORMED,
               "TFLite tensor %u ('%s'): inconsistent sparsity parameters",
               index, t->name);
  return st;
}

static kestrel_status read_tensor(tfl_ctx *c, uint32_t index,
                                  const kn_fb_table *tt) {
  tfl_tensor *info = &c->tensors[index];
  info->kn = -1;
  info->q_axis = -1;
  const char *name_ptr;
  uint32_t name_len;
  char name[128];
  if (kn_fb_string_field(tt, TFL_TENSOR_NAME, &name_ptr, &name_len) &&
      name_len > 0) {
    /* Names are for messages and look-ups: cut long ones, drop NULs. */
    uint32_t n = name_len < sizeof(name) - 1 ? name_len : sizeof(name) - 1;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
      if (name_ptr[i])
        name[k++] = name_ptr[i];
    name[k] = 0;
    if (k == 0)
      snprintf(name, sizeof(name), "tensor_%u", index);
  } else {
    snprintf(name, sizeof(name), "tensor_%u", index);
  }
  if (kn_fb_failed(&c->fb))
    return fb_error(c);
  int kt = new_tensor(c, name);
  if (kt < 0)
    return oom(c);
  info->kn = kt;
  kn_tensor *t = &c->g->tensors[kt];

  info->type = kn_fb_i8(tt, TFL_TENSOR_TYPE, TFL_TYPE_FLOAT32);
  info->dtype = map_type(info->type);
  kn_fb_vector shape, sig;
  bool has_shape = kn_fb_vector_field(tt, TFL_TENSOR_SHAPE, 4, &shape);
  bool has_sig = kn_fb_vector_field(tt, TFL_TENSOR_SHAPE_SIGNATURE, 4, &sig);
  if (kn_fb_failed(&c->fb))
    return fb_error(c);
  uint32_t rank = has_shape ? shape.count : 0;
  if (rank > KN_MAX_DIMS)
    return kn_fail(c->err, KESTREL_ERROR_UNSUPPORTED,
                   "TFLite tensor %u ('%s'): rank %u exceeds %d", index,
                   t->name, rank, KN_MAX_DIMS);
  info->ndim = (int)rank;
  for (uint32_t d = 0; d < rank; d++) {
    int32_t v = kn_fb_vec_i32(&shape, d);
    /* `shape` holds a placeholder (usually 1) where the signature says
     * -1: keep it for import-time decisions, mark the dimension. */
    if (has_sig && sig.count == rank && kn_fb_vec_i32(&sig, d) == -1) {
      info->dynamic = true;
      info->sig_dynamic[d] = true;
    }
    if (v < -1)
      return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                     "TFLite tensor %u ('%s'): dimension %u is %d", index,
                     t->name, d, (int)v);
    if (v == -1)
      info->dynamic = info->sig_dynamic[d] = true;
    info->dims[d] = v;
  }
  if (kn_fb_bool(tt, TFL_TENSOR_IS_VARIABLE, false))
    return kn_fail(c->err, KESTREL_ERROR_UNSUPPORTED,
                   "TFLite tensor %u ('%s'): variable tensors", index,
                   t->name);
  kn_fb_table sparsity;
  bool sparse = kn_fb_table_field(tt, TFL_TENSOR_SPARSITY, &sparsity);
  if (kn_fb_failed(&c->fb))
    return fb_error(c);
  t->dtype = info->dtype;

  kn_fb_table q;
  if (kn_fb_table_field(tt, TFL_TENSOR_QUANTIZATION, &q)) {
    kestrel_status st = read_quant(c, index, &q, t, info);
    if (st != KESTREL_OK)
      return st;
  }
  if (kn_fb_failed(&c->fb))
    return fb_error(c);

  /* Constant data lives in Model.buffers[buffer]; buffer 0 is the empty
   * sentinel, and an empty buffer means "computed at run time". */
  uint32_t buf = kn_fb_u32(tt, TFL_TENSOR_BUFFER, 0);
  if (buf >= c->buffers.count) {
    if (buf == 0)
      return KESTREL_OK;
    return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                   "TFLite tensor %u ('%s'): buffer %u of %u", index, t->name,
                   buf, c->buffers.count);
  }
  kn_fb_table bt;
  if (!kn_fb_vec_table(&c->buffers, buf, &bt))
    return fb_error(c);
  uint64_t ext_offset = kn_fb_u64(&bt, TFL_BUFFER_OFFSET, 0);
  if (ext_offset > 1)
    return kn_fail(c->err, KESTREL_ERROR_UNSUPPORTED,
                   "TFLite tensor %u ('%s'): buffer %u is stored outside the "
                   "flatbuffer (large-model schema 3c)",
                   index, t->name, buf);
  kn_fb_vector data;
  bool has_data = kn_fb_vector_field(&bt, TFL_BUFFER_DATA, 1, &data);
  if (kn_fb_failed(&c->fb))
    return fb_error(c);
  if (!has_data || data.count == 0) {
    if (sparse)
      return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                     "TFLite tensor %u ('%s'): sparse tensor without values",
                     index, t->name);
    return KESTREL_OK;
  }
  if (sparse) {
    if (info->dtype == KESTREL_DTYPE_UNDEFINED)
      return kn_fail(c->err, KESTREL_ERROR_UNSUPPORTED,
                     "TFLite tensor %u ('%s'): sparse tensor of type %d",
                     index, t->name, info->type);
    return densify(c, index, &sparsity, kn_fb_vec_bytes(&data), data.count);
  }

  if (info->dtype == KESTREL_DTYPE_UNDEFINED)
    return kn_fail(c->err, KESTREL_ERROR_UNSUPPORTED,
                   "TFLite tensor %u ('%s'): constant of type %d", index,
                   t->name, info->type);
  int64_t numel = count_elements(info->ndim, info->dims);
  size_t es = kestrel_dtype_size(info->dtype);
  if (numel < 0 || (uint64_t)numel * es != data.count)
    return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                   "TFLite tensor %u ('%s'): buffer %u holds %u bytes, the "
                   "shape needs %lld",
                   index, t->name, buf, data.count,
                   numel < 0 ? -1LL : (long long)((uint64_t)numel * es));
  kn_set_shape(t, info->dtype, info->ndim, info->dims);
  info->is_const = true;
  return set_const_data(c, t, kn_fb_vec_bytes(&data), data.count);
}

/* ---- building helpers ---------------------------------------------------- */

/* TFLite tensor index of operator input k, -1 if absent. */
static int in_idx(const tfl_ctx *c, uint32_t k) {
  if (k >= c->op_inputs.count)
    return -1;
  return kn_fb_vec_i32(&c->op_inputs, k);
}

static int out_idx(const tfl_ctx *c, uint32_t k) {
  if (k >= c->op_outputs.count)
    return -1;
  return kn_fb_vec_i32(&c->op_outputs, k);
}

static int kn_of(const tfl_ctx *c, int tfl) {
  return tfl < 0 ? -1 : c->tensors[tfl].kn;
}

static kn_tensor *kt_of(tfl_ctx *c, int tfl) {
  return &c->g->tensors[c->tensors[tfl].kn];
}

static kestrel_status need_io(tfl_ctx *c, uint32_t min_in, uint32_t max_in,
                              uint32_t min_out) {
  if (c->op_inputs.count < min_in || c->op_inputs.count > max_in)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "has %u inputs, expected %u..%u",
                   c->op_inputs.count, min_in, max_in);
  if (c->op_outputs.count < min_out)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "has %u outputs, expected %u",
                   c->op_outputs.count, min_out);
  for (uint32_t k = 0; k < min_in; k++)
    if (in_idx(c, k) < 0)
      return op_fail(c, KESTREL_ERROR_MALFORMED, "input %u is missing", k);
  return KESTREL_OK;
}

/* Adds a node whose name is that of its first output; returns the node or
 * NULL (out of memory). The pointer is valid until the next node is added. */
static kn_node *emit(tfl_ctx *c, kn_op op, const int *ins, int nin,
                     const int *outs, int nout) {
  const char *name = nout > 0 && outs[0] >= 0 ? c->g->tensors[outs[0]].name
                                              : c->op_name;
  int n = kn_graph_add_node(c->g, op, name, c->op_name, ins, nin, outs, nout);
  return n < 0 ? NULL : &c->g->nodes[n];
}

/* A fresh activation tensor named after `like` (a TFLite index), carrying
 * its quantization so quantized chains stay quantized. */
static int tmp_like(tfl_ctx *c, int like, const char *suffix) {
  char name[160];
  snprintf(name, sizeof(name), "%.120s/%s", kt_of(c, like)->name, suffix);
  int t = new_tensor(c, name);
  if (t < 0)
    return -1;
  const kn_tensor *src = kt_of(c, like);
  kn_tensor *dst = &c->g->tensors[t];
  dst->dtype = src->dtype;
  if (src->q_count > 0 &&
      kn_tensor_set_quant(dst, src->q_axis, src->q_count, src->q_scale,
                          src->q_zero_point) != 0)
    return -1;
  return t;
}

/* A new constant tensor holding a copy of `data`. */
static int add_const(tfl_ctx *c, const char *suffix, kestrel_dtype dtype,
                     int ndim, const int64_t *dims, const void *data) {
  char name[160];
  snprintf(name, sizeof(name), "%.100s/%s",
           c->op_outputs.count ? kt_of(c, out_idx(c, 0))->name : "const",
           suffix);
  int t = new_tensor(c, name);
  if (t < 0)
    return -1;
  kn_tensor *kt = &c->g->tensors[t];
  int64_t n = count_elements(ndim, dims);
  if (n < 0 || !charge(c, (uint64_t)n * kestrel_dtype_size(dtype)))
    return -1;
  void *p = kn_tensor_alloc_data(kt, dtype, ndim, dims);
  if (!p)
    return -1;
  memcpy(p, data, (size_t)n * kestrel_dtype_size(dtype));
  return t;
}

static int add_const_i64(tfl_ctx *c, const char *suffix, int count,
                         const int64_t *values) {
  int64_t dims[1] = {count};
  return add_const(c, suffix, KESTREL_DTYPE_I64, 1, dims, values);
}

/* Reads an integer constant input (int32/int64) into out[], at most max. */
static kestrel_status read_int_const(tfl_ctx *c, int tfl, const char *what,
                                     int64_t *out, int max, int *count) {
  if (tfl < 0 || !c->tensors[tfl].is_const)
    return op_fail(c, KESTREL_ERROR_UNSUPPORTED,
                   "%s must be a constant (dynamic %s is not supported)",
                   what, what);
  const kn_tensor *t = kt_of(c, tfl);
  if (t->dtype != KESTREL_DTYPE_I32 && t->dtype != KESTREL_DTYPE_I64)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "%s must be int32 or int64",
                   what);
  int64_t n = kn_tensor_numel(t);
  if (n > max)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "%s has %lld values (max %d)",
                   what, (long long)n, max);
  for (int64_t i = 0; i < n; i++) {
    if (t->dtype == KESTREL_DTYPE_I32) {
      int32_t v;
      memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
      out[i] = v;
    } else {
      memcpy(&out[i], (const uint8_t *)t->data + 8 * i, 8);
    }
  }
  *count = (int)n;
  return KESTREL_OK;
}

/* Options table of the current operator; absent is allowed (defaults). */
static kestrel_status get_options(tfl_ctx *c, const kn_fb_table *op,
                                  int expected_type, kn_fb_table *out,
                                  bool *present) {
  *present = false;
  memset(out, 0, sizeof(*out));
  out->fb = &c->fb;
  uint8_t type = kn_fb_u8(op, TFL_OP_BUILTIN_OPTIONS_TYPE, 0);
  if (type == TFL_OPTIONS_NONE)
    return kn_fb_failed(&c->fb) ? fb_error(c) : KESTREL_OK;
  if (type != expected_type)
    return op_fail(c, KESTREL_ERROR_MALFORMED,
                   "options of type %u, expected %d", type, expected_type);
  *present = kn_fb_table_field(op, TFL_OP_BUILTIN_OPTIONS, out);
  if (kn_fb_failed(&c->fb))
    return fb_error(c);
  return KESTREL_OK;
}

static kestrel_status set_activation(tfl_ctx *c, kn_node *n, int act) {
  int k;
  switch (act) {
  case TFL_ACT_NONE: k = KN_ACT_NONE; break;
  case TFL_ACT_RELU: k = KN_ACT_RELU; break;
  case TFL_ACT_RELU_N1_TO_1: k = KN_ACT_RELU_N1_TO_1; break;
  case TFL_ACT_RELU6: k = KN_ACT_RELU6; break;
  case TFL_ACT_TANH: k = KN_ACT_TANH; break;
  default:
    return op_fail(c, KESTREL_ERROR_UNSUPPORTED,
                   "fused activation %d is not supported", act);
  }
  if (k != KN_ACT_NONE)
    kn_node_set_int(n, "activation", k);
  return KESTREL_OK;
}

static kestrel_status check_stride(tfl_ctx *c, int32_t sh, int32_t sw,
                                   int32_t dh, int32_t dw) {
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || sh > 4096 || sw > 4096 ||
      dh > 4096 || dw > 4096)
    return op_fail(c, KESTREL_ERROR_MALFORMED,
                   "bad stride %dx%d or dilation %dx%d", (int)sh, (int)sw,
                   (int)dh, (int)dw);
  return KESTREL_OK;
}

/* Weights rearranged by perm (out dim i = in dim perm[i]), as a constant
 * when the source is constant (in place if nothing else reads it), or as
 * a Transpose node when the weights are computed at run time. */
static kestrel_status permute_weights(tfl_ctx *c, int tfl, const int *perm,
                                      int *out_kn) {
  tfl_tensor *info = &c->tensors[tfl];
  kn_tensor *src = kt_of(c, tfl);
  if (info->ndim != 4)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "weights '%s' have rank %d",
                   src->name, info->ndim);
  if (!info->is_const) {
    char name[160];
    snprintf(name, sizeof(name), "%.120s/oihw", src->name);
    int t = new_tensor(c, name);
    if (t < 0)
      return oom(c);
    int in = info->kn;
    kn_node *n = emit(c, KN_OP_TRANSPOSE, &in, 1, &t, 1);
    if (!n)
      return oom(c);
    int64_t p[4] = {perm[0], perm[1], perm[2], perm[3]};
    kn_node_set_ints(n, "perm", p, 4);
    *out_kn = t;
    return KESTREL_OK;
  }
  int64_t in_dims[4], out_dims[4];
  for (int d = 0; d < 4; d++)
    in_dims[d] = info->dims[d];
  for (int d = 0; d < 4; d++)
    out_dims[d] = in_dims[perm[d]];
  size_t es = kestrel_dtype_size(src->dtype);
  int64_t n = count_elements(4, in_dims);
  if (es == 0 || n < 0)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "weights '%s' have bad type",
                   src->name);
  if (!charge(c, (uint64_t)n * es))
    return op_fail(c, KESTREL_ERROR_MALFORMED, "constant data too large");
  uint8_t *dst = malloc((size_t)n * es + 1);
  if (!dst)
    return oom(c);
  const uint8_t *s = src->data;
  /* strides of the source, in elements, for each output dimension */
  int64_t in_stride[4], st[4];
  in_stride[3] = 1;
  for (int d = 2; d >= 0; d--)
    in_stride[d] = in_stride[d + 1] * in_dims[d + 1];
  for (int d = 0; d < 4; d++)
    st[d] = in_stride[perm[d]];
  int64_t o = 0;
  for (int64_t a = 0; a < out_dims[0]; a++)
    for (int64_t b = 0; b < out_dims[1]; b++)
      for (int64_t e = 0; e < out_dims[2]; e++)
        for (int64_t f = 0; f < out_dims[3]; f++, o++) {
          int64_t i = a * st[0] + b * st[1] + e * st[2] + f * st[3];
          memcpy(dst + (size_t)o * es, s + (size_t)i * es, es);
        }
  int target = info->kn;
  if (info->uses > 1) {
    char name[160];
    snprintf(name, sizeof(name), "%.120s/oihw", src->name);
    target = new_tensor(c, name);
    if (target < 0) {
      free(dst);
      return oom(c);
    }
    src = kt_of(c, tfl);
  }
  kn_tensor *t = &c->g->tensors[target];
  if (target != info->kn && src->q_count > 0 &&
      kn_tensor_set_quant(t, src->q_axis, src->q_count, src->q_scale,
                          src->q_zero_point) != 0) {
    free(dst);
    return oom(c);
  }
  if (t->data_owned)
    free(t->data);
  t->data = dst;
  t->data_owned = true;
  t->kind = KN_TENSOR_CONSTANT;
  kn_set_shape(t, src->dtype, 4, out_dims);
  /* Per-channel quantization follows its dimension. */
  if (t->q_count > 1)
    for (int d = 0; d < 4; d++)
      if (perm[d] == t->q_axis) {
        t->q_axis = d;
        break;
      }
  if (target == info->kn) {
    /* The TFLite view of this tensor changed too. */
    for (int d = 0; d < 4; d++)
      info->dims[d] = out_dims[d];
    info->uses = -1; /* rearranged: must not be rearranged again */
  }
  c->transposed++;
  *out_kn = target;
  return KESTREL_OK;
}

static void set_spatial(kn_node *n, int32_t kh, int32_t kw, int32_t sh,
                        int32_t sw, int32_t dh, int32_t dw) {
  int64_t k[2] = {kh, kw}, s[2] = {sh, sw}, d[2] = {dh, dw};
  kn_node_set_ints(n, "kernel_shape", k, 2);
  kn_node_set_ints(n, "strides", s, 2);
  kn_node_set_ints(n, "dilations", d, 2);
  kn_node_set_int(n, "layout", KN_LAYOUT_NHWC);
}

/* TFLite SAME pads the extra row/column at the end, exactly as ONNX's
 * SAME_UPPER does: total = max((out-1)*s + (k-1)*d + 1 - in, 0). */
static kestrel_status set_padding(tfl_ctx *c, kn_node *n, int padding) {
  if (padding == TFL_PADDING_SAME)
    kn_node_set_string(n, "auto_pad", "SAME_UPPER");
  else if (padding == TFL_PADDING_VALID)
    kn_node_set_string(n, "auto_pad", "VALID");
  else
    return op_fail(c, KESTREL_ERROR_MALFORMED, "padding %d", padding);
  return KESTREL_OK;
}

/* ---- operators -------------------------------------------------------- */

typedef struct tfl_op {
  const kn_fb_table *table;
  int32_t builtin;
  const char *custom;
  uint32_t custom_len;
} tfl_op;

static kestrel_status conv2d(tfl_ctx *c, const tfl_op *op) {
  kestrel_status st = need_io(c, 2, 3, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, TFL_OPTIONS_CONV2D, &o, &has)))
    return st;
  int32_t sh = kn_fb_i32(&o, TFL_CONV2D_STRIDE_H, 1);
  int32_t sw = kn_fb_i32(&o, TFL_CONV2D_STRIDE_W, 1);
  int32_t dh = kn_fb_i32(&o, TFL_CONV2D_DILATION_H, 1);
  int32_t dw = kn_fb_i32(&o, TFL_CONV2D_DILATION_W, 1);
  if ((st = check_stride(c, sh, sw, dh, dw)))
    return st;
  int x = in_idx(c, 0), w = in_idx(c, 1), b = in_idx(c, 2);
  const tfl_tensor *wi = &c->tensors[w];
  if (wi->ndim != 4 || wi->dims[3] <= 0)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "filter must be [O,KH,KW,I]");
  int64_t kh = wi->dims[1], kw = wi->dims[2], ic = wi->dims[3];
  int64_t group = 1;
  const tfl_tensor *xi = &c->tensors[x];
  if (xi->ndim == 4 && xi->dims[3] > 0) {
    if (xi->dims[3] % ic != 0)
      return op_fail(c, KESTREL_ERROR_MALFORMED,
                     "input has %lld channels, filter %lld",
                     (long long)xi->dims[3], (long long)ic);
    group = xi->dims[3] / ic;
  }
  static const int perm[4] = {0, 3, 1, 2}; /* OHWI -> OIHW */
  int wk;
  if ((st = permute_weights(c, w, perm, &wk)))
    return st;
  int ins[3] = {kn_of(c, x), wk, kn_of(c, b)};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, KN_OP_CONV, ins, b >= 0 ? 3 : 2, outs, 1);
  if (!n)
    return oom(c);
  set_spatial(n, (int32_t)kh, (int32_t)kw, sh, sw, dh, dw);
  kn_node_set_int(n, "group", group);
  if ((st = set_padding(c, n, kn_fb_i8(&o, TFL_CONV2D_PADDING, 0))))
    return st;
  return set_activation(c, n, kn_fb_i8(&o, TFL_CONV2D_FUSED_ACTIVATION, 0));
}

static kestrel_status depthwise_conv2d(tfl_ctx *c, const tfl_op *op) {
  kestrel_status st = need_io(c, 2, 3, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, TFL_OPTIONS_DEPTHWISE_CONV2D, &o, &has)))
    return st;
  int32_t sh = kn_fb_i32(&o, TFL_DWCONV_STRIDE_H, 1);
  int32_t sw = kn_fb_i32(&o, TFL_DWCONV_STRIDE_W, 1);
  int32_t dh = kn_fb_i32(&o, TFL_DWCONV_DILATION_H, 1);
  int32_t dw = kn_fb_i32(&o, TFL_DWCONV_DILATION_W, 1);
  int32_t mult = kn_fb_i32(&o, TFL_DWCONV_DEPTH_MULTIPLIER, 1);
  if ((st = check_stride(c, sh, sw, dh, dw)))
    return st;
  int x = in_idx(c, 0), w = in_idx(c, 1), b = in_idx(c, 2);
  const tfl_tensor *wi = &c->tensors[w];
  if (wi->ndim != 4 || wi->dims[0] != 1 || wi->dims[3] <= 0)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "filter must be [1,KH,KW,C*M]");
  int64_t kh = wi->dims[1], kw = wi->dims[2], cm = wi->dims[3];
  /* The input's channel count is authoritative (depth_multiplier is
   * documented as redundant); fall back to it for dynamic inputs. */
  const tfl_tensor *xi = &c->tensors[x];
  int64_t channels = xi->ndim == 4 && xi->dims[3] > 0
                         ? xi->dims[3]
                         : (mult > 0 && cm % mult == 0 ? cm / mult : cm);
  if (channels <= 0 || cm % channels != 0)
    return op_fail(c, KESTREL_ERROR_MALFORMED,
                   "input has %lld channels, filter %lld",
                   (long long)channels, (long long)cm);
  static const int perm[4] = {3, 0, 1, 2}; /* 1,H,W,CM -> CM,1,H,W */
  int wk;
  if ((st = permute_weights(c, w, perm, &wk)))
    return st;
  int ins[3] = {kn_of(c, x), wk, kn_of(c, b)};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, KN_OP_CONV, ins, b >= 0 ? 3 : 2, outs, 1);
  if (!n)
    return oom(c);
  set_spatial(n, (int32_t)kh, (int32_t)kw, sh, sw, dh, dw);
  kn_node_set_int(n, "group", channels);
  if ((st = set_padding(c, n, kn_fb_i8(&o, TFL_DWCONV_PADDING, 0))))
    return st;
  return set_activation(c, n, kn_fb_i8(&o, TFL_DWCONV_FUSED_ACTIVATION, 0));
}

/* Transposed conv, builtin or MediaPipe's custom op. Pads follow TFLite:
 * the forward-conv padding of the output size, begin = total/2, and any
 * rows the scatter does not reach become ONNX output_padding. */
static kestrel_status transpose_conv_common(tfl_ctx *c, int x, int w, int b,
                                            int padding_same, int32_t sh,
                                            int32_t sw, int64_t out_h,
                                            int64_t out_w, int act) {
  kestrel_status st = check_stride(c, sh, sw, 1, 1);
  if (st != KESTREL_OK)
    return st;
  const tfl_tensor *wi = &c->tensors[w], *xi = &c->tensors[x];
  if (wi->ndim != 4 || wi->dims[0] <= 0 || wi->dims[3] <= 0)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "filter must be [O,KH,KW,I]");
  if (xi->ndim != 4 || xi->dims[1] <= 0 || xi->dims[2] <= 0)
    return op_fail(c, KESTREL_ERROR_UNSUPPORTED,
                   "input needs a static NHWC shape");
  if (xi->dims[3] != wi->dims[3])
    return op_fail(c, KESTREL_ERROR_MALFORMED,
                   "input has %lld channels, filter %lld",
                   (long long)xi->dims[3], (long long)wi->dims[3]);
  int64_t kh = wi->dims[1], kw = wi->dims[2];
  int64_t in[2] = {xi->dims[1], xi->dims[2]}, k[2] = {kh, kw};
  int64_t s[2] = {sh, sw}, out[2] = {out_h, out_w};
  int64_t pads[4], opad[2];
  for (int d = 0; d < 2; d++) {
    if (out[d] <= 0 || out[d] > (int64_t)1 << 24)
      return op_fail(c, KESTREL_ERROR_MALFORMED, "output size %lld",
                     (long long)out[d]);
    int64_t fwd = padding_same ? (out[d] + s[d] - 1) / s[d]
                               : (out[d] + s[d] - k[d]) / s[d];
    int64_t total = (fwd - 1) * s[d] + k[d] - out[d];
    int64_t begin = total > 0 ? total / 2 : 0;
    int64_t natural = (in[d] - 1) * s[d] + k[d];
    int64_t end = natural - begin - out[d];
    pads[d] = begin;
    pads[d + 2] = end > 0 ? end : 0;
    opad[d] = end < 0 ? -end : 0;
  }
  static const int perm[4] = {3, 0, 1, 2}; /* O,H,W,I -> I,O,H,W (ONNX) */
  int wk;
  if ((st = permute_weights(c, w, perm, &wk)))
    return st;
  int ins[3] = {kn_of(c, x), wk, kn_of(c, b)};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, KN_OP_CONV_TRANSPOSE, ins, b >= 0 ? 3 : 2, outs, 1);
  if (!n)
    return oom(c);
  set_spatial(n, (int32_t)kh, (int32_t)kw, sh, sw, 1, 1);
  kn_node_set_int(n, "group", 1);
  kn_node_set_ints(n, "pads", pads, 4);
  if (opad[0] || opad[1])
    kn_node_set_ints(n, "output_padding", opad, 2);
  return set_activation(c, n, act);
}

static kestrel_status transpose_conv(tfl_ctx *c, const tfl_op *op) {
  kestrel_status st = need_io(c, 3, 4, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, TFL_OPTIONS_TRANSPOSE_CONV, &o, &has)))
    return st;
  int64_t shape[4];
  int count;
  if ((st = read_int_const(c, in_idx(c, 0), "output_shape", shape, 4,
                           &count)))
    return st;
  if (count != 4)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "output_shape has %d values",
                   count);
  int padding = kn_fb_i8(&o, TFL_TCONV_PADDING, 0);
  if (padding != TFL_PADDING_SAME && padding != TFL_PADDING_VALID)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "padding %d", padding);
  return transpose_conv_common(
      c, in_idx(c, 2), in_idx(c, 1), in_idx(c, 3),
      padding == TFL_PADDING_SAME, kn_fb_i32(&o, TFL_TCONV_STRIDE_H, 1),
      kn_fb_i32(&o, TFL_TCONV_STRIDE_W, 1), shape[1], shape[2],
      kn_fb_i8(&o, TFL_TCONV_FUSED_ACTIVATION, 0));
}

static int32_t le32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return (int32_t)v;
}

static kestrel_status mediapipe_transpose_conv_bias(tfl_ctx *c,
                                                    const tfl_op *op) {
  kestrel_status st = need_io(c, 3, 3, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_vector opts;
  if (!kn_fb_vector_field(op->table, TFL_OP_CUSTOM_OPTIONS, 1, &opts) ||
      opts.count < TFL_MP_TCONV_OPTIONS_BYTES)
    return kn_fb_failed(&c->fb)
               ? fb_error(c)
               : op_fail(c, KESTREL_ERROR_MALFORMED,
                         "custom_options must hold padding and strides");
  const uint8_t *p = kn_fb_vec_bytes(&opts);
  int32_t padding = le32(p), sw = le32(p + 4), sh = le32(p + 8);
  if (padding != TFL_MP_PADDING_SAME && padding != TFL_MP_PADDING_VALID)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "padding %d", (int)padding);
  if ((st = check_stride(c, sh, sw, 1, 1)))
    return st;
  int x = in_idx(c, 0), w = in_idx(c, 1), y = out_idx(c, 0);
  const tfl_tensor *xi = &c->tensors[x], *wi = &c->tensors[w];
  const tfl_tensor *yi = &c->tensors[y];
  if (xi->ndim != 4 || wi->ndim != 4)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "input and filter must be 4-D");
  /* The output size the file declares is what the op produced when the
   * model was made; without it, SAME gives in*stride, VALID the full size. */
  int64_t oh, ow;
  if (yi->ndim == 4 && yi->dims[1] > 0 && yi->dims[2] > 0) {
    oh = yi->dims[1];
    ow = yi->dims[2];
  } else if (padding == TFL_MP_PADDING_SAME) {
    oh = xi->dims[1] * sh;
    ow = xi->dims[2] * sw;
  } else {
    oh = (xi->dims[1] - 1) * sh + wi->dims[1];
    ow = (xi->dims[2] - 1) * sw + wi->dims[2];
  }
  return transpose_conv_common(c, x, w, in_idx(c, 2),
                               padding == TFL_MP_PADDING_SAME, sh, sw, oh, ow,
                               TFL_ACT_NONE);
}

static kestrel_status fully_connected(tfl_ctx *c, const tfl_op *op) {
  kestrel_status st = need_io(c, 2, 3, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, TFL_OPTIONS_FULLY_CONNECTED, &o, &has)))
    return st;
  if (kn_fb_i8(&o, TFL_FC_WEIGHTS_FORMAT, 0) != 0)
    return op_fail(c, KESTREL_ERROR_UNSUPPORTED, "shuffled weights format");
  bool keep = kn_fb_bool(&o, TFL_FC_KEEP_NUM_DIMS, false);
  int x = in_idx(c, 0), w = in_idx(c, 1), b = in_idx(c, 2), y = out_idx(c, 0);
  const tfl_tensor *wi = &c->tensors[w], *xi = &c->tensors[x];
  const tfl_tensor *yi = &c->tensors[y];
  if (wi->ndim != 2 || wi->dims[1] <= 0)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "weights must be [O,I]");
  int64_t in_features = wi->dims[1];
  int gemm_in = kn_of(c, x);
  if (!(xi->ndim == 2 && xi->dims[1] == in_features)) {
    /* TFLite flattens everything but the last dimension. */
    gemm_in = tmp_like(c, x, "2d");
    int64_t shape[2] = {-1, in_features};
    int sk = add_const_i64(c, "fc_shape", 2, shape);
    if (gemm_in < 0 || sk < 0)
      return oom(c);
    int ins[2] = {kn_of(c, x), sk};
    if (!emit(c, KN_OP_RESHAPE, ins, 2, &gemm_in, 1))
      return oom(c);
  }
  bool reshape_out = keep && yi->ndim > 2 && !yi->dynamic;
  int gemm_out = kn_of(c, y);
  if (reshape_out) {
    gemm_out = tmp_like(c, y, "gemm");
    if (gemm_out < 0)
      return oom(c);
  }
  int ins[3] = {gemm_in, kn_of(c, w), kn_of(c, b)};
  kn_node *n = emit(c, KN_OP_GEMM, ins, b >= 0 ? 3 : 2, &gemm_out, 1);
  if (!n)
    return oom(c);
  kn_node_set_int(n, "transB", 1);
  if ((st = set_activation(c, n, kn_fb_i8(&o, TFL_FC_FUSED_ACTIVATION, 0))))
    return st;
  if (reshape_out) {
    int sk = add_const_i64(c, "out_shape", yi->ndim, yi->dims);
    if (sk < 0)
      return oom(c);
    int rins[2] = {gemm_out, sk};
    int routs[1] = {kn_of(c, y)};
    if (!emit(c, KN_OP_RESHAPE, rins, 2, routs, 1))
      return oom(c);
  }
  return KESTREL_OK;
}

/* ADD, SUB, MUL, DIV: two inputs, numpy broadcasting, fused activation. */
static kestrel_status binary(tfl_ctx *c, const tfl_op *op, kn_op kop,
                             int options_type) {
  kestrel_status st = need_io(c, 2, 2, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, options_type, &o, &has)))
    return st;
  int ins[2] = {kn_of(c, in_idx(c, 0)), kn_of(c, in_idx(c, 1))};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, kop, ins, 2, outs, 1);
  if (!n)
    return oom(c);
  return set_activation(c, n, kn_fb_i8(&o, TFL_ARITH_FUSED_ACTIVATION, 0));
}

static kestrel_status pool2d(tfl_ctx *c, const tfl_op *op, kn_op kop) {
  kestrel_status st = need_io(c, 1, 1, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, TFL_OPTIONS_POOL2D, &o, &has)))
    return st;
  int32_t sh = kn_fb_i32(&o, TFL_POOL_STRIDE_H, 0);
  int32_t sw = kn_fb_i32(&o, TFL_POOL_STRIDE_W, 0);
  int32_t fh = kn_fb_i32(&o, TFL_POOL_FILTER_H, 0);
  int32_t fw = kn_fb_i32(&o, TFL_POOL_FILTER_W, 0);
  if ((st = check_stride(c, sh, sw, 1, 1)))
    return st;
  if (fh < 1 || fw < 1 || fh > 65536 || fw > 65536)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "filter %dx%d", (int)fh,
                   (int)fw);
  int ins[1] = {kn_of(c, in_idx(c, 0))};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, kop, ins, 1, outs, 1);
  if (!n)
    return oom(c);
  int64_t k[2] = {fh, fw}, s[2] = {sh, sw};
  kn_node_set_ints(n, "kernel_shape", k, 2);
  kn_node_set_ints(n, "strides", s, 2);
  kn_node_set_int(n, "layout", KN_LAYOUT_NHWC);
  /* TFLite averages over the valid window only. */
  if (kop == KN_OP_AVGPOOL)
    kn_node_set_int(n, "count_include_pad", 0);
  if ((st = set_padding(c, n, kn_fb_i8(&o, TFL_POOL_PADDING, 0))))
    return st;
  return set_activation(c, n, kn_fb_i8(&o, TFL_POOL_FUSED_ACTIVATION, 0));
}

static kestrel_status mean(tfl_ctx *c, const tfl_op *op) {
  kestrel_status st = need_io(c, 2, 2, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, TFL_OPTIONS_REDUCER, &o, &has)))
    return st;
  int64_t axes[KN_MAX_DIMS];
  int count;
  if ((st = read_int_const(c, in_idx(c, 1), "axes", axes, KN_MAX_DIMS,
                           &count)))
    return st;
  int ins[1] = {kn_of(c, in_idx(c, 0))};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, KN_OP_REDUCE_MEAN, ins, 1, outs, 1);
  if (!n)
    return oom(c);
  kn_node_set_ints(n, "axes", axes, count);
  kn_node_set_int(n, "keepdims",
                  kn_fb_bool(&o, TFL_REDUCER_KEEP_DIMS, false) ? 1 : 0);
  return KESTREL_OK;
}

/* PAD / PADV2: paddings [rank, 2] become ONNX [begin..., end...]. */
static kestrel_status pad(tfl_ctx *c, bool v2) {
  kestrel_status st = need_io(c, 2, v2 ? 3 : 2, 1);
  if (st != KESTREL_OK)
    return st;
  int64_t p[2 * KN_MAX_DIMS], onnx[2 * KN_MAX_DIMS];
  int count;
  if ((st = read_int_const(c, in_idx(c, 1), "paddings", p, 2 * KN_MAX_DIMS,
                           &count)))
    return st;
  if (count % 2)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "paddings has %d values",
                   count);
  int rank = count / 2;
  for (int d = 0; d < rank; d++) {
    if (p[2 * d] < 0 || p[2 * d + 1] < 0)
      return op_fail(c, KESTREL_ERROR_MALFORMED, "negative padding");
    onnx[d] = p[2 * d];
    onnx[rank + d] = p[2 * d + 1];
  }
  int pk = add_const_i64(c, "pads", count, onnx);
  if (pk < 0)
    return oom(c);
  int ins[3] = {kn_of(c, in_idx(c, 0)), pk, kn_of(c, in_idx(c, 2))};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  int nin = v2 && in_idx(c, 2) >= 0 ? 3 : 2;
  kn_node *n = emit(c, KN_OP_PAD, ins, nin, outs, 1);
  if (!n)
    return oom(c);
  kn_node_set_string(n, "mode", "constant");
  return KESTREL_OK;
}

static kestrel_status reshape(tfl_ctx *c, const tfl_op *op) {
  kestrel_status st = need_io(c, 1, 2, 1);
  if (st != KESTREL_OK)
    return st;
  int64_t shape[KN_MAX_DIMS];
  int count = -1;
  int s = in_idx(c, 1), y = out_idx(c, 0);
  if (s >= 0 && c->tensors[s].is_const) {
    if ((st = read_int_const(c, s, "shape", shape, KN_MAX_DIMS, &count)))
      return st;
  } else {
    kn_fb_table o;
    bool has;
    if ((st = get_options(c, op->table, TFL_OPTIONS_RESHAPE, &o, &has)))
      return st;
    kn_fb_vector ns;
    if (has && kn_fb_vector_field(&o, TFL_RESHAPE_NEW_SHAPE, 4, &ns)) {
      if (ns.count > KN_MAX_DIMS)
        return op_fail(c, KESTREL_ERROR_UNSUPPORTED, "rank %u", ns.count);
      for (uint32_t i = 0; i < ns.count; i++)
        shape[i] = kn_fb_vec_i32(&ns, i);
      count = (int)ns.count;
    }
    if (kn_fb_failed(&c->fb))
      return fb_error(c);
  }
  const tfl_tensor *yi = &c->tensors[y];
  if (count < 0 && yi->dynamic)
    return op_fail(c, KESTREL_ERROR_UNSUPPORTED, "dynamic target shape");
  if (count < 0) {
    /* No constant shape anywhere: the declared output shape is static. */
    count = yi->ndim;
    for (int d = 0; d < count; d++)
      shape[d] = yi->dims[d];
  }
  bool zero = false;
  for (int d = 0; d < count; d++) {
    if (shape[d] < -1)
      return op_fail(c, KESTREL_ERROR_MALFORMED, "shape value %lld",
                     (long long)shape[d]);
    zero |= shape[d] == 0;
  }
  int sk = add_const_i64(c, "shape", count, shape);
  if (sk < 0)
    return oom(c);
  int ins[2] = {kn_of(c, in_idx(c, 0)), sk};
  int outs[1] = {kn_of(c, y)};
  kn_node *n = emit(c, KN_OP_RESHAPE, ins, 2, outs, 1);
  if (!n)
    return oom(c);
  /* A TFLite 0 is an empty dimension, not ONNX's "copy the input's". */
  if (zero)
    kn_node_set_int(n, "allowzero", 1);
  return KESTREL_OK;
}

static kestrel_status concatenation(tfl_ctx *c, const tfl_op *op) {
  uint32_t nin = c->op_inputs.count;
  kestrel_status st = need_io(c, 1, TFL_MAX_OP_INPUTS, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, TFL_OPTIONS_CONCATENATION, &o, &has)))
    return st;
  int *ins = malloc(sizeof(int) * nin);
  if (!ins)
    return oom(c);
  for (uint32_t k = 0; k < nin; k++) {
    int t = in_idx(c, k);
    if (t < 0) {
      free(ins);
      return op_fail(c, KESTREL_ERROR_MALFORMED, "input %u is missing", k);
    }
    ins[k] = kn_of(c, t);
  }
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, KN_OP_CONCAT, ins, (int)nin, outs, 1);
  free(ins);
  if (!n)
    return oom(c);
  kn_node_set_int(n, "axis", kn_fb_i32(&o, TFL_CONCAT_AXIS, 0));
  return set_activation(c, n, kn_fb_i8(&o, TFL_CONCAT_FUSED_ACTIVATION, 0));
}

static kestrel_status resize(tfl_ctx *c, const tfl_op *op, bool bilinear) {
  kestrel_status st = need_io(c, 2, 2, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table,
                        bilinear ? TFL_OPTIONS_RESIZE_BILINEAR
                                 : TFL_OPTIONS_RESIZE_NEAREST_NEIGHBOR,
                        &o, &has)))
    return st;
  bool align = kn_fb_bool(&o,
                          bilinear ? TFL_RESIZE_BILINEAR_ALIGN_CORNERS
                                   : TFL_RESIZE_NEAREST_ALIGN_CORNERS,
                          false);
  bool half = kn_fb_bool(&o,
                         bilinear ? TFL_RESIZE_BILINEAR_HALF_PIXEL_CENTERS
                                  : TFL_RESIZE_NEAREST_HALF_PIXEL_CENTERS,
                         false);
  if (align && half)
    return op_fail(c, KESTREL_ERROR_MALFORMED,
                   "align_corners and half_pixel_centers are exclusive");
  int64_t size[2];
  int count;
  if ((st = read_int_const(c, in_idx(c, 1), "size", size, 2, &count)))
    return st;
  if (count != 2 || size[0] <= 0 || size[1] <= 0)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "size must be 2 positive values");
  const tfl_tensor *xi = &c->tensors[in_idx(c, 0)];
  if (xi->ndim != 4 || xi->dims[0] <= 0 || xi->dims[3] <= 0)
    return op_fail(c, KESTREL_ERROR_UNSUPPORTED,
                   "input needs a static NHWC shape");
  int64_t sizes[4] = {xi->dims[0], size[0], size[1], xi->dims[3]};
  int sk = add_const_i64(c, "sizes", 4, sizes);
  if (sk < 0)
    return oom(c);
  int ins[4] = {kn_of(c, in_idx(c, 0)), -1, -1, sk};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, KN_OP_RESIZE, ins, 4, outs, 1);
  if (!n)
    return oom(c);
  kn_node_set_int(n, "layout", KN_LAYOUT_NHWC);
  if (bilinear) {
    kn_node_set_string(n, "mode", "linear");
    kn_node_set_string(n, "coordinate_transformation_mode",
                       align  ? "align_corners"
                       : half ? "half_pixel"
                              : "asymmetric");
  } else {
    /* TFLite rounds (half away from zero) with align_corners and floors
     * otherwise; half_pixel_centers offsets by half a pixel first. */
    kn_node_set_string(n, "mode", "nearest");
    kn_node_set_string(n, "coordinate_transformation_mode",
                       align  ? "align_corners"
                       : half ? "tf_half_pixel_for_nearest"
                              : "asymmetric");
    kn_node_set_string(n, "nearest_mode",
                       align ? "round_prefer_ceil" : "floor");
  }
  return KESTREL_OK;
}

/* DEPTH_TO_SPACE / SPACE_TO_DEPTH on NHWC: TFLite's channel order is
 * ONNX's DCR, so only the layout differs. */
static kestrel_status depth_space(tfl_ctx *c, const tfl_op *op, kn_op kop,
                                  int options_type) {
  kestrel_status st = need_io(c, 1, 1, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, options_type, &o, &has)))
    return st;
  int32_t bs = kn_fb_i32(&o, TFL_BLOCK_SIZE, 0);
  if (bs < 1 || bs > 4096)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "block_size %d", (int)bs);
  int ins[1] = {kn_of(c, in_idx(c, 0))};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, kop, ins, 1, outs, 1);
  if (!n)
    return oom(c);
  kn_node_set_int(n, "blocksize", bs);
  kn_node_set_int(n, "layout", KN_LAYOUT_NHWC);
  if (kop == KN_OP_DEPTH_TO_SPACE)
    kn_node_set_string(n, "mode", "DCR");
  return KESTREL_OK;
}

static kestrel_status unary(tfl_ctx *c, kn_op kop) {
  kestrel_status st = need_io(c, 1, 1, 1);
  if (st != KESTREL_OK)
    return st;
  int ins[1] = {kn_of(c, in_idx(c, 0))};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  return emit(c, kop, ins, 1, outs, 1) ? KESTREL_OK : oom(c);
}

/* RELU6 / RELU_N1_TO_1 as Clip; the bounds go in as attributes so they
 * apply in the real domain whatever the input's dtype. */
static kestrel_status clip(tfl_ctx *c, float lo, float hi) {
  kestrel_status st = need_io(c, 1, 1, 1);
  if (st != KESTREL_OK)
    return st;
  int ins[1] = {kn_of(c, in_idx(c, 0))};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, KN_OP_CLIP, ins, 1, outs, 1);
  if (!n)
    return oom(c);
  kn_node_set_float(n, "min", lo);
  kn_node_set_float(n, "max", hi);
  return KESTREL_OK;
}

static kestrel_status leaky_relu(tfl_ctx *c, const tfl_op *op) {
  kestrel_status st = need_io(c, 1, 1, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, TFL_OPTIONS_LEAKY_RELU, &o, &has)))
    return st;
  int ins[1] = {kn_of(c, in_idx(c, 0))};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, KN_OP_LEAKY_RELU, ins, 1, outs, 1);
  if (!n)
    return oom(c);
  kn_node_set_float(n, "alpha", kn_fb_f32(&o, TFL_LEAKY_RELU_ALPHA, 0.0f));
  return KESTREL_OK;
}

static kestrel_status prelu(tfl_ctx *c) {
  kestrel_status st = need_io(c, 2, 2, 1);
  if (st != KESTREL_OK)
    return st;
  int ins[2] = {kn_of(c, in_idx(c, 0)), kn_of(c, in_idx(c, 1))};
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  return emit(c, KN_OP_PRELU, ins, 2, outs, 1) ? KESTREL_OK : oom(c);
}

static kestrel_status softmax(tfl_ctx *c, const tfl_op *op) {
  kestrel_status st = need_io(c, 1, 1, 1);
  if (st != KESTREL_OK)
    return st;
  kn_fb_table o;
  bool has;
  if ((st = get_options(c, op->table, TFL_OPTIONS_SOFTMAX, &o, &has)))
    return st;
  float beta = kn_fb_f32(&o, TFL_SOFTMAX_BETA, 1.0f);
  if (!isfinite(beta))
    return op_fail(c, KESTREL_ERROR_MALFORMED, "beta %g", (double)beta);
  int x = in_idx(c, 0);
  int in = kn_of(c, x);
  if (beta != 1.0f) {
    /* softmax(beta * x): scale first, in float only. */
    if (c->tensors[x].dtype != KESTREL_DTYPE_F32)
      return op_fail(c, KESTREL_ERROR_UNSUPPORTED,
                     "beta %g on a non-float input", (double)beta);
    int64_t one[1] = {1};
    int bk = add_const(c, "beta", KESTREL_DTYPE_F32, 1, one, &beta);
    int scaled = tmp_like(c, x, "scaled");
    if (bk < 0 || scaled < 0)
      return oom(c);
    int mins[2] = {in, bk};
    if (!emit(c, KN_OP_MUL, mins, 2, &scaled, 1))
      return oom(c);
    in = scaled;
  }
  int outs[1] = {kn_of(c, out_idx(c, 0))};
  kn_node *n = emit(c, KN_OP_SOFTMAX, &in, 1, outs, 1);
  if (!n)
    return oom(c);
  kn_node_set_int(n, "axis", -1);
  return KESTREL_OK;
}

/* Scale and zero-point constants of a quantized TFLite tensor, for the
 * explicit inputs of QuantizeLinear / DequantizeLinear. */
static kestrel_status quant_inputs(tfl_ctx *c, int tfl, int *scale_kn,
                                   int *zp_kn, int *axis) {
  const kn_tensor *t = kt_of(c, tfl);
  if (t->q_count <= 0)
    return op_fail(c, KESTREL_ERROR_MALFORMED,
                   "tensor '%s' has no quantization parameters", t->name);
  int count = t->q_count;
  float *scale = t->q_scale;
  int64_t dims[1] = {count};
  kestrel_dtype zdt = t->dtype;
  size_t zes = kestrel_dtype_size(zdt);
  uint8_t *zp = calloc((size_t)count, zes ? zes : 1);
  if (!zp)
    return oom(c);
  for (int i = 0; i < count; i++) {
    int32_t z = t->q_zero_point[i];
    switch (zdt) {
    case KESTREL_DTYPE_I8: ((int8_t *)zp)[i] = (int8_t)z; break;
    case KESTREL_DTYPE_U8: zp[i] = (uint8_t)z; break;
    case KESTREL_DTYPE_I16: ((int16_t *)zp)[i] = (int16_t)z; break;
    case KESTREL_DTYPE_I32: ((int32_t *)zp)[i] = z; break;
    default:
      free(zp);
      return op_fail(c, KESTREL_ERROR_UNSUPPORTED,
                     "quantized type %s", kestrel_dtype_name(zdt));
    }
  }
  int rank = count > 1 ? 1 : 0;
  *axis = t->q_axis;
  *scale_kn = add_const(c, "scale", KESTREL_DTYPE_F32, rank, dims, scale);
  *zp_kn = add_const(c, "zero_point", zdt, rank, dims, zp);
  free(zp);
  return *scale_kn < 0 || *zp_kn < 0 ? oom(c) : KESTREL_OK;
}

static kestrel_status dequantize_linear(tfl_ctx *c, int x, int out_kn) {
  int sk, zk, axis;
  kestrel_status st = quant_inputs(c, x, &sk, &zk, &axis);
  if (st != KESTREL_OK)
    return st;
  int ins[3] = {kn_of(c, x), sk, zk};
  kn_node *n = emit(c, KN_OP_DEQUANTIZE_LINEAR, ins, 3, &out_kn, 1);
  if (!n)
    return oom(c);
  if (axis >= 0)
    kn_node_set_int(n, "axis", axis);
  return KESTREL_OK;
}

static kestrel_status dequantize(tfl_ctx *c) {
  kestrel_status st = need_io(c, 1, 1, 1);
  if (st != KESTREL_OK)
    return st;
  int x = in_idx(c, 0), y = out_idx(c, 0);
  if (c->tensors[x].dtype == KESTREL_DTYPE_F16) {
    int ins[1] = {kn_of(c, x)};
    int outs[1] = {kn_of(c, y)};
    kn_node *n = emit(c, KN_OP_CAST, ins, 1, outs, 1);
    if (!n)
      return oom(c);
    kn_node_set_int(n, "to", 1); /* ONNX TensorProto FLOAT */
    return KESTREL_OK;
  }
  return dequantize_linear(c, x, kn_of(c, y));
}

static kestrel_status quantize(tfl_ctx *c) {
  kestrel_status st = need_io(c, 1, 1, 1);
  if (st != KESTREL_OK)
    return st;
  int x = in_idx(c, 0), y = out_idx(c, 0);
  int in = kn_of(c, x);
  if (c->tensors[x].dtype != KESTREL_DTYPE_F32) {
    /* Requantization: through float, as TFLite's reference does. */
    int mid = new_tensor(c, "requantize");
    if (mid < 0)
      return oom(c);
    c->g->tensors[mid].dtype = KESTREL_DTYPE_F32;
    if ((st = dequantize_linear(c, x, mid)))
      return st;
    in = mid;
  }
  int sk, zk, axis;
  if ((st = quant_inputs(c, y, &sk, &zk, &axis)))
    return st;
  int ins[3] = {in, sk, zk};
  int outs[1] = {kn_of(c, y)};
  kn_node *n = emit(c, KN_OP_QUANTIZE_LINEAR, ins, 3, outs, 1);
  if (!n)
    return oom(c);
  if (axis >= 0)
    kn_node_set_int(n, "axis", axis);
  return KESTREL_OK;
}

/* DEQUANTIZE of a constant (fp16 or int8 weights): computed now, so the
 * output is a float constant the conv importers can rearrange. Returns
 * true if it folded the operator. */
static kestrel_status fold_dequantize(tfl_ctx *c, bool *folded) {
  *folded = false;
  if (c->op_inputs.count != 1 || c->op_outputs.count != 1)
    return KESTREL_OK;
  int x = in_idx(c, 0), y = out_idx(c, 0);
  if (x < 0 || y < 0 || !c->tensors[x].is_const || c->tensors[y].is_const)
    return KESTREL_OK;
  tfl_tensor *xi = &c->tensors[x], *yi = &c->tensors[y];
  const kn_tensor *xt = kt_of(c, x);
  if (yi->dtype != KESTREL_DTYPE_F32 ||
      (xt->dtype != KESTREL_DTYPE_F16 && xt->q_count == 0))
    return KESTREL_OK;
  int64_t n = kn_tensor_numel(xt);
  if (yi->ndim != xi->ndim || count_elements(yi->ndim, yi->dims) != n)
    return op_fail(c, KESTREL_ERROR_MALFORMED,
                   "output shape differs from the input's");
  if (!charge(c, (uint64_t)n * 4))
    return op_fail(c, KESTREL_ERROR_MALFORMED, "constant data too large");
  kn_tensor *yt = kt_of(c, y);
  float *out = kn_tensor_alloc_data(yt, KESTREL_DTYPE_F32, xi->ndim, xi->dims);
  if (!out)
    return oom(c);
  xt = kt_of(c, x);
  if (xt->dtype == KESTREL_DTYPE_F16) {
    const uint8_t *p = xt->data;
    for (int64_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      out[i] = kestrel_f16_to_f32(h);
    }
  } else {
    /* real = scale * (q - zero_point), per channel along q_axis */
    int64_t inner = 1, axis_len = 1;
    if (xt->q_count > 1) {
      axis_len = xt->dims[xt->q_axis];
      for (int d = xt->q_axis + 1; d < xt->ndim; d++)
        inner *= xt->dims[d];
    }
    for (int64_t i = 0; i < n; i++) {
      int64_t ch = xt->q_count > 1 ? (i / inner) % axis_len : 0;
      double q = (double)kn_read_int(xt, i);
      out[i] = (float)(xt->q_scale[ch] * (q - xt->q_zero_point[ch]));
    }
  }
  yi->is_const = true;
  c->folded++;
  *folded = true;
  return KESTREL_OK;
}

/* DENSIFY of a (densified-at-load) sparse constant: its output is the same
 * dense constant. */
static kestrel_status fold_densify(tfl_ctx *c) {
  kestrel_status st = need_io(c, 1, 1, 1);
  if (st != KESTREL_OK)
    return st;
  int x = in_idx(c, 0), y = out_idx(c, 0);
  tfl_tensor *xi = &c->tensors[x], *yi = &c->tensors[y];
  if (!xi->is_const)
    return op_fail(c, KESTREL_ERROR_UNSUPPORTED, "input is not a constant");
  const kn_tensor *xt = kt_of(c, x);
  if (yi->dtype != xt->dtype || yi->ndim != xi->ndim ||
      count_elements(yi->ndim, yi->dims) != kn_tensor_numel(xt))
    return op_fail(c, KESTREL_ERROR_MALFORMED,
                   "output differs from the input in type or size");
  size_t bytes = kn_tensor_bytes(xt);
  if (!charge(c, bytes))
    return op_fail(c, KESTREL_ERROR_MALFORMED, "constant data too large");
  void *out = kn_tensor_alloc_data(kt_of(c, y), xt->dtype, xi->ndim, xi->dims);
  if (!out)
    return oom(c);
  memcpy(out, kt_of(c, x)->data, bytes);
  const kn_tensor *src = kt_of(c, x);
  if (src->q_count > 0 &&
      kn_tensor_set_quant(kt_of(c, y), src->q_axis, src->q_count,
                          src->q_scale, src->q_zero_point) != 0)
    return oom(c);
  yi->is_const = true;
  c->folded++;
  return KESTREL_OK;
}

static const char *op_label(tfl_ctx *c, int32_t builtin, const char *custom,
                            uint32_t custom_len) {
  if (builtin == TFL_BUILTIN_CUSTOM && custom) {
    snprintf(c->op_name_buf, sizeof(c->op_name_buf), "CUSTOM:%.*s",
             (int)(custom_len < 48 ? custom_len : 48), custom);
    return c->op_name_buf;
  }
  if (builtin >= 0 && builtin < TFL_NUM_BUILTIN_NAMES)
    return tfl_builtin_names[builtin];
  snprintf(c->op_name_buf, sizeof(c->op_name_buf), "BUILTIN_%d",
           (int)builtin);
  return c->op_name_buf;
}

static kestrel_status convert_op(tfl_ctx *c, const tfl_op *op) {
  switch (op->builtin) {
  case TFL_BUILTIN_CONV_2D: return conv2d(c, op);
  case TFL_BUILTIN_DEPTHWISE_CONV_2D: return depthwise_conv2d(c, op);
  case TFL_BUILTIN_TRANSPOSE_CONV: return transpose_conv(c, op);
  case TFL_BUILTIN_FULLY_CONNECTED: return fully_connected(c, op);
  case TFL_BUILTIN_ADD: return binary(c, op, KN_OP_ADD, TFL_OPTIONS_ADD);
  case TFL_BUILTIN_SUB: return binary(c, op, KN_OP_SUB, TFL_OPTIONS_SUB);
  case TFL_BUILTIN_MUL: return binary(c, op, KN_OP_MUL, TFL_OPTIONS_MUL);
  case TFL_BUILTIN_DIV: return binary(c, op, KN_OP_DIV, TFL_OPTIONS_DIV);
  case TFL_BUILTIN_MAX_POOL_2D: return pool2d(c, op, KN_OP_MAXPOOL);
  case TFL_BUILTIN_AVERAGE_POOL_2D: return pool2d(c, op, KN_OP_AVGPOOL);
  case TFL_BUILTIN_MEAN: return mean(c, op);
  case TFL_BUILTIN_PAD: return pad(c, false);
  case TFL_BUILTIN_PADV2: return pad(c, true);
  case TFL_BUILTIN_RESHAPE: return reshape(c, op);
  case TFL_BUILTIN_CONCATENATION: return concatenation(c, op);
  case TFL_BUILTIN_RESIZE_BILINEAR: return resize(c, op, true);
  case TFL_BUILTIN_RESIZE_NEAREST_NEIGHBOR: return resize(c, op, false);
  case TFL_BUILTIN_DEPTH_TO_SPACE:
    return depth_space(c, op, KN_OP_DEPTH_TO_SPACE, TFL_OPTIONS_DEPTH_TO_SPACE);
  case TFL_BUILTIN_SPACE_TO_DEPTH:
    return depth_space(c, op, KN_OP_SPACE_TO_DEPTH, TFL_OPTIONS_SPACE_TO_DEPTH);
  case TFL_BUILTIN_HARD_SWISH: return unary(c, KN_OP_HARDSWISH);
  case TFL_BUILTIN_LOGISTIC: return unary(c, KN_OP_SIGMOID);
  case TFL_BUILTIN_TANH: return unary(c, KN_OP_TANH);
  case TFL_BUILTIN_RELU: return unary(c, KN_OP_RELU);
  case TFL_BUILTIN_RELU6: return clip(c, 0.0f, 6.0f);
  case TFL_BUILTIN_RELU_N1_TO_1: return clip(c, -1.0f, 1.0f);
  case TFL_BUILTIN_LEAKY_RELU: return leaky_relu(c, op);
  case TFL_BUILTIN_PRELU: return prelu(c);
  case TFL_BUILTIN_SOFTMAX: return softmax(c, op);
  case TFL_BUILTIN_DEQUANTIZE: return dequantize(c);
  case TFL_BUILTIN_QUANTIZE: return quantize(c);
  case TFL_BUILTIN_CUSTOM:
    if (op->custom &&
        op->custom_len == strlen(TFL_CUSTOM_TRANSPOSE_CONV_BIAS) &&
        memcmp(op->custom, TFL_CUSTOM_TRANSPOSE_CONV_BIAS, op->custom_len) ==
            0)
      return mediapipe_transpose_conv_bias(c, op);
    return op_fail(c, KESTREL_ERROR_UNSUPPORTED, "custom op is not supported");
  default:
    return op_fail(c, KESTREL_ERROR_UNSUPPORTED, "op is not supported");
  }
}

/* Reads operator k's opcode and tensor lists into c; checks indices. */
static kestrel_status read_op(tfl_ctx *c, uint32_t k, const kn_fb_table *ot,
                              tfl_op *op) {
  memset(op, 0, sizeof(*op));
  op->table = ot;
  c->op_index = (int)k;
  c->op_name = NULL;
  uint32_t code = kn_fb_u32(ot, TFL_OP_OPCODE_INDEX, 0);
  if (code >= c->opcodes.count)
    return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                   "TFLite operator %u: opcode index %u of %u", k, code,
                   c->opcodes.count);
  kn_fb_table oc;
  if (!kn_fb_vec_table(&c->opcodes, code, &oc))
    return fb_error(c);
  /* Since schema 3a the int32 field holds codes >= 127; older writers
   * only set the byte. TFLite takes the larger of the two. */
  int32_t dep = kn_fb_i8(&oc, TFL_OPCODE_DEPRECATED_BUILTIN_CODE, 0);
  int32_t full = kn_fb_i32(&oc, TFL_OPCODE_BUILTIN_CODE, 0);
  op->builtin = full > dep ? full : dep;
  kn_fb_string_field(&oc, TFL_OPCODE_CUSTOM_CODE, &op->custom,
                     &op->custom_len);
  kn_fb_vector_field(ot, TFL_OP_INPUTS, 4, &c->op_inputs);
  kn_fb_vector_field(ot, TFL_OP_OUTPUTS, 4, &c->op_outputs);
  if (kn_fb_failed(&c->fb))
    return fb_error(c);
  c->op_name = op_label(c, op->builtin, op->custom, op->custom_len);
  if (c->op_inputs.count > TFL_MAX_OP_INPUTS ||
      c->op_outputs.count > TFL_MAX_OP_INPUTS)
    return op_fail(c, KESTREL_ERROR_MALFORMED, "too many inputs or outputs");
  for (uint32_t i = 0; i < c->op_inputs.count; i++) {
    int32_t t = kn_fb_vec_i32(&c->op_inputs, i);
    if (t < -1 || t >= (int64_t)c->num_tensors)
      return op_fail(c, KESTREL_ERROR_MALFORMED, "input %u is tensor %d of %u",
                     i, (int)t, c->num_tensors);
  }
  for (uint32_t i = 0; i < c->op_outputs.count; i++) {
    int32_t t = kn_fb_vec_i32(&c->op_outputs, i);
    if (t < 0 || t >= (int64_t)c->num_tensors)
      return op_fail(c, KESTREL_ERROR_MALFORMED,
                     "output %u is tensor %d of %u", i, (int)t,
                     c->num_tensors);
    if (c->tensors[t].is_const)
      return op_fail(c, KESTREL_ERROR_MALFORMED,
                     "output %u writes constant tensor %d", i, (int)t);
  }
  if (kn_fb_u64(ot, TFL_OP_LARGE_CUSTOM_OPTIONS_OFFSET, 0) > 1)
    return op_fail(c, KESTREL_ERROR_UNSUPPORTED,
                   "custom options stored outside the flatbuffer");
  return kn_fb_failed(&c->fb) ? fb_error(c) : KESTREL_OK;
}

static kestrel_status import_subgraph(tfl_ctx *c, const kn_fb_table *sg) {
  kn_fb_vector tensors, inputs, outputs, ops;
  kn_fb_vector_field(sg, TFL_SUBGRAPH_TENSORS, 4, &tensors);
  kn_fb_vector_field(sg, TFL_SUBGRAPH_INPUTS, 4, &inputs);
  kn_fb_vector_field(sg, TFL_SUBGRAPH_OUTPUTS, 4, &outputs);
  kn_fb_vector_field(sg, TFL_SUBGRAPH_OPERATORS, 4, &ops);
  if (kn_fb_failed(&c->fb))
    return fb_error(c);
  if (tensors.count > TFL_MAX_TENSORS || ops.count > TFL_MAX_OPERATORS)
    return kn_fail(c->err, KESTREL_ERROR_UNSUPPORTED,
                   "TFLite: %u tensors and %u operators exceed the limits",
                   tensors.count, ops.count);
  c->num_tensors = tensors.count;
  c->tensors = calloc((size_t)tensors.count + 1, sizeof(tfl_tensor));
  if (!c->tensors)
    return oom(c);
  kestrel_status st;
  for (uint32_t i = 0; i < tensors.count; i++) {
    kn_fb_table tt;
    if (!kn_fb_vec_table(&tensors, i, &tt))
      return fb_error(c);
    if ((st = read_tensor(c, i, &tt)))
      return st;
  }

  for (uint32_t i = 0; i < inputs.count; i++) {
    int32_t t = kn_fb_vec_i32(&inputs, i);
    if (t < 0 || (uint32_t)t >= c->num_tensors)
      return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                     "TFLite subgraph input %u is tensor %d of %u", i, (int)t,
                     c->num_tensors);
    tfl_tensor *info = &c->tensors[t];
    kn_tensor *kt = kt_of(c, t);
    if (info->is_const || kt->kind == KN_TENSOR_INPUT)
      continue; /* a constant listed as input is still a constant */
    if (info->dtype == KESTREL_DTYPE_UNDEFINED)
      return kn_fail(c->err, KESTREL_ERROR_UNSUPPORTED,
                     "TFLite input '%s' has type %d", kt->name, info->type);
    kn_set_shape(kt, info->dtype, info->ndim, info->dims);
    /* Dynamic dimensions are -1 for the caller (or load options) to fix. */
    for (int d = 0; d < info->ndim; d++)
      if (info->sig_dynamic[d])
        kt->dims[d] = -1;
    kt->kind = KN_TENSOR_INPUT;
    if (kn_graph_add_input(c->g, info->kn) != 0)
      return oom(c);
  }
  /* Nothing to compute: refuse rather than hand on an empty graph. */
  if (outputs.count == 0)
    return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                   "TFLite: subgraph 0 has no outputs");
  for (uint32_t i = 0; i < outputs.count; i++) {
    int32_t t = kn_fb_vec_i32(&outputs, i);
    if (t < 0 || (uint32_t)t >= c->num_tensors)
      return kn_fail(c->err, KESTREL_ERROR_MALFORMED,
                     "TFLite subgraph output %u is tensor %d of %u", i,
                     (int)t, c->num_tensors);
    if (kn_graph_add_output(c->g, c->tensors[t].kn) != 0)
      return oom(c);
  }
  if (kn_fb_failed(&c->fb))
    return fb_error(c);

  /* How many operators read each tensor: weights read once can be
   * rearranged in place. */
  for (uint32_t k = 0; k < ops.count; k++) {
    kn_fb_table ot;
    kn_fb_vector ins;
    if (!kn_fb_vec_table(&ops, k, &ot))
      return fb_error(c);
    if (kn_fb_vector_field(&ot, TFL_OP_INPUTS, 4, &ins))
      for (uint32_t i = 0; i < ins.count; i++) {
        int32_t t = kn_fb_vec_i32(&ins, i);
        if (t >= 0 && (uint32_t)t < c->num_tensors &&
            c->tensors[t].uses >= 0)
          c->tensors[t].uses++;
      }
    if (kn_fb_failed(&c->fb))
      return fb_error(c);
  }
  /* Graph outputs are read too. */
  for (uint32_t i = 0; i < outputs.count; i++)
    c->tensors[kn_fb_vec_i32(&outputs, i)].uses++;

  for (uint32_t k = 0; k < ops.count; k++) {
    kn_fb_table ot;
    tfl_op op;
    if (!kn_fb_vec_table(&ops, k, &ot))
      return fb_error(c);
    if ((st = read_op(c, k, &ot, &op)))
      return st;
    if (op.builtin == TFL_BUILTIN_DENSIFY) {
      if ((st = fold_densify(c)))
        return st;
      continue;
    }
    if (op.builtin == TFL_BUILTIN_DEQUANTIZE) {
      bool folded;
      if ((st = fold_dequantize(c, &folded)))
        return st;
      if (folded)
        continue;
    }
    if ((st = convert_op(c, &op)))
      return st;
  }
  return KESTREL_OK;
}

kestrel_status kn_import_tflite(kn_graph *g, const uint8_t *data, size_t size,
                                kestrel_error *err) {
  if (!g || (!data && size))
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "null argument");
  tfl_ctx c;
  memset(&c, 0, sizeof(c));
  c.g = g;
  c.err = err;
  c.file = data;
  c.size = size;
  c.op_index = -1;
  c.alloc_limit = (uint64_t)size * TFL_ALLOC_FACTOR + TFL_ALLOC_SLACK;
  g->format = KESTREL_FORMAT_TFLITE;
  g->opset = 0;
  kn_fb_init(&c.fb, data, size);

  kestrel_status st = KESTREL_OK;
  kn_fb_table model, sg;
  kn_fb_vector subgraphs;
  if (!kn_fb_root(&c.fb, &model)) {
    st = fb_error(&c);
    goto done;
  }
  /* The identifier is optional in the flatbuffer format; files that have
   * a different one are not TFLite. */
  if (!kn_fb_has_identifier(&c.fb, TFL_FILE_IDENTIFIER) &&
      model.pos >= 8) {
    st = kn_fail(err, KESTREL_ERROR_MALFORMED,
                 "TFLite: file identifier is not \"%s\"",
                 TFL_FILE_IDENTIFIER);
    goto done;
  }
  uint32_t version = kn_fb_u32(&model, TFL_MODEL_VERSION, 0);
  if (kn_fb_failed(&c.fb)) {
    st = fb_error(&c);
    goto done;
  }
  if (version != TFL_SCHEMA_VERSION) {
    st = kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
                 "TFLite: schema version %u (only %d is supported)", version,
                 TFL_SCHEMA_VERSION);
    goto done;
  }
  kn_fb_vector_field(&model, TFL_MODEL_BUFFERS, 4, &c.buffers);
  kn_fb_vector_field(&model, TFL_MODEL_OPERATOR_CODES, 4, &c.opcodes);
  if (!kn_fb_vector_field(&model, TFL_MODEL_SUBGRAPHS, 4, &subgraphs) ||
      subgraphs.count == 0) {
    st = kn_fb_failed(&c.fb)
             ? fb_error(&c)
             : kn_fail(err, KESTREL_ERROR_MALFORMED, "TFLite: no subgraph");
    goto done;
  }
  if (!kn_fb_vec_table(&subgraphs, 0, &sg)) {
    st = fb_error(&c);
    goto done;
  }
  st = import_subgraph(&c, &sg);
  if (st == KESTREL_OK)
    kn_log(g,
           "tflite: %u tensors, %d nodes; %d weights rearranged, %d "
           "dequantized at load time",
           c.num_tensors, g->num_nodes, c.transposed, c.folded);
done:
  free(c.tensors);
  free(c.names);
  return st;
}
