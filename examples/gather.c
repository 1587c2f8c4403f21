/* gather.c: three tasks whose sleeps overlap, gathered into one list.
 *
 * The C version of:
 *
 *     async def square(x):
 *         print('Square', x)
 *         await asyncio.sleep(1)
 *         print('End square', x)
 *         return x * x
 *
 *     async def main():
 *         tasks = [asyncio.create_task(square(x)) for x in (1, 2, 3)]
 *         print(await asyncio.gather(*tasks))
 *
 *     asyncio.run(main())
 *
 * The three one-second sleeps run at the same time, so the program takes
 * about one second, not three. The gather's result is an array of the
 * tasks' results, in the order the tasks were given.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <tide.h>

#define NTASKS 3

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

static void *main_task(void *unused)
{
    tide_future *tasks[NTASKS] = {NULL};
    tide_future *all = NULL;
    void *value = NULL;
    int err = 0;

    (void)unused;
    for (intptr_t i = 0; i < NTASKS && err == 0; i++)
        if (!(tasks[i] = tide_create_task(NULL, square, (void *)(i + 1))))
            err = -errno;
    if (err == 0 && !(all = tide_gather(tasks, NTASKS, 0)))
        err = -errno;
    if (all)
        err = tide_await(all, &value); /* void *[NTASKS], owned by all */
    if (err == 0) {
        void **squares = value;
        for (int i = 0; i < NTASKS; i++)
            printf("%s%ld", i ? ", " : "[", (long)(intptr_t)squares[i]);
        printf("]\n");
    }
    tide_future_release(all); /* NULL is ignored */
    for (int i = 0; i < NTASKS; i++)
        tide_future_release(tasks[i]);
    return err < 0 ? tide_fail(err) : NULL;
}

int main(void)
{
    int err = tide_run(main_task, NULL, NULL); /* asyncio.run(main()) */
    if (err < 0) {
        fprintf(stderr, "gather: %s\n", tide_strerror(err));
        return 1;
    }
    return 0;
}
