/* run.c: one task run to completion on an event loop. The C version of:
 *
 *     async def square(x):
 *         print('Square', x)
 *         await asyncio.sleep(1)
 *         print('End square', x)
 *         return x * x
 *
 *     loop = asyncio.get_event_loop()
 *     result = loop.run_until_complete(square(1))
 *     print(result)
 *     loop.close()
 *
 * A coroutine is a plain function run as a task: tide_sleep suspends it
 * and the loop resumes it a second later. Prints "Square 1",
 * "End square 1" and "1", in about one second.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <tide.h>

static void *square(void *arg)
{
    intptr_t x = (intptr_t)arg;

    printf("Square %ld\n", (long)x);
    int err = tide_sleep(1.0);
    if (err < 0)
        return tide_fail(err);
    printf("End square %ld\n", (long)x);
    return (void *)(x * x);
}

int main(void)
{
    tide_loop *loop = tide_get_event_loop(); /* this thread's default loop */
    if (!loop) {
        fprintf(stderr, "run: %s\n", tide_strerror(-errno));
        return 1;
    }
    tide_future *task = tide_create_task(loop, square, (void *)(intptr_t)1);
    void *result = NULL;
    int err = task ? tide_run_until_complete(loop, task, &result) : -errno;
    tide_future_release(task); /* NULL is ignored */
    if (err == 0)
        printf("%ld\n", (long)(intptr_t)result);
    int close_err = tide_loop_close(loop); /* and clear the default loop */
    if (err == 0)
        err = close_err;
    if (err < 0)
        fprintf(stderr, "run: %s\n", tide_strerror(err));
    return err < 0;
}
