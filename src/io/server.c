/* Servers: asyncio's start_server and start_unix_server, serve_forever,
 * close / wait_closed and abort_clients.
 *
 * A server is a listening socket, an accept task, and the live
 * connections: each a task running the user's handler on a stream
 * (stream.c), linked in `conns`. The accept task accepts one connection
 * at a time and yields every ACCEPT_BURST accepts, so a storm of
 * connects cannot starve the connections already served (HAZARDS B11).
 * An accept that fails for lack of fds or memory (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM) is reported and followed by a pause of RETRY_DELAY
 * before the next one: the pending connection stays in the backlog and
 * is accepted once fds are free, and the loop never spins (B09). A
 * connection whose setup fails is closed and reported; accepting goes
 * on (B10). A task can end without running its body (cancelled, or out
 * of memory, before it started), so a connection is let go by its
 * task's done callback, and an accept task that ends while the server is
 * open is reported and started again (after RETRY_DELAY if that fails).
 *
 * Closing stops the accept task, closes the listening socket, then waits
 * for the connections (`idle` is set when none is left); after the
 * deadline their tasks are cancelled and waited for, so no handler
 * outlives the server. `refs` counts the owner and tasks in
 * tide_serve_forever, which wake when `closed` is set.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "base/alloc.h"
#include "base/list.h"
#include "base/sys.h"

#include <tide/stream.h>
#include <tide/sync.h>

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPT_BURST 32
#define RETRY_DELAY 0.1
#define DEFAULT_BACKLOG 511
#define DEFAULT_CLOSE_TIMEOUT 5.0

struct conn {
    struct tide__list link; /* tide_server.conns */
    tide_stream *s;         /* held while the handler runs */
    tide_future *task;
    tide_server *srv;
};

struct tide_server {
    tide_loop *loop;
    int fd; /* listening; -1 once closing */
    int family;
    int refs; /* owner + tasks in tide_serve_forever */
    tide_stream_handler handler;
    void *arg;
    tide_server_options opt;
    tide_future *acceptor;   /* the accept task, or NULL */
    tide_handle retry;       /* a pending restart of it, or 0 */
    bool closing;            /* stop_accepting began */
    struct tide__list conns; /* struct conn.link */
    size_t nconns;
    tide_event *idle;           /* set while nconns == 0 */
    tide_event *closed;         /* set once closing */
    char *path;                 /* a Unix socket's file, removed at close */
    struct tide__linger linger; /* on loop->lingering while it exists */
};

static void report(tide_server *srv, int err)
{
    if (srv->opt.on_error)
        srv->opt.on_error(err, srv->arg);
}

static void server_release(tide_server *srv)
{
    if (--srv->refs > 0)
        return;
    tide__list_remove(&srv->linger.link);
    tide_event_free(srv->idle);
    tide_event_free(srv->closed);
    tide__free(srv->path);
    tide__free(srv);
}

static void *conn_body(void *arg)
{
    struct conn *c = arg;
    tide_server *srv = c->srv;

    srv->handler(c->s, srv->arg);
    if (!tide__stream_closed(c->s))
        (void)tide_stream_close(c->s, srv->opt.close_timeout);
    return NULL;
}

/* Let connection c go: its task is done (or will never run). */
static void conn_free(struct conn *c)
{
    tide_server *srv = c->srv;

    if (!tide__stream_closed(c->s))
        (void)tide_stream_close(c->s, 0); /* the body never ran */
    tide__stream_release(c->s);
    tide__list_remove(&c->link);
    if (--srv->nconns == 0)
        tide_event_set(srv->idle);
    tide_future_release(c->task);
    tide__free(c);
}

/* c's task is done, whether its body ran or not: a task cancelled (the
 * server closing) or out of memory before it started never runs it, and
 * its connection must go all the same. */
static void conn_done(tide_future *f, void *arg)
{
    (void)f;
    conn_free(arg);
}

/* Serve accepted fd in a task of its own. 0 or -errno (fd closed). */
static int start_conn(tide_server *srv, int fd)
{
    tide_task_options topt = {.compact = srv->opt.compact};
    int one = 1;

    if (srv->family != AF_UNIX)
        (void)tide__sys_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                                   sizeof one);
    struct conn *c = tide__calloc(1, sizeof *c);
    if (!c) {
        tide_close(fd);
        return -ENOMEM;
    }
    c->srv = srv;
    c->s = tide_stream_new(fd, srv->opt.limit);
    if (!c->s) {
        int err = -errno;
        tide_close(fd);
        tide__free(c);
        return err;
    }
    tide__stream_hold(c->s);
    c->task = tide_create_task_ex(srv->loop, conn_body, c, &topt);
    if (!c->task) {
        int err = -errno;
        tide_stream_abort(c->s);
        tide__stream_release(c->s);
        tide__free(c);
        return err;
    }
    tide__list_push_back(&srv->conns, &c->link);
    srv->nconns++;
    tide_event_clear(srv->idle);
    int err = tide_future_add_done_callback(c->task, conn_done, c);
    if (err < 0) {
        tide_future_cancel(c->task); /* not started: its body never runs */
        tide_stream_abort(c->s);
        conn_free(c);
    }
    return err;
}

static bool out_of_resources(int err)
{
    return err == -EMFILE || err == -ENFILE || err == -ENOBUFS ||
           err == -ENOMEM;
}

static void *accept_body(void *arg)
{
    tide_server *srv = arg;
    unsigned burst = 0;

    while (srv->fd >= 0) {
        int fd = tide_sock_accept(srv->fd, NULL, NULL);
        if (fd == -ECANCELED || fd == -EBADF || fd == -EINVAL)
            break;
        if (fd < 0) {
            report(srv, fd);
            if (out_of_resources(fd) && tide_sleep(RETRY_DELAY) < 0)
                break;
            continue;
        }
        int err = start_conn(srv, fd);
        if (err < 0)
            report(srv, err);
        if (++burst % ACCEPT_BURST == 0 && tide_sleep(0) < 0)
            break;
    }
    return NULL;
}

static void acceptor_done(tide_future *f, void *arg);

/* Start the accept task: 0 or -errno. */
static int start_acceptor(tide_server *srv)
{
    tide_future *t = tide_create_task(srv->loop, accept_body, srv);

    if (!t)
        return -errno;
    int err = tide_future_add_done_callback(t, acceptor_done, srv);
    if (err < 0) {
        tide_future_cancel(t); /* not started: its body never runs */
        tide_future_release(t);
        return err;
    }
    srv->acceptor = t;
    return 0;
}

static void retry_acceptor(void *arg);

/* Start the accept task again, or try again after RETRY_DELAY. */
static void restart_acceptor(tide_server *srv)
{
    int err = start_acceptor(srv);

    if (err == 0)
        return;
    report(srv, err);
    srv->retry = tide_call_later(srv->loop, RETRY_DELAY, retry_acceptor, srv);
}

static void retry_acceptor(void *arg)
{
    tide_server *srv = arg;

    srv->retry = 0;
    restart_acceptor(srv);
}

/* The accept task is done. While the server is open it ends only when it
 * could not start (out of memory for its stack or frames: it failed
 * without running its body); it is reported and started again, so the
 * server never stops accepting for good (HAZARDS B10). */
static void acceptor_done(tide_future *f, void *arg)
{
    tide_server *srv = arg;
    int err = tide_future_result(f, NULL);

    if (srv->closing || f != srv->acceptor || err == 0 || err == -ECANCELED)
        return;
    report(srv, err);
    tide_future_release(srv->acceptor);
    srv->acceptor = NULL;
    restart_acceptor(srv);
}

/* The loop closes with the server still open: every task has ended (the
 * acceptor, the handlers and tide_serve_forever's callers were
 * cancelled), so close the socket and free the server (tide/stream.h:
 * its pointer is then invalid). */
static void drop_at_close(struct tide__linger *l)
{
    tide_server *srv = tide__container_of(l, tide_server, linger);

    srv->closing = true;
    if (srv->retry)
        tide_handle_cancel(srv->loop, srv->retry);
    if (srv->acceptor)
        tide_future_release(srv->acceptor);
    srv->acceptor = NULL;
    /* Their tasks ended in the close, their done calls were dropped. */
    while (!tide__list_empty(&srv->conns))
        conn_free(tide__container_of(srv->conns.next, struct conn, link));
    if (srv->fd >= 0) {
        tide_close(srv->fd);
        srv->fd = -1;
        if (srv->path)
            unlink(srv->path);
    }
    srv->refs = 1;
    server_release(srv);
}

/* Listen on a fresh socket bound to addr: the fd, or -errno. */
static int listen_on(const struct sockaddr *addr, socklen_t len, int backlog)
{
    int one = 1;
    int fd = tide__sys_socket(addr->sa_family,
                              SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (addr->sa_family != AF_UNIX)
        (void)tide__sys_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
                                   sizeof one);
    if (tide__sys_bind(fd, addr, len) < 0 ||
        tide__sys_listen(fd, backlog) < 0) {
        int err = -errno;
        tide__sys_close(fd);
        return err;
    }
    return fd;
}

static bool options_ok(const tide_server_options *o)
{
    return o->backlog >= 0 && !isnan(o->close_timeout) &&
           o->close_timeout >= 0;
}

static tide_server *start(tide_loop *loop, const struct sockaddr *addr,
                          socklen_t len, const char *path,
                          tide_stream_handler handler, void *arg,
                          const tide_server_options *opt)
{
    tide_server_options o = opt ? *opt : (tide_server_options){0};
    int err = -EINVAL;

    loop = tide__loop_resolve(loop);
    if (!handler || !loop || loop->closed || !options_ok(&o)) {
        errno = EINVAL;
        return NULL;
    }
    o.backlog = o.backlog ? o.backlog : DEFAULT_BACKLOG;
    o.close_timeout =
        o.close_timeout ? o.close_timeout : DEFAULT_CLOSE_TIMEOUT;
    tide_server *srv = tide__calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->loop = loop;
    srv->family = addr->sa_family;
    srv->refs = 1;
    srv->handler = handler;
    srv->arg = arg;
    srv->opt = o;
    tide__list_init(&srv->conns);
    srv->linger.drop = drop_at_close;
    tide__list_push_back(&loop->lingering, &srv->linger.link);
    srv->idle = tide_event_new();
    srv->closed = tide_event_new();
    srv->path = path ? tide__strdup(path) : NULL;
    if (!srv->idle || !srv->closed || (path && !srv->path)) {
        err = -ENOMEM;
        goto free_srv;
    }
    tide_event_set(srv->idle);
    srv->fd = listen_on(addr, len, o.backlog);
    if (srv->fd < 0) {
        err = srv->fd;
        goto free_srv;
    }
    err = start_acceptor(srv);
    if (err < 0)
        goto close_fd;
    return srv;
close_fd:
    tide_close(srv->fd);
    if (path)
        unlink(path);
free_srv:
    server_release(srv);
    errno = -err;
    return NULL;
}

tide_server *tide_start_server(tide_loop *loop, const char *host,
                               uint16_t port, tide_stream_handler handler,
                               void *arg, const tide_server_options *opt)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags =
                                 AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res;
    char service[8];

    if (!host)
        hints.ai_family = AF_INET;
    snprintf(service, sizeof service, "%u", (unsigned)port);
    int r = getaddrinfo(host, service, &hints, &res);
    if (r != 0) {
        errno = r == EAI_NONAME ? ENOTSUP : r == EAI_MEMORY ? ENOMEM : EINVAL;
        return NULL;
    }
    tide_server *srv =
        start(loop, res->ai_addr, res->ai_addrlen, NULL, handler, arg, opt);
    int err = errno;
    freeaddrinfo(res);
    errno = err;
    return srv;
}

tide_server *tide_start_unix_server(tide_loop *loop, const char *path,
                                    tide_stream_handler handler, void *arg,
                                    const tide_server_options *opt)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct stat st;

    if (!path) {
        errno = EINVAL;
        return NULL;
    }
    if (strlen(path) >= sizeof a.sun_path) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    strcpy(a.sun_path, path);
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path); /* a stale socket file */
    return start(loop, (struct sockaddr *)&a, sizeof a, path, handler, arg,
                 opt);
}

int tide_server_sockname(tide_server *srv, struct sockaddr *addr,
                         socklen_t *len)
{
    if (!srv || !addr || !len)
        return -EINVAL;
    if (srv->fd < 0)
        return -EBADF;
    return tide__sys_getsockname(srv->fd, addr, len) < 0 ? -errno : 0;
}

size_t tide_server_connections(const tide_server *srv)
{
    return srv ? srv->nconns : 0;
}

int tide_serve_forever(tide_server *srv)
{
    if (!srv)
        return -EINVAL;
    srv->refs++;
    int err = tide_event_wait(srv->closed);
    server_release(srv);
    return err;
}

/* Stop the accept task and close the listening socket. */
static void stop_accepting(tide_server *srv)
{
    srv->closing = true;
    tide_event_set(srv->closed);
    if (srv->retry)
        tide_handle_cancel(srv->loop, srv->retry);
    srv->retry = 0;
    if (srv->acceptor) {
        tide_future_cancel(srv->acceptor);
        (void)tide_await(srv->acceptor, NULL); /* returns once it is done */
        tide_future_release(srv->acceptor);
        srv->acceptor = NULL;
    }
    tide_close(srv->fd);
    srv->fd = -1;
    if (srv->path)
        unlink(srv->path);
}

/* Cancel every live connection's handler (aborting its stream first if
 * `abort`), and wait until all have returned. -ECANCELED if the caller
 * was cancelled meanwhile (the wait goes on all the same). */
static int end_all(tide_server *srv, bool abort)
{
    int err = 0;

    for (struct tide__list *l = srv->conns.next; l != &srv->conns;
         l = l->next) {
        struct conn *c = tide__container_of(l, struct conn, link);
        if (abort && !tide__stream_closed(c->s))
            tide_stream_abort(c->s);
        tide_future_cancel(c->task);
    }
    while (srv->nconns)
        if (tide_event_wait(srv->idle) < 0)
            err = -ECANCELED;
    return err;
}

int tide_server_close(tide_server *srv, double timeout)
{
    int err = 0;

    if (!srv || isnan(timeout))
        return -EINVAL;
    if (!tide_current_task())
        return -EPERM;
    stop_accepting(srv);
    if (srv->nconns) {
        if (timeout <= 0) {
            err = -ETIMEDOUT;
        } else if (isinf(timeout)) {
            err = tide_event_wait(srv->idle);
        } else {
            tide_timeout *scope = tide_timeout_begin(timeout);
            err = scope ? tide_timeout_end(scope, tide_event_wait(srv->idle))
                        : -ENOMEM;
        }
        if (srv->nconns) {
            int e = end_all(srv, false);
            err = err ? err : e;
        }
    }
    server_release(srv);
    return err;
}

int tide_server_abort(tide_server *srv)
{
    if (!srv)
        return -EINVAL;
    if (!tide_current_task())
        return -EPERM;
    stop_accepting(srv);
    int err = end_all(srv, true);
    server_release(srv);
    return err;
}
