/*
 * tm_map.h — an open-addressing hash map from byte-string keys to pointers.
 * The map does not own keys or values: a key must stay valid while its entry
 * exists (store it inside the value).  Grows at 70% load; deletion uses
 * backward-shift so lookups never see tombstones.
 */
#ifndef TM_MAP_H
#define TM_MAP_H

#include <stddef.h>
#include <stdint.h>

struct tm_map_slot {
	const void *key;
	size_t key_len;
	uint64_t hash;
	void *value;
};

struct tm_map {
	struct tm_map_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t count;
};

void tm_map_init(struct tm_map *m);
void tm_map_deinit(struct tm_map *m);
void *tm_map_get(const struct tm_map *m, const void *key, size_t key_len);
/* Inserts or replaces; returns 0 or -ENOMEM. */
int tm_map_put(struct tm_map *m, const void *key, size_t key_len, void *value);
/* Returns the removed value, or NULL. */
void *tm_map_del(struct tm_map *m, const void *key, size_t key_len);
uint64_t tm_hash_bytes(const void *p, size_t n);

/* Iteration: for (size_t i = 0; i < m.cap; i++) if (m.slots[i].key) ... */

#endif
