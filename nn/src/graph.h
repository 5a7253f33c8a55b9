/* Kestrel's graph IR: tensors, nodes with ONNX-style attributes, and the op
 * table. Importers build it, loading infers shapes and folds constants,
 * the runtime plans and executes it. Internal to libkestrel-nn.
 *
 * Op semantics follow ONNX (Conv, Gemm, Resize, ...). Spatial ops carry an
 * int attribute "layout" (KN_LAYOUT_NCHW, the default, or KN_LAYOUT_NHWC) so
 * that TFLite graphs keep their NHWC activations without transposes. Weights
 * of Conv/ConvTranspose are always [O, I/group, KH, KW] whatever the layout:
 * the TFLite importer transposes its weights once at load time.
 */
#ifndef KESTREL_GRAPH_H
#define KESTREL_GRAPH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <kestrel/model.h>
#include <kestrel/status.h>
#include <kestrel/tensor.h>

#define KN_MAX_DIMS KESTREL_MAX_DIMS

enum { KN_LAYOUT_NCHW = 0, KN_LAYOUT_NHWC = 1 };

/* Fused activation, attribute "activation" on Conv/Gemm/Add/... (TFLite's
 * fused_activation_function; the INT8 passes fuse ONNX activations too).
 * Append-only. */
enum {
  KN_ACT_NONE = 0,
  KN_ACT_RELU = 1,
  KN_ACT_RELU_N1_TO_1 = 2,
  KN_ACT_RELU6 = 3,
  KN_ACT_TANH = 4,
  KN_ACT_SIGMOID = 5,
  KN_ACT_HARDSWISH = 6,
  KN_ACT_LEAKY_RELU = 7, /* slope in float attribute "activation_alpha" */
  KN_ACT_CLIP = 8,       /* "activation_min", "activation_max" */
  KN_ACT_HARDSIGMOID = 9, /* max(0, min(1, alpha*x + beta)): "activation_alpha",
                          * "activation_beta" */
};

typedef enum kn_tensor_kind {
  KN_TENSOR_ACTIVATION = 0, /* produced at run time, lives in the arena */
  KN_TENSOR_CONSTANT = 1,   /* data known at load time */
  KN_TENSOR_INPUT = 2,      /* graph input, lives in the arena */
} kn_tensor_kind;

typedef struct kn_tensor {
  char *name;
  kestrel_dtype dtype;
  int ndim; /* -1 until shape inference sets it */
  int64_t dims[KN_MAX_DIMS];
  kn_tensor_kind kind;
  /* Constants: data points at owned (data_owned) or borrowed bytes. */
  void *data;
  bool data_owned;
  /* Quantization parameters (owned arrays). */
  int q_axis;
  int q_count;
  float *q_scale;
  int32_t *q_zero_point;
  /* Filled by the planner. */
  int64_t arena_offset;
  int producer;    /* node index or -1 */
  int last_use;    /* last node index reading it, -1 if none */
  bool is_output;  /* graph output */
  bool optional_absent; /* ONNX "" input placeholder */
} kn_tensor;

typedef enum kn_attr_type {
  KN_ATTR_INT = 1,
  KN_ATTR_FLOAT = 2,
  KN_ATTR_INTS = 3,
  KN_ATTR_FLOATS = 4,
  KN_ATTR_STRING = 5,
} kn_attr_type;

typedef struct kn_attr {
  char *name;
  kn_attr_type type;
  int64_t i;
  float f;
  int64_t *ints;
  float *floats;
  int count; /* of ints/floats */
  char *s;
} kn_attr;

/* Op codes. Append-only: they are stored in compiled model files. */
typedef enum kn_op {
  KN_OP_INVALID = 0,
  KN_OP_CONV, KN_OP_CONV_TRANSPOSE, KN_OP_GEMM, KN_OP_MATMUL,
  KN_OP_BATCHNORM, KN_OP_RELU, KN_OP_CLIP, KN_OP_LEAKY_RELU, KN_OP_PRELU,
  KN_OP_HARDSWISH, KN_OP_HARDSIGMOID, KN_OP_SIGMOID, KN_OP_TANH,
  KN_OP_ADD, KN_OP_SUB, KN_OP_MUL, KN_OP_DIV,
  KN_OP_MAXPOOL, KN_OP_AVGPOOL, KN_OP_GLOBAL_AVGPOOL, KN_OP_REDUCE_MEAN,
  KN_OP_CONCAT, KN_OP_RESHAPE, KN_OP_FLATTEN, KN_OP_TRANSPOSE,
  KN_OP_SQUEEZE, KN_OP_UNSQUEEZE, KN_OP_PAD, KN_OP_RESIZE, KN_OP_SOFTMAX,
  KN_OP_SLICE, KN_OP_SPLIT, KN_OP_IDENTITY, KN_OP_DROPOUT, KN_OP_SHAPE,
  KN_OP_GATHER, KN_OP_CAST, KN_OP_CONSTANT, KN_OP_QUANTIZE_LINEAR,
  KN_OP_DEQUANTIZE_LINEAR, KN_OP_QLINEAR_CONV, KN_OP_CONV_INTEGER,
  KN_OP_GLOBAL_MAXPOOL, KN_OP_REDUCE_MAX, KN_OP_REDUCE_SUM, KN_OP_EXP,
  KN_OP_SQRT, KN_OP_NEG, KN_OP_ABS, KN_OP_MAX, KN_OP_MIN, KN_OP_POW,
  KN_OP_LOG_SOFTMAX, KN_OP_CONSTANT_OF_SHAPE, KN_OP_EXPAND, KN_OP_WHERE,
  KN_OP_EQUAL, KN_OP_LESS, KN_OP_GREATER, KN_OP_FLOOR, KN_OP_CEIL,
  KN_OP_RECIPROCAL, KN_OP_LOG, KN_OP_ERF, KN_OP_RANGE, KN_OP_REDUCE_MIN,
  KN_OP_REDUCE_PROD, KN_OP_ELU, KN_OP_SELU, KN_OP_SOFTPLUS, KN_OP_SOFTSIGN,
  KN_OP_HARDMAX, KN_OP_ARGMAX, KN_OP_ARGMIN, KN_OP_TILE, KN_OP_SUM,
  KN_OP_MEAN, KN_OP_NOT, KN_OP_AND, KN_OP_OR, KN_OP_XOR, KN_OP_SIN,
  KN_OP_COS, KN_OP_DEPTH_TO_SPACE, KN_OP_SPACE_TO_DEPTH, KN_OP_LRN,
  KN_OP_INSTANCE_NORM, KN_OP_SIGN, KN_OP_ROUND, KN_OP_MOD,
  KN_OP_REDUCE_L2, KN_OP_REDUCE_L1, KN_OP_REDUCE_SUM_SQUARE,
  KN_OP_REDUCE_LOG_SUM_EXP, KN_OP_THRESHOLDED_RELU, KN_OP_CELU,
  KN_OP_SHRINK, KN_OP_GLOBAL_LP_POOL, KN_OP_LP_POOL, KN_OP_NONZERO,
  KN_OP_TOPK, KN_OP_EINSUM, KN_OP_CUMSUM, KN_OP_LESS_OR_EQUAL,
  KN_OP_GREATER_OR_EQUAL, KN_OP_ISNAN, KN_OP_ISINF, KN_OP_TAN, KN_OP_ASIN,
  KN_OP_ACOS, KN_OP_ATAN, KN_OP_SINH, KN_OP_COSH, KN_OP_ASINH, KN_OP_ACOSH,
  KN_OP_ATANH, KN_OP_BITSHIFT, KN_OP_MATMUL_INTEGER, KN_OP_QLINEAR_MATMUL,
  KN_OP_SIZE, KN_OP_MEAN_VARIANCE_NORM, KN_OP_GATHER_ELEMENTS,
  KN_OP_SCATTER_ELEMENTS, KN_OP_REDUCE_LOG_SUM, KN_OP_TRILU, KN_OP_ONE_HOT,
  KN_OP_COUNT_ /* not stored; keep last */
} kn_op;

typedef struct kn_node {
  kn_op op;
  char *name;
  char *op_name; /* as in the source file, for messages ("CONV_2D") */
  int *inputs;   /* tensor indices; -1 = absent optional input */
  int num_inputs;
  int *outputs;
  int num_outputs;
  kn_attr *attrs;
  int num_attrs;
  bool dead; /* removed by folding; skipped by everything */
} kn_node;

typedef struct kn_graph {
  kn_tensor *tensors;
  int num_tensors, cap_tensors;
  kn_node *nodes;
  int num_nodes, cap_nodes;
  int *inputs; /* tensor indices */
  int num_inputs;
  int *outputs;
  int num_outputs;
  int opset; /* ONNX default-domain opset, 0 for TFLite */
  kestrel_model_format format;
  int verbose;
} kn_graph;

/* --- building (importers) ------------------------------------------- */
kn_graph *kn_graph_new(void);
void kn_graph_free(kn_graph *g);
/* Returns tensor index, or -1 on allocation failure. Name is copied. */
int kn_graph_add_tensor(kn_graph *g, const char *name);
/* Finds a tensor by name, -1 if none. Linear: for importers only. */
int kn_graph_find_tensor(const kn_graph *g, const char *name);
/* Returns node index or -1. Arrays are copied. */
int kn_graph_add_node(kn_graph *g, kn_op op, const char *name,
                      const char *op_name, const int *inputs, int num_inputs,
                      const int *outputs, int num_outputs);
int kn_graph_add_input(kn_graph *g, int tensor);
int kn_graph_add_output(kn_graph *g, int tensor);
/* Allocate owned, zeroed constant data for a tensor of given dtype/shape. */
void *kn_tensor_alloc_data(kn_tensor *t, kestrel_dtype dtype, int ndim,
                           const int64_t *dims);
int kn_tensor_set_quant(kn_tensor *t, int axis, int count, const float *scale,
                        const int32_t *zero_point);

kn_attr *kn_node_add_attr(kn_node *n, const char *name, kn_attr_type type);
void kn_node_set_int(kn_node *n, const char *name, int64_t v);
void kn_node_set_float(kn_node *n, const char *name, float v);
void kn_node_set_ints(kn_node *n, const char *name, const int64_t *v, int count);
void kn_node_set_floats(kn_node *n, const char *name, const float *v, int count);
void kn_node_set_string(kn_node *n, const char *name, const char *s);

/* --- reading attributes (ops) ------------------------------------------ */
const kn_attr *kn_node_attr(const kn_node *n, const char *name);
int64_t kn_attr_int(const kn_node *n, const char *name, int64_t def);
float kn_attr_float(const kn_node *n, const char *name, float def);
/* Returns count (0 if absent) and sets *values (borrowed). */
int kn_attr_ints(const kn_node *n, const char *name, const int64_t **values);
int kn_attr_floats(const kn_node *n, const char *name, const float **values);
const char *kn_attr_string(const kn_node *n, const char *name,
                           const char *def);

/* --- helpers ------------------------------------------------------------ */
int64_t kn_numel(int ndim, const int64_t *dims);
int64_t kn_tensor_numel(const kn_tensor *t);
size_t kn_tensor_bytes(const kn_tensor *t);
/* Input i of a node as a tensor, NULL when absent or out of range. */
kn_tensor *kn_in(kn_graph *g, const kn_node *n, int i);
kn_tensor *kn_out(kn_graph *g, const kn_node *n, int i);
void kn_set_shape(kn_tensor *t, kestrel_dtype dtype, int ndim,
                  const int64_t *dims);
/* Read element i of an integer/float constant as int64/double, any dtype. */
int64_t kn_read_int(const kn_tensor *t, int64_t i);
double kn_read_double(const kn_tensor *t, int64_t i);

/* printf into the caller's error; returns status for `return kn_fail(...)`. */
kestrel_status kn_fail(kestrel_error *err, kestrel_status status,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Error about one node: prefixes "node 'NAME' (OP): ". */
kestrel_status kn_node_fail(kestrel_error *err, kestrel_status status,
                            const kn_node *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void kn_log(const kn_graph *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --- op table ----------------------------------------------------------- */
typedef struct kn_exec {
  kn_graph *graph;
  void *scratch; /* planned scratch for the node, scratch_bytes long */
  size_t scratch_bytes;
  int num_threads;
  /* Session thread pool (threadpool.h), NULL = run on the caller only.
   * With a pool, scratch holds num_threads slices of the op's scratch()
   * size so that each thread of a parallel op gets its own. */
  struct kn_threadpool *pool;
} kn_exec;

typedef struct kn_op_info {
  const char *name; /* ONNX spelling */
  /* Sets dtype and shape of every output from the inputs' (and constant
   * inputs' values). Must validate everything it relies on: ranks, attr
   * ranges, dtypes. Unsupported dtype -> KESTREL_ERROR_UNSUPPORTED. */
  kestrel_status (*infer)(kn_graph *g, kn_node *n, kestrel_error *err);
  /* Computes outputs. Tensors' data pointers are set (arena or constant).
   * Never allocates. May assume infer() succeeded. */
  kestrel_status (*run)(const kn_exec *x, const kn_node *n, kestrel_error *err);
  /* Scratch bytes run() needs; NULL means none. */
  size_t (*scratch)(kn_graph *g, const kn_node *n);
  /* Multiply-accumulates (for `kestrel info`); NULL means 0. */
  uint64_t (*macs)(kn_graph *g, const kn_node *n);
} kn_op_info;

const kn_op_info *kn_op_get(kn_op op);
/* ONNX op_type (default domain) to kn_op, KN_OP_INVALID if unknown. */
kn_op kn_op_from_onnx(const char *op_type);
const char *kn_op_name(kn_op op);

/* Each file in ops/ defines a registration function filling its entries. */
void kn_register_ops_conv(kn_op_info *table);
void kn_register_ops_elementwise(kn_op_info *table);
void kn_register_ops_pool(kn_op_info *table);
void kn_register_ops_shape(kn_op_info *table);
void kn_register_ops_quant(kn_op_info *table);
void kn_register_ops_misc(kn_op_info *table);

/* --- loading ------------------------------------------------------------ */
kestrel_status kn_import_onnx(kn_graph *g, const uint8_t *data, size_t size,
                              kestrel_error *err);
kestrel_status kn_import_tflite(kn_graph *g, const uint8_t *data, size_t size,
                                kestrel_error *err);
/* Sort nodes topologically, infer shapes, fold constant nodes. */
kestrel_status kn_graph_prepare(kn_graph *g, const kestrel_load_options *opt,
                                kestrel_error *err);

#endif
