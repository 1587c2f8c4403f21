/* Streams (include/tide/stream.h): the buffered reader, the writer and
 * its water marks, closing, and connecting.
 *
 * Every reader and writer call on good and bad input (unknown address
 * families too); a cancelled readline keeps its bytes; a peer sending
 * one byte at a time under a timeout scope; a line over the limit keeps
 * the buffered bytes; a readexactly cut short by end of stream; data
 * nobody reads left with the kernel; several tasks draining at once, and
 * a hundred (no write split, one error after a reset); a peer reset
 * mid-write (-ECONNRESET or -EPIPE, drain returns at once); every byte
 * written before close reaches a peer reading to EOF; close bounded by a
 * deadline; abort resets; close from another task while one reads; Happy
 * Eyeballs over numeric addresses (a refusing one, a silent one, then a
 * good one); the steady state allocates nothing and makes no epoll_ctl.
 * Loopback and socketpairs only.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"
#include "net.h"

#include "base/alloc.h"
#include "base/sys.h"

#include <tide/stream.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

/* A stream on one end of a socketpair; the other end in *peer. */
static tide_stream *stream_pair(int *peer, size_t limit)
{
    int sv[2];

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                        sv),
             0);
    tide_stream *s = tide_stream_new(sv[0], limit);
    CHECK_NOT_NULL(s);
    *peer = sv[1];
    return s;
}

static void send_str(int fd, const char *str)
{
    size_t n = strlen(str);
    CHECK_EQ(send(fd, str, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void check_bytes(const void *p, ssize_t n, const char *want)
{
    CHECK_EQ(n, (ssize_t)strlen(want));
    CHECK(memcmp(p, want, (size_t)n) == 0);
}

/* call (which sets p) returns the bytes of want at p; call runs first. */
#define CHECK_READ(call, p, want) \
    do {                          \
        ssize_t n_ = (call);      \
        check_bytes(p, n_, want); \
    } while (0)

/* ---- bad input ------------------------------------------------------- */

static void *bad_args_body(void *arg)
{
    const void *p;
    char buf[4];
    size_t got = 9;
    int peer;
    (void)arg;

    CHECK_NULL(tide_stream_new(-1, 0));
    CHECK_ERR(errno, EBADF);
    CHECK_NULL(tide_stream_new(1000, 0));
    CHECK_ERR(errno, EBADF);
    CHECK_ERR(tide_stream_read(NULL, 1, &p), -EINVAL);
    CHECK_ERR(tide_stream_read_into(NULL, buf, 1), -EINVAL);
    CHECK_ERR(tide_stream_readexactly(NULL, buf, 1, &got), -EINVAL);
    CHECK_EQ(got, 0);
    CHECK_ERR(tide_stream_readline(NULL, &p), -EINVAL);
    CHECK_ERR(tide_stream_readuntil(NULL, "x", 1, &p), -EINVAL);
    CHECK(!tide_stream_at_eof(NULL));
    CHECK_ERR(tide_stream_write(NULL, "x", 1), -EINVAL);
    CHECK_ERR(tide_stream_writev(NULL, NULL, 0), -EINVAL);
    CHECK_ERR(tide_stream_drain(NULL), -EINVAL);
    CHECK_ERR(tide_stream_write_eof(NULL), -EINVAL);
    CHECK_ERR(tide_stream_close(NULL, 1), -EINVAL);
    CHECK_ERR(tide_stream_abort(NULL), -EINVAL);
    CHECK_ERR(tide_stream_fd(NULL), -EINVAL);
    CHECK_EQ(tide_stream_queued(NULL), 0);

    tide_stream *s = stream_pair(&peer, 8);
    CHECK_ERR(tide_stream_read(s, 1, NULL), -EINVAL);
    CHECK_ERR(tide_stream_read_into(s, NULL, 1), -EINVAL);
    CHECK_ERR(tide_stream_readexactly(s, NULL, 1, NULL), -EINVAL);
    CHECK_ERR(tide_stream_readuntil(s, NULL, 1, &p), -EINVAL);
    CHECK_ERR(tide_stream_readuntil(s, "x", 0, &p), -EINVAL);
    CHECK_ERR(tide_stream_readuntil(s, "x", 1, NULL), -EINVAL);
    CHECK_ERR(tide_stream_readuntil(s, "123456789", 9, &p), -EINVAL);
    CHECK_ERR(tide_stream_readline(s, NULL), -EINVAL);
    CHECK_ERR(tide_stream_write(s, NULL, 1), -EINVAL);
    CHECK_ERR(tide_stream_writev(s, NULL, 1), -EINVAL);
    CHECK_ERR(tide_stream_writev(s, NULL, -1), -EINVAL);
    CHECK_ERR(tide_stream_set_write_limits(s, 1, 2), -EINVAL);
    CHECK_ERR(tide_stream_close(s, NAN), -EINVAL);
    CHECK_ERR(tide_stream_peername(s, NULL, NULL), -EINVAL);
    CHECK_EQ(tide_stream_read(s, 0, &p), 0); /* n == 0: no wait */
    CHECK_EQ(tide_stream_read_into(s, buf, 0), 0);
    CHECK_EQ(tide_stream_write(s, "", 0), 0);
    CHECK_EQ(tide_stream_queued(s), 0);
    CHECK(tide_stream_fd(s) >= 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    CHECK_EQ(tide_close(peer), 0);

    /* Unknown address families, and an address longer than any */
    struct sockaddr_in bogus = {.sin_family = 12345};
    struct addrinfo ai = {.ai_family = 12345,
                          .ai_socktype = SOCK_STREAM,
                          .ai_addr = (struct sockaddr *)&bogus,
                          .ai_addrlen = sizeof bogus};
    tide_stream *c = (void *)1;
    long fds = harness_fd_count();
    CHECK_ERR(tide_open_connection_addrinfo(&ai, 0, 0, &c), -EAFNOSUPPORT);
    CHECK_NULL(c);
    ai.ai_family = AF_INET;
    CHECK_ERR(tide_open_connection_addrinfo(&ai, 0, 0, &c), -EAFNOSUPPORT);
    ai.ai_addrlen = 1000;
    CHECK_ERR(tide_open_connection_addrinfo(&ai, 0, 0, &c), -EINVAL);
    CHECK_NULL(c);
    int u = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(u >= 0);
    CHECK_ERR(tide_sock_connect(u, (struct sockaddr *)&bogus, sizeof bogus),
              -EAFNOSUPPORT);
    CHECK_EQ(tide_close(u), 0);
    CHECK_EQ(harness_fd_count(), fds);
    return NULL;
}

TEST(bad_arguments_change_nothing)
{
    CHECK_EQ(harness_run_body(bad_args_body, NULL), 0);
    LEAK_GATE();
}

/* ---- reading --------------------------------------------------------- */

static void *lines_body(void *arg)
{
    const void *p;
    int peer;
    (void)arg;

    tide_stream *s = stream_pair(&peer, 0);
    send_str(peer, "hello\nwor");
    CHECK_EQ(shutdown(peer, SHUT_WR), 0);
    CHECK_READ(tide_stream_readline(s, &p), p, "hello\n");
    CHECK(!tide_stream_at_eof(s));
    CHECK_READ(tide_stream_readline(s, &p), p, "wor"); /* last, no "\n" */
    CHECK(tide_stream_at_eof(s));
    CHECK_EQ(tide_stream_readline(s, &p), 0);
    CHECK_EQ(tide_stream_read(s, 10, &p), 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    tide_close(peer);
    return NULL;
}

TEST(readline_returns_lines_and_the_last_partial_one)
{
    CHECK_EQ(harness_run_body(lines_body, NULL), 0);
    LEAK_GATE();
}

static void *until_body(void *arg)
{
    const void *p;
    char buf[32];
    int peer;
    (void)arg;

    tide_stream *s = stream_pair(&peer, 16);
    send_str(peer, "ab--cd--0123456789abcdefXYZ");
    CHECK_READ(tide_stream_readuntil(s, "--", 2, &p), p, "ab--");
    CHECK_READ(tide_stream_readuntil(s, "--", 2, &p), p, "cd--");
    /* 19 bytes, no separator, a 16-byte limit: overflow, nothing lost */
    CHECK_ERR(tide_stream_readuntil(s, "--", 2, &p), -EMSGSIZE);
    CHECK_ERR(tide_stream_readline(s, &p), -EMSGSIZE);
    CHECK_READ(tide_stream_read(s, 10, &p), p, "0123456789");
    CHECK_READ(tide_stream_read(s, 100, &p), p, "abcdef");
    /* end of stream before the separator: -ENODATA, bytes kept */
    CHECK_EQ(shutdown(peer, SHUT_WR), 0);
    CHECK_ERR(tide_stream_readuntil(s, "--", 2, &p), -ENODATA);
    CHECK_EQ(tide_stream_read_into(s, buf, sizeof buf), 3);
    CHECK(memcmp(buf, "XYZ", 3) == 0);
    CHECK_EQ(tide_stream_readuntil(s, "--", 2, &p), 0);
    CHECK(tide_stream_at_eof(s));
    CHECK_EQ(tide_stream_close(s, 1), 0);
    tide_close(peer);
    return NULL;
}

TEST(readuntil_overflow_and_eof_keep_the_buffered_bytes)
{
    CHECK_EQ(harness_run_body(until_body, NULL), 0);
    LEAK_GATE();
}

static void *exactly_body(void *arg)
{
    char buf[64];
    size_t got = 0;
    int peer;
    (void)arg;

    tide_stream *s = stream_pair(&peer, 4);
    send_str(peer, "0123456789");
    CHECK_EQ(tide_stream_readexactly(s, buf, 6, &got), 0);
    CHECK_EQ(got, 6);
    CHECK(memcmp(buf, "012345", 6) == 0);
    CHECK_EQ(shutdown(peer, SHUT_WR), 0);
    CHECK_ERR(tide_stream_readexactly(s, buf, 10, &got), -ENODATA);
    CHECK_EQ(got, 4);
    CHECK(memcmp(buf, "6789", 4) == 0);
    CHECK(tide_stream_at_eof(s));
    CHECK_EQ(tide_stream_close(s, 1), 0);
    tide_close(peer);
    return NULL;
}

TEST(readexactly_reports_early_eof_with_the_partial_bytes)
{
    CHECK_EQ(harness_run_body(exactly_body, NULL), 0);
    LEAK_GATE();
}

static void *direct_body(void *arg)
{
    char big[1000], out[1000];
    int peer;
    (void)arg;

    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    tide_stream *s = stream_pair(&peer, 16);
    CHECK_EQ(send(peer, big, sizeof big, 0), (ssize_t)sizeof big);
    /* the stream's buffer is empty: one recv straight into out */
    uint64_t before = tide__sys_count(TIDE__SYS_RECV);
    CHECK_EQ(tide_stream_read_into(s, out, sizeof out), (ssize_t)sizeof out);
    /* (io_uring: the kernel makes that recv, past the seam's count;
     * a compact task makes its own) */
    CHECK_EQ(tide__sys_count(TIDE__SYS_RECV) - before,
             strcmp(tide_loop_backend(NULL), "io_uring") || harness_compact()
                 ? 1u
                 : 0u);
    CHECK(memcmp(big, out, sizeof big) == 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    tide_close(peer);
    return NULL;
}

TEST(read_into_receives_straight_into_the_callers_buffer)
{
    CHECK_EQ(harness_run_body(direct_body, NULL), 0);
    LEAK_GATE();
}

static void *unread_body(void *arg)
{
    static char chunk[65536];
    const void *p;
    int peer;
    (void)arg;

    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)(i % 251);
    tide_stream *s = stream_pair(&peer, 4096);
    size_t sent = 0; /* the peer sends until the kernel stops it */
    ssize_t n;
    while ((n = send(peer, chunk + sent % 251, sizeof chunk - 251, 0)) > 0)
        sent += (size_t)n; /* byte k of the stream is k % 251 */
    CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
    CHECK(sent >= 64 * 1024);
    uint64_t recvs = tide__sys_count(TIDE__SYS_RECV);
    CHECK_EQ(tide_sleep(0.02), 0); /* nobody reads: nothing is taken */
    CHECK_EQ(tide__sys_count(TIDE__SYS_RECV), recvs);
    size_t got = 0;
    long live = 0;
    while (got < sent) { /* then all of it, never more than the limit */
        n = tide_stream_read(s, 1 << 20, &p);
        CHECK(n > 0 && n <= 4096);
        for (ssize_t i = 0; i < n; i++)
            CHECK(((const char *)p)[i] == (char)((got + (size_t)i) % 251));
        got += (size_t)n;
        if (!live)
            live = tide__alloc_live();
        CHECK_EQ(tide__alloc_live(), live); /* the buffer never grows */
    }
    CHECK_EQ(got, sent);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    CHECK_EQ(tide_close(peer), 0);
    return NULL;
}

/* HAZARDS B13 (b): a peer sends until the kernel stops it and the
 * program does not read: the stream takes nothing on its own (the
 * kernel holds the peer back); read later, every byte comes, at most
 * the stream's limit at a time, from a buffer that never grows. */
TEST(unread_data_stays_with_the_kernel)
{
    CHECK_EQ(harness_run_body(unread_body, NULL), 0);
    LEAK_GATE();
}

/* ---- cancellation and time limits ----------------------------------- */

struct reader {
    tide_stream *s;
    ssize_t r;
    char line[64];
};

static void *readline_task(void *arg)
{
    struct reader *rd = arg;
    const void *p;

    rd->r = tide_stream_readline(rd->s, &p);
    if (rd->r > 0)
        memcpy(rd->line, p, (size_t)rd->r);
    return NULL;
}

static void *cancel_body(void *arg)
{
    static struct reader rd; /* written by the task while this body waits */
    const void *p;
    int peer;
    (void)arg;

    rd.s = stream_pair(&peer, 0);
    tide_future *t = tide_create_task(NULL, readline_task, &rd);
    CHECK_EQ(tide_sleep(0.01), 0);
    send_str(peer, "abc");
    CHECK_EQ(tide_sleep(0.01), 0); /* the task buffered "abc", waits on */
    CHECK(!tide_future_done(t));
    const void *q;
    CHECK_ERR(tide_stream_read(rd.s, 1, &q), -EBUSY); /* one reader */
    CHECK(tide_future_cancel(t));
    CHECK_EQ(tide_await(t, NULL), 0);
    CHECK_ERR(rd.r, -ECANCELED);
    tide_future_release(t);
    send_str(peer, "def\n");
    CHECK_READ(tide_stream_readline(rd.s, &p), p, "abcdef\n");
    CHECK_EQ(tide_stream_close(rd.s, 1), 0);
    tide_close(peer);
    return NULL;
}

TEST(cancelled_readline_keeps_its_bytes_for_the_next_read)
{
    CHECK_EQ(harness_run_body(cancel_body, NULL), 0);
    LEAK_GATE();
}

static void *trickle_task(void *arg)
{
    int fd = (int)PINT(arg);

    for (int i = 0; i < 100; i++) {
        if (tide_sock_send(fd, "x", 1, 0) != 1 || tide_sleep(0.01) < 0)
            break;
    }
    return NULL;
}

static void *trickle_body(void *arg)
{
    char buf[64];
    size_t got = 0;
    const void *p;
    int peer;
    (void)arg;

    tide_stream *s = stream_pair(&peer, 0);
    tide_future *t = tide_create_task(NULL, trickle_task, IPTR(peer));
    double t0 = harness_now();
    tide_timeout *scope = tide_timeout_begin(0.1);
    CHECK_NOT_NULL(scope);
    int err = tide_timeout_end(scope, (int)tide_stream_readline(s, &p));
    CHECK_ERR(err, -ETIMEDOUT);
    CHECK(harness_now() - t0 < 1.0);
    /* readexactly under a limit: the bytes go back to the stream */
    scope = tide_timeout_begin(0.05);
    err = tide_timeout_end(scope, tide_stream_readexactly(s, buf, 60, &got));
    CHECK_ERR(err, -ETIMEDOUT);
    CHECK_EQ(got, 0);
    ssize_t n = tide_stream_read(s, 64, &p);
    CHECK(n >= 5 && n < 64); /* ~15 bytes, every one kept */
    for (ssize_t i = 0; i < n; i++)
        CHECK(((const char *)p)[i] == 'x');
    tide_future_cancel(t);
    tide_await(t, NULL);
    tide_future_release(t);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    tide_close(peer);
    return NULL;
}

TEST(one_byte_at_a_time_peer_under_a_timeout_scope)
{
    CHECK_EQ(harness_run_body(trickle_body, NULL), 0);
    LEAK_GATE();
}

static void *closer_task(void *arg)
{
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(tide_stream_close(arg, 1), 0);
    return NULL;
}

static void *close_other_body(void *arg)
{
    const void *p;
    int peer;
    (void)arg;

    tide_stream *s = stream_pair(&peer, 0);
    tide_future *t = tide_create_task(NULL, closer_task, s);
    CHECK_ERR(tide_stream_readline(s, &p), -EBADF); /* s lives on */
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    tide_close(peer);
    return NULL; /* s was freed when readline let go of it */
}

TEST(close_from_another_task_wakes_a_reader_with_ebadf)
{
    CHECK_EQ(harness_run_body(close_other_body, NULL), 0);
    LEAK_GATE();
}

/* ---- writing --------------------------------------------------------- */

static void *drain_task(void *arg)
{
    int err = tide_stream_drain(arg);
    return err < 0 ? tide_fail(err) : NULL;
}

/* Read everything from fd until EOF; the count. */
static size_t read_all(int fd, char *check)
{
    static char buf[65536];
    size_t total = 0;
    ssize_t n;

    while ((n = tide_sock_recv(fd, buf, sizeof buf, 0)) > 0) {
        for (ssize_t i = 0; check && i < n; i++)
            CHECK(buf[i] == check[(total + (size_t)i) % 251]);
        total += (size_t)n;
    }
    CHECK_EQ(n, 0);
    return total;
}

static void *water_body(void *arg)
{
    static char chunk[251 * 261]; /* whole patterns: offsets line up */
    char pattern[251];
    int peer;
    (void)arg;

    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)(i % 251);
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (char)i;
    tide_stream *s = stream_pair(&peer, 0);
    /* the peer does not read: the queue grows past the high-water mark */
    size_t written = 0;
    while (tide_stream_queued(s) <= 64 * 1024) {
        CHECK_EQ(tide_stream_write(s, chunk, sizeof chunk), 0);
        written += sizeof chunk;
        CHECK(written < ((size_t)64 << 20));
    }
    CHECK(tide_stream_queued(s) <= 64 * 1024 + sizeof chunk);
    tide_future *d[3];
    for (int i = 0; i < 3; i++)
        d[i] = tide_create_task(NULL, drain_task, s);
    CHECK_EQ(tide_sleep(0.02), 0);
    for (int i = 0; i < 3; i++)
        CHECK(!tide_future_done(d[i])); /* all three wait */
    /* the peer reads: every drainer returns, every byte arrives */
    CHECK_EQ(tide_stream_write_eof(s), 0);
    CHECK_ERR(tide_stream_write(s, "x", 1), -EPIPE);
    CHECK_EQ(read_all(peer, pattern), written);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(tide_await(d[i], NULL), 0);
        tide_future_release(d[i]);
    }
    CHECK_EQ(tide_stream_queued(s), 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    tide_close(peer);
    return NULL;
}

TEST(drain_waits_above_high_water_and_several_drainers_wake)
{
    CHECK_EQ(harness_run_body(water_body, NULL), 0);
    LEAK_GATE();
}

static void *reset_body(void *arg)
{
    static char chunk[65536];
    int peer;
    (void)arg;

    tide_stream *s = stream_pair(&peer, 0);
    while (tide_stream_queued(s) <= 64 * 1024)
        CHECK_EQ(tide_stream_write(s, chunk, sizeof chunk), 0);
    tide_future *d = tide_create_task(NULL, drain_task, s);
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK(!tide_future_done(d));
    tide_close(peer); /* the peer goes away mid-write */
    int err = tide_await(d, NULL);
    tide_future_release(d);
    CHECK(err == -EPIPE || err == -ECONNRESET);
    CHECK_ERR(tide_stream_drain(s), err); /* at once, sticky */
    CHECK_ERR(tide_stream_write(s, "x", 1), err);
    CHECK_EQ(tide_stream_queued(s), 0);
    CHECK_ERR(tide_stream_close(s, 1), err);
    return NULL;
}

TEST(peer_reset_mid_write_ends_drain_with_the_error)
{
    CHECK_EQ(harness_run_body(reset_body, NULL), 0);
    LEAK_GATE();
}

enum { WRITERS = 100, BLOCK = 1024 };

static tide_stream *shared; /* the drainers' stream */

/* Write one 1 KiB block of byte `i`, then drain. */
static void *block_writer(void *arg)
{
    char block[BLOCK];

    memset(block, (int)PINT(arg), sizeof block);
    int err = tide_stream_write(shared, block, sizeof block);
    if (!err)
        err = tide_stream_drain(shared);
    return err < 0 ? tide_fail(err) : NULL;
}

/* Start the writers; their futures in t. */
static void start_writers(tide_future **t)
{
    for (int i = 0; i < WRITERS; i++)
        CHECK_NOT_NULL(t[i] = tide_create_task(NULL, block_writer, IPTR(i)));
}

static void *many_drainers_body(void *arg)
{
    static char got[WRITERS * BLOCK];
    tide_future *t[WRITERS];
    bool seen[WRITERS] = {false};
    int peer, small = 4096;
    (void)arg;

    shared = stream_pair(&peer, 0);
    CHECK_EQ(tide_stream_set_write_limits(shared, 4096, 1024), 0);
    CHECK_EQ(setsockopt(tide_stream_fd(shared), SOL_SOCKET, SO_SNDBUF, &small,
                        sizeof small),
             0);
    start_writers(t);
    /* a slow reader: 512 bytes a millisecond */
    size_t n = 0;
    while (n < sizeof got) {
        ssize_t r = tide_sock_recv(peer, got + n, 512, 0);
        CHECK(r > 0);
        n += (size_t)r;
        CHECK_EQ(tide_sleep(0.001), 0);
    }
    for (int i = 0; i < WRITERS; i++) { /* every drain returns */
        CHECK_ERR(tide_wait_for(t[i], 1, NULL), 0);
        tide_future_release(t[i]);
    }
    for (size_t b = 0; b < WRITERS; b++) { /* no write interleaved */
        unsigned char v = (unsigned char)got[b * BLOCK];
        CHECK(v < WRITERS && !seen[v]);
        seen[v] = true;
        for (size_t i = 1; i < BLOCK; i++)
            CHECK_EQ((unsigned char)got[b * BLOCK + i], v);
    }
    /* again, and the peer goes away: every drain has the same error */
    start_writers(t);
    CHECK_EQ(tide_sleep(0.01), 0);
    bool done[WRITERS];
    int waiting = 0;
    for (int i = 0; i < WRITERS; i++)
        waiting += !(done[i] = tide_future_done(t[i]));
    CHECK(waiting >= WRITERS / 2); /* the socket took only a few */
    CHECK_EQ(tide_close(peer), 0);
    int first = 0;
    for (int i = 0; i < WRITERS; i++) {
        int err = tide_wait_for(t[i], 1, NULL);
        tide_future_release(t[i]);
        if (done[i]) { /* drained before the reset */
            CHECK_ERR(err, 0);
            continue;
        }
        CHECK(err == -EPIPE || err == -ECONNRESET);
        if (!first)
            first = err;
        CHECK_ERR(err, first);
    }
    CHECK_ERR(tide_stream_close(shared, 1), first);
    return NULL;
}

/* HAZARDS B29: 100 tasks each write 1 KiB and drain one stream that a
 * slow peer reads: every drain returns, no write's bytes are split by
 * another's; after a reset, every drain still waiting returns the same
 * error. */
TEST(a_hundred_drainers_of_one_stream)
{
    CHECK_EQ(harness_run_body(many_drainers_body, NULL), 0);
    LEAK_GATE();
}

struct sink {
    int fd;
    size_t got;
};

static void *sink_task(void *arg)
{
    struct sink *k = arg;
    char pattern[251];

    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (char)i;
    k->got = read_all(k->fd, pattern);
    return NULL;
}

static void *close_flush_body(void *arg)
{
    static char chunk[251 * 1195];
    static struct sink k; /* written by sink_task while this body waits */
    (void)arg;

    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)(i % 251);
    tide_stream *s = stream_pair(&k.fd, 0);
    struct iovec iov[2] = {{chunk, 1000}, {chunk + 1000, sizeof chunk - 1000}};
    CHECK_EQ(tide_stream_writev(s, iov, 2), 0);
    CHECK_EQ(tide_stream_write(s, chunk, sizeof chunk), 0);
    CHECK(tide_stream_queued(s) > 0);
    tide_future *t = tide_create_task(NULL, sink_task, &k);
    CHECK_EQ(tide_stream_close(s, 5), 0); /* waits until all is sent */
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(k.got, 2 * sizeof chunk);
    tide_close(k.fd);

    /* a peer that never reads: the deadline drops the rest */
    int peer;
    s = stream_pair(&peer, 0);
    CHECK_EQ(tide_stream_write(s, chunk, sizeof chunk), 0);
    double t0 = harness_now();
    CHECK_ERR(tide_stream_close(s, 0.05), -ETIMEDOUT);
    CHECK(harness_now() - t0 < 1.0);
    tide_close(peer);
    return NULL;
}

TEST(close_sends_everything_queued_within_its_deadline)
{
    CHECK_EQ(harness_run_body(close_flush_body, NULL), 0);
    LEAK_GATE();
}

/* ---- TCP: connecting, abort, names, steady state --------------------- */

static void *connect_body(void *arg)
{
    uint16_t port, silent_port, closed_port;
    tide_stream *s = (void *)1;
    int l = tcp_listener(16, &port);
    (void)arg;

    CHECK_ERR(tide_open_connection(NULL, port, 0, &s), -EINVAL);
    CHECK_ERR(tide_open_connection("127.0.0.1", port, 0, NULL), -EINVAL);
    CHECK_ERR(tide_open_connection_addrinfo(NULL, 0, 0, &s), -EINVAL);
    /* a port nobody listens on */
    int c = tcp_listener(1, &closed_port);
    tide_close(c);
    CHECK_ERR(tide_open_connection("127.0.0.1", closed_port, 0, &s),
              -ECONNREFUSED);
    CHECK_EQ(tide_open_connection("127.0.0.1", port, 0, &s), 0);
    int a = tide_sock_accept(l, NULL, NULL);
    CHECK(a >= 0);
    struct sockaddr_in peer, me;
    socklen_t len = sizeof peer;
    CHECK_EQ(tide_stream_peername(s, (struct sockaddr *)&peer, &len), 0);
    CHECK_EQ(ntohs(peer.sin_port), port);
    len = sizeof me;
    CHECK_EQ(tide_stream_sockname(s, (struct sockaddr *)&me, &len), 0);
    int one = 0;
    len = sizeof one;
    CHECK_EQ(tide_stream_getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, &len),
             0);
    CHECK_EQ(one, 1);
    CHECK_EQ(tide_stream_setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one,
                                    sizeof one),
             0);
    /* abort: the peer sees a reset, not an orderly end */
    CHECK_EQ(tide_stream_write(s, "queued?", 7), 0);
    CHECK_EQ(tide_stream_abort(s), 0);
    char buf[16];
    ssize_t n = tide_sock_recv(a, buf, sizeof buf, 0);
    if (n == 7) /* the bytes had gone before the reset */
        n = tide_sock_recv(a, buf, sizeof buf, 0);
    CHECK_ERR(n, -ECONNRESET);
    tide_close(a);

    /* Happy Eyeballs: a refusing address, a silent one (a listener
     * whose backlog is full drops the SYN), then the good one */
    int silent = tcp_listener(0, &silent_port);
    int fill[4];
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons(silent_port)};
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
    }
    struct sockaddr_in addrs[3] = {sa, sa, sa};
    addrs[0].sin_port = htons(closed_port);
    addrs[2].sin_port = htons(port);
    struct addrinfo ai[3];
    memset(ai, 0, sizeof ai);
    for (int i = 0; i < 3; i++) {
        ai[i].ai_family = AF_INET;
        ai[i].ai_socktype = SOCK_STREAM;
        ai[i].ai_addr = (struct sockaddr *)&addrs[i];
        ai[i].ai_addrlen = sizeof addrs[i];
        ai[i].ai_next = i < 2 ? &ai[i + 1] : NULL;
    }
    double t0 = harness_now();
    CHECK_EQ(tide_open_connection_addrinfo(ai, 0.1, 0, &s), 0);
    double took = harness_now() - t0;
    CHECK(took >= 0.09 && took < 0.9); /* waited one delay on the silent */
    len = sizeof peer;
    CHECK_EQ(tide_stream_peername(s, (struct sockaddr *)&peer, &len), 0);
    CHECK_EQ(ntohs(peer.sin_port), port);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    a = tide_sock_accept(l, NULL, NULL);
    CHECK(a >= 0);
    tide_close(a);
    /* every address fails: the last error */
    ai[1].ai_next = NULL;
    ai[1].ai_addr = (struct sockaddr *)&addrs[0];
    CHECK_ERR(tide_open_connection_addrinfo(ai, 0.1, 0, &s), -ECONNREFUSED);
    CHECK_NULL(s);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    tide_close(silent);
    tide_close(l);
    return NULL;
}

TEST(open_connection_happy_eyeballs_abort_and_names)
{
    CHECK_EQ(harness_run_body(connect_body, NULL), 0);
    LEAK_GATE();
}

static void *ipv6_body(void *arg)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t len = sizeof a;
    tide_stream *s;
    (void)arg;

    int l = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0) {
        if (l >= 0)
            close(l);
        return IPTR(1);
    }
    CHECK_EQ(listen(l, 4), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
    CHECK_EQ(tide_open_connection("::1", ntohs(a.sin6_port), 0, &s), 0);
    int c = tide_sock_accept(l, NULL, NULL);
    CHECK(c >= 0);
    CHECK_EQ(tide_stream_write(s, "six\n", 4), 0);
    tide_stream *t = tide_stream_new(c, 0);
    const void *p;
    CHECK_READ(tide_stream_readline(t, &p), p, "six\n");
    CHECK_EQ(tide_stream_close(t, 1), 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    tide_close(l);
    return NULL;
}

TEST(ipv6_loopback)
{
    void *skipped = NULL;
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, ipv6_body, NULL);
    CHECK_EQ(tide_run_until_complete(loop, t, &skipped), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
    if (skipped)
        SKIP("no IPv6 loopback here");
}

static void *echo_peer(void *arg)
{
    tide_stream *s = arg;
    const void *p;
    ssize_t n;

    while ((n = tide_stream_read(s, 65536, &p)) > 0)
        if (tide_stream_write(s, p, (size_t)n) < 0 || tide_stream_drain(s) < 0)
            break;
    return NULL;
}

static void *steady_body(void *arg)
{
    char msg[64], back[64];
    int peer;
    (void)arg;

    memset(msg, 'm', sizeof msg);
    tide_stream *srv = stream_pair(&peer, 0);
    tide_stream *cli = tide_stream_new(peer, 0);
    CHECK_NOT_NULL(cli);
    tide_future *t = tide_create_task(NULL, echo_peer, srv);
    for (int i = 0; i < 100; i++) { /* warm up: slots, records, pools */
        CHECK_EQ(tide_stream_write(cli, msg, sizeof msg), 0);
        CHECK_EQ(tide_stream_readexactly(cli, back, sizeof back, NULL), 0);
    }
    uint64_t ctl = tide__sys_count(TIDE__SYS_EPOLL_CTL);
    long live = tide__alloc_live();
    tide__alloc_fail_after(1); /* any allocation now fails the round */
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(tide_stream_write(cli, msg, sizeof msg), 0);
        CHECK_EQ(tide_stream_drain(cli), 0);
        CHECK_EQ(tide_stream_readexactly(cli, back, sizeof back, NULL), 0);
        CHECK(memcmp(msg, back, sizeof msg) == 0);
    }
    tide__alloc_fail_after(0);
    CHECK_EQ(tide__alloc_live(), live);
    CHECK_EQ(tide__sys_count(TIDE__SYS_EPOLL_CTL), ctl);
    CHECK_EQ(tide_stream_close(cli, 1), 0);
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_stream_close(srv, 1), 0);
    return NULL;
}

TEST(steady_state_allocates_nothing_and_makes_no_epoll_ctl)
{
    CHECK_EQ(harness_run_body(steady_body, NULL), 0);
    LEAK_GATE();
}
