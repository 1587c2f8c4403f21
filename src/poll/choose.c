/* Which backend a new loop opens (tide_loop_new calls this once).
 *
 * The default is io_uring in a build with liburing, when the kernel
 * lets this process use it (uring_probe.c, asked once per process) and
 * the loop's own ring can be set up; else epoll; poll() only where epoll
 * itself cannot be opened, except for want of fds or memory (then the
 * loop fails: poll would fail the same way). Under valgrind the default
 * is epoll: valgrind cannot see the kernel's writes into a ring's memory
 * (completions, received bytes), so it would report them uninitialised.
 * TIDE_BACKEND=io_uring|epoll|poll forces one; an io_uring forced where
 * it cannot run falls back to epoll as the default does; any other
 * value is ignored (the default runs). Every fallback and an ignored
 * value leave a sentence in b->why, which debug mode reports with the
 * backend's name; nothing is said otherwise.
 * SPDX-License-Identifier: MIT
 */
#include "poll/backend.h"

#include "base/sanitize.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TIDE__VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

int tide__backend_open_with(struct tide__backend *b,
                            const struct tide__backend_ops *ops)
{
    memset(b, 0, sizeof *b);
    b->fd = -1;
    b->wake_fd = -1;
    b->ops = ops;
    return ops->open(b);
}

/* b->why: note and why, either of which may be empty. */
static void say(struct tide__backend *b, const char *note, const char *why)
{
    if (!note[0] && !why[0])
        return; /* b->why is empty already (and snprintf is not cheap) */
    snprintf(b->why, sizeof b->why, "%s%s%s", note,
             note[0] && why[0] ? "; " : "", why);
}

/* epoll, or poll if epoll is missing, saying note and why. */
static int open_epoll(struct tide__backend *b, const char *note,
                      const char *why)
{
    int err = tide__backend_open_with(b, &tide__backend_epoll);

    if (err < 0 && err != -EMFILE && err != -ENFILE && err != -ENOMEM)
        err = tide__backend_open_with(b, &tide__backend_poll);
    if (err == 0)
        say(b, note, why);
    return err;
}

#ifdef TIDE_HAVE_URING
/* io_uring if it runs here: 0; else -errno with why[] saying what failed
 * (b is then closed). */
static int open_uring(struct tide__backend *b, char *why, size_t n)
{
    int err = tide__uring_probe(why, n);

    if (err == 0) {
        err = tide__backend_open_with(b, &tide__backend_uring);
        if (err < 0)
            snprintf(why, n, "%.90s", b->why);
    }
    return err;
}
#endif

int tide__backend_open(struct tide__backend *b)
{
    const char *want = getenv("TIDE_BACKEND");
    char note[64] = "";

    if (want && !*want)
        want = NULL;
    if (want && strcmp(want, "poll") == 0)
        return tide__backend_open_with(b, &tide__backend_poll);
    if (want && strcmp(want, "epoll") == 0)
        return open_epoll(b, "", "");
    bool forced = want && strcmp(want, "io_uring") == 0;
    if (want && !forced)
        snprintf(note, sizeof note,
                 "TIDE_BACKEND=%.16s is not io_uring, epoll or poll", want);
#ifdef TIDE_HAVE_URING
    if (!forced && RUNNING_ON_VALGRIND)
        return open_epoll(b, note,
                          "epoll under valgrind, which cannot see the "
                          "kernel's writes into io_uring's memory");
    char failed[96], why[120];
    if (open_uring(b, failed, sizeof failed) == 0) {
        say(b, note, "");
        return 0;
    }
    snprintf(why, sizeof why, "io_uring unavailable (%s)", failed);
    return open_epoll(b, note, why);
#else
    return open_epoll(b, note,
                      forced ? "io_uring unavailable (built without liburing)"
                             : "");
#endif
}
