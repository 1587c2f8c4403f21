/* Error names and messages: tide's own table, the C library's fallback
 * for every other errno, both signs of an errno, 0, values that are no
 * errno, and INT_MIN (whose negation would overflow: UBSan watches);
 * and the harness's CHECK_ERR, which prints codes by these names.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#define LIBC_HAS_ERRNO_NP 1
#else
#define LIBC_HAS_ERRNO_NP 0
#endif

TEST(strerror_own_messages_for_both_signs)
{
    CHECK_STR_EQ(tide_strerror(-ECANCELED), "operation canceled");
    CHECK_STR_EQ(tide_strerror(ECANCELED), "operation canceled");
    CHECK_STR_EQ(tide_strerror(-ETIMEDOUT), "timed out");
    CHECK_STR_EQ(tide_strerror(-EBADF),
                 "bad file descriptor, or the object was freed");
    CHECK_STR_EQ(tide_strerror(ESHUTDOWN), tide_strerror(-ESHUTDOWN));
    CHECK_STR_EQ(tide_strerror(0), "success");
    LEAK_GATE();
}

TEST(strerror_falls_back_to_the_c_library)
{
    /* Not in tide's table: the C library's wording. */
    if (!LIBC_HAS_ERRNO_NP)
        SKIP("the C library's messages need glibc 2.32 or later here");
    CHECK_STR_EQ(tide_strerror(-ECONNREFUSED), "Connection refused");
    CHECK_STR_EQ(tide_strerror(ECONNREFUSED), "Connection refused");
    CHECK_STR_EQ(tide_strerror(-EADDRINUSE), strerror(EADDRINUSE));
    CHECK_STR_EQ(tide_strerror(-ENOSPC), strerror(ENOSPC));
    LEAK_GATE();
}

TEST(strerror_of_values_that_are_no_errno)
{
    /* INT_MIN: -INT_MIN overflows; UBSan (halt_on_error) would end the
     * test if the code negated it. */
    CHECK_STR_EQ(tide_strerror(INT_MIN), "unknown error");
    CHECK_NOT_NULL(tide_strerror(INT_MAX));
    CHECK_NOT_NULL(tide_strerror(INT_MIN + 1));
    CHECK_NOT_NULL(tide_strerror(-99999));
    CHECK_NOT_NULL(tide_strerror(12345));
    if (LIBC_HAS_ERRNO_NP) {
        CHECK_STR_EQ(tide_strerror(INT_MAX), "unknown error");
        CHECK_STR_EQ(tide_strerror(INT_MIN + 1), "unknown error");
        CHECK_STR_EQ(tide_strerror(-99999), "unknown error");
        CHECK_STR_EQ(tide_strerror(12345), "unknown error");
    }
    LEAK_GATE();
}

TEST(err_name_gives_symbolic_names)
{
    CHECK_STR_EQ(tide_err_name(-ECANCELED), "ECANCELED");
    CHECK_STR_EQ(tide_err_name(ECANCELED), "ECANCELED");
    CHECK_STR_EQ(tide_err_name(-ETIMEDOUT), "ETIMEDOUT");
    CHECK_STR_EQ(tide_err_name(-EAGAIN), "EAGAIN");
    CHECK_STR_EQ(tide_err_name(-EDEADLK), "EDEADLK");
    CHECK_STR_EQ(tide_err_name(-ESHUTDOWN), "ESHUTDOWN");
    CHECK_STR_EQ(tide_err_name(0), "OK");
    if (LIBC_HAS_ERRNO_NP) {
        CHECK_STR_EQ(tide_err_name(-ECONNREFUSED), "ECONNREFUSED");
        CHECK_STR_EQ(tide_err_name(EADDRINUSE), "EADDRINUSE");
    } else {
        CHECK_STR_EQ(tide_err_name(-ECONNREFUSED), "UNKNOWN");
    }
    LEAK_GATE();
}

TEST(err_name_of_values_that_are_no_errno)
{
    CHECK_STR_EQ(tide_err_name(INT_MIN), "UNKNOWN");
    CHECK_STR_EQ(tide_err_name(INT_MIN + 1), "UNKNOWN");
    CHECK_STR_EQ(tide_err_name(INT_MAX), "UNKNOWN");
    CHECK_STR_EQ(tide_err_name(-99999), "UNKNOWN");
    CHECK_STR_EQ(tide_err_name(12345), "UNKNOWN");
    LEAK_GATE();
}

/* Every errno the C library knows has a name and a message, and tide's
 * own never fall through to "unknown". */
TEST(every_errno_has_a_message_and_a_name)
{
    static const int own[] = {
        ECANCELED, ETIMEDOUT, EINVAL,    ENOMEM,    EAGAIN,     EPERM,
        EBUSY,     EINTR,     ESHUTDOWN, EOVERFLOW, EPROTO,     EIO,
        ENOENT,    EBADF,     EMFILE,    EPIPE,     ECONNRESET, EDEADLK,
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        CHECK(strcmp(tide_strerror(-own[i]), "unknown error") != 0);
        CHECK(strcmp(tide_err_name(-own[i]), "UNKNOWN") != 0);
        CHECK(tide_err_name(-own[i])[0] == 'E');
    }
    for (int e = 1; e < 200; e++) {
        CHECK_NOT_NULL(tide_strerror(-e));
        CHECK_NOT_NULL(tide_err_name(-e));
        CHECK_STR_EQ(tide_strerror(-e), tide_strerror(e));
        CHECK_STR_EQ(tide_err_name(-e), tide_err_name(e));
    }
    LEAK_GATE();
}

static void *strerror_from_a_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        int e = 1 + i % 150;
        if (!tide_strerror(-e) || !tide_err_name(-e))
            return NULL;
    }
    return (void *)1;
}

TEST(strerror_and_err_name_from_several_threads)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, strerror_from_a_thread, NULL),
                 0);
    for (int i = 0; i < 4; i++) {
        void *ok = NULL;
        CHECK_EQ(pthread_join(th[i], &ok), 0);
        CHECK(ok != NULL);
    }
    LEAK_GATE();
}

/* The harness's CHECK_ERR fails naming both codes; run in a child, whose
 * stderr is the message. */
struct check_err_case {
    long long got, want;
    const char *says;
};

static void check_err_child(void *arg)
{
    const struct check_err_case *c = arg;

    CHECK_ERR(c->got, c->want);
    _exit(0);
}

TEST(check_err_names_both_codes)
{
    static const struct check_err_case cases[] = {
        {-EAGAIN, -ECANCELED, "got -EAGAIN, want -ECANCELED"},
        {0, -ETIMEDOUT, "got 0, want -ETIMEDOUT"},
        {1, -EPERM, "got 1, want -EPERM"},           /* a count is no errno */
        {ENOMEM, EINVAL, "got ENOMEM, want EINVAL"}, /* errno's sign */
        {-99999, 0, "got -99999, want 0"},           /* no errno at all */
        {INT_MIN, -EIO, "got -2147483648, want -EIO"},
    };
    char buf[512];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status = harness_run_child(check_err_child, (void *)&cases[i], buf,
                                       sizeof buf);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        if (!strstr(buf, cases[i].says))
            harness_fail(__FILE__, __LINE__, "wanted \"%s\" in: %s",
                         cases[i].says, buf);
        CHECK(strstr(buf, "CHECK_ERR(c->got, c->want)") != NULL);
    }
    struct check_err_case same = {-EBADF, -EBADF, ""};
    int status = harness_run_child(check_err_child, &same, buf, sizeof buf);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* equal: passes */
    LEAK_GATE();
}
