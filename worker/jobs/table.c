/*
 * table.c - the job table (see dp_jobs.h for the meaning of each field).
 * Add a job type: write worker/jobs/<name>.c with its kernel, declare it in
 * dp_jobs.h, add one row here.
 */
#include <string.h>

#include "dp_jobs.h"

static const dp_jobtype_t s_table[] = {
    /* name      class         args  limit(ms)  kernel */
    {"factor", DP_CLASS_CPU, 1, 1, 60000, dp_job_factor,
     "factor N: prime factors of integer N >= 1, ascending"},
    {"isprime", DP_CLASS_CPU, 1, 1, 60000, dp_job_isprime,
     "isprime N: whether integer N >= 0 is prime"},
    {"hash", DP_CLASS_CPU, 1, 5, 300000, dp_job_hash,
     "hash DATA [ALGO [ITERATIONS SALT [DKLEN]]]: hex digest or PBKDF2-HMAC"},
    {"download", DP_CLASS_IO, 1, 2, 300000, NULL,
     "download URL [OPTIONS]: fetch an http(s) URL"},
    {"sleep", DP_CLASS_CPU, 1, 1, 3600000, dp_job_sleep,
     "sleep MS: wait MS milliseconds, return MS (diagnostic)"},
    {"echo", DP_CLASS_CPU, 0, 64, 60000, dp_job_echo,
     "echo [ARG...]: return the argument (or the arguments as a list)"},
};

const dp_jobtype_t *dp_jobtype_find(const char *name, size_t len)
{
    for (size_t k = 0; k < sizeof s_table / sizeof s_table[0]; k++) {
        if (strlen(s_table[k].name) == len &&
            memcmp(s_table[k].name, name, len) == 0)
            return &s_table[k];
    }
    return NULL;
}

const dp_jobtype_t *dp_jobtype_all(size_t *n)
{
    *n = sizeof s_table / sizeof s_table[0];
    return s_table;
}
