/*
 * test_agent_jobs.c - worker/dp_agent_jobs.c: a local SUBMIT read in one
 * pass (dp_ag_on_submit). Jobs are queued in order with their chunk's
 * group, set once the chunk size that follows them is read; a SUBMIT
 * refused part way (a job that does not decode, bytes after the end)
 * leaves none of its jobs queued, and the jobs queued before it stay.
 * No child is started: the agent's queues are looked at directly.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dp_agent_int.h"
#include "dp_msg.h"
#include "dpool.h"

static unsigned g_batches;

static void s_sink(void *arg, char *data, size_t len)
{
    (void)arg;
    (void)len;
    g_batches++;
    free(data);
}

static void s_agent(dp_agent_t *a)
{
    dp_agent_cfg_t cfg = {.processes = 2,
                          .io_slots = 0,
                          .child = {.name = "test", .wire = dp_limits_default()}};
    memset(a, 0, sizeof *a);
    dp_ag_core_init(a, &cfg);
    a->sink = s_sink;
}

/* s_submit: a SUBMIT of n isprime jobs with ids from id0; the job at
 * `bad` (n: none) is a byte that does not decode; `tail` adds a byte
 * after the end. Taken by dp_ag_on_submit. */
static int s_submit(dp_agent_t *a, uint64_t id0, uint32_t n, uint32_t chunk,
                    uint32_t bad, bool tail)
{
    dp_wr_t jobs, w;
    dp_wr_init(&jobs);
    dp_wr_init(&w);
    for (uint32_t k = 0; k < n; k++) {
        if (k == bad) {
            static const uint8_t reserved = 0xc1;
            dp_wr_raw(&jobs, &reserved, 1);
            continue;
        }
        dp_value_t args = dp_array(1);
        args.v.a.items[0] = dp_uint(id0 + k);
        dp_msg_put_job(&jobs, id0 + k, "isprime", &args, 0, 0);
        dp_value_clear(&args);
    }
    dp_msg_submit(&w, id0, n, jobs.buf.data, jobs.buf.len, chunk);
    if (tail)
        dp_wr_nil(&w);
    char *data;
    size_t len;
    cr_assert_eq(dp_wr_take(&w, &data, &len), 0);
    dp_wr_release(&jobs);
    dp_wr_release(&w);
    return dp_ag_on_submit(a, data, len);
}

/* s_queued: the cpu queue's ids and groups, in order; their count. */
static size_t s_queued(dp_agent_t *a, uint64_t *ids, uint32_t *groups,
                       size_t max)
{
    size_t n = 0;
    for (dp_ag_job_t *j = a->queue[DP_CLASS_CPU].head; j && n < max;
         j = j->next, n++) {
        ids[n] = j->id;
        groups[n] = j->group;
    }
    cr_assert_eq(n, a->queue[DP_CLASS_CPU].n);
    return n;
}

Test(agent_jobs, chunks_grouped_after_one_pass)
{
    dp_agent_t a;
    s_agent(&a);
    /* 7 jobs in chunks of 3, then 2 in chunks of 5 */
    cr_assert_eq(s_submit(&a, 100, 7, 3, UINT32_MAX, false), 0);
    cr_assert_eq(s_submit(&a, 200, 2, 5, UINT32_MAX, false), 0);
    uint64_t ids[16];
    uint32_t g[16];
    cr_assert_eq(s_queued(&a, ids, g, 16), 9);
    static const uint64_t want_ids[] = {100, 101, 102, 103, 104,
                                        105, 106, 200, 201};
    static const uint32_t want_g[] = {0, 0, 0, 1, 1, 1, 2, 3, 3};
    for (size_t k = 0; k < 9; k++) {
        cr_assert_eq(ids[k], want_ids[k], "job %zu", k);
        cr_assert_eq(g[k] - g[0], want_g[k], "job %zu: group %u after %u", k,
                     g[k], g[0]);
    }
    cr_assert_neq(g[0], 0, "groups start after 0");
    cr_assert_eq(g_batches, 0, "nothing answered");
    dp_ag_forget(&a);
    dp_ag_core_release(&a);
}

Test(agent_jobs, refused_part_way_queues_none_of_it)
{
    dp_agent_t a;
    s_agent(&a);
    cr_assert_eq(s_submit(&a, 1, 2, 1, UINT32_MAX, false), 0);
    /* the fourth job does not decode: three were read before it */
    cr_assert_neq(s_submit(&a, 10, 6, 2, 3, false), 0);
    /* every job decodes, then a byte follows the message's end */
    cr_assert_neq(s_submit(&a, 20, 4, 2, UINT32_MAX, true), 0);
    uint64_t ids[16];
    uint32_t g[16];
    cr_assert_eq(s_queued(&a, ids, g, 16), 2);
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[1], 2);
    /* a good SUBMIT after them is grouped as usual */
    cr_assert_eq(s_submit(&a, 30, 3, 3, UINT32_MAX, false), 0);
    cr_assert_eq(s_queued(&a, ids, g, 16), 5);
    cr_assert(g[2] == g[3] && g[3] == g[4] && g[2] > g[1]);
    dp_ag_forget(&a);
    dp_ag_core_release(&a);
}
