/* A stream: one connected socket with a read buffer and a write queue
 * (asyncio's StreamReader and StreamWriter over a transport). See
 * tide/stream.h for the rules.
 *
 * Reading: one buffer of `limit` bytes, allocated with the stream, holds
 * [rstart, rend). Reads hand out pointers into it and only move rstart;
 * the bytes are moved to the front only at the start of a later read,
 * so a borrowed pointer stays valid until then. Every receive lands in
 * the buffer (or straight in the caller's buffer when the stream's is
 * empty), so a cancelled read has lost nothing.
 *
 * Writing: a write sends at once when nothing is queued; the rest goes
 * to a queue, [wstart, wend) of a buffer grown on demand, and a writer
 * callback on the loop (tide_add_writer) sends it in the background and
 * wakes drainers (a tide_event) once the queue is down to the low-water
 * mark. In steady state (the socket takes each write) nothing is
 * allocated and no callback is armed.
 *
 * Lifetime: `refs` counts the owner (dropped by close or abort), calls
 * suspended in the stream, and a server's connection task. The fd is
 * closed at once by close/abort (waking suspended calls with -EBADF);
 * the memory goes with the last reference.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "base/sys.h"

#include <tide/stream.h>
#include <tide/sync.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/socket.h>

#define DEFAULT_LIMIT ((size_t)64 * 1024)
#define DEFAULT_HIGH ((size_t)64 * 1024)
#define DEFAULT_LOW ((size_t)16 * 1024)

struct tide_stream {
    int fd;   /* -1 once closed */
    int refs; /* owner + suspended calls + server task */
    int err;  /* sticky send error (< 0), or 0 */
    tide_loop *loop;
    /* reading */
    char *rbuf; /* rcap bytes; [rstart, rend) buffered */
    size_t rcap, rstart, rend;
    size_t scanned; /* readuntil: bytes after rstart without sep */
    bool eof;       /* the peer closed its side */
    bool reading;   /* a read is suspended */
    /* writing */
    char *wbuf; /* wcap bytes; [wstart, wend) queued */
    size_t wcap, wstart, wend;
    size_t high, low; /* drain's water marks */
    bool flushing;    /* the writer callback is armed */
    bool eof_wanted;  /* write_eof: shut down once the queue is empty */
    bool eof_sent;
    tide_event *drained; /* set when queued <= low, or error, or closed */
};

static void flush_cb(void *arg);

static size_t queued(const tide_stream *s)
{
    return s->wend - s->wstart;
}

static void hold(tide_stream *s)
{
    s->refs++;
}

static void release(tide_stream *s)
{
    if (--s->refs > 0)
        return;
    tide_event_free(s->drained);
    tide__free(s->rbuf);
    tide__free(s->wbuf);
    tide__free(s);
}

void tide__stream_hold(tide_stream *s)
{
    hold(s);
}

void tide__stream_release(tide_stream *s)
{
    release(s);
}

bool tide__stream_closed(const tide_stream *s)
{
    return s->fd < 0;
}

tide_stream *tide_stream_new(int fd, size_t limit)
{
    if (fd < 0) {
        errno = EBADF;
        return NULL;
    }
    tide_loop *loop = tide__loop_resolve(NULL);
    if (!loop || loop->closed) {
        errno = EINVAL;
        return NULL;
    }
    int fl = tide__sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0 || (!(fl & O_NONBLOCK) &&
                   tide__sys_fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return NULL; /* errno: EBADF */
    tide_stream *s = tide__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->rcap = limit ? limit : DEFAULT_LIMIT;
    s->rbuf = tide__malloc(s->rcap);
    s->drained = tide_event_new();
    if (!s->rbuf || !s->drained) {
        tide_event_free(s->drained);
        tide__free(s->rbuf);
        tide__free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->fd = fd;
    s->refs = 1;
    s->loop = loop;
    s->high = DEFAULT_HIGH;
    s->low = DEFAULT_LOW;
    tide_event_set(s->drained);
    return s;
}

int tide_stream_fd(const tide_stream *s)
{
    if (!s)
        return -EINVAL;
    return s->fd < 0 ? -EBADF : s->fd;
}

/* ---- reading --------------------------------------------------------- */

static size_t buffered(const tide_stream *s)
{
    return s->rend - s->rstart;
}

/* Receive more into the buffer (moving what is there to the front
 * first). Returns the count, 0 at end of stream, or -errno; -EMSGSIZE
 * if the buffer is full. */
static ssize_t fill(tide_stream *s)
{
    if (s->fd < 0)
        return -EBADF;
    if (s->rstart > 0) {
        memmove(s->rbuf, s->rbuf + s->rstart, buffered(s));
        s->rend -= s->rstart;
        s->rstart = 0;
    }
    if (s->rend == s->rcap)
        return -EMSGSIZE;
    ssize_t n = tide_sock_recv(s->fd, s->rbuf + s->rend, s->rcap - s->rend, 0);
    if (n > 0)
        s->rend += (size_t)n;
    else if (n == 0)
        s->eof = true;
    return s->fd < 0 && n < 0 ? -EBADF : n;
}

/* Begin a read call: -EINVAL, -EBUSY (another read is suspended) or
 * -EBADF; else 0 and s held. */
static int read_begin(tide_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->reading)
        return -EBUSY;
    if (s->fd < 0)
        return -EBADF;
    s->reading = true;
    hold(s);
    return 0;
}

static ssize_t read_end(tide_stream *s, ssize_t r)
{
    s->reading = false;
    release(s);
    return r;
}

static size_t take(tide_stream *s, size_t n, const void **data)
{
    size_t k = buffered(s) < n ? buffered(s) : n;

    *data = s->rbuf + s->rstart;
    s->rstart += k;
    s->scanned = 0;
    return k;
}

ssize_t tide_stream_read(tide_stream *s, size_t n, const void **data)
{
    if (!data)
        return -EINVAL;
    int err = read_begin(s);
    if (err < 0)
        return err;
    ssize_t r = 0;
    while (n && !buffered(s) && !s->eof && (r = fill(s)) > 0)
        ;
    if (r < 0 && !buffered(s))
        return read_end(s, r);
    return read_end(s, (ssize_t)take(s, n, data));
}

/* Receive straight into buf (the stream's buffer is empty). */
static ssize_t recv_direct(tide_stream *s, void *buf, size_t n)
{
    if (s->fd < 0)
        return -EBADF;
    ssize_t r = tide_sock_recv(s->fd, buf, n, 0);
    if (r == 0)
        s->eof = true;
    return s->fd < 0 && r < 0 ? -EBADF : r;
}

ssize_t tide_stream_read_into(tide_stream *s, void *buf, size_t n)
{
    if (!buf && n)
        return -EINVAL;
    int err = read_begin(s);
    if (err < 0)
        return err;
    if (!n || (s->eof && !buffered(s)))
        return read_end(s, 0);
    if (buffered(s)) {
        const void *p;
        size_t k = take(s, n, &p);
        memcpy(buf, p, k);
        return read_end(s, (ssize_t)k);
    }
    return read_end(s, recv_direct(s, buf, n));
}

/* Put back the k bytes of buf that a failed readexactly took (the
 * buffer is empty then). */
static bool put_back(tide_stream *s, const void *buf, size_t k)
{
    if (k > s->rcap || buffered(s))
        return false;
    memcpy(s->rbuf, buf, k);
    s->rstart = 0;
    s->rend = k;
    s->scanned = 0;
    return true;
}

int tide_stream_readexactly(tide_stream *s, void *buf, size_t n, size_t *got)
{
    size_t done = 0;

    if (got)
        *got = 0;
    if (!buf && n)
        return -EINVAL;
    int err = read_begin(s);
    if (err < 0)
        return err;
    if (buffered(s)) {
        const void *p;
        done = take(s, n, &p);
        memcpy(buf, p, done);
    }
    ssize_t r = 1;
    while (done < n && !s->eof &&
           (r = recv_direct(s, (char *)buf + done, n - done)) > 0)
        done += (size_t)r;
    if (done == n)
        err = 0;
    else if (s->eof)
        err = -ENODATA;
    else {
        err = (int)r;
        if (put_back(s, buf, done))
            done = 0;
    }
    if (got)
        *got = done;
    return (int)read_end(s, err);
}

/* Offset of sep in the buffered bytes, scanning only what is new; or
 * -1. */
static ssize_t find(tide_stream *s, const char *sep, size_t seplen)
{
    const char *base = s->rbuf + s->rstart;
    size_t have = buffered(s);
    size_t from = s->scanned > seplen - 1 ? s->scanned - (seplen - 1) : 0;

    while (from + seplen <= have) {
        const char *p = memchr(base + from, sep[0], have - from - seplen + 1);
        if (!p)
            break;
        if (memcmp(p, sep, seplen) == 0)
            return p - base;
        from = (size_t)(p - base) + 1;
    }
    s->scanned = have;
    return -1;
}

static ssize_t read_until(tide_stream *s, const void *sep, size_t seplen,
                          const void **line, bool partial_ok)
{
    int err = read_begin(s);
    if (err < 0)
        return err;
    if (seplen > s->rcap)
        return read_end(s, -EINVAL);
    for (;;) {
        ssize_t at = find(s, sep, seplen);
        if (at >= 0)
            return read_end(s, (ssize_t)take(s, (size_t)at + seplen, line));
        if (s->eof) {
            if (!buffered(s) || partial_ok)
                return read_end(s, (ssize_t)take(s, buffered(s), line));
            return read_end(s, -ENODATA);
        }
        if (buffered(s) == s->rcap)
            return read_end(s, -EMSGSIZE);
        ssize_t r = fill(s);
        if (r < 0)
            return read_end(s, r);
    }
}

ssize_t tide_stream_readuntil(tide_stream *s, const void *sep, size_t seplen,
                              const void **line)
{
    if (!sep || !seplen || !line)
        return -EINVAL;
    return read_until(s, sep, seplen, line, false);
}

ssize_t tide_stream_readline(tide_stream *s, const void **line)
{
    if (!line)
        return -EINVAL;
    return read_until(s, "\n", 1, line, true);
}

bool tide_stream_at_eof(const tide_stream *s)
{
    return s && s->eof && !buffered(s);
}

/* ---- writing --------------------------------------------------------- */

static void set_error(tide_stream *s, int err)
{
    if (!s->err)
        s->err = err;
    s->wstart = s->wend = 0;
    tide_event_set(s->drained);
}

static void stop_flushing(tide_stream *s)
{
    if (s->flushing && s->fd >= 0)
        tide_remove_writer(s->loop, s->fd);
    s->flushing = false;
}

/* The queue is empty: shut the sending side down if asked. */
static void queue_empty(tide_stream *s)
{
    s->wstart = s->wend = 0;
    stop_flushing(s);
    if (s->eof_wanted && !s->eof_sent && !s->err && s->fd >= 0) {
        s->eof_sent = true;
        if (tide__sys_shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN)
            set_error(s, -errno);
    }
}

/* Send from the queue until it is empty or the socket is full. */
static void flush(tide_stream *s)
{
    while (queued(s)) {
        ssize_t n = tide__sys_send(s->fd, s->wbuf + s->wstart, queued(s),
                                   MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                set_error(s, -errno);
            break;
        }
        s->wstart += (size_t)n;
    }
    if (!queued(s) || s->err)
        queue_empty(s);
    if (queued(s) <= s->low)
        tide_event_set(s->drained);
}

static void flush_cb(void *arg)
{
    flush(arg);
}

/* Make room for n more bytes after what is queued. 0 or -ENOMEM. */
static int reserve(tide_stream *s, size_t n)
{
    if (s->wcap - s->wend < n && s->wstart > 0) {
        memmove(s->wbuf, s->wbuf + s->wstart, queued(s));
        s->wend -= s->wstart;
        s->wstart = 0;
    }
    if (s->wcap - s->wend >= n)
        return 0;
    size_t cap = s->wcap ? s->wcap : 4096;
    while (cap - s->wend < n)
        cap *= 2;
    char *b = tide__realloc(s->wbuf, cap);
    if (!b)
        return -ENOMEM;
    s->wbuf = b;
    s->wcap = cap;
    return 0;
}

/* What stops s from writing: -EINVAL (NULL), -EBADF (closed), the
 * sticky error; else 0. */
static int write_state(const tide_stream *s)
{
    if (!s)
        return -EINVAL;
    return s->fd < 0 ? -EBADF : s->err;
}

static int write_check(const tide_stream *s)
{
    int err = write_state(s);

    return err ? err : s->eof_wanted ? -EPIPE : 0;
}

/* After queueing: arm the background flush, note the high-water mark. */
static int queued_more(tide_stream *s)
{
    if (!s->flushing) {
        int err = tide_add_writer(s->loop, s->fd, flush_cb, s);
        if (err < 0) {
            set_error(s, err);
            return err;
        }
        s->flushing = true;
    }
    if (queued(s) > s->high)
        tide_event_clear(s->drained);
    return 0;
}

/* Send at once what the socket takes: the count sent, or -errno (not
 * EAGAIN). */
static ssize_t send_now(tide_stream *s, const struct iovec *iov, int n)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov,
                         .msg_iovlen = (size_t)n};
    for (;;) {
        ssize_t r = n == 1 ? tide__sys_send(s->fd, iov[0].iov_base,
                                            iov[0].iov_len, MSG_NOSIGNAL)
                           : tide__sys_sendmsg(s->fd, &msg, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int tide_stream_writev(tide_stream *s, const struct iovec *iov, int n)
{
    if ((!iov && n) || n < 0 || n > IOV_MAX)
        return -EINVAL;
    int err = write_check(s);
    if (err < 0)
        return err;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    if (!total)
        return 0;
    size_t sent = 0;
    if (!queued(s)) {
        ssize_t r = send_now(s, iov, n);
        if (r < 0) {
            set_error(s, (int)r);
            return (int)r;
        }
        sent = (size_t)r;
        if (sent == total)
            return 0;
    }
    if (reserve(s, total - sent) < 0) {
        if (sent) /* part of it went: the stream cannot go on */
            set_error(s, -ENOMEM);
        return -ENOMEM;
    }
    size_t skip = sent;
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(s->wbuf + s->wend, (const char *)iov[i].iov_base + skip,
               len - skip);
        s->wend += len - skip;
        skip = 0;
    }
    return queued_more(s);
}

int tide_stream_write(tide_stream *s, const void *buf, size_t n)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};

    if (!buf && n)
        return -EINVAL;
    return tide_stream_writev(s, &iov, 1);
}

size_t tide_stream_queued(const tide_stream *s)
{
    return s ? queued(s) : 0;
}

int tide_stream_set_write_limits(tide_stream *s, size_t high, size_t low)
{
    if (!s || low > high)
        return -EINVAL;
    s->high = high;
    s->low = low;
    if (queued(s) <= low)
        tide_event_set(s->drained);
    return 0;
}

/* Wait until the queue is down to `mark` (or an error, or closed). */
static int wait_queue(tide_stream *s, size_t mark)
{
    int err = 0;

    hold(s);
    while (!err && s->fd >= 0 && !s->err && queued(s) > mark) {
        if (mark < s->low)
            tide_event_clear(s->drained);
        err = tide_event_wait(s->drained);
    }
    if (!err)
        err = s->err ? s->err : s->fd < 0 ? -EBADF : 0;
    release(s);
    return err;
}

int tide_stream_drain(tide_stream *s)
{
    int err = write_state(s);

    if (err || queued(s) <= s->high)
        return err;
    return wait_queue(s, s->low);
}

int tide_stream_write_eof(tide_stream *s)
{
    int err = write_state(s);

    if (err)
        return err;
    s->eof_wanted = true;
    if (!queued(s))
        queue_empty(s);
    return s->err;
}

/* Close the fd (waking suspended calls) and drop the owner's
 * reference. */
static void close_fd(tide_stream *s)
{
    int fd = s->fd;

    s->flushing = false; /* tide_close removes the writer callback */
    s->fd = -1;
    s->wstart = s->wend = 0;
    tide_event_set(s->drained);
    tide_close(fd);
    release(s);
}

int tide_stream_close(tide_stream *s, double timeout)
{
    if (!s || isnan(timeout))
        return -EINVAL;
    if (s->fd < 0)
        return -EBADF;
    int err = s->err;
    if (!err && queued(s)) {
        flush(s);
        err = s->err;
    }
    if (!err && queued(s)) {
        if (!tide_current_task() || timeout <= 0) {
            err = -ETIMEDOUT;
        } else if (isinf(timeout)) {
            err = wait_queue(s, 0);
        } else {
            tide_timeout *scope = tide_timeout_begin(timeout);
            err = scope ? tide_timeout_end(scope, wait_queue(s, 0)) : -ENOMEM;
        }
    }
    if (s->fd >= 0)
        close_fd(s);
    return err;
}

int tide_stream_abort(tide_stream *s)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (!s)
        return -EINVAL;
    if (s->fd < 0)
        return -EBADF;
    (void)tide__sys_setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close_fd(s);
    return 0;
}

/* ---- options and names ----------------------------------------------- */

int tide_stream_setsockopt(tide_stream *s, int level, int name,
                           const void *val, socklen_t len)
{
    if (!s)
        return -EINVAL;
    if (s->fd < 0)
        return -EBADF;
    return tide__sys_setsockopt(s->fd, level, name, val, len) < 0 ? -errno : 0;
}

int tide_stream_getsockopt(tide_stream *s, int level, int name, void *val,
                           socklen_t *len)
{
    if (!s || !len)
        return -EINVAL;
    if (s->fd < 0)
        return -EBADF;
    return tide__sys_getsockopt(s->fd, level, name, val, len) < 0 ? -errno : 0;
}

/* A name of s's socket by `get` (getpeername or getsockname). */
static int name_of(tide_stream *s, struct sockaddr *addr, socklen_t *len,
                   int (*get)(int, struct sockaddr *, socklen_t *))
{
    if (!s || !addr || !len)
        return -EINVAL;
    if (s->fd < 0)
        return -EBADF;
    return get(s->fd, addr, len) < 0 ? -errno : 0;
}

int tide_stream_peername(tide_stream *s, struct sockaddr *addr, socklen_t *len)
{
    return name_of(s, addr, len, tide__sys_getpeername);
}

int tide_stream_sockname(tide_stream *s, struct sockaddr *addr, socklen_t *len)
{
    return name_of(s, addr, len, tide__sys_getsockname);
}
