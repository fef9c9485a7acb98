/*
 * dp_lazy.c - libzmq, loaded when first used. libdpool and the dpool
 * command define the ZeroMQ functions they call (hidden: nothing outside
 * them sees these definitions) as forwarders to libzmq.so.5, which is
 * dlopen()ed by the first call. Neither names libzmq as a needed library
 * (the linker's --as-needed drops it: every symbol is defined here), so a
 * program that only ever runs a local pool never loads it.
 *
 * Why: libzmq's library tree (libstdc++, libsodium, libpgm, libnorm,
 * libgssapi_krb5 and ~10 more) costs every start of a program that links
 * it about 4.5 ms on the reference VM (`perf stat` of an empty main()
 * linked with and without -lzmq: 6.5 vs 2.0 ms), a quarter of a short
 * `dpool` run on a local pool, which needs no socket at all.
 *
 * If libzmq cannot be loaded the forwarders fail as libzmq's own
 * functions do (NULL, -1 with errno ENOSYS) and the reason is said once
 * on stderr. Only the functions libdpool and dpool call are here; the
 * ctest test_layering checks that neither needs libzmq at start.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dp_lazy.h"

#define S_LIB "libzmq.so.5"
#define S_HIDDEN __attribute__((visibility("hidden")))

/* XX(return type, name, (parameters), (arguments), value on failure).
 * Parameter types are ABI-equal spellings of zmq.h's (pointers as void *):
 * this file does not include zmq.h, whose declarations would make these
 * definitions exported. */
#define S_ZMQ_FUNCS(XX)                                                        \
    XX(int, zmq_errno, (void), (), ENOSYS)                                     \
    XX(const char *, zmq_strerror, (int e), (e), "libzmq could not be loaded") \
    XX(void *, zmq_ctx_new, (void), (), NULL)                                  \
    XX(int, zmq_ctx_term, (void *c), (c), -1)                                  \
    XX(void *, zmq_socket, (void *c, int t), (c, t), NULL)                     \
    XX(int, zmq_close, (void *s), (s), -1)                                     \
    XX(int, zmq_connect, (void *s, const char *a), (s, a), -1)                 \
    XX(int, zmq_setsockopt, (void *s, int o, const void *v, size_t n),         \
       (s, o, v, n), -1)                                                       \
    XX(int, zmq_getsockopt, (void *s, int o, void *v, size_t *n),              \
       (s, o, v, n), -1)                                                       \
    XX(int, zmq_send, (void *s, const void *b, size_t n, int f), (s, b, n, f), \
       -1)                                                                     \
    XX(int, zmq_recv, (void *s, void *b, size_t n, int f), (s, b, n, f), -1)   \
    XX(int, zmq_poll, (void *items, int n, long t), (items, n, t), -1)         \
    XX(int, zmq_msg_init, (void *m), (m), -1)                                  \
    XX(int, zmq_msg_init_data,                                                 \
       (void *m, void *d, size_t n, void (*f)(void *, void *), void *h),       \
       (m, d, n, f, h), -1)                                                    \
    XX(int, zmq_msg_send, (void *m, void *s, int f), (m, s, f), -1)            \
    XX(int, zmq_msg_recv, (void *m, void *s, int f), (m, s, f), -1)            \
    XX(int, zmq_msg_close, (void *m), (m), -1)                                 \
    XX(int, zmq_msg_move, (void *d, void *s), (d, s), -1)                      \
    XX(void *, zmq_msg_data, (void *m), (m), NULL)                             \
    XX(size_t, zmq_msg_size, (const void *m), (m), 0)                          \
    XX(uint8_t *, zmq_z85_decode, (uint8_t * d, const char *s), (d, s), NULL)  \
    XX(int, zmq_curve_keypair, (char *pub, char *sec), (pub, sec), -1)         \
    XX(int, zmq_curve_public, (char *pub, const char *sec), (pub, sec), -1)

#define S_PTR(ret, name, params, args, fail) static ret(*s_##name) params;
S_ZMQ_FUNCS(S_PTR)
#undef S_PTR

int dp_lazy_load(const char *lib, const char *const *names, void **const *slots,
                 size_t n)
{
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dpool: cannot load %s: %s\n", lib, dlerror());
        return 0;
    }
    for (size_t k = 0; k < n; k++) {
        if (!(*slots[k] = dlsym(h, names[k]))) {
            fprintf(stderr, "dpool: %s has no %s\n", lib, names[k]);
            return 0;
        }
    }
    return 1;
}

#define S_NAME(ret, name, params, args, fail) #name,
#define S_SLOT(ret, name, params, args, fail) (void **)&s_##name,
static const char *const s_names[] = {S_ZMQ_FUNCS(S_NAME)};
static void **const s_slots[] = {S_ZMQ_FUNCS(S_SLOT)};
#undef S_NAME
#undef S_SLOT

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_loaded; /* 1: every pointer is set */

static void s_load(void)
{
    s_loaded = dp_lazy_load(S_LIB, s_names, s_slots,
                            sizeof s_names / sizeof s_names[0]);
}

/* s_ready: libzmq is loaded (the first call loads it); else errno is
 * ENOSYS. */
static int s_ready(void)
{
    pthread_once(&s_once, s_load);
    if (!s_loaded)
        errno = ENOSYS;
    return s_loaded;
}

#define S_DEF(ret, name, params, args, fail)                                   \
    S_HIDDEN ret name params;                                                  \
    ret name params                                                            \
    {                                                                          \
        return s_ready() ? s_##name args : (fail);                             \
    }
S_ZMQ_FUNCS(S_DEF)
#undef S_DEF
