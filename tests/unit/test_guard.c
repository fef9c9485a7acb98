/*
 * test_guard.c - worker/jobs/dl_guard.c: CIDR parsing, the default deny
 * list in IPv4 and IPv6 (IPv4-mapped, NAT64, 6to4 judged by the IPv4
 * address they carry), and the allow list winning over it.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "dl_guard.h"
#include "dpool.h"

/* s_check: dp_guard_check on the text address a; why out. */
static bool s_check(const dp_guard_t *g, const char *a, const char **why)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, a, &s4->sin_addr) == 1)
        s4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1)
        s6->sin6_family = AF_INET6;
    else
        cr_assert_fail("bad test address %s", a);
    char text[DP_GUARD_ADDR_MAX];
    *why = NULL;
    return dp_guard_check(g, (struct sockaddr *)&ss, text, sizeof text, why);
}

Test(guard, cidr_parse)
{
    dp_cidr_t c;
    cr_assert_eq(dp_cidr_parse("10.1.2.3/8", &c), 0);
    cr_assert_eq(c.bits, 96 + 8);
    cr_assert_eq(c.addr[12], 10);
    cr_assert_eq(c.addr[13], 0); /* host bits cleared */
    cr_assert_eq(dp_cidr_parse("192.168.1.7", &c), 0);
    cr_assert_eq(c.bits, 128);
    cr_assert_eq(dp_cidr_parse("fd00::/8", &c), 0);
    cr_assert_eq(c.bits, 8);
    cr_assert_eq(dp_cidr_parse("::/0", &c), 0);
    cr_assert_eq(c.bits, 0);
    const char *bad[] = {"",         "10.0.0.0/33", "::/129",     "10.0.0.0/",
                         "10.0.0/8", "host",        "1.2.3.4/-1", "1.2.3.4/8x"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        cr_expect_eq(dp_cidr_parse(bad[k], &c), DP_ERR_INVALID, "%s", bad[k]);
}

Test(guard, default_denies_inside_addresses)
{
    dp_guard_t g;
    char err[128];
    cr_assert_eq(dp_guard_init(&g, NULL, 0, err, sizeof err), 0);
    const struct {
        const char *a, *why;
    } refused[] = {
        {"127.0.0.1", "loopback"},
        {"127.255.255.254", "loopback"},
        {"0.0.0.0", "unspecified"},
        {"10.2.3.4", "private"},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"192.168.1.1", "private"},
        {"169.254.169.254", "link-local"}, /* cloud metadata */
        {"100.64.0.1", "carrier-grade NAT"},
        {"224.0.0.1", "multicast"},
        {"239.255.255.250", "multicast"},
        {"255.255.255.255", "broadcast"},
        {"240.0.0.1", "reserved"},
        {"::1", "loopback"},
        {"::", "unspecified"},
        {"fd12:3456::1", "unique-local"},
        {"fc00::1", "unique-local"},
        {"fe80::1", "link-local"},
        {"ff02::1", "multicast"},
        {"::ffff:127.0.0.1", "loopback"}, /* IPv4-mapped */
        {"::ffff:10.0.0.1", "private"},   /* IPv4-mapped */
        {"::127.0.0.1", "IPv4-compatible"},
        {"64:ff9b::7f00:1", "loopback"}, /* NAT64 of 127.0.0.1 */
        {"2002:c0a8:101::1", "private"}, /* 6to4 of 192.168.1.1 */
    };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        const char *why;
        cr_expect_not(s_check(&g, refused[k].a, &why), "%s allowed",
                      refused[k].a);
        cr_expect(why && strcmp(why, refused[k].why) == 0, "%s: %s, want %s",
                  refused[k].a, why ? why : "(null)", refused[k].why);
    }
    const char *ok[] = {"8.8.8.8",          "1.1.1.1",         "172.32.0.1",
                        "100.128.0.1",      "2606:4700::1111", "::ffff:8.8.8.8",
                        "64:ff9b::808:808", "2002:808:808::1", "11.0.0.1"};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        const char *why;
        cr_expect(s_check(&g, ok[k], &why), "%s refused (%s)", ok[k],
                  why ? why : "");
    }
}

Test(guard, allow_list_wins)
{
    dp_guard_t g;
    char err[128];
    const char *allow[] = {"127.0.0.0/8", "::1/128,10.1.0.0/16"};
    cr_assert_eq(dp_guard_init(&g, allow, 2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(g.nallow, 3);
    const char *why;
    cr_assert(s_check(&g, "127.0.0.1", &why));
    cr_assert(s_check(&g, "127.1.2.3", &why));
    cr_assert(s_check(&g, "::ffff:127.0.0.1", &why));
    cr_assert(s_check(&g, "64:ff9b::7f00:1", &why));
    cr_assert(s_check(&g, "::1", &why));
    cr_assert(s_check(&g, "10.1.200.3", &why));
    cr_assert_not(s_check(&g, "10.2.0.1", &why));
    cr_assert_not(s_check(&g, "192.168.0.1", &why));
    const char *all[] = {"0.0.0.0/0", "::/0"};
    cr_assert_eq(dp_guard_init(&g, all, 2, err, sizeof err), 0);
    cr_assert(s_check(&g, "10.2.0.1", &why));
    cr_assert(s_check(&g, "fe80::1", &why));
    const char *bad[] = {"10.0.0.0/8,nonsense"};
    cr_assert_eq(dp_guard_init(&g, bad, 1, err, sizeof err), DP_ERR_INVALID);
    cr_assert(strstr(err, "nonsense"), "%s", err);
}
