/* The consumer's program (tests/consumer/CMakeLists.txt): runs a task
 * that sleeps and doubles its argument, and checks that the headers, the
 * library it runs with and the package it was found through agree on
 * the version. Prints "42 <version> <switch method>"; exits 1 on any
 * disagreement or error.
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <tide.h>

static void *twice(void *arg)
{
    int err = tide_sleep(0.01);
    return err < 0 ? tide_fail(err) : (void *)((intptr_t)arg * 2);
}

int main(void)
{
    void *result = NULL;
    int err;

    if (strcmp(TIDE_VERSION_STRING, EXPECT_VERSION) != 0 ||
        strcmp(tide_version(), TIDE_VERSION_STRING) != 0 ||
        tide_version_number() != TIDE_VERSION_NUMBER) {
        fprintf(stderr,
                "app: versions disagree: headers %s, library %s, "
                "package %s\n",
                TIDE_VERSION_STRING, tide_version(), EXPECT_VERSION);
        return 1;
    }
    err = tide_run(twice, (void *)(intptr_t)21, &result);
    if (err < 0) {
        fprintf(stderr, "app: %s\n", tide_strerror(err));
        return 1;
    }
    printf("%ld %s %s\n", (long)(intptr_t)result, tide_version(),
           tide_switch_method());
    return 0;
}
