/* Finding a hang: two workers wait for each other's result forever (a
 * deadlock), a third waits for an event nobody sets. A
 * watchdog task notices that nothing finished in time and dumps every
 * task: name, state, what it waits on, where it was created, stack use.
 * In a real program, run with TIDE_DEBUG=1 and send SIGUSR1 (or SIGQUIT)
 * to get the same dump without a watchdog.
 */
#include <tide.h>

#include <stdio.h>
#include <unistd.h>

static tide_future *result_a, *result_b;
static tide_event *never_set;

static void *worker_a(void *arg)
{
    (void)arg;
    void *b;
    int err = tide_await(result_b, &b); /* waits for B... */
    return err < 0 ? tide_fail(err) : b;
}

static void *worker_b(void *arg)
{
    (void)arg;
    void *a;
    int err = tide_await(result_a, &a); /* ...which waits for A */
    return err < 0 ? tide_fail(err) : a;
}

static void *listener(void *arg)
{
    (void)arg;
    int err = tide_event_wait(never_set);
    return err < 0 ? tide_fail(err) : NULL;
}

static void *watchdog(void *workers)
{
    int err =
        tide_wait(workers, 3, TIDE_ALL_COMPLETED, 0.2, NULL, NULL, NULL, NULL);
    if (err < 0)
        return tide_fail(err);
    printf("nothing finished in 0.2 s; the tasks are:\n");
    fflush(stdout);
    tide_loop_dump(NULL, STDOUT_FILENO);
    return NULL;
}

int main(void)
{
    tide_loop *loop = tide_loop_new();
    if (!loop || tide_loop_set_debug(loop, true) < 0)
        return 1;
    never_set = tide_event_new();
    if (!never_set || tide_event_set_name(never_set, "go") < 0)
        return 1;
    tide_task_options o = {.name = "worker-a"};
    result_a = tide_create_task_ex(loop, worker_a, NULL, &o);
    o.name = "worker-b";
    result_b = tide_create_task_ex(loop, worker_b, NULL, &o);
    o.name = "listener";
    tide_future *l = tide_create_task_ex(loop, listener, NULL, &o);
    tide_future *workers[3] = {result_a, result_b, l};
    o.name = "watchdog";
    tide_future *w = tide_create_task_ex(loop, watchdog, workers, &o);
    if (!result_a || !result_b || !l || !w)
        return 1;
    int err = tide_run_until_complete(loop, w, NULL);
    /* Closing cancels the hung tasks; debug mode reports each of them.
     * Released first: the loop keeps what it still needs, and debug mode
     * reports every future not released by the time its loop closes. */
    tide_loop_set_report_handler(loop, NULL, NULL);
    tide_future *all[4] = {result_a, result_b, l, w};
    for (int i = 0; i < 4; i++)
        tide_future_release(all[i]);
    int rc = tide_loop_close(loop) == 0 && err == 0 ? 0 : 1;
    tide_event_free(never_set);
    return rc;
}
