/* tide/stream.h: streams over connected sockets and pipes, servers that
 * start a task per connection, and connecting (asyncio's StreamReader
 * and StreamWriter, start_server, open_connection and their Unix
 * variants).
 *
 * Include it after (or instead of) tide.h; it brings tide/io.h.
 *
 * Common rules:
 * - A stream is one connected stream socket (TCP over IPv4 or IPv6, or
 *   a Unix socket), or one end of a pipe or FIFO, with a read buffer and
 *   a write queue. A pipe stream reads or writes, as its end allows;
 *   writing to a pipe whose reader has gone is -EPIPE, never SIGPIPE
 *   (the thread blocks SIGPIPE around each write: no disposition of the
 *   process changes); the socket options and names are -ENOTSOCK for
 *   it. A stream belongs to the loop running (or the default loop) when
 *   it is made, and is used from tasks of that loop.
 * - Reading: every read takes from the buffer first. The buffer holds
 *   at most `limit` bytes (tide_stream_new; 64 KiB by default), which
 *   bounds a line and what is read ahead of the application. One task
 *   reads at a time: a read while another task's read is suspended
 *   returns -EBUSY. A read that is cancelled (a cancel request, a
 *   timeout scope) returns -ECANCELED and loses nothing: bytes that had
 *   arrived stay in the buffer for the next read.
 * - Writing never suspends: tide_stream_write sends what the socket
 *   takes at once and queues the rest, which the loop sends in the
 *   background; tide_stream_drain is where a writer waits. Several tasks
 *   may write and drain at once. The first send error (a reset peer:
 *   -ECONNRESET or -EPIPE; never SIGPIPE) sticks: every later write and
 *   drain returns it at once, and what was queued is dropped.
 * - Results are byte counts or 0, or a negative errno: -EINVAL for bad
 *   arguments (a NULL stream, a NULL buffer with a length), which
 *   change nothing; -EBADF once the stream is closed (by
 *   tide_stream_close or tide_stream_abort in another task, which also
 *   wakes tasks suspended in it); -EPERM for a call that would suspend
 *   outside a task.
 * - Compact tasks may use streams, with buffers on their own stack.
 * - A stream can also be over a file (tide/file.h: tide_file_stream_new),
 *   with the differences that header lists.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_STREAM_H
#define TIDE_STREAM_H

#include <tide/io.h>

#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tide_stream tide_stream; /* opaque */
typedef struct tide_server tide_server; /* opaque */

/* ---- Streams -------------------------------------------------------- */

/* Wrap connected stream socket fd, or a pipe or FIFO fd (anything that
 * is not a socket: read(2) and write(2) are used), made non-blocking
 * here, in a stream;
 * the stream owns fd from then on and closes it with tide_stream_close
 * or tide_stream_abort. `limit` bounds the read buffer (0: 64 KiB).
 * NULL and errno: EBADF (fd negative or not open), EINVAL (no loop),
 * ENOMEM; fd is then not closed. */
TIDE_API tide_stream *tide_stream_new(int fd, size_t limit);

/* The stream's socket, borrowed (for options and names use the calls
 * below). -EINVAL if s is NULL; -EBADF once closed. */
TIDE_API int tide_stream_fd(const tide_stream *s);

/* ---- Reading */

/* asyncio's read(n): wait until at least one byte is buffered or the
 * peer has closed its side, then take up to n bytes. *data points at
 * them inside the stream's buffer, borrowed until the next read call on
 * s. Returns the count; 0 at end of stream (or n == 0); -EINVAL (data
 * NULL). Suspends. */
TIDE_API ssize_t tide_stream_read(tide_stream *s, size_t n, const void **data);

/* asyncio's read into a caller's buffer: up to n bytes into buf. When
 * the stream's buffer is empty the bytes are received straight into
 * buf (no copy in between). Returns the count; 0 at end of stream (or
 * n == 0). Suspends. */
TIDE_API ssize_t tide_stream_read_into(tide_stream *s, void *buf, size_t n);

/* asyncio's readexactly(n): exactly n bytes into buf (received straight
 * into it once the buffer is empty). Returns 0 with *got = n. On end of
 * stream before n bytes, -ENODATA with the partial bytes in buf and
 * their count in *got (asyncio's IncompleteReadError). On any other
 * error (-ECANCELED, -ETIMEDOUT, -ECONNRESET, ...) the bytes already
 * read go back to the stream for the next read if they fit in its
 * buffer (*got = 0); otherwise they stay in buf, counted by *got. got
 * may be NULL. Suspends. */
TIDE_API int tide_stream_readexactly(tide_stream *s, void *buf, size_t n,
                                     size_t *got);

/* asyncio's readuntil(separator): wait until the buffer holds sep, then
 * take everything up to and including it. *line points at it inside the
 * stream's buffer, borrowed until the next read call. Returns its
 * length. -EMSGSIZE when the buffer is full (`limit` bytes) without sep
 * (asyncio's LimitOverrunError); -ENODATA at end of stream before sep
 * (asyncio's IncompleteReadError). In both cases, and on every other
 * error, nothing is taken: the buffered bytes stay for tide_stream_read.
 * 0 at end of stream with nothing buffered. -EINVAL: sep NULL, seplen 0
 * or over the limit, line NULL. Suspends. */
TIDE_API ssize_t tide_stream_readuntil(tide_stream *s, const void *sep,
                                       size_t seplen, const void **line);

/* asyncio's readline(): tide_stream_readuntil with "\n", except that at
 * end of stream the last line without "\n" is returned (0 when nothing
 * is left). -EMSGSIZE as readuntil, keeping the bytes. Suspends. */
TIDE_API ssize_t tide_stream_readline(tide_stream *s, const void **line);

/* asyncio's at_eof(): the peer closed its side and everything buffered
 * was read. false if s is NULL. Never suspends. */
TIDE_API bool tide_stream_at_eof(const tide_stream *s);

/* ---- Writing */

/* asyncio's write(data): send n bytes, queueing (copying) what the
 * socket does not take at once. Returns 0; the sticky send error
 * (-ECONNRESET, -EPIPE, ...); -EPIPE after tide_stream_write_eof;
 * -ENOMEM (nothing queued). Never suspends. */
TIDE_API int tide_stream_write(tide_stream *s, const void *buf, size_t n);

/* asyncio's writelines: the n buffers of iov in order, as
 * tide_stream_write (in one sendmsg when nothing is queued). -EINVAL if
 * iov is NULL with n > 0 or n > IOV_MAX. Never suspends. */
TIDE_API int tide_stream_writev(tide_stream *s, const struct iovec *iov,
                                int n);

/* Bytes queued and not sent yet. 0 if s is NULL. */
TIDE_API size_t tide_stream_queued(const tide_stream *s);

/* asyncio's drain(): if more than the high-water mark is queued, wait
 * until no more than the low-water mark is. Returns 0; the sticky send
 * error, at once; -ECANCELED; -EBADF if the stream is closed meanwhile.
 * Any number of tasks may drain at once. Suspends. */
TIDE_API int tide_stream_drain(tide_stream *s);

/* Set the write queue's high- and low-water marks (asyncio's
 * set_write_buffer_limits; by default 64 KiB and 16 KiB). Returns 0;
 * -EINVAL if low > high. */
TIDE_API int tide_stream_set_write_limits(tide_stream *s, size_t high,
                                          size_t low);

/* asyncio's write_eof(): half-close. Once what is queued is sent, the
 * socket's sending side is shut down (the peer reads end of stream);
 * reading goes on. On a pipe the fd is closed then (tide_stream_fd is
 * -EBADF from there on; close or abort still frees s, and returns 0).
 * Returns 0; the sticky error. Never suspends. */
TIDE_API int tide_stream_write_eof(tide_stream *s);

/* asyncio's close() and wait_closed(): send what is queued, waiting at
 * most `timeout` seconds (INFINITY: no limit; outside a task only what
 * the socket takes at once), then close the socket and free s. Tasks
 * suspended in s wake with -EBADF; s is freed once they have left it.
 * Returns 0 when everything queued was sent; -ETIMEDOUT if the deadline
 * dropped some; the sticky send error; -ECANCELED (the queue dropped, s
 * closed all the same); -EINVAL (s NULL, NaN timeout: nothing done).
 * Every outcome but -EINVAL closes s. Suspends. */
TIDE_API int tide_stream_close(tide_stream *s, double timeout);

/* asyncio's transport.abort(): drop what is queued, reset the
 * connection (the peer sees -ECONNRESET), close the socket and free s
 * as tide_stream_close does. Returns 0; -EINVAL if s is NULL. Never
 * suspends. */
TIDE_API int tide_stream_abort(tide_stream *s);

/* ---- Socket options and names (get_extra_info) */

/* setsockopt(2) and getsockopt(2) on the stream's socket. Returns 0 or
 * -errno; -EBADF once closed. */
TIDE_API int tide_stream_setsockopt(tide_stream *s, int level, int name,
                                    const void *val, socklen_t len);
TIDE_API int tide_stream_getsockopt(tide_stream *s, int level, int name,
                                    void *val, socklen_t *len);
/* getpeername(2) and getsockname(2): the address in addr, its length in
 * *len (in-out). Returns 0 or -errno; -EINVAL if addr or len is NULL. */
TIDE_API int tide_stream_peername(tide_stream *s, struct sockaddr *addr,
                                  socklen_t *len);
TIDE_API int tide_stream_sockname(tide_stream *s, struct sockaddr *addr,
                                  socklen_t *len);

/* ---- Connecting ----------------------------------------------------- */

/* asyncio's open_connection(host, port): resolve host with
 * tide_getaddrinfo (tide/pool.h: a numeric host, "127.0.0.1" or "::1",
 * inline and without a thread; a name such as "localhost" on the pool's
 * DNS class while the caller waits), then connect to its addresses as
 * tide_open_connection_addrinfo does (Happy Eyeballs, the default
 * delay), and return the stream in *out (limit: as tide_stream_new).
 * TCP_NODELAY is set. Returns 0; -EINVAL (host or out NULL); the lookup
 * error (-ENOENT: no such name; -EHOSTUNREACH: the resolver failed);
 * the last connect error when every address fails (-ECONNREFUSED, ...);
 * -ECANCELED (during the lookup too: it is abandoned, nothing leaks);
 * -EPERM outside a task; -ENOMEM. Suspends. */
TIDE_API int tide_open_connection(const char *host, uint16_t port,
                                  size_t limit, tide_stream **out);

/* Connect to the first address of `list` that answers, staggered as RFC
 * 8305 (Happy Eyeballs) does: addresses are tried in list order with the
 * families interleaved (the first family, then the other, in turn); the
 * next attempt starts when the one before fails or after `delay` seconds
 * (0: 0.25 s; INFINITY: one at a time), while earlier ones go on; the
 * first to connect wins and the others are abandoned. Returns 0 and the
 * stream in *out; the last error when every address fails; -EINVAL (list
 * or out NULL, NaN or negative delay); -ENOMEM. The list is borrowed.
 * Suspends. */
TIDE_API int tide_open_connection_addrinfo(const struct addrinfo *list,
                                           double delay, size_t limit,
                                           tide_stream **out);

/* asyncio's open_unix_connection(path). Returns 0 and the stream in
 * *out; -EINVAL (path or out NULL); -ENAMETOOLONG; the connect error
 * (-ENOENT, -ECONNREFUSED, ...). Suspends. */
TIDE_API int tide_open_unix_connection(const char *path, size_t limit,
                                       tide_stream **out);

/* ---- Servers -------------------------------------------------------- */

/* A connection's handler: runs in a task of its own, with the stream
 * borrowed. When it returns, the server closes the stream (sending what
 * is queued, within close_timeout) unless the handler closed or aborted
 * it itself. */
typedef void (*tide_stream_handler)(tide_stream *s, void *arg);

/* Options for starting a server; zero-initialize, set what you need. */
typedef struct tide_server_options {
    int backlog;          /* listen(2)'s; 0: 511 */
    size_t limit;         /* each stream's read limit; 0: 64 KiB */
    bool compact;         /* connection tasks are compact tasks */
    double close_timeout; /* after the handler returns, at most this long
                           * to send what is queued; 0: 5 s */
    /* Accept errors (-EMFILE, -ENFILE, -ENOMEM, ...) and per-connection
     * setup failures are reported here (NULL: not reported); the server
     * goes on. After running out of fds or memory it waits 0.1 s
     * before accepting again, so it never spins. */
    void (*on_error)(int err, void *arg); /* arg: the handler's */
} tide_server_options;

/* asyncio's start_server(handler, host, port): listen on numeric host
 * (NULL: every IPv4 address; "::" every IPv6 one) and port (0: one the
 * system picks; see tide_server_sockname), with SO_REUSEADDR, and start
 * accepting in a task of `loop` (NULL: the running or default loop). A
 * task runs handler(stream, arg) for each connection; TCP_NODELAY is
 * set. opt may be NULL. NULL and errno: EINVAL (handler NULL, no loop,
 * a bad option), ENOTSUP (a host name), the socket, bind or listen
 * error (EADDRINUSE, ...), ENOMEM. */
TIDE_API tide_server *tide_start_server(tide_loop *loop, const char *host,
                                        uint16_t port,
                                        tide_stream_handler handler, void *arg,
                                        const tide_server_options *opt);

/* asyncio's start_unix_server(handler, path): the same on a Unix socket
 * bound at path (a stale socket file there is replaced; the file is
 * removed when the server closes). Errors also ENAMETOOLONG. */
TIDE_API tide_server *tide_start_unix_server(tide_loop *loop, const char *path,
                                             tide_stream_handler handler,
                                             void *arg,
                                             const tide_server_options *opt);

/* The listening address, as getsockname(2). Returns 0 or -errno;
 * -EINVAL if an argument is NULL; -EBADF once the server is closing. */
TIDE_API int tide_server_sockname(tide_server *srv, struct sockaddr *addr,
                                  socklen_t *len);

/* Live connections (handlers that have not returned). 0 if srv is NULL. */
TIDE_API size_t tide_server_connections(const tide_server *srv);

/* asyncio's serve_forever(): wait until the server is closed (by
 * another task). Returns 0 then; -ECANCELED if the caller is cancelled
 * (the server goes on); -EINVAL if srv is NULL. Suspends. */
TIDE_API int tide_serve_forever(tide_server *srv);

/* asyncio's close() and wait_closed(): stop accepting and close the
 * listening socket at once, then wait at most `timeout` seconds for the
 * live connections' handlers to return; those still running then are
 * cancelled and waited for. Frees srv. Returns 0; -ETIMEDOUT if some
 * handlers had to be cancelled; -EINVAL (srv NULL, NaN timeout);
 * -EPERM outside a task (nothing done); -ECANCELED if the caller is
 * cancelled while waiting (the handlers are then cancelled and waited
 * for, and srv freed all the same). Suspends. A server still open when
 * its loop closes is closed with it: tide_loop_close cancels its tasks
 * (the acceptor, the handlers), then closes the listening socket and
 * frees srv, whose pointer must not be used after that. */
TIDE_API int tide_server_close(tide_server *srv, double timeout);

/* asyncio's abort_clients() and close(): stop accepting, abort every
 * connection (its queue dropped, the peer reset), cancel the handlers,
 * wait for them to return, free srv. Returns 0; -EINVAL; -EPERM outside
 * a task. Suspends. */
TIDE_API int tide_server_abort(tide_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* TIDE_STREAM_H */
