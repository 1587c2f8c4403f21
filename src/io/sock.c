/* The socket calls (asyncio's loop.sock_*) and tide_close: each checks
 * its arguments, describes its op and runs it for the calling task
 * (op.c). See tide/io.h for the rules they share.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "base/sys.h"

#include <errno.h>

static struct tide__op op_of(uint8_t kind, int fd, void *buf, size_t len,
                             int flags)
{
    return (struct tide__op){.kind = kind,
                             .fd = fd,
                             .buf = buf,
                             .len = len,
                             .flags = flags,
                             .offset = -1};
}

int tide_sock_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    if (fd < 0)
        return -EBADF;
    if (addr && !addrlen)
        return -EINVAL;
    struct tide__op op =
        op_of(TIDE__OP_ACCEPT, fd, NULL, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
    op.addr = addr;
    op.addrlen = addr ? addrlen : NULL;
    return (int)tide__io_run(&op, "sock accept");
}

int tide_sock_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    if (fd < 0)
        return -EBADF;
    if (!addr)
        return -EINVAL;
    struct tide__op op = op_of(TIDE__OP_CONNECT, fd, NULL, 0, 0);
    op.addr = (struct sockaddr *)addr; /* only read */
    op.addr_len = addrlen;
    return (int)tide__io_run(&op, "sock connect");
}

ssize_t tide_sock_recvfrom(int fd, void *buf, size_t len, int flags,
                           struct sockaddr *addr, socklen_t *addrlen)
{
    if (fd < 0)
        return -EBADF;
    if ((!buf && len) || (addr && !addrlen))
        return -EINVAL;
    if (!len)
        return 0;
    struct tide__op op = op_of(TIDE__OP_RECV, fd, buf, len, flags);
    op.addr = addr;
    op.addrlen = addr ? addrlen : NULL;
    return tide__io_run(&op, "sock recv");
}

ssize_t tide_sock_recv(int fd, void *buf, size_t len, int flags)
{
    return tide_sock_recvfrom(fd, buf, len, flags, NULL, NULL);
}

ssize_t tide_sock_send(int fd, const void *buf, size_t len, int flags)
{
    if (fd < 0)
        return -EBADF;
    if (!buf && len)
        return -EINVAL;
    if (!len)
        return 0;
    struct tide__op op = op_of(TIDE__OP_SEND, fd, (void *)buf, len, flags);
    return tide__io_run(&op, "sock send");
}

ssize_t tide_sock_sendall(int fd, const void *buf, size_t len, int flags)
{
    const char *p = buf;
    size_t done = 0;

    if (fd < 0)
        return -EBADF;
    if (!buf && len)
        return -EINVAL;
    while (done < len) {
        ssize_t n = tide_sock_send(fd, p + done, len - done, flags);
        if (n < 0)
            return n;
        done += (size_t)n;
    }
    return (ssize_t)len;
}

ssize_t tide_sock_sendto(int fd, const void *buf, size_t len, int flags,
                         const struct sockaddr *addr, socklen_t addrlen)
{
    if (fd < 0)
        return -EBADF;
    if ((!buf && len) || !addr)
        return -EINVAL;
    struct tide__op op = op_of(TIDE__OP_SEND, fd, (void *)buf, len, flags);
    op.addr = (struct sockaddr *)addr; /* only read */
    op.addr_len = addrlen;
    return tide__io_run(&op, "sock sendto");
}

ssize_t tide_sock_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (fd < 0)
        return -EBADF;
    if (!msg)
        return -EINVAL;
    struct tide__op op = op_of(TIDE__OP_RECVMSG, fd, NULL, 0, flags);
    op.msg = msg;
    return tide__io_run(&op, "sock recvmsg");
}

ssize_t tide_sock_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (fd < 0)
        return -EBADF;
    if (!msg)
        return -EINVAL;
    struct tide__op op = op_of(TIDE__OP_SENDMSG, fd, NULL, 0, flags);
    op.msg = (struct msghdr *)msg; /* only read */
    return tide__io_run(&op, "sock sendmsg");
}

/* Let loop forget fd: its callbacks go, its ops end with -EBADF, its
 * backend stops watching it. */
static void detach_on(tide_loop *loop, int fd)
{
    if (loop->closed)
        return;
    tide__watch_forget(loop, fd);
    tide__io_fd_op(loop, fd, TIDE__CLOSE_DETACH);
}

/* Every loop of this thread forgets fd (the running one, and those made
 * here), then it is closed unless only detached. */
static int close_op(int fd, bool detach)
{
    bool running_seen = false;

    if (fd < 0)
        return -EBADF;
    struct tide__list *all = tide__thread_loops();
    for (struct tide__list *l = all->next; l != all; l = l->next) {
        tide_loop *loop = tide__container_of(l, tide_loop, thread_link);
        running_seen |= loop == tide__running;
        detach_on(loop, fd);
    }
    if (tide__running && !running_seen)
        detach_on(tide__running, fd);
    if (detach)
        return 0;
    /* Linux frees the fd even when close fails with EINTR. */
    return tide__sys_close(fd) < 0 && errno != EINTR ? -errno : 0;
}

int tide_close(int fd)
{
    return close_op(fd, false);
}

int tide_fd_detach(int fd)
{
    return close_op(fd, true);
}
