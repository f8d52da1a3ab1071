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
 * High watermark: the leader's log end offset once written, when the ISR is
 * just the leader; with followers, the minimum over the ISR (replication).
 */
#ifndef TM_BROKER_PARTITION_H
#define TM_BROKER_PARTITION_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
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

struct tm_partition {
	struct tm_broker *b;
	struct tm_topic *topic;
	int32_t index;
	struct log *log;               /* NULL when this node holds no replica */
	int32_t leader_id;
	int32_t leader_epoch;
	bool is_leader;
	int64_t high_watermark;
	struct tm_waiter waiters;      /* sentinel of a circular list */
};

int partitions_sync(struct tm_broker *b);
void partitions_close_all(struct tm_broker *b);
/* Periodic work: retention and segment roll. */
void partitions_tick(struct tm_broker *b, int64_t now_ms);

struct tm_topic *topic_by_name(struct tm_broker *b, const char *name, size_t len);
struct tm_topic *topic_by_id(struct tm_broker *b, const struct kuuid *id);
struct tm_partition *partition_get(struct tm_broker *b, struct kstr topic, int32_t index);

/* Kafka error for a produce/fetch to p on this node: NONE when this node
 * leads it, else NOT_LEADER_OR_FOLLOWER / KAFKA_STORAGE_ERROR. */
int partition_leader_error(const struct tm_partition *p);

typedef void (*partition_append_cb)(void *arg, int kerr, const struct log_append_result *res);
/* Appends validated batches as leader; cb runs once the data is durable per
 * the flush policy and the high watermark covers it (acks=1/all) — or with
 * an error.  For a duplicate batch of an idempotent producer cb reports the
 * original offsets. */
void partition_append(struct tm_partition *p, const uint8_t *batches, size_t len, partition_append_cb cb,
		      void *arg);

void partition_wait(struct tm_partition *p, struct tm_waiter *w);
void partition_unwait(struct tm_waiter *w);
/* Recomputes the high watermark and wakes waiters when it moved. */
void partition_update_hw(struct tm_partition *p);

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
