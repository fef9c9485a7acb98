/*
 * dp_journal.h - the broker's append-only journal (`--journal DIR`): what
 * was accepted, dispatched, answered, taken, cancelled and forgotten, so
 * a restarted broker rebuilds its queues and undelivered results. No
 * ZeroMQ and no msgpack here: job and result bytes are opaque blobs, the
 * broker hands them in already encoded and gets them back the same.
 *
 * ---- On disk ----
 *
 *   DIR/lock              flock(LOCK_EX|LOCK_NB) while open: two brokers
 *                         never share a journal (the second is refused)
 *   DIR/journal.000001    segments, numbered; replayed in order
 *   DIR/journal.N.tmp     a segment being made; deleted at open
 *   DIR/journal.N.corrupt segments set aside after a bad record (below)
 *
 * A segment starts with a 32-byte header: "DPJOURN1", u32 version (1),
 * u32 flags (1 = BASE: the segment holds the whole state, every earlier
 * segment is superseded), u64 segment number, u32 0, u32 CRC-32C of the
 * first 28 bytes. Headers are written to a .tmp file, fsync'ed and
 * renamed into place, so a header is never torn. Then records, each
 *
 *   u32 len | u8 kind | u8 0 | u16 0 | u32 crc | payload (len bytes)
 *
 * little endian, crc = CRC-32C (common/dp_crc32c.h) over the first 8
 * header bytes and the payload. Payloads (u64 ids, LE; blobs to the end):
 *
 *   BATCH    batch, created_ms (unix), ttl_ms, u8 flags (1 = detached),
 *            u8 owner_len, u16 session_len, session bytes, owner bytes
 *            (the CURVE User-Id), then the client's name to the end. A
 *            record written before owners has owner_len 0 and ends
 *            after the session: it reads as no owner, no name. An
 *            upsert: a later BATCH for the same id replaces the earlier.
 *   JOB      batch, id, u32 chunk, the encoded job (as in SUBMIT)
 *   DISPATCH id, u32 attempt
 *   RESULT   id, the encoded result (as in RESULTS)
 *   TAKEN    id: the client has its result (it acked it); forget the job
 *   CANCEL   id
 *   FORGET   batch: drop the batch, its jobs and its results
 *
 * Replay (in dp_journal_open) starts at the last BASE segment, deletes
 * the segments before it (what an interrupted compaction left), and
 * calls one callback per record. It stops at the first record whose
 * length does not fit, whose CRC does not match, or whose payload is the
 * wrong size for its kind: that segment is truncated there (ftruncate;
 * logged with the offset and bytes cut) and any later segment is renamed
 * to NAME.corrupt and left for a human. Only the last segment can have a
 * torn tail in normal operation: a segment is fsync'ed before the next
 * one gets its first record. A record of an unknown kind with a good CRC
 * is skipped with a warning (a newer broker's optional record).
 *
 * ---- Commit and the --fsync-ms window ----
 *
 * dp_journal_<kind>() only buffers. dp_journal_commit() write()s every
 * buffered record and then:
 *   fsync_ms == 0: fsync()s before returning (each commit is durable);
 *   fsync_ms == N: fsync()s if the oldest unsynced write is N ms old,
 *     else leaves it to dp_journal_tick() at dp_journal_fsync_due().
 * When commit returns 0 the records are in the kernel (they survive a
 * kill -9 of the broker) and will be on the disk at most N ms later
 * (they survive a power cut that comes later than that), provided the
 * caller's loop calls dp_journal_tick() by the deadline: the broker puts
 * dp_journal_fsync_due() into its poll timeout. That is the contract an
 * ACCEPTED stands on: the broker sends ACCEPTED only after the commit
 * that holds the SUBMIT's JOB records returned 0. One commit per poll turn
 * (group commit) makes one fsync cover every SUBMIT of the turn.
 *
 * ---- Errors are sticky ----
 *
 * A failed write, fsync, rotation or compaction (EIO, ENOSPC, EDQUOT...)
 * puts the journal in a failed state that only a restart clears: every
 * later append and commit returns the error, and dp_journal_error() says
 * what happened. A failed commit truncates its segment back to the end of
 * the last good commit, so the records of the failed commit are not on
 * disk and replay will not bring them back: what the broker did not
 * acknowledge, it never acknowledges later. (After a failed fsync the
 * kernel may have dropped dirty pages: records written within the window
 * before it may be lost on a power cut; that is the documented window.)
 * The broker then refuses SUBMITs with DP_ERR_IO and serves what it has.
 *
 * ---- Compaction ----
 *
 * Full rewrite of the live state, the policy of Redis' AOF rewrite: when
 * the journal has grown past compact_min_bytes and past (100 +
 * compact_pct)% of the last BASE's size, dp_journal_compact_due() is true
 * and the broker calls dp_journal_compact() with a dump callback that
 * appends the live state (BATCH per live batch, JOB + DISPATCH per live
 * job, RESULT per untaken result). That goes to journal.N.tmp (BASE),
 * fsync, rename, fsync DIR, then every older segment is deleted. Disk use
 * stays within about (2 + compact_pct/100) x the live state (plus
 * compact_min_bytes), and no record, however old, pins a segment: a live
 * one is copied forward with the rest (beanstalkd's binlog keeps a whole
 * file for one old job). A crash at any step leaves either the old
 * segments or the new BASE (the older ones are deleted at the next open).
 * The rewrite is synchronous: it blocks the loop for about live bytes /
 * disk bandwidth (tens of ms for 100k queued jobs); a forkless background
 * rewrite can come later.
 *
 * Segments rotate at segment_bytes (fsync the old, then a new non-BASE
 * segment via .tmp + rename).
 *
 * ---- Integration in the broker (built: broker/dp_bkjournal.c; see
 *      also PROTOCOL.md, "Sessions, detached batches and the journal") ----
 *
 *  start:   replay into a dp_jstate_t (the records fold into the live
 *           state, so a job accepted, answered and taken never touches
 *           the queues), then rebuild: a BATCH with a 16-byte session is
 *           an away session (peer_no = batch; grace from now); its jobs
 *           are queued on a private frame with their attempt count, or
 *           kept with their RESULT; cancelled or out of attempts, they
 *           get a broker-made result (a RESULT record). Batches without a
 *           session are dropped (then a compaction). Peer numbers go on
 *           above max(batch).
 *  SUBMIT:  JOB per accepted job (BATCH first for a new client); the
 *           ACCEPTED waits on a per-turn pending list.
 *  after each poll turn's messages, before dispatch: dp_journal_commit;
 *           0: the pending ACCEPTEDs go; error: those SUBMITs' jobs are
 *           freed and refused IO, and every later SUBMIT too (sticky).
 *  dispatch: DISPATCH (not waited for: a lost one costs an attempt count).
 *  result:  RESULT for a session that acknowledges (kept until its ACK,
 *           then TAKEN); TAKEN at once for other clients.
 *  session end (BYE, grace over): FORGET of its batch.
 *  poll timeout includes dp_journal_fsync_due(); dp_journal_tick after;
 *           compaction (dp_journal_compact_due) dumps sessions, live jobs
 *           (JOB, DISPATCH) and kept results (RESULT).
 *  stop:    dp_journal_close() (commits and fsyncs).
 *
 * Ownership: dp_journal_open gives the caller the journal;
 * dp_journal_close frees it and clears the pointer. Every pointer passed
 * to an append is borrowed for the call (the bytes are copied into the
 * buffer). Pointers handed to replay callbacks are valid only during the
 * callback.
 */
#ifndef DP_JOURNAL_H
#define DP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_JOURNAL_FSYNC_MS_DEFAULT 50 /* --fsync-ms default, ms */
#define DP_JOURNAL_SEGMENT_BYTES (64ull << 20)
#define DP_JOURNAL_COMPACT_MIN_BYTES (64ull << 20)
#define DP_JOURNAL_COMPACT_PCT 100u
#define DP_JOURNAL_RECORD_MAX (512u << 20) /* > the largest message */
#define DP_JOURNAL_SESSION_MAX 255u        /* bytes of a session name */
#define DP_JOURNAL_OWNER_MAX 255u          /* bytes of an owner, of a name */
#define DP_JOURNAL_FLUSH_BYTES (1u << 20)  /* write() early past this */
#define DP_JOURNAL_ERRMSG_MAX 256

/* Record kinds: frozen numbers, like the protocol's. */
typedef enum {
    DP_JR_BATCH = 1,
    DP_JR_JOB = 2,
    DP_JR_DISPATCH = 3,
    DP_JR_RESULT = 4,
    DP_JR_TAKEN = 5,
    DP_JR_CANCEL = 6,
    DP_JR_FORGET = 7,
} dp_jr_kind_t;

typedef struct {
    uint64_t batch;
    uint64_t created_ms; /* unix time */
    uint64_t ttl_ms;     /* results kept this long; 0 = the broker's */
    bool detached;
    const uint8_t *session; /* the client's session name */
    size_t session_len;     /* <= DP_JOURNAL_SESSION_MAX */
    const char *owner;      /* CURVE User-Id that owns it ("client:NAME") */
    size_t owner_len;       /* <= DP_JOURNAL_OWNER_MAX; 0: none */
    const char *name;       /* the client's name (logs, BATCH_LIST) */
    size_t name_len;        /* <= DP_JOURNAL_OWNER_MAX; 0: none */
} dp_jr_batch_t;

typedef struct {
    uint64_t batch, id;
    uint32_t chunk;
    const uint8_t *raw; /* the encoded job */
    size_t raw_len;
} dp_jr_job_t;

/* Replay callbacks, one per record kind; NULL ones are skipped. A
 * nonzero return stops the replay and dp_journal_open returns it. */
typedef struct {
    int (*batch)(void *data, const dp_jr_batch_t *b);
    int (*job)(void *data, const dp_jr_job_t *j);
    int (*dispatch)(void *data, uint64_t id, uint32_t attempt);
    int (*result)(void *data, uint64_t id, const uint8_t *raw, size_t len);
    int (*taken)(void *data, uint64_t id);
    int (*cancel)(void *data, uint64_t id);
    int (*forget)(void *data, uint64_t batch);
    void *data;
} dp_journal_replay_t;

typedef struct {
    long fsync_ms;              /* 0: fsync in every commit */
    uint64_t segment_bytes;     /* rotate past this */
    uint64_t compact_min_bytes; /* never compact a smaller journal */
    unsigned compact_pct;       /* growth over the last BASE, percent */
    uint32_t max_record;        /* longest record payload */
} dp_journal_cfg_t;

typedef struct {
    /* replay */
    uint64_t replayed_records, replayed_bytes, truncated_bytes, skipped;
    uint32_t corrupt_segments; /* set aside as *.corrupt */
    /* since open */
    uint64_t appends, commits, writes, fsyncs, dir_fsyncs, rotations,
        compactions;
    /* now */
    uint64_t disk_bytes; /* every segment, as written */
    uint64_t base_bytes; /* the last BASE's size when it was made */
    uint32_t segments;
} dp_journal_stats_t;

typedef struct dp_journal dp_journal_t;

/* dp_journal_cfg_default: the defaults above. */
dp_journal_cfg_t dp_journal_cfg_default(void);

/* dp_journal_open: create DIR if needed (0700), lock it, replay it through
 * cb (may be NULL), then stand ready to append. *out belongs to the
 * caller. 0, DP_ERR_IO (cannot create/lock/read/truncate; the message is
 * logged, and in errmsg when not NULL), DP_ERR_NOMEM, DP_ERR_INVALID (bad
 * cfg), or a callback's error. */
int dp_journal_open(const char *dir, const dp_journal_cfg_t *cfg,
                    const dp_journal_replay_t *cb, dp_journal_t **out,
                    char *errmsg, size_t errlen);
/* dp_journal_close: commit and fsync what is buffered (errors logged),
 * unlock, free; NULL-safe, clears *jp. */
void dp_journal_close(dp_journal_t **jp);

/* Appends: buffer one record (copied). 0, the sticky error, DP_ERR_LIMIT
 * (over max_record or DP_JOURNAL_SESSION_MAX; nothing buffered) or
 * DP_ERR_NOMEM (sticky). Not on disk before dp_journal_commit. */
int dp_journal_batch(dp_journal_t *j, const dp_jr_batch_t *b);
int dp_journal_job(dp_journal_t *j, const dp_jr_job_t *job);
int dp_journal_dispatch(dp_journal_t *j, uint64_t id, uint32_t attempt);
int dp_journal_result(dp_journal_t *j, uint64_t id, const void *raw,
                      size_t len);
int dp_journal_taken(dp_journal_t *j, uint64_t id);
int dp_journal_cancel(dp_journal_t *j, uint64_t id);
int dp_journal_forget(dp_journal_t *j, uint64_t batch);

/* dp_journal_commit: write() every buffered record, fsync per the window
 * (header comment), rotate a full segment. now_ms is the caller's
 * monotonic clock (dp_now_ms). 0: everything appended so far is written
 * and will be fsync'ed by dp_journal_fsync_due(); else the sticky error,
 * and none of the records since the last good commit is on disk. */
int dp_journal_commit(dp_journal_t *j, uint64_t now_ms);
/* dp_journal_fsync_due: when the written-but-unsynced records must be
 * fsync'ed (monotonic ms), or UINT64_MAX if none are. */
uint64_t dp_journal_fsync_due(const dp_journal_t *j);
/* dp_journal_tick: fsync if the deadline has come. 0 or sticky error. */
int dp_journal_tick(dp_journal_t *j, uint64_t now_ms);
/* dp_journal_sync: commit and fsync now, whatever the window. */
int dp_journal_sync(dp_journal_t *j, uint64_t now_ms);

/* dp_journal_error: 0, or the sticky error code with *msg (borrowed;
 * msg may be NULL) saying what failed, e.g. "write journal.000003: No
 * space left on device". */
int dp_journal_error(const dp_journal_t *j, const char **msg);

/* dp_journal_compact_due: the journal has outgrown its live state. */
bool dp_journal_compact_due(const dp_journal_t *j);
/* dp_journal_compact: rewrite the live state (dump appends it with the
 * functions above and returns 0, or an error to abandon the rewrite) into
 * a new BASE segment and delete the older ones. 0; the dump's error (the
 * old segments stay, nothing changes); or an I/O error (sticky). */
int dp_journal_compact(dp_journal_t *j,
                       int (*dump)(void *data, dp_journal_t *j), void *data,
                       uint64_t now_ms);

/* dp_journal_stats: counters (see dp_journal_stats_t). */
void dp_journal_stats(const dp_journal_t *j, dp_journal_stats_t *st);

#endif /* DP_JOURNAL_H */
