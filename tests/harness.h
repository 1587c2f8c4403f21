/* The test harness: registration, checks, a forking runner, the leak gate.
 *
 * TEST(name) { ... } registers a test (a constructor adds it to a table;
 * the runner sorts the table by line so tests run in file order). The
 * runner in harness.c forks each test into its own process group under a
 * timeout (5 s, times $TIDE_TEST_TIMEOUT_MULT), prints PASS/FAIL/SKIP per
 * test and ends with exactly "N passed, M failed". argv[1] runs one test
 * by name; TIDE_TEST_NOFORK=1 runs in-process (for a debugger).
 *
 * A failed CHECK prints both sides (CHECK_ERR by errno name) and ends the
 * test's process at once, from any stack (a task's included). SKIP() ends
 * it with exit code 77.
 * Every test ends with LEAK_GATE(): tide's live-allocation count and the
 * number of open fds are what they were when the test started. The runner
 * fails a test that returns without calling it.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_TEST_HARNESS_H
#define TIDE_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <tide.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

typedef void (*harness_fn)(void);

void harness_register(const char *name, harness_fn fn, int line);
__attribute__((noreturn, format(printf, 3, 4))) void harness_fail(
    const char *file, int line, const char *fmt, ...);
__attribute__((noreturn)) void harness_skip(const char *why);
/* CHECK_ERR's failure: prints both codes by name (tide_err_name). */
__attribute__((noreturn)) void harness_fail_err(const char *file, int line,
                                                const char *expr,
                                                const char *want_expr,
                                                long long got, long long want);
/* An error code as CHECK_ERR prints it, into buf (n bytes): "-EAGAIN" for
 * a negative errno, "EAGAIN" for a positive one when a positive one is
 * wanted (errno), the number otherwise (0, a count, no errno). */
const char *harness_err_str(long long v, long long want, char *buf, size_t n);
void harness_leak_gate(const char *file, int line);
long harness_fd_count(void);       /* entries in /proc/self/fd */
double harness_now(void);          /* CLOCK_MONOTONIC, seconds */
double harness_timeout_mult(void); /* $TIDE_TEST_TIMEOUT_MULT, >= 1 */
long harness_rss_kib(void);        /* resident memory, KiB; -1: unknown */
/* A new loop runs on io_uring (TIDE_BACKEND=io_uring): the kernel makes
 * the I/O calls, so the seam's faults on them never fire. */
bool harness_on_io_uring(void);
void harness_busy_wait(double seconds);
/* Run fn(arg) in a forked child whose stderr is captured into buf (cap
 * bytes, NUL-terminated; the rest is read and dropped); the child exits 3
 * if fn returns. Returns the child's wait status. For death tests (a
 * stack overflow must kill) and runs that must start from a clean
 * process. */
int harness_run_child(void (*fn)(void *arg), void *arg, char *buf, size_t cap);

#define TEST(name)                                                      \
    static void test_##name(void);                                      \
    __attribute__((constructor)) static void test_register_##name(void) \
    {                                                                   \
        harness_register(#name, test_##name, __LINE__);                 \
    }                                                                   \
    static void test_##name(void)

#define CHECK(cond)                                               \
    do {                                                          \
        if (!(cond))                                              \
            harness_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
    } while (0)

#define CHECK_EQ(a, b)                                             \
    do {                                                           \
        long long harness_a_ = (long long)(a);                     \
        long long harness_b_ = (long long)(b);                     \
        if (harness_a_ != harness_b_)                              \
            harness_fail(__FILE__, __LINE__,                       \
                         "CHECK_EQ(%s, %s): %lld != %lld", #a, #b, \
                         harness_a_, harness_b_);                  \
    } while (0)

/* An error code compared with the one wanted (0, a negative errno as tide
 * returns it, or a positive one as errno holds it); a failure names both:
 * "CHECK_ERR(rc, -ECANCELED): got -EAGAIN, want -ECANCELED". */
#define CHECK_ERR(rc, want)                                              \
    do {                                                                 \
        long long harness_a_ = (long long)(rc);                          \
        long long harness_b_ = (long long)(want);                        \
        if (harness_a_ != harness_b_)                                    \
            harness_fail_err(__FILE__, __LINE__, #rc, #want, harness_a_, \
                             harness_b_);                                \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                 \
    do {                                                                   \
        const char *harness_a_ = (a);                                      \
        const char *harness_b_ = (b);                                      \
        if (!harness_a_ || !harness_b_ ||                                  \
            strcmp(harness_a_, harness_b_) != 0)                           \
            harness_fail(__FILE__, __LINE__,                               \
                         "CHECK_STR_EQ(%s, %s): \"%s\" != \"%s\"", #a, #b, \
                         harness_a_ ? harness_a_ : "(null)",               \
                         harness_b_ ? harness_b_ : "(null)");              \
    } while (0)

#define CHECK_NULL(p)                                               \
    do {                                                            \
        if ((p) != NULL)                                            \
            harness_fail(__FILE__, __LINE__, "CHECK_NULL(%s)", #p); \
    } while (0)

#define CHECK_NOT_NULL(p)                                               \
    do {                                                                \
        if ((p) == NULL)                                                \
            harness_fail(__FILE__, __LINE__, "CHECK_NOT_NULL(%s)", #p); \
    } while (0)

#define SKIP(why) harness_skip(why)

#define LEAK_GATE() harness_leak_gate(__FILE__, __LINE__)

/* Slack for comparing loop times: the loop keeps whole nanoseconds and
 * converts to and from double, so t0 + d may come back one rounding
 * below. Far below any real timing error. */
#define EARLY 1e-6

/* A void * result carrying a small integer, and back. */
#define IPTR(i) ((void *)(intptr_t)(i))
#define PINT(p) ((long long)(intptr_t)(p))

#if defined(__SANITIZE_ADDRESS__)
#define HARNESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HARNESS_ASAN 1
#endif
#endif
#ifndef HARNESS_ASAN
#define HARNESS_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define HARNESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HARNESS_TSAN 1
#endif
#endif
#ifndef HARNESS_TSAN
#define HARNESS_TSAN 0
#endif

/* Under valgrind (a run-time fact), death tests that overflow a stack on
 * purpose are skipped: valgrind reports the overflow itself. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HARNESS_VALGRIND (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef HARNESS_VALGRIND
#define HARNESS_VALGRIND 0
#endif

/* ---- tide helpers ---------------------------------------------------- */

/* TIDE_COMPACT=1: every task is compact (CI runs the suite that way too).
 * The few tests about a task's own stack skip then. */
static inline bool harness_compact(void)
{
    const char *e = getenv("TIDE_COMPACT");

    return e && e[0] == '1';
}
/* TIDE_TEST_QEMU=1 (CI's aarch64 step): the suite runs under QEMU user
 * mode, which runs threads of its own in the process and does not carry
 * every fork of a threaded program through. */
static inline bool harness_qemu(void)
{
    const char *e = getenv("TIDE_TEST_QEMU");

    return e && e[0] == '1';
}

#define SKIP_IF_COMPACT(why)              \
    do {                                  \
        if (harness_compact())            \
            SKIP("TIDE_COMPACT=1: " why); \
    } while (0)

/* Run body(arg) as a task on a fresh loop to its end; its error. Under
 * TIDE_COMPACT=1 the body and every task it starts are compact: what a
 * body shares with its tasks or callbacks lives in statics or on the
 * heap, never in its frames (README, "Compact tasks"). */
static inline int harness_run_body(tide_fn body, void *arg)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    tide_future *t = tide_create_task(loop, body, arg);
    CHECK_NOT_NULL(t);
    int err = tide_run_until_complete(loop, t, NULL);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    return err;
}

/* A connected TCP pair on loopback: *client (non-blocking) and *server
 * (accepted, non-blocking). */
static inline void harness_tcp_pair(int *client, int *server)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    CHECK(l >= 0);
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 4), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(*client >= 0);
    CHECK_EQ(connect(*client, (struct sockaddr *)&a, sizeof a), 0);
    *server = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    CHECK(*server >= 0);
    CHECK_EQ(fcntl(*client, F_SETFL, O_NONBLOCK), 0);
    close(l);
}

/* Raise the soft fd limit to n if it is lower (as far as the hard limit
 * allows); skip the test if that is not enough. */
static inline void harness_want_fds(rlim_t n)
{
    struct rlimit r;

    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &r), 0);
    if (r.rlim_cur >= n)
        return;
    r.rlim_cur = r.rlim_max < n ? r.rlim_max : n;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &r), 0);
    if (r.rlim_cur < n)
        SKIP("the fd limit cannot be raised far enough");
}

static inline void harness_stop_cb(void *loop)
{
    tide_loop_stop(loop);
}

/* Run one iteration of `loop`: everything ready now runs, then it stops. */
static inline void run_once(tide_loop *loop)
{
    CHECK(tide_call_soon(loop, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
}

static inline tide_loop_stats loop_stats(tide_loop *loop)
{
    tide_loop_stats st;

    CHECK_EQ(tide_loop_get_stats(loop, &st), 0);
    return st;
}

static inline uint64_t loop_iterations(tide_loop *loop)
{
    return loop_stats(loop).iterations;
}

/* A new loop on the virtual clock (every timer test uses it). */
/* Run iterations until nothing is ready (at most 1000). */
static inline void drain(tide_loop *loop)
{
    int i = 0;

    do {
        run_once(loop);
        CHECK(++i < 1000);
    } while (loop_stats(loop).ready > 0);
}

static inline tide_loop *new_virtual_loop(void)
{
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_virtual_clock(loop, true), 0);
    return loop;
}

#endif
