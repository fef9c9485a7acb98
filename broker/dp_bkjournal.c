/*
 * dp_bkjournal.c - the broker's use of its journal (--journal DIR, issue
 * 11, first step; broker/dp_journal.h holds the format and the plan).
 *
 * What is journaled: a BATCH per client (its peer number) before its
 * first job, a JOB per accepted job, a DISPATCH per dispatch, and a TAKEN
 * when the job leaves the broker (its result or error was queued to its
 * client, it was cancelled, or its client left). Clients do not ack
 * results yet, so "sent to the client" counts as taken, and no RESULT is
 * kept. ACCEPTED waits for the commit of the turn that holds its JOB
 * records (dp_bk_journal_turn); a failed commit refuses those SUBMITs IO
 * and every later one (the error is sticky), and the broker serves what
 * it had.
 *
 * Replay: clients do not resume sessions yet, so the jobs of a journal
 * belong to clients that are gone. They are dropped at start (logged with
 * their count) and the journal is compacted to an empty BASE.
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

/* s_dump_none: the live state after a replay whose clients are gone. */
static int s_dump_none(void *data, dp_journal_t *j)
{
    (void)data;
    (void)j;
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
    size_t nbatches = 0, njobs = 0;
    uint64_t bytes = 0;
    dp_jstate_counts(s, &nbatches, &njobs, &bytes);
    if (njobs)
        dp_warn("journal %s: %zu jobs from before the restart dropped: "
                "their clients are gone (client session resume is not "
                "built yet)",
                b->cfg.journal_dir, njobs);
    if (nbatches || njobs) {
        rc = dp_journal_compact(b->journal, s_dump_none, NULL, dp_now_ms());
        if (rc) /* sticky: SUBMITs are refused IO, logged by the journal */
            dp_error("journal %s: cannot drop the old jobs; refusing jobs",
                     b->cfg.journal_dir);
        rc = 0;
    }
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

void dp_bk_journal_job(dp_broker_t *b, dp_peer_t *p, const dp_bjob_t *j)
{
    if (!b->journal)
        return;
    if (!p->journaled) { /* its batch first (replay keys jobs to it) */
        dp_jr_batch_t bt = {.batch = p->no,
                            .created_ms = s_unix_ms(),
                            .session = (const uint8_t *)p->name,
                            .session_len = strlen(p->name)};
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
        dp_peer_t *p = dp_bk_peer_find(b, e->rid, e->rid_len);
        if (!p || p->no != e->no || p->dead)
            continue;
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

/* s_dump: the live state for a compaction: a BATCH per client with
 * jobs, a JOB (+ DISPATCH) per job that still has its client. */
static int s_dump(void *data, dp_journal_t *jn)
{
    dp_broker_t *b = data;
    int rc = 0;
    for (dp_peer_t *p = b->peers; p && !rc; p = p->next) {
        if (p->dead || p->kind != DP_PEER_CLIENT || !p->qc.njobs)
            continue;
        dp_jr_batch_t bt = {.batch = p->no,
                            .created_ms = s_unix_ms(),
                            .session = (const uint8_t *)p->name,
                            .session_len = strlen(p->name)};
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
