/* ONNX importer: a serialized ModelProto (parsed by the protobuf-c code
 * generated from onnx.proto) becomes a kn_graph. Shapes are only copied
 * here; inference, folding and checks of op semantics happen in prepare.
 *
 * Everything in the file is untrusted. Before protobuf-c sees the bytes, a
 * walk over the wire format (guided by the generated descriptors) bounds
 * nesting depth and the memory unpacking will take, and reports the byte
 * offset of the first broken field; after unpacking, every count and size
 * is checked before it is used.
 */
#include "graph.h"
#include "onnx.pb-c.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "raw_data is little-endian; the ONNX importer assumes a little-endian host"
#endif

/* Protobuf messages cannot exceed 2 GiB, so neither can a model. */
#define ONNX_MAX_FILE_BYTES ((size_t)INT32_MAX)
/* Real models nest a few levels (model, graph, node, attribute, tensor, and
 * again per subgraph); protobuf-c recurses once per level. */
#define ONNX_MAX_NESTING 48
/* Memory protobuf-c may use for the unpacked message, on top of the file. */
#define ONNX_UNPACK_SLACK ((uint64_t)256 << 20)
#define ONNX_UNPACK_FACTOR 8
/* Sane limits for counts that end up in int fields of the IR. */
#define ONNX_MAX_ITEMS 10000000
#define ONNX_MAX_NODE_ARITY 65536
#define ONNX_MAX_ATTR_VALUES (1 << 24)

/* ---- wire-format pre-check ------------------------------------------- */

typedef struct wire_walk {
  const uint8_t *base;
  uint64_t estimate; /* upper bound of bytes protobuf-c will allocate */
  size_t bad_offset;
  const char *why;
} wire_walk;

static bool read_varint(const uint8_t *p, size_t len, size_t *pos,
                        uint64_t *v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (*pos >= len)
      return false;
    uint8_t b = p[(*pos)++];
    if (shift < 64)
      r |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false; /* more than 10 bytes */
}

/* Walks one message's fields in p[0, len). Recursion is bounded by depth. */
static bool wire_check(wire_walk *w, const ProtobufCMessageDescriptor *desc,
                       const uint8_t *p, size_t len, int depth) {
  /* The message struct itself, plus protobuf-c's scratch per field seen. */
  w->estimate += desc ? desc->sizeof_message : 0;
  size_t pos = 0;
  while (pos < len) {
    size_t field_start = pos;
    uint64_t tag;
    if (!read_varint(p, len, &pos, &tag) || (tag >> 3) == 0 ||
        (tag >> 3) > UINT32_MAX) {
      w->bad_offset = (size_t)(p - w->base) + field_start;
      w->why = "bad field tag";
      return false;
    }
    const ProtobufCFieldDescriptor *f =
        desc ? protobuf_c_message_descriptor_get_field(desc,
                                                       (unsigned)(tag >> 3))
             : NULL;
    w->estimate += 64;
    uint64_t v;
    switch (tag & 7) {
    case 0: /* varint */
      if (!read_varint(p, len, &pos, &v)) {
        w->why = "truncated varint";
        goto bad;
      }
      break;
    case 1: /* fixed64 */
      if (len - pos < 8) {
        w->why = "truncated fixed64";
        goto bad;
      }
      pos += 8;
      break;
    case 5: /* fixed32 */
      if (len - pos < 4) {
        w->why = "truncated fixed32";
        goto bad;
      }
      pos += 4;
      break;
    case 2: /* length-delimited: bytes, string, packed scalars, message */
      if (!read_varint(p, len, &pos, &v) || v > len - pos) {
        w->why = "length runs past the end of its message";
        goto bad;
      }
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
        if (depth + 1 > ONNX_MAX_NESTING) {
          w->why = "messages nested too deeply";
          goto bad;
        }
        if (!wire_check(w, f->descriptor, p + pos, (size_t)v, depth + 1))
          return false;
      } else if (f && (f->type == PROTOBUF_C_TYPE_STRING ||
                       f->type == PROTOBUF_C_TYPE_BYTES)) {
        w->estimate += v + 1;
      } else {
        /* Packed scalars: at worst one byte per 8-byte element. */
        w->estimate += 8 * v;
      }
      pos += (size_t)v;
      break;
    default: /* groups (3, 4) are not used by onnx.proto; 6, 7 do not exist */
      w->why = "unsupported wire type";
      goto bad;
    }
    continue;
  bad:
    w->bad_offset = (size_t)(p - w->base) + field_start;
    return false;
  }
  return true;
}

/* ---- tensor-name table ------------------------------------------------ */

/* Open addressing over tensor indices; names live in the graph. Importers
 * must not be quadratic in the number of tensors (kn_graph_find_tensor is
 * linear), or a hostile file with a million names stalls loading. */
typedef struct name_table {
  int *slots; /* tensor index or -1 */
  size_t cap; /* power of two */
  size_t used;
} name_table;

static uint64_t hash_name(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

static int table_find(const name_table *t, const kn_graph *g,
                      const char *name) {
  if (!t->cap)
    return -1;
  for (size_t i = hash_name(name) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    int idx = t->slots[i];
    if (idx < 0)
      return -1;
    if (strcmp(g->tensors[idx].name, name) == 0)
      return idx;
  }
}

static bool table_insert(name_table *t, const kn_graph *g, int idx) {
  if ((t->used + 1) * 2 > t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 256;
    int *slots = malloc(cap * sizeof(int));
    if (!slots)
      return false;
    memset(slots, 0xff, cap * sizeof(int));
    for (size_t i = 0; i < t->cap; i++) {
      int old = t->slots[i];
      if (old < 0)
        continue;
      size_t j = hash_name(g->tensors[old].name) & (cap - 1);
      while (slots[j] >= 0)
        j = (j + 1) & (cap - 1);
      slots[j] = old;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
  }
  size_t j = hash_name(g->tensors[idx].name) & (t->cap - 1);
  while (t->slots[j] >= 0)
    j = (j + 1) & (t->cap - 1);
  t->slots[j] = idx;
  t->used++;
  return true;
}

typedef struct importer {
  kn_graph *g;
  name_table names;
  kestrel_error *err;
  int file_opset; /* as declared; g->opset is at least 7 */
} importer;

static const char *str_or_empty(const char *s) { return s ? s : ""; }

/* Index of the tensor called name, adding it if new; -1 on OOM. */
static int tensor_for_name(importer *im, const char *name) {
  int idx = table_find(&im->names, im->g, name);
  if (idx >= 0)
    return idx;
  idx = kn_graph_add_tensor(im->g, name);
  if (idx < 0)
    return -1;
  if (!table_insert(&im->names, im->g, idx))
    return -1;
  return idx;
}

static bool tensor_defined(const kn_tensor *t) {
  return t->kind != KN_TENSOR_ACTIVATION || t->producer >= 0;
}

/* ---- data types and tensor payloads ------------------------------------ */

static kestrel_dtype dtype_from_onnx(int32_t t) {
  switch (t) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return KESTREL_DTYPE_F32;
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return KESTREL_DTYPE_F16;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return KESTREL_DTYPE_I8;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return KESTREL_DTYPE_U8;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: return KESTREL_DTYPE_I16;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return KESTREL_DTYPE_I32;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return KESTREL_DTYPE_I64;
  case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return KESTREL_DTYPE_BOOL;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return KESTREL_DTYPE_F64;
  default: return KESTREL_DTYPE_UNDEFINED;
  }
}

static const char *onnx_dtype_name(int32_t t) {
  static const char *const names[] = {
      "UNDEFINED", "FLOAT",  "UINT8",  "INT8",      "UINT16",     "INT16",
      "INT32",     "INT64",  "STRING", "BOOL",      "FLOAT16",    "DOUBLE",
      "UINT32",    "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
  if (t >= 0 && (size_t)t < sizeof(names) / sizeof(names[0]))
    return names[t];
  return "unknown";
}

/* Reads a TensorProto's dims into ndim/dims and checks the element count.
 * what names the tensor for messages ("initializer 'w'"). */
static kestrel_status tensor_shape(importer *im, const Onnx__TensorProto *tp,
                                   const char *what, int *ndim,
                                   int64_t *dims, uint64_t *numel) {
  if (tp->n_dims > KN_MAX_DIMS)
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "%s has rank %zu (at most %d supported)", what, tp->n_dims,
                   KN_MAX_DIMS);
  uint64_t count = 1;
  bool empty = false;
  for (size_t i = 0; i < tp->n_dims; i++) {
    int64_t d = tp->dims[i];
    if (d < 0)
      return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                     "%s has negative dimension %lld", what, (long long)d);
    dims[i] = d;
    if (d == 0)
      empty = true;
    /* Only the product of non-zero dims can overflow; the file size bounds
     * any real element count, so anything past 2^40 is garbage. */
    else if (count > (UINT64_C(1) << 40) / (uint64_t)d)
      return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                     "%s has an absurd shape (more than 2^40 elements)", what);
    else
      count *= (uint64_t)d;
  }
  *ndim = (int)tp->n_dims;
  *numel = empty ? 0 : count;
  return KESTREL_OK;
}

/* Fills t (constant data, dtype, shape) from a TensorProto, taking over its
 * raw_data buffer when it can. t may be a graph tensor or a scratch one; on
 * failure t may hold partial data. */
static kestrel_status load_tensor(importer *im, Onnx__TensorProto *tp,
                                  kn_tensor *t, const char *what) {
  int32_t onnx_type = tp->has_data_type ? tp->data_type : 0;
  kestrel_dtype dtype = dtype_from_onnx(onnx_type);
  if (dtype == KESTREL_DTYPE_UNDEFINED)
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "%s has data type %s (%d), not supported", what,
                   onnx_dtype_name(onnx_type), (int)onnx_type);
  if (tp->n_external_data > 0 ||
      (tp->has_data_location &&
       tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "%s keeps its data in an external file, not supported "
                   "(save the model with its weights embedded)",
                   what);
  if (tp->segment)
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "%s is a segment of a larger tensor, not supported", what);
  int ndim = 0;
  int64_t dims[KN_MAX_DIMS];
  uint64_t numel = 0;
  kestrel_status st = tensor_shape(im, tp, what, &ndim, dims, &numel);
  if (st != KESTREL_OK)
    return st;
  size_t esize = kestrel_dtype_size(dtype);

  /* Check that the data present matches the shape before allocating. */
  if (tp->has_raw_data) {
    if (tp->raw_data.len % esize != 0 || tp->raw_data.len / esize != numel)
      return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                     "%s has %zu bytes of raw_data, its shape and type need "
                     "%llu",
                     what, tp->raw_data.len,
                     (unsigned long long)(numel * esize));
  } else {
    size_t have;
    const char *field;
    switch (dtype) {
    case KESTREL_DTYPE_F32: have = tp->n_float_data, field = "float_data"; break;
    case KESTREL_DTYPE_I64: have = tp->n_int64_data, field = "int64_data"; break;
    case KESTREL_DTYPE_F64: have = tp->n_double_data, field = "double_data"; break;
    default: have = tp->n_int32_data, field = "int32_data"; break;
    }
    if (have != numel)
      return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                     "%s has %zu values in %s, its shape needs %llu", what,
                     have, field, (unsigned long long)numel);
  }

  if (tp->has_raw_data && numel > 0 && dtype != KESTREL_DTYPE_BOOL &&
      !t->data_owned) {
    /* Take protobuf-c's copy of the bytes (malloc'd by its default
     * allocator) instead of copying it again: weights then occupy memory
     * once more than the file, not twice. */
    t->data = tp->raw_data.data;
    t->data_owned = true;
    tp->raw_data.data = NULL;
    tp->raw_data.len = 0;
    tp->has_raw_data = 0;
    kn_set_shape(t, dtype, ndim, dims);
    t->kind = KN_TENSOR_CONSTANT;
    return KESTREL_OK;
  }
  void *data = kn_tensor_alloc_data(t, dtype, ndim, dims);
  if (!data)
    return kn_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY,
                   "%s: cannot allocate %llu bytes", what,
                   (unsigned long long)(numel * esize));
  if (numel == 0)
    return KESTREL_OK;
  if (tp->has_raw_data) {
    memcpy(data, tp->raw_data.data, tp->raw_data.len);
    if (dtype == KESTREL_DTYPE_BOOL) /* any non-zero byte is true */
      for (uint64_t i = 0; i < numel; i++)
        ((uint8_t *)data)[i] = ((uint8_t *)data)[i] != 0;
    return KESTREL_OK;
  }
  switch (dtype) {
  case KESTREL_DTYPE_F32: memcpy(data, tp->float_data, numel * 4); break;
  case KESTREL_DTYPE_I64: memcpy(data, tp->int64_data, numel * 8); break;
  case KESTREL_DTYPE_F64: memcpy(data, tp->double_data, numel * 8); break;
  case KESTREL_DTYPE_I32: memcpy(data, tp->int32_data, numel * 4); break;
  case KESTREL_DTYPE_F16: /* bit patterns in the low 16 bits */
  case KESTREL_DTYPE_I16:
    for (uint64_t i = 0; i < numel; i++)
      ((uint16_t *)data)[i] = (uint16_t)tp->int32_data[i];
    break;
  case KESTREL_DTYPE_I8:
  case KESTREL_DTYPE_U8:
    for (uint64_t i = 0; i < numel; i++)
      ((uint8_t *)data)[i] = (uint8_t)tp->int32_data[i];
    break;
  case KESTREL_DTYPE_BOOL:
    for (uint64_t i = 0; i < numel; i++)
      ((uint8_t *)data)[i] = tp->int32_data[i] != 0;
    break;
  default: break;
  }
  return KESTREL_OK;
}

/* ---- graph inputs -------------------------------------------------------- */

static kestrel_status add_graph_input(importer *im,
                                      const Onnx__ValueInfoProto *vi) {
  const char *name = str_or_empty(vi->name);
  if (!*name)
    return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                   "graph input without a name");
  int idx = table_find(&im->names, im->g, name);
  if (idx >= 0) {
    /* Old exporters list initializers among the inputs too; they stay
     * constants (an override at run time is not something we offer). */
    if (im->g->tensors[idx].kind == KN_TENSOR_CONSTANT)
      return KESTREL_OK;
    return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                   "graph input '%s' is listed twice", name);
  }
  const Onnx__TypeProto *type = vi->type;
  if (!type || type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
      !type->tensor_type)
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "graph input '%s' is not a tensor (sequences, maps and "
                   "optionals are not supported)",
                   name);
  const Onnx__TypeProto__Tensor *tt = type->tensor_type;
  int32_t elem = tt->has_elem_type ? tt->elem_type : 0;
  kestrel_dtype dtype = dtype_from_onnx(elem);
  if (dtype == KESTREL_DTYPE_UNDEFINED)
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "graph input '%s' has data type %s (%d), not supported",
                   name, onnx_dtype_name(elem), (int)elem);
  int64_t dims[KN_MAX_DIMS] = {0};
  int ndim = -1; /* no shape at all: rank unknown until the caller sets it */
  if (tt->shape) {
    if (tt->shape->n_dim > KN_MAX_DIMS)
      return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                     "graph input '%s' has rank %zu (at most %d supported)",
                     name, tt->shape->n_dim, KN_MAX_DIMS);
    ndim = (int)tt->shape->n_dim;
    for (int i = 0; i < ndim; i++) {
      const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
      dims[i] = -1; /* dim_param or unset: fixed later by load options */
      if (d && d->value_case ==
                   ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
        if (d->dim_value < 0 || d->dim_value > (INT64_C(1) << 40))
          return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                         "graph input '%s' has dimension %d = %lld", name, i,
                         (long long)d->dim_value);
        dims[i] = d->dim_value;
      }
    }
  }
  idx = tensor_for_name(im, name);
  if (idx < 0 || kn_graph_add_input(im->g, idx) != 0)
    return kn_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY,
                   "out of memory adding graph input '%s'", name);
  kn_tensor *t = &im->g->tensors[idx];
  t->kind = KN_TENSOR_INPUT;
  t->dtype = dtype;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++)
    t->dims[i] = dims[i];
  return KESTREL_OK;
}

/* ---- nodes ------------------------------------------------------------- */

/* ONNX leaves node names optional; messages need something to point at. */
static void node_label(const Onnx__NodeProto *np, size_t index, char *buf,
                       size_t cap) {
  if (np->name && *np->name) {
    snprintf(buf, cap, "%s", np->name);
    return;
  }
  for (size_t i = 0; i < np->n_output; i++)
    if (np->output[i] && *np->output[i]) {
      snprintf(buf, cap, "%s", np->output[i]);
      return;
    }
  snprintf(buf, cap, "#%zu", index);
}

/* Attribute type, inferred from the populated field for files written
 * before AttributeProto.type existed (IR version < 2). */
static int attr_type(const Onnx__AttributeProto *a) {
  if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
    return (int)a->type;
  if (a->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
  if (a->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  if (a->n_strings) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
  if (a->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
  if (a->g) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
  if (a->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  if (a->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  if (a->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

static const char *attr_type_name(int t) {
  switch (t) {
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH: return "GRAPH";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS: return "GRAPHS";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: return "STRINGS";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: return "TENSOR";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS: return "TENSORS";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR:
    return "SPARSE_TENSOR";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS:
    return "SPARSE_TENSORS";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO: return "TYPE_PROTO";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS:
    return "TYPE_PROTOS";
  default: return "UNDEFINED";
  }
}

/* Copies one attribute onto node n (graph node index ni). */
static kestrel_status copy_attr(importer *im, int ni,
                                const Onnx__AttributeProto *a) {
  kn_node *n = &im->g->nodes[ni];
  const char *name = str_or_empty(a->name);
  if (!*name)
    return kn_node_fail(im->err, KESTREL_ERROR_MALFORMED, n,
                        "attribute without a name");
  if (a->ref_attr_name && *a->ref_attr_name)
    return kn_node_fail(im->err, KESTREL_ERROR_UNSUPPORTED, n,
                        "attribute '%s' refers to a function attribute, not "
                        "supported",
                        name);
  int type = attr_type(a);
  switch (type) {
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
    kn_node_set_int(n, name, a->i);
    break;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
    kn_node_set_float(n, name, a->f);
    break;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
    if (a->n_ints > ONNX_MAX_ATTR_VALUES)
      return kn_node_fail(im->err, KESTREL_ERROR_UNSUPPORTED, n,
                          "attribute '%s' has %zu values", name, a->n_ints);
    kn_node_set_ints(n, name, a->ints, (int)a->n_ints);
    break;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
    if (a->n_floats > ONNX_MAX_ATTR_VALUES)
      return kn_node_fail(im->err, KESTREL_ERROR_UNSUPPORTED, n,
                          "attribute '%s' has %zu values", name, a->n_floats);
    kn_node_set_floats(n, name, a->floats, (int)a->n_floats);
    break;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: {
    /* bytes on the wire: not NUL-terminated, may contain NUL */
    size_t len = a->has_s ? a->s.len : 0;
    if (len && memchr(a->s.data, 0, len))
      return kn_node_fail(im->err, KESTREL_ERROR_MALFORMED, n,
                          "string attribute '%s' contains a NUL byte", name);
    char *s = malloc(len + 1);
    if (!s)
      return kn_node_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                          "out of memory copying attribute '%s'", name);
    if (len)
      memcpy(s, a->s.data, len);
    s[len] = '\0';
    kn_node_set_string(n, name, s);
    free(s);
    break;
  }
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED:
    return kn_node_fail(im->err, KESTREL_ERROR_MALFORMED, n,
                        "attribute '%s' has no value", name);
  default:
    return kn_node_fail(im->err, KESTREL_ERROR_UNSUPPORTED, n,
                        "attribute '%s' of type %s is not supported", name,
                        attr_type_name(type));
  }
  /* The setters cannot report failure; a missing attribute means OOM. */
  const kn_attr *set = kn_node_attr(n, name);
  if (!set || (set->type == KN_ATTR_INTS && a->n_ints && !set->ints) ||
      (set->type == KN_ATTR_FLOATS && a->n_floats && !set->floats) ||
      (set->type == KN_ATTR_STRING && !set->s))
    return kn_node_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                        "out of memory copying attribute '%s'", name);
  return KESTREL_OK;
}

/* The single output of a Constant or the outputs of any node: must not be
 * defined yet. Returns the tensor index, or -1 with err set. */
static int define_output(importer *im, const char *label, const char *op,
                         const char *name, kestrel_status *st) {
  int idx = tensor_for_name(im, name);
  if (idx < 0) {
    *st = kn_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY,
                  "node '%s' (%s): out of memory", label, op);
    return -1;
  }
  if (tensor_defined(&im->g->tensors[idx])) {
    *st = kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                  "node '%s' (%s): output '%s' is already defined by an "
                  "input, initializer or another node",
                  label, op, name);
    return -1;
  }
  return idx;
}

/* Constant nodes become constant tensors: nothing runs for them. */
static kestrel_status import_constant(importer *im, const Onnx__NodeProto *np,
                                      const char *label) {
  if (np->n_output != 1 || !np->output[0] || !*np->output[0])
    return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                   "node '%s' (Constant): needs exactly one named output",
                   label);
  if (np->n_attribute != 1 || !np->attribute[0])
    return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                   "node '%s' (Constant): needs exactly one value attribute",
                   label);
  Onnx__AttributeProto *a = np->attribute[0];
  const char *aname = str_or_empty(a->name);
  kestrel_status st = KESTREL_OK;
  int idx = define_output(im, label, "Constant", np->output[0], &st);
  if (idx < 0)
    return st;
  kn_tensor *t = &im->g->tensors[idx];
  char what[300];
  snprintf(what, sizeof(what), "node '%s' (Constant) value", label);

  if (strcmp(aname, "value") == 0) {
    if (!a->t)
      return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                     "node '%s' (Constant): attribute 'value' holds no "
                     "tensor",
                     label);
    return load_tensor(im, a->t, t, what);
  }

  int64_t dims[1];
  void *data = NULL;
  if (strcmp(aname, "value_float") == 0 && a->has_f) {
    data = kn_tensor_alloc_data(t, KESTREL_DTYPE_F32, 0, dims);
    if (data)
      *(float *)data = a->f;
  } else if (strcmp(aname, "value_int") == 0 && a->has_i) {
    data = kn_tensor_alloc_data(t, KESTREL_DTYPE_I64, 0, dims);
    if (data)
      *(int64_t *)data = a->i;
  } else if (strcmp(aname, "value_floats") == 0) {
    dims[0] = (int64_t)a->n_floats;
    data = kn_tensor_alloc_data(t, KESTREL_DTYPE_F32, 1, dims);
    if (data && a->n_floats)
      memcpy(data, a->floats, a->n_floats * sizeof(float));
  } else if (strcmp(aname, "value_ints") == 0) {
    dims[0] = (int64_t)a->n_ints;
    data = kn_tensor_alloc_data(t, KESTREL_DTYPE_I64, 1, dims);
    if (data && a->n_ints)
      memcpy(data, a->ints, a->n_ints * sizeof(int64_t));
  } else {
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "node '%s' (Constant): attribute '%s' is not supported "
                   "(value, value_float(s) and value_int(s) are)",
                   label, aname);
  }
  if (!data)
    return kn_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY,
                   "node '%s' (Constant): out of memory", label);
  return KESTREL_OK;
}

/* ConstantOfShape's one-element "value" tensor is stored as an attribute
 * pair: "value" (floats or ints, one element) and "value_dtype" (a
 * kestrel_dtype), so the op needs no tensor-valued attributes. */
static kestrel_status constant_of_shape_value(importer *im, int ni,
                                              Onnx__AttributeProto *a) {
  kn_node *n = &im->g->nodes[ni];
  kn_tensor tmp;
  memset(&tmp, 0, sizeof(tmp));
  char what[300];
  snprintf(what, sizeof(what), "node '%s' (%s) attribute 'value'", n->name,
           n->op_name);
  kestrel_status st = load_tensor(im, a->t, &tmp, what);
  if (st == KESTREL_OK && kn_tensor_numel(&tmp) != 1)
    st = kn_node_fail(im->err, KESTREL_ERROR_MALFORMED, n,
                      "attribute 'value' must hold one element, has %lld",
                      (long long)kn_tensor_numel(&tmp));
  if (st == KESTREL_OK) {
    if (tmp.dtype == KESTREL_DTYPE_F32 || tmp.dtype == KESTREL_DTYPE_F16 ||
        tmp.dtype == KESTREL_DTYPE_F64) {
      float v = (float)kn_read_double(&tmp, 0);
      kn_node_set_floats(n, "value", &v, 1);
    } else {
      int64_t v = kn_read_int(&tmp, 0);
      kn_node_set_ints(n, "value", &v, 1);
    }
    kn_node_set_int(n, "value_dtype", tmp.dtype);
    const kn_attr *set = kn_node_attr(n, "value");
    if (!set || (!set->ints && !set->floats) ||
        !kn_node_attr(n, "value_dtype"))
      st = kn_node_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY, n,
                        "out of memory copying attribute 'value'");
  }
  if (tmp.data_owned)
    free(tmp.data);
  return st;
}

static bool default_domain(const char *d) {
  return !d || !*d || strcmp(d, "ai.onnx") == 0;
}

/* Opsets 1 to 6 predate numpy broadcasting. Most ops are defined the same
 * at opset 7 (only the consumed_inputs hint went away), so such a model is
 * imported as opset 7, except for the ops and attributes whose meaning
 * changed: those are refused rather than run with today's semantics. */
static const char *legacy_difference(int opset, const char *op_type,
                                     const Onnx__NodeProto *np) {
  static const struct {
    const char *op;
    int same_from; /* first opset whose version equals the one at opset 7 */
  } changed[] = {
      {"Upsample", 7}, {"Reshape", 5}, {"Pad", 2}, {"Split", 2},
      {"Concat", 4},   {"Cast", 6},    {"Tile", 6},
  };
  for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++)
    if (strcmp(op_type, changed[i].op) == 0 && opset < changed[i].same_from)
      return "its definition changed since";
  for (size_t i = 0; i < np->n_attribute; i++) {
    const Onnx__AttributeProto *a = np->attribute[i];
    if (a && a->name && strcmp(a->name, "broadcast") == 0 && a->i != 0)
      return "legacy broadcasting (attribute 'broadcast') is not supported in";
  }
  return NULL;
}

static kestrel_status import_node(importer *im, const Onnx__NodeProto *np,
                                  size_t index) {
  char label[256];
  node_label(np, index, label, sizeof(label));
  const char *op_type = str_or_empty(np->op_type);
  if (!*op_type)
    return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                   "node '%s' has no op_type", label);
  if (!default_domain(np->domain))
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "unsupported op '%s' from domain '%s' at node '%s'",
                   op_type, np->domain, label);
  if (np->n_input > ONNX_MAX_NODE_ARITY || np->n_output > ONNX_MAX_NODE_ARITY)
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "node '%s' (%s) has %zu inputs and %zu outputs", label,
                   op_type, np->n_input, np->n_output);
  if (im->file_opset < 7) {
    const char *why = legacy_difference(im->file_opset, op_type, np);
    if (why)
      return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                     "unsupported op '%s' at node '%s': %s opset %d; "
                     "re-export with opset 7 or later",
                     op_type, label, why, im->file_opset);
  }
  if (strcmp(op_type, "Constant") == 0)
    return import_constant(im, np, label);
  kn_op op = kn_op_from_onnx(op_type);
  if (op == KN_OP_INVALID)
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "unsupported op '%s' at node '%s'", op_type, label);

  /* Trailing "" outputs are the same as leaving them out. */
  size_t num_outputs = np->n_output;
  while (num_outputs > 0 &&
         !(np->output[num_outputs - 1] && *np->output[num_outputs - 1]))
    num_outputs--;
  int *ins = malloc(sizeof(int) * (np->n_input + 1));
  int *outs = malloc(sizeof(int) * (num_outputs + 1));
  kestrel_status st = KESTREL_OK;
  if (!ins || !outs) {
    st = kn_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY,
                 "node '%s' (%s): out of memory", label, op_type);
    goto done;
  }
  for (size_t i = 0; i < np->n_input; i++) {
    const char *in = str_or_empty(np->input[i]);
    ins[i] = *in ? tensor_for_name(im, in) : -1;
    if (*in && ins[i] < 0) {
      st = kn_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY,
                   "node '%s' (%s): out of memory", label, op_type);
      goto done;
    }
  }
  for (size_t i = 0; i < num_outputs; i++) {
    const char *out = str_or_empty(np->output[i]);
    if (*out) {
      outs[i] = define_output(im, label, op_type, out, &st);
    } else {
      /* An output skipped in the middle still gets a private tensor so
       * that ops can rely on outputs[i] being valid. */
      char anon[300];
      snprintf(anon, sizeof(anon), "%s:output%zu", label, i);
      outs[i] = kn_graph_add_tensor(im->g, anon);
      if (outs[i] < 0)
        st = kn_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY,
                     "node '%s' (%s): out of memory", label, op_type);
    }
    if (outs[i] < 0)
      goto done;
  }
  int ni = kn_graph_add_node(im->g, op, label, op_type, ins,
                             (int)np->n_input, outs, (int)num_outputs);
  if (ni < 0) {
    st = kn_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY,
                 "node '%s' (%s): out of memory", label, op_type);
    goto done;
  }
  for (size_t i = 0; i < num_outputs; i++)
    im->g->tensors[outs[i]].producer = ni;

  for (size_t i = 0; i < np->n_attribute && st == KESTREL_OK; i++) {
    Onnx__AttributeProto *a = np->attribute[i];
    if (!a)
      continue;
    if (op == KN_OP_CONSTANT_OF_SHAPE && attr_type(a) ==
            ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR &&
        a->t && a->name && strcmp(a->name, "value") == 0)
      st = constant_of_shape_value(im, ni, a);
    else
      st = copy_attr(im, ni, a);
  }
done:
  free(ins);
  free(outs);
  return st;
}

/* ---- model ------------------------------------------------------------- */

static kestrel_status read_opset(importer *im, const Onnx__ModelProto *m) {
  int64_t version = -1;
  for (size_t i = 0; i < m->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = m->opset_import[i];
    if (o && default_domain(o->domain) && o->has_version)
      version = o->version;
  }
  if (version < 0) {
    /* Models made only of other domains' ops (training, ML): the first
     * such node is the better message. */
    const Onnx__GraphProto *gp = m->graph;
    for (size_t i = 0; gp && i < gp->n_node; i++) {
      const Onnx__NodeProto *np = gp->node[i];
      if (np && !default_domain(np->domain)) {
        char label[256];
        node_label(np, i, label, sizeof(label));
        return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                       "unsupported op '%s' from domain '%s' at node '%s'",
                       str_or_empty(np->op_type), np->domain, label);
      }
    }
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "model declares no opset for the default ONNX domain "
                   "(IR version %lld); re-export with opset 7 to 18",
                   (long long)(m->has_ir_version ? m->ir_version : 0));
  }
  if (version < 1 || version > 18)
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "model uses ONNX opset %lld; opsets 1 to 18 are supported",
                   (long long)version);
  im->file_opset = (int)version;
  im->g->opset = version < 7 ? 7 : (int)version;
  if (version < 7)
    kn_log(im->g, "onnx: opset %lld model imported as opset 7",
           (long long)version);
  return KESTREL_OK;
}

static kestrel_status import_graph(importer *im, const Onnx__GraphProto *gp) {
  kn_graph *g = im->g;
  if (gp->n_node > ONNX_MAX_ITEMS || gp->n_initializer > ONNX_MAX_ITEMS ||
      gp->n_input > ONNX_MAX_ITEMS || gp->n_output > ONNX_MAX_ITEMS)
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "graph too large: %zu nodes, %zu initializers, %zu inputs, "
                   "%zu outputs (limit %d each)",
                   gp->n_node, gp->n_initializer, gp->n_input, gp->n_output,
                   ONNX_MAX_ITEMS);
  if (gp->n_sparse_initializer > 0)
    return kn_fail(im->err, KESTREL_ERROR_UNSUPPORTED,
                   "graph has %zu sparse initializers, not supported",
                   gp->n_sparse_initializer);

  for (size_t i = 0; i < gp->n_initializer; i++) {
    Onnx__TensorProto *tp = gp->initializer[i];
    const char *name = tp ? str_or_empty(tp->name) : "";
    if (!*name)
      return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                     "initializer %zu has no name", i);
    if (table_find(&im->names, g, name) >= 0)
      return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                     "initializer '%s' is defined twice", name);
    int idx = tensor_for_name(im, name);
    if (idx < 0)
      return kn_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY,
                     "out of memory adding initializer '%s'", name);
    char what[300];
    snprintf(what, sizeof(what), "initializer '%s'", name);
    kestrel_status st = load_tensor(im, tp, &g->tensors[idx], what);
    if (st != KESTREL_OK)
      return st;
  }

  for (size_t i = 0; i < gp->n_input; i++) {
    if (!gp->input[i])
      continue;
    kestrel_status st = add_graph_input(im, gp->input[i]);
    if (st != KESTREL_OK)
      return st;
  }

  for (size_t i = 0; i < gp->n_node; i++) {
    if (!gp->node[i])
      continue;
    kestrel_status st = import_node(im, gp->node[i], i);
    if (st != KESTREL_OK)
      return st;
  }

  /* Every name a node reads must come from somewhere. */
  for (int ni = 0; ni < g->num_nodes; ni++) {
    const kn_node *n = &g->nodes[ni];
    for (int i = 0; i < n->num_inputs; i++)
      if (n->inputs[i] >= 0 && !tensor_defined(&g->tensors[n->inputs[i]]))
        return kn_node_fail(im->err, KESTREL_ERROR_MALFORMED, n,
                            "input '%s' is not a graph input, an initializer "
                            "or any node's output",
                            g->tensors[n->inputs[i]].name);
  }

  if (gp->n_output == 0)
    return kn_fail(im->err, KESTREL_ERROR_MALFORMED, "graph has no outputs");
  for (size_t i = 0; i < gp->n_output; i++) {
    const char *name = gp->output[i] ? str_or_empty(gp->output[i]->name) : "";
    int idx = *name ? table_find(&im->names, g, name) : -1;
    if (idx < 0 || !tensor_defined(&g->tensors[idx]))
      return kn_fail(im->err, KESTREL_ERROR_MALFORMED,
                     "graph output '%s' is not produced by any node", name);
    if (kn_graph_add_output(g, idx) != 0)
      return kn_fail(im->err, KESTREL_ERROR_OUT_OF_MEMORY,
                     "out of memory adding graph output '%s'", name);
    g->tensors[idx].is_output = true;
  }
  return KESTREL_OK;
}

kestrel_status kn_import_onnx(kn_graph *g, const uint8_t *data, size_t size,
                              kestrel_error *err) {
  if (!g || (!data && size))
    return kn_fail(err, KESTREL_ERROR_INVALID_ARGUMENT,
                   "kn_import_onnx: no graph or no data");
  if (size == 0)
    return kn_fail(err, KESTREL_ERROR_MALFORMED, "ONNX file is empty");
  if (size > ONNX_MAX_FILE_BYTES)
    return kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
                   "ONNX file is %zu bytes; protobuf limits a model to 2 GiB",
                   size);

  wire_walk w = {.base = data};
  if (!wire_check(&w, &onnx__model_proto__descriptor, data, size, 0))
    return kn_fail(err, KESTREL_ERROR_MALFORMED,
                   "not a valid ONNX ModelProto (%zu bytes): %s at byte "
                   "offset %zu",
                   size, w.why, w.bad_offset);
  if (w.estimate > ONNX_UNPACK_SLACK + ONNX_UNPACK_FACTOR * (uint64_t)size)
    return kn_fail(err, KESTREL_ERROR_MALFORMED,
                   "ONNX file of %zu bytes would take about %llu MiB to "
                   "unpack; refusing",
                   size, (unsigned long long)(w.estimate >> 20));

  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
  if (!m)
    return kn_fail(err, KESTREL_ERROR_MALFORMED,
                   "not a valid ONNX ModelProto (%zu bytes)", size);

  importer im = {.g = g, .err = err};
  g->format = KESTREL_FORMAT_ONNX;
  kestrel_status st = read_opset(&im, m);
  if (st == KESTREL_OK && !m->graph)
    st = kn_fail(err, KESTREL_ERROR_MALFORMED, "ONNX model has no graph");
  if (st == KESTREL_OK)
    st = import_graph(&im, m->graph);
  if (st == KESTREL_OK)
    kn_log(g,
           "onnx: IR version %lld, opset %d, producer '%s %s': %d nodes, "
           "%d tensors, %d inputs, %d outputs",
           (long long)(m->has_ir_version ? m->ir_version : 0), g->opset,
           str_or_empty(m->producer_name), str_or_empty(m->producer_version),
           g->num_nodes, g->num_tensors, g->num_inputs, g->num_outputs);
  free(im.names.slots);
  onnx__model_proto__free_unpacked(m, NULL);
  return st;
}
