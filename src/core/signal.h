/* Signals inside the library: the process-wide registry of signal.c, as
 * the layers above use it (tide/signal.h is the program's side of it).
 *
 * A watch asks for fn(arg) to run on its loop, as a scheduled callback,
 * after a signal arrives. The program's handler for a signal on a loop
 * (tide_add_signal_handler: at most one, replaced when set again) is one
 * kind of watch; the library's own watches (debug mode's dump on SIGUSR1
 * and SIGQUIT, a child-process fallback on SIGCHLD) are the other kind:
 * any number of them may watch a signal on a loop beside the program's
 * handler, which neither replaces nor sees them. Every watch of a signal
 * runs on every delivery (deliveries before its callback runs coalesce).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_CORE_SIGNAL_H
#define TIDE_CORE_SIGNAL_H

#include "core/loop.h"

struct tide__sigwatch;

/* A library watch of signo on loop. drop(arg), if not NULL, runs once the
 * watch is removed (by tide__signal_remove or the loop's close). Library
 * watches do not count as something that may wake the loop in debug
 * mode's hang check (tide__loop_external_pending): their owner counts
 * what it waits for. Returns the watch (owned by the loop: valid until
 * removed or the loop closes); NULL with *err set: -EINVAL if signo
 * cannot be watched (see tide_add_signal_handler), -ENOMEM, or
 * sigaction's error. Loop thread only. */
struct tide__sigwatch *tide__signal_add(tide_loop *loop, int signo,
                                        tide_callback fn, void *arg,
                                        void (*drop)(void *arg), int *err);

/* Remove a watch (NULL: nothing). A delivery whose callback has not run
 * yet is dropped. The last watch of a signal in the process gives its
 * disposition back. */
void tide__signal_remove(tide_loop *loop, struct tide__sigwatch *w);

/* Set or replace the program's handler for signo on loop
 * (tide_add_signal_handler), with drop as above. 0 or as
 * tide__signal_add. */
int tide__signal_set_handler(tide_loop *loop, int signo, tide_callback fn,
                             void *arg, void (*drop)(void *arg));

/* If loop's handler for signo is fn: from now on, until it is removed or
 * replaced, a delivery of signo ends the process with signo's default
 * action, from the signal handler itself (the second Ctrl-C of
 * tide_cancel_on_signals: it works while the loop is stuck). */
void tide__signal_arm_fatal(tide_loop *loop, int signo, tide_callback fn);

/* Schedule the watches of the signals that arrived (sched.c, every
 * iteration of a loop with a watch: loop->sigrec not NULL). */
void tide__signal_poll(tide_loop *loop);

/* The loop closes: remove every watch it has (loop.c). */
void tide__signal_close(tide_loop *loop);

#endif
