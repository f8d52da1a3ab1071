/*
 * controller.h — the active controller: validates metadata changes (topics,
 * partitions, configs, producer-id blocks, broker registrations), turns them
 * into KRaft metadata records, commits them to the metadata log, and applies
 * committed records to the image (broker/metadata.c), after which the live
 * partitions follow (partitions_sync).
 *
 * Operations run one at a time, in submission order: an operation validates
 * against the image as every earlier operation left it, so two CreateTopics
 * for one name cannot both pass.  `controller_run(b, fn, arg)` calls fn when
 * the controller is free; fn either commits a transaction with
 * controller_commit() (whose callback runs once the records are committed
 * and applied) or calls controller_done() when it has nothing to commit.
 *
 * The metadata log (broker/quorum.c) is `__cluster_metadata-0` under
 * log.dirs: record batches whose record values are Kafka's metadata record
 * frame
 *   | frame version uvarint (1) | record type uvarint | record version uvarint | record |
 */
#ifndef TM_BROKER_CONTROLLER_H
#define TM_BROKER_CONTROLLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "common/bytes.h"

/* A set of metadata records committed atomically. */
struct ctl_txn {
	struct tm_wbuf values;      /* framed record values back to back */
	uint32_t *lens;             /* length of each value */
	int n;
	int cap;
};

void ctl_txn_init(struct ctl_txn *t);
void ctl_txn_deinit(struct ctl_txn *t);
/* Encodes record (a struct kafka_*_record of `type`) at `version`. 0 or -ENOMEM. */
int ctl_txn_add(struct ctl_txn *t, int16_t type, int16_t version, const void *record);

typedef void (*ctl_fn)(struct tm_broker *b, void *arg);
typedef void (*ctl_commit_cb)(struct tm_broker *b, void *arg, int err);

int controller_start(struct tm_broker *b);
/* Applies the committed batches in buf (whole batches, from the metadata
 * log) below hw to the image; *next_offset is the offset after the last
 * applied one.  Control batches are skipped.  0 or -errno (corrupt log). */
int controller_apply_batches(struct tm_broker *b, const uint8_t *buf, size_t len, int64_t hw, int64_t *next_offset);
/* The quorum's leadership moved (leader: this node is the active controller). */
void controller_role_changed(struct tm_broker *b, bool leader);
/* Registers this node (its endpoints and rack) through the controller;
 * the active controller only. */
void controller_register_self(struct tm_broker *b);
/* This node's client endpoints as advertised (name, host, port, security). */
int controller_local_endpoints(struct tm_broker *b, struct kstr *names, struct kstr *hosts, int *ports,
			       int16_t *security, int max);
/* BrokerRegistration from another node (controller listener). */
void api_broker_registration(struct tm_req *req);
/* BrokerHeartbeat: keeps a broker's lease; unfences a returning broker. */
void api_broker_heartbeat(struct tm_req *req);
/* Active controller: fences brokers whose lease lapsed (broker.session.timeout.ms). */
void controller_tick(struct tm_broker *b, int64_t now_ms);
void controller_stop(struct tm_broker *b);
void controller_run(struct tm_broker *b, ctl_fn fn, void *arg);
/* Takes ownership of t's contents.  cb runs after commit+apply (err 0), or
 * with -errno when the records could not be committed. */
void controller_commit(struct tm_broker *b, struct ctl_txn *t, ctl_commit_cb cb, void *arg);
void controller_done(struct tm_broker *b);

/* Allocates `n` fresh topic ids (random, never zero, never in use). */
void controller_new_topic_id(struct tm_broker *b, struct kuuid *out);
/* Places n_parts partitions with rf replicas each over the live brokers,
 * leaders spread round-robin.  Returns 0 or TM_ERR_INVALID_REPLICATION_FACTOR. */
int controller_place(struct tm_broker *b, int32_t n_parts, int16_t rf, int32_t first_partition,
		     int32_t *replicas_out /* n_parts * rf */);

/* Adds TopicRecord + PartitionRecords + ConfigRecords of a new topic to t. */
int controller_add_topic_records(struct tm_broker *b, struct ctl_txn *t, const char *name, int32_t n_parts,
				 int16_t rf, const int32_t *replicas, const char *const *config_keys,
				 const char *const *config_values, int n_configs, struct kuuid *id_out);

/* Validates a topic name as Kafka does; returns TM_ERR_NONE or
 * TM_ERR_INVALID_TOPIC_EXCEPTION with a message. */
int topic_name_check(const char *name, int32_t len, char *why, size_t why_len);

#endif
