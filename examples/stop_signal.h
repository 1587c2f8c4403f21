/* stop_signal.h: the example servers' way to stop on SIGINT or SIGTERM
 * until tide has a signal API (issue 10): the signals are blocked for the
 * whole process in main, before tide_run (so in every thread and every
 * context: the ucontext switch saves and restores the signal mask per
 * context, so a mask set inside a task would not hold in the loop), and
 * read from a signalfd that a reader callback watches.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_EXAMPLES_STOP_SIGNAL_H
#define TIDE_EXAMPLES_STOP_SIGNAL_H

#include <tide.h>
#include <tide/io.h>
#include <tide/sync.h>

#include <signal.h>
#include <sys/signalfd.h>

/* In main, before tide_run: block SIGINT and SIGTERM. 0 or -1. */
static int stop_signal_block(void)
{
    sigset_t sigs;

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    return sigprocmask(SIG_BLOCK, &sigs, NULL);
}

static void stop_signal_seen(void *stop)
{
    tide_event_set(stop);
}

/* In a task: wait until SIGINT or SIGTERM arrives. 0, or a negative
 * errno if the signalfd cannot be made or watched. */
static int stop_signal_wait(void)
{
    sigset_t sigs;

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    tide_event *stop = tide_event_new();
    int err = sfd < 0 || !stop ? -1 : 0;
    if (!err)
        err = tide_add_reader(NULL, sfd, stop_signal_seen, stop);
    if (!err)
        err = tide_event_wait(stop);
    if (sfd >= 0)
        tide_close(sfd);
    tide_event_free(stop);
    return err;
}

#endif
