/* Task groups (asyncio.TaskGroup / Trio nursery) and task introspection
 * (all_tasks, cancelling/uncancel, eager start). Leaving a group waits for
 * every child; the first failure cancels the siblings and the owner's
 * current wait; every child error is kept; a cancel from outside cancels
 * the children and is reported, never swallowed (HAZARDS B22); spawning
 * into an aborting or ended group fails cleanly; freeing a group while
 * its owner waits in end() gives the owner -EBADF (misuse, yet safe).
 */
#include "harness.h"

#include <errno.h>
#include <string.h>

static int finished, cancelled_children;

static void *child_sleep(void *arg)
{
    int err = tide_sleep((double)PINT(arg) / 1000.0);
    if (err == -ECANCELED) {
        cancelled_children++;
        return tide_fail(err);
    }
    finished++;
    return arg;
}

static void *child_fail(void *arg)
{
    int err = tide_sleep((double)PINT(arg) / 1000.0);
    return tide_fail(err < 0 ? err : -EPIPE);
}

/* Fails with -EIO even when cancelled: its error must still be kept. */
static void *child_fail_other(void *arg)
{
    tide_sleep((double)PINT(arg) / 1000.0);
    return tide_fail(-EIO);
}

struct owner {
    int block_rc, end_rc;
    int errs[4];
    size_t nerrs;
    double took;
};

static void *all_succeed(void *arg)
{
    struct owner *o = arg;
    double t0 = tide_loop_time(NULL);
    tide_task_group *g = tide_task_group_new();
    for (long ms = 100; ms <= 300; ms += 100)
        tide_future_release(
            tide_task_group_spawn(g, child_sleep, IPTR(ms), NULL));
    o->end_rc = tide_task_group_end(g, 0);
    o->took = tide_loop_time(NULL) - t0;
    o->nerrs = tide_task_group_errors(g, o->errs, 4);
    /* Ended: no more spawning. */
    errno = 0;
    CHECK_NULL(tide_task_group_spawn(g, child_sleep, IPTR(1), NULL));
    CHECK_ERR(errno, ESHUTDOWN);
    CHECK_ERR(tide_task_group_end(g, 0), -EINVAL);
    tide_task_group_free(g);
    return NULL;
}

TEST(group_end_waits_for_every_child)
{
    tide_loop *loop = new_virtual_loop();
    struct owner o = {0};
    finished = cancelled_children = 0;
    tide_future *t = tide_create_task(loop, all_succeed, &o);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(o.end_rc, 0);
    CHECK_EQ(finished, 3);
    CHECK_EQ(o.nerrs, 0);
    CHECK(o.took > 0.3 - 1e-6 && o.took < 0.3 + 1e-6);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *fail_fast(void *arg)
{
    struct owner *o = arg;
    double t0 = tide_loop_time(NULL);
    tide_task_group *g = tide_task_group_new();
    tide_future_release(
        tide_task_group_spawn(g, child_sleep, IPTR(5000), NULL));
    tide_future_release(tide_task_group_spawn(g, child_fail, IPTR(100), NULL));
    tide_future_release(
        tide_task_group_spawn(g, child_sleep, IPTR(6000), NULL));
    /* The block's own wait is interrupted by the failure. */
    o->block_rc = tide_sleep(60);
    errno = 0;
    CHECK_NULL(tide_task_group_spawn(g, child_sleep, IPTR(1), NULL));
    CHECK_ERR(errno, ESHUTDOWN); /* aborting */
    o->end_rc = tide_task_group_end(g, o->block_rc);
    o->took = tide_loop_time(NULL) - t0;
    o->nerrs = tide_task_group_errors(g, o->errs, 4);
    tide_task_group_free(g);
    /* The owner is not left cancelled: it can wait normally again. */
    CHECK_EQ(tide_sleep(0.01), 0);
    return NULL;
}

TEST(group_first_failure_cancels_siblings_and_the_block)
{
    tide_loop *loop = new_virtual_loop();
    struct owner o = {0};
    finished = cancelled_children = 0;
    tide_future *t = tide_create_task(loop, fail_fast, &o);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(o.block_rc, -ECANCELED);
    CHECK_ERR(o.end_rc, -EPIPE);
    CHECK_EQ(o.nerrs, 1);
    CHECK_ERR(o.errs[0], -EPIPE);
    CHECK_EQ(cancelled_children, 2);
    CHECK_EQ(finished, 0);
    CHECK(o.took < 0.1 + 1e-6);
    CHECK_EQ(tide_task_cancelling(t), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *two_failures(void *arg)
{
    struct owner *o = arg;
    tide_task_group *g = tide_task_group_new();
    tide_future_release(tide_task_group_spawn(g, child_fail, IPTR(100), NULL));
    tide_future_release(
        tide_task_group_spawn(g, child_fail_other, IPTR(100), NULL));
    o->end_rc = tide_task_group_end(g, 0);
    o->nerrs = tide_task_group_errors(g, o->errs, 4);
    tide_task_group_free(g);
    return NULL;
}

TEST(group_keeps_every_child_error)
{
    tide_loop *loop = new_virtual_loop();
    struct owner o = {0};
    tide_future *t = tide_create_task(loop, two_failures, &o);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(o.end_rc, -EPIPE);
    CHECK_EQ(o.nerrs, 2); /* the second failed while aborting: kept */
    CHECK_ERR(o.errs[0], -EPIPE);
    CHECK_ERR(o.errs[1], -EIO);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *waits_in_group(void *arg)
{
    struct owner *o = arg;
    tide_task_group *g = tide_task_group_new();
    tide_future_release(
        tide_task_group_spawn(g, child_sleep, IPTR(5000), NULL));
    tide_future_release(
        tide_task_group_spawn(g, child_sleep, IPTR(7000), NULL));
    o->block_rc = tide_sleep(1); /* finishes normally */
    o->end_rc = tide_task_group_end(g, o->block_rc);
    tide_task_group_free(g);
    return NULL;
}

static void *cancel_after(void *arg)
{
    tide_sleep(2);
    tide_future_cancel(arg);
    return NULL;
}

TEST(group_outside_cancel_cancels_children_and_is_not_swallowed)
{
    tide_loop *loop = new_virtual_loop();
    struct owner o = {0};
    finished = cancelled_children = 0;
    tide_future *t = tide_create_task(loop, waits_in_group, &o);
    tide_future *c = tide_create_task(loop, cancel_after, t);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(o.block_rc, 0);
    CHECK_ERR(o.end_rc, -ECANCELED);
    CHECK_EQ(cancelled_children, 2);
    CHECK_EQ(tide_task_cancelling(t), 1);
    tide_future_release(t);
    tide_future_release(c);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *group_in_timeout(void *arg)
{
    struct owner *o = arg;
    tide_timeout *to = tide_timeout_begin(1);
    tide_task_group *g = tide_task_group_new();
    tide_future_release(
        tide_task_group_spawn(g, child_sleep, IPTR(5000), NULL));
    int err = tide_task_group_end(g, 0);
    tide_task_group_free(g);
    o->end_rc = tide_timeout_end(to, err);
    return NULL;
}

TEST(group_inside_a_timeout_reports_the_timeout)
{
    tide_loop *loop = new_virtual_loop();
    struct owner o = {0};
    tide_future *t = tide_create_task(loop, group_in_timeout, &o);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(o.end_rc, -ETIMEDOUT);
    CHECK_EQ(tide_task_cancelling(t), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *body_fails(void *arg)
{
    struct owner *o = arg;
    tide_task_group *g = tide_task_group_new();
    tide_future_release(
        tide_task_group_spawn(g, child_sleep, IPTR(5000), NULL));
    tide_sleep(0.01);                            /* the child is running now */
    o->end_rc = tide_task_group_end(g, -ENOENT); /* the block failed */
    tide_task_group_free(g);
    return NULL;
}

TEST(group_block_failure_cancels_children_and_wins)
{
    tide_loop *loop = new_virtual_loop();
    struct owner o = {0};
    cancelled_children = 0;
    tide_future *t = tide_create_task(loop, body_fails, &o);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(o.end_rc, -ENOENT);
    CHECK_EQ(cancelled_children, 1);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *free_unended(void *arg)
{
    (void)arg;
    tide_task_group *g = tide_task_group_new();
    tide_future *c = tide_task_group_spawn(g, child_sleep, IPTR(5000), NULL);
    tide_task_group_free(g); /* cancels the child, lets it go */
    int err = tide_await(c, NULL);
    tide_future_release(c);
    return err == -ECANCELED ? NULL : tide_fail(-EPROTO);
}

TEST(group_bad_input_and_free_with_running_children)
{
    errno = 0;
    CHECK_NULL(tide_task_group_new());
    CHECK_ERR(errno, EPERM);
    CHECK_ERR(tide_task_group_end(NULL, 0), -EPERM);
    CHECK_ERR(tide_task_group_cancel(NULL), -EINVAL);
    CHECK_EQ(tide_task_group_errors(NULL, NULL, 0), 0);
    tide_task_group_free(NULL);
    tide_loop *loop = new_virtual_loop();
    tide_future *t = tide_create_task(loop, free_unended, NULL);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* Freeing a group while its owner waits in end(): misuse, yet safe. The
 * owner's end() returns -EBADF, the children are cancelled, and nothing
 * touches the freed group (ASan). */
struct freed_group {
    tide_task_group *g; /* published once the owner is in end() */
    int end_rc;
    int after_rc;      /* the owner's next wait, after end() */
    bool cancel_owner; /* the freer also cancels the owner */
    tide_future *owner;
};

static void *owner_waits_in_end(void *arg)
{
    struct freed_group *fg = arg;
    tide_task_group *g = tide_task_group_new();
    CHECK_NOT_NULL(g);
    for (long ms = 1000; ms <= 2000; ms += 1000)
        tide_future_release(
            tide_task_group_spawn(g, child_sleep, IPTR(ms), NULL));
    fg->g = g;
    fg->end_rc = tide_task_group_end(g, 0);
    /* g is gone now: not freed again. */
    fg->after_rc = tide_sleep(0.01);
    return NULL;
}

static void *frees_the_group(void *arg)
{
    struct freed_group *fg = arg;
    CHECK_EQ(tide_sleep(0.1), 0); /* the owner is in end() by now */
    CHECK_NOT_NULL(fg->g);
    tide_task_group_free(fg->g);
    if (fg->cancel_owner)
        CHECK(tide_future_cancel(fg->owner));
    return NULL;
}

static void free_while_owner_waits(bool cancel_owner)
{
    tide_loop *loop = new_virtual_loop();
    struct freed_group fg = {.cancel_owner = cancel_owner};
    finished = cancelled_children = 0;
    fg.owner = tide_create_task(loop, owner_waits_in_end, &fg);
    tide_future *freer = tide_create_task(loop, frees_the_group, &fg);
    CHECK_EQ(tide_run_until_complete(loop, fg.owner, NULL), 0);
    CHECK_ERR(fg.end_rc, -EBADF);
    /* A cancel that came with the free reaches the owner's next wait. */
    CHECK_ERR(fg.after_rc, cancel_owner ? -ECANCELED : 0);
    CHECK_EQ(tide_run_until_complete(loop, freer, NULL), 0);
    double t0 = tide_loop_time(loop);
    drain(loop);
    CHECK_EQ(cancelled_children, 2);
    CHECK_EQ(finished, 0);
    CHECK(tide_loop_time(loop) - t0 < 0.5); /* nobody slept it out */
    tide_future_release(fg.owner);
    tide_future_release(freer);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(group_freed_while_owner_waits_in_end_gives_ebadf)
{
    free_while_owner_waits(false);
}

TEST(group_freed_and_owner_cancelled_in_one_step_keeps_the_cancel)
{
    free_while_owner_waits(true);
}

/* The last child is done and the owner is woken, but not yet run, when
 * the group is freed: still -EBADF, and the group is freed once. */
static void free_group_cb(void *arg)
{
    struct freed_group *fg = arg;
    tide_task_group_free(fg->g);
}

static void *child_frees_group_after_its_end(void *arg)
{
    struct freed_group *fg = arg;
    CHECK_EQ(tide_sleep(0.1), 0);
    /* Queued now, so it runs after this child's end has woken the owner
     * but before the owner runs. */
    CHECK(tide_call_soon(NULL, free_group_cb, fg) != 0);
    return NULL;
}

static void *owner_of_one_child(void *arg)
{
    struct freed_group *fg = arg;
    tide_task_group *g = tide_task_group_new();
    CHECK_NOT_NULL(g);
    fg->g = g;
    tide_future_release(
        tide_task_group_spawn(g, child_frees_group_after_its_end, fg, NULL));
    fg->end_rc = tide_task_group_end(g, 0);
    return NULL;
}

TEST(group_freed_after_owner_was_woken_gives_ebadf)
{
    tide_loop *loop = new_virtual_loop();
    struct freed_group fg = {0};
    tide_future *t = tide_create_task(loop, owner_of_one_child, &fg);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(fg.end_rc, -EBADF);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- introspection ------------------------------------------------------ */

TEST(all_tasks_lists_unfinished_tasks)
{
    tide_loop *loop = new_virtual_loop();
    tide_future *a = tide_create_task(loop, child_sleep, IPTR(100));
    tide_future *b = tide_create_task(loop, child_sleep, IPTR(200));
    tide_future *out[4] = {0};
    CHECK_EQ(tide_all_tasks(loop, out, 4), 2); /* not started yet */
    for (int i = 0; i < 2; i++)
        tide_future_release(out[i]);
    run_once(loop);
    CHECK_EQ(tide_all_tasks(loop, NULL, 0), 2); /* started, suspended */
    CHECK_EQ(tide_all_tasks(loop, out, 1), 2);  /* cap respected */
    CHECK(out[0] == a || out[0] == b);
    tide_future_release(out[0]);
    CHECK_EQ(tide_run_until_complete(loop, a, NULL), 0);
    CHECK_EQ(tide_all_tasks(loop, out, 4), 1);
    CHECK(out[0] == b);
    tide_future_release(out[0]);
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *counts_cancels(void *arg)
{
    int *seen = arg;
    int err = tide_sleep(10);
    seen[0] = err;
    seen[1] = tide_task_cancelling(tide_current_task());
    seen[2] = tide_task_uncancel(tide_current_task());
    seen[3] = tide_sleep(0.1); /* nothing pending any more */
    return NULL;
}

TEST(cancelling_and_uncancel_count_requests)
{
    tide_loop *loop = new_virtual_loop();
    int seen[4] = {1, 1, 1, 1};
    tide_future *t = tide_create_task(loop, counts_cancels, seen);
    run_once(loop);
    CHECK(tide_future_cancel(t));
    CHECK(tide_future_cancel(t));
    CHECK_EQ(tide_task_cancelling(t), 2);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(seen[0], -ECANCELED); /* delivered once */
    CHECK_EQ(seen[1], 2);
    CHECK_EQ(seen[2], 1);
    CHECK_EQ(seen[3], 0);
    CHECK_ERR(tide_task_cancelling(NULL), -EINVAL);
    tide_future *f = tide_future_new(loop);
    CHECK_ERR(tide_task_uncancel(f), -EINVAL);
    tide_future_release(f);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static char trace[16];

static void *mark(void *arg)
{
    strcat(trace, (const char *)arg);
    if (tide_sleep(0) < 0)
        return tide_fail(-ECANCELED);
    strcat(trace, "+");
    return NULL;
}

static void *quick(void *arg)
{
    strcat(trace, (const char *)arg);
    return arg;
}

static void *spawns_eagerly(void *arg)
{
    (void)arg;
    tide_task_options o = {0};
    o.eager = true;
    strcat(trace, "<");
    tide_future *e = tide_create_task_ex(NULL, mark, "e", &o);
    strcat(trace, ">");
    tide_future *q = tide_create_task_ex(NULL, quick, "q", &o);
    CHECK(tide_future_done(q)); /* finished without suspending */
    tide_future *n = tide_create_task(NULL, quick, "n");
    CHECK(!tide_future_done(n));
    CHECK_EQ(tide_await(e, NULL), 0);
    tide_future_release(e);
    tide_future_release(q);
    tide_future_release(n);
    return NULL;
}

TEST(eager_tasks_run_at_once_until_they_suspend)
{
    SKIP_IF_COMPACT("a compact owner's eager tasks are only scheduled");
    tide_loop *loop = new_virtual_loop();
    trace[0] = '\0';
    tide_future *t = tide_create_task(loop, spawns_eagerly, NULL);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    /* e yielded (queued) before n was made: FIFO runs e first. */
    CHECK_STR_EQ(trace, "<e>q+n");
    /* Outside a running loop, eager falls back to a normal start. */
    tide_task_options o = {0};
    o.eager = true;
    trace[0] = '\0';
    tide_future *q = tide_create_task_ex(loop, quick, "x", &o);
    CHECK(!tide_future_done(q));
    CHECK_EQ(tide_run_until_complete(loop, q, NULL), 0);
    CHECK_STR_EQ(trace, "x");
    tide_future_release(q);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- cancellation cycles ------------------------------------------------ */

static tide_future *cyc_a, *cyc_b;

static void *await_other(void *arg)
{
    tide_future **other = arg;
    int err = tide_await(*other, NULL);
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(cancelling_tasks_that_await_each_other_terminates)
{
    tide_loop *loop = new_virtual_loop();
    cyc_a = tide_create_task(loop, await_other, &cyc_b);
    cyc_b = tide_create_task(loop, await_other, &cyc_a);
    run_once(loop);                   /* a deadlock: each awaits the other */
    CHECK(tide_future_cancel(cyc_a)); /* a -> b -> a: must not recurse */
    CHECK_ERR(tide_run_until_complete(loop, cyc_a, NULL), -ECANCELED);
    CHECK_ERR(tide_run_until_complete(loop, cyc_b, NULL), -ECANCELED);
    tide_future_release(cyc_a);
    tide_future_release(cyc_b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}
