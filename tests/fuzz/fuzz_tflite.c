/* libFuzzer target: arbitrary bytes as a TFLite flatbuffer. Loading must
 * fail cleanly or succeed; a model that loads is planned and run once on
 * zeroed inputs, unless its activations or work exceed the caps below: big
 * models are valid, only slow to run under the sanitizers. The arena cap is
 * below fuzz_onnx.c's because ops without a MAC count (Resize, Pad) grow
 * the work with the activations alone: a 12x12 resize mutated to fill 64 MiB
 * ran for 20 s under ASan. Seeds: the BlazeFace models (run-fuzzers.sh). */
#include <stddef.h>
#include <stdint.h>

#include <kestrel/model.h>
#include <kestrel/run.h>

#include "model_internal.h"

#define FUZZ_MAX_ARENA_BYTES ((uint64_t)16 << 20)
#define FUZZ_MAX_MACS ((uint64_t)50 * 1000 * 1000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Upper bound of the arena the planner will ask for: every non-constant
 * tensor plus the largest scratch, computed before anything is allocated. */
static uint64_t arena_bound(const kn_graph *g) {
  uint64_t total = 0, scratch = 0;
  for (int i = 0; i < g->num_tensors; i++)
    if (g->tensors[i].kind != KN_TENSOR_CONSTANT)
      total += kn_tensor_bytes(&g->tensors[i]);
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    const kn_op_info *op = kn_op_get(n->op);
    if (n->dead || !op || !op->scratch)
      continue;
    uint64_t need = op->scratch((kn_graph *)g, n);
    if (need > scratch)
      scratch = need;
  }
  return total + scratch;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kestrel_load_options opts = kestrel_load_options_default();
  opts.format = KESTREL_FORMAT_TFLITE;
  kestrel_model *model = NULL;
  kestrel_error err;
  if (kestrel_model_load_memory(data, size, &opts, &model, &err) !=
      KESTREL_OK)
    return 0;
  kestrel_model_stats stats;
  kestrel_model_get_stats(model, &stats);
  if (arena_bound(model->graph) <= FUZZ_MAX_ARENA_BYTES &&
      stats.macs <= FUZZ_MAX_MACS) {
    kestrel_session *session = NULL;
    if (kestrel_session_create(model, NULL, &session, &err) == KESTREL_OK) {
      kestrel_session_run(session, &err);
      kestrel_session_free(session);
    }
  }
  kestrel_model_free(model);
  return 0;
}
