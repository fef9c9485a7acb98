/*
 * cli.h - the `dpool` command's parts: options (cli_opts.c), running a
 * batch and printing it (cli_map.c), the benchmark (cli_bench.c).
 */
#ifndef DP_CLI_H
#define DP_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "dp_opt.h"
#include "dpool.h"

#define DP_EXIT_OK 0
#define DP_EXIT_FAILED 1
#define DP_EXIT_USAGE 2
#define DP_EXIT_UNREACHABLE 3
#define DP_EXIT_INTERRUPTED 130
#define DP_CLI_MAX_OPTS 40
#define DP_PROGRESS_MS 200        /* progress line refresh */
#define DP_PROGRESS_AFTER_MS 1000 /* batches shorter than this show none */
#define DP_MAX_INFLIGHT_CLI 1024  /* inputs read ahead of the output */

typedef struct {
    const char *broker; /* NULL = embedded */
    bool unordered, fail_fast, json;
    long chunksize, retries, max_inflight, processes, io_slots;
    double timeout, connect_timeout;
    const char *format;
    bool progress; /* default: stderr is a terminal */
    const char *joblog;
    bool resume, resume_failed; /* cli_joblog.h */
    /* hash */
    const char *algo, *salt;
    long pbkdf2, dklen;
    /* download */
    const char *output_dir;
    bool insecure;
    const char *ca_file;
    /* bench */
    long bench_jobs, bench_rounds;
    const char *bench_type, *bench_file;
    dp_pool_t *pool;
} dp_cli_t;

void dp_cli_defaults(dp_cli_t *c);
/* dp_cli_options: the option table (rows point into c). */
void dp_cli_options(dp_cli_t *c, dp_opt_t *opts, bool *help, bool *version,
                    bool *list);
/* dp_cli_finish_options: check combinations; 0 or DP_ERR_INVALID + err. */
int dp_cli_finish_options(dp_cli_t *c, char *err, size_t errlen);
/* dp_cli_map: run job type over args (or stdin lines); print; exit code. */
int dp_cli_map(dp_cli_t *c, const char *type, char **args, int nargs);
/* dp_cli_bench: `dpool bench`; exit code. */
int dp_cli_bench(dp_cli_t *c, char **args, int nargs);

#endif
