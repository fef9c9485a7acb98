/*
 * dp_log.h - one-line logs on stderr: "time prog[pid] LEVEL message".
 * The level comes from dp_log_init (option --log-level or env DPOOL_LOG:
 * error, warn, info, debug).
 */
#ifndef DP_LOG_H
#define DP_LOG_H

typedef enum {
    DP_LOG_ERROR,
    DP_LOG_WARN,
    DP_LOG_INFO,
    DP_LOG_DEBUG
} dp_loglevel_t;

/* dp_log_init: name the program and set the level (NULL = env or info). */
void dp_log_init(const char *prog, const char *level);
/* dp_log_cap: at most `max` is logged from now on, unless the
 * environment's DPOOL_LOG names a level (a library's default). */
void dp_log_cap(dp_loglevel_t max);
/* dp_log_parse_level: level from its name; -1 if unknown. */
int dp_log_parse_level(const char *name);
void dp_log(dp_loglevel_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define dp_error(...) dp_log(DP_LOG_ERROR, __VA_ARGS__)
#define dp_warn(...) dp_log(DP_LOG_WARN, __VA_ARGS__)
#define dp_info(...) dp_log(DP_LOG_INFO, __VA_ARGS__)
#define dp_debug(...) dp_log(DP_LOG_DEBUG, __VA_ARGS__)

#endif
