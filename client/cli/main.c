/*
 * main.c - `dpool`, the command line client, built on libdpool (dpool.h).
 *
 *   dpool [OPTIONS] COMMAND [ARG...]      (options before or after COMMAND)
 * Exit status: 0 all jobs ok, 1 some failed, 2 usage, 3 broker unreachable
 * or lost, 130 interrupted.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_keygen.h"
#include "dp_hash.h"
#include "dp_jobs.h"
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
           "  hash FILE...          digest of each file (--algo, --pbkdf2)\n"
           "  download URL...       fetch URLs into --output-dir\n"
           "  bench                 throughput and latency benchmark\n"
           "  status                broker counters\n"
           "  types                 the job types\n"
           "  keygen [--out DIR] NAME...  CURVE key pairs (issue 10)\n\n"
           "options:\n");
    dp_opt_help(f, opts);
    fprintf(f, "\nexit status: 0 all ok, 1 some jobs failed, 2 usage, "
               "3 broker unreachable, 130 interrupted\n");
}

static int s_types(void)
{
    size_t n;
    const dp_jobtype_t *t = dp_jobtype_all(&n);
    for (size_t k = 0; k < n; k++)
        printf("%-9s %-3s %6.0fs  %s\n", t[k].name,
               t[k].cls == DP_CLASS_IO ? "io" : "cpu", t[k].timeout_ms / 1000.0,
               t[k].usage);
    return 0;
}

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
    } else {
        for (size_t k = 0; k < v.v.a.len; k++) {
            const dp_value_t *key = &v.v.a.items[2 * k];
            const dp_value_t *val = &v.v.a.items[2 * k + 1];
            if (key->type == DP_STR && val->type == DP_UINT)
                printf("%-14s %llu\n", key->v.s.ptr,
                       (unsigned long long)val->v.u);
        }
    }
    dp_value_clear(&v);
    return 0;
}

static int s_open(dp_cli_t *c)
{
    dp_pool_opts_t po = {.connect_timeout = c->connect_timeout,
                         .processes = (int)c->processes,
                         .io_slots = (int)c->io_slots,
                         .insecure = c->insecure,
                         .ca_file = c->ca_file,
                         .curve_key = c->curve_key,   /* issue 10 */
                         .broker_key = c->broker_key, /* issue 10 */
                         .name = "dpool"};
    if ((c->insecure || c->ca_file) && c->broker)
        fprintf(stderr, "dpool: --insecure and --ca-file apply to the "
                        "embedded pool only; workers have their own\n");
    else if (c->insecure)
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
                        "--curve-key)\n"); /* issue 10 */
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

static bool s_known(const char *cmd)
{
    static const char *const cmds[] = {"map",   "factor",   "isprime",
                                       "hash",  "download", "status",
                                       "bench", "types"};
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
        if (strcmp(cmd, cmds[k]) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "keygen") == 0) /* issue 10 */
        return dp_cli_keygen(argc - 1, argv + 1);
    dp_cli_t c;
    dp_cli_defaults(&c);
    bool help = false, version = false, list = false;
    dp_opt_t opts[DP_CLI_MAX_OPTS];
    dp_cli_options(&c, opts, &help, &version, &list);
    char err[256];
    int npos = 0;
    if (dp_opt_parse(opts, argc, argv, &npos, err, sizeof err)) {
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
    if (list)
        return dp_hash_list_print(stdout) ? 1 : 0;
    if (npos < 1) {
        s_usage(stderr, opts);
        return DP_EXIT_USAGE;
    }
    if (dp_cli_finish_options(&c, err, sizeof err)) {
        fprintf(stderr, "dpool: %s\n", err);
        return DP_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "types") == 0)
        return s_types();
    if (!s_known(cmd)) {
        fprintf(stderr, "dpool: unknown command '%s' (see: dpool --help)\n",
                cmd);
        return DP_EXIT_USAGE;
    }
    if (strcmp(cmd, "map") == 0 && npos < 2) {
        fprintf(stderr, "dpool: map needs a job TYPE (see: dpool types)\n");
        return DP_EXIT_USAGE;
    }
    dp_log_init("dpool", NULL);
    /* SIGINT and SIGTERM both cancel what runs and stop the pool cleanly */
    struct sigaction sa = {.sa_handler = s_on_sigint};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = s_open(&c);
    if (rc)
        return rc;
    rc = s_dispatch(&c, cmd, argv + 2, npos - 1);
    s_pool = NULL;
    dp_pool_close(&c.pool);
    return rc;
}
