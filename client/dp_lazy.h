/*
 * dp_lazy.h - loading a shared library on first use (dp_lazy.c): the
 * forwarders of libzmq in libdpool and dpool (dp_lazy.c) and of libcrypto
 * in dpool (cli/cli_lazy.c) resolve their symbols with it.
 */
#ifndef DP_LAZY_H
#define DP_LAZY_H

#include <stddef.h>

/* dp_lazy_load: dlopen lib (RTLD_NOW | RTLD_LOCAL) and set *slots[k] to
 * its symbol names[k] for k < n. 1 when every one is set; else 0, and
 * why is said on stderr. Call it once (pthread_once). */
__attribute__((visibility("hidden"))) int dp_lazy_load(const char *lib,
                                                       const char *const *names,
                                                       void **const *slots,
                                                       size_t n);

#endif
