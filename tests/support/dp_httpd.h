/*
 * dp_httpd.h - a real HTTP/1.1 (and HTTPS) server for tests.
 *
 * dp_httpd_start binds 127.0.0.1 on an ephemeral port, then forks the
 * server: one process accepting connections, one forked process per
 * connection (blocking I/O, so slow routes never hold up the others). The
 * server dies with the process that started it (PR_SET_PDEATHSIG) and each
 * connection process with the server. Every response closes its
 * connection ("Connection: close").
 *
 * Routes (GET and HEAD):
 *   /status/NNN              status NNN (200..599), body "status NNN\n"
 *   /redirect/N              302 to /redirect/N-1; /redirect/0 is 200 "ok"
 *   /redirect-to?url=X       302 to X (percent-decoded), whatever it is
 *   /slow?ms=N               waits N ms, then 200 "slow\n"
 *   /drip?bytes=N&ms=M       headers with Content-Length N, then one byte
 *                            every M ms (defaults 60 bytes, 1000 ms)
 *   /big?bytes=N             N bytes of dp_httpd_fill data, Content-Length
 *     &cut=M&fails=F&key=K   the first F hits on K send M bytes of the N,
 *                            then a TCP reset (a partial body to retry)
 *   /big-chunked?bytes=N     the same, chunked transfer encoding
 *   /big-noclen?bytes=N      the same, no length: ends when it closes
 *   /reset                   closes the connection with a TCP reset, no
 *                            response at all
 *   /flaky?key=K&fails=F     500 for the first F hits on K, then 200 "ok\n"
 *   /count?key=K             body: decimal hits on key K so far
 *   anything else            the file at docroot + path (Content-Type by
 *                            extension, Content-Length), or 404
 * Any request but /count carrying ?key=K counts one hit on K; counts live
 * in memory shared by the server's processes.
 *
 * Ownership: dp_httpd_start copies nothing it needs after the fork; the
 * returned server belongs to the caller, who stops it with dp_httpd_stop.
 * dp_httpd_url writes into the caller's buffer.
 */
#ifndef DP_HTTPD_H
#define DP_HTTPD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Units. */
#define DP_HTTPD_MS_PER_S 1000L
#define DP_HTTPD_NS_PER_MS 1000000L
#define DP_HTTPD_US_PER_MS 1000L
/* Widest decimal number text the server reads or writes, bytes. */
#define DP_HTTPD_NUM_MAX 32
/* Pending connections the listening socket queues. */
#define DP_HTTPD_BACKLOG 128
/* Longest request head (request line and headers), bytes. */
#define DP_HTTPD_HEAD_MAX 8192
/* Longest request path or query, bytes. */
#define DP_HTTPD_TARGET_MAX 4096
/* Socket send/receive timeout inside a connection process, ms. */
#define DP_HTTPD_IO_TIMEOUT_MS 30000
/* Keys counted at most, and the longest key, bytes. */
#define DP_HTTPD_KEYS_MAX 256
#define DP_HTTPD_KEY_MAX 64
/* Body bytes written per send, bytes. */
#define DP_HTTPD_CHUNK 16384
/* /drip defaults: body length, bytes, and the pause between bytes, ms. */
#define DP_HTTPD_DRIP_BYTES_DEFAULT 60
#define DP_HTTPD_DRIP_MS_DEFAULT 1000
/* Longest response head the server writes, bytes. */
#define DP_HTTPD_RESP_HEAD_MAX 1024
/* Range of statuses /status/NNN answers with. */
#define DP_HTTPD_STATUS_MIN 200
#define DP_HTTPD_STATUS_MAX 599
/* Pause before accepting again after accept() failed, ms. */
#define DP_HTTPD_ACCEPT_RETRY_MS 10
/* dp_httpd_fill's mixer (a 64-bit finalizer): shift and multiplier. */
#define DP_HTTPD_MIX_SHIFT 33
#define DP_HTTPD_MIX_MUL 0xff51afd7ed558ccdULL
/* Generated certificates: valid from this long ago, for this long, s. */
#define DP_HTTPD_CERT_BACKDATE_S 3600L
#define DP_HTTPD_CERT_VALID_S (7L * 24 * 3600)
/* Serial numbers of the generated CA and server certificates. */
#define DP_HTTPD_CA_SERIAL 1
#define DP_HTTPD_LEAF_SERIAL 2
/* Mode of the generated key file. */
#define DP_HTTPD_KEY_MODE 0600

/* Statuses the server answers with by itself. */
enum {
    DP_HTTP_OK = 200,
    DP_HTTP_FOUND = 302,
    DP_HTTP_BAD_REQUEST = 400,
    DP_HTTP_NOT_FOUND = 404,
    DP_HTTP_METHOD_NOT_ALLOWED = 405,
    DP_HTTP_HEAD_TOO_LARGE = 431,
    DP_HTTP_SERVER_ERROR = 500
};

typedef struct {
    const char *docroot;   /* files served from here; NULL = no files */
    const char *cert_file; /* certificate chain (PEM): HTTPS when set */
    const char *key_file;  /* its private key (PEM) */
} dp_httpd_opts_t;

typedef struct dp_httpd dp_httpd_t;

/* dp_httpd_start: start a server with options o (NULL = plain HTTP, no
 * docroot). NULL when the socket, the TLS files or fork fail. */
dp_httpd_t *dp_httpd_start(const dp_httpd_opts_t *o);

/* dp_httpd_port: the TCP port it listens on (127.0.0.1). */
int dp_httpd_port(const dp_httpd_t *h);

/* dp_httpd_pid: the server process id. */
pid_t dp_httpd_pid(const dp_httpd_t *h);

/* dp_httpd_url: "http[s]://127.0.0.1:PORT" + path into buf (len bytes).
 * 0, or -1 when it does not fit. */
int dp_httpd_url(const dp_httpd_t *h, const char *path, char *buf, size_t len);

/* dp_httpd_stop: kill the server by pid (its connection processes follow),
 * reap it, free *h and set it NULL. NULL-safe. */
void dp_httpd_stop(dp_httpd_t **h);

/* dp_httpd_fill: the bytes the /big routes send at offsets
 * [offset, offset + n), into buf. */
void dp_httpd_fill(uint64_t offset, void *buf, size_t n);

/* Files written by dp_httpd_make_certs. */
typedef struct {
    char ca_file[PATH_MAX];   /* the CA certificate (PEM), to trust */
    char cert_file[PATH_MAX]; /* the server certificate (PEM) */
    char key_file[PATH_MAX];  /* the server key (PEM, mode 0600) */
} dp_httpd_certs_t;

/* dp_httpd_make_certs: generate a throwaway CA and a server certificate it
 * signs for localhost and 127.0.0.1 (EC P-256) into directory dir, naming
 * the files in *out. 0, or -1 on any failure. */
int dp_httpd_make_certs(const char *dir, dp_httpd_certs_t *out);

#endif /* DP_HTTPD_H */
