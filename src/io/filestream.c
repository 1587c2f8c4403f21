/* A file as a tide stream (tide/file.h): the transport (io/io.h's
 * tide__stream_xport) that stream.c reads and writes a file stream
 * through.
 *
 * It keeps the stream's two offsets (reads and writes each go on from
 * where they were, by pread and pwrite: tide__file_rw) and the tasks
 * suspended in a read or a write, which closing the stream wakes: their
 * wait's own cancel hook gives a pool job up (the pool then drops what it
 * brings back) and wakes them, so a close never waits for a disk; a ring
 * op is cancelled, and its task wakes once the kernel has withdrawn or
 * finished it (io/op.c).
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "base/sys.h"

#include <tide/file.h>

#include <errno.h>
#include <unistd.h>

struct xfile {
    tide_loop *loop;
    off_t roff, woff;          /* the next read's and write's offsets */
    struct tide__coro *reader; /* suspended in a read */
    struct tide__coro *writer; /* ... in a write */
};

static ssize_t xfile_recv(void *x, int fd, void *buf, size_t n)
{
    struct xfile *f = x;
    ssize_t r = tide__file_rw(fd, buf, n, f->roff, false, &f->reader);

    if (r > 0)
        f->roff += r;
    return r;
}

static ssize_t xfile_write(void *x, int fd, const void *buf, size_t n)
{
    struct xfile *f = x;
    ssize_t r = tide__file_rw(fd, (void *)buf, n, f->woff, true, &f->writer);

    if (r == 0)
        return -EIO; /* nothing written, and no error said why */
    if (r > 0)
        f->woff += r;
    return r;
}

/* Wake co out of the pool job it waits on (its wait's cancel hook gives
 * the job up and wakes it with what to_thread reads as -ECANCELED). */
static void interrupt(tide_loop *loop, struct tide__coro *co)
{
    if (co && co->state == TIDE__CORO_SUSPENDED && co->wait && !co->queued)
        co->wait->cancel(loop, co->wait);
}

static void xfile_close(void *x, int fd)
{
    struct xfile *f = x;

    interrupt(f->loop, f->reader);
    interrupt(f->loop, f->writer);
    /* Pool jobs use duplicates; ring ops hold the file once the kernel
     * has taken them, which the flush makes sure of. */
    if (f->reader || f->writer)
        tide__file_ring_flush(f->loop);
    (void)tide__sys_close(fd);
}

static void xfile_free(void *x)
{
    tide__free(x);
}

static const struct tide__stream_xport xfile_ops = {
    .recv = xfile_recv,
    .write = xfile_write,
    .close = xfile_close,
    .free = xfile_free,
};

tide_stream *tide_file_stream_new(int fd, size_t limit)
{
    if (fd < 0) {
        errno = EBADF;
        return NULL;
    }
    off_t at = lseek(fd, 0, SEEK_CUR);
    if (at < 0)
        return NULL; /* errno: EBADF, ESPIPE */
    tide_loop *loop = tide__loop_resolve(NULL);
    struct xfile *f = tide__calloc(1, sizeof *f);
    if (!f)
        return NULL;
    *f = (struct xfile){.loop = loop, .roff = at, .woff = at};
    tide_stream *s = tide__stream_new_xport(fd, limit, &xfile_ops, f);
    if (!s)
        tide__free(f);
    return s;
}

int tide_file_stream_open(const char *path, int flags, mode_t mode,
                          size_t limit, tide_stream **out)
{
    if (!out)
        return -EINVAL;
    int fd = tide_file_open(path, flags, mode);
    if (fd < 0)
        return fd;
    tide_stream *s = tide_file_stream_new(fd, limit);
    if (!s) {
        int err = -errno;
        (void)tide__sys_close(fd);
        return err;
    }
    *out = s;
    return 0;
}
