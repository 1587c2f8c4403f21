/* Streams over pipes (src/io/pipe.c, and stream.c's pipe mode): lines
 * and end of stream read from a pipe; a megabyte through one pipe with
 * the writer's queue and drain; write_eof closes the write end (the
 * reader sees end of stream; close then frees the stream); a write to
 * a pipe whose reader closed is -EPIPE and the process survives with
 * SIGPIPE at its default disposition, an already pending SIGPIPE kept;
 * a FIFO; a compact task reading a pipe.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include <tide/stream.h>
#include <tide/sync.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void make_pipe(int fds[2])
{
    CHECK_EQ(pipe2(fds, O_CLOEXEC), 0);
}

static void *lines_body(void *arg)
{
    int fds[2];
    const void *p;
    (void)arg;

    make_pipe(fds);
    tide_stream *r = tide_stream_new(fds[0], 0);
    CHECK_NOT_NULL(r);
    CHECK_EQ(write(fds[1], "one\ntwo", 7), 7);
    CHECK_EQ(close(fds[1]), 0);
    CHECK_EQ(tide_stream_readline(r, &p), 4);
    CHECK(memcmp(p, "one\n", 4) == 0);
    CHECK_EQ(tide_stream_readline(r, &p), 3);
    CHECK(memcmp(p, "two", 3) == 0);
    CHECK(tide_stream_at_eof(r));
    CHECK_EQ(tide_stream_read(r, 10, &p), 0);
    CHECK_ERR(tide_stream_setsockopt(r, SOL_SOCKET, SO_KEEPALIVE, &fds[0],
                                     sizeof(int)),
              -ENOTSOCK);
    CHECK_EQ(tide_stream_close(r, 1), 0);
    return NULL;
}

TEST(a_pipe_stream_reads_lines_and_end_of_stream)
{
    CHECK_EQ(harness_run_body(lines_body, NULL), 0);
    LEAK_GATE();
}

#define BIG (1024 * 1024)

struct big {
    tide_stream *w;
    unsigned char *data;
};

static void *big_writer(void *arg)
{
    struct big *b = arg;

    for (size_t off = 0; off < BIG; off += 10000) {
        size_t n = BIG - off < 10000 ? BIG - off : 10000;
        CHECK_EQ(tide_stream_write(b->w, b->data + off, n), 0);
        CHECK_EQ(tide_stream_drain(b->w), 0);
    }
    CHECK_EQ(tide_stream_write_eof(b->w), 0);
    /* nothing more goes; the write end closes once the queue is sent */
    CHECK_ERR(tide_stream_write(b->w, "x", 1), -EPIPE);
    CHECK_EQ(tide_stream_drain(b->w), 0);
    CHECK_EQ(tide_stream_close(b->w, 1), 0);
    return NULL;
}

static void *big_body(void *arg)
{
    int fds[2];
    static struct big
        b; /* shared with a task: not in frames a compact body copies away */
    (void)arg;

    make_pipe(fds);
    b.data = malloc(BIG);
    CHECK_NOT_NULL(b.data);
    for (size_t i = 0; i < BIG; i++)
        b.data[i] = (unsigned char)(i * 7 + i / 251);
    tide_stream *r = tide_stream_new(fds[0], 0);
    b.w = tide_stream_new(fds[1], 0);
    CHECK(r && b.w);
    tide_future *t = tide_create_task(NULL, big_writer, &b);
    CHECK_NOT_NULL(t);
    unsigned char *got = malloc(BIG);
    CHECK_NOT_NULL(got);
    size_t n = 0;
    CHECK_EQ(tide_stream_readexactly(r, got, BIG, &n), 0);
    CHECK_EQ(n, BIG);
    CHECK(memcmp(got, b.data, BIG) == 0);
    const void *p;
    CHECK_EQ(tide_stream_read(r, 1, &p), 0); /* the writer's write_eof */
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_stream_close(r, 1), 0);
    free(got);
    free(b.data);
    return NULL;
}

TEST(a_megabyte_through_a_pipe_then_write_eof_ends_it)
{
    CHECK_EQ(harness_run_body(big_body, NULL), 0);
    LEAK_GATE();
}

static void *epipe_body(void *arg)
{
    int fds[2];
    static char chunk[65536];
    (void)arg;

    make_pipe(fds);
    CHECK_EQ(close(fds[0]), 0);
    tide_stream *w = tide_stream_new(fds[1], 0);
    CHECK_NOT_NULL(w);
    CHECK_ERR(tide_stream_write(w, chunk, sizeof chunk), -EPIPE);
    CHECK_ERR(tide_stream_write(w, "x", 1), -EPIPE); /* sticky */
    CHECK_ERR(tide_stream_drain(w), -EPIPE);
    CHECK_ERR(tide_stream_close(w, 1), -EPIPE);
    return NULL;
}

TEST(a_write_to_a_pipe_without_reader_is_epipe_not_sigpipe)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none, pending;

    CHECK_EQ(sigaction(SIGPIPE, &dfl, NULL), 0);
    sigemptyset(&none);
    CHECK_EQ(sigprocmask(SIG_SETMASK, &none, NULL), 0);
    CHECK_EQ(harness_run_body(epipe_body, NULL), 0);
    /* Still alive; and with SIGPIPE blocked and one already pending, the
     * pending one is left for the application. */
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    CHECK_EQ(sigprocmask(SIG_BLOCK, &pipe_only, NULL), 0);
    CHECK_EQ(raise(SIGPIPE), 0);
    CHECK_EQ(harness_run_body(epipe_body, NULL), 0);
    CHECK_EQ(sigpending(&pending), 0);
    CHECK(sigismember(&pending, SIGPIPE));
    struct timespec zero = {0, 0};
    CHECK_EQ(sigtimedwait(&pipe_only, NULL, &zero), SIGPIPE);
    CHECK_EQ(sigpending(&pending), 0);
    CHECK(!sigismember(&pending, SIGPIPE)); /* only the one raised */
    LEAK_GATE();
}

static void *fifo_body(void *arg)
{
    const char *path = arg;
    const void *p;

    int rfd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    CHECK(rfd >= 0);
    int wfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    CHECK(wfd >= 0);
    tide_stream *r = tide_stream_new(rfd, 0);
    tide_stream *w = tide_stream_new(wfd, 0);
    CHECK(r && w);
    CHECK_EQ(tide_stream_write(w, "fifo\n", 5), 0);
    CHECK_EQ(tide_stream_write_eof(w), 0);
    CHECK_ERR(tide_stream_fd(w), -EBADF); /* nothing queued: closed now */
    CHECK_EQ(tide_stream_write_eof(w), 0);
    CHECK_EQ(tide_stream_readline(r, &p), 5);
    CHECK_EQ(tide_stream_readline(r, &p), 0);
    CHECK_EQ(tide_stream_abort(w), 0); /* frees it after write_eof too */
    CHECK_EQ(tide_stream_close(r, 1), 0);
    return NULL;
}

TEST(a_fifo_is_a_pipe_stream)
{
    char path[64];

    snprintf(path, sizeof path, "/tmp/tide-fifo-%d", (int)getpid());
    unlink(path);
    CHECK_EQ(mkfifo(path, 0600), 0);
    CHECK_EQ(harness_run_body(fifo_body, path), 0);
    unlink(path);
    LEAK_GATE();
}

/* A compact task reading a pipe into a buffer on its own stack, while
 * another compact task writes to it a little at a time. */
static void *compact_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;

    for (int i = 0; i < 20; i++) {
        CHECK_EQ(tide_sleep(0.001), 0);
        CHECK_EQ(write(fd, "abcde", 5), 5);
    }
    CHECK_EQ(close(fd), 0);
    return NULL;
}

static void *compact_reader(void *arg)
{
    char buf[200];
    size_t got = 0;

    tide_stream *r = tide_stream_new((int)(intptr_t)arg, 0);
    CHECK_NOT_NULL(r);
    CHECK_ERR(tide_stream_readexactly(r, buf, 101, &got), -ENODATA);
    CHECK_EQ(got, 100);
    CHECK(memcmp(buf + 95, "abcde", 5) == 0);
    CHECK_EQ(tide_stream_close(r, 1), 0);
    return NULL;
}

TEST(compact_tasks_read_a_pipe_into_their_own_stack)
{
    int fds[2];
    tide_task_options opt = {.compact = true};

    make_pipe(fds);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    tide_future *r = tide_create_task_ex(loop, compact_reader,
                                         (void *)(intptr_t)fds[0], &opt);
    tide_future *w = tide_create_task_ex(loop, compact_writer,
                                         (void *)(intptr_t)fds[1], &opt);
    CHECK(r && w);
    CHECK_EQ(tide_run_until_complete(loop, r, NULL), 0);
    CHECK_EQ(tide_run_until_complete(loop, w, NULL), 0);
    tide_future_release(r);
    tide_future_release(w);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}
