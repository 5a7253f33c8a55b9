/* Optimizing a loaded model and saving it as a compiled .kestrel file.
 *
 *   kestrel_model *m;
 *   kestrel_error err;
 *   kestrel_load_options lo = kestrel_load_options_default();
 *   if (kestrel_model_load("det.onnx", &lo, &m, &err) != KESTREL_OK) ...
 *   kestrel_compile_options co = kestrel_compile_options_default();
 *   co.sidecar = text;               // optional: embedded verbatim
 *   co.sidecar_size = text_size;
 *   if (kestrel_model_optimize(m, &co, &err) != KESTREL_OK) ...
 *   if (kestrel_model_save(m, "det.kestrel", &co, &err) != KESTREL_OK) ...
 *   kestrel_model_free(m);
 *
 *   // Later, anywhere: the same loader maps the file (no weight copy).
 *   kestrel_model_load("det.kestrel", NULL, &m, &err);
 *
 * Optimizing runs the graph passes in a fixed order (eliminate_identity,
 * fold_constants, fuse_conv_batchnorm, fuse_conv_mul_add,
 * recognize_hardswish, fold_pad_into_conv, fuse_activation,
 * fuse_residual_add, convert_layout_nhwc, pack_weights), each logging what
 * it changed when verbose is set. The model keeps its inputs and outputs
 * (names, shapes, NCHW where the source was NCHW); only its inside changes.
 *
 * A .kestrel file holds the optimized graph, constant data (each blob
 * 64-byte aligned, used in place from the mapping), quantization
 * parameters, the memory plan, the sidecar text, the source model's sha256
 * (kestrel_model_sha256 returns it) and a CRC-32C over the whole file.
 */
#ifndef KESTREL_COMPILE_H
#define KESTREL_COMPILE_H

#include <kestrel/model.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kestrel_compile_options {
  int fuse;         /* fusion/folding passes; default 1 */
  int layout_nhwc;  /* one NHWC layout inside the graph; default 1 */
  int pack_weights; /* prepack Conv/Gemm weights for the fast kernels;
                     * default 1 */
  int verbose;      /* log each pass's changes to stderr */
  /* Sidecar text to embed (see decode.h), or NULL. Saving a model that was
   * itself loaded from a .kestrel file keeps its embedded sidecar when this
   * is NULL. */
  const char *sidecar;
  size_t sidecar_size;
} kestrel_compile_options;

kestrel_compile_options kestrel_compile_options_default(void);

/* Rewrites the model's graph in place. Sessions created before this call
 * must be freed first. */
kestrel_status kestrel_model_optimize(kestrel_model *model,
                                      const kestrel_compile_options *options,
                                      kestrel_error *err);

/* Writes the model as a .kestrel file (atomically: a temporary file is
 * renamed over path). */
kestrel_status kestrel_model_save(kestrel_model *model, const char *path,
                                  const kestrel_compile_options *options,
                                  kestrel_error *err);

/* Serialized form in memory; *data is malloc'd (free it). */
kestrel_status kestrel_model_serialize(kestrel_model *model,
                                       const kestrel_compile_options *options,
                                       void **data, size_t *size,
                                       kestrel_error *err);

/* The sidecar embedded in a model loaded from a .kestrel file: text (not
 * NUL-terminated) and size; NULL when there is none. */
const char *kestrel_model_sidecar(const kestrel_model *model, size_t *size);

/* Reads only the embedded sidecar of a .kestrel file, without loading the
 * model (after checking the file's checksum). *text is malloc'd and
 * NUL-terminated. KESTREL_ERROR_INVALID_ARGUMENT if the file is not a
 * .kestrel file, KESTREL_ERROR_IO if it embeds no sidecar. */
kestrel_status kestrel_compiled_sidecar(const char *path, char **text,
                                        size_t *size, kestrel_error *err);

/* 1 when the file at path starts with the .kestrel magic. */
int kestrel_is_compiled_file(const char *path);

/* The static memory plan of the model's activations. */
typedef struct kestrel_memory_report {
  size_t arena_bytes; /* planned arena */
  /* Largest total size of tensors alive at one step: what any plan
   * without in-place sharing needs at least. */
  size_t lower_bound;
  int in_place; /* tensors sharing bytes with their input (aliases) */
} kestrel_memory_report;

kestrel_status kestrel_model_memory_plan(const kestrel_model *model,
                                         kestrel_memory_report *report,
                                         kestrel_error *err);

#ifdef __cplusplus
}
#endif
#endif
