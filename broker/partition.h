/*
 * partition.h — the broker's live partitions: the storage log of each
 * partition this node holds, its leadership, its high watermark, and the
 * fetches waiting for it to grow.
 *
 * The metadata image (metadata.h) says what should exist; partitions_sync()
 * makes the live set match it after every metadata change: it opens logs of
 * new partitions, updates leadership and leader epochs, and deletes the logs
 * of removed topics.
 *
 * Replication (Kafka's): the leader appends, followers pull with Fetch
 * (broker/replica.c) and the leader tracks their positions (broker/isr.h).
 * High watermark on the leader = minimum written offset over the ISR; on a
 * follower = the leader's HW, capped at its own log end.  The leader asks the
 * controller to shrink or expand the ISR with AlterPartition
 * (broker/api_alter_partition.c); the ISR it uses is the one the metadata
 * committed.
 *
 * Waiters: consumer fetches wait for the HW to move (partition_wait), replica
 * fetches for new data (partition_wait_data).  acks=all appends wait in the
 * partition's delayed-produce queue, in offset order, until the HW covers
 * them, their timeout passes, or leadership is lost.
 */
#ifndef TM_BROKER_PARTITION_H
#define TM_BROKER_PARTITION_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/isr.h"
#include "broker/metadata.h"
#include "storage/log.h"

struct tm_partition;

/* Someone waiting for a partition's high watermark to move (delayed fetch). */
struct tm_waiter {
	struct tm_waiter *prev, *next;
	struct tm_partition *p;
	void (*wake)(struct tm_waiter *w);
	void *arg;
};

struct tm_topic {
	char name[MD_TOPIC_NAME_MAX + 1];
	struct kuuid id;
	int32_t n_parts;
	struct tm_partition **parts;
	bool internal;                 /* __consumer_offsets */
	/* effective topic settings (broker defaults + topic overrides) */
	struct log_config log_cfg;
	bool log_append_time;
	int32_t max_message_bytes;
	int32_t min_insync_replicas;
	uint64_t seen_seq;
};

struct tm_delayed_produce;

struct tm_partition {
	struct tm_broker *b;
	struct tm_topic *topic;
	int32_t index;
	struct log *log;               /* NULL when this node holds no replica */
	int open_err;                  /* -errno: a replica here whose log could not be opened */
	int32_t leader_id;
	int32_t leader_epoch;
	int32_t partition_epoch;
	bool is_leader;
	int64_t high_watermark;
	struct tm_waiter waiters;      /* HW waiters: sentinel of a circular list */
	struct tm_waiter data_waiters; /* new-data waiters (replica fetches) */
	/* leader */
	struct isr_state isr;
	struct tm_delayed_produce *dp_head, *dp_tail;
	bool alter_inflight;           /* an AlterPartition is out */
	int64_t alter_retry_ms;        /* monotonic: no new AlterPartition before */
	int alter_failures;            /* refusals in a row */
	/* follower */
	int64_t fetch_backoff_ms;      /* monotonic: skip in follower fetches until */
};

int partitions_sync(struct tm_broker *b);
void partitions_close_all(struct tm_broker *b);
/* Periodic work: retention and segment roll. */
void partitions_tick(struct tm_broker *b, int64_t now_ms);
/* Whether any partition's log is offline (a write or fsync failed) or
 * could not be opened for a reason of the disk's. */
bool partitions_any_log_offline(struct tm_broker *b);

/* Walks every partition of every topic this node holds:
 *   struct partition_cursor c = { 0 };
 *   for (struct tm_partition *p; (p = partitions_next(b, &c));) ...
 * The walk must not add or drop topics. */
struct partition_cursor {
	size_t slot;
	int32_t index;
};
struct tm_partition *partitions_next(struct tm_broker *b, struct partition_cursor *c);

struct tm_topic *topic_by_name(struct tm_broker *b, const char *name, size_t len);
struct tm_topic *topic_by_id(struct tm_broker *b, const struct kuuid *id);
struct tm_partition *partition_get(struct tm_broker *b, struct kstr topic, int32_t index);

/* Kafka error for a produce/fetch to p on this node: NONE when this node
 * leads it, else NOT_LEADER_OR_FOLLOWER / KAFKA_STORAGE_ERROR. */
int partition_leader_error(const struct tm_partition *p);

typedef void (*partition_append_cb)(void *arg, int kerr, const struct log_append_result *res);
/* Appends validated batches as leader.  acks 1: cb runs once the data is in
 * the leader's log (durable per the flush policy); acks -1 (all): once the
 * high watermark covers it too — every ISR member has it — with
 * NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR fell below
 * min.insync.replicas meanwhile, REQUEST_TIMED_OUT after timeout_ms,
 * NOT_LEADER_OR_FOLLOWER when leadership moved first.  For a duplicate batch
 * of an idempotent producer cb reports the original offsets. */
void partition_append(struct tm_partition *p, const uint8_t *batches, size_t len, int acks, int32_t timeout_ms,
		      partition_append_cb cb, void *arg);
/* The same without the storage copy: the log writes the caller's bytes (it
 * sets offsets and epochs in them), which must stay valid and untouched
 * until cb has run (a produce request's frame does: it lives until the
 * response). */
void partition_append_inplace(struct tm_partition *p, uint8_t *batches, size_t len, int acks, int32_t timeout_ms,
			      partition_append_cb cb, void *arg);

void partition_wait(struct tm_partition *p, struct tm_waiter *w);
void partition_wait_data(struct tm_partition *p, struct tm_waiter *w);
void partition_unwait(struct tm_waiter *w);
/* Leader: recomputes the high watermark from the ISR and, when it moved,
 * wakes HW waiters and completes delayed produces. */
void partition_update_hw(struct tm_partition *p);
/* Follower: the leader's high watermark arrived (capped at our log end). */
void partition_set_follower_hw(struct tm_partition *p, int64_t leader_hw);
/* Leader: a follower fetched at fetch_offset; updates its position, the HW,
 * and asks for an ISR expansion when it caught up.  TM_ERR_NONE, or
 * NOT_LEADER_OR_FOLLOWER for a replica that is not assigned here. */
int partition_follower_fetched(struct tm_partition *p, int32_t replica, int64_t fetch_offset);
/* Periodic replication work: ISR shrink on led partitions (every tick). */
void partitions_isr_tick(struct tm_broker *b, int64_t now_ms);
/* Effective min.insync.replicas of p (never above its replica count) and its
 * committed ISR size. */
int partition_min_isr(const struct tm_partition *p);
int partition_isr_size(const struct tm_partition *p);
/* The controller answered this partition's AlterPartition (kerr: its error). */
void partition_alter_done(struct tm_partition *p, int kerr);

/* The effective value of a topic config key for t (override or broker
 * default), formatted as Kafka's DescribeConfigs shows it; NULL if unknown.
 * *is_default tells whether it came from the broker default. */
const char *topic_config_value(struct tm_broker *b, const struct md_topic *t, const char *key, char *buf,
			       size_t len, bool *is_default);
/* Validates a topic config key/value as Kafka would (INVALID_CONFIG otherwise). */
int topic_config_check(const char *key, const char *value, char *why, size_t why_len);
/* The list of topic config keys Tidemark knows, NULL-terminated. */
extern const char *const tm_topic_config_keys[];

#endif
