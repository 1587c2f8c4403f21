/* Waiting on pool threads in tests (test_pool.c, test_dns.c): for a
 * counter the jobs bump, and for every job to be done with (abandoned
 * ones too, whose threads free their results), which must come before a
 * leak gate; that one then ends the pool's threads (tide__pool_stop),
 * so memcheck finds nothing they kept. Each gives up (a failed CHECK)
 * after 5 s.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_TEST_POOL_WAIT_H
#define TIDE_TEST_POOL_WAIT_H

#include "harness.h"

#include "io/io.h"

#include <sched.h>
#include <stdatomic.h>

static inline void wait_for(atomic_int *v, int n)
{
    double end = harness_now() + 5;
    while (atomic_load(v) < n) {
        CHECK(harness_now() < end);
        sched_yield();
    }
}

static inline void pool_quiet(void)
{
    double end = harness_now() + 5;
    while (tide__pool_live() > 0) {
        CHECK(harness_now() < end);
        sched_yield();
    }
    tide__pool_stop(); /* the threads' own state goes too (valgrind) */
}

#endif
