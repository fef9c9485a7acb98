/*
 * test_dl_sink.c - worker/jobs/dl_sink.c: bodies written and hashed on the
 * sink's thread. Files and digests are checked against the bytes put, for
 * bodies interleaved in pieces of every size, more bodies at once than
 * the sink has blocks (some then go inline), a failing file, a body
 * dropped and started again (a retry), and bodies kept in memory.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dl_sink.h"
#include "dpool.h"

#define T_WAIT_MS 10000

static int g_efd = -1;
static unsigned g_wakes;
static char g_dir[] = "/tmp/dp_sink_XXXXXX";

static void s_setup(void)
{
    g_efd = eventfd(0, EFD_CLOEXEC);
    cr_assert_geq(g_efd, 0);
    cr_assert_not_null(mkdtemp(g_dir));
}

static void s_teardown(void)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    cr_expect_eq(system(cmd), 0);
    close(g_efd);
}

TestSuite(dl_sink, .init = s_setup, .fini = s_teardown);

/* s_wake: the sink's callback (its thread): count and signal. */
static void s_wake(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&g_wakes, 1, __ATOMIC_RELAXED);
    uint64_t one = 1;
    cr_assert_eq(write(g_efd, &one, sizeof one), (ssize_t)sizeof one);
}

/* s_collect: bodies back from s until `want` came (their count). */
static unsigned s_collect(dp_sink_t *s, unsigned want, dp_body_t **got)
{
    unsigned n = 0;
    while (n < want) {
        for (dp_body_t *b = dp_sink_collect(s); b; b = b->next)
            got[n++] = b;
        if (n == want)
            break;
        struct pollfd pf = {g_efd, POLLIN, 0};
        cr_assert_eq(poll(&pf, 1, T_WAIT_MS), 1, "no body back in time");
        uint64_t v;
        cr_assert_eq(read(g_efd, &v, sizeof v), (ssize_t)sizeof v);
    }
    return n;
}

static void s_hex(const unsigned char *p, size_t n, char *hex)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(p, n, md);
    for (int k = 0; k < SHA256_DIGEST_LENGTH; k++)
        sprintf(hex + 2 * k, "%02x", md[k]);
}

static unsigned char *s_pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    for (size_t k = 0; k < n; k++)
        p[k] = (unsigned char)(seed * 131 + k * 7 + (k >> 11));
    return p;
}

/* s_file_is: the file holds exactly p[0..n). */
static void s_file_is(const char *path, const unsigned char *p, size_t n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    unsigned char *q = malloc(n + 1);
    size_t got = fread(q, 1, n + 1, f);
    fclose(f);
    cr_assert_eq(got, n, "%s: %zu bytes, %zu put", path, got, n);
    cr_assert(memcmp(p, q, n) == 0, "%s differs", path);
    free(q);
}

typedef struct {
    dp_body_t b;
    char path[64];
    unsigned char *p;
    size_t n, off;
    int fd;
} t_body_t;

/* DP_SINK_BLOCKS + 16 bodies (more than the sink has blocks) put round-robin in pieces of
 * 1..20000 bytes, sizes across the block's edges: each file and digest
 * is its own body's. */
Test(dl_sink, interleaved_bodies_more_than_blocks)
{
    enum { N = DP_SINK_BLOCKS + 16 };
    static const size_t sizes[] = {0,
                                   1,
                                   16384,
                                   DP_SINK_BLOCK - 1,
                                   DP_SINK_BLOCK,
                                   DP_SINK_BLOCK + 1,
                                   3 * DP_SINK_BLOCK,
                                   300007};
    static t_body_t t[N];
    dp_sink_t *s = dp_sink_new(s_wake, NULL);
    cr_assert_not_null(s);
    unsigned seed = 12345;
    for (unsigned k = 0; k < N; k++) {
        t[k].n = sizes[k % (sizeof sizes / sizeof sizes[0])] + k;
        t[k].p = s_pattern(t[k].n, k);
        t[k].off = 0;
        snprintf(t[k].path, sizeof t[k].path, "%s/b%u", g_dir, k);
        t[k].fd = open(t[k].path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        cr_assert_geq(t[k].fd, 0);
        dp_body_init(&t[k].b, t[k].fd, t[k].path);
    }
    for (unsigned left = N; left > 0;) {
        left = 0;
        for (unsigned k = 0; k < N; k++) {
            if (t[k].off == t[k].n)
                continue;
            seed = seed * 1103515245u + 12345u;
            size_t piece = 1 + (seed >> 8) % 20000;
            if (piece > t[k].n - t[k].off)
                piece = t[k].n - t[k].off;
            cr_assert_eq(dp_sink_put(s, &t[k].b, t[k].p + t[k].off, piece), 0);
            t[k].off += piece;
            left += t[k].off < t[k].n;
        }
    }
    for (unsigned k = 0; k < N; k++)
        dp_sink_finish(s, &t[(k * 7) % N].b); /* not in order */
    dp_body_t *got[N];
    cr_assert_eq(s_collect(s, N, got), N);
    cr_assert_geq(__atomic_load_n(&g_wakes, __ATOMIC_RELAXED), 1);
    for (unsigned k = 0; k < N; k++) {
        t_body_t *x = (t_body_t *)(void *)got[k];
        char hex[DP_SINK_HEX_LEN];
        s_hex(x->p, x->n, hex);
        cr_assert_eq(x->b.err, 0, "%s", x->b.errmsg);
        cr_assert_str_eq(x->b.hex, hex, "%s", x->path);
        dp_sink_drop(s, &x->b);
        close(x->fd);
        s_file_is(x->path, x->p, x->n);
        free(x->p);
    }
    dp_sink_destroy(&s);
    cr_assert_null(s);
}

/* A file that cannot take the bytes: the thread's failure reaches the
 * caller, from a later put or at the finish, and names the file. */
Test(dl_sink, write_failure_reported)
{
    int fd = open("/dev/full", O_WRONLY);
    cr_assert_geq(fd, 0);
    dp_sink_t *s = dp_sink_new(s_wake, NULL);
    dp_body_t b;
    dp_body_init(&b, fd, "/dev/full");
    unsigned char *p = s_pattern(4 * DP_SINK_BLOCK, 1);
    int put_err = 0;
    for (size_t off = 0; off < 4 * DP_SINK_BLOCK && !put_err; off += 16384)
        put_err = dp_sink_put(s, &b, p + off, 16384);
    cr_assert(put_err == 0 || put_err == DP_ERR_IO, "%d", put_err);
    dp_sink_finish(s, &b);
    dp_body_t *got[1];
    cr_assert_eq(s_collect(s, 1, got), 1);
    cr_assert_eq(got[0], &b);
    cr_assert_eq(b.err, DP_ERR_IO);
    cr_assert(strstr(b.errmsg, "writing /dev/full"), "%s", b.errmsg);
    dp_sink_drop(s, &b);
    cr_assert_eq(b.err, 0);
    dp_sink_destroy(&s);
    close(fd);
    free(p);
}

/* A retry: bytes of a first attempt dropped, the file emptied, a second
 * body put: the digest and the file are the second body's alone. */
Test(dl_sink, dropped_then_again)
{
    char path[64];
    snprintf(path, sizeof path, "%s/retry", g_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    dp_sink_t *s = dp_sink_new(s_wake, NULL);
    dp_body_t b;
    dp_body_init(&b, fd, path);
    size_t n1 = 5 * DP_SINK_BLOCK + 100, n2 = 2 * DP_SINK_BLOCK + 3;
    unsigned char *a = s_pattern(n1, 2), *c = s_pattern(n2, 3);
    cr_assert_eq(dp_sink_put(s, &b, a, n1), 0);
    dp_sink_drop(s, &b); /* the thread is done with every block */
    cr_assert_eq(ftruncate(fd, 0), 0);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    dp_body_init(&b, fd, path);
    cr_assert_eq(dp_sink_put(s, &b, c, n2), 0);
    dp_sink_finish(s, &b);
    dp_body_t *got[1];
    cr_assert_eq(s_collect(s, 1, got), 1);
    char hex[DP_SINK_HEX_LEN];
    s_hex(c, n2, hex);
    cr_assert_eq(b.err, 0, "%s", b.errmsg);
    cr_assert_str_eq(b.hex, hex);
    dp_sink_drop(s, &b);
    close(fd);
    s_file_is(path, c, n2);
    dp_sink_destroy(&s);
    free(a);
    free(c);
}

/* Bodies kept in memory are hashed whole at the finish; the empty one
 * has the empty string's digest. */
Test(dl_sink, memory_bodies)
{
    dp_sink_t *s = dp_sink_new(s_wake, NULL);
    dp_body_t b[2];
    size_t n = 100000;
    unsigned char *p = s_pattern(n, 4);
    dp_body_init(&b[0], -1, NULL);
    dp_body_init(&b[1], -1, NULL);
    b[0].mem = p;
    b[0].mem_len = n;
    dp_sink_finish(s, &b[0]);
    dp_sink_finish(s, &b[1]);
    dp_body_t *got[2];
    cr_assert_eq(s_collect(s, 2, got), 2);
    cr_assert_eq(got[0], &b[0], "oldest first");
    char hex[DP_SINK_HEX_LEN];
    s_hex(p, n, hex);
    cr_assert_str_eq(b[0].hex, hex);
    cr_assert_str_eq(
        b[1].hex,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    dp_sink_drop(s, &b[0]);
    dp_sink_drop(s, &b[1]);
    dp_sink_wait(s);
    dp_sink_destroy(&s);
    free(p);
}
