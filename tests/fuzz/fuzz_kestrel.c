/* libFuzzer target: arbitrary bytes as a compiled .kestrel file. Almost
 * every mutation would only meet the checksum, so when the bytes start with
 * the magic the target first writes the right file size and CRC-32C into
 * the header: mutations then reach the section, tensor, node and attribute
 * parsers and the graph validation behind them. A model that loads is
 * planned and run once on zeroed inputs under the same caps as
 * fuzz_tflite.c. Seeds: the real models compiled (run-fuzzers.sh). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/model.h>
#include <kestrel/run.h>

#include "format/format.h"
#include "model_internal.h"

#define FUZZ_MAX_ARENA_BYTES ((uint64_t)64 << 20)
/* Lower than the importers' targets: the point here is the parser, and
 * running the compiled real models would dominate the time. */
#define FUZZ_MAX_MACS ((uint64_t)2 * 1000 * 1000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
  uint8_t *copy = malloc(size + 1);
  if (!copy)
    return 0;
  if (size)
    memcpy(copy, data, size);
  if (size >= KN_KESTREL_HEADER_SIZE && kn_format_is_kestrel(copy, size)) {
    uint64_t n = size;
    for (int k = 0; k < 8; k++)
      copy[16 + k] = (uint8_t)(n >> (8 * k));
    uint32_t crc = kn_format_checksum(copy, size);
    for (int k = 0; k < 4; k++)
      copy[KN_KESTREL_CRC_OFFSET + k] = (uint8_t)(crc >> (8 * k));
  }
  kestrel_load_options opts = kestrel_load_options_default();
  opts.format = KESTREL_FORMAT_KESTREL;
  kestrel_model *model = NULL;
  kestrel_error err;
  kestrel_status st =
      kestrel_model_load_memory(copy, size, &opts, &model, &err);
  free(copy);
  if (st != KESTREL_OK)
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
