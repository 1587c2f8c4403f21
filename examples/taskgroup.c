/* taskgroup.c: a task group that fails fast. The C version of:
 *
 *     async def child(delay, fail):
 *         await asyncio.sleep(delay)     # prints 'cancelled' if cancelled
 *         if fail:
 *             raise ConnectionResetError
 *
 *     async def main():
 *         try:
 *             async with asyncio.TaskGroup() as tg:
 *                 tg.create_task(child(10, False), name='child-1')
 *                 tg.create_task(child(0.05, True), name='child-2')
 *                 tg.create_task(child(10, False), name='child-3')
 *                 await asyncio.sleep(10)   # the block's own work
 *         except* ConnectionResetError as eg:
 *             print('group:', eg.exceptions)
 *
 * child-2 fails after 0.05 s: the group cancels child-1, child-3 and the
 * block, waits for the children to finish, and reports child-2's error.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <tide.h>

static void *child(void *fail)
{
    const char *name = tide_task_get_name(tide_current_task());
    int err = tide_sleep(fail ? 0.05 : 10.0);

    if (err < 0) {
        printf("%s: %s\n", name, tide_strerror(err));
        return tide_fail(err); /* stay cancelled */
    }
    printf("%s: failing\n", name);
    return tide_fail(-ECONNRESET);
}

static void *main_task(void *unused)
{
    static char *const names[3] = {"child-1", "child-2", "child-3"};
    tide_task_group *g = tide_task_group_new();
    int err = g ? 0 : -errno;

    (void)unused;
    for (int i = 0; i < 3 && err == 0; i++) {
        tide_task_options opt = {.name = names[i]};
        tide_future *t =
            tide_task_group_spawn(g, child, i == 1 ? g : NULL, &opt);
        if (!t)
            err = -errno;
        tide_future_release(t); /* the group holds its own reference */
    }
    if (err == 0) {
        err = tide_sleep(10.0); /* the block: interrupted by the failure */
        printf("block: %s\n", tide_strerror(err));
    }
    if (g) {
        err = tide_task_group_end(g, err); /* waits for every child */
        printf("group: %s\n", tide_strerror(err));
        int errs[3];
        size_t n = tide_task_group_errors(g, errs, 3);
        for (size_t i = 0; i < n && i < 3; i++)
            printf("child error %zu: %s\n", i + 1, tide_strerror(errs[i]));
        tide_task_group_free(g);
    }
    return err == -ECONNRESET ? NULL : tide_fail(err < 0 ? err : -EINVAL);
}

int main(void)
{
    int err = tide_run(main_task, NULL, NULL); /* asyncio.run(main()) */
    if (err < 0) {
        fprintf(stderr, "taskgroup: %s\n", tide_strerror(err));
        return 1;
    }
    return 0;
}
