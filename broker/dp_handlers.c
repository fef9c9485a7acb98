/*
 * dp_handlers.c - the broker's message handlers: one function per command
 * a peer may send. Input from the socket is never trusted: every message
 * goes through dp_msg_open and the typed readers of dp_msg; anything
 * malformed, unknown or out of place is counted, answered with ERROR and
 * dropped.
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
#include "dp_zap.h"
#include "dp_zsock.h"

/* HELLO [name, pid] or [name, pid, session, flags]. A session the broker
 * holds (connected, away, or replayed from the journal) resumes: same
 * peer number, its kept results again (dp_bk_resume). */
static int s_on_hello(dp_broker_t *b, const dp_zmsg_t *m, dp_peer_t *p,
                      dp_rd_t *r)
{
    dp_hello_t h;
    int rc = dp_msg_read_hello(r, &h);
    if (rc)
        return rc;
    if (p && p->kind != DP_PEER_CLIENT)
        return DP_ERR_PROTOCOL;
    dp_peer_t *q = h.has_session ? dp_bk_session_find(b, h.session) : NULL;
    if (q && p && p != q)
        return DP_ERR_PROTOCOL; /* this connection is another session */
    /* on CURVE a session is its key's: another key cannot take it over */
    const char *uid =
        b->zap ? zmq_msg_gets((zmq_msg_t *)&m->body, "User-Id") : NULL;
    if (q && uid && q->owner[0] &&
        strncmp(q->owner, uid, sizeof q->owner - 1) != 0) {
        dp_warn("a HELLO from %s named the session of #%u (%s): refused", uid,
                q->no, q->owner);
        return DP_ERR_INVALID;
    }
    if (q && uid && !q->owner[0]) /* replayed: the first key claims it */
        snprintf(q->owner, sizeof q->owner, "%s", uid);
    if (q) {
        dp_bk_copy_name(q->name, h.name, h.name_len);
        q->pid = (uint32_t)h.pid;
        dp_bk_resume(b, q, m);
        return 0;
    }
    if (p && p->has_session && h.has_session)
        return DP_ERR_PROTOCOL; /* a connection keeps its session */
    if (h.has_session && (h.flags & DP_HELLO_DETACHED)) {
        /* --max-batches, checked before the batch exists (ERROR LIMIT) */
        char lim[DP_BK_ERRMSG_MAX];
        if (dp_bk_batch_limit(b, uid ? uid : "", lim, sizeof lim)) {
            dp_info("a HELLO for a new batch refused: %s", lim);
            return DP_ERR_LIMIT;
        }
        h.flags |= DP_HELLO_ACKS; /* a batch keeps its results */
    }
    if (!p && !(p = dp_bk_peer_new(b, m, DP_PEER_CLIENT)))
        return dp_bk_full(b);
    dp_bk_copy_name(p->name, h.name, h.name_len);
    p->pid = (uint32_t)h.pid;
    if (h.has_session) {
        snprintf(p->owner, sizeof p->owner, "%s", uid ? uid : "");
        p->has_session = true;
        memcpy(p->session, h.session, DP_SESSION_BYTES);
        p->flags = (uint32_t)(h.flags & (DP_HELLO_ACKS | DP_HELLO_DETACHED));
        if (dp_bk_detached(p))
            dp_bk_batch_opened(p);
    }
    dp_info("client %s (pid %u) connected as #%u%s", p->name, p->pid, p->no,
            dp_bk_acks(p) ? " (a session that resumes)" : "");
    dp_bk_welcome(b, p);
    return 0;
}

/* READY [name, pid, cpu_slots, io_slots, [type...]] */
static int s_on_ready(dp_broker_t *b, const dp_zmsg_t *m, dp_peer_t *p,
                      dp_rd_t *r)
{
    dp_ready_t rd;
    int rc = dp_msg_read_ready(r, &rd);
    if (rc)
        return rc;
    uint64_t cpu = rd.cpu_slots, io = rd.io_slots;
    if (cpu > UINT16_MAX || io > UINT16_MAX)
        return DP_ERR_TOO_BIG;
    if (p && p->kind != DP_PEER_WORKER)
        return DP_ERR_PROTOCOL;
    if (!p && !(p = dp_bk_peer_new(b, m, DP_PEER_WORKER)))
        return dp_bk_full(b);
    dp_bk_copy_name(p->name, rd.name, rd.name_len);
    p->pid = (uint32_t)rd.pid;
    p->qw.capacity[DP_CLASS_CPU] = (uint32_t)cpu;
    p->qw.capacity[DP_CLASS_IO] = (uint32_t)io;
    dp_info("worker %s (pid %u) ready: %u cpu, %u io slots", p->name, p->pid,
            (unsigned)cpu, (unsigned)io);
    dp_bk_welcome(b, p);
    return 0;
}

/* CREDIT [cpu_slots, io_slots]: the worker's capacity changed. */
static int s_on_credit(dp_broker_t *b, dp_peer_t *p, dp_rd_t *r)
{
    (void)b;
    uint64_t cpu, io;
    int rc = dp_msg_read_credit(r, &cpu, &io);
    if (rc)
        return rc;
    if (cpu > UINT16_MAX || io > UINT16_MAX)
        return DP_ERR_TOO_BIG;
    p->qw.capacity[DP_CLASS_CPU] = (uint32_t)cpu;
    p->qw.capacity[DP_CLASS_IO] = (uint32_t)io;
    return 0;
}

/* s_bad_job: job j of p's SUBMIT gets error `bad` as its result at once.
 * A session that acknowledges keeps it like any other result (a record
 * in the queue, KEPT), so it survives a lost connection and a SUBMIT
 * sent again finds the id held. */
static void s_bad_job(dp_broker_t *b, dp_peer_t *p, dp_bbuf_t *buf,
                      const dp_job_t *j, int bad, const char *why)
{
    dp_bjob_t *bj = NULL;
    if (dp_bk_acks(p) && dp_queue_add(&b->q, &p->qc, j->id, DP_CLASS_CPU, 0,
                                      buf, j->raw.ptr, j->raw.len, &bj) == 0) {
        dp_bk_journal_job(b, p, bj);
        dp_bk_job_error(b, bj, bad, why, 0);
        return;
    }
    dp_bk_client_error(b, p, j->id, bad, why, 0);
}

/* s_submit_scan: check the batch's shape and ids before taking any of it:
 * a malformed batch is refused whole, so nothing is half-queued. */
static int s_submit_scan(dp_broker_t *b, dp_peer_t *p, dp_rd_t *r,
                         uint32_t njobs, uint64_t seq, char *msg, size_t len)
{
    bool keep = njobs <= DP_BK_SCAN_JOBS; /* for s_on_submit's pass */
    for (uint32_t k = 0; k < njobs; k++) {
        dp_job_t tmp, *jp = keep ? &b->scan[k] : &tmp;
        int rc = dp_msg_read_job(r, jp);
        const dp_job_t j = *jp;
        if (rc) {
            snprintf(msg, len, "job %u of the batch is malformed", k);
            return rc;
        }
        if ((j.id >> 32) != p->no) {
            snprintf(msg, len,
                     "job id %llx is outside this client's "
                     "range (client #%u)",
                     (unsigned long long)j.id, p->no);
            return DP_ERR_INVALID;
        }
        if (j.id != seq + k) {
            snprintf(msg, len,
                     "job %u of the batch has id %llx, not %llx: ids run "
                     "from seq one by one (a duplicate or a gap)",
                     k, (unsigned long long)j.id,
                     (unsigned long long)(seq + k));
            return DP_ERR_INVALID;
        }
        const dp_bjob_t *old = dp_queue_find(&b->q, j.id);
        if (old && !(dp_bk_acks(p) && old->client == &p->qc)) {
            snprintf(msg, len, "job id %llx is already in use",
                     (unsigned long long)j.id);
            return DP_ERR_INVALID;
        } /* a session's own id: a SUBMIT sent again (s_on_submit) */
        if (keep)
            b->scan_in_use[k] = old != NULL;
    }
    return 0;
}

/* s_refuse: ERROR [code, message, seq, count] for a refused SUBMIT, so
 * the client can fail the jobs it sent in it (ids seq .. seq+count-1). */
static void s_refuse(dp_broker_t *b, dp_peer_t *p, int code, const char *msg,
                     uint64_t seq, uint32_t count)
{
    b->st.bad_msgs++;
    dp_debug("refused a SUBMIT from %s: %s", p->name, msg);
    dp_wr_reset(&b->w);
    dp_msg_refusal(&b->w, code, msg[0] ? msg : dp_strerror(code), seq, count);
    dp_bk_send(b, p, &b->w);
}

/* s_accepted: ACCEPTED now, or with a journal after the turn's commit
 * (dp_bk_journal_turn); 0. */
static int s_accepted(dp_broker_t *b, dp_peer_t *p, uint64_t seq,
                      uint32_t njobs, uint32_t accepted)
{
    if (b->journal) {
        if (dp_bk_journal_pend(b, p, seq, njobs, accepted) == 0)
            return 0;
        dp_bk_journal_drop(b, p, seq, njobs);
        s_refuse(b, p, DP_ERR_NOMEM, "out of memory", seq, njobs);
        return 0;
    }
    dp_wr_reset(&b->w);
    dp_msg_accepted(&b->w, seq, accepted);
    dp_bk_send(b, p, &b->w);
    return 0;
}

#define S_WAIT (-1) /* s_on_submit: a held SUBMIT still has no room */

/* s_fits: whether a SUBMIT of njobs in a frame of `frame` bytes fits in
 * client p's share and the broker's: 0, S_WAIT (not now: flow control),
 * or DP_ERR_LIMIT (never: it is bigger than a whole share). */
static int s_fits(const dp_broker_t *b, const dp_peer_t *p, uint32_t njobs,
                  size_t frame, char *msg, size_t len)
{
    const dp_broker_cfg_t *c = &b->cfg;
    size_t cost = frame + (size_t)njobs * sizeof(dp_bjob_t);
    if (njobs > (size_t)c->max_client_jobs ||
        cost > (size_t)c->max_client_bytes) {
        snprintf(msg, len,
                 "a SUBMIT of %u jobs, %zu bytes is more than a client's "
                 "share (--max-client-jobs, --max-client-bytes)",
                 njobs, cost);
        return DP_ERR_LIMIT;
    }
    if (p->qc.njobs + njobs > (size_t)c->max_client_jobs ||
        p->qc.bytes + cost > (size_t)c->max_client_bytes ||
        b->q.njobs + njobs > (size_t)c->max_jobs ||
        b->q.bytes + cost > (size_t)c->max_bytes)
        return S_WAIT;
    return 0;
}

/* s_wait_or_refuse: a SUBMIT that does not fit now is held (taken later,
 * in order, by dp_bk_release_held; ACCEPTED then) while the client's held
 * bytes stay under --max-client-held; beyond, it is refused LIMIT. */
static int s_wait_or_refuse(dp_broker_t *b, dp_peer_t *p, dp_bbuf_t *buf,
                            uint32_t njobs, char *msg, size_t len)
{
    size_t size = zmq_msg_size(&buf->msg);
    if (p->held_bytes + size <= (size_t)b->cfg.max_client_held &&
        b->held_bytes + size <= DP_MAX_HELD_BYTES) {
        buf->njobs = njobs;
        dp_bk_hold(b, p, buf);
        return 0;
    }
    snprintf(msg, len,
             "client over its share (--max-client-jobs, --max-client-bytes) "
             "and its held SUBMITs (--max-client-held): read results before "
             "sending more");
    return DP_ERR_LIMIT;
}

/* SUBMIT [seq, [job...], chunksize]: buf holds the frame (moved out of the
 * socket message so the jobs can point into it). A batch that cannot be
 * taken whole is refused whole (s_refuse); one that does not fit the
 * client's share now waits (s_fits). held: buf is the client's first held
 * SUBMIT; S_WAIT if it must wait on. */
static int s_on_submit(dp_broker_t *b, dp_peer_t *p, dp_bbuf_t *buf, bool held,
                       char *msg, size_t len)
{
    int cmd;
    dp_rd_t r;
    uint32_t njobs = 0;
    uint64_t seq = 0, chunk = 1;
    int rc = dp_msg_open(zmq_msg_data(&buf->msg), zmq_msg_size(&buf->msg),
                         &b->cfg.limits, &cmd, &r);
    if (!rc)
        rc = dp_msg_peek_submit(&r, &seq, &njobs);
    if (!rc && njobs > DP_SUBMIT_MAX_JOBS) {
        rc = DP_ERR_TOO_BIG;
        snprintf(msg, len, "%u jobs in one SUBMIT; at most %u", njobs,
                 DP_SUBMIT_MAX_JOBS);
    }
    const char *jmsg = NULL; /* never accept what cannot be */
    if (!rc && dp_bk_journal_error(b, &jmsg)) { /* stored */
        rc = DP_ERR_IO;
        snprintf(msg, len, "journal: %s; the broker accepts no jobs",
                 jmsg ? jmsg : "failed");
    }
    if (!rc && !held && dp_bk_detached(p)) /* it could never fit */
        rc = dp_bk_batch_fits(b, p, njobs, msg, len);
    /* flow control before walking the jobs: a flood is held or refused
     * at the cost of reading its head */
    if (!rc) {
        int fit = !held && p->held
                      ? S_WAIT /* keep their order */
                      : s_fits(b, p, njobs, zmq_msg_size(&buf->msg), msg, len);
        if (fit == S_WAIT && held)
            return S_WAIT;
        if (fit == S_WAIT) {
            rc = s_wait_or_refuse(b, p, buf, njobs, msg, len);
            if (!rc)
                return 0;
        } else {
            rc = fit;
        }
    }
    if (!rc && njobs <= DP_BK_SCAN_JOBS) { /* one pass: jobs, chunksize */
        rc = dp_msg_read_submit_jobs(&r, &seq, &njobs);
        if (!rc && njobs > DP_BK_SCAN_JOBS)
            rc = DP_ERR_PROTOCOL; /* peek and read disagree: malformed */
        if (!rc)
            rc = s_submit_scan(b, p, &r, njobs, seq, msg, len);
        if (!rc)
            rc = dp_msg_read_submit_end(&r, &chunk);
    } else if (!rc) { /* the shape first, then the jobs read twice */
        rc = dp_msg_read_submit(&r, &seq, &njobs, &chunk, &r);
        dp_rd_t jobs = r;
        if (!rc)
            rc = s_submit_scan(b, p, &jobs, njobs, seq, msg, len);
    }
    if (rc) {
        s_refuse(b, p, rc, msg, seq, njobs);
        return 0;
    }
    chunk = chunk < 1 ? 1 : chunk > DP_CHUNK_MAX ? DP_CHUNK_MAX : chunk;
    uint32_t accepted = 0;
    bool kept = njobs <= DP_BK_SCAN_JOBS; /* decoded by the scan */
    for (uint32_t k = 0; k < njobs; k++) {
        dp_job_t j;
        const dp_jobtype_t *type;
        if (kept)
            j = b->scan[k];
        else
            dp_msg_read_job(&r, &j); /* checked by the scan */
        if (kept ? b->scan_in_use[k]
                 : dp_queue_find(&b->q, j.id) != NULL) { /* sent again */
            accepted++; /* after a resume: held already, not twice */
            continue;
        }
        b->st.submitted++;
        char why[DP_BK_ERRMSG_MAX];
        uint32_t limit;
        int bad = dp_jobtab_check(j.type, j.type_len, j.nargs, j.timeout_ms,
                                  &type, &limit, why, sizeof why);
        if (!bad && dp_bk_batch_over(b, p)) { /* one result each still */
            bad = DP_ERR_LIMIT;
            snprintf(why, sizeof why, "%s", DP_BATCH_FULL_MSG);
        }
        if (bad) {
            s_bad_job(b, p, buf, &j, bad, why);
            continue;
        }
        uint8_t retries =
            (uint8_t)(j.retries > DP_RETRIES_MAX ? DP_RETRIES_MAX : j.retries);
        dp_bjob_t *bj;
        rc = dp_queue_add(&b->q, &p->qc, j.id, type->cls, retries, buf,
                          j.raw.ptr, j.raw.len, &bj);
        if (!rc) {
            bj->chunk = (uint16_t)chunk;
            bj->limit_ms = limit;
            dp_bk_journal_job(b, p, bj);
        }
        if (rc) {
            dp_bk_client_error(b, p, j.id, rc, "could not queue the job", 0);
            continue;
        }
        accepted++;
    }
    return s_accepted(b, p, seq, njobs, accepted);
}

/* dp_bk_release_held: take held SUBMITs, oldest first, while they fit. */
void dp_bk_release_held(dp_broker_t *b)
{
    char msg[DP_BK_ERRMSG_MAX];
    for (dp_peer_t *p = b->peers; p; p = p->next) {
        while (!p->dead && p->held) {
            msg[0] = '\0';
            size_t size = zmq_msg_size(&p->held->msg);
            if (s_fits(b, p, p->held->njobs, size, msg, sizeof msg) == S_WAIT)
                break; /* cheap: no parse while it cannot fit */
            if (s_on_submit(b, p, p->held, true, msg, sizeof msg) == S_WAIT)
                break;
            /* a failed send in s_on_submit (ACCEPTED, or a refusal) drops
             * the client, which empties its held list: nothing to take */
            if (p->dead || !p->held)
                break;
            dp_bbuf_unref(dp_bk_unhold(b, p));
        }
    }
}

/* s_cancel_job: cancel one of client p's jobs. */
static void s_cancel_job(dp_broker_t *b, dp_peer_t *p, dp_bjob_t *j)
{
    (void)p;
    if (j->state == DP_JOB_QUEUED) {
        b->st.cancelled++;
        dp_bk_job_error(b, j, DP_ERR_CANCELLED, "cancelled", 0);
    } else if (j->state == DP_JOB_LEASED) {
        /* the worker answers with a CANCELLED result (or the real one if
         * it finished first); either is forwarded */
        dp_bk_send_cancel(b, dp_bk_peer_of_worker(j->worker), &j->id, 1);
    }
}

/* CANCEL [id...]; [] = every job of this client */
static int s_on_cancel(dp_broker_t *b, dp_peer_t *p, dp_rd_t *r)
{
    uint32_t n;
    int rc = dp_msg_read_cancel(r, &n);
    if (rc)
        return rc;
    if (n == 0) {
        for (int cls = 0; cls < DP_CLASS_COUNT; cls++)
            while (p->qc.queue[cls].head)
                s_cancel_job(b, p, p->qc.queue[cls].head);
        dp_bk_cancel_leases(b, &p->qc, false);
        return 0;
    }
    for (uint32_t k = 0; k < n; k++) {
        uint64_t id;
        rc = dp_msg_read_cancel_id(r, &id);
        if (rc)
            return rc;
        dp_bjob_t *j = dp_queue_find(&b->q, id);
        if (j && j->client == &p->qc)
            s_cancel_job(b, p, j);
    }
    return 0;
}

/* ACK [id...]: client p has these results; the kept ones are freed (and
 * journaled TAKEN). Ids it does not hold as kept (unknown, acked before,
 * not answered yet, another client's) are ignored: an ACK can only free
 * what is the sender's and answered. */
static int s_on_ack(dp_broker_t *b, dp_peer_t *p, dp_rd_t *r)
{
    uint32_t n;
    int rc = dp_msg_read_ack(r, &n);
    for (uint32_t k = 0; !rc && k < n; k++) {
        uint64_t id;
        rc = dp_msg_read_cancel_id(r, &id);
        dp_bjob_t *j = rc ? NULL : dp_queue_find(&b->q, id);
        if (j && j->state == DP_JOB_KEPT && j->client == &p->qc)
            dp_bk_free_job(b, j);
    }
    if (p->qc.paused)
        dp_bk_pace(b, p, p->nout > 0);
    return rc;
}

/* s_on_result: one result from worker p. */
static void s_on_result(dp_broker_t *b, dp_peer_t *p, const dp_res_t *res)
{
    dp_bjob_t *j = dp_queue_find(&b->q, res->id);
    if (!j || j->worker != &p->qw) {
        /* from before a broker restart, an id never given, or a late
         * answer to an expired lease, which gives back the credit */
        b->st.stale_results++;
        for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
            if (p->qw.stuck[cls]) {
                p->qw.stuck[cls]--;
                break;
            }
        }
        return;
    }
    if (res->code == DP_ERR_LOST) {
        char why[DP_BK_ERRMSG_MAX];
        const char *s = "child died";
        size_t len = strlen(s);
        dp_rd_t r;
        dp_rd_init(&r, res->value.ptr, res->value.len, &b->cfg.limits);
        dp_rd_str(&r, &s, &len); /* checked by dp_msg_read_result */
        snprintf(why, sizeof why, "%.*s", (int)len, s);
        dp_bk_job_lost(b, j, why);
        return;
    }
    if (res->code == DP_ERR_REQUEUE) {
        dp_bk_handed_back(b, p, j);
        return;
    }
    p->expiries = 0;
    p->handbacks = 0;
    p->done++;
    double us = (double)res->elapsed_us, *avg = &p->qw.avg_us[j->cls];
    *avg = *avg > 0 ? *avg * (1 - DP_AVG_WEIGHT) + us * DP_AVG_WEIGHT : us;
    if (!j->client) {
        dp_bk_free_job(b, j);
        return;
    }
    /* on CURVE the worker is who its key says it is */
    const dp_wr_t *rw = dp_zap_rename(&b->w, res, b->key_name);
    if (res->code)
        b->st.failed++;
    else
        b->st.done++;
    dp_bk_job_result(b, j, rw ? (const void *)rw->buf.data : res->raw.ptr,
                     rw ? rw->buf.len : res->raw.len);
}

/* RESULTS [result...]: each well-formed result counts, up to the first
 * malformed one (then ERROR). */
static int s_on_results(dp_broker_t *b, dp_peer_t *p, dp_rd_t *r)
{
    uint32_t n;
    int rc = dp_msg_read_results(r, &n);
    for (uint32_t k = 0; !rc && k < n; k++) {
        dp_res_t res;
        if (!(rc = dp_msg_read_result(r, &res)))
            s_on_result(b, p, &res);
    }
    return rc ? rc : dp_msg_end(r);
}

/* s_worker_list: one row per live worker (caller frees), or
 * NULL when there is none or no memory (the reply then lists none; the
 * `workers` count still tells how many). Bounded by --max-peers. */
static dp_stat_worker_t *s_worker_list(const dp_broker_t *b, size_t workers)
{
    dp_stat_worker_t *list = workers ? calloc(workers, sizeof *list) : NULL;
    if (!list)
        return NULL;
    uint64_t now = dp_now_ms();
    size_t k = 0;
    for (const dp_peer_t *x = b->peers; x && k < workers; x = x->next) {
        if (x->dead || x->kind != DP_PEER_WORKER)
            continue;
        list[k++] = (dp_stat_worker_t){
            .name = x->name,
            .pid = x->pid,
            .cpu_slots = x->qw.capacity[DP_CLASS_CPU],
            .io_slots = x->qw.capacity[DP_CLASS_IO],
            .running = x->qw.leases.n,
            .done = x->done,
            .last_seen_ms = now > x->last_seen_ms ? now - x->last_seen_ms : 0,
        };
    }
    return list;
}

static void s_on_status(dp_broker_t *b, dp_peer_t *p)
{
    size_t workers = 0, clients = 0, running = 0, sessions = 0, away = 0,
           kept = 0;
    for (dp_peer_t *x = b->peers; x; x = x->next) {
        if (x->dead)
            continue;
        if (x->kind == DP_PEER_WORKER) {
            workers++;
            running += x->qw.leases.n;
        } else {
            clients++;
            sessions += dp_bk_acks(x);
            away += x->away;
            kept += x->qc.kept.n;
        }
    }
    dp_bk_jstats_t js;
    dp_bk_journal_stats(b, &js);
    dp_stat_worker_t *list = s_worker_list(b, workers);
    if (workers && !list)
        dp_warn("status: no memory for the list of %zu workers", workers);
    const dp_stat_t rows[] = {
        {"workers", workers},
        {"clients", clients},
        {"cpu_slots", dp_bk_total_slots(b, DP_CLASS_CPU)},
        {"io_slots", dp_bk_total_slots(b, DP_CLASS_IO)},
        {"queued", b->q.queued[0] + b->q.queued[1]},
        {"running", running},
        {"submitted", b->st.submitted},
        {"done", b->st.done},
        {"failed", b->st.failed},
        {"requeued", b->st.requeued},
        {"lost", b->st.lost},
        {"cancelled", b->st.cancelled},
        {"bad_messages", b->st.bad_msgs},
        {"stale_results", b->st.stale_results},
        {"expired", b->st.expired},
        {"handed_back", b->st.handed_back},
        {"refused_peers", b->st.refused_peers},
        {"refused", b->refused},
        {"denied_keys", dp_zap_denied(b->zap)},
        {"insecure", b->cfg.insecure && !b->zap},
        {"sessions", sessions},
        {"sessions_away", away},
        {"kept_results", kept},
        {"journal", b->journal != NULL},
        {"journal_bytes", js.bytes},
        {"journal_commits", js.commits},
        {"journal_fsyncs", js.fsyncs},
        {"journal_compactions", js.compactions},
        {"journal_truncated", js.truncated},
        {"journal_error", dp_bk_journal_error(b, NULL) != 0},
    };
    size_t nrows = sizeof rows / sizeof rows[0];
    dp_wr_reset(&b->w);
    dp_msg_status_reply_workers(&b->w, rows, nrows, list, list ? workers : 0);
    free(list);
    dp_bk_send(b, p, &b->w);
}

/* s_handle_peer: commands from a known peer; 0 or an error to report. */
static int s_handle_peer(dp_broker_t *b, dp_zmsg_t *m, dp_peer_t *p, int cmd,
                         dp_rd_t *r, char *msg, size_t len)
{
    bool client = p->kind == DP_PEER_CLIENT;
    switch (cmd) {
    case DP_CMD_HELLO:
        return s_on_hello(b, m, p, r);
    case DP_CMD_READY:
        return s_on_ready(b, m, p, r);
    case DP_CMD_HEARTBEAT:
        return 0;
    case DP_CMD_BYE:
        if (dp_bk_detached(p)) /* its submitter leaves; the batch stays */
            dp_bk_client_lost(b, p, "detached (BYE)");
        else
            dp_bk_peer_drop(b, p, "said bye");
        return 0;
    case DP_CMD_BATCHES:
    case DP_CMD_ATTACH:
    case DP_CMD_FORGET:
    case DP_CMD_CANCEL_BATCH:
        if (!client)
            break;
        return dp_bk_batch_cmd(b, m, p, cmd, r, msg, len);
    case DP_CMD_SUBMIT:
        if (!client)
            break;
        dp_bbuf_t *buf = calloc(1, sizeof *buf);
        if (!buf)
            return DP_ERR_NOMEM;
        zmq_msg_init(&buf->msg);
        zmq_msg_move(&buf->msg, &m->body);
        buf->refs = 1;
        int rc = s_on_submit(b, p, buf, false, msg, len);
        dp_bbuf_unref(buf);
        return rc;
    case DP_CMD_CANCEL:
        return client ? s_on_cancel(b, p, r) : DP_ERR_UNKNOWN_CMD;
    case DP_CMD_ACK:
        return client ? s_on_ack(b, p, r) : DP_ERR_UNKNOWN_CMD;
    case DP_CMD_STATUS:
        if (!client)
            break;
        s_on_status(b, p);
        return 0;
    case DP_CMD_RESULTS: {
        if (client)
            return DP_ERR_UNKNOWN_CMD;
        int rc = s_on_results(b, p, r);
        if (rc) /* its answers cannot be read: its jobs would wait forever */
            dp_bk_worker_gone(b, p, "sent malformed RESULTS");
        return rc;
    }
    case DP_CMD_CREDIT:
        return client ? DP_ERR_UNKNOWN_CMD : s_on_credit(b, p, r);
    default:
        break;
    }
    snprintf(msg, len, "command %s is not one a %s sends", dp_cmd_name(cmd),
             client ? "client" : "worker");
    return DP_ERR_UNKNOWN_CMD;
}

void dp_bk_on_message(dp_broker_t *b, dp_zmsg_t *m)
{
    int cmd = 0;
    dp_rd_t r;
    char msg[DP_BK_ERRMSG_MAX] = "";
    dp_peer_t *p = dp_bk_peer_find(b, m->rid, m->rid_len);
    int rc = dp_msg_open(zmq_msg_data(&m->body), zmq_msg_size(&m->body),
                         &b->cfg.limits, &cmd, &r);
    if (!rc && !p && zmq_msg_size(&m->body) > DP_PREHELLO_MAX_BYTES)
        rc = DP_ERR_TOO_BIG; /* say HELLO first: dropped, not kept */
    if (!rc && b->zap) {     /* role and revocation (dp_zap.h) */
        b->key_name = dp_zap_worker_name(b->zap, &m->body);
        rc = dp_zap_check(b->zap, &m->body, cmd, msg, sizeof msg);
        if (rc)
            b->refused++;
        if (rc == DP_ERR_UNKNOWN_PEER && p)
            dp_bk_peer_drop(b, p, "lost its key");
    }
    if (!rc && p) {
        p->last_seen_ms = dp_now_ms();
        rc = s_handle_peer(b, m, p, cmd, &r, msg, sizeof msg);
    } else if (!rc && cmd == DP_CMD_HELLO) {
        rc = s_on_hello(b, m, NULL, &r);
    } else if (!rc && cmd == DP_CMD_READY) {
        rc = s_on_ready(b, m, NULL, &r);
    } else if (!rc && cmd != DP_CMD_BYE) {
        rc = DP_ERR_UNKNOWN_PEER;
    }
    if (rc) {
        b->st.bad_msgs++;
        if (!msg[0])
            snprintf(msg, sizeof msg, "%s", dp_strerror(rc));
        dp_debug("bad %s message from %s: %s", dp_cmd_name(cmd),
                 p ? p->name : "unknown peer", msg);
        dp_bk_send_error(b, m->rid, m->rid_len, rc, msg);
    }
}
