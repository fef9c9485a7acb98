/*
 * cli_lazy.c - libcrypto, loaded when first used by the dpool command. It
 * calls OpenSSL only for `dpool hash --list` (the digests OpenSSL has) and
 * for the name of a download body whose URL has no usable last segment
 * (its SHA-256, worker/jobs/dl_name.c), both rare; libcrypto's loading
 * costs every start about 2.2 ms on the reference VM (an empty main()
 * linked with and without -lcrypto: 4.2 vs 2.0 ms). So, as libzmq in
 * client/dp_lazy.c, the functions it calls are defined here (hidden) as
 * forwarders to libcrypto.so.3, dlopen()ed by the first call, and the
 * linker's --as-needed drops libcrypto from the command (test_layering).
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

#include "dp_lazy.h"

#define S_LIB "libcrypto.so.3"
#define S_HIDDEN __attribute__((visibility("hidden")))

/* XX(return type, name, (parameters), (arguments), value on failure);
 * pointers to OpenSSL's types as void * (openssl/evp.h not included: its
 * declarations would export these definitions). */
#define S_CRYPTO_FUNCS(XX)                                                     \
    XX(int, EVP_Digest,                                                        \
       (const void *d, size_t n, unsigned char *md, unsigned *len,             \
        const void *type, void *impl),                                         \
       (d, n, md, len, type, impl), 0)                                         \
    XX(const void *, EVP_sha256, (void), (), NULL)                             \
    XX(const char *, EVP_MD_get0_name, (const void *md), (md), NULL)           \
    XX(unsigned long, EVP_MD_get_flags, (const void *md), (md), 0)             \
    XX(int, EVP_MD_get_size, (const void *md), (md), -1)                       \
    XX(int, EVP_MD_is_a, (const void *md, const char *name), (md, name), 0)

typedef void (*s_each_fn)(void *md, void *arg);

#define S_PTR(ret, name, params, args, fail) static ret(*s_##name) params;
S_CRYPTO_FUNCS(S_PTR)
#undef S_PTR
static void (*s_EVP_MD_do_all_provided)(void *ctx, s_each_fn fn, void *arg);

#define S_NAME(ret, name, params, args, fail) #name,
#define S_SLOT(ret, name, params, args, fail) (void **)&s_##name,
static const char *const s_names[] = {
    S_CRYPTO_FUNCS(S_NAME) "EVP_MD_do_all_provided"};
static void **const s_slots[] = {S_CRYPTO_FUNCS(S_SLOT)(void **) &
                                 s_EVP_MD_do_all_provided};
#undef S_NAME
#undef S_SLOT

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_loaded; /* 1: every pointer is set */

static void s_load(void)
{
    s_loaded = dp_lazy_load(S_LIB, s_names, s_slots,
                            sizeof s_names / sizeof s_names[0]);
}

static int s_ready(void)
{
    pthread_once(&s_once, s_load);
    return s_loaded;
}

#define S_DEF(ret, name, params, args, fail)                                   \
    S_HIDDEN ret name params;                                                  \
    ret name params                                                            \
    {                                                                          \
        return s_ready() ? s_##name args : (fail);                             \
    }
S_CRYPTO_FUNCS(S_DEF)
#undef S_DEF

S_HIDDEN void EVP_MD_do_all_provided(void *ctx, s_each_fn fn, void *arg);
void EVP_MD_do_all_provided(void *ctx, s_each_fn fn, void *arg)
{
    if (s_ready()) /* else no digest is listed */
        s_EVP_MD_do_all_provided(ctx, fn, arg);
}
