/* Hostile tests of child processes (issue 10; include/tide/process.h):
 * what a review trying to break src/io/process.c and spawn.c found or
 * tried. A parent whose fds 0, 1 and 2 are closed (a daemon): the child
 * keeps the stdio it is given and an exec failure is still reported;
 * communicate's kill_on_cancel gives the child its grace period; a
 * second cancel during the grace wait kills at once; a process freed
 * while another task waits on it is -EBUSY; communicate with a child
 * that closes stdin at once, exits without reading, or writes only to
 * stderr; a closed fd as TIDE_STDIO_FD; out of memory at each
 * allocation of communicate. Each test runs with pidfds and again with
 * the SIGCHLD fallback (TIDE__PIDFD=0, set before the first start of
 * the test's process).
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h" /* tide__alloc_fail_after */
#include "io/io.h"      /* tide__spawn_uses_pidfd */

#include <tide/process.h>
#include <tide/sync.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Track children the way `fallback` says, for this test's process. */
static void tracking(bool fallback)
{
    if (fallback)
        CHECK_EQ(setenv("TIDE__PIDFD", "0", 1), 0);
    else
        CHECK_EQ(unsetenv("TIDE__PIDFD"), 0);
    /* valgrind (before 3.20) has no pidfd_open: tide falls back there */
    if (fallback || !HARNESS_VALGRIND)
        CHECK(tide__spawn_uses_pidfd() == !fallback);
}

/* TEST(name) with pidfds and TEST(name_sigchld) with the fallback, each
 * running body as a loop's main task, then the leak gate. */
#define BOTH_WAYS(name, body)                      \
    TEST(name)                                     \
    {                                              \
        tracking(false);                           \
        CHECK_EQ(harness_run_body(body, NULL), 0); \
        LEAK_GATE();                               \
    }                                              \
    TEST(name##_sigchld)                           \
    {                                              \
        tracking(true);                            \
        CHECK_EQ(harness_run_body(body, NULL), 0); \
        LEAK_GATE();                               \
    }

/* stdin, stdout and stderr all pipes */
static const tide_process_options all_pipes = {.stdin_mode = TIDE_STDIO_PIPE,
                                               .stdout_mode = TIDE_STDIO_PIPE,
                                               .stderr_mode = TIDE_STDIO_PIPE};

static tide_process *shell(const char *cmd, const tide_process_options *o)
{
    tide_process *p = NULL;
    CHECK_EQ(tide_create_subprocess_shell(cmd, o, &p), 0);
    CHECK_NOT_NULL(p);
    return p;
}

/* ---- a parent without fds 0, 1, 2 ---------------------------------- */

/* In a forked child of the test (whose stdio is closed as a daemon's):
 * an exec failure is still -ENOENT, and the stderr the child inherits is
 * the parent's. The exit status says which check failed. */
static void *closed_stdio_body(void *arg)
{
    const char *missing[] = {"/nonexistent/tide-hostile4", NULL};
    tide_process_options o = {.stderr_mode = TIDE_STDIO_DEVNULL};
    tide_process *p = NULL;
    int code = -1;
    (void)arg;

    close(0);
    close(1);
    close(2);
    /* 0, 1, 2 closed: /dev/null comes at 0, the error pipe at 1 and 2 */
    int failed = 0;
    if (tide_create_subprocess_exec(missing, &o, &p) != -ENOENT)
        failed |= 1;
    /* stderr at 2 (a file), 0 and 1 closed: the error pipe at 0 and 1 */
    int file = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (file < 0 || dup2(file, 2) != 2)
        _exit(11);
    close(0);
    close(1);
    if (tide_create_subprocess_shell("echo hi >&2", NULL, &p) < 0)
        _exit(12);
    if (tide_process_wait(p, &code) < 0 || code != 0)
        _exit(13);
    tide_process_free(p);
    char buf[8] = {0};
    if (pread(2, buf, sizeof buf - 1, 0) != 3 || strcmp(buf, "hi\n") != 0)
        failed |= 2;
    _exit(failed ? 30 + failed : 0);
}

static void closed_stdio(bool fallback)
{
    tracking(fallback);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* the loop first, so that its own fds are above 2 */
        _exit(harness_run_body(closed_stdio_body, NULL) == 0 ? 0 : 20);
    }
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
}

TEST(a_parent_without_stdio_still_gets_exec_errors_and_keeps_stderr)
{
    closed_stdio(false);
    LEAK_GATE();
}

TEST(a_parent_without_stdio_still_gets_exec_errors_and_keeps_stderr_sigchld)
{
    closed_stdio(true);
    LEAK_GATE();
}

/* ---- kill_on_cancel ------------------------------------------------- */

/* A child that exits 7 on SIGTERM (within ~20 ms): given its grace
 * period it exits 7; killed at once it is -9. */
#define TERM_SEVEN \
    "trap 'exit 7' TERM; for i in $(seq 150); do sleep 0.02; done"
/* One deaf to it. Both end by themselves within seconds, should a
 * failed test leave them behind. */
#define DEAF_TO_TERM "trap '' TERM; for i in $(seq 150); do sleep 0.02; done"

static void *grace_body(void *arg)
{
    tide_process_options o = {.stdin_mode = TIDE_STDIO_PIPE,
                              .stdout_mode = TIDE_STDIO_PIPE,
                              .stderr_mode = TIDE_STDIO_PIPE,
                              .kill_on_cancel = true,
                              .kill_grace = 3};
    tide_process_output out;
    int code = 99;
    (void)arg;

    /* communicate, cancelled by a timeout scope */
    tide_process *p = shell(TERM_SEVEN, &o);
    tide_timeout *sc = tide_timeout_begin(0.1);
    CHECK_NOT_NULL(sc);
    CHECK_ERR(tide_timeout_end(sc, tide_process_communicate(p, "x", 1, &code,
                                                            &out)),
              -ETIMEDOUT);
    CHECK_NULL(out.out);
    CHECK_EQ(tide_process_returncode(p, &code), 0);
    CHECK_EQ(code, 7);
    CHECK_EQ(tide_process_free(p), 0);

    /* wait, likewise */
    p = shell(TERM_SEVEN, &o);
    sc = tide_timeout_begin(0.1);
    CHECK_NOT_NULL(sc);
    CHECK_ERR(tide_timeout_end(sc, tide_process_wait(p, &code)), -ETIMEDOUT);
    CHECK_EQ(tide_process_returncode(p, &code), 0);
    CHECK_EQ(code, 7);
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

BOTH_WAYS(kill_on_cancel_gives_communicate_and_wait_the_grace_period,
          grace_body)

struct waiter {
    tide_process *p;
    int err, code;
    bool communicate;
};

static void *waiter_task(void *arg)
{
    struct waiter *w = arg;
    tide_process_output out;

    if (w->communicate) {
        w->err = tide_process_communicate(w->p, NULL, 0, &w->code, &out);
        tide_process_output_free(&out);
    } else {
        w->err = tide_process_wait(w->p, &w->code);
    }
    return NULL;
}

/* A child deaf to SIGTERM, a grace of 5 s: the second cancel kills it
 * at once, in wait and in communicate. */
static void *second_cancel_body(void *arg)
{
    tide_process_options o = {.stdout_mode = TIDE_STDIO_PIPE,
                              .kill_on_cancel = true,
                              .kill_grace = 5};
    (void)arg;

    for (int comm = 0; comm < 2; comm++) {
        static struct waiter w; /* shared with a task: not in a frame */
        w = (struct waiter){.communicate = comm};
        w.p = shell(DEAF_TO_TERM, &o);
        tide_future *f = tide_create_task(NULL, waiter_task, &w);
        CHECK_NOT_NULL(f);
        CHECK_EQ(tide_sleep(0.05), 0);
        CHECK_ERR(tide_process_free(w.p), -EBUSY); /* a task waits on it */
        CHECK(tide_future_cancel(f));
        CHECK_EQ(tide_sleep(0.1), 0);
        CHECK(!tide_future_done(f)); /* in the grace period */
        CHECK_ERR(tide_process_free(w.p), -EBUSY);
        double t0 = harness_now();
        CHECK(tide_future_cancel(f));
        CHECK_EQ(tide_await(f, NULL), 0);
        CHECK(harness_now() - t0 < 1 * harness_timeout_mult());
        CHECK_ERR(w.err, -ECANCELED);
        int code = 0;
        CHECK_EQ(tide_process_returncode(w.p, &code), 0);
        CHECK_EQ(code, -SIGKILL);
        tide_future_release(f);
        CHECK_EQ(tide_process_free(w.p), 0);
    }
    return NULL;
}

BOTH_WAYS(a_second_cancel_in_the_grace_period_kills_at_once,
          second_cancel_body)

/* ---- communicate with children that do not play along -------------- */

#define BIG ((size_t)1 << 20)

static void *rude_children_body(void *arg)
{
    const tide_process_options *o = &all_pipes;
    tide_process_output out;
    int code = 99;
    (void)arg;

    char *input = malloc(BIG);
    CHECK_NOT_NULL(input);
    memset(input, 'a', BIG);
    long fds = harness_fd_count();
    /* closes stdin at once, writes only to stderr, runs on a little */
    tide_process *p = shell("exec 0<&-; echo err >&2; sleep 0.05; exit 4", o);
    CHECK_EQ(tide_process_communicate(p, input, BIG, &code, &out), 0);
    CHECK_EQ(code, 4);
    CHECK_EQ(out.out_len, 0);
    CHECK_NOT_NULL(out.out);
    CHECK_EQ(out.err_len, 4);
    CHECK(memcmp(out.err, "err\n", 5) == 0);
    tide_process_output_free(&out);
    CHECK_NULL(tide_process_stdin(p)); /* communicate closed it */
    CHECK_EQ(tide_process_free(p), 0);

    /* exits without reading anything */
    p = shell("exit 3", o);
    CHECK_EQ(tide_process_communicate(p, input, BIG, &code, &out), 0);
    CHECK_EQ(code, 3);
    CHECK_EQ(out.out_len + out.err_len, 0);
    tide_process_output_free(&out);
    CHECK_EQ(tide_process_free(p), 0);

    /* reads half, then exits */
    p = shell("head -c 524288 >/dev/null; echo done", o);
    CHECK_EQ(tide_process_communicate(p, input, BIG, &code, &out), 0);
    CHECK_EQ(code, 0);
    CHECK_EQ(out.out_len, 5);
    tide_process_output_free(&out);
    CHECK_EQ(tide_process_free(p), 0);

    /* a second communicate at once, and one after the first */
    p = shell("cat", o);
    CHECK_EQ(tide_process_communicate(p, "xy", 2, &code, &out), 0);
    CHECK_EQ(out.out_len, 2);
    tide_process_output_free(&out);
    CHECK_ERR(tide_process_communicate(p, "z", 1, &code, &out), -EINVAL);
    CHECK_EQ(tide_process_communicate(p, NULL, 0, &code, &out), 0);
    CHECK_EQ(out.out_len, 0);
    tide_process_output_free(&out);
    CHECK_EQ(tide_process_free(p), 0);
    CHECK_EQ(harness_fd_count(), fds);
    free(input);
    return NULL;
}

BOTH_WAYS(communicate_with_children_that_close_stdin_or_never_read,
          rude_children_body)

/* ---- bad fds, no memory -------------------------------------------- */

static void *bad_fd_body(void *arg)
{
    const char *argv[] = {"true", NULL};
    tide_process *p = (tide_process *)1;
    (void)arg;

    long fds = harness_fd_count();
    int closed = 1000; /* below the fd limit, never opened */
    CHECK(fcntl(closed, F_GETFD) < 0);
    int modes[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        tide_process_options o = {0};
        modes[i] = TIDE_STDIO_FD;
        o.stdin_mode = modes[0];
        o.stdout_mode = modes[1];
        o.stderr_mode = modes[2];
        o.stdin_fd = o.stdout_fd = o.stderr_fd = closed;
        CHECK_ERR(tide_create_subprocess_exec(argv, &o, &p), -EBADF);
        modes[i] = 0;
    }
    CHECK(p == (tide_process *)1);
    CHECK_EQ(harness_fd_count(), fds);
    return NULL;
}

BOTH_WAYS(a_closed_fd_as_stdio_is_ebadf_with_nothing_left, bad_fd_body)

/* Every allocation of communicate fails in turn: -ENOMEM (or success
 * once past them all), nothing leaked, the child reaped by the loop. */
static void *communicate_oom_body(void *arg)
{
    const tide_process_options *o = &all_pipes;
    (void)arg;

    for (long n = 1;; n++) {
        tide_process *p = shell("cat; echo e >&2", o);
        tide_process_output out;
        int code = 99;
        tide__alloc_fail_after(n);
        int err = tide_process_communicate(p, "abc", 3, &code, &out);
        bool past = tide__alloc_fail_pending() > 0;
        tide__alloc_fail_after(0);
        if (err == 0) {
            CHECK_EQ(code, 0);
            CHECK_EQ(out.out_len, 3);
            CHECK_EQ(out.err_len, 2);
        } else {
            CHECK_ERR(err, -ENOMEM);
            CHECK_NULL(out.out);
            CHECK_NULL(out.err);
            (void)tide_process_kill(p);
            CHECK_EQ(tide_process_wait(p, &code), 0);
        }
        tide_process_output_free(&out);
        CHECK_EQ(tide_process_free(p), 0);
        if (past)
            break;
        CHECK(n < 100);
    }
    return NULL;
}

BOTH_WAYS(out_of_memory_at_each_allocation_of_communicate,
          communicate_oom_body)

/* ---- communicate beside a reader ----------------------------------- */

struct reader {
    tide_process *p;
    ssize_t n;
    char buf[16];
};

static void *reader_task(void *arg)
{
    struct reader *r = arg;
    r->n = tide_stream_read_into(tide_process_stdout(r->p), r->buf,
                                 sizeof r->buf);
    return NULL;
}

/* Another task reads stdout: communicate is -EBUSY and leaves the pipes
 * as they were (stdin open, nothing written, nothing read). */
static void *busy_body(void *arg)
{
    static struct reader r;
    const tide_process_options *o = &all_pipes;
    tide_process_output out;
    int code = 99;
    (void)arg;

    r = (struct reader){.p = shell("cat", o)};
    tide_future *f = tide_create_task(NULL, reader_task, &r);
    CHECK_NOT_NULL(f);
    CHECK_EQ(tide_sleep(0.01), 0); /* the reader is suspended */
    CHECK_ERR(tide_process_communicate(r.p, "abc", 3, &code, &out), -EBUSY);
    CHECK_NULL(out.out);
    CHECK_EQ(code, 99);
    tide_stream *in = tide_process_stdin(r.p);
    CHECK_NOT_NULL(in);
    CHECK_EQ(tide_stream_write(in, "late", 4), 0);
    CHECK_EQ(tide_await(f, NULL), 0);
    CHECK_EQ(r.n, 4);
    CHECK(memcmp(r.buf, "late", 4) == 0);
    tide_future_release(f);
    CHECK_EQ(tide_process_communicate(r.p, NULL, 0, &code, &out), 0);
    CHECK_EQ(code, 0);
    tide_process_output_free(&out);
    CHECK_EQ(tide_process_free(r.p), 0);
    return NULL;
}

BOTH_WAYS(communicate_beside_a_reader_is_ebusy_and_changes_nothing, busy_body)
