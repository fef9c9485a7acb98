/*
 * dp_jobs.h - the kernels and their binding to the job table.
 *
 * The table's data (name, class, arity, default time limit, usage) lives
 * in common/dp_jobtab.h, so the broker and the `dpool` command can check
 * jobs without linking any kernel. This header adds what only the worker
 * needs: the kernel signature, the limits and context a kernel sees, and
 * dp_job_kernel, which binds a row to its kernel (worker/jobs/table.c).
 *
 * Kernels are pure functions of their arguments: no globals, no ZeroMQ, no
 * output but *out and err. The broker checks a job's type and arity against
 * the table before queueing it; the worker checks again before running it;
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

#include "dp_jobtab.h"
#include "dpool.h"

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

/* dp_job_kernel: the kernel that runs rows of type t (borrowed), or NULL
 * when this worker has none for it: io jobs (the io child runs them with
 * its own engine) and any name the binding does not list. */
dp_job_fn dp_job_kernel(const dp_jobtype_t *t);

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
