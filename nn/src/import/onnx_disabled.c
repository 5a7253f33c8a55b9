/* Stand-ins for the ONNX importer and exporter in builds without
 * protobuf-c (meson -Donnx=disabled, e.g. the aarch64 cross build): TFLite
 * and .kestrel models still load; ONNX files get a clear UNSUPPORTED error
 * instead of a link failure or a misleading "malformed" one.
 */
#include "graph.h"
#include "kestrel/quantize.h"

kestrel_status kn_import_onnx(kn_graph *g, const uint8_t *data, size_t size,
                              kestrel_error *err) {
  (void)g;
  (void)data;
  (void)size;
  return kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
                 "ONNX model: built without ONNX support (meson -Donnx)");
}

kestrel_status kestrel_export_onnx(const kestrel_model *model,
                                   const char *path, kestrel_error *err) {
  (void)model;
  (void)path;
  return kn_fail(err, KESTREL_ERROR_UNSUPPORTED,
                 "export-onnx: built without ONNX support (meson -Donnx)");
}
