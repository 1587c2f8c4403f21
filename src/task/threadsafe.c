/* Completing a plain future from another thread
 * (tide_future_set_result_threadsafe / _set_error_threadsafe, declared in
 * tide/pool.h): a callback sent with tide_call_soon_threadsafe, which
 * completes the future on its loop's thread unless it is done by then.
 * SPDX-License-Identifier: MIT
 */
#include "task/future.h"

#include "tide/pool.h"

#include <errno.h>

struct setter {
    tide_future *f;
    void *value;
    int err;
};

static void set_now(void *arg)
{
    struct setter *s = arg;

    if (!s->f->done)
        tide__future_complete(s->f, s->err, s->err ? NULL : s->value);
    tide__free(s);
}

static int send_setter(tide_future *f, int err, void *value)
{
    if (!f || f->ops != &tide__future_plain_ops)
        return -EINVAL;
    struct setter *s = tide__malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    *s = (struct setter){.f = f, .value = value, .err = err};
    int r = tide_call_soon_threadsafe(f->loop, set_now, s);
    if (r < 0)
        tide__free(s);
    return r;
}

int tide_future_set_result_threadsafe(tide_future *f, void *value)
{
    return send_setter(f, 0, value);
}

int tide_future_set_error_threadsafe(tide_future *f, int err)
{
    if (err >= 0)
        return -EINVAL;
    return send_setter(f, err, NULL);
}
