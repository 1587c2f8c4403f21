/* Error names and messages, and what the build chose. One table maps
 * every errno tide returns to its message (libuv's UV_ERRNO_MAP idea).
 * SPDX-License-Identifier: MIT
 */
#include "tide.h"

#include "arch/ctx.h"

#include <errno.h>

#define TIDE__ERRNO_MAP(X)                                              \
    X(ECANCELED, "operation canceled")                                  \
    X(ETIMEDOUT, "timed out")                                           \
    X(EINVAL, "invalid argument")                                       \
    X(ENOMEM, "out of memory")                                          \
    X(EAGAIN, "not ready yet")                                          \
    X(EPERM, "not allowed outside a task")                              \
    X(EBUSY, "busy: the loop is running or the object is in use")      \
    X(EINTR, "interrupted: the loop was stopped")                       \
    X(ESHUTDOWN, "shut down: the loop, queue or group is closed")      \
    X(EOVERFLOW, "released more often than acquired")                   \
    X(EPROTO, "protocol error")                                         \
    X(EIO, "input/output error")                                        \
    X(ENOENT, "no such file or directory")                              \
    X(EBADF, "bad file descriptor, or the object was freed")            \
    X(EMFILE, "too many open files")                                    \
    X(EPIPE, "broken pipe")                                             \
    X(ECONNRESET, "connection reset by peer")                           \
    X(EDEADLK, "deadlock would occur")

const char *tide_strerror(int err)
{
    switch (-err) {
    case 0:
        return "success";
#define X(name, msg) \
    case name:       \
        return msg;
        TIDE__ERRNO_MAP(X)
#undef X
    default:
        return "unknown error";
    }
}

const char *tide_switch_method(void)
{
    return TIDE__CTX_METHOD;
}
