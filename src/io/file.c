/* File calls (tide/file.h): what runs where, and the request records of
 * the calls that run on the pool's file class.
 *
 * The ring. On a loop whose backend is io_uring, a task's read, pread,
 * write, pwrite, fsync and fdatasync (and a file stream's reads and
 * writes, through tide__file_rw) are backend ops (TIDE__OP_READ, _WRITE,
 * _FSYNC) run by tide__io_run on the caller's own buffer: the kernel
 * makes the call, and a cancelled call returns only once the kernel has
 * withdrawn it or finished it (io/op.c's rule, HAZARDS B41), so nothing
 * is copied and no fd is duplicated. The kernel looks the fd number up
 * when it takes the op, at the loop's next io_uring_enter, which may come
 * a few iterations later on a busy loop; so closing a file through tide
 * (tide_file_close, a file stream's close) first makes it take what is
 * queued (tide__file_ring_flush), and no op goes to a new file given the
 * same number (HAZARDS B07). Compact tasks stay on the pool: the
 * kernel would write into frames that are copied away while they wait.
 * Everything else (open, close, stat, fstat, rename, unlink, mkdir,
 * rmdir, listdir) runs on the pool on every backend, as do all the calls
 * on the readiness backends, where a regular file is always "ready" and
 * its call would block the loop.
 *
 * The pool. A request (struct freq) holds everything its job touches:
 * its kind, a duplicate of the caller's fd, copies of the paths, the
 * bounce buffer of a read or write, the stat or listing it fills. It is
 * the pool's while the job is in flight (tide__to_thread_owned):
 * delivered, the caller copies the outcome out and frees it; abandoned
 * (the caller was cancelled), the pool calls drop_request, which closes
 * what the job opened and frees the rest. So the caller's own memory is
 * never touched by a pool thread, and a cancelled caller can go at once.
 *
 * Reads try preadv2(RWF_NOWAIT) inline first, on every backend: a
 * page-cache hit costs one system call and no suspension. It is tried
 * again on every call (a file system that does not support it answers
 * EOPNOTSUPP at once). For tests and benchmarks, tide__file_no_inline
 * sends every read to the ring or the pool, and tide__file_no_ring keeps
 * the calls on the pool on io_uring too.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "base/sys.h"
#include "task/task.h"

#include <tide/file.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK ((size_t)1 << 20) /* the most one call moves */

bool tide__file_no_inline;
bool tide__file_no_ring;

enum freq_kind {
    F_OPEN,
    F_CLOSE,
    F_READ,
    F_WRITE,
    F_FSYNC,
    F_FDATASYNC,
    F_STAT,
    F_FSTAT,
    F_RENAME,
    F_UNLINK,
    F_MKDIR,
    F_RMDIR,
    F_LISTDIR,
};

struct freq {
    enum freq_kind kind;
    bool ran;    /* the job started (set on its thread) */
    int fd;      /* the dup (the caller's own fd for F_CLOSE), or -1 */
    int flags;   /* F_OPEN's */
    mode_t mode; /* F_OPEN's, F_MKDIR's */
    off_t off;   /* F_READ, F_WRITE: -1 for fd's offset */
    size_t n;    /* bytes in buf */
    ssize_t res; /* the outcome: a count, an fd, 0, or -errno */
    char *path;  /* copies (F_RENAME: path -> path2) */
    char *path2;
    struct stat st;    /* F_STAT, F_FSTAT */
    tide_dirent *list; /* F_LISTDIR */
    char buf[];        /* F_READ, F_WRITE: n bytes */
};

static void drop_request(void *arg)
{
    struct freq *r = arg;

    if (r->kind == F_CLOSE) {
        if (!r->ran)
            (void)tide__sys_close(r->fd); /* a close always closes */
    } else if (r->fd >= 0) {
        (void)tide__sys_close(r->fd);
    }
    if (r->kind == F_OPEN && r->ran && r->res >= 0)
        (void)tide__sys_close((int)r->res);
    tide__free(r->list);
    tide__free(r->path);
    tide__free(r->path2);
    tide__free(r);
}

static ssize_t sys_result(ssize_t r)
{
    return r < 0 ? -errno : r;
}

/* read or pread once, retrying EINTR. */
static ssize_t do_read(struct freq *r)
{
    for (;;) {
        ssize_t k = r->off < 0 ? tide__sys_read(r->fd, r->buf, r->n)
                               : tide__sys_pread(r->fd, r->buf, r->n, r->off);
        if (k >= 0 || errno != EINTR)
            return sys_result(k);
    }
}

/* write or pwrite all n bytes, completing short writes and retrying
 * EINTR: n, or what was written when an error stopped it (-errno if
 * nothing was). */
static ssize_t do_write(struct freq *r)
{
    size_t done = 0;

    while (done < r->n) {
        ssize_t k = r->off < 0
                        ? tide__sys_write(r->fd, r->buf + done, r->n - done)
                        : tide__sys_pwrite(r->fd, r->buf + done, r->n - done,
                                           r->off + (off_t)done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return done ? (ssize_t)done : k < 0 ? -errno : -EIO;
        done += (size_t)k;
    }
    return (ssize_t)done;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const tide_dirent *)a)->name,
                  ((const tide_dirent *)b)->name);
}

/* Read the directory into one block: the entries, a NULL-named
 * terminator, then the names. The count, or -errno. */
static ssize_t do_listdir(struct freq *r)
{
    DIR *d = tide__sys_opendir(r->path);
    if (!d)
        return -errno;
    size_t n = 0, cap = 16, names = 0, ncap = 256;
    tide_dirent *ents = tide__malloc(cap * sizeof *ents);
    size_t *offs = tide__malloc(cap * sizeof *offs);
    char *text = tide__malloc(ncap);
    ssize_t err = 0;
    struct dirent *e;

    if (!ents || !offs || !text)
        err = -ENOMEM;
    errno = 0;
    while (!err && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        size_t len = strlen(e->d_name) + 1;
        if (n == cap) {
            cap *= 2;
            tide_dirent *ne = tide__realloc(ents, cap * sizeof *ents);
            ents = ne ? ne : ents;
            size_t *no = tide__realloc(offs, cap * sizeof *offs);
            offs = no ? no : offs;
            if (!ne || !no) {
                err = -ENOMEM;
                break;
            }
        }
        while (names + len > ncap) {
            char *nt = tide__realloc(text, ncap * 2);
            if (!nt) {
                err = -ENOMEM;
                break;
            }
            text = nt;
            ncap *= 2;
        }
        if (err)
            break;
        memcpy(text + names, e->d_name, len);
        offs[n] = names;
        ents[n].type = e->d_type;
        names += len;
        n++;
        errno = 0;
    }
    if (!err && errno)
        err = -errno;
    closedir(d);
    tide_dirent *out = NULL;
    if (!err) {
        size_t head = (n + 1) * sizeof *out;
        out = tide__malloc(head + names);
        if (!out)
            err = -ENOMEM;
    }
    if (!err) {
        char *dst = (char *)out + (n + 1) * sizeof *out;
        memcpy(dst, text, names);
        for (size_t i = 0; i < n; i++)
            out[i] =
                (tide_dirent){.name = dst + offs[i], .type = ents[i].type};
        out[n] = (tide_dirent){0};
        qsort(out, n, sizeof *out, by_name);
        r->list = out;
    }
    tide__free(ents);
    tide__free(offs);
    tide__free(text);
    return err ? err : (ssize_t)n;
}

/* The job: run r's call on a pool thread. The outcome is r->res; the
 * result handed back is r itself (delivered: the caller's again). */
static int run_request(void *arg, void **result)
{
    struct freq *r = arg;
    ssize_t res = 0;

    r->ran = true;
    switch (r->kind) {
    case F_OPEN:
        res =
            sys_result(tide__sys_open(r->path, r->flags | O_CLOEXEC, r->mode));
        break;
    case F_CLOSE: {
        /* Linux frees the fd even when close fails with EINTR. */
        int k = tide__sys_close(r->fd);
        res = k < 0 && errno != EINTR ? -errno : 0;
        r->fd = -1;
        break;
    }
    case F_READ:
        res = do_read(r);
        break;
    case F_WRITE:
        res = do_write(r);
        break;
    case F_FSYNC:
    case F_FDATASYNC:
        res = sys_result(tide__sys_fsync(r->fd, r->kind == F_FDATASYNC));
        break;
    case F_STAT:
        res = sys_result(tide__sys_stat(r->path, &r->st));
        break;
    case F_FSTAT:
        res = sys_result(tide__sys_fstat(r->fd, &r->st));
        break;
    case F_RENAME:
        res = sys_result(tide__sys_rename(r->path, r->path2));
        break;
    case F_UNLINK:
        res = sys_result(tide__sys_unlink(r->path));
        break;
    case F_MKDIR:
        res = sys_result(tide__sys_mkdir(r->path, r->mode));
        break;
    case F_RMDIR:
        res = sys_result(tide__sys_rmdir(r->path));
        break;
    case F_LISTDIR:
        res = do_listdir(r);
        break;
    }
    r->res = res;
    *result = r;
    return 0;
}

/* A request of `kind` with room for n bytes; fd duplicated if >= 0 (the
 * caller's own for F_CLOSE). NULL with *err set. */
static struct freq *request_new(enum freq_kind kind, int fd, size_t n,
                                int *err)
{
    struct freq *r = tide__malloc(sizeof *r + n); /* buf: not cleared */

    if (!r) {
        *err = -ENOMEM;
        return NULL;
    }
    *r = (struct freq){0};
    r->kind = kind;
    r->n = n;
    r->fd = -1;
    r->off = -1;
    if (fd >= 0 && kind == F_CLOSE) {
        r->fd = fd;
    } else if (fd >= 0 && (r->fd = tide__sys_dup(fd)) < 0) {
        *err = -errno;
        tide__free(r);
        return NULL;
    }
    return r;
}

/* Run r on the pool, `*waiting` naming the calling task meanwhile (if
 * not NULL: a file stream's close wakes it through that). Returns r's
 * outcome; r is freed either way (by the pool if abandoned). If `out` is
 * not NULL, the delivered request is handed there instead (the caller
 * copies from it and frees it with drop_request). */
static ssize_t run(struct freq *r, struct tide__coro **waiting,
                   struct freq **out)
{
    void *got = NULL;
    tide_loop *loop = tide__task_loop();

    if (waiting)
        *waiting = loop->current;
    int err = tide__to_thread_owned(TIDE_POOL_FILE, run_request, r,
                                    drop_request, &got);
    if (waiting)
        *waiting = NULL;
    if (!got) {
        if (err != -ECANCELED) /* never submitted: still ours */
            drop_request(r);
        return err < 0 ? err : -EIO;
    }
    ssize_t res = err < 0 ? err : r->res;
    if (out && err == 0)
        *out = r;
    else
        drop_request(r);
    return res;
}

/* The checks every fd call makes, in order. */
static int fd_check(int fd, const void *buf, size_t n)
{
    if (!buf && n)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    return tide__task_loop() ? 0 : -EPERM;
}

/* ---- on the ring ------------------------------------------------------ */

/* Whether loop's running task makes its file calls on the ring. */
static bool on_ring(tide_loop *loop)
{
#ifdef TIDE_HAVE_URING
    return loop->backend.ops == &tide__backend_uring &&
           !tide__compact_running(loop) && !tide__file_no_ring;
#else
    (void)loop;
    return false;
#endif
}

void tide__file_ring_flush(tide_loop *loop)
{
#ifdef TIDE_HAVE_URING
    if (loop->backend.ops == &tide__backend_uring && loop->backend.inflight)
        tide__loop_poll(loop, 0);
#else
    (void)loop;
#endif
}

/* A call that moved `done` bytes and then ended with err: the count. If
 * err was a cancel request, it is delivered again at the next
 * suspension, since the count does not say it came. */
static ssize_t partial(size_t done, ssize_t err)
{
    if (!done)
        return err;
    if (err == -ECANCELED)
        tide__task_keep_request(tide__task_loop()->current);
    return (ssize_t)done;
}

/* One read, or a write of all n bytes (short ones completed), as ring
 * ops on buf itself, EINTR retried. */
static ssize_t ring_rw(tide_loop *loop, int fd, void *buf, size_t n, off_t off,
                       bool write, struct tide__coro **waiting)
{
    size_t done = 0;
    ssize_t k;

    if (waiting)
        *waiting = loop->current;
    do {
        struct tide__op req = {
            .kind = write ? TIDE__OP_WRITE : TIDE__OP_READ,
            .fd = fd,
            .buf = (char *)buf + done,
            .len = n - done,
            .offset = off < 0 ? -1 : off + (off_t)done,
        };
        k = tide__io_run(&req, write ? "file write" : "file read");
        done += k > 0 ? (size_t)k : 0;
    } while (k == -EINTR || (write && k > 0 && done < n));
    if (waiting)
        *waiting = NULL;
    if (write && k == 0)
        k = -EIO; /* nothing written, and no error said why */
    return partial(done, k);
}

static int ring_fsync(int fd, bool datasync)
{
    struct tide__op req = {.kind = TIDE__OP_FSYNC,
                           .fd = fd,
                           .flags = datasync ? TIDE__FSYNC_DATASYNC : 0,
                           .offset = -1};
    ssize_t r;

    while ((r = tide__io_run(&req, "file fsync")) == -EINTR)
        ;
    return (int)r;
}

/* ---- the calls -------------------------------------------------------- */

ssize_t tide__file_rw(int fd, void *buf, size_t n, off_t off, bool write,
                      struct tide__coro **waiting)
{
    int err;

    if (n > CHUNK)
        n = CHUNK;
    if (!write && !tide__file_no_inline) {
        ssize_t k = tide__sys_preadv2(fd, buf, n, off, RWF_NOWAIT);
        if (k >= 0)
            return k;
        /* Would block, or cannot be tried here (a file system without
         * RWF_NOWAIT, a kernel before preadv2, QEMU user mode): the pool. */
        if (errno != EAGAIN && errno != EOPNOTSUPP && errno != EINVAL &&
            errno != EINTR && errno != ENOSYS)
            return -errno;
    }
    tide_loop *loop = tide__task_loop();
    if (!loop)
        return -EPERM; /* a stream's read outside a task */
    if (on_ring(loop))
        return ring_rw(loop, fd, buf, n, off, write, waiting);
    struct freq *r = request_new(write ? F_WRITE : F_READ, fd, n, &err);
    if (!r)
        return err;
    r->off = off;
    if (write)
        memcpy(r->buf, buf, n);
    struct freq *done = NULL;
    ssize_t res = run(r, waiting, &done);
    if (done) {
        if (!write && res > 0)
            memcpy(buf, done->buf, (size_t)res);
        drop_request(done);
    }
    return res;
}

static ssize_t read_at(int fd, void *buf, size_t n, off_t off)
{
    int err = fd_check(fd, buf, n);

    if (err < 0)
        return err;
    return n ? tide__file_rw(fd, buf, n, off, false, NULL) : 0;
}

ssize_t tide_file_read(int fd, void *buf, size_t n)
{
    return read_at(fd, buf, n, -1);
}

ssize_t tide_file_pread(int fd, void *buf, size_t n, off_t off)
{
    return off < 0 ? -EINVAL : read_at(fd, buf, n, off);
}

/* All n bytes, a chunk per job, in order. */
static ssize_t write_at(int fd, const void *buf, size_t n, off_t off)
{
    int err = fd_check(fd, buf, n);
    size_t done = 0;

    if (err < 0)
        return err;
    while (done < n) {
        size_t want = n - done < CHUNK ? n - done : CHUNK;
        ssize_t k =
            tide__file_rw(fd, (char *)buf + done, want,
                          off < 0 ? -1 : off + (off_t)done, true, NULL);
        if (k < 0)
            return partial(done, k);
        done += (size_t)k;
        if ((size_t)k < want)
            break; /* an error stopped it: the next write says which */
    }
    return (ssize_t)done;
}

ssize_t tide_file_write(int fd, const void *buf, size_t n)
{
    return write_at(fd, buf, n, -1);
}

ssize_t tide_file_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return off < 0 ? -EINVAL : write_at(fd, buf, n, off);
}

/* A call with an fd and no buffer (close, fsync, fstat). */
static ssize_t fd_call(enum freq_kind kind, int fd, struct freq **out)
{
    int err = fd_check(fd, NULL, 0);

    if (err < 0)
        return err;
    struct freq *r = request_new(kind, fd, 0, &err);
    if (!r && kind == F_CLOSE) /* a close always closes: here, then */
        return tide__sys_close(fd) < 0 && errno != EINTR ? -errno : 0;
    return r ? run(r, NULL, out) : err;
}

/* A call with paths (open, stat, rename, unlink, mkdir, rmdir, listdir). */
static ssize_t path_call(enum freq_kind kind, const char *path,
                         const char *path2, int flags, mode_t mode,
                         struct freq **out)
{
    int err = 0;

    if (!path || (kind == F_RENAME && !path2))
        return -EINVAL;
    if (!tide__task_loop())
        return -EPERM;
    struct freq *r = request_new(kind, -1, 0, &err);
    if (!r)
        return err;
    r->flags = flags;
    r->mode = mode;
    r->path = tide__strdup(path);
    if (path2)
        r->path2 = tide__strdup(path2);
    if (!r->path || (path2 && !r->path2)) {
        drop_request(r);
        return -ENOMEM;
    }
    return run(r, NULL, out);
}

int tide_file_open(const char *path, int flags, mode_t mode)
{
    struct freq *done = NULL;
    ssize_t res = path_call(F_OPEN, path, NULL, flags, mode, &done);

    if (done) {
        done->res = -1; /* the fd is the caller's now */
        drop_request(done);
    }
    return (int)res;
}

int tide_file_close(int fd)
{
    tide_loop *loop = tide__task_loop();

    if (loop && fd >= 0)
        tide__file_ring_flush(loop); /* before the pool closes it */
    return (int)fd_call(F_CLOSE, fd, NULL);
}

static int sync_call(int fd, bool datasync)
{
    int err = fd_check(fd, NULL, 0);

    if (err < 0)
        return err;
    if (on_ring(tide__task_loop()))
        return ring_fsync(fd, datasync);
    return (int)fd_call(datasync ? F_FDATASYNC : F_FSYNC, fd, NULL);
}

int tide_file_fsync(int fd)
{
    return sync_call(fd, false);
}

int tide_file_fdatasync(int fd)
{
    return sync_call(fd, true);
}

/* Copy a delivered stat out. */
static int stat_out(ssize_t res, struct freq *done, struct stat *st)
{
    if (done) {
        if (res == 0)
            *st = done->st;
        drop_request(done);
    }
    return (int)res;
}

int tide_file_stat(const char *path, struct stat *st)
{
    struct freq *done = NULL;

    if (!st)
        return -EINVAL;
    ssize_t res = path_call(F_STAT, path, NULL, 0, 0, &done);
    return stat_out(res, done, st);
}

int tide_file_fstat(int fd, struct stat *st)
{
    struct freq *done = NULL;

    if (!st)
        return -EINVAL;
    ssize_t res = fd_call(F_FSTAT, fd, &done);
    return stat_out(res, done, st);
}

int tide_file_rename(const char *from, const char *to)
{
    return (int)path_call(F_RENAME, from, to, 0, 0, NULL);
}

int tide_file_unlink(const char *path)
{
    return (int)path_call(F_UNLINK, path, NULL, 0, 0, NULL);
}

int tide_file_mkdir(const char *path, mode_t mode)
{
    return (int)path_call(F_MKDIR, path, NULL, 0, mode, NULL);
}

int tide_file_rmdir(const char *path)
{
    return (int)path_call(F_RMDIR, path, NULL, 0, 0, NULL);
}

ssize_t tide_file_listdir(const char *path, tide_dirent **entries)
{
    struct freq *done = NULL;

    if (!entries)
        return -EINVAL;
    ssize_t res = path_call(F_LISTDIR, path, NULL, 0, 0, &done);
    if (done) {
        if (res >= 0) {
            *entries = done->list;
            done->list = NULL;
        }
        drop_request(done);
    }
    return res;
}

void tide_file_listdir_free(tide_dirent *entries)
{
    tide__free(entries);
}
