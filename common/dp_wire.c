/*
 * dp_wire.c - bounded msgpack reader and msgpack-c based writer.
 *
 * Format bytes are those of the msgpack specification; the reader accepts
 * every type, but ext and timestamps only as opaque values to skip.
 */
#include "dp_wire.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

dp_limits_t dp_limits_default(void)
{
    dp_limits_t l = {DP_MAX_MSG_BYTES_DEFAULT, DP_MAX_ELEMS_DEFAULT,
                     DP_MAX_DEPTH_DEFAULT, DP_DECODE_FACTOR_DEFAULT};
    return l;
}

void dp_rd_init(dp_rd_t *r, const void *data, size_t len,
                const dp_limits_t *lim)
{
    r->p = data;
    r->end = r->p + len;
    r->lim = lim;
}

size_t dp_rd_left(const dp_rd_t *r)
{
    return (size_t)(r->end - r->p);
}

/* s_left: dp_rd_left for this file's hot paths, inlined (callgrind: the
 * call cost the broker 120 instructions per job) */
#define s_left(r) ((size_t)((r)->end - (r)->p))

static uint64_t s_be(const uint8_t *p, unsigned n)
{
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* job ids are 8 bytes: one load, not a loop (a hot path) */
    if (n == 8) {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        return __builtin_bswap64(v);
    }
    if (n == 4) {
        uint32_t v;
        memcpy(&v, p, sizeof v);
        return __builtin_bswap32(v);
    }
#endif
    uint64_t v = 0;
    for (unsigned k = 0; k < n; k++)
        v = (v << 8) | p[k];
    return v;
}

/* The kinds a header can announce. */
typedef enum {
    K_NIL,
    K_BOOL,
    K_UINT,
    K_INT,
    K_FLOAT,
    K_STR,
    K_BIN,
    K_ARRAY,
    K_MAP,
    K_EXT
} s_kind_t;

typedef struct {
    s_kind_t kind;
    size_t hdr; /* header bytes */
    uint64_t n; /* payload bytes (str/bin/ext), items (array/map) */
    uint64_t u; /* uint, or int bits, or bool, or float bits */
} s_head_t;

/* s_head: decode the header at r->p without moving; 0 or PROTOCOL. */
static inline int s_head(const dp_rd_t *r, s_head_t *h)
{
    size_t left = s_left(r);
    if (left < 1)
        return DP_ERR_PROTOCOL;
    const uint8_t *p = r->p;
    uint8_t b = p[0];
    h->hdr = 1; /* every field set below, no memset (a hot path) */
    h->n = 0;
    h->u = 0;
    if (b <= 0x7f) {
        h->kind = K_UINT;
        h->u = b;
        return 0;
    }
    if (b >= 0xe0) {
        h->kind = K_INT;
        h->u = (uint64_t)(int64_t)(int8_t)b;
        return 0;
    }
    if ((b & 0xf0) == 0x80 || (b & 0xf0) == 0x90) {
        h->kind = (b & 0xf0) == 0x80 ? K_MAP : K_ARRAY;
        h->n = b & 0x0f;
        return 0;
    }
    if ((b & 0xe0) == 0xa0) {
        h->kind = K_STR;
        h->n = b & 0x1f;
        return 0;
    }
    /* 0xc0..0xdf: a table indexed by the byte (callgrind showed a search
     * here costing a fifth of the broker's instructions) */
    static const struct {
        uint8_t valid;
        uint8_t kind;
        uint8_t len;   /* bytes of count/value after the code */
        uint8_t fixed; /* ext: fixed payload size; 0 = counted */
    } s_codes[32] = {
        {1, K_NIL, 0, 0},  {0, 0, 0, 0},       {1, K_BOOL, 0, 0},
        {1, K_BOOL, 0, 0}, {1, K_BIN, 1, 0},   {1, K_BIN, 2, 0},
        {1, K_BIN, 4, 0},  {1, K_EXT, 1, 0},   {1, K_EXT, 2, 0},
        {1, K_EXT, 4, 0},  {1, K_FLOAT, 4, 0}, {1, K_FLOAT, 8, 0},
        {1, K_UINT, 1, 0}, {1, K_UINT, 2, 0},  {1, K_UINT, 4, 0},
        {1, K_UINT, 8, 0}, {1, K_INT, 1, 0},   {1, K_INT, 2, 0},
        {1, K_INT, 4, 0},  {1, K_INT, 8, 0},   {1, K_EXT, 0, 1},
        {1, K_EXT, 0, 2},  {1, K_EXT, 0, 4},   {1, K_EXT, 0, 8},
        {1, K_EXT, 0, 16}, {1, K_STR, 1, 0},   {1, K_STR, 2, 0},
        {1, K_STR, 4, 0},  {1, K_ARRAY, 2, 0}, {1, K_ARRAY, 4, 0},
        {1, K_MAP, 2, 0},  {1, K_MAP, 4, 0},
    };
    unsigned k = b - 0xc0u;
    if (!s_codes[k].valid)
        return DP_ERR_PROTOCOL; /* 0xc1 is never used */
    h->kind = (s_kind_t)s_codes[k].kind;
    h->hdr = 1u + s_codes[k].len;
    if (left < h->hdr)
        return DP_ERR_PROTOCOL;
    uint64_t v = s_be(p + 1, s_codes[k].len);
    switch (h->kind) {
    case K_BOOL:
        h->u = b == 0xc3;
        break;
    case K_UINT:
    case K_FLOAT:
        h->u = v;
        break;
    case K_INT: {
        unsigned bits = 8u * s_codes[k].len;
        h->u = bits < 64 && (v >> (bits - 1)) ? v | (~0ULL << bits) : v;
        break;
    }
    case K_EXT:
        /* one type byte follows the size */
        h->n = (s_codes[k].fixed ? s_codes[k].fixed : v) + 1;
        break;
    default:
        h->n = v;
    }
    return 0;
}

/* s_check: a header's counts against limits and bytes left. Every array
 * or map item takes at least one byte, so n <= bytes left is a sound bound
 * before anything is allocated. */
static inline int s_check(const dp_rd_t *r, const s_head_t *h)
{
    size_t left = s_left(r) - h->hdr;
    switch (h->kind) {
    case K_STR:
    case K_BIN:
    case K_EXT:
        if (h->n > r->lim->max_msg_bytes)
            return DP_ERR_TOO_BIG;
        return h->n <= left ? 0 : DP_ERR_PROTOCOL;
    case K_ARRAY:
    case K_MAP: {
        uint64_t items = h->kind == K_MAP ? 2 * h->n : h->n;
        if (h->n > r->lim->max_elems)
            return DP_ERR_TOO_BIG;
        return items <= left ? 0 : DP_ERR_PROTOCOL;
    }
    case K_FLOAT:
        return 0;
    default:
        return 0;
    }
}

static int s_expect(dp_rd_t *r, s_kind_t kind, s_head_t *h)
{
    int rc = s_head(r, h);
    if (rc)
        return rc;
    if (h->kind != kind)
        return DP_ERR_PROTOCOL;
    return s_check(r, h);
}

int dp_rd_array_any(dp_rd_t *r, uint32_t *n)
{
    s_head_t h;
    int rc = s_expect(r, K_ARRAY, &h);
    if (rc)
        return rc;
    r->p += h.hdr;
    *n = (uint32_t)h.n;
    return 0;
}

int dp_rd_map(dp_rd_t *r, uint32_t *n)
{
    s_head_t h;
    int rc = s_expect(r, K_MAP, &h);
    if (rc)
        return rc;
    r->p += h.hdr;
    *n = (uint32_t)h.n;
    return 0;
}

int dp_rd_uint_any(dp_rd_t *r, uint64_t *v)
{
    if (r->p < r->end && *r->p >= 0xcc && *r->p <= 0xcf) {
        unsigned n = 1u << (*r->p - 0xcc); /* uint 8..64 (job ids), inline */
        if (s_left(r) < 1 + n)
            return DP_ERR_PROTOCOL;
        *v = s_be(r->p + 1, n);
        r->p += 1 + n;
        return 0;
    }
    s_head_t h;
    int rc = s_head(r, &h);
    if (rc)
        return rc;
    if (h.kind == K_INT && (int64_t)h.u >= 0)
        h.kind = K_UINT; /* a positive int8..int64 is still a uint */
    if (h.kind != K_UINT)
        return DP_ERR_PROTOCOL;
    r->p += h.hdr;
    *v = h.u;
    return 0;
}

static int s_bytes(dp_rd_t *r, bool allow_bin, const char **s, size_t *len)
{
    if (r->p < r->end && (*r->p & 0xe0) == 0xa0 &&
        (size_t)(*r->p & 0x1f) <= s_left(r) - 1 &&
        (size_t)(*r->p & 0x1f) <= r->lim->max_msg_bytes) {
        *len = *r->p & 0x1f; /* fixstr: the common case, inline */
        *s = (const char *)r->p + 1;
        r->p += 1 + *len;
        return 0;
    }
    s_head_t h;
    int rc = s_head(r, &h);
    if (rc)
        return rc;
    if (h.kind != K_STR && !(allow_bin && h.kind == K_BIN))
        return DP_ERR_PROTOCOL;
    if ((rc = s_check(r, &h)))
        return rc;
    *s = (const char *)r->p + h.hdr;
    *len = (size_t)h.n;
    r->p += h.hdr + h.n;
    return 0;
}

int dp_rd_str(dp_rd_t *r, const char **s, size_t *len)
{
    return s_bytes(r, false, s, len);
}

int dp_rd_strbin(dp_rd_t *r, const char **s, size_t *len)
{
    return s_bytes(r, true, s, len);
}

bool dp_rd_is_nil(dp_rd_t *r)
{
    if (r->p < r->end && *r->p == 0xc0) {
        r->p++;
        return true;
    }
    return false;
}

/* s_skip: step over one value; depth counts open containers. Iterative
 * over siblings, recursive only into containers (bounded by max_depth). */
static int s_skip(dp_rd_t *r, uint32_t depth, uint64_t *cost)
{
    if (!cost && r->p < r->end) { /* the common one-byte values, inline */
        uint8_t b = *r->p;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            r->p++; /* fixint, nil, bool */
            return 0;
        }
        if ((b & 0xe0) == 0xa0 && (size_t)(b & 0x1f) <= s_left(r) - 1 &&
            (size_t)(b & 0x1f) <= r->lim->max_msg_bytes) {
            r->p += 1 + (b & 0x1f); /* fixstr */
            return 0;
        }
        if (b >= 0xca && b <= 0xd3) { /* float, uint and int 8..64 */
            size_t n = b <= 0xcb ? 4u << (b - 0xca) : 1u << (b & 3);
            if (s_left(r) < 1 + n)
                return DP_ERR_PROTOCOL;
            r->p += 1 + n;
            return 0;
        }
        if ((b & 0xe0) == 0x80) { /* fixmap, fixarray (a job's args) */
            uint32_t n = b & 0x0f;
            uint32_t items = (b & 0x10) ? n : 2 * n;
            if (n > r->lim->max_elems)
                return DP_ERR_TOO_BIG;
            if (items > s_left(r) - 1)
                return DP_ERR_PROTOCOL;
            if (depth + 1 > r->lim->max_depth)
                return DP_ERR_TOO_BIG;
            r->p++;
            for (uint32_t k = 0; k < items; k++) {
                int rc = s_skip(r, depth + 1, NULL);
                if (rc)
                    return rc;
            }
            return 0;
        }
    }
    s_head_t h;
    int rc = s_head(r, &h);
    if (!rc)
        rc = s_check(r, &h);
    if (rc)
        return rc;
    r->p += h.hdr;
    if (cost)
        *cost += sizeof(dp_value_t);
    switch (h.kind) {
    case K_STR:
    case K_BIN:
    case K_EXT:
        r->p += h.n;
        if (cost)
            *cost += h.n + 1 + DP_DECODE_ALLOC_BYTES;
        return 0;
    case K_FLOAT:
        return 0; /* float bytes were part of the header */
    case K_ARRAY:
    case K_MAP: {
        if (depth + 1 > r->lim->max_depth)
            return DP_ERR_TOO_BIG;
        uint64_t items = h.kind == K_MAP ? 2 * h.n : h.n;
        if (cost && items)
            *cost += DP_DECODE_ALLOC_BYTES;
        for (uint64_t k = 0; k < items; k++)
            if ((rc = s_skip(r, depth + 1, cost)))
                return rc;
        return 0;
    }
    default:
        return 0;
    }
}

int dp_rd_skip(dp_rd_t *r)
{
    const uint8_t *start = r->p;
    int rc = s_skip(r, 0, NULL);
    if (rc)
        r->p = start;
    return rc;
}

int dp_rd_raw(dp_rd_t *r, dp_slice_t *raw)
{
    const uint8_t *start = r->p;
    int rc = dp_rd_skip(r);
    if (rc)
        return rc;
    raw->ptr = start;
    raw->len = (size_t)(r->p - start);
    return 0;
}

static double s_float(const s_head_t *h)
{
    if (h->hdr == 5) {
        uint32_t bits = (uint32_t)h->u;
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    double d;
    memcpy(&d, &h->u, sizeof d);
    return d;
}

/* s_value: decode a value already validated by dp_rd_skip. */
static int s_value(dp_rd_t *r, dp_value_t *out)
{
    s_head_t h = {0};
    s_head(r, &h);
    r->p += h.hdr;
    switch (h.kind) {
    case K_NIL:
        *out = dp_nil();
        return 0;
    case K_BOOL:
        *out = dp_bool(h.u != 0);
        return 0;
    case K_UINT:
        *out = dp_uint(h.u);
        return 0;
    case K_INT:
        *out = (int64_t)h.u >= 0 ? dp_uint(h.u) : dp_int((int64_t)h.u);
        return 0;
    case K_FLOAT:
        *out = dp_float(s_float(&h));
        return 0;
    case K_STR:
    case K_BIN:
    case K_EXT:
        *out = h.kind == K_STR ? dp_strn((const char *)r->p, h.n)
                               : dp_bin(r->p, h.n);
        r->p += h.n;
        return out->type == DP_NIL ? DP_ERR_NOMEM : 0;
    case K_ARRAY:
    case K_MAP: {
        *out = h.kind == K_MAP ? dp_dict(h.n) : dp_array(h.n);
        if (out->type == DP_NIL)
            return DP_ERR_NOMEM;
        uint64_t items = h.kind == K_MAP ? 2 * h.n : h.n;
        for (uint64_t k = 0; k < items; k++) {
            if (s_value(r, &out->v.a.items[k])) {
                dp_value_clear(out);
                return DP_ERR_NOMEM;
            }
        }
        return 0;
    }
    }
    return DP_ERR_PROTOCOL;
}

int dp_rd_value(dp_rd_t *r, dp_value_t *out)
{
    if (r->p < r->end) { /* one-byte values (isprime's bool): no probe */
        uint8_t b = *r->p;
        if (b <= 0x7f || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            *out = b <= 0x7f   ? dp_uint(b)
                   : b == 0xc0 ? dp_nil()
                               : dp_bool(b == 0xc3);
            r->p++;
            return 0;
        }
    }
    /* validate all before allocating, and refuse a value that would cost
     * more than decode_factor x its wire size in memory (nested empty
     * arrays cost 1 byte on the wire, a dp_value_t each decoded) */
    dp_rd_t probe = *r;
    uint64_t cost = 0;
    int rc = s_skip(&probe, 0, &cost);
    if (rc)
        return rc;
    uint64_t wire = (uint64_t)(probe.p - r->p);
    if (r->lim->decode_factor &&
        cost > wire * r->lim->decode_factor + DP_DECODE_SLACK_BYTES)
        return DP_ERR_TOO_BIG;
    rc = s_value(r, out);
    if (rc)
        return rc;
    r->p = probe.p;
    return 0;
}

int dp_rd_scalars(dp_rd_t *r, dp_value_t *items, size_t max, size_t *n)
{
    dp_rd_t c = *r;
    s_head_t h;
    if (s_head(&c, &h))
        return DP_ERR_PROTOCOL;
    if (h.kind != K_ARRAY || h.n > max)
        return 1;
    c.p += h.hdr;
    for (uint64_t k = 0; k < h.n; k++) {
        s_head_t e;
        if (s_head(&c, &e))
            return DP_ERR_PROTOCOL;
        switch (e.kind) {
        case K_NIL:
            items[k] = dp_nil();
            break;
        case K_BOOL:
            items[k] = dp_bool(e.u != 0);
            break;
        case K_UINT:
            items[k] = dp_uint(e.u);
            break;
        case K_INT:
            items[k] = (int64_t)e.u >= 0 ? dp_uint(e.u) : dp_int((int64_t)e.u);
            break;
        case K_FLOAT:
            items[k] = dp_float(s_float(&e));
            break;
        default:
            return 1;
        }
        c.p += e.hdr;
    }
    *n = (size_t)h.n;
    r->p = c.p;
    return 0;
}

/* ---- writer ---- */

static int s_write(void *data, const char *buf, size_t len)
{
    dp_wr_t *w = data;
    if (w->err)
        return -1;
    if (dp_buf_put(&w->buf, buf, len)) {
        w->err = DP_ERR_NOMEM;
        return -1;
    }
    return 0;
}

#define S_PK(w)                                                                \
    msgpack_packer pk;                                                         \
    msgpack_packer_init(&pk, (w), s_write)

void dp_wr_init(dp_wr_t *w)
{
    dp_buf_init(&w->buf);
    w->err = 0;
}

/* s_room: n bytes of room at the end of w's buffer, or NULL (w->err
 * set). The common kinds below are written by hand into that room, not
 * through msgpack-c's packer and its write callback per token
 * (callgrind: ~100 instructions a token, a third of the client's cost
 * of encoding a job). The forms are msgpack's smallest, as msgpack-c
 * writes them. */
static inline uint8_t *s_room(dp_wr_t *w, size_t n)
{
    if (w->err)
        return NULL;
    if (w->buf.cap - w->buf.len < n && dp_buf_reserve(&w->buf, n)) {
        w->err = DP_ERR_NOMEM;
        return NULL;
    }
    return (uint8_t *)w->buf.data + w->buf.len;
}

/* s_put_be: v as n big-endian bytes at p. */
static inline void s_put_be(uint8_t *p, uint64_t v, unsigned n)
{
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n == 8) { /* job ids: one store, not a loop */
        uint64_t b = __builtin_bswap64(v);
        memcpy(p, &b, sizeof b);
        return;
    }
#endif
    for (unsigned k = n; k > 0; k--) {
        p[k - 1] = (uint8_t)v;
        v >>= 8;
    }
}

/* s_head_put: a header at p of a value whose fix form is fix | n below
 * fix_max, else code8/16/32 (code8 0: no 8-bit form) and n; its size. */
static inline size_t s_head_put(uint8_t *p, uint64_t n, uint8_t fix,
                                uint64_t fix_max, uint8_t code8, uint8_t code16,
                                uint8_t code32)
{
    if (n < fix_max) {
        p[0] = (uint8_t)(fix | n);
        return 1;
    }
    if (code8 && n <= UINT8_MAX) {
        p[0] = code8;
        p[1] = (uint8_t)n;
        return 2;
    }
    if (n <= UINT16_MAX) {
        p[0] = code16;
        s_put_be(p + 1, n, 2);
        return 3;
    }
    p[0] = code32;
    s_put_be(p + 1, n, 4);
    return 5;
}

#define S_HEAD_MAX 9 /* the largest header: 0xcf and 8 bytes */

uint8_t *dp_wr_room(dp_wr_t *w, size_t n)
{
    return s_room(w, n);
}

size_t dp_wire_uint_at(uint8_t *p, uint64_t v)
{
    if (v < 0x80) {
        p[0] = (uint8_t)v;
        return 1;
    }
    unsigned n = v <= UINT8_MAX    ? 1
                 : v <= UINT16_MAX ? 2
                 : v <= UINT32_MAX ? 4
                                   : 8;
    p[0] = n == 1 ? 0xcc : n == 2 ? 0xcd : n == 4 ? 0xce : 0xcf;
    s_put_be(p + 1, v, n);
    return 1 + n;
}

size_t dp_wire_str_head_at(uint8_t *p, uint32_t len)
{
    return s_head_put(p, len, 0xa0, 32, 0xd9, 0xda, 0xdb);
}

void dp_wr_array(dp_wr_t *w, uint32_t n)
{
    uint8_t *p = s_room(w, S_HEAD_MAX);
    if (p)
        w->buf.len += s_head_put(p, n, 0x90, 16, 0, 0xdc, 0xdd);
}

void dp_wr_map(dp_wr_t *w, uint32_t n)
{
    S_PK(w);
    msgpack_pack_map(&pk, n);
}

void dp_wr_uint_any(dp_wr_t *w, uint64_t v)
{
    uint8_t *p = s_room(w, S_HEAD_MAX);
    if (p)
        w->buf.len += dp_wire_uint_at(p, v);
}

void dp_wr_int(dp_wr_t *w, int64_t v)
{
    S_PK(w);
    msgpack_pack_int64(&pk, v);
}

static void s_byte(dp_wr_t *w, uint8_t b)
{
    uint8_t *p = s_room(w, 1);
    if (p) {
        p[0] = b;
        w->buf.len++;
    }
}

void dp_wr_bool(dp_wr_t *w, bool b)
{
    s_byte(w, b ? 0xc3 : 0xc2);
}

void dp_wr_nil(dp_wr_t *w)
{
    s_byte(w, 0xc0);
}

/* s_bytes_put: a str or bin header and its len bytes. */
static void s_bytes_put(dp_wr_t *w, bool str, const void *s, size_t len)
{
    if (len > UINT32_MAX) {
        w->err = w->err ? w->err : DP_ERR_TOO_BIG;
        return;
    }
    uint8_t *p = s_room(w, S_HEAD_MAX + len);
    if (!p)
        return;
    size_t h = str ? s_head_put(p, len, 0xa0, 32, 0xd9, 0xda, 0xdb)
                   : s_head_put(p, len, 0, 0, 0xc4, 0xc5, 0xc6);
    if (len)
        memcpy(p + h, s, len);
    w->buf.len += h + len;
}

void dp_wr_str(dp_wr_t *w, const char *s, size_t len)
{
    s_bytes_put(w, true, s, len);
}

void dp_wr_cstr(dp_wr_t *w, const char *s)
{
    dp_wr_str(w, s ? s : "", s ? strlen(s) : 0);
}

void dp_wr_bin(dp_wr_t *w, const void *p, size_t len)
{
    s_bytes_put(w, false, p, len);
}

void dp_wr_raw(dp_wr_t *w, const void *p, size_t len)
{
    s_write(w, p, len);
}

void dp_wr_value(dp_wr_t *w, const dp_value_t *v)
{
    S_PK(w);
    switch (v->type) {
    case DP_NIL:
        dp_wr_nil(w);
        break;
    case DP_BOOL:
        dp_wr_bool(w, v->v.b);
        break;
    case DP_INT:
        msgpack_pack_int64(&pk, v->v.i);
        break;
    case DP_UINT:
        dp_wr_uint(w, v->v.u);
        break;
    case DP_FLOAT:
        msgpack_pack_double(&pk, v->v.f);
        break;
    case DP_STR:
        dp_wr_str(w, v->v.s.ptr, v->v.s.len);
        break;
    case DP_BIN:
        dp_wr_bin(w, v->v.s.ptr, v->v.s.len);
        break;
    case DP_ARRAY:
        dp_wr_array(w, (uint32_t)v->v.a.len);
        for (size_t k = 0; k < v->v.a.len; k++)
            dp_wr_value(w, &v->v.a.items[k]);
        break;
    case DP_MAP:
        msgpack_pack_map(&pk, v->v.a.len);
        for (size_t k = 0; k < 2 * v->v.a.len; k++)
            dp_wr_value(w, &v->v.a.items[k]);
        break;
    }
}

void dp_wr_reset(dp_wr_t *w)
{
    w->buf.len = 0;
    w->err = 0;
}

int dp_wr_take(dp_wr_t *w, char **data, size_t *len)
{
    int rc = w->err;
    *len = w->buf.len;
    *data = dp_buf_take(&w->buf);
    w->err = 0;
    if (rc) {
        free(*data);
        *data = NULL;
        *len = 0;
    }
    return rc;
}

void dp_wr_release(dp_wr_t *w)
{
    dp_buf_release(&w->buf);
    w->err = 0;
}
