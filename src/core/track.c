/* Debug mode's record of the futures of a loop: where each was made,
 * which are still alive when the loop closes, and which were freed.
 *
 * A future made while its loop is in debug mode gets its memory from
 * here, with a header in front that names it and lists it on the loop.
 * Freeing it does not give the memory back at once: it waits, marked
 * freed and still readable, among the loop's QUARANTINE most recently
 * freed, so a second release of it lands on the mark (and is reported)
 * instead of on whatever reused the memory. Close reports every future
 * still listed; the quarantine goes with the loop record. The future
 * layer calls in here (loop.h, "debug mode's record of futures"); a loop
 * without debug mode never does.
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include <stdalign.h>
#include <stdio.h>

#define QUARANTINE 1024
/* Futures named one by one at close; the rest are counted. */
#define REPORT_MAX 100

struct tracked {
    struct tide__list link; /* loop->tracked, then loop->quarantine */
    const char *what;       /* "future", "task", ... */
    const char *file;       /* creation site; NULL: not known */
    void (*describe)(void *obj, char *buf, size_t n); /* a live one */
    int line;
    bool freed;
};
/* The object after the header keeps malloc's alignment. */
_Static_assert(sizeof(struct tracked) % alignof(max_align_t) == 0,
               "the tracked header keeps the object aligned");

static struct tracked *header_of(const void *obj)
{
    return (struct tracked *)(void *)((char *)obj - sizeof(struct tracked));
}

void *tide__track_alloc(tide_loop *loop, size_t size, const char *what,
                        const char *file, int line,
                        void (*describe)(void *obj, char *buf, size_t n))
{
    struct tracked *h = tide__malloc(sizeof *h + size);

    if (!h)
        return NULL;
    h->what = what;
    h->file = file;
    h->line = line;
    h->describe = describe;
    h->freed = false;
    tide__list_push_back(&loop->tracked, &h->link);
    return h + 1;
}

void tide__track_free(tide_loop *loop, void *obj)
{
    struct tracked *h = header_of(obj);

    tide__list_remove(&h->link);
    h->freed = true;
    tide__list_push_back(&loop->quarantine, &h->link);
    if (++loop->nquarantined <= QUARANTINE)
        return;
    struct tide__list *oldest = loop->quarantine.next;
    tide__list_remove(oldest);
    loop->nquarantined--;
    tide__free(tide__container_of(oldest, struct tracked, link));
}

bool tide__track_freed(const void *obj)
{
    return header_of(obj)->freed;
}

const char *tide__track_what(const void *obj)
{
    return header_of(obj)->what;
}

bool tide__track_site(const void *obj, const char **file, int *line)
{
    const struct tracked *h = header_of(obj);

    *file = h->file;
    *line = h->line;
    return h->file != NULL;
}

void tide__track_report_freed(tide_loop *loop, const void *obj,
                              const char *call)
{
    const struct tracked *h = header_of(obj);
    char msg[400];

    if (h->file)
        snprintf(msg, sizeof msg,
                 "%s of a future already released (a %s created at %s:%d)",
                 call, h->what, h->file, h->line);
    else
        snprintf(msg, sizeof msg,
                 "%s of a future already released "
                 "(a %s whose creation site is not known)",
                 call, h->what);
    tide__loop_report(loop, msg);
}

/* One report per future still listed, up to REPORT_MAX, then one for
 * the rest. The report handler may release some of them meanwhile: each
 * is moved back to the list before it is described, so a release only
 * ever unlinks it from a list. */
void tide__track_report_live(tide_loop *loop)
{
    struct tide__list left;
    char who[256], msg[400];
    size_t n = 0;

    if (tide__list_empty(&loop->tracked))
        return;
    left = loop->tracked; /* every one moves to `left` */
    left.next->prev = left.prev->next = &left;
    tide__list_init(&loop->tracked);
    while (!tide__list_empty(&left)) {
        struct tracked *h =
            tide__container_of(left.next, struct tracked, link);
        tide__list_remove(&h->link);
        tide__list_push_back(&loop->tracked, &h->link);
        if (++n > REPORT_MAX)
            continue;
        h->describe(h + 1, who, sizeof who);
        snprintf(msg, sizeof msg,
                 "%s was not released when its loop closed: "
                 "a leak, unless it is released later",
                 who);
        tide__loop_report(loop, msg);
    }
    if (n > REPORT_MAX) {
        snprintf(msg, sizeof msg,
                 "and %zu more futures were not released when their "
                 "loop closed",
                 n - REPORT_MAX);
        tide__loop_report(loop, msg);
    }
}

void tide__track_flush(tide_loop *loop)
{
    while (!tide__list_empty(&loop->quarantine)) {
        struct tide__list *l = loop->quarantine.next;
        tide__list_remove(l);
        tide__free(tide__container_of(l, struct tracked, link));
    }
    loop->nquarantined = 0;
}
