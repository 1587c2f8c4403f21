/* Files (include/tide/file.h): every call's success, bad input and system
 * errors (ENOENT, EISDIR, ENOTDIR, EEXIST, ENOTEMPTY, EACCES as an
 * unprivileged child when the suite runs as root); cancellation while
 * queued (the call never runs: its system call is not counted) and
 * while running (blocked on a FIFO: -ECANCELED at once, the fd an open
 * made closed, the caller's buffer never written, a write's bytes taken
 * from the copy); writes read back; faults through the seam (EINTR,
 * short reads and writes, errors); many calls at once; the file stream
 * (lines across buffer boundaries, a line over the limit, the last line
 * without a newline, reading from the pool, writing by drain and close,
 * a cancelled drain losing nothing, close waking a suspended reader);
 * compact tasks (on io_uring too). Every test runs on the loop's backend,
 * whichever it is (CI runs the suite on each); a test about the pool's own
 * behaviour (a job queued or running, the seam's faults on its calls) keeps
 * reads, writes and fsyncs on the pool on io_uring too (tide__file_no_ring).
 * test_file_uring.c tests them on the ring.
 * SPDX-License-Identifier: MIT
 */
#include "file_scratch.h"

#include "base/alloc.h"
#include "base/sys.h"
#include "io/io.h"

#include <tide/file.h>
#include <tide/pool.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

static atomic_int gate;    /* the blocker waits for it to be 1 */
static atomic_int started; /* the blocker has begun */

/* Whether this system reads cached bytes inline (preadv2 RWF_NOWAIT on
 * a regular file): QEMU user mode says EOPNOTSUPP, and every read then
 * goes to the pool. */
static bool inline_reads(void)
{
    char c;
    struct iovec iov = {.iov_base = &c, .iov_len = 1};
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    ssize_t k = preadv2(fd, &iov, 1, 0, RWF_NOWAIT);
    CHECK_EQ(close(fd), 0);
    return k == 1;
}

/* A file-class job that holds its thread until gate opens. */
static int blocker(void *arg, void **result)
{
    (void)arg;
    (void)result;
    atomic_store(&started, 1);
    while (!atomic_load(&gate))
        sched_yield();
    return 0;
}

/* Hold the file class (limit 1) with the blocker; its future. Only pool
 * calls queue behind it: reads, writes and fsyncs are kept there on
 * io_uring too. */
static tide_future *hold_file_class(tide_loop *loop)
{
    tide__file_no_ring = true;
    atomic_store(&gate, 0);
    atomic_store(&started, 0);
    CHECK_EQ(tide_pool_set_limit(TIDE_POOL_FILE, 1), 0);
    tide_future *b =
        tide_run_in_executor(loop, TIDE_POOL_FILE, blocker, NULL, NULL);
    CHECK_NOT_NULL(b);
    wait_for(&started, 1);
    return b;
}

static void release_file_class(tide_loop *loop, tide_future *b)
{
    atomic_store(&gate, 1);
    CHECK_EQ(tide_run_until_complete(loop, b, NULL), 0);
    tide_future_release(b);
    CHECK_EQ(tide_pool_set_limit(TIDE_POOL_FILE, 0), 0);
}

/* Run the loop until sys call `kind` has been counted past `base` (a
 * pool job has reached it). */
static void wait_sys(tide_loop *loop, enum tide__sys_kind kind, uint64_t base)
{
    double end = harness_now() + 5;
    while (tide__sys_count(kind) <= base) {
        CHECK(harness_now() < end);
        run_once(loop);
        sched_yield();
    }
}

/* ---- the calls ------------------------------------------------------- */

static void *roundtrip_body(void *arg)
{
    char buf[64];
    struct stat st;
    (void)arg;

    int fd = tide_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC); /* always added */
    CHECK_EQ(tide_file_write(fd, "hello world\n", 12), 12);
    CHECK_EQ(tide_file_pwrite(fd, "W", 1, 6), 1);
    /* A write that returned is in the kernel: plain pread sees it. */
    CHECK_EQ(pread(fd, buf, sizeof buf, 0), 12);
    CHECK(memcmp(buf, "hello World\n", 12) == 0);
    CHECK_EQ(tide_file_pread(fd, buf, 5, 6), 5);
    CHECK(memcmp(buf, "World", 5) == 0);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    CHECK_EQ(tide_file_read(fd, buf, 64), 12);
    CHECK_EQ(tide_file_read(fd, buf, 64), 0); /* end of file */
    CHECK_EQ(tide_file_read(fd, buf, 0), 0);
    CHECK_EQ(tide_file_fsync(fd), 0);
    CHECK_EQ(tide_file_fdatasync(fd), 0);
    CHECK_EQ(tide_file_fstat(fd, &st), 0);
    CHECK_EQ(st.st_size, 12);
    CHECK_EQ(tide_file_close(fd), 0);
    CHECK_EQ(fcntl(fd, F_GETFD), -1); /* closed */
    CHECK_ERR(tide_file_close(fd), -EBADF);

    memset(&st, 0, sizeof st);
    CHECK_EQ(tide_file_stat(path, &st), 0);
    CHECK_EQ(st.st_size, 12);
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ(tide_file_rename(path, path2), 0);
    CHECK_EQ(access(path, F_OK), -1);
    CHECK_EQ(access(path2, F_OK), 0);
    CHECK_EQ(tide_file_unlink(path2), 0);
    CHECK_EQ(access(path2, F_OK), -1);
    CHECK_EQ(tide_file_mkdir(path, 0700), 0);
    CHECK_EQ(tide_file_stat(path, &st), 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK_EQ(tide_file_rmdir(path), 0);
    CHECK_EQ(access(path, F_OK), -1);
    return NULL;
}

TEST(calls_do_what_they_say)
{
    scratch();
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, roundtrip_body, NULL), 0);
    finish(loop);
}

static void *bad_input_body(void *arg)
{
    char buf[8];
    struct stat st;
    tide_dirent *ents = (tide_dirent *)buf;
    (void)arg;

    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    uint64_t ops = tide__sys_count(TIDE__SYS_FILEOP);
    uint64_t opens = tide__sys_count(TIDE__SYS_OPEN);
    uint64_t dups = tide__sys_count(TIDE__SYS_DUP);
    CHECK_ERR(tide_file_open(NULL, O_RDONLY, 0), -EINVAL);
    CHECK_ERR(tide_file_read(fd, NULL, 4), -EINVAL);
    CHECK_ERR(tide_file_write(fd, NULL, 4), -EINVAL);
    CHECK_ERR(tide_file_pread(fd, NULL, 4, 0), -EINVAL);
    CHECK_ERR(tide_file_pwrite(fd, NULL, 4, 0), -EINVAL);
    CHECK_ERR(tide_file_pread(fd, buf, 4, -1), -EINVAL);
    CHECK_ERR(tide_file_pwrite(fd, buf, 4, -5), -EINVAL);
    CHECK_ERR(tide_file_read(-1, buf, 4), -EBADF);
    CHECK_ERR(tide_file_write(-1, buf, 4), -EBADF);
    CHECK_ERR(tide_file_close(-1), -EBADF);
    CHECK_ERR(tide_file_fsync(-2), -EBADF);
    CHECK_ERR(tide_file_fdatasync(-2), -EBADF);
    CHECK_ERR(tide_file_fstat(-1, &st), -EBADF);
    CHECK_ERR(tide_file_fstat(fd, NULL), -EINVAL);
    CHECK_ERR(tide_file_stat(NULL, &st), -EINVAL);
    CHECK_ERR(tide_file_stat(path, NULL), -EINVAL);
    CHECK_ERR(tide_file_rename(NULL, path2), -EINVAL);
    CHECK_ERR(tide_file_rename(path, NULL), -EINVAL);
    CHECK_ERR(tide_file_unlink(NULL), -EINVAL);
    CHECK_ERR(tide_file_mkdir(NULL, 0700), -EINVAL);
    CHECK_ERR(tide_file_rmdir(NULL), -EINVAL);
    CHECK_ERR(tide_file_listdir(NULL, &ents), -EINVAL);
    CHECK_ERR(tide_file_listdir(dir, NULL), -EINVAL);
    CHECK(ents == (tide_dirent *)buf); /* untouched */
    CHECK_ERR(tide_file_stream_open(path, O_RDONLY, 0, 0, NULL), -EINVAL);
    /* None of them made a system call. */
    CHECK_EQ(tide__sys_count(TIDE__SYS_FILEOP), ops);
    CHECK_EQ(tide__sys_count(TIDE__SYS_OPEN), opens);
    CHECK_EQ(tide__sys_count(TIDE__SYS_DUP), dups);
    CHECK_EQ(access(path, F_OK), 0);
    CHECK_EQ(close(fd), 0);
    return NULL;
}

TEST(bad_input_is_refused_and_changes_nothing)
{
    char buf[4];
    struct stat st;

    scratch();
    /* Outside a task. */
    CHECK_ERR(tide_file_open(dir, O_RDONLY, 0), -EPERM);
    CHECK_ERR(tide_file_read(0, buf, 4), -EPERM);
    CHECK_ERR(tide_file_stat(dir, &st), -EPERM);
    CHECK_ERR(tide_file_mkdir(path, 0700), -EPERM);
    CHECK_EQ(access(path, F_OK), -1);
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, bad_input_body, NULL), 0);
    errno = 0;
    CHECK_NULL(tide_file_stream_new(-1, 0));
    CHECK_ERR(errno, EBADF);
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_NULL(tide_file_stream_new(p[0], 0));
    CHECK_ERR(errno, ESPIPE);
    CHECK_EQ(close(p[0]), 0); /* still the caller's */
    CHECK_EQ(close(p[1]), 0);
    /* A file stream read outside a task: cached bytes inline, else -EPERM. */
    put_file(path, "ab\n", 3);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    tide_set_event_loop(loop);
    tide_stream *s = tide_file_stream_new(fd, 0);
    CHECK_NOT_NULL(s);
    tide__file_no_inline = true;
    const void *line;
    CHECK_ERR(tide_stream_readline(s, &line), -EPERM);
    tide__file_no_inline = false;
    if (inline_reads())
        CHECK_EQ(tide_stream_readline(s, &line), 3);
    else
        CHECK_ERR(tide_stream_readline(s, &line), -EPERM);
    CHECK_EQ(tide_stream_close(s, 0), 0);
    tide_set_event_loop(NULL);
    finish(loop);
}

static void *errors_body(void *arg)
{
    char buf[8];
    struct stat st;
    tide_dirent *ents = NULL;
    (void)arg;

    snprintf(path2, sizeof path2, "%s/missing", dir);
    CHECK_ERR(tide_file_open(path2, O_RDONLY, 0), -ENOENT);
    CHECK_ERR(tide_file_stat(path2, &st), -ENOENT);
    CHECK_ERR(tide_file_unlink(path2), -ENOENT);
    CHECK_ERR(tide_file_rmdir(path2), -ENOENT);
    CHECK_ERR(tide_file_rename(path2, path), -ENOENT);
    CHECK_ERR(tide_file_listdir(path2, &ents), -ENOENT);
    CHECK_ERR(tide_file_open(dir, O_WRONLY, 0), -EISDIR);
    int dfd = tide_file_open(dir, O_RDONLY | O_DIRECTORY, 0);
    CHECK(dfd >= 0);
    CHECK_ERR(tide_file_read(dfd, buf, sizeof buf), -EISDIR);
    CHECK_EQ(tide_file_close(dfd), 0);
    CHECK_ERR(tide_file_mkdir(dir, 0700), -EEXIST);
    put_file(path, "x", 1);
    CHECK_ERR(tide_file_listdir(path, &ents), -ENOTDIR);
    CHECK_ERR(tide_file_rmdir(path), -ENOTDIR);
    CHECK(ents == NULL);
    CHECK_ERR(tide_file_rmdir(dir), -ENOTEMPTY);
    /* A write on a read-only fd, a read on a write-only one. */
    int fd = tide_file_open(path, O_RDONLY, 0);
    CHECK(fd >= 0);
    CHECK_ERR(tide_file_write(fd, "y", 1), -EBADF);
    CHECK_EQ(tide_file_close(fd), 0);
    fd = tide_file_open(path, O_WRONLY, 0);
    CHECK(fd >= 0);
    CHECK_ERR(tide_file_read(fd, buf, 1), -EBADF);
    CHECK_EQ(tide_file_close(fd), 0);
    CHECK_ERR(tide_file_read(fd, buf, 1), -EBADF); /* closed */
    CHECK_ERR(tide_file_fsync(fd), -EBADF);
    return NULL;
}

TEST(system_errors_come_back_as_negative_errnos)
{
    scratch();
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, errors_body, NULL), 0);
    finish(loop);
}

static void *eacces_body(void *arg)
{
    (void)arg;
    CHECK_ERR(tide_file_open(path, O_RDONLY, 0), -EACCES);
    CHECK_ERR(tide_file_unlink(path), -EACCES); /* the directory is 0755 */
    return NULL;
}

/* As an unprivileged user (a child that drops root first, if need be). */
static void eacces_child(void *arg)
{
    (void)arg;
    if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
        _exit(77); /* no CAP_SETUID: the parent skips */
    tide_loop *loop = tide_loop_new();
    int ok =
        run_task(loop, eacces_body, NULL) == 0 && tide_loop_close(loop) == 0;
    pool_quiet(); /* no pool thread left for memcheck to report */
    _exit(ok ? 0 : 5);
}

TEST(permission_denied_is_eacces_even_for_root)
{
    char out[256];

    scratch();
    put_file(path, "secret", 6);
    CHECK_EQ(chmod(path, 0), 0);
    CHECK_EQ(chmod(dir, 0755), 0);
    int status = harness_run_child(eacces_child, NULL, out, sizeof out);
    CHECK(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        scratch_end();
        SKIP("root that cannot become another user");
    }
    CHECK_EQ(WEXITSTATUS(status), 0);
    scratch_end();
    LEAK_GATE();
}

static void *listdir_body(void *arg)
{
    tide_dirent *ents = NULL;
    char p[160];
    (void)arg;

    CHECK_EQ(tide_file_listdir(dir, &ents), 0); /* empty */
    CHECK_NOT_NULL(ents);
    CHECK_NULL(ents[0].name);
    tide_file_listdir_free(ents);
    const char *names[] = {"zeta", "alpha", "mid", "beta.txt"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        put_file(p, "x", 1);
    }
    snprintf(p, sizeof p, "%s/sub", dir);
    CHECK_EQ(mkdir(p, 0700), 0);
    CHECK_EQ(tide_file_listdir(dir, &ents), 5);
    const char *want[] = {"alpha", "beta.txt", "mid", "sub", "zeta"};
    for (int i = 0; i < 5; i++) {
        CHECK_STR_EQ(ents[i].name, want[i]);
        CHECK_EQ(ents[i].type, strcmp(want[i], "sub") ? DT_REG : DT_DIR);
    }
    CHECK_NULL(ents[5].name);
    tide_file_listdir_free(ents);
    tide_file_listdir_free(NULL);
    /* Many entries: the growth paths. */
    for (int i = 0; i < 300; i++) {
        snprintf(p, sizeof p, "%s/sub/entry-with-a-long-name-%03d", dir, i);
        put_file(p, "", 0);
    }
    snprintf(p, sizeof p, "%s/sub", dir);
    CHECK_EQ(tide_file_listdir(p, &ents), 300);
    CHECK_STR_EQ(ents[0].name, "entry-with-a-long-name-000");
    CHECK_STR_EQ(ents[299].name, "entry-with-a-long-name-299");
    tide_file_listdir_free(ents);
    return NULL;
}

TEST(listdir_lists_sorted_names_with_types)
{
    scratch();
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, listdir_body, NULL), 0);
    finish(loop);
}

/* ---- cancellation ---------------------------------------------------- */

static void *mkdir_body(void *arg)
{
    (void)arg;
    int err = tide_file_mkdir(path, 0700);
    return err < 0 ? tide_fail(err) : NULL;
}

static void *open_body(void *arg)
{
    int fd = tide_file_open(arg, O_RDONLY, 0);
    return fd < 0 ? tide_fail(fd) : IPTR(fd);
}

static void *close_body(void *arg)
{
    int err = tide_file_close((int)PINT(arg));
    return err < 0 ? tide_fail(err) : NULL;
}

/* Start body, let it reach the pool, cancel it, run it to its end: its
 * error. */
static int start_and_cancel(tide_loop *loop, tide_fn body, void *arg)
{
    tide_future *t = tide_create_task(loop, body, arg);
    CHECK_NOT_NULL(t);
    run_once(loop);
    run_once(loop);
    CHECK(!tide_future_done(t));
    CHECK(tide_future_cancel(t));
    int err = tide_run_until_complete(loop, t, NULL);
    tide_future_release(t);
    return err;
}

TEST(a_call_cancelled_while_queued_never_runs)
{
    scratch();
    put_file(path2, "x", 1);
    tide_loop *loop = tide_loop_new();
    tide_future *b = hold_file_class(loop);
    uint64_t ops = tide__sys_count(TIDE__SYS_FILEOP);
    uint64_t opens = tide__sys_count(TIDE__SYS_OPEN);
    long fds = harness_fd_count();
    CHECK_ERR(start_and_cancel(loop, mkdir_body, NULL), -ECANCELED);
    CHECK_ERR(start_and_cancel(loop, open_body, path2), -ECANCELED);
    /* A queued close that is cancelled still closes. */
    int fd = open(path2, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_ERR(start_and_cancel(loop, close_body, IPTR(fd)), -ECANCELED);
    CHECK_EQ(fcntl(fd, F_GETFD), -1);
    release_file_class(loop, b);
    pool_quiet();
    CHECK_EQ(tide__sys_count(TIDE__SYS_FILEOP), ops); /* no mkdir made */
    CHECK_EQ(tide__sys_count(TIDE__SYS_OPEN), opens); /* no open made */
    CHECK_EQ(access(path, F_OK), -1);
    CHECK_EQ(harness_fd_count(), fds);
    finish(loop);
}

TEST(an_open_cancelled_while_running_closes_its_fd)
{
    scratch();
    CHECK_EQ(mkfifo(path, 0600), 0);
    tide_loop *loop = tide_loop_new();
    long fds = harness_fd_count();
    uint64_t opens = tide__sys_count(TIDE__SYS_OPEN);
    tide_future *t = tide_create_task(loop, open_body, path);
    wait_sys(loop, TIDE__SYS_OPEN, opens); /* blocked in open(fifo) */
    double t0 = harness_now();
    CHECK(tide_future_cancel(t));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(harness_now() - t0 < 1.0); /* at once, not when open returns */
    tide_future_release(t);
    /* Let the open finish: a writer comes. Its fd is closed for us. */
    int w = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(w >= 0);
    pool_quiet();
    CHECK_EQ(close(w), 0);
    CHECK_EQ(harness_fd_count(), fds);
    finish(loop);
}

TEST(a_read_cancelled_while_running_never_writes_the_buffer)
{
    scratch();
    tide__file_no_ring = true; /* the pool's read, on io_uring too */
    CHECK_EQ(mkfifo(path, 0600), 0);
    int fd = open(path, O_RDWR | O_CLOEXEC); /* blocking; never waits */
    CHECK(fd >= 0);
    memset(rbuf, 'A', sizeof rbuf);
    tide_loop *loop = tide_loop_new();
    uint64_t reads = tide__sys_count(TIDE__SYS_READ);
    tide_future *t = tide_create_task(loop, read_body, IPTR(fd));
    wait_sys(loop, TIDE__SYS_READ, reads); /* blocked in read */
    CHECK(tide_future_cancel(t));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ECANCELED);
    tide_future_release(t);
    /* The read now gets bytes, on its own buffer. */
    CHECK_EQ(write(fd, "XYZ", 3), 3);
    pool_quiet();
    for (size_t i = 0; i < sizeof rbuf; i++)
        CHECK_EQ(rbuf[i], 'A');
    /* And closing fd while the job held a duplicate was safe. */
    CHECK_EQ(close(fd), 0);
    finish(loop);
}

TEST(a_write_cancelled_while_running_writes_the_bytes_it_was_given)
{
    char page[4096];
    char got[sizeof wbuf];

    scratch();
    tide__file_no_ring = true; /* the pool's write, on io_uring too */
    CHECK_EQ(mkfifo(path, 0600), 0);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(fcntl(fd, F_SETPIPE_SZ, 4096) >= 0);
    int fl = fcntl(fd, F_GETFL);
    /* Fill the pipe, so that the write blocks. */
    CHECK_EQ(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
    memset(page, 'P', sizeof page);
    while (write(fd, page, sizeof page) > 0)
        ;
    CHECK_EQ(fcntl(fd, F_SETFL, fl), 0);
    memset(wbuf, 'W', sizeof wbuf);
    tide_loop *loop = tide_loop_new();
    uint64_t writes = tide__sys_count(TIDE__SYS_WRITE);
    tide_future *t = tide_create_task(loop, write_body, IPTR(fd));
    wait_sys(loop, TIDE__SYS_WRITE, writes);
    CHECK(tide_future_cancel(t));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ECANCELED);
    tide_future_release(t);
    memset(wbuf, 'Z', sizeof wbuf); /* the caller reuses its buffer */
    /* The caller closes fd and its number goes to another file (HAZARDS
     * B07): the write goes on on its duplicate, never on the new file. */
    int rd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    CHECK(rd >= 0);
    CHECK_EQ(close(fd), 0);
    int other = open(path2, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CHECK(other >= 0);
    /* Drain the pipe: the full page, then the write's own bytes. */
    size_t have = 0;
    double end = harness_now() + 5;
    while (have < sizeof page + sizeof got) {
        char *to = have < sizeof page ? page + have : got + have - sizeof page;
        size_t room = have < sizeof page ? sizeof page - have
                                         : sizeof got - (have - sizeof page);
        ssize_t k = read(rd, to, room);
        CHECK(k > 0 || (k < 0 && errno == EAGAIN));
        CHECK(harness_now() < end);
        have += k > 0 ? (size_t)k : 0;
    }
    for (size_t i = 0; i < sizeof got; i++)
        CHECK_EQ(got[i], 'W');
    pool_quiet();
    struct stat st;
    CHECK_EQ(fstat(other, &st), 0);
    CHECK_EQ(st.st_size, 0);
    CHECK_EQ(close(other), 0);
    CHECK_EQ(close(rd), 0);
    finish(loop);
}

static void *pwrite_body(void *arg)
{
    ssize_t n = tide_file_pwrite((int)PINT(arg), "queued", 6, 0);
    return n < 0 ? tide_fail((int)n) : IPTR(n);
}

TEST(a_call_works_on_the_file_its_fd_named_when_it_was_made)
{
    char got[16];

    scratch();
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    tide_loop *loop = tide_loop_new();
    tide_future *b = hold_file_class(loop);
    tide_future *t = tide_create_task(loop, pwrite_body, IPTR(fd));
    run_once(loop);
    run_once(loop); /* queued behind the blocker */
    /* Another task closes fd meanwhile; the number goes to a new file. */
    CHECK_EQ(close(fd), 0);
    int other = open(path2, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CHECK_EQ(other, fd);
    release_file_class(loop, b);
    void *res = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &res), 0);
    CHECK_EQ(PINT(res), 6);
    tide_future_release(t);
    CHECK_EQ(get_file(path, got, sizeof got), 6);
    CHECK(memcmp(got, "queued", 6) == 0);
    struct stat st;
    CHECK_EQ(fstat(other, &st), 0);
    CHECK_EQ(st.st_size, 0); /* the new file untouched */
    CHECK_EQ(close(other), 0);
    finish(loop);
}

/* ---- faults through the seam ----------------------------------------- */

static void *faults_body(void *arg)
{
    char buf[64];
    (void)arg;

    int fd = tide_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    /* A short write is completed before the write returns. */
    tide__sys_fault(TIDE__SYS_WRITE, 1, 0, 3);
    CHECK_EQ(tide_file_write(fd, "0123456789", 10), 10);
    CHECK_EQ(get_file(path, buf, sizeof buf), 10);
    CHECK(memcmp(buf, "0123456789", 10) == 0);
    /* EINTR is retried. */
    tide__sys_fault(TIDE__SYS_WRITE, 1, EINTR, 0);
    CHECK_EQ(tide_file_pwrite(fd, "ab", 2, 10), 2);
    tide__sys_fault(TIDE__SYS_PREADV2, 1, EAGAIN, 0); /* to the pool */
    tide__sys_fault(TIDE__SYS_READ, 1, EINTR, 0);
    CHECK_EQ(tide_file_pread(fd, buf, sizeof buf, 0), 12);
    CHECK(memcmp(buf, "0123456789ab", 12) == 0);
    tide__sys_fault(TIDE__SYS_PREADV2, 1, EINTR, 0); /* to the pool */
    CHECK_EQ(tide_file_pread(fd, buf, 4, 2), 4);
    CHECK(memcmp(buf, "2345", 4) == 0);
    /* A short read (inline, then from the pool) is a short count. */
    tide__sys_fault(TIDE__SYS_PREADV2, 1, 0, 5);
    CHECK_EQ(tide_file_pread(fd, buf, sizeof buf, 0), inline_reads() ? 5 : 12);
    tide__file_no_inline = true;
    tide__sys_fault(TIDE__SYS_READ, 1, 0, 7);
    CHECK_EQ(tide_file_pread(fd, buf, sizeof buf, 0), 7);
    CHECK(memcmp(buf, "0123456", 7) == 0);
    tide__file_no_inline = false;
    /* Errors: nothing written; the error itself. */
    tide__sys_fault(TIDE__SYS_WRITE, 1, ENOSPC, 0);
    CHECK_ERR(tide_file_pwrite(fd, "zz", 2, 0), -ENOSPC);
    CHECK_EQ(get_file(path, buf, sizeof buf), 12);
    CHECK_EQ(buf[0], '0');
    tide__sys_fault(TIDE__SYS_FSYNC, 1, EIO, 0);
    CHECK_ERR(tide_file_fsync(fd), -EIO);
    tide__sys_fault(TIDE__SYS_DUP, 1, EMFILE, 0);
    CHECK_ERR(tide_file_fstat(fd, &(struct stat){0}), -EMFILE);
    tide__sys_fault(TIDE__SYS_OPEN, 1, EMFILE, 0);
    CHECK_ERR(tide_file_open(path, O_RDONLY, 0), -EMFILE);
    CHECK_EQ(tide_file_close(fd), 0);
    return NULL;
}

TEST(faults_eintr_short_counts_and_errors)
{
    scratch();
    tide__file_no_ring = true; /* the seam's faults are the pool's calls */
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, faults_body, NULL), 0);
    finish(loop);
}

static void *enomem_body(void *arg)
{
    (void)arg;
    struct stat st;
    int fd = tide_file_open(path, O_RDWR | O_CREAT, 0600);
    CHECK(fd >= 0);
    /* Fail every allocation in turn: each call fails cleanly or works. */
    for (long n = 1; n < 8; n++) {
        tide__alloc_fail_after(n);
        int err = tide_file_stat(path, &st);
        tide__alloc_fail_after(0);
        CHECK(err == 0 || err == -ENOMEM);
        tide__alloc_fail_after(n);
        ssize_t k = tide_file_pwrite(fd, "abc", 3, 0);
        tide__alloc_fail_after(0);
        CHECK(k == 3 || k == -ENOMEM);
        /* A close closes, memory or not. */
        int fd2 = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd2 >= 0);
        tide__alloc_fail_after(n);
        err = tide_file_close(fd2);
        tide__alloc_fail_after(0);
        CHECK_EQ(err, 0);
        CHECK_EQ(fcntl(fd2, F_GETFD), -1);
    }
    CHECK_EQ(tide_file_close(fd), 0);
    return NULL;
}

TEST(enomem_fails_cleanly)
{
    scratch();
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, enomem_body, NULL), 0);
    finish(loop);
}

static void *emfile_body(void *arg)
{
    char buf[8];
    struct stat st;
    struct rlimit old, low;
    int fd = (int)PINT(arg);

    /* Switch away and back once first: ASan learns a stack's bounds from
     * /proc/self/maps, which it cannot open once the fds are gone. */
    CHECK_EQ(tide_sleep(0), 0);
    /* A limit just above what is open, then every free number taken. */
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)harness_fd_count() + 8;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    int spare[64], nspare = 0;
    while (nspare < 64 && (spare[nspare] = open(path, O_RDONLY)) >= 0)
        nspare++;
    CHECK(nspare < 64);
    CHECK_ERR(tide_file_open(path, O_RDONLY, 0), -EMFILE);
    tide__file_no_inline = true; /* the pool's read needs a dup */
    tide__file_no_ring = true;
    CHECK_ERR(tide_file_pread(fd, buf, sizeof buf, 0), -EMFILE);
    tide__file_no_ring = false;
    if (strcmp(tide_loop_backend(NULL), "io_uring") == 0 && !harness_compact())
        CHECK_EQ(tide_file_pread(fd, buf, sizeof buf, 0), 1); /* no dup */
    CHECK_ERR(tide_file_fstat(fd, &st), -EMFILE);
    tide__file_no_inline = false;
    CHECK_EQ(tide_file_stat(path, &st), 0); /* needs no fd */
    while (nspare > 0)
        CHECK_EQ(close(spare[--nspare]), 0);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    return NULL;
}

/* Out of fds for real (HAZARDS: a low fd limit): a clear -EMFILE, and
 * nothing leaked. */
TEST(out_of_fds_is_emfile)
{
    scratch();
    put_file(path, "x", 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, emfile_body, IPTR(fd)), 0);
    CHECK_EQ(close(fd), 0);
    finish(loop);
}

static atomic_int storming;
static atomic_long signals_sent;

static void on_usr1(int sig)
{
    (void)sig;
}

static void *storm(void *target)
{
    while (atomic_load(&storming)) {
        pthread_kill(*(pthread_t *)target, SIGUSR1);
        atomic_fetch_add(&signals_sent, 1);
        usleep(50);
    }
    return NULL;
}

static void *storm_body(void *arg)
{
    char buf[64];
    struct stat st;
    (void)arg;

    for (int i = 0; i < 200; i++) {
        int fd = tide_file_open(path, O_RDWR | O_CREAT, 0600);
        CHECK(fd >= 0);
        CHECK_EQ(tide_file_pwrite(fd, "storm", 5, i), 5);
        tide__file_no_inline = i % 2; /* both read paths */
        CHECK_EQ(tide_file_pread(fd, buf, 5, i), 5);
        CHECK(memcmp(buf, "storm", 5) == 0);
        CHECK_EQ(tide_file_fstat(fd, &st), 0);
        CHECK_EQ(tide_file_close(fd), 0);
    }
    tide__file_no_inline = false;
    return NULL;
}

/* HAZARDS B36: a signal storm (a handler without SA_RESTART) while file
 * calls run: none of them returns EINTR. */
TEST(a_signal_storm_never_surfaces_as_eintr)
{
    struct sigaction sa = {.sa_handler = on_usr1}, old;
    pthread_t self = pthread_self(), t;

    scratch();
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    atomic_store(&storming, 1);
    CHECK_EQ(pthread_create(&t, NULL, storm, &self), 0);
    /* The storm is on before the calls start (on a loaded machine its
     * thread may start late). */
    while (atomic_load(&signals_sent) == 0)
        usleep(100);
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, storm_body, NULL), 0);
    atomic_store(&storming, 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(atomic_load(&signals_sent) > 0);
    CHECK_EQ(sigaction(SIGUSR1, &old, NULL), 0);
    finish(loop);
}

/* ---- many at once ---------------------------------------------------- */

#define MANY 200

static int shared_fd;

static void *many_body(void *arg)
{
    long i = (long)PINT(arg);
    char mine[32], got[32];

    memset(mine, 'a' + (int)(i % 26), sizeof mine);
    ssize_t k = tide_file_pwrite(shared_fd, mine, sizeof mine,
                                 (off_t)(i * (long)sizeof mine));
    CHECK_EQ(k, (ssize_t)sizeof mine);
    if (i % 2)
        tide__file_no_inline = true; /* half the reads from the pool */
    k = tide_file_pread(shared_fd, got, sizeof got,
                        (off_t)(i * (long)sizeof mine));
    CHECK_EQ(k, (ssize_t)sizeof got);
    CHECK(memcmp(mine, got, sizeof got) == 0);
    struct stat st;
    CHECK_EQ(tide_file_fstat(shared_fd, &st), 0);
    return NULL;
}

TEST(many_calls_at_once)
{
    tide_future *t[MANY];

    scratch();
    shared_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CHECK(shared_fd >= 0);
    tide_loop *loop = tide_loop_new();
    for (long i = 0; i < MANY; i++)
        CHECK_NOT_NULL(t[i] = tide_create_task(loop, many_body, IPTR(i)));
    tide_future *all = tide_gather(t, MANY, 0);
    CHECK_EQ(tide_run_until_complete(loop, all, NULL), 0);
    tide_future_release(all);
    for (long i = 0; i < MANY; i++)
        tide_future_release(t[i]);
    struct stat st;
    CHECK_EQ(fstat(shared_fd, &st), 0);
    CHECK_EQ(st.st_size, MANY * 32);
    CHECK_EQ(close(shared_fd), 0);
    finish(loop);
}

static void *big_body(void *arg)
{
    size_t n = (size_t)3 << 20;
    char *out = malloc(n), *in = malloc(n);
    (void)arg;

    CHECK(out && in);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(i * 7 + i / 4096);
    int fd = tide_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(tide_file_write(fd, out, n), (ssize_t)n);
    size_t got = 0;
    ssize_t k;
    while ((k = tide_file_pread(fd, in + got, n - got, (off_t)got)) > 0) {
        CHECK(k <= (ssize_t)1 << 20); /* one call: at most 1 MiB */
        got += (size_t)k;
    }
    CHECK_EQ(k, 0);
    CHECK_EQ(got, n);
    CHECK(memcmp(in, out, n) == 0);
    CHECK_EQ(tide_file_close(fd), 0);
    free(out);
    free(in);
    return NULL;
}

TEST(writes_over_a_mebibyte_go_in_order)
{
    scratch();
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, big_body, NULL), 0);
    finish(loop);
}

/* ---- the file stream ------------------------------------------------- */

/* Line i of the test file: i % 50 + 1 characters, then '\n'. */
static size_t make_lines(char *buf, int nlines)
{
    size_t n = 0;
    for (int i = 0; i < nlines; i++) {
        int len = i % 50 + 1;
        for (int c = 0; c < len; c++)
            buf[n++] = (char)('a' + (i + c) % 26);
        buf[n++] = '\n';
    }
    return n;
}

static char text[64 * 1024];
static size_t text_len;

static void *lines_body(void *arg)
{
    tide_stream *s = NULL;
    const void *line;
    (void)arg;

    /* limit 64: lines of up to 51 bytes cross every buffer boundary. */
    CHECK_EQ(tide_file_stream_open(path, O_RDONLY, 0, 64, &s), 0);
    size_t at = 0;
    ssize_t n;
    while ((n = tide_stream_readline(s, &line)) > 0) {
        CHECK(at + (size_t)n <= text_len);
        CHECK(memcmp(line, text + at, (size_t)n) == 0);
        CHECK_EQ(((const char *)line)[n - 1], '\n');
        at += (size_t)n;
    }
    CHECK_EQ(n, 0);
    CHECK_EQ(at, text_len);
    CHECK(tide_stream_at_eof(s));
    CHECK_EQ(tide_stream_close(s, 1.0), 0);
    return NULL;
}

TEST(file_stream_reads_lines_across_buffer_boundaries)
{
    scratch();
    text_len = make_lines(text, 1000);
    put_file(path, text, text_len);
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, lines_body, NULL), 0);
    /* Again with every read on the pool, and short reads on the way. */
    tide__file_no_inline = true;
    tide__sys_fault(TIDE__SYS_READ, 3, 0, 5);
    CHECK_EQ(run_task(loop, lines_body, NULL), 0);
    tide__file_no_inline = false;
    tide__sys_fault(TIDE__SYS_PREADV2, 2, 0, 1);
    CHECK_EQ(run_task(loop, lines_body, NULL), 0);
    finish(loop);
}

static void *limits_body(void *arg)
{
    tide_stream *s = NULL;
    const void *line;
    char buf[200];
    (void)arg;

    CHECK_EQ(tide_file_stream_open(path, O_RDONLY, 0, 32, &s), 0);
    CHECK_ERR(tide_stream_readline(s, &line), -EMSGSIZE);
    /* The bytes stay: read the long line out by size. */
    size_t got = 0;
    CHECK_EQ(tide_stream_readexactly(s, buf, 101, &got), 0);
    CHECK_EQ(got, 101);
    CHECK_EQ(buf[100], '\n');
    CHECK_EQ(tide_stream_readline(s, &line), 6);
    CHECK(memcmp(line, "short\n", 6) == 0);
    CHECK_EQ(tide_stream_readline(s, &line), 4); /* no newline at the end */
    CHECK(memcmp(line, "tail", 4) == 0);
    CHECK_EQ(tide_stream_readline(s, &line), 0);
    CHECK_ERR(tide_stream_readexactly(s, buf, 1, &got), -ENODATA);
    CHECK_EQ(tide_stream_close(s, 1.0), 0);
    return NULL;
}

TEST(file_stream_line_over_the_limit_and_last_line_without_newline)
{
    char data[200];

    scratch();
    memset(data, 'L', 100);
    data[100] = '\n';
    memcpy(data + 101, "short\ntail", 10);
    put_file(path, data, 111);
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, limits_body, NULL), 0);
    finish(loop);
}

static void *writer_body(void *arg)
{
    tide_stream *s = NULL;
    (void)arg;

    CHECK_EQ(tide_file_stream_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600, 0,
                                   &s),
             0);
    for (size_t at = 0; at < text_len; at += 100) {
        size_t n = text_len - at < 100 ? text_len - at : 100;
        CHECK_EQ(tide_stream_write(s, text + at, n), 0);
        CHECK_EQ(tide_stream_drain(s), 0);
        CHECK(tide_stream_queued(s) <= 64 * 1024);
    }
    CHECK_EQ(tide_stream_write_eof(s), 0);
    CHECK_ERR(tide_stream_write(s, "x", 1), -EPIPE);
    CHECK_EQ(tide_stream_close(s, 5.0), 0);
    return NULL;
}

TEST(file_stream_writes_by_drain_and_close)
{
    static char back[sizeof text];

    scratch();
    text_len = make_lines(text, 2000); /* about 52 KiB */
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(run_task(loop, writer_body, NULL), 0);
    CHECK_EQ(get_file(path, back, sizeof back), text_len);
    CHECK(memcmp(back, text, text_len) == 0);
    finish(loop);
}

TEST(a_cancelled_drain_loses_nothing)
{
    static char back[3 * 65536];
    static char big[3 * 65536];

    scratch();
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 23);
    tide_loop *loop = tide_loop_new();
    tide_set_event_loop(loop);
    queued_stream(big, 2 * 65536);
    tide_future *b = hold_file_class(loop);
    /* The drain's job is queued behind the blocker: cancel it there. */
    CHECK_ERR(start_and_cancel(loop, drain_body, NULL), -ECANCELED);
    CHECK_EQ(tide_stream_queued(shared_stream), 2 * 65536);
    release_file_class(loop, b);
    CHECK_EQ(tide_stream_write(shared_stream, big + 2 * 65536, 65536), 0);
    /* Now cancel one whose job runs (it may or may not be written: the
     * next write puts the same bytes at the same place). */
    tide_future *t = tide_create_task(loop, drain_body, NULL);
    run_once(loop);
    tide_future_cancel(t);
    (void)tide_run_until_complete(loop, t, NULL);
    tide_future_release(t);
    tide_future *c = tide_create_task(loop, drain_body, NULL);
    CHECK_EQ(tide_run_until_complete(loop, c, NULL), 0);
    tide_future_release(c);
    CHECK_EQ(tide_stream_close(shared_stream, 0), 0); /* nothing queued */
    pool_quiet();
    CHECK_EQ(get_file(path, back, sizeof back), sizeof big);
    CHECK(memcmp(back, big, sizeof big) == 0);
    tide_set_event_loop(NULL);
    finish(loop);
}

static void *close_body_timeout(void *arg)
{
    double *timeout = arg;
    return IPTR(tide_stream_close(shared_stream, *timeout));
}

TEST(closing_a_file_stream_waits_for_a_drain_or_wakes_it)
{
    static char big[2 * 65536], back[sizeof big];

    scratch();
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('A' + i % 26);
    tide_loop *loop = tide_loop_new();
    tide_set_event_loop(loop);
    for (int round = 0; round < 2; round++) {
        int fd = queued_stream(big, sizeof big);
        tide_future *b = hold_file_class(loop);
        tide_future *d = tide_create_task(loop, drain_body, NULL);
        run_once(loop);
        run_once(loop); /* the drain's job is queued behind the blocker */
        /* Round 0: close waits for the drain (its bytes are not written
         * yet); round 1: its deadline passes first, and it wakes the
         * drain, which says the stream is closed. */
        double timeout = round == 0 ? 5.0 : 0.05;
        tide_future *c = tide_create_task(loop, close_body_timeout, &timeout);
        void *res = NULL;
        if (round == 0) {
            run_once(loop);
            run_once(loop);
            CHECK(!tide_future_done(c));
            release_file_class(loop, b);
            CHECK_EQ(tide_run_until_complete(loop, c, &res), 0);
            CHECK_EQ(PINT(res), 0);
            CHECK_EQ(tide_run_until_complete(loop, d, NULL), 0);
            CHECK_EQ(get_file(path, back, sizeof back), sizeof big);
            CHECK(memcmp(back, big, sizeof big) == 0);
        } else {
            CHECK_EQ(tide_run_until_complete(loop, c, &res), 0);
            CHECK_ERR(PINT(res), -ETIMEDOUT);
            CHECK_ERR(tide_run_until_complete(loop, d, NULL), -EBADF);
            CHECK_EQ(fcntl(fd, F_GETFD), -1); /* closed */
            release_file_class(loop, b);
        }
        tide_future_release(c);
        tide_future_release(d);
    }
    tide_set_event_loop(NULL);
    finish(loop);
}

static void *closer_body(void *arg)
{
    (void)arg;
    return IPTR(tide_stream_close(shared_stream, 1.0));
}

TEST(closing_a_file_stream_wakes_a_suspended_reader)
{
    scratch();
    put_file(path, "line\n", 5);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    tide_loop *loop = tide_loop_new();
    tide_set_event_loop(loop);
    shared_stream = tide_file_stream_new(fd, 0);
    CHECK_NOT_NULL(shared_stream);
    tide__file_no_inline = true;
    tide_future *b = hold_file_class(loop);
    tide_future *r = tide_create_task(loop, reader_body, NULL);
    run_once(loop);
    run_once(loop);
    CHECK(!tide_future_done(r)); /* its read is queued behind the blocker */
    tide_future *c = tide_create_task(loop, closer_body, NULL);
    void *res = NULL;
    CHECK_EQ(tide_run_until_complete(loop, c, &res), 0);
    CHECK_EQ(PINT(res), 0);
    CHECK_ERR(tide_run_until_complete(loop, r, NULL), -EBADF);
    tide_future_release(r);
    tide_future_release(c);
    CHECK_EQ(fcntl(fd, F_GETFD), -1); /* closed */
    release_file_class(loop, b);
    tide_set_event_loop(NULL);
    finish(loop);
}

/* ---- compact tasks ---------------------------------------------------- */

static void *compact_body(void *arg)
{
    char buf[16]; /* on the compact task's own stack */
    const void *line;
    tide_stream *s = NULL;
    (void)arg;

    int fd = tide_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(tide_file_write(fd, "one\ntwo\n", 8), 8);
    uint64_t dups = tide__sys_count(TIDE__SYS_DUP);
    tide__file_no_inline = true;
    CHECK_EQ(tide_file_pread(fd, buf, sizeof buf, 4), 4);
    CHECK(memcmp(buf, "two\n", 4) == 0);
    tide__file_no_inline = false;
    CHECK_EQ(tide_file_fsync(fd), 0);
    /* On the pool, io_uring or not: the kernel never had a buffer of this
     * task's frames (each pool job works on a duplicate fd). */
    CHECK(tide__sys_count(TIDE__SYS_DUP) >= dups + 2);
    CHECK_EQ(tide_file_close(fd), 0);
    CHECK_EQ(tide_file_stream_open(path, O_RDONLY, 0, 0, &s), 0);
    CHECK_EQ(tide_stream_readline(s, &line), 4);
    CHECK_EQ(tide_stream_readline(s, &line), 4);
    CHECK(memcmp(line, "two\n", 4) == 0);
    CHECK_EQ(tide_stream_close(s, 1.0), 0);
    return NULL;
}

/* On the suite's backend, then on io_uring where there is one. */
TEST(compact_tasks_make_file_calls)
{
    scratch();
    tide_loop *loops[2] = {tide_loop_new(), ring_loop_or_null()};
    tide_task_options opt = {.compact = true};
    for (int i = 0; i < 2 && loops[i]; i++) {
        tide_future *t =
            tide_create_task_ex(loops[i], compact_body, NULL, &opt);
        CHECK_NOT_NULL(t);
        CHECK_EQ(tide_run_until_complete(loops[i], t, NULL), 0);
        tide_future_release(t);
    }
    if (loops[1])
        CHECK_EQ(tide_loop_close(loops[1]), 0);
    finish(loops[0]);
}
