/* Post-training INT8 quantization: calibrate an FP32 model on real inputs,
 * then rewrite it into an INT8 model that runs on the same engine.
 *
 *   kestrel_quantize_options qo = kestrel_quantize_options_default();
 *   kestrel_calibrator *cal;
 *   if (kestrel_calibrator_create(fp32_model, &qo, &cal, &err)) ...
 *   for (each calibration image) {
 *     kestrel_preprocess(&sidecar, rgb, w, h, w * 3, &input, &tf, &err);
 *     kestrel_calibrator_add(cal, input.data, &err);   // runs FP32, observes
 *   }
 *   kestrel_model *int8;
 *   if (kestrel_quantize(cal, &int8, &err)) ...          // a normal model
 *   kestrel_quantize_report_write(cal, "report/", &err); // SNR per layer
 *   kestrel_calibrator_free(cal);
 *   ... kestrel_session_create(int8, ...), run, kestrel_model_free(int8);
 *
 * The INT8 model: per-output-channel symmetric int8 weights (scale =
 * max|w| / 127), asymmetric per-tensor int8 activations, int32 biases with
 * scale in_scale * w_scale, a QuantizeLinear after each graph input and a
 * DequantizeLinear before each output. Every op of the supported set (conv,
 * depthwise, Gemm/MatMul, ConvTranspose, Add/Sub/Mul/Div, concat, pooling,
 * resize, pad, reshapes, Relu/Clip, HardSwish/HardSigmoid/Sigmoid/Tanh, which
 * are element-wise maps of 256 values (lookup tables), Softmax) reads and
 * writes int8; ops outside it, and nodes named in keep_float, run in float
 * between a DequantizeLinear and a QuantizeLinear. Concat inputs produced
 * only for the concat share its output's parameters, so it copies bytes.
 *
 * Without calibration data (options.dynamic), activations stay float and
 * each Conv/Gemm/MatMul quantizes its input at run time from that run's
 * min/max (QuantizeLinear with attribute dynamic=1, then ConvInteger or
 * MatMulInteger and a float rescale): a documented fallback that needs no
 * data but is slower and less accurate than static quantization.
 */
#ifndef KESTREL_QUANTIZE_H
#define KESTREL_QUANTIZE_H

#include <stddef.h>

#include <kestrel/model.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How a tensor's clip range is chosen from what calibration saw. */
typedef enum kestrel_calib_method {
  KESTREL_CALIB_MINMAX = 0,     /* the extremes seen */
  KESTREL_CALIB_PERCENTILE = 1, /* clip each tail at `percentile` */
  KESTREL_CALIB_ENTROPY = 2,    /* least KL divergence (TensorRT style) */
  KESTREL_CALIB_MSE = 3,        /* least expected quantization MSE */
} kestrel_calib_method;

typedef struct kestrel_quantize_options {
  /* Default MSE: on held-out photos it gave the best output SNR for
   * BlazeFace and PP-OCR cls (docs/BENCHMARKS.md, "Quantization"). */
  kestrel_calib_method method;
  double percentile;           /* for PERCENTILE, in percent: 99.99 */
  const char *const *keep_float; /* node names kept in FP32 */
  size_t num_keep_float;
  /* > 0: keep in FP32 the fewest nodes (worst per-layer SNR first) that
   * bring every output's SNR on the calibration set to this many dB. */
  double target_snr_db;
  int dynamic; /* no calibration: dynamic activation quantization */
  /* The calibrator quantizes a fused copy of the model (BatchNorm folded,
   * activations fused: the same passes as `kestrel compile`, layout kept);
   * no_fuse quantizes the graph as loaded. */
  int no_fuse;
  /* Called after each calibration step and search step (may be NULL). */
  void (*progress)(void *user, const char *stage, size_t done, size_t total);
  void *progress_user;
  int verbose; /* log decisions to stderr */
} kestrel_quantize_options;

kestrel_quantize_options kestrel_quantize_options_default(void);
/* "minmax", "percentile", "entropy", "mse"; 0 on success. */
int kestrel_calib_method_parse(const char *name, kestrel_calib_method *out);
const char *kestrel_calib_method_name(kestrel_calib_method m);

typedef struct kestrel_calibrator kestrel_calibrator;

/* The model must be FP32 with one float32 input; it must outlive the
 * calibrator. Options are copied (keep_float strings too). */
kestrel_status kestrel_calibrator_create(const kestrel_model *model,
                                         const kestrel_quantize_options *opt,
                                         kestrel_calibrator **out,
                                         kestrel_error *err);
/* Runs the FP32 model on one input (float32, the shape of input 0) and
 * records every activation's range and histogram. The input is kept for
 * --target-snr and the report. */
kestrel_status kestrel_calibrator_add(kestrel_calibrator *cal,
                                      const float *input, kestrel_error *err);
size_t kestrel_calibrator_count(const kestrel_calibrator *cal);
/* Builds the INT8 model (caller frees it with kestrel_model_free). */
kestrel_status kestrel_quantize(kestrel_calibrator *cal, kestrel_model **out,
                                kestrel_error *err);
/* After kestrel_quantize: per-layer SNR (dB) and cosine similarity of every
 * quantized tensor against FP32 over the calibration inputs, written to dir
 * as report.txt, report.json and report.svg (created if needed). */
kestrel_status kestrel_quantize_report_write(kestrel_calibrator *cal,
                                             const char *dir,
                                             kestrel_error *err);
void kestrel_calibrator_free(kestrel_calibrator *cal);

/* Accuracy helpers, public for tests and benchmarks: signal-to-noise ratio
 * in dB of `test` against `ref` (+inf when equal) and cosine similarity. */
double kestrel_snr_db(const float *ref, const float *test, size_t n);
double kestrel_cosine(const float *ref, const float *test, size_t n);

/* Writes a (quantized or float) model as ONNX, opset 13. Int8 tensors
 * become QDQ pairs around float ops (per-axis DequantizeLinear for weights)
 * so that ONNX Runtime runs the same INT8 model. NHWC graphs are written
 * NCHW (a transpose at each graph input and output). */
kestrel_status kestrel_export_onnx(const kestrel_model *model,
                                   const char *path, kestrel_error *err);

#ifdef __cplusplus
}
#endif
#endif
