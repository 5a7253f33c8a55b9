/* Public tensor helpers: dtype sizes and names, element counts, fp16. */
#include <kestrel/status.h>
#include <kestrel/tensor.h>

#include <math.h>
#include <string.h>

size_t kestrel_dtype_size(kestrel_dtype dtype) {
  switch (dtype) {
  case KESTREL_DTYPE_F32: return 4;
  case KESTREL_DTYPE_F16: return 2;
  case KESTREL_DTYPE_I8: return 1;
  case KESTREL_DTYPE_U8: return 1;
  case KESTREL_DTYPE_I32: return 4;
  case KESTREL_DTYPE_I64: return 8;
  case KESTREL_DTYPE_BOOL: return 1;
  case KESTREL_DTYPE_F64: return 8;
  case KESTREL_DTYPE_I16: return 2;
  default: return 0;
  }
}

const char *kestrel_dtype_name(kestrel_dtype dtype) {
  switch (dtype) {
  case KESTREL_DTYPE_F32: return "float32";
  case KESTREL_DTYPE_F16: return "float16";
  case KESTREL_DTYPE_I8: return "int8";
  case KESTREL_DTYPE_U8: return "uint8";
  case KESTREL_DTYPE_I32: return "int32";
  case KESTREL_DTYPE_I64: return "int64";
  case KESTREL_DTYPE_BOOL: return "bool";
  case KESTREL_DTYPE_F64: return "float64";
  case KESTREL_DTYPE_I16: return "int16";
  default: return "undefined";
  }
}

size_t kestrel_tensor_numel(const kestrel_tensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++)
    n *= (size_t)t->dims[i];
  return n;
}

size_t kestrel_tensor_bytes(const kestrel_tensor *t) {
  return kestrel_tensor_numel(t) * kestrel_dtype_size(t->dtype);
}

float kestrel_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    /* Zero or subnormal: value = mant * 2^-24, exact in float. */
    float v = (float)mant * 0x1p-24f;
    return sign ? -v : v;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}

uint16_t kestrel_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof(x));
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* inf or nan */
    return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
  if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
    return (uint16_t)(sign | 0x7c00);
  if (ax < 0x38800000u) {
    /* Subnormal half (or zero): round to nearest even multiple of 2^-24. */
    float a;
    memcpy(&a, &ax, sizeof(a));
    float q = nearbyintf(a * 0x1p24f);
    return (uint16_t)(sign | (uint16_t)q);
  }
  /* Normal: drop 13 mantissa bits with round-half-even. */
  uint32_t e = ((ax >> 23) - 112) << 10;
  uint32_t m = (ax >> 13) & 0x3ff;
  uint32_t rest = ax & 0x1fff;
  uint32_t h = e | m;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
    h++;
  return (uint16_t)(sign | h);
}

const char *kestrel_status_string(kestrel_status status) {
  switch (status) {
  case KESTREL_OK: return "ok";
  case KESTREL_ERROR_INVALID_ARGUMENT: return "invalid argument";
  case KESTREL_ERROR_IO: return "i/o error";
  case KESTREL_ERROR_MALFORMED: return "malformed model";
  case KESTREL_ERROR_UNSUPPORTED: return "unsupported";
  case KESTREL_ERROR_OUT_OF_MEMORY: return "out of memory";
  case KESTREL_ERROR_SHAPE: return "shape error";
  case KESTREL_ERROR_INTERNAL: return "internal error";
  default: return "unknown status";
  }
}
