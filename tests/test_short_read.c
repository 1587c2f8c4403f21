/* A stream's short TCP read waits for readiness before the next one
 * (TIDE__HINT_STREAM, poll/backend.h), on the epoll and the poll()
 * backend alike.
 *
 * An echo round trip costs one recv per side, not a second that sees
 * EAGAIN; end of stream after a short read is seen at once; a reader
 * cancelled while it waits loses nothing and the next read gets the
 * data; urgent (out-of-band) data, at whose mark a TCP receive stops
 * short with bytes still queued, does not stall the reader; and a Unix
 * stream socket, whose receive stops short between two writers' data
 * (SO_PASSCRED), never takes the rule. Loopback only, each wait bounded.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/sys.h"

#include <tide/stream.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

/* sv[0]: the accepted end (nonblocking), sv[1]: the connected one. */
static void tcp_pair(int sv[2])
{
    harness_tcp_pair(&sv[1], &sv[0]);
}

/* body on a fresh loop, once on each readiness backend. */
static void run_on_both_backends(tide_fn body)
{
    CHECK_EQ(setenv("TIDE_BACKEND", "epoll", 1), 0);
    CHECK_EQ(harness_run_body(body, NULL), 0);
    CHECK_EQ(setenv("TIDE_BACKEND", "poll", 1), 0);
    CHECK_EQ(harness_run_body(body, NULL), 0);
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
}

/* Read from s until `want` has come (or an error, end of stream, or 1 s);
 * the bytes must be want's. */
static int read_exactly_bytes(tide_stream *s, const char *want)
{
    size_t n = strlen(want), got = 0;
    tide_timeout *scope = tide_timeout_begin(1.0);

    CHECK_NOT_NULL(scope);
    int err = 0;
    while (!err && got < n) {
        const void *p;
        ssize_t r = tide_stream_read(s, 65536, &p);
        if (r <= 0) {
            err = r ? (int)r : -ENODATA;
            break;
        }
        CHECK((size_t)r <= n - got);
        CHECK(memcmp(p, want + got, (size_t)r) == 0);
        got += (size_t)r;
    }
    return tide_timeout_end(scope, err);
}

static void send_str(int fd, const char *str, int flags)
{
    size_t n = strlen(str);
    CHECK_EQ(send(fd, str, n, flags | MSG_NOSIGNAL), (ssize_t)n);
}

/* ---- one recv per request -------------------------------------------- */

/* Echo through read_into (the receive straight into a caller's buffer:
 * the other hinted path; the client's reads take the buffered one). */
static void *echo_task(void *arg)
{
    tide_stream *s = arg;
    char buf[4096];
    ssize_t n;

    while ((n = tide_stream_read_into(s, buf, sizeof buf)) > 0)
        if (tide_stream_write(s, buf, (size_t)n) < 0)
            break;
    return NULL;
}

enum { TRIPS = 200 };

static void *echo_body(void *arg)
{
    int sv[2];
    (void)arg;

    tcp_pair(sv);
    tide_stream *srv = tide_stream_new(sv[0], 0);
    tide_stream *cli = tide_stream_new(sv[1], 0);
    CHECK_NOT_NULL(srv);
    CHECK_NOT_NULL(cli);
    tide_future *t = tide_create_task(NULL, echo_task, srv);
    CHECK_NOT_NULL(t);
    uint64_t recvs = 0;
    for (int i = 0; i < TRIPS + 10; i++) {
        if (i == 10) /* counted from here: both fds watched */
            recvs = tide__sys_count(TIDE__SYS_RECV);
        CHECK_EQ(tide_stream_write(cli, "ping-pong", 9), 0);
        CHECK_EQ(read_exactly_bytes(cli, "ping-pong"), 0);
    }
    recvs = tide__sys_count(TIDE__SYS_RECV) - recvs;
    /* one per side per trip: before the rule, twice that. Compact tasks
     * (TIDE_COMPACT=1) make their own calls and keep trying first (io/op.c:
     * no backend write may land in their frames), so twice that there. */
    uint64_t per_trip = harness_compact() ? 4 : 2;
    CHECK(recvs >= 2 * TRIPS);
    CHECK(recvs <= per_trip * TRIPS + 4);
    CHECK_EQ(tide_stream_close(cli, 1), 0);
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_stream_close(srv, 1), 0);
    return NULL;
}

TEST(a_tcp_echo_round_trip_costs_one_recv_per_side)
{
    run_on_both_backends(echo_body);
    LEAK_GATE();
}

/* ---- end of stream, cancellation ------------------------------------- */

static void *closer_task(void *arg)
{
    int fd = (int)(intptr_t)arg; /* by value: a compact body's frames move */

    CHECK_EQ(tide_sleep(0.01), 0);
    send_str(fd, "cd", 0);
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(close(fd), 0);
    return NULL;
}

static void *eof_body(void *arg)
{
    int sv[2];
    const void *p;
    (void)arg;

    tcp_pair(sv);
    tide_stream *s = tide_stream_new(sv[0], 0);
    CHECK_NOT_NULL(s);
    send_str(sv[1], "ab", 0);
    CHECK_EQ(read_exactly_bytes(s, "ab"), 0); /* short: drained */
    tide_future *t =
        tide_create_task(NULL, closer_task, (void *)(intptr_t)sv[1]);
    CHECK_EQ(read_exactly_bytes(s, "cd"), 0); /* waited, then read */
    double t0 = harness_now();
    tide_timeout *scope = tide_timeout_begin(1.0);
    CHECK_NOT_NULL(scope);
    CHECK_EQ(tide_timeout_end(scope, (int)tide_stream_read(s, 64, &p)), 0);
    CHECK(harness_now() - t0 < 0.5);
    CHECK(tide_stream_at_eof(s));
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    return NULL;
}

TEST(end_of_stream_after_a_short_read_is_seen_at_once)
{
    run_on_both_backends(eof_body);
    LEAK_GATE();
}

static void *waiting_reader(void *arg)
{
    const void *p;

    return (void *)(intptr_t)tide_stream_read(arg, 64, &p);
}

/* A read that waits (the fd is watched from then on), gets `str` from
 * the peer and comes back short: the socket is drained. */
static void drain_by_a_waited_read(tide_stream *s, int peer, const char *str)
{
    void *r = NULL;
    tide_future *t = tide_create_task(NULL, waiting_reader, s);

    CHECK_EQ(tide_sleep(0.01), 0);
    send_str(peer, str, 0);
    CHECK_EQ(tide_await(t, &r), 0);
    CHECK_EQ((intptr_t)r, (intptr_t)strlen(str));
    tide_future_release(t);
}

/* A stream on a TCP pair (its peer in sv[1]), drained by a waited read. */
static tide_stream *drained_tcp_stream(int sv[2])
{
    tcp_pair(sv);
    tide_stream *s = tide_stream_new(sv[0], 0);
    CHECK_NOT_NULL(s);
    drain_by_a_waited_read(s, sv[1], "ab");
    return s;
}

/* A reader task on s, suspended in its read when this returns. */
static tide_future *waiting_reader_on(tide_stream *s)
{
    tide_future *t = tide_create_task(NULL, waiting_reader, s);

    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK(!tide_future_done(t));
    return t;
}

/* Reader t got the first `first` bytes of `all` or all of them; the rest
 * must come to the next reads (within read_exactly_bytes's second).
 * Then s and peer are closed. */
static void rest_must_follow(tide_future *t, tide_stream *s, int peer,
                             size_t first, const char *all)
{
    void *r = NULL;

    CHECK_EQ(tide_await(t, &r), 0);
    tide_future_release(t);
    CHECK((size_t)(intptr_t)r == first || (size_t)(intptr_t)r == strlen(all));
    CHECK_EQ(read_exactly_bytes(s, all + (intptr_t)r), 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    CHECK_EQ(close(peer), 0);
}

/* The last bytes and the end of stream (or a reset) reach a waiting
 * reader in one readiness: the short read that takes the bytes must not
 * make the next read wait for a readiness that will not come. */
static void *last_bytes_body(void *arg)
{
    const void *p;
    void *r = NULL;
    (void)arg;

    for (int reset = 0; reset < 2; reset++) {
        int sv[2];
        tide_stream *s = drained_tcp_stream(sv);
        tide_future *t = waiting_reader_on(s);
        send_str(sv[1], "cd", 0);
        if (reset) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            CHECK_EQ(setsockopt(sv[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg),
                     0);
        }
        CHECK_EQ(close(sv[1]), 0);
        CHECK_EQ(tide_await(t, &r), 0);
        tide_future_release(t);
        tide_timeout *scope = tide_timeout_begin(1.0);
        CHECK_NOT_NULL(scope);
        int n = tide_timeout_end(scope, (int)tide_stream_read(s, 64, &p));
        if (reset) {
            /* the reset may drop "cd" before it is read */
            CHECK((intptr_t)r == 2 || (intptr_t)r == -ECONNRESET);
            CHECK(n == -ECONNRESET || n == 0);
        } else {
            CHECK_EQ((intptr_t)r, 2);
            CHECK_EQ(n, 0);
            CHECK(tide_stream_at_eof(s));
        }
        CHECK_EQ(tide_stream_close(s, 1), 0);
    }
    return NULL;
}

TEST(the_last_bytes_and_the_end_in_one_readiness)
{
    run_on_both_backends(last_bytes_body);
    LEAK_GATE();
}

static void *cancel_body(void *arg)
{
    int sv[2];
    void *r = NULL;
    (void)arg;

    tide_stream *s = drained_tcp_stream(sv);
    /* So the next reader waits without trying; it is cancelled. */
    tide_future *t = waiting_reader_on(s);
    CHECK(tide_future_cancel(t));
    CHECK_EQ(tide_await(t, &r), 0);
    CHECK_EQ((intptr_t)r, -ECANCELED);
    tide_future_release(t);
    /* The data comes while nobody reads; the next read gets it. */
    send_str(sv[1], "cd", 0);
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(read_exactly_bytes(s, "cd"), 0);
    /* And again with the reader cancelled before it ran. */
    t = tide_create_task(NULL, waiting_reader, s);
    CHECK(tide_future_cancel(t));
    tide_await(t, NULL);
    tide_future_release(t);
    send_str(sv[1], "ef", 0);
    CHECK_EQ(read_exactly_bytes(s, "ef"), 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    CHECK_EQ(close(sv[1]), 0);
    return NULL;
}

TEST(a_reader_cancelled_while_it_waits_loses_nothing)
{
    run_on_both_backends(cancel_body);
    LEAK_GATE();
}

/* ---- receives that stop short with bytes still queued ---------------- */

static void *urgent_body(void *arg)
{
    int sv[2], on = 1;
    (void)arg;

    tide_stream *s = drained_tcp_stream(sv);
    CHECK_EQ(setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &on, sizeof on), 0);
    /* The next waits; three sends reach it in one readiness: a receive
     * stops at the urgent mark ("cd"), "X" is out of band, "ef" stays
     * queued with no readiness of its own to come. */
    tide_future *t = waiting_reader_on(s);
    send_str(sv[1], "cd", 0);
    send_str(sv[1], "X", MSG_OOB);
    send_str(sv[1], "ef", 0);
    rest_must_follow(t, s, sv[1], 2, "cdef");
    return NULL;
}

TEST(urgent_data_does_not_stall_a_tcp_reader)
{
    run_on_both_backends(urgent_body);
    LEAK_GATE();
}

static void *writers_body(void *arg)
{
    int sv[2], on = 1;
    (void)arg;

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                        sv),
             0);
    CHECK_EQ(setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
    tide_stream *s = tide_stream_new(sv[0], 0);
    CHECK_NOT_NULL(s);
    drain_by_a_waited_read(s, sv[1], "a");
    /* The next waits; then "b" from this process and "c" from a child:
     * a receive stops between the two writers, "c" still queued. */
    tide_future *t = waiting_reader_on(s);
    send_str(sv[1], "b", 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(send(sv[1], "c", 1, MSG_NOSIGNAL) == 1 ? 0 : 1);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rest_must_follow(t, s, sv[1], 1, "bc");
    return NULL;
}

TEST(a_unix_stream_read_short_between_two_writers_does_not_stall)
{
    if (harness_qemu())
        SKIP("TIDE_TEST_QEMU=1: fork under QEMU user mode");
    run_on_both_backends(writers_body);
    LEAK_GATE();
}
