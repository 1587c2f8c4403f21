/* Hostile tests of what landed with UDP endpoints, open_connection by
 * name, the signal registry and files (issues 9 and 10): each states the
 * header text it holds the code to. Loopback only; bounded times.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"
#include "io/io.h"
#include "net.h"

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

static void run_main(tide_fn fn, void *arg)
{
    void *res = NULL;

    /* The bodies share their locals with the tasks they start. */
    if (harness_compact())
        SKIP("TIDE_COMPACT=1: the bodies share their frames with tasks");
    CHECK_ERR(tide_run(fn, arg, &res), 0);
}

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
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR2, count_cb, &r.old_hits), 0);
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
    if (HARNESS_VALGRIND) /* the churning thread's loop, in the child */
        SKIP(
            "memcheck calls what a forked child leaves of other threads lost");
    pthread_t th;
    atomic_store(&churn_stop, false);
    CHECK_EQ(pthread_create(&th, NULL, churn, NULL), 0);
    for (int i = 0; i < 40; i++) {
        char buf[512];
        int status =
            harness_run_child(fork_child_handler, NULL, buf, sizeof buf);
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

/* ---- UDP ------------------------------------------------------------- */

static void lower_fd_limit(struct rlimit *old)
{
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, old), 0);
    struct rlimit low = *old;
    low.rlim_cur = (rlim_t)harness_fd_count() + 3; /* + opendir's in count */
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
}

/* Take every free fd number below the limit; how many in fds[]. */
static int exhaust_fds(int *fds, int cap)
{
    int n = 0;
    while (n < cap && (fds[n] = dup(0)) >= 0)
        n++;
    CHECK(n < cap);
    return n;
}

/* tide/udp.h: tide_udp_open's errors are "the socket ... error": out of
 * fds it is NULL and EMFILE, nothing leaked; it opens again once an fd
 * is free. */
TEST(udp_open_out_of_fds_is_emfile)
{
    struct rlimit old;
    int fds[64];

    lower_fd_limit(&old);
    int n = exhaust_fds(fds, 64);
    errno = 0;
    CHECK_NULL(tide_udp_open("127.0.0.1", 0, NULL, 0, NULL));
    CHECK_ERR(errno, EMFILE);
    close(fds[--n]);
    tide_udp *u = tide_udp_open("127.0.0.1", 0, NULL, 0, NULL);
    CHECK_NOT_NULL(u);
    CHECK_EQ(tide_udp_close(u), 0);
    while (n > 0)
        close(fds[--n]);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    LEAK_GATE();
}

struct udp_recv {
    tide_udp *u;
    ssize_t got;
    char buf[8];
    char guard[8]; /* never written */
};

static void *udp_recv_body(void *arg)
{
    struct udp_recv *r = arg;

    r->got = tide_udp_recv(r->u, r->buf, sizeof r->buf);
    return NULL;
}

/* tide/udp.h: "-ECANCELED"; tide.h: loop close cancels every task. A
 * task suspended in a receive when its loop closes ends, the endpoint
 * stays the caller's and closes cleanly afterwards. */
TEST(udp_loop_close_while_a_receive_is_suspended)
{
    static struct udp_recv r;
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    r.u = tide_udp_open("127.0.0.1", 0, NULL, 0, NULL);
    CHECK_NOT_NULL(r.u);
    r.got = 99;
    tide_future *t = tide_create_task(loop, udp_recv_body, &r);
    CHECK_NOT_NULL(t);
    iterate(loop);
    CHECK(!tide_future_done(t));
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK(tide_future_done(t));
    CHECK_ERR(r.got, -ECANCELED);
    tide_future_release(t);
    CHECK_EQ(tide_udp_close(r.u), 0);
    LEAK_GATE();
}

/* A compact task receives into a buffer on its own stack: a datagram
 * longer than it is -EMSGSIZE, the buffer holds its first bytes and
 * nothing past the buffer is written (the receive is made in the task,
 * never while its frames are copied away). */
static void *compact_truncation_body(void *arg)
{
    tide_udp **pair = arg;
    struct sockaddr_storage from;
    socklen_t flen = 4; /* shorter than any address: cut, not overrun */
    char stack[16];

    memset(stack, 'G', sizeof stack);
    ssize_t r =
        tide_udp_recvfrom(pair[0], stack, 8, (struct sockaddr *)&from, &flen);
    CHECK_ERR(r, -EMSGSIZE);
    CHECK(memcmp(stack, "abcdefgh", 8) == 0);
    for (int i = 8; i < 16; i++)
        CHECK_EQ(stack[i], 'G');
    CHECK_EQ(flen, sizeof(struct sockaddr_in)); /* the real length */
    CHECK_EQ(tide_udp_peek_size(pair[0]), 3);
    CHECK_EQ(tide_udp_recv(pair[0], stack, sizeof stack), 3);
    return NULL;
}

static void *compact_sender(void *arg)
{
    tide_udp **pair = arg;
    CHECK_ERR(tide_sleep(0.01), 0);
    CHECK_EQ(tide_udp_send(pair[1], "abcdefghijklmnop", 16), 16);
    CHECK_EQ(tide_udp_send(pair[1], "xyz", 3), 3);
    return NULL;
}

TEST(udp_compact_task_receives_on_its_own_stack)
{
    static tide_udp *pair[2];
    struct sockaddr_storage a;
    socklen_t alen = sizeof a;
    tide_task_options opt = {.compact = true};

    pair[0] = tide_udp_open("127.0.0.1", 0, NULL, 0, NULL);
    CHECK_NOT_NULL(pair[0]);
    CHECK_EQ(tide_udp_sockname(pair[0], (struct sockaddr *)&a, &alen), 0);
    pair[1] = tide_udp_open_addr(NULL, 0, (struct sockaddr *)&a, alen, NULL);
    CHECK_NOT_NULL(pair[1]);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    tide_future *rt =
        tide_create_task_ex(loop, compact_truncation_body, pair, &opt);
    tide_future *st = tide_create_task_ex(loop, compact_sender, pair, &opt);
    CHECK_NOT_NULL(rt);
    CHECK_NOT_NULL(st);
    CHECK_ERR(tide_run_until_complete(loop, rt, NULL), 0);
    CHECK_ERR(tide_run_until_complete(loop, st, NULL), 0);
    tide_future_release(rt);
    tide_future_release(st);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(tide_udp_close(pair[0]), 0);
    CHECK_EQ(tide_udp_close(pair[1]), 0);
    LEAK_GATE();
}

/* tide/udp.h: a connected endpoint's sendto to an address of another
 * family is -EAFNOSUPPORT, to a short one -EINVAL, to its own peer a
 * send; an unconnected endpoint's send is -EDESTADDRREQ. Nothing is
 * sent by the refused calls. */
static void *udp_args_body(void *arg)
{
    (void)arg;
    tide_udp *rx = tide_udp_open("127.0.0.1", 0, NULL, 0, NULL);
    CHECK_NOT_NULL(rx);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    CHECK_EQ(tide_udp_sockname(rx, (struct sockaddr *)&a, &alen), 0);
    tide_udp *tx =
        tide_udp_open_addr(NULL, 0, (struct sockaddr *)&a, alen, NULL);
    CHECK_NOT_NULL(tx);
    struct sockaddr_un {
        sa_family_t f;
        char p[20];
    } un = {AF_UNIX, "x"};
    CHECK_ERR(tide_udp_sendto(tx, "a", 1, (struct sockaddr *)&un, sizeof un),
              -EAFNOSUPPORT);
    CHECK_ERR(tide_udp_sendto(tx, "a", 1, (struct sockaddr *)&a, 4), -EINVAL);
    CHECK_ERR(tide_udp_sendto(tx, "a", 1, (struct sockaddr *)&a, 0), -EINVAL);
    CHECK_ERR(tide_udp_send(rx, "a", 1), -EDESTADDRREQ);
    CHECK_ERR(tide_udp_peername(rx, (struct sockaddr *)&a, &alen), -ENOTCONN);
    CHECK_EQ(tide_udp_sendto(tx, "ok", 2, (struct sockaddr *)&a, sizeof a), 2);
    char buf[8];
    CHECK_EQ(tide_udp_recv(rx, buf, sizeof buf), 2); /* only "ok" came */
    tide_timeout *t = tide_timeout_begin(0.02);
    CHECK_NOT_NULL(t);
    CHECK_ERR(tide_timeout_end(t, (int)tide_udp_peek_size(rx)), -ETIMEDOUT);
    CHECK_EQ(tide_udp_close(tx), 0);
    CHECK_EQ(tide_udp_close(rx), 0);
    return NULL;
}

TEST(udp_refused_sends_send_nothing)
{
    run_main(udp_args_body, NULL);
    LEAK_GATE();
}

/* ---- open_connection --------------------------------------------------- */

/* A listener whose accept queue is full, so that a further connect to it
 * hangs (its SYNs are dropped); the queue's filler in *filler. */
static int full_listener(uint16_t *port, int *filler)
{
    int l = tcp_listener(0, port);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(*port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    *filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(*filler >= 0);
    CHECK_EQ(connect(*filler, (struct sockaddr *)&a, sizeof a), 0);
    return l;
}

struct conn {
    uint16_t port;
    int err;
    tide_stream *s;
};

static void *connect_body(void *arg)
{
    struct conn *c = arg;
    c->err = tide_open_connection("127.0.0.1", c->port, 0, &c->s);
    return NULL;
}

static void *hung_connect_body(void *arg)
{
    struct conn *c = arg;
    long fds = harness_fd_count();
    size_t tasks = tide_all_tasks(NULL, NULL, 0);

    /* A timeout scope: the call returns -ETIMEDOUT once the scope ends,
     * with its attempt cancelled, awaited and its socket closed. */
    tide_timeout *t = tide_timeout_begin(0.05);
    CHECK_NOT_NULL(t);
    int err = tide_open_connection("127.0.0.1", c->port, 0, &c->s);
    CHECK_ERR(tide_timeout_end(t, err), -ETIMEDOUT);
    CHECK_NULL(c->s);
    CHECK_EQ(harness_fd_count(), fds);
    CHECK_EQ(tide_all_tasks(NULL, NULL, 0), tasks);
    /* A cancel from another task (tide_wait_for on a task of its own). */
    tide_future *f = tide_create_task(NULL, connect_body, c);
    CHECK_NOT_NULL(f);
    /* The body swallows the cancel (returns normally): its result wins. */
    CHECK_ERR(tide_wait_for(f, 0.05, NULL), 0);
    CHECK_ERR(c->err, -ECANCELED);
    CHECK_NULL(c->s);
    tide_future_release(f);
    CHECK_EQ(harness_fd_count(), fds);
    CHECK_EQ(tide_all_tasks(NULL, NULL, 0), tasks);
    return NULL;
}

/* tide/stream.h's open_connection under a timeout scope and a cancel,
 * while the connect hangs: a clear error, nothing outlives the call. */
TEST(open_connection_cancelled_while_the_connect_hangs)
{
    static struct conn c;
    int filler;
    int l = full_listener(&c.port, &filler);

    run_main(hung_connect_body, &c);
    close(filler);
    close(l);
    LEAK_GATE();
}

/* Loop close while open_connection waits on a hung connect. */
TEST(open_connection_loop_close_while_the_connect_hangs)
{
    static struct conn c;
    int filler;
    int l = full_listener(&c.port, &filler);
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    c.err = 99;
    tide_future *t = tide_create_task(loop, connect_body, &c);
    CHECK_NOT_NULL(t);
    for (int i = 0; i < 5; i++)
        CHECK(tide_loop_run_once(loop, 0.002) >= 0);
    CHECK(!tide_future_done(t));
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_ERR(c.err, -ECANCELED);
    CHECK_NULL(c.s);
    tide_future_release(t);
    close(filler);
    close(l);
    LEAK_GATE();
}

static void *emfile_connect_body(void *arg)
{
    struct conn *c = arg;
    struct rlimit old;
    int fds[64];

    lower_fd_limit(&old);
    int n = exhaust_fds(fds, 64);
    CHECK_ERR(tide_open_connection("127.0.0.1", c->port, 0, &c->s), -EMFILE);
    CHECK_NULL(c->s);
    while (n > 0)
        close(fds[--n]);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    CHECK_ERR(tide_open_connection("127.0.0.1", c->port, 0, &c->s), 0);
    CHECK_EQ(tide_stream_close(c->s, 1), 0);
    c->s = NULL;
    return NULL;
}

/* Out of fds, open_connection is -EMFILE (the socket's error), leaks
 * nothing, and connects once fds are free. */
TEST(open_connection_out_of_fds_is_emfile)
{
    static struct conn c;
    int l = tcp_listener(8, &c.port);

    run_main(emfile_connect_body, &c);
    close(l);
    LEAK_GATE();
}

static void *enomem_connect_body(void *arg)
{
    struct conn *c = arg;
    int ok = 0;

    for (long n = 1; n < 40; n++) {
        tide__alloc_fail_after(n);
        int err = tide_open_connection("127.0.0.1", c->port, 0, &c->s);
        tide__alloc_fail_after(0);
        if (err == 0) {
            CHECK_EQ(tide_stream_close(c->s, 1), 0);
            c->s = NULL;
            ok++;
        } else {
            CHECK_ERR(err, -ENOMEM);
            CHECK_NULL(c->s);
        }
    }
    CHECK(ok > 0);
    return NULL;
}

/* Every allocation of open_connection failing in turn: -ENOMEM or a
 * connection, never a leak. */
TEST(open_connection_enomem_at_each_allocation)
{
    static struct conn c;
    int l = tcp_listener(64, &c.port);

    run_main(enomem_connect_body, &c);
    close(l);
    LEAK_GATE();
}

/* ---- signals across threads (ThreadSanitizer) --------------------------- */

static atomic_bool storm_on;
static atomic_long storm_sent;

static void *storm(void *arg)
{
    (void)arg;
    while (atomic_load(&storm_on)) {
        kill(getpid(), SIGUSR1); /* the kernel picks the thread */
        atomic_fetch_add(&storm_sent, 1);
        usleep(50);
    }
    return NULL;
}

/* A thread that opens a loop, takes SIGUSR1 (and SIGUSR2 now and then),
 * runs it a little and closes it, over and over. */
static void *loop_churn(void *arg)
{
    atomic_int *hits = arg;
    for (int round = 0; atomic_load(&storm_on) && round < 400; round++) {
        tide_loop *loop = tide_loop_new();
        CHECK_NOT_NULL(loop);
        CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_cb, hits), 0);
        if (round % 3 == 0)
            CHECK_EQ(tide_add_signal_handler(loop, SIGUSR2, count_cb, hits),
                     0);
        for (int i = 0; i < 3; i++)
            CHECK(tide_loop_run_once(loop, 0.0005) >= 0);
        if (round % 2)
            CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR1), 1);
        CHECK_EQ(tide_loop_close(loop), 0); /* with its handlers */
    }
    return NULL;
}

/* tide/signal.h: every loop with a handler gets every delivery, whichever
 * thread the kernel picks; a loop that closes leaves the registry before
 * its backend goes. Loops in three threads come and go while signals
 * arrive every 50 us: no use after free (ASan, TSan), no lost wake-up of
 * the loop that stays, the dispositions given back at the end. */
TEST(loops_in_threads_come_and_go_while_signals_arrive)
{
    struct sigaction before1, before2;
    CHECK_EQ(sigaction(SIGUSR1, NULL, &before1), 0);
    CHECK_EQ(sigaction(SIGUSR2, NULL, &before2), 0);
    atomic_int stay_hits = 0, churn_hits[3] = {0, 0, 0};
    tide_loop *stay = tide_loop_new();
    CHECK_NOT_NULL(stay);
    /* Held throughout, so SIGUSR1 never falls back to its default (which
     * ends the process) while the storm runs. */
    CHECK_EQ(tide_add_signal_handler(stay, SIGUSR1, count_cb, &stay_hits), 0);
    atomic_store(&storm_on, true);
    pthread_t st, th[3];
    CHECK_EQ(pthread_create(&st, NULL, storm, NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, loop_churn, &churn_hits[i]), 0);
    double end = harness_now() + 0.4;
    while (harness_now() < end)
        CHECK(tide_loop_run_once(stay, 0.001) >= 0);
    atomic_store(&storm_on, false);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    CHECK_EQ(pthread_join(st, NULL), 0);
    usleep(10000); /* the last signals sent are delivered */
    iterate(stay);
    CHECK(atomic_load(&storm_sent) > 10);
    CHECK(atomic_load(&stay_hits) > 0);
    CHECK_EQ(tide_remove_signal_handler(stay, SIGUSR1), 1);
    CHECK_EQ(tide_loop_close(stay), 0);
    struct sigaction after1, after2;
    CHECK_EQ(sigaction(SIGUSR1, NULL, &after1), 0);
    CHECK_EQ(sigaction(SIGUSR2, NULL, &after2), 0);
    CHECK(after1.sa_handler == before1.sa_handler);
    CHECK(after2.sa_handler == before2.sa_handler);
    LEAK_GATE();
}

/* ---- Happy Eyeballs' order ---------------------------------------------- */

/* A TCP listener on ::1:0 (its port in *port), or -1 without IPv6. */
static int tcp6_listener(uint16_t *port)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t len = sizeof a;
    int l = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (l < 0)
        return -1;
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4) < 0) {
        close(l);
        return -1;
    }
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin6_port);
    return l;
}

struct eyeballs {
    struct addrinfo ai[3];
    int family; /* of the address connected to */
};

static void *eyeballs_body(void *arg)
{
    struct eyeballs *e = arg;
    tide_stream *s;
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;

    CHECK_ERR(tide_open_connection_addrinfo(e->ai, 0.05, 0, &s), 0);
    CHECK_EQ(tide_stream_peername(s, (struct sockaddr *)&peer, &len), 0);
    e->family = peer.ss_family;
    CHECK_EQ(tide_stream_close(s, 1), 0);
    return NULL;
}

/* tide/stream.h, RFC 8305: the addresses are tried "with the families
 * interleaved". Resolved as [silent IPv4, good IPv4, good IPv6], the
 * order is IPv4 (silent), IPv6, IPv4: once the first attempt's delay is
 * up, the IPv6 address is tried next, and wins. In list order the good
 * IPv4 one would. */
TEST(happy_eyeballs_interleaves_the_families)
{
    static struct eyeballs e;
    uint16_t p6, p4, ps;
    int filler;
    int l6 = tcp6_listener(&p6);

    if (l6 < 0)
        SKIP("no ::1 here");
    int silent = full_listener(&ps, &filler);
    int l4 = tcp_listener(4, &p4);
    struct sockaddr_in a4[2] = {
        {.sin_family = AF_INET,
         .sin_port = htons(ps),
         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
        {.sin_family = AF_INET,
         .sin_port = htons(p4),
         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
    };
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                              .sin6_port = htons(p6),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    for (int i = 0; i < 3; i++) {
        e.ai[i] =
            (struct addrinfo){.ai_family = i < 2 ? AF_INET : AF_INET6,
                              .ai_socktype = SOCK_STREAM,
                              .ai_addr = i < 2 ? (struct sockaddr *)&a4[i]
                                               : (struct sockaddr *)&a6,
                              .ai_addrlen = i < 2 ? sizeof a4[i] : sizeof a6,
                              .ai_next = i < 2 ? &e.ai[i + 1] : NULL};
    }
    run_main(eyeballs_body, &e);
    CHECK_EQ(e.family, AF_INET6);
    close(l6);
    close(l4);
    close(silent);
    close(filler);
    LEAK_GATE();
}

/* ---- UDP: an address of the other family ----------------------------------
 */

static void *other_family_body(void *arg)
{
    bool v6 = *(bool *)arg;
    char buf[8];
    tide_udp *rx = tide_udp_open("127.0.0.1", 0, NULL, 0, NULL);
    CHECK_NOT_NULL(rx);
    struct sockaddr_in a4;
    socklen_t alen = sizeof a4;
    CHECK_EQ(tide_udp_sockname(rx, (struct sockaddr *)&a4, &alen), 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                              .sin6_port = a4.sin_port,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    /* An IPv4 endpoint, an IPv6 address. */
    tide_udp *tx4 = tide_udp_open("127.0.0.1", 0, NULL, 0, NULL);
    CHECK_NOT_NULL(tx4);
    CHECK_ERR(tide_udp_sendto(tx4, "4", 1, (struct sockaddr *)&a6, sizeof a6),
              -EINVAL);
    CHECK_EQ(tide_udp_close(tx4), 0);
    /* IPv6 endpoints (any address, and ::1), an IPv4 address. */
    for (int i = 0; v6 && i < 2; i++) {
        tide_udp *tx6 = tide_udp_open(i ? "::1" : "::", 0, NULL, 0, NULL);
        CHECK_NOT_NULL(tx6);
        CHECK_ERR(tide_udp_sendto(tx6, "6", 1, (struct sockaddr *)&a4,
                                  sizeof a4),
                  -EINVAL);
        CHECK_EQ(tide_udp_close(tx6), 0);
    }
    /* Nothing was sent: the next datagram is this one. */
    tide_udp *ok = tide_udp_open("127.0.0.1", 0, NULL, 0, NULL);
    CHECK_NOT_NULL(ok);
    CHECK_EQ(tide_udp_sendto(ok, "ok", 2, (struct sockaddr *)&a4, sizeof a4),
             2);
    CHECK_EQ(tide_udp_recv(rx, buf, sizeof buf), 2);
    CHECK_EQ(memcmp(buf, "ok", 2), 0);
    CHECK_EQ(tide_udp_close(ok), 0);
    CHECK_EQ(tide_udp_close(rx), 0);
    return NULL;
}

/* tide/udp.h, tide_udp_sendto: "-EINVAL also for ... an address of the
 * other family". The kernel alone says -EAFNOSUPPORT on an IPv4 socket,
 * -ENETUNREACH on one bound to ::1, and on one bound to :: (dual stack)
 * sends the datagram. */
TEST(udp_sendto_an_address_of_the_other_family_is_einval)
{
    static bool v6;
    int l6;
    uint16_t p;

    v6 = (l6 = tcp6_listener(&p)) >= 0;
    if (v6)
        close(l6);
    run_main(other_family_body, &v6);
    LEAK_GATE();
}

/* ---- file streams ----------------------------------------------------------
 */

static void *dev_full_body(void *arg)
{
    static char big[80 * 1024];
    tide_stream *s = NULL;
    (void)arg;

    /* tide_file_write: -errno when nothing was written. */
    int fd = tide_file_open("/dev/full", O_WRONLY, 0);
    if (fd == -ENOENT || fd == -EACCES)
        return IPTR(1);
    CHECK(fd >= 0);
    CHECK_ERR(tide_file_write(fd, "x", 1), -ENOSPC);
    CHECK_ERR(tide_file_close(fd), 0);
    /* tide/file.h: "A write error sticks, as a send error does": drain
     * reports it, later writes and drains too, close returns it and
     * closes the fd all the same. */
    CHECK_ERR(tide_file_stream_open("/dev/full", O_RDWR, 0, 0, &s), 0);
    CHECK_EQ(tide_stream_write(s, big, sizeof big), 0); /* over high */
    CHECK_ERR(tide_stream_drain(s), -ENOSPC);
    CHECK_ERR(tide_stream_write(s, "y", 1), -ENOSPC);
    CHECK_ERR(tide_stream_drain(s), -ENOSPC);
    /* Reading goes on: /dev/full reads as zeros. */
    char z[4] = {1, 1, 1, 1};
    CHECK_ERR(tide_stream_readexactly(s, z, sizeof z, NULL), 0);
    CHECK(z[0] == 0 && z[3] == 0);
    CHECK_ERR(tide_stream_close(s, 1), -ENOSPC);
    return NULL;
}

TEST(a_file_stream_s_write_error_sticks)
{
    long fds = harness_fd_count();
    if (harness_compact())
        SKIP("TIDE_COMPACT=1: the body shares its frames");
    void *res = NULL;
    CHECK_ERR(tide_run(dev_full_body, NULL, &res), 0);
    if (res)
        SKIP("no /dev/full");
    CHECK_EQ(harness_fd_count(), fds);
    LEAK_GATE();
}

/* tide/file.h: a file stream's close "outside a task ... nothing can be
 * written and what is queued is dropped: -ETIMEDOUT"; the fd is closed
 * and nothing leaks. */
TEST(a_file_stream_closed_outside_a_task_drops_its_queue)
{
    char name[] = "/tmp/tide-h3-XXXXXX";
    int fd = mkstemp(name);
    CHECK(fd >= 0);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    tide_set_event_loop(loop); /* the stream's, outside a task */
    tide_stream *s = tide_file_stream_new(fd, 0);
    CHECK_NOT_NULL(s);
    CHECK_EQ(tide_stream_write(s, "lost", 4), 0);
    CHECK_ERR(tide_stream_close(s, 1), -ETIMEDOUT);
    CHECK_ERR(fcntl(fd, F_GETFD), -1); /* closed */
    tide_set_event_loop(NULL);
    CHECK_EQ(tide_loop_close(loop), 0);
    struct stat st;
    CHECK_EQ(stat(name, &st), 0);
    CHECK_EQ(st.st_size, 0);
    CHECK_EQ(unlink(name), 0);
    LEAK_GATE();
}

struct drainer {
    tide_stream *s;
    char *data;
    size_t n;
    int err;
};

static void *write_and_drain(void *arg)
{
    struct drainer *d = arg;

    CHECK_EQ(tide_stream_write(d->s, d->data, d->n), 0);
    d->err = tide_stream_drain(d->s);
    return NULL;
}

#define DRAINERS 3
#define DRAIN_BYTES (100 * 1024)

static int victim; /* the drainer cancelled */

static void *many_drains_body(void *arg)
{
    const char *name = arg;
    static char data[DRAINERS][DRAIN_BYTES];
    static char back[DRAINERS * DRAIN_BYTES + 1];
    struct drainer d[DRAINERS];
    tide_future *t[DRAINERS];
    tide_stream *s;

    CHECK_ERR(tide_file_stream_open(name, O_RDWR | O_TRUNC, 0, 0, &s), 0);
    for (int i = 0; i < DRAINERS; i++) {
        for (size_t k = 0; k < DRAIN_BYTES; k++)
            data[i][k] = (char)('a' + i + (k % 7));
        d[i] = (struct drainer){s, data[i], DRAIN_BYTES, 99};
        t[i] = tide_create_task(NULL, write_and_drain, &d[i]);
        CHECK_NOT_NULL(t[i]);
    }
    CHECK_ERR(tide_sleep(0), 0); /* all three write and drain */
    CHECK(tide_future_cancel(t[victim]));
    for (int i = 0; i < DRAINERS; i++) {
        CHECK_ERR(tide_await(t[i], NULL), 0); /* bodies return normally */
        if (i != victim)
            CHECK_ERR(d[i].err, 0);
        tide_future_release(t[i]);
    }
    CHECK(d[victim].err == 0 || d[victim].err == -ECANCELED);
    CHECK_ERR(tide_stream_close(s, 5), 0);
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    size_t got = 0;
    ssize_t k;
    while ((k = read(fd, back + got, sizeof back - got)) > 0)
        got += (size_t)k;
    close(fd);
    CHECK_EQ(got, DRAINERS * DRAIN_BYTES); /* nothing lost, nothing twice */
    for (int i = 0; i < DRAINERS; i++)
        CHECK(memcmp(back + (size_t)i * DRAIN_BYTES, data[i], DRAIN_BYTES) ==
              0);
    return NULL;
}

/* HAZARDS B29 on a file stream: three tasks write and drain at once, one
 * of them is cancelled meanwhile; the file ends up with every byte, in
 * the order written, once. */
TEST(concurrent_drains_of_a_file_stream_one_cancelled)
{
    char name[] = "/tmp/tide-h3d-XXXXXX";
    int fd = mkstemp(name);
    CHECK(fd >= 0);
    close(fd);
    for (victim = 0; victim < DRAINERS; victim++)
        run_main(many_drains_body, name);
    CHECK_EQ(unlink(name), 0);
    LEAK_GATE();
}

/* ---- ENOMEM at every allocation: listdir and a file stream ----------------
 */

static void *enomem_files_body(void *arg)
{
    const char *dirname = arg;
    char file[128];
    int listed = 0, streamed = 0;

    snprintf(file, sizeof file, "%s/%s", dirname, "stream");
    for (long n = 1; n < 40; n++) {
        tide_dirent *ents = NULL;
        tide__alloc_fail_after(n);
        ssize_t k = tide_file_listdir(dirname, &ents);
        tide__alloc_fail_after(0);
        if (k >= 0) {
            CHECK_EQ(k, 41);
            CHECK_NULL(ents[k].name);
            tide_file_listdir_free(ents);
            listed++;
        } else {
            CHECK_ERR(k, -ENOMEM);
            CHECK_NULL(ents);
        }
        /* A file stream made, written, drained, read and closed with the
         * n-th allocation failing: -ENOMEM somewhere or all of it, never
         * a leak. */
        tide_stream *s = NULL;
        tide__alloc_fail_after(n);
        int err = tide_file_stream_open(file, O_RDWR | O_CREAT | O_TRUNC, 0600,
                                        0, &s);
        if (err == 0) {
            static char big[70 * 1024];
            memset(big, 'q', sizeof big);
            big[sizeof big - 1] = '\n';
            err = tide_stream_write(s, big, sizeof big);
            if (!err)
                err = tide_stream_drain(s);
            int cerr = tide_stream_close(s, 5);
            if (!err)
                err = cerr;
        }
        tide__alloc_fail_after(0);
        if (err == 0)
            streamed++;
        else
            CHECK_ERR(err, -ENOMEM);
    }
    CHECK(listed > 0 && streamed > 0);
    return NULL;
}

TEST(listdir_and_file_streams_at_every_failed_allocation)
{
    char dirname[] = "/tmp/tide-h3e-XXXXXX";
    char name[256];
    CHECK_NOT_NULL(mkdtemp(dirname));
    for (int i = 0; i < 40; i++) { /* long names: the text grows too */
        snprintf(name, sizeof name, "%s/%03d-%0200d", dirname, i, i);
        int fd = open(name, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        close(fd);
    }
    snprintf(name, sizeof name, "%s/stream", dirname);
    int fd = open(name, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    close(fd);
    run_main(enomem_files_body, dirname);
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "%s/%03d-%0200d", dirname, i, i);
        CHECK_EQ(unlink(name), 0);
    }
    snprintf(name, sizeof name, "%s/stream", dirname);
    CHECK_EQ(unlink(name), 0);
    CHECK_EQ(rmdir(dirname), 0);
    LEAK_GATE();
}

/* ---- a file stream's reads cancelled at every point -----------------------
 */

#define LINES 3000

static void *cancelled_reads_body(void *arg)
{
    const char *name = arg;
    tide_stream *s;
    int timeouts = 0;
    bool again = false; /* the last read timed out */

    CHECK_ERR(tide_file_stream_open(name, O_RDONLY, 0, 256, &s), 0);
    for (int i = 0; i < LINES;) {
        const void *line;
        /* A scope that expires on the next iteration, every third line:
         * the read is cancelled queued, running or not at all. */
        tide_timeout *t = i % 3 == 0 && !again ? tide_timeout_begin(0) : NULL;
        ssize_t n = tide_stream_readline(s, &line);
        if (t)
            n = tide_timeout_end(t, (int)n);
        again = n == -ETIMEDOUT;
        if (again) {
            timeouts++;
            continue; /* nothing lost: the same line comes again */
        }
        char want[32];
        int w = snprintf(want, sizeof want, "line %d\n", i);
        CHECK_EQ(n, w);
        CHECK(memcmp(line, want, (size_t)w) == 0);
        i++;
    }
    const void *line;
    CHECK_EQ(tide_stream_readline(s, &line), 0); /* the end */
    CHECK(tide_stream_at_eof(s));
    CHECK_ERR(tide_stream_close(s, 1), 0);
    /* On the pool a running read is abandoned at once; on io_uring it is
     * waited for, and a cached one always wins the race. */
    CHECK(timeouts > 0 || strcmp(tide_loop_backend(NULL), "io_uring") == 0);
    return NULL;
}

/* tide/stream.h: "a cancelled read never loses data that arrived"; on a
 * file stream whose reads all go to the pool (tide/file.h: a read
 * abandoned while running "is dropped"): every line once, in order. On
 * io_uring, again with the reads on the ring. */
TEST(a_file_stream_s_pool_reads_cancelled_lose_and_repeat_nothing)
{
    char name[] = "/tmp/tide-h3r-XXXXXX";
    int fd = mkstemp(name);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CHECK_NOT_NULL(f);
    for (int i = 0; i < LINES; i++)
        fprintf(f, "line %d\n", i);
    CHECK_EQ(fclose(f), 0);
    tide__file_no_inline = true;
    tide__file_no_ring = true;
    run_main(cancelled_reads_body, name);
    tide__file_no_ring = false;
    run_main(cancelled_reads_body, name);
    tide__file_no_inline = false;
    CHECK_EQ(unlink(name), 0);
    LEAK_GATE();
}

/* ---- open_connection from a compact task ----------------------------------
 */

static void *compact_connect_body(void *arg)
{
    uint16_t port = *(uint16_t *)arg;
    tide_stream *s = NULL; /* on the compact stack, written on resume */
    char host[16] = "localhost";

    CHECK_ERR(tide_open_connection(host, port, 0, &s), 0);
    CHECK_NOT_NULL(s);
    CHECK_EQ(tide_stream_write(s, "hi", 2), 0);
    CHECK_ERR(tide_stream_close(s, 1), 0);
    return NULL;
}

/* tide/io.h: compact tasks may make these calls, their buffers on their
 * own stack; open_connection by name suspends in the lookup (a pool job)
 * and in the connect attempts (tasks of their own). */
TEST(a_compact_task_opens_a_connection_by_name)
{
    static uint16_t port;
    tide_task_options opt = {.compact = true};
    int l = tcp_listener(4, &port);
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    tide_future *t =
        tide_create_task_ex(loop, compact_connect_body, &port, &opt);
    CHECK_NOT_NULL(t);
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(a >= 0);
    char buf[4];
    CHECK_EQ(read(a, buf, sizeof buf), 2);
    close(a);
    close(l);
    LEAK_GATE();
}
