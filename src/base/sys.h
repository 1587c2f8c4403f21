/* The system-call seam: every system call of the I/O layer and of the
 * poll backends goes through one of these wrappers (but for stat and
 * unlink of a Unix server's socket file, which are not socket calls).
 *
 * Each wrapper is the plain call plus two things tests and benchmarks
 * need: a count of calls per kind (relaxed atomics: the wake-up is
 * written from other threads), and faults a test arms for the n-th next
 * call of a kind: fail it with an errno (EAGAIN, EINTR, ENOMEM, EMFILE,
 * ...) without making it (close is made all the same: Linux frees the
 * fd whatever close reports), or make it with its length cut short (a
 * short read or write). An armed fault fires once. The calls that start
 * nothing the kernel goes on with (socket, bind, listen, shutdown,
 * get/setsockopt, getsockname/getpeername, fcntl, epoll_ctl) are made again
 * after EINTR, an injected one too, so EINTR never reaches their callers.
 * Failures return -1 with errno set, exactly as the system call would, so
 * callers handle an injected fault and a real one by the same code. When no
 * fault is armed a wrapper costs one relaxed load and one relaxed add beside
 * the call.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_CORE_SYS_H
#define TIDE_CORE_SYS_H

#include <dirent.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

enum tide__sys_kind {
    TIDE__SYS_RECV, /* recv, recvfrom */
    TIDE__SYS_SEND, /* send, sendto */
    TIDE__SYS_RECVMSG,
    TIDE__SYS_SENDMSG,
    TIDE__SYS_READ,
    TIDE__SYS_WRITE,
    TIDE__SYS_ACCEPT, /* accept4 */
    TIDE__SYS_CONNECT,
    TIDE__SYS_CLOSE,
    TIDE__SYS_GETSOCKOPT,
    TIDE__SYS_POLL, /* poll(2), also the poll backend's wait */
    TIDE__SYS_EPOLL_CTL,
    TIDE__SYS_EPOLL_WAIT, /* epoll_wait, epoll_pwait2 */
    TIDE__SYS_EPOLL_CREATE,
    TIDE__SYS_EVENTFD, /* eventfd creation (and io_uring's wake pipe) */
    TIDE__SYS_WAKE,    /* the 8-byte write that wakes a loop */
    TIDE__SYS_OPEN,    /* open (files) */
    TIDE__SYS_PREADV2, /* preadv2 with RWF_NOWAIT: a file read tried inline */
    TIDE__SYS_FSYNC,   /* fsync, fdatasync */
    TIDE__SYS_DUP,     /* fcntl F_DUPFD_CLOEXEC */
    TIDE__SYS_FILEOP,  /* stat, fstat, rename, unlink, mkdir, rmdir, opendir */
    TIDE__SYS_URING_SETUP, /* io_uring_setup (liburing's queue init) */
    TIDE__SYS_URING_ENTER, /* io_uring_enter: submit and wait */
    TIDE__SYS_SOCKET,
    TIDE__SYS_BIND,
    TIDE__SYS_LISTEN,
    TIDE__SYS_SHUTDOWN,
    TIDE__SYS_SETSOCKOPT,
    TIDE__SYS_GETNAME, /* getsockname, getpeername */
    TIDE__SYS_FCNTL,
    TIDE__SYS_COUNT
};

ssize_t tide__sys_recv(int fd, void *buf, size_t len, int flags);
ssize_t tide__sys_recvfrom(int fd, void *buf, size_t len, int flags,
                           struct sockaddr *addr, socklen_t *addrlen);
ssize_t tide__sys_send(int fd, const void *buf, size_t len, int flags);
ssize_t tide__sys_sendto(int fd, const void *buf, size_t len, int flags,
                         const struct sockaddr *addr, socklen_t addrlen);
ssize_t tide__sys_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t tide__sys_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t tide__sys_read(int fd, void *buf, size_t len);
ssize_t tide__sys_write(int fd, const void *buf, size_t len);
ssize_t tide__sys_pread(int fd, void *buf, size_t len, off_t off);
ssize_t tide__sys_pwrite(int fd, const void *buf, size_t len, off_t off);
int tide__sys_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen,
                      int flags);
int tide__sys_connect(int fd, const struct sockaddr *addr, socklen_t len);
int tide__sys_close(int fd);
int tide__sys_getsockopt(int fd, int level, int name, void *val,
                         socklen_t *len);
int tide__sys_setsockopt(int fd, int level, int name, const void *val,
                         socklen_t len);
int tide__sys_socket(int domain, int type, int protocol);
int tide__sys_bind(int fd, const struct sockaddr *addr, socklen_t len);
int tide__sys_listen(int fd, int backlog);
int tide__sys_shutdown(int fd, int how);
int tide__sys_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
int tide__sys_getpeername(int fd, struct sockaddr *addr, socklen_t *len);
/* fcntl with an int argument (F_GETFL ignores it, F_SETFL sets flags). */
int tide__sys_fcntl(int fd, int cmd, int arg);
/* ppoll: ts NULL waits without limit. */
int tide__sys_poll(struct pollfd *fds, nfds_t n, const struct timespec *ts);
int tide__sys_epoll_create1(int flags);
int tide__sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* epoll_pwait2 when ts is not NULL, else epoll_wait(..., ms). */
int tide__sys_epoll_wait(int epfd, struct epoll_event *evs, int n,
                         const struct timespec *ts, int ms);
int tide__sys_eventfd(unsigned initval, int flags);
/* A wake-up pipe (io_uring's): counted and faulted as TIDE__SYS_EVENTFD. */
int tide__sys_pipe2(int fds[2], int flags);
/* The file calls (io/file.c), each as its libc function. */
int tide__sys_open(const char *path, int flags, mode_t mode);
ssize_t tide__sys_preadv2(int fd, void *buf, size_t len, off_t off, int flags);
int tide__sys_fsync(int fd, bool data_only);
int tide__sys_dup(int fd);
int tide__sys_stat(const char *path, struct stat *st);
int tide__sys_fstat(int fd, struct stat *st);
int tide__sys_rename(const char *from, const char *to);
int tide__sys_unlink(const char *path);
int tide__sys_mkdir(const char *path, mode_t mode);
int tide__sys_rmdir(const char *path);
DIR *tide__sys_opendir(const char *path);
/* Write 1 to an eventfd; async-signal-safe and callable from any thread
 * (the fault check and counter are lock-free). */
ssize_t tide__sys_wake(int fd);

/* io_uring (built with liburing): set up a ring, -1 and errno on failure
 * (liburing returns -errno; the seam keeps the convention above); and one
 * io_uring_enter that submits what is queued and waits for min_complete
 * completions at most until ts (ts NULL: no limit; min_complete 0: only
 * look, running pending task work). Returns 0 or more; -1 and errno
 * (ETIME: the time ran out; EINTR: a signal). */
struct io_uring;
struct io_uring_params;
struct __kernel_timespec;
int tide__sys_uring_setup(unsigned entries, struct io_uring *ring,
                          struct io_uring_params *p);
int tide__sys_uring_enter(struct io_uring *ring, unsigned min_complete,
                          struct __kernel_timespec *ts);
/* Tear a ring down (liburing's queue exit); not counted, never faulted. */
void tide__sys_uring_exit(struct io_uring *ring);

/* Calls of `kind` made so far in this process (faulted ones included). */
uint64_t tide__sys_count(enum tide__sys_kind kind);

/* Arm a fault for the n-th next call of `kind` (n = 1: the next one):
 * with err > 0 that call fails with errno = err and is not made; with
 * err == 0 it is made with its length cut to `short_len` bytes (calls
 * with no length are made unchanged). n <= 0 disarms. For tests; not
 * thread-safe against itself (arm from one thread). */
void tide__sys_fault(enum tide__sys_kind kind, long n, int err,
                     size_t short_len);

/* Disarm every fault. */
void tide__sys_fault_clear(void);

#endif
