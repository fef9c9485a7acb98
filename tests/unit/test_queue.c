/*
 * test_queue.c - broker/dp_queue.c: the id index, per-client queues served
 * round-robin per class, leases, requeue, orphans, kept results, credit,
 * index growth, release, and the reference-counted frame buffer
 * (dp_bbuf_t).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "dp_queue.h"

#define T_FRAME_BYTES 64u
#define T_MANY 100000u

static dp_queue_t s_q;
static dp_bbuf_t *s_buf;

/* s_bbuf: a frame buffer as the broker makes one, holding our reference. */
static dp_bbuf_t *s_bbuf(size_t n)
{
    dp_bbuf_t *b = calloc(1, sizeof *b);
    cr_assert(b);
    cr_assert_eq(zmq_msg_init_size(&b->msg, n), 0);
    memset(zmq_msg_data(&b->msg), 0xab, n);
    b->refs = 1;
    return b;
}

static void s_setup(void)
{
    cr_assert_eq(dp_queue_init(&s_q), 0);
    s_buf = s_bbuf(T_FRAME_BYTES);
}

static void s_teardown(void)
{
    dp_queue_release(&s_q);
    dp_bbuf_unref(s_buf);
}

TestSuite(queue, .init = s_setup, .fini = s_teardown);

static const uint8_t *s_raw(uint64_t id)
{
    return (const uint8_t *)zmq_msg_data(&s_buf->msg) + id % T_FRAME_BYTES;
}

static dp_bjob_t *s_add(dp_qclient_t *c, uint64_t id, dp_class_t cls)
{
    dp_bjob_t *j = NULL;
    int rc = dp_queue_add(&s_q, c, id, cls, 3, s_buf, s_raw(id), 1, &j);
    cr_assert_eq(rc, 0, "add %llu: %d", (unsigned long long)id, rc);
    cr_assert(j);
    return j;
}

Test(queue, add_find_free)
{
    dp_qclient_t c = {0};
    dp_bjob_t *a = s_add(&c, 1, DP_CLASS_CPU);
    dp_bjob_t *b = s_add(&c, 2, DP_CLASS_CPU);
    dp_bjob_t *d = s_add(&c, 0x500000003ULL, DP_CLASS_IO);
    cr_assert_eq(s_q.njobs, 3);
    cr_assert_eq(s_buf->refs, 4);
    cr_assert_eq(dp_queue_find(&s_q, 1), a);
    cr_assert_eq(dp_queue_find(&s_q, 2), b);
    cr_assert_eq(dp_queue_find(&s_q, 0x500000003ULL), d);
    cr_assert_null(dp_queue_find(&s_q, 3));
    cr_assert_null(dp_queue_find(&s_q, 0x100000001ULL));
    cr_assert_eq(a->state, DP_JOB_QUEUED);
    cr_assert_eq(a->attempts, 0);
    cr_assert_eq(a->retries, 3);
    cr_assert_eq(a->client, &c);
    cr_assert_null(a->worker);
    cr_assert_eq(a->raw, s_raw(1));
    cr_assert_eq(a->raw_len, 1);
    cr_assert_eq(a->buf, s_buf);
    cr_assert_eq(d->cls, DP_CLASS_IO);
    cr_assert_eq(c.queue[DP_CLASS_CPU].n, 2);
    cr_assert_eq(c.queue[DP_CLASS_IO].n, 1);
    cr_assert_eq(s_q.queued[DP_CLASS_CPU], 2);
    cr_assert_eq(s_q.queued[DP_CLASS_IO], 1);
    cr_assert_str_eq(dp_jobstate_names[DP_JOB_QUEUED], "queued");
    cr_assert_str_eq(dp_jobstate_names[DP_JOB_LEASED], "leased");
    cr_assert_str_eq(dp_jobstate_names[DP_JOB_ORPHAN], "orphan");

    dp_queue_free_job(&s_q, a);
    cr_assert_null(dp_queue_find(&s_q, 1));
    cr_assert_eq(dp_queue_find(&s_q, 2), b);
    cr_assert_eq(s_q.njobs, 2);
    cr_assert_eq(s_buf->refs, 3);
    cr_assert_eq(c.queue[DP_CLASS_CPU].n, 1);
    cr_assert_eq(c.queue[DP_CLASS_CPU].head, b);
    cr_assert_eq(s_q.queued[DP_CLASS_CPU], 1);
    /* the last queued job of a class takes the client out of the ring */
    dp_queue_free_job(&s_q, b);
    cr_assert_not(c.in_ring[DP_CLASS_CPU]);
    cr_assert_null(s_q.ring[DP_CLASS_CPU]);
    dp_qworker_t w = {0};
    cr_assert_null(dp_queue_next(&s_q, DP_CLASS_CPU, &w));
    cr_assert(c.in_ring[DP_CLASS_IO]);
    dp_queue_free_job(&s_q, d);
    cr_assert_eq(s_q.njobs, 0);
    cr_assert_eq(s_buf->refs, 1);
    cr_assert_null(s_q.ring[DP_CLASS_IO]);
}

Test(queue, duplicate_id_refused)
{
    dp_qclient_t c = {0}, c2 = {0};
    s_add(&c, 42, DP_CLASS_CPU);
    dp_bjob_t *j = (dp_bjob_t *)0x1;
    cr_assert_eq(
        dp_queue_add(&s_q, &c2, 42, DP_CLASS_IO, 0, s_buf, s_raw(42), 1, &j),
        DP_ERR_INVALID);
    cr_assert_eq(s_buf->refs, 2, "a refused job took a reference");
    cr_assert_eq(s_q.njobs, 1);
    cr_assert_eq(c2.queue[DP_CLASS_IO].n, 0);
    cr_assert_not(c2.in_ring[DP_CLASS_IO]);
    cr_assert_null(s_q.ring[DP_CLASS_IO]);
    /* out may be NULL */
    cr_assert_eq(
        dp_queue_add(&s_q, &c, 43, DP_CLASS_CPU, 0, s_buf, s_raw(43), 1, NULL),
        0);
}

Test(queue, round_robin_across_clients)
{
    dp_qclient_t a = {0}, b = {0}, c = {0};
    for (uint64_t k = 0; k < 10; k++)
        s_add(&a, 0x100000000ULL | k, DP_CLASS_CPU);
    for (uint64_t k = 0; k < 2; k++)
        s_add(&b, 0x200000000ULL | k, DP_CLASS_CPU);
    s_add(&c, 0x300000000ULL, DP_CLASS_CPU);
    static const char want[] = "ABCABAAAAAAAA";
    dp_qworker_t w = {0};
    uint64_t seq[3] = {0, 0, 0};
    for (size_t k = 0; want[k]; k++) {
        dp_bjob_t *j = dp_queue_next(&s_q, DP_CLASS_CPU, &w);
        cr_assert(j, "dispatch %zu: nothing", k);
        int who = j->client == &a ? 0 : j->client == &b ? 1 : 2;
        cr_assert_eq("ABC"[who], want[k], "dispatch %zu went to %c", k,
                     "ABC"[who]);
        /* each client's own jobs go oldest first */
        cr_assert_eq(j->id & 0xffffffffu, seq[who]++);
        cr_assert_eq(j->state, DP_JOB_LEASED);
        cr_assert_eq(j->worker, &w);
        cr_assert_eq(j->attempts, 1);
    }
    cr_assert_null(dp_queue_next(&s_q, DP_CLASS_CPU, &w));
    cr_assert_eq(w.leases.n, 13);
    cr_assert_eq(w.inflight[DP_CLASS_CPU], 13);
    cr_assert_eq(a.running, 10);
    cr_assert_eq(b.running, 2);
    cr_assert_eq(c.running, 1);
    cr_assert_eq(s_q.queued[DP_CLASS_CPU], 0);
    cr_assert_null(s_q.ring[DP_CLASS_CPU]);
}

Test(queue, newcomer_joins_the_current_round)
{
    /* a client arriving mid-round joins just before the next to serve,
     * i.e. it is served last in the round that starts there */
    dp_qclient_t a = {0}, b = {0}, c = {0};
    for (uint64_t k = 0; k < 4; k++) {
        s_add(&a, 0x100000000ULL | k, DP_CLASS_CPU);
        s_add(&b, 0x200000000ULL | k, DP_CLASS_CPU);
    }
    s_add(&c, 0x300000000ULL, DP_CLASS_CPU);
    s_add(&c, 0x300000001ULL, DP_CLASS_CPU);
    dp_qworker_t w = {0};
    cr_assert_eq(dp_queue_next(&s_q, DP_CLASS_CPU, &w)->client, &a);
    dp_qclient_t d = {0};
    s_add(&d, 0x400000000ULL, DP_CLASS_CPU);
    dp_qclient_t *order[] = {&b, &c, &a, &d, &b, &c, &a, &b, &a, &b};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        cr_assert_eq(dp_queue_next(&s_q, DP_CLASS_CPU, &w)->client, order[k],
                     "dispatch %zu", k);
    cr_assert_null(dp_queue_next(&s_q, DP_CLASS_CPU, &w));
}

Test(queue, classes_are_separate)
{
    dp_qclient_t a = {0}, b = {0};
    s_add(&a, 1, DP_CLASS_CPU);
    s_add(&a, 2, DP_CLASS_IO);
    s_add(&a, 3, DP_CLASS_CPU);
    s_add(&b, 4, DP_CLASS_IO);
    dp_qworker_t w = {0};
    dp_bjob_t *j = dp_queue_next(&s_q, DP_CLASS_IO, &w);
    cr_assert(j && j->id == 2);
    j = dp_queue_next(&s_q, DP_CLASS_IO, &w);
    cr_assert(j && j->id == 4);
    cr_assert_null(dp_queue_next(&s_q, DP_CLASS_IO, &w));
    cr_assert_eq(w.inflight[DP_CLASS_IO], 2);
    cr_assert_eq(w.inflight[DP_CLASS_CPU], 0);
    cr_assert_eq(s_q.queued[DP_CLASS_CPU], 2);
    cr_assert_eq(s_q.queued[DP_CLASS_IO], 0);
    cr_assert(a.in_ring[DP_CLASS_CPU]);
    cr_assert_not(a.in_ring[DP_CLASS_IO]);
    j = dp_queue_next(&s_q, DP_CLASS_CPU, &w);
    cr_assert(j && j->id == 1);
    j = dp_queue_next(&s_q, DP_CLASS_CPU, &w);
    cr_assert(j && j->id == 3);
    cr_assert_null(dp_queue_next(&s_q, DP_CLASS_CPU, &w));
    cr_assert_eq(w.inflight[DP_CLASS_CPU], 2);
    cr_assert_eq(a.running, 3);
    cr_assert_eq(b.running, 1);
}

Test(queue, credit)
{
    dp_qclient_t a = {0};
    dp_qworker_t w = {0};
    w.capacity[DP_CLASS_CPU] = 4;
    w.capacity[DP_CLASS_IO] = 0;
    /* chunks of 1, a fixed lookahead of 2 chunks */
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, false, 2), 4);
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, true, 2), 6);
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_IO, 1, true, 2), 0,
                 "no slots, no lookahead");
    /* chunks of 10: one per slot, plus two */
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 10, true, 2), 60);
    for (uint64_t k = 0; k < 8; k++)
        s_add(&a, k, DP_CLASS_CPU);
    for (uint32_t k = 1; k <= 6; k++) {
        cr_assert(dp_queue_next(&s_q, DP_CLASS_CPU, &w));
        cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, true, 2), 6 - k);
    }
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, false, 2), 0);
    /* the worker shrank (draining): no underflow */
    w.capacity[DP_CLASS_CPU] = 1;
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, true, 2), 0);
    w.capacity[DP_CLASS_CPU] = 0;
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, true, 100), 0);
    /* a result frees a slot */
    w.capacity[DP_CLASS_CPU] = 4;
    dp_queue_free_job(&s_q, w.leases.head);
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, true, 2), 1);
    cr_assert_eq(a.running, 5);
}

/* The default lookahead is by time: long jobs (or no measure yet) get one
 * chunk per slot; microsecond jobs get about DP_QUEUE_LOOKAHEAD_US of work
 * per slot, capped. */
Test(queue, credit_by_time)
{
    dp_qworker_t w = {0};
    w.capacity[DP_CLASS_CPU] = 2;
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, true, -1), 4,
                 "no measure yet: one chunk per slot");
    w.avg_us[DP_CLASS_CPU] = 500000; /* half-second jobs */
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, true, -1), 4);
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 3, true, -1), 12);
    w.avg_us[DP_CLASS_CPU] = 100; /* 2000 / 100 = 20 waiting per slot */
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, true, -1), 2 + 40);
    w.avg_us[DP_CLASS_CPU] = 1; /* capped */
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, true, -1),
                 2 + 2 * DP_QUEUE_LOOKAHEAD_MAX_JOBS);
    cr_assert_eq(dp_queue_credit(&w, DP_CLASS_CPU, 1, false, -1), 2,
                 "without lookahead: the slots only");
}

Test(queue, requeue_goes_to_the_head_with_attempts)
{
    dp_qclient_t a = {0}, b = {0};
    s_add(&a, 1, DP_CLASS_CPU);
    s_add(&a, 2, DP_CLASS_CPU);
    s_add(&b, 10, DP_CLASS_CPU);
    dp_qworker_t w1 = {0}, w2 = {0};
    dp_bjob_t *j = dp_queue_next(&s_q, DP_CLASS_CPU, &w1);
    cr_assert_eq(j->id, 1);
    cr_assert_eq(j->attempts, 1);
    cr_assert_eq(a.running, 1);
    cr_assert_eq(w1.leases.n, 1);

    dp_queue_requeue(&s_q, j);
    cr_assert_eq(j->state, DP_JOB_QUEUED);
    cr_assert_null(j->worker);
    cr_assert_eq(j->attempts, 1, "attempts preserved");
    cr_assert_eq(a.running, 0);
    cr_assert_eq(w1.leases.n, 0);
    cr_assert_eq(w1.inflight[DP_CLASS_CPU], 0);
    cr_assert_eq(a.queue[DP_CLASS_CPU].head, j, "requeued at the head");
    cr_assert_eq(a.queue[DP_CLASS_CPU].n, 2);
    cr_assert_eq(s_q.queued[DP_CLASS_CPU], 3);

    /* b was next this round; then a's requeued job before a's job 2 */
    j = dp_queue_next(&s_q, DP_CLASS_CPU, &w2);
    cr_assert_eq(j->id, 10);
    j = dp_queue_next(&s_q, DP_CLASS_CPU, &w2);
    cr_assert_eq(j->id, 1);
    cr_assert_eq(j->attempts, 2);
    cr_assert_eq(j->worker, &w2);
    j = dp_queue_next(&s_q, DP_CLASS_CPU, &w2);
    cr_assert_eq(j->id, 2);
    cr_assert_eq(j->attempts, 1);
    cr_assert_null(dp_queue_next(&s_q, DP_CLASS_CPU, &w2));

    /* a requeue into an empty ring puts the client back */
    dp_queue_requeue(&s_q, j);
    cr_assert(a.in_ring[DP_CLASS_CPU]);
    cr_assert_eq(dp_queue_next(&s_q, DP_CLASS_CPU, &w1), j);
}

Test(queue, requeue_keeps_lease_list_consistent)
{
    /* take the middle lease out of a worker's list */
    dp_qclient_t a = {0};
    dp_qworker_t w = {0};
    for (uint64_t k = 1; k <= 3; k++)
        s_add(&a, k, DP_CLASS_CPU);
    dp_bjob_t *j1 = dp_queue_next(&s_q, DP_CLASS_CPU, &w);
    dp_bjob_t *j2 = dp_queue_next(&s_q, DP_CLASS_CPU, &w);
    dp_bjob_t *j3 = dp_queue_next(&s_q, DP_CLASS_CPU, &w);
    dp_queue_requeue(&s_q, j2);
    cr_assert_eq(w.leases.n, 2);
    cr_assert_eq(w.leases.head, j1);
    cr_assert_eq(w.leases.tail, j3);
    cr_assert_eq(j1->next, j3);
    cr_assert_eq(j3->prev, j1);
    dp_queue_free_job(&s_q, j3);
    dp_queue_free_job(&s_q, j1);
    cr_assert_eq(w.leases.n, 0);
    cr_assert_null(w.leases.head);
    cr_assert_null(w.leases.tail);
    cr_assert_eq(a.running, 0);
    cr_assert_eq(dp_queue_next(&s_q, DP_CLASS_CPU, &w), j2);
}

Test(queue, orphan_then_free)
{
    dp_qclient_t a = {0};
    dp_qworker_t w = {0};
    s_add(&a, 1, DP_CLASS_IO);
    s_add(&a, 2, DP_CLASS_IO);
    dp_bjob_t *j = dp_queue_next(&s_q, DP_CLASS_IO, &w);
    /* the client goes away: its queued job is dropped, the leased one is
     * orphaned and waits for the worker */
    dp_queue_free_job(&s_q, dp_queue_find(&s_q, 2));
    dp_queue_orphan(&s_q, j);
    dp_queue_client_remove(&s_q, &a);
    cr_assert_eq(j->state, DP_JOB_ORPHAN);
    cr_assert_null(j->client);
    cr_assert_eq(j->worker, &w);
    cr_assert_eq(a.running, 0);
    cr_assert_eq(w.leases.n, 1);
    cr_assert_eq(dp_queue_find(&s_q, 1), j);
    cr_assert_null(s_q.ring[DP_CLASS_IO]);
    cr_assert_null(dp_queue_next(&s_q, DP_CLASS_IO, &w));
    dp_queue_free_job(&s_q, j);
    cr_assert_eq(w.leases.n, 0);
    cr_assert_eq(w.inflight[DP_CLASS_IO], 0);
    cr_assert_null(dp_queue_find(&s_q, 1));
    cr_assert_eq(s_q.njobs, 0);
    cr_assert_eq(s_buf->refs, 1);
}

/* A kept job (its result waits for the client's ACK) leaves its queue or
 * lease and its client's job counts, stays findable, and holds its frame
 * until freed; release frees a kept result too. */
Test(queue, keep_from_queued_and_leased)
{
    dp_qclient_t a = {0};
    dp_qworker_t w = {0};
    s_add(&a, 1, DP_CLASS_CPU);
    s_add(&a, 2, DP_CLASS_CPU);
    s_add(&a, 3, DP_CLASS_CPU);
    dp_bjob_t *leased = dp_queue_next(&s_q, DP_CLASS_CPU, &w);
    cr_assert_eq(leased->id, 1);
    cr_assert_eq(dp_queue_arm(&s_q, leased, 100), 0);
    uint8_t *r1 = malloc(10), *r2 = malloc(20), *r3 = malloc(5);
    cr_assert(r1 && r2 && r3);
    dp_queue_keep(&s_q, leased, r1, 10);
    cr_assert_eq(leased->state, DP_JOB_KEPT);
    cr_assert_eq(w.leases.n, 0);
    cr_assert_eq(w.inflight[DP_CLASS_CPU], 0);
    cr_assert_eq(a.running, 0);
    cr_assert_null(dp_queue_earliest(&s_q), "out of the lease heap");
    dp_bjob_t *queued = dp_queue_find(&s_q, 2);
    dp_queue_keep(&s_q, queued, r2, 20); /* cancelled while queued */
    cr_assert_eq(s_q.queued[DP_CLASS_CPU], 1);
    cr_assert_eq(a.njobs, 1, "only job 3 counts in the share");
    cr_assert_eq(a.kept.n, 2);
    cr_assert_eq(a.kept_bytes, 2 * DP_QUEUE_JOB_COST(1) + 10 + 20);
    cr_assert_eq(dp_queue_find(&s_q, 1), leased);
    cr_assert_eq(s_q.njobs, 3);
    dp_bjob_t *next = dp_queue_next(&s_q, DP_CLASS_CPU, &w);
    cr_assert_eq(next->id, 3, "kept jobs are never handed out");
    dp_queue_free_job(&s_q, leased); /* the ACK */
    cr_assert_eq(a.kept.n, 1);
    cr_assert_eq(a.kept_bytes, DP_QUEUE_JOB_COST(1) + 20);
    cr_assert_null(dp_queue_find(&s_q, 1));
    dp_queue_keep(&s_q, next, r3, 5);
    cr_assert_eq(a.njobs, 0);
    cr_assert_eq(a.running, 0);
    /* job 2 and 3 stay kept: dp_queue_release (teardown) frees them */
}

Test(queue, client_remove_with_queued_jobs)
{
    dp_qclient_t a = {0}, b = {0};
    s_add(&a, 1, DP_CLASS_CPU);
    s_add(&b, 2, DP_CLASS_CPU);
    s_add(&a, 3, DP_CLASS_IO);
    dp_queue_client_remove(&s_q, &a);
    cr_assert_not(a.in_ring[DP_CLASS_CPU]);
    cr_assert_not(a.in_ring[DP_CLASS_IO]);
    dp_qworker_t w = {0};
    cr_assert_eq(dp_queue_next(&s_q, DP_CLASS_CPU, &w)->id, 2);
    cr_assert_null(dp_queue_next(&s_q, DP_CLASS_CPU, &w));
    cr_assert_null(dp_queue_next(&s_q, DP_CLASS_IO, &w));
    dp_queue_client_remove(&s_q, &a); /* twice is harmless */
}

Test(queue, index_grows_past_1024_buckets, .timeout = 20)
{
    dp_qclient_t a = {0}, b = {0};
    dp_qworker_t w = {0};
    size_t start = s_q.nbuckets;
    cr_assert_eq(start, 1024);
    for (uint64_t k = 0; k < T_MANY; k++) {
        dp_qclient_t *c = k & 1 ? &b : &a;
        uint64_t id = (k & 1 ? 0x200000000ULL : 0x100000000ULL) | k;
        dp_bjob_t *j;
        cr_assert_eq(
            dp_queue_add(&s_q, c, id, DP_CLASS_CPU, 0, s_buf, s_raw(id), 1, &j),
            0);
    }
    cr_assert_eq(s_q.njobs, T_MANY);
    cr_assert_gt(s_q.nbuckets, 1024);
    cr_assert_eq(s_q.nbuckets & (s_q.nbuckets - 1), 0, "power of two");
    cr_assert_geq(s_q.nbuckets, T_MANY / 2, "load factor");
    cr_assert_eq(s_buf->refs, T_MANY + 1);
    for (uint64_t k = 0; k < T_MANY; k++) {
        uint64_t id = (k & 1 ? 0x200000000ULL : 0x100000000ULL) | k;
        dp_bjob_t *j = dp_queue_find(&s_q, id);
        cr_assert(j && j->id == id, "lost %llu", (unsigned long long)id);
    }
    cr_assert_null(dp_queue_find(&s_q, 0x300000000ULL));
    /* free every third, lease some, leave the rest to release */
    for (uint64_t k = 0; k < T_MANY; k += 3) {
        uint64_t id = (k & 1 ? 0x200000000ULL : 0x100000000ULL) | k;
        dp_queue_free_job(&s_q, dp_queue_find(&s_q, id));
    }
    for (int k = 0; k < 1000; k++)
        cr_assert(dp_queue_next(&s_q, DP_CLASS_CPU, &w));
    for (uint64_t k = 0; k < T_MANY; k++) {
        uint64_t id = (k & 1 ? 0x200000000ULL : 0x100000000ULL) | k;
        dp_bjob_t *j = dp_queue_find(&s_q, id);
        cr_assert_eq(j != NULL, k % 3 != 0);
    }
    cr_assert_eq(s_q.njobs, T_MANY - (T_MANY + 2) / 3);
}

Test(queue, release_frees_everything)
{
    /* jobs in every state, several frames; ASAN reports any leak */
    dp_bbuf_t *other = s_bbuf(16);
    dp_qclient_t a = {0}, b = {0};
    dp_qworker_t w = {0};
    for (uint64_t k = 0; k < 50; k++) {
        dp_bbuf_t *buf = k & 1 ? other : s_buf;
        cr_assert_eq(dp_queue_add(&s_q, k % 3 ? &a : &b, k,
                                  k % 5 ? DP_CLASS_CPU : DP_CLASS_IO, 1, buf,
                                  zmq_msg_data(&buf->msg), 1, NULL),
                     0);
    }
    for (int k = 0; k < 10; k++)
        dp_queue_next(&s_q, DP_CLASS_CPU, &w);
    dp_queue_orphan(&s_q, w.leases.head);
    cr_assert_eq(other->refs, 26);
    dp_queue_release(&s_q);
    cr_assert_eq(other->refs, 1);
    cr_assert_eq(s_buf->refs, 1);
    cr_assert_null(s_q.buckets);
    dp_queue_release(&s_q); /* twice is harmless */
    dp_bbuf_unref(other);
    cr_assert_eq(dp_queue_init(&s_q), 0); /* for the fixture's release */
}

Test(bbuf, refs_and_last_unref_frees)
{
    dp_bbuf_t *b = s_bbuf(1000);
    cr_assert_eq(zmq_msg_size(&b->msg), 1000);
    dp_queue_t q;
    cr_assert_eq(dp_queue_init(&q), 0);
    dp_qclient_t c = {0};
    const uint8_t *data = zmq_msg_data(&b->msg);
    dp_bjob_t *j1, *j2;
    cr_assert_eq(dp_queue_add(&q, &c, 1, DP_CLASS_CPU, 0, b, data, 10, &j1), 0);
    cr_assert_eq(
        dp_queue_add(&q, &c, 2, DP_CLASS_CPU, 0, b, data + 10, 990, &j2), 0);
    cr_assert_eq(b->refs, 3);
    /* the broker drops its own reference after queueing: jobs keep it */
    dp_bbuf_unref(b);
    cr_assert_eq(b->refs, 2);
    cr_assert_eq(j2->raw[989], 0xab);
    dp_queue_free_job(&q, j1);
    cr_assert_eq(b->refs, 1);
    cr_assert_eq(j2->raw[0], 0xab); /* still readable (ASAN) */
    dp_queue_free_job(&q, j2);      /* last reference: frame freed */
    dp_bbuf_unref(NULL);
    dp_queue_release(&q);
}
