/*
 * test_factor.c - the `factor` kernel: known factorizations on every tier,
 * argument errors, the time limit, and a cross-check against GNU
 * coreutils factor on random numbers below 2^100.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_clock.h"
#include "dp_jobs.h"
#include "dp_num.h"

#define ERRLEN 256
#define GNU_FACTOR "/usr/bin/factor"
/* Cross-check sample: numbers below 2^64 and in [2^64, 2^100). */
#define N_SMALL 2000
#define N_LARGE 300
#define LARGE_MAX_BITS 100
#define SEED 0xfac7012345678901ULL
#define TOO_MANY_DIGITS 2000

static const dp_job_limits_t s_limits = {DP_HASH_MAX_ITERATIONS_DEFAULT,
                                         DP_HASH_MAX_DKLEN_DEFAULT,
                                         DP_DOWNLOAD_MAX_BYTES_DEFAULT};

static int s_factor(const dp_value_t *arg, uint64_t deadline_us,
                    dp_value_t *out, char *err)
{
    dp_job_ctx_t ctx = {.deadline_us = deadline_us, .limits = &s_limits};
    err[0] = '\0';
    return dp_job_factor(&ctx, arg, 1, out, err, ERRLEN);
}

/* s_line: "N: p1 p2 ..." as GNU factor prints it; caller frees. */
static char *s_line(const char *n, const dp_value_t *v)
{
    cr_assert_eq(v->type, DP_ARRAY);
    size_t cap = strlen(n) + 2, len;
    for (size_t k = 0; k < v->v.a.len; k++)
        cap += (v->v.a.items[k].type == DP_STR ? v->v.a.items[k].v.s.len
                                               : DP_NUM_U128_DEC_MAX) +
               1;
    char *s = malloc(cap + 1);
    cr_assert_not_null(s);
    len = (size_t)snprintf(s, cap, "%s:", n);
    for (size_t k = 0; k < v->v.a.len; k++) {
        const dp_value_t *it = &v->v.a.items[k];
        if (it->type == DP_UINT) {
            len += (size_t)snprintf(s + len, cap - len, " %llu",
                                    (unsigned long long)it->v.u);
        } else {
            cr_assert_eq(it->type, DP_STR);
            /* only factors of 2^64 and above travel as text */
            cr_assert_gt(it->v.s.len, 19u);
            len += (size_t)snprintf(s + len, cap - len, " %s", it->v.s.ptr);
        }
    }
    return s;
}

/* s_expect: factor decimal text n and compare with GNU's line. */
static void s_expect(const char *n, const char *factors)
{
    dp_value_t arg = dp_str(n), out;
    char err[ERRLEN];
    int rc = s_factor(&arg, 0, &out, err);
    cr_assert_eq(rc, 0, "%s: %s", n, err);
    char *got = s_line(n, &out), want[4096];
    snprintf(want, sizeof want, "%s:%s%s", n, *factors ? " " : "", factors);
    cr_assert_str_eq(got, want);
    free(got);
    dp_value_clear(&out);
    dp_value_clear(&arg);
}

Test(factor, small_values)
{
    s_expect("1", "");
    s_expect("2", "2");
    s_expect("4", "2 2");
    s_expect("12", "2 2 3");
    s_expect("97", "97");
    s_expect("  +0360\n", "2 2 2 3 3 5");
}

Test(factor, word_sized)
{
    s_expect("18446744073709551615", "3 5 17 257 641 65537 6700417");
    s_expect("18446744073709551557", "18446744073709551557");
    s_expect("12157665459056928801", /* 3^40 */
             "3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 "
             "3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3");
    s_expect("9223372036854775808", /* 2^63 */
             "2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 "
             "2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 "
             "2 2 2");
    s_expect("18446743979220271189", "4294967279 4294967291");
    s_expect("1000000016000000063", "1000000007 1000000009");
    /* 5003 is the first prime past trial division, squared and cubed */
    s_expect("25030009", "5003 5003");
    s_expect("125375315081", "5003 5003 5009");
}

/* Around the end of trial division below 2^64 (DP_NUM_TRIAL64_BOUND),
 * powers there, Carmichael numbers and a strong pseudoprime to bases 2,
 * 3, 5, 7. */
Test(factor, trial64_edges)
{
    cr_assert_eq(dp_num_trial_primes[DP_NUM_TRIAL64_COUNT].p,
                 DP_NUM_TRIAL64_BOUND);
    s_expect("1018081", "1009 1009");
    s_expect("1027243729", "1009 1009 1009");
    s_expect("1005973", "997 1009");
    s_expect("1022117", "1009 1013");
    s_expect("1066712113176293", "1013 1013 1013 1013 1013");
    s_expect("1055229678769825441", "1009 1009 1009 1009 1009 1009");
    s_expect("18446744030759878681", "4294967291 4294967291");
    s_expect("3215031751", "151 751 28351");
    s_expect("41041", "7 11 13 41");
    s_expect("825265", "5 7 17 19 73");
    s_expect("321197185", "5 19 23 29 37 137");
    s_expect("1008985873948541", "1009 999983 1000003");
    s_expect("18446744052234715136", "2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 "
                                     "2 2 2 2 2 2 2 2 2 2 2 2 4294967291");
    s_expect("6917529027641081853", "3 2305843009213693951");
    s_expect("2326595596296617196559", "1009 2305843009213693951");
    s_expect("1207674645604018247", "1019 1021 1031 1033 1039 1049");
}

Test(factor, double_word)
{
    s_expect("170141183460469231731687303715884105727",
             "170141183460469231731687303715884105727");
    s_expect("5316911983139663487003542222693990401", /* (2^61-1)^2 */
             "2305843009213693951 2305843009213693951");
    s_expect("302774430408766275379163", /* two 40-bit primes */
             "549755826233 550743468211");
    s_expect("1267650600228229401496703205377", /* 2^100 + 1 */
             "17 401 61681 340801 2787601 3173389601");
    s_expect("340282366920938463463374607431768211455", /* 2^128 - 1 */
             "3 5 17 257 641 65537 274177 6700417 67280421310721");
    s_expect("18446744073709551617", "274177 67280421310721");
    s_expect("1267650600228229401496703205653", /* 2^100 + 277 */
             "1267650600228229401496703205653");
}

Test(factor, bignum, .timeout = 120)
{
    /* 2^128 + 1 = F7: a 17-digit factor, found by ECM */
    s_expect("340282366920938463463374607431768211457",
             "59649589127497217 5704689200685129054721");
    /* 100 digits: 3^2 * 7 * a 12-digit prime * an 88-digit prime */
    s_expect("2333333312307900000000000000000000000000000000000000000000"
             "0000000000000000000000000000754444437646221",
             "3 3 7 123456789011 "
             "300000000000000000000000000000000000000000000000000000000000"
             "0000000000000000000000000097");
    /* 99 digits: a 15-digit prime times an 85-digit prime */
    s_expect("6283185307181140000000000000000000000000000000000000000000"
             "00000000000000000000000031730085801264757",
             "314159265359057 "
             "200000000000000000000000000000000000000000000000000000000000"
             "0000000000000000000000101");
    /* (2^127-1)^3 * 3: a perfect power above 2^128 */
    s_expect("147757523236479297046046400375538551766443700256405810607775"
             "75310322597871643127784433802799578648987018123911626749",
             "3 170141183460469231731687303715884105727 "
             "170141183460469231731687303715884105727 "
             "170141183460469231731687303715884105727");
}

Test(factor, result_types)
{
    dp_value_t arg = dp_str("340282366920938463463374607431768211457"), out;
    char err[ERRLEN];
    cr_assert_eq(s_factor(&arg, 0, &out, err), 0);
    cr_assert_eq(out.type, DP_ARRAY);
    cr_assert_eq(out.v.a.len, 2u);
    cr_assert_eq(out.v.a.items[0].type, DP_UINT);
    cr_assert_eq(out.v.a.items[0].v.u, 59649589127497217u);
    cr_assert_eq(out.v.a.items[1].type, DP_STR);
    cr_assert_str_eq(out.v.a.items[1].v.s.ptr, "5704689200685129054721");
    dp_value_clear(&out);
    dp_value_clear(&arg);
    arg = dp_uint(UINT64_MAX);
    cr_assert_eq(s_factor(&arg, 0, &out, err), 0);
    cr_assert_eq(out.v.a.len, 7u);
    cr_assert_eq(out.v.a.items[6].v.u, 6700417u);
    dp_value_clear(&out);
    arg = dp_int(360);
    cr_assert_eq(s_factor(&arg, 0, &out, err), 0);
    char *j = dp_value_json(&out);
    cr_assert_str_eq(j, "[2,2,2,3,3,5]");
    free(j);
    dp_value_clear(&out);
    arg = dp_uint(1);
    cr_assert_eq(s_factor(&arg, 0, &out, err), 0);
    cr_assert_eq(out.type, DP_ARRAY);
    cr_assert_eq(out.v.a.len, 0u);
    dp_value_clear(&out);
}

Test(factor, thousand_digits)
{
    /* 10^999: the largest size accepted, 999 twos and 999 fives */
    char s[DP_NUM_MAX_DIGITS + 1];
    memset(s, '0', DP_NUM_MAX_DIGITS);
    s[0] = '1';
    s[DP_NUM_MAX_DIGITS] = '\0';
    dp_value_t arg = dp_str(s), out;
    char err[ERRLEN];
    cr_assert_eq(s_factor(&arg, 0, &out, err), 0, "%s", err);
    cr_assert_eq(out.v.a.len, 2u * (DP_NUM_MAX_DIGITS - 1));
    cr_assert_eq(out.v.a.items[0].v.u, 2u);
    cr_assert_eq(out.v.a.items[out.v.a.len - 1].v.u, 5u);
    dp_value_clear(&out);
    dp_value_clear(&arg);
}

static void s_reject(dp_value_t arg, int rc, const char *msg)
{
    dp_value_t out = dp_uint(7);
    char err[ERRLEN];
    cr_assert_eq(s_factor(&arg, 0, &out, err), rc);
    cr_assert_eq(out.type, DP_NIL);
    if (msg)
        cr_assert_str_eq(err, msg);
    else
        cr_assert_neq(err[0], '\0');
    dp_value_clear(&arg);
}

Test(factor, rejects)
{
    s_reject(dp_uint(0), DP_ERR_INVALID, "0 has no prime factorization");
    s_reject(dp_str(" 000 "), DP_ERR_INVALID, "0 has no prime factorization");
    s_reject(dp_int(-5), DP_ERR_INVALID, "negative number -5");
    s_reject(dp_str("-5"), DP_ERR_INVALID, "negative number -5");
    s_reject(dp_str("abc"), DP_ERR_INVALID, "not a decimal integer: 'abc'");
    s_reject(dp_str(""), DP_ERR_INVALID, NULL);
    s_reject(dp_str("12 34"), DP_ERR_INVALID, NULL);
    s_reject(dp_float(12.0), DP_ERR_INVALID, NULL);
    s_reject(dp_bool(true), DP_ERR_INVALID, NULL);
    s_reject(dp_nil(), DP_ERR_INVALID, NULL);
    s_reject(dp_bin("12", 2), DP_ERR_INVALID, NULL);
    s_reject(dp_array(1), DP_ERR_INVALID, NULL);
    char big[TOO_MANY_DIGITS + 1];
    memset(big, '9', TOO_MANY_DIGITS);
    big[TOO_MANY_DIGITS] = '\0';
    s_reject(dp_str(big), DP_ERR_RANGE, NULL);
}

Test(factor, deadline_in_the_past, .timeout = 30)
{
    /* two 20-digit primes: neither trial division nor a few rho steps */
    dp_value_t arg = dp_str("1200000000000000002210000000000000000779"), out;
    char err[ERRLEN];
    uint64_t t0 = dp_now_us();
    cr_assert_eq(s_factor(&arg, 1, &out, err), DP_ERR_TIMEOUT);
    cr_assert_str_eq(err, "factorization exceeded its time limit");
    cr_assert_eq(out.type, DP_NIL);
    cr_assert_lt(dp_now_us() - t0, 1000000u);
    dp_value_clear(&arg);
}

Test(factor, deadline_stops_ecm, .timeout = 30)
{
    /* two 30-digit primes: far beyond 200 ms of ECM */
    dp_value_t arg = dp_str("7000000000000000000000000022660000000000000000"
                            "0000000000010527"),
               out;
    char err[ERRLEN];
    uint64_t t0 = dp_now_us(), limit = 200000;
    cr_assert_eq(s_factor(&arg, t0 + limit, &out, err), DP_ERR_TIMEOUT);
    uint64_t took = dp_now_us() - t0;
    cr_assert_geq(took, limit);
    cr_assert_lt(took, 10 * limit, "took %llu us", (unsigned long long)took);
    dp_value_clear(&arg);
}

/* ---- cross-check with GNU coreutils factor ---- */

static uint64_t s_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* s_inputs: N_SMALL numbers >= 1 below 2^64 (half of full width, half of
 * random width) and N_LARGE in [2^64, 2^LARGE_MAX_BITS), as decimal. */
static char **s_inputs(size_t *n)
{
    uint64_t seed = SEED;
    char **v = calloc(N_SMALL + N_LARGE, sizeof *v);
    cr_assert_not_null(v);
    char buf[DP_NUM_U128_DEC_MAX];
    for (size_t k = 0; k < N_SMALL + N_LARGE; k++) {
        dp_u128_t x = s_rng(&seed);
        if (k < N_SMALL && (k & 1))
            x >>= s_rng(&seed) % 64;
        if (k >= N_SMALL) {
            unsigned hi = 1 + (unsigned)(s_rng(&seed) % (LARGE_MAX_BITS - 64));
            x |= (dp_u128_t)(s_rng(&seed) >> (64 - hi) | 1ULL << (hi - 1))
                 << 64;
        }
        dp_num_u128_to_dec(x ? x : 1, buf);
        v[k] = strdup(buf);
    }
    *n = N_SMALL + N_LARGE;
    return v;
}

/* s_gnu: GNU factor's line for each input (via a temp file). */
static char **s_gnu(char **in, size_t n)
{
    char path[] = "/tmp/dp-test-factor-XXXXXX";
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
    char **out = calloc(n, sizeof *out), *line = NULL;
    size_t cap = 0, k = 0;
    ssize_t len;
    while (k < n && (len = getline(&line, &cap, p)) > 0) {
        line[strcspn(line, "\n")] = '\0';
        out[k++] = strdup(line);
    }
    free(line);
    pclose(p);
    unlink(path);
    cr_assert_eq(k, n, "GNU factor answered %zu of %zu lines", k, n);
    return out;
}

Test(factor, matches_gnu_factor, .timeout = 300)
{
    if (access(GNU_FACTOR, X_OK) != 0)
        cr_skip_test("no %s", GNU_FACTOR);
    size_t n;
    char **in = s_inputs(&n), **gnu = s_gnu(in, n);
    for (size_t k = 0; k < n; k++) {
        dp_value_t arg = dp_str(in[k]), out;
        char err[ERRLEN];
        cr_assert_eq(s_factor(&arg, 0, &out, err), 0, "%s: %s", in[k], err);
        char *mine = s_line(in[k], &out);
        cr_assert_str_eq(mine, gnu[k]);
        free(mine);
        dp_value_clear(&out);
        dp_value_clear(&arg);
        free(in[k]);
        free(gnu[k]);
    }
    free(in);
    free(gnu);
}
