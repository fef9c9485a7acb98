/*
 * dp_wire.h - msgpack reading and writing; with dp_msg.h, the only code in
 * dpool that knows the msgpack format.
 *
 * Reading is a strict, bounded cursor over bytes the caller owns (a received
 * ZeroMQ frame): it never allocates while walking, and every count and
 * length is checked against the configured limits and against the bytes
 * actually left before anything is trusted. msgpack-c's own unpacker is not
 * used for input because it sizes allocations from untrusted counts (an
 * 11-byte map header would ask for gigabytes); see PROTOCOL.md.
 *
 * Writing appends to a growable buffer: the common kinds (nil, bool, uint,
 * str, bin, array) are written by hand in msgpack's smallest forms, the
 * rest through msgpack-c's packer.
 *
 * Ownership: a dp_rd_t borrows its bytes; strings it returns point into
 * them (not NUL-terminated) and live as long as those bytes. A dp_wr_t owns
 * its buffer until dp_wr_take.
 */
#ifndef DP_WIRE_H
#define DP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dp_buf.h"
#include "dpool.h"

/* Default limits on decoded input (each configurable). */
#define DP_MAX_MSG_BYTES_DEFAULT (300u * 1024 * 1024) /* 256 MiB body + */
#define DP_MAX_ELEMS_DEFAULT 1000000u /* items in one array or map */
#define DP_MAX_DEPTH_DEFAULT 32u      /* nesting of arrays and maps */
/* A decoded value may cost at most DP_DECODE_FACTOR_DEFAULT times its
 * wire size plus DP_DECODE_SLACK_BYTES in memory (dp_rd_value), counting
 * a dp_value_t per item and DP_DECODE_ALLOC_BYTES per allocation: a 20 MB
 * message never costs more than about 200 MB decoded. */
#define DP_DECODE_FACTOR_DEFAULT 10u
#define DP_DECODE_SLACK_BYTES (1024u * 1024) /* small values: any shape */
#define DP_DECODE_ALLOC_BYTES 16u            /* malloc's own overhead */

typedef struct {
    size_t max_msg_bytes;
    uint32_t max_elems;
    uint32_t max_depth;
    uint32_t decode_factor; /* decoded bytes per wire byte; 0 = unbounded */
} dp_limits_t;

/* dp_limits_default: the defaults above. */
dp_limits_t dp_limits_default(void);

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    const dp_limits_t *lim;
} dp_rd_t;

typedef struct {
    const uint8_t *ptr;
    size_t len;
} dp_slice_t;

/* dp_rd_init: a reader over data[0..len) checked against lim. */
void dp_rd_init(dp_rd_t *r, const void *data, size_t len,
                const dp_limits_t *lim);
/* dp_rd_left: bytes not yet read. */
size_t dp_rd_left(const dp_rd_t *r);
/* Each dp_rd_* reads one value of the named kind or returns
 * DP_ERR_PROTOCOL (wrong kind, truncated) / DP_ERR_TOO_BIG (over a limit)
 * without moving the cursor on error. */
int dp_rd_array_any(dp_rd_t *r, uint32_t *n);
int dp_rd_uint_any(dp_rd_t *r, uint64_t *v);
/* dp_rd_array, dp_rd_uint: the one-byte forms (fixarray, positive
 * fixint) inline, every reader's hot path; the rest in the _any calls. */
static inline int dp_rd_array(dp_rd_t *r, uint32_t *n)
{
    if (r->p < r->end && (*r->p & 0xf0) == 0x90 &&
        (size_t)(*r->p & 0x0f) < (size_t)(r->end - r->p)) {
        *n = *r->p++ & 0x0f;
        return 0;
    }
    return dp_rd_array_any(r, n);
}
static inline int dp_rd_uint(dp_rd_t *r, uint64_t *v)
{
    if (r->p < r->end && *r->p <= 0x7f) {
        *v = *r->p++;
        return 0;
    }
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* uint 8..64 (job ids, pids, times): loads, not a call and a loop */
    if (r->p < r->end && *r->p >= 0xcc && *r->p <= 0xcf &&
        (size_t)(r->end - r->p) > (1u << (*r->p - 0xcc))) {
        const uint8_t *p = r->p + 1;
        uint16_t x16;
        uint32_t x32;
        uint64_t x64;
        switch (*r->p) {
        case 0xcc:
            *v = p[0];
            break;
        case 0xcd:
            memcpy(&x16, p, sizeof x16);
            *v = __builtin_bswap16(x16);
            break;
        case 0xce:
            memcpy(&x32, p, sizeof x32);
            *v = __builtin_bswap32(x32);
            break;
        default:
            memcpy(&x64, p, sizeof x64);
            *v = __builtin_bswap64(x64);
        }
        r->p = p + (1u << (r->p[0] - 0xcc));
        return 0;
    }
#endif
    return dp_rd_uint_any(r, v);
}
int dp_rd_map(dp_rd_t *r, uint32_t *n);
int dp_rd_str(dp_rd_t *r, const char **s, size_t *len);
/* dp_rd_strbin: a str or a bin. */
int dp_rd_strbin(dp_rd_t *r, const char **s, size_t *len);
/* dp_rd_is_nil: true (and consumed) if the next value is nil. */
bool dp_rd_is_nil(dp_rd_t *r);
/* dp_rd_skip: step over one whole value, checking it completely. */
int dp_rd_skip(dp_rd_t *r);
/* dp_rd_raw: step over one value and return its encoded bytes. */
int dp_rd_raw(dp_rd_t *r, dp_slice_t *raw);
/* dp_rd_value: decode one value into *out (owned by the caller). The
 * value is checked completely before anything is allocated. */
int dp_rd_value(dp_rd_t *r, dp_value_t *out);
/* dp_rd_scalars: an array of at most `max` nil, bool, integer or float
 * items into items[0..*n), nothing allocated (they own no memory): a job's
 * numeric arguments without a dp_value_t tree. 0 and consumed; 1 (nothing
 * consumed) when the next value is anything else: decode it with
 * dp_rd_value; or DP_ERR_PROTOCOL when it is cut short. */
int dp_rd_scalars(dp_rd_t *r, dp_value_t *items, size_t max, size_t *n);

typedef struct dp_wr {
    dp_buf_t buf;
    int err; /* first error; later writes are no-ops */
} dp_wr_t;

/* dp_wr_init: an empty writer. Errors accumulate in w->err (DP_ERR_NOMEM);
 * check once with dp_wr_take. */
void dp_wr_init(dp_wr_t *w);
void dp_wr_array(dp_wr_t *w, uint32_t n);
void dp_wr_map(dp_wr_t *w, uint32_t n);
void dp_wr_uint_any(dp_wr_t *w, uint64_t v);
/* dp_wr_uint: a positive fixint inline when there is room; the rest in
 * dp_wr_uint_any. */
static inline void dp_wr_uint(dp_wr_t *w, uint64_t v)
{
    if (v < 0x80 && !w->err && w->buf.len < w->buf.cap) {
        w->buf.data[w->buf.len++] = (char)v;
        return;
    }
    dp_wr_uint_any(w, v);
}
void dp_wr_int(dp_wr_t *w, int64_t v);
void dp_wr_bool(dp_wr_t *w, bool b);
void dp_wr_nil(dp_wr_t *w);
void dp_wr_str(dp_wr_t *w, const char *s, size_t len);
void dp_wr_cstr(dp_wr_t *w, const char *s);
void dp_wr_bin(dp_wr_t *w, const void *p, size_t len);
/* dp_wr_raw: append bytes that are already one or more encoded values. */
void dp_wr_raw(dp_wr_t *w, const void *p, size_t len);
void dp_wr_value(dp_wr_t *w, const dp_value_t *v);
/* Encoding in place, for a hot path that writes one whole item at once:
 * dp_wr_room gives room for n more bytes at the end of w's buffer (NULL
 * on error, noted in w->err); dp_wire_uint_at (at most DP_WIRE_UINT_MAX
 * bytes) and dp_wire_str_head_at (at most DP_WIRE_STR_HEAD_MAX) write a
 * uint or a str header there and return their size; the caller then adds
 * what it wrote to w->buf.len. */
#define DP_WIRE_UINT_MAX 9
#define DP_WIRE_STR_HEAD_MAX 5
uint8_t *dp_wr_room(dp_wr_t *w, size_t n);
size_t dp_wire_uint_at(uint8_t *p, uint64_t v);
size_t dp_wire_str_head_at(uint8_t *p, uint32_t len);
/* dp_wr_reset: empty the writer, keep its memory. */
void dp_wr_reset(dp_wr_t *w);
/* dp_wr_take: 0 and the bytes (caller frees with free()), or the first
 * error; the writer is empty afterwards either way. */
int dp_wr_take(dp_wr_t *w, char **data, size_t *len);
/* dp_wr_release: free the writer's memory. */
void dp_wr_release(dp_wr_t *w);

#endif /* DP_WIRE_H */
