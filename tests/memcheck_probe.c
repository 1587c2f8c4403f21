/* A program that misuses futures on purpose, for memcheck to catch: run
 * by tests/memcheck_probe.sh (CTest, where valgrind is installed, and
 * .ci/run's valgrind step), which checks what valgrind says against the
 * lines marked "probe:" below.
 *
 *   memcheck_probe leak-task       a task never released: "definitely
 *                                  lost", allocated at its creation line
 *   memcheck_probe leak-future     the same for a plain future
 *   memcheck_probe double-release  a task released twice: an invalid read
 *                                  at the second release
 * SPDX-License-Identifier: MIT
 */
#include <tide.h>

#include <stdio.h>
#include <string.h>

static void *returns_null(void *arg)
{
    (void)arg;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    tide_loop *loop = tide_loop_new();
    tide_future *f = NULL;

    /* Memcheck's view, not debug mode's (which keeps freed futures). */
    if (!loop || tide_loop_set_debug(loop, false) < 0)
        return 1;
    if (strcmp(mode, "leak-task") == 0) {
        f = tide_create_task(loop, returns_null, NULL); /* probe: leak-task */
        if (!f || tide_run_until_complete(loop, f, NULL) < 0)
            return 1;
    } else if (strcmp(mode, "leak-future") == 0) {
        f = tide_future_new(loop); /* probe: leak-future */
        if (!f)
            return 1;
    } else if (strcmp(mode, "double-release") == 0) {
        f = tide_create_task(loop, returns_null, NULL);
        if (!f || tide_run_until_complete(loop, f, NULL) < 0)
            return 1;
        tide_future_release(f);
        tide_future_release(f); /* probe: double-release */
        f = NULL;
    } else {
        fprintf(stderr, "usage: %s leak-task|leak-future|double-release\n",
                argv[0]);
        return 2;
    }
    if (tide_loop_close(loop) < 0)
        return 1;
    f = NULL; /* the last pointer to it is gone: leaked */
    return 0;
}
