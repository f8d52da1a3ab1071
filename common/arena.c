/*
 * arena.c — chunks of at least 16 KiB, linked newest first.  A request that
 * asks for more than a chunk gets a chunk of its own size.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK_BYTES (16 * 1024)

struct tm_arena_chunk {
	struct tm_arena_chunk *next;
	size_t cap;
	size_t used;
	_Alignas(16) unsigned char data[];
};

void arena_init(struct tm_arena *a, size_t limit_bytes)
{
	a->head = NULL;
	a->used_bytes = 0;
	a->limit_bytes = limit_bytes;
}

void arena_deinit(struct tm_arena *a)
{
	struct tm_arena_chunk *c = a->head;
	while (c) {
		struct tm_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->used_bytes = 0;
}

void *arena_alloc(struct tm_arena *a, size_t n)
{
	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - 16)
		return NULL;
	n = (n + 7) & ~(size_t)7;
	if (a->limit_bytes && (n > a->limit_bytes || a->used_bytes > a->limit_bytes - n))
		return NULL;
	struct tm_arena_chunk *c = a->head;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK_BYTES ? n : ARENA_CHUNK_BYTES;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->used;
	c->used += n;
	a->used_bytes += n;
	memset(p, 0, n);
	return p;
}

char *arena_strndup(struct tm_arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}
