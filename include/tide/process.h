/* tide/process.h: child processes (asyncio's create_subprocess_exec and
 * create_subprocess_shell, and the Process object they return).
 *
 * Include it after (or instead of) tide.h; it brings tide/stream.h.
 *
 * Common rules:
 * - A process belongs to the loop running (or the default loop) when it
 *   is made, and is used from tasks of that loop. Linux only: the child
 *   is started with clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) (no copy
 *   of the parent's memory; the pidfd comes with the child, so no other
 *   process can ever be mistaken for it) and its exit is watched through
 *   the pidfd by the loop and reaped with waitid(P_PIDFD). tide never
 *   calls waitpid(-1), never reaps a child it did not start, and (with
 *   pidfds) installs no SIGCHLD handler and changes no disposition. If
 *   the child is reaped behind tide's back (SIGCHLD set to SIG_IGN or
 *   SA_NOCLDWAIT by the application, which makes the kernel reap it; a
 *   waitpid(-1) elsewhere), its exit still ends waits, with its real
 *   status on Linux 6.15 and later (the pidfd keeps it: PIDFD_GET_INFO)
 *   and 255 before (asyncio's returncode for a child it could not reap).
 * - Kernels without pidfds (before 5.3: no CLONE_PIDFD or no
 *   pidfd_open; found out once per process, at the first start) get the
 *   SIGCHLD fallback, which behaves the same but for these points. The
 *   child is made the same way without CLONE_PIDFD and known by its pid.
 *   While a loop has such children running, it watches SIGCHLD through
 *   tide's signal registry (tide/signal.h): tide's handler is then
 *   SIGCHLD's disposition, and the one there was comes back when the
 *   last of them is reaped. On each SIGCHLD the loop tries
 *   waitid(P_PID) for each of its own children, never P_ALL; a child
 *   someone else reaped is 255. So, while tide watches SIGCHLD: a
 *   SIGCHLD handler the program set with sigaction does not run (one set
 *   with tide_add_signal_handler does, beside tide's); SIG_IGN or
 *   SA_NOCLDWAIT set before does not apply (the kernel reaps no child:
 *   tide's get their real status, the program's own stay zombies until
 *   it waits for them). Exits whose SIGCHLD tide never gets (SIGCHLD
 *   blocked in every thread, or its disposition replaced by the program
 *   meanwhile) are seen within a second, by a periodic look (none on the
 *   virtual clock). Signals go by kill(2), once a look (waitid WNOWAIT)
 *   shows the child not reaped yet. A pid is all tide has of such a
 *   child: once someone else has reaped it, a new child of the program
 *   given the same pid before tide looks could be taken for it.
 * - The child starts with an empty signal mask, every signal at its
 *   default disposition (even those the parent ignores), and only fds 0,
 *   1 and 2 open: every other fd is closed before exec (tide's own fds
 *   are all close-on-exec as well).
 * - No zombie is left: the loop reaps every child it started when it
 *   exits, whether or not anybody waits, and whether or not the process
 *   object was freed. A child still running when its loop closes is
 *   killed (SIGKILL) and reaped by tide_loop_close.
 * - Pipes are tide streams (tide/stream.h) owned by the process: use them
 *   while the process object lives; tide_process_free closes them.
 *   Writing to a pipe whose reader has gone is -EPIPE, never SIGPIPE.
 * - Bad arguments return -EINVAL (constructors: NULL and EINVAL) and
 *   change nothing.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_PROCESS_H
#define TIDE_PROCESS_H

#include <tide/stream.h>

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tide_process tide_process; /* opaque */

/* What each of the child's stdin, stdout and stderr is (asyncio's
 * stdin=/stdout=/stderr= arguments). */
enum tide_stdio {
    TIDE_STDIO_INHERIT = 0, /* the parent's own (None) */
    TIDE_STDIO_PIPE,        /* a pipe, the parent's end a tide stream (PIPE) */
    TIDE_STDIO_DEVNULL,     /* /dev/null (DEVNULL) */
    TIDE_STDIO_FD,          /* the fd in the options' *_fd (a file object) */
    TIDE_STDIO_STDOUT,      /* stderr only: wherever stdout goes (STDOUT) */
};

/* Options for starting a process; zero-initialize, set what you need
 * (all zero: inherit stdin, stdout, stderr, the environment and the
 * working directory). */
typedef struct tide_process_options {
    int stdin_mode, stdout_mode, stderr_mode; /* enum tide_stdio */
    int stdin_fd, stdout_fd, stderr_fd;       /* for TIDE_STDIO_FD: the
                                               * parent's fd, borrowed (the
                                               * child gets a copy) */
    const char *const *env; /* "NAME=value" strings, NULL-terminated; NULL:
                             * the parent's environment */
    const char *cwd;        /* the child's working directory; NULL: ours */
    size_t limit;           /* the pipe streams' read limit; 0: 64 KiB */
    /* When the task waiting in tide_process_wait or _communicate is
     * cancelled (a cancel request, a timeout scope), stop the child:
     * SIGTERM, then SIGKILL if it has not exited after kill_grace
     * seconds (0: 5 s); the call returns -ECANCELED once the child has
     * exited. A second cancel request meanwhile sends SIGKILL at once.
     * No runtime in the anchors does this by default; tide does not
     * either (false: the child runs on). */
    bool kill_on_cancel;
    double kill_grace;
} tide_process_options;

/* asyncio's create_subprocess_exec(program, *args): start argv[0] with
 * arguments argv (NULL-terminated; argv[0] also becomes the child's
 * argv[0]). A program name without '/' is looked for in $PATH
 * ("/bin:/usr/bin" if unset), as execvp does, but without running a file
 * that is not a valid executable through /bin/sh. opt may be NULL.
 * Returns 0 and the process in *out (the caller frees it with
 * tide_process_free); -EINVAL (argv, argv[0] or out NULL, argv[0] empty,
 * a bad stdio mode, TIDE_STDIO_STDOUT for stdin or stdout, a negative
 * *_fd with TIDE_STDIO_FD, NaN or negative kill_grace, no loop); -ENOENT
 * (no such program, or cwd does not exist); -EACCES (not executable);
 * -ENOEXEC (not a format the kernel runs); -ENOTDIR; -EMFILE, -ENOMEM,
 * -EAGAIN (no process could be made). On error nothing is left behind:
 * a child that could not exec is reaped, every fd made for it is
 * closed. Does not suspend (the parent thread waits
 * only for the child to exec). */
TIDE_API int tide_create_subprocess_exec(const char *const *argv,
                                         const tide_process_options *opt,
                                         tide_process **out);

/* asyncio's create_subprocess_shell(cmd): /bin/sh -c cmd. Errors as
 * above (-EINVAL if cmd is NULL). Does not suspend. */
TIDE_API int tide_create_subprocess_shell(const char *cmd,
                                          const tide_process_options *opt,
                                          tide_process **out);

/* The child's process id (valid until it is reaped; the pidfd inside
 * is what tide signals, where there are pidfds). -EINVAL if p is NULL. */
TIDE_API pid_t tide_process_pid(const tide_process *p);

/* The parent's end of the child's stdin, stdout or stderr, if it is a
 * pipe (TIDE_STDIO_PIPE); else NULL (and NULL once communicate has
 * closed stdin, or p is NULL). Borrowed: valid until tide_process_free
 * (or the loop's close). Write to stdin and use tide_stream_write_eof or
 * tide_stream_close on it to let the child see end of input; a stream
 * closed by the caller is known to be so, and not closed again. */
TIDE_API tide_stream *tide_process_stdin(tide_process *p);
TIDE_API tide_stream *tide_process_stdout(tide_process *p);
TIDE_API tide_stream *tide_process_stderr(tide_process *p);

/* asyncio's returncode: 0 with the exit status in *code once the child
 * has exited (0..255), or minus the signal number that killed it (-9 for
 * SIGKILL), as asyncio. -EAGAIN while it runs (asyncio's None);
 * -EINVAL if p or code is NULL. Never suspends. */
TIDE_API int tide_process_returncode(const tide_process *p, int *code);

/* asyncio's wait(): wait for the child to exit, and put its returncode
 * in *code (code may be NULL). The exit is the child's own, not the end
 * of its pipes: a child that closes its pipes and runs on is still
 * waited for, and a grandchild that keeps a pipe open does not delay
 * the return. Does not read the pipes: a child blocked writing to a full
 * pipe nobody reads never exits (use communicate). Returns 0;
 * -ECANCELED (under a timeout scope its end turns it into -ETIMEDOUT;
 * see kill_on_cancel); -EPERM outside a task unless the child has
 * exited; -EINVAL (p NULL, a task of another loop). Suspends. */
TIDE_API int tide_process_wait(tide_process *p, int *code);

/* The output communicate collected: buffers allocated by tide, each
 * NUL-terminated past its length (NULL with length 0 if that stream was
 * not a pipe). Free them with tide_process_output_free. */
typedef struct tide_process_output {
    char *out; /* what the child wrote to stdout */
    size_t out_len;
    char *err; /* what it wrote to stderr */
    size_t err_len;
} tide_process_output;

/* asyncio's communicate(input): write the n bytes of input to the child's
 * stdin (if it is a pipe; input may be NULL with n 0) and then close it,
 * while reading its stdout and stderr (those that are pipes) to their
 * end, all at once, so that no amount of data either way can deadlock;
 * then wait for the child to exit, its returncode in *code (may be
 * NULL). The output goes to *output (may be NULL: it is then read and
 * dropped), which is zeroed first; free it with tide_process_output_free
 * whatever the outcome. Waits for end of stream on the pipes: a
 * grandchild that keeps one open keeps communicate waiting (bound it
 * with a timeout scope). A child that exits without reading all of its
 * input is not an error (the rest is dropped, as asyncio does). Returns
 * 0; -ECANCELED (what was read is freed; see kill_on_cancel); -ENOMEM;
 * a pipe's read error; -EBUSY (nothing done: no byte written, stdin
 * left open) if another task is reading stdout or stderr; -EPERM outside a
 * task; -EINVAL (p NULL, input NULL with n > 0, n > 0 with no stdin pipe).
 * Suspends. */
TIDE_API int tide_process_communicate(tide_process *p, const void *input,
                                      size_t n, int *code,
                                      tide_process_output *output);

/* Free what communicate put in *o and zero it. NULL is ignored. */
TIDE_API void tide_process_output_free(tide_process_output *o);

/* asyncio's send_signal(sig), terminate() (SIGTERM) and kill()
 * (SIGKILL): signal the child through its pidfd (kill(2) without
 * pidfds). Returns 0; -ESRCH once the child has exited (nothing is sent:
 * its pid may be reused); -EINVAL (p NULL, a bad signal number). Never
 * suspends. */
TIDE_API int tide_process_send_signal(tide_process *p, int sig);
TIDE_API int tide_process_terminate(tide_process *p);
TIDE_API int tide_process_kill(tide_process *p);

/* Let go of p: close its pipe streams (dropping what is queued on stdin)
 * and free it. The child is not signalled: one still running goes on,
 * and the loop reaps it when it exits (or kills and reaps it at the
 * loop's close). Returns 0; -EINVAL if p is NULL; -EBUSY (nothing done)
 * while a task is suspended in wait or communicate on p. Never
 * suspends. A process may be freed after its loop has closed. */
TIDE_API int tide_process_free(tide_process *p);

#ifdef __cplusplus
}
#endif

#endif /* TIDE_PROCESS_H */
