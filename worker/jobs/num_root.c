/*
 * num_root.c - integer k-th roots (perfect-power detection, the square
 * test of BPSW): a floating-point estimate, then integer Newton steps,
 * which from any start land on or above floor(n^(1/k)) and then descend
 * to it.
 */
#include <math.h>

#include "dp_num.h"

/* s_pow_le: whether r^k <= n, without overflow. */
static bool s_pow_le(dp_u128_t r, unsigned k, dp_u128_t n)
{
    dp_u128_t p = 1;
    for (unsigned j = 0; j < k; j++) {
        if (__builtin_mul_overflow(p, r, &p) || p > n)
            return false;
    }
    return true;
}

static dp_u128_t s_isqrt128(dp_u128_t n)
{
    double est = sqrt((double)n) * (1 + DP_NUM_ROOT_MARGIN) + 1;
    dp_u128_t x = (dp_u128_t)est, cap = UINT64_MAX;
    if (x > cap)
        x = cap;
    x = (x + n / x) / 2;
    for (;;) {
        dp_u128_t y = (x + n / x) / 2;
        if (y >= x)
            return x;
        x = y;
    }
}

dp_u128_t dp_num_iroot_u128(dp_u128_t n, unsigned k)
{
    if (n < 2)
        return n;
    if (k == 2)
        return s_isqrt128(n);
    /* below 2^43 for k >= 3: the estimate is off by at most one */
    dp_u128_t r = (dp_u128_t)pow((double)n, 1.0 / k);
    while (r > 1 && !s_pow_le(r, k, n))
        r--;
    while (s_pow_le(r + 1, k, n))
        r++;
    return r;
}

/* s_estimate_bn: about n^(1/k), at least 1, into x. */
static int s_estimate_bn(const BIGNUM *n, unsigned k, BIGNUM *x)
{
    int bits = BN_num_bits(n),
        sh = bits > DP_NUM_WORD_BITS ? bits - DP_NUM_WORD_BITS : 0;
    if (!BN_rshift(x, n, sh))
        return 0;
    double l = log2((double)BN_get_word(x)) + sh;
    double e = l / k;
    double whole = floor(e);
    uint64_t m;
    if (e < DP_NUM_MANT_BITS) {
        m = (uint64_t)(exp2(e) * (1 + DP_NUM_ROOT_MARGIN)) + 1;
        return BN_set_word(x, m);
    }
    m = (uint64_t)(exp2(e - whole + DP_NUM_MANT_BITS) *
                   (1 + DP_NUM_ROOT_MARGIN)) +
        1;
    return BN_set_word(x, m) && BN_lshift(x, x, (int)whole - DP_NUM_MANT_BITS);
}

/* s_newton_bn: y = ((k - 1) x + n / x^(k-1)) / k. */
static int s_newton_bn(const BIGNUM *n, unsigned k, const BIGNUM *x, BIGNUM *y,
                       BIGNUM *t, BN_CTX *bn)
{
    return BN_set_word(t, k - 1) && BN_exp(t, x, t, bn) &&
           BN_div(t, NULL, n, t, bn) && BN_copy(y, x) &&
           BN_mul_word(y, k - 1) && BN_add(y, y, t) &&
           BN_div_word(y, k) != (BN_ULONG)-1;
}

int dp_num_iroot_bn(const BIGNUM *n, unsigned k, BIGNUM *r, bool *exact,
                    BN_CTX *bn)
{
    *exact = false;
    if (BN_num_bits(n) < 2) {
        *exact = true;
        return BN_copy(r, n) ? 0 : DP_ERR_NOMEM;
    }
    BN_CTX_start(bn);
    BIGNUM *y = BN_CTX_get(bn), *t = BN_CTX_get(bn);
    int ok = t && s_estimate_bn(n, k, r) && s_newton_bn(n, k, r, y, t, bn) &&
             BN_copy(r, y);
    while (ok) {
        ok = s_newton_bn(n, k, r, y, t, bn);
        if (!ok || BN_cmp(y, r) >= 0)
            break;
        ok = BN_copy(r, y) != NULL;
    }
    ok = ok && BN_set_word(t, k) && BN_exp(y, r, t, bn);
    *exact = ok && BN_cmp(y, n) == 0;
    BN_CTX_end(bn);
    return ok ? 0 : DP_ERR_NOMEM;
}
