/*
 * num_rho.c - Pollard-Brent rho (Brent 1980): x -> x^2 + c iterated in the
 * Montgomery domain (a different but equally random map; the gcd with n
 * does not see the factor R), differences multiplied together and one gcd
 * per DP_NUM_RHO_BATCH steps, backtracking when a batch collapses to n.
 */
#include "dp_num.h"

static inline uint64_t s_f64(uint64_t y, uint64_t c, uint64_t n, uint64_t ninv)
{
    return dp_mod64_add(dp_mont64_mul(y, y, n, ninv), c, n);
}

/* s_absdiff: |x - y|, as good as x - y mod n for the gcd and cheaper. */
static inline uint64_t s_absdiff(uint64_t x, uint64_t y)
{
    return x > y ? x - y : y - x;
}

/* Two walks in lockstep (increments c and c + 1): one walk's step is a
 * chain of dependent multiplications, so the second one costs little and
 * the first collision of two comes about 1.4 times sooner. */
typedef struct {
    uint64_t n, ninv, c[2];
    bool lazy; /* s_lf64 / s_lmul64 apply (n and c small enough) */
    uint64_t x[2], y[2], ys[2];
} s_rho64_t;

/* s_back64: redo the last batch of each walk one step at a time. */
static uint64_t s_back64(const s_rho64_t *w)
{
    for (int i = 0; i < 2; i++) {
        uint64_t ys = w->ys[i] % w->n; /* lazy walks run above n */
        for (unsigned k = 0; k < DP_NUM_RHO64_BATCH; k++) {
            ys = s_f64(ys, w->c[i], w->n, w->ninv);
            uint64_t g = dp_gcd64(s_absdiff(w->x[i], ys), w->n);
            if (g != 1)
                return g;
        }
    }
    return w->n;
}

/* s_lmul64 / s_lf64: Montgomery product and step without the final
 * subtraction, for n < DP_NUM_RHO64_LAZY: inputs below 2n + c keep a * b
 * below n R, so the result stays in (0, 2n) and the chain is shorter. */
static inline uint64_t s_lmul64(uint64_t a, uint64_t b, uint64_t n,
                                uint64_t ninv)
{
    dp_u128_t t = (dp_u128_t)a * b;
    uint64_t m = (uint64_t)t * ninv;
    uint64_t mh = (uint64_t)(((dp_u128_t)m * n) >> DP_NUM_WORD_BITS);
    return (uint64_t)(t >> DP_NUM_WORD_BITS) - mh + n;
}

static inline uint64_t s_lf64(uint64_t y, uint64_t c, uint64_t n, uint64_t ninv)
{
    return s_lmul64(y, y, n, ninv) + c;
}

/* s_batch64: m steps of both walks; the gcd of their product with n. */
static uint64_t s_batch64(s_rho64_t *w, unsigned m)
{
    uint64_t n = w->n, ninv = w->ninv, y0 = w->y[0], y1 = w->y[1];
    uint64_t q0 = 1, q1 = 1;
    w->ys[0] = y0;
    w->ys[1] = y1;
    if (w->lazy) {
        for (unsigned j = 0; j < m; j++) {
            y0 = s_lf64(y0, w->c[0], n, ninv);
            y1 = s_lf64(y1, w->c[1], n, ninv);
            q0 = s_lmul64(q0, s_absdiff(w->x[0], y0), n, ninv);
            q1 = s_lmul64(q1, s_absdiff(w->x[1], y1), n, ninv);
        }
    } else {
        for (unsigned j = 0; j < m; j++) {
            y0 = s_f64(y0, w->c[0], n, ninv);
            y1 = s_f64(y1, w->c[1], n, ninv);
            q0 = dp_mont64_mul(q0, s_absdiff(w->x[0], y0), n, ninv);
            q1 = dp_mont64_mul(q1, s_absdiff(w->x[1], y1), n, ninv);
        }
    }
    w->y[0] = y0;
    w->y[1] = y1;
    return dp_gcd64(dp_mont64_mul(q0 % n, q1 % n, n, ninv), n);
}

/* s_run64: r steps of both walks, no products. */
static void s_run64(s_rho64_t *w, uint64_t r)
{
    uint64_t n = w->n, ninv = w->ninv, y0 = w->y[0], y1 = w->y[1];
    if (w->lazy) {
        for (uint64_t k = 0; k < r; k++) {
            y0 = s_lf64(y0, w->c[0], n, ninv);
            y1 = s_lf64(y1, w->c[1], n, ninv);
        }
    } else {
        for (uint64_t k = 0; k < r; k++) {
            y0 = s_f64(y0, w->c[0], n, ninv);
            y1 = s_f64(y1, w->c[1], n, ninv);
        }
    }
    w->y[0] = y0;
    w->y[1] = y1;
}

int dp_num_rho64(dp_num_job_t *job, uint64_t n, uint64_t c, uint64_t *g)
{
    s_rho64_t w = {.n = n,
                   .ninv = dp_mont64_inv(n),
                   .c = {c, c + 1},
                   .y = {DP_NUM_RHO_SEED, DP_NUM_RHO_SEED},
                   .lazy = n < DP_NUM_RHO64_LAZY && c < DP_NUM_RHO64_LAZY_C};
    for (uint64_t r = 1;; r *= 2) {
        w.x[0] = w.y[0];
        w.x[1] = w.y[1];
        s_run64(&w, r);
        if (dp_num_tick(job, r))
            return DP_ERR_TIMEOUT;
        for (uint64_t k = 0; k < r; k += DP_NUM_RHO64_BATCH) {
            uint64_t left = r - k;
            unsigned m =
                left < DP_NUM_RHO64_BATCH ? (unsigned)left : DP_NUM_RHO64_BATCH;
            uint64_t d = s_batch64(&w, m);
            if (d != 1) {
                *g = d == n ? s_back64(&w) : d;
                return 0;
            }
            if (dp_num_tick(job, 2 * m))
                return DP_ERR_TIMEOUT;
        }
    }
}

static inline dp_u128_t s_f128(dp_u128_t y, dp_u128_t c, dp_u128_t n,
                               dp_u128_t ninv)
{
    return dp_mod128_add(dp_mont128_mul(y, y, n, ninv), c, n);
}

static dp_u128_t s_back128(dp_u128_t x, dp_u128_t ys, dp_u128_t c, dp_u128_t n,
                           dp_u128_t ninv)
{
    for (unsigned k = 0; k < DP_NUM_RHO_BATCH; k++) {
        ys = s_f128(ys, c, n, ninv);
        dp_u128_t g = dp_gcd128(dp_mod128_sub(x, ys, n), n);
        if (g != 1)
            return g;
    }
    return n;
}

int dp_num_rho128(dp_num_job_t *job, dp_u128_t n, uint64_t c, uint64_t budget,
                  dp_u128_t *g)
{
    dp_u128_t ninv = dp_mont128_inv(n), y = DP_NUM_RHO_SEED, q = 1;
    for (uint64_t r = 1; r <= budget; r *= 2) {
        dp_u128_t x = y;
        for (uint64_t k = 0; k < r; k++)
            y = s_f128(y, c, n, ninv);
        if (dp_num_tick(job, r))
            return DP_ERR_TIMEOUT;
        for (uint64_t k = 0; k < r; k += DP_NUM_RHO_BATCH) {
            dp_u128_t ys = y;
            uint64_t left = r - k;
            unsigned m =
                left < DP_NUM_RHO_BATCH ? (unsigned)left : DP_NUM_RHO_BATCH;
            for (unsigned j = 0; j < m; j++) {
                y = s_f128(y, c, n, ninv);
                q = dp_mont128_mul(q, dp_mod128_sub(x, y, n), n, ninv);
            }
            dp_u128_t d = dp_gcd128(q, n);
            if (d != 1) {
                *g = d == n ? s_back128(x, ys, c, n, ninv) : d;
                return 0;
            }
            if (dp_num_tick(job, 2 * m))
                return DP_ERR_TIMEOUT;
        }
    }
    *g = 1;
    return 0;
}

/* The BIGNUM walk: modulus, Montgomery context, scratch. */
typedef struct {
    const BIGNUM *n;
    const BIGNUM *c;
    BN_MONT_CTX *mont;
    BN_CTX *bn;
} s_walk_t;

static int s_fbn(const s_walk_t *w, BIGNUM *y)
{
    return BN_mod_mul_montgomery(y, y, y, w->mont, w->bn) &&
           BN_mod_add_quick(y, y, w->c, w->n);
}

/* s_back_bn: redo the batch from ys one step at a time; g = divisor. */
static int s_back_bn(const s_walk_t *w, const BIGNUM *x, BIGNUM *ys, BIGNUM *t,
                     BIGNUM *g)
{
    for (unsigned k = 0; k < DP_NUM_RHO_BATCH; k++) {
        if (!s_fbn(w, ys) || !BN_mod_sub_quick(t, x, ys, w->n) ||
            !BN_gcd(g, t, w->n, w->bn))
            return 0;
        if (!BN_is_one(g))
            return 1;
    }
    return BN_copy(g, w->n) != NULL;
}

/* s_batch_bn: up to m steps multiplying differences into q, then the
 * gcd into g. */
static int s_batch_bn(const s_walk_t *w, const BIGNUM *x, BIGNUM *y, BIGNUM *q,
                      BIGNUM *t, BIGNUM *g, unsigned m)
{
    for (unsigned j = 0; j < m; j++) {
        if (!s_fbn(w, y) || !BN_mod_sub_quick(t, x, y, w->n) ||
            !BN_mod_mul_montgomery(q, q, t, w->mont, w->bn))
            return 0;
    }
    return BN_gcd(g, q, w->n, w->bn);
}

/* s_walk_bn: the Brent loop; *done when g holds a divisor. */
static int s_walk_bn(dp_num_job_t *job, const s_walk_t *w, uint64_t budget,
                     BIGNUM *g, bool *done)
{
    BN_CTX_start(w->bn);
    BIGNUM *x = BN_CTX_get(w->bn), *y = BN_CTX_get(w->bn);
    BIGNUM *ys = BN_CTX_get(w->bn), *q = BN_CTX_get(w->bn);
    BIGNUM *t = BN_CTX_get(w->bn);
    int rc = DP_ERR_NOMEM;
    if (!t || !BN_set_word(y, DP_NUM_RHO_SEED) || !BN_one(q))
        goto out;
    for (uint64_t r = 1; r <= budget; r *= 2) {
        if (!BN_copy(x, y))
            goto out;
        for (uint64_t k = 0; k < r; k++) {
            if (!s_fbn(w, y))
                goto out;
        }
        if ((rc = dp_num_tick(job, r)) != 0)
            goto out;
        rc = DP_ERR_NOMEM;
        for (uint64_t k = 0; k < r; k += DP_NUM_RHO_BATCH) {
            uint64_t left = r - k;
            unsigned m =
                left < DP_NUM_RHO_BATCH ? (unsigned)left : DP_NUM_RHO_BATCH;
            if (!BN_copy(ys, y) || !s_batch_bn(w, x, y, q, t, g, m))
                goto out;
            if (!BN_is_one(g)) {
                *done = true;
                rc = BN_cmp(g, w->n) || s_back_bn(w, x, ys, t, g)
                         ? 0
                         : DP_ERR_NOMEM;
                goto out;
            }
            if ((rc = dp_num_tick(job, 2 * m)) != 0)
                goto out;
            rc = DP_ERR_NOMEM;
        }
    }
    rc = 0;
out:
    BN_CTX_end(w->bn);
    return rc;
}

int dp_num_rho_bn(dp_num_job_t *job, const BIGNUM *n, uint64_t c,
                  uint64_t budget, BIGNUM *g)
{
    BN_MONT_CTX *mont = BN_MONT_CTX_new();
    BIGNUM *cb = BN_new();
    int rc = DP_ERR_NOMEM;
    if (!mont || !cb || !BN_MONT_CTX_set(mont, n, job->bn) ||
        !BN_set_word(cb, (BN_ULONG)c))
        goto out;
    s_walk_t w = {n, cb, mont, job->bn};
    bool done = false;
    rc = s_walk_bn(job, &w, budget, g, &done);
    if (!rc && !done && !BN_one(g))
        rc = DP_ERR_NOMEM;
out:
    BN_free(cb);
    BN_MONT_CTX_free(mont);
    return rc;
}
