/* The one wait queue every sync primitive and queue sits on.
 *
 * A waiter lives on the waiting task's stack (a compact task's is
 * allocated: tide__wait_frame) and is linked into the queue's FIFO of
 * waiters. The waker unlinks it, marks it woken, stores a result in it (0
 * for a grant: a lock, a permit, an item; or an error such as
 * -ESHUTDOWN) and queues the task. A cancellation that arrives first
 * unlinks it the same way, unwoken, and resumes the task with -ECANCELED.
 * One that arrives after the wake-up but before the task runs still makes
 * the wait return -ECANCELED (the request is delivered), yet leaves
 * `woken` set: the primitive then knows it was granted something and
 * passes it on (a lock to the next waiter, a queue item back to the
 * queue), so nobody hangs (HAZARDS B19).
 *
 * Either way the waiter leaves the FIFO for `inside`, and stays there
 * until it leaves the call (tide__waitq_leave): some waiters touch the
 * primitive again after any wait (to pass a grant on, to re-acquire a
 * lock, to leave a barrier). Freeing a primitive closes its queues
 * (tide__waitq_close): the waiting ones are woken with TIDE__GONE, and a
 * waiter inside that would touch the primitive again is given TIDE__GONE
 * too, so that it returns at once without touching freed memory.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_CORE_WAITQ_H
#define TIDE_CORE_WAITQ_H

#include "core/loop.h"

/* The result of a wait on a primitive that was freed meanwhile. */
#define TIDE__GONE (-EBADF)

struct tide__waitq {
    struct tide__list waiters; /* tide__qwaiter.link, FIFO */
    size_t count;              /* in waiters */
    struct tide__list inside;  /* tide__qwaiter.link: woken or cancelled,
                                * not yet out of the call */
};

struct tide__qwaiter {
    struct tide__wait wait; /* cancel hook */
    struct tide__list link; /* in q->waiters, then in q->inside */
    tide_loop *loop;        /* the waiting task's loop */
    struct tide__coro *co;
    struct tide__waitq *q;
    void *data; /* the primitive's payload (an item...) */
    int result; /* set by the waker */
    bool woken;
};

static inline void tide__waitq_init(struct tide__waitq *q)
{
    tide__list_init(&q->waiters);
    tide__list_init(&q->inside);
    q->count = 0;
}

static inline bool tide__waitq_empty(const struct tide__waitq *q)
{
    return q->count == 0;
}

/* The first waiter, still waiting, or NULL. */
static inline struct tide__qwaiter *tide__waitq_first(struct tide__waitq *q)
{
    if (!q->count)
        return NULL;
    return tide__container_of(q->waiters.next, struct tide__qwaiter, link);
}

/* Wake w (waiting in its queue) with `result`; it is inside the queue
 * until it leaves. Callable from anywhere on the loop's thread, inside a
 * task or not. */
static inline void tide__waitq_wake(struct tide__qwaiter *w, int result)
{
    tide__list_remove(&w->link);
    w->q->count--;
    w->woken = true;
    w->result = result;
    tide__list_push_back(&w->q->inside, &w->link);
    tide__wake(w->loop, w->co, 0);
}

/* Wake every waiter of q with `result`; returns how many. */
size_t tide__waitq_wake_all(struct tide__waitq *q, int result);

/* The cancel hook of every wait on a queue (see the top). */
void tide__waitq_cancel(tide_loop *loop, struct tide__wait *wait);

/* Wait on q from the current task of `loop` (the caller checked there is
 * one) with waiter w, carrying `data`; `kind` names the wait in task
 * dumps (a lock, a queue get: its describe finds the primitive from q).
 * Returns w->result once woken, -ECANCELED if cancelled (then w->woken
 * tells whether a wake-up came first), TIDE__GONE if the primitive was
 * freed. Unless gone, w is inside q on return and the caller must
 * tide__waitq_leave(w) before returning.
 * Inline: it is the queues' hot path. */
static inline int tide__waitq_wait(tide_loop *loop, struct tide__waitq *q,
                                   struct tide__qwaiter *w, void *data,
                                   const struct tide__wait_kind *kind)
{
    w->wait.cancel = tide__waitq_cancel;
    w->wait.kind = kind;
    w->loop = loop;
    w->co = loop->current;
    w->q = q;
    w->data = data;
    w->result = 0;
    w->woken = false;
    tide__list_push_back(&q->waiters, &w->link);
    q->count++;
    int err = tide__suspend(loop, &w->wait);
    return err < 0 ? err : w->result;
}

/* The queue the waiter of wait w waits in (a kind's describe finds its
 * primitive from it). */
static inline const struct tide__waitq *tide__waitq_of(
    const struct tide__wait *w)
{
    return tide__container_of(w, struct tide__qwaiter, wait)->q;
}

/* Whether w's primitive was freed while w waited or was inside. */
static inline bool tide__waitq_gone(const struct tide__qwaiter *w)
{
    return w->result == TIDE__GONE;
}

/* Leave the queue (harmless if already unlinked). */
static inline void tide__waitq_leave(struct tide__qwaiter *w)
{
    tide__list_remove(&w->link);
}

/* The running task's loop and a waiter for its wait on a primitive:
 * `local` (the caller's frame), or for a compact task an allocation
 * (tide__wait_frame; give it back with tide__wait_frame_end). NULL with
 * *err -EPERM outside a task, -ENOMEM. */
static inline struct tide__qwaiter *tide__waitq_waiter(
    tide_loop **loop, struct tide__qwaiter *local, int *err)
{
    *loop = tide__task_loop();
    if (!*loop) {
        *err = -EPERM;
        return NULL;
    }
    struct tide__qwaiter *w = tide__wait_frame(*loop, local, sizeof *local);
    if (!w)
        *err = -ENOMEM;
    return w;
}

/* Wait on q from the running task for a wake-up (a lock, a permit, an
 * event): its result once woken (0 for a grant); -EPERM outside a task;
 * -ECANCELED, and a grant (0) that came before the cancellation goes to
 * pass_on(obj) if there is one; TIDE__GONE if the primitive was freed;
 * -ENOMEM (a compact task's waiter). Unless it was freed, left(obj, rc)
 * (if not NULL) runs last, once the waiter is out. */
int tide__waitq_acquire(struct tide__waitq *q,
                        const struct tide__wait_kind *kind,
                        void (*pass_on)(void *obj),
                        void (*left)(void *obj, int rc), void *obj);

/* The primitive is being freed: wake the waiting with TIDE__GONE and let
 * go of those inside, marking them TIDE__GONE if inside_gone (they would
 * touch the primitive again; an event's waiters, which do not, keep what
 * they were woken with). */
void tide__waitq_close(struct tide__waitq *q, bool inside_gone);

#endif
