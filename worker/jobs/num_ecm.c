/*
 * num_ecm.c - Lenstra's elliptic curve method on BIGNUMs: Montgomery
 * curves By^2 = x^3 + Ax^2 + x in Suyama's parametrization, x-only
 * projective arithmetic (X:Z) in the Montgomery domain, stage 1 by a
 * Montgomery ladder per prime power up to B1, stage 2 by the standard
 * continuation over primes up to B2 (Crandall & Pomerance, Algorithm
 * 7.4.4). It finds factors of 15-25 digits in well under a second where
 * rho would need minutes.
 */
#include "dp_num.h"

typedef struct {
    BIGNUM *x, *z;
} s_pt_t;

/* Slots of the BIGNUM pool: scalars, then points, then stage-2 betas. */
enum {
    S_A24,
    S_T0,
    S_T1,
    S_T2,
    S_T3,
    S_ACC,
    S_ALPHA,
    S_NSCALAR,
    S_NPTS = 6 + DP_NUM_ECM_D + 1, /* p, r0, r1, pr, pt, pn, s[0..D] */
    S_NSLOTS = S_NSCALAR + 2 * S_NPTS + DP_NUM_ECM_D + 1
};

typedef struct {
    dp_num_job_t *job;
    const BIGNUM *n;
    BN_MONT_CTX *mont;
    BN_CTX *bn;
    BIGNUM *v[S_NSLOTS];
    BIGNUM *a24, *t[4], *acc, *alpha;
    s_pt_t p, r0, r1, pr, pt, pn;   /* curve point, ladder, R, T, next R */
    s_pt_t s[DP_NUM_ECM_D + 1];     /* s[d] = [2d] Q for stage 2 */
    BIGNUM *beta[DP_NUM_ECM_D + 1]; /* x * z of s[d] */
} s_ecm_t;

static void s_ecm_free(s_ecm_t *e)
{
    for (size_t k = 0; k < S_NSLOTS; k++)
        BN_free(e->v[k]);
    BN_MONT_CTX_free(e->mont);
}

static void s_wire(s_ecm_t *e)
{
    BIGNUM **v = e->v;
    e->a24 = v[S_A24];
    for (size_t k = 0; k < sizeof e->t / sizeof e->t[0]; k++)
        e->t[k] = v[S_T0 + k];
    e->acc = v[S_ACC];
    e->alpha = v[S_ALPHA];
    s_pt_t *pts[] = {&e->p, &e->r0, &e->r1, &e->pr, &e->pt, &e->pn};
    size_t np = sizeof pts / sizeof pts[0];
    for (size_t k = 0; k < S_NPTS; k++) {
        s_pt_t *pt = k < np ? pts[k] : &e->s[k - np];
        pt->x = v[S_NSCALAR + 2 * k];
        pt->z = v[S_NSCALAR + 2 * k + 1];
    }
    for (size_t d = 0; d <= DP_NUM_ECM_D; d++)
        e->beta[d] = v[S_NSCALAR + 2 * S_NPTS + d];
}

static int s_ecm_new(s_ecm_t *e, dp_num_job_t *job, const BIGNUM *n)
{
    *e = (s_ecm_t){.job = job, .n = n, .bn = job->bn};
    e->mont = BN_MONT_CTX_new();
    int ok = e->mont && BN_MONT_CTX_set(e->mont, n, e->bn);
    for (size_t k = 0; ok && k < S_NSLOTS; k++)
        ok = (e->v[k] = BN_new()) != NULL;
    if (!ok) {
        s_ecm_free(e);
        return DP_ERR_NOMEM;
    }
    s_wire(e);
    return 0;
}

static int s_mul(s_ecm_t *e, BIGNUM *r, const BIGNUM *a, const BIGNUM *b)
{
    return BN_mod_mul_montgomery(r, a, b, e->mont, e->bn);
}

static int s_copy(s_pt_t *r, const s_pt_t *p)
{
    return BN_copy(r->x, p->x) && BN_copy(r->z, p->z);
}

/* s_dbl: r = 2p (r may be p). */
static int s_dbl(s_ecm_t *e, s_pt_t *r, const s_pt_t *p)
{
    BIGNUM **t = e->t;
    const BIGNUM *n = e->n;
    return BN_mod_add_quick(t[0], p->x, p->z, n) &&
           BN_mod_sub_quick(t[1], p->x, p->z, n) &&
           s_mul(e, t[0], t[0], t[0]) && s_mul(e, t[1], t[1], t[1]) &&
           BN_mod_sub_quick(t[2], t[0], t[1], n) &&
           s_mul(e, r->x, t[0], t[1]) && s_mul(e, t[3], e->a24, t[2]) &&
           BN_mod_add_quick(t[3], t[3], t[1], n) && s_mul(e, r->z, t[2], t[3]);
}

/* s_add: r = p + q given d = p - q (r may be p or q, not d). */
static int s_add(s_ecm_t *e, s_pt_t *r, const s_pt_t *p, const s_pt_t *q,
                 const s_pt_t *d)
{
    BIGNUM **t = e->t;
    const BIGNUM *n = e->n;
    return BN_mod_sub_quick(t[0], p->x, p->z, n) &&
           BN_mod_add_quick(t[1], q->x, q->z, n) &&
           s_mul(e, t[0], t[0], t[1]) &&
           BN_mod_add_quick(t[1], p->x, p->z, n) &&
           BN_mod_sub_quick(t[2], q->x, q->z, n) &&
           s_mul(e, t[1], t[1], t[2]) &&
           BN_mod_add_quick(t[2], t[0], t[1], n) &&
           BN_mod_sub_quick(t[3], t[0], t[1], n) &&
           s_mul(e, t[2], t[2], t[2]) && s_mul(e, t[3], t[3], t[3]) &&
           s_mul(e, r->x, d->z, t[2]) && s_mul(e, r->z, d->x, t[3]);
}

/* s_ladder: r = [k] p for k >= 1 (r may be p). */
static int s_ladder(s_ecm_t *e, s_pt_t *r, const s_pt_t *p, uint64_t k)
{
    s_pt_t *a = &e->r0, *b = &e->r1;
    int ok = s_copy(a, p) && s_dbl(e, b, p);
    int top = DP_NUM_WORD_BITS - 1 - __builtin_clzll(k);
    for (int i = top - 1; ok && i >= 0; i--) {
        if ((k >> i) & 1)
            ok = s_add(e, a, a, b, p) && s_dbl(e, b, b);
        else
            ok = s_add(e, b, b, a, p) && s_dbl(e, a, a);
    }
    return ok && s_copy(r, a);
}

/* s_curve_init: the curve and point of Suyama's sigma, in Montgomery
 * form. *g receives gcd(denominator, n) (1 when the curve is usable). */
static int s_curve_init(s_ecm_t *e, uint64_t sigma, BIGNUM *g)
{
    BIGNUM *u = e->t[0], *v = e->t[1], *num = e->t[2], *den = e->t[3];
    BIGNUM *x = e->p.x, *z = e->p.z;
    const BIGNUM *n = e->n;
    BN_CTX *bn = e->bn;
    int ok =
        BN_set_word(u, sigma) && BN_sqr(u, u, bn) &&
        BN_sub_word(u, DP_NUM_SUYAMA_U) && BN_nnmod(u, u, n, bn) &&
        BN_set_word(v, sigma) && BN_mul_word(v, DP_NUM_SUYAMA_V) &&
        BN_nnmod(v, v, n, bn) && BN_mod_sqr(x, u, n, bn) &&
        BN_mod_mul(x, x, u, n, bn) && BN_mod_sqr(z, v, n, bn) &&
        BN_mod_mul(z, z, v, n, bn) && BN_mod_sub(num, v, u, n, bn) &&
        BN_mod_sqr(e->acc, num, n, bn) && BN_mod_mul(num, num, e->acc, n, bn) &&
        BN_copy(e->acc, u) && BN_mul_word(e->acc, DP_NUM_SUYAMA_3U) &&
        BN_mod_add(e->acc, e->acc, v, n, bn) &&
        BN_mod_mul(num, num, e->acc, n, bn) && BN_mod_mul(den, x, v, n, bn) &&
        BN_mul_word(den, DP_NUM_SUYAMA_DEN) && BN_nnmod(den, den, n, bn) &&
        BN_gcd(g, den, n, bn);
    if (!ok)
        return DP_ERR_NOMEM;
    if (!BN_is_one(g))
        return 0;
    ok = BN_mod_inverse(den, den, n, bn) &&
         BN_mod_mul(e->a24, num, den, n, bn) &&
         BN_to_montgomery(e->a24, e->a24, e->mont, bn) &&
         BN_to_montgomery(x, x, e->mont, bn) &&
         BN_to_montgomery(z, z, e->mont, bn);
    return ok ? 0 : DP_ERR_NOMEM;
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
        if (!s_ladder(e, &e->p, &e->p, q))
            return DP_ERR_NOMEM;
        int bits = DP_NUM_WORD_BITS - __builtin_clzll(q);
        if (dp_num_tick(e->job, (uint64_t)bits * DP_NUM_ECM_LADDER_COST))
            return DP_ERR_TIMEOUT;
    }
    *next = p;
    return 0;
}

/* s_stage2_table: s[d] = [2d] p and beta[d] = x z for d = 1..D. */
static int s_stage2_table(s_ecm_t *e)
{
    s_pt_t *s = e->s;
    int ok = s_dbl(e, &s[1], &e->p) && s_dbl(e, &s[2], &s[1]);
    for (unsigned d = 3; ok && d <= DP_NUM_ECM_D; d++)
        ok = s_add(e, &s[d], &s[d - 1], &s[1], &s[d - 2]);
    for (unsigned d = 1; ok && d <= DP_NUM_ECM_D; d++)
        ok = s_mul(e, e->beta[d], s[d].x, s[d].z);
    return ok;
}

/* s_stage2_prime: acc *= X_R Z_S - X_S Z_R for S = s[delta], written as
 * (X_R - X_S)(Z_R + Z_S) - alpha + beta: one multiplication saved. */
static int s_stage2_prime(s_ecm_t *e, unsigned delta)
{
    BIGNUM **t = e->t;
    const s_pt_t *s = &e->s[delta];
    const BIGNUM *n = e->n;
    return BN_mod_sub_quick(t[0], e->pr.x, s->x, n) &&
           BN_mod_add_quick(t[1], e->pr.z, s->z, n) &&
           s_mul(e, t[0], t[0], t[1]) &&
           BN_mod_sub_quick(t[0], t[0], e->alpha, n) &&
           BN_mod_add_quick(t[0], t[0], e->beta[delta], n) &&
           s_mul(e, e->acc, e->acc, t[0]);
}

/* s_stage2_step: (R, T) = (R + [2D] p, R), r += 2D. */
static int s_stage2_step(s_ecm_t *e)
{
    int ok = s_add(e, &e->pn, &e->pr, &e->s[DP_NUM_ECM_D], &e->pt);
    s_pt_t old_t = e->pt;
    e->pt = e->pr;
    e->pr = e->pn;
    e->pn = old_t;
    return ok && s_mul(e, e->alpha, e->pr.x, e->pr.z);
}

/* s_stage2: acc = product over the primes q in (b1, B2] of the cross
 * terms that vanish mod p when [q] p is the identity mod p. */
static int s_stage2(s_ecm_t *e, dp_num_primes_t *it, uint64_t b1, uint64_t q)
{
    uint64_t r = (b1 & 1) ? b1 : b1 - 1, w = 2 * DP_NUM_ECM_D;
    if (r <= w)
        r = w + 1;
    int ok = s_stage2_table(e) && s_ladder(e, &e->pt, &e->p, r - w) &&
             s_ladder(e, &e->pr, &e->p, r) &&
             s_mul(e, e->alpha, e->pr.x, e->pr.z) && BN_one(e->acc);
    for (; ok && q != 0; q = dp_num_primes_next(it)) {
        while (ok && q > r + w) {
            ok = s_stage2_step(e);
            r += w;
            if (dp_num_tick(e->job, DP_NUM_ECM_LADDER_COST))
                return DP_ERR_TIMEOUT;
        }
        ok = ok && s_stage2_prime(e, (unsigned)((q - r) / 2));
        if (dp_num_tick(e->job, DP_NUM_ECM_PRIME_COST))
            return DP_ERR_TIMEOUT;
    }
    return ok ? 0 : DP_ERR_NOMEM;
}

/* s_split: gcd(x, n) into g; *found when a proper divisor. */
static int s_split(s_ecm_t *e, const BIGNUM *x, BIGNUM *g, bool *found,
                   bool *whole)
{
    if (!BN_gcd(g, x, e->n, e->bn))
        return DP_ERR_NOMEM;
    *whole = BN_cmp(g, e->n) == 0;
    *found = !BN_is_one(g) && !*whole;
    return 0;
}

/* s_curve: one curve with bounds b1, b1 * DP_NUM_ECM_B2_FACTOR. */
static int s_curve(s_ecm_t *e, uint64_t sigma, uint64_t b1, BIGNUM *g,
                   bool *found)
{
    bool whole = false;
    int rc = s_curve_init(e, sigma, g);
    *found = !rc && !BN_is_one(g) && BN_cmp(g, e->n) != 0;
    if (rc || !BN_is_one(g))
        return rc;
    dp_num_primes_t it;
    if (dp_num_primes_init(&it, b1 * DP_NUM_ECM_B2_FACTOR))
        return DP_ERR_NOMEM;
    uint64_t next = 0;
    rc = s_stage1(e, &it, b1, &next);
    if (!rc)
        rc = s_split(e, e->p.z, g, found, &whole);
    if (!rc && !*found && !whole) {
        rc = s_stage2(e, &it, b1, next);
        if (!rc)
            rc = s_split(e, e->acc, g, found, &whole);
    }
    dp_num_primes_free(&it);
    return rc;
}

int dp_num_ecm_bn(dp_num_job_t *job, const BIGNUM *n, BIGNUM *g)
{
    static const struct {
        uint64_t b1, curves;
    } plan[] = DP_NUM_ECM_PLAN;
    size_t nplan = sizeof plan / sizeof plan[0];
    s_ecm_t e;
    int rc = s_ecm_new(&e, job, n);
    if (rc)
        return rc;
    uint64_t sigma = DP_NUM_ECM_SIGMA0;
    for (size_t k = 0;; k += k + 1 < nplan) {
        bool found = false;
        for (uint64_t c = 0; !rc && !found && c < plan[k].curves; c++)
            rc = s_curve(&e, sigma++, plan[k].b1, g, &found);
        if (rc || found)
            break;
    }
    s_ecm_free(&e);
    return rc;
}
