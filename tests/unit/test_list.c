/* test_list.c - the shared intrusive list and slab (common/dp_list.h). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "dp_list.h"

typedef struct t_item {
    struct t_item *prev, *next;
    uint64_t v;
} t_item_t;

typedef struct {
    t_item_t *head, *tail;
    size_t n;
} t_list_t;

Test(list, push_unlink_keep_order)
{
    t_item_t it[4] = {{.v = 0}, {.v = 1}, {.v = 2}, {.v = 3}};
    t_list_t l = {0};
    DP_LIST_PUSH(&l, &it[1], false);
    DP_LIST_PUSH(&l, &it[2], false);
    DP_LIST_PUSH(&l, &it[0], true);
    DP_LIST_PUSH(&l, &it[3], false);
    cr_assert_eq(l.n, 4);
    uint64_t k = 0;
    for (t_item_t *x = l.head; x; x = x->next)
        cr_assert_eq(x->v, k++);
    DP_LIST_UNLINK(&l, &it[0]);
    DP_LIST_UNLINK(&l, &it[3]);
    DP_LIST_UNLINK(&l, &it[2]);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(l.head, &it[1]);
    cr_assert_eq(l.tail, &it[1]);
    DP_LIST_UNLINK(&l, &it[1]);
    cr_assert_null(l.head);
    cr_assert_null(l.tail);
}

Test(slab, zeroed_items_reused_and_blocks_given_back)
{
    enum { PER = 8, N = 3 * PER + 1 };
    dp_slab_t s;
    dp_slab_init(&s, sizeof(t_item_t), PER);
    t_item_t *v[N];
    for (int k = 0; k < N; k++) {
        v[k] = dp_slab_alloc(&s);
        cr_assert_not_null(v[k]);
        cr_assert_eq(v[k]->v, 0, "not zeroed");
        v[k]->v = (uint64_t)k + 1;
    }
    cr_assert_eq(s.nblocks, 4);
    cr_assert_eq(s.used, N);
    dp_slab_shrink(&s, 1); /* items in use: nothing happens */
    cr_assert_eq(s.nblocks, 4);
    for (int k = 0; k < N; k++)
        dp_slab_free(&s, v[k]);
    dp_slab_shrink(&s, 2); /* two kept, each item free once */
    cr_assert_eq(s.nblocks, 2);
    for (int k = 0; k < 2 * PER; k++)
        cr_assert_not_null(v[k] = dp_slab_alloc(&s));
    cr_assert_eq(s.nblocks, 2, "a kept item was on the free list twice");
    for (int k = 0; k < 2 * PER; k++)
        dp_slab_free(&s, v[k]);
    dp_slab_shrink(&s, 1);
    cr_assert_eq(s.nblocks, 1);
    for (int k = 0; k < PER; k++) /* the kept block serves PER again */
        cr_assert_not_null(dp_slab_alloc(&s));
    cr_assert_eq(s.nblocks, 1);
    dp_slab_release(&s);
    cr_assert_eq(s.nblocks, 0);
}
