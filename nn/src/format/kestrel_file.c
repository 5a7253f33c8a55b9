/* Reading and writing .kestrel files (layout in format.h). The reader
 * trusts nothing: the checksum is verified first, then every count, offset
 * and size is checked against the section that holds it before use, and
 * finally the rebuilt graph goes through shape inference like any imported
 * model, so a hostile file cannot reach a kernel with inconsistent shapes.
 * Constant data is never copied: tensors point into the (mapped) file. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

enum {
  SEC_META = 1,
  SEC_STRINGS = 2,
  SEC_TENSORS = 3,
  SEC_NODES = 4,
  SEC_ATTRS = 5,
  SEC_INDICES = 6,
  SEC_PAYLOAD = 7,
  SEC_DATA = 8,
  SEC_SIDECAR = 9,
  SEC_COUNT_ = 10
};

#define META_SIZE 64
#define TENSOR_SIZE 128
#define NODE_SIZE 40
#define ATTR_SIZE 40
#define SECTION_ENTRY_SIZE 24

enum { TF_OUTPUT = 1, TF_ABSENT = 2, TF_DATA = 4 };

/* ---- little-endian access ------------------------------------------------ */

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) {
  return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}
static float rdf32(const uint8_t *p) {
  uint32_t v = rd32(p);
  float f;
  memcpy(&f, &v, 4);
  return f;
}
static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static void wr64(uint8_t *p, uint64_t v) {
  wr32(p, (uint32_t)v);
  wr32(p + 4, (uint32_t)(v >> 32));
}
static void wrf32(uint8_t *p, float f) {
  uint32_t v;
  memcpy(&v, &f, 4);
  wr32(p, v);
}

bool kn_format_is_kestrel(const uint8_t *data, size_t size) {
  return size >= KN_KESTREL_MAGIC_SIZE &&
         memcmp(data, KN_KESTREL_MAGIC, KN_KESTREL_MAGIC_SIZE) == 0;
}

/* ==== writer =============================================================== */

typedef struct wbuf {
  uint8_t *p;
  size_t len, cap;
  bool failed;
} wbuf;

static size_t wb_reserve(wbuf *b, size_t n) {
  if (b->failed)
    return 0;
  if (n == 0)
    return b->len; /* also keeps a still-NULL buffer untouched */
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
      b->failed = true;
      return 0;
    }
    b->p = p;
    b->cap = cap;
  }
  size_t at = b->len;
  memset(b->p + at, 0, n);
  b->len += n;
  return at;
}

static void wb_align(wbuf *b, size_t a) {
  size_t pad = (a - b->len % a) % a;
  if (pad)
    wb_reserve(b, pad);
}

static size_t wb_put(wbuf *b, const void *data, size_t n) {
  size_t at = wb_reserve(b, n);
  if (!b->failed && n)
    memcpy(b->p + at, data, n);
  return at;
}

/* Strings section builder: returns the offset of s (NUL-terminated). */
static uint32_t put_string(wbuf *strings, const char *s, uint32_t *len) {
  size_t n = s ? strlen(s) : 0;
  *len = (uint32_t)n;
  size_t at = wb_put(strings, s ? s : "", n);
  wb_reserve(strings, 1);
  return (uint32_t)at;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

kestrel_status kn_format_write(const kn_graph *g, const kn_format_source *src,
                               uint8_t **out, size_t *out_size,
                               kestrel_error *err) {
  *out = NULL;
  *out_size = 0;
  wbuf strings = {0}, tensors = {0}, nodes = {0}, attrs = {0}, indices = {0},
       payload = {0}, meta = {0};
  kestrel_status st = KESTREL_OK;
  /* Live nodes only: dead ones are history. */
  uint32_t num_nodes = 0;
  for (int i = 0; i < g->num_nodes; i++)
    num_nodes += !g->nodes[i].dead;

  size_t data_total = 0; /* DATA section size, blobs 64-aligned */
  uint64_t *blob_at = calloc((size_t)g->num_tensors + 1, sizeof(uint64_t));
  if (!blob_at) {
    st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  for (int t = 0; t < g->num_tensors; t++) {
    const kn_tensor *x = &g->tensors[t];
    if (x->kind != KN_TENSOR_CONSTANT || !x->data)
      continue;
    data_total = (data_total + KN_KESTREL_DATA_ALIGN - 1) &
                 ~(size_t)(KN_KESTREL_DATA_ALIGN - 1);
    blob_at[t] = data_total;
    data_total += kn_tensor_bytes(x);
  }

  for (int t = 0; t < g->num_tensors; t++) {
    const kn_tensor *x = &g->tensors[t];
    size_t r = wb_reserve(&tensors, TENSOR_SIZE);
    uint32_t len;
    uint32_t off = put_string(&strings, x->name, &len);
    if (tensors.failed)
      break;
    uint8_t *p = tensors.p + r;
    wr32(p + 0, off);
    wr32(p + 4, len);
    wr32(p + 8, (uint32_t)x->dtype);
    wr32(p + 12, (uint32_t)x->ndim);
    for (int d = 0; d < KN_MAX_DIMS; d++)
      wr64(p + 16 + 8 * d, (uint64_t)(d < x->ndim ? x->dims[d] : 0));
    wr32(p + 80, (uint32_t)x->kind);
    uint32_t flags = (x->is_output ? TF_OUTPUT : 0) |
                     (x->optional_absent ? TF_ABSENT : 0);
    if (x->kind == KN_TENSOR_CONSTANT && x->data) {
      flags |= TF_DATA;
      wr64(p + 88, blob_at[t]); /* relative for now; fixed up below */
      wr64(p + 96, kn_tensor_bytes(x));
    }
    wr32(p + 84, flags);
    wr32(p + 104, (uint32_t)x->q_axis);
    wr32(p + 108, (uint32_t)x->q_count);
    if (x->q_count > 0) {
      wb_align(&payload, 8);
      size_t q = wb_put(&payload, NULL, 0);
      for (int k = 0; k < x->q_count; k++) {
        uint8_t v[4];
        wrf32(v, x->q_scale[k]);
        wb_put(&payload, v, 4);
      }
      for (int k = 0; k < x->q_count; k++) {
        uint8_t v[4];
        wr32(v, (uint32_t)(x->q_zero_point ? x->q_zero_point[k] : 0));
        wb_put(&payload, v, 4);
      }
      wr64(p + 112, q);
    }
    wr64(p + 120, (uint64_t)x->arena_offset);
  }

  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    size_t r = wb_reserve(&nodes, NODE_SIZE);
    uint32_t nlen, olen;
    uint32_t noff = put_string(&strings, n->name, &nlen);
    uint32_t ooff = put_string(&strings, n->op_name, &olen);
    uint32_t first_index = (uint32_t)(indices.len / 4);
    for (int k = 0; k < n->num_inputs; k++) {
      uint8_t v[4];
      wr32(v, (uint32_t)n->inputs[k]);
      wb_put(&indices, v, 4);
    }
    for (int k = 0; k < n->num_outputs; k++) {
      uint8_t v[4];
      wr32(v, (uint32_t)n->outputs[k]);
      wb_put(&indices, v, 4);
    }
    uint32_t first_attr = (uint32_t)(attrs.len / ATTR_SIZE);
    uint32_t num_attrs = 0;
    for (int a = 0; a < n->num_attrs; a++) {
      const kn_attr *at = &n->attrs[a];
      if (!at->name || !at->name[0])
        continue;
      size_t ar = wb_reserve(&attrs, ATTR_SIZE);
      uint32_t alen;
      uint32_t aoff = put_string(&strings, at->name, &alen);
      uint64_t pay = 0;
      uint32_t count = 0;
      if (at->type == KN_ATTR_INTS) {
        wb_align(&payload, 8);
        pay = wb_put(&payload, NULL, 0);
        for (int k = 0; k < at->count; k++) {
          uint8_t v[8];
          wr64(v, (uint64_t)at->ints[k]);
          wb_put(&payload, v, 8);
        }
        count = (uint32_t)at->count;
      } else if (at->type == KN_ATTR_FLOATS) {
        wb_align(&payload, 8);
        pay = wb_put(&payload, NULL, 0);
        for (int k = 0; k < at->count; k++) {
          uint8_t v[4];
          wrf32(v, at->floats[k]);
          wb_put(&payload, v, 4);
        }
        count = (uint32_t)at->count;
      } else if (at->type == KN_ATTR_STRING) {
        uint32_t slen;
        pay = put_string(&strings, at->s, &slen);
        count = slen;
      }
      if (attrs.failed)
        break;
      uint8_t *p = attrs.p + ar;
      wr32(p + 0, aoff);
      wr32(p + 4, alen);
      wr32(p + 8, (uint32_t)at->type);
      wr32(p + 12, count);
      wr64(p + 16, (uint64_t)at->i);
      wrf32(p + 24, at->f);
      wr64(p + 32, pay);
      num_attrs++;
    }
    if (nodes.failed)
      break;
    uint8_t *p = nodes.p + r;
    wr32(p + 0, (uint32_t)n->op);
    wr32(p + 4, noff);
    wr32(p + 8, nlen);
    wr32(p + 12, ooff);
    wr32(p + 16, olen);
    wr32(p + 20, first_index);
    wr32(p + 24, (uint32_t)n->num_inputs);
    wr32(p + 28, (uint32_t)n->num_outputs);
    wr32(p + 32, first_attr);
    wr32(p + 36, num_attrs);
  }
  uint32_t io_first = (uint32_t)(indices.len / 4);
  for (int i = 0; i < g->num_inputs; i++) {
    uint8_t v[4];
    wr32(v, (uint32_t)g->inputs[i]);
    wb_put(&indices, v, 4);
  }
  for (int i = 0; i < g->num_outputs; i++) {
    uint8_t v[4];
    wr32(v, (uint32_t)g->outputs[i]);
    wb_put(&indices, v, 4);
  }
  {
    size_t r = wb_reserve(&meta, META_SIZE);
    if (!meta.failed) {
      uint8_t *p = meta.p + r;
      wr32(p + 0, (uint32_t)g->num_tensors);
      wr32(p + 4, num_nodes);
      wr32(p + 8, (uint32_t)g->num_inputs);
      wr32(p + 12, (uint32_t)g->num_outputs);
      wr32(p + 16, (uint32_t)g->opset);
      wr32(p + 20, (uint32_t)g->format);
      wr64(p + 24, src->plan ? src->plan->arena_bytes : 0);
      wr64(p + 32, src->plan ? src->plan->lower_bound : 0);
      wr32(p + 40, io_first);
    }
  }
  if (strings.failed || tensors.failed || nodes.failed || attrs.failed ||
      indices.failed || payload.failed || meta.failed) {
    st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY,
                 "out of memory serializing the graph");
    goto done;
  }

  /* Assemble: header, table, sections. */
  {
    const wbuf *parts[] = {&meta, &strings, &tensors, &nodes, &attrs,
                           &indices, &payload};
    const uint32_t ids[] = {SEC_META, SEC_STRINGS, SEC_TENSORS, SEC_NODES,
                            SEC_ATTRS, SEC_INDICES, SEC_PAYLOAD};
    const int nparts = 7, nsec = nparts + 2;
    wbuf f = {0};
    size_t hdr = wb_reserve(&f, KN_KESTREL_HEADER_SIZE);
    size_t table = wb_reserve(&f, (size_t)nsec * SECTION_ENTRY_SIZE);
    uint64_t offs[9], sizes[9];
    for (int k = 0; k < nparts; k++) {
      wb_align(&f, 8);
      offs[k] = wb_put(&f, parts[k]->p, parts[k]->len);
      sizes[k] = parts[k]->len;
    }
    wb_align(&f, 8);
    offs[nparts] = wb_put(&f, src->sidecar, src->sidecar ? src->sidecar_size : 0);
    sizes[nparts] = src->sidecar ? src->sidecar_size : 0;
    wb_align(&f, KN_KESTREL_DATA_ALIGN);
    size_t data_at = wb_reserve(&f, data_total);
    offs[nparts + 1] = data_at;
    sizes[nparts + 1] = data_total;
    if (f.failed) {
      free(f.p);
      st = kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY,
                   "out of memory assembling the file");
      goto done;
    }
    for (int t = 0; t < g->num_tensors; t++) {
      const kn_tensor *x = &g->tensors[t];
      if (x->kind != KN_TENSOR_CONSTANT || !x->data)
        continue;
      size_t bytes = kn_tensor_bytes(x);
      if (bytes)
        memcpy(f.p + data_at + blob_at[t], x->data, bytes);
      /* Tensor records hold absolute offsets. */
      uint8_t *rec = f.p + offs[2] + (size_t)t * TENSOR_SIZE;
      wr64(rec + 88, data_at + blob_at[t]);
    }
    const uint32_t all_ids[9] = {ids[0], ids[1], ids[2], ids[3], ids[4],
                                 ids[5], ids[6], SEC_SIDECAR, SEC_DATA};
    for (int k = 0; k < nsec; k++) {
      uint8_t *e = f.p + table + (size_t)k * SECTION_ENTRY_SIZE;
      wr32(e, all_ids[k]);
      wr64(e + 8, offs[k]);
      wr64(e + 16, sizes[k]);
    }
    uint8_t *h = f.p + hdr;
    memcpy(h, KN_KESTREL_MAGIC, KN_KESTREL_MAGIC_SIZE);
    wr32(h + 8, KN_KESTREL_VERSION);
    wr64(h + 16, f.len);
    wr32(h + 24, KN_KESTREL_HEADER_SIZE);
    wr32(h + 28, (uint32_t)nsec);
    if (src->sha256_hex && strlen(src->sha256_hex) == 64) {
      for (int k = 0; k < 32; k++) {
        int hi = hexval(src->sha256_hex[2 * k]),
            lo = hexval(src->sha256_hex[2 * k + 1]);
        h[32 + k] = (uint8_t)((hi < 0 ? 0 : hi) << 4 | (lo < 0 ? 0 : lo));
      }
    }
    wr32(h + 64, (uint32_t)src->format);
    wr64(h + 72, table);
    wr32(h + KN_KESTREL_CRC_OFFSET, kn_format_checksum(f.p, f.len));
    *out = f.p;
    *out_size = f.len;
  }
done:
  free(blob_at);
  free(strings.p);
  free(tensors.p);
  free(nodes.p);
  free(attrs.p);
  free(indices.p);
  free(payload.p);
  free(meta.p);
  return st;
}

/* ==== reader =============================================================== */

typedef struct section {
  uint64_t off, size;
  bool present;
} section;

typedef struct reader {
  const uint8_t *data;
  size_t size;
  section sec[SEC_COUNT_];
  kestrel_error *err;
} reader;

static kestrel_status bad(kestrel_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static kestrel_status bad(kestrel_error *err, const char *fmt, ...) {
  if (err) {
    char msg[sizeof(err->message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(err->message, sizeof(err->message), "corrupt .kestrel file: %.480s",
             msg);
  }
  return KESTREL_ERROR_MALFORMED;
}

/* A string reference (offset, length) into STRINGS, NUL-terminated there. */
static const char *get_string(const reader *r, uint32_t off, uint32_t len) {
  const section *s = &r->sec[SEC_STRINGS];
  if ((uint64_t)off + len >= s->size)
    return NULL;
  const char *p = (const char *)r->data + s->off + off;
  if (p[len] != '\0')
    return NULL;
  return p;
}

static kestrel_status read_sections(reader *r) {
  const uint8_t *h = r->data;
  uint64_t table = rd64(h + 72);
  uint32_t nsec = rd32(h + 28);
  if (nsec > 64)
    return bad(r->err, "%u sections (at byte 28)", nsec);
  if (table > r->size || (r->size - table) / SECTION_ENTRY_SIZE < nsec ||
      table < KN_KESTREL_HEADER_SIZE)
    return bad(r->err, "section table at byte %llu is out of bounds",
               (unsigned long long)table);
  for (uint32_t k = 0; k < nsec; k++) {
    const uint8_t *e = h + table + (size_t)k * SECTION_ENTRY_SIZE;
    uint32_t id = rd32(e);
    uint64_t off = rd64(e + 8), size = rd64(e + 16);
    size_t at = (size_t)(table + (size_t)k * SECTION_ENTRY_SIZE);
    if (id == 0 || id >= SEC_COUNT_)
      return bad(r->err, "unknown section id %u (at byte %zu)", id, at);
    if (r->sec[id].present)
      return bad(r->err, "section %u appears twice (at byte %zu)", id, at);
    if (off > r->size || size > r->size - off || off % 8)
      return bad(r->err,
                 "section %u (offset %llu, %llu bytes) lies outside the "
                 "%zu-byte file (at byte %zu)",
                 id, (unsigned long long)off, (unsigned long long)size,
                 r->size, at);
    if (id == SEC_DATA && off % KN_KESTREL_DATA_ALIGN)
      return bad(r->err, "data section at byte %llu is not 64-byte aligned",
                 (unsigned long long)off);
    r->sec[id].off = off;
    r->sec[id].size = size;
    r->sec[id].present = true;
  }
  for (int id = 1; id < SEC_COUNT_; id++)
    if (!r->sec[id].present)
      return bad(r->err, "section %d is missing", id);
  return KESTREL_OK;
}

/* Element count of a shape, or -1 when negative or absurd. */
static int64_t shape_numel(int ndim, const int64_t *dims) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (dims[d] < 0 || dims[d] > (INT64_C(1) << 31))
      return -1;
    if (dims[d] && n > (INT64_C(1) << 40) / dims[d])
      return -1;
    n *= dims[d];
  }
  return n;
}

static kestrel_status read_tensors(reader *r, kn_graph *g, uint32_t count) {
  const section *ts = &r->sec[SEC_TENSORS], *ds = &r->sec[SEC_DATA],
                *ps = &r->sec[SEC_PAYLOAD];
  for (uint32_t t = 0; t < count; t++) {
    size_t at = (size_t)(ts->off + (uint64_t)t * TENSOR_SIZE);
    const uint8_t *p = r->data + at;
    const char *name = get_string(r, rd32(p), rd32(p + 4));
    if (!name)
      return bad(r->err, "tensor %u: bad name reference (at byte %zu)", t, at);
    int idx = kn_graph_add_tensor(g, name);
    if (idx < 0)
      return kn_fail(r->err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    kn_tensor *x = &g->tensors[idx];
    uint32_t dtype = rd32(p + 8);
    int32_t ndim = (int32_t)rd32(p + 12);
    uint32_t kind = rd32(p + 80), flags = rd32(p + 84);
    if (kestrel_dtype_size((kestrel_dtype)dtype) == 0 && dtype != 0)
      return bad(r->err, "tensor '%s': unknown dtype %u (at byte %zu)", name,
                 dtype, at + 8);
    if (ndim < 0 || ndim > KN_MAX_DIMS)
      return bad(r->err, "tensor '%s': rank %d (at byte %zu)", name, ndim,
                 at + 12);
    if (kind > KN_TENSOR_INPUT || (flags & ~7u))
      return bad(r->err, "tensor '%s': bad kind %u / flags %u (at byte %zu)",
                 name, kind, flags, at + 80);
    int64_t dims[KN_MAX_DIMS] = {0};
    for (int d = 0; d < ndim; d++)
      dims[d] = (int64_t)rd64(p + 16 + 8 * d);
    int64_t numel = shape_numel(ndim, dims);
    if (numel < 0)
      return bad(r->err, "tensor '%s': bad shape (at byte %zu)", name,
                 at + 16);
    kn_set_shape(x, (kestrel_dtype)dtype, ndim, dims);
    x->kind = (kn_tensor_kind)kind;
    x->is_output = (flags & TF_OUTPUT) != 0;
    x->optional_absent = (flags & TF_ABSENT) != 0;
    if (flags & TF_DATA) {
      uint64_t off = rd64(p + 88), size = rd64(p + 96);
      if (kind != KN_TENSOR_CONSTANT || dtype == 0)
        return bad(r->err, "tensor '%s': data on a non-constant (at byte %zu)",
                   name, at + 84);
      if (size != (uint64_t)numel * kestrel_dtype_size((kestrel_dtype)dtype))
        return bad(r->err,
                   "tensor '%s': %llu data bytes for %lld elements (at byte "
                   "%zu)",
                   name, (unsigned long long)size, (long long)numel, at + 96);
      if (off < ds->off || off > ds->off + ds->size ||
          size > ds->off + ds->size - off || off % KN_KESTREL_DATA_ALIGN)
        return bad(r->err,
                   "tensor '%s': data at byte %llu (%llu bytes) is outside "
                   "the data section (at byte %zu)",
                   name, (unsigned long long)off, (unsigned long long)size,
                   at + 88);
      x->data = (void *)(r->data + off); /* borrowed from the map */
      x->data_owned = false;
    } else if (kind == KN_TENSOR_CONSTANT) {
      return bad(r->err, "constant tensor '%s' has no data (at byte %zu)",
                 name, at + 84);
    }
    int32_t q_axis = (int32_t)rd32(p + 104);
    uint32_t q_count = rd32(p + 108);
    if (q_count) {
      uint64_t q = rd64(p + 112);
      if (q_count > (1u << 20) || q % 4 || q > ps->size ||
          (uint64_t)q_count * 8 > ps->size - q)
        return bad(r->err,
                   "tensor '%s': %u quantization parameters at %llu are out "
                   "of bounds (at byte %zu)",
                   name, q_count, (unsigned long long)q, at + 108);
      if (q_axis < -1 || q_axis >= (ndim ? ndim : 1) ||
          (q_axis >= 0 && ndim > 0 && (uint64_t)dims[q_axis] != q_count) ||
          (q_axis < 0 && q_count != 1))
        return bad(r->err,
                   "tensor '%s': quantization axis %d with %u scales (at "
                   "byte %zu)",
                   name, q_axis, q_count, at + 104);
      float *scale = malloc(sizeof(float) * q_count);
      int32_t *zero = malloc(sizeof(int32_t) * q_count);
      if (!scale || !zero) {
        free(scale);
        free(zero);
        return kn_fail(r->err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      }
      const uint8_t *qp = r->data + ps->off + q;
      for (uint32_t k = 0; k < q_count; k++) {
        scale[k] = rdf32(qp + 4 * k);
        zero[k] = (int32_t)rd32(qp + 4 * (q_count + k));
      }
      int rc = kn_tensor_set_quant(x, q_axis, (int)q_count, scale, zero);
      free(scale);
      free(zero);
      if (rc)
        return kn_fail(r->err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
    }
    x->arena_offset = (int64_t)rd64(p + 120);
  }
  return KESTREL_OK;
}

static kestrel_status read_attrs(reader *r, kn_node *n, uint32_t first,
                                 uint32_t count) {
  const section *as = &r->sec[SEC_ATTRS], *ps = &r->sec[SEC_PAYLOAD];
  uint64_t total = as->size / ATTR_SIZE;
  if (first > total || count > total - first)
    return bad(r->err, "node '%s': attributes %u+%u of %llu", n->name, first,
               count, (unsigned long long)total);
  for (uint32_t a = 0; a < count; a++) {
    size_t at = (size_t)(as->off + (uint64_t)(first + a) * ATTR_SIZE);
    const uint8_t *p = r->data + at;
    const char *name = get_string(r, rd32(p), rd32(p + 4));
    if (!name || !name[0])
      return bad(r->err, "node '%s': bad attribute name (at byte %zu)",
                 n->name, at);
    uint32_t type = rd32(p + 8), cnt = rd32(p + 12);
    uint64_t pay = rd64(p + 32);
    kn_attr *x;
    switch (type) {
    case KN_ATTR_INT:
      kn_node_set_int(n, name, (int64_t)rd64(p + 16));
      break;
    case KN_ATTR_FLOAT:
      kn_node_set_float(n, name, rdf32(p + 24));
      break;
    case KN_ATTR_INTS:
    case KN_ATTR_FLOATS: {
      size_t es = type == KN_ATTR_INTS ? 8 : 4;
      if (cnt > (1u << 24) || pay > ps->size ||
          (uint64_t)cnt * es > ps->size - pay)
        return bad(r->err,
                   "node '%s': attribute '%s' holds %u values past the "
                   "payload (at byte %zu)",
                   n->name, name, cnt, at);
      x = kn_node_add_attr(n, name, (kn_attr_type)type);
      if (!x)
        return kn_fail(r->err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      const uint8_t *q = r->data + ps->off + pay;
      if (type == KN_ATTR_INTS) {
        x->ints = malloc(8 * ((size_t)cnt + 1));
        if (!x->ints)
          return kn_fail(r->err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
        for (uint32_t k = 0; k < cnt; k++)
          x->ints[k] = (int64_t)rd64(q + 8 * k);
      } else {
        x->floats = malloc(4 * ((size_t)cnt + 1));
        if (!x->floats)
          return kn_fail(r->err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
        for (uint32_t k = 0; k < cnt; k++)
          x->floats[k] = rdf32(q + 4 * k);
      }
      x->count = (int)cnt;
      break;
    }
    case KN_ATTR_STRING: {
      const char *s =
          pay > UINT32_MAX ? NULL : get_string(r, (uint32_t)pay, cnt);
      if (!s)
        return bad(r->err,
                   "node '%s': attribute '%s' has a bad string (at byte %zu)",
                   n->name, name, at);
      kn_node_set_string(n, name, s);
      break;
    }
    default:
      return bad(r->err, "node '%s': attribute '%s' has type %u (at byte %zu)",
                 n->name, name, type, at + 8);
    }
    if (!kn_node_attr(n, name))
      return kn_fail(r->err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  return KESTREL_OK;
}

static kestrel_status read_nodes(reader *r, kn_graph *g, uint32_t count) {
  const section *ns = &r->sec[SEC_NODES], *is = &r->sec[SEC_INDICES];
  uint64_t num_indices = is->size / 4;
  const uint8_t *idx = r->data + is->off;
  int *buf = NULL;
  size_t buf_cap = 0;
  kestrel_status st = KESTREL_OK;
  for (uint32_t i = 0; i < count && st == KESTREL_OK; i++) {
    size_t at = (size_t)(ns->off + (uint64_t)i * NODE_SIZE);
    const uint8_t *p = r->data + at;
    uint32_t op = rd32(p);
    const char *name = get_string(r, rd32(p + 4), rd32(p + 8));
    const char *op_name = get_string(r, rd32(p + 12), rd32(p + 16));
    uint32_t first = rd32(p + 20), nin = rd32(p + 24), nout = rd32(p + 28);
    if (!name || !op_name) {
      st = bad(r->err, "node %u: bad name reference (at byte %zu)", i, at);
      break;
    }
    if (op == KN_OP_INVALID || op >= KN_OP_COUNT_ || !kn_op_get((kn_op)op)) {
      st = bad(r->err, "node '%s': unknown op %u (at byte %zu)", name, op, at);
      break;
    }
    if (nin > 4096 || nout > 4096 || first > num_indices ||
        (uint64_t)nin + nout > num_indices - first) {
      st = bad(r->err, "node '%s': %u inputs / %u outputs out of bounds (at "
                       "byte %zu)",
               name, nin, nout, at + 20);
      break;
    }
    size_t need = (size_t)nin + nout + 1;
    if (need > buf_cap) {
      int *b = realloc(buf, sizeof(int) * need);
      if (!b) {
        st = kn_fail(r->err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
        break;
      }
      buf = b;
      buf_cap = need;
    }
    for (uint32_t k = 0; k < nin + nout; k++) {
      int32_t v = (int32_t)rd32(idx + 4 * ((size_t)first + k));
      if (v < (k < nin ? -1 : 0) || v >= g->num_tensors) {
        st = bad(r->err, "node '%s': %s %u refers to tensor %d of %d", name,
                 k < nin ? "input" : "output", k < nin ? k : k - nin, v,
                 g->num_tensors);
        break;
      }
      buf[k] = v;
    }
    if (st != KESTREL_OK)
      break;
    int ni = kn_graph_add_node(g, (kn_op)op, name, op_name, buf, (int)nin,
                               buf + nin, (int)nout);
    if (ni < 0) {
      st = kn_fail(r->err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
      break;
    }
    st = read_attrs(r, &g->nodes[ni], rd32(p + 32), rd32(p + 36));
  }
  free(buf);
  return st;
}

static void hex_of(const uint8_t *raw, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (int k = 0; k < 32; k++) {
    hex[2 * k] = digits[raw[k] >> 4];
    hex[2 * k + 1] = digits[raw[k] & 15];
  }
  hex[64] = '\0';
}

kestrel_status kn_format_load(kestrel_model *m,
                              const kestrel_load_options *options,
                              kestrel_error *err) {
  reader r;
  memset(&r, 0, sizeof(r));
  r.data = m->bytes;
  r.size = m->size;
  r.err = err;
  const uint8_t *h = r.data;
  if (!kn_format_is_kestrel(h, r.size))
    return bad(err, "bad magic");
  if (r.size < KN_KESTREL_HEADER_SIZE)
    return bad(err, "truncated: %zu bytes, the header alone is %d", r.size,
               KN_KESTREL_HEADER_SIZE);
  uint32_t version = rd32(h + 8);
  if (version != KN_KESTREL_VERSION)
    return kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
                   ".kestrel format version %u is not supported (this build "
                   "reads version %d): recompile the model with this "
                   "kestrel",
                   version, KN_KESTREL_VERSION);
  uint64_t declared = rd64(h + 16);
  if (declared != r.size)
    return bad(err, "truncated or extended: header says %llu bytes, file has "
                    "%zu",
               (unsigned long long)declared, r.size);
  if (rd32(h + 24) != KN_KESTREL_HEADER_SIZE)
    return bad(err, "header size %u (at byte 24)", rd32(h + 24));
  uint32_t stored = rd32(h + KN_KESTREL_CRC_OFFSET);
  uint32_t actual = kn_format_checksum(h, r.size);
  if (stored != actual)
    return bad(err, "checksum mismatch (stored %08x, computed %08x)", stored,
               actual);
  kestrel_status st = read_sections(&r);
  if (st != KESTREL_OK)
    return st;
  const section *ms = &r.sec[SEC_META];
  if (ms->size < META_SIZE)
    return bad(err, "meta section is %llu bytes",
               (unsigned long long)ms->size);
  const uint8_t *mp = r.data + ms->off;
  uint32_t nt = rd32(mp), nn = rd32(mp + 4), nin = rd32(mp + 8),
           nout = rd32(mp + 12);
  uint32_t io_first = rd32(mp + 40);
  if ((uint64_t)nt * TENSOR_SIZE != r.sec[SEC_TENSORS].size ||
      (uint64_t)nn * NODE_SIZE != r.sec[SEC_NODES].size ||
      r.sec[SEC_ATTRS].size % ATTR_SIZE || r.sec[SEC_INDICES].size % 4)
    return bad(err, "%u tensors / %u nodes do not match their sections", nt,
               nn);
  if (nt > INT32_MAX / 2 || nin > nt || nout > nt || nin + nout == 0 ||
      io_first > r.sec[SEC_INDICES].size / 4 ||
      (uint64_t)nin + nout > r.sec[SEC_INDICES].size / 4 - io_first)
    return bad(err, "%u inputs / %u outputs out of bounds", nin, nout);
  kn_graph *g = m->graph;
  g->opset = (int)rd32(mp + 16);
  uint32_t src_format = rd32(mp + 20);
  if (src_format > KESTREL_FORMAT_KESTREL)
    return bad(err, "source format %u", src_format);
  g->format = (kestrel_model_format)src_format;
  if (options)
    g->verbose = options->verbose;
  st = read_tensors(&r, g, nt);
  if (st != KESTREL_OK)
    return st;
  const uint8_t *io = r.data + r.sec[SEC_INDICES].off + 4 * (size_t)io_first;
  for (uint32_t k = 0; k < nin + nout; k++) {
    int32_t v = (int32_t)rd32(io + 4 * k);
    if (v < 0 || v >= (int32_t)nt)
      return bad(err, "graph %s %u refers to tensor %d of %u",
                 k < nin ? "input" : "output", k < nin ? k : k - nin, v, nt);
    if (k < nin && g->tensors[v].kind == KN_TENSOR_CONSTANT)
      return bad(err, "graph input '%s' is a constant", g->tensors[v].name);
    int rc = k < nin ? kn_graph_add_input(g, v) : kn_graph_add_output(g, v);
    if (rc)
      return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  st = read_nodes(&r, g, nn);
  if (st != KESTREL_OK)
    return st;
  const section *sc = &r.sec[SEC_SIDECAR];
  m->sidecar = sc->size ? (const char *)r.data + sc->off : NULL;
  m->sidecar_size = (size_t)sc->size;
  hex_of(h + 32, m->sha256);

  /* The stored input shape is what the graph was compiled for. */
  if (options && options->input_shape_ndim > 0 && g->num_inputs > 0) {
    const kn_tensor *in = &g->tensors[g->inputs[0]];
    bool same = in->ndim == options->input_shape_ndim;
    for (int d = 0; same && d < in->ndim; d++)
      same = in->dims[d] == options->input_shape[d];
    if (!same) {
      char have[160] = "", want[160] = "";
      for (int d = 0; d < in->ndim; d++)
        snprintf(have + strlen(have), sizeof(have) - strlen(have), "%s%lld",
                 d ? "," : "", (long long)in->dims[d]);
      for (int d = 0; d < options->input_shape_ndim && d < KN_MAX_DIMS; d++)
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%lld",
                 d ? "," : "", (long long)options->input_shape[d]);
      return kn_fail(err, KESTREL_ERROR_SHAPE,
                     "this .kestrel file was compiled for input shape %s; "
                     "--input-shape %s differs (compile again with "
                     "--input-shape %s)",
                     have, want, want);
    }
  }
  /* Save the stored shapes, re-derive them all, and compare. */
  int64_t *saved = malloc(sizeof(int64_t) * KN_MAX_DIMS * ((size_t)nt + 1));
  int *saved_ndim = malloc(sizeof(int) * ((size_t)nt + 1));
  if (!saved || !saved_ndim) {
    free(saved);
    free(saved_ndim);
    return kn_fail(err, KESTREL_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  for (uint32_t t = 0; t < nt; t++) {
    saved_ndim[t] = g->tensors[t].ndim;
    memcpy(saved + (size_t)t * KN_MAX_DIMS, g->tensors[t].dims,
           sizeof(int64_t) * KN_MAX_DIMS);
  }
  int64_t *offsets = malloc(sizeof(int64_t) * ((size_t)nt + 1));
  if (offsets)
    for (uint32_t t = 0; t < nt; t++)
      offsets[t] = g->tensors[t].arena_offset;
  kestrel_load_options po;
  memset(&po, 0, sizeof(po));
  po.verbose = options ? options->verbose : 0;
  st = kn_graph_prepare(g, &po, err);
  for (uint32_t t = 0; st == KESTREL_OK && t < nt; t++) {
    const kn_tensor *x = &g->tensors[t];
    if (x->kind == KN_TENSOR_CONSTANT)
      continue;
    bool same = x->ndim == saved_ndim[t] || x->ndim < 0;
    for (int d = 0; same && d < x->ndim; d++)
      same = x->dims[d] == saved[(size_t)t * KN_MAX_DIMS + d];
    if (!same)
      st = bad(err, "tensor '%s': stored shape differs from the inferred one",
               x->name);
  }
  /* Every activation a node reads must come from somewhere: a graph input
   * or a node (planning and running assume it). */
  for (int i = 0; st == KESTREL_OK && i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    if (n->dead)
      continue;
    for (int k = 0; k < n->num_inputs && st == KESTREL_OK; k++) {
      int t = n->inputs[k];
      if (t < 0)
        continue;
      const kn_tensor *x = &g->tensors[t];
      bool is_input = false;
      for (int j = 0; j < g->num_inputs; j++)
        is_input = is_input || g->inputs[j] == t;
      if (x->kind != KN_TENSOR_CONSTANT && !x->optional_absent &&
          x->producer < 0 && !is_input)
        st = bad(err, "node '%s' reads tensor '%s' that nothing produces",
                 n->name, x->name);
    }
  }
  if (offsets) {
    for (uint32_t t = 0; t < nt; t++)
      g->tensors[t].arena_offset = offsets[t];
    free(offsets);
  }
  free(saved);
  free(saved_ndim);
  return st;
}

kestrel_status kn_format_find_sidecar(const uint8_t *data, size_t size,
                                      const char **text, size_t *text_size,
                                      kestrel_error *err) {
  *text = NULL;
  *text_size = 0;
  if (!kn_format_is_kestrel(data, size))
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT, "not a .kestrel file");
  if (size < KN_KESTREL_HEADER_SIZE || rd64(data + 16) != size)
    return bad(err, "truncated");
  if (rd32(data + 8) != KN_KESTREL_VERSION)
    return kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
                   ".kestrel format version %u is not supported",
                   rd32(data + 8));
  if (rd32(data + KN_KESTREL_CRC_OFFSET) != kn_format_checksum(data, size))
    return bad(err, "checksum mismatch");
  reader r;
  memset(&r, 0, sizeof(r));
  r.data = data;
  r.size = size;
  r.err = err;
  kestrel_status st = read_sections(&r);
  if (st != KESTREL_OK)
    return st;
  *text = (const char *)data + r.sec[SEC_SIDECAR].off;
  *text_size = (size_t)r.sec[SEC_SIDECAR].size;
  return KESTREL_OK;
}
