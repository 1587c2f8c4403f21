/* io_uring's multishot receives (src/poll/uring_ms.c) seen through tide
 * streams on TCP: the kernel receives ahead of the reads, and what it
 * brought in comes out in order, whole, once, across buffer boundaries,
 * with the end of stream or an error after it; a stream nobody reads
 * stops taking buffers, a dry ring makes reads plain receives, every
 * buffer comes back; cancelled and closed reads lose nothing and leak
 * nothing; a compact task reads what a plain one left held. Skipped when
 * io_uring is not what the loop runs.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"
#include "net.h"

#include "core/loop.h"

#include <tide/io.h>
#include <tide/stream.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifdef TIDE_HAVE_URING
#include "poll/uring.h"

#define NBUF 256u /* uring_ms.c's ring */

/* Force io_uring for the loops this test makes; skip if it falls back. */
static void want_uring(void)
{
    setenv("TIDE_BACKEND", "io_uring", 1);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    bool ok = strcmp(tide_loop_backend(loop), "io_uring") == 0;
    CHECK_EQ(tide_loop_close(loop), 0);
    if (!ok)
        SKIP("io_uring unavailable here");
}

/* Run body as a plain task (a stack of its own, even under
 * TIDE_COMPACT=1: compact tasks make their own receives, and these tests
 * are about the kernel's). */
static void run_plain(tide_fn body)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    tide_task_options o = {.stack_size = 256 * 1024};
    tide_future *t = tide_create_task_ex(loop, body, NULL, &o);
    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
}

static unsigned free_buffers(void)
{
    return tide__ms_free_buffers(&tide__running->backend);
}

static unsigned char pat(size_t i, unsigned seed)
{
    return (unsigned char)(i * 31 + seed * 7 + (i >> 9));
}

/* Write n pattern bytes to fd (non-blocking), waiting for room. */
static void write_pattern(int fd, size_t n, unsigned seed)
{
    static unsigned char chunk[65536];
    size_t done = 0;

    while (done < n) {
        size_t k = n - done < sizeof chunk ? n - done : sizeof chunk;
        for (size_t i = 0; i < k; i++)
            chunk[i] = pat(done + i, seed);
        ssize_t w = send(fd, chunk, k, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            CHECK_EQ(errno, EAGAIN);
            CHECK_EQ(tide_wait_writable(fd, 5), 0);
            continue;
        }
        done += (size_t)w;
    }
}

/* Read n bytes from s in reads of at most `step`; check the pattern. */
static void read_pattern(tide_stream *s, size_t n, size_t step, unsigned seed)
{
    static unsigned char buf[65536];
    size_t done = 0;

    while (done < n) {
        size_t want = n - done < step ? n - done : step;
        ssize_t r = tide_stream_read_into(s, buf, want);
        CHECK(r > 0);
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != pat(done + (size_t)i, seed))
                harness_fail(__FILE__, __LINE__, "byte %zu: %u != %u",
                             done + (size_t)i, buf[i],
                             pat(done + (size_t)i, seed));
        done += (size_t)r;
    }
}

static int inq(int fd)
{
    int q = -1;
    CHECK_EQ(ioctl(fd, FIONREAD, &q), 0);
    return q;
}

/* A stream over the server end of a TCP pair, its first read made (so
 * its multishot is armed); *peer is the client end. */
static tide_stream *armed_stream(int *peer, size_t limit)
{
    int sfd;
    harness_tcp_pair(peer, &sfd);
    tide_stream *s = tide_stream_new(sfd, limit);
    CHECK_NOT_NULL(s);
    CHECK_EQ(send(*peer, "hello", 5, 0), 5);
    const void *p;
    CHECK_EQ(tide_stream_read(s, 64, &p), 5);
    CHECK(memcmp(p, "hello", 5) == 0);
    return s;
}

/* ---- ahead, in order, whole ------------------------------------------ */

static void *ahead_body(void *arg)
{
    int c;
    (void)arg;
    tide_stream *s = armed_stream(&c, 0);
    int fd = tide_stream_fd(s);

    write_pattern(c, 3000, 1);
    CHECK_EQ(tide_sleep(0.02), 0);
    CHECK_EQ(inq(fd), 0); /* the kernel took it into the ring */
    CHECK(free_buffers() < NBUF);
    read_pattern(s, 3000, 3000, 1);
    CHECK_EQ(free_buffers(), NBUF);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    close(c);
    return NULL;
}

TEST(the_kernel_receives_ahead_of_the_read)
{
    want_uring();
    run_plain(ahead_body);
    LEAK_GATE();
}

static int writer_fd;

static void *writer(void *arg)
{
    write_pattern(writer_fd, (size_t)(intptr_t)arg, 2);
    CHECK_EQ(shutdown(writer_fd, SHUT_WR), 0);
    return NULL;
}

static void *big_body(void *arg)
{
    size_t n = (size_t)4 << 20;
    (void)arg;
    /* A 1000-byte stream buffer: each 16 KiB kernel buffer is taken in
     * many reads, and reads of 777 cross buffer boundaries. */
    tide_stream *s = armed_stream(&writer_fd, 1000);
    tide_future *w = tide_create_task(NULL, writer, (void *)(intptr_t)n);
    CHECK_NOT_NULL(w);
    read_pattern(s, n, 777, 2);
    const void *p;
    CHECK_EQ(tide_stream_read(s, 10, &p), 0);
    CHECK_EQ(tide_stream_read(s, 10, &p), 0);
    CHECK_EQ(tide_await(w, NULL), 0);
    tide_future_release(w);
    CHECK_EQ(free_buffers(), NBUF);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    close(writer_fd);
    return NULL;
}

TEST(four_mib_through_small_reads_arrive_whole_then_eof)
{
    want_uring();
    run_plain(big_body);
    LEAK_GATE();
}

/* ---- limits ----------------------------------------------------------- */

static void *unread_body(void *arg)
{
    int c;
    size_t n = (size_t)1 << 20;
    (void)arg;
    tide_stream *s = armed_stream(&c, 0);
    int fd = tide_stream_fd(s);

    /* 1 MiB sent while nobody reads: the multishot ends at its total
     * (64 KiB), and the rest waits in the socket. */
    int big = 4 << 20;
    CHECK_EQ(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &big, sizeof big), 0);
    write_pattern(c, n, 3);
    CHECK_EQ(tide_sleep(0.05), 0);
    unsigned taken = NBUF - free_buffers();
    CHECK(taken > 0);
    if (!tide__ur(&tide__running->backend)->no_limit)
        CHECK(taken <= 4 + 1); /* the kernel's total: 64 KiB, 16 KiB each */
    else
        CHECK(taken < NBUF - 32); /* stopped when seen: best effort */
    CHECK(inq(fd) > 0);
    read_pattern(s, n, 65536, 3);
    CHECK_EQ(free_buffers(), NBUF);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    close(c);
    return NULL;
}

TEST(a_stream_nobody_reads_stops_taking_buffers)
{
    want_uring();
    run_plain(unread_body);
    LEAK_GATE();
}

#define MANY 48

static void *dry_body(void *arg)
{
    static int c[MANY];
    static tide_stream *s[MANY];
    size_t n = 256 << 10;
    (void)arg;

    for (int i = 0; i < MANY; i++) {
        s[i] = armed_stream(&c[i], 0);
        int big = 1 << 20;
        CHECK_EQ(setsockopt(c[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof big), 0);
    }
    /* 12 MiB unread over 48 streams, three times the ring: it runs dry,
     * later reads are plain receives, and everything still arrives. */
    for (int i = 0; i < MANY; i++)
        write_pattern(c[i], n, (unsigned)i);
    CHECK_EQ(tide_sleep(0.05), 0);
    for (int i = MANY; i-- > 0;)
        read_pattern(s[i], n, 65536, (unsigned)i);
    CHECK_EQ(free_buffers(), NBUF);
    /* and the multishots come back: a second round, all read */
    for (int i = 0; i < MANY; i++)
        write_pattern(c[i], 1000, 100 + (unsigned)i);
    for (int i = 0; i < MANY; i++)
        read_pattern(s[i], 1000, 65536, 100 + (unsigned)i);
    for (int i = 0; i < MANY; i++) {
        CHECK_EQ(tide_stream_close(s[i], 1), 0);
        close(c[i]);
    }
    return NULL;
}

TEST(a_dry_ring_falls_back_to_plain_receives)
{
    want_uring();
    harness_want_fds(2 * MANY + 64);
    run_plain(dry_body);
    LEAK_GATE();
}

/* ---- ends ------------------------------------------------------------- */

static void *eof_body(void *arg)
{
    int c;
    (void)arg;
    tide_stream *s = armed_stream(&c, 0);
    const void *p;

    write_pattern(c, 100, 4);
    CHECK_EQ(shutdown(c, SHUT_WR), 0);
    CHECK_EQ(tide_sleep(0.02), 0); /* data and end both held */
    read_pattern(s, 100, 65536, 4);
    CHECK_EQ(tide_stream_read(s, 10, &p), 0);
    CHECK(tide_stream_at_eof(s));
    CHECK_EQ(tide_stream_read(s, 10, &p), 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    close(c);
    return NULL;
}

TEST(data_then_end_of_stream_held_come_out_in_order)
{
    want_uring();
    run_plain(eof_body);
    LEAK_GATE();
}

static int reset_fd;

static void *resetter(void *arg)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)arg;
    CHECK_EQ(tide_sleep(0.02), 0); /* the reader waits on the multishot */
    CHECK_EQ(setsockopt(reset_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(reset_fd);
    return NULL;
}

static void *reset_body(void *arg)
{
    const void *p;
    (void)arg;
    tide_stream *s = armed_stream(&reset_fd, 0);
    tide_future *t = tide_create_task(NULL, resetter, NULL);
    CHECK_NOT_NULL(t);
    CHECK_ERR(tide_stream_read(s, 10, &p), -ECONNRESET);
    CHECK_EQ(tide_stream_read(s, 10, &p), 0); /* reported once */
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(free_buffers(), NBUF);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    return NULL;
}

TEST(a_peer_reset_while_the_multishot_is_armed)
{
    want_uring();
    run_plain(reset_body);
    LEAK_GATE();
}

/* ---- cancel and close ------------------------------------------------- */

static tide_stream *shared;

static void *reader(void *arg)
{
    const void *p;
    (void)arg;
    return (void *)(intptr_t)tide_stream_read(shared, 10, &p);
}

static void *cancel_body(void *arg)
{
    int c;
    (void)arg;
    shared = armed_stream(&c, 0);
    for (int round = 0; round < 100; round++) {
        tide_future *t = tide_create_task(NULL, reader, NULL);
        CHECK_EQ(tide_sleep(0), 0); /* it waits on the multishot */
        CHECK(tide_future_cancel(t));
        void *r;
        CHECK_EQ(tide_await(t, &r), 0); /* it returned the read's error */
        CHECK_ERR((intptr_t)r, -ECANCELED);
        tide_future_release(t);
    }
    write_pattern(c, 10, 5); /* nothing was lost or taken by them */
    read_pattern(shared, 10, 65536, 5);
    CHECK_EQ(tide_stream_close(shared, 1), 0);
    close(c);
    return NULL;
}

TEST(cancelled_reads_lose_nothing)
{
    want_uring();
    run_plain(cancel_body);
    LEAK_GATE();
}

static void *close_body(void *arg)
{
    int c;
    (void)arg;
    shared = armed_stream(&c, 0);
    write_pattern(c, 5000, 6); /* held, never read */
    tide_future *t = tide_create_task(NULL, reader, NULL);
    CHECK_EQ(tide_sleep(0.02), 0);
    /* reader took 10 bytes of the held 5,000 and is done; a second one
     * waits after draining the rest */
    void *r;
    CHECK_EQ(tide_await(t, &r), 0);
    CHECK_EQ((intptr_t)r, 10);
    tide_future_release(t);
    static unsigned char rest[4990];
    CHECK_EQ(tide_stream_readexactly(shared, rest, sizeof rest, NULL), 0);
    for (size_t i = 0; i < sizeof rest; i++)
        CHECK_EQ(rest[i], pat(10 + i, 6));
    t = tide_create_task(NULL, reader, NULL);
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(tide_stream_abort(shared), 0); /* closes the fd under it */
    CHECK_EQ(tide_await(t, &r), 0);
    CHECK_ERR((intptr_t)r, -EBADF);
    tide_future_release(t);
    CHECK_EQ(free_buffers(), NBUF);
    close(c);
    return NULL;
}

TEST(closing_under_a_waiting_read)
{
    want_uring();
    long fds = harness_fd_count();
    run_plain(close_body);
    CHECK_EQ(harness_fd_count(), fds);
    LEAK_GATE();
}

/* A compact task reads what a plain task's multishot holds, and waits on
 * it (the take verb, and POLLIN answered from the record). */
static void *compact_reader(void *arg)
{
    read_pattern(shared, (size_t)(intptr_t)arg, 100, 7);
    return NULL;
}

static void *compact_body(void *arg)
{
    static int c;
    (void)arg;
    shared = armed_stream(&c, 0);
    write_pattern(c, 3000, 7);
    CHECK_EQ(tide_sleep(0.02), 0); /* held */
    tide_task_options o = {.compact = true};
    tide_future *t =
        tide_create_task_ex(NULL, compact_reader, (void *)(intptr_t)6000, &o);
    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_sleep(0.01), 0); /* it took the 3,000 and waits */
    /* the rest, in the same pattern stream */
    static unsigned char more[3000];
    for (size_t i = 0; i < sizeof more; i++)
        more[i] = pat(3000 + i, 7);
    CHECK_EQ(send(c, more, sizeof more, 0), (ssize_t)sizeof more);
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_stream_close(shared, 1), 0);
    close(c);
    return NULL;
}

TEST(a_compact_task_reads_what_the_multishot_holds)
{
    want_uring();
    run_plain(compact_body);
    LEAK_GATE();
}

/* ---- accepts ---------------------------------------------------------- */

#define BURST 200

static int listener;

static int connect_to(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    CHECK_EQ(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    return c;
}

static uint16_t listen_here(void)
{
    uint16_t port;
    listener = tcp_listener(4096, &port);
    return port;
}

static void *accept_body(void *arg)
{
    static int cl[BURST + 50];
    (void)arg;
    uint16_t port = listen_here();

    cl[0] = connect_to(port);
    int first = tide_sock_accept(listener, NULL, NULL); /* arms it */
    CHECK(first >= 0);
    close(first);
    /* A burst nobody accepts: the kernel takes them ahead (up to the
     * hold limit; the rest wait in the backlog); every one comes out,
     * each once. */
    for (int i = 1; i <= BURST; i++)
        cl[i] = connect_to(port);
    CHECK_EQ(tide_sleep(0.02), 0);
    for (int i = 1; i <= BURST; i++) {
        int fd = tide_sock_accept(listener, NULL, NULL);
        CHECK(fd > 2);
        CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        CHECK_EQ(tide_close(fd), 0);
    }
    /* 50 more taken ahead, then the listener closes: they are closed with
     * it (their clients see the end), nothing leaks. */
    for (int i = BURST + 1; i < BURST + 50; i++)
        cl[i] = connect_to(port);
    CHECK_EQ(tide_sleep(0.02), 0);
    CHECK_EQ(tide_close(listener), 0);
    for (int i = BURST + 1; i < BURST + 50; i++) {
        char c;
        CHECK_EQ(tide_wait_readable(cl[i], 5), 0);
        ssize_t r = recv(cl[i], &c, 1, 0);
        CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
    }
    for (int i = 0; i < BURST + 50; i++)
        close(cl[i]);
    return NULL;
}

TEST(accepts_taken_ahead_come_out_once_and_close_with_the_listener)
{
    want_uring();
    harness_want_fds(2 * BURST + 200);
    long fds = harness_fd_count();
    run_plain(accept_body);
    CHECK_EQ(harness_fd_count(), fds);
    LEAK_GATE();
}

static void *compact_acceptor(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)tide_sock_accept(listener, NULL, NULL);
}

static void *compact_accept_body(void *arg)
{
    (void)arg;
    uint16_t port = listen_here();
    int c1 = connect_to(port);
    int first = tide_sock_accept(listener, NULL, NULL); /* arms it */
    CHECK(first >= 0);
    int c2 = connect_to(port), c3 = -1;
    CHECK_EQ(tide_sleep(0.02), 0); /* held */
    tide_task_options o = {.compact = true};
    for (int i = 0; i < 2; i++) {
        tide_future *t = tide_create_task_ex(NULL, compact_acceptor, NULL, &o);
        CHECK_NOT_NULL(t);
        if (i == 1) { /* this one waits, then its peer comes */
            CHECK_EQ(tide_sleep(0.01), 0);
            c3 = connect_to(port);
        }
        void *r;
        CHECK_EQ(tide_await(t, &r), 0);
        CHECK((intptr_t)r > 2);
        CHECK_EQ(tide_close((int)(intptr_t)r), 0);
        tide_future_release(t);
    }
    CHECK_EQ(tide_close(first), 0);
    CHECK_EQ(tide_close(listener), 0);
    close(c1);
    close(c2);
    close(c3);
    return NULL;
}

TEST(a_compact_task_accepts_what_the_multishot_holds)
{
    want_uring();
    long fds = harness_fd_count();
    run_plain(compact_accept_body);
    CHECK_EQ(harness_fd_count(), fds);
    LEAK_GATE();
}

#else

TEST(built_without_liburing)
{
    SKIP("built without liburing");
}

#endif
