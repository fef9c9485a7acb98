/*
 * dp_jobtab.c - the job table (see dp_jobtab.h for the meaning of each
 * field). Add a job type: one row here, its kernel in worker/jobs/<name>.c
 * and one binding line in worker/jobs/table.c.
 */
#include "dp_jobtab.h"

#include <stdio.h>
#include <string.h>

#include "dpool.h"

static const dp_jobtype_t s_table[] = {
    /* name      class         args  limit(ms)  usage */
    {"factor", DP_CLASS_CPU, 1, 1, 60000,
     "factor N: prime factors of integer N >= 1, ascending"},
    {"isprime", DP_CLASS_CPU, 1, 1, 60000,
     "isprime N: whether integer N >= 0 is prime"},
    {"hash", DP_CLASS_CPU, 1, 5, 300000,
     "hash DATA [ALGO [ITERATIONS SALT [DKLEN]]]: hex digest or PBKDF2-HMAC"},
    {"download", DP_CLASS_IO, 1, 2, 300000,
     "download URL [OPTIONS]: fetch an http(s) URL"},
    {"sleep", DP_CLASS_CPU, 1, 1, 3600000,
     "sleep MS: wait MS milliseconds, return MS (diagnostic)"},
    {"echo", DP_CLASS_CPU, 0, 64, 60000,
     "echo [ARG...]: return the argument (or the arguments as a list)"},
};

#define S_NROWS (sizeof s_table / sizeof s_table[0])

const dp_jobtype_t *dp_jobtab_find(const char *name, size_t len)
{
    for (size_t k = 0; k < S_NROWS; k++) { /* first byte first: per job */
        if (len && s_table[k].name[0] == name[0] &&
            strlen(s_table[k].name) == len &&
            memcmp(s_table[k].name, name, len) == 0)
            return &s_table[k];
    }
    return NULL;
}

const dp_jobtype_t *dp_jobtab_all(size_t *n)
{
    *n = S_NROWS;
    return s_table;
}

const char *dp_jobtab_class_name(dp_class_t cls)
{
    return cls == DP_CLASS_IO ? "io" : "cpu";
}

int dp_jobtab_check(const char *type, size_t type_len, uint32_t nargs,
                    uint32_t timeout_ms, const dp_jobtype_t **row,
                    uint32_t *limit_ms, char *msg, size_t len)
{
    const dp_jobtype_t *t = dp_jobtab_find(type, type_len);
    *row = t;
    *limit_ms = 0;
    if (!t) {
        snprintf(msg, len, "unknown job type '%.*s' (see: dpool types)",
                 (int)(type_len > 40 ? 40 : type_len), type);
        return DP_ERR_UNKNOWN_TYPE;
    }
    if (nargs < t->min_args || nargs > t->max_args) {
        snprintf(msg, len, "%s takes %u to %u arguments, got %u; usage: %s",
                 t->name, t->min_args, t->max_args, nargs, t->usage);
        return DP_ERR_ARITY;
    }
    *limit_ms = timeout_ms ? timeout_ms : t->timeout_ms;
    if (*limit_ms == 0) {
        snprintf(msg, len, "job type %s has no default time limit: give one",
                 t->name);
        return DP_ERR_INVALID;
    }
    return 0;
}
