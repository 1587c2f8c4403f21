/* Scheduling: iterations, the ready queue, suspension, hand-off, sleeps.
 *
 * The invariants (see loop.h): a coroutine is resumed only from the ready
 * queue; the first loop->ntodo entries of the queue are the current batch;
 * every context that resumes after a switch first reaps loop->zombie (the
 * coroutine that finished just before), whose stack can only be released
 * once nothing runs on it any more.
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include <errno.h>
#include <math.h>
#include <time.h>

/* Poll at least this often while the ready queue never empties, so I/O is
 * not starved by tasks that keep yielding (Go and Tokio do the same). */
#define BUSY_POLL_INTERVAL 16

/* Timer slack (see tide__deadline_in): a delay of d ns may end up to
 * 2^floor(log2(d / 128)) ns late (under 0.8 %), never more than 2^20 ns
 * (~1 ms); delays under 128 us are exact. */
#define SLACK_SHIFT 7
#define SLACK_MAX_SHIFT 20
#define SLACK_MAX ((int64_t)1 << SLACK_MAX_SHIFT)

/* Hand-offs a batch may be extended by (see tide__switch_away). */
#define EXTEND_BUDGET 64

int64_t tide__clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void reap(tide_loop *loop)
{
    struct tide__coro *z = loop->zombie;

    if (z) {
        loop->zombie = NULL;
        tide__fiber_destroy(&z->fiber);
        if (z->pool == TIDE__POOL_COMPACT)
            tide__compact_forget(loop, z);
        else
            tide__stack_put(&loop->pools[z->pool], z->stack);
        z->stack = NULL;
        loop->coro_ops->finish(loop, z, 0);
    }
}

/* End a coroutine that never ran: it holds no stack. */
static void abandon(tide_loop *loop, struct tide__coro *co, int err)
{
    co->state = TIDE__CORO_DONE;
    loop->ncoros--;
    loop->coro_ops->finish(loop, co, err);
}

static void coro_main(void *arg)
{
    struct tide__coro *co = arg;
    tide_loop *loop = tide__running;

#ifdef TIDE__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    reap(loop);
    loop->coro_ops->body(co);

    /* Finished: leave the stack for good. The next context reaps us. */
    loop = tide__running;
    co->state = TIDE__CORO_DONE;
    co->stack->owner = NULL;
    if (co->pool == TIDE__POOL_COMPACT)
        loop->compact_occupant = NULL; /* nothing left to save */
    loop->ncoros--;
    loop->zombie = co;
    tide__switch_away(loop, co, true);
    __builtin_unreachable();
}

/* prepare() for a compact coroutine: put its frames back on the shared
 * stack (false if that cannot be done now: it is queued again), or give
 * it the shared stack if it has not started (false if it ended instead). */
static __attribute__((noinline)) bool prepare_compact(tide_loop *loop,
                                                      struct tide__coro *co)
{
    if (co->state == TIDE__CORO_NEW && co->must_cancel) {
        abandon(loop, co, -ECANCELED);
        return false;
    }
    int err = tide__compact_enter(loop, co);
    if (err < 0 && co->state == TIDE__CORO_NEW) {
        abandon(loop, co, err);
        return false;
    }
    if (err < 0) {
        co->queued = true; /* out of memory for the occupant's frames */
        tide__fifo_push(&loop->ready, &co->node);
        return false;
    }
    if (co->state == TIDE__CORO_NEW)
        tide__fiber_make(&co->fiber, co->stack, coro_main, co);
    return true;
}

/* Make co, just taken from the ready queue, ready to be switched to (the
 * caller calls this for new and compact coroutines only): give it a stack
 * if it has not started (false if it ended instead). Not on the shared
 * stack. */
static bool prepare(tide_loop *loop, struct tide__coro *co)
{
    int err = 0;

    if (__builtin_expect(co->pool == TIDE__POOL_COMPACT, 0))
        return prepare_compact(loop, co);
    if (co->must_cancel) {
        abandon(loop, co, -ECANCELED);
        return false;
    }
    co->stack = tide__stack_get(&loop->pools[co->pool], &err);
    if (!co->stack) {
        abandon(loop, co, err);
        return false;
    }
    co->stack->owner = co;
    tide__fiber_make(&co->fiber, co->stack, coro_main, co);
    return true;
}

/* Whether `self` runs on the shared stack, where no compact coroutine but
 * the occupant can be switched to: the copy must run elsewhere. */
static inline bool on_shared_stack(const struct tide__coro *self)
{
    return self && self->pool == TIDE__POOL_COMPACT;
}

/* Leave the running coroutine `self`: hand off to the next coroutine of
 * the batch if there is one, else return to the loop's context.
 *
 * When the batch is used up and the next entry is again a coroutine, the
 * batch may be extended by up to EXTEND_BUDGET hand-offs: the same thing
 * as further iterations in which no timer or I/O is due, without reading
 * the clock or going back to the loop's context for each (two yielding
 * tasks would otherwise pay a clock read per round). Order is unchanged:
 * the queue is FIFO either way. */
static void switch_away_slow(tide_loop *loop, struct tide__coro *self,
                             bool dying);

void tide__switch_away(tide_loop *loop, struct tide__coro *self, bool dying)
{
    if (!tide__handoff(loop, self, dying))
        switch_away_slow(loop, self, dying);
}

/* Everything else: debug mode, eager starts, a coroutine to start, the
 * end of the batch. */
static void switch_away_slow(tide_loop *loop, struct tide__coro *self,
                             bool dying)
{
    struct tide__node *n;

    if (__builtin_expect(loop->debug, 0))
        tide__debug_step_end(loop, self, NULL);

    if (self == loop->eager_co) {
        /* First suspension (or end) of an eager start: back to its
         * creator, which restores loop->current. */
        loop->eager_co = NULL;
        tide__fiber_switch(&self->fiber, self->stack, loop->eager_back,
                           loop->eager_back_stack, dying);
        return;
    }
    while ((n = loop->ready.head) && n->kind == TIDE__NODE_CORO) {
        struct tide__coro *co = tide__container_of(n, struct tide__coro, node);
        if (loop->ntodo == 0) {
            if (!tide__may_extend(loop))
                break;
            loop->extend--;
        } else {
            loop->ntodo--;
        }
        tide__fifo_pop(&loop->ready);
        co->queued = false;
        if (co->pool == TIDE__POOL_COMPACT && co != loop->compact_occupant &&
            on_shared_stack(self)) {
            /* Its frames must be copied, and not from the shared stack:
             * the loop's context does it and switches on (dispatch). */
            loop->detour = co;
            break;
        }
        if ((co->state == TIDE__CORO_NEW || co->pool == TIDE__POOL_COMPACT) &&
            !prepare(loop, co))
            continue;
        co->state = TIDE__CORO_RUNNING;
        loop->current = co;
        if (__builtin_expect(loop->debug, 0))
            tide__debug_step_begin(loop);
        tide__fiber_switch(&self->fiber, self->stack, &co->fiber, co->stack,
                           dying);
        return;
    }
    loop->current = loop->sched_owner;
    tide__fiber_switch(&self->fiber, self->stack, loop->sched,
                       loop->sched_stack, dying);
}

void tide__reap(tide_loop *loop)
{
    reap(loop);
}

int tide__yield(tide_loop *loop)
{
    struct tide__coro *self = loop->current;

    self->queued = true;
    tide__fifo_push(&loop->ready, &self->node);
    return tide__suspend(loop, NULL);
}

bool tide__coro_cancel(tide_loop *loop, struct tide__coro *co)
{
    if (co->state == TIDE__CORO_DONE)
        return false;
    if (co->state == TIDE__CORO_SUSPENDED && co->wait && !co->queued) {
        struct tide__wait *w = co->wait;
        if (co->in_cancel) {
            /* A cycle: its own hook led back here (two tasks awaiting
             * each other). Stop waiting instead of forwarding forever. */
            tide__wake(loop, co, -ECANCELED);
            return true;
        }
        co->in_cancel = true;
        w->cancel(loop, w);
        co->in_cancel = false;
    } else {
        co->must_cancel = true;
    }
    return true;
}

void tide__coro_start(tide_loop *loop, struct tide__coro *co,
                      const struct tide__coro_ops *ops, unsigned pool,
                      bool eager)
{
    loop->coro_ops = ops;
    co->node.kind = TIDE__NODE_CORO;
    co->stack = NULL;
    co->saved = NULL;
    co->pool = (uint8_t)pool;
    co->wait = NULL;
    co->wake_err = 0;
    co->state = TIDE__CORO_NEW;
    co->must_cancel = false;
    co->in_cancel = false;
    co->queued = false;
    loop->ncoros++;
    if (eager && loop->depth && tide__running == loop)
        return; /* the caller runs it with tide__coro_run_eagerly */
    co->queued = true;
    tide__fifo_push(&loop->ready, &co->node);
}

void tide__coro_run_eagerly(tide_loop *loop, struct tide__coro *co)
{
    struct tide__coro *creator = loop->current;

    if (co->queued || co->state != TIDE__CORO_NEW)
        return; /* not eager after all: it was scheduled normally */
    if (on_shared_stack(creator)) {
        /* Its frames must stay where they are meanwhile: see compact.c. */
        co->queued = true;
        tide__fifo_push(&loop->ready, &co->node);
        return;
    }
    if (!prepare(loop, co))
        return;
    struct tide__coro *saved_co = loop->eager_co;
    struct tide__fiber *saved_back = loop->eager_back;
    struct tide__stack *saved_stack = loop->eager_back_stack;
    struct tide__fiber here;

    tide__fiber_init_here(&here, tide__stack_current);
    loop->eager_co = co;
    loop->eager_back = &here;
    loop->eager_back_stack = tide__stack_current;
    co->state = TIDE__CORO_RUNNING;
    loop->current = co;
    if (__builtin_expect(loop->debug, 0))
        tide__debug_step_begin(loop);
    tide__fiber_switch(&here, tide__stack_current, &co->fiber, co->stack,
                       false);
    reap(loop);
    loop->eager_co = saved_co;
    loop->eager_back = saved_back;
    loop->eager_back_stack = saved_stack;
    loop->current = creator;
}

struct each {
    tide_loop *loop;
    void (*fn)(tide_loop *loop, struct tide__coro *co, void *arg);
    void *arg;
};

static void each_owner(void *owner, void *arg)
{
    struct each *e = arg;

    e->fn(e->loop, owner, e->arg);
}

void tide__loop_each_coro(tide_loop *loop,
                          void (*fn)(tide_loop *loop, struct tide__coro *co,
                                     void *arg),
                          void *arg)
{
    struct each e = {loop, fn, arg};

    for (struct tide__node *n = loop->ready.head; n; n = n->next) {
        if (n->kind != TIDE__NODE_CORO)
            continue;
        struct tide__coro *co = tide__container_of(n, struct tide__coro, node);
        if (co->state == TIDE__CORO_NEW)
            fn(loop, co, arg);
    }
    for (unsigned i = 0; i < loop->npools; i++)
        tide__stack_pool_each(&loop->pools[i], each_owner, &e);
    tide__compact_each(loop, fn, arg);
}

/* ---- sleeping ---------------------------------------------------------- */

int tide__alarm_arm(tide_loop *loop, struct tide__alarm *a, int64_t deadline,
                    int result)
{
    a->co = loop->current;
    a->result = result;
    tide__timer_init(&a->timer, TIDE__TIMER_WAKE);
    return tide__heap_push(&loop->timers, &a->timer, deadline);
}

void tide__alarm_disarm(tide_loop *loop, struct tide__alarm *a)
{
    tide__heap_remove(&loop->timers, &a->timer);
}

struct sleeper {
    struct tide__wait wait;
    struct tide__alarm alarm;
};

static void sleep_cancel(tide_loop *loop, struct tide__wait *w)
{
    struct sleeper *s = tide__container_of(w, struct sleeper, wait);

    tide__alarm_disarm(loop, &s->alarm);
    tide__wake(loop, s->alarm.co, -ECANCELED);
}

int tide__sleep_until(tide_loop *loop, int64_t deadline)
{
    struct sleeper local, *s = tide__wait_frame(loop, &local, sizeof local);

    if (!s)
        return -ENOMEM;
    *s = (struct sleeper){.wait = {.cancel = sleep_cancel, .what = "sleep"}};
    int err = tide__alarm_arm(loop, &s->alarm, deadline, 0);
    if (err == 0) {
        err = tide__suspend(loop, &s->wait);
        tide__alarm_disarm(loop, &s->alarm); /* cancelled while queued */
    }
    tide__wait_frame_end(s, &local);
    return err;
}

int64_t tide__loop_now(const tide_loop *loop)
{
    if (loop->virtual_clock)
        return loop->now;
    int64_t now = tide__clock_ns();
    return now > loop->now ? now : loop->now;
}

int tide__deadline_in(tide_loop *loop, double seconds, int64_t *deadline)
{
    if (isnan(seconds))
        return -EINVAL;
    if (seconds <= 0) {
        /* Due already: on the next iteration, before anything that
         * becomes ready after this call (see tide__handoff). */
        *deadline = loop->now;
        return 0;
    }
    /* From the moment of the call, not the iteration's start. */
    int64_t now = tide__loop_now(loop);
    double ns = seconds * 1e9;
    if (ns >= (double)(INT64_MAX - now - SLACK_MAX)) {
        *deadline = INT64_MAX;
        return 0;
    }
    int64_t d = (int64_t)(ns + 0.5);
    *deadline = now + d;
    if (!loop->virtual_clock && d >= 1024 << SLACK_SHIFT) {
        /* Timer slack: round up to a power of two of at most 1/128 of
         * the delay (1 ms at most), so that timers set close together
         * with similar delays share a deadline, and one heap entry
         * (W3's sleepers, W4's timers: without it every deadline is
         * distinct and W4 pays a cache-missing heap walk per timer).
         * Never early; equal deadlines still fire in set order. */
        int shift = 63 - __builtin_clzll((uint64_t)d >> SLACK_SHIFT);
        int64_t g = (int64_t)1 << (shift < SLACK_MAX_SHIFT ? shift
                                                          : SLACK_MAX_SHIFT);
        *deadline = (*deadline + g - 1) & ~(g - 1);
    }
    return 0;
}

/* ---- iterations --------------------------------------------------------- */

void tide__handle_fired(tide_loop *loop, struct tide__handle *h);

static void fire_timer(tide_loop *loop, struct tide__timer *t)
{
    if (t->kind == TIDE__TIMER_WAKE) {
        struct tide__alarm *a = tide__container_of(t, struct tide__alarm,
                                                   timer);
        tide__wake(loop, a->co, a->result);
    } else {
        struct tide__handle *h = tide__container_of(t, struct tide__handle,
                                                    timer);
        tide__handle_fired(loop, h);
    }
}

void tide__remote_drain(tide_loop *loop);

static void dispatch(tide_loop *loop, struct tide__node *n)
{
    if (n->kind == TIDE__NODE_CALL) {
        struct tide__call *c = tide__container_of(n, struct tide__call, node);
        loop->current = NULL;
        if (__builtin_expect(loop->debug, 0)) {
            tide__debug_step_begin(loop);
            c->run(loop, c, false);
            tide__debug_step_end(loop, NULL, c);
        } else {
            c->run(loop, c, false);
        }
        loop->current = loop->sched_owner;
        return;
    }
    struct tide__coro *co = tide__container_of(n, struct tide__coro, node);
    co->queued = false;
    if ((co->state == TIDE__CORO_NEW || co->pool == TIDE__POOL_COMPACT) &&
        !prepare(loop, co))
        return;
    for (;;) {
        co->state = TIDE__CORO_RUNNING;
        loop->current = co;
        if (__builtin_expect(loop->debug, 0))
            tide__debug_step_begin(loop);
        tide__fiber_switch(loop->sched, loop->sched_stack, &co->fiber,
                           co->stack, false);
        reap(loop);
        /* A compact coroutine handed off to another through here: the
         * batch goes on with it (see switch_away_slow). */
        co = loop->detour;
        if (!co)
            break;
        loop->detour = NULL;
        if (!prepare(loop, co))
            break;
    }
    loop->current = loop->sched_owner;
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
    }
    /* The backend is waited on every iteration when idle (and by
     * tide_loop_run_once); when busy, every BUSY_POLL_INTERVAL
     * iterations while ops are in flight. */
    if (timeout != 0 || cap >= 0 || (loop->backend.inflight > 0 &&
                         ++loop->busy_iterations >= BUSY_POLL_INTERVAL)) {
        loop->busy_iterations = 0;
        tide__loop_poll(loop, timeout);
    } else if (timeout == 0 && loop->virtual_clock && !loop->ready.count) {
        tide__loop_poll(loop, 0);
    }
    if (atomic_load_explicit(&loop->remote_pending, memory_order_acquire))
        tide__remote_drain(loop);
    if (__builtin_expect(loop->debug, 0))
        tide__debug_poll(loop);

    if (!loop->virtual_clock)
        loop->now = tide__clock_ns();
    else if (!loop->ready.count && (t = tide__heap_min(&loop->timers)) &&
             t->deadline > loop->now && t->deadline != INT64_MAX)
        loop->now = t->deadline; /* everyone waits: jump to the next timer */

    while ((t = tide__heap_min(&loop->timers)) && t->deadline <= loop->now) {
        tide__heap_pop(&loop->timers);
        fire_timer(loop, t);
    }

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
    struct tide__fiber fiber;   /* the borrowed stack's context */
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
    struct borrowed_run b = {.loop = loop, .host = host, .done = done,
                             .arg = arg, .done_flag = done_flag};
    tide__fiber_make(&b.fiber, st, borrowed_main, &b);
    tide__fiber_switch(&host->fiber, loop->compact_stack, &b.fiber, st,
                       false);
    if (__builtin_expect(loop->zombie != NULL, 0))
        reap(loop);
    tide__fiber_destroy(&b.fiber);
    tide__stack_put(pool, st);
    return b.err;
}

int tide__loop_run(tide_loop *loop, bool (*done)(void *arg), void *arg,
                   const bool *done_flag)
{
    struct tide__coro *owner = loop->depth ? loop->current : NULL;

    if (on_shared_stack(owner))
        return run_borrowed(loop, owner, done, arg, done_flag);
    return loop_run(loop, owner, done, arg, done_flag);
}
