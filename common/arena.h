/*
 * arena.h — a bump allocator whose memory dies all at once, like nginx's
 * pools.  Each request gets one: the decoder allocates its arrays here and
 * the handler its scratch, and arena_deinit() frees everything when the
 * response has been encoded.  Allocations are 8-byte aligned and zeroed.
 */
#ifndef TM_ARENA_H
#define TM_ARENA_H

#include <stddef.h>

struct tm_arena_chunk;

struct tm_arena {
	struct tm_arena_chunk *head;
	size_t used_bytes;      /* sum of allocations, for limits */
	size_t limit_bytes;     /* 0: no limit; else arena_alloc fails past it */
};

void arena_init(struct tm_arena *a, size_t limit_bytes);
void arena_deinit(struct tm_arena *a);
/* Returns zeroed memory, or NULL when out of memory or past the limit. */
void *arena_alloc(struct tm_arena *a, size_t n);
/* Copies n bytes into the arena and NUL-terminates them. */
char *arena_strndup(struct tm_arena *a, const char *s, size_t n);

#endif
