/* libFuzzer target: arbitrary bytes as an ONNX model. Loading must fail
 * cleanly or succeed; a model that loads is planned and run once on zeroed
 * inputs (the arena is zeroed at session creation), unless it is too big
 * to be worth running under the sanitizers.
 *
 * Byte-level mutations of a protobuf mostly break its framing, so they
 * rarely get past the parser. Built as a fuzzer, the target also mutates
 * the parsed model (attribute values, dims, shape constants, op types,
 * wiring) and re-serializes it, which reaches shape inference and the
 * kernels with well-formed but hostile graphs. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/model.h>
#include <kestrel/run.h>

#include "model_internal.h"
#include "onnx.pb-c.h"

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

/* Window ops (pools) report no MACs; bound their work by output elements
 * times window size so a huge pool does not stall the fuzzer. */
static uint64_t window_work(const kn_graph *g) {
  uint64_t work = 0;
  for (int i = 0; i < g->num_nodes; i++) {
    const kn_node *n = &g->nodes[i];
    const int64_t *kernel;
    int k = kn_attr_ints(n, "kernel_shape", &kernel);
    if (n->dead || k <= 0 || n->num_outputs < 1 || n->outputs[0] < 0)
      continue;
    uint64_t window = 1;
    for (int d = 0; d < k; d++)
      window *= kernel[d] > 0 && kernel[d] < 65536 ? (uint64_t)kernel[d] : 1;
    work += window * (uint64_t)kn_tensor_numel(&g->tensors[n->outputs[0]]);
  }
  return work;
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
      stats.macs <= FUZZ_MAX_MACS &&
      window_work(model->graph) <= FUZZ_MAX_MACS) {
    kestrel_session *session = NULL;
    if (kestrel_session_create(model, NULL, &session, &err) == KESTREL_OK) {
      kestrel_session_run(session, &err);
      kestrel_session_free(session);
    }
  }
  kestrel_model_free(model);
  return 0;
}

#ifdef KESTREL_LIBFUZZER
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed);

static uint32_t rng_next(uint32_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 17;
  *state ^= *state << 5;
  return *state;
}

/* Values that break shape arithmetic: signs, zero, one, off-by-one, big. */
static int64_t interesting_int(uint32_t *rng) {
  static const int64_t values[] = {0,  1,  2,  3,   4,    7,     -1,
                                   -2, -3, 64, 255, 1024, 65536, -65536,
                                   INT32_MAX, INT32_MIN, INT64_MAX,
                                   INT64_MIN};
  return values[rng_next(rng) % (sizeof(values) / sizeof(values[0]))];
}

static float interesting_float(uint32_t *rng) {
  static const float values[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 2.0f,
                                 1e-30f, 1e30f, 3.4e38f};
  uint32_t pick = rng_next(rng) % 12;
  if (pick == 9)
    return NAN;
  if (pick == 10)
    return INFINITY;
  if (pick == 11)
    return -INFINITY;
  return values[pick];
}

static void mutate_attribute(Onnx__AttributeProto *a, uint32_t *rng) {
  if (a->n_ints && rng_next(rng) % 4 == 0) {
    a->n_ints = rng_next(rng) % (a->n_ints + 1); /* drop trailing values */
  } else if (a->n_ints) {
    a->ints[rng_next(rng) % a->n_ints] = interesting_int(rng);
  } else if (a->n_floats) {
    a->floats[rng_next(rng) % a->n_floats] = interesting_float(rng);
  } else if (a->has_i) {
    a->i = interesting_int(rng);
  } else if (a->has_f) {
    a->f = interesting_float(rng);
  }
}

static void mutate_tensor(Onnx__TensorProto *t, uint32_t *rng) {
  /* Shape constants (Reshape, Slice, Pad, ...) live in int64 tensors. */
  if (t->n_int64_data) {
    t->int64_data[rng_next(rng) % t->n_int64_data] = interesting_int(rng);
  } else if (t->n_int32_data) {
    t->int32_data[rng_next(rng) % t->n_int32_data] =
        (int32_t)interesting_int(rng);
  } else if (t->n_float_data) {
    t->float_data[rng_next(rng) % t->n_float_data] = interesting_float(rng);
  } else if (t->has_raw_data && t->raw_data.len >= 8 &&
             t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
    int64_t v = interesting_int(rng);
    size_t at = 8 * (rng_next(rng) % (t->raw_data.len / 8));
    memcpy(t->raw_data.data + at, &v, 8);
  } else if (t->has_raw_data && t->raw_data.len) {
    t->raw_data.data[rng_next(rng) % t->raw_data.len] ^=
        (uint8_t)(1u << (rng_next(rng) % 8));
  } else if (t->n_dims) {
    t->dims[rng_next(rng) % t->n_dims] = interesting_int(rng) & 0xff;
  }
}

static void replace_string(char **field, const char *value) {
  char *copy = strdup(value);
  if (!copy)
    return;
  free(*field); /* protobuf-c's default allocator is malloc */
  *field = copy;
}

/* One structural mutation of a parsed model; false if it found nothing to
 * change. */
static bool mutate_model(Onnx__ModelProto *m, uint32_t *rng) {
  Onnx__GraphProto *g = m->graph;
  switch (rng_next(rng) % 6) {
  case 0: { /* an attribute value */
    if (!g->n_node)
      return false;
    Onnx__NodeProto *n = g->node[rng_next(rng) % g->n_node];
    if (!n->n_attribute)
      return false;
    mutate_attribute(n->attribute[rng_next(rng) % n->n_attribute], rng);
    return true;
  }
  case 1: { /* a graph input's dimension or element type */
    if (!g->n_input)
      return false;
    Onnx__ValueInfoProto *vi = g->input[rng_next(rng) % g->n_input];
    if (!vi->type || vi->type->value_case !=
                         ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
      return false;
    Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    if (rng_next(rng) % 4 == 0 || !tt->shape || !tt->shape->n_dim) {
      tt->has_elem_type = 1;
      tt->elem_type = (int32_t)(rng_next(rng) % 17);
      return true;
    }
    Onnx__TensorShapeProto__Dimension *d =
        tt->shape->dim[rng_next(rng) % tt->shape->n_dim];
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
      free(d->dim_param);
    d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d->dim_value = interesting_int(rng) & 0x3ff;
    return true;
  }
  case 2: { /* an initializer's values */
    if (!g->n_initializer)
      return false;
    mutate_tensor(g->initializer[rng_next(rng) % g->n_initializer], rng);
    return true;
  }
  case 3: { /* a Constant node's tensor */
    for (size_t tries = 0; tries < 4 && g->n_node; tries++) {
      Onnx__NodeProto *n = g->node[rng_next(rng) % g->n_node];
      for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->t) {
          mutate_tensor(n->attribute[i]->t, rng);
          return true;
        }
    }
    return false;
  }
  case 4: { /* an op type, from the ops Kestrel knows */
    if (!g->n_node)
      return false;
    Onnx__NodeProto *n = g->node[rng_next(rng) % g->n_node];
    int op = 1 + (int)(rng_next(rng) % (KN_OP_COUNT_ - 1));
    replace_string(&n->op_type, kn_op_name((kn_op)op));
    return true;
  }
  default: { /* rewire an input to another tensor, or drop it */
    if (!g->n_node)
      return false;
    Onnx__NodeProto *n = g->node[rng_next(rng) % g->n_node];
    if (!n->n_input)
      return false;
    char **slot = &n->input[rng_next(rng) % n->n_input];
    Onnx__NodeProto *other = g->node[rng_next(rng) % g->n_node];
    if (rng_next(rng) % 4 == 0 || !other->n_output)
      replace_string(slot, "");
    else
      replace_string(slot, other->output[rng_next(rng) % other->n_output]);
    return true;
  }
  }
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed) {
  uint32_t rng = seed | 1;
  if (rng_next(&rng) % 3 == 0)
    return LLVMFuzzerMutate(data, size, max_size);
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
  if (!m || !m->graph) {
    if (m)
      onnx__model_proto__free_unpacked(m, NULL);
    return LLVMFuzzerMutate(data, size, max_size);
  }
  bool changed = false;
  for (uint32_t i = 0, n = 1 + rng_next(&rng) % 3; i < n; i++)
    changed |= mutate_model(m, &rng);
  size_t out = size;
  if (changed && onnx__model_proto__get_packed_size(m) <= max_size)
    out = onnx__model_proto__pack(m, data);
  onnx__model_proto__free_unpacked(m, NULL);
  return changed ? out : LLVMFuzzerMutate(data, size, max_size);
}
#endif
