/* The session's thread pool (see threadpool.h). Workers spin briefly on a
 * generation counter before sleeping on a condition variable: a model runs
 * hundreds of parallel ops back to back, and waking a sleeping thread costs
 * tens of microseconds each time, while the serial gaps between ops are
 * usually shorter than the spin. */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() ((void)0)
#endif

/* How long an idle thread (worker waiting for work, caller waiting for the
 * workers) polls before it blocks. */
#define SPIN_NS 50000

struct kn_threadpool {
  int threads; /* including the caller */
  pthread_t *workers;
  int started;
  pthread_mutex_t mutex;
  pthread_cond_t work_cv, done_cv;
  /* Incremented (under mutex) once per dispatched job. */
  atomic_uint generation;
  atomic_int pending; /* workers still running the current job */
  int sleeping;       /* workers blocked on work_cv, under mutex */
  bool caller_waiting; /* under mutex */
  bool stop;           /* under mutex */
  /* The current job; written before generation is bumped. */
  kn_parallel_fn fn;
  void *ctx;
  size_t count, grain;
};

typedef struct worker_arg {
  kn_threadpool *pool;
  int index; /* 1..threads-1 */
} worker_arg;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void kn_parallel_chunk(size_t count, size_t grain, int chunks, int t,
                       size_t *begin, size_t *end) {
  if (grain == 0)
    grain = 1;
  if (chunks < 1)
    chunks = 1;
  size_t units = count / grain + (count % grain != 0);
  size_t ub = units * (size_t)t / (size_t)chunks;
  size_t ue = units * (size_t)(t + 1) / (size_t)chunks;
  size_t b = ub * grain, e = ue * grain;
  if (b > count)
    b = count;
  if (e > count)
    e = count;
  *begin = b;
  *end = e;
}

static void run_chunk(kn_threadpool *p, int t) {
  size_t b, e;
  kn_parallel_chunk(p->count, p->grain, p->threads, t, &b, &e);
  if (b < e)
    p->fn(p->ctx, b, e, t);
}

/* Spins up to SPIN_NS for generation to move past seen; returns the new
 * generation, or seen if it did not move. */
static unsigned spin_for_generation(kn_threadpool *p, unsigned seen) {
  uint64_t start = 0;
  for (unsigned i = 0;; i++) {
    unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
    if (g != seen)
      return g;
    if ((i & 255) == 255) {
      uint64_t t = now_ns();
      if (!start)
        start = t;
      else if (t - start > SPIN_NS)
        return seen;
      /* On a machine with more runnable threads than cores, let the
       * thread we wait for have this core now and then. */
      sched_yield();
    }
    cpu_relax();
  }
}

static void *worker_main(void *arg) {
  worker_arg *wa = arg;
  kn_threadpool *p = wa->pool;
  int index = wa->index;
  free(wa);
  unsigned seen = 0;
  for (;;) {
    unsigned g = spin_for_generation(p, seen);
    pthread_mutex_lock(&p->mutex);
    if (g == seen) {
      while ((g = atomic_load_explicit(&p->generation,
                                       memory_order_acquire)) == seen &&
             !p->stop) {
        p->sleeping++;
        pthread_cond_wait(&p->work_cv, &p->mutex);
        p->sleeping--;
      }
    }
    bool stop = p->stop;
    pthread_mutex_unlock(&p->mutex);
    if (stop)
      return NULL;
    seen = g;
    run_chunk(p, index);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->mutex);
      if (p->caller_waiting)
        pthread_cond_signal(&p->done_cv);
      pthread_mutex_unlock(&p->mutex);
    }
  }
}

kn_threadpool *kn_threadpool_create(int threads) {
  if (threads <= 1)
    return NULL;
  if (threads > KN_MAX_THREADS)
    threads = KN_MAX_THREADS;
  kn_threadpool *p = calloc(1, sizeof(*p));
  if (!p)
    return NULL;
  p->workers = calloc((size_t)threads, sizeof(pthread_t));
  if (!p->workers || pthread_mutex_init(&p->mutex, NULL) != 0) {
    free(p->workers);
    free(p);
    return NULL;
  }
  pthread_cond_init(&p->work_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  atomic_init(&p->generation, 0);
  atomic_init(&p->pending, 0);
  for (int i = 1; i < threads; i++) {
    worker_arg *wa = malloc(sizeof(*wa));
    if (!wa)
      break;
    wa->pool = p;
    wa->index = i;
    if (pthread_create(&p->workers[i - 1], NULL, worker_main, wa) != 0) {
      free(wa);
      break;
    }
    p->started++;
  }
  /* Chunks are handed out by thread index, so the count is what started. */
  p->threads = p->started + 1;
  if (p->threads == 1) {
    kn_threadpool_destroy(p);
    return NULL;
  }
  return p;
}

void kn_threadpool_destroy(kn_threadpool *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mutex);
  p->stop = true;
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mutex);
  for (int i = 0; i < p->started; i++)
    pthread_join(p->workers[i], NULL);
  pthread_cond_destroy(&p->work_cv);
  pthread_cond_destroy(&p->done_cv);
  pthread_mutex_destroy(&p->mutex);
  free(p->workers);
  free(p);
}

int kn_threadpool_threads(const kn_threadpool *p) {
  return p ? p->threads : 1;
}

void kn_parallel_for(kn_threadpool *p, size_t count, size_t grain,
                     kn_parallel_fn fn, void *ctx) {
  if (count == 0)
    return;
  if (grain == 0)
    grain = 1;
  if (!p || count < 2 * grain) {
    fn(ctx, 0, count, 0);
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  p->count = count;
  p->grain = grain;
  pthread_mutex_lock(&p->mutex);
  atomic_store_explicit(&p->pending, p->threads - 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
  if (p->sleeping)
    pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mutex);

  run_chunk(p, 0);

  uint64_t start = 0;
  for (unsigned i = 0;
       atomic_load_explicit(&p->pending, memory_order_acquire) != 0; i++) {
    if ((i & 255) == 255) {
      uint64_t t = now_ns();
      if (!start) {
        start = t;
      } else if (t - start > SPIN_NS) {
        pthread_mutex_lock(&p->mutex);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
          p->caller_waiting = true;
          pthread_cond_wait(&p->done_cv, &p->mutex);
        }
        p->caller_waiting = false;
        pthread_mutex_unlock(&p->mutex);
        break;
      }
      sched_yield();
    }
    cpu_relax();
  }
}
