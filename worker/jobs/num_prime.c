/*
 * num_prime.c - primality: deterministic Miller-Rabin below 2^64, BPSW
 * (Miller-Rabin base 2 + strong Lucas with Selfridge's parameters) on
 * 128-bit words and on BIGNUMs. BPSW has no known counterexample and none
 * exists below 2^64 (Feitsma's list of base-2 pseudoprimes).
 */
#include "dp_num.h"

/* ---- Jacobi symbols ---- */

/* s_jacobi: (a/m) for odd m >= 1. */
static int s_jacobi(uint64_t a, uint64_t m)
{
    int j = 1;
    a %= m;
    while (a) {
        while (!(a & 1)) {
            a >>= 1;
            uint64_t r = m % DP_NUM_MOD8;
            if (r == 3 || r == 5)
                j = -j;
        }
        uint64_t t = a;
        a = m;
        m = t;
        if ((a & DP_NUM_MOD4_MASK) == 3 && (m & DP_NUM_MOD4_MASK) == 3)
            j = -j;
        a %= m;
    }
    return m == 1 ? j : 0;
}

/* s_jacobi_d: (D/n) for odd D, odd n > |D|, from n mod |D| and n mod 4. */
static int s_jacobi_d(int64_t d, uint64_t n_mod_d, unsigned n_mod4)
{
    uint64_t m = d < 0 ? (uint64_t)-d : (uint64_t)d;
    int j = s_jacobi(n_mod_d, m);
    if ((m & DP_NUM_MOD4_MASK) == 3 && n_mod4 == 3)
        j = -j;
    if (d < 0 && n_mod4 == 3)
        j = -j;
    return j;
}

/* s_next_d: the Selfridge sequence 5, -7, 9, -11, ... */
static int64_t s_next_d(int64_t d)
{
    return d > 0 ? -(d + 2) : -d + 2;
}

/* ---- below 2^64 ---- */

typedef struct {
    uint64_t n, ninv, one, r2; /* modulus, n^-1, R mod n, R^2 mod n */
} s_mont64_t;

static void s_mont64_init(s_mont64_t *m, uint64_t n)
{
    m->n = n;
    m->ninv = dp_mont64_inv(n);
    m->one = (uint64_t)(((dp_u128_t)1 << DP_NUM_WORD_BITS) % n);
    m->r2 = (uint64_t)(((dp_u128_t)m->one << DP_NUM_WORD_BITS) % n);
}

static bool s_sprp64(const s_mont64_t *m, uint64_t a)
{
    uint64_t n = m->n, mone = n - m->one;
    a %= n;
    if (a == 0)
        return true;
    uint64_t d = n - 1;
    int s = __builtin_ctzll(d);
    d >>= s;
    uint64_t x = dp_mont64_mul(a, m->r2, n, m->ninv), y = m->one;
    for (; d; d >>= 1) {
        if (d & 1)
            y = dp_mont64_mul(y, x, n, m->ninv);
        x = dp_mont64_mul(x, x, n, m->ninv);
    }
    if (y == m->one || y == mone)
        return true;
    for (int k = 1; k < s; k++) {
        y = dp_mont64_mul(y, y, n, m->ninv);
        if (y == mone)
            return true;
        if (y == m->one)
            return false;
    }
    return false;
}

bool dp_num_sprp_u64(uint64_t n, uint64_t a)
{
    s_mont64_t m;
    s_mont64_init(&m, n);
    return s_sprp64(&m, a);
}

/* s_sprp64_all: whether n is a strong probable prime to all nb <=
 * DP_NUM_MR_LANES bases, the powers computed side by side: one power is a
 * chain of dependent multiplications, several fill the multiplier. */
static bool s_sprp64_all(const s_mont64_t *m, const uint64_t *b, size_t nb)
{
    uint64_t n = m->n, mone = n - m->one, d = n - 1;
    uint64_t x[DP_NUM_MR_LANES], y[DP_NUM_MR_LANES];
    int s = __builtin_ctzll(d);
    d >>= s;
    for (size_t i = 0; i < nb; i++) {
        x[i] = dp_mont64_mul(b[i] % n, m->r2, n, m->ninv);
        y[i] = m->one;
    }
    for (; d; d >>= 1) {
        if (d & 1) {
            for (size_t i = 0; i < nb; i++)
                y[i] = dp_mont64_mul(y[i], x[i], n, m->ninv);
        }
        for (size_t i = 0; i < nb; i++)
            x[i] = dp_mont64_mul(x[i], x[i], n, m->ninv);
    }
    for (size_t i = 0; i < nb; i++) {
        bool pass = y[i] == m->one || y[i] == mone || b[i] % n == 0;
        for (int k = 1; k < s && !pass; k++) {
            y[i] = dp_mont64_mul(y[i], y[i], n, m->ninv);
            if (y[i] == m->one)
                break;
            pass = y[i] == mone;
        }
        if (!pass)
            return false;
    }
    return true;
}

/* dp_num_mr64: base 2 alone first (it rejects almost every composite),
 * then the other bases together. */
bool dp_num_mr64(uint64_t n)
{
    static const uint64_t b32[] = DP_NUM_MR32_BASES;
    static const uint64_t b64[] = DP_NUM_MR64_BASES;
    bool small = n >> (DP_NUM_WORD_BITS / 2) == 0;
    const uint64_t *b = small ? b32 : b64;
    size_t nb = small ? sizeof b32 / sizeof *b32 : sizeof b64 / sizeof *b64;
    s_mont64_t m;
    s_mont64_init(&m, n);
    return s_sprp64(&m, b[0]) && s_sprp64_all(&m, b + 1, nb - 1);
}

/* s_trial_verdict: 1 prime, 0 composite, -1 unknown (no factor below
 * DP_NUM_TRIAL_BOUND) for n >= 2, by division by the small primes. */
static int s_trial_verdict(dp_u128_t n)
{
    if (!(n & 1))
        return n == 2;
    for (size_t k = 0; k < DP_NUM_TRIAL_COUNT; k++) {
        const dp_num_prime_t *p = &dp_num_trial_primes[k];
        if ((dp_u128_t)p->p * p->p > n)
            return 1;
        dp_u128_t q;
        if (dp_divides128(n, p, &q))
            return n == p->p;
    }
    return -1;
}

bool dp_num_isprime_u64(uint64_t n)
{
    if (n < 2)
        return false;
    int v = s_trial_verdict(n);
    return v >= 0 ? v == 1 : dp_num_mr64(n);
}

/* ---- below 2^128 ---- */

typedef struct {
    dp_u128_t n, ninv, one, r2;
} s_mont128_t;

static void s_mont128_init(s_mont128_t *m, dp_u128_t n)
{
    m->n = n;
    m->ninv = dp_mont128_inv(n);
    m->one = (0 - n) % n;
    dp_u128_t r2 = m->one;
    for (int k = 0; k < 2 * DP_NUM_WORD_BITS; k++)
        r2 = dp_mod128_add(r2, r2, n);
    m->r2 = r2;
}

static dp_u128_t s_mul128(const s_mont128_t *m, dp_u128_t a, dp_u128_t b)
{
    return dp_mont128_mul(a, b, m->n, m->ninv);
}

/* s_small128: the small signed v in Montgomery form. */
static dp_u128_t s_small128(const s_mont128_t *m, int64_t v)
{
    uint64_t a = v < 0 ? (uint64_t)-v : (uint64_t)v;
    dp_u128_t x = s_mul128(m, a % m->n, m->r2);
    return v < 0 && x ? m->n - x : x;
}

static bool s_sprp2_128(const s_mont128_t *m)
{
    dp_u128_t n = m->n, mone = n - m->one, d = n - 1;
    int s = dp_u128_ctz(d);
    d >>= s;
    dp_u128_t x = dp_mod128_add(m->one, m->one, n), y = m->one;
    for (; d; d >>= 1) {
        if (d & 1)
            y = s_mul128(m, y, x);
        x = s_mul128(m, x, x);
    }
    if (y == m->one || y == mone)
        return true;
    for (int k = 1; k < s; k++) {
        y = s_mul128(m, y, y);
        if (y == mone)
            return true;
        if (y == m->one)
            return false;
    }
    return false;
}

/* s_selfridge128: Selfridge's D for n into *d; false when n is proved
 * composite (a square, or sharing a factor with some D). */
static bool s_selfridge128(dp_u128_t n, int64_t *d)
{
    dp_u128_t r = dp_num_iroot_u128(n, 2);
    if (r * r == n)
        return false;
    for (int64_t D = DP_NUM_LUCAS_D0;; D = s_next_d(D)) {
        uint64_t ad = D < 0 ? (uint64_t)-D : (uint64_t)D;
        int j =
            s_jacobi_d(D, (uint64_t)(n % ad), (unsigned)(n & DP_NUM_MOD4_MASK));
        if (j == 0 && n != ad)
            return false;
        if (j == -1) {
            *d = D;
            return true;
        }
    }
}

static bool s_lucas128(const s_mont128_t *m, int64_t D)
{
    dp_u128_t n = m->n, k = n + 1;
    if (k == 0)
        return false; /* 2^128 - 1 = 3 * 5 * 17 * ... */
    int s = dp_u128_ctz(k);
    k >>= s;
    dp_u128_t dm = s_small128(m, D), q = s_small128(m, (1 - D) / 4);
    dp_u128_t u = m->one, v = m->one, qk = q;
    for (int b = dp_u128_bits(k) - 2; b >= 0; b--) {
        u = s_mul128(m, u, v);
        v = dp_mod128_sub(s_mul128(m, v, v), dp_mod128_add(qk, qk, n), n);
        qk = s_mul128(m, qk, qk);
        if ((k >> b) & 1) {
            dp_u128_t u2 = dp_mod128_add(u, v, n);
            dp_u128_t v2 = dp_mod128_add(s_mul128(m, dm, u), v, n);
            u = dp_mod128_half(u2, n);
            v = dp_mod128_half(v2, n);
            qk = s_mul128(m, qk, q);
        }
    }
    if (u == 0 || v == 0)
        return true;
    for (int r = 1; r < s; r++) {
        v = dp_mod128_sub(s_mul128(m, v, v), dp_mod128_add(qk, qk, n), n);
        if (v == 0)
            return true;
        qk = s_mul128(m, qk, qk);
    }
    return false;
}

bool dp_num_bpsw128(dp_u128_t n)
{
    s_mont128_t m;
    s_mont128_init(&m, n);
    if (!s_sprp2_128(&m))
        return false;
    int64_t d;
    return s_selfridge128(n, &d) && s_lucas128(&m, d);
}

bool dp_num_isprime_u128(dp_u128_t n)
{
    if (!(n >> DP_NUM_WORD_BITS))
        return dp_num_isprime_u64((uint64_t)n);
    int v = s_trial_verdict(n);
    return v >= 0 ? v == 1 : dp_num_bpsw128(n);
}

/* ---- BIGNUMs ---- */

/* s_sprp2_bn: whether odd n is a strong probable prime to base 2. */
static int s_sprp2_bn(const BIGNUM *n, BN_CTX *bn, BN_MONT_CTX *mont,
                      bool *pass)
{
    BN_CTX_start(bn);
    BIGNUM *d = BN_CTX_get(bn), *y = BN_CTX_get(bn);
    BIGNUM *nm1 = BN_CTX_get(bn), *two = BN_CTX_get(bn);
    int ok = two && BN_sub(nm1, n, BN_value_one()) && BN_set_word(two, 2);
    int s = 0;
    while (ok && !BN_is_bit_set(nm1, s))
        s++;
    ok = ok && BN_rshift(d, nm1, s) && BN_mod_exp_mont(y, two, d, n, bn, mont);
    *pass = ok && (BN_is_one(y) || BN_cmp(y, nm1) == 0);
    for (int k = 1; ok && k < s && !*pass; k++) {
        ok = BN_mod_sqr(y, y, n, bn);
        if (BN_is_one(y))
            break;
        *pass = BN_cmp(y, nm1) == 0;
    }
    BN_CTX_end(bn);
    return ok ? 0 : DP_ERR_NOMEM;
}

/* s_selfridge_bn: Selfridge's D for n into *d; *found false when n is
 * proved composite (a square, or sharing a factor with some D). */
static int s_selfridge_bn(const BIGNUM *n, BN_CTX *bn, int64_t *d, bool *found)
{
    BN_CTX_start(bn);
    BIGNUM *r = BN_CTX_get(bn);
    bool square = false;
    int rc = r ? dp_num_iroot_bn(n, 2, r, &square, bn) : DP_ERR_NOMEM;
    BN_CTX_end(bn);
    *found = false;
    if (rc || square)
        return rc;
    unsigned n_mod4 = (unsigned)BN_mod_word(n, DP_NUM_MOD4_MASK + 1);
    for (int64_t D = DP_NUM_LUCAS_D0;; D = s_next_d(D)) {
        uint64_t ad = D < 0 ? (uint64_t)-D : (uint64_t)D;
        BN_ULONG rem = BN_mod_word(n, (BN_ULONG)ad);
        if (rem == (BN_ULONG)-1)
            return DP_ERR_NOMEM;
        int j = s_jacobi_d(D, rem, n_mod4);
        if (j == 0)
            return 0; /* n > ad shares a factor with it */
        if (j == -1) {
            *d = D;
            *found = true;
            return 0;
        }
    }
}

/* s_small_bn: the small signed v in Montgomery form into x. */
static int s_small_bn(BIGNUM *x, int64_t v, const BIGNUM *n, BN_MONT_CTX *mont,
                      BN_CTX *bn)
{
    uint64_t a = v < 0 ? (uint64_t)-v : (uint64_t)v;
    int ok = BN_set_word(x, (BN_ULONG)a) && BN_to_montgomery(x, x, mont, bn);
    if (ok && v < 0 && !BN_is_zero(x))
        ok = BN_sub(x, n, x);
    return ok;
}

static int s_half_bn(BIGNUM *x, const BIGNUM *n)
{
    return (!BN_is_odd(x) || BN_add(x, x, n)) && BN_rshift1(x, x);
}

/* s_lucas_step_bn: V <- V^2 - 2 Q^k, Q^k <- Q^2k (t scratch). */
static int s_lucas_dbl_bn(BIGNUM *v, BIGNUM *qk, BIGNUM *t, const BIGNUM *n,
                          BN_MONT_CTX *mont, BN_CTX *bn)
{
    return BN_mod_add_quick(t, qk, qk, n) &&
           BN_mod_mul_montgomery(v, v, v, mont, bn) &&
           BN_mod_sub_quick(v, v, t, n) &&
           BN_mod_mul_montgomery(qk, qk, qk, mont, bn);
}

/* s_lucas_bn: the strong Lucas test with P = 1, Q = (1 - D) / 4. */
static int s_lucas_bn(const BIGNUM *n, int64_t D, BN_CTX *bn, BN_MONT_CTX *mont,
                      bool *pass)
{
    BN_CTX_start(bn);
    BIGNUM *k = BN_CTX_get(bn), *u = BN_CTX_get(bn), *v = BN_CTX_get(bn);
    BIGNUM *qk = BN_CTX_get(bn), *q = BN_CTX_get(bn), *dm = BN_CTX_get(bn);
    BIGNUM *t = BN_CTX_get(bn);
    int ok = t && BN_add(k, n, BN_value_one());
    int s = 0;
    while (ok && !BN_is_bit_set(k, s))
        s++;
    ok = ok && BN_rshift(k, k, s) &&
         BN_to_montgomery(u, BN_value_one(), mont, bn) && BN_copy(v, u) &&
         s_small_bn(dm, D, n, mont, bn) &&
         s_small_bn(q, (1 - D) / 4, n, mont, bn) && BN_copy(qk, q);
    for (int b = ok ? BN_num_bits(k) - 2 : -1; ok && b >= 0; b--) {
        ok = BN_mod_mul_montgomery(u, u, v, mont, bn) &&
             s_lucas_dbl_bn(v, qk, t, n, mont, bn);
        if (ok && BN_is_bit_set(k, b))
            ok = BN_mod_mul_montgomery(t, dm, u, mont, bn) &&
                 BN_mod_add_quick(u, u, v, n) && BN_mod_add_quick(v, t, v, n) &&
                 s_half_bn(u, n) && s_half_bn(v, n) &&
                 BN_mod_mul_montgomery(qk, qk, q, mont, bn);
    }
    *pass = ok && (BN_is_zero(u) || BN_is_zero(v));
    for (int r = 1; ok && r < s && !*pass; r++) {
        ok = s_lucas_dbl_bn(v, qk, t, n, mont, bn);
        *pass = BN_is_zero(v);
    }
    BN_CTX_end(bn);
    return ok ? 0 : DP_ERR_NOMEM;
}

int dp_num_bpsw_bn(const BIGNUM *n, BN_CTX *bn, bool *prime)
{
    *prime = false;
    BN_MONT_CTX *mont = BN_MONT_CTX_new();
    if (!mont || !BN_MONT_CTX_set(mont, n, bn)) {
        BN_MONT_CTX_free(mont);
        return DP_ERR_NOMEM;
    }
    bool pass = false, found = false;
    int64_t d = 0;
    int rc = s_sprp2_bn(n, bn, mont, &pass);
    if (!rc && pass)
        rc = s_selfridge_bn(n, bn, &d, &found);
    if (!rc && found)
        rc = s_lucas_bn(n, d, bn, mont, prime);
    BN_MONT_CTX_free(mont);
    return rc;
}

int dp_num_isprime(const dp_num_t *n, bool *prime)
{
    if (!n->big) {
        *prime = dp_num_isprime_u128(n->small);
        return 0;
    }
    *prime = false;
    if (!BN_is_odd(n->big))
        return 0;
    for (size_t k = 0; k < DP_NUM_TRIAL_COUNT; k++) {
        BN_ULONG r = BN_mod_word(n->big, dp_num_trial_primes[k].p);
        if (r == (BN_ULONG)-1)
            return DP_ERR_NOMEM;
        if (r == 0)
            return 0;
    }
    BN_CTX *bn = BN_CTX_new();
    if (!bn)
        return DP_ERR_NOMEM;
    int rc = dp_num_bpsw_bn(n->big, bn, prime);
    BN_CTX_free(bn);
    return rc;
}
