/* The shared wait mechanism (see waitq.h).
 * SPDX-License-Identifier: MIT
 */
#include "core/waitq.h"

#include <errno.h>

static void waiter_cancel(tide_loop *loop, struct tide__wait *wait)
{
    struct tide__qwaiter *w = tide__container_of(wait, struct tide__qwaiter,
                                                 wait);

    if (w->woken)
        return; /* the wake-up won; tide__suspend reports the request */
    tide__list_remove(&w->link);
    w->q->count--;
    tide__wake(loop, w->co, -ECANCELED);
}

int tide__waitq_wait(tide_loop *loop, struct tide__waitq *q,
                     const char *what)
{
    struct tide__qwaiter local, *w = tide__wait_frame(loop, &local,
                                                      sizeof local);

    if (!w)
        return -ENOMEM;
    w->wait.cancel = waiter_cancel;
    w->wait.what = what;
    w->loop = loop;
    w->co = loop->current;
    w->q = q;
    w->data = NULL;
    w->result = 0;
    w->woken = false;
    tide__list_push_back(&q->waiters, &w->link);
    q->count++;
    int err = tide__suspend(loop, &w->wait);
    if (!w->woken && w->link.next != &w->link) {
        /* Resumed without a wake-up and still linked: cannot happen, as
         * the cancel hook unlinks; kept so the frame never stays linked. */
        tide__list_remove(&w->link);
        q->count--;
    }
    if (err == 0)
        err = w->result;
    tide__wait_frame_end(w, &local);
    return err;
}

struct tide__qwaiter *tide__waitq_wake_one(struct tide__waitq *q, int result)
{
    struct tide__qwaiter *w = tide__waitq_first(q);

    if (w)
        tide__waitq_wake(w, result);
    return w;
}

size_t tide__waitq_wake_all(struct tide__waitq *q, int result)
{
    size_t n = 0;

    while (tide__waitq_wake_one(q, result))
        n++;
    return n;
}
