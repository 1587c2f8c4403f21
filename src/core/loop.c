/* The loop record: creation, closing, stopping, options and statistics.
 *
 * A loop record outlives tide_loop_close while futures of the loop are
 * alive (each holds a reference), so a future can still be read and
 * released afterwards; every resource (stacks, fds, timers, handles) is
 * released by close itself.
 * SPDX-License-Identifier: MIT
 */
#include "core/signal.h"
#include "core/timer.h"

#include "base/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void free_record(tide_loop *loop)
{
    tide__track_flush(loop);
    pthread_mutex_destroy(&loop->remote_lock);
    tide__free(loop);
}

void tide__loop_unref(tide_loop *loop)
{
    if (--loop->refs == 0)
        free_record(loop);
}

tide_loop *tide_loop_new(void)
{
    tide_loop *loop = tide__calloc(1, sizeof *loop);
    int err;

    if (!loop)
        return NULL;
    err = tide__stack_thread_setup();
    if (err < 0)
        goto free_loop;
    err = tide__backend_open(&loop->backend);
    if (err < 0)
        goto free_loop;
    err = tide__remote_open(loop);
    if (err < 0)
        goto close_backend;
    tide__pools_init(loop);
    tide__list_init(&loop->compact_saved);
    tide__list_init(&loop->lingering);
    tide__list_init(&loop->tracked);
    tide__list_init(&loop->quarantine);
    const char *env = getenv("TIDE_COMPACT");
    loop->compact_default = env && env[0] == '1';
    loop->now = tide__clock_ns();
    loop->refs = 1;
    loop->embed_wait = -1;
    tide__list_init(&loop->sigwatches);
    tide__list_push_back(tide__thread_loops(), &loop->thread_link);
    tide__debug_open(loop);
    return loop;
close_backend:
    loop->backend.ops->close(&loop->backend);
free_loop:
    tide__free(loop);
    errno = -err;
    return NULL;
}

int tide_run_forever(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    if (!loop)
        return -errno;
    if (loop->closed)
        return -EINVAL;
    return tide__loop_run(loop, NULL, NULL, NULL);
}

void tide_loop_stop(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    if (loop && !loop->closed && loop->depth) {
        loop->stopping = true;
        loop->extend = 0; /* no hand-off past the stop */
    }
}

bool tide_loop_is_running(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    return loop && loop->depth > 0;
}

const char *tide_loop_backend(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    return loop && !loop->closed ? loop->backend.ops->name : "closed";
}

int tide_loop_get_stats(tide_loop *loop, tide_loop_stats *st)
{
    loop = tide__loop_resolve(loop);
    if (!loop || !st)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    st->tasks = loop->ncoros;
    st->ready = loop->ready.count;
    st->timers = loop->timers.armed;
    st->handles = loop->live_handles;
    for (unsigned i = 0; i < loop->npools; i++) {
        st->stacks_in_use += loop->pools[i].in_use;
        st->stacks_pooled += loop->pools[i].pooled;
    }
    st->iterations = loop->iterations;
    return 0;
}

/* ---- closing ------------------------------------------------------------ */

/* Close may end once every task has finished and every callback that
 * call_soon_threadsafe accepted has run. */
static bool close_done(void *arg)
{
    tide_loop *loop = arg;

    return loop->ncoros == 0 && loop->remote_unrun == 0;
}

/* Closing asks every unfinished coroutine to stop, on every round until it
 * has: a request counted like any other (tide_task_cancelling), made again
 * once the last one was delivered, so no task outlives close by catching
 * one cancellation. One not yet delivered is not repeated. */
static void close_cancel(tide_loop *loop, struct tide__coro *co, void *arg)
{
    (void)arg;
    if (!co->must_cancel)
        loop->coro_ops->cancel(loop, co);
}

/* Drop every entry of the ready queue (the loop is closing). */
static void drop_ready(tide_loop *loop)
{
    struct tide__node *node;

    while ((node = tide__fifo_pop(&loop->ready))) {
        struct tide__call *c =
            tide__container_of(node, struct tide__call, node);
        c->run(loop, c, true);
    }
}

int tide_loop_close(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return -EINVAL;
    if (loop->depth)
        return -EBUSY;
    if (tide__loop_foreign(loop))
        return -EXDEV; /* its io_uring is another thread's */
    loop->closing = true;
    /* From here on call_soon_threadsafe refuses; what it accepted before
     * is now in the ready queue and must run (HAZARDS B33). */
    tide__remote_refuse(loop);
    if (loop->debug)
        tide__debug_close(loop);
    /* Cancel, run one iteration, and again, until every task has
     * finished and every accepted threadsafe callback has run; tasks
     * created meanwhile are cancelled at once (task creation does it
     * while the loop closes). */
    while (!close_done(loop)) {
        tide__loop_each_coro(loop, close_cancel, NULL);
        bool first = true;
        loop->stopping = false;
        tide__loop_run(loop, tide__one_iteration, &first, NULL);
    }
    /* What is still scheduled is dropped, as asyncio's close() does. */
    drop_ready(loop);
    /* Gathers and shields still waiting on plain futures that can no
     * longer complete, and pool jobs still in flight: let them go (see
     * struct tide__linger). */
    while (!tide__list_empty(&loop->lingering)) {
        struct tide__linger *l = tide__container_of(loop->lingering.next,
                                                    struct tide__linger, link);
        tide__list_remove(&l->link);
        l->drop(l);
    }
    /* Signal handlers go (asyncio's close removes them), and the loop
     * leaves the signal registry before its backend closes. */
    if (loop->debug)
        tide__debug_forget(loop); /* its dump watches too */
    tide__signal_close(loop);
    /* Pool completions posted since close began (io/pool.c): once its
     * jobs are let go, no other thread posts to this loop again. Queued
     * signal callbacks are dropped with them. */
    tide__remote_refuse(loop);
    drop_ready(loop);
    tide__heap_free(&loop->timers);
    tide__handles_destroy(loop);
    tide__compact_close(loop);
    tide__pools_close(loop);
    loop->backend.ops->close(&loop->backend);
    tide__ops_destroy(loop);
    loop->closed = true;
    tide__list_remove(&loop->thread_link);
    if (loop->debug)
        tide__track_report_live(loop); /* futures never released */
    tide__default_forget(loop);
    tide__loop_unref(loop);
    return 0;
}
