/* The io_uring backend's multishot receives and accepts: a TCP stream's
 * fd gets one receive request for as long as data keeps coming, filling
 * buffers the kernel picks from a ring of them (a provided buffer ring,
 * one per loop), instead of one request per read; a listening socket
 * gets one accept request for as long as connections come.
 *
 * Each such fd has a record (struct tide__ms). What the kernel brings in
 * while nobody reads is held there, in arrival order, until a RECV takes
 * it; a RECV that finds nothing held waits on the record (B_MSWAIT) and
 * is completed, with the bytes copied into its buffer, by the next CQE.
 * The end of the stream (0) or an error (reported once, then 0) is kept
 * after the held bytes. So a read costs no submission and one completion.
 *
 * The first RECV with TIDE__HINT_STREAM on an fd makes its record and
 * arms the multishot. Only plain receives go through the record (no
 * address, no flags; others are submitted as they are). A POLL for
 * POLLIN on such an fd is answered from the record too (held data or an
 * end: at once; else when the next arrives), since the kernel's
 * multishot takes the data before any poll of the socket could see it.
 *
 * Limits: an fd holds at most HOLD_CAP bytes before its multishot is
 * stopped (cancelled; armed again by the next RECV that finds nothing),
 * so a stream nobody reads does not take the ring's buffers from the
 * others. A multishot that ends (ENOBUFS: the ring ran dry; the cancel
 * above; an old kernel's EINVAL) is armed again by the next RECV if at
 * least LOW_BUFS buffers are free; else the RECVs waiting and the next
 * ones are submitted as plain receives into their own buffers, until no
 * plain receive is in the kernel on the fd (uring_fd.reads) and buffers
 * are back. Compact tasks make their own receives (io/op.c): the take
 * verb gives them what is held, and -EAGAIN (wait for POLLIN) while a
 * multishot is armed.
 *
 * Accepts: the first ACCEPT without an address on a listener arms a
 * multishot accept with its flags (another ACCEPT with other flags or an
 * address is submitted as it is). Accepted fds are held in arrival order
 * (at most ACC_CAP before the multishot stops; it is armed again when
 * fewer than half are left); an error (EMFILE) is handed to one ACCEPT,
 * then the next arms again. Closing the listener closes the fds it held:
 * their peers see the end, as connections left in a closed listener's
 * backlog do.
 *
 * A record lives until its multishot's last CQE has come: closing the fd
 * (uring.c's CLOSE cancels everything on it), detaching it or reusing its
 * number only unlinks the record from the fd and drops what it held (a
 * detached fd loses the bytes received ahead: backend.h says so). Its
 * user_data carries a generation in the top byte, so a cancel aimed at
 * an ended multishot never stops the record's next one.
 * SPDX-License-Identifier: MIT
 */
#include "poll/uring.h"

#include "base/alloc.h"
#include "base/sys.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>

#define NBUF 256u    /* buffers in the ring (a power of two) */
#define BUFSZ 16384u /* bytes each */
#define BGID 7u      /* the ring's buffer group */
#define HOLD_CAP ((size_t)4 * BUFSZ)
#define LOW_BUFS 32u
#define ACC_CAP 64u /* accepted fds held before the multishot stops */
#define NO_BUF 0xffffu
#define PTR_MASK 0x00fffffffffffffcull

struct tide__ubufs {
    struct io_uring_buf_ring *br;
    char *mem;      /* NBUF * BUFSZ */
    unsigned nfree; /* in the ring, the kernel's to fill */
    uint16_t next[NBUF];
    uint32_t len[NBUF];
};

enum { MS_OFF, MS_ARMED, MS_STOPPING };

struct tide__ms {
    struct tide__ms *all_next;  /* u->ms_all */
    struct tide__ms *free_next; /* u->ms_free */
    struct tide__op *waiters;   /* RECVs, in order, through bnext */
    struct tide__op *pollers;   /* POLLs, through bnext */
    int fd;
    uint8_t kind; /* TIDE__OP_RECV or TIDE__OP_ACCEPT */
    uint8_t state;
    uint8_t gen;   /* bumped at each arm: in user_data */
    bool gone;     /* unlinked from its fd: free at the last CQE */
    bool ended;    /* `end` follows the held bytes */
    bool limited;  /* armed with a total (HOLD_CAP) */
    int end;       /* 0: end of stream; < 0: an error, reported once */
    uint16_t head; /* held buffers, oldest first (NO_BUF: none) */
    uint16_t tail;
    uint32_t off; /* bytes of head already taken */
    size_t held;  /* bytes held (accept: fds) */
    /* accept: the fds accepted, oldest at afd[ahead], a ring of acap */
    int aflags; /* accept4's flags it was armed with */
    int *afd;
    uint32_t acap, ahead;
};

/* ---- the buffer ring -------------------------------------------------- */

static void give_back(struct tide__ubufs *p, uint16_t bid)
{
    io_uring_buf_ring_add(p->br, p->mem + (size_t)bid * BUFSZ, BUFSZ, bid,
                          io_uring_buf_ring_mask(NBUF), 0);
    io_uring_buf_ring_advance(p->br, 1);
    p->nfree++;
}

static void bufs_free(struct tide__ubufs *p)
{
    if (p->br && p->br != MAP_FAILED)
        munmap(p->br, NBUF * sizeof(struct io_uring_buf));
    if (p->mem && p->mem != MAP_FAILED)
        munmap(p->mem, (size_t)NBUF * BUFSZ);
    tide__free(p);
}

/* Make and register the ring: false (and u->no_ms) if it cannot be. The
 * buffers' memory is touched only as the kernel fills them. */
static bool bufs_open(struct uring *u)
{
    struct tide__ubufs *p = tide__calloc(1, sizeof *p);

    if (!p)
        return false; /* ENOMEM: try again next time */
    p->br = mmap(NULL, NBUF * sizeof(struct io_uring_buf),
                 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p->mem = mmap(NULL, (size_t)NBUF * BUFSZ, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p->br == MAP_FAILED || p->mem == MAP_FAILED) {
        bufs_free(p);
        return false;
    }
    io_uring_buf_ring_init(p->br);
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)p->br,
                                   .ring_entries = NBUF,
                                   .bgid = BGID};
    if (io_uring_register_buf_ring(&u->ring, &reg, 0) < 0) {
        bufs_free(p);
        u->no_ms = true; /* a kernel before 5.19 */
        return false;
    }
    for (unsigned i = 0; i < NBUF; i++)
        give_back(p, (uint16_t)i);
    u->bufs = p;
    return true;
}

/* ---- records ---------------------------------------------------------- */

static struct tide__ms *ms_of(struct uring *u, int fd)
{
    return fd >= 0 && (uint32_t)fd < u->nfds ? u->fds[fd].ms : NULL;
}

static struct tide__ms *ms_new(struct uring *u, const struct tide__op *op)
{
    struct uring_fd *e = tide__uring_fd(u, op->fd);
    struct tide__ms *m = u->ms_free;

    if (!e)
        return NULL;
    if (m) {
        u->ms_free = m->free_next;
    } else {
        if (!(m = tide__calloc(1, sizeof *m)))
            return NULL;
        m->all_next = u->ms_all;
        u->ms_all = m;
    }
    /* (a reused record keeps its list link, generation and fd ring) */
    *m = (struct tide__ms){.all_next = m->all_next,
                           .fd = op->fd,
                           .kind = op->kind,
                           .gen = m->gen,
                           .head = NO_BUF,
                           .tail = NO_BUF,
                           .aflags = op->flags,
                           .afd = m->afd,
                           .acap = m->acap};
    e->ms = m;
    return m;
}

static void drop_held(struct uring *u, struct tide__ms *m)
{
    for (; m->kind == TIDE__OP_ACCEPT && m->held; m->held--) {
        tide__sys_close(m->afd[m->ahead]); /* never handed out */
        m->ahead = (m->ahead + 1) % m->acap;
    }
    while (m->head != NO_BUF) {
        uint16_t bid = m->head;
        m->head = u->bufs->next[bid];
        give_back(u->bufs, bid);
    }
    m->tail = NO_BUF;
    m->off = 0;
    m->held = 0;
}

static void ms_release(struct uring *u, struct tide__ms *m)
{
    m->free_next = u->ms_free;
    u->ms_free = m;
}

static uint64_t ud_of_ms(const struct tide__ms *m)
{
    return (uint64_t)(uintptr_t)m | UD_MS | (uint64_t)m->gen << 56;
}

/* ---- arming and stopping ---------------------------------------------- */

static bool can_arm(struct uring *u, int fd, uint8_t kind)
{
    struct uring_fd *e = tide__uring_fd(u, fd);

    if (e && kind == TIDE__OP_ACCEPT)
        return !u->no_msa;
    if (!e || u->no_ms || (!u->bufs && !bufs_open(u)))
        return false;
    return u->bufs->nfree >= LOW_BUFS && e->reads == 0;
}

static int arm(struct uring *u, struct tide__ms *m)
{
    struct io_uring_sqe *s = tide__uring_sqe(u);

    if (!s)
        return -errno;
    if (m->kind == TIDE__OP_ACCEPT) {
        io_uring_prep_multishot_accept(s, m->fd, NULL, NULL, m->aflags);
    } else {
        io_uring_prep_recv_multishot(s, m->fd, NULL, 0, 0);
        s->flags |= IOSQE_BUFFER_SELECT;
        s->buf_group = BGID;
        /* The kernel's optlen (liburing 2.3 calls the field file_index):
         * a total after which the multishot ends (Linux 6.14 on; earlier
         * ones refuse it with EINVAL, and then stop() at HOLD_CAP does). */
        m->limited = !u->no_limit;
        if (m->limited)
            s->file_index = (uint32_t)HOLD_CAP;
    }
    m->gen++;
    io_uring_sqe_set_data64(s, ud_of_ms(m));
    u->fds[m->fd].ops++;
    m->state = MS_ARMED;
    return 0;
}

static void stop(struct uring *u, struct tide__ms *m)
{
    struct io_uring_sqe *s = tide__uring_sqe(u);

    if (!s)
        return; /* it stays armed; HOLD_CAP is asked again at the next CQE */
    io_uring_prep_cancel64(s, ud_of_ms(m), 0);
    io_uring_sqe_set_data64(s, UD_CANCEL);
    m->state = MS_STOPPING;
}

/* ---- taking what is held ---------------------------------------------- */

static bool has_news(const struct tide__ms *m)
{
    return m->held || m->ended;
}

/* op's result from what m holds (has_news(m)): bytes copied into a RECV's
 * buffer, or a POLL's revents. */
static ssize_t take(struct uring *u, struct tide__ms *m, struct tide__op *op)
{
    if (op->kind == TIDE__OP_POLL) {
        unsigned ev = POLLIN;
        if (!m->held && (m->end < 0 || m->kind == TIDE__OP_RECV))
            ev |= m->end < 0 ? POLLERR : POLLRDHUP;
        return ev & ((unsigned)op->flags | POLLHUP | POLLERR | POLLRDHUP);
    }
    if (!m->held) {
        int end = m->end;
        m->end = 0; /* an error is reported once; then end of stream */
        m->ended = m->kind == TIDE__OP_RECV; /* (an accept goes on) */
        return end;
    }
    if (m->kind == TIDE__OP_ACCEPT) {
        int fd = m->afd[m->ahead];
        m->ahead = (m->ahead + 1) % m->acap;
        m->held--;
        return fd;
    }
    size_t done = 0;
    while (done < op->len && m->head != NO_BUF) {
        uint16_t bid = m->head;
        size_t k = u->bufs->len[bid] - m->off;
        if (k > op->len - done)
            k = op->len - done;
        memcpy((char *)op->buf + done,
               u->bufs->mem + (size_t)bid * BUFSZ + m->off, k);
        done += k;
        m->off += (uint32_t)k;
        if (m->off == u->bufs->len[bid]) {
            m->head = u->bufs->next[bid];
            if (m->head == NO_BUF)
                m->tail = NO_BUF;
            m->off = 0;
            give_back(u->bufs, bid);
        }
    }
    m->held -= done;
    return (ssize_t)done;
}

static void hold(struct uring *u, struct tide__ms *m, uint16_t bid, int len)
{
    u->bufs->len[bid] = (uint32_t)len;
    u->bufs->next[bid] = NO_BUF;
    if (m->tail == NO_BUF)
        m->head = bid;
    else
        u->bufs->next[m->tail] = bid;
    m->tail = bid;
    m->held += (size_t)len;
}

/* An accepted fd, held until an ACCEPT takes it; closed if the ring of
 * them cannot grow (ENOMEM: the peer sees its connection reset). */
static void hold_fd(struct tide__ms *m, int fd)
{
    if (m->held == m->acap) {
        uint32_t n = m->acap ? 2 * m->acap : ACC_CAP;
        int *t = tide__malloc(n * sizeof *t);
        if (!t) {
            tide__sys_close(fd);
            return;
        }
        for (uint32_t i = 0; i < m->held; i++)
            t[i] = m->afd[(m->ahead + i) % m->acap];
        tide__free(m->afd);
        m->afd = t;
        m->acap = n;
        m->ahead = 0;
    }
    m->afd[(m->ahead + m->held++) % m->acap] = fd;
}

static void push(struct tide__op **list, struct tide__op *op)
{
    op->bnext = NULL;
    while (*list)
        list = &(*list)->bnext;
    *list = op;
    op->bstate = B_MSWAIT;
}

/* Let go of every op waiting on m: with end < 0 they end with it; with
 * 0 (nothing armed, nothing held) they go to the kernel as they are
 * (plain receives, polls of the socket). */
static void let_go(struct tide__backend *b, struct tide__ms *m, int end,
                   struct tide__completion *out, int cap, int *n)
{
    struct tide__op *lists[2] = {m->waiters, m->pollers};

    m->waiters = m->pollers = NULL;
    for (int i = 0; i < 2; i++) {
        for (struct tide__op *op = lists[i], *next; op; op = next) {
            next = op->bnext;
            op->bnext = NULL;
            op->bstate = TIDE__B_IDLE;
            int err = end < 0 ? end : tide__uring_submit_plain(b, op);
            if (err < 0)
                tide__ready_emit(b, op, err, out, cap, n);
        }
    }
}

/* m's multishot ended with little held (it reached its total, or was
 * stopped and read since): arm it again, so that a stream being read
 * keeps one. */
static void maybe_arm(struct uring *u, struct tide__ms *m)
{
    size_t cap = m->kind == TIDE__OP_ACCEPT ? ACC_CAP : HOLD_CAP;

    if (m->state == MS_OFF && !m->ended && !m->gone && m->held < cap / 2 &&
        can_arm(u, m->fd, m->kind))
        (void)arm(u, m); /* no SQE: the next RECV arms it */
}

/* Hand what m holds to the ops waiting; then arm, stop or let go. */
static void serve(struct tide__backend *b, struct tide__ms *m,
                  struct tide__completion *out, int cap, int *n)
{
    struct uring *u = tide__ur(b);

    while (m->waiters && has_news(m)) {
        struct tide__op *op = m->waiters;
        m->waiters = op->bnext;
        op->bnext = NULL;
        tide__ready_emit(b, op, take(u, m, op), out, cap, n);
    }
    if (has_news(m)) {
        while (m->pollers) {
            struct tide__op *op = m->pollers;
            m->pollers = op->bnext;
            op->bnext = NULL;
            tide__ready_emit(b, op, take(u, m, op), out, cap, n);
        }
    } else if (m->state == MS_OFF && (m->waiters || m->pollers)) {
        if (!can_arm(u, m->fd, m->kind) || arm(u, m) < 0)
            let_go(b, m, 0, out, cap, n);
    }
    maybe_arm(u, m);
    if (m->state == MS_ARMED && !m->limited &&
        m->held >= (m->kind == TIDE__OP_ACCEPT ? ACC_CAP : HOLD_CAP))
        stop(u, m);
}

/* ---- the backend's calls ---------------------------------------------- */

/* An op a multishot record serves: a plain receive, or an accept
 * without an address; and one that fits m. */
static bool for_ms(const struct tide__op *op)
{
    if (op->kind == TIDE__OP_ACCEPT)
        return !op->addr;
    return op->kind == TIDE__OP_RECV && !op->addr && !op->flags && op->len;
}

static bool fits(const struct tide__ms *m, const struct tide__op *op)
{
    return m->kind == op->kind &&
           (op->kind != TIDE__OP_ACCEPT || op->flags == m->aflags);
}

int tide__ms_submit(struct tide__backend *b, struct tide__op *op)
{
    struct uring *u = tide__ur(b);
    struct tide__ms *m = ms_of(u, op->fd);

    if (op->kind == TIDE__OP_POLL) {
        if (!m || !(op->flags & POLLIN))
            return TIDE__MS_PASS;
    } else if (!for_ms(op) || (m && !fits(m, op))) {
        return TIDE__MS_PASS;
    } else if (!m) {
        if ((op->kind == TIDE__OP_RECV && !(op->hint & TIDE__HINT_STREAM)) ||
            !can_arm(u, op->fd, op->kind) || !(m = ms_new(u, op)))
            return TIDE__MS_PASS;
    }
    if (has_news(m)) {
        op->result = take(u, m, op);
        maybe_arm(u, m);
        return 1;
    }
    if (m->state == MS_OFF) {
        /* Nothing in the kernel for m: a poll of the socket is right; a
         * receive arms m if it can, else goes as it is. */
        if (op->kind == TIDE__OP_POLL || !can_arm(u, op->fd, op->kind))
            return TIDE__MS_PASS;
        int err = arm(u, m);
        if (err < 0)
            return err;
    }
    push(op->kind == TIDE__OP_POLL ? &m->pollers : &m->waiters, op);
    return 0;
}

int tide__ms_take(struct tide__backend *b, struct tide__op *op)
{
    struct uring *u = tide__ur(b);
    struct tide__ms *m = ms_of(u, op->fd);

    if (!m || !for_ms(op) || !fits(m, op))
        return 0;
    if (has_news(m)) {
        op->result = take(u, m, op);
        maybe_arm(u, m);
        return 1;
    }
    return m->state == MS_OFF ? 0 : -EAGAIN;
}

static bool unlink_from(struct tide__op **list, struct tide__op *op)
{
    for (; *list; list = &(*list)->bnext) {
        if (*list == op) {
            *list = op->bnext;
            op->bnext = NULL;
            return true;
        }
    }
    return false;
}

int tide__ms_cancel(struct tide__backend *b, struct tide__op *op)
{
    struct tide__ms *m = ms_of(tide__ur(b), op->fd);

    if (m && !unlink_from(&m->waiters, op))
        unlink_from(&m->pollers, op);
    op->bstate = TIDE__B_IDLE;
    op->result = -ECANCELED;
    b->inflight--;
    return 1;
}

void tide__ms_cqe(struct tide__backend *b, struct tide__ms *m, int res,
                  unsigned flags, struct tide__completion *out, int cap,
                  int *n)
{
    struct uring *u = tide__ur(b);

    if (m->kind == TIDE__OP_ACCEPT && res >= 0) {
        if (m->gone)
            tide__sys_close(res);
        else
            hold_fd(m, res);
    } else if (flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        u->bufs->nfree--;
        if (res > 0 && !m->gone)
            hold(u, m, bid, res);
        else
            give_back(u->bufs, bid);
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        m->state = MS_OFF;
        if (m->gone) {
            ms_release(u, m);
            return;
        }
        if (res == -EINVAL && m->kind == TIDE__OP_ACCEPT && !m->held)
            u->no_msa = true; /* a kernel without multishot accepts */
        else if (res == -EINVAL && m->limited)
            u->no_limit = true; /* armed again without it, below */
        else if (res == -EINVAL && !m->held)
            u->no_ms = true; /* a kernel without multishot receives */
        else if (res < 0 ? res != -ENOBUFS && res != -ECANCELED
                         : m->kind == TIDE__OP_RECV && res == 0) {
            m->ended = true;
            m->end = res;
        }
    }
    if (!m->gone)
        serve(b, m, out, cap, n);
}

void tide__ms_fd_gone(struct tide__backend *b, int fd,
                      struct tide__completion *out, int cap, int *n)
{
    struct uring *u = tide__ur(b);
    struct tide__ms *m = ms_of(u, fd);

    if (!m)
        return;
    u->fds[fd].ms = NULL;
    let_go(b, m, -EBADF, out, cap, n);
    drop_held(u, m);
    m->gone = true;
    if (m->state == MS_OFF)
        ms_release(u, m);
    else if (m->state == MS_ARMED)
        stop(u, m);
}

void tide__ms_cancel_all(struct tide__backend *b)
{
    struct uring *u = tide__ur(b);

    for (struct tide__ms *m = u->ms_all; m; m = m->all_next)
        if (m->state == MS_ARMED)
            stop(u, m);
}

void tide__ms_free_all(struct tide__backend *b)
{
    struct uring *u = tide__ur(b);

    for (struct tide__ms *m = u->ms_all, *next; m; m = next) {
        next = m->all_next;
        drop_held(u, m);
        tide__free(m->afd);
        tide__free(m);
    }
    u->ms_all = u->ms_free = NULL;
    if (u->bufs)
        bufs_free(u->bufs);
    u->bufs = NULL;
}

struct tide__ms *tide__ms_of_ud(uint64_t ud)
{
    return (struct tide__ms *)(uintptr_t)(ud & PTR_MASK);
}

int tide__ms_fd(const struct tide__ms *m)
{
    return m->fd;
}

unsigned tide__ms_free_buffers(struct tide__backend *b)
{
    struct uring *u = tide__ur(b);

    return u->bufs ? u->bufs->nfree : NBUF;
}
