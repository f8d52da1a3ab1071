/*
 * tm_assert.h — Tidemark's two assertion macros.
 *
 * TM_ASSERT() stays on in every build: it guards invariants whose violation
 * means memory or on-disk state can no longer be trusted, so the process
 * stops with the file, line and failed expression rather than corrupt data.
 * TM_ASSERT_DEBUG() is compiled in debug, sanitizer and simulator builds only
 * (TM_DEBUG defined); use it for checks too costly for the hot path.
 *
 * Never assert on bytes that came from the network or the disk: those are
 * errors to return, not invariants (see common/bytes.h).
 */
#ifndef TM_ASSERT_H
#define TM_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define TM_ASSERT(cond)                                                        \
	do {                                                                   \
		if (__builtin_expect(!(cond), 0)) {                            \
			fprintf(stderr, "tidemark: assertion failed: %s (%s:%d)\n", \
				#cond, __FILE__, __LINE__);                    \
			abort();                                               \
		}                                                              \
	} while (0)

#ifdef TM_DEBUG
#define TM_ASSERT_DEBUG(cond) TM_ASSERT(cond)
#else
#define TM_ASSERT_DEBUG(cond) ((void)0)
#endif

#define TM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TM_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
