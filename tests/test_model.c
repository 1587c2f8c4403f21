/* A randomized model test of the whole library (issue 7): per seed, a
 * fresh loop on the virtual clock and a driver that starts worker tasks;
 * each worker performs a random mix of operations, thousands per seed in
 * all: sleeps, lock and semaphore holds, queue puts and gets of unique
 * items, events, conditions, a barrier, await/wait_for/shield/gather/
 * wait/as_completed on other tasks, timeout scopes (nested), task groups,
 * spawning, cancelling random tasks (from tasks and from call_later
 * callbacks), cancelling handles, failing on purpose, breaking the
 * barrier (tide_barrier_abort) and, in one seed out of four, shutting
 * the queue down early (graceful or immediate). A worker that
 * sees -ECANCELED usually ends cancelled and sometimes swallows it and
 * goes on (valid under both the deliver-once and the stays-pending
 * semantics of a swallowed request: nothing here assumes either).
 *
 * The model checks, as it goes: at most one lock holder, at most
 * `permits` semaphore holders, value + holders never above permits, no
 * queue item gotten twice or gotten after its put failed, the queue's
 * size between the items surely in it and those maybe in it, an await's
 * outcome equal to the awaited task's, time limits that never end early.
 * At the end of each seed: every task ended (the loop has none left), no
 * item lost (the queue drained, every item put gotten once, or dropped
 * by an immediate shutdown and then never gotten), nothing held,
 * each task's outcome consistent with what its body did, the loop closes
 * with 0, and nothing leaks (LEAK_GATE).
 *
 * TIDE_MODEL_SEED (first seed, default 1) and TIDE_MODEL_SEEDS (how
 * many, default 20 per test, 4 under TSan) pick the seeds; a failure
 * prints its seed and the command that replays it (from the build
 * directory). TIDE_MODEL_VERBOSE=1 prints a line per seed. A seed that
 * hangs is stopped by a watchdog (SIGALRM) that prints it; under ASan a
 * sanitizer report is followed by it too. A run is deterministic: the
 * same seed gives the same operations on every build of one library (the
 * seeds do not depend on addresses or the real clock).
 *
 * Three variants: default task options, random options (eager, compact,
 * own stack size), and every task compact; CI also runs the whole suite
 * with TIDE_COMPACT=1, and this test with many more seeds, plain, with
 * TIDE_COMPACT=1 and under ASan+UBSan (.ci/run model).
 *
 * Workers keep to two rules so that nothing deadlocks for good: a task
 * only waits for tasks made after it (no cycle of awaits), and does
 * nothing but sleep while it holds a lock, a permit or the condition's
 * lock. What still blocks at the horizon (a get on an empty
 * queue, an event nobody sets) is cancelled by the driver, round after
 * round, or in one seed out of four left to tide_loop_close.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "tide/sync.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if HARNESS_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define MAX_WORKERS 1000
#define MAX_ITEMS 8192
#define MAX_HANDLES 256
#define MAX_FANOUT 4

enum mode { MODE_PLAIN, MODE_MIXED, MODE_COMPACT };

/* What a worker's body did when it returned. */
enum outcome { OUT_NONE, OUT_VALUE, OUT_FAIL, OUT_CANCEL };

/* Where a queue item is: its put is under way, returned 0, or failed. */
enum item_state { ITEM_PENDING = 1, ITEM_PUT, ITEM_NOT_PUT, ITEM_DROPPED };

/* What a call_later callback does when it runs. */
enum cb_action { CB_CANCEL, CB_EVENT_SET, CB_PUT, CB_GET, CB_LOCK, CB_N };

struct worker {
    int idx;
    int budget;          /* operations to perform */
    tide_future *fut;    /* the registry's reference; NULL if never made */
    bool started, ended; /* the body began / returned */
    enum outcome outcome;
    int swallowed; /* -ECANCELED results it went on after */
};

struct handle_slot {
    tide_handle h;
    enum cb_action action;
    bool ran, cancelled;
};

/* The counts that TIDE_MODEL_VERBOSE and the summary line print (longs
 * only: run_seed adds them up as an array). */
struct counts {
    long seeds, ops, tasks, items, gotten, cancels, swallowed, ecanceled,
        etimedout, lock_entries, sem_entries, cond_tokens, callbacks,
        left_to_close, at_horizon, foreign;
};

/* Everything a seed shares. Static, not on any task's stack: a compact
 * task's locals must not be touched while it is suspended. */
static struct model {
    uint64_t rng;
    enum mode mode;
    tide_loop *loop;
    double t0;           /* loop time when the driver starts */
    double horizon;      /* loop time until which the driver lets tasks run */
    bool stopping;       /* past the horizon: workers stop, none spawn */
    bool leave_to_close; /* left-over tasks are cancelled by loop_close */

    tide_lock *lock;
    int lock_holders;
    tide_semaphore *sem;
    unsigned permits, sem_holders;
    tide_queue *q;
    size_t maxsize;
    int next_item;
    long surely_in, maybe_in; /* items put (or under way), not gotten */
    bool may_shut_q;          /* this seed may shut the queue down early */
    bool q_dropped;           /* shut down immediately: items dropped */
    unsigned char state[MAX_ITEMS], got[MAX_ITEMS];
    tide_event *ev;
    unsigned long ev_sets;
    tide_condition *cond;
    int own_cond_holders;
    int *cond_holders; /* &lock_holders when cond uses m.lock */
    long tokens, produced, consumed;
    tide_barrier *bar;
    unsigned parties;

    struct worker w[MAX_WORKERS];
    int nworkers;
    tide_future *snap[MAX_WORKERS];
    struct handle_slot hs[MAX_HANDLES];
    int nhandles;
    struct counts c;
} m;

static struct counts total;
static char replay[256];

/* ---- failing with the seed ------------------------------------------- */

__attribute__((noreturn, format(printf, 2, 3))) static void model_fail(
    int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    harness_fail(__FILE__, line, "%s\n%s", msg, replay);
}

#define MCHECK(cond)                                   \
    do {                                               \
        if (!(cond))                                   \
            model_fail(__LINE__, "MCHECK(%s)", #cond); \
    } while (0)

#define MCHECK_EQ(a, b)                                                     \
    do {                                                                    \
        long long model_a_ = (long long)(a);                                \
        long long model_b_ = (long long)(b);                                \
        if (model_a_ != model_b_)                                           \
            model_fail(__LINE__, "MCHECK_EQ(%s, %s): %lld != %lld", #a, #b, \
                       model_a_, model_b_);                                 \
    } while (0)

#define MCHECK_ERR(rc, want)                                                 \
    do {                                                                     \
        long long model_a_ = (long long)(rc);                                \
        long long model_b_ = (long long)(want);                              \
        char model_g_[48], model_w_[48];                                     \
        if (model_a_ != model_b_)                                            \
            model_fail(__LINE__, "MCHECK_ERR(%s, %s): got %s, want %s", #rc, \
                       #want,                                                \
                       harness_err_str(model_a_, model_b_, model_g_, 48),    \
                       harness_err_str(model_b_, model_b_, model_w_, 48));   \
    } while (0)

static void say_replay(void)
{
    ssize_t n = write(2, replay, strlen(replay));
    (void)n;
}

static void on_alarm(int sig)
{
    static const char hung[] = "\nmodel: watchdog: this seed hangs\n";
    ssize_t n = write(2, hung, sizeof hung - 1);

    (void)n;
    (void)sig;
    say_replay();
    _exit(1);
}

/* ---- randomness ------------------------------------------------------- */

static uint64_t next64(void) /* splitmix64 */
{
    uint64_t z = (m.rng += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static unsigned rnd(unsigned n)
{
    return (unsigned)(next64() % n);
}

static double rnd_delay(void)
{
    switch (rnd(4)) {
    case 0:
        return 0;
    case 1:
        return 0.001 * (1 + rnd(5));
    default:
        return 0.001 * (1 + rnd(30));
    }
}

/* A time limit: sometimes none left at all, sometimes negative. */
static double rnd_limit(void)
{
    switch (rnd(8)) {
    case 0:
        return 0;
    case 1:
        return -0.001;
    case 2:
    case 3:
        return 0.001 * (1 + rnd(40));
    default:
        return 0.05 + 0.001 * rnd(1000);
    }
}

static double now(void)
{
    return tide_loop_time(m.loop);
}

/* ---- workers ---------------------------------------------------------- */

static void *value_of(const struct worker *w)
{
    return IPTR(1000 + w->idx);
}

static void *worker_main(void *arg);

/* A new worker with `budget` operations, in group g if not NULL. It may
 * run (eagerly) before this returns. NULL when no more may be made. */
static struct worker *spawn_worker(int budget, tide_task_group *g)
{
    if (m.nworkers == MAX_WORKERS || m.stopping)
        return NULL;
    struct worker *w = &m.w[m.nworkers++];
    *w = (struct worker){.idx = (int)(w - m.w), .budget = budget};
    tide_task_options o = {0};
    if (m.mode == MODE_COMPACT) {
        o.compact = true;
    } else if (m.mode == MODE_MIXED) {
        unsigned r = rnd(8);
        o.eager = r & 1;
        o.compact = r == 2 || r == 3;
        o.stack_size = r == 4 ? 64 * 1024 : 0;
    }
    tide_future *f = g ? tide_task_group_spawn(g, worker_main, w, &o)
                       : tide_create_task_ex(m.loop, worker_main, w, &o);
    if (!f) {
        /* Only a group that is aborting refuses (a child failed). */
        MCHECK(g != NULL);
        MCHECK_ERR(errno, ESHUTDOWN);
        return NULL;
    }
    w->fut = f;
    m.c.tasks++;
    return w;
}

/* A task made after w (so waits only go from older to newer tasks and
 * never close a cycle), or a new one; NULL if none. */
static struct worker *pick_later(const struct worker *w)
{
    int lo = w->idx + 1;

    if (lo < m.nworkers && rnd(4)) {
        struct worker *t = &m.w[lo + (int)rnd((unsigned)(m.nworkers - lo))];
        if (t->fut)
            return t;
    }
    return spawn_worker(5 + (int)rnd(20), NULL);
}

/* Up to n distinct tasks made after w into fs (their workers in ws). */
static size_t pick_distinct(const struct worker *w, tide_future **fs,
                            struct worker **ws, size_t n)
{
    size_t k = 0;

    for (size_t tries = 0; k < n && tries < 2 * n; tries++) {
        struct worker *t = pick_later(w);
        bool dup = false;
        if (!t)
            continue;
        for (size_t i = 0; i < k; i++)
            dup |= ws[i] == t;
        if (dup)
            continue;
        ws[k] = t;
        fs[k++] = t->fut;
    }
    return k;
}

/* An await of t returned rc (and v): t is done, and rc is t's outcome
 * unless it is -ECANCELED (the caller's cancellation, or t's). */
static void check_awaited(const struct worker *t, int rc, void *v)
{
    MCHECK(tide_future_done(t->fut));
    if (rc == 0) {
        MCHECK_EQ(t->outcome, OUT_VALUE);
        MCHECK(v == value_of(t));
        MCHECK_EQ(tide_future_result(t->fut, NULL), 0);
    } else if (rc == -EIO) {
        MCHECK_EQ(t->outcome, OUT_FAIL);
        MCHECK_ERR(tide_future_result(t->fut, NULL), -EIO);
    } else {
        MCHECK_ERR(rc, -ECANCELED);
    }
}

/* Only -ECANCELED goes on up; what a worker handles becomes 0. */
static int cancelled_or_0(int rc)
{
    return rc == -ECANCELED ? rc : 0;
}

/* ---- sleeping, locks, semaphores ---------------------------------------- */

static int op_sleep(double d)
{
    double t0 = now();
    int rc = tide_sleep(d);

    if (rc == 0)
        MCHECK(now() >= t0 + d - EARLY);
    else
        MCHECK_ERR(rc, -ECANCELED);
    return rc;
}

/* Hold for a while; a sleep cut short still releases what is held. */
static int hold(void)
{
    return rnd(3) ? op_sleep(rnd_delay()) : 0;
}

static int op_lock(void)
{
    int rc = tide_lock_acquire(m.lock);

    if (rc < 0) {
        MCHECK_ERR(rc, -ECANCELED);
        return rc;
    }
    MCHECK(tide_lock_locked(m.lock));
    MCHECK_EQ(++m.lock_holders, 1);
    m.c.lock_entries++;
    rc = hold();
    MCHECK_EQ(m.lock_holders--, 1);
    MCHECK_EQ(tide_lock_release(m.lock), 0);
    return rc;
}

static void check_sem(void)
{
    MCHECK(m.sem_holders <= m.permits);
    MCHECK(tide_semaphore_value(m.sem) + m.sem_holders <= m.permits);
}

static int op_sem(void)
{
    int rc = tide_semaphore_acquire(m.sem);

    if (rc < 0) {
        MCHECK_ERR(rc, -ECANCELED);
        return rc;
    }
    m.sem_holders++;
    m.c.sem_entries++;
    check_sem();
    rc = hold();
    check_sem();
    m.sem_holders--;
    MCHECK_EQ(tide_semaphore_release(m.sem), 0);
    check_sem();
    return rc;
}

/* ---- the queue ---------------------------------------------------------- */

/* Items whose put returned 0 are surely in the queue until gotten; those
 * whose put is under way may be (a blocked put's item goes in before the
 * putter runs again). */
static void check_queue(void)
{
    long size = (long)tide_queue_size(m.q);

    MCHECK(m.maxsize == 0 || size <= (long)m.maxsize);
    if (size < m.surely_in || size > m.surely_in + m.maybe_in)
        model_fail(__LINE__,
                   "queue size %ld, but %ld item(s) surely in "
                   "it and %ld maybe",
                   size, m.surely_in, m.maybe_in);
}

/* Put a fresh item; callable from a callback when nowait. */
static int op_put(bool nowait)
{
    if (m.next_item == MAX_ITEMS)
        return 0;
    int id = m.next_item++;
    m.state[id] = ITEM_PENDING;
    m.maybe_in++;
    int rc = nowait ? tide_queue_put_nowait(m.q, IPTR(id + 1))
                    : tide_queue_put(m.q, IPTR(id + 1));
    m.maybe_in -= !m.got[id];
    if (rc == 0 && m.q_dropped && !m.got[id]) {
        /* Its item went in before an immediate shutdown dropped it. */
        m.state[id] = ITEM_DROPPED;
        m.c.items++;
    } else if (rc == 0) {
        m.state[id] = ITEM_PUT;
        m.surely_in += !m.got[id];
        m.c.items++;
    } else {
        MCHECK(rc == -ECANCELED || rc == -ESHUTDOWN ||
               (nowait && rc == -EAGAIN));
        if (m.got[id])
            model_fail(__LINE__,
                       "item %d was gotten, but its put "
                       "returned %d",
                       id, rc);
        m.state[id] = ITEM_NOT_PUT;
    }
    check_queue();
    return cancelled_or_0(rc);
}

static void got_item(void *item)
{
    long id = (long)PINT(item) - 1;

    MCHECK(id >= 0 && id < m.next_item);
    if (m.got[id])
        model_fail(__LINE__, "item %ld gotten twice", id);
    if (m.state[id] == ITEM_NOT_PUT)
        model_fail(__LINE__, "item %ld gotten, but its put failed", id);
    if (m.state[id] == ITEM_DROPPED)
        model_fail(__LINE__, "item %ld gotten after a shutdown dropped it",
                   id);
    m.got[id] = 1;
    if (m.state[id] == ITEM_PUT)
        m.surely_in--;
    else
        m.maybe_in--;
    m.c.gotten++;
    MCHECK_EQ(tide_queue_task_done(m.q), 0);
}

static int op_get(bool nowait)
{
    void *item = NULL;
    int rc = nowait ? tide_queue_get_nowait(m.q, &item)
                    : tide_queue_get(m.q, &item);

    if (rc == 0)
        got_item(item);
    else
        MCHECK(rc == -ECANCELED || rc == -ESHUTDOWN ||
               (nowait && rc == -EAGAIN));
    check_queue();
    return cancelled_or_0(rc);
}

static int op_join(void)
{
    int rc = tide_queue_join(m.q);

    MCHECK(rc == 0 || rc == -ECANCELED);
    return rc;
}

/* ---- event, condition, barrier ---------------------------------------- */

static void event_set(void)
{
    if (!tide_event_is_set(m.ev))
        m.ev_sets++;
    MCHECK_EQ(tide_event_set(m.ev), 0);
}

static int op_event_wait(void)
{
    unsigned long sets = m.ev_sets;
    bool was_set = tide_event_is_set(m.ev);
    int rc = tide_event_wait(m.ev);

    if (rc == 0)
        MCHECK(was_set || m.ev_sets > sets);
    else
        MCHECK_ERR(rc, -ECANCELED);
    return rc;
}

static int cond_enter(void)
{
    int rc = tide_condition_acquire(m.cond);

    if (rc < 0) {
        MCHECK_ERR(rc, -ECANCELED);
        return rc;
    }
    MCHECK(tide_condition_locked(m.cond));
    MCHECK_EQ(++*m.cond_holders, 1);
    return 0;
}

static void cond_leave(void)
{
    MCHECK_EQ((*m.cond_holders)--, 1);
    MCHECK_EQ(tide_condition_release(m.cond), 0);
}

static int op_cond_produce(void)
{
    int rc = cond_enter();

    if (rc < 0)
        return rc;
    m.tokens++;
    m.produced++;
    rc = rnd(3) ? tide_condition_notify(m.cond, 1 + rnd(2))
                : tide_condition_notify_all(m.cond);
    MCHECK(rc >= 0);
    cond_leave();
    return 0;
}

static bool have_token(void *arg)
{
    (void)arg;
    return m.tokens > 0;
}

static int op_cond_consume(void)
{
    int rc = cond_enter();
    bool pred = rnd(2);

    if (rc < 0)
        return rc;
    (*m.cond_holders)--; /* the wait lets go of the lock */
    rc = pred ? tide_condition_wait_for(m.cond, have_token, NULL)
              : tide_condition_wait(m.cond);
    MCHECK(tide_condition_locked(m.cond)); /* held again, whatever rc */
    MCHECK_EQ(++*m.cond_holders, 1);
    if (rc == 0 && pred)
        MCHECK(m.tokens > 0);
    else if (rc != 0)
        MCHECK_ERR(rc, -ECANCELED);
    if (rc == 0 && m.tokens > 0) {
        m.tokens--;
        m.consumed++;
        m.c.cond_tokens++;
    }
    cond_leave();
    return rc;
}

static int op_barrier(void)
{
    unsigned index = ~0u;
    int rc = tide_barrier_wait(m.bar, &index);

    if (rc == 0)
        MCHECK(index < m.parties);
    else if (rc == -EPIPE && rnd(2))
        MCHECK_EQ(tide_barrier_reset(m.bar), 0);
    else if (rc != -EPIPE)
        MCHECK_ERR(rc, -ECANCELED);
    return cancelled_or_0(rc);
}

/* Break the barrier: its waiters get -EPIPE, and so does every later
 * wait until a party that saw -EPIPE resets it (op_barrier). */
static void op_barrier_abort(void)
{
    MCHECK_EQ(tide_barrier_abort(m.bar), 0);
}

/* In one seed out of four, shut the queue down before the horizon,
 * gracefully or at once (Python 3.13): from then on every put fails
 * with -ESHUTDOWN; gets drain what is left (graceful) or fail at once
 * (immediate: the items left are dropped, counted as done for join). */
static void op_queue_shutdown(void)
{
    if (!m.may_shut_q || rnd(8))
        return;
    bool immediate = rnd(2);
    MCHECK_EQ(tide_queue_shutdown(m.q, immediate), 0);
    MCHECK_ERR(tide_queue_put_nowait(m.q, IPTR(MAX_ITEMS + 1)), -ESHUTDOWN);
    if (!immediate || m.q_dropped)
        return;
    m.q_dropped = true;
    for (int id = 0; id < m.next_item; id++)
        if (m.state[id] == ITEM_PUT && !m.got[id])
            m.state[id] = ITEM_DROPPED;
    m.surely_in = 0;
    MCHECK_EQ(tide_queue_size(m.q), 0);
    void *item;
    MCHECK_ERR(tide_queue_get_nowait(m.q, &item), -ESHUTDOWN);
}

/* ---- waiting for other tasks ------------------------------------------- */

static int op_await(struct worker *w)
{
    struct worker *t = pick_later(w);
    void *v = NULL;

    if (!t)
        return 0;
    int rc = tide_await(t->fut, &v);
    check_awaited(t, rc, v);
    return cancelled_or_0(rc);
}

static int op_wait_for(struct worker *w)
{
    struct worker *t = pick_later(w);
    double limit = rnd_limit(), t0 = now();
    void *v = NULL;

    if (!t)
        return 0;
    int rc = tide_wait_for(t->fut, limit, &v);
    if (rc == -ETIMEDOUT) {
        MCHECK(tide_future_done(t->fut)); /* waited until it finished */
        MCHECK(now() >= t0 + limit - EARLY);
        m.c.etimedout++;
        return 0;
    }
    check_awaited(t, rc, v);
    return cancelled_or_0(rc);
}

/* Wait for a shield of a task, with or without a time limit. */
static int op_shield(struct worker *w)
{
    struct worker *t = pick_later(w);
    void *v = NULL;

    if (!t)
        return 0;
    tide_future *sh = tide_shield(t->fut);
    MCHECK(sh != NULL);
    int rc = rnd(2) ? tide_wait_for(sh, rnd_limit(), &v) : tide_await(sh, &v);
    MCHECK(tide_future_done(sh));
    if (rc == 0 || rc == -EIO)
        check_awaited(t, rc, v);
    else if (rc == -ETIMEDOUT)
        m.c.etimedout++;
    else
        MCHECK_ERR(rc, -ECANCELED);
    tide_future_release(sh);
    return cancelled_or_0(rc);
}

static int op_gather(struct worker *w)
{
    tide_future *fs[MAX_FANOUT];
    struct worker *ws[MAX_FANOUT];
    size_t n = pick_distinct(w, fs, ws, 1 + rnd(MAX_FANOUT));
    unsigned flags = rnd(2) ? TIDE_RETURN_ERRORS : 0;
    void *res = NULL;

    if (n == 0)
        return 0;
    tide_future *g = tide_gather(fs, n, flags);
    MCHECK(g != NULL);
    int rc = tide_await(g, &res);
    if (rc == 0) {
        void **slots = res;
        for (size_t i = 0; i < n; i++) {
            void *v = NULL;
            int r = tide_future_result(fs[i], &v);
            MCHECK(tide_future_done(fs[i]));
            if (r == 0)
                check_awaited(ws[i], 0, v);
            MCHECK(flags || r == 0);
            MCHECK(slots[i] == (r == 0 ? v : NULL));
        }
    } else if (rc == -EIO) {
        bool failed = false;
        for (size_t i = 0; i < n; i++)
            failed |= tide_future_result(fs[i], NULL) == -EIO;
        MCHECK(failed);
        MCHECK(!flags);
    } else {
        MCHECK_ERR(rc, -ECANCELED);
    }
    tide_future_release(g);
    return cancelled_or_0(rc);
}

static int op_wait(struct worker *w)
{
    tide_future *fs[MAX_FANOUT], *done[MAX_FANOUT], *pending[MAX_FANOUT];
    struct worker *ws[MAX_FANOUT];
    size_t n = pick_distinct(w, fs, ws, 1 + rnd(MAX_FANOUT));
    size_t nd = 99, np = 99;
    int how = 1 + (int)rnd(3);
    double limit = rnd_limit(), t0 = now();

    if (n == 0)
        return 0;
    int rc = tide_wait(fs, n, how, limit, done, &nd, pending, &np);
    if (rc < 0) {
        MCHECK_ERR(rc, -ECANCELED);
        return rc;
    }
    MCHECK_EQ(nd + np, n);
    for (size_t i = 0; i < nd; i++)
        MCHECK(tide_future_done(done[i]));
    for (size_t i = 0; i < np; i++)
        MCHECK(!tide_future_done(pending[i]));
    bool met = how == TIDE_FIRST_COMPLETED ? nd > 0 : np == 0;
    if (how == TIDE_FIRST_EXCEPTION)
        for (size_t i = 0; i < nd; i++)
            met |= tide_future_result(done[i], NULL) == -EIO;
    if (!met)
        MCHECK(now() >= t0 + limit - EARLY); /* only a timeout stops it */
    return 0;
}

static int op_as_completed(struct worker *w)
{
    tide_future *fs[MAX_FANOUT], *f = NULL;
    struct worker *ws[MAX_FANOUT];
    size_t n = pick_distinct(w, fs, ws, 1 + rnd(MAX_FANOUT)), seen = 0;

    if (n == 0)
        return 0;
    tide_as_completed *it = tide_as_completed_new(fs, n);
    MCHECK(it != NULL);
    int rc;
    while ((rc = tide_as_completed_next(it, &f)) == 1) {
        MCHECK(tide_future_done(f));
        seen++;
    }
    if (rc == 0)
        MCHECK_EQ(seen, n);
    else
        MCHECK_ERR(rc, -ECANCELED);
    tide_as_completed_free(it);
    return rc;
}

/* ---- scopes and groups ------------------------------------------------ */

static int leaf_op(struct worker *w, int depth);

static int op_scope(struct worker *w, int depth)
{
    double delay = rnd_limit(), t0 = now();
    tide_timeout *t = tide_timeout_begin(delay);

    MCHECK(t != NULL);
    int inner = leaf_op(w, depth + 1);
    bool expired = tide_timeout_expired(t);
    int rc = tide_timeout_end(t, inner);
    if (expired)
        MCHECK(now() >= t0 + delay - EARLY);
    if (rc == -ETIMEDOUT) {
        MCHECK(expired);
        MCHECK_ERR(inner, -ECANCELED);
        m.c.etimedout++;
        return 0;
    }
    MCHECK_EQ(rc, inner);
    return rc;
}

static int op_group(struct worker *w)
{
    tide_task_group *g = tide_task_group_new();
    struct worker *kids[3];
    int nk = 0;

    MCHECK(g != NULL);
    for (int want = 1 + (int)rnd(3); nk < want; nk++) {
        kids[nk] = spawn_worker(1 + (int)rnd(5), g);
        if (!kids[nk])
            break;
    }
    int block = leaf_op(w, 1);
    int rc = tide_task_group_end(g, block);
    size_t failed = 0;
    for (int i = 0; i < nk; i++) {
        MCHECK(tide_future_done(kids[i]->fut)); /* ending waits for all */
        int r = tide_future_result(kids[i]->fut, NULL);
        MCHECK(r == 0 || r == -EIO || r == -ECANCELED);
        failed += r == -EIO;
    }
    int errs[8];
    size_t nerrs = tide_task_group_errors(g, errs, 8);
    MCHECK_EQ(nerrs, failed); /* every child failure kept */
    for (size_t i = 0; i < nerrs; i++)
        MCHECK_ERR(errs[i], -EIO);
    if (failed)
        MCHECK(rc != 0);
    if (rc == 0) /* a block's -ECANCELED not from a cancel of the owner
                  * (an awaited task's outcome) is not a failure */
        MCHECK(block == 0 || block == -ECANCELED);
    MCHECK(rc == 0 || rc == -EIO || rc == -ECANCELED || rc == block);
    tide_task_group_free(g);
    return cancelled_or_0(rc);
}

/* ---- cancelling, callbacks --------------------------------------------- */

static void cancel_random(void)
{
    if (m.nworkers == 0)
        return;
    tide_future *f = m.w[rnd((unsigned)m.nworkers)].fut;
    if (f && tide_future_cancel(f))
        m.c.cancels++;
}

static void on_later(void *arg)
{
    struct handle_slot *s = &m.hs[PINT(arg)];

    MCHECK(!s->cancelled);
    MCHECK(!s->ran);
    s->ran = true;
    m.c.callbacks++;
    switch (s->action) {
    case CB_CANCEL:
        cancel_random();
        break;
    case CB_EVENT_SET:
        event_set();
        break;
    case CB_PUT:
        op_put(true);
        break;
    case CB_GET:
        op_get(true);
        break;
    case CB_LOCK: /* outside a task: only when free, and let go at once */
        if (!tide_lock_locked(m.lock)) {
            MCHECK_EQ(tide_lock_acquire(m.lock), 0);
            MCHECK_EQ(++m.lock_holders, 1);
            MCHECK_EQ(m.lock_holders--, 1);
            MCHECK_EQ(tide_lock_release(m.lock), 0);
        }
        break;
    case CB_N:
        break;
    }
}

static void schedule_callback(double delay, enum cb_action action)
{
    if (m.nhandles == MAX_HANDLES)
        return;
    struct handle_slot *s = &m.hs[m.nhandles];
    *s = (struct handle_slot){.action = action};
    s->h = tide_call_later(m.loop, delay, on_later, IPTR(m.nhandles));
    MCHECK(s->h != 0);
    m.nhandles++;
}

static void op_handle_cancel(void)
{
    if (m.nhandles == 0)
        return;
    struct handle_slot *s = &m.hs[rnd((unsigned)m.nhandles)];
    if (tide_handle_cancel(m.loop, s->h)) {
        MCHECK(!s->ran && !s->cancelled);
        s->cancelled = true;
    } else {
        MCHECK(s->ran || s->cancelled);
    }
}

/* ---- choosing operations ------------------------------------------------ */

enum op {
    OP_SLEEP,
    OP_LOCK,
    OP_SEM,
    OP_PUT,
    OP_GET,
    OP_JOIN,
    OP_EVENT_WAIT,
    OP_COND_CONSUME,
    OP_BARRIER,
    OP_AWAIT,
    OP_WAIT_FOR,
    OP_SCOPE, /* leaves */
    OP_PUT_NOWAIT,
    OP_GET_NOWAIT,
    OP_EVENT_SET,
    OP_EVENT_CLEAR,
    OP_COND_PRODUCE,
    OP_SHIELD,
    OP_GATHER,
    OP_WAIT,
    OP_AS_COMPLETED,
    OP_GROUP,
    OP_SPAWN,
    OP_CANCEL,
    OP_CANCEL_SELF,
    OP_CALL_LATER,
    OP_HANDLE_CANCEL,
    OP_FAIL,
    OP_BARRIER_ABORT,
    OP_QUEUE_SHUTDOWN,
    OP_N
};
#define N_LEAVES (OP_SCOPE + 1)

static const unsigned weight[OP_N] = {
    [OP_SLEEP] = 10,      [OP_LOCK] = 10,         [OP_SEM] = 8,
    [OP_PUT] = 10,        [OP_GET] = 10,          [OP_JOIN] = 1,
    [OP_EVENT_WAIT] = 4,  [OP_COND_CONSUME] = 4,  [OP_BARRIER] = 2,
    [OP_AWAIT] = 4,       [OP_WAIT_FOR] = 4,      [OP_SCOPE] = 6,
    [OP_PUT_NOWAIT] = 3,  [OP_GET_NOWAIT] = 3,    [OP_EVENT_SET] = 3,
    [OP_EVENT_CLEAR] = 2, [OP_COND_PRODUCE] = 5,  [OP_SHIELD] = 3,
    [OP_GATHER] = 3,      [OP_WAIT] = 3,          [OP_AS_COMPLETED] = 2,
    [OP_GROUP] = 2,       [OP_SPAWN] = 3,         [OP_CANCEL] = 4,
    [OP_CANCEL_SELF] = 1, [OP_CALL_LATER] = 3,    [OP_HANDLE_CANCEL] = 2,
    [OP_FAIL] = 1,        [OP_BARRIER_ABORT] = 1, [OP_QUEUE_SHUTDOWN] = 1,
};

static enum op pick_op(int n)
{
    unsigned sum = 0;

    for (int i = 0; i < n; i++)
        sum += weight[i];
    unsigned r = rnd(sum);
    for (int i = 0; i < n; i++) {
        if (r < weight[i])
            return (enum op)i;
        r -= weight[i];
    }
    return OP_SLEEP;
}

/* One operation. Returns 0, -ECANCELED, or -EIO to fail on purpose. */
static int run_op(struct worker *w, enum op op, int depth)
{
    m.c.ops++;
    switch (op) {
    case OP_SLEEP:
        return op_sleep(rnd_delay());
    case OP_LOCK:
        return op_lock();
    case OP_SEM:
        return op_sem();
    case OP_PUT:
        return op_put(false);
    case OP_GET:
        return op_get(false);
    case OP_JOIN:
        return op_join();
    case OP_EVENT_WAIT:
        return op_event_wait();
    case OP_COND_CONSUME:
        return op_cond_consume();
    case OP_BARRIER:
        return op_barrier();
    case OP_AWAIT:
        return op_await(w);
    case OP_WAIT_FOR:
        return op_wait_for(w);
    case OP_SCOPE:
        return depth < 3 ? op_scope(w, depth) : op_sleep(rnd_delay());
    case OP_PUT_NOWAIT:
        return op_put(true);
    case OP_GET_NOWAIT:
        return op_get(true);
    case OP_EVENT_SET:
        event_set();
        return 0;
    case OP_EVENT_CLEAR:
        MCHECK_EQ(tide_event_clear(m.ev), 0);
        return 0;
    case OP_COND_PRODUCE:
        return op_cond_produce();
    case OP_SHIELD:
        return op_shield(w);
    case OP_GATHER:
        return op_gather(w);
    case OP_WAIT:
        return op_wait(w);
    case OP_AS_COMPLETED:
        return op_as_completed(w);
    case OP_GROUP:
        return op_group(w);
    case OP_SPAWN:
        spawn_worker(1 + (int)rnd((unsigned)w->budget / 2 + 1), NULL);
        return 0;
    case OP_CANCEL:
        cancel_random();
        return 0;
    case OP_CANCEL_SELF:
        tide_future_cancel(tide_current_task());
        m.c.cancels++;
        return 0;
    case OP_CALL_LATER: {
        double delay = rnd_delay(); /* drawn first on every compiler */
        schedule_callback(delay, (enum cb_action)rnd(CB_N));
        return 0;
    }
    case OP_HANDLE_CANCEL:
        op_handle_cancel();
        return 0;
    case OP_FAIL:
        return -EIO;
    case OP_BARRIER_ABORT:
        op_barrier_abort();
        return 0;
    case OP_QUEUE_SHUTDOWN:
        op_queue_shutdown();
        return 0;
    case OP_N:
        break;
    }
    return 0;
}

/* An operation that can block, as the body of a scope or a group. */
static int leaf_op(struct worker *w, int depth)
{
    return run_op(w, pick_op(N_LEAVES), depth);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    w->started = true;
    for (int i = 0; i < w->budget && !m.stopping; i++) {
        int rc = run_op(w, pick_op(OP_N), 0);
        if (rc == -EIO) {
            w->outcome = OUT_FAIL;
            w->ended = true;
            return tide_fail(-EIO);
        }
        if (rc == 0)
            continue;
        MCHECK_ERR(rc, -ECANCELED);
        tide_future *self = tide_current_task();
        if (tide_task_cancelling(self) == 0) {
            m.c.foreign++; /* an awaited task's outcome, not a cancel of
                            * this one (asyncio tells them apart so too) */
            continue;
        }
        m.c.ecanceled++;
        if (!m.stopping && rnd(2) == 0) {
            w->swallowed++; /* clean up and go on, as a body may */
            m.c.swallowed++;
            if (rnd(2))
                tide_task_uncancel(self);
            continue;
        }
        w->outcome = OUT_CANCEL;
        w->ended = true;
        return tide_fail(-ECANCELED);
    }
    w->outcome = OUT_VALUE;
    w->ended = true;
    return value_of(w);
}

/* The priority queue's order: the newest item first. */
static int by_id(const void *a, const void *b)
{
    intptr_t x = (intptr_t)a, y = (intptr_t)b;

    return (x < y) - (x > y);
}

/* ---- the driver and one seed ------------------------------------------- */

/* The unfinished workers into m.snap; returns how many. */
static size_t unfinished(void)
{
    size_t n = 0;

    for (int i = 0; i < m.nworkers; i++)
        if (m.w[i].fut && !tide_future_done(m.w[i].fut))
            m.snap[n++] = m.w[i].fut;
    return n;
}

static void *driver_main(void *arg)
{
    (void)arg;
    m.t0 = now();
    m.horizon += m.t0; /* the virtual clock starts at the real one */
    for (int n = 4 + (int)rnd(12); n > 0; n--) {
        double delay = rnd(1000) * 0.001 * (m.horizon - now());
        schedule_callback(delay,
                          rnd(2) ? CB_CANCEL : (enum cb_action)rnd(CB_N));
    }
    /* Start workers in waves until the horizon, and let them end by
     * themselves meanwhile. */
    size_t n;
    while (now() < m.horizon) {
        for (int k = 2 + (int)rnd(6); k > 0; k--)
            spawn_worker(10 + (int)rnd(60), NULL);
        double until = now() + 0.05 + 0.001 * rnd(200);
        if (until > m.horizon)
            until = m.horizon;
        if ((n = unfinished()) > 0)
            MCHECK_EQ(tide_wait(m.snap, n, TIDE_ALL_COMPLETED, until - now(),
                                NULL, NULL, NULL, NULL),
                      0);
        else
            MCHECK_EQ(op_sleep(until - now()), 0);
    }
    m.stopping = true;
    m.c.at_horizon += (long)unfinished();
    event_set();
    if (rnd(2))
        MCHECK_EQ(tide_queue_shutdown(m.q, false), 0);
    if (m.leave_to_close)
        return IPTR(42);
    /* Cancel what is left, again and again, until it has ended. */
    for (int round = 0; (n = unfinished()) > 0; round++) {
        if (round == 100)
            model_fail(__LINE__,
                       "%zu task(s) still running after 100 "
                       "rounds of cancelling",
                       n);
        for (size_t i = 0; i < n; i++)
            tide_future_cancel(m.snap[i]);
        MCHECK_EQ(tide_wait(m.snap, n, TIDE_ALL_COMPLETED, 0.01, NULL, NULL,
                            NULL, NULL),
                  0);
    }
    return IPTR(42);
}

/* What a finished worker's future holds must match what its body did. */
static void check_worker(const struct worker *w)
{
    void *v = NULL;

    if (!w->fut)
        return;
    MCHECK(tide_future_done(w->fut));
    MCHECK(w->started == w->ended); /* no body abandoned half way */
    int rc = tide_future_result(w->fut, &v);
    MCHECK_ERR(tide_future_cancelled(w->fut), rc == -ECANCELED);
    if (rc == 0) {
        MCHECK_EQ(w->outcome, OUT_VALUE);
        MCHECK(v == value_of(w));
    } else if (rc == -EIO) {
        MCHECK_EQ(w->outcome, OUT_FAIL);
    } else {
        /* Cancelled: before it started, by its own choice, or (a request
         * still pending when the body returned) whatever it returned. */
        MCHECK_ERR(rc, -ECANCELED);
    }
}

static void run_seed(uint64_t seed, enum mode mode, const char *test)
{
    memset(&m, 0, sizeof m);
    m.rng = seed;
    m.mode = mode;
    snprintf(replay, sizeof replay,
             "model: seed %llu failed; replay: "
             "TIDE_MODEL_SEED=%llu TIDE_MODEL_SEEDS=1 tests/test_model %s\n",
             (unsigned long long)seed, (unsigned long long)seed, test);
    if (getenv("TIDE_MODEL_VERBOSE"))
        fprintf(stderr, "model: %s seed %llu\n", test,
                (unsigned long long)seed);
    alarm((unsigned)(2 * harness_timeout_mult()) + 1);

    m.loop = tide_loop_new();
    MCHECK(m.loop != NULL);
    MCHECK_EQ(tide_loop_set_virtual_clock(m.loop, true), 0);
    if (mode == MODE_COMPACT)
        MCHECK_EQ(tide_loop_set_compact_tasks(m.loop, true), 0);
    m.horizon = 1.0 + rnd(3);
    m.leave_to_close = rnd(4) == 0;
    m.may_shut_q = rnd(4) == 0;
    m.q_dropped = false;
    m.lock = tide_lock_new();
    m.permits = 1 + rnd(3);
    m.sem = tide_bounded_semaphore_new(m.permits);
    m.maxsize = rnd(5); /* 0: unbounded */
    switch (rnd(3)) {
    case 0:
        m.q = tide_queue_new(m.maxsize);
        break;
    case 1:
        m.q = tide_queue_new_lifo(m.maxsize);
        break;
    default:
        m.q = tide_queue_new_priority(m.maxsize, by_id);
        break;
    }
    m.ev = tide_event_new();
    bool shared = rnd(2); /* the condition on m.lock, or on its own */
    m.cond = tide_condition_new(shared ? m.lock : NULL);
    m.cond_holders = shared ? &m.lock_holders : &m.own_cond_holders;
    m.parties = 2 + rnd(2);
    m.bar = tide_barrier_new(m.parties);
    MCHECK(m.lock && m.sem && m.q && m.ev && m.cond && m.bar);

    tide_task_options o = {.compact = mode == MODE_COMPACT};
    tide_future *drv = tide_create_task_ex(m.loop, driver_main, NULL, &o);
    MCHECK(drv != NULL);
    void *v = NULL;
    MCHECK_EQ(tide_run_until_complete(m.loop, drv, &v), 0);
    MCHECK(v == IPTR(42));
    tide_future_release(drv);
    if (!m.leave_to_close) {
        tide_loop_stats st;
        MCHECK_EQ(tide_loop_get_stats(m.loop, &st), 0);
        MCHECK_EQ(st.tasks, 0);
        MCHECK_EQ(unfinished(), 0);
    } else {
        m.c.left_to_close += (long)unfinished();
    }
    MCHECK_EQ(tide_loop_close(m.loop), 0);
    MCHECK_EQ(unfinished(), 0); /* close ends every task */

    /* Nothing held, nothing lost. */
    MCHECK(!tide_lock_locked(m.lock));
    MCHECK_EQ(m.lock_holders, 0);
    MCHECK_EQ(m.sem_holders, 0);
    MCHECK_EQ(tide_semaphore_value(m.sem), m.permits);
    MCHECK(!tide_condition_locked(m.cond));
    MCHECK_EQ(*m.cond_holders, 0);
    MCHECK_EQ(m.tokens, m.produced - m.consumed);
    MCHECK(m.tokens >= 0);
    void *item;
    while (tide_queue_get_nowait(m.q, &item) == 0)
        got_item(item);
    MCHECK(tide_queue_empty(m.q));
    MCHECK_EQ(tide_queue_join(m.q), 0); /* every item marked done */
    MCHECK_EQ(m.surely_in, 0);
    MCHECK_EQ(m.maybe_in, 0);
    for (int id = 0; id < m.next_item; id++) {
        if (m.state[id] == ITEM_PUT && !m.got[id])
            model_fail(__LINE__, "item %d was put, never gotten", id);
        MCHECK(m.state[id] == ITEM_PUT || m.state[id] == ITEM_NOT_PUT ||
               (m.q_dropped && m.state[id] == ITEM_DROPPED));
    }
    for (int i = 0; i < m.nhandles; i++)
        MCHECK(!(m.hs[i].ran && m.hs[i].cancelled));
    for (int i = 0; i < m.nworkers; i++) {
        check_worker(&m.w[i]);
        tide_future_release(m.w[i].fut);
    }
    tide_barrier_free(m.bar);
    tide_condition_free(m.cond);
    tide_event_free(m.ev);
    tide_queue_free(m.q);
    tide_semaphore_free(m.sem);
    tide_lock_free(m.lock);
    LEAK_GATE();
    alarm(0);

    if (getenv("TIDE_MODEL_VERBOSE"))
        fprintf(stderr,
                "model:   %ld ops, %ld tasks, %ld items, %ld "
                "cancels, %ld unfinished at the horizon\n",
                m.c.ops, m.c.tasks, m.c.items, m.c.cancels, m.c.at_horizon);
    m.c.seeds = 1;
    long *sum = (long *)&total;
    const long *add = (const long *)&m.c;
    for (size_t i = 0; i < sizeof total / sizeof(long); i++)
        sum[i] += add[i];
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);

    return s && *s ? strtoull(s, NULL, 0) : dflt;
}

static void run_model(enum mode mode, const char *test)
{
    uint64_t first = env_u64("TIDE_MODEL_SEED", 1);
    /* TSan makes every switch costly, and this test has no threads. */
    uint64_t n = env_u64("TIDE_MODEL_SEEDS", HARNESS_TSAN ? 4 : 20);

    signal(SIGALRM, on_alarm);
#if HARNESS_ASAN
    __sanitizer_set_death_callback(say_replay);
#endif
    for (uint64_t s = first; s < first + n; s++)
        run_seed(s, mode, test);
    printf("model %s: %ld seeds from %llu: %ld ops, %ld tasks (%ld left "
           "to loop_close), %ld items put (%ld gotten), %ld lock and %ld "
           "semaphore holds, %ld condition tokens, %ld cancels, %ld "
           "-ECANCELED (%ld swallowed, %ld of awaited tasks), %ld "
           "timeouts, %ld callbacks; %ld tasks unfinished at the horizon\n",
           test, total.seeds, (unsigned long long)first, total.ops,
           total.tasks, total.left_to_close, total.items, total.gotten,
           total.lock_entries, total.sem_entries, total.cond_tokens,
           total.cancels, total.ecanceled, total.swallowed, total.foreign,
           total.etimedout, total.callbacks, total.at_horizon);
}

TEST(model_plain)
{
    run_model(MODE_PLAIN, "model_plain");
}
TEST(model_mixed)
{
    run_model(MODE_MIXED, "model_mixed");
}
TEST(model_compact)
{
    run_model(MODE_COMPACT, "model_compact");
}
