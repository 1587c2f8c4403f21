/* Which backend a new loop runs on (poll/choose.c, poll/uring_probe.c):
 * io_uring by default where the kernel has it, epoll when it is refused
 * (ENOSYS, EPERM from seccomp or kernel.io_uring_disabled, a missing
 * feature, ENOMEM, EMFILE) or under valgrind, TIDE_BACKEND forcing one;
 * the kernel asked once per process, a passing refusal asked again; debug
 * mode saying why. Each test sets the environment it needs (CI runs the
 * suite with TIDE_BACKEND and TIDE__URING_FAIL set), except that a forced
 * failure (TIDE__URING_FAIL, CI's fallback step) is honoured where the
 * default is checked.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/sys.h"
#include "core/loop.h"
#include "poll/backend.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef TIDE_HAVE_URING
#include <liburing.h>

/* The kernel lets this process set up a ring, asked without tide. */
static bool kernel_has_io_uring(void)
{
    struct io_uring r;

    if (io_uring_queue_init(4, &r, 0) < 0)
        return false;
    io_uring_queue_exit(&r);
    return true;
}

/* A new loop's backend and why (into why, n bytes); the loop is closed. */
static const char *backend_of_new_loop(char *why, size_t n)
{
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    const char *name = tide_loop_backend(loop); /* a static string */
    snprintf(why, n, "%s", loop->backend.why);
    CHECK_EQ(tide_loop_close(loop), 0);
    return name;
}

static const char *forced_failure(void)
{
    const char *e = getenv("TIDE__URING_FAIL");

    return e && *e ? e : NULL;
}

/* A fresh start: no backend forced, the probe to be asked again. */
static void choose_fresh(void)
{
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    tide__uring_probe_forget();
}

#define SKIP_UNLESS_IO_URING()                                     \
    do {                                                           \
        if (forced_failure())                                      \
            SKIP("TIDE__URING_FAIL: io_uring refused on purpose"); \
        if (HARNESS_VALGRIND)                                      \
            SKIP("under valgrind the default is epoll");           \
        if (!kernel_has_io_uring())                                \
            SKIP("the kernel refuses io_uring here");              \
    } while (0)

/* The default where the kernel has io_uring and nothing forces a
 * backend: io_uring, nothing to say. This is what the test, asan and tsan
 * CI steps run on. */
TEST(default_is_io_uring_where_the_kernel_has_it)
{
    char why[192];

    choose_fresh();
    const char *name = backend_of_new_loop(why, sizeof why);
    if (forced_failure()) { /* CI's fallback step */
        CHECK_STR_EQ(name, "epoll");
        CHECK(strstr(why, "io_uring unavailable") != NULL);
        CHECK(strstr(why, "TIDE__URING_FAIL") != NULL);
    } else if (HARNESS_VALGRIND) {
        CHECK_STR_EQ(name, "epoll");
        CHECK(strstr(why, "valgrind") != NULL);
    } else if (kernel_has_io_uring()) {
        CHECK_STR_EQ(name, "io_uring");
        CHECK_STR_EQ(why, "");
    } else {
        CHECK_STR_EQ(name, "epoll");
        CHECK(strstr(why, "io_uring unavailable") != NULL);
    }
    LEAK_GATE();
}

TEST(tide_backend_forces_each)
{
    char why[192];

    choose_fresh();
    CHECK_EQ(setenv("TIDE_BACKEND", "epoll", 1), 0);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
    CHECK_STR_EQ(why, "");
    CHECK_EQ(setenv("TIDE_BACKEND", "poll", 1), 0);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "poll");
    CHECK_EQ(setenv("TIDE_BACKEND", "io_uring", 1), 0);
    const char *name = backend_of_new_loop(why, sizeof why);
    if (forced_failure() || !kernel_has_io_uring()) {
        CHECK_STR_EQ(name, "epoll"); /* forced, but refused: epoll */
        CHECK(strstr(why, "io_uring unavailable") != NULL);
    } else {
        CHECK_STR_EQ(name, "io_uring"); /* under valgrind too: asked for */
        CHECK_STR_EQ(why, "");
    }
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    LEAK_GATE();
}

static char reported[256];

static void keep_report(tide_loop *loop, const char *msg, void *arg)
{
    (void)loop;
    (void)arg;
    snprintf(reported, sizeof reported, "%s", msg);
}

/* A new loop in debug mode; what it reported turning debug mode on. */
static const char *debug_report(void)
{
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_report_handler(loop, keep_report, NULL), 0);
    reported[0] = 0;
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    return reported;
}

/* An unknown TIDE_BACKEND runs the default, and debug mode names the
 * value; an empty one is no choice at all. */
TEST(unknown_tide_backend_runs_the_default_and_says_so)
{
    char why[192], dflt[16];

    choose_fresh();
    snprintf(dflt, sizeof dflt, "%s", backend_of_new_loop(why, sizeof why));
    CHECK_EQ(setenv("TIDE_BACKEND", "kqueue", 1), 0);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), dflt);
    CHECK(strstr(why, "TIDE_BACKEND=kqueue is not io_uring, epoll or poll"));
    const char *r = debug_report();
    CHECK(strstr(r, "backend ") == r);
    CHECK(strstr(r, dflt) != NULL);
    CHECK(strstr(r, "TIDE_BACKEND=kqueue is not") != NULL);
    /* A long value is cut, not overflowed. */
    static char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    CHECK_EQ(setenv("TIDE_BACKEND", longname, 1), 0);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), dflt);
    CHECK(strstr(why, "is not io_uring, epoll or poll") != NULL);
    CHECK_EQ(setenv("TIDE_BACKEND", "", 1), 0);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), dflt);
    CHECK(strstr(why, "TIDE_BACKEND") == NULL);
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    LEAK_GATE();
}

/* The kernel is asked once per process: the first loop sets up a probe
 * ring and its own, every later one only its own. */
TEST(the_kernel_is_asked_once_per_process)
{
    char why[192];

    SKIP_UNLESS_IO_URING();
    choose_fresh();
    uint64_t before = tide__sys_count(TIDE__SYS_URING_SETUP);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "io_uring");
    CHECK_EQ(tide__sys_count(TIDE__SYS_URING_SETUP) - before, 2);
    for (int i = 0; i < 100; i++)
        CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "io_uring");
    CHECK_EQ(tide__sys_count(TIDE__SYS_URING_SETUP) - before, 102);
    LEAK_GATE();
}

/* The probe's setup refused. ENOSYS (no io_uring), EPERM (seccomp, the
 * sysctl) and EINVAL (a kernel without IORING_SETUP_R_DISABLED) are for
 * good: the loops after the first do not ask again, and say the same.
 * ENOMEM (a memlock limit), EMFILE, ENFILE and EAGAIN pass: that loop
 * runs on epoll, the next one asks again and gets io_uring. */
TEST(a_lasting_refusal_is_kept_a_passing_one_asked_again)
{
    static const struct {
        int err;
        bool lasting;
    } refusals[] = {
        {EPERM, true},   {ENOSYS, true},  {EINVAL, true},  {ENOMEM, false},
        {EMFILE, false}, {ENFILE, false}, {EAGAIN, false},
    };
    char why[192];

    SKIP_UNLESS_IO_URING();
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        const char *msg = strerror(refusals[i].err);
        choose_fresh();
        tide__sys_fault(TIDE__SYS_URING_SETUP, 1, refusals[i].err, 0);
        CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
        CHECK(strstr(why, "io_uring unavailable (io_uring_setup: "));
        CHECK(strstr(why, msg) != NULL);
        uint64_t before = tide__sys_count(TIDE__SYS_URING_SETUP);
        if (refusals[i].lasting) {
            CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
            CHECK(strstr(why, msg) != NULL);
            CHECK_EQ(tide__sys_count(TIDE__SYS_URING_SETUP), before);
        } else {
            CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "io_uring");
            CHECK_EQ(tide__sys_count(TIDE__SYS_URING_SETUP), before + 2);
        }
    }
    tide__uring_probe_forget();
    LEAK_GATE();
}

/* The probe said yes, then one loop's own ring fails (a memlock limit,
 * fds, seccomp installed since): that loop runs on epoll, the next on
 * io_uring again. */
TEST(a_loops_own_ring_failing_falls_back_to_epoll)
{
    static const int errs[] = {EPERM, ENOSYS, ENOMEM, EMFILE};
    char why[192];

    SKIP_UNLESS_IO_URING();
    choose_fresh();
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "io_uring");
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        tide__sys_fault(TIDE__SYS_URING_SETUP, 1, errs[i], 0);
        CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
        CHECK(strstr(why, strerror(errs[i])) != NULL);
        CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "io_uring");
    }
    CHECK_EQ(setenv("TIDE_BACKEND", "io_uring", 1), 0); /* forced: alike */
    tide__sys_fault(TIDE__SYS_URING_SETUP, 1, EPERM, 0);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    LEAK_GATE();
}

/* Debug mode names the backend that runs and why (silent otherwise). */
TEST(debug_mode_says_why_it_fell_back)
{
    SKIP_UNLESS_IO_URING();
    choose_fresh();
    CHECK_STR_EQ(debug_report(), ""); /* io_uring: nothing to say */
    tide__sys_fault(TIDE__SYS_URING_SETUP, 1, EPERM, 0);
    const char *r = debug_report();
    CHECK(strstr(r, "backend epoll: io_uring unavailable") != NULL);
    CHECK(strstr(r, strerror(EPERM)) != NULL);
    LEAK_GATE();
}

static char sysctl_path[64];

static void sysctl_says(const char *value)
{
    FILE *f = fopen(sysctl_path, "w");

    CHECK_NOT_NULL(f);
    CHECK(fputs(value, f) >= 0);
    CHECK_EQ(fclose(f), 0);
    tide__uring_probe_forget();
}

/* kernel.io_uring_disabled: 2 is epoll without a setup tried; 1 lets only
 * a group in (setup's EPERM then names the sysctl); 0 is io_uring. Read
 * from a file of the test's own (the real one is the host's). */
TEST(kernel_io_uring_disabled_is_read)
{
    char why[192];

    SKIP_UNLESS_IO_URING();
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    snprintf(sysctl_path, sizeof sysctl_path, "/tmp/tide-sysctl-%d",
             (int)getpid());
    tide__uring_disabled_path = sysctl_path;
    sysctl_says("2\n");
    uint64_t before = tide__sys_count(TIDE__SYS_URING_SETUP);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
    CHECK(strstr(why, "kernel.io_uring_disabled=2") != NULL);
    CHECK_EQ(tide__sys_count(TIDE__SYS_URING_SETUP), before);
    sysctl_says("1\n");
    tide__sys_fault(TIDE__SYS_URING_SETUP, 1, EPERM, 0);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
    CHECK(strstr(why, "kernel.io_uring_disabled=1") != NULL);
    sysctl_says("1\n"); /* in the group: setup works */
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "io_uring");
    sysctl_says("0\n");
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "io_uring");
    CHECK_EQ(unlink(sysctl_path), 0); /* no such sysctl: before Linux 6.6 */
    tide__uring_probe_forget();
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "io_uring");
    tide__uring_disabled_path = "/proc/sys/kernel/io_uring_disabled";
    tide__uring_probe_forget();
    LEAK_GATE();
}

/* TIDE__URING_FAIL (internal: CI's fallback step) refuses io_uring as
 * seccomp would, forced or not, without asking the kernel. */
TEST(tide_uring_fail_refuses_io_uring)
{
    char why[192], *was = getenv("TIDE__URING_FAIL");

    was = was ? strdup(was) : NULL;
    choose_fresh();
    CHECK_EQ(setenv("TIDE__URING_FAIL", "ENOSYS", 1), 0);
    uint64_t before = tide__sys_count(TIDE__SYS_URING_SETUP);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
    if (!HARNESS_VALGRIND) { /* there valgrind's epoll comes first */
        CHECK(strstr(why, strerror(ENOSYS)) != NULL);
        CHECK(strstr(why, "TIDE__URING_FAIL") != NULL);
    }
    CHECK_EQ(setenv("TIDE_BACKEND", "io_uring", 1), 0);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
    CHECK(strstr(why, strerror(ENOSYS)) != NULL);
    CHECK(strstr(why, "TIDE__URING_FAIL") != NULL);
    CHECK_EQ(tide__sys_count(TIDE__SYS_URING_SETUP), before);
    tide__uring_probe_forget();
    CHECK_EQ(setenv("TIDE__URING_FAIL", "something", 1), 0);
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
    CHECK(strstr(why, strerror(EPERM)) != NULL);
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    if (was)
        CHECK_EQ(setenv("TIDE__URING_FAIL", was, 1), 0);
    else
        CHECK_EQ(unsetenv("TIDE__URING_FAIL"), 0);
    free(was);
    tide__uring_probe_forget();
    LEAK_GATE();
}

/* Under valgrind (CI's memcheck step) the default is epoll, and debug
 * mode says why; a forced io_uring still runs. */
TEST(under_valgrind_the_default_is_epoll)
{
    char why[192];

    if (!HARNESS_VALGRIND)
        SKIP("not under valgrind");
    choose_fresh();
    CHECK_STR_EQ(backend_of_new_loop(why, sizeof why), "epoll");
    CHECK(strstr(why, "under valgrind, which cannot see the kernel's") !=
          NULL);
    CHECK(strstr(debug_report(), "backend epoll: epoll under valgrind"));
    LEAK_GATE();
}

/* A seccomp filter makes io_uring_setup fail with EPERM, as container
 * profiles do: a loop made under it runs on epoll, forced or not. In a
 * child, which the filter binds for the rest of its life. */
TEST(seccomp_refusing_io_uring_falls_back)
{
    pid_t pid = fork();

    CHECK(pid >= 0);
    if (pid == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                     offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            _exit(2);
        tide__uring_probe_forget();
        for (int forced = 0; forced < 2; forced++) {
            if (forced)
                setenv("TIDE_BACKEND", "io_uring", 1);
            else
                unsetenv("TIDE_BACKEND");
            tide_loop *loop = tide_loop_new();
            if (!loop || strcmp(tide_loop_backend(loop), "epoll") != 0 ||
                (!HARNESS_VALGRIND && !forced_failure() &&
                 !strstr(loop->backend.why, strerror(EPERM))))
                _exit(3);
            tide_loop_close(loop);
        }
        _exit(0);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    LEAK_GATE();
}

/* The fds the loop can have: the new loop with `spare` fds left under
 * RLIMIT_NOFILE; its backend's name, or NULL with *err its errno. */
static const char *loop_with_spare_fds(int spare, int *err)
{
    struct rlimit was, low;
    int probe = dup(0); /* the lowest free number: the fds in use */

    CHECK(probe >= 0);
    close(probe);
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &was), 0);
    low = was;
    low.rlim_cur = (rlim_t)(probe + spare);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    tide_loop *loop = tide_loop_new();
    *err = loop ? 0 : errno;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &was), 0);
    if (!loop)
        return NULL;
    const char *name = tide_loop_backend(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    return name;
}

/* HAZARDS B42 and row 7 of its table: EMFILE at ring setup. A loop needs
 * three fds on io_uring (the ring, the wake-up pipe's two ends) and two
 * on epoll (epoll, the wake-up eventfd), so a process short of fds does
 * not fall back: with fewer than two to spare the loop fails cleanly,
 * NULL with errno EMFILE, nothing left open or allocated; with two it
 * falls back to epoll; with three it runs on io_uring. (An EMFILE that
 * only the ring meets, the seam's, falls back too:
 * a_loops_own_ring_failing_falls_back_to_epoll.) */
TEST(emfile_at_ring_setup_fails_the_loop_cleanly)
{
    int err;

    SKIP_UNLESS_IO_URING();
    choose_fresh();
    for (int round = 0; round < 2; round++) { /* probe unasked, then kept */
        for (int spare = 0; spare < 2; spare++) {
            CHECK_NULL(loop_with_spare_fds(spare, &err));
            CHECK_ERR(err, EMFILE);
        }
        CHECK_STR_EQ(loop_with_spare_fds(2, &err), "epoll");
        CHECK_STR_EQ(loop_with_spare_fds(3, &err), "io_uring");
    }
    LEAK_GATE();
}

#else

TEST(built_without_liburing_the_default_is_epoll)
{
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    CHECK_STR_EQ(tide_loop_backend(loop), "epoll");
    CHECK_STR_EQ(loop->backend.why, "");
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(setenv("TIDE_BACKEND", "io_uring", 1), 0);
    loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    CHECK_STR_EQ(tide_loop_backend(loop), "epoll");
    CHECK(strstr(loop->backend.why, "built without liburing") != NULL);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(unsetenv("TIDE_BACKEND"), 0);
    LEAK_GATE();
}

#endif
