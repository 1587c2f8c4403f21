/* as_completed.c: results in the order they are ready, on a loop that is
 * already running (as in a notebook with nest_asyncio). The C version of:
 *
 *     async def square(x):
 *         await asyncio.sleep(1)
 *         return x * x
 *     async def compute(x):
 *         return await square(x)
 *     async def main():
 *         tasks = [asyncio.ensure_future(compute(x)) for x in (1, 2, 3)]
 *         for f in asyncio.as_completed(tasks):
 *             print('Result:', await f)
 *     loop.run_until_complete(main())  # the loop is already running
 *
 * Awaiting a coroutine is calling it: square() suspends in tide_sleep.
 * The cell is a task, so main() runs through a nested run_until_complete.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <tide.h>

#define NTASKS 3

static int square(intptr_t x, intptr_t *out)
{
    int err = tide_sleep(1.0);
    if (err < 0)
        return err;
    *out = x * x;
    return 0;
}

static void *compute(void *arg)
{
    intptr_t result;
    int err = square((intptr_t)arg, &result);
    return err < 0 ? tide_fail(err) : (void *)result;
}

static void *main_task(void *unused)
{
    tide_future *tasks[NTASKS] = {NULL}, *f;
    tide_as_completed *it = NULL;
    int err = 0;

    (void)unused;
    for (intptr_t i = 0; i < NTASKS && err == 0; i++)
        if (!(tasks[i] = tide_create_task(NULL, compute, (void *)(i + 1))))
            err = -errno;
    if (err == 0 && !(it = tide_as_completed_new(tasks, NTASKS)))
        err = -errno;
    while (it && (err = tide_as_completed_next(it, &f)) == 1) { /* borrowed */
        void *value;
        if ((err = tide_await(f, &value)) < 0) /* f is done: no wait */
            break;
        printf("Result: %ld\n", (long)(intptr_t)value);
    }
    tide_as_completed_free(it); /* NULL is ignored */
    for (int i = 0; i < NTASKS; i++)
        tide_future_release(tasks[i]);
    return err < 0 ? tide_fail(err) : NULL;
}

static void *notebook_cell(void *loop) /* runs while the loop is running */
{
    tide_future *task = tide_create_task(loop, main_task, NULL);
    int err = task ? tide_run_until_complete(loop, task, NULL) : -errno;
    tide_future_release(task); /* NULL is ignored */
    return err < 0 ? tide_fail(err) : NULL;
}

int main(void)
{
    tide_loop *loop = tide_loop_new();
    if (!loop) {
        fprintf(stderr, "as_completed: %s\n", tide_strerror(-errno));
        return 1;
    }
    tide_future *cell = tide_create_task(loop, notebook_cell, loop);
    int err = cell ? tide_run_until_complete(loop, cell, NULL) : -errno;
    tide_future_release(cell);
    int close_err = tide_loop_close(loop); /* 0 unless the loop is running */
    if (err == 0)
        err = close_err;
    if (err < 0)
        fprintf(stderr, "as_completed: %s\n", tide_strerror(err));
    return err < 0;
}
