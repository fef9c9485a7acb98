/*
 * dp_num.c - numbers in and out: decimal parsing of job arguments, decimal
 * text and values for results, the factor list, the time budget.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_clock.h"
#include "dp_num.h"

static const char *const s_type_names[] = {
    [DP_NIL] = "nil",    [DP_BOOL] = "bool",   [DP_INT] = "int",
    [DP_UINT] = "uint",  [DP_FLOAT] = "float", [DP_STR] = "string",
    [DP_BIN] = "binary", [DP_ARRAY] = "array", [DP_MAP] = "map",
};

static bool s_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* s_quote: write msg, then text between q marks, into err; the text is
 * cut at DP_NUM_ERR_QUOTE characters. */
static void s_quote(char *err, size_t errlen, const char *msg, const char *q,
                    const char *s, size_t len)
{
    bool cut = len > DP_NUM_ERR_QUOTE;
    snprintf(err, errlen, "%s%s%.*s%s%s", msg, q,
             (int)(cut ? DP_NUM_ERR_QUOTE : len), s, cut ? "..." : "", q);
}

/* s_parse_big: digits s[0..len) (no sign, no leading zero) as a BIGNUM. */
static int s_parse_big(const char *s, size_t len, dp_num_t *out)
{
    char *tmp = malloc(len + 1);
    if (!tmp)
        return DP_ERR_NOMEM;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    BIGNUM *b = NULL;
    int ok = BN_dec2bn(&b, tmp) == (int)len;
    free(tmp);
    if (!ok) {
        BN_free(b);
        return DP_ERR_NOMEM;
    }
    out->big = b;
    return 0;
}

/* s_parse_digits: digits s[0..len) (checked) into *out. */
static int s_parse_digits(const char *s, size_t len, dp_num_t *out)
{
    dp_u128_t v = 0;
    for (size_t k = 0; k < len; k++) {
        if (__builtin_mul_overflow(v, DP_NUM_DEC_BASE, &v) ||
            __builtin_add_overflow(v, (unsigned)(s[k] - '0'), &v))
            return s_parse_big(s, len, out);
    }
    out->small = v;
    return 0;
}

int dp_num_parse(const char *s, size_t len, dp_num_t *out, char *err,
                 size_t errlen)
{
    *out = (dp_num_t){0};
    while (len && s_blank(*s)) {
        s++;
        len--;
    }
    while (len && s_blank(s[len - 1]))
        len--;
    if (len == 0) {
        snprintf(err, errlen, "not a decimal integer: empty text");
        return DP_ERR_INVALID;
    }
    const char *d = s;
    size_t n = len;
    if (*d == '+' || *d == '-') {
        d++;
        n--;
    }
    size_t k = 0;
    while (k < n && d[k] >= '0' && d[k] <= '9')
        k++;
    if (n == 0 || k < n) {
        s_quote(err, errlen, "not a decimal integer: ", "'", s, len);
        return DP_ERR_INVALID;
    }
    while (n > 1 && *d == '0') {
        d++;
        n--;
    }
    if (*s == '-' && !(n == 1 && *d == '0')) {
        s_quote(err, errlen, "negative number ", "", s, len);
        return DP_ERR_INVALID;
    }
    if (n > DP_NUM_MAX_DIGITS) {
        snprintf(err, errlen, "number too large: %zu digits (limit %d)", n,
                 DP_NUM_MAX_DIGITS);
        return DP_ERR_RANGE;
    }
    int rc = s_parse_digits(d, n, out);
    if (rc)
        snprintf(err, errlen, "out of memory parsing a %zu-digit number", n);
    return rc;
}

int dp_num_from_value(const dp_value_t *v, dp_num_t *out, char *err,
                      size_t errlen)
{
    *out = (dp_num_t){0};
    switch (v->type) {
    case DP_UINT:
        out->small = v->v.u;
        return 0;
    case DP_INT:
        if (v->v.i < 0) {
            snprintf(err, errlen, "negative number %lld", (long long)v->v.i);
            return DP_ERR_INVALID;
        }
        out->small = (uint64_t)v->v.i;
        return 0;
    case DP_STR:
        return dp_num_parse(v->v.s.ptr, v->v.s.len, out, err, errlen);
    default:
        break;
    }
    size_t nt = sizeof s_type_names / sizeof s_type_names[0];
    snprintf(err, errlen, "expected an integer or decimal text, got %s",
             (size_t)v->type < nt ? s_type_names[v->type] : "unknown type");
    return DP_ERR_INVALID;
}

void dp_num_clear(dp_num_t *n)
{
    if (!n)
        return;
    BN_free(n->big);
    *n = (dp_num_t){0};
}

bool dp_num_is_zero(const dp_num_t *n)
{
    return !n->big && n->small == 0;
}

bool dp_num_get_u64(const dp_num_t *n, uint64_t *v)
{
    if (n->big || (n->small >> DP_NUM_WORD_BITS))
        return false;
    *v = (uint64_t)n->small;
    return true;
}

void dp_num_u128_to_dec(dp_u128_t v, char *buf)
{
    unsigned long long lo = (unsigned long long)(v % DP_NUM_DEC_CHUNK);
    dp_u128_t hi = v / DP_NUM_DEC_CHUNK;
    unsigned long long mid = (unsigned long long)(hi % DP_NUM_DEC_CHUNK);
    unsigned long long top = (unsigned long long)(hi / DP_NUM_DEC_CHUNK);
    int w = DP_NUM_DEC_CHUNK_DIGITS;
    if (top)
        snprintf(buf, DP_NUM_U128_DEC_MAX, "%llu%0*llu%0*llu", top, w, mid, w,
                 lo);
    else if (mid)
        snprintf(buf, DP_NUM_U128_DEC_MAX, "%llu%0*llu", mid, w, lo);
    else
        snprintf(buf, DP_NUM_U128_DEC_MAX, "%llu", lo);
}

char *dp_num_to_dec(const dp_num_t *n)
{
    if (!n->big) {
        char buf[DP_NUM_U128_DEC_MAX];
        dp_num_u128_to_dec(n->small, buf);
        return strdup(buf);
    }
    char *s = BN_bn2dec(n->big);
    if (!s)
        return NULL;
    char *copy = strdup(s);
    OPENSSL_free(s);
    return copy;
}

int dp_num_to_value(const dp_num_t *n, dp_value_t *out)
{
    uint64_t u;
    if (dp_num_get_u64(n, &u)) {
        *out = dp_uint(u);
        return 0;
    }
    char *s = dp_num_to_dec(n);
    if (!s)
        return DP_ERR_NOMEM;
    *out = dp_str(s);
    free(s);
    return out->type == DP_STR ? 0 : DP_ERR_NOMEM;
}

int dp_num_u128_to_bn(dp_u128_t v, BIGNUM *out)
{
    unsigned char buf[sizeof v];
    for (size_t k = 0; k < sizeof v; k++)
        buf[sizeof v - 1 - k] = (unsigned char)(v >> (CHAR_BIT * k));
    return BN_bin2bn(buf, (int)sizeof buf, out) ? 0 : DP_ERR_NOMEM;
}

dp_u128_t dp_num_bn_to_u128(const BIGNUM *b)
{
    unsigned char buf[sizeof(dp_u128_t)];
    dp_u128_t v = 0;
    if (BN_bn2binpad(b, buf, (int)sizeof buf) < 0)
        return 0;
    for (size_t k = 0; k < sizeof buf; k++)
        v = (v << CHAR_BIT) | buf[k];
    return v;
}

void dp_factors_init(dp_factors_t *f)
{
    *f = (dp_factors_t){0};
}

void dp_factors_clear(dp_factors_t *f)
{
    if (!f)
        return;
    for (size_t k = 0; k < f->len; k++)
        dp_num_clear(&f->items[k]);
    free(f->items);
    *f = (dp_factors_t){0};
}

int dp_num_push(dp_factors_t *f, dp_u128_t small, const BIGNUM *big)
{
    if (f->len == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : DP_NUM_LIST_CAP0;
        dp_num_t *items = realloc(f->items, cap * sizeof *items);
        if (!items)
            return DP_ERR_NOMEM;
        f->items = items;
        f->cap = cap;
    }
    dp_num_t v = {.small = small};
    if (big && !(v.big = BN_dup(big)))
        return DP_ERR_NOMEM;
    f->items[f->len++] = v;
    return 0;
}

int dp_factors_to_value(const dp_factors_t *f, dp_value_t *out)
{
    *out = dp_array(f->len);
    if (out->type == DP_NIL)
        return DP_ERR_NOMEM;
    for (size_t k = 0; k < f->len; k++) {
        if (dp_num_to_value(&f->items[k], &out->v.a.items[k])) {
            dp_value_clear(out);
            return DP_ERR_NOMEM;
        }
    }
    return 0;
}

int dp_num_tick(dp_num_job_t *job, uint64_t units)
{
    job->work += units;
    if (job->work < DP_NUM_CHECK_WORK)
        return 0;
    job->work = 0;
    if (job->deadline_us && dp_now_us() >= job->deadline_us)
        return DP_ERR_TIMEOUT;
    return 0;
}
