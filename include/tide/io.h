/* tide/io.h: waiting on file descriptors, and the low-level socket calls
 * (asyncio's loop.add_reader / add_writer / remove_*, and loop.sock_*).
 *
 * Include it after (or instead of) tide.h; it brings <sys/socket.h>.
 * The thread pool and DNS are in tide/pool.h, streams and servers in
 * tide/stream.h, UDP endpoints in tide/udp.h; this is what they are
 * built on.
 *
 * Common rules:
 * - The calls work on non-blocking fds (O_NONBLOCK; tide_sock_accept
 *   makes its new fd non-blocking and close-on-exec). They are made on
 *   the loop running in the calling thread.
 * - Each call first tries its system call; if that succeeds, or fails
 *   with anything but "would block", the result is returned at once, in
 *   a task or not. Otherwise the calling task is suspended until the fd
 *   is ready and the call is made again; outside a task that is -EPERM.
 * - Results: bytes, a new fd, or 0 on success; a negative errno on
 *   failure (-EBADF for a negative or closed fd, -ENOTSOCK, -ECONNRESET,
 *   -EPIPE, ...). Every send adds MSG_NOSIGNAL: a peer that went away is
 *   -EPIPE, never SIGPIPE.
 * - Fairness: a task whose calls keep completing at once (a socket that
 *   is always readable) would never let the loop run anything else; so
 *   a task's 64th call in one turn of the loop first yields (as
 *   tide_sleep(0)), and a cancel request met there makes the call return
 *   -ECANCELED having done nothing.
 * - Bad arguments return -EINVAL and change nothing (a NULL buffer with
 *   a length, a NULL msghdr or address). A zero-length recv or send
 *   returns 0 without a system call.
 * - Cancellation (tide_future_cancel, a timeout scope, tide_wait_for):
 *   a call suspended here stops waiting, and returns only once the
 *   backend has let go of the operation (and of the caller's buffer):
 *   -ECANCELED if nothing happened. If the operation completed anyway
 *   (data received, bytes sent, a connection accepted or made), the call
 *   returns that result instead, so nothing is lost, and the request
 *   stays pending, delivered at the task's next suspension.
 * - Closing: an fd that tide has waited on is known to the loop's
 *   backend until it is closed with tide_close (or let go with
 *   tide_fd_detach). tide_close wakes every task waiting on the fd with
 *   -EBADF and removes its reader and writer callbacks. Close such fds
 *   with tide_close: with the epoll backend, an fd closed with close(2)
 *   whose number comes back from socket(), pipe() or open() may never
 *   be reported ready (numbers that tide_sock_accept returns, and
 *   sockets that tide_sock_connect starts, are renewed automatically).
 * - On the io_uring backend (tide_loop_backend) the kernel makes the
 *   calls, with these differences: sends made at once on one fd by
 *   several tasks complete in no set order, and so do compact tasks'
 *   receives (receives keep the order of their calls, as on epoll and
 *   poll); an accept waiting in the kernel
 *   keeps the RLIMIT_NOFILE of the moment it was made; a cancelled call
 *   races the kernel, so it returns the real result (as above) more
 *   often than on epoll; a loop runs on the thread that first used it
 *   for its whole life (-EXDEV elsewhere); a TCP stream's fd
 *   (tide/stream.h) is received ahead into the loop's buffers, and a
 *   listener's connections accepted ahead, so read a stream only
 *   through it: a recv(2) of its own on the fd, or a tide_sock_recv
 *   or _recvmsg asking for an address, ancillary data or a flag other
 *   than MSG_PEEK, jumps ahead of held bytes (tide_sock_recv and
 *   _recvmsg without, and MSG_PEEK, take them in order), and
 *   tide_fd_detach drops them.
 *   docs/backends.md lists every difference with its test.
 * - Buffers are borrowed for the duration of the call. Compact tasks
 *   (tide_task_options.compact) may pass buffers on their own stack: for
 *   them every system call is made in the task itself once the fd is
 *   ready, never while its frames are copied away.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_IO_H
#define TIDE_IO_H

#include <tide.h>

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Waiting for readiness ------------------------------------------ */

/* Wait until fd is readable (or has hung up or failed: the next call on
 * it says how), at most `timeout` seconds (INFINITY: no limit; <= 0:
 * only look). Returns 0 when ready; -ETIMEDOUT; -ECANCELED; -EBADF (fd
 * negative, not open, or closed through tide_close meanwhile); -EINVAL
 * (NaN timeout, or an fd the backend cannot watch); -EPERM outside a
 * task unless ready now; -ENOMEM. Suspends. */
TIDE_API int tide_wait_readable(int fd, double timeout);
/* The same for writability. */
TIDE_API int tide_wait_writable(int fd, double timeout);

/* ---- Reader and writer callbacks ------------------------------------
 * asyncio's add_reader / add_writer: cb(arg) runs on the loop, as a
 * scheduled callback, on every iteration while fd is readable (writable),
 * until removed. One callback per fd and direction: adding again
 * replaces it. tide_close(fd) removes both. How soon new readiness is
 * seen: at once when the loop has nothing ready (it waits in the
 * backend); while tasks or callbacks keep it busy, the backend is asked
 * every 16th iteration, so an fd that becomes ready is noticed within 16
 * iterations (the same holds for tasks waiting in the calls below). */

/* Returns 0; -EINVAL (cb NULL, loop closed, an fd the backend cannot
 * watch); -EBADF (fd negative or not open); -ENOMEM. */
TIDE_API int tide_add_reader(tide_loop *loop, int fd, tide_callback cb,
                             void *arg);
TIDE_API int tide_add_writer(tide_loop *loop, int fd, tide_callback cb,
                             void *arg);
/* Returns 1 if a callback was removed, 0 if there was none; -EINVAL if
 * the loop is closed (or NULL with no default loop). A removed callback
 * already scheduled does not run. */
TIDE_API int tide_remove_reader(tide_loop *loop, int fd);
TIDE_API int tide_remove_writer(tide_loop *loop, int fd);

/* ---- Socket calls ---------------------------------------------------
 * asyncio's loop.sock_*. See the common rules above; each suspends. */

/* Accept a connection on listening socket fd; the new fd (non-blocking,
 * close-on-exec), and the peer's address in addr/addrlen if addr is not
 * NULL (addrlen then in-out, as accept(2)). -EINVAL if addr is given
 * without addrlen. */
TIDE_API int tide_sock_accept(int fd, struct sockaddr *addr,
                              socklen_t *addrlen);

/* Connect fd to addr. Returns 0 once connected; -ECONNREFUSED,
 * -ETIMEDOUT, ...; -EINVAL if addr is NULL. Outside a task, a connect
 * that is in progress returns -EPERM and goes on. */
TIDE_API int tide_sock_connect(int fd, const struct sockaddr *addr,
                               socklen_t addrlen);

/* Receive up to len bytes: the count, 0 at end of stream. */
TIDE_API ssize_t tide_sock_recv(int fd, void *buf, size_t len, int flags);
/* The same, with the sender's address (addr may be NULL). */
TIDE_API ssize_t tide_sock_recvfrom(int fd, void *buf, size_t len, int flags,
                                    struct sockaddr *addr, socklen_t *addrlen);
/* Send up to len bytes in one system call: the count sent (maybe
 * fewer). */
TIDE_API ssize_t tide_sock_send(int fd, const void *buf, size_t len,
                                int flags);
/* Send all len bytes, waiting as often as needed (asyncio's
 * sock_sendall): len, or a negative errno (some bytes may have been
 * sent before it). */
TIDE_API ssize_t tide_sock_sendall(int fd, const void *buf, size_t len,
                                   int flags);
/* Send a datagram to addr (a zero-length one is sent). */
TIDE_API ssize_t tide_sock_sendto(int fd, const void *buf, size_t len,
                                  int flags, const struct sockaddr *addr,
                                  socklen_t addrlen);
/* recvmsg(2) and sendmsg(2); msg (and what it points to) is borrowed
 * for the call. */
TIDE_API ssize_t tide_sock_recvmsg(int fd, struct msghdr *msg, int flags);
TIDE_API ssize_t tide_sock_sendmsg(int fd, const struct msghdr *msg,
                                   int flags);

/* ---- Closing -------------------------------------------------------- */

/* Close fd: every task waiting on it in the calls above is woken with
 * -EBADF, its reader and writer callbacks are removed, the backend
 * stops watching it, then it is closed. Returns 0 or close's -errno
 * (-EBADF for a negative or closed fd). Never suspends. */
TIDE_API int tide_close(int fd);

/* The same, but fd is left open: tide forgets it (for handing it to
 * other code). Returns 0; -EBADF if fd is negative. */
TIDE_API int tide_fd_detach(int fd);

#ifdef __cplusplus
}
#endif

#endif /* TIDE_IO_H */
