/* Every TFLite schema number the importer relies on, in one place.
 *
 * Source: tensorflow/lite/schema/schema.fbs, schema version 3 with the
 * 3a/3b/3c additions (builtin_code int32 in OperatorCode, Buffer.offset/size
 * and Operator.large_custom_options_* for >2 GiB models), as found in
 * tensorflow/tflite-micro at commit 6cdf0d78a68f. Field ids are the
 * declaration order in each table; a union field takes two ids (its _type
 * byte first, then the table offset). Deprecated fields still take an id.
 * These numbers are frozen by the format: never renumber.
 */
#ifndef KESTREL_TFLITE_SCHEMA_H
#define KESTREL_TFLITE_SCHEMA_H

#define TFL_FILE_IDENTIFIER "TFL3"
#define TFL_SCHEMA_VERSION 3

/* table Model */
enum {
  TFL_MODEL_VERSION = 0,
  TFL_MODEL_OPERATOR_CODES = 1,
  TFL_MODEL_SUBGRAPHS = 2,
  TFL_MODEL_DESCRIPTION = 3,
  TFL_MODEL_BUFFERS = 4,
  TFL_MODEL_METADATA_BUFFER = 5,
  TFL_MODEL_METADATA = 6,
  TFL_MODEL_SIGNATURE_DEFS = 7,
};

/* table SubGraph */
enum {
  TFL_SUBGRAPH_TENSORS = 0,
  TFL_SUBGRAPH_INPUTS = 1,
  TFL_SUBGRAPH_OUTPUTS = 2,
  TFL_SUBGRAPH_OPERATORS = 3,
  TFL_SUBGRAPH_NAME = 4,
};

/* table Buffer */
enum {
  TFL_BUFFER_DATA = 0,
  TFL_BUFFER_OFFSET = 1, /* ulong, 3c: data outside the flatbuffer if > 1 */
  TFL_BUFFER_SIZE = 2,   /* ulong */
};

/* table Tensor */
enum {
  TFL_TENSOR_SHAPE = 0,
  TFL_TENSOR_TYPE = 1,
  TFL_TENSOR_BUFFER = 2,
  TFL_TENSOR_NAME = 3,
  TFL_TENSOR_QUANTIZATION = 4,
  TFL_TENSOR_IS_VARIABLE = 5,
  TFL_TENSOR_SPARSITY = 6,
  TFL_TENSOR_SHAPE_SIGNATURE = 7,
  TFL_TENSOR_HAS_RANK = 8,
  TFL_TENSOR_VARIANT_TENSORS = 9,
};

/* table SparsityParameters (sparse constant tensors, densified at load) */
enum {
  TFL_SPARSITY_TRAVERSAL_ORDER = 0,
  TFL_SPARSITY_BLOCK_MAP = 1,
  TFL_SPARSITY_DIM_METADATA = 2,
};

/* table DimensionMetadata */
enum {
  TFL_DIMMETA_FORMAT = 0, /* DimensionType */
  TFL_DIMMETA_DENSE_SIZE = 1,
  TFL_DIMMETA_ARRAY_SEGMENTS_TYPE = 2,
  TFL_DIMMETA_ARRAY_SEGMENTS = 3,
  TFL_DIMMETA_ARRAY_INDICES_TYPE = 4,
  TFL_DIMMETA_ARRAY_INDICES = 5,
};

/* enum DimensionType : byte */
enum { TFL_DIM_DENSE = 0, TFL_DIM_SPARSE_CSR = 1 };

/* union SparseIndexVector: tables Int32Vector, Uint16Vector, Uint8Vector,
 * each with one field `values` (id 0). */
enum {
  TFL_SPARSE_INDEX_NONE = 0,
  TFL_SPARSE_INDEX_INT32 = 1,
  TFL_SPARSE_INDEX_UINT16 = 2,
  TFL_SPARSE_INDEX_UINT8 = 3,
};
enum { TFL_INDEX_VECTOR_VALUES = 0 };

/* table QuantizationParameters */
enum {
  TFL_QUANT_MIN = 0,
  TFL_QUANT_MAX = 1,
  TFL_QUANT_SCALE = 2,      /* [float] */
  TFL_QUANT_ZERO_POINT = 3, /* [long] */
  TFL_QUANT_DETAILS_TYPE = 4,
  TFL_QUANT_DETAILS = 5,
  TFL_QUANT_QUANTIZED_DIMENSION = 6,
};

/* table OperatorCode */
enum {
  TFL_OPCODE_DEPRECATED_BUILTIN_CODE = 0, /* byte */
  TFL_OPCODE_CUSTOM_CODE = 1,
  TFL_OPCODE_VERSION = 2,
  TFL_OPCODE_BUILTIN_CODE = 3, /* int32, since 3a */
};

/* table Operator */
enum {
  TFL_OP_OPCODE_INDEX = 0,
  TFL_OP_INPUTS = 1,
  TFL_OP_OUTPUTS = 2,
  TFL_OP_BUILTIN_OPTIONS_TYPE = 3,
  TFL_OP_BUILTIN_OPTIONS = 4,
  TFL_OP_CUSTOM_OPTIONS = 5,
  TFL_OP_CUSTOM_OPTIONS_FORMAT = 6,
  TFL_OP_MUTATING_VARIABLE_INPUTS = 7,
  TFL_OP_INTERMEDIATES = 8,
  TFL_OP_LARGE_CUSTOM_OPTIONS_OFFSET = 9,
  TFL_OP_LARGE_CUSTOM_OPTIONS_SIZE = 10,
  TFL_OP_BUILTIN_OPTIONS_2_TYPE = 11,
  TFL_OP_BUILTIN_OPTIONS_2 = 12,
};

/* enum TensorType : byte */
enum {
  TFL_TYPE_FLOAT32 = 0,
  TFL_TYPE_FLOAT16 = 1,
  TFL_TYPE_INT32 = 2,
  TFL_TYPE_UINT8 = 3,
  TFL_TYPE_INT64 = 4,
  TFL_TYPE_STRING = 5,
  TFL_TYPE_BOOL = 6,
  TFL_TYPE_INT16 = 7,
  TFL_TYPE_COMPLEX64 = 8,
  TFL_TYPE_INT8 = 9,
  TFL_TYPE_FLOAT64 = 10,
};

/* enum Padding : byte */
enum { TFL_PADDING_SAME = 0, TFL_PADDING_VALID = 1 };

/* enum ActivationFunctionType : byte */
enum {
  TFL_ACT_NONE = 0,
  TFL_ACT_RELU = 1,
  TFL_ACT_RELU_N1_TO_1 = 2,
  TFL_ACT_RELU6 = 3,
  TFL_ACT_TANH = 4,
  TFL_ACT_SIGN_BIT = 5,
};

/* enum BuiltinOperator : int32 (the ones the importer maps) */
enum {
  TFL_BUILTIN_ADD = 0,
  TFL_BUILTIN_AVERAGE_POOL_2D = 1,
  TFL_BUILTIN_CONCATENATION = 2,
  TFL_BUILTIN_CONV_2D = 3,
  TFL_BUILTIN_DEPTHWISE_CONV_2D = 4,
  TFL_BUILTIN_DEPTH_TO_SPACE = 5,
  TFL_BUILTIN_DEQUANTIZE = 6,
  TFL_BUILTIN_FULLY_CONNECTED = 9,
  TFL_BUILTIN_LOGISTIC = 14,
  TFL_BUILTIN_MAX_POOL_2D = 17,
  TFL_BUILTIN_MUL = 18,
  TFL_BUILTIN_RELU = 19,
  TFL_BUILTIN_RELU_N1_TO_1 = 20,
  TFL_BUILTIN_RELU6 = 21,
  TFL_BUILTIN_RESHAPE = 22,
  TFL_BUILTIN_RESIZE_BILINEAR = 23,
  TFL_BUILTIN_SOFTMAX = 25,
  TFL_BUILTIN_SPACE_TO_DEPTH = 26,
  TFL_BUILTIN_TANH = 28,
  TFL_BUILTIN_CUSTOM = 32,
  TFL_BUILTIN_PAD = 34,
  TFL_BUILTIN_MEAN = 40,
  TFL_BUILTIN_SUB = 41,
  TFL_BUILTIN_DIV = 42,
  TFL_BUILTIN_PRELU = 54,
  TFL_BUILTIN_PADV2 = 60,
  TFL_BUILTIN_TRANSPOSE_CONV = 67,
  TFL_BUILTIN_RESIZE_NEAREST_NEIGHBOR = 97,
  TFL_BUILTIN_LEAKY_RELU = 98,
  TFL_BUILTIN_QUANTIZE = 114,
  TFL_BUILTIN_HARD_SWISH = 117,
  TFL_BUILTIN_DENSIFY = 124,
  /* builtin_code values >= this live only in the int32 field (3a). */
  TFL_BUILTIN_PLACEHOLDER_FOR_GREATER_OP_CODES = 127,
};

/* union BuiltinOptions: type byte values (1-based declaration order). */
enum {
  TFL_OPTIONS_NONE = 0,
  TFL_OPTIONS_CONV2D = 1,
  TFL_OPTIONS_DEPTHWISE_CONV2D = 2,
  TFL_OPTIONS_POOL2D = 5,
  TFL_OPTIONS_FULLY_CONNECTED = 8,
  TFL_OPTIONS_SOFTMAX = 9,
  TFL_OPTIONS_CONCATENATION = 10,
  TFL_OPTIONS_ADD = 11,
  TFL_OPTIONS_RESIZE_BILINEAR = 15,
  TFL_OPTIONS_RESHAPE = 17,
  TFL_OPTIONS_SPACE_TO_DEPTH = 19,
  TFL_OPTIONS_MUL = 21,
  TFL_OPTIONS_PAD = 22,
  TFL_OPTIONS_REDUCER = 27,
  TFL_OPTIONS_SUB = 28,
  TFL_OPTIONS_DIV = 29,
  TFL_OPTIONS_DEQUANTIZE = 38,
  TFL_OPTIONS_PADV2 = 43,
  TFL_OPTIONS_TRANSPOSE_CONV = 49,
  TFL_OPTIONS_RESIZE_NEAREST_NEIGHBOR = 74,
  TFL_OPTIONS_LEAKY_RELU = 75,
  TFL_OPTIONS_QUANTIZE = 89,
  TFL_OPTIONS_HARD_SWISH = 91,
  TFL_OPTIONS_DEPTH_TO_SPACE = 94,
};

/* table Conv2DOptions */
enum {
  TFL_CONV2D_PADDING = 0,
  TFL_CONV2D_STRIDE_W = 1,
  TFL_CONV2D_STRIDE_H = 2,
  TFL_CONV2D_FUSED_ACTIVATION = 3,
  TFL_CONV2D_DILATION_W = 4, /* default 1 */
  TFL_CONV2D_DILATION_H = 5, /* default 1 */
  TFL_CONV2D_QUANTIZED_BIAS_TYPE = 6,
};

/* table DepthwiseConv2DOptions */
enum {
  TFL_DWCONV_PADDING = 0,
  TFL_DWCONV_STRIDE_W = 1,
  TFL_DWCONV_STRIDE_H = 2,
  TFL_DWCONV_DEPTH_MULTIPLIER = 3,
  TFL_DWCONV_FUSED_ACTIVATION = 4,
  TFL_DWCONV_DILATION_W = 5, /* default 1 */
  TFL_DWCONV_DILATION_H = 6, /* default 1 */
};

/* table Pool2DOptions */
enum {
  TFL_POOL_PADDING = 0,
  TFL_POOL_STRIDE_W = 1,
  TFL_POOL_STRIDE_H = 2,
  TFL_POOL_FILTER_W = 3,
  TFL_POOL_FILTER_H = 4,
  TFL_POOL_FUSED_ACTIVATION = 5,
};

/* table FullyConnectedOptions */
enum {
  TFL_FC_FUSED_ACTIVATION = 0,
  TFL_FC_WEIGHTS_FORMAT = 1, /* 0 = DEFAULT; SHUFFLED4x16INT8 unsupported */
  TFL_FC_KEEP_NUM_DIMS = 2,
  TFL_FC_ASYMMETRIC_QUANTIZE_INPUTS = 3,
  TFL_FC_QUANTIZED_BIAS_TYPE = 4,
};

/* table SoftmaxOptions */
enum { TFL_SOFTMAX_BETA = 0 };

/* table ConcatenationOptions */
enum { TFL_CONCAT_AXIS = 0, TFL_CONCAT_FUSED_ACTIVATION = 1 };

/* tables AddOptions, SubOptions, MulOptions, DivOptions: field 0 */
enum { TFL_ARITH_FUSED_ACTIVATION = 0 };

/* table ResizeBilinearOptions (new_height/new_width are deprecated) */
enum {
  TFL_RESIZE_BILINEAR_ALIGN_CORNERS = 2,
  TFL_RESIZE_BILINEAR_HALF_PIXEL_CENTERS = 3,
};

/* table ResizeNearestNeighborOptions */
enum {
  TFL_RESIZE_NEAREST_ALIGN_CORNERS = 0,
  TFL_RESIZE_NEAREST_HALF_PIXEL_CENTERS = 1,
};

/* table ReshapeOptions */
enum { TFL_RESHAPE_NEW_SHAPE = 0 };

/* tables SpaceToDepthOptions, DepthToSpaceOptions */
enum { TFL_BLOCK_SIZE = 0 };

/* table ReducerOptions */
enum { TFL_REDUCER_KEEP_DIMS = 0 };

/* table LeakyReluOptions */
enum { TFL_LEAKY_RELU_ALPHA = 0 };

/* table TransposeConvOptions */
enum {
  TFL_TCONV_PADDING = 0,
  TFL_TCONV_STRIDE_W = 1,
  TFL_TCONV_STRIDE_H = 2,
  TFL_TCONV_FUSED_ACTIVATION = 3, /* version 4 */
  TFL_TCONV_QUANTIZED_BIAS_TYPE = 4,
};

/* MediaPipe's custom op "Convolution2DTransposeBias": custom_options is a
 * raw little-endian TfLiteTransposeConvParams struct (not a flexbuffer):
 * int32 padding (TfLitePadding: 1 = SAME, 2 = VALID), int32 stride_width,
 * int32 stride_height. Inputs: data, weights [O,KH,KW,I], bias [O]. */
#define TFL_CUSTOM_TRANSPOSE_CONV_BIAS "Convolution2DTransposeBias"
enum {
  TFL_MP_PADDING_SAME = 1,
  TFL_MP_PADDING_VALID = 2,
  TFL_MP_TCONV_OPTIONS_BYTES = 12,
};

/* Names of BuiltinOperator values 0..161 (for messages; the STABLEHLO_*
 * ops from 162 on are reported by number). */
static const char *const tfl_builtin_names[] __attribute__((unused)) = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE", "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR",
    "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM",
    "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE",
    "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH",
    "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE", "PAD", "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER",
    "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB",
    "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN", "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX",
    "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM",
    "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL",
    "LESS_EQUAL", "SELECT", "SLICE", "SIN", "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG",
    "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT",
    "REDUCE_PROD", "REDUCE_MAX", "PACK", "LOGICAL_OR", "ONE_HOT",
    "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV",
    "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE",
    "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE",
    "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N",
    "GATHER_ND", "COS", "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE",
    "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF",
    "WHILE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND",
    "SELECT_V2", "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM", "CALL_ONCE", "BROADCAST_TO",
    "RFFT2D", "CONV_3D", "IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE",
    "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE", "REDUCE_ALL",
    "CONV_3D_TRANSPOSE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
    "BROADCAST_ARGS", "RANDOM_STANDARD_NORMAL", "BUCKETIZE", "RANDOM_UNIFORM",
    "MULTINOMIAL", "GELU", "DYNAMIC_UPDATE_SLICE", "RELU_0_TO_1",
    "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX", "UNSORTED_SEGMENT_SUM",
    "ATAN2", "UNSORTED_SEGMENT_MIN", "SIGN", "BITCAST", "BITWISE_XOR",
    "RIGHT_SHIFT",
};
#define TFL_NUM_BUILTIN_NAMES \
  ((int)(sizeof(tfl_builtin_names) / sizeof(tfl_builtin_names[0])))

#endif
