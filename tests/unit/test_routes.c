/*
 * test_routes.c - the client's route table (client/dp_pool.c: job id ->
 * owner): ids are their own hash, so consecutive ids take consecutive
 * slots; lookups go no further from home than any route was put, so an
 * id that is not there (a stale result, a lying broker) costs a few
 * probes; the table rehashes at most once per quarter of its size of
 * additions, however the adds and deletes interleave.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "dp_pool_int.h"

#define T_IDS 20000u
#define T_CLIENT ((uint64_t)7 << 32) /* client_no 7, as dp_pool_next_id */

static void t_deliver(void *data, dp_got_t *g)
{
    (void)data;
    (void)g;
}

static dp_pool_t *t_pool(void)
{
    dp_pool_t *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    return p;
}

static void t_free(dp_pool_t *p)
{
    free(p->routes);
    free(p);
}

static int t_owner;

/* t_has: whether id routes (dp_route_del finds and drops it; it is put
 * back). dp_route_del is the lookup's public face: dp_pool_forget would
 * queue a CANCEL, which needs a running pool. */
static bool t_has(dp_pool_t *p, uint64_t id)
{
    size_t before = p->nroutes;
    dp_route_del(p, id);
    if (p->nroutes == before)
        return false;
    cr_assert_eq(dp_route_add(p, id, t_deliver, &t_owner, 0), 0);
    return true;
}

Test(routes, consecutive_ids_sit_at_home)
{
    dp_pool_t *p = t_pool();
    cr_assert_eq(dp_route_reserve(p, T_IDS), 0);
    size_t cap = p->cap_routes;
    for (uint64_t k = 1; k <= T_IDS; k++)
        cr_assert_eq(dp_route_add(p, T_CLIENT | k, t_deliver, &t_owner, k), 0);
    cr_assert_eq(p->cap_routes, cap, "a reserved table grew");
    cr_assert_eq(p->probe_max, 0, "consecutive ids were displaced");
    for (uint64_t k = 1; k <= T_IDS; k += 97)
        cr_assert(t_has(p, T_CLIENT | k));
    /* ids never given, or of another client: not found, in one probe */
    cr_assert_not(t_has(p, T_CLIENT | (T_IDS + 1)));
    cr_assert_not(t_has(p, ((uint64_t)8 << 32) | 5));
    t_free(p);
}

Test(routes, colliding_ids_found_and_absent_ones_not)
{
    dp_pool_t *p = t_pool();
    /* ids a table size apart share a home slot: they are displaced, and
     * each is still found; a deleted one is not */
    for (uint64_t k = 1; k <= 64; k++)
        cr_assert_eq(
            dp_route_add(p, T_CLIENT | (k << 20), t_deliver, &t_owner, k), 0);
    cr_assert_gt(p->probe_max, 0);
    for (uint64_t k = 1; k <= 64; k++)
        cr_assert(t_has(p, T_CLIENT | (k << 20)), "id %llu lost",
                  (unsigned long long)k);
    dp_route_del(p, T_CLIENT | (5u << 20));
    cr_assert_not(t_has(p, T_CLIENT | (5u << 20)));
    cr_assert(t_has(p, T_CLIENT | (6u << 20)), "found past a tombstone");
    cr_assert_eq(p->nroutes, 63);
    t_free(p);
}

Test(routes, sliding_window_rehashes_rarely)
{
    /* a stream: 4096 in flight, a million ids through, answered in order
     * (tombstones behind the window): the table stays small and rehashes
     * once per thousands of additions, not on every one */
    dp_pool_t *p = t_pool();
    enum { WINDOW = 4096, TOTAL = 1000000 };
    size_t rehashes = 0;
    dp_route_t *last = NULL;
    for (uint64_t k = 1; k <= TOTAL; k++) {
        cr_assert_eq(dp_route_add(p, T_CLIENT | k, t_deliver, &t_owner, k), 0);
        if (p->routes != last) {
            rehashes++;
            last = p->routes;
        }
        if (k > WINDOW)
            dp_route_del(p, T_CLIENT | (k - WINDOW));
    }
    cr_assert_eq(p->nroutes, WINDOW);
    cr_assert_leq(p->cap_routes, 8 * WINDOW, "cap %zu", p->cap_routes);
    /* 84 here; 248 when a rehash left the table half full */
    cr_assert_lt(rehashes, TOTAL / (2 * WINDOW), "%zu rehashes", rehashes);
    t_free(p);
}
