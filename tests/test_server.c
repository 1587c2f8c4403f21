/* Servers (include/tide/stream.h): a task per connection over TCP and
 * Unix sockets, serve_forever, close with a deadline, abort, accept
 * under EMFILE, and many concurrent connections.
 *
 * Bad arguments; an echo served to many clients at once (10,000 when the
 * fd limit can be raised that far, else 1,000); a Unix server; close
 * that waits for a live handler and cancels one that outlives the
 * deadline (its client sees the bytes or an error, never silence); abort
 * resets clients; RLIMIT_NOFILE lowered so accept fails with EMFILE: the
 * error is reported, the server keeps serving the client it has, does
 * not spin (loop iterations and accept calls counted) and accepts the
 * waiting clients once fds are free; a handler's 4 MiB answer to a
 * half-closed request arrives whole; 300 slow clients cut by a per-read
 * deadline while 20 others are served; one connection's failed setup
 * (reported, closed; the others served); an accept storm of 2,000 taken
 * in bursts of 32; faults injected at every system call the stream,
 * server and connect paths make. Loopback only.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"
#include "base/sys.h"

#include <tide/stream.h>
#include <tide/sync.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static uint16_t port_of(tide_server *srv)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;

    CHECK_EQ(tide_server_sockname(srv, (struct sockaddr *)&a, &len), 0);
    return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

/* Echo lines until end of stream. */
static void echo(tide_stream *s, void *arg)
{
    const void *p;
    ssize_t n;
    (void)arg;

    while ((n = tide_stream_readline(s, &p)) > 0)
        if (tide_stream_write(s, p, (size_t)n) < 0 || tide_stream_drain(s) < 0)
            return;
}

static void *bad_args_body(void *arg)
{
    tide_server_options bad = {.backlog = -1};
    (void)arg;

    CHECK_NULL(tide_start_server(NULL, "127.0.0.1", 0, NULL, NULL, NULL));
    CHECK_ERR(errno, EINVAL);
    CHECK_NULL(tide_start_server(NULL, "127.0.0.1", 0, echo, NULL, &bad));
    CHECK_ERR(errno, EINVAL);
    CHECK_NULL(tide_start_server(NULL, "no.such.name", 0, echo, NULL, NULL));
    CHECK_ERR(errno, ENOTSUP);
    CHECK_NULL(tide_start_unix_server(NULL, NULL, echo, NULL, NULL));
    CHECK_ERR(errno, EINVAL);
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    CHECK_NULL(tide_start_unix_server(NULL, longpath, echo, NULL, NULL));
    CHECK_ERR(errno, ENAMETOOLONG);
    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", 0, echo, NULL, NULL);
    CHECK_NOT_NULL(srv);
    CHECK_NULL(
        tide_start_server(NULL, "127.0.0.1", port_of(srv), echo, NULL, NULL));
    CHECK_ERR(errno, EADDRINUSE);
    CHECK_ERR(tide_server_sockname(srv, NULL, NULL), -EINVAL);
    CHECK_ERR(tide_server_close(NULL, 1), -EINVAL);
    CHECK_ERR(tide_server_close(srv, NAN), -EINVAL);
    CHECK_ERR(tide_serve_forever(NULL), -EINVAL);
    CHECK_ERR(tide_server_abort(NULL), -EINVAL);
    CHECK_EQ(tide_server_connections(NULL), 0);
    CHECK_EQ(tide_server_close(srv, 1), 0);
    return NULL;
}

TEST(bad_arguments)
{
    CHECK_EQ(harness_run_body(bad_args_body, NULL), 0);
    LEAK_GATE();
}

/* ---- many clients ---------------------------------------------------- */

struct client {
    uint16_t port;
    const char *path; /* a Unix server's, or NULL */
    int lines;
    size_t hold; /* > 0: stay connected until this many are */
    size_t *live;
    tide_event *all;
};

static void *client_task(void *arg)
{
    struct client *c = arg;
    tide_stream *s;
    char line[32];
    const void *p;

    int err = c->path ? tide_open_unix_connection(c->path, 0, &s)
                      : tide_open_connection("127.0.0.1", c->port, 256, &s);
    if (err < 0)
        return tide_fail(err);
    for (int i = 0; i < c->lines; i++) {
        int n = snprintf(line, sizeof line, "line %d\n", i);
        CHECK_EQ(tide_stream_write(s, line, (size_t)n), 0);
        ssize_t r = tide_stream_readline(s, &p);
        CHECK_EQ(r, n);
        CHECK(memcmp(p, line, (size_t)n) == 0);
    }
    if (c->hold && ++*c->live == c->hold)
        tide_event_set(c->all);
    if (c->hold)
        CHECK_EQ(tide_event_wait(c->all), 0);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    return NULL;
}

/* n clients of srv at once, each `lines` round trips; all must pass. The
 * clients share c, which is static: this caller's frames may be a compact
 * task's, copied away while it waits (README, "Compact tasks"). */
static void run_clients(tide_server *srv, const char *path, size_t n,
                        int lines, bool together)
{
    static size_t live;
    static struct client c;

    live = 0;
    c = (struct client){.port = path ? 0 : port_of(srv),
                        .path = path,
                        .lines = lines,
                        .hold = together ? n : 0,
                        .live = &live,
                        .all = tide_event_new()};
    tide_future **t = calloc(n, sizeof *t);

    CHECK_NOT_NULL(t);
    for (size_t i = 0; i < n; i++) {
        CHECK_NOT_NULL(t[i] = tide_create_task(NULL, client_task, &c));
        if (i % 256 == 255) /* in waves: a backlog overflow costs 1 s */
            CHECK_EQ(tide_sleep(0.001), 0);
    }
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(tide_await(t[i], NULL), 0);
        tide_future_release(t[i]);
    }
    free(t);
    tide_event_free(c.all);
}

static void *closer(void *arg)
{
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(tide_server_close(arg, 1), 0);
    return NULL;
}

static void *tcp_body(void *arg)
{
    (void)arg;
    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", 0, echo, NULL, NULL);
    CHECK_NOT_NULL(srv);
    run_clients(srv, NULL, 50, 20, false);
    /* serve_forever returns once another task closes the server */
    tide_future *t = tide_create_task(NULL, closer, srv);
    CHECK_EQ(tide_serve_forever(srv), 0);
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    return NULL;
}

TEST(tcp_echo_to_50_clients_and_serve_forever)
{
    CHECK_EQ(harness_run_body(tcp_body, NULL), 0);
    LEAK_GATE();
}

static void *unix_body(void *arg)
{
    static char path[64]; /* the clients read it while this waits */
    (void)arg;

    snprintf(path, sizeof path, "/tmp/tide-test-%d.sock", (int)getpid());
    tide_server *srv = tide_start_unix_server(NULL, path, echo, NULL, NULL);
    CHECK_NOT_NULL(srv);
    run_clients(srv, path, 20, 10, false);
    CHECK_EQ(tide_server_close(srv, 1), 0);
    CHECK(access(path, F_OK) != 0); /* the file went with the server */
    tide_stream *s;
    CHECK_ERR(tide_open_unix_connection(path, 0, &s), -ENOENT);
    return NULL;
}

TEST(unix_socket_echo)
{
    CHECK_EQ(harness_run_body(unix_body, NULL), 0);
    LEAK_GATE();
}

static void *many_body(void *arg)
{
    size_t n = (size_t)(intptr_t)arg;
    tide_server_options o = {.limit = 256, .backlog = 4096};

    tide_server *srv = tide_start_server(NULL, "127.0.0.1", 0, echo, NULL, &o);
    CHECK_NOT_NULL(srv);
    run_clients(srv, NULL, n, 1, true); /* all n connected at once */
    /* the handlers end as their clients' ends arrive: a second for
     * 2,000 under ThreadSanitizer on a busy machine */
    CHECK_EQ(tide_server_close(srv, 5), 0);
    return NULL;
}

TEST(ten_thousand_concurrent_connections)
{
    struct rlimit r;
    /* Under the tools every connection costs ~5x: 2,000 there, and 1,000
     * under ThreadSanitizer (2,000 took 20 s on a busy machine). */
    size_t n = HARNESS_TSAN                       ? 1000
               : HARNESS_ASAN || HARNESS_VALGRIND ? 2000
                                                  : 10000;

    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &r), 0);
    if (r.rlim_cur < 2 * n + 100) {
        struct rlimit want = {2 * n + 100, 2 * n + 100};
        if (r.rlim_max >= want.rlim_max || setrlimit(RLIMIT_NOFILE, &want)) {
            /* not root (or not allowed): as far as the hard limit goes */
            r.rlim_cur = r.rlim_max < 2 * n + 100 ? r.rlim_max : 2 * n + 100;
            CHECK_EQ(setrlimit(RLIMIT_NOFILE, &r), 0);
        }
        CHECK_EQ(getrlimit(RLIMIT_NOFILE, &r), 0);
    }
    if (r.rlim_cur < 2 * n + 100) /* both ends are in this process */
        n = r.rlim_cur >= 2100 ? (r.rlim_cur - 100) / 2 : 1000;
    CHECK_EQ(harness_run_body(many_body, IPTR(n)), 0);
    LEAK_GATE();
    if (n < 10000 && !(HARNESS_ASAN || HARNESS_TSAN || HARNESS_VALGRIND))
        fprintf(stderr, "note: fd hard limit %lu: %zu connections\n",
                (unsigned long)r.rlim_max, n);
}

/* ---- closing --------------------------------------------------------- */

/* Answer one line after 100 ms, then read until the end. */
static void slow_reply(tide_stream *s, void *arg)
{
    const void *p;
    (void)arg;

    if (tide_stream_readline(s, &p) <= 0 || tide_sleep(0.1) < 0)
        return;
    if (tide_stream_write(s, "done\n", 5) < 0)
        return;
    while (tide_stream_read(s, 100, &p) > 0)
        ;
}

struct mid {
    uint16_t port;
    int result; /* 1: answered; < 0: a clear error */
};

static void *mid_request_client(void *arg)
{
    struct mid *m = arg;
    tide_stream *s;
    const void *p;

    CHECK_EQ(tide_open_connection("127.0.0.1", m->port, 0, &s), 0);
    CHECK_EQ(tide_stream_write(s, "go\n", 3), 0);
    ssize_t r = tide_stream_readline(s, &p);
    m->result = r == 5 ? 1 : r < 0 ? (int)r : r == 0 ? -ENODATA : -EIO;
    r = tide_stream_readline(s, &p); /* then the server closes */
    CHECK(r == 0 || r == -ECONNRESET);
    tide_stream_close(s, 1);
    return NULL;
}

static void *close_mid_body(void *arg)
{
    (void)arg;
    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", 0, slow_reply, NULL, NULL);
    CHECK_NOT_NULL(srv);
    static struct mid m[4]; /* the clients write them while this waits */
    tide_future *t[4];
    for (int i = 0; i < 4; i++) {
        m[i] = (struct mid){.port = port_of(srv)};
        t[i] = tide_create_task(NULL, mid_request_client, &m[i]);
    }
    double t1 = harness_now(); /* every request reaches its handler */
    while (tide_server_connections(srv) < 4 && harness_now() - t1 < 1)
        CHECK_EQ(tide_sleep(0.005), 0);
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(tide_server_connections(srv), 4);
    /* the deadline comes after the answers but before the handlers end
     * (they read on until the clients close: the clients wait for the
     * server): so they are cancelled */
    double t0 = harness_now();
    CHECK_ERR(tide_server_close(srv, 0.2), -ETIMEDOUT);
    CHECK(harness_now() - t0 < 1.0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(tide_await(t[i], NULL), 0);
        tide_future_release(t[i]);
        CHECK_EQ(m[i].result, 1); /* delivered, never silence */
    }
    return NULL;
}

TEST(close_waits_for_handlers_then_cancels_them_at_the_deadline)
{
    if (HARNESS_VALGRIND) /* its 20-100 ms steps stretch past its checks */
        SKIP("timed in tens of ms: not under valgrind");
    CHECK_EQ(harness_run_body(close_mid_body, NULL), 0);
    LEAK_GATE();
}

static void *abort_body(void *arg)
{
    (void)arg;
    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", 0, slow_reply, NULL, NULL);
    CHECK_NOT_NULL(srv);
    static struct mid m;
    m = (struct mid){.port = port_of(srv)};
    tide_future *t = tide_create_task(NULL, mid_request_client, &m);
    double t0 = harness_now(); /* the handler has the request, not yet */
    while (tide_server_connections(srv) < 1 && harness_now() - t0 < 1)
        CHECK_EQ(tide_sleep(0.002), 0); /* the answer (100 ms later) */
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(tide_server_abort(srv), 0);
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    CHECK_ERR(m.result, -ECONNRESET); /* a clear error, at once */
    return NULL;
}

TEST(abort_resets_live_connections)
{
    if (HARNESS_VALGRIND) /* its 20-100 ms steps stretch past its checks */
        SKIP("timed in tens of ms: not under valgrind");
    CHECK_EQ(harness_run_body(abort_body, NULL), 0);
    LEAK_GATE();
}

/* ---- slow clients ---------------------------------------------------- */

enum { SLOW = 300 };

/* Echo lines, each read given 0.2 s: a client slower than that is cut. */
static void echo_with_deadline(tide_stream *s, void *arg)
{
    const void *p;
    (void)arg;

    for (;;) {
        tide_timeout *scope = tide_timeout_begin(0.2);
        if (!scope)
            return;
        ssize_t n = tide_timeout_end(scope, (int)tide_stream_readline(s, &p));
        if (n <= 0 || tide_stream_write(s, p, (size_t)n) < 0 ||
            tide_stream_drain(s) < 0)
            return;
    }
}

static void *slowloris_body(void *arg)
{
    tide_stream **slow = calloc(SLOW, sizeof *slow);
    const void *p;
    (void)arg;

    CHECK_NOT_NULL(slow);
    tide_server *srv = tide_start_server(NULL, "127.0.0.1", 0,
                                         echo_with_deadline, NULL, NULL);
    CHECK_NOT_NULL(srv);
    double t0 = harness_now();
    for (int i = 0; i < SLOW; i++) { /* a byte each, never a line */
        CHECK_EQ(tide_open_connection("127.0.0.1", port_of(srv), 0, &slow[i]),
                 0);
        CHECK_EQ(tide_stream_write(slow[i], "x", 1), 0);
    }
    run_clients(srv, NULL, 20, 10, false); /* normal ones meanwhile */
    while (tide_server_connections(srv) > 0 && harness_now() - t0 < 5)
        CHECK_EQ(tide_sleep(0.01), 0);
    double took = harness_now() - t0;
    CHECK_EQ(tide_server_connections(srv), 0);
    CHECK(took >= 0.19); /* 0.2 s and a tick, not more (but under TSan) */
    CHECK(took < 1.5 || HARNESS_TSAN);
    for (int i = 0; i < SLOW; i++) { /* each sees its end, not silence */
        ssize_t r = tide_stream_read(slow[i], 16, &p);
        CHECK(r == 0 || r == -ECONNRESET);
        tide_stream_close(slow[i], 1);
    }
    free(slow);
    CHECK_EQ(tide_server_close(srv, 1), 0);
    return NULL;
}

/* HAZARDS B32 (slowloris), scaled to a test: 300 clients send a byte and
 * nothing more while 20 others echo 10 lines each; the handler gives
 * each read 0.2 s. The normal clients are served; every slow one is cut
 * within 0.2 s and a tick and sees its connection end. */
TEST(slow_clients_are_cut_while_others_are_served)
{
    if (HARNESS_VALGRIND) /* its 0.2 s bounds stretch under memcheck */
        SKIP("timed in tenths of a second: not under valgrind");
    CHECK_EQ(harness_run_body(slowloris_body, NULL), 0);
    LEAK_GATE();
}

/* ---- half-close: every byte written before close arrives ------------ */

enum { REQUEST = 10 * 1024, RESPONSE = 4 << 20 };

static char response[RESPONSE];

/* Read the request to its end, answer 4 MiB and return: the server
 * closes the stream, which must send all of it first (no reset). */
static void answer_after_eof(tide_stream *s, void *arg)
{
    const void *p;
    ssize_t n;
    size_t got = 0;
    (void)arg;

    while ((n = tide_stream_read(s, 65536, &p)) > 0)
        got += (size_t)n;
    if (n == 0 && got == REQUEST)
        (void)tide_stream_write(s, response, sizeof response);
}

static void *half_close_body(void *arg)
{
    static char request[REQUEST];
    tide_stream *s;
    const void *p;
    ssize_t n;
    (void)arg;

    for (size_t i = 0; i < sizeof response; i++)
        response[i] = (char)(i % 251);
    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", 0, answer_after_eof, NULL, NULL);
    CHECK_NOT_NULL(srv);
    CHECK_EQ(tide_open_connection("127.0.0.1", port_of(srv), 0, &s), 0);
    CHECK_EQ(tide_stream_write(s, request, sizeof request), 0);
    CHECK_EQ(tide_stream_write_eof(s), 0);
    CHECK_EQ(tide_stream_write_eof(s), 0); /* a second: no-op */
    CHECK_ERR(tide_stream_write(s, "x", 1), -EPIPE);
    size_t got = 0;
    while ((n = tide_stream_read(s, 65536, &p)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            CHECK(((const char *)p)[i] == (char)((got + (size_t)i) % 251));
        got += (size_t)n;
    }
    CHECK_EQ(n, 0); /* end of stream, not a reset */
    CHECK_EQ(got, sizeof response);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    CHECK_EQ(tide_server_close(srv, 1), 0);
    return NULL;
}

/* HAZARDS B30 and issue 9 ("every byte written before close reaches a
 * peer that reads until EOF"): the client sends 10 KiB and half-closes;
 * the handler reads to the end, writes 4 MiB and returns; the client
 * reads exactly 4 MiB, then end of stream. */
TEST(handler_response_after_half_close_arrives_whole)
{
    CHECK_EQ(harness_run_body(half_close_body, NULL), 0);
    LEAK_GATE();
}

/* ---- one connection's setup fails ------------------------------------ */

static int setup_errors;

static void count_setup_error(int err, void *arg)
{
    (void)arg;
    if (err == -EMFILE)
        setup_errors++;
}

static void *setup_failure_body(void *arg)
{
    tide_server_options o = {.on_error = count_setup_error};
    char buf[8];
    (void)arg;

    tide_server *srv = tide_start_server(NULL, "127.0.0.1", 0, echo, NULL, &o);
    CHECK_NOT_NULL(srv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(port_of(srv))};
    for (int i = 0; i < 10; i++) {
        int fd =
            socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        if (i == 2) /* the server's next fcntl: this one's stream */
            tide__sys_fault(TIDE__SYS_FCNTL, 1, EMFILE, 0);
        CHECK_ERR(tide_sock_connect(fd, (struct sockaddr *)&a, sizeof a), 0);
        CHECK_EQ(tide_sock_sendall(fd, "hi\n", 3, 0), 3);
        ssize_t r = tide_sock_recv(fd, buf, sizeof buf, 0);
        if (i == 2)
            CHECK(r == 0 || r == -ECONNRESET); /* closed, not left open */
        else
            CHECK_EQ(r, 3);
        CHECK_EQ(tide_close(fd), 0);
    }
    CHECK_EQ(setup_errors, 1); /* reported */
    CHECK_EQ(tide_server_close(srv, 1), 0);
    return NULL;
}

/* HAZARDS B10: the 3rd of 10 connections fails its setup (EMFILE making
 * its stream): it is reported and closed; the other 9 are served, and
 * the server goes on accepting. */
TEST(one_failed_connection_setup_leaves_the_server_accepting)
{
    CHECK_EQ(harness_run_body(setup_failure_body, NULL), 0);
    LEAK_GATE();
}

/* ---- an accept storm ------------------------------------------------- */

/* 2,000 connects; 500 under ThreadSanitizer, which makes each ~10x
 * dearer. */
#define STORM (HARNESS_TSAN ? 500 : 2000)

static bool storm_over;
static tide_server *storm_srv;
static uint64_t most_accepts; /* between two turns of the sampler */

/* Yield until storm_over, noting the most connections accepted between
 * two of its turns: what the server did while other tasks waited. (The
 * server's connection count, not the seam's accept4 count: on io_uring
 * the kernel makes the accepts.) */
static void *sampler(void *arg)
{
    uint64_t last = tide_server_connections(storm_srv);
    (void)arg;

    while (!storm_over) {
        CHECK_EQ(tide_sleep(0), 0);
        uint64_t now = tide_server_connections(storm_srv);
        if (now - last > most_accepts)
            most_accepts = now - last;
        last = now;
    }
    return NULL;
}

static void *storm_body(void *arg)
{
    tide_server_options o = {.backlog = 4096};
    int *fds = calloc(STORM, sizeof *fds);
    tide_stream *s;
    const void *p;
    (void)arg;

    CHECK_NOT_NULL(fds);
    tide_server *srv = tide_start_server(NULL, "127.0.0.1", 0, echo, NULL, &o);
    CHECK_NOT_NULL(srv);
    storm_srv = srv;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(port_of(srv))};
    CHECK_EQ(tide_open_connection("127.0.0.1", port_of(srv), 0, &s), 0);
    for (int i = 0; i < STORM; i++) { /* the burst, in one step */
        fds[i] =
            socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(fds[i] >= 0);
        CHECK(connect(fds[i], (struct sockaddr *)&a, sizeof a) == 0 ||
              errno == EINPROGRESS);
    }
    tide_future *t = tide_create_task(NULL, sampler, NULL);
    double t0 = harness_now();
    while (tide_server_connections(srv) < (size_t)STORM + 1 &&
           harness_now() - t0 < 10) {
        CHECK_EQ(tide_stream_write(s, "p\n", 2), 0); /* served meanwhile */
        CHECK_EQ(tide_stream_readline(s, &p), 2);
    }
    CHECK_EQ(tide_server_connections(srv), STORM + 1); /* all accepted */
    storm_over = true;
    CHECK_ERR(tide_wait_for(t, 1, NULL), 0);
    tide_future_release(t);
    CHECK(most_accepts >= 1 && most_accepts <= 33); /* in bursts of 32 */
    for (int i = 0; i < STORM; i++)
        CHECK_EQ(close(fds[i]), 0);
    free(fds);
    CHECK_EQ(tide_stream_close(s, 1), 0);
    CHECK_EQ(tide_server_close(srv, 2), 0);
    return NULL;
}

/* HAZARDS B11: 2,000 connects arrive at once while one connection
 * ping-pongs: the server accepts them all, at most 32 between two turns
 * of any other task (never the whole backlog in one go), and the
 * ping-pong is served meanwhile. */
TEST(an_accept_storm_does_not_starve_an_established_connection)
{
    if (HARNESS_VALGRIND) /* 4,000 sockets under memcheck: too slow */
        SKIP("an accept storm is too slow under valgrind");
    harness_want_fds(2 * STORM + 100);
    CHECK_EQ(harness_run_body(storm_body, NULL), 0);
    LEAK_GATE();
}

/* ---- EMFILE ---------------------------------------------------------- */

static int emfile_reports;

static void on_error(int err, void *arg)
{
    (void)arg;
    if (err == -EMFILE)
        emfile_reports++;
}

static void *emfile_body(void *arg)
{
    tide_server_options o = {.on_error = on_error};
    tide_loop *loop = tide_get_event_loop();
    struct rlimit old, low;
    (void)arg;

    tide_server *srv = tide_start_server(NULL, "127.0.0.1", 0, echo, NULL, &o);
    CHECK_NOT_NULL(srv);
    uint16_t port = port_of(srv);
    tide_stream *first;
    CHECK_EQ(tide_open_connection("127.0.0.1", port, 0, &first), 0);
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_EQ(tide_server_connections(srv), 1);
    /* clients' sockets made now, then no fd left for accept */
    int c[5];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(port)};
    for (int i = 0; i < 5; i++)
        CHECK((c[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) >= 0);
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)harness_fd_count() + 16;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fill[32], nfill = 0; /* take every number left below the limit */
    while (nfill < 32 && (fill[nfill] = dup(0)) >= 0)
        nfill++;
    CHECK_ERR(errno, EMFILE);
    for (int i = 0; i < 5; i++)
        (void)connect(c[i], (struct sockaddr *)&a, sizeof a);
    uint64_t it0 = loop_iterations(loop);
    uint64_t acc0 = tide__sys_count(TIDE__SYS_ACCEPT);
    double t0 = harness_now();
    const void *p;
    while (harness_now() - t0 < 0.5) { /* the one it has is still served */
        CHECK_EQ(tide_stream_write(first, "ping\n", 5), 0);
        CHECK_EQ(tide_stream_readline(first, &p), 5);
        CHECK_EQ(tide_sleep(0.05), 0);
    }
    uint64_t iters = loop_iterations(loop) - it0;
    uint64_t accepts = tide__sys_count(TIDE__SYS_ACCEPT) - acc0;
    CHECK(emfile_reports >= 2 && emfile_reports <= 12); /* ~ one per 0.1 s */
    CHECK(iters < 200); /* no spin: sleeps, pings and retries only */
    CHECK(accepts >= 2 && accepts <= 12); /* one try per 0.1 s pause */
    CHECK_EQ(tide_server_connections(srv), 1);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    while (nfill > 0)
        close(fill[--nfill]);
    t0 = harness_now();
    while (tide_server_connections(srv) < 6 && harness_now() - t0 < 2)
        CHECK_EQ(tide_sleep(0.02), 0);
    CHECK_EQ(tide_server_connections(srv), 6); /* accepted once fds free */
    for (int i = 0; i < 5; i++)
        close(c[i]);
    CHECK_EQ(tide_stream_close(first, 1), 0);
    CHECK_EQ(tide_server_close(srv, 1), 0);
    return NULL;
}

TEST(accept_under_emfile_keeps_serving_without_spinning)
{
    if (HARNESS_VALGRIND) /* its 20-100 ms steps stretch past its checks */
        SKIP("timed in tens of ms: not under valgrind");
    /* Linux reads RLIMIT_NOFILE for an io_uring accept when the accept
     * is submitted: one armed before the limit falls is not bound by it. */
    if (harness_on_io_uring())
        SKIP("io_uring: an armed accept keeps the fd limit it was made under");
    CHECK_EQ(harness_run_body(emfile_body, NULL), 0);
    LEAK_GATE();
}

/* ---- faults at every system call -------------------------------------
 * One scenario makes every kind of call those paths make: a TCP echo
 * server starts, a client connects, writes a line and drains, reads the
 * echo, half-closes, reads to the end, closes; the server closes. For
 * each call kind (the seam's, base/sys.h) and each fault (EAGAIN, EINTR,
 * ENOMEM, EMFILE, and a short call where the call has a length), the
 * fault is armed for the 1st, 2nd, ... call of that kind the scenario
 * makes, one run each, until the scenario makes fewer calls than that.
 * Every run must end within its time limit (no hang), in few loop
 * iterations (no spin), with fds and allocations back where they were
 * (no leak), and either succeed (the call was retried or its failure
 * handled) or fail with a clear error: the injected one, or what it
 * causes at the other end (a reset, an early end of stream). EINTR
 * never reaches a caller (HAZARDS B36); wrong data never does.
 */

/* The client's half: 0 or the first error; -EIO for wrong data. */
static int fault_client(uint16_t port)
{
    tide_stream *s;
    const void *p;
    int err = tide_open_connection("127.0.0.1", port, 0, &s);

    if (err < 0)
        return err;
    err = tide_stream_write(s, "ping\n", 5);
    if (!err)
        err = tide_stream_drain(s);
    if (!err) {
        ssize_t r = tide_stream_readline(s, &p);
        err = r < 0                                   ? (int)r
              : r == 0                                ? -ENODATA
              : r != 5 || memcmp(p, "ping\n", 5) != 0 ? -EIO
                                                      : 0;
    }
    if (!err)
        err = tide_stream_write_eof(s);
    if (!err) {
        ssize_t r = tide_stream_read(s, 16, &p); /* the server's end */
        err = r < 0 ? (int)r : r > 0 ? -EIO : 0;
    }
    int e = tide_stream_close(s, 1);
    return err ? err : e;
}

static void *fault_scenario(void *arg)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    (void)arg;

    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", 0, echo, NULL, NULL);
    if (!srv)
        return tide_fail(-errno);
    int err = tide_server_sockname(srv, (struct sockaddr *)&a, &len);
    if (!err)
        err = fault_client(ntohs(a.sin_port));
    int e = tide_server_close(srv, 1);
    err = err ? err : e;
    return err < 0 ? tide_fail(err) : NULL;
}

/* The scenario under a time limit: its error, -ETIMEDOUT if it hung. */
static void *guarded(void *arg)
{
    tide_future *t = tide_create_task(NULL, fault_scenario, arg);

    if (!t)
        return tide_fail(-errno);
    int err = tide_wait_for(t, 2.0 * harness_timeout_mult(), NULL);
    tide_future_release(t);
    return err < 0 ? tide_fail(err) : NULL;
}

struct outcome {
    int err;             /* the scenario's */
    bool fired;          /* the fault was met */
    uint64_t calls;      /* of the faulted kind */
    uint64_t iterations; /* of the loop */
};

/* kind TIDE__SYS_COUNT: the n-th allocation fails instead (ENOMEM). */
#define ALLOCATION TIDE__SYS_COUNT

static bool compact_loops; /* run()'s loops make every task compact */

/* One run with the n-th call of kind faulted (n == 0: none). */
static struct outcome run(enum tide__sys_kind kind, long n, int err,
                          size_t short_len)
{
    long fds = harness_fd_count(), live = tide__alloc_live();
    bool alloc = kind == ALLOCATION;
    struct outcome o;
    tide_loop_stats st;

    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    if (compact_loops)
        CHECK_EQ(tide_loop_set_compact_tasks(loop, true), 0);
    tide_future *t = tide_create_task(loop, guarded, NULL);
    CHECK_NOT_NULL(t);
    uint64_t c0 = alloc ? 0 : tide__sys_count(kind);
    if (alloc)
        tide__alloc_fail_after(n);
    else
        tide__sys_fault(kind, n, err, short_len);
    o.err = tide_run_until_complete(loop, t, NULL);
    if (alloc) {
        o.fired = n > 0 && tide__alloc_fail_pending() == 0;
        o.calls = 0;
        tide__alloc_fail_after(0);
    } else {
        tide__sys_fault_clear();
        o.calls = tide__sys_count(kind) - c0;
        o.fired = n > 0 && o.calls >= (uint64_t)n;
    }
    CHECK_EQ(tide_loop_get_stats(loop, &st), 0);
    o.iterations = st.iterations;
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    if (harness_fd_count() != fds || tide__alloc_live() != live)
        harness_fail(__FILE__, __LINE__,
                     "kind %d, call %ld, errno %d: %ld fds and %ld "
                     "allocations open after, %ld and %ld before",
                     (int)kind, n, err, harness_fd_count(), tide__alloc_live(),
                     fds, live);
    return o;
}

/* What a fault may end the scenario with besides success. */
static bool clear_error(int got, int injected)
{
    switch (got) {
    case -ECONNRESET: /* the server dropped the connection */
    case -EPIPE:
    case -ENODATA: /* ... before the echo came */
        return true;
    case -EINTR:
    case -EIO:       /* wrong data */
    case -ETIMEDOUT: /* hung */
        return false;
    default:
        return injected && got == -injected;
    }
}

static const struct kind {
    enum tide__sys_kind kind;
    const char *name;
    bool has_len;   /* a short call means something */
    bool readiness; /* on EAGAIN the op waits for the fd's next edge */
} kinds[] = {
    {TIDE__SYS_SOCKET, "socket", false, false},
    {TIDE__SYS_SETSOCKOPT, "setsockopt", false, false},
    {TIDE__SYS_BIND, "bind", false, false},
    {TIDE__SYS_LISTEN, "listen", false, false},
    {TIDE__SYS_GETNAME, "getsockname/getpeername", false, false},
    {TIDE__SYS_FCNTL, "fcntl", false, false},
    {TIDE__SYS_CONNECT, "connect", false, false},
    {TIDE__SYS_GETSOCKOPT, "getsockopt", false, false},
    {TIDE__SYS_ACCEPT, "accept4", false, true},
    {TIDE__SYS_RECV, "recv", true, true},
    {TIDE__SYS_SEND, "send", true, true},
    {TIDE__SYS_SHUTDOWN, "shutdown", false, false},
    {TIDE__SYS_CLOSE, "close", false, false},
    {TIDE__SYS_EPOLL_CTL, "epoll_ctl", false, false},
    {TIDE__SYS_EPOLL_WAIT, "epoll_wait", false, false},
    {TIDE__SYS_POLL, "poll", false, false},
};

static const int faults[] = {EAGAIN, EINTR, ENOMEM, EMFILE, 0 /* short */};

TEST(every_call_of_the_stream_server_and_connect_paths_under_every_fault)
{
    struct outcome clean = run(TIDE__SYS_SOCKET, 0, 0, 0);
    tide_loop *probe = tide_loop_new();
    CHECK_NOT_NULL(probe);
    bool edge_triggered = strcmp(tide_loop_backend(probe), "poll") != 0;
    CHECK_EQ(tide_loop_close(probe), 0);
    CHECK_ERR(clean.err, 0);
    int runs = 0, bad = 0;
    long max_n = HARNESS_VALGRIND ? 2 : 8; /* memcheck: ~0.1 s a run */

    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const struct kind *kd = &kinds[k];
        uint64_t made = run(kd->kind, 0, 0, 0).calls;
        for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
            int err = faults[f];
            if (!err && !kd->has_len)
                continue;
            /* The epoll backend is edge-triggered and trusts EAGAIN
             * (true on Linux sockets): an injected, false EAGAIN from a
             * call with the fd still ready waits for the next edge,
             * which never comes here (the peer waits for an answer).
             * Telling a false EAGAIN from a true one would cost a
             * system call per wait, so the epoll rows leave it out; the
             * poll() backend, level-triggered, runs them. */
            if (err == EAGAIN && kd->readiness && edge_triggered)
                continue;
            /* For the same reason a TCP stream trusts a short recv (the
             * kernel's queue was empty: it waits for the next edge
             * rather than making a recv that would see EAGAIN; ready.c),
             * so an injected short recv is left out there too. */
            if (!err && kd->kind == TIDE__SYS_RECV && edge_triggered)
                continue;
            for (long n = 1; n <= (long)made && n <= max_n; n++) {
                struct outcome o = run(kd->kind, n, err, 1);
                runs++;
                if (o.err && !clear_error(o.err, err))
                    bad++, fprintf(stderr,
                                   "%s, call %ld, %s: the scenario ended "
                                   "with %s\n",
                                   kd->name, n,
                                   err ? tide_err_name(-err) : "short",
                                   tide_err_name(o.err));
                /* a clean run takes ~20 iterations; a retry after
                 * EMFILE waits 0.1 s: no spin is far below this */
                if (o.iterations > 20 * clean.iterations + 200)
                    bad++, fprintf(stderr,
                                   "%s, call %ld, %s: %llu loop iterations "
                                   "(a clean run: %llu)\n",
                                   kd->name, n,
                                   err ? tide_err_name(-err) : "short",
                                   (unsigned long long)o.iterations,
                                   (unsigned long long)clean.iterations);
            }
        }
    }
    CHECK_EQ(bad, 0);
    CHECK(runs > 60);
    LEAK_GATE();
}

/* HAZARDS B12: the same scenario with its 1st, 2nd, ... allocation
 * failing, until it makes fewer allocations than that: each run ends in
 * time with success or a clear error (-ENOMEM, or what it causes at the
 * other end), nothing leaked, and the next run works. With compact
 * tasks too, where a task can fail to start for want of memory to save
 * the frames of the one it displaces: the accept task must be started
 * again, a connection whose task never ran let go. (Found here: a
 * server whose accept task failed so stopped accepting for good, and a
 * connection whose task never ran leaked, its client left waiting.) */
TEST(every_allocation_of_the_stream_server_and_connect_paths_fails_cleanly)
{
    for (int compact = 0; compact < 2; compact++) {
        compact_loops = compact;
        long n = 1;
        struct outcome o;
        while ((o = run(ALLOCATION, n, 0, 0)).fired) {
            if (o.err && !clear_error(o.err, ENOMEM))
                harness_fail(__FILE__, __LINE__,
                             "%s: allocation %ld failed: the scenario ended "
                             "with %s",
                             compact ? "compact" : "plain", n,
                             tide_err_name(o.err));
            CHECK(++n < 5000);
        }
        CHECK_ERR(o.err, 0); /* the first run the failure did not reach */
        CHECK(n > 20);       /* the scenario allocates (records, buffers) */
    }
    compact_loops = false;
    LEAK_GATE();
}

/* ---- HAZARDS B32: what an idle connection costs ------------------------ */

#define IDLE_CONNS 1000

static long idle_kib_per_conn;

static void *idle_body(void *arg)
{
    tide_server_options o = {.backlog = 4096};
    static int fds[IDLE_CONNS];
    (void)arg;

    tide_server *srv = tide_start_server(NULL, "127.0.0.1", 0, echo, NULL, &o);
    CHECK_NOT_NULL(srv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(port_of(srv))};
    long before = harness_rss_kib();
    for (int i = 0; i < IDLE_CONNS; i++) {
        fds[i] =
            socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(fds[i] >= 0);
        CHECK(connect(fds[i], (struct sockaddr *)&a, sizeof a) == 0 ||
              errno == EINPROGRESS);
    }
    double t0 = harness_now();
    while (tide_server_connections(srv) < IDLE_CONNS &&
           harness_now() - t0 < 5 * harness_timeout_mult())
        CHECK_EQ(tide_sleep(0.001), 0);
    CHECK_EQ(tide_server_connections(srv), IDLE_CONNS);
    CHECK_EQ(tide_sleep(0.01), 0); /* every handler is in its read */
    idle_kib_per_conn = (harness_rss_kib() - before) / IDLE_CONNS;
    for (int i = 0; i < IDLE_CONNS; i++)
        CHECK_EQ(close(fds[i]), 0);
    CHECK_EQ(tide_server_close(srv, 5), 0);
    return NULL;
}

/* 1,000 connections whose handlers wait in a read: each costs what its
 * task's stack has touched and the stream's record, not its 64 KiB read
 * buffer (its pages are touched only when bytes come). The budget stated
 * in docs/hazards.md: 32 KiB of resident memory per idle connection
 * (8.8 KiB measured with bench/w5_echo and 5,000 connections). */
TEST(b32_an_idle_connection_costs_at_most_32_kib)
{
    if (HARNESS_ASAN || HARNESS_TSAN || HARNESS_VALGRIND)
        SKIP("a sanitizer or memcheck changes what memory costs");
    harness_want_fds(IDLE_CONNS * 2 + 100);
    CHECK_ERR(harness_run_body(idle_body, NULL), 0);
    fprintf(stderr, "note: %ld KiB per idle connection\n", idle_kib_per_conn);
    CHECK(idle_kib_per_conn <= 32);
    LEAK_GATE();
}
