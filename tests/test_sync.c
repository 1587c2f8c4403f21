/* Sync primitives: Lock, Event, Condition, Semaphore, BoundedSemaphore,
 * Barrier. For each: every public function, bad input (NULL: -EINVAL),
 * -EPERM outside a task only when it would have to wait, FIFO order
 * without barging, cancellation at every suspension point, HAZARDS B19
 * (a waiter cancelled in the same step in which it is woken: the next
 * one proceeds) for Lock, Semaphore(1), Semaphore(3), BoundedSemaphore,
 * Condition and Barrier, B21 (cancel + release in one callback: one new
 * holder), B20 (a) and (b) for Condition, freeing with waiters (-EBADF,
 * clean under ASan), ENOMEM on the constructors, and a randomized model
 * test of the semaphore against a reference model. Queues are in
 * test_queue.c.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "tide/sync.h"

#include "base/alloc.h"
#include "ops.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ---- a task running one call (tests/ops.h) -------------------------- */

static void spawn(tide_loop *loop, struct op *o, const char *tag,
                  int (*fn)(struct op *), void *obj)
{
    op_start(loop, o, tag, fn, obj, NULL);
}

static int do_lock(struct op *o)
{
    return tide_lock_acquire(o->obj);
}
static int do_sem(struct op *o)
{
    return tide_semaphore_acquire(o->obj);
}
static int do_event(struct op *o)
{
    return tide_event_wait(o->obj);
}
static int do_barrier(struct op *o)
{
    return tide_barrier_wait(o->obj, &o->index);
}

/* acquire; wait; note whether the lock is held; release. */
static int do_cond(struct op *o)
{
    int rc = tide_condition_acquire(o->obj);
    if (rc < 0)
        return rc;
    rc = tide_condition_wait(o->obj);
    if (rc == -EBADF)
        return rc; /* freed: do not touch it */
    o->held = tide_condition_locked(o->obj);
    CHECK_EQ(tide_condition_release(o->obj), 0);
    return rc;
}

/* ---- Lock -------------------------------------------------------------- */

TEST(lock_basics_and_bad_input)
{
    CHECK_ERR(tide_lock_acquire(NULL), -EINVAL);
    CHECK_ERR(tide_lock_release(NULL), -EINVAL);
    CHECK(!tide_lock_locked(NULL));
    tide_lock_free(NULL);

    tide_lock *l = tide_lock_new();
    CHECK_NOT_NULL(l);
    CHECK(!tide_lock_locked(l));
    CHECK_ERR(tide_lock_release(l), -EINVAL); /* not locked */
    CHECK_EQ(tide_lock_acquire(l), 0);        /* free: no task needed */
    CHECK(tide_lock_locked(l));
    CHECK_ERR(tide_lock_acquire(l), -EPERM); /* would wait */
    CHECK(tide_lock_locked(l));
    CHECK_EQ(tide_lock_release(l), 0);
    CHECK(!tide_lock_locked(l));
    CHECK_ERR(tide_lock_release(l), -EINVAL);
    tide_lock_free(l);
    LEAK_GATE();
}

TEST(lock_fifo_without_barging)
{
    tide_loop *loop = new_virtual_loop();
    tide_lock *l = tide_lock_new();
    struct op w[3] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_lock_acquire(l), 0);
    spawn(loop, &w[0], "a", do_lock, l);
    spawn(loop, &w[1], "b", do_lock, l);
    spawn(loop, &w[2], "c", do_lock, l);
    drain(loop);
    CHECK_STR_EQ(order, "");
    CHECK_EQ(tide_lock_release(l), 0);       /* handed to a */
    CHECK(tide_lock_locked(l));              /* across the hand-off */
    CHECK_ERR(tide_lock_acquire(l), -EPERM); /* a newcomer does not barge */
    drain(loop);
    CHECK_STR_EQ(order, "a");
    CHECK_EQ(w[0].rc, 0);
    CHECK_EQ(tide_lock_release(l), 0);
    drain(loop);
    CHECK_EQ(tide_lock_release(l), 0);
    drain(loop);
    CHECK_STR_EQ(order, "abc");
    CHECK_EQ(w[2].rc, 0);
    CHECK(tide_lock_locked(l));
    CHECK_EQ(tide_lock_release(l), 0);
    CHECK(!tide_lock_locked(l));
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_lock_free(l);
    release_ops(w, 3);
    LEAK_GATE();
}

TEST(lock_cancel_while_waiting)
{
    tide_loop *loop = new_virtual_loop();
    tide_lock *l = tide_lock_new();
    struct op w[2] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_lock_acquire(l), 0);
    spawn(loop, &w[0], "a", do_lock, l);
    spawn(loop, &w[1], "b", do_lock, l);
    drain(loop);
    CHECK(tide_future_cancel(w[0].task));
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK(tide_lock_locked(l)); /* still the main's */
    CHECK_EQ(tide_lock_release(l), 0);
    drain(loop);
    CHECK_EQ(w[1].rc, 0);
    CHECK_STR_EQ(order, "ab");
    CHECK_EQ(tide_lock_release(l), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_lock_free(l);
    release_ops(w, 2);
    LEAK_GATE();
}

/* B19 for a lock, a semaphore of `value` (bounded or not): 4 waiters,
 * one release, the woken waiter cancelled in the same step. */
TEST(b19_lock_woken_waiter_cancelled)
{
    tide_loop *loop = new_virtual_loop();
    tide_lock *l = tide_lock_new();
    struct op w[4] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_lock_acquire(l), 0);
    for (int i = 0; i < 4; i++)
        spawn(loop, &w[i], (const char *[]){"1", "2", "3", "4"}[i], do_lock,
              l);
    drain(loop);
    CHECK_EQ(tide_lock_release(l), 0);    /* granted to 1 */
    CHECK(tide_future_cancel(w[0].task)); /* same step */
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK_EQ(w[1].rc, 0); /* the next one proceeds */
    CHECK_STR_EQ(order, "12");
    CHECK(tide_lock_locked(l));
    CHECK_EQ(tide_lock_release(l), 0); /* for 2 */
    drain(loop);
    CHECK_EQ(tide_lock_release(l), 0); /* for 3 */
    drain(loop);
    CHECK_STR_EQ(order, "1234");
    CHECK_EQ(tide_lock_release(l), 0); /* for 4 */
    CHECK(!tide_lock_locked(l));
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_lock_free(l);
    release_ops(w, 4);
    LEAK_GATE();
}

static void b19_semaphore(unsigned value, bool bounded)
{
    tide_loop *loop = new_virtual_loop();
    tide_semaphore *s = bounded ? tide_bounded_semaphore_new(value)
                                : tide_semaphore_new(value);
    struct op w[4] = {{0}};
    order[0] = '\0';
    CHECK_NOT_NULL(s);
    for (unsigned i = 0; i < value; i++)
        CHECK_EQ(tide_semaphore_acquire(s), 0);
    CHECK(tide_semaphore_locked(s));
    for (int i = 0; i < 4; i++)
        spawn(loop, &w[i], (const char *[]){"1", "2", "3", "4"}[i], do_sem, s);
    drain(loop);
    CHECK_STR_EQ(order, "");
    CHECK_EQ(tide_semaphore_release(s), 0);
    CHECK_EQ(tide_semaphore_value(s), 0); /* the permit went to 1 */
    CHECK(tide_future_cancel(w[0].task));
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK_EQ(w[1].rc, 0);
    CHECK_STR_EQ(order, "12");
    CHECK_EQ(tide_semaphore_value(s), 0); /* never negative, none leaked */
    /* Holders now: value - 1 (main) and task 2; 3 and 4 wait. Two
     * releases (in the holders' stead) let them in, in order. */
    CHECK_EQ(tide_semaphore_release(s), 0);
    drain(loop);
    CHECK_STR_EQ(order, "123");
    CHECK_EQ(tide_semaphore_release(s), 0);
    drain(loop);
    CHECK_STR_EQ(order, "1234");
    CHECK_EQ(tide_semaphore_value(s), 0);
    for (unsigned i = 0; i < value; i++)
        CHECK_EQ(tide_semaphore_release(s), 0);
    CHECK_EQ(tide_semaphore_value(s), value);
    CHECK_ERR(tide_semaphore_release(s), bounded ? -EOVERFLOW : 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_semaphore_free(s);
    release_ops(w, 4);
    LEAK_GATE();
}

TEST(b19_semaphore_1)
{
    b19_semaphore(1, false);
}
TEST(b19_semaphore_3)
{
    b19_semaphore(3, false);
}
TEST(b19_bounded_semaphore_3)
{
    b19_semaphore(3, true);
}

/* B21: 3 waiters; in one callback, cancel waiter 1 and release. A counter
 * kept inside the critical section never exceeds 1. */
static int in_cs, max_in_cs, entered;

static int do_cs(struct op *o)
{
    int rc = tide_lock_acquire(o->obj);
    if (rc < 0)
        return rc;
    entered++;
    if (++in_cs > max_in_cs)
        max_in_cs = in_cs;
    tide_sleep(0);
    tide_sleep(0);
    in_cs--;
    CHECK_EQ(tide_lock_release(o->obj), 0);
    return 0;
}

struct b21 {
    tide_lock *lock;
    tide_future *victim;
    bool release_first;
};

static void b21_cb(void *arg)
{
    struct b21 *b = arg;

    if (b->release_first)
        CHECK_EQ(tide_lock_release(b->lock), 0);
    CHECK(tide_future_cancel(b->victim));
    if (!b->release_first)
        CHECK_EQ(tide_lock_release(b->lock), 0);
}

static void b21(bool release_first)
{
    tide_loop *loop = new_virtual_loop();
    tide_lock *l = tide_lock_new();
    struct op w[3] = {{0}};
    order[0] = '\0';
    in_cs = max_in_cs = entered = 0;
    CHECK_EQ(tide_lock_acquire(l), 0);
    for (int i = 0; i < 3; i++)
        spawn(loop, &w[i], "x", do_cs, l);
    drain(loop);
    struct b21 b = {l, w[0].task, release_first};
    CHECK(tide_call_soon(loop, b21_cb, &b) != 0);
    drain(loop);
    CHECK_EQ(max_in_cs, 1);
    CHECK_EQ(entered, 2);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK_EQ(w[1].rc, 0);
    CHECK_EQ(w[2].rc, 0);
    CHECK(!tide_lock_locked(l));
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_lock_free(l);
    release_ops(w, 3);
    LEAK_GATE();
}

TEST(b21_cancel_then_release_one_holder)
{
    b21(false);
}
TEST(b21_release_then_cancel_one_holder)
{
    b21(true);
}

TEST(lock_free_with_waiters_wakes_them_with_ebadf)
{
    tide_loop *loop = new_virtual_loop();
    tide_lock *l = tide_lock_new();
    struct op w[3] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_lock_acquire(l), 0);
    for (int i = 0; i < 3; i++)
        spawn(loop, &w[i], "x", do_lock, l);
    drain(loop);
    /* 1 granted and cancelled (would pass the lock on), 2 granted, 3
     * queued: none may touch the lock once it is freed. */
    CHECK_EQ(tide_lock_release(l), 0);
    CHECK(tide_future_cancel(w[0].task));
    tide_lock_free(l);
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK_ERR(w[1].rc, -EBADF);
    CHECK_ERR(w[2].rc, -EBADF);
    CHECK_EQ(tide_loop_close(loop), 0);
    release_ops(w, 3);
    LEAK_GATE();
}

/* ---- Event ------------------------------------------------------------- */

TEST(event_basics_and_bad_input)
{
    CHECK_ERR(tide_event_set(NULL), -EINVAL);
    CHECK_ERR(tide_event_clear(NULL), -EINVAL);
    CHECK_ERR(tide_event_wait(NULL), -EINVAL);
    CHECK(!tide_event_is_set(NULL));
    tide_event_free(NULL);

    tide_event *ev = tide_event_new();
    CHECK_NOT_NULL(ev);
    CHECK(!tide_event_is_set(ev));
    CHECK_ERR(tide_event_wait(ev), -EPERM); /* would wait */
    long live = tide__alloc_live();
    CHECK_EQ(tide_event_set(ev), 0); /* no waiter: no allocation */
    CHECK_EQ(tide__alloc_live(), live);
    CHECK(tide_event_is_set(ev));
    CHECK_EQ(tide_event_set(ev), 0);
    CHECK_EQ(tide_event_wait(ev), 0); /* set: no task needed */
    CHECK_EQ(tide_event_clear(ev), 0);
    CHECK(!tide_event_is_set(ev));
    tide_event_free(ev);
    LEAK_GATE();
}

TEST(event_set_wakes_every_waiter)
{
    tide_loop *loop = new_virtual_loop();
    tide_event *ev = tide_event_new();
    struct op w[3] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_event, ev);
    spawn(loop, &w[1], "b", do_event, ev);
    spawn(loop, &w[2], "c", do_event, ev);
    drain(loop);
    CHECK_STR_EQ(order, "");
    CHECK_EQ(tide_event_set(ev), 0);
    CHECK_EQ(tide_event_clear(ev), 0); /* the woken still return 0 */
    CHECK_STR_EQ(order, "");           /* nothing ran inside set */
    drain(loop);
    CHECK_STR_EQ(order, "abc");
    for (int i = 0; i < 3; i++)
        CHECK_EQ(w[i].rc, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_event_free(ev);
    release_ops(w, 3);
    LEAK_GATE();
}

TEST(event_cancel_before_and_after_set)
{
    tide_loop *loop = new_virtual_loop();
    tide_event *ev = tide_event_new();
    struct op w[3] = {{0}};
    order[0] = '\0';
    for (int i = 0; i < 3; i++)
        spawn(loop, &w[i], (const char *[]){"a", "b", "c"}[i], do_event, ev);
    drain(loop);
    CHECK(tide_future_cancel(w[0].task)); /* while waiting */
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK_EQ(tide_event_set(ev), 0);
    CHECK(tide_future_cancel(w[1].task)); /* woken, then cancelled */
    drain(loop);
    CHECK_ERR(w[1].rc, -ECANCELED);
    CHECK_EQ(w[2].rc, 0);
    CHECK_STR_EQ(order, "abc");
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_event_free(ev);
    release_ops(w, 3);
    LEAK_GATE();
}

/* Freeing the event under two waiters: still waiting, they get -EBADF;
 * released by set() but not yet run, they return 0 (a woken waiter never
 * touches the event again), or -ECANCELED if cancelled meanwhile. */
static void free_event_under_two_waiters(bool set_first)
{
    tide_loop *loop = new_virtual_loop();
    tide_event *ev = tide_event_new();
    struct op w[2] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_event, ev);
    spawn(loop, &w[1], "b", do_event, ev);
    drain(loop);
    if (set_first) {
        CHECK_EQ(tide_event_set(ev), 0);
        CHECK(tide_future_cancel(w[1].task)); /* woken, then cancelled */
    }
    tide_event_free(ev);
    drain(loop);
    CHECK_STR_EQ(order, "ab");
    CHECK_ERR(w[0].rc, set_first ? 0 : -EBADF);
    CHECK_ERR(w[1].rc, set_first ? -ECANCELED : -EBADF);
    CHECK_EQ(tide_loop_close(loop), 0);
    release_ops(w, 2);
    LEAK_GATE();
}

TEST(event_free_with_waiters)
{
    free_event_under_two_waiters(false);
}
TEST(event_freed_after_set_before_the_woken_run)
{
    free_event_under_two_waiters(true);
}

/* ---- Condition --------------------------------------------------------- */

static bool flag_pred(void *arg)
{
    return *(bool *)arg;
}

TEST(condition_basics_and_bad_input)
{
    bool yes = true;
    CHECK_ERR(tide_condition_acquire(NULL), -EINVAL);
    CHECK_ERR(tide_condition_release(NULL), -EINVAL);
    CHECK(!tide_condition_locked(NULL));
    CHECK_ERR(tide_condition_wait(NULL), -EINVAL);
    CHECK_ERR(tide_condition_wait_for(NULL, flag_pred, &yes), -EINVAL);
    CHECK_ERR(tide_condition_notify(NULL, 1), -EINVAL);
    CHECK_ERR(tide_condition_notify_all(NULL), -EINVAL);
    tide_condition_free(NULL);

    tide_condition *c = tide_condition_new(NULL);
    CHECK_NOT_NULL(c);
    CHECK(!tide_condition_locked(c));
    CHECK_ERR(tide_condition_wait(c), -EINVAL); /* lock not held */
    CHECK_ERR(tide_condition_notify(c, 1), -EINVAL);
    CHECK_ERR(tide_condition_notify_all(c), -EINVAL);
    CHECK_ERR(tide_condition_wait_for(c, flag_pred, &yes), -EINVAL);
    CHECK_EQ(tide_condition_acquire(c), 0);
    CHECK(tide_condition_locked(c));
    CHECK_ERR(tide_condition_wait_for(c, NULL, NULL), -EINVAL);
    CHECK_ERR(tide_condition_wait(c), -EPERM); /* outside a task */
    CHECK(tide_condition_locked(c));           /* nothing changed */
    CHECK_EQ(tide_condition_wait_for(c, flag_pred, &yes), 0); /* true */
    bool no = false;
    CHECK_ERR(tide_condition_wait_for(c, flag_pred, &no), -EPERM);
    CHECK_EQ(tide_condition_notify(c, 5), 0); /* nobody waits */
    CHECK_EQ(tide_condition_notify_all(c), 0);
    CHECK_EQ(tide_condition_release(c), 0);
    CHECK_ERR(tide_condition_release(c), -EINVAL);
    tide_condition_free(c);

    /* A borrowed lock is shared, and outlives the condition. */
    tide_lock *l = tide_lock_new();
    c = tide_condition_new(l);
    CHECK_EQ(tide_lock_acquire(l), 0);
    CHECK(tide_condition_locked(c));
    CHECK_ERR(tide_condition_acquire(c), -EPERM);
    CHECK_EQ(tide_condition_release(c), 0);
    CHECK(!tide_lock_locked(l));
    tide_condition_free(c);
    CHECK_EQ(tide_lock_acquire(l), 0);
    tide_lock_free(l);
    LEAK_GATE();
}

TEST(condition_notify_fifo_and_counts)
{
    tide_loop *loop = new_virtual_loop();
    tide_condition *c = tide_condition_new(NULL);
    struct op w[4] = {{0}};
    order[0] = '\0';
    for (int i = 0; i < 4; i++)
        spawn(loop, &w[i], (const char *[]){"a", "b", "c", "d"}[i], do_cond,
              c);
    drain(loop);
    CHECK(!tide_condition_locked(c)); /* each released it to wait */
    CHECK_EQ(tide_condition_acquire(c), 0);
    CHECK_EQ(tide_condition_notify(c, 2), 2);
    CHECK_EQ(tide_condition_release(c), 0);
    drain(loop);
    CHECK_STR_EQ(order, "ab");
    CHECK_EQ(tide_condition_acquire(c), 0);
    CHECK_EQ(tide_condition_notify_all(c), 2);
    CHECK_EQ(tide_condition_notify_all(c), 0);
    CHECK_EQ(tide_condition_release(c), 0);
    drain(loop);
    CHECK_STR_EQ(order, "abcd");
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(w[i].rc, 0);
        CHECK(w[i].held);
    }
    CHECK(!tide_condition_locked(c));
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_condition_free(c);
    release_ops(w, 4);
    LEAK_GATE();
}

static int counter;
static bool counter_reached_3(void *arg)
{
    (void)arg;
    return counter >= 3;
}

static int do_cond_wait_for(struct op *o)
{
    int rc = tide_condition_acquire(o->obj);
    if (rc < 0)
        return rc;
    rc = tide_condition_wait_for(o->obj, counter_reached_3, NULL);
    o->held = tide_condition_locked(o->obj);
    CHECK_EQ(tide_condition_release(o->obj), 0);
    return rc;
}

static int do_count_and_notify(struct op *o)
{
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(tide_condition_acquire(o->obj), 0);
        counter++;
        CHECK_EQ(tide_condition_notify_all(o->obj), 1);
        CHECK_EQ(tide_condition_release(o->obj), 0);
        CHECK_EQ(tide_sleep(0.1), 0);
    }
    return 0;
}

TEST(condition_wait_for_predicate)
{
    tide_loop *loop = new_virtual_loop();
    tide_condition *c = tide_condition_new(NULL);
    struct op w[2] = {{0}};
    order[0] = '\0';
    counter = 0;
    spawn(loop, &w[0], "w", do_cond_wait_for, c);
    spawn(loop, &w[1], "n", do_count_and_notify, c);
    CHECK_EQ(tide_run_until_complete(loop, w[1].task, NULL), 0);
    drain(loop);
    CHECK_EQ(w[0].rc, 0);
    CHECK(w[0].held);
    CHECK_EQ(counter, 3);
    CHECK_STR_EQ(order, "wn"); /* woke at the third notify */
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_condition_free(c);
    release_ops(w, 2);
    LEAK_GATE();
}

TEST(condition_cancel_while_waiting_reacquires)
{
    tide_loop *loop = new_virtual_loop();
    tide_condition *c = tide_condition_new(NULL);
    struct op w[2] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_cond, c);
    spawn(loop, &w[1], "b", do_cond, c);
    drain(loop);
    CHECK(tide_future_cancel(w[0].task));
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK(w[0].held);  /* held on return */
    CHECK(!w[1].done); /* no notification invented */
    CHECK_EQ(tide_condition_acquire(c), 0);
    CHECK_EQ(tide_condition_notify(c, 1), 1);
    CHECK_EQ(tide_condition_release(c), 0);
    drain(loop);
    CHECK_EQ(w[1].rc, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_condition_free(c);
    release_ops(w, 2);
    LEAK_GATE();
}

/* B20a / B19 for Condition (CPython #112202): a notified waiter cancelled
 * in the same step passes the notification on. Run with 2 and 4 waiters. */
static void b20a(int n)
{
    tide_loop *loop = new_virtual_loop();
    tide_condition *c = tide_condition_new(NULL);
    struct op w[4] = {{0}};
    order[0] = '\0';
    for (int i = 0; i < n; i++)
        spawn(loop, &w[i], (const char *[]){"1", "2", "3", "4"}[i], do_cond,
              c);
    drain(loop);
    CHECK_EQ(tide_condition_acquire(c), 0);
    CHECK_EQ(tide_condition_notify(c, 1), 1);
    CHECK(tide_future_cancel(w[0].task));
    CHECK_EQ(tide_condition_release(c), 0);
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK(w[0].held);
    CHECK_EQ(w[1].rc, 0); /* the notification was not lost */
    CHECK(w[1].held);
    CHECK_STR_EQ(order, "12");
    for (int i = 2; i < n; i++)
        CHECK(!w[i].done); /* one notify: one wake-up */
    CHECK_EQ(tide_condition_acquire(c), 0);
    CHECK_EQ(tide_condition_notify_all(c), n - 2);
    CHECK_EQ(tide_condition_release(c), 0);
    drain(loop);
    for (int i = 2; i < n; i++)
        CHECK_EQ(w[i].rc, 0);
    CHECK(!tide_condition_locked(c));
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_condition_free(c);
    release_ops(w, n);
    LEAK_GATE();
}

TEST(b20a_notified_waiter_cancelled_two_waiters)
{
    b20a(2);
}
TEST(b19_condition_woken_waiter_cancelled)
{
    b20a(4);
}

/* B20b: cancelled while re-acquiring a contested lock, a waiter still
 * returns holding the lock, and its release succeeds. */
TEST(b20b_cancel_while_reacquiring_contested_lock)
{
    tide_loop *loop = new_virtual_loop();
    tide_condition *c = tide_condition_new(NULL);
    struct op w[1] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_cond, c);
    drain(loop);
    CHECK_EQ(tide_condition_acquire(c), 0); /* contested from now on */
    CHECK_EQ(tide_condition_notify(c, 1), 1);
    drain(loop); /* a waits for the lock */
    CHECK(!w[0].done);
    CHECK(tide_future_cancel(w[0].task));
    drain(loop);
    CHECK(!w[0].done); /* still needs the lock */
    CHECK_EQ(tide_condition_release(c), 0);
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK(w[0].held);
    CHECK(!tide_condition_locked(c)); /* its release succeeded */
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_condition_free(c);
    release_ops(w, 1);
    LEAK_GATE();
}

TEST(b20b_cancel_before_notify_with_contested_lock)
{
    tide_loop *loop = new_virtual_loop();
    tide_condition *c = tide_condition_new(NULL);
    struct op w[1] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_cond, c);
    drain(loop);
    CHECK_EQ(tide_condition_acquire(c), 0);
    CHECK(tide_future_cancel(w[0].task));
    drain(loop);
    CHECK(!w[0].done);
    CHECK(tide_future_cancel(w[0].task)); /* again, while re-acquiring */
    drain(loop);
    CHECK_EQ(tide_condition_release(c), 0);
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK(w[0].held);
    CHECK(!tide_condition_locked(c));
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_condition_free(c);
    release_ops(w, 1);
    LEAK_GATE();
}

TEST(condition_free_with_waiters)
{
    tide_loop *loop = new_virtual_loop();
    tide_condition *c = tide_condition_new(NULL);
    struct op w[3] = {{0}};
    order[0] = '\0';
    for (int i = 0; i < 3; i++)
        spawn(loop, &w[i], "x", do_cond, c);
    drain(loop);
    /* 1 notified and cancelled, 2 notified, 3 waiting. */
    CHECK_EQ(tide_condition_acquire(c), 0);
    CHECK_EQ(tide_condition_notify(c, 2), 2);
    CHECK(tide_future_cancel(w[0].task));
    tide_condition_free(c);
    drain(loop);
    for (int i = 0; i < 3; i++) {
        CHECK_ERR(w[i].rc, -EBADF);
        CHECK(w[i].done);
    }
    CHECK_EQ(tide_loop_close(loop), 0);
    release_ops(w, 3);
    LEAK_GATE();
}

/* A condition on a borrowed lock freed while a waiter re-acquires it:
 * the waiter gets the lock, sees the condition gone, lets the lock go. */
static int do_cond_borrowed(struct op *o)
{
    tide_condition *c = o->obj;
    int rc = tide_condition_acquire(c);
    if (rc < 0)
        return rc;
    return tide_condition_wait(c); /* c may be gone on return */
}

TEST(condition_freed_while_reacquiring_borrowed_lock)
{
    tide_loop *loop = new_virtual_loop();
    tide_lock *l = tide_lock_new();
    tide_condition *c = tide_condition_new(l);
    struct op w[1] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_cond_borrowed, c);
    drain(loop);
    CHECK_EQ(tide_lock_acquire(l), 0);
    CHECK_EQ(tide_condition_notify(c, 1), 1);
    drain(loop); /* a waits for l */
    tide_condition_free(c);
    CHECK_EQ(tide_lock_release(l), 0);
    drain(loop);
    CHECK_ERR(w[0].rc, -EBADF);
    CHECK(!tide_lock_locked(l));
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_lock_free(l);
    release_ops(w, 1);
    LEAK_GATE();
}

/* ---- Semaphore --------------------------------------------------------- */

TEST(semaphore_basics_and_bad_input)
{
    CHECK_ERR(tide_semaphore_acquire(NULL), -EINVAL);
    CHECK_ERR(tide_semaphore_release(NULL), -EINVAL);
    CHECK(!tide_semaphore_locked(NULL));
    CHECK_EQ(tide_semaphore_value(NULL), 0);
    tide_semaphore_free(NULL);

    tide_semaphore *s = tide_semaphore_new(2);
    CHECK_NOT_NULL(s);
    CHECK_EQ(tide_semaphore_value(s), 2);
    CHECK(!tide_semaphore_locked(s));
    CHECK_EQ(tide_semaphore_acquire(s), 0);
    CHECK_EQ(tide_semaphore_acquire(s), 0);
    CHECK(tide_semaphore_locked(s));
    CHECK_ERR(tide_semaphore_acquire(s), -EPERM);
    CHECK_EQ(tide_semaphore_value(s), 0);
    for (int i = 0; i < 5; i++) /* unbounded: above the start */
        CHECK_EQ(tide_semaphore_release(s), 0);
    CHECK_EQ(tide_semaphore_value(s), 5);
    tide_semaphore_free(s);

    s = tide_semaphore_new(UINT_MAX);
    CHECK_ERR(tide_semaphore_release(s), -EOVERFLOW);
    CHECK_EQ(tide_semaphore_value(s), UINT_MAX);
    tide_semaphore_free(s);

    s = tide_bounded_semaphore_new(1);
    CHECK_ERR(tide_semaphore_release(s), -EOVERFLOW); /* changes nothing */
    CHECK_EQ(tide_semaphore_value(s), 1);
    CHECK_EQ(tide_semaphore_acquire(s), 0);
    CHECK_EQ(tide_semaphore_release(s), 0);
    CHECK_ERR(tide_semaphore_release(s), -EOVERFLOW);
    CHECK_EQ(tide_semaphore_value(s), 1);
    tide_semaphore_free(s);

    s = tide_semaphore_new(0);
    CHECK(tide_semaphore_locked(s));
    CHECK_ERR(tide_semaphore_acquire(s), -EPERM);
    tide_semaphore_free(s);
    LEAK_GATE();
}

TEST(semaphore_fifo_no_barging_and_cancel)
{
    tide_loop *loop = new_virtual_loop();
    tide_semaphore *s = tide_semaphore_new(0);
    struct op w[3] = {{0}};
    order[0] = '\0';
    for (int i = 0; i < 3; i++)
        spawn(loop, &w[i], (const char *[]){"a", "b", "c"}[i], do_sem, s);
    drain(loop);
    CHECK(tide_future_cancel(w[1].task)); /* b, while waiting */
    drain(loop);
    CHECK_ERR(w[1].rc, -ECANCELED);
    CHECK_EQ(tide_semaphore_release(s), 0); /* handed to a */
    CHECK_EQ(tide_semaphore_value(s), 0);
    CHECK_ERR(tide_semaphore_acquire(s), -EPERM); /* no barging */
    CHECK_EQ(tide_semaphore_release(s), 0);       /* handed to c */
    CHECK_EQ(tide_semaphore_release(s), 0);       /* nobody left: value 1 */
    CHECK_EQ(tide_semaphore_value(s), 1);
    drain(loop);
    CHECK_STR_EQ(order, "bac");
    CHECK_EQ(w[0].rc, 0);
    CHECK_EQ(w[2].rc, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_semaphore_free(s);
    release_ops(w, 3);
    LEAK_GATE();
}

TEST(semaphore_free_with_waiters)
{
    tide_loop *loop = new_virtual_loop();
    tide_semaphore *s = tide_bounded_semaphore_new(1);
    struct op w[3] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_semaphore_acquire(s), 0);
    for (int i = 0; i < 3; i++)
        spawn(loop, &w[i], "x", do_sem, s);
    drain(loop);
    CHECK_EQ(tide_semaphore_release(s), 0);
    CHECK(tide_future_cancel(w[0].task));
    tide_semaphore_free(s);
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    CHECK_ERR(w[1].rc, -EBADF);
    CHECK_ERR(w[2].rc, -EBADF);
    CHECK_EQ(tide_loop_close(loop), 0);
    release_ops(w, 3);
    LEAK_GATE();
}

/* The randomized model test. Batches of random actions (spawn an
 * acquirer, cancel a random task, release a permit a finished acquirer
 * holds) are applied in one step, each followed by running the loop
 * until nothing is ready. A cancel may hit a waiter just granted a
 * permit in the same batch (B19). The reference model: cancelled waiters
 * leave the queue; each release goes to the first waiter left, else to
 * the value; then the new tasks, in creation order, take a permit or
 * queue. After every batch the semaphore's value and every task's state
 * must match the model exactly. */
#define MODEL_TASKS 4096

enum { M_NEW, M_WAITING, M_HOLDING, M_CANCELLED };

static struct op mops[MODEL_TASKS];
static int mstate[MODEL_TASKS];
static uint64_t rng = 0x9e3779b97f4a7c15u;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void semaphore_model(bool bounded, unsigned initial)
{
    tide_loop *loop = new_virtual_loop();
    tide_semaphore *s = bounded ? tide_bounded_semaphore_new(initial)
                                : tide_semaphore_new(initial);
    int nt = 0;
    unsigned value = initial;         /* the model's */
    int fifo[MODEL_TASKS], nfifo = 0; /* waiting, in order */
    int holders = 0;                  /* permits held by finished tasks */

    order[0] = '\0';
    memset(mops, 0, sizeof mops);
    while (nt < MODEL_TASKS - 8) {
        int first_new = nt, nrel = 0;
        bool cancel[MODEL_TASKS] = {false};
        for (unsigned k = 1 + rnd(6); k > 0; k--) {
            unsigned what = rnd(10);
            if (what < 4 && nfifo + (nt - first_new) < 12) {
                spawn(loop, &mops[nt], "", do_sem, s);
                mstate[nt++] = M_NEW;
            } else if (what < 7 && nt > 0) {
                int t = (int)rnd((unsigned)nt);
                bool pending = !tide_future_done(mops[t].task);
                CHECK_EQ(tide_future_cancel(mops[t].task), pending);
                if (pending)
                    cancel[t] = true;
            } else if (holders - nrel > 0) {
                CHECK_EQ(tide_semaphore_release(s), 0);
                nrel++;
            }
        }
        drain(loop);
        /* The model's view of the batch. */
        int kept = 0;
        for (int i = 0; i < nfifo; i++) {
            if (cancel[fifo[i]])
                mstate[fifo[i]] = M_CANCELLED;
            else
                fifo[kept++] = fifo[i];
        }
        nfifo = kept;
        holders -= nrel;
        int head = 0;
        for (; nrel > 0; nrel--) {
            if (head < nfifo) {
                mstate[fifo[head++]] = M_HOLDING;
                holders++;
            } else {
                value++;
            }
        }
        memmove(fifo, fifo + head, (size_t)(nfifo - head) * sizeof *fifo);
        nfifo -= head;
        for (int t = first_new; t < nt; t++) {
            if (cancel[t]) {
                mstate[t] = M_CANCELLED;
            } else if (value > 0) {
                value--;
                holders++;
                mstate[t] = M_HOLDING;
            } else {
                mstate[t] = M_WAITING;
                fifo[nfifo++] = t;
            }
        }
        /* Compare. */
        CHECK_EQ(tide_semaphore_value(s), value);
        CHECK(value == 0 || nfifo == 0);
        CHECK_EQ((unsigned)holders + value + 0u, initial + 0u);
        for (int t = first_new > 64 ? first_new - 64 : 0; t < nt; t++) {
            switch (mstate[t]) {
            case M_WAITING:
                CHECK(!mops[t].done);
                CHECK(!tide_future_done(mops[t].task));
                break;
            case M_HOLDING:
                CHECK(mops[t].done);
                CHECK_EQ(mops[t].rc, 0);
                break;
            case M_CANCELLED:
                CHECK(tide_future_done(mops[t].task));
                CHECK(!mops[t].done || mops[t].rc == -ECANCELED);
                break;
            }
        }
    }
    /* Let everyone through: release until nobody waits. */
    while (nfifo > 0) {
        CHECK_EQ(tide_semaphore_release(s), 0);
        drain(loop);
        CHECK_EQ(mops[fifo[0]].rc, 0);
        memmove(fifo, fifo + 1, (size_t)--nfifo * sizeof *fifo);
    }
    CHECK_EQ(loop_stats(loop).tasks, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_semaphore_free(s);
    release_ops(mops, nt);
    LEAK_GATE();
}

TEST(semaphore_randomized_model_1)
{
    semaphore_model(false, 1);
}
TEST(semaphore_randomized_model_3)
{
    semaphore_model(false, 3);
}
TEST(bounded_semaphore_randomized_model_2)
{
    semaphore_model(true, 2);
}

/* ---- Barrier ----------------------------------------------------------- */

TEST(barrier_basics_and_bad_input)
{
    unsigned idx = 99;
    CHECK_ERR(tide_barrier_wait(NULL, &idx), -EINVAL);
    CHECK_ERR(tide_barrier_reset(NULL), -EINVAL);
    CHECK_ERR(tide_barrier_abort(NULL), -EINVAL);
    CHECK_EQ(tide_barrier_parties(NULL), 0);
    CHECK_EQ(tide_barrier_n_waiting(NULL), 0);
    CHECK(!tide_barrier_broken(NULL));
    tide_barrier_free(NULL);
    errno = 0;
    CHECK_NULL(tide_barrier_new(0));
    CHECK_ERR(errno, EINVAL);

    tide_barrier *b = tide_barrier_new(1); /* one party never waits */
    CHECK_EQ(tide_barrier_parties(b), 1);
    for (int i = 0; i < 3; i++) {
        idx = 99;
        CHECK_EQ(tide_barrier_wait(b, &idx), 0);
        CHECK_EQ(idx, 0);
    }
    CHECK_EQ(tide_barrier_wait(b, NULL), 0);
    tide_barrier_free(b);

    b = tide_barrier_new(2);
    CHECK_ERR(tide_barrier_wait(b, &idx), -EPERM); /* would wait */
    CHECK_EQ(tide_barrier_n_waiting(b), 0);        /* changed nothing */
    CHECK_EQ(tide_barrier_abort(b), 0);
    CHECK(tide_barrier_broken(b));
    CHECK_ERR(tide_barrier_wait(b, &idx), -EPIPE);
    CHECK_EQ(tide_barrier_reset(b), 0);
    CHECK(!tide_barrier_broken(b));
    tide_barrier_free(b);
    LEAK_GATE();
}

TEST(barrier_trips_with_indexes_and_cycles)
{
    tide_loop *loop = new_virtual_loop();
    tide_barrier *b = tide_barrier_new(3);
    struct op w[6] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_barrier, b);
    spawn(loop, &w[1], "b", do_barrier, b);
    drain(loop);
    CHECK_EQ(tide_barrier_n_waiting(b), 2);
    CHECK_STR_EQ(order, "");
    spawn(loop, &w[2], "c", do_barrier, b);
    drain(loop);
    CHECK_STR_EQ(order, "cab"); /* the last one does not wait */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(w[i].rc, 0);
        CHECK_EQ(w[i].index, (unsigned)i);
    }
    CHECK_EQ(tide_barrier_n_waiting(b), 0);
    /* A second cycle, the last party arriving from outside a task. */
    spawn(loop, &w[3], "d", do_barrier, b);
    spawn(loop, &w[4], "e", do_barrier, b);
    drain(loop);
    unsigned idx = 99;
    CHECK_EQ(tide_barrier_wait(b, &idx), 0);
    CHECK_EQ(idx, 2);
    drain(loop);
    CHECK_STR_EQ(order, "cabde");
    CHECK_EQ(w[3].index, 0);
    CHECK_EQ(w[4].index, 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_barrier_free(b);
    release_ops(w, 5);
    LEAK_GATE();
}

/* Draining: a party that loops back while the others have not left yet
 * waits for the next cycle (asyncio's test_blocking_tasks_while_draining
 * in small). */
static int do_barrier_twice(struct op *o)
{
    int rc = tide_barrier_wait(o->obj, &o->index);
    if (rc < 0)
        return rc;
    return tide_barrier_wait(o->obj, &o->index);
}

TEST(barrier_blocks_newcomers_while_draining)
{
    tide_loop *loop = new_virtual_loop();
    tide_barrier *b = tide_barrier_new(2);
    struct op w[2] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_barrier_twice, b);
    drain(loop);
    spawn(loop, &w[1], "b", do_barrier, b); /* runs before a resumes */
    unsigned idx;
    /* Trip from outside: a is released but has not run; the barrier is
     * draining, so an arrival now has to wait for the next cycle. */
    CHECK_EQ(tide_barrier_wait(b, &idx), 0);
    CHECK_EQ(idx, 1);
    CHECK_EQ(tide_barrier_n_waiting(b), 0);
    CHECK_ERR(tide_barrier_wait(b, &idx), -EPERM);
    drain(loop);
    /* b blocked; a left (draining over) and came back as index 0; b,
     * unblocked, arrived last (index 1) and tripped it. Without the
     * draining state b would have been index 0. */
    CHECK_STR_EQ(order, "ba");
    CHECK_EQ(w[0].rc, 0);
    CHECK_EQ(w[1].rc, 0);
    CHECK_EQ(w[0].index, 0);
    CHECK_EQ(w[1].index, 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_barrier_free(b);
    release_ops(w, 2);
    LEAK_GATE();
}

TEST(barrier_abort_breaks_every_party)
{
    tide_loop *loop = new_virtual_loop();
    tide_barrier *b = tide_barrier_new(3);
    struct op w[3] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_barrier, b);
    spawn(loop, &w[1], "b", do_barrier, b);
    drain(loop);
    CHECK_EQ(tide_barrier_abort(b), 0);
    CHECK(tide_barrier_broken(b));
    CHECK_EQ(tide_barrier_n_waiting(b), 0);
    drain(loop);
    CHECK_ERR(w[0].rc, -EPIPE);
    CHECK_ERR(w[1].rc, -EPIPE);
    spawn(loop, &w[2], "c", do_barrier, b);
    drain(loop);
    CHECK_ERR(w[2].rc, -EPIPE); /* broken until reset */
    CHECK_EQ(tide_barrier_reset(b), 0);
    CHECK(!tide_barrier_broken(b));
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_barrier_free(b);
    release_ops(w, 3);
    LEAK_GATE();
}

TEST(barrier_reset_while_waiting)
{
    tide_loop *loop = new_virtual_loop();
    tide_barrier *b = tide_barrier_new(3);
    struct op w[6] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_barrier, b);
    spawn(loop, &w[1], "b", do_barrier, b);
    drain(loop);
    CHECK_EQ(tide_barrier_reset(b), 0); /* resetting until they leave */
    CHECK(!tide_barrier_broken(b));
    spawn(loop, &w[2], "c", do_barrier, b); /* arrives while resetting */
    drain(loop);
    CHECK_ERR(w[0].rc, -EPIPE);
    CHECK_ERR(w[1].rc, -EPIPE);
    CHECK(!w[2].done); /* a fresh cycle: it waits */
    CHECK_EQ(tide_barrier_n_waiting(b), 1);
    CHECK(!tide_barrier_broken(b));
    spawn(loop, &w[3], "d", do_barrier, b);
    spawn(loop, &w[4], "e", do_barrier, b);
    drain(loop);
    CHECK_EQ(w[2].rc, 0);
    CHECK_EQ(w[3].rc, 0);
    CHECK_EQ(w[4].rc, 0);
    CHECK_EQ(w[4].index, 2);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_barrier_free(b);
    release_ops(w, 5);
    LEAK_GATE();
}

TEST(barrier_cancelled_party_breaks_it)
{
    tide_loop *loop = new_virtual_loop();
    tide_barrier *b = tide_barrier_new(4);
    struct op w[4] = {{0}};
    order[0] = '\0';
    for (int i = 0; i < 3; i++)
        spawn(loop, &w[i], "x", do_barrier, b);
    drain(loop);
    CHECK(tide_future_cancel(w[1].task));
    drain(loop);
    CHECK_ERR(w[1].rc, -ECANCELED);
    CHECK_ERR(w[0].rc, -EPIPE);
    CHECK_ERR(w[2].rc, -EPIPE);
    CHECK(tide_barrier_broken(b));
    spawn(loop, &w[3], "x", do_barrier, b);
    drain(loop);
    CHECK_ERR(w[3].rc, -EPIPE);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_barrier_free(b);
    release_ops(w, 4);
    LEAK_GATE();
}

TEST(barrier_cancel_while_blocked_by_drain)
{
    tide_loop *loop = new_virtual_loop();
    tide_barrier *b = tide_barrier_new(2);
    struct op w[3] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "a", do_barrier, b);
    drain(loop);
    spawn(loop, &w[1], "b", do_barrier, b);
    spawn(loop, &w[2], "c", do_barrier, b);
    CHECK_EQ(tide_barrier_wait(b, NULL), 0); /* trip: draining */
    run_once(loop); /* b and c block; a leaves, wakes them */
    CHECK(tide_future_cancel(w[1].task)); /* woken, then cancelled */
    drain(loop);
    CHECK_EQ(w[0].rc, 0);
    CHECK_ERR(w[1].rc, -ECANCELED);
    CHECK(!w[2].done);              /* c waits for a partner */
    CHECK(!tide_barrier_broken(b)); /* b never arrived */
    CHECK_EQ(tide_barrier_n_waiting(b), 1);
    CHECK_EQ(tide_barrier_wait(b, NULL), 0);
    drain(loop);
    CHECK_EQ(w[2].rc, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_barrier_free(b);
    release_ops(w, 3);
    LEAK_GATE();
}

/* B19 for Barrier: 4 parties wait, the fifth trips it, the first woken is
 * cancelled in the same step: it alone gets -ECANCELED, the others pass,
 * and the barrier is whole and usable again. */
TEST(b19_barrier_woken_party_cancelled)
{
    tide_loop *loop = new_virtual_loop();
    tide_barrier *b = tide_barrier_new(5);
    struct op w[9] = {{0}};
    order[0] = '\0';
    for (int i = 0; i < 4; i++)
        spawn(loop, &w[i], (const char *[]){"1", "2", "3", "4"}[i], do_barrier,
              b);
    drain(loop);
    unsigned idx;
    CHECK_EQ(tide_barrier_wait(b, &idx), 0);
    CHECK_EQ(idx, 4);
    CHECK(tide_future_cancel(w[0].task));
    drain(loop);
    CHECK_ERR(w[0].rc, -ECANCELED);
    for (int i = 1; i < 4; i++) {
        CHECK_EQ(w[i].rc, 0);
        CHECK_EQ(w[i].index, (unsigned)i);
    }
    CHECK(!tide_barrier_broken(b));
    CHECK_EQ(tide_barrier_n_waiting(b), 0);
    for (int i = 4; i < 9; i++)
        spawn(loop, &w[i], "y", do_barrier, b);
    drain(loop);
    for (int i = 4; i < 9; i++)
        CHECK_EQ(w[i].rc, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_barrier_free(b);
    release_ops(w, 9);
    LEAK_GATE();
}

TEST(barrier_free_with_waiters)
{
    tide_loop *loop = new_virtual_loop();
    tide_barrier *b = tide_barrier_new(2);
    struct op w[6] = {{0}};
    order[0] = '\0';
    /* Woken from `block`, not run yet. */
    spawn(loop, &w[0], "a", do_barrier, b);
    drain(loop);
    spawn(loop, &w[1], "b", do_barrier, b);
    spawn(loop, &w[2], "c", do_barrier, b);
    CHECK_EQ(tide_barrier_wait(b, NULL), 0);
    run_once(loop);
    tide_barrier_free(b);
    drain(loop);
    CHECK_EQ(w[0].rc, 0);
    CHECK_ERR(w[1].rc, -EBADF);
    CHECK_ERR(w[2].rc, -EBADF);
    /* Released from `fill`, not run yet; and waiting in `fill`. */
    b = tide_barrier_new(2);
    spawn(loop, &w[3], "d", do_barrier, b);
    drain(loop);
    CHECK_EQ(tide_barrier_wait(b, NULL), 0);
    tide_barrier_free(b);
    b = tide_barrier_new(3);
    spawn(loop, &w[4], "e", do_barrier, b);
    spawn(loop, &w[5], "f", do_barrier, b);
    drain(loop);
    tide_barrier_free(b);
    drain(loop);
    CHECK_ERR(w[3].rc, -EBADF);
    CHECK_ERR(w[4].rc, -EBADF);
    CHECK_ERR(w[5].rc, -EBADF);
    CHECK_EQ(tide_loop_close(loop), 0);
    release_ops(w, 6);
    LEAK_GATE();
}

/* ---- closing a loop with waiters ---------------------------------------- */

TEST(loop_close_cancels_waiters_cleanly)
{
    tide_loop *loop = new_virtual_loop();
    tide_lock *l = tide_lock_new();
    tide_semaphore *s = tide_semaphore_new(0);
    tide_event *ev = tide_event_new();
    tide_condition *c = tide_condition_new(NULL);
    tide_barrier *b = tide_barrier_new(2);
    struct op w[5] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_lock_acquire(l), 0);
    spawn(loop, &w[0], "l", do_lock, l);
    spawn(loop, &w[1], "s", do_sem, s);
    spawn(loop, &w[2], "e", do_event, ev);
    spawn(loop, &w[3], "c", do_cond, c);
    spawn(loop, &w[4], "b", do_barrier, b);
    drain(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_STR_EQ(order, "lsecb");
    for (int i = 0; i < 5; i++)
        CHECK_ERR(w[i].rc, -ECANCELED);
    CHECK(w[3].held);
    CHECK(tide_lock_locked(l));
    CHECK_EQ(tide_semaphore_value(s), 0);
    CHECK(!tide_condition_locked(c));
    tide_lock_free(l);
    tide_semaphore_free(s);
    tide_event_free(ev);
    tide_condition_free(c);
    tide_barrier_free(b);
    release_ops(w, 5);
    LEAK_GATE();
}

/* ---- allocation failure ------------------------------------------------ */

TEST(constructors_report_enomem_and_leak_nothing)
{
    for (int kind = 0; kind < 6; kind++) {
        for (long n = 1; n <= 3; n++) {
            void *p = NULL;
            tide__alloc_fail_after(n);
            errno = 0;
            switch (kind) {
            case 0:
                p = tide_lock_new();
                break;
            case 1:
                p = tide_event_new();
                break;
            case 2:
                p = tide_condition_new(NULL);
                break;
            case 3:
                p = tide_semaphore_new(1);
                break;
            case 4:
                p = tide_bounded_semaphore_new(1);
                break;
            case 5:
                p = tide_barrier_new(2);
                break;
            }
            int e = errno;
            tide__alloc_fail_after(0);
            if (!p) {
                CHECK_ERR(e, ENOMEM);
                CHECK_EQ(tide__alloc_live(), 0);
                continue;
            }
            CHECK(n > 1 && (kind != 2 || n > 2));
            switch (kind) {
            case 0:
                tide_lock_free(p);
                break;
            case 1:
                tide_event_free(p);
                break;
            case 2:
                tide_condition_free(p);
                break;
            case 3:
            case 4:
                tide_semaphore_free(p);
                break;
            case 5:
                tide_barrier_free(p);
                break;
            }
        }
    }
    LEAK_GATE();
}
