/*
 * dp_broker_int.h - what the broker's files share (not a public header):
 * the peer record, the broker object, and the functions one concern calls
 * in another.
 *
 * Ownership: the broker owns its peers (a list) and its queue; a dropped
 * peer is marked dead at once, every job of its settled at once (no job
 * ever refers to a dead peer), and freed by dp_bk_purge after the turn.
 */
#ifndef DP_BROKER_INT_H
#define DP_BROKER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_broker.h"
#include "dp_msg.h"
#include "dp_queue.h"
#include "dp_zsock.h"

#define DP_PEER_NAME_MAX 64      /* bytes of a peer name kept (logs) */
#define DP_SESSION_OWNER_MAX 256 /* bytes of a session owner's User-Id */
#define DP_BK_ERRMSG_MAX 256     /* bytes of an error message made here */
#define DP_BK_PENDING_MIN 16     /* first size of the pending ACCEPTED list */
#define DP_BK_SCAN_JOBS DP_CHUNK_MAX /* jobs of a SUBMIT decoded once */
#define DP_BATCH_FULL_MSG "batch over --max-batch-held"

typedef enum { DP_PEER_CLIENT, DP_PEER_WORKER } dp_peer_kind_t;

typedef struct dp_peer {
    unsigned char rid[DP_ROUTING_ID_MAX];
    size_t rid_len;
    dp_peer_kind_t kind;
    uint32_t no;
    uint64_t last_seen_ms;
    char name[DP_PEER_NAME_MAX];
    uint32_t pid;
    bool dead;
    struct dp_peer *next;
    dp_qclient_t qc; /* clients */
    dp_wr_t out;     /* clients: RESULTS being built, nout of them */
    uint32_t nout;
    dp_qworker_t qw;             /* workers */
    dp_bbuf_t *held, *held_tail; /* clients: SUBMITs waiting for room */
    size_t held_bytes;
    uint32_t expiries;  /* workers: leases run out since its last answer */
    uint32_t handbacks; /* workers: jobs handed back since its last answer */
    uint64_t done;      /* workers: results answered (ok or error) */
    bool journaled;     /* clients: its BATCH record is journaled */
    /* clients with a session (HELLO with session and ACKS: they resume) */
    bool has_session;
    uint8_t session[DP_SESSION_BYTES];
    uint32_t flags;         /* DP_HELLO_* */
    bool away;              /* its connection is gone (rid_len 0); kept
                               for --session-grace from away_since_ms */
    uint64_t away_since_ms; /* dp_now_ms */
    bool known;             /* welcomed before, or replayed: a HELLO of
                               its session is a resume */
    uint64_t created_ms;    /* unix ms: its BATCH record's created_ms */
    char owner[DP_SESSION_OWNER_MAX]; /* CURVE: the User-Id ("client:NAME")
                                     that opened the session; only it
                                     resumes it ("" = anyone: no CURVE,
                                     or replayed and not claimed yet) */
    /* detached batches (dp_batches.c) */
    uint32_t reading;        /* a reader: the batch it attached to, or 0 */
    uint64_t cursor, span;   /* a reader: input indices cursor..span-1 of
                                its batch's kept results still to send */
    uint32_t nreaders;       /* a batch: readers attached */
    uint64_t last_result_ms; /* a batch: dp_now_ms of its last result (its
                                --result-ttl runs from it); 0 = not yet */
    bool counted;            /* a batch: done/failed hold its kept list */
    bool full;               /* a batch: its kept results passed
                                --max-batch-held (logged once) */
    uint64_t bdone, bfailed; /* a batch: results kept, ok and failed */
} dp_peer_t;

/* dp_bk_acks: p is a session that acknowledges its results: they are
 * kept until ACK, and it may come back after losing its connection. */
static inline bool dp_bk_detached(const dp_peer_t *p)
{
    return p->kind == DP_PEER_CLIENT && p->has_session &&
           (p->flags & DP_HELLO_DETACHED);
}

static inline bool dp_bk_acks(const dp_peer_t *p)
{
    return p->kind == DP_PEER_CLIENT && p->has_session &&
           (p->flags & DP_HELLO_ACKS);
}

/* An ACCEPTED waiting for the turn's journal commit (dp_bkjournal.c).
 * The client is found again by routing id and number: it may have left
 * (and been freed) before the commit. */
typedef struct {
    unsigned char rid[DP_ROUTING_ID_MAX];
    size_t rid_len;
    uint32_t no;
    uint32_t njobs, accepted;
    uint64_t seq;
} dp_pending_t;

typedef struct {
    uint64_t submitted, done, failed, requeued, lost, cancelled, bad_msgs,
        stale_results, expired, handed_back, refused_peers;
} dp_bstats_t;

struct dp_broker {
    dp_broker_cfg_t cfg;
    void *ctx;
    void *sock;
    dp_peer_t *peers;
    uint32_t next_no;
    size_t npeers; /* tracked, not dead */
    dp_queue_t q;
    dp_bstats_t st;
    uint64_t next_hb_ms;
    size_t held_bytes; /* SUBMITs held, all clients */
    bool blocked;      /* some client's results wait: retry soon */
    bool trim;         /* much was freed: give memory back (malloc_trim) */
    size_t trim_peak;  /* most jobs queued since the last malloc_trim */
    unsigned rr_start; /* rotates which worker is offered jobs first */
    dp_wr_t w;         /* scratch writer */
    /* CURVE/ZAP (dp_zap.h), NULL when plaintext */
    struct dp_zap *zap;
    uint64_t refused;     /* messages refused by role or revoked key */
    const char *key_name; /* the current message's worker key name */
    /* journal (dp_bkjournal.c); NULL without --journal */
    struct dp_journal *journal;
    dp_pending_t *pending; /* SUBMITs answered after the turn's commit */
    size_t npending, pendcap;
    /* s_on_submit: the jobs its scan decoded, queued without decoding
     * them again (a bigger SUBMIT is read twice); in_use: the id was in
     * the queue at the scan (a SUBMIT sent again after a resume) */
    dp_job_t scan[DP_BK_SCAN_JOBS];
    bool scan_in_use[DP_BK_SCAN_JOBS];
};

/* ---- peers and liveness (dp_peers.c) ---- */

/* dp_bk_peer_of_client / dp_bk_peer_of_worker: the peer a queue record
 * is embedded in. */
dp_peer_t *dp_bk_peer_of_client(dp_qclient_t *c);

dp_peer_t *dp_bk_peer_of_worker(dp_qworker_t *w);

/* dp_bk_peer_find: the live peer with this routing id, or NULL. */
dp_peer_t *dp_bk_peer_find(dp_broker_t *b, const void *rid, size_t len);

/* dp_bk_send: a whole message to a live peer. A peer that cannot be reached
 * is dropped at once (its jobs handled: see dp_bk_peer_drop), so no job ever
 * points at a dead peer. Callers that iterate a peer's leases must not
 * call it mid-walk. */
void dp_bk_send(dp_broker_t *b, dp_peer_t *p, dp_wr_t *w);

/* dp_bk_send_error: ERROR [code, msg] to any routing id, tracked or not. */
void dp_bk_send_error(dp_broker_t *b, const void *rid, size_t rid_len, int code,
                      const char *msg);

/* dp_bk_flush_clients: send each client its RESULTS; a client that does
 * not read keeps them and has its jobs paused (sets b->blocked). */
void dp_bk_flush_clients(dp_broker_t *b);

/* dp_bk_hold / dp_bk_unhold: client p's held SUBMITs, a FIFO; hold takes
 * a reference on buf, unhold hands the oldest back (caller unrefs). */
void dp_bk_hold(dp_broker_t *b, dp_peer_t *p, dp_bbuf_t *buf);

dp_bbuf_t *dp_bk_unhold(dp_broker_t *b, dp_peer_t *p);

/* dp_bk_worker_gone: worker p left or is dropped: marked dead first, its
 * leases requeued or failed at once. */
void dp_bk_worker_gone(dp_broker_t *b, dp_peer_t *p, const char *why);

/* dp_bk_cancel_leases: send each worker one CANCEL for client c's leases;
 * with orphan, the jobs lose their client first (it is leaving). The ids
 * are gathered before sending: a send may drop the worker, which changes
 * its lease list. Returns how many leases there were. */
size_t dp_bk_cancel_leases(dp_broker_t *b, dp_qclient_t *c, bool orphan);

/* dp_bk_client_lost: client p's connection is gone (silent, unreachable):
 * a session that acknowledges results goes away (kept for
 * --session-grace, its jobs run on); any other is dropped. */
void dp_bk_client_lost(dp_broker_t *b, dp_peer_t *p, const char *why);

/* dp_bk_session_find: the client with this session (away or not), or
 * NULL. */
dp_peer_t *dp_bk_session_find(dp_broker_t *b, const uint8_t *session);

/* dp_bk_resume: session q comes back on the connection of message m:
 * it takes m's routing id, gets WELCOME (resumed) and then every kept
 * result again. */
void dp_bk_resume(dp_broker_t *b, dp_peer_t *q, const dp_zmsg_t *m);

/* dp_bk_pace: pause client p's dispatch while its results wait (blocked:
 * its connection does not take them) or its kept results are over
 * --max-client-held; resume it otherwise. */
void dp_bk_pace(dp_broker_t *b, dp_peer_t *p, bool blocked);

/* dp_bk_peer_drop: drop a live peer, settling its jobs (worker or client);
 * no-op on a dead one. */
void dp_bk_peer_drop(dp_broker_t *b, dp_peer_t *p, const char *why);

/* dp_bk_purge: free the peers dropped this turn (they hold nothing). */
void dp_bk_purge(dp_broker_t *b);

/* dp_bk_copy_name: a peer name for logs, printable, truncated. */
void dp_bk_copy_name(char *dst, const char *s, size_t len);

/* dp_bk_total_slots: slots of class cls over the live workers. */
uint32_t dp_bk_total_slots(const dp_broker_t *b, dp_class_t cls);

/* dp_bk_welcome: WELCOME to p. */
void dp_bk_welcome(dp_broker_t *b, dp_peer_t *p);

/* dp_bk_peer_new: track a new peer; NULL when --max-peers are tracked
 * already (see dp_bk_full) or out of memory. */
dp_peer_t *dp_bk_peer_new(dp_broker_t *b, const dp_zmsg_t *m,
                          dp_peer_kind_t kind);

/* dp_bk_full: why a new peer was not taken: the --max-peers bound (answered
 * ERROR LIMIT, the peer is not tracked) or memory. */
int dp_bk_full(dp_broker_t *b);

/* dp_bk_heartbeat: drop peers silent for DP_HEARTBEAT_LIVENESS beats,
 * HEARTBEAT the others. */
void dp_bk_heartbeat(dp_broker_t *b, uint64_t now);

/* ---- dispatch and leases (dp_dispatch.c) ---- */

/* dp_bk_client_raw: queue an encoded result for client p. */
void dp_bk_client_raw(dp_peer_t *p, const void *raw, size_t len);

/* dp_bk_client_error: queue a result the broker makes itself, for a job
 * it holds no record of. */
void dp_bk_client_error(dp_broker_t *b, dp_peer_t *p, uint64_t id, int code,
                        const char *msg, uint32_t attempts);

/* dp_bk_job_result: job j (with a client) is answered with the encoded
 * result raw[0..len): for a session that acknowledges, the result is
 * kept (journaled RESULT) and sent if it is connected; otherwise it is
 * sent and the job freed. */
void dp_bk_job_result(dp_broker_t *b, dp_bjob_t *j, const void *raw,
                      size_t len);

/* dp_bk_job_error: j (with a client) ends with a result the broker makes
 * (dp_bk_job_result of it); counted failed. */
void dp_bk_job_error(dp_broker_t *b, dp_bjob_t *j, int code, const char *msg,
                     uint32_t attempts);

/* dp_bk_send_cancel: one CANCEL of n ids to worker wp. */
void dp_bk_send_cancel(dp_broker_t *b, dp_peer_t *wp, const uint64_t *ids,
                       size_t n);

/* dp_bk_job_lost: a leased job's process or worker died: requeue it within
 * its retry budget, else give its client a WORKER_LOST result. */
void dp_bk_job_lost(dp_broker_t *b, dp_bjob_t *j, const char *why);

/* dp_bk_handed_back: worker p gave job j back unstarted (REQUEUE). Within
 * the job's REQUEUE budget it is queued again, not counted as an attempt;
 * past it the job fails LIMIT. A worker that still has credit and hands
 * back job after job is dropped (a draining worker has no credit). */
void dp_bk_handed_back(dp_broker_t *b, dp_peer_t *p, dp_bjob_t *j);

/* dp_bk_expire: end every lease whose deadline is past now (the heap's
 * top first): requeue or TIMEOUT, see dp_dispatch.c. */
void dp_bk_expire(dp_broker_t *b, uint64_t now);

/* dp_bk_dispatch: idle slots everywhere first, then lookahead, starting at a
 * rotating worker so a small batch spreads over the pool. */
void dp_bk_dispatch(dp_broker_t *b);

/* ---- the journal (dp_bkjournal.c); each is a no-op without one ---- */

/* dp_bk_journal_open: open and replay cfg.journal_dir (jobs of clients
 * gone are dropped, logged). 0, or an error with err filled. */
int dp_bk_journal_open(dp_broker_t *b, char *err, size_t len);

/* dp_bk_journal_close: commit, fsync, close; frees the pending list. */
void dp_bk_journal_close(dp_broker_t *b);

/* dp_bk_journal_error: 0, or the journal's sticky error (*msg borrowed). */
int dp_bk_journal_error(const dp_broker_t *b, const char **msg);

/* dp_bk_jstats_t: the journal's counters for STATUS (all 0 without one):
 * disk bytes now, commits and fsyncs since start, compactions, bytes of a
 * torn tail cut at start. */
typedef struct {
    uint64_t bytes, commits, fsyncs, compactions, truncated;
} dp_bk_jstats_t;

/* dp_bk_journal_stats: fill *st. */
void dp_bk_journal_stats(const dp_broker_t *b, dp_bk_jstats_t *st);

/* dp_bk_journal_job: buffer client p's accepted job j (and p's BATCH the
 * first time); errors show in the turn's commit. */
void dp_bk_journal_job(dp_broker_t *b, dp_peer_t *p, const dp_bjob_t *j);

/* dp_bk_journal_dispatch: buffer a DISPATCH for j (not waited for). */
void dp_bk_journal_dispatch(dp_broker_t *b, const dp_bjob_t *j);

/* dp_bk_free_job: j leaves the broker (answered, cancelled, client gone):
 * journal TAKEN, then free it. */
void dp_bk_free_job(dp_broker_t *b, dp_bjob_t *j);

/* dp_bk_journal_result: buffer a RESULT for j (kept until ACK). */
void dp_bk_journal_result(dp_broker_t *b, const dp_bjob_t *j, const void *raw,
                          size_t len);

/* dp_bk_journal_forget: client p's session ends: buffer a FORGET of its
 * batch (when it has one on disk). */
void dp_bk_journal_forget(dp_broker_t *b, dp_peer_t *p);

/* dp_bk_journal_pend: answer p's SUBMIT (seq, njobs) with ACCEPTED
 * (accepted) after this turn's commit. 0 or DP_ERR_NOMEM. */
int dp_bk_journal_pend(dp_broker_t *b, const dp_peer_t *p, uint64_t seq,
                       uint32_t njobs, uint32_t accepted);

/* dp_bk_journal_drop: free p's still queued jobs of ids seq..seq+njobs-1
 * (a SUBMIT that will not be acknowledged). */
void dp_bk_journal_drop(dp_broker_t *b, dp_peer_t *p, uint64_t seq,
                        uint32_t njobs);

/* dp_bk_journal_turn: once per poll turn, before dispatch: commit, answer
 * the pending SUBMITs (ACCEPTED, or refused IO), fsync when due, compact
 * when due. */
void dp_bk_journal_turn(dp_broker_t *b, uint64_t now);

/* dp_bk_journal_due: when the journal must be fsync'ed (dp_now_ms), or
 * UINT64_MAX. */
uint64_t dp_bk_journal_due(const dp_broker_t *b);

/* ---- detached batches (dp_batches.c) ---- */

/* dp_bk_batch_cmd: BATCHES, ATTACH, FORGET or CANCEL_BATCH from client p
 * (m for its CURVE User-Id). 0, or an error for ERROR with msg. */
int dp_bk_batch_cmd(dp_broker_t *b, const dp_zmsg_t *m, dp_peer_t *p, int cmd,
                    dp_rd_t *r, char *msg, size_t len);

/* dp_bk_batch_opened: p was just opened as a detached batch. */
void dp_bk_batch_opened(dp_peer_t *p);

/* dp_bk_batch_limit: a new detached batch for owner uid ("" without
 * CURVE) is over --max-batches: DP_ERR_LIMIT with msg, else 0. */
int dp_bk_batch_limit(dp_broker_t *b, const char *uid, char *msg, size_t len);

/* dp_bk_batch_result: batch p kept the result raw[0..len): count it and
 * queue it to each reader. */
void dp_bk_batch_result(dp_broker_t *b, dp_peer_t *p, const void *raw,
                        size_t len);

/* dp_bk_held_bound: the kept-result bytes past which client p's jobs
 * stop: --max-batch-held for a detached batch, else --max-client-held. */
static inline size_t dp_bk_held_bound(const dp_broker_t *b, const dp_peer_t *p)
{
    return (size_t)(dp_bk_detached(p) ? b->cfg.max_batch_held
                                      : b->cfg.max_client_held);
}

/* dp_bk_batch_over: batch p keeps more than --max-batch-held. */
static inline bool dp_bk_batch_over(const dp_broker_t *b, const dp_peer_t *p)
{
    return dp_bk_detached(p) &&
           p->qc.kept_bytes > (size_t)b->cfg.max_batch_held;
}

/* dp_bk_batch_overflow: batch p is over --max-batch-held: each of its
 * queued jobs ends at once with a LIMIT result (running ones finish);
 * called once per turn, outside any walk of its jobs. */
void dp_bk_batch_overflow(dp_broker_t *b, dp_peer_t *p);

/* dp_bk_batch_fits: a SUBMIT of njobs more for batch p can fit
 * --max-batch-held (each kept result costs at least a job record):
 * 0, or DP_ERR_LIMIT with msg. */
int dp_bk_batch_fits(dp_broker_t *b, const dp_peer_t *p, uint32_t njobs,
                     char *msg, size_t len);

/* dp_bk_batch_gone: client p is being dropped: a reader leaves its batch;
 * a batch's readers get ERROR INVALID and stop reading. */
void dp_bk_batch_gone(dp_broker_t *b, dp_peer_t *p);

/* dp_bk_batch_fill: reader p's next chunk of kept results into p->out
 * (when its previous one went out); true while more remain. */
bool dp_bk_batch_fill(dp_broker_t *b, dp_peer_t *p);

/* dp_bk_batch_expired: batch p has no job left and its last result is
 * --result-ttl old (now: dp_now_ms). */
bool dp_bk_batch_expired(dp_broker_t *b, dp_peer_t *p, uint64_t now);

/* ---- message handlers (dp_handlers.c) ---- */

/* dp_bk_release_held: take held SUBMITs, oldest first, while they fit. */
void dp_bk_release_held(dp_broker_t *b);

/* dp_bk_on_message: handle one message from the socket (m->body is
 * borrowed; a SUBMIT's frame is moved out of it). */
void dp_bk_on_message(dp_broker_t *b, dp_zmsg_t *m);

#endif /* DP_BROKER_INT_H */
