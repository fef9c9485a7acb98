/*
 * hash.c - the `hash` kernel: hex digests, XOF output and PBKDF2-HMAC,
 * byte-for-byte what Python's hashlib gives, through OpenSSL 3's EVP_*.
 *
 * Time limits: PBKDF2 with a large ITERATIONS runs for seconds inside one
 * OpenSSL call that cannot be interrupted. The kernel does not slice or
 * estimate it; it checks the deadline once before starting, and the worker
 * enforces the job's time limit by killing the child that runs it.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "dp_clock.h"
#include "dp_hash.h"
#include "dp_jobs.h"

/* One validated request. */
typedef struct {
    const unsigned char *data; /* DATA, borrowed from the args */
    size_t len;
    EVP_MD *md;                /* owned, freed by the kernel */
    uint64_t iterations;       /* 0: plain digest, else PBKDF2 */
    const unsigned char *salt; /* borrowed; PBKDF2 only */
    size_t salt_len;
    uint64_t outlen; /* bytes to produce */
} hash_req_t;

static int s_md_xof(const EVP_MD *md)
{
    return (EVP_MD_get_flags(md) & EVP_MD_FLAG_XOF) != 0;
}

static int s_ssl_error(const char *what, char *err, size_t errlen)
{
    char msg[DP_HASH_SSL_ERR_LEN];
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, msg, sizeof msg);
    else
        snprintf(msg, sizeof msg, "no reason given");
    ERR_clear_error();
    snprintf(err, errlen, "%s failed: %s", what, msg);
    return DP_ERR_INTERNAL;
}

static int s_bytes_arg(const dp_value_t *arg, const char *what,
                       const unsigned char **p, size_t *len, char *err,
                       size_t errlen)
{
    if (arg->type != DP_BIN && arg->type != DP_STR) {
        snprintf(err, errlen, "%s must be bytes or text", what);
        return DP_ERR_INVALID;
    }
    *p = (const unsigned char *)arg->v.s.ptr;
    *len = arg->v.s.len;
    return 0;
}

static int s_unknown_algo(const char *name, size_t len, char *err,
                          size_t errlen)
{
    int show = len > DP_HASH_ERR_NAME_MAX ? DP_HASH_ERR_NAME_MAX : (int)len;
    snprintf(err, errlen,
             "unknown algorithm '%.*s%s' (see: dpool hash "
             "--list)",
             show, name, (size_t)show < len ? "..." : "");
    return DP_ERR_UNKNOWN_ALGO;
}

/* Fetch the digest ALGO names: Python's name first, then OpenSSL's. */
static int s_fetch(const dp_value_t *arg, EVP_MD **md, char *err, size_t errlen)
{
    const char *name = DP_HASH_DEFAULT_ALGO;
    size_t len = strlen(name);
    if (arg && arg->type != DP_NIL) {
        if (arg->type != DP_STR) {
            snprintf(err, errlen, "ALGO must be text");
            return DP_ERR_INVALID;
        }
        name = arg->v.s.ptr;
        len = arg->v.s.len;
    }
    if (len == 0 || len > DP_HASH_ALGO_MAX_LEN)
        return s_unknown_algo(name, len, err, errlen);
    for (size_t k = 0; k < len; k++) {
        if (!isgraph((unsigned char)name[k])) {
            snprintf(err, errlen,
                     "unknown algorithm: name has "
                     "non-printable bytes (see: dpool hash --list)");
            return DP_ERR_UNKNOWN_ALGO;
        }
    }
    char buf[DP_HASH_ALGO_MAX_LEN + 1];
    memcpy(buf, name, len);
    buf[len] = '\0';
    const char *query = buf;
    query = dp_hash_openssl_name(query);
    ERR_set_mark();
    *md = EVP_MD_fetch(NULL, query, NULL);
    ERR_pop_to_mark();
    if (*md && !dp_hash_md_usable(*md)) {
        EVP_MD_free(*md);
        *md = NULL;
    }
    return *md ? 0 : s_unknown_algo(name, len, err, errlen);
}

/* An optional count (ITERATIONS, DKLEN): nil or absent gives 0. */
static int s_count_arg(const dp_value_t *args, size_t nargs, size_t at,
                       const char *what, uint64_t max, const char *limit,
                       uint64_t *out, char *err, size_t errlen)
{
    *out = 0;
    if (at >= nargs || args[at].type == DP_NIL)
        return 0;
    char why[DP_HASH_SSL_ERR_LEN];
    int rc = dp_job_arg_uint64(&args[at], out, why, sizeof why);
    if (rc) {
        snprintf(err, errlen, "%s: %s", what, why);
        return rc;
    }
    if (*out == 0) {
        snprintf(err, errlen, "%s must be at least 1", what);
        return DP_ERR_INVALID;
    }
    if (*out > max) {
        snprintf(err, errlen, "%s %llu is over the worker's limit %s=%llu",
                 what, (unsigned long long)*out, limit,
                 (unsigned long long)max);
        return DP_ERR_LIMIT;
    }
    return 0;
}

/* ITERATIONS and SALT: both for PBKDF2, neither for a plain digest. */
static int s_parse_kdf(const dp_job_ctx_t *ctx, const dp_value_t *args,
                       size_t nargs, hash_req_t *req, char *err, size_t errlen)
{
    int rc = s_count_arg(args, nargs, DP_HASH_ARG_ITERATIONS, "ITERATIONS",
                         ctx->limits->hash_max_iterations,
                         "hash_max_iterations", &req->iterations, err, errlen);
    if (rc)
        return rc;
    int has_salt =
        nargs > DP_HASH_ARG_SALT && args[DP_HASH_ARG_SALT].type != DP_NIL;
    if (req->iterations == 0) {
        if (!has_salt)
            return 0;
        snprintf(err, errlen, "SALT given without ITERATIONS");
        return DP_ERR_INVALID;
    }
    if (!has_salt) {
        snprintf(err, errlen, "PBKDF2 needs ITERATIONS and SALT");
        return DP_ERR_INVALID;
    }
    if (s_md_xof(req->md)) {
        snprintf(err, errlen,
                 "PBKDF2 needs a fixed-size digest, not the "
                 "XOF %s",
                 EVP_MD_get0_name(req->md));
        return DP_ERR_INVALID;
    }
    return s_bytes_arg(&args[DP_HASH_ARG_SALT], "SALT", &req->salt,
                       &req->salt_len, err, errlen);
}

/* DKLEN: PBKDF2's key length, or an XOF's output length (required). */
static int s_parse_outlen(const dp_job_ctx_t *ctx, const dp_value_t *args,
                          size_t nargs, hash_req_t *req, char *err,
                          size_t errlen)
{
    int rc = s_count_arg(args, nargs, DP_HASH_ARG_DKLEN, "DKLEN",
                         ctx->limits->hash_max_dklen, "hash_max_dklen",
                         &req->outlen, err, errlen);
    if (rc)
        return rc;
    if (req->outlen > (SIZE_MAX - 1) / DP_HASH_HEX_PER_BYTE) {
        snprintf(err, errlen, "DKLEN too large for this machine");
        return DP_ERR_LIMIT;
    }
    if (s_md_xof(req->md)) {
        if (req->outlen)
            return 0;
        snprintf(err, errlen,
                 "%s is an XOF: give its output length in "
                 "bytes as DKLEN",
                 EVP_MD_get0_name(req->md));
        return DP_ERR_INVALID;
    }
    if (req->outlen && req->iterations == 0) {
        snprintf(err, errlen,
                 "DKLEN applies to PBKDF2 and XOF digests "
                 "(shake_128, shake_256) only");
        return DP_ERR_INVALID;
    }
    if (req->outlen == 0)
        req->outlen = (uint64_t)EVP_MD_get_size(req->md);
    return 0;
}

static int s_parse(const dp_job_ctx_t *ctx, const dp_value_t *args,
                   size_t nargs, hash_req_t *req, char *err, size_t errlen)
{
    if (nargs < 1 || nargs > DP_HASH_ARG_COUNT) {
        snprintf(err, errlen, "hash takes 1 to %d arguments, got %zu",
                 DP_HASH_ARG_COUNT, nargs);
        return DP_ERR_ARITY;
    }
    int rc = s_bytes_arg(&args[DP_HASH_ARG_DATA], "DATA", &req->data, &req->len,
                         err, errlen);
    if (rc)
        return rc;
    rc = s_fetch(nargs > DP_HASH_ARG_ALGO ? &args[DP_HASH_ARG_ALGO] : NULL,
                 &req->md, err, errlen);
    if (rc)
        return rc;
    rc = s_parse_kdf(ctx, args, nargs, req, err, errlen);
    if (rc)
        return rc;
    return s_parse_outlen(ctx, args, nargs, req, err, errlen);
}

/* One pass of EVP_DigestUpdate over DATA, which is never copied. */
static int s_digest(const hash_req_t *req, unsigned char *out, char *err,
                    size_t errlen)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    if (!mctx) {
        snprintf(err, errlen, "out of memory");
        return DP_ERR_NOMEM;
    }
    int ok = EVP_DigestInit_ex2(mctx, req->md, NULL) &&
             EVP_DigestUpdate(mctx, req->data, req->len);
    if (ok && s_md_xof(req->md))
        ok = EVP_DigestFinalXOF(mctx, out, (size_t)req->outlen);
    else if (ok)
        ok = EVP_DigestFinal_ex(mctx, out, NULL);
    EVP_MD_CTX_free(mctx);
    return ok ? 0 : s_ssl_error("digest", err, errlen);
}

/* PBKDF2-HMAC as hashlib.pbkdf2_hmac: no SP 800-132 lower bounds on salt,
 * key length or iterations (OSSL_KDF_PARAM_PKCS5 = 1). */
static int s_pbkdf2(const hash_req_t *req, unsigned char *out, char *err,
                    size_t errlen)
{
    int rc = 0;
    int pkcs5 = 1;
    uint64_t iter = req->iterations;
    EVP_KDF_CTX *kctx = NULL;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_PBKDF2, NULL);
    if (kdf)
        kctx = EVP_KDF_CTX_new(kdf);
    if (!kctx) {
        rc = s_ssl_error("PBKDF2 setup", err, errlen);
        goto out;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
                                          (void *)req->data, req->len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                          (void *)req->salt, req->salt_len),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iter),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                         (char *)EVP_MD_get0_name(req->md), 0),
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_PKCS5, &pkcs5),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(kctx, out, (size_t)req->outlen, params) <= 0)
        rc = s_ssl_error("PBKDF2", err, errlen);
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

/* *out = DP_STR of the lowercase hex of bytes[0..n). */
static int s_hex(const unsigned char *bytes, size_t n, dp_value_t *out,
                 char *err, size_t errlen)
{
    static const char digits[] = "0123456789abcdef";
    char *hex = malloc(n * DP_HASH_HEX_PER_BYTE + 1);
    if (!hex) {
        snprintf(err, errlen, "out of memory");
        return DP_ERR_NOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        char *h = hex + k * DP_HASH_HEX_PER_BYTE;
        h[0] = digits[bytes[k] >> DP_HASH_NIBBLE_BITS];
        h[1] = digits[bytes[k] & DP_HASH_NIBBLE_MASK];
    }
    *out = dp_strn(hex, n * DP_HASH_HEX_PER_BYTE);
    free(hex);
    if (out->type != DP_NIL)
        return 0;
    snprintf(err, errlen, "out of memory");
    return DP_ERR_NOMEM;
}

int dp_job_hash(const dp_job_ctx_t *ctx, const dp_value_t *args, size_t nargs,
                dp_value_t *out, char *err, size_t errlen)
{
    hash_req_t req = {0};
    unsigned char *buf = NULL;
    *out = dp_nil();
    int rc = s_parse(ctx, args, nargs, &req, err, errlen);
    if (rc)
        goto out;
    if (ctx->deadline_us && dp_now_us() >= ctx->deadline_us) {
        snprintf(err, errlen, "time limit reached before hashing");
        rc = DP_ERR_TIMEOUT;
        goto out;
    }
    buf = malloc((size_t)req.outlen);
    if (!buf) {
        snprintf(err, errlen, "out of memory for %llu bytes",
                 (unsigned long long)req.outlen);
        rc = DP_ERR_NOMEM;
        goto out;
    }
    rc = req.iterations ? s_pbkdf2(&req, buf, err, errlen)
                        : s_digest(&req, buf, err, errlen);
    if (rc == 0)
        rc = s_hex(buf, (size_t)req.outlen, out, err, errlen);
out:
    free(buf);
    EVP_MD_free(req.md);
    return rc;
}
