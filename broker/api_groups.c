/*
 * api_groups.c — the group coordinator's request handlers: FindCoordinator,
 * JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
 * ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.
 *
 * Each decodes its request, asks groups.c / group_sm.c, and encodes Kafka's
 * answer for the request's version.  JoinGroup and SyncGroup may wait: the
 * request itself is the state machine's waiter and is finished from
 * api_groups_join_done / api_groups_sync_done.  OffsetCommit and
 * DeleteGroups answer after their records are appended.
 *
 * Version quirks kept here: JoinGroup before v7 has a non-null protocol
 * name; LeaveGroup before v3 reports the member's error at the top level;
 * OffsetFetch reports a group error in every partition (v0-1), at the top
 * (v2-7) or per group (v8+).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/api.h"
#include "broker/groups.h"
#include "broker/partition.h"
#include "common/kerr.h"
#include "common/tm_log.h"

static size_t klen(struct kstr s)
{
	return s.len > 0 ? (size_t)s.len : 0;
}

static const char *kptr(struct kstr s)
{
	return s.ptr ? s.ptr : "";
}

/* client_host as Kafka shows it: "/" + the client's address. */
static struct kstr client_host(struct tm_req *req)
{
	return kstr_c(req->peer_host[0] ? req->peer_host : "/");
}

/* ---- FindCoordinator ------------------------------------------------------ */

struct coord {
	int16_t error;
	const char *message;
	int32_t node_id;
	const char *host;
	int32_t port;
};

static void find_one(struct tm_req *req, int8_t key_type, struct kstr key, struct coord *c)
{
	struct tm_broker *b = req->b;
	*c = (struct coord){ .error = TM_ERR_NONE, .node_id = -1, .host = "", .port = -1 };
	if (key_type == 1) {
		c->error = TM_ERR_COORDINATOR_NOT_AVAILABLE;
		c->message = "Tidemark does not support transactions yet";
		return;
	}
	if (key_type != 0) {
		c->error = TM_ERR_INVALID_REQUEST;
		c->message = "Unsupported coordinator key type";
		return;
	}
	int32_t node;
	int16_t e = groups_find_coordinator(b, key, &node);
	if (e) {
		c->error = e;
		c->message = "The coordinator is not available";
		return;
	}
	if (node == b->cfg.node_id) {
		const struct tm_listener *l = config_advertised_for(&b->cfg, req->listener_name ? req->listener_name : "");
		if (l) {
			c->node_id = node;
			c->host = l->host[0] ? l->host : "localhost";
			c->port = l->port;
			return;
		}
	} else {
		struct md_broker *mb = md_broker(&b->md, node);
		for (int i = 0; mb && i < mb->n_eps; i++)
			if (req->listener_name && !strcmp(mb->eps[i].name, req->listener_name)) {
				c->node_id = node;
				c->host = mb->eps[i].host;
				c->port = mb->eps[i].port;
				return;
			}
	}
	c->error = TM_ERR_COORDINATOR_NOT_AVAILABLE;
	c->message = "The coordinator has no endpoint for this listener";
}

void api_find_coordinator(struct tm_req *req)
{
	struct kafka_find_coordinator_request in;
	if (REQ_DECODE(req, find_coordinator, &in))
		return;
	struct kafka_find_coordinator_response out;
	kafka_find_coordinator_response_init(&out);
	if (req->hdr.api_version < 4) {
		struct coord c;
		find_one(req, in.key_type, in.key, &c);
		out.error_code = c.error;
		out.error_message = c.error ? kstr_c(c.message) : kstr_null();
		out.node_id = c.node_id;
		out.host = kstr_c(c.host);
		out.port = c.port;
		REQ_RESPOND(req, find_coordinator, &out);
		return;
	}
	int32_t n = in.coordinator_keys_count > 0 ? in.coordinator_keys_count : 0;
	out.coordinators = arena_alloc(&req->arena, sizeof(*out.coordinators) * (size_t)(n + 1));
	if (!out.coordinators) {
		req_fail_decode(req);
		return;
	}
	out.coordinators_count = n;
	for (int32_t i = 0; i < n; i++) {
		struct coord c;
		find_one(req, in.key_type, in.coordinator_keys[i], &c);
		struct kafka_find_coordinator_response_coordinator *o = &out.coordinators[i];
		o->key = in.coordinator_keys[i];
		o->node_id = c.node_id;
		o->host = kstr_c(c.host);
		o->port = c.port;
		o->error_code = c.error;
		o->error_message = c.error ? kstr_c(c.message) : kstr_null();
	}
	REQ_RESPOND(req, find_coordinator, &out);
}

/* ---- JoinGroup -------------------------------------------------------------- */

static void join_error(struct tm_req *req, int16_t err, struct kstr member_id)
{
	struct kafka_join_group_response out;
	kafka_join_group_response_init(&out);
	out.error_code = err;
	out.generation_id = -1;
	out.protocol_name = req->hdr.api_version >= 7 ? kstr_null() : kstr_c("");
	out.leader = kstr_c("");
	out.member_id = member_id.len >= 0 ? member_id : kstr_c("");
	out.members_count = 0;
	REQ_RESPOND(req, join_group, &out);
}

void api_groups_join_done(void *waiter, const struct gsm_group *g, const struct gsm_join_result *r)
{
	struct tm_req *req = waiter;
	struct kafka_join_group_response out;
	kafka_join_group_response_init(&out);
	int16_t v = req->hdr.api_version;
	out.error_code = r->error;
	out.generation_id = r->generation;
	out.protocol_type = kstr_c(r->protocol_type);
	out.protocol_name = r->protocol_name ? kstr_c(r->protocol_name) : (v >= 7 ? kstr_null() : kstr_c(""));
	out.leader = kstr_c(r->leader_id ? r->leader_id : "");
	out.member_id = kstr_c(r->member_id ? r->member_id : "");
	out.skip_assignment = r->skip_assignment;
	out.members_count = 0;
	if (r->members_included && g->n_members > 0) {
		out.members = arena_alloc(&req->arena, sizeof(*out.members) * (size_t)g->n_members);
		if (!out.members) {
			out.error_code = TM_ERR_COORDINATOR_NOT_AVAILABLE;
		} else {
			out.members_count = g->n_members;
			for (int32_t i = 0; i < g->n_members; i++) {
				const struct gsm_member *m = g->members[i];
				const uint8_t *md;
				int32_t len;
				gsm_member_metadata(g, m, &md, &len);
				out.members[i].member_id = kstr_c(m->member_id);
				out.members[i].group_instance_id = kstr_c(m->instance_id);
				out.members[i].metadata = kbytes_make(md ? md : (const uint8_t *)"", (size_t)len);
			}
		}
	}
	/* Encoded now: g's member data may change once we return. */
	REQ_RESPOND(req, join_group, &out);
}

void api_join_group(struct tm_req *req)
{
	struct kafka_join_group_request in;
	if (REQ_DECODE(req, join_group, &in))
		return;
	struct tm_broker *b = req->b;
	struct gc_group *g;
	int16_t err = groups_lookup(b, in.group_id, in.member_id.len <= 0, &g);
	if (err || !g) {
		join_error(req, err ? err : TM_ERR_UNKNOWN_MEMBER_ID, in.member_id);
		return;
	}
	int32_t np = in.protocols_count > 0 ? in.protocols_count : 0;
	struct gsm_proto_in *protos = arena_alloc(&req->arena, sizeof(*protos) * (size_t)(np + 1));
	if (!protos) {
		join_error(req, TM_ERR_COORDINATOR_NOT_AVAILABLE, in.member_id);
		return;
	}
	for (int32_t i = 0; i < np; i++) {
		protos[i].name = kptr(in.protocols[i].name);
		protos[i].name_len = klen(in.protocols[i].name);
		protos[i].metadata = in.protocols[i].metadata.ptr;
		protos[i].metadata_len = in.protocols[i].metadata.len > 0 ? in.protocols[i].metadata.len : 0;
	}
	struct kstr host = client_host(req);
	struct kstr cid = req->hdr.client_id;
	struct gsm_join_req jr = {
		.member_id = kptr(in.member_id),
		.member_id_len = klen(in.member_id),
		.instance_id = in.group_instance_id.len >= 0 ? kptr(in.group_instance_id) : NULL,
		.instance_id_len = klen(in.group_instance_id),
		.client_id = kptr(cid),
		.client_id_len = klen(cid),
		.client_host = host.ptr,
		.client_host_len = klen(host),
		.protocol_type = kptr(in.protocol_type),
		.protocol_type_len = klen(in.protocol_type),
		.session_timeout_ms = in.session_timeout_ms,
		.rebalance_timeout_ms = req->hdr.api_version >= 1 ? in.rebalance_timeout_ms : -1,
		.protocols = protos,
		.n_protocols = np,
		.require_known_member_id = req->hdr.api_version >= 4,
		.supports_skip_assignment = req->hdr.api_version >= 9,
	};
	if (in.group_instance_id.len == 0)
		jr.instance_id = NULL; /* Kafka treats an empty instance id as none */
	int rc = gsm_join(groups_ctx(b), &g->sm, &jr, req, groups_now(b));
	if (rc)
		join_error(req, TM_ERR_COORDINATOR_NOT_AVAILABLE, in.member_id);
	groups_maybe_drop(b, g);
}

/* ---- SyncGroup ---------------------------------------------------------------- */

void api_groups_sync_done(void *waiter, const struct gsm_sync_result *r)
{
	struct tm_req *req = waiter;
	struct kafka_sync_group_response out;
	kafka_sync_group_response_init(&out);
	out.error_code = r->error;
	out.protocol_type = kstr_c(r->protocol_type);
	out.protocol_name = kstr_c(r->protocol_name);
	out.assignment = kbytes_make(r->assignment ? r->assignment : (const uint8_t *)"",
				     (size_t)(r->assignment_len > 0 ? r->assignment_len : 0));
	REQ_RESPOND(req, sync_group, &out);
}

void api_sync_group(struct tm_req *req)
{
	struct kafka_sync_group_request in;
	if (REQ_DECODE(req, sync_group, &in))
		return;
	struct tm_broker *b = req->b;
	struct gc_group *g;
	int16_t err = groups_lookup(b, in.group_id, false, &g);
	if (err || !g) {
		struct gsm_sync_result r = { .error = err ? err : TM_ERR_UNKNOWN_MEMBER_ID };
		api_groups_sync_done(req, &r);
		return;
	}
	int32_t na = in.assignments_count > 0 ? in.assignments_count : 0;
	struct gsm_assignment_in *as = arena_alloc(&req->arena, sizeof(*as) * (size_t)(na + 1));
	if (!as) {
		struct gsm_sync_result r = { .error = TM_ERR_COORDINATOR_NOT_AVAILABLE };
		api_groups_sync_done(req, &r);
		return;
	}
	for (int32_t i = 0; i < na; i++) {
		as[i].member_id = kptr(in.assignments[i].member_id);
		as[i].member_id_len = klen(in.assignments[i].member_id);
		as[i].assignment = in.assignments[i].assignment.ptr;
		as[i].assignment_len = in.assignments[i].assignment.len > 0 ? in.assignments[i].assignment.len : 0;
	}
	struct gsm_sync_req sr = {
		.generation = in.generation_id,
		.member_id = kptr(in.member_id),
		.member_id_len = klen(in.member_id),
		.instance_id = in.group_instance_id.len > 0 ? in.group_instance_id.ptr : NULL,
		.instance_id_len = klen(in.group_instance_id),
		.protocol_type = in.protocol_type.len >= 0 ? kptr(in.protocol_type) : NULL,
		.protocol_type_len = klen(in.protocol_type),
		.protocol_name = in.protocol_name.len >= 0 ? kptr(in.protocol_name) : NULL,
		.protocol_name_len = klen(in.protocol_name),
		.assignments = as,
		.n_assignments = na,
	};
	if (gsm_sync(groups_ctx(b), &g->sm, &sr, req, groups_now(b))) {
		struct gsm_sync_result r = { .error = TM_ERR_COORDINATOR_NOT_AVAILABLE };
		api_groups_sync_done(req, &r);
	}
}

/* ---- Heartbeat ------------------------------------------------------------------ */

void api_heartbeat(struct tm_req *req)
{
	struct kafka_heartbeat_request in;
	if (REQ_DECODE(req, heartbeat, &in))
		return;
	struct tm_broker *b = req->b;
	struct kafka_heartbeat_response out;
	kafka_heartbeat_response_init(&out);
	struct gc_group *g;
	int16_t err = groups_lookup(b, in.group_id, false, &g);
	if (!err && !g)
		err = TM_ERR_UNKNOWN_MEMBER_ID;
	if (!err)
		err = gsm_heartbeat(groups_ctx(b), &g->sm, in.generation_id, kptr(in.member_id), klen(in.member_id),
				    in.group_instance_id.len > 0 ? in.group_instance_id.ptr : NULL,
				    klen(in.group_instance_id), groups_now(b));
	out.error_code = err;
	REQ_RESPOND(req, heartbeat, &out);
}

/* ---- LeaveGroup ------------------------------------------------------------------- */

void api_leave_group(struct tm_req *req)
{
	struct kafka_leave_group_request in;
	if (REQ_DECODE(req, leave_group, &in))
		return;
	struct tm_broker *b = req->b;
	int16_t v = req->hdr.api_version;
	struct kafka_leave_group_response out;
	kafka_leave_group_response_init(&out);
	struct kafka_leave_group_request_member_identity single;
	if (v < 3) {
		memset(&single, 0, sizeof(single));
		single.member_id = in.member_id;
		single.group_instance_id = kstr_null();
		in.members = &single;
		in.members_count = 1;
	}
	int32_t n = in.members_count > 0 ? in.members_count : 0;
	struct gc_group *g;
	int16_t err = groups_lookup(b, in.group_id, false, &g);
	if (err) {
		out.error_code = err;
		out.members_count = 0;
		REQ_RESPOND(req, leave_group, &out);
		return;
	}
	out.members = arena_alloc(&req->arena, sizeof(*out.members) * (size_t)(n + 1));
	if (!out.members) {
		out.error_code = TM_ERR_COORDINATOR_NOT_AVAILABLE;
		REQ_RESPOND(req, leave_group, &out);
		return;
	}
	out.members_count = n;
	for (int32_t i = 0; i < n; i++) {
		struct kafka_leave_group_request_member_identity *m = &in.members[i];
		const char *inst = m->group_instance_id.len > 0 ? m->group_instance_id.ptr : NULL;
		int16_t e = TM_ERR_UNKNOWN_MEMBER_ID;
		if (g)
			e = gsm_leave(groups_ctx(b), &g->sm, kptr(m->member_id), klen(m->member_id), inst,
				      klen(m->group_instance_id), groups_now(b));
		out.members[i].member_id = m->member_id.len >= 0 ? m->member_id : kstr_c("");
		out.members[i].group_instance_id = m->group_instance_id;
		out.members[i].error_code = e;
		if (e == TM_ERR_NONE)
			tm_debug("groups", "member %.*s left group %.*s", (int)klen(m->member_id), kptr(m->member_id),
				 (int)klen(in.group_id), kptr(in.group_id));
	}
	if (v < 3 && n == 1)
		out.error_code = out.members[0].error_code;
	REQ_RESPOND(req, leave_group, &out);
}

/* ---- OffsetCommit ------------------------------------------------------------------- */

struct commit_op {
	struct tm_req *req;
	struct kafka_offset_commit_response out;
	struct gc_commit *commits;
	int16_t **dst;          /* where each commit's result goes in out */
	int n;
};

static void commit_done(struct tm_broker *b, void *arg, int16_t error)
{
	struct commit_op *op = arg;
	(void)b;
	(void)error;
	for (int i = 0; i < op->n; i++)
		*op->dst[i] = op->commits[i].error;
	REQ_RESPOND(op->req, offset_commit, &op->out);
}

static int16_t commit_group_error(struct tm_req *req, const struct kafka_offset_commit_request *in, struct gc_group **g)
{
	struct tm_broker *b = req->b;
	int32_t gen = req->hdr.api_version >= 1 ? in->generation_id_or_member_epoch : -1;
	int16_t err = groups_lookup(b, in->group_id, gen < 0, g);
	if (err)
		return err;
	if (!*g)
		return TM_ERR_ILLEGAL_GENERATION;
	const char *inst = in->group_instance_id.len > 0 ? in->group_instance_id.ptr : NULL;
	return gsm_validate_commit(groups_ctx(b), &(*g)->sm, gen, kptr(in->member_id), klen(in->member_id), inst,
				   klen(in->group_instance_id), groups_now(b));
}

void api_offset_commit(struct tm_req *req)
{
	struct kafka_offset_commit_request in;
	if (REQ_DECODE(req, offset_commit, &in))
		return;
	struct tm_broker *b = req->b;
	struct commit_op *op = arena_alloc(&req->arena, sizeof(*op));
	if (!op) {
		req_fail_decode(req);
		return;
	}
	op->req = req;
	kafka_offset_commit_response_init(&op->out);
	int32_t nt = in.topics_count > 0 ? in.topics_count : 0;
	int total = 0;
	for (int32_t i = 0; i < nt; i++)
		total += in.topics[i].partitions_count > 0 ? in.topics[i].partitions_count : 0;
	op->out.topics = arena_alloc(&req->arena, sizeof(*op->out.topics) * (size_t)(nt + 1));
	op->commits = arena_alloc(&req->arena, sizeof(*op->commits) * (size_t)(total + 1));
	op->dst = arena_alloc(&req->arena, sizeof(*op->dst) * (size_t)(total + 1));
	if (!op->out.topics || !op->commits || !op->dst) {
		req_fail_decode(req);
		return;
	}
	op->out.topics_count = nt;
	struct gc_group *g = NULL;
	int16_t gerr = commit_group_error(req, &in, &g);
	int valid = 0;
	for (int32_t i = 0; i < nt; i++) {
		struct kafka_offset_commit_request_offset_commit_request_topic *t = &in.topics[i];
		struct kafka_offset_commit_response_offset_commit_response_topic *ot = &op->out.topics[i];
		int32_t np = t->partitions_count > 0 ? t->partitions_count : 0;
		ot->name = t->name;
		ot->partitions = arena_alloc(&req->arena, sizeof(*ot->partitions) * (size_t)(np + 1));
		if (!ot->partitions) {
			req_fail_decode(req);
			return;
		}
		ot->partitions_count = np;
		struct tm_topic *tt = t->name.len > 0 ? topic_by_name(b, t->name.ptr, (size_t)t->name.len) : NULL;
		for (int32_t k = 0; k < np; k++) {
			struct kafka_offset_commit_request_offset_commit_request_partition *p = &t->partitions[k];
			ot->partitions[k].partition_index = p->partition_index;
			int16_t e = gerr;
			if (!e && (!tt || p->partition_index < 0 || p->partition_index >= tt->n_parts))
				e = TM_ERR_UNKNOWN_TOPIC_OR_PARTITION;
			if (!e && p->committed_metadata.len > b->cfg.offset_metadata_max_bytes)
				e = TM_ERR_OFFSET_METADATA_TOO_LARGE;
			ot->partitions[k].error_code = e;
			if (e)
				continue;
			struct gc_commit *c = &op->commits[op->n];
			c->topic = t->name;
			c->partition = p->partition_index;
			c->offset = p->committed_offset;
			c->leader_epoch = req->hdr.api_version >= 6 ? p->committed_leader_epoch : -1;
			c->metadata = p->committed_metadata.len >= 0 ? p->committed_metadata : kstr_c("");
			c->error = TM_ERR_NONE;
			op->dst[op->n] = &ot->partitions[k].error_code;
			op->n++;
			valid++;
		}
	}
	if (!valid) {
		if (g)
			groups_maybe_drop(b, g);
		REQ_RESPOND(req, offset_commit, &op->out);
		return;
	}
	groups_write_offsets(b, g, op->commits, op->n, false, commit_done, op);
}

/* ---- OffsetFetch ---------------------------------------------------------------------- */

/* One group's committed offsets as (topic, partitions) lists, for either
 * response form; versions 8+ use the *_topics / *_partitions structs, whose
 * fields are the same. */
struct fetch_part {
	int32_t partition;
	int64_t offset;
	int32_t epoch;
	struct kstr metadata;
	int16_t error;
};

struct fetch_topic {
	struct kstr name;
	struct fetch_part *parts;
	int32_t n;
};

static int cmp_offsets(const void *a, const void *b)
{
	const struct gc_offset *x = *(const struct gc_offset *const *)a;
	const struct gc_offset *y = *(const struct gc_offset *const *)b;
	int c = strcmp(x->topic, y->topic);
	if (c)
		return c;
	return x->partition < y->partition ? -1 : x->partition > y->partition;
}

/* Fills topics for one group.  req_topics NULL: every committed offset. */
static int fetch_group(struct tm_req *req, struct gc_group *g, int16_t gerr, const struct kstr *names,
		       int32_t *const *indexes, const int32_t *index_counts, int32_t n_req_topics, bool all,
		       struct fetch_topic **out, int32_t *n_out)
{
	struct tm_arena *a = &req->arena;
	if (all) {
		size_t n = g ? g->offsets.count : 0;
		struct gc_offset **list = arena_alloc(a, sizeof(*list) * (n + 1));
		struct fetch_topic *ts = arena_alloc(a, sizeof(*ts) * (n + 1));
		if (!list || !ts)
			return -ENOMEM;
		size_t k = 0;
		for (size_t i = 0; g && i < g->offsets.cap; i++)
			if (g->offsets.slots[i].key)
				list[k++] = g->offsets.slots[i].value;
		qsort(list, k, sizeof(*list), cmp_offsets);
		int32_t nt = 0;
		for (size_t i = 0; i < k;) {
			size_t j = i;
			while (j < k && !strcmp(list[j]->topic, list[i]->topic))
				j++;
			struct fetch_topic *t = &ts[nt++];
			t->name = kstr_c(list[i]->topic);
			t->parts = arena_alloc(a, sizeof(*t->parts) * (j - i));
			if (!t->parts)
				return -ENOMEM;
			t->n = (int32_t)(j - i);
			for (size_t m = i; m < j; m++) {
				struct fetch_part *p = &t->parts[m - i];
				p->partition = list[m]->partition;
				p->offset = list[m]->offset;
				p->epoch = list[m]->leader_epoch;
				p->metadata = kstr_c(list[m]->metadata);
				p->error = TM_ERR_NONE;
			}
			i = j;
		}
		*out = ts;
		*n_out = nt;
		return 0;
	}
	struct fetch_topic *ts = arena_alloc(a, sizeof(*ts) * (size_t)(n_req_topics + 1));
	if (!ts)
		return -ENOMEM;
	for (int32_t i = 0; i < n_req_topics; i++) {
		int32_t np = index_counts[i] > 0 ? index_counts[i] : 0;
		ts[i].name = names[i];
		ts[i].n = np;
		ts[i].parts = arena_alloc(a, sizeof(*ts[i].parts) * (size_t)(np + 1));
		if (!ts[i].parts)
			return -ENOMEM;
		for (int32_t k = 0; k < np; k++) {
			struct fetch_part *p = &ts[i].parts[k];
			struct gc_offset *o = g && !gerr ? groups_offset_get(g, names[i], indexes[i][k]) : NULL;
			p->partition = indexes[i][k];
			p->offset = o ? o->offset : -1;
			p->epoch = o ? o->leader_epoch : -1;
			p->metadata = kstr_c(o ? o->metadata : "");
			p->error = gerr;
		}
	}
	*out = ts;
	*n_out = n_req_topics;
	return 0;
}

static int16_t fetch_lookup(struct tm_req *req, struct kstr group_id, struct gc_group **g)
{
	int16_t err = groups_lookup(req->b, group_id, false, g);
	return err;
}

void api_offset_fetch(struct tm_req *req)
{
	struct kafka_offset_fetch_request in;
	if (REQ_DECODE(req, offset_fetch, &in))
		return;
	int16_t v = req->hdr.api_version;
	struct kafka_offset_fetch_response out;
	kafka_offset_fetch_response_init(&out);
	struct tm_arena *a = &req->arena;
	if (v < 8) {
		struct gc_group *g = NULL;
		int16_t gerr = fetch_lookup(req, in.group_id, &g);
		bool all = in.topics_count < 0;
		int32_t nt = all ? 0 : in.topics_count;
		struct kstr *names = arena_alloc(a, sizeof(*names) * (size_t)(nt + 1));
		int32_t **idx = arena_alloc(a, sizeof(*idx) * (size_t)(nt + 1));
		int32_t *cnt = arena_alloc(a, sizeof(*cnt) * (size_t)(nt + 1));
		if (!names || !idx || !cnt) {
			req_fail_decode(req);
			return;
		}
		for (int32_t i = 0; i < nt; i++) {
			names[i] = in.topics[i].name;
			idx[i] = in.topics[i].partition_indexes;
			cnt[i] = in.topics[i].partition_indexes_count;
		}
		struct fetch_topic *ts;
		int32_t n;
		/* v2+ report a group error at the top; v0-1 in each partition */
		int16_t perr = v < 2 ? gerr : TM_ERR_NONE;
		if (fetch_group(req, gerr ? NULL : g, perr, names, idx, cnt, nt, all && !gerr, &ts, &n)) {
			req_fail_decode(req);
			return;
		}
		out.error_code = v >= 2 ? gerr : TM_ERR_NONE;
		out.topics = arena_alloc(a, sizeof(*out.topics) * (size_t)(n + 1));
		if (!out.topics) {
			req_fail_decode(req);
			return;
		}
		out.topics_count = n;
		for (int32_t i = 0; i < n; i++) {
			out.topics[i].name = ts[i].name;
			out.topics[i].partitions_count = ts[i].n;
			out.topics[i].partitions = arena_alloc(a, sizeof(*out.topics[i].partitions) * (size_t)(ts[i].n + 1));
			if (!out.topics[i].partitions) {
				req_fail_decode(req);
				return;
			}
			for (int32_t k = 0; k < ts[i].n; k++) {
				struct kafka_offset_fetch_response_offset_fetch_response_partition *p = &out.topics[i].partitions[k];
				p->partition_index = ts[i].parts[k].partition;
				p->committed_offset = ts[i].parts[k].offset;
				p->committed_leader_epoch = ts[i].parts[k].epoch;
				p->metadata = ts[i].parts[k].metadata;
				p->error_code = ts[i].parts[k].error;
			}
		}
		REQ_RESPOND(req, offset_fetch, &out);
		return;
	}
	int32_t ng = in.groups_count > 0 ? in.groups_count : 0;
	out.groups = arena_alloc(a, sizeof(*out.groups) * (size_t)(ng + 1));
	if (!out.groups) {
		req_fail_decode(req);
		return;
	}
	out.groups_count = ng;
	for (int32_t gi = 0; gi < ng; gi++) {
		struct kafka_offset_fetch_request_offset_fetch_request_group *rg = &in.groups[gi];
		struct kafka_offset_fetch_response_offset_fetch_response_group *og = &out.groups[gi];
		struct gc_group *g = NULL;
		int16_t gerr = fetch_lookup(req, rg->group_id, &g);
		og->group_id = rg->group_id;
		og->error_code = gerr;
		bool all = rg->topics_count < 0;
		int32_t nt = all ? 0 : rg->topics_count;
		struct kstr *names = arena_alloc(a, sizeof(*names) * (size_t)(nt + 1));
		int32_t **idx = arena_alloc(a, sizeof(*idx) * (size_t)(nt + 1));
		int32_t *cnt = arena_alloc(a, sizeof(*cnt) * (size_t)(nt + 1));
		if (!names || !idx || !cnt) {
			req_fail_decode(req);
			return;
		}
		for (int32_t i = 0; i < nt; i++) {
			names[i] = rg->topics[i].name;
			idx[i] = rg->topics[i].partition_indexes;
			cnt[i] = rg->topics[i].partition_indexes_count;
		}
		struct fetch_topic *ts;
		int32_t n;
		if (gerr) {
			og->topics_count = 0;
			continue;
		}
		if (fetch_group(req, g, TM_ERR_NONE, names, idx, cnt, nt, all, &ts, &n)) {
			req_fail_decode(req);
			return;
		}
		og->topics = arena_alloc(a, sizeof(*og->topics) * (size_t)(n + 1));
		if (!og->topics) {
			req_fail_decode(req);
			return;
		}
		og->topics_count = n;
		for (int32_t i = 0; i < n; i++) {
			og->topics[i].name = ts[i].name;
			og->topics[i].partitions_count = ts[i].n;
			og->topics[i].partitions = arena_alloc(a, sizeof(*og->topics[i].partitions) * (size_t)(ts[i].n + 1));
			if (!og->topics[i].partitions) {
				req_fail_decode(req);
				return;
			}
			for (int32_t k = 0; k < ts[i].n; k++) {
				struct kafka_offset_fetch_response_offset_fetch_response_partitions *p = &og->topics[i].partitions[k];
				p->partition_index = ts[i].parts[k].partition;
				p->committed_offset = ts[i].parts[k].offset;
				p->committed_leader_epoch = ts[i].parts[k].epoch;
				p->metadata = ts[i].parts[k].metadata;
				p->error_code = ts[i].parts[k].error;
			}
		}
	}
	REQ_RESPOND(req, offset_fetch, &out);
}

/* ---- ListGroups ------------------------------------------------------------------------ */

struct list_ctx {
	struct tm_req *req;
	const struct kafka_list_groups_request *in;
	struct kafka_list_groups_response_listed_group *out;
	int32_t n, cap;
	bool oom;
};

static bool filter_has(const struct kstr *list, int32_t n, const char *value)
{
	if (n <= 0)
		return true;
	for (int32_t i = 0; i < n; i++)
		if (list[i].len >= 0 && (size_t)list[i].len == strlen(value) &&
		    !strncasecmp(list[i].ptr, value, (size_t)list[i].len))
			return true;
	return false;
}

static void list_one(struct gc_group *g, void *arg)
{
	struct list_ctx *lc = arg;
	const char *state = gsm_state_name(g->sm.state);
	if (!filter_has(lc->in->states_filter, lc->in->states_filter_count, state))
		return;
	if (!filter_has(lc->in->types_filter, lc->in->types_filter_count, "classic"))
		return;
	if (lc->n == lc->cap) {
		int32_t cap = lc->cap ? lc->cap * 2 : 16;
		struct kafka_list_groups_response_listed_group *p = arena_alloc(&lc->req->arena, sizeof(*p) * (size_t)cap);
		if (!p) {
			lc->oom = true;
			return;
		}
		if (lc->n)
			memcpy(p, lc->out, sizeof(*p) * (size_t)lc->n);
		lc->out = p;
		lc->cap = cap;
	}
	struct kafka_list_groups_response_listed_group *o = &lc->out[lc->n++];
	o->group_id = kstr_c(g->sm.group_id);
	o->protocol_type = kstr_c(g->sm.protocol_type ? g->sm.protocol_type : "");
	o->group_state = kstr_c(state);
	o->group_type = kstr_c("classic");
}

void api_list_groups(struct tm_req *req)
{
	struct kafka_list_groups_request in;
	if (REQ_DECODE(req, list_groups, &in))
		return;
	struct kafka_list_groups_response out;
	kafka_list_groups_response_init(&out);
	struct list_ctx lc = { .req = req, .in = &in };
	groups_foreach(req->b, list_one, &lc);
	out.error_code = lc.oom ? TM_ERR_COORDINATOR_NOT_AVAILABLE : TM_ERR_NONE;
	out.groups = lc.out;
	out.groups_count = lc.oom ? 0 : lc.n;
	REQ_RESPOND(req, list_groups, &out);
}

/* ---- DescribeGroups ----------------------------------------------------------------------- */

void api_describe_groups(struct tm_req *req)
{
	struct kafka_describe_groups_request in;
	if (REQ_DECODE(req, describe_groups, &in))
		return;
	struct kafka_describe_groups_response out;
	kafka_describe_groups_response_init(&out);
	int32_t n = in.groups_count > 0 ? in.groups_count : 0;
	out.groups = arena_alloc(&req->arena, sizeof(*out.groups) * (size_t)(n + 1));
	if (!out.groups) {
		req_fail_decode(req);
		return;
	}
	out.groups_count = n;
	for (int32_t i = 0; i < n; i++) {
		struct kafka_describe_groups_response_described_group *o = &out.groups[i];
		o->group_id = in.groups[i];
		o->authorized_operations = INT32_MIN;
		o->protocol_type = kstr_c("");
		o->protocol_data = kstr_c("");
		o->members_count = 0;
		struct gc_group *g;
		int16_t err = groups_lookup(req->b, in.groups[i], false, &g);
		if (err) {
			o->error_code = err;
			o->group_state = kstr_c("");
			continue;
		}
		if (!g) {
			o->group_state = kstr_c("Dead");
			continue;
		}
		bool stable = g->sm.state == GSM_STABLE;
		o->group_state = kstr_c(gsm_state_name(g->sm.state));
		o->protocol_type = kstr_c(g->sm.protocol_type ? g->sm.protocol_type : "");
		o->protocol_data = kstr_c(stable && g->sm.protocol_name ? g->sm.protocol_name : "");
		if (g->sm.n_members) {
			o->members = arena_alloc(&req->arena, sizeof(*o->members) * (size_t)g->sm.n_members);
			if (!o->members) {
				o->error_code = TM_ERR_COORDINATOR_NOT_AVAILABLE;
				continue;
			}
		}
		o->members_count = g->sm.n_members;
		for (int32_t k = 0; k < g->sm.n_members; k++) {
			const struct gsm_member *m = g->sm.members[k];
			struct kafka_describe_groups_response_described_group_member *om = &o->members[k];
			const uint8_t *md = NULL;
			int32_t mdlen = 0;
			if (stable)
				gsm_member_metadata(&g->sm, m, &md, &mdlen);
			om->member_id = kstr_c(m->member_id);
			om->group_instance_id = kstr_c(m->instance_id);
			om->client_id = kstr_c(m->client_id);
			om->client_host = kstr_c(m->client_host);
			om->member_metadata = kbytes_make(md ? md : (const uint8_t *)"", (size_t)mdlen);
			om->member_assignment = stable && m->assignment
							? kbytes_make(m->assignment, (size_t)m->assignment_len)
							: kbytes_make("", 0);
		}
	}
	REQ_RESPOND(req, describe_groups, &out);
}

/* ---- DeleteGroups ----------------------------------------------------------------------------- */

struct delete_op {
	struct tm_req *req;
	struct kafka_delete_groups_response out;
	int pending;
	bool started;
};

struct delete_one {
	struct delete_op *op;
	int16_t *err;
};

static void delete_maybe_finish(struct delete_op *op)
{
	if (op->pending == 0 && op->started)
		REQ_RESPOND(op->req, delete_groups, &op->out);
}

static void delete_done(struct tm_broker *b, void *arg, int16_t error)
{
	struct delete_one *d = arg;
	(void)b;
	*d->err = error;
	d->op->pending--;
	delete_maybe_finish(d->op);
}

void api_delete_groups(struct tm_req *req)
{
	struct kafka_delete_groups_request in;
	if (REQ_DECODE(req, delete_groups, &in))
		return;
	struct delete_op *op = arena_alloc(&req->arena, sizeof(*op));
	int32_t n = in.groups_names_count > 0 ? in.groups_names_count : 0;
	if (!op) {
		req_fail_decode(req);
		return;
	}
	op->req = req;
	kafka_delete_groups_response_init(&op->out);
	op->out.results = arena_alloc(&req->arena, sizeof(*op->out.results) * (size_t)(n + 1));
	struct delete_one *ds = arena_alloc(&req->arena, sizeof(*ds) * (size_t)(n + 1));
	if (!op->out.results || !ds) {
		req_fail_decode(req);
		return;
	}
	op->out.results_count = n;
	for (int32_t i = 0; i < n; i++) {
		struct kafka_delete_groups_response_deletable_group_result *r = &op->out.results[i];
		r->group_id = in.groups_names[i];
		struct gc_group *g;
		int16_t err = groups_lookup(req->b, in.groups_names[i], false, &g);
		if (!err && !g)
			err = TM_ERR_GROUP_ID_NOT_FOUND;
		if (!err && g->sm.state != GSM_EMPTY)
			err = TM_ERR_NON_EMPTY_GROUP;
		r->error_code = err;
		if (err)
			continue;
		ds[i].op = op;
		ds[i].err = &r->error_code;
		op->pending++;
		groups_delete_group(req->b, g, delete_done, &ds[i]);
	}
	op->started = true;
	delete_maybe_finish(op);
}

/* ---- OffsetDelete ------------------------------------------------------------------------------ */

struct odel_op {
	struct tm_req *req;
	struct kafka_offset_delete_response out;
	struct gc_commit *commits;
	int16_t **dst;
	int n;
};

static void odel_done(struct tm_broker *b, void *arg, int16_t error)
{
	struct odel_op *op = arg;
	(void)b;
	(void)error;
	for (int i = 0; i < op->n; i++)
		*op->dst[i] = op->commits[i].error;
	REQ_RESPOND(op->req, offset_delete, &op->out);
}

void api_offset_delete(struct tm_req *req)
{
	struct kafka_offset_delete_request in;
	if (REQ_DECODE(req, offset_delete, &in))
		return;
	struct tm_broker *b = req->b;
	struct odel_op *op = arena_alloc(&req->arena, sizeof(*op));
	if (!op) {
		req_fail_decode(req);
		return;
	}
	op->req = req;
	kafka_offset_delete_response_init(&op->out);
	struct gc_group *g;
	int16_t err = groups_lookup(b, in.group_id, false, &g);
	if (!err && !g)
		err = TM_ERR_GROUP_ID_NOT_FOUND;
	bool consumer = g && g->sm.protocol_type && !strcmp(g->sm.protocol_type, "consumer");
	if (!err && g->sm.state != GSM_EMPTY && !consumer)
		err = TM_ERR_NON_EMPTY_GROUP;
	if (err) {
		op->out.error_code = err;
		op->out.topics_count = 0;
		REQ_RESPOND(req, offset_delete, &op->out);
		return;
	}
	int32_t nt = in.topics_count > 0 ? in.topics_count : 0;
	int total = 0;
	for (int32_t i = 0; i < nt; i++)
		total += in.topics[i].partitions_count > 0 ? in.topics[i].partitions_count : 0;
	op->out.topics = arena_alloc(&req->arena, sizeof(*op->out.topics) * (size_t)(nt + 1));
	op->commits = arena_alloc(&req->arena, sizeof(*op->commits) * (size_t)(total + 1));
	op->dst = arena_alloc(&req->arena, sizeof(*op->dst) * (size_t)(total + 1));
	if (!op->out.topics || !op->commits || !op->dst) {
		req_fail_decode(req);
		return;
	}
	op->out.topics_count = nt;
	for (int32_t i = 0; i < nt; i++) {
		struct kafka_offset_delete_request_offset_delete_request_topic *t = &in.topics[i];
		struct kafka_offset_delete_response_offset_delete_response_topic *ot = &op->out.topics[i];
		int32_t np = t->partitions_count > 0 ? t->partitions_count : 0;
		ot->name = t->name;
		ot->partitions_count = np;
		ot->partitions = arena_alloc(&req->arena, sizeof(*ot->partitions) * (size_t)(np + 1));
		if (!ot->partitions) {
			req_fail_decode(req);
			return;
		}
		struct tm_topic *tt = t->name.len > 0 ? topic_by_name(b, t->name.ptr, (size_t)t->name.len) : NULL;
		bool subscribed = g->sm.state != GSM_EMPTY && groups_subscribed(g, t->name);
		for (int32_t k = 0; k < np; k++) {
			int32_t pi = t->partitions[k].partition_index;
			ot->partitions[k].partition_index = pi;
			int16_t e = TM_ERR_NONE;
			if (!tt || pi < 0 || pi >= tt->n_parts)
				e = TM_ERR_UNKNOWN_TOPIC_OR_PARTITION;
			else if (subscribed)
				e = TM_ERR_GROUP_SUBSCRIBED_TO_TOPIC;
			ot->partitions[k].error_code = e;
			if (e || !groups_offset_get(g, t->name, pi))
				continue;
			struct gc_commit *c = &op->commits[op->n];
			c->topic = t->name;
			c->partition = pi;
			c->metadata = kstr_c("");
			c->error = TM_ERR_NONE;
			op->dst[op->n++] = &ot->partitions[k].error_code;
		}
	}
	if (op->n == 0) {
		REQ_RESPOND(req, offset_delete, &op->out);
		return;
	}
	groups_write_offsets(b, g, op->commits, op->n, true, odel_done, op);
}
