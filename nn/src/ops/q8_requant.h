/* The one requantization of quantized Conv / Gemm / ConvTranspose outputs,
 * shared by the reference ops (conv.c, quant.c) so that a model run on the
 * reference ops gives the very bytes the packed fast path gives.
 *
 * Definition (kernels.h, kn_qs8_requantize):
 *   scale[m] = (float)((double)x_scale * (double)w_scale[m] / out_scale)
 *   q        = clamp(nearbyintf((float)acc * scale[m]) + zp, lo, hi)
 * with acc the int32 accumulator including the bias. What out_scale, zp and
 * [lo, hi] are depends on the fused activation, as pack_weights.c and
 * conv_fast.c define them:
 *   - clamps (none, Relu, Relu6, Relu_n1_to_1, Clip): out_scale = y_scale,
 *     zp = y_zero, [lo, hi] = the activation's real bounds quantized with
 *     nearbyint((double)bound / y_scale) + y_zero, within the dtype's range;
 *   - HardSwish, HardSigmoid, Sigmoid on int8 outputs: requantized to the
 *     activation's input range (act_scale, act_zero: q8_act_input_range)
 *     over [-128, 127], then y = lut[q + 128] with
 *     lut[i] = sat(rintf(act(act_scale * (i - act_zero)) / y_scale) + y_zero);
 *   - anything else (Tanh, LeakyRelu, uint8 outputs with a table
 *     activation): no packed form exists; the activation runs on
 *     (float)acc * (float)(x_scale * w_scale) and the result is rounded to
 *     y's grid (round half to even).
 */
#ifndef KESTREL_Q8_REQUANT_H
#define KESTREL_Q8_REQUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "ops_common.h"

typedef enum kn_q8_epilogue_kind {
  KN_Q8_EPI_CLAMP = 0, /* bounds only */
  KN_Q8_EPI_TABLE = 1, /* requantize to the activation input, then lut */
  KN_Q8_EPI_FLOAT = 2, /* activation in float (no packed counterpart) */
} kn_q8_epilogue_kind;

typedef struct kn_q8_epilogue {
  kn_q8_epilogue_kind kind;
  double out_scale;   /* divisor of the per-channel scale */
  int32_t zero_point; /* of the requantized value */
  int32_t lo, hi;     /* clamp of the requantized value */
  float y_scale;      /* FLOAT: output grid */
  int32_t y_zero;
  kn_act act;
  int8_t lut[256]; /* TABLE */
} kn_q8_epilogue;

/* Real input range [lo, hi] of HardSwish/HardSigmoid/Sigmoid worth a table
 * for output quantization (y_scale, y_zero); false for other activations.
 * The same computation as pack_weights.c's. */
bool kn_q8_act_input_range(const kn_act *a, float y_scale, int32_t y_zero,
                           double *lo, double *hi);

/* Sets up the epilogue for an output of dtype ydt (I8 or U8) with
 * quantization (y_scale, y_zero) and fused activation act. */
void kn_q8_epilogue_init(kn_q8_epilogue *e, const kn_act *act, float y_scale,
                         int32_t y_zero, kestrel_dtype ydt);

/* Per-channel float scale for input scale x_scale and weight scale w_scale
 * (for FLOAT epilogues: x_scale * w_scale, the real value per unit). */
float kn_q8_channel_scale(const kn_q8_epilogue *e, float x_scale,
                          float w_scale);

/* The output value of one accumulator (in the dtype's range). */
int32_t kn_q8_epilogue_apply(const kn_q8_epilogue *e, int32_t acc,
                             float channel_scale);

#endif
