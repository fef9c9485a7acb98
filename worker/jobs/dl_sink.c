/*
 * dl_sink.c - download bodies hashed and written off the transfer thread
 * (see dl_sink.h).
 *
 * One FIFO of items goes from the caller's thread to the sink's: a block
 * of a body's bytes, or a body's finish (its last block marked, or the
 * body's own item when no block is open). The thread takes an item,
 * hashes and writes it without the lock, and under the lock records a
 * failure, returns the block, counts the body's item done and, for a
 * finish, puts the body on the finished list. A body's items are handled
 * in the order they were sent, so its file is written in order.
 */
#include "dl_sink.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpool.h"

struct dp_sink_blk {
    dp_sink_item_t it;
    unsigned char data[DP_SINK_BLOCK];
};

struct dp_sink {
    pthread_t tid;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t work; /* items to process, or stop */
    pthread_cond_t back; /* an item was processed */
    dp_sink_item_t *head, *tail;
    dp_sink_blk_t *free_blks; /* through it.next */
    unsigned nblk;            /* blocks allocated */
    unsigned queued;          /* items with the thread, all bodies */
    dp_body_t *done_head, *done_tail;
    bool stop;
    void (*wake)(void *);
    void *arg;
};

static void s_fail(dp_body_t *b, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* s_fail: the first failure of b (its later ones are consequences). */
static void s_fail(dp_body_t *b, int err, const char *fmt, ...)
{
    if (b->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->errmsg, sizeof b->errmsg, fmt, ap);
    va_end(ap);
    b->err = err;
}

/* s_md: b's hash context, made and started on first use. */
static EVP_MD_CTX *s_md(dp_body_t *b)
{
    if (!b->md) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (md && !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
            EVP_MD_CTX_free(md);
            md = NULL;
        }
        b->md = md;
    }
    return b->md;
}

/* s_write: n bytes of b at the file's offset; 0 or errno. */
static int s_write(int fd, const unsigned char *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        off += (size_t)w;
    }
    return 0;
}

/* s_bytes: hash and store n bytes of b; a failure goes to *err and msg
 * (the thread applies it under the lock, the inline path at once). */
static void s_bytes(dp_body_t *b, EVP_MD_CTX *md, const unsigned char *p,
                    size_t n, dp_body_t *fail)
{
    if (!md || !EVP_DigestUpdate(md, p, n)) {
        s_fail(fail, DP_ERR_INTERNAL, "sha256 failed");
        return;
    }
    int e = b->fd >= 0 ? s_write(b->fd, p, n) : 0;
    if (e)
        s_fail(fail, DP_ERR_IO, "writing %s: %s", b->path ? b->path : "body",
               strerror(e));
}

/* s_final: b is whole: its in-memory bytes hashed, the digest as hex. */
static void s_final(dp_body_t *b, EVP_MD_CTX *md, dp_body_t *fail)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (b->fd < 0 && b->mem_len &&
        (!md || !EVP_DigestUpdate(md, b->mem, b->mem_len)))
        md = NULL;
    if (!md || !EVP_DigestFinal_ex(md, out, &len) ||
        2 * (size_t)len >= sizeof b->hex) {
        s_fail(fail, DP_ERR_INTERNAL, "sha256 failed");
        return;
    }
    for (unsigned k = 0; k < len; k++) {
        b->hex[2 * k] = digits[out[k] >> 4];
        b->hex[2 * k + 1] = digits[out[k] & 0xf];
    }
    b->hex[2 * len] = '\0';
}

/* s_blk_put: block k back on the free list (lock held when threaded). */
static void s_blk_put(dp_sink_t *s, dp_sink_blk_t *k)
{
    k->it.next = s->free_blks ? &s->free_blks->it : NULL;
    s->free_blks = k;
}

/* s_done: b finished: onto the finished list (lock held when threaded). */
static void s_done(dp_sink_t *s, dp_body_t *b)
{
    b->next = NULL;
    if (s->done_tail)
        s->done_tail->next = b;
    else
        s->done_head = b;
    s->done_tail = b;
}

static void *s_main(void *arg)
{
    dp_sink_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && !s->head)
            pthread_cond_wait(&s->work, &s->mu);
        if (!s->head)
            break; /* stop, and nothing left */
        dp_sink_item_t *it = s->head;
        s->head = it->next;
        if (!s->head)
            s->tail = NULL;
        dp_body_t *b = it->b;
        bool failed = b->err != 0; /* its later bytes are not written */
        pthread_mutex_unlock(&s->mu);

        dp_body_t fail = {.err = 0}; /* applied under the lock */
        if (!failed && it->len)
            s_bytes(b, b->md, ((dp_sink_blk_t *)it)->data, it->len, &fail);
        if (!failed && !fail.err && it->fin)
            s_final(b, b->md, &fail);

        pthread_mutex_lock(&s->mu);
        if (fail.err)
            s_fail(b, fail.err, "%s", fail.errmsg);
        if (it->is_blk)
            s_blk_put(s, (dp_sink_blk_t *)it);
        b->queued--;
        s->queued--;
        if (it->fin) {
            s_done(s, b);
            s->wake(s->arg);
        }
        pthread_cond_broadcast(&s->back);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

dp_sink_t *dp_sink_new(void (*wake)(void *), void *arg)
{
    dp_sink_t *s = calloc(1, sizeof *s);
    if (!s || !wake) {
        free(s);
        return NULL;
    }
    s->wake = wake;
    s->arg = arg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->back, NULL);
    s->running = pthread_create(&s->tid, NULL, s_main, s) == 0;
    return s;
}

void dp_sink_destroy(dp_sink_t **sp)
{
    dp_sink_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    if (s->running) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->tid, NULL);
    }
    while (s->free_blks) {
        dp_sink_blk_t *k = s->free_blks;
        s->free_blks = (dp_sink_blk_t *)k->it.next;
        free(k);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->back);
    free(s);
    *sp = NULL;
}

void dp_body_init(dp_body_t *b, int fd, const char *path)
{
    memset(b, 0, sizeof *b);
    b->fd = fd;
    b->path = path;
}

/* s_send: item it of b to the thread. */
static void s_send(dp_sink_t *s, dp_body_t *b, dp_sink_item_t *it)
{
    it->next = NULL;
    it->b = b;
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = it;
    else
        s->head = it;
    s->tail = it;
    b->queued++;
    s->queued++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

/* s_block: a block for b (lock held), waiting for the thread to free one
 * when all exist and some are with it; NULL when none will come back (or
 * none could be allocated and none exist): b then goes on inline. */
static dp_sink_blk_t *s_block(dp_sink_t *s)
{
    for (;;) {
        dp_sink_blk_t *k = s->free_blks;
        if (k) {
            s->free_blks = (dp_sink_blk_t *)k->it.next;
            return k;
        }
        if (s->nblk < DP_SINK_BLOCKS && (k = malloc(sizeof *k)) != NULL) {
            s->nblk++;
            k->it.is_blk = true;
            return k;
        }
        if (s->queued == 0)
            return NULL;
        pthread_cond_wait(&s->back, &s->mu);
    }
}

int dp_sink_put(dp_sink_t *s, dp_body_t *b, const void *p, size_t n)
{
    const unsigned char *c = p;
    /* no context yet: nothing of b was sent, b->err is ours to touch */
    if (!b->md && !s_md(b))
        s_fail(b, DP_ERR_NOMEM, "no memory to hash the body");
    if (!s->running) {
        if (!b->err)
            s_bytes(b, b->md, c, n, b);
        return b->err;
    }
    while (n > 0) {
        if (!b->fill) {
            pthread_mutex_lock(&s->mu);
            int err = b->err; /* the thread's, from an earlier block */
            dp_sink_blk_t *k = err ? NULL : s_block(s);
            pthread_mutex_unlock(&s->mu);
            if (err)
                return err;
            if (!k) { /* nothing of b is with the thread: write it here */
                s_bytes(b, b->md, c, n, b);
                return b->err;
            }
            k->it.len = 0;
            k->it.fin = false;
            b->fill = k;
        }
        dp_sink_item_t *it = &b->fill->it;
        size_t take = DP_SINK_BLOCK - it->len < n ? DP_SINK_BLOCK - it->len : n;
        memcpy(b->fill->data + it->len, c, take);
        it->len += take;
        c += take;
        n -= take;
        if (it->len == DP_SINK_BLOCK) {
            b->fill = NULL;
            s_send(s, b, it);
        }
    }
    return 0;
}

void dp_sink_finish(dp_sink_t *s, dp_body_t *b)
{
    /* no context yet: nothing of b was sent, b->err is ours to touch */
    if (!b->md && !s_md(b))
        s_fail(b, DP_ERR_NOMEM, "no memory to hash the body");
    dp_sink_item_t *it = &b->fin_item;
    if (b->fill)
        it = &b->fill->it;
    else
        *it = (dp_sink_item_t){.len = 0, .is_blk = false};
    b->fill = NULL;
    it->fin = true;
    if (s->running) {
        s_send(s, b, it);
        return;
    }
    if (!b->err && it->len)
        s_bytes(b, b->md, ((dp_sink_blk_t *)it)->data, it->len, b);
    if (!b->err)
        s_final(b, b->md, b);
    if (it->is_blk)
        s_blk_put(s, (dp_sink_blk_t *)it);
    s_done(s, b);
}

dp_body_t *dp_sink_collect(dp_sink_t *s)
{
    if (s->running)
        pthread_mutex_lock(&s->mu);
    dp_body_t *b = s->done_head;
    s->done_head = s->done_tail = NULL;
    if (s->running)
        pthread_mutex_unlock(&s->mu);
    return b;
}

void dp_sink_wait(dp_sink_t *s)
{
    if (!s->running)
        return;
    pthread_mutex_lock(&s->mu);
    while (s->queued)
        pthread_cond_wait(&s->back, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void dp_sink_drop(dp_sink_t *s, dp_body_t *b)
{
    if (!s) {
        EVP_MD_CTX_free(b->md);
        dp_body_init(b, b->fd, b->path);
        return;
    }
    if (s->running)
        pthread_mutex_lock(&s->mu);
    if (b->fill)
        s_blk_put(s, b->fill);
    while (s->running && b->queued)
        pthread_cond_wait(&s->back, &s->mu);
    if (s->running)
        pthread_mutex_unlock(&s->mu);
    EVP_MD_CTX_free(b->md);
    dp_body_init(b, b->fd, b->path);
}
