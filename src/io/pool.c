/* The thread pool (tide/pool.h): its threads and class queues, the job
 * record, and the two ways a loop waits for a job (a task suspended in
 * tide_to_thread, an executor future).
 *
 * One pool per process, under pool.lock: a FIFO queue per class, the
 * count running per class, the threads. A job record comes from its
 * loop's free list (struct tide__jobs, made on the loop's first job and
 * let go at close as a tide__linger), so steady state allocates nothing.
 * Its state moves QUEUED -> RUNNING under pool.lock (a worker takes it),
 * then RUNNING -> DONE (the worker then posts its call to the loop:
 * core's tide__remote_post_locked, one wake-up per batch) or RUNNING ->
 * ABANDONED (its caller gave up), by compare-and-swap, so exactly one of
 * the two happens. An abandoned record is the worker's: it
 * frees the result and the record and never touches the loop; a posted
 * one is the loop's again. So once a loop has abandoned every job in
 * flight (close does, through the linger) and taken in what was posted,
 * no thread touches it again.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "tide/pool.h"

#include "task/future.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#define NCLASSES 3
#define MAX_SIZE 256u
#define DEFAULT_SIZE 4u
#define FREE_CAP 1024 /* job records a loop keeps for reuse */
/* An idle worker spins this long for new work before it blocks: a
 * futex wake-up across CPUs costs tens of microseconds. */
#define WORKER_SPIN_NS 50000

enum job_state { QUEUED, RUNNING, DONE, ABANDONED };

struct exec_future {
    struct tide_future fut; /* first: the record's start */
    struct tide__job *job;  /* in flight for it, or NULL */
};

struct tide__job {
    struct tide__call call;  /* its completion, posted to the loop */
    struct tide__list qlink; /* pool.queue[cls] while QUEUED */
    struct tide__list link;  /* jobs->inflight until delivered */
    struct tide__wait wait;  /* what an awaiting task names */
    tide_work_fn fn;
    void *arg;
    void (*free_result)(void *);
    void *result; /* set by the worker before DONE */
    int err;
    atomic_int state; /* enum job_state, see above */
    uint8_t cls;
    bool delivered; /* its completion ran on the loop */
    bool posted;    /* DONE and posted (under remote_lock) */
    bool drop_arg;  /* free_result takes arg, not result:
                     * the pool owns arg (tide__to_thread_owned) */
    tide_loop *loop;
    struct tide__coro *co;   /* a task waiting in to_thread, or NULL */
    struct exec_future *fut; /* an executor future, or NULL */
    struct tide__job *next_free;
};

struct tide__jobs {
    struct tide__linger linger; /* loop->lingering: dropped at close */
    struct tide__list inflight; /* tide__job.link */
    struct tide__job *free;
    size_t nfree;
    size_t refs; /* 1 until close + records out of it */
    bool closed;
    tide_loop *loop;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* idle workers wait here */
    struct tide__list queue[NCLASSES];
    unsigned running[NCLASSES];
    unsigned limit[NCLASSES]; /* 0: the default */
    unsigned size;            /* 0: not decided yet */
    unsigned threads, idle, spinning, queued;
    atomic_uint submits; /* bumped at every submit: spinners
                          * watch it (relaxed: they then take
                          * the lock, which orders the rest) */
    atomic_long live;    /* jobs taken, not yet finished (tests) */
    unsigned stopping;   /* tide__pool_stop in progress */
    bool ready;          /* queues set up, fork handler set */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* ---- the pool ----------------------------------------------------------- */

static unsigned env_size(void)
{
    const char *s = getenv("TIDE_POOL_SIZE");
    char *end;

    if (!s || !*s)
        return DEFAULT_SIZE;
    unsigned long n = strtoul(s, &end, 10);
    return *end || n == 0 || n > MAX_SIZE ? DEFAULT_SIZE : (unsigned)n;
}

static void reset_locked(void)
{
    for (int c = 0; c < NCLASSES; c++) {
        tide__list_init(&pool.queue[c]);
        pool.running[c] = 0;
    }
    pool.threads = pool.idle = pool.spinning = pool.queued = 0;
}

static void fork_prepare(void)
{
    pthread_mutex_lock(&pool.lock);
}
static void fork_parent(void)
{
    pthread_mutex_unlock(&pool.lock);
}

/* The child has no pool threads: it starts an empty pool (tide/pool.h). */
static void fork_child(void)
{
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.cond, NULL);
    reset_locked();
    atomic_store_explicit(&pool.live, 0, memory_order_relaxed);
}

static void setup_locked(void)
{
    if (pool.ready)
        return;
    reset_locked();
    if (!pool.size)
        pool.size = env_size();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    pool.ready = true;
}

static unsigned limit_locked(int c)
{
    unsigned size = pool.size ? pool.size : env_size();
    unsigned n = pool.limit[c];

    if (!n)
        n = c == TIDE_POOL_DNS ? (size > 1 ? size / 2 : 1) : size;
    return n < size ? n : size;
}

/* The next job a worker may start: the oldest of the first class (from
 * a rotating start) with work queued and a thread to spare. */
static struct tide__job *take_locked(void)
{
    static unsigned next;

    for (unsigned i = 0; i < NCLASSES; i++) {
        unsigned c = (next + i) % NCLASSES;
        if (tide__list_empty(&pool.queue[c]) ||
            pool.running[c] >= limit_locked((int)c))
            continue;
        struct tide__job *j =
            tide__container_of(pool.queue[c].next, struct tide__job, qlink);
        tide__list_remove(&j->qlink);
        pool.queued--;
        pool.running[c]++;
        atomic_store_explicit(&j->state, RUNNING, memory_order_relaxed);
        next = c + 1;
        return j;
    }
    return NULL;
}

/* The worker's end of a job (see the top of the file). */
static void finish(struct tide__job *j, int err, void *result)
{
    int running = RUNNING;

    j->err = err;
    j->result = result;
    /* acq_rel: on success the loop, which reads these after its drain
     * (remote_lock), sees them; on failure the loop's last writes to j
     * (it gave j up) happen before the free below. */
    if (!atomic_compare_exchange_strong_explicit(&j->state, &running, DONE,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        if (j->free_result && (j->drop_arg || result))
            j->free_result(j->drop_arg ? j->arg : result);
        tide__free(j);
        return;
    }
    tide_loop *loop = j->loop;
    pthread_mutex_lock(&loop->remote_lock);
    j->posted = true;
    tide__remote_post_locked(loop, &j->call);
    pthread_mutex_unlock(&loop->remote_lock);
}

static bool spin_for_work(unsigned seen)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&pool.submits, memory_order_relaxed) != seen)
            return true;
        if (i % 8 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec -
                    t0.tv_nsec >=
                WORKER_SPIN_NS)
                return false;
        }
        /* Yield, not pause: on a machine whose CPUs are all busy (or
         * a process pinned to one) the thread we wait for may need
         * this CPU. */
        sched_yield();
    }
}

static void *worker(void *unused)
{
    bool spun = false;

    (void)unused;
    /* Debug mode's hang check tells pool threads from others by name
     * (core/deadlock.c): these post only for jobs the loop counts. */
    pthread_setname_np(pthread_self(), "tide-pool");
    pthread_mutex_lock(&pool.lock);
    while (pool.threads <= pool.size && !pool.stopping) {
        struct tide__job *j = take_locked();
        if (j) {
            pthread_mutex_unlock(&pool.lock);
            void *result = NULL;
            int err = j->fn(j->arg, &result);
            unsigned c = j->cls;
            finish(j, err, result);
            /* release: a test that sees the count fall sees what the job
             * freed (its leak gate comes next). */
            atomic_fetch_sub_explicit(&pool.live, 1, memory_order_release);
            pthread_mutex_lock(&pool.lock);
            pool.running[c]--;
            spun = false;
            continue;
        }
        if (!spun) {
            /* Nothing to start: spin for a submit, then look again. */
            unsigned seen =
                atomic_load_explicit(&pool.submits, memory_order_relaxed);
            pool.spinning++;
            pthread_mutex_unlock(&pool.lock);
            spin_for_work(seen);
            pthread_mutex_lock(&pool.lock);
            pool.spinning--;
            spun = true;
            continue;
        }
        /* Looked again under the lock and found nothing: anything that
         * makes work startable (a submit, a new size or limit) changes
         * it under this lock and signals. */
        spun = false;
        pool.idle++;
        pthread_cond_wait(&pool.cond, &pool.lock);
        pool.idle--;
    }
    pool.threads--;
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* Start one more worker, every signal blocked (they go to the loops'
 * threads). 0 or -errno. */
static int start_worker_locked(void)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;

    int err = pthread_attr_init(&attr);
    if (err)
        return -err;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&t, &attr, worker, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        return -err;
    pool.threads++;
    return 0;
}

/* Queue j, starting a worker if none is free to take it. 0; -EAGAIN (or
 * what pthread_create said) if the pool has no thread and none could be
 * started: j is not queued. */
static int submit(struct tide__job *j)
{
    pthread_mutex_lock(&pool.lock);
    setup_locked();
    if (pool.idle + pool.spinning <= pool.queued && pool.threads < pool.size) {
        int err = start_worker_locked();
        if (err < 0 && pool.threads == 0) {
            pthread_mutex_unlock(&pool.lock);
            return err;
        }
    }
    atomic_store_explicit(&j->state, QUEUED, memory_order_relaxed);
    tide__list_push_back(&pool.queue[j->cls], &j->qlink);
    pool.queued++;
    atomic_fetch_add_explicit(&pool.live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool.submits, 1, memory_order_relaxed);
    if (pool.idle > 0 && pool.queued > pool.spinning)
        pthread_cond_signal(&pool.cond);
    pthread_mutex_unlock(&pool.lock);
    return 0;
}

int tide_pool_set_size(unsigned n)
{
    if (n == 0 || n > MAX_SIZE)
        return -EINVAL;
    pthread_mutex_lock(&pool.lock);
    pool.size = n;
    pthread_cond_broadcast(&pool.cond); /* surplus idle threads end */
    pthread_mutex_unlock(&pool.lock);
    return 0;
}

unsigned tide_pool_get_size(void)
{
    pthread_mutex_lock(&pool.lock);
    unsigned n = pool.size ? pool.size : env_size();
    pthread_mutex_unlock(&pool.lock);
    return n;
}

int tide_pool_set_limit(int cls, unsigned n)
{
    if (cls < 0 || cls >= NCLASSES)
        return -EINVAL;
    pthread_mutex_lock(&pool.lock);
    pool.limit[cls] = n;
    pthread_cond_broadcast(&pool.cond); /* a raised limit frees work */
    pthread_mutex_unlock(&pool.lock);
    return 0;
}

unsigned tide_pool_get_limit(int cls)
{
    if (cls < 0 || cls >= NCLASSES)
        return 0;
    pthread_mutex_lock(&pool.lock);
    unsigned n = limit_locked(cls);
    pthread_mutex_unlock(&pool.lock);
    return n;
}

void tide__pool_stop(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stopping++;
    pthread_cond_broadcast(&pool.cond);
    while (pool.threads > 0) {
        pthread_mutex_unlock(&pool.lock);
        sched_yield();
        pthread_mutex_lock(&pool.lock);
    }
    pool.stopping--;
    pthread_mutex_unlock(&pool.lock);
}

long tide__pool_live(void)
{
    return atomic_load_explicit(&pool.live, memory_order_acquire);
}

/* ---- a loop's job records ----------------------------------------------- */

static void jobs_unref(struct tide__jobs *js)
{
    if (--js->refs)
        return;
    js->loop->jobs = NULL;
    tide__free(js);
}

/* Give back a record the loop owns again (delivered, or never run). */
static void recycle(struct tide__jobs *js, struct tide__job *j)
{
    if (js->closed || js->nfree >= FREE_CAP) {
        tide__free(j);
    } else {
        j->next_free = js->free;
        js->free = j;
        js->nfree++;
    }
    jobs_unref(js);
}

/* Nobody takes j's result (or, for tide__to_thread_owned, its arg). */
static void drop_result(struct tide__job *j)
{
    if (j->free_result && (j->drop_arg || j->result))
        j->free_result(j->drop_arg ? j->arg : j->result);
    j->result = NULL;
}

static void abandon(tide_loop *loop, struct tide__job *j);

static void exec_release(struct tide__job *j)
{
    struct exec_future *ef = j->fut;

    j->fut = NULL;
    ef->job = NULL;
    tide_future_release(&ef->fut);
}

/* Close: give up on every job still in flight (their tasks are over, so
 * these are executor futures'), then let the records go as they come
 * back. */
static void jobs_drop(struct tide__linger *l)
{
    struct tide__jobs *js = tide__container_of(l, struct tide__jobs, linger);

    js->closed = true;
    while (!tide__list_empty(&js->inflight)) {
        struct tide__job *j =
            tide__container_of(js->inflight.next, struct tide__job, link);
        tide__list_remove(&j->link);
        tide__list_init(&j->link);
        struct exec_future *ef = j->fut;
        if (ef)
            tide_future_retain(&ef->fut);
        abandon(js->loop, j);
        if (ef) {
            tide__future_cancel_plain(&ef->fut);
            tide_future_release(&ef->fut);
        }
    }
    while (js->free) {
        struct tide__job *j = js->free;
        js->free = j->next_free;
        tide__free(j);
    }
    js->nfree = 0;
    jobs_unref(js);
}

static struct tide__jobs *jobs_of(tide_loop *loop)
{
    if (loop->jobs)
        return loop->jobs;
    struct tide__jobs *js = tide__calloc(1, sizeof *js);
    if (!js)
        return NULL;
    js->linger.drop = jobs_drop;
    tide__list_push_back(&loop->lingering, &js->linger.link);
    tide__list_init(&js->inflight);
    js->refs = 1;
    js->loop = loop;
    loop->jobs = js;
    return js;
}

static void job_done(tide_loop *loop, struct tide__call *c, bool cancel);

static struct tide__job *job_new(tide_loop *loop, int cls, tide_work_fn fn,
                                 void *arg, void (*free_result)(void *))
{
    struct tide__jobs *js = jobs_of(loop);
    struct tide__job *j;

    if (!js)
        return NULL;
    if (js->free) {
        j = js->free;
        js->free = j->next_free;
        js->nfree--;
    } else if (!(j = tide__malloc(sizeof *j))) {
        return NULL;
    }
    *j = (struct tide__job){.fn = fn,
                            .arg = arg,
                            .free_result = free_result,
                            .cls = (uint8_t)cls,
                            .loop = loop};
    j->call.run = job_done;
    tide__list_init(&j->link);
    js->refs++;
    return j;
}

/* Submit j for its loop: counted in flight (the loop then spins for it
 * before blocking), listed for close. On failure j is given back. */
static int job_submit(tide_loop *loop, struct tide__job *j)
{
    int err = submit(j);

    if (err < 0) {
        recycle(loop->jobs, j);
        return err;
    }
    tide__list_push_back(&loop->jobs->inflight, &j->link);
    loop->remote_expected++;
    return 0;
}

/* The loop gives up on in-flight j (see the top of the file): a queued
 * one is taken off its queue and given back, a running one left to its
 * worker; one already posted stays the loop's, its completion finds no
 * one to deliver to (j->co and j->fut are cleared) and drops the result. */
static void abandon(tide_loop *loop, struct tide__job *j)
{
    struct tide__jobs *js = loop->jobs;

    /* Everything the loop does to j happens before the swap below: after
     * it, a running j is its worker's, which may free it at once. */
    tide__list_remove(&j->link); /* job_done's own remove is then a no-op */
    j->co = NULL;
    if (j->fut)
        exec_release(j);
    pthread_mutex_lock(&pool.lock);
    bool queued =
        atomic_load_explicit(&j->state, memory_order_relaxed) == QUEUED;
    if (queued) {
        tide__list_remove(&j->qlink);
        pool.queued--;
        atomic_fetch_sub_explicit(&pool.live, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&pool.lock);
    bool running = false;
    if (!queued) {
        int expect = RUNNING;
        running =
            atomic_compare_exchange_strong_explicit(&j->state, &expect,
                                                    ABANDONED,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire);
    }
    if (!queued && !running) {
        /* DONE: its worker is posting it, if it has not yet; wait for
         * that (a few instructions), so that once close has taken the
         * posted list in no thread will touch the loop again. */
        for (;;) {
            pthread_mutex_lock(&loop->remote_lock);
            bool posted = j->posted;
            pthread_mutex_unlock(&loop->remote_lock);
            if (posted)
                return; /* job_done gives it back */
            sched_yield();
        }
    }
    loop->remote_expected--;
    if (queued) {
        drop_result(j); /* never ran: only an owned arg to free */
        recycle(js, j);
    } else
        jobs_unref(js); /* the worker frees it */
}

/* A posted job reaches its loop (or is dropped at close: cancel). */
static void job_done(tide_loop *loop, struct tide__call *c, bool cancel)
{
    struct tide__job *j = tide__container_of(c, struct tide__job, call);

    loop->remote_unrun--;
    loop->remote_expected--;
    tide__list_remove(&j->link);
    j->delivered = true;
    if (j->co && !cancel) {
        tide__wake(loop, j->co, 0); /* to_thread takes it from here */
        return;
    }
    if (j->fut) {
        struct exec_future *ef = j->fut;
        /* Only the job's own reference left: nobody can read it. */
        if (!cancel && !ef->fut.done && ef->fut.refs > 1) {
            tide__future_complete(&ef->fut, j->err, j->err ? NULL : j->result);
            if (!j->err)
                j->result = NULL;
        }
        exec_release(j);
    }
    drop_result(j);
    recycle(loop->jobs, j);
}

/* ---- to_thread -----------------------------------------------------------
 */

/* The awaiting task is cancelled: give up on the job, and wake the task
 * with -EBADF, which says "the job is gone" (a cancel request made while
 * it is queued to resume then stays pending: see tide__suspend). */
static void to_thread_cancel(tide_loop *loop, struct tide__wait *w)
{
    struct tide__job *j = tide__container_of(w, struct tide__job, wait);
    struct tide__coro *co = j->co;

    abandon(loop, j);
    tide__wake(loop, co, -EBADF);
}

static void describe_job(tide_loop *loop, const struct tide__wait *w,
                         char *buf, size_t n)
{
    static const char *const names[NCLASSES] = {"cpu", "file", "dns"};
    const struct tide__job *j = tide__container_of(w, struct tide__job, wait);
    int state = atomic_load_explicit(&j->state, memory_order_relaxed);

    (void)loop;
    snprintf(buf, n, "to_thread (%s class, %s)", names[j->cls],
             state == QUEUED    ? "queued"
             : state == RUNNING ? "running"
                                : "done");
}

static const struct tide__wait_kind to_thread_kind = {
    .what = "to_thread",
    .describe = describe_job,
};

static bool class_ok(int cls)
{
    return cls >= 0 && cls < NCLASSES;
}

static int to_thread(int cls, tide_work_fn fn, void *arg,
                     void (*free_result)(void *), bool drop_arg, void **result)
{
    if (!fn || !class_ok(cls))
        return -EINVAL;
    tide_loop *loop = tide__task_loop();
    if (!loop)
        return -EPERM;
    struct tide__job *j = job_new(loop, cls, fn, arg, free_result);
    if (!j)
        return -ENOMEM;
    j->drop_arg = drop_arg;
    j->co = loop->current;
    j->wait = (struct tide__wait){.cancel = to_thread_cancel,
                                  .kind = &to_thread_kind};
    int err = job_submit(loop, j);
    if (err < 0)
        return err;
    err = tide__suspend(loop, &j->wait);
    if (err == -EBADF)
        return -ECANCELED; /* the cancel hook gave the job up */
    /* Delivered (job_done woke us). A request that came while we were
     * queued to resume (err -ECANCELED) gives back what was granted. */
    struct tide__jobs *js = loop->jobs;
    if (err == 0) {
        err = j->err;
        if (result)
            *result = j->result;
        else
            drop_result(j);
    } else {
        drop_result(j);
    }
    recycle(js, j);
    return err;
}

int tide_to_thread_ex(int cls, tide_work_fn fn, void *arg,
                      void (*free_result)(void *), void **result)
{
    return to_thread(cls, fn, arg, free_result, false, result);
}

int tide__to_thread_owned(int cls, tide_work_fn fn, void *arg,
                          void (*drop)(void *arg), void **result)
{
    return to_thread(cls, fn, arg, drop, true, result);
}

int tide_to_thread(tide_work_fn fn, void *arg, void **result)
{
    return tide_to_thread_ex(TIDE_POOL_CPU, fn, arg, NULL, result);
}

/* ---- run_in_executor --------------------------------------------------- */

static bool exec_cancel(tide_future *f)
{
    struct exec_future *ef = tide__container_of(f, struct exec_future, fut);

    if (f->done || f->loop->closed)
        return false;
    if (ef->job) {
        tide_future_retain(f); /* abandon lets go of the job's reference */
        abandon(f->loop, ef->job);
        tide__future_cancel_plain(f);
        tide_future_release(f);
        return true;
    }
    return tide__future_cancel_plain(f);
}

static void exec_free(tide_future *f)
{
    tide__future_free_record(f, tide__free); /* fut is the record's start */
}

static void exec_describe(tide_future *f, char *buf, size_t n)
{
    snprintf(buf, n, "executor future %p", (void *)f);
}

static const struct tide__future_ops exec_ops = {
    .cancel = exec_cancel,
    .free = exec_free,
    .describe = exec_describe,
};

tide_future *tide_run_in_executor(tide_loop *loop, int cls, tide_work_fn fn,
                                  void *arg, void (*free_result)(void *))
{
    if (!fn || !class_ok(cls)) {
        errno = EINVAL;
        return NULL;
    }
    loop = tide__loop_resolve(loop);
    if (!loop)
        return NULL;
    if (loop->closed || loop->closing) {
        errno = EINVAL;
        return NULL;
    }
    /* Debug mode tracks it as it does every future (named by this
     * site: the caller's is not passed in). */
    bool tracked = loop->debug != NULL;
    struct exec_future *ef =
        tide__future_alloc(loop, tracked, sizeof *ef, "executor future",
                           __FILE__, __LINE__, tide__malloc);
    if (!ef)
        return NULL;
    tide__future_init(&ef->fut, loop, &exec_ops, tracked);
    ef->job = job_new(loop, cls, fn, arg, free_result);
    if (!ef->job) {
        tide_future_release(&ef->fut);
        errno = ENOMEM;
        return NULL;
    }
    ef->job->fut = ef;
    tide_future_retain(&ef->fut); /* the job's */
    int err = job_submit(loop, ef->job);
    if (err < 0) {
        ef->job = NULL;
        tide_future_release(&ef->fut);
        tide_future_release(&ef->fut);
        errno = -err;
        return NULL;
    }
    return &ef->fut;
}
