/*
 * dp_dispatch.c - dispatch and leases: handing jobs to workers with
 * credit, the lease deadline of each dispatched job (a heap ordered by
 * deadline), and every way a leased job ends other than a result: lost,
 * handed back, expired.
 */
#include "dp_broker_int.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_clock.h"
#include "dp_log.h"
#include "dp_msg.h"
#include "dp_queue.h"
#include "dp_rlimit.h"
#include "dp_zsock.h"

/* dp_bk_client_raw: queue an encoded result for client p. */
void dp_bk_client_raw(dp_peer_t *p, const void *raw, size_t len)
{
    dp_msg_batch_add(&p->out, &p->nout, DP_CMD_RESULTS, raw, len);
    if (p->out.err)
        dp_error("out of memory queueing a result for %s", p->name);
}

/* dp_bk_client_error: queue a result the broker makes itself. */
void dp_bk_client_error(dp_broker_t *b, dp_peer_t *p, uint64_t id, int code,
                        const char *msg, uint32_t attempts)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_put_result(&w, id, (uint32_t)code, NULL, msg, "", 0, 0, attempts);
    if (!w.err)
        dp_bk_client_raw(p, w.buf.data, w.buf.len);
    dp_wr_release(&w);
    b->st.failed++;
}

void dp_bk_job_result(dp_broker_t *b, dp_bjob_t *j, const void *raw, size_t len)
{
    dp_peer_t *p = dp_bk_peer_of_client(j->client);
    if (!dp_bk_acks(p)) {
        dp_bk_client_raw(p, raw, len);
        dp_bk_free_job(b, j);
        return;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) { /* cannot keep it: send it once, as for any client */
        dp_error("out of memory keeping a result for %s", p->name);
        dp_bk_client_raw(p, raw, len);
        dp_bk_free_job(b, j);
        return;
    }
    memcpy(copy, raw, len);
    dp_bk_journal_result(b, j, raw, len);
    dp_queue_keep(&b->q, j, copy, len);
    if (!p->away)
        dp_bk_client_raw(p, raw, len);
    if (dp_bk_detached(p))
        dp_bk_batch_result(b, p, raw, len);
    if (p->qc.kept_bytes > dp_bk_held_bound(b, p) && !p->qc.paused)
        dp_bk_pace(b, p, false);
}

void dp_bk_job_error(dp_broker_t *b, dp_bjob_t *j, int code, const char *msg,
                     uint32_t attempts)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_put_result(&w, j->id, (uint32_t)code, NULL, msg, "", 0, 0, attempts);
    if (!w.err) {
        dp_bk_job_result(b, j, w.buf.data, w.buf.len);
    } else {
        dp_error("out of memory making a result for job %llx",
                 (unsigned long long)j->id);
        dp_bk_free_job(b, j);
    }
    dp_wr_release(&w);
    b->st.failed++;
}

/* ---- job outcomes ---- */

void dp_bk_send_cancel(dp_broker_t *b, dp_peer_t *wp, const uint64_t *ids,
                       size_t n)
{
    dp_wr_reset(&b->w);
    dp_msg_cancel(&b->w, ids, n);
    dp_bk_send(b, wp, &b->w);
}

/* dp_bk_job_lost: a leased job's process or worker died: requeue it within
 * its retry budget, else give its client a WORKER_LOST result. */
void dp_bk_job_lost(dp_broker_t *b, dp_bjob_t *j, const char *why)
{
    b->st.lost++;
    if (!j->client) {
        dp_bk_free_job(b, j);
        return;
    }
    if ((unsigned)j->attempts <= j->retries) {
        dp_debug("job %llx lost (%s); requeued", (unsigned long long)j->id,
                 why);
        b->st.requeued++;
        dp_queue_requeue(&b->q, j);
        return;
    }
    char msg[DP_BK_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "worker lost after %u attempt%s: %.200s",
             j->attempts, j->attempts == 1 ? "" : "s", why);
    dp_bk_job_error(b, j, DP_ERR_WORKER_LOST, msg, j->attempts);
}

/* dp_bk_handed_back: worker p gave job j back unstarted (REQUEUE). Within
 * the job's REQUEUE budget it is queued again, not counted as an attempt;
 * past it the job fails LIMIT. A worker that still has credit and hands
 * back job after job is dropped (a draining worker has no credit). */
void dp_bk_handed_back(dp_broker_t *b, dp_peer_t *p, dp_bjob_t *j)
{
    b->st.handed_back++;
    bool credit = p->qw.capacity[j->cls] > 0;
    if (!j->client) {
        dp_bk_free_job(b, j);
    } else if (j->handbacks >= b->cfg.max_requeues) {
        char msg[DP_BK_ERRMSG_MAX];
        snprintf(msg, sizeof msg,
                 "handed back unstarted %u times (REQUEUE budget, "
                 "--max-requeues); last by worker %s",
                 (unsigned)j->handbacks + 1, p->name);
        dp_bk_job_error(b, j, DP_ERR_LIMIT, msg, j->attempts);
    } else {
        j->handbacks++;
        j->attempts--; /* it never started */
        dp_queue_requeue(&b->q, j);
    }
    if (credit && ++p->handbacks > DP_WORKER_HANDBACKS_MAX)
        dp_bk_worker_gone(b, p, "hands back every job it is given");
}

/* s_lease_expired: no answer for j within its lease: requeue it within
 * its retry budget or fail it TIMEOUT. Its worker keeps the slot busy
 * (stuck credit) until it answers; one that lets DP_LEASE_EXPIRIES_MAX
 * leases run out in a row is dropped. */
static void s_lease_expired(dp_broker_t *b, dp_bjob_t *j)
{
    dp_peer_t *wp = dp_bk_peer_of_worker(j->worker);
    b->st.expired++;
    wp->qw.stuck[j->cls]++;
    wp->expiries++;
    if (!j->client) {
        dp_bk_free_job(b, j);
    } else if ((unsigned)j->attempts <= j->retries) {
        dp_debug("job %llx: lease on %s ran out; requeued",
                 (unsigned long long)j->id, wp->name);
        b->st.requeued++;
        dp_queue_requeue(&b->q, j);
    } else {
        char msg[DP_BK_ERRMSG_MAX];
        snprintf(msg, sizeof msg,
                 "no answer within the time limit (%u ms) plus grace after "
                 "%u attempt%s (last on worker %s)",
                 j->limit_ms, j->attempts, j->attempts == 1 ? "" : "s",
                 wp->name);
        dp_bk_job_error(b, j, DP_ERR_TIMEOUT, msg, j->attempts);
    }
    if (wp->expiries >= DP_LEASE_EXPIRIES_MAX)
        dp_bk_worker_gone(b, wp, "let its leases run out");
}

void dp_bk_expire(dp_broker_t *b, uint64_t now)
{
    dp_bjob_t *j = dp_queue_earliest(&b->q);
    while (j && j->deadline_ms <= now) {
        s_lease_expired(b, j);
        j = dp_queue_earliest(&b->q);
    }
}

/* ---- dispatch ---- */

/* s_arm: the lease deadline of job j, the k-th of its chunk, leased to w
 * which already held `ahead` jobs of its class. A worker runs the jobs it
 * holds `capacity` at a time and a chunk's jobs one after another, so j
 * may wait for ahead / capacity rounds and k jobs before it starts: each
 * round counts as one time limit. Then the grace. */
static void s_arm(dp_broker_t *b, dp_peer_t *w, dp_bjob_t *j, uint32_t ahead,
                  size_t k, uint64_t now)
{
    uint64_t slots = w->qw.capacity[j->cls] ? w->qw.capacity[j->cls] : 1;
    uint64_t rounds = ahead / slots + k + 1;
    uint64_t deadline =
        now + rounds * j->limit_ms + (uint64_t)b->cfg.lease_grace_ms;
    if (dp_queue_arm(&b->q, j, deadline))
        dp_warn("out of memory: job %llx has no lease deadline",
                (unsigned long long)j->id);
}

/* s_dispatch_to: send worker w chunks of class cls while it has credit
 * (dp_queue_credit). Consecutive whole chunks of one size travel in one
 * JOBS message; each chunk is run by one child in turn. The clock is read
 * once per call, not per job: leases are milliseconds apart at best. */
static void s_dispatch_to(dp_broker_t *b, dp_peer_t *w, dp_class_t cls,
                          bool lookahead)
{
    dp_bjob_t *jobs[DP_CHUNK_MAX];
    const dp_bjob_t *next;
    size_t msg_chunk = 0, at = 0;
    uint32_t njobs = 0;
    uint64_t now = dp_now_ms();
    while ((next = dp_queue_peek(&b->q, cls)) != NULL) {
        size_t chunk = cls == DP_CLASS_IO ? 1 : next->chunk;
        if (dp_queue_credit(&w->qw, cls, chunk, lookahead, b->cfg.lookahead) ==
            0)
            break;
        if (njobs && (chunk != msg_chunk || njobs >= DP_JOBS_PER_MSG)) {
            dp_msg_jobs_close(&b->w, at, njobs); /* another size: send */
            dp_bk_send(b, w, &b->w);
            njobs = 0;
            if (w->dead)
                return; /* the send failed: its leases went back */
        }
        if (njobs == 0) {
            dp_wr_reset(&b->w);
            at = dp_msg_jobs_begin(&b->w, (uint32_t)chunk);
            msg_chunk = chunk;
        }
        uint32_t ahead = w->qw.inflight[cls] + w->qw.stuck[cls];
        size_t n = dp_queue_take(&b->q, cls, &w->qw, chunk, jobs);
        for (size_t k = 0; k < n; k++) {
            s_arm(b, w, jobs[k], ahead, k, now);
            dp_bk_journal_dispatch(b, jobs[k]);
            dp_msg_jobs_add(&b->w, jobs[k]->attempts, jobs[k]->raw,
                            jobs[k]->raw_len);
        }
        njobs += (uint32_t)n;
        if (n < chunk) { /* a short chunk must end its message */
            dp_msg_jobs_close(&b->w, at, njobs);
            dp_bk_send(b, w, &b->w);
            njobs = 0;
        }
        if (w->dead)
            return; /* the send failed: its leases went back already */
    }
    if (njobs) {
        dp_msg_jobs_close(&b->w, at, njobs);
        dp_bk_send(b, w, &b->w);
    }
}

/* dp_bk_dispatch: idle slots everywhere first, then lookahead, starting at a
 * rotating worker so a small batch spreads over the pool. */
void dp_bk_dispatch(dp_broker_t *b)
{
    size_t nworkers = 0;
    for (dp_peer_t *p = b->peers; p; p = p->next)
        nworkers += p->kind == DP_PEER_WORKER && !p->dead;
    if (nworkers == 0)
        return;
    b->rr_start++;
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        for (int pass = 0; pass < 2 && b->q.queued[cls]; pass++) {
            size_t k = 0, start = b->rr_start % nworkers;
            for (int round = 0; round < 2; round++) {
                k = 0;
                for (dp_peer_t *p = b->peers; p; p = p->next) {
                    if (p->kind != DP_PEER_WORKER || p->dead)
                        continue;
                    bool mine = round == 0 ? k >= start : k < start;
                    k++;
                    if (mine)
                        s_dispatch_to(b, p, (dp_class_t)cls, pass == 1);
                }
            }
        }
    }
}
