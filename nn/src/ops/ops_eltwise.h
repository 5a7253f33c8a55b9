/* Helpers shared by the element-wise, shape and misc reference kernels:
 * dtype-generic element access, numpy broadcasting, per-tensor quantization.
 * Private to nn/src/ops/{elementwise,shape,misc}.c (defined in elementwise.c).
 */
#ifndef KESTREL_OPS_ELTWISE_H
#define KESTREL_OPS_ELTWISE_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

/* --- dtypes ------------------------------------------------------------- */
bool kn_ew_dtype_is_int(kestrel_dtype dt); /* I8/U8/I16/I32/I64 */
bool kn_ew_dtype_is_float(kestrel_dtype dt); /* F16/F32/F64 */
/* Element i of a buffer of dtype dt, converted. Float to int truncates and
 * saturates (never undefined behaviour); NaN becomes 0. */
double kn_ew_load_f64(const void *data, kestrel_dtype dt, int64_t i);
int64_t kn_ew_load_i64(const void *data, kestrel_dtype dt, int64_t i);
/* Store with C-like conversion: ints wrap to the width of dt, bool is v!=0. */
void kn_ew_store_f64(void *data, kestrel_dtype dt, int64_t i, double v);
void kn_ew_store_i64(void *data, kestrel_dtype dt, int64_t i, int64_t v);
/* Converts n elements between any two supported dtypes. */
void kn_ew_convert(const void *src, kestrel_dtype sdt, void *dst,
                   kestrel_dtype ddt, int64_t n);

/* --- validation --------------------------------------------------------- */
/* Normalizes axis in [-rank, rank) to [0, rank); false if out of range. */
bool kn_ew_axis(int64_t axis, int rank, int *out);
/* Fails with UNSUPPORTED "dynamic shape" unless t is a constant with data. */
kestrel_status kn_ew_need_const(const kn_tensor *t, const kn_node *n,
                                const char *what, kestrel_error *err);
/* Checks the node has input 0 and output 0 with a known rank. */
kestrel_status kn_ew_check_io(kn_graph *g, const kn_node *n, int min_inputs,
                              int min_outputs, kestrel_error *err);

/* --- broadcasting ------------------------------------------------------- */
/* Multidirectional (numpy) broadcast of two shapes; false if incompatible. */
bool kn_ew_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b,
                           int *nd, int64_t *out);

#define KN_EW_MAX_OPERANDS 3

/* Walks an output shape row by row, tracking where each (broadcast) operand
 * is. Adjacent dimensions that are contiguous for every operand are merged
 * first, so same-shape operands become one long row. Use as:
 *   for (int64_t r = 0; r < it.rows; r++, kn_ew_bcast_next(&it))
 *     for (j < it.inner) operand k at it.off[k] + j * it.step[k] */
typedef struct kn_ew_bcast {
  int nd;
  int64_t dims[KN_MAX_DIMS];
  int count; /* operands */
  int64_t strides[KN_EW_MAX_OPERANDS][KN_MAX_DIMS];
  int64_t inner;  /* elements per row */
  int64_t rows;   /* 0 when the output is empty */
  int64_t step[KN_EW_MAX_OPERANDS]; /* 0 (broadcast) or stride of inner dim */
  int64_t off[KN_EW_MAX_OPERANDS];  /* element offset of the current row */
  int64_t idx[KN_MAX_DIMS];
} kn_ew_bcast;

/* Operand shapes must already broadcast to (nd, dims). */
void kn_ew_bcast_init(kn_ew_bcast *it, int nd, const int64_t *dims, int count,
                      const kn_tensor *const *operands);
void kn_ew_bcast_next(kn_ew_bcast *it);

/* --- quantization (per-tensor, TFLite style) ---------------------------- */
typedef struct kn_ew_quant {
  float scale;
  int32_t zero_point;
  int32_t qmin, qmax;
} kn_ew_quant;

/* True when t is I8/U8 with per-tensor scale/zero point. */
bool kn_ew_is_quantized(const kn_tensor *t);
/* Reads the params of t (which must be quantized). */
kn_ew_quant kn_ew_quant_of(const kn_tensor *t);
static inline float kn_ew_dequant(const kn_ew_quant *q, int32_t v) {
  return q->scale * (float)(v - q->zero_point);
}
/* Round half to even (rint under the default rounding mode), saturate. */
int32_t kn_ew_requant(const kn_ew_quant *q, float x);
/* Gives an un-annotated quantized output its input's params (TFLite
 * activations and reshapes keep them). */
void kn_ew_inherit_quant(kn_tensor *out, const kn_tensor *in);

/* --- fused activation (attribute "activation", KN_ACT_*) ---------------- */
typedef struct kn_ew_act {
  int kind;
  float alpha, lo, hi;
} kn_ew_act;

kestrel_status kn_ew_act_read(const kn_node *n, kn_ew_act *act,
                              kestrel_error *err);
float kn_ew_act_apply1(const kn_ew_act *act, float v);
void kn_ew_act_apply(const kn_ew_act *act, float *y, int64_t n);

#endif
