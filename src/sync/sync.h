/* The sync layer's internal helpers: a wait queue that also remembers
 * the waiters still inside a call on the primitive.
 *
 * The core's tide__waitq forgets a waiter once it is woken. A primitive
 * that grants something at the wake-up (a lock, a permit, an item) needs
 * the woken waiter to come back to it if it is cancelled before it runs
 * (to pass the grant on), and some waiters touch the primitive again
 * after any wait (a condition re-acquires its lock, a barrier party
 * leaves). So a waiter leaves the queue only for `inside` (granted, or
 * cancelled: every wake-up on a syncq is a grant, and the syncq has its
 * own cancel hook), and stays there until it leaves the call. Freeing a primitive
 * wakes the queued waiters with TIDE__GONE and sets TIDE__GONE as the
 * result of those inside: a waiter that sees it returns at once without
 * touching the freed memory.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_SYNC_SYNC_H
#define TIDE_SYNC_SYNC_H

#include "tide.h"
#include "tide/sync.h"

#include "base/alloc.h"
#include "core/waitq.h"

#include <errno.h>

/* The result of a wait on a primitive that was freed meanwhile. */
#define TIDE__GONE (-EBADF)

struct tide__syncq {
    struct tide__waitq wq;       /* waiting, FIFO */
    struct tide__list inside;    /* tide__qwaiter.link: woken, not left */
};

static inline void tide__syncq_init(struct tide__syncq *s)
{
    tide__waitq_init(&s->wq);
    tide__list_init(&s->inside);
}

/* The running loop if a task is running (a wait is possible), else NULL. */
static inline tide_loop *tide__sync_task_loop(void)
{
    tide_loop *loop = tide__running;

    return loop && loop->current ? loop : NULL;
}

static inline struct tide__qwaiter *tide__syncq_first(struct tide__syncq *s)
{
    return tide__waitq_first(&s->wq);
}

/* Wake w (queued in s) with `result` and keep it inside until it leaves. */
static inline void tide__syncq_grant(struct tide__syncq *s,
                                     struct tide__qwaiter *w, int result)
{
    tide__waitq_wake(w, result);
    tide__list_push_back(&s->inside, &w->link);
}

/* Grant every waiter of s `result`; returns how many. */
static inline size_t tide__syncq_grant_all(struct tide__syncq *s, int result)
{
    size_t n = 0;
    struct tide__qwaiter *w;

    while ((w = tide__syncq_first(s))) {
        tide__syncq_grant(s, w, result);
        n++;
    }
    return n;
}

/* The cancel hook: a waiter cancelled before any wake-up leaves the
 * queue for `inside`, like a granted one, and resumes with -ECANCELED. */
static inline void tide__syncq_cancel(tide_loop *loop, struct tide__wait *wt)
{
    struct tide__qwaiter *w = tide__container_of(wt, struct tide__qwaiter,
                                                 wait);
    struct tide__syncq *s = tide__container_of(w->q, struct tide__syncq, wq);

    if (w->woken)
        return; /* the grant won; tide__suspend reports the request */
    tide__list_remove(&w->link);
    s->wq.count--;
    tide__list_push_back(&s->inside, &w->link);
    tide__wake(loop, w->co, -ECANCELED);
}

/* Wait on s from the current task of `loop` (the caller checked there
 * is one). Returns w->result once granted, -ECANCELED if cancelled (then
 * w->woken tells whether a grant came first), TIDE__GONE if the
 * primitive was freed. Unless gone, w is inside s on return and the
 * caller must tide__syncq_leave(w) before returning. */
static inline int tide__syncq_wait(tide_loop *loop, struct tide__syncq *s,
                                   struct tide__qwaiter *w, void *data,
                                   const char *what)
{
    w->wait.cancel = tide__syncq_cancel;
    w->wait.what = what;
    w->loop = loop;
    w->co = loop->current;
    w->q = &s->wq;
    w->data = data;
    w->result = 0;
    w->woken = false;
    tide__list_push_back(&s->wq.waiters, &w->link);
    s->wq.count++;
    int err = tide__suspend(loop, &w->wait);
    return err < 0 ? err : w->result;
}

static inline bool tide__syncq_gone(const struct tide__qwaiter *w)
{
    return w->result == TIDE__GONE;
}

/* Leave s (harmless if already unlinked). */
static inline void tide__syncq_leave(struct tide__qwaiter *w)
{
    tide__list_remove(&w->link);
}

/* The running task's loop and a waiter for its wait on a primitive:
 * `local` (the caller's frame), or for a compact task an allocation
 * (tide__wait_frame; give it back with tide__wait_frame_end). NULL with
 * *err -EPERM outside a task, -ENOMEM. */
static inline struct tide__qwaiter *tide__sync_waiter(tide_loop **loop,
                                                      struct tide__qwaiter *local,
                                                      int *err)
{
    *loop = tide__sync_task_loop();
    if (!*loop) {
        *err = -EPERM;
        return NULL;
    }
    struct tide__qwaiter *w = tide__wait_frame(*loop, local, sizeof *local);
    if (!w)
        *err = -ENOMEM;
    return w;
}

/* Wait on s for a grant (a lock, a permit) from the running task: 0 once
 * granted; -EPERM outside a task; -ECANCELED, and a grant that came
 * before the cancellation goes to pass_on(obj); TIDE__GONE if the
 * primitive was freed; -ENOMEM (a compact task's waiter). Unless it was
 * freed, left(obj, rc) (if not NULL) runs last, once the waiter is out. */
static inline int tide__syncq_acquire(struct tide__syncq *s, const char *what,
                                      void (*pass_on)(void *obj),
                                      void (*left)(void *obj, int rc),
                                      void *obj)
{
    tide_loop *loop;
    int rc;
    struct tide__qwaiter local, *w = tide__sync_waiter(&loop, &local, &rc);

    if (!w)
        return rc;
    rc = tide__syncq_wait(loop, s, w, NULL, what);
    if (!tide__syncq_gone(w)) {
        tide__syncq_leave(w);
        if (rc < 0 && w->woken && w->result == 0)
            pass_on(obj); /* granted, then cancelled before it ran */
        if (left)
            left(obj, rc);
    }
    tide__wait_frame_end(w, &local);
    return rc;
}

/* The primitive is being freed: see the file comment. */
static inline void tide__syncq_close(struct tide__syncq *s)
{
    tide__waitq_wake_all(&s->wq, TIDE__GONE);
    while (!tide__list_empty(&s->inside)) {
        struct tide__qwaiter *w = tide__container_of(s->inside.next,
                                                     struct tide__qwaiter,
                                                     link);
        w->result = TIDE__GONE;
        tide__list_remove(&w->link);
    }
}

#endif
