/*
 * api_metadata.c — Metadata and DescribeCluster: the picture of the cluster
 * that clients route by.  Broker endpoints are the advertised ones of the
 * listener the request arrived on (clients connect to exactly what we say).
 * Metadata for unknown topics auto-creates them when both the request and
 * auto.create.topics.enable allow it; the answer waits for the creation to
 * commit, so the client sees the new topic's leaders at once.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/partition.h"
#include "broker/quorum.h"
#include "common/kerr.h"
#include "common/tm_assert.h"

/* The endpoint of broker `br` for listener `name`, or NULL. */
static const struct md_endpoint *broker_endpoint(const struct md_broker *br, const char *name)
{
	for (int i = 0; i < br->n_eps; i++)
		if (!strcmp(br->eps[i].name, name))
			return &br->eps[i];
	return NULL;
}

/* The listener name whose endpoints a client on `listener` should see:
 * the same listener, or for the controller listener the inter-broker one. */
static const char *route_listener(struct tm_broker *b, const char *listener)
{
	if (!config_is_controller_listener(&b->cfg, listener))
		return listener;
	if (b->cfg.inter_broker_listener_name[0])
		return b->cfg.inter_broker_listener_name;
	for (int i = 0; i < b->cfg.listener_count; i++)
		if (!config_is_controller_listener(&b->cfg, b->cfg.listeners[i].name))
			return b->cfg.listeners[i].name;
	return listener;
}

static void fill_topic(struct tm_req *req, struct kafka_metadata_response_metadata_response_topic *rt,
		       const struct md_topic *t)
{
	struct tm_broker *b = req->b;
	rt->error_code = TM_ERR_NONE;
	rt->name = kstr_c(t->name);
	rt->topic_id = t->id;
	rt->is_internal = !strcmp(t->name, "__consumer_offsets");
	rt->partitions = arena_alloc(&req->arena, sizeof(*rt->partitions) * (size_t)(t->n_partitions ? t->n_partitions : 1));
	rt->partitions_count = rt->partitions ? t->n_partitions : 0;
	for (int32_t i = 0; i < rt->partitions_count; i++) {
		const struct md_partition *mp = &t->parts[i];
		struct kafka_metadata_response_metadata_response_partition *p = &rt->partitions[i];
		p->partition_index = i;
		p->leader_id = mp->leader;
		p->leader_epoch = mp->leader_epoch;
		p->replica_nodes = (int32_t *)mp->replicas;
		p->replica_nodes_count = mp->n_replicas;
		p->isr_nodes = (int32_t *)mp->isr;
		p->isr_nodes_count = mp->n_isr;
		/* Replicas on fenced or unknown brokers are offline. */
		p->offline_replicas = arena_alloc(&req->arena, sizeof(int32_t) * (size_t)(mp->n_replicas ? mp->n_replicas : 1));
		p->offline_replicas_count = 0;
		for (int r = 0; r < mp->n_replicas && p->offline_replicas; r++) {
			struct md_broker *br = md_broker(&b->md, mp->replicas[r]);
			if (!br || br->fenced)
				p->offline_replicas[p->offline_replicas_count++] = mp->replicas[r];
		}
		p->error_code = mp->leader < 0 ? TM_ERR_LEADER_NOT_AVAILABLE : TM_ERR_NONE;
	}
}

static void fill_unknown(struct kafka_metadata_response_metadata_response_topic *rt, struct kstr name, int16_t err)
{
	rt->error_code = err;
	rt->name = name;
	rt->partitions_count = 0;
	rt->topic_authorized_operations = INT32_MIN;
}

struct metadata_op {
	struct tm_req *req;
	struct kafka_metadata_request in;
};

static void metadata_respond(struct tm_req *req, const struct kafka_metadata_request *in,
			     const struct topic_spec *created, int n_created)
{
	struct tm_broker *b = req->b;
	struct kafka_metadata_response out;
	kafka_metadata_response_init(&out);
	const char *lname = route_listener(b, req->listener_name);
	out.brokers = arena_alloc(&req->arena, sizeof(*out.brokers) * (size_t)(b->md.n_brokers ? b->md.n_brokers : 1));
	out.brokers_count = 0;
	for (int i = 0; out.brokers && i < b->md.n_brokers; i++) {
		const struct md_broker *br = &b->md.brokers[i];
		const struct md_endpoint *ep = broker_endpoint(br, lname);
		if (br->fenced || !ep)
			continue;
		struct kafka_metadata_response_metadata_response_broker *o = &out.brokers[out.brokers_count++];
		o->node_id = br->id;
		o->host = kstr_c(ep->host);
		o->port = ep->port;
		o->rack = br->rack[0] ? kstr_c(br->rack) : kstr_null();
	}
	out.cluster_id = kstr_c(b->cluster_id);
	/* The active controller when it is a registered broker (every Tidemark
	 * node is), so admin clients send it their changes directly. */
	out.controller_id = quorum_leader_id(b) >= 0 && md_broker(&b->md, quorum_leader_id(b)) ? quorum_leader_id(b)
												 : b->cfg.node_id;

	bool all = in->topics_count < 0 || (req->hdr.api_version == 0 && in->topics_count == 0);
	if (all) {
		size_t n = b->md.topics.count;
		out.topics = arena_alloc(&req->arena, sizeof(*out.topics) * (n ? n : 1));
		out.topics_count = 0;
		for (size_t i = 0; out.topics && i < b->md.topics.cap; i++)
			if (b->md.topics.slots[i].key)
				fill_topic(req, &out.topics[out.topics_count++], b->md.topics.slots[i].value);
	} else {
		out.topics = arena_alloc(&req->arena, sizeof(*out.topics) * (size_t)(in->topics_count ? in->topics_count : 1));
		out.topics_count = out.topics ? in->topics_count : 0;
		for (int32_t i = 0; i < out.topics_count; i++) {
			const struct kafka_metadata_request_metadata_request_topic *q = &in->topics[i];
			struct kafka_metadata_response_metadata_response_topic *rt = &out.topics[i];
			const struct md_topic *t = NULL;
			if (q->name.len > 0)
				t = md_topic_by_name(&b->md, q->name.ptr, (size_t)q->name.len);
			else if (!kuuid_is_zero(&q->topic_id))
				t = md_topic_by_id(&b->md, &q->topic_id);
			if (t) {
				fill_topic(req, rt, t);
				continue;
			}
			int16_t err = q->name.len <= 0 && !kuuid_is_zero(&q->topic_id) ? TM_ERR_UNKNOWN_TOPIC_ID
											: TM_ERR_UNKNOWN_TOPIC_OR_PARTITION;
			for (int c = 0; c < n_created; c++) {
				if (q->name.len != (int32_t)strlen(created[c].name) ||
				    memcmp(q->name.ptr, created[c].name, (size_t)q->name.len))
					continue;
				if (!created[c].error_code || created[c].error_code == TM_ERR_TOPIC_ALREADY_EXISTS)
					/* Created by the active controller, not yet applied here: the
					 * client retries, as with Kafka's answer in that window. */
					err = TM_ERR_LEADER_NOT_AVAILABLE;
				else if (created[c].error_code == TM_ERR_INVALID_TOPIC_EXCEPTION)
					err = TM_ERR_INVALID_TOPIC_EXCEPTION;
			}
			fill_unknown(rt, q->name, err);
			rt->topic_id = q->topic_id;
		}
	}
	REQ_RESPOND(req, metadata, &out);
}

static void metadata_created(struct tm_broker *b, void *arg, struct topic_spec *specs, int n)
{
	struct metadata_op *op = arg;
	(void)b;
	metadata_respond(op->req, &op->in, specs, n);
	free(op);
}

void api_metadata(struct tm_req *req)
{
	struct tm_broker *b = req->b;
	struct metadata_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	op->req = req;
	if (REQ_DECODE(req, metadata, &op->in)) {
		free(op);
		return;
	}
	/* v0-v3 have no allow flag: they auto-create when the broker does. */
	bool allow = req->hdr.api_version < 4 || op->in.allow_auto_topic_creation;
	int n_missing = 0;
	if (allow && b->cfg.auto_create_topics_enable && op->in.topics_count > 0) {
		for (int32_t i = 0; i < op->in.topics_count; i++) {
			struct kstr nm = op->in.topics[i].name;
			if (nm.len > 0 && !md_topic_by_name(&b->md, nm.ptr, (size_t)nm.len))
				n_missing++;
		}
	}
	if (!n_missing) {
		metadata_respond(req, &op->in, NULL, 0);
		free(op);
		return;
	}
	struct topic_spec *specs = arena_alloc(&req->arena, sizeof(*specs) * (size_t)n_missing);
	if (!specs) {
		free(op);
		req_fail_decode(req);
		return;
	}
	int k = 0;
	for (int32_t i = 0; i < op->in.topics_count; i++) {
		struct kstr nm = op->in.topics[i].name;
		if (nm.len <= 0 || md_topic_by_name(&b->md, nm.ptr, (size_t)nm.len))
			continue;
		specs[k].name = arena_strndup(&req->arena, nm.ptr, (size_t)nm.len);
		specs[k].n_parts = -1;
		specs[k].rf = -1;
		k++;
	}
	topics_create(b, specs, k, false, metadata_created, op);
}

void api_describe_cluster(struct tm_req *req)
{
	struct tm_broker *b = req->b;
	struct kafka_describe_cluster_request in;
	if (REQ_DECODE(req, describe_cluster, &in))
		return;
	struct kafka_describe_cluster_response out;
	kafka_describe_cluster_response_init(&out);
	out.cluster_id = kstr_c(b->cluster_id);
	out.controller_id = quorum_leader_id(b) >= 0 ? quorum_leader_id(b) : b->cfg.node_id;
	out.endpoint_type = in.endpoint_type;
	if (in.endpoint_type == 2) {
		/* Controllers: the voters, at their controller listener addresses. */
		out.brokers = arena_alloc(&req->arena, sizeof(*out.brokers) * (size_t)b->cfg.voter_count);
		out.brokers_count = out.brokers ? b->cfg.voter_count : 0;
		for (int32_t i = 0; i < out.brokers_count; i++) {
			out.brokers[i].broker_id = b->cfg.voters[i].id;
			out.brokers[i].host = kstr_c(b->cfg.voters[i].host);
			out.brokers[i].port = b->cfg.voters[i].port;
			out.brokers[i].rack = kstr_null();
		}
	} else if (in.endpoint_type != 1) {
		out.error_code = TM_ERR_UNSUPPORTED_ENDPOINT_TYPE;
		out.error_message = kstr_c("Unsupported endpoint type");
	} else {
		const char *lname = route_listener(b, req->listener_name);
		out.brokers = arena_alloc(&req->arena, sizeof(*out.brokers) * (size_t)(b->md.n_brokers ? b->md.n_brokers : 1));
		out.brokers_count = 0;
		for (int i = 0; out.brokers && i < b->md.n_brokers; i++) {
			const struct md_broker *br = &b->md.brokers[i];
			const struct md_endpoint *ep = broker_endpoint(br, lname);
			if (br->fenced || !ep)
				continue;
			struct kafka_describe_cluster_response_describe_cluster_broker *o = &out.brokers[out.brokers_count++];
			o->broker_id = br->id;
			o->host = kstr_c(ep->host);
			o->port = ep->port;
			o->rack = br->rack[0] ? kstr_c(br->rack) : kstr_null();
		}
	}
	REQ_RESPOND(req, describe_cluster, &out);
}
