/* Tasks: futures whose value is a coroutine body's return value; await,
 * sleep, fail, names, run_until_complete and tide_run.
 *
 * A task is a future plus a coroutine. The loop's own reference (taken at
 * creation, dropped in task_finish once the coroutine is off its stack)
 * keeps a released task running to its end. Cancelling a task counts the
 * request and hands it to the coroutine layer, which delivers it at the
 * task's suspension point through that point's cancel hook.
 * SPDX-License-Identifier: MIT
 */
#include "task/task.h"

#include "base/alloc.h"
#include "base/block.h"
#include "core/timer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* fut.err holds tide_fail's value while the body runs; fut.aux counts
 * cancel requests (asyncio's cancelling()). */
struct tide__task {
    struct tide_future fut;
    struct tide__coro co;
    tide_fn fn;
    void *arg;
    struct tide__task_info *info; /* NULL until named or debugged */
    uint64_t id;
};

/* Tasks come from the block allocator when they fit. They do, except in
 * sanitizer builds, where a context carries more: there they come from
 * malloc, which is where ASan and LeakSanitizer see best (a leak is
 * reported where the task was created, a use after free with the stacks
 * of the allocation and the free). In debug mode they come from the
 * tracker (tide__future_alloc). */
#define TASK_IN_BLOCK (sizeof(struct tide__task) <= TIDE__BLOCK_SIZE)
#if !defined(TIDE__ASAN) && !defined(TIDE__TSAN) && !defined(TIDE_CTX_UCONTEXT)
_Static_assert(TASK_IN_BLOCK, "a task no longer fits in a block (W1, W3)");
#endif

static void *task_memory(size_t size)
{
    return TASK_IN_BLOCK ? tide__block_alloc() : tide__malloc(size);
}

static void task_memory_free(void *p)
{
    if (TASK_IN_BLOCK)
        tide__block_free(p);
    else
        tide__free(p);
}

static struct tide__task *task_of(tide_future *f)
{
    return tide__container_of(f, struct tide__task, fut);
}

static struct tide__task *task_of_coro(struct tide__coro *co)
{
    return tide__container_of(co, struct tide__task, co);
}

/* ---- the coroutine behind a task ---------------------------------------- */

static void task_body(struct tide__coro *co)
{
    struct tide__task *t = task_of_coro(co);

    t->fut.err = 0;
    void *r = t->fn(t->arg);
    if (t->info && t->info->scope)
        t->info->drop_scopes(&t->fut);
    /* A request still pending (made while it ran, or returned to pending
     * by a wait that completed anyway) is never lost: the task ends
     * cancelled and its value is dropped. */
    int err = co->must_cancel ? -ECANCELED : t->fut.err;
    tide_loop *loop = t->fut.loop;
    if (__builtin_expect(err != 0 && loop->debug != NULL, 0) &&
        err != -ECANCELED)
        tide__debug_task_failed(loop, co, &t->fut, err); /* a hang's cause? */
    tide__future_complete(&t->fut, err, r);
}

static void task_finish(tide_loop *loop, struct tide__coro *co, int err)
{
    struct tide__task *t = task_of_coro(co);

    (void)loop;
    if (err)
        tide__future_complete(&t->fut, err, NULL); /* never started */
    tide_future_release(&t->fut);                  /* the loop's reference */
}

/* Descriptions are written without the C library's formatting, which is
 * not async-signal-safe: the stack overflow handler and the watchdog's
 * signal handler call them. put() and put_uint() append to buf (n > 0
 * bytes), keep it NUL-terminated and return the new length. */
static size_t put(char *buf, size_t n, size_t len, const char *s)
{
    while (*s && len + 1 < n)
        buf[len++] = *s++;
    buf[len] = '\0';
    return len;
}

static size_t put_uint(char *buf, size_t n, size_t len, uint64_t v)
{
    char digits[24];
    int d = 0;

    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (d > 0 && len + 1 < n)
        buf[len++] = digits[--d];
    buf[len] = '\0';
    return len;
}

/* "task 'name'", "task 'Task-<id>'" if it has none; the closing quote
 * always fits. */
static size_t put_name(char *buf, size_t n, const struct tide__task *t)
{
    size_t len = put(buf, n - 1, 0, "task '");

    if (t->info && t->info->name) {
        len = put(buf, n - 1, len, t->info->name);
    } else {
        len = put(buf, n - 1, len, "Task-");
        len = put_uint(buf, n - 1, len, t->id);
    }
    return put(buf, n, len, "'");
}

/* "task 'name' (created at file:line)", the site where it is known. */
static void describe_task(const struct tide__task *t, char *buf, size_t n)
{
    if (n < 32) {
        put(buf, n, 0, "a task");
        return;
    }
    size_t len = put_name(buf, n, t);
    const char *file;
    int line;
    if (t->fut.tracked && tide__track_site(&t->fut, &file, &line)) {
        len = put(buf, n, len, " (created at ");
        len = put(buf, n, len, file);
        len = put(buf, n, len, ":");
        len = put_uint(buf, n, len, (uint64_t)(unsigned)line);
        put(buf, n, len, ")");
    }
}

void tide__task_describe(tide_future *f, char *buf, size_t n)
{
    describe_task(task_of(f), buf, n);
}

static void describe_coro(struct tide__coro *co, char *buf, size_t n)
{
    describe_task(task_of_coro(co), buf, n);
}

static void name_coro(struct tide__coro *co, char *buf, size_t n)
{
    if (n < 32)
        put(buf, n, 0, "a task");
    else
        put_name(buf, n, task_of_coro(co));
}

static void cancel_coro(tide_loop *loop, struct tide__coro *co)
{
    (void)loop;
    tide_future_cancel(&task_of_coro(co)->fut);
}

static const struct tide__coro_ops task_coro_ops = {
    .body = task_body,
    .finish = task_finish,
    .describe = describe_coro,
    .name = name_coro,
    .cancel = cancel_coro,
};

static bool task_cancel(tide_future *f)
{
    struct tide__task *t = task_of(f);

    if (f->done)
        return false;
    t->fut.aux++;
    return tide__coro_cancel(f->loop, &t->co);
}

static void task_free(tide_future *f)
{
    struct tide__task *t = task_of(f);

    if (t->info) {
        tide__free(t->info->name);
        tide__free(t->info);
    }
    tide__future_free_record(f, task_memory_free);
}

static void task_blockers(tide_future *f,
                          void (*fn)(struct tide__coro *co, void *arg),
                          void *arg)
{
    fn(&task_of(f)->co, arg);
}

static const struct tide__future_ops task_ops = {
    .cancel = task_cancel,
    .free = task_free,
    .describe = tide__task_describe,
    .blockers = task_blockers,
};

/* For the stack overflow message: async-signal-safe, no allocation. The
 * task on `st`: its owner; the task that just ended on it (its last
 * switch is checked too); on the shared compact stack, the occupant;
 * else (a borrowed stack, or st NULL) the running one. A check at a
 * switch runs after loop->current names the next task, hence the order. */
static void describe_stack(const struct tide__stack *st, char *buf, size_t n)
{
    tide_loop *loop = tide__running;
    struct tide__coro *co = loop ? loop->current : NULL;

    if (st && st->owner)
        co = st->owner;
    else if (st && loop && loop->zombie && loop->zombie->stack == st)
        co = loop->zombie;
    else if (st && loop && st == loop->compact_stack && loop->compact_occupant)
        co = loop->compact_occupant;
    if (!co || n < 32) {
        memcpy(buf, "a coroutine", sizeof "a coroutine");
        return;
    }
    put_name(buf, n, task_of_coro(co));
}

tide_future *tide__create_task_at(tide_loop *loop, tide_fn fn, void *arg,
                                  const tide_task_options *opt,
                                  const char *file, int line)
{
    loop = tide__loop_resolve(loop);
    if (!loop)
        return NULL;
    if (!fn || loop->closed) {
        errno = EINVAL;
        return NULL;
    }
    int pool = tide__loop_pool(loop, opt ? opt->stack_size : 0);
    if (__builtin_expect(loop->compact_default || (opt && opt->compact), 0) &&
        pool >= 0) {
        if (opt && opt->compact)
            pool = opt->stack_size ? -EINVAL : TIDE__POOL_COMPACT;
        else if (!(opt && opt->stack_size))
            pool = TIDE__POOL_COMPACT; /* the loop's default */
    }
    if (pool < 0) {
        errno = -pool;
        return NULL;
    }
    struct tide__task_info *info = NULL;
    if (opt && opt->name) {
        info = tide__calloc(1, sizeof *info);
        if (!info || !(info->name = tide__strdup(opt->name)))
            goto free_info;
    }
    bool tracked = loop->debug != NULL;
    struct tide__task *t = tide__future_alloc(loop, tracked, sizeof *t, "task",
                                              file, line, task_memory);
    if (!t)
        goto free_info;
    t->info = info;
    tide__stack_set_describe(describe_stack);
    tide__future_init(&t->fut, loop, &task_ops, tracked);
    if (__builtin_expect(tracked, 0))
        tide__debug_check_arg(loop, arg, "a new task");
    t->fut.refs = 2; /* the caller's and the loop's */
    t->fn = fn;
    t->arg = arg;
    t->id = ++loop->next_task_id;
    tide__coro_start(loop, &t->co, &task_coro_ops, (unsigned)pool,
                     opt && opt->eager);
    if (__builtin_expect(loop->closing, 0)) {
        /* Made while the loop closes: cancelled at once (a counted
         * request), so that closing ends. */
        t->fut.aux = 1;
        t->co.must_cancel = true;
    }
    if (opt && opt->eager)
        tide__coro_run_eagerly(loop, &t->co);
    return &t->fut;
free_info:
    if (info)
        tide__free(info->name);
    tide__free(info);
    return NULL;
}

#undef tide_create_task
#undef tide_create_task_ex

tide_future *tide_create_task_ex(tide_loop *loop, tide_fn fn, void *arg,
                                 const tide_task_options *opt)
{
    return tide__create_task_at(loop, fn, arg, opt, NULL, 0);
}

tide_future *tide_create_task(tide_loop *loop, tide_fn fn, void *arg)
{
    return tide__create_task_at(loop, fn, arg, NULL, NULL, 0);
}

static struct tide__task *current_task(void)
{
    tide_loop *loop = tide__task_loop();

    return loop ? task_of_coro(loop->current) : NULL;
}

tide_future *tide_current_task(void)
{
    struct tide__task *t = current_task();

    return t ? &t->fut : NULL;
}

bool tide_future_is_task(const tide_future *f)
{
    return f && f->ops == &task_ops;
}

static struct tide__task_info *info_of(struct tide__task *t)
{
    if (!t->info)
        t->info = tide__calloc(1, sizeof *t->info);
    return t->info;
}

int tide_task_set_name(tide_future *f, const char *name)
{
    if (!tide_future_is_task(f) || !name)
        return -EINVAL;
    struct tide__task_info *info = info_of(task_of(f));
    return info ? tide__set_name(&info->name, name) : -ENOMEM;
}

const char *tide_task_get_name(tide_future *f)
{
    if (!tide_future_is_task(f)) {
        errno = EINVAL;
        return NULL;
    }
    struct tide__task *t = task_of(f);
    struct tide__task_info *info = info_of(t);
    if (info && !info->name) {
        char buf[32];
        snprintf(buf, sizeof buf, "Task-%llu", (unsigned long long)t->id);
        info->name = tide__strdup(buf);
    }
    return info ? info->name : NULL;
}

struct tide__task_info *tide__task_info_make(tide_future *f)
{
    return info_of(task_of(f));
}

tide_future *tide__task_of_coro(struct tide__coro *co)
{
    return &task_of_coro(co)->fut;
}

void tide__task_withdraw_pending(tide_future *f)
{
    task_of(f)->co.must_cancel = false;
}

int tide_task_cancelling(const tide_future *f)
{
    if (!tide_future_is_task(f))
        return -EINVAL;
    return (int)f->aux;
}

int tide_task_uncancel(tide_future *f)
{
    if (!tide_future_is_task(f))
        return -EINVAL;
    struct tide__task *t = task_of(f);
    if (f->aux > 0 && --f->aux == 0)
        t->co.must_cancel = false; /* asyncio 3.13: nothing left to deliver */
    return (int)f->aux;
}

struct all_tasks {
    tide_future **out;
    size_t cap, n;
};

static void collect(tide_loop *loop, struct tide__coro *co, void *arg)
{
    struct all_tasks *a = arg;

    (void)loop;
    if (a->n < a->cap)
        a->out[a->n] = tide_future_retain(tide__task_of_coro(co));
    a->n++;
}

size_t tide_all_tasks(tide_loop *loop, tide_future **out, size_t cap)
{
    struct all_tasks a = {out, out ? cap : 0, 0};

    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return 0;
    tide__loop_each_coro(loop, collect, &a);
    return a.n;
}

/* Debug mode: tide_fail(EIO), a positive errno, or tide_fail(0). */
static void report_bad_fail(tide_loop *loop, struct tide__task *t, int err)
{
    char who[256], msg[400];
    const char *name = err > 0 ? tide_err_name(err) : NULL;

    describe_task(t, who, sizeof who);
    if (name && strcmp(name, "UNKNOWN") != 0)
        snprintf(msg, sizeof msg,
                 "%s called tide_fail(%d): an error is a "
                 "negative errno (tide_fail(-%s)); the task fails with "
                 "-EINVAL",
                 who, err, name);
    else
        snprintf(msg, sizeof msg,
                 "%s called tide_fail(%d): an error is a "
                 "negative errno; the task fails with -EINVAL",
                 who, err);
    tide__loop_report(loop, msg);
}

void *tide_fail(int err)
{
    struct tide__task *t = current_task();

    if (!t)
        return NULL;
    if (err >= 0 && t->fut.loop->debug)
        report_bad_fail(t->fut.loop, t, err);
    t->fut.err = err < 0 ? err : -EINVAL;
    return NULL;
}

/* ---- await and sleep ------------------------------------------------------
 */

struct await {
    struct tide__wait wait;
    struct tide__waiter waiter;
    tide_future *f;
    bool forwarded; /* a cancel request went on to f */
};

/* Cancelling a task that awaits f cancels f; the await then returns when
 * f is done, with f's outcome. */
static void await_cancel(tide_loop *loop, struct tide__wait *w)
{
    struct await *a = tide__container_of(w, struct await, wait);

    if (tide_future_cancel(a->f))
        a->forwarded = true;
    else
        tide__wake(loop, a->waiter.co, -ECANCELED);
}

/* "task 'b'" (a task: the one to finish), or what the future's kind says
 * of itself ("future 0x...", "gather 0x... of 3, 2 pending"). */
static void await_describe(tide_loop *loop, const struct tide__wait *w,
                           char *buf, size_t n)
{
    const struct await *a = tide__container_of(w, struct await, wait);

    if (a->f->ops == &task_ops)
        tide__coro_name(loop, &task_of(a->f)->co, buf, n);
    else
        a->f->ops->describe(a->f, buf, n);
}

static void await_blockers(tide_loop *loop, const struct tide__wait *w,
                           void (*fn)(struct tide__coro *co, void *arg),
                           void *arg)
{
    const struct await *a = tide__container_of(w, struct await, wait);

    (void)loop;
    if (a->f->ops->blockers)
        a->f->ops->blockers(a->f, fn, arg);
}

static const struct tide__wait_kind await_kind = {
    .what = "await",
    .describe = await_describe,
    .blockers = await_blockers,
};

int tide_await(tide_future *f, void **result)
{
    if (!f)
        return -EINVAL;
    if (f->done)
        return tide_future_result(f, result);
    int err = tide__in_task_of(f->loop);
    if (err < 0)
        return err;
    tide_loop *loop = f->loop;
    struct tide__task *self = task_of_coro(loop->current);
    if (f == &self->fut)
        return -EINVAL;

    struct await local, *a = tide__wait_frame(loop, &local, sizeof local);
    if (!a)
        return -ENOMEM;
    *a = (struct await){.wait = {.cancel = await_cancel, .kind = &await_kind},
                        .f = f};
    a->waiter.node.kind = TIDE__NODE_WAITER;
    a->waiter.co = loop->current;
    tide_future_retain(f);
    tide__future_add_node(f, &a->waiter.node);
    err = tide__suspend(loop, &a->wait);
    bool forwarded = a->forwarded;
    if (!f->done)
        tide__future_remove_node(f, &a->waiter.node);
    tide__wait_frame_end(a, &local);
    if (err == 0)
        err = tide_future_result(f, result);
    tide_future_release(f);
    if (err == -ECANCELED)
        self->co.must_cancel = false; /* delivered, with any pending one */
    else if (forwarded)
        tide__task_keep_request(&self->co); /* f swallowed it */
    return err;
}

void tide__task_keep_request(struct tide__coro *co)
{
    if (tide__task_of_coro(co)->aux > 0)
        co->must_cancel = true;
}

int tide_sleep(double seconds)
{
    tide_loop *loop = tide__task_loop();
    int64_t deadline;

    if (isnan(seconds))
        return -EINVAL;
    if (!loop)
        return -EPERM;
    if (seconds <= 0)
        return tide__yield(loop);
    tide__deadline_in(loop, seconds, &deadline);
    return tide__sleep_until(loop, deadline);
}

/* ---- running ---------------------------------------------------------------
 */

static bool future_done(void *arg)
{
    return ((tide_future *)arg)->done;
}

int tide_run_until_complete(tide_loop *loop, tide_future *f, void **result)
{
    loop = tide__loop_resolve(loop);
    if (!loop)
        return -errno;
    if (!f || f->loop != loop || loop->closed)
        return -EINVAL;
    tide_future_retain(f);
    int err = tide__loop_run(loop, future_done, f, &f->done);
    if (err == 0)
        err = tide_future_result(f, result);
    tide_future_release(f);
    return err;
}

int tide_run(tide_fn main, void *arg, void **result)
{
    if (!main)
        return -EINVAL;
    if (tide__running)
        return -EBUSY;
    tide_loop *prev = tide__default_loop();
    tide_loop *loop = tide_loop_new();
    if (!loop)
        return -errno;
    tide_set_event_loop(loop);
    tide_future *t = tide_create_task(loop, main, arg);
    int err = t ? tide_run_until_complete(loop, t, result) : -errno;
    tide_future_release(t); /* before close: debug mode reports the rest */
    tide_loop_close(loop);
    tide_set_event_loop(prev);
    return err;
}
