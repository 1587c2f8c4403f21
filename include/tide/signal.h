/* tide/signal.h: Unix signals delivered to loops (asyncio's
 * loop.add_signal_handler and loop.remove_signal_handler), and
 * asyncio.run's Ctrl-C handling (tide_cancel_on_signals).
 *
 * Include it after (or instead of) tide.h; it brings <signal.h>.
 *
 * The rules:
 * - A handler is a loop callback, never a signal handler: it runs on its
 *   loop's thread, scheduled as tide_call_soon would schedule it, in the
 *   first iteration after the signal arrives (a loop stuck in a long
 *   callback runs it once that returns; a loop that is not running, at
 *   its next iteration). It may call anything a callback may.
 * - Deliveries coalesce: a signal that arrives several times before its
 *   callback runs runs it once.
 * - Every loop that has a handler for a signal gets every delivery of
 *   it, whichever thread the kernel delivers it in: two loops in two
 *   threads with a handler for SIGTERM both run theirs. A loop has at
 *   most one handler per signal: setting one again replaces it (a
 *   delivery not yet run runs the new one). Signals that arrived in the
 *   same iteration run their handlers in the order they were first set.
 * - Dispositions: while any loop has a handler for a signal (or tide
 *   watches it for itself: debug mode's SIGUSR1 and SIGQUIT), tide's own
 *   async-signal-safe handler (SA_RESTART, SA_ONSTACK) is the signal's
 *   disposition. The first loop to take a signal saves the disposition
 *   there was, and when the last one lets go of it (removes its handler,
 *   or closes) that disposition is restored exactly: its handler, flags
 *   and mask; SIG_IGN stays SIG_IGN. If the program replaced tide's
 *   disposition meanwhile, with sigaction or signal, its own stays.
 * - tide neither blocks nor unblocks signals: one blocked in every thread
 *   is never delivered.
 * - Debug mode: a loop in debug mode dumps its tasks to stderr on SIGUSR1
 *   and SIGQUIT (tide_loop_set_debug) and also runs its handler for them
 *   if it has one: one does not replace the other.
 * - A loop with a handler counts as one that something outside may wake,
 *   so debug mode does not call it deadlocked while its tasks wait for a
 *   signal.
 * - Like every call on a loop, these are made on the loop's thread.
 * - After fork(), the child must not use the parent's loops (tide.h), nor
 *   their handlers; a new loop in the child starts with no signal
 *   pending.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_SIGNAL_H
#define TIDE_SIGNAL_H

#include <tide.h>

#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Run cb(arg) on `loop` after every delivery of signal `signo` (see the
 * rules above), until tide_remove_signal_handler or tide_loop_close.
 * Replaces the loop's handler for signo if it has one. Returns 0;
 * -EINVAL if signo is not a signal that can be caught (0, negative,
 * NSIG or above, SIGKILL, SIGSTOP, glibc's reserved real-time signals)
 * or is a fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE: a handler must act
 * where the fault happens), if cb is NULL or the loop is closed;
 * -ENOMEM. Nothing changes on failure. Borrows arg. Never suspends. */
TIDE_API int tide_add_signal_handler(tide_loop *loop, int signo,
                                     tide_callback cb, void *arg);

/* Remove the loop's handler for signo; a delivery whose callback has not
 * run yet is dropped. The last handler for signo in the process gives
 * back the disposition there was before (see above). Returns 1 if the
 * loop had a handler for signo, 0 if not; -EINVAL as
 * tide_add_signal_handler for signo, or if the loop is closed. */
TIDE_API int tide_remove_signal_handler(tide_loop *loop, int signo);

/* asyncio.run's Ctrl-C: set the loop's handlers for SIGINT and SIGTERM
 * so that the first of them to arrive cancels `task` (a request, as
 * tide_future_cancel makes: the task's cleanups run; a task started by
 * tide_run, whose main it is, makes tide_run return -ECANCELED, or
 * main's own result if it handles the cancellation and returns
 * normally). From then on, a second SIGINT or SIGTERM ends the process
 * at once with that signal's default action (from tide's signal
 * handler: it works while the loop is stuck in a callback), as a second
 * Ctrl-C does under asyncio.run (which raises KeyboardInterrupt) and
 * after Go's signal.NotifyContext has stopped. Both signals are taken
 * whatever their disposition was, SIG_IGN included (a shell script's
 * background job ignores SIGINT: `kill -INT` still stops it; asyncio.run
 * leaves a SIGINT it finds changed alone). The handlers are ordinary ones:
 * setting another for SIGINT or SIGTERM replaces it,
 * tide_remove_signal_handler removes it, the loop's close removes both.
 * Typically, first thing in tide_run's main: tide_cancel_on_signals(NULL,
 * tide_current_task()). Returns 0; -EINVAL if task is not a task of `loop` or
 * the loop is closed; -ENOMEM. Retains task until both handlers are gone. */
TIDE_API int tide_cancel_on_signals(tide_loop *loop, tide_future *task);

#ifdef __cplusplus
}
#endif

#endif
