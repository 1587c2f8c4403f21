/* The watchdog of debug mode: a step that holds the loop past the slow
 * step threshold is reported on stderr while it still does, naming its
 * task and where it is (a backtrace with the blocking function's name),
 * once at the threshold and once at ten times it; the report handler
 * gets the whole report when the step ends. One watchdog thread per
 * process, only while a debug loop is open; its signal is chained to the
 * program's own handler and can be moved or turned off.
 *
 * The blocking steps spin on a clock and read the captured stderr as
 * they go (the loop is blocked all the while: no tide call is made), so
 * a test sees the report arrive before the step ends. The tests name no
 * function for the linker to export: the names come from the test
 * binary's own symbol table.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOW 0.05 /* the threshold most tests use */

/* ---- captured stderr ---------------------------------------------------- */

static struct {
    int saved, rd;
    pthread_mutex_t lock;
    char buf[32768];
    size_t len;
} err = {.saved = -1, .rd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void err_begin(void)
{
    int p[2];

    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_EQ(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    fflush(stderr);
    err.saved = dup(2);
    CHECK(err.saved >= 0);
    CHECK_EQ(dup2(p[1], 2), 2);
    close(p[1]);
    err.rd = p[0];
    err.len = 0;
    err.buf[0] = '\0';
}

/* Read what has been written so far; true if `want` is in it. */
static bool err_has(const char *want)
{
    pthread_mutex_lock(&err.lock);
    ssize_t n;
    while (err.len + 1 < sizeof err.buf &&
           (n = read(err.rd, err.buf + err.len,
                     sizeof err.buf - 1 - err.len)) > 0)
        err.len += (size_t)n;
    err.buf[err.len] = '\0';
    bool has = strstr(err.buf, want) != NULL;
    pthread_mutex_unlock(&err.lock);
    return has;
}

/* Drop the lines that say why a loop fell back from io_uring (debug
 * mode says it when turned on: under valgrind, in CI's fallback step). */
static char *drop_backend_notes(char *text)
{
    char *p;

    while ((p = strstr(text, "tide: backend ")) &&
           (p == text || p[-1] == '\n')) {
        char *end = strchr(p, '\n');
        memmove(p, end ? end + 1 : p + strlen(p),
                strlen(end ? end + 1 : p + strlen(p)) + 1);
    }
    return text;
}

static const char *err_end(void)
{
    err_has("");
    dup2(err.saved, 2);
    close(err.saved);
    close(err.rd);
    err.saved = err.rd = -1;
    return drop_backend_notes(err.buf);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The report in `text` that starts with "tide: <who>", up to the next
 * report (copied into out). */
static const char *report_of(const char *text, const char *who, char *out,
                             size_t cap)
{
    char head[128];

    snprintf(head, sizeof head, "tide: %s", who);
    const char *p = strstr(text, head);
    out[0] = '\0';
    if (!p)
        return out;
    const char *end = strstr(p + 1, "\ntide: ");
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

/* ---- the report handler ------------------------------------------------- */

static char msgs[8192];
static int nmsgs;

static void capture(tide_loop *loop, const char *msg, void *arg)
{
    (void)loop;
    (void)arg;
    strncat(msgs, msg, sizeof msgs - strlen(msgs) - 2);
    strcat(msgs, "\n");
    nmsgs++;
}

static tide_loop *debug_loop(double slow)
{
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK_EQ(tide_loop_set_slow_callback_duration(loop, slow), 0);
    CHECK_EQ(tide_loop_set_report_handler(loop, capture, NULL), 0);
    msgs[0] = '\0';
    nmsgs = 0;
    return loop;
}

/* Threads named tide-watchdog in this process (the sanitizers may have
 * threads of their own, so threads are told apart by name). */
static int watchdogs(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    CHECK_NOT_NULL(d);
    while ((e = readdir(d))) {
        char path[300], comm[64] = "";
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue; /* it just ended */
        if (fgets(comm, sizeof comm, f) &&
            strcmp(comm, "tide-watchdog\n") == 0)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* A joined thread may linger in /proc for a moment. */
static int watchdogs_settled(int want)
{
    double until = harness_now() + harness_timeout_mult();
    int n;

    while ((n = watchdogs()) != want && harness_now() < until)
        usleep(1000);
    return n;
}

/* ---- blocking steps -------------------------------------------------- */

/* How a blocking step spins: at least `min` seconds, and on until `want`
 * is on stderr, or signal `sig` is pending (at most `max`); `seen` is
 * when that happened, measured from the spin's start, -1 if never;
 * `took` is how long the spin was. */
struct spin {
    double min, max;
    const char *want;
    double seen, took;
    int sig;
};

static bool signal_pending(int sig)
{
    sigset_t set;

    CHECK_EQ(sigpending(&set), 0);
    return sigismember(&set, sig);
}

static double limit(double s)
{
    return s * harness_timeout_mult();
}

__attribute__((noinline)) static void spin_until_reported(struct spin *s)
{
    double t0 = harness_now(), now;

    s->seen = -1;
    do {
        now = harness_now();
        if (s->seen < 0 && ((s->want && err_has(s->want)) ||
                            (s->sig && signal_pending(s->sig))))
            s->seen = now - t0;
    } while (now - t0 < s->min || (s->seen < 0 && now - t0 < limit(s->max)));
    s->took = harness_now() - t0;
}

static void *spinner(void *arg)
{
    spin_until_reported(arg);
    return NULL;
}

static int spinner_line;

/* Run a task named `name` spinning as `s` says, on a new debug loop, with
 * stderr captured; returns what stderr got. */
static const char *run_spinner(const char *name, double slow, struct spin *s)
{
    err_begin();
    tide_loop *loop = debug_loop(slow);
    tide_task_options o = {0};
    o.name = name;
    spinner_line = __LINE__ + 1;
    tide_future *t = tide_create_task_ex(loop, spinner, s, &o);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    return err_end();
}

/* Whether the backtrace in out names the frame: under QEMU user mode a
 * backtrace taken in a signal handler may stop at the first frame, so
 * there only the report itself is required. */
static bool has_frame(const char *out, const char *frame)
{
    return harness_qemu() || strstr(out, frame) != NULL;
}

TEST(a_blocked_step_is_reported_while_it_blocks_with_its_backtrace)
{
    struct spin s = {.min = 0.3, .max = 3, .want = "has held the loop"};
    const char *out = run_spinner("spinner", SLOW, &s);
    char want[256], one[4096];

    /* Seen on stderr before the step ended, after the threshold. */
    if (s.seen < 0)
        harness_fail(__FILE__, __LINE__, "no report in %.2f s: %s", s.took,
                     out);
    CHECK(s.seen < s.took);
    snprintf(want, sizeof want, "task 'spinner' (created at %s:%d)", __FILE__,
             spinner_line);
    report_of(out, want, one, sizeof one);
    if (!strstr(one, "has held the loop for 0.") ||
        !strstr(one, "and still holds it; it is at:\n    #0 ") ||
        !has_frame(one, " spin_until_reported+0x") ||
        !has_frame(one, " spinner+0x"))
        harness_fail(__FILE__, __LINE__, "report: \"%s\" in \"%s\"", one, out);
    double age = 0;
    CHECK(sscanf(strstr(one, "has held the loop for "),
                 "has held the loop for %lf", &age) == 1);
    CHECK(age >= SLOW);
    /* Once: the step did not reach ten times the threshold. */
    if (s.took < 9 * SLOW)
        CHECK_EQ(count(out, "tide: "), 1);
    /* At its end, the report handler gets it all: the slow step and
     * where the watchdog caught it. */
    CHECK_EQ(nmsgs, 1);
    if (!strstr(msgs, want) ||
        !strstr(msgs, "(slow step); the watchdog "
                      "caught it at:\n    #") ||
        !has_frame(msgs, " spin_until_reported+0x"))
        harness_fail(__FILE__, __LINE__, "report handler got: %s", msgs);
    CHECK_EQ(watchdogs_settled(0), 0);
    LEAK_GATE();
}

TEST(a_step_still_blocked_at_ten_times_the_threshold_is_reported_again)
{
    struct spin s = {.max = 3, .want = "ten times the slow step threshold"};
    const char *out = run_spinner("stuck", 0.02, &s);

    if (s.seen < 0)
        harness_fail(__FILE__, __LINE__, "no second report: %s", out);
    CHECK(s.seen > 0.1); /* the step began a little before the spin */
    CHECK_EQ(count(out, "tide: task 'stuck'"), 2);
    char one[4096];
    report_of(out, "task 'stuck' (created at", one, sizeof one);
    CHECK(strstr(one, "has held the loop") != NULL);
    const char *second = strstr(out, "still holds the loop after ");
    double age = 0;
    CHECK(second && sscanf(second, "still holds the loop after %lf", &age));
    CHECK(age >= 0.2);
    CHECK(has_frame(second, " spin_until_reported+0x"));
    LEAK_GATE();
}

static void *yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        tide_sleep(0);
    return NULL;
}

TEST(fast_steps_are_not_reported)
{
    err_begin();
    tide_loop *loop = debug_loop(SLOW);
    tide_future *last = NULL;
    for (int i = 0; i < 100; i++) {
        tide_future_release(last);
        last = tide_create_task(loop, yielder, NULL);
    }
    double t0 = harness_now();
    CHECK_EQ(tide_run_until_complete(loop, last, NULL), 0);
    CHECK(harness_now() - t0 > 0); /* the run took some ticks' time */
    tide_future_release(last);
    CHECK_EQ(tide_loop_close(loop), 0);
    const char *out = err_end();
    CHECK_STR_EQ(out, "");
    CHECK_EQ(nmsgs, 0);
    LEAK_GATE();
}

static void *spin_briefly(void *arg)
{
    (void)arg;
    harness_busy_wait(0.01);
    return NULL;
}

TEST(without_debug_mode_there_is_no_watchdog_thread)
{
    CHECK_EQ(watchdogs(), 0);
    tide_loop *plain = tide_loop_new();
    tide_future *t = tide_create_task(plain, spin_briefly, NULL);
    CHECK_EQ(tide_run_until_complete(plain, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(watchdogs(), 0);

    /* One for the process, however many debug loops. */
    tide_loop *a = debug_loop(SLOW), *b = debug_loop(SLOW);
    CHECK_EQ(watchdogs(), 1);
    CHECK_EQ(tide_loop_set_debug(a, false), 0);
    CHECK_EQ(watchdogs(), 1);
    CHECK_EQ(tide_loop_close(b), 0);
    CHECK_EQ(watchdogs_settled(0), 0);
    CHECK_EQ(tide_loop_set_debug(a, true), 0); /* and back */
    CHECK_EQ(watchdogs(), 1);
    CHECK_EQ(tide_loop_close(a), 0);
    CHECK_EQ(watchdogs_settled(0), 0);
    CHECK_EQ(tide_loop_close(plain), 0);
    LEAK_GATE();
}

static int watch_signal(void)
{
    return SIGRTMIN + 8;
}

/* A signal the watchdog sent while the loop's thread blocked it is
 * delivered after the loop closed: it finds nothing to report. And once
 * the last loop is closed no signal comes. */
TEST(closing_the_loop_stops_the_watchdog_and_its_signals)
{
    int sig = watch_signal();
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, sig);

    tide_loop *idle = debug_loop(SLOW); /* keeps the watchdog running */
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
    struct spin s = {.max = 3, .sig = sig};
    const char *out = run_spinner("masked", 0.02, &s);
    CHECK_STR_EQ(out, ""); /* blocked: the handler never ran */
    CHECK(s.seen > 0);     /* but the watchdog asked */
    CHECK(signal_pending(sig));
    err_begin();
    CHECK_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0); /* delivered */
    CHECK(!signal_pending(sig));
    harness_busy_wait(0.1);
    out = err_end();
    CHECK_STR_EQ(out, ""); /* the loop is gone: nothing to say */
    CHECK_EQ(watchdogs(), 1);

    /* The last debug loop closes: the thread is joined, and a step that
     * blocks afterwards (outside any loop) draws no signal. */
    CHECK_EQ(tide_loop_close(idle), 0);
    CHECK_EQ(watchdogs_settled(0), 0);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
    harness_busy_wait(0.1);
    CHECK(!signal_pending(sig));
    CHECK_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    LEAK_GATE();
}

/* ---- two loops in two threads ------------------------------------------ */

static atomic_int reported_both;

static bool both_reported(void)
{
    return err_has("task 'left'") && err_has("task 'right'");
}

__attribute__((noinline)) static void spin_until_both(void)
{
    double until = harness_now() + limit(3);

    while (!both_reported() && harness_now() < until)
        ;
    if (both_reported())
        atomic_fetch_add(&reported_both, 1);
}

__attribute__((noinline)) static void *left_body(void *arg)
{
    (void)arg;
    spin_until_both();
    return NULL;
}

__attribute__((noinline)) static void *right_body(void *arg)
{
    (void)arg;
    spin_until_both();
    return NULL;
}

static void *run_in_thread(void *arg)
{
    const char *name = arg;
    tide_loop *loop = tide_loop_new();
    tide_task_options o = {0};

    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK_EQ(tide_loop_set_slow_callback_duration(loop, SLOW), 0);
    o.name = name; /* reports at the step's end go to stderr too */
    tide_future *t =
        tide_create_task_ex(loop,
                            strcmp(name, "left") == 0 ? left_body : right_body,
                            NULL, &o);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    return NULL;
}

TEST(loops_in_two_threads_each_get_their_own_report)
{
    pthread_t a, b;

    err_begin();
    CHECK_EQ(pthread_create(&a, NULL, run_in_thread, "left"), 0);
    CHECK_EQ(pthread_create(&b, NULL, run_in_thread, "right"), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    const char *out = err_end();
    CHECK_EQ(atomic_load(&reported_both), 2); /* both, while both blocked */
    char left[4096], right[4096];
    report_of(out, "task 'left'", left, sizeof left);
    report_of(out, "task 'right'", right, sizeof right);
    /* Each backtrace is its own thread's. */
    if (!has_frame(left, " left_body+0x") || strstr(left, "right_body") ||
        !has_frame(right, " right_body+0x") || strstr(right, "left_body"))
        harness_fail(__FILE__, __LINE__, "reports: %s", out);
    CHECK_EQ(watchdogs_settled(0), 0);
    LEAK_GATE();
}

/* ---- callbacks, unnamed tasks ----------------------------------------- */

__attribute__((noinline)) static void blocking_callback(void *arg)
{
    spin_until_reported(arg);
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep the frame */
}

TEST(a_blocking_callback_is_reported_too)
{
    struct spin s = {.max = 3, .want = "has held the loop"};

    err_begin();
    tide_loop *loop = debug_loop(SLOW);
    CHECK(tide_call_soon(loop, blocking_callback, &s) != 0);
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    const char *out = err_end();
    CHECK(s.seen > 0);
    if (!strstr(out, "tide: a callback has held the loop") ||
        !has_frame(out, " blocking_callback+0x"))
        harness_fail(__FILE__, __LINE__, "stderr: %s", out);
    CHECK(strstr(msgs, "the watchdog caught it at:") != NULL);
    LEAK_GATE();
}

static void *unnamed(void *arg)
{
    spin_until_reported(arg);
    return NULL;
}

/* Created before debug mode was on: no name, no site; the report still
 * says which task (its number). */
TEST(an_unnamed_task_is_reported_by_its_number)
{
    struct spin s = {.max = 3, .want = "has held the loop"};

    err_begin();
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, unnamed, &s);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK_EQ(tide_loop_set_slow_callback_duration(loop, SLOW), 0);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    const char *out = err_end();
    if (!strstr(out, "tide: task 'Task-1' has held the loop"))
        harness_fail(__FILE__, __LINE__, "stderr: %s", out);
    LEAK_GATE();
}

/* ---- the signal ----------------------------------------------------- */

static atomic_int program_signals;

static void program_handler(int sig, siginfo_t *si, void *uctx)
{
    (void)sig;
    (void)si;
    (void)uctx;
    atomic_fetch_add(&program_signals, 1);
}

TEST(the_programs_own_signals_still_reach_its_handler)
{
    int sig = watch_signal();
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = program_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(sig, &sa, NULL), 0);

    struct spin s = {.max = 3, .want = "has held the loop"};
    const char *out = run_spinner("chained", SLOW, &s);
    CHECK(s.seen > 0 && has_frame(out, " spin_until_reported+0x"));
    CHECK_EQ(atomic_load(&program_signals), 0); /* the watchdog's: not its */
    raise(sig);
    union sigval v = {.sival_int = 7};
    CHECK_EQ(pthread_sigqueue(pthread_self(), sig, v), 0);
    double until = harness_now() + limit(1); /* valgrind delivers later */
    while (atomic_load(&program_signals) < 2 && harness_now() < until)
        usleep(1000);
    CHECK_EQ(atomic_load(&program_signals), 2);
    LEAK_GATE();
}

static void expect_signal_choice(void *arg)
{
    setenv("TIDE_WATCHDOG_SIGNAL", arg, 1);
    tide_loop *loop = tide_loop_new();
    if (tide_loop_set_debug(loop, true) != 0 || !tide_loop_get_debug(loop))
        _exit(10);
    _exit(20 + watchdogs());
}

TEST(tide_watchdog_signal_moves_the_signal_or_turns_the_watchdog_off)
{
    char buf[1024], num[16];
    int status;

    status = harness_run_child(expect_signal_choice, "0", buf, sizeof buf);
    drop_backend_notes(buf);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 20);
    CHECK_STR_EQ(buf, "");
    status = harness_run_child(expect_signal_choice, "9", buf, sizeof buf);
    drop_backend_notes(buf);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 20);
    CHECK(strstr(buf, "TIDE_WATCHDOG_SIGNAL=9 is neither") != NULL);
    status = harness_run_child(expect_signal_choice, "x", buf, sizeof buf);
    drop_backend_notes(buf);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 20);
    snprintf(num, sizeof num, "%d", SIGRTMIN + 3);
    status = harness_run_child(expect_signal_choice, num, buf, sizeof buf);
    drop_backend_notes(buf);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 21);

    /* Moved: reports come through the new signal, the default one is
     * left alone. */
    setenv("TIDE_WATCHDOG_SIGNAL", num, 1);
    struct spin s = {.max = 3, .want = "has held the loop"};
    const char *out = run_spinner("moved", SLOW, &s);
    CHECK(s.seen > 0 && has_frame(out, " spin_until_reported+0x"));
    struct sigaction now;
    CHECK_EQ(sigaction(watch_signal(), NULL, &now), 0);
    CHECK(!(now.sa_flags & SA_SIGINFO) && now.sa_handler == SIG_DFL);
    CHECK_EQ(sigaction(SIGRTMIN + 3, NULL, &now), 0);
    CHECK(now.sa_flags & SA_SIGINFO);
    unsetenv("TIDE_WATCHDOG_SIGNAL");
    LEAK_GATE();
}

/* No fd for the watchdog's eventfd: debug mode says so and stays off,
 * and nothing is left behind. */
TEST(debug_mode_fails_cleanly_when_the_watchdog_cannot_start)
{
    tide_loop *loop = tide_loop_new();
    struct rlimit old, low;

    CHECK_NOT_NULL(loop);
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest_free = dup(0);
    CHECK(lowest_free >= 0);
    close(lowest_free);
    low = old;
    low.rlim_cur = (rlim_t)lowest_free; /* no new fd */
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    int rc = tide_loop_set_debug(loop, true);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    CHECK_EQ(rc, -EMFILE);
    CHECK(!tide_loop_get_debug(loop));
    CHECK_EQ(watchdogs(), 0);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0); /* with fds, it works */
    CHECK_EQ(watchdogs(), 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(watchdogs_settled(0), 0);
    LEAK_GATE();
}

/* ---- naming frames (core/symbols.c) ----------------------------------- */

#include "core/symbols.h"

#include <sys/mman.h>

__attribute__((noinline)) static int named_static(int x)
{
    return x * 3 + 1;
}

TEST(frames_are_named_from_the_symbol_table_or_given_as_offsets)
{
    char *code = (char *)(uintptr_t)named_static;
    void *anon =
        mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(anon != MAP_FAILED);
    void *frames[] = {code + 1, code + 2, anon};
    char buf[1024], want[64];

    size_t n = tide__symbols_format(frames, 3, buf, sizeof buf);
    CHECK_EQ(n, strlen(buf));
    /* A static function, named without -rdynamic; a return address is
     * named by the call before it, and keeps its own offset. */
    if (!strstr(buf, "    #0 named_static+0x1 (test_watchdog)\n") ||
        !strstr(buf, "    #1 named_static+0x2 (test_watchdog)\n"))
        harness_fail(__FILE__, __LINE__, "frames: %s", buf);
    snprintf(want, sizeof want, "    #2 %p\n", anon); /* in no file */
    CHECK(strstr(buf, want) != NULL);
    /* Cut to fit, and still a string. */
    n = tide__symbols_format(frames, 3, buf, 20);
    CHECK(n < 20);
    CHECK_EQ(n, strlen(buf));
    CHECK_EQ(tide__symbols_format(frames, 0, buf, sizeof buf), 0);
    CHECK_STR_EQ(buf, "");
    munmap(anon, 4096);
    CHECK_EQ(named_static(1), 4);
    LEAK_GATE();
}
