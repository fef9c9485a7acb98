#include "dp_frame.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dpool.h"

#define S_READ_CHUNK 65536u

void dp_framer_init(dp_framer_t *f, size_t max_frame)
{
    memset(f, 0, sizeof *f);
    f->max = max_frame;
}

void dp_framer_release(dp_framer_t *f)
{
    free(f->buf);
    dp_framer_init(f, f->max);
}

static int s_room(dp_framer_t *f, size_t want)
{
    if (f->off && f->off == f->len) {
        f->off = f->len = 0;
    } else if (f->off > f->cap / 2) {
        memmove(f->buf, f->buf + f->off, f->len - f->off);
        f->len -= f->off;
        f->off = 0;
    }
    if (f->cap - f->len >= want)
        return 0;
    size_t cap = f->cap ? f->cap : S_READ_CHUNK;
    while (cap - f->len < want)
        cap *= 2;
    char *p = realloc(f->buf, cap);
    if (!p)
        return DP_ERR_NOMEM;
    f->buf = p;
    f->cap = cap;
    return 0;
}

int dp_framer_fill(dp_framer_t *f, int fd)
{
    /* one read per call: safe on blocking fds, and level-triggered poll
     * brings a non-blocking caller back for the rest */
    if (s_room(f, S_READ_CHUNK))
        return DP_ERR_NOMEM;
    for (;;) {
        ssize_t n = read(fd, f->buf + f->len, f->cap - f->len);
        if (n > 0) {
            f->len += (size_t)n;
            return 0;
        }
        if (n == 0)
            return DP_ERR_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return DP_ERR_IO;
    }
}

int dp_framer_next(dp_framer_t *f, const char **data, size_t *len)
{
    size_t have = f->len - f->off;
    if (have < DP_FRAME_HDR)
        return 0;
    const unsigned char *h = (const unsigned char *)f->buf + f->off;
    size_t n = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 |
               (size_t)h[3] << 24;
    if (n > f->max)
        return DP_ERR_TOO_BIG;
    if (have - DP_FRAME_HDR < n)
        return 0;
    *data = f->buf + f->off + DP_FRAME_HDR;
    *len = n;
    f->off += DP_FRAME_HDR + n;
    return 1;
}

int dp_frame_write(int fd, const void *data, size_t len)
{
    return dp_frame_write_many(fd, data, &len, 1);
}

/* s_writev_all: write every byte of v[0..cnt) (blocking or not). A
 * socket is written with MSG_NOSIGNAL: a peer that is gone is EPIPE, not
 * SIGPIPE, in a process (a local pool's client) whose signals are not
 * ours to set. */
static int s_writev_all(int fd, struct iovec *v, int cnt);

int dp_frame_write_many(int fd, const void *data, const size_t *lens, int n)
{
    if (n < 1 || n > DP_FRAME_WRITE_MAX)
        return DP_ERR_TOO_BIG;
    unsigned char h[DP_FRAME_WRITE_MAX][DP_FRAME_HDR];
    struct iovec iov[2 * DP_FRAME_WRITE_MAX];
    const char *p = data;
    for (int k = 0; k < n; k++) {
        size_t len = lens[k];
        if (len > UINT32_MAX)
            return DP_ERR_TOO_BIG;
        for (unsigned b = 0; b < DP_FRAME_HDR; b++)
            h[k][b] = (unsigned char)(len >> (8 * b));
        iov[2 * k] = (struct iovec){h[k], DP_FRAME_HDR};
        iov[2 * k + 1] = (struct iovec){(void *)p, len};
        p += len;
    }
    return s_writev_all(fd, iov, 2 * n);
}

static int s_writev_all(int fd, struct iovec *v, int cnt)
{
    while (cnt > 0) {
        struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)cnt};
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = writev(fd, v, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd p = {fd, POLLOUT, 0};
                poll(&p, 1, -1);
                continue;
            }
            return DP_ERR_IO;
        }
        while (cnt > 0 && (size_t)n >= v->iov_len) {
            n -= (ssize_t)v->iov_len;
            v++;
            cnt--;
        }
        if (cnt > 0) {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= (size_t)n;
        }
    }
    return 0;
}
