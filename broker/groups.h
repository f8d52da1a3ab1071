/*
 * groups.h — the group coordinator (classic consumer-group protocol) and
 * committed offsets, kept in the internal __consumer_offsets topic.
 *
 * The coordinator of a group is the leader of partition
 * abs(javaHashCode(group_id)) % partitions of __consumer_offsets, as in
 * Kafka, so any Kafka client finds it with FindCoordinator.  Every group and
 * every committed offset lives in that partition as a record with Kafka's
 * key/value schemas (see docs/groups.md for the byte layouts); this node
 * keeps in memory the groups of the partitions it leads, rebuilt by
 * replaying the partition when it becomes leader (and at start-up).
 *
 * groups.c owns the state (groups, offsets, loading, persistence, expiry);
 * api_groups.c turns requests into calls below; group_sm.c is the pure
 * JoinGroup/SyncGroup/Heartbeat state machine.
 */
#ifndef TM_BROKER_GROUPS_H
#define TM_BROKER_GROUPS_H

#include <stdint.h>

#include "broker/broker.h"
#include "broker/group_sm.h"

#define GROUPS_TOPIC "__consumer_offsets"

int groups_start(struct tm_broker *b);
void groups_stop(struct tm_broker *b);
/* Timers: session timeouts, rebalance timeouts, offset expiry, loading
 * partitions this node became leader of.  now_ms is monotonic. */
void groups_tick(struct tm_broker *b, int64_t now_ms);

/* ---- for the request handlers (api_groups.c) ---- */

/* A committed offset. */
struct gc_offset {
	char *topic;
	int32_t partition;
	int64_t offset;
	int32_t leader_epoch;   /* -1: none */
	char *metadata;         /* never NULL ("" when none) */
	int64_t commit_ms;      /* wall clock */
	int64_t expire_ms;      /* -1: by retention */
	uint8_t *key;           /* map key: topic, NUL, partition (4 bytes) */
	size_t key_len;
};

struct gc_group {
	struct gsm_group sm;
	int32_t part;            /* its __consumer_offsets partition */
	struct tm_map offsets;   /* key -> struct gc_offset */
	int64_t empty_since_ms;  /* wall clock: when it last became Empty */
	int inflight;            /* appends not yet completed for this group */
};

/* Java's String.hashCode over the UTF-16 form of a UTF-8 string. */
int32_t groups_java_hash(const char *s, size_t len);
/* The __consumer_offsets partition of a group id, for n_parts partitions. */
int32_t groups_partition_for(const char *id, size_t len, int32_t n_parts);

/* The node leading the group's partition (for FindCoordinator): 0 with
 * *node_id, or a Kafka error (COORDINATOR_NOT_AVAILABLE while
 * __consumer_offsets is being created or has no leader).  Starts creating
 * the topic when it does not exist yet. */
int16_t groups_find_coordinator(struct tm_broker *b, struct kstr group_id, int32_t *node_id);

/* Looks a group up for a request: TM_ERR_NONE with *out (NULL when the group
 * does not exist and create is false), NOT_COORDINATOR when the group's
 * partition is not led here, COORDINATOR_LOAD_IN_PROGRESS while it loads,
 * INVALID_GROUP_ID for an empty id. */
int16_t groups_lookup(struct tm_broker *b, struct kstr group_id, bool create, struct gc_group **out);
struct gsm_ctx *groups_ctx(struct tm_broker *b);
int64_t groups_now(struct tm_broker *b);

struct gc_offset *groups_offset_get(struct gc_group *g, struct kstr topic, int32_t partition);

/* One offset to commit or delete. */
struct gc_commit {
	struct kstr topic;
	int32_t partition;
	int64_t offset;
	int32_t leader_epoch;
	struct kstr metadata;
	int16_t error;          /* in: TM_ERR_NONE to write it; out: the result */
};
typedef void (*groups_write_cb)(struct tm_broker *b, void *arg, int16_t error);
/* Writes the commits whose error is NONE to the group's partition (tombstones
 * when `tombstone`), applies them in memory once the append completed, then
 * calls cb (with the append's Kafka error, also stored in each commit: c
 * must stay valid until then).  cb may be NULL (c is then not written back
 * and may be freed on return); it may run before this returns. */
void groups_write_offsets(struct tm_broker *b, struct gc_group *g, struct gc_commit *c, int n, bool tombstone,
			  groups_write_cb cb, void *arg);
/* DeleteGroups: tombstones for every offset and the group metadata, then
 * drops the group; cb runs after the append. */
void groups_delete_group(struct tm_broker *b, struct gc_group *g, groups_write_cb cb, void *arg);
/* Frees a group that a refused request created and that holds nothing
 * (no members, no protocol, no offsets), so it does not show in ListGroups. */
void groups_maybe_drop(struct tm_broker *b, struct gc_group *g);
/* Answers for waiting JoinGroup / SyncGroup requests (waiter = the struct
 * tm_req); implemented in api_groups.c. */
void api_groups_join_done(void *waiter, const struct gsm_group *g, const struct gsm_join_result *r);
void api_groups_sync_done(void *waiter, const struct gsm_sync_result *r);
/* Does any member's ConsumerProtocolSubscription (the metadata of the
 * selected protocol of a "consumer" group) name the topic? */
bool groups_subscribed(const struct gc_group *g, struct kstr topic);
/* Iteration over the groups of loaded partitions. */
void groups_foreach(struct tm_broker *b, void (*fn)(struct gc_group *g, void *arg), void *arg);

#endif
