/* Futures: states and outcomes, setting twice (-EINVAL, nothing changes),
 * setting a task or a gather by hand (-EINVAL), result on a pending
 * future (-EAGAIN), cancel semantics, done callbacks
 * (scheduled, never inline: B26; in the order added, waiters included;
 * added after done: still scheduled; B25: a callback adds callbacks and
 * drops the last reference), reference counts, futures after their loop
 * closed (valid, readable, -ESHUTDOWN), NULL arguments everywhere,
 * tide_future_new under allocation failure, and a double release caught
 * by ASan at the second call (debug mode's own check: test_debug.c).
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char order[256];

struct cb_log {
    tide_future *expect_f;
    int calls;
    void *arg_seen;
};

static void log_cb(tide_future *f, void *arg)
{
    struct cb_log *l = arg;

    CHECK(f == l->expect_f);
    CHECK(tide_future_done(f));
    l->calls++;
}

static void tag_cb(tide_future *f, void *arg)
{
    CHECK(tide_future_done(f));
    strcat(order, arg);
}

/* ---- states -------------------------------------------------------- */

TEST(new_future_is_pending)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    CHECK_NOT_NULL(f);
    CHECK(!tide_future_done(f));
    CHECK(!tide_future_cancelled(f));
    CHECK(!tide_future_is_task(f));
    CHECK(tide_future_get_loop(f) == loop);
    void *v = IPTR(1);
    CHECK_ERR(tide_future_result(f, &v), -EAGAIN);
    CHECK_ERR(tide_future_result(f, NULL), -EAGAIN);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(set_result_once)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    CHECK_EQ(tide_future_set_result(f, IPTR(42)), 0);
    CHECK(tide_future_done(f));
    CHECK(!tide_future_cancelled(f));
    void *v = NULL;
    CHECK_EQ(tide_future_result(f, &v), 0);
    CHECK_EQ(PINT(v), 42);
    CHECK_EQ(tide_future_result(f, NULL), 0);
    /* Done: every completion is refused and changes nothing. */
    CHECK_ERR(tide_future_set_result(f, IPTR(43)), -EINVAL);
    CHECK_ERR(tide_future_set_error(f, -EIO), -EINVAL);
    CHECK(!tide_future_cancel(f));
    CHECK_EQ(tide_future_result(f, &v), 0);
    CHECK_EQ(PINT(v), 42);
    CHECK(!tide_future_cancelled(f));
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(set_result_null_value)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    CHECK_EQ(tide_future_set_result(f, NULL), 0);
    void *v = IPTR(5);
    CHECK_EQ(tide_future_result(f, &v), 0);
    CHECK_NULL(v);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(set_error_once)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    CHECK_ERR(tide_future_set_error(f, 0), -EINVAL);
    CHECK_ERR(tide_future_set_error(f, 5), -EINVAL);
    CHECK(!tide_future_done(f));
    CHECK_EQ(tide_future_set_error(f, -ENOENT), 0);
    CHECK(tide_future_done(f));
    CHECK(!tide_future_cancelled(f));
    void *v = IPTR(7);
    CHECK_ERR(tide_future_result(f, &v), -ENOENT);
    CHECK_ERR(tide_future_set_error(f, -EIO), -EINVAL);
    CHECK_ERR(tide_future_set_result(f, NULL), -EINVAL);
    CHECK(!tide_future_cancel(f));
    CHECK_ERR(tide_future_result(f, NULL), -ENOENT);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(set_error_ecanceled_makes_it_cancelled)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    CHECK_EQ(tide_future_set_error(f, -ECANCELED), 0);
    CHECK(tide_future_done(f));
    CHECK(tide_future_cancelled(f));
    CHECK_ERR(tide_future_result(f, NULL), -ECANCELED);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(cancel_plain_future)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    struct cb_log l = {f, 0, NULL};
    CHECK_EQ(tide_future_add_done_callback(f, log_cb, &l), 0);
    CHECK(tide_future_cancel(f));
    CHECK(tide_future_done(f)); /* at once */
    CHECK(tide_future_cancelled(f));
    CHECK_ERR(tide_future_result(f, NULL), -ECANCELED);
    CHECK_EQ(l.calls, 0); /* not inside cancel */
    CHECK(!tide_future_cancel(f));
    CHECK_ERR(tide_future_set_result(f, IPTR(1)), -EINVAL);
    CHECK_ERR(tide_future_set_error(f, -EIO), -EINVAL);
    CHECK_ERR(tide_future_result(f, NULL), -ECANCELED);
    run_once(loop);
    CHECK_EQ(l.calls, 1);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *return_arg(void *arg)
{
    return arg;
}

/* Only a plain future is completed by hand: a task's outcome is its
 * body's, a gather's its children's (each kind of future has its ops). */
TEST(only_plain_futures_are_set_by_hand)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, return_arg, IPTR(7));
    tide_future *f = tide_future_new(loop);
    tide_future *g = tide_gather(&f, 1, 0);
    CHECK_NOT_NULL(t);
    CHECK_NOT_NULL(g);
    CHECK_ERR(tide_future_set_result(t, IPTR(1)), -EINVAL);
    CHECK_ERR(tide_future_set_error(t, -EIO), -EINVAL);
    CHECK_ERR(tide_future_set_result(g, IPTR(1)), -EINVAL);
    CHECK_ERR(tide_future_set_error(g, -EIO), -EINVAL);
    CHECK(!tide_future_done(t));
    CHECK(!tide_future_done(g));
    void *v = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &v), 0);
    CHECK_EQ(PINT(v), 7);
    CHECK_EQ(tide_future_set_result(f, IPTR(3)), 0);
    CHECK_EQ(tide_run_until_complete(loop, g, &v), 0);
    CHECK_EQ(PINT(((void **)v)[0]), 3);
    tide_future_release(g);
    tide_future_release(f);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(null_arguments)
{
    tide_loop *loop = tide_loop_new();
    struct cb_log l = {NULL, 0, NULL};
    CHECK_ERR(tide_future_set_result(NULL, NULL), -EINVAL);
    CHECK_ERR(tide_future_set_error(NULL, -EIO), -EINVAL);
    CHECK(!tide_future_cancel(NULL));
    CHECK(!tide_future_done(NULL));
    CHECK(!tide_future_cancelled(NULL));
    void *v = NULL;
    CHECK_ERR(tide_future_result(NULL, &v), -EINVAL);
    CHECK_ERR(tide_future_add_done_callback(NULL, log_cb, &l), -EINVAL);
    CHECK_NULL(tide_future_retain(NULL));
    tide_future_release(NULL);
    CHECK_NULL(tide_future_get_loop(NULL));
    CHECK(!tide_future_is_task(NULL));
    tide_future *f = tide_future_new(loop);
    CHECK_ERR(tide_future_add_done_callback(f, NULL, &l), -EINVAL);
    CHECK_EQ(tide_future_set_result(f, NULL), 0);
    run_once(loop);
    CHECK_EQ(l.calls, 0);
    tide_future_release(f);
    /* A NULL loop is the thread's loop. */
    tide_set_event_loop(loop);
    f = tide_future_new(NULL);
    CHECK_NOT_NULL(f);
    CHECK(tide_future_get_loop(f) == loop);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- done callbacks ------------------------------------------------ */

struct locked {
    pthread_mutex_t mu;
    int ran;
    int trylock_rc;
};

static void lock_cb(tide_future *f, void *arg)
{
    struct locked *k = arg;

    (void)f;
    k->trylock_rc = pthread_mutex_trylock(&k->mu);
    if (k->trylock_rc == 0)
        pthread_mutex_unlock(&k->mu);
    k->ran++;
}

TEST(b26_callbacks_never_run_inside_set_result)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    struct locked k = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
    CHECK_EQ(tide_future_add_done_callback(f, lock_cb, &k), 0);
    CHECK_EQ(tide_future_add_done_callback(f, lock_cb, &k), 0);
    CHECK_EQ(k.ran, 0);
    pthread_mutex_lock(&k.mu);
    CHECK_EQ(tide_future_set_result(f, NULL), 0);
    CHECK_EQ(k.ran, 0);
    pthread_mutex_unlock(&k.mu);
    run_once(loop);
    CHECK_EQ(k.ran, 2);
    CHECK_EQ(k.trylock_rc, 0); /* the callback ran on a fresh stack */
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(b26_callbacks_never_run_inside_set_error_or_cancel)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    tide_future *g = tide_future_new(loop);
    struct cb_log lf = {f, 0, NULL}, lg = {g, 0, NULL};
    CHECK_EQ(tide_future_add_done_callback(f, log_cb, &lf), 0);
    CHECK_EQ(tide_future_add_done_callback(g, log_cb, &lg), 0);
    CHECK_EQ(tide_future_set_error(f, -EIO), 0);
    CHECK(tide_future_cancel(g));
    CHECK_EQ(lf.calls, 0);
    CHECK_EQ(lg.calls, 0);
    run_once(loop);
    CHECK_EQ(lf.calls, 1);
    CHECK_EQ(lg.calls, 1);
    tide_future_release(f);
    tide_future_release(g);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(callback_added_after_done_is_scheduled)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    struct cb_log l = {f, 0, NULL};
    CHECK_EQ(tide_future_set_result(f, NULL), 0);
    run_once(loop);
    CHECK_EQ(tide_future_add_done_callback(f, log_cb, &l), 0);
    CHECK_EQ(l.calls, 0); /* not inline */
    run_once(loop);
    CHECK_EQ(l.calls, 1);
    run_once(loop);
    CHECK_EQ(l.calls, 1); /* once */
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(callbacks_run_in_the_order_added)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    static const char *tags[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    order[0] = '\0';
    for (int i = 0; i < 8; i++)
        CHECK_EQ(tide_future_add_done_callback(f, tag_cb, (void *)tags[i]), 0);
    CHECK_EQ(tide_future_set_result(f, NULL), 0);
    CHECK_EQ(tide_future_add_done_callback(f, tag_cb, "z"), 0);
    CHECK_EQ(tide_future_add_done_callback(f, tag_cb, "a"), 0); /* twice */
    run_once(loop);
    run_once(loop);
    CHECK_STR_EQ(order, "abcdefghza");
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *await_and_tag(void *f)
{
    CHECK_EQ(tide_await(f, NULL), 0);
    strcat(order, "T");
    return NULL;
}

TEST(waiters_and_callbacks_in_the_order_added)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    order[0] = '\0';
    tide_future *t = tide_create_task(loop, await_and_tag, f);
    run_once(loop); /* the task now waits on f */
    CHECK_EQ(tide_future_add_done_callback(f, tag_cb, "C"), 0);
    CHECK_EQ(tide_future_set_result(f, NULL), 0);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    run_once(loop);
    CHECK_STR_EQ(order, "TC");
    tide_future_release(t);
    tide_future_release(f);

    /* The other way round: the callback first, then the waiter. */
    f = tide_future_new(loop);
    order[0] = '\0';
    CHECK_EQ(tide_future_add_done_callback(f, tag_cb, "C"), 0);
    t = tide_create_task(loop, await_and_tag, f);
    run_once(loop);
    CHECK_EQ(tide_future_set_result(f, NULL), 0);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_STR_EQ(order, "CT");
    tide_future_release(t);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct handoff {
    tide_future *f;
    int resumed;
    int seen_inside;
    int seen_after_yield;
};

static void *waiter(void *arg)
{
    struct handoff *h = arg;

    CHECK_EQ(tide_await(h->f, NULL), 0);
    h->resumed = 1;
    return NULL;
}

static void *completer(void *arg)
{
    struct handoff *h = arg;

    CHECK_EQ(tide_future_set_result(h->f, NULL), 0);
    h->seen_inside = h->resumed; /* not resumed inside set_result */
    CHECK_EQ(tide_sleep(0), 0);
    h->seen_after_yield = h->resumed; /* resumed on a later step */
    return NULL;
}

TEST(b26_waiter_not_resumed_inside_set_result_from_a_task)
{
    tide_loop *loop = tide_loop_new();
    struct handoff h = {tide_future_new(loop), 0, -1, -1};
    tide_future *w = tide_create_task(loop, waiter, &h);
    tide_future *c = tide_create_task(loop, completer, &h);
    CHECK_EQ(tide_run_until_complete(loop, c, NULL), 0);
    CHECK_EQ(h.seen_inside, 0);
    CHECK_EQ(h.seen_after_yield, 1);
    CHECK(tide_future_done(w));
    tide_future_release(w);
    tide_future_release(c);
    tide_future_release(h.f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* B25: 64 callbacks; the first adds 10 more and drops the last reference
 * to the future. */
static int b25_seen[74];
static int b25_n;

static void b25_cb(tide_future *f, void *arg)
{
    int i = (int)PINT(arg);

    CHECK(tide_future_done(f));
    void *v = NULL;
    CHECK_EQ(tide_future_result(f, &v), 0);
    CHECK_EQ(PINT(v), 99);
    b25_seen[b25_n++] = i;
    if (i == 0) {
        for (int k = 64; k < 74; k++)
            CHECK_EQ(tide_future_add_done_callback(f, b25_cb, IPTR(k)), 0);
        tide_future_release(f);
    }
}

TEST(b25_callback_adds_more_and_drops_last_reference)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    b25_n = 0;
    for (int i = 0; i < 64; i++)
        CHECK_EQ(tide_future_add_done_callback(f, b25_cb, IPTR(i)), 0);
    CHECK_EQ(tide_future_set_result(f, IPTR(99)), 0);
    for (int i = 0; i < 4 && b25_n < 74; i++)
        run_once(loop);
    CHECK_EQ(b25_n, 74);
    for (int i = 0; i < 74; i++)
        CHECK_EQ(b25_seen[i], i);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void release_cb(tide_future *f, void *arg)
{
    (void)arg;
    tide_future_release(f);
}

TEST(callback_releasing_last_reference_of_cancelled_future)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    struct cb_log l = {f, 0, NULL};
    CHECK_EQ(tide_future_add_done_callback(f, release_cb, NULL), 0);
    CHECK_EQ(tide_future_add_done_callback(f, log_cb, &l), 0);
    CHECK(tide_future_cancel(f));
    run_once(loop);
    CHECK_EQ(l.calls, 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- references ---------------------------------------------------- */

TEST(retain_and_release)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    CHECK(tide_future_retain(f) == f);
    CHECK(tide_future_retain(f) == f);
    tide_future_release(f);
    tide_future_release(f);
    CHECK_EQ(tide_future_set_result(f, IPTR(1)), 0); /* still alive */
    void *v = NULL;
    CHECK_EQ(tide_future_result(f, &v), 0);
    CHECK_EQ(PINT(v), 1);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(release_pending_future_with_callbacks)
{
    tide_loop *loop = tide_loop_new();
    struct cb_log l = {NULL, 0, NULL};
    for (int i = 0; i < 100; i++) {
        tide_future *f = tide_future_new(loop);
        l.expect_f = f;
        CHECK_EQ(tide_future_add_done_callback(f, log_cb, &l), 0);
        CHECK_EQ(tide_future_add_done_callback(f, log_cb, &l), 0);
        tide_future_release(f);
    }
    run_once(loop);
    CHECK_EQ(l.calls, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(release_done_future_with_scheduled_callbacks)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    struct cb_log l = {f, 0, NULL};
    CHECK_EQ(tide_future_add_done_callback(f, log_cb, &l), 0);
    CHECK_EQ(tide_future_set_result(f, NULL), 0);
    tide_future_release(f); /* the scheduled callback keeps f alive */
    run_once(loop);
    CHECK_EQ(l.calls, 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- after the loop closed ----------------------------------------- */

TEST(future_outlives_its_loop)
{
    tide_loop *loop = tide_loop_new();
    tide_future *done = tide_future_new(loop);
    tide_future *failed = tide_future_new(loop);
    tide_future *pending = tide_future_new(loop);
    tide_future *scheduled = tide_future_new(loop);
    struct cb_log l = {scheduled, 0, NULL};
    CHECK_EQ(tide_future_set_result(done, IPTR(8)), 0);
    CHECK_EQ(tide_future_set_error(failed, -EPIPE), 0);
    CHECK_EQ(tide_future_add_done_callback(scheduled, log_cb, &l), 0);
    CHECK_EQ(tide_future_set_result(scheduled, NULL), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(l.calls, 0); /* dropped with the loop, never run */
    void *v = NULL;
    CHECK(tide_future_done(done));
    CHECK_EQ(tide_future_result(done, &v), 0);
    CHECK_EQ(PINT(v), 8);
    CHECK_ERR(tide_future_result(failed, NULL), -EPIPE);
    CHECK(!tide_future_done(pending));
    CHECK_ERR(tide_future_result(pending, NULL), -EAGAIN);
    CHECK_NULL(tide_future_get_loop(done));
    CHECK_NULL(tide_future_get_loop(pending));
    CHECK_ERR(tide_future_set_result(pending, NULL), -ESHUTDOWN);
    CHECK_ERR(tide_future_set_error(pending, -EIO), -ESHUTDOWN);
    CHECK_ERR(tide_future_add_done_callback(pending, log_cb, &l), -ESHUTDOWN);
    CHECK_ERR(tide_future_add_done_callback(done, log_cb, &l), -ESHUTDOWN);
    CHECK(tide_future_retain(done) == done);
    tide_future_release(done);
    tide_future_release(done);
    tide_future_release(failed);
    tide_future_release(pending);
    tide_future_release(scheduled);
    LEAK_GATE();
}

/* ---- allocation failure -------------------------------------------- */

TEST(future_new_fails_cleanly_without_memory)
{
    /* On a fresh loop, see whether the first future allocates at all. */
    tide_loop *loop = tide_loop_new();
    long live = tide__alloc_live();
    tide_future *probe = tide_future_new(loop);
    int allocates = tide__alloc_live() > live;
    tide_future_release(probe);
    CHECK_EQ(tide_loop_close(loop), 0);

    int failures = 0;
    for (long n = 1; n <= 8; n++) {
        loop = tide_loop_new();
        CHECK_NOT_NULL(loop);
        tide__alloc_fail_after(n);
        errno = 0;
        tide_future *f = tide_future_new(loop);
        int e = errno;
        tide__alloc_fail_after(0);
        if (!f) {
            CHECK_ERR(e, ENOMEM);
            failures++;
        } else {
            CHECK_EQ(tide_future_set_result(f, NULL), 0);
            tide_future_release(f);
        }
        /* The loop is intact after a failure. */
        f = tide_future_new(loop);
        CHECK_NOT_NULL(f);
        tide_future_release(f);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    if (allocates)
        CHECK(failures > 0);
    LEAK_GATE();
}

TEST(add_done_callback_fails_cleanly_without_memory)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    struct cb_log l = {f, 0, NULL};
    int added = 0;
    for (long n = 1; n <= 40; n++) {
        tide__alloc_fail_after(n);
        int rc = tide_future_add_done_callback(f, log_cb, &l);
        tide__alloc_fail_after(0);
        CHECK(rc == 0 || rc == -ENOMEM);
        added += rc == 0;
    }
    CHECK_EQ(tide_future_set_result(f, NULL), 0);
    run_once(loop);
    CHECK_EQ(l.calls, added);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- releasing twice: ASan stops at the second release ---------------- */

static void *returns_null(void *arg)
{
    (void)arg;
    return NULL;
}

/* The second release, in a frame of its own that the report must name
 * (not a tail call: ASan stops inside the release). */
static __attribute__((noinline)) void release_again(tide_future *f)
{
    tide_future_release(f);
    _exit(4);
}

static void release_twice(void *kind)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f;
    /* Debug mode would catch it first (test_debug.c), not ASan. */
    CHECK_EQ(tide_loop_set_debug(loop, false), 0);
    if (strcmp(kind, "task") == 0) {
        f = tide_create_task(loop, returns_null, NULL);
        CHECK_EQ(tide_run_until_complete(loop, f, NULL), 0);
    } else {
        f = tide_future_new(loop);
        CHECK_EQ(tide_future_set_result(f, NULL), 0);
    }
    tide_future_release(f);
    release_again(f);
}

TEST(asan_reports_a_second_release_at_the_second_call)
{
    if (!HARNESS_ASAN)
        SKIP("needs AddressSanitizer");
    static const char *const kinds[] = {"task", "future"};
    for (int i = 0; i < 2; i++) {
        char buf[8192];
        int status = harness_run_child(release_twice, (void *)kinds[i], buf,
                                       sizeof buf);
        CHECK(!WIFEXITED(status) || WEXITSTATUS(status) < 3);
        /* The bad access is in tide_future_release, called from the
         * second release: the stack before "freed by" says so. */
        char *freed_by = strstr(buf, "freed by");
        if (freed_by)
            *freed_by = '\0';
        if ((!strstr(buf, "heap-use-after-free") &&
             !strstr(buf, "use-after-poison")) ||
            !strstr(buf, "in tide_future_release") ||
            !strstr(buf, "in release_again"))
            harness_fail(__FILE__, __LINE__, "%s: ASan report: %s", kinds[i],
                         buf);
    }
    LEAK_GATE();
}
