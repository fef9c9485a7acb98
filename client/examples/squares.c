/*
 * squares.c - libdpool in a few lines: factor three numbers on an embedded
 * pool (or on the broker named by $DPOOL_BROKER), results in input order,
 * then one job through a future.
 *   build/bin/example-squares
 */
#include <stdio.h>
#include <stdlib.h>

#include "dpool.h"

#define N_INPUTS 3

int main(void)
{
    dp_pool_t *pool;
    int rc = dp_pool_open(getenv("DPOOL_BROKER"), NULL, &pool);
    if (rc) {
        fprintf(stderr, "cannot open the pool: %s\n", dp_strerror(rc));
        return 1;
    }
    dp_value_t args[N_INPUTS];
    for (int k = 0; k < N_INPUTS; k++) {
        args[k] = dp_array(1);
        args[k].v.a.items[0] = dp_uint(1000003u + (unsigned)k);
    }
    dp_map_t *m;
    int failed = 0;
    rc = dp_map_array(pool, "factor", args, N_INPUTS, NULL, &m);
    dp_result_t *r;
    while (!rc && dp_map_next(m, &r) == 0) {
        char *json = dp_value_json(&r->value);
        printf("factor %llu -> %s\n", 1000003ull + r->index,
               r->error ? r->message : json);
        failed += r->error != 0;
        free(json);
        dp_result_free(&r);
    }
    dp_map_destroy(&m);
    for (int k = 0; k < N_INPUTS; k++)
        dp_value_clear(&args[k]);

    dp_value_t one = dp_str("hello");
    dp_future_t *f;
    if (dp_submit(pool, "echo", &one, 1, NULL, &f) == 0 &&
        dp_future_wait(f, 10.0) == 0) {
        const dp_result_t *res = dp_future_result(f);
        printf("echo -> %s\n", res->error ? res->message : res->value.v.s.ptr);
        failed += res->error != 0;
    }
    dp_future_destroy(&f);
    dp_value_clear(&one);
    dp_pool_close(&pool);
    return failed ? 1 : 0;
}
