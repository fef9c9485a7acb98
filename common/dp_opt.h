/*
 * dp_opt.h - option tables: every option of a program is one row, set from
 * the command line (--name VALUE, --name=VALUE, -x VALUE) or, when absent
 * there, from its environment variable. Options and positional arguments
 * may come in any order; "--" ends options; "-5" is a positional (a
 * negative number the program will judge).
 *
 * Values are checked as they are set: a row whose metavar is "ENDPOINT"
 * must be an endpoint dpool can use (dp_opt_check_endpoint), one whose
 * metavar is "LEVEL" a log level (error, warn, info, debug). So the broker,
 * the worker and the client refuse the same typos with the same words.
 *
 * Ownership: string values point into argv or the environment.
 */
#ifndef DP_OPT_H
#define DP_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define DP_OPT_LIST_MAX 16
#define DP_OPT_ERR_MAX 256 /* longest usage error message */

typedef enum {
    DP_OPT_FLAG,   /* bool; --no-NAME clears it */
    DP_OPT_STR,    /* const char * */
    DP_OPT_LIST,   /* dp_optlist_t; repeatable; env: comma-separated */
    DP_OPT_LONG,   /* long in [min, max] */
    DP_OPT_DOUBLE, /* double >= 0 */
    DP_OPT_HELP    /* prints help (the caller does) and sets the bool */
} dp_optkind_t;

typedef struct {
    const char *v[DP_OPT_LIST_MAX];
    int n;
} dp_optlist_t;

typedef struct {
    const char *name; /* long name without dashes */
    char short_name;  /* 0 = none */
    const char *env;  /* environment variable, NULL = none */
    dp_optkind_t kind;
    void *dest;    /* bool*, const char**, dp_optlist_t*, long*, double* */
    long min, max; /* DP_OPT_LONG bounds */
    const char *metavar; /* "N", "ENDPOINT" */
    const char *help;    /* NULL = hidden from --help */
    unsigned tags;       /* the program's own bits (e.g. which commands use
                            the option); dp_opt ignores them */
} dp_opt_t;

/* dp_opt_parse: set dest of each row from argv[1..argc) and then from the
 * environment; positional arguments are moved, in order, to argv[1..*npos].
 * A row table ends with a row whose name is NULL. 0 or DP_ERR_INVALID with
 * a message in err. */
int dp_opt_parse(const dp_opt_t *opts, int argc, char **argv, int *npos,
                 char *err, size_t errlen);
/* dp_opt_parse_seen: dp_opt_parse that also sets seen[k] (an array of one
 * bool per row, cleared by the caller) for each row given on the command
 * line (not from the environment). */
int dp_opt_parse_seen(const dp_opt_t *opts, int argc, char **argv, int *npos,
                      bool *seen, char *err, size_t errlen);
/* dp_opt_check_endpoint: 0 when ep is tcp://HOST:PORT (PORT 1..65535, or
 * `*` for a bind) or ipc://PATH; else DP_ERR_INVALID with a message in err
 * that names the expected form. */
int dp_opt_check_endpoint(const char *ep, char *err, size_t errlen);
/* dp_opt_daemon: parse the options of a program that takes no arguments
 * (dpool-broker, dpool-worker): usage errors are reported with the help
 * (exit code 2); --help and --version print and give 0. Returns -1 when the
 * program should go on. help and version are the table's two flags. */
int dp_opt_daemon(const dp_opt_t *opts, int argc, char **argv, const char *prog,
                  const char *about, const bool *help, const bool *version);
/* dp_opt_help: one line per visible option: flags, env, help. */
void dp_opt_help(FILE *f, const dp_opt_t *opts);

#endif
