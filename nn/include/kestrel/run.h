/* Running a loaded model: a session owns the memory arena and the plan.
 *
 *   kestrel_session *s;
 *   if (kestrel_session_create(model, NULL, &s, &err) != KESTREL_OK) ...
 *   kestrel_tensor *in = kestrel_session_input(s, 0);
 *   memcpy(in->data, pixels, kestrel_tensor_bytes(in));
 *   if (kestrel_session_run(s, &err) != KESTREL_OK) ...
 *   const kestrel_tensor *out = kestrel_session_output(s, 0);
 *   kestrel_session_free(s);
 *
 * Creating the session plans (fixes kernels and the arena); running only
 * executes: it never allocates. One session per thread; several sessions
 * may share one model.
 */
#ifndef KESTREL_RUN_H
#define KESTREL_RUN_H

#include <kestrel/model.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kestrel_session kestrel_session;

typedef struct kestrel_session_options {
  int threads; /* 0 or 1: run on the caller's thread */
  int profile; /* nonzero: time every node (kestrel_session_profile) */
} kestrel_session_options;

/* One node's share of the runs so far (sessions created with .profile). */
typedef struct kestrel_node_profile {
  const char *name; /* node name from the model */
  const char *op;   /* op after fusion, ONNX spelling ("Conv") */
  char detail[96];  /* kernel, stride, group, dtype, output shape */
  double total_ms;  /* summed over runs */
  long runs;
} kestrel_node_profile;

kestrel_status kestrel_session_create(const kestrel_model *model,
                                      const kestrel_session_options *options,
                                      kestrel_session **out,
                                      kestrel_error *err);
void kestrel_session_free(kestrel_session *session);

/* Buffers inside the arena, valid while the session lives. Fill inputs
 * before each run; outputs are overwritten by the next run. */
kestrel_tensor *kestrel_session_input(kestrel_session *session, size_t i);
const kestrel_tensor *kestrel_session_output(const kestrel_session *session,
                                             size_t i);
kestrel_status kestrel_session_run(kestrel_session *session,
                                   kestrel_error *err);

/* Copies up to max node profiles in execution order into out; returns the
 * number of executed nodes (0 when the session does not profile). */
size_t kestrel_session_profile(const kestrel_session *session,
                               kestrel_node_profile *out, size_t max);

/* Bytes of the activation arena (for reports and RSS budgets). */
size_t kestrel_session_arena_bytes(const kestrel_session *session);

#ifdef __cplusplus
}
#endif
#endif
