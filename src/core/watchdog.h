/* The watchdog of debug mode: a step that holds its loop past the slow
 * step threshold is reported while it still does, with the task and a
 * backtrace of where it is (watchdog.c says how).
 *
 * debug.c drives it: tide__watch_open when a loop turns debug mode on,
 * tide__watch_close when it turns it off or closes, tide__watch_begin and
 * tide__watch_end around every step (debug mode only), and
 * tide__watch_trace when it reports a slow step at its end.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_CORE_WATCHDOG_H
#define TIDE_CORE_WATCHDOG_H

#include "tide.h"

#include <stddef.h>

/* Watch the loop's steps (loop->watch), starting the process's watchdog
 * thread if it is the first loop watched. Returns 0, also when the loop
 * is left unwatched (TIDE_WATCHDOG_SIGNAL=0 or not a usable signal, or
 * every slot taken: loop->watch stays NULL); -ENOMEM, -EAGAIN or
 * another negative errno if the thread or its eventfd cannot be had. */
int tide__watch_open(tide_loop *loop);

/* Stop watching the loop; the last one stops the thread (joined: no
 * signal is sent for the loop once this returns). */
void tide__watch_close(tide_loop *loop);

/* The loop's slow step threshold changed. */
void tide__watch_set_slow(tide_loop *loop);

/* A step begins (the running coroutine is loop->current, NULL for a
 * callback) and ends. No lock, no system call. */
void tide__watch_begin(tide_loop *loop);
void tide__watch_end(tide_loop *loop);

/* If the watchdog caught the step that just ended while it blocked: msg
 * followed by where it caught it, in a new buffer (tide__free it); else,
 * or if there is no memory for it, NULL. */
char *tide__watch_trace(tide_loop *loop, const char *msg);

#endif
