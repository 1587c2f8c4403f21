/* Debug mode: slow steps and callbacks reported with the task's name and
 * creation site, failures never retrieved, tasks pending at close, the
 * task dump (on demand and on SIGUSR1), TIDE_DEBUG in the environment,
 * futures never released (reported at close with their creation site),
 * futures released twice, tide_fail with a positive errno.
 * Messages are captured through the report handler.
 */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char msgs[4096], last_msg[512];
static int nmsgs;

static void capture(tide_loop *loop, const char *msg, void *arg)
{
    (void)loop;
    (void)arg;
    /* Turning debug mode on says why the loop fell back from io_uring
     * (under valgrind, in CI's fallback step): not what is counted here. */
    if (strncmp(msg, "backend ", 8) == 0)
        return;
    size_t len = strlen(msgs);
    if (len + 2 < sizeof msgs) { /* full: the rest is only counted */
        strncat(msgs, msg, sizeof msgs - len - 2);
        strcat(msgs, "\n");
    }
    snprintf(last_msg, sizeof last_msg, "%s", msg);
    nmsgs++;
}

/* Fails the test unless the captured messages contain `want`. */
#define CHECK_REPORTED(want)                                             \
    do {                                                                 \
        if (!strstr(msgs, (want)))                                       \
            harness_fail(__FILE__, __LINE__, "no \"%s\" in: %s", (want), \
                         msgs);                                          \
    } while (0)

/* A loop whose reports are captured, from an empty capture. */
static tide_loop *capturing_loop(void)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_report_handler(loop, capture, NULL), 0);
    msgs[0] = '\0';
    last_msg[0] = '\0';
    nmsgs = 0;
    return loop;
}

static tide_loop *debug_loop(void)
{
    tide_loop *loop = capturing_loop();
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK(tide_loop_get_debug(loop));
    return loop;
}

static void *hog(void *arg)
{
    (void)arg;
    harness_busy_wait(0.03);
    tide_sleep(0);
    return NULL;
}

static int hog_line;

TEST(slow_task_step_is_reported_with_name_and_site)
{
    tide_loop *loop = debug_loop();
    CHECK_EQ(tide_loop_set_slow_callback_duration(loop, 0.01), 0);
    tide_task_options o = {0};
    o.name = "hog";
    hog_line = __LINE__ + 1;
    tide_future *t = tide_create_task_ex(loop, hog, NULL, &o);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    char want[128];
    snprintf(want, sizeof want, "task 'hog' (created at %s:%d) held the loop",
             __FILE__, hog_line);
    if (!strstr(msgs, want))
        harness_fail(__FILE__, __LINE__, "messages: %s", msgs);
    CHECK_EQ(nmsgs, 1); /* the step after the yield was quick */
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void hog_cb(void *arg)
{
    (void)arg;
    harness_busy_wait(0.03);
}

TEST(slow_callback_is_reported_and_fast_ones_are_not)
{
    tide_loop *loop = debug_loop();
    CHECK_EQ(tide_loop_set_slow_callback_duration(loop, 0.01), 0);
    CHECK(tide_call_soon(loop, hog_cb, NULL) != 0);
    run_once(loop);
    CHECK(strstr(msgs, "callback") && strstr(msgs, "slow step"));
    CHECK_EQ(nmsgs, 1);
    CHECK_ERR(tide_loop_set_slow_callback_duration(loop, -1), -EINVAL);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *fails(void *arg)
{
    (void)arg;
    return tide_fail(-EPIPE);
}

TEST(error_never_retrieved_is_reported_once_and_only_then)
{
    tide_loop *loop = debug_loop();
    tide_task_options o = {0};
    o.name = "lost";
    tide_future *a = tide_create_task_ex(loop, fails, NULL, &o);
    o.name = "seen";
    tide_future *b = tide_create_task_ex(loop, fails, NULL, &o);
    CHECK_ERR(tide_run_until_complete(loop, b, NULL), -EPIPE); /* read */
    run_once(loop);
    tide_future_release(a);
    tide_future_release(b);
    CHECK(strstr(msgs, "task 'lost'") && strstr(msgs, "never retrieved"));
    CHECK(!strstr(msgs, "'seen'"));
    CHECK_EQ(nmsgs, 1);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *forever(void *arg)
{
    (void)arg;
    tide_sleep(1e9);
    return NULL;
}

TEST(tasks_pending_at_close_are_reported)
{
    tide_loop *loop = debug_loop();
    tide_task_options o = {0};
    o.name = "stuck";
    tide_future *t = tide_create_task_ex(loop, forever, NULL, &o);
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK(strstr(msgs, "task 'stuck'") && strstr(msgs, "still pending"));
    tide_future_release(t);
    LEAK_GATE();
}

static void *await_it(void *f)
{
    return tide_await(f, NULL) < 0 ? tide_fail(-ECANCELED) : NULL;
}

static char *read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;

    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    return buf;
}

TEST(dump_lists_every_task_with_what_it_waits_on)
{
    tide_loop *loop = debug_loop();
    tide_future *f = tide_future_new(loop);
    tide_task_options o = {0};
    o.name = "waiter";
    tide_future *a = tide_create_task_ex(loop, await_it, f, &o);
    o.name = "sleeper";
    tide_future *b = tide_create_task_ex(loop, forever, NULL, &o);
    o.name = "unstarted";
    run_once(loop);
    tide_future *c = tide_create_task_ex(loop, forever, NULL, &o);
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(tide_loop_dump(loop, p[1]), 3);
    close(p[1]);
    char buf[2048];
    read_all(p[0], buf, sizeof buf);
    close(p[0]);
    if (!strstr(buf, "'waiter'") ||
        !strstr(buf, "waiting on future (created at") ||
        !strstr(buf, "'sleeper'") || !strstr(buf, "waiting on sleep") ||
        !strstr(buf, "'unstarted'") || !strstr(buf, ": new") ||
        !strstr(buf,
                harness_compact() ? "compact, frames " : "KiB of 259 KiB") ||
        !strstr(buf, "created at"))
        harness_fail(__FILE__, __LINE__, "dump: %s", buf);
    CHECK_ERR(tide_loop_dump(loop, -1), -EINVAL);
    tide_future_release(a);
    tide_future_release(b);
    tide_future_release(c);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void send_usr1(void *arg)
{
    (void)arg;
    raise(SIGUSR1);
}

TEST(sigusr1_dumps_on_the_next_iteration)
{
    int p[2];
    CHECK_EQ(pipe(p), 0);
    int saved = dup(2);
    dup2(p[1], 2);
    tide_loop *loop = debug_loop();
    tide_task_options o = {0};
    o.name = "hung";
    tide_future *t = tide_create_task_ex(loop, forever, NULL, &o);
    CHECK(tide_call_soon(loop, send_usr1, NULL) != 0);
    run_once(loop);
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_future_release(t);
    dup2(saved, 2);
    close(saved);
    close(p[1]);
    char buf[2048];
    read_all(p[0], buf, sizeof buf);
    close(p[0]);
    if (!strstr(buf, "task 'hung'") || !strstr(buf, "waiting on sleep"))
        harness_fail(__FILE__, __LINE__, "stderr: %s", buf);
    LEAK_GATE();
}

TEST(tide_debug_environment_variable_enables_debug_mode)
{
    setenv("TIDE_DEBUG", "1", 1);
    tide_loop *loop = tide_loop_new();
    CHECK(tide_loop_get_debug(loop));
    CHECK_EQ(tide_loop_set_debug(loop, false), 0);
    CHECK(!tide_loop_get_debug(loop));
    CHECK_EQ(tide_loop_close(loop), 0);
    unsetenv("TIDE_DEBUG");
    loop = tide_loop_new();
    CHECK(!tide_loop_get_debug(loop));
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static int spawn_line;

static void *spawns_in_group(void *arg)
{
    int *fd = arg;
    tide_task_group *g = tide_task_group_new();
    tide_task_options o = {0};
    o.name = "child";
    spawn_line = __LINE__ + 1;
    tide_future *c = tide_task_group_spawn(g, forever, NULL, &o);
    tide_sleep(0);
    tide_loop_dump(NULL, *fd);
    tide_task_group_cancel(g);
    int err = tide_task_group_end(g, 0);
    tide_task_group_free(g);
    tide_future_release(c);
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(group_children_record_the_spawn_site)
{
    tide_loop *loop = debug_loop();
    int p[2];
    CHECK_EQ(pipe(p), 0);
    tide_future *t = tide_create_task(loop, spawns_in_group, &p[1]);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    close(p[1]);
    char buf[2048], want[256];
    read_all(p[0], buf, sizeof buf);
    close(p[0]);
    snprintf(want, sizeof want, "task 'child' (created at %s:%d)", __FILE__,
             spawn_line);
    if (!strstr(buf, want))
        harness_fail(__FILE__, __LINE__, "dump: %s", buf);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- futures never released, or released twice ----------------------- */

static void *returns_arg(void *arg)
{
    return arg;
}

TEST(futures_never_released_are_reported_at_close_with_their_site)
{
    tide_loop *loop = debug_loop();
    char want[256];
    int future_line = __LINE__ + 1;
    tide_future *kept = tide_future_new(loop);
    tide_task_options o = {0};
    o.name = "forgotten";
    int task_line = __LINE__ + 1;
    tide_future *t = tide_create_task_ex(loop, returns_arg, NULL, &o);
    int gather_line = __LINE__ + 1;
    tide_future *g = tide_gather(&t, 1, 0);
    int shield_line = __LINE__ + 1;
    tide_future *sh = tide_shield(kept);
    tide_future *released = tide_future_new(loop);
    tide_future *done_task = tide_create_task(loop, returns_arg, NULL);
    CHECK(kept && t && g && sh && released && done_task);
    CHECK_EQ(tide_run_until_complete(loop, g, NULL), 0);
    tide_future_release(released);
    tide_future_release(done_task);
    CHECK_EQ(nmsgs, 0); /* nothing said before close */
    CHECK_EQ(tide_loop_close(loop), 0);
    snprintf(want, sizeof want,
             "future (created at %s:%d) was not released "
             "when its loop closed",
             __FILE__, future_line);
    CHECK_REPORTED(want);
    snprintf(want, sizeof want,
             "task 'forgotten' (created at %s:%d) was not "
             "released",
             __FILE__, task_line);
    CHECK_REPORTED(want);
    snprintf(want, sizeof want,
             "gather (created at %s:%d) of 1, 0 pending "
             "was not released",
             __FILE__, gather_line);
    CHECK_REPORTED(want);
    snprintf(want, sizeof want, "future (created at %s:%d) was not released",
             __FILE__, shield_line);
    CHECK_REPORTED(want);
    CHECK_EQ(nmsgs, 4); /* the released ones are not reported */
    /* Releasing after close is still valid: nothing leaks. */
    tide_future_release(sh);
    tide_future_release(g);
    tide_future_release(t);
    tide_future_release(kept);
    LEAK_GATE();
}

TEST(futures_made_without_debug_mode_are_not_reported)
{
    tide_loop *loop = capturing_loop();
    CHECK_EQ(tide_loop_set_debug(loop, false), 0); /* even if TIDE_DEBUG */
    tide_future *before = tide_future_new(loop);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    tide_future *during = tide_future_new(loop);
    CHECK_EQ(tide_loop_set_debug(loop, false), 0);
    /* Made in debug mode, freed after it ended: its memory goes back the
     * way it came (the leak gate below would see it otherwise). */
    tide_future_release(during);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(nmsgs, 0); /* debug mode is off at close: no report */
    tide_future_release(before);
    LEAK_GATE();
}

/* The handler releases what it is told about, as a program cleaning up
 * on the report would: the report goes on safely. */
static tide_future *held[3];

static void release_all_held(tide_loop *loop, const char *msg, void *arg)
{
    capture(loop, msg, arg);
    for (int i = 0; i < 3; i++) {
        tide_future_release(held[i]);
        held[i] = NULL;
    }
}

TEST(the_report_handler_may_release_the_futures_being_reported)
{
    tide_loop *loop = debug_loop();
    CHECK_EQ(tide_loop_set_report_handler(loop, release_all_held, NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK_NOT_NULL(held[i] = tide_future_new(loop));
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(nmsgs, 1); /* the first report released the other two */
    LEAK_GATE();
}

TEST(a_flood_of_unreleased_futures_is_reported_in_brief)
{
    enum { N = 150 };
    static tide_future *fs[N];
    tide_loop *loop = debug_loop();
    for (int i = 0; i < N; i++)
        CHECK_NOT_NULL(fs[i] = tide_future_new(loop));
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(nmsgs, 101); /* 100 named, then one for the rest */
    CHECK_STR_EQ(last_msg, "and 50 more futures were not released when "
                           "their loop closed");
    for (int i = 0; i < N; i++)
        tide_future_release(fs[i]);
    LEAK_GATE();
}

TEST(a_second_release_is_reported_with_the_creation_site)
{
    tide_loop *loop = debug_loop();
    char want[256];
    int future_line = __LINE__ + 1;
    tide_future *f = tide_future_new(loop);
    int task_line = __LINE__ + 1;
    tide_future *t = tide_create_task(loop, returns_arg, NULL);
    CHECK(f && t);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(f);
    tide_future_release(t);
    /* Futures made and freed meanwhile do not take their memory. */
    for (int i = 0; i < 100; i++) {
        tide_future *other = tide_future_new(loop);
        tide_future *task = tide_create_task(loop, returns_arg, NULL);
        CHECK(other && task);
        tide_future_release(other);
        tide_future_release(task);
    }
    CHECK_EQ(nmsgs, 0);
    tide_future_release(f);
    snprintf(want, sizeof want,
             "tide_future_release of a future already "
             "released (a future created at %s:%d)",
             __FILE__, future_line);
    CHECK_STR_EQ(last_msg, want);
    tide_future_release(t);
    snprintf(want, sizeof want,
             "tide_future_release of a future already "
             "released (a task created at %s:%d)",
             __FILE__, task_line);
    CHECK_STR_EQ(last_msg, want);
    tide_future_release(t); /* and again: still caught, nothing breaks */
    CHECK_STR_EQ(last_msg, want);
    CHECK_EQ(nmsgs, 3);
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(nmsgs, 3); /* freed, so not "never released" either */
    LEAK_GATE();
}

TEST(a_second_release_after_close_is_reported_too)
{
    tide_loop *loop = debug_loop();
    tide_future *keep = tide_future_new(loop); /* keeps the loop record */
    tide_future *t = tide_create_task(loop, returns_arg, NULL);
    tide_future *g = tide_gather(&t, 1, 0);
    CHECK(keep && t && g);
    CHECK_EQ(tide_run_until_complete(loop, g, NULL), 0);
    tide_future_release(t);
    tide_future_release(g);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(nmsgs, 1); /* keep */
    tide_future_release(g);
    CHECK(strstr(last_msg, "already released (a gather created at"));
    tide_future_release(keep); /* the loop record goes, quarantine too */
    CHECK_EQ(nmsgs, 2);
    LEAK_GATE();
}

/* ---- tide_fail with something that is not a negative errno ---------- */

static void *fail_with(void *arg)
{
    return tide_fail((int)(intptr_t)arg);
}

TEST(tide_fail_of_a_positive_errno_is_reported_naming_task_and_value)
{
    tide_loop *loop = debug_loop();
    tide_task_options o = {0};
    o.name = "sloppy";
    int line = __LINE__ + 1;
    tide_future *t = tide_create_task_ex(loop, fail_with, IPTR(EIO), &o);
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -EINVAL);
    char want[256];
    snprintf(want, sizeof want,
             "task 'sloppy' (created at %s:%d) called "
             "tide_fail(%d): an error is a negative errno (tide_fail(-EIO)); "
             "the task fails with -EINVAL",
             __FILE__, line, EIO);
    CHECK_STR_EQ(last_msg, want);
    tide_future_release(t);
    o.name = "zero";
    t = tide_create_task_ex(loop, fail_with, IPTR(0), &o);
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -EINVAL);
    CHECK(strstr(last_msg, "task 'zero'") &&
          strstr(last_msg, "called tide_fail(0): an error is a negative "
                           "errno; the task fails with -EINVAL"));
    tide_future_release(t);
    t = tide_create_task(loop, fail_with, IPTR(-EIO)); /* right: silent */
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -EIO);
    tide_future_release(t);
    CHECK_EQ(nmsgs, 2);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(tide_fail_of_a_positive_errno_is_silent_outside_debug_mode)
{
    tide_loop *loop = capturing_loop();
    CHECK_EQ(tide_loop_set_debug(loop, false), 0); /* even if TIDE_DEBUG */
    tide_future *t = tide_create_task(loop, fail_with, IPTR(EIO));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -EINVAL);
    CHECK_EQ(nmsgs, 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}
