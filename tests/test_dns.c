/* DNS off the loop (include/tide/pool.h): tide_getaddrinfo and
 * tide_getnameinfo. Numeric hosts resolve inline, outside any task and
 * without a pool job; "localhost" goes through the DNS class; resolver
 * errors come back as negative errnos; bad input is -EINVAL; a lookup
 * that hangs (tide__dns_hook blocks, standing for a resolver that does
 * not answer) is cancelled at once from the caller's side, its thread
 * finishing later and its answer freed, while file-class and CPU work
 * completes meanwhile. Loopback and numeric names only: no network.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"
#include "dns_hang.h"
#include "pool_wait.h"

#include "io/io.h"

#include <tide/pool.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdatomic.h>

static int add_one(void *arg, void **result)
{
    *result = IPTR(PINT(arg) + 1);
    return 0;
}

TEST(numeric_hosts_resolve_inline_outside_a_task)
{
    struct addrinfo *res = NULL;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};

    tide__dns_hook = hang; /* a lookup on a thread would hang */
    CHECK_EQ(tide_getaddrinfo("127.0.0.1", "8080", &hints, &res), 0);
    CHECK_NOT_NULL(res);
    CHECK_EQ(res->ai_family, AF_INET);
    struct sockaddr_in *sin = (struct sockaddr_in *)res->ai_addr;
    CHECK_EQ(ntohs(sin->sin_port), 8080);
    CHECK_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    freeaddrinfo(res);
    CHECK_EQ(tide_getaddrinfo("::1", NULL, NULL, &res), 0);
    CHECK_EQ(res->ai_family, AF_INET6);
    freeaddrinfo(res);
    CHECK_EQ(tide_getaddrinfo(NULL, "80", &hints, &res), 0); /* loopback */
    freeaddrinfo(res);
    /* AI_NUMERICHOST asked for: a name is not looked up at all. */
    hints.ai_flags = AI_NUMERICHOST;
    CHECK_ERR(tide_getaddrinfo("localhost", "80", &hints, &res), -ENOENT);
    /* A name needs a task (the lookup suspends). */
    CHECK_ERR(tide_getaddrinfo("localhost", NULL, NULL, &res), -EPERM);
    char host[64], serv[16];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(443),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(tide_getnameinfo((struct sockaddr *)&a, sizeof a, host,
                              sizeof host, serv, sizeof serv,
                              NI_NUMERICHOST | NI_NUMERICSERV),
             0);
    CHECK_STR_EQ(host, "127.0.0.1");
    CHECK_STR_EQ(serv, "443");
    CHECK_ERR(tide_getnameinfo((struct sockaddr *)&a, sizeof a, host,
                               sizeof host, NULL, 0, 0),
              -EPERM);
    CHECK_EQ(atomic_load(&hung), 0);
    CHECK_EQ(tide__pool_live(), 0);
    tide__dns_hook = NULL;
    LEAK_GATE();
}

TEST(bad_input)
{
    struct addrinfo *res = NULL;
    struct addrinfo hints = {.ai_family = 12345};
    struct sockaddr_in a = {.sin_family = AF_INET};
    char host[64];

    CHECK_ERR(tide_getaddrinfo(NULL, NULL, NULL, &res), -EINVAL);
    CHECK_ERR(tide_getaddrinfo("127.0.0.1", NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(tide_getaddrinfo("127.0.0.1", NULL, &hints, &res),
              -EAFNOSUPPORT);
    hints = (struct addrinfo){.ai_flags = ~0};
    CHECK_ERR(tide_getaddrinfo("127.0.0.1", NULL, &hints, &res), -EINVAL);
    CHECK_ERR(tide_getnameinfo(NULL, sizeof a, host, sizeof host, NULL, 0,
                               NI_NUMERICHOST | NI_NUMERICSERV),
              -EINVAL);
    CHECK_ERR(tide_getnameinfo((struct sockaddr *)&a, 0, host, sizeof host,
                               NULL, 0, NI_NUMERICHOST | NI_NUMERICSERV),
              -EINVAL);
    CHECK_ERR(tide_getnameinfo((struct sockaddr *)&a, 4096, host, sizeof host,
                               NULL, 0, NI_NUMERICHOST),
              -EINVAL);
    CHECK_ERR(tide_getnameinfo((struct sockaddr *)&a, sizeof a, NULL, 0, NULL,
                               0, NI_NUMERICHOST | NI_NUMERICSERV),
              -EINVAL);
    CHECK_ERR(tide_getnameinfo((struct sockaddr *)&a, sizeof a, NULL, 10, NULL,
                               0, NI_NUMERICHOST | NI_NUMERICSERV),
              -EINVAL);
    CHECK_ERR(tide_getnameinfo((struct sockaddr *)&a, sizeof a, host, 3, NULL,
                               0, NI_NUMERICHOST | NI_NUMERICSERV),
              -ENOSPC); /* "0.0.0.0" does not fit in 3 bytes */
    CHECK_EQ(tide__pool_live(), 0);
    LEAK_GATE();
}

/* ---- lookups on the pool --------------------------------------------- */

static void *lookup_body(void *arg)
{
    int *out = arg;
    struct addrinfo *res = NULL;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};

    out[0] = tide_getaddrinfo("localhost", "80", &hints, &res);
    if (out[0] == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)res->ai_addr;
        out[1] = ntohl(sin->sin_addr.s_addr) >> 24 == 127;
        freeaddrinfo(res);
    }
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(80),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    out[2] = tide_getnameinfo((struct sockaddr *)&a, sizeof a, host,
                              sizeof host, serv, sizeof serv, NI_NUMERICSERV);
    out[3] = out[2] == 0 && host[0] != '\0' && strcmp(serv, "80") == 0;
    /* A name that cannot exist (.invalid is reserved: RFC 2606): no
     * network is needed to fail, with -ENOENT or -EHOSTUNREACH. */
    out[4] = tide_getaddrinfo("no-such-host.invalid", NULL, NULL, &res);
    return NULL;
}

TEST(localhost_through_the_dns_class)
{
    int out[5] = {0};

    CHECK_EQ(tide_run(lookup_body, out, NULL), 0);
    CHECK_EQ(out[0], 0);
    CHECK_EQ(out[1], 1);
    CHECK_EQ(out[2], 0);
    CHECK_EQ(out[3], 1);
    CHECK(out[4] == -ENOENT || out[4] == -EHOSTUNREACH);
    pool_quiet();
    LEAK_GATE();
}

struct hung_lookup {
    int err;
    bool done;
};

static void *hung_body(void *arg)
{
    struct hung_lookup *h = arg;
    struct addrinfo *res = NULL;

    h->err = tide_getaddrinfo("localhost", "80", NULL, &res);
    h->done = true;
    return NULL;
}

static void *hung_name_body(void *arg)
{
    struct hung_lookup *h = arg;
    char host[64];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    h->err = tide_getnameinfo((struct sockaddr *)&a, sizeof a, host,
                              sizeof host, NULL, 0, 0);
    h->done = true;
    return NULL;
}

/* Four lookups hang (for seconds, as far as anyone can tell) on a pool
 * of four; file and CPU work still completes, the lookups are cancelled
 * from their tasks at once, and their answers are freed when the
 * resolver finally returns. */
TEST(hung_lookups_leave_file_work_running_and_cancel_at_once)
{
    tide_loop *loop = tide_loop_new();
    struct hung_lookup h[4] = {{0}};
    tide_future *t[4];

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_pool_set_size(4), 0);
    tide__dns_hook = hang;
    for (int i = 0; i < 4; i++)
        t[i] =
            tide_create_task(loop, i % 2 ? hung_name_body : hung_body, &h[i]);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    wait_for(&hung, 2); /* the DNS class's limit: half the pool */
    for (int i = 0; i < 20; i++) {
        void *v = NULL;
        tide_future *f =
            tide_run_in_executor(loop, i % 2 ? TIDE_POOL_FILE : TIDE_POOL_CPU,
                                 add_one, IPTR(i), NULL);
        CHECK_NOT_NULL(f);
        CHECK_EQ(tide_run_until_complete(loop, f, &v), 0);
        CHECK_EQ(PINT(v), i + 1);
        tide_future_release(f);
    }
    CHECK_EQ(atomic_load(&hung), 2);
    double t0 = harness_now();
    for (int i = 0; i < 4; i++) {
        CHECK(!h[i].done);
        CHECK(tide_future_cancel(t[i]));
        CHECK_ERR(tide_run_until_complete(loop, t[i], NULL), 0);
        CHECK(h[i].done);
        CHECK_ERR(h[i].err, -ECANCELED);
        tide_future_release(t[i]);
    }
    CHECK(harness_now() - t0 < 1.0); /* the caller did not wait */
    CHECK_EQ(atomic_load(&hung), 2); /* the queued two never started */
    atomic_store(&release, 1);
    pool_quiet(); /* the two that ran end; their answers are freed */
    tide__dns_hook = NULL;
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* Loop close with lookups hung: close does not wait for them. */
TEST(close_with_hung_lookups)
{
    tide_loop *loop = tide_loop_new();
    struct hung_lookup h[2] = {{0}};
    tide_future *t[2];

    CHECK_NOT_NULL(loop);
    tide__dns_hook = hang;
    for (int i = 0; i < 2; i++)
        t[i] = tide_create_task(loop, hung_body, &h[i]);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    wait_for(&hung, 2);
    CHECK_EQ(tide_loop_close(loop), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_ERR(h[i].err, -ECANCELED);
        tide_future_release(t[i]);
    }
    atomic_store(&release, 1);
    pool_quiet();
    tide__dns_hook = NULL;
    LEAK_GATE();
}
