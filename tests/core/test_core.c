/* Engine core: SHA-256, fp16 conversion, graph preparation errors, topological
 * sorting, constant folding and arena planning on small hand-built graphs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kestrel/run.h>

#include "graph.h"
#include "model_internal.h"
#include "sha256.h"

static int failures;
#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
    }                                                                          \
  } while (0)

static void test_sha256(void) {
  char hex[65];
  kn_sha256_hex("abc", 3, hex);
  CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "abc: %s", hex);
  kn_sha256_hex("", 0, hex);
  CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0, "empty: %s", hex);
  /* 56 bytes: the padding spills into a second block. */
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  kn_sha256_hex(two, strlen(two), hex);
  CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0, "two-block: %s", hex);
}

static void test_f16(void) {
  /* Every finite half converts to float and back to the same bits. */
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
      continue; /* NaN payloads are not preserved bit for bit */
    float f = kestrel_f16_to_f32((uint16_t)h);
    if (kestrel_f32_to_f16(f) != h)
      bad++;
  }
  CHECK(bad == 0, "%d half values do not round-trip", bad);
  CHECK(kestrel_f16_to_f32(0x3c00) == 1.0f, "1.0");
  CHECK(kestrel_f16_to_f32(0xc000) == -2.0f, "-2.0");
  CHECK(kestrel_f32_to_f16(65520.0f) == 0x7c00, "overflow to inf");
  CHECK(kestrel_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00, "tie rounds to even");
  CHECK(kestrel_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02, "tie rounds up to even");
  CHECK(isnan(kestrel_f16_to_f32(kestrel_f32_to_f16(NAN))), "nan");
}

/* A graph x -> Relu -> ... -> Relu (depth nodes), float [1,c,h,w]. */
static kn_graph *relu_chain(int depth, int64_t c, int64_t h, int64_t w) {
  kn_graph *g = kn_graph_new();
  int prev = kn_graph_add_tensor(g, "x");
  g->tensors[prev].kind = KN_TENSOR_INPUT;
  int64_t dims[4] = {1, c, h, w};
  kn_set_shape(&g->tensors[prev], KESTREL_DTYPE_F32, 4, dims);
  kn_graph_add_input(g, prev);
  for (int i = 0; i < depth; i++) {
    char name[32];
    snprintf(name, sizeof(name), "t%d", i);
    int t = kn_graph_add_tensor(g, name);
    kn_graph_add_node(g, KN_OP_RELU, name, NULL, &prev, 1, &t, 1);
    prev = t;
  }
  kn_graph_add_output(g, prev);
  return g;
}

static kestrel_model *wrap(kn_graph *g) {
  kestrel_model *m = calloc(1, sizeof(*m));
  m->graph = g;
  m->input_views = calloc(1, sizeof(kestrel_tensor));
  m->output_views = calloc(1, sizeof(kestrel_tensor));
  return m;
}

static void test_arena_chain(void) {
  kn_graph *g = relu_chain(6, 3, 17, 19);
  kestrel_error err = {{0}};
  kestrel_status st = kn_graph_prepare(g, NULL, &err);
  CHECK(st == KESTREL_OK, "prepare: %s", err.message);
  if (st != KESTREL_OK) {
    kn_graph_free(g);
    return;
  }
  kestrel_model *m = wrap(g);
  kestrel_session *s = NULL;
  st = kestrel_session_create(m, NULL, &s, &err);
  CHECK(st == KESTREL_OK, "session: %s", err.message);
  if (s) {
    size_t one = 3 * 17 * 19 * 4;
    size_t aligned = (one + 63) & ~(size_t)63;
    /* A chain needs two live buffers at a time; the graph input and output
     * are pinned, so three is the most a sane planner uses. */
    CHECK(kestrel_session_arena_bytes(s) <= 3 * aligned,
          "chain arena %zu > 3 x %zu", kestrel_session_arena_bytes(s),
          aligned);
    kestrel_tensor *in = kestrel_session_input(s, 0);
    float *x = in->data;
    for (int i = 0; i < 3 * 17 * 19; i++)
      x[i] = (float)(i % 7) - 3.0f;
    st = kestrel_session_run(s, &err);
    CHECK(st == KESTREL_OK, "run: %s", err.message);
    const float *y = kestrel_session_output(s, 0)->data;
    int bad = 0;
    for (int i = 0; i < 3 * 17 * 19; i++)
      bad += y[i] != fmaxf((float)(i % 7) - 3.0f, 0.0f);
    CHECK(bad == 0, "%d wrong outputs", bad);
    kestrel_session_free(s);
  }
  kestrel_model_free(m);
}

static void test_cycle_rejected(void) {
  kn_graph *g = kn_graph_new();
  int x = kn_graph_add_tensor(g, "x");
  int a = kn_graph_add_tensor(g, "a");
  int b = kn_graph_add_tensor(g, "b");
  int64_t dims[1] = {4};
  kn_set_shape(&g->tensors[x], KESTREL_DTYPE_F32, 1, dims);
  g->tensors[x].kind = KN_TENSOR_INPUT;
  kn_graph_add_input(g, x);
  kn_graph_add_node(g, KN_OP_RELU, "n1", NULL, &b, 1, &a, 1);
  kn_graph_add_node(g, KN_OP_RELU, "n2", NULL, &a, 1, &b, 1);
  kn_graph_add_output(g, b);
  kestrel_error err = {{0}};
  kestrel_status st = kn_graph_prepare(g, NULL, &err);
  CHECK(st == KESTREL_ERROR_MALFORMED, "cycle gave %d", st);
  CHECK(strstr(err.message, "cycle") != NULL, "message: %s", err.message);
  kn_graph_free(g);
}

static void test_double_producer_rejected(void) {
  kn_graph *g = relu_chain(1, 1, 1, 4);
  int x = g->inputs[0], y = g->outputs[0];
  kn_graph_add_node(g, KN_OP_RELU, "again", NULL, &x, 1, &y, 1);
  kestrel_error err = {{0}};
  kestrel_status st = kn_graph_prepare(g, NULL, &err);
  CHECK(st == KESTREL_ERROR_MALFORMED, "double producer gave %d", st);
  CHECK(strstr(err.message, "again") != NULL, "message: %s", err.message);
  kn_graph_free(g);
}

static void test_out_of_order_sorted(void) {
  /* Nodes listed consumer-first must still run producer-first. */
  kn_graph *g = kn_graph_new();
  int x = kn_graph_add_tensor(g, "x");
  int a = kn_graph_add_tensor(g, "a");
  int b = kn_graph_add_tensor(g, "b");
  int64_t dims[1] = {4};
  kn_set_shape(&g->tensors[x], KESTREL_DTYPE_F32, 1, dims);
  g->tensors[x].kind = KN_TENSOR_INPUT;
  kn_graph_add_input(g, x);
  kn_graph_add_node(g, KN_OP_RELU, "second", NULL, &a, 1, &b, 1);
  kn_graph_add_node(g, KN_OP_NEG, "first", NULL, &x, 1, &a, 1);
  kn_graph_add_output(g, b);
  kestrel_error err = {{0}};
  kestrel_status st = kn_graph_prepare(g, NULL, &err);
  CHECK(st == KESTREL_OK, "prepare: %s", err.message);
  CHECK(strcmp(g->nodes[0].name, "first") == 0, "order: %s first",
        g->nodes[0].name);
  kn_graph_free(g);
}

static void test_dynamic_input_needs_shape(void) {
  kn_graph *g = relu_chain(1, 3, 8, 8);
  g->tensors[g->inputs[0]].dims[2] = -1;
  kestrel_error err = {{0}};
  kestrel_status st = kn_graph_prepare(g, NULL, &err);
  CHECK(st == KESTREL_ERROR_SHAPE, "dynamic dim gave %d", st);
  CHECK(strstr(err.message, "--input-shape") != NULL, "message: %s",
        err.message);
  kn_graph_free(g);

  g = relu_chain(1, 3, 8, 8);
  g->tensors[g->inputs[0]].dims[2] = -1;
  kestrel_load_options opt = kestrel_load_options_default();
  opt.input_shape_ndim = 4;
  int64_t want[4] = {1, 3, 10, 8};
  memcpy(opt.input_shape, want, sizeof(want));
  st = kn_graph_prepare(g, &opt, &err);
  CHECK(st == KESTREL_OK, "with shape: %s", err.message);
  CHECK(g->tensors[g->outputs[0]].dims[2] == 10, "output height %lld",
        (long long)g->tensors[g->outputs[0]].dims[2]);
  kn_graph_free(g);

  /* A given shape must agree with the static dimensions. */
  g = relu_chain(1, 3, 8, 8);
  want[1] = 4;
  memcpy(opt.input_shape, want, sizeof(want));
  st = kn_graph_prepare(g, &opt, &err);
  CHECK(st == KESTREL_ERROR_SHAPE, "mismatched shape gave %d", st);
  kn_graph_free(g);
}

static void test_constant_folding(void) {
  /* Shape(x) -> Gather(index 2) feeds nothing at run time but is folded. */
  kn_graph *g = relu_chain(1, 3, 8, 5);
  int x = g->inputs[0];
  int shape = kn_graph_add_tensor(g, "shape");
  kn_graph_add_node(g, KN_OP_SHAPE, "shape", NULL, &x, 1, &shape, 1);
  kn_graph_add_output(g, shape);
  kestrel_error err = {{0}};
  kestrel_status st = kn_graph_prepare(g, NULL, &err);
  CHECK(st == KESTREL_OK, "prepare: %s", err.message);
  if (st == KESTREL_OK) {
    kn_tensor *t = &g->tensors[shape];
    CHECK(t->kind == KN_TENSOR_CONSTANT, "Shape not folded");
    CHECK(t->dtype == KESTREL_DTYPE_I64 && t->ndim == 1 && t->dims[0] == 4,
          "shape of Shape");
    if (t->data)
      CHECK(((int64_t *)t->data)[3] == 5, "Shape value %lld",
            (long long)((int64_t *)t->data)[3]);
    CHECK(g->nodes[1].dead, "folded node still live");
  }
  kn_graph_free(g);
}

static void test_unsupported_op_named(void) {
  kn_graph *g = relu_chain(1, 1, 1, 4);
  g->nodes[0].op = KN_OP_EINSUM;
  kestrel_error err = {{0}};
  kestrel_status st = kn_graph_prepare(g, NULL, &err);
  if (kn_op_get(KN_OP_EINSUM) == NULL) {
    CHECK(st == KESTREL_ERROR_UNSUPPORTED, "gave %d", st);
    CHECK(strstr(err.message, "t0") != NULL, "node not named: %s",
          err.message);
  }
  kn_graph_free(g);
}

int main(void) {
  test_sha256();
  test_f16();
  test_arena_chain();
  test_cycle_rejected();
  test_double_producer_rejected();
  test_out_of_order_sorted();
  test_dynamic_input_needs_shape();
  test_constant_folding();
  test_unsupported_op_named();
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("core: all checks passed\n");
  return 0;
}
