/*
 * dp_bkjournal.c - the broker's use of its journal (--journal DIR;
 * broker/dp_journal.h holds the format, PROTOCOL.md "Sessions, detached
 * batches and the journal" the design).
 *
 * What is journaled: a BATCH per client (its peer number and, for a
 * session that acknowledges results, its 16-byte session) before its
 * first job, a JOB per accepted job, a DISPATCH per dispatch, a RESULT
 * per result kept for such a session (until its ACK), and a TAKEN when a
 * job leaves the broker (acknowledged; or, for a client without a
 * session, its result was queued to it; cancelled; client gone); a
 * FORGET when a client's session ends. ACCEPTED waits for the commit of
 * the turn that holds its JOB records (dp_bk_journal_turn); a failed
 * commit refuses those SUBMITs IO and every later one (the error is
 * sticky), and the broker serves what it had.
 *
 * Replay (dp_bk_journal_open) folds the records into a dp_jstate_t, then
 * rebuilds: a session per BATCH that has one (away: its grace starts at
 * the restart), each job queued again with its attempt count, or kept
 * with its result; a job cancelled without a result gets its CANCELLED
 * result now, one whose attempts are spent WORKER_LOST. Batches without
 * a session (clients that cannot resume) are dropped, logged. Peer
 * numbers continue above the largest replayed.
 */
#include "dp_broker_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dp_clock.h"
#include "dp_journal.h"
#include "dp_jstate.h"
#include "dp_log.h"
#include "dp_msg.h"

/* s_unix_ms: wall clock, for BATCH created_ms. */
static uint64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int s_dump(void *data, dp_journal_t *jn);

/* What a replay rebuilt, for its log line. */
typedef struct {
    dp_broker_t *b;
    dp_peer_t *last; /* the last session looked up (jobs come in runs) */
    size_t sessions, queued, kept, made, dropped_batches, dropped_jobs;
    uint64_t now;
} s_replay_t;

/* s_replay_batch: a BATCH with a session becomes an away session. */
static int s_replay_batch(void *data, const dp_jr_batch_t *bt)
{
    s_replay_t *x = data;
    dp_broker_t *b = x->b;
    if (bt->session_len != DP_SESSION_BYTES || bt->batch == 0 ||
        bt->batch > UINT32_MAX) {
        x->dropped_batches++;
        return 0;
    }
    dp_peer_t *p = calloc(1, sizeof *p);
    if (!p)
        return DP_ERR_NOMEM;
    p->kind = DP_PEER_CLIENT;
    p->no = (uint32_t)bt->batch;
    p->has_session = p->known = p->journaled = p->away = true;
    memcpy(p->session, bt->session, DP_SESSION_BYTES);
    p->flags = DP_HELLO_ACKS | (bt->detached ? DP_HELLO_DETACHED : 0);
    p->away_since_ms = p->last_seen_ms = x->now;
    p->created_ms = bt->created_ms;
    /* its name and CURVE owner as journaled (a record from before owners
     * has neither: then the first listed key to name it claims it) */
    if (bt->name_len && bt->name_len < sizeof p->name)
        snprintf(p->name, sizeof p->name, "%.*s", (int)bt->name_len, bt->name);
    else
        snprintf(p->name, sizeof p->name, "session #%u", p->no);
    if (bt->owner_len && bt->owner_len < sizeof p->owner)
        snprintf(p->owner, sizeof p->owner, "%.*s", (int)bt->owner_len,
                 bt->owner);
    dp_wr_init(&p->out);
    p->next = b->peers;
    b->peers = p;
    b->npeers++;
    if (p->no > b->next_no)
        b->next_no = p->no;
    x->sessions++;
    return 0;
}

static dp_peer_t *s_session_of(s_replay_t *x, uint64_t no)
{
    if (x->last && x->last->no == no)
        return x->last;
    for (dp_peer_t *p = x->b->peers; p; p = p->next)
        if (p->kind == DP_PEER_CLIENT && p->no == no)
            return x->last = p;
    return NULL;
}

/* s_replay_end: a replayed job that must not run again ends now with a
 * result the broker makes (journaled RESULT, kept until ACK). */
static int s_replay_end(s_replay_t *x, dp_bjob_t *bj, bool cancelled)
{
    char msg[DP_BK_ERRMSG_MAX];
    if (cancelled)
        snprintf(msg, sizeof msg, "cancelled");
    else
        snprintf(msg, sizeof msg,
                 "worker lost after %u attempts (the last when the broker "
                 "stopped)",
                 bj->attempts);
    dp_bk_job_error(x->b, bj, cancelled ? DP_ERR_CANCELLED : DP_ERR_WORKER_LOST,
                    msg, bj->attempts);
    x->made++;
    return 0;
}

/* s_replay_job: a job of a replayed session: queued, or kept with its
 * result. Its bytes get a private frame (dp_bbuf_t) of their own. */
static int s_replay_job(void *data, const dp_jstate_job_t *jj)
{
    s_replay_t *x = data;
    dp_broker_t *b = x->b;
    dp_peer_t *p = s_session_of(x, jj->batch);
    dp_job_t job;
    dp_rd_t r;
    dp_rd_init(&r, jj->raw, jj->raw_len, &b->cfg.limits);
    if (!p || (jj->id >> 32) != p->no || dp_msg_read_job(&r, &job) ||
        job.id != jj->id) {
        x->dropped_jobs++;
        return 0;
    }
    const dp_jobtype_t *type = dp_jobtab_find(job.type, job.type_len);
    dp_bbuf_t *buf = calloc(1, sizeof *buf);
    if (!buf || zmq_msg_init_size(&buf->msg, jj->raw_len ? jj->raw_len : 1)) {
        free(buf);
        return DP_ERR_NOMEM;
    }
    buf->refs = 1;
    memcpy(zmq_msg_data(&buf->msg), jj->raw, jj->raw_len);
    uint8_t retries =
        (uint8_t)(job.retries > DP_RETRIES_MAX ? DP_RETRIES_MAX : job.retries);
    dp_bjob_t *bj = NULL;
    int rc =
        dp_queue_add(&b->q, &p->qc, jj->id, type ? type->cls : DP_CLASS_CPU,
                     retries, buf, zmq_msg_data(&buf->msg), jj->raw_len, &bj);
    dp_bbuf_unref(buf);
    if (rc)
        return rc == DP_ERR_INVALID ? 0 : rc; /* a duplicate: the first */
    bj->chunk = (uint16_t)(jj->chunk < 1              ? 1
                           : jj->chunk > DP_CHUNK_MAX ? DP_CHUNK_MAX
                                                      : jj->chunk);
    bj->limit_ms = job.timeout_ms ? job.timeout_ms
                   : type         ? type->timeout_ms
                                  : 0;
    bj->attempts = (uint8_t)(jj->attempt > UINT8_MAX ? UINT8_MAX : jj->attempt);
    if (jj->has_result) {
        uint8_t *copy = malloc(jj->result_len ? jj->result_len : 1);
        if (!copy)
            return DP_ERR_NOMEM;
        memcpy(copy, jj->result, jj->result_len);
        dp_queue_keep(&b->q, bj, copy, jj->result_len);
        x->kept++;
        return 0;
    }
    if (jj->cancelled || !type || !bj->limit_ms ||
        (unsigned)bj->attempts > bj->retries)
        return s_replay_end(x, bj, jj->cancelled);
    x->queued++;
    return 0;
}

int dp_bk_journal_open(dp_broker_t *b, char *err, size_t len)
{
    if (!b->cfg.journal_dir || !b->cfg.journal_dir[0])
        return 0;
    dp_journal_cfg_t jc = dp_journal_cfg_default();
    jc.fsync_ms = b->cfg.fsync_ms;
    dp_jstate_t *s = dp_jstate_new();
    if (!s) {
        snprintf(err, len, "out of memory");
        return DP_ERR_NOMEM;
    }
    dp_journal_replay_t cb = dp_jstate_replay(s);
    int rc =
        dp_journal_open(b->cfg.journal_dir, &jc, &cb, &b->journal, err, len);
    if (rc)
        goto out;
    s_replay_t x = {.b = b, .now = dp_now_ms()};
    rc = dp_jstate_each_batch(s, s_replay_batch, &x);
    if (!rc)
        rc = dp_jstate_each_job(s, s_replay_job, &x);
    if (rc) {
        snprintf(err, len, "journal %s: cannot rebuild its state: %s",
                 b->cfg.journal_dir, dp_strerror(rc));
        goto out;
    }
    if (x.dropped_batches || x.dropped_jobs) {
        dp_warn("journal %s: %zu jobs of %zu clients from before the restart "
                "dropped: those clients had no session to resume",
                b->cfg.journal_dir, x.dropped_jobs, x.dropped_batches);
        if (dp_journal_compact(b->journal, s_dump, b, dp_now_ms()))
            dp_error("journal %s: cannot drop the old jobs; refusing jobs",
                     b->cfg.journal_dir); /* sticky: SUBMITs refused IO */
    }
    if (x.sessions)
        dp_info("journal %s: %zu sessions restored (waiting %ld ms for their "
                "clients): %zu jobs queued again, %zu results kept, %zu ended "
                "at the restart (cancelled or out of attempts)",
                b->cfg.journal_dir, x.sessions, b->cfg.session_grace_ms,
                x.queued, x.kept, x.made);
    dp_info("journal %s: open (fsync window %ld ms)", b->cfg.journal_dir,
            b->cfg.fsync_ms);
out:
    dp_jstate_destroy(&s);
    return rc;
}

void dp_bk_journal_close(dp_broker_t *b)
{
    dp_journal_close(&b->journal);
    free(b->pending);
    b->pending = NULL;
    b->npending = b->pendcap = 0;
}

int dp_bk_journal_error(const dp_broker_t *b, const char **msg)
{
    return b->journal ? dp_journal_error(b->journal, msg) : 0;
}

void dp_bk_journal_stats(const dp_broker_t *b, dp_bk_jstats_t *st)
{
    *st = (dp_bk_jstats_t){0};
    if (!b->journal)
        return;
    dp_journal_stats_t js;
    dp_journal_stats(b->journal, &js);
    *st = (dp_bk_jstats_t){.bytes = js.disk_bytes,
                           .commits = js.commits,
                           .fsyncs = js.fsyncs,
                           .compactions = js.compactions,
                           .truncated = js.truncated_bytes};
}

/* s_batch_of: client p's BATCH record: only a session that acknowledges
 * results names its session (the others cannot resume: replay drops
 * them). */
static dp_jr_batch_t s_batch_of(const dp_peer_t *p)
{
    bool acks = dp_bk_acks(p);
    size_t olen = strnlen(p->owner, sizeof p->owner);
    size_t nlen = strnlen(p->name, sizeof p->name);
    return (dp_jr_batch_t){.batch = p->no,
                           .created_ms = p->created_ms,
                           .detached = (p->flags & DP_HELLO_DETACHED) != 0,
                           .session = acks ? p->session : NULL,
                           .session_len = acks ? DP_SESSION_BYTES : 0,
                           .owner = p->owner,
                           .owner_len = olen < DP_JOURNAL_OWNER_MAX ? olen : 0,
                           .name = p->name,
                           .name_len = nlen < DP_JOURNAL_OWNER_MAX ? nlen : 0};
}

void dp_bk_journal_job(dp_broker_t *b, dp_peer_t *p, const dp_bjob_t *j)
{
    if (!b->journal)
        return;
    if (!p->journaled) {    /* its batch first (replay keys jobs to it) */
        if (!p->created_ms) /* a detached batch has it from its HELLO */
            p->created_ms = s_unix_ms();
        dp_jr_batch_t bt = s_batch_of(p);
        dp_journal_batch(b->journal, &bt);
        p->journaled = true;
    }
    dp_jr_job_t jr = {.batch = p->no,
                      .id = j->id,
                      .chunk = j->chunk,
                      .raw = j->raw,
                      .raw_len = j->raw_len};
    dp_journal_job(b->journal, &jr); /* an error shows in the commit */
}

void dp_bk_journal_dispatch(dp_broker_t *b, const dp_bjob_t *j)
{
    if (b->journal)
        dp_journal_dispatch(b->journal, j->id, j->attempts);
}

void dp_bk_journal_result(dp_broker_t *b, const dp_bjob_t *j, const void *raw,
                          size_t len)
{
    if (b->journal)
        dp_journal_result(b->journal, j->id, raw, len);
}

void dp_bk_journal_forget(dp_broker_t *b, dp_peer_t *p)
{
    if (b->journal && p->journaled)
        dp_journal_forget(b->journal, p->no);
    p->journaled = false;
}

void dp_bk_free_job(dp_broker_t *b, dp_bjob_t *j)
{
    if (b->journal)
        dp_journal_taken(b->journal, j->id);
    dp_queue_free_job(&b->q, j);
}

int dp_bk_journal_pend(dp_broker_t *b, const dp_peer_t *p, uint64_t seq,
                       uint32_t njobs, uint32_t accepted)
{
    if (b->npending == b->pendcap) {
        size_t cap = b->pendcap ? 2 * b->pendcap : DP_BK_PENDING_MIN;
        dp_pending_t *v = realloc(b->pending, cap * sizeof *v);
        if (!v)
            return DP_ERR_NOMEM;
        b->pending = v;
        b->pendcap = cap;
    }
    dp_pending_t *e = &b->pending[b->npending++];
    memcpy(e->rid, p->rid, p->rid_len);
    e->rid_len = p->rid_len;
    e->no = p->no;
    e->seq = seq;
    e->njobs = njobs;
    e->accepted = accepted;
    return 0;
}

void dp_bk_journal_drop(dp_broker_t *b, dp_peer_t *p, uint64_t seq,
                        uint32_t njobs)
{
    for (uint32_t k = 0; k < njobs; k++) {
        dp_bjob_t *j = dp_queue_find(&b->q, seq + k);
        if (j && j->client == &p->qc && j->state == DP_JOB_QUEUED)
            dp_queue_free_job(&b->q, j); /* never on disk: no TAKEN */
    }
}

/* s_client_no: the live client numbered no (away or not), or NULL. */
static dp_peer_t *s_client_no(dp_broker_t *b, uint32_t no)
{
    for (dp_peer_t *p = b->peers; p; p = p->next)
        if (!p->dead && p->kind == DP_PEER_CLIENT && p->no == no)
            return p;
    return NULL;
}

/* s_answer_pending: the turn's commit came back rc: ACCEPTED, or drop
 * the jobs and refuse the SUBMIT IO. A client gone meanwhile (or a new
 * one on its routing id) had its jobs settled when it left. */
static void s_answer_pending(dp_broker_t *b, int rc, const char *why)
{
    char msg[DP_BK_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "journal: %s; the broker accepts no jobs",
             why ? why : dp_strerror(rc));
    for (size_t k = 0; k < b->npending; k++) {
        const dp_pending_t *e = &b->pending[k];
        dp_peer_t *p = s_client_no(b, e->no);
        if (!p)
            continue; /* gone: its jobs were settled when it left */
        dp_wr_reset(&b->w);
        if (rc) {
            dp_bk_journal_drop(b, p, e->seq, e->njobs);
            dp_msg_refusal(&b->w, DP_ERR_IO, msg, e->seq, e->njobs);
        } else {
            dp_msg_accepted(&b->w, e->seq, e->accepted);
        }
        dp_bk_send(b, p, &b->w);
    }
    b->npending = 0;
}

/* s_dump: the live state for a compaction: a BATCH per journaled
 * client, a JOB (+ DISPATCH, + RESULT when kept) per job that still has
 * its client. */
static int s_dump(void *data, dp_journal_t *jn)
{
    dp_broker_t *b = data;
    int rc = 0;
    for (dp_peer_t *p = b->peers; p && !rc; p = p->next) {
        if (p->dead || p->kind != DP_PEER_CLIENT || !p->journaled)
            continue;
        dp_jr_batch_t bt = s_batch_of(p);
        rc = dp_journal_batch(jn, &bt);
    }
    for (size_t k = 0; k < b->q.nbuckets && !rc; k++) {
        for (dp_bjob_t *j = b->q.buckets[k]; j && !rc; j = j->hnext) {
            if (!j->client)
                continue; /* orphans: their answers are dropped */
            dp_jr_job_t jr = {.batch = j->id >> 32,
                              .id = j->id,
                              .chunk = j->chunk,
                              .raw = j->raw,
                              .raw_len = j->raw_len};
            rc = dp_journal_job(jn, &jr);
            if (!rc && j->attempts)
                rc = dp_journal_dispatch(jn, j->id, j->attempts);
            if (!rc && j->state == DP_JOB_KEPT)
                rc = dp_journal_result(jn, j->id, j->result, j->result_len);
        }
    }
    return rc;
}

void dp_bk_journal_turn(dp_broker_t *b, uint64_t now)
{
    if (!b->journal)
        return;
    int rc = dp_journal_commit(b->journal, now);
    const char *why = NULL;
    if (rc)
        dp_journal_error(b->journal, &why);
    s_answer_pending(b, rc, why);
    if (!rc)
        dp_journal_tick(b->journal, now);
    if (!rc && dp_journal_compact_due(b->journal))
        dp_journal_compact(b->journal, s_dump, b, now);
}

uint64_t dp_bk_journal_due(const dp_broker_t *b)
{
    return b->journal ? dp_journal_fsync_due(b->journal) : UINT64_MAX;
}
