/* The runner behind harness.h: one forked process per test, a timeout,
 * PASS/FAIL/SKIP lines and the final "N passed, M failed" line.
 *
 * The child records tide's live-allocation count and its open-fd count
 * before the test body; LEAK_GATE() compares against them. A child that
 * exits 0 without having passed the gate fails. Exit code 77 is a skip.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HARNESS_MAX_TESTS 512
#define HARNESS_TIMEOUT 5.0
#define HARNESS_SKIP_CODE 77

struct harness_test {
    const char *name;
    harness_fn fn;
    int line;
};

static struct harness_test tests[HARNESS_MAX_TESTS];
static int ntests;

static long base_alloc;
static long base_fds;
static bool gate_passed;

void harness_register(const char *name, harness_fn fn, int line)
{
    if (ntests == HARNESS_MAX_TESTS) {
        fprintf(stderr, "harness: more than %d tests\n", HARNESS_MAX_TESTS);
        abort();
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    tests[ntests].line = line;
    ntests++;
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

const char *harness_err_str(long long v, long long want, char *buf, size_t n)
{
    const char *name = v >= INT_MIN && v <= INT_MAX && v != 0
                           ? tide_err_name((int)v)
                           : "UNKNOWN";

    if (strcmp(name, "UNKNOWN") == 0 || (v > 0 && want <= 0))
        snprintf(buf, n, "%lld", v);
    else
        snprintf(buf, n, "%s%s", v < 0 ? "-" : "", name);
    return buf;
}

void harness_fail_err(const char *file, int line, const char *expr,
                      const char *want_expr, long long got, long long want)
{
    char g[48], w[48];

    harness_fail(file, line, "CHECK_ERR(%s, %s): got %s, want %s", expr,
                 want_expr, harness_err_str(got, want, g, sizeof g),
                 harness_err_str(want, want, w, sizeof w));
}

void harness_skip(const char *why)
{
    fflush(stdout);
    fprintf(stderr, "skipped: %s\n", why);
    fflush(stderr);
    _exit(HARNESS_SKIP_CODE);
}

long harness_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;

    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

double harness_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int harness_run_child(void (*fn)(void *arg), void *arg, char *buf, size_t cap)
{
    int fds[2], status = -1;

    if (pipe(fds) < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        fn(arg);
        _exit(3); /* not reached when the child dies as it should */
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fds[0], buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    /* Drain the rest, so that a chatty child does not die of SIGPIPE. */
    char sink[4096];
    while (read(fds[0], sink, sizeof sink) > 0)
        ;
    close(fds[0]);
    waitpid(pid, &status, 0);
    return status;
}

long harness_rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

void harness_busy_wait(double seconds)
{
    double end = harness_now() + seconds;

    while (harness_now() < end) {
    }
}

bool harness_on_io_uring(void)
{
    tide_loop *loop = tide_loop_new();
    bool yes = loop && strcmp(tide_loop_backend(loop), "io_uring") == 0;

    if (loop)
        tide_loop_close(loop);
    return yes;
}

double harness_timeout_mult(void)
{
    const char *s = getenv("TIDE_TEST_TIMEOUT_MULT");
    double m = s ? strtod(s, NULL) : 1.0;

    return m >= 1.0 ? m : 1.0;
}

void harness_leak_gate(const char *file, int line)
{
    long live = tide__alloc_live();
    long fds = harness_fd_count();

    if (live != base_alloc)
        harness_fail(file, line,
                     "leak gate: %ld allocation(s) live, "
                     "%ld at test start",
                     live, base_alloc);
    if (fds != base_fds)
        harness_fail(file, line,
                     "leak gate: %ld fds open, %ld at test "
                     "start",
                     fds, base_fds);
    gate_passed = true;
}

static void run_in_child(const struct harness_test *t)
{
    base_alloc = tide__alloc_live();
    base_fds = harness_fd_count();
    gate_passed = false;
    t->fn();
    if (!gate_passed)
        harness_fail(__FILE__, __LINE__, "%s returned without LEAK_GATE()",
                     t->name);
    fflush(NULL);
    exit(0);
}

/* Wait for pid up to `timeout` seconds; kill its group after that.
 * Returns the wait status, or -1 on timeout. */
static int wait_child(pid_t pid, double timeout)
{
    double deadline = harness_now() + timeout;
    long nap = 50000; /* ns */
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR) {
            perror("waitpid");
            return -2;
        }
        if (harness_now() > deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            return -1;
        }
        struct timespec ts = {0, nap};
        nanosleep(&ts, NULL);
        if (nap < 2000000)
            nap *= 2;
    }
}

enum outcome { PASSED, FAILED, SKIPPED };

static enum outcome run_one(const struct harness_test *t, double timeout)
{
    double start = harness_now();
    pid_t pid;
    int status;

    fflush(NULL);
    if (getenv("TIDE_TEST_NOFORK"))
        run_in_child(t);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return FAILED;
    }
    if (pid == 0) {
        setpgid(0, 0);
        run_in_child(t);
    }
    setpgid(pid, pid);
    status = wait_child(pid, timeout);
    double took = harness_now() - start;

    if (status == -1) {
        printf("FAIL %s (timeout after %.1f s)\n", t->name, timeout);
        return FAILED;
    }
    if (status < 0) {
        printf("FAIL %s (lost the child)\n", t->name);
        return FAILED;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("PASS %s (%.3f s)\n", t->name, took);
        return PASSED;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == HARNESS_SKIP_CODE) {
        printf("SKIP %s\n", t->name);
        return SKIPPED;
    }
    if (WIFEXITED(status))
        printf("FAIL %s (exit code %d)\n", t->name, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("FAIL %s (signal %d: %s)\n", t->name, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
    else
        printf("FAIL %s (status %#x)\n", t->name, status);
    return FAILED;
}

static int by_line(const void *a, const void *b)
{
    const struct harness_test *x = a, *y = b;

    return (x->line > y->line) - (x->line < y->line);
}

int main(int argc, char **argv)
{
    double timeout = HARNESS_TIMEOUT * harness_timeout_mult();
    int passed = 0, failed = 0, skipped = 0, matched = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    qsort(tests, (size_t)ntests, sizeof tests[0], by_line);
    for (int i = 0; i < ntests; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        matched++;
        switch (run_one(&tests[i], timeout)) {
        case PASSED:
            passed++;
            break;
        case FAILED:
            failed++;
            break;
        case SKIPPED:
            skipped++;
            break;
        }
    }
    if (argc > 1 && matched == 0) {
        printf("no test named %s\n", argv[1]);
        failed++;
    }
    if (skipped)
        printf("%d skipped\n", skipped);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
