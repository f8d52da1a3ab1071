/*
 * api.h — the request handlers, one function per Kafka API.  Each decodes
 * req->body at req->hdr.api_version, does its work, encodes the response
 * body into req->resp and calls req_finish() — at once, or later from a
 * storage completion or a timer.  A body that does not decode goes to
 * req_fail_decode(), which closes the connection.
 */
#ifndef TM_BROKER_API_H
#define TM_BROKER_API_H

#include "broker/broker.h"
#include "broker/peer.h"

void api_api_versions(struct tm_req *req);
void api_metadata(struct tm_req *req);
void api_produce(struct tm_req *req);
void api_fetch(struct tm_req *req);
/* Drops the fetches still waiting for data (shutdown). */
void fetch_abort_all(struct tm_broker *b);
void api_list_offsets(struct tm_req *req);
void api_create_topics(struct tm_req *req);
void api_delete_topics(struct tm_req *req);
void api_create_partitions(struct tm_req *req);
void api_describe_configs(struct tm_req *req);
void api_alter_configs(struct tm_req *req);
void api_incremental_alter_configs(struct tm_req *req);
void api_describe_cluster(struct tm_req *req);
void api_init_producer_id(struct tm_req *req);
void api_delete_records(struct tm_req *req);
void api_offsets_for_leader_epoch(struct tm_req *req);
/* AlterPartition on the active controller (api_alter_partition.c). */
void api_alter_partition(struct tm_req *req);
/* The same for a leader on this node: body is an encoded AlterPartition
 * request; cb gets the encoded response (err 0) like a peer's answer. */
int alter_partition_local(struct tm_broker *b, const uint8_t *body, size_t len, int16_t version, peer_resp_cb cb,
			  void *arg);
/* group coordinator (api_groups.c) */
void api_find_coordinator(struct tm_req *req);
void api_join_group(struct tm_req *req);
void api_sync_group(struct tm_req *req);
void api_heartbeat(struct tm_req *req);
void api_leave_group(struct tm_req *req);
void api_offset_commit(struct tm_req *req);
void api_offset_fetch(struct tm_req *req);
void api_list_groups(struct tm_req *req);
void api_describe_groups(struct tm_req *req);
void api_delete_groups(struct tm_req *req);
void api_offset_delete(struct tm_req *req);

/* ---- topic creation, shared by CreateTopics, Metadata auto-creation and the
 * group coordinator's __consumer_offsets ---- */
struct topic_spec {
	const char *name;          /* NUL-terminated, arena or static */
	int32_t n_parts;           /* -1: num.partitions */
	int16_t rf;                /* -1: default.replication.factor */
	int32_t *assignment;       /* n_parts * rf broker ids, or NULL to place automatically */
	int n_configs;
	const char **config_keys;
	const char **config_values;
	/* results */
	int16_t error_code;
	char error_message[300];
	struct kuuid id;
};
typedef void (*topics_create_cb)(struct tm_broker *b, void *arg, struct topic_spec *specs, int n);
/* Validates and creates the topics through the controller; cb runs when
 * every valid one is committed (or at once for validate_only / all invalid). */
void topics_create(struct tm_broker *b, struct topic_spec *specs, int n, bool validate_only, topics_create_cb cb,
		   void *arg);

/* Encodes the response struct of req's API at req->hdr.api_version into
 * req->resp and finishes the request. */
#define REQ_RESPOND(req, kind, resp_ptr)                                             \
	do {                                                                         \
		kafka_##kind##_response_encode(&(req)->resp, (req)->hdr.api_version, (resp_ptr)); \
		req_finish(req);                                                     \
	} while (0)

/* Decodes req's body into *out; on failure closes the connection and returns -1. */
#define REQ_DECODE(req, kind, out)                                                   \
	(kafka_##kind##_request_decode(&(req)->body, (req)->hdr.api_version, (out), &(req)->arena) \
		 ? (req_fail_decode(req), -1)                                        \
		 : 0)

#endif
