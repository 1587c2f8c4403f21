/* tide/file.h: files without blocking the loop (aiofiles-style calls on
 * the io_uring ring or the thread pool), and a file as a tide stream for
 * line-by-line work.
 *
 * Include it after (or instead of) tide.h; it brings tide/stream.h.
 *
 * Common rules:
 * - Where calls run. A read of bytes already in the page cache is made
 *   inline (preadv2 with RWF_NOWAIT) on every backend. On a loop whose
 *   backend is io_uring (tide_loop_backend), read, pread, write, pwrite,
 *   fsync and fdatasync (and a file stream's reads and writes) are
 *   submitted to the kernel on the loop's ring, on the caller's own
 *   buffer: nothing is copied and no thread is involved. From a compact
 *   task, and on the epoll and poll backends, they run on the thread
 *   pool's TIDE_POOL_FILE class (tide/pool.h), as open, close, stat,
 *   fstat, rename, unlink, mkdir, rmdir and listdir always do. Each call
 *   suspends the calling task until it is done, and returns -EPERM at
 *   once outside a task.
 * - Results are counts, fds or 0, or a negative errno (the system call's:
 *   -ENOENT, -EISDIR, -EACCES, ...). Bad arguments change nothing: a
 *   NULL path, or a NULL buffer with a length, is -EINVAL; a negative fd
 *   is -EBADF.
 * - Cancellation (a cancel request, a timeout scope) of a call on the
 *   ring: the kernel is asked to withdraw it, and the call returns only
 *   once the kernel is done with it and with the caller's buffer:
 *   -ECANCELED if it was withdrawn (nothing read or written, fd's offset
 *   unmoved); else its result, as tide/io.h's calls do, with the request
 *   left pending, delivered at the task's next suspension. Work the
 *   kernel has begun (a disk read, a write into a pipe that has room) is
 *   not withdrawn: the call waits for it.
 * - Cancellation of a call on the pool: a call whose job is still queued
 *   never runs and returns -ECANCELED. A call already running returns
 *   -ECANCELED at once and is abandoned: its thread finishes the system
 *   call, and its result is dropped (an fd that an abandoned open made
 *   is closed; a listing is freed). The caller's buffers are never
 *   touched after the call has returned: a read lands in a pool-owned
 *   buffer and is copied out on delivery, a write is copied in before it
 *   is submitted, a stat is copied out. A pool job works on a duplicate
 *   of fd (F_DUPFD_CLOEXEC), so closing fd after a cancelled call never
 *   makes that call touch another file. What a write abandoned while
 *   running writes is written (it may move the file offset; use pwrite
 *   for exact placement).
 * - A write cancelled after some of its bytes were written (a write of
 *   over 1 MiB, done a part at a time) returns that count, and the
 *   request stays pending as above.
 * - Closing fd while another task's call on it is in flight: close it
 *   with tide_file_close (or the stream's close), not close(2). On the
 *   ring the kernel looks fd's number up when it takes a call, at the
 *   loop's next turn; tide_file_close first makes it take those queued,
 *   so they go on on the file they were made on. On either path, a write
 *   that takes more than one system call (over 1 MiB, or a pipe's short
 *   writes) makes its next ones on whatever fd names by then.
 * - A pipe or a socket has no offset: on the pool, pread and pwrite on
 *   one return -ESPIPE (and so does a pread tried inline); on the ring
 *   the kernel ignores the offset, and they read and write as read and
 *   write do.
 * - A write that returned a count has put those bytes in the kernel (a
 *   read sees them); fsync or fdatasync makes them durable. A short
 *   write by the system call is completed (written again from where it
 *   stopped) before the write returns, so a count below n means an
 *   error stopped it (the next write reports it). EINTR is retried.
 * - One call moves at most 1 MiB at a time: a read or pread returns at
 *   most that (a read may be short, as read(2)'s is), a write or pwrite
 *   of more is done a mebibyte at a time, in order.
 * - Compact tasks may make these calls, with buffers on their own stacks
 *   (their reads, writes and fsyncs run on the pool, never on the ring).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_FILE_H
#define TIDE_FILE_H

#include <tide/stream.h>

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Opening and closing --------------------------------------------- */

/* open(2) of path with flags (O_CLOEXEC is always added) and mode (for
 * O_CREAT). Returns the fd; -errno (-ENOENT, -EACCES, -EISDIR, ...);
 * -EINVAL if path is NULL. If cancelled while running, the fd the open
 * makes is closed. Suspends. */
TIDE_API int tide_file_open(const char *path, int flags, mode_t mode);

/* close(2) on the pool (a close can wait for a network file system),
 * after the calls queued on fd for the kernel are taken (see above).
 * Called in a task, it closes fd whatever happens: a cancelled call
 * closes it too, and with no memory for the job it is closed inline.
 * Returns 0; -EBADF (negative, or not open); -EIO and the like from the
 * file system; -EPERM outside a task (fd left open). Suspends. */
TIDE_API int tide_file_close(int fd);

/* ---- Reading and writing --------------------------------------------- */

/* read(2): up to n bytes at fd's offset into buf. Returns the count (0 at
 * end of file, or n == 0); -errno. Suspends. */
TIDE_API ssize_t tide_file_read(int fd, void *buf, size_t n);

/* pread(2): up to n bytes at offset off (>= 0, else -EINVAL). */
TIDE_API ssize_t tide_file_pread(int fd, void *buf, size_t n, off_t off);

/* write(2): all n bytes at fd's offset (see above: short writes are
 * completed). Returns n; fewer if an error stopped it after some bytes;
 * -errno when nothing was written. Suspends. */
TIDE_API ssize_t tide_file_write(int fd, const void *buf, size_t n);

/* pwrite(2): all n bytes at offset off (>= 0, else -EINVAL). */
TIDE_API ssize_t tide_file_pwrite(int fd, const void *buf, size_t n,
                                  off_t off);

/* fsync(2) and fdatasync(2). Returns 0 or -errno. Suspends. */
TIDE_API int tide_file_fsync(int fd);
TIDE_API int tide_file_fdatasync(int fd);

/* ---- Names and metadata ---------------------------------------------- */

/* stat(2) and fstat(2) into *st (written only on success). Returns 0;
 * -errno; -EINVAL if st (or path) is NULL. Suspends. */
TIDE_API int tide_file_stat(const char *path, struct stat *st);
TIDE_API int tide_file_fstat(int fd, struct stat *st);

/* rename(2), unlink(2), mkdir(2), rmdir(2). Return 0 or -errno; -EINVAL
 * for a NULL path. Suspend. */
TIDE_API int tide_file_rename(const char *from, const char *to);
TIDE_API int tide_file_unlink(const char *path);
TIDE_API int tide_file_mkdir(const char *path, mode_t mode);
TIDE_API int tide_file_rmdir(const char *path);

/* One entry of a directory listing. */
typedef struct tide_dirent {
    const char *name;   /* the entry's name, inside the listing */
    unsigned char type; /* readdir's d_type: DT_REG, DT_DIR, ... (DT_UNKNOWN
                         * on file systems that do not say) */
} tide_dirent;

/* os.listdir: the entries of directory path, "." and ".." left out,
 * sorted by name (strcmp), in *entries: one array of the count returned
 * plus a terminating entry whose name is NULL, in one block that
 * tide_file_listdir_free frees (names included). Returns the count;
 * -errno (-ENOENT, -ENOTDIR, -EACCES, ...); -EINVAL (path or entries
 * NULL); -ENOMEM. *entries is set only on success. Suspends. */
TIDE_API ssize_t tide_file_listdir(const char *path, tide_dirent **entries);

/* Free what tide_file_listdir returned (NULL is ignored). */
TIDE_API void tide_file_listdir_free(tide_dirent *entries);

/* ---- A file as a stream ------------------------------------------------
 * The stream calls of tide/stream.h (readline, readuntil, read,
 * read_into, readexactly, write, writev, drain, write_eof, close, abort)
 * work on a file stream as on a socket one, with these differences:
 * - Reads and writes keep their own offsets, both starting at fd's
 *   offset when the stream is made, and use pread and pwrite (fd's own
 *   offset is left alone; do not use fd meanwhile). End of file is the
 *   end of the stream for reading.
 * - Reads are served from the page cache inline when they can be
 *   (RWF_NOWAIT), else on the ring or the pool, as the calls above are.
 * - tide_stream_write only queues: the queue is written (on the ring or
 *   the pool) by tide_stream_drain, once more than the high-water mark
 *   is queued, and by tide_stream_close, which writes all of it (its
 *   timeout bounds that; outside a task nothing can be written and what
 *   is queued is dropped: -ETIMEDOUT). Nothing is written in the
 *   background. A drain that is cancelled keeps what it had not written
 *   queued (a job abandoned while running writes the same bytes at the
 *   same place again). A write error sticks, as a send error does.
 * - tide_stream_write_eof only ends writing (later writes are -EPIPE).
 * - tide_stream_close waits (within its timeout) for a drain in progress
 *   and writes what is left. Once the stream closes (close, its deadline
 *   past, or tide_stream_abort), a task suspended in it wakes with -EBADF
 *   at once; a pool job in flight is abandoned (it works on a duplicate
 *   fd); a call on the ring is cancelled, and its task wakes once the
 *   kernel is done with it (with -EBADF, or the bytes it read).
 * - A file opened with O_APPEND appends whatever the offset; a drain
 *   cancelled while its job runs may then append those bytes twice. */

/* A stream over open file fd (a regular file or a block device: one
 * that lseek accepts), reading and writing from fd's offset; the stream
 * owns fd from then on (tide_stream_close closes it). `limit` bounds the
 * read buffer, and so a line (0: 64 KiB). NULL and errno: EBADF (fd
 * negative or not open), ESPIPE (a pipe or socket: see tide/stream.h),
 * EINVAL (no loop), ENOMEM; fd is then not closed. Never suspends. */
TIDE_API tide_stream *tide_file_stream_new(int fd, size_t limit);

/* tide_file_open, then tide_file_stream_new. Returns 0 and the stream
 * in *out; tide_file_open's errors; -EINVAL (out NULL); -ENOMEM.
 * Suspends. */
TIDE_API int tide_file_stream_open(const char *path, int flags, mode_t mode,
                                   size_t limit, tide_stream **out);

#ifdef __cplusplus
}
#endif

#endif /* TIDE_FILE_H */
