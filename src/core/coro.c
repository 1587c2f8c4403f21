/* Coroutines: starting, hand-offs, suspension's slow path, cancellation
 * requests, eager starts, and finding every unfinished one.
 *
 * The invariants (see loop.h): a coroutine is resumed only from the ready
 * queue; the first loop->ntodo entries of the queue are the current batch;
 * every context that resumes after a switch first reaps loop->zombie (the
 * coroutine that finished just before), whose stack can only be released
 * once nothing runs on it any more. The iterations that run the batches
 * are sched.c's; this file is what a coroutine does when it leaves the
 * CPU.
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include <errno.h>

/* The innermost loop running on this thread: sched.c sets it for the
 * length of each run. */
_Thread_local tide_loop *tide__running
    __attribute__((tls_model("initial-exec")));

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
    tide__reap(loop);
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

/* Leave the running coroutine `self`: hand off to the next coroutine of
 * the batch if there is one, else return to the loop's context.
 *
 * When the batch is used up and the next entry is again a coroutine, the
 * batch may be extended by up to EXTEND_BUDGET (sched.c) hand-offs: the
 * same thing as further iterations in which no timer or I/O is due, without
 * reading the clock or going back to the loop's context for each (two yielding
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

    if (__builtin_expect(loop->debug != NULL, 0))
        loop->debug->step_end(loop, self, NULL);

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
            tide__on_shared_stack(self)) {
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
        if (__builtin_expect(loop->debug != NULL, 0))
            loop->debug->step_begin(loop);
        tide__fiber_switch(&self->fiber, self->stack, &co->fiber, co->stack,
                           dying);
        return;
    }
    loop->current = loop->sched_owner;
    tide__fiber_switch(&self->fiber, self->stack, loop->sched,
                       loop->sched_stack, dying);
}

void tide__coro_resume(tide_loop *loop, struct tide__coro *co)
{
    co->queued = false;
    if ((co->state == TIDE__CORO_NEW || co->pool == TIDE__POOL_COMPACT) &&
        !prepare(loop, co))
        return;
    for (;;) {
        co->state = TIDE__CORO_RUNNING;
        loop->current = co;
        if (__builtin_expect(loop->debug != NULL, 0))
            loop->debug->step_begin(loop);
        tide__fiber_switch(loop->sched, loop->sched_stack, &co->fiber,
                           co->stack, false);
        tide__reap(loop);
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
    if (tide__on_shared_stack(creator)) {
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
    if (__builtin_expect(loop->debug != NULL, 0))
        loop->debug->step_begin(loop);
    tide__fiber_switch(&here, tide__stack_current, &co->fiber, co->stack,
                       false);
    tide__reap(loop);
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
