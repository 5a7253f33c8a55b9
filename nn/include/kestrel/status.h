/* Status codes and error messages shared by every public Kestrel call.
 *
 *   kestrel_error err;
 *   if (kestrel_model_load("face.tflite", NULL, &model, &err) != KESTREL_OK)
 *     fprintf(stderr, "kestrel: %s\n", err.message);
 */
#ifndef KESTREL_STATUS_H
#define KESTREL_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Append-only: values may reach log files and bindings. */
typedef enum kestrel_status {
  KESTREL_OK = 0,
  KESTREL_ERROR_INVALID_ARGUMENT = 1, /* caller passed something wrong */
  KESTREL_ERROR_IO = 2,               /* open/read/mmap failed */
  KESTREL_ERROR_MALFORMED = 3,        /* model file is corrupt or hostile */
  KESTREL_ERROR_UNSUPPORTED = 4,      /* valid model, op/dtype we do not run */
  KESTREL_ERROR_OUT_OF_MEMORY = 5,
  KESTREL_ERROR_SHAPE = 6, /* shapes inconsistent, or input shape rejected */
  KESTREL_ERROR_INTERNAL = 7,
} kestrel_status;

/* A caller-owned buffer that receives a one-line, human-readable reason for
 * a failure: byte offset, node name and op where they are known. */
typedef struct kestrel_error {
  char message[512];
} kestrel_error;

const char *kestrel_status_string(kestrel_status status);

#ifdef __cplusplus
}
#endif
#endif
