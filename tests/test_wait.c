/* Waiting and time limits: tide_wait (FIRST_COMPLETED, FIRST_EXCEPTION,
 * ALL_COMPLETED, timeout), tide_wait_for (timeout cancels and waits, the
 * result wins when the future completes anyway, a cancel of the caller is
 * never swallowed: CPython bpo-42130 / #86296), timeout scopes (expire,
 * nest, reschedule, only the innermost expired one reports, cleanup after
 * a timeout is not interrupted again: HAZARDS B22, B24) and tide_shield;
 * every wait on another loop's futures from a task is -EINVAL. Time is
 * virtual throughout.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>

static void *sleep_then(void *arg)
{
    double d = (double)PINT(arg) / 1000.0; /* arg: ms */
    int err = tide_sleep(d);
    return err < 0 ? tide_fail(err) : arg;
}

static void *fail_after(void *arg)
{
    int err = tide_sleep((double)PINT(arg) / 1000.0);
    return tide_fail(err < 0 ? err : -EPIPE);
}

static tide_future *spawn(tide_loop *loop, tide_fn fn, long ms)
{
    tide_future *t = tide_create_task(loop, fn, IPTR(ms));
    CHECK_NOT_NULL(t);
    return t;
}

/* ---- tide_wait -------------------------------------------------------- */

struct waitcase {
    tide_future *fs[3];
    int when;
    double timeout;
    int rc;
    size_t ndone, npending;
    tide_future *done[3], *pending[3];
    double took;
};

static void *do_wait(void *arg)
{
    struct waitcase *w = arg;
    double t0 = tide_loop_time(NULL);

    w->rc = tide_wait(w->fs, 3, w->when, w->timeout, w->done, &w->ndone,
                      w->pending, &w->npending);
    w->took = tide_loop_time(NULL) - t0;
    return NULL;
}

static void run_wait(struct waitcase *w, tide_loop *loop)
{
    tide_future *t = tide_create_task(loop, do_wait, w);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
}

static void finish(tide_loop *loop, struct waitcase *w)
{
    for (int i = 0; i < 3; i++) {
        tide_future_cancel(w->fs[i]);
        tide_future_release(w->fs[i]);
    }
    CHECK_EQ(tide_loop_close(loop), 0);
}

TEST(wait_first_completed)
{
    tide_loop *loop = new_virtual_loop();
    struct waitcase w = {{spawn(loop, sleep_then, 300),
                          spawn(loop, sleep_then, 100),
                          spawn(loop, sleep_then, 200)},
                         TIDE_FIRST_COMPLETED,
                         INFINITY,
                         1,
                         0,
                         0,
                         {0},
                         {0},
                         0};
    run_wait(&w, loop);
    CHECK_EQ(w.rc, 0);
    CHECK_EQ(w.ndone, 1);
    CHECK(w.done[0] == w.fs[1]);
    CHECK_EQ(w.npending, 2);
    CHECK(w.pending[0] == w.fs[0] && w.pending[1] == w.fs[2]);
    CHECK(fabs(w.took - 0.1) < 1e-6);
    CHECK(!tide_future_done(w.fs[0])); /* nothing was cancelled */
    finish(loop, &w);
    LEAK_GATE();
}

TEST(wait_first_exception_ignores_cancelled_and_stops_at_failure)
{
    tide_loop *loop = new_virtual_loop();
    struct waitcase w = {{spawn(loop, sleep_then, 100),
                          spawn(loop, fail_after, 200),
                          spawn(loop, sleep_then, 300)},
                         TIDE_FIRST_EXCEPTION,
                         INFINITY,
                         1,
                         0,
                         0,
                         {0},
                         {0},
                         0};
    run_once(loop);
    run_wait(&w, loop);
    CHECK_EQ(w.rc, 0);
    CHECK_EQ(w.ndone, 2);
    CHECK_EQ(w.npending, 1);
    CHECK(fabs(w.took - 0.2) < 1e-6);
    finish(loop, &w);
    LEAK_GATE();
}

TEST(wait_first_exception_without_failure_waits_for_all)
{
    tide_loop *loop = new_virtual_loop();
    struct waitcase w = {{spawn(loop, sleep_then, 100),
                          spawn(loop, sleep_then, 50),
                          spawn(loop, sleep_then, 300)},
                         TIDE_FIRST_EXCEPTION,
                         INFINITY,
                         1,
                         0,
                         0,
                         {0},
                         {0},
                         0};
    run_once(loop);
    tide_future_cancel(w.fs[1]); /* cancelled is not an exception */
    run_wait(&w, loop);
    CHECK_EQ(w.ndone, 3);
    CHECK(fabs(w.took - 0.3) < 1e-6);
    finish(loop, &w);
    LEAK_GATE();
}

TEST(wait_all_completed_with_timeout_cancels_nothing)
{
    tide_loop *loop = new_virtual_loop();
    struct waitcase w = {{spawn(loop, sleep_then, 100),
                          spawn(loop, sleep_then, 5000),
                          spawn(loop, sleep_then, 200)},
                         TIDE_ALL_COMPLETED,
                         1.0,
                         1,
                         0,
                         0,
                         {0},
                         {0},
                         0};
    run_wait(&w, loop);
    CHECK_EQ(w.rc, 0); /* a timeout is not an error, as in asyncio */
    CHECK_EQ(w.ndone, 2);
    CHECK_EQ(w.npending, 1);
    CHECK(w.pending[0] == w.fs[1]);
    CHECK(fabs(w.took - 1.0) < 1e-6);
    CHECK(!tide_future_done(w.fs[1]));
    finish(loop, &w);
    LEAK_GATE();
}

static void *cancel_later(void *arg)
{
    tide_sleep(0.05);
    tide_future_cancel(arg);
    return NULL;
}

TEST(wait_cancelled_returns_ecanceled_and_leaves_the_futures)
{
    tide_loop *loop = new_virtual_loop();
    struct waitcase w = {{spawn(loop, sleep_then, 100),
                          spawn(loop, sleep_then, 200),
                          spawn(loop, sleep_then, 300)},
                         TIDE_ALL_COMPLETED,
                         INFINITY,
                         1,
                         0,
                         0,
                         {0},
                         {0},
                         0};
    tide_future *t = tide_create_task(loop, do_wait, &w);
    tide_future *c = tide_create_task(loop, cancel_later, t);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(w.rc, -ECANCELED);
    for (int i = 0; i < 3; i++)
        CHECK(!tide_future_done(w.fs[i]));
    tide_future_release(t);
    tide_future_release(c);
    finish(loop, &w);
    LEAK_GATE();
}

/* Every wait on futures of one loop, made from a task of another: -EINVAL
 * (it is in a task, but not one that can wait on them), the same for
 * tide_wait, tide_wait_for, tide_await and tide_as_completed_next. */
static tide_future *foreign; /* pending, on the other loop */

static void *wait_on_foreign(void *arg)
{
    tide_future *fs[1] = {foreign};
    tide_as_completed *it = tide_as_completed_new(fs, 1);
    tide_future *next = NULL;

    (void)arg;
    CHECK_NOT_NULL(it);
    CHECK_ERR(tide_wait(fs, 1, TIDE_ALL_COMPLETED, 1, NULL, NULL, NULL, NULL),
              -EINVAL);
    CHECK_ERR(tide_wait_for(foreign, 1, NULL), -EINVAL);
    CHECK_ERR(tide_wait_for(foreign, 0, NULL), -EINVAL);
    CHECK_ERR(tide_await(foreign, NULL), -EINVAL);
    CHECK_ERR(tide_as_completed_next(it, &next), -EINVAL);
    CHECK_NULL(next);
    tide_as_completed_free(it);
    return NULL;
}

TEST(waits_on_another_loops_futures_are_refused)
{
    tide_loop *mine = new_virtual_loop();
    tide_loop *other = new_virtual_loop();
    foreign = tide_future_new(other);
    tide_future *t = tide_create_task(mine, wait_on_foreign, NULL);
    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_run_until_complete(mine, t, NULL), 0);
    CHECK(!tide_future_done(foreign)); /* nothing touched it */
    tide_future_release(t);
    tide_future_release(foreign);
    CHECK_EQ(tide_loop_close(mine), 0);
    CHECK_EQ(tide_loop_close(other), 0);
    LEAK_GATE();
}

TEST(wait_bad_input_and_outside_a_task)
{
    tide_loop *loop = new_virtual_loop();
    tide_future *f = tide_future_new(loop);
    tide_future *fs[2] = {f, NULL};
    size_t nd = 9, np = 9;

    CHECK_ERR(tide_wait(NULL, 1, TIDE_ALL_COMPLETED, 1, NULL, NULL, NULL,
                        NULL),
              -EINVAL);
    CHECK_ERR(tide_wait(fs, 0, TIDE_ALL_COMPLETED, 1, NULL, NULL, NULL, NULL),
              -EINVAL);
    CHECK_ERR(tide_wait(fs, 2, TIDE_ALL_COMPLETED, 1, NULL, NULL, NULL, NULL),
              -EINVAL);
    CHECK_ERR(tide_wait(fs, 1, 7, 1, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(tide_wait(fs, 1, TIDE_ALL_COMPLETED, NAN, NULL, NULL, NULL,
                        NULL),
              -EINVAL);
    CHECK_ERR(tide_wait(fs, 1, TIDE_ALL_COMPLETED, 1, NULL, &nd, NULL, &np),
              -EPERM);
    /* timeout <= 0 just looks, anywhere */
    CHECK_EQ(tide_wait(fs, 1, TIDE_ALL_COMPLETED, 0, NULL, &nd, NULL, &np), 0);
    CHECK_EQ(nd, 0);
    CHECK_EQ(np, 1);
    tide_future_set_result(f, NULL);
    CHECK_EQ(tide_wait(fs, 1, TIDE_ALL_COMPLETED, 1, NULL, &nd, NULL, &np), 0);
    CHECK_EQ(nd, 1);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- tide_wait_for ------------------------------------------------------ */

struct wf {
    tide_future *f;
    double timeout;
    int rc;
    void *res;
    double took;
};

static void *do_wait_for(void *arg)
{
    struct wf *w = arg;
    double t0 = tide_loop_time(NULL);

    w->rc = tide_wait_for(w->f, w->timeout, &w->res);
    w->took = tide_loop_time(NULL) - t0;
    return NULL;
}

TEST(wait_for_in_time_and_timed_out)
{
    tide_loop *loop = new_virtual_loop();
    struct wf a = {spawn(loop, sleep_then, 100), 1.0, 1, NULL, 0};
    struct wf b = {spawn(loop, sleep_then, 60000), 1.0, 1, NULL, 0};
    tide_future *ta = tide_create_task(loop, do_wait_for, &a);
    tide_future *tb = tide_create_task(loop, do_wait_for, &b);
    tide_future *both[2] = {ta, tb};
    tide_future *g = tide_gather(both, 2, 0);
    CHECK_EQ(tide_run_until_complete(loop, g, NULL), 0);
    CHECK_EQ(a.rc, 0);
    CHECK_EQ(PINT(a.res), 100);
    CHECK_ERR(b.rc, -ETIMEDOUT);
    CHECK(tide_future_cancelled(b.f)); /* cancelled and really finished */
    CHECK(fabs(b.took - 1.0) < 1e-6);
    CHECK_EQ(tide_task_cancelling(tb), 0); /* its own cancel withdrawn */
    tide_future *all[5] = {g, ta, tb, a.f, b.f};
    for (int i = 0; i < 5; i++)
        tide_future_release(all[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *stubborn(void *arg)
{
    /* Swallows the cancellation, then completes with a value. */
    int err = tide_sleep(10);
    if (err == -ECANCELED)
        tide_sleep(0.5);
    return arg;
}

TEST(wait_for_result_wins_when_the_future_completes_anyway)
{
    tide_loop *loop = new_virtual_loop();
    struct wf w = {spawn(loop, stubborn, 77), 1.0, 1, NULL, 0};
    tide_future *t = tide_create_task(loop, do_wait_for, &w);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(w.rc, 0);
    CHECK_EQ(PINT(w.res), 77);
    CHECK(fabs(w.took - 1.5) < 1e-6); /* waited until f really finished */
    CHECK_EQ(tide_task_cancelling(t), 0);
    tide_future_release(t);
    tide_future_release(w.f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *cancel_at(void *arg)
{
    tide_sleep(1.0); /* the same instant as the timeout */
    tide_future_cancel(arg);
    return NULL;
}

TEST(wait_for_never_swallows_the_callers_cancellation)
{
    tide_loop *loop = new_virtual_loop();
    struct wf w = {spawn(loop, sleep_then, 60000), 1.0, 1, NULL, 0};
    tide_future *t = tide_create_task(loop, do_wait_for, &w);
    tide_future *c = tide_create_task(loop, cancel_at, t);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(w.rc, -ECANCELED); /* not -ETIMEDOUT, not 0 */
    CHECK_EQ(tide_task_cancelling(t), 1);
    tide_future_release(t);
    tide_future_release(c);
    tide_future_release(w.f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(wait_for_zero_timeout_and_bad_input)
{
    tide_loop *loop = new_virtual_loop();
    struct wf w = {spawn(loop, sleep_then, 100), 0, 1, NULL, 0};
    tide_future *t = tide_create_task(loop, do_wait_for, &w);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(w.rc, -ETIMEDOUT);
    CHECK(tide_future_cancelled(w.f));
    CHECK_ERR(tide_wait_for(NULL, 1, NULL), -EINVAL);
    CHECK_ERR(tide_wait_for(w.f, NAN, NULL), -EINVAL);
    tide_future *p = tide_future_new(loop);
    CHECK_ERR(tide_wait_for(p, 1, NULL), -EPERM);
    tide_future_release(p);
    tide_future_release(t);
    tide_future_release(w.f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- timeout scopes -------------------------------------------------------
 */

struct scopes {
    int inner_rc, outer_rc;
    bool inner_expired, outer_expired;
    double took;
};

static void *nested(void *arg)
{
    struct scopes *s = arg;
    double t0 = tide_loop_time(NULL);
    tide_timeout *outer = tide_timeout_begin(10);
    tide_timeout *inner = tide_timeout_begin(1);
    CHECK_NOT_NULL(outer);
    CHECK_NOT_NULL(inner);
    int err = tide_sleep(60);
    s->inner_expired = tide_timeout_expired(inner);
    err = tide_timeout_end(inner, err);
    s->inner_rc = err;
    err = tide_sleep(0.5); /* the block goes on after the inner timeout */
    s->outer_expired = tide_timeout_expired(outer);
    s->outer_rc = tide_timeout_end(outer, err);
    s->took = tide_loop_time(NULL) - t0;
    return NULL;
}

TEST(timeout_scopes_nest_and_only_the_expired_one_reports)
{
    tide_loop *loop = new_virtual_loop();
    struct scopes s = {1, 1, false, false, 0};
    tide_future *t = tide_create_task(loop, nested, &s);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(s.inner_rc, -ETIMEDOUT);
    CHECK(s.inner_expired);
    CHECK_EQ(s.outer_rc, 0);
    CHECK(!s.outer_expired);
    CHECK(fabs(s.took - 1.5) < 1e-6);
    CHECK_EQ(tide_task_cancelling(t), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *outer_expires(void *arg)
{
    struct scopes *s = arg;
    tide_timeout *outer = tide_timeout_begin(1);
    tide_timeout *inner = tide_timeout_begin(10);
    int err = tide_sleep(60);
    s->inner_rc = tide_timeout_end(inner, err); /* not its deadline */
    s->outer_rc = tide_timeout_end(outer, s->inner_rc);
    return NULL;
}

TEST(an_outer_expiry_passes_through_the_inner_scope)
{
    tide_loop *loop = new_virtual_loop();
    struct scopes s = {1, 1, false, false, 0};
    tide_future *t = tide_create_task(loop, outer_expires, &s);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(s.inner_rc, -ECANCELED);
    CHECK_ERR(s.outer_rc, -ETIMEDOUT);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *cleanup_needs_its_own_timeout(void *arg)
{
    double *took = arg;
    double t0 = tide_loop_time(NULL);
    tide_timeout *a = tide_timeout_begin(0.01);
    int err = tide_sleep(1e9);
    err = tide_timeout_end(a, err);
    CHECK_ERR(err, -ETIMEDOUT);
    /* B24: cleanup after a timeout is not interrupted by it again... */
    tide_timeout *b = tide_timeout_begin(0.01);
    err = tide_sleep(1e9);
    /* ...and a second scope bounds it. */
    CHECK_ERR(tide_timeout_end(b, err), -ETIMEDOUT);
    *took = tide_loop_time(NULL) - t0;
    return NULL;
}

TEST(b24_timeout_in_cleanup)
{
    tide_loop *loop = new_virtual_loop();
    double took = 0;
    tide_future *t =
        tide_create_task(loop, cleanup_needs_its_own_timeout, &took);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(fabs(took - 0.02) < 1e-6);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *reschedule(void *arg)
{
    double *took = arg;
    double t0 = tide_loop_time(NULL);
    tide_timeout *t = tide_timeout_begin(INFINITY);
    CHECK(isinf(tide_timeout_when(t)));
    CHECK_EQ(tide_timeout_reschedule(t, t0 + 2), 0);
    CHECK(fabs(tide_timeout_when(t) - (t0 + 2)) < 1e-6);
    int err = tide_sleep(1);
    CHECK_EQ(err, 0);
    CHECK_EQ(tide_timeout_reschedule(t, tide_loop_time(NULL) + 3), 0);
    err = tide_sleep(60);
    CHECK_ERR(tide_timeout_reschedule(t, 5), -ESHUTDOWN);
    CHECK_ERR(tide_timeout_end(t, err), -ETIMEDOUT);
    *took = tide_loop_time(NULL) - t0;
    return NULL;
}

TEST(timeout_reschedule_moves_the_deadline)
{
    tide_loop *loop = new_virtual_loop();
    double took = 0;
    tide_future *t = tide_create_task(loop, reschedule, &took);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(fabs(took - 4.0) < 1e-6);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *scope_cancelled_from_outside(void *arg)
{
    int *rc = arg;
    tide_timeout *t = tide_timeout_begin(1);
    int err = tide_sleep(60);
    *rc = tide_timeout_end(t, err);
    return NULL;
}

TEST(timeout_scope_keeps_an_outside_cancel)
{
    tide_loop *loop = new_virtual_loop();
    int rc = 1;
    tide_future *t = tide_create_task(loop, scope_cancelled_from_outside, &rc);
    tide_future *c = tide_create_task(loop, cancel_at, t); /* same instant */
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(rc, -ECANCELED);
    tide_future_release(t);
    tide_future_release(c);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(timeout_bad_input)
{
    errno = 0;
    CHECK_NULL(tide_timeout_begin(1)); /* outside a task */
    CHECK_ERR(errno, EPERM);
    errno = 0;
    CHECK_NULL(tide_timeout_begin(NAN));
    CHECK_ERR(errno, EINVAL);
    CHECK_ERR(tide_timeout_end(NULL, 0), -EINVAL);
    CHECK_ERR(tide_timeout_reschedule(NULL, 1), -EINVAL);
    CHECK(!tide_timeout_expired(NULL));
    CHECK(isinf(tide_timeout_when(NULL)));
    LEAK_GATE();
}

/* ---- shield ---------------------------------------------------------------
 */

struct sh {
    tide_future *inner;
    int rc;
};

static void *await_shielded(void *arg)
{
    struct sh *s = arg;
    tide_future *outer = tide_shield(s->inner);
    CHECK_NOT_NULL(outer);
    s->rc = tide_await(outer, NULL);
    tide_future_release(outer);
    return NULL;
}

TEST(shield_protects_the_inner_work)
{
    tide_loop *loop = new_virtual_loop();
    struct sh s = {spawn(loop, sleep_then, 1000), 1};
    tide_future *t = tide_create_task(loop, await_shielded, &s);
    tide_future *c = tide_create_task(loop, cancel_later, t);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(s.rc, -ECANCELED);       /* the outer await is cancelled */
    CHECK(!tide_future_done(s.inner)); /* the inner work is not */
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, s.inner, &r), 0);
    CHECK_EQ(PINT(r), 1000);
    tide_future_release(t);
    tide_future_release(c);
    tide_future_release(s.inner);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(shield_passes_the_outcome_through)
{
    tide_loop *loop = new_virtual_loop();
    tide_future *f = tide_future_new(loop);
    tide_future *outer = tide_shield(f);
    CHECK(outer != f);
    CHECK(tide_future_cancel(outer));
    CHECK(!tide_future_done(f)); /* cancelling the shield spares f */
    tide_future *keep = f;
    tide_future_release(f); /* the shield keeps f alive until it is done */
    CHECK_EQ(tide_future_set_result(keep, NULL), 0);
    CHECK_NULL(tide_shield(NULL));
    tide_future *g = tide_future_new(loop);
    tide_future *o2 = tide_shield(g);
    tide_future_set_error(g, -EPIPE);
    run_once(loop);
    CHECK_ERR(tide_future_result(o2, NULL), -EPIPE);
    tide_future *o3 = tide_shield(g); /* done: g itself */
    CHECK(o3 == g);
    tide_future_release(o3);
    tide_future_release(o2);
    tide_future_release(g);
    tide_future_release(outer);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *misuse(void *arg)
{
    (void)arg;
    tide_timeout *outer = tide_timeout_begin(10);
    tide_timeout *inner = tide_timeout_begin(20);
    CHECK_ERR(tide_timeout_end(outer, 0), -EINVAL); /* not innermost */
    CHECK_EQ(tide_timeout_end(inner, 0), 0);
    CHECK_EQ(tide_timeout_end(outer, 0), 0);
    /* wait_for on yourself is refused before anything is cancelled. */
    CHECK_ERR(tide_wait_for(tide_current_task(), 0, NULL), -EINVAL);
    CHECK_EQ(tide_task_cancelling(tide_current_task()), 0);
    CHECK_EQ(tide_sleep(0.01), 0);
    return NULL;
}

TEST(timeout_scopes_end_innermost_first_and_wait_for_self_is_refused)
{
    tide_loop *loop = new_virtual_loop();
    tide_future *t = tide_create_task(loop, misuse, NULL);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *absolute_deadline(void *arg)
{
    double *took = arg;
    double t0 = tide_loop_time(NULL);
    tide_timeout *t = tide_timeout_begin_at(t0 + 2.5);
    CHECK_NOT_NULL(t);
    CHECK(fabs(tide_timeout_when(t) - (t0 + 2.5)) < 1e-6);
    int err = tide_sleep(60);
    CHECK(tide_timeout_expired(t));
    CHECK_ERR(tide_timeout_end(t, err), -ETIMEDOUT);
    /* A deadline already past expires on the next step. */
    t = tide_timeout_begin_at(t0 - 5);
    err = tide_sleep(60);
    CHECK_ERR(tide_timeout_end(t, err), -ETIMEDOUT);
    *took = tide_loop_time(NULL) - t0;
    errno = 0;
    CHECK_NULL(tide_timeout_begin_at(NAN));
    CHECK_ERR(errno, EINVAL);
    return NULL;
}

TEST(timeout_at_an_absolute_deadline)
{
    tide_loop *loop = new_virtual_loop();
    double took = 0;
    tide_future *t = tide_create_task(loop, absolute_deadline, &took);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(fabs(took - 2.5) < 1e-6);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}
