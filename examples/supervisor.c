/* supervisor.c: keep a child running, restarting it with exponential
 * backoff when it crashes, and stop everything on SIGTERM or SIGINT.
 *
 *     supervisor [program args...]    (default: sh -c 'sleep 0.2; exit 1')
 *
 * The child is started with kill_on_cancel: when a signal arrives, the
 * stopper task cancels the supervisor, whose wait then terminates the
 * child (SIGKILL after one second if SIGTERM is not enough) and returns
 * once it is reaped; a backoff sleep just ends. The delay doubles after
 * each crash (0.1 s, 0.2 s, ... at most 5 s) and starts again from 0.1 s
 * after a run of 10 s or more. SIGTERM and SIGINT are blocked in main
 * (examples/stop_signal.h); the children start with an empty mask.
 * SPDX-License-Identifier: MIT
 */
#include "stop_signal.h"

#include <errno.h>
#include <stdio.h>
#include <tide.h>
#include <tide/process.h>

static const char *const default_child[] = {"sh", "-c", "sleep 0.2; exit 1",
                                            NULL};
static const char *const *child_argv = default_child;

static void *stopper(void *supervisor)
{
    int err = stop_signal_wait();

    if (err == 0) {
        printf("signal: stopping\n");
        tide_future_cancel(supervisor);
    }
    return err < 0 ? tide_fail(err) : NULL;
}

static void *supervise(void *arg)
{
    tide_process_options o = {.kill_on_cancel = true, .kill_grace = 1.0};
    double backoff = 0.1;
    int err = 0;
    (void)arg;

    tide_future *stop = tide_create_task(NULL, stopper, tide_current_task());
    while (stop && !err) {
        tide_process *p = NULL;
        double t0 = tide_loop_time(NULL);
        if ((err = tide_create_subprocess_exec(child_argv, &o, &p)) < 0)
            break;
        printf("started child %d\n", (int)tide_process_pid(p));
        fflush(stdout);
        int code = 0;
        err = tide_process_wait(p, &code);
        tide_process_free(p);
        if (err == -ECANCELED) {
            printf("stopped: the child was terminated and reaped\n");
            break;
        }
        if (tide_loop_time(NULL) - t0 >= 10)
            backoff = 0.1;
        printf("child exited with %d; restart in %.1f s\n", code, backoff);
        fflush(stdout);
        if ((err = tide_sleep(backoff)) == -ECANCELED)
            printf("stopped while waiting to restart\n");
        backoff = backoff * 2 > 5 ? 5 : backoff * 2;
    }
    if (stop) {
        tide_future_cancel(stop);
        tide_await(stop, NULL);
        tide_future_release(stop);
    }
    return err == -ECANCELED || !err ? NULL : tide_fail(err ? err : -ENOMEM);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        child_argv = (const char *const *)argv + 1;
    if (stop_signal_block() < 0)
        return 1;
    int err = tide_run(supervise, NULL, NULL);
    if (err < 0)
        fprintf(stderr, "supervisor: %s\n", tide_strerror(err));
    fflush(stdout);
    return err < 0;
}
