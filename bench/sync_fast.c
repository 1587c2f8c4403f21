/* SYNC: the uncontended paths of the sync primitives, which must cost a
 * few ns and allocate nothing: lock acquire + release with no contention,
 * event set + clear with no waiter, semaphore acquire + release, and
 * queue put_nowait + get_nowait. Prints one line per measure:
 *   SYNC tide <what>_ns=... ns allocs=...
 * and exits 1 if any of them allocated.
 */
#include "bench.h"

#include <tide.h>

long tide__alloc_live(void); /* the library's allocation counter */

static long n_ops;
static int bad;

static void report(const char *what, double t0, long allocs_before)
{
    double dt = bench_now() - t0;
    long allocs = tide__alloc_live() - allocs_before;

    printf("SYNC tide %s_ns=%.2f ns allocs=%ld n=%ld\n", what,
           dt * 1e9 / (double)n_ops, allocs, n_ops);
    if (allocs != 0)
        bad = 1;
}

static void *body(void *arg)
{
    (void)arg;
    tide_lock *lock = tide_lock_new();
    tide_event *ev = tide_event_new();
    tide_semaphore *sem = tide_semaphore_new(1);
    tide_queue *q = tide_queue_new(16);
    if (!lock || !ev || !sem || !q)
        return tide_fail(-ENOMEM);

    long a = tide__alloc_live();
    double t0 = bench_now();
    for (long i = 0; i < n_ops; i++) {
        tide_lock_acquire(lock);
        tide_lock_release(lock);
    }
    report("lock_acquire_release", t0, a);

    a = tide__alloc_live();
    t0 = bench_now();
    for (long i = 0; i < n_ops; i++) {
        tide_event_set(ev);
        tide_event_clear(ev);
    }
    report("event_set_clear", t0, a);

    a = tide__alloc_live();
    t0 = bench_now();
    for (long i = 0; i < n_ops; i++) {
        tide_semaphore_acquire(sem);
        tide_semaphore_release(sem);
    }
    report("semaphore_acquire_release", t0, a);

    a = tide__alloc_live();
    t0 = bench_now();
    for (long i = 0; i < n_ops; i++) {
        void *v;
        tide_queue_put_nowait(q, &v);
        tide_queue_get_nowait(q, &v);
    }
    report("queue_put_get_nowait", t0, a);

    tide_lock_free(lock);
    tide_event_free(ev);
    tide_semaphore_free(sem);
    tide_queue_free(q);
    return NULL;
}

int main(int argc, char **argv)
{
    n_ops = bench_arg_n(argc, argv, 10000000);
    int err = tide_run(body, NULL, NULL);
    if (err < 0) {
        fprintf(stderr, "sync_fast: %s\n", tide_strerror(err));
        return 1;
    }
    return bad;
}
