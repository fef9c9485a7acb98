/*
 * cli_opts.c - the options of `dpool`: one table, each row tagged with the
 * kinds of command that use it (DP_T_*), and one row per command saying
 * which tags it takes. An option given on the command line to a command
 * that does not use it is a usage error (exit 2); the environment may
 * hold options for every command, so DPOOL_* variables are not judged.
 * A row without tags (a later addition) applies to every command.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void dp_cli_defaults(dp_cli_t *c)
{
    memset(c, 0, sizeof *c);
    c->retries = -1;
    c->connect_timeout = 10.0;
    c->format = "text";
    c->output_dir = ".";
    c->progress = isatty(STDERR_FILENO);
    c->bench_jobs = 20000;
    c->bench_rounds = 2000;
    c->bench_repeat = 1;
    c->bench_type = "echo";
}

/* Which tags each command takes. `map` adds the tags of its TYPE (see
 * dp_cli_check_command). */
static const struct {
    const char *cmd;
    unsigned tags;
} s_cmds[] = {
    {"map", DP_T_RUN | DP_T_CONN},
    {"factor", DP_T_RUN | DP_T_CONN},
    {"isprime", DP_T_RUN | DP_T_CONN},
    {"hash", DP_T_RUN | DP_T_CONN | DP_T_HASH},
    {"download", DP_T_RUN | DP_T_CONN | DP_T_DL},
    {"bench", DP_T_BENCH | DP_T_CONN},
    {"status", DP_T_STATUS | DP_T_CONN},
    {"types", DP_T_TYPES},
};

bool dp_cli_known(const char *cmd)
{
    for (size_t k = 0; k < sizeof s_cmds / sizeof s_cmds[0]; k++)
        if (strcmp(cmd, s_cmds[k].cmd) == 0)
            return true;
    return false;
}

int dp_cli_check_command(const dp_cli_t *c, const char *cmd, const char *type,
                         const dp_opt_t *opts, const bool *seen, char *err,
                         size_t errlen)
{
    unsigned tags = 0;
    for (size_t k = 0; k < sizeof s_cmds / sizeof s_cmds[0]; k++)
        if (strcmp(cmd, s_cmds[k].cmd) == 0)
            tags = s_cmds[k].tags;
    if (type && strcmp(type, "hash") == 0)
        tags |= DP_T_HASH;
    else if (type && strcmp(type, "download") == 0)
        tags |= DP_T_DL;
    for (size_t k = 0; opts[k].name; k++) {
        if (!seen[k] || !opts[k].tags)
            continue;
        if (!(opts[k].tags & ~DP_T_EMBED & tags)) {
            snprintf(err, errlen, "--%s does not apply to '%s'%s%s",
                     opts[k].name, cmd, type ? " " : "", type ? type : "");
            return DP_ERR_INVALID;
        }
        if ((opts[k].tags & DP_T_EMBED) && c->broker) {
            snprintf(err, errlen,
                     "--%s applies to the embedded pool only, not with "
                     "--broker (workers have their own options)",
                     opts[k].name);
            return DP_ERR_INVALID;
        }
    }
    return 0;
}

void dp_cli_options(dp_cli_t *c, dp_opt_t *o, bool *help, bool *version,
                    bool *list)
{
    const dp_opt_t rows[] = {
        {"broker", 'b', "DPOOL_BROKER", DP_OPT_STR, &c->broker, 0, 0,
         "ENDPOINT", "broker to use (default: an embedded local pool)",
         DP_T_CONN},
        {"unordered", 'u', "DPOOL_UNORDERED", DP_OPT_FLAG, &c->unordered, 0, 0,
         NULL, "results as they complete (as_completed), not in input order",
         DP_T_RUN},
        {"chunksize", 0, "DPOOL_CHUNKSIZE", DP_OPT_LONG, &c->chunksize, 1,
         1000000, "N", "jobs per dispatch (default: automatic)", DP_T_RUN},
        {"timeout", 't', "DPOOL_TIMEOUT", DP_OPT_DOUBLE, &c->timeout, 0, 0,
         "SECONDS", "per-job time limit (fractions allowed; default: per type)",
         DP_T_RUN | DP_T_BENCH},
        {"retries", 0, "DPOOL_RETRIES", DP_OPT_LONG, &c->retries, 0, 100, "N",
         "re-dispatches when a worker dies mid-job (3)", DP_T_RUN},
        {"fail-fast", 0, "DPOOL_FAIL_FAST", DP_OPT_FLAG, &c->fail_fast, 0, 0,
         NULL, "the first failed job cancels the rest", DP_T_RUN},
        {"format", 'f', "DPOOL_FORMAT", DP_OPT_STR, &c->format, 0, 0,
         "text|json", "output: text, or JSON Lines",
         DP_T_RUN | DP_T_BENCH | DP_T_STATUS | DP_T_TYPES},
        {"connect-timeout", 0, "DPOOL_CONNECT_TIMEOUT", DP_OPT_DOUBLE,
         &c->connect_timeout, 0, 0, "SECONDS",
         "give up on an unreachable broker after this (10)", DP_T_CONN},
        {"max-inflight", 0, "DPOOL_MAX_INFLIGHT", DP_OPT_LONG, &c->max_inflight,
         1, 10000000, "N",
         "inputs read ahead of the results (4096; download: 1024)",
         DP_T_RUN | DP_T_BENCH},
        {"processes", 'p', "DPOOL_PROCESSES", DP_OPT_LONG, &c->processes, 1,
         4096, "N", "embedded pool: worker processes (default: cores)",
         DP_T_RUN | DP_T_BENCH | DP_T_EMBED},
        {"io-slots", 0, "DPOOL_IO_SLOTS", DP_OPT_LONG, &c->io_slots, 1, 4096,
         "N", "embedded pool: downloads at once (16)",
         DP_T_RUN | DP_T_BENCH | DP_T_EMBED},
        {"progress", 0, "DPOOL_PROGRESS", DP_OPT_FLAG, &c->progress, 0, 0, NULL,
         "progress line on stderr (default: when it is a terminal)", DP_T_RUN},
        {"joblog", 0, "DPOOL_JOBLOG", DP_OPT_STR, &c->joblog, 0, 0, "FILE",
         "append a line per finished job to FILE (see --resume)", DP_T_RUN},
        {"resume", 0, "DPOOL_RESUME", DP_OPT_FLAG, &c->resume, 0, 0, NULL,
         "skip inputs the --joblog has a line for", DP_T_RUN},
        {"resume-failed", 0, "DPOOL_RESUME_FAILED", DP_OPT_FLAG,
         &c->resume_failed, 0, 0, NULL,
         "skip inputs the --joblog has as ok; run failed ones again", DP_T_RUN},
        {"algo", 0, "DPOOL_HASH_ALGO", DP_OPT_STR, &c->algo, 0, 0, "NAME",
         "hash: digest algorithm (sha256; see --list)", DP_T_HASH},
        {"pbkdf2", 0, "DPOOL_PBKDF2", DP_OPT_LONG, &c->pbkdf2, 1, LONG_MAX,
         "ITERATIONS", "hash: PBKDF2-HMAC with this many iterations",
         DP_T_HASH},
        {"salt", 0, "DPOOL_SALT", DP_OPT_STR, &c->salt, 0, 0, "SALT",
         "hash: PBKDF2 salt", DP_T_HASH},
        {"dklen", 0, "DPOOL_DKLEN", DP_OPT_LONG, &c->dklen, 1, LONG_MAX,
         "BYTES", "hash: PBKDF2 key length (default: the digest size)",
         DP_T_HASH},
        {"arg-file", 'a', "DPOOL_ARG_FILE", DP_OPT_STR, &c->arg_file, 0, 0,
         "FILE", "inputs from FILE, one per line (- = stdin)", DP_T_RUN},
        {"list", 0, NULL, DP_OPT_FLAG, list, 0, 0, NULL,
         "hash: list the algorithms", DP_T_HASH},
        {"insecure", 0, "DPOOL_INSECURE", DP_OPT_FLAG, &c->insecure, 0, 0, NULL,
         "download, embedded pool: do not verify TLS certificates (unsafe)",
         DP_T_DL | DP_T_EMBED},
        {"ca-file", 0, "DPOOL_CA_FILE", DP_OPT_STR, &c->ca_file, 0, 0, "FILE",
         "download, embedded pool: extra CA certificates (PEM)",
         DP_T_DL | DP_T_EMBED},
        {"curve-key", 0, "DPOOL_CURVE_KEY", DP_OPT_STR, &c->curve_key, 0, 0,
         "FILE", "CURVE: your secret key file (dpool keygen NAME)", DP_T_CONN},
        {"broker-key", 0, "DPOOL_BROKER_KEY", DP_OPT_STR, &c->broker_key, 0, 0,
         "FILE", "CURVE: the broker's public key file", DP_T_CONN},
        {"output-dir", 'o', "DPOOL_OUTPUT_DIR", DP_OPT_STR, &c->output_dir, 0,
         0, "DIR", "download: where bodies are written (.)", DP_T_DL},
        {"jobs", 'n', "DPOOL_BENCH_JOBS", DP_OPT_LONG, &c->bench_jobs, 1,
         100000000, "N", "bench: jobs in each throughput run (20000)",
         DP_T_BENCH},
        {"rounds", 0, "DPOOL_BENCH_ROUNDS", DP_OPT_LONG, &c->bench_rounds, 1,
         10000000, "N",
         "bench: sequential round trips in the latency run (2000)", DP_T_BENCH},
        {"repeat", 0, "DPOOL_BENCH_REPEAT", DP_OPT_LONG, &c->bench_repeat, 1,
         100, "N",
         "bench: the throughput runs N times in turn, medians shown (1)",
         DP_T_BENCH},
        {"type", 0, "DPOOL_BENCH_TYPE", DP_OPT_STR, &c->bench_type, 0, 0,
         "TYPE", "bench: job type of the throughput runs (echo)", DP_T_BENCH},
        {"input", 'i', "DPOOL_BENCH_INPUT", DP_OPT_STR, &c->bench_file, 0, 0,
         "FILE", "bench: also run --type over FILE's lines", DP_T_BENCH},
        {"version", 'V', NULL, DP_OPT_FLAG, version, 0, 0, NULL,
         "print the version"},
        {"help", 'h', NULL, DP_OPT_HELP, help, 0, 0, NULL, "this help"},
        {NULL, 0, NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    memcpy(o, rows, sizeof rows);
}

int dp_cli_finish_options(dp_cli_t *c, char *err, size_t errlen)
{
    if (strcmp(c->format, "json") == 0) {
        c->json = true;
    } else if (strcmp(c->format, "text") != 0) {
        snprintf(err, errlen, "--format takes text or json, not '%s'",
                 c->format);
        return 1;
    }
    if ((c->resume || c->resume_failed) && !c->joblog) {
        snprintf(err, errlen, "--resume and --resume-failed need --joblog");
        return 1;
    }
    if ((c->salt != NULL) != (c->pbkdf2 != 0)) {
        snprintf(err, errlen,
                 "--pbkdf2 ITERATIONS and --salt SALT go "
                 "together");
        return 1;
    }
    if (c->dklen && !c->pbkdf2 &&
        !(c->algo && strncmp(c->algo, "shake", 5) == 0)) {
        snprintf(err, errlen, "--dklen needs --pbkdf2 (or a shake algo)");
        return 1;
    }
    return 0;
}
