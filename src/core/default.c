/* This thread's loops: the default one (tide_set_event_loop, or the one
 * tide_get_event_loop makes on first use and closes when the thread
 * exits), every open loop made on this thread (tide__thread_loops), and
 * what a NULL loop argument means (tide__loop_resolve).
 *
 * This file sits on top of the core: it makes and closes loops (loop.c).
 * The calls that come back into it are the public functions' NULL loop,
 * which may make one, and a closing loop that stops being the default
 * (tide__default_forget). The innermost loop running on this thread,
 * tide__running, is coro.c's.
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include <pthread.h>

static _Thread_local tide_loop *default_loop; /* tide_set_event_loop */
static _Thread_local tide_loop *owned_loop;   /* made by get_event_loop */
static _Thread_local struct tide__list thread_loops; /* open loops made here */

struct tide__list *tide__thread_loops(void)
{
    if (!thread_loops.next)
        tide__list_init(&thread_loops);
    return &thread_loops;
}

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

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
    pthread_once(&exit_once, make_exit_key); /* the fork handler */
    default_loop = loop;
}

void tide__default_forget(tide_loop *loop)
{
    if (default_loop == loop)
        default_loop = NULL;
    if (owned_loop == loop) {
        owned_loop = NULL;
        pthread_setspecific(exit_key, NULL);
    }
}

tide_loop *tide__loop_resolve(tide_loop *loop)
{
    return loop ? loop : tide_get_event_loop();
}
