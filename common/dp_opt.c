#include "dp_opt.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dp_log.h"
#include "dpool.h"

#define S_PORT_MAX 65535
#define S_ENDPOINT_FORM "tcp://HOST:PORT (PORT 1-65535) or ipc://PATH"

static const dp_opt_t *s_find_long(const dp_opt_t *o, const char *name,
                                   size_t len, bool *negated)
{
    *negated = false;
    for (; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static const dp_opt_t *s_find_no(const dp_opt_t *opts, const char *name,
                                 size_t len, bool *negated)
{
    const dp_opt_t *o = s_find_long(opts, name, len, negated);
    if (o || len <= 3 || strncmp(name, "no-", 3) != 0)
        return o;
    o = s_find_long(opts, name + 3, len - 3, negated);
    if (o && o->kind == DP_OPT_FLAG) {
        *negated = true;
        return o;
    }
    return NULL;
}

static const dp_opt_t *s_find_short(const dp_opt_t *o, char c)
{
    for (; o->name; o++)
        if (o->short_name && o->short_name == c)
            return o;
    return NULL;
}

int dp_opt_check_endpoint(const char *ep, char *err, size_t errlen)
{
    if (strncmp(ep, "ipc://", 6) == 0 && ep[6] != '\0')
        return 0;
    if (strncmp(ep, "tcp://", 6) == 0) {
        const char *host = ep + 6, *colon = strrchr(host, ':');
        const char *port = colon ? colon + 1 : NULL;
        bool bracket_ok = host[0] != '[' || (colon && colon[-1] == ']');
        if (colon && colon > host && bracket_ok && strcmp(port, "*") == 0)
            return 0;
        char *end = NULL;
        errno = 0;
        unsigned long n =
            port && isdigit((unsigned char)*port) ? strtoul(port, &end, 10) : 0;
        if (colon && colon > host && bracket_ok && end && *end == '\0' &&
            !errno && n >= 1 && n <= S_PORT_MAX)
            return 0;
    }
    snprintf(err, errlen, "bad endpoint '%s': expected " S_ENDPOINT_FORM, ep);
    return DP_ERR_INVALID;
}

/* s_check: the values some metavars promise (see dp_opt.h). */
static int s_check(const dp_opt_t *o, const char *val, char *err, size_t errlen)
{
    if (!o->metavar)
        return 0;
    if (strcmp(o->metavar, "ENDPOINT") == 0) {
        char why[DP_OPT_ERR_MAX];
        if (!dp_opt_check_endpoint(val, why, sizeof why))
            return 0;
        snprintf(err, errlen, "--%s: %s", o->name, why);
        return DP_ERR_INVALID;
    }
    if (strcmp(o->metavar, "LEVEL") == 0 && dp_log_parse_level(val) < 0) {
        snprintf(err, errlen,
                 "--%s: expected error, warn, info or debug, got '%s'", o->name,
                 val);
        return DP_ERR_INVALID;
    }
    return 0;
}

static int s_set(const dp_opt_t *o, const char *val, bool negated, char *err,
                 size_t errlen)
{
    if ((o->kind == DP_OPT_STR || o->kind == DP_OPT_LIST) &&
        s_check(o, val, err, errlen))
        return DP_ERR_INVALID;
    char *end = NULL;
    switch (o->kind) {
    case DP_OPT_FLAG:
    case DP_OPT_HELP:
        *(bool *)o->dest = !negated;
        return 0;
    case DP_OPT_STR:
        *(const char **)o->dest = val;
        return 0;
    case DP_OPT_LIST: {
        dp_optlist_t *l = o->dest;
        if (l->n >= DP_OPT_LIST_MAX) {
            snprintf(err, errlen, "--%s: at most %d values", o->name,
                     DP_OPT_LIST_MAX);
            return DP_ERR_INVALID;
        }
        l->v[l->n++] = val;
        return 0;
    }
    case DP_OPT_LONG: {
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < o->min || v > o->max) {
            snprintf(err, errlen,
                     "--%s: expected a whole number from %ld "
                     "to %ld, got '%s'",
                     o->name, o->min, o->max, val);
            return DP_ERR_INVALID;
        }
        *(long *)o->dest = v;
        return 0;
    }
    case DP_OPT_DOUBLE: {
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *end || !(v >= 0)) {
            snprintf(err, errlen, "--%s: expected a number >= 0, got '%s'",
                     o->name, val);
            return DP_ERR_INVALID;
        }
        *(double *)o->dest = v;
        return 0;
    }
    }
    return DP_ERR_INVALID;
}

static bool s_takes_value(const dp_opt_t *o)
{
    return o->kind != DP_OPT_FLAG && o->kind != DP_OPT_HELP;
}

static bool s_is_option(const char *a)
{
    if (a[0] != '-' || a[1] == '\0')
        return false; /* "-" alone is a positional (stdin) */
    if (isdigit((unsigned char)a[1]))
        return false; /* a negative number */
    return true;
}

/* s_one: parse argv[*k] (an option), maybe consuming a value. */
static int s_one(const dp_opt_t *opts, int argc, char **argv, int *k,
                 bool *seen, char *err, size_t errlen)
{
    const char *a = argv[*k];
    const char *val = NULL;
    bool neg = false;
    const dp_opt_t *o;
    if (a[1] == '-') {
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        o = s_find_no(opts, a + 2, len, &neg);
        val = eq ? eq + 1 : NULL;
    } else {
        o = a[2] == '\0' ? s_find_short(opts, a[1]) : NULL;
    }
    if (!o) {
        snprintf(err, errlen, "unknown option '%s' (see --help)", a);
        return DP_ERR_INVALID;
    }
    if (s_takes_value(o) && !val) {
        if (*k + 1 >= argc) {
            snprintf(err, errlen, "option '%s' needs a value", a);
            return DP_ERR_INVALID;
        }
        val = argv[++*k];
    } else if (!s_takes_value(o) && val) {
        snprintf(err, errlen, "option '--%s' takes no value", o->name);
        return DP_ERR_INVALID;
    }
    seen[o - opts] = true;
    return s_set(o, val, neg, err, errlen);
}

static int s_env(const dp_opt_t *o, char *err, size_t errlen)
{
    const char *val = o->env ? getenv(o->env) : NULL;
    if (!val || !*val)
        return 0;
    if (o->kind == DP_OPT_FLAG) {
        bool off =
            !strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no");
        *(bool *)o->dest = !off;
        return 0;
    }
    if (o->kind != DP_OPT_LIST)
        return s_set(o, val, false, err, errlen);
    /* comma-separated list: values must outlive parsing, so split a
     * private copy that lives as long as the program */
    char *copy = strdup(val);
    if (!copy)
        return DP_ERR_NOMEM;
    for (char *t = copy; t && *t;) {
        char *comma = strchr(t, ',');
        if (comma)
            *comma = '\0';
        int rc = *t ? s_set(o, t, false, err, errlen) : 0;
        if (rc)
            return rc;
        t = comma ? comma + 1 : NULL;
    }
    return 0;
}

int dp_opt_parse(const dp_opt_t *opts, int argc, char **argv, int *npos,
                 char *err, size_t errlen)
{
    size_t nopts = 0;
    while (opts[nopts].name)
        nopts++;
    bool seen[nopts + 1];
    memset(seen, 0, sizeof seen);
    return dp_opt_parse_seen(opts, argc, argv, npos, seen, err, errlen);
}

int dp_opt_parse_seen(const dp_opt_t *opts, int argc, char **argv, int *npos,
                      bool *seen, char *err, size_t errlen)
{
    size_t nopts = 0;
    while (opts[nopts].name)
        nopts++;
    int pos = 1;
    bool only_pos = false;
    for (int k = 1; k < argc; k++) {
        if (!only_pos && strcmp(argv[k], "--") == 0) {
            only_pos = true;
        } else if (!only_pos && s_is_option(argv[k])) {
            int rc = s_one(opts, argc, argv, &k, seen, err, errlen);
            if (rc)
                return rc;
        } else {
            argv[pos++] = argv[k];
        }
    }
    *npos = pos - 1;
    for (size_t k = 0; k < nopts; k++) {
        if (seen[k])
            continue;
        int rc = s_env(&opts[k], err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

static void s_usage(FILE *f, const dp_opt_t *opts, const char *prog,
                    const char *about)
{
    fprintf(f, "usage: %s [OPTIONS]\n%s\n\n", prog, about);
    dp_opt_help(f, opts);
}

int dp_opt_daemon(const dp_opt_t *opts, int argc, char **argv, const char *prog,
                  const char *about, const bool *help, const bool *version)
{
    char err[DP_OPT_ERR_MAX];
    int npos = 0;
    if (dp_opt_parse(opts, argc, argv, &npos, err, sizeof err) || npos) {
        fprintf(stderr, "%s: %s\n", prog, npos ? "takes no arguments" : err);
        s_usage(stderr, opts, prog, about);
        return 2;
    }
    if (*help)
        s_usage(stdout, opts, prog, about);
    else if (*version)
        printf("%s %s\n", prog, DPOOL_VERSION);
    return *help || *version ? 0 : -1;
}

void dp_opt_help(FILE *f, const dp_opt_t *o)
{
    for (; o->name; o++) {
        if (!o->help)
            continue;
        char flags[64];
        if (o->short_name)
            snprintf(flags, sizeof flags, "-%c, --%s%s%s", o->short_name,
                     o->name, o->metavar ? " " : "",
                     o->metavar ? o->metavar : "");
        else
            snprintf(flags, sizeof flags, "    --%s%s%s", o->name,
                     o->metavar ? " " : "", o->metavar ? o->metavar : "");
        fprintf(f, "  %-28s %s", flags, o->help);
        if (o->env)
            fprintf(f, " [env %s]", o->env);
        fputc('\n', f);
    }
}
