/*
 * cli_batch.c - the `dpool` commands for detached batches: submit,
 * results, batches, cancel, forget (PROTOCOL.md, "Detached batches").
 * They have their own small option table: none of them runs a pool.
 *
 * Exit codes: 0 ok; 1 a job of the batch failed (results), or the broker
 * refused (submit, cancel, forget); 2 usage, or no such batch; 3 no
 * broker answered; 124 results: --wait passed with results missing.
 */
#include "cli_batch.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dp_jobtab.h"
#include "dp_opt.h"
#include "dpool.h"

#define S_INPUT_MAX (1u << 20) /* longest input line, bytes */
#define S_POLL_SECS 0.2        /* results: how often a signal is seen */

typedef struct {
    const char *broker, *arg_file, *format, *curve_key, *broker_key;
    bool unordered, help;
    double connect_timeout;
    double wait; /* results: seconds to wait for them all; 0 = no end */
} s_opts_t;

static const char *const s_cmds[] = {"submit", "results", "batches",
                                     "cancel", "forget",  NULL};

bool dp_cli_is_batch(const char *cmd)
{
    for (int k = 0; s_cmds[k]; k++)
        if (strcmp(cmd, s_cmds[k]) == 0)
            return true;
    return false;
}

bool dp_cli_batch_argv(int argc, char **argv)
{
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k];
        if (dp_cli_is_batch(a))
            return true;
        if (a[0] != '-' || strcmp(a, "--") == 0)
            return false; /* another command (or an argument of one) */
        bool flag = strchr(a, '=') || strcmp(a, "-u") == 0 ||
                    strcmp(a, "--unordered") == 0 || strcmp(a, "-h") == 0 ||
                    strcmp(a, "--help") == 0 || strncmp(a, "--no-", 5) == 0;
        if (!flag)
            k++; /* its value */
    }
    return false;
}

static void s_usage(FILE *f, const dp_opt_t *opts)
{
    fputs("usage: dpool submit TYPE [ARG...]   (or inputs from -a FILE or "
          "stdin, one a line)\n"
          "       dpool results ID [--unordered] [--format json] [--wait S]\n"
          "       dpool batches [--format json]\n"
          "       dpool cancel ID\n"
          "       dpool forget ID\n",
          f);
    dp_opt_help(f, opts);
}

static int s_exit_of(int rc)
{
    if (rc == DP_ERR_UNREACHABLE || rc == DP_ERR_BROKER_LOST)
        return DP_EXIT_UNREACHABLE;
    if (rc == DP_ERR_INVALID)
        return DP_EXIT_USAGE;
    return rc ? DP_EXIT_FAILED : DP_EXIT_OK;
}

static int s_parse_id(const char *s, uint64_t *id)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > UINT32_MAX) {
        fprintf(stderr,
                "dpool: %s is not a batch id (a number from dpool "
                "submit)\n",
                s);
        return DP_EXIT_USAGE;
    }
    *id = v;
    return 0;
}

/* s_read_inputs: one input per line of f (the newline cut), appended to
 * *v (*n of them, room for *cap). */
static int s_read_inputs(FILE *f, dp_value_t **v, size_t *n, size_t *cap)
{
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if ((size_t)len >= S_INPUT_MAX) {
            fprintf(stderr, "dpool: an input of %zd bytes: longer than %u\n",
                    len, S_INPUT_MAX);
            rc = DP_EXIT_USAGE;
            break;
        }
        if (*n == *cap) {
            size_t c2 = *cap ? *cap * 2 : 1024;
            dp_value_t *nv = realloc(*v, c2 * sizeof *nv);
            if (!nv) {
                rc = DP_EXIT_FAILED;
                break;
            }
            *v = nv;
            *cap = c2;
        }
        (*v)[*n] = dp_array(1);
        (*v)[*n].v.a.items[0] = dp_strn(line, (size_t)len);
        (*n)++;
    }
    free(line);
    return rc;
}

static int s_submit(const s_opts_t *o, const dp_pool_opts_t *po, char **args,
                    int nargs)
{
    if (nargs < 1) {
        fprintf(stderr, "dpool: submit needs a job type (dpool types)\n");
        return DP_EXIT_USAGE;
    }
    const char *type = args[0];
    const dp_jobtype_t *t = dp_jobtab_find(type, strlen(type));
    if (!t) {
        fprintf(stderr, "dpool: unknown job type %s (dpool types)\n", type);
        return DP_EXIT_USAGE;
    }
    if (strcmp(type, "hash") == 0) { /* its input names a file to read */
        fprintf(stderr, "dpool: submit sends one text argument per job; "
                        "hash jobs take a file: use dpool hash\n");
        return DP_EXIT_USAGE;
    }
    dp_value_t *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (nargs > 1) {
        v = calloc((size_t)nargs - 1, sizeof *v);
        for (int k = 1; v && k < nargs; k++) {
            v[n] = dp_array(1);
            v[n++].v.a.items[0] = dp_str(args[k]);
        }
        rc = v ? 0 : DP_EXIT_FAILED;
    } else {
        FILE *f = stdin;
        if (o->arg_file && strcmp(o->arg_file, "-") != 0 &&
            !(f = fopen(o->arg_file, "re"))) {
            fprintf(stderr, "dpool: %s: %s\n", o->arg_file, strerror(errno));
            return DP_EXIT_USAGE;
        }
        rc = s_read_inputs(f, &v, &n, &cap);
        if (f != stdin)
            fclose(f);
    }
    if (!rc && n == 0) {
        fprintf(stderr, "dpool: submit: no inputs\n");
        rc = DP_EXIT_USAGE;
    }
    uint64_t id = 0;
    char err[256] = "";
    if (!rc) {
        int e =
            dp_batch_submit(o->broker, po, type, v, n, &id, err, sizeof err);
        if (e) {
            fprintf(stderr, "dpool: submit: %s\n",
                    err[0] ? err : dp_strerror(e));
            rc = s_exit_of(e);
            if (rc == DP_EXIT_USAGE && e == DP_ERR_INVALID)
                rc = DP_EXIT_FAILED;
        } else {
            printf("%llu\n", (unsigned long long)id);
        }
    }
    for (size_t k = 0; k < n; k++)
        dp_value_clear(&v[k]);
    free(v);
    return rc;
}

static void s_json_str(FILE *f, const char *s)
{
    dp_value_t v = dp_str(s ? s : "");
    char *j = dp_value_json(&v);
    fputs(j ? j : "\"\"", f);
    free(j);
    dp_value_clear(&v);
}

/* s_print: one line per result: "INDEX: VALUE" or "INDEX: ERRNAME:
 * message" (text), or one JSON object. */
static void s_print(const dp_result_t *r, bool json)
{
    if (json) {
        printf("{\"index\":%zu,\"id\":%llu,\"ok\":%s,", r->index,
               (unsigned long long)r->id, r->error ? "false" : "true");
        if (r->error) {
            printf("\"error\":{\"code\":%d,\"name\":\"%s\",\"message\":",
                   r->error, dp_errname(r->error));
            s_json_str(stdout, r->message);
            putchar('}');
        } else {
            char *j = dp_value_json(&r->value);
            printf("\"result\":%s", j ? j : "null");
            free(j);
        }
        printf(",\"worker\":");
        s_json_str(stdout, r->worker);
        printf(",\"attempts\":%u}\n", r->attempts);
        return;
    }
    if (r->error) {
        printf("%zu: %s: ", r->index, dp_errname(r->error));
        for (const char *s = r->message ? r->message : ""; *s; s++)
            putchar(*s == '\n' || *s == '\r' ? ' ' : *s);
        putchar('\n');
        return;
    }
    if (r->value.type == DP_STR) {
        printf("%zu: ", r->index);
        for (size_t k = 0; k < r->value.v.s.len; k++) {
            char ch = r->value.v.s.ptr[k];
            putchar(ch == '\n' || ch == '\r' ? ' ' : ch);
        }
        putchar('\n');
        return;
    }
    char *j = dp_value_json(&r->value);
    printf("%zu: %s\n", r->index, j ? j : "?");
    free(j);
}

static volatile sig_atomic_t s_stop;
static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* s_since: seconds since *t0 (CLOCK_MONOTONIC). */
static double s_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) +
           (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static int s_results(const s_opts_t *o, const dp_pool_opts_t *po, uint64_t id,
                     bool json)
{
    dp_batch_t *b = NULL;
    char err[256] = "";
    int rc = dp_batch_attach(o->broker, po, id, &b, err, sizeof err);
    if (rc) {
        fprintf(stderr, "dpool: results: %s\n", err);
        return s_exit_of(rc);
    }
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    dp_result_t **pend = NULL; /* ordered output: results ahead of next */
    size_t next = 0, total = 0, got = 0, failed = 0;
    int exit_rc = DP_EXIT_OK;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        double left = o->wait > 0 ? o->wait - s_since(&t0) : S_POLL_SECS;
        if (left <= 0) {
            exit_rc = DP_EXIT_WAITED;
            break;
        }
        dp_result_t *r = NULL;
        rc = dp_batch_next(b, &r, left < S_POLL_SECS ? left : S_POLL_SECS);
        if (s_stop) {
            dp_result_free(&r);
            exit_rc = DP_EXIT_INTERRUPTED;
            break;
        }
        if (rc == DP_ERR_TIMEOUT)
            continue;
        if (rc) {
            fprintf(stderr, "dpool: results of batch %llu: %s\n",
                    (unsigned long long)id,
                    dp_batch_error(b)[0] ? dp_batch_error(b) : dp_strerror(rc));
            exit_rc = s_exit_of(rc);
            break;
        }
        if (!pend && !o->unordered) {
            total = (size_t)dp_batch_total(b);
            pend = calloc(total ? total : 1, sizeof *pend);
            if (!pend) {
                dp_result_free(&r);
                exit_rc = DP_EXIT_FAILED;
                break;
            }
        }
        if (!r)
            break; /* every result */
        got++;
        failed += r->error != 0;
        if (o->unordered) {
            s_print(r, json);
            dp_result_free(&r);
            continue;
        }
        pend[r->index] = r;
        while (next < total && pend[next]) {
            s_print(pend[next], json);
            dp_result_free(&pend[next]);
            next++;
        }
        fflush(stdout);
    }
    for (size_t k = 0; pend && k < total; k++) {
        if (pend[k] && exit_rc == DP_EXIT_WAITED) /* what arrived, in order */
            s_print(pend[k], json);
        dp_result_free(&pend[k]);
    }
    free(pend);
    if (exit_rc == DP_EXIT_WAITED) {
        uint64_t all = dp_batch_total(b);
        fprintf(stderr,
                "dpool: results of batch %llu: %llu of %llu still pending "
                "after --wait %g s (the batch goes on)\n",
                (unsigned long long)id,
                (unsigned long long)(all > got ? all - got : 0),
                (unsigned long long)all, o->wait);
    }
    dp_batch_close(&b);
    fflush(stdout);
    if (failed) /* which ones, and why, are on their lines */
        fprintf(stderr, "dpool: results of batch %llu: %zu of %zu failed\n",
                (unsigned long long)id, failed, got);
    if (exit_rc == DP_EXIT_OK && failed)
        exit_rc = DP_EXIT_FAILED;
    return exit_rc;
}

static void s_print_row(const dp_batch_info_t *x, bool json, time_t now)
{
    long long age = (long long)now - (long long)(x->created_ms / 1000);
    if (age < 0)
        age = 0;
    if (json) {
        printf("{\"id\":%llu,\"name\":", (unsigned long long)x->id);
        s_json_str(stdout, x->name);
        printf(",\"created_ms\":%llu,\"age_s\":%lld,\"ttl_ms\":%llu,"
               "\"total\":%llu,\"queued\":%llu,\"running\":%llu,\"done\":%llu,"
               "\"failed\":%llu,\"readers\":%llu}\n",
               (unsigned long long)x->created_ms, age,
               (unsigned long long)x->ttl_ms, (unsigned long long)x->total,
               (unsigned long long)x->queued, (unsigned long long)x->running,
               (unsigned long long)x->done, (unsigned long long)x->failed,
               (unsigned long long)x->readers);
        return;
    }
    printf("%-8llu %-16.16s %7llds %8llu %8llu %8llu %8llu %8llu\n",
           (unsigned long long)x->id, x->name, age,
           (unsigned long long)x->total, (unsigned long long)x->queued,
           (unsigned long long)x->running, (unsigned long long)x->done,
           (unsigned long long)x->failed);
}

static int s_batches(const s_opts_t *o, const dp_pool_opts_t *po, bool json)
{
    dp_batch_info_t *rows = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = dp_batch_list(o->broker, po, 0, &rows, &n, err, sizeof err);
    if (rc) {
        fprintf(stderr, "dpool: batches: %s\n", err);
        return s_exit_of(rc);
    }
    time_t now = time(NULL);
    if (!json)
        printf("%-8s %-16s %8s %8s %8s %8s %8s %8s\n", "ID", "NAME", "AGE",
               "TOTAL", "QUEUED", "RUNNING", "DONE", "FAILED");
    for (size_t k = 0; k < n; k++)
        s_print_row(&rows[k], json, now);
    free(rows);
    return 0;
}

static int s_one(const s_opts_t *o, const dp_pool_opts_t *po, const char *cmd,
                 uint64_t id)
{
    dp_batch_info_t x;
    char err[256] = "";
    bool cancel = strcmp(cmd, "cancel") == 0;
    int rc = cancel ? dp_batch_cancel(o->broker, po, id, &x, err, sizeof err)
                    : dp_batch_forget(o->broker, po, id, &x, err, sizeof err);
    if (rc) {
        fprintf(stderr, "dpool: %s: %s\n", cmd, err);
        return s_exit_of(rc);
    }
    fprintf(stderr,
            "dpool: batch %llu %s (%llu jobs: %llu done, %llu failed, %llu "
            "running, %llu queued)\n",
            (unsigned long long)id, cancel ? "cancelled" : "forgotten",
            (unsigned long long)x.total, (unsigned long long)x.done,
            (unsigned long long)x.failed, (unsigned long long)x.running,
            (unsigned long long)x.queued);
    return 0;
}

int dp_cli_batch(int argc, char **argv)
{
    s_opts_t o = {0};
    const dp_opt_t opts[] = {
        {"broker", 'b', "DPOOL_BROKER", DP_OPT_STR, &o.broker, 0, 0, "ENDPOINT",
         "the broker (tcp://HOST:PORT or ipc://PATH)", 0},
        {"arg-file", 'a', NULL, DP_OPT_STR, &o.arg_file, 0, 0, "FILE",
         "submit: inputs from FILE, one a line (- = stdin)", 0},
        {"unordered", 'u', NULL, DP_OPT_FLAG, &o.unordered, 0, 0, NULL,
         "results: print as they come, not in input order", 0},
        {"format", 'f', NULL, DP_OPT_STR, &o.format, 0, 0, "FORMAT",
         "results, batches: text (default) or json (one object a line)", 0},
        {"connect-timeout", 0, "DPOOL_CONNECT_TIMEOUT", DP_OPT_DOUBLE,
         &o.connect_timeout, 0, 0, "SECONDS",
         "wait this long for the broker, also when it restarts (10)", 0},
        {"wait", 'w', NULL, DP_OPT_DOUBLE, &o.wait, 0, 0, "SECONDS",
         "results: stop after SECONDS with results missing, exit 124 (the "
         "batch goes on; 0: no end)",
         0},
        {"curve-key", 0, "DPOOL_CURVE_KEY", DP_OPT_STR, &o.curve_key, 0, 0,
         "FILE", "CURVE: your secret key file (dpool keygen NAME)", 0},
        {"broker-key", 0, "DPOOL_BROKER_KEY", DP_OPT_STR, &o.broker_key, 0, 0,
         "FILE", "CURVE: the broker's public key file", 0},
        {"help", 'h', NULL, DP_OPT_HELP, &o.help, 0, 0, NULL, "this help", 0},
        {NULL, 0, NULL, 0, NULL, 0, 0, NULL, NULL, 0},
    };
    char err[DP_OPT_ERR_MAX];
    int npos = 0;
    if (dp_opt_parse(opts, argc, argv, &npos, err, sizeof err)) {
        fprintf(stderr, "dpool: %s\n", err);
        return DP_EXIT_USAGE;
    }
    if (o.help) {
        s_usage(stdout, opts);
        return 0;
    }
    /* argv[1] is the command, argv[2..npos] its arguments */
    const char *cmd = argv[1];
    char **args = argv + 2;
    int nargs = npos - 1;
    bool json = o.format && strcmp(o.format, "json") == 0;
    if (o.format && !json && strcmp(o.format, "text") != 0) {
        fprintf(stderr, "dpool: --format is text or json\n");
        return DP_EXIT_USAGE;
    }
    if (!o.broker) {
        fprintf(stderr,
                "dpool: %s needs a broker: --broker ENDPOINT or "
                "DPOOL_BROKER (a detached batch lives on a broker)\n",
                cmd);
        return DP_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    dp_pool_opts_t po = {.connect_timeout = o.connect_timeout,
                         .curve_key = o.curve_key,
                         .broker_key = o.broker_key};
    if (strcmp(cmd, "submit") == 0)
        return s_submit(&o, &po, args, nargs);
    if (strcmp(cmd, "batches") == 0) {
        if (nargs) {
            fprintf(stderr, "dpool: batches takes no argument\n");
            return DP_EXIT_USAGE;
        }
        return s_batches(&o, &po, json);
    }
    uint64_t id;
    if (nargs != 1) {
        fprintf(stderr, "dpool: %s takes one batch id\n", cmd);
        return DP_EXIT_USAGE;
    }
    int rc = s_parse_id(args[0], &id);
    if (rc)
        return rc;
    if (strcmp(cmd, "results") == 0)
        return s_results(&o, &po, id, json);
    return s_one(&o, &po, cmd, id);
}
