/*
 * api_reassign.c — partition reassignment (KIP-455) on the active
 * controller: AlterPartitionReassignments (API 45) starts or cancels one,
 * ListPartitionReassignments (API 46) shows those under way, and
 * reassign_tick() completes each once its target replicas are all in the
 * ISR.
 *
 * Life of a reassignment of a partition from replicas C to target T
 * (every step one PartitionChangeRecord):
 *
 *   start     replicas = T + (C - T), adding = T - C, removing = C - T;
 *             ISR and leader unchanged.  The new replicas open the partition
 *             as followers, fetch from the leader and join the ISR when
 *             caught up (partition replication, AlterPartition).
 *   complete  once T is inside the ISR: replicas = T, ISR = ISR ∩ T,
 *             adding = removing = []; a leader not in T hands over to the
 *             first active ISR member of T.  A reassignment that only
 *             removes replicas completes in its start record.
 *   cancel    (replicas null in the request) replicas = C, ISR without the
 *             adding replicas.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/controller.h"
#include "broker/elect.h"
#include "broker/quorum.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"

static int reassign_add(struct ctl_txn *t, const struct md_topic *mt, int32_t pi, const struct elect_change *c)
{
	struct kafka_partition_change_record r;
	elect_change_record(c, &mt->id, pi, &r);
	return ctl_txn_add(t, KAFKA_METADATA_PARTITION_CHANGE, 0, &r);
}

/* ---- AlterPartitionReassignments ------------------------------------------------ */

struct reassign_op {
	struct tm_req *req;
	struct kafka_alter_partition_reassignments_request in;
	struct kafka_alter_partition_reassignments_response out;
};

static void reassign_set(struct tm_req *req, struct kafka_alter_partition_reassignments_response_reassignable_partition_response *r,
			 int16_t code, const char *msg)
{
	r->error_code = code;
	r->error_message = code && msg ? kstr_c(arena_strndup(&req->arena, msg, strlen(msg))) : kstr_null();
}

static void reassign_committed(struct tm_broker *b, void *arg, int err)
{
	struct reassign_op *op = arg;
	(void)b;
	for (int32_t i = 0; err && i < op->out.responses_count; i++) {
		struct kafka_alter_partition_reassignments_response_reassignable_topic_response *tr = &op->out.responses[i];
		for (int32_t j = 0; j < tr->partitions_count; j++)
			if (tr->partitions[j].error_code == TM_ERR_NONE)
				reassign_set(op->req, &tr->partitions[j], TM_ERR_NOT_CONTROLLER,
					     "The active controller changed before the reassignment was committed; retry.");
	}
	REQ_RESPOND(op->req, alter_partition_reassignments, &op->out);
	free(op);
}

static void reassign_log(const struct md_topic *mt, int32_t pi, const struct md_partition *p, const struct elect_change *c,
			 bool cancel)
{
	char to[MD_REPLICAS_MAX * 12 + 4] = "";
	const int32_t *set = c->n_replicas >= 0 ? c->replicas : p->replicas;
	int n = c->n_replicas >= 0 ? c->n_replicas : p->n_replicas;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(to);
		snprintf(to + l, sizeof(to) - l, "%s%d", i ? "," : "", set[i]);
	}
	tm_info("controller", "%s-%d: reassignment %s; replicas now [%s]%s", mt->name, pi, cancel ? "cancelled" : "started",
		to, c->n_adding == 0 && c->n_removing == 0 ? " (complete)" : "");
}

static void reassign_run(struct tm_broker *b, void *arg)
{
	struct reassign_op *op = arg;
	struct ctl_txn t;
	ctl_txn_init(&t);
	int added = 0;
	bool allow_rf = op->req->hdr.api_version >= 1 ? op->in.allow_replication_factor_change : true;
	for (int32_t i = 0; i < op->out.responses_count; i++) {
		const struct kafka_alter_partition_reassignments_request_reassignable_topic *rt = &op->in.topics[i];
		struct kafka_alter_partition_reassignments_response_reassignable_topic_response *tr = &op->out.responses[i];
		const struct md_topic *mt =
			rt->name.len > 0 ? md_topic_by_name(&b->md, rt->name.ptr, (size_t)rt->name.len) : NULL;
		bool unclean = mt && elect_unclean_allowed(mt, b->cfg.unclean_leader_election_enable);
		for (int32_t j = 0; j < tr->partitions_count; j++) {
			const struct kafka_alter_partition_reassignments_request_reassignable_partition *rp = &rt->partitions[j];
			int32_t pi = rp->partition_index;
			if (!mt || pi < 0 || pi >= mt->n_partitions) {
				reassign_set(op->req, &tr->partitions[j], TM_ERR_UNKNOWN_TOPIC_OR_PARTITION,
					     "The topic or partition does not exist.");
				continue;
			}
			const struct md_partition *p = &mt->parts[pi];
			struct elect_change c;
			char why[200] = "";
			int16_t code = rp->replicas_count < 0
					       ? reassign_cancel(&b->md, p, unclean, &c, why, sizeof(why))
					       : reassign_start(&b->md, p, rp->replicas, rp->replicas_count, allow_rf, &c, why,
								sizeof(why));
			if (code == TM_ERR_NONE && !elect_change_empty(&c)) {
				if (reassign_add(&t, mt, pi, &c)) {
					code = TM_ERR_UNKNOWN_SERVER_ERROR;
					snprintf(why, sizeof(why), "Out of memory");
				} else {
					reassign_log(mt, pi, p, &c, rp->replicas_count < 0);
					added++;
				}
			}
			reassign_set(op->req, &tr->partitions[j], code, why);
		}
	}
	if (!added) {
		ctl_txn_deinit(&t);
		REQ_RESPOND(op->req, alter_partition_reassignments, &op->out);
		free(op);
		controller_done(b);
		return;
	}
	controller_commit(b, &t, reassign_committed, op);
}

void api_alter_partition_reassignments(struct tm_req *req)
{
	struct reassign_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	if (REQ_DECODE(req, alter_partition_reassignments, &op->in)) {
		free(op);
		return;
	}
	op->req = req;
	kafka_alter_partition_reassignments_response_init(&op->out);
	op->out.allow_replication_factor_change = req->hdr.api_version >= 1 ? op->in.allow_replication_factor_change : true;
	op->out.error_message = kstr_null();
	int32_t n = op->in.topics_count > 0 ? op->in.topics_count : 0;
	op->out.responses = arena_alloc(&req->arena, sizeof(*op->out.responses) * (size_t)(n ? n : 1));
	if (!op->out.responses) {
		free(op);
		req_fail_decode(req);
		return;
	}
	op->out.responses_count = n;
	for (int32_t i = 0; i < n; i++) {
		struct kafka_alter_partition_reassignments_response_reassignable_topic_response *tr = &op->out.responses[i];
		int32_t np = op->in.topics[i].partitions_count > 0 ? op->in.topics[i].partitions_count : 0;
		tr->name = op->in.topics[i].name;
		tr->partitions = arena_alloc(&req->arena, sizeof(*tr->partitions) * (size_t)(np ? np : 1));
		if (!tr->partitions) {
			free(op);
			req_fail_decode(req);
			return;
		}
		tr->partitions_count = np;
		for (int32_t j = 0; j < np; j++) {
			tr->partitions[j].partition_index = op->in.topics[i].partitions[j].partition_index;
			reassign_set(req, &tr->partitions[j], TM_ERR_NONE, NULL);
		}
	}
	controller_run(req->b, reassign_run, op);
}

/* ---- ListPartitionReassignments ---------------------------------------------------- */

static int list_partition(struct tm_req *req, struct kafka_list_partition_reassignments_response_ongoing_topic_reassignment *tr,
			  const struct md_partition *p, int32_t pi)
{
	struct kafka_list_partition_reassignments_response_ongoing_partition_reassignment *r =
		&tr->partitions[tr->partitions_count++];
	r->partition_index = pi;
	r->replicas = arena_alloc(&req->arena, sizeof(int32_t) * (size_t)(p->n_replicas + p->n_adding + p->n_removing + 1));
	if (!r->replicas)
		return -ENOMEM;
	memcpy(r->replicas, p->replicas, sizeof(int32_t) * (size_t)p->n_replicas);
	r->replicas_count = p->n_replicas;
	r->adding_replicas = r->replicas + p->n_replicas;
	memcpy(r->adding_replicas, p->adding, sizeof(int32_t) * (size_t)p->n_adding);
	r->adding_replicas_count = p->n_adding;
	r->removing_replicas = r->adding_replicas + p->n_adding;
	memcpy(r->removing_replicas, p->removing, sizeof(int32_t) * (size_t)p->n_removing);
	r->removing_replicas_count = p->n_removing;
	return 0;
}

/* Adds topic mt's ongoing reassignments (of the listed partitions, or all
 * when idx is NULL) to out, when it has any. */
static int list_topic(struct tm_req *req, struct kafka_list_partition_reassignments_response *out,
		      const struct md_topic *mt, const int32_t *idx, int32_t n_idx)
{
	struct kafka_list_partition_reassignments_response_ongoing_topic_reassignment *tr = &out->topics[out->topics_count];
	int32_t cap = idx ? n_idx : mt->n_partitions;
	tr->name = kstr_c(arena_strndup(&req->arena, mt->name, strlen(mt->name)));
	tr->partitions = arena_alloc(&req->arena, sizeof(*tr->partitions) * (size_t)(cap ? cap : 1));
	if (!tr->partitions)
		return -ENOMEM;
	tr->partitions_count = 0;
	for (int32_t k = 0; k < cap; k++) {
		int32_t pi = idx ? idx[k] : k;
		if (pi < 0 || pi >= mt->n_partitions || !reassign_ongoing(&mt->parts[pi]))
			continue;
		if (list_partition(req, tr, &mt->parts[pi], pi))
			return -ENOMEM;
	}
	if (tr->partitions_count > 0)
		out->topics_count++;
	return 0;
}

void api_list_partition_reassignments(struct tm_req *req)
{
	struct tm_broker *b = req->b;
	struct kafka_list_partition_reassignments_request in;
	if (REQ_DECODE(req, list_partition_reassignments, &in))
		return;
	struct kafka_list_partition_reassignments_response out;
	kafka_list_partition_reassignments_response_init(&out);
	out.error_message = kstr_null();
	size_t cap = in.topics_count < 0 ? b->md.topics.count : (size_t)in.topics_count;
	out.topics = arena_alloc(&req->arena, sizeof(*out.topics) * (cap ? cap : 1));
	out.topics_count = 0;
	int rc = out.topics ? 0 : -ENOMEM;
	if (in.topics_count < 0) {
		for (size_t ti = 0; ti < b->md.topics.cap && !rc; ti++)
			if (b->md.topics.slots[ti].key)
				rc = list_topic(req, &out, b->md.topics.slots[ti].value, NULL, 0);
	} else {
		/* Unknown topics are left out, as Kafka does. */
		for (int32_t i = 0; i < in.topics_count && !rc; i++) {
			const struct kafka_list_partition_reassignments_request_list_partition_reassignments_topics *rt =
				&in.topics[i];
			const struct md_topic *mt =
				rt->name.len > 0 ? md_topic_by_name(&b->md, rt->name.ptr, (size_t)rt->name.len) : NULL;
			if (mt)
				rc = list_topic(req, &out, mt, rt->partition_indexes,
						rt->partition_indexes_count > 0 ? rt->partition_indexes_count : 0);
		}
	}
	if (rc) {
		out.error_code = TM_ERR_UNKNOWN_SERVER_ERROR;
		out.topics_count = 0;
	}
	REQ_RESPOND(req, list_partition_reassignments, &out);
}

/* ---- completion ---------------------------------------------------------------------- */

static uint64_t reassign_seen_seq;  /* the image's change_seq when last scanned */
static bool reassign_queued;

static void complete_committed(struct tm_broker *b, void *arg, int err)
{
	int *n = arg;
	(void)b;
	reassign_queued = false;
	if (!err)
		tm_info("controller", "%d partition reassignments completed", *n);
	free(n);
}

static void complete_run(struct tm_broker *b, void *arg)
{
	int *n = arg;
	struct ctl_txn t;
	ctl_txn_init(&t);
	int rc = 0;
	for (size_t ti = 0; ti < b->md.topics.cap && !rc && quorum_is_leader(b); ti++) {
		if (!b->md.topics.slots[ti].key)
			continue;
		const struct md_topic *mt = b->md.topics.slots[ti].value;
		for (int32_t pi = 0; pi < mt->n_partitions && !rc; pi++) {
			struct elect_change c;
			if (!reassign_complete(&b->md, &mt->parts[pi], &c))
				continue;
			rc = reassign_add(&t, mt, pi, &c);
			tm_info("controller", "%s-%d: every target replica is in sync; completing its reassignment", mt->name, pi);
			(*n)++;
		}
	}
	if (rc || *n == 0) {
		ctl_txn_deinit(&t);
		free(n);
		reassign_queued = false;
		controller_done(b);
		return;
	}
	controller_commit(b, &t, complete_committed, n);
}

void reassign_tick(struct tm_broker *b)
{
	if (reassign_queued || b->md.change_seq == reassign_seen_seq)
		return;
	reassign_seen_seq = b->md.change_seq;
	for (size_t ti = 0; ti < b->md.topics.cap; ti++) {
		if (!b->md.topics.slots[ti].key)
			continue;
		const struct md_topic *mt = b->md.topics.slots[ti].value;
		for (int32_t pi = 0; pi < mt->n_partitions; pi++) {
			struct elect_change c;
			if (!reassign_ongoing(&mt->parts[pi]) || !reassign_complete(&b->md, &mt->parts[pi], &c))
				continue;
			int *n = calloc(1, sizeof(*n));
			TM_ASSERT(n != NULL);
			reassign_queued = true;
			controller_run(b, complete_run, n);
			return;
		}
	}
}
