/* Child processes: asyncio's create_subprocess_exec / _shell and the
 * Process object (wait, communicate, send_signal, terminate, kill, pid,
 * returncode). See tide/process.h for the rules.
 *
 * A process is started by spawn.c, which hands back a pidfd. The pidfd
 * is watched with a reader callback on the loop (it turns readable when
 * the child exits); the callback reaps it with waitid(P_PIDFD, WNOHANG),
 * records the returncode, closes the pidfd and sets `exited`, which
 * wakes the waiters. So the loop reaps every child it started, waited
 * for or not, and nothing but the child's own exit ends a wait.
 *
 * Without pidfds (Linux before 5.3; spawn.c decides, and then hands back
 * a pidfd of -1) the exit watch is the one part that differs: the loop's
 * reaper (loop->reaper, there while the loop has such children) lists
 * them and holds a SIGCHLD watch from the process-wide signal registry
 * (core/signal.h), taken before the child is made so that no exit goes
 * unheard. On each delivery (coalesced) it tries waitid(P_PID, pid,
 * WNOHANG) for each child of its list, never P_ALL, and calls reaped();
 * the last child reaped drops the watch, which gives SIGCHLD its
 * disposition back. ECHILD means reaped behind tide's back: 255. Signals
 * go by kill(2), after a look (WNOWAIT) that the pid is still an unreaped
 * child. Start, wait, communicate, kill_on_cancel and the loop's close
 * are the same code for both.
 *
 * Lifetime: `refs` counts the owner (dropped by tide_process_free), the
 * exit watch (dropped once the child is reaped) and calls suspended in
 * wait or communicate. The record is on loop->lingering from start to
 * free: if the loop closes first, its drop kills (SIGKILL) and reaps a
 * child still running (a blocking waitid: SIGKILL cannot be refused),
 * closes the pipes and forgets the loop, so the record can be freed
 * later. The pipes are streams the process holds a reference on, so a
 * pipe the caller closed is known to be closed.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "base/alloc.h"
#include "core/signal.h"

#include <tide/process.h>
#include <tide/sync.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Linux 6.15's PIDFD_GET_INFO (the 64-byte first version of its struct):
 * with PIDFD_INFO_EXIT, the wait status of a child reaped by someone
 * else, kept with the pidfd. */
struct pidfd_exit_info {
    uint64_t mask;
    uint64_t cgroupid;
    uint32_t ids[11];
    int32_t exit_code;
};
#define PIDFD_INFO_EXIT_BIT (1ULL << 3)
#define PIDFD_GET_INFO_CMD _IOWR(0xFF, 11, struct pidfd_exit_info)
#define UNKNOWN_CODE 255 /* asyncio's, for a child reaped by another */

#define DEFAULT_GRACE 5.0
#define MAX_SIGNAL 64

struct tide_process {
    tide_loop *loop; /* NULL once the loop has closed */
    pid_t pid;
    int pidfd; /* -1 once reaped, or without pidfds */
    int refs;  /* owner + exit watch + suspended calls */
    int busy;  /* calls suspended in wait or communicate */
    int code;  /* the returncode, once exited */
    bool exited;
    bool kill_on_cancel;
    double grace;                /* kill_on_cancel's, seconds */
    tide_stream *pipes[3];       /* held; NULL: not a pipe */
    tide_event *exit_ev;         /* set once reaped */
    struct tide__linger linger;  /* loop->lingering from start to free */
    struct tide__list reap_link; /* loop->reaper->children, without a
                                  * pidfd, until reaped */
};

static void release(tide_process *p)
{
    if (--p->refs > 0)
        return;
    tide__list_remove(&p->linger.link);
    tide_event_free(p->exit_ev);
    tide__free(p);
}

/* ---- the exit watch ------------------------------------------------- */

/* The SIGCHLD fallback's record of a loop (loop->reaper), there while the
 * loop has children without a pidfd. */
struct tide__reaper {
    struct tide__list children;   /* tide_process.reap_link, unreaped */
    struct tide__sigwatch *watch; /* SIGCHLD, from the signal registry */
    tide_handle patrol;           /* the next sweep without a SIGCHLD */
    bool sweeping;                /* sweep() is walking children */
};

/* The patrol's period: how late an exit whose SIGCHLD never reaches tide
 * (SIGCHLD blocked in every thread, or its disposition replaced by the
 * program while tide watches it) is seen. */
#define PATROL_SECONDS 1.0

static int code_of(const siginfo_t *info)
{
    return info->si_code == CLD_EXITED ? info->si_status : -info->si_status;
}

/* The child was reaped by someone else (SIGCHLD set to SIG_IGN makes
 * the kernel do it; a waitpid(-1) elsewhere): its status from the pidfd
 * where the kernel keeps it (6.15), else asyncio's 255 (always, without
 * a pidfd: pidfd is -1). */
static int code_from_pidfd(int pidfd)
{
    struct pidfd_exit_info info = {.mask = PIDFD_INFO_EXIT_BIT};

    if (pidfd < 0 || ioctl(pidfd, PIDFD_GET_INFO_CMD, &info) < 0 ||
        !(info.mask & PIDFD_INFO_EXIT_BIT))
        return UNKNOWN_CODE;
    int st = info.exit_code;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* The loop has no child left to watch by SIGCHLD: the watch goes (the
 * last one in the process gives SIGCHLD its disposition back). */
static void reaper_settle(tide_loop *loop)
{
    struct tide__reaper *r = loop->reaper;

    if (!r || r->sweeping || !tide__list_empty(&r->children))
        return;
    (void)tide_handle_cancel(loop, r->patrol);
    tide__signal_remove(loop, r->watch);
    tide__free(r);
    loop->reaper = NULL;
}

/* Stop watching p's exit: its pidfd, or its place in the reaper. */
static void unwatch(tide_process *p)
{
    if (p->pidfd >= 0) {
        tide_close(p->pidfd); /* removes the reader callback too */
        p->pidfd = -1;
    } else {
        tide__list_remove(&p->reap_link);
        reaper_settle(p->loop);
    }
}

/* Reaped with `info` (NULL: by someone else): record it, stop
 * watching, wake the waiters. */
static void reaped(tide_process *p, const siginfo_t *info)
{
    p->code = info ? code_of(info) : code_from_pidfd(p->pidfd);
    p->exited = true;
    unwatch(p);
    tide_event_set(p->exit_ev);
    release(p); /* the watch's reference */
}

/* Reap p if it has exited (`block` 0: WNOHANG) or once it exits (block
 * WEXITED's wait), by its pidfd or its pid: true once it is reaped, by
 * us or (ECHILD) by someone else. Blocking, any error counts as reaped
 * elsewhere: kill_and_reap must end. */
static bool try_reap(tide_process *p, bool block)
{
    idtype_t type = p->pidfd >= 0 ? (idtype_t)P_PIDFD : P_PID;
    id_t id = p->pidfd >= 0 ? (id_t)p->pidfd : (id_t)p->pid;
    int flags = WEXITED | __WALL | (block ? 0 : WNOHANG);
    siginfo_t info = {0};
    int r;

    while ((r = waitid(type, id, &info, flags)) < 0 && errno == EINTR)
        ;
    if (r < 0) {
        if (!block && errno != ECHILD)
            return false; /* the next readiness or SIGCHLD tries again */
        reaped(p, NULL);
        return true;
    }
    if (info.si_pid == 0)
        return false; /* still running */
    reaped(p, &info);
    return true;
}

/* The pidfd turned readable: the child has exited. */
static void on_pidfd(void *arg)
{
    (void)try_reap(arg, false);
}

/* Try each of this loop's own children by its pid, never P_ALL, so that
 * no other child of the process is reaped. */
static void sweep(tide_loop *loop)
{
    struct tide__reaper *r = loop->reaper;
    struct tide__list *l = r->children.next;

    r->sweeping = true; /* reaped() unlinks and frees only its own */
    while (l != &r->children) {
        struct tide__list *next = l->next;
        (void)try_reap(tide__container_of(l, tide_process, reap_link), false);
        l = next;
    }
    r->sweeping = false;
    reaper_settle(loop);
}

/* SIGCHLD arrived, once or more since the last call. */
static void on_sigchld(void *arg)
{
    sweep(arg);
}

static void on_patrol(void *arg);

/* The next patrol, PATROL_SECONDS from now. Not on the virtual clock,
 * where it would be what moves time while every task waits for a child.
 * 0 or -ENOMEM. */
static int patrol_arm(tide_loop *loop)
{
    struct tide__reaper *r = loop->reaper;

    r->patrol = 0;
    if (loop->virtual_clock)
        return 0;
    r->patrol = tide_call_later(loop, PATROL_SECONDS, on_patrol, loop);
    return r->patrol ? 0 : -ENOMEM;
}

/* A sweep for exits no SIGCHLD told of, then the next one (out of
 * memory, none: SIGCHLD alone is left). */
static void on_patrol(void *arg)
{
    tide_loop *loop = arg;

    loop->reaper->patrol = 0;
    sweep(loop);
    if (loop->reaper)
        (void)patrol_arm(loop);
}

/* The loop's reaper, made (with its SIGCHLD watch and its patrol) if it
 * has none. 0 or -errno (-ENOMEM, sigaction's). */
static int reaper_hold(tide_loop *loop)
{
    if (loop->reaper)
        return 0;
    struct tide__reaper *r = tide__calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    tide__list_init(&r->children);
    int err;
    r->watch = tide__signal_add(loop, SIGCHLD, on_sigchld, loop, NULL, &err);
    if (!r->watch) {
        tide__free(r);
        return err;
    }
    loop->reaper = r;
    err = patrol_arm(loop);
    if (err < 0)
        reaper_settle(loop);
    return err;
}

/* Watch p's exit from now on: by its pidfd, or (none) by SIGCHLD. A
 * reaper made only now (spawn.c found out at this clone that there are
 * no pidfds) may have missed the child's SIGCHLD: a look at once. 0 or
 * -errno, with nothing watched. */
static int watch_exit(tide_process *p)
{
    if (p->pidfd >= 0)
        return tide_add_reader(p->loop, p->pidfd, on_pidfd, p);
    bool late = p->loop->reaper == NULL;
    int err = reaper_hold(p->loop);
    if (err < 0)
        return err;
    struct tide__reaper *r = p->loop->reaper;
    /* A child of the list with p's pid was reaped behind tide's back and
     * its pid given again, to p: it is gone. */
    r->sweeping = true;
    for (struct tide__list *l = r->children.next; l != &r->children;) {
        tide_process *q = tide__container_of(l, tide_process, reap_link);
        l = l->next;
        if (q->pid == p->pid)
            reaped(q, NULL);
    }
    r->sweeping = false;
    tide__list_push_back(&r->children, &p->reap_link);
    if (late)
        (void)try_reap(p, false);
    return 0;
}

/* Signal the child through its pidfd. Where pidfd_send_signal is missing
 * (Linux before 5.1, valgrind before 3.20) kill(2) serves: the child is
 * not reaped yet (tide reaps it only after this), so its pid is still
 * its own, unless something else reaped it, which only a child that has
 * exited allows. Without a pidfd, kill(2) too, once a look without
 * reaping (WNOWAIT) has found the child still ours: one reaped behind
 * tide's back is -ESRCH. 0 or -errno. */
static int signal_child(tide_process *p, int sig)
{
    if (p->pidfd < 0) {
        siginfo_t info = {0};
        if (waitid(P_PID, (id_t)p->pid, &info,
                   WEXITED | WNOHANG | WNOWAIT | __WALL) < 0 &&
            errno == ECHILD)
            return -ESRCH;
        return kill(p->pid, sig) == 0 ? 0 : -errno;
    }
    if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) == 0)
        return 0;
    if (errno == ENOSYS && kill(p->pid, sig) == 0)
        return 0;
    return -errno;
}

/* Kill and reap at once, blocking (the loop is closing, or the watch
 * could not be set up). */
static void kill_and_reap(tide_process *p)
{
    (void)signal_child(p, SIGKILL);
    (void)try_reap(p, true);
}

/* Close the pipes the caller has not closed (dropping what is queued). */
static void close_pipes(tide_process *p)
{
    for (int i = 0; i < 3; i++)
        if (p->pipes[i] && !tide__stream_closed(p->pipes[i]))
            (void)tide_stream_abort(p->pipes[i]);
}

/* The loop closes with p alive: every task has ended. */
static void drop_at_close(struct tide__linger *l)
{
    tide_process *p = tide__container_of(l, tide_process, linger);

    p->refs++;
    if (!p->exited)
        kill_and_reap(p);
    close_pipes(p);
    p->loop = NULL;
    release(p);
}

/* ---- starting ------------------------------------------------------- */

static bool mode_ok(int mode, int fd, int which)
{
    switch (mode) {
    case TIDE_STDIO_INHERIT:
    case TIDE_STDIO_PIPE:
    case TIDE_STDIO_DEVNULL:
        return true;
    case TIDE_STDIO_FD:
        return fd >= 0;
    case TIDE_STDIO_STDOUT:
        return which == 2;
    default:
        return false;
    }
}

static bool options_ok(const tide_process_options *o)
{
    return mode_ok(o->stdin_mode, o->stdin_fd, 0) &&
           mode_ok(o->stdout_mode, o->stdout_fd, 1) &&
           mode_ok(o->stderr_mode, o->stderr_fd, 2) && !isnan(o->kill_grace) &&
           o->kill_grace >= 0;
}

/* What spawn needs and what it leaves to close. */
struct setup {
    int child_end[3]; /* pipe ends and /dev/null copies for the child */
};

/* Make stdio fd i's source in sp->fds[i] (a pipe: its stream in
 * p->pipes[i]). 0 or -errno. */
static int setup_stdio(tide_process *p, struct tide__spawn *sp,
                       struct setup *su, int i, int mode, int fd, size_t limit)
{
    int ends[2];

    switch (mode) {
    case TIDE_STDIO_INHERIT:
        sp->fds[i] = -1;
        return 0;
    case TIDE_STDIO_FD:
        sp->fds[i] = fd;
        return 0;
    case TIDE_STDIO_STDOUT:
        sp->fds[i] = TIDE__SPAWN_STDOUT;
        return 0;
    case TIDE_STDIO_DEVNULL:
        su->child_end[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (su->child_end[i] < 0)
            return -errno;
        sp->fds[i] = su->child_end[i];
        return 0;
    default: /* TIDE_STDIO_PIPE */
        if (pipe2(ends, O_CLOEXEC) < 0)
            return -errno;
        int mine = i == 0 ? ends[1] : ends[0];
        su->child_end[i] = i == 0 ? ends[0] : ends[1];
        sp->fds[i] = su->child_end[i];
        p->pipes[i] = tide_stream_new(mine, limit);
        if (!p->pipes[i]) {
            int err = -errno;
            close(mine);
            return err;
        }
        tide__stream_hold(p->pipes[i]);
        return 0;
    }
}

static void undo_setup(tide_process *p, struct setup *su)
{
    for (int i = 0; i < 3; i++) {
        if (su->child_end[i] >= 0)
            close(su->child_end[i]);
        su->child_end[i] = -1;
    }
    close_pipes(p);
    for (int i = 0; i < 3; i++)
        if (p->pipes[i])
            tide__stream_release(p->pipes[i]);
}

int tide_create_subprocess_exec(const char *const *argv,
                                const tide_process_options *opt,
                                tide_process **out)
{
    tide_process_options o = opt ? *opt : (tide_process_options){0};

    if (!argv || !argv[0] || !argv[0][0] || !out || !options_ok(&o))
        return -EINVAL;
    tide_loop *loop = tide__loop_resolve(NULL);
    if (!loop || loop->closed)
        return -EINVAL;
    tide_process *p = tide__calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->exit_ev = tide_event_new();
    if (!p->exit_ev) {
        tide__free(p);
        return -ENOMEM;
    }
    p->loop = loop;
    p->refs = 1;
    p->pidfd = -1;
    p->kill_on_cancel = o.kill_on_cancel;
    p->grace = o.kill_grace ? o.kill_grace : DEFAULT_GRACE;
    tide__list_init(&p->linger.link);
    tide__list_init(&p->reap_link);

    struct tide__spawn sp = {.argv = argv, .envp = o.env, .cwd = o.cwd};
    struct setup su = {{-1, -1, -1}};
    int modes[3] = {o.stdin_mode, o.stdout_mode, o.stderr_mode};
    int fds[3] = {o.stdin_fd, o.stdout_fd, o.stderr_fd};
    int err = 0;
    for (int i = 0; i < 3 && !err; i++)
        err = setup_stdio(p, &sp, &su, i, modes[i], fds[i], o.limit);
    /* Without pidfds, tide's SIGCHLD handler is in place before the
     * child can exit (see tide/process.h on SIG_IGN). */
    if (!err && !tide__spawn_uses_pidfd())
        err = reaper_hold(loop);
    if (!err)
        err = tide__spawn(&sp, &p->pid, &p->pidfd);
    if (err < 0) {
        reaper_settle(loop);
        undo_setup(p, &su);
        release(p);
        return err;
    }
    for (int i = 0; i < 3; i++)
        if (su.child_end[i] >= 0)
            close(su.child_end[i]);
    p->linger.drop = drop_at_close;
    tide__list_push_back(&loop->lingering, &p->linger.link);
    p->refs++; /* the exit watch's */
    err = watch_exit(p);
    if (err < 0) {
        kill_and_reap(p);
        close_pipes(p);
        for (int i = 0; i < 3; i++)
            if (p->pipes[i])
                tide__stream_release(p->pipes[i]);
        release(p);
        return err;
    }
    *out = p;
    return 0;
}

int tide_create_subprocess_shell(const char *cmd,
                                 const tide_process_options *opt,
                                 tide_process **out)
{
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    if (!cmd)
        return -EINVAL;
    return tide_create_subprocess_exec(argv, opt, out);
}

/* ---- the object ----------------------------------------------------- */

pid_t tide_process_pid(const tide_process *p)
{
    return p ? p->pid : -EINVAL;
}

static tide_stream *pipe_of(tide_process *p, int i)
{
    if (!p || !p->pipes[i] || tide__stream_closed(p->pipes[i]))
        return NULL;
    return p->pipes[i];
}

tide_stream *tide_process_stdin(tide_process *p)
{
    return pipe_of(p, 0);
}

tide_stream *tide_process_stdout(tide_process *p)
{
    return pipe_of(p, 1);
}

tide_stream *tide_process_stderr(tide_process *p)
{
    return pipe_of(p, 2);
}

int tide_process_returncode(const tide_process *p, int *code)
{
    if (!p || !code)
        return -EINVAL;
    if (!p->exited)
        return -EAGAIN;
    *code = p->code;
    return 0;
}

int tide_process_send_signal(tide_process *p, int sig)
{
    if (!p || sig < 0 || sig > MAX_SIGNAL)
        return -EINVAL;
    if (p->exited)
        return -ESRCH;
    return signal_child(p, sig);
}

int tide_process_terminate(tide_process *p)
{
    return tide_process_send_signal(p, SIGTERM);
}

int tide_process_kill(tide_process *p)
{
    return tide_process_send_signal(p, SIGKILL);
}

/* The waiting task was cancelled, and kill_on_cancel asks for the
 * child to be stopped: SIGTERM, the grace period, SIGKILL, its exit. */
static void stop_child(tide_process *p)
{
    (void)tide_process_terminate(p);
    tide_timeout *grace = tide_timeout_begin(p->grace);
    if (grace) {
        int e = tide_event_wait(p->exit_ev);
        (void)tide_timeout_end(grace, e);
    }
    /* Past the grace period, or cancelled again: SIGKILL, which the
     * child cannot refuse, and wait for its exit through any further
     * requests (each one is delivered here: the call returns
     * -ECANCELED). */
    (void)tide_process_kill(p);
    int e = 0;
    while (!p->exited && (e == 0 || e == -ECANCELED))
        e = tide_event_wait(p->exit_ev);
}

/* Wait for the exit; a cancellation stops the child first when asked
 * (kill_on_cancel). 0 or -ECANCELED (or -EBADF, -ENOMEM). */
static int wait_exit(tide_process *p)
{
    int err = tide_event_wait(p->exit_ev);

    if (err == -ECANCELED && p->kill_on_cancel && !p->exited)
        stop_child(p);
    return err;
}

int tide_process_wait(tide_process *p, int *code)
{
    if (!p)
        return -EINVAL;
    if (!p->exited) {
        int err = tide__in_task_of(p->loop);
        if (err < 0)
            return err;
        p->refs++;
        p->busy++;
        err = wait_exit(p);
        p->busy--;
        bool exited = p->exited;
        release(p);
        if (err < 0)
            return err;
        if (!exited)
            return -ECANCELED;
    }
    if (code)
        *code = p->code;
    return 0;
}

/* ---- communicate ---------------------------------------------------
 * One task feeds stdin, one drains each output pipe, so that neither
 * direction waits on the other. Their state is allocated (a compact
 * caller's frames are copied away while it waits) and outlives them. */

#define FEED_CHUNK ((size_t)64 * 1024)
#define READ_CHUNK ((size_t)64 * 1024)

struct sink {
    tide_stream *s;
    char *data;
    size_t len, cap;
};

struct comm {
    tide_process *p;
    const char *input;
    size_t n;
    struct sink out[2]; /* stdout, stderr */
};

static void *feed_body(void *arg)
{
    struct comm *c = arg;
    tide_stream *in = c->p->pipes[0];
    int err = 0;

    for (size_t off = 0; off < c->n && !err; off += FEED_CHUNK) {
        size_t k = c->n - off < FEED_CHUNK ? c->n - off : FEED_CHUNK;
        err = tide_stream_write(in, c->input + off, k);
        if (!err)
            err = tide_stream_drain(in);
    }
    /* After a failure (a cancel included) nothing more is sent: a child
     * that does not read must not keep this task. */
    int cerr = err ? tide_stream_abort(in) : tide_stream_close(in, INFINITY);
    if (!err)
        err = cerr;
    /* A child that exits without reading all its input is no error. */
    if (err == -EPIPE || err == -ECONNRESET)
        err = 0;
    return err < 0 ? tide_fail(err) : NULL;
}

static void *drain_body(void *arg)
{
    struct sink *k = arg;

    for (;;) {
        if (k->cap - k->len < READ_CHUNK + 1) {
            size_t cap = k->cap ? k->cap * 2 : READ_CHUNK * 2;
            char *d = tide__realloc(k->data, cap);
            if (!d)
                return tide_fail(-ENOMEM);
            k->data = d;
            k->cap = cap;
        }
        ssize_t r =
            tide_stream_read_into(k->s, k->data + k->len, k->cap - k->len - 1);
        if (r < 0)
            return tide_fail((int)r);
        if (r == 0)
            break;
        k->len += (size_t)r;
    }
    k->data[k->len] = '\0';
    return NULL;
}

/* Await every task of ts (n), cancelling the others once one fails or
 * the caller is cancelled; the first error. */
static int await_all(tide_future **ts, int n)
{
    int first = 0;

    for (int i = 0; i < n; i++) {
        if (!ts[i])
            continue;
        /* tide_await returns once ts[i] is done, except -ENOMEM (a compact
         * caller could not suspend): the tasks use what the caller frees
         * after this, so try again until it is done. */
        int err;
        do
            err = tide_await(ts[i], NULL);
        while (err == -ENOMEM && !tide_future_done(ts[i]));
        if (err < 0 && !first) {
            first = err;
            for (int j = i + 1; j < n; j++)
                if (ts[j])
                    tide_future_cancel(ts[j]);
        }
    }
    return first;
}

static void sink_give(struct sink *k, char **data, size_t *len)
{
    if (data) {
        *data = k->data;
        *len = k->len;
    } else {
        tide__free(k->data);
    }
}

int tide_process_communicate(tide_process *p, const void *input, size_t n,
                             int *code, tide_process_output *output)
{
    if (output)
        *output = (tide_process_output){0};
    if (!p || (!input && n) || (n && !pipe_of(p, 0)))
        return -EINVAL;
    int err = tide__in_task_of(p->loop);
    if (err < 0)
        return err;
    for (int i = 1; i < 3; i++) /* before anything is written or closed */
        if (pipe_of(p, i) && tide__stream_reading(p->pipes[i]))
            return -EBUSY;
    struct comm *c = tide__calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->p = p;
    c->input = input;
    c->n = n;
    p->refs++;
    p->busy++;
    tide_future *ts[3] = {NULL, NULL, NULL};
    if (pipe_of(p, 0))
        ts[0] = tide_create_task(p->loop, feed_body, c);
    for (int i = 0; i < 2; i++) {
        c->out[i].s = pipe_of(p, i + 1);
        if (c->out[i].s)
            ts[i + 1] = tide_create_task(p->loop, drain_body, &c->out[i]);
    }
    for (int i = 0; i < 3; i++)
        if (!ts[i] && (i == 0 ? pipe_of(p, 0) : c->out[i - 1].s))
            err = -ENOMEM;
    if (err < 0)
        for (int i = 0; i < 3; i++)
            if (ts[i])
                tide_future_cancel(ts[i]);
    int terr = await_all(ts, 3);
    if (!err)
        err = terr;
    if (err == -ECANCELED && p->kill_on_cancel && !p->exited)
        stop_child(p);
    else if (!err && !p->exited)
        err = wait_exit(p);
    for (int i = 0; i < 3; i++)
        tide_future_release(ts[i]);
    if (!err && output) {
        sink_give(&c->out[0], &output->out, &output->out_len);
        sink_give(&c->out[1], &output->err, &output->err_len);
    } else {
        sink_give(&c->out[0], NULL, NULL);
        sink_give(&c->out[1], NULL, NULL);
    }
    if (!err && code)
        *code = p->code;
    tide__free(c);
    p->busy--;
    release(p);
    return err;
}

void tide_process_output_free(tide_process_output *o)
{
    if (!o)
        return;
    tide__free(o->out);
    tide__free(o->err);
    *o = (tide_process_output){0};
}

int tide_process_free(tide_process *p)
{
    if (!p)
        return -EINVAL;
    if (p->busy)
        return -EBUSY;
    if (p->loop)
        close_pipes(p);
    for (int i = 0; i < 3; i++) {
        if (p->pipes[i])
            tide__stream_release(p->pipes[i]);
        p->pipes[i] = NULL;
    }
    release(p); /* a child still running keeps p listed and watched */
    return 0;
}
