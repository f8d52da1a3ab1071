/*
 * tm_map.c — linear probing with backward-shift deletion, FNV-1a hashing.
 */
#include "tm_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t tm_hash_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

void tm_map_init(struct tm_map *m)
{
	memset(m, 0, sizeof(*m));
}

void tm_map_deinit(struct tm_map *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static size_t find_slot(const struct tm_map *m, const void *key, size_t key_len, uint64_t h)
{
	size_t mask = m->cap - 1;
	size_t i = h & mask;
	while (m->slots[i].key) {
		if (m->slots[i].hash == h && m->slots[i].key_len == key_len &&
		    !memcmp(m->slots[i].key, key, key_len))
			return i;
		i = (i + 1) & mask;
	}
	return i;
}

void *tm_map_get(const struct tm_map *m, const void *key, size_t key_len)
{
	if (!m->cap)
		return NULL;
	size_t i = find_slot(m, key, key_len, tm_hash_bytes(key, key_len));
	return m->slots[i].key ? m->slots[i].value : NULL;
}

static int grow(struct tm_map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	struct tm_map_slot *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->slots[i].key)
			continue;
		size_t j = m->slots[i].hash & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	return 0;
}

int tm_map_put(struct tm_map *m, const void *key, size_t key_len, void *value)
{
	if ((m->count + 1) * 10 > m->cap * 7) {
		int rc = grow(m);
		if (rc)
			return rc;
	}
	uint64_t h = tm_hash_bytes(key, key_len);
	size_t i = find_slot(m, key, key_len, h);
	if (!m->slots[i].key)
		m->count++;
	m->slots[i].key = key;
	m->slots[i].key_len = key_len;
	m->slots[i].hash = h;
	m->slots[i].value = value;
	return 0;
}

void *tm_map_del(struct tm_map *m, const void *key, size_t key_len)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	size_t i = find_slot(m, key, key_len, tm_hash_bytes(key, key_len));
	if (!m->slots[i].key)
		return NULL;
	void *v = m->slots[i].value;
	m->slots[i].key = NULL;
	m->count--;
	/* Backward shift: move later entries of the probe run into the hole. */
	size_t j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (!m->slots[j].key)
			break;
		size_t home = m->slots[j].hash & mask;
		int between = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
		if (!between) {
			m->slots[i] = m->slots[j];
			m->slots[j].key = NULL;
			i = j;
		}
	}
	return v;
}
