/* The timer heap (src/base/heap.c) against a reference model.
 *
 * Random sequences of arm / disarm / pop over few distinct deadlines (so
 * leaders, followers, promotions and recent-table evictions all happen)
 * and over many; every pop must return the armed timer with the smallest
 * (deadline, order armed), cancelled timers never come back, and the
 * counts match. HAZARDS #10 (fuzz the heap with operation sequences) and
 * B15 (ordering with many equal deadlines and cancels).
 */
#include "harness.h"

#include "base/alloc.h"
#include "base/heap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NT 2000

struct model {
    struct tide__timer t[NT];
    int armed[NT];
    int64_t deadline[NT];
    uint64_t order[NT]; /* when it was armed: ties break on this */
    uint64_t clock;
};

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* The armed timer the heap must pop next, or -1. */
static int model_min(const struct model *m)
{
    int best = -1;

    for (int i = 0; i < NT; i++) {
        if (!m->armed[i])
            continue;
        if (best < 0 || m->deadline[i] < m->deadline[best] ||
            (m->deadline[i] == m->deadline[best] &&
             m->order[i] < m->order[best]))
            best = i;
    }
    return best;
}

static void run_model(uint64_t seed, int distinct, int steps)
{
    struct model *m = calloc(1, sizeof *m);
    struct tide__heap *h = calloc(1, sizeof *h);
    size_t armed = 0;

    rng_state = seed;
    for (int i = 0; i < NT; i++)
        tide__timer_init(&m->t[i], 0);
    for (int s = 0; s < steps; s++) {
        int i = (int)(rnd() % NT);
        uint32_t op = rnd() % 10;
        if (op < 5 && !m->armed[i]) {
            int64_t d = 1000 + (int64_t)(rnd() % (uint32_t)distinct) * 7;
            CHECK_EQ(tide__heap_push(h, &m->t[i], d), 0);
            m->armed[i] = 1;
            m->deadline[i] = d;
            m->order[i] = m->clock++;
            armed++;
        } else if (op < 8) {
            tide__heap_remove(h, &m->t[i]); /* armed or not: harmless */
            if (m->armed[i])
                armed--;
            m->armed[i] = 0;
            CHECK(!tide__timer_armed(&m->t[i]));
        } else {
            int want = model_min(m);
            struct tide__timer *got = tide__heap_pop(h);
            if (want < 0) {
                CHECK_NULL(got);
                continue;
            }
            CHECK_NOT_NULL(got);
            if (got != &m->t[want])
                harness_fail(__FILE__, __LINE__,
                             "seed %llu step %d: popped #%d (d=%lld), "
                             "model wants #%d (d=%lld)",
                             (unsigned long long)seed, s, (int)(got - m->t),
                             (long long)got->deadline, want,
                             (long long)m->deadline[want]);
            m->armed[want] = 0;
            armed--;
        }
        CHECK_EQ(h->armed, armed);
    }
    /* Drain: everything left comes out in order, then nothing. */
    for (int want; (want = model_min(m)) >= 0;) {
        CHECK(tide__heap_pop(h) == &m->t[want]);
        m->armed[want] = 0;
    }
    CHECK_NULL(tide__heap_pop(h));
    CHECK_EQ(h->armed, 0);
    tide__heap_free(h);
    free(h);
    free(m);
}

TEST(few_deadlines_many_followers)
{
    for (uint64_t seed = 1; seed <= 20; seed++)
        run_model(seed, 3, 4000);
    LEAK_GATE();
}

TEST(recent_table_evictions)
{
    /* More distinct deadlines than the recent table has entries. */
    for (uint64_t seed = 100; seed <= 105; seed++)
        run_model(seed, 5000, 6000);
    LEAK_GATE();
}

TEST(all_distinct_deadlines)
{
    for (uint64_t seed = 200; seed <= 205; seed++)
        run_model(seed, 1 << 30, 6000);
    LEAK_GATE();
}

TEST(leader_removed_promotes_first_follower)
{
    struct tide__heap *h = calloc(1, sizeof *h);
    struct tide__timer t[4];

    for (int i = 0; i < 4; i++) {
        tide__timer_init(&t[i], 0);
        CHECK_EQ(tide__heap_push(h, &t[i], 50), 0);
    }
    CHECK_EQ(h->count, 1);       /* one leader, three followers */
    tide__heap_remove(h, &t[0]); /* the leader goes */
    tide__heap_remove(h, &t[2]); /* a follower goes */
    CHECK(tide__heap_pop(h) == &t[1]);
    CHECK(tide__heap_pop(h) == &t[3]);
    CHECK_NULL(tide__heap_pop(h));
    tide__heap_free(h);
    free(h);
    LEAK_GATE();
}

TEST(push_fails_cleanly_when_the_array_cannot_grow)
{
    struct tide__heap *h = calloc(1, sizeof *h);
    struct tide__timer t;

    tide__timer_init(&t, 0);
    tide__alloc_fail_after(1);
    CHECK_ERR(tide__heap_push(h, &t, 5), -ENOMEM);
    tide__alloc_fail_after(0);
    CHECK(!tide__timer_armed(&t));
    CHECK_EQ(h->armed, 0);
    CHECK_EQ(tide__heap_push(h, &t, 5), 0);
    CHECK(tide__heap_pop(h) == &t);
    tide__heap_free(h);
    free(h);
    LEAK_GATE();
}
