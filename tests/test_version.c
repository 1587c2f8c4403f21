/* The version has one source (project() in CMakeLists.txt): the
 * generated tide/version.h and the library's tide_version() and
 * tide_version_number() must all say the same, and say it in the
 * documented shapes ("major.minor.patch", 0xMMmmpp).
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include <stdio.h>

/* The number is usable in #if, and built from the parts. */
#if TIDE_VERSION_NUMBER != (TIDE_VERSION_MAJOR * 65536 + \
                            TIDE_VERSION_MINOR * 256 + TIDE_VERSION_PATCH)
#error "TIDE_VERSION_NUMBER does not match its parts"
#endif

/* "a.b.c" with nothing else: the three parts, or -1 for each if s is not
 * of that shape. */
static void parse_version(const char *s, long parts[3])
{
    unsigned a, b, c;
    int end = -1;

    parts[0] = parts[1] = parts[2] = -1;
    if (sscanf(s, "%u.%u.%u%n", &a, &b, &c, &end) == 3 && end >= 0 &&
        s[end] == '\0') {
        parts[0] = a;
        parts[1] = b;
        parts[2] = c;
    }
}

TEST(header_string_matches_its_parts_and_the_project)
{
    long parts[3];

    parse_version(TIDE_VERSION_STRING, parts);
    CHECK_EQ(parts[0], TIDE_VERSION_MAJOR);
    CHECK_EQ(parts[1], TIDE_VERSION_MINOR);
    CHECK_EQ(parts[2], TIDE_VERSION_PATCH);
    CHECK(TIDE_VERSION_MINOR < 256 && TIDE_VERSION_PATCH < 256);
    /* tests/CMakeLists.txt passes project()'s version itself. */
    CHECK_STR_EQ(TIDE_VERSION_STRING, TIDE_TEST_PROJECT_VERSION);
    LEAK_GATE();
}

TEST(run_time_version_agrees_with_the_headers)
{
    long parts[3];

    CHECK_NOT_NULL(tide_version());
    CHECK_STR_EQ(tide_version(), TIDE_VERSION_STRING);
    CHECK_EQ(tide_version_number(), TIDE_VERSION_NUMBER);
    /* The string and the number of the library agree with each other,
     * read apart from the headers' macros. */
    parse_version(tide_version(), parts);
    CHECK(parts[0] >= 0);
    CHECK_EQ(tide_version_number(),
             (parts[0] << 16) | (parts[1] << 8) | parts[2]);
    /* Static: the same pointer every time. */
    CHECK(tide_version() == tide_version());
    LEAK_GATE();
}
