/*
 * dl_guard.c - the download destination policy (see dl_guard.h).
 */
#include "dl_guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpool.h"

#define S_CIDR_TEXT_MAX 128 /* longest CIDR text looked at */
#define S_BITS_PER_BYTE 8
#define S_V4_AT 12  /* where the IPv4 address sits in a mapped one */
#define S_6TO4_AT 2 /* 2002:AABB:CCDD::/48 carries AA.BB.CC.DD */
#define S_V4_BYTES 4

/* The default deny list: ranges a download never reaches unless allowed.
 * Order matters only for the names (the first match names the refusal). */
static const struct {
    const char *cidr;
    const char *why;
} s_deny[] = {
    {"0.0.0.0/8", "unspecified"},
    {"10.0.0.0/8", "private"},
    {"100.64.0.0/10", "carrier-grade NAT"},
    {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local"},
    {"172.16.0.0/12", "private"},
    {"192.0.0.0/24", "IETF protocol assignments"},
    {"192.168.0.0/16", "private"},
    {"198.18.0.0/15", "benchmarking"},
    {"224.0.0.0/4", "multicast"},
    {"255.255.255.255/32", "broadcast"},
    {"240.0.0.0/4", "reserved"},
    {"::/128", "unspecified"},
    {"::1/128", "loopback"},
    {"::/96", "IPv4-compatible"},
    {"fc00::/7", "unique-local"},
    {"fe80::/10", "link-local"},
    {"fec0::/10", "site-local"},
    {"ff00::/8", "multicast"},
};

static const uint8_t s_mapped_prefix[S_V4_AT] = {0, 0, 0, 0, 0,    0,
                                                 0, 0, 0, 0, 0xff, 0xff};
static const uint8_t s_nat64_prefix[S_V4_AT] = {0, 0x64, 0xff, 0x9b, 0, 0,
                                                0, 0,    0,    0,    0, 0};

static void s_mask(dp_cidr_t *c)
{
    for (int k = 0; k < DP_GUARD_V6_BITS / S_BITS_PER_BYTE; k++) {
        int keep = (int)c->bits - k * S_BITS_PER_BYTE;
        if (keep <= 0)
            c->addr[k] = 0;
        else if (keep < S_BITS_PER_BYTE)
            c->addr[k] &= (uint8_t)(0xff << (S_BITS_PER_BYTE - keep));
    }
}

int dp_cidr_parse(const char *s, dp_cidr_t *out)
{
    char host[S_CIDR_TEXT_MAX];
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof host)
        return DP_ERR_INVALID;
    memcpy(host, s, len + 1);
    char *slash = strchr(host, '/');
    long bits = -1;
    if (slash) {
        char *end;
        *slash = '\0';
        errno = 0;
        bits = strtol(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end || bits < 0)
            return DP_ERR_INVALID;
    }
    memset(out, 0, sizeof *out);
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1) {
        if (bits > DP_GUARD_V4_BITS)
            return DP_ERR_INVALID;
        memcpy(out->addr, s_mapped_prefix, S_V4_AT);
        memcpy(out->addr + S_V4_AT, &v4, S_V4_BYTES);
        out->bits = (uint8_t)(DP_GUARD_MAPPED_BITS +
                              (bits < 0 ? DP_GUARD_V4_BITS : bits));
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        if (bits > DP_GUARD_V6_BITS)
            return DP_ERR_INVALID;
        out->bits = (uint8_t)(bits < 0 ? DP_GUARD_V6_BITS : bits);
    } else {
        return DP_ERR_INVALID;
    }
    s_mask(out);
    return 0;
}

static bool s_in(const dp_cidr_t *c, const uint8_t *a)
{
    dp_cidr_t x;
    memcpy(x.addr, a, sizeof x.addr);
    x.bits = c->bits;
    s_mask(&x);
    return memcmp(x.addr, c->addr, sizeof x.addr) == 0;
}

int dp_guard_init(dp_guard_t *g, const char *const *allow, size_t n, char *err,
                  size_t errlen)
{
    memset(g, 0, sizeof *g);
    for (size_t k = 0; k < n; k++) {
        char buf[S_CIDR_TEXT_MAX * 4];
        snprintf(buf, sizeof buf, "%s", allow[k]);
        for (char *p = buf, *next; p && *p; p = next) {
            next = strchr(p, ',');
            if (next)
                *next++ = '\0';
            if (g->nallow >= DP_GUARD_ALLOW_MAX) {
                snprintf(err, errlen, "more than %d --allow-net ranges",
                         DP_GUARD_ALLOW_MAX);
                return DP_ERR_INVALID;
            }
            if (dp_cidr_parse(p, &g->allow[g->nallow])) {
                snprintf(err, errlen,
                         "--allow-net '%s': not an address or CIDR range "
                         "(e.g. 10.0.0.0/8, fd00::/8)",
                         p);
                return DP_ERR_INVALID;
            }
            g->nallow++;
        }
    }
    return 0;
}

static bool s_allowed(const dp_guard_t *g, const uint8_t *a)
{
    for (size_t k = 0; k < g->nallow; k++)
        if (s_in(&g->allow[k], a))
            return true;
    return false;
}

/* s_denied: the name of the deny range holding a, or NULL. */
static const char *s_denied(const uint8_t *a)
{
    for (size_t k = 0; k < sizeof s_deny / sizeof s_deny[0]; k++) {
        dp_cidr_t c;
        if (dp_cidr_parse(s_deny[k].cidr, &c) == 0 && s_in(&c, a))
            return s_deny[k].why;
    }
    return NULL;
}

/* s_embedded: the IPv4 address a NAT64 or 6to4 address carries, as a
 * mapped address in out; false for others. */
static bool s_embedded(const uint8_t *a, uint8_t *out)
{
    const uint8_t *v4 = NULL;
    if (memcmp(a, s_nat64_prefix, S_V4_AT) == 0)
        v4 = a + S_V4_AT;
    else if (a[0] == 0x20 && a[1] == 0x02)
        v4 = a + S_6TO4_AT;
    if (!v4)
        return false;
    memcpy(out, s_mapped_prefix, S_V4_AT);
    memcpy(out + S_V4_AT, v4, S_V4_BYTES);
    return true;
}

bool dp_guard_check(const dp_guard_t *g, const struct sockaddr *sa, char *addr,
                    size_t addrlen, const char **why)
{
    uint8_t a[16], inner[16];
    *why = "not an internet address";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(a, s_mapped_prefix, S_V4_AT);
        memcpy(a + S_V4_AT, &s4->sin_addr, S_V4_BYTES);
        inet_ntop(AF_INET, &s4->sin_addr, addr, (socklen_t)addrlen);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(a, &s6->sin6_addr, sizeof a);
        inet_ntop(AF_INET6, &s6->sin6_addr, addr, (socklen_t)addrlen);
    } else {
        snprintf(addr, addrlen, "(family %d)", (int)sa->sa_family);
        return false;
    }
    bool inside = s_embedded(a, inner);
    if (s_allowed(g, a) || (inside && s_allowed(g, inner)))
        return true;
    *why = s_denied(a);
    if (!*why && inside)
        *why = s_denied(inner);
    return *why == NULL;
}
