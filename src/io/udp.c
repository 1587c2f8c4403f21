/* UDP endpoints (asyncio's create_datagram_endpoint): opening one from
 * numeric hosts or socket addresses, and its sends and receives, each a
 * backend op run for the calling task by op.c (so compact tasks and
 * cancellation follow tide/io.h's rules). See tide/udp.h for the rules.
 *
 * Receives pass MSG_TRUNC, so the system call returns a datagram's real
 * length even when the buffer was shorter: a length over the buffer's
 * is turned into -EMSGSIZE here, and a peek (MSG_PEEK | MSG_TRUNC into
 * no buffer) learns the next datagram's length without taking it.
 *
 * An endpoint is the socket and, when connected, the peer's address
 * (for tide_udp_sendto's check). Nothing of it is read after a call's
 * op has run, so tide_udp_close may free it at once while other tasks
 * are suspended in its calls: tide_close wakes them with -EBADF.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "base/alloc.h"
#include "base/sys.h"

#include <tide/udp.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

struct tide_udp {
    int fd;
    int family; /* AF_INET or AF_INET6 */
    bool connected;
    socklen_t peer_len;           /* 0 unless connected */
    struct sockaddr_storage peer; /* the remote address given at open */
};

/* ---- addresses -------------------------------------------------------- */

static bool known_family(int family)
{
    return family == AF_UNSPEC || family == AF_INET || family == AF_INET6;
}

/* 0 if addr (len bytes) is a whole IPv4 or IPv6 address; -EAFNOSUPPORT
 * for another family; -EINVAL if too short. */
static int check_addr(const struct sockaddr *addr, socklen_t len)
{
    if (len < (socklen_t)sizeof addr->sa_family)
        return -EINVAL;
    if (addr->sa_family == AF_INET)
        return len < (socklen_t)sizeof(struct sockaddr_in) ? -EINVAL : 0;
    if (addr->sa_family == AF_INET6)
        return len < (socklen_t)sizeof(struct sockaddr_in6) ? -EINVAL : 0;
    return -EAFNOSUPPORT;
}

static uint16_t port_of(const struct sockaddr *addr)
{
    if (addr->sa_family == AF_INET)
        return ((const struct sockaddr_in *)addr)->sin_port;
    return ((const struct sockaddr_in6 *)addr)->sin6_port;
}

/* a and b name the same family, address and port. */
static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family || port_of(a) != port_of(b))
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0 &&
           x->sin6_scope_id == y->sin6_scope_id;
}

/* Numeric host and port of `family` (0: either) into *out. 0, -EINVAL
 * (not a numeric address of the family) or -ENOMEM. */
static int parse(const char *host, uint16_t port, int family,
                 struct sockaddr_storage *out, socklen_t *len)
{
    struct addrinfo hints = {.ai_family = family,
                             .ai_socktype = SOCK_DGRAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res;
    char service[8];

    snprintf(service, sizeof service, "%u", (unsigned)port);
    int r = getaddrinfo(host, service, &hints, &res);
    if (r == EAI_MEMORY)
        return -ENOMEM;
    if (r != 0)
        return -EINVAL;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* ---- opening and closing ---------------------------------------------- */

/* The family of an endpoint over local and/or remote (either may be
 * NULL; both checked), or -errno. */
static int family_of(const struct sockaddr *local, socklen_t local_len,
                     const struct sockaddr *remote, socklen_t remote_len,
                     int family)
{
    int err;

    if (!known_family(family))
        return -EAFNOSUPPORT;
    if (local && (err = check_addr(local, local_len)) < 0)
        return err;
    if (remote && (err = check_addr(remote, remote_len)) < 0)
        return err;
    if (remote && port_of(remote) == 0)
        return -EINVAL;
    int mine = local ? local->sa_family : remote ? remote->sa_family : family;
    if (mine == AF_UNSPEC || (family && family != mine) ||
        (local && remote && local->sa_family != remote->sa_family))
        return -EINVAL;
    return mine;
}

/* A new socket of fd's number is not an older file of that number to
 * any loop of this thread (tide/io.h, "Closing"). */
static void renew(int fd)
{
    struct tide__list *all = tide__thread_loops();

    for (struct tide__list *l = all->next; l != all; l = l->next) {
        tide_loop *loop = tide__container_of(l, tide_loop, thread_link);
        if (!loop->closed)
            tide__io_fd_op(loop, fd, TIDE__CLOSE_FRESH);
    }
}

static int set_flag(int fd, int name, bool on)
{
    int one = 1;

    if (!on)
        return 0;
    return tide__sys_setsockopt(fd, SOL_SOCKET, name, &one, sizeof one) < 0
               ? -errno
               : 0;
}

tide_udp *tide_udp_open_addr(const struct sockaddr *local, socklen_t local_len,
                             const struct sockaddr *remote,
                             socklen_t remote_len, const tide_udp_options *opt)
{
    static const tide_udp_options none;
    int err;

    if (!opt)
        opt = &none;
    int family = family_of(local, local_len, remote, remote_len, opt->family);
    if (family < 0) {
        errno = -family;
        return NULL;
    }
    tide_udp *u = tide__calloc(1, sizeof *u);
    if (!u)
        return NULL; /* errno: ENOMEM */
    u->family = family;
    u->fd =
        tide__sys_socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        err = -errno;
        goto free_u;
    }
    renew(u->fd);
    if ((err = set_flag(u->fd, SO_REUSEPORT, opt->reuse_port)) < 0 ||
        (err = set_flag(u->fd, SO_BROADCAST, opt->allow_broadcast)) < 0)
        goto close_fd;
    if (local && tide__sys_bind(u->fd, local, local_len) < 0) {
        err = -errno;
        goto close_fd;
    }
    if (remote) {
        /* A UDP connect only sets the peer: it never is in progress. */
        if (connect(u->fd, remote, remote_len) < 0) {
            err = -errno;
            goto close_fd;
        }
        u->connected = true;
        u->peer_len = remote_len < (socklen_t)sizeof u->peer
                          ? remote_len
                          : (socklen_t)sizeof u->peer;
        memcpy(&u->peer, remote, u->peer_len);
    }
    return u;
close_fd:
    tide_close(u->fd);
free_u:
    tide__free(u);
    errno = -err;
    return NULL;
}

tide_udp *tide_udp_open(const char *local_host, uint16_t local_port,
                        const char *remote_host, uint16_t remote_port,
                        const tide_udp_options *opt)
{
    struct sockaddr_storage local, remote;
    socklen_t local_len = 0, remote_len = 0;
    int family = opt ? opt->family : AF_UNSPEC;
    int err = 0;

    if (!known_family(family))
        err = -EAFNOSUPPORT;
    else if ((!local_host && local_port) || (!remote_host && remote_port) ||
             (remote_host && !remote_port))
        err = -EINVAL;
    else if (local_host && (err = parse(local_host, local_port, family, &local,
                                        &local_len)) == 0)
        family = local.ss_family;
    if (!err && remote_host)
        err = parse(remote_host, remote_port, family, &remote, &remote_len);
    if (err < 0) {
        errno = -err;
        return NULL;
    }
    return tide_udp_open_addr(local_host ? (struct sockaddr *)&local : NULL,
                              local_len,
                              remote_host ? (struct sockaddr *)&remote : NULL,
                              remote_len, opt);
}

int tide_udp_close(tide_udp *u)
{
    if (!u)
        return -EINVAL;
    tide_close(u->fd);
    tide__free(u);
    return 0;
}

int tide_udp_fd(const tide_udp *u)
{
    return u ? u->fd : -EINVAL;
}

static int name_of(const tide_udp *u, struct sockaddr *addr, socklen_t *len,
                   int (*get)(int, struct sockaddr *, socklen_t *))
{
    if (!u || !addr || !len)
        return -EINVAL;
    return get(u->fd, addr, len) < 0 ? -errno : 0;
}

int tide_udp_sockname(const tide_udp *u, struct sockaddr *addr, socklen_t *len)
{
    return name_of(u, addr, len, getsockname);
}

int tide_udp_peername(const tide_udp *u, struct sockaddr *addr, socklen_t *len)
{
    return name_of(u, addr, len, getpeername);
}

/* ---- sending and receiving -------------------------------------------- */

/* Run one op of `kind` on u's socket for the calling task (op.c). */
static ssize_t run(const tide_udp *u, struct tide__op op, const char *what)
{
    op.fd = u->fd;
    op.offset = -1;
    return tide__io_run(&op, what);
}

ssize_t tide_udp_sendto(tide_udp *u, const void *buf, size_t len,
                        const struct sockaddr *addr, socklen_t addrlen)
{
    if (!u || (!buf && len))
        return -EINVAL;
    if (addr && u->connected) {
        int err = check_addr(addr, addrlen);
        if (err < 0)
            return err;
        if (!same_addr(addr, (const struct sockaddr *)&u->peer))
            return -EISCONN;
        addr = NULL; /* the connected socket's own peer */
    } else if (addr && addrlen >= (socklen_t)sizeof addr->sa_family &&
               (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) &&
               addr->sa_family != u->family) {
        return -EINVAL; /* the kernel: -EAFNOSUPPORT, or a dual-stack send */
    }
    struct tide__op op = {.kind = TIDE__OP_SEND,
                          .buf = (void *)buf, /* only read */
                          .len = len,
                          .addr = (struct sockaddr *)addr, /* only read */
                          .addr_len = addrlen};
    return run(u, op, addr ? "udp sendto" : "udp send");
}

ssize_t tide_udp_send(tide_udp *u, const void *buf, size_t len)
{
    return tide_udp_sendto(u, buf, len, NULL, 0);
}

ssize_t tide_udp_recvfrom(tide_udp *u, void *buf, size_t len,
                          struct sockaddr *addr, socklen_t *addrlen)
{
    if (!u || (!buf && len) || (addr && !addrlen))
        return -EINVAL;
    struct tide__op op = {.kind = TIDE__OP_RECV,
                          .buf = buf,
                          .len = len,
                          .flags = MSG_TRUNC,
                          .addr = addr,
                          .addrlen = addr ? addrlen : NULL};
    ssize_t r = run(u, op, "udp recv");
    return r > 0 && (size_t)r > len ? -EMSGSIZE : r;
}

ssize_t tide_udp_recv(tide_udp *u, void *buf, size_t len)
{
    return tide_udp_recvfrom(u, buf, len, NULL, NULL);
}

ssize_t tide_udp_peek_size(tide_udp *u)
{
    if (!u)
        return -EINVAL;
    struct tide__op op = {.kind = TIDE__OP_RECV,
                          .flags = MSG_PEEK | MSG_TRUNC};
    return run(u, op, "udp peek");
}
