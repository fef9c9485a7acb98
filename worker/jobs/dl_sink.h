/*
 * dl_sink.h - download bodies hashed, and stored ones written, off the
 * thread that reads the sockets.
 *
 * curl hands a body over 16 KiB at a time (CURL_MAX_WRITE_SIZE). The
 * transfer thread only copies those pieces into blocks of DP_SINK_BLOCK
 * bytes (dp_sink_put); a full block goes to the sink's thread, which adds
 * it to the body's SHA-256 while it is still in cache and writes it to the
 * body's file. So a 1 MiB body costs 16 writes instead of 64, is never
 * read back to be hashed, and neither the hash nor the writes sit on the
 * thread that reads the sockets (Round 9 in tests/bench/README.md has
 * the figures). A body kept in memory (no file) is hashed by the thread
 * when it is whole (dp_sink_finish).
 *
 * Bounds: at most DP_SINK_BLOCKS blocks exist, allocated as first needed
 * and reused; dp_sink_put waits for the thread to free one when all are
 * in use. When every block sits unsent in other bodies (more bodies at
 * once than blocks), a body with none is written and hashed on the
 * caller's thread instead, so a put never waits for nothing.
 * Without the thread (pthread_create failed) everything is done on the
 * caller's thread, as it comes.
 *
 * Ownership:
 *  - The caller owns each dp_body_t (embedded in its own record) and its
 *    file descriptor; the sink holds a body from the first dp_sink_put
 *    (or dp_sink_finish) until dp_sink_drop, or until dp_sink_collect gives
 *    it back after dp_sink_finish. While held, the caller must not touch
 *    the body's fields, close the file or free the memory a finished
 *    in-memory body points at.
 *  - One thread (the caller's) calls every function; the sink's own
 *    thread only processes blocks and finished bodies.
 */
#ifndef DL_SINK_H
#define DL_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes a block holds: writes of 64 KiB cost half the CPU per byte of
 * curl's 16 KiB pieces, and more than that gains little (ext4, page cache). */
#define DP_SINK_BLOCK (64 * 1024)
/* Blocks at most, all bodies together (16 x 64 KiB = 1 MiB): each is
 * 16 pages touched once, and a sink that keeps up holds few at a time
 * (32 cost 300 more page faults per 64 MiB, for no gain). */
#define DP_SINK_BLOCKS 16
/* Room for the thread's error message, bytes. */
#define DP_SINK_ERRMSG_MAX 256
/* Hex digits of a SHA-256 and the NUL. */
#define DP_SINK_HEX_LEN 65

typedef struct dp_sink dp_sink_t;
typedef struct dp_sink_blk dp_sink_blk_t;
struct dp_body;

/* An item for the sink's thread: a block of a body's bytes, or its finish
 * (the sink's; in dp_body_t for a finish that has no block). */
typedef struct dp_sink_item {
    struct dp_sink_item *next;
    struct dp_body *b;
    size_t len;  /* bytes in the block */
    bool fin;    /* the body's last item */
    bool is_blk; /* a dp_sink_blk_t, else a body's fin_item */
} dp_sink_item_t;

typedef struct dp_body {
    /* the caller's, set before the first dp_sink_put */
    int fd;                  /* the file written in order, or -1: in memory */
    const char *path;        /* the file's name, for messages */
    const void *mem;         /* fd -1: the whole body, read at finish */
    size_t mem_len;
    /* the sink's; read by the caller only once the body is back */
    int err;                         /* 0, DP_ERR_IO or DP_ERR_NOMEM */
    char errmsg[DP_SINK_ERRMSG_MAX]; /* when err */
    char hex[DP_SINK_HEX_LEN];       /* SHA-256 of the body, after finish */
    void *md;                        /* EVP_MD_CTX, from the first byte */
    dp_sink_blk_t *fill;             /* the block being filled */
    unsigned queued;                 /* blocks with the thread */
    dp_sink_item_t fin_item;         /* a finish with no block open */
    struct dp_body *next;            /* the finished list */
} dp_body_t;

/* dp_sink_new: the sink and its thread; wake(arg) is called from the
 * thread each time a finished body is ready for dp_sink_collect (wake the
 * caller's poll). NULL when out of memory. */
dp_sink_t *dp_sink_new(void (*wake)(void *), void *arg);
/* dp_sink_destroy: join the thread, free the blocks. Every body must be
 * dropped or collected first. NULL-safe. */
void dp_sink_destroy(dp_sink_t **sp);
/* dp_body_init: a body not yet started, on fd (-1: in memory). */
void dp_body_init(dp_body_t *b, int fd, const char *path);
/* dp_sink_put: n more bytes of b. 0, or an error (the thread's, from an
 * earlier block, or DP_ERR_NOMEM) with its message in b->errmsg: the
 * transfer should stop. */
int dp_sink_put(dp_sink_t *s, dp_body_t *b, const void *p, size_t n);
/* dp_sink_finish: b is whole (an in-memory body: mem, mem_len set now).
 * The thread writes what is left, finishes the hash and hands b back
 * through dp_sink_collect with hex or err set. */
void dp_sink_finish(dp_sink_t *s, dp_body_t *b);
/* dp_sink_collect: the bodies finished since the last call, oldest first,
 * linked through next; NULL when none. */
dp_body_t *dp_sink_collect(dp_sink_t *s);
/* dp_sink_wait: return once the thread holds no item (every body sent
 * is processed; finished ones wait for dp_sink_collect). */
void dp_sink_wait(dp_sink_t *s);
/* dp_sink_drop: give up b (a new attempt, a cancel, an error): unsent
 * bytes are dropped, the blocks the thread holds are waited for, and b is
 * as dp_body_init left it. Not for a body finished and not yet collected.
 * NULL-safe in s. */
void dp_sink_drop(dp_sink_t *s, dp_body_t *b);

#endif /* DL_SINK_H */
