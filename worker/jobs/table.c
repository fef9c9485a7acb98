/*
 * table.c - the binding from the job table's names (common/dp_jobtab.c) to
 * the kernels that run them. Add a job type: a row in common/dp_jobtab.c,
 * its kernel in worker/jobs/<name>.c declared in dp_jobs.h, and one line
 * here. io types (download) have no line: the io child runs them.
 */
#include <string.h>

#include "dp_jobs.h"

static const struct {
    const char *name; /* a name in common/dp_jobtab.c */
    dp_job_fn run;
} s_kernels[] = {
    {"factor", dp_job_factor}, {"isprime", dp_job_isprime},
    {"hash", dp_job_hash},     {"sleep", dp_job_sleep},
    {"echo", dp_job_echo},
};

dp_job_fn dp_job_kernel(const dp_jobtype_t *t)
{
    if (!t || t->cls != DP_CLASS_CPU)
        return NULL;
    for (size_t k = 0; k < sizeof s_kernels / sizeof s_kernels[0]; k++) {
        if (strcmp(s_kernels[k].name, t->name) == 0)
            return s_kernels[k].run;
    }
    return NULL;
}
