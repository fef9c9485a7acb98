/*
 * cli_joblog.h - `dpool --joblog FILE`, `--resume`, `--resume-failed`:
 * one line per finished job, appended as each result is printed, and the
 * reading of that file that lets a later run skip what is done (GNU
 * parallel's options of the same names). Client side only: it works with
 * or without a broker journal.
 *
 * The file: a header line, then one tab-separated line per finished job.
 *
 *   Index<TAB>Status<TAB>Error<TAB>Attempts<TAB>Worker<TAB>Time<TAB>Elapsed<TAB>Input
 *   0       ok      -       1       w0      1764680000.123  0.012345 12
 *   1       failed  INVALID 1       w0      1764680000.130  0.000020 -5
 *
 *   Index    the input's position among all inputs of the command (its
 *            arguments, or stdin's non-blank lines), from 0: JSON's "index"
 *   Status   ok | failed
 *   Error    the error's name (TIMEOUT, INVALID, WORKER_LOST...) or -
 *   Attempts dispatches it took
 *   Worker   the worker that answered, or -
 *   Time     when the result arrived, Unix seconds
 *   Elapsed  run time in the worker's child, seconds (to the µs)
 *   Input    the input text, with \ tab newline CR written \\ \t \n \r
 *
 * Lines are appended with one write(2) each, after the job's output line
 * is printed and flushed: a run killed between the two prints that output
 * again on --resume (at least once), never loses it. A job that did not
 * run to an outcome (CANCELLED by Ctrl-C or --fail-fast, BROKER_LOST,
 * UNREACHABLE) gets no line: --resume runs it.
 *
 * --resume skips every input the joblog has a line for (ok or failed);
 * --resume-failed skips only the ok ones and runs the failed ones again;
 * inputs without a line run in both. Several runs append to one file; for
 * an index, the last line wins. A line counts only if its Input is the
 * same as this run's input at that index (compared by a 64-bit hash): if
 * the input file changed, the changed inputs run again (and a warning
 * says how many), so a stale joblog never makes dpool skip work it has
 * not done. A file that does not start with the header is refused.
 *
 * Ownership: dp_joblog_open gives the caller the joblog; dp_joblog_close
 * frees it and clears the pointer. Strings passed in are borrowed.
 */
#ifndef DP_CLI_JOBLOG_H
#define DP_CLI_JOBLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dpool.h"

#define DP_JOBLOG_HEADER                                                       \
    "Index\tStatus\tError\tAttempts\tWorker\tTime\tElapsed\tInput"
#define DP_JOBLOG_FIELDS 8
#define DP_JOBLOG_INDEX_MAX 1000000000000ull /* larger: not a line of ours */

typedef enum {
    DP_JOBLOG_APPEND,       /* --joblog: write only */
    DP_JOBLOG_RESUME,       /* --resume: skip what has a line */
    DP_JOBLOG_RESUME_FAILED /* --resume-failed: skip what has an ok line */
} dp_joblog_mode_t;

typedef struct dp_joblog dp_joblog_t;

/* dp_joblog_open: open path for appending (created 0644, header written
 * when empty); with a resume mode, read it first. 0, or DP_ERR_IO /
 * DP_ERR_INVALID (not a joblog) / DP_ERR_NOMEM with err filled. */
int dp_joblog_open(const char *path, dp_joblog_mode_t mode, dp_joblog_t **out,
                   char *err, size_t errlen);
/* dp_joblog_close: NULL-safe; clears *jlp. Prints the --resume summary
 * (skipped, changed) on stderr when there is something to say. */
void dp_joblog_close(dp_joblog_t **jlp);

/* dp_joblog_skip: input number index, whose text is input: true when the
 * joblog says this run must not run it. */
bool dp_joblog_skip(dp_joblog_t *jl, size_t index, const char *input);
/* dp_joblog_write: append the line of a finished job (nothing for a job
 * that did not run to an outcome, above). now_unix_ms: the wall clock.
 * 0 or DP_ERR_IO (said once on stderr; the batch goes on). */
int dp_joblog_write(dp_joblog_t *jl, size_t index, const char *input,
                    const dp_result_t *r, uint64_t now_unix_ms);
/* dp_joblog_now_ms: the wall clock, Unix ms (for dp_joblog_write). */
uint64_t dp_joblog_now_ms(void);
/* dp_joblog_counts: inputs skipped so far, and lines ignored because
 * their input changed. */
void dp_joblog_counts(const dp_joblog_t *jl, size_t *skipped, size_t *changed);

/* dp_joblog_escape: s with \ tab newline CR escaped, into a new string
 * (caller frees); NULL on allocation failure. */
char *dp_joblog_escape(const char *s);
/* dp_joblog_unescape: undo dp_joblog_escape in place (an unknown escape
 * keeps its character). Returns s. */
char *dp_joblog_unescape(char *s);
/* dp_joblog_logged: whether a result gets a line (it ran to an outcome). */
bool dp_joblog_logged(int error);

#endif
