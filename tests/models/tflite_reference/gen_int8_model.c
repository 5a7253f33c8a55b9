/* Writes a small full-integer INT8 TFLite model from scratch: no INT8
 * .tflite is available to the project from a source it may use, so the
 * test makes its own and runs it in both Kestrel and TFLite.
 *
 *   gen_int8_model OUT.tflite
 *
 * Graph (NHWC, int8 activations, per-channel int8 conv weights, int32
 * biases, laid out as TFLite's full-integer post-training quantization
 * does):
 *
 *   input f32 [1,32,32,3] -> QUANTIZE -> CONV_2D 3x3/2 SAME +RELU6 (8 ch)
 *   -> DEPTHWISE_CONV_2D 3x3/1 SAME +RELU -> ADD (with the conv output)
 *   -> MAX_POOL_2D 2x2/2 VALID -> MEAN over H,W -> FULLY_CONNECTED (4)
 *   -> SOFTMAX -> DEQUANTIZE -> output f32 [1,4]
 *   and, from the max pool: QUANTIZE (int8 -> int8 with another scale and
 *   zero point) -> DEQUANTIZE -> output f32 [1,8,8,8]
 *
 * Weights come from a fixed LCG, so the file is byte-identical every run.
 * The flatbuffer is written front to back: every uoffset points forward and
 * each vtable sits just before its table. Field ids and enum values come
 * from nn/src/import/tflite_schema.h.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import/tflite_schema.h"

/* ---- a forward-only flatbuffer writer ---------------------------------- */

static uint8_t *buf;
static size_t len, cap;

static void ensure(size_t n) {
  if (len + n <= cap)
    return;
  while (len + n > cap)
    cap = cap ? cap * 2 : 4096;
  buf = realloc(buf, cap);
  if (!buf) {
    fprintf(stderr, "gen_int8_model: out of memory\n");
    exit(1);
  }
}

static void put(const void *p, size_t n) {
  ensure(n);
  memcpy(buf + len, p, n);
  len += n;
}

static void pad_to(size_t a, size_t extra) {
  /* pads until (len + extra) is a multiple of a */
  while ((len + extra) % a) {
    ensure(1);
    buf[len++] = 0;
  }
}

/* Makes the uoffset field at `field` point at `target` (written later). */
static void link(size_t field, size_t target) {
  if (target <= field) {
    fprintf(stderr, "gen_int8_model: backward offset\n");
    exit(1);
  }
  uint32_t v = (uint32_t)(target - field);
  memcpy(buf + field, &v, 4);
}

#define MAX_FIELDS 16

typedef struct table {
  int n;
  int id[MAX_FIELDS];
  int size[MAX_FIELDS]; /* 1, 4 or 8; offsets are 4 */
  uint64_t value[MAX_FIELDS];
  size_t pos[MAX_FIELDS]; /* absolute position, after write_table */
} table;

static void scalar(table *t, int id, int size, uint64_t value) {
  t->id[t->n] = id;
  t->size[t->n] = size;
  t->value[t->n] = value;
  t->n++;
}

static void f32field(table *t, int id, float v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  scalar(t, id, 4, bits);
}

/* An offset field; returns its index for field_pos(). */
static int offset(table *t, int id) {
  scalar(t, id, 4, 0);
  return t->n - 1;
}

static size_t write_table(table *t) {
  int max_id = -1;
  for (int i = 0; i < t->n; i++)
    if (t->id[i] > max_id)
      max_id = t->id[i];
  /* Lay fields out widest first so each is naturally aligned. */
  uint16_t field_off[MAX_FIELDS];
  size_t cursor = 4;
  for (int size = 8; size >= 1; size /= 2)
    for (int i = 0; i < t->n; i++)
      if (t->size[i] == size) {
        cursor = (cursor + (size_t)size - 1) / (size_t)size * (size_t)size;
        field_off[i] = (uint16_t)cursor;
        cursor += (size_t)size;
      }
  size_t table_size = (cursor + 3) / 4 * 4;
  size_t vt_size = 4 + 2 * (size_t)(max_id + 1);
  pad_to(8, vt_size); /* table starts 8-aligned, right after its vtable */
  size_t vt = len;
  uint16_t head[2] = {(uint16_t)vt_size, (uint16_t)table_size};
  put(head, 4);
  for (int id = 0; id <= max_id; id++) {
    uint16_t off = 0;
    for (int i = 0; i < t->n; i++)
      if (t->id[i] == id)
        off = field_off[i];
    put(&off, 2);
  }
  size_t pos = len;
  ensure(table_size);
  memset(buf + pos, 0, table_size);
  int32_t soff = (int32_t)(pos - vt);
  memcpy(buf + pos, &soff, 4);
  for (int i = 0; i < t->n; i++) {
    memcpy(buf + pos + field_off[i], &t->value[i], (size_t)t->size[i]);
    t->pos[i] = pos + field_off[i];
  }
  len += table_size;
  return pos;
}

/* A vector: u32 count, then the elements aligned to elem_align. */
static size_t write_vector(const void *elems, uint32_t count, size_t esize,
                           size_t elem_align) {
  pad_to(elem_align < 4 ? 4 : elem_align, 4);
  size_t pos = len;
  put(&count, 4);
  put(elems, (size_t)count * esize);
  return pos;
}

static size_t write_i32s(const int32_t *v, uint32_t n) {
  return write_vector(v, n, 4, 4);
}

static size_t write_string(const char *s) {
  uint32_t n = (uint32_t)strlen(s);
  pad_to(4, 0);
  size_t pos = len;
  put(&n, 4);
  put(s, n + 1);
  return pos;
}

/* A vector of n table offsets, to be linked as the tables are written. */
static size_t write_offsets(uint32_t n) {
  pad_to(4, 0);
  size_t pos = len;
  put(&n, 4);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t z = 0;
    put(&z, 4);
  }
  return pos;
}

/* ---- the model ---------------------------------------------------------- */

static uint32_t lcg_state = 12345u;
static float uniform(float lo, float hi) {
  lcg_state = lcg_state * 1664525u + 1013904223u;
  return lo + (hi - lo) * (float)(lcg_state >> 8) / 16777216.0f;
}

static int8_t q8(float v, float scale) {
  float r = roundf(v / scale);
  return (int8_t)(r < -127 ? -127 : (r > 127 ? 127 : r));
}

#define MAX_Q 8

typedef struct tensor {
  const char *name;
  int type;
  int ndim;
  int32_t dims[4];
  int buffer;
  int nq; /* 0: not quantized */
  float scale[MAX_Q];
  int64_t zp[MAX_Q];
  int qdim;
} tensor;

/* Sparsity of a constant (TFLite's TACO-style format), index vectors as
 * uint8. Levels follow the traversal order. */
#define MAX_LEVELS 4
typedef struct sparse_desc {
  int num_levels;
  int32_t order[MAX_LEVELS];
  int num_blocks;
  int32_t block_map[2];
  bool csr[MAX_LEVELS];
  int32_t dense_size[MAX_LEVELS];
  uint8_t segments[MAX_LEVELS][64];
  int num_segments[MAX_LEVELS];
  uint8_t indices[MAX_LEVELS][64];
  int num_indices[MAX_LEVELS];
} sparse_desc;

typedef struct buffer_data {
  const void *data;
  uint32_t size;
} buffer_data;

typedef struct op {
  int opcode;
  int nin, nout;
  int32_t in[4], out[1];
  int options_type;
  table options;
  const void *custom_options; /* custom ops: raw bytes */
  uint32_t custom_options_size;
} op;

typedef struct model {
  const char *description;
  const tensor *t;
  int nt;
  const buffer_data *buffers;
  int nb;
  op *ops;
  int nops;
  const int32_t (*opcodes)[2]; /* builtin code, version; one per op */
  int32_t inputs[4], outputs[4];
  int ninputs, noutputs;
  const char *const *custom_codes; /* per opcode, NULL for builtins */
  const sparse_desc *const *sparse; /* per tensor, NULL when dense */
} model;

static size_t write_uint8_index_vector(const uint8_t *v, int n) {
  table iv = {0};
  int f = offset(&iv, TFL_INDEX_VECTOR_VALUES);
  size_t pos = write_table(&iv);
  link(iv.pos[f], write_vector(v, (uint32_t)n, 1, 4));
  return pos;
}

static size_t write_sparsity(const sparse_desc *sd) {
  table sp = {0};
  int f_order = offset(&sp, TFL_SPARSITY_TRAVERSAL_ORDER);
  int f_map = sd->num_blocks ? offset(&sp, TFL_SPARSITY_BLOCK_MAP) : -1;
  int f_meta = offset(&sp, TFL_SPARSITY_DIM_METADATA);
  size_t pos = write_table(&sp);
  link(sp.pos[f_order], write_i32s(sd->order, (uint32_t)sd->num_levels));
  if (f_map >= 0)
    link(sp.pos[f_map], write_i32s(sd->block_map, (uint32_t)sd->num_blocks));
  size_t metas = write_offsets((uint32_t)sd->num_levels);
  link(sp.pos[f_meta], metas);
  for (int l = 0; l < sd->num_levels; l++) {
    table md = {0};
    scalar(&md, TFL_DIMMETA_FORMAT, 1,
           sd->csr[l] ? TFL_DIM_SPARSE_CSR : TFL_DIM_DENSE);
    int f_seg = -1, f_idx = -1;
    if (sd->csr[l]) {
      scalar(&md, TFL_DIMMETA_ARRAY_SEGMENTS_TYPE, 1, TFL_SPARSE_INDEX_UINT8);
      f_seg = offset(&md, TFL_DIMMETA_ARRAY_SEGMENTS);
      scalar(&md, TFL_DIMMETA_ARRAY_INDICES_TYPE, 1, TFL_SPARSE_INDEX_UINT8);
      f_idx = offset(&md, TFL_DIMMETA_ARRAY_INDICES);
    } else {
      scalar(&md, TFL_DIMMETA_DENSE_SIZE, 4, (uint64_t)sd->dense_size[l]);
    }
    link(metas + 4 + 4 * (size_t)l, write_table(&md));
    if (sd->csr[l]) {
      link(md.pos[f_seg],
           write_uint8_index_vector(sd->segments[l], sd->num_segments[l]));
      link(md.pos[f_idx],
           write_uint8_index_vector(sd->indices[l], sd->num_indices[l]));
    }
  }
  return pos;
}

/* Lays the whole model out into buf. */
static void write_model(const model *m) {
  /* root offset, file identifier, Model */
  uint32_t zero = 0;
  put(&zero, 4);
  put(TFL_FILE_IDENTIFIER, 4);
  table root = {0};
  scalar(&root, TFL_MODEL_VERSION, 4, TFL_SCHEMA_VERSION);
  int m_codes = offset(&root, TFL_MODEL_OPERATOR_CODES);
  int m_subgraphs = offset(&root, TFL_MODEL_SUBGRAPHS);
  int m_desc = offset(&root, TFL_MODEL_DESCRIPTION);
  int m_buffers = offset(&root, TFL_MODEL_BUFFERS);
  size_t model_pos = write_table(&root);
  link(0, model_pos);

  link(root.pos[m_desc], write_string(m->description));

  size_t codes = write_offsets(m->nops);
  link(root.pos[m_codes], codes);
  for (int i = 0; i < m->nops; i++) {
    table oc = {0};
    scalar(&oc, TFL_OPCODE_DEPRECATED_BUILTIN_CODE, 1, (uint64_t)m->opcodes[i][0]);
    scalar(&oc, TFL_OPCODE_VERSION, 4, (uint64_t)m->opcodes[i][1]);
    scalar(&oc, TFL_OPCODE_BUILTIN_CODE, 4, (uint64_t)m->opcodes[i][0]);
    const char *custom = m->custom_codes ? m->custom_codes[i] : NULL;
    int f_custom = custom ? offset(&oc, TFL_OPCODE_CUSTOM_CODE) : -1;
    link(codes + 4 + 4 * (size_t)i, write_table(&oc));
    if (custom)
      link(oc.pos[f_custom], write_string(custom));
  }

  size_t subgraphs = write_offsets(1);
  link(root.pos[m_subgraphs], subgraphs);
  table sg = {0};
  int s_tensors = offset(&sg, TFL_SUBGRAPH_TENSORS);
  int s_inputs = offset(&sg, TFL_SUBGRAPH_INPUTS);
  int s_outputs = offset(&sg, TFL_SUBGRAPH_OUTPUTS);
  int s_ops = offset(&sg, TFL_SUBGRAPH_OPERATORS);
  int s_name = offset(&sg, TFL_SUBGRAPH_NAME);
  link(subgraphs + 4, write_table(&sg));
  link(sg.pos[s_name], write_string("main"));
  link(sg.pos[s_inputs], write_i32s(m->inputs, (uint32_t)m->ninputs));
  link(sg.pos[s_outputs], write_i32s(m->outputs, (uint32_t)m->noutputs));

  size_t tensors = write_offsets(m->nt);
  link(sg.pos[s_tensors], tensors);
  for (int i = 0; i < m->nt; i++) {
    table tt = {0};
    int f_shape = offset(&tt, TFL_TENSOR_SHAPE);
    scalar(&tt, TFL_TENSOR_TYPE, 1, (uint64_t)m->t[i].type);
    scalar(&tt, TFL_TENSOR_BUFFER, 4, (uint64_t)m->t[i].buffer);
    int f_name = offset(&tt, TFL_TENSOR_NAME);
    int f_quant = m->t[i].nq ? offset(&tt, TFL_TENSOR_QUANTIZATION) : -1;
    const sparse_desc *sd = m->sparse ? m->sparse[i] : NULL;
    int f_sparse = sd ? offset(&tt, TFL_TENSOR_SPARSITY) : -1;
    link(tensors + 4 + 4 * (size_t)i, write_table(&tt));
    if (sd)
      link(tt.pos[f_sparse], write_sparsity(sd));
    link(tt.pos[f_shape], write_i32s(m->t[i].dims, (uint32_t)m->t[i].ndim));
    link(tt.pos[f_name], write_string(m->t[i].name));
    if (f_quant >= 0) {
      table q = {0};
      int f_scale = offset(&q, TFL_QUANT_SCALE);
      int f_zp = offset(&q, TFL_QUANT_ZERO_POINT);
      scalar(&q, TFL_QUANT_QUANTIZED_DIMENSION, 4, (uint64_t)m->t[i].qdim);
      link(tt.pos[f_quant], write_table(&q));
      link(q.pos[f_scale], write_vector(m->t[i].scale, (uint32_t)m->t[i].nq, 4, 4));
      link(q.pos[f_zp], write_vector(m->t[i].zp, (uint32_t)m->t[i].nq, 8, 8));
    }
  }

  size_t opvec = write_offsets(m->nops);
  link(sg.pos[s_ops], opvec);
  for (int i = 0; i < m->nops; i++) {
    table ot = {0};
    scalar(&ot, TFL_OP_OPCODE_INDEX, 4, (uint64_t)m->ops[i].opcode);
    int f_in = offset(&ot, TFL_OP_INPUTS);
    int f_out = offset(&ot, TFL_OP_OUTPUTS);
    int f_opt = -1;
    if (m->ops[i].options_type != TFL_OPTIONS_NONE) {
      scalar(&ot, TFL_OP_BUILTIN_OPTIONS_TYPE, 1,
             (uint64_t)m->ops[i].options_type);
      f_opt = offset(&ot, TFL_OP_BUILTIN_OPTIONS);
    }
    int f_custom = m->ops[i].custom_options
                       ? offset(&ot, TFL_OP_CUSTOM_OPTIONS)
                       : -1;
    link(opvec + 4 + 4 * (size_t)i, write_table(&ot));
    if (f_custom >= 0)
      link(ot.pos[f_custom], write_vector(m->ops[i].custom_options,
                                          m->ops[i].custom_options_size, 1,
                                          4));
    link(ot.pos[f_in], write_i32s(m->ops[i].in, (uint32_t)m->ops[i].nin));
    link(ot.pos[f_out], write_i32s(m->ops[i].out, (uint32_t)m->ops[i].nout));
    if (f_opt >= 0)
      link(ot.pos[f_opt], write_table(&m->ops[i].options));
  }

  size_t bufvec = write_offsets(m->nb);
  link(root.pos[m_buffers], bufvec);
  for (int i = 0; i < m->nb; i++) {
    table bt = {0};
    int f_data = m->buffers[i].size ? offset(&bt, TFL_BUFFER_DATA) : -1;
    link(bufvec + 4 + 4 * (size_t)i, write_table(&bt));
    if (f_data >= 0) /* TFLite asks for 16-byte aligned buffer data */
      link(bt.pos[f_data],
           write_vector(m->buffers[i].data, m->buffers[i].size, 1, 16));
  }

}

static int save(const char *path) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
    fprintf(stderr, "gen_int8_model: cannot write %s\n", path);
    return 1;
  }
  free(buf);
  return 0;
}

enum { NUM_T = 19, NUM_B = 8, NUM_OPS = 11 };

/* unsupported: the ADD becomes SQUARED_DIFFERENCE, an op Kestrel does not
 * map, for the test of the importer's error message. */
static void build_int8(bool unsupported) {
  const float s_in = 1.0f / 128, s_conv = 6.0f / 255, s_dw = 4.0f / 255;
  const float s_add = 10.0f / 255, s_fc = 12.0f / 255;

  /* Weights: float values quantized per output channel, zero point 0. */
  static int8_t conv_w[8 * 3 * 3 * 3], dw_w[3 * 3 * 8], fc_w[4 * 8];
  static int32_t conv_b[8], dw_b[8], fc_b[4];
  static const int32_t mean_axes[2] = {1, 2};
  float conv_ws[8], dw_ws[8], fc_ws;
  for (int o = 0; o < 8; o++) {
    float w[27], mx = 1e-6f;
    for (int i = 0; i < 27; i++) {
      w[i] = uniform(-0.5f, 0.5f);
      mx = fmaxf(mx, fabsf(w[i]));
    }
    conv_ws[o] = mx / 127;
    for (int i = 0; i < 27; i++)
      conv_w[o * 27 + i] = q8(w[i], conv_ws[o]);
    conv_b[o] = (int32_t)lroundf(uniform(-0.2f, 0.6f) / (s_in * conv_ws[o]));
  }
  {
    float w[72], mx[8] = {0};
    for (int i = 0; i < 72; i++) {
      w[i] = uniform(-0.6f, 0.6f);
      mx[i % 8] = fmaxf(mx[i % 8], fabsf(w[i]));
    }
    for (int c = 0; c < 8; c++)
      dw_ws[c] = fmaxf(mx[c], 1e-6f) / 127;
    for (int i = 0; i < 72; i++)
      dw_w[i] = q8(w[i], dw_ws[i % 8]);
    for (int c = 0; c < 8; c++)
      dw_b[c] = (int32_t)lroundf(uniform(-0.2f, 0.4f) / (s_conv * dw_ws[c]));
  }
  {
    float w[32], mx = 1e-6f;
    for (int i = 0; i < 32; i++) {
      w[i] = uniform(-0.3f, 0.3f);
      mx = fmaxf(mx, fabsf(w[i]));
    }
    fc_ws = mx / 127;
    for (int i = 0; i < 32; i++)
      fc_w[i] = q8(w[i], fc_ws);
    for (int o = 0; o < 4; o++)
      fc_b[o] = (int32_t)lroundf(uniform(-1.0f, 1.0f) / (s_add * fc_ws));
  }
  buffer_data buffers[NUM_B] = {
      {NULL, 0},
      {conv_w, sizeof(conv_w)},
      {conv_b, sizeof(conv_b)},
      {dw_w, sizeof(dw_w)},
      {dw_b, sizeof(dw_b)},
      {mean_axes, sizeof(mean_axes)},
      {fc_w, sizeof(fc_w)},
      {fc_b, sizeof(fc_b)},
  };

  tensor t[NUM_T] = {
      {"input", TFL_TYPE_FLOAT32, 4, {1, 32, 32, 3}, 0, 0, {0}, {0}, 0},
      {"input_int8", TFL_TYPE_INT8, 4, {1, 32, 32, 3}, 0, 1, {s_in}, {0}, 0},
      {"conv/weights", TFL_TYPE_INT8, 4, {8, 3, 3, 3}, 1, 8, {0}, {0}, 0},
      {"conv/bias", TFL_TYPE_INT32, 1, {8}, 2, 8, {0}, {0}, 0},
      {"conv/relu6", TFL_TYPE_INT8, 4, {1, 16, 16, 8}, 0, 1, {s_conv}, {-128},
       0},
      {"dw/weights", TFL_TYPE_INT8, 4, {1, 3, 3, 8}, 3, 8, {0}, {0}, 3},
      {"dw/bias", TFL_TYPE_INT32, 1, {8}, 4, 8, {0}, {0}, 0},
      {"dw/relu", TFL_TYPE_INT8, 4, {1, 16, 16, 8}, 0, 1, {s_dw}, {-128}, 0},
      {"add", TFL_TYPE_INT8, 4, {1, 16, 16, 8}, 0, 1, {s_add}, {-128}, 0},
      {"maxpool", TFL_TYPE_INT8, 4, {1, 8, 8, 8}, 0, 1, {s_add}, {-128}, 0},
      {"mean/axes", TFL_TYPE_INT32, 1, {2}, 5, 0, {0}, {0}, 0},
      {"mean", TFL_TYPE_INT8, 2, {1, 8}, 0, 1, {s_add}, {-128}, 0},
      {"fc/weights", TFL_TYPE_INT8, 2, {4, 8}, 6, 1, {0}, {0}, 0},
      {"fc/bias", TFL_TYPE_INT32, 1, {4}, 7, 1, {0}, {0}, 0},
      {"fc", TFL_TYPE_INT8, 2, {1, 4}, 0, 1, {s_fc}, {0}, 0},
      {"softmax", TFL_TYPE_INT8, 2, {1, 4}, 0, 1, {1.0f / 256}, {-128}, 0},
      {"probabilities", TFL_TYPE_FLOAT32, 2, {1, 4}, 0, 0, {0}, {0}, 0},
      {"requantized", TFL_TYPE_INT8, 4, {1, 8, 8, 8}, 0, 1, {s_add * 1.7f},
       {-100}, 0},
      {"requantized_real", TFL_TYPE_FLOAT32, 4, {1, 8, 8, 8}, 0, 0, {0}, {0},
       0},
  };
  for (int c = 0; c < 8; c++) {
    t[2].scale[c] = conv_ws[c];
    t[3].scale[c] = s_in * conv_ws[c];
    t[5].scale[c] = dw_ws[c];
    t[6].scale[c] = s_conv * dw_ws[c];
  }
  t[12].scale[0] = fc_ws;
  t[13].scale[0] = s_add * fc_ws;

  /* opcode table: builtin code, version */
  static int32_t opcodes[NUM_OPS][2] = {
      {TFL_BUILTIN_QUANTIZE, 2},        {TFL_BUILTIN_CONV_2D, 3},
      {TFL_BUILTIN_DEPTHWISE_CONV_2D, 3}, {TFL_BUILTIN_ADD, 2},
      {TFL_BUILTIN_MAX_POOL_2D, 2},     {TFL_BUILTIN_MEAN, 2},
      {TFL_BUILTIN_FULLY_CONNECTED, 4}, {TFL_BUILTIN_SOFTMAX, 2},
      {TFL_BUILTIN_DEQUANTIZE, 2},
      {TFL_BUILTIN_QUANTIZE, 2},        {TFL_BUILTIN_DEQUANTIZE, 2},
  };
  op ops[NUM_OPS];
  memset(ops, 0, sizeof(ops));
  ops[0] = (op){0, 1, 1, {0}, {1}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[1] = (op){1, 3, 1, {1, 2, 3}, {4}, TFL_OPTIONS_CONV2D, {0}, NULL, 0};
  scalar(&ops[1].options, TFL_CONV2D_PADDING, 1, TFL_PADDING_SAME);
  scalar(&ops[1].options, TFL_CONV2D_STRIDE_W, 4, 2);
  scalar(&ops[1].options, TFL_CONV2D_STRIDE_H, 4, 2);
  scalar(&ops[1].options, TFL_CONV2D_FUSED_ACTIVATION, 1, TFL_ACT_RELU6);
  ops[2] = (op){2, 3, 1, {4, 5, 6}, {7}, TFL_OPTIONS_DEPTHWISE_CONV2D, {0}, NULL, 0};
  scalar(&ops[2].options, TFL_DWCONV_PADDING, 1, TFL_PADDING_SAME);
  scalar(&ops[2].options, TFL_DWCONV_STRIDE_W, 4, 1);
  scalar(&ops[2].options, TFL_DWCONV_STRIDE_H, 4, 1);
  scalar(&ops[2].options, TFL_DWCONV_DEPTH_MULTIPLIER, 4, 1);
  scalar(&ops[2].options, TFL_DWCONV_FUSED_ACTIVATION, 1, TFL_ACT_RELU);
  ops[3] = (op){3, 2, 1, {7, 4}, {8}, TFL_OPTIONS_ADD, {0}, NULL, 0};
  scalar(&ops[3].options, TFL_ARITH_FUSED_ACTIVATION, 1, TFL_ACT_NONE);
  ops[4] = (op){4, 1, 1, {8}, {9}, TFL_OPTIONS_POOL2D, {0}, NULL, 0};
  scalar(&ops[4].options, TFL_POOL_PADDING, 1, TFL_PADDING_VALID);
  scalar(&ops[4].options, TFL_POOL_STRIDE_W, 4, 2);
  scalar(&ops[4].options, TFL_POOL_STRIDE_H, 4, 2);
  scalar(&ops[4].options, TFL_POOL_FILTER_W, 4, 2);
  scalar(&ops[4].options, TFL_POOL_FILTER_H, 4, 2);
  ops[5] = (op){5, 2, 1, {9, 10}, {11}, TFL_OPTIONS_REDUCER, {0}, NULL, 0};
  scalar(&ops[5].options, TFL_REDUCER_KEEP_DIMS, 1, 0);
  ops[6] = (op){6, 3, 1, {11, 12, 13}, {14}, TFL_OPTIONS_FULLY_CONNECTED, {0}, NULL, 0};
  scalar(&ops[6].options, TFL_FC_FUSED_ACTIVATION, 1, TFL_ACT_NONE);
  ops[7] = (op){7, 1, 1, {14}, {15}, TFL_OPTIONS_SOFTMAX, {0}, NULL, 0};
  f32field(&ops[7].options, TFL_SOFTMAX_BETA, 1.0f);
  ops[8] = (op){8, 1, 1, {15}, {16}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  /* int8 -> int8 QUANTIZE (a requantization), seen as real values */
  ops[9] = (op){9, 1, 1, {9}, {17}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[10] = (op){10, 1, 1, {17}, {18}, TFL_OPTIONS_NONE, {0}, NULL, 0};

  if (unsupported)
    opcodes[3][0] = 99; /* SQUARED_DIFFERENCE */
  model m = {"kestrel int8 test model", t, NUM_T, buffers, NUM_B, ops, NUM_OPS,
             opcodes, {0}, {16, 18}, 1, 2, NULL, NULL};
  write_model(&m);
}

static void fill(float *w, int n, float lo, float hi) {
  for (int i = 0; i < n; i++)
    w[i] = uniform(lo, hi);
}

/* Float model exercising the ops BlazeFace does not use. */
static void build_float_ops(void) {
  static float conv_w[6 * 3 * 3 * 3], conv_b[6], tconv_w[5 * 3 * 3 * 6],
      tconv_b[5], alpha[5], fc_w[3 * 5], fc_b[3];
  static const int32_t tconv_shape[4] = {1, 16, 16, 5}, bilinear_size[2] = {12, 12},
                       nearest_size[2] = {24, 24}, mean_axes[2] = {1, 2},
                       paddings[8] = {0, 0, 1, 2, 0, 1, 0, 0};
  fill(conv_w, 162, -0.5f, 0.5f);
  fill(conv_b, 6, -0.2f, 0.2f);
  fill(tconv_w, 270, -0.5f, 0.5f);
  fill(tconv_b, 5, -0.2f, 0.2f);
  fill(alpha, 5, 0.05f, 0.5f);
  fill(fc_w, 15, -2.0f, 2.0f);
  fill(fc_b, 3, -0.5f, 0.5f);
  const buffer_data buffers[] = {
      {NULL, 0},
      {conv_w, sizeof(conv_w)},
      {conv_b, sizeof(conv_b)},
      {tconv_shape, sizeof(tconv_shape)},
      {tconv_w, sizeof(tconv_w)},
      {tconv_b, sizeof(tconv_b)},
      {alpha, sizeof(alpha)},
      {bilinear_size, sizeof(bilinear_size)},
      {nearest_size, sizeof(nearest_size)},
      {paddings, sizeof(paddings)},
      {mean_axes, sizeof(mean_axes)},
      {fc_w, sizeof(fc_w)},
      {fc_b, sizeof(fc_b)},
  };
  enum { F = TFL_TYPE_FLOAT32, I = TFL_TYPE_INT32 };
  const tensor t[] = {
      {"input", F, 4, {1, 8, 8, 3}, 0, 0, {0}, {0}, 0},
      {"conv/weights", F, 4, {6, 3, 3, 3}, 1, 0, {0}, {0}, 0},
      {"conv/bias", F, 1, {6}, 2, 0, {0}, {0}, 0},
      {"conv", F, 4, {1, 8, 8, 6}, 0, 0, {0}, {0}, 0},
      {"hard_swish", F, 4, {1, 8, 8, 6}, 0, 0, {0}, {0}, 0},
      {"tconv/output_shape", I, 1, {4}, 3, 0, {0}, {0}, 0},
      {"tconv/weights", F, 4, {5, 3, 3, 6}, 4, 0, {0}, {0}, 0},
      {"tconv/bias", F, 1, {5}, 5, 0, {0}, {0}, 0},
      {"tconv", F, 4, {1, 16, 16, 5}, 0, 0, {0}, {0}, 0},
      {"prelu/alpha", F, 3, {1, 1, 5}, 6, 0, {0}, {0}, 0},
      {"prelu", F, 4, {1, 16, 16, 5}, 0, 0, {0}, {0}, 0},
      {"avgpool", F, 4, {1, 8, 8, 5}, 0, 0, {0}, {0}, 0},
      {"bilinear/size", I, 1, {2}, 7, 0, {0}, {0}, 0},
      {"bilinear", F, 4, {1, 12, 12, 5}, 0, 0, {0}, {0}, 0},
      {"nearest/size", I, 1, {2}, 8, 0, {0}, {0}, 0},
      {"nearest", F, 4, {1, 24, 24, 5}, 0, 0, {0}, {0}, 0},
      {"pad/paddings", I, 2, {4, 2}, 9, 0, {0}, {0}, 0},
      {"pad", F, 4, {1, 27, 25, 5}, 0, 0, {0}, {0}, 0},
      {"logistic", F, 4, {1, 27, 25, 5}, 0, 0, {0}, {0}, 0},
      {"mean/axes", I, 1, {2}, 10, 0, {0}, {0}, 0},
      {"mean", F, 4, {1, 1, 1, 5}, 0, 0, {0}, {0}, 0},
      {"fc/weights", F, 2, {3, 5}, 11, 0, {0}, {0}, 0},
      {"fc/bias", F, 1, {3}, 12, 0, {0}, {0}, 0},
      {"fc", F, 4, {1, 1, 1, 3}, 0, 0, {0}, {0}, 0},
      {"softmax", F, 4, {1, 1, 1, 3}, 0, 0, {0}, {0}, 0},
      {"relu6", F, 4, {1, 16, 16, 5}, 0, 0, {0}, {0}, 0},
      {"concat", F, 4, {1, 8, 8, 10}, 0, 0, {0}, {0}, 0},
      {"square", F, 4, {1, 27, 25, 5}, 0, 0, {0}, {0}, 0},
  };
  static const int32_t opcodes[][2] = {
      {TFL_BUILTIN_CONV_2D, 2},          {TFL_BUILTIN_HARD_SWISH, 1},
      {TFL_BUILTIN_TRANSPOSE_CONV, 3},   {TFL_BUILTIN_PRELU, 1},
      {TFL_BUILTIN_RELU6, 1},            {TFL_BUILTIN_AVERAGE_POOL_2D, 1},
      {TFL_BUILTIN_RESIZE_BILINEAR, 3},  {TFL_BUILTIN_RESIZE_NEAREST_NEIGHBOR, 1},
      {TFL_BUILTIN_PAD, 1},              {TFL_BUILTIN_LOGISTIC, 1},
      {TFL_BUILTIN_MUL, 1},              {TFL_BUILTIN_MEAN, 1},
      {TFL_BUILTIN_FULLY_CONNECTED, 5},  {TFL_BUILTIN_SOFTMAX, 1},
      {TFL_BUILTIN_CONCATENATION, 1},
  };
  enum { NOPS = 15 };
  static op ops[NOPS];
  memset(ops, 0, sizeof(ops));
  ops[0] = (op){0, 3, 1, {0, 1, 2}, {3}, TFL_OPTIONS_CONV2D, {0}, NULL, 0};
  scalar(&ops[0].options, TFL_CONV2D_PADDING, 1, TFL_PADDING_SAME);
  scalar(&ops[0].options, TFL_CONV2D_STRIDE_W, 4, 1);
  scalar(&ops[0].options, TFL_CONV2D_STRIDE_H, 4, 1);
  scalar(&ops[0].options, TFL_CONV2D_DILATION_W, 4, 2);
  scalar(&ops[0].options, TFL_CONV2D_DILATION_H, 4, 2);
  ops[1] = (op){1, 1, 1, {3}, {4}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[2] = (op){2, 4, 1, {5, 6, 4, 7}, {8}, TFL_OPTIONS_TRANSPOSE_CONV, {0}, NULL, 0};
  scalar(&ops[2].options, TFL_TCONV_PADDING, 1, TFL_PADDING_SAME);
  scalar(&ops[2].options, TFL_TCONV_STRIDE_W, 4, 2);
  scalar(&ops[2].options, TFL_TCONV_STRIDE_H, 4, 2);
  ops[3] = (op){3, 2, 1, {8, 9}, {10}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[4] = (op){4, 1, 1, {10}, {25}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[5] = (op){5, 1, 1, {10}, {11}, TFL_OPTIONS_POOL2D, {0}, NULL, 0};
  scalar(&ops[5].options, TFL_POOL_PADDING, 1, TFL_PADDING_SAME);
  scalar(&ops[5].options, TFL_POOL_STRIDE_W, 4, 2);
  scalar(&ops[5].options, TFL_POOL_STRIDE_H, 4, 2);
  scalar(&ops[5].options, TFL_POOL_FILTER_W, 4, 3);
  scalar(&ops[5].options, TFL_POOL_FILTER_H, 4, 3);
  ops[6] = (op){6, 2, 1, {11, 12}, {13}, TFL_OPTIONS_RESIZE_BILINEAR, {0}, NULL, 0};
  scalar(&ops[6].options, TFL_RESIZE_BILINEAR_HALF_PIXEL_CENTERS, 1, 1);
  ops[7] = (op){7, 2, 1, {13, 14}, {15}, TFL_OPTIONS_RESIZE_NEAREST_NEIGHBOR,
                {0}, NULL, 0};
  scalar(&ops[7].options, TFL_RESIZE_NEAREST_ALIGN_CORNERS, 1, 1);
  ops[8] = (op){8, 2, 1, {15, 16}, {17}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[9] = (op){9, 1, 1, {17}, {18}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[10] = (op){10, 2, 1, {18, 18}, {27}, TFL_OPTIONS_MUL, {0}, NULL, 0};
  scalar(&ops[10].options, TFL_ARITH_FUSED_ACTIVATION, 1, TFL_ACT_NONE);
  ops[11] = (op){11, 2, 1, {27, 19}, {20}, TFL_OPTIONS_REDUCER, {0}, NULL, 0};
  scalar(&ops[11].options, TFL_REDUCER_KEEP_DIMS, 1, 1);
  ops[12] = (op){12, 3, 1, {20, 21, 22}, {23}, TFL_OPTIONS_FULLY_CONNECTED, {0}, NULL, 0};
  scalar(&ops[12].options, TFL_FC_KEEP_NUM_DIMS, 1, 1);
  ops[13] = (op){13, 1, 1, {23}, {24}, TFL_OPTIONS_SOFTMAX, {0}, NULL, 0};
  f32field(&ops[13].options, TFL_SOFTMAX_BETA, 0.5f);
  ops[14] = (op){14, 2, 1, {11, 11}, {26}, TFL_OPTIONS_CONCATENATION, {0}, NULL, 0};
  scalar(&ops[14].options, TFL_CONCAT_AXIS, 4, (uint64_t)(uint32_t)-1);
  scalar(&ops[14].options, TFL_CONCAT_FUSED_ACTIVATION, 1, TFL_ACT_NONE);
  model m = {"kestrel float ops test model", t, (int)(sizeof(t) / sizeof(t[0])),
             buffers, (int)(sizeof(buffers) / sizeof(buffers[0])), ops, NOPS,
             opcodes, {0}, {24, 25, 26}, 1, 3, NULL, NULL};
  write_model(&m);
}

/* More float ops: the other resize coordinate modes, VALID conv with
 * RELU_N1_TO_1, SAME max pooling, SUB with a fused RELU, LEAKY_RELU, TANH,
 * PADV2 with a pad value, and FULLY_CONNECTED flattening a 4-D input. */
static void build_float_ops2(void) {
  static float conv_w[4 * 3 * 3 * 3], conv_b[4], sub_c[4], fc_w[2 * 4], fc_b[2];
  static const float pad_value = -0.5f;
  static const int32_t align_size[2] = {7, 5}, asym_size[2] = {9, 9},
                       nearest_size[2] = {5, 7}, half_size[2] = {8, 8},
                       paddings[8] = {0, 0, 1, 1, 2, 0, 0, 0};
  fill(conv_w, 108, -0.6f, 0.6f);
  fill(conv_b, 4, -0.3f, 0.3f);
  fill(sub_c, 4, -0.5f, 0.5f);
  fill(fc_w, 8, -1.0f, 1.0f);
  fill(fc_b, 2, -0.5f, 0.5f);
  const buffer_data buffers[] = {
      {NULL, 0},
      {conv_w, sizeof(conv_w)},
      {conv_b, sizeof(conv_b)},
      {align_size, sizeof(align_size)},
      {asym_size, sizeof(asym_size)},
      {nearest_size, sizeof(nearest_size)},
      {half_size, sizeof(half_size)},
      {sub_c, sizeof(sub_c)},
      {paddings, sizeof(paddings)},
      {&pad_value, sizeof(pad_value)},
      {fc_w, sizeof(fc_w)},
      {fc_b, sizeof(fc_b)},
  };
  enum { F = TFL_TYPE_FLOAT32, I = TFL_TYPE_INT32 };
  const tensor t[] = {
      {"input", F, 4, {1, 8, 8, 3}, 0, 0, {0}, {0}, 0},
      {"conv/weights", F, 4, {4, 3, 3, 3}, 1, 0, {0}, {0}, 0},
      {"conv/bias", F, 1, {4}, 2, 0, {0}, {0}, 0},
      {"conv", F, 4, {1, 6, 6, 4}, 0, 0, {0}, {0}, 0},
      {"maxpool", F, 4, {1, 3, 3, 4}, 0, 0, {0}, {0}, 0},
      {"align/size", I, 1, {2}, 3, 0, {0}, {0}, 0},
      {"bilinear_align", F, 4, {1, 7, 5, 4}, 0, 0, {0}, {0}, 0},
      {"asym/size", I, 1, {2}, 4, 0, {0}, {0}, 0},
      {"bilinear_asym", F, 4, {1, 9, 9, 4}, 0, 0, {0}, {0}, 0},
      {"nearest/size", I, 1, {2}, 5, 0, {0}, {0}, 0},
      {"nearest_asym", F, 4, {1, 5, 7, 4}, 0, 0, {0}, {0}, 0},
      {"half/size", I, 1, {2}, 6, 0, {0}, {0}, 0},
      {"nearest_half", F, 4, {1, 8, 8, 4}, 0, 0, {0}, {0}, 0},
      {"sub/const", F, 1, {4}, 7, 0, {0}, {0}, 0},
      {"sub", F, 4, {1, 7, 5, 4}, 0, 0, {0}, {0}, 0},
      {"leaky", F, 4, {1, 9, 9, 4}, 0, 0, {0}, {0}, 0},
      {"tanh", F, 4, {1, 5, 7, 4}, 0, 0, {0}, {0}, 0},
      {"pad/paddings", I, 2, {4, 2}, 8, 0, {0}, {0}, 0},
      {"pad/value", F, 0, {0}, 9, 0, {0}, {0}, 0},
      {"padv2", F, 4, {1, 10, 10, 4}, 0, 0, {0}, {0}, 0},
      {"fc/weights", F, 2, {2, 4}, 10, 0, {0}, {0}, 0},
      {"fc/bias", F, 1, {2}, 11, 0, {0}, {0}, 0},
      {"fc", F, 2, {100, 2}, 0, 0, {0}, {0}, 0},
  };
  static const int32_t opcodes[][2] = {
      {TFL_BUILTIN_CONV_2D, 1},         {TFL_BUILTIN_MAX_POOL_2D, 1},
      {TFL_BUILTIN_RESIZE_BILINEAR, 1}, {TFL_BUILTIN_RESIZE_BILINEAR, 1},
      {TFL_BUILTIN_RESIZE_NEAREST_NEIGHBOR, 1},
      {TFL_BUILTIN_RESIZE_NEAREST_NEIGHBOR, 3},
      {TFL_BUILTIN_SUB, 1},             {TFL_BUILTIN_LEAKY_RELU, 1},
      {TFL_BUILTIN_TANH, 1},            {TFL_BUILTIN_PADV2, 1},
      {TFL_BUILTIN_FULLY_CONNECTED, 1},
  };
  enum { NOPS = 11 };
  static op ops[NOPS];
  memset(ops, 0, sizeof(ops));
  ops[0] = (op){0, 3, 1, {0, 1, 2}, {3}, TFL_OPTIONS_CONV2D, {0}, NULL, 0};
  scalar(&ops[0].options, TFL_CONV2D_PADDING, 1, TFL_PADDING_VALID);
  scalar(&ops[0].options, TFL_CONV2D_STRIDE_W, 4, 1);
  scalar(&ops[0].options, TFL_CONV2D_STRIDE_H, 4, 1);
  scalar(&ops[0].options, TFL_CONV2D_FUSED_ACTIVATION, 1, TFL_ACT_RELU_N1_TO_1);
  ops[1] = (op){1, 1, 1, {3}, {4}, TFL_OPTIONS_POOL2D, {0}, NULL, 0};
  scalar(&ops[1].options, TFL_POOL_PADDING, 1, TFL_PADDING_SAME);
  scalar(&ops[1].options, TFL_POOL_STRIDE_W, 4, 2);
  scalar(&ops[1].options, TFL_POOL_STRIDE_H, 4, 2);
  scalar(&ops[1].options, TFL_POOL_FILTER_W, 4, 3);
  scalar(&ops[1].options, TFL_POOL_FILTER_H, 4, 3);
  ops[2] = (op){2, 2, 1, {4, 5}, {6}, TFL_OPTIONS_RESIZE_BILINEAR, {0}, NULL, 0};
  scalar(&ops[2].options, TFL_RESIZE_BILINEAR_ALIGN_CORNERS, 1, 1);
  ops[3] = (op){3, 2, 1, {4, 7}, {8}, TFL_OPTIONS_RESIZE_BILINEAR, {0}, NULL, 0};
  ops[4] = (op){4, 2, 1, {4, 9}, {10}, TFL_OPTIONS_RESIZE_NEAREST_NEIGHBOR, {0},
                NULL, 0};
  ops[5] = (op){5, 2, 1, {4, 11}, {12}, TFL_OPTIONS_RESIZE_NEAREST_NEIGHBOR,
                {0}, NULL, 0};
  scalar(&ops[5].options, TFL_RESIZE_NEAREST_HALF_PIXEL_CENTERS, 1, 1);
  ops[6] = (op){6, 2, 1, {6, 13}, {14}, TFL_OPTIONS_SUB, {0}, NULL, 0};
  scalar(&ops[6].options, TFL_ARITH_FUSED_ACTIVATION, 1, TFL_ACT_RELU);
  ops[7] = (op){7, 1, 1, {8}, {15}, TFL_OPTIONS_LEAKY_RELU, {0}, NULL, 0};
  f32field(&ops[7].options, TFL_LEAKY_RELU_ALPHA, 0.2f);
  ops[8] = (op){8, 1, 1, {10}, {16}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[9] = (op){9, 3, 1, {12, 17, 18}, {19}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[10] = (op){10, 3, 1, {19, 20, 21}, {22}, TFL_OPTIONS_FULLY_CONNECTED, {0},
                 NULL, 0};
  model m = {"kestrel float ops test model 2", t, (int)(sizeof(t) / sizeof(t[0])),
             buffers, (int)(sizeof(buffers) / sizeof(buffers[0])), ops, NOPS,
             opcodes, {0}, {14, 15, 16, 22}, 1, 4, NULL, NULL};
  write_model(&m);
}

/* Encodes dense[rows][cols] (row-major) as CSR over columns in blocks of
 * `block` columns: a block is stored when any of its values is non-zero. */
static int encode_csr(sparse_desc *sd, int level, const float *dense, int rows,
                      int cols, int block, float *values) {
  int nvals = 0, nblocks = 0;
  sd->segments[level][0] = 0;
  for (int r = 0; r < rows; r++) {
    for (int b = 0; b < cols / block; b++) {
      bool any = false;
      for (int k = 0; k < block; k++)
        any |= dense[r * cols + b * block + k] != 0.0f;
      if (!any)
        continue;
      sd->indices[level][nblocks++] = (uint8_t)b;
      for (int k = 0; k < block; k++)
        values[nvals++] = dense[r * cols + b * block + k];
    }
    sd->segments[level][r + 1] = (uint8_t)nblocks;
  }
  sd->num_segments[level] = rows + 1;
  sd->num_indices[level] = nblocks;
  return nvals;
}

/* Sparse weights densified by DENSIFY, as TFLite's sparse models do: a 1x1
 * conv with CSR rows (like BlazeFace's sparse variant) and a fully
 * connected layer with 1x2 block sparsity (block_map). */
static void build_sparse(void) {
  static float w1[8 * 3], b1[8], b2[4], conv_sparse[4 * 8], conv_values[32],
      fc_dense[6 * 4], fc_values[24];
  fill(w1, 24, -0.6f, 0.6f);
  fill(b1, 8, -0.2f, 0.2f);
  fill(b2, 4, -0.2f, 0.2f);
  fill(conv_sparse, 32, -0.6f, 0.6f);
  fill(fc_dense, 24, -0.6f, 0.6f);
  for (int i = 0; i < 32; i++)
    if (uniform(0, 1) < 0.5f)
      conv_sparse[i] = 0.0f;
  for (int i = 0; i < 24; i += 2)
    if (uniform(0, 1) < 0.4f)
      fc_dense[i] = fc_dense[i + 1] = 0.0f;
  static sparse_desc conv_sd = {4, {0, 1, 2, 3}, 0, {0},
                                {false, false, false, true}, {4, 1, 1, 0},
                                {{0}}, {0}, {{0}}, {0}};
  static sparse_desc fc_sd = {3, {0, 1, 2}, 1, {1}, {false, true, false},
                              {6, 0, 2, 0}, {{0}}, {0}, {{0}}, {0}};
  int conv_n = encode_csr(&conv_sd, 3, conv_sparse, 4, 8, 1, conv_values);
  int fc_n = encode_csr(&fc_sd, 1, fc_dense, 6, 4, 2, fc_values);
  static const int32_t mean_axes[2] = {1, 2};
  const buffer_data buffers[] = {
      {NULL, 0},
      {w1, sizeof(w1)},
      {conv_values, (uint32_t)conv_n * 4},
      {mean_axes, sizeof(mean_axes)},
      {fc_values, (uint32_t)fc_n * 4},
      {b1, sizeof(b1)},
      {b2, sizeof(b2)},
  };
  enum { F = TFL_TYPE_FLOAT32, I = TFL_TYPE_INT32 };
  const tensor t[] = {
      {"input", F, 4, {1, 4, 4, 3}, 0, 0, {0}, {0}, 0},
      {"conv1/weights", F, 4, {8, 1, 1, 3}, 1, 0, {0}, {0}, 0},
      {"conv1", F, 4, {1, 4, 4, 8}, 0, 0, {0}, {0}, 0},
      {"conv2/weights_sparse", F, 4, {4, 1, 1, 8}, 2, 0, {0}, {0}, 0},
      {"conv2/weights", F, 4, {4, 1, 1, 8}, 0, 0, {0}, {0}, 0},
      {"conv2", F, 4, {1, 4, 4, 4}, 0, 0, {0}, {0}, 0},
      {"mean/axes", I, 1, {2}, 3, 0, {0}, {0}, 0},
      {"mean", F, 2, {1, 4}, 0, 0, {0}, {0}, 0},
      {"fc/weights_sparse", F, 2, {6, 4}, 4, 0, {0}, {0}, 0},
      {"fc/weights", F, 2, {6, 4}, 0, 0, {0}, {0}, 0},
      {"fc", F, 2, {1, 6}, 0, 0, {0}, {0}, 0},
      {"conv1/bias", F, 1, {8}, 5, 0, {0}, {0}, 0},
      {"conv2/bias", F, 1, {4}, 6, 0, {0}, {0}, 0},
  };
  const sparse_desc *sparse[13] = {NULL};
  sparse[3] = &conv_sd;
  sparse[8] = &fc_sd;
  static const int32_t opcodes[][2] = {
      {TFL_BUILTIN_CONV_2D, 1}, {TFL_BUILTIN_DENSIFY, 1},
      {TFL_BUILTIN_CONV_2D, 1}, {TFL_BUILTIN_MEAN, 1},
      {TFL_BUILTIN_DENSIFY, 1}, {TFL_BUILTIN_FULLY_CONNECTED, 1},
  };
  enum { NOPS = 6 };
  static op ops[NOPS];
  memset(ops, 0, sizeof(ops));
  ops[0] = (op){0, 3, 1, {0, 1, 11}, {2}, TFL_OPTIONS_CONV2D, {0}, NULL, 0};
  ops[1] = (op){1, 1, 1, {3}, {4}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[2] = (op){2, 3, 1, {2, 4, 12}, {5}, TFL_OPTIONS_CONV2D, {0}, NULL, 0};
  for (int i = 0; i <= 2; i += 2) {
    scalar(&ops[i].options, TFL_CONV2D_PADDING, 1, TFL_PADDING_VALID);
    scalar(&ops[i].options, TFL_CONV2D_STRIDE_W, 4, 1);
    scalar(&ops[i].options, TFL_CONV2D_STRIDE_H, 4, 1);
    scalar(&ops[i].options, TFL_CONV2D_FUSED_ACTIVATION, 1, TFL_ACT_RELU);
  }
  ops[3] = (op){3, 2, 1, {5, 6}, {7}, TFL_OPTIONS_REDUCER, {0}, NULL, 0};
  ops[4] = (op){4, 1, 1, {8}, {9}, TFL_OPTIONS_NONE, {0}, NULL, 0};
  ops[5] = (op){5, 2, 1, {7, 9}, {10}, TFL_OPTIONS_FULLY_CONNECTED, {0}, NULL, 0};
  model m = {"kestrel sparse test model", t, (int)(sizeof(t) / sizeof(t[0])),
             buffers, (int)(sizeof(buffers) / sizeof(buffers[0])), ops, NOPS,
             opcodes, {0}, {5, 10}, 1, 2, NULL, sparse};
  write_model(&m);
}

/* A transposed conv, k4/s2 as in MediaPipe's segmentation decoders, with
 * SAME and VALID padding: as builtin TRANSPOSE_CONV (which TFLite runs) or
 * as MediaPipe's custom Convolution2DTransposeBias (which it cannot). Both
 * variants hold the same weights and name their outputs alike, so Kestrel's
 * custom-op path can be checked against TFLite's builtin. */
static void build_tconv(bool custom) {
  static float w[4 * 4 * 4 * 3], b[4];
  static const int32_t same_shape[4] = {1, 16, 16, 4},
                       valid_shape[4] = {1, 18, 18, 4};
  fill(w, 192, -0.5f, 0.5f);
  fill(b, 4, -0.3f, 0.3f);
  const buffer_data buffers[] = {
      {NULL, 0},
      {w, sizeof(w)},
      {b, sizeof(b)},
      {same_shape, sizeof(same_shape)},
      {valid_shape, sizeof(valid_shape)},
  };
  enum { F = TFL_TYPE_FLOAT32, I = TFL_TYPE_INT32 };
  const tensor t[] = {
      {"input", F, 4, {1, 8, 8, 3}, 0, 0, {0}, {0}, 0},
      {"weights", F, 4, {4, 4, 4, 3}, 1, 0, {0}, {0}, 0},
      {"bias", F, 1, {4}, 2, 0, {0}, {0}, 0},
      {"same/output_shape", I, 1, {4}, 3, 0, {0}, {0}, 0},
      {"valid/output_shape", I, 1, {4}, 4, 0, {0}, {0}, 0},
      {"same", F, 4, {1, 16, 16, 4}, 0, 0, {0}, {0}, 0},
      {"valid", F, 4, {1, 18, 18, 4}, 0, 0, {0}, {0}, 0},
  };
  /* TfLiteTransposeConvParams: padding (1 SAME, 2 VALID), stride w, h */
  static const int32_t same_params[3] = {TFL_MP_PADDING_SAME, 2, 2},
                       valid_params[3] = {TFL_MP_PADDING_VALID, 2, 2};
  /* one opcode entry per operator, as the writer expects */
  static const int32_t builtin_codes[2][2] = {{TFL_BUILTIN_TRANSPOSE_CONV, 3},
                                              {TFL_BUILTIN_TRANSPOSE_CONV, 3}};
  static const int32_t custom_codes[2][2] = {{TFL_BUILTIN_CUSTOM, 1},
                                             {TFL_BUILTIN_CUSTOM, 1}};
  static const char *const custom_names[2] = {TFL_CUSTOM_TRANSPOSE_CONV_BIAS,
                                              TFL_CUSTOM_TRANSPOSE_CONV_BIAS};
  static op ops[2];
  memset(ops, 0, sizeof(ops));
  if (custom) {
    ops[0] = (op){0, 3, 1, {0, 1, 2}, {5}, TFL_OPTIONS_NONE, {0}, same_params,
                  sizeof(same_params)};
    ops[1] = (op){1, 3, 1, {0, 1, 2}, {6}, TFL_OPTIONS_NONE, {0}, valid_params,
                  sizeof(valid_params)};
  } else {
    ops[0] = (op){0, 4, 1, {3, 1, 0, 2}, {5}, TFL_OPTIONS_TRANSPOSE_CONV, {0},
                  NULL, 0};
    ops[1] = (op){1, 4, 1, {4, 1, 0, 2}, {6}, TFL_OPTIONS_TRANSPOSE_CONV, {0},
                  NULL, 0};
    for (int i = 0; i < 2; i++) {
      scalar(&ops[i].options, TFL_TCONV_PADDING, 1,
             i == 0 ? TFL_PADDING_SAME : TFL_PADDING_VALID);
      scalar(&ops[i].options, TFL_TCONV_STRIDE_W, 4, 2);
      scalar(&ops[i].options, TFL_TCONV_STRIDE_H, 4, 2);
    }
  }
  model m = {custom ? "kestrel custom tconv test model"
                    : "kestrel builtin tconv test model",
             t, (int)(sizeof(t) / sizeof(t[0])), buffers,
             (int)(sizeof(buffers) / sizeof(buffers[0])), ops, 2,
             custom ? custom_codes : builtin_codes, {0}, {5, 6}, 1, 2,
             custom ? custom_names : NULL, NULL};
  write_model(&m);
}

int main(int argc, char **argv) {
  if (argc == 2) {
    build_int8(false);
  } else if (argc == 3 && strcmp(argv[2], "unsupported-op") == 0) {
    build_int8(true);
  } else if (argc == 3 && strcmp(argv[2], "float-ops") == 0) {
    build_float_ops();
  } else if (argc == 3 && strcmp(argv[2], "sparse") == 0) {
    build_sparse();
  } else if (argc == 3 && strcmp(argv[2], "float-ops2") == 0) {
    build_float_ops2();
  } else if (argc == 3 && strcmp(argv[2], "tconv-builtin") == 0) {
    build_tconv(false);
  } else if (argc == 3 && strcmp(argv[2], "tconv-custom") == 0) {
    build_tconv(true);
  } else {
    fprintf(stderr, "usage: %s OUT.tflite "
            "[float-ops|float-ops2|sparse|tconv-builtin|tconv-custom|"
            "unsupported-op]\n",
            argv[0]);
    return 2;
  }
  return save(argv[1]);
}
