/* tide: asyncio for C.
 *
 * An event loop per thread; tasks that are stackful coroutines written as
 * plain C functions; futures that stand for results not there yet; timers,
 * gather and as_completed. A task reads like straight-line code: any C
 * function it calls may suspend it (tide_await, tide_sleep, ...), and the
 * loop runs other tasks meanwhile.
 *
 * Conventions (every function follows them):
 * - A function that can fail returns int: 0 (or a count) on success, a
 *   negative errno on failure. A constructor returns NULL and sets errno.
 *   Misuse that the library can detect returns -EINVAL; nothing aborts on
 *   caller input.
 * - A NULL loop argument means tide_get_event_loop().
 * - Suspending calls are made from inside a task. Made anywhere else they
 *   return -EPERM at once, unless the result is already there. A
 *   suspending call may also return -ENOMEM (a timer, or a compact task's
 *   wait record, that cannot be allocated), even where its comment does
 *   not list it.
 * - Every tide_future * a function returns is a new reference, released
 *   with tide_future_release(), unless its comment says "borrowed".
 * - Public time is seconds as a double, on the loop's monotonic clock.
 * - A loop belongs to the thread that runs it; only *_threadsafe functions
 *   may be called on it from another thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_H
#define TIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tide/version.h" /* TIDE_VERSION_STRING, TIDE_VERSION_NUMBER, ... */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(TIDE_STATIC_BUILD)
#define TIDE_API __attribute__((visibility("default")))
#else
#define TIDE_API
#endif

typedef struct tide_loop tide_loop;     /* opaque */
typedef struct tide_future tide_future; /* opaque; a task is a future */
typedef struct tide_as_completed tide_as_completed; /* opaque */
typedef void *(*tide_fn)(void *arg);                /* a coroutine body */
typedef void (*tide_callback)(void *arg);           /* a loop callback */

/* ---- Library -------------------------------------------------------- */

/* The version of the library the program runs with, "major.minor.patch"
 * (TIDE_VERSION_STRING is that of the headers it was compiled with).
 * Static, never NULL. */
TIDE_API const char *tide_version(void);

/* The same as one number, 0xMMmmpp (TIDE_VERSION_NUMBER for the
 * headers): 0x000200 for 0.2.0. */
TIDE_API unsigned tide_version_number(void);

/* The context-switch method compiled in: "asm-x86_64", "asm-aarch64" or
 * "ucontext". Never NULL. */
TIDE_API const char *tide_switch_method(void);

/* A human-readable message for an errno: err is a negative errno as tide
 * returns it, or a positive one as a constructor leaves in errno (both
 * read the same). tide's own wording for the errors it returns
 * ("operation canceled" for -ECANCELED); the C library's for any other
 * errno ("Connection refused" for -ECONNREFUSED); "success" for 0;
 * "unknown error" for a value that is no errno (INT_MIN included). Never
 * NULL. The string is static, and the call safe from any thread and in a
 * signal handler, with glibc 2.32 or later; with other C libraries the
 * C library's messages (and its wording for values that are no errno)
 * come from a per-thread copy, valid until the thread's next call. */
TIDE_API const char *tide_strerror(int err);

/* The symbolic name of an errno, read as tide_strerror reads err:
 * "ECANCELED" for -ECANCELED or ECANCELED, "OK" for 0, "UNKNOWN" for a
 * value that is no errno. Names of errnos tide does not return itself
 * come from the C library (glibc 2.32 or later; "UNKNOWN" elsewhere).
 * Static, never NULL, safe from any thread and in a signal handler. */
TIDE_API const char *tide_err_name(int err);

/* ---- Event loop -----------------------------------------------------
 * A loop runs ready callbacks and tasks in FIFO order, fires timers in
 * deadline order (ties in the order they were set) and waits for I/O.
 * Time: a delay counts from the moment of the call that sets it (the
 * clock is read then), as in asyncio, Go and Tokio; the loop reads the
 * clock once per iteration to decide what has fired. A relative delay
 * may fire late by a timer slack of under 1/128 of itself, at most 1 ms
 * (so timers set close together share one deadline), never early;
 * absolute deadlines (tide_call_at) and the virtual clock are exact.
 * Equal deadlines fire in the order they were set. A timer that is due
 * fires before any task that became ready after it was due: no run of
 * hand-offs between tasks can starve it. */

/* Make a new loop. Returns NULL and sets errno (ENOMEM, EMFILE) on
 * failure. The caller owns it and ends it with tide_loop_close(). */
TIDE_API tide_loop *tide_loop_new(void);

/* The loop running on this thread if there is one, else this thread's
 * default loop, made on first use (freed at thread exit). Borrowed.
 * Returns NULL (errno set) only if making the default loop fails.
 * After fork(), the child has no default loop (it gets a new one here):
 * loops made before the fork share the parent's epoll instance and must
 * not be used in the child. */
TIDE_API tide_loop *tide_get_event_loop(void);

/* Make `loop` this thread's default loop (NULL clears it). Borrows. */
TIDE_API void tide_set_event_loop(tide_loop *loop);

/* Run the loop until `f` is done. Returns f's error (0 on success) and
 * stores f's result in *result when result is not NULL. May be called
 * while the loop is already running (from a task or a callback), as
 * nest_asyncio allows: it returns when f is done and every other task
 * keeps running meanwhile. Errors: -EINVAL (f NULL or on another loop),
 * -EINTR (tide_loop_stop() was called before f was done), -EDEADLK
 * (debug mode only: nothing could ever complete f, reported; see
 * tide_loop_set_debug; f stays pending), -EXDEV (the loop is on io_uring
 * and another thread used it first: nothing run; see tide_loop_backend).
 * Borrows f. */
TIDE_API int tide_run_until_complete(tide_loop *loop, tide_future *f,
                                     void **result);

/* Run the loop until tide_loop_stop(). Returns 0; -EDEADLK in debug mode
 * if every task waits and nothing can wake the loop (reported; see
 * tide_loop_set_debug); -EXDEV as tide_run_until_complete. Nests like
 * tide_run_until_complete. */
TIDE_API int tide_run_forever(tide_loop *loop);

/* Ask the innermost run of `loop` to return after the current iteration.
 * Harmless if the loop is not running. */
TIDE_API void tide_loop_stop(tide_loop *loop);

/* True while a run (any nesting depth) is in progress on `loop`. */
TIDE_API bool tide_loop_is_running(tide_loop *loop);

/* Close the loop: refuse further tide_call_soon_threadsafe calls, cancel
 * every pending task, run the loop until the tasks have finished and every
 * callback tide_call_soon_threadsafe accepted before has run (entries
 * ready before those run too, in order), then drop the callbacks and
 * timers still pending, release every resource and free the loop. The
 * cancel request counts (tide_task_cancelling) and is made again on every
 * iteration, once the last was delivered, until the task has finished:
 * no task outlives close by catching one cancellation, and a cleanup that
 * waits is interrupted again (it still runs to its end). Gathers and
 * shields still waiting on plain futures are let go.
 * Futures of the loop stay valid, readable and releasable. If it was this
 * thread's default loop, the default is cleared.
 * Returns 0; -EBUSY if the loop is running (nothing changes); -EXDEV if
 * it is on io_uring and another thread used it first (nothing changes:
 * close it there). */
TIDE_API int tide_loop_close(tide_loop *loop);

/* The loop's time: the monotonic clock now, in seconds (asyncio's
 * loop.time()), or virtual seconds (see tide_loop_set_virtual_clock). So
 * call_at(tide_loop_time(l) + d) and call_later(d) count from the same
 * clock; call_later may add its timer slack (see above), call_at never. */
TIDE_API double tide_loop_time(tide_loop *loop);

/* Advance the reading the loop decides firing with to the clock now
 * (libuv's uv_update_time): timers that came due during a long step fire
 * on the next iteration either way, so this is rarely needed; delays do
 * not depend on it (they count from their call). No effect on the
 * virtual clock. Returns 0; -EINVAL if the loop is closed (or NULL and
 * there is no default loop). */
TIDE_API int tide_loop_update_time(tide_loop *loop);

/* asyncio.run: run main(arg) as a task on a new loop that is the thread's
 * loop meanwhile, then close that loop (cancelling leftover tasks and
 * letting them finish) and restore the previous default. Returns main's
 * error (0 on success), its result in *result if not NULL; -EBUSY if a
 * loop is running on this thread; -ENOMEM; -EINVAL if main is NULL.
 * Signals are left as they are: for asyncio.run's Ctrl-C (SIGINT or
 * SIGTERM cancels main), main calls tide_cancel_on_signals (tide/signal.h)
 * on itself. */
TIDE_API int tide_run(tide_fn main, void *arg, void **result);

/* Default stack size (usable bytes) for tasks created on `loop` from now
 * on; rounded up to whole pages. Default 256 KiB. Returns 0; -EINVAL if
 * bytes is below 16 KiB or above 1 GiB. */
TIDE_API int tide_loop_set_stack_size(tide_loop *loop, size_t bytes);

/* Make tasks created on `loop` from now on compact (see
 * tide_task_options.compact), except those given a stack_size, which get
 * a stack of their own. TIDE_COMPACT=1 in the environment turns it on for
 * every new loop. Returns 0; -EINVAL if loop is closed. */
TIDE_API int tide_loop_set_compact_tasks(tide_loop *loop, bool on);
TIDE_API bool tide_loop_get_compact_tasks(tide_loop *loop);

/* Switch `loop` to a virtual clock (on = true): time stands still while
 * anything is ready to run, and jumps to the next timer's deadline when
 * every task is waiting (Trio's autojump clock), so a 60 s timeout runs in
 * microseconds. I/O still works: the loop polls without blocking before
 * it jumps. Returns 0; -EBUSY if the loop is running. */
TIDE_API int tide_loop_set_virtual_clock(tide_loop *loop, bool on);

/* The I/O backend the loop uses: "io_uring" (the default in a build with
 * liburing), "epoll" (the default where io_uring is refused: ENOSYS,
 * EPERM from seccomp or kernel.io_uring_disabled, a missing feature, a
 * memlock limit, no fd for the ring; under valgrind; in a build without
 * liburing) or "poll" (the fallback where epoll cannot be opened).
 * TIDE_BACKEND=io_uring|epoll|poll in the environment, read at each
 * loop's creation, forces one (a refused io_uring still gives "epoll");
 * another value is ignored. Debug mode reports a fallback, or an ignored
 * value, and why. A loop runs on one thread at a time; on io_uring, on
 * one thread for its whole life (docs/backends.md). Never NULL. */
TIDE_API const char *tide_loop_backend(tide_loop *loop);

/* Counts of what a loop holds now; a test's leak gate and a debugger's
 * first look. */
typedef struct tide_loop_stats {
    size_t tasks;   /* tasks not yet finished */
    size_t ready;   /* callbacks and tasks queued to run */
    size_t timers;  /* armed timers (sleeps and call_later/call_at) */
    size_t handles; /* call_soon/later/at handles not yet run or cancelled */
    size_t stacks_in_use; /* stacks held by started, unfinished tasks */
    size_t stacks_pooled; /* stacks kept for reuse */
    uint64_t iterations;  /* loop iterations so far */
} tide_loop_stats;

/* Fill *stats. Returns 0; -EINVAL if stats is NULL. */
TIDE_API int tide_loop_get_stats(tide_loop *loop, tide_loop_stats *stats);

/* ---- Driving a loop from another loop --------------------------------
 * A program with a loop of its own (GLib, Qt, a game loop, plain poll())
 * runs tide inside it, as libuv's uv_backend_fd, uv_backend_timeout and
 * UV_RUN_NOWAIT allow: it watches tide_loop_backend_fd for readability,
 * waits no longer than tide_loop_backend_timeout says, then calls
 * tide_loop_run_once(loop, 0), and again until that returns 0:
 *
 *     int fd = tide_loop_backend_fd(loop);
 *     do {
 *         double t;
 *         tide_loop_backend_timeout(loop, &t);
 *         struct pollfd p = {.fd = fd, .events = POLLIN};
 *         poll(&p, 1, isinf(t) ? -1 : (int)fmin(ceil(t * 1e3), 1e9));
 *     } while (tide_loop_run_once(loop, 0) == 1);
 *
 * The fd is readable whenever the loop has something to do that it would
 * wake for: a tide_call_soon_threadsafe from another thread, a signal
 * the loop has a handler for (a dump signal in debug mode), and I/O once
 * there is some; all else (ready callbacks and tasks, timers) is in the
 * timeout. Ask for the timeout before every wait: work the outer loop's
 * own callbacks schedule on tide changes it. Between the calls the loop
 * is not running (tide_loop_is_running is false, suspending calls return
 * -EPERM). The rule for the fd holds for every backend, whatever it
 * waits with (an io_uring backend would hand out its ring fd, readable
 * while completions are pending), except the poll() fallback, which has
 * no such fd: there, let tide do the waiting with tide_loop_run_once(loop,
 * t), or run it in a thread of its own. */

/* Run one iteration of the loop, as tide_run_forever runs them: wait up
 * to `timeout` seconds for something to happen (0: never block;
 * INFINITY: until something does; no wait if anything is ready already),
 * fire the timers that are due, then run every callback and task step
 * ready at that point; what they schedule waits for the next call.
 * Returns 1 if anything is left to do (an unfinished task, a ready
 * callback, an armed timer, a threadsafe callback not yet taken in), 0
 * if not (another thread may still send one); -EINVAL if the loop is
 * closed or timeout is NaN or negative. Nests as tide_run_until_complete
 * does: called from a task or callback of the loop, it runs one
 * iteration right there, other tasks running meanwhile. tide_loop_stop,
 * tide_loop_close (-EBUSY meanwhile), -EXDEV and debug mode behave as with the
 * other runs; a stop made during the iteration is spent on it, so the
 * next call is not stopped. */
TIDE_API int tide_loop_run_once(tide_loop *loop, double timeout);

/* The fd to watch for readability (see above), owned by the loop: do not
 * read it or close it. epoll's own fd today. Returns the fd; -ENOTSUP on
 * the poll() backend; -EINVAL if the loop is closed. */
TIDE_API int tide_loop_backend_fd(tide_loop *loop);

/* How long the outer loop may wait before it calls tide_loop_run_once,
 * in seconds, stored in *seconds: 0 if anything is ready; the time until
 * the earliest timer fires (its slack included, so a wait that long finds
 * it due); INFINITY if no timer will ever fire (wait for the fd alone).
 * On the virtual clock 0 while a timer is armed: the next iteration
 * jumps to it. Round up when converting (to milliseconds, say), or the
 * outer loop wakes before the timer is due and comes back for nothing.
 * Returns 0; -EINVAL if seconds is NULL or the loop is closed. */
TIDE_API int tide_loop_backend_timeout(tide_loop *loop, double *seconds);

/* ---- Callbacks ------------------------------------------------------
 * A handle names a scheduled callback. It is a value, not a pointer:
 * cancelling a handle whose callback already ran (or was cancelled) is
 * harmless and returns false, by design. 0 is never a valid handle. */
typedef uint64_t tide_handle;

/* Run cb(arg) on a later loop step, after everything already ready.
 * Returns the handle; 0 with errno set (ENOMEM, EINVAL if cb is NULL). */
TIDE_API tide_handle tide_call_soon(tide_loop *loop, tide_callback cb,
                                    void *arg);

/* Run cb(arg) once `delay` seconds have passed (<= 0: on the next
 * iteration). Returns the handle; 0 with errno set (ENOMEM; EINVAL if cb
 * is NULL or delay is NaN). A huge delay never fires. */
TIDE_API tide_handle tide_call_later(tide_loop *loop, double delay,
                                     tide_callback cb, void *arg);

/* Run cb(arg) at loop time `when` (see tide_loop_time). As call_later. */
TIDE_API tide_handle tide_call_at(tide_loop *loop, double when,
                                  tide_callback cb, void *arg);

/* Cancel a scheduled callback. Returns true if it was pending and will
 * now never run; false if it already ran, was cancelled, or h is not a
 * handle of this loop. */
TIDE_API bool tide_handle_cancel(tide_loop *loop, tide_handle h);

/* From any thread: run cb(arg) on `loop` soon, waking it if it waits.
 * Callbacks from one thread run in the order they were sent. Returns 0;
 * -EINVAL if loop or cb is NULL; -ESHUTDOWN once tide_loop_close(loop)
 * has begun (or is over); -ENOMEM.
 * With close, every call has one of two outcomes, even when it races
 * tide_loop_close on another thread: it returns 0 and cb runs exactly
 * once, on the loop's thread, before tide_loop_close returns; or it
 * returns an error and cb never runs. A call may overlap
 * tide_loop_close, but the loop record must still exist: it lives until
 * close returns, and after that for as long as a future of the loop is
 * alive. So if other threads may still call once close is over, keep a
 * future of the loop (tide_future_new) until they have stopped, and
 * release it on the loop's thread afterwards. */
TIDE_API int tide_call_soon_threadsafe(tide_loop *loop, tide_callback cb,
                                       void *arg);

/* ---- Futures --------------------------------------------------------
 * A future is pending, then done exactly once: with a result (a void *),
 * an error (a negative errno), or cancelled (error -ECANCELED). Done
 * callbacks and waiters never run inside the call that completes the
 * future: they are scheduled on the loop, in the order they were added.
 * Futures are reference counted and stay valid after their loop closes. */

/* A new pending future on `loop`. NULL and errno (ENOMEM) on failure. */
TIDE_API tide_future *tide_future_new(tide_loop *loop);

/* Complete f with `value`. Returns 0; -EINVAL if f is NULL, already
 * done, or not a plain future (a task, a gather: nothing changes);
 * -ESHUTDOWN if f's loop is closed. */
TIDE_API int tide_future_set_result(tide_future *f, void *value);

/* Complete f with error `err` (a negative errno; -ECANCELED makes it
 * cancelled). Returns 0; -EINVAL if f is NULL, done, not a plain future,
 * or err >= 0; -ESHUTDOWN if f's loop is closed. */
TIDE_API int tide_future_set_error(tide_future *f, int err);

/* Request cancellation. A plain future is done (cancelled) at once; a
 * gather cancels its children; a task is asked to stop. Returns true if f
 * was pending and the request was made, false if f was done or NULL.
 *
 * The rule for tasks: an accepted request is never lost.
 * - It counts (tide_task_cancelling) and is delivered once, as -ECANCELED
 *   from a suspension point: the call the task is suspended in, or its
 *   next one if it is running (a request made while the task is queued
 *   to resume is delivered there; a lock or item granted meanwhile is
 *   passed on, in order).
 * - A task that awaits a future hands the request on to it (cancels it)
 *   and returns when it is done, with its outcome. If that outcome is not
 *   a cancellation (the awaited task swallowed the request, a gather
 *   failed with a child's error), the call returns it, so nothing is
 *   lost, and the request stays pending, to be delivered at the task's
 *   next suspension.
 * - A task whose body returns while a request is pending ends cancelled
 *   (its value is dropped). One that got the request and then returned
 *   normally is not cancelled.
 * - tide_task_uncancel down to 0 withdraws a pending request; timeout
 *   scopes withdraw and convert only their own. */
TIDE_API bool tide_future_cancel(tide_future *f);

/* Whether f is done (with a result, an error or cancelled), and whether
 * it is cancelled (done with -ECANCELED). */
TIDE_API bool tide_future_done(const tide_future *f);      /* false if NULL */
TIDE_API bool tide_future_cancelled(const tide_future *f); /* false if NULL */

/* f's outcome: 0 and its result in *value (if value is not NULL);
 * -EAGAIN if pending; -ECANCELED if cancelled; f's error if failed;
 * -EINVAL if f is NULL. */
TIDE_API int tide_future_result(const tide_future *f, void **value);

/* Call cb(f, arg) on the loop once f is done (scheduled, never inline,
 * even if f is already done). Returns 0; -EINVAL if f or cb is NULL;
 * -ENOMEM; -ESHUTDOWN if f's loop is closed. */
TIDE_API int tide_future_add_done_callback(
    tide_future *f, void (*cb)(tide_future *f, void *arg), void *arg);

/* Take a reference; returns f (NULL stays NULL). */
TIDE_API tide_future *tide_future_retain(tide_future *f);

/* Drop a reference; the last one frees f. NULL is ignored. Releasing a
 * future already freed is a bug the library cannot always see; debug mode
 * reports it (for the last 1024 futures freed on a loop). */
TIDE_API void tide_future_release(tide_future *f);

/* The loop f belongs to (borrowed; NULL if f is NULL or its loop closed). */
TIDE_API tide_loop *tide_future_get_loop(const tide_future *f);

/* ---- Tasks ----------------------------------------------------------
 * A task runs fn(arg) on its own stack; its result is fn's return value.
 * `return tide_fail(err);` ends it with error err. Creating a task never
 * runs its body: tasks start on a later loop step, in creation order. The
 * loop holds a reference to every pending task, so a released task still
 * runs to its end.
 *
 * Cancellation is a request (see tide_future_cancel for the whole rule).
 * A task that has not started ends cancelled without running. A
 * suspended task sees the call it is suspended in return -ECANCELED (a
 * request is delivered once); if it is awaiting a future, that future is
 * cancelled too and the await returns when it is done, with its outcome.
 * A body may clean up and return normally, in which case the task is not
 * cancelled. */

/* Create a task running fn(arg) on `loop`. Returns a new reference; NULL
 * and errno (EINVAL if fn is NULL, ENOMEM). */
TIDE_API tide_future *tide_create_task(tide_loop *loop, tide_fn fn, void *arg);

/* Options for tide_create_task_ex; zero-initialize, then set what you need. */
typedef struct tide_task_options {
    const char *name;  /* copied; NULL: "Task-<n>" */
    size_t stack_size; /* usable bytes; 0: the loop's default */
    bool eager;        /* run the body at once, inside tide_create_task_ex,
                        * until its first suspension (asyncio 3.12's eager
                        * task factory); only where the loop is running
                        * (in a task or callback), else scheduled as usual */
    bool compact;      /* share one stack with the loop's other compact
                        * tasks: while suspended, the task's frames are
                        * copied away, so a sleeping task costs the bytes
                        * its frames use, not a page of stack. Its locals
                        * must not be used by anyone else while it is
                        * suspended; tasks it starts eagerly are
                        * scheduled instead; stack_size must be 0. See
                        * "Compact tasks" in the README. */
} tide_task_options;

/* tide_create_task with options (opt may be NULL). Errors as
 * tide_create_task, plus EINVAL for a stack_size out of range. */
TIDE_API tide_future *tide_create_task_ex(tide_loop *loop, tide_fn fn,
                                          void *arg,
                                          const tide_task_options *opt);

/* The task running now, borrowed; NULL outside a task. */
TIDE_API tide_future *tide_current_task(void);

/* True if f is a task. */
TIDE_API bool tide_future_is_task(const tide_future *f);

/* Rename a task (the name is copied). Returns 0; -EINVAL if task is not a
 * task or name is NULL; -ENOMEM. */
TIDE_API int tide_task_set_name(tide_future *task, const char *name);

/* The task's name, borrowed until it is renamed or released; NULL if
 * task is not a task (errno EINVAL) or the default name cannot be made
 * (errno ENOMEM). */
TIDE_API const char *tide_task_get_name(tide_future *task);

/* asyncio's Task.cancelling(): cancel requests made on the task and not
 * withdrawn by tide_task_uncancel. -EINVAL if task is not a task. */
TIDE_API int tide_task_cancelling(const tide_future *task);

/* asyncio's Task.uncancel(): withdraw one cancel request; when none is
 * left, a request not yet delivered is dropped. Returns the remaining
 * count; -EINVAL if task is not a task. */
TIDE_API int tide_task_uncancel(tide_future *task);

/* The loop's unfinished tasks (asyncio.all_tasks): stores up to `cap` of
 * them in out[] as new references and returns how many there are (may be
 * more than cap; out may be NULL to count). */
TIDE_API size_t tide_all_tasks(tide_loop *loop, tide_future **out, size_t cap);

/* Wait until f is done. Returns 0 and f's result in *result (if not NULL),
 * or f's error. If the calling task is cancelled meanwhile, f is
 * cancelled too and the call returns once f is done: -ECANCELED if f
 * ended cancelled, else f's outcome, and the request stays pending for
 * the caller's next suspension (see tide_future_cancel). Errors: -EINVAL
 * (f NULL, on another loop, or the caller itself); -EPERM outside a task
 * unless f is already done. Suspends; borrows f. */
TIDE_API int tide_await(tide_future *f, void **result);

/* Suspend the calling task for `seconds` (<= 0: yield once, so that every
 * task already ready runs first). Returns 0; -ECANCELED if cancelled;
 * -EPERM outside a task; -EINVAL if seconds is NaN. A huge delay sleeps
 * until cancelled. Suspends. */
TIDE_API int tide_sleep(double seconds);

/* Use as `return tide_fail(err);` in a task body: the task ends with error
 * err (a negative errno; anything >= 0 becomes -EINVAL, and debug mode
 * reports it, naming the task and the value: tide_fail(EIO) is a common
 * slip for tide_fail(-EIO)). Returns NULL. Outside a task it does
 * nothing. */
TIDE_API void *tide_fail(int err);

/* ---- Combinators ---------------------------------------------------- */

#define TIDE_RETURN_ERRORS 1u

/* A future that completes when every fs[i] is done; its result is a
 * void *[n] of the children's results in order, owned by the gather.
 * Without TIDE_RETURN_ERRORS the first child error fails the gather at
 * once (the other children keep running); with it, a failed child's slot
 * is NULL. Cancelling the gather cancels its children. n == 0 gives a
 * future on tide_get_event_loop() done on its next step. Retains the
 * children. NULL and errno: EINVAL (fs NULL with n > 0, a NULL child,
 * children on different loops, unknown flags, the calling task among
 * them: it would wait for itself), ENOMEM. */
TIDE_API tide_future *tide_gather(tide_future *const *fs, size_t n,
                                  unsigned flags);

/* An iterator handing back fs[0..n) in the order they complete. Retains
 * them until tide_as_completed_free. NULL and errno: EINVAL (fs NULL with
 * n > 0, a NULL element, futures on different loops), ENOMEM. */
TIDE_API tide_as_completed *tide_as_completed_new(tide_future *const *fs,
                                                  size_t n);

/* The next future to complete: returns 1 with *next set (borrowed, valid
 * until the iterator is freed), 0 once all were handed out (a future given
 * more than once is handed out once, as asyncio's set does); -ECANCELED
 * if the calling task was cancelled (the futures are not); -EINVAL if it
 * or next is NULL, if the calling task is on another loop, or if it would
 * wait while the calling task is one of the futures (it would wait for
 * itself); -EBUSY if another task is already waiting on it; -EBADF if the
 * iterator was freed while this call waited (it is gone: do not use it
 * again); -EPERM outside a task when none is done yet. Suspends. */
TIDE_API int tide_as_completed_next(tide_as_completed *it, tide_future **next);

/* Free the iterator and release its futures. A task suspended in
 * tide_as_completed_next on it is woken with -EBADF. NULL is ignored. */
TIDE_API void tide_as_completed_free(tide_as_completed *it);

/* ---- Waiting and time limits ----------------------------------------
 * asyncio.wait, wait_for, timeout/timeout_at and shield. A time limit
 * works by cancelling the task that set it, exactly as asyncio does, and
 * turns that one cancellation (and only that one) into -ETIMEDOUT. */

#define TIDE_FIRST_COMPLETED 1 /* any future is done */
#define TIDE_FIRST_EXCEPTION 2 /* any fails (not cancelled), or all done */
#define TIDE_ALL_COMPLETED 3   /* every future is done */

/* Wait until `return_when` holds for fs[0..n) or `timeout` seconds pass
 * (INFINITY: no limit; <= 0: just look). Never cancels anything. Fills
 * done[] and pending[] (each may be NULL; room for n) with borrowed
 * pointers in fs order, and their counts. Returns 0 (also on timeout:
 * look at *npending); -ECANCELED if the calling task was cancelled (the
 * futures are not); -EINVAL (fs NULL or n == 0, as asyncio rejects an
 * empty set; a NULL or foreign future, futures of a loop other than the
 * calling task's, the calling task itself, a bad return_when, NaN
 * timeout); -EPERM outside a task unless the condition already holds;
 * -ENOMEM. Suspends. */
TIDE_API int tide_wait(tide_future *const *fs, size_t n, int return_when,
                       double timeout, tide_future **done, size_t *ndone,
                       tide_future **pending, size_t *npending);

/* Await f for at most `timeout` seconds (INFINITY: no limit). On timeout
 * f is cancelled, the call waits until f has really finished, and returns
 * -ETIMEDOUT, unless f completed anyway, in which case its result wins. A
 * cancellation of the caller is never turned into a timeout: it returns
 * -ECANCELED, or f's outcome if f swallowed the request, which then stays
 * pending (as tide_await). Otherwise as tide_await. Suspends; borrows f. */
TIDE_API int tide_wait_for(tide_future *f, double timeout, void **result);

typedef struct tide_timeout tide_timeout; /* opaque: a deadline scope */

/* Open a timeout scope in the calling task: if the scope is still open
 * `delay` seconds from now (INFINITY: never, until rescheduled; <= 0: on
 * the next iteration), the task is cancelled, so the call it is suspended
 * in returns -ECANCELED. Close it with tide_timeout_end; a body that
 * returns with scopes open has them closed for it (debug mode reports
 * it). Scopes nest. NULL and errno: EPERM outside a task, EINVAL for NaN,
 * ENOMEM. */
TIDE_API tide_timeout *tide_timeout_begin(double delay);
/* The same with an absolute deadline on the loop's clock. */
TIDE_API tide_timeout *tide_timeout_begin_at(double when);

/* Close the scope (innermost first) and free it. `err` is what the block
 * ended with; returns -ETIMEDOUT if this scope's deadline cancelled the
 * task and err is -ECANCELED, with no other cancel request pending;
 * otherwise err unchanged (so an outer scope, or a cancel from outside,
 * still sees -ECANCELED). Returns -EINVAL if t is NULL or not the
 * innermost open scope of the calling task (t is then not freed). */
TIDE_API int tide_timeout_end(tide_timeout *t, int err);

/* The scope's deadline on the loop's clock (INFINITY if none). */
TIDE_API double tide_timeout_when(const tide_timeout *t);

/* Move the deadline (INFINITY: none). Returns 0; -EINVAL (NULL, NaN);
 * -ESHUTDOWN if the scope already expired. */
TIDE_API int tide_timeout_reschedule(tide_timeout *t, double when);

/* True once the deadline passed and the scope cancelled its task. */
TIDE_API bool tide_timeout_expired(const tide_timeout *t);

/* asyncio.shield: a new future with f's outcome. Cancelling it (or
 * cancelling a task awaiting it) does not cancel f. If f is already done
 * returns f itself. Returns a new reference; NULL and errno (EINVAL: f
 * NULL or the calling task itself; ENOMEM). */
TIDE_API tide_future *tide_shield(tide_future *f);

/* ---- Task groups -------------------------------------------------------
 * asyncio.TaskGroup / Trio's nursery. Open a group in a task, spawn
 * children into it, then end it: ending waits for every child. The first
 * child failure cancels the other children and the task that owns the
 * group (so the block stops at its current suspension and gets to
 * tide_task_group_end); every child error is kept, in order. A cancel
 * from outside cancels every child and is reported, not swallowed. */

typedef struct tide_task_group tide_task_group;

/* A group owned by the calling task. NULL and errno: EPERM outside a
 * task, ENOMEM. */
TIDE_API tide_task_group *tide_task_group_new(void);

/* Spawn fn(arg) (opt may be NULL) into the group. Returns a new reference
 * to the task (the group holds its own). NULL and errno: EINVAL,
 * ESHUTDOWN if the group is aborting or ended, ENOMEM. */
TIDE_API tide_future *tide_task_group_spawn(tide_task_group *g, tide_fn fn,
                                            void *arg,
                                            const tide_task_options *opt);

/* Cancel every child (the group keeps running until they finish).
 * Returns 0; -EINVAL if g is NULL. */
TIDE_API int tide_task_group_cancel(tide_task_group *g);

/* Leave the group's block: `err` is how the block itself ended (0, or a
 * negative errno: a failure other than -ECANCELED cancels the children).
 * Waits until every child has finished, whatever happens meanwhile.
 * Returns -ECANCELED if the owning task was cancelled from outside; else
 * the block's own failure, else the first child failure; else 0. Call it
 * once, from the owning task. -EINVAL (NULL, ended, another task);
 * -EPERM outside a task; -EBADF if the group was freed while this call
 * waited (see tide_task_group_free: the group is gone, do not use or
 * free it again). Suspends. */
TIDE_API int tide_task_group_end(tide_task_group *g, int err);

/* The children's failures in the order they happened (not counting
 * cancellations): copies up to cap into errs, returns how many. */
TIDE_API size_t tide_task_group_errors(const tide_task_group *g, int *errs,
                                       size_t cap);

/* Free an ended group (or one never used) and release its children.
 * Freeing a group that has unfinished children cancels them first (they
 * finish on their own, outside the group). Freeing it while its owner
 * waits in tide_task_group_end is misuse, yet safe, as with every other
 * waitable object: the children are cancelled and let go, and that
 * tide_task_group_end returns -EBADF without touching the group again.
 * NULL is ignored. */
TIDE_API void tide_task_group_free(tide_task_group *g);

/* ---- Debug mode ---------------------------------------------------------
 * Enabled per loop, or for every new loop with TIDE_DEBUG=1 in the
 * environment. A debug loop reports, through its report handler (stderr
 * by default):
 * - a callback or task step that holds the loop longer than the slow
 *   callback duration (0.1 s by default), with the task's name and the
 *   file:line where it was created, when it ends, and, while it still
 *   holds the loop, on stderr: the task and a backtrace of where it is,
 *   once at the threshold and once more at ten times it (the watchdog;
 *   README, "Debug mode", says how it works and what a backtrace needs
 *   to show function names). The report at the step's end then carries
 *   that backtrace too;
 * - at close, every task still pending (it is then cancelled), and every
 *   failed future freed without anyone reading its error ("error was
 *   never retrieved", with the task's name and creation site);
 * - at close, every future made while debug mode was on and not released
 *   yet, with where it was made: release futures before closing their
 *   loop (releasing one later is valid, but the report cannot tell it
 *   from a leak);
 * - a release of a future that was already freed, with where it was
 *   made: the last 1024 futures freed on a loop keep their memory (and
 *   a mark) until the loop record goes;
 * - tide_fail with a value that is not a negative errno;
 * - a compact task passing a pointer into its own stack as the arg of a
 *   task or callback it creates (see tide_task_options.compact);
 * - on SIGQUIT or SIGUSR1 (tide's handler is their disposition while a
 *   debug loop is open; see tide/signal.h), a dump of every task, as
 *   tide_loop_dump writes it, on the next loop iteration; a handler the
 *   program set for them with tide_add_signal_handler runs too.
 * - a deadlock, at once: when a run would wait forever, every task waits
 *   and nothing can wake the loop (no task ready, no timer armed, no op
 *   or fd watch in flight, no call_soon_threadsafe pending, no signal
 *   handler set (tide_add_signal_handler), and no thread in the process
 *   but this one and the watchdog that could send one),
 *   the wait-for cycle if there is one ("deadlock: task 'a' waits on task
 *   'b', which waits on task 'a'"), the task dump, and failures nobody
 *   read that may be the cause; the run then returns -EDEADLK with the
 *   tasks still pending. tide_loop_run_once is never reported, nor a
 *   run_forever with no task. Without debug mode such a run blocks. */

/* Turn debug mode on or off. The first loop to turn it on starts the
 * watchdog thread (one per process), the last to turn it off or close
 * stops it. Returns 0; -EINVAL if the loop is closed; -EAGAIN, -EMFILE or
 * -ENOMEM if the watchdog thread cannot be started (debug mode stays
 * off). */
TIDE_API int tide_loop_set_debug(tide_loop *loop, bool on);
TIDE_API bool tide_loop_get_debug(tide_loop *loop);

/* The slow step threshold in seconds. Returns 0; -EINVAL (NaN, < 0). */
TIDE_API int tide_loop_set_slow_callback_duration(tide_loop *loop,
                                                  double seconds);

typedef void (*tide_report_fn)(tide_loop *loop, const char *message,
                               void *arg);

/* Where debug reports go (fn NULL: one line each on stderr). Returns 0;
 * -EINVAL if the loop is closed. */
TIDE_API int tide_loop_set_report_handler(tide_loop *loop, tide_report_fn fn,
                                          void *arg);

/* Write one line per unfinished task of the loop to fd: its name, state
 * (new, ready, running, waiting), what it waits on and who could end the
 * wait ("lock 'db' held by task 'b'", "task 'b'", "get from queue 'q' (0
 * of 4 items, ...)": README, "Finding a hang"), where it was created (debug
 * mode), and its stack's high-water mark. The tool for finding a hang. Returns
 * the number of tasks; -EINVAL; -errno from write. */
TIDE_API int tide_loop_dump(tide_loop *loop, int fd);

/* tide_create_task, tide_create_task_ex, tide_future_new, tide_gather,
 * tide_shield and tide_task_group_spawn are also macros that pass the
 * creation site along (recorded in debug mode); the functions exist too,
 * so their addresses can be taken. */
TIDE_API tide_future *tide__create_task_at(tide_loop *loop, tide_fn fn,
                                           void *arg,
                                           const tide_task_options *opt,
                                           const char *file, int line);
#define tide_create_task(loop, fn, arg) \
    tide__create_task_at((loop), (fn), (arg), NULL, __FILE__, __LINE__)
#define tide_create_task_ex(loop, fn, arg, opt) \
    tide__create_task_at((loop), (fn), (arg), (opt), __FILE__, __LINE__)
TIDE_API tide_future *tide__task_group_spawn_at(tide_task_group *g, tide_fn fn,
                                                void *arg,
                                                const tide_task_options *opt,
                                                const char *file, int line);
#define tide_task_group_spawn(g, fn, arg, opt) \
    tide__task_group_spawn_at((g), (fn), (arg), (opt), __FILE__, __LINE__)
TIDE_API tide_future *tide__future_new_at(tide_loop *loop, const char *file,
                                          int line);
#define tide_future_new(loop) tide__future_new_at((loop), __FILE__, __LINE__)
TIDE_API tide_future *tide__gather_at(tide_future *const *fs, size_t n,
                                      unsigned flags, const char *file,
                                      int line);
#define tide_gather(fs, n, flags) \
    tide__gather_at((fs), (n), (flags), __FILE__, __LINE__)
TIDE_API tide_future *tide__shield_at(tide_future *f, const char *file,
                                      int line);
#define tide_shield(f) tide__shield_at((f), __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif

#include "tide/sync.h" /* locks, events, conditions, semaphores, barriers,
                        * queues */

#endif /* TIDE_H */
