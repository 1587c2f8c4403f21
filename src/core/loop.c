/* The loop record: creation, closing, stopping, the per-thread default
 * loop, options and statistics.
 *
 * A loop record outlives tide_loop_close while futures of the loop are
 * alive (each holds a reference), so a future can still be read and
 * released afterwards; every resource (stacks, fds, timers, handles) is
 * released by close itself.
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include "base/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_STACK (256 * 1024)
#define MIN_STACK (16 * 1024)
#define MAX_STACK ((size_t)1 << 30)

_Thread_local tide_loop *tide__running
    __attribute__((tls_model("initial-exec")));
static _Thread_local tide_loop *default_loop; /* tide_set_event_loop */
static _Thread_local tide_loop *owned_loop;   /* made by get_event_loop */

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static void make_exit_key(void); /* also installs the fork handler */

int tide__remote_open(tide_loop *loop);
void tide__remote_refuse(tide_loop *loop);
void tide__remote_close(tide_loop *loop);
void tide__handles_destroy(tide_loop *loop);

static void free_record(tide_loop *loop)
{
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
    pthread_once(&exit_once, make_exit_key); /* and the fork handler */
    err = tide__poller_open(&loop->poller);
    if (err < 0)
        goto free_loop;
    err = tide__remote_open(loop);
    if (err < 0)
        goto close_poller;
    loop->default_stack = DEFAULT_STACK;
    loop->default_pool = -1;
    tide__list_init(&loop->compact_saved);
    tide__list_init(&loop->lingering);
    const char *env = getenv("TIDE_COMPACT");
    loop->compact_default = env && env[0] == '1';
    loop->now = tide__clock_ns();
    loop->refs = 1;
    loop->debug_slot = -1;
    tide__debug_open(loop);
    return loop;
close_poller:
    loop->poller.ops->close(&loop->poller);
free_loop:
    tide__free(loop);
    errno = -err;
    return NULL;
}

static void close_at_thread_exit(void *arg)
{
    tide_loop *loop = arg;

    if (loop == owned_loop && !loop->depth)
        tide_loop_close(loop);
}

/* fork(): the child's copies of the parent's loops share the parent's
 * epoll instance and eventfd, so running one would steal the parent's
 * events (HAZARDS B37). The child forgets its thread's default loop, so
 * tide_get_event_loop() there makes a new one; the copies are left alone
 * (a child forked inside a running loop must exec or _exit). */
static void forget_after_fork(void)
{
    default_loop = NULL;
    owned_loop = NULL;
    pthread_setspecific(exit_key, NULL);
}

static void make_exit_key(void)
{
    pthread_key_create(&exit_key, close_at_thread_exit);
    pthread_atfork(NULL, NULL, forget_after_fork);
}

tide_loop *tide_get_event_loop(void)
{
    if (tide__running)
        return tide__running;
    if (default_loop)
        return default_loop;
    if (!owned_loop) {
        pthread_once(&exit_once, make_exit_key);
        owned_loop = tide_loop_new();
        if (!owned_loop)
            return NULL;
        pthread_setspecific(exit_key, owned_loop);
    }
    default_loop = owned_loop;
    return default_loop;
}

tide_loop *tide__default_loop(void)
{
    return default_loop;
}

void tide_set_event_loop(tide_loop *loop)
{
    default_loop = loop;
}

tide_loop *tide__loop_resolve(tide_loop *loop)
{
    return loop ? loop : tide_get_event_loop();
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

void tide__loop_trim(tide_loop *loop)
{
    for (unsigned i = 0; i < loop->npools; i++) {
        struct tide__stack_pool *p = &loop->pools[i];
        size_t keep = p->in_use > TIDE__POOL_KEEP ? p->in_use
                                                  : TIDE__POOL_KEEP;
        if (p->pooled > 2 * keep) {
            tide__stack_pool_trim(p, keep);
            /* A scan walks every pooled stack: not more than once a
             * second. */
            loop->next_trim = loop->now + 1000000000;
        }
    }
}

int tide_loop_update_time(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return -EINVAL;
    if (!loop->virtual_clock) {
        int64_t now = tide__clock_ns();
        if (now > loop->now)
            loop->now = now; /* never back */
    }
    return 0;
}

double tide_loop_time(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    return loop ? (double)tide__loop_now(loop) / 1e9 : 0.0;
}

int tide_loop_set_stack_size(tide_loop *loop, size_t bytes)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed || bytes < MIN_STACK || bytes > MAX_STACK)
        return -EINVAL;
    loop->default_stack = tide__stack_round(bytes);
    loop->default_pool = -1; /* looked up again on next use */
    return 0;
}

static int find_pool(tide_loop *loop, size_t size);

int tide__loop_pool(tide_loop *loop, size_t size)
{
    if (size != 0)
        return find_pool(loop, size);
    /* The default, asked for by nearly every task: remembered. */
    if (loop->default_pool < 0)
        loop->default_pool = find_pool(loop, loop->default_stack);
    return loop->default_pool;
}

static int find_pool(tide_loop *loop, size_t size)
{
    if (size < MIN_STACK || size > MAX_STACK)
        return -EINVAL;
    size = tide__stack_round(size);
    for (unsigned i = 0; i < loop->npools; i++)
        if (loop->pools[i].size == size)
            return (int)i;
    if (loop->npools < TIDE__MAX_POOLS) {
        tide__stack_pool_init(&loop->pools[loop->npools], size);
        return (int)loop->npools++;
    }
    /* Every pool is taken: the smallest bigger size will do. */
    int best = -EINVAL;
    for (unsigned i = 0; i < loop->npools; i++)
        if (loop->pools[i].size >= size &&
            (best < 0 || loop->pools[i].size < loop->pools[best].size))
            best = (int)i;
    return best;
}

int tide_loop_set_virtual_clock(tide_loop *loop, bool on)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return -EINVAL;
    if (loop->depth)
        return -EBUSY;
    loop->virtual_clock = on;
    if (!on)
        loop->now = tide__clock_ns();
    return 0;
}

const char *tide_loop_backend(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    return loop && !loop->closed ? loop->poller.ops->name : "closed";
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

int tide_loop_close(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return -EINVAL;
    if (loop->depth)
        return -EBUSY;
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
    struct tide__node *node;
    while ((node = tide__fifo_pop(&loop->ready))) {
        struct tide__call *c = tide__container_of(node, struct tide__call, node);
        c->run(loop, c, true);
    }
    /* Gathers and shields still waiting on plain futures that can no
     * longer complete: let them go (see struct tide__linger). */
    while (!tide__list_empty(&loop->lingering)) {
        struct tide__linger *l = tide__container_of(loop->lingering.next,
                                                    struct tide__linger, link);
        tide__list_remove(&l->link);
        l->drop(l);
    }
    if (loop->debug)
        tide__debug_forget(loop); /* leaves the signal registry */
    tide__remote_close(loop);
    tide__heap_free(&loop->timers);
    tide__handles_destroy(loop);
    tide__compact_close(loop);
    for (unsigned i = 0; i < loop->npools; i++)
        tide__stack_pool_destroy(&loop->pools[i]);
    loop->poller.ops->close(&loop->poller);
    loop->closed = true;
    if (default_loop == loop)
        default_loop = NULL;
    if (owned_loop == loop) {
        owned_loop = NULL;
        pthread_setspecific(exit_key, NULL);
    }
    tide__loop_unref(loop);
    return 0;
}
