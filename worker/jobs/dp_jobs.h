/*
 * dp_jobs.h - the job table: every job type dpool knows, one row each, and
 * the kernel signature.
 *
 * Kernels are pure functions of their arguments: no globals, no ZeroMQ, no
 * output but *out and err. The broker checks a job's type and arity against
 * this table before queueing it; the worker checks again before running it;
 * the kernel validates the argument values themselves.
 *
 * Ownership: args are borrowed for the call. On success the kernel stores a
 * value it allocated in *out (the caller frees it with dp_value_clear) and
 * returns 0. On failure it returns a DP_ERR_* code, leaves *out DP_NIL and
 * writes a one-line, human-readable reason into err (NUL-terminated, at most
 * errlen bytes).
 */
#ifndef DP_JOBS_H
#define DP_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "dpool.h"

/* Job classes: cpu jobs run one per child process; io jobs run many at once
 * inside the worker's io child (curl_multi). Wire values, frozen. */
typedef enum { DP_CLASS_CPU = 0, DP_CLASS_IO = 1, DP_CLASS_COUNT } dp_class_t;

/* Limits a worker applies to kernels (configured on the worker). */
typedef struct {
    uint64_t hash_max_iterations; /* PBKDF2 iteration ceiling */
    uint64_t hash_max_dklen;      /* PBKDF2 derived key ceiling, bytes */
    uint64_t download_max_bytes;  /* body size ceiling */
} dp_job_limits_t;

#define DP_HASH_MAX_ITERATIONS_DEFAULT 100000000ULL
#define DP_HASH_MAX_DKLEN_DEFAULT 1048576ULL
#define DP_DOWNLOAD_MAX_BYTES_DEFAULT (256ULL * 1024 * 1024)

/* What a kernel may consult while running. */
typedef struct {
    uint64_t deadline_us;          /* dp_now_us() past which to give up with
                                      DP_ERR_TIMEOUT; 0 = no deadline */
    const dp_job_limits_t *limits; /* never NULL */
} dp_job_ctx_t;

typedef int (*dp_job_fn)(const dp_job_ctx_t *ctx, const dp_value_t *args,
                         size_t nargs, dp_value_t *out, char *err,
                         size_t errlen);

typedef struct {
    const char *name;  /* wire name, matched exactly ("factor") */
    dp_class_t cls;    /* where it runs: cpu child or io child */
    unsigned min_args; /* arity range, checked by broker and worker */
    unsigned max_args;
    uint32_t timeout_ms; /* default time limit when the job names none */
    dp_job_fn run;       /* the kernel; NULL for io jobs, which the io child
                            runs with its own engine */
    const char *usage;   /* one line for `dpool types` and errors */
} dp_jobtype_t;

/* dp_jobtype_find: the row named exactly name[0..len), or NULL. */
const dp_jobtype_t *dp_jobtype_find(const char *name, size_t len);
/* dp_jobtype_all: the table; *n receives its row count. */
const dp_jobtype_t *dp_jobtype_all(size_t *n);

/* The kernels (one file each in worker/jobs/). */
int dp_job_factor(const dp_job_ctx_t *, const dp_value_t *, size_t,
                  dp_value_t *, char *, size_t);
int dp_job_isprime(const dp_job_ctx_t *, const dp_value_t *, size_t,
                   dp_value_t *, char *, size_t);
int dp_job_hash(const dp_job_ctx_t *, const dp_value_t *, size_t, dp_value_t *,
                char *, size_t);
int dp_job_sleep(const dp_job_ctx_t *, const dp_value_t *, size_t, dp_value_t *,
                 char *, size_t);
int dp_job_echo(const dp_job_ctx_t *, const dp_value_t *, size_t, dp_value_t *,
                char *, size_t);

/* dp_job_arg_uint64: read a non-negative integer argument given as a
 * msgpack integer or decimal text into *out. DP_ERR_INVALID for non-numbers
 * and negatives, DP_ERR_RANGE above 2^64-1; err says which. */
int dp_job_arg_uint64(const dp_value_t *arg, uint64_t *out, char *err,
                      size_t errlen);

#endif /* DP_JOBS_H */
