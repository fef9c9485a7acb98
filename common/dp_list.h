/*
 * dp_list.h - one intrusive doubly linked list and one slab allocator,
 * shared by the broker's queue (broker/dp_queue.c) and the worker agent
 * (worker/dp_agent_*.c) instead of a copy in each (beanstalkd's job_list_*).
 *
 * The list works on any list struct with `head`, `tail` and `n` and any
 * item struct with `prev` and `next` pointers (macros, so it stays typed
 * and inlined). The slab hands out fixed-size zeroed items carved from
 * blocks of `per_slab` and takes them back on a free list; dp_slab_shrink
 * gives every block but one back once no item is in use.
 *
 * Ownership: the slab owns its blocks; an item belongs to the caller from
 * dp_slab_alloc until dp_slab_free. dp_slab_release frees every block
 * (items still handed out become invalid).
 */
#ifndef DP_LIST_H
#define DP_LIST_H

#include <stddef.h>

/* DP_LIST_PUSH: put item j at the tail of list l (or its head). */
#define DP_LIST_PUSH(l, j, at_head)                                            \
    do {                                                                       \
        if (at_head) {                                                         \
            (j)->prev = NULL;                                                  \
            (j)->next = (l)->head;                                             \
            if ((l)->head)                                                     \
                (l)->head->prev = (j);                                         \
            else                                                               \
                (l)->tail = (j);                                               \
            (l)->head = (j);                                                   \
        } else {                                                               \
            (j)->next = NULL;                                                  \
            (j)->prev = (l)->tail;                                             \
            if ((l)->tail)                                                     \
                (l)->tail->next = (j);                                         \
            else                                                               \
                (l)->head = (j);                                               \
            (l)->tail = (j);                                                   \
        }                                                                      \
        (l)->n++;                                                              \
    } while (0)

/* DP_LIST_UNLINK: take item j (which is in l) out of list l. */
#define DP_LIST_UNLINK(l, j)                                                   \
    do {                                                                       \
        if ((j)->prev)                                                         \
            (j)->prev->next = (j)->next;                                       \
        else                                                                   \
            (l)->head = (j)->next;                                             \
        if ((j)->next)                                                         \
            (j)->next->prev = (j)->prev;                                       \
        else                                                                   \
            (l)->tail = (j)->prev;                                             \
        (j)->prev = (j)->next = NULL;                                          \
        (l)->n--;                                                              \
    } while (0)

typedef struct dp_slab_block dp_slab_block_t;

typedef struct {
    size_t size;     /* bytes per item (at least a pointer) */
    size_t per_slab; /* items per block */
    dp_slab_block_t *blocks;
    size_t nblocks;
    void *free;  /* free items, linked through their first bytes */
    size_t used; /* items handed out */
} dp_slab_t;

/* dp_slab_init: an empty slab of items of `size` bytes, `per_slab` per
 * block (nothing is allocated yet). */
void dp_slab_init(dp_slab_t *s, size_t size, size_t per_slab);
/* dp_slab_alloc: a zeroed item, or NULL (out of memory). */
void *dp_slab_alloc(dp_slab_t *s);
/* dp_slab_free: an item from dp_slab_alloc goes back (NULL-safe). */
void dp_slab_free(dp_slab_t *s, void *item);
/* dp_slab_shrink: when no item is in use, give back every block but
 * `keep` (at least one): a burst's memory returns, while the blocks an
 * ordinary batch uses stay for the next one; otherwise nothing. */
void dp_slab_shrink(dp_slab_t *s, size_t keep);
/* dp_slab_release: free every block; the slab is empty afterwards. */
void dp_slab_release(dp_slab_t *s);

#endif /* DP_LIST_H */
