/* Tests for signals (tide/signal.h, src/core/signal.c, HAZARDS B36):
 * delivery on the loop, never in the handler; coalescing; every loop in
 * every thread gets every delivery; removing and closing give back the
 * disposition there was, exactly; bad signal numbers; storms of signals
 * while the loop works, and of registrations racing deliveries; debug
 * mode's dump beside a handler; tide_cancel_on_signals, its second
 * signal, and an ignored SIGINT; fork. Each test leaves every
 * disposition as it found it (checked), so they can run in one process.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/sys.h"
#include "core/signal.h"

#include <tide/io.h>
#include <tide/signal.h>
#include <tide/sync.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- dispositions ------------------------------------------------------ */

static struct sigaction disposition(int signo)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    CHECK_EQ(sigaction(signo, NULL, &sa), 0);
    return sa;
}

/* glibc's sigaction adds the kernel's SA_RESTORER (its return path from
 * a handler) to every disposition it sets, SIG_DFL's too, and reports it
 * back: a flag no program sets, and no part of what a signal does. */
#define KERNEL_SA_RESTORER 0x04000000

/* The same disposition: handler, flags and every signal of the mask
 * (that of a handler function). */
static bool same_disposition(const struct sigaction *a,
                             const struct sigaction *b)
{
    if ((a->sa_flags | KERNEL_SA_RESTORER) !=
        (b->sa_flags | KERNEL_SA_RESTORER))
        return false;
    if ((a->sa_flags & SA_SIGINFO) ? a->sa_sigaction != b->sa_sigaction
                                   : a->sa_handler != b->sa_handler)
        return false;
    /* SIG_DFL's and SIG_IGN's mask does nothing (ThreadSanitizer's
     * sigaction sets a full one when it installs them). */
    if (!(a->sa_flags & SA_SIGINFO) &&
        (a->sa_handler == SIG_DFL || a->sa_handler == SIG_IGN))
        return true;
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&a->sa_mask, s) != sigismember(&b->sa_mask, s))
            return false;
    return true;
}

#define CHECK_DISPOSITION(signo, want)                                 \
    do {                                                               \
        struct sigaction now_ = disposition(signo);                    \
        if (!same_disposition(&now_, &(want)))                         \
            harness_fail(__FILE__, __LINE__,                           \
                         "signal %d: disposition changed (flags %#x)", \
                         (signo), (unsigned)now_.sa_flags);            \
    } while (0)

/* A program's own handler, set with sigaction before tide (no
 * SA_RESTART: HAZARDS B36 wants tide's calls to survive that too). */
static atomic_int own_hits;

static void own_handler(int signo, siginfo_t *si, void *uctx)
{
    (void)signo;
    (void)si;
    (void)uctx;
    atomic_fetch_add(&own_hits, 1);
}

static struct sigaction set_own(int signo, struct sigaction *old)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = own_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGWINCH); /* a mask to see restored */
    CHECK_EQ(sigaction(signo, &sa, old), 0);
    return disposition(signo);
}

static struct sigaction set_ignored(int signo, struct sigaction *old)
{
    struct sigaction ign;

    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    CHECK_EQ(sigaction(signo, &ign, old), 0);
    return disposition(signo);
}

/* ---- handlers the tests set ------------------------------------------- */

struct hits {
    tide_loop *loop;
    atomic_int n;
    pthread_t thread;   /* where the last call ran */
    bool running;       /* the loop was running then */
    bool in_task;       /* a task was current then */
    uint64_t iteration; /* the loop's iteration count then */
};

static void count_hit(void *arg)
{
    struct hits *h = arg;
    tide_loop_stats st;

    h->thread = pthread_self();
    h->running = tide_loop_is_running(h->loop);
    h->in_task = tide_current_task() != NULL;
    CHECK_EQ(tide_loop_get_stats(h->loop, &st), 0);
    h->iteration = st.iterations;
    atomic_fetch_add(&h->n, 1);
}

/* One iteration, as a loop embedded in another runs it (it polls). */
static void iterate(tide_loop *loop)
{
    CHECK(tide_loop_run_once(loop, 0) >= 0);
}

/* ---- delivery ------------------------------------------------------------
 */

/* raise() delivers in this thread before it returns; the handler runs
 * only later, in an iteration of the loop, as a callback. */
static struct hits task_hits;
static int seen_right_after_raise = -1;

static void *raiser(void *arg)
{
    (void)arg;
    raise(SIGUSR1);
    seen_right_after_raise = atomic_load(&task_hits.n);
    int err = tide_sleep(0.001); /* the loop's next iteration runs it */
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(handler_runs_later_on_the_loop_never_in_the_signal_handler)
{
    struct sigaction before = disposition(SIGUSR1);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    task_hits.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &task_hits), 0);
    tide_future *t = tide_create_task(loop, raiser, NULL);
    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(seen_right_after_raise, 0); /* not inside raise() */
    CHECK_EQ(atomic_load(&task_hits.n), 1);
    CHECK(pthread_equal(task_hits.thread, pthread_self()));
    CHECK(task_hits.running);
    CHECK(!task_hits.in_task); /* a callback, not a task */
    tide_future_release(t);
    CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR1), 1);
    CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR1), 0);
    CHECK_DISPOSITION(SIGUSR1, before);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* The handler keeps errno, even when its wake-up fails. */
TEST(the_handler_keeps_errno)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct hits h;
    h.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &h), 0);
    tide__sys_fault(TIDE__SYS_WAKE, 1, EBADF, 0);
    errno = ENOTTY;
    raise(SIGUSR1);
    CHECK_EQ(errno, ENOTTY);
    tide__sys_fault_clear();
    iterate(loop); /* the bit was set: delivered all the same */
    CHECK_EQ(atomic_load(&h.n), 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* Sent from another thread, which the kernel delivers it in: the
 * callback still runs on the loop's thread. */
static void *raise_in_thread(void *arg)
{
    int signo = (int)(intptr_t)arg;
    CHECK_EQ(pthread_kill(pthread_self(), signo), 0);
    return NULL;
}

TEST(a_signal_delivered_in_another_thread_runs_on_the_loop_thread)
{
    struct sigaction before = disposition(SIGUSR2);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct hits h;
    h.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR2, count_hit, &h), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, raise_in_thread, IPTR(SIGUSR2)), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(atomic_load(&h.n), 0);
    /* The wake-up makes a blocking iteration return. */
    CHECK(tide_loop_run_once(loop, 5.0) >= 0);
    CHECK_EQ(atomic_load(&h.n), 1);
    CHECK(pthread_equal(h.thread, pthread_self()));
    CHECK(h.running);
    CHECK_EQ(tide_loop_close(loop), 0); /* removes the handler */
    CHECK_DISPOSITION(SIGUSR2, before);
    LEAK_GATE();
}

/* Five deliveries while the loop is busy in a callback: one call. */
static void raise_five(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++)
        raise(SIGUSR1);
}

TEST(deliveries_before_the_loop_looks_coalesce_into_one_call)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct hits h;
    h.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &h), 0);
    CHECK(tide_call_soon(loop, raise_five, NULL) != 0);
    iterate(loop); /* runs raise_five */
    CHECK_EQ(atomic_load(&h.n), 0);
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 1);
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 1); /* nothing more came */
    raise(SIGUSR1);
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 2); /* a later one is a new call */
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* Setting a handler again replaces it; a delivery not yet run runs the
 * new one; one removed before it runs is dropped. */
TEST(adding_again_replaces_and_removing_drops_a_queued_delivery)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct hits a, b;
    a.loop = b.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &a), 0);
    raise(SIGUSR1);
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &b), 0);
    iterate(loop);
    CHECK_EQ(atomic_load(&a.n), 0);
    CHECK_EQ(atomic_load(&b.n), 1);
    raise(SIGUSR1);
    CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR1), 1);
    iterate(loop);
    CHECK_EQ(atomic_load(&b.n), 1);
    /* Pending, then queued, then removed: the queued call frees it. */
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &b), 0);
    CHECK(tide_call_soon(loop, raise_five, NULL) != 0);
    iterate(loop);
    CHECK(tide_loop_run_once(loop, 0) >= 0); /* queued and run */
    CHECK_EQ(atomic_load(&b.n), 2);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* A handler that removes itself, and one whose delivery is queued when
 * the loop closes. */
static tide_loop *self_loop;
static int self_calls;

static void remove_self(void *arg)
{
    (void)arg;
    self_calls++;
    CHECK_EQ(tide_remove_signal_handler(self_loop, SIGUSR1), 1);
}

TEST(a_handler_may_remove_itself_and_close_drops_a_pending_delivery)
{
    struct sigaction before = disposition(SIGUSR1);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    self_loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, remove_self, NULL), 0);
    raise(SIGUSR1);
    iterate(loop);
    CHECK_EQ(self_calls, 1);
    CHECK_DISPOSITION(SIGUSR1, before);
    static struct hits h;
    h.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &h), 0);
    raise(SIGUSR1); /* pending when the loop closes: never run */
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(atomic_load(&h.n), 0);
    CHECK_DISPOSITION(SIGUSR1, before);
    LEAK_GATE();
}

/* ---- several loops ----------------------------------------------------- */

static pthread_barrier_t two_ready;

static void stop_loop(void *arg)
{
    struct hits *h = arg;
    count_hit(h);
    tide_loop_stop(h->loop);
}

static void give_up(void *loop)
{
    tide_loop_stop(loop);
}

static void *loop_thread(void *arg)
{
    struct hits *h = arg;
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    h->loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR2, stop_loop, h), 0);
    CHECK(tide_call_later(loop, 4.0, give_up, loop) != 0);
    pthread_barrier_wait(&two_ready);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    return NULL;
}

TEST(two_loops_in_two_threads_both_get_a_signal)
{
    struct sigaction before = disposition(SIGUSR2);
    static struct hits h[2];
    pthread_t th[2];
    CHECK_EQ(pthread_barrier_init(&two_ready, NULL, 3), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, loop_thread, &h[i]), 0);
    pthread_barrier_wait(&two_ready);
    CHECK_EQ(kill(getpid(), SIGUSR2), 0); /* the kernel picks a thread */
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&two_ready);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(atomic_load(&h[i].n), 1);
        CHECK(pthread_equal(h[i].thread, th[i]));
    }
    CHECK_DISPOSITION(SIGUSR2, before);
    LEAK_GATE();
}

/* Two loops on one thread: the disposition is tide's until the second
 * lets go; both run their handler on one delivery. */
TEST(the_disposition_comes_back_when_the_last_loop_lets_go)
{
    struct sigaction old;
    struct sigaction own = set_own(SIGUSR1, &old);
    tide_loop *a = tide_loop_new(), *b = tide_loop_new();
    CHECK(a && b);
    static struct hits ha, hb;
    ha.loop = a;
    hb.loop = b;
    CHECK_EQ(tide_add_signal_handler(a, SIGUSR1, count_hit, &ha), 0);
    CHECK_EQ(tide_add_signal_handler(b, SIGUSR1, count_hit, &hb), 0);
    struct sigaction tides = disposition(SIGUSR1);
    CHECK(!same_disposition(&tides, &own));
    CHECK(tides.sa_flags & SA_RESTART);
    raise(SIGUSR1);
    iterate(a);
    iterate(b);
    CHECK_EQ(atomic_load(&ha.n), 1);
    CHECK_EQ(atomic_load(&hb.n), 1);
    CHECK_EQ(atomic_load(&own_hits), 0); /* tide's replaced it */
    CHECK_EQ(tide_remove_signal_handler(a, SIGUSR1), 1);
    CHECK_DISPOSITION(SIGUSR1, tides); /* b still has one */
    CHECK_EQ(tide_remove_signal_handler(b, SIGUSR1), 1);
    CHECK_DISPOSITION(SIGUSR1, own); /* handler, flags and mask */
    raise(SIGUSR1);
    CHECK_EQ(atomic_load(&own_hits), 1); /* the program's again */
    CHECK_EQ(tide_loop_close(a), 0);
    CHECK_EQ(tide_loop_close(b), 0);
    CHECK_EQ(sigaction(SIGUSR1, &old, NULL), 0);
    atomic_store(&own_hits, 0);
    LEAK_GATE();
}

TEST(sig_ign_stays_sig_ign_and_a_program_s_own_replacement_stays)
{
    struct sigaction old;
    struct sigaction ignored = set_ignored(SIGUSR2, &old);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct hits h;
    h.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR2, count_hit, &h), 0);
    raise(SIGUSR2); /* tide's now, not ignored */
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 1);
    CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR2), 1);
    CHECK_DISPOSITION(SIGUSR2, ignored);
    /* The program sets its own over tide's: removing leaves it. */
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR2, count_hit, &h), 0);
    struct sigaction dummy;
    struct sigaction own = set_own(SIGUSR2, &dummy);
    CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR2), 1);
    CHECK_DISPOSITION(SIGUSR2, own);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(sigaction(SIGUSR2, &old, NULL), 0);
    LEAK_GATE();
}

/* ---- bad input ------------------------------------------------------- */

static void never(void *arg)
{
    (void)arg;
    harness_fail(__FILE__, __LINE__, "a handler that must not run ran");
}

static void *nothing(void *arg)
{
    return arg;
}

TEST(bad_signal_numbers_are_einval_and_change_nothing)
{
    struct sigaction usr1 = disposition(SIGUSR1);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    const int bad[] = {0,      -1,      -SIGINT, NSIG,    NSIG + 1,
                       1000,   SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,
                       SIGILL, SIGFPE,  32 /* glibc's own (SIGCANCEL) */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_ERR(tide_add_signal_handler(loop, bad[i], never, NULL), -EINVAL);
        if (bad[i] != 32)
            CHECK_ERR(tide_remove_signal_handler(loop, bad[i]), -EINVAL);
    }
    CHECK_ERR(tide_add_signal_handler(loop, SIGUSR1, NULL, NULL), -EINVAL);
    CHECK_DISPOSITION(SIGUSR1, usr1);
    CHECK_NULL(loop->sigrec); /* it never joined the registry */
    /* Out of memory: nothing set, nothing held. */
    tide__alloc_fail_after(1);
    CHECK_ERR(tide_add_signal_handler(loop, SIGUSR1, never, NULL), -ENOMEM);
    tide__alloc_fail_after(0);
    CHECK_DISPOSITION(SIGUSR1, usr1);
    CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR1), 0);
    CHECK_ERR(tide_cancel_on_signals(loop, NULL), -EINVAL);
    tide_future *plain = tide_future_new(loop);
    CHECK_NOT_NULL(plain);
    CHECK_ERR(tide_cancel_on_signals(loop, plain), -EINVAL); /* no task */
    tide_loop *other = tide_loop_new();
    CHECK_NOT_NULL(other);
    tide_future *t = tide_create_task(other, nothing, NULL);
    CHECK_NOT_NULL(t);
    CHECK_ERR(tide_cancel_on_signals(loop, t), -EINVAL); /* not loop's */
    CHECK_ERR(tide_cancel_on_signals(other, t), 0);
    CHECK_EQ(tide_run_until_complete(other, t, NULL), 0);
    tide_future_release(t);
    tide_future_release(plain);
    CHECK_EQ(tide_loop_close(other), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- storms ------------------------------------------------------------ */

/* HAZARDS B36: thousands of signals, tide's (SIGUSR1) and the program's
 * own without SA_RESTART (SIGUSR2), many sent at the loop's thread, while
 * the loop runs timers, yields and a socket stream: no call returns
 * -EINTR, the bytes arrive exact, the handler runs at least once and at
 * most once per signal, and still runs after the storm. */
#define STORM 3000
#define STREAM_BYTES (1 << 20)

static atomic_bool storm_over;
static pthread_t storm_target;
static int stream_fds[2];
static unsigned char sent_bytes[STREAM_BYTES];
static unsigned char got_bytes[STREAM_BYTES];

static void *storm(void *arg)
{
    (void)arg;
    for (int i = 0; i < STORM; i++) {
        if (i % 2)
            pthread_kill(storm_target, i % 4 == 1 ? SIGUSR1 : SIGUSR2);
        else
            kill(getpid(), i % 4 == 0 ? SIGUSR1 : SIGUSR2);
        if (i % 64 == 0)
            usleep(100);
    }
    atomic_store(&storm_over, true);
    return NULL;
}

static void *sleeper(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20 || !atomic_load(&storm_over); i++) {
        int err = i % 2 ? tide_sleep(0.0002) : tide_sleep(0);
        if (err < 0)
            return tide_fail(err);
    }
    return NULL;
}

static void *stream_writer(void *arg)
{
    (void)arg;
    ssize_t n = tide_sock_sendall(stream_fds[0], sent_bytes, STREAM_BYTES, 0);
    return n < 0 ? tide_fail((int)n) : NULL;
}

static void *stream_reader(void *arg)
{
    size_t got = 0;
    (void)arg;
    while (got < STREAM_BYTES) {
        size_t want = STREAM_BYTES - got < 1000 ? STREAM_BYTES - got : 1000;
        ssize_t n = tide_sock_recv(stream_fds[1], got_bytes + got, want, 0);
        if (n <= 0)
            return tide_fail(n < 0 ? (int)n : -EPIPE);
        got += (size_t)n;
        if (got % 65536 < 1000 && tide_sleep(0.0001) < 0)
            return tide_fail(-EIO);
    }
    return NULL;
}

TEST(a_signal_storm_while_the_loop_works_loses_nothing)
{
    struct sigaction old2;
    set_own(SIGUSR2, &old2);
    struct sigaction before1 = disposition(SIGUSR1);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct hits h;
    h.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &h), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, stream_fds),
             0);
    for (size_t i = 0; i < STREAM_BYTES; i++)
        sent_bytes[i] = (unsigned char)(i * 7 + i / 251);
    tide_future *t[12];
    for (int i = 0; i < 10; i++)
        t[i] = tide_create_task(loop, sleeper, NULL);
    t[10] = tide_create_task(loop, stream_writer, NULL);
    t[11] = tide_create_task(loop, stream_reader, NULL);
    tide_future *all = tide_gather(t, 12, 0);
    CHECK_NOT_NULL(all);
    storm_target = pthread_self();
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, storm, NULL), 0);
    CHECK_ERR(tide_run_until_complete(loop, all, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(memcmp(sent_bytes, got_bytes, STREAM_BYTES), 0);
    iterate(loop); /* the last of the storm */
    int n = atomic_load(&h.n);
    CHECK(n >= 1 && n <= STORM / 2);
    CHECK(atomic_load(&own_hits) >= 1);
    raise(SIGUSR1);
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), n + 1);
    tide_future_release(all);
    for (int i = 0; i < 12; i++)
        tide_future_release(t[i]);
    tide_close(stream_fds[0]);
    tide_close(stream_fds[1]);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_DISPOSITION(SIGUSR1, before1);
    CHECK_EQ(sigaction(SIGUSR2, &old2, NULL), 0);
    atomic_store(&own_hits, 0);
    LEAK_GATE();
}

/* Loops in several threads set, remove and close with handlers while
 * another thread floods the signal: the handler runs in threads whose
 * loops are leaving (TSan: no race; ASan: no use after free), and the
 * program's own disposition is back at the end. */
#define RACE_ROUNDS 300

static atomic_bool race_over;

static void *race_storm(void *arg)
{
    (void)arg;
    while (!atomic_load(&race_over)) {
        kill(getpid(), SIGUSR1);
        sched_yield();
    }
    return NULL;
}

static void *race_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    struct hits h = {0};
    tide_loop *keep = tide_loop_new();
    CHECK_NOT_NULL(keep);
    for (int i = 0; i < RACE_ROUNDS; i++) {
        tide_loop *loop = tide_loop_new();
        CHECK_NOT_NULL(loop);
        h.loop = loop;
        CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &h), 0);
        if ((i + id) % 3 == 0)
            CHECK_EQ(tide_add_signal_handler(keep, SIGUSR1, count_hit, &h), 0);
        iterate(loop);
        if (i % 2)
            CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR1), 1);
        CHECK_EQ(tide_loop_close(loop), 0); /* else it removes it */
        if ((i + id) % 3 == 1)
            CHECK(tide_remove_signal_handler(keep, SIGUSR1) >= 0);
    }
    CHECK_EQ(tide_loop_close(keep), 0);
    return NULL;
}

TEST(registrations_race_deliveries_in_other_threads)
{
    struct sigaction old;
    struct sigaction own = set_own(SIGUSR1, &old);
    pthread_t storm_th, th[3];
    atomic_store(&race_over, false);
    CHECK_EQ(pthread_create(&storm_th, NULL, race_storm, NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, race_worker, IPTR(i)), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    atomic_store(&race_over, true);
    CHECK_EQ(pthread_join(storm_th, NULL), 0);
    CHECK_DISPOSITION(SIGUSR1, own);
    CHECK_EQ(sigaction(SIGUSR1, &old, NULL), 0);
    atomic_store(&own_hits, 0);
    LEAK_GATE();
}

/* ---- the library's own watches beside the program's handler --------- */

static int drops;

static void count_drop(void *arg)
{
    (void)arg;
    drops++;
}

TEST(library_watches_and_the_program_s_handler_coexist)
{
    struct sigaction before = disposition(SIGUSR1);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct hits user, lib, lib2;
    user.loop = lib.loop = lib2.loop = loop;
    int err = 1;
    struct tide__sigwatch *w =
        tide__signal_add(loop, SIGUSR1, count_hit, &lib, count_drop, &err);
    CHECK_NOT_NULL(w);
    CHECK_EQ(err, 0);
    CHECK_NOT_NULL(
        tide__signal_add(loop, SIGUSR1, count_hit, &lib2, count_drop, &err));
    CHECK_NULL(tide__signal_add(loop, SIGKILL, count_hit, &lib, NULL, &err));
    CHECK_ERR(err, -EINVAL);
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &user), 0);
    CHECK_EQ(loop->sig_handlers, 1); /* only the program's may wake it */
    raise(SIGUSR1);
    iterate(loop);
    CHECK_EQ(atomic_load(&user.n), 1);
    CHECK_EQ(atomic_load(&lib.n), 1);
    CHECK_EQ(atomic_load(&lib2.n), 1);
    CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR1), 1);
    struct sigaction held = disposition(SIGUSR1);
    CHECK(!same_disposition(&held, &before)); /* the watches hold it */
    raise(SIGUSR1);
    iterate(loop);
    CHECK_EQ(atomic_load(&user.n), 1);
    CHECK_EQ(atomic_load(&lib.n), 2);
    tide__signal_remove(loop, w);
    CHECK_EQ(drops, 1);
    CHECK_EQ(tide_loop_close(loop), 0); /* removes the other: dropped */
    CHECK_EQ(drops, 2);
    CHECK_DISPOSITION(SIGUSR1, before);
    LEAK_GATE();
}

/* Debug mode's dump and the program's handler on SIGUSR1: both run. In a
 * child, whose stderr (where the dump goes) the test reads. */
static void *hang(void *arg)
{
    (void)arg;
    int err = tide_sleep(1000);
    return err < 0 ? tide_fail(err) : NULL;
}

static void dump_and_handler(void *arg)
{
    (void)arg;
    struct sigaction before = disposition(SIGUSR1);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct hits h;
    h.loop = loop;
    tide_task_options o = {0};
    o.name = "hung";
    tide_future *t = tide_create_task_ex(loop, hang, NULL, &o);
    CHECK_NOT_NULL(t);
    iterate(loop);
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &h), 0);
    raise(SIGUSR1);
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 1); /* no dump without debug mode */
    fprintf(stderr, "debug on\n");
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    raise(SIGUSR1);
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 2);
    fprintf(stderr, "handler removed\n");
    CHECK_EQ(tide_remove_signal_handler(loop, SIGUSR1), 1);
    raise(SIGUSR1); /* debug mode still dumps */
    iterate(loop);
    CHECK_EQ(tide_loop_set_debug(loop, false), 0);
    CHECK_DISPOSITION(SIGUSR1, before);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
}

TEST(debug_mode_dumps_on_sigusr1_beside_a_handler_of_the_program)
{
    char buf[4096];
    int status = harness_run_child(dump_and_handler, NULL, buf, sizeof buf);
    const char *on = strstr(buf, "debug on\n");
    const char *removed = on ? strstr(on, "handler removed\n") : NULL;
    const char *first = on ? strstr(on, "task 'hung'") : NULL;
    const char *second = removed ? strstr(removed, "task 'hung'") : NULL;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 3 || !removed || !first ||
        first > removed || !second || strstr(buf, "task 'hung'") != first)
        harness_fail(__FILE__, __LINE__, "child status %#x, stderr: %s",
                     (unsigned)status, buf);
    LEAK_GATE();
}

/* A loop whose tasks wait for a signal is not deadlocked (debug mode):
 * SIGALRM from a timer of the kernel's, no other thread. */
static tide_event *alarm_event;

static void set_alarm_event(void *arg)
{
    (void)arg;
    tide_event_set(alarm_event);
}

static void *wait_alarm(void *arg)
{
    (void)arg;
    int err = tide_event_wait(alarm_event);
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(tasks_waiting_for_a_signal_are_not_a_deadlock)
{
    struct sigaction before = disposition(SIGALRM);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    alarm_event = tide_event_new();
    CHECK_NOT_NULL(alarm_event);
    CHECK_EQ(tide_add_signal_handler(loop, SIGALRM, set_alarm_event, NULL), 0);
    tide_future *t = tide_create_task(loop, wait_alarm, NULL);
    CHECK_NOT_NULL(t);
    struct itimerval it = {{0, 0}, {0, 20000}};
    CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    tide_event_free(alarm_event);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_DISPOSITION(SIGALRM, before);
    LEAK_GATE();
}

/* ---- tide_cancel_on_signals ------------------------------------------ */

static bool cleanup_ran;
static int cleanup_sleep_err = 1;

static void raise_cb(void *signo)
{
    raise((int)(intptr_t)signo);
}

/* main: cancelled by the signal, cleans up (awaiting as it likes), and
 * either lets the cancellation stand or swallows it. */
static void *cancellable_main(void *swallow)
{
    CHECK_EQ(tide_cancel_on_signals(NULL, tide_current_task()), 0);
    CHECK(tide_call_later(NULL, 0.01, raise_cb,
                          IPTR(swallow ? SIGTERM : SIGINT)) != 0);
    int err = tide_sleep(100);
    cleanup_sleep_err = tide_sleep(0.001); /* a cleanup may wait */
    cleanup_ran = true;
    if (swallow)
        return err == -ECANCELED ? IPTR(7) : tide_fail(-EIO);
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(sigint_cancels_the_main_task_of_tide_run_and_its_cleanup_runs)
{
    struct sigaction before_int = disposition(SIGINT);
    struct sigaction before_term = disposition(SIGTERM);
    CHECK_ERR(tide_run(cancellable_main, NULL, NULL), -ECANCELED);
    CHECK(cleanup_ran);
    CHECK_EQ(cleanup_sleep_err, 0);
    CHECK_DISPOSITION(SIGINT, before_int);
    CHECK_DISPOSITION(SIGTERM, before_term);
    cleanup_ran = false;
    void *result = NULL;
    CHECK_ERR(tide_run(cancellable_main, IPTR(1), &result), 0); /* SIGTERM */
    CHECK(cleanup_ran);
    CHECK_EQ(PINT(result), 7);
    CHECK_DISPOSITION(SIGINT, before_int);
    CHECK_DISPOSITION(SIGTERM, before_term);
    LEAK_GATE();
}

/* The second signal, once the first was delivered, ends the process with
 * the signal's default action, even while the loop is stuck. */
static void *stuck_cleanup_main(void *second)
{
    CHECK_EQ(tide_cancel_on_signals(NULL, tide_current_task()), 0);
    raise(SIGTERM);
    int err = tide_sleep(100);
    if (err != -ECANCELED)
        _exit(5);
    raise((int)(intptr_t)second);
    harness_busy_wait(3); /* a cleanup that hangs the loop */
    _exit(4);
}

static void second_signal_child(void *second)
{
    tide_run(stuck_cleanup_main, second, NULL);
    _exit(6);
}

TEST(a_second_signal_after_the_first_ends_the_process)
{
    const int second[] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        char buf[512];
        int status = harness_run_child(second_signal_child, IPTR(second[i]),
                                       buf, sizeof buf);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != second[i])
            harness_fail(__FILE__, __LINE__, "child status %#x: %s",
                         (unsigned)status, buf);
    }
    LEAK_GATE();
}

/* A SIGINT ignored before (a shell script's background job) is taken
 * too, and SIG_IGN comes back after. */
static void *ignoring_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_cancel_on_signals(NULL, tide_current_task()), 0);
    struct sigaction now = disposition(SIGINT);
    CHECK(now.sa_handler != SIG_IGN);
    raise(SIGINT);
    CHECK_ERR(tide_sleep(100), -ECANCELED);
    return NULL; /* swallowed */
}

TEST(an_ignored_sigint_is_taken_and_given_back)
{
    struct sigaction old;
    struct sigaction ignored = set_ignored(SIGINT, &old);
    struct sigaction before_term = disposition(SIGTERM);
    CHECK_ERR(tide_run(ignoring_main, NULL, NULL), 0);
    CHECK_DISPOSITION(SIGINT, ignored);
    CHECK_DISPOSITION(SIGTERM, before_term);
    CHECK_EQ(sigaction(SIGINT, &old, NULL), 0);
    LEAK_GATE();
}

/* Replacing one of its handlers leaves the other; removing both lets the
 * task go (the leak gate). */
TEST(cancel_on_signals_handlers_are_ordinary_handlers)
{
    struct sigaction before_int = disposition(SIGINT);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    tide_future *t = tide_create_task(loop, hang, NULL);
    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_cancel_on_signals(loop, t), 0);
    CHECK_EQ(tide_cancel_on_signals(loop, t), 0); /* again: replaces */
    static struct hits h;
    h.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGINT, count_hit, &h), 0);
    raise(SIGINT);
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 1);
    CHECK(!tide_future_done(t));
    raise(SIGTERM);
    iterate(loop);
    iterate(loop);
    CHECK(tide_future_cancelled(t));
    CHECK_EQ(tide_remove_signal_handler(loop, SIGTERM), 1);
    raise(SIGINT); /* armed for SIGTERM only, and not ours: no death */
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 2);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_DISPOSITION(SIGINT, before_int);
    LEAK_GATE();
}

/* ---- fork ----------------------------------------------------------- */

/* HAZARDS B37: a signal pending for the parent's loop is not delivered to
 * a loop the child makes. */
static void fork_child(void *arg)
{
    (void)arg;
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct hits h;
    h.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &h), 0);
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 0);
    raise(SIGUSR1);
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 1);
    CHECK_EQ(tide_loop_close(loop), 0);
}

TEST(a_child_s_loop_does_not_get_the_parent_s_pending_signal)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct hits h;
    h.loop = loop;
    CHECK_EQ(tide_add_signal_handler(loop, SIGUSR1, count_hit, &h), 0);
    raise(SIGUSR1); /* pending for this loop */
    char buf[512];
    int status = harness_run_child(fork_child, NULL, buf, sizeof buf);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 3)
        harness_fail(__FILE__, __LINE__, "child status %#x: %s",
                     (unsigned)status, buf);
    iterate(loop);
    CHECK_EQ(atomic_load(&h.n), 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}
