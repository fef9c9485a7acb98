/* dp_list.c - the slab allocator (the list is all macros, dp_list.h). */
#include "dp_list.h"

#include <stdlib.h>
#include <string.h>

struct dp_slab_block {
    dp_slab_block_t *next;
    max_align_t items[]; /* per_slab items of size bytes */
};

void dp_slab_init(dp_slab_t *s, size_t size, size_t per_slab)
{
    memset(s, 0, sizeof *s);
    s->size = size < sizeof(void *) ? sizeof(void *) : size;
    s->per_slab = per_slab ? per_slab : 1;
}

static void s_carve(dp_slab_t *s, dp_slab_block_t *b)
{
    char *base = (char *)b->items;
    for (size_t k = 0; k < s->per_slab; k++) {
        void *item = base + k * s->size;
        memcpy(item, &s->free, sizeof s->free);
        s->free = item;
    }
}

void *dp_slab_alloc(dp_slab_t *s)
{
    if (!s->free) {
        dp_slab_block_t *b = malloc(sizeof *b + s->size * s->per_slab);
        if (!b)
            return NULL;
        b->next = s->blocks;
        s->blocks = b;
        s->nblocks++;
        s_carve(s, b);
    }
    void *item = s->free;
    memcpy(&s->free, item, sizeof s->free);
    memset(item, 0, s->size);
    s->used++;
    return item;
}

void dp_slab_free(dp_slab_t *s, void *item)
{
    if (!item)
        return;
    memcpy(item, &s->free, sizeof s->free);
    s->free = item;
    s->used--;
}

void dp_slab_shrink(dp_slab_t *s, size_t keep)
{
    keep = keep ? keep : 1;
    if (s->used != 0 || s->nblocks <= keep)
        return;
    dp_slab_block_t *last = s->blocks;
    for (size_t k = 1; k < keep; k++)
        last = last->next;
    for (dp_slab_block_t *b = last->next, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    last->next = NULL;
    s->nblocks = keep;
    s->free = NULL; /* the kept blocks' items, on a fresh free list */
    for (dp_slab_block_t *b = s->blocks; b; b = b->next)
        s_carve(s, b);
}

void dp_slab_release(dp_slab_t *s)
{
    while (s->blocks) {
        dp_slab_block_t *b = s->blocks;
        s->blocks = b->next;
        free(b);
    }
    s->nblocks = 0;
    s->free = NULL;
    s->used = 0;
}
