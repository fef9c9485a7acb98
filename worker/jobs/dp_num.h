/*
 * dp_num.h - exact integer arithmetic for the number-theory kernels
 * (factor, isprime): parsing decimal text of any size, primality and
 * factorization.
 *
 * Three tiers, chosen by size: below 2^64 native words with Montgomery
 * multiplication; below 2^128 unsigned __int128 with 128-bit Montgomery;
 * above, OpenSSL BIGNUM. Primality is deterministic Miller-Rabin below 2^64
 * and BPSW (Miller-Rabin base 2 + strong Lucas, no known counterexample)
 * above. Factorization is trial division, perfect-power detection,
 * Pollard-Brent rho, then ECM (stage 1 + standard stage 2) for cofactors
 * rho does not split within its budget.
 *
 * Ownership: a dp_num_t owns its BIGNUM (dp_num_clear frees it); a
 * dp_factors_t owns its items (dp_factors_clear). Functions returning int
 * return 0 or a DP_ERR_* code.
 *
 * The second half of this header holds the internals shared by the num_*.c
 * files (inline Montgomery arithmetic, tables, stage entry points); the
 * kernels use only the first half.
 */
#ifndef DP_NUM_H
#define DP_NUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bn.h>

#include "dpool.h"

/* Longest decimal input accepted, in digits after leading zeros. */
#define DP_NUM_MAX_DIGITS 1000
/* Characters of rejected input quoted back in an error message. */
#define DP_NUM_ERR_QUOTE 40
/* Buffer size for a 128-bit number in decimal, with its NUL. */
#define DP_NUM_U128_DEC_MAX 40

__extension__ typedef unsigned __int128 dp_u128_t;

/* A non-negative integer: in `small` when below 2^128 (big == NULL), else
 * in `big` (owned). Zero-initialize ({0}) for the value 0. */
typedef struct {
    dp_u128_t small;
    BIGNUM *big;
} dp_num_t;

/* A growable list of numbers (prime factors, with multiplicity). */
typedef struct {
    dp_num_t *items;
    size_t len;
    size_t cap;
} dp_factors_t;

/* dp_num_parse: read decimal text s[0..len) (surrounding blanks and one
 * leading '+' allowed) into *out. DP_ERR_INVALID for empty, negative or
 * non-digit text, DP_ERR_RANGE above DP_NUM_MAX_DIGITS digits,
 * DP_ERR_NOMEM; err says which. *out is left 0 on failure. */
int dp_num_parse(const char *s, size_t len, dp_num_t *out, char *err,
                 size_t errlen);
/* dp_num_from_value: read a job argument (DP_UINT, non-negative DP_INT or
 * decimal DP_STR) into *out; other types and negatives are DP_ERR_INVALID.
 * Errors as dp_num_parse. */
int dp_num_from_value(const dp_value_t *v, dp_num_t *out, char *err,
                      size_t errlen);
/* dp_num_clear: free what n owns and make it 0. NULL-safe. */
void dp_num_clear(dp_num_t *n);
/* dp_num_is_zero: whether n is 0. */
bool dp_num_is_zero(const dp_num_t *n);
/* dp_num_get_u64: whether n fits in 64 bits; if so *v receives it. */
bool dp_num_get_u64(const dp_num_t *n, uint64_t *v);
/* dp_num_u128_to_dec: v in decimal into buf (DP_NUM_U128_DEC_MAX bytes). */
void dp_num_u128_to_dec(dp_u128_t v, char *buf);
/* dp_num_to_dec: n in decimal, malloc'd (caller frees); NULL on
 * allocation failure. */
char *dp_num_to_dec(const dp_num_t *n);
/* dp_num_to_value: n as a value: DP_UINT below 2^64, else decimal DP_STR.
 * 0 or DP_ERR_NOMEM. */
int dp_num_to_value(const dp_num_t *n, dp_value_t *out);

/* dp_num_isprime_u64: exact primality (deterministic Miller-Rabin). */
bool dp_num_isprime_u64(uint64_t n);
/* dp_num_isprime_u128: BPSW primality; exact below 2^64 (and no
 * counterexample is known above). */
bool dp_num_isprime_u128(dp_u128_t n);
/* dp_num_isprime: BPSW primality of any n into *prime; 0 or
 * DP_ERR_NOMEM. */
int dp_num_isprime(const dp_num_t *n, bool *prime);

/* dp_factors_init: an empty list. */
void dp_factors_init(dp_factors_t *f);
/* dp_factors_clear: free the items and empty the list. NULL-safe. */
void dp_factors_clear(dp_factors_t *f);
/* dp_factors_to_value: the list as a DP_ARRAY of dp_num_to_value items.
 * 0 or DP_ERR_NOMEM. */
int dp_factors_to_value(const dp_factors_t *f, dp_value_t *out);
/* dp_num_factor: the prime factors of n >= 1, ascending with multiplicity,
 * appended to f (empty for 1). deadline_us: dp_now_us() past which to stop
 * with DP_ERR_TIMEOUT (0 = none; the work is then unbounded for inputs
 * with two large prime factors). DP_ERR_INVALID for 0, DP_ERR_NOMEM. On
 * failure f holds what was found so far (caller clears it). */
int dp_num_factor(const dp_num_t *n, uint64_t deadline_us, dp_factors_t *f);

/* ------------------------------------------------------------------------
 * Internals of the num_*.c files.
 */

#define DP_NUM_WORD_BITS 64
#define DP_NUM_DEC_BASE 10
/* 10^19, the largest power of ten in a 64-bit word, and its digits. */
#define DP_NUM_DEC_CHUNK 10000000000000000000ULL
#define DP_NUM_DEC_CHUNK_DIGITS 19

/* Newton steps for an inverse mod 2^64 / 2^128 (3 bits doubled each). */
#define DP_NUM_INV64_STEPS 5
#define DP_NUM_INV128_STEPS 6
/* Trial division: the odd primes below DP_NUM_TRIAL_BOUND, with inverses. */
#define DP_NUM_TRIAL_COUNT 668
#define DP_NUM_TRIAL_BOUND 5003u
/* Below 2^64 trial division stops earlier (rho finds a factor of 10 to 12
 * bits sooner than 500 more trial divisions): the odd primes below
 * DP_NUM_TRIAL64_BOUND, the first DP_NUM_TRIAL64_COUNT of the table.
 * DP_NUM_TRIAL64_BOUND^7 > 2^64 (DP_NUM_POW64_EXPS). */
#define DP_NUM_TRIAL64_COUNT 167u
#define DP_NUM_TRIAL64_BOUND 1009u
/* Work units (rho iterations, curve steps) between two clock reads. */
#define DP_NUM_CHECK_WORK 1024u
/* Rho: steps per gcd, and the longest Brent cycle tried per increment
 * (about four times as many steps) before ECM takes over, below 2^128 and
 * above (crossovers measured on 80- to 100-bit semiprimes). */
#define DP_NUM_RHO_BATCH 32u
/* Below 2^64 a gcd costs more than a step: more steps per gcd. */
#define DP_NUM_RHO64_BATCH 128u
/* Rho below 2^64 skips the final subtraction of Montgomery products for
 * n below 2^62 minus room for the increments (4 n < 2^64; increments
 * below DP_NUM_RHO64_LAZY_C: (2n + c)^2 < n 2^64). */
#define DP_NUM_RHO64_LAZY ((1ULL << 62) - 256u)
#define DP_NUM_RHO64_LAZY_C 32u
#define DP_NUM_RHO128_BUDGET (1u << 12)
#define DP_NUM_RHOBN_BUDGET (1u << 12)
/* Miller-Rabin bases exact below 2^32 (Jaeschke) and below 2^64
 * (Sinclair's seven bases). */
#define DP_NUM_MR32_BASES                                                      \
    {                                                                          \
        2, 7, 61                                                               \
    }
#define DP_NUM_MR64_BASES                                                      \
    {                                                                          \
        2, 325, 9375, 28178, 450775, 9780504, 1795265022                       \
    }
/* Miller-Rabin bases tested side by side, at most (all but the first). */
#define DP_NUM_MR_LANES 6
/* Perfect-power exponents worth trying once no factor is below
 * DP_NUM_TRIAL_BOUND (12.3 bits): 5003^7 > 2^64, 5003^11 > 2^128. */
#define DP_NUM_POW64_EXPS                                                      \
    {                                                                          \
        2, 3, 5                                                                \
    }
#define DP_NUM_POW128_EXPS                                                     \
    {                                                                          \
        2, 3, 5, 7                                                             \
    }
/* Bits of the trial bound, rounded down (5003 > 2^12): a cofactor r^k of
 * b bits with no factor below the bound has k <= b / 12. */
#define DP_NUM_TRIAL_BITS 12
/* Lucas: first Selfridge D (then -7, 9, -11, ...). */
#define DP_NUM_LUCAS_D0 5
/* ECM: {B1, curves} per step, the last repeated forever (a warm-up for
 * 12-digit factors, then GMP-ECM's table for 15, 20, 25, 30, 35 digits);
 * B2 = B1 * factor; stage-2 window half-width (precomputed multiples);
 * first Suyama sigma. */
#define DP_NUM_ECM_PLAN                                                        \
    {                                                                          \
        {1000, 10}, {2000, 25}, {11000, 90}, {50000, 300}, {250000, 700},      \
        {                                                                      \
            1000000, 1800                                                      \
        }                                                                      \
    }
#define DP_NUM_ECM_B2_FACTOR 100u
#define DP_NUM_ECM_D 100u
#define DP_NUM_ECM_SIGMA0 6u
/* Suyama's parametrization constants: u = s^2 - 5, v = 4 s,
 * a24 = (v-u)^3 (3u+v) / (16 u^3 v). */
#define DP_NUM_SUYAMA_U 5u
#define DP_NUM_SUYAMA_V 4u
#define DP_NUM_SUYAMA_3U 3u
#define DP_NUM_SUYAMA_DEN 16u
/* Prime sieve segment, odd numbers per segment. */
#define DP_NUM_SIEVE_SEG 32768u
/* ECM work accounting: multiplications per bit of a ladder step (xADD 6
 * + xDBL 5), and per stage-2 prime (the cross term, the accumulation). */
#define DP_NUM_ECM_LADDER_COST 11u
#define DP_NUM_ECM_PRIME_COST 2u
/* Rho increments tried (1, 2, ...) before ECM when walks collapse to n. */
#define DP_NUM_RHO_TRIES 8u
/* Starting point of every rho walk. */
#define DP_NUM_RHO_SEED 2u
/* Jacobi symbols: n mod 8 decides (2/n), n mod 4 decides (-1/n). */
#define DP_NUM_MOD8 8u
#define DP_NUM_MOD4_MASK 3u
/* Roots: bits of a double's mantissa, and the relative margin added to an
 * estimate so that it starts above the root. */
#define DP_NUM_MANT_BITS 52
#define DP_NUM_ROOT_MARGIN 1e-12
/* Initial capacity of a factor list. */
#define DP_NUM_LIST_CAP0 16u

typedef struct {
    uint32_t p;   /* the odd prime */
    uint64_t inv; /* p^-1 mod 2^64 */
    uint64_t lim; /* UINT64_MAX / p: n * inv <= lim iff p divides n */
} dp_num_prime_t;

/* dp_num_trial_primes: the odd primes 3 .. 4999 (num_table.c). */
extern const dp_num_prime_t dp_num_trial_primes[DP_NUM_TRIAL_COUNT];

/* The state of one factorization: where factors go, the time budget. */
typedef struct {
    dp_factors_t *out;
    uint64_t deadline_us; /* 0 = none */
    uint64_t work;        /* work units since the clock was last read */
    BN_CTX *bn;           /* BIGNUM scratch, NULL below 2^128 */
} dp_num_job_t;

/* dp_num_tick: count `units` of work; every DP_NUM_CHECK_WORK units read
 * the clock. DP_ERR_TIMEOUT once past the deadline, else 0. */
int dp_num_tick(dp_num_job_t *job, uint64_t units);

/* Increasing primes up to a limit, from a segmented sieve (ECM). */
typedef struct {
    uint32_t *base; /* odd primes up to sqrt(limit) */
    size_t nbase;
    uint8_t *seg; /* seg[k]: lo + 2k is composite */
    uint64_t lo;  /* odd number at seg[0] */
    size_t pos;   /* next slot of seg to look at */
    uint64_t limit;
    bool two_done; /* 2 was returned */
} dp_num_primes_t;

/* dp_num_primes_init: iterate the primes <= limit; 0 or DP_ERR_NOMEM. */
int dp_num_primes_init(dp_num_primes_t *it, uint64_t limit);
/* dp_num_primes_next: the next prime, 0 after the last. */
uint64_t dp_num_primes_next(dp_num_primes_t *it);
/* dp_num_primes_free: release the iterator. */
void dp_num_primes_free(dp_num_primes_t *it);

/* dp_num_sprp_u64: whether odd n > 2 is a strong probable prime to base
 * a (true when n divides a). */
bool dp_num_sprp_u64(uint64_t n, uint64_t a);
/* dp_num_mr64: exact primality of an odd n > DP_NUM_TRIAL_BOUND by
 * Miller-Rabin with the deterministic base sets. */
bool dp_num_mr64(uint64_t n);
/* dp_num_bpsw128: BPSW on odd n > DP_NUM_TRIAL_BOUND. */
bool dp_num_bpsw128(dp_u128_t n);
/* dp_num_bpsw_bn: BPSW on an odd BIGNUM n > DP_NUM_TRIAL_BOUND with no
 * factor below it; 0 or DP_ERR_NOMEM. */
int dp_num_bpsw_bn(const BIGNUM *n, BN_CTX *bn, bool *prime);

/* dp_num_rho64: Pollard-Brent rho, two walks in lockstep with increments
 * c and c + 1, on odd composite n (at most 64 bits, so no budget); *g
 * receives a divisor > 1, n itself when both walks failed. 0 or
 * DP_ERR_TIMEOUT. */
int dp_num_rho64(dp_num_job_t *job, uint64_t n, uint64_t c, uint64_t *g);
/* dp_num_rho128 / dp_num_rho_bn: the same on 128-bit words and BIGNUMs,
 * giving up when the Brent cycle would pass `budget` (then *g / g is 1).
 * 0, DP_ERR_TIMEOUT, or (BIGNUM) DP_ERR_NOMEM. */
int dp_num_rho128(dp_num_job_t *job, dp_u128_t n, uint64_t c, uint64_t budget,
                  dp_u128_t *g);
int dp_num_rho_bn(dp_num_job_t *job, const BIGNUM *n, uint64_t c,
                  uint64_t budget, BIGNUM *g);
/* dp_num_ecm128 / dp_num_ecm_bn: a proper divisor of odd composite n (not
 * a prime power, no factor below DP_NUM_TRIAL_BOUND) into *g / g, by ECM
 * with ever larger bounds until found or the deadline: in native words
 * below 2^128 (no allocation but the sieve), on BIGNUMs above.
 * 0, DP_ERR_TIMEOUT or DP_ERR_NOMEM. */
int dp_num_ecm128(dp_num_job_t *job, dp_u128_t n, dp_u128_t *g);
int dp_num_ecm_bn(dp_num_job_t *job, const BIGNUM *n, BIGNUM *g);

/* dp_num_iroot_u128: floor(n^(1/k)) for k >= 2. */
dp_u128_t dp_num_iroot_u128(dp_u128_t n, unsigned k);
/* dp_num_iroot_bn: floor(n^(1/k)) into r, *exact whether r^k == n;
 * 0 or DP_ERR_NOMEM. */
int dp_num_iroot_bn(const BIGNUM *n, unsigned k, BIGNUM *r, bool *exact,
                    BN_CTX *bn);
/* dp_num_u128_to_bn / dp_num_bn_to_u128: conversions (the BIGNUM must fit
 * in 128 bits); 0 or DP_ERR_NOMEM. */
int dp_num_u128_to_bn(dp_u128_t v, BIGNUM *out);
dp_u128_t dp_num_bn_to_u128(const BIGNUM *b);
/* dp_num_push: append a copy of v (small when big is NULL); 0 or NOMEM. */
int dp_num_push(dp_factors_t *f, dp_u128_t small, const BIGNUM *big);

/* ---- inline Montgomery arithmetic (odd modulus n, R = 2^64 or 2^128) */

/* dp_mont64_inv: n^-1 mod 2^64 for odd n (Newton: 3, 6, ... 96 bits). */
static inline uint64_t dp_mont64_inv(uint64_t n)
{
    uint64_t x = n;
    for (int k = 0; k < DP_NUM_INV64_STEPS; k++)
        x *= 2 - n * x;
    return x;
}

/* dp_mont64_mul: a * b / R mod n for a, b < n; ninv = n^-1 mod 2^64. */
static inline uint64_t dp_mont64_mul(uint64_t a, uint64_t b, uint64_t n,
                                     uint64_t ninv)
{
    dp_u128_t t = (dp_u128_t)a * b;
    uint64_t m = (uint64_t)t * ninv;
    uint64_t mh = (uint64_t)(((dp_u128_t)m * n) >> DP_NUM_WORD_BITS);
    uint64_t th = (uint64_t)(t >> DP_NUM_WORD_BITS);
    uint64_t r = th - mh;
    return th < mh ? r + n : r;
}

static inline uint64_t dp_mod64_add(uint64_t a, uint64_t b, uint64_t n)
{
    uint64_t s = a + b;
    return (s < a || s >= n) ? s - n : s;
}

static inline uint64_t dp_mod64_sub(uint64_t a, uint64_t b, uint64_t n)
{
    return a >= b ? a - b : a - b + n;
}

/* dp_mont128_inv: n^-1 mod 2^128 for odd n. */
static inline dp_u128_t dp_mont128_inv(dp_u128_t n)
{
    dp_u128_t x = n;
    for (int k = 0; k < DP_NUM_INV128_STEPS; k++)
        x *= 2 - n * x;
    return x;
}

/* dp_mul128_full: the 256-bit product a * b as hi:lo. */
static inline void dp_mul128_full(dp_u128_t a, dp_u128_t b, dp_u128_t *hi,
                                  dp_u128_t *lo)
{
    uint64_t a0 = (uint64_t)a, a1 = (uint64_t)(a >> DP_NUM_WORD_BITS);
    uint64_t b0 = (uint64_t)b, b1 = (uint64_t)(b >> DP_NUM_WORD_BITS);
    dp_u128_t p00 = (dp_u128_t)a0 * b0, p01 = (dp_u128_t)a0 * b1;
    dp_u128_t p10 = (dp_u128_t)a1 * b0, p11 = (dp_u128_t)a1 * b1;
    dp_u128_t mid = (p00 >> DP_NUM_WORD_BITS) + (uint64_t)p01 + (uint64_t)p10;
    *lo = (dp_u128_t)(uint64_t)p00 | (mid << DP_NUM_WORD_BITS);
    *hi = p11 + (p01 >> DP_NUM_WORD_BITS) + (p10 >> DP_NUM_WORD_BITS) +
          (mid >> DP_NUM_WORD_BITS);
}

/* dp_mont128_mul: a * b / R mod n for a, b < n; ninv = n^-1 mod 2^128. */
static inline dp_u128_t dp_mont128_mul(dp_u128_t a, dp_u128_t b, dp_u128_t n,
                                       dp_u128_t ninv)
{
    dp_u128_t th, tl, mh, ml;
    dp_mul128_full(a, b, &th, &tl);
    dp_mul128_full(tl * ninv, n, &mh, &ml);
    (void)ml;
    dp_u128_t r = th - mh;
    return th < mh ? r + n : r;
}

static inline dp_u128_t dp_mod128_add(dp_u128_t a, dp_u128_t b, dp_u128_t n)
{
    dp_u128_t s = a + b;
    return (s < a || s >= n) ? s - n : s;
}

static inline dp_u128_t dp_mod128_sub(dp_u128_t a, dp_u128_t b, dp_u128_t n)
{
    return a >= b ? a - b : a - b + n;
}

/* dp_mod128_half: x / 2 mod odd n, for x < n ((x + n) / 2 when odd). */
static inline dp_u128_t dp_mod128_half(dp_u128_t x, dp_u128_t n)
{
    return (x & 1) ? (x >> 1) + (n >> 1) + 1 : x >> 1;
}

/* dp_u128_ctz: trailing zero bits of v != 0. */
static inline int dp_u128_ctz(dp_u128_t v)
{
    uint64_t lo = (uint64_t)v;
    return lo ? __builtin_ctzll(lo)
              : DP_NUM_WORD_BITS +
                    __builtin_ctzll((uint64_t)(v >> DP_NUM_WORD_BITS));
}

/* dp_u128_bits: bit length of v (0 for 0). */
static inline int dp_u128_bits(dp_u128_t v)
{
    uint64_t hi = (uint64_t)(v >> DP_NUM_WORD_BITS), lo = (uint64_t)v;
    if (hi)
        return 2 * DP_NUM_WORD_BITS - __builtin_clzll(hi);
    return lo ? DP_NUM_WORD_BITS - __builtin_clzll(lo) : 0;
}

/* dp_divides128: whether the table prime p divides n, and then *q = n / p
 * (exact division by the inverse, two words: Granlund-Montgomery). */
static inline bool dp_divides128(dp_u128_t n, const dp_num_prime_t *p,
                                 dp_u128_t *q)
{
    uint64_t t0 = (uint64_t)n, t1 = (uint64_t)(n >> DP_NUM_WORD_BITS);
    uint64_t q0 = t0 * p->inv;
    uint64_t hi = (uint64_t)(((dp_u128_t)q0 * p->p) >> DP_NUM_WORD_BITS);
    if (hi > t1)
        return false;
    uint64_t q1 = (t1 - hi) * p->inv;
    if (q1 > p->lim)
        return false;
    *q = ((dp_u128_t)q1 << DP_NUM_WORD_BITS) | q0;
    return true;
}

/* dp_gcd64 / dp_gcd128: binary gcd (gcd(0, b) = b). */
static inline uint64_t dp_gcd64(uint64_t a, uint64_t b)
{
    if (!a || !b)
        return a | b;
    int sh = __builtin_ctzll(a | b);
    a >>= __builtin_ctzll(a);
    while (b) {
        b >>= __builtin_ctzll(b);
        if (a > b) {
            uint64_t t = a;
            a = b;
            b = t;
        }
        b -= a;
    }
    return a << sh;
}

static inline dp_u128_t dp_gcd128(dp_u128_t a, dp_u128_t b)
{
    if (!a || !b)
        return a | b;
    int sh = dp_u128_ctz(a | b);
    a >>= dp_u128_ctz(a);
    while (b) {
        b >>= dp_u128_ctz(b);
        if (a > b) {
            dp_u128_t t = a;
            a = b;
            b = t;
        }
        b -= a;
    }
    return a << sh;
}

#endif /* DP_NUM_H */
