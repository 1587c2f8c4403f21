/* A stream: one connected socket with a read buffer and a write queue
 * (asyncio's StreamReader and StreamWriter over a transport). See
 * tide/stream.h for the rules.
 *
 * Reading: one buffer of `limit` bytes, allocated with the stream, holds
 * [rstart, rend). Reads hand out pointers into it and only move rstart;
 * the bytes are moved to the front only at the start of a later read,
 * so a borrowed pointer stays valid until then. Every receive lands in
 * the buffer (or straight in the caller's buffer when the stream's is
 * empty), so a cancelled read has lost nothing. On a TCP socket the
 * receives carry TIDE__HINT_STREAM (poll/backend.h): after one that came
 * back short, the next waits for readiness before it tries, so a request
 * costs one receive, not a second that only sees EAGAIN.
 *
 * Writing: a write sends at once when nothing is queued; the rest goes
 * to a queue, [wstart, wend) of a buffer grown on demand, and a writer
 * callback on the loop (tide_add_writer) sends it in the background and
 * wakes drainers (a tide_event) once the queue is down to the low-water
 * mark. In steady state (the socket takes each write) nothing is
 * allocated and no callback is armed.
 *
 * Pipes: a stream over anything but a socket (a pipe, a FIFO) reads and
 * writes with read(2) and write(2) instead (pipe.c: never SIGPIPE), and
 * its write_eof closes the fd (the reader sees end of stream; `shut`
 * then stands for the closed fd until close or abort frees the stream).
 *
 * Lifetime: `refs` counts the owner (dropped by close or abort), calls
 * suspended in the stream, and a server's connection task. The fd is
 * closed at once by close/abort (waking suspended calls with -EBADF);
 * the memory goes with the last reference.
 *
 * Transports (io/io.h): a socket stream (xport NULL) makes its calls
 * inline, as the hot path. A stream over anything else (a file) reads
 * through its transport's recv, and its queue is written only by the
 * task that drains or closes it, through the transport's write
 * (xport_flush): nothing is written in the background.
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
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

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
    uint8_t hint;   /* on receives: TIDE__HINT_STREAM (TCP), or 0 */
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
    bool pipe;           /* not a socket: read/write; write_eof closes */
    bool shut;           /* a pipe's write_eof closed fd */
    tide_event *drained; /* set when queued <= low, or error, or closed */
    const struct tide__stream_xport *xport; /* NULL: a socket */
    void *xarg;                             /* the transport's state */
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
    if (s->xport)
        s->xport->free(s->xarg);
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
    return s->fd < 0 && !s->shut;
}

bool tide__stream_reading(const tide_stream *s)
{
    return s->reading;
}

/* Whether fd is a TCP socket (see TIDE__HINT_STREAM). */
static bool is_tcp(int fd)
{
    int proto = 0;
    socklen_t len = sizeof proto;

    if (tide__sys_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0)
        return false;
    return proto == IPPROTO_TCP;
}

/* A stream over fd on loop; NULL and errno. */
static tide_stream *stream_new(int fd, size_t limit, tide_loop *loop)
{
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
    s->hint = is_tcp(fd) ? TIDE__HINT_STREAM : 0;
    s->loop = loop;
    s->high = DEFAULT_HIGH;
    s->low = DEFAULT_LOW;
    tide_event_set(s->drained);
    return s;
}

static tide_loop *stream_loop(void)
{
    tide_loop *loop = tide__loop_resolve(NULL);

    if (!loop || loop->closed) {
        errno = EINVAL;
        return NULL;
    }
    return loop;
}

tide_stream *tide_stream_new(int fd, size_t limit)
{
    if (fd < 0) {
        errno = EBADF;
        return NULL;
    }
    tide_loop *loop = stream_loop();
    if (!loop)
        return NULL;
    int fl = tide__sys_fcntl(fd, F_GETFL, 0);
    struct stat st;
    if (fl < 0 || fstat(fd, &st) < 0 ||
        (!(fl & O_NONBLOCK) &&
         tide__sys_fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return NULL; /* errno: EBADF */
    tide_stream *s = stream_new(fd, limit, loop);
    if (s)
        s->pipe = !S_ISSOCK(st.st_mode);
    return s;
}

tide_stream *tide__stream_new_xport(int fd, size_t limit,
                                    const struct tide__stream_xport *xport,
                                    void *xarg)
{
    tide_loop *loop = stream_loop();
    tide_stream *s = loop ? stream_new(fd, limit, loop) : NULL;

    if (s) {
        s->xport = xport;
        s->xarg = xarg;
    }
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

/* Receive up to n bytes into buf: through the transport if s has one,
 * else read(2) on a pipe, or recv(2) on a socket as tide_sock_recv does,
 * with the stream's hint (on TCP: after a short receive, the next waits
 * for readiness before it tries). */
static inline ssize_t recv_some(tide_stream *s, void *buf, size_t n)
{
    if (__builtin_expect(s->xport != NULL, 0))
        return s->xport->recv(s->xarg, s->fd, buf, n);
    if (s->pipe)
        return tide__pipe_read(s->fd, buf, n);
    struct tide__op op = {.kind = TIDE__OP_RECV,
                          .fd = s->fd,
                          .buf = buf,
                          .len = n,
                          .offset = -1,
                          .hint = s->hint};
    return tide__io_run(&op, "sock recv");
}

/* Receive more into the buffer (moving what is there to the front
 * first). Returns the count, 0 at end of stream, or -errno; -EMSGSIZE
 * if the buffer is full. */
static ssize_t fill(tide_stream *s)
{
    if (s->fd < 0)
        return -EBADF;
    if (s->rstart > 0) {
        if (buffered(s)) /* (a read that took everything leaves none) */
            memmove(s->rbuf, s->rbuf + s->rstart, buffered(s));
        s->rend -= s->rstart;
        s->rstart = 0;
    }
    if (s->rend == s->rcap)
        return -EMSGSIZE;
    ssize_t n = recv_some(s, s->rbuf + s->rend, s->rcap - s->rend);
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
    ssize_t r = recv_some(s, buf, n);
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
    if (s->xport)
        return; /* its flushing is xport_flush's */
    if (s->flushing && s->fd >= 0)
        tide_remove_writer(s->loop, s->fd);
    s->flushing = false;
}

/* The queue is empty: shut the sending side down if asked. */
static void queue_empty(tide_stream *s)
{
    s->wstart = s->wend = 0;
    stop_flushing(s);
    if (s->eof_wanted && !s->eof_sent && !s->err && s->fd >= 0 && !s->xport) {
        s->eof_sent = true;
        if (s->pipe) {
            tide_close(s->fd);
            s->fd = -1;
            s->shut = true;
        } else if (tide__sys_shutdown(s->fd, SHUT_WR) < 0 &&
                   errno != ENOTCONN) {
            set_error(s, -errno);
        }
    }
}

/* Send from the queue until it is empty or the socket is full. */
static void flush(tide_stream *s)
{
    while (queued(s)) {
        struct iovec iov = {s->wbuf + s->wstart, queued(s)};
        ssize_t n = s->pipe ? tide__pipe_writev(s->fd, &iov, 1)
                            : tide__sys_send(s->fd, iov.iov_base, iov.iov_len,
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
    return s->fd < 0 && !s->shut ? -EBADF : s->err;
}

static int write_check(const tide_stream *s)
{
    int err = write_state(s);

    return err ? err : s->eof_wanted ? -EPIPE : 0;
}

/* After queueing: arm the background flush, note the high-water mark. */
static int queued_more(tide_stream *s)
{
    if (!s->flushing && !s->xport) {
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
        ssize_t r = s->pipe  ? tide__pipe_writev(s->fd, iov, n)
                    : n == 1 ? tide__sys_send(s->fd, iov[0].iov_base,
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
    if (!queued(s) && !s->xport) {
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
        err = s->err ? s->err : s->fd < 0 && !s->shut ? -EBADF : 0;
    release(s);
    return err;
}

/* Put the n bytes of buf that a transport did not take back in front of
 * the queue. 0 or -ENOMEM. */
static int requeue(tide_stream *s, const char *buf, size_t n)
{
    size_t after = queued(s);

    if (reserve(s, n) < 0)
        return -ENOMEM;
    memmove(s->wbuf + s->wstart + n, s->wbuf + s->wstart, after);
    memcpy(s->wbuf + s->wstart, buf, n);
    s->wend += n;
    return 0;
}

/* Bytes not written yet: queued, or taken by a transport's write. */
static bool unsent(const tide_stream *s)
{
    return queued(s) || (s->xport && s->flushing);
}

/* Write the whole queue through s's transport from this task. The queue
 * is taken out of the stream (writes made meanwhile queue behind it);
 * what a cancelled write did not take goes back in front, so that
 * nothing is lost. One task writes at a time (flushing); another waits
 * for it on `drained`. Returns 0; the sticky error; -ECANCELED; -EBADF
 * if s is closed meanwhile. */
static int xport_flush(tide_stream *s)
{
    int err = 0;

    hold(s);
    while (!err && s->fd >= 0 && !s->err && unsent(s)) {
        if (s->flushing) {
            err = tide_event_wait(s->drained);
            continue;
        }
        char *buf = s->wbuf;
        size_t off = s->wstart, end = s->wend;
        s->wbuf = NULL;
        s->wcap = s->wstart = s->wend = 0;
        s->flushing = true;
        tide_event_clear(s->drained);
        while (off < end && s->fd >= 0 && !err) {
            ssize_t n = s->xport->write(s->xarg, s->fd, buf + off, end - off);
            if (n < 0)
                err = (int)n;
            else
                off += (size_t)n;
        }
        s->flushing = false;
        if (s->fd >= 0 && err == -ECANCELED &&
            requeue(s, buf + off, end - off))
            set_error(s, -ENOMEM);
        else if (s->fd >= 0 && err && err != -ECANCELED)
            set_error(s, err);
        tide__free(buf);
        tide_event_set(s->drained);
    }
    if (!err || (err == -ECANCELED && s->fd < 0)) /* closed meanwhile */
        err = s->err ? s->err : s->fd < 0 ? -EBADF : 0;
    release(s);
    return err;
}

int tide_stream_drain(tide_stream *s)
{
    int err = write_state(s);

    if (err || queued(s) <= s->high)
        return err;
    return s->xport ? xport_flush(s) : wait_queue(s, s->low);
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
    if (s->xport)
        s->xport->close(s->xarg, fd);
    else
        tide_close(fd);
    release(s);
}

/* Send everything queued, waiting as long as it takes. */
static int send_all(tide_stream *s)
{
    return s->xport ? xport_flush(s) : wait_queue(s, 0);
}

/* A pipe whose write_eof closed its fd: drop the owner's reference. */
static int close_shut(tide_stream *s)
{
    int err = s->err;

    s->shut = false;
    release(s);
    return err;
}

int tide_stream_close(tide_stream *s, double timeout)
{
    if (!s || isnan(timeout))
        return -EINVAL;
    if (s->shut)
        return close_shut(s);
    if (s->fd < 0)
        return -EBADF;
    int err = s->err;
    if (!err && queued(s) && !s->xport) {
        flush(s);
        err = s->err;
    }
    if (!err && unsent(s)) {
        if (!tide_current_task() || timeout <= 0) {
            err = -ETIMEDOUT;
        } else if (isinf(timeout)) {
            err = send_all(s);
        } else {
            tide_timeout *scope = tide_timeout_begin(timeout);
            err = scope ? tide_timeout_end(scope, send_all(s)) : -ENOMEM;
        }
    }
    if (s->fd >= 0)
        close_fd(s);
    else if (s->shut) /* the queue went, then a pipe's write_eof closed */
        (void)close_shut(s);
    return err;
}

int tide_stream_abort(tide_stream *s)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (!s)
        return -EINVAL;
    if (s->shut) {
        (void)close_shut(s);
        return 0;
    }
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
