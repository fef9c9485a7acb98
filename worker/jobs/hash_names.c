/*
 * hash_names.c - the digest names the `hash` kernel accepts: Python
 * hashlib's names mapped to OpenSSL's, and the list `dpool hash --list`
 * prints. Kept apart from hash.c so the `dpool` command lists names
 * without linking the kernel.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "dp_hash.h"
#include "dpool.h"

/* Python hashlib's names and the OpenSSL digest each stands for. ALGO is
 * looked up here first (case-insensitively), then handed to OpenSSL as
 * given; dp_hash_list shows an algorithm under its name here if it has one.
 */
static const struct {
    const char *python;
    const char *openssl;
} s_pynames[] = {
    {"md5", "MD5"},
    {"sha1", "SHA1"},
    {"sha224", "SHA2-224"},
    {"sha256", "SHA2-256"},
    {"sha384", "SHA2-384"},
    {"sha512", "SHA2-512"},
    {"sha512_224", "SHA2-512/224"},
    {"sha512_256", "SHA2-512/256"},
    {"sha3_224", "SHA3-224"},
    {"sha3_256", "SHA3-256"},
    {"sha3_384", "SHA3-384"},
    {"sha3_512", "SHA3-512"},
    {"shake_128", "SHAKE-128"},
    {"shake_256", "SHAKE-256"},
    {"blake2b", "BLAKE2B-512"},
    {"blake2s", "BLAKE2S-256"},
    {"md5-sha1", "MD5-SHA1"},
    {"ripemd160", "RIPEMD-160"},
    {"sm3", "SM3"},
};

#define S_NPYNAMES (sizeof s_pynames / sizeof s_pynames[0])

const char *dp_hash_openssl_name(const char *name)
{
    for (size_t k = 0; k < S_NPYNAMES; k++)
        if (strcasecmp(name, s_pynames[k].python) == 0)
            return s_pynames[k].openssl;
    return name;
}

/* A usable digest has a fixed size or is an XOF (skips OpenSSL's "NULL"). */
int dp_hash_md_usable(const EVP_MD *md)
{
    return (EVP_MD_get_flags(md) & EVP_MD_FLAG_XOF) || EVP_MD_get_size(md) > 0;
}

/* ---- the list of accepted names ---- */

typedef struct {
    char **names;
    size_t n;
    size_t cap;
    int rc;
} hash_list_t;

static char *s_list_name(const EVP_MD *md)
{
    const char *name = EVP_MD_get0_name(md);
    for (size_t k = 0; k < S_NPYNAMES; k++)
        if (EVP_MD_is_a(md, s_pynames[k].openssl))
            name = s_pynames[k].python;
    size_t len = strlen(name);
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    for (size_t k = 0; k <= len; k++)
        copy[k] = (char)tolower((unsigned char)name[k]);
    return copy;
}

static void s_list_add(EVP_MD *md, void *arg)
{
    hash_list_t *l = arg;
    if (l->rc || !dp_hash_md_usable(md) || !EVP_MD_get0_name(md))
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : DP_HASH_LIST_INITIAL;
        char **grown = realloc(l->names, cap * sizeof *grown);
        if (!grown) {
            l->rc = DP_ERR_NOMEM;
            return;
        }
        l->names = grown;
        l->cap = cap;
    }
    l->names[l->n] = s_list_name(md);
    if (l->names[l->n])
        l->n++;
    else
        l->rc = DP_ERR_NOMEM;
}

static int s_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dp_hash_list(char ***names, size_t *n)
{
    hash_list_t l = {0};
    EVP_MD_do_all_provided(NULL, s_list_add, &l);
    if (l.rc) {
        dp_hash_list_free(&l.names, l.n);
        *names = NULL;
        *n = 0;
        return l.rc;
    }
    if (l.n)
        qsort(l.names, l.n, sizeof *l.names, s_strcmp);
    size_t kept = 0;
    for (size_t k = 0; k < l.n; k++) {
        if (kept && strcmp(l.names[kept - 1], l.names[k]) == 0)
            free(l.names[k]);
        else
            l.names[kept++] = l.names[k];
    }
    *names = l.names;
    *n = kept;
    return 0;
}

void dp_hash_list_free(char ***names, size_t n)
{
    if (!names || !*names)
        return;
    for (size_t k = 0; k < n; k++)
        free((*names)[k]);
    free(*names);
    *names = NULL;
}

int dp_hash_list_print(FILE *f)
{
    char **names;
    size_t n;
    int rc = dp_hash_list(&names, &n);
    for (size_t k = 0; rc == 0 && k < n; k++)
        if (fprintf(f, "%s\n", names[k]) < 0)
            rc = DP_ERR_IO;
    dp_hash_list_free(&names, n);
    return rc;
}
