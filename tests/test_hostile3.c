/* Hostile tests of what landed with UDP endpoints, open_connection by
 * name, the signal registry and files (issues 9 and 10): each states the
 * header text it holds the code to. Loopback only; bounded times.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"

#include <tide/file.h>
#include <tide/io.h>
#include <tide/signal.h>
#include <tide/stream.h>
#include <tide/udp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

static void count_cb(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* A few iterations of loop: every callback a signal made ready runs. */
static void iterate(tide_loop *loop)
{
    for (int i = 0; i < 3; i++)
        CHECK(tide_loop_run_once(loop, 0) >= 0);
}

/* ---- signals ----------------------------------------------------------- */

struct readd {
    tide_loop *loop;
    atomic_int old_hits, new_hits;
};

/* In one callback: the signal arrives (raise delivers it in this thread
 * before it returns), then the handler is removed and set again. */
static void raise_remove_readd(void *arg)
{
    struct readd *r = arg;

    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(tide_remove_signal_handler(r->loop, SIGUSR2), 1);
    CHECK_EQ(tide_add_signal_handler(r->loop, SIGUSR2, count_cb, &r->new_hits),
             0);
}

/* tide/signal.h: removing a handler drops "a delivery whose callback has
 * not run yet". A delivery that came just before the remove belongs to
 * the handler removed, not to one set after it. (The loop keeps another
 * handler, so it stays in the registry meanwhile.) */
TEST(a_delivery_before_a_remove_is_not_run_by_the_next_handler)
{
    static struct readd r;
    atomic_int other = 0;
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    r.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_cb, &other), 0);
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR2, count_cb, &r.old_hits),
             0);
    CHECK(tide_call_soon(loop, raise_remove_readd, &r) != 0);
    iterate(loop);
    CHECK_EQ(atomic_load(&r.old_hits), 0);
    CHECK_EQ(atomic_load(&r.new_hits), 0);
    /* A signal after the new handler was set runs it. */
    CHECK_EQ(raise(SIGUSR2), 0);
    iterate(loop);
    CHECK_EQ(atomic_load(&r.new_hits), 1);
    CHECK_EQ(atomic_load(&other), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* A thread that sets and removes a handler on a loop of its own, over and
 * over (each time through the registry's lock), until told to stop. */
static atomic_bool churn_stop;

static void *churn(void *arg)
{
    atomic_int hits = 0;
    (void)arg;
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    while (!atomic_load(&churn_stop)) {
        CHECK_EQ(tide_add_signal_handler(loop, SIGUSR2, count_cb, &hits), 0);
        CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR2), 1);
    }
    CHECK_EQ(tide_loop_close(loop), 0);
    return NULL;
}

static void fork_child_handler(void *arg)
{
    atomic_int hits = 0;
    (void)arg;
    alarm(2); /* a child stuck on a lock dies of SIGALRM */
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_cb, &hits), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    iterate(loop);
    CHECK_EQ(atomic_load(&hits), 1);
    CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR1), 1);
    CHECK_EQ(tide_loop_close(loop), 0);
}

/* tide/signal.h: after fork(), "a new loop in the child" may take
 * signals. HAZARDS B37: the registry's lock must not be inherited held
 * from a thread that was registering at the fork (the child has no such
 * thread to let it go). */
TEST(a_child_forked_while_another_thread_registers_can_take_signals)
{
    if (harness_qemu())
        SKIP("QEMU user mode does not carry every fork of threads through");
    pthread_t th;
    atomic_store(&churn_stop, false);
    CHECK_EQ(pthread_create(&th, NULL, churn, NULL), 0);
    for (int i = 0; i < 40; i++) {
        char buf[512];
        int status = harness_run_child(fork_child_handler, NULL, buf,
                                       sizeof buf);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 3) {
            atomic_store(&churn_stop, true);
            pthread_join(th, NULL);
            harness_fail(__FILE__, __LINE__, "fork %d: child status %#x: %s",
                         i, (unsigned)status, buf);
        }
    }
    atomic_store(&churn_stop, true);
    CHECK_EQ(pthread_join(th, NULL), 0);
    LEAK_GATE();
}
