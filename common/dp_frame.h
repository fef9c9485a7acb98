/*
 * dp_frame.h - length-prefixed frames over a stream socket (the worker
 * agent and its children talk this over socketpairs): a 4-byte
 * little-endian length, then that many bytes (one dpool message).
 *
 * Ownership: a dp_framer_t owns its receive buffer; dp_framer_next hands
 * out a pointer into it, valid until the next call.
 */
#ifndef DP_FRAME_H
#define DP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define DP_FRAME_HDR 4u

typedef struct {
    char *buf;
    size_t len; /* bytes held */
    size_t cap;
    size_t off; /* start of the unread part */
    size_t max; /* largest frame accepted */
} dp_framer_t;

#define DP_FRAME_WRITE_MAX 64 /* frames in one dp_frame_write_many */

void dp_framer_init(dp_framer_t *f, size_t max_frame);
void dp_framer_release(dp_framer_t *f);
/* dp_framer_fill: one read() of what fd has. 0 = read something or
 * EAGAIN, DP_ERR_EOF = peer closed, DP_ERR_IO = error, DP_ERR_NOMEM. */
int dp_framer_fill(dp_framer_t *f, int fd);
/* dp_framer_next: 1 and the next complete frame, 0 if none yet, or
 * DP_ERR_TOO_BIG when the next frame announces more than max. */
int dp_framer_next(dp_framer_t *f, const char **data, size_t *len);
/* dp_frame_write: write one whole frame to a blocking or non-blocking fd
 * (waits with poll on EAGAIN). 0, DP_ERR_TOO_BIG (over 4 GiB - 1, what
 * the length prefix holds) or DP_ERR_IO. */
int dp_frame_write(int fd, const void *data, size_t len);
/* dp_frame_write_many: n frames (1..DP_FRAME_WRITE_MAX) in one writev;
 * frame k is lens[k] bytes, the frames lie end to end from data. Errors
 * as dp_frame_write. */
int dp_frame_write_many(int fd, const void *data, const size_t *lens, int n);

#endif
