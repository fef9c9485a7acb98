/*
 * dp_jstate.h - the live state a journal describes: batches (sessions),
 * and the jobs not yet taken, each with its last dispatch attempt, whether
 * it was cancelled, and its kept result. Built by replaying a journal
 * (dp_jstate_replay gives the callbacks), and written back whole by
 * dp_jstate_dump (a dp_journal_compact dump callback).
 *
 * What it is for: at start the broker replays the journal into a
 * dp_jstate_t, then walks it once (dp_jstate_each_*) to rebuild its
 * sessions, queues and kept results, so records that cancel each other
 * (a job accepted, answered and taken) never touch the queues. It is also
 * the reference the journal's tests compare a replay against, and what a
 * `--journal-dump` debugging option would print. No ZeroMQ, no msgpack:
 * job and result bytes are opaque.
 *
 * Rules (one per record kind):
 *   BATCH    insert or replace the batch
 *   JOB      insert or replace the job (attempt 0, no result)
 *   DISPATCH the job's attempt = attempt (unknown id: ignored)
 *   RESULT   the job's kept result = bytes (replaces an earlier one)
 *   TAKEN    the job and its result are gone
 *   CANCEL   the job is marked cancelled: it must not run again
 *   FORGET   the batch and every job of it are gone
 *
 * Ownership: dp_jstate_new gives the caller the state; dp_jstate_destroy
 * frees it. The state copies every byte it is given. Pointers in the
 * structs handed to dp_jstate_each_* callbacks are borrowed for the call.
 */
#ifndef DP_JSTATE_H
#define DP_JSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_journal.h"

#define DP_JSTATE_BUCKETS 4096u /* initial; grows with the jobs */

typedef struct dp_jstate dp_jstate_t;

typedef struct {
    uint64_t batch, id;
    uint32_t chunk;
    uint32_t attempt; /* last DISPATCH, 0 if never dispatched */
    bool cancelled;
    const uint8_t *raw; /* the encoded job */
    size_t raw_len;
    bool has_result;
    const uint8_t *result; /* the kept encoded result */
    size_t result_len;
} dp_jstate_job_t;

/* dp_jstate_new: an empty state, or NULL (out of memory). */
dp_jstate_t *dp_jstate_new(void);
/* dp_jstate_destroy: NULL-safe; clears *sp. */
void dp_jstate_destroy(dp_jstate_t **sp);

/* dp_jstate_replay: replay callbacks that apply each record to s. */
dp_journal_replay_t dp_jstate_replay(dp_jstate_t *s);
/* dp_jstate_dump: a dp_journal_compact dump: appends s's whole state to j
 * (data is the dp_jstate_t): BATCH per batch, then per job JOB, DISPATCH
 * (if dispatched), CANCEL (if cancelled), RESULT (if kept). 0 or the
 * journal's error. */
int dp_jstate_dump(void *data, dp_journal_t *j);

/* dp_jstate_each_batch / dp_jstate_each_job: call f for each (in no
 * particular order) until it returns nonzero, which is returned. The
 * state must not change during the walk. */
int dp_jstate_each_batch(const dp_jstate_t *s,
                         int (*f)(void *data, const dp_jr_batch_t *b),
                         void *data);
int dp_jstate_each_job(const dp_jstate_t *s,
                       int (*f)(void *data, const dp_jstate_job_t *j),
                       void *data);
/* dp_jstate_counts: batches and jobs held, and the bytes they hold. */
void dp_jstate_counts(const dp_jstate_t *s, size_t *batches, size_t *jobs,
                      uint64_t *bytes);

#endif /* DP_JSTATE_H */
