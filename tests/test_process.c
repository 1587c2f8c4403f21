/* Child processes (include/tide/process.h; src/io/process.c, spawn.c).
 *
 * Bad arguments (NULL, empty argv, unknown stdio modes) change nothing;
 * exit codes and signal deaths (negative, as asyncio); a program that
 * does not exist, a file that is not executable or not a program, a
 * missing cwd: a clear error, no zombie, no fd left; SIGCHLD set to
 * SIG_IGN and a waitpid(-1) elsewhere do not take the status (HAZARDS
 * B38a); the child's signal mask is empty, its dispositions default and
 * it has fds 0-2 only, and tide's own fds are close-on-exec; every stdio
 * mode, env and cwd; wait is the child's exit, not its pipes' (a
 * grandchild holding stdout, B38b; a child closing its pipes and running
 * on); no zombie when a process is freed without waiting, nor at loop
 * close (the child is killed and reaped); kill_on_cancel escalates to
 * SIGKILL for a child that ignores SIGTERM; 200 children with half of
 * their waiters cancelled (B38c); cancellation at each
 * suspension point (wait, communicate, a pipe read); communicate with
 * 100 MiB each way; 1,000 short-lived children with the fd count
 * unchanged; fork() in the parent while children run (B37); a signal
 * storm (a handler without SA_RESTART) while children start, talk and
 * exit: no EINTR comes out (B36); out of fds: -EMFILE, nothing left;
 * compact tasks.
 *
 * CTest runs this file twice: with pidfds, and with TIDE__PIDFD=0, the
 * SIGCHLD fallback of kernels before 5.3. Beside the tests above (their
 * expectations say where the two differ): SIGCHLD's disposition is
 * tide's only while fallback children run; the program's own SIGCHLD
 * handler still runs; a child the program forked is never reaped by
 * tide; two loops in two threads each reap their own; exits whose
 * SIGCHLD never comes (blocked, or SIG_IGN set meanwhile) still end
 * waits; out of memory at each allocation of a start leaves nothing;
 * zombies are counted from /proc.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h" /* tide__alloc_fail_after */
#include "io/io.h"      /* tide__spawn_uses_pidfd */

#include <tide/process.h>
#include <tide/signal.h>
#include <tide/sync.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

/* Whether pid is no longer a child of ours (reaped), without reaping. */
static bool gone(pid_t pid)
{
    siginfo_t info = {0};

    return waitid(P_PID, (id_t)pid, &info,
                  WEXITED | WNOHANG | WNOWAIT | __WALL) < 0 &&
           errno == ECHILD;
}

/* No child of ours at all is left (running or zombie). */
static bool no_children(void)
{
    siginfo_t info = {0};

    return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT | __WALL) < 0 &&
           errno == ECHILD;
}

/* SIGCHLD's (or any signal's) handler now: SIG_DFL, SIG_IGN or one. */
static void (*disposition(int sig))(int)
{
    struct sigaction now;

    CHECK_EQ(sigaction(sig, NULL, &now), 0);
    return now.sa_handler;
}

/* Zombie children of this process, from /proc (what a ps would show). */
static int zombies(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    CHECK_NOT_NULL(d);
    while ((e = readdir(d))) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue; /* gone meanwhile */
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char state;
        int ppid;
        char *tail = strrchr(buf, ')'); /* the name may hold anything */
        if (tail && sscanf(tail + 1, " %c %d", &state, &ppid) == 2 &&
            state == 'Z' && ppid == getpid())
            n++;
    }
    closedir(d);
    return n;
}

static tide_process *start(const char *const *argv,
                           const tide_process_options *o)
{
    tide_process *p = NULL;
    CHECK_EQ(tide_create_subprocess_exec(argv, o, &p), 0);
    CHECK_NOT_NULL(p);
    return p;
}

static tide_process *shell(const char *cmd, const tide_process_options *o)
{
    tide_process *p = NULL;
    CHECK_EQ(tide_create_subprocess_shell(cmd, o, &p), 0);
    CHECK_NOT_NULL(p);
    return p;
}

static int wait_code(tide_process *p)
{
    int code = 999;
    CHECK_EQ(tide_process_wait(p, &code), 0);
    return code;
}

/* Read s to its end into buf (cap bytes, NUL-terminated); the count. */
static size_t read_all(tide_stream *s, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t r;

    while ((r = tide_stream_read_into(s, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    CHECK_EQ(r, 0);
    buf[len] = '\0';
    return len;
}

/* ---- bad input ------------------------------------------------------- */

static void *bad_args_body(void *arg)
{
    const char *none[] = {NULL};
    const char *empty[] = {"", NULL};
    const char *ok[] = {"true", NULL};
    tide_process *p = (tide_process *)1;
    int code = 5;
    (void)arg;

    long fds = harness_fd_count();
    CHECK_ERR(tide_create_subprocess_exec(NULL, NULL, &p), -EINVAL);
    CHECK_ERR(tide_create_subprocess_exec(none, NULL, &p), -EINVAL);
    CHECK_ERR(tide_create_subprocess_exec(empty, NULL, &p), -EINVAL);
    CHECK_ERR(tide_create_subprocess_exec(ok, NULL, NULL), -EINVAL);
    CHECK_ERR(tide_create_subprocess_shell(NULL, NULL, &p), -EINVAL);
    tide_process_options bad[] = {
        {.stdin_mode = 7},
        {.stdout_mode = -1},
        {.stdin_mode = TIDE_STDIO_STDOUT},
        {.stdout_mode = TIDE_STDIO_STDOUT},
        {.stderr_mode = TIDE_STDIO_FD, .stderr_fd = -1},
        {.kill_grace = NAN},
        {.kill_grace = -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_ERR(tide_create_subprocess_exec(ok, &bad[i], &p), -EINVAL);
    CHECK(p == (tide_process *)1); /* untouched */
    CHECK_EQ(harness_fd_count(), fds);
    CHECK(no_children());

    CHECK_ERR(tide_process_pid(NULL), -EINVAL);
    CHECK_NULL(tide_process_stdin(NULL));
    CHECK_NULL(tide_process_stdout(NULL));
    CHECK_NULL(tide_process_stderr(NULL));
    CHECK_ERR(tide_process_returncode(NULL, &code), -EINVAL);
    CHECK_ERR(tide_process_wait(NULL, &code), -EINVAL);
    CHECK_ERR(tide_process_communicate(NULL, NULL, 0, &code, NULL), -EINVAL);
    CHECK_ERR(tide_process_send_signal(NULL, SIGTERM), -EINVAL);
    CHECK_ERR(tide_process_terminate(NULL), -EINVAL);
    CHECK_ERR(tide_process_kill(NULL), -EINVAL);
    CHECK_ERR(tide_process_free(NULL), -EINVAL);
    tide_process_output_free(NULL);
    CHECK_EQ(code, 5);

    p = start(ok, NULL);
    CHECK_ERR(tide_process_returncode(p, NULL), -EINVAL);
    CHECK_ERR(tide_process_send_signal(p, -1), -EINVAL);
    CHECK_ERR(tide_process_send_signal(p, 65), -EINVAL);
    /* communicate: input with no stdin pipe, NULL input with a length */
    CHECK_ERR(tide_process_communicate(p, "x", 1, NULL, NULL), -EINVAL);
    CHECK_ERR(tide_process_communicate(p, NULL, 1, NULL, NULL), -EINVAL);
    CHECK_NULL(tide_process_stdin(p)); /* inherited: no pipe */
    CHECK_EQ(wait_code(p), 0);
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

TEST(bad_arguments_change_nothing)
{
    CHECK_EQ(harness_run_body(bad_args_body, NULL), 0);
    LEAK_GATE();
}

/* ---- exit codes and signals -------------------------------------------- */

static void *codes_body(void *arg)
{
    const char *sleeper[] = {"sleep", "10", NULL};
    int code = 0;
    (void)arg;

    tide_process *p = shell("exit 3", NULL);
    CHECK(tide_process_pid(p) > 0);
    CHECK_EQ(wait_code(p), 3);
    CHECK_EQ(tide_process_returncode(p, &code), 0);
    CHECK_EQ(code, 3);
    CHECK_ERR(tide_process_terminate(p), -ESRCH); /* exited: not sent */
    CHECK_EQ(wait_code(p), 3);                    /* again, at once */
    CHECK_EQ(tide_process_free(p), 0);

    p = start(sleeper, NULL);
    CHECK_ERR(tide_process_returncode(p, &code), -EAGAIN);
    CHECK_EQ(tide_process_send_signal(p, 0), 0); /* alive */
    CHECK_EQ(tide_process_kill(p), 0);
    CHECK_EQ(wait_code(p), -SIGKILL);
    CHECK_EQ(tide_process_free(p), 0);

    p = start(sleeper, NULL);
    CHECK_EQ(tide_process_terminate(p), 0);
    CHECK_EQ(wait_code(p), -SIGTERM);
    CHECK_EQ(tide_process_free(p), 0);

    p = start(sleeper, NULL);
    CHECK_EQ(tide_process_send_signal(p, SIGUSR1), 0);
    CHECK_EQ(wait_code(p), -SIGUSR1);
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

TEST(exit_codes_and_signal_deaths_are_returncodes)
{
    CHECK_EQ(harness_run_body(codes_body, NULL), 0);
    CHECK(no_children());
    LEAK_GATE();
}

static void *exec_errors_body(void *arg)
{
    const char *dir = arg;
    char plain[128], junk[128];
    const char *missing[] = {"/nonexistent/tide-no-such-program", NULL};
    const char *missing_path[] = {"tide-no-such-program", NULL};
    const char *a_plain[] = {plain, NULL};
    const char *a_junk[] = {junk, NULL};
    const char *ok[] = {"true", NULL};
    tide_process *p = NULL;

    snprintf(plain, sizeof plain, "%s/plain", dir);
    snprintf(junk, sizeof junk, "%s/junk", dir);
    int fd = open(plain, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, "#!/bin/sh\n", 10), 10);
    close(fd);
    fd = open(junk, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, "\x7f\x01\x02junk", 7), 7);
    close(fd);

    long fds = harness_fd_count();
    tide_process_options pipes = {.stdin_mode = TIDE_STDIO_PIPE,
                                  .stdout_mode = TIDE_STDIO_PIPE,
                                  .stderr_mode = TIDE_STDIO_DEVNULL};
    CHECK_ERR(tide_create_subprocess_exec(missing, &pipes, &p), -ENOENT);
    CHECK_ERR(tide_create_subprocess_exec(missing_path, &pipes, &p), -ENOENT);
    CHECK_ERR(tide_create_subprocess_exec(a_plain, &pipes, &p), -EACCES);
    CHECK_ERR(tide_create_subprocess_exec(a_junk, &pipes, &p), -ENOEXEC);
    tide_process_options nowhere = {.cwd = "/nonexistent/tide-dir"};
    CHECK_ERR(tide_create_subprocess_exec(ok, &nowhere, &p), -ENOENT);
    CHECK_NULL(p);
    CHECK_EQ(harness_fd_count(), fds); /* no pipe, no pidfd left */
    CHECK(no_children());              /* each failed child was reaped */
    unlink(plain);
    unlink(junk);
    return NULL;
}

TEST(exec_failures_are_clear_errors_with_nothing_left)
{
    char dir[] = "/tmp/tide-proc-XXXXXX";

    CHECK_NOT_NULL(mkdtemp(dir));
    CHECK_EQ(harness_run_body(exec_errors_body, dir), 0);
    rmdir(dir);
    LEAK_GATE();
}

/* Whether the kernel keeps a reaped child's status with its pidfd
 * (PIDFD_INFO_EXIT, Linux 6.15). */
static bool kernel_keeps_exit_status(void)
{
    struct utsname u;
    int major = 0, minor = 0;

    CHECK_EQ(uname(&u), 0);
    CHECK(sscanf(u.release, "%d.%d", &major, &minor) == 2);
    return major > 6 || (major == 6 && minor >= 15);
}

static void *reaped_elsewhere_body(void *arg)
{
    const char *ok[] = {"true", NULL};
    bool foreign = arg != NULL;
    /* Without pidfds, tide's SIGCHLD handler is the disposition while
     * children run, so SIG_IGN reaps nothing: the real status; a foreign
     * reaper leaves nothing to know it by: 255. */
    int want = tide__spawn_uses_pidfd()
                   ? (kernel_keeps_exit_status() ? 7 : 255)
                   : (foreign ? 255 : 7);

    tide_process *p = shell("exit 7", NULL);
    tide_process *q = start(ok, NULL);
    if (foreign) { /* somebody else's reaper takes both */
        for (int n = 0; n < 2;)
            if (waitpid(-1, NULL, 0) > 0)
                n++;
    }
    double t0 = harness_now();
    CHECK_EQ(wait_code(p), want);
    CHECK_EQ(wait_code(q), want == 7 ? 0 : 255);
    CHECK(harness_now() - t0 < 1 * harness_timeout_mult());
    CHECK_EQ(tide_process_free(p), 0);
    CHECK_EQ(tide_process_free(q), 0);
    return NULL;
}

TEST(sigchld_set_to_sig_ign_does_not_hang_wait)
{
    struct sigaction ign = {.sa_handler = SIG_IGN};

    CHECK_EQ(sigaction(SIGCHLD, &ign, NULL), 0);
    CHECK_EQ(harness_run_body(reaped_elsewhere_body, NULL), 0);
    CHECK(no_children());
    CHECK(disposition(SIGCHLD) == SIG_IGN); /* given back */
    LEAK_GATE();
}

TEST(a_child_reaped_by_a_foreign_waitpid_does_not_hang_wait)
{
    CHECK_EQ(harness_run_body(reaped_elsewhere_body, "foreign"), 0);
    LEAK_GATE();
}

/* ---- what the child gets ------------------------------------------------ */

static void *child_state_body(void *arg)
{
    const char *status[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status",
                            NULL};
    const char *fdlist[] = {"ls", "/proc/self/fd", NULL};
    tide_process_options o = {.stdout_mode = TIDE_STDIO_PIPE};
    char buf[256];
    (void)arg;

    tide_process *p = start(status, &o);
    read_all(tide_process_stdout(p), buf, sizeof buf);
    CHECK_STR_EQ(buf,
                 "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    CHECK_EQ(wait_code(p), 0);
    CHECK_EQ(tide_process_free(p), 0);

    /* A stray fd without close-on-exec (int)arg is not passed on: ls sees
     * 0, 1, 2 and the directory it opened itself. */
    p = start(fdlist, &o);
    read_all(tide_process_stdout(p), buf, sizeof buf);
    CHECK_STR_EQ(buf, "0\n1\n2\n3\n");
    CHECK_EQ(wait_code(p), 0);
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

TEST(the_child_gets_a_clean_mask_default_signals_and_fds_0_to_2)
{
    sigset_t usr1;
    struct sigaction ign = {.sa_handler = SIG_IGN};

    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    CHECK_EQ(sigprocmask(SIG_BLOCK, &usr1, NULL), 0);
    CHECK_EQ(sigaction(SIGUSR2, &ign, NULL), 0);
    CHECK_EQ(sigaction(SIGHUP, &ign, NULL), 0);
    int stray = dup(2); /* no close-on-exec */
    CHECK(stray > 2);
    CHECK_EQ(harness_run_body(child_state_body, NULL), 0);
    close(stray);
    LEAK_GATE();
}

static void *own_fds_body(void *arg)
{
    const bool *before = arg;
    tide_process_options o = {.stdin_mode = TIDE_STDIO_PIPE,
                              .stdout_mode = TIDE_STDIO_PIPE,
                              .stderr_mode = TIDE_STDIO_PIPE};

    tide_process *p = shell("exec sleep 10", &o);
    int checked = 0;
    for (int fd = 3; fd < 256; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || before[fd])
            continue;
        CHECK(fl & FD_CLOEXEC);
        checked++;
    }
    CHECK(checked >= 4); /* the loop's, the three pipes, the pidfd */
    CHECK_EQ(tide_process_kill(p), 0);
    CHECK_EQ(wait_code(p), -SIGKILL);
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

TEST(tides_own_fds_are_close_on_exec)
{
    static bool before[256];

    for (int fd = 0; fd < 256; fd++)
        before[fd] = fcntl(fd, F_GETFD) >= 0;
    CHECK_EQ(harness_run_body(own_fds_body, before), 0);
    LEAK_GATE();
}

static void *stdio_body(void *arg)
{
    const char *dir = arg;
    char path[128], buf[256];
    const char *cat[] = {"cat", NULL};
    const char *pwd[] = {"pwd", NULL};
    const char *env_child[] = {"/bin/sh", "-c", "echo \"$TIDE_A:$HOME\"",
                               NULL};
    const char *env[] = {"TIDE_A=one", NULL};

    /* stdin from /dev/null: cat ends at once */
    tide_process_options o = {.stdin_mode = TIDE_STDIO_DEVNULL,
                              .stdout_mode = TIDE_STDIO_PIPE};
    tide_process *p = start(cat, &o);
    CHECK_EQ(read_all(tide_process_stdout(p), buf, sizeof buf), 0);
    CHECK_EQ(wait_code(p), 0);
    CHECK_EQ(tide_process_free(p), 0);

    /* stdout to a given fd (a file), stderr merged into it */
    snprintf(path, sizeof path, "%s/out", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    o = (tide_process_options){.stdout_mode = TIDE_STDIO_FD,
                               .stdout_fd = fd,
                               .stderr_mode = TIDE_STDIO_STDOUT};
    p = shell("echo out; echo err >&2", &o);
    CHECK_EQ(wait_code(p), 0);
    CHECK_EQ(tide_process_free(p), 0);
    CHECK_EQ(pread(fd, buf, sizeof buf - 1, 0), 8);
    buf[8] = '\0';
    CHECK_STR_EQ(buf, "out\nerr\n");
    close(fd);
    unlink(path);

    /* merged into a pipe; stdin a pipe */
    o = (tide_process_options){.stdin_mode = TIDE_STDIO_PIPE,
                               .stdout_mode = TIDE_STDIO_PIPE,
                               .stderr_mode = TIDE_STDIO_STDOUT};
    p = shell("read x; echo \"got $x\"; echo err >&2", &o);
    CHECK_NULL(tide_process_stderr(p));
    CHECK_EQ(tide_stream_write(tide_process_stdin(p), "hi\n", 3), 0);
    CHECK_EQ(tide_stream_write_eof(tide_process_stdin(p)), 0);
    read_all(tide_process_stdout(p), buf, sizeof buf);
    CHECK_STR_EQ(buf, "got hi\nerr\n");
    CHECK_EQ(wait_code(p), 0);
    CHECK_EQ(tide_process_free(p), 0);

    /* env replaces the environment; cwd */
    o = (tide_process_options){.stdout_mode = TIDE_STDIO_PIPE, .env = env};
    p = start(env_child, &o);
    read_all(tide_process_stdout(p), buf, sizeof buf);
    CHECK_STR_EQ(buf, "one:\n");
    CHECK_EQ(wait_code(p), 0);
    CHECK_EQ(tide_process_free(p), 0);
    o = (tide_process_options){.stdout_mode = TIDE_STDIO_PIPE, .cwd = dir};
    p = start(pwd, &o);
    read_all(tide_process_stdout(p), buf, sizeof buf);
    CHECK(strncmp(buf, dir, strlen(dir)) == 0);
    CHECK_EQ(wait_code(p), 0);
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

TEST(stdio_modes_env_and_cwd)
{
    char dir[] = "/tmp/tide-proc-XXXXXX";

    CHECK_NOT_NULL(mkdtemp(dir));
    CHECK_EQ(harness_run_body(stdio_body, dir), 0);
    rmdir(dir);
    LEAK_GATE();
}

/* ---- wait is the child's exit ------------------------------------------- */

static void *grandchild_body(void *arg)
{
    tide_process_options o = {.stdout_mode = TIDE_STDIO_PIPE};
    (void)arg;

    double t0 = harness_now();
    tide_process *p = shell("sleep 3 2>/dev/null & exit 3", &o);
    CHECK_EQ(wait_code(p), 3);
    CHECK(harness_now() - t0 < 1.5 * harness_timeout_mult());
    CHECK_EQ(tide_process_free(p), 0); /* the grandchild keeps its end */

    /* A child that closes its pipes and runs on is still waited for. */
    o.stderr_mode = TIDE_STDIO_PIPE;
    p = shell("exec >&- 2>&-; sleep 0.3; exit 4", &o);
    char buf[8];
    CHECK_EQ(read_all(tide_process_stdout(p), buf, sizeof buf), 0);
    int code;
    CHECK_ERR(tide_process_returncode(p, &code), -EAGAIN);
    CHECK_EQ(wait_code(p), 4);
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

TEST(wait_is_the_childs_exit_not_its_pipes)
{
    CHECK_EQ(harness_run_body(grandchild_body, NULL), 0);
    LEAK_GATE();
}

/* ---- no zombies ------------------------------------------------------- */

static void *freed_body(void *arg)
{
    pid_t *pids = arg;
    tide_process_options o = {.stdout_mode = TIDE_STDIO_PIPE};

    tide_process *p = shell("sleep 0.1", &o);
    pids[0] = tide_process_pid(p);
    CHECK_EQ(tide_process_free(p), 0); /* not waited for */
    p = shell("exec sleep 30", NULL);
    pids[1] = tide_process_pid(p);
    CHECK_EQ(tide_process_free(p), 0); /* still running at close */
    for (int i = 0; i < 200 && !gone(pids[0]); i++)
        CHECK_EQ(tide_sleep(0.01), 0);
    CHECK(gone(pids[0])); /* the loop reaped it */
    CHECK(!gone(pids[1]));
    return NULL;
}

TEST(a_freed_process_is_reaped_by_the_loop_or_killed_at_close)
{
    pid_t pids[2];

    double t0 = harness_now();
    CHECK_EQ(harness_run_body(freed_body, pids), 0);
    CHECK(gone(pids[1])); /* loop close killed and reaped it */
    CHECK(harness_now() - t0 < 2 * harness_timeout_mult());
    CHECK(no_children());
    LEAK_GATE();
}

static tide_process *kept;

static void *kept_body(void *arg)
{
    tide_process_options o = {.stdin_mode = TIDE_STDIO_PIPE,
                              .stdout_mode = TIDE_STDIO_PIPE};
    (void)arg;
    kept = shell("exec sleep 30", &o);
    return NULL;
}

TEST(a_process_outlives_its_loop_and_is_freed_after)
{
    int code;

    CHECK_EQ(harness_run_body(kept_body, NULL), 0);
    CHECK(no_children());
    CHECK_EQ(tide_process_returncode(kept, &code), 0);
    CHECK_EQ(code, -SIGKILL);
    CHECK_ERR(tide_process_kill(kept), -ESRCH);
    CHECK_ERR(tide_stream_fd(tide_process_stdout(kept)), -EINVAL);
    CHECK_EQ(tide_process_free(kept), 0);
    LEAK_GATE();
}

/* ---- cancellation ---------------------------------------------------- */

struct waiter {
    tide_process *p;
    int err;
};

static void *wait_task(void *arg)
{
    struct waiter *w = arg;
    w->err = tide_process_wait(w->p, NULL);
    return NULL;
}

static void *cancel_wait_body(void *arg)
{
    struct waiter *w = arg;
    int code;

    w->p = shell("exec sleep 30", NULL);
    tide_future *t = tide_create_task(NULL, wait_task, w);
    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK_ERR(tide_process_free(w->p), -EBUSY); /* a wait is suspended */
    CHECK(tide_future_cancel(t));
    CHECK_EQ(tide_await(t, NULL), 0);
    CHECK_ERR(w->err, -ECANCELED);
    /* without kill_on_cancel the child runs on */
    CHECK_ERR(tide_process_returncode(w->p, &code), -EAGAIN);
    tide_future_release(t);

    /* a timeout scope: -ETIMEDOUT, the child still runs */
    tide_timeout *sc = tide_timeout_begin(0.02);
    CHECK_NOT_NULL(sc);
    CHECK_ERR(tide_timeout_end(sc, tide_process_wait(w->p, &code)),
              -ETIMEDOUT);
    CHECK_EQ(tide_process_send_signal(w->p, 0), 0);
    CHECK_EQ(tide_process_kill(w->p), 0);
    CHECK_EQ(wait_code(w->p), -SIGKILL);
    CHECK_EQ(tide_process_free(w->p), 0);
    return NULL;
}

TEST(a_cancelled_wait_returns_and_the_child_runs_on)
{
    static struct waiter w;

    CHECK_EQ(harness_run_body(cancel_wait_body, &w), 0);
    LEAK_GATE();
}

static void *kill_on_cancel_body(void *arg)
{
    tide_process_options o = {.kill_on_cancel = true, .kill_grace = 0.2};
    int code;
    (void)arg;

    /* Exits on SIGTERM: -SIGTERM, well before the grace period ends. */
    tide_process *p = shell("exec sleep 30", &o);
    tide_timeout *sc = tide_timeout_begin(0.02);
    CHECK_NOT_NULL(sc);
    CHECK_ERR(tide_timeout_end(sc, tide_process_wait(p, &code)), -ETIMEDOUT);
    CHECK_EQ(tide_process_returncode(p, &code), 0);
    CHECK_EQ(code, -SIGTERM);
    CHECK_EQ(tide_process_free(p), 0);

    /* Ignores SIGTERM: SIGKILL after the grace period. */
    p = shell("trap '' TERM; while :; do sleep 0.02; done", &o);
    double t0 = harness_now();
    CHECK_EQ(tide_sleep(0.05), 0); /* let the shell set its trap */
    sc = tide_timeout_begin(0.02);
    CHECK_NOT_NULL(sc);
    CHECK_ERR(tide_timeout_end(sc, tide_process_wait(p, &code)), -ETIMEDOUT);
    CHECK_EQ(tide_process_returncode(p, &code), 0);
    CHECK_EQ(code, -SIGKILL);
    double took = harness_now() - t0;
    CHECK(took >= 0.2);
    CHECK(took < 2 * harness_timeout_mult());
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

TEST(kill_on_cancel_escalates_to_sigkill)
{
    CHECK_EQ(harness_run_body(kill_on_cancel_body, NULL), 0);
    LEAK_GATE();
}

struct talker {
    tide_process *p;
    tide_process_output out;
    int err;
};

static void *communicate_task(void *arg)
{
    struct talker *t = arg;
    t->err = tide_process_communicate(t->p, "abc", 3, NULL, &t->out);
    return NULL;
}

static void *read_task(void *arg)
{
    struct talker *t = arg;
    const void *data;
    t->err = (int)tide_stream_read(tide_process_stdout(t->p), 10, &data);
    return NULL;
}

static void *cancel_points_body(void *arg)
{
    struct talker *t = arg;
    tide_process_options o = {.stdin_mode = TIDE_STDIO_PIPE,
                              .stdout_mode = TIDE_STDIO_PIPE};
    const void *data;

    /* communicate, with a child that never ends its output */
    t->p = shell("cat; exec sleep 30", &o);
    tide_future *f = tide_create_task(NULL, communicate_task, t);
    CHECK_NOT_NULL(f);
    CHECK_EQ(tide_sleep(0.05), 0);
    CHECK(tide_future_cancel(f));
    CHECK_EQ(tide_await(f, NULL), 0);
    CHECK_ERR(t->err, -ECANCELED);
    CHECK_NULL(t->out.out); /* what was read is dropped */
    CHECK_EQ(tide_process_kill(t->p), 0);
    CHECK_EQ(wait_code(t->p), -SIGKILL);
    tide_future_release(f);
    CHECK_EQ(tide_process_free(t->p), 0);

    /* a read of a pipe: cancelled, then the bytes come to the next read */
    t->p = shell("read x; echo late", &o);
    f = tide_create_task(NULL, read_task, t);
    CHECK_NOT_NULL(f);
    CHECK_EQ(tide_sleep(0.01), 0);
    CHECK(tide_future_cancel(f));
    CHECK_EQ(tide_await(f, NULL), 0);
    CHECK_ERR(t->err, -ECANCELED);
    CHECK_EQ(tide_stream_write(tide_process_stdin(t->p), "\n", 1), 0);
    CHECK_EQ(tide_stream_readline(tide_process_stdout(t->p), &data), 5);
    CHECK(memcmp(data, "late\n", 5) == 0);
    CHECK_EQ(wait_code(t->p), 0);
    tide_future_release(f);
    CHECK_EQ(tide_process_free(t->p), 0);

    /* communicate with kill_on_cancel under a timeout scope */
    o.kill_on_cancel = true;
    t->p = shell("cat; exec sleep 30", &o);
    tide_timeout *sc = tide_timeout_begin(0.05);
    CHECK_NOT_NULL(sc);
    int code;
    CHECK_ERR(tide_timeout_end(sc, tide_process_communicate(t->p, "x", 1,
                                                            &code, &t->out)),
              -ETIMEDOUT);
    CHECK_EQ(tide_process_returncode(t->p, &code), 0);
    CHECK_EQ(code, -SIGTERM);
    CHECK_EQ(tide_process_free(t->p), 0);
    return NULL;
}

TEST(cancellation_at_each_suspension_point)
{
    static struct talker t;

    CHECK_EQ(harness_run_body(cancel_points_body, &t), 0);
    LEAK_GATE();
}

/* HAZARDS B38c: many children, half of their waiters cancelled. */
#define SLEEPERS 200

static void *sleeper_task(void *arg)
{
    const char *argv[] = {"sleep", "5", NULL};
    tide_process_options o = {.stdout_mode = TIDE_STDIO_PIPE,
                              .kill_on_cancel = true};
    tide_process *p = NULL;
    int code = 0;
    (void)arg;

    CHECK_EQ(tide_create_subprocess_exec(argv, &o, &p), 0);
    int err = tide_process_wait(p, &code);
    CHECK_EQ(tide_process_free(p), 0);
    return err < 0 ? tide_fail(err) : (void *)(intptr_t)code;
}

static void *half_cancelled_body(void *arg)
{
    static tide_future *ts[SLEEPERS];
    (void)arg;

    long fds = harness_fd_count();
    for (int i = 0; i < SLEEPERS; i++)
        CHECK_NOT_NULL(ts[i] = tide_create_task(NULL, sleeper_task, NULL));
    CHECK_EQ(tide_sleep(0.05), 0); /* some have started, some not yet */
    for (int i = 0; i < SLEEPERS; i += 2)
        tide_future_cancel(ts[i]);
    for (int i = 0; i < SLEEPERS; i += 2) {
        CHECK_ERR(tide_await(ts[i], NULL), -ECANCELED);
        tide_future_release(ts[i]);
    }
    /* the others': a pipe each, and a pidfd where there are pidfds */
    long each = tide__spawn_uses_pidfd() ? 2 : 1;
    CHECK_EQ(harness_fd_count(), fds + each * SLEEPERS / 2);
    for (int i = 1; i < SLEEPERS; i += 2)
        tide_future_release(ts[i]); /* the loop holds them while pending */
    return NULL; /* the rest: killed and reaped by the loop's close */
}

TEST(half_of_200_waiters_cancelled_no_zombie_no_fd_left)
{
    if (HARNESS_VALGRIND)
        SKIP("200 processes under memcheck take too long");
    long fds = harness_fd_count();
    double t0 = harness_now();
    CHECK_EQ(harness_run_body(half_cancelled_body, NULL), 0);
    CHECK(harness_now() - t0 < 3 * harness_timeout_mult());
    CHECK(no_children());
    CHECK_EQ(harness_fd_count(), fds);
    LEAK_GATE();
}

/* ---- communicate ------------------------------------------------------ */

static void *communicate_body(void *arg)
{
    size_t n = *(size_t *)arg;
    tide_process_options o = {.stdin_mode = TIDE_STDIO_PIPE,
                              .stdout_mode = TIDE_STDIO_PIPE,
                              .stderr_mode = TIDE_STDIO_PIPE};
    tide_process_output out;
    int code = -1;

    tide_process *p = shell("cat; echo done >&2; exit 2", &o);
    CHECK_EQ(tide_process_communicate(p, "hello", 5, &code, &out), 0);
    CHECK_EQ(code, 2);
    CHECK_EQ(out.out_len, 5);
    CHECK_STR_EQ(out.out, "hello");
    CHECK_STR_EQ(out.err, "done\n");
    tide_process_output_free(&out);
    CHECK_NULL(tide_process_stdin(p)); /* communicate closed it */
    CHECK_EQ(tide_process_free(p), 0);

    /* n bytes each way through cat: feeding and draining at once */
    char *in = malloc(n);
    CHECK_NOT_NULL(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)(i % 251);
    p = shell("cat", &o);
    CHECK_EQ(tide_process_communicate(p, in, n, &code, &out), 0);
    CHECK_EQ(code, 0);
    CHECK_EQ(out.out_len, n);
    CHECK(memcmp(out.out, in, n) == 0);
    CHECK_EQ(out.err_len, 0);
    tide_process_output_free(&out);
    CHECK_EQ(tide_process_free(p), 0);

    /* a child that exits without reading its input: not an error */
    p = shell("exit 0", &o);
    CHECK_EQ(tide_process_communicate(p, in, n < 1 << 20 ? n : 1 << 20, &code,
                                      NULL),
             0);
    CHECK_EQ(code, 0);
    CHECK_EQ(tide_process_free(p), 0);
    free(in);
    return NULL;
}

TEST(communicate_feeds_and_drains_100_mib_each_way)
{
    size_t n = (size_t)100 << 20;

    if (HARNESS_VALGRIND || HARNESS_ASAN || HARNESS_TSAN)
        n = (size_t)8 << 20; /* the same paths, within the time limit */
    CHECK_EQ(harness_run_body(communicate_body, &n), 0);
    LEAK_GATE();
}

/* ---- many children --------------------------------------------------- */

#define MANY 1000
#define AT_ONCE 64

static void *short_lived(void *sem)
{
    const char *ok[] = {"true", NULL};
    tide_process *p = NULL;

    CHECK_EQ(tide_semaphore_acquire(sem), 0);
    CHECK_EQ(tide_create_subprocess_exec(ok, NULL, &p), 0);
    CHECK_EQ(wait_code(p), 0);
    CHECK_EQ(tide_process_free(p), 0);
    CHECK_EQ(tide_semaphore_release(sem), 0);
    return NULL;
}

static void *many_body(void *arg)
{
    static tide_future *ts[MANY];
    (void)arg;

    long fds = harness_fd_count();
    tide_semaphore *sem = tide_semaphore_new(AT_ONCE);
    CHECK_NOT_NULL(sem);
    for (int i = 0; i < MANY; i++)
        CHECK_NOT_NULL(ts[i] = tide_create_task(NULL, short_lived, sem));
    for (int i = 0; i < MANY; i++) {
        CHECK_EQ(tide_await(ts[i], NULL), 0);
        tide_future_release(ts[i]);
    }
    tide_semaphore_free(sem);
    CHECK_EQ(harness_fd_count(), fds);
    CHECK(no_children());
    CHECK_EQ(zombies(), 0);
    return NULL;
}

TEST(a_thousand_short_lived_children_leave_the_fd_count_unchanged)
{
    if (HARNESS_VALGRIND)
        SKIP("a thousand processes under memcheck take too long");
    CHECK_EQ(harness_run_body(many_body, NULL), 0);
    LEAK_GATE();
}

/* ---- fork ------------------------------------------------------------ */

static void *fork_body(void *arg)
{
    tide_process *p[3];
    (void)arg;

    for (int i = 0; i < 3; i++) {
        char cmd[32];
        snprintf(cmd, sizeof cmd, "sleep 0.2; exit %d", 10 + i);
        p[i] = shell(cmd, NULL);
    }
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        /* Not the forked process's children: it cannot take them. */
        int bad = waitpid(-1, NULL, WNOHANG | __WALL) != -1 ||
                  !gone(tide_process_pid(p[0]));
        _exit(bad ? 1 : 0);
    }
    int st;
    CHECK_EQ(waitpid(child, &st, 0), child);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(wait_code(p[i]), 10 + i);
        CHECK_EQ(tide_process_free(p[i]), 0);
    }
    return NULL;
}

TEST(fork_in_the_parent_while_children_run)
{
    CHECK_EQ(harness_run_body(fork_body, NULL), 0);
    LEAK_GATE();
}

/* ---- compact tasks --------------------------------------------------- */

static void *compact_body(void *arg)
{
    tide_process_options o = {.stdin_mode = TIDE_STDIO_PIPE,
                              .stdout_mode = TIDE_STDIO_PIPE};
    tide_process_output out;
    char line[64];
    int code = -1;
    (void)arg;

    tide_process *p = shell("cat", &o);
    CHECK_EQ(tide_process_communicate(p, "compact\n", 8, &code, &out), 0);
    CHECK_EQ(code, 0);
    CHECK_STR_EQ(out.out, "compact\n");
    tide_process_output_free(&out);
    CHECK_EQ(tide_process_free(p), 0);

    p = shell("echo hi; exit 6", &o);
    CHECK_EQ(read_all(tide_process_stdout(p), line, sizeof line), 3);
    CHECK_EQ(wait_code(p), 6);
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

TEST(compact_tasks_wait_and_communicate)
{
    tide_task_options opt = {.compact = true};

    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    tide_future *a = tide_create_task_ex(loop, compact_body, NULL, &opt);
    tide_future *b = tide_create_task_ex(loop, compact_body, NULL, &opt);
    CHECK(a && b);
    CHECK_EQ(tide_run_until_complete(loop, a, NULL), 0);
    CHECK_EQ(tide_run_until_complete(loop, b, NULL), 0);
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- outside a task -------------------------------------------------- */

TEST(outside_a_task_wait_is_eperm_until_the_child_has_exited)
{
    const char *ok[] = {"true", NULL};
    tide_process *p = NULL;
    int code = -1;

    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    tide_set_event_loop(loop);
    CHECK_EQ(tide_create_subprocess_exec(ok, NULL, &p), 0);
    CHECK_ERR(tide_process_wait(p, &code), -EPERM);
    for (int i = 0; i < 500 && tide_process_returncode(p, &code) < 0; i++) {
        usleep(2000);
        run_once(loop);
    }
    CHECK_EQ(tide_process_wait(p, &code), 0);
    CHECK_EQ(code, 0);
    CHECK_EQ(tide_process_free(p), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- faults ---------------------------------------------------------- */

static atomic_bool storm_on;
static atomic_long storm_seen;

static void storm_handler(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&storm_seen, 1, memory_order_relaxed);
}

static void *storm_thread(void *target)
{
    pthread_t t = *(pthread_t *)target;

    while (atomic_load(&storm_on)) {
        pthread_kill(t, SIGUSR2);
        usleep(50);
    }
    return NULL;
}

static void *storm_body(void *arg)
{
    tide_process_options o = {.stdin_mode = TIDE_STDIO_PIPE,
                              .stdout_mode = TIDE_STDIO_PIPE,
                              .stderr_mode = TIDE_STDIO_DEVNULL};
    static char in[1 << 20];
    (void)arg;

    memset(in, 'x', sizeof in);
    for (int i = 0; i < 20; i++) {
        tide_process_output out;
        int code = -1;
        tide_process *p = shell(i % 2 ? "cat" : "cat; exit 3", &o);
        CHECK_EQ(tide_process_communicate(p, in, sizeof in, &code, &out), 0);
        CHECK_EQ(code, i % 2 ? 0 : 3);
        CHECK_EQ(out.out_len, sizeof in);
        tide_process_output_free(&out);
        CHECK_EQ(tide_process_free(p), 0);
        p = shell("exit 5", NULL);
        CHECK_EQ(wait_code(p), 5);
        CHECK_EQ(tide_process_free(p), 0);
    }
    return NULL;
}

TEST(a_signal_storm_while_children_exit_lets_no_eintr_out)
{
    struct sigaction sa = {.sa_handler = storm_handler}; /* no SA_RESTART */
    pthread_t self = pthread_self(), th;

    CHECK_EQ(sigaction(SIGUSR2, &sa, NULL), 0); /* debug mode has SIGUSR1 */
    atomic_store(&storm_on, true);
    CHECK_EQ(pthread_create(&th, NULL, storm_thread, &self), 0);
    int err = harness_run_body(storm_body, NULL);
    atomic_store(&storm_on, false);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(err, 0);
    CHECK(atomic_load(&storm_seen) > 0);
    LEAK_GATE();
}

static void *emfile_body(void *arg)
{
    tide_process_options o = {.stdin_mode = TIDE_STDIO_PIPE,
                              .stdout_mode = TIDE_STDIO_PIPE,
                              .stderr_mode = TIDE_STDIO_PIPE};
    const char *ok[] = {"true", NULL};
    struct rlimit *lim = arg;
    tide_process *p = NULL;
    int err = 0;

    long fds = harness_fd_count();
    struct rlimit low = {(rlim_t)fds + 3, lim->rlim_max};
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    err = tide_create_subprocess_exec(ok, &o, &p);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, lim), 0);
    CHECK_ERR(err, -EMFILE);
    CHECK_NULL(p);
    CHECK_EQ(harness_fd_count(), fds);
    CHECK(no_children());
    return NULL;
}

TEST(out_of_fds_is_emfile_with_nothing_left)
{
    struct rlimit lim;

    if (HARNESS_VALGRIND)
        SKIP("valgrind keeps fds of its own above the limit it shows");

    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
    CHECK_EQ(harness_run_body(emfile_body, &lim), 0);
    LEAK_GATE();
}

/* ---- how children are tracked: pidfds, or SIGCHLD without them ---------
 * The whole file runs twice (tests/CMakeLists.txt): as the kernel has it
 * (pidfds here), and with TIDE__PIDFD=0, which makes tide track children
 * by pid and SIGCHLD as it does on kernels before 5.3. */

static bool forced_fallback(void)
{
    const char *e = getenv("TIDE__PIDFD");

    return e && e[0] == '0';
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

/* Whether this kernel (or valgrind, which lacks pidfd_open before 3.20)
 * gives pidfds. */
static bool kernel_has_pidfds(void)
{
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

    if (fd < 0)
        return errno != ENOSYS;
    close(fd);
    return true;
}

TEST(the_tracking_is_the_one_asked_for)
{
    CHECK_EQ(tide__spawn_uses_pidfd(),
             !forced_fallback() && kernel_has_pidfds());
    LEAK_GATE();
}

/* While a child runs, SIGCHLD is tide's only without pidfds, and what it
 * was once the last child is reaped. */
static void (*chld_before)(int); /* SIGCHLD's disposition before the loop */

static void *disposition_body(void *arg)
{
    (void)arg;
    const char *argv[] = {"sleep", "0.05", NULL};

    tide_process *p = start(argv, NULL);
    if (tide__spawn_uses_pidfd())
        CHECK(disposition(SIGCHLD) == chld_before);
    else
        CHECK(disposition(SIGCHLD) != chld_before);
    CHECK_EQ(wait_code(p), 0);
    CHECK(disposition(SIGCHLD) == chld_before); /* no child left to watch */
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

static void plain_sigchld(int sig)
{
    (void)sig;
}

TEST(sigchld_is_held_only_while_children_are_watched_by_it)
{
    struct sigaction mine = {.sa_handler = plain_sigchld};

    chld_before = SIG_DFL;
    CHECK_EQ(harness_run_body(disposition_body, NULL), 0);
    CHECK_EQ(sigaction(SIGCHLD, &mine, NULL), 0);
    chld_before = plain_sigchld;
    CHECK_EQ(harness_run_body(disposition_body, NULL), 0);
    LEAK_GATE();
}

/* The program's own SIGCHLD handler on the loop runs beside tide's watch
 * and sees every exit's delivery; removing it changes nothing for the
 * children. */
static atomic_int handler_runs;

static void on_chld(void *arg)
{
    (void)arg;
    atomic_fetch_add(&handler_runs, 1);
}

static void *own_handler_body(void *arg)
{
    tide_loop *loop = tide_get_event_loop();
    (void)arg;

    CHECK_EQ(tide_add_signal_handler(loop, SIGCHLD, on_chld, NULL), 0);
    for (int i = 0; i < 5; i++) {
        tide_process *p = shell("exit 4", NULL);
        CHECK_EQ(wait_code(p), 4);
        CHECK_EQ(tide_process_free(p), 0);
    }
    /* Each wait ended once the exit was seen: its SIGCHLD came first. */
    for (int i = 0; i < 50 && atomic_load(&handler_runs) < 5; i++)
        CHECK_EQ(tide_sleep(0.005), 0);
    CHECK(atomic_load(&handler_runs) >= 1);
    tide_process *p = shell("sleep 0.05; exit 6", NULL);
    CHECK_EQ(tide_remove_signal_handler(loop, SIGCHLD), 1);
    CHECK_EQ(wait_code(p), 6); /* tide's watch stays */
    CHECK_EQ(tide_process_free(p), 0);
    return NULL;
}

TEST(the_programs_own_sigchld_handler_still_runs)
{
    CHECK_EQ(harness_run_body(own_handler_body, NULL), 0);
    CHECK(disposition(SIGCHLD) == SIG_DFL);
    CHECK(no_children());
    LEAK_GATE();
}

/* A child the program forked itself is never reaped by tide, whichever
 * way tide tracks its own: its zombie stays for the program to wait. */
static void *foreign_child_body(void *arg)
{
    pid_t *foreign = arg;

    tide_process *p = shell("sleep 0.05; exit 2", NULL);
    *foreign = fork();
    CHECK(*foreign >= 0);
    if (*foreign == 0)
        _exit(42);
    tide_process *q = shell("sleep 0.1; exit 3", NULL);
    CHECK_EQ(wait_code(p), 2);
    CHECK_EQ(wait_code(q), 3); /* SIGCHLDs for all three have come */
    CHECK_EQ(tide_process_free(p), 0);
    CHECK_EQ(tide_process_free(q), 0);
    CHECK(!gone(*foreign));
    return NULL;
}

TEST(a_child_the_program_forked_is_never_reaped_by_tide)
{
    pid_t foreign = -1;
    int st = 0;

    CHECK_EQ(harness_run_body(foreign_child_body, &foreign), 0);
    CHECK_EQ(zombies(), 1); /* the program's own, until it waits */
    CHECK_EQ(waitpid(foreign, &st, 0), foreign);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42);
    CHECK_EQ(zombies(), 0);
    LEAK_GATE();
}

/* Two loops in two threads, each with its own children (exit codes that
 * say whose): every SIGCHLD goes to both, and each reaps only its own. */
#define PER_LOOP 30

static void *own_children_body(void *arg)
{
    int base = (int)(intptr_t)arg;
    tide_process *p[PER_LOOP];

    for (int i = 0; i < PER_LOOP; i++) {
        char cmd[48];
        snprintf(cmd, sizeof cmd, "sleep 0.0%d; exit %d", i % 7, base + i);
        p[i] = shell(cmd, NULL);
    }
    for (int i = 0; i < PER_LOOP; i++) {
        CHECK_EQ(wait_code(p[i]), base + i);
        CHECK_EQ(tide_process_free(p[i]), 0);
    }
    return NULL;
}

static void *loop_thread(void *arg)
{
    CHECK_EQ(harness_run_body(own_children_body, arg), 0);
    return NULL;
}

TEST(two_loops_in_two_threads_each_reap_their_own)
{
    pthread_t a, b;

    long fds = harness_fd_count();
    CHECK_EQ(pthread_create(&a, NULL, loop_thread, (void *)(intptr_t)100), 0);
    CHECK_EQ(pthread_create(&b, NULL, loop_thread, (void *)(intptr_t)200), 0);
    CHECK_EQ(pthread_join(a, NULL), 0);
    CHECK_EQ(pthread_join(b, NULL), 0);
    CHECK(no_children());
    CHECK_EQ(zombies(), 0);
    CHECK_EQ(harness_fd_count(), fds);
    CHECK(disposition(SIGCHLD) == SIG_DFL);
    LEAK_GATE();
}

/* Every allocation of a start failing in turn: -ENOMEM with nothing left
 * (no fd, no child, SIGCHLD as it was), or a child that works. */
static void *enomem_body(void *arg)
{
    tide_process_options o = {.stdout_mode = TIDE_STDIO_PIPE};
    const char *argv[] = {"true", NULL};
    int failures = 0, starts = 0;
    (void)arg;

    long fds = harness_fd_count();
    for (long n = 1; n <= 20; n++) {
        tide_process *p = NULL;
        tide__alloc_fail_after(n);
        int err = tide_create_subprocess_exec(argv, &o, &p);
        tide__alloc_fail_after(0);
        if (err == 0) {
            CHECK_EQ(wait_code(p), 0);
            CHECK_EQ(tide_process_free(p), 0);
            starts++;
            continue;
        }
        CHECK_ERR(err, -ENOMEM);
        CHECK_NULL(p);
        CHECK_EQ(harness_fd_count(), fds);
        CHECK(no_children());
        CHECK(disposition(SIGCHLD) == SIG_DFL);
        failures++;
    }
    CHECK(failures >= 3); /* record, event, and the rest */
    CHECK(starts >= 1);
    return NULL;
}

TEST(out_of_memory_at_each_allocation_of_a_start_leaves_nothing)
{
    CHECK_EQ(harness_run_body(enomem_body, NULL), 0);
    LEAK_GATE();
}

/* Exits whose SIGCHLD never reaches tide: SIGCHLD blocked in the (only)
 * thread, then SIGCHLD set to SIG_IGN while a child runs (the kernel
 * reaps it, and no signal comes). With pidfds neither matters; without,
 * the reaper's patrol (a sweep a second) sees them. */
static void *unheard_body(void *arg)
{
    sigset_t chld;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    (void)arg;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &chld, NULL), 0);
    double t0 = harness_now();
    tide_process *p = shell("exit 5", NULL);
    CHECK_EQ(wait_code(p), 5); /* not reaped by anyone: its status */
    CHECK(harness_now() - t0 < 2.5 * harness_timeout_mult());
    CHECK_EQ(tide_process_free(p), 0);
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &chld, NULL), 0);

    p = shell("sleep 0.1; exit 6", NULL);
    CHECK_EQ(sigaction(SIGCHLD, &ign, &old), 0);
    t0 = harness_now();
    int want =
        tide__spawn_uses_pidfd() && kernel_keeps_exit_status() ? 6 : 255;
    CHECK_EQ(wait_code(p), want);
    CHECK(harness_now() - t0 < 2.5 * harness_timeout_mult());
    CHECK_EQ(tide_process_free(p), 0);
    CHECK_EQ(sigaction(SIGCHLD, &old, NULL), 0);
    return NULL;
}

TEST(an_exit_whose_sigchld_never_comes_still_ends_wait)
{
    CHECK_EQ(harness_run_body(unheard_body, NULL), 0);
    CHECK(no_children());
    LEAK_GATE();
}

/* On the virtual clock (no patrol there: it would be what moves time),
 * a wait still ends with the child's exit, and a virtual sleep beside it
 * takes no real time. */
static void *virtual_body(void *arg)
{
    (void)arg;
    double t0 = harness_now();
    tide_process *p = shell("sleep 0.05; exit 3", NULL);
    CHECK_EQ(tide_sleep(30), 0); /* virtual: at once */
    tide_loop_stats s0, s1;
    CHECK_EQ(tide_loop_get_stats(NULL, &s0), 0);
    CHECK_EQ(wait_code(p), 3);
    CHECK_EQ(tide_loop_get_stats(NULL, &s1), 0);
    /* The loop slept in its poll meanwhile: it did not spin. */
    CHECK(s1.iterations - s0.iterations < 20);
    CHECK_EQ(tide_process_free(p), 0);
    CHECK(harness_now() - t0 < 1 * harness_timeout_mult());
    return NULL;
}

TEST(a_wait_on_the_virtual_clock_ends_with_the_exit)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_virtual_clock(loop, true), 0);
    tide_future *t = tide_create_task(loop, virtual_body, NULL);
    CHECK_NOT_NULL(t);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK(no_children());
    LEAK_GATE();
}
