/* The thread pool (include/tide/pool.h): to_thread and run_in_executor
 * results and errors; bad input; cancelling queued jobs (they never run:
 * a flag proves it) and running ones (-ECANCELED at once, the result
 * freed when the job ends); class limits (hung DNS-class work leaves
 * file work running: HAZARDS B35); size and TIDE_POOL_SIZE; 100,000 jobs
 * queued at once, with loop wake-ups counted against batches; loop close
 * with jobs in flight; a forked child; ENOMEM at every allocation (B12);
 * completing a future from another thread. Jobs block on flags, never on
 * long sleeps.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"
#include "pool_wait.h"

#include "base/alloc.h"
#include "base/sys.h"
#include "core/loop.h"
#include "io/io.h"

#include <tide/pool.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

static atomic_int gate;    /* blocking jobs wait for it to be 1 */
static atomic_int started; /* blocking jobs that have begun */
static atomic_int ran;     /* flag jobs that ran */
static atomic_int freed;   /* results given to free_box */
static atomic_int boxes;   /* results blocker made */

static int add_one(void *arg, void **result)
{
    *result = IPTR(PINT(arg) + 1);
    return 0;
}

static int fail_eio(void *arg, void **result)
{
    (void)arg;
    (void)result;
    return -EIO;
}

static int set_flag(void *arg, void **result)
{
    (void)arg;
    (void)result;
    atomic_fetch_add(&ran, 1);
    return 0;
}

/* Blocks until gate opens; its result is a tide__malloc'd box. */
static int blocker(void *arg, void **result)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    while (!atomic_load(&gate))
        sched_yield();
    *result = tide__malloc(16);
    atomic_fetch_add(&boxes, 1);
    return 0;
}

static void free_box(void *p)
{
    atomic_fetch_add(&freed, 1);
    tide__free(p);
}

struct call {
    int cls;
    tide_work_fn fn;
    void *arg;
    void (*free_result)(void *);
    int err;
    void *value;
    bool done;
};

static void *to_thread_body(void *arg)
{
    struct call *c = arg;
    c->err =
        tide_to_thread_ex(c->cls, c->fn, c->arg, c->free_result, &c->value);
    c->done = true;
    return NULL;
}

/* Run the loop until pred() holds (each step yields the CPU). */
static void run_until(tide_loop *loop, bool (*pred)(void *), void *arg)
{
    double end = harness_now() + 5;
    while (!pred(arg)) {
        CHECK(harness_now() < end);
        CHECK(tide_loop_run_once(loop, 0.001) >= 0);
    }
}

static bool call_done(void *arg)
{
    return ((struct call *)arg)->done;
}

/* ---- results and errors ---------------------------------------------- */

static void *results_body(void *arg)
{
    (void)arg;
    void *v = NULL;
    CHECK_EQ(tide_to_thread(add_one, IPTR(41), &v), 0);
    CHECK_EQ(PINT(v), 42);
    CHECK_ERR(tide_to_thread(fail_eio, NULL, &v), -EIO);
    CHECK_ERR(tide_to_thread(NULL, NULL, &v), -EINVAL);
    CHECK_ERR(tide_to_thread_ex(3, add_one, NULL, NULL, &v), -EINVAL);
    CHECK_ERR(tide_to_thread_ex(-1, add_one, NULL, NULL, &v), -EINVAL);
    CHECK_EQ(tide_to_thread_ex(TIDE_POOL_FILE, add_one, IPTR(1), NULL, NULL),
             0);
    for (int i = 0; i < 1000; i++) { /* back to back */
        CHECK_EQ(tide_to_thread(add_one, IPTR(i), &v), 0);
        CHECK_EQ(PINT(v), i + 1);
    }
    return NULL;
}

TEST(to_thread_results_errors_and_bad_input)
{
    void *v;
    CHECK_ERR(tide_to_thread(add_one, NULL, &v), -EPERM);
    CHECK_ERR(tide_run(results_body, NULL, NULL), 0);
    pool_quiet();
    LEAK_GATE();
}

TEST(run_in_executor_future)
{
    tide_loop *loop = tide_loop_new();
    void *v = NULL;

    CHECK_NOT_NULL(loop);
    tide_future *f =
        tide_run_in_executor(loop, TIDE_POOL_CPU, add_one, IPTR(6), NULL);
    CHECK_NOT_NULL(f);
    CHECK_ERR(tide_future_set_result(f, NULL), -EINVAL); /* not by hand */
    CHECK_EQ(tide_run_until_complete(loop, f, &v), 0);
    CHECK_EQ(PINT(v), 7);
    tide_future_release(f);
    f = tide_run_in_executor(loop, TIDE_POOL_FILE, fail_eio, NULL, NULL);
    CHECK_NOT_NULL(f);
    CHECK_ERR(tide_run_until_complete(loop, f, NULL), -EIO);
    tide_future_release(f);
    errno = 0;
    CHECK_NULL(tide_run_in_executor(loop, TIDE_POOL_CPU, NULL, NULL, NULL));
    CHECK_EQ(errno, EINVAL);
    CHECK_NULL(tide_run_in_executor(loop, 7, add_one, NULL, NULL));
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(tide_loop_close(loop), 0);
    pool_quiet();
    LEAK_GATE();
}

/* A future released before its job ends: the value goes to free_result. */
TEST(executor_value_nobody_can_read_is_freed)
{
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    tide_future *f =
        tide_run_in_executor(loop, TIDE_POOL_CPU, blocker, NULL, free_box);
    CHECK_NOT_NULL(f);
    tide_future_release(f);
    atomic_store(&gate, 1);
    double end = harness_now() + 5;
    while (atomic_load(&freed) < 1) {
        CHECK(harness_now() < end);
        CHECK(tide_loop_run_once(loop, 0.001) >= 0);
    }
    CHECK_EQ(atomic_load(&boxes), 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    pool_quiet();
    LEAK_GATE();
}

/* ---- cancellation ---------------------------------------------------- */

TEST(cancelled_queued_job_never_runs)
{
    tide_loop *loop = tide_loop_new();
    struct call block = {.fn = blocker, .free_result = free_box};
    struct call flag = {.fn = set_flag};

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_pool_set_size(1), 0);
    tide_future *a = tide_create_task(loop, to_thread_body, &block);
    tide_future *b = tide_create_task(loop, to_thread_body, &flag);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    wait_for(&started, 1); /* the only thread holds the blocker */
    CHECK(tide_future_cancel(b));
    run_until(loop, call_done, &flag);
    CHECK_ERR(flag.err, -ECANCELED);
    atomic_store(&gate, 1);
    run_until(loop, call_done, &block);
    CHECK_EQ(block.err, 0);
    free_box(block.value);
    pool_quiet();
    CHECK_EQ(atomic_load(&ran), 0); /* never ran */
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(cancelled_running_job_is_abandoned_and_its_result_freed)
{
    tide_loop *loop = tide_loop_new();
    struct call c = {.fn = blocker, .free_result = free_box};

    CHECK_NOT_NULL(loop);
    tide_future *t = tide_create_task(loop, to_thread_body, &c);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    wait_for(&started, 1);
    CHECK(tide_future_cancel(t));
    run_until(loop, call_done, &c); /* at once: the job still runs */
    CHECK_ERR(c.err, -ECANCELED);
    CHECK_NULL(c.value);
    CHECK_EQ(atomic_load(&freed), 0);
    atomic_store(&gate, 1);
    pool_quiet();
    CHECK_EQ(atomic_load(&freed), 1); /* freed by the job's thread */
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(cancelled_executor_futures_queued_and_running)
{
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_pool_set_size(1), 0);
    tide_future *run =
        tide_run_in_executor(loop, TIDE_POOL_CPU, blocker, NULL, free_box);
    tide_future *queued =
        tide_run_in_executor(loop, TIDE_POOL_CPU, set_flag, NULL, NULL);
    CHECK_NOT_NULL(run);
    CHECK_NOT_NULL(queued);
    wait_for(&started, 1);
    CHECK(tide_future_cancel(queued));
    CHECK(tide_future_cancel(run));
    CHECK(tide_future_cancelled(run));
    CHECK(!tide_future_cancel(run));
    atomic_store(&gate, 1);
    pool_quiet();
    CHECK_EQ(atomic_load(&ran), 0);
    CHECK_EQ(atomic_load(&freed), 1);
    /* The loop takes in nothing for them afterwards. */
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);
    tide_future_release(run);
    tide_future_release(queued);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* fork(): the child has none of the parent's threads; its pool starts
 * afresh at its first job (tide/pool.h). */
TEST(a_forked_child_starts_an_empty_pool)
{
    int status;

    if (HARNESS_TSAN)
        SKIP("TSan: no threads may start after a multi-threaded fork");
    if (harness_qemu())
        SKIP("QEMU user mode: a fork of a threaded program is unreliable");
    CHECK_ERR(tide_run(results_body, NULL, NULL), 0); /* threads running */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(tide_run(results_body, NULL, NULL) == 0 ? 0 : 1);
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    pool_quiet();
    LEAK_GATE();
}

/* ---- classes and size ------------------------------------------------ */

static bool calls_done(void *arg)
{
    struct call *c = arg;
    return c[0].done && c[1].done;
}

/* n tasks, each waiting on a blocking DNS-class job, submitted; back
 * once the class's two places are taken (a pool of four). */
static void start_slow(tide_loop *loop, struct call *c, tide_future **t, int n)
{
    for (int i = 0; i < n; i++) {
        c[i] = (struct call){.cls = TIDE_POOL_DNS,
                             .fn = blocker,
                             .free_result = free_box};
        t[i] = tide_create_task(loop, to_thread_body, &c[i]);
    }
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    wait_for(&started, 2);
}

/* Four hung DNS-class jobs on a pool of four: two run (the class's
 * limit), two wait, and file and CPU work still completes meanwhile. */
TEST(hung_dns_class_leaves_file_work_running)
{
    tide_loop *loop = tide_loop_new();
    struct call dns[4], work[2] = {{.cls = TIDE_POOL_FILE, .fn = add_one},
                                   {.cls = TIDE_POOL_CPU, .fn = add_one}};
    tide_future *t[6];

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_pool_set_size(4), 0);
    CHECK_EQ(tide_pool_get_limit(TIDE_POOL_DNS), 2);
    start_slow(loop, dns, t, 4);
    for (int i = 0; i < 2; i++)
        t[4 + i] = tide_create_task(loop, to_thread_body, &work[i]);
    run_until(loop, calls_done, work);
    CHECK_EQ(work[0].err, 0);
    CHECK_EQ(work[1].err, 0);
    CHECK_EQ(atomic_load(&started), 2); /* the other two still queued */
    for (int i = 0; i < 4; i++)
        CHECK(!dns[i].done);
    /* Raising the limit lets the queued ones start. */
    CHECK_EQ(tide_pool_set_limit(TIDE_POOL_DNS, 4), 0);
    wait_for(&started, 4);
    atomic_store(&gate, 1);
    for (int i = 0; i < 4; i++) {
        run_until(loop, call_done, &dns[i]);
        CHECK_EQ(dns[i].err, 0);
        free_box(dns[i].value);
    }
    for (int i = 0; i < 6; i++)
        tide_future_release(t[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    pool_quiet();
    LEAK_GATE();
}

static bool all_done(void *arg)
{
    struct call *c = arg;
    for (int i = 0; i < 100; i++)
        if (!c[i].done)
            return false;
    return true;
}

/* HAZARDS B35 on a pool of 4: 8 slow jobs in the DNS class (two run,
 * six queue), 100 short CPU jobs; cancel the tasks of 4 queued and 2
 * running slow jobs. The short jobs all complete while the slow ones
 * hang, the cancelled queued ones never start, the cancelled running
 * ones finish (then the last two queued run) and their results are
 * freed, nothing leaks. */
TEST(b35_slow_class_cancel_queued_and_running)
{
    tide_loop *loop = tide_loop_new();
    struct call slow[8], quick[100];
    tide_future *ts[8], *tq[100];

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_pool_set_size(4), 0);
    start_slow(loop, slow, ts, 8);
    for (int i = 0; i < 100; i++) {
        quick[i] = (struct call){.fn = add_one, .arg = IPTR(i)};
        tq[i] = tide_create_task(loop, to_thread_body, &quick[i]);
    }
    run_until(loop, all_done, quick);
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(quick[i].err, 0);
        CHECK_EQ(PINT(quick[i].value), i + 1);
        tide_future_release(tq[i]);
    }
    /* slow[0] and slow[1] run (the first queued); cancel them and four
     * of the six queued. */
    int cancel[6] = {0, 1, 2, 3, 4, 5};
    for (int i = 0; i < 6; i++)
        CHECK(tide_future_cancel(ts[cancel[i]]));
    for (int i = 0; i < 6; i++) {
        run_until(loop, call_done, &slow[cancel[i]]);
        CHECK_ERR(slow[cancel[i]].err, -ECANCELED);
    }
    /* The abandoned two still run (nothing is killed), holding the
     * class's two places: 6 and 7 wait for them. */
    CHECK_EQ(atomic_load(&started), 2);
    atomic_store(&gate, 1);
    for (int i = 6; i < 8; i++) {
        run_until(loop, call_done, &slow[i]);
        CHECK_EQ(slow[i].err, 0);
        free_box(slow[i].value);
    }
    pool_quiet();
    CHECK_EQ(atomic_load(&started), 4); /* 2-5 never started */
    CHECK_EQ(atomic_load(&boxes), 4);
    CHECK_EQ(atomic_load(&freed), 4); /* 0 and 1 by their threads */
    for (int i = 0; i < 8; i++)
        tide_future_release(ts[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(size_limits_and_environment)
{
    setenv("TIDE_POOL_SIZE", "3", 1);
    CHECK_EQ(tide_pool_get_size(), 3);
    CHECK_EQ(tide_pool_get_limit(TIDE_POOL_CPU), 3);
    CHECK_EQ(tide_pool_get_limit(TIDE_POOL_DNS), 1);
    setenv("TIDE_POOL_SIZE", "zero", 1);
    CHECK_EQ(tide_pool_get_size(), 4); /* not a size: the default */
    CHECK_ERR(tide_pool_set_size(0), -EINVAL);
    CHECK_ERR(tide_pool_set_size(257), -EINVAL);
    CHECK_EQ(tide_pool_set_size(8), 0);
    CHECK_EQ(tide_pool_get_size(), 8);
    CHECK_EQ(tide_pool_get_limit(TIDE_POOL_DNS), 4);
    CHECK_ERR(tide_pool_set_limit(3, 1), -EINVAL);
    CHECK_ERR(tide_pool_set_limit(-1, 1), -EINVAL);
    CHECK_EQ(tide_pool_get_limit(9), 0);
    CHECK_EQ(tide_pool_set_limit(TIDE_POOL_FILE, 2), 0);
    CHECK_EQ(tide_pool_get_limit(TIDE_POOL_FILE), 2);
    CHECK_EQ(tide_pool_set_limit(TIDE_POOL_FILE, 100), 0);
    CHECK_EQ(tide_pool_get_limit(TIDE_POOL_FILE), 8); /* capped by size */
    CHECK_EQ(tide_pool_set_limit(TIDE_POOL_FILE, 0), 0);
    CHECK_EQ(tide_pool_get_limit(TIDE_POOL_FILE), 8);
    CHECK_EQ(tide_pool_set_size(1), 0);
    CHECK_ERR(tide_run(results_body, NULL, NULL), 0); /* one thread works */
    pool_quiet();
    LEAK_GATE();
}

/* ---- 100,000 at once --------------------------------------------------- */

#define MANY 100000

TEST(many_jobs_queued_at_once_one_wake_per_batch)
{
    tide_loop *loop = tide_loop_new();
    tide_future **fs = malloc(MANY * sizeof *fs);
    void **out;

    CHECK_NOT_NULL(loop);
    CHECK_NOT_NULL(fs);
    uint64_t wakes = tide__sys_count(TIDE__SYS_WAKE);
    uint64_t batches = loop->remote_batches;
    for (long i = 0; i < MANY; i++) {
        fs[i] =
            tide_run_in_executor(loop, TIDE_POOL_CPU, add_one, IPTR(i), NULL);
        CHECK_NOT_NULL(fs[i]);
    }
    tide_future *g = tide_gather(fs, MANY, 0);
    CHECK_NOT_NULL(g);
    CHECK_EQ(tide_run_until_complete(loop, g, (void **)&out), 0);
    for (long i = 0; i < MANY; i++)
        CHECK_EQ(PINT(out[i]), i + 1);
    wakes = tide__sys_count(TIDE__SYS_WAKE) - wakes;
    batches = loop->remote_batches - batches;
    fprintf(stderr, "# %d jobs: %llu wake-ups, %llu batches\n", MANY,
            (unsigned long long)wakes, (unsigned long long)batches);
    CHECK(batches >= 1);
    CHECK(wakes <= batches + 1); /* at most one per batch */
    CHECK(wakes < MANY / 10);    /* and batches, not jobs */
    tide_future_release(g);
    for (long i = 0; i < MANY; i++)
        tide_future_release(fs[i]);
    free(fs);
    CHECK_EQ(tide_loop_close(loop), 0);
    pool_quiet();
    LEAK_GATE();
}

/* ---- close ------------------------------------------------------------ */

TEST(close_with_jobs_in_flight_does_not_wait_for_them)
{
    tide_loop *loop = tide_loop_new();
    struct call c = {.fn = blocker, .free_result = free_box};
    struct call q = {.fn = set_flag};

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_pool_set_size(2), 0);
    tide_future *t = tide_create_task(loop, to_thread_body, &c);
    tide_future *f =
        tide_run_in_executor(loop, TIDE_POOL_CPU, blocker, NULL, free_box);
    CHECK_NOT_NULL(f);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    wait_for(&started, 2); /* both threads blocked */
    tide_future *u = tide_create_task(loop, to_thread_body, &q);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1); /* q is queued */
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK(c.done);
    CHECK_ERR(c.err, -ECANCELED);
    CHECK_ERR(q.err, -ECANCELED);
    CHECK(tide_future_cancelled(f));
    atomic_store(&gate, 1);
    pool_quiet();
    CHECK_EQ(atomic_load(&freed), 2);
    CHECK_EQ(atomic_load(&ran), 0);
    tide_future_release(t);
    tide_future_release(u);
    tide_future_release(f);
    LEAK_GATE();
}

/* A job that finishes while close runs: its completion is taken in and
 * dropped (its result freed), never delivered. */
TEST(close_races_finishing_jobs)
{
    CHECK_EQ(tide_pool_set_size(4), 0);
    for (int round = 0; round < 200; round++) {
        tide_loop *loop = tide_loop_new();
        tide_future *f[8];
        CHECK_NOT_NULL(loop);
        atomic_store(&gate, 1);
        int made = atomic_load(&boxes);
        for (int i = 0; i < 8; i++)
            f[i] = tide_run_in_executor(loop, TIDE_POOL_CPU, blocker, NULL,
                                        free_box);
        if (round % 4 == 3)
            wait_for(&boxes, made + 1); /* one at least has finished */
        for (int i = 0; i < round % 4; i++)
            tide_loop_run_once(loop, 0);
        CHECK_EQ(tide_loop_close(loop), 0);
        for (int i = 0; i < 8; i++) {
            void *v = NULL;
            if (tide_future_result(f[i], &v) == 0)
                free_box(v);
            tide_future_release(f[i]);
        }
    }
    pool_quiet();
    CHECK(atomic_load(&boxes) > 0);
    CHECK_EQ(atomic_load(&freed), atomic_load(&boxes));
    LEAK_GATE();
}

/* ---- ENOMEM ----------------------------------------------------------- */

static void *enomem_body(void *arg)
{
    int *err = arg;
    void *v = NULL;
    *err = tide_to_thread(add_one, IPTR(1), &v);
    if (*err == 0)
        CHECK_EQ(PINT(v), 2);
    return NULL;
}

TEST(enomem_at_every_allocation)
{
    for (long n = 1;; n++) {
        tide_loop *loop = tide_loop_new();
        int err = 1;
        CHECK_NOT_NULL(loop);
        tide_future *t = tide_create_task(loop, enomem_body, &err);
        CHECK_NOT_NULL(t);
        tide__alloc_fail_after(n);
        int rc = tide_run_until_complete(loop, t, NULL);
        tide__alloc_fail_after(0);
        tide_future_release(t);
        if (err == 1) /* the task could not start */
            CHECK_ERR(rc, -ENOMEM);
        else if (err != 0)
            CHECK_ERR(err, -ENOMEM);
        errno = 0;
        tide__alloc_fail_after(n);
        tide_future *f =
            tide_run_in_executor(loop, TIDE_POOL_CPU, add_one, NULL, NULL);
        tide__alloc_fail_after(0);
        if (!f)
            CHECK_EQ(errno, ENOMEM);
        else
            CHECK_EQ(tide_run_until_complete(loop, f, NULL), 0);
        tide_future_release(f);
        CHECK_EQ(tide_loop_close(loop), 0);
        pool_quiet();
        if (err == 0 && f)
            break;
        CHECK(n < 50);
    }
    LEAK_GATE();
}

/* ---- debug mode's hang check ------------------------------------------- */

static int slow_add(void *arg, void **result)
{
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return add_one(arg, result);
}

static void *slow_body(void *arg)
{
    void *v = NULL;
    int err = tide_to_thread(slow_add, arg, &v);
    return err < 0 ? tide_fail(err) : v;
}

static void ignore_report(tide_loop *loop, const char *msg, void *arg)
{
    (void)loop;
    (void)msg;
    (void)arg;
}

/* A job in flight can wake the loop: no deadlock is reported while a
 * task waits on one. Idle pool threads cannot: a future nobody sets is
 * still reported once the pool has started. */
TEST(debug_mode_counts_pool_jobs_as_wakers)
{
    tide_loop *loop = tide_loop_new();
    void *v = NULL;

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK_EQ(tide_loop_set_report_handler(loop, ignore_report, NULL), 0);
    tide_future *t = tide_create_task(loop, slow_body, IPTR(1));
    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_run_until_complete(loop, t, &v), 0);
    CHECK_EQ(PINT(v), 2);
    tide_future_release(t);
    if (!HARNESS_TSAN && !harness_qemu()) { /* their threads could post */
        tide_future *f = tide_future_new(loop);
        CHECK_NOT_NULL(f);
        CHECK_ERR(tide_run_until_complete(loop, f, NULL), -EDEADLK);
        tide_future_release(f);
    }
    CHECK_EQ(tide_loop_close(loop), 0);
    pool_quiet();
    LEAK_GATE();
}

/* ---- a future completed from another thread ---------------------------- */

static void *setter_thread(void *arg)
{
    tide_future **f = arg;
    CHECK_EQ(tide_future_set_result_threadsafe(f[0], IPTR(5)), 0);
    CHECK_EQ(tide_future_set_error_threadsafe(f[1], -EIO), 0);
    return NULL;
}

TEST(future_set_result_threadsafe)
{
    tide_loop *loop = tide_loop_new();
    pthread_t th;
    void *v = NULL;

    CHECK_NOT_NULL(loop);
    tide_future *f[2] = {tide_future_new(loop), tide_future_new(loop)};
    CHECK_NOT_NULL(f[0]);
    CHECK_NOT_NULL(f[1]);
    CHECK_ERR(tide_future_set_result_threadsafe(NULL, NULL), -EINVAL);
    CHECK_ERR(tide_future_set_error_threadsafe(f[1], 0), -EINVAL);
    CHECK_ERR(tide_future_set_error_threadsafe(f[1], 5), -EINVAL);
    tide_future *task =
        tide_create_task(loop, to_thread_body, &(struct call){.fn = add_one});
    CHECK_ERR(tide_future_set_result_threadsafe(task, NULL), -EINVAL);
    CHECK_EQ(pthread_create(&th, NULL, setter_thread, f), 0);
    CHECK_EQ(tide_run_until_complete(loop, f[0], &v), 0);
    CHECK_EQ(PINT(v), 5);
    CHECK_ERR(tide_run_until_complete(loop, f[1], NULL), -EIO);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(tide_run_until_complete(loop, task, NULL), 0);
    /* Done by then: nothing happens. */
    CHECK_EQ(tide_future_set_result_threadsafe(f[0], IPTR(9)), 0);
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);
    CHECK_EQ(tide_future_result(f[0], &v), 0);
    CHECK_EQ(PINT(v), 5);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_ERR(tide_future_set_result_threadsafe(f[0], NULL), -ESHUTDOWN);
    tide_future_release(task);
    tide_future_release(f[0]);
    tide_future_release(f[1]);
    pool_quiet();
    LEAK_GATE();
}
