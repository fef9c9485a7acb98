/*
 * dl_guard.h - where a download may connect (downloads cannot
 * reach inside). The check is made on the address libcurl actually
 * connects to (CURLOPT_OPENSOCKETFUNCTION), after DNS, for the first URL
 * and every redirect, so no spelling of a host (127.1, 2130706433, [::1],
 * localhost, a DNS name pointing inside) gets around it.
 *
 * Refused by default: loopback, unspecified, RFC 1918 private, CGNAT
 * (100.64/10), link-local (169.254/16, fe80::/10), RFC 4193 unique-local
 * (fc00::/7), site-local (fec0::/10), multicast (224/4, ff00::/8),
 * reserved and broadcast (240/4, 255.255.255.255), IPv4-compatible
 * (::/96); IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96) and 6to4
 * (2002::/16) addresses are judged by the IPv4 address they carry. An
 * allow list (--allow-net CIDR) wins over the deny list.
 *
 * Addresses are kept as 16 bytes: IPv4 as IPv4-mapped IPv6, its prefix
 * length plus 96.
 */
#ifndef DL_GUARD_H
#define DL_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DP_GUARD_ALLOW_MAX 64 /* --allow-net ranges, at most */
#define DP_GUARD_ADDR_MAX 64  /* room for an address as text (INET6 + %) */
#define DP_GUARD_V6_BITS 128
#define DP_GUARD_V4_BITS 32
#define DP_GUARD_MAPPED_BITS 96 /* ::ffff:0:0/96 */

typedef struct {
    uint8_t addr[16];
    uint8_t bits; /* prefix length on the 128-bit form */
} dp_cidr_t;

typedef struct dp_guard {
    dp_cidr_t allow[DP_GUARD_ALLOW_MAX];
    size_t nallow;
} dp_guard_t;

/* dp_cidr_parse: "10.0.0.0/8", "::1/128", "192.168.1.7" (a host) into
 * *out (host bits cleared). 0 or DP_ERR_INVALID. */
int dp_cidr_parse(const char *s, dp_cidr_t *out);
/* dp_guard_init: the default deny list plus `n` allowed ranges (each one
 * CIDR, or several separated by commas). 0, or DP_ERR_INVALID with the
 * bad range named in err. */
int dp_guard_init(dp_guard_t *g, const char *const *allow, size_t n, char *err,
                  size_t errlen);
/* dp_guard_check: may a download connect to sa? true, or false with the
 * address as text in addr (addrlen bytes) and the range's name in *why
 * ("loopback", "private", ...). */
bool dp_guard_check(const dp_guard_t *g, const struct sockaddr *sa, char *addr,
                    size_t addrlen, const char **why);

#endif /* DL_GUARD_H */
