/*
 * api_elect.c — leadership moved on purpose, by the active controller:
 *
 *   ElectLeaders (API 43)        PREFERRED or UNCLEAN elections for listed
 *                                partitions, or all of them (null topics)
 *   automatic leader balance     every leader.imbalance.check.interval.seconds,
 *                                preferred elections for the brokers whose
 *                                share of partitions they should lead but do
 *                                not exceeds leader.imbalance.per.broker.percentage
 *   controlled shutdown          BrokerHeartbeat want_shut_down: the broker is
 *                                marked in_controlled_shutdown and its
 *                                leadership and ISR memberships move away;
 *                                should_shut_down once it leads nothing
 *
 * Each is one controller operation (controller_run) that decides from the
 * image with the pure rules of elect.c and commits PartitionChangeRecords
 * (md_apply bumps the leader epoch of each new leader).
 *
 * The broker side of controlled shutdown lives here too: after SIGTERM the
 * node keeps serving while its heartbeats ask to shut down, and stops once
 * the controller agrees or TM_SHUTDOWN_WAIT_MS passed.  One process runs one
 * broker, so the little state these timers and queued-operation flags need is
 * file-static and owned by the loop thread.
 */
#include <errno.h>
#include <inttypes.h>
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

/* Kafka caps the elections of one balancing pass (maxElectionsPerImbalance). */
#define ELECT_REBALANCE_MAX 1000
#define ELECT_SHUTDOWN_PENDING_MAX 16

static const char *elect_error_message(int16_t code)
{
	switch (code) {
	case TM_ERR_NONE:
		return NULL;
	case TM_ERR_UNKNOWN_TOPIC_OR_PARTITION:
		return "This server does not host this topic-partition.";
	case TM_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
		return "The preferred leader was not available.";
	case TM_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE:
		return "Eligible topic partition leaders are not available.";
	case TM_ERR_ELECTION_NOT_NEEDED:
		return "Leader election not needed for topic partition.";
	case TM_ERR_NOT_CONTROLLER:
		return "The active controller changed before the election was committed; retry.";
	default:
		return "The election could not be made.";
	}
}

/* Adds the change for one partition to t; 0 or -ENOMEM. */
static int elect_add(struct ctl_txn *t, const struct md_topic *mt, int32_t pi, const struct elect_change *c)
{
	struct kafka_partition_change_record r;
	elect_change_record(c, &mt->id, pi, &r);
	return ctl_txn_add(t, KAFKA_METADATA_PARTITION_CHANGE, 0, &r);
}

/* ---- ElectLeaders ------------------------------------------------------------ */

struct elect_op {
	struct tm_req *req;
	struct kafka_elect_leaders_request in;
	struct kafka_elect_leaders_response out;
	int type;
	int elected;
};

static void elect_set(struct kafka_elect_leaders_response_partition_result *r, int32_t partition, int16_t code)
{
	r->partition_id = partition;
	r->error_code = code;
	const char *m = elect_error_message(code); /* static text */
	r->error_message = m ? kstr_c(m) : kstr_null();
}

static void elect_committed(struct tm_broker *b, void *arg, int err)
{
	struct elect_op *op = arg;
	(void)b;
	for (int32_t i = 0; i < op->out.replica_election_results_count; i++) {
		struct kafka_elect_leaders_response_replica_election_result *tr = &op->out.replica_election_results[i];
		for (int32_t j = 0; j < tr->partition_result_count; j++)
			if (err && tr->partition_result[j].error_code == TM_ERR_NONE)
				elect_set(&tr->partition_result[j], tr->partition_result[j].partition_id,
					  TM_ERR_NOT_CONTROLLER);
	}
	if (!err)
		tm_info("controller", "%s election moved the leadership of %d partitions",
			op->type == ELECT_UNCLEAN ? "unclean" : "preferred", op->elected);
	REQ_RESPOND(op->req, elect_leaders, &op->out);
	free(op);
}

/* Every partition of every topic; partitions that already have the leader
 * asked for are left out of the answer, as Kafka does. */
static int elect_all(struct tm_broker *b, struct elect_op *op, struct ctl_txn *t)
{
	struct tm_arena *a = &op->req->arena;
	size_t n_topics = b->md.topics.count;
	op->out.replica_election_results = arena_alloc(a, sizeof(*op->out.replica_election_results) * (n_topics ? n_topics : 1));
	if (!op->out.replica_election_results)
		return -ENOMEM;
	op->out.replica_election_results_count = 0;
	for (size_t ti = 0; ti < b->md.topics.cap; ti++) {
		if (!b->md.topics.slots[ti].key)
			continue;
		const struct md_topic *mt = b->md.topics.slots[ti].value;
		struct kafka_elect_leaders_response_replica_election_result *tr =
			&op->out.replica_election_results[op->out.replica_election_results_count];
		/* The answer is encoded after the commit: a copy, not the image's name. */
		tr->topic = kstr_c(arena_strndup(a, mt->name, strlen(mt->name)));
		tr->partition_result = arena_alloc(a, sizeof(*tr->partition_result) * (size_t)(mt->n_partitions ? mt->n_partitions : 1));
		if (!tr->partition_result)
			return -ENOMEM;
		tr->partition_result_count = 0;
		for (int32_t pi = 0; pi < mt->n_partitions; pi++) {
			struct elect_change c;
			int16_t code = elect_leader(&b->md, &mt->parts[pi], op->type, &c);
			if (code == TM_ERR_ELECTION_NOT_NEEDED)
				continue;
			if (code == TM_ERR_NONE) {
				if (elect_add(t, mt, pi, &c))
					return -ENOMEM;
				op->elected++;
			}
			elect_set(&tr->partition_result[tr->partition_result_count++], pi, code);
		}
		if (tr->partition_result_count > 0)
			op->out.replica_election_results_count++;
	}
	return 0;
}

static int elect_listed(struct tm_broker *b, struct elect_op *op, struct ctl_txn *t)
{
	struct tm_arena *a = &op->req->arena;
	int32_t n = op->in.topic_partitions_count;
	op->out.replica_election_results = arena_alloc(a, sizeof(*op->out.replica_election_results) * (size_t)(n ? n : 1));
	if (!op->out.replica_election_results)
		return -ENOMEM;
	op->out.replica_election_results_count = n;
	for (int32_t i = 0; i < n; i++) {
		const struct kafka_elect_leaders_request_topic_partitions *rt = &op->in.topic_partitions[i];
		struct kafka_elect_leaders_response_replica_election_result *tr = &op->out.replica_election_results[i];
		int32_t np = rt->partitions_count > 0 ? rt->partitions_count : 0;
		tr->topic = rt->topic;
		tr->partition_result = arena_alloc(a, sizeof(*tr->partition_result) * (size_t)(np ? np : 1));
		if (!tr->partition_result)
			return -ENOMEM;
		tr->partition_result_count = np;
		const struct md_topic *mt =
			rt->topic.len > 0 ? md_topic_by_name(&b->md, rt->topic.ptr, (size_t)rt->topic.len) : NULL;
		for (int32_t j = 0; j < np; j++) {
			int32_t pi = rt->partitions[j];
			if (!mt || pi < 0 || pi >= mt->n_partitions) {
				elect_set(&tr->partition_result[j], pi, TM_ERR_UNKNOWN_TOPIC_OR_PARTITION);
				continue;
			}
			struct elect_change c;
			int16_t code = elect_leader(&b->md, &mt->parts[pi], op->type, &c);
			if (code == TM_ERR_NONE) {
				if (elect_add(t, mt, pi, &c))
					return -ENOMEM;
				op->elected++;
			}
			elect_set(&tr->partition_result[j], pi, code);
		}
	}
	return 0;
}

static void elect_run(struct tm_broker *b, void *arg)
{
	struct elect_op *op = arg;
	struct ctl_txn t;
	ctl_txn_init(&t);
	int rc = op->in.topic_partitions_count < 0 ? elect_all(b, op, &t) : elect_listed(b, op, &t);
	if (rc || op->elected == 0) {
		if (rc) {
			op->out.error_code = TM_ERR_UNKNOWN_SERVER_ERROR;
			op->out.replica_election_results_count = 0;
		}
		ctl_txn_deinit(&t);
		REQ_RESPOND(op->req, elect_leaders, &op->out);
		free(op);
		controller_done(b);
		return;
	}
	controller_commit(b, &t, elect_committed, op);
}

void api_elect_leaders(struct tm_req *req)
{
	struct elect_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	if (REQ_DECODE(req, elect_leaders, &op->in)) {
		free(op);
		return;
	}
	op->req = req;
	kafka_elect_leaders_response_init(&op->out);
	/* v0 has no election type: preferred. */
	op->type = req->hdr.api_version >= 1 ? op->in.election_type : ELECT_PREFERRED;
	if (op->type != ELECT_PREFERRED && op->type != ELECT_UNCLEAN) {
		op->out.error_code = TM_ERR_INVALID_REQUEST;
		op->out.replica_election_results_count = 0;
		REQ_RESPOND(req, elect_leaders, &op->out);
		free(op);
		return;
	}
	controller_run(req->b, elect_run, op);
}

/* ---- automatic preferred-leader balance ---------------------------------------- */

static int64_t rebalance_next_ms;   /* 0: not scheduled (not the active controller yet) */
static bool rebalance_queued;

static void rebalance_committed(struct tm_broker *b, void *arg, int err)
{
	int *n = arg;
	(void)b;
	rebalance_queued = false;
	if (!err)
		tm_info("controller", "leader balance: %d partitions led by their preferred replica again", *n);
	free(n);
}

static void rebalance_run(struct tm_broker *b, void *arg)
{
	int *n = arg;
	bool imbalanced[MD_BROKERS_MAX];
	struct ctl_txn t;
	ctl_txn_init(&t);
	*n = 0;
	int rc = 0;
	if (quorum_is_leader(b) && elect_imbalanced_brokers(&b->md, b->cfg.leader_imbalance_per_broker_percentage, imbalanced)) {
		for (size_t ti = 0; ti < b->md.topics.cap && !rc && *n < ELECT_REBALANCE_MAX; ti++) {
			if (!b->md.topics.slots[ti].key)
				continue;
			const struct md_topic *mt = b->md.topics.slots[ti].value;
			for (int32_t pi = 0; pi < mt->n_partitions && !rc && *n < ELECT_REBALANCE_MAX; pi++) {
				struct elect_change c;
				if (!elect_rebalance(&b->md, &mt->parts[pi], imbalanced, &c))
					continue;
				rc = elect_add(&t, mt, pi, &c);
				(*n)++;
			}
		}
	}
	if (rc || *n == 0) {
		ctl_txn_deinit(&t);
		free(n);
		rebalance_queued = false;
		controller_done(b);
		return;
	}
	controller_commit(b, &t, rebalance_committed, n);
}

void leadership_tick(struct tm_broker *b, int64_t now_ms)
{
	reassign_tick(b);
	if (!b->cfg.auto_leader_rebalance_enable)
		return;
	if (rebalance_next_ms == 0)
		rebalance_next_ms = now_ms + b->cfg.leader_imbalance_check_interval_ms;
	if (now_ms < rebalance_next_ms || rebalance_queued)
		return;
	rebalance_next_ms = now_ms + b->cfg.leader_imbalance_check_interval_ms;
	int *n = calloc(1, sizeof(*n));
	TM_ASSERT(n != NULL);
	rebalance_queued = true;
	controller_run(b, rebalance_run, n);
}

/* ---- controlled shutdown, controller side --------------------------------------- */

static int32_t shutdown_pending[ELECT_SHUTDOWN_PENDING_MAX];
static int n_shutdown_pending;

struct shutdown_op {
	int32_t id;
	int64_t epoch;
	int moved;
};

static void shutdown_unpend(int32_t id)
{
	for (int i = 0; i < n_shutdown_pending; i++)
		if (shutdown_pending[i] == id) {
			shutdown_pending[i] = shutdown_pending[--n_shutdown_pending];
			return;
		}
}

static void shutdown_committed(struct tm_broker *b, void *arg, int err)
{
	struct shutdown_op *op = arg;
	(void)b;
	shutdown_unpend(op->id);
	if (!err)
		tm_info("controller", "broker %d in controlled shutdown: %d partitions changed leader or ISR", op->id,
			op->moved);
	free(op);
}

static void shutdown_run(struct tm_broker *b, void *arg)
{
	struct shutdown_op *op = arg;
	struct md_broker *br = md_broker(&b->md, op->id);
	struct ctl_txn t;
	ctl_txn_init(&t);
	int rc = 0;
	if (quorum_is_leader(b) && br && br->epoch == op->epoch && !br->fenced) {
		if (!br->in_controlled_shutdown) {
			struct kafka_broker_registration_change_record r;
			kafka_broker_registration_change_record_init(&r);
			r.broker_id = op->id;
			r.broker_epoch = op->epoch;
			r.fenced = 0;
			r.in_controlled_shutdown = 1;
			r.log_dirs_count = -1;
			rc = ctl_txn_add(&t, KAFKA_METADATA_BROKER_REGISTRATION_CHANGE, 1, &r);
		}
		for (size_t ti = 0; ti < b->md.topics.cap && !rc; ti++) {
			if (!b->md.topics.slots[ti].key)
				continue;
			const struct md_topic *mt = b->md.topics.slots[ti].value;
			bool unclean = elect_unclean_allowed(mt, b->cfg.unclean_leader_election_enable);
			for (int32_t pi = 0; pi < mt->n_partitions && !rc; pi++) {
				struct elect_change c;
				if (!elect_shutdown(&b->md, &mt->parts[pi], op->id, unclean, &c))
					continue;
				rc = elect_add(&t, mt, pi, &c);
				op->moved++;
			}
		}
	}
	if (rc || t.n == 0) {
		ctl_txn_deinit(&t);
		shutdown_unpend(op->id);
		free(op);
		controller_done(b);
		return;
	}
	controller_commit(b, &t, shutdown_committed, op);
}

bool leadership_shutdown_check(struct tm_broker *b, int32_t id, int64_t epoch)
{
	struct md_broker *br = md_broker(&b->md, id);
	if (!br || br->epoch != epoch)
		return false;
	if (br->fenced)
		return true;
	if (br->in_controlled_shutdown && !elect_leads_any(&b->md, id))
		return true;
	for (int i = 0; i < n_shutdown_pending; i++)
		if (shutdown_pending[i] == id)
			return false;
	if (n_shutdown_pending >= ELECT_SHUTDOWN_PENDING_MAX)
		return false; /* asked again by the next heartbeat */
	struct shutdown_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	op->id = id;
	op->epoch = epoch;
	shutdown_pending[n_shutdown_pending++] = id;
	controller_run(b, shutdown_run, op);
	return false;
}

/* ---- controlled shutdown, broker side ---------------------------------------------- */

static struct {
	bool active;
	bool acked;
	int64_t started_ms;
	int64_t deadline_ms;
} sd;

bool shutdown_begin(struct tm_broker *b, int64_t now_ms)
{
	if (!b->serving || b->registered_epoch < 0)
		return false;
	int others = 0;
	for (int i = 0; i < b->md.n_brokers; i++)
		others += elect_broker_active(&b->md, b->md.brokers[i].id, b->cfg.node_id);
	if (others == 0)
		return false; /* no broker to hand leadership to */
	sd.active = true;
	sd.acked = false;
	sd.started_ms = now_ms;
	sd.deadline_ms = now_ms + TM_SHUTDOWN_WAIT_MS;
	tm_info("node", "controlled shutdown: asking the controller to move leadership away (waiting at most %d ms)",
		TM_SHUTDOWN_WAIT_MS);
	return true;
}

bool shutdown_wanted(const struct tm_broker *b)
{
	(void)b;
	return sd.active;
}

void shutdown_heartbeat_answer(struct tm_broker *b, bool should_shut_down)
{
	(void)b;
	if (sd.active && should_shut_down)
		sd.acked = true;
}

bool shutdown_poll(struct tm_broker *b, int64_t now_ms)
{
	if (!sd.active)
		return false;
	if (!sd.acked && quorum_is_leader(b))
		sd.acked = leadership_shutdown_check(b, b->cfg.node_id, b->registered_epoch);
	if (sd.acked) {
		tm_info("node", "controlled shutdown: the controller moved this node's leadership away in %" PRId64 " ms",
			now_ms - sd.started_ms);
	} else if (now_ms >= sd.deadline_ms) {
		tm_warn("node", "controlled shutdown: the controller did not confirm within %d ms; stopping anyway",
			TM_SHUTDOWN_WAIT_MS);
	} else {
		return false;
	}
	sd.active = false;
	return true;
}
