/* Timeout scopes (asyncio.timeout / timeout_at) and wait_for.
 *
 * A scope arms a loop timer; when it fires, the scope cancels its task
 * (one counted cancel request, exactly as Task.cancel) and turns
 * EXPIRING. Closing the scope withdraws that request (uncancel) and turns
 * the block's -ECANCELED into -ETIMEDOUT only if no other request is left
 * standing: an outer scope or a cancel from outside still sees
 * -ECANCELED. wait_for is a scope around an await (CPython 3.12's
 * design), so the races of the old wait_for cannot exist here.
 * SPDX-License-Identifier: MIT
 */
#include "task/task.h"

#include "base/alloc.h"
#include "core/timer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

enum { T_OPEN, T_EXPIRING, T_EXPIRED };

struct tide_timeout {
    tide_timeout *outer; /* the task's enclosing open scope */
    tide_loop *loop;
    tide_future *task; /* the task the scope cancels */
    tide_handle timer; /* 0: no deadline armed */
    int64_t deadline;  /* loop ns; INT64_MAX: none */
    int cancelling;    /* the task's cancel requests at begin */
    int state;
};

static void on_deadline(void *arg)
{
    tide_timeout *t = arg;

    t->timer = 0;
    t->state = T_EXPIRING;
    tide_future_cancel(t->task);
}

static int arm(tide_timeout *t)
{
    if (t->timer)
        tide_handle_cancel(t->loop, t->timer);
    t->timer = 0;
    if (t->deadline == INT64_MAX)
        return 0;
    t->timer = tide__call_at_ns(t->loop, t->deadline, on_deadline, t);
    return t->timer ? 0 : -errno;
}

/* The body returned with scopes still open: close them (innermost
 * first), as if each ended with 0, and say so in debug mode. */
static void drop_scopes(tide_future *task)
{
    struct tide__task_info *info = tide__task_info_make(task);
    tide_timeout *t;

    while ((t = info->scope)) {
        info->scope = t->outer;
        if (t->loop->debug) {
            char who[256], msg[400];
            tide__task_describe(task, who, sizeof who);
            snprintf(msg, sizeof msg,
                     "%s returned with a timeout scope "
                     "still open (tide_timeout_end was not called)",
                     who);
            tide__loop_report(t->loop, msg);
        }
        if (t->timer)
            tide_handle_cancel(t->loop, t->timer);
        if (t->state == T_EXPIRING &&
            tide_task_uncancel(task) <= t->cancelling)
            tide__task_withdraw_pending(task);
        tide_future_release(t->task);
        tide__free(t);
    }
}

static tide_timeout *begin(int64_t deadline)
{
    tide_loop *loop = tide__task_loop();

    if (!loop) {
        errno = EPERM;
        return NULL;
    }
    tide_future *task = tide__task_of_coro(loop->current);
    struct tide__task_info *info = tide__task_info_make(task);
    if (!info)
        return NULL;
    tide_timeout *t = tide__malloc(sizeof *t);
    if (!t)
        return NULL;
    t->loop = loop;
    t->task = task;
    t->timer = 0;
    t->deadline = deadline;
    t->cancelling = tide_task_cancelling(t->task);
    t->state = T_OPEN;
    int err = arm(t);
    if (err < 0) {
        tide__free(t);
        errno = -err;
        return NULL;
    }
    tide_future_retain(t->task);
    t->outer = info->scope;
    info->scope = t;
    info->drop_scopes = drop_scopes;
    return t;
}

tide_timeout *tide_timeout_begin(double delay)
{
    int64_t deadline = INT64_MAX;

    if (isnan(delay)) {
        errno = EINVAL;
        return NULL;
    }
    tide_loop *loop = tide__task_loop();
    if (!loop) {
        errno = EPERM;
        return NULL;
    }
    if (!(isinf(delay) && delay > 0))
        tide__deadline_in(loop, delay, &deadline);
    return begin(deadline);
}

tide_timeout *tide_timeout_begin_at(double when)
{
    if (isnan(when)) {
        errno = EINVAL;
        return NULL;
    }
    return begin(tide__ns_of(when));
}

int tide_timeout_end(tide_timeout *t, int err)
{
    tide_loop *loop = tide__task_loop();

    if (!t || !loop || tide__task_of_coro(loop->current) != t->task)
        return -EINVAL;
    struct tide__task_info *info = tide__task_info_make(t->task);
    if (!info || info->scope != t)
        return -EINVAL; /* not the innermost open scope */
    info->scope = t->outer;
    if (t->timer)
        tide_handle_cancel(t->loop, t->timer);
    if (t->state == T_EXPIRING) {
        t->state = T_EXPIRED;
        if (tide_task_uncancel(t->task) <= t->cancelling) {
            /* Only ours was made since begin: withdrawn, delivered or not
             * (an await may have handed it back as pending). */
            tide__task_withdraw_pending(t->task);
            if (err == -ECANCELED)
                err = -ETIMEDOUT;
        }
    }
    tide_future_release(t->task);
    tide__free(t);
    return err;
}

double tide_timeout_when(const tide_timeout *t)
{
    if (!t || t->deadline == INT64_MAX)
        return INFINITY;
    return (double)t->deadline / 1e9;
}

int tide_timeout_reschedule(tide_timeout *t, double when)
{
    if (!t || isnan(when))
        return -EINVAL;
    if (t->state != T_OPEN)
        return -ESHUTDOWN;
    t->deadline = tide__ns_of(when);
    return arm(t);
}

bool tide_timeout_expired(const tide_timeout *t)
{
    return t && t->state != T_OPEN;
}

int tide_wait_for(tide_future *f, double timeout, void **result)
{
    if (!f || isnan(timeout))
        return -EINVAL;
    if (f->done)
        return tide_future_result(f, result);
    if (isinf(timeout) && timeout > 0)
        return tide_await(f, result);
    int err = tide__in_task_of(f->loop);
    if (err < 0)
        return err;
    tide_future *self = tide__task_of_coro(f->loop->current);
    if (f == self)
        return -EINVAL;
    if (timeout <= 0) {
        /* Already out of time: cancel f, wait until it has finished. */
        int before = tide_task_cancelling(self);
        tide_future_retain(f);
        tide_future_cancel(f);
        err = tide_await(f, result);
        if (err == -ECANCELED && tide_task_cancelling(self) <= before &&
            tide_future_cancelled(f))
            err = -ETIMEDOUT;
        tide_future_release(f);
        return err;
    }
    tide_timeout *t = tide_timeout_begin(timeout);
    if (!t)
        return -errno;
    err = tide_await(f, result);
    return tide_timeout_end(t, err);
}
