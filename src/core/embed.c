/* Embedding: driving a loop from another program's loop, one iteration
 * at a time (tide_loop_run_once), by the backend's fd and the time to the
 * next timer.
 *
 * An iteration run from here is an ordinary one (sched.c's run_once,
 * through tide__loop_run, so nesting, stop, close and debug mode are the
 * other runs' own), with one difference it reads from loop->embed_wait:
 * it always polls the backend, however much is ready, because the outer
 * loop calls it when the fd is readable, and a wait it skipped would
 * leave the fd readable and the outer loop spinning. The timeout the
 * outer loop is told and the one an iteration waits come from the same
 * function (tide__loop_wait_ns).
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include <errno.h>
#include <math.h>

/* Anything the loop would still do on its own. */
static bool has_work(tide_loop *loop)
{
    return loop->ncoros || loop->ready.count || loop->timers.armed ||
           atomic_load_explicit(&loop->remote_pending, memory_order_relaxed);
}

/* *loop resolved (NULL: the thread's loop); 0 if it is open, else the
 * error to return. */
static int resolve_open(tide_loop **loop)
{
    *loop = tide__loop_resolve(*loop);
    if (!*loop)
        return -errno; /* no default loop could be made */
    return (*loop)->closed ? -EINVAL : 0;
}

int tide_loop_run_once(tide_loop *loop, double timeout)
{
    int err = resolve_open(&loop);

    if (err < 0)
        return err;
    if (isnan(timeout) || timeout < 0)
        return -EINVAL;
    /* Past 2^63 ns (292 years) is forever. */
    loop->embed_wait =
        timeout * 1e9 >= 0x1p63 ? INT64_MAX : (int64_t)(timeout * 1e9);
    bool first = true;
    err = tide__loop_run(loop, tide__one_iteration, &first, NULL);
    loop->embed_wait = -1; /* read by the iteration, unless it never ran */
    if (err < 0)
        return err;
    return has_work(loop);
}

int tide_loop_backend_fd(tide_loop *loop)
{
    int err = resolve_open(&loop);

    if (err < 0)
        return err;
    return loop->backend.ops->fd(&loop->backend);
}

int tide_loop_backend_timeout(tide_loop *loop, double *seconds)
{
    int err = resolve_open(&loop);

    if (err < 0)
        return err;
    if (!seconds)
        return -EINVAL;
    int64_t ns = tide__loop_wait_ns(loop);
    *seconds = ns < 0 ? INFINITY : (double)ns / 1e9;
    return 0;
}
