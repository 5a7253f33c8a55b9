/* Op names (ONNX spelling) and the op table assembled from the ops/ files. */
#include "graph.h"

#include <pthread.h>
#include <string.h>

static const char *const op_names[KN_OP_COUNT_] = {
  [KN_OP_CONV] = "Conv",
  [KN_OP_CONV_TRANSPOSE] = "ConvTranspose",
  [KN_OP_GEMM] = "Gemm",
  [KN_OP_MATMUL] = "MatMul",
  [KN_OP_BATCHNORM] = "BatchNormalization",
  [KN_OP_RELU] = "Relu",
  [KN_OP_CLIP] = "Clip",
  [KN_OP_LEAKY_RELU] = "LeakyRelu",
  [KN_OP_PRELU] = "PRelu",
  [KN_OP_HARDSWISH] = "HardSwish",
  [KN_OP_HARDSIGMOID] = "HardSigmoid",
  [KN_OP_SIGMOID] = "Sigmoid",
  [KN_OP_TANH] = "Tanh",
  [KN_OP_ADD] = "Add",
  [KN_OP_SUB] = "Sub",
  [KN_OP_MUL] = "Mul",
  [KN_OP_DIV] = "Div",
  [KN_OP_MAXPOOL] = "MaxPool",
  [KN_OP_AVGPOOL] = "AveragePool",
  [KN_OP_GLOBAL_AVGPOOL] = "GlobalAveragePool",
  [KN_OP_REDUCE_MEAN] = "ReduceMean",
  [KN_OP_CONCAT] = "Concat",
  [KN_OP_RESHAPE] = "Reshape",
  [KN_OP_FLATTEN] = "Flatten",
  [KN_OP_TRANSPOSE] = "Transpose",
  [KN_OP_SQUEEZE] = "Squeeze",
  [KN_OP_UNSQUEEZE] = "Unsqueeze",
  [KN_OP_PAD] = "Pad",
  [KN_OP_RESIZE] = "Resize",
  [KN_OP_SOFTMAX] = "Softmax",
  [KN_OP_SLICE] = "Slice",
  [KN_OP_SPLIT] = "Split",
  [KN_OP_IDENTITY] = "Identity",
  [KN_OP_DROPOUT] = "Dropout",
  [KN_OP_SHAPE] = "Shape",
  [KN_OP_GATHER] = "Gather",
  [KN_OP_CAST] = "Cast",
  [KN_OP_CONSTANT] = "Constant",
  [KN_OP_QUANTIZE_LINEAR] = "QuantizeLinear",
  [KN_OP_DEQUANTIZE_LINEAR] = "DequantizeLinear",
  [KN_OP_QLINEAR_CONV] = "QLinearConv",
  [KN_OP_CONV_INTEGER] = "ConvInteger",
  [KN_OP_GLOBAL_MAXPOOL] = "GlobalMaxPool",
  [KN_OP_REDUCE_MAX] = "ReduceMax",
  [KN_OP_REDUCE_SUM] = "ReduceSum",
  [KN_OP_EXP] = "Exp",
  [KN_OP_SQRT] = "Sqrt",
  [KN_OP_NEG] = "Neg",
  [KN_OP_ABS] = "Abs",
  [KN_OP_MAX] = "Max",
  [KN_OP_MIN] = "Min",
  [KN_OP_POW] = "Pow",
  [KN_OP_LOG_SOFTMAX] = "LogSoftmax",
  [KN_OP_CONSTANT_OF_SHAPE] = "ConstantOfShape",
  [KN_OP_EXPAND] = "Expand",
  [KN_OP_WHERE] = "Where",
  [KN_OP_EQUAL] = "Equal",
  [KN_OP_LESS] = "Less",
  [KN_OP_GREATER] = "Greater",
  [KN_OP_FLOOR] = "Floor",
  [KN_OP_CEIL] = "Ceil",
  [KN_OP_RECIPROCAL] = "Reciprocal",
  [KN_OP_LOG] = "Log",
  [KN_OP_ERF] = "Erf",
  [KN_OP_RANGE] = "Range",
  [KN_OP_REDUCE_MIN] = "ReduceMin",
  [KN_OP_REDUCE_PROD] = "ReduceProd",
  [KN_OP_ELU] = "Elu",
  [KN_OP_SELU] = "Selu",
  [KN_OP_SOFTPLUS] = "Softplus",
  [KN_OP_SOFTSIGN] = "Softsign",
  [KN_OP_HARDMAX] = "Hardmax",
  [KN_OP_ARGMAX] = "ArgMax",
  [KN_OP_ARGMIN] = "ArgMin",
  [KN_OP_TILE] = "Tile",
  [KN_OP_SUM] = "Sum",
  [KN_OP_MEAN] = "Mean",
  [KN_OP_NOT] = "Not",
  [KN_OP_AND] = "And",
  [KN_OP_OR] = "Or",
  [KN_OP_XOR] = "Xor",
  [KN_OP_SIN] = "Sin",
  [KN_OP_COS] = "Cos",
  [KN_OP_DEPTH_TO_SPACE] = "DepthToSpace",
  [KN_OP_SPACE_TO_DEPTH] = "SpaceToDepth",
  [KN_OP_LRN] = "LRN",
  [KN_OP_INSTANCE_NORM] = "InstanceNormalization",
  [KN_OP_SIGN] = "Sign",
  [KN_OP_ROUND] = "Round",
  [KN_OP_MOD] = "Mod",
  [KN_OP_REDUCE_L2] = "ReduceL2",
  [KN_OP_REDUCE_L1] = "ReduceL1",
  [KN_OP_REDUCE_SUM_SQUARE] = "ReduceSumSquare",
  [KN_OP_REDUCE_LOG_SUM_EXP] = "ReduceLogSumExp",
  [KN_OP_THRESHOLDED_RELU] = "ThresholdedRelu",
  [KN_OP_CELU] = "Celu",
  [KN_OP_SHRINK] = "Shrink",
  [KN_OP_GLOBAL_LP_POOL] = "GlobalLpPool",
  [KN_OP_LP_POOL] = "LpPool",
  [KN_OP_NONZERO] = "NonZero",
  [KN_OP_TOPK] = "TopK",
  [KN_OP_EINSUM] = "Einsum",
  [KN_OP_CUMSUM] = "CumSum",
  [KN_OP_LESS_OR_EQUAL] = "LessOrEqual",
  [KN_OP_GREATER_OR_EQUAL] = "GreaterOrEqual",
  [KN_OP_ISNAN] = "IsNaN",
  [KN_OP_ISINF] = "IsInf",
  [KN_OP_TAN] = "Tan",
  [KN_OP_ASIN] = "Asin",
  [KN_OP_ACOS] = "Acos",
  [KN_OP_ATAN] = "Atan",
  [KN_OP_SINH] = "Sinh",
  [KN_OP_COSH] = "Cosh",
  [KN_OP_ASINH] = "Asinh",
  [KN_OP_ACOSH] = "Acosh",
  [KN_OP_ATANH] = "Atanh",
  [KN_OP_BITSHIFT] = "BitShift",
  [KN_OP_MATMUL_INTEGER] = "MatMulInteger",
  [KN_OP_QLINEAR_MATMUL] = "QLinearMatMul",
  [KN_OP_SIZE] = "Size",
  [KN_OP_MEAN_VARIANCE_NORM] = "MeanVarianceNormalization",
  [KN_OP_GATHER_ELEMENTS] = "GatherElements",
  [KN_OP_SCATTER_ELEMENTS] = "ScatterElements",
  [KN_OP_REDUCE_LOG_SUM] = "ReduceLogSum",
  [KN_OP_TRILU] = "Trilu",
  [KN_OP_ONE_HOT] = "OneHot",
};

static kn_op_info op_table[KN_OP_COUNT_];
static pthread_once_t op_table_once = PTHREAD_ONCE_INIT;

static void build_op_table(void) {
  kn_register_ops_conv(op_table);
  kn_register_ops_pool(op_table);
  kn_register_ops_quant(op_table);
  kn_register_ops_elementwise(op_table);
  kn_register_ops_shape(op_table);
  kn_register_ops_misc(op_table);
  for (int i = 0; i < KN_OP_COUNT_; i++)
    op_table[i].name = op_names[i];
}

const kn_op_info *kn_op_get(kn_op op) {
  if ((int)op <= KN_OP_INVALID || (int)op >= KN_OP_COUNT_)
    return NULL;
  pthread_once(&op_table_once, build_op_table);
  const kn_op_info *info = &op_table[op];
  return info->infer && info->run ? info : NULL;
}

const char *kn_op_name(kn_op op) {
  if ((int)op <= KN_OP_INVALID || (int)op >= KN_OP_COUNT_ || !op_names[op])
    return "invalid";
  return op_names[op];
}

kn_op kn_op_from_onnx(const char *op_type) {
  if (!op_type)
    return KN_OP_INVALID;
  /* Upsample (opset 9) is Resize with scales; the ops treat it as such. */
  if (strcmp(op_type, "Upsample") == 0)
    return KN_OP_RESIZE;
  for (int i = 1; i < KN_OP_COUNT_; i++)
    if (op_names[i] && strcmp(op_names[i], op_type) == 0)
      return (kn_op)i;
  return KN_OP_INVALID;
}
