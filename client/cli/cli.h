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
#define DP_EXIT_WAITED 124 /* results --wait passed first (timeout(1)) */
#define DP_EXIT_INTERRUPTED 130
#define DP_CLI_MAX_OPTS 40
#define DP_PROGRESS_MS 200        /* progress line refresh */
#define DP_PROGRESS_AFTER_MS 1000 /* batches shorter than this show none */
/* inputs read ahead of the output: 4096 keeps both children fed with
 * full adaptive chunks (256 jobs) when jobs take microseconds (1024 left
 * them idle between chunks: `dpool isprime` < 1M lines 1.10-1.28 s, with
 * 4096 0.85-0.89 s); downloads keep 1024, their results may hold bodies */
#define DP_MAX_INFLIGHT_CLI 4096
#define DP_MAX_INFLIGHT_CLI_IO 1024

/* Option tags (dp_opt_t.tags): the kinds of command an option serves. */
#define DP_T_RUN (1u << 0)    /* commands that run jobs: map, factor, ... */
#define DP_T_CONN (1u << 1)   /* commands that talk to a broker */
#define DP_T_EMBED (1u << 2)  /* a modifier: refused with --broker */
#define DP_T_HASH (1u << 3)   /* hash jobs */
#define DP_T_DL (1u << 4)     /* download jobs */
#define DP_T_BENCH (1u << 5)  /* bench */
#define DP_T_STATUS (1u << 6) /* status */
#define DP_T_TYPES (1u << 7)  /* types */

typedef struct {
    const char *broker; /* NULL = embedded */
    bool unordered, fail_fast, json;
    long chunksize, retries, max_inflight, processes, io_slots;
    double timeout, connect_timeout;
    const char *format;
    const char *arg_file;       /* -a: inputs from this file (- = stdin) */
    bool progress;              /* default: stderr is a terminal */
    const char *joblog;         /* cli_joblog.h */
    bool resume, resume_failed; /* cli_joblog.h */
    /* hash */
    const char *algo, *salt;
    long pbkdf2, dklen;
    /* download */
    const char *output_dir;
    bool insecure;
    const char *ca_file;
    const char *curve_key;  /* CURVE secret key file */
    const char *broker_key; /* the broker's public key file */
    /* bench */
    long bench_jobs, bench_rounds, bench_repeat;
    const char *bench_type, *bench_file;
    dp_pool_t *pool;
} dp_cli_t;

void dp_cli_defaults(dp_cli_t *c);
/* dp_cli_options: the option table (rows point into c). */
void dp_cli_options(dp_cli_t *c, dp_opt_t *opts, bool *help, bool *version,
                    bool *list);
/* dp_cli_known: cmd is one of the commands. */
bool dp_cli_known(const char *cmd);
/* dp_cli_check_command: refuse options given on the command line (seen[k]
 * for row k) that cmd (and for map, its job type) does not use; 0 or
 * DP_ERR_INVALID with a message in err. */
int dp_cli_check_command(const dp_cli_t *c, const char *cmd, const char *type,
                         const dp_opt_t *opts, const bool *seen, char *err,
                         size_t errlen);
/* dp_cli_finish_options: check combinations; 0 or DP_ERR_INVALID + err. */
int dp_cli_finish_options(dp_cli_t *c, char *err, size_t errlen);
/* dp_cli_map: run job type over args (or stdin lines); print; exit code. */
int dp_cli_map(dp_cli_t *c, const char *type, char **args, int nargs);
/* dp_cli_bench: `dpool bench`; exit code. */
int dp_cli_bench(dp_cli_t *c, char **args, int nargs);

#endif
