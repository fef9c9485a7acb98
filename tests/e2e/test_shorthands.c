/*
 * test_shorthands.c - `dpool factor|isprime|hash|download` end to end: the
 * real dpool command on an embedded pool (a local one: the real child
 * programs dpool-worker-cpu and dpool-worker-io under the client), checked
 * against references: GNU factor, sha256sum/md5sum, Python's hashlib, and files
 * served by a real HTTP server on loopback.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dp_httpd.h"

#define OUT_MAX (4u << 20)
#define N_RANDOM 300
#define N_FILES 40
#define FILE_BYTES (256u * 1024)

static char s_tmp[] = "/tmp/dp-short-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(s_tmp));
    setenv("DPOOL_BIN_DIR", DP_BIN_DIR, 1);
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_tmp);
    cr_assert_eq(system(cmd), 0);
}

/* run: a shell command line; its stdout into out (NUL-terminated), its exit
 * status returned. */
static int run(const char *cmdline, char *out, size_t len)
{
    FILE *p = popen(cmdline, "r");
    cr_assert_not_null(p, "popen %s", cmdline);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static uint64_t s_rng = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

TestSuite(shorthands, .init = setup, .fini = teardown, .timeout = 120);

Test(shorthands, factor_equals_gnu_factor)
{
    char list[512], cmd[1024];
    snprintf(list, sizeof list, "%s/nums", s_tmp);
    FILE *f = fopen(list, "w");
    cr_assert_not_null(f);
    for (int k = 0; k < N_RANDOM; k++) {
        uint64_t hi = rnd(), lo = rnd();
        if (k % 3 == 0) /* above 2^64: 80 to 100 bits */
            fprintf(f, "%llu%05llu\n", (unsigned long long)(hi >> 4),
                    (unsigned long long)(lo % 100000));
        else
            fprintf(f, "%llu\n", (unsigned long long)(hi >> (k % 40)));
    }
    fputs("1\n170141183460469231731687303715884105727\n", f);
    fclose(f);
    char *mine = malloc(OUT_MAX), *gnu = malloc(OUT_MAX);
    snprintf(cmd, sizeof cmd, DP_BIN_DIR "/dpool factor -p 2 < %s", list);
    cr_assert_eq(run(cmd, mine, OUT_MAX), 0, "dpool factor failed");
    snprintf(cmd, sizeof cmd, "/usr/bin/factor < %s", list);
    cr_assert_eq(run(cmd, gnu, OUT_MAX), 0);
    cr_assert_str_eq(mine, gnu);
    free(mine);
    free(gnu);
}

Test(shorthands, isprime_known_values_and_bad_input)
{
    char out[4096];
    int rc =
        run(DP_BIN_DIR "/dpool isprime 2 1 0 561 2047 "
                       "18446744073709551557 18446744073709551615 "
                       "170141183460469231731687303715884105727 2>/dev/null",
            out, sizeof out);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "2: prime\n1: not prime\n0: not prime\n"
                          "561: not prime\n2047: not prime\n"
                          "18446744073709551557: prime\n"
                          "18446744073709551615: not prime\n"
                          "170141183460469231731687303715884105727: prime\n");
    rc = run(DP_BIN_DIR "/dpool isprime --format json -- -5 7 2>&1", out,
             sizeof out);
    cr_assert_eq(rc, 1, "a bad input makes the batch exit 1");
    cr_assert_not_null(strstr(out, "\"name\":\"INVALID\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"input\":\"7\",\"ok\":true"), "%s", out);
}

static void write_file(const char *path, size_t n, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    for (size_t k = 0; k < n; k++)
        fputc((int)((k * 2654435761u + seed) >> 7 & 0xff), f);
    fclose(f);
}

Test(shorthands, hash_equals_coreutils_and_hashlib)
{
    char a[512], b[512], cmd[2048], mine[8192], ref[8192];
    snprintf(a, sizeof a, "%s/book one.txt", s_tmp);
    snprintf(b, sizeof b, "%s/empty", s_tmp);
    write_file(a, 100000, 7);
    write_file(b, 0, 0);
    for (int k = 0; k < 2; k++) {
        const char *algo = k ? "md5" : "sha256";
        snprintf(cmd, sizeof cmd,
                 DP_BIN_DIR "/dpool hash --algo %s '%s' '%s'"
                            " | sed 's/^.*: //'",
                 algo, a, b);
        cr_assert_eq(run(cmd, mine, sizeof mine), 0);
        snprintf(cmd, sizeof cmd, "%ssum '%s' '%s' | cut -d' ' -f1", algo, a,
                 b);
        cr_assert_eq(run(cmd, ref, sizeof ref), 0);
        cr_assert_str_eq(mine, ref, "%s", algo);
    }
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no /usr/bin/python3 for the PBKDF2 reference");
    snprintf(cmd, sizeof cmd,
             DP_BIN_DIR
             "/dpool hash --algo sha512 "
             "--pbkdf2 2000 --salt salt --dklen 40 '%s' | sed 's/^.*: //'",
             a);
    cr_assert_eq(run(cmd, mine, sizeof mine), 0);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import hashlib,sys;"
             "print(hashlib.pbkdf2_hmac('sha512', open(sys.argv[1],'rb')"
             ".read(), b'salt', 2000, 40).hex())\" '%s'",
             a);
    cr_assert_eq(run(cmd, ref, sizeof ref), 0);
    cr_assert_str_eq(mine, ref);
    cr_assert_eq(run(DP_BIN_DIR "/dpool hash --algo nosuch /etc/hostname "
                                "2>&1",
                     mine, sizeof mine),
                 1);
    cr_assert_not_null(strstr(mine, "UNKNOWN_ALGO"), "%s", mine);
}

Test(shorthands, download_many_files_byte_identical)
{
    char docroot[512], outdir[512], cmd[4096], out[65536];
    snprintf(docroot, sizeof docroot, "%s/www", s_tmp);
    snprintf(outdir, sizeof outdir, "%s/got", s_tmp);
    cr_assert_eq(mkdir(docroot, 0755), 0);
    cr_assert_eq(mkdir(outdir, 0755), 0);
    for (int k = 0; k < N_FILES; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/f%02d.bin", docroot, k);
        write_file(p, FILE_BYTES, (unsigned)k);
    }
    dp_httpd_opts_t o = {.docroot = docroot};
    dp_httpd_t *h = dp_httpd_start(&o);
    cr_assert_not_null(h);
    char list[512];
    snprintf(list, sizeof list, "%s/urls", s_tmp);
    FILE *f = fopen(list, "w");
    for (int k = 0; k < N_FILES; k++) {
        char path[64], url[256];
        snprintf(path, sizeof path, "/f%02d.bin", k);
        dp_httpd_url(h, path, url, sizeof url);
        fprintf(f, "%s\n", url);
    }
    fclose(f);
    /* URLs from stdin, many at once in the worker's io child */
    snprintf(cmd, sizeof cmd, DP_BIN_DIR "/dpool download -o %s < %s", outdir,
             list);
    int rc = run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    snprintf(cmd, sizeof cmd, "diff -r %s %s && echo same", docroot, outdir);
    cr_assert_eq(run(cmd, out, sizeof out), 0);
    cr_assert_str_eq(out, "same\n");
    /* a 404 is an error result; the batch goes on, exit 1 */
    char u404[256], uok[256];
    dp_httpd_url(h, "/status/404", u404, sizeof u404);
    dp_httpd_url(h, "/f00.bin", uok, sizeof uok);
    snprintf(cmd, sizeof cmd,
             DP_BIN_DIR "/dpool download --format json "
                        "-o %s %s %s",
             outdir, u404, uok);
    rc = run(cmd, out, sizeof out);
    cr_assert_eq(rc, 1);
    cr_assert_not_null(strstr(out, "\"name\":\"HTTP\""), "%s", out);
    cr_assert_not_null(strstr(out, "f00.bin.1"), "no overwrite: %s", out);
    /* a download starts no cpu child, even with -p: only the io child
     * (the pool's debug log names each child it starts) */
    snprintf(cmd, sizeof cmd,
             "DPOOL_LOG=debug " DP_BIN_DIR "/dpool -p 2 download -o %s %s "
             "2>&1 >/dev/null",
             outdir, uok);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "started io child"), "%s", out);
    cr_assert_null(strstr(out, "started cpu child"), "%s", out);
    dp_httpd_stop(&h);
}
