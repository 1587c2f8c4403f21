/* The I/O calls for tasks (include/tide/io.h): fd waits, reader/writer
 * callbacks, the sock_* calls and tide_close.
 *
 * Each call on good and bad input (negative fd, NULL buffer, zero
 * length, closed fd); cancellation at every suspension point of every
 * call, and the race where the op completed anyway (its result is
 * returned and the request stays pending: HAZARDS B41); a timeout scope
 * and wait_for around a recv from a silent peer; close from another task
 * while tasks wait (B06); a peer reset mid-send (-ECONNRESET/-EPIPE, no
 * SIGPIPE: B05); 1,000 socketpairs ping-ponging; compact tasks with
 * buffers on their own stack; the syscall seam's faults; loop close with
 * tasks blocked in I/O. Loopback and socketpairs only.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"
#include "core/loop.h"
#include "base/sys.h"

#include <tide/io.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

static void pair(int sv[2])
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                        sv),
             0);
}

static void close_pair(int sv[2])
{
    CHECK_EQ(tide_close(sv[0]), 0);
    CHECK_EQ(tide_close(sv[1]), 0);
}

/* A listening TCP socket on 127.0.0.1 (non-blocking); its address. */
static int listener(struct sockaddr_in *a, int backlog)
{
    socklen_t len = sizeof *a;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    CHECK(l >= 0);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(l, (struct sockaddr *)a, sizeof *a), 0);
    CHECK_EQ(listen(l, backlog), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)a, &len), 0);
    return l;
}

static int tcp_socket(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    CHECK(s >= 0);
    return s;
}

/* Fill fd's send buffer until send would block. */
static void fill(int fd)
{
    static char chunk[65536];

    while (send(fd, chunk, sizeof chunk, MSG_NOSIGNAL) > 0)
        ;
    CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
}

static tide_future *spawn(tide_loop *loop, tide_fn fn, void *arg)
{
    tide_future *t = tide_create_task(loop, fn, arg);

    CHECK_NOT_NULL(t);
    return t;
}

/* Run f to its end; its result as a long, its error in *err. */
static long run_task(tide_loop *loop, tide_future *f, int *err)
{
    void *r = NULL;

    *err = tide_run_until_complete(loop, f, &r);
    tide_future_release(f);
    return (long)(intptr_t)r;
}

/* Run iterations until f is suspended in its call (n steps). */
static void steps(tide_loop *loop, int n)
{
    for (int i = 0; i < n; i++)
        run_once(loop);
}

static void *result_of(ssize_t r)
{
    return r < 0 ? tide_fail((int)r) : IPTR(r);
}

/* ---- good input ------------------------------------------------------ */

struct io_args {
    int fd;
    char buf[64];
    size_t len;
};

static void *recv_body(void *arg)
{
    struct io_args *a = arg;
    return result_of(tide_sock_recv(a->fd, a->buf, a->len, 0));
}

static void *send_later(void *arg)
{
    struct io_args *a = arg;
    CHECK_EQ(tide_sleep(0.001), 0);
    return result_of(tide_sock_send(a->fd, "hello", 5, 0));
}

TEST(recv_waits_for_data)
{
    tide_loop *loop = tide_loop_new();
    int sv[2], err;
    struct io_args r = {.len = 64}, s = {0};

    CHECK_NOT_NULL(loop);
    pair(sv);
    r.fd = sv[0];
    s.fd = sv[1];
    tide_future *rt = spawn(loop, recv_body, &r);
    tide_future *st = spawn(loop, send_later, &s);
    CHECK_EQ(run_task(loop, rt, &err), 5);
    CHECK_EQ(err, 0);
    CHECK(memcmp(r.buf, "hello", 5) == 0);
    CHECK_EQ(run_task(loop, st, &err), 5);
    close_pair(sv);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* Outside a task: the result if it is there, else -EPERM. */
TEST(outside_a_task_only_what_is_there)
{
    int sv[2];
    char buf[8];

    pair(sv);
    CHECK_EQ(tide_sock_recv(sv[0], buf, sizeof buf, 0), -EPERM);
    CHECK_EQ(tide_wait_readable(sv[0], 0), -EPERM);
    CHECK_EQ(tide_sock_send(sv[1], "ab", 2, 0), 2);
    CHECK_EQ(tide_wait_readable(sv[0], 1.0), 0);
    CHECK_EQ(tide_wait_writable(sv[1], INFINITY), 0);
    CHECK_EQ(tide_sock_recv(sv[0], buf, sizeof buf, 0), 2);
    CHECK_EQ(tide_sock_accept(sv[0], NULL, NULL), -EINVAL);
    CHECK_EQ(tide_close(sv[0]), 0);
    CHECK_EQ(tide_close(sv[1]), 0);
    LEAK_GATE();
}

/* ---- bad input: the documented errno, nothing changed ------------------ */

static void *bad_input_body(void *arg)
{
    int *sv = arg;
    char buf[8];
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    struct msghdr m = {0};
    int closed = dup(0);

    close(closed);
    /* Negative fds. */
    CHECK_EQ(tide_sock_recv(-1, buf, 8, 0), -EBADF);
    CHECK_EQ(tide_sock_recvfrom(-1, buf, 8, 0, NULL, NULL), -EBADF);
    CHECK_EQ(tide_sock_send(-1, buf, 8, 0), -EBADF);
    CHECK_EQ(tide_sock_sendall(-1, buf, 8, 0), -EBADF);
    CHECK_EQ(tide_sock_sendto(-1, buf, 8, 0, (struct sockaddr *)&a, sizeof a),
             -EBADF);
    CHECK_EQ(tide_sock_recvmsg(-1, &m, 0), -EBADF);
    CHECK_EQ(tide_sock_sendmsg(-1, &m, 0), -EBADF);
    CHECK_EQ(tide_sock_accept(-1, NULL, NULL), -EBADF);
    CHECK_EQ(tide_sock_connect(-1, (struct sockaddr *)&a, sizeof a), -EBADF);
    CHECK_EQ(tide_wait_readable(-1, 1), -EBADF);
    CHECK_EQ(tide_wait_writable(-1, 1), -EBADF);
    CHECK_EQ(tide_close(-1), -EBADF);
    CHECK_EQ(tide_fd_detach(-1), -EBADF);
    /* A closed fd. */
    CHECK_EQ(tide_sock_recv(closed, buf, 8, 0), -EBADF);
    CHECK_EQ(tide_sock_send(closed, "x", 1, 0), -EBADF);
    CHECK_EQ(tide_sock_accept(closed, NULL, NULL), -EBADF);
    CHECK_EQ(tide_wait_readable(closed, 1), -EBADF);
    CHECK_EQ(tide_close(closed), -EBADF);
    /* NULL buffers and addresses. */
    CHECK_EQ(tide_sock_recv(sv[0], NULL, 8, 0), -EINVAL);
    CHECK_EQ(tide_sock_send(sv[0], NULL, 8, 0), -EINVAL);
    CHECK_EQ(tide_sock_sendall(sv[0], NULL, 8, 0), -EINVAL);
    CHECK_EQ(tide_sock_recvfrom(sv[0], buf, 8, 0, (struct sockaddr *)&a, NULL),
             -EINVAL);
    CHECK_EQ(tide_sock_sendto(sv[0], buf, 8, 0, NULL, 0), -EINVAL);
    CHECK_EQ(tide_sock_recvmsg(sv[0], NULL, 0), -EINVAL);
    CHECK_EQ(tide_sock_sendmsg(sv[0], NULL, 0), -EINVAL);
    CHECK_EQ(tide_sock_accept(sv[0], (struct sockaddr *)&a, NULL), -EINVAL);
    CHECK_EQ(tide_sock_connect(sv[0], NULL, 0), -EINVAL);
    CHECK_EQ(tide_wait_readable(sv[0], NAN), -EINVAL);
    /* Zero lengths: 0 at once, no system call, nothing taken. */
    uint64_t calls =
        tide__sys_count(TIDE__SYS_RECV) + tide__sys_count(TIDE__SYS_SEND);
    CHECK_EQ(tide_sock_recv(sv[0], buf, 0, 0), 0);
    CHECK_EQ(tide_sock_recv(sv[0], NULL, 0, 0), 0);
    CHECK_EQ(tide_sock_send(sv[0], NULL, 0, 0), 0);
    CHECK_EQ(tide_sock_sendall(sv[0], buf, 0, 0), 0);
    CHECK_EQ(tide__sys_count(TIDE__SYS_RECV) + tide__sys_count(TIDE__SYS_SEND),
             calls);
    /* Not a socket; not a listening socket. */
    FILE *f = tmpfile();
    CHECK_NOT_NULL(f);
    CHECK_EQ(tide_sock_recv(fileno(f), buf, 8, 0), -ENOTSOCK);
    CHECK_EQ(tide_wait_readable(fileno(f), 1), 0); /* files are ready */
    fclose(f);
    CHECK_EQ(tide_sock_accept(sv[0], NULL, NULL), -EINVAL);
    CHECK_EQ(tide_sock_connect(sv[0], (struct sockaddr *)&a, alen), -EINVAL);
    /* The pair still works, with nothing lost. */
    CHECK_EQ(tide_sock_send(sv[1], "ok", 2, 0), 2);
    CHECK_EQ(tide_sock_recv(sv[0], buf, 8, 0), 2);
    return NULL;
}

TEST(bad_input_returns_documented_errors)
{
    tide_loop *loop = tide_loop_new();
    int sv[2], err;

    CHECK_NOT_NULL(loop);
    pair(sv);
    run_task(loop, spawn(loop, bad_input_body, sv), &err);
    CHECK_EQ(err, 0);
    CHECK_EQ(loop_stats(loop).tasks, 0);
    close_pair(sv);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- every call, each cancelled at its suspension point ---------------- */

enum call {
    C_RECV,
    C_RECVFROM,
    C_RECVMSG,
    C_SEND,
    C_SENDALL,
    C_SENDMSG,
    C_ACCEPT,
    C_CONNECT,
    C_WAIT_R,
    C_WAIT_W,
    NCALLS
};

struct blocked {
    enum call call;
    int fd;
    struct sockaddr_in addr; /* C_CONNECT */
    ssize_t ret;
    bool returned;
};

static void *blocked_body(void *arg)
{
    struct blocked *b = arg;
    static char big[1 << 20];
    char buf[16];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    struct iovec biov = {.iov_base = big, .iov_len = sizeof big};
    struct msghdr bm = {.msg_iov = &biov, .msg_iovlen = 1};
    struct sockaddr_in from;
    socklen_t flen = sizeof from;

    switch (b->call) {
    case C_RECV:
        b->ret = tide_sock_recv(b->fd, buf, sizeof buf, 0);
        break;
    case C_RECVFROM:
        b->ret = tide_sock_recvfrom(b->fd, buf, sizeof buf, 0,
                                    (struct sockaddr *)&from, &flen);
        break;
    case C_RECVMSG:
        b->ret = tide_sock_recvmsg(b->fd, &m, 0);
        break;
    case C_SEND:
        b->ret = tide_sock_send(b->fd, big, sizeof big, 0);
        break;
    case C_SENDALL:
        b->ret = tide_sock_sendall(b->fd, big, sizeof big, 0);
        break;
    case C_SENDMSG:
        b->ret = tide_sock_sendmsg(b->fd, &bm, 0);
        break;
    case C_ACCEPT:
        b->ret = tide_sock_accept(b->fd, NULL, NULL);
        break;
    case C_CONNECT:
        b->ret = tide_sock_connect(b->fd, (struct sockaddr *)&b->addr,
                                   sizeof b->addr);
        break;
    case C_WAIT_R:
        b->ret = tide_wait_readable(b->fd, INFINITY);
        break;
    case C_WAIT_W:
        b->ret = tide_wait_writable(b->fd, INFINITY);
        break;
    default:
        break;
    }
    b->returned = true;
    return NULL;
}

/* Set up b->fd so that b->call blocks; *extra: fds to close after. */
static void block_setup(struct blocked *b, int extra[4], int *nextra)
{
    int sv[2];

    *nextra = 0;
    switch (b->call) {
    case C_RECV:
    case C_RECVFROM:
    case C_RECVMSG:
    case C_WAIT_R:
        pair(sv);
        b->fd = sv[0];
        extra[(*nextra)++] = sv[1];
        break;
    case C_SEND:
    case C_SENDALL:
    case C_SENDMSG:
    case C_WAIT_W:
        pair(sv);
        fill(sv[0]);
        b->fd = sv[0];
        extra[(*nextra)++] = sv[1];
        break;
    case C_ACCEPT:
        b->fd = listener(&b->addr, 4);
        break;
    case C_CONNECT: {
        /* A listener whose accept queue is full: a further connect stays
         * in progress (its SYN is dropped and retried). */
        int l = listener(&b->addr, 0);
        extra[(*nextra)++] = l;
        for (int i = 0; i < 3; i++) {
            int c = tcp_socket();
            connect(c, (struct sockaddr *)&b->addr, sizeof b->addr);
            extra[(*nextra)++] = c;
        }
        usleep(20000);
        b->fd = tcp_socket();
        break;
    }
    default:
        break;
    }
}

TEST(cancel_every_call_at_its_suspension)
{
    for (int c = 0; c < NCALLS; c++) {
        tide_loop *loop = tide_loop_new();
        struct blocked b = {.call = (enum call)c};
        int extra[4], nextra, err;

        CHECK_NOT_NULL(loop);
        block_setup(&b, extra, &nextra);
        tide_future *t = spawn(loop, blocked_body, &b);
        steps(loop, 3);
        if (b.returned) /* a connect that got through: no blocking here */
            CHECK(c == C_CONNECT);
        if (!b.returned) {
            CHECK(tide_future_cancel(t));
            run_task(loop, t, &err);
            CHECK(b.returned);
            if (c == C_SENDALL && b.ret != -ECANCELED)
                CHECK(b.ret > 0); /* impossible: sendall never partial */
            CHECK_EQ(b.ret, -ECANCELED);
            CHECK_EQ(err, 0); /* the body returned normally */
        } else {
            tide_future_release(t);
        }
        CHECK_EQ(loop->backend.inflight, 0);
        CHECK_EQ(loop->ops_live, 0);
        CHECK_EQ(tide_close(b.fd), 0);
        for (int i = 0; i < nextra; i++)
            CHECK_EQ(tide_close(extra[i]), 0);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}

/* B41: the op completed (data received) and the cancel came before the
 * task ran: the data is returned, and the request is delivered at the
 * next suspension. Task B is woken first in the same poll and cancels
 * task A, which is queued to resume with its data. */
struct race {
    int fd;
    tide_future *victim;
    ssize_t got;
    int next;
    char buf[8];
};

static void *race_victim(void *arg)
{
    struct race *r = arg;
    r->got = tide_sock_recv(r->fd, r->buf, sizeof r->buf, 0);
    r->next = tide_sleep(0);
    return NULL;
}

static void *race_canceller(void *arg)
{
    struct race *r = arg;
    char c;
    CHECK_EQ(tide_sock_recv(r->fd, &c, 1, 0), 1);
    CHECK(tide_future_cancel(r->victim));
    return NULL;
}

TEST(cancel_after_completion_keeps_data_and_request)
{
    tide_loop *loop = tide_loop_new();
    int a[2], b[2], err;
    struct race killer = {0}, victim = {0};

    CHECK_NOT_NULL(loop);
    pair(a);
    pair(b);
    killer.fd = b[0];
    victim.fd = a[0];
    tide_future *kt = spawn(loop, race_canceller, &killer);
    tide_future *vt = spawn(loop, race_victim, &victim);
    killer.victim = vt;
    steps(loop, 2); /* both wait, the canceller's op submitted first */
    CHECK_EQ(write(b[1], "k", 1), 1);
    CHECK_EQ(write(a[1], "data", 4), 4);
    usleep(1000);
    run_task(loop, kt, &err);
    CHECK_EQ(err, 0);
    tide_future_retain(vt);
    run_task(loop, vt, &err);
    if (harness_compact()) {
        /* A compact task waits for readiness only: nothing was taken, so
         * the request is delivered there, and the data is still queued. */
        CHECK_EQ(victim.got, -ECANCELED);
        CHECK_EQ(victim.next, 0);
        CHECK_EQ(read(a[0], victim.buf, sizeof victim.buf), 4);
    } else {
        CHECK_EQ(victim.got, 4);           /* nothing lost */
        CHECK_EQ(victim.next, -ECANCELED); /* delivered at the next one */
    }
    CHECK(memcmp(victim.buf, "data", 4) == 0);
    CHECK_EQ(err, 0);
    tide_future_release(vt);
    close_pair(a);
    close_pair(b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- time limits ---------------------------------------------------------
 */

static void *recv_in_scope(void *arg)
{
    struct io_args *a = arg;
    tide_timeout *t = tide_timeout_begin(30);
    CHECK_NOT_NULL(t);
    ssize_t r = tide_sock_recv(a->fd, a->buf, sizeof a->buf, 0);
    return result_of(tide_timeout_end(t, (int)r));
}

TEST(timeout_scope_around_recv_from_silent_peer)
{
    tide_loop *loop = new_virtual_loop();
    int sv[2], err;
    struct io_args a = {0};

    pair(sv);
    a.fd = sv[0];
    double t0 = tide_loop_time(loop);
    run_task(loop, spawn(loop, recv_in_scope, &a), &err);
    CHECK_EQ(err, -ETIMEDOUT);
    CHECK(tide_loop_time(loop) - t0 >= 30 - EARLY);
    CHECK_EQ(loop->ops_live, 0);
    /* The socket is fine afterwards. */
    CHECK_EQ(write(sv[1], "z", 1), 1);
    CHECK_EQ(tide_sock_recv(sv[0], a.buf, 8, 0), 1);
    close_pair(sv);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *wait_for_recv(void *arg)
{
    struct io_args *a = arg;
    tide_future *t = tide_create_task(NULL, recv_body, a);
    CHECK_NOT_NULL(t);
    int err = tide_wait_for(t, 5, NULL);
    tide_future_release(t);
    return tide_fail(err ? err : -EINVAL);
}

TEST(wait_for_around_recv)
{
    tide_loop *loop = new_virtual_loop();
    int sv[2], err;
    struct io_args a = {.len = 8};

    pair(sv);
    a.fd = sv[0];
    run_task(loop, spawn(loop, wait_for_recv, &a), &err);
    CHECK_EQ(err, -ETIMEDOUT);
    close_pair(sv);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *wait_readable_timed(void *arg)
{
    int *fd = arg;
    CHECK_EQ(tide_wait_readable(*fd, 0), -ETIMEDOUT); /* only looks */
    CHECK_EQ(tide_wait_readable(*fd, 2.5), -ETIMEDOUT);
    return result_of(tide_wait_readable(*fd, 100));
}

static void *write_at_10(void *arg)
{
    int *fd = arg;
    CHECK_EQ(tide_sleep(10), 0);
    return result_of(tide_sock_send(*fd, "w", 1, 0));
}

TEST(wait_readable_with_timeout)
{
    tide_loop *loop = new_virtual_loop();
    int sv[2], err;

    pair(sv);
    double t0 = tide_loop_time(loop);
    tide_future *w = spawn(loop, write_at_10, &sv[1]);
    run_task(loop, spawn(loop, wait_readable_timed, &sv[0]), &err);
    CHECK_EQ(err, 0);
    double dt = tide_loop_time(loop) - t0;
    CHECK(dt >= 10 - EARLY && dt < 11);
    run_task(loop, w, &err);
    close_pair(sv);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- close while waiting (B06) ------------------------------------------ */

struct closer {
    int fd;
    int extra;
};

static void *close_soon(void *arg)
{
    struct closer *c = arg;
    CHECK_EQ(tide_sleep(0.001), 0);
    CHECK_EQ(tide_close(c->fd), 0);
    return NULL;
}

static int reader_calls;

static void count_reader(void *arg)
{
    (void)arg;
    reader_calls++;
}

TEST(close_wakes_every_waiter_with_ebadf)
{
    tide_loop *loop = tide_loop_new();
    int sv[2], err;
    struct blocked r = {.call = C_RECV}, s = {.call = C_SEND},
                   w = {.call = C_WAIT_W}, rr = {.call = C_WAIT_R};

    CHECK_NOT_NULL(loop);
    pair(sv);
    fill(sv[0]);
    r.fd = s.fd = w.fd = rr.fd = sv[0];
    tide_future *t[4] = {spawn(loop, blocked_body, &r),
                         spawn(loop, blocked_body, &s),
                         spawn(loop, blocked_body, &w),
                         spawn(loop, blocked_body, &rr)};
    CHECK_EQ(tide_add_reader(loop, sv[0], count_reader, NULL), 0);
    struct closer c = {.fd = sv[0]};
    run_task(loop, spawn(loop, close_soon, &c), &err);
    CHECK_EQ(err, 0);
    for (int i = 0; i < 4; i++)
        run_task(loop, t[i], &err);
    CHECK_EQ(r.ret, -EBADF);
    CHECK_EQ(s.ret, -EBADF);
    CHECK_EQ(w.ret, -EBADF);
    CHECK_EQ(rr.ret, -EBADF);
    CHECK_EQ(fcntl(sv[0], F_GETFD), -1); /* closed once, by tide_close */
    CHECK_EQ(tide_remove_reader(loop, sv[0]), 0); /* removed by the close */
    CHECK_EQ(loop->ops_live, 0);
    CHECK_EQ(tide_close(sv[1]), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- peer reset mid-send; SIGPIPE never kills ----------------------------
 */

struct sender {
    int fd;
    ssize_t ret;
};

static void *send_forever(void *arg)
{
    struct sender *s = arg;
    static char chunk[1 << 16];
    ssize_t r;

    while ((r = tide_sock_sendall(s->fd, chunk, sizeof chunk, 0)) > 0)
        ;
    s->ret = r;
    return NULL;
}

static void *reset_soon(void *arg)
{
    int fd = *(int *)arg;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK_EQ(tide_sleep(0.005), 0);
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    CHECK_EQ(tide_close(fd), 0);
    return NULL;
}

TEST(peer_reset_mid_send)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill this test */
    tide_loop *loop = tide_loop_new();
    struct sockaddr_in a;
    int err;

    CHECK_NOT_NULL(loop);
    int l = listener(&a, 4);
    int c = tcp_socket();
    CHECK(connect(c, (struct sockaddr *)&a, sizeof a) == 0 ||
          errno == EINPROGRESS);
    usleep(1000);
    int srv = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CHECK(srv >= 0);
    struct sender s = {.fd = c};
    tide_future *st = spawn(loop, send_forever, &s);
    run_task(loop, spawn(loop, reset_soon, &srv), &err);
    run_task(loop, st, &err);
    CHECK(s.ret == -ECONNRESET || s.ret == -EPIPE);
    /* And once more on the dead socket: -EPIPE, still no signal. */
    CHECK_EQ(tide_sock_send(c, "x", 1, 0), -EPIPE);
    int sv[2];
    pair(sv);
    CHECK_EQ(tide_close(sv[1]), 0);
    CHECK_EQ(tide_sock_send(sv[0], "x", 1, 0), -EPIPE);
    CHECK_EQ(tide_close(sv[0]), 0);
    CHECK_EQ(tide_close(c), 0);
    CHECK_EQ(tide_close(l), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- accept, connect, datagrams, msghdrs ----------------------------- */

static void *accept_one(void *arg)
{
    int l = *(int *)arg;
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int fd = tide_sock_accept(l, (struct sockaddr *)&peer, &plen);
    if (fd < 0)
        return tide_fail(fd);
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(peer.sin_family, AF_INET);
    char buf[8];
    CHECK_EQ(tide_sock_recv(fd, buf, sizeof buf, 0), 4);
    CHECK_EQ(tide_sock_sendall(fd, buf, 4, 0), 4);
    CHECK_EQ(tide_close(fd), 0);
    return NULL;
}

static void *connect_one(void *arg)
{
    struct sockaddr_in *a = arg;
    int s = tcp_socket();
    int err = tide_sock_connect(s, (struct sockaddr *)a, sizeof *a);
    if (err < 0) {
        tide_close(s);
        return tide_fail(err);
    }
    char buf[8];
    CHECK_EQ(tide_sock_send(s, "ping", 4, 0), 4);
    CHECK_EQ(tide_sock_recv(s, buf, sizeof buf, 0), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_EQ(tide_sock_recv(s, buf, sizeof buf, 0), 0); /* EOF */
    CHECK_EQ(tide_close(s), 0);
    return NULL;
}

TEST(accept_and_connect_over_tcp)
{
    tide_loop *loop = tide_loop_new();
    struct sockaddr_in a;
    int err;

    CHECK_NOT_NULL(loop);
    int l = listener(&a, 4);
    tide_future *at = spawn(loop, accept_one, &l);
    run_task(loop, spawn(loop, connect_one, &a), &err);
    CHECK_EQ(err, 0);
    run_task(loop, at, &err);
    CHECK_EQ(err, 0);
    CHECK_EQ(tide_close(l), 0);
    /* Refused. */
    tide_future *t = spawn(loop, connect_one, &a);
    run_task(loop, t, &err);
    CHECK_EQ(err, -ECONNREFUSED);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *udp_echo(void *arg)
{
    int fd = *(int *)arg;
    char buf[32];
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ssize_t n = tide_sock_recvfrom(fd, buf, sizeof buf, 0,
                                   (struct sockaddr *)&from, &flen);
    if (n < 0)
        return tide_fail((int)n);
    return result_of(tide_sock_sendto(fd, buf, (size_t)n, 0,
                                      (struct sockaddr *)&from, flen));
}

static void *msg_body(void *arg)
{
    int *sv = arg;
    char a[3] = "ab", b[4] = "cde";
    struct iovec out[2] = {{a, 2}, {b, 3}};
    struct msghdr m = {.msg_iov = out, .msg_iovlen = 2};
    char x[2], y[8];
    struct iovec in[2] = {{x, 2}, {y, 8}};
    struct msghdr r = {.msg_iov = in, .msg_iovlen = 2};

    CHECK_EQ(tide_sleep(0), 0);
    CHECK_EQ(tide_sock_sendmsg(sv[1], &m, 0), 5);
    ssize_t n = tide_sock_recvmsg(sv[0], &r, 0);
    CHECK_EQ(n, 5);
    CHECK(memcmp(x, "ab", 2) == 0 && memcmp(y, "cde", 3) == 0);
    return NULL;
}

TEST(datagrams_and_msghdrs)
{
    tide_loop *loop = tide_loop_new();
    int err;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;

    CHECK_NOT_NULL(loop);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int v = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(u >= 0 && v >= 0);
    CHECK_EQ(bind(u, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(getsockname(u, (struct sockaddr *)&a, &alen), 0);
    tide_future *echo = spawn(loop, udp_echo, &u);
    steps(loop, 2);
    CHECK_EQ(tide_sock_sendto(v, "dgram", 5, 0, (struct sockaddr *)&a, alen),
             5);
    CHECK_EQ(run_task(loop, echo, &err), 5);
    CHECK_EQ(err, 0);
    char buf[8];
    CHECK_EQ(tide_wait_readable(v, 1), 0);
    CHECK_EQ(tide_sock_recv(v, buf, sizeof buf, 0), 5);
    int sv[2];
    pair(sv);
    run_task(loop, spawn(loop, msg_body, sv), &err);
    CHECK_EQ(err, 0);
    close_pair(sv);
    CHECK_EQ(tide_close(u), 0);
    CHECK_EQ(tide_close(v), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- 1,000 socketpairs ping-ponging ---------------------------------- */

enum { PAIRS = 1000, ROUNDS = 10 };

static void *pinger(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c = 'p';
    for (int i = 0; i < ROUNDS; i++) {
        CHECK_EQ(tide_sock_send(fd, &c, 1, 0), 1);
        CHECK_EQ(tide_sock_recv(fd, &c, 1, 0), 1);
        CHECK_EQ(c, 'q');
        c = 'p';
    }
    return NULL;
}

static void *ponger(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    for (int i = 0; i < ROUNDS; i++) {
        CHECK_EQ(tide_sock_recv(fd, &c, 1, 0), 1);
        CHECK_EQ(c, 'p');
        c = 'q';
        CHECK_EQ(tide_sock_send(fd, &c, 1, 0), 1);
    }
    return NULL;
}

TEST(thousand_socketpairs_ping_pong)
{
    tide_loop *loop = tide_loop_new();
    static int sv[PAIRS][2];
    static tide_future *t[2 * PAIRS];

    CHECK_NOT_NULL(loop);
    for (int i = 0; i < PAIRS; i++) {
        pair(sv[i]);
        t[2 * i] = spawn(loop, pinger, IPTR(sv[i][0]));
        t[2 * i + 1] = spawn(loop, ponger, IPTR(sv[i][1]));
    }
    tide_future *all = tide_gather(t, 2 * PAIRS, 0);
    CHECK_NOT_NULL(all);
    CHECK_EQ(tide_run_until_complete(loop, all, NULL), 0);
    tide_future_release(all);
    for (int i = 0; i < 2 * PAIRS; i++)
        tide_future_release(t[i]);
    CHECK_EQ(loop->ops_live, 0);
    for (int i = 0; i < PAIRS; i++)
        close_pair(sv[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- compact tasks: buffers on their own stacks ---------------------- */

static void *compact_echo(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char stackbuf[512]; /* on the shared stack while running */
    for (int i = 0; i < 20; i++) {
        memset(stackbuf, 0, sizeof stackbuf);
        ssize_t n = tide_sock_recv(fd, stackbuf, sizeof stackbuf, 0);
        CHECK_EQ(n, 300);
        for (int k = 0; k < 300; k++)
            CHECK_EQ(stackbuf[k], (char)(fd + i + k));
        CHECK_EQ(tide_sock_sendall(fd, stackbuf, 300, 0), 300);
    }
    return NULL;
}

struct cpair {
    int mine, theirs;
};

static void *compact_client(void *arg)
{
    struct cpair *p = arg;
    char out[300], in[300]; /* on the shared stack too */
    for (int i = 0; i < 20; i++) {
        for (int k = 0; k < 300; k++)
            out[k] = (char)(p->theirs + i + k);
        CHECK_EQ(tide_sock_sendall(p->mine, out, 300, 0), 300);
        size_t got = 0;
        while (got < 300) {
            ssize_t n = tide_sock_recv(p->mine, in + got, 300 - got, 0);
            CHECK(n > 0);
            got += (size_t)n;
        }
        CHECK(memcmp(in, out, 300) == 0);
    }
    return NULL;
}

TEST(compact_tasks_with_stack_buffers)
{
    enum { N = 8 };
    tide_loop *loop = tide_loop_new();
    tide_task_options opt = {.compact = true};
    static int sv[N][2];
    static struct cpair cp[N];
    tide_future *t[2 * N];

    CHECK_NOT_NULL(loop);
    for (int i = 0; i < N; i++) {
        pair(sv[i]);
        cp[i] = (struct cpair){.mine = sv[i][0], .theirs = sv[i][1]};
        CHECK_NOT_NULL(t[2 * i] = tide_create_task_ex(loop, compact_echo,
                                                      IPTR(sv[i][1]), &opt));
        CHECK_NOT_NULL(t[2 * i + 1] = tide_create_task_ex(loop, compact_client,
                                                          &cp[i], &opt));
    }
    tide_future *all = tide_gather(t, 2 * N, 0);
    CHECK_NOT_NULL(all);
    CHECK_EQ(tide_run_until_complete(loop, all, NULL), 0);
    tide_future_release(all);
    for (int i = 0; i < 2 * N; i++)
        tide_future_release(t[i]);
    for (int i = 0; i < N; i++)
        close_pair(sv[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- reader and writer callbacks --------------------------------------- */

struct rd {
    tide_loop *loop;
    int fd;
    int calls;
    bool drain;  /* read what is there */
    bool remove; /* remove itself on the first call */
};

static void on_readable(void *arg)
{
    struct rd *r = arg;
    char buf[64];

    r->calls++;
    if (r->drain)
        while (read(r->fd, buf, sizeof buf) > 0)
            ;
    if (r->remove)
        CHECK_EQ(tide_remove_reader(r->loop, r->fd), 1);
}

static void *sleep_body(void *arg)
{
    double *s = arg;
    return result_of(tide_sleep(*s));
}

/* Let the loop run (and wait for I/O) for `seconds`. */
static void idle(tide_loop *loop, double seconds)
{
    int err;

    run_task(loop, spawn(loop, sleep_body, &seconds), &err);
    CHECK_EQ(err, 0);
}

struct other {
    tide_loop *loop;
    int fd; /* whose reader to remove */
    int self;
    int *calls;
};

static void remove_other(void *arg)
{
    struct other *o = arg;
    (*o->calls)++;
    CHECK_EQ(tide_remove_reader(o->loop, o->fd), 1);
    CHECK_EQ(tide_remove_reader(o->loop, o->self), 1);
}

TEST(reader_callbacks)
{
    tide_loop *loop = tide_loop_new();
    int sv[2];

    CHECK_NOT_NULL(loop);
    pair(sv);
    struct rd r = {.loop = loop, .fd = sv[0]};
    CHECK_EQ(tide_add_reader(loop, sv[0], on_readable, &r), 0);
    idle(loop, 0.002);
    CHECK_EQ(r.calls, 0); /* nothing to read */
    CHECK_EQ(write(sv[1], "abc", 3), 3);
    double t0 = harness_now(); /* slow tools: a few rounds */
    while (r.calls < 3 && harness_now() - t0 < 1.0)
        idle(loop, 0.002);
    CHECK(r.calls >= 3); /* level-triggered: not read */
    r.drain = true;
    idle(loop, 0.002);
    int after = r.calls;
    idle(loop, 0.002);
    CHECK_EQ(r.calls, after); /* drained: no more calls */
    /* Replacing: only the new callback runs. */
    struct rd r2 = {.loop = loop, .fd = sv[0], .drain = true};
    CHECK_EQ(tide_add_reader(loop, sv[0], on_readable, &r2), 0);
    CHECK_EQ(write(sv[1], "d", 1), 1);
    idle(loop, 0.002);
    CHECK_EQ(r.calls, after);
    CHECK_EQ(r2.calls, 1);
    CHECK_EQ(tide_remove_reader(loop, sv[0]), 1);
    CHECK_EQ(tide_remove_reader(loop, sv[0]), 0);
    /* A callback that removes itself runs once. */
    struct rd r3 = {.loop = loop, .fd = sv[0], .remove = true};
    CHECK_EQ(write(sv[1], "e", 1), 1);
    CHECK_EQ(tide_add_reader(loop, sv[0], on_readable, &r3), 0);
    idle(loop, 0.002);
    CHECK_EQ(r3.calls, 1);
    /* Two readers ready in one poll, each removing the other: the one
     * scheduled second never runs. */
    int s2[2], calls = 0;
    pair(s2);
    struct other o1 = {loop, s2[0], sv[0], &calls},
                 o2 = {loop, sv[0], s2[0], &calls};
    CHECK_EQ(tide_add_reader(loop, sv[0], remove_other, &o1), 0);
    CHECK_EQ(tide_add_reader(loop, s2[0], remove_other, &o2), 0);
    CHECK_EQ(write(s2[1], "f", 1), 1);
    CHECK_EQ(write(sv[1], "g", 1), 1);
    idle(loop, 0.002);
    CHECK_EQ(calls, 1);
    CHECK_EQ(tide_remove_reader(loop, sv[0]) + tide_remove_reader(loop, s2[0]),
             0);
    char junk[8];
    CHECK(read(sv[0], junk, sizeof junk) >= 1);
    close_pair(s2);
    /* Writers: a socket with room is writable. */
    CHECK_EQ(tide_add_writer(loop, sv[1], count_reader, NULL), 0);
    reader_calls = 0;
    idle(loop, 0.002);
    CHECK(reader_calls >= 2);
    CHECK_EQ(tide_remove_writer(loop, sv[1]), 1);
    /* Bad input. */
    CHECK_EQ(tide_add_reader(loop, -1, count_reader, NULL), -EBADF);
    CHECK_EQ(tide_add_reader(loop, sv[0], NULL, NULL), -EINVAL);
    int closed = dup(0);
    close(closed);
    CHECK_EQ(tide_add_reader(loop, closed, count_reader, NULL), -EBADF);
    CHECK_EQ(tide_remove_writer(loop, -1), 0);
    /* tide_close removes the callbacks of its fd. */
    CHECK_EQ(tide_add_reader(loop, sv[0], count_reader, NULL), 0);
    CHECK_EQ(loop->ops_live, 1);
    close_pair(sv);
    if (strcmp(tide_loop_backend(loop), "io_uring") == 0)
        idle(loop, 0.002); /* its poll's cancel completes from the ring */
    CHECK_EQ(loop->ops_live, 0);
    /* Left registered at close: let go with the loop. */
    int sv2[2];
    pair(sv2);
    CHECK_EQ(tide_add_reader(loop, sv2[0], count_reader, NULL), 0);
    CHECK_EQ(tide_add_writer(loop, sv2[0], count_reader, NULL), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    close(sv2[0]);
    close(sv2[1]);
    LEAK_GATE();
}

/* ---- the syscall seam's faults ----------------------------------------- */

static void *faulty_io(void *arg)
{
    int *sv = arg;
    char buf[16];

    /* EINTR is retried. */
    CHECK_EQ(tide_sock_send(sv[1], "abc", 3, 0), 3);
    tide__sys_fault(TIDE__SYS_RECV, 1, EINTR, 0);
    CHECK_EQ(tide_sock_recv(sv[0], buf, sizeof buf, 0), 3);
    /* Short writes: sendall finishes the job. */
    tide__sys_fault(TIDE__SYS_SEND, 1, 0, 2);
    CHECK_EQ(tide_sock_sendall(sv[1], "0123456789", 10, 0), 10);
    size_t got = 0;
    while (got < 10) {
        ssize_t n = tide_sock_recv(sv[0], buf + got, sizeof buf - got, 0);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK(memcmp(buf, "0123456789", 10) == 0);
    /* Short read: reported as it is, the rest still there. */
    CHECK_EQ(tide_sock_send(sv[1], "xyz", 3, 0), 3);
    tide__sys_fault(TIDE__SYS_RECV, 1, 0, 1);
    CHECK_EQ(tide_sock_recv(sv[0], buf, sizeof buf, 0), 1);
    CHECK_EQ(tide_sock_recv(sv[0], buf, sizeof buf, 0), 2);
    /* ENOMEM from the call itself is the call's result. */
    tide__sys_fault(TIDE__SYS_SEND, 1, ENOMEM, 0);
    CHECK_EQ(tide_sock_send(sv[1], "x", 1, 0), -ENOMEM);
    /* EMFILE on accept: reported; the listener keeps working. */
    struct sockaddr_in a;
    int l = listener(&a, 4);
    int c = tcp_socket();
    CHECK(connect(c, (struct sockaddr *)&a, sizeof a) == 0 ||
          errno == EINPROGRESS);
    tide__sys_fault(TIDE__SYS_ACCEPT, 1, EMFILE, 0);
    CHECK_EQ(tide_sock_accept(l, NULL, NULL), -EMFILE);
    int fd = tide_sock_accept(l, NULL, NULL);
    CHECK(fd >= 0);
    CHECK_EQ(tide_close(fd), 0);
    CHECK_EQ(tide_close(c), 0);
    CHECK_EQ(tide_close(l), 0);
    tide__sys_fault_clear();
    return NULL;
}

TEST(injected_faults)
{
    tide_loop *loop = tide_loop_new();
    int sv[2], err;

    if (strcmp(tide_loop_backend(loop), "io_uring") == 0)
        SKIP("io_uring: the kernel makes the calls the seam would fault");
    CHECK_NOT_NULL(loop);
    pair(sv);
    run_task(loop, spawn(loop, faulty_io, sv), &err);
    CHECK_EQ(err, 0);
    close_pair(sv);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ENOMEM for the op's slot: the call says so, and works after. */
static void *recv_under_enomem(void *arg)
{
    int *sv = arg;
    char buf[4];
    tide__alloc_fail_after(1);
    ssize_t r = tide_sock_recv(sv[0], buf, sizeof buf, 0);
    tide__alloc_fail_after(0);
    if (harness_compact()) /* compact: the poll's slot; same rule */
        CHECK(r == -ENOMEM);
    else
        CHECK_EQ(r, -ENOMEM);
    CHECK_EQ(tide_sock_send(sv[1], "k", 1, 0), 1);
    return result_of(tide_sock_recv(sv[0], buf, sizeof buf, 0));
}

TEST(enomem_for_an_op_slot)
{
    tide_loop *loop = tide_loop_new();
    int sv[2], err;

    CHECK_NOT_NULL(loop);
    pair(sv);
    CHECK_EQ(run_task(loop, spawn(loop, recv_under_enomem, sv), &err), 1);
    CHECK_EQ(err, 0);
    close_pair(sv);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- loop close with tasks blocked in I/O --------------------------------
 */

TEST(loop_close_cancels_blocked_io)
{
    tide_loop *loop = tide_loop_new();
    int sv[2];
    struct blocked b[3] = {{.call = C_RECV},
                           {.call = C_SEND},
                           {.call = C_WAIT_R}};

    CHECK_NOT_NULL(loop);
    pair(sv);
    fill(sv[0]);
    for (int i = 0; i < 3; i++) {
        b[i].fd = sv[0];
        tide_future_release(spawn(loop, blocked_body, &b[i]));
    }
    steps(loop, 3);
    CHECK_EQ(tide_loop_close(loop), 0);
    for (int i = 0; i < 3; i++) {
        CHECK(b[i].returned);
        CHECK_EQ(b[i].ret, -ECANCELED);
    }
    close(sv[0]);
    close(sv[1]);
    LEAK_GATE();
}

/* ---- a number closed behind tide's back and reused -------------------- */

struct reuse {
    int l, expect;
    ssize_t got;
};

static void *accept_then_recv(void *arg)
{
    struct reuse *r = arg;
    int fd = tide_sock_accept(r->l, NULL, NULL);
    if (fd < 0)
        return tide_fail(fd);
    CHECK_EQ(fd, r->expect); /* the number of the fd closed with close(2) */
    char c;
    r->got = tide_sock_recv(fd, &c, 1, 0);
    CHECK_EQ(tide_close(fd), 0);
    return NULL;
}

/* An fd tide waited on, closed with close(2) (behind tide's back), whose
 * number tide_sock_accept hands out again: the new connection's waits
 * are woken (the backend's record of the number is renewed), in a
 * compact task as in a plain one. */
TEST(accepted_number_reused_after_plain_close)
{
    for (int compact = 0; compact < 2; compact++) {
        tide_loop *loop = tide_loop_new();
        tide_task_options opt = {.compact = compact == 1};
        int sv[2], err;
        struct io_args a = {.len = 8};
        struct sockaddr_in addr;

        CHECK_NOT_NULL(loop);
        pair(sv);
        a.fd = sv[0];
        tide_future *t = tide_create_task_ex(loop, recv_body, &a, &opt);
        CHECK_NOT_NULL(t);
        steps(loop, 2); /* waiting: sv[0] is now watched */
        CHECK_EQ(write(sv[1], "x", 1), 1);
        CHECK_EQ(run_task(loop, t, &err), 1);
        int l = listener(&addr, 4);
        int c = tcp_socket();
        CHECK(connect(c, (struct sockaddr *)&addr, sizeof addr) == 0 ||
              errno == EINPROGRESS);
        struct reuse r = {.l = l, .expect = sv[0]};
        close(sv[0]); /* behind tide's back */
        t = tide_create_task_ex(loop, accept_then_recv, &r, &opt);
        CHECK_NOT_NULL(t);
        steps(loop, 4);
        CHECK_EQ(send(c, "y", 1, MSG_NOSIGNAL), 1);
        run_task(loop, t, &err);
        CHECK_EQ(err, 0);
        CHECK_EQ(r.got, 1);
        CHECK_EQ(tide_close(c), 0);
        CHECK_EQ(tide_close(l), 0);
        CHECK_EQ(tide_close(sv[1]), 0);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}
