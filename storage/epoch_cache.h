/*
 * epoch_cache.h — the leader epoch cache of one partition (KIP-101): for
 * each leader epoch, the first offset written in it.  Followers ask the
 * leader for the end offset of their latest epoch (OffsetsForLeaderEpoch) and
 * truncate divergent history to it.
 *
 * Invariant: entries are strictly increasing in epoch and in start offset.
 *
 * File "leader-epoch-checkpoint", Kafka's text format (LeaderEpochCheckpointFile),
 * so Kafka tools and Kafka itself read it:
 *
 * LINE  CONTENT
 *    1  version, "0"
 *    2  entry count N
 *  3.. N lines "<epoch> <start offset>", oldest first
 */
#ifndef TM_STORAGE_EPOCH_CACHE_H
#define TM_STORAGE_EPOCH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EPOCH_CACHE_FILE "leader-epoch-checkpoint"
#define EPOCH_CACHE_ENTRIES_MAX 65536

struct epoch_entry {
	int32_t epoch;
	int64_t start_offset;
};

struct epoch_cache {
	struct epoch_entry *v;
	size_t n;
	size_t cap;
};

void epoch_cache_init(struct epoch_cache *c);
void epoch_cache_deinit(struct epoch_cache *c);
void epoch_cache_clear(struct epoch_cache *c);
/* Loads dir/leader-epoch-checkpoint (missing file: empty cache).  0, or
 * -EBADMSG when malformed (the cache is then left empty), or -errno. */
int epoch_cache_load(struct epoch_cache *c, const char *dir);
/* Writes the file durably (tmp, fsync, rename). */
int epoch_cache_save(const struct epoch_cache *c, const char *dir);
/* Kafka's assign(): 1 when the cache changed, 0 when not needed, -EINVAL
 * for negative arguments, -ENOMEM.  Entries with epoch >= `epoch` or start
 * offset >= `start_offset` are dropped first. */
int epoch_cache_assign(struct epoch_cache *c, int32_t epoch, int64_t start_offset);
/* Drops entries starting at or after end_offset; true when changed. */
bool epoch_cache_truncate_from_end(struct epoch_cache *c, int64_t end_offset);
/* Drops entries wholly below start_offset (the last of them is kept, moved up
 * to start_offset); true when changed. */
bool epoch_cache_truncate_from_start(struct epoch_cache *c, int64_t start_offset);
/* -1 when empty. */
int32_t epoch_cache_latest(const struct epoch_cache *c);
/* Kafka's endOffsetFor(requested, logEndOffset). */
void epoch_cache_end_offset_for(const struct epoch_cache *c, int32_t requested, int64_t leo,
				int32_t *epoch_out, int64_t *offset_out);

#endif
