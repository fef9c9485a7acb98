/*
 * dp_value.c - constructors, deep copy, free and JSON text for dp_value_t.
 * Ownership: a value owns its strings, bytes and items; dp_value_clear
 * releases them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_buf.h"
#include "dpool.h"

dp_value_t dp_nil(void)
{
    dp_value_t v = {.type = DP_NIL};
    return v;
}

dp_value_t dp_bool(bool b)
{
    dp_value_t v = {.type = DP_BOOL, .v.b = b};
    return v;
}

dp_value_t dp_int(int64_t i)
{
    dp_value_t v = {.type = DP_INT, .v.i = i};
    return v;
}

dp_value_t dp_uint(uint64_t u)
{
    dp_value_t v = {.type = DP_UINT, .v.u = u};
    return v;
}

dp_value_t dp_float(double f)
{
    dp_value_t v = {.type = DP_FLOAT, .v.f = f};
    return v;
}

static dp_value_t s_bytes(dp_type_t t, const void *p, size_t len)
{
    dp_value_t v = {.type = t};
    v.v.s.ptr = malloc(len + 1);
    if (!v.v.s.ptr)
        return dp_nil();
    if (len)
        memcpy(v.v.s.ptr, p, len);
    v.v.s.ptr[len] = '\0';
    v.v.s.len = len;
    return v;
}

dp_value_t dp_strn(const char *s, size_t len)
{
    return s_bytes(DP_STR, s, len);
}

dp_value_t dp_str(const char *s)
{
    return s_bytes(DP_STR, s, strlen(s));
}

dp_value_t dp_bin(const void *p, size_t len)
{
    return s_bytes(DP_BIN, p, len);
}

static dp_value_t s_container(dp_type_t t, size_t len, size_t nitems)
{
    dp_value_t v = {.type = t};
    v.v.a.items = calloc(nitems ? nitems : 1, sizeof(dp_value_t));
    if (!v.v.a.items)
        return dp_nil();
    v.v.a.len = len;
    return v;
}

dp_value_t dp_array(size_t n)
{
    return s_container(DP_ARRAY, n, n);
}

dp_value_t dp_dict(size_t npairs)
{
    return s_container(DP_MAP, npairs, 2 * npairs);
}

static size_t s_nitems(const dp_value_t *v)
{
    return v->type == DP_MAP ? 2 * v->v.a.len : v->v.a.len;
}

void dp_value_clear(dp_value_t *v)
{
    if (!v)
        return;
    switch (v->type) {
    case DP_STR:
    case DP_BIN:
        free(v->v.s.ptr);
        break;
    case DP_ARRAY:
    case DP_MAP: {
        size_t n = s_nitems(v);
        for (size_t k = 0; k < n; k++)
            dp_value_clear(&v->v.a.items[k]);
        free(v->v.a.items);
        break;
    }
    default:
        break;
    }
    *v = dp_nil();
}

int dp_value_copy(dp_value_t *dst, const dp_value_t *src)
{
    switch (src->type) {
    case DP_STR:
    case DP_BIN:
        *dst = s_bytes(src->type, src->v.s.ptr, src->v.s.len);
        return dst->type == DP_NIL ? DP_ERR_NOMEM : 0;
    case DP_ARRAY:
    case DP_MAP: {
        size_t n = s_nitems(src);
        *dst = s_container(src->type, src->v.a.len, n);
        if (dst->type == DP_NIL)
            return DP_ERR_NOMEM;
        for (size_t k = 0; k < n; k++) {
            if (dp_value_copy(&dst->v.a.items[k], &src->v.a.items[k])) {
                dp_value_clear(dst);
                return DP_ERR_NOMEM;
            }
        }
        return 0;
    }
    default:
        *dst = *src;
        return 0;
    }
}

bool dp_value_equal(const dp_value_t *a, const dp_value_t *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case DP_NIL:
        return true;
    case DP_BOOL:
        return a->v.b == b->v.b;
    case DP_INT:
        return a->v.i == b->v.i;
    case DP_UINT:
        return a->v.u == b->v.u;
    case DP_FLOAT:
        return memcmp(&a->v.f, &b->v.f, sizeof a->v.f) == 0;
    case DP_STR:
    case DP_BIN:
        return a->v.s.len == b->v.s.len &&
               (a->v.s.len == 0 ||
                memcmp(a->v.s.ptr, b->v.s.ptr, a->v.s.len) == 0);
    case DP_ARRAY:
    case DP_MAP: {
        if (a->v.a.len != b->v.a.len)
            return false;
        size_t n = a->type == DP_MAP ? 2 * a->v.a.len : a->v.a.len;
        for (size_t k = 0; k < n; k++)
            if (!dp_value_equal(&a->v.a.items[k], &b->v.a.items[k]))
                return false;
        return true;
    }
    }
    return false;
}

const dp_value_t *dp_dict_get(const dp_value_t *map, const char *key)
{
    if (!map || map->type != DP_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (size_t k = 0; k < map->v.a.len; k++) {
        const dp_value_t *kv = &map->v.a.items[2 * k];
        if (kv->type == DP_STR && kv->v.s.len == klen &&
            memcmp(kv->v.s.ptr, key, klen) == 0)
            return &map->v.a.items[2 * k + 1];
    }
    return NULL;
}

static int s_json_str(dp_buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    int rc = dp_buf_putc(b, '"');
    for (size_t k = 0; k < len && !rc; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = dp_buf_put(b, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = dp_buf_put(b, esc, 6);
        } else {
            rc = dp_buf_putc(b, (char)c);
        }
    }
    return rc ? rc : dp_buf_putc(b, '"');
}

static int s_json(dp_buf_t *b, const dp_value_t *v, int depth)
{
    static const char hex[] = "0123456789abcdef";
    if (depth > DP_JSON_MAX_DEPTH)
        return DP_ERR_TOO_BIG;
    switch (v->type) {
    case DP_NIL:
        return dp_buf_puts(b, "null");
    case DP_BOOL:
        return dp_buf_puts(b, v->v.b ? "true" : "false");
    case DP_INT:
        return dp_buf_printf(b, "%lld", (long long)v->v.i);
    case DP_UINT:
        return dp_buf_printf(b, "%llu", (unsigned long long)v->v.u);
    case DP_FLOAT:
        if (!isfinite(v->v.f))
            return dp_buf_puts(b, "null");
        return dp_buf_printf(b, "%.17g", v->v.f);
    case DP_STR:
        return s_json_str(b, v->v.s.ptr, v->v.s.len);
    case DP_BIN: {
        int rc = dp_buf_putc(b, '"');
        for (size_t k = 0; k < v->v.s.len && !rc; k++) {
            unsigned char c = (unsigned char)v->v.s.ptr[k];
            char h[2] = {hex[c >> 4], hex[c & 15]};
            rc = dp_buf_put(b, h, 2);
        }
        return rc ? rc : dp_buf_putc(b, '"');
    }
    case DP_ARRAY:
    case DP_MAP: {
        bool map = v->type == DP_MAP;
        int rc = dp_buf_putc(b, map ? '{' : '[');
        for (size_t k = 0; k < v->v.a.len && !rc; k++) {
            if (k)
                rc = dp_buf_putc(b, ',');
            if (map && !rc) {
                const dp_value_t *key = &v->v.a.items[2 * k];
                if (key->type == DP_STR)
                    rc = s_json_str(b, key->v.s.ptr, key->v.s.len);
                else
                    rc = dp_buf_puts(b, "\"?\"");
                rc = rc ? rc : dp_buf_putc(b, ':');
                rc = rc ? rc : s_json(b, &v->v.a.items[2 * k + 1], depth + 1);
            } else if (!rc) {
                rc = s_json(b, &v->v.a.items[k], depth + 1);
            }
        }
        return rc ? rc : dp_buf_putc(b, map ? '}' : ']');
    }
    }
    return DP_ERR_INVALID;
}

char *dp_value_json(const dp_value_t *v)
{
    dp_buf_t b;
    dp_buf_init(&b);
    if (s_json(&b, v, 0) || dp_buf_putc(&b, '\0')) {
        dp_buf_release(&b);
        return NULL;
    }
    return dp_buf_take(&b);
}
