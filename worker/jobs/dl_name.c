/*
 * dl_name.c - safe local file names for downloaded bodies, shared by the
 * io child (--store-on-worker) and the client (--output-dir). Kept apart
 * from download.c so the client does not link libcurl.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dp_download.h"

static int s_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool s_name_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

void dp_dl_hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t k = 0; k < n; k++) {
        out[2 * k] = digits[p[k] >> 4];
        out[2 * k + 1] = digits[p[k] & 15];
    }
    out[2 * n] = '\0';
}

/* s_last_segment: the last path segment of url as [*seg, *seg + *len). */
static void s_last_segment(const char *url, const char **seg, size_t *len)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    p += strcspn(p, "/?#"); /* skip the authority */
    size_t plen = strcspn(p, "?#");
    const char *start = p;
    for (size_t k = 0; k < plen; k++) {
        if (p[k] == '/')
            start = p + k + 1;
    }
    *seg = start;
    *len = (size_t)(p + plen - start);
}

int dp_dl_safe_name(const char *url, char *out, size_t outlen)
{
    if (!url || !out || outlen < DP_DL_NAME_MAX + 1)
        return DP_ERR_INVALID;
    const char *seg;
    size_t slen, n = 0;
    s_last_segment(url, &seg, &slen);
    for (size_t k = 0; k < slen && n < DP_DL_NAME_MAX; k++) {
        unsigned char c = (unsigned char)seg[k];
        if (c == '%' && k + 2 < slen && s_hexval(seg[k + 1]) >= 0 &&
            s_hexval(seg[k + 2]) >= 0) {
            c = (unsigned char)(s_hexval(seg[k + 1]) * 16 +
                                s_hexval(seg[k + 2]));
            k += 2;
        }
        if (!s_name_char(c))
            c = '_';
        if (c == '.' && (n == 0 || out[n - 1] == '.'))
            continue; /* no leading dot, no ".." */
        out[n++] = (char)c;
    }
    out[n] = '\0';
    if (n > 0)
        return 0;
    unsigned char md[DP_DL_SHA256_LEN];
    char hex[2 * DP_DL_SHA256_LEN + 1];
    if (!EVP_Digest(url, strlen(url), md, NULL, EVP_sha256(), NULL))
        return DP_ERR_INTERNAL;
    dp_dl_hex(md, sizeof md, hex);
    memcpy(out, hex, DP_DL_HASH_NAME_HEX);
    out[DP_DL_HASH_NAME_HEX] = '\0';
    return 0;
}

int dp_dl_open_unique(const char *dir, const char *base, char *path_out,
                      size_t len)
{
    if (!dir || !base || !path_out || !base[0] || base[0] == '.' ||
        strchr(base, '/')) {
        errno = EINVAL;
        return -1;
    }
    for (unsigned k = 0; k <= DP_DL_UNIQUE_MAX; k++) {
        int n = k == 0 ? snprintf(path_out, len, "%s/%s", dir, base)
                       : snprintf(path_out, len, "%s/%s.%u", dir, base, k);
        if (n < 0 || (size_t)n >= len) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd =
            open(path_out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                 DP_DL_FILE_MODE);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

/* ---- curl callbacks ---- */
