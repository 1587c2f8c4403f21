/* DNS off the loop (tide/pool.h): tide_getaddrinfo and tide_getnameinfo.
 *
 * A numeric host (and a numeric or absent service) is resolved inline
 * with AI_NUMERICHOST (getnameinfo: NI_NUMERICHOST | NI_NUMERICSERV),
 * which never blocks. Anything else runs on the pool's DNS class, on a
 * request record of its own (the names, the hints, the answer buffers
 * copied in), so a caller that is cancelled can go at once: the lookup
 * thread keeps running on the record, and the pool frees the record and
 * what was found (free_request) when it ends.
 *
 * tide__dns_hook, for tests only, runs on the lookup thread before each
 * lookup: a hook that blocks stands for a resolver that hangs.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "tide/pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void (*tide__dns_hook)(void);

/* getaddrinfo's and getnameinfo's codes as negative errnos (tide/pool.h). */
static int eai_err(int eai, int sys_errno)
{
    switch (eai) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
    case EAI_SERVICE:
        return -ENOENT;
    case EAI_AGAIN:
    case EAI_FAIL:
        return -EHOSTUNREACH;
    case EAI_FAMILY:
        return -EAFNOSUPPORT;
    case EAI_SOCKTYPE:
        return -ESOCKTNOSUPPORT;
    case EAI_BADFLAGS:
        return -EINVAL;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_OVERFLOW:
        return -ENOSPC;
    case EAI_SYSTEM:
        return sys_errno > 0 ? -sys_errno : -EIO;
    default:
        return -EIO;
    }
}

struct request {
    char *node, *service; /* copies, or NULL */
    struct addrinfo hints;
    bool has_hints;
    struct addrinfo *res;       /* getaddrinfo's answer */
    struct sockaddr_storage sa; /* getnameinfo's question */
    socklen_t salen;
    bool want_host, want_serv;
    int flags;
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
};

static void free_request(void *p)
{
    struct request *r = p;

    if (r->res)
        freeaddrinfo(r->res);
    tide__free(r->node);
    tide__free(r->service);
    tide__free(r);
}

static int lookup_addr(void *arg, void **result)
{
    struct request *r = arg;

    if (tide__dns_hook)
        tide__dns_hook();
    int eai = getaddrinfo(r->node, r->service, r->has_hints ? &r->hints : NULL,
                          &r->res);
    *result = r;
    return eai_err(eai, errno);
}

static int lookup_name(void *arg, void **result)
{
    struct request *r = arg;

    if (tide__dns_hook)
        tide__dns_hook();
    int eai = getnameinfo((struct sockaddr *)&r->sa, r->salen,
                          r->want_host ? r->host : NULL,
                          r->want_host ? sizeof r->host : 0,
                          r->want_serv ? r->serv : NULL,
                          r->want_serv ? sizeof r->serv : 0, r->flags);
    *result = r;
    return eai_err(eai, errno);
}

static bool numeric(const char *s)
{
    if (!s)
        return true;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Run r's lookup on the DNS class. Returns its error; *done is r once
 * delivered (the caller's again, to free), else NULL: r was freed (by the
 * pool if the call was cancelled, here if it never got to the pool). */
static int run_lookup(tide_work_fn fn, struct request *r,
                      struct request **done)
{
    void *out = NULL;
    int err = tide__to_thread_owned(TIDE_POOL_DNS, fn, r, free_request, &out);

    if (!out && err != -ECANCELED)
        free_request(r);
    *done = out;
    return err;
}

int tide_getaddrinfo(const char *node, const char *service,
                     const struct addrinfo *hints, struct addrinfo **res)
{
    if (!res || (!node && !service))
        return -EINVAL;
    if (numeric(service)) {
        struct addrinfo h = hints ? *hints : (struct addrinfo){0};
        h.ai_flags |= AI_NUMERICHOST | (service ? AI_NUMERICSERV : 0);
        int eai = getaddrinfo(node, service, &h, res);
        if (eai == 0 || (hints && (hints->ai_flags & AI_NUMERICHOST)) ||
            (eai != EAI_NONAME
#ifdef EAI_NODATA
             && eai != EAI_NODATA
#endif
             ))
            return eai_err(eai, errno);
    }
    if (!tide__task_loop())
        return -EPERM;
    struct request *r = tide__calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    if ((node && !(r->node = tide__strdup(node))) ||
        (service && !(r->service = tide__strdup(service)))) {
        free_request(r);
        return -ENOMEM;
    }
    if (hints) {
        r->hints = (struct addrinfo){.ai_flags = hints->ai_flags,
                                     .ai_family = hints->ai_family,
                                     .ai_socktype = hints->ai_socktype,
                                     .ai_protocol = hints->ai_protocol};
        r->has_hints = true;
    }
    struct request *done = NULL;
    int err = run_lookup(lookup_addr, r, &done);
    if (!done)
        return err;
    if (err == 0) {
        *res = done->res;
        done->res = NULL;
    }
    free_request(done);
    return err;
}

int tide_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                     size_t hostlen, char *serv, size_t servlen, int flags)
{
    if (!sa || salen == 0 || salen > sizeof(struct sockaddr_storage) ||
        (!host && hostlen) || (!serv && servlen) || (!hostlen && !servlen))
        return -EINVAL;
    if ((flags & (NI_NUMERICHOST | NI_NUMERICSERV)) ==
        (NI_NUMERICHOST | NI_NUMERICSERV))
        return eai_err(getnameinfo(sa, salen, hostlen ? host : NULL,
                                   (socklen_t)hostlen, servlen ? serv : NULL,
                                   (socklen_t)servlen, flags),
                       errno);
    if (!tide__task_loop())
        return -EPERM;
    struct request *r = tide__calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    memcpy(&r->sa, sa, salen);
    r->salen = salen;
    r->want_host = hostlen > 0;
    r->want_serv = servlen > 0;
    r->flags = flags;
    struct request *done = NULL;
    int err = run_lookup(lookup_name, r, &done);
    if (!done)
        return err;
    if (err == 0 && ((hostlen && strlen(done->host) >= hostlen) ||
                     (servlen && strlen(done->serv) >= servlen)))
        err = -ENOSPC;
    if (err == 0) {
        if (hostlen)
            strcpy(host, done->host);
        if (servlen)
            strcpy(serv, done->serv);
    }
    free_request(done);
    return err;
}
