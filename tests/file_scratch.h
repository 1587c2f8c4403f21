/* What the file tests (test_file.c, test_file_uring.c) share: a scratch
 * directory per test with two names in it, writing and reading a file
 * with plain libc, a loop on io_uring, running a body as a task, the bodies of
 * a read, a write, a drain and a readline, and the end of a test (loop closed,
 * pool quiet, test switches off, scratch gone, leak gate).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_TEST_FILE_SCRATCH_H
#define TIDE_TEST_FILE_SCRATCH_H

#include "harness.h"
#include "pool_wait.h"

#include "base/sys.h"
#include "io/io.h"

#include <tide/file.h>

#include <stdio.h>

static char dir[64];   /* this test's scratch directory */
static char path[128]; /* scratch names in it */
static char path2[128];

static inline void scratch(void)
{
    snprintf(dir, sizeof dir, "/tmp/tide-test-file-XXXXXX");
    CHECK_NOT_NULL(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a", dir);
    snprintf(path2, sizeof path2, "%s/b", dir);
}

static inline void scratch_end(void)
{
    char cmd[128];

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}

/* Write n bytes of data to `p` with plain libc. */
static inline void put_file(const char *p, const void *data, size_t n)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, data, n), (ssize_t)n);
    CHECK_EQ(close(fd), 0);
}

/* Read up to cap bytes of `p` with plain libc: the count. */
static inline size_t get_file(const char *p, void *buf, size_t cap)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    size_t got = 0;
    ssize_t k;
    while (got < cap && (k = read(fd, (char *)buf + got, cap - got)) > 0)
        got += (size_t)k;
    CHECK_EQ(close(fd), 0);
    return got;
}

static inline void finish(tide_loop *loop)
{
    CHECK_EQ(tide_loop_close(loop), 0);
    pool_quiet();
    tide__sys_fault_clear();
    tide__file_no_inline = false;
    tide__file_no_ring = false;
    scratch_end();
    LEAK_GATE();
}

/* A new loop on io_uring; NULL where there is none (a build without
 * liburing, a kernel or sandbox that refuses it), and under memcheck,
 * which cannot see what the kernel writes through the ring. */
static inline tide_loop *ring_loop_or_null(void)
{
    if (HARNESS_VALGRIND)
        return NULL;
    CHECK_EQ(setenv("TIDE_BACKEND", "io_uring", 1), 0);
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    CHECK_NOT_NULL(loop);
    if (strcmp(tide_loop_backend(loop), "io_uring") != 0) {
        CHECK_EQ(tide_loop_close(loop), 0);
        return NULL;
    }
    return loop;
}

/* Run body as a task on loop; its error. */
static inline int run_task(tide_loop *loop, tide_fn body, void *arg)
{
    tide_future *t = tide_create_task(loop, body, arg);
    CHECK_NOT_NULL(t);
    int err = tide_run_until_complete(loop, t, NULL);
    tide_future_release(t);
    return err;
}

/* shared_stream over `path`, truncated, with n bytes of data queued:
 * its fd. */
static tide_stream *shared_stream;

static inline int queued_stream(const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    shared_stream = tide_file_stream_new(fd, 0);
    CHECK_NOT_NULL(shared_stream);
    CHECK_EQ(tide_stream_write(shared_stream, data, n), 0);
    return fd;
}

/* Bodies both files run: a read of fd (arg) into rbuf, a write of wbuf
 * to fd, and a drain and a readline of shared_stream; their results. */
static char rbuf[64];
static char wbuf[8192];

static inline void *read_body(void *arg)
{
    ssize_t n = tide_file_read((int)PINT(arg), rbuf, sizeof rbuf);
    return n < 0 ? tide_fail((int)n) : IPTR(n);
}

static inline void *write_body(void *arg)
{
    ssize_t n = tide_file_write((int)PINT(arg), wbuf, sizeof wbuf);
    return n < 0 ? tide_fail((int)n) : IPTR(n);
}

static inline void *drain_body(void *arg)
{
    (void)arg;
    int err = tide_stream_drain(shared_stream);
    return err < 0 ? tide_fail(err) : NULL;
}

static inline void *reader_body(void *arg)
{
    const void *line;
    (void)arg;
    ssize_t n = tide_stream_readline(shared_stream, &line);
    return n < 0 ? tide_fail((int)n) : IPTR(n);
}

#endif
