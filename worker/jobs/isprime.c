/*
 * isprime.c - the `isprime` kernel: whether an integer N >= 0 of any size
 * up to DP_NUM_MAX_DIGITS digits is prime (0 and 1 are not, 2 is).
 *
 * Result shape depends on the size of N:
 *  - N < 2^64: a plain DP_BOOL, exact (deterministic Miller-Rabin, proven
 *    for every 64-bit number).
 *  - N >= 2^64: a DP_MAP {"prime": bool, "method": "bpsw"}. BPSW
 *    (Miller-Rabin base 2 + strong Lucas) has no known counterexample but
 *    is not proven above 2^64; the map says which test answered so a
 *    caller that needs a proof knows to get one elsewhere.
 */
#include <stdio.h>

#include "dp_jobs.h"
#include "dp_num.h"

/* Keys and method name of the map answer for N >= 2^64. */
#define DP_ISPRIME_KEY_PRIME "prime"
#define DP_ISPRIME_KEY_METHOD "method"
#define DP_ISPRIME_METHOD_BPSW "bpsw"

/* s_answer_map: {"prime": prime, "method": "bpsw"} into *out. */
static int s_answer_map(bool prime, dp_value_t *out)
{
    *out = dp_dict(2);
    if (out->type == DP_NIL)
        return DP_ERR_NOMEM;
    dp_value_t *it = out->v.a.items;
    it[0] = dp_str(DP_ISPRIME_KEY_PRIME);
    it[1] = dp_bool(prime);
    it[2] = dp_str(DP_ISPRIME_KEY_METHOD);
    it[3] = dp_str(DP_ISPRIME_METHOD_BPSW);
    if (it[0].type == DP_NIL || it[2].type == DP_NIL || it[3].type == DP_NIL) {
        dp_value_clear(out);
        return DP_ERR_NOMEM;
    }
    return 0;
}

int dp_job_isprime(const dp_job_ctx_t *ctx, const dp_value_t *args,
                   size_t nargs, dp_value_t *out, char *err, size_t errlen)
{
    dp_num_t n = {0};
    uint64_t small;
    bool prime = false;
    (void)ctx;
    (void)nargs;
    *out = dp_nil();
    int rc = dp_num_from_value(&args[0], &n, err, errlen);
    if (rc)
        goto out;
    if (dp_num_get_u64(&n, &small)) {
        *out = dp_bool(dp_num_isprime_u64(small));
        goto out;
    }
    rc = dp_num_isprime(&n, &prime);
    if (rc == 0)
        rc = s_answer_map(prime, out);
    if (rc)
        snprintf(err, errlen, "isprime: %s", dp_strerror(rc));
out:
    dp_num_clear(&n);
    return rc;
}
