/*
 * test_num.c - the number-theory layer (worker/jobs/dp_num.h): parsing and
 * printing, Montgomery arithmetic, Miller-Rabin and BPSW on all three
 * tiers, roots, the prime sieve, rho and ECM.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dp_num.h"

#define ERRLEN 256
/* Exhaustive ranges and random sample sizes. */
#define SIEVE_LIMIT 1000000u
#define RANDOM_ROUNDS 20000
#define BPSW_ROUNDS 3000
#define SEED 0x5eed5eed12345678ULL

static uint64_t s_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static dp_u128_t s_u128(const char *dec)
{
    dp_num_t n;
    char err[ERRLEN];
    cr_assert_eq(dp_num_parse(dec, strlen(dec), &n, err, sizeof err), 0,
                 "%s: %s", dec, err);
    cr_assert_null(n.big, "%s should fit 128 bits", dec);
    return n.small;
}

/* s_sieve: composite[k] for k <= limit. */
static bool *s_sieve(uint32_t limit)
{
    bool *c = calloc(limit + 1, 1);
    cr_assert_not_null(c);
    c[0] = c[1] = true;
    for (uint64_t p = 2; p * p <= limit; p++) {
        if (!c[p]) {
            for (uint64_t m = p * p; m <= limit; m += p)
                c[m] = true;
        }
    }
    return c;
}

/* ---- parsing and printing ---- */

Test(num, parse_accepts_forms)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"42", "42"},
        {"  +42  ", "42"},
        {"\t007\r\n", "7"},
        {"0", "0"},
        {"-0", "0"},
        {"18446744073709551615", "18446744073709551615"},
        {"340282366920938463463374607431768211455",
         "340282366920938463463374607431768211455"},
        {"340282366920938463463374607431768211456",
         "340282366920938463463374607431768211456"},
        {"000000000000000000000000000000000000000000000000000012", "12"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dp_num_t n;
        char err[ERRLEN];
        int rc =
            dp_num_parse(cases[k].in, strlen(cases[k].in), &n, err, sizeof err);
        cr_assert_eq(rc, 0, "'%s': %s", cases[k].in, err);
        char *s = dp_num_to_dec(&n);
        cr_assert_str_eq(s, cases[k].out);
        free(s);
        dp_num_clear(&n);
    }
}

Test(num, parse_tiers)
{
    dp_num_t n;
    char err[ERRLEN];
    const char *max128 = "340282366920938463463374607431768211455";
    const char *over = "340282366920938463463374607431768211456";
    cr_assert_eq(dp_num_parse(max128, strlen(max128), &n, err, ERRLEN), 0);
    cr_assert_null(n.big);
    cr_assert(n.small == ~(dp_u128_t)0);
    cr_assert_eq(dp_num_parse(over, strlen(over), &n, err, ERRLEN), 0);
    cr_assert_not_null(n.big);
    cr_assert_eq(BN_num_bits(n.big), 129);
    dp_num_clear(&n);
    cr_assert_null(n.big);
    dp_num_clear(NULL);
}

Test(num, parse_rejects)
{
    static const struct {
        const char *in;
        int rc;
        const char *msg;
    } cases[] = {
        {"", DP_ERR_INVALID, "not a decimal integer: empty text"},
        {"   ", DP_ERR_INVALID, "not a decimal integer: empty text"},
        {"+", DP_ERR_INVALID, "not a decimal integer: '+'"},
        {"-", DP_ERR_INVALID, "not a decimal integer: '-'"},
        {"-5", DP_ERR_INVALID, "negative number -5"},
        {" -0012 ", DP_ERR_INVALID, "negative number -0012"},
        {"abc", DP_ERR_INVALID, "not a decimal integer: 'abc'"},
        {"1 2", DP_ERR_INVALID, "not a decimal integer: '1 2'"},
        {"12a", DP_ERR_INVALID, "not a decimal integer: '12a'"},
        {"0x10", DP_ERR_INVALID, "not a decimal integer: '0x10'"},
        {"++1", DP_ERR_INVALID, "not a decimal integer: '++1'"},
        {"1.5", DP_ERR_INVALID, "not a decimal integer: '1.5'"},
        {"1e9", DP_ERR_INVALID, "not a decimal integer: '1e9'"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dp_num_t n;
        char err[ERRLEN] = "";
        int rc =
            dp_num_parse(cases[k].in, strlen(cases[k].in), &n, err, sizeof err);
        cr_assert_eq(rc, cases[k].rc, "'%s' gave %d", cases[k].in, rc);
        cr_assert_str_eq(err, cases[k].msg);
        cr_assert(dp_num_is_zero(&n));
    }
}

Test(num, parse_digit_limit)
{
    size_t len = DP_NUM_MAX_DIGITS + 1;
    char *s = malloc(len + 1);
    cr_assert_not_null(s);
    memset(s, '7', len);
    s[len] = '\0';
    dp_num_t n;
    char err[ERRLEN];
    cr_assert_eq(dp_num_parse(s, len, &n, err, sizeof err), DP_ERR_RANGE);
    cr_assert_str_eq(err, "number too large: 1001 digits (limit 1000)");
    cr_assert_eq(dp_num_parse(s, len - 1, &n, err, sizeof err), 0);
    cr_assert_not_null(n.big);
    dp_num_clear(&n);
    /* leading zeros do not count */
    memset(s, '0', len);
    s[len - 1] = '9';
    cr_assert_eq(dp_num_parse(s, len, &n, err, sizeof err), 0);
    cr_assert(n.small == 9);
    /* a long quoted error is cut */
    s[0] = 'x';
    cr_assert_eq(dp_num_parse(s, len, &n, err, sizeof err), DP_ERR_INVALID);
    cr_assert_lt(strlen(err), 100u);
    free(s);
}

Test(num, from_value_types)
{
    dp_num_t n;
    char err[ERRLEN];
    dp_value_t v = dp_uint(UINT64_MAX);
    cr_assert_eq(dp_num_from_value(&v, &n, err, sizeof err), 0);
    cr_assert(n.small == UINT64_MAX);
    v = dp_int(99);
    cr_assert_eq(dp_num_from_value(&v, &n, err, sizeof err), 0);
    cr_assert(n.small == 99);
    v = dp_int(-5);
    cr_assert_eq(dp_num_from_value(&v, &n, err, sizeof err), DP_ERR_INVALID);
    cr_assert_str_eq(err, "negative number -5");
    v = dp_float(2.0);
    cr_assert_eq(dp_num_from_value(&v, &n, err, sizeof err), DP_ERR_INVALID);
    cr_assert_str_eq(err, "expected an integer or decimal text, got float");
    v = dp_bool(true);
    cr_assert_eq(dp_num_from_value(&v, &n, err, sizeof err), DP_ERR_INVALID);
    v = dp_nil();
    cr_assert_eq(dp_num_from_value(&v, &n, err, sizeof err), DP_ERR_INVALID);
    v = dp_bin("12", 2);
    cr_assert_eq(dp_num_from_value(&v, &n, err, sizeof err), DP_ERR_INVALID);
    cr_assert_str_eq(err, "expected an integer or decimal text, got binary");
    dp_value_clear(&v);
    v = dp_str(" 12 ");
    cr_assert_eq(dp_num_from_value(&v, &n, err, sizeof err), 0);
    cr_assert(n.small == 12);
    dp_value_clear(&v);
}

Test(num, decimal_round_trip)
{
    uint64_t seed = SEED;
    char buf[DP_NUM_U128_DEC_MAX], err[ERRLEN];
    for (int k = 0; k < RANDOM_ROUNDS; k++) {
        dp_u128_t v = ((dp_u128_t)s_rng(&seed) << 64) | s_rng(&seed);
        v >>= s_rng(&seed) % 128;
        dp_num_u128_to_dec(v, buf);
        dp_num_t n;
        cr_assert_eq(dp_num_parse(buf, strlen(buf), &n, err, ERRLEN), 0);
        cr_assert(n.small == v && !n.big, "%s", buf);
        BIGNUM *b = BN_new();
        cr_assert_eq(dp_num_u128_to_bn(v, b), 0);
        cr_assert(dp_num_bn_to_u128(b) == v);
        char *d = BN_bn2dec(b);
        cr_assert_str_eq(d, buf);
        OPENSSL_free(d);
        BN_free(b);
    }
    dp_num_u128_to_dec(0, buf);
    cr_assert_str_eq(buf, "0");
}

Test(num, to_value)
{
    dp_num_t n = {.small = UINT64_MAX};
    dp_value_t v;
    cr_assert_eq(dp_num_to_value(&n, &v), 0);
    cr_assert_eq(v.type, DP_UINT);
    cr_assert_eq(v.v.u, UINT64_MAX);
    n.small += 1;
    cr_assert_eq(dp_num_to_value(&n, &v), 0);
    cr_assert_eq(v.type, DP_STR);
    cr_assert_str_eq(v.v.s.ptr, "18446744073709551616");
    dp_value_clear(&v);
}

/* ---- arithmetic ---- */

Test(num, montgomery_matches_division)
{
    uint64_t seed = SEED;
    for (int k = 0; k < RANDOM_ROUNDS; k++) {
        uint64_t n = s_rng(&seed) | 1, a = s_rng(&seed) % n;
        uint64_t b = s_rng(&seed) % n, ninv = dp_mont64_inv(n);
        cr_assert_eq(n * ninv, 1u);
        /* mont(a, b) * R == a * b (mod n) */
        dp_u128_t r = (dp_u128_t)1 << 64;
        uint64_t m = dp_mont64_mul(a, b, n, ninv);
        cr_assert((dp_u128_t)m * (uint64_t)(r % n) % n == (dp_u128_t)a * b % n);
        dp_u128_t N = ((dp_u128_t)s_rng(&seed) << 64) | s_rng(&seed) | 1;
        dp_u128_t A = (((dp_u128_t)s_rng(&seed) << 64) | s_rng(&seed)) % N;
        dp_u128_t B = (((dp_u128_t)s_rng(&seed) << 64) | s_rng(&seed)) % N;
        dp_u128_t Ninv = dp_mont128_inv(N);
        cr_assert(N * Ninv == 1);
        /* mont(mont(A, B), R^2) == A * B (mod N), checked as
         * mont(A, B) * R == A * B through BIGNUM */
        dp_u128_t M = dp_mont128_mul(A, B, N, Ninv);
        BIGNUM *bn[5];
        for (int j = 0; j < 5; j++)
            bn[j] = BN_new();
        BN_CTX *ctx = BN_CTX_new();
        dp_num_u128_to_bn(N, bn[0]);
        dp_num_u128_to_bn(A, bn[1]);
        dp_num_u128_to_bn(B, bn[2]);
        dp_num_u128_to_bn(M, bn[3]);
        BN_mod_mul(bn[4], bn[1], bn[2], bn[0], ctx);
        BN_lshift(bn[3], bn[3], 128);
        BN_nnmod(bn[3], bn[3], bn[0], ctx);
        cr_assert_eq(BN_cmp(bn[3], bn[4]), 0);
        for (int j = 0; j < 5; j++)
            BN_free(bn[j]);
        BN_CTX_free(ctx);
    }
}

Test(num, gcd_and_exact_division)
{
    cr_assert_eq(dp_gcd64(0, 12), 12u);
    cr_assert_eq(dp_gcd64(12, 18), 6u);
    cr_assert(dp_gcd128((dp_u128_t)3 << 100, (dp_u128_t)9 << 90) == (dp_u128_t)3
                                                                        << 90);
    uint64_t seed = SEED;
    for (int k = 0; k < RANDOM_ROUNDS; k++) {
        const dp_num_prime_t *p =
            &dp_num_trial_primes[s_rng(&seed) % DP_NUM_TRIAL_COUNT];
        dp_u128_t v = ((dp_u128_t)s_rng(&seed) << 64) | s_rng(&seed), q;
        v >>= s_rng(&seed) % 128;
        bool d = dp_divides128(v, p, &q);
        cr_assert_eq(d, v % p->p == 0);
        if (d)
            cr_assert(q == v / p->p);
    }
}

Test(num, integer_roots)
{
    uint64_t seed = SEED;
    for (int k = 0; k < RANDOM_ROUNDS; k++) {
        dp_u128_t n = ((dp_u128_t)s_rng(&seed) << 64) | s_rng(&seed);
        n >>= s_rng(&seed) % 128;
        unsigned e = 2 + (unsigned)(s_rng(&seed) % 6);
        dp_u128_t r = dp_num_iroot_u128(n, e), lo = 1, hi = 1;
        bool over = false;
        for (unsigned j = 0; j < e; j++) {
            lo *= r;
            over |= __builtin_mul_overflow(hi, r + 1, &hi);
        }
        cr_assert(lo <= n && (over || hi > n));
    }
    cr_assert(dp_num_iroot_u128(~(dp_u128_t)0, 2) == UINT64_MAX);
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *n = BN_new(), *r = BN_new(), *t = BN_new();
    bool exact;
    for (unsigned e = 2; e < 60; e++) {
        BN_set_word(t, 1000003);
        BN_set_word(r, e);
        BN_exp(n, t, r, ctx);
        cr_assert_eq(dp_num_iroot_bn(n, e, r, &exact, ctx), 0);
        cr_assert(exact && BN_cmp(r, t) == 0, "e=%u", e);
        BN_sub_word(n, 1);
        cr_assert_eq(dp_num_iroot_bn(n, e, r, &exact, ctx), 0);
        BN_sub_word(t, 1);
        cr_assert(!exact && BN_cmp(r, t) == 0, "e=%u", e);
    }
    BN_free(n);
    BN_free(r);
    BN_free(t);
    BN_CTX_free(ctx);
}

Test(num, prime_iterator_matches_sieve)
{
    bool *c = s_sieve(SIEVE_LIMIT);
    dp_num_primes_t it;
    cr_assert_eq(dp_num_primes_init(&it, SIEVE_LIMIT), 0);
    uint64_t p = dp_num_primes_next(&it);
    for (uint32_t k = 2; k <= SIEVE_LIMIT; k++) {
        if (c[k])
            continue;
        cr_assert_eq(p, k);
        p = dp_num_primes_next(&it);
    }
    cr_assert_eq(p, 0u);
    dp_num_primes_free(&it);
    free(c);
}

Test(num, trial_table)
{
    bool *c = s_sieve(DP_NUM_TRIAL_BOUND);
    size_t k = 0;
    for (uint32_t p = 3; p < DP_NUM_TRIAL_BOUND; p++) {
        if (c[p])
            continue;
        const dp_num_prime_t *e = &dp_num_trial_primes[k++];
        cr_assert_eq(e->p, p);
        cr_assert_eq(e->inv * p, 1u);
        cr_assert_eq(e->lim, UINT64_MAX / p);
    }
    cr_assert_eq(k, DP_NUM_TRIAL_COUNT);
    cr_assert(!c[DP_NUM_TRIAL_BOUND]);
    free(c);
}

/* ---- primality ---- */

Test(num, isprime_u64_exhaustive_small)
{
    bool *c = s_sieve(SIEVE_LIMIT);
    for (uint32_t k = 0; k <= SIEVE_LIMIT; k++)
        cr_assert_eq(dp_num_isprime_u64(k), !c[k], "%u", k);
    free(c);
}

/* Strong pseudoprimes to base 2 (and more bases): the traps of MR. */
static const uint64_t s_spsp[] = {
    2047u,
    3277u,
    4033u,
    4681u,
    8321u,
    3215031751u,
    2152302898747u,
    3474749660383u,
    341550071728321u,
    3825123056546413051u,
};

Test(num, miller_rabin_traps)
{
    cr_assert(dp_num_sprp_u64(2047, 2));
    cr_assert(!dp_num_sprp_u64(2047, 3));
    for (size_t k = 0; k < sizeof s_spsp / sizeof *s_spsp; k++) {
        uint64_t n = s_spsp[k];
        if (n < 2)
            continue;
        cr_assert(dp_num_sprp_u64(n, 2), "%llu", (unsigned long long)n);
        cr_assert(!dp_num_isprime_u64(n), "%llu", (unsigned long long)n);
        if (n > DP_NUM_TRIAL_BOUND)
            cr_assert(!dp_num_bpsw128(n), "%llu", (unsigned long long)n);
    }
    cr_assert(dp_num_isprime_u64(18446744073709551557u));
    cr_assert(!dp_num_isprime_u64(UINT64_MAX));
    cr_assert(dp_num_isprime_u64(2305843009213693951u));
    cr_assert(!dp_num_isprime_u64(561));
    cr_assert(!dp_num_isprime_u64(41041));
    /* dp_num_mr64 tests the bases after 2 side by side: strong
     * pseudoprimes to many leading bases, and odd n dividing a base
     * (325 = 5^2 13) or a power of one (125 divides 325^2) */
    cr_assert(!dp_num_mr64(3825123056546413051u)); /* bases 2 .. 23 */
    cr_assert(!dp_num_mr64(125));
    cr_assert(!dp_num_mr64(25));
    cr_assert(dp_num_mr64(13));
}

/* BPSW is exact below 2^64: it must agree with deterministic MR on every
 * odd number there (composites chosen to pass the cheap filters). */
Test(num, bpsw_agrees_with_mr_below_2_64)
{
    uint64_t seed = SEED;
    int primes = 0;
    for (int k = 0; k < BPSW_ROUNDS * 10; k++) {
        uint64_t n = (s_rng(&seed) >> (s_rng(&seed) % 40)) | 1;
        if (n <= DP_NUM_TRIAL_BOUND)
            continue;
        bool mr = dp_num_isprime_u64(n);
        primes += mr;
        cr_assert_eq(dp_num_bpsw128(n), mr, "%llu", (unsigned long long)n);
    }
    cr_assert_gt(primes, 100);
    /* squares of primes: Selfridge's D search must not loop */
    cr_assert(!dp_num_bpsw128((dp_u128_t)4294967291u * 4294967291u));
    cr_assert(!dp_num_bpsw128((dp_u128_t)10007 * 10007));
}

Test(num, bpsw_128_known)
{
    cr_assert(dp_num_isprime_u128(s_u128("618970019642690137449562111")));
    cr_assert(dp_num_isprime_u128(s_u128("162259276829213363391578010288127")));
    cr_assert(
        dp_num_isprime_u128(s_u128("170141183460469231731687303715884105727")));
    cr_assert(dp_num_isprime_u128(s_u128("18446744073709551629")));
    cr_assert(!dp_num_isprime_u128(s_u128("18446744073709551617")));
    /* (2^61-1)^2; 2^128 - 159, the largest prime below 2^128; 2^128 - 1;
     * a product of two 64-bit primes */
    cr_assert(
        !dp_num_isprime_u128(s_u128("5316911983139663487003542222693990401")));
    cr_assert(
        dp_num_isprime_u128(s_u128("340282366920938463463374607431768211297")));
    cr_assert(!dp_num_isprime_u128(~(dp_u128_t)0));
    cr_assert(!dp_num_isprime_u128((dp_u128_t)18446744073709551557u *
                                   18446744073709551533u));
}

/* The BIGNUM BPSW must agree with the native one. */
Test(num, bpsw_bignum_agrees_with_native)
{
    uint64_t seed = SEED;
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *b = BN_new();
    int primes = 0;
    for (int k = 0; k < BPSW_ROUNDS; k++) {
        dp_u128_t n = ((dp_u128_t)s_rng(&seed) << 64) | s_rng(&seed) | 1;
        n >>= s_rng(&seed) % 60;
        n |= 1;
        bool small_factor = false;
        for (size_t j = 0; j < DP_NUM_TRIAL_COUNT && !small_factor; j++)
            small_factor = n % dp_num_trial_primes[j].p == 0;
        if (small_factor)
            continue;
        bool native = dp_num_bpsw128(n), big = false;
        dp_num_u128_to_bn(n, b);
        cr_assert_eq(dp_num_bpsw_bn(b, ctx, &big), 0);
        cr_assert_eq(big, native);
        primes += native;
    }
    cr_assert_gt(primes, 10);
    BN_free(b);
    BN_CTX_free(ctx);
}

Test(num, isprime_bignum)
{
    static const struct {
        const char *n;
        bool prime;
    } cases[] = {
        /* 2^521 - 1, a Mersenne prime */
        {"6864797660130609714981900799081393217269435300143305409394463459185"
         "543183397656052122559640661454554977296311391480858037121987999716643"
         "812574028291115057151",
         true},
        /* 3 * 10^87 + 97 and 2 * 10^84 + 101 */
        {"3000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000097",
         true},
        {"2000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000101",
         true},
        /* their product, 2^128 + 1, (2^127 - 1)^2, 2^256 */
        {"6000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000303194000000000000000000000000000000000000000000000000"
         "000000000000000000000000000000009797",
         false},
        {"340282366920938463463374607431768211457", false},
        {"28948022309329048855892746252171976962977213799489202546401021394546"
         "514198529",
         false},
        {"115792089237316195423570985008687907853269984665640564039457584007"
         "913129639936",
         false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dp_num_t n;
        char err[ERRLEN];
        const char *s = cases[k].n;
        cr_assert_eq(dp_num_parse(s, strlen(s), &n, err, sizeof err), 0);
        cr_assert_not_null(n.big);
        bool prime = !cases[k].prime;
        cr_assert_eq(dp_num_isprime(&n, &prime), 0);
        cr_assert_eq(prime, cases[k].prime, "case %zu", k);
        dp_num_clear(&n);
    }
}

/* ---- factoring stages ---- */

Test(num, rho_and_ecm_split)
{
    dp_factors_t f;
    dp_factors_init(&f);
    dp_num_job_t job = {.out = &f};
    uint64_t g = 0;
    uint64_t n64 = (uint64_t)4294967291u * 4294967279u;
    cr_assert_eq(dp_num_rho64(&job, n64, 1, &g), 0);
    cr_assert(g == 4294967291u || g == 4294967279u);
    /* two 50-bit primes: rho gives up within its budget, ECM splits */
    dp_u128_t p = 1125899906842679u, q = 1125899906843311u, n = p * q, h;
    cr_assert_eq(dp_num_rho128(&job, n, 1, 1, &h), 0);
    cr_assert(h == 1);
    cr_assert_eq(dp_num_ecm128(&job, n, &h), 0);
    cr_assert(h == p || h == q);
    job.bn = BN_CTX_new();
    BIGNUM *bn = BN_new(), *bg = BN_new();
    dp_num_u128_to_bn(n, bn);
    cr_assert_eq(dp_num_ecm_bn(&job, bn, bg), 0);
    h = dp_num_bn_to_u128(bg);
    cr_assert(h == p || h == q);
    cr_assert_eq(dp_num_rho_bn(&job, bn, 1, 1, bg), 0);
    cr_assert(BN_is_one(bg));
    BN_free(bn);
    BN_free(bg);
    BN_CTX_free(job.bn);
}

Test(num, factor_list_and_deadline)
{
    dp_factors_t f;
    dp_factors_init(&f);
    dp_num_t zero = {0}, one = {.small = 1}, n = {.small = 360};
    cr_assert_eq(dp_num_factor(&zero, 0, &f), DP_ERR_INVALID);
    cr_assert_eq(dp_num_factor(&one, 0, &f), 0);
    cr_assert_eq(f.len, 0u);
    cr_assert_eq(dp_num_factor(&n, 0, &f), 0);
    cr_assert_eq(f.len, 6u);
    dp_value_t v;
    cr_assert_eq(dp_factors_to_value(&f, &v), 0);
    char *j = dp_value_json(&v);
    cr_assert_str_eq(j, "[2,2,2,3,3,5]");
    free(j);
    dp_value_clear(&v);
    dp_factors_clear(&f);
    dp_factors_clear(&f);
    /* two 30-digit primes and a deadline long past */
    const char *hard = "7000000000000000000000000022660000000000000000000"
                       "0000000010527";
    char err[ERRLEN];
    cr_assert_eq(dp_num_parse(hard, strlen(hard), &n, err, ERRLEN), 0);
    cr_assert_eq(dp_num_factor(&n, 1, &f), DP_ERR_TIMEOUT);
    dp_factors_clear(&f);
    dp_num_clear(&n);
}
