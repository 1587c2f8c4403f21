/* The one wait mechanism every sync primitive and queue sits on.
 *
 * A waiter lives on the waiting task's stack (no allocation) and is
 * linked into a FIFO of waiters. The waker unlinks it, marks it woken and
 * stores a result in it (0, or an error such as -ESHUTDOWN), then queues
 * the task. A cancellation that arrives before the wake-up unlinks the
 * waiter and resumes the task with -ECANCELED. One that arrives after the
 * wake-up but before the task runs still makes the wait return -ECANCELED
 * (the request is delivered), yet leaves `woken` set: the primitive then
 * knows it was granted something and passes it on (a lock to the next
 * waiter, a queue item back to the queue), so nobody hangs (HAZARDS B19).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_CORE_WAITQ_H
#define TIDE_CORE_WAITQ_H

#include "core/loop.h"

struct tide__waitq {
    struct tide__list waiters;   /* tide__qwaiter.link, FIFO */
    size_t count;
};

struct tide__qwaiter {
    struct tide__wait wait;      /* cancel hook */
    struct tide__list link;      /* in q->waiters until woken or cancelled */
    tide_loop *loop;             /* the waiting task's loop */
    struct tide__coro *co;
    struct tide__waitq *q;
    void *data;                  /* the primitive's payload (an item...) */
    int result;                  /* set by the waker */
    bool woken;
};

static inline void tide__waitq_init(struct tide__waitq *q)
{
    tide__list_init(&q->waiters);
    q->count = 0;
}

static inline bool tide__waitq_empty(const struct tide__waitq *q)
{
    return q->count == 0;
}

/* The first waiter, still linked, or NULL. */
static inline struct tide__qwaiter *tide__waitq_first(struct tide__waitq *q)
{
    if (!q->count)
        return NULL;
    return tide__container_of(q->waiters.next, struct tide__qwaiter, link);
}

/* Wait on q from the current task of `loop` (the caller checked there is
 * one), with a waiter of its own (tide__wait_frame). Returns the waker's
 * result once woken; -ECANCELED if cancelled; -ENOMEM (a compact task's
 * waiter could not be allocated). `what` names the wait in task dumps
 * ("event", "queue join"). */
int tide__waitq_wait(tide_loop *loop, struct tide__waitq *q,
                     const char *what);

/* Wake w (linked in its queue) with `result`. Callable from anywhere on
 * the loop's thread, inside a task or not. */
static inline void tide__waitq_wake(struct tide__qwaiter *w, int result)
{
    tide__list_remove(&w->link);
    w->q->count--;
    w->woken = true;
    w->result = result;
    tide__wake(w->loop, w->co, 0);
}

/* Wake the first waiter with `result`; returns it, or NULL if none. */
struct tide__qwaiter *tide__waitq_wake_one(struct tide__waitq *q, int result);

/* Wake every waiter with `result`; returns how many. */
size_t tide__waitq_wake_all(struct tide__waitq *q, int result);

#endif
