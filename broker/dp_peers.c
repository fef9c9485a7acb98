/*
 * dp_peers.c - the broker's peers and their liveness: finding, creating
 * and dropping clients and workers, sending to them (an unreachable peer
 * is dropped at once, its jobs settled), results waiting for a client
 * that does not read, SUBMITs held for a client at its share,
 * heartbeats, and purging dropped peers after the current turn.
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

dp_peer_t *dp_bk_peer_of_client(dp_qclient_t *c)
{
    return (dp_peer_t *)((char *)c - offsetof(dp_peer_t, qc));
}

dp_peer_t *dp_bk_peer_of_worker(dp_qworker_t *w)
{
    return (dp_peer_t *)((char *)w - offsetof(dp_peer_t, qw));
}

dp_peer_t *dp_bk_peer_find(dp_broker_t *b, const void *rid, size_t len)
{
    for (dp_peer_t *p = b->peers; p; p = p->next)
        if (!p->dead && p->rid_len == len && memcmp(p->rid, rid, len) == 0)
            return p;
    return NULL;
}

/* dp_bk_send: a whole message to a live peer. A peer that cannot be reached
 * is dropped at once (its jobs handled: see dp_bk_peer_drop), so no job ever
 * points at a dead peer. Callers that iterate a peer's leases must not
 * call it mid-walk. */
void dp_bk_send(dp_broker_t *b, dp_peer_t *p, dp_wr_t *w)
{
    if (p->dead || p->away) {
        dp_wr_reset(w);
        return;
    }
    int rc = dp_zsend(b->sock, p->rid, p->rid_len, w, ZMQ_DONTWAIT);
    if (rc && errno == EHOSTUNREACH) {
        dp_info("%s %s unreachable",
                p->kind == DP_PEER_WORKER ? "worker" : "client", p->name);
        if (p->kind == DP_PEER_CLIENT)
            dp_bk_client_lost(b, p, "unreachable");
        else
            dp_bk_peer_drop(b, p, "unreachable");
    } else if (rc && errno == EAGAIN && p->kind == DP_PEER_WORKER) {
        /* --hwm messages wait for it: its JOBS would be lost */
        dp_bk_peer_drop(b, p, "stopped reading");
    }
    /* a client's EAGAIN: it does not read; a control message is dropped,
     * its results wait (dp_bk_flush_clients) */
}

void dp_bk_send_error(dp_broker_t *b, const void *rid, size_t rid_len, int code,
                      const char *msg)
{
    dp_wr_reset(&b->w);
    dp_msg_error(&b->w, code, msg);
    dp_zsend(b->sock, rid, rid_len, &b->w, ZMQ_DONTWAIT);
}

/* s_flush_results: send client p its RESULTS. When --hwm messages already
 * wait for it (EAGAIN on the routing frame, so nothing was sent), keep
 * them and pause its jobs: results do not pile up while it does not read.
 * false while it is blocked. */
static bool s_flush_results(dp_broker_t *b, dp_peer_t *p)
{
    dp_msg_batch_close(&p->out, p->nout);
    if (zmq_send(b->sock, p->rid, p->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (errno == EHOSTUNREACH) {
            dp_bk_client_lost(b, p, "unreachable");
            return true;
        }
        if (!p->qc.paused)
            dp_debug("client %s does not read its results; its jobs wait",
                     p->name);
        dp_bk_pace(b, p, true);
        return false;
    }
    dp_zsend(b->sock, NULL, 0, &p->out, ZMQ_DONTWAIT); /* no copy */
    p->nout = 0;
    if (p->qc.paused)
        dp_bk_pace(b, p, false);
    return true;
}

void dp_bk_pace(dp_broker_t *b, dp_peer_t *p, bool blocked)
{
    /* a detached batch over its bound pauses only until the turn's
     * dp_bk_batch_overflow fails its queued jobs */
    bool pause = blocked || p->qc.kept_bytes > dp_bk_held_bound(b, p);
    if (pause && !p->qc.paused && !blocked && !dp_bk_detached(p))
        dp_debug("client %s holds %zu bytes of unacknowledged results; its "
                 "jobs wait (--max-client-held)",
                 p->name, p->qc.kept_bytes);
    if (pause != p->qc.paused)
        dp_queue_client_pause(&b->q, &p->qc, pause);
}

void dp_bk_flush_clients(dp_broker_t *b)
{
    b->blocked = false;
    for (dp_peer_t *p = b->peers; p; p = p->next) {
        if (p->kind != DP_PEER_CLIENT || p->dead)
            continue;
        if (dp_bk_batch_over(b, p)) /* the rest of it fails LIMIT */
            dp_bk_batch_overflow(b, p);
        if (p->reading && !p->away) { /* ATTACH: kept results, paced */
            if (p->nout == 0)
                dp_bk_batch_fill(b, p);
            if (p->cursor < p->span)
                b->blocked = true; /* more to send: come back soon */
        }
        if (!p->away && p->nout && !s_flush_results(b, p))
            b->blocked = true;
        else if ((p->nout == 0 || p->away) && p->qc.paused)
            dp_bk_pace(b, p, false);
    }
}

/* ---- held SUBMITs ---- */

void dp_bk_hold(dp_broker_t *b, dp_peer_t *p, dp_bbuf_t *buf)
{
    buf->refs++;
    buf->next = NULL;
    if (p->held_tail)
        p->held_tail->next = buf;
    else
        p->held = buf;
    p->held_tail = buf;
    p->held_bytes += zmq_msg_size(&buf->msg);
    b->held_bytes += zmq_msg_size(&buf->msg);
}

dp_bbuf_t *dp_bk_unhold(dp_broker_t *b, dp_peer_t *p)
{
    dp_bbuf_t *buf = p->held;
    p->held = buf->next;
    if (!p->held)
        p->held_tail = NULL;
    p->held_bytes -= zmq_msg_size(&buf->msg);
    b->held_bytes -= zmq_msg_size(&buf->msg);
    return buf;
}

void dp_bk_worker_gone(dp_broker_t *b, dp_peer_t *p, const char *why)
{
    char reason[DP_BK_ERRMSG_MAX];
    snprintf(reason, sizeof reason, "worker %s (pid %u) %s", p->name, p->pid,
             why);
    dp_info("%s; %zu leased jobs to requeue", reason, p->qw.leases.n);
    p->dead = true; /* first: nothing below may send to it */
    while (p->qw.leases.head)
        dp_bk_job_lost(b, p->qw.leases.head, reason);
}

/* dp_bk_cancel_leases: send each worker one CANCEL for client c's leases;
 * with orphan, the jobs lose their client first (it is leaving). The ids
 * are gathered before sending: a send may drop the worker, which changes
 * its lease list. Returns how many leases there were. */
size_t dp_bk_cancel_leases(dp_broker_t *b, dp_qclient_t *c, bool orphan)
{
    size_t total = 0;
    for (dp_peer_t *w = b->peers; w; w = w->next) {
        if (w->kind != DP_PEER_WORKER || w->dead || w->qw.leases.n == 0)
            continue;
        size_t n = 0;
        uint64_t *ids = malloc(w->qw.leases.n * sizeof *ids);
        for (dp_bjob_t *j = w->qw.leases.head, *nx; j; j = nx) {
            nx = j->next;
            if (j->client != c)
                continue;
            if (orphan)
                dp_queue_orphan(&b->q, j);
            if (ids)
                ids[n++] = j->id;
            total++;
        }
        if (n)
            dp_bk_send_cancel(b, w, ids, n);
        free(ids);
    }
    return total;
}

/* s_client_gone: a client left. Everything of its is settled now, before
 * anything else runs: queued jobs are freed, leased ones become orphans
 * (their answers are dropped), so no job ever refers to a freed client
 * and none of its jobs is dispatched again. */
static void s_client_gone(dp_broker_t *b, dp_peer_t *p, const char *why)
{
    size_t queued = 0, kept = p->qc.kept.n;
    p->dead = true; /* first: nothing below may send to it */
    dp_bk_batch_gone(b, p);
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        while (p->qc.queue[cls].head) {
            dp_bk_free_job(b, p->qc.queue[cls].head);
            queued++;
        }
    }
    while (p->qc.kept.head)
        dp_bk_free_job(b, p->qc.kept.head);
    dp_bk_journal_forget(b, p);
    dp_queue_client_remove(&b->q, &p->qc);
    while (p->held)
        dp_bbuf_unref(dp_bk_unhold(b, p));
    size_t running = dp_bk_cancel_leases(b, &p->qc, true);
    if (queued + running >= DP_TRIM_JOBS)
        b->trim = true;
    dp_info("client %s (pid %u) %s: dropped %zu queued, %zu kept results, "
            "cancelling %zu running",
            p->name, p->pid, why, queued, kept, running);
}

void dp_bk_client_lost(dp_broker_t *b, dp_peer_t *p, const char *why)
{
    if (p->dead || p->away)
        return;
    if (!dp_bk_acks(p)) {
        dp_bk_peer_drop(b, p, why);
        return;
    }
    if (dp_bk_detached(p))
        dp_info("batch #%u (%s) %s: detached, %zu jobs go on", p->no, p->name,
                why, p->qc.njobs);
    else
        dp_info("client %s (pid %u, #%u) %s: its session waits %ld ms for "
                "it (--session-grace); %zu jobs go on",
                p->name, p->pid, p->no, why, b->cfg.session_grace_ms,
                p->qc.njobs);
    p->away = true;
    p->away_since_ms = dp_now_ms();
    p->rid_len = 0;       /* its routing id may be another peer's one day */
    dp_wr_reset(&p->out); /* kept: sent again when it comes back */
    p->nout = 0;
    dp_bk_pace(b, p, false);
}

dp_peer_t *dp_bk_session_find(dp_broker_t *b, const uint8_t *session)
{
    for (dp_peer_t *p = b->peers; p; p = p->next)
        if (!p->dead && p->kind == DP_PEER_CLIENT && p->has_session &&
            memcmp(p->session, session, DP_SESSION_BYTES) == 0)
            return p;
    return NULL;
}

void dp_bk_resume(dp_broker_t *b, dp_peer_t *q, const dp_zmsg_t *m)
{
    memcpy(q->rid, m->rid, m->rid_len);
    q->rid_len = m->rid_len;
    q->away = false;
    q->last_seen_ms = dp_now_ms();
    dp_wr_reset(&q->out); /* the kept list holds all of it */
    q->nout = 0;
    dp_info("client %s (pid %u) resumed session #%u: %zu jobs held, %zu "
            "results sent again",
            q->name, q->pid, q->no, q->qc.njobs, q->qc.kept.n);
    dp_bk_welcome(b, q);
    for (dp_bjob_t *j = q->qc.kept.head; j; j = j->next)
        dp_bk_client_raw(q, j->result, j->result_len);
    dp_bk_pace(b, q, false);
}

void dp_bk_peer_drop(dp_broker_t *b, dp_peer_t *p, const char *why)
{
    if (p->dead)
        return;
    if (p->kind == DP_PEER_WORKER)
        dp_bk_worker_gone(b, p, why);
    else
        s_client_gone(b, p, why);
}

void dp_bk_purge(dp_broker_t *b)
{
    for (dp_peer_t **pp = &b->peers; *pp;) {
        dp_peer_t *p = *pp;
        if (!p->dead) {
            pp = &p->next;
            continue;
        }
        /* a dead peer holds nothing: dp_bk_peer_drop settled it */
        assert(p->qw.leases.n == 0 && p->qc.running == 0);
        assert(p->qc.queue[0].n == 0 && p->qc.queue[1].n == 0);
        *pp = p->next;
        b->npeers--;
        dp_wr_release(&p->out);
        free(p);
    }
}

/* ---- handlers ---- */

void dp_bk_copy_name(char *dst, const char *s, size_t len)
{
    size_t n = len < DP_PEER_NAME_MAX - 1 ? len : DP_PEER_NAME_MAX - 1;
    for (size_t k = 0; k < n; k++) /* printable only: names go to logs */
        dst[k] = (s[k] >= ' ' && s[k] < 0x7f) ? s[k] : '?';
    dst[n] = '\0';
}

uint32_t dp_bk_total_slots(const dp_broker_t *b, dp_class_t cls)
{
    uint32_t n = 0;
    for (const dp_peer_t *p = b->peers; p; p = p->next)
        if (p->kind == DP_PEER_WORKER && !p->dead)
            n += p->qw.capacity[cls];
    return n;
}

void dp_bk_welcome(dp_broker_t *b, dp_peer_t *p)
{
    dp_welcome_t m = {
        p->no,
        (uint64_t)b->cfg.heartbeat_ms,
        b->cfg.limits.max_msg_bytes,
        dp_bk_total_slots(b, DP_CLASS_CPU),
        dp_bk_total_slots(b, DP_CLASS_IO),
        p->kind == DP_PEER_CLIENT && p->has_session && p->known,
        b->journal != NULL,
    };
    p->known = true; /* from now on the broker knows its session */
    dp_wr_reset(&b->w);
    dp_msg_welcome(&b->w, &m);
    dp_bk_send(b, p, &b->w);
}

dp_peer_t *dp_bk_peer_new(dp_broker_t *b, const dp_zmsg_t *m,
                          dp_peer_kind_t kind)
{
    if (b->npeers >= (size_t)b->cfg.max_peers)
        return NULL; /* full: the caller refuses it, untracked */
    dp_peer_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->rid, m->rid, m->rid_len);
    p->rid_len = m->rid_len;
    p->kind = kind;
    p->no = ++b->next_no;
    p->last_seen_ms = dp_now_ms();
    dp_wr_init(&p->out);
    p->next = b->peers;
    b->peers = p;
    b->npeers++;
    return p;
}

/* dp_bk_full: why a new peer was not taken: the --max-peers bound (answered
 * ERROR LIMIT, the peer is not tracked) or memory. */
int dp_bk_full(dp_broker_t *b)
{
    if (b->npeers < (size_t)b->cfg.max_peers)
        return DP_ERR_NOMEM;
    b->st.refused_peers++;
    return DP_ERR_LIMIT;
}

/* ---- timers ---- */

void dp_bk_heartbeat(dp_broker_t *b, uint64_t now)
{
    uint64_t hb = (uint64_t)b->cfg.heartbeat_ms;
    uint64_t dead_after = hb * DP_HEARTBEAT_LIVENESS;
    uint64_t grace = (uint64_t)b->cfg.session_grace_ms;
    for (dp_peer_t *p = b->peers; p; p = p->next) {
        if (p->dead)
            continue;
        if (dp_bk_batch_expired(b, p, now)) {
            dp_bk_peer_drop(b, p, "freed: its --result-ttl passed");
            continue;
        }
        if (p->away) {
            if (!dp_bk_detached(p) && now - p->away_since_ms >= grace)
                dp_bk_peer_drop(b, p,
                                "did not come back within its "
                                "--session-grace");
            continue;
        }
        if (now - p->last_seen_ms > dead_after) {
            if (p->kind == DP_PEER_CLIENT)
                dp_bk_client_lost(b, p, "missed its heartbeats");
            else
                dp_bk_peer_drop(b, p, "missed its heartbeats");
            continue;
        }
        dp_wr_reset(&b->w);
        dp_msg_empty(&b->w, DP_CMD_HEARTBEAT);
        dp_bk_send(b, p, &b->w);
    }
    b->next_hb_ms = now + hb;
}
