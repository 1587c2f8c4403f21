/* Stacks (src/stack/): lazy allocation, pooling, sizes, and overflow
 * detection on both paths: a guard page (the first stacks of a process)
 * and the canary checked at every switch (stacks beyond the guard budget,
 * reached here with TIDE_STACK_GUARDS). The guard-page death test is in
 * test_task.c; this file covers the canary path and the bookkeeping.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
    return tide_sleep(*(double *)arg) < 0 ? tide_fail(-ECANCELED) : NULL;
}

static void *nothing(void *arg)
{
    return arg;
}

TEST(unstarted_tasks_hold_no_stack_and_finished_ones_are_pooled)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t[100];

    for (int i = 0; i < 100; i++)
        t[i] = tide_create_task(loop, nothing, NULL);
    tide_loop_stats st = loop_stats(loop);
    CHECK_EQ(st.tasks, 100);
    CHECK_EQ(st.stacks_in_use, 0);
    CHECK_EQ(st.stacks_pooled, 0);
    CHECK_EQ(tide_run_until_complete(loop, t[99], NULL), 0);
    st = loop_stats(loop);
    CHECK_EQ(st.stacks_in_use, 0);
    /* Tasks that never suspend reuse a couple of stacks, not 100. */
    CHECK(st.stacks_pooled <= 2);
    for (int i = 0; i < 100; i++)
        tide_future_release(t[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(suspended_tasks_each_hold_a_stack)
{
    SKIP_IF_COMPACT("tasks share one stack");
    tide_loop *loop = new_virtual_loop();
    double d = 5;
    tide_future *t[300];

    for (int i = 0; i < 300; i++)
        t[i] = tide_create_task(loop, sleeper, &d);
    run_once(loop);
    CHECK_EQ(loop_stats(loop).stacks_in_use, 300);
    tide_future *g = tide_gather(t, 300, 0);
    CHECK_EQ(tide_run_until_complete(loop, g, NULL), 0);
    CHECK_EQ(loop_stats(loop).stacks_in_use, 0);
    CHECK_EQ(loop_stats(loop).stacks_pooled, 300);
    tide_future_release(g);
    for (int i = 0; i < 300; i++)
        tide_future_release(t[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* Use about `kib` KiB of stack, then suspend. */
static void *use_stack(void *arg)
{
    size_t kib = (size_t)(uintptr_t)arg;
    volatile char *buf = __builtin_alloca(kib * 1024);

    for (size_t i = 0; i < kib * 1024; i += 512)
        buf[i] = (char)i;
    if (tide_sleep(0) < 0)
        return tide_fail(-ECANCELED);
    return (void *)(uintptr_t)buf[512];
}

TEST(stack_sizes_per_loop_and_per_task)
{
    tide_loop *loop = tide_loop_new();

    CHECK_EQ(tide_loop_set_stack_size(loop, 1000), -EINVAL);
    CHECK_EQ(tide_loop_set_stack_size(loop, (size_t)1 << 40), -EINVAL);
    CHECK_EQ(tide_loop_set_stack_size(loop, 1024 * 1024), 0);
    /* 900 KiB fits the loop's new 1 MiB default... */
    tide_future *big = tide_create_task(loop, use_stack, IPTR(900));
    /* ...and a task can ask for a small one. */
    tide_task_options o = {0};
    o.stack_size = 32 * 1024;
    tide_future *small = tide_create_task_ex(loop, use_stack, IPTR(16), &o);
    o.stack_size = 100;
    errno = 0;
    CHECK_NULL(tide_create_task_ex(loop, use_stack, IPTR(1), &o));
    CHECK_EQ(errno, EINVAL);
    tide_future *both[2] = {big, small};
    tide_future *g = tide_gather(both, 2, 0);
    CHECK_EQ(tide_run_until_complete(loop, g, NULL), 0);
    tide_future_release(g);
    tide_future_release(big);
    tide_future_release(small);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(many_stacks_beyond_the_guard_budget_work)
{
    setenv("TIDE_STACK_GUARDS", "3", 1); /* this child process only */
    tide_loop *loop = tide_loop_new();
    tide_future *t[200];

    for (int i = 0; i < 200; i++)
        t[i] = tide_create_task(loop, use_stack, IPTR(100));
    tide_future *g = tide_gather(t, 200, 0);
    CHECK_EQ(tide_run_until_complete(loop, g, NULL), 0);
    tide_future_release(g);
    for (int i = 0; i < 200; i++)
        tide_future_release(t[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* Overflow by `kib` into the slot below without faulting (no guard page),
 * return, then suspend: the switch must catch it. */
static void *overflow_then_suspend(void *arg)
{
    size_t kib = (size_t)(uintptr_t)arg;
    volatile char *buf = __builtin_alloca(kib * 1024);

    for (size_t i = 0; i < kib * 1024; i++) /* volatile: not optimized away */
        buf[i] = 0x5a;
    tide_sleep(0);
    return NULL;
}

static void *wait_forever(void *arg)
{
    (void)arg;
    tide_sleep(1e9);
    return NULL;
}

static void culprit_child(void *arg)
{
    (void)arg;
    setenv("TIDE_STACK_GUARDS", "0", 1);
    tide_loop *loop = tide_loop_new();
    tide_task_options o = {0};
    o.stack_size = 64 * 1024;
    /* Slot 0: a victim suspended below the culprit's slot. */
    tide_future *victim = tide_create_task_ex(loop, wait_forever, NULL, &o);
    run_once(loop);
    o.name = "culprit";
    tide_future *t = tide_create_task_ex(loop, overflow_then_suspend,
                                         IPTR(80), &o);
    tide_run_until_complete(loop, t, NULL);
    (void)victim;
}

TEST(overflow_without_guard_is_caught_at_the_next_switch)
{
    if (HARNESS_ASAN || HARNESS_VALGRIND)
        SKIP("ASan and valgrind report the overflow themselves");
    char buf[4096];
    int status = harness_run_child(culprit_child, NULL, buf, sizeof buf);
    if (!WIFSIGNALED(status))
        harness_fail(__FILE__, __LINE__, "child status %#x, stderr: %s",
                     status, buf);
    if (!strstr(buf, "stack overflow in task 'culprit'"))
        harness_fail(__FILE__, __LINE__, "stderr: \"%s\"", buf);
    LEAK_GATE();
}
