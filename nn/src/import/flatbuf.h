/* A small bounds-checked FlatBuffers reader for untrusted files (TFLite).
 *
 * Every access checks offsets against the buffer size and never assumes
 * alignment (values are read with memcpy, little-endian). Errors are sticky:
 * the first failure is recorded in the kn_fb (byte offset and what was being
 * read) and every later access returns the default value, so a caller can
 * read a whole table and check kn_fb_failed() once.
 *
 *   kn_fb fb;
 *   kn_fb_init(&fb, data, size);
 *   kn_fb_table model;
 *   if (!kn_fb_root(&fb, &model)) ... fb.error_offset, fb.error_what
 *   uint32_t version = kn_fb_u32(&model, 0, 0);
 *   kn_fb_vector subgraphs;
 *   kn_fb_vector_field(&model, 2, 4, &subgraphs);
 *
 * Field ids are the schema's declaration order (a union takes two ids: its
 * _type byte, then the table).
 */
#ifndef KESTREL_FLATBUF_H
#define KESTREL_FLATBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kn_fb {
  const uint8_t *data;
  size_t size;
  bool failed;
  size_t error_offset;    /* byte offset of the first bad access */
  const char *error_what; /* static string: what was being read */
} kn_fb;

typedef struct kn_fb_table {
  kn_fb *fb;        /* reader; failures are recorded there */
  size_t pos;       /* absolute offset of the table's soffset */
  size_t vtable;    /* absolute offset of its vtable */
  uint16_t vt_size; /* bytes of the vtable, header included */
  uint16_t size;    /* bytes of the table's inline data */
} kn_fb_table;

typedef struct kn_fb_vector {
  kn_fb *fb;
  size_t pos;      /* absolute offset of element 0 */
  uint32_t count;  /* number of elements */
  uint32_t stride; /* element size in bytes */
} kn_fb_vector;

void kn_fb_init(kn_fb *fb, const uint8_t *data, size_t size);
static inline bool kn_fb_failed(const kn_fb *fb) { return fb->failed; }
/* Records the first failure; returns false for `return kn_fb_fail(...)`. */
bool kn_fb_fail(kn_fb *fb, size_t offset, const char *what);

/* True if the 4-byte file identifier at offset 4 equals id. */
bool kn_fb_has_identifier(const kn_fb *fb, const char id[4]);
/* The root table (uoffset at byte 0). */
bool kn_fb_root(kn_fb *fb, kn_fb_table *out);
/* A table whose soffset sits at absolute position pos. */
bool kn_fb_table_at(kn_fb *fb, size_t pos, kn_fb_table *out);

/* Absolute offset of a present field of `width` bytes, 0 when absent (a
 * field can never sit at offset 0: the root offset lives there). */
size_t kn_fb_field_pos(const kn_fb_table *t, int id, size_t width);
bool kn_fb_has_field(const kn_fb_table *t, int id);

uint8_t kn_fb_u8(const kn_fb_table *t, int id, uint8_t def);
int8_t kn_fb_i8(const kn_fb_table *t, int id, int8_t def);
bool kn_fb_bool(const kn_fb_table *t, int id, bool def);
uint16_t kn_fb_u16(const kn_fb_table *t, int id, uint16_t def);
int32_t kn_fb_i32(const kn_fb_table *t, int id, int32_t def);
uint32_t kn_fb_u32(const kn_fb_table *t, int id, uint32_t def);
int64_t kn_fb_i64(const kn_fb_table *t, int id, int64_t def);
uint64_t kn_fb_u64(const kn_fb_table *t, int id, uint64_t def);
float kn_fb_f32(const kn_fb_table *t, int id, float def);

/* Sub-table / vector / string fields. Return false when absent or bad
 * (check kn_fb_failed to tell the two apart). */
bool kn_fb_table_field(const kn_fb_table *t, int id, kn_fb_table *out);
bool kn_fb_vector_field(const kn_fb_table *t, int id, uint32_t elem_size,
                        kn_fb_vector *out);
/* A string's bytes (not NUL-terminated in the view; len excludes NUL). */
bool kn_fb_string_field(const kn_fb_table *t, int id, const char **str,
                        uint32_t *len);

/* Vector elements; i must be < count (checked, failing the reader). */
uint8_t kn_fb_vec_u8(const kn_fb_vector *v, uint32_t i);
int32_t kn_fb_vec_i32(const kn_fb_vector *v, uint32_t i);
int64_t kn_fb_vec_i64(const kn_fb_vector *v, uint32_t i);
float kn_fb_vec_f32(const kn_fb_vector *v, uint32_t i);
/* Element i of a vector of tables (stride 4: uoffsets). */
bool kn_fb_vec_table(const kn_fb_vector *v, uint32_t i, kn_fb_table *out);
/* Pointer to the raw bytes of a vector (any stride), NULL if empty. */
const uint8_t *kn_fb_vec_bytes(const kn_fb_vector *v);

#endif
