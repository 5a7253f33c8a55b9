/* Graph optimization passes, run on a prepared graph (shapes known, constant
 * subgraphs folded) by kn_optimize in a fixed order. Each pass is a verb,
 * logs what it changed through kn_log (`kestrel compile --verbose`) and
 * leaves the graph valid: removed nodes are marked dead, and kn_optimize
 * compacts the graph and re-runs shape inference on every node at the end,
 * so a pass that broke an invariant is caught here rather than at run time.
 * Internal to libkestrel-nn.
 */
#ifndef KESTREL_PASSES_H
#define KESTREL_PASSES_H

#include "graph.h"

typedef struct kn_optimize_options {
  bool fuse;         /* the fuse_* / fold_* / eliminate_* passes */
  bool layout_nhwc;  /* convert_layout_nhwc */
  bool pack_weights; /* pack_weights (needs nn/kernels) */
} kn_optimize_options;

kn_optimize_options kn_optimize_options_default(void);

/* Runs the passes in order, then compacts and re-validates the graph. */
kestrel_status kn_optimize(kn_graph *g, const kn_optimize_options *opt,
                           kestrel_error *err);

/* --- the passes; *changed receives how many rewrites each made -------- */
kestrel_status kn_pass_eliminate_identity(kn_graph *g, int *changed,
                                          kestrel_error *err);
kestrel_status kn_pass_fold_constants(kn_graph *g, int *changed,
                                      kestrel_error *err);
kestrel_status kn_pass_fuse_conv_batchnorm(kn_graph *g, int *changed,
                                           kestrel_error *err);
kestrel_status kn_pass_fuse_conv_mul_add(kn_graph *g, int *changed,
                                         kestrel_error *err);
kestrel_status kn_pass_recognize_hardswish(kn_graph *g, int *changed,
                                           kestrel_error *err);
kestrel_status kn_pass_fuse_activation(kn_graph *g, int *changed,
                                       kestrel_error *err);
kestrel_status kn_pass_fold_pad_into_conv(kn_graph *g, int *changed,
                                          kestrel_error *err);
kestrel_status kn_pass_fuse_residual_add(kn_graph *g, int *changed,
                                         kestrel_error *err);
kestrel_status kn_pass_convert_layout_nhwc(kn_graph *g, int *changed,
                                           kestrel_error *err);
kestrel_status kn_pass_pack_weights(kn_graph *g, int *changed,
                                    kestrel_error *err);
/* After pack_weights: an int8 op that is a function of one int8 byte (a
 * scalar Mul/Add, Sigmoid, Clip, ...) and the only reader of a packed int8
 * conv folds into the conv's 256-entry output table (pack_weights.c). */
kestrel_status kn_pass_fuse_int8_tables(kn_graph *g, int *changed,
                                        kestrel_error *err);
/* After pack_weights: a Mul and/or Add by a float scalar constant right
 * after a packed f32 conv become its "post_mul"/"post_add" epilogue. */
kestrel_status kn_pass_fuse_affine_epilogue(kn_graph *g, int *changed,
                                            kestrel_error *err);
/* After pack_weights: an int8 Add (+ clamp activation) of a packed int8
 * conv's output and a same-shape int8 tensor becomes the conv's residual
 * input, finished in its epilogue with the same bytes (fuse_conv.c). */
kestrel_status kn_pass_fuse_int8_residual_add(kn_graph *g, int *changed,
                                              kestrel_error *err);

/* --- memory planning --------------------------------------------------- */
typedef struct kn_memory_plan {
  size_t arena_bytes; /* what the plan needs */
  /* Largest total of simultaneously live tensors over the schedule (each
   * rounded to the arena alignment): no plan without aliasing can do
   * better. In-place aliases can beat it; then it is still reported. */
  size_t lower_bound;
  int aliased; /* tensors that share their input's bytes (in place) */
} kn_memory_plan;

/* Sets arena_offset and last_use of every non-constant tensor of a
 * prepared graph. Offsets are multiples of KN_PLAN_ALIGN. Deterministic:
 * the same graph always gives the same plan. */
#define KN_PLAN_ALIGN 64
kestrel_status kn_plan_memory(kn_graph *g, kn_memory_plan *plan,
                              kestrel_error *err);

/* --- editing helpers shared by the passes (graph_edit.c) --------------- */
/* Number of live nodes reading tensor t (each input slot counts). */
int kn_edit_use_count(const kn_graph *g, int t);
/* The only live node reading t, or -1 when none or several. */
int kn_edit_single_consumer(const kn_graph *g, int t);
bool kn_edit_is_graph_output(const kn_graph *g, int t);
bool kn_edit_is_graph_input(const kn_graph *g, int t);
/* Makes every live node (and graph output list) read `to` instead of
 * `from`. Graph outputs are not redirected (their names are the API). */
void kn_edit_replace_uses(kn_graph *g, int from, int to);
/* Removes node ni whose output 0 equals its input `in_slot` in value:
 * consumers read the input instead. When the output is a graph output,
 * the input's producer writes the output tensor directly instead. Returns
 * false (and changes nothing) when neither is possible. */
bool kn_edit_bypass(kn_graph *g, int ni, int in_slot);
/* New owned constant tensor; returns its index or -1. Invalidates tensor
 * pointers (the table may move). */
int kn_edit_new_const(kn_graph *g, const char *name, kestrel_dtype dtype,
                      int ndim, const int64_t *dims);
/* New activation tensor with the shape of tensor `like`. */
int kn_edit_new_activation(kn_graph *g, const char *name, int like);
/* Appends a node; returns its index or -1. Invalidates node pointers. */
int kn_edit_add_node(kn_graph *g, kn_op op, const char *name,
                     const int *inputs, int num_inputs, const int *outputs,
                     int num_outputs);
/* Float value of a constant that holds one value (any shape of 1
 * element, or all elements equal); false if not such a constant. */
bool kn_edit_const_scalar(const kn_tensor *t, float *value);
/* Drops dead nodes and tensors no live node, input or output refers to. */
kestrel_status kn_edit_compact(kn_graph *g, kestrel_error *err);
/* Re-runs topological sort and shape inference on every node. */
kestrel_status kn_edit_revalidate(kn_graph *g, kestrel_error *err);

#endif
