#include "dp_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpool.h"

void dp_buf_init(dp_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int dp_buf_reserve(dp_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra) {
        if (cap > ((size_t)-1) / 2)
            return DP_ERR_NOMEM;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p)
        return DP_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int dp_buf_put(dp_buf_t *b, const void *p, size_t len)
{
    if (b->cap - b->len < len && dp_buf_reserve(b, len))
        return DP_ERR_NOMEM;
    if (len)
        memcpy(b->data + b->len, p, len);
    b->len += len;
    return 0;
}

int dp_buf_putc(dp_buf_t *b, char c)
{
    return dp_buf_put(b, &c, 1);
}

int dp_buf_puts(dp_buf_t *b, const char *s)
{
    return dp_buf_put(b, s, strlen(s));
}

int dp_buf_printf(dp_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || dp_buf_reserve(b, (size_t)n + 1))
        return DP_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *dp_buf_take(dp_buf_t *b)
{
    char *p = b->data;
    dp_buf_init(b);
    return p;
}

void dp_buf_release(dp_buf_t *b)
{
    free(b->data);
    dp_buf_init(b);
}
