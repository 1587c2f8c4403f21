/* The I/O layer's internal contract: running one backend op for the
 * calling task (op.c), and the reader/writer callbacks an fd may have
 * (watch.c), which tide_close removes; and the reference a server takes
 * on a stream (stream.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_IO_IO_H
#define TIDE_IO_IO_H

#include "tide/io.h"

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
 * handler runs, so that the handler may close it (stream.c). */
struct tide_stream;
void tide__stream_hold(struct tide_stream *s);
void tide__stream_release(struct tide_stream *s);
bool tide__stream_closed(const struct tide_stream *s);

#endif
