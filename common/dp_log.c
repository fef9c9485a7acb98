#include "dp_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *s_names[] = {"error", "warn", "info", "debug"};
static const char *s_prog = "dpool";
static int s_level = DP_LOG_INFO;

int dp_log_parse_level(const char *name)
{
    for (int k = 0; k <= DP_LOG_DEBUG; k++)
        if (strcmp(name, s_names[k]) == 0)
            return k;
    return -1;
}

void dp_log_init(const char *prog, const char *level)
{
    s_prog = prog;
    if (!level)
        level = getenv("DPOOL_LOG");
    int l = level ? dp_log_parse_level(level) : -1;
    s_level = l >= 0 ? l : DP_LOG_INFO;
}

void dp_log_cap(dp_loglevel_t max)
{
    const char *env = getenv("DPOOL_LOG");
    if ((!env || dp_log_parse_level(env) < 0) && s_level > (int)max)
        s_level = (int)max;
}

void dp_log(dp_loglevel_t level, const char *fmt, ...)
{
    if ((int)level > s_level)
        return;
    int saved = errno;
    char line[1024];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%02d:%02d:%02d.%03d %s[%d] %s: ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), s_prog, (int)getpid(),
                     s_names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
    errno = saved;
}
