/*
 * test_wire.c - common/dp_wire.c (bounded msgpack reader, writer) and
 * common/dp_value.c (copy, clear, dict_get, JSON): round trips of every
 * type and size class, then hostile input: truncation at every offset,
 * huge announced counts, deep nesting, reserved bytes, ext, and a fuzz loop.
 *
 * Inputs under test are copied into malloc'd buffers of their exact size so
 * that ASAN reports any read past the end.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_wire.h"

#ifndef T_FUZZ_ROUNDS
#define T_FUZZ_ROUNDS 200000u
#endif
#define T_FUZZ_MAXLEN 64u
#ifndef T_FUZZ_SEED
#define T_FUZZ_SEED 0x9E3779B97F4A7C15ULL
#endif

/* ---- helpers ---- */

typedef struct {
    char *p;
    size_t n;
} t_bytes_t;

static t_bytes_t s_take(dp_wr_t *w)
{
    t_bytes_t b;
    int rc = dp_wr_take(w, &b.p, &b.n);
    cr_assert_eq(rc, 0, "dp_wr_take: %d", rc);
    return b;
}

static t_bytes_t s_encode(const dp_value_t *v)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_wr_value(&w, v);
    return s_take(&w);
}

/* s_exact: a malloc'd copy of exactly n bytes (ASAN sees overreads). */
static uint8_t *s_exact(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    cr_assert(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* s_decode: decode bytes that must hold exactly one value. */
static dp_value_t s_decode(const void *p, size_t n)
{
    dp_limits_t lim = dp_limits_default();
    uint8_t *c = s_exact(p, n);
    dp_rd_t r;
    dp_rd_init(&r, c, n, &lim);
    dp_rd_t sk = r;
    cr_assert_eq(dp_rd_skip(&sk), 0);
    cr_assert_eq(dp_rd_left(&sk), 0);
    dp_value_t v;
    int rc = dp_rd_value(&r, &v);
    cr_assert_eq(rc, 0, "dp_rd_value: %d", rc);
    cr_assert_eq(dp_rd_left(&r), 0, "%zu bytes left", dp_rd_left(&r));
    free(c);
    return v;
}

/* s_round: encode v, decode it, compare with want (v itself if NULL);
 * return the encoded size; clears v. */
static size_t s_round(dp_value_t *v, const dp_value_t *want, uint8_t *head)
{
    t_bytes_t b = s_encode(v);
    dp_value_t out = s_decode(b.p, b.n);
    cr_assert(dp_value_equal(&out, want ? want : v), "round trip differs");
    if (head)
        *head = (uint8_t)b.p[0];
    size_t n = b.n;
    free(b.p);
    dp_value_clear(&out);
    dp_value_clear(v);
    return n;
}

/* s_rd_fail: reading data[0..n) with lim must fail with one of the codes;
 * both dp_rd_skip and dp_rd_value, cursor unchanged. */
static int s_rd_fail(const void *data, size_t n, const dp_limits_t *lim)
{
    uint8_t *c = s_exact(data, n);
    dp_rd_t r;
    dp_rd_init(&r, c, n, lim);
    int rc = dp_rd_skip(&r);
    cr_assert_neq(rc, 0, "dp_rd_skip accepted bad input");
    cr_assert_eq(dp_rd_left(&r), n, "cursor moved on error");
    dp_value_t v = dp_nil();
    int rc2 = dp_rd_value(&r, &v);
    cr_assert_eq(rc2, rc, "skip %d, value %d", rc, rc2);
    cr_assert_eq(dp_rd_left(&r), n, "cursor moved on error");
    cr_assert_eq(v.type, DP_NIL);
    free(c);
    return rc;
}

/* ---- scalars ---- */

Test(wire, nil_and_bool)
{
    dp_value_t v = dp_nil();
    uint8_t h;
    cr_assert_eq(s_round(&v, NULL, &h), 1);
    cr_assert_eq(h, 0xc0);
    v = dp_bool(true);
    cr_assert_eq(s_round(&v, NULL, &h), 1);
    cr_assert_eq(h, 0xc3);
    v = dp_bool(false);
    cr_assert_eq(s_round(&v, NULL, &h), 1);
    cr_assert_eq(h, 0xc2);
}

Test(wire, uints_every_width)
{
    static const struct {
        uint64_t u;
        size_t size;
    } c[] = {
        {0, 1},
        {1, 1},
        {127, 1},
        {128, 2},
        {255, 2},
        {256, 3},
        {65535, 3},
        {65536, 5},
        {0xffffffffULL, 5},
        {0x100000000ULL, 9},
        {UINT64_MAX - 1, 9},
        {UINT64_MAX, 9},
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        dp_value_t v = dp_uint(c[k].u);
        size_t n = s_round(&v, NULL, NULL);
        cr_assert_eq(n, c[k].size, "%llu: %zu bytes",
                     (unsigned long long)c[k].u, n);
    }
}

Test(wire, negative_ints_every_width)
{
    static const struct {
        int64_t i;
        size_t size;
    } c[] = {
        {-1, 1},
        {-32, 1},
        {-33, 2},
        {-128, 2},
        {-129, 3},
        {-32768, 3},
        {-32769, 5},
        {INT32_MIN, 5},
        {(int64_t)INT32_MIN - 1, 9},
        {INT64_MIN + 1, 9},
        {INT64_MIN, 9},
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        dp_value_t v = dp_int(c[k].i);
        size_t n = s_round(&v, NULL, NULL);
        cr_assert_eq(n, c[k].size, "%lld: %zu bytes", (long long)c[k].i, n);
    }
}

Test(wire, nonnegative_int_decodes_as_uint)
{
    dp_value_t v = dp_int(INT64_MAX);
    dp_value_t want = dp_uint(INT64_MAX);
    s_round(&v, &want, NULL);
    v = dp_int(0);
    want = dp_uint(0);
    s_round(&v, &want, NULL);
    /* signed encodings of positive numbers, by hand */
    static const uint8_t d0[] = {0xd0, 0x05};
    static const uint8_t d1[] = {0xd1, 0x01, 0x00};
    static const uint8_t d2[] = {0xd2, 0x7f, 0xff, 0xff, 0xff};
    static const uint8_t d3[] = {0xd3, 0x7f, 0xff, 0xff, 0xff,
                                 0xff, 0xff, 0xff, 0xff};
    dp_value_t o = s_decode(d0, sizeof d0);
    cr_assert(o.type == DP_UINT && o.v.u == 5);
    o = s_decode(d1, sizeof d1);
    cr_assert(o.type == DP_UINT && o.v.u == 256);
    o = s_decode(d2, sizeof d2);
    cr_assert(o.type == DP_UINT && o.v.u == INT32_MAX);
    o = s_decode(d3, sizeof d3);
    cr_assert(o.type == DP_UINT && o.v.u == INT64_MAX);
    /* and negative ones with sign extension */
    static const uint8_t n0[] = {0xd0, 0x80};
    static const uint8_t n1[] = {0xd1, 0x80, 0x00};
    static const uint8_t n2[] = {0xd2, 0xff, 0xff, 0xff, 0xfe};
    static const uint8_t n3[] = {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0};
    o = s_decode(n0, sizeof n0);
    cr_assert(o.type == DP_INT && o.v.i == -128);
    o = s_decode(n1, sizeof n1);
    cr_assert(o.type == DP_INT && o.v.i == -32768);
    o = s_decode(n2, sizeof n2);
    cr_assert(o.type == DP_INT && o.v.i == -2);
    o = s_decode(n3, sizeof n3);
    cr_assert(o.type == DP_INT && o.v.i == INT64_MIN);
}

Test(wire, float64_round_trip)
{
    const double c[] = {0.0,      -0.0,      1.5,
                        -2.25,    1e300,     -1e-300,
                        INFINITY, -INFINITY, 4.9406564584124654e-324};
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        dp_value_t v = dp_float(c[k]);
        uint8_t h;
        cr_assert_eq(s_round(&v, NULL, &h), 9);
        cr_assert_eq(h, 0xcb);
    }
    dp_value_t v = dp_float(NAN);
    t_bytes_t b = s_encode(&v);
    dp_value_t o = s_decode(b.p, b.n);
    cr_assert(o.type == DP_FLOAT && isnan(o.v.f));
    free(b.p);
}

Test(wire, float32_by_hand)
{
    static const struct {
        uint8_t b[5];
        double want;
    } c[] = {
        {{0xca, 0x3f, 0xc0, 0x00, 0x00}, 1.5},
        {{0xca, 0xc0, 0x20, 0x00, 0x00}, -2.5},
        {{0xca, 0x00, 0x00, 0x00, 0x00}, 0.0},
        {{0xca, 0x7f, 0x80, 0x00, 0x00}, INFINITY},
        {{0xca, 0xff, 0x80, 0x00, 0x00}, -INFINITY},
        {{0xca, 0x3d, 0xcc, 0xcc, 0xcd}, (double)0.1f},
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        dp_value_t o = s_decode(c[k].b, 5);
        cr_assert_eq(o.type, DP_FLOAT);
        cr_assert(o.v.f == c[k].want, "case %zu: %g", k, o.v.f);
    }
    static const uint8_t nan32[] = {0xca, 0x7f, 0xc0, 0x00, 0x00};
    dp_value_t o = s_decode(nan32, sizeof nan32);
    cr_assert(o.type == DP_FLOAT && isnan(o.v.f));
    static const uint8_t f64[] = {0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0};
    o = s_decode(f64, sizeof f64);
    cr_assert(o.type == DP_FLOAT && o.v.f == 1.5);
}

/* ---- str and bin ---- */

static const size_t s_sizes[] = {0, 1, 31, 32, 255, 256, 65535, 65536};

static uint8_t s_str_head(size_t n)
{
    return n <= 31      ? (uint8_t)(0xa0 | n)
           : n <= 255   ? 0xd9
           : n <= 65535 ? 0xda
                        : 0xdb;
}

Test(wire, str_sizes)
{
    for (size_t k = 0; k < sizeof s_sizes / sizeof s_sizes[0]; k++) {
        size_t n = s_sizes[k];
        char *s = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            s[i] = (char)('a' + i % 26);
        dp_value_t v = dp_strn(s, n);
        uint8_t h;
        size_t enc = s_round(&v, NULL, &h);
        cr_assert_eq(h, s_str_head(n), "size %zu head %#x", n, h);
        cr_assert_eq(enc, n + (n <= 31      ? 1
                               : n <= 255   ? 2
                               : n <= 65535 ? 3
                                            : 5));
        /* the reader's borrowed view and the NUL of the decoded value */
        dp_wr_t w;
        dp_wr_init(&w);
        dp_wr_str(&w, s, n);
        t_bytes_t b = s_take(&w);
        dp_limits_t lim = dp_limits_default();
        dp_rd_t r;
        dp_rd_init(&r, b.p, b.n, &lim);
        const char *p;
        size_t len;
        cr_assert_eq(dp_rd_str(&r, &p, &len), 0);
        cr_assert_eq(len, n);
        cr_assert(n == 0 || memcmp(p, s, n) == 0);
        cr_assert_eq(dp_rd_left(&r), 0);
        dp_value_t o = s_decode(b.p, b.n);
        cr_assert_eq(o.v.s.ptr[n], '\0');
        dp_value_clear(&o);
        free(b.p);
        free(s);
    }
}

Test(wire, bin_sizes)
{
    for (size_t k = 0; k < sizeof s_sizes / sizeof s_sizes[0]; k++) {
        size_t n = s_sizes[k];
        uint8_t *s = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            s[i] = (uint8_t)(i * 7);
        dp_value_t v = dp_bin(s, n);
        uint8_t h;
        size_t enc = s_round(&v, NULL, &h);
        uint8_t want = n <= 255 ? 0xc4 : n <= 65535 ? 0xc5 : 0xc6;
        cr_assert_eq(h, want, "size %zu head %#x", n, h);
        cr_assert_eq(enc, n + (n <= 255 ? 2 : n <= 65535 ? 3 : 5));
        /* dp_rd_str refuses bin, dp_rd_strbin takes it */
        dp_wr_t w;
        dp_wr_init(&w);
        dp_wr_bin(&w, s, n);
        t_bytes_t b = s_take(&w);
        dp_limits_t lim = dp_limits_default();
        dp_rd_t r;
        dp_rd_init(&r, b.p, b.n, &lim);
        const char *p;
        size_t len;
        cr_assert_eq(dp_rd_str(&r, &p, &len), DP_ERR_PROTOCOL);
        cr_assert_eq(dp_rd_left(&r), b.n);
        cr_assert_eq(dp_rd_strbin(&r, &p, &len), 0);
        cr_assert_eq(len, n);
        cr_assert(n == 0 || memcmp(p, s, n) == 0);
        free(b.p);
        free(s);
    }
}

/* ---- containers ---- */

Test(wire, array_sizes)
{
    static const struct {
        size_t n;
        uint8_t head;
        size_t hdr;
    } c[] = {{0, 0x90, 1},
             {15, 0x9f, 1},
             {16, 0xdc, 3},
             {65535, 0xdc, 3},
             {65536, 0xdd, 5}};
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        dp_value_t v = dp_array(c[k].n);
        for (size_t i = 0; i < c[k].n; i++)
            v.v.a.items[i] = dp_uint(i % 100);
        uint8_t h;
        size_t enc = s_round(&v, NULL, &h);
        cr_assert_eq(h, c[k].head, "n %zu head %#x", c[k].n, h);
        cr_assert_eq(enc, c[k].hdr + c[k].n);
    }
}

Test(wire, map_sizes)
{
    static const struct {
        size_t n;
        uint8_t head;
    } c[] = {{0, 0x80}, {15, 0x8f}, {16, 0xde}, {65535, 0xde}, {65536, 0xdf}};
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        dp_value_t v = dp_dict(c[k].n);
        for (size_t i = 0; i < c[k].n; i++) {
            v.v.a.items[2 * i] = dp_uint(i);
            v.v.a.items[2 * i + 1] = dp_bool(i & 1);
        }
        uint8_t h;
        s_round(&v, NULL, &h);
        cr_assert_eq(h, c[k].head, "n %zu head %#x", c[k].n, h);
    }
}

Test(wire, reader_api_kinds_and_cursor)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_wr_array(&w, 2);
    dp_wr_map(&w, 1);
    dp_wr_cstr(&w, "k");
    dp_wr_int(&w, -7);
    dp_wr_nil(&w);
    dp_wr_uint(&w, 300);
    dp_wr_cstr(&w, NULL); /* "" */
    t_bytes_t b = s_take(&w);
    dp_limits_t lim = dp_limits_default();
    dp_rd_t r;
    dp_rd_init(&r, b.p, b.n, &lim);
    uint32_t n;
    uint64_t u;
    const char *s;
    size_t len;
    /* wrong kinds fail without moving */
    cr_assert_eq(dp_rd_map(&r, &n), DP_ERR_PROTOCOL);
    cr_assert_eq(dp_rd_uint(&r, &u), DP_ERR_PROTOCOL);
    cr_assert_eq(dp_rd_str(&r, &s, &len), DP_ERR_PROTOCOL);
    cr_assert_not(dp_rd_is_nil(&r));
    cr_assert_eq(dp_rd_left(&r), b.n);
    cr_assert_eq(dp_rd_array(&r, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(dp_rd_map(&r, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(dp_rd_str(&r, &s, &len), 0);
    cr_assert(len == 1 && s[0] == 'k');
    /* a negative int is not a uint */
    cr_assert_eq(dp_rd_uint(&r, &u), DP_ERR_PROTOCOL);
    dp_value_t v;
    cr_assert_eq(dp_rd_value(&r, &v), 0);
    cr_assert(v.type == DP_INT && v.v.i == -7);
    cr_assert(dp_rd_is_nil(&r));
    cr_assert_eq(dp_rd_uint(&r, &u), 0);
    cr_assert_eq(u, 300);
    dp_slice_t raw;
    cr_assert_eq(dp_rd_raw(&r, &raw), 0);
    cr_assert(raw.len == 1 && raw.ptr[0] == 0xa0);
    cr_assert_eq(dp_rd_left(&r), 0);
    /* at the end everything fails */
    cr_assert_eq(dp_rd_skip(&r), DP_ERR_PROTOCOL);
    cr_assert_eq(dp_rd_raw(&r, &raw), DP_ERR_PROTOCOL);
    cr_assert_not(dp_rd_is_nil(&r));
    cr_assert_eq(dp_rd_value(&r, &v), DP_ERR_PROTOCOL);
    free(b.p);
}

Test(wire, writer_raw_reset_take)
{
    dp_wr_t w;
    dp_wr_init(&w);
    char *p;
    size_t n;
    cr_assert_eq(dp_wr_take(&w, &p, &n), 0);
    cr_assert_eq(n, 0);
    free(p);
    dp_wr_uint(&w, 1);
    dp_wr_reset(&w);
    static const uint8_t two[] = {0x92, 0x01, 0xc0};
    dp_wr_raw(&w, two, sizeof two);
    t_bytes_t b = s_take(&w);
    cr_assert_eq(b.n, sizeof two);
    cr_assert_eq(memcmp(b.p, two, sizeof two), 0);
    free(b.p);
    /* the writer is empty and reusable after take */
    dp_wr_bool(&w, true);
    b = s_take(&w);
    cr_assert(b.n == 1 && (uint8_t)b.p[0] == 0xc3);
    free(b.p);
    dp_wr_release(&w);
    dp_wr_release(&w);
}

/* s_deep: a structure with every type, nested maps and arrays. */
static dp_value_t s_deep(void)
{
    dp_value_t m = dp_dict(5);
    m.v.a.items[0] = dp_str("ints");
    dp_value_t ints = dp_array(4);
    ints.v.a.items[0] = dp_int(INT64_MIN);
    ints.v.a.items[1] = dp_uint(UINT64_MAX);
    ints.v.a.items[2] = dp_int(-1);
    ints.v.a.items[3] = dp_uint(0);
    m.v.a.items[1] = ints;
    m.v.a.items[2] = dp_str("nested");
    dp_value_t a = dp_array(3);
    dp_value_t inner = dp_dict(2);
    inner.v.a.items[0] = dp_str("bin");
    static const uint8_t bytes[] = {0, 1, 0xff, '"'};
    inner.v.a.items[1] = dp_bin(bytes, sizeof bytes);
    inner.v.a.items[2] = dp_uint(7); /* non-string key */
    inner.v.a.items[3] = dp_array(0);
    a.v.a.items[0] = inner;
    a.v.a.items[1] = dp_nil();
    a.v.a.items[2] = dp_float(-0.5);
    m.v.a.items[3] = a;
    m.v.a.items[4] = dp_str("");
    m.v.a.items[5] = dp_bool(false);
    m.v.a.items[6] = dp_str("text");
    m.v.a.items[7] = dp_str("h\xc3\xa9llo \"q\"\n");
    m.v.a.items[8] = dp_str("empty");
    m.v.a.items[9] = dp_dict(0);
    return m;
}

Test(wire, deep_structure_round_trip)
{
    dp_value_t v = s_deep();
    s_round(&v, NULL, NULL);
    cr_assert_eq(v.type, DP_NIL, "dp_value_clear leaves DP_NIL");
}

Test(wire, nesting_at_and_over_max_depth)
{
    dp_limits_t lim = dp_limits_default();
    uint8_t buf[128];
    /* max_depth arrays around a nil: fine */
    size_t d = lim.max_depth;
    memset(buf, 0x91, d);
    buf[d] = 0xc0;
    dp_value_t v = s_decode(buf, d + 1);
    dp_value_clear(&v);
    /* one more: TOO_BIG */
    memset(buf, 0x91, d + 1);
    buf[d + 1] = 0xc0;
    cr_assert_eq(s_rd_fail(buf, d + 2, &lim), DP_ERR_TOO_BIG);
    /* 100 nested arrays, complete and truncated */
    memset(buf, 0x91, 100);
    buf[100] = 0xc0;
    cr_assert_eq(s_rd_fail(buf, 101, &lim), DP_ERR_TOO_BIG);
    cr_assert_eq(s_rd_fail(buf, 100, &lim), DP_ERR_TOO_BIG);
    /* maps count too: {nil: {nil: ...}} */
    uint8_t mbuf[2 * 100 + 2];
    for (size_t k = 0; k < 100; k++) {
        mbuf[2 * k] = 0x81;
        mbuf[2 * k + 1] = 0xc0;
    }
    mbuf[200] = 0xc0;
    cr_assert_eq(s_rd_fail(mbuf, 201, &lim), DP_ERR_TOO_BIG);
    /* a smaller configured depth */
    dp_limits_t small = lim;
    small.max_depth = 2;
    static const uint8_t three[] = {0x91, 0x91, 0x91, 0x01};
    cr_assert_eq(s_rd_fail(three, sizeof three, &small), DP_ERR_TOO_BIG);
}

/* ---- dp_value.c ---- */

Test(value, copy_is_deep_and_clear_is_idempotent)
{
    dp_value_t v = s_deep();
    dp_value_t c;
    cr_assert_eq(dp_value_copy(&c, &v), 0);
    cr_assert(dp_value_equal(&c, &v));
    /* no shared memory: the copy outlives the original (ASAN) */
    cr_assert_neq(c.v.a.items, v.v.a.items);
    cr_assert_neq(c.v.a.items[0].v.s.ptr, v.v.a.items[0].v.s.ptr);
    dp_value_t keep;
    cr_assert_eq(dp_value_copy(&keep, &c), 0);
    dp_value_clear(&v);
    cr_assert(dp_value_equal(&c, &keep));
    dp_value_clear(&c);
    dp_value_clear(&c);
    dp_value_clear(NULL);
    cr_assert_eq(c.type, DP_NIL);
    dp_value_clear(&keep);
    /* scalars copy by value */
    dp_value_t f = dp_float(2.5), g;
    cr_assert_eq(dp_value_copy(&g, &f), 0);
    cr_assert(dp_value_equal(&f, &g));
}

Test(value, dict_get)
{
    dp_value_t v = s_deep();
    const dp_value_t *x = dp_dict_get(&v, "text");
    cr_assert(x && x->type == DP_STR);
    cr_assert_str_eq(x->v.s.ptr, "h\xc3\xa9llo \"q\"\n");
    cr_assert_null(dp_dict_get(&v, "tex"));
    cr_assert_null(dp_dict_get(&v, "texts"));
    cr_assert_null(dp_dict_get(NULL, "text"));
    dp_value_t a = dp_array(1);
    cr_assert_null(dp_dict_get(&a, "text"));
    dp_value_clear(&a);
    dp_value_clear(&v);
}

Test(value, json_text)
{
    dp_value_t v = s_deep();
    char *j = dp_value_json(&v);
    cr_assert(j);
    cr_assert_str_eq(j, "{\"ints\":[-9223372036854775808,"
                        "18446744073709551615,-1,0],"
                        "\"nested\":[{\"bin\":\"0001ff22\",\"?\":[]},null,"
                        "-0.5],\"\":false,"
                        "\"text\":\"h\xc3\xa9llo \\\"q\\\"\\u000a\","
                        "\"empty\":{}}");
    free(j);
    dp_value_clear(&v);
}

Test(value, json_escapes_control_chars_and_nonfinite)
{
    static const char raw[] = "a\"b\\c\x01\x1f\t\r\x7f/";
    dp_value_t a = dp_array(5);
    a.v.a.items[0] = dp_strn(raw, sizeof raw - 1);
    a.v.a.items[1] = dp_float(NAN);
    a.v.a.items[2] = dp_float(INFINITY);
    a.v.a.items[3] = dp_float(1.5);
    a.v.a.items[4] = dp_strn("x\0y", 3);
    char *j = dp_value_json(&a);
    cr_assert(j);
    cr_assert_str_eq(j, "[\"a\\\"b\\\\c\\u0001\\u001f\\u0009\\u000d"
                        "\\u007f/\",null,null,1.5,\"x\\u0000y\"]");
    free(j);
    dp_value_clear(&a);
}

Test(value, json_too_deep_is_null)
{
    /* DP_JSON_MAX_DEPTH bounds the recursion */
    dp_value_t root = dp_array(1), *cur = &root;
    for (int k = 0; k < DP_JSON_MAX_DEPTH + 5; k++) {
        cur->v.a.items[0] = dp_array(1);
        cur = &cur->v.a.items[0];
    }
    cr_assert_null(dp_value_json(&root));
    dp_value_clear(&root);
}

/* ---- hostile input ---- */

Test(hostile, truncated_at_every_offset)
{
    dp_value_t v = s_deep();
    dp_wr_t w;
    dp_wr_init(&w);
    dp_wr_array(&w, 4);
    dp_wr_value(&w, &v);
    static const uint8_t f32[] = {0xca, 0x3f, 0xc0, 0x00, 0x00};
    static const uint8_t ext[] = {0xc7, 0x02, 0x05, 'x', 'y'};
    dp_wr_raw(&w, f32, sizeof f32);
    dp_wr_raw(&w, ext, sizeof ext);
    char big[300];
    memset(big, 'z', sizeof big);
    dp_wr_str(&w, big, sizeof big);
    t_bytes_t b = s_take(&w);
    dp_value_clear(&v);
    dp_limits_t lim = dp_limits_default();
    for (size_t n = 0; n < b.n; n++) {
        int rc = s_rd_fail(b.p, n, &lim);
        cr_assert_eq(rc, DP_ERR_PROTOCOL, "prefix %zu: %d", n, rc);
    }
    dp_value_t whole = s_decode(b.p, b.n);
    dp_value_clear(&whole);
    free(b.p);
}

Test(hostile, map32_claiming_4g_entries, .timeout = 5)
{
    static const uint8_t m[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01,
                                0x02, 0x03, 0x04, 0x05, 0x06};
    dp_limits_t lim = dp_limits_default();
    int rc = s_rd_fail(m, sizeof m, &lim);
    cr_assert(rc == DP_ERR_TOO_BIG || rc == DP_ERR_PROTOCOL, "rc %d", rc);
    /* with the element limit lifted, the bytes left still bound it; an
     * allocation attempt would show as NOMEM (or a crash) instead */
    dp_limits_t open = {SIZE_MAX, UINT32_MAX, lim.max_depth};
    rc = s_rd_fail(m, sizeof m, &open);
    cr_assert(rc == DP_ERR_TOO_BIG || rc == DP_ERR_PROTOCOL, "rc %d", rc);
    uint8_t *c = s_exact(m, sizeof m);
    dp_rd_t r;
    dp_rd_init(&r, c, sizeof m, &open);
    uint32_t n;
    rc = dp_rd_map(&r, &n);
    cr_assert(rc == DP_ERR_TOO_BIG || rc == DP_ERR_PROTOCOL, "rc %d", rc);
    free(c);
}

Test(hostile, array32_and_array16_huge_counts, .timeout = 5)
{
    static const uint8_t a32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    static const uint8_t a32b[] = {0xdd, 0x00, 0x10, 0x00, 0x00, 0x01};
    static const uint8_t a16[] = {0xdc, 0xff, 0xff, 0x01, 0x02, 0x03};
    dp_limits_t lim = dp_limits_default();
    dp_limits_t open = {SIZE_MAX, UINT32_MAX, lim.max_depth};
    const dp_limits_t *lims[] = {&lim, &open};
    for (int k = 0; k < 2; k++) {
        int rc = s_rd_fail(a32, sizeof a32, lims[k]);
        cr_assert(rc == DP_ERR_TOO_BIG || rc == DP_ERR_PROTOCOL);
        rc = s_rd_fail(a32b, sizeof a32b, lims[k]);
        cr_assert(rc == DP_ERR_TOO_BIG || rc == DP_ERR_PROTOCOL);
        cr_assert_eq(s_rd_fail(a16, sizeof a16, lims[k]), DP_ERR_PROTOCOL);
    }
    /* over max_elems with the bytes present: TOO_BIG */
    dp_limits_t few = lim;
    few.max_elems = 3;
    static const uint8_t four[] = {0x94, 1, 2, 3, 4};
    cr_assert_eq(s_rd_fail(four, sizeof four, &few), DP_ERR_TOO_BIG);
    static const uint8_t three[] = {0x93, 1, 2, 3};
    dp_rd_t r;
    dp_rd_init(&r, three, sizeof three, &few);
    cr_assert_eq(dp_rd_skip(&r), 0);
}

Test(hostile, str_and_bin_longer_than_data)
{
    dp_limits_t lim = dp_limits_default();
    static const uint8_t s32[] = {0xdb, 0x00, 0x00, 0x01, 0x00, 'a', 'b'};
    cr_assert_eq(s_rd_fail(s32, sizeof s32, &lim), DP_ERR_PROTOCOL);
    static const uint8_t s32max[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    int rc = s_rd_fail(s32max, sizeof s32max, &lim);
    cr_assert(rc == DP_ERR_TOO_BIG || rc == DP_ERR_PROTOCOL);
    static const uint8_t s8[] = {0xd9, 0x05, 'a', 'b', 'c', 'd'};
    cr_assert_eq(s_rd_fail(s8, sizeof s8, &lim), DP_ERR_PROTOCOL);
    static const uint8_t fix[] = {0xa3, 'a', 'b'};
    cr_assert_eq(s_rd_fail(fix, sizeof fix, &lim), DP_ERR_PROTOCOL);
    static const uint8_t b32[] = {0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00};
    rc = s_rd_fail(b32, sizeof b32, &lim);
    cr_assert(rc == DP_ERR_TOO_BIG || rc == DP_ERR_PROTOCOL);
    uint8_t *c = s_exact(s32, sizeof s32);
    dp_rd_t r;
    dp_rd_init(&r, c, sizeof s32, &lim);
    const char *p;
    size_t len;
    cr_assert_eq(dp_rd_str(&r, &p, &len), DP_ERR_PROTOCOL);
    cr_assert_eq(dp_rd_strbin(&r, &p, &len), DP_ERR_PROTOCOL);
    cr_assert_eq(dp_rd_left(&r), sizeof s32);
    free(c);
    /* over max_msg_bytes with the bytes present: TOO_BIG */
    dp_limits_t small = lim;
    small.max_msg_bytes = 2;
    static const uint8_t abc[] = {0xa3, 'a', 'b', 'c'};
    cr_assert_eq(s_rd_fail(abc, sizeof abc, &small), DP_ERR_TOO_BIG);
}

Test(hostile, reserved_c1_is_protocol)
{
    dp_limits_t lim = dp_limits_default();
    static const uint8_t c1[] = {0xc1};
    cr_assert_eq(s_rd_fail(c1, 1, &lim), DP_ERR_PROTOCOL);
    static const uint8_t in_array[] = {0x92, 0x01, 0xc1};
    cr_assert_eq(s_rd_fail(in_array, sizeof in_array, &lim), DP_ERR_PROTOCOL);
    static const uint8_t as_key[] = {0x81, 0xc1, 0x01};
    cr_assert_eq(s_rd_fail(as_key, sizeof as_key, &lim), DP_ERR_PROTOCOL);
}

Test(hostile, ext_types_are_skipped)
{
    static const uint8_t x[] = {
        0x9a,                            /* array of 10 */
        0xd4, 0x01, 0xaa,                /* fixext 1 */
        0xd5, 0x02, 0xaa, 0xbb,          /* fixext 2 */
        0xd6, 0xff, 1,    2,    3,    4, /* fixext 4, type -1 */
        0xd7, 0x03, 1,    2,    3,    4,    5,   6,  7,    8, /* fixext 8 */
        0xd8, 0x04, 1,    2,    3,    4,    5,   6,  7,    8, /* fixext 16 */
        9,    10,   11,   12,   13,   14,   15,  16, 0xc7, 0x03,
        0x05, 'a',  'b',  'c',                   /* ext 8 */
        0xc8, 0x00, 0x02, 0x07, 'x',  'y',       /* ext 16 */
        0xc9, 0x00, 0x00, 0x00, 0x01, 0x07, 'z', /* ext 32 */
        0xc7, 0x00, 0x09,                        /* ext 8, empty */
        0x2a,                                    /* 42: after all of them */
    };
    dp_limits_t lim = dp_limits_default();
    uint8_t *c = s_exact(x, sizeof x);
    dp_rd_t r;
    dp_rd_init(&r, c, sizeof x, &lim);
    dp_rd_t all = r;
    cr_assert_eq(dp_rd_skip(&all), 0);
    cr_assert_eq(dp_rd_left(&all), 0);
    uint32_t n;
    cr_assert_eq(dp_rd_array(&r, &n), 0);
    cr_assert_eq(n, 10);
    static const size_t sizes[] = {3, 4, 6, 10, 18, 6, 6, 7, 3};
    for (size_t k = 0; k < 9; k++) {
        dp_slice_t raw;
        cr_assert_eq(dp_rd_raw(&r, &raw), 0, "ext %zu", k);
        cr_assert_eq(raw.len, sizes[k], "ext %zu: %zu bytes", k, raw.len);
    }
    uint64_t u;
    cr_assert_eq(dp_rd_uint(&r, &u), 0);
    cr_assert_eq(u, 42);
    /* dp_rd_value accepts them as opaque values */
    dp_rd_init(&r, c, sizeof x, &lim);
    dp_value_t v;
    cr_assert_eq(dp_rd_value(&r, &v), 0);
    cr_assert_eq(dp_rd_left(&r), 0);
    cr_assert_eq(v.type, DP_ARRAY);
    cr_assert(v.v.a.items[9].type == DP_UINT && v.v.a.items[9].v.u == 42);
    dp_value_clear(&v);
    /* every truncation of it fails */
    for (size_t k = 0; k < sizeof x; k++)
        cr_assert_eq(s_rd_fail(x, k, &lim), DP_ERR_PROTOCOL, "prefix %zu", k);
    free(c);
    /* ext 8 announcing more than is there */
    static const uint8_t bad[] = {0xc7, 0x10, 0x01, 'a'};
    cr_assert_eq(s_rd_fail(bad, sizeof bad, &lim), DP_ERR_PROTOCOL);
}

/* xorshift64*: deterministic across platforms */
static uint64_t s_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Header bytes worth favouring so that fuzz inputs get past the first
 * byte often. */
static const uint8_t s_heads[] = {
    0x91, 0x92, 0x9f, 0x81, 0x8f, 0xdc, 0xdd, 0xde, 0xdf, 0xa1, 0xa5,
    0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb,
    0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6,
    0xd7, 0xd8, 0xc0, 0xc1, 0xc2, 0xc3, 0x00, 0x01, 0x7f, 0xe0, 0xff,
};

Test(hostile, fuzz_skip_and_value_agree, .timeout = 60)
{
    dp_limits_t lims[2] = {dp_limits_default(), dp_limits_default()};
    lims[1].max_depth = 4;
    lims[1].max_elems = 8;
    lims[1].max_msg_bytes = 16;
    uint64_t seed = T_FUZZ_SEED;
    size_t ok = 0;
    for (uint32_t round = 0; round < T_FUZZ_ROUNDS; round++) {
        size_t n = (size_t)(s_rand(&seed) % (T_FUZZ_MAXLEN + 1));
        uint8_t *buf = malloc(n ? n : 1);
        bool small = s_rand(&seed) & 1;
        for (size_t k = 0; k < n; k++) {
            uint64_t x = s_rand(&seed);
            if (small) /* small counts and lengths */
                buf[k] = (x & 3) ? s_heads[(x >> 8) % sizeof s_heads]
                                 : (uint8_t)((x >> 16) & 3);
            else
                buf[k] = (x & 1) ? s_heads[(x >> 8) % sizeof s_heads]
                                 : (uint8_t)(x >> 16);
        }
        const dp_limits_t *lim = &lims[round & 1];
        dp_rd_t sk, vr;
        dp_rd_init(&sk, buf, n, lim);
        vr = sk;
        int rs = dp_rd_skip(&sk);
        dp_value_t v = dp_nil();
        int rv = dp_rd_value(&vr, &v);
        cr_assert_eq(rs, rv, "round %u: skip %d, value %d", round, rs, rv);
        /* dp_rd_scalars agrees with dp_rd_value where it decodes */
        dp_rd_t sc;
        dp_rd_init(&sc, buf, n, lim);
        dp_value_t items[8];
        size_t ni = 0;
        int rsc = dp_rd_scalars(&sc, items, 8, &ni);
        if (rsc == 0) {
            cr_assert_eq(rv, 0, "round %u: scalars decoded, value %d", round,
                         rv);
            cr_assert_eq(v.type, DP_ARRAY);
            cr_assert_eq(v.v.a.len, ni);
            for (size_t k = 0; k < ni; k++)
                cr_assert(dp_value_equal(&items[k], &v.v.a.items[k]),
                          "round %u: item %zu", round, k);
            cr_assert_eq(dp_rd_left(&sc), dp_rd_left(&vr));
        } else {
            cr_assert(rsc == 1 || (rsc == DP_ERR_PROTOCOL && rv != 0),
                      "round %u: scalars %d, value %d", round, rsc, rv);
            cr_assert_eq(dp_rd_left(&sc), n, "round %u: consumed", round);
        }
        if (rv == 0) {
            ok++;
            cr_assert_eq(dp_rd_left(&sk), dp_rd_left(&vr),
                         "round %u: skip and value consumed differently",
                         round);
            cr_assert_lt(dp_rd_left(&vr), n + 1);
            /* what was decoded encodes again into something readable */
            t_bytes_t b = s_encode(&v);
            dp_value_t again = s_decode(b.p, b.n);
            cr_assert(dp_value_equal(&again, &v), "round %u: re-encode differs",
                      round);
            dp_value_clear(&again);
            free(b.p);
            dp_value_clear(&v);
        } else {
            cr_assert(rs == DP_ERR_PROTOCOL || rs == DP_ERR_TOO_BIG,
                      "round %u: rc %d", round, rs);
            cr_assert_eq(dp_rd_left(&sk), n);
            cr_assert_eq(dp_rd_left(&vr), n);
            cr_assert_eq(v.type, DP_NIL);
        }
        free(buf);
    }
    cr_assert_gt(ok, T_FUZZ_ROUNDS / 20, "only %zu inputs decoded", ok);
}

/* dp_rd_scalars: numeric arrays without allocation; anything else is
 * left for dp_rd_value (1), a cut array is PROTOCOL, nothing consumed. */
Test(wire, scalars_fast_path)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_wr_array(&w, 5);
    dp_wr_uint(&w, 1u << 20);
    dp_wr_int(&w, -2);
    dp_value_t f = dp_float(3.5);
    dp_wr_value(&w, &f);
    dp_wr_bool(&w, true);
    dp_wr_nil(&w);
    t_bytes_t b = s_take(&w);
    dp_limits_t lim = dp_limits_default();
    dp_rd_t r;
    dp_value_t it[8];
    size_t n = 0;
    dp_rd_init(&r, b.p, b.n, &lim);
    cr_assert_eq(dp_rd_scalars(&r, it, 8, &n), 0);
    cr_assert_eq(n, 5);
    cr_assert_eq(dp_rd_left(&r), 0);
    cr_assert(it[0].type == DP_UINT && it[0].v.u == 1u << 20);
    cr_assert(it[1].type == DP_INT && it[1].v.i == -2);
    cr_assert(it[2].type == DP_FLOAT && it[2].v.f == 3.5);
    cr_assert(it[3].type == DP_BOOL && it[3].v.b);
    cr_assert(it[4].type == DP_NIL);
    /* more items than room: left for dp_rd_value */
    dp_rd_init(&r, b.p, b.n, &lim);
    cr_assert_eq(dp_rd_scalars(&r, it, 4, &n), 1);
    cr_assert_eq(dp_rd_left(&r), b.n);
    /* cut short at every length: PROTOCOL (or 1 for nothing), untouched */
    for (size_t k = 0; k < b.n; k++) {
        uint8_t *c = s_exact(b.p, k);
        dp_rd_init(&r, c, k, &lim);
        cr_assert_eq(dp_rd_scalars(&r, it, 8, &n), DP_ERR_PROTOCOL, "%zu", k);
        cr_assert_eq(dp_rd_left(&r), k);
        free(c);
    }
    free(b.p);
    /* a string or a nested array: 1 */
    static const uint8_t str[] = {0x91, 0xa1, 'x'}, nest[] = {0x91, 0x91, 0x01};
    dp_rd_init(&r, str, sizeof str, &lim);
    cr_assert_eq(dp_rd_scalars(&r, it, 8, &n), 1);
    dp_rd_init(&r, nest, sizeof nest, &lim);
    cr_assert_eq(dp_rd_scalars(&r, it, 8, &n), 1);
    cr_assert_eq(dp_rd_left(&r), sizeof nest);
}

/* dp_value_equal tells values apart by type, content and length, deeply. */
Test(value, equal_tells_apart)
{
    dp_value_t a = dp_array(2), b = dp_array(2);
    a.v.a.items[0] = dp_str("x");
    b.v.a.items[0] = dp_str("x");
    a.v.a.items[1] = dp_uint(1);
    b.v.a.items[1] = dp_uint(1);
    cr_assert(dp_value_equal(&a, &b));
    dp_value_clear(&b.v.a.items[1]);
    b.v.a.items[1] = dp_int(-1);
    cr_assert_not(dp_value_equal(&a, &b), "uint vs int");
    dp_value_t s1 = dp_str("ab"), s2 = dp_bin("ab", 2), s3 = dp_str("abc");
    cr_assert_not(dp_value_equal(&s1, &s2), "str vs bin");
    cr_assert_not(dp_value_equal(&s1, &s3), "lengths");
    dp_value_t f1 = dp_float(0.0), f2 = dp_float(-0.0);
    cr_assert_not(dp_value_equal(&f1, &f2), "bit for bit");
    dp_value_clear(&a);
    dp_value_clear(&b);
    dp_value_clear(&s1);
    dp_value_clear(&s2);
    dp_value_clear(&s3);
}

/* Issue 8 item 6: decode amplification. Nested empty arrays cost one byte
 * each on the wire and a dp_value_t each decoded: refused once the decoded
 * size would pass decode_factor x the wire size (+ slack); the same count
 * of strings of a few bytes, or a small list of small ints, is fine. */
Test(hostile, decode_amplification_is_refused)
{
    const uint32_t n = 900000; /* under max_elems */
    dp_wr_t w;
    dp_wr_init(&w);
    dp_wr_array(&w, n);
    for (uint32_t k = 0; k < n; k++)
        dp_wr_array(&w, 0);
    t_bytes_t b = s_take(&w);
    dp_limits_t lim = dp_limits_default();
    cr_assert_eq(lim.decode_factor, DP_DECODE_FACTOR_DEFAULT);
    dp_rd_t r;
    dp_rd_init(&r, b.p, b.n, &lim);
    dp_value_t v = dp_nil();
    cr_expect_eq(dp_rd_value(&r, &v), DP_ERR_TOO_BIG);
    cr_expect_eq(dp_rd_left(&r), b.n, "the cursor moved on error");
    cr_expect_eq(v.type, DP_NIL);
    dp_rd_init(&r, b.p, b.n, &lim); /* skipping it costs nothing */
    cr_expect_eq(dp_rd_skip(&r), 0);
    free(b.p);

    /* strings of 24 bytes: 26 on the wire, about 65 decoded: fine */
    dp_wr_init(&w);
    dp_wr_array(&w, 10000);
    for (uint32_t k = 0; k < 10000; k++)
        dp_wr_cstr(&w, "abcdefghijklmnopqrstuvwx");
    b = s_take(&w);
    dp_rd_init(&r, b.p, b.n, &lim);
    cr_expect_eq(dp_rd_value(&r, &v), 0);
    dp_value_clear(&v);
    free(b.p);

    /* a short list of small ints: under the slack */
    dp_wr_init(&w);
    dp_wr_array(&w, 1000);
    for (uint32_t k = 0; k < 1000; k++)
        dp_wr_uint(&w, k % 100);
    b = s_take(&w);
    dp_rd_init(&r, b.p, b.n, &lim);
    cr_expect_eq(dp_rd_value(&r, &v), 0);
    dp_value_clear(&v);
    free(b.p);
}
