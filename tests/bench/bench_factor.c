/*
 * bench_factor.c - the factor kernel alone, in one process: reads decimal
 * numbers (one a line, below 2^64) from a file or stdin, factors them all
 * with dp_num_factor, checks each result (factors ascending, prime, their
 * product the number), and prints the best of R passes in ns/number.
 *
 *   python3 -c 'import random; r = random.Random(42); [print(r.randrange(
 *     2**62, 2**64)) for _ in range(20000)]' > w4.txt
 *   build/tests/bench_factor w4.txt 5
 *
 * W4 of tests/bench/compare.py draws the same numbers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dp_num.h"

/* Numbers read at most, and the default number of passes. */
#define S_MAX_NUMS 1000000u
#define S_PASSES0 3
#define S_LINE_MAX 64
#define S_NS_PER_S 1000000000.0

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * S_NS_PER_S + (double)ts.tv_nsec;
}

/* s_check: whether f holds n's factorization (ascending primes). */
static bool s_check(uint64_t n, const dp_factors_t *f)
{
    dp_u128_t prod = 1;
    uint64_t prev = 0;
    for (size_t k = 0; k < f->len; k++) {
        uint64_t p;
        if (!dp_num_get_u64(&f->items[k], &p) || p < prev ||
            !dp_num_isprime_u64(p))
            return false;
        prev = p;
        prod *= p;
        if (prod >> DP_NUM_WORD_BITS)
            return false;
    }
    return prod == n;
}

static size_t s_read(FILE *in, uint64_t *nums)
{
    char line[S_LINE_MAX];
    size_t n = 0;
    while (n < S_MAX_NUMS && fgets(line, sizeof line, in)) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(line, &end, DP_NUM_DEC_BASE);
        if (errno || end == line || v < 1) {
            fprintf(stderr, "bench_factor: bad line %zu\n", n + 1);
            exit(2);
        }
        nums[n++] = v;
    }
    return n;
}

/* s_pass: factor all numbers once; ns per number, or -1 on a failure. */
static double s_pass(const uint64_t *nums, size_t count, bool check)
{
    dp_factors_t f;
    dp_factors_init(&f);
    double t0 = s_now();
    for (size_t i = 0; i < count; i++) {
        dp_num_t n = {.small = nums[i]};
        f.len = 0;
        if (dp_num_factor(&n, 0, &f) || (check && !s_check(nums[i], &f))) {
            fprintf(stderr, "bench_factor: wrong factors of %llu\n",
                    (unsigned long long)nums[i]);
            dp_factors_clear(&f);
            return -1;
        }
    }
    double ns = (s_now() - t0) / (double)count;
    dp_factors_clear(&f);
    return ns;
}

int main(int argc, char **argv)
{
    FILE *in = argc > 1 && argv[1][0] != '-' ? fopen(argv[1], "r") : stdin;
    int passes = argc > 2 ? (int)strtol(argv[2], NULL, DP_NUM_DEC_BASE) : 0;
    uint64_t *nums = malloc(S_MAX_NUMS * sizeof *nums);
    if (!in || !nums) {
        perror("bench_factor");
        return 2;
    }
    size_t count = s_read(in, nums);
    if (in != stdin)
        fclose(in);
    if (count == 0 || s_pass(nums, count, true) < 0)
        return 1;
    double best = -1;
    for (int r = 0; r < (passes > 0 ? passes : S_PASSES0); r++) {
        double ns = s_pass(nums, count, false);
        if (ns < 0)
            return 1;
        if (best < 0 || ns < best)
            best = ns;
    }
    printf("%zu numbers checked; best of %d passes: %.0f ns/number\n", count,
           passes > 0 ? passes : S_PASSES0, best);
    free(nums);
    return 0;
}
