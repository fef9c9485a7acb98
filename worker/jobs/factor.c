/*
 * factor.c - the `factor` kernel: the prime factors of an integer N >= 1
 * of any size up to DP_NUM_MAX_DIGITS digits, ascending with multiplicity,
 * as GNU coreutils `factor` prints them. Factors below 2^64 are DP_UINT,
 * larger ones decimal DP_STR. 1 has no factors (an empty list).
 *
 * 0 is an error here, although GNU prints "0:": 0 is divisible by every
 * prime and has no factorization, and an empty list would read as 1.
 */
#include <stdio.h>

#include "dp_jobs.h"
#include "dp_num.h"

int dp_job_factor(const dp_job_ctx_t *ctx, const dp_value_t *args, size_t nargs,
                  dp_value_t *out, char *err, size_t errlen)
{
    dp_num_t n = {0};
    dp_factors_t f;
    (void)nargs;
    *out = dp_nil();
    dp_factors_init(&f);
    int rc = dp_num_from_value(&args[0], &n, err, errlen);
    if (rc)
        goto out;
    if (dp_num_is_zero(&n)) {
        snprintf(err, errlen, "0 has no prime factorization");
        rc = DP_ERR_INVALID;
        goto out;
    }
    rc = dp_num_factor(&n, ctx->deadline_us, &f);
    if (rc == 0)
        rc = dp_factors_to_value(&f, out);
    if (rc == DP_ERR_TIMEOUT)
        snprintf(err, errlen, "factorization exceeded its time limit");
    else if (rc)
        snprintf(err, errlen, "factor: %s", dp_strerror(rc));
out:
    dp_factors_clear(&f);
    dp_num_clear(&n);
    return rc;
}
