/*
 * api_topics.c — CreateTopics, DeleteTopics, CreatePartitions, and the topic
 * creation shared with Metadata's auto-creation.  Each request becomes one
 * controller operation: validated against the image as earlier operations
 * left it, committed as one metadata transaction, answered after commit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/controller.h"
#include "broker/partition.h"
#include "broker/peer.h"
#include "broker/quorum.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"

#define TOPICS_CREATE_PARTITIONS_MAX 10000

struct create_op {
	struct tm_broker *b;
	struct topic_spec *specs;
	int n;
	bool validate_only;
	topics_create_cb cb;
	void *arg;
};

static void spec_error(struct topic_spec *s, int16_t err, const char *fmt, const char *detail)
{
	s->error_code = err;
	snprintf(s->error_message, sizeof(s->error_message), fmt, detail);
}

static int live_broker_count(struct tm_broker *b)
{
	int n = 0;
	for (int i = 0; i < b->md.n_brokers; i++)
		n += !b->md.brokers[i].fenced;
	return n;
}

static bool spec_valid(struct tm_broker *b, struct topic_spec *s, struct topic_spec *earlier, int n_earlier)
{
	char why[300];
	int32_t len = (int32_t)strlen(s->name);
	int err = topic_name_check(s->name, len, why, sizeof(why));
	if (err) {
		spec_error(s, (int16_t)err, "%s", why);
		return false;
	}
	if (md_topic_by_name(&b->md, s->name, (size_t)len)) {
		spec_error(s, TM_ERR_TOPIC_ALREADY_EXISTS, "Topic '%s' already exists.", s->name);
		return false;
	}
	for (int i = 0; i < n_earlier; i++)
		if (!strcmp(earlier[i].name, s->name)) {
			spec_error(s, TM_ERR_INVALID_REQUEST, "Topic '%s' appears twice in the request.", s->name);
			return false;
		}
	if (s->assignment) {
		if (s->n_parts < 1 || s->rf < 1) {
			spec_error(s, TM_ERR_INVALID_REPLICA_ASSIGNMENT, "Invalid replica assignment for topic %s", s->name);
			return false;
		}
	} else {
		if (s->n_parts == -1)
			s->n_parts = b->cfg.num_partitions;
		if (s->rf == -1)
			s->rf = b->cfg.default_replication_factor;
	}
	if (s->n_parts < 1 || s->n_parts > TOPICS_CREATE_PARTITIONS_MAX) {
		spec_error(s, TM_ERR_INVALID_PARTITIONS, "Number of partitions must be between 1 and 10000 (topic %s).", s->name);
		return false;
	}
	int live = live_broker_count(b);
	if (s->rf < 1 || s->rf > live) {
		char msg[200];
		snprintf(msg, sizeof(msg), "Unable to replicate the partition %d time(s): The target replication factor of %d cannot be reached because only %d broker(s) are registered.",
			 s->rf, s->rf, live);
		spec_error(s, TM_ERR_INVALID_REPLICATION_FACTOR, "%s", msg);
		return false;
	}
	if (s->assignment) {
		for (int32_t i = 0; i < s->n_parts * s->rf; i++) {
			struct md_broker *br = md_broker(&b->md, s->assignment[i]);
			bool dup = false;
			int32_t part = i / s->rf;
			for (int32_t j = part * s->rf; j < i; j++)
				dup |= s->assignment[j] == s->assignment[i];
			if (!br || dup) {
				spec_error(s, TM_ERR_INVALID_REPLICA_ASSIGNMENT,
					   "Invalid replica assignment for topic %s: unknown or repeated broker id", s->name);
				return false;
			}
		}
	}
	for (int i = 0; i < s->n_configs; i++) {
		int e = topic_config_check(s->config_keys[i], s->config_values[i], why, sizeof(why));
		if (e) {
			spec_error(s, (int16_t)e, "%s", why);
			return false;
		}
	}
	return true;
}

static void create_committed(struct tm_broker *b, void *arg, int err)
{
	struct create_op *op = arg;
	for (int i = 0; i < op->n; i++) {
		struct topic_spec *s = &op->specs[i];
		if (err && !s->error_code)
			spec_error(s, TM_ERR_NOT_CONTROLLER,
				   "The active controller changed before topic %s was committed; retry", s->name);
		else if (!s->error_code)
			tm_info("controller", "created topic %s with %d partitions, replication factor %d", s->name, s->n_parts,
				s->rf);
	}
	op->cb(b, op->arg, op->specs, op->n);
	free(op);
}

static void create_run(struct tm_broker *b, void *arg)
{
	struct create_op *op = arg;
	struct ctl_txn t;
	ctl_txn_init(&t);
	int added = 0;
	for (int i = 0; i < op->n; i++) {
		struct topic_spec *s = &op->specs[i];
		if (s->error_code) /* already refused while decoding */
			continue;
		if (!spec_valid(b, s, op->specs, i))
			continue;
		if (op->validate_only)
			continue;
		int32_t *replicas = s->assignment;
		int32_t *placed = NULL;
		if (!replicas) {
			placed = malloc(sizeof(int32_t) * (size_t)s->n_parts * (size_t)s->rf);
			if (!placed || controller_place(b, s->n_parts, s->rf, (int32_t)(b->md.topics.count + (size_t)added), placed)) {
				free(placed);
				spec_error(s, TM_ERR_INVALID_REPLICATION_FACTOR, "Cannot place topic %s", s->name);
				continue;
			}
			replicas = placed;
		}
		int rc = controller_add_topic_records(b, &t, s->name, s->n_parts, s->rf, replicas, s->config_keys,
						      s->config_values, s->n_configs, &s->id);
		free(placed);
		if (rc) {
			spec_error(s, TM_ERR_UNKNOWN_SERVER_ERROR, "Out of memory creating topic %s", s->name);
			continue;
		}
		added++;
	}
	if (!added) {
		ctl_txn_deinit(&t);
		op->cb(b, op->arg, op->specs, op->n);
		free(op);
		controller_done(b);
		return;
	}
	controller_commit(b, &t, create_committed, op);
}

#define TOPICS_REMOTE_VERSION 7

static void create_remote_done(void *arg, int err, struct tm_rd *body)
{
	struct create_op *op = arg;
	struct tm_broker *b = op->b;
	struct tm_arena a;
	arena_init(&a, 0);
	struct kafka_create_topics_response r;
	if (!err && kafka_create_topics_response_decode(body, TOPICS_REMOTE_VERSION, &r, &a))
		err = -EBADMSG;
	for (int i = 0; i < op->n; i++) {
		struct topic_spec *s = &op->specs[i];
		if (s->error_code)
			continue;
		if (err) {
			spec_error(s, TM_ERR_NOT_CONTROLLER, "The active controller could not be reached (topic %s)", s->name);
			continue;
		}
		for (int32_t j = 0; j < r.topics_count; j++) {
			if (!kstr_eq(r.topics[j].name, s->name))
				continue;
			s->error_code = r.topics[j].error_code;
			s->id = r.topics[j].topic_id;
			if (r.topics[j].error_message.len > 0)
				snprintf(s->error_message, sizeof(s->error_message), "%.*s", r.topics[j].error_message.len,
					 r.topics[j].error_message.ptr);
			if (r.topics[j].num_partitions > 0)
				s->n_parts = r.topics[j].num_partitions;
			if (r.topics[j].replication_factor > 0)
				s->rf = r.topics[j].replication_factor;
		}
	}
	arena_deinit(&a);
	op->cb(b, op->arg, op->specs, op->n);
	free(op);
}

/* On a node that is not the active controller: a CreateTopics request to it. */
static void create_remote(struct create_op *op)
{
	struct tm_broker *b = op->b;
	struct tm_peer *leader = quorum_leader_peer(b);
	struct kafka_create_topics_request r;
	kafka_create_topics_request_init(&r);
	struct kafka_create_topics_request_creatable_topic *ts = calloc((size_t)(op->n ? op->n : 1), sizeof(*ts));
	int k = 0;
	for (int i = 0; ts && i < op->n; i++) {
		struct topic_spec *s = &op->specs[i];
		if (s->error_code)
			continue;
		ts[k].name = kstr_c(s->name);
		ts[k].num_partitions = s->assignment ? -1 : s->n_parts;
		ts[k].replication_factor = s->assignment ? -1 : s->rf;
		ts[k].assignments_count = 0;
		ts[k].configs = calloc((size_t)(s->n_configs ? s->n_configs : 1), sizeof(*ts[k].configs));
		ts[k].configs_count = ts[k].configs ? s->n_configs : 0;
		for (int c = 0; c < ts[k].configs_count; c++) {
			ts[k].configs[c].name = kstr_c(s->config_keys[c]);
			ts[k].configs[c].value = kstr_c(s->config_values[c]);
		}
		k++;
	}
	r.topics = ts;
	r.topics_count = k;
	r.timeout_ms = 30000;
	r.validate_only = op->validate_only;
	struct tm_wbuf w;
	wbuf_init(&w);
	kafka_create_topics_request_encode(&w, TOPICS_REMOTE_VERSION, &r);
	for (int i = 0; ts && i < k; i++)
		free(ts[i].configs);
	free(ts);
	int rc = leader && ts ? peer_send(leader, KAFKA_API_CREATE_TOPICS, TOPICS_REMOTE_VERSION, &w, 30000,
					 create_remote_done, op)
			      : -ENOTCONN;
	wbuf_deinit(&w);
	if (rc)
		create_remote_done(op, rc, NULL);
}

void topics_create(struct tm_broker *b, struct topic_spec *specs, int n, bool validate_only, topics_create_cb cb,
		   void *arg)
{
	struct create_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	op->b = b;
	op->specs = specs;
	op->n = n;
	op->validate_only = validate_only;
	op->cb = cb;
	op->arg = arg;
	if (!quorum_is_leader(b)) {
		create_remote(op);
		return;
	}
	controller_run(b, create_run, op);
}

/* ---- CreateTopics -------------------------------------------------------------- */

static char *arena_kstr(struct tm_req *req, struct kstr s)
{
	return arena_strndup(&req->arena, s.ptr ? s.ptr : "", s.len > 0 ? (size_t)s.len : 0);
}

static void create_topics_done(struct tm_broker *b, void *arg, struct topic_spec *specs, int n)
{
	struct tm_req *req = arg;
	struct kafka_create_topics_response out;
	kafka_create_topics_response_init(&out);
	out.topics = arena_alloc(&req->arena, sizeof(*out.topics) * (size_t)(n ? n : 1));
	out.topics_count = n;
	for (int i = 0; i < n; i++) {
		struct kafka_create_topics_response_creatable_topic_result *r = &out.topics[i];
		struct topic_spec *s = &specs[i];
		r->name = kstr_c(s->name);
		r->error_code = s->error_code;
		r->error_message = s->error_code ? kstr_c(arena_strndup(&req->arena, s->error_message, strlen(s->error_message)))
						 : kstr_null();
		r->topic_id = s->id;
		r->num_partitions = s->error_code ? -1 : s->n_parts;
		r->replication_factor = s->error_code ? -1 : s->rf;
		r->configs_count = s->error_code ? -1 : 0;
		r->topic_config_error_code = 0;
		/* v5+: the topic's effective configs, as Kafka returns them. */
		if (!s->error_code) {
			int nk = 0;
			while (tm_topic_config_keys[nk])
				nk++;
			r->configs = arena_alloc(&req->arena, sizeof(*r->configs) * (size_t)nk);
			r->configs_count = 0;
			const struct md_topic *t = md_topic_by_name(&b->md, s->name, strlen(s->name));
			for (int k = 0; r->configs && k < nk; k++) {
				char buf[64];
				bool dflt;
				const char *v = topic_config_value(b, t, tm_topic_config_keys[k], buf, sizeof(buf), &dflt);
				if (!v)
					continue;
				struct kafka_create_topics_response_creatable_topic_configs *c = &r->configs[r->configs_count++];
				c->name = kstr_c(tm_topic_config_keys[k]);
				c->value = kstr_c(arena_strndup(&req->arena, v, strlen(v)));
				c->read_only = false;
				c->config_source = dflt ? 5 /* DEFAULT_CONFIG */ : 1 /* TOPIC_CONFIG */;
				c->is_sensitive = false;
			}
		}
	}
	REQ_RESPOND(req, create_topics, &out);
}

void api_create_topics(struct tm_req *req)
{
	struct kafka_create_topics_request in;
	if (REQ_DECODE(req, create_topics, &in))
		return;
	int n = in.topics_count > 0 ? in.topics_count : 0;
	struct topic_spec *specs = arena_alloc(&req->arena, sizeof(*specs) * (size_t)(n ? n : 1));
	if (!specs) {
		req_fail_decode(req);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct kafka_create_topics_request_creatable_topic *t = &in.topics[i];
		struct topic_spec *s = &specs[i];
		s->name = arena_kstr(req, t->name);
		s->n_parts = t->num_partitions;
		s->rf = t->replication_factor;
		if (t->assignments_count > 0) {
			if (s->n_parts != -1 || s->rf != -1) {
				spec_error(s, TM_ERR_INVALID_REQUEST,
					   "Both numPartitions or replicationFactor and replicasAssignments were set for topic %s", s->name);
				continue;
			}
			int32_t rf = t->assignments[0].broker_ids_count;
			s->n_parts = t->assignments_count;
			s->rf = (int16_t)rf;
			s->assignment = arena_alloc(&req->arena, sizeof(int32_t) * (size_t)(rf > 0 ? rf : 1) * (size_t)s->n_parts);
			for (int32_t p = 0; p < t->assignments_count && s->assignment; p++) {
				struct kafka_create_topics_request_creatable_replica_assignment *a = &t->assignments[p];
				if (a->broker_ids_count != rf || a->partition_index != p || rf <= 0) {
					spec_error(s, TM_ERR_INVALID_REPLICA_ASSIGNMENT, "Inconsistent replica assignment for topic %s", s->name);
					break;
				}
				memcpy(&s->assignment[p * rf], a->broker_ids, sizeof(int32_t) * (size_t)rf);
			}
		}
		s->n_configs = t->configs_count > 0 ? t->configs_count : 0;
		s->config_keys = arena_alloc(&req->arena, sizeof(char *) * (size_t)(s->n_configs + 1));
		s->config_values = arena_alloc(&req->arena, sizeof(char *) * (size_t)(s->n_configs + 1));
		for (int c = 0; c < s->n_configs && s->config_keys && s->config_values; c++) {
			s->config_keys[c] = arena_kstr(req, t->configs[c].name);
			s->config_values[c] = t->configs[c].value.len < 0 ? NULL : arena_kstr(req, t->configs[c].value);
		}
	}
	topics_create(req->b, specs, n, in.validate_only, create_topics_done, req);
}

/* ---- DeleteTopics ---------------------------------------------------------------- */

struct delete_op {
	struct tm_req *req;
	struct kafka_delete_topics_response out;
};

static void delete_committed(struct tm_broker *b, void *arg, int err)
{
	struct delete_op *op = arg;
	(void)b;
	for (int32_t i = 0; i < op->out.responses_count; i++)
		if (err && !op->out.responses[i].error_code)
			op->out.responses[i].error_code = TM_ERR_NOT_CONTROLLER;
	REQ_RESPOND(op->req, delete_topics, &op->out);
	free(op);
}

static void delete_run(struct tm_broker *b, void *arg)
{
	struct delete_op *op = arg;
	struct ctl_txn t;
	ctl_txn_init(&t);
	int added = 0;
	for (int32_t i = 0; i < op->out.responses_count; i++) {
		struct kafka_delete_topics_response_deletable_topic_result *r = &op->out.responses[i];
		struct md_topic *mt = NULL;
		if (r->name.len > 0)
			mt = md_topic_by_name(&b->md, r->name.ptr, (size_t)r->name.len);
		else if (!kuuid_is_zero(&r->topic_id))
			mt = md_topic_by_id(&b->md, &r->topic_id);
		if (!b->cfg.delete_topic_enable) {
			r->error_code = TM_ERR_TOPIC_DELETION_DISABLED;
			continue;
		}
		if (!mt) {
			r->error_code = r->name.len > 0 || kuuid_is_zero(&r->topic_id) ? TM_ERR_UNKNOWN_TOPIC_OR_PARTITION
											: TM_ERR_UNKNOWN_TOPIC_ID;
			continue;
		}
		bool twice = false;
		for (int32_t j = 0; j < i; j++)
			twice |= !memcmp(op->out.responses[j].topic_id.b, mt->id.b, 16) && !op->out.responses[j].error_code;
		r->topic_id = mt->id;
		r->name = kstr_c(arena_strndup(&op->req->arena, mt->name, strlen(mt->name)));
		if (twice)
			continue;
		struct kafka_remove_topic_record rec;
		kafka_remove_topic_record_init(&rec);
		rec.topic_id = mt->id;
		if (ctl_txn_add(&t, KAFKA_METADATA_REMOVE_TOPIC, 0, &rec)) {
			r->error_code = TM_ERR_UNKNOWN_SERVER_ERROR;
			continue;
		}
		tm_info("controller", "deleting topic %s", mt->name);
		added++;
	}
	if (!added) {
		ctl_txn_deinit(&t);
		REQ_RESPOND(op->req, delete_topics, &op->out);
		free(op);
		controller_done(b);
		return;
	}
	controller_commit(b, &t, delete_committed, op);
}

void api_delete_topics(struct tm_req *req)
{
	struct kafka_delete_topics_request in;
	if (REQ_DECODE(req, delete_topics, &in))
		return;
	struct delete_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	op->req = req;
	kafka_delete_topics_response_init(&op->out);
	int32_t n = req->hdr.api_version >= 6 ? in.topics_count : in.topic_names_count;
	if (n < 0)
		n = 0;
	op->out.responses = arena_alloc(&req->arena, sizeof(*op->out.responses) * (size_t)(n ? n : 1));
	op->out.responses_count = n;
	for (int32_t i = 0; i < n; i++) {
		struct kafka_delete_topics_response_deletable_topic_result *r = &op->out.responses[i];
		if (req->hdr.api_version >= 6) {
			r->name = in.topics[i].name;
			r->topic_id = in.topics[i].topic_id;
		} else {
			r->name = in.topic_names[i];
		}
		r->error_message = kstr_null();
	}
	controller_run(req->b, delete_run, op);
}

/* ---- CreatePartitions ------------------------------------------------------------ */

struct partitions_op {
	struct tm_req *req;
	struct kafka_create_partitions_request in;
	struct kafka_create_partitions_response out;
};

static void partitions_committed(struct tm_broker *b, void *arg, int err)
{
	struct partitions_op *op = arg;
	(void)b;
	for (int32_t i = 0; i < op->out.results_count; i++)
		if (err && !op->out.results[i].error_code)
			op->out.results[i].error_code = TM_ERR_NOT_CONTROLLER;
	REQ_RESPOND(op->req, create_partitions, &op->out);
	free(op);
}

static void partitions_error(struct partitions_op *op, int32_t i, int16_t code, const char *msg)
{
	op->out.results[i].error_code = code;
	op->out.results[i].error_message = kstr_c(arena_strndup(&op->req->arena, msg, strlen(msg)));
}

static void partitions_run(struct tm_broker *b, void *arg)
{
	struct partitions_op *op = arg;
	struct ctl_txn t;
	ctl_txn_init(&t);
	int added = 0;
	for (int32_t i = 0; i < op->in.topics_count; i++) {
		struct kafka_create_partitions_request_create_partitions_topic *rt = &op->in.topics[i];
		struct md_topic *mt = rt->name.len > 0 ? md_topic_by_name(&b->md, rt->name.ptr, (size_t)rt->name.len) : NULL;
		char msg[200];
		if (!mt) {
			partitions_error(op, i, TM_ERR_UNKNOWN_TOPIC_OR_PARTITION, "The topic does not exist.");
			continue;
		}
		if (rt->count < mt->n_partitions) {
			snprintf(msg, sizeof(msg), "Topic currently has %d partitions, which is higher than the requested %d.",
				 mt->n_partitions, rt->count);
			partitions_error(op, i, TM_ERR_INVALID_PARTITIONS, msg);
			continue;
		}
		if (rt->count == mt->n_partitions) {
			snprintf(msg, sizeof(msg), "Topic already has %d partitions.", mt->n_partitions);
			partitions_error(op, i, TM_ERR_INVALID_PARTITIONS, msg);
			continue;
		}
		if (rt->count > TOPICS_CREATE_PARTITIONS_MAX) {
			partitions_error(op, i, TM_ERR_INVALID_PARTITIONS, "Too many partitions (at most 10000).");
			continue;
		}
		int32_t add = rt->count - mt->n_partitions;
		int16_t rf = (int16_t)mt->parts[0].n_replicas;
		int32_t *placed = malloc(sizeof(int32_t) * (size_t)add * (size_t)(rf ? rf : 1));
		if (!placed)
			continue;
		int perr = TM_ERR_NONE;
		if (rt->assignments_count > 0) {
			if (rt->assignments_count != add)
				perr = TM_ERR_INVALID_REPLICA_ASSIGNMENT;
			for (int32_t p = 0; p < add && !perr; p++) {
				if (rt->assignments[p].broker_ids_count != rf)
					perr = TM_ERR_INVALID_REPLICA_ASSIGNMENT;
				for (int r = 0; r < rf && !perr; r++) {
					placed[p * rf + r] = rt->assignments[p].broker_ids[r];
					if (!md_broker(&b->md, placed[p * rf + r]))
						perr = TM_ERR_INVALID_REPLICA_ASSIGNMENT;
				}
			}
		} else {
			perr = controller_place(b, add, rf, mt->n_partitions, placed);
		}
		if (perr) {
			free(placed);
			partitions_error(op, i, (int16_t)perr, "Cannot place the new partitions on the live brokers.");
			continue;
		}
		if (!op->in.validate_only) {
			for (int32_t p = 0; p < add; p++) {
				struct kafka_partition_record pr;
				kafka_partition_record_init(&pr);
				pr.partition_id = mt->n_partitions + p;
				pr.topic_id = mt->id;
				pr.replicas = &placed[p * rf];
				pr.replicas_count = rf;
				pr.isr = pr.replicas; /* empty logs: every replica in sync, as for new topics */
				pr.isr_count = rf;
				pr.removing_replicas_count = 0;
				pr.adding_replicas_count = 0;
				pr.directories_count = 0;
				pr.leader = placed[p * rf];
				pr.leader_epoch = 0;
				pr.partition_epoch = 0;
				ctl_txn_add(&t, KAFKA_METADATA_PARTITION, 0, &pr);
			}
			tm_info("controller", "topic %s: %d -> %d partitions", mt->name, mt->n_partitions, rt->count);
			added++;
		}
		free(placed);
	}
	if (!added) {
		ctl_txn_deinit(&t);
		REQ_RESPOND(op->req, create_partitions, &op->out);
		free(op);
		controller_done(b);
		return;
	}
	controller_commit(b, &t, partitions_committed, op);
}

void api_create_partitions(struct tm_req *req)
{
	struct partitions_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	if (REQ_DECODE(req, create_partitions, &op->in)) {
		free(op);
		return;
	}
	op->req = req;
	kafka_create_partitions_response_init(&op->out);
	int32_t n = op->in.topics_count > 0 ? op->in.topics_count : 0;
	op->in.topics_count = n;
	op->out.results = arena_alloc(&req->arena, sizeof(*op->out.results) * (size_t)(n ? n : 1));
	op->out.results_count = n;
	for (int32_t i = 0; i < n; i++) {
		op->out.results[i].name = op->in.topics[i].name;
		op->out.results[i].error_message = kstr_null();
	}
	controller_run(req->b, partitions_run, op);
}
