/* Queues: FIFO, LIFO and priority order (ties in insertion order), the
 * _nowait calls (-EAGAIN), size/empty/full/maxsize, bad input, -EPERM
 * outside a task only when a call would wait, FIFO getters and putters,
 * the direct hand-off (an item handed to a waiting getter counts in
 * size() and is not taken by get_nowait), cancellation of get, put and
 * join, HAZARDS B19 and B23 for get (a woken getter cancelled in the same
 * step gives its item back to the front: nothing lost) and put (a woken
 * putter cancelled so puts nothing: nothing duplicated), task_done/join,
 * Python 3.13 shutdown (graceful and immediate), growth of the storage,
 * freeing with waiters (-EBADF), ENOMEM, and a randomized test of puts,
 * gets and cancels against a model of the items.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "tide/sync.h"

#include "base/alloc.h"
#include "ops.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void spawn(tide_loop *loop, struct op *o, const char *tag,
                  int (*fn)(struct op *), tide_queue *q, void *item)
{
    op_start(loop, o, tag, fn, q, item);
}

static int do_get(struct op *o)
{
    return tide_queue_get(o->obj, &o->item);
}
static int do_put(struct op *o)
{
    return tide_queue_put(o->obj, o->item);
}
static int do_join(struct op *o)
{
    return tide_queue_join(o->obj);
}

static void *get_now(tide_queue *q)
{
    void *item = NULL;
    CHECK_EQ(tide_queue_get_nowait(q, &item), 0);
    return item;
}

/* ---- basics ------------------------------------------------------------ */

static int cmp_int(const void *a, const void *b)
{
    long x = (long)PINT(a) / 10, y = (long)PINT(b) / 10; /* tens only */
    return (x > y) - (x < y);
}

TEST(queue_bad_input)
{
    void *item;
    CHECK_ERR(tide_queue_put(NULL, NULL), -EINVAL);
    CHECK_ERR(tide_queue_put_nowait(NULL, NULL), -EINVAL);
    CHECK_ERR(tide_queue_get(NULL, &item), -EINVAL);
    CHECK_ERR(tide_queue_get_nowait(NULL, &item), -EINVAL);
    CHECK_ERR(tide_queue_task_done(NULL), -EINVAL);
    CHECK_ERR(tide_queue_join(NULL), -EINVAL);
    CHECK_ERR(tide_queue_shutdown(NULL, false), -EINVAL);
    CHECK_EQ(tide_queue_size(NULL), 0);
    CHECK(tide_queue_empty(NULL));
    CHECK(!tide_queue_full(NULL));
    CHECK_EQ(tide_queue_maxsize(NULL), 0);
    tide_queue_free(NULL);
    errno = 0;
    CHECK_NULL(tide_queue_new_priority(4, NULL));
    CHECK_ERR(errno, EINVAL);
    tide_queue *q = tide_queue_new(0);
    CHECK_ERR(tide_queue_get(q, NULL), -EINVAL);
    CHECK_ERR(tide_queue_get_nowait(q, NULL), -EINVAL);
    CHECK_ERR(tide_queue_task_done(q), -EINVAL); /* nothing gotten */
    tide_queue_free(q);
    LEAK_GATE();
}

TEST(queue_fifo_nowait_and_state)
{
    tide_queue *q = tide_queue_new(3);
    void *item = IPTR(7);
    CHECK_EQ(tide_queue_maxsize(q), 3);
    CHECK(tide_queue_empty(q));
    CHECK(!tide_queue_full(q));
    CHECK_ERR(tide_queue_get_nowait(q, &item), -EAGAIN);
    CHECK_EQ(PINT(item), 7);                     /* untouched */
    CHECK_ERR(tide_queue_get(q, &item), -EPERM); /* would wait */
    for (int i = 1; i <= 3; i++)
        CHECK_EQ(tide_queue_put_nowait(q, IPTR(i)), 0);
    CHECK(tide_queue_full(q));
    CHECK_EQ(tide_queue_size(q), 3);
    CHECK_ERR(tide_queue_put_nowait(q, IPTR(4)), -EAGAIN);
    CHECK_ERR(tide_queue_put(q, IPTR(4)), -EPERM);
    CHECK_EQ(tide_queue_size(q), 3);
    CHECK_EQ(PINT(get_now(q)), 1);
    CHECK_EQ(tide_queue_put(q, IPTR(4)), 0); /* room: no task needed */
    CHECK_EQ(tide_queue_get(q, &item), 0);
    CHECK_EQ(PINT(item), 2);
    CHECK_EQ(PINT(get_now(q)), 3);
    CHECK_EQ(PINT(get_now(q)), 4);
    CHECK(tide_queue_empty(q));
    tide_queue_free(q);
    LEAK_GATE();
}

TEST(queue_lifo_and_priority_order)
{
    tide_queue *q = tide_queue_new_lifo(0);
    for (int i = 1; i <= 4; i++)
        CHECK_EQ(tide_queue_put_nowait(q, IPTR(i)), 0);
    CHECK(!tide_queue_full(q)); /* unbounded */
    for (int i = 4; i >= 1; i--)
        CHECK_EQ(PINT(get_now(q)), i);
    tide_queue_free(q);

    /* cmp looks at the tens only: equal tens come out in put order. */
    static const int in[] = {31, 10, 20, 11, 32, 21, 12, 30, 13, 22};
    static const int out[] = {10, 11, 12, 13, 20, 21, 22, 31, 32, 30};
    q = tide_queue_new_priority(0, cmp_int);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(tide_queue_put_nowait(q, IPTR(in[i])), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(PINT(get_now(q)), out[i]);
    /* Many, to exercise the heap both ways. */
    for (int i = 0; i < 500; i++)
        CHECK_EQ(tide_queue_put_nowait(q, IPTR((i * 7919) % 1000)), 0);
    long prev = -1;
    for (int i = 0; i < 500; i++) {
        long v = (long)PINT(get_now(q)) / 10;
        CHECK(v >= prev);
        prev = v;
    }
    tide_queue_free(q);
    LEAK_GATE();
}

TEST(queue_ring_wraps_and_grows)
{
    tide_queue *q = tide_queue_new(0);
    int next_in = 0, next_out = 0;
    /* Keep the ring offset while it grows, so growth unwraps it. */
    for (int round = 0; round < 200; round++) {
        for (int k = 0; k < 7; k++)
            CHECK_EQ(tide_queue_put_nowait(q, IPTR(next_in++)), 0);
        for (int k = 0; k < 5; k++)
            CHECK_EQ(PINT(get_now(q)), next_out++);
    }
    CHECK_EQ(tide_queue_size(q), 400);
    while (next_out < next_in)
        CHECK_EQ(PINT(get_now(q)), next_out++);
    tide_queue_free(q);

    q = tide_queue_new_lifo(5);
    for (int round = 0; round < 50; round++) {
        CHECK_EQ(tide_queue_put_nowait(q, IPTR(round)), 0);
        CHECK_EQ(tide_queue_put_nowait(q, IPTR(round + 1000)), 0);
        CHECK_EQ(PINT(get_now(q)), round + 1000);
        CHECK_EQ(PINT(get_now(q)), round);
    }
    tide_queue_free(q);
    LEAK_GATE();
}

/* ---- waiting ----------------------------------------------------------- */

TEST(queue_getters_fifo_and_direct_hand_off)
{
    tide_loop *loop = new_virtual_loop();
    tide_queue *q = tide_queue_new(2);
    struct op g[3] = {{0}};
    order[0] = '\0';
    spawn(loop, &g[0], "a", do_get, q, NULL);
    spawn(loop, &g[1], "b", do_get, q, NULL);
    spawn(loop, &g[2], "c", do_get, q, NULL);
    drain(loop);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(1)), 0); /* handed to a */
    CHECK_EQ(tide_queue_size(q), 1);                /* until a runs */
    CHECK(!tide_queue_empty(q));
    void *item;
    CHECK_ERR(tide_queue_get_nowait(q, &item), -EAGAIN); /* promised */
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(2)), 0);      /* handed to b */
    CHECK(tide_queue_full(q));
    CHECK_ERR(tide_queue_put_nowait(q, IPTR(3)), -EAGAIN);
    drain(loop);
    CHECK_STR_EQ(order, "ab");
    CHECK_EQ(PINT(g[0].item), 1);
    CHECK_EQ(PINT(g[1].item), 2);
    CHECK_EQ(tide_queue_size(q), 0);
    CHECK_EQ(tide_queue_put(q, IPTR(3)), 0);
    drain(loop);
    CHECK_EQ(PINT(g[2].item), 3);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    release_ops(g, 3);
    LEAK_GATE();
}

TEST(queue_putters_fifo_no_barging)
{
    tide_loop *loop = new_virtual_loop();
    tide_queue *q = tide_queue_new(1);
    struct op p[3] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(0)), 0);
    spawn(loop, &p[0], "a", do_put, q, IPTR(1));
    spawn(loop, &p[1], "b", do_put, q, IPTR(2));
    spawn(loop, &p[2], "c", do_put, q, IPTR(3));
    drain(loop);
    CHECK_STR_EQ(order, "");
    CHECK_EQ(PINT(get_now(q)), 0); /* the slot is a's now */
    CHECK(tide_queue_full(q));
    CHECK_ERR(tide_queue_put_nowait(q, IPTR(9)), -EAGAIN);
    CHECK_EQ(tide_queue_size(q), 0);
    drain(loop);
    CHECK_STR_EQ(order, "a");
    for (int i = 1; i <= 3; i++) {
        CHECK_EQ(PINT(get_now(q)), i);
        drain(loop);
    }
    CHECK_STR_EQ(order, "abc");
    for (int i = 0; i < 3; i++)
        CHECK_EQ(p[i].rc, 0);
    CHECK(tide_queue_empty(q));
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    release_ops(p, 3);
    LEAK_GATE();
}

TEST(queue_cancel_waiting_get_put_join)
{
    tide_loop *loop = new_virtual_loop();
    tide_queue *q = tide_queue_new(1);
    tide_queue *full = tide_queue_new(1);
    struct op w[3] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_queue_put_nowait(full, IPTR(1)), 0);
    spawn(loop, &w[0], "g", do_get, q, NULL);
    spawn(loop, &w[1], "p", do_put, full, IPTR(2));
    spawn(loop, &w[2], "j", do_join, full, NULL);
    drain(loop);
    for (int i = 0; i < 3; i++)
        CHECK(tide_future_cancel(w[i].task));
    drain(loop);
    CHECK_STR_EQ(order, "gpj");
    for (int i = 0; i < 3; i++)
        CHECK_ERR(w[i].rc, -ECANCELED);
    CHECK_EQ(tide_queue_size(full), 1); /* 2 was not put */
    CHECK_EQ(PINT(get_now(full)), 1);
    CHECK_ERR(tide_queue_get_nowait(full, &w[0].item), -EAGAIN);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    tide_queue_free(full);
    release_ops(w, 3);
    LEAK_GATE();
}

/* B19 + B23 for get: 4 getters; one put; the woken getter is cancelled in
 * the same step. Its item goes to the next getter, nothing is lost. */
static void b19_get(tide_queue *q)
{
    tide_loop *loop = new_virtual_loop();
    struct op g[4] = {{0}};
    order[0] = '\0';
    for (int i = 0; i < 4; i++)
        spawn(loop, &g[i], (const char *[]){"1", "2", "3", "4"}[i], do_get, q,
              NULL);
    drain(loop);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(10)), 0);
    CHECK(tide_future_cancel(g[0].task));
    drain(loop);
    CHECK_ERR(g[0].rc, -ECANCELED);
    CHECK_EQ(g[1].rc, 0);
    CHECK_EQ(PINT(g[1].item), 10);
    CHECK_STR_EQ(order, "12");
    CHECK(tide_queue_empty(q));
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(11)), 0);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(12)), 0);
    drain(loop);
    CHECK_EQ(PINT(g[2].item), 11);
    CHECK_EQ(PINT(g[3].item), 12);
    CHECK_STR_EQ(order, "1234");
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    release_ops(g, 4);
    LEAK_GATE();
}

TEST(b19_queue_get_fifo)
{
    b19_get(tide_queue_new(0));
}
TEST(b19_queue_get_lifo)
{
    b19_get(tide_queue_new_lifo(2));
}
TEST(b19_queue_get_priority)
{
    b19_get(tide_queue_new_priority(0, cmp_int));
}

/* B23: a getter handed an item, cancelled before it runs, with no other
 * getter: the item goes back to the FRONT (the next get returns it). */
static void b23_give_back(tide_queue *q, int expect_first, int expect_second)
{
    tide_loop *loop = new_virtual_loop();
    struct op g[1] = {{0}};
    order[0] = '\0';
    spawn(loop, &g[0], "g", do_get, q, NULL);
    drain(loop);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(15)), 0); /* handed to g */
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(16)), 0); /* stored */
    CHECK_EQ(tide_queue_size(q), 2);
    CHECK(tide_future_cancel(g[0].task));
    drain(loop);
    CHECK_ERR(g[0].rc, -ECANCELED);
    CHECK_EQ(tide_queue_size(q), 2);
    CHECK_EQ(PINT(get_now(q)), expect_first);
    CHECK_EQ(PINT(get_now(q)), expect_second);
    /* Nothing gotten by g: join accounting is intact. */
    CHECK_EQ(tide_queue_task_done(q), 0);
    CHECK_EQ(tide_queue_task_done(q), 0);
    CHECK_ERR(tide_queue_task_done(q), -EINVAL);
    CHECK_EQ(tide_queue_join(q), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    release_ops(g, 1);
    LEAK_GATE();
}

TEST(b23_cancelled_get_gives_item_back_fifo)
{
    b23_give_back(tide_queue_new(2), 15, 16);
}

TEST(b23_cancelled_get_gives_item_back_lifo)
{
    b23_give_back(tide_queue_new_lifo(2), 15, 16);
}

TEST(b23_cancelled_get_gives_item_back_priority)
{
    /* 15 and 16 are equal for cmp_int: the given-back one comes first. */
    b23_give_back(tide_queue_new_priority(2, cmp_int), 15, 16);
}

/* B19 for put (bounded): 4 putters wait on a full queue; one get frees a
 * slot for putter 1, cancelled in the same step: it puts nothing and the
 * slot goes to putter 2. */
TEST(b19_queue_put_woken_putter_cancelled)
{
    tide_loop *loop = new_virtual_loop();
    tide_queue *q = tide_queue_new(1);
    struct op p[4] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(0)), 0);
    for (int i = 0; i < 4; i++)
        spawn(loop, &p[i], (const char *[]){"1", "2", "3", "4"}[i], do_put, q,
              IPTR(i + 1));
    drain(loop);
    CHECK_EQ(PINT(get_now(q)), 0);
    CHECK(tide_future_cancel(p[0].task));
    drain(loop);
    CHECK_ERR(p[0].rc, -ECANCELED);
    CHECK_EQ(p[1].rc, 0);
    CHECK_STR_EQ(order, "12");
    CHECK_EQ(tide_queue_size(q), 1);
    CHECK_EQ(PINT(get_now(q)), 2); /* 1 was never put */
    drain(loop);
    CHECK_EQ(PINT(get_now(q)), 3);
    drain(loop);
    CHECK_EQ(PINT(get_now(q)), 4);
    drain(loop);
    CHECK_STR_EQ(order, "1234");
    CHECK(tide_queue_empty(q));
    CHECK(!tide_queue_full(q));
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    release_ops(p, 4);
    LEAK_GATE();
}

/* ---- task_done / join ----------------------------------------------------
 */

static int do_consume(struct op *o)
{
    void *item;
    for (;;) {
        int rc = tide_queue_get(o->obj, &item);
        if (rc < 0)
            return rc;
        CHECK_EQ(tide_sleep(0.5), 0); /* "work" */
        CHECK_EQ(tide_queue_task_done(o->obj), 0);
    }
}

TEST(queue_join_waits_for_task_done)
{
    tide_loop *loop = new_virtual_loop();
    tide_queue *q = tide_queue_new(0);
    struct op w[3] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_queue_join(q), 0); /* nothing unfinished: anywhere */
    for (int i = 0; i < 4; i++)
        CHECK_EQ(tide_queue_put_nowait(q, IPTR(i)), 0);
    CHECK_ERR(tide_queue_join(q), -EPERM);
    spawn(loop, &w[0], "j", do_join, q, NULL);
    spawn(loop, &w[1], "c", do_consume, q, NULL);
    spawn(loop, &w[2], "d", do_consume, q, NULL);
    double t0 = tide_loop_time(loop);
    CHECK_EQ(tide_run_until_complete(loop, w[0].task, NULL), 0);
    CHECK_EQ(w[0].rc, 0);
    CHECK(tide_loop_time(loop) - t0 >= 1.0 - EARLY); /* two rounds of 0.5 */
    CHECK(tide_queue_empty(q));
    CHECK_ERR(tide_queue_task_done(q), -EINVAL);
    CHECK_EQ(tide_queue_shutdown(q, false), 0);
    drain(loop);
    CHECK_ERR(w[1].rc, -ESHUTDOWN);
    CHECK_ERR(w[2].rc, -ESHUTDOWN);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    release_ops(w, 3);
    LEAK_GATE();
}

/* The last task_done releases the joiners: one that has not run yet when
 * the queue is freed still returns 0, as an event's woken waiter does;
 * one still waiting then would get -EBADF. */
TEST(queue_freed_after_join_released_before_the_joiner_runs)
{
    tide_loop *loop = new_virtual_loop();
    tide_queue *q = tide_queue_new(0);
    struct op w[1] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(1)), 0);
    spawn(loop, &w[0], "j", do_join, q, NULL);
    drain(loop);
    CHECK(!w[0].done);
    void *item = NULL;
    CHECK_EQ(tide_queue_get_nowait(q, &item), 0);
    CHECK_EQ(tide_queue_task_done(q), 0); /* releases the joiner */
    tide_queue_free(q);
    drain(loop);
    CHECK_EQ(w[0].rc, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    release_ops(w, 1);
    LEAK_GATE();
}

/* ---- shutdown ------------------------------------------------------------
 */

TEST(queue_shutdown_graceful)
{
    tide_loop *loop = new_virtual_loop();
    tide_queue *q = tide_queue_new(2);
    tide_queue *e = tide_queue_new(0);
    struct op w[4] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(1)), 0);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(2)), 0);
    spawn(loop, &w[0], "p", do_put, q, IPTR(3));
    spawn(loop, &w[1], "g", do_get, e, NULL);
    spawn(loop, &w[2], "h", do_get, e, NULL);
    drain(loop);
    CHECK_EQ(tide_queue_shutdown(q, false), 0);
    CHECK_EQ(tide_queue_shutdown(e, false), 0);
    CHECK_EQ(tide_queue_shutdown(e, false), 0); /* twice: harmless */
    drain(loop);
    CHECK_ERR(w[0].rc, -ESHUTDOWN);
    CHECK_ERR(w[1].rc, -ESHUTDOWN);
    CHECK_ERR(w[2].rc, -ESHUTDOWN);
    CHECK_ERR(tide_queue_put_nowait(q, IPTR(4)), -ESHUTDOWN);
    CHECK_ERR(tide_queue_put(q, IPTR(4)), -ESHUTDOWN);
    void *item;
    CHECK_EQ(tide_queue_get(q, &item), 0); /* what is left */
    CHECK_EQ(PINT(item), 1);
    CHECK_EQ(PINT(get_now(q)), 2);
    CHECK_ERR(tide_queue_get(q, &item), -ESHUTDOWN);
    CHECK_ERR(tide_queue_get_nowait(q, &item), -ESHUTDOWN);
    spawn(loop, &w[3], "x", do_get, q, NULL);
    drain(loop);
    CHECK_ERR(w[3].rc, -ESHUTDOWN);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    tide_queue_free(e);
    release_ops(w, 4);
    LEAK_GATE();
}

TEST(queue_shutdown_immediate)
{
    tide_loop *loop = new_virtual_loop();
    tide_queue *q = tide_queue_new(0);
    struct op w[4] = {{0}};
    order[0] = '\0';
    spawn(loop, &w[0], "g", do_get, q, NULL);
    spawn(loop, &w[1], "j", do_join, q, NULL);
    drain(loop); /* g waits; j returns at once */
    CHECK_EQ(w[1].rc, 0);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(1)), 0); /* handed to g */
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(2)), 0);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(3)), 0);
    CHECK_EQ(PINT(get_now(q)), 2); /* gotten, not done */
    spawn(loop, &w[2], "k", do_join, q, NULL);
    spawn(loop, &w[3], "l", do_join, q, NULL);
    drain(loop);
    CHECK_EQ(PINT(w[0].item), 1); /* g ran before the shutdown */
    CHECK(!w[2].done);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(4)), 0);
    tide_future_release(w[0].task);
    spawn(loop, &w[0], "G", do_get, q, NULL);
    drain(loop); /* G gets 3 */
    tide_future_release(w[0].task);
    w[0].task = NULL;
    CHECK_EQ(tide_queue_size(q), 1);
    CHECK_EQ(tide_queue_shutdown(q, true), 0); /* drops 4 */
    CHECK(tide_queue_empty(q));
    void *item;
    CHECK_ERR(tide_queue_get_nowait(q, &item), -ESHUTDOWN);
    drain(loop);
    CHECK(!w[2].done); /* 1, 2 and 3 still not done */
    CHECK_EQ(tide_queue_task_done(q), 0);
    CHECK_EQ(tide_queue_task_done(q), 0);
    CHECK_EQ(tide_queue_task_done(q), 0);
    CHECK_ERR(tide_queue_task_done(q), -EINVAL);
    drain(loop);
    CHECK_EQ(w[2].rc, 0);
    CHECK_EQ(w[3].rc, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    release_ops(w, 4);
    LEAK_GATE();
}

/* Immediate shutdown while a getter was handed an item and has not run:
 * that item is dropped with the rest (it is still in the queue, as in
 * asyncio), counted done for join; the getter gets -ESHUTDOWN. */
TEST(queue_shutdown_immediate_drops_handed_item)
{
    tide_loop *loop = new_virtual_loop();
    tide_queue *q = tide_queue_new(1);
    struct op w[2] = {{0}};
    order[0] = '\0';
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(1)), 0);
    spawn(loop, &w[0], "j", do_join, q, NULL);
    drain(loop);
    CHECK_EQ(PINT(get_now(q)), 1); /* gotten, not done */
    spawn(loop, &w[1], "h", do_get, q, NULL);
    drain(loop);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(2)), 0); /* handed to h */
    CHECK_EQ(tide_queue_size(q), 1);
    CHECK_EQ(tide_queue_shutdown(q, true), 0);
    CHECK_EQ(tide_queue_size(q), 0);
    CHECK(!tide_queue_full(q));
    drain(loop);
    CHECK_ERR(w[1].rc, -ESHUTDOWN);
    CHECK(!w[0].done); /* 1 is not done yet */
    CHECK_EQ(tide_queue_task_done(q), 0);
    CHECK_ERR(tide_queue_task_done(q), -EINVAL);
    drain(loop);
    CHECK_EQ(w[0].rc, 0);
    CHECK_STR_EQ(order, "hj");
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    release_ops(w, 2);
    LEAK_GATE();
}

/* ---- free with waiters, ENOMEM -------------------------------------------
 */

TEST(queue_free_with_waiters)
{
    tide_loop *loop = new_virtual_loop();
    tide_queue *q = tide_queue_new(1);
    tide_queue *f = tide_queue_new(1);
    struct op w[6] = {{0}};
    order[0] = '\0';
    for (int i = 0; i < 3; i++)
        spawn(loop, &w[i], "g", do_get, q, NULL);
    CHECK_EQ(tide_queue_put_nowait(f, IPTR(0)), 0);
    spawn(loop, &w[3], "p", do_put, f, IPTR(1));
    spawn(loop, &w[4], "p", do_put, f, IPTR(2));
    spawn(loop, &w[5], "j", do_join, f, NULL);
    drain(loop);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(1)), 0); /* handed, not run */
    CHECK_ERR(tide_queue_put_nowait(q, IPTR(2)), -EAGAIN);
    CHECK(tide_future_cancel(w[1].task)); /* queued: cancelled */
    CHECK_EQ(PINT(get_now(f)), 0);        /* slot reserved */
    tide_queue_free(q);
    tide_queue_free(f);
    drain(loop);
    CHECK_ERR(w[0].rc, -EBADF);
    CHECK_ERR(w[1].rc, -ECANCELED);
    CHECK_ERR(w[2].rc, -EBADF);
    CHECK_ERR(w[3].rc, -EBADF);
    CHECK_ERR(w[4].rc, -EBADF);
    CHECK_ERR(w[5].rc, -EBADF);
    CHECK_EQ(tide_loop_close(loop), 0);
    release_ops(w, 6);
    LEAK_GATE();
}

TEST(queue_enomem)
{
    for (int kind = 0; kind < 3; kind++) {
        for (long n = 1; n <= 3; n++) {
            tide_queue *q = NULL;
            tide__alloc_fail_after(n);
            errno = 0;
            if (kind == 0)
                q = tide_queue_new(0);
            else if (kind == 1)
                q = tide_queue_new_lifo(4);
            else
                q = tide_queue_new_priority(100, cmp_int);
            int e = errno;
            tide__alloc_fail_after(0);
            if (!q) {
                CHECK(n <= 2);
                CHECK_ERR(e, ENOMEM);
                CHECK_EQ(tide__alloc_live(), 0);
                continue;
            }
            CHECK_EQ(n, 3);
            tide_queue_free(q);
        }
    }
    /* Growing the storage fails: the put fails and changes nothing. */
    tide_queue *q = tide_queue_new(0);
    int i = 0;
    while (tide__alloc_live() == 2 || i < 16) {
        tide__alloc_fail_after(1);
        int rc = tide_queue_put_nowait(q, IPTR(i));
        tide__alloc_fail_after(0);
        if (rc == -ENOMEM)
            break;
        CHECK_EQ(rc, 0);
        i++;
    }
    CHECK_EQ(tide_queue_size(q), (size_t)i);
    CHECK(i >= 16);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(i)), 0); /* now it grows */
    for (int k = 0; k <= i; k++)
        CHECK_EQ(PINT(get_now(q)), k);
    tide_queue_free(q);
    LEAK_GATE();
}

/* ---- randomized ----------------------------------------------------------
 */

/* Batches of random actions on a bounded queue, each batch in one step:
 * spawn a getter, spawn a putter (of a fresh item), cancel a random
 * task, put_nowait, get_nowait; then run until nothing is ready. Cancels
 * hit waiters that were just granted in the same batch (B19/B23). The
 * model is the multiset of items: every item whose put returned 0 is
 * gotten exactly once (a get that returned 0) or still in the queue at
 * the end; no item whose put failed is ever gotten. After each batch, at
 * rest: the queue's size is puts - gets; no getter waits while an item is
 * there, no putter waits while there is room. */
#define RTASKS 3000
#define RITEMS 20000

static struct op rops[RTASKS];
static signed char put_ok[RITEMS]; /* 1 put, 0 not put, -1 unknown */
static signed char gotten[RITEMS];
static uint64_t rng = 0x2545f4914f6cdd1du;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void got(int item)
{
    CHECK(item > 0 && item < RITEMS);
    CHECK_EQ(gotten[item], 0); /* never twice */
    gotten[item] = 1;
}

static void queue_model(tide_queue *q, size_t maxsize)
{
    tide_loop *loop = new_virtual_loop();
    int nt = 0, next_item = 1;
    long puts = 0, gets = 0;

    memset(rops, 0, sizeof rops);
    memset(put_ok, -1, sizeof put_ok);
    memset(gotten, 0, sizeof gotten);
    order[0] = '\0';
    while (nt < RTASKS - 8 && next_item < RITEMS - 8) {
        int first = nt;
        for (unsigned k = 1 + rnd(6); k > 0; k--) {
            unsigned what = rnd(12);
            void *item;
            if (what < 3) {
                spawn(loop, &rops[nt++], "", do_get, q, NULL);
            } else if (what < 6) {
                spawn(loop, &rops[nt++], "", do_put, q, IPTR(next_item++));
            } else if (what < 9 && nt > 0) {
                tide_future_cancel(rops[rnd((unsigned)nt)].task);
            } else if (what < 10) {
                int it = next_item++;
                int rc = tide_queue_put_nowait(q, IPTR(it));
                CHECK(rc == 0 || rc == -EAGAIN);
                put_ok[it] = rc == 0;
                puts += rc == 0;
            } else if (tide_queue_get_nowait(q, &item) == 0) {
                got((int)PINT(item));
                gets++;
            }
        }
        drain(loop);
        (void)first;
        /* Settle the tasks that finished. */
        for (int t = 0; t < nt; t++) {
            struct op *o = &rops[t];
            if (!o->task || !tide_future_done(o->task))
                continue;
            if (o->fn == do_get && o->done && o->rc == 0) {
                got((int)PINT(o->item));
                gets++;
            } else if (o->fn == do_put) {
                CHECK(!o->done || o->rc == 0 || o->rc == -ECANCELED);
                put_ok[PINT(o->item)] = o->done && o->rc == 0;
                puts += o->done && o->rc == 0;
            } else {
                CHECK(!o->done || o->rc == -ECANCELED);
            }
            tide_future_release(o->task);
            o->task = NULL;
        }
        CHECK_EQ((long)tide_queue_size(q), puts - gets);
        CHECK(tide_queue_size(q) <= maxsize);
        bool getter_waits = false, putter_waits = false;
        for (int t = 0; t < nt; t++) {
            if (!rops[t].task)
                continue;
            getter_waits |= rops[t].fn == do_get;
            putter_waits |= rops[t].fn == do_put;
        }
        CHECK(!getter_waits || tide_queue_empty(q));
        CHECK(!putter_waits || tide_queue_full(q));
    }
    /* End: shut down, collect what is left, check every item. */
    CHECK_EQ(tide_queue_shutdown(q, false), 0);
    drain(loop);
    void *item;
    while (tide_queue_get_nowait(q, &item) == 0) {
        got((int)PINT(item));
        gets++;
    }
    for (int t = 0; t < nt; t++) {
        struct op *o = &rops[t];
        if (!o->task)
            continue;
        CHECK(tide_future_done(o->task));
        if (o->fn == do_get)
            CHECK(o->rc == -ESHUTDOWN || o->rc == -ECANCELED);
        else
            CHECK(o->rc == -ESHUTDOWN || o->rc == -ECANCELED ||
                  (o->rc == 0 && (put_ok[PINT(o->item)] = 1)));
        tide_future_release(o->task);
        o->task = NULL;
    }
    CHECK_EQ(puts, gets);
    for (int it = 1; it < next_item; it++)
        CHECK_EQ(gotten[it], put_ok[it] == 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_queue_free(q);
    LEAK_GATE();
}

TEST(queue_randomized_model_fifo)
{
    queue_model(tide_queue_new(3), 3);
}
TEST(queue_randomized_model_lifo)
{
    queue_model(tide_queue_new_lifo(1), 1);
}
TEST(queue_randomized_model_priority)
{
    queue_model(tide_queue_new_priority(4, cmp_int), 4);
}
