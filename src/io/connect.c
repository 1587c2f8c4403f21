/* Connecting: asyncio's open_connection and open_unix_connection, and
 * the Happy Eyeballs seam (RFC 8305) that a name's resolved addresses go
 * through.
 *
 * tide_open_connection_addrinfo orders the addresses with the families
 * interleaved, then starts one connect attempt (a task of its own, so
 * that attempts overlap) and waits for any attempt to end, at most
 * `delay` seconds; on a timeout or a failure it starts the next one. The
 * first attempt to connect wins; the others are cancelled, awaited and
 * their sockets closed, so nothing outlives the call. When all fail, the
 * last failure is returned. tide_open_connection feeds it what
 * tide_getaddrinfo (tide/pool.h) finds: a numeric host inline, a name
 * looked up on the pool's DNS class while the caller waits.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "base/alloc.h"
#include "base/sys.h"

#include <tide/pool.h>
#include <tide/stream.h>

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#define DEFAULT_DELAY 0.25

struct attempt {
    const struct addrinfo *ai;    /* the caller's: read by the caller only */
    struct sockaddr_storage addr; /* a copy of ai's, which the task reads */
    socklen_t addrlen;
    int fd;            /* -1 once handed on or closed */
    tide_future *task; /* NULL: not started, or could not start */
};

static void *attempt_body(void *arg)
{
    struct attempt *a = arg;
    int r = tide_sock_connect(a->fd, (struct sockaddr *)&a->addr, a->addrlen);

    return r < 0 ? tide_fail(r) : NULL;
}

/* list in RFC 8305 order: the first address's family, then the other,
 * in turn, each family in list order. Returns the count. */
static size_t interleave(const struct addrinfo *list, struct attempt *out)
{
    const struct addrinfo *a = list, *b = list;
    int first = list->ai_family;
    size_t n = 0;

    for (;;) {
        while (a && a->ai_family != first)
            a = a->ai_next;
        while (b && b->ai_family == first)
            b = b->ai_next;
        if (!a && !b)
            return n;
        if (a) {
            out[n++].ai = a;
            a = a->ai_next;
        }
        if (b) {
            out[n++].ai = b;
            b = b->ai_next;
        }
    }
}

/* Start attempt a: 0, or the socket/task error (a is then done). Its
 * task reads a copy of the address: the caller's list may be in the
 * frames of a compact task, copied away while it waits (README). */
static int start(struct attempt *a)
{
    if (a->ai->ai_addrlen > sizeof a->addr)
        return -EINVAL;
    memcpy(&a->addr, a->ai->ai_addr, a->ai->ai_addrlen);
    a->addrlen = a->ai->ai_addrlen;
    a->fd = tide__sys_socket(a->ai->ai_family,
                             a->ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                             a->ai->ai_protocol);
    if (a->fd < 0)
        return -errno;
    a->task = tide_create_task(NULL, attempt_body, a);
    if (!a->task) {
        int err = -errno;
        tide_close(a->fd);
        a->fd = -1;
        return err;
    }
    return 0;
}

/* End attempt a: cancel it, wait for it, close its socket. */
static void finish(struct attempt *a)
{
    if (!a->task)
        return;
    tide_future_cancel(a->task);
    (void)tide_await(a->task, NULL); /* returns once it is done */
    tide_future_release(a->task);
    a->task = NULL;
    if (a->fd >= 0)
        tide_close(a->fd);
    a->fd = -1;
}

static int wrap(int fd, int family, size_t limit, tide_stream **out)
{
    int one = 1;

    if (family == AF_INET || family == AF_INET6)
        (void)tide__sys_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                                   sizeof one);
    *out = tide_stream_new(fd, limit);
    if (*out)
        return 0;
    int err = -errno;
    tide_close(fd);
    return err;
}

/* Run the attempts until one connects: its index, or -1 with the last
 * error in *err. */
static ssize_t race(struct attempt *at, size_t n, double delay,
                    tide_future **live, tide_future **done, int *err)
{
    size_t next = 0;

    for (;;) {
        if (next < n) {
            int e = start(&at[next++]);
            if (e < 0) {
                *err = e;
                continue;
            }
        }
        size_t k = 0, ndone = 0;
        for (size_t i = 0; i < next; i++)
            if (at[i].task)
                live[k++] = at[i].task;
        if (!k) {
            if (next == n)
                return -1;
            continue;
        }
        int r =
            tide_wait(live, k, TIDE_FIRST_COMPLETED,
                      next < n ? delay : INFINITY, done, &ndone, NULL, NULL);
        if (r < 0) {
            *err = r;
            return -1;
        }
        for (size_t i = 0; i < next; i++) {
            if (!at[i].task || !tide_future_done(at[i].task))
                continue;
            int e = tide_future_result(at[i].task, NULL);
            if (e == 0)
                return (ssize_t)i;
            *err = e;
            finish(&at[i]);
        }
    }
}

int tide_open_connection_addrinfo(const struct addrinfo *list, double delay,
                                  size_t limit, tide_stream **out)
{
    size_t n = 0;

    if (out)
        *out = NULL;
    if (!list || !out || isnan(delay) || delay < 0)
        return -EINVAL;
    if (!tide_current_task())
        return -EPERM;
    for (const struct addrinfo *a = list; a; a = a->ai_next)
        n++;
    struct attempt *at = tide__calloc(n, sizeof *at);
    tide_future **fs = tide__calloc(2 * n, sizeof *fs);
    if (!at || !fs) {
        tide__free(at);
        tide__free(fs);
        return -ENOMEM;
    }
    interleave(list, at);
    for (size_t i = 0; i < n; i++)
        at[i].fd = -1;
    int err = -ECONNREFUSED;
    ssize_t win =
        race(at, n, delay > 0 ? delay : DEFAULT_DELAY, fs, fs + n, &err);
    int fd = -1, family = 0;
    if (win >= 0) {
        fd = at[win].fd;
        family = at[win].ai->ai_family;
        at[win].fd = -1;
    }
    for (size_t i = 0; i < n; i++)
        finish(&at[i]);
    tide__free(at);
    tide__free(fs);
    return win >= 0 ? wrap(fd, family, limit, out) : err;
}

int tide_open_connection(const char *host, uint16_t port, size_t limit,
                         tide_stream **out)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_protocol = IPPROTO_TCP};
    struct addrinfo *res = NULL;
    char service[8];

    if (out)
        *out = NULL;
    if (!host || !out)
        return -EINVAL;
    if (!tide_current_task())
        return -EPERM;
    snprintf(service, sizeof service, "%u", (unsigned)port);
    int r = tide_getaddrinfo(host, service, &hints, &res);
    if (r < 0)
        return r;
    r = tide_open_connection_addrinfo(res, 0, limit, out);
    freeaddrinfo(res);
    return r;
}

int tide_open_unix_connection(const char *path, size_t limit,
                              tide_stream **out)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};

    if (out)
        *out = NULL;
    if (!path || !out)
        return -EINVAL;
    if (strlen(path) >= sizeof a.sun_path)
        return -ENAMETOOLONG;
    strcpy(a.sun_path, path);
    int fd = tide__sys_socket(AF_UNIX,
                              SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int r = tide_sock_connect(fd, (struct sockaddr *)&a, sizeof a);
    if (r < 0) {
        tide_close(fd);
        return r;
    }
    return wrap(fd, AF_UNIX, limit, out);
}
