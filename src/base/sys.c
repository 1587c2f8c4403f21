/* The system-call seam: counting and fault injection (see sys.h).
 * SPDX-License-Identifier: MIT
 */
#include "base/sys.h"

#include "base/sanitize.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#ifdef TIDE_HAVE_URING
#include <liburing.h>
#endif
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Counters and countdowns are read only for their own values: nothing
 * else is published through them, so relaxed ordering is enough. */
static atomic_uint_least64_t counts[TIDE__SYS_COUNT];
static atomic_long countdown[TIDE__SYS_COUNT];
static int fault_err[TIDE__SYS_COUNT];
static size_t fault_len[TIDE__SYS_COUNT];
static atomic_int armed; /* faults armed, any kind: the fast-path test */

/* Count a call of `kind`; true if an armed fault fires on it now, with
 * *err the errno to fail with (0: make the call, cut to *len). */
static bool enter(enum tide__sys_kind kind, int *err, size_t *len)
{
    atomic_fetch_add_explicit(&counts[kind], 1, memory_order_relaxed);
    if (__builtin_expect(!atomic_load_explicit(&armed, memory_order_relaxed),
                         1))
        return false;
    if (atomic_load_explicit(&countdown[kind], memory_order_relaxed) <= 0 ||
        atomic_fetch_sub_explicit(&countdown[kind], 1, memory_order_relaxed) !=
            1)
        return false;
    atomic_fetch_sub_explicit(&armed, 1, memory_order_relaxed);
    *err = fault_err[kind];
    if (len && *len > fault_len[kind])
        *len = fault_len[kind];
    return true;
}

/* The common shape: a fault with an errno fails the call unmade. */
#define ENTER(kind, lenp)                           \
    do {                                            \
        int err_;                                   \
        if (enter((kind), &err_, (lenp)) && err_) { \
            errno = err_;                           \
            return -1;                              \
        }                                           \
    } while (0)

/* For a call that starts nothing the kernel goes on with after an
 * interruption, so that it may be made again: made again after EINTR
 * (an injected one too), which then never reaches a caller (HAZARDS
 * B36). Not for connect (it goes on) nor close (the fd is gone). */
#define RESTARTING(kind, call)                    \
    for (;;) {                                    \
        int err_, r_;                             \
        if (enter((kind), &err_, NULL) && err_) { \
            errno = err_;                         \
            r_ = -1;                              \
        } else {                                  \
            r_ = (call);                          \
        }                                         \
        if (r_ >= 0 || errno != EINTR)            \
            return r_;                            \
    }

ssize_t tide__sys_recv(int fd, void *buf, size_t len, int flags)
{
    ENTER(TIDE__SYS_RECV, &len);
    return recv(fd, buf, len, flags);
}

ssize_t tide__sys_recvfrom(int fd, void *buf, size_t len, int flags,
                           struct sockaddr *addr, socklen_t *addrlen)
{
    ENTER(TIDE__SYS_RECV, &len);
    return recvfrom(fd, buf, len, flags, addr, addrlen);
}

ssize_t tide__sys_send(int fd, const void *buf, size_t len, int flags)
{
    ENTER(TIDE__SYS_SEND, &len);
    return send(fd, buf, len, flags);
}

ssize_t tide__sys_sendto(int fd, const void *buf, size_t len, int flags,
                         const struct sockaddr *addr, socklen_t addrlen)
{
    ENTER(TIDE__SYS_SEND, &len);
    return sendto(fd, buf, len, flags, addr, addrlen);
}

ssize_t tide__sys_recvmsg(int fd, struct msghdr *msg, int flags)
{
    ENTER(TIDE__SYS_RECVMSG, NULL);
    return recvmsg(fd, msg, flags);
}

ssize_t tide__sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    ENTER(TIDE__SYS_SENDMSG, NULL);
    return sendmsg(fd, msg, flags);
}

ssize_t tide__sys_read(int fd, void *buf, size_t len)
{
    ENTER(TIDE__SYS_READ, &len);
    return read(fd, buf, len);
}

ssize_t tide__sys_write(int fd, const void *buf, size_t len)
{
    ENTER(TIDE__SYS_WRITE, &len);
    return write(fd, buf, len);
}

ssize_t tide__sys_pread(int fd, void *buf, size_t len, off_t off)
{
    ENTER(TIDE__SYS_READ, &len);
    return pread(fd, buf, len, off);
}

ssize_t tide__sys_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    ENTER(TIDE__SYS_WRITE, &len);
    return pwrite(fd, buf, len, off);
}

int tide__sys_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen,
                      int flags)
{
    ENTER(TIDE__SYS_ACCEPT, NULL);
    return accept4(fd, addr, addrlen, flags);
}

int tide__sys_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    ENTER(TIDE__SYS_CONNECT, NULL);
    return connect(fd, addr, len);
}

int tide__sys_close(int fd)
{
    int err = 0;
    bool fault = enter(TIDE__SYS_CLOSE, &err, NULL) && err;
    int r = close(fd);

    /* Linux frees the fd whatever close reports (EINTR, EIO): an injected
     * failure is made too, so that it is what a real one is. */
    if (fault) {
        errno = err;
        return -1;
    }
    return r;
}

int tide__sys_getsockopt(int fd, int level, int name, void *val,
                         socklen_t *len)
{
    RESTARTING(TIDE__SYS_GETSOCKOPT, getsockopt(fd, level, name, val, len));
}

int tide__sys_setsockopt(int fd, int level, int name, const void *val,
                         socklen_t len)
{
    RESTARTING(TIDE__SYS_SETSOCKOPT, setsockopt(fd, level, name, val, len));
}

int tide__sys_socket(int domain, int type, int protocol)
{
    RESTARTING(TIDE__SYS_SOCKET, socket(domain, type, protocol));
}

int tide__sys_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    RESTARTING(TIDE__SYS_BIND, bind(fd, addr, len));
}

int tide__sys_listen(int fd, int backlog)
{
    RESTARTING(TIDE__SYS_LISTEN, listen(fd, backlog));
}

int tide__sys_shutdown(int fd, int how)
{
    RESTARTING(TIDE__SYS_SHUTDOWN, shutdown(fd, how));
}

int tide__sys_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    RESTARTING(TIDE__SYS_GETNAME, getsockname(fd, addr, len));
}

int tide__sys_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    RESTARTING(TIDE__SYS_GETNAME, getpeername(fd, addr, len));
}

int tide__sys_fcntl(int fd, int cmd, int arg)
{
    RESTARTING(TIDE__SYS_FCNTL, fcntl(fd, cmd, arg));
}

int tide__sys_poll(struct pollfd *fds, nfds_t n, const struct timespec *ts)
{
    ENTER(TIDE__SYS_POLL, NULL);
    return ppoll(fds, n, ts, NULL);
}

int tide__sys_epoll_create1(int flags)
{
    ENTER(TIDE__SYS_EPOLL_CREATE, NULL);
    return epoll_create1(flags);
}

int tide__sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    RESTARTING(TIDE__SYS_EPOLL_CTL, epoll_ctl(epfd, op, fd, ev));
}

int tide__sys_epoll_wait(int epfd, struct epoll_event *evs, int n,
                         const struct timespec *ts, int ms)
{
    ENTER(TIDE__SYS_EPOLL_WAIT, NULL);
    if (!ts)
        return epoll_wait(epfd, evs, n, ms);
    return epoll_pwait2(epfd, evs, n, ts, NULL);
}

int tide__sys_eventfd(unsigned initval, int flags)
{
    ENTER(TIDE__SYS_EVENTFD, NULL);
    return eventfd(initval, flags);
}

int tide__sys_pipe2(int fds[2], int flags)
{
    ENTER(TIDE__SYS_EVENTFD, NULL);
    return pipe2(fds, flags);
}

ssize_t tide__sys_wake(int fd)
{
    uint64_t one = 1;

    ENTER(TIDE__SYS_WAKE, NULL);
    return write(fd, &one, sizeof one);
}

int tide__sys_open(const char *path, int flags, mode_t mode)
{
    ENTER(TIDE__SYS_OPEN, NULL);
    return open(path, flags, mode);
}

ssize_t tide__sys_preadv2(int fd, void *buf, size_t len, off_t off, int flags)
{
    ENTER(TIDE__SYS_PREADV2, &len);
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    return preadv2(fd, &iov, 1, off, flags);
}

int tide__sys_fsync(int fd, bool data_only)
{
    ENTER(TIDE__SYS_FSYNC, NULL);
    return data_only ? fdatasync(fd) : fsync(fd);
}

int tide__sys_dup(int fd)
{
    ENTER(TIDE__SYS_DUP, NULL);
    return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

int tide__sys_stat(const char *path, struct stat *st)
{
    ENTER(TIDE__SYS_FILEOP, NULL);
    return stat(path, st);
}

int tide__sys_fstat(int fd, struct stat *st)
{
    ENTER(TIDE__SYS_FILEOP, NULL);
    return fstat(fd, st);
}

int tide__sys_rename(const char *from, const char *to)
{
    ENTER(TIDE__SYS_FILEOP, NULL);
    return rename(from, to);
}

int tide__sys_unlink(const char *path)
{
    ENTER(TIDE__SYS_FILEOP, NULL);
    return unlink(path);
}

int tide__sys_mkdir(const char *path, mode_t mode)
{
    ENTER(TIDE__SYS_FILEOP, NULL);
    return mkdir(path, mode);
}

int tide__sys_rmdir(const char *path)
{
    ENTER(TIDE__SYS_FILEOP, NULL);
    return rmdir(path);
}

DIR *tide__sys_opendir(const char *path)
{
    int err;

    if (enter(TIDE__SYS_FILEOP, &err, NULL) && err) {
        errno = err;
        return NULL;
    }
    return opendir(path);
}

#ifdef TIDE_HAVE_URING
/* liburing maps and unmaps a ring's memory with system calls of its own,
 * which ThreadSanitizer does not see: a ring set up on one thread at the
 * address where another thread's closed ring was would look like a race
 * on the same memory. The kernel orders the unmap before the map; this
 * edge (release at exit, acquire at setup) tells TSan so. */
#ifdef TIDE__TSAN
static char ring_memory;
#endif

int tide__sys_uring_setup(unsigned entries, struct io_uring *ring,
                          struct io_uring_params *p)
{
    ENTER(TIDE__SYS_URING_SETUP, NULL);
    int r = io_uring_queue_init_params(entries, ring, p);
    if (r < 0) {
        errno = -r;
        return -1;
    }
#ifdef TIDE__TSAN
    __tsan_acquire(&ring_memory);
#endif
    return 0;
}

void tide__sys_uring_exit(struct io_uring *ring)
{
#ifdef TIDE__TSAN
    __tsan_release(&ring_memory);
#endif
    io_uring_queue_exit(ring);
}

int tide__sys_uring_enter(struct io_uring *ring, unsigned min_complete,
                          struct __kernel_timespec *ts)
{
    struct io_uring_cqe *cqe;
    int r;

    ENTER(TIDE__SYS_URING_ENTER, NULL);
    if (min_complete == 0)
        r = io_uring_submit_and_get_events(ring);
    else if (!ts)
        r = io_uring_submit_and_wait(ring, min_complete);
    else
        r = io_uring_submit_and_wait_timeout(ring, &cqe, min_complete, ts,
                                             NULL);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return r;
}
#endif

uint64_t tide__sys_count(enum tide__sys_kind kind)
{
    return atomic_load_explicit(&counts[kind], memory_order_relaxed);
}

void tide__sys_fault(enum tide__sys_kind kind, long n, int err,
                     size_t short_len)
{
    bool was = atomic_exchange_explicit(&countdown[kind], 0,
                                        memory_order_relaxed) > 0;
    if (was)
        atomic_fetch_sub_explicit(&armed, 1, memory_order_relaxed);
    if (n <= 0)
        return;
    fault_err[kind] = err;
    fault_len[kind] = short_len;
    atomic_fetch_add_explicit(&armed, 1, memory_order_relaxed);
    atomic_store_explicit(&countdown[kind], n, memory_order_relaxed);
}

void tide__sys_fault_clear(void)
{
    for (int k = 0; k < TIDE__SYS_COUNT; k++)
        tide__sys_fault((enum tide__sys_kind)k, 0, 0, 0);
}
