/* The model and session structs, shared by model.c and runtime.c only. */
#ifndef KESTREL_MODEL_INTERNAL_H
#define KESTREL_MODEL_INTERNAL_H

#include <kestrel/run.h>

#include "graph.h"

struct kestrel_model {
  kn_graph *graph;
  uint8_t *bytes; /* the file; importers may borrow constant data from it */
  size_t size;
  char sha256[65];
  kestrel_model_format format;
  kestrel_tensor *input_views;
  kestrel_tensor *output_views;
  /* .kestrel files: bytes is a read-only mmap (munmap, not free), and the
   * embedded sidecar text points into it (not NUL-terminated). */
  bool mapped;
  const char *sidecar;
  size_t sidecar_size;
};

#endif
