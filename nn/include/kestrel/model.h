/* Loading a model (ONNX or TFLite) into Kestrel's graph, and asking about it.
 *
 *   kestrel_model *model;
 *   kestrel_error err;
 *   kestrel_load_options opts = kestrel_load_options_default();
 *   if (kestrel_model_load("det.onnx", &opts, &model, &err) != KESTREL_OK) ...
 *   for (size_t i = 0; i < kestrel_model_num_inputs(model); i++)
 *     printf("%s\n", kestrel_model_input(model, i)->name);
 *   kestrel_model_free(model);
 *
 * Loading parses, checks every size and offset in the file, infers all shapes
 * and folds constant subgraphs (Shape/Gather/Cast/... chains exporters emit).
 * It computes nothing else: running needs a session (run.h).
 */
#ifndef KESTREL_MODEL_H
#define KESTREL_MODEL_H

#include <kestrel/status.h>
#include <kestrel/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kestrel_model kestrel_model;

typedef enum kestrel_model_format {
  KESTREL_FORMAT_AUTO = 0,
  KESTREL_FORMAT_ONNX = 1,
  KESTREL_FORMAT_TFLITE = 2,
  KESTREL_FORMAT_KESTREL = 3, /* compiled .kestrel file (compile.h) */
} kestrel_model_format;

typedef struct kestrel_load_options {
  kestrel_model_format format;
  /* Fixes dynamic dimensions of input 0 (e.g. N,C,H,W = 1,3,640,640).
   * input_shape_ndim == 0 leaves the model's own shape. A given shape must
   * agree with every static dimension the model declares. */
  int input_shape_ndim;
  int64_t input_shape[KESTREL_MAX_DIMS];
  int verbose; /* log what loading and folding did to stderr */
} kestrel_load_options;

kestrel_load_options kestrel_load_options_default(void);

kestrel_status kestrel_model_load(const char *path,
                                  const kestrel_load_options *options,
                                  kestrel_model **out, kestrel_error *err);
kestrel_status kestrel_model_load_memory(const void *data, size_t size,
                                         const kestrel_load_options *options,
                                         kestrel_model **out,
                                         kestrel_error *err);
void kestrel_model_free(kestrel_model *model);

size_t kestrel_model_num_inputs(const kestrel_model *model);
size_t kestrel_model_num_outputs(const kestrel_model *model);
/* Shape, dtype and name; data is NULL. Valid while the model lives. */
const kestrel_tensor *kestrel_model_input(const kestrel_model *model, size_t i);
const kestrel_tensor *kestrel_model_output(const kestrel_model *model,
                                           size_t i);
kestrel_model_format kestrel_model_source_format(const kestrel_model *model);
/* sha256 of the file bytes the model was loaded from, lower-case hex. */
const char *kestrel_model_sha256(const kestrel_model *model);

typedef struct kestrel_model_stats {
  size_t num_nodes;
  size_t num_params;    /* elements in constant tensors used as weights */
  size_t weight_bytes;  /* bytes of all constant tensors */
  uint64_t macs;        /* multiply-accumulates for one run */
} kestrel_model_stats;

void kestrel_model_get_stats(const kestrel_model *model,
                             kestrel_model_stats *stats);
/* Op histogram: name and count of the i-th distinct op, i < returned count. */
size_t kestrel_model_op_histogram(const kestrel_model *model,
                                  const char **names, size_t *counts,
                                  size_t capacity);

#ifdef __cplusplus
}
#endif
#endif
