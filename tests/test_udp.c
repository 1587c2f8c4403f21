/* UDP endpoints (include/tide/udp.h).
 *
 * Connected and unconnected endpoints over IPv4 and IPv6 (IPv6 skips if
 * ::1 is unavailable); a datagram longer than the buffer (-EMSGSIZE,
 * consumed) and the peek that sizes it first; zero-length datagrams;
 * -ECONNREFUSED on a connected endpoint whose peer port is closed; many
 * datagrams in flight both ways; cancellation at every suspension (a
 * cancel, a timeout scope, wait_for) and the race where the datagram
 * came anyway; close from another task while tasks wait (-EBADF); bad
 * input; the syscall seam's faults (EAGAIN, EINTR, ENOMEM on recv and
 * send) and a failed op slot. Every test runs its bodies twice: as
 * plain tasks and as compact ones (buffers on the shared stack), so its
 * state lives in statics, never in a body's frame shared with another
 * task. Loopback only.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"
#include "base/sys.h"
#include "core/loop.h"

#include <tide/udp.h>

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

static tide_loop *new_loop(bool compact)
{
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_compact_tasks(loop, compact), 0);
    return loop;
}

static tide_future *spawn(tide_loop *loop, tide_fn fn, void *arg)
{
    tide_future *t = tide_create_task(loop, fn, arg);

    CHECK_NOT_NULL(t);
    return t;
}

/* Run body as a task on a new loop (compact tasks or not) to its end,
 * close the loop, check nothing is left in flight; the body's error. */
static int run_main(tide_fn body, void *arg, bool compact)
{
    tide_loop *loop = new_loop(compact);
    tide_future *t = spawn(loop, body, arg);
    int err = tide_run_until_complete(loop, t, NULL);

    tide_future_release(t);
    CHECK_EQ(loop->ops_live, 0);
    CHECK_EQ(loop->backend.inflight, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    return err;
}

#define EACH_MODE for (int compact = 0; compact < 2; compact++)

/* A test that runs body as plain tasks, then as compact ones. */
#define BODY_TEST(name, body)                                 \
    TEST(name)                                                \
    {                                                         \
        EACH_MODE CHECK_EQ(run_main(body, NULL, compact), 0); \
        LEAK_GATE();                                          \
    }

/* Run n iterations of loop. */
static void steps(tide_loop *loop, int n)
{
    for (int i = 0; i < n; i++)
        run_once(loop);
}

static void *result_of(ssize_t r)
{
    return r < 0 ? tide_fail((int)r) : IPTR(r);
}

/* An unconnected endpoint bound to host, port picked; its address. */
static tide_udp *bound(const char *host, struct sockaddr_storage *addr,
                       socklen_t *len)
{
    tide_udp *u = tide_udp_open(host, 0, NULL, 0, NULL);

    CHECK_NOT_NULL(u);
    *len = sizeof *addr;
    CHECK_EQ(tide_udp_sockname(u, (struct sockaddr *)addr, len), 0);
    return u;
}

static uint16_t port_of(const struct sockaddr_storage *a)
{
    return ntohs(a->ss_family == AF_INET
                     ? ((const struct sockaddr_in *)a)->sin_port
                     : ((const struct sockaddr_in6 *)a)->sin6_port);
}

/* The endpoints most tests use (statics: compact tasks' frames are not
 * shared), and srv's address. */
static tide_udp *srv, *cli;
static struct sockaddr_storage srv_addr;
static socklen_t srv_len;

/* srv: unconnected on 127.0.0.1; cli: connected to it. */
static void open_pair(void)
{
    srv = bound("127.0.0.1", &srv_addr, &srv_len);
    cli = tide_udp_open(NULL, 0, "127.0.0.1", port_of(&srv_addr), NULL);
    CHECK_NOT_NULL(cli);
}

static void close_pair(void)
{
    CHECK_EQ(tide_udp_close(cli), 0);
    CHECK_EQ(tide_udp_close(srv), 0);
}

/* A port on host that nobody listens on now. */
static uint16_t closed_port(const char *host)
{
    struct sockaddr_storage a;
    socklen_t len;
    tide_udp *u = bound(host, &a, &len);

    CHECK_EQ(tide_udp_close(u), 0);
    return port_of(&a);
}

static bool have_ipv6_loopback(void)
{
    tide_udp *u = tide_udp_open("::1", 0, NULL, 0, NULL);

    if (!u)
        return false;
    CHECK_EQ(tide_udp_close(u), 0);
    return true;
}

/* ---- connected and unconnected, IPv4 and IPv6 ------------------------- */

static const char *host; /* "127.0.0.1" or "::1" */

/* The unconnected side: answer one datagram to its sender, upper-case. */
static void *echo_once(void *arg)
{
    char buf[64];
    struct sockaddr_storage from;
    socklen_t flen = sizeof from;

    (void)arg;
    ssize_t n = tide_udp_recvfrom(srv, buf, sizeof buf,
                                  (struct sockaddr *)&from, &flen);
    if (n < 0)
        return tide_fail((int)n);
    for (ssize_t i = 0; i < n; i++)
        buf[i] = (char)(buf[i] - 'a' + 'A');
    return result_of(
        tide_udp_sendto(srv, buf, (size_t)n, (struct sockaddr *)&from, flen));
}

static void *roundtrip_body(void *arg)
{
    char buf[64];
    struct sockaddr_storage peer, other;
    socklen_t plen = sizeof peer;

    (void)arg;
    srv = bound(host, &srv_addr, &srv_len);
    cli = tide_udp_open(NULL, 0, host, port_of(&srv_addr), NULL);
    CHECK_NOT_NULL(cli);
    CHECK_EQ(tide_udp_peername(cli, (struct sockaddr *)&peer, &plen), 0);
    CHECK_EQ(plen, srv_len);
    CHECK(memcmp(&peer, &srv_addr, plen) == 0);
    plen = sizeof peer;
    CHECK_ERR(tide_udp_peername(srv, (struct sockaddr *)&peer, &plen),
              -ENOTCONN);
    /* Unconnected: a send needs an address. */
    CHECK_ERR(tide_udp_send(srv, "x", 1), -EDESTADDRREQ);

    tide_future *echo = spawn(NULL, echo_once, NULL);
    CHECK_EQ(tide_sleep(0), 0); /* the echo waits first */
    CHECK_EQ(tide_udp_send(cli, "hello", 5), 5);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(tide_udp_recv(cli, buf, sizeof buf), 5);
    CHECK(memcmp(buf, "HELLO", 5) == 0);
    CHECK_EQ(tide_await(echo, NULL), 0);
    tide_future_release(echo);

    /* Connected: sendto the peer itself is a send; any other is refused. */
    echo = spawn(NULL, echo_once, NULL);
    CHECK_EQ(tide_udp_sendto(cli, "abc", 3, (struct sockaddr *)&srv_addr,
                             srv_len),
             3);
    CHECK_EQ(tide_udp_recv(cli, buf, sizeof buf), 3);
    CHECK(memcmp(buf, "ABC", 3) == 0);
    CHECK_EQ(tide_await(echo, NULL), 0);
    tide_future_release(echo);
    other = srv_addr;
    if (other.ss_family == AF_INET)
        ((struct sockaddr_in *)&other)->sin_port ^= htons(1);
    else
        ((struct sockaddr_in6 *)&other)->sin6_port ^= htons(1);
    CHECK_ERR(tide_udp_sendto(cli, "z", 1, (struct sockaddr *)&other, srv_len),
              -EISCONN);
    CHECK_ERR(tide_udp_sendto(cli, "z", 1, (struct sockaddr *)&srv_addr, 2),
              -EINVAL);

    /* A connected endpoint receives only its peer's datagrams. */
    struct sockaddr_storage cli_addr;
    socklen_t clen = sizeof cli_addr;
    CHECK_EQ(tide_udp_sockname(cli, (struct sockaddr *)&cli_addr, &clen), 0);
    tide_udp *stranger = tide_udp_open(host, 0, NULL, 0, NULL);
    CHECK_NOT_NULL(stranger);
    CHECK_EQ(tide_udp_sendto(stranger, "no", 2, (struct sockaddr *)&cli_addr,
                             clen),
             2);
    CHECK_EQ(tide_udp_sendto(srv, "yes", 3, (struct sockaddr *)&cli_addr,
                             clen),
             3);
    CHECK_EQ(tide_udp_recv(cli, buf, sizeof buf), 3);
    CHECK(memcmp(buf, "yes", 3) == 0);
    CHECK_EQ(tide_udp_close(stranger), 0);
    close_pair();
    return NULL;
}

TEST(ipv4_connected_and_unconnected)
{
    host = "127.0.0.1";
    EACH_MODE CHECK_EQ(run_main(roundtrip_body, NULL, compact), 0);
    LEAK_GATE();
}

TEST(ipv6_connected_and_unconnected)
{
    if (!have_ipv6_loopback())
        SKIP("no ::1 here");
    host = "::1";
    EACH_MODE CHECK_EQ(run_main(roundtrip_body, NULL, compact), 0);
    LEAK_GATE();
}

/* Both endpoints from socket addresses; the system binds the client. */
static void *from_addrs_body(void *arg)
{
    struct sockaddr_in any = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[8];

    (void)arg;
    srv =
        tide_udp_open_addr((struct sockaddr *)&any, sizeof any, NULL, 0, NULL);
    CHECK_NOT_NULL(srv);
    srv_len = sizeof srv_addr;
    CHECK_EQ(tide_udp_sockname(srv, (struct sockaddr *)&srv_addr, &srv_len),
             0);
    tide_udp_options v4 = {.family = AF_INET};
    cli = tide_udp_open_addr(NULL, 0, NULL, 0, &v4); /* neither address */
    CHECK_NOT_NULL(cli);
    CHECK_EQ(tide_udp_sendto(cli, "to", 2, (struct sockaddr *)&srv_addr,
                             srv_len),
             2);
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    CHECK_EQ(tide_udp_recvfrom(srv, buf, sizeof buf, (struct sockaddr *)&from,
                               &flen),
             2);
    CHECK_EQ(flen, sizeof from);
    CHECK_EQ(from.sin_family, AF_INET);
    CHECK(from.sin_port != 0);
    close_pair();
    return NULL;
}

BODY_TEST(open_from_socket_addresses, from_addrs_body)

/* ---- truncation and zero-length datagrams ----------------------------- */

static void *truncation_body(void *arg)
{
    char big[100], small[10], buf[128];
    struct sockaddr_in from;
    socklen_t flen = sizeof from;

    (void)arg;
    open_pair();
    for (int i = 0; i < 100; i++)
        big[i] = (char)('a' + i % 26);
    CHECK_EQ(tide_udp_send(cli, big, sizeof big), 100);
    CHECK_EQ(tide_udp_send(cli, "next", 4), 4);
    CHECK_EQ(tide_udp_send(cli, big, sizeof big), 100);
    CHECK_EQ(tide_udp_send(cli, big, 50), 50);

    /* Too long: -EMSGSIZE, the first bytes and the sender given, and the
     * datagram gone. */
    memset(small, 0, sizeof small);
    CHECK_ERR(tide_udp_recvfrom(srv, small, sizeof small,
                                (struct sockaddr *)&from, &flen),
              -EMSGSIZE);
    CHECK(memcmp(small, big, sizeof small) == 0);
    CHECK_EQ(flen, sizeof from);
    CHECK_EQ(from.sin_family, AF_INET);
    CHECK_EQ(tide_udp_recv(srv, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "next", 4) == 0);

    /* Sized first: the peek takes nothing, however often. */
    CHECK_EQ(tide_udp_peek_size(srv), 100);
    CHECK_EQ(tide_udp_peek_size(srv), 100);
    CHECK_EQ(tide_udp_recv(srv, buf, 100), 100); /* exactly fits */
    CHECK(memcmp(buf, big, 100) == 0);
    /* A zero-length buffer takes a datagram too: reported, not cut. */
    CHECK_ERR(tide_udp_recv(srv, NULL, 0), -EMSGSIZE);
    CHECK_EQ(tide_udp_send(cli, "k", 1), 1);
    CHECK_EQ(tide_udp_peek_size(srv), 1);
    CHECK_EQ(tide_udp_recv(srv, buf, 1), 1);
    close_pair();
    return NULL;
}

BODY_TEST(longer_than_the_buffer_is_emsgsize, truncation_body)

static void *zero_length_body(void *arg)
{
    char buf[8];
    struct sockaddr_in from;
    socklen_t flen = sizeof from;

    (void)arg;
    open_pair();
    CHECK_EQ(tide_udp_send(cli, NULL, 0), 0);
    CHECK_EQ(tide_udp_sendto(cli, "", 0, (struct sockaddr *)&srv_addr,
                             srv_len),
             0);
    CHECK_EQ(tide_udp_send(cli, "after", 5), 5);
    CHECK_EQ(tide_udp_peek_size(srv), 0);
    CHECK_EQ(tide_udp_recvfrom(srv, buf, sizeof buf, (struct sockaddr *)&from,
                               &flen),
             0);
    CHECK_EQ(from.sin_family, AF_INET);
    CHECK_EQ(tide_udp_recv(srv, NULL, 0), 0);
    CHECK_EQ(tide_udp_recv(srv, buf, sizeof buf), 5);
    /* An empty datagram back to the client. */
    struct sockaddr_storage ca;
    socklen_t clen = sizeof ca;
    CHECK_EQ(tide_udp_sockname(cli, (struct sockaddr *)&ca, &clen), 0);
    CHECK_EQ(tide_udp_sendto(srv, NULL, 0, (struct sockaddr *)&ca, clen), 0);
    CHECK_EQ(tide_udp_recv(cli, buf, sizeof buf), 0);
    close_pair();
    return NULL;
}

BODY_TEST(zero_length_datagrams, zero_length_body)

/* ---- ICMP errors on a connected endpoint ------------------------------ */

static void *refused_body(void *arg)
{
    char buf[8];
    const char *h = arg;

    cli = tide_udp_open(NULL, 0, h, closed_port(h), NULL);
    CHECK_NOT_NULL(cli);
    CHECK_EQ(tide_udp_send(cli, "anyone?", 7), 7);
    /* The port-unreachable reply wakes the receive, which reports it. */
    CHECK_ERR(tide_udp_recv(cli, buf, sizeof buf), -ECONNREFUSED);
    /* Reported once: the next send goes out, and its refusal is seen by
     * the peek. */
    CHECK_EQ(tide_udp_send(cli, "again", 5), 5);
    CHECK_ERR(tide_udp_peek_size(cli), -ECONNREFUSED);
    CHECK_EQ(tide_udp_close(cli), 0);
    return NULL;
}

TEST(connected_to_a_closed_port_is_econnrefused)
{
    EACH_MODE CHECK_EQ(run_main(refused_body, "127.0.0.1", compact), 0);
    if (have_ipv6_loopback())
        EACH_MODE CHECK_EQ(run_main(refused_body, "::1", compact), 0);
    LEAK_GATE();
}

/* ---- many datagrams in flight both ways ------------------------------- */

enum { CLIENTS = 8, WINDOW = 16, ROUNDS = 8 };

static long echoed;

/* Echo every datagram back to its sender until CLIENTS*WINDOW*ROUNDS. */
static void *echo_all(void *arg)
{
    (void)arg;
    while (echoed < (long)CLIENTS * WINDOW * ROUNDS) {
        char buf[32];
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t n = tide_udp_recvfrom(srv, buf, sizeof buf,
                                      (struct sockaddr *)&from, &flen);
        if (n < 0)
            return tide_fail((int)n);
        ssize_t m = tide_udp_sendto(srv, buf, (size_t)n,
                                    (struct sockaddr *)&from, flen);
        if (m != n)
            return tide_fail(m < 0 ? (int)m : -EIO);
        echoed++;
    }
    return NULL;
}

/* One client: ROUNDS times, WINDOW datagrams out, then all of them back
 * (each seen once; loopback drops nothing at this depth). */
static void *client(void *arg)
{
    int id = (int)(intptr_t)arg;
    tide_udp *u =
        tide_udp_open(NULL, 0, "127.0.0.1", port_of(&srv_addr), NULL);

    CHECK_NOT_NULL(u);
    for (int r = 0; r < ROUNDS; r++) {
        bool seen[WINDOW] = {false};
        for (int i = 0; i < WINDOW; i++) {
            char msg[16];
            int n = snprintf(msg, sizeof msg, "%d:%d:%d", id, r, i);
            CHECK_EQ(tide_udp_send(u, msg, (size_t)n), n);
        }
        for (int i = 0; i < WINDOW; i++) {
            char buf[16] = {0};
            int a, b, c;
            CHECK(tide_udp_recv(u, buf, sizeof buf - 1) > 0);
            CHECK_EQ(sscanf(buf, "%d:%d:%d", &a, &b, &c), 3);
            CHECK_EQ(a, id);
            CHECK_EQ(b, r);
            CHECK(c >= 0 && c < WINDOW && !seen[c]);
            seen[c] = true;
        }
    }
    CHECK_EQ(tide_udp_close(u), 0);
    return NULL;
}

static void *many_body(void *arg)
{
    tide_future *t[CLIENTS + 1];
    int big = 1 << 20;

    (void)arg;
    echoed = 0;
    srv = bound("127.0.0.1", &srv_addr, &srv_len);
    (void)setsockopt(tide_udp_fd(srv), SOL_SOCKET, SO_RCVBUF, &big,
                     sizeof big);
    tide_timeout *scope = tide_timeout_begin(4 * harness_timeout_mult());
    CHECK_NOT_NULL(scope);
    t[0] = spawn(NULL, echo_all, NULL);
    for (int i = 0; i < CLIENTS; i++)
        t[i + 1] = spawn(NULL, client, IPTR(i));
    tide_future *all = tide_gather(t, CLIENTS + 1, 0);
    CHECK_NOT_NULL(all);
    CHECK_EQ(tide_timeout_end(scope, tide_await(all, NULL)), 0);
    tide_future_release(all);
    for (int i = 0; i <= CLIENTS; i++)
        tide_future_release(t[i]);
    CHECK_EQ(echoed, (long)CLIENTS * WINDOW * ROUNDS);
    CHECK_EQ(tide_udp_close(srv), 0);
    return NULL;
}

BODY_TEST(many_datagrams_in_flight_both_ways, many_body)

/* ---- cancellation ----------------------------------------------------- */

enum call { C_RECV, C_RECVFROM, C_PEEK, NCALLS };

static enum call call;
static ssize_t ret;
static bool returned;

static void *blocked(void *arg)
{
    char buf[16];
    struct sockaddr_storage from;
    socklen_t flen = sizeof from;

    (void)arg;
    switch (call) {
    case C_RECV:
        ret = tide_udp_recv(srv, buf, sizeof buf);
        break;
    case C_RECVFROM:
        ret = tide_udp_recvfrom(srv, buf, sizeof buf, (struct sockaddr *)&from,
                                &flen);
        break;
    default:
        ret = tide_udp_peek_size(srv);
        break;
    }
    returned = true;
    return NULL;
}

TEST(cancel_every_receive_at_its_suspension)
{
    EACH_MODE for (int c = 0; c < NCALLS; c++)
    {
        tide_loop *loop = new_loop(compact);
        srv = bound("127.0.0.1", &srv_addr, &srv_len);
        call = (enum call)c;
        returned = false;
        tide_future *t = spawn(loop, blocked, NULL);
        steps(loop, 3);
        CHECK(!returned);
        CHECK(tide_future_cancel(t));
        CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0); /* it returned */
        tide_future_release(t);
        CHECK(returned);
        CHECK_ERR(ret, -ECANCELED);
        CHECK_EQ(loop->ops_live, 0);
        CHECK_EQ(loop->backend.inflight, 0);
        CHECK_EQ(tide_udp_close(srv), 0);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}

static void *recv_in_scope(void *arg)
{
    char buf[8];
    (void)arg;
    tide_timeout *scope = tide_timeout_begin(0.02);
    CHECK_NOT_NULL(scope);
    ssize_t r = tide_udp_recv(srv, buf, sizeof buf);
    return result_of(tide_timeout_end(scope, (int)r));
}

static void *recv_forever(void *arg)
{
    char buf[8];
    (void)arg;
    return result_of(tide_udp_recv(srv, buf, sizeof buf));
}

static void *wait_for_recv(void *arg)
{
    (void)arg;
    tide_future *t = spawn(NULL, recv_forever, NULL);
    int r = tide_wait_for(t, 0.02, NULL);
    tide_future_release(t);
    return result_of(r);
}

TEST(timeout_scope_and_wait_for_around_recv)
{
    EACH_MODE
    {
        srv = bound("127.0.0.1", &srv_addr, &srv_len);
        double t0 = harness_now();
        CHECK_ERR(run_main(recv_in_scope, NULL, compact), -ETIMEDOUT);
        CHECK_ERR(run_main(wait_for_recv, NULL, compact), -ETIMEDOUT);
        CHECK(harness_now() - t0 >= 0.04 - EARLY);
        /* The endpoint still works after. */
        cli = tide_udp_open(NULL, 0, "127.0.0.1", port_of(&srv_addr), NULL);
        CHECK_NOT_NULL(cli);
        CHECK_EQ(tide_udp_send(cli, "ok", 2), 2);
        CHECK_EQ(tide_wait_readable(tide_udp_fd(srv), 1), 0);
        char buf[4];
        CHECK_EQ(tide_udp_recv(srv, buf, sizeof buf), 2);
        close_pair();
    }
    LEAK_GATE();
}

/* B41: the datagram arrived and the cancel came before the receiver ran.
 * The canceller wakes first in the same poll (its op was submitted
 * first) and cancels the victim, queued to resume with its datagram. */
static tide_udp *killer_ep;
static tide_future *victim;
static ssize_t victim_got;
static int victim_next;
static char victim_buf[8];

static void *race_victim(void *arg)
{
    (void)arg;
    victim_got = tide_udp_recv(srv, victim_buf, sizeof victim_buf);
    victim_next = tide_sleep(0);
    return NULL;
}

static void *race_canceller(void *arg)
{
    char c;
    (void)arg;
    CHECK_EQ(tide_udp_recv(killer_ep, &c, 1), 1);
    CHECK(tide_future_cancel(victim));
    return NULL;
}

TEST(cancel_after_the_datagram_came_keeps_it)
{
    EACH_MODE
    {
        tide_loop *loop = new_loop(compact);
        struct sockaddr_storage ka;
        socklen_t klen;
        killer_ep = bound("127.0.0.1", &ka, &klen);
        srv = bound("127.0.0.1", &srv_addr, &srv_len);
        cli = tide_udp_open("127.0.0.1", 0, NULL, 0, NULL);
        CHECK_NOT_NULL(cli);
        tide_future *kt = spawn(loop, race_canceller, NULL);
        victim = spawn(loop, race_victim, NULL);
        steps(loop, 2); /* both wait, the canceller's op first */
        CHECK_EQ(tide_udp_sendto(cli, "k", 1, (struct sockaddr *)&ka, klen),
                 1);
        CHECK_EQ(tide_udp_sendto(cli, "data", 4, (struct sockaddr *)&srv_addr,
                                 srv_len),
                 4);
        usleep(1000);
        CHECK_EQ(tide_run_until_complete(loop, kt, NULL), 0);
        CHECK_EQ(tide_run_until_complete(loop, victim, NULL), 0);
        if (compact) {
            /* A compact task waits for readiness only: nothing was taken,
             * so the request is delivered there; the datagram is queued. */
            CHECK_ERR(victim_got, -ECANCELED);
            CHECK_EQ(victim_next, 0);
            CHECK_EQ(tide_udp_recv(srv, victim_buf, sizeof victim_buf), 4);
        } else {
            CHECK_EQ(victim_got, 4);            /* nothing lost */
            CHECK_ERR(victim_next, -ECANCELED); /* delivered next */
        }
        CHECK(memcmp(victim_buf, "data", 4) == 0);
        tide_future_release(kt);
        tide_future_release(victim);
        close_pair();
        CHECK_EQ(tide_udp_close(killer_ep), 0);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}

/* A send made to wait (the seam's EAGAIN): a cancel there is -ECANCELED
 * and nothing is sent. A compact task waits for writability, which holds
 * at once, so its send goes through. */
static void *send_body(void *arg)
{
    char msg[4] = "abc";
    (void)arg;
    tide__sys_fault(TIDE__SYS_SEND, 1, EAGAIN, 0);
    ret = tide_udp_send(cli, msg, 3);
    returned = true;
    return NULL;
}

TEST(cancel_a_send_at_its_suspension)
{
    if (harness_on_io_uring()) /* and a send in the kernel may win the race */
        SKIP("io_uring: the seam's EAGAIN does not reach the kernel's send");
    EACH_MODE
    {
        tide_loop *loop = new_loop(compact);
        open_pair();
        returned = false;
        tide_future *t = spawn(loop, send_body, NULL);
        steps(loop, 1);
        CHECK_EQ(returned, compact);
        CHECK_EQ(tide_future_cancel(t), !compact);
        CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
        tide_future_release(t);
        tide__sys_fault_clear();
        if (compact) {
            CHECK_EQ(ret, 3);
            CHECK_EQ(tide_udp_recv(srv, NULL, 0), -EMSGSIZE);
        } else {
            CHECK_ERR(ret, -ECANCELED);
        }
        CHECK_ERR(tide_udp_recv(srv, NULL, 0), -EPERM); /* nothing queued */
        CHECK_EQ(loop->ops_live, 0);
        close_pair();
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}

/* ---- close from another task while tasks wait -------------------------- */

static ssize_t waiter_ret[2];

static void *waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    char buf[8];
    waiter_ret[i] = i ? tide_udp_peek_size(srv) : tide_udp_recv(srv, buf, 8);
    return NULL;
}

static void *closer(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_sleep(0.005), 0);
    CHECK_EQ(tide_udp_close(srv), 0);
    return NULL;
}

static void *close_body(void *arg)
{
    tide_future *t[3];

    (void)arg;
    srv = bound("127.0.0.1", &srv_addr, &srv_len);
    t[0] = spawn(NULL, waiter, IPTR(0));
    t[1] = spawn(NULL, waiter, IPTR(1));
    t[2] = spawn(NULL, closer, NULL);
    tide_future *all = tide_gather(t, 3, 0);
    CHECK_NOT_NULL(all);
    CHECK_EQ(tide_await(all, NULL), 0);
    tide_future_release(all);
    for (int i = 0; i < 3; i++)
        tide_future_release(t[i]);
    CHECK_ERR(waiter_ret[0], -EBADF);
    CHECK_ERR(waiter_ret[1], -EBADF);
    return NULL;
}

BODY_TEST(close_from_another_task_wakes_waiters_with_ebadf, close_body)

/* HAZARDS B25: an endpoint readable and writable in the same poll batch,
 * whose receiver closes it. The sender waiting in the same batch (the
 * seam's EAGAIN made it wait for writability) ends with its datagram
 * sent or -EBADF, and nothing touches the freed endpoint. */
static ssize_t batch_sent;

static void *recv_then_close(void *arg)
{
    char buf[8];
    (void)arg;
    ret = tide_udp_recv(cli, buf, sizeof buf);
    CHECK_EQ(tide_udp_close(cli), 0);
    return NULL;
}

static void *send_in_batch(void *arg)
{
    (void)arg;
    tide__sys_fault(TIDE__SYS_SEND, 1, EAGAIN, 0);
    batch_sent = tide_udp_send(cli, "late", 4);
    return NULL;
}

TEST(receiver_closes_in_the_batch_that_wakes_a_sender)
{
    if (harness_on_io_uring())
        SKIP("io_uring: the seam's EAGAIN does not reach the kernel's send");
    EACH_MODE
    {
        tide_loop *loop = new_loop(compact);
        open_pair();
        struct sockaddr_storage ca;
        socklen_t clen = sizeof ca;
        CHECK_EQ(tide_udp_sockname(cli, (struct sockaddr *)&ca, &clen), 0);
        tide_future *t[2] = {spawn(loop, recv_then_close, NULL),
                             spawn(loop, send_in_batch, NULL)};
        steps(loop, 1); /* both suspended (compact: the sender sent) */
        CHECK_EQ(tide_udp_sendto(srv, "x", 1, (struct sockaddr *)&ca, clen),
                 1);
        usleep(1000);
        for (int i = 0; i < 2; i++) {
            CHECK_EQ(tide_run_until_complete(loop, t[i], NULL), 0);
            tide_future_release(t[i]);
        }
        tide__sys_fault_clear();
        CHECK_EQ(ret, 1);
        CHECK(batch_sent == 4 || batch_sent == -EBADF);
        if (compact)
            CHECK_EQ(batch_sent, 4);
        CHECK_EQ(loop->ops_live, 0);
        CHECK_EQ(tide_udp_close(srv), 0);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}

/* ---- bad input --------------------------------------------------------- */

static void check_open_fails(tide_udp *u, int err)
{
    CHECK_NULL(u);
    CHECK_ERR(errno, err);
}

TEST(bad_input_returns_documented_errors)
{
    tide_udp_options weird = {.family = 12345}, unix_ = {.family = AF_UNIX};
    tide_udp_options v6 = {.family = AF_INET6}, v4 = {.family = AF_INET};
    struct sockaddr_in a4 = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT,
                              .sin6_port = htons(9)};
    struct sockaddr sun = {.sa_family = AF_UNIX};
    char buf[4];
    socklen_t len = sizeof a4;

    check_open_fails(tide_udp_open("127.0.0.1", 0, NULL, 0, &weird),
                     EAFNOSUPPORT);
    check_open_fails(tide_udp_open(NULL, 0, NULL, 0, &unix_), EAFNOSUPPORT);
    check_open_fails(tide_udp_open("not-an-ip", 0, NULL, 0, NULL), EINVAL);
    check_open_fails(tide_udp_open("300.1.2.3", 0, NULL, 0, NULL), EINVAL);
    check_open_fails(tide_udp_open("localhost", 0, NULL, 0, NULL), EINVAL);
    check_open_fails(tide_udp_open(NULL, 0, "", 9, NULL), EINVAL);
    check_open_fails(tide_udp_open(NULL, 0, "127.0.0.1", 0, NULL), EINVAL);
    check_open_fails(tide_udp_open(NULL, 53, NULL, 0, NULL), EINVAL);
    check_open_fails(tide_udp_open(NULL, 0, NULL, 53, NULL), EINVAL);
    check_open_fails(tide_udp_open(NULL, 0, NULL, 0, NULL), EINVAL);
    check_open_fails(tide_udp_open("127.0.0.1", 0, NULL, 0, &v6), EINVAL);
    check_open_fails(tide_udp_open("127.0.0.1", 0, "::1", 9, NULL), EINVAL);
    check_open_fails(tide_udp_open("::1", 0, "127.0.0.1", 9, &v6), EINVAL);
    check_open_fails(tide_udp_open_addr((struct sockaddr *)&a4, 4, NULL, 0,
                                        NULL),
                     EINVAL);
    check_open_fails(tide_udp_open_addr(NULL, 0, (struct sockaddr *)&a4,
                                        sizeof a4, NULL),
                     EINVAL); /* remote port 0 */
    check_open_fails(tide_udp_open_addr(&sun, sizeof sun, NULL, 0, NULL),
                     EAFNOSUPPORT);
    check_open_fails(tide_udp_open_addr((struct sockaddr *)&a4, sizeof a4,
                                        (struct sockaddr *)&a6, sizeof a6,
                                        NULL),
                     EINVAL);
    check_open_fails(tide_udp_open_addr(NULL, 0, (struct sockaddr *)&a6,
                                        sizeof a6, &v4),
                     EINVAL);

    /* The address taken: EADDRINUSE, unless both ask for reuse_port. */
    tide_udp_options reuse = {.reuse_port = true, .allow_broadcast = true};
    tide_udp *u = tide_udp_open("127.0.0.1", 0, NULL, 0, &reuse);
    CHECK_NOT_NULL(u);
    CHECK_EQ(tide_udp_sockname(u, (struct sockaddr *)&a4, &len), 0);
    uint16_t port = ntohs(a4.sin_port);
    check_open_fails(tide_udp_open("127.0.0.1", port, NULL, 0, NULL),
                     EADDRINUSE);
    tide_udp *w = tide_udp_open("127.0.0.1", port, NULL, 0, &reuse);
    CHECK_NOT_NULL(w);
    int on = 0;
    socklen_t olen = sizeof on;
    CHECK_EQ(getsockopt(tide_udp_fd(w), SOL_SOCKET, SO_BROADCAST, &on, &olen),
             0);
    CHECK_EQ(on, 1);
    CHECK_EQ(getsockopt(tide_udp_fd(w), SOL_SOCKET, SO_REUSEPORT, &on, &olen),
             0);
    CHECK_EQ(on, 1);
    CHECK_EQ(tide_udp_close(w), 0);

    /* Out of memory: nothing made, no fd left open. */
    long fds = harness_fd_count();
    tide__alloc_fail_after(1);
    check_open_fails(tide_udp_open("127.0.0.1", 0, NULL, 0, NULL), ENOMEM);
    tide__alloc_fail_after(0);
    CHECK_EQ(harness_fd_count(), fds);

    /* The calls. */
    CHECK_ERR(tide_udp_send(NULL, "x", 1), -EINVAL);
    CHECK_ERR(tide_udp_sendto(NULL, "x", 1, NULL, 0), -EINVAL);
    CHECK_ERR(tide_udp_recv(NULL, buf, 1), -EINVAL);
    CHECK_ERR(tide_udp_recvfrom(NULL, buf, 1, NULL, NULL), -EINVAL);
    CHECK_ERR(tide_udp_peek_size(NULL), -EINVAL);
    CHECK_ERR(tide_udp_close(NULL), -EINVAL);
    CHECK_ERR(tide_udp_fd(NULL), -EINVAL);
    CHECK_ERR(tide_udp_sockname(NULL, (struct sockaddr *)&a4, &len), -EINVAL);
    CHECK_ERR(tide_udp_sockname(u, NULL, &len), -EINVAL);
    CHECK_ERR(tide_udp_peername(u, (struct sockaddr *)&a4, NULL), -EINVAL);
    CHECK_ERR(tide_udp_send(u, NULL, 1), -EINVAL);
    CHECK_ERR(tide_udp_sendto(u, NULL, 1, (struct sockaddr *)&a4, len),
              -EINVAL);
    CHECK_ERR(tide_udp_recv(u, NULL, 1), -EINVAL);
    CHECK_ERR(tide_udp_recvfrom(u, buf, 1, (struct sockaddr *)&a4, NULL),
              -EINVAL);
    /* From the kernel: port 0, the other family; would block: -EPERM
     * outside a task. */
    a4.sin_port = 0;
    CHECK_ERR(tide_udp_sendto(u, "x", 1, (struct sockaddr *)&a4, len),
              -EINVAL);
    CHECK(tide_udp_sendto(u, "x", 1, (struct sockaddr *)&a6, sizeof a6) < 0);
    CHECK_ERR(tide_udp_recv(u, buf, sizeof buf), -EPERM);
    CHECK_ERR(tide_udp_peek_size(u), -EPERM);
    CHECK_EQ(tide_udp_close(u), 0);
    LEAK_GATE();
}

/* ---- the syscall seam's faults ----------------------------------------- */

static void *faults_body(void *arg)
{
    char buf[8];

    (void)arg;
    /* No op slot for a receive that must wait (the loop's first op):
     * -ENOMEM, then it works. */
    tide__alloc_fail_after(1);
    ssize_t r = tide_udp_recv(srv, buf, sizeof buf);
    tide__alloc_fail_after(0);
    CHECK_ERR(r, -ENOMEM);
    CHECK_EQ(tide_udp_send(cli, "zero", 4), 4);
    CHECK_EQ(tide_udp_recv(srv, buf, sizeof buf), 4);
    /* EINTR is retried, EAGAIN waits and retries, on both sides. */
    tide__sys_fault(TIDE__SYS_SEND, 1, EINTR, 0);
    CHECK_EQ(tide_udp_send(cli, "one", 3), 3);
    tide__sys_fault(TIDE__SYS_SEND, 1, EAGAIN, 0);
    CHECK_EQ(tide_udp_send(cli, "two", 3), 3);
    tide__sys_fault(TIDE__SYS_RECV, 1, EINTR, 0);
    CHECK_EQ(tide_udp_recv(srv, buf, sizeof buf), 3);
    CHECK(memcmp(buf, "one", 3) == 0);
    /* An injected EAGAIN is a would-block the kernel never saw, so its
     * retry needs a readiness report, which epoll (edge-triggered) gives
     * an fd at once only when it starts watching it: srv here (its calls
     * so far went through at once), and `other` below. */
    struct sockaddr_storage from;
    socklen_t flen = sizeof from;
    tide__sys_fault(TIDE__SYS_RECV, 1, EAGAIN, 0);
    CHECK_EQ(tide_udp_recvfrom(srv, buf, sizeof buf, (struct sockaddr *)&from,
                               &flen),
             3);
    CHECK(memcmp(buf, "two", 3) == 0);
    /* sendto with EAGAIN, from an endpoint new to the backend. */
    tide_udp *other = tide_udp_open("127.0.0.1", 0, NULL, 0, NULL);
    CHECK_NOT_NULL(other);
    tide__sys_fault(TIDE__SYS_SEND, 1, EAGAIN, 0);
    CHECK_EQ(tide_udp_sendto(other, "via", 3, (struct sockaddr *)&srv_addr,
                             srv_len),
             3);
    CHECK_EQ(tide_udp_recvfrom(srv, buf, sizeof buf, (struct sockaddr *)&from,
                               &flen),
             3);
    CHECK(memcmp(buf, "via", 3) == 0);
    CHECK_EQ(tide_udp_close(other), 0);
    /* ENOMEM and EINTR with addresses. */
    flen = sizeof from;
    CHECK_EQ(tide_udp_sockname(cli, (struct sockaddr *)&from, &flen), 0);
    CHECK_EQ(tide_udp_sendto(srv, "back", 4, (struct sockaddr *)&from, flen),
             4);
    tide__sys_fault(TIDE__SYS_SEND, 1, ENOMEM, 0);
    CHECK_ERR(tide_udp_sendto(srv, "gone", 4, (struct sockaddr *)&from, flen),
              -ENOMEM);
    tide__sys_fault(TIDE__SYS_RECV, 1, EINTR, 0);
    CHECK_EQ(tide_udp_recvfrom(cli, buf, sizeof buf, (struct sockaddr *)&from,
                               &flen),
             4);
    CHECK(memcmp(buf, "back", 4) == 0);
    /* ENOMEM from the call is its result; nothing sent, nothing lost. */
    tide__sys_fault(TIDE__SYS_SEND, 1, ENOMEM, 0);
    CHECK_ERR(tide_udp_send(cli, "lost", 4), -ENOMEM);
    CHECK_EQ(tide_udp_send(cli, "three", 5), 5);
    tide__sys_fault(TIDE__SYS_RECV, 1, ENOMEM, 0);
    CHECK_ERR(tide_udp_recv(srv, buf, sizeof buf), -ENOMEM);
    tide__sys_fault(TIDE__SYS_RECV, 1, ENOMEM, 0);
    CHECK_ERR(tide_udp_peek_size(srv), -ENOMEM);
    CHECK_EQ(tide_udp_recv(srv, buf, sizeof buf), 5);
    CHECK(memcmp(buf, "three", 5) == 0);
    tide__sys_fault_clear();
    return NULL;
}

TEST(injected_faults)
{
    if (harness_on_io_uring())
        SKIP("io_uring: the seam's faults do not reach the kernel's calls");
    EACH_MODE
    {
        /* Opened before the loop is made: its first op is the body's. */
        open_pair();
        CHECK_EQ(run_main(faults_body, NULL, compact), 0);
        close_pair();
    }
    LEAK_GATE();
}
