/*
 * test_keys.c - common/dp_keys.c: keygen files and modes, loading, the
 * refusal of a secret key others can read, key directories, mismatched
 * and malformed files, CURVE socket options.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_keys.h"
#include "dpool.h"

static char s_dir[PATH_MAX];

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/dp_keys_XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_expect_eq(system(cmd), 0);
}

static void s_path(char *buf, size_t len, const char *file)
{
    snprintf(buf, len, "%s/%s", s_dir, file);
}

static void s_write(const char *file, const char *text, int mode)
{
    char p[PATH_MAX + 64];
    s_path(p, sizeof p, file);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(p, (mode_t)mode), 0);
}

TestSuite(keys, .init = s_setup, .fini = s_teardown);

Test(keys, generate_writes_both_files_with_modes)
{
    char err[DP_KEY_ERR_MAX], kp_path[PATH_MAX + 64], pub_path[PATH_MAX + 64];
    cr_assert_eq(dp_keys_generate(s_dir, "alice", err, sizeof err), 0, "%s",
                 err);
    s_path(kp_path, sizeof kp_path, "alice.key");
    s_path(pub_path, sizeof pub_path, "alice.pub");
    struct stat st;
    cr_assert_eq(stat(kp_path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(stat(pub_path, &st), 0);
    cr_assert_eq(st.st_mode & 0077, 0044 & st.st_mode);
    dp_keypair_t kp;
    char pub[DP_KEY_Z85_LEN + 1];
    cr_assert_eq(dp_keys_load_secret(kp_path, &kp, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(dp_keys_load_public(pub_path, pub, err, sizeof err), 0);
    cr_assert_str_eq(kp.pub, pub);
    cr_assert_eq(strlen(kp.sec), DP_KEY_Z85_LEN);
    /* the public key of a .key file reads too (a broker key given whole) */
    cr_assert_eq(dp_keys_load_public(kp_path, pub, err, sizeof err), 0);
    cr_assert_str_eq(kp.pub, pub);
    /* the files say what they are */
    char text[256];
    FILE *f = fopen(kp_path, "r");
    cr_assert_not_null(fgets(text, sizeof text, f));
    fclose(f);
    cr_assert(text[0] == '#' && strstr(text, "secret"), "%s", text);
}

Test(keys, generate_never_overwrites)
{
    char err[DP_KEY_ERR_MAX];
    cr_assert_eq(dp_keys_generate(s_dir, "w1", err, sizeof err), 0);
    cr_assert_eq(dp_keys_generate(s_dir, "w1", err, sizeof err), DP_ERR_IO);
    cr_assert(strstr(err, "w1.key"), "%s", err);
}

Test(keys, bad_names_refused)
{
    char err[DP_KEY_ERR_MAX];
    const char *bad[] = {"", ".hidden", "a/b", "../x", "sp ace", "t\tab"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        cr_expect_eq(dp_keys_generate(s_dir, bad[k], err, sizeof err),
                     DP_ERR_INVALID, "%s", bad[k]);
    cr_assert(dp_keys_name_ok("host-1.example_2"));
}

Test(keys, secret_readable_by_others_refused)
{
    char err[DP_KEY_ERR_MAX], p[PATH_MAX + 64];
    cr_assert_eq(dp_keys_generate(s_dir, "bob", err, sizeof err), 0);
    s_path(p, sizeof p, "bob.key");
    int modes[] = {0640, 0604, 0660, 0644, 0700 | 0004};
    dp_keypair_t kp;
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        cr_assert_eq(chmod(p, (mode_t)modes[k]), 0);
        cr_expect_eq(dp_keys_load_secret(p, &kp, err, sizeof err),
                     DP_ERR_INVALID, "mode %o", modes[k]);
        cr_expect(strstr(err, "chmod 600"), "%s", err);
    }
    cr_assert_eq(chmod(p, 0400), 0);
    cr_assert_eq(dp_keys_load_secret(p, &kp, err, sizeof err), 0, "%s", err);
}

Test(keys, malformed_and_mismatched_files_refused)
{
    char err[DP_KEY_ERR_MAX], p[PATH_MAX + 64], pub[DP_KEY_Z85_LEN + 1];
    dp_keypair_t kp;
    char a_pub[41], a_sec[41], b_pub[41], b_sec[41], text[512];
    cr_assert_eq(zmq_curve_keypair(a_pub, a_sec), 0);
    cr_assert_eq(zmq_curve_keypair(b_pub, b_sec), 0);
    snprintf(text, sizeof text, "public-key = %s\nsecret-key = %s\n", b_pub,
             a_sec);
    s_write("mix.key", text, 0600);
    s_path(p, sizeof p, "mix.key");
    cr_assert_eq(dp_keys_load_secret(p, &kp, err, sizeof err), DP_ERR_INVALID);
    cr_assert(strstr(err, "do not match"), "%s", err);
    /* a secret alone is enough: the public key is derived */
    snprintf(text, sizeof text, "# comment\n\n  secret-key = %s\n", a_sec);
    s_write("only.key", text, 0600);
    s_path(p, sizeof p, "only.key");
    cr_assert_eq(dp_keys_load_secret(p, &kp, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(kp.pub, a_pub);
    const char *bad[] = {"", "public-key = short\n",
                         "public-key = 0123456789012345678901234567890123456789"
                         "0\n",
                         "# public-key = nothing here\n"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        s_write("bad.pub", bad[k], 0644);
        s_path(p, sizeof p, "bad.pub");
        cr_expect_neq(dp_keys_load_public(p, pub, err, sizeof err), 0, "%s",
                      bad[k]);
    }
    s_path(p, sizeof p, "missing.pub");
    cr_assert_eq(dp_keys_load_public(p, pub, err, sizeof err), DP_ERR_IO);
}

Test(keys, keyset_loads_a_directory)
{
    char err[DP_KEY_ERR_MAX], p[PATH_MAX + 64];
    cr_assert_eq(dp_keys_generate(s_dir, "w1", err, sizeof err), 0);
    cr_assert_eq(dp_keys_generate(s_dir, "w2", err, sizeof err), 0);
    s_write("README", "not a key\n", 0644);
    dp_keyset_t s = {NULL, 0};
    cr_assert_eq(dp_keyset_load(&s, s_dir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(s.n, 2);
    dp_keypair_t kp;
    uint8_t bin[DP_KEY_BIN_LEN];
    s_path(p, sizeof p, "w2.key");
    cr_assert_eq(dp_keys_load_secret(p, &kp, err, sizeof err), 0);
    cr_assert_not_null(zmq_z85_decode(bin, kp.pub));
    cr_assert_str_eq(dp_keyset_find(&s, bin), "w2");
    bin[0] ^= 1;
    cr_assert_null(dp_keyset_find(&s, bin));
    /* a removed key is gone after a reload */
    s_path(p, sizeof p, "w2.pub");
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(dp_keyset_load(&s, s_dir, err, sizeof err), 0);
    cr_assert_eq(s.n, 1);
    bin[0] ^= 1;
    cr_assert_null(dp_keyset_find(&s, bin));
    /* a broken file fails the load and keeps what was there */
    s_write("broken.pub", "public-key = nope\n", 0644);
    cr_assert_neq(dp_keyset_load(&s, s_dir, err, sizeof err), 0);
    cr_assert_eq(s.n, 1);
    dp_keyset_release(&s);
    cr_assert_eq(dp_keyset_load(&s, "/nonexistent/dir", err, sizeof err),
                 DP_ERR_IO);
}

Test(keys, client_options_need_both_files)
{
    char err[DP_KEY_ERR_MAX], k[PATH_MAX + 64], pub[PATH_MAX + 64];
    cr_assert_eq(dp_keys_generate(s_dir, "c", err, sizeof err), 0);
    cr_assert_eq(dp_keys_generate(s_dir, "srv", err, sizeof err), 0);
    s_path(k, sizeof k, "c.key");
    s_path(pub, sizeof pub, "srv.pub");
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    cr_assert_eq(dp_keys_client(sock, NULL, NULL, err, sizeof err), 0);
    cr_assert_eq(dp_keys_client(sock, k, NULL, err, sizeof err),
                 DP_ERR_INVALID);
    cr_assert_eq(dp_keys_client(sock, k, pub, err, sizeof err), 0, "%s", err);
    int mech = 0;
    size_t sz = sizeof mech;
    zmq_getsockopt(sock, ZMQ_MECHANISM, &mech, &sz);
    cr_assert_eq(mech, ZMQ_CURVE);
    zmq_close(sock);
    zmq_ctx_term(ctx);
}

/* Z85 keys may begin with '=' or ':' (both in the alphabet): the parser
 * takes exactly one '=' as the separator. Many pairs so that some keys do. */
Test(keys, keys_starting_with_separator_chars)
{
    char err[DP_KEY_ERR_MAX];
    int odd = 0;
    for (int k = 0; k < 400; k++) {
        char name[16], p[PATH_MAX + 64], pub[DP_KEY_Z85_LEN + 1];
        snprintf(name, sizeof name, "k%d", k);
        cr_assert_eq(dp_keys_generate(s_dir, name, err, sizeof err), 0);
        snprintf(p, sizeof p, "%s/%s.key", s_dir, name);
        dp_keypair_t kp;
        cr_assert_eq(dp_keys_load_secret(p, &kp, err, sizeof err), 0, "%s",
                     err);
        snprintf(p, sizeof p, "%s/%s.pub", s_dir, name);
        cr_assert_eq(dp_keys_load_public(p, pub, err, sizeof err), 0, "%s",
                     err);
        cr_assert_str_eq(pub, kp.pub);
        odd += strchr("=: ", pub[0]) != NULL || strchr("=:", kp.sec[0]);
    }
    cr_log_info("%d of 400 keys began with '=' or ':'", odd);
    const char *pairs = "public-key=0000000000000000000000000000000000000000\n";
    s_write("tight.pub", pairs, 0644);
    char p[PATH_MAX + 64], pub[DP_KEY_Z85_LEN + 1];
    snprintf(p, sizeof p, "%s/tight.pub", s_dir);
    cr_assert_eq(dp_keys_load_public(p, pub, err, sizeof err), 0, "%s", err);
}
