/* stop_signal.h: wait in a task until SIGINT or SIGTERM arrives, for the
 * programs that were written before tide had a signal API. It is a thin
 * wrapper over tide/signal.h now: new code calls tide_add_signal_handler
 * (or tide_cancel_on_signals, as echo_server.c does) itself.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_EXAMPLES_STOP_SIGNAL_H
#define TIDE_EXAMPLES_STOP_SIGNAL_H

#include <tide.h>
#include <tide/signal.h>
#include <tide/sync.h>

#include <errno.h>

/* Once in main, before tide_run. It blocked the two signals while they
 * were read from a signalfd; tide's handlers need them unblocked, so it
 * does nothing now. Returns 0. */
static int stop_signal_block(void)
{
    return 0;
}

static void stop_signal_seen(void *stop)
{
    tide_event_set(stop);
}

/* In a task: wait until SIGINT or SIGTERM arrives (the loop's handlers
 * for them are set meanwhile, and removed after). 0, or a negative
 * errno. */
static int stop_signal_wait(void)
{
    tide_event *stop = tide_event_new();
    int err = stop ? 0 : -ENOMEM;

    if (!err)
        err = tide_add_signal_handler(NULL, SIGINT, stop_signal_seen, stop);
    if (!err)
        err = tide_add_signal_handler(NULL, SIGTERM, stop_signal_seen, stop);
    if (!err)
        err = tide_event_wait(stop);
    tide_remove_signal_handler(NULL, SIGINT);
    tide_remove_signal_handler(NULL, SIGTERM);
    tide_event_free(stop);
    return err;
}

#endif
