/* gather: results in the children's order whatever the completion order
 * (and the children overlap in time), the first error failing the gather
 * at once while the other children keep running, TIDE_RETURN_ERRORS
 * (NULL slots, never fails because of a child), cancelling the gather
 * cancels its children, cancelling a task awaiting a gather, a cancelled
 * child, gather(NULL, 0) completing on the next step, nesting, duplicate
 * children, retained children, a gather pending at loop close, bad input,
 * and allocation failure. Timed tests run on the virtual clock.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"

#include <errno.h>
#include <string.h>

struct child {
    double delay;
    int err; /* < 0: fail with it after the delay */
    long value;
    int rc; /* what the sleep returned */
    int ran;
};

static void *child_body(void *arg)
{
    struct child *c = arg;

    c->ran = 1;
    c->rc = tide_sleep(c->delay);
    if (c->rc < 0)
        return tide_fail(c->rc);
    if (c->err < 0)
        return tide_fail(c->err);
    return IPTR(c->value);
}

static void spawn(tide_loop *loop, struct child *c, tide_future **fs, int n)
{
    for (int i = 0; i < n; i++) {
        fs[i] = tide_create_task(loop, child_body, &c[i]);
        CHECK_NOT_NULL(fs[i]);
    }
}

static void release_all(tide_future **fs, int n)
{
    for (int i = 0; i < n; i++)
        tide_future_release(fs[i]);
}

TEST(results_in_order_and_children_overlap)
{
    tide_loop *loop = new_virtual_loop();
    double t0 = tide_loop_time(loop);
    struct child c[3] = {{3, 0, 10, 1, 0}, {1, 0, 20, 1, 0}, {2, 0, 30, 1, 0}};
    tide_future *fs[3];
    spawn(loop, c, fs, 3);
    tide_future *g = tide_gather(fs, 3, 0);
    CHECK_NOT_NULL(g);
    CHECK(!tide_future_is_task(g));
    CHECK(tide_future_get_loop(g) == loop);
    CHECK(!tide_future_done(g));
    release_all(fs, 3); /* the gather retains them */
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, g, &r), 0);
    /* Three sleeps of 3, 1 and 2 s overlap: 3 s in all. */
    CHECK(tide_loop_time(loop) >= t0 + 3 - EARLY);
    CHECK(tide_loop_time(loop) < t0 + 3.5);
    void **res = r;
    CHECK_NOT_NULL(res);
    CHECK_EQ(PINT(res[0]), 10);
    CHECK_EQ(PINT(res[1]), 20);
    CHECK_EQ(PINT(res[2]), 30);
    /* The array is owned by the gather and stays put. */
    void *again = NULL;
    CHECK_EQ(tide_future_result(g, &again), 0);
    CHECK(again == r);
    tide_future_release(g);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct setter {
    tide_future *fs[3];
};

static void set_out_of_order(void *arg)
{
    struct setter *s = arg;

    CHECK_EQ(tide_future_set_result(s->fs[2], IPTR(3)), 0);
    CHECK_EQ(tide_future_set_result(s->fs[0], IPTR(1)), 0);
    CHECK_EQ(tide_future_set_result(s->fs[1], IPTR(2)), 0);
}

TEST(plain_futures_completed_out_of_order)
{
    tide_loop *loop = tide_loop_new();
    struct setter s;
    for (int i = 0; i < 3; i++)
        s.fs[i] = tide_future_new(loop);
    tide_future *g = tide_gather(s.fs, 3, 0);
    CHECK(tide_call_soon(loop, set_out_of_order, &s) != 0);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, g, &r), 0);
    void **res = r;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(PINT(res[i]), i + 1);
    release_all(s.fs, 3);
    tide_future_release(g);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(first_error_fails_at_once_others_keep_running)
{
    tide_loop *loop = new_virtual_loop();
    double t0 = tide_loop_time(loop);
    struct child c[3] = {{2, 0, 10, 1, 0},
                         {1, -EIO, 0, 1, 0},
                         {3, 0, 30, 1, 0}};
    tide_future *fs[3];
    spawn(loop, c, fs, 3);
    tide_future *g = tide_gather(fs, 3, 0);
    CHECK_ERR(tide_run_until_complete(loop, g, NULL), -EIO);
    CHECK(tide_loop_time(loop) < t0 + 2); /* at once, not at the end */
    CHECK(!tide_future_cancelled(g));
    CHECK(!tide_future_done(fs[0]));
    CHECK(!tide_future_done(fs[2]));
    /* The others were not cancelled: they finish with their results. */
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, fs[2], &r), 0);
    CHECK_EQ(PINT(r), 30);
    CHECK_EQ(tide_future_result(fs[0], &r), 0);
    CHECK_EQ(PINT(r), 10);
    CHECK_EQ(c[0].rc, 0);
    CHECK_EQ(c[2].rc, 0);
    CHECK_ERR(tide_future_result(g, NULL), -EIO);
    release_all(fs, 3);
    tide_future_release(g);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(return_errors_gives_null_slots)
{
    tide_loop *loop = new_virtual_loop();
    double t0 = tide_loop_time(loop);
    struct child c[3] = {{2, 0, 10, 1, 0},
                         {1, -EIO, 0, 1, 0},
                         {3, 0, 30, 1, 0}};
    tide_future *fs[3];
    spawn(loop, c, fs, 3);
    tide_future *g = tide_gather(fs, 3, TIDE_RETURN_ERRORS);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, g, &r), 0);
    CHECK(tide_loop_time(loop) >= t0 + 3 - EARLY);
    void **res = r;
    CHECK_EQ(PINT(res[0]), 10);
    CHECK_NULL(res[1]);
    CHECK_EQ(PINT(res[2]), 30);
    CHECK_ERR(tide_future_result(fs[1], NULL), -EIO);
    release_all(fs, 3);
    tide_future_release(g);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(cancelled_child_fails_the_gather_unless_return_errors)
{
    tide_loop *loop = tide_loop_new();
    tide_future *a = tide_future_new(loop);
    tide_future *b = tide_future_new(loop);
    tide_future *fs[2] = {a, b};
    tide_future *g = tide_gather(fs, 2, 0);
    tide_future *h = tide_gather(fs, 2, TIDE_RETURN_ERRORS);
    CHECK(tide_future_cancel(a));
    CHECK_ERR(tide_run_until_complete(loop, g, NULL), -ECANCELED);
    CHECK(tide_future_cancelled(g));
    CHECK(!tide_future_done(b)); /* a child's cancel is not the gather's */
    CHECK(!tide_future_done(h));
    CHECK_EQ(tide_future_set_result(b, IPTR(2)), 0);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, h, &r), 0);
    void **res = r;
    CHECK_NULL(res[0]);
    CHECK_EQ(PINT(res[1]), 2);
    tide_future_release(a);
    tide_future_release(b);
    tide_future_release(g);
    tide_future_release(h);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(cancel_gather_cancels_children)
{
    tide_loop *loop = new_virtual_loop();
    struct child c[2] = {{1e9, 0, 1, 1, 0}, {1e9, 0, 2, 1, 0}};
    tide_future *fs[3];
    spawn(loop, c, fs, 2);
    fs[2] = tide_future_new(loop);
    tide_future *g = tide_gather(fs, 3, 0);
    run_once(loop);
    CHECK(tide_future_cancel(g));
    CHECK(tide_future_done(g)); /* a gather is done at once */
    CHECK(tide_future_cancelled(g));
    CHECK(!tide_future_cancel(g));
    CHECK(tide_future_cancelled(fs[2])); /* a plain child: at once too */
    CHECK_ERR(tide_run_until_complete(loop, fs[0], NULL), -ECANCELED);
    CHECK_ERR(tide_run_until_complete(loop, fs[1], NULL), -ECANCELED);
    CHECK_ERR(c[0].rc, -ECANCELED);
    CHECK_ERR(c[1].rc, -ECANCELED);
    CHECK_ERR(tide_future_result(g, NULL), -ECANCELED);
    release_all(fs, 3);
    tide_future_release(g);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *await_gather(void *g)
{
    int rc = tide_await(g, NULL);

    return rc < 0 ? tide_fail(rc) : NULL;
}

TEST(cancel_task_awaiting_gather_cancels_everything)
{
    tide_loop *loop = new_virtual_loop();
    struct child c[2] = {{1e9, 0, 1, 1, 0}, {1e9, 0, 2, 1, 0}};
    tide_future *fs[2];
    spawn(loop, c, fs, 2);
    tide_future *g = tide_gather(fs, 2, TIDE_RETURN_ERRORS);
    tide_future *t = tide_create_task(loop, await_gather, g);
    run_once(loop);
    CHECK(tide_future_cancel(t));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(tide_future_cancelled(g));
    CHECK_ERR(tide_run_until_complete(loop, fs[0], NULL), -ECANCELED);
    CHECK_ERR(tide_run_until_complete(loop, fs[1], NULL), -ECANCELED);
    release_all(fs, 2);
    tide_future_release(g);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(empty_gather_completes_on_next_step)
{
    tide_loop *loop = tide_loop_new();
    tide_set_event_loop(loop);
    tide_future *g = tide_gather(NULL, 0, 0);
    CHECK_NOT_NULL(g);
    CHECK(tide_future_get_loop(g) == loop);
    CHECK(!tide_future_done(g));
    run_once(loop);
    CHECK(tide_future_done(g));
    CHECK_EQ(tide_future_result(g, NULL), 0);
    tide_future *dummy[1] = {NULL};
    tide_future *h = tide_gather(dummy, 0, TIDE_RETURN_ERRORS);
    CHECK_NOT_NULL(h);
    CHECK_EQ(tide_run_until_complete(loop, h, NULL), 0);
    tide_future_release(g);
    tide_future_release(h);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(already_done_children)
{
    tide_loop *loop = tide_loop_new();
    tide_future *fs[2] = {tide_future_new(loop), tide_future_new(loop)};
    CHECK_EQ(tide_future_set_result(fs[0], IPTR(5)), 0);
    CHECK_EQ(tide_future_set_result(fs[1], IPTR(6)), 0);
    tide_future *g = tide_gather(fs, 2, 0);
    CHECK_NOT_NULL(g);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, g, &r), 0);
    CHECK_EQ(PINT(((void **)r)[0]), 5);
    CHECK_EQ(PINT(((void **)r)[1]), 6);
    release_all(fs, 2);
    tide_future_release(g);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(nested_gather_and_duplicate_children)
{
    tide_loop *loop = tide_loop_new();
    tide_future *a = tide_future_new(loop);
    tide_future *b = tide_future_new(loop);
    tide_future *pair[2] = {a, b};
    tide_future *inner = tide_gather(pair, 2, 0);
    tide_future *outer_fs[3] = {inner, a, a};
    tide_future *outer = tide_gather(outer_fs, 3, 0);
    CHECK_NOT_NULL(outer);
    CHECK_EQ(tide_future_set_result(b, IPTR(2)), 0);
    CHECK_EQ(tide_future_set_result(a, IPTR(1)), 0);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, outer, &r), 0);
    void **res = r;
    void **in = res[0];
    CHECK_EQ(PINT(in[0]), 1);
    CHECK_EQ(PINT(in[1]), 2);
    CHECK_EQ(PINT(res[1]), 1);
    CHECK_EQ(PINT(res[2]), 1);
    tide_future_release(a);
    tide_future_release(b);
    tide_future_release(inner);
    tide_future_release(outer);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(gather_pending_at_close_is_readable)
{
    tide_loop *loop = tide_loop_new();
    struct child c[2] = {{1e9, 0, 1, 1, 0}, {1e9, 0, 2, 1, 0}};
    tide_future *fs[2];
    spawn(loop, c, fs, 2);
    tide_future *g = tide_gather(fs, 2, 0);
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK(tide_future_cancelled(fs[0]));
    CHECK(tide_future_cancelled(fs[1]));
    CHECK(tide_future_done(g));
    CHECK_ERR(tide_future_result(g, NULL), -ECANCELED);
    release_all(fs, 2);
    tide_future_release(g);
    LEAK_GATE();
}

TEST(cancel_gather_while_its_completion_is_pending)
{
    /* The children are done and the gather is cancelled before the loop
     * runs: whichever wins, the gather is set once, nothing touches freed
     * memory. */
    tide_loop *loop = tide_loop_new();
    tide_future *fs[2] = {tide_future_new(loop), tide_future_new(loop)};
    tide_future *g = tide_gather(fs, 2, 0);
    CHECK_EQ(tide_future_set_result(fs[0], IPTR(1)), 0);
    CHECK_EQ(tide_future_set_result(fs[1], IPTR(2)), 0);
    /* A gather may complete inside the last child's completion (its
     * own callbacks are still scheduled): then there is nothing to
     * cancel and its results stand. */
    bool cancelled = tide_future_cancel(g);
    run_once(loop);
    run_once(loop);
    if (cancelled) {
        CHECK(tide_future_cancelled(g));
        CHECK_ERR(tide_future_result(g, NULL), -ECANCELED);
    } else {
        void *r = NULL;
        CHECK_EQ(tide_future_result(g, &r), 0);
        CHECK_EQ(PINT(((void **)r)[1]), 2);
    }
    CHECK(!tide_future_cancelled(fs[0])); /* already done: untouched */
    release_all(fs, 2);
    tide_future_release(g);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(release_pending_gather)
{
    tide_loop *loop = tide_loop_new();
    tide_future *fs[2] = {tide_future_new(loop), tide_future_new(loop)};
    tide_future *g = tide_gather(fs, 2, TIDE_RETURN_ERRORS);
    tide_future_release(g); /* nobody holds it now */
    run_once(loop);
    CHECK_EQ(tide_future_set_result(fs[0], IPTR(1)), 0);
    CHECK_EQ(tide_future_set_error(fs[1], -EIO), 0);
    run_once(loop);
    run_once(loop);
    release_all(fs, 2);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(bad_input)
{
    tide_loop *loop = tide_loop_new();
    tide_loop *other = tide_loop_new();
    tide_future *a = tide_future_new(loop);
    tide_future *b = tide_future_new(other);
    errno = 0;
    CHECK_NULL(tide_gather(NULL, 2, 0));
    CHECK_ERR(errno, EINVAL);
    tide_future *with_null[2] = {a, NULL};
    errno = 0;
    CHECK_NULL(tide_gather(with_null, 2, 0));
    CHECK_ERR(errno, EINVAL);
    tide_future *mixed[2] = {a, b};
    errno = 0;
    CHECK_NULL(tide_gather(mixed, 2, 0));
    CHECK_ERR(errno, EINVAL);
    tide_future *one[1] = {a};
    errno = 0;
    CHECK_NULL(tide_gather(one, 1, 2u));
    CHECK_ERR(errno, EINVAL);
    errno = 0;
    CHECK_NULL(tide_gather(one, 1, 0x80000000u | TIDE_RETURN_ERRORS));
    CHECK_ERR(errno, EINVAL);
    /* Nothing was retained or hooked: a completes and frees normally. */
    CHECK_EQ(tide_future_set_result(a, NULL), 0);
    run_once(loop);
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(other), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(gather_fails_cleanly_without_memory)
{
    int failures = 0, successes = 0;
    for (long n = 1; n <= 30; n++) {
        tide_loop *loop = tide_loop_new();
        tide_future *fs[3];
        for (int i = 0; i < 3; i++)
            fs[i] = tide_future_new(loop);
        tide__alloc_fail_after(n);
        errno = 0;
        tide_future *g = tide_gather(fs, 3, 0);
        int e = errno;
        tide__alloc_fail_after(0);
        if (!g) {
            CHECK_ERR(e, ENOMEM);
            failures++;
        } else {
            successes++;
        }
        for (int i = 0; i < 3; i++)
            CHECK_EQ(tide_future_set_result(fs[i], IPTR(i)), 0);
        if (g) {
            void *r = NULL;
            CHECK_EQ(tide_run_until_complete(loop, g, &r), 0);
            CHECK_EQ(PINT(((void **)r)[2]), 2);
        } else {
            run_once(loop);
        }
        release_all(fs, 3);
        tide_future_release(g);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    CHECK(failures > 0);
    CHECK(successes > 0);
    LEAK_GATE();
}
