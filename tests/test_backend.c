/* The backend contract (src/poll/backend.h), run against every backend:
 * each CONTRACT(name) is one test per backend in BACKENDS (io_uring joins
 * by adding its ops there). The test plays the core: it owns the ops,
 * makes up their tokens, and reads the completions.
 *
 * Covered: inline completion; EAGAIN then ready; HUP-only readiness and
 * a reset under a blocked writer (HAZARDS B05); cancel in flight and
 * cancel racing a completion (exactly one completion, nothing lost:
 * B41); close with ops queued and reuse of the fd number before the next
 * wait (B01, B06); a dup'd fd closed through the backend (B02); the
 * unpollable and the invalid (B08); 10,000 ops in flight; accept and
 * connect; regular files (read, write, fsync); wake from another thread;
 * the time limit; the embedding fd; the syscall seam's faults. Then the
 * core's side: completions with stale tokens reach no one (B03), an op
 * dropped earlier in the same batch (B01), every slot back at close.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "core/loop.h"
#include "base/sys.h"
#include "poll/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef TIDE_HAVE_URING
/* memcheck cannot see what the kernel writes through the ring (results,
 * addresses, received bytes): it would call them uninitialised. */
#define URING_CONTRACT(name)                                      \
    TEST(name##_io_uring)                                         \
    {                                                             \
        if (HARNESS_VALGRIND)                                     \
            SKIP("memcheck cannot see the kernel's ring writes"); \
        contract_##name(&tide__backend_uring);                    \
    }
#else
#define URING_CONTRACT(name)
#endif

#define CONTRACT(name)                                                \
    static void contract_##name(const struct tide__backend_ops *ops); \
    TEST(name##_epoll)                                                \
    {                                                                 \
        contract_##name(&tide__backend_epoll);                        \
    }                                                                 \
    TEST(name##_poll)                                                 \
    {                                                                 \
        contract_##name(&tide__backend_poll);                         \
    }                                                                 \
    URING_CONTRACT(name)                                              \
    static void contract_##name(const struct tide__backend_ops *ops)

/* ---- helpers --------------------------------------------------------- */

#define CAP 64

static void open_backend(struct tide__backend *b,
                         const struct tide__backend_ops *ops)
{
    CHECK_EQ(tide__backend_open_with(b, ops), 0);
    CHECK(b->ops == ops);
}

static void pair(int sv[2])
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                        sv),
             0);
}

static void op_init(struct tide__op *op, uint8_t kind, int fd, void *buf,
                    size_t len, uint64_t token)
{
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->fd = fd;
    op->buf = buf;
    op->len = len;
    op->offset = -1;
    op->token = token;
}

/* Wait until `want` completions have come (or 2 s pass), appending them
 * to out[]; returns how many came. */
static int collect(struct tide__backend *b, struct tide__completion *out,
                   int want)
{
    int got = 0;
    double end = harness_now() + 2 * harness_timeout_mult();

    while (got < want && harness_now() < end) {
        int cap = want - got < CAP ? want - got : CAP;
        int n = b->ops->wait(b, 10000000, out + got, cap);
        CHECK(n >= 0);
        got += n;
    }
    return got;
}

/* Completions within `ns` (none expected): their count. */
static int quiet(struct tide__backend *b, int64_t ns)
{
    struct tide__completion c[CAP];
    int total = 0;
    double end = harness_now() + (double)ns / 1e9;

    do {
        int n = b->ops->wait(b, ns, c, CAP);
        CHECK(n >= 0);
        total += n;
    } while (harness_now() < end);
    return total;
}

/* True for a backend that submits natively (io_uring): it may complete
 * nothing inline. */
static bool completes_later_ops(const struct tide__backend_ops *ops)
{
    return ops != &tide__backend_epoll && ops != &tide__backend_poll;
}

static bool completes_later(const struct tide__backend *b)
{
    return completes_later_ops(b->ops);
}

/* Submit op and return its result: inline on a readiness backend (which
 * must complete it so), else from its one completion. */
static ssize_t settle(struct tide__backend *b, struct tide__op *op)
{
    struct tide__completion c[1];
    int r = b->ops->submit(b, op);

    if (r == 1)
        return op->result;
    CHECK(completes_later(b));
    CHECK_EQ(r, 0);
    CHECK_EQ(collect(b, c, 1), 1);
    CHECK_EQ(c[0].token, op->token);
    return c[0].result;
}

/* ---- the contract ------------------------------------------------------ */

CONTRACT(inline_completion)
{
    struct tide__backend b;
    int sv[2];
    char buf[8] = {0};
    struct tide__op op;

    open_backend(&b, ops);
    pair(sv);
    CHECK_EQ(write(sv[1], "hi", 2), 2);
    op_init(&op, TIDE__OP_RECV, sv[0], buf, sizeof buf, 7);
    CHECK_EQ(settle(&b, &op), 2);
    CHECK(memcmp(buf, "hi", 2) == 0);
    op_init(&op, TIDE__OP_SEND, sv[0], "abc", 3, 8);
    CHECK_EQ(settle(&b, &op), 3);
    CHECK_EQ(b.inflight, 0);
    CHECK_EQ(quiet(&b, 1000000), 0); /* nothing more comes for either */
    b.ops->close(&b);
    close(sv[0]);
    close(sv[1]);
    LEAK_GATE();
}

CONTRACT(eagain_then_ready)
{
    struct tide__backend b;
    struct tide__completion c[CAP];
    int sv[2];
    char buf[8] = {0};
    struct tide__op op;

    open_backend(&b, ops);
    pair(sv);
    op_init(&op, TIDE__OP_RECV, sv[0], buf, sizeof buf, 42);
    CHECK_EQ(b.ops->submit(&b, &op), 0);
    CHECK_EQ(b.inflight, 1);
    CHECK_EQ(b.ops->wait(&b, 0, c, CAP), 0);
    CHECK_EQ(write(sv[1], "hello", 5), 5);
    CHECK_EQ(collect(&b, c, 1), 1);
    CHECK_EQ(c[0].token, 42);
    CHECK_EQ(c[0].result, 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(b.inflight, 0);
    CHECK_EQ(quiet(&b, 1000000), 0); /* exactly one completion */
    /* The same fd again, in steady state: a second wait costs no new
     * registration (epoll: no epoll_ctl). */
    uint64_t ctl = tide__sys_count(TIDE__SYS_EPOLL_CTL);
    op_init(&op, TIDE__OP_RECV, sv[0], buf, sizeof buf, 43);
    CHECK_EQ(b.ops->submit(&b, &op), 0);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK_EQ(collect(&b, c, 1), 1);
    CHECK_EQ(c[0].token, 43);
    CHECK_EQ(c[0].result, 1);
    CHECK_EQ(tide__sys_count(TIDE__SYS_EPOLL_CTL), ctl);
    b.ops->close(&b);
    close(sv[0]);
    close(sv[1]);
    LEAK_GATE();
}

/* B05 (a): a pipe whose writer closes reports POLLHUP without POLLIN; the
 * queued read still runs and sees all the data, then EOF. */
CONTRACT(hup_only_wakes_reader)
{
    struct tide__backend b;
    struct tide__completion c[CAP];
    int p[2];
    static char buf[65536];
    struct tide__op op;

    open_backend(&b, ops);
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    op_init(&op, TIDE__OP_READ, p[0], buf, sizeof buf, 1);
    CHECK_EQ(b.ops->submit(&b, &op), 0);
    close(p[1]); /* HUP only: nothing was written */
    CHECK_EQ(collect(&b, c, 1), 1);
    CHECK_EQ(c[0].result, 0);
    op_init(&op, TIDE__OP_CLOSE, p[0], NULL, 0, 9); /* through the backend */
    CHECK_EQ(b.ops->submit(&b, &op), 1);

    /* With data: 64 KiB then close, read through queued ops to EOF. */
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    size_t total = 0;
    op_init(&op, TIDE__OP_READ, p[0], buf, 1000, 2);
    CHECK_EQ(b.ops->submit(&b, &op), 0);
    static char out[65536];
    memset(out, 'z', sizeof out);
    CHECK_EQ(write(p[1], out, sizeof out), (ssize_t)sizeof out);
    close(p[1]);
    for (;;) {
        CHECK_EQ(collect(&b, c, 1), 1);
        CHECK(c[0].result >= 0);
        if (c[0].result == 0)
            break;
        total += (size_t)c[0].result;
        op_init(&op, TIDE__OP_READ, p[0], buf, 1000, 3);
        int r = b.ops->submit(&b, &op);
        while (r == 1 && op.result > 0) {
            total += (size_t)op.result;
            r = b.ops->submit(&b, &op);
        }
        if (r == 1) {
            CHECK_EQ(op.result, 0);
            break;
        }
    }
    CHECK_EQ(total, sizeof out);
    b.ops->close(&b);
    close(p[0]);
    LEAK_GATE();
}

/* B05 (b): a writer blocked on a full buffer is woken by the peer's reset
 * with -ECONNRESET or -EPIPE (and no SIGPIPE). */
CONTRACT(reset_wakes_blocked_writer)
{
    struct tide__backend b;
    struct tide__completion c[CAP];
    int cl, sv;
    static char chunk[65536];
    struct tide__op op;

    open_backend(&b, ops);
    harness_tcp_pair(&cl, &sv);
    while (send(cl, chunk, sizeof chunk, MSG_NOSIGNAL) > 0)
        ;
    CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
    op_init(&op, TIDE__OP_SEND, cl, chunk, sizeof chunk, 9);
    int r = b.ops->submit(&b, &op);
    if (r == 1) { /* the buffer drained a little meanwhile: fill again */
        while (send(cl, chunk, sizeof chunk, MSG_NOSIGNAL) > 0)
            ;
        r = b.ops->submit(&b, &op);
    }
    CHECK_EQ(r, 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK_EQ(setsockopt(sv, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(sv); /* RST */
    CHECK_EQ(collect(&b, c, 1), 1);
    CHECK_EQ(c[0].token, 9);
    CHECK(c[0].result == -ECONNRESET || c[0].result == -EPIPE);
    b.ops->close(&b);
    close(cl);
    LEAK_GATE();
}

/* Cancel in flight: exactly one completion (inline or later), and the
 * data sent afterwards is still there to read. */
CONTRACT(cancel_in_flight)
{
    struct tide__backend b;
    struct tide__completion c[CAP];
    int sv[2];
    char buf[8];
    struct tide__op op;

    open_backend(&b, ops);
    pair(sv);
    op_init(&op, TIDE__OP_RECV, sv[0], buf, sizeof buf, 5);
    CHECK_EQ(b.ops->submit(&b, &op), 0);
    int comps = 0;
    if (b.ops->cancel(&b, &op) == 1) {
        CHECK_EQ(op.result, -ECANCELED);
        comps = 1;
    } else {
        CHECK_EQ(collect(&b, c, 1), 1);
        CHECK_EQ(c[0].token, 5);
        CHECK_EQ(c[0].result, -ECANCELED);
        comps = 1;
    }
    CHECK_EQ(comps, 1);
    CHECK_EQ(b.inflight, 0);
    CHECK_EQ(write(sv[1], "d", 1), 1);
    CHECK_EQ(quiet(&b, 2000000), 0); /* nothing more for the cancelled op */
    CHECK_EQ(read(sv[0], buf, sizeof buf), 1); /* the byte was not taken */
    b.ops->close(&b);
    close(sv[0]);
    close(sv[1]);
    LEAK_GATE();
}

/* Cancel racing a completion (B41): two reads complete in one wait that
 * has room for one; the other is cancelled after it finished. Exactly one
 * completion each, and every byte is either delivered or still there. */
CONTRACT(cancel_racing_completion)
{
    struct tide__backend b;
    struct tide__completion c[CAP];
    int s1[2], s2[2];
    char b1[8], b2[8];
    struct tide__op o1, o2;

    open_backend(&b, ops);
    pair(s1);
    pair(s2);
    op_init(&o1, TIDE__OP_RECV, s1[0], b1, sizeof b1, 1);
    op_init(&o2, TIDE__OP_RECV, s2[0], b2, sizeof b2, 2);
    CHECK_EQ(b.ops->submit(&b, &o1), 0);
    CHECK_EQ(b.ops->submit(&b, &o2), 0);
    CHECK_EQ(write(s1[1], "a", 1), 1);
    CHECK_EQ(write(s2[1], "b", 1), 1);
    usleep(1000);
    int n = 0;
    while (n == 0)
        n = b.ops->wait(&b, 10000000, c, 1);
    CHECK_EQ(n, 1);
    struct tide__op *late = c[0].token == 1 ? &o2 : &o1;
    int *late_sv = c[0].token == 1 ? s2 : s1;
    CHECK_EQ(c[0].result, 1);
    ssize_t res;
    if (b.ops->cancel(&b, late) == 1) {
        res = late->result;
    } else {
        CHECK_EQ(collect(&b, c, 1), 1);
        CHECK_EQ(c[0].token, late->token);
        res = c[0].result;
    }
    CHECK(res == 1 || res == -ECANCELED);
    char x;
    ssize_t left = read(late_sv[0], &x, 1);
    if (left < 0)
        left = 0;
    CHECK_EQ(left + (res == 1), 1); /* delivered xor still readable */
    CHECK_EQ(b.inflight, 0);
    CHECK_EQ(quiet(&b, 1000000), 0);
    b.ops->close(&b);
    close(s1[0]);
    close(s1[1]);
    close(s2[0]);
    close(s2[1]);
    LEAK_GATE();
}

/* B01/B06: close an fd with a read and a poll queued, while it is
 * readable, and get its number back for a new socket before the next
 * wait: the old ops end with -EBADF exactly once, the new one sees
 * nothing until its own data comes. */
CONTRACT(close_and_reuse_in_one_batch)
{
    struct tide__backend b;
    struct tide__completion c[CAP];
    int sv[2], nv[2];
    char buf[8];
    struct tide__op rd, pl, cl, fresh;

    open_backend(&b, ops);
    pair(sv);
    op_init(&rd, TIDE__OP_RECV, sv[0], buf, sizeof buf, 11);
    op_init(&pl, TIDE__OP_POLL, sv[0], NULL, 0, 12);
    pl.flags = POLLIN;
    CHECK_EQ(b.ops->submit(&b, &rd), 0);
    CHECK_EQ(b.ops->submit(&b, &pl), 0);
    CHECK_EQ(write(sv[1], "zz", 2), 2); /* an event is on its way */
    int old = sv[0];
    op_init(&cl, TIDE__OP_CLOSE, old, NULL, 0, 13);
    int later = b.ops->submit(&b, &cl) == 0;
    if (later) {
        /* io_uring: the close waits for the cancelled ops' completions:
         * all three come, the close's own last. */
        CHECK(completes_later(&b));
        CHECK_EQ(collect(&b, c, 3), 3);
        CHECK_EQ(c[0].token + c[1].token, 11 + 12);
        /* The data came first: each may have its real result (B41). */
        for (int i = 0; i < 2; i++)
            CHECK(c[i].result == -EBADF ||
                  c[i].result == (c[i].token == 11 ? 2 : POLLIN));
        CHECK_EQ(c[2].token, 13);
        CHECK_EQ(c[2].result, 0);
    } else {
        CHECK_EQ(cl.result, 0);
    }
    CHECK_EQ(fcntl(old, F_GETFD), -1); /* really closed */
    close(sv[1]);
    pair(nv);
    int reused = nv[0] == old || nv[1] == old;
    int fd = nv[0] == old ? nv[0] : nv[1] == old ? nv[1] : nv[0];
    int peer = fd == nv[0] ? nv[1] : nv[0];
    op_init(&fresh, TIDE__OP_RECV, fd, buf, sizeof buf, 14);
    CHECK_EQ(b.ops->submit(&b, &fresh), 0);
    if (!later) {
        CHECK_EQ(collect(&b, c, 2), 2);
        CHECK(c[0].token != 14 && c[1].token != 14);
        CHECK_EQ(c[0].result, -EBADF);
        CHECK_EQ(c[1].result, -EBADF);
        CHECK_EQ(c[0].token + c[1].token, 11 + 12);
    }
    CHECK_EQ(quiet(&b, 2000000), 0);
    CHECK_EQ(write(peer, "n", 1), 1);
    CHECK_EQ(collect(&b, c, 1), 1);
    CHECK_EQ(c[0].token, 14);
    CHECK_EQ(c[0].result, 1);
    (void)reused;
    b.ops->close(&b);
    close(nv[0]);
    close(nv[1]);
    LEAK_GATE();
}

/* B02: a dup'd description, its watched fd closed through the backend:
 * no events, no busy loop (epoll: EPOLL_CTL_DEL came before the close). */
CONTRACT(dup_closed_through_backend_is_quiet)
{
    struct tide__backend b;
    int sv[2];
    char buf[8];
    struct tide__op rd, cl;

    open_backend(&b, ops);
    pair(sv);
    op_init(&rd, TIDE__OP_RECV, sv[0], buf, sizeof buf, 1);
    CHECK_EQ(b.ops->submit(&b, &rd), 0);
    int d = dup(sv[0]);
    CHECK(d >= 0);
    uint64_t ctl = tide__sys_count(TIDE__SYS_EPOLL_CTL);
    op_init(&cl, TIDE__OP_CLOSE, sv[0], NULL, 0, 2);
    int later = b.ops->submit(&b, &cl) == 0;
    CHECK(!later || completes_later(&b));
    if (ops == &tide__backend_epoll)
        CHECK_EQ(tide__sys_count(TIDE__SYS_EPOLL_CTL), ctl + 1); /* DEL */
    struct tide__completion c[CAP];
    CHECK_EQ(collect(&b, c, 1 + later), 1 + later);
    CHECK_EQ(c[0].token, 1);
    CHECK_EQ(c[0].result, -EBADF);
    if (later) {
        CHECK_EQ(c[1].token, 2);
        CHECK_EQ(c[1].result, 0);
    }
    CHECK_EQ(write(sv[1], "x", 1), 1); /* d's description is readable */
    /* One look first: a kernel (or valgrind) without epoll_pwait2 costs
     * the first wait a second call, the fallback. */
    CHECK_EQ(b.ops->wait(&b, 0, c, CAP), 0);
    uint64_t waits = tide__sys_count(TIDE__SYS_EPOLL_WAIT) +
                     tide__sys_count(TIDE__SYS_POLL) +
                     tide__sys_count(TIDE__SYS_URING_ENTER);
    CHECK_EQ(b.ops->wait(&b, 50000000, c, CAP), 0); /* sleeps it out */
    CHECK_EQ(tide__sys_count(TIDE__SYS_EPOLL_WAIT) +
                 tide__sys_count(TIDE__SYS_POLL) +
                 tide__sys_count(TIDE__SYS_URING_ENTER),
             waits + 1);
    b.ops->close(&b);
    close(d);
    close(sv[1]);
    LEAK_GATE();
}

/* B08: regular files complete inline (never "would block"); the epoll fd
 * cannot watch itself (-EINVAL, inline); nothing is left in flight. */
CONTRACT(unpollable_fds)
{
    struct tide__backend b;
    char buf[8];
    struct tide__op op;
    FILE *f = tmpfile();

    CHECK_NOT_NULL(f);
    int fd = fileno(f);
    open_backend(&b, ops);
    op_init(&op, TIDE__OP_RECV, fd, buf, sizeof buf, 1);
    CHECK_EQ(settle(&b, &op), -ENOTSOCK);
    op_init(&op, TIDE__OP_WRITE, fd, "abc", 3, 2);
    CHECK_EQ(settle(&b, &op), 3);
    op_init(&op, TIDE__OP_READ, fd, buf, sizeof buf, 3);
    op.offset = 0;
    CHECK_EQ(settle(&b, &op), 3);
    op_init(&op, TIDE__OP_POLL, fd, NULL, 0, 4);
    op.flags = POLLIN | POLLOUT;
    CHECK(settle(&b, &op) & POLLIN);
    if (b.fd >= 0 && !completes_later(&b)) { /* the backend's own fd */
        op_init(&op, TIDE__OP_POLL, b.fd, NULL, 0, 5);
        op.flags = POLLIN;
        CHECK_EQ(settle(&b, &op), -EINVAL);
    }
    CHECK_EQ(b.inflight, 0);
    b.ops->close(&b);
    fclose(f);
    LEAK_GATE();
}

CONTRACT(invalid_fds)
{
    struct tide__backend b;
    char buf[8] = {0};
    struct tide__op op;
    static const uint8_t kinds[] = {TIDE__OP_RECV, TIDE__OP_SEND,
                                    TIDE__OP_POLL, TIDE__OP_ACCEPT,
                                    TIDE__OP_READ, TIDE__OP_CLOSE};
    open_backend(&b, ops);
    int closed = dup(0);
    CHECK(closed >= 0);
    close(closed);
    for (size_t k = 0; k < sizeof kinds; k++) {
        int fds[] = {-1, closed, 1 << 20};
        for (int i = 0; i < 3; i++) {
            op_init(&op, kinds[k], fds[i], buf, sizeof buf, 1);
            op.flags = kinds[k] == TIDE__OP_POLL ? POLLIN : 0;
            CHECK_EQ(settle(&b, &op), -EBADF);
        }
    }
    CHECK_EQ(b.inflight, 0);
    CHECK(b.nfds < 1 << 20); /* a bad number did not grow the table */
    b.ops->close(&b);
    LEAK_GATE();
}

/* Regular files: READ and WRITE at an offset and at the file position
 * (inline on a readiness backend, natively on io_uring); FSYNC on a
 * completion backend only: a readiness backend refuses it with -ENOTSUP,
 * nothing submitted, no completion to come. */
CONTRACT(file_ops)
{
    struct tide__backend b;
    char name[] = "/tmp/tide-test-backend-XXXXXX";
    char buf[16] = {0};
    struct tide__op op;
    int p[2];

    open_backend(&b, ops);
    int fd = mkstemp(name);
    CHECK(fd >= 0);
    CHECK_EQ(unlink(name), 0);
    op_init(&op, TIDE__OP_WRITE, fd, "0123456789", 10, 1);
    CHECK_EQ(settle(&b, &op), 10);
    op_init(&op, TIDE__OP_WRITE, fd, "AB", 2, 2);
    op.offset = 4;
    CHECK_EQ(settle(&b, &op), 2);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 10); /* an offset leaves it alone */
    CHECK_EQ(lseek(fd, 2, SEEK_SET), 2);
    op_init(&op, TIDE__OP_READ, fd, buf, sizeof buf, 3);
    CHECK_EQ(settle(&b, &op), 8);
    CHECK(memcmp(buf, "23AB6789", 8) == 0);
    CHECK_EQ(settle(&b, &op), 0); /* end of file */
    CHECK_EQ(pipe(p), 0);
    int closed = dup(0);
    CHECK(closed >= 0);
    CHECK_EQ(close(closed), 0);
    for (int datasync = 0; datasync < 2; datasync++) {
        int fds[] = {fd, closed, p[0]};
        ssize_t want[] = {0, -EBADF, -EINVAL}; /* fsync(2)'s own */
        for (int i = 0; i < 3; i++) {
            op_init(&op, TIDE__OP_FSYNC, fds[i], NULL, 0, 4);
            op.flags = datasync ? TIDE__FSYNC_DATASYNC : 0;
            if (completes_later(&b)) {
                CHECK_EQ(settle(&b, &op), want[i]);
            } else {
                CHECK_ERR(b.ops->submit(&b, &op), -ENOTSUP);
            }
        }
    }
    CHECK_EQ(b.inflight, 0);
    CHECK_EQ(quiet(&b, 1000000), 0);
    b.ops->close(&b);
    CHECK_EQ(close(fd), 0);
    CHECK_EQ(close(p[0]), 0);
    CHECK_EQ(close(p[1]), 0);
    LEAK_GATE();
}

/* 10,000 ops in flight on 1,000 socketpairs: each completes once. */
CONTRACT(ten_thousand_ops)
{
    enum { PAIRS = 1000, PER = 10, N = PAIRS * PER };
    struct tide__backend b;
    static int sv[PAIRS][2];
    static struct tide__op op[N];
    static char buf[N];
    static struct tide__completion c[N];
    static unsigned char seen[N];

    open_backend(&b, ops);
    for (int i = 0; i < PAIRS; i++)
        pair(sv[i]);
    for (int i = 0; i < N; i++) {
        op_init(&op[i], TIDE__OP_RECV, sv[i / PER][0], &buf[i], 1,
                (uint64_t)i + 1);
        CHECK_EQ(b.ops->submit(&b, &op[i]), 0);
    }
    CHECK_EQ(b.inflight, N);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < PAIRS; i++)
        CHECK_EQ(write(sv[i][1], "0123456789", PER), PER);
    CHECK_EQ(collect(&b, c, N), N);
    for (int i = 0; i < N; i++) {
        CHECK(c[i].token >= 1 && c[i].token <= N);
        CHECK_EQ(c[i].result, 1);
        CHECK_EQ(seen[c[i].token - 1]++, 0);
    }
    /* In order per fd on the readiness backends: op k of a pair got byte
     * k. io_uring keeps no order among ops on one fd (the kernel wakes
     * the last armed first): a difference listed in tide/io.h. */
    for (int i = 0; i < N && !completes_later(&b); i++)
        CHECK_EQ(buf[i], '0' + i % PER);
    CHECK_EQ(b.inflight, 0);
    b.ops->close(&b);
    for (int i = 0; i < PAIRS; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    LEAK_GATE();
}

/* Accept and connect through ops (accept4's flags as given). */
CONTRACT(accept_and_connect)
{
    struct tide__backend b;
    struct tide__completion c[CAP];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    struct tide__op acc, con;
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;

    open_backend(&b, ops);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 4), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
    op_init(&acc, TIDE__OP_ACCEPT, l, NULL, 0, 1);
    acc.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    acc.addr = (struct sockaddr *)&peer;
    acc.addrlen = &plen;
    CHECK_EQ(b.ops->submit(&b, &acc), 0);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    op_init(&con, TIDE__OP_CONNECT, s, NULL, 0, 2);
    con.addr = (struct sockaddr *)&a;
    con.addr_len = sizeof a;
    int r = b.ops->submit(&b, &con);
    int want = r == 1 ? 1 : 2;
    if (r == 1)
        CHECK_EQ(con.result, 0);
    CHECK_EQ(collect(&b, c, want), want);
    int accepted = -1;
    for (int i = 0; i < want; i++) {
        CHECK(c[i].result >= 0);
        if (c[i].token == 1)
            accepted = (int)c[i].result;
        else
            CHECK_EQ(c[i].result, 0);
    }
    CHECK(accepted >= 0);
    CHECK(fcntl(accepted, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(accepted, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(peer.sin_family, AF_INET);
    /* Refused: connect to a port nobody listens on. */
    close(l);
    int s2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    op_init(&con, TIDE__OP_CONNECT, s2, NULL, 0, 3);
    con.addr = (struct sockaddr *)&a;
    con.addr_len = sizeof a;
    r = b.ops->submit(&b, &con);
    ssize_t res = con.result;
    if (r == 0) {
        CHECK_EQ(collect(&b, c, 1), 1);
        res = c[0].result;
    }
    CHECK_EQ(res, -ECONNREFUSED);
    b.ops->close(&b);
    close(s);
    close(s2);
    close(accepted);
    LEAK_GATE();
}

struct waker {
    struct tide__backend *b;
    atomic_bool stop;
};

static void *wake_until_stopped(void *arg)
{
    struct waker *w = arg;

    while (!atomic_load(&w->stop)) {
        usleep(20000);
        w->b->ops->wake(w->b);
    }
    return NULL;
}

CONTRACT(wake_from_another_thread)
{
    struct tide__backend b;
    struct tide__completion c[CAP];
    struct waker w = {.b = &b};
    pthread_t t;

    open_backend(&b, ops);
    b.ops->wake(&b); /* before the wait: it returns at once */
    CHECK_EQ(b.ops->wait(&b, -1, c, CAP), 0);
    CHECK_EQ(pthread_create(&t, NULL, wake_until_stopped, &w), 0);
    CHECK_EQ(b.ops->wait(&b, -1, c, CAP), 0); /* returns: woken */
    atomic_store(&w.stop, true);
    CHECK_EQ(pthread_join(t, NULL), 0);
    b.ops->close(&b);
    LEAK_GATE();
}

/* The time limit: never early, at nanosecond resolution (1.5 ms is not
 * rounded down to 1 ms). */
CONTRACT(time_limit)
{
    struct tide__backend b;
    struct tide__completion c[CAP];
    int64_t limits[] = {1500000, 20000000, 300000};

    open_backend(&b, ops);
    for (int i = 0; i < 3; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK_EQ(b.ops->wait(&b, limits[i], c, CAP), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t ns =
            (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
        CHECK(ns >= limits[i]);
    }
    CHECK_EQ(b.ops->wait(&b, 0, c, CAP), 0);
    b.ops->close(&b);
    LEAK_GATE();
}

/* fd(): readable when a wait would find work (epoll), else -ENOTSUP. */
CONTRACT(embedding_fd)
{
    struct tide__backend b;
    int sv[2];
    char buf[4];
    struct tide__op op;
    struct tide__completion c[CAP];

    open_backend(&b, ops);
    int fd = b.ops->fd(&b);
    if (fd == -ENOTSUP) {
        b.ops->close(&b);
        LEAK_GATE();
        return;
    }
    CHECK(fd >= 0);
    pair(sv);
    op_init(&op, TIDE__OP_RECV, sv[0], buf, sizeof buf, 1);
    CHECK_EQ(b.ops->submit(&b, &op), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(b.ops->wait(&b, 0, c, CAP), 0); /* what was pending is seen */
    CHECK_EQ(poll(&p, 1, 0), 0);
    CHECK_EQ(write(sv[1], "q", 1), 1);
    CHECK_EQ(poll(&p, 1, 1000), 1);
    CHECK_EQ(collect(&b, c, 1), 1);
    /* A wake from another thread makes the fd readable while a poller
     * sleeps on it (DEFER_TASKRUN broke this: the poll slept to its
     * timeout). */
    struct waker w = {.b = &b};
    pthread_t t;
    CHECK_EQ(b.ops->wait(&b, 0, c, CAP), 0);
    CHECK_EQ(poll(&p, 1, 0), 0);
    CHECK_EQ(pthread_create(&t, NULL, wake_until_stopped, &w), 0);
    double t0 = harness_now();
    CHECK_EQ(poll(&p, 1, 2000), 1);
    CHECK(harness_now() - t0 < 1.0);
    atomic_store(&w.stop, true);
    CHECK_EQ(pthread_join(t, NULL), 0);
    b.ops->close(&b);
    close(sv[0]);
    close(sv[1]);
    LEAK_GATE();
}

/* The seam's faults, as a readiness backend meets them (io_uring makes
 * none of these calls itself: test_uring.c faults its own). */
CONTRACT(injected_faults)
{
    if (completes_later_ops(ops)) {
        LEAK_GATE();
        return;
    }
    struct tide__backend b;
    struct tide__completion c[CAP];
    int sv[2];
    char buf[16];
    struct tide__op op;

    open_backend(&b, ops);
    pair(sv);
    CHECK_EQ(write(sv[1], "abcdef", 6), 6);
    /* EINTR is retried. */
    tide__sys_fault(TIDE__SYS_RECV, 1, EINTR, 0);
    op_init(&op, TIDE__OP_RECV, sv[0], buf, sizeof buf, 1);
    CHECK_EQ(b.ops->submit(&b, &op), 1);
    CHECK_EQ(op.result, 6);
    /* A short read is reported as it is. */
    CHECK_EQ(write(sv[1], "abcdef", 6), 6);
    tide__sys_fault(TIDE__SYS_RECV, 1, 0, 2);
    CHECK_EQ(b.ops->submit(&b, &op), 1);
    CHECK_EQ(op.result, 2);
    CHECK_EQ(read(sv[0], buf, sizeof buf), 4);
    /* A spurious EAGAIN on an fd never watched: the op waits, and the
     * readiness already there completes it. */
    int fresh[2];
    pair(fresh);
    CHECK_EQ(write(fresh[1], "xy", 2), 2);
    tide__sys_fault(TIDE__SYS_RECV, 1, EAGAIN, 0);
    op_init(&op, TIDE__OP_RECV, fresh[0], buf, sizeof buf, 2);
    CHECK_EQ(b.ops->submit(&b, &op), 0);
    CHECK_EQ(collect(&b, c, 1), 1);
    CHECK_EQ(c[0].result, 2);
    /* Errors of the call itself complete the op with them. */
    tide__sys_fault(TIDE__SYS_ACCEPT, 1, EMFILE, 0);
    op_init(&op, TIDE__OP_ACCEPT, sv[0], NULL, 0, 3);
    CHECK_EQ(b.ops->submit(&b, &op), 1);
    CHECK_EQ(op.result, -EMFILE);
    tide__sys_fault(TIDE__SYS_SEND, 1, ENOMEM, 0);
    op_init(&op, TIDE__OP_SEND, sv[0], "s", 1, 4);
    CHECK_EQ(b.ops->submit(&b, &op), 1);
    CHECK_EQ(op.result, -ENOMEM);
    /* A backend that cannot start watching fails the op inline, and
     * leaves nothing behind (epoll: epoll_ctl; poll: its array). */
    int third[2];
    pair(third);
    if (ops == &tide__backend_epoll)
        tide__sys_fault(TIDE__SYS_EPOLL_CTL, 1, ENOMEM, 0);
    else
        tide__alloc_fail_after(1);
    op_init(&op, TIDE__OP_RECV, third[0], buf, sizeof buf, 5);
    int r = b.ops->submit(&b, &op);
    tide__alloc_fail_after(0);
    if (ops == &tide__backend_epoll || r == 1) { /* poll: its array may
                                                  * have had room */
        CHECK_EQ(r, 1);
        CHECK_EQ(op.result, -ENOMEM);
        CHECK_EQ(b.inflight, 0);
        CHECK_EQ(b.ops->submit(&b, &op), 0); /* and later it works */
    }
    CHECK_EQ(write(third[1], "!", 1), 1);
    CHECK_EQ(collect(&b, c, 1), 1);
    CHECK_EQ(c[0].token, 5);
    CHECK_EQ(c[0].result, 1);
    tide__sys_fault_clear();
    b.ops->close(&b);
    int *all[] = {sv, fresh, third};
    for (int i = 0; i < 3; i++) {
        close(all[i][0]);
        close(all[i][1]);
    }
    LEAK_GATE();
}

TEST(seam_counts_and_fault_once)
{
    uint64_t n = tide__sys_count(TIDE__SYS_CLOSE);
    int fd = dup(0);

    CHECK(fd >= 0);
    tide__sys_fault(TIDE__SYS_CLOSE, 2, EIO, 0);
    int fd2 = dup(0);
    CHECK_EQ(tide__sys_close(fd), 0);   /* 1st: made */
    CHECK_EQ(tide__sys_close(fd2), -1); /* 2nd: faulted, made all the same */
    CHECK_EQ(errno, EIO);
    CHECK_EQ(tide__sys_close(fd2), -1); /* fires once: fd2 is gone */
    CHECK_EQ(errno, EBADF);
    CHECK_EQ(tide__sys_count(TIDE__SYS_CLOSE), n + 3);
    tide__sys_fault(TIDE__SYS_CLOSE, 1, EIO, 0);
    tide__sys_fault(TIDE__SYS_CLOSE, 0, 0, 0); /* disarmed */
    fd = dup(0);
    CHECK_EQ(tide__sys_close(fd), 0);
    LEAK_GATE();
}

/* ---- the core's side: slots, tokens, dispatch -------------------------- */

static int completed;

static void count_complete(tide_loop *loop, struct tide__opslot *s)
{
    (void)loop;
    (void)s;
    completed++;
}

static struct tide__opslot *victim;

static void drop_victim(tide_loop *loop, struct tide__opslot *s)
{
    (void)s;
    completed++;
    if (victim) {
        tide__op_drop(loop, victim);
        victim = NULL;
    }
}

TEST(stale_tokens_reach_no_one)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    struct tide__opslot *a = tide__op_new(loop);
    CHECK_NOT_NULL(a);
    uint64_t old = a->op.token;
    a->state = TIDE__OPSLOT_INFLIGHT; /* as if submitted */
    a->complete = count_complete;
    a->state = TIDE__OPSLOT_IDLE;
    tide__op_free(loop, a);
    struct tide__opslot *b = tide__op_new(loop);
    CHECK(b == a);             /* the same slot, reused... */
    CHECK(b->op.token != old); /* ...under a new token */
    CHECK_EQ((uint32_t)b->op.token, (uint32_t)old);
    b->complete = count_complete;
    b->state = TIDE__OPSLOT_INFLIGHT;
    struct tide__completion c[3] = {
        {.token = old, .result = 1},           /* the freed use */
        {.token = old + ((uint64_t)7 << 32)},  /* never issued */
        {.token = (uint64_t)1 << 32 | 999999}, /* no such slot */
    };
    completed = 0;
    uint64_t stale = loop->ops_stale;
    tide__op_dispatch(loop, c, 3);
    CHECK_EQ(completed, 0);
    CHECK_EQ(loop->ops_stale, stale + 3);
    c[0].token = b->op.token;
    tide__op_dispatch(loop, c, 1);
    CHECK_EQ(completed, 1);
    CHECK_EQ(b->op.result, 1);
    CHECK_EQ(b->state, TIDE__OPSLOT_IDLE);
    tide__op_dispatch(loop, c, 1); /* once only */
    CHECK_EQ(completed, 1);
    tide__op_free(loop, b);
    CHECK_EQ(loop->ops_live, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* An op dropped by the completion of another in the same batch: its own
 * completion, later in that batch, reaches no one and frees the slot. */
TEST(op_dropped_earlier_in_the_batch)
{
    tide_loop *loop = tide_loop_new();
    int s1[2], s2[2];
    char b1[4], b2[4];

    CHECK_NOT_NULL(loop);
    pair(s1);
    pair(s2);
    struct tide__opslot *a = tide__op_new(loop), *b = tide__op_new(loop);
    CHECK(a && b);
    a->op.kind = b->op.kind = TIDE__OP_RECV;
    a->op.fd = s1[0];
    a->op.buf = b1;
    a->op.len = sizeof b1;
    b->op.fd = s2[0];
    b->op.buf = b2;
    b->op.len = sizeof b2;
    a->complete = drop_victim;
    b->complete = drop_victim;
    CHECK_EQ(tide__op_submit(loop, a), 0);
    CHECK_EQ(tide__op_submit(loop, b), 0);
    CHECK_EQ(write(s1[1], "a", 1), 1);
    CHECK_EQ(write(s2[1], "b", 1), 1);
    completed = 0;
    struct tide__completion c[CAP];
    int n = collect(&loop->backend, c, 2);
    CHECK_EQ(n, 2);
    victim = c[0].token == a->op.token ? b : a;
    tide__op_dispatch(loop, c, 2);
    CHECK_EQ(completed, 1); /* only the first */
    CHECK(victim == NULL);
    CHECK_EQ(loop->ops_live, 1); /* the dropped one is freed */
    tide__op_free(loop, c[0].token == a->op.token ? a : b);
    CHECK_EQ(tide_loop_close(loop), 0);
    close(s1[0]);
    close(s1[1]);
    close(s2[0]);
    close(s2[1]);
    LEAK_GATE();
}

/* Slots come from chunks that never move, and steady state allocates
 * nothing: 1,000 ops made and freed twice cost no allocation the second
 * time. */
TEST(op_slots_are_reused_without_allocating)
{
    tide_loop *loop = tide_loop_new();
    static struct tide__opslot *s[1000];

    CHECK_NOT_NULL(loop);
    for (int i = 0; i < 1000; i++)
        CHECK_NOT_NULL(s[i] = tide__op_new(loop));
    for (int i = 0; i < 1000; i++)
        tide__op_free(loop, s[i]);
    long live = tide__alloc_live();
    for (int i = 0; i < 1000; i++)
        CHECK_NOT_NULL(s[i] = tide__op_new(loop));
    CHECK_EQ(tide__alloc_live(), live);
    for (int i = 0; i < 1000; i++)
        tide__op_free(loop, s[i]);
    /* ENOMEM for a new chunk is reported, not fatal. */
    for (int i = 0; i < 1000; i++)
        CHECK_NOT_NULL(s[i] = tide__op_new(loop));
    tide__alloc_fail_after(1);
    struct tide__opslot *extra[100];
    int got = 0;
    while (got < 100 && (extra[got] = tide__op_new(loop)))
        got++;
    tide__alloc_fail_after(0);
    CHECK(got < 100); /* ran into the failed chunk */
    for (int i = 0; i < got; i++)
        tide__op_free(loop, extra[i]);
    for (int i = 0; i < 1000; i++)
        tide__op_free(loop, s[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}
