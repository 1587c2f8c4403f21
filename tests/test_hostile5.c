/* Hostile tests for io_uring's multishot receives and accepts
 * (src/poll/uring_ms.c) and its DEFER_TASKRUN ring (src/poll/uring.c),
 * issue 11: bytes come out once and in order whatever mix of calls reads
 * them (stream reads, tide_sock_recv, MSG_PEEK, recvmsg, compact tasks,
 * cancels, timeouts); close, detach and fd-number reuse while the kernel
 * still receives; held accepted fds at close and at EMFILE; loop close
 * with everything armed; ENOMEM at every allocation; thousands of
 * streams; the embedding fd (readable when work is there, not after).
 * Each test forces TIDE_BACKEND=io_uring and skips if the loop falls
 * back.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"
#include "net.h"

#include "core/loop.h"

#include <tide/io.h>
#include <tide/pool.h>
#include <tide/stream.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef TIDE_HAVE_URING
#include "base/alloc.h"
#include "base/sys.h"
#include "poll/uring.h"

#define NBUF 256u /* uring_ms.c's ring */

static void want_uring(void)
{
    if (HARNESS_VALGRIND) /* as test_uring's and test_file_uring's */
        SKIP("memcheck cannot see the kernel's writes into ring memory");
    setenv("TIDE_BACKEND", "io_uring", 1);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    bool ok = strcmp(tide_loop_backend(loop), "io_uring") == 0;
    CHECK_EQ(tide_loop_close(loop), 0);
    if (!ok)
        SKIP("io_uring unavailable here");
}

/* body as a plain task (the kernel's receives, not a compact task's). */
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

static void write_pattern_from(int fd, size_t from, size_t n, unsigned seed)
{
    static unsigned char chunk[65536];
    size_t done = 0;

    while (done < n) {
        size_t k = n - done < sizeof chunk ? n - done : sizeof chunk;
        for (size_t i = 0; i < k; i++)
            chunk[i] = pat(from + done + i, seed);
        ssize_t w = send(fd, chunk, k, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            CHECK_EQ(errno, EAGAIN);
            CHECK_EQ(tide_wait_writable(fd, 5), 0);
            continue;
        }
        done += (size_t)w;
    }
}

static void check_pattern(const unsigned char *b, size_t n, size_t at,
                          unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat(at + i, seed))
            harness_fail(__FILE__, __LINE__, "byte %zu: %u != %u", at + i,
                         b[i], pat(at + i, seed));
}

static int inq(int fd)
{
    int q = -1;
    CHECK_EQ(ioctl(fd, FIONREAD, &q), 0);
    return q;
}

/* A stream over a TCP pair's server end with its multishot armed (one
 * read made); *peer: the client end. */
static tide_stream *armed_stream(int *peer, size_t limit)
{
    int sfd;
    harness_tcp_pair(peer, &sfd);
    tide_stream *s = tide_stream_new(sfd, limit);
    CHECK_NOT_NULL(s);
    CHECK_EQ(send(*peer, "hello", 5, 0), 5);
    const void *p;
    CHECK_EQ(tide_stream_read(s, 64, &p), 5);
    return s;
}

/* Bytes the kernel took into the record ahead of any read. */
static void settle(int fd)
{
    for (int i = 0; i < 100 && inq(fd) > 0; i++)
        CHECK_EQ(tide_sleep(0.002), 0);
    CHECK_EQ(tide_sleep(0.005), 0);
}

/* ---- flags and other calls on a stream's fd --------------------------- */

static char peeked[8];

static void *peeker(void *arg)
{
    return (void *)(intptr_t)tide_sock_recv((int)(intptr_t)arg, peeked, 8,
                                            MSG_PEEK);
}

/* MSG_PEEK on a stream's fd whose bytes the multishot took ahead: epoll
 * and poll show them (they are the next bytes of the socket); a peek of
 * the socket itself finds it empty and waits for bytes that come after
 * them, which breaks the order. */
static void *peek_body(void *arg)
{
    int c;
    (void)arg;
    tide_stream *s = armed_stream(&c, 0);
    int fd = tide_stream_fd(s);
    char b[8] = {0};

    CHECK_EQ(send(c, "AAAA", 4, 0), 4);
    settle(fd);
    tide_timeout *t = tide_timeout_begin(0.3);
    CHECK_NOT_NULL(t);
    ssize_t r = tide_sock_recv(fd, b, 4, MSG_PEEK);
    CHECK_ERR(tide_timeout_end(t, (int)r), 4);
    CHECK(memcmp(b, "AAAA", 4) == 0);
    memset(b, 0, sizeof b);
    CHECK_EQ(tide_sock_recv(fd, b, 8, 0), 4); /* the peeked bytes again */
    CHECK(memcmp(b, "AAAA", 4) == 0);
    /* a peek that waits is answered by the next bytes, left held */
    tide_future *pk = tide_create_task(NULL, peeker, (void *)(intptr_t)fd);
    CHECK_NOT_NULL(pk);
    CHECK_EQ(tide_sleep(0.005), 0);
    CHECK_EQ(send(c, "CCCC", 4, 0), 4);
    void *res;
    CHECK_EQ(tide_await(pk, &res), 0);
    tide_future_release(pk);
    CHECK_EQ((intptr_t)res, 4);
    CHECK(memcmp(peeked, "CCCC", 4) == 0);
    CHECK_EQ(tide_stream_read_into(s, b, 8), 4);
    CHECK(memcmp(b, "CCCC", 4) == 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    close(c);
    return NULL;
}

TEST(msg_peek_on_a_stream_fd_sees_the_bytes_taken_ahead)
{
    want_uring();
    run_plain(peek_body);
    LEAK_GATE();
}

/* recvmsg on a stream's fd: the held bytes come first. */
static void *recvmsg_body(void *arg)
{
    int c;
    (void)arg;
    tide_stream *s = armed_stream(&c, 0);
    int fd = tide_stream_fd(s);
    char b[8] = {0};

    CHECK_EQ(send(c, "AAAA", 4, 0), 4);
    settle(fd);
    CHECK_EQ(send(c, "BBBB", 4, MSG_DONTWAIT), 4);
    struct iovec v = {.iov_base = b, .iov_len = 4};
    struct sockaddr_in from;
    struct msghdr m = {.msg_name = &from,
                       .msg_namelen = sizeof from,
                       .msg_iov = &v,
                       .msg_iovlen = 1};
    tide_timeout *t = tide_timeout_begin(0.3);
    CHECK_NOT_NULL(t);
    ssize_t r = tide_sock_recvmsg(fd, &m, 0);
    CHECK_ERR(tide_timeout_end(t, (int)r), 4);
    CHECK(memcmp(b, "AAAA", 4) == 0);
    CHECK_EQ(m.msg_namelen, 0); /* TCP names no sender */
    CHECK_EQ(m.msg_flags, 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    close(c);
    return NULL;
}

TEST(recvmsg_on_a_stream_fd_gets_the_held_bytes_first)
{
    want_uring();
    run_plain(recvmsg_body);
    LEAK_GATE();
}

/* Every way of reading, interleaved on one stream, with timeouts that
 * expire around reads and cancelled readers: the pattern comes out
 * whole and in order. */
static tide_stream *mix_s;
static size_t mix_at;

static void *compact_piece(void *arg)
{
    static unsigned char b[300];
    ssize_t r = tide_stream_read_into(mix_s, b, sizeof b);
    CHECK(r > 0);
    check_pattern(b, (size_t)r, mix_at, 9);
    mix_at += (size_t)r;
    return arg;
}

static void *cancelled_reader(void *arg)
{
    const void *p;
    (void)arg;
    ssize_t r = tide_stream_read(mix_s, 10, &p);
    if (r > 0) { /* it won the race: its bytes count */
        check_pattern(p, (size_t)r, mix_at, 9);
        mix_at += (size_t)r;
    }
    return (void *)(intptr_t)r;
}

static void *mix_body(void *arg)
{
    int c;
    (void)arg;
    const size_t total = 400000;
    mix_s = armed_stream(&c, 4096);
    int fd = tide_stream_fd(mix_s);
    static unsigned char b[5000];
    size_t sent = 0;
    mix_at = 0;

    for (int round = 0; mix_at < total; round++) {
        if (sent < total && sent - mix_at < 60000) {
            size_t k = total - sent < 7001 ? total - sent : 7001;
            write_pattern_from(c, sent, k, 9);
            sent += k;
        }
        ssize_t r;
        const void *p;
        switch (round % 7) {
        case 0:
            r = tide_stream_read_into(mix_s, b, 1 + (size_t)round % 3000);
            CHECK(r > 0);
            check_pattern(b, (size_t)r, mix_at, 9);
            mix_at += (size_t)r;
            break;
        case 1: {
            size_t k = sent - mix_at < 1234 ? sent - mix_at : 1234;
            if (!k)
                break;
            CHECK_EQ(tide_stream_readexactly(mix_s, b, k, NULL), 0);
            check_pattern(b, k, mix_at, 9);
            mix_at += k;
            break;
        }
        case 2:
            r = tide_stream_read(mix_s, 100, &p);
            CHECK(r > 0);
            check_pattern(p, (size_t)r, mix_at, 9);
            mix_at += (size_t)r;
            break;
        case 3: { /* a compact task's own calls (take, then recv) */
            tide_task_options o = {.compact = true};
            tide_future *t =
                tide_create_task_ex(NULL, compact_piece, NULL, &o);
            CHECK_NOT_NULL(t);
            CHECK_EQ(tide_await(t, NULL), 0);
            tide_future_release(t);
            break;
        }
        case 4: { /* a reader cancelled while it waits or right away */
            tide_future *t = tide_create_task(NULL, cancelled_reader, NULL);
            CHECK_NOT_NULL(t);
            if (round % 2)
                CHECK_EQ(tide_sleep(0), 0);
            tide_future_cancel(t);
            void *res;
            int e = tide_await(t, &res);
            tide_future_release(t);
            if (e == -ECANCELED) /* cancelled before it started */
                break;
            CHECK_EQ(e, 0);
            r = (intptr_t)res;
            CHECK(r > 0 || r == -ECANCELED);
            break;
        }
        case 5: { /* a timeout that may expire in the read */
            tide_timeout *t = tide_timeout_begin(0.0005);
            CHECK_NOT_NULL(t);
            r = tide_stream_read_into(mix_s, b, 2000);
            int e = tide_timeout_end(t, r < 0 ? (int)r : 0);
            if (r > 0) {
                check_pattern(b, (size_t)r, mix_at, 9);
                mix_at += (size_t)r;
            } else {
                CHECK_ERR(e, -ETIMEDOUT);
            }
            break;
        }
        case 6: { /* a readuntil of a byte that is somewhere ahead */
            if (sent - mix_at < 4096)
                break;
            unsigned char sep = pat(mix_at + 50, 9);
            r = tide_stream_readuntil(mix_s, &sep, 1, &p);
            CHECK(r > 0 && r <= 51);
            check_pattern(p, (size_t)r, mix_at, 9);
            mix_at += (size_t)r;
            break;
        }
        }
    }
    CHECK_EQ(inq(fd), 0);
    CHECK_EQ(tide_stream_close(mix_s, 1), 0);
    close(c);
    CHECK_EQ(free_buffers(), NBUF);
    return NULL;
}

TEST(every_kind_of_read_interleaved_keeps_the_order)
{
    want_uring();
    run_plain(mix_body);
    LEAK_GATE();
}

/* ---- lifetimes -------------------------------------------------------- */

/* Close a stream whose multishot holds data and is still receiving,
 * and give its number at once to a new connection: the old CQEs (data
 * still coming) never reach the new stream. 50 rounds. */
/* A TCP pair through listener l (on port): *mine is the connecting end (the
 * lowest free number), *other the accepted one. */
static void pair_via(int l, uint16_t port, int *mine, int *other)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    *mine = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    CHECK(*mine >= 0);
    CHECK(connect(*mine, (struct sockaddr *)&a, sizeof a) == 0 ||
          errno == EINPROGRESS);
    struct pollfd p = {.fd = *mine, .events = POLLOUT};
    CHECK_EQ(poll(&p, 1, 1000), 1);
    *other = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(*other >= 0);
}

/* A stream over a pair through l, its multishot armed (one read made):
 * *fd its number, *peer the other end. */
static tide_stream *armed_via(int l, uint16_t port, int *fd, int *peer)
{
    pair_via(l, port, fd, peer);
    tide_stream *s = tide_stream_new(*fd, 0);
    CHECK_NOT_NULL(s);
    CHECK_EQ(send(*peer, "hello", 5, 0), 5);
    char b[5];
    CHECK_EQ(tide_stream_readexactly(s, b, 5, NULL), 0);
    return s;
}

static void *reuse_body(void *arg)
{
    (void)arg;
    uint16_t port;
    int l = tcp_listener(16, &port);
    int reused = 0;
    for (int round = 0; round < 50; round++) {
        int c, fd;
        tide_stream *s = armed_via(l, port, &fd, &c);
        char b[64];
        write_pattern_from(c, 0, 20000, 1); /* held */
        settle(fd);
        /* more on its way while the close cancels the multishot */
        CHECK_EQ(send(c, "zzzzzzzz", 8, 0), 8);
        if (round % 2)
            CHECK_EQ(tide_stream_abort(s), 0);
        else
            CHECK_EQ(tide_stream_close(s, 0), 0);
        int c2, fd2;
        pair_via(l, port, &fd2, &c2);
        reused += fd2 == fd;
        tide_stream *s2 = tide_stream_new(fd2, 0);
        CHECK_NOT_NULL(s2);
        CHECK_EQ(send(c2, "new!", 4, 0), 4);
        CHECK_EQ(tide_stream_read_into(s2, b, sizeof b), 4);
        CHECK(memcmp(b, "new!", 4) == 0);
        (void)send(c, "late", 4, MSG_DONTWAIT | MSG_NOSIGNAL);
        CHECK_EQ(tide_sleep(0.001), 0);
        CHECK_EQ(send(c2, "more", 4, 0), 4);
        CHECK_EQ(tide_stream_read_into(s2, b, sizeof b), 4);
        CHECK(memcmp(b, "more", 4) == 0);
        CHECK_EQ(tide_stream_close(s2, 1), 0);
        close(c);
        close(c2);
    }
    CHECK(reused > 0); /* the test did what it says */
    close(l);
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(free_buffers(), NBUF);
    return NULL;
}

TEST(a_number_reused_at_once_never_gets_the_old_multishot)
{
    want_uring();
    long fds = harness_fd_count();
    run_plain(reuse_body);
    CHECK_EQ(harness_fd_count(), fds);
    LEAK_GATE();
}

/* tide_fd_detach on an armed stream's fd: from then on the fd is the
 * caller's, and nothing of the loop takes its bytes. */
static void *detach_body(void *arg)
{
    int c;
    (void)arg;
    tide_stream *s = armed_stream(&c, 0);
    int fd = tide_stream_fd(s);

    CHECK_EQ(tide_fd_detach(fd), 0);
    CHECK_EQ(tide_sleep(0.005), 0);
    CHECK_EQ(send(c, "mine", 4, 0), 4);
    CHECK_EQ(tide_sleep(0.02), 0); /* the loop waits in the kernel */
    char b[8];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 1000), 1);
    CHECK_EQ(recv(fd, b, sizeof b, MSG_DONTWAIT), 4);
    CHECK(memcmp(b, "mine", 4) == 0);
    CHECK_EQ(tide_stream_abort(s), 0);
    close(c);
    CHECK_EQ(free_buffers(), NBUF);
    return NULL;
}

TEST(a_detached_fd_is_not_read_by_the_loop_any_more)
{
    want_uring();
    run_plain(detach_body);
    LEAK_GATE();
}

static int lst;

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

/* EMFILE with accepted fds held: those come out first, then EMFILE
 * once, then accepts go on when fds are free again. The limit is set
 * before the multishot accept is armed (one armed earlier keeps the
 * limit of its time, tide/io.h). */
static void *emfile_body(void *arg)
{
    (void)arg;
    uint16_t port;
    lst = tcp_listener(64, &port);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int cl[7];
    for (int i = 0; i < 7; i++)
        CHECK((cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
    struct rlimit old, r;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    r = old;
    r.rlim_cur = (rlim_t)harness_fd_count() + 16;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &r), 0);
    static int spare[64];
    int ns = 0;
    while (ns < 64 && (spare[ns] = dup(0)) >= 0)
        ns++;
    CHECK(ns < 64);
    for (int i = 0; i < 5; i++) /* room for five accepted fds */
        close(spare[--ns]);
    CHECK_EQ(connect(cl[0], (struct sockaddr *)&a, sizeof a), 0);
    int first = tide_sock_accept(lst, NULL, NULL); /* arms it */
    CHECK(first >= 0);
    for (int i = 1; i < 7; i++)
        CHECK_EQ(connect(cl[i], (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(tide_sleep(0.02), 0); /* 4 held, then EMFILE */
    int got[4];
    for (int i = 0; i < 4; i++) {
        got[i] = tide_sock_accept(lst, NULL, NULL);
        CHECK(got[i] > 2);
    }
    CHECK_ERR(tide_sock_accept(lst, NULL, NULL), -EMFILE);
    for (int i = 0; i < ns; i++)
        close(spare[i]);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    for (int i = 0; i < 2; i++) {
        int fd = tide_sock_accept(lst, NULL, NULL);
        CHECK(fd > 2);
        CHECK_EQ(tide_close(fd), 0);
    }
    for (int i = 0; i < 4; i++)
        CHECK_EQ(tide_close(got[i]), 0);
    CHECK_EQ(tide_close(first), 0);
    CHECK_EQ(tide_close(lst), 0);
    for (int i = 0; i < 7; i++)
        close(cl[i]);
    return NULL;
}

TEST(emfile_with_accepted_fds_held_gives_them_then_the_error)
{
    want_uring();
    long fds = harness_fd_count();
    run_plain(emfile_body);
    CHECK_EQ(harness_fd_count(), fds);
    LEAK_GATE();
}

/* The loop closes while a multishot receive holds data and is armed, a
 * read waits on another, a multishot accept holds fds: every fd closed
 * or handed back, nothing leaks, nothing is written after free (ASan). */
static int lc_peer[3];
static tide_stream *lc_s[2];

/* Waits on s2 until the loop close cancels it, then closes both. */
static void *lc_waiter(void *arg)
{
    const void *p;
    (void)arg;
    ssize_t r = tide_stream_read(lc_s[1], 10, &p);
    CHECK_EQ(tide_stream_abort(lc_s[0]), 0);
    CHECK_EQ(tide_stream_abort(lc_s[1]), 0);
    return (void *)(intptr_t)r;
}

static void *lc_body(void *arg)
{
    (void)arg;
    lc_s[0] = armed_stream(&lc_peer[0], 0);
    lc_s[1] = armed_stream(&lc_peer[1], 0);
    write_pattern_from(lc_peer[0], 0, 50000, 3);
    settle(tide_stream_fd(lc_s[0]));
    tide_future *w = tide_create_task(NULL, lc_waiter, NULL);
    CHECK_NOT_NULL(w);
    tide_future_release(w);
    uint16_t port;
    lst = tcp_listener(64, &port);
    lc_peer[2] = connect_to(port);
    int first = tide_sock_accept(lst, NULL, NULL);
    CHECK(first >= 0);
    close(first);
    static int more[5];
    for (int i = 0; i < 5; i++)
        more[i] = connect_to(port);
    CHECK_EQ(tide_sleep(0.02), 0);
    for (int i = 0; i < 5; i++)
        close(more[i]);
    /* returns with all that live: the loop close ends it */
    return NULL;
}

TEST(loop_close_with_multishots_armed_and_data_and_fds_held)
{
    want_uring();
    long fds = harness_fd_count();
    for (int round = 0; round < 3; round++) {
        tide_loop *loop = tide_loop_new();
        CHECK_NOT_NULL(loop);
        tide_task_options o = {.stack_size = 256 * 1024};
        tide_future *t = tide_create_task_ex(loop, lc_body, NULL, &o);
        CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
        tide_future_release(t);
        CHECK_EQ(tide_loop_close(loop), 0);
        for (int i = 0; i < 3; i++)
            close(lc_peer[i]);
        close(lst);
    }
    CHECK_EQ(harness_fd_count(), fds);
    LEAK_GATE();
}

/* ---- the embedding fd (DEFER_TASKRUN: a registered eventfd) ----------- */

static int em_peer, em_sfd, em_round;
static tide_stream *em_s;
static ssize_t em_got;

static void *em_reader(void *arg)
{
    const void *p;
    char b[16];
    (void)arg;
    if (em_round % 2 == 0) { /* a stream's first read: arms a multishot */
        em_s = tide_stream_new(em_sfd, 0);
        CHECK_NOT_NULL(em_s);
        em_got = tide_stream_read(em_s, 64, &p);
    } else { /* a plain receive on a socketpair */
        em_got = tide_sock_recv(em_sfd, b, sizeof b, 0);
    }
    return NULL;
}

static void *em_sender(void *arg)
{
    (void)arg;
    usleep(50000);
    CHECK_EQ(send(em_peer, "wake", 4, 0), 4);
    return NULL;
}

/* An outer poll() loop drives tide by its fd and timeout. A task starts
 * a read in an iteration (the backend queues the request); its data
 * comes from another thread while the outer loop sleeps in poll(): the
 * fd must wake it, as on epoll. */
TEST(an_embedded_loop_wakes_for_a_read_started_in_an_iteration)
{
    want_uring();
    /* rounds 2 and 3: a ring without DEFER_TASKRUN (its setup refused),
     * whose embedding fd is the ring's own */
    for (em_round = 0; em_round < 4; em_round++) {
        if (em_round >= 2)
            tide__sys_fault(TIDE__SYS_URING_SETUP, 1, EINVAL, 0);
        tide_loop *loop = tide_loop_new();
        CHECK_NOT_NULL(loop);
        CHECK_EQ(strcmp(tide_loop_backend(loop), "io_uring"), 0);
        CHECK_EQ(tide__ur(&loop->backend)->defer, em_round < 2);
        int efd = tide_loop_backend_fd(loop);
        CHECK(efd >= 0);
        if (em_round % 2 == 0) {
            harness_tcp_pair(&em_peer, &em_sfd);
        } else {
            int sv[2];
            CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
            em_peer = sv[0];
            em_sfd = sv[1];
        }
        em_got = -1000;
        tide_future *t = tide_create_task(loop, em_reader, NULL);
        CHECK_NOT_NULL(t);
        CHECK(tide_loop_run_once(loop, 0) >= 0); /* the read starts */
        pthread_t th;
        double start = harness_now();
        CHECK_EQ(pthread_create(&th, NULL, em_sender, NULL), 0);
        while (em_got == -1000 && harness_now() - start < 3) {
            double to;
            CHECK_EQ(tide_loop_backend_timeout(loop, &to), 0);
            struct pollfd p = {.fd = efd, .events = POLLIN};
            int ms = isinf(to) || to > 1.5 ? 1500 : (int)(to * 1000);
            CHECK(poll(&p, 1, ms) >= 0);
            CHECK(tide_loop_run_once(loop, 0) >= 0);
        }
        CHECK_EQ(pthread_join(th, NULL), 0);
        double took = harness_now() - start;
        if (em_got == -1000 || took > 0.5)
            harness_fail(__FILE__, __LINE__,
                         "round %d: data sent at 0.05 s, read after %.3f s: "
                         "the embedding fd did not wake the outer loop",
                         em_round, took);
        CHECK_EQ(em_got, 4);
        tide_future_release(t);
        if (em_round % 2 == 0)
            CHECK_EQ(tide_stream_abort(em_s), 0);
        else
            CHECK_EQ(tide_close(em_sfd), 0);
        close(em_peer);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}

/* A pool job's completion reaches an embedding program sleeping on the
 * fd (the pool wakes the loop from its thread). */
static int slow_job(void *arg, void **result)
{
    (void)arg;
    usleep(50000);
    *result = (void *)(intptr_t)7;
    return 0;
}

static int pool_done;

static void *pool_task(void *arg)
{
    void *r = NULL;
    (void)arg;
    CHECK_EQ(tide_to_thread(slow_job, NULL, &r), 0);
    pool_done = (int)(intptr_t)r;
    return NULL;
}

TEST(an_embedded_loop_wakes_for_a_pool_completion)
{
    want_uring();
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    int efd = tide_loop_backend_fd(loop);
    CHECK(efd >= 0);
    pool_done = 0;
    tide_future *t = tide_create_task(loop, pool_task, NULL);
    CHECK_NOT_NULL(t);
    double start = harness_now();
    CHECK(tide_loop_run_once(loop, 0) >= 0); /* the job starts */
    while (!pool_done && harness_now() - start < 3) {
        double to;
        CHECK_EQ(tide_loop_backend_timeout(loop, &to), 0);
        struct pollfd p = {.fd = efd, .events = POLLIN};
        CHECK(poll(&p, 1, isinf(to) || to > 1.5 ? 1500 : (int)(to * 1000)) >=
              0);
        CHECK(tide_loop_run_once(loop, 0) >= 0);
    }
    double took = harness_now() - start;
    CHECK_EQ(pool_done, 7);
    if (took > 0.5)
        harness_fail(__FILE__, __LINE__, "a 50 ms job seen after %.3f s",
                     took);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* After an iteration that found everything, the fd is not readable (an
 * outer loop would spin); a cross-thread call makes it readable. */
static void noop(void *arg)
{
    (void)arg;
}

static void *poke(void *loop)
{
    usleep(20000);
    CHECK_EQ(tide_call_soon_threadsafe(loop, noop, NULL), 0);
    return NULL;
}

TEST(the_embedding_fd_is_quiet_after_a_full_iteration_and_wakes_cross_thread)
{
    want_uring();
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    int efd = tide_loop_backend_fd(loop);
    CHECK(efd >= 0);
    for (int i = 0; i < 3; i++)
        CHECK(tide_loop_run_once(loop, 0) >= 0);
    struct pollfd p = {.fd = efd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, poke, loop), 0);
    double start = harness_now();
    CHECK_EQ(poll(&p, 1, 2000), 1);
    CHECK(harness_now() - start < 0.5);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(tide_loop_run_once(loop, 0) >= 0);
    CHECK_EQ(poll(&p, 1, 0), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- SINGLE_ISSUER: one loop, run in one thread, then in another ------ */

static void *echo_once(void *arg)
{
    int c;
    (void)arg;
    tide_stream *s = armed_stream(&c, 0);
    CHECK_EQ(send(c, "abc", 3, 0), 3);
    char b[8];
    ssize_t r = tide_stream_read_into(s, b, sizeof b);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    close(c);
    return (void *)(intptr_t)r;
}

static tide_loop *si_loop;
static int si_err, si_close_err;
static double si_took;

static void *si_thread(void *arg)
{
    (void)arg;
    double t0 = harness_now();
    si_err = tide_loop_run_once(si_loop, 0);
    si_took = harness_now() - t0;
    si_close_err = tide_loop_close(si_loop);
    return NULL;
}

static intptr_t si_run_here(void)
{
    tide_future *t = tide_create_task(si_loop, echo_once, NULL);
    CHECK_NOT_NULL(t);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(si_loop, t, &r), 0);
    tide_future_release(t);
    return (intptr_t)r;
}

/* The ring is SINGLE_ISSUER, bound to the first thread that runs the
 * loop. Run from a second thread it refused with nothing but EEXIST
 * from every io_uring_enter, and spun at 100% CPU (found here; main
 * fixed it meanwhile): now that thread gets -EXDEV at once, close too,
 * and the first thread goes on using the loop. */
TEST(a_loop_run_from_a_second_thread_refuses_at_once)
{
    want_uring();
    si_loop = tide_loop_new();
    CHECK_NOT_NULL(si_loop);
    CHECK_EQ(si_run_here(), 3);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, si_thread, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_ERR(si_err, -EXDEV);
    CHECK(si_took < 0.5);
    CHECK_ERR(si_close_err, -EXDEV);
    CHECK_EQ(si_run_here(), 3);
    CHECK_EQ(tide_loop_close(si_loop), 0);
    LEAK_GATE();
}

/* ---- limits ----------------------------------------------------------- */

/* ENOMEM at each allocation in turn through a run that arms a multishot
 * receive, holds data, arms a multishot accept and holds fds: each run
 * ends (with an error or not), nothing leaks, every fd is closed. */
static void *oom_body(void *arg)
{
    int c, sfd;
    (void)arg;
    harness_tcp_pair(&c, &sfd);
    tide_stream *s = tide_stream_new(sfd, 0);
    if (!s) {
        close(sfd);
        close(c);
        return NULL;
    }
    CHECK_EQ(send(c, "0123456789", 10, 0), 10);
    char b[16];
    ssize_t r = tide_stream_read_into(s, b, 4);
    if (r > 0) {
        CHECK_EQ(r, 4);
        CHECK(tide_sleep(0.002) == 0 || true);
        r = tide_stream_read_into(s, b + 4, 12);
        if (r > 0) {
            CHECK_EQ(r, 6);
            CHECK(memcmp(b, "0123456789", 10) == 0);
        }
    }
    (void)tide_stream_abort(s);
    close(c);
    uint16_t port;
    int l = tcp_listener(16, &port);
    int k[3];
    for (int i = 0; i < 3; i++)
        k[i] = connect_to(port);
    for (int i = 0; i < 3; i++) {
        int fd = tide_sock_accept(l, NULL, NULL);
        if (fd >= 0)
            CHECK_EQ(tide_close(fd), 0);
    }
    for (int i = 0; i < 3; i++)
        close(k[i]);
    k[0] = connect_to(port);
    CHECK(tide_sleep(0.002) == 0 || true); /* one held at the close */
    (void)tide_close(l);
    close(k[0]);
    return NULL;
}

TEST(enomem_at_every_allocation_of_the_multishot_paths)
{
    want_uring();
    long fds = harness_fd_count();
    for (long n = 1; n < 400; n++) {
        long live = tide__alloc_live();
        tide_loop *loop = tide_loop_new();
        if (!loop)
            continue;
        tide_task_options o = {.stack_size = 256 * 1024};
        tide_future *t = tide_create_task_ex(loop, oom_body, NULL, &o);
        if (t) {
            tide__alloc_fail_after(n);
            (void)tide_run_until_complete(loop, t, NULL);
            tide_future_release(t);
        }
        bool fired = tide__alloc_fail_pending() == 0;
        tide__alloc_fail_after(0);
        CHECK_EQ(tide_loop_close(loop), 0);
        CHECK_EQ(tide__alloc_live(), live);
        CHECK_EQ(harness_fd_count(), fds);
        if (!fired)
            break;
    }
    LEAK_GATE();
}

/* Thousands of streams each holding a little (one 16 KiB buffer each:
 * far more than the ring has), a slow reader among fast ones: every
 * stream gets all its bytes, in order; every buffer comes back. */
#define MANYS 2000

static int ms_c[MANYS];
static tide_stream *ms_s[MANYS];

static void *many_body(void *arg)
{
    (void)arg;
    uint16_t port;
    int l = tcp_listener(16, &port);
    for (int i = 0; i < MANYS; i++) { /* (one listener: few ports) */
        int fd;
        ms_s[i] = armed_via(l, port, &fd, &ms_c[i]);
    }
    close(l);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < MANYS; i++)
            write_pattern_from(ms_c[i], (size_t)round * 300, 300, (unsigned)i);
        CHECK_EQ(tide_sleep(0.01), 0);
        for (int i = MANYS; i-- > 0;) {
            static unsigned char b[300];
            CHECK_EQ(tide_stream_readexactly(ms_s[i], b, 300, NULL), 0);
            check_pattern(b, 300, (size_t)round * 300, (unsigned)i);
        }
    }
    CHECK_EQ(free_buffers(), NBUF);
    for (int i = 0; i < MANYS; i++) { /* resets: no TIME_WAIT left */
        CHECK_EQ(tide_stream_abort(ms_s[i]), 0);
        close(ms_c[i]);
    }
    return NULL;
}

TEST(two_thousand_streams_each_holding_data)
{
    want_uring();
    harness_want_fds(2 * MANYS + 100);
    run_plain(many_body);
    LEAK_GATE();
}

/* 100 MiB through one stream in 1,000-byte reads. */
static int big_w;

static void *big_writer(void *arg)
{
    write_pattern_from(big_w, 0, (size_t)(intptr_t)arg, 5);
    CHECK_EQ(shutdown(big_w, SHUT_WR), 0);
    return NULL;
}

static void *big_body(void *arg)
{
    size_t n = (size_t)100 << 20;
    (void)arg;
    tide_stream *s = armed_stream(&big_w, 1000);
    tide_future *w = tide_create_task(NULL, big_writer, (void *)(intptr_t)n);
    CHECK_NOT_NULL(w);
    static unsigned char b[1000];
    size_t done = 0;
    ssize_t r;
    while ((r = tide_stream_read_into(s, b, sizeof b)) > 0) {
        check_pattern(b, (size_t)r, done, 5);
        done += (size_t)r;
    }
    CHECK_EQ(r, 0);
    CHECK_EQ(done, n);
    CHECK_EQ(tide_await(w, NULL), 0);
    tide_future_release(w);
    CHECK_EQ(free_buffers(), NBUF);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    close(big_w);
    return NULL;
}

TEST(one_hundred_mib_through_tiny_reads)
{
    want_uring();
    run_plain(big_body);
    LEAK_GATE();
}

/* tide_fd_detach hands the fd to other code: the bytes the multishot
 * took ahead of the reads are part of the stream, and epoll and poll
 * leave them in the socket for that code. Disabled: a difference not
 * fixed (they are in tide's buffers and cannot be put back into the
 * socket; uring_ms.c drops them), now documented in tide/io.h and
 * docs/backends.md. Run it with TIDE_TEST_KNOWN_BUGS=1. */
static void *detach_held_body(void *arg)
{
    int c;
    (void)arg;
    tide_stream *s = armed_stream(&c, 0);
    int fd = tide_stream_fd(s);

    CHECK_EQ(send(c, "kept", 4, 0), 4);
    settle(fd); /* taken ahead */
    CHECK_EQ(tide_fd_detach(fd), 0);
    char b[8];
    ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
    if (r != 4)
        harness_fail(__FILE__, __LINE__,
                     "recv after tide_fd_detach: %zd (%s): the 4 bytes the "
                     "kernel received ahead are lost",
                     r, r < 0 ? strerror(errno) : "");
    CHECK(memcmp(b, "kept", 4) == 0);
    CHECK_EQ(tide_stream_abort(s), 0);
    close(c);
    return NULL;
}

TEST(a_detached_fd_keeps_the_bytes_received_ahead)
{
    if (!getenv("TIDE_TEST_KNOWN_BUGS"))
        SKIP("known difference: tide_fd_detach drops bytes held ahead");
    want_uring();
    run_plain(detach_held_body);
    LEAK_GATE();
}

/* Several loops in one thread, run in turn, each with multishots armed
 * and data held: each ring's buffers and records are its own. */
#define NLOOPS 4

static int ml_c[NLOOPS];
static tide_stream *ml_s[NLOOPS];

static void *ml_arm(void *arg)
{
    int i = (int)(intptr_t)arg;
    ml_s[i] = armed_stream(&ml_c[i], 0);
    write_pattern_from(ml_c[i], 0, 40000, (unsigned)i);
    settle(tide_stream_fd(ml_s[i]));
    return NULL;
}

static void *ml_read(void *arg)
{
    int i = (int)(intptr_t)arg;
    static unsigned char b[40000];
    CHECK_EQ(tide_stream_readexactly(ml_s[i], b, sizeof b, NULL), 0);
    check_pattern(b, sizeof b, 0, (unsigned)i);
    CHECK_EQ(free_buffers(), NBUF);
    CHECK_EQ(tide_stream_close(ml_s[i], 1), 0);
    close(ml_c[i]);
    return NULL;
}

static void run_on(tide_loop *loop, tide_fn fn, int i)
{
    tide_task_options o = {.stack_size = 256 * 1024};
    tide_future *t = tide_create_task_ex(loop, fn, (void *)(intptr_t)i, &o);
    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
}

TEST(several_loops_in_one_thread_each_hold_their_own)
{
    want_uring();
    tide_loop *loops[NLOOPS];
    for (int i = 0; i < NLOOPS; i++) {
        CHECK_NOT_NULL(loops[i] = tide_loop_new());
        run_on(loops[i], ml_arm, i);
    }
    for (int i = NLOOPS; i-- > 0;) {
        run_on(loops[i], ml_read, i);
        CHECK_EQ(tide_loop_close(loops[i]), 0);
    }
    LEAK_GATE();
}

/* A stream's fd closed with close(2), behind tide's back, while its
 * multishot holds bytes; tide_sock_accept then returns that number
 * (tide/io.h: accepted numbers are renewed automatically). A stream on
 * the new connection must read the new peer's bytes only, never the old
 * connection's. */
static bool fresh_with_addr;

static void *fresh_body(void *arg)
{
    (void)arg;
    uint16_t port;
    int l = tcp_listener(16, &port);
    int fd, c;
    tide_stream *s = armed_via(l, port, &fd, &c);
    char b[64];
    CHECK_EQ(send(c, "OLD!", 4, 0), 4);
    settle(fd); /* held */
    int n = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(n >= 0);
    CHECK_EQ(close(fd), 0); /* behind tide's back */
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(connect(n, (struct sockaddr *)&a, sizeof a), 0);
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    /* with an address: a plain accept; without: the multishot's */
    int fd2 = fresh_with_addr
                  ? tide_sock_accept(l, (struct sockaddr *)&peer, &plen)
                  : tide_sock_accept(l, NULL, NULL);
    CHECK_EQ(fd2, fd); /* the number came back */
    tide_stream *s2 = tide_stream_new(fd2, 0);
    CHECK_NOT_NULL(s2);
    CHECK_EQ(send(n, "new!", 4, 0), 4);
    ssize_t r = tide_stream_read_into(s2, b, sizeof b);
    CHECK_EQ(r, 4);
    if (memcmp(b, "new!", 4) != 0)
        harness_fail(__FILE__, __LINE__,
                     "the new connection read \"%.4s\", the old one's bytes",
                     b);
    CHECK_EQ(tide_stream_close(s2, 1), 0);
    /* s's number was s2's, now closed: freeing s closes nothing */
    (void)tide_stream_abort(s);
    close(c);
    close(n);
    close(l);
    return NULL;
}

TEST(an_accepted_number_never_reads_an_old_streams_held_bytes)
{
    want_uring();
    for (int i = 0; i < 2; i++) {
        fresh_with_addr = i;
        run_plain(fresh_body);
    }
    LEAK_GATE();
}

/* An accept on a socket that is not listening (a caller's mistake) is
 * refused with EINVAL; the kernel's EINVAL for it must not be taken for
 * "no multishot accepts on this kernel", which would turn them off for
 * every listener of the loop. */
static void *notlistening_body(void *arg)
{
    (void)arg;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    CHECK_ERR(tide_sock_accept(s, NULL, NULL), -EINVAL);
    CHECK_ERR(tide_sock_accept(s, NULL, NULL), -EINVAL);
    CHECK_EQ(tide_close(s), 0);
    CHECK(!tide__ur(&tide__running->backend)->no_msa);
    return NULL;
}

TEST(an_accept_on_a_socket_not_listening_leaves_multishot_accepts_on)
{
    want_uring();
    run_plain(notlistening_body);
    LEAK_GATE();
}

#else

TEST(built_without_liburing)
{
    SKIP("built without liburing");
}

#endif
