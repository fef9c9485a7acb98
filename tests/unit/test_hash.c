/*
 * test_hash.c - the `hash` kernel: published vectors (FIPS 180, RFC 1321,
 * RFC 6070, RFC 7914), Python hashlib names, errors and limits, the name
 * list, a sweep against /usr/bin/python3's hashlib, and PBKDF2's fast path
 * (SHA-1, SHA-2) against OpenSSL's PKCS5_PBKDF2_HMAC over a grid.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dp_clock.h"
#include "dp_hash.h"
#include "dp_jobs.h"

#define ERRLEN 256
#define PYTHON "/usr/bin/python3"

static const dp_job_limits_t s_limits = {DP_HASH_MAX_ITERATIONS_DEFAULT,
                                         DP_HASH_MAX_DKLEN_DEFAULT,
                                         DP_DOWNLOAD_MAX_BYTES_DEFAULT};

/* Run the kernel; frees args. Returns rc, *out owned by the caller. */
static int s_run(const dp_job_limits_t *lim, dp_value_t *args, size_t n,
                 dp_value_t *out, char *err)
{
    dp_job_ctx_t ctx = {0, lim};
    err[0] = '\0';
    int rc = dp_job_hash(&ctx, args, n, out, err, ERRLEN);
    for (size_t k = 0; k < n; k++)
        dp_value_clear(&args[k]);
    if (rc)
        cr_assert_eq(out->type, DP_NIL, "*out must stay nil on failure");
    return rc;
}

static void s_check(const char *want, dp_value_t *args, size_t n)
{
    dp_value_t out;
    char err[ERRLEN];
    int rc = s_run(&s_limits, args, n, &out, err);
    cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
    cr_assert_eq(out.type, DP_STR);
    cr_assert_eq(out.v.s.len, strlen(want));
    cr_assert_str_eq(out.v.s.ptr, want);
    dp_value_clear(&out);
}

static void s_fail(int want_rc, const char *want_msg, dp_value_t *args,
                   size_t n, const dp_job_limits_t *lim)
{
    dp_value_t out;
    char err[ERRLEN];
    int rc = s_run(lim ? lim : &s_limits, args, n, &out, err);
    cr_assert_eq(rc, want_rc, "rc %d (%s), want %d", rc, err, want_rc);
    cr_assert_neq(err[0], '\0', "no error message");
    if (want_msg)
        cr_assert(strstr(err, want_msg), "message '%s' lacks '%s'", err,
                  want_msg);
}

#define CHECK(want, ...)                                                       \
    do {                                                                       \
        dp_value_t a_[] = {__VA_ARGS__};                                       \
        s_check(want, a_, sizeof a_ / sizeof a_[0]);                           \
    } while (0)

#define FAIL_LIM(lim, rc, msg, ...)                                            \
    do {                                                                       \
        dp_value_t a_[] = {__VA_ARGS__};                                       \
        s_fail(rc, msg, a_, sizeof a_ / sizeof a_[0], lim);                    \
    } while (0)

#define FAIL(rc, msg, ...) FAIL_LIM(NULL, rc, msg, __VA_ARGS__)

#define S(x) dp_str(x)
#define B(x) dp_bin(x, sizeof(x) - 1)
#define U(x) dp_uint(x)
#define NIL dp_nil()

static const char s_448[] =
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

Test(hash, fips180_sha256)
{
    CHECK("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
          S("abc"));
    CHECK("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
          S("abc"), S("sha256"));
    CHECK("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
          S(""), S("sha256"));
    CHECK("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
          S(s_448), S("sha256"));
}

Test(hash, fips180_sha512)
{
    CHECK("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
          "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
          S("abc"), S("sha512"));
    CHECK("cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
          "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
          S(""), S("sha512"));
    CHECK("204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335"
          "96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445",
          S(s_448), S("sha512"));
    CHECK("53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23",
          S("abc"), S("sha512_256"));
}

Test(hash, fips180_sha1_and_rfc1321_md5)
{
    CHECK("a9993e364706816aba3e25717850c26c9cd0d89d", S("abc"), S("sha1"));
    CHECK("da39a3ee5e6b4b0d3255bfef95601890afd80709", S(""), S("sha1"));
    CHECK("84983e441c3bd26ebaae4aa1f95129e5e54670f1", S(s_448), S("sha1"));
    CHECK("d41d8cd98f00b204e9800998ecf8427e", S(""), S("md5"));
    CHECK("900150983cd24fb0d6963f7d28e17f72", S("abc"), S("md5"));
    CHECK("f96b697d7cb7938d525a2f31aaf161d0", S("message digest"), S("md5"));
}

Test(hash, million_a_one_pass)
{
    enum { MILLION = 1000000 };
    char *m = malloc(MILLION);
    cr_assert_not_null(m);
    memset(m, 'a', MILLION);
    dp_value_t a[] = {dp_bin(m, MILLION)};
    free(m);
    s_check("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
            a, 1);
}

Test(hash, sha3_blake2_shake)
{
    CHECK("3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
          S("abc"), S("sha3_256"));
    CHECK("3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
          S("abc"), S("sha3-256"));
    CHECK("ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
          "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
          S("abc"), S("blake2b"));
    CHECK("ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
          "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
          S("abc"), S("BLAKE2b512"));
    CHECK("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
          S("abc"), S("blake2s"));
    CHECK("7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26",
          S(""), S("shake_128"), NIL, NIL, U(32));
    CHECK("7f9c2ba4e88f827d", S(""), S("SHAKE128"), NIL, NIL, S("8"));
    CHECK("483366601360a8771c6863080cc4114d8db44530f8f1e1ee4f94ea37e78b5739"
          "d5a15bef186a5386c75744c0527e1faa9f8726e462a12a4feb06bd8801e751e4",
          S("abc"), S("shake_256"), NIL, NIL, U(64));
}

Test(hash, names_case_insensitive)
{
    const char *abc256 =
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    CHECK(abc256, S("abc"), S("SHA256"));
    CHECK(abc256, S("abc"), S("Sha2-256"));
    CHECK(abc256, S("abc"), S("sha-256"));
    CHECK(abc256, S("abc"), NIL);
    CHECK(abc256, S("abc"), S("sha256"), NIL);
    CHECK(abc256, S("abc"), S("sha256"), NIL, NIL, NIL);
    CHECK(abc256, B("abc"), S("SHA256"));
    CHECK("3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
          S("abc"), S("SHA3_256"));
}

Test(hash, binary_data_with_nul)
{
    /* hashlib.sha256(b'a\0b').hexdigest() */
    CHECK("59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138",
          B("a\0b"));
    CHECK("59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138",
          dp_strn("a\0b", 3));
}

Test(hash, rfc6070_pbkdf2_sha1)
{
    CHECK("0c60c80f961f0e71f3a9b524af6012062fe037a6", S("password"), S("sha1"),
          U(1), S("salt"), U(20));
    CHECK("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957", S("password"), S("sha1"),
          U(2), S("salt"), U(20));
    CHECK("4b007901b765489abead49d926f721d065a429c1", S("password"), S("sha1"),
          U(4096), S("salt"));
    CHECK("3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
          S("passwordPASSWORDpassword"), S("sha1"), U(4096),
          S("saltSALTsaltSALTsaltSALTsaltSALTsalt"), U(25));
    CHECK("56fa6aa75548099dcc37d7f03425e0c3", B("pass\0word"), S("sha1"),
          S("4096"), B("sa\0lt"), U(16));
}

/* 2^24 iterations: about 3 s on a 2020s core. */
Test(hash, rfc6070_pbkdf2_sha1_16777216, .timeout = 60)
{
    CHECK("eefe3d61cd4da4e4e9945b3d6ba2158c2634e984", S("password"), S("sha1"),
          U(16777216), S("salt"), U(20));
}

Test(hash, pbkdf2_sha256_sha512)
{
    CHECK("120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
          S("password"), S("sha256"), U(1), S("salt"));
    CHECK("ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
          S("password"), S("sha256"), U(2), S("salt"), U(32));
    CHECK("c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
          S("password"), NIL, U(4096), S("salt"), NIL);
    /* RFC 7914 section 11 */
    CHECK("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
          "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
          S("passwd"), S("sha256"), U(1), S("salt"), U(64));
    CHECK("4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
          "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
          S("Password"), S("sha256"), U(80000), S("NaCl"), U(64));
    CHECK("867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252"
          "c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce",
          S("password"), S("sha512"), U(1), S("salt"));
    CHECK("f7ce0b653d2d72a4108cf5abe912ffdd777616dbbb27a70e8204f3ae2d0f6fad",
          S(""), S("sha256"), U(1), S(""));
}

Test(hash, unknown_algorithm)
{
    FAIL(DP_ERR_UNKNOWN_ALGO, NULL, S("abc"), S("xyz"));
    dp_value_t a[] = {S("abc"), S("xyz")};
    dp_value_t out;
    char err[ERRLEN];
    cr_assert_eq(s_run(&s_limits, a, 2, &out, err), DP_ERR_UNKNOWN_ALGO);
    cr_assert_str_eq(err, "unknown algorithm 'xyz' (see: dpool hash --list)");
    FAIL(DP_ERR_UNKNOWN_ALGO, "unknown algorithm", S("abc"), S(""));
    FAIL(DP_ERR_UNKNOWN_ALGO, "unknown algorithm", S("abc"), S("null"));
    FAIL(DP_ERR_UNKNOWN_ALGO, "unknown algorithm", S("abc"),
         dp_strn("sha256\0x", 8));
    FAIL(DP_ERR_UNKNOWN_ALGO, "...'", S("abc"),
         S("sha256sha256sha256sha256sha256sha256sha256sha256sha256sha256"
           "sha256sha256"));
}

Test(hash, wrong_types)
{
    FAIL(DP_ERR_INVALID, "DATA", U(1));
    FAIL(DP_ERR_INVALID, "DATA", NIL, S("sha256"));
    FAIL(DP_ERR_INVALID, "ALGO", S("abc"), U(256));
    FAIL(DP_ERR_INVALID, "ITERATIONS", S("abc"), S("sha1"), S("many"),
         S("salt"));
    FAIL(DP_ERR_INVALID, "ITERATIONS", S("abc"), S("sha1"), dp_int(-1),
         S("salt"));
    FAIL(DP_ERR_INVALID, "ITERATIONS", S("abc"), S("sha1"), dp_float(2.0),
         S("salt"));
    FAIL(DP_ERR_INVALID, "SALT", S("abc"), S("sha1"), U(2), U(7));
    FAIL(DP_ERR_INVALID, "DKLEN", S("abc"), S("sha1"), U(2), S("s"), S("x"));
}

Test(hash, pbkdf2_argument_errors)
{
    FAIL(DP_ERR_INVALID, "PBKDF2 needs ITERATIONS and SALT", S("pw"),
         S("sha256"), U(10));
    FAIL(DP_ERR_INVALID, "PBKDF2 needs ITERATIONS and SALT", S("pw"),
         S("sha256"), U(10), NIL);
    FAIL(DP_ERR_INVALID, "SALT given without ITERATIONS", S("pw"), S("sha256"),
         NIL, S("salt"));
    FAIL(DP_ERR_INVALID, "at least 1", S("pw"), S("sha256"), U(0), S("salt"));
    FAIL(DP_ERR_INVALID, "at least 1", S("pw"), S("sha256"), U(1), S("salt"),
         U(0));
    FAIL(DP_ERR_INVALID, "fixed-size", S("pw"), S("shake_128"), U(1), S("salt"),
         U(16));
    FAIL(DP_ERR_INVALID, "DKLEN applies", S("abc"), S("sha256"), NIL, NIL,
         U(16));
    FAIL(DP_ERR_INVALID, "XOF", S("abc"), S("shake_128"));
    FAIL(DP_ERR_INVALID, "at least 1", S("abc"), S("shake_256"), NIL, NIL,
         U(0));
}

Test(hash, limits)
{
    dp_job_limits_t lim = {1000, 64, 0};
    FAIL_LIM(&lim, DP_ERR_LIMIT, "hash_max_iterations=1000", S("pw"), S("sha1"),
             U(1001), S("salt"));
    FAIL_LIM(&lim, DP_ERR_LIMIT, "hash_max_dklen=64", S("pw"), S("sha1"), U(1),
             S("salt"), U(65));
    FAIL_LIM(&lim, DP_ERR_LIMIT, "hash_max_dklen", S("abc"), S("shake_128"),
             NIL, NIL, U(65));
    FAIL(DP_ERR_RANGE, NULL, S("pw"), S("sha1"), S("99999999999999999999999"),
         S("salt"));
    FAIL(DP_ERR_LIMIT, "hash_max_iterations", S("pw"), S("sha1"), U(UINT64_MAX),
         S("salt"));
}

Test(hash, arity_and_deadline)
{
    FAIL(DP_ERR_ARITY, NULL, S("a"), S("sha1"), U(1), S("s"), U(1), U(1));
    dp_value_t out;
    char err[ERRLEN];
    dp_job_ctx_t ctx = {1, &s_limits};
    dp_value_t a[] = {S("abc")};
    int rc = dp_job_hash(&ctx, a, 1, &out, err, ERRLEN);
    dp_value_clear(&a[0]);
    cr_assert_eq(rc, DP_ERR_TIMEOUT, "rc %d: %s", rc, err);
    cr_assert_eq(out.type, DP_NIL);
}

/* Hash "abc" with the digest called name; XOFs with a 16-byte length. */
static int s_try_name(const char *name)
{
    dp_value_t out;
    char err[ERRLEN];
    dp_value_t plain[] = {S("abc"), S(name)};
    int rc = s_run(&s_limits, plain, 2, &out, err);
    if (rc == DP_ERR_INVALID && strstr(err, "XOF")) {
        dp_value_t xof[] = {S("abc"), S(name), NIL, NIL, U(16)};
        rc = s_run(&s_limits, xof, 5, &out, err);
    }
    dp_value_clear(&out);
    return rc;
}

Test(hash, list)
{
    char **names;
    size_t n;
    cr_assert_eq(dp_hash_list(&names, &n), 0);
    const char *want[] = {"md5",       "sha1",      "sha256",  "sha512",
                          "sha3_256",  "blake2b",   "blake2s", "shake_128",
                          "shake_256", "sha512_256"};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        size_t k = 0;
        while (k < n && strcmp(names[k], want[w]) != 0)
            k++;
        cr_assert_lt(k, n, "list lacks %s", want[w]);
    }
    for (size_t k = 0; k < n; k++) {
        if (k)
            cr_assert_lt(strcmp(names[k - 1], names[k]), 0, "%s, %s",
                         names[k - 1], names[k]);
        cr_assert_str_neq(names[k], "null");
        cr_assert_str_neq(names[k], "sha2-256");
        cr_assert_eq(s_try_name(names[k]), 0, "%s fails", names[k]);
    }
    dp_hash_list_free(&names, n);
    cr_assert_null(names);
    dp_hash_list_free(&names, n);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(dp_hash_list_print(f), 0);
    cr_assert_gt(ftell(f), 0);
    fclose(f);
}

/* ---- sweep against Python's hashlib ---- */

#define SWEEP_INPUTS 50
#define SWEEP_MAX_SIZE 5000
#define SWEEP_MAX_SALT 40
#define SWEEP_MAX_CASES 1024
#define SWEEP_SEED 0x5eed1234abcdULL

typedef struct {
    const char *algo;
    uint64_t iterations; /* 0: plain digest */
    uint64_t dklen;      /* 0: default */
    unsigned char *salt;
    size_t salt_len;
    const unsigned char *data;
    size_t len;
} sweep_case_t;

static const char *s_sweep_algos[] = {
    "md5",      "sha1",     "sha224",  "sha256",  "sha384",    "sha512",
    "sha3_256", "sha3_512", "blake2b", "blake2s", "sha512_256"};
static const char *s_sweep_kdf_algos[] = {
    "sha1", "sha256", "sha512", "sha3_256", "blake2b", "md5", "sha512_256"};

static const char s_sweep_py[] =
    "import sys, hashlib\n"
    "for line in open(sys.argv[1]):\n"
    "    a, it, dk, salt, data = line.split()\n"
    "    it, dk = int(it), int(dk)\n"
    "    salt, data = bytes.fromhex(salt[1:]), bytes.fromhex(data[1:])\n"
    "    if it:\n"
    "        print(hashlib.pbkdf2_hmac(a, data, salt, it, dk or None).hex())\n"
    "    else:\n"
    "        h = hashlib.new(a, data)\n"
    "        print(h.hexdigest(dk) if dk else h.hexdigest())\n";

/* splitmix64: the same stream on every platform. */
static uint64_t s_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void s_fill(uint64_t *st, unsigned char *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        p[k] = (unsigned char)s_rand(st);
}

static void s_put_hex(FILE *f, const unsigned char *p, size_t n)
{
    fputc('x', f);
    for (size_t k = 0; k < n; k++)
        fprintf(f, "%02x", p[k]);
}

/* Our answer for one case, as a string the caller frees. */
static char *s_ours(const sweep_case_t *c)
{
    dp_value_t a[] = {dp_bin(c->data, c->len), S(c->algo),
                      c->iterations ? U(c->iterations) : NIL,
                      c->iterations ? dp_bin(c->salt, c->salt_len) : NIL,
                      c->dklen ? U(c->dklen) : NIL};
    dp_value_t out;
    char err[ERRLEN];
    int rc = s_run(&s_limits, a, 5, &out, err);
    cr_assert_eq(rc, 0, "%s: %s", c->algo, err);
    char *s = strdup(out.v.s.ptr);
    dp_value_clear(&out);
    return s;
}

static size_t s_make_cases(uint64_t *st, unsigned char **inputs, size_t *sizes,
                           sweep_case_t *cases)
{
    size_t n = 0;
    size_t nalgo = sizeof s_sweep_algos / sizeof s_sweep_algos[0];
    size_t nkdf = sizeof s_sweep_kdf_algos / sizeof s_sweep_kdf_algos[0];
    for (size_t i = 0; i < SWEEP_INPUTS; i++) {
        sizes[i] = i == 0 ? 0 : (size_t)(s_rand(st) % (SWEEP_MAX_SIZE + 1));
        inputs[i] = malloc(sizes[i] + 1);
        s_fill(st, inputs[i], sizes[i]);
        for (size_t a = 0; a < nalgo; a++)
            cases[n++] = (sweep_case_t){s_sweep_algos[a], 0,       0, NULL, 0,
                                        inputs[i],        sizes[i]};
        cases[n++] = (sweep_case_t){i % 2 ? "shake_128" : "shake_256",
                                    0,
                                    1 + s_rand(st) % 300,
                                    NULL,
                                    0,
                                    inputs[i],
                                    sizes[i]};
        sweep_case_t k = {s_sweep_kdf_algos[i % nkdf],
                          1 + s_rand(st) % 64,
                          i % 3 ? 1 + s_rand(st) % 100 : 0,
                          NULL,
                          0,
                          inputs[i],
                          sizes[i] % 200};
        k.salt_len = (size_t)(s_rand(st) % (SWEEP_MAX_SALT + 1));
        k.salt = malloc(k.salt_len + 1);
        s_fill(st, k.salt, k.salt_len);
        cases[n++] = k;
    }
    return n;
}

Test(hash, python_hashlib_sweep, .timeout = 120)
{
    if (access(PYTHON, X_OK) != 0)
        cr_skip("%s not found", PYTHON);
    uint64_t st = SWEEP_SEED;
    unsigned char *inputs[SWEEP_INPUTS];
    size_t sizes[SWEEP_INPUTS];
    static sweep_case_t cases[SWEEP_MAX_CASES];
    size_t n = s_make_cases(&st, inputs, sizes, cases);
    char script[] = "/tmp/dp_hash_py_XXXXXX";
    char data[] = "/tmp/dp_hash_in_XXXXXX";
    int fs = mkstemp(script), fd = mkstemp(data);
    cr_assert(fs >= 0 && fd >= 0);
    FILE *f = fdopen(fs, "w");
    fputs(s_sweep_py, f);
    fclose(f);
    f = fdopen(fd, "w");
    for (size_t k = 0; k < n; k++) {
        fprintf(f, "%s %llu %llu ", cases[k].algo,
                (unsigned long long)cases[k].iterations,
                (unsigned long long)cases[k].dklen);
        s_put_hex(f, cases[k].salt, cases[k].salt_len);
        fputc(' ', f);
        s_put_hex(f, cases[k].data, cases[k].len);
        fputc('\n', f);
    }
    fclose(f);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "%s %s %s", PYTHON, script, data);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char *line = NULL;
    size_t cap = 0, k = 0, bad = 0;
    for (ssize_t got; k < n && (got = getline(&line, &cap, p)) > 0; k++) {
        if (line[got - 1] == '\n')
            line[got - 1] = '\0';
        char *ours = s_ours(&cases[k]);
        if (strcmp(ours, line) != 0 && bad++ == 0)
            cr_log_error("case %zu %s: ours %s python %s", k, cases[k].algo,
                         ours, line);
        free(ours);
    }
    free(line);
    int st_py = pclose(p);
    unlink(script);
    unlink(data);
    for (size_t i = 0; i < SWEEP_INPUTS; i++)
        free(inputs[i]);
    for (size_t i = 0; i < n; i++)
        free(cases[i].salt);
    cr_assert_eq(st_py, 0, "python failed");
    cr_assert_eq(k, n, "python answered %zu of %zu cases", k, n);
    cr_assert_eq(bad, 0, "%zu of %zu cases differ from hashlib", bad, n);
    cr_log_info("%zu cases equal to hashlib", n);
}

/* ---- PBKDF2's fast path (SHA-1, SHA-2) against OpenSSL's own ---- */

#define GRID_BIG_PASSWORD (100 * 1024)
#define GRID_MAX_SALT 200
/* INT(i) after the salt, and SHA-1/2's bit length field: 1/8 block */
#define GRID_INDEX_LEN 4
#define GRID_LEN_FIELD_PER_BLOCK 8
#define GRID_DKLEN_BLOCKS 3
#define GRID_DKLEN_EXTRA 5
#define GRID_LOG_MAX 5

/* The digests of the fast path: hashlib's name and OpenSSL's. */
static const struct {
    const char *python;
    const char *openssl;
} s_fast_algos[] = {
    {"sha1", "SHA1"},
    {"sha224", "SHA2-224"},
    {"sha256", "SHA2-256"},
    {"sha384", "SHA2-384"},
    {"sha512", "SHA2-512"},
    {"sha512_224", "SHA2-512/224"},
    {"sha512_256", "SHA2-512/256"},
};

/* One case through dp_job_hash and through PKCS5_PBKDF2_HMAC (the
 * EVP_KDF path); 1 when they agree, else 0, logging the first few. */
static int s_grid_case(const char *algo, const EVP_MD *md,
                       const unsigned char *pw, size_t pwlen,
                       const unsigned char *salt, size_t saltlen, int iter,
                       size_t dklen)
{
    static size_t logged;
    unsigned char *ref = malloc(dklen);
    char *hex = malloc(dklen * 2 + 1);
    cr_assert(ref && hex);
    cr_assert_eq(PKCS5_PBKDF2_HMAC((const char *)pw, (int)pwlen, salt,
                                   (int)saltlen, iter, md, (int)dklen, ref),
                 1);
    for (size_t k = 0; k < dklen; k++)
        snprintf(hex + 2 * k, 3, "%02x", ref[k]);
    dp_value_t a[] = {dp_bin(pw, pwlen), S(algo), U((uint64_t)iter),
                      dp_bin(salt, saltlen), U(dklen)};
    dp_value_t out;
    char err[ERRLEN];
    int rc = s_run(&s_limits, a, 5, &out, err);
    cr_assert_eq(rc, 0, "%s: rc %d: %s", algo, rc, err);
    int same = strcmp(out.v.s.ptr, hex) == 0;
    if (!same && logged++ < GRID_LOG_MAX)
        cr_log_error("%s pw %zu salt %zu iter %d dklen %zu: ours %s, "
                     "OpenSSL %s",
                     algo, pwlen, saltlen, iter, dklen, out.v.s.ptr, hex);
    dp_value_clear(&out);
    free(hex);
    free(ref);
    return same;
}

/* Every fast digest over passwords around its block size, salts whose
 * last block takes the padding with room to spare, exactly, with a block
 * more, or ends on a block (SALT || INT(i) after one block of key),
 * counts, and key lengths around its digest size (several blocks T_i). */
Test(hash, pbkdf2_fast_path_equals_evp_kdf, .timeout = 300)
{
    unsigned char *pw = malloc(GRID_BIG_PASSWORD);
    unsigned char salt[GRID_MAX_SALT];
    uint64_t st = SWEEP_SEED;
    cr_assert_not_null(pw);
    s_fill(&st, pw, GRID_BIG_PASSWORD);
    s_fill(&st, salt, sizeof salt);
    const int iters[] = {1, 2, 3, 1000};
    size_t cases = 0, bad = 0;
    for (size_t a = 0; a < sizeof s_fast_algos / sizeof s_fast_algos[0]; a++) {
        EVP_MD *md = EVP_MD_fetch(NULL, s_fast_algos[a].openssl, NULL);
        cr_assert_not_null(md, "%s", s_fast_algos[a].openssl);
        size_t bs = (size_t)EVP_MD_get_block_size(md);
        size_t ds = (size_t)EVP_MD_get_size(md);
        const size_t pws[] = {0, 1, bs - 1, bs, bs + 1, GRID_BIG_PASSWORD};
        const size_t fits =
            bs - bs / GRID_LEN_FIELD_PER_BLOCK - 1 - GRID_INDEX_LEN;
        const size_t salts[] = {
            0, 4, fits, fits + 1, bs - GRID_INDEX_LEN, GRID_MAX_SALT};
        const size_t dks[] = {1, ds - 1, ds, ds + 1,
                              GRID_DKLEN_BLOCKS * ds + GRID_DKLEN_EXTRA};
        for (size_t p = 0; p < sizeof pws / sizeof pws[0]; p++)
            for (size_t s = 0; s < sizeof salts / sizeof salts[0]; s++)
                for (size_t i = 0; i < sizeof iters / sizeof iters[0]; i++)
                    for (size_t d = 0; d < sizeof dks / sizeof dks[0]; d++) {
                        cases++;
                        bad +=
                            !s_grid_case(s_fast_algos[a].python, md, pw, pws[p],
                                         salt, salts[s], iters[i], dks[d]);
                    }
        EVP_MD_free(md);
    }
    free(pw);
    cr_assert_eq(bad, 0, "%zu of %zu cases differ from EVP_KDF", bad, cases);
    cr_log_info("%zu cases equal to EVP_KDF", cases);
}
