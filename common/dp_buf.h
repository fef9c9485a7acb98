/*
 * dp_buf.h - a growable byte buffer (text building, framing).
 * Ownership: the buffer owns data until dp_buf_take hands it to the caller
 * or dp_buf_release frees it. Functions return 0 or DP_ERR_NOMEM.
 */
#ifndef DP_BUF_H
#define DP_BUF_H

#include <stddef.h>

#define DP_JSON_MAX_DEPTH 64

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} dp_buf_t;

void dp_buf_init(dp_buf_t *b);
int dp_buf_reserve(dp_buf_t *b, size_t extra);
int dp_buf_put(dp_buf_t *b, const void *p, size_t len);
int dp_buf_putc(dp_buf_t *b, char c);
int dp_buf_puts(dp_buf_t *b, const char *s);
int dp_buf_printf(dp_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* dp_buf_take: the data (caller frees); the buffer is left empty. */
char *dp_buf_take(dp_buf_t *b);
void dp_buf_release(dp_buf_t *b);

#endif
