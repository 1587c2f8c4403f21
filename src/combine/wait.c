/* tide_wait: asyncio.wait over a set of futures.
 *
 * One INLINE link per still-pending future counts completions (and
 * failures, for FIRST_EXCEPTION) and wakes the waiting task once the
 * condition holds; an alarm ends the wait at the timeout. Nothing is
 * cancelled: on timeout or cancellation the links are simply unlinked.
 * SPDX-License-Identifier: MIT
 */
#include "task/future.h"

#include "base/alloc.h"
#include "core/timer.h"

#include <errno.h>
#include <math.h>

struct waitset {
    struct tide__wait wait;
    struct tide__alarm alarm;
    tide_loop *loop;
    struct tide__coro *co;
    int when;
    size_t n, ndone, nfailed;
    bool woken;
    struct tide__inline links[];
};

static bool holds(int when, size_t n, size_t ndone, size_t nfailed)
{
    switch (when) {
    case TIDE_FIRST_COMPLETED:
        return ndone > 0;
    case TIDE_FIRST_EXCEPTION:
        return nfailed > 0 || ndone == n;
    default:
        return ndone == n;
    }
}

static bool failed(const tide_future *f)
{
    return f->done && f->err && f->err != -ECANCELED;
}

static void on_done(struct tide__inline *in, tide_future *f)
{
    struct waitset *w = tide__link_owner(in, struct waitset, links);

    w->ndone++;
    if (failed(f))
        w->nfailed++;
    if (!w->woken && holds(w->when, w->n, w->ndone, w->nfailed)) {
        w->woken = true;
        tide__wake(w->loop, w->co, 0);
    }
}

/* tide_wait: until its condition holds (or its timeout). */
static const struct tide__wait_kind wait_kind = {.what = "wait"};

static void wait_cancel(tide_loop *loop, struct tide__wait *wait)
{
    struct waitset *w = tide__container_of(wait, struct waitset, wait);

    w->woken = true;
    tide__wake(loop, w->co, -ECANCELED);
}

static void report(tide_future *const *fs, size_t n, tide_future **done,
                   size_t *ndone, tide_future **pending, size_t *npending)
{
    size_t d = 0, p = 0;

    for (size_t i = 0; i < n; i++) {
        if (fs[i]->done) {
            if (done)
                done[d] = fs[i];
            d++;
        } else {
            if (pending)
                pending[p] = fs[i];
            p++;
        }
    }
    if (ndone)
        *ndone = d;
    if (npending)
        *npending = p;
}

int tide_wait(tide_future *const *fs, size_t n, int return_when,
              double timeout, tide_future **done, size_t *ndone,
              tide_future **pending, size_t *npending)
{
    if (!fs || n == 0 || n > UINT32_MAX || isnan(timeout) ||
        return_when < TIDE_FIRST_COMPLETED || return_when > TIDE_ALL_COMPLETED)
        return -EINVAL;
    tide_loop *loop = fs[0] ? fs[0]->loop : NULL;
    tide_future *self = tide_current_task();
    size_t nd = 0, nf = 0;
    for (size_t i = 0; i < n; i++) {
        if (!fs[i] || fs[i]->loop != loop || fs[i] == self)
            return -EINVAL; /* waiting for itself would never end */
        nd += fs[i]->done;
        nf += failed(fs[i]);
    }
    if (holds(return_when, n, nd, nf) || timeout <= 0) {
        report(fs, n, done, ndone, pending, npending);
        return 0;
    }
    int err = tide__in_task_of(loop);
    if (err < 0)
        return err;

    struct waitset *w = tide__malloc(sizeof *w + n * sizeof w->links[0]);
    if (!w)
        return -ENOMEM;
    w->wait.cancel = wait_cancel;
    w->wait.kind = &wait_kind;
    w->loop = loop;
    w->co = loop->current;
    w->when = return_when;
    w->n = n;
    w->ndone = nd;
    w->nfailed = nf;
    w->woken = false;
    int64_t deadline = INT64_MAX;
    if (!isinf(timeout))
        tide__deadline_in(loop, timeout, &deadline);
    if (deadline != INT64_MAX)
        err = tide__alarm_arm(loop, &w->alarm, deadline, 0);
    else
        tide__timer_init(&w->alarm.timer, TIDE__TIMER_WAKE);
    if (err < 0) {
        tide__free(w);
        return err;
    }
    for (size_t i = 0; i < n; i++) {
        w->links[i].node.kind = TIDE__NODE_INLINE;
        w->links[i].node.aux = (uint32_t)i;
        w->links[i].fn = NULL; /* NULL: not linked, not retained */
        if (!fs[i]->done) {
            w->links[i].fn = on_done;
            tide_future_retain(fs[i]);
            tide__future_add_node(fs[i], &w->links[i].node);
        }
    }
    err = tide__suspend(loop, &w->wait);
    tide__alarm_disarm(loop, &w->alarm);
    for (size_t i = 0; i < n; i++) {
        if (!w->links[i].fn)
            continue;
        if (!fs[i]->done) /* a done future detached its list already */
            tide__future_remove_node(fs[i], &w->links[i].node);
        tide_future_release(fs[i]);
    }
    tide__free(w);
    if (err < 0)
        return err;
    report(fs, n, done, ndone, pending, npending);
    return 0;
}
