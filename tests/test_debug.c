/* Debug mode: slow steps and callbacks reported with the task's name and
 * creation site, failures never retrieved, tasks pending at close, the
 * task dump (on demand and on SIGUSR1), TIDE_DEBUG in the environment.
 * Messages are captured through the report handler.
 */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char msgs[4096];
static int nmsgs;

static void capture(tide_loop *loop, const char *msg, void *arg)
{
    (void)loop;
    (void)arg;
    strncat(msgs, msg, sizeof msgs - strlen(msgs) - 2);
    strcat(msgs, "\n");
    nmsgs++;
}

static tide_loop *debug_loop(void)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK(tide_loop_get_debug(loop));
    CHECK_EQ(tide_loop_set_report_handler(loop, capture, NULL), 0);
    msgs[0] = '\0';
    nmsgs = 0;
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
    if (!strstr(buf, "'waiter'") || !strstr(buf, "waiting on future 0x") ||
        !strstr(buf, "'sleeper'") || !strstr(buf, "waiting on sleep") ||
        !strstr(buf, "'unstarted'") || !strstr(buf, ": new") ||
        !strstr(buf, harness_compact() ? "compact, frames " : "KiB of 259 KiB") ||
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
