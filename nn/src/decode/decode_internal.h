/* Helpers shared by the decoders in nn/src/decode/. Internal. */
#ifndef KESTREL_DECODE_INTERNAL_H
#define KESTREL_DECODE_INTERNAL_H

#include <kestrel/decode.h>

/* Appends a zeroed object (growing the array); NULL when out of memory. */
kestrel_object *kd_push_object(kestrel_result *res);
kestrel_class *kd_push_class(kestrel_result *res);
/* Float view of an output tensor: the data itself for F32, a converted
 * copy (stored in *copy, caller frees) for F16. NULL + err otherwise. */
const float *kd_tensor_floats(const kestrel_tensor *t, float **copy,
                              kestrel_error *err);
const char *kd_label(const kestrel_sidecar *sc, int id);

kestrel_status kd_decode_ssd(const kestrel_sidecar *sc,
                             const kestrel_tensor *const *outputs,
                             size_t num_outputs, const kestrel_transform *tf,
                             kestrel_result *res, kestrel_error *err);
kestrel_status kd_decode_dbnet(const kestrel_sidecar *sc,
                               const kestrel_tensor *const *outputs,
                               size_t num_outputs,
                               const kestrel_transform *tf,
                               kestrel_result *res, kestrel_error *err);

#endif
