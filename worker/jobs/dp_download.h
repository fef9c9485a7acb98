/*
 * dp_download.h - the download engine: many http(s) transfers at once on
 * one curl_multi handle, driven by the io child's event loop. Bodies go
 * through a sink (dl_sink.h): the event loop only copies curl's pieces into
 * 64 KiB blocks; the sink's thread hashes each block (SHA-256) and writes
 * it to the body's file, beside the transfers still running, so neither
 * the hash nor the file writes sit between the sockets' reads. A body kept
 * in memory is hashed by that thread once whole. Without the thread (it
 * could not start) the event loop does it all.
 *
 * A job is `download URL [OPTIONS]`:
 *   URL      DP_STR, http:// or https:// (anything else is DP_ERR_INVALID
 *            before any network traffic; every redirect is held to the same
 *            rule).
 *   OPTIONS  optional DP_MAP (or nil) with these keys, all optional:
 *            "store"     bool: save the body under the engine's store_dir
 *                        (true) or return it in the result (false). The
 *                        default is to store when store_dir is set. true
 *                        without a store_dir is DP_ERR_INVALID.
 *            "max_bytes" uint: lower the body ceiling for this job (it can
 *                        never raise the engine's max_bytes).
 *            Unknown keys are DP_ERR_INVALID.
 *
 * Result of a finished job (a DP_MAP):
 *   "url" str (final URL after redirects), "status" uint, "bytes" uint,
 *   "sha256" str (hex of the body), "content_type" str or nil,
 *   "elapsed_ms" uint (from dp_dl_add to completion, retries included),
 *   then either "body" bin (body returned) or "path" str (body stored).
 * An HTTP status >= 400 is DP_ERR_HTTP ("HTTP 404 Not Found") and still
 * comes with a DP_MAP result holding "url" and "status".
 *
 * Errors: DP_ERR_INVALID (bad URL, scheme, options, or a redirect to a
 * refused scheme), DP_ERR_HTTP, DP_ERR_NETWORK (refused, unknown host,
 * reset, ...), DP_ERR_TLS, DP_ERR_TIMEOUT (deadline or stalled transfer),
 * DP_ERR_LIMIT (body over max_bytes, too many redirects), DP_ERR_IO
 * (saving the body), DP_ERR_CANCELLED, DP_ERR_NOMEM.
 * Transient failures (connection reset or closed without a reply, HTTP 5xx
 * and 429) are retried inside the engine with exponential backoff, up to
 * the job's `retries`; other failures are final at once.
 *
 * Ownership:
 *  - dp_dl_new copies the strings in its options; the engine owns itself
 *    and its sink (and the sink's thread) until dp_dl_destroy, which
 *    joins the thread. Only the engine's calls touch a job's record, except
 *    its body while the sink holds it (dl_sink.h); a job received whole
 *    and not yet hashed that is cancelled is reported at once and freed
 *    when the sink gives it back. done() is always called on the caller's
 *    thread.
 *  - dp_dl_add copies the job arguments.
 *  - done() receives `result` to keep: it must dp_value_clear() it (or move
 *    the value out) before returning. `errmsg` is borrowed for the call
 *    (NULL when err is 0).
 *  - done() may call dp_dl_add and dp_dl_cancel, never dp_dl_destroy.
 *
 * The caller runs curl_global_init() once, first thing in main.
 */
#ifndef DP_DOWNLOAD_H
#define DP_DOWNLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_jobs.h"
#include "dpool.h"

/* Defaults filled in by dp_dl_opts_default. */
#define DP_DL_CONNECT_TIMEOUT_MS_DEFAULT 10000L
#define DP_DL_LOW_SPEED_BYTES_DEFAULT 1L /* bytes per second ... */
#define DP_DL_LOW_SPEED_SECS_DEFAULT 30L /* ... sustained this long */
#define DP_DL_MAX_REDIRECTS_DEFAULT 5

/* Retry backoff: first wait, doubling per attempt up to the cap, in ms. */
#define DP_DL_RETRY_BASE_MS 100u
#define DP_DL_RETRY_MAX_MS 10000u

/* Longest URL accepted, bytes. */
#define DP_DL_URL_MAX 8192
/* Longest base name dp_dl_safe_name produces, bytes (without NUL). */
#define DP_DL_NAME_MAX 128
/* Hex digits of sha256(URL) naming a URL without a usable last segment. */
#define DP_DL_HASH_NAME_HEX 16
/* Numbered suffixes dp_dl_open_unique tries (name, name.1 ... name.N). */
#define DP_DL_UNIQUE_MAX 10000
/* Mode of saved files (before umask). */
#define DP_DL_FILE_MODE 0644
/* Room for an error message, bytes. */
#define DP_DL_ERRMSG_MAX 256
/* Longest HTTP reason phrase kept for messages, bytes. */
#define DP_DL_REASON_MAX 64
/* Extra descriptors dp_dl_poll watches at most. */
#define DP_DL_EXTRA_FDS_MAX 16
/* First capacity of a returned body, bytes (grows by doubling). */
#define DP_DL_BODY_INITIAL 16384
/* curl's receive buffer per transfer, bytes (CURLOPT_BUFFERSIZE; its
 * default, 16 KiB, means a recv and a callback per 16 KiB) */
#define DP_DL_RECV_BUFFER (128L * 1024)
/* Largest body capacity reserved at once from a Content-Length, bytes
 * (a longer body grows from there by doubling). */
#define DP_DL_BODY_PREALLOC_MAX (64u * 1024 * 1024)

/* Engine internals (download.c). */
#define DP_DL_US_PER_MS 1000u            /* microseconds per millisecond */
#define DP_DL_SHA256_LEN 32              /* bytes of a SHA-256 digest */
#define DP_DL_RESULT_PAIRS 7             /* pairs in a result map */
#define DP_DL_HTTP_ERR_PAIRS 2           /* pairs beside an HTTP error */
#define DP_DL_HTTP_ERROR_MIN 400         /* first status that fails a job */
#define DP_DL_HTTP_SERVER_ERROR_MIN 500  /* from here on, retried */
#define DP_DL_HTTP_TOO_MANY_REQUESTS 429 /* retried too */
#define DP_DL_CLEN_DIGITS_MAX 20         /* Content-Length digits looked at */
#define DP_DL_VERIFYHOST 2L /* CURLOPT_SSL_VERIFYHOST: check the name */

/* Argument positions of `download URL [OPTIONS]`. */
enum { DP_DL_ARG_URL = 0, DP_DL_ARG_OPTIONS = 1, DP_DL_ARG_COUNT = 2 };

typedef struct {
    uint64_t max_bytes;      /* body ceiling, bytes; enforced as it streams
                                and early from Content-Length */
    long connect_timeout_ms; /* per connection attempt */
    long low_speed_bytes;    /* abort a transfer slower than this many
                                bytes/s ... */
    long low_speed_secs;     /* ... for this many seconds (0 = never) */
    int max_redirects;       /* redirects followed, at most */
    bool insecure;           /* TLS peer and host verification off */
    const char *ca_file;     /* CA bundle (PEM) to trust, CURLOPT_CAINFO
                                (a default CA directory still applies);
                                NULL = the system's */
    const char *store_dir;   /* NULL: bodies come back in results; else
                                they are saved under this directory */
    /* where transfers may connect (dl_guard.h; borrowed, must
     * outlive the engine); NULL = anywhere */
    const struct dp_guard *guard;
} dp_dl_opts_t;

/* A descriptor the caller wants watched along with the transfers. events
 * and revents use poll(2)'s POLLIN, POLLPRI and POLLOUT bits. */
typedef struct {
    int fd;
    short events;
    short revents;
} dp_dl_pollfd_t;

typedef struct dp_dl dp_dl_t;

/* dp_dl_done_fn: called once per accepted job, from dp_dl_poll,
 * dp_dl_cancel or dp_dl_destroy. err is 0 or a DP_ERR_* code, errmsg a
 * one-line reason (NULL when err is 0), result the job's value (DP_NIL on
 * most errors); the callee owns *result. */
typedef void (*dp_dl_done_fn)(void *ud, uint64_t job_id, int err,
                              const char *errmsg, dp_value_t *result);

/* dp_dl_opts_default: fill *o with the defaults (256 MiB ceiling, 10 s
 * connect timeout, 1 B/s for 30 s, 5 redirects, verification on, system
 * CAs, bodies returned). */
void dp_dl_opts_default(dp_dl_opts_t *o);

/* dp_dl_new: an engine with options o (copied; NULL = defaults) reporting
 * to done(ud, ...). NULL on allocation or curl failure. */
dp_dl_t *dp_dl_new(const dp_dl_opts_t *o, dp_dl_done_fn done, void *ud);

/* dp_dl_add: start job job_id with args (copied), giving up with
 * DP_ERR_TIMEOUT at deadline_us (dp_now_us() time; 0 = none) and retrying
 * transient failures up to `retries` times. Returns 0 when done() will be
 * called exactly once for the job (bad arguments included: they are
 * reported through done() at the next dp_dl_poll); DP_ERR_INVALID when
 * job_id is already running, DP_ERR_NOMEM; then done() is not called. */
int dp_dl_add(dp_dl_t *d, uint64_t job_id, const dp_value_t *args, size_t nargs,
              uint64_t deadline_us, unsigned retries);

/* dp_dl_cancel: stop job job_id now; done() is called before this returns
 * with DP_ERR_CANCELLED. 0, or DP_ERR_INVALID when no such job runs. */
int dp_dl_cancel(dp_dl_t *d, uint64_t job_id);

/* dp_dl_poll: wait up to timeout_ms (< 0: until something happens) for
 * transfer activity, a retry timer, or one of the nextra descriptors in
 * extra (their revents are set), run the transfers and call done() for the
 * jobs that finished. Returns 0, DP_ERR_INVALID (nextra over
 * DP_DL_EXTRA_FDS_MAX) or DP_ERR_INTERNAL (curl failed). */
int dp_dl_poll(dp_dl_t *d, dp_dl_pollfd_t *extra, unsigned nextra,
               int timeout_ms);

/* dp_dl_active: jobs added and not yet reported through done(). */
size_t dp_dl_active(const dp_dl_t *d);

/* dp_dl_destroy: cancel every job (done() is called for each with
 * DP_ERR_CANCELLED), free the engine and set *d NULL. NULL-safe. */
void dp_dl_destroy(dp_dl_t **d);

/* dp_dl_hex: n bytes as 2n lowercase hex digits and a NUL into out. */
void dp_dl_hex(const unsigned char *p, size_t n, char *out);

/* dp_dl_safe_name: the file base name for url into out (outlen bytes, at
 * least DP_DL_NAME_MAX + 1): the last path segment, percent-decoded, every
 * byte outside [A-Za-z0-9._-] replaced by '_', ".." runs squeezed to ".",
 * leading dots dropped, cut to DP_DL_NAME_MAX; when nothing usable is left,
 * the first DP_DL_HASH_NAME_HEX hex digits of sha256(url). Never "", ".",
 * "..", never a '/'. Returns 0, DP_ERR_INVALID (outlen too small) or
 * DP_ERR_INTERNAL (no sha256). */
int dp_dl_safe_name(const char *url, char *out, size_t outlen);

/* dp_dl_open_unique: create dir/base, or dir/base.1, dir/base.2 ... the
 * first that does not exist, with O_CREAT|O_EXCL|O_CLOEXEC (never
 * overwrites, never follows a symlink at the name). base must be a name
 * from dp_dl_safe_name. The path opened goes to path_out (len bytes).
 * Returns the write-only descriptor (the caller closes it), or -1 with
 * errno set (ENAMETOOLONG when the path does not fit, EEXIST when every
 * suffix is taken, EINVAL for a base with '/' or a leading dot). */
int dp_dl_open_unique(const char *dir, const char *base, char *path_out,
                      size_t len);

#endif /* DP_DOWNLOAD_H */
