/*
 * dp_clock.h - monotonic time in microseconds and milliseconds.
 */
#ifndef DP_CLOCK_H
#define DP_CLOCK_H

#include <stdint.h>

#define DP_MS_PER_S 1000.0 /* for printing milliseconds as seconds */

/* dp_now_us: CLOCK_MONOTONIC in microseconds. */
uint64_t dp_now_us(void);
/* dp_now_ms: CLOCK_MONOTONIC in milliseconds. */
uint64_t dp_now_ms(void);

#endif
