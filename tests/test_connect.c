/* Connecting by name (include/tide/stream.h tide_open_connection): a
 * numeric host connects inline, without a pool job (a lookup on a thread
 * would hang in tide__dns_hook); "localhost" is looked up on the pool's
 * DNS class and connected to; a name that cannot exist fails with the
 * lookup's error, soon; a name whose addresses all refuse gives the last
 * connect error; cancelling the caller, or closing its loop, while the
 * lookup hangs returns -ECANCELED at once and leaks nothing (the lookup's
 * thread frees its answer when it ends); outside a task, -EPERM. The
 * bodies share no frame with another task, so they run compact too.
 * Loopback only: no network.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"
#include "dns_hang.h"
#include "net.h"
#include "pool_wait.h"

#include <tide/pool.h>
#include <tide/stream.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connect to host:port, accept on l, send a line each way. */
static void connect_and_talk(const char *host, int l, uint16_t port)
{
    tide_stream *s = (void *)1;
    char buf[8];

    CHECK_EQ(tide_open_connection(host, port, 0, &s), 0);
    CHECK_NOT_NULL(s);
    int a = tide_sock_accept(l, NULL, NULL);
    CHECK(a >= 0);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    CHECK_EQ(tide_stream_peername(s, (struct sockaddr *)&peer, &len), 0);
    CHECK_EQ(peer.sin_family, AF_INET);
    CHECK_EQ(ntohs(peer.sin_port), port);
    CHECK_EQ(ntohl(peer.sin_addr.s_addr), INADDR_LOOPBACK);
    CHECK_EQ(tide_stream_write(s, "hi\n", 3), 0);
    CHECK_EQ(tide_stream_drain(s), 0);
    CHECK_EQ(tide_sock_recv(a, buf, sizeof buf, 0), 3);
    CHECK(memcmp(buf, "hi\n", 3) == 0);
    CHECK_EQ(tide_sock_sendall(a, "ok\n", 3, 0), 3);
    const void *line;
    ssize_t n = tide_stream_readline(s, &line);
    CHECK_EQ(n, 3);
    CHECK(memcmp(line, "ok\n", 3) == 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    tide_close(a);
}

/* Run body as the main task, then wait for the pool to finish with
 * every lookup, and check nothing leaked. */
static void run_then_quiet(tide_fn body)
{
    CHECK_EQ(tide_run(body, NULL, NULL), 0);
    pool_quiet();
    LEAK_GATE();
}

/* ---- names that resolve, and names that do not ----------------------- */

static void *numeric_body(void *arg)
{
    uint16_t port;
    int l = tcp_listener(8, &port);
    (void)arg;

    tide__dns_hook = hang; /* a lookup on a thread would hang here */
    connect_and_talk("127.0.0.1", l, port);
    tide__dns_hook = NULL;
    CHECK_EQ(atomic_load(&hung), 0);
    tide_close(l);
    return NULL;
}

TEST(numeric_host_connects_inline_without_a_lookup)
{
    CHECK_EQ(tide_run(numeric_body, NULL, NULL), 0);
    CHECK_EQ(tide__pool_live(), 0); /* no job ever went to the pool */
    LEAK_GATE();
}

static void *localhost_body(void *arg)
{
    uint16_t port, closed;
    int l = tcp_listener(8, &port);
    tide_stream *s = (void *)1;
    (void)arg;

    connect_and_talk("localhost", l, port);
    /* Every address "localhost" has (127.0.0.1, maybe ::1) refuses:
     * the last connect error. */
    tide_close(tcp_listener(8, &closed));
    CHECK_ERR(tide_open_connection("localhost", closed, 0, &s), -ECONNREFUSED);
    CHECK_NULL(s);
    tide_close(l);
    return NULL;
}

TEST(localhost_is_looked_up_and_connected_to)
{
    run_then_quiet(localhost_body);
}

static void *invalid_body(void *arg)
{
    tide_stream *s = (void *)1;
    (void)arg;

    /* .invalid is reserved (RFC 2606): no resolver can find it. */
    double t0 = harness_now();
    int err = tide_open_connection("no-such-host.invalid", 80, 0, &s);
    CHECK(err == -ENOENT || err == -EHOSTUNREACH);
    CHECK(harness_now() - t0 < 3.0);
    CHECK_NULL(s);
    s = (void *)1;
    err = tide_open_connection("", 80, 0, &s); /* an empty name */
    CHECK(err == -ENOENT || err == -EHOSTUNREACH);
    CHECK_NULL(s);
    return NULL;
}

TEST(a_name_that_cannot_resolve_fails_soon_with_the_lookup_error)
{
    run_then_quiet(invalid_body);
}

TEST(outside_a_task_eperm_and_bad_arguments_einval)
{
    tide_stream *s = (void *)1;

    tide__dns_hook = hang;
    CHECK_ERR(tide_open_connection("127.0.0.1", 80, 0, &s), -EPERM);
    CHECK_NULL(s);
    CHECK_ERR(tide_open_connection("localhost", 80, 0, &s), -EPERM);
    CHECK_ERR(tide_open_connection(NULL, 80, 0, &s), -EINVAL);
    CHECK_ERR(tide_open_connection("localhost", 80, 0, NULL), -EINVAL);
    tide__dns_hook = NULL;
    CHECK_EQ(atomic_load(&hung), 0);
    CHECK_EQ(tide__pool_live(), 0);
    LEAK_GATE();
}

/* ---- cancelling while the lookup runs -------------------------------- */

struct pending {
    uint16_t port;
    int err;
    tide_stream *s;
    bool done;
};

static void *lookup_body(void *arg)
{
    struct pending *p = arg;

    p->s = (void *)1;
    p->err = tide_open_connection("localhost", p->port, 0, &p->s);
    p->done = true;
    return NULL;
}

/* Start lookup_body on loop and run it until its lookup hangs. */
static tide_future *start_hung(tide_loop *loop, struct pending *p)
{
    atomic_store(&hung, 0);
    atomic_store(&release, 0);
    tide__dns_hook = hang;
    tide_future *t = tide_create_task(loop, lookup_body, p);
    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    wait_for(&hung, 1);
    CHECK(!p->done);
    return t;
}

TEST(cancel_during_the_lookup_returns_at_once)
{
    tide_loop *loop = tide_loop_new();
    struct pending p = {0};
    int l;

    CHECK_NOT_NULL(loop);
    l = tcp_listener(8, &p.port);
    tide_future *t = start_hung(loop, &p);
    double t0 = harness_now();
    CHECK(tide_future_cancel(t));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(harness_now() - t0 < 1.0); /* it did not wait for the resolver */
    CHECK(p.done);
    CHECK_ERR(p.err, -ECANCELED);
    CHECK_NULL(p.s);
    tide_future_release(t);
    /* Nobody connected: the listener has no connection waiting. */
    CHECK_ERR(accept(l, NULL, NULL), -1);
    CHECK_EQ(errno, EAGAIN);
    atomic_store(&release, 1);
    pool_quiet(); /* the lookup ends; its answer is freed */
    tide__dns_hook = NULL;
    close(l);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(loop_close_during_the_lookup_cancels_it)
{
    tide_loop *loop = tide_loop_new();
    struct pending p = {0};

    CHECK_NOT_NULL(loop);
    p.port = 9; /* never reached */
    tide_future *t = start_hung(loop, &p);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK(p.done);
    CHECK_ERR(p.err, -ECANCELED);
    CHECK_NULL(p.s);
    tide_future_release(t);
    atomic_store(&release, 1);
    pool_quiet();
    tide__dns_hook = NULL;
    LEAK_GATE();
}
