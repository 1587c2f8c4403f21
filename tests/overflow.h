/* Stack overflow death tests (test_task.c, test_compact.c): a task named
 * `name`, made with `opt`, recurses without end in a forked child, which
 * must die by a signal with the task's name in its message.
 */
#ifndef TIDE_TEST_OVERFLOW_H
#define TIDE_TEST_OVERFLOW_H

#include "harness.h"

#include <string.h>
#include <sys/wait.h>

/* Each frame holds about 1 KiB; the sum defeats tail calls. */
static long recurse(long depth)
{
    volatile char pad[1024];

    pad[0] = (char)depth;
    pad[sizeof pad - 1] = (char)depth;
    if (depth <= 0)
        return pad[0];
    return recurse(depth - 1) + pad[sizeof pad - 1];
}

static void *overflow_task(void *arg)
{
    (void)arg;
    recurse(1L << 40);
    return NULL;
}

static void overflow_child(void *arg)
{
    const tide_task_options *opt = arg;
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task_ex(loop, overflow_task, NULL, opt);

    tide_run_until_complete(loop, t, NULL);
}

static inline void check_overflow_death(const tide_task_options *opt,
                                        const char *file, int line)
{
    if (HARNESS_VALGRIND)
        SKIP("valgrind reports the overflow itself");
    char buf[4096];
    int status =
        harness_run_child(overflow_child, (void *)opt, buf, sizeof buf);
    /* ASan may take the SIGSEGV before tide's handler sees it. */
    if (HARNESS_ASAN && strstr(buf, "AddressSanitizer") &&
        !strstr(buf, opt->name))
        SKIP("ASan handled the overflow itself");
    if (!WIFSIGNALED(status))
        harness_fail(file, line, "child status %#x, stderr: %s", status, buf);
    if (!strstr(buf, opt->name))
        harness_fail(file, line, "stderr lacks the task's name: \"%s\"", buf);
}

#endif
