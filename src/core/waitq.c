/* The wait queue (see waitq.h): cancelling a wait, waking everyone,
 * waiting for a grant, and closing a queue whose primitive is freed.
 * SPDX-License-Identifier: MIT
 */
#include "core/waitq.h"

#include <errno.h>

void tide__waitq_cancel(tide_loop *loop, struct tide__wait *wait)
{
    struct tide__qwaiter *w =
        tide__container_of(wait, struct tide__qwaiter, wait);

    if (w->woken)
        return; /* the wake-up won; tide__suspend reports the request */
    tide__list_remove(&w->link);
    w->q->count--;
    tide__list_push_back(&w->q->inside, &w->link);
    tide__wake(loop, w->co, -ECANCELED);
}

size_t tide__waitq_wake_all(struct tide__waitq *q, int result)
{
    size_t n = 0;
    struct tide__qwaiter *w;

    while ((w = tide__waitq_first(q))) {
        tide__waitq_wake(w, result);
        n++;
    }
    return n;
}

int tide__waitq_acquire(struct tide__waitq *q,
                        const struct tide__wait_kind *kind,
                        void (*pass_on)(void *obj),
                        void (*left)(void *obj, int rc), void *obj)
{
    tide_loop *loop;
    int rc;
    struct tide__qwaiter local, *w = tide__waitq_waiter(&loop, &local, &rc);

    if (!w)
        return rc;
    rc = tide__waitq_wait(loop, q, w, NULL, kind);
    if (!tide__waitq_gone(w)) {
        tide__waitq_leave(w);
        if (rc < 0 && w->woken && w->result == 0 && pass_on)
            pass_on(obj); /* granted, then cancelled before it ran */
        if (left)
            left(obj, rc);
    }
    tide__wait_frame_end(w, &local);
    return rc;
}

void tide__waitq_close(struct tide__waitq *q, bool inside_gone)
{
    tide__waitq_wake_all(q, TIDE__GONE);
    while (!tide__list_empty(&q->inside)) {
        struct tide__qwaiter *w =
            tide__container_of(q->inside.next, struct tide__qwaiter, link);
        if (inside_gone)
            w->result = TIDE__GONE;
        tide__list_remove(&w->link);
    }
}
