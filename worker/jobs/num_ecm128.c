/*
 * num_ecm128.c - the elliptic curve method below 2^128 in native words:
 * the algorithm of num_ecm.c (Suyama curves, x-only Montgomery ladder,
 * standard stage-2 continuation) with 128-bit Montgomery arithmetic, about
 * ten times faster than BIGNUM calls at this size.
 */
#include "dp_num.h"

typedef struct {
    dp_u128_t x, z;
} s_pt_t;

typedef struct {
    dp_num_job_t *job;
    dp_u128_t n, ninv, r2;
    dp_u128_t a24;                    /* (A + 2) / 4 */
    s_pt_t p;                         /* the curve point */
    s_pt_t s[DP_NUM_ECM_D + 1];       /* s[d] = [2d] p for stage 2 */
    dp_u128_t beta[DP_NUM_ECM_D + 1]; /* x z of s[d] */
} s_ecm_t;

static inline dp_u128_t s_mul(const s_ecm_t *e, dp_u128_t a, dp_u128_t b)
{
    return dp_mont128_mul(a, b, e->n, e->ninv);
}

static inline dp_u128_t s_add(const s_ecm_t *e, dp_u128_t a, dp_u128_t b)
{
    return dp_mod128_add(a, b, e->n);
}

static inline dp_u128_t s_sub(const s_ecm_t *e, dp_u128_t a, dp_u128_t b)
{
    return dp_mod128_sub(a, b, e->n);
}

/* s_mont: small v in Montgomery form. */
static dp_u128_t s_mont(const s_ecm_t *e, dp_u128_t v)
{
    return s_mul(e, v % e->n, e->r2);
}

static s_pt_t s_dbl(const s_ecm_t *e, s_pt_t p)
{
    dp_u128_t s = s_add(e, p.x, p.z), d = s_sub(e, p.x, p.z);
    s = s_mul(e, s, s);
    d = s_mul(e, d, d);
    dp_u128_t t = s_sub(e, s, d);
    s_pt_t r = {s_mul(e, s, d), s_mul(e, t, s_add(e, d, s_mul(e, e->a24, t)))};
    return r;
}

/* s_padd: p + q given d = p - q. */
static s_pt_t s_padd(const s_ecm_t *e, s_pt_t p, s_pt_t q, s_pt_t d)
{
    dp_u128_t u = s_mul(e, s_sub(e, p.x, p.z), s_add(e, q.x, q.z));
    dp_u128_t v = s_mul(e, s_add(e, p.x, p.z), s_sub(e, q.x, q.z));
    dp_u128_t w = s_add(e, u, v), y = s_sub(e, u, v);
    s_pt_t r = {s_mul(e, d.z, s_mul(e, w, w)), s_mul(e, d.x, s_mul(e, y, y))};
    return r;
}

/* s_ladder: [k] p for k >= 1. */
static s_pt_t s_ladder(const s_ecm_t *e, s_pt_t p, uint64_t k)
{
    s_pt_t a = p, b = s_dbl(e, p);
    for (int i = DP_NUM_WORD_BITS - 2 - __builtin_clzll(k); i >= 0; i--) {
        if ((k >> i) & 1) {
            a = s_padd(e, a, b, p);
            b = s_dbl(e, b);
        } else {
            b = s_padd(e, b, a, p);
            a = s_dbl(e, a);
        }
    }
    return a;
}

/* s_inverse: a^-1 mod n for gcd(a, n) = 1 (binary extended Euclid with
 * the coefficients kept mod n). */
static dp_u128_t s_inverse(dp_u128_t a, dp_u128_t n)
{
    dp_u128_t u = a, v = n, x1 = 1, x2 = 0;
    while (u != 1 && v != 1) {
        for (; !(u & 1); u >>= 1)
            x1 = dp_mod128_half(x1, n);
        for (; !(v & 1); v >>= 1)
            x2 = dp_mod128_half(x2, n);
        if (u >= v) {
            u -= v;
            x1 = dp_mod128_sub(x1, x2, n);
        } else {
            v -= u;
            x2 = dp_mod128_sub(x2, x1, n);
        }
    }
    return u == 1 ? x1 : x2;
}

/* s_curve_init: Suyama's curve and point for sigma; *g receives
 * gcd(denominator, n) (1 when the curve is usable). */
static void s_curve_init(s_ecm_t *e, uint64_t sigma, dp_u128_t *g)
{
    dp_u128_t sq = (dp_u128_t)sigma * sigma;
    dp_u128_t u = s_mont(e, sq - DP_NUM_SUYAMA_U);
    dp_u128_t v = s_mont(e, (dp_u128_t)sigma * DP_NUM_SUYAMA_V);
    dp_u128_t x = s_mul(e, s_mul(e, u, u), u), z = s_mul(e, s_mul(e, v, v), v);
    dp_u128_t w = s_sub(e, v, u);
    dp_u128_t num =
        s_mul(e, s_mul(e, s_mul(e, w, w), w),
              s_add(e, s_mul(e, u, s_mont(e, DP_NUM_SUYAMA_3U)), v));
    dp_u128_t den = s_mul(e, s_mul(e, x, v), s_mont(e, DP_NUM_SUYAMA_DEN));
    dp_u128_t plain = s_mul(e, den, 1);
    *g = dp_gcd128(plain, e->n);
    if (*g != 1)
        return;
    e->a24 = s_mul(e, num, s_mul(e, s_inverse(plain, e->n), e->r2));
    e->p = (s_pt_t){x, z};
}

/* s_stage1: p = [prime powers <= b1] p; *next = the first prime > b1. */
static int s_stage1(s_ecm_t *e, dp_num_primes_t *it, uint64_t b1,
                    uint64_t *next)
{
    uint64_t p;
    while ((p = dp_num_primes_next(it)) != 0 && p <= b1) {
        uint64_t q = p;
        while (q <= b1 / p)
            q *= p;
        e->p = s_ladder(e, e->p, q);
        int bits = DP_NUM_WORD_BITS - __builtin_clzll(q);
        if (dp_num_tick(e->job, (uint64_t)bits * DP_NUM_ECM_LADDER_COST))
            return DP_ERR_TIMEOUT;
    }
    *next = p;
    return 0;
}

/* s_stage2: the product over primes q in (b1, B2] of the cross terms
 * X_R Z_S - X_S Z_R (see num_ecm.c) into *acc. */
static int s_stage2(s_ecm_t *e, dp_num_primes_t *it, uint64_t b1, uint64_t q,
                    dp_u128_t *acc)
{
    s_pt_t *s = e->s;
    s[1] = s_dbl(e, e->p);
    s[2] = s_dbl(e, s[1]);
    for (unsigned d = 3; d <= DP_NUM_ECM_D; d++)
        s[d] = s_padd(e, s[d - 1], s[1], s[d - 2]);
    for (unsigned d = 1; d <= DP_NUM_ECM_D; d++)
        e->beta[d] = s_mul(e, s[d].x, s[d].z);
    uint64_t r = (b1 & 1) ? b1 : b1 - 1, w = 2 * DP_NUM_ECM_D;
    if (r <= w)
        r = w + 1;
    s_pt_t t = s_ladder(e, e->p, r - w), pr = s_ladder(e, e->p, r);
    dp_u128_t alpha = s_mul(e, pr.x, pr.z), a = 1;
    for (; q != 0; q = dp_num_primes_next(it)) {
        while (q > r + w) {
            s_pt_t next = s_padd(e, pr, s[DP_NUM_ECM_D], t);
            t = pr;
            pr = next;
            r += w;
            alpha = s_mul(e, pr.x, pr.z);
        }
        unsigned d = (unsigned)((q - r) / 2);
        dp_u128_t c = s_mul(e, s_sub(e, pr.x, s[d].x), s_add(e, pr.z, s[d].z));
        a = s_mul(e, a, s_add(e, s_sub(e, c, alpha), e->beta[d]));
        if (dp_num_tick(e->job, DP_NUM_ECM_PRIME_COST))
            return DP_ERR_TIMEOUT;
    }
    *acc = a;
    return 0;
}

/* s_curve: one curve with bounds b1, b1 * DP_NUM_ECM_B2_FACTOR; *g is a
 * proper divisor when found. */
static int s_curve(s_ecm_t *e, uint64_t sigma, uint64_t b1, dp_u128_t *g)
{
    s_curve_init(e, sigma, g);
    if (*g != 1)
        return 0;
    dp_num_primes_t it;
    if (dp_num_primes_init(&it, b1 * DP_NUM_ECM_B2_FACTOR))
        return DP_ERR_NOMEM;
    uint64_t next = 0;
    dp_u128_t acc = 0;
    int rc = s_stage1(e, &it, b1, &next);
    if (!rc)
        *g = dp_gcd128(e->p.z, e->n);
    if (!rc && *g == 1) {
        rc = s_stage2(e, &it, b1, next, &acc);
        if (!rc)
            *g = dp_gcd128(acc, e->n);
    }
    dp_num_primes_free(&it);
    return rc;
}

int dp_num_ecm128(dp_num_job_t *job, dp_u128_t n, dp_u128_t *g)
{
    static const struct {
        uint64_t b1, curves;
    } plan[] = DP_NUM_ECM_PLAN;
    size_t nplan = sizeof plan / sizeof plan[0];
    s_ecm_t e = {.job = job, .n = n};
    e.ninv = dp_mont128_inv(n);
    e.r2 = (0 - n) % n;
    for (int k = 0; k < 2 * DP_NUM_WORD_BITS; k++)
        e.r2 = dp_mod128_add(e.r2, e.r2, n);
    uint64_t sigma = DP_NUM_ECM_SIGMA0;
    for (size_t k = 0;; k += k + 1 < nplan) {
        for (uint64_t c = 0; c < plan[k].curves; c++) {
            int rc = s_curve(&e, sigma++, plan[k].b1, g);
            if (rc || (*g != 1 && *g != n))
                return rc;
        }
    }
}
