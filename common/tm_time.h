/*
 * tm_time.h — the clocks.  Only the broker's driver reads them; pure cores
 * (protocol, raft, the metadata state machine) take time as an argument.
 */
#ifndef TM_TIME_H
#define TM_TIME_H

#include <stdint.h>
#include <time.h>

/* Wall clock, milliseconds since the Unix epoch (record timestamps). */
static inline int64_t tm_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic clock, milliseconds (timeouts, leases). */
static inline int64_t tm_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic clock, nanoseconds (latency measurement). */
static inline int64_t tm_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
