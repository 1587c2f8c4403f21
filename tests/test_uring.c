/* The io_uring backend beyond the shared contract (test_backend.c; the
 * choice of backend and the fallback are test_choose.c's):
 * 10,000 in-flight receives cancelled at once, and 10,000 ops on a
 * 64-entry ring (HAZARDS B41, B42), each completing exactly once, with
 * fds and memory as they were after (LEAK_GATE). Skipped in a build
 * without liburing.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/sys.h"
#include "core/loop.h"
#include "poll/backend.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef TIDE_HAVE_URING

#define N 10000
#define PAIRS 100

static int sv[PAIRS][2];
static struct tide__op op[N];
static char buf[N];
static struct tide__completion c[N];
static unsigned char seen[N];

static void pairs_open(void)
{
    for (int i = 0; i < PAIRS; i++)
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]),
                 0);
}

static void pairs_close(void)
{
    for (int i = 0; i < PAIRS; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

/* Submit N one-byte recvs (or POLLIN polls) spread over the pairs. The
 * recvs of one fd go to the kernel one at a time, the rest wait in the
 * backend; every poll goes to the kernel. */
static void submit_ops(struct tide__backend *b, char *into, uint8_t kind)
{
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        memset(&op[i], 0, sizeof op[i]);
        op[i].kind = kind;
        op[i].flags = kind == TIDE__OP_POLL ? POLLIN : 0;
        op[i].fd = sv[i % PAIRS][0];
        op[i].buf = into + i;
        op[i].len = 1;
        op[i].offset = -1;
        op[i].token = (uint64_t)i + 1;
        CHECK_EQ(b->ops->submit(b, &op[i]), 0);
    }
    CHECK_EQ(b->inflight, N);
}

static void submit_recvs(struct tide__backend *b, char *into)
{
    submit_ops(b, into, TIDE__OP_RECV);
}

/* Collect n completions (2 s at most), each token seen once. */
static int collect(struct tide__backend *b, int n)
{
    int got = 0;
    double end = harness_now() + 2 * harness_timeout_mult();

    while (got < n && harness_now() < end) {
        int r =
            b->ops->wait(b, 10000000, c + got, n - got < 64 ? n - got : 64);
        CHECK(r >= 0);
        for (int i = got; i < got + r; i++) {
            CHECK(c[i].token >= 1 && c[i].token <= N);
            CHECK_EQ(seen[c[i].token - 1]++, 0);
        }
        got += r;
    }
    return got;
}

/* B41 (a): a recv cancelled in the tick its byte comes, 1,000 times: it
 * ends with the byte, or cancelled with the byte still in the socket. */
TEST(cancel_racing_data_loses_nothing)
{
    struct tide__backend b;
    struct tide__completion one[1];
    int s[2];
    char got;

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
    CHECK_EQ(tide__backend_open_with(&b, &tide__backend_uring), 0);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 1000; i++) {
        char want = (char)('a' + i % 26);
        memset(&op[0], 0, sizeof op[0]);
        op[0].kind = TIDE__OP_RECV;
        op[0].fd = s[0];
        op[0].buf = &got;
        op[0].len = 1;
        op[0].offset = -1;
        op[0].token = (uint64_t)i + 1;
        got = 0;
        CHECK_EQ(b.ops->submit(&b, &op[0]), 0);
        if (i % 2)
            CHECK_EQ(b.ops->wait(&b, 0, one, 1), 0); /* in the kernel */
        CHECK_EQ(write(s[1], &want, 1), 1);
        if (b.ops->cancel(&b, &op[0]) == 0) {
            int n = 0;
            for (int k = 0; k < 200 && n == 0; k++)
                n = b.ops->wait(&b, 10000000, one, 1);
            CHECK_EQ(n, 1);
            CHECK_EQ(one[0].token, op[0].token);
            op[0].result = one[0].result;
        }
        if (op[0].result == -ECANCELED) {
            CHECK_EQ(recv(s[0], &got, 1, 0), 1);
        } else {
            CHECK_EQ(op[0].result, 1);
        }
        CHECK_EQ(got, want);
    }
    CHECK_EQ(b.inflight, 0);
    b.ops->close(&b);
    close(s[0]);
    close(s[1]);
    LEAK_GATE();
}

/* One op on b: submitted (an accept may complete at once with a
 * connection an earlier accept's multishot took), into the kernel, then (peer
 * >= 0) peer connects and the op is cancelled in the same tick; its one
 * completion's result. A loopback connect may be done by the first
 * enter already. */
static ssize_t cancel_at_once(struct tide__backend *b, struct tide__op *o,
                              int peer, const struct sockaddr_in *to)
{
    struct tide__completion one[1];
    int n;

    int r = b->ops->submit(b, o);
    CHECK(r == 0 || r == 1);
    if (r == 1) /* an accept of a connection the multishot holds */
        return o->result;
    n = b->ops->wait(b, 0, one, 1);
    CHECK(n == 0 || (n == 1 && o->kind == TIDE__OP_CONNECT));
    if (n == 1)
        return one[0].result;
    if (peer >= 0)
        (void)connect(peer, (const struct sockaddr *)to, sizeof *to);
    if (b->ops->cancel(b, o) == 1)
        return o->result;
    for (int k = 0; k < 200 && n == 0; k++)
        n = b->ops->wait(b, 10000000, one, 1);
    CHECK_EQ(n, 1);
    CHECK_EQ(one[0].token, o->token);
    return one[0].result;
}

/* B41 (b): accepts and connects cancelled in the tick their peer comes:
 * each ends with its fd or connection (then closed here) or cancelled,
 * and the fd count is what it was (LEAK_GATE). */
TEST(cancelled_accepts_and_connects_leak_no_fd)
{
    struct tide__backend b;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int won = 0;

    CHECK(l >= 0);
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 512), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
    CHECK_EQ(tide__backend_open_with(&b, &tide__backend_uring), 0);
    for (int i = 0; i < 200; i++) {
        int cl = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        CHECK(cl >= 0);
        memset(&op[0], 0, sizeof op[0]);
        op[0].kind = i % 2 ? TIDE__OP_CONNECT : TIDE__OP_ACCEPT;
        op[0].fd = i % 2 ? cl : l;
        op[0].flags = i % 2 ? 0 : SOCK_NONBLOCK | SOCK_CLOEXEC;
        op[0].addr = i % 2 ? (struct sockaddr *)&a : NULL;
        op[0].addr_len = i % 2 ? len : 0;
        op[0].token = (uint64_t)i + 1;
        /* Accepts: every other one cancelled with no peer yet. */
        ssize_t r = cancel_at_once(&b, &op[0], i % 4 == 0 ? cl : -1, &a);
        if (i % 4 == 2)
            (void)connect(cl, (struct sockaddr *)&a, len);
        CHECK(r >= 0 || r == -ECANCELED);
        if (r >= 0) {
            won++;
            if (i % 2 == 0)
                close((int)r); /* an accepted fd: ours to close */
        }
        close(cl);
        int s; /* what the listener still holds */
        while ((s = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0)
            close(s);
    }
    CHECK(won >= 100 && won < 200); /* connects and raced accepts win */
    CHECK_EQ(b.inflight, 0);
    b.ops->close(&b);
    close(l);
    LEAK_GATE();
}

/* A socket closed through the backend while a send waits in the kernel
 * (the peer reads nothing, the buffer is full): the send ends once, with
 * -EBADF or what it sent, then the close completes. */
TEST(close_with_a_send_in_flight)
{
    struct tide__backend b;
    struct tide__completion got[2];
    static char big[1 << 16];
    int s[2];

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
    while (send(s[0], big, sizeof big, MSG_DONTWAIT) > 0)
        ; /* full */
    CHECK_EQ(tide__backend_open_with(&b, &tide__backend_uring), 0);
    memset(&op[0], 0, sizeof op[0]);
    op[0].kind = TIDE__OP_SEND;
    op[0].fd = s[0];
    op[0].buf = big;
    op[0].len = sizeof big;
    op[0].token = 1;
    CHECK_EQ(b.ops->submit(&b, &op[0]), 0);
    CHECK_EQ(b.ops->wait(&b, 0, got, 2), 0); /* waiting for room */
    memset(&op[1], 0, sizeof op[1]);
    op[1].kind = TIDE__OP_CLOSE;
    op[1].fd = s[0];
    op[1].token = 2;
    CHECK_EQ(b.ops->submit(&b, &op[1]), 0);
    int n = 0;
    for (int k = 0; k < 200 && n < 2; k++)
        n += b.ops->wait(&b, 10000000, got + n, 2 - n);
    CHECK_EQ(n, 2);
    CHECK_EQ(got[0].token, 1);
    CHECK_EQ(got[0].result, -EBADF);
    CHECK_EQ(got[1].token, 2);
    CHECK_EQ(got[1].result, 0);
    CHECK_EQ(fcntl(s[0], F_GETFD), -1); /* closed */
    CHECK_EQ(b.inflight, 0);
    b.ops->close(&b);
    close(s[1]);
    LEAK_GATE();
}

TEST(ten_thousand_recvs_cancelled_at_once)
{
    struct tide__backend b;

    pairs_open();
    CHECK_EQ(tide__backend_open_with(&b, &tide__backend_uring), 0);
    submit_recvs(&b, buf);
    CHECK_EQ(b.ops->wait(&b, 0, c, 64), 0); /* one per fd in the kernel */
    int later = 0;
    for (int i = 0; i < N; i++) {
        int r = b.ops->cancel(&b, &op[i]);
        CHECK(r == 0 || r == 1);
        if (r == 1) { /* one that waited behind: it ends at once */
            CHECK_EQ(op[i].result, -ECANCELED);
            CHECK_EQ(seen[i]++, 0);
        }
        later += r == 0;
    }
    CHECK(later >= PAIRS); /* at least the ones in the kernel */
    CHECK_EQ(collect(&b, later), later);
    for (int i = 0; i < later; i++)
        CHECK_EQ(c[i].result, -ECANCELED);
    for (int i = 0; i < N; i++)
        CHECK_EQ(seen[i], 1);
    CHECK_EQ(b.inflight, 0);
    b.ops->close(&b);
    pairs_close();
    LEAK_GATE();
}

/* B42: a 64-entry ring (2,048 CQEs) with 10,000 ops in flight: the full SQ
 * is submitted and refilled, the CQ overflows into the kernel's list. */
TEST(ten_thousand_ops_on_a_64_entry_ring)
{
    struct tide__backend b;

    tide__uring_entries = 64;
    pairs_open();
    CHECK_EQ(tide__backend_open_with(&b, &tide__backend_uring), 0);
    submit_ops(&b, buf, TIDE__OP_POLL);
    CHECK_EQ(b.ops->wait(&b, 0, c, 64), 0);
    static char data[N / PAIRS];
    memset(data, 'x', sizeof data);
    for (int i = 0; i < PAIRS; i++)
        CHECK_EQ(write(sv[i][1], data, sizeof data), (ssize_t)sizeof data);
    CHECK_EQ(collect(&b, N), N);
    for (int i = 0; i < N; i++)
        CHECK_EQ(c[i].result, POLLIN);
    CHECK_EQ(b.inflight, 0);
    /* and 10,000 recvs, one in the kernel per fd at a time */
    submit_recvs(&b, buf);
    for (int i = 0; i < PAIRS; i++)
        CHECK_EQ(write(sv[i][1], data, sizeof data), (ssize_t)sizeof data);
    CHECK_EQ(collect(&b, N), N);
    for (int i = 0; i < N; i++)
        CHECK_EQ(c[i].result, 1);
    CHECK_EQ(b.inflight, 0);
    b.ops->close(&b);
    pairs_close();
    tide__uring_entries = 256;
    LEAK_GATE();
}

/* A backend closed with ops in flight: every buffer is let go before
 * close returns (ASan would see a write after the free below). */
TEST(closed_with_ops_in_flight)
{
    struct tide__backend b;
    char *heap = malloc(N);

    CHECK_NOT_NULL(heap);
    pairs_open();
    CHECK_EQ(tide__backend_open_with(&b, &tide__backend_uring), 0);
    submit_recvs(&b, heap);
    CHECK_EQ(b.ops->wait(&b, 0, c, 64), 0); /* one per fd in the kernel */
    b.ops->close(&b);
    free(heap);
    for (int i = 0; i < PAIRS; i++)
        CHECK_EQ(write(sv[i][1], "late", 4), 4);
    usleep(10000);
    pairs_close();
    LEAK_GATE();
}

#else

TEST(built_without_liburing)
{
    SKIP("built without liburing");
}

#endif
