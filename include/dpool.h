/*
 * dpool.h - the one public header of libdpool, the dpool client library.
 *
 * A pool runs jobs (a type name plus arguments) on forked worker processes
 * behind a broker, like Python's multiprocessing.Pool across machines.
 *
 *   dp_pool_t *pool;
 *   dp_pool_open(NULL, NULL, &pool);              // NULL = embedded pool
 *   dp_map_t *m;
 *   dp_map_array(pool, "factor", args, n, NULL, &m); // results in order
 *   dp_result_t *r;
 *   while (dp_map_next(m, &r) == 0) { ...; dp_result_free(&r); }
 *   dp_map_destroy(&m);
 *   dp_pool_close(&pool);
 *
 * Ownership rules (they hold for every function below):
 *  - A returned object or `T *` out-parameter belongs to the caller, who
 *    releases it with the matching _free/_destroy/_close.
 *  - A `const T *` return is borrowed from its owner and valid until the next
 *    call on that owner.
 *  - A `T **p` parameter of a _free/_destroy/_close takes ownership, releases
 *    and sets *p = NULL; it is NULL-safe and idempotent.
 *  - Arguments passed in (`const dp_value_t *`) are copied; the caller keeps
 *    its own.
 * Errors: fallible functions return 0 or a DP_ERR_* code (see dp_strerror).
 * Threads: a pool is used from one thread at a time; the library runs one
 * background I/O thread per pool (heartbeats and results flow even while
 * the caller computes).
 */
#ifndef DPOOL_H
#define DPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DPOOL_VERSION "0.1.0"

/*
 * Error codes. They travel on the wire: never renumber or reuse one; retire
 * a code by leaving its row with a "(retired)" message.
 * XX(NAME, number, message)
 */
#define DP_ERR_MAP(XX)                                                         \
    XX(OK, 0, "success")                                                       \
    XX(INVALID, 1, "invalid argument")                                         \
    XX(PROTOCOL, 2, "malformed message")                                       \
    XX(VERSION, 3, "unsupported protocol version")                             \
    XX(TOO_BIG, 4, "message or value over a configured limit")                 \
    XX(UNKNOWN_TYPE, 5, "unknown job type")                                    \
    XX(ARITY, 6, "wrong number of job arguments")                              \
    XX(TIMEOUT, 7, "time limit exceeded")                                      \
    XX(CANCELLED, 8, "cancelled")                                              \
    XX(WORKER_LOST, 9, "worker lost")                                          \
    XX(BROKER_LOST, 10, "broker connection lost")                              \
    XX(UNREACHABLE, 11, "broker unreachable")                                  \
    XX(NOMEM, 12, "out of memory")                                             \
    XX(IO, 13, "system I/O error")                                             \
    XX(RANGE, 14, "number out of range")                                       \
    XX(HTTP, 15, "HTTP error status")                                          \
    XX(NETWORK, 16, "network error")                                           \
    XX(UNKNOWN_PEER, 17, "unknown peer: say HELLO or READY first")             \
    XX(EOF, 18, "no more results")                                             \
    XX(LOST, 19, "job lost with its process")                                  \
    XX(REQUEUE, 20, "job handed back unstarted")                               \
    XX(UNKNOWN_ALGO, 21, "unknown algorithm")                                  \
    XX(LIMIT, 22, "over a configured limit")                                   \
    XX(TLS, 23, "TLS error")                                                   \
    XX(INTERNAL, 24, "internal error")                                         \
    XX(UNKNOWN_CMD, 25, "unknown command")                                     \
    XX(FAILED, 26, "job failed")

typedef enum {
#define DP_ERR_ENUM(name, num, msg) DP_ERR_##name = num,
    DP_ERR_MAP(DP_ERR_ENUM)
#undef DP_ERR_ENUM
        DP_ERR_COUNT_
} dp_err_t;

/* dp_strerror: the message of code `err` ("unknown error" for others). */
const char *dp_strerror(int err);
/* dp_errname: the symbolic name ("TIMEOUT") of `err`, or "UNKNOWN". */
const char *dp_errname(int err);

/* ---- values: job arguments and results (a msgpack value, in C) ---- */

typedef enum {
    DP_NIL,
    DP_BOOL,
    DP_INT,  /* signed; negative numbers decode here */
    DP_UINT, /* non-negative integers decode here */
    DP_FLOAT,
    DP_STR,   /* UTF-8 text, len bytes, NUL-terminated for convenience */
    DP_BIN,   /* raw bytes */
    DP_ARRAY, /* len items */
    DP_MAP    /* len pairs, stored as items[2k] = key, items[2k+1] = value */
} dp_type_t;

typedef struct dp_value {
    dp_type_t type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        struct {
            char *ptr;
            size_t len;
        } s; /* DP_STR, DP_BIN */
        struct {
            struct dp_value *items;
            size_t len;
        } a; /* DP_ARRAY, DP_MAP */
    } v;
} dp_value_t;

/* Constructors: return the value by copy; strings and bytes are copied into
 * new memory owned by the value (a failed allocation yields DP_NIL). */
dp_value_t dp_nil(void);
dp_value_t dp_bool(bool b);
dp_value_t dp_int(int64_t i);
dp_value_t dp_uint(uint64_t u);
dp_value_t dp_float(double f);
dp_value_t dp_str(const char *s);
dp_value_t dp_strn(const char *s, size_t len);
dp_value_t dp_bin(const void *p, size_t len);
/* dp_array/dp_dict: a DP_ARRAY of n, or DP_MAP of npairs, zeroed (DP_NIL)
 * slots to fill in. */
dp_value_t dp_array(size_t n);
dp_value_t dp_dict(size_t npairs);
/* dp_value_copy: deep copy of src into *dst; 0 or DP_ERR_NOMEM. */
int dp_value_copy(dp_value_t *dst, const dp_value_t *src);
/* dp_value_equal: a and b have the same type and contents, recursively
 * (floats compared bit for bit). */
bool dp_value_equal(const dp_value_t *a, const dp_value_t *b);
/* dp_value_clear: free what v owns, recursively, and make it DP_NIL. */
void dp_value_clear(dp_value_t *v);
/* dp_dict_get: the value under string key `key` in a DP_MAP, or NULL. */
const dp_value_t *dp_dict_get(const dp_value_t *map, const char *key);
/* dp_value_json: JSON text of v (bin as hex string); caller frees. NULL on
 * allocation failure. */
char *dp_value_json(const dp_value_t *v);

/* ---- results ---- */

typedef struct {
    size_t index;        /* input index within its map (0 for dp_submit) */
    uint64_t id;         /* job id, unique per broker */
    int error;           /* 0 = ok, else a DP_ERR_* code */
    char *message;       /* error text, NULL when ok */
    dp_value_t value;    /* the job's result when ok */
    char *worker;        /* worker name that ran it ("" if none) */
    int pid;             /* child pid that ran it (0 if none) */
    uint64_t elapsed_us; /* run time in the child */
    unsigned attempts;   /* dispatches it took (1 normally) */
} dp_result_t;

/* dp_result_free: release *r and set it NULL. */
void dp_result_free(dp_result_t **r);

/* ---- pools ---- */

typedef struct dp_pool dp_pool_t;

typedef struct {
    double connect_timeout; /* seconds to wait for the broker; 0 = 10 */
    int processes;          /* embedded pool: cpu children; 0 = cores,
                               < 0 = none (an io-only pool) */
    int io_slots;           /* embedded pool: concurrent downloads; 0 = 16 */
    const char *bin_dir;    /* embedded pool: where dpool-broker and
                               dpool-worker are; NULL = find them */
    const char *name;       /* client name shown in broker logs */
    bool insecure;          /* embedded pool: downloads skip TLS checks */
    const char *ca_file;    /* embedded pool: extra CA bundle (PEM) */
    const char *curve_key;  /* CURVE: our secret key file (`dpool keygen`);
                               with broker_key, or both NULL: plaintext */
    const char *broker_key; /* CURVE: the broker's public key file */
    const char *store_dir;  /* embedded pool: the worker writes download
                               bodies into this dir (--store-on-worker)
                               and results carry "path", not "body";
                               NULL = bodies come back */
    bool daemons;           /* embedded pool: a private dpool-broker and
                               dpool-worker over ipc:// (as
                               DPOOL_EMBED=daemons) instead of child
                               processes of this one (README, "Local and
                               remote pools") */
} dp_pool_opts_t;

/* dp_pool_open: connect to the broker at `endpoint` (e.g.
 * "tcp://127.0.0.1:5555"); NULL starts an embedded pool: a local one (jobs
 * run in child processes of this one, started by the pool's I/O thread,
 * killed and reaped by dp_pool_close), or with opts->daemons or
 * DPOOL_EMBED=daemons a private broker and worker over ipc:// in a temp
 * dir, stopped by dp_pool_close. opts may be NULL. Errors: DP_ERR_UNREACHABLE
 * (no answer within connect_timeout), DP_ERR_INVALID, DP_ERR_IO, DP_ERR_NOMEM.
 */
int dp_pool_open(const char *endpoint, const dp_pool_opts_t *opts,
                 dp_pool_t **out);
/* dp_pool_close: cancel what is still running, say BYE, stop an embedded
 * pool (no process or file left behind), free the pool. */
void dp_pool_close(dp_pool_t **pool);
/* dp_pool_endpoint: the broker endpoint in use (borrowed); NULL for a
 * local pool (it has none). */
const char *dp_pool_endpoint(const dp_pool_t *pool);
/* dp_pool_slots: cpu slots the broker reported at connect time (may be 0
 * before workers join). */
int dp_pool_slots(const dp_pool_t *pool);
/* dp_pool_interrupt: async-signal-safe (call it from a SIGINT handler):
 * the waiting dp_map_next / dp_future_wait returns DP_ERR_CANCELLED after
 * cancelling what is unfinished. */
void dp_pool_interrupt(dp_pool_t *pool);
/* dp_pool_status: broker counters as a DP_MAP (str -> uint), in *out. */
int dp_pool_status(dp_pool_t *pool, dp_value_t *out);

/* ---- single jobs: futures ---- */

typedef struct {
    double timeout; /* per-job time limit in seconds; 0 = type default */
    int retries;    /* re-dispatches after a lost worker; -1 = default 3 */
} dp_job_opts_t;

typedef struct dp_future dp_future_t;

/* dp_submit: queue one job of `type` with nargs arguments (copied). */
int dp_submit(dp_pool_t *pool, const char *type, const dp_value_t *args,
              size_t nargs, const dp_job_opts_t *opts, dp_future_t **out);
/* dp_future_wait: wait up to timeout seconds (< 0 = forever) for the
 * result. 0 = done, DP_ERR_TIMEOUT = not yet. With a time limit
 * (opts->timeout), when no result of the pool has come for that long plus
 * a margin (5 s) since the job was sent, the future completes with
 * DP_ERR_TIMEOUT made here and the job is cancelled. */
int dp_future_wait(dp_future_t *f, double timeout);
/* dp_future_result: the result once done (borrowed from f), else NULL. */
const dp_result_t *dp_future_result(const dp_future_t *f);
/* dp_future_cancel: ask the broker to cancel the job (queued jobs are
 * dropped, running ones killed); the future then completes with
 * DP_ERR_CANCELLED unless its result arrived first. */
int dp_future_cancel(dp_future_t *f);
/* dp_future_destroy: cancel if still pending, then free. */
void dp_future_destroy(dp_future_t **f);

/* ---- batches: map and as_completed ---- */

/* dp_input_fn: produce the next job's arguments into *args (a DP_ARRAY the
 * library takes ownership of). Return 1 = produced, 0 = end of input,
 * DP_INPUT_WAIT = nothing ready yet (dp_map_next sends what it has, gives
 * back results, and asks again once opts.input_fd is readable),
 * DP_INPUT_BAD = this input cannot become a job: *args is [code: uint,
 * message: str] and the input's result is that error (it takes its place
 * in the order, nothing is sent), or a negative number = input error (the
 * map stops with DP_ERR_INVALID). Called lazily: only as many inputs are
 * read as are in flight. */
typedef int (*dp_input_fn)(void *ctx, dp_value_t *args);
#define DP_INPUT_WAIT 2
#define DP_INPUT_BAD 3

/* dp_text_fn: produce the next job's one argument as text (the job's
 * arguments are [text], a str): *text, *len bytes, borrowed until the
 * next call. Returns as dp_input_fn; with DP_INPUT_BAD, *text is the
 * message of that input's error result and *code its code (a DP_ERR_*).
 * Nothing per input is allocated: the text goes straight into the
 * message to the broker. */
typedef int (*dp_text_fn)(void *ctx, const char **text, size_t *len, int *code);

typedef struct {
    bool unordered;      /* false: input order (imap); true: as_completed */
    size_t chunksize;    /* jobs per SUBMIT/dispatch; 0 = automatic */
    size_t max_inflight; /* inputs read ahead; 0 = automatic */
    bool fail_fast;      /* first error cancels the rest */
    dp_job_opts_t job;   /* per-job time limit and retries */
    int input_fd;        /* watched when the input says DP_INPUT_WAIT */
} dp_map_opts_t;

typedef struct dp_map dp_map_t;

/* dp_map: run `type` over the inputs from `in` (called from dp_map_next).
 * opts may be NULL. */
int dp_map(dp_pool_t *pool, const char *type, dp_input_fn in, void *in_ctx,
           const dp_map_opts_t *opts, dp_map_t **out);
/* dp_map_text: the same over text inputs from `in`, one string argument
 * each (dp_text_fn): what `dpool TYPE` does with its lines. */
int dp_map_text(dp_pool_t *pool, const char *type, dp_text_fn in, void *in_ctx,
                const dp_map_opts_t *opts, dp_map_t **out);
/* dp_map_array: the same over n argument arrays (each a DP_ARRAY, read as
 * the map goes: argv must stay valid until dp_map_destroy). */
int dp_map_array(dp_pool_t *pool, const char *type, const dp_value_t *argv,
                 size_t n, const dp_map_opts_t *opts, dp_map_t **out);
/* dp_map_next: the next result (input order, or completion order when
 * unordered) into *out, owned by the caller. Returns 0, DP_ERR_EOF when all
 * results were given, DP_ERR_BROKER_LOST (after one result per input, see
 * dp_map_next_wait), or DP_ERR_INVALID after an input error. With fail_fast,
 * after the first failed result the rest come back as DP_ERR_CANCELLED. */
int dp_map_next(dp_map_t *m, dp_result_t **out);
/* dp_map_next_wait: dp_map_next waiting at most timeout seconds (< 0 =
 * forever); DP_ERR_TIMEOUT when no result came in that time (call again).
 * Every input read gets exactly one result: after a lost broker, those
 * without one come back as DP_ERR_BROKER_LOST (and so do inputs read
 * later), then the call returns DP_ERR_BROKER_LOST. With a time limit
 * (opts.job.timeout), when no result has come for that long plus a
 * margin (5 s) while jobs are out, they come back as DP_ERR_TIMEOUT and
 * are cancelled: the caller never waits on a broker or worker that sits
 * on its jobs. */
int dp_map_next_wait(dp_map_t *m, dp_result_t **out, double timeout);
/* dp_map_next_view: dp_map_next_wait without a copy per result: *out
 * belongs to the map and stays valid until the next call on m (any
 * dp_map_next*, dp_map_destroy); do not free it. The caller may change
 * (*out)->value (the map frees whatever it holds then), nothing else.
 * For a caller that looks at each result once, as `dpool` prints them:
 * no allocation per result (a scalar value needs none). */
int dp_map_next_view(dp_map_t *m, dp_result_t **out, double timeout);
/* dp_map_cancel: cancel everything not yet finished; later results come
 * back as DP_ERR_CANCELLED. */
int dp_map_cancel(dp_map_t *m);
/* dp_map_stats: inputs read so far, results given, results failed. */
void dp_map_stats(const dp_map_t *m, size_t *submitted, size_t *done,
                  size_t *failed);
/* dp_map_destroy: cancel what is unfinished and free. */
void dp_map_destroy(dp_map_t **m);

#ifdef __cplusplus
}
#endif
/* ---- detached batches (PROTOCOL.md, "Detached batches") ----
 *
 * A detached batch runs on the broker whether or not anyone is connected;
 * its results are kept there until dp_batch_forget or until the broker's
 * --result-ttl has passed since its last result. Its id is a number > 0.
 * Each call below opens its own connection to the broker at `endpoint`
 * (opts as for dp_pool_open: connect_timeout, name, CURVE keys; may be
 * NULL). err (may be NULL) receives a readable reason on failure. */

typedef struct {
    uint64_t id;
    char name[64];               /* the submitting client's name */
    uint64_t created_ms, ttl_ms; /* unix ms; the broker's --result-ttl */
    uint64_t total, queued, running, done, failed; /* jobs */
    uint64_t readers; /* dp_batch_attach readers right now */
} dp_batch_info_t;

/* dp_batch_submit: a new detached batch of n jobs of `type`, job k with
 * the argument array argv[k] (a DP_ARRAY; borrowed). Returns once the
 * broker accepted every job (journaled first when it has --journal):
 * *id is the batch. On a refusal nothing of the batch stays (it is
 * forgotten). Holds the encoded jobs in memory while sending. Errors:
 * the broker's refusal code (LIMIT: --max-batches or a bound), UNREACHABLE,
 * BROKER_LOST, INVALID, NOMEM. */
int dp_batch_submit(const char *endpoint, const dp_pool_opts_t *opts,
                    const char *type, const dp_value_t *argv, size_t n,
                    uint64_t *id, char *err, size_t errlen);

/* dp_batch_list: the batches the caller may see (id 0) or batch id
 * alone; *rows is malloc'ed (caller frees), *n rows. INVALID: no such
 * batch (or another key's). */
int dp_batch_list(const char *endpoint, const dp_pool_opts_t *opts, uint64_t id,
                  dp_batch_info_t **rows, size_t *n, char *err, size_t errlen);

/* dp_batch_cancel: queued jobs of batch id end CANCELLED, running ones are
 * cancelled; every job still gets one result. info (may be NULL): its row
 * right after. INVALID: no such batch. */
int dp_batch_cancel(const char *endpoint, const dp_pool_opts_t *opts,
                    uint64_t id, dp_batch_info_t *info, char *err,
                    size_t errlen);

/* dp_batch_forget: free batch id and its results (running jobs are
 * cancelled; readers get INVALID). info: its last row. */
int dp_batch_forget(const char *endpoint, const dp_pool_opts_t *opts,
                    uint64_t id, dp_batch_info_t *info, char *err,
                    size_t errlen);

typedef struct dp_batch dp_batch_t;

/* dp_batch_attach: read batch id's results. Readers never consume: any
 * number of them (up to the broker's --max-batch-readers) may read a
 * batch, one after the other or at once. An unknown batch shows as
 * DP_ERR_INVALID from the first dp_batch_next. *out is the caller's (see
 * dp_batch_close). */
int dp_batch_attach(const char *endpoint, const dp_pool_opts_t *opts,
                    uint64_t id, dp_batch_t **out, char *err, size_t errlen);

/* dp_batch_next: the next result, in the order they reach the reader
 * (r->index is the input index), each input once; *out is the caller's
 * (dp_result_free). 0 with *out NULL: every result was given. Waits at
 * most timeout seconds (< 0: as long as it takes): DP_ERR_TIMEOUT. A lost
 * broker (restarted, say) is connected to again and the batch attached
 * again within the connect timeout (results had already are dropped);
 * DP_ERR_UNREACHABLE when it does not come back. Other errors: INVALID
 * (no such batch, or it was forgotten), PROTOCOL; dp_batch_error says
 * why. */
int dp_batch_next(dp_batch_t *b, dp_result_t **out, double timeout);

/* dp_batch_total: the batch's job count (known after the first
 * dp_batch_next; 0 before). */
uint64_t dp_batch_total(const dp_batch_t *b);

/* dp_batch_error: the broker's message for the last error (borrowed until
 * the next call on b). */
const char *dp_batch_error(const dp_batch_t *b);

/* dp_batch_close: detach, close the connection, free *b, set it NULL;
 * NULL-safe. */
void dp_batch_close(dp_batch_t **b);

#endif /* DPOOL_H */
