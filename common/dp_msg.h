/*
 * dp_msg.h - dpool's wire messages (specified in common/PROTOCOL.md).
 *
 * A message is one msgpack frame [version, command, body] after the ZeroMQ
 * routing frames. This module opens envelopes, reads jobs and results out
 * of batches without copying them, and writes every message kind.
 *
 * Ownership: dp_job_t and dp_res_t returned by the readers borrow the
 * message bytes (their slices and strings point into them). Writers append
 * to a dp_wr_t the caller owns.
 */
#ifndef DP_MSG_H
#define DP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_wire.h"

#define DP_PROTOCOL_VERSION 1

/* Protocol limits both sides know (PROTOCOL.md, "Jobs and results"). */
#define DP_SUBMIT_MAX_JOBS 100000u /* jobs in one SUBMIT, at most */
#define DP_CHUNK_MAX 4096          /* jobs per dispatch (chunksize), at most */
#define DP_SESSION_BYTES 16        /* a client's session name in HELLO */
#define DP_ACK_MAX_IDS 100000u     /* ids in one ACK, at most */
#define DP_RETRIES_MAX 100         /* a job's retries honoured, at most */

/* HELLO flags (a bit set). */
#define DP_HELLO_ACKS 1u     /* the client acknowledges results (ACK) */
#define DP_HELLO_DETACHED 2u /* a detached batch (dpool submit) */

/* Commands: wire numbers, frozen. */
#define DP_CMD_MAP(XX)                                                         \
    XX(HELLO, 1)        /* client -> broker: [name, pid, session, flags] */    \
    XX(WELCOME, 2)      /* broker -> peer: [peer_no, hb_ms, max_msg,           \
                           cpu_slots, io_slots, resumed, journal] */           \
    XX(SUBMIT, 3)       /* client -> broker: [seq, [job...]] */                \
    XX(ACCEPTED, 4)     /* broker -> client: [seq, count] */                   \
    XX(RESULTS, 5)      /* worker -> broker -> client: [result...] */          \
    XX(CANCEL, 6)       /* client -> broker, broker -> worker: [id...] */      \
    XX(STATUS, 7)       /* client -> broker: [] */                             \
    XX(STATUS_REPLY, 8) /* broker -> client: {name: uint...} */                \
    XX(ERROR, 9)        /* broker -> peer: [code, message] */                  \
    XX(BYE, 10)         /* client or worker -> broker: [] */                   \
    XX(READY, 11)       /* worker -> broker: [name, pid, cpu, io, [type..]] */ \
    XX(CREDIT, 12)      /* worker -> broker: [cpu_slots, io_slots] */          \
    XX(JOBS, 13)        /* broker -> worker: [chunk, [[attempt, job]...]] */   \
    XX(HEARTBEAT, 14)   /* any -> any: [] */                                   \
    XX(SHUTDOWN, 15)    /* broker -> worker: [reason] */                       \
    XX(ACK, 16)         /* client -> broker: [id...] results it has */         \
    XX(BATCHES, 17)     /* client -> broker: [] or [batch] */                  \
    XX(BATCH_LIST, 18)  /* broker -> client: [[batch row]...] */               \
    XX(ATTACH, 19)      /* client -> broker: [batch] */                        \
    XX(FORGET, 20)      /* client -> broker: [batch] */                        \
    XX(CANCEL_BATCH, 21) /* client -> broker: [batch] */

typedef enum {
#define DP_CMD_ENUM(name, num) DP_CMD_##name = num,
    DP_CMD_MAP(DP_CMD_ENUM)
#undef DP_CMD_ENUM
        DP_CMD_MAX_
} dp_cmd_t;

/* dp_cmd_name: "SUBMIT" for logs; "?" for unknown numbers. */
const char *dp_cmd_name(int cmd);

/* A job as it travels: [id, type, args, timeout_ms, retries]. */
typedef struct {
    uint64_t id;
    const char *type; /* borrowed, not NUL-terminated */
    size_t type_len;
    uint32_t nargs;
    dp_slice_t args;     /* the encoded args array */
    uint32_t timeout_ms; /* 0 = the type's default */
    uint32_t retries;
    dp_slice_t raw; /* the whole encoded job */
} dp_job_t;

/* A result: [id, code, value|message, worker, pid, elapsed_us, attempt]. */
typedef struct {
    uint64_t id;
    uint32_t code;      /* 0 = ok */
    dp_slice_t value;   /* encoded value (ok) or message str (error) */
    const char *worker; /* borrowed, not NUL-terminated */
    size_t worker_len;
    uint32_t pid;
    uint64_t elapsed_us;
    uint32_t attempt;
    dp_slice_t raw; /* the whole encoded result */
} dp_res_t;

/* dp_msg_open: check the envelope of data[0..len): version and command.
 * On success *cmd is set and *body reads the body; every body but a
 * batch's (SUBMIT, RESULTS, JOBS) is checked whole. Errors: PROTOCOL,
 * VERSION, TOO_BIG, UNKNOWN_CMD. */
int dp_msg_open(const void *data, size_t len, const dp_limits_t *lim, int *cmd,
                dp_rd_t *body);
/* dp_msg_end: 0 when r has nothing left, else DP_ERR_PROTOCOL. Readers
 * of SUBMIT, RESULTS and JOBS bodies (which dp_msg_open does not walk)
 * call it after the last item. */
int dp_msg_end(const dp_rd_t *r);
/* dp_msg_read_job: one job from r. Errors: PROTOCOL (shape), TOO_BIG. */
int dp_msg_read_job(dp_rd_t *r, dp_job_t *job);
/* dp_msg_read_dispatch: one JOBS entry [attempt, job] from r. */
int dp_msg_read_dispatch(dp_rd_t *r, uint32_t *attempt, dp_job_t *job);
/* dp_msg_read_result: one result from r. */
int dp_msg_read_result(dp_rd_t *r, dp_res_t *res);

/* dp_msg_begin: write the envelope head [version, cmd, ... (the caller
 * writes exactly one body value next). */
void dp_msg_begin(dp_wr_t *w, int cmd);
/* dp_msg_put_job: one encoded job; args is a DP_ARRAY. */
void dp_msg_put_job(dp_wr_t *w, uint64_t id, const char *type,
                    const dp_value_t *args, uint32_t timeout_ms,
                    uint32_t retries);
/* A job template: what every job of one type, time limit and retries
 * shares, encoded once (dp_msg_job_tpl; dp_msg_job_tpl_release frees
 * it). dp_msg_put_job_str writes one job of it whose args are [arg] (a
 * str of len bytes): the bytes dp_msg_put_job writes for that array,
 * without building it, in one piece (a text input per job,
 * dp_map_text). */
typedef struct {
    dp_wr_t mid;  /* type, then the args array's header */
    dp_wr_t tail; /* timeout_ms, retries */
} dp_job_tpl_t;
void dp_msg_job_tpl(dp_job_tpl_t *t, const char *type, uint32_t timeout_ms,
                    uint32_t retries);
void dp_msg_job_tpl_release(dp_job_tpl_t *t);
void dp_msg_put_job_str(dp_wr_t *w, const dp_job_tpl_t *t, uint64_t id,
                        const char *arg, size_t len);
/* dp_msg_put_result: one encoded result. For code 0, value is the result;
 * otherwise message is written in its place (value ignored). */
void dp_msg_put_result(dp_wr_t *w, uint64_t id, uint32_t code,
                       const dp_value_t *value, const char *message,
                       const char *worker, uint32_t pid, uint64_t elapsed_us,
                       uint32_t attempt);
/* dp_msg_put_result_as: res (read from a RESULTS message) encoded again
 * with `worker` as its worker name; the value bytes are copied as they are
 * (a CURVE broker names the worker by its key). */
void dp_msg_put_result_as(dp_wr_t *w, const dp_res_t *res, const char *worker);
/* dp_msg_batch_add: append one encoded item (a result) to the batch
 * message being built in w, whose count is *n: the first item writes the
 * envelope [version, cmd, array32] with room for the count. Building in
 * place saves copying what is forwarded (a download body, say) again. */
void dp_msg_batch_add(dp_wr_t *w, uint32_t *n, int cmd, const void *raw,
                      size_t len);
/* dp_msg_batch_close: write the count n into a batch from
 * dp_msg_batch_add; w then holds the whole message. */
void dp_msg_batch_close(dp_wr_t *w, uint32_t n);
/* dp_msg_jobs_begin: start a JOBS message [chunksize, [[attempt, job]...]]
 * in w; returns where its job count goes (for dp_msg_jobs_close).
 * dp_msg_jobs_add appends one [attempt, job] with the job already encoded.
 * A receiver cuts the list into runs of chunksize jobs, each one dispatch
 * unit (the last run may be shorter). */
size_t dp_msg_jobs_begin(dp_wr_t *w, uint32_t chunksize);
void dp_msg_jobs_add(dp_wr_t *w, uint32_t attempt, const void *job, size_t len);
void dp_msg_jobs_close(dp_wr_t *w, size_t at, uint32_t n);
/* dp_msg_read_jobs: open a JOBS body: its chunksize and job count; r is
 * left at the first [attempt, job]. */
int dp_msg_read_jobs(dp_rd_t *r, uint32_t *chunksize, uint32_t *n);
/* dp_msg_error: a whole ERROR message. */
void dp_msg_error(dp_wr_t *w, int code, const char *message);
/* dp_msg_empty: a whole message with body [] (HEARTBEAT, BYE, STATUS). */
void dp_msg_empty(dp_wr_t *w, int cmd);

/* ---- typed messages ----
 * One writer (a whole message into w, which the caller reset) and one
 * reader (of the body dp_msg_open left in r) per message, so no other
 * file knows a field's position. Readers borrow strings from the message
 * and check shapes; 0, PROTOCOL or TOO_BIG. */

/* HELLO [name, pid] or [name, pid, session: bin(16), flags]: without a
 * session (2 fields) the client cannot resume (has_session false). */
typedef struct {
    const char *name; /* borrowed, not NUL-terminated */
    size_t name_len;
    uint64_t pid;
    bool has_session;
    uint8_t session[DP_SESSION_BYTES];
    uint64_t flags; /* DP_HELLO_* */
} dp_hello_t;
/* dp_msg_hello: name is NUL-terminated; the session and flags are written
 * when m->has_session (name and name_len: name_len is ignored). */
void dp_msg_hello(dp_wr_t *w, const dp_hello_t *m);
int dp_msg_read_hello(dp_rd_t *r, dp_hello_t *m);

/* WELCOME [peer_no, heartbeat_ms, max_msg, cpu_slots, io_slots, resumed,
 * journal]; the reader takes 2 fields or more (later ones default to 0,
 * extra ones are skipped) so either side may grow it. resumed: 1 when
 * the broker knew the HELLO's session (same peer_no as before); journal:
 * 1 when the broker journals (--journal). */
typedef struct {
    uint64_t peer_no, heartbeat_ms, max_msg, cpu_slots, io_slots;
    uint64_t resumed, journal;
} dp_welcome_t;
void dp_msg_welcome(dp_wr_t *w, const dp_welcome_t *m);
int dp_msg_read_welcome(dp_rd_t *r, dp_welcome_t *m);

/* READY [name, pid, cpu_slots, io_slots, [type...]] */
typedef struct {
    const char *name; /* borrowed */
    size_t name_len;
    uint64_t pid, cpu_slots, io_slots;
    uint32_t ntypes; /* the names are checked, not kept */
} dp_ready_t;
void dp_msg_ready(dp_wr_t *w, const char *name, uint32_t pid, uint32_t cpu,
                  uint32_t io, const char *const *types, size_t ntypes);
int dp_msg_read_ready(dp_rd_t *r, dp_ready_t *m);

/* CREDIT [cpu_slots, io_slots] */
void dp_msg_credit(dp_wr_t *w, uint32_t cpu, uint32_t io);
int dp_msg_read_credit(dp_rd_t *r, uint64_t *cpu, uint64_t *io);

/* ACCEPTED [seq, accepted] */
void dp_msg_accepted(dp_wr_t *w, uint64_t seq, uint32_t accepted);
int dp_msg_read_accepted(dp_rd_t *r, uint64_t *seq, uint64_t *accepted);

/* ACK [id...] (at most DP_ACK_MAX_IDS): dp_msg_read_ack opens it (*n
 * ids, TOO_BIG past the bound), dp_msg_read_cancel_id reads each. */
void dp_msg_ack(dp_wr_t *w, const uint64_t *ids, size_t n);
int dp_msg_read_ack(dp_rd_t *r, uint32_t *n);

/* CANCEL [id...]: dp_msg_read_cancel opens it (*n ids), then
 * dp_msg_read_cancel_id reads each. */
void dp_msg_cancel(dp_wr_t *w, const uint64_t *ids, size_t n);
int dp_msg_read_cancel(dp_rd_t *r, uint32_t *n);
int dp_msg_read_cancel_id(dp_rd_t *r, uint64_t *id);

/* ERROR [code, message] (dp_msg_error) or, refusing a SUBMIT, [code,
 * message, seq, count] (dp_msg_refusal). */
typedef struct {
    uint64_t code;
    const char *message; /* borrowed */
    size_t message_len;
    bool refusal; /* seq and count are set */
    uint64_t seq, count;
} dp_error_msg_t;
void dp_msg_refusal(dp_wr_t *w, int code, const char *message, uint64_t seq,
                    uint32_t count);
int dp_msg_read_error(dp_rd_t *r, dp_error_msg_t *m);

/* SHUTDOWN [reason] */
void dp_msg_shutdown(dp_wr_t *w, const char *reason);

/* STATUS_REPLY {name: uint..., worker_list: [{...}...]} */
typedef struct {
    const char *key;
    uint64_t value;
} dp_stat_t;
/* One live worker in STATUS_REPLY's worker_list. */
typedef struct {
    const char *name; /* borrowed, NUL-terminated */
    uint64_t pid;
    uint64_t cpu_slots, io_slots; /* slots it announced */
    uint64_t running;             /* jobs it holds (leases) */
    uint64_t done;                /* results it answered */
    uint64_t last_seen_ms;        /* ms since the broker last heard it */
} dp_stat_worker_t;
/* dp_msg_status_reply: STATUS_REPLY of the n counters in rows, no list. */
void dp_msg_status_reply(dp_wr_t *w, const dp_stat_t *rows, size_t n);
/* dp_msg_status_reply_workers: STATUS_REPLY of the n counters in rows and
 * the key worker_list: an array of one map per worker in
 * workers[0..nworkers) {name: str, pid, cpu_slots, io_slots, running,
 * done, last_seen_ms: uint}. Rows and workers are borrowed. */
void dp_msg_status_reply_workers(dp_wr_t *w, const dp_stat_t *rows, size_t n,
                                 const dp_stat_worker_t *workers,
                                 size_t nworkers);

/* SUBMIT [seq, [job...], chunksize]. dp_msg_submit writes one whole, of
 * njobs jobs already encoded back to back in jobs[0..len) (each from
 * dp_msg_put_job: a map's jobs are encoded once, as they are read, and
 * copied into the message in one piece). dp_msg_peek_submit reads only seq and
 * the job count (njobs 0 if that array is malformed): enough for flow
 * control without walking the jobs. dp_msg_read_submit checks the whole
 * shape and leaves *jobs at the first job (read each with
 * dp_msg_read_job). */
void dp_msg_submit(dp_wr_t *w, uint64_t seq, uint32_t njobs, const void *jobs,
                   size_t len, uint32_t chunk);
int dp_msg_peek_submit(const dp_rd_t *r, uint64_t *seq, uint32_t *njobs);
int dp_msg_read_submit(dp_rd_t *r, uint64_t *seq, uint32_t *njobs,
                       uint64_t *chunk, dp_rd_t *jobs);
/* dp_msg_read_submit_jobs / _end: a SUBMIT read in one pass (the jobs are
 * not walked twice): _jobs reads seq and the job count and leaves r at the
 * first job; after the caller has read every job with dp_msg_read_job,
 * _end reads chunksize and checks the body ends there. */
int dp_msg_read_submit_jobs(dp_rd_t *r, uint64_t *seq, uint32_t *njobs);
int dp_msg_read_submit_end(dp_rd_t *r, uint64_t *chunk);

/* RESULTS [result...]: dp_msg_results writes n results already encoded
 * back to back in raw[0..len); dp_msg_read_results opens one (*n results,
 * each read with dp_msg_read_result, then dp_msg_end). */
void dp_msg_results(dp_wr_t *w, uint32_t n, const void *raw, size_t len);
int dp_msg_read_results(dp_rd_t *r, uint32_t *n);

/* BATCHES [] (every batch the sender may see) or [batch] (that one). */
void dp_msg_batches(dp_wr_t *w, bool one, uint64_t batch);
int dp_msg_read_batches(dp_rd_t *r, bool *one, uint64_t *batch);

/* ATTACH, FORGET, CANCEL_BATCH: [batch]. cmd is one of the three. */
void dp_msg_batch_cmd(dp_wr_t *w, int cmd, uint64_t batch);
int dp_msg_read_batch_cmd(dp_rd_t *r, uint64_t *batch);

/* One row of BATCH_LIST: [id, name, created_ms, ttl_ms, total, queued,
 * running, done, failed, readers] (a reader takes 10 fields or more). */
#define DP_BATCH_ROW_FIELDS 10
typedef struct {
    uint64_t id;
    const char *name; /* borrowed, not NUL-terminated (writer: C string) */
    size_t name_len;
    uint64_t created_ms, ttl_ms; /* unix ms; ttl_ms 0 = none */
    uint64_t total, queued, running, done, failed, readers;
} dp_batch_row_t;
/* BATCH_LIST [[row]...]: dp_msg_batch_list writes n rows; the reader
 * opens it (*n rows, at most DP_BATCH_LIST_MAX), then reads each. */
#define DP_BATCH_LIST_MAX 100000u
void dp_msg_batch_list(dp_wr_t *w, const dp_batch_row_t *rows, size_t n);
int dp_msg_read_batch_list(dp_rd_t *r, uint32_t *n);
int dp_msg_read_batch_row(dp_rd_t *r, dp_batch_row_t *row);

/* dp_res_to_result: decode a wire result into the public dp_result_t
 * (caller frees with dp_result_free). 0, NOMEM or PROTOCOL. */
int dp_res_to_result(const dp_res_t *res, const dp_limits_t *lim,
                     dp_result_t **out);
/* dp_res_view: decode a wire result into *out without allocating the
 * result: its worker and message strings are copied into str (reused
 * from call to call: they live until str's next use), its value is
 * decoded into out->value (the caller clears it). 0, NOMEM or PROTOCOL. */
int dp_res_view(const dp_res_t *res, const dp_limits_t *lim, dp_result_t *out,
                dp_buf_t *str);

#endif /* DP_MSG_H */
