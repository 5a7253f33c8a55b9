/* Unit tests of the ONNX importer on small models built in memory with the
 * generated protobuf-c code: what the graph holds after import (dtypes,
 * shapes, constants, attributes, absent inputs) and which status and
 * message each kind of bad or unsupported file gets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "onnx.pb-c.h"

static int failures;

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      failures++;                                                            \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
      printf(__VA_ARGS__);                                                   \
      printf("\n");                                                          \
    }                                                                        \
  } while (0)

/* ---- building models (all on the stack; nothing to free) ---------------- */

typedef struct builder {
  Onnx__ModelProto model;
  Onnx__GraphProto graph;
  Onnx__OperatorSetIdProto opset;
  Onnx__OperatorSetIdProto *opsets[1];
  Onnx__NodeProto nodes[8];
  Onnx__NodeProto *node_ptrs[8];
  Onnx__ValueInfoProto values[8];
  Onnx__ValueInfoProto *input_ptrs[8], *output_ptrs[8];
  Onnx__TypeProto types[8];
  Onnx__TypeProto__Tensor tensor_types[8];
  Onnx__TensorShapeProto shapes[8];
  Onnx__TensorShapeProto__Dimension dims[8][4];
  Onnx__TensorShapeProto__Dimension *dim_ptrs[8][4];
  Onnx__TensorProto inits[4];
  Onnx__TensorProto *init_ptrs[4];
  int n_values;
} builder;

static void builder_init(builder *b, int opset) {
  memset(b, 0, sizeof(*b));
  onnx__model_proto__init(&b->model);
  onnx__graph_proto__init(&b->graph);
  onnx__operator_set_id_proto__init(&b->opset);
  b->opset.domain = "";
  b->opset.has_version = 1;
  b->opset.version = opset;
  b->opsets[0] = &b->opset;
  b->model.n_opset_import = 1;
  b->model.opset_import = b->opsets;
  b->model.has_ir_version = 1;
  b->model.ir_version = 8;
  b->model.graph = &b->graph;
  b->graph.node = b->node_ptrs;
  b->graph.input = b->input_ptrs;
  b->graph.output = b->output_ptrs;
  b->graph.initializer = b->init_ptrs;
}

/* A float tensor value; dims < 0 are dim_param "N". */
static Onnx__ValueInfoProto *value(builder *b, const char *name, int ndim,
                                   const int64_t *dims) {
  int v = b->n_values++;
  onnx__value_info_proto__init(&b->values[v]);
  onnx__type_proto__init(&b->types[v]);
  onnx__type_proto__tensor__init(&b->tensor_types[v]);
  onnx__tensor_shape_proto__init(&b->shapes[v]);
  b->values[v].name = (char *)name;
  b->values[v].type = &b->types[v];
  b->types[v].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  b->types[v].tensor_type = &b->tensor_types[v];
  b->tensor_types[v].has_elem_type = 1;
  b->tensor_types[v].elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  b->tensor_types[v].shape = &b->shapes[v];
  b->shapes[v].n_dim = (size_t)ndim;
  b->shapes[v].dim = b->dim_ptrs[v];
  for (int d = 0; d < ndim; d++) {
    Onnx__TensorShapeProto__Dimension *dim = &b->dims[v][d];
    onnx__tensor_shape_proto__dimension__init(dim);
    if (dims[d] >= 0) {
      dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      dim->dim_value = dims[d];
    } else {
      dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      dim->dim_param = "N";
    }
    b->dim_ptrs[v][d] = dim;
  }
  return &b->values[v];
}

static void add_input(builder *b, const char *name, int ndim,
                      const int64_t *dims) {
  b->input_ptrs[b->graph.n_input++] = value(b, name, ndim, dims);
}

static void add_output(builder *b, const char *name) {
  int64_t one = 1;
  b->output_ptrs[b->graph.n_output++] = value(b, name, 1, &one);
}

static Onnx__NodeProto *add_node(builder *b, const char *op, char **inputs,
                                 int n_in, char **outputs, int n_out) {
  Onnx__NodeProto *n = &b->nodes[b->graph.n_node];
  onnx__node_proto__init(n);
  n->op_type = (char *)op;
  n->input = inputs;
  n->n_input = (size_t)n_in;
  n->output = outputs;
  n->n_output = (size_t)n_out;
  b->node_ptrs[b->graph.n_node++] = n;
  return n;
}

static Onnx__TensorProto *add_init(builder *b, const char *name, int32_t type,
                                   int64_t *dims, int ndim) {
  Onnx__TensorProto *t = &b->inits[b->graph.n_initializer];
  onnx__tensor_proto__init(t);
  t->name = (char *)name;
  t->has_data_type = 1;
  t->data_type = type;
  t->dims = dims;
  t->n_dims = (size_t)ndim;
  b->init_ptrs[b->graph.n_initializer++] = t;
  return t;
}

/* Packs and imports; returns the status, graph in *out (caller frees). */
static kestrel_status import(builder *b, kn_graph **out, kestrel_error *err) {
  size_t size = onnx__model_proto__get_packed_size(&b->model);
  uint8_t *bytes = malloc(size + 1);
  onnx__model_proto__pack(&b->model, bytes);
  kn_graph *g = kn_graph_new();
  err->message[0] = '\0';
  kestrel_status st = kn_import_onnx(g, bytes, size, err);
  free(bytes);
  *out = g;
  return st;
}

static void expect_error(builder *b, kestrel_status want, const char *needle,
                         const char *what) {
  kn_graph *g;
  kestrel_error err;
  kestrel_status st = import(b, &g, &err);
  CHECK(st == want, "%s: status %d, want %d (%s)", what, st, want,
        err.message);
  CHECK(strstr(err.message, needle) != NULL, "%s: message '%s' lacks '%s'",
        what, err.message, needle);
  kn_graph_free(g);
}

/* ---- tests -------------------------------------------------------------- */

static char *s_x[] = {"x"}, *s_y[] = {"y"}, *s_xw[] = {"x", "w"};

static void test_graph_contents(void) {
  builder b;
  builder_init(&b, 13);
  int64_t xdims[4] = {-1, 3, 8, 8};
  add_input(&b, "x", 4, xdims);
  /* f16 initializer in int32_data, as the spec stores it */
  int64_t wdims[1] = {2};
  Onnx__TensorProto *w =
      add_init(&b, "w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, wdims, 1);
  int32_t halves[2] = {0x3c00, 0xc000}; /* 1.0, -2.0 */
  w->int32_data = halves;
  w->n_int32_data = 2;
  /* Constant(value_ints) feeding Reshape; Clip with absent min ("") */
  static char *c_out[] = {"shape"};
  Onnx__NodeProto *c = add_node(&b, "Constant", NULL, 0, c_out, 1);
  Onnx__AttributeProto value_ints = ONNX__ATTRIBUTE_PROTO__INIT;
  Onnx__AttributeProto *c_attrs[] = {&value_ints};
  int64_t shape_vals[2] = {1, -1};
  value_ints.name = "value_ints";
  value_ints.has_type = 1;
  value_ints.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  value_ints.ints = shape_vals;
  value_ints.n_ints = 2;
  c->attribute = c_attrs;
  c->n_attribute = 1;
  static char *r_in[] = {"x", "shape"}, *r_out[] = {"flat"};
  add_node(&b, "Reshape", r_in, 2, r_out, 1);
  static char *clip_in[] = {"flat", "", "w"}, *clip_out[] = {"y"};
  Onnx__NodeProto *clip = add_node(&b, "Clip", clip_in, 3, clip_out, 1);
  clip->name = "clip0";
  Onnx__AttributeProto alpha = ONNX__ATTRIBUTE_PROTO__INIT;
  Onnx__AttributeProto *clip_attrs[] = {&alpha};
  alpha.name = "mode"; /* a string attribute, for the copy */
  alpha.has_type = 1;
  alpha.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  alpha.has_s = 1;
  alpha.s.data = (uint8_t *)"fast";
  alpha.s.len = 4;
  clip->attribute = clip_attrs;
  clip->n_attribute = 1;
  add_output(&b, "y");

  kn_graph *g;
  kestrel_error err;
  kestrel_status st = import(&b, &g, &err);
  CHECK(st == KESTREL_OK, "import: %s", err.message);
  if (st != KESTREL_OK) {
    kn_graph_free(g);
    return;
  }
  CHECK(g->opset == 13, "opset %d", g->opset);
  CHECK(g->format == KESTREL_FORMAT_ONNX, "format %d", g->format);
  CHECK(g->num_inputs == 1 && g->num_outputs == 1, "%d inputs %d outputs",
        g->num_inputs, g->num_outputs);
  CHECK(g->num_nodes == 2, "%d nodes (Constant must become a tensor)",
        g->num_nodes);
  const kn_tensor *x = &g->tensors[g->inputs[0]];
  CHECK(x->kind == KN_TENSOR_INPUT && x->dtype == KESTREL_DTYPE_F32 &&
            x->ndim == 4 && x->dims[0] == -1 && x->dims[3] == 8,
        "input x kind %d dtype %d ndim %d dims[0] %lld", x->kind, x->dtype,
        x->ndim, (long long)x->dims[0]);
  int wi = kn_graph_find_tensor(g, "w");
  CHECK(wi >= 0 && g->tensors[wi].kind == KN_TENSOR_CONSTANT &&
            g->tensors[wi].dtype == KESTREL_DTYPE_F16 &&
            kn_read_double(&g->tensors[wi], 1) == -2.0,
        "initializer w");
  int si = kn_graph_find_tensor(g, "shape");
  CHECK(si >= 0 && g->tensors[si].kind == KN_TENSOR_CONSTANT &&
            g->tensors[si].dtype == KESTREL_DTYPE_I64 &&
            g->tensors[si].ndim == 1 && kn_read_int(&g->tensors[si], 1) == -1,
        "Constant value_ints");
  const kn_node *n = &g->nodes[1];
  CHECK(n->op == KN_OP_CLIP && strcmp(n->name, "clip0") == 0 &&
            n->num_inputs == 3 && n->inputs[1] == -1 && n->inputs[2] == wi,
        "Clip node inputs");
  CHECK(strcmp(kn_attr_string(n, "mode", ""), "fast") == 0, "string attr");
  /* an unnamed node is named after its first output */
  CHECK(strcmp(g->nodes[0].name, "flat") == 0, "node name '%s'",
        g->nodes[0].name);
  kn_graph_free(g);
}

static void test_constant_of_shape(void) {
  builder b;
  builder_init(&b, 13);
  int64_t two = 2;
  add_input(&b, "x", 1, &two);
  Onnx__NodeProto *n = add_node(&b, "ConstantOfShape", s_x, 1, s_y, 1);
  Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
  int64_t one = 1;
  int64_t v = 7;
  t.has_data_type = 1;
  t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
  t.dims = &one;
  t.n_dims = 1;
  t.int64_data = &v;
  t.n_int64_data = 1;
  Onnx__AttributeProto a = ONNX__ATTRIBUTE_PROTO__INIT;
  Onnx__AttributeProto *attrs[] = {&a};
  a.name = "value";
  a.has_type = 1;
  a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
  a.t = &t;
  n->attribute = attrs;
  n->n_attribute = 1;
  add_output(&b, "y");
  kn_graph *g;
  kestrel_error err;
  CHECK(import(&b, &g, &err) == KESTREL_OK, "%s", err.message);
  if (g->num_nodes == 1) {
    const int64_t *vals;
    int count = kn_attr_ints(&g->nodes[0], "value", &vals);
    CHECK(count == 1 && vals[0] == 7, "value attr count %d", count);
    CHECK(kn_attr_int(&g->nodes[0], "value_dtype", 0) == KESTREL_DTYPE_I64,
          "value_dtype");
  }
  kn_graph_free(g);
}

static void test_errors(void) {
  builder b;
  int64_t four = 4;

  builder_init(&b, 13);
  add_input(&b, "x", 1, &four);
  add_node(&b, "FancyOp", s_x, 1, s_y, 1)->name = "n1";
  add_output(&b, "y");
  expect_error(&b, KESTREL_ERROR_UNSUPPORTED,
               "unsupported op 'FancyOp' at node 'n1'", "unknown op");

  builder_init(&b, 13);
  add_input(&b, "x", 1, &four);
  add_node(&b, "Relu", s_x, 1, s_y, 1)->domain = "com.microsoft";
  add_output(&b, "y");
  expect_error(&b, KESTREL_ERROR_UNSUPPORTED, "domain 'com.microsoft'",
               "custom domain");

  builder_init(&b, 19);
  add_input(&b, "x", 1, &four);
  add_node(&b, "Relu", s_x, 1, s_y, 1);
  add_output(&b, "y");
  expect_error(&b, KESTREL_ERROR_UNSUPPORTED, "opset 19", "opset 19");

  builder_init(&b, 4);
  add_input(&b, "x", 1, &four);
  add_node(&b, "Reshape", s_x, 1, s_y, 1);
  add_output(&b, "y");
  expect_error(&b, KESTREL_ERROR_UNSUPPORTED, "opset 4", "legacy Reshape");

  builder_init(&b, 13);
  add_input(&b, "x", 1, &four);
  Onnx__TensorProto *w =
      add_init(&b, "w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &four, 1);
  w->has_raw_data = 1;
  w->raw_data.data = (uint8_t *)"12345678";
  w->raw_data.len = 8; /* 4 floats need 16 */
  add_node(&b, "Add", s_xw, 2, s_y, 1);
  add_output(&b, "y");
  expect_error(&b, KESTREL_ERROR_MALFORMED, "initializer 'w' has 8 bytes",
               "short raw_data");

  builder_init(&b, 13);
  add_input(&b, "x", 1, &four);
  w = add_init(&b, "w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &four, 1);
  Onnx__StringStringEntryProto loc = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
  Onnx__StringStringEntryProto *locs[] = {&loc};
  loc.key = "location";
  loc.value = "weights.bin";
  w->external_data = locs;
  w->n_external_data = 1;
  w->has_data_location = 1;
  w->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  add_node(&b, "Add", s_xw, 2, s_y, 1);
  add_output(&b, "y");
  expect_error(&b, KESTREL_ERROR_UNSUPPORTED, "external file",
               "external data");

  builder_init(&b, 13);
  add_input(&b, "x", 1, &four);
  w = add_init(&b, "w", ONNX__TENSOR_PROTO__DATA_TYPE__UINT16, &four, 1);
  add_node(&b, "Add", s_xw, 2, s_y, 1);
  add_output(&b, "y");
  expect_error(&b, KESTREL_ERROR_UNSUPPORTED, "initializer 'w' has data type "
               "UINT16", "uint16 initializer");

  builder_init(&b, 13);
  add_input(&b, "x", 1, &four);
  add_node(&b, "Add", s_xw, 2, s_y, 1)->name = "add0";
  add_output(&b, "y");
  expect_error(&b, KESTREL_ERROR_MALFORMED, "input 'w' is not",
               "undefined input");

  builder_init(&b, 13);
  add_input(&b, "x", 1, &four);
  add_node(&b, "Relu", s_x, 1, s_y, 1);
  add_node(&b, "Relu", s_x, 1, s_y, 1);
  add_output(&b, "y");
  expect_error(&b, KESTREL_ERROR_MALFORMED, "output 'y' is already defined",
               "two producers");

  builder_init(&b, 13);
  add_input(&b, "x", 1, &four);
  add_node(&b, "Relu", s_x, 1, s_y, 1);
  add_output(&b, "z");
  expect_error(&b, KESTREL_ERROR_MALFORMED, "graph output 'z'",
               "missing output");

  /* Bytes that are not a ModelProto at all. */
  kn_graph *g = kn_graph_new();
  kestrel_error err;
  const uint8_t junk[] = {0x0a, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00};
  kestrel_status st = kn_import_onnx(g, junk, sizeof(junk), &err);
  CHECK(st == KESTREL_ERROR_MALFORMED &&
            strstr(err.message, "not a valid ONNX ModelProto (7 bytes)") &&
            strstr(err.message, "byte offset 0"),
        "junk: %d %s", st, err.message);
  kn_graph_free(g);
}

int main(void) {
  test_graph_contents();
  test_constant_of_shape();
  test_errors();
  if (failures) {
    printf("%d check(s) failed\n", failures);
    return 1;
  }
  printf("all ONNX importer checks passed\n");
  return 0;
}
