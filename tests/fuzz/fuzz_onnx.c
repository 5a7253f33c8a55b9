/* libFuzzer target: arbitrary bytes as an ONNX model. Loading must fail
 * cleanly or succeed; a model that loads is planned and run once on zeroed
 * inputs (the arena is zeroed at session creation), unless it is too big
 * to be worth running under the sanitizers. */
#include <stddef.h>
#include <stdint.h>

#include <kestrel/model.h>
#include <kestrel/run.h>

#include "model_internal.h"

/* Runs above these bounds are skipped: large models are valid, just slow. */
#define FUZZ_MAX_ARENA_BYTES ((uint64_t)64 << 20)
#define FUZZ_MAX_MACS ((uint64_t)50 * 1000 * 1000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bytes of every non-constant tensor plus the largest scratch: a bound on
 * what the planner's arena can need, known before it is allocated. */
static uint64_t activation_bytes(const kn_graph *g) {
  uint64_t total = 0, scratch = 0;
  for (int i = 0; i < g->num_tensors; i++)
    if (g->tensors[i].kind != KN_TENSOR_CONSTANT)
      total += kn_tensor_bytes(&g->tensors[i]);
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_op_info *op = kn_op_get(g->nodes[i].op);
    if (!g->nodes[i].dead && op && op->scratch) {
      uint64_t need = op->scratch((kn_graph *)g, &g->nodes[i]);
      if (need > scratch)
        scratch = need;
    }
  }
  return total + scratch;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kestrel_load_options opts = kestrel_load_options_default();
  opts.format = KESTREL_FORMAT_ONNX;
  kestrel_model *model = NULL;
  kestrel_error err;
  if (kestrel_model_load_memory(data, size, &opts, &model, &err) !=
      KESTREL_OK)
    return 0;
  kestrel_model_stats stats;
  kestrel_model_get_stats(model, &stats);
  if (activation_bytes(model->graph) <= FUZZ_MAX_ARENA_BYTES &&
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
