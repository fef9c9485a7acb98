/*
 * num_factor.c - the factorization driver: trial division by the primes
 * below DP_NUM_TRIAL_BOUND, then for each cofactor, in the smallest tier
 * that holds it: primality (MR or BPSW), perfect powers, Pollard-Brent
 * rho, and ECM when rho's budget runs out. Factors are collected unsorted
 * and sorted at the end.
 */
#include <math.h>
#include <stdlib.h>

#include "dp_num.h"

/* s_repeat: append items [from, len) k - 1 more times (a k-th power). */
static int s_repeat(dp_factors_t *f, size_t from, unsigned k)
{
    size_t end = f->len;
    for (unsigned r = 1; r < k; r++) {
        for (size_t i = from; i < end; i++) {
            int rc = dp_num_push(f, f->items[i].small, f->items[i].big);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* s_u64: factor n > 1 with no prime factor below DP_NUM_TRIAL_BOUND. */
static int s_u64(dp_num_job_t *job, uint64_t n)
{
    static const unsigned exps[] = DP_NUM_POW64_EXPS;
    uint64_t bound = DP_NUM_TRIAL64_BOUND;
    if (n < bound * bound || dp_num_mr64(n))
        return dp_num_push(job->out, n, NULL);
    for (size_t k = 0; k < sizeof exps / sizeof exps[0]; k++) {
        uint64_t r = (uint64_t)dp_num_iroot_u128(n, exps[k]), p = r;
        for (unsigned j = 1; j < exps[k]; j++)
            p *= r;
        if (p == n) {
            size_t from = job->out->len;
            int rc = s_u64(job, r);
            return rc ? rc : s_repeat(job->out, from, exps[k]);
        }
    }
    uint64_t g = n;
    for (uint64_t c = 1; g == n; c += 2) { /* rho64 walks c and c + 1 */
        int rc = dp_num_rho64(job, n, c, &g);
        if (rc)
            return rc;
    }
    int rc = s_u64(job, g);
    return rc ? rc : s_u64(job, n / g);
}

/* s_power128: if n is a perfect power r^k, factor r into *done. */
static int s_power128(dp_num_job_t *job, dp_u128_t n, bool *done);

/* s_u128: factor n > 1 with no prime factor below DP_NUM_TRIAL_BOUND. */
static int s_u128(dp_num_job_t *job, dp_u128_t n)
{
    if (!(n >> DP_NUM_WORD_BITS))
        return s_u64(job, (uint64_t)n);
    if (dp_num_bpsw128(n))
        return dp_num_push(job->out, n, NULL);
    bool done = false;
    int rc = s_power128(job, n, &done);
    if (rc || done)
        return rc;
    dp_u128_t g = n;
    for (uint64_t c = 1; g == n && c <= DP_NUM_RHO_TRIES; c++) {
        if ((rc = dp_num_rho128(job, n, c, DP_NUM_RHO128_BUDGET, &g)) != 0)
            return rc;
    }
    if ((g == 1 || g == n) && (rc = dp_num_ecm128(job, n, &g)) != 0)
        return rc;
    rc = s_u128(job, g);
    return rc ? rc : s_u128(job, n / g);
}

static int s_power128(dp_num_job_t *job, dp_u128_t n, bool *done)
{
    static const unsigned exps[] = DP_NUM_POW128_EXPS;
    for (size_t k = 0; k < sizeof exps / sizeof exps[0]; k++) {
        dp_u128_t r = dp_num_iroot_u128(n, exps[k]), p = r;
        for (unsigned j = 1; j < exps[k]; j++)
            p *= r;
        if (p == n) {
            size_t from = job->out->len;
            int rc = s_u128(job, r);
            *done = true;
            return rc ? rc : s_repeat(job->out, from, exps[k]);
        }
    }
    return 0;
}

static int s_big(dp_num_job_t *job, const BIGNUM *n);

/* s_power_bn: if n is a perfect power r^k, factor r into *done. Prime
 * exponents suffice, up to the bits of n over those of the trial bound. */
static int s_power_bn(dp_num_job_t *job, const BIGNUM *n, bool *done)
{
    unsigned maxk = (unsigned)BN_num_bits(n) / DP_NUM_TRIAL_BITS;
    BIGNUM *r = BN_new();
    int rc = r ? 0 : DP_ERR_NOMEM;
    for (size_t i = 0; !rc && !*done && i <= DP_NUM_TRIAL_COUNT; i++) {
        unsigned k = i ? dp_num_trial_primes[i - 1].p : 2;
        if (k > maxk)
            break;
        rc = dp_num_iroot_bn(n, k, r, done, job->bn);
        if (!rc && *done) {
            size_t from = job->out->len;
            rc = s_big(job, r);
            if (!rc)
                rc = s_repeat(job->out, from, k);
        }
    }
    BN_free(r);
    return rc;
}

/* s_split_bn: a proper divisor of composite n into g: rho, then ECM. */
static int s_split_bn(dp_num_job_t *job, const BIGNUM *n, BIGNUM *g)
{
    int rc = 0;
    bool found = false;
    for (uint64_t c = 1; !rc && !found && c <= DP_NUM_RHO_TRIES; c++) {
        rc = dp_num_rho_bn(job, n, c, DP_NUM_RHOBN_BUDGET, g);
        found = !rc && !BN_is_one(g) && BN_cmp(g, n) != 0;
        if (!rc && BN_is_one(g))
            break;
    }
    if (!rc && !found)
        rc = dp_num_ecm_bn(job, n, g);
    return rc;
}

/* s_big: factor n > 1 with no prime factor below DP_NUM_TRIAL_BOUND. */
static int s_big(dp_num_job_t *job, const BIGNUM *n)
{
    if (BN_num_bits(n) <= 2 * DP_NUM_WORD_BITS)
        return s_u128(job, dp_num_bn_to_u128(n));
    bool prime = false, done = false;
    int rc = dp_num_bpsw_bn(n, job->bn, &prime);
    if (rc || prime)
        return rc ? rc : dp_num_push(job->out, 0, n);
    if ((rc = s_power_bn(job, n, &done)) != 0 || done)
        return rc;
    BIGNUM *g = BN_new(), *q = BN_new();
    rc = DP_ERR_NOMEM;
    if (!g || !q)
        goto out;
    if ((rc = s_split_bn(job, n, g)) != 0)
        goto out;
    rc = DP_ERR_NOMEM;
    if (!BN_div(q, NULL, n, g, job->bn))
        goto out;
    rc = s_big(job, g);
    if (!rc)
        rc = s_big(job, q);
out:
    BN_free(q);
    BN_free(g);
    return rc;
}

/* s_isqrt64: floor(sqrt(n)) (the double is off by at most one). */
static uint64_t s_isqrt64(uint64_t n)
{
    uint64_t r = (uint64_t)sqrt((double)n);
    while (r * r > n)
        r--;
    while ((r + 1) * (r + 1) <= n && r + 1 < UINT32_MAX)
        r++;
    return r;
}

/* s_trial64: divide n by the table primes from index k on, up to
 * sqrt(n), and factor what is left. */
static int s_trial64(dp_num_job_t *job, uint64_t n, size_t k)
{
    uint64_t root = s_isqrt64(n);
    for (; k < DP_NUM_TRIAL64_COUNT; k++) {
        const dp_num_prime_t *p = &dp_num_trial_primes[k];
        if (p->p > root)
            return n == 1 ? 0 : dp_num_push(job->out, n, NULL);
        if (n * p->inv > p->lim)
            continue;
        do {
            n *= p->inv;
            int rc = dp_num_push(job->out, p->p, NULL);
            if (rc)
                return rc;
        } while (n * p->inv <= p->lim);
        root = s_isqrt64(n);
    }
    return n == 1 ? 0 : s_u64(job, n);
}

/* s_trial128: divide n >= 1 by 2, then by the table primes from index k
 * on, and factor what is left. */
static int s_trial128(dp_num_job_t *job, dp_u128_t n, size_t k)
{
    for (int tz = dp_u128_ctz(n); tz > 0; tz--) {
        int rc = dp_num_push(job->out, 2, NULL);
        if (rc)
            return rc;
    }
    n >>= dp_u128_ctz(n);
    for (; k < DP_NUM_TRIAL_COUNT; k++) {
        if (!(n >> DP_NUM_WORD_BITS))
            return s_trial64(job, (uint64_t)n, k);
        const dp_num_prime_t *p = &dp_num_trial_primes[k];
        dp_u128_t q;
        while (dp_divides128(n, p, &q)) {
            n = q;
            int rc = dp_num_push(job->out, p->p, NULL);
            if (rc)
                return rc;
        }
    }
    return n == 1 ? 0 : s_u128(job, n);
}

/* s_trial_big: the same for a BIGNUM, handing over below 2^128. */
static int s_trial_big(dp_num_job_t *job, const BIGNUM *n0)
{
    BIGNUM *n = BN_dup(n0);
    int rc = DP_ERR_NOMEM, tz = 0;
    if (!n)
        return rc;
    while (!BN_is_bit_set(n, tz))
        tz++;
    for (int j = 0; j < tz; j++) {
        if ((rc = dp_num_push(job->out, 2, NULL)) != 0)
            goto out;
    }
    rc = DP_ERR_NOMEM;
    if (!BN_rshift(n, n, tz))
        goto out;
    for (size_t k = 0; k < DP_NUM_TRIAL_COUNT; k++) {
        if (BN_num_bits(n) <= 2 * DP_NUM_WORD_BITS) {
            rc = s_trial128(job, dp_num_bn_to_u128(n), k);
            goto out;
        }
        BN_ULONG p = dp_num_trial_primes[k].p;
        BN_ULONG r;
        while ((r = BN_mod_word(n, p)) == 0) {
            if (BN_div_word(n, p) == (BN_ULONG)-1 ||
                dp_num_push(job->out, p, NULL))
                goto out;
        }
        if (r == (BN_ULONG)-1)
            goto out;
    }
    rc = s_big(job, n);
out:
    BN_free(n);
    return rc;
}

static int s_cmp(const void *a, const void *b)
{
    const dp_num_t *x = a, *y = b;
    if (x->big || y->big) {
        if (!y->big)
            return 1;
        if (!x->big)
            return -1;
        return BN_cmp(x->big, y->big);
    }
    return (x->small > y->small) - (x->small < y->small);
}

int dp_num_factor(const dp_num_t *n, uint64_t deadline_us, dp_factors_t *f)
{
    if (dp_num_is_zero(n))
        return DP_ERR_INVALID;
    dp_num_job_t job = {.out = f, .deadline_us = deadline_us};
    size_t from = f->len;
    /* only numbers of 2^128 and above use BIGNUM scratch */
    if (n->big && !(job.bn = BN_CTX_new()))
        return DP_ERR_NOMEM;
    int rc = n->big ? s_trial_big(&job, n->big) : s_trial128(&job, n->small, 0);
    BN_CTX_free(job.bn);
    if (!rc && f->len > from)
        qsort(f->items + from, f->len - from, sizeof *f->items, s_cmp);
    return rc;
}
