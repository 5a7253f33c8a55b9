/* Bounds-checked FlatBuffers access (see flatbuf.h). The binary format:
 * a uoffset (u32, forward, relative to where it is stored) at byte 0 points
 * at the root table; a table starts with an soffset (i32) such that
 * vtable = table - soffset; a vtable holds u16 {vtable bytes, table bytes,
 * field offsets...}, a 0 field offset meaning "absent, use the default";
 * vectors and strings are a u32 count followed by the elements. */
#include "flatbuf.h"

#include <string.h>

void kn_fb_init(kn_fb *fb, const uint8_t *data, size_t size) {
  memset(fb, 0, sizeof(*fb));
  fb->data = data;
  fb->size = data ? size : 0;
}

bool kn_fb_fail(kn_fb *fb, size_t offset, const char *what) {
  if (!fb->failed) {
    fb->failed = true;
    fb->error_offset = offset;
    fb->error_what = what;
  }
  return false;
}

/* Is [pos, pos+len) inside the buffer? Written to avoid overflow. */
static bool in_bounds(const kn_fb *fb, uint64_t pos, uint64_t len) {
  return pos <= fb->size && len <= fb->size - pos;
}

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

bool kn_fb_has_identifier(const kn_fb *fb, const char id[4]) {
  return fb->size >= 8 && memcmp(fb->data + 4, id, 4) == 0;
}

bool kn_fb_table_at(kn_fb *fb, size_t pos, kn_fb_table *out) {
  memset(out, 0, sizeof(*out));
  out->fb = fb;
  if (fb->failed)
    return false;
  if (!in_bounds(fb, pos, 4))
    return kn_fb_fail(fb, pos, "table offset beyond end of file");
  int32_t soff = (int32_t)rd32(fb->data + pos);
  int64_t vt = (int64_t)pos - (int64_t)soff;
  if (vt < 0 || !in_bounds(fb, (uint64_t)vt, 4))
    return kn_fb_fail(fb, pos, "table vtable offset out of range");
  uint16_t vt_size = rd16(fb->data + vt);
  uint16_t tbl_size = rd16(fb->data + vt + 2);
  if (vt_size < 4 || (vt_size & 1) || !in_bounds(fb, (uint64_t)vt, vt_size))
    return kn_fb_fail(fb, (size_t)vt, "bad vtable size");
  if (tbl_size < 4 || !in_bounds(fb, pos, tbl_size))
    return kn_fb_fail(fb, pos, "table extends beyond end of file");
  out->pos = pos;
  out->vtable = (size_t)vt;
  out->vt_size = vt_size;
  out->size = tbl_size;
  return true;
}

bool kn_fb_root(kn_fb *fb, kn_fb_table *out) {
  memset(out, 0, sizeof(*out));
  out->fb = fb;
  if (!in_bounds(fb, 0, 8))
    return kn_fb_fail(fb, 0, "file too small for a flatbuffer");
  uint32_t root = rd32(fb->data);
  if (root < 4)
    return kn_fb_fail(fb, 0, "bad root table offset");
  return kn_fb_table_at(fb, root, out);
}

size_t kn_fb_field_pos(const kn_fb_table *t, int id, size_t width) {
  if (!t->fb || t->fb->failed || id < 0 || t->vt_size == 0)
    return 0;
  uint32_t slot = 4u + 2u * (uint32_t)id;
  if (slot + 2 > t->vt_size)
    return 0; /* written by an older schema: field absent */
  uint16_t off = rd16(t->fb->data + t->vtable + slot);
  if (off == 0)
    return 0;
  if (off < 4 || (size_t)off + width > t->size) {
    kn_fb_fail(t->fb, t->vtable + slot, "field outside its table");
    return 0;
  }
  return t->pos + off;
}

bool kn_fb_has_field(const kn_fb_table *t, int id) {
  return kn_fb_field_pos(t, id, 1) != 0;
}

uint8_t kn_fb_u8(const kn_fb_table *t, int id, uint8_t def) {
  size_t p = kn_fb_field_pos(t, id, 1);
  return p ? t->fb->data[p] : def;
}

int8_t kn_fb_i8(const kn_fb_table *t, int id, int8_t def) {
  size_t p = kn_fb_field_pos(t, id, 1);
  return p ? (int8_t)t->fb->data[p] : def;
}

bool kn_fb_bool(const kn_fb_table *t, int id, bool def) {
  size_t p = kn_fb_field_pos(t, id, 1);
  return p ? t->fb->data[p] != 0 : def;
}

uint16_t kn_fb_u16(const kn_fb_table *t, int id, uint16_t def) {
  size_t p = kn_fb_field_pos(t, id, 2);
  return p ? rd16(t->fb->data + p) : def;
}

int32_t kn_fb_i32(const kn_fb_table *t, int id, int32_t def) {
  size_t p = kn_fb_field_pos(t, id, 4);
  return p ? (int32_t)rd32(t->fb->data + p) : def;
}

uint32_t kn_fb_u32(const kn_fb_table *t, int id, uint32_t def) {
  size_t p = kn_fb_field_pos(t, id, 4);
  return p ? rd32(t->fb->data + p) : def;
}

int64_t kn_fb_i64(const kn_fb_table *t, int id, int64_t def) {
  size_t p = kn_fb_field_pos(t, id, 8);
  return p ? (int64_t)rd64(t->fb->data + p) : def;
}

uint64_t kn_fb_u64(const kn_fb_table *t, int id, uint64_t def) {
  size_t p = kn_fb_field_pos(t, id, 8);
  return p ? rd64(t->fb->data + p) : def;
}

float kn_fb_f32(const kn_fb_table *t, int id, float def) {
  size_t p = kn_fb_field_pos(t, id, 4);
  if (!p)
    return def;
  uint32_t bits = rd32(t->fb->data + p);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* Follows the uoffset stored at absolute position p. */
static bool follow(kn_fb *fb, size_t p, size_t *target) {
  uint32_t off = rd32(fb->data + p);
  /* 0 would point at the offset itself; flatbuffers never writes that. */
  if (off == 0 || !in_bounds(fb, (uint64_t)p + off, 4))
    return kn_fb_fail(fb, p, "offset points outside the file");
  *target = p + off;
  return true;
}

bool kn_fb_table_field(const kn_fb_table *t, int id, kn_fb_table *out) {
  memset(out, 0, sizeof(*out));
  out->fb = t->fb;
  size_t p = kn_fb_field_pos(t, id, 4);
  size_t target = 0;
  if (!p || !follow(t->fb, p, &target))
    return false;
  return kn_fb_table_at(t->fb, target, out);
}

static bool vector_at(kn_fb *fb, size_t pos, uint32_t elem_size,
                      kn_fb_vector *out) {
  if (!in_bounds(fb, pos, 4))
    return kn_fb_fail(fb, pos, "vector beyond end of file");
  uint32_t count = rd32(fb->data + pos);
  if (!in_bounds(fb, (uint64_t)pos + 4, (uint64_t)count * elem_size))
    return kn_fb_fail(fb, pos, "vector extends beyond end of file");
  out->pos = pos + 4;
  out->count = count;
  out->stride = elem_size;
  return true;
}

bool kn_fb_vector_field(const kn_fb_table *t, int id, uint32_t elem_size,
                        kn_fb_vector *out) {
  memset(out, 0, sizeof(*out));
  out->fb = t->fb;
  out->stride = elem_size;
  size_t p = kn_fb_field_pos(t, id, 4);
  size_t target = 0;
  if (!p || elem_size == 0 || !follow(t->fb, p, &target))
    return false;
  return vector_at(t->fb, target, elem_size, out);
}

bool kn_fb_string_field(const kn_fb_table *t, int id, const char **str,
                        uint32_t *len) {
  kn_fb_vector v;
  *str = NULL;
  *len = 0;
  if (!kn_fb_vector_field(t, id, 1, &v))
    return false;
  *str = (const char *)(t->fb->data + v.pos);
  *len = v.count;
  return true;
}

/* Checks index and stride before an element read. */
static const uint8_t *element(const kn_fb_vector *v, uint32_t i,
                              uint32_t width) {
  if (!v->fb || v->fb->failed)
    return NULL;
  if (i >= v->count || v->stride < width) {
    kn_fb_fail(v->fb, v->pos, "vector index out of range");
    return NULL;
  }
  return v->fb->data + v->pos + (size_t)i * v->stride;
}

uint8_t kn_fb_vec_u8(const kn_fb_vector *v, uint32_t i) {
  const uint8_t *p = element(v, i, 1);
  return p ? *p : 0;
}

int32_t kn_fb_vec_i32(const kn_fb_vector *v, uint32_t i) {
  const uint8_t *p = element(v, i, 4);
  return p ? (int32_t)rd32(p) : 0;
}

int64_t kn_fb_vec_i64(const kn_fb_vector *v, uint32_t i) {
  const uint8_t *p = element(v, i, 8);
  return p ? (int64_t)rd64(p) : 0;
}

float kn_fb_vec_f32(const kn_fb_vector *v, uint32_t i) {
  const uint8_t *p = element(v, i, 4);
  if (!p)
    return 0.0f;
  uint32_t bits = rd32(p);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

bool kn_fb_vec_table(const kn_fb_vector *v, uint32_t i, kn_fb_table *out) {
  memset(out, 0, sizeof(*out));
  out->fb = v->fb;
  const uint8_t *p = element(v, i, 4);
  if (!p)
    return false;
  size_t pos = (size_t)(p - v->fb->data), target = 0;
  if (!follow(v->fb, pos, &target))
    return false;
  return kn_fb_table_at(v->fb, target, out);
}

const uint8_t *kn_fb_vec_bytes(const kn_fb_vector *v) {
  if (!v->fb || v->fb->failed || v->count == 0)
    return NULL;
  return v->fb->data + v->pos;
}
