/* Files on the io_uring ring (tide/file.h, src/io/file.c): on a loop
 * forced to io_uring (skipped where it cannot be had), a task's reads,
 * writes and fsyncs, and a file stream's reads and writes, are ring ops
 * and start no pool job (no duplicate fd, no pool read, write or fsync
 * through the seam); cancelled in flight (a FIFO, whose read or write
 * waits in the kernel) they are withdrawn, taking nothing and writing
 * nothing, and an fd closed under a write in flight keeps its number's
 * next file untouched (HAZARDS B07); cancelled at each suspension of a
 * read, a 3 MiB write and an fsync on a regular file, each returns only
 * after its completion, with -ECANCELED having done nothing or with its
 * result and the request delivered at the next suspension (B41); a loop
 * closed with a read in flight; short reads at the end of the file; bad
 * fds and bad input; ENOMEM through the allocation fault hook; a
 * cancelled drain losing nothing; closing a stream under a reader.
 * test_file.c runs the calls on whichever backend the suite runs on, and
 * compact tasks (kept on the pool) on io_uring too.
 * SPDX-License-Identifier: MIT
 */
#include "file_scratch.h"

#include "base/alloc.h"

#include <tide/file.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

/* A new loop on io_uring, or the test is skipped (as it is when every
 * task is compact: test_file.c tests those on io_uring). */
static tide_loop *ring_loop(void)
{
    SKIP_IF_COMPACT("every task's file calls run on the pool");
    tide_loop *loop = ring_loop_or_null();

    if (!loop)
        SKIP(HARNESS_VALGRIND ? "memcheck cannot see the kernel's ring writes"
                              : "no io_uring here");
    return loop;
}

/* The seam's counts of what a pool file job makes: every one works on a
 * duplicate fd; reads, writes and fsyncs are made through the seam. */
struct pool_marks {
    uint64_t dup, write, fsync, preadv2;
};

static struct pool_marks pool_marks(void)
{
    return (struct pool_marks){tide__sys_count(TIDE__SYS_DUP),
                               tide__sys_count(TIDE__SYS_WRITE),
                               tide__sys_count(TIDE__SYS_FSYNC),
                               tide__sys_count(TIDE__SYS_PREADV2)};
}

static void check_no_pool_since(struct pool_marks m)
{
    CHECK_EQ(tide__sys_count(TIDE__SYS_DUP), m.dup);
    CHECK_EQ(tide__sys_count(TIDE__SYS_WRITE), m.write);
    CHECK_EQ(tide__sys_count(TIDE__SYS_FSYNC), m.fsync);
    CHECK_EQ(tide__sys_count(TIDE__SYS_PREADV2), m.preadv2); /* none tried */
}

/* Nothing of the loop's is in the kernel or waiting for a completion. */
static void check_nothing_in_flight(tide_loop *loop)
{
    CHECK_EQ(loop->ops_live, 0);
    CHECK_EQ(loop->backend.inflight, 0);
}

/* ---- the calls go on the ring ---------------------------------------- */

static void *ring_calls_body(void *arg)
{
    char buf[64];
    tide_stream *s = NULL;
    const void *line;
    tide_loop *loop = arg;

    CHECK_STR_EQ(tide_loop_backend(NULL), "io_uring");
    int fd = tide_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    struct pool_marks m = pool_marks();
    uint64_t enters = tide__sys_count(TIDE__SYS_URING_ENTER);
    tide__file_no_inline = true; /* every read to the ring */
    CHECK_EQ(tide_file_write(fd, "one\ntwo\n", 8), 8);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8); /* a write moves the position */
    CHECK_EQ(tide_file_pwrite(fd, "T", 1, 4), 1);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8); /* a pwrite does not */
    CHECK_EQ(tide_file_fsync(fd), 0);
    CHECK_EQ(tide_file_fdatasync(fd), 0);
    CHECK_EQ(lseek(fd, 2, SEEK_SET), 2);
    CHECK_EQ(tide_file_read(fd, buf, sizeof buf), 6);
    CHECK(memcmp(buf, "e\nTwo\n", 6) == 0);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8); /* a read moves the position */
    CHECK_EQ(tide_file_pread(fd, buf, 3, 4), 3);
    CHECK(memcmp(buf, "Two", 3) == 0);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8); /* a pread does not */
    /* The stream's reads and writes, from the offset fd was at. */
    s = tide_file_stream_new(fd, 0);
    CHECK_NOT_NULL(s);
    CHECK_EQ(tide_stream_write(s, "alpha\n", 6), 0);
    CHECK_EQ(tide_stream_close(s, 5.0), 0); /* writes it, closes fd */
    check_no_pool_since(m);
    CHECK(tide__sys_count(TIDE__SYS_URING_ENTER) > enters);
    CHECK_EQ(tide_file_stream_open(path, O_RDONLY, 0, 0, &s), 0);
    m = pool_marks();
    CHECK_EQ(tide_stream_readline(s, &line), 4);
    CHECK(memcmp(line, "one\n", 4) == 0);
    CHECK_EQ(tide_stream_readline(s, &line), 4);
    CHECK_EQ(tide_stream_readline(s, &line), 6);
    CHECK(memcmp(line, "alpha\n", 6) == 0);
    CHECK_EQ(tide_stream_readline(s, &line), 0);
    check_no_pool_since(m);
    CHECK_EQ(tide_stream_close(s, 1.0), 0);
    check_nothing_in_flight(loop);
    return NULL;
}

TEST(file_calls_go_on_the_ring_and_start_no_pool_job)
{
    tide_loop *loop = ring_loop();
    scratch();
    CHECK_EQ(run_task(loop, ring_calls_body, loop), 0);
    finish(loop);
}

/* ---- cancelled in flight: withdrawn ----------------------------------- */

/* Start a read of fd (an empty FIFO) and run until it waits in the
 * kernel. */
static tide_future *read_in_flight(tide_loop *loop, int fd)
{
    memset(rbuf, 'A', sizeof rbuf);
    tide_future *t = tide_create_task(loop, read_body, IPTR(fd));
    CHECK_NOT_NULL(t);
    run_once(loop);
    run_once(loop);
    CHECK(!tide_future_done(t));
    CHECK_EQ(loop->backend.inflight, 1);
    return t;
}

/* The read took nothing: rbuf untouched, and bytes written to the FIFO
 * now are all still there. */
static void check_read_took_nothing(int fd)
{
    char got[4];

    for (size_t i = 0; i < sizeof rbuf; i++)
        CHECK_EQ(rbuf[i], 'A');
    CHECK_EQ(write(fd, "XYZ", 3), 3);
    CHECK_EQ(read(fd, got, sizeof got), 3);
    CHECK(memcmp(got, "XYZ", 3) == 0);
}

TEST(a_read_cancelled_in_flight_is_withdrawn)
{
    tide_loop *loop = ring_loop();
    scratch();
    CHECK_EQ(mkfifo(path, 0600), 0);
    int fd = open(path, O_RDWR | O_CLOEXEC); /* blocking; never waits */
    CHECK(fd >= 0);
    tide_future *t = read_in_flight(loop, fd);
    CHECK(tide_future_cancel(t));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ECANCELED);
    tide_future_release(t);
    check_nothing_in_flight(loop);
    check_read_took_nothing(fd);
    /* A loop closed with a read in flight: withdrawn the same way. */
    tide_future_release(read_in_flight(loop, fd));
    CHECK_EQ(tide_loop_close(loop), 0);
    check_read_took_nothing(fd);
    CHECK_EQ(close(fd), 0);
    finish(ring_loop());
}

/* The FIFO at `path`, opened read-write, filled (a 4 KiB pipe), blocking
 * again: a write to it waits. *rd: a non-blocking reader of it. */
static int full_fifo(int *rd)
{
    char page[4096];

    CHECK_EQ(mkfifo(path, 0600), 0);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(fcntl(fd, F_SETPIPE_SZ, 4096) >= 0);
    *rd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    CHECK(*rd >= 0);
    int fl = fcntl(fd, F_GETFL);
    CHECK_EQ(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
    memset(page, 'P', sizeof page);
    while (write(fd, page, sizeof page) > 0)
        ;
    CHECK_EQ(fcntl(fd, F_SETFL, fl), 0);
    return fd;
}

/* Read the FIFO through rd until `want` bytes came (SIZE_MAX: until it
 * is empty) or no writer is left: the count of bytes that were not the
 * filler's 'P'. */
static size_t drain_fifo(int rd, size_t want)
{
    char buf[4096];
    size_t have = 0, other = 0;
    double end = harness_now() + 5;

    while (have < want) {
        ssize_t k = read(rd, buf, sizeof buf);
        if (k == 0 || (k < 0 && errno == EAGAIN && want == SIZE_MAX))
            break;
        CHECK(k > 0 || (k < 0 && errno == EAGAIN));
        CHECK(harness_now() < end);
        for (ssize_t i = 0; i < k; i++)
            other += buf[i] != 'P';
        have += k > 0 ? (size_t)k : 0;
    }
    return other;
}

TEST(a_write_cancelled_in_flight_is_withdrawn)
{
    tide_loop *loop = ring_loop();
    scratch();
    int rd;
    int fd = full_fifo(&rd);
    memset(wbuf, 'W', sizeof wbuf);
    tide_future *t = tide_create_task(loop, write_body, IPTR(fd));
    run_once(loop);
    run_once(loop);
    CHECK(!tide_future_done(t));
    CHECK_EQ(loop->backend.inflight, 1);
    CHECK(tide_future_cancel(t));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ECANCELED);
    tide_future_release(t);
    check_nothing_in_flight(loop);
    CHECK_EQ(drain_fifo(rd, SIZE_MAX), 0); /* only the filler was there */
    CHECK_EQ(close(fd), 0);
    CHECK_EQ(close(rd), 0);
    finish(loop);
}

static void *page_write_body(void *arg)
{
    /* One page: a pipe takes it whole (PIPE_BUF), in one op. */
    ssize_t n = tide_file_write((int)PINT(arg), wbuf, 4096);
    return n < 0 ? tide_fail((int)n) : IPTR(n);
}

static void *file_close_body(void *arg)
{
    int err = tide_file_close((int)PINT(arg));
    return err < 0 ? tide_fail(err) : NULL;
}

static int reused_fd = -1;

/* Right after the closer, in the same loop iteration (the loop has not
 * entered the ring since): wait until the pool has closed fd, and give
 * its number to a new file at once. */
static void *reuse_body(void *arg)
{
    int fd = (int)PINT(arg);
    double end = harness_now() + 5;

    while (fcntl(fd, F_GETFD) >= 0)
        CHECK(harness_now() < end);
    reused_fd = open(path2, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK_EQ(reused_fd, fd);
    return NULL;
}

/* HAZARDS B07 on the ring: another task closes fd with tide_file_close
 * while a write on it is queued for the kernel (not yet taken: the loop
 * enters the ring later) or in it, and its number goes to a new file
 * before the loop enters the ring again: the write goes on on the file it
 * was made on, and the new file gets nothing. */
TEST(a_write_stays_on_its_file_when_the_number_is_reused)
{
    tide_loop *loop = ring_loop();
    scratch();
    for (int turns = 0; turns < 2; turns++) {
        int rd;
        int fd = full_fifo(&rd);
        memset(wbuf, 'W', sizeof wbuf);
        tide_future *t = tide_create_task(loop, page_write_body, IPTR(fd));
        CHECK_NOT_NULL(t);
        if (turns) { /* in the kernel: a poll has entered the ring */
            run_once(loop);
            tide__loop_poll(loop, 0);
        }
        tide_future *c = tide_create_task(loop, file_close_body, IPTR(fd));
        tide_future *u = tide_create_task(loop, reuse_body, IPTR(fd));
        CHECK(c && u);
        CHECK_EQ(tide_run_until_complete(loop, c, NULL), 0);
        CHECK_EQ(tide_run_until_complete(loop, u, NULL), 0);
        tide_future_release(c);
        tide_future_release(u);
        CHECK(!tide_future_done(t)); /* the pipe is still full */
        int other = reused_fd;
        /* The reader drains the pipe: the write completes, into it. */
        double end = harness_now() + 5;
        size_t ws = 0;
        while (!tide_future_done(t)) {
            ws += drain_fifo(rd, 1);
            run_once(loop);
            CHECK(harness_now() < end);
        }
        void *res = NULL;
        CHECK_EQ(tide_run_until_complete(loop, t, &res), 0);
        CHECK_EQ(PINT(res), 4096);
        tide_future_release(t);
        ws += drain_fifo(rd, SIZE_MAX);
        CHECK_EQ(ws, 4096);
        struct stat st;
        CHECK_EQ(fstat(other, &st), 0);
        CHECK_EQ(st.st_size, 0);
        CHECK_EQ(close(other), 0);
        CHECK_EQ(close(rd), 0);
        CHECK_EQ(unlink(path), 0);
    }
    finish(loop);
}

/* ---- cancelled at each suspension, on a regular file ------------------ */

#define BIG ((size_t)3 << 20)

enum call { C_READ, C_WRITE, C_FSYNC };

struct race {
    enum call call;
    int fd;
    char *buf;
    ssize_t r;      /* the call's result */
    int after;      /* tide_sleep(0) right after it */
    size_t live;    /* op slots live when it returned */
    off_t position; /* fd's offset when it returned */
};

static void *race_body(void *arg)
{
    struct race *rc = arg;

    switch (rc->call) {
    case C_READ:
        rc->r = tide_file_read(rc->fd, rc->buf, BIG);
        break;
    case C_WRITE:
        rc->r = tide_file_pwrite(rc->fd, rc->buf, BIG, 0);
        break;
    case C_FSYNC:
        rc->r = tide_file_fsync(rc->fd);
        break;
    }
    rc->live = tide_get_event_loop()->ops_live;
    rc->position = lseek(rc->fd, 0, SEEK_CUR);
    rc->after = tide_sleep(0);
    return NULL;
}

static char pattern(size_t i)
{
    return (char)('a' + i % 23 + i / 65536 % 3);
}

/* One round: `call` on a fresh file, cancelled after `turns` loop
 * iterations; its result. */
static ssize_t race_round(tide_loop *loop, enum call call, int turns,
                          char *buf)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (call == C_READ) {
        for (size_t i = 0; i < BIG; i++)
            buf[i] = pattern(i);
        CHECK_EQ(write(fd, buf, BIG), (ssize_t)BIG);
        CHECK_EQ(fdatasync(fd), 0);
        /* Out of the page cache, if it will go: a read the disk serves. */
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
        memset(buf, '?', BIG);
    } else if (call == C_WRITE) {
        for (size_t i = 0; i < BIG; i++)
            buf[i] = pattern(i);
    } else {
        CHECK_EQ(write(fd, "dirty", 5), 5);
    }
    struct race rc = {.call = call, .fd = fd, .buf = buf, .r = 1 << 30};
    tide_future *t = tide_create_task(loop, race_body, &rc);
    CHECK_NOT_NULL(t);
    for (int i = 0; i < turns && !tide_future_done(t); i++) {
        run_once(loop);
        tide__loop_poll(loop, i % 2 ? 1000000 : 0); /* as the loop polls */
    }
    bool cancelled = tide_future_cancel(t);
    int err = tide_run_until_complete(loop, t, NULL);
    tide_future_release(t);
    check_nothing_in_flight(loop);
    if (rc.r == 1 << 30) { /* cancelled before it started */
        CHECK_ERR(err, -ECANCELED);
        CHECK_EQ(close(fd), 0);
        return rc.r;
    }
    CHECK_EQ(err, 0);
    CHECK_EQ(rc.live, 0); /* it returned only after its completion */
    struct stat st;
    CHECK_EQ(fstat(fd, &st), 0);
    if (rc.r == -ECANCELED) { /* withdrawn: nothing done */
        if (call == C_READ) {
            CHECK_EQ(rc.position, 0);
            CHECK_EQ(buf[0], '?');
        }
        if (call == C_WRITE)
            CHECK_EQ(st.st_size, 0);
    } else { /* done, or part done: the request comes at the next
              * suspension */
        CHECK(rc.r >= 0);
        if (cancelled)
            CHECK_ERR(rc.after, -ECANCELED);
        if (call == C_READ) {
            CHECK(rc.r > 0 && rc.r <= 1 << 20); /* one call, 1 MiB */
            CHECK_EQ(rc.position, rc.r);
            for (size_t i = 0; i < (size_t)rc.r; i++)
                CHECK_EQ(buf[i], pattern(i));
        }
        if (call == C_WRITE) {
            CHECK_EQ(st.st_size, rc.r); /* in order: the first r bytes */
            CHECK_EQ(get_file(path, buf, BIG), (size_t)rc.r);
            for (size_t i = 0; i < (size_t)rc.r; i++)
                CHECK_EQ(buf[i], pattern(i));
        }
        if (call == C_FSYNC)
            CHECK_EQ(rc.r, 0);
    }
    CHECK_EQ(close(fd), 0);
    return rc.r;
}

TEST(calls_cancelled_at_each_suspension_return_after_their_completion)
{
    tide_loop *loop = ring_loop();
    char *buf = malloc(BIG);
    int partial = 0;

    CHECK_NOT_NULL(buf);
    scratch();
    tide__file_no_inline = true;
    for (int call = C_READ; call <= C_FSYNC; call++) {
        for (int turns = 0; turns < 12; turns++) {
            ssize_t r = race_round(loop, (enum call)call, turns, buf);
            partial += call == C_WRITE && r > 0 && (size_t)r < BIG;
        }
    }
    /* Some write was cancelled between its chunks: a count, the request
     * kept for the next suspension. */
    CHECK(partial > 0);
    free(buf);
    finish(loop);
}

/* ---- short reads, bad fds, bad input --------------------------------- */

static void *eof_body(void *arg)
{
    char buf[64];
    int fd = (int)PINT(arg);

    tide__file_no_inline = true;
    CHECK_EQ(tide_file_pread(fd, buf, sizeof buf, 0), 10);
    CHECK(memcmp(buf, "0123456789", 10) == 0);
    CHECK_EQ(tide_file_pread(fd, buf, sizeof buf, 8), 2); /* short */
    CHECK_EQ(tide_file_pread(fd, buf, sizeof buf, 10), 0);
    CHECK_EQ(tide_file_pread(fd, buf, sizeof buf, 1000), 0);
    CHECK_EQ(tide_file_read(fd, buf, 4), 4);
    CHECK_EQ(tide_file_read(fd, buf, sizeof buf), 6);
    CHECK(memcmp(buf, "456789", 6) == 0);
    CHECK_EQ(tide_file_read(fd, buf, sizeof buf), 0); /* end of file */
    CHECK_EQ(tide_file_read(fd, buf, 0), 0);
    return NULL;
}

TEST(short_reads_at_the_end_of_the_file)
{
    tide_loop *loop = ring_loop();
    scratch();
    put_file(path, "0123456789", 10);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_EQ(run_task(loop, eof_body, IPTR(fd)), 0);
    CHECK_EQ(close(fd), 0);
    finish(loop);
}

static void *bad_body(void *arg)
{
    char buf[8];
    int p[2];
    tide_loop *loop = arg;

    tide__file_no_inline = true;
    int closed = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(closed >= 0);
    CHECK_EQ(close(closed), 0);
    int fds[] = {-1, closed};
    for (int i = 0; i < 2; i++) {
        CHECK_ERR(tide_file_read(fds[i], buf, sizeof buf), -EBADF);
        CHECK_ERR(tide_file_pread(fds[i], buf, sizeof buf, 0), -EBADF);
        CHECK_ERR(tide_file_write(fds[i], "x", 1), -EBADF);
        CHECK_ERR(tide_file_pwrite(fds[i], "x", 1, 0), -EBADF);
        CHECK_ERR(tide_file_fsync(fds[i]), -EBADF);
        CHECK_ERR(tide_file_fdatasync(fds[i]), -EBADF);
    }
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    int wo = open(path, O_WRONLY | O_CLOEXEC);
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(ro >= 0 && wo >= 0 && d >= 0);
    CHECK_ERR(tide_file_write(ro, "x", 1), -EBADF);
    CHECK_ERR(tide_file_read(wo, buf, sizeof buf), -EBADF);
    CHECK_ERR(tide_file_read(d, buf, sizeof buf), -EISDIR);
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_ERR(tide_file_fsync(p[0]), -EINVAL); /* fsync(2)'s own */
    /* A pipe has no offset: pread(2) says -ESPIPE, and so does the
     * inline try; the ring ignores a stream's offset (tide/file.h), so
     * a pwrite writes as write does. */
    tide__file_no_inline = false;
    CHECK_ERR(tide_file_pread(p[0], buf, 1, 0), -ESPIPE);
    tide__file_no_inline = true;
    CHECK_EQ(tide_file_pwrite(p[1], "p", 1, 0), 1);
    CHECK_EQ(read(p[0], buf, sizeof buf), 1);
    CHECK_EQ(buf[0], 'p');
    /* Bad arguments: refused before anything is made. */
    CHECK_ERR(tide_file_read(ro, NULL, 1), -EINVAL);
    CHECK_ERR(tide_file_write(wo, NULL, 1), -EINVAL);
    CHECK_ERR(tide_file_pread(ro, buf, 1, -1), -EINVAL);
    CHECK_ERR(tide_file_pwrite(wo, "x", 1, -1), -EINVAL);
    CHECK_EQ(tide_file_write(wo, NULL, 0), 0);
    check_nothing_in_flight(loop);
    int all[] = {ro, wo, d, p[0], p[1]};
    for (int i = 0; i < 5; i++)
        CHECK_EQ(close(all[i]), 0);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, 1); /* put_file's byte, nothing else */
    return NULL;
}

TEST(bad_fds_and_bad_input_are_refused)
{
    tide_loop *loop = ring_loop();
    scratch();
    put_file(path, "x", 1);
    CHECK_EQ(run_task(loop, bad_body, loop), 0);
    finish(loop);
}

static void *enomem_body(void *arg)
{
    char buf[8];
    long n = (long)PINT(arg);
    int fd = open(path, O_RDWR | O_CLOEXEC);

    CHECK(fd >= 0);
    tide__file_no_inline = true;
    /* The loop's first op makes its slots, and the ring its fd table. */
    tide__alloc_fail_after(n);
    ssize_t k = n % 2 ? tide_file_pread(fd, buf, sizeof buf, 0)
                      : tide_file_pwrite(fd, "abc", 3, 0);
    tide__alloc_fail_after(0);
    CHECK(k == 3 || k == -ENOMEM);
    CHECK_EQ(close(fd), 0);
    return IPTR(k == -ENOMEM);
}

TEST(enomem_fails_cleanly)
{
    int failed = 0;

    scratch();
    put_file(path, "abc", 3);
    for (long n = 1; n <= 6; n++) {
        tide_loop *loop = ring_loop();
        tide_future *t = tide_create_task(loop, enomem_body, IPTR(n));
        CHECK_NOT_NULL(t);
        void *res = NULL;
        CHECK_EQ(tide_run_until_complete(loop, t, &res), 0);
        failed += (int)PINT(res);
        tide_future_release(t);
        check_nothing_in_flight(loop);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    CHECK(failed > 0);
    char back[8];
    CHECK_EQ(get_file(path, back, sizeof back), 3);
    CHECK(memcmp(back, "abc", 3) == 0);
    finish(ring_loop());
}

/* ---- the file stream -------------------------------------------------- */

TEST(a_drain_cancelled_at_any_point_loses_nothing)
{
    static char big[3 * 65536], back[sizeof big];
    tide_loop *loop = ring_loop();

    scratch();
    tide_set_event_loop(loop);
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 23);
    for (int turns = 0; turns < 8; turns++) {
        queued_stream(big, sizeof big);
        tide_future *t = tide_create_task(loop, drain_body, NULL);
        CHECK_NOT_NULL(t);
        for (int i = 0; i < turns; i++)
            run_once(loop);
        tide_future_cancel(t);
        int err = tide_run_until_complete(loop, t, NULL);
        CHECK(err == 0 || err == -ECANCELED);
        tide_future_release(t);
        check_nothing_in_flight(loop);
        /* What it did not write is still queued: the next drain does. */
        t = tide_create_task(loop, drain_body, NULL);
        CHECK_NOT_NULL(t);
        CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
        tide_future_release(t);
        CHECK_EQ(tide_stream_close(shared_stream, 0), 0); /* nothing queued */
        CHECK_EQ(get_file(path, back, sizeof back), sizeof big);
        CHECK(memcmp(back, big, sizeof big) == 0);
    }
    tide_set_event_loop(NULL);
    finish(loop);
}

static void *closer_body(void *arg)
{
    (void)arg;
    int err = tide_stream_close(shared_stream, 1.0);
    /* At once, before the loop turns: a new file gets the number. */
    reused_fd = open(path2, O_RDONLY | O_CLOEXEC);
    CHECK(reused_fd >= 0);
    return IPTR(err);
}

/* A stream closed while a task reads it on the ring (its read queued for
 * the kernel, or in it), and the fd's number given to a new file at
 * once: the reader returns once the kernel is done with its read, with
 * the line (it raced to its end) or -EBADF, never the new file's bytes
 * (HAZARDS B07); nothing is left in flight. */
TEST(closing_a_file_stream_under_a_reader)
{
    tide_loop *loop = ring_loop();

    scratch();
    put_file(path, "line\n", 5);
    put_file(path2, "other\n", 6);
    tide_set_event_loop(loop);
    tide__file_no_inline = true;
    for (int turns = 0; turns < 3; turns++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        shared_stream = tide_file_stream_new(fd, 0);
        CHECK_NOT_NULL(shared_stream);
        tide_future *r = tide_create_task(loop, reader_body, NULL);
        for (int i = 0; i < turns; i++) {
            run_once(loop);
            tide__loop_poll(loop, 0); /* as the loop polls */
        }
        tide_future *c = tide_create_task(loop, closer_body, NULL);
        void *res = NULL;
        CHECK_EQ(tide_run_until_complete(loop, c, &res), 0);
        CHECK_EQ(PINT(res), 0);
        int err = tide_run_until_complete(loop, r, &res);
        CHECK(err == -EBADF || (err == 0 && PINT(res) == 5));
        tide_future_release(r);
        tide_future_release(c);
        CHECK_EQ(reused_fd, fd);
        CHECK_EQ(close(reused_fd), 0);
        check_nothing_in_flight(loop);
    }
    tide_set_event_loop(NULL);
    finish(loop);
}
