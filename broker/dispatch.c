/*
 * dispatch.c — from a framed request to its handler, and ApiVersions.
 *
 * The table below is the single source of truth for what Tidemark speaks:
 * ApiVersions advertises exactly these ranges, and a request outside them
 * is refused.  Per Kafka's rules an unknown API or version closes the
 * connection, except ApiVersions itself, which answers a version it does
 * not know with error 35 in a v0 body listing what it supports (KIP-511),
 * so the client can retry with a version both sides know.
 */
#include "broker/api.h"
#include "broker/controller.h"
#include "broker/elect.h"
#include "broker/peer.h"
#include "broker/quorum.h"

#include <errno.h>
#include <string.h>

#include "common/kerr.h"
#include "common/tm_log.h"

static const struct tm_api_handler handlers[] = {
	{ KAFKA_API_PRODUCE, 3, 11, api_produce, false, false },
	{ KAFKA_API_FETCH, 4, 17, api_fetch, true, false },
	{ KAFKA_API_LIST_OFFSETS, 1, 9, api_list_offsets, false, false },
	{ KAFKA_API_METADATA, 0, 12, api_metadata, false, false },
	{ KAFKA_API_API_VERSIONS, 0, 4, api_api_versions, true, false },
	{ KAFKA_API_CREATE_TOPICS, 2, 7, api_create_topics, true, true },
	{ KAFKA_API_DELETE_TOPICS, 1, 6, api_delete_topics, true, true },
	{ KAFKA_API_DELETE_RECORDS, 0, 2, api_delete_records, false, false },
	{ KAFKA_API_INIT_PRODUCER_ID, 0, 5, api_init_producer_id, true, true },
	{ KAFKA_API_OFFSET_FOR_LEADER_EPOCH, 2, 4, api_offsets_for_leader_epoch, false, false },
	{ KAFKA_API_DESCRIBE_CONFIGS, 1, 4, api_describe_configs, false, false },
	{ KAFKA_API_ALTER_CONFIGS, 0, 2, api_alter_configs, true, true },
	{ KAFKA_API_CREATE_PARTITIONS, 0, 3, api_create_partitions, true, true },
	{ KAFKA_API_INCREMENTAL_ALTER_CONFIGS, 0, 1, api_incremental_alter_configs, true, true },
	/* leadership and replicas moved on purpose (api_elect.c, api_reassign.c) */
	{ KAFKA_API_ELECT_LEADERS, 0, 2, api_elect_leaders, true, true },
	{ KAFKA_API_ALTER_PARTITION_REASSIGNMENTS, 0, 1, api_alter_partition_reassignments, true, true },
	{ KAFKA_API_LIST_PARTITION_REASSIGNMENTS, 0, 0, api_list_partition_reassignments, true, true },
	{ KAFKA_API_DESCRIBE_CLUSTER, 0, 1, api_describe_cluster, true, false },
	{ KAFKA_API_VOTE, 0, 2, api_vote, true, false },
	{ KAFKA_API_BEGIN_QUORUM_EPOCH, 0, 1, api_begin_quorum_epoch, true, false },
	{ KAFKA_API_END_QUORUM_EPOCH, 0, 1, api_end_quorum_epoch, true, false },
	{ KAFKA_API_DESCRIBE_QUORUM, 0, 2, api_describe_quorum, true, false },
	{ KAFKA_API_FETCH_SNAPSHOT, 0, 1, api_fetch_snapshot, true, false },
	{ KAFKA_API_BROKER_REGISTRATION, 0, 3, api_broker_registration, true, false },
	{ KAFKA_API_BROKER_HEARTBEAT, 0, 1, api_broker_heartbeat, true, false },
	{ KAFKA_API_ALTER_PARTITION, 0, 3, api_alter_partition, true, false },
	/* group coordinator (api_groups.c) */
	{ KAFKA_API_FIND_COORDINATOR, 0, 6, api_find_coordinator, false, false },
	{ KAFKA_API_JOIN_GROUP, 0, 9, api_join_group, false, false },
	{ KAFKA_API_SYNC_GROUP, 0, 5, api_sync_group, false, false },
	{ KAFKA_API_HEARTBEAT, 0, 4, api_heartbeat, false, false },
	{ KAFKA_API_LEAVE_GROUP, 0, 5, api_leave_group, false, false },
	{ KAFKA_API_OFFSET_COMMIT, 0, 9, api_offset_commit, false, false },
	{ KAFKA_API_OFFSET_FETCH, 0, 9, api_offset_fetch, false, false },
	{ KAFKA_API_LIST_GROUPS, 0, 5, api_list_groups, false, false },
	{ KAFKA_API_DESCRIBE_GROUPS, 0, 5, api_describe_groups, false, false },
	{ KAFKA_API_DELETE_GROUPS, 0, 2, api_delete_groups, false, false },
	{ KAFKA_API_OFFSET_DELETE, 0, 0, api_offset_delete, false, false },
};

const struct tm_api_handler *dispatch_lookup(int16_t api_key)
{
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (handlers[i].api_key == api_key)
			return &handlers[i];
	return NULL;
}

int dispatch_api_count(void)
{
	return (int)(sizeof(handlers) / sizeof(handlers[0]));
}

const struct tm_api_handler *dispatch_api_at(int i)
{
	return &handlers[i];
}

/* With error_code UNSUPPORTED_VERSION the list holds only ApiVersions
 * itself, as Kafka answers (KIP-511): the client learns which versions of
 * ApiVersions to retry with. */
static void encode_api_versions(struct tm_req *req, int16_t version, int16_t error_code, bool controller_only)
{
	struct kafka_api_versions_response resp;
	kafka_api_versions_response_init(&resp);
	resp.error_code = error_code;
	int n = dispatch_api_count();
	resp.api_keys = arena_alloc(&req->arena, sizeof(*resp.api_keys) * (size_t)n);
	resp.api_keys_count = 0;
	for (int i = 0; resp.api_keys && i < n; i++) {
		const struct tm_api_handler *h = dispatch_api_at(i);
		if (controller_only && !h->controller_listener)
			continue;
		if (error_code && h->api_key != KAFKA_API_API_VERSIONS)
			continue;
		struct kafka_api_versions_response_api_version *k = &resp.api_keys[resp.api_keys_count++];
		k->api_key = h->api_key;
		k->min_version = h->min_version;
		k->max_version = h->max_version;
	}
	kafka_api_versions_response_encode(&req->resp, version, &resp);
}

void api_api_versions(struct tm_req *req)
{
	struct kafka_api_versions_request in;
	if (REQ_DECODE(req, api_versions, &in))
		return;
	encode_api_versions(req, req->hdr.api_version, TM_ERR_NONE,
			    req->conn && req->on_controller);
	req_finish(req);
}

static void forward_done(void *arg, int err, struct tm_rd *body)
{
	struct tm_req *req = arg;
	if (err) {
		/* The client sees a closed connection and retries, as after any
		 * network error; by then a controller may be known. */
		req_fail_decode(req);
		return;
	}
	wr_bytes(&req->resp, body->buf + body->pos, rd_remaining(body));
	req_finish(req);
}

/* Relays a controller operation to the active controller, byte for byte,
 * and its answer back (Kafka brokers forward the same way). */
static int dispatch_forward(struct tm_req *req)
{
	struct tm_peer *leader = quorum_leader_peer(req->b);
	if (!leader) {
		tm_info("server", "no active controller known for %s; closing so the client retries",
			kafka_api_lookup(req->hdr.api_key)->name);
		return -EAGAIN;
	}
	struct tm_wbuf w;
	wbuf_init(&w);
	wr_bytes(&w, req->body.buf + req->body.pos, rd_remaining(&req->body));
	int rc = peer_send(leader, req->hdr.api_key, req->hdr.api_version, &w, 30000, forward_done, req);
	wbuf_deinit(&w);
	return rc;
}

int dispatch_request(struct tm_req *req)
{
	struct tm_rd r;
	rd_init(&r, req->frame, req->frame_len);
	if (kafka_request_header_decode(&r, &req->hdr)) {
		tm_warn("server", "malformed request header (%zu bytes); closing the connection", req->frame_len);
		return -EBADMSG;
	}
	req->body = r;
	int16_t key = req->hdr.api_key;
	if (key >= 0 && key <= KAFKA_API_KEY_MAX)
		req->b->metrics.requests[key]++;
	int16_t ver = req->hdr.api_version;
	const struct tm_api_handler *h = dispatch_lookup(key);
	bool on_controller = req->on_controller;
	if (key == KAFKA_API_API_VERSIONS && h && (ver < h->min_version || ver > h->max_version)) {
		/* KIP-511: answer in a v0 body (and v0 header) with what we support. */
		req->hdr.api_version = 0;
		encode_api_versions(req, 0, TM_ERR_UNSUPPORTED_VERSION, on_controller);
		req_finish(req);
		return 0;
	}
	if (!h || (on_controller && !h->controller_listener)) {
		const struct kafka_api_desc *d = kafka_api_lookup(key);
		tm_warn("server", "request for unsupported API %d (%s) v%d on listener %s; closing the connection",
			key, d ? d->name : "unknown", ver, req->listener_name);
		return -EPROTO;
	}
	if (ver < h->min_version || ver > h->max_version) {
		const struct kafka_api_desc *d = kafka_api_lookup(key);
		tm_warn("server", "request for %s v%d, supported versions are %d-%d; closing the connection",
			d ? d->name : "?", ver, h->min_version, h->max_version);
		return -EPROTO;
	}
	if (h->forward && !quorum_is_leader(req->b)) {
		if (on_controller) {
			/* Forwarded here by a node that thought we lead: no second hop. */
			tm_info("server", "%s for the active controller arrived here, but node %d leads now; closing so the sender retries",
				kafka_api_lookup(key)->name, quorum_leader_id(req->b));
			return -EPROTO;
		}
		return dispatch_forward(req);
	}
	h->handle(req);
	return 0;
}
