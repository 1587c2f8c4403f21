/* timeout.c: time limits. The C version of:
 *
 *     async with asyncio.timeout(0.05):    # TimeoutError
 *         await asyncio.sleep(10)          # slow work
 *     async with asyncio.timeout(0.1):     # outer scope: TimeoutError
 *         async with asyncio.timeout(10):  # inner: sees CancelledError
 *             await asyncio.sleep(10)
 *     print(await asyncio.wait_for(answer(), 1))  # in time: 42
 * A deadline cancels the task; the scope whose deadline it was turns that
 * -ECANCELED into -ETIMEDOUT. A virtual clock makes the times exact.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <tide.h>

static double t0; /* when the current step started, loop time */

static void report(const char *what, int err)
{
    printf("%s: %s after %.3f s\n", what,
           err == -ETIMEDOUT   ? "-ETIMEDOUT"
           : err == -ECANCELED ? "-ECANCELED"
                               : tide_strerror(err),
           tide_loop_time(NULL) - t0);
}

static void *answer(void *value) /* returns value after 0.02 s */
{
    int err = tide_sleep(0.02);
    return err < 0 ? tide_fail(err) : value;
}

static void *main_task(void *unused)
{
    (void)unused;
    t0 = tide_loop_time(NULL);
    tide_timeout *t = tide_timeout_begin(0.05);
    if (!t)
        return tide_fail(-errno);
    int err = tide_sleep(10.0); /* slow work: cancelled at the deadline */
    report("slow work", tide_timeout_end(t, err)); /* now -ETIMEDOUT */
    t0 = tide_loop_time(NULL);
    tide_timeout *outer = tide_timeout_begin(0.1);
    tide_timeout *inner = outer ? tide_timeout_begin(10.0) : NULL;
    if (!inner) /* close the outer scope, if open, on the way out */
        return tide_fail(outer ? tide_timeout_end(outer, -errno) : -errno);
    err = tide_timeout_end(inner, tide_sleep(10.0)); /* not its deadline */
    report("inner scope", err);
    report("outer scope", tide_timeout_end(outer, err));
    t0 = tide_loop_time(NULL);
    tide_future *task = tide_create_task(NULL, answer, (void *)(intptr_t)42);
    void *value = NULL;
    err = task ? tide_wait_for(task, 1.0, &value) : -errno;
    tide_future_release(task);
    if (err < 0)
        return tide_fail(err);
    printf("wait_for: %ld after %.3f s\n", (long)(intptr_t)value,
           tide_loop_time(NULL) - t0);
    return NULL;
}

int main(void)
{
    tide_loop *loop = tide_loop_new();
    tide_future *task = NULL;
    int err = loop ? tide_loop_set_virtual_clock(loop, true) : -errno;

    if (err == 0 && !(task = tide_create_task(loop, main_task, NULL)))
        err = -errno;
    if (err == 0)
        err = tide_run_until_complete(loop, task, NULL);
    tide_future_release(task); /* NULL is ignored */
    int close_err = loop ? tide_loop_close(loop) : 0;
    if (err == 0)
        err = close_err;
    if (err < 0)
        fprintf(stderr, "timeout: %s\n", tide_strerror(err));
    return err < 0;
}
