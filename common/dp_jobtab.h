/*
 * dp_jobtab.h - the job table's data: every job type dpool knows, one row
 * each (name, class, arity, default time limit, usage line).
 *
 * The broker checks a job's type and arity against this table before
 * queueing it, the `dpool` command takes default time limits and `dpool
 * types` from it, and the worker checks again before running a job. The
 * rows hold no code: the binding from a name to its kernel is the worker's
 * (worker/jobs/table.c, dp_job_kernel in dp_jobs.h), so the broker, the
 * `dpool` command and libdpool link no kernel.
 *
 * Ownership: the table and every string in it are static and read-only;
 * returned pointers stay valid for the life of the program.
 */
#ifndef DP_JOBTAB_H
#define DP_JOBTAB_H

#include <stddef.h>
#include <stdint.h>

/* Job classes: cpu jobs run one per child process; io jobs run many at once
 * inside the worker's io child (curl_multi). Wire values, frozen. */
typedef enum { DP_CLASS_CPU = 0, DP_CLASS_IO = 1, DP_CLASS_COUNT } dp_class_t;

/* One row of the table. */
typedef struct {
    const char *name;  /* wire name, matched exactly ("factor") */
    dp_class_t cls;    /* where it runs: cpu child or io child */
    unsigned min_args; /* arity range, checked by broker and worker */
    unsigned max_args;
    uint32_t timeout_ms; /* default time limit when the job names none */
    const char *usage;   /* one line for `dpool types` and errors */
} dp_jobtype_t;

/* dp_jobtab_find: the row named exactly name[0..len) (name need not be
 * NUL-terminated), or NULL. */
const dp_jobtype_t *dp_jobtab_find(const char *name, size_t len);
/* dp_jobtab_check: a job of type type[0..type_len) with nargs arguments
 * and time limit timeout_ms (0 = its type's) against the table, as the
 * broker and a local pool (client/dp_local.c) take jobs: 0 with *row and
 * *limit_ms (the resolved limit) set, or UNKNOWN_TYPE, ARITY, or INVALID
 * (no limit at all) with msg (len bytes) saying why. */
int dp_jobtab_check(const char *type, size_t type_len, uint32_t nargs,
                    uint32_t timeout_ms, const dp_jobtype_t **row,
                    uint32_t *limit_ms, char *msg, size_t len);
/* dp_jobtab_all: the whole table; *n receives its row count. */
const dp_jobtype_t *dp_jobtab_all(size_t *n);
/* dp_jobtab_class_name: "cpu" or "io" (for logs and `dpool types`). */
const char *dp_jobtab_class_name(dp_class_t cls);

#endif /* DP_JOBTAB_H */
