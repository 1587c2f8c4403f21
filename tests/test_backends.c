/* What a program can see differ between the backends (HAZARDS B43,
 * docs/backends.md): each test runs the same public calls on io_uring
 * (where the kernel has it), epoll and poll, and states the outcome on
 * each, the same everywhere unless docs/backends.md lists a difference.
 * End of stream and hang-up, a reset peer, no false EAGAIN from an
 * O_NONBLOCK socket or pipe, shutdown() during a connect in flight, the
 * order of several readers of one fd, what tide_loop_backend_fd hands
 * out, and a loop run on a second thread. Then the hostile ones of issue
 * 11 (B41, B42), on every backend too: 100,000 receiving tasks cancelled
 * at once, and 200 peers resetting while receives wait.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include <tide/io.h>
#include <tide/stream.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const backends[] = {"io_uring", "epoll", "poll"};

/* The backend this round runs on (statics: compact tasks share nothing
 * through their frames). */
static const char *on;

static bool on_io_uring(void)
{
    return strcmp(on, "io_uring") == 0;
}

/* Set TIDE_BACKEND to backends[i]; true (and `on` set) if a new loop
 * then runs on it: io_uring's round is left out where the kernel refuses
 * it (the loop would be epoll's), and under valgrind, which cannot see
 * the kernel's writes into the ring and the buffers. */
static bool use_backend(size_t i)
{
    if (HARNESS_VALGRIND && strcmp(backends[i], "io_uring") == 0)
        return false;
    CHECK_EQ(setenv("TIDE_BACKEND", backends[i], 1), 0);
    tide_loop *probe = tide_loop_new();
    CHECK_NOT_NULL(probe);
    bool runs = strcmp(tide_loop_backend(probe), backends[i]) == 0;
    CHECK_EQ(tide_loop_close(probe), 0);
    on = backends[i];
    return runs;
}

#define NBACKENDS (sizeof backends / sizeof backends[0])

/* body on a fresh loop on each backend in turn. */
static void each_backend(tide_fn body)
{
    for (size_t i = 0; i < NBACKENDS; i++) {
        if (!use_backend(i))
            continue;
        int err = harness_run_body(body, NULL);
        if (err != 0)
            harness_fail(__FILE__, __LINE__, "on %s: %s", on,
                         tide_err_name(err));
    }
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
}

/* ---- end of stream, hang-up, reset ------------------------------------ */

static int fds[2];

static void *recv_one(void *arg)
{
    static char c[8];
    (void)arg;
    return IPTR(tide_sock_recv(fds[0], c, sizeof c, 0));
}

static void *close_peer_later(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(send(fds[1], "ab", 2, 0), 2);
    CHECK_EQ(close(fds[1]), 0);
    return NULL;
}

/* A receive waiting when the peer sends and closes gets the bytes, the
 * next one 0 (end of stream); a readiness wait then reports readable at
 * once, every time. A pipe's reader sees the same through a stream. */
static void *eof_body(void *arg)
{
    (void)arg;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    tide_future *r = tide_create_task(NULL, recv_one, NULL);
    tide_future *w = tide_create_task(NULL, close_peer_later, NULL);
    void *got;
    CHECK_EQ(tide_await(r, &got), 0);
    CHECK_EQ(PINT(got), 2);
    CHECK_EQ(tide_await(w, NULL), 0);
    tide_future_release(r);
    tide_future_release(w);
    char c;
    CHECK_EQ(tide_sock_recv(fds[0], &c, 1, 0), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(tide_wait_readable(fds[0], 1.0), 0);
    CHECK_EQ(tide_sock_recv(fds[0], &c, 1, 0), 0);
    CHECK_EQ(tide_close(fds[0]), 0);

    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    tide_stream *s = tide_stream_new(p[0], 0);
    CHECK_NOT_NULL(s);
    CHECK_EQ(write(p[1], "xyz", 3), 3);
    CHECK_EQ(close(p[1]), 0); /* hang-up with data before it */
    char buf[8];
    CHECK_EQ(tide_stream_read_into(s, buf, sizeof buf), 3);
    CHECK_EQ(tide_stream_read_into(s, buf, sizeof buf), 0);
    CHECK(tide_stream_at_eof(s));
    CHECK_EQ(tide_stream_close(s, 1), 0);
    return NULL;
}

TEST(end_of_stream_and_hang_up_alike)
{
    each_backend(eof_body);
    LEAK_GATE();
}

static void *reset_later(void *arg)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)arg;
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    CHECK_EQ(close(fds[1]), 0); /* an RST */
    return NULL;
}

/* A TCP peer that resets while a receive waits: -ECONNRESET, then 0. */
static void *reset_body(void *arg)
{
    (void)arg;
    harness_tcp_pair(&fds[1], &fds[0]);
    tide_future *r = tide_create_task(NULL, recv_one, NULL);
    tide_future *w = tide_create_task(NULL, reset_later, NULL);
    void *got;
    CHECK_EQ(tide_await(r, &got), 0);
    CHECK_ERR(PINT(got), -ECONNRESET);
    CHECK_EQ(tide_await(w, NULL), 0);
    tide_future_release(r);
    tide_future_release(w);
    char c;
    CHECK_EQ(tide_sock_recv(fds[0], &c, 1, 0), 0);
    CHECK_EQ(tide_close(fds[0]), 0);
    return NULL;
}

TEST(a_reset_peer_alike)
{
    each_backend(reset_body);
    LEAK_GATE();
}

/* ---- no false EAGAIN ------------------------------------------------- */

static void *feed_later(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_sleep(0.02), 0);
    CHECK_EQ(write(fds[1], "k", 1), 1);
    return NULL;
}

static char big[1 << 16];

static void *empty_pipe_later(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_sleep(0.02), 0);
    static char sink[1 << 16];
    while (read(fds[0], sink, sizeof sink) == (ssize_t)sizeof sink)
        ;
    return NULL;
}

/* A stream over fds[0] reads the byte feed_later writes into fds[1]
 * 20 ms from now, waiting for it; both fds closed after. */
static void stream_waits_for_a_byte(void)
{
    char c;
    tide_stream *s = tide_stream_new(fds[0], 0);

    CHECK_NOT_NULL(s);
    tide_future *w = tide_create_task(NULL, feed_later, NULL);
    double t0 = tide_loop_time(NULL);
    CHECK_EQ(tide_stream_read_into(s, &c, 1), 1);
    CHECK_EQ(c, 'k');
    CHECK(tide_loop_time(NULL) - t0 >= 0.02 - EARLY);
    CHECK_EQ(tide_await(w, NULL), 0);
    tide_future_release(w);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    CHECK_EQ(close(fds[1]), 0);
}

/* O_NONBLOCK fds with nothing to read: the call waits, never -EAGAIN
 * (where io_uring answers EAGAIN for an O_NONBLOCK pipe or tty, the
 * backend polls; Linux 6.18 waits by itself). A socket, a pipe and a pty
 * through a stream, and a full pipe's writer, which waits for room. */
static void *nonblock_body(void *arg)
{
    char c;
    (void)arg;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    tide_future *w = tide_create_task(NULL, feed_later, NULL);
    double t0 = tide_loop_time(NULL);
    CHECK_EQ(tide_sock_recv(fds[0], &c, 1, 0), 1);
    CHECK(tide_loop_time(NULL) - t0 >= 0.02 - EARLY);
    CHECK_EQ(tide_await(w, NULL), 0);
    tide_future_release(w);
    CHECK_EQ(tide_close(fds[0]), 0);
    CHECK_EQ(close(fds[1]), 0);

    CHECK_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    stream_waits_for_a_byte();

    /* A pty's master, the tty case: what the slave writes. */
    fds[0] = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    CHECK(fds[0] >= 0);
    CHECK_EQ(grantpt(fds[0]), 0);
    CHECK_EQ(unlockpt(fds[0]), 0);
    fds[1] = open(ptsname(fds[0]), O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(fds[1] >= 0);
    stream_waits_for_a_byte();

    /* A full pipe: the stream's close waits until the reader makes room
     * for what it queued. */
    CHECK_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    while (write(fds[1], big, sizeof big) > 0)
        ;
    tide_stream *out = tide_stream_new(fds[1], 0);
    CHECK_NOT_NULL(out);
    CHECK_EQ(tide_stream_write(out, "more", 4), 0);
    w = tide_create_task(NULL, empty_pipe_later, NULL);
    t0 = tide_loop_time(NULL);
    CHECK_EQ(tide_stream_close(out, 1), 0); /* sends what is queued */
    CHECK(tide_loop_time(NULL) - t0 >= 0.02 - EARLY);
    CHECK_EQ(tide_await(w, NULL), 0);
    tide_future_release(w);
    CHECK_EQ(read(fds[0], big, sizeof big), 4); /* "more" came through */
    CHECK_EQ(close(fds[0]), 0);
    return NULL;
}

TEST(no_false_eagain_on_nonblocking_fds)
{
    each_backend(nonblock_body);
    LEAK_GATE();
}

/* ---- shutdown() during a connect in flight ---------------------------- */

static struct sockaddr_in listener_addr;

static void *connect_in_flight(void *arg)
{
    (void)arg;
    tide_timeout *t = tide_timeout_begin(2.0);
    CHECK_NOT_NULL(t);
    int r = tide_sock_connect(fds[0], (struct sockaddr *)&listener_addr,
                              sizeof listener_addr);
    return IPTR(tide_timeout_end(t, r));
}

/* A listener whose queue is full drops the SYN, so a connect to it stays
 * in flight (SYN_SENT); shutdown(SHUT_RDWR) from another task ends it
 * with -ECONNRESET at once on every backend (Linux 6.18: seastar #2302
 * saw io_uring keep connecting on older kernels). */
static void *shutdown_connect_body(void *arg)
{
    (void)arg;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof listener_addr;
    listener_addr =
        (struct sockaddr_in){.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(l >= 0);
    CHECK_EQ(bind(l, (struct sockaddr *)&listener_addr, len), 0);
    CHECK_EQ(listen(l, 0), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&listener_addr, &len), 0);
    int fill[3];
    for (int i = 0; i < 3; i++) { /* the queue fills; later SYNs drop */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        CHECK(fill[i] >= 0);
        (void)connect(fill[i], (struct sockaddr *)&listener_addr, len);
    }
    CHECK_EQ(tide_sleep(0.02), 0);
    fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fds[0] >= 0);
    tide_future *c = tide_create_task(NULL, connect_in_flight, NULL);
    CHECK_EQ(tide_sleep(0.05), 0);
    CHECK(!tide_future_done(c)); /* in flight */
    double t0 = tide_loop_time(NULL);
    CHECK_EQ(shutdown(fds[0], SHUT_RDWR), 0);
    void *got;
    CHECK_EQ(tide_await(c, &got), 0);
    CHECK_ERR(PINT(got), -ECONNRESET);
    CHECK(tide_loop_time(NULL) - t0 < 0.5);
    tide_future_release(c);
    CHECK_EQ(tide_close(fds[0]), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(close(fill[i]), 0);
    CHECK_EQ(close(l), 0);
    return NULL;
}

TEST(shutdown_during_a_connect_in_flight_ends_it_alike)
{
    each_backend(shutdown_connect_body);
    LEAK_GATE();
}

/* ---- several readers of one fd ------------------------------------- */

enum { READERS = 8 };
static char got_by[READERS];

static void *read_into_slot(void *arg)
{
    int i = (int)PINT(arg);
    return IPTR(tide_sock_recv(fds[0], &got_by[i], 1, 0));
}

/* Eight tasks wait in a one-byte receive on one socket; eight bytes come
 * at once. Each gets one byte, exactly once, in the order the calls were
 * made, on every backend (io_uring sends an fd's receives to the kernel
 * one at a time, uring.c's queue_behind); except compact tasks on
 * io_uring, which wait for readiness and make their own receives: their
 * polls complete in the kernel's order. */
static void *readers_body(void *arg)
{
    tide_future *t[READERS];
    (void)arg;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    memset(got_by, 0, sizeof got_by);
    for (int i = 0; i < READERS; i++)
        CHECK_NOT_NULL(t[i] = tide_create_task(NULL, read_into_slot, IPTR(i)));
    CHECK_EQ(tide_sleep(0.01), 0); /* all waiting */
    CHECK_EQ(write(fds[1], "abcdefgh", READERS), READERS);
    unsigned seen = 0;
    bool in_order = true;
    for (int i = 0; i < READERS; i++) {
        void *r;
        CHECK_EQ(tide_await(t[i], &r), 0);
        CHECK_EQ(PINT(r), 1);
        CHECK(got_by[i] >= 'a' && got_by[i] < 'a' + READERS);
        CHECK_EQ(seen & 1u << (got_by[i] - 'a'), 0);
        seen |= 1u << (got_by[i] - 'a');
        in_order = in_order && got_by[i] == 'a' + i;
        tide_future_release(t[i]);
    }
    if (!on_io_uring() || !harness_compact())
        CHECK(in_order);
    CHECK_EQ(tide_close(fds[0]), 0);
    CHECK_EQ(close(fds[1]), 0);
    return NULL;
}

TEST(several_readers_of_one_fd_each_get_one_byte)
{
    each_backend(readers_body);
    LEAK_GATE();
}

/* ---- tide_loop_backend_fd ------------------------------------------- */

static void nothing(void *arg)
{
    (void)arg;
}

static bool readable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* What the embedding fd is: epoll's own fd, the io_uring ring's fd, and
 * none on poll (-ENOTSUP); where there is one it is quiet while nothing
 * is to be done, readable once a threadsafe callback comes, quiet again
 * after an iteration. */
static void backend_fd_round(void)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    int fd = tide_loop_backend_fd(loop);
    if (strcmp(on, "poll") == 0) {
        CHECK_ERR(fd, -ENOTSUP);
        CHECK_EQ(tide_loop_close(loop), 0);
        return;
    }
    CHECK(fd >= 0);
    char path[64], link[64] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    CHECK(readlink(path, link, sizeof link - 1) > 0);
    /* io_uring: the ring, or with DEFER_TASKRUN (Linux 6.1 on) an eventfd
     * registered with it (uring.c, ur_fd) */
    if (on_io_uring())
        CHECK(strcmp(link, "anon_inode:[io_uring]") == 0 ||
              strcmp(link, "anon_inode:[eventfd]") == 0);
    else
        CHECK_STR_EQ(link, "anon_inode:[eventpoll]");
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);
    CHECK(!readable_now(fd));
    CHECK_EQ(tide_call_soon_threadsafe(loop, nothing, NULL), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 1000), 1);
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);
    CHECK(!readable_now(fd));
    CHECK_EQ(tide_loop_close(loop), 0);
}

TEST(the_backend_fd_on_each_backend)
{
    for (size_t i = 0; i < NBACKENDS; i++)
        if (use_backend(i))
            backend_fd_round();
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    LEAK_GATE();
}

/* ---- a loop run on a second thread ---------------------------------- */

static tide_loop *moved;
static int round_err;

static void *recv_after_feed(void *arg)
{
    char c;
    (void)arg;
    tide_future *w = tide_create_task(NULL, feed_later, NULL);
    ssize_t r = tide_sock_recv(fds[0], &c, 1, 0);
    CHECK_EQ(tide_await(w, NULL), 0);
    tide_future_release(w);
    return IPTR(r);
}

/* One task doing I/O, run to its end on `moved` from this thread. */
static void io_round(void)
{
    tide_future *t = tide_create_task(moved, recv_after_feed, NULL);
    CHECK_NOT_NULL(t);
    void *r = NULL;
    round_err = tide_run_until_complete(moved, t, &r);
    if (round_err == 0)
        CHECK_EQ(PINT(r), 1);
    else
        CHECK(!tide_future_done(t)); /* refused: nothing ran */
    tide_future_release(t);
}

static void *io_round_on_thread(void *arg)
{
    (void)arg;
    io_round();
    return NULL;
}

static int round_on_other_thread(void)
{
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, io_round_on_thread, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    return round_err;
}

static void *close_on_thread(void *arg)
{
    (void)arg;
    round_err = tide_loop_close(moved);
    return NULL;
}

/* A loop run on thread A, then on thread B, then on A. epoll and poll
 * run it wherever it is run (one thread at a time); io_uring's ring is
 * bound to the thread that first used it (IORING_SETUP_SINGLE_ISSUER,
 * where every enter from another thread fails with EEXIST): there the
 * runs and close made from another thread return -EXDEV at once, with
 * nothing run, and the loop still works on its own thread. Before the
 * rule, the run on B spun in io_uring_enter forever. */
TEST(a_loop_run_on_a_second_thread)
{
    for (size_t i = 0; i < NBACKENDS; i++) {
        if (!use_backend(i))
            continue;
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
        moved = tide_loop_new();
        CHECK_NOT_NULL(moved);
        int want = on_io_uring() ? -EXDEV : 0;
        CHECK(strstr(tide_strerror(-EXDEV), "another thread") != NULL);
        io_round(); /* on A: binds io_uring's ring to A */
        CHECK_EQ(round_err, 0);
        CHECK_ERR(round_on_other_thread(), want);
        io_round(); /* A again */
        CHECK_EQ(round_err, 0);
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, close_on_thread, NULL), 0);
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK_ERR(round_err, want);
        if (round_err < 0)
            CHECK_EQ(tide_loop_close(moved), 0); /* on its own thread */
        CHECK_EQ(close(fds[0]), 0);
        CHECK_EQ(close(fds[1]), 0);
    }
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    LEAK_GATE();
}

/* ---- hostile: many receives cancelled, many resets (B41, B42) -------- */

enum { RAW_PAIRS = 1000, STREAM_PAIRS = 1000 };
static int raw[RAW_PAIRS][2], streamed[STREAM_PAIRS][2];
static tide_stream *streams[STREAM_PAIRS];
static tide_future **receivers;
static size_t nreceivers;
static char bytes[RAW_PAIRS];

/* arg: an index; below STREAM_PAIRS a stream read on that stream, else a
 * one-byte tide_sock_recv on a raw pair's fd. */
static void *receive(void *arg)
{
    size_t i = (size_t)PINT(arg);
    ssize_t r;

    if (i < STREAM_PAIRS) {
        const void *p;
        r = tide_stream_read(streams[i], 1, &p);
    } else {
        size_t k = i % RAW_PAIRS;
        r = tide_sock_recv(raw[k][0], &bytes[k], 1, 0);
    }
    return r < 0 ? tide_fail((int)r) : IPTR(r);
}

/* How many receiving tasks: 100,000, fewer under the sanitizers and
 * valgrind, where each costs much more. (On io_uring a cancel of a
 * request in the kernel is a walk of one bucket of a table of at most
 * 256 (Linux 6.18), quadratic in the requests; the receives of one fd
 * go to the kernel one at a time, so these 100,000 are a few hundred
 * requests there: 1.9 s for the test, where each in the kernel took
 * 4.8 s of kernel time for the cancels alone.) */
static size_t receivers_wanted(void)
{
    size_t n = HARNESS_VALGRIND ? 2000
               : HARNESS_TSAN   ? 2000
               : HARNESS_ASAN   ? 20000
                                : 100000;
    /* Compact tasks wait for readiness: each is a poll in the kernel, and
     * those are not queued behind one another (30,000: 0.45 s). */
    return on_io_uring() && harness_compact() && n > 30000 ? 30000 : n;
}

/* 100,000 tasks, each in a receive with nothing to come (1,000 in a
 * stream read, the rest in tide_sock_recv, 99 to each of 1,000 sockets),
 * all cancelled in one step: each ends cancelled, exactly once; the
 * sockets then still deliver a byte to a new receive (no cancelled one
 * took it: B41); after the loop's close the fds and tide's allocations
 * are what they were (LEAK_GATE) and resident memory is back within
 * 64 MiB of where it started (the stacks are unmapped). */
static void *cancel_many_body(void *arg)
{
    (void)arg;
    nreceivers = receivers_wanted();
    for (int i = 0; i < RAW_PAIRS; i++)
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, raw[i]),
                 0);
    for (int i = 0; i < STREAM_PAIRS; i++) {
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
                            streamed[i]),
                 0);
        CHECK_NOT_NULL(streams[i] = tide_stream_new(streamed[i][0], 0));
    }
    for (size_t i = 0; i < nreceivers; i++)
        CHECK_NOT_NULL(receivers[i] =
                           tide_create_task(NULL, receive, IPTR(i)));
    CHECK_EQ(tide_sleep(0.01), 0); /* every one waits in its receive */
    tide_loop_stats st;
    CHECK_EQ(tide_loop_get_stats(NULL, &st), 0);
    CHECK_EQ(st.tasks, nreceivers + 1);
    for (size_t i = 0; i < nreceivers; i++)
        CHECK(tide_future_cancel(receivers[i]));
    for (size_t i = 0; i < nreceivers; i++) {
        CHECK_ERR(tide_await(receivers[i], NULL), -ECANCELED);
        CHECK(tide_future_cancelled(receivers[i]));
        tide_future_release(receivers[i]);
    }
    for (int i = 0; i < RAW_PAIRS; i++) {
        char c = 0;
        CHECK_EQ(write(raw[i][1], "z", 1), 1);
        CHECK_EQ(tide_sock_recv(raw[i][0], &c, 1, 0), 1);
        CHECK_EQ(c, 'z');
        CHECK_EQ(tide_close(raw[i][0]), 0);
        CHECK_EQ(close(raw[i][1]), 0);
    }
    for (int i = 0; i < STREAM_PAIRS; i++) {
        CHECK_EQ(write(streamed[i][1], "y", 1), 1);
        const void *p;
        CHECK_EQ(tide_stream_read(streams[i], 1, &p), 1);
        CHECK_EQ(*(const char *)p, 'y');
        CHECK_EQ(tide_stream_close(streams[i], 1), 0);
        CHECK_EQ(close(streamed[i][1]), 0);
    }
    return NULL;
}

TEST(a_hundred_thousand_receiving_tasks_cancelled_at_once)
{
    harness_want_fds(2 * (RAW_PAIRS + STREAM_PAIRS) + 100);
    receivers = malloc(100000 * sizeof *receivers);
    CHECK_NOT_NULL(receivers);
    long rss0 = harness_rss_kib();
    each_backend(cancel_many_body);
    free(receivers);
    malloc_trim(0); /* what glibc keeps of freed memory (compact frames) */
    long grew = harness_rss_kib() - rss0;
    /* The sanitizers keep shadow memory (and ASan a quarantine) of their
     * own, and QEMU's user mode the guest's mappings: resident memory
     * says nothing of tide there. */
    if (!HARNESS_ASAN && !HARNESS_TSAN && !HARNESS_VALGRIND &&
        !harness_qemu() && grew > 64 * 1024)
        harness_fail(__FILE__, __LINE__, "resident memory grew %ld KiB", grew);
    LEAK_GATE();
}

enum { RESET_CONNS = 200, PER_CONN = 10 };
static int conn[RESET_CONNS][2]; /* [0]: ours, [1]: the peer */
static int resets, eofs;

/* arg: connection * PER_CONN + k; connections of odd number have one
 * stream reader (k == 0) instead of ten raw receivers. */
static void *receive_until_reset(void *arg)
{
    int i = (int)PINT(arg) / PER_CONN;
    ssize_t r;

    if (i % 2) {
        const void *p;
        r = tide_stream_read(streams[i], 1, &p);
    } else {
        char c;
        r = tide_sock_recv(conn[i][0], &c, 1, 0);
    }
    CHECK(r == 0 || r == -ECONNRESET);
    if (r == 0)
        eofs++;
    else
        resets++;
    return NULL;
}

/* 200 TCP connections with receives waiting (ten raw ones each on half
 * of them, a stream read on the others), then every peer resets
 * (SO_LINGER 0 close) in one step: each receive ends once, with
 * -ECONNRESET (the first on each connection: the error is reported
 * once) or 0 after it; every connection reports its reset. */
static void *reset_many_body(void *arg)
{
    static tide_future *t[RESET_CONNS * PER_CONN];
    size_t n = 0;
    (void)arg;
    resets = eofs = 0;
    /* One listener for all (a bound port each would take 200 more). */
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    CHECK_EQ(bind(l, (struct sockaddr *)&a, len), 0);
    CHECK_EQ(listen(l, RESET_CONNS), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
    for (int i = 0; i < RESET_CONNS; i++) {
        conn[i][1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(conn[i][1] >= 0);
        CHECK_EQ(connect(conn[i][1], (struct sockaddr *)&a, len), 0);
        conn[i][0] = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        CHECK(conn[i][0] >= 0);
        if (i % 2) {
            CHECK_NOT_NULL(streams[i] = tide_stream_new(conn[i][0], 0));
            CHECK_NOT_NULL(t[n++] = tide_create_task(NULL, receive_until_reset,
                                                     IPTR(i * PER_CONN)));
        } else {
            for (int k = 0; k < PER_CONN; k++)
                CHECK_NOT_NULL(t[n++] =
                                   tide_create_task(NULL, receive_until_reset,
                                                    IPTR(i * PER_CONN + k)));
        }
    }
    CHECK_EQ(close(l), 0);
    CHECK_EQ(tide_sleep(0.01), 0); /* all waiting */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    for (int i = 0; i < RESET_CONNS; i++) {
        CHECK_EQ(setsockopt(conn[i][1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg),
                 0);
        CHECK_EQ(close(conn[i][1]), 0);
    }
    for (size_t i = 0; i < n; i++) {
        tide_timeout *scope = tide_timeout_begin(2.0);
        CHECK_NOT_NULL(scope);
        CHECK_EQ(tide_timeout_end(scope, tide_await(t[i], NULL)), 0);
        tide_future_release(t[i]);
    }
    CHECK_EQ(resets + eofs, (int)n);
    CHECK_EQ(resets, RESET_CONNS);
    for (int i = 0; i < RESET_CONNS; i++) {
        if (i % 2)
            CHECK_EQ(tide_stream_close(streams[i], 1), 0);
        else
            CHECK_EQ(tide_close(conn[i][0]), 0);
    }
    return NULL;
}

TEST(peers_reset_while_many_receives_wait)
{
    harness_want_fds(2 * RESET_CONNS + 100);
    each_backend(reset_many_body);
    LEAK_GATE();
}
