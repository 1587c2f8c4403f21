/* tide_cancel_on_signals (tide/signal.h): asyncio.run's Ctrl-C. SIGINT
 * and SIGTERM get one handler record between them, shared by the loop's
 * two handlers (core/signal.c) and freed when the second of them goes:
 * the first delivery of either cancels the task, then arms both signals
 * to end the process from the signal handler on their next delivery.
 * SPDX-License-Identifier: MIT
 */
#include "task/future.h"

#include "core/signal.h"
#include "tide/signal.h"

#include <errno.h>

static const int stop_signals[2] = {SIGINT, SIGTERM};

struct canceller {
    tide_future *task; /* retained */
    unsigned handlers; /* of the loop's that are this one's */
    bool fired;        /* the task was cancelled */
};

static void on_stop_signal(void *arg)
{
    struct canceller *c = arg;
    tide_loop *loop = c->task->loop;

    if (!c->fired) {
        c->fired = true;
        tide_future_cancel(c->task);
    }
    for (int i = 0; i < 2; i++)
        tide__signal_arm_fatal(loop, stop_signals[i], on_stop_signal);
}

static void drop_canceller(void *arg)
{
    struct canceller *c = arg;

    if (--c->handlers == 0) {
        tide_future_release(c->task);
        tide__free(c);
    }
}

int tide_cancel_on_signals(tide_loop *loop, tide_future *task)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed || !task || !tide_future_is_task(task) ||
        task->loop != loop)
        return -EINVAL;
    struct canceller *c = tide__calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->task = tide_future_retain(task);
    c->handlers = 1; /* this call's own, until both are set */
    int err = 0;
    for (int i = 0; i < 2 && err == 0; i++) {
        c->handlers++;
        err = tide__signal_set_handler(loop, stop_signals[i], on_stop_signal,
                                       c, drop_canceller);
        if (err < 0)
            c->handlers--;
    }
    if (err < 0 && c->handlers > 1) /* the second failed: the first goes */
        tide_remove_signal_handler(loop, stop_signals[0]);
    drop_canceller(c);
    return err;
}
