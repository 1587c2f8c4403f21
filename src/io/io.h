/* The I/O layer's internal contract: running one backend op for the
 * calling task (op.c), the reader/writer callbacks an fd may have
 * (watch.c), which tide_close removes; the reference a server takes on
 * a stream (stream.c), pipe I/O for streams (pipe.c); starting a child
 * process (spawn.c); and the thread pool's hooks (pool.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_IO_IO_H
#define TIDE_IO_IO_H

#include "tide/io.h"
#include "tide/pool.h"

#include "core/loop.h"

/* Run `req` (an op described on the caller's stack: kind, fd, buffer,
 * ...) for the calling task, following tide/io.h's rules: tried at once;
 * if it would block, the task waits (in a loop-owned slot; a compact task
 * waits for readiness and makes the call itself). Returns the op's
 * result; -EPERM if it would block outside a task; -ECANCELED; -ENOMEM.
 * `what` names the wait in task dumps. */
ssize_t tide__io_run(struct tide__op *req, const char *what);

/* Tell loop's backend about fd with a CLOSE op of `flags`
 * (TIDE__CLOSE_DETACH, TIDE__CLOSE_FRESH); never closes it. */
void tide__io_fd_op(tide_loop *loop, int fd, int flags);

/* fd is being closed or detached on `loop`: drop its reader and writer
 * callbacks (their ops are dropped, nothing scheduled runs). */
void tide__watch_forget(tide_loop *loop, int fd);

/* A server's connection task holds its stream (tide/stream.h) while the
 * handler runs, so that the handler may close it, and a process holds
 * its pipes (stream.c). closed: the owner has closed or aborted it (a
 * pipe that write_eof closed is not, until then). reading: a task is
 * suspended in a read of it. */
struct tide_stream;
void tide__stream_hold(struct tide_stream *s);
void tide__stream_release(struct tide_stream *s);
bool tide__stream_closed(const struct tide_stream *s);
bool tide__stream_reading(const struct tide_stream *s);

/* A stream's transport, for a stream over anything but a socket (a
 * socket stream has none: its calls are made inline). `x` is the
 * transport's own state, `fd` the stream's. */
struct tide__stream_xport {
    /* Read up to n (> 0) bytes into buf for the calling task, suspending
     * if it must: the count, 0 at end of file, or -errno (-ECANCELED
     * loses nothing: the bytes are read again by the next call). */
    ssize_t (*recv)(void *x, int fd, void *buf, size_t n);
    /* Write some of the n (> 0) bytes of buf, suspending if it must: the
     * count written (> 0), or -errno. On -ECANCELED the stream writes
     * the same bytes again with the next call, so a transport that may
     * have written them (a call abandoned while running) must write them
     * at the same place (pwrite at its own offset). buf may change once
     * the call has returned. */
    ssize_t (*write)(void *x, int fd, const void *buf, size_t n);
    /* The stream is closing: wake a task suspended in recv or write (it
     * then returns -ECANCELED or -EBADF) and close fd. */
    void (*close)(void *x, int fd);
    /* The stream is freed: free x. */
    void (*free)(void *x);
};

/* tide_stream_new for fd (kept as it is: not made non-blocking) with a
 * transport; x is the transport's from then on (its free frees it) if
 * this succeeds. NULL and errno: EINVAL (no loop), ENOMEM. */
struct tide_stream *tide__stream_new_xport(
    int fd, size_t limit, const struct tide__stream_xport *xport, void *x);

/* Streams over pipes (pipe.c): read(2) through the calling task's op,
 * as tide__io_run runs it (0 for len 0); and one write(2) or writev(2)
 * that never raises SIGPIPE (-1 and errno EPIPE instead), never
 * suspends and returns as the system call does. */
struct iovec;
ssize_t tide__pipe_read(int fd, void *buf, size_t len);
ssize_t tide__pipe_writev(int fd, const struct iovec *iov, int n);

/* What a child gets (spawn.c): argv[0] is the program (looked for in
 * $PATH if it has no '/'); envp NULL: environ; cwd NULL: the parent's;
 * fds[i] becomes the child's fd i: a parent fd (copied; it may be 0, 1
 * or 2 itself), -1 (left as it is), or TIDE__SPAWN_STDOUT (fds[2] only:
 * a copy of the child's fd 1). */
#define TIDE__SPAWN_STDOUT (-2)
struct tide__spawn {
    const char *const *argv;
    const char *const *envp;
    const char *cwd;
    int fds[3];
};

/* Start the child (see spawn.c for how, and what it gets). Returns 0 with
 * its pid and a pidfd (close-on-exec) to reap it with waitid(P_PIDFD,
 * ..., WEXITED | __WALL), or -1 for the pidfd where the kernel has none
 * (tide__spawn_uses_pidfd false: reap it by its pid once SIGCHLD says it
 * exited); or -errno: the exec's (-ENOENT, -EACCES, ...; the child is
 * then reaped), clone's (-EAGAIN, -ENOMEM). Blocks the calling thread
 * only until the child has exec'd. */
int tide__spawn(const struct tide__spawn *sp, pid_t *pid, int *pidfd);

/* Whether children get pidfds: decided once per process (spawn.c says
 * how; TIDE__PIDFD=0 in the environment says no, for tests). */
bool tide__spawn_uses_pidfd(void);

/* tide_to_thread_ex for a job that owns arg: once submitted, the pool
 * calls drop(arg) if nobody receives the job's result (cancelled,
 * queued or running); delivered, the result is in *result (fn sets it,
 * on failure too) and arg is the caller's again. Returns as to_thread;
 * on an error before submission (-EINVAL, -EPERM, -ENOMEM, -EAGAIN:
 * *result untouched) arg is still the caller's. */
int tide__to_thread_owned(int cls, tide_work_fn fn, void *arg,
                          void (*drop)(void *arg), void **result);

/* A file read (pread at off, or read at fd's offset if off < 0) or
 * write of at most 1 MiB of n, for the calling task (file.c; tide/file.h's
 * rules). A read is tried inline with RWF_NOWAIT first. While the call
 * waits on the ring or the pool, *waiting (if not NULL) names the task,
 * so that a file stream closing can wake it (filestream.c). The count or
 * -errno. */
ssize_t tide__file_rw(int fd, void *buf, size_t n, off_t off, bool write,
                      struct tide__coro **waiting);

/* fd is about to be closed on loop: if the backend is io_uring, make the
 * kernel take the ops queued for it now (it looks their fd numbers up
 * then), so that none goes to a file that gets the number next (file.c). */
void tide__file_ring_flush(tide_loop *loop);

/* For tests and benchmarks, the loop's thread only: true sends every
 * file read to the ring or the pool (no inline RWF_NOWAIT try); true
 * keeps reads, writes and fsyncs on the pool on io_uring too. */
extern bool tide__file_no_inline;
extern bool tide__file_no_ring;

/* Pool jobs queued or running, in every loop (abandoned ones included,
 * until their worker is done with them). For tests: a job that outlives
 * its test would fail its leak gate. */
long tide__pool_live(void);

/* For tests: end every pool thread and wait until they have ended (idle
 * ones at once, a busy one after its job), so that what a thread keeps
 * for itself (glibc's resolver state) is freed before the process
 * exits; the pool starts again at its next job. */
void tide__pool_stop(void);

#endif
