/*
 * metadata.h — the cluster metadata image and the pure function that applies
 * KRaft metadata records to it.
 *
 * The image is what the metadata log says, replayed in order: topics with
 * their ids and partitions (replicas, ISR, leader, leader epoch, partition
 * epoch), topic and broker configs, registered brokers, the next producer id
 * block, feature levels.  md_apply() touches nothing but the image: no I/O,
 * no clock; the broker reacts to changes afterwards (creating or deleting
 * partition logs).  A record that contradicts the image (a partition of an
 * unknown topic, a duplicate topic id) is -EINVAL: a corrupt metadata log,
 * reported at start-up, never applied half-way.
 */
#ifndef TM_BROKER_METADATA_H
#define TM_BROKER_METADATA_H

#include <stdbool.h>
#include <stdint.h>

#include "common/tm_map.h"
#include "protocol/kafka_types.h"

#define MD_REPLICAS_MAX 32
#define MD_ENDPOINTS_MAX 8
#define MD_BROKERS_MAX 256
#define MD_PARTITIONS_MAX 100000
#define MD_TOPIC_NAME_MAX 249
#define MD_CONFIG_VALUE_MAX 4096

/* ConfigRecord resource types (Kafka's ConfigResource.Type). */
enum { MD_RESOURCE_TOPIC = 2, MD_RESOURCE_BROKER = 4 };

struct md_partition {
	int32_t leader;                 /* -1: none */
	int32_t leader_epoch;
	int32_t partition_epoch;
	int32_t replicas[MD_REPLICAS_MAX];
	int n_replicas;
	int32_t isr[MD_REPLICAS_MAX];
	int n_isr;
	/* An ongoing reassignment (KIP-455): replicas = target + removing;
	 * both empty when none is under way. */
	int32_t adding[MD_REPLICAS_MAX];
	int n_adding;
	int32_t removing[MD_REPLICAS_MAX];
	int n_removing;
};

struct md_config {
	char *key;
	char *value;
};

struct md_topic {
	char name[MD_TOPIC_NAME_MAX + 1];
	struct kuuid id;
	int32_t n_partitions;
	struct md_partition *parts;
	struct md_config *configs;
	int n_configs;
};

struct md_endpoint {
	char name[64];
	char host[256];
	int32_t port;
	int16_t security_protocol;  /* 0 PLAINTEXT, 1 SSL */
};

struct md_broker {
	int32_t id;
	int64_t epoch;
	bool fenced;
	bool in_controlled_shutdown;
	char rack[64];              /* "" = none */
	struct md_endpoint eps[MD_ENDPOINTS_MAX];
	int n_eps;
};

struct md_image {
	struct tm_map topics;       /* name -> md_topic */
	struct tm_map topic_ids;    /* 16-byte id -> md_topic */
	struct md_broker brokers[MD_BROKERS_MAX];
	int n_brokers;
	struct md_config *broker_configs;  /* resource BROKER, name "" (cluster default) */
	int n_broker_configs;
	int64_t next_producer_id;
	int16_t metadata_version;
	int64_t applied_offset;     /* offset of the last applied record, -1 initially */
	uint64_t change_seq;        /* bumped on every change the broker must react to */
};

void md_image_init(struct md_image *img);
void md_image_deinit(struct md_image *img);

/* Applies one decoded metadata record (type: enum kafka_metadata_record_type).
 * Returns 0, -EINVAL when the record contradicts the image, -ENOMEM. */
int md_apply(struct md_image *img, int16_t type, const void *record);

struct md_topic *md_topic_by_name(const struct md_image *img, const char *name, size_t len);
struct md_topic *md_topic_by_id(const struct md_image *img, const struct kuuid *id);
struct md_broker *md_broker(struct md_image *img, int32_t id);
/* A topic config value, or NULL when the topic does not override it. */
const char *md_topic_config(const struct md_topic *t, const char *key);
bool md_replica_in(const int32_t *set, int n, int32_t id);

#endif
