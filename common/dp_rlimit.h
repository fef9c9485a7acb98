/*
 * dp_rlimit.h - process limits the daemons adjust at start.
 */
#ifndef DP_RLIMIT_H
#define DP_RLIMIT_H

/* dp_rlimit_raise_nofile: raise the soft open-files limit to the hard one
 * (systemd's default soft limit of 1024 locks out peers long before the
 * hard limit). Returns the soft limit now in force (LONG_MAX when
 * unlimited), or -1 if it cannot be read. */
long dp_rlimit_raise_nofile(void);

#endif /* DP_RLIMIT_H */
