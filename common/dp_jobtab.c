/*
 * dp_jobtab.c - the job table (see dp_jobtab.h for the meaning of each
 * field). Add a job type: one row here, its kernel in worker/jobs/<name>.c
 * and one binding line in worker/jobs/table.c.
 */
#include "dp_jobtab.h"

#include <string.h>

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
    for (size_t k = 0; k < S_NROWS; k++) {
        if (strlen(s_table[k].name) == len &&
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
