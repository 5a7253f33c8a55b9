/* A small pthread pool for data-parallel ops: one parallel-for over a range,
 * split into one static contiguous chunk per thread (the caller's thread
 * takes chunk 0). Created per session with the session's thread count.
 *
 *   kn_threadpool *pool = kn_threadpool_create(2);
 *   kn_parallel_for(pool, rows, 8, run_rows, &ctx);  // run_rows(ctx, b, e, t)
 *   kn_threadpool_destroy(pool);
 *
 * Static chunks (not work stealing) because conv rows cost the same, and
 * because a fixed row-to-thread map keeps results independent of timing:
 * each output element is computed by exactly one thread in the same order
 * whatever the thread count, so 1 and N threads give identical bytes.
 */
#ifndef KESTREL_THREADPOOL_H
#define KESTREL_THREADPOOL_H

#include <stddef.h>

/* More threads than this buys nothing on the targets and bounds the
 * per-thread scratch a session plans. */
#define KN_MAX_THREADS 64

typedef struct kn_threadpool kn_threadpool;

/* Runs items [begin, end) on thread `thread` (0 = the caller). */
typedef void (*kn_parallel_fn)(void *ctx, size_t begin, size_t end,
                               int thread);

/* threads <= 1 gives NULL, which every call below accepts and treats as
 * "run on the caller's thread". Returns NULL too if no thread could be
 * started (the session then simply runs single-threaded). */
kn_threadpool *kn_threadpool_create(int threads);
void kn_threadpool_destroy(kn_threadpool *pool);
/* Thread count including the caller's; 1 for NULL. */
int kn_threadpool_threads(const kn_threadpool *pool);

/* Calls fn over [0, count) split into at most threads chunks whose
 * boundaries are multiples of grain (the last chunk takes the remainder);
 * returns when every chunk is done. Ranges too small to split (fewer than
 * 2 * grain items) run on the caller's thread alone. Not reentrant: fn must
 * not call kn_parallel_for on the same pool. */
void kn_parallel_for(kn_threadpool *pool, size_t count, size_t grain,
                     kn_parallel_fn fn, void *ctx);

/* Chunk t of the split kn_parallel_for uses for `chunks` chunks, exposed so
 * that tests and callers can reason about which thread owns which rows. */
void kn_parallel_chunk(size_t count, size_t grain, int chunks, int t,
                       size_t *begin, size_t *end);

#endif
