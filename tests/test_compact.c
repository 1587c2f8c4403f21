/* Compact tasks (src/core/compact.c): one shared stack, frames copied away
 * while a task is suspended and put back at the same addresses.
 *
 * The hostile part is interleaving: many compact tasks with live locals
 * of different depths suspend and resume in every order (sleeps, yields,
 * every kind of wait, cancellation), beside tasks with stacks of their
 * own, and each checks its locals after every resumption. The rest pins
 * the rules: the memory they hold, nested runs on a borrowed stack, eager
 * starts, bad options, loop close, out of memory, overflow. The whole
 * suite also runs with TIDE_COMPACT=1 (every task compact) in CI.
 */
#include "harness.h"
#include "overflow.h"

#include "base/alloc.h"
#include "stack/stack.h"
#include "tide/sync.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static tide_future *spawn(tide_loop *loop, tide_fn fn, void *arg, bool compact)
{
    tide_task_options o = {0};
    o.compact = compact;
    tide_future *t = tide_create_task_ex(loop, fn, arg, &o);
    CHECK_NOT_NULL(t);
    return t;
}

static tide_future *spawn_compact(tide_loop *loop, tide_fn fn, void *arg)
{
    return spawn(loop, fn, arg, true);
}

/* Run t to its end: it must succeed with result `want`. Releases t. */
static void finish_with(tide_loop *loop, tide_future *t, intptr_t want)
{
    void *r = (void *)~(uintptr_t)want;

    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), want);
    tide_future_release(t);
}

/* ---- frames survive ----------------------------------------------------- */

/* Fill `n` bytes of a frame with a pattern of `seed`; check it. */
static void fill(volatile unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 31u + i * 7u);
}

static bool intact(const volatile unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed * 31u + i * 7u))
            return false;
    return true;
}

/* Recurse `depth` frames of 256 bytes each, then suspend `rounds` times
 * in the way `how` picks, checking every frame's bytes after each
 * resumption on the way back up. Returns the number of bad frames. */
static long nest(unsigned seed, int depth, int rounds, int how)
{
    volatile unsigned char frame[256];
    long bad = 0;

    fill(frame, sizeof frame, seed + (unsigned)depth);
    if (depth > 0) {
        bad += nest(seed, depth - 1, rounds, how);
    } else {
        for (int r = 0; r < rounds; r++) {
            int err = how == 0 ? tide_sleep(0) : tide_sleep(0.001 * (r % 3));
            if (err != 0)
                return 1000 + (long)-err;
        }
    }
    if (!intact(frame, sizeof frame, seed + (unsigned)depth))
        bad++;
    return bad;
}

struct nester {
    unsigned seed;
    int depth;
    int rounds;
    int how;
};

static void *nester_main(void *arg)
{
    struct nester *n = arg;
    long bad = nest(n->seed, n->depth, n->rounds, n->how);

    return (void *)(intptr_t)bad;
}

/* Tasks of every depth (compact or not) yield and sleep in every order:
 * no frame of any compact task may change while it is away. */
TEST(frames_survive_interleaving)
{
    enum { N = 60 };
    tide_loop *loop = new_virtual_loop();
    struct nester ns[N];
    tide_future *ts[N];

    for (int i = 0; i < N; i++) {
        ns[i] = (struct nester){.seed = (unsigned)i * 977u,
                                .depth = (i * 7) % 23,
                                .rounds = 5 + i % 4,
                                .how = i % 2};
        ts[i] = spawn(loop, nester_main, &ns[i], i % 5 != 0);
    }
    tide_future *all = tide_gather(ts, N, 0);
    CHECK_EQ(tide_run_until_complete(loop, all, NULL), 0);
    for (int i = 0; i < N; i++) {
        void *bad = (void *)1;
        CHECK_EQ(tide_future_result(ts[i], &bad), 0);
        CHECK_EQ(PINT(bad), 0);
        tide_future_release(ts[i]);
    }
    tide_future_release(all);
    CHECK_EQ(loop_stats(loop).stacks_in_use, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *deep_main(void *arg)
{
    (void)arg;
    /* About 100 KiB of live frames, saved and restored on every yield. */
    return (void *)(intptr_t)nest(42, 400, 3, 0);
}

TEST(deep_frames_are_copied_whole)
{
    tide_loop *loop = tide_loop_new();
    struct nester small = {.seed = 7, .depth = 2, .rounds = 6, .how = 0};
    tide_future *deep = spawn_compact(loop, deep_main, NULL);
    tide_future *other = spawn_compact(loop, nester_main, &small);

    finish_with(loop, deep, 0); /* no bad frame */
    finish_with(loop, other, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- what they hold -------------------------------------------------------
 */

static void *sleep_long(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)tide_sleep(10.0);
}

TEST(sleeping_compact_tasks_share_one_stack)
{
    enum { N = 1000 };
    tide_loop *loop = new_virtual_loop();
    tide_future *ts[N];

    for (int i = 0; i < N; i++)
        ts[i] = spawn_compact(loop, sleep_long, NULL);
    CHECK_EQ(loop_stats(loop).stacks_in_use, 0); /* none started yet */
    run_once(loop);
    tide_loop_stats st = loop_stats(loop);
    CHECK_EQ(st.tasks, N);
    CHECK_EQ(st.timers, N);
    CHECK_EQ(st.stacks_in_use, 1);
    /* All of them, found for all_tasks, though only one is on the stack. */
    CHECK_EQ(tide_all_tasks(loop, NULL, 0), N);
    /* The dump lists each with the bytes its frames take. */
    FILE *f = tmpfile();
    CHECK_NOT_NULL(f);
    CHECK_EQ(tide_loop_dump(loop, fileno(f)), N);
    rewind(f);
    char line[512];
    int compact_lines = 0;
    while (fgets(line, sizeof line, f)) {
        size_t bytes = 0;
        const char *c = strstr(line, " s left, compact, frames ");
        if (strstr(line, "waiting on sleep, ") && c &&
            sscanf(c, " s left, compact, frames %zu", &bytes) == 1 &&
            bytes > 0 && bytes < 4096)
            compact_lines++;
    }
    fclose(f);
    CHECK_EQ(compact_lines, N);
    tide_future *all = tide_gather(ts, N, 0);
    CHECK_EQ(tide_run_until_complete(loop, all, NULL), 0);
    for (int i = 0; i < N; i++)
        tide_future_release(ts[i]);
    tide_future_release(all);
    st = loop_stats(loop);
    CHECK_EQ(st.stacks_in_use, 0); /* the shared stack went back */
    CHECK(st.stacks_pooled >= 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- options -------------------------------------------------------------
 */

static void *return_arg(void *arg)
{
    return arg;
}

TEST(compact_with_a_stack_size_is_einval)
{
    tide_loop *loop = tide_loop_new();
    tide_task_options o = {0};
    o.compact = true;
    o.stack_size = 64 * 1024;
    long live = tide__alloc_live();

    errno = 0;
    CHECK_NULL(tide_create_task_ex(loop, return_arg, NULL, &o));
    CHECK_ERR(errno, EINVAL);
    CHECK_EQ(tide__alloc_live(), live);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *hold_and_sleep(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)tide_sleep(1.0);
}

TEST(loop_default_makes_tasks_compact_except_sized_ones)
{
    tide_loop *loop = new_virtual_loop();
    CHECK(!tide_loop_get_compact_tasks(loop) || getenv("TIDE_COMPACT"));
    CHECK_EQ(tide_loop_set_compact_tasks(loop, true), 0);
    CHECK(tide_loop_get_compact_tasks(loop));

    tide_task_options sized = {0};
    sized.stack_size = 64 * 1024;
    tide_future *ts[5];
    for (int i = 0; i < 4; i++)
        ts[i] = tide_create_task(loop, hold_and_sleep, NULL);
    ts[4] = tide_create_task_ex(loop, hold_and_sleep, NULL, &sized);
    CHECK_NOT_NULL(ts[4]);
    run_once(loop);
    /* Four compact tasks on the shared stack, the sized one on its own. */
    CHECK_EQ(loop_stats(loop).stacks_in_use, 2);
    tide_future *all = tide_gather(ts, 5, 0);
    CHECK_EQ(tide_run_until_complete(loop, all, NULL), 0);
    for (int i = 0; i < 5; i++)
        tide_future_release(ts[i]);
    tide_future_release(all);

    CHECK_EQ(tide_loop_set_compact_tasks(loop, false), 0);
    CHECK(!tide_loop_get_compact_tasks(loop));
    tide_future *keep = tide_future_new(loop); /* keeps the loop record */
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_ERR(tide_loop_set_compact_tasks(loop, true), -EINVAL);
    tide_future_release(keep);
    LEAK_GATE();
}

/* ---- every wait ------------------------------------------------------------
 */

struct waits {
    tide_lock *lock;
    tide_event *ev;
    tide_condition *cond;
    tide_semaphore *sem;
    tide_barrier *bar;
    tide_queue *q;
    tide_future *fut;
    int ready; /* condition predicate */
    long sum;  /* queue items taken */
    int failures;
};

static bool cond_ready(void *arg)
{
    return ((struct waits *)arg)->ready != 0;
}

/* One worker: goes through every kind of wait with a frame to check. */
static void *waiter_main(void *arg)
{
    struct waits *w = arg;
    volatile unsigned char frame[300];
    unsigned seed = (unsigned)(uintptr_t)&frame;
    void *item = NULL;
    void *res = NULL;
    int bad = 0;

    fill(frame, sizeof frame, seed);
#define STEP(call)                                         \
    do {                                                   \
        int rc_ = (call);                                  \
        if (rc_ < 0 || !intact(frame, sizeof frame, seed)) \
            bad++;                                         \
    } while (0)
    STEP(tide_lock_acquire(w->lock));
    STEP(tide_sleep(0)); /* others queue on the lock meanwhile */
    STEP(tide_lock_release(w->lock));
    STEP(tide_event_wait(w->ev));
    STEP(tide_semaphore_acquire(w->sem));
    STEP(tide_sleep(0));
    STEP(tide_semaphore_release(w->sem));
    STEP(tide_condition_acquire(w->cond));
    STEP(tide_condition_wait_for(w->cond, cond_ready, w));
    STEP(tide_condition_release(w->cond));
    STEP((int)tide_barrier_wait(w->bar, NULL));
    STEP(tide_queue_get(w->q, &item));
    w->sum += (long)(intptr_t)item;
    STEP(tide_queue_task_done(w->q));
    STEP(tide_await(w->fut, &res));
    STEP(tide_wait_for(w->fut, 1.0, &res));
#undef STEP
    w->failures += bad;
    return NULL;
}

static void *driver_main(void *arg)
{
    struct waits *w = arg;
    int bad = 0;

    bad += tide_sleep(0.01) != 0;
    bad += tide_event_set(w->ev) != 0;
    bad += tide_sleep(0.01) != 0;
    bad += tide_condition_acquire(w->cond) != 0;
    w->ready = 1;
    bad += tide_condition_notify_all(w->cond) < 0;
    bad += tide_condition_release(w->cond) != 0;
    for (int i = 1; i <= 4; i++)
        bad += tide_queue_put(w->q, (void *)(intptr_t)i) != 0;
    bad += tide_queue_join(w->q) != 0;
    bad += tide_sleep(0.01) != 0;
    bad += tide_future_set_result(w->fut, NULL) != 0;
    w->failures += bad;
    return NULL;
}

TEST(every_wait_works_in_compact_tasks)
{
    tide_loop *loop = new_virtual_loop();
    struct waits w = {0};
    w.lock = tide_lock_new();
    w.ev = tide_event_new();
    w.cond = tide_condition_new(NULL);
    w.sem = tide_semaphore_new(1);
    w.bar = tide_barrier_new(4);
    w.q = tide_queue_new(1); /* full after one put: puts wait too */
    w.fut = tide_future_new(loop);
    tide_future *ts[5];

    for (int i = 0; i < 4; i++)
        ts[i] = spawn(loop, waiter_main, &w, i != 3);
    ts[4] = spawn_compact(loop, driver_main, &w);
    tide_future *all = tide_gather(ts, 5, 0);
    CHECK_EQ(tide_run_until_complete(loop, all, NULL), 0);
    CHECK_EQ(w.failures, 0);
    CHECK_EQ(w.sum, 1 + 2 + 3 + 4);
    for (int i = 0; i < 5; i++)
        tide_future_release(ts[i]);
    tide_future_release(all);
    tide_future_release(w.fut);
    tide_queue_free(w.q);
    tide_barrier_free(w.bar);
    tide_semaphore_free(w.sem);
    tide_condition_free(w.cond);
    tide_event_free(w.ev);
    tide_lock_free(w.lock);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* as_completed, wait, task groups and timeout scopes from compact tasks. */
static void *short_sleep(void *arg)
{
    double s = (double)PINT(arg) / 1000.0;
    int err = tide_sleep(s);
    return err ? tide_fail(err) : arg;
}

static void *combine_main(void *arg)
{
    tide_loop *loop = arg;
    volatile unsigned char frame[200];
    long bad = 0;

    fill(frame, sizeof frame, 99);
    tide_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = spawn_compact(loop, short_sleep, IPTR(30 - 10 * i));
    tide_as_completed *it = tide_as_completed_new(fs, 3);
    tide_future *next;
    long order = 0;
    while (tide_as_completed_next(it, &next) == 1) {
        void *r;
        bad += tide_future_result(next, &r) != 0;
        order = order * 100 + PINT(r);
    }
    tide_as_completed_free(it);
    bad += order != 102030;
    bad += !intact(frame, sizeof frame, 99);

    tide_future *g = spawn_compact(loop, short_sleep, IPTR(50));
    size_t nd = 0, np = 0;
    bad +=
        tide_wait(&g, 1, TIDE_ALL_COMPLETED, 0.01, NULL, &nd, NULL, &np) != 0;
    bad += nd != 0 || np != 1;
    bad += !intact(frame, sizeof frame, 99);

    tide_task_group *tg = tide_task_group_new();
    for (int i = 0; i < 3; i++)
        tide_future_release(
            tide_task_group_spawn(tg, short_sleep, IPTR(5), NULL));
    bad += tide_task_group_end(tg, 0) != 0;
    tide_task_group_free(tg);
    bad += !intact(frame, sizeof frame, 99);

    tide_timeout *t = tide_timeout_begin(0.005);
    int err = tide_sleep(1.0);
    bad += tide_timeout_end(t, err) != -ETIMEDOUT;
    bad += !intact(frame, sizeof frame, 99);

    bad += tide_await(g, NULL) != 0;
    tide_future_release(g);
    for (int i = 0; i < 3; i++)
        tide_future_release(fs[i]);
    return (void *)(intptr_t)bad;
}

TEST(combinators_work_in_compact_tasks)
{
    tide_loop *loop = new_virtual_loop();

    finish_with(loop, spawn_compact(loop, combine_main, loop), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- cancellation ----------------------------------------------------------
 */

struct victim {
    int how; /* 0 sleep, 1 await, 2 lock, 3 queue get, 4 yield */
    tide_future *fut;
    tide_lock *lock;
    tide_queue *q;
    int rc;
    bool frame_ok;
};

static void *victim_main(void *arg)
{
    struct victim *v = arg;
    volatile unsigned char frame[128];
    void *item;

    fill(frame, sizeof frame, 5);
    switch (v->how) {
    case 0:
        v->rc = tide_sleep(10.0);
        break;
    case 1:
        v->rc = tide_await(v->fut, NULL);
        break;
    case 2:
        v->rc = tide_lock_acquire(v->lock);
        break;
    case 3:
        v->rc = tide_queue_get(v->q, &item);
        break;
    default:
        for (int i = 0; i < 100 && (v->rc = tide_sleep(0)) == 0; i++)
            ;
        break;
    }
    v->frame_ok = intact(frame, sizeof frame, 5);
    return NULL;
}

TEST(cancel_at_every_kind_of_suspension)
{
    for (int how = 0; how < 5; how++) {
        tide_loop *loop = new_virtual_loop();
        struct victim v = {.how = how, .rc = 1};
        v.fut = tide_future_new(loop);
        v.lock = tide_lock_new();
        v.q = tide_queue_new(0);
        CHECK_EQ(tide_lock_acquire(v.lock), 0); /* held: the victim waits */
        struct nester other = {.seed = 3, .depth = 4, .rounds = 4, .how = 0};
        tide_future *o = spawn_compact(loop, nester_main, &other);
        tide_future *t = spawn_compact(loop, victim_main, &v);
        run_once(loop);
        run_once(loop);
        CHECK(tide_future_cancel(t));
        int err = tide_run_until_complete(loop, t, NULL);
        CHECK_EQ(err, 0); /* the body returned normally */
        CHECK_ERR(v.rc, -ECANCELED);
        CHECK(v.frame_ok);
        void *r = (void *)1;
        CHECK_EQ(tide_run_until_complete(loop, o, &r), 0);
        CHECK_EQ(PINT(r), 0);
        tide_future_release(t);
        tide_future_release(o);
        tide_future_release(v.fut);
        tide_queue_free(v.q);
        tide_lock_free(v.lock);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}

static void *cleanup_on_cancel(void *arg)
{
    int *cleaned = arg;
    volatile unsigned char frame[64];

    fill(frame, sizeof frame, 11);
    int err = tide_sleep(100.0);
    if (err == -ECANCELED && intact(frame, sizeof frame, 11))
        (*cleaned)++;
    return NULL;
}

TEST(loop_close_cancels_suspended_compact_tasks)
{
    tide_loop *loop = new_virtual_loop();
    int cleaned = 0;

    for (int i = 0; i < 50; i++)
        tide_future_release(spawn_compact(loop, cleanup_on_cancel, &cleaned));
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(cleaned, 50);
    LEAK_GATE();
}

/* ---- nested runs and eager starts -----------------------------------------
 */

struct nested {
    tide_loop *loop;
    tide_future *f;
    int rc;
    bool frame_ok;
};

static void *set_later(void *arg)
{
    struct nested *n = arg;
    volatile unsigned char frame[512];

    fill(frame, sizeof frame, 17); /* overwrites the shared stack */
    int err = tide_sleep(0.01);
    if (err == 0 && intact(frame, sizeof frame, 17))
        tide_future_set_result(n->f, IPTR(9));
    return NULL;
}

static void *nested_host(void *arg)
{
    struct nested *n = arg;
    volatile unsigned char frame[512];
    void *r = NULL;

    fill(frame, sizeof frame, 23);
    tide_future *setter = spawn_compact(n->loop, set_later, n);
    n->rc = tide_run_until_complete(n->loop, n->f, &r);
    if (n->rc == 0 && PINT(r) != 9)
        n->rc = -EPROTO;
    n->frame_ok = intact(frame, sizeof frame, 23);
    tide_await(setter, NULL);
    tide_future_release(setter);
    return NULL;
}

/* The host's frames leave the shared stack while the compact task that
 * completes the future runs there; the run itself is on a borrowed one. */
TEST(nested_run_from_a_compact_task)
{
    tide_loop *loop = new_virtual_loop();
    struct nested n = {.loop = loop, .rc = 1};
    n.f = tide_future_new(loop);
    tide_future *t = spawn_compact(loop, nested_host, &n);

    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(n.rc, 0);
    CHECK(n.frame_ok);
    tide_future_release(t);
    tide_future_release(n.f);
    CHECK_EQ(loop_stats(loop).stacks_in_use, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static int eager_mark;

static void *mark_then_sleep(void *arg)
{
    (void)arg;
    eager_mark = 1;
    return (void *)(intptr_t)tide_sleep(0.001);
}

static void *eager_creator(void *arg)
{
    tide_task_options o = {0};
    o.eager = true;
    o.compact = arg != NULL;
    eager_mark = 0;
    tide_future *t = tide_create_task_ex(NULL, mark_then_sleep, NULL, &o);
    int seen = eager_mark;
    tide_await(t, NULL);
    tide_future_release(t);
    return (void *)(intptr_t)seen;
}

TEST(eager_starts_and_compact_tasks)
{
    tide_loop *loop = tide_loop_new();
    tide_set_event_loop(loop);
    CHECK_EQ(tide_loop_set_compact_tasks(loop, false), 0); /* TIDE_COMPACT */

    /* A regular creator starts a compact task eagerly (it saw it run)... */
    finish_with(loop, spawn(loop, eager_creator, IPTR(1), false), 1);
    /* ...a compact creator's eager task is only scheduled. */
    finish_with(loop, spawn_compact(loop, eager_creator, NULL), 0);
    tide_set_event_loop(NULL);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- out of memory -------------------------------------------------------
 */

static void *sleep_a_bit(void *arg)
{
    (void)arg;
    int err = tide_sleep(0.001);
    return err ? tide_fail(err) : NULL;
}

/* Every allocation a compact task's life makes may fail: each failure
 * ends in a clear error (a task failed with -ENOMEM, or its sleep did),
 * nothing leaks, and the tasks not hit complete. */
TEST(out_of_memory_at_every_allocation)
{
    for (long n = 1; n < 40; n++) {
        tide_loop *loop = new_virtual_loop();
        tide_future *ts[4];
        for (int i = 0; i < 4; i++)
            ts[i] = spawn_compact(loop, sleep_a_bit, NULL);
        tide__alloc_fail_after(n);
        tide_future *all = tide_gather(ts, 4, TIDE_RETURN_ERRORS);
        int err = all ? tide_run_until_complete(loop, all, NULL) : -ENOMEM;
        tide__alloc_fail_after(0);
        CHECK(err == 0 || err == -ENOMEM);
        for (int i = 0; i < 4; i++) {
            int e = tide_run_until_complete(loop, ts[i], NULL);
            CHECK(e == 0 || e == -ENOMEM);
            tide_future_release(ts[i]);
        }
        tide_future_release(all);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}

/* ---- overflow -------------------------------------------------------------
 */

TEST(overflow_of_the_shared_stack_names_the_task)
{
    tide_task_options o = {0};
    o.name = "compact-victim";
    o.compact = true;
    check_overflow_death(&o, __FILE__, __LINE__);
    LEAK_GATE();
}

/* ---- order ----------------------------------------------------------------
 */

static int last_player = -1;
static long out_of_turn;

static void *player(void *arg)
{
    int me = (int)PINT(arg);
    volatile unsigned char frame[96];

    fill(frame, sizeof frame, (unsigned)me);
    for (int i = 0; i < 2000; i++) {
        if (last_player != -1 && (last_player + 1) % 3 != me)
            out_of_turn++;
        last_player = me;
        if (tide_sleep(0) != 0 || !intact(frame, sizeof frame, (unsigned)me))
            return tide_fail(-EPROTO);
    }
    return NULL;
}

/* Hand-offs between compact tasks go through the loop's context, yet keep
 * the ready queue's order exactly (three players: strict rotation), with
 * an ordinary task among them, in debug mode as well. */
TEST(hand_offs_keep_fifo_order)
{
    for (int debug = 0; debug < 2; debug++) {
        tide_loop *loop = tide_loop_new();
        CHECK_EQ(tide_loop_set_debug(loop, debug != 0), 0);
        tide_future *ts[3];
        last_player = -1;
        out_of_turn = 0;
        for (int i = 0; i < 3; i++)
            ts[i] = spawn(loop, player, IPTR(i), i != 1);
        tide_future *all = tide_gather(ts, 3, 0);
        CHECK_EQ(tide_run_until_complete(loop, all, NULL), 0);
        CHECK_EQ(out_of_turn, 0);
        for (int i = 0; i < 3; i++)
            tide_future_release(ts[i]);
        tide_future_release(all);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}

/* ---- debug mode catches the rule's most common break -----------------------
 */

static char reports[2048];

static void collect(tide_loop *loop, const char *msg, void *arg)
{
    (void)loop;
    (void)arg;
    strncat(reports, msg, sizeof reports - strlen(reports) - 2);
    strcat(reports, "\n");
}

static void noop_cb(void *arg)
{
    (void)arg;
}

static bool locals_on_stack;

static void *hands_out_locals(void *arg)
{
    int local = 1;
    int *heap = arg;
    tide_task_options o = {0};
    o.compact = true;

    /* Not so under ASan's detect_stack_use_after_return: locals then live
     * on its fake stack, which stays put (and the pointer is safe). */
    const struct tide__stack *st = tide__stack_current;
    locals_on_stack = (const char *)&local >= st->lo &&
                      (const char *)&local < st->lo + st->size;
    /* Wrong: the child and the callback run while this task is away. */
    tide_future *bad = tide_create_task_ex(NULL, return_arg, &local, &o);
    tide_call_soon(NULL, noop_cb, &local);
    /* Right: heap memory. */
    tide_future *good = tide_create_task_ex(NULL, return_arg, heap, &o);
    tide_call_soon(NULL, noop_cb, heap);
    tide_await(bad, NULL);
    tide_await(good, NULL);
    tide_future_release(bad);
    tide_future_release(good);
    return NULL;
}

TEST(debug_mode_reports_a_compact_task_handing_out_its_locals)
{
    tide_loop *loop = tide_loop_new();
    tide_set_event_loop(loop);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK_EQ(tide_loop_set_report_handler(loop, collect, NULL), 0);
    reports[0] = '\0';
    int *heap = malloc(sizeof *heap);
    tide_task_options o = {0};
    o.compact = true;
    o.name = "leaky";
    tide_future *t = tide_create_task_ex(loop, hands_out_locals, heap, &o);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    free(heap);
    if (!locals_on_stack) {
        tide_set_event_loop(NULL);
        CHECK_EQ(tide_loop_close(loop), 0);
        SKIP("locals live on ASan's fake stack here");
    }
    CHECK(strstr(reports, "'leaky' (created at") != NULL);
    CHECK(strstr(reports, "own stack to a new task") != NULL);
    CHECK(strstr(reports, "own stack to a callback") != NULL);
    /* Exactly two reports: the heap pointers are fine. */
    int lines = 0;
    for (const char *p = reports; (p = strstr(p, "own stack")); p++)
        lines++;
    CHECK_EQ(lines, 2);
    tide_set_event_loop(NULL);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}
