/*
 * main.c - `dpool`, the command line client, built on libdpool (dpool.h).
 *
 *   dpool [OPTIONS] COMMAND [ARG...]      (options before or after COMMAND)
 * Exit status: 0 all jobs ok, 1 some failed, 2 usage, 3 broker unreachable
 * or lost, 130 interrupted, 141 output closed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_batch.h"
#include "cli_keygen.h"
#include "dp_hash.h"
#include "dp_jobtab.h"
#include "dp_log.h"

static dp_pool_t *s_pool;

static void s_on_sigint(int sig)
{
    (void)sig;
    if (s_pool)
        dp_pool_interrupt(s_pool);
    else
        _exit(DP_EXIT_INTERRUPTED);
}

static void s_usage(FILE *f, const dp_opt_t *opts)
{
    fprintf(
        f, "usage: dpool [OPTIONS] COMMAND [ARG...]\n"
           "Run jobs on a dpool broker, or on an embedded local pool when no\n"
           "broker is given.\n\n"
           "commands:\n"
           "  map TYPE [ARG...]     run job TYPE once per ARG (or stdin line)\n"
           "  factor N...           prime factors, like coreutils factor\n"
           "  isprime N...          primality\n"
           "  hash FILE...          digest of each file, - = stdin (--algo)\n"
           "  download URL...       fetch URLs into --output-dir\n"
           "  bench                 throughput and latency benchmark\n"
           "  status                broker counters and workers (--broker)\n"
           "  types                 the job types\n"
           "  keygen [--out DIR] NAME...  CURVE key pairs\n"
           "  submit TYPE [ARG...]  a detached batch; prints its id "
           "(--broker)\n"
           "  results ID            its results (again and again)\n"
           "  batches | cancel ID | forget ID   detached batches\n"
           "Without ARGs, inputs are stdin's lines (or --arg-file's); blank\n"
           "lines are skipped; factor takes several numbers on a line.\n\n"
           "options:\n");
    dp_opt_help(f, opts);
    fprintf(f, "\nexit status: 0 all ok, 1 some jobs or inputs failed, "
               "2 usage, 3 broker\nunreachable or lost, 130 interrupted, 141 "
               "output closed (e.g. | head)\n");
}

static void s_json_str(const char *s)
{
    dp_value_t v = dp_str(s);
    char *j = dp_value_json(&v);
    fputs(j ? j : "\"\"", stdout);
    free(j);
    dp_value_clear(&v);
}

/* s_types: the job table, one line per type (JSON Lines with --format
 * json: name, class, timeout_s, min_args, max_args, usage). */
static int s_types(const dp_cli_t *c)
{
    size_t n;
    const dp_jobtype_t *t = dp_jobtab_all(&n);
    for (size_t k = 0; k < n; k++) {
        const char *cls = dp_jobtab_class_name(t[k].cls);
        if (!c->json) {
            printf("%-9s %-3s %6.0fs  %s\n", t[k].name, cls,
                   t[k].timeout_ms / 1000.0, t[k].usage);
            continue;
        }
        printf("{\"name\":");
        s_json_str(t[k].name);
        printf(",\"class\":\"%s\",\"timeout_s\":%g,\"min_args\":%u,"
               "\"max_args\":%u,\"usage\":",
               cls, t[k].timeout_ms / 1000.0, t[k].min_args, t[k].max_args);
        s_json_str(t[k].usage);
        printf("}\n");
    }
    return 0;
}

static unsigned long long s_uint(const dp_value_t *map, const char *key)
{
    const dp_value_t *v = dp_dict_get(map, key);
    return v && v->type == DP_UINT ? (unsigned long long)v->v.u : 0;
}

/* s_safe_name: a worker's name for a terminal: control characters as '?',
 * cut to fit len. */
static void s_safe_name(const char *s, char *out, size_t len)
{
    size_t k = 0;
    for (; s[k] && k + 1 < len; k++)
        out[k] = (unsigned char)s[k] < 0x20 || s[k] == 0x7f ? '?' : s[k];
    out[k] = '\0';
}

/* s_status_workers: the broker's list of workers (when it sends one), one
 * line each: name, pid, cpu and io slots, running, done, last seen. Each
 * is a map {name: str, pid, cpu_slots, io_slots, running, done,
 * last_seen_ms: uint}; a missing field shows as 0. */
static void s_status_workers(const dp_value_t *ws)
{
    printf("\n%-20s %8s %5s %5s %8s %10s %10s\n", "worker", "pid", "cpu", "io",
           "running", "done", "seen (s)");
    for (size_t k = 0; k < ws->v.a.len; k++) {
        const dp_value_t *w = &ws->v.a.items[k];
        if (w->type != DP_MAP)
            continue;
        const dp_value_t *name = dp_dict_get(w, "name");
        char safe[21];
        s_safe_name(name && name->type == DP_STR ? name->v.s.ptr : "?", safe,
                    sizeof safe);
        printf("%-20s %8llu %5llu %5llu %8llu %10llu %10.1f\n", safe,
               s_uint(w, "pid"), s_uint(w, "cpu_slots"), s_uint(w, "io_slots"),
               s_uint(w, "running"), s_uint(w, "done"),
               (double)s_uint(w, "last_seen_ms") / 1000.0);
    }
}

/* s_status: the broker's counters (key value), then its workers. */
static int s_status(dp_cli_t *c)
{
    dp_value_t v;
    int rc = dp_pool_status(c->pool, &v);
    if (rc) {
        fprintf(stderr, "dpool: status: %s\n", dp_strerror(rc));
        return DP_EXIT_UNREACHABLE;
    }
    if (c->json) {
        char *s = dp_value_json(&v);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else if (v.type == DP_MAP) {
        for (size_t k = 0; k < v.v.a.len; k++) {
            const dp_value_t *key = &v.v.a.items[2 * k];
            const dp_value_t *val = &v.v.a.items[2 * k + 1];
            if (key->type == DP_STR && val->type == DP_UINT)
                printf("%-14s %llu\n", key->v.s.ptr,
                       (unsigned long long)val->v.u);
        }
        /* the list: `worker_list` (then `workers` stays the count), or
         * `workers` itself as an array */
        const dp_value_t *ws = dp_dict_get(&v, "worker_list");
        if (!ws || ws->type != DP_ARRAY)
            ws = dp_dict_get(&v, "workers");
        if (ws && ws->type == DP_ARRAY)
            s_status_workers(ws);
    }
    dp_value_clear(&v);
    return 0;
}

static int s_open(dp_cli_t *c, const char *cmd)
{
    /* download, embedded pool: the worker's io child writes each body
     * straight into --output-dir (same names as s_save_body's), so no
     * body crosses the agent, broker and client sockets */
    bool direct = !c->broker && strcmp(cmd, "download") == 0;
    /* ... and has no cpu children, whatever -p says: nothing of a
     * download runs in one, and their start-up would take the cores the
     * io child starts on (`-p 2 download`: 0.110 against 0.098 s for
     * 64 x 1 MiB) */
    dp_pool_opts_t po = {.connect_timeout = c->connect_timeout,
                         .processes = direct ? -1 : (int)c->processes,
                         .io_slots = (int)c->io_slots,
                         .insecure = c->insecure,
                         .ca_file = c->ca_file,
                         .curve_key = c->curve_key,
                         .broker_key = c->broker_key,
                         .store_dir = direct ? c->output_dir : NULL,
                         .name = "dpool"};
    if (c->insecure && !c->broker)
        fprintf(stderr, "dpool: WARNING: --insecure: TLS certificates of "
                        "download hosts are NOT verified\n");
    int rc = dp_pool_open(c->broker, &po, &c->pool);
    if (rc == DP_ERR_UNREACHABLE) {
        fprintf(stderr,
                "dpool: broker %s unreachable: no answer within "
                "%.1f s\n",
                c->broker, c->connect_timeout);
        fprintf(stderr, "dpool: (a CURVE broker also stays silent to a key "
                        "it does not list, a wrong --broker-key, or no "
                        "--curve-key)\n");
        return DP_EXIT_UNREACHABLE;
    }
    if (rc) {
        fprintf(stderr, "dpool: cannot open the pool%s%s: %s\n",
                c->broker ? " at " : "", c->broker ? c->broker : "",
                dp_strerror(rc));
        return DP_EXIT_UNREACHABLE;
    }
    s_pool = c->pool;
    return 0;
}

static int s_dispatch(dp_cli_t *c, const char *cmd, char **args, int nargs)
{
    if (strcmp(cmd, "map") == 0) /* TYPE checked before connecting */
        return dp_cli_map(c, args[0], args + 1, nargs - 1);
    if (strcmp(cmd, "factor") == 0 || strcmp(cmd, "isprime") == 0)
        return dp_cli_map(c, cmd, args, nargs);
    if (strcmp(cmd, "hash") == 0)
        return dp_cli_map(c, "hash", args, nargs);
    if (strcmp(cmd, "download") == 0)
        return dp_cli_map(c, "download", args, nargs);
    if (strcmp(cmd, "status") == 0)
        return s_status(c);
    if (strcmp(cmd, "bench") == 0)
        return dp_cli_bench(c, args, nargs);
    fprintf(stderr, "dpool: unknown command '%s' (see: dpool --help)\n", cmd);
    return DP_EXIT_USAGE;
}

/* s_check: usage errors found before any work: the command, map's TYPE,
 * options the command does not use, a status with no broker to ask. */
static int s_check(dp_cli_t *c, const char *cmd, int npos, char **argv,
                   const dp_opt_t *opts, const bool *seen)
{
    char err[DP_OPT_ERR_MAX];
    if (!dp_cli_known(cmd)) {
        fprintf(stderr, "dpool: unknown command '%s' (see: dpool --help)\n",
                cmd);
        return DP_EXIT_USAGE;
    }
    const char *type = NULL;
    if (strcmp(cmd, "map") == 0) {
        if (npos < 2) {
            fprintf(stderr, "dpool: map needs a job TYPE (see: dpool "
                            "types)\n");
            return DP_EXIT_USAGE;
        }
        type = argv[2];
        if (!dp_jobtab_find(type, strlen(type))) {
            fprintf(stderr,
                    "dpool: map: unknown job type '%s' (see: dpool "
                    "types)\n",
                    type);
            return DP_EXIT_USAGE;
        }
    }
    if (dp_cli_check_command(c, cmd, type, opts, seen, err, sizeof err) ||
        dp_cli_finish_options(c, err, sizeof err)) {
        fprintf(stderr, "dpool: %s\n", err);
        return DP_EXIT_USAGE;
    }
    if (strcmp(cmd, "status") == 0 && !c->broker) {
        fprintf(stderr, "dpool: status: no broker given (--broker ENDPOINT or "
                        "DPOOL_BROKER); an embedded pool lives only as long "
                        "as one command\n");
        return DP_EXIT_UNREACHABLE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "keygen") == 0)
        return dp_cli_keygen(argc - 1, argv + 1);
    if (dp_cli_batch_argv(argc, argv)) /* cli_batch.c */
        return dp_cli_batch(argc, argv);
    dp_cli_t c;
    dp_cli_defaults(&c);
    bool help = false, version = false, list = false;
    dp_opt_t opts[DP_CLI_MAX_OPTS];
    bool seen[DP_CLI_MAX_OPTS] = {false};
    dp_cli_options(&c, opts, &help, &version, &list);
    char err[DP_OPT_ERR_MAX];
    int npos = 0;
    if (dp_opt_parse_seen(opts, argc, argv, &npos, seen, err, sizeof err)) {
        fprintf(stderr, "dpool: %s\n", err);
        return DP_EXIT_USAGE;
    }
    if (help || version) {
        if (help)
            s_usage(stdout, opts);
        else
            printf("dpool %s\n", DPOOL_VERSION);
        return 0;
    }
    if (list && (npos == 0 || strcmp(argv[1], "hash") == 0))
        return dp_hash_list_print(stdout) ? 1 : 0;
    if (npos < 1) {
        s_usage(stderr, opts);
        return DP_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    int rc = s_check(&c, cmd, npos, argv, opts, seen);
    if (rc)
        return rc;
    if (strcmp(cmd, "types") == 0)
        return s_types(&c);
    dp_log_init("dpool", NULL);
    /* SIGINT and SIGTERM both cancel what runs and stop the pool cleanly */
    struct sigaction sa = {.sa_handler = s_on_sigint};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = s_open(&c, cmd);
    if (rc)
        return rc;
    rc = s_dispatch(&c, cmd, argv + 2, npos - 1);
    s_pool = NULL;
    dp_pool_close(&c.pool);
    return rc;
}
