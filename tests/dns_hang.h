/* A resolver that hangs, for the DNS tests (test_dns.c, test_connect.c):
 * set tide__dns_hook = hang, and every lookup on a pool thread counts
 * itself in `hung`, then spins until `release` is 1, standing for a
 * resolver that does not answer. A numeric lookup, resolved inline, never
 * reaches the hook.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_TEST_DNS_HANG_H
#define TIDE_TEST_DNS_HANG_H

#include <sched.h>
#include <stdatomic.h>

extern void (*tide__dns_hook)(void);

static atomic_int hung;    /* lookups inside the hook */
static atomic_int release; /* the hook returns once this is 1 */

static void hang(void)
{
    atomic_fetch_add(&hung, 1);
    while (!atomic_load(&release))
        sched_yield();
}

#endif
