/*
 * num_sieve.c - the primes up to a limit, in order, from a segmented sieve
 * of Eratosthenes over odd numbers (ECM's bounds reach 10^8; a segment is
 * DP_NUM_SIEVE_SEG bytes whatever the limit).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dp_num.h"

/* s_base: the odd primes up to root into it->base. */
static int s_base(dp_num_primes_t *it, uint64_t root)
{
    size_t half = (size_t)(root / 2) + 1; /* flag[k]: 2k + 1 composite */
    uint8_t *flag = calloc(half, 1);
    it->base = malloc(half * sizeof *it->base);
    if (!flag || !it->base) {
        free(flag);
        return DP_ERR_NOMEM;
    }
    for (size_t k = 1; k < half; k++) {
        if (flag[k])
            continue;
        uint64_t p = 2 * k + 1;
        it->base[it->nbase++] = (uint32_t)p;
        for (uint64_t m = p * p; m <= root; m += 2 * p)
            flag[m / 2] = 1;
    }
    free(flag);
    return 0;
}

/* s_segment: sieve the odd numbers lo, lo + 2, ... of one segment. */
static void s_segment(dp_num_primes_t *it)
{
    uint64_t hi = it->lo + 2 * (uint64_t)(DP_NUM_SIEVE_SEG - 1);
    memset(it->seg, 0, DP_NUM_SIEVE_SEG);
    for (size_t k = 0; k < it->nbase; k++) {
        uint64_t p = it->base[k];
        if (p * p > hi)
            break;
        uint64_t m = (it->lo + p - 1) / p * p;
        if (!(m & 1))
            m += p;
        if (m < p * p)
            m = p * p;
        for (; m <= hi; m += 2 * p)
            it->seg[(m - it->lo) / 2] = 1;
    }
}

int dp_num_primes_init(dp_num_primes_t *it, uint64_t limit)
{
    *it = (dp_num_primes_t){.limit = limit, .lo = 3};
    uint64_t root = (uint64_t)sqrt((double)limit) + 1;
    it->seg = malloc(DP_NUM_SIEVE_SEG);
    if (!it->seg || s_base(it, root)) {
        dp_num_primes_free(it);
        return DP_ERR_NOMEM;
    }
    s_segment(it);
    return 0;
}

uint64_t dp_num_primes_next(dp_num_primes_t *it)
{
    if (!it->two_done) {
        it->two_done = true;
        return it->limit >= 2 ? 2 : 0;
    }
    for (;;) {
        while (it->pos < DP_NUM_SIEVE_SEG) {
            uint64_t v = it->lo + 2 * (uint64_t)it->pos;
            if (v > it->limit)
                return 0;
            if (!it->seg[it->pos++])
                return v;
        }
        it->lo += 2 * (uint64_t)DP_NUM_SIEVE_SEG;
        it->pos = 0;
        s_segment(it);
    }
}

void dp_num_primes_free(dp_num_primes_t *it)
{
    free(it->base);
    free(it->seg);
    *it = (dp_num_primes_t){0};
}
