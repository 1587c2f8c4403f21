/* Starting a child process: clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)
 * and exec, the one place tide makes a process (process.c calls it).
 *
 * glibc 2.36 has no pidfd_spawn, and posix_spawn gives no pidfd, so the
 * child is made as posix_spawn makes it, by clone with CLONE_VM and
 * CLONE_VFORK (no copy of the parent's memory; the calling thread waits
 * until the child has exec'd or exited), with CLONE_PIDFD: the pidfd
 * comes with the child, atomically, so no reused pid can ever stand for
 * it. No exit signal is asked for, so a child that fails to exec exits
 * without a SIGCHLD (exec itself makes the exit signal SIGCHLD again,
 * Linux's de_thread). The caller reaps with waitid(P_PIDFD, __WALL).
 *
 * The child runs child_main on a stack of its own, sharing the parent's
 * memory, with every signal blocked (the parent blocks them all around
 * clone, so no handler of the parent runs in the child). It makes only
 * raw system calls (async-signal-safe, and no sanitizer interceptor is
 * reached): every signal to its default disposition, its stdio fds in
 * place, every other fd closed (close_range; were it missing, tide's fds
 * are close-on-exec anyway), the working directory, an empty signal
 * mask, then execve over the $PATH candidates the parent prepared. If
 * exec fails, the child writes its errno into a close-on-exec pipe and
 * exits 127; the parent reads that pipe (end of file at once when the
 * exec worked), reaps the child and returns the error. A pipe and not
 * the shared memory: valgrind runs a CLONE_VFORK child as a fork.
 *
 * Without pidfds (Linux before 5.3: no CLONE_PIDFD, which 5.2 added, or
 * no pidfd_open, which came with pollable pidfds in 5.3) the child is
 * made the same way without CLONE_PIDFD, and the caller tracks it by its
 * pid and SIGCHLD (process.c). Which of the two runs is decided once per
 * process, at the first spawn: TIDE__PIDFD=0 in the environment (for
 * tests) forces the fallback; else pidfd_open on ourselves, ENOSYS
 * meaning none; and a clone that refuses CLONE_PIDFD (EINVAL), or one
 * that ignores it (no pidfd written), turns the fallback on for good.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "base/alloc.h"
#include "base/sanitize.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

extern char **environ;

/* ThreadSanitizer intercepts clone() to treat it as a fork, which breaks
 * its record of tide's fibers in the parent (every later switch is
 * reported as a race); the child here runs no instrumented code, so
 * under TSan glibc's own entry point, which it does not intercept, is
 * called. */
#if defined(TIDE__TSAN) && defined(__GLIBC__)
extern int __clone(int (*fn)(void *), void *stack, int flags, void *arg, ...);
#define spawn_clone __clone
#else
#define spawn_clone clone
#endif

#define CHILD_STACK ((size_t)32 * 1024)
#define KSIGSET_BYTES 8 /* the kernel's sigset_t, for _NSIG 64 */

struct child {
    const struct tide__spawn *sp;
    char *const *paths; /* execve candidates, NULL-terminated */
    char *const *envp;
    int report; /* write end of the error pipe (close-on-exec) */
};

#if defined(__clang__)
#define CHILD_CODE \
    __attribute__((no_sanitize("address", "thread", "undefined")))
#else
#define CHILD_CODE                                          \
    __attribute__((no_sanitize_address, no_sanitize_thread, \
                   no_sanitize_undefined, optimize("no-stack-protector")))
#endif

/* Report err to the parent (through fd `report`) and end the child. */
CHILD_CODE static void child_fail(int report, int err)
{
    (void)syscall(SYS_write, report, &err, sizeof err);
    syscall(SYS_exit_group, 127);
}

/* Runs in the child, in the parent's memory, until exec: raw system
 * calls only. */
CHILD_CODE static int child_main(void *arg)
{
    const struct child *c = arg;
    const struct tide__spawn *sp = c->sp;
    unsigned long dfl[4] = {0}; /* struct kernel_sigaction: SIG_DFL */
    unsigned long none = 0;
    int src[3];

    for (int sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)syscall(SYS_rt_sigaction, sig, dfl, NULL, KSIGSET_BYTES);
    /* A parent without fds 0, 1 or 2 (a daemon) may have the report pipe
     * there, where the stdio placed below would overwrite it: above 2
     * first (close-on-exec; the old one is left to exec or the dup3). */
    int report = c->report;
    if (report < 3) {
        report = (int)syscall(SYS_fcntl, report, F_DUPFD_CLOEXEC, 3);
        if (report < 0)
            child_fail(c->report, errno);
    }
    /* Move every source above 2 first, so that placing one cannot
     * overwrite another (a source may be 0, 1 or 2 itself). */
    for (int i = 0; i < 3; i++) {
        src[i] = sp->fds[i];
        if (src[i] >= 0) {
            src[i] = (int)syscall(SYS_fcntl, src[i], F_DUPFD_CLOEXEC, 3);
            if (src[i] < 0)
                child_fail(report, errno);
        }
    }
    for (int i = 0; i < 3; i++) {
        int from = src[i];
        if (from == TIDE__SPAWN_STDOUT)
            from = 1;
        if (from != -1 && syscall(SYS_dup3, from, i, 0) < 0)
            child_fail(report, errno);
    }
    /* Everything but 0, 1, 2 and the report pipe (close-on-exec). */
    if (report > 3)
        (void)syscall(SYS_close_range, 3, report - 1, 0);
    (void)syscall(SYS_close_range, report + 1, ~0U, 0);
    if (sp->cwd && syscall(SYS_chdir, sp->cwd) < 0)
        child_fail(report, errno);
    (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, KSIGSET_BYTES);
    int err = ENOENT;
    bool denied = false;
    for (char *const *p = c->paths; *p; p++) {
        syscall(SYS_execve, *p, sp->argv, c->envp);
        err = errno;
        if (err == EACCES)
            denied = true;
        else if (err != ENOENT && err != ENOTDIR)
            break; /* as execvp: a real error of an existing file */
    }
    child_fail(report,
               denied && (err == ENOENT || err == ENOTDIR) ? EACCES : err);
    return 127;
}

/* The execve candidates for argv[0]: itself if it has a '/', else each
 * $PATH directory (empty: the current one) joined to it, in one
 * allocation; NULL (ENOMEM). */
static char **candidates(const char *name)
{
    const char *path = strchr(name, '/') ? "" : getenv("PATH");
    size_t nlen = strlen(name);

    if (!path)
        path = "/bin:/usr/bin";
    if (!*path) { /* a name with a '/' is the one candidate */
        char **v = tide__malloc(2 * sizeof *v + nlen + 1);
        if (!v)
            return NULL;
        v[0] = memcpy((char *)(v + 2), name, nlen + 1);
        v[1] = NULL;
        return v;
    }
    size_t n = 1;
    for (const char *q = path; *q; q++)
        n += *q == ':';
    size_t bytes = (n + 1) * sizeof(char *) + strlen(path) + n * (nlen + 3);
    char **v = tide__malloc(bytes);
    if (!v)
        return NULL;
    char *out = (char *)(v + n + 1);
    const char *dir = path;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(dir, ':');
        size_t dlen = end ? (size_t)(end - dir) : strlen(dir);
        v[i] = out;
        if (dlen == 0)
            *out++ = '.';
        memcpy(out, dir, dlen);
        out += dlen;
        *out++ = '/';
        memcpy(out, name, nlen + 1);
        out += nlen + 1;
        dir = end ? end + 1 : dir + dlen;
    }
    v[n] = NULL;
    return v;
}

/* Block every signal in this thread (SIGCANCEL and SIGSETXID too, which
 * pthread_sigmask would leave out); the old mask in *old. */
static void block_all(unsigned long *old)
{
    unsigned long all = ~0UL;

    (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, old, KSIGSET_BYTES);
}

static void restore_mask(const unsigned long *old)
{
    (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, old, NULL, KSIGSET_BYTES);
}

/* Read the child's report: 0 if exec worked (end of file), its errno. */
static int read_report(int fd)
{
    int err = 0;
    ssize_t n;

    do
        n = read(fd, &err, sizeof err);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof err ? err : 0;
}

/* Which way children are tracked, decided once per process: a pidfd
 * each (PIDS_FD), or pid and SIGCHLD (PIDS_SIGCHLD). Relaxed: every
 * thread that decides decides the same, except a clone refusing
 * CLONE_PIDFD, which only ever moves it to PIDS_SIGCHLD. */
enum { PIDS_UNKNOWN, PIDS_FD, PIDS_SIGCHLD };
static atomic_int pids_mode;

static int decide_mode(void)
{
    const char *force = getenv("TIDE__PIDFD");

    if (force && force[0] == '0')
        return PIDS_SIGCHLD;
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (fd >= 0) {
        close(fd);
        return PIDS_FD;
    }
    if (errno == ENOSYS)
        return PIDS_SIGCHLD;
    return PIDS_UNKNOWN; /* out of fds, say: try pidfds, decide later */
}

bool tide__spawn_uses_pidfd(void)
{
    int mode = atomic_load_explicit(&pids_mode, memory_order_relaxed);

    if (mode == PIDS_UNKNOWN) {
        mode = decide_mode();
        if (mode != PIDS_UNKNOWN)
            atomic_store_explicit(&pids_mode, mode, memory_order_relaxed);
    }
    return mode != PIDS_SIGCHLD;
}

/* clone the child with every signal blocked; its pid (and *fd, with
 * CLONE_PIDFD), or -errno. */
static pid_t clone_child(struct child *c, char *stack, bool pidfd, int *fd)
{
    unsigned long old;
    int flags = CLONE_VM | CLONE_VFORK | (pidfd ? CLONE_PIDFD : 0);

    block_all(&old);
    /* The exit signal (the low byte of the flags) is 0: see above. */
    pid_t child = spawn_clone(child_main, stack + CHILD_STACK, flags, c, fd);
    int err = child < 0 ? -errno : 0;
    restore_mask(&old);
    return err < 0 ? err : child;
}

/* Reap a child that failed to exec (it exits at once). */
static void reap_failed(pid_t child, int fd)
{
    siginfo_t info;
    idtype_t type = fd >= 0 ? (idtype_t)P_PIDFD : P_PID;
    id_t id = fd >= 0 ? (id_t)fd : (id_t)child;

    while (waitid(type, id, &info, WEXITED | __WALL) < 0 && errno == EINTR)
        ;
    if (fd >= 0)
        close(fd);
}

int tide__spawn(const struct tide__spawn *sp, pid_t *pid, int *pidfd)
{
    char **paths = candidates(sp->argv[0]);
    int report[2];
    int err;

    if (!paths)
        return -ENOMEM;
    char *stack = tide__malloc(CHILD_STACK);
    if (!stack) {
        err = -ENOMEM;
        goto free_paths;
    }
    if (pipe2(report, O_CLOEXEC) < 0) {
        err = -errno;
        goto free_stack;
    }
    struct child c = {.sp = sp,
                      .paths = paths,
                      .envp = sp->envp ? (char *const *)sp->envp : environ,
                      .report = report[1]};
    int fd = -1;
    bool with_pidfd = tide__spawn_uses_pidfd();
    pid_t child = clone_child(&c, stack, with_pidfd, &fd);
    if ((child == -EINVAL || child == -ENOSYS) && with_pidfd) {
        /* A kernel before 5.2 that checks clone's flags: no pidfds. */
        atomic_store_explicit(&pids_mode, PIDS_SIGCHLD, memory_order_relaxed);
        child = clone_child(&c, stack, false, &fd);
    } else if (child > 0 && with_pidfd && fd < 0) {
        /* One that ignored the flag: this child is tracked by its pid. */
        atomic_store_explicit(&pids_mode, PIDS_SIGCHLD, memory_order_relaxed);
    }
    err = child < 0 ? (int)child : 0;
    close(report[1]);
    if (err == 0) {
        int child_err = read_report(report[0]);
        if (child_err) {
            reap_failed(child, fd);
            err = -child_err;
        } else {
            *pid = child;
            *pidfd = fd;
        }
    }
    close(report[0]);
free_stack:
    tide__free(stack);
free_paths:
    tide__free(paths);
    return err;
}
