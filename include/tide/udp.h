/* tide/udp.h: UDP endpoints (asyncio's create_datagram_endpoint, in
 * tide's task style: awaitable sends and receives instead of a protocol's
 * callbacks).
 *
 * Include it after (or instead of) tide.h; it brings tide/io.h, whose
 * common rules hold for every call here (tried at once, suspended only
 * when it would block, -EPERM then outside a task; cancellation; buffers
 * borrowed for the call; compact tasks may pass buffers on their own
 * stack).
 *
 * Common rules:
 * - An endpoint is one non-blocking, close-on-exec UDP socket over IPv4
 *   or IPv6. It is not tied to a loop: each call runs on the loop
 *   running in the calling thread, as the calls of tide/io.h do.
 * - Connected (a remote address given): tide_udp_send needs no address,
 *   only that peer's datagrams are received, and an ICMP error for an
 *   earlier datagram (a closed port: -ECONNREFUSED) is returned once, by
 *   the next send or receive. Unconnected: tide_udp_sendto names each
 *   datagram's address, tide_udp_recvfrom tells each sender; ICMP errors
 *   are not reported.
 * - A datagram is sent whole or not at all: a send returns len. A
 *   zero-length datagram is a datagram: it is sent, and a receive returns
 *   0 for it.
 * - A datagram longer than the receiving buffer is never cut silently:
 *   the receive returns -EMSGSIZE. The datagram is consumed all the same
 *   (the kernel drops what did not fit; buf holds its first len bytes,
 *   and recvfrom's address is stored). To size the buffer first, call
 *   tide_udp_peek_size, which waits for the next datagram and returns its
 *   length without taking it.
 * - No call takes a timeout: put a timeout scope (tide_timeout_begin)
 *   or tide_wait_for around it; it then returns -ETIMEDOUT.
 * - Results: a byte count or 0, or a negative errno: -EINVAL for bad
 *   arguments (a NULL endpoint, a NULL buffer with a length, a NULL
 *   address length), which change nothing; -EBADF for a call suspended
 *   while another task closes the endpoint; -ECANCELED.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_UDP_H
#define TIDE_UDP_H

#include <tide/io.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tide_udp tide_udp; /* opaque */

/* ---- Opening and closing -------------------------------------------- */

/* Options for opening an endpoint (asyncio's create_datagram_endpoint
 * keywords); zero-initialize, set what you need. */
typedef struct tide_udp_options {
    int family;           /* AF_INET or AF_INET6; 0 (AF_UNSPEC): the
                           * addresses' own, needed when none is given */
    bool reuse_port;      /* SO_REUSEPORT: several endpoints may bind the
                           * same address and port */
    bool allow_broadcast; /* SO_BROADCAST: sends to a broadcast address */
} tide_udp_options;

/* asyncio's create_datagram_endpoint(local_addr, remote_addr): a UDP
 * socket bound to numeric local_host ("127.0.0.1", "::", ...) and
 * local_port (0: a port the system picks) if local_host is not NULL,
 * and connected to numeric remote_host and remote_port if remote_host
 * is not NULL. Without a local address the system binds one at the
 * first send (or at the connect). opt may be NULL. Never suspends.
 * Returns the endpoint, which the caller closes with tide_udp_close.
 * NULL and errno: EINVAL (a host that is not a numeric address of the
 * family, a port without its host, remote port 0, local and remote of
 * different families, no address and no family); EAFNOSUPPORT (a
 * family other than AF_INET, AF_INET6 and 0); the socket, setsockopt,
 * bind or connect error (EADDRINUSE, ...); ENOMEM. Host names are
 * resolved with tide_getaddrinfo (tide/pool.h) and opened with
 * tide_udp_open_addr. */
TIDE_API tide_udp *tide_udp_open(const char *local_host, uint16_t local_port,
                                 const char *remote_host, uint16_t remote_port,
                                 const tide_udp_options *opt);

/* The same from socket addresses (struct sockaddr_in or sockaddr_in6,
 * borrowed for the call); either may be NULL (its length is then
 * ignored). The same errors; EINVAL also for a length too short for
 * the address's family. */
TIDE_API tide_udp *tide_udp_open_addr(const struct sockaddr *local,
                                      socklen_t local_len,
                                      const struct sockaddr *remote,
                                      socklen_t remote_len,
                                      const tide_udp_options *opt);

/* Close the endpoint's socket (with tide_close: tasks suspended in its
 * calls wake with -EBADF and touch it no more) and free it; u must not
 * be used after this. Returns 0; -EINVAL if u is NULL. Never suspends. */
TIDE_API int tide_udp_close(tide_udp *u);

/* The endpoint's socket, borrowed (for socket options; close it only
 * with tide_udp_close). -EINVAL if u is NULL. */
TIDE_API int tide_udp_fd(const tide_udp *u);

/* getsockname(2) and getpeername(2): the address in addr, its length in
 * *len (in-out). Returns 0 or -errno (-ENOTCONN: peername of an
 * unconnected endpoint); -EINVAL if an argument is NULL. */
TIDE_API int tide_udp_sockname(const tide_udp *u, struct sockaddr *addr,
                               socklen_t *len);
TIDE_API int tide_udp_peername(const tide_udp *u, struct sockaddr *addr,
                               socklen_t *len);

/* ---- Sending -------------------------------------------------------- */

/* Send one datagram of len bytes to the connected peer (asyncio's
 * transport.sendto(data)). Returns len; -EDESTADDRREQ on an
 * unconnected endpoint; -ECONNREFUSED (an earlier datagram was
 * refused); -EMSGSIZE (longer than a datagram may be); -EINVAL.
 * Suspends while the socket's send buffer is full. */
TIDE_API ssize_t tide_udp_send(tide_udp *u, const void *buf, size_t len);

/* Send one datagram to addr (asyncio's transport.sendto(data, addr)).
 * addr NULL: to the connected peer, as tide_udp_send. On a connected
 * endpoint an addr other than the peer's is -EISCONN (asyncio's
 * ValueError). Otherwise as tide_udp_send; -EINVAL also for addrlen too
 * short for addr's family, port 0 (from the kernel) or an address of the
 * other family (an IPv6 endpoint does not send to IPv4 addresses);
 * -EAFNOSUPPORT for a family other than IPv4 and IPv6 on a connected
 * endpoint. Suspends. */
TIDE_API ssize_t tide_udp_sendto(tide_udp *u, const void *buf, size_t len,
                                 const struct sockaddr *addr,
                                 socklen_t addrlen);

/* ---- Receiving ------------------------------------------------------ */

/* Wait for the next datagram and take it into buf (len bytes; with len
 * 0, buf may be NULL: the next datagram is taken all the same, and is
 * -EMSGSIZE unless empty).
 * Returns its length; -EMSGSIZE if it was longer than len (consumed:
 * see the common rules); -ECONNREFUSED (connected: an earlier datagram
 * was refused); -EINVAL. Suspends. */
TIDE_API ssize_t tide_udp_recv(tide_udp *u, void *buf, size_t len);

/* The same, with the sender's address stored in addr (addrlen in-out,
 * as recvfrom(2)); addr may be NULL. -EINVAL if addr is given without
 * addrlen. Suspends. */
TIDE_API ssize_t tide_udp_recvfrom(tide_udp *u, void *buf, size_t len,
                                   struct sockaddr *addr, socklen_t *addrlen);

/* Wait for the next datagram and return its length (0 for an empty
 * one) without taking it: the next receive returns it, unless another
 * task's receive takes it first. -ECONNREFUSED as tide_udp_recv;
 * -EINVAL if u is NULL. Suspends. */
TIDE_API ssize_t tide_udp_peek_size(tide_udp *u);

#ifdef __cplusplus
}
#endif

#endif /* TIDE_UDP_H */
