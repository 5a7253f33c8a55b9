/* ONNX QDQ export (filled in below). */
#include "quant_internal.h"

kestrel_status kestrel_export_onnx(const kestrel_model *model,
                                   const char *path, kestrel_error *err) {
  (void)model;
  (void)path;
  return kn_fail(err, KESTREL_ERROR_UNSUPPORTED, "not yet");
}
