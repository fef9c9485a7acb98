/*
 * test_isprime.c - the `isprime` kernel: a plain bool below 2^64, the
 * {"prime", "method"} map above; the classic traps (Carmichael numbers,
 * strong pseudoprimes); argument errors; a cross-check against GNU
 * coreutils factor (prime iff it prints exactly the number itself).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_jobs.h"
#include "dp_num.h"

#define ERRLEN 256
#define GNU_FACTOR "/usr/bin/factor"
#define N_SMALL 2000
#define N_LARGE 300
#define LARGE_MAX_BITS 100
#define SEED 0x15b41e0123456789ULL
#define TOO_MANY_DIGITS 2000

static const dp_job_limits_t s_limits = {DP_HASH_MAX_ITERATIONS_DEFAULT,
                                         DP_HASH_MAX_DKLEN_DEFAULT,
                                         DP_DOWNLOAD_MAX_BYTES_DEFAULT};

static int s_isprime(const dp_value_t *arg, dp_value_t *out, char *err)
{
    dp_job_ctx_t ctx = {.deadline_us = 0, .limits = &s_limits};
    err[0] = '\0';
    return dp_job_isprime(&ctx, arg, 1, out, err, ERRLEN);
}

/* s_answer: the kernel's verdict on arg; *mapped when it was a map. */
static bool s_answer(dp_value_t arg, bool *mapped)
{
    dp_value_t out;
    char err[ERRLEN];
    int rc = s_isprime(&arg, &out, err);
    cr_assert_eq(rc, 0, "%s", err);
    bool prime;
    *mapped = out.type == DP_MAP;
    if (*mapped) {
        const dp_value_t *p = dp_dict_get(&out, "prime");
        const dp_value_t *m = dp_dict_get(&out, "method");
        cr_assert_eq(out.v.a.len, 2u);
        cr_assert(p && p->type == DP_BOOL);
        cr_assert(m && m->type == DP_STR);
        cr_assert_str_eq(m->v.s.ptr, "bpsw");
        prime = p->v.b;
    } else {
        cr_assert_eq(out.type, DP_BOOL);
        prime = out.v.b;
    }
    dp_value_clear(&out);
    dp_value_clear(&arg);
    return prime;
}

static void s_expect_bool(dp_value_t arg, bool prime)
{
    bool mapped;
    char *j = dp_value_json(&arg);
    cr_assert_eq(s_answer(arg, &mapped), prime, "%s", j);
    cr_assert(!mapped, "%s: below 2^64 the answer is a bool", j);
    free(j);
}

static void s_expect_map(const char *n, bool prime)
{
    bool mapped;
    cr_assert_eq(s_answer(dp_str(n), &mapped), prime, "%s", n);
    cr_assert(mapped, "%s: from 2^64 on the answer is a map", n);
}

Test(isprime, small_values)
{
    s_expect_bool(dp_uint(0), false);
    s_expect_bool(dp_uint(1), false);
    s_expect_bool(dp_uint(2), true);
    s_expect_bool(dp_uint(3), true);
    s_expect_bool(dp_uint(4), false);
    s_expect_bool(dp_int(97), true);
    s_expect_bool(dp_str(" +0 "), false);
    s_expect_bool(dp_str("5003"), true);
    s_expect_bool(dp_str("25030009"), false); /* 5003^2 */
}

Test(isprime, traps)
{
    /* Carmichael numbers */
    s_expect_bool(dp_uint(561), false);
    s_expect_bool(dp_uint(41041), false);
    s_expect_bool(dp_uint(825265), false);
    s_expect_bool(dp_uint(321197185), false);
    /* strong pseudoprimes to base 2, and to bases 2..23 */
    s_expect_bool(dp_uint(2047), false);
    s_expect_bool(dp_uint(3215031751u), false);
    s_expect_bool(dp_uint(3825123056546413051u), false);
    /* the edges of 64 bits */
    s_expect_bool(dp_str("18446744073709551557"), true);
    s_expect_bool(dp_uint(18446744073709551557u), true);
    s_expect_bool(dp_uint(UINT64_MAX), false);
    s_expect_bool(dp_uint(2305843009213693951u), true);
    s_expect_bool(dp_uint(4294967291u * (uint64_t)4294967279u), false);
}

Test(isprime, above_64_bits)
{
    s_expect_map("18446744073709551616", false); /* 2^64 */
    s_expect_map("18446744073709551617", false); /* 2^64 + 1 */
    s_expect_map("18446744073709551629", true);  /* next prime */
    s_expect_map("170141183460469231731687303715884105727", true);
    s_expect_map("340282366920938463463374607431768211297", true);
    s_expect_map("340282366920938463463374607431768211455", false);
    s_expect_map("340282366920938463463374607431768211457", false);
    s_expect_map("5316911983139663487003542222693990401", false);
    s_expect_map("300000000000000000000000000000000000000000000000000000"
                 "0000000000000000000000000000000097",
                 true); /* 3 * 10^87 + 97 */
    /* 2^521 - 1 */
    s_expect_map("6864797660130609714981900799081393217269435300143305409394"
                 "4634591855431833976560521225596406614545549772963113914808"
                 "58037121987999716643812574028291115057153",
                 false);
    s_expect_map("6864797660130609714981900799081393217269435300143305409394"
                 "4634591855431833976560521225596406614545549772963113914808"
                 "58037121987999716643812574028291115057151",
                 true);
}

Test(isprime, thousand_digits)
{
    char s[DP_NUM_MAX_DIGITS + 1];
    memset(s, '0', DP_NUM_MAX_DIGITS);
    s[0] = '1';
    s[DP_NUM_MAX_DIGITS - 1] = '7'; /* 10^999 + 7 */
    s[DP_NUM_MAX_DIGITS] = '\0';
    bool mapped;
    bool prime = s_answer(dp_str(s), &mapped);
    cr_assert(mapped);
    (void)prime; /* either way, answered in time */
    s[DP_NUM_MAX_DIGITS - 1] = '5';
    cr_assert(!s_answer(dp_str(s), &mapped));
}

static void s_reject(dp_value_t arg, int rc, const char *msg)
{
    dp_value_t out = dp_uint(7);
    char err[ERRLEN];
    cr_assert_eq(s_isprime(&arg, &out, err), rc);
    cr_assert_eq(out.type, DP_NIL);
    if (msg)
        cr_assert_str_eq(err, msg);
    else
        cr_assert_neq(err[0], '\0');
    dp_value_clear(&arg);
}

Test(isprime, rejects)
{
    s_reject(dp_int(-5), DP_ERR_INVALID, "negative number -5");
    s_reject(dp_str("-5"), DP_ERR_INVALID, "negative number -5");
    s_reject(dp_str("abc"), DP_ERR_INVALID, "not a decimal integer: 'abc'");
    s_reject(dp_str(""), DP_ERR_INVALID, NULL);
    s_reject(dp_float(7.0), DP_ERR_INVALID, NULL);
    s_reject(dp_array(0), DP_ERR_INVALID, NULL);
    char big[TOO_MANY_DIGITS + 1];
    memset(big, '9', TOO_MANY_DIGITS);
    big[TOO_MANY_DIGITS] = '\0';
    s_reject(dp_str(big), DP_ERR_RANGE, NULL);
}

/* ---- cross-check with GNU coreutils factor ---- */

static uint64_t s_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* s_inputs: random numbers below 2^64 and in [2^64, 2^100), odd ones
 * mostly (primes are rare among the even), as decimal. */
static char **s_inputs(size_t *n)
{
    uint64_t seed = SEED;
    char **v = calloc(N_SMALL + N_LARGE, sizeof *v);
    cr_assert_not_null(v);
    char buf[DP_NUM_U128_DEC_MAX];
    for (size_t k = 0; k < N_SMALL + N_LARGE; k++) {
        dp_u128_t x = s_rng(&seed) >> (s_rng(&seed) % 64);
        if (k >= N_SMALL) {
            unsigned hi = 1 + (unsigned)(s_rng(&seed) % (LARGE_MAX_BITS - 64));
            x = s_rng(&seed) |
                (dp_u128_t)(s_rng(&seed) >> (64 - hi) | 1ULL << (hi - 1)) << 64;
        }
        dp_num_u128_to_dec(x | (k % 8 != 0), buf);
        v[k] = strdup(buf);
    }
    *n = N_SMALL + N_LARGE;
    return v;
}

/* s_gnu_prime: whether GNU factor prints n as its only factor, for each
 * input (0 and 1 print no factor). */
static bool *s_gnu_prime(char **in, size_t n)
{
    char path[] = "/tmp/dp-test-isprime-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    for (size_t k = 0; k < n; k++)
        fprintf(f, "%s\n", in[k]);
    fclose(f);
    char cmd[sizeof path + sizeof GNU_FACTOR + 8];
    snprintf(cmd, sizeof cmd, "%s < %s", GNU_FACTOR, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    bool *out = calloc(n, sizeof *out);
    char *line = NULL, want[2 * DP_NUM_U128_DEC_MAX + 4];
    size_t cap = 0, k = 0;
    while (k < n && getline(&line, &cap, p) > 0) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(want, sizeof want, "%s: %s", in[k], in[k]);
        out[k++] = strcmp(line, want) == 0;
    }
    free(line);
    pclose(p);
    unlink(path);
    cr_assert_eq(k, n, "GNU factor answered %zu of %zu lines", k, n);
    return out;
}

Test(isprime, matches_gnu_factor, .timeout = 300)
{
    if (access(GNU_FACTOR, X_OK) != 0)
        cr_skip_test("no %s", GNU_FACTOR);
    size_t n, primes = 0;
    char **in = s_inputs(&n);
    bool *gnu = s_gnu_prime(in, n);
    for (size_t k = 0; k < n; k++) {
        bool mapped;
        bool mine = s_answer(dp_str(in[k]), &mapped);
        cr_assert_eq(mine, gnu[k], "%s", in[k]);
        cr_assert_eq(mapped, k >= N_SMALL, "%s", in[k]);
        primes += mine;
        free(in[k]);
    }
    cr_assert_gt(primes, 50u);
    free(in);
    free(gnu);
}
