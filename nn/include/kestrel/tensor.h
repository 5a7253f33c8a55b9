/* Tensors as the public API sees them: a typed, shaped view of memory.
 *
 *   const kestrel_tensor *out = kestrel_session_output(session, 0);
 *   const float *scores = (const float *)out->data;
 *   size_t n = kestrel_tensor_numel(out);
 */
#ifndef KESTREL_TENSOR_H
#define KESTREL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KESTREL_MAX_DIMS 8

/* Append-only: these values are stored in compiled model files. */
typedef enum kestrel_dtype {
  KESTREL_DTYPE_UNDEFINED = 0,
  KESTREL_DTYPE_F32 = 1,
  KESTREL_DTYPE_F16 = 2,
  KESTREL_DTYPE_I8 = 3,
  KESTREL_DTYPE_U8 = 4,
  KESTREL_DTYPE_I32 = 5,
  KESTREL_DTYPE_I64 = 6,
  KESTREL_DTYPE_BOOL = 7,
  KESTREL_DTYPE_F64 = 8,
  KESTREL_DTYPE_I16 = 9,
} kestrel_dtype;

/* Quantization: real = scale * (q - zero_point). axis < 0 means per-tensor
 * (count == 1); otherwise count == dims[axis] and the arrays are per-channel. */
typedef struct kestrel_quant {
  int axis;
  int count; /* 0 when the tensor is not quantized */
  const float *scale;
  const int32_t *zero_point;
} kestrel_quant;

typedef struct kestrel_tensor {
  const char *name;
  kestrel_dtype dtype;
  int ndim;
  int64_t dims[KESTREL_MAX_DIMS];
  void *data; /* row-major, densely packed */
  kestrel_quant quant;
} kestrel_tensor;

size_t kestrel_dtype_size(kestrel_dtype dtype);
const char *kestrel_dtype_name(kestrel_dtype dtype);
size_t kestrel_tensor_numel(const kestrel_tensor *t);
size_t kestrel_tensor_bytes(const kestrel_tensor *t);

/* IEEE half <-> float, exact for every half value. */
float kestrel_f16_to_f32(uint16_t h);
uint16_t kestrel_f32_to_f16(float f);

#ifdef __cplusplus
}
#endif
#endif
