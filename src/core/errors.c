/* Error names and messages, and what the build chose. One table maps
 * every errno tide returns to its name and message (libuv's UV_ERRNO_MAP
 * idea); any other errno gets the C library's name and description.
 * Everything returned is a static string, found without allocating,
 * locking or reading the locale, so these are safe in a signal handler
 * and from any thread (glibc 2.32 and later; see libc_message).
 * SPDX-License-Identifier: MIT
 */
#include "tide.h"

#include "arch/ctx.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define TIDE__ERRNO_MAP(X)                                        \
    X(ECANCELED, "operation canceled")                            \
    X(ETIMEDOUT, "timed out")                                     \
    X(EINVAL, "invalid argument")                                 \
    X(ENOMEM, "out of memory")                                    \
    X(EAGAIN, "not ready yet")                                    \
    X(EPERM, "not allowed outside a task")                        \
    X(EBUSY, "busy: the loop is running or the object is in use") \
    X(EINTR, "interrupted: the loop was stopped")                 \
    X(ESHUTDOWN, "shut down: the loop, queue or group is closed") \
    X(EOVERFLOW, "released more often than acquired")             \
    X(EPROTO, "protocol error")                                   \
    X(EIO, "input/output error")                                  \
    X(ENOENT, "no such file or directory")                        \
    X(EBADF, "bad file descriptor, or the object was freed")      \
    X(EMFILE, "too many open files")                              \
    X(EPIPE, "broken pipe")                                       \
    X(ECONNRESET, "connection reset by peer")                     \
    X(EDEADLK, "deadlock would occur")                            \
    X(EXDEV, "the loop's io_uring belongs to another thread")

/* glibc 2.32 added strerrordesc_np and strerrorname_np: static strings,
 * NULL for an unknown errno, no locale. TIDE__NO_ERRNO_NP (a test knob)
 * builds the fallback instead. */
#if defined(__GLIBC__) && !defined(TIDE__NO_ERRNO_NP) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#define HAVE_ERRNO_NP 1
#else
#define HAVE_ERRNO_NP 0
#endif

/* The errno that err stands for: err is a negative errno as tide returns
 * it, or a positive one as a constructor leaves in errno. -1 for INT_MIN,
 * whose negation does not exist (and which no errno is). */
static int errno_of(int err)
{
    unsigned m = err < 0 ? 0u - (unsigned)err : (unsigned)err;

    return m > INT_MAX ? -1 : (int)m;
}

/* The C library's description of errno e, or NULL if it has none. */
static const char *libc_message(int e)
{
#if HAVE_ERRNO_NP
    return strerrordesc_np(e);
#else
    /* A per-thread copy: thread-safe, but not static and not for signal
     * handlers. */
    static _Thread_local char buf[128];
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, sizeof buf); /* GNU: may not use buf */
#else
    return strerror_r(e, buf, sizeof buf) == 0 ? buf : NULL; /* XSI */
#endif
#endif
}

const char *tide_strerror(int err)
{
    int e = errno_of(err);

    switch (e) {
    case -1:
        return "unknown error";
    case 0:
        return "success";
#define X(name, msg) \
    case name:       \
        return msg;
        TIDE__ERRNO_MAP(X)
#undef X
    default: {
        const char *s = libc_message(e);
        return s && *s ? s : "unknown error";
    }
    }
}

const char *tide_err_name(int err)
{
    int e = errno_of(err);

    switch (e) {
    case -1:
        return "UNKNOWN";
    case 0:
        return "OK";
#define X(name, msg) \
    case name:       \
        return #name;
        TIDE__ERRNO_MAP(X)
#undef X
    default: {
#if HAVE_ERRNO_NP
        const char *s = strerrorname_np(e);
        if (s && *s)
            return s;
#endif
        return "UNKNOWN";
    }
    }
}

const char *tide_switch_method(void)
{
    return TIDE__CTX_METHOD;
}
