/* as_completed: futures handed back in completion order (tasks on the
 * virtual clock, and plain futures completed in one callback), futures
 * already done at creation, failed futures handed back like the others,
 * -EPERM outside a task only while none is done, cancelling the waiting
 * task (-ECANCELED, the futures untouched), freeing the iterator under a
 * waiting task (-EBADF), retained futures, bad input, allocation failure.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"

#include <errno.h>
#include <string.h>

struct sleeper {
    double delay;
    long value;
};

static void *sleeper_body(void *arg)
{
    struct sleeper *s = arg;
    int rc = tide_sleep(s->delay);

    return rc < 0 ? tide_fail(rc) : IPTR(s->value);
}

struct consumer {
    tide_loop *loop;
    tide_as_completed *it;
    tide_future *fs[4];
    int n;
    int got[4];
    double at[4];
    int last_rc;
    int end_rc;
};

static int index_of(struct consumer *c, tide_future *f)
{
    for (int i = 0; i < c->n; i++)
        if (c->fs[i] == f)
            return i;
    return -1;
}

static void *consume(void *arg)
{
    struct consumer *c = arg;
    tide_future *next = NULL;
    int k = 0, rc;

    while ((rc = tide_as_completed_next(c->it, &next)) == 1) {
        CHECK(k < c->n);
        CHECK(tide_future_done(next));
        c->got[k] = index_of(c, next);
        c->at[k] = tide_loop_time(c->loop);
        k++;
    }
    c->last_rc = rc;
    /* Exhausted: it keeps saying 0. */
    c->end_rc = tide_as_completed_next(c->it, &next);
    return IPTR(k);
}

TEST(hands_back_in_completion_order)
{
    tide_loop *loop = new_virtual_loop();
    double t0 = tide_loop_time(loop);
    struct sleeper s[3] = {{3, 30}, {1, 10}, {2, 20}};
    struct consumer c = {.loop = loop, .n = 3};
    for (int i = 0; i < 3; i++)
        c.fs[i] = tide_create_task(loop, sleeper_body, &s[i]);
    c.it = tide_as_completed_new(c.fs, 3);
    CHECK_NOT_NULL(c.it);
    tide_future *t = tide_create_task(loop, consume, &c);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 3);
    CHECK_EQ(c.got[0], 1);
    CHECK_EQ(c.got[1], 2);
    CHECK_EQ(c.got[2], 0);
    CHECK(c.at[0] >= t0 + 1 - EARLY && c.at[0] < t0 + 2);
    CHECK(c.at[1] >= t0 + 2 - EARLY && c.at[1] < t0 + 3);
    CHECK(c.at[2] >= t0 + 3 - EARLY);
    CHECK_EQ(c.last_rc, 0);
    CHECK_EQ(c.end_rc, 0);
    tide_as_completed_free(c.it);
    for (int i = 0; i < 3; i++)
        tide_future_release(c.fs[i]);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void complete_2_0_1(void *arg)
{
    struct consumer *c = arg;

    CHECK_EQ(tide_future_set_result(c->fs[2], NULL), 0);
    CHECK_EQ(tide_future_set_error(c->fs[0], -EIO), 0);
    CHECK_EQ(tide_future_set_result(c->fs[1], NULL), 0);
}

TEST(same_iteration_completions_keep_their_order)
{
    tide_loop *loop = tide_loop_new();
    struct consumer c = {.loop = loop, .n = 3};
    for (int i = 0; i < 3; i++)
        c.fs[i] = tide_future_new(loop);
    c.it = tide_as_completed_new(c.fs, 3);
    tide_future *t = tide_create_task(loop, consume, &c);
    run_once(loop); /* the consumer waits */
    CHECK(tide_call_soon(loop, complete_2_0_1, &c) != 0);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(c.got[0], 2);
    CHECK_EQ(c.got[1], 0); /* a failed future is handed back too */
    CHECK_EQ(c.got[2], 1);
    CHECK_ERR(tide_future_result(c.fs[0], NULL), -EIO);
    tide_as_completed_free(c.it);
    for (int i = 0; i < 3; i++)
        tide_future_release(c.fs[i]);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(already_done_futures_and_eperm_outside_a_task)
{
    tide_loop *loop = tide_loop_new();
    tide_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = tide_future_new(loop);
    CHECK_EQ(tide_future_set_result(fs[1], IPTR(1)), 0);
    CHECK_EQ(tide_future_set_result(fs[2], IPTR(2)), 0);
    tide_as_completed *it = tide_as_completed_new(fs, 3);
    CHECK_NOT_NULL(it);
    tide_future *next = NULL;
    /* Results already there: no suspension needed, so no -EPERM. */
    CHECK_EQ(tide_as_completed_next(it, &next), 1);
    CHECK(next == fs[1]);
    CHECK_EQ(tide_as_completed_next(it, &next), 1);
    CHECK(next == fs[2]);
    next = NULL;
    CHECK_ERR(tide_as_completed_next(it, &next), -EPERM);
    CHECK_NULL(next);
    CHECK_ERR(tide_as_completed_next(it, &next), -EPERM); /* still usable */
    CHECK_EQ(tide_future_set_result(fs[0], IPTR(0)), 0);
    run_once(loop);
    CHECK_EQ(tide_as_completed_next(it, &next), 1);
    CHECK(next == fs[0]);
    CHECK_EQ(tide_as_completed_next(it, &next), 0);
    CHECK_EQ(tide_as_completed_next(it, &next), 0);
    tide_as_completed_free(it);
    for (int i = 0; i < 3; i++)
        tide_future_release(fs[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(empty_iterator)
{
    tide_as_completed *it = tide_as_completed_new(NULL, 0);
    CHECK_NOT_NULL(it);
    tide_future *next = NULL;
    CHECK_EQ(tide_as_completed_next(it, &next), 0);
    tide_as_completed_free(it);
    tide_as_completed_free(NULL);
    LEAK_GATE();
}

static void *wait_one(void *arg)
{
    struct consumer *c = arg;
    tide_future *next = NULL;

    c->last_rc = tide_as_completed_next(c->it, &next);
    /* After -ECANCELED or -EBADF, next is not handed out. */
    if (c->last_rc < 0)
        CHECK(next == NULL);
    return c->last_rc < 0 ? tide_fail(c->last_rc) : NULL;
}

TEST(cancel_waiting_task_leaves_futures_alone)
{
    tide_loop *loop = tide_loop_new();
    struct consumer c = {.loop = loop, .n = 2, .last_rc = 1};
    for (int i = 0; i < 2; i++)
        c.fs[i] = tide_future_new(loop);
    c.it = tide_as_completed_new(c.fs, 2);
    tide_future *t = tide_create_task(loop, wait_one, &c);
    run_once(loop);
    CHECK(tide_future_cancel(t));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK_ERR(c.last_rc, -ECANCELED);
    CHECK(!tide_future_done(c.fs[0]));
    CHECK(!tide_future_done(c.fs[1]));
    /* The iterator still works for a later consumer. */
    CHECK_EQ(tide_future_set_result(c.fs[1], NULL), 0);
    run_once(loop);
    tide_future *next = NULL;
    CHECK_EQ(tide_as_completed_next(c.it, &next), 1);
    CHECK(next == c.fs[1]);
    tide_as_completed_free(c.it);
    for (int i = 0; i < 2; i++)
        tide_future_release(c.fs[i]);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void free_it(void *arg)
{
    struct consumer *c = arg;

    tide_as_completed_free(c->it);
    c->it = NULL;
}

TEST(free_under_a_waiting_task_gives_ebadf)
{
    tide_loop *loop = tide_loop_new();
    struct consumer c = {.loop = loop, .n = 2, .last_rc = 1};
    for (int i = 0; i < 2; i++)
        c.fs[i] = tide_future_new(loop);
    c.it = tide_as_completed_new(c.fs, 2);
    tide_future *t = tide_create_task(loop, wait_one, &c);
    run_once(loop);
    CHECK(tide_call_soon(loop, free_it, &c) != 0);
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -EBADF);
    CHECK_ERR(c.last_rc, -EBADF);
    CHECK(!tide_future_done(c.fs[0]));
    /* The iterator's references are gone; ours remain and work. */
    CHECK_EQ(tide_future_set_result(c.fs[0], NULL), 0);
    run_once(loop);
    for (int i = 0; i < 2; i++)
        tide_future_release(c.fs[i]);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(free_with_completions_pending)
{
    /* The futures complete (the iterator's hooks are queued), then the
     * iterator is freed before the loop runs them. */
    tide_loop *loop = tide_loop_new();
    tide_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = tide_future_new(loop);
    tide_as_completed *it = tide_as_completed_new(fs, 3);
    CHECK_EQ(tide_future_set_result(fs[0], NULL), 0);
    CHECK(tide_future_cancel(fs[1]));
    tide_as_completed_free(it);
    run_once(loop);
    CHECK_EQ(tide_future_set_result(fs[2], NULL), 0);
    run_once(loop);
    for (int i = 0; i < 3; i++)
        tide_future_release(fs[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(retains_its_futures)
{
    tide_loop *loop = new_virtual_loop();
    struct sleeper s[2] = {{2, 20}, {1, 10}};
    tide_future *fs[2];
    for (int i = 0; i < 2; i++)
        fs[i] = tide_create_task(loop, sleeper_body, &s[i]);
    struct consumer c = {.loop = loop, .n = 2};
    c.it = tide_as_completed_new(fs, 2);
    for (int i = 0; i < 2; i++) {
        c.fs[i] = fs[i]; /* kept alive by the iterator alone */
        tide_future_release(fs[i]);
    }
    tide_future *t = tide_create_task(loop, consume, &c);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 2);
    CHECK_EQ(c.got[0], 1);
    CHECK_EQ(c.got[1], 0);
    tide_as_completed_free(c.it);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *read_results(void *arg)
{
    tide_as_completed *it = arg;
    tide_future *next = NULL;
    long sum = 0;

    while (tide_as_completed_next(it, &next) == 1) {
        void *v = NULL;
        CHECK_EQ(tide_future_result(next, &v), 0);
        sum = sum * 100 + PINT(v);
    }
    return IPTR(sum);
}

TEST(borrowed_futures_readable_until_free)
{
    tide_loop *loop = new_virtual_loop();
    struct sleeper s[2] = {{2, 20}, {1, 10}};
    tide_future *fs[2];
    for (int i = 0; i < 2; i++)
        fs[i] = tide_create_task(loop, sleeper_body, &s[i]);
    tide_as_completed *it = tide_as_completed_new(fs, 2);
    for (int i = 0; i < 2; i++)
        tide_future_release(fs[i]);
    tide_future *t = tide_create_task(loop, read_results, it);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 1020);
    tide_as_completed_free(it);
    tide_future_release(t);
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
    CHECK_NULL(tide_as_completed_new(NULL, 1));
    CHECK_ERR(errno, EINVAL);
    tide_future *with_null[2] = {a, NULL};
    errno = 0;
    CHECK_NULL(tide_as_completed_new(with_null, 2));
    CHECK_ERR(errno, EINVAL);
    tide_future *mixed[2] = {a, b};
    errno = 0;
    CHECK_NULL(tide_as_completed_new(mixed, 2));
    CHECK_ERR(errno, EINVAL);
    tide_future *next = NULL;
    CHECK_ERR(tide_as_completed_next(NULL, &next), -EINVAL);
    tide_future *one[1] = {a};
    tide_as_completed *it = tide_as_completed_new(one, 1);
    CHECK_NOT_NULL(it);
    CHECK_ERR(tide_as_completed_next(it, NULL), -EINVAL);
    tide_as_completed_free(it);
    CHECK_EQ(tide_future_set_result(a, NULL), 0);
    run_once(loop);
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(other), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(new_fails_cleanly_without_memory)
{
    int failures = 0;
    for (long n = 1; n <= 20; n++) {
        tide_loop *loop = tide_loop_new();
        tide_future *fs[3];
        for (int i = 0; i < 3; i++)
            fs[i] = tide_future_new(loop);
        tide__alloc_fail_after(n);
        errno = 0;
        tide_as_completed *it = tide_as_completed_new(fs, 3);
        int e = errno;
        tide__alloc_fail_after(0);
        if (!it) {
            CHECK_ERR(e, ENOMEM);
            failures++;
        }
        for (int i = 0; i < 3; i++)
            CHECK_EQ(tide_future_set_result(fs[i], NULL), 0);
        run_once(loop);
        if (it) {
            tide_future *next = NULL;
            for (int i = 0; i < 3; i++)
                CHECK_EQ(tide_as_completed_next(it, &next), 1);
            CHECK_EQ(tide_as_completed_next(it, &next), 0);
            tide_as_completed_free(it);
        }
        for (int i = 0; i < 3; i++)
            tide_future_release(fs[i]);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    CHECK(failures > 0);
    LEAK_GATE();
}
