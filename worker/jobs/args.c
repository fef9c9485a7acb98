/* args.c - argument helpers shared by the kernels. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_jobs.h"

/* Longest decimal text accepted where a 64-bit number is expected; longer
 * input is out of range without being parsed. */
#define DP_ARG_U64_MAX_DIGITS 20

int dp_job_arg_uint64(const dp_value_t *arg, uint64_t *out, char *err,
                      size_t errlen)
{
    switch (arg->type) {
    case DP_UINT:
        *out = arg->v.u;
        return 0;
    case DP_INT:
        if (arg->v.i < 0) {
            snprintf(err, errlen, "negative number %lld", (long long)arg->v.i);
            return DP_ERR_INVALID;
        }
        *out = (uint64_t)arg->v.i;
        return 0;
    case DP_STR:
        break;
    default:
        snprintf(err, errlen, "expected an integer or decimal text");
        return DP_ERR_INVALID;
    }
    const char *s = arg->v.s.ptr;
    size_t len = arg->v.s.len;
    while (len && (*s == ' ' || *s == '\t' || *s == '+')) {
        if (*s == '+' && (len < 2 || s[1] < '0' || s[1] > '9'))
            break;
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
                   s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    if (len && s[0] == '-') {
        snprintf(err, errlen, "negative number '%.*s'",
                 (int)(len > 40 ? 40 : len), s);
        return DP_ERR_INVALID;
    }
    if (len == 0) {
        snprintf(err, errlen, "empty number");
        return DP_ERR_INVALID;
    }
    for (size_t k = 0; k < len; k++) {
        if (s[k] < '0' || s[k] > '9') {
            snprintf(err, errlen, "not a decimal integer: '%.*s'",
                     (int)(len > 40 ? 40 : len), s);
            return DP_ERR_INVALID;
        }
    }
    while (len > 1 && s[0] == '0') {
        s++;
        len--;
    }
    if (len > DP_ARG_U64_MAX_DIGITS) {
        snprintf(err, errlen, "number too large (%zu digits)", len);
        return DP_ERR_RANGE;
    }
    char tmp[DP_ARG_U64_MAX_DIGITS + 1];
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(tmp, &end, 10);
    if (errno == ERANGE || *end != '\0') {
        snprintf(err, errlen, "number too large: %s", tmp);
        return DP_ERR_RANGE;
    }
    *out = v;
    return 0;
}
