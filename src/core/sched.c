/* Iterations: polling, firing timers, running the batch, nested runs.
 *
 * An iteration waits for I/O (not at all if something is ready), fires
 * the timers that are due, then runs the entries that were ready when
 * the batch began (see loop.h). A run (run_forever, run_until_complete,
 * close) is iterations until it is done or stopped, on whatever stack
 * called it: a nested run keeps running on the caller's, and one asked
 * for by a compact coroutine on a borrowed stack. What a coroutine does
 * when it leaves the CPU is coro.c's.
 * SPDX-License-Identifier: MIT
 */
#include "core/signal.h"
#include "core/timer.h"

#include <errno.h>
#include <sched.h>

/* Poll at least this often while the ready queue never empties, so I/O is
 * not starved by tasks that keep yielding (Go and Tokio do the same). */
#define BUSY_POLL_INTERVAL 16

/* While pool jobs are in flight and one came back within the last
 * SPIN_RECENT_NS, the loop spins up to SPIN_NS for the next completion
 * before it blocks: a blocking wake-up across CPUs costs tens of
 * microseconds, more than a job that comes back to back takes. */
#define SPIN_NS 50000
#define SPIN_RECENT_NS 1000000

/* Hand-offs a batch may be extended by (see tide__switch_away, coro.c). */
#define EXTEND_BUDGET 64

static void dispatch(tide_loop *loop, struct tide__node *n)
{
    if (n->kind == TIDE__NODE_CALL) {
        struct tide__call *c = tide__container_of(n, struct tide__call, node);
        loop->current = NULL;
        if (__builtin_expect(loop->debug != NULL, 0)) {
            loop->debug->step_begin(loop);
            c->run(loop, c, false);
            loop->debug->step_end(loop, NULL, c);
        } else {
            c->run(loop, c, false);
        }
        loop->current = loop->sched_owner;
        return;
    }
    tide__coro_resume(loop, tide__container_of(n, struct tide__coro, node));
}

int64_t tide__loop_wait_ns(const tide_loop *loop)
{
    const struct tide__timer *t = tide__heap_min(&loop->timers);

    if (loop->ready.count || loop->stopping)
        return 0;
    if (!t || t->deadline == INT64_MAX)
        return -1; /* no timer will ever fire: wait for an fd */
    if (loop->virtual_clock)
        return 0; /* the iteration jumps to the timer */
    int64_t left = t->deadline - tide__clock_ns();
    return left > 0 ? left : 0;
}

/* Spin for a completion from another thread (see SPIN_NS); true if one
 * came. */
static bool spin_for_remote(tide_loop *loop, int64_t timeout)
{
    int64_t start = tide__clock_ns();
    bool came = false;

    if (start - loop->remote_last > SPIN_RECENT_NS)
        return false;
    int64_t end =
        start + (timeout > 0 && timeout < SPIN_NS ? timeout : SPIN_NS);
    /* Senders skip the wake-up meanwhile (remote.c); seq_cst: see
     * tide__remote_post_locked. */
    atomic_store(&loop->remote_spinning, true);
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&loop->remote_pending,
                                 memory_order_acquire)) {
            came = true;
            break;
        }
        if (i % 8 == 0 && tide__clock_ns() >= end)
            break;
        /* Yield, not pause: on a machine whose CPUs are all busy (or
         * a process pinned to one) the thread we wait for may need
         * this CPU. */
        sched_yield();
    }
    atomic_store(&loop->remote_spinning, false);
    return came || atomic_load(&loop->remote_pending);
}

static void run_once(tide_loop *loop)
{
    int64_t timeout = tide__loop_wait_ns(loop);
    int64_t cap = loop->embed_wait;
    struct tide__timer *t;

    if (timeout != 0 && loop->now >= loop->next_trim)
        tide__loop_trim(loop); /* idle: give back what a burst left */
    if (__builtin_expect(cap >= 0, 0)) {
        /* tide_loop_run_once: for this iteration only, not for runs
         * nested in it. It polls even when something is ready: it is
         * called because the backend fd is readable, and must clear it. */
        loop->embed_wait = -1;
        if (timeout < 0 ? cap != INT64_MAX : timeout > cap)
            timeout = cap;
    } else if (__builtin_expect(timeout < 0 && loop->debug != NULL, 0) &&
               !loop->closing && loop->debug->stuck(loop)) {
        /* Debug mode: nothing can ever wake the loop (reported). */
        loop->deadlocked = true;
        loop->stopping = true;
        return;
    }
    if (timeout != 0 && loop->remote_expected > 0 &&
        spin_for_remote(loop, timeout))
        timeout = 0;
    /* The backend is waited on every iteration when idle (and by
     * tide_loop_run_once); when busy, every BUSY_POLL_INTERVAL
     * iterations while ops are in flight. */
    if (timeout != 0 || cap >= 0 ||
        (loop->backend.inflight > 0 &&
         ++loop->busy_iterations >= BUSY_POLL_INTERVAL)) {
        loop->busy_iterations = 0;
        tide__loop_poll(loop, timeout);
    } else if (timeout == 0 && loop->virtual_clock && !loop->ready.count) {
        tide__loop_poll(loop, 0);
    }
    if (atomic_load_explicit(&loop->remote_pending, memory_order_acquire))
        tide__remote_drain(loop);
    if (__builtin_expect(loop->sigrec != NULL, 0))
        tide__signal_poll(loop); /* their callbacks join this batch */

    if (!loop->virtual_clock)
        loop->now = tide__clock_ns();
    else if (!loop->ready.count && (t = tide__heap_min(&loop->timers)) &&
             t->deadline > loop->now && t->deadline != INT64_MAX)
        loop->now = t->deadline; /* everyone waits: jump to the next timer */

    tide__timers_fire(loop);

    loop->ntodo = loop->ready.count;
    loop->extend = EXTEND_BUDGET;
    while (loop->ntodo > 0) {
        struct tide__node *n = tide__fifo_pop(&loop->ready);
        loop->ntodo--;
        dispatch(loop, n);
    }
    loop->iterations++;
}

/* Run iterations on the current stack; owner is the coroutine hosting a
 * nested run, if any. */
static int loop_run(tide_loop *loop, struct tide__coro *owner,
                    bool (*done)(void *arg), void *arg, const bool *done_flag)
{
    struct tide__fiber here;
    struct tide__fiber *saved_sched = loop->sched;
    struct tide__stack *saved_stack = loop->sched_stack;
    struct tide__coro *saved_owner = loop->sched_owner;
    tide_loop *saved_running = tide__running;
    const bool *saved_done = loop->run_done;
    int err = 0;

    /* A nested run keeps running on whatever stack called it: a task's,
     * or the thread's own inside a callback. */
    tide__fiber_init_here(&here, tide__stack_current);
    loop->sched = &here;
    loop->sched_owner = owner;
    loop->sched_stack = tide__stack_current;
    tide__running = loop;
    loop->depth++;
    loop->ntodo = 0;
    loop->extend = 0;
    loop->run_done = done_flag;
    for (;;) {
        if (done && done(arg))
            break;
        run_once(loop);
        if (loop->stopping) {
            loop->stopping = false;
            err = done && !done(arg) ? -EINTR : 0;
            if (loop->deadlocked) {
                loop->deadlocked = false;
                err = -EDEADLK;
            }
            break;
        }
    }
    loop->depth--;
    loop->run_done = saved_done;
    loop->sched = saved_sched;
    loop->sched_stack = saved_stack;
    loop->sched_owner = saved_owner;
    loop->current = owner;
    tide__running = saved_running;
    /* The outer batch's entries may have run here already: end it. */
    loop->ntodo = 0;
    loop->extend = 0;
    return err;
}

/* A nested run asked for by a compact coroutine (the host) runs on a
 * stack borrowed from the pool, not on the shared stack: other compact
 * coroutines need that one meanwhile, and the host is then just another
 * suspended compact coroutine whose frames may be copied away. */
struct borrowed_run {
    tide_loop *loop;
    struct tide__coro *host;
    bool (*done)(void *arg);
    void *arg;
    const bool *done_flag;
    struct tide__fiber fiber; /* the borrowed stack's context */
    int err;
};

bool tide__one_iteration(void *arg)
{
    bool *first = arg;
    bool done = !*first;

    *first = false;
    return done;
}

static void borrowed_main(void *p)
{
#ifdef TIDE__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    /* *b is on the host's frames: read it before anything can move them. */
    struct borrowed_run *b = p;
    struct borrowed_run r = *b;
    /* One iteration (tide_loop_run_once, close): its flag is on the
     * host's frames too; count on a copy here. */
    bool once = r.done == tide__one_iteration && *(const bool *)r.arg;
    if (r.done == tide__one_iteration)
        r.arg = &once;

    r.err = loop_run(r.loop, r.host, r.done, r.arg, r.done_flag);
    /* Back to the host: its frames go back onto the shared stack first.
     * That may need memory for the occupant's frames; until there is
     * some, keep the loop turning (tasks that end give memory back). */
    while (tide__compact_enter(r.loop, r.host) < 0) {
        bool first = true;
        loop_run(r.loop, r.host, tide__one_iteration, &first, NULL);
    }
    b->err = r.err;
    r.loop->current = r.host;
    tide__fiber_switch(&b->fiber, tide__stack_current, &r.host->fiber,
                       r.loop->compact_stack, true);
    __builtin_unreachable();
}

static int run_borrowed(tide_loop *loop, struct tide__coro *host,
                        bool (*done)(void *arg), void *arg,
                        const bool *done_flag)
{
    struct tide__stack_pool *pool = &loop->pools[loop->compact_pool];
    int err = 0;
    struct tide__stack *st = tide__stack_get(pool, &err);

    if (!st)
        return err;
    struct borrowed_run b = {.loop = loop,
                             .host = host,
                             .done = done,
                             .arg = arg,
                             .done_flag = done_flag};
    tide__fiber_make(&b.fiber, st, borrowed_main, &b);
    tide__fiber_switch(&host->fiber, loop->compact_stack, &b.fiber, st, false);
    if (__builtin_expect(loop->zombie != NULL, 0))
        tide__reap(loop);
    tide__fiber_destroy(&b.fiber);
    tide__stack_put(pool, st);
    return b.err;
}

bool tide__loop_foreign(tide_loop *loop)
{
    const struct tide__backend_ops *o = loop->backend.ops;

    return o->foreign && o->foreign(&loop->backend);
}

int tide__loop_run(tide_loop *loop, bool (*done)(void *arg), void *arg,
                   const bool *done_flag)
{
    struct tide__coro *owner = loop->depth ? loop->current : NULL;

    if (tide__loop_foreign(loop))
        return -EXDEV; /* its io_uring is another thread's */
    if (tide__on_shared_stack(owner))
        return run_borrowed(loop, owner, done, arg, done_flag);
    return loop_run(loop, owner, done, arg, done_flag);
}
