/*
 * dp_batches.c - detached batches (PROTOCOL.md, "Detached batches"): a
 * session opened with HELLO flag DETACHED whose id is its peer number. It
 * is an away session that never expires by --session-grace: its results
 * stay kept until FORGET or until --result-ttl has passed since its last
 * one. Readers (ATTACH) get its kept results, paced in chunks as their
 * queue drains, then each new one as it comes; readers never consume.
 *
 * Ownership: a batch is a dp_peer_t like any client (the broker owns it);
 * a reader names its batch by number (p->reading), never by pointer, so
 * either may be dropped first.
 */
#include "dp_broker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "dp_clock.h"
#include "dp_log.h"
#include "dp_msg.h"
#include "dp_queue.h"

#define DP_ATTACH_CHUNK_RESULTS 1024     /* kept results per reader turn */
#define DP_ATTACH_CHUNK_BYTES (1u << 20) /* ... and at most about these */
#define DP_ATTACH_CHUNK_SCAN 65536       /* input indices looked at per turn */

/* s_uid: the CURVE User-Id of m ("client:NAME"), or NULL in plaintext. */
static const char *s_uid(const dp_broker_t *b, const dp_zmsg_t *m)
{
    return b->zap ? zmq_msg_gets((zmq_msg_t *)&m->body, "User-Id") : NULL;
}

/* s_visible: uid may see batch q (on CURVE only its owner; a batch
 * replayed from a journal written before owners were journaled has none
 * until a key claims it). */
static bool s_visible(const dp_peer_t *q, const char *uid)
{
    return !uid || !q->owner[0] ||
           strncmp(q->owner, uid, sizeof q->owner - 1) == 0;
}

/* s_batch: the live detached batch number no, or NULL. */
static dp_peer_t *s_batch(dp_broker_t *b, uint64_t no)
{
    if (no == 0 || no > UINT32_MAX)
        return NULL;
    for (dp_peer_t *q = b->peers; q; q = q->next)
        if (!q->dead && dp_bk_detached(q) && q->no == no)
            return q;
    return NULL;
}

/* s_find: the live detached batch number id that uid may see, or NULL
 * (another key's batch looks unknown: its existence is not told). */
static dp_peer_t *s_find(dp_broker_t *b, uint64_t id, const char *uid)
{
    dp_peer_t *q = s_batch(b, id);
    if (!q || !s_visible(q, uid))
        return NULL;
    if (uid && !q->owner[0]) /* an old record: the first key claims it */
        snprintf(q->owner, sizeof q->owner, "%s", uid);
    return q;
}

/* s_code: the code of an encoded result (1 when it cannot be read). */
static uint32_t s_code(const dp_broker_t *b, const void *raw, size_t len)
{
    dp_rd_t r;
    dp_res_t res;
    dp_rd_init(&r, raw, len, &b->cfg.limits);
    return dp_msg_read_result(&r, &res) ? 1 : res.code;
}

/* s_count: q's done and failed from its kept list, once (after a replay
 * the list is all there is); dp_bk_batch_result keeps them after. */
static void s_count(dp_broker_t *b, dp_peer_t *q)
{
    if (q->counted)
        return;
    q->bdone = q->bfailed = 0;
    for (dp_bjob_t *j = q->qc.kept.head; j; j = j->next) {
        if (s_code(b, j->result, j->result_len))
            q->bfailed++;
        else
            q->bdone++;
    }
    q->counted = true;
}

static void s_row(dp_broker_t *b, dp_peer_t *q, dp_batch_row_t *row)
{
    s_count(b, q);
    uint64_t held = 0;
    for (const dp_bbuf_t *h = q->held; h; h = h->next)
        held += h->njobs;
    *row = (dp_batch_row_t){
        .id = q->no,
        .name = q->name,
        .created_ms = q->created_ms,
        .ttl_ms = (uint64_t)b->cfg.result_ttl_ms,
        .queued = q->qc.queue[0].n + q->qc.queue[1].n + held,
        .running = q->qc.running,
        .done = q->bdone,
        .failed = q->bfailed,
        .readers = q->nreaders,
    };
    row->total = row->queued + row->running + row->done + row->failed;
}

/* s_send_row: BATCH_LIST of batch q alone to p. */
static void s_send_row(dp_broker_t *b, dp_peer_t *p, dp_peer_t *q)
{
    dp_batch_row_t row;
    s_row(b, q, &row);
    dp_wr_reset(&b->w);
    dp_msg_batch_list(&b->w, &row, 1);
    dp_bk_send(b, p, &b->w);
}

/* s_leave: reader p stops reading its batch. */
static void s_leave(dp_broker_t *b, dp_peer_t *p)
{
    dp_peer_t *q = s_batch(b, p->reading);
    if (q && q->nreaders)
        q->nreaders--;
    p->reading = 0;
    p->cursor = p->span = 0;
}

static int s_on_batches(dp_broker_t *b, dp_peer_t *p, const char *uid,
                        dp_rd_t *r, char *msg, size_t len)
{
    bool one;
    uint64_t id;
    int rc = dp_msg_read_batches(r, &one, &id);
    if (rc)
        return rc;
    if (one) {
        dp_peer_t *q = s_find(b, id, uid);
        if (!q) {
            snprintf(msg, len, "no batch %llu", (unsigned long long)id);
            return DP_ERR_INVALID;
        }
        s_send_row(b, p, q);
        return 0;
    }
    size_t n = 0;
    for (dp_peer_t *q = b->peers; q; q = q->next)
        n += !q->dead && dp_bk_detached(q) && s_visible(q, uid);
    if (n > DP_BATCH_LIST_MAX)
        n = DP_BATCH_LIST_MAX;
    dp_batch_row_t *rows = n ? calloc(n, sizeof *rows) : NULL;
    if (n && !rows)
        return DP_ERR_NOMEM;
    size_t k = 0;
    for (dp_peer_t *q = b->peers; q && k < n; q = q->next)
        if (!q->dead && dp_bk_detached(q) && s_visible(q, uid))
            s_row(b, q, &rows[k++]);
    dp_wr_reset(&b->w);
    dp_msg_batch_list(&b->w, rows, k);
    free(rows);
    dp_bk_send(b, p, &b->w);
    return 0;
}

static int s_on_attach(dp_broker_t *b, dp_peer_t *p, dp_peer_t *q, char *msg,
                       size_t len)
{
    if (q == p) {
        snprintf(msg, len, "a batch's own connection cannot read it");
        return DP_ERR_INVALID;
    }
    if (p->reading)
        s_leave(b, p);
    if (q->nreaders >= (uint32_t)b->cfg.max_batch_readers) {
        snprintf(msg, len, "batch %u has %u readers (--max-batch-readers)",
                 q->no, q->nreaders);
        return DP_ERR_LIMIT;
    }
    p->reading = q->no;
    q->nreaders++;
    s_send_row(b, p, q);
    /* the kept results now; later ones are queued live as they come (one
     * that comes in both ways is dropped by the reader, by id) */
    uint64_t span = 0;
    for (dp_bjob_t *j = q->qc.kept.head; j; j = j->next)
        if ((j->id & 0xffffffffu) + 1 > span)
            span = (j->id & 0xffffffffu) + 1;
    p->cursor = 0;
    p->span = span;
    dp_debug("client %s reads batch #%u (%zu kept results)", p->name, q->no,
             q->qc.kept.n);
    return 0;
}

static void s_cancel(dp_broker_t *b, dp_peer_t *q)
{
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        while (q->qc.queue[cls].head) {
            b->st.cancelled++;
            dp_bk_job_error(b, q->qc.queue[cls].head, DP_ERR_CANCELLED,
                            "cancelled", 0);
        }
    }
    /* the workers answer CANCELLED (or the result, if it came first) */
    dp_bk_cancel_leases(b, &q->qc, false);
}

int dp_bk_batch_cmd(dp_broker_t *b, const dp_zmsg_t *m, dp_peer_t *p, int cmd,
                    dp_rd_t *r, char *msg, size_t len)
{
    const char *uid = s_uid(b, m);
    if (cmd == DP_CMD_BATCHES)
        return s_on_batches(b, p, uid, r, msg, len);
    uint64_t id;
    int rc = dp_msg_read_batch_cmd(r, &id);
    if (rc)
        return rc;
    dp_peer_t *q = s_find(b, id, uid);
    if (!q) {
        snprintf(msg, len, "no batch %llu", (unsigned long long)id);
        return DP_ERR_INVALID;
    }
    switch (cmd) {
    case DP_CMD_ATTACH:
        return s_on_attach(b, p, q, msg, len);
    case DP_CMD_FORGET:
        s_send_row(b, p, q);
        dp_bk_peer_drop(b, q, "forgotten (FORGET)");
        return 0;
    case DP_CMD_CANCEL_BATCH:
        s_cancel(b, q);
        s_send_row(b, p, q);
        return 0;
    default:
        return DP_ERR_UNKNOWN_CMD;
    }
}

void dp_bk_batch_opened(dp_peer_t *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->created_ms =
        (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    dp_info("client %s (pid %u) opened detached batch #%u", p->name, p->pid,
            p->no);
}

int dp_bk_batch_limit(dp_broker_t *b, const char *uid, char *msg, size_t len)
{
    long n = 0;
    for (dp_peer_t *q = b->peers; q; q = q->next)
        if (!q->dead && dp_bk_detached(q) &&
            strncmp(q->owner, uid, sizeof q->owner - 1) == 0)
            n++;
    if (n < b->cfg.max_batches)
        return 0;
    snprintf(msg, len,
             "%ld detached batches held already (--max-batches); forget "
             "some",
             n);
    return DP_ERR_LIMIT;
}

void dp_bk_batch_result(dp_broker_t *b, dp_peer_t *p, const void *raw,
                        size_t len)
{
    p->last_result_ms = dp_now_ms();
    if (p->counted) {
        if (s_code(b, raw, len))
            p->bfailed++;
        else
            p->bdone++;
    }
    if (p->nreaders == 0)
        return;
    for (dp_peer_t *x = b->peers; x; x = x->next)
        if (!x->dead && !x->away && x->reading == p->no)
            dp_bk_client_raw(x, raw, len);
}

void dp_bk_batch_gone(dp_broker_t *b, dp_peer_t *p)
{
    if (p->reading)
        s_leave(b, p);
    if (!dp_bk_detached(p) || p->nreaders == 0)
        return;
    char msg[DP_BK_ERRMSG_MAX];
    snprintf(msg, sizeof msg,
             "batch %u is gone (forgotten, or its --result-ttl passed)", p->no);
    for (dp_peer_t *x = b->peers; x; x = x->next) {
        if (x->dead || x->reading != p->no)
            continue;
        x->reading = 0;
        x->cursor = x->span = 0;
        if (!x->away)
            dp_bk_send_error(b, x->rid, x->rid_len, DP_ERR_INVALID, msg);
    }
    p->nreaders = 0;
}

bool dp_bk_batch_fill(dp_broker_t *b, dp_peer_t *p)
{
    dp_peer_t *q = s_batch(b, p->reading);
    if (!q) {
        p->cursor = p->span = 0;
        return false;
    }
    size_t sent = 0, bytes = 0, scanned = 0;
    while (p->cursor < p->span && sent < DP_ATTACH_CHUNK_RESULTS &&
           bytes < DP_ATTACH_CHUNK_BYTES && scanned < DP_ATTACH_CHUNK_SCAN) {
        uint64_t id = (uint64_t)q->no << 32 | p->cursor++;
        dp_bjob_t *j = dp_queue_find(&b->q, id);
        scanned++;
        if (!j || j->state != DP_JOB_KEPT || j->client != &q->qc)
            continue;
        dp_bk_client_raw(p, j->result, j->result_len);
        sent++;
        bytes += j->result_len;
    }
    return p->cursor < p->span;
}

bool dp_bk_batch_expired(dp_broker_t *b, dp_peer_t *p, uint64_t now)
{
    if (!dp_bk_detached(p) || p->qc.njobs || p->held)
        return false;
    if (p->last_result_ms == 0) { /* replayed, or no result yet */
        p->last_result_ms = now;
        return false;
    }
    return now - p->last_result_ms >= (uint64_t)b->cfg.result_ttl_ms;
}

void dp_bk_batch_overflow(dp_broker_t *b, dp_peer_t *p)
{
    if (!p->full)
        dp_warn("detached batch #%u keeps %zu bytes of results, over "
                "--max-batch-held (%ld): its %zu queued jobs fail LIMIT",
                p->no, p->qc.kept_bytes, b->cfg.max_batch_held,
                p->qc.queue[0].n + p->qc.queue[1].n);
    p->full = true;
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++)
        while (p->qc.queue[cls].head)
            dp_bk_job_error(b, p->qc.queue[cls].head, DP_ERR_LIMIT,
                            DP_BATCH_FULL_MSG, 0);
}

int dp_bk_batch_fits(dp_broker_t *b, const dp_peer_t *p, uint32_t njobs,
                     char *msg, size_t len)
{
    uint64_t n = (uint64_t)p->qc.njobs + p->qc.kept.n + njobs;
    for (const dp_bbuf_t *h = p->held; h; h = h->next)
        n += h->njobs;
    if (n * sizeof(dp_bjob_t) <= (uint64_t)b->cfg.max_batch_held)
        return 0;
    snprintf(msg, len,
             "a batch of %llu jobs cannot fit --max-batch-held (%ld bytes, "
             "at least %zu a result): split it or raise the bound",
             (unsigned long long)n, b->cfg.max_batch_held, sizeof(dp_bjob_t));
    return DP_ERR_LIMIT;
}
