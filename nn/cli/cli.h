/* Shared pieces of the `kestrel` command-line tool: exit codes, error
 * reporting, tensor files (.npy, ONNX TensorProto .pb), images and JSON.
 */
#ifndef KESTREL_CLI_H
#define KESTREL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include <kestrel/decode.h>
#include <kestrel/model.h>
#include <kestrel/run.h>

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

/* One line `kestrel: ...` on stderr; returns EXIT_ERROR / EXIT_USAGE. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "1,3,640,640" -> opts->input_shape; 0 on success. */
int cli_parse_shape(const char *s, kestrel_load_options *opts);
/* Strict decimal parsing with range; 0 on success. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *s, double lo, double hi, double *out);

/* Reads a whole file, refusing files above limit bytes. 0 on success;
 * on failure writes a message to err. */
int cli_read_file(const char *path, size_t limit, uint8_t **data,
                  size_t *size, kestrel_error *err);

/* Tensors owned by the CLI (data malloc'd). */
typedef struct cli_tensor {
  kestrel_dtype dtype;
  int ndim;
  int64_t dims[KESTREL_MAX_DIMS];
  void *data;
  size_t bytes;
} cli_tensor;
void cli_tensor_free(cli_tensor *t);

/* .npy v1/v2/v3, little-endian, C order. */
kestrel_status npy_parse(const uint8_t *data, size_t size, const char *name,
                         cli_tensor *out, kestrel_error *err);
kestrel_status npy_load(const char *path, cli_tensor *out, kestrel_error *err);
/* Writes t (float outputs as float32, integers as they are). */
kestrel_status npy_save(const char *path, const kestrel_tensor *t,
                        kestrel_error *err);
/* ONNX TensorProto, as in the ONNX test data sets. */
kestrel_status pb_load(const char *path, cli_tensor *out, kestrel_error *err);

/* JPEG (TurboJPEG) or PNG (libpng) to packed RGB8. */
typedef struct cli_image {
  int width, height;
  uint8_t *rgb; /* width * 3 bytes per row */
} cli_image;
kestrel_status image_load(const char *path, cli_image *img,
                          kestrel_error *err);
void image_free(cli_image *img);
int path_is_image(const char *path);

/* Folder holding the sidecars: $KESTREL_ASSETS, else ../../assets/models
 * from the executable (build tree), else the installed data folder. */
const char *cli_asset_dir(void);
/* Finds and loads the sidecar for a model (config wins when given). */
kestrel_status cli_load_sidecar(const char *model_path, const char *config,
                                kestrel_sidecar *sc, kestrel_error *err);

/* The sidecar's input size (if a sidecar is found) as input 0's shape in
 * lo; 0 when set. */
int cli_shape_from_sidecar(const char *model_path, kestrel_load_options *lo);
/* kestrel_model_load, retried with the sidecar's input size when the model
 * has dynamic input dimensions and lo gives no shape. */
kestrel_status cli_load_model(const char *path, kestrel_load_options *lo,
                              kestrel_model **model, kestrel_error *err);

/* Unless optimize is 0, runs the graph passes of `kestrel compile`
 * (fusion, NHWC layout, packed weights for the fast kernels) on a model
 * loaded from ONNX or TFLite, as ONNX Runtime and TFLite optimize at load.
 * A .kestrel file is already optimized and is left alone. */
kestrel_status cli_prepare_model(kestrel_model *model, int optimize,
                                 kestrel_error *err);
#define CLI_NO_OPTIMIZE_HELP                                                   \
  "  --no-optimize        run the graph as imported, on the reference\n"     \
  "                       kernels (ONNX/TFLite input; default: optimize)\n"

/* JSON string literal with escapes. */
void json_string(FILE *f, const char *s);
const char *dtype_name_json(kestrel_dtype d);

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_detect(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_export_onnx(int argc, char **argv);

#endif
