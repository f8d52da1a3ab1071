/*
 * api_alter_partition.c — AlterPartition (API 56) on the active controller:
 * a partition leader asks to shrink or expand its ISR; the controller checks
 * the request against the image and commits a PartitionChangeRecord (the
 * partition epoch moves when it is applied).
 *
 * Checks, in Kafka's order and with its errors, per partition:
 *   unknown topic or partition       UNKNOWN_TOPIC_ID / UNKNOWN_TOPIC_OR_PARTITION
 *   the sender is not the leader     NOT_LEADER_OR_FOLLOWER
 *   leader epoch differs             FENCED_LEADER_EPOCH
 *   partition epoch differs          INVALID_UPDATE_VERSION
 *   ISR without the leader, a member
 *   that is no replica, fenced, or
 *   in controlled shutdown           INELIGIBLE_REPLICA
 * and for the whole request: NOT_CONTROLLER, STALE_BROKER_EPOCH.
 *
 * The same operation serves the leader on this very node
 * (alter_partition_local): it runs the encoded request through the same
 * path and hands back the encoded response, like a peer would.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/controller.h"
#include "broker/quorum.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"

struct ap_op {
	struct tm_broker *b;
	struct tm_req *req;                 /* a remote leader's request, or NULL */
	peer_resp_cb local_cb;              /* this node's own leader */
	void *local_arg;
	int16_t version;
	struct tm_arena arena;
	uint8_t *copy;                      /* local: the request bytes the decode points into */
	struct kafka_alter_partition_request in;
	struct kafka_alter_partition_response out;
};

static void ap_finish(struct ap_op *op)
{
	if (op->req) {
		kafka_alter_partition_response_encode(&op->req->resp, op->version, &op->out);
		req_finish(op->req);
	} else {
		struct tm_wbuf w;
		wbuf_init(&w);
		kafka_alter_partition_response_encode(&w, op->version, &op->out);
		struct tm_rd rd;
		rd_init(&rd, w.buf, w.len);
		op->local_cb(op->local_arg, 0, &rd);
		wbuf_deinit(&w);
	}
	arena_deinit(&op->arena);
	free(op->copy);
	free(op);
}

static int ap_check(struct tm_broker *b, int32_t broker_id, const struct md_partition *p,
		    const struct kafka_alter_partition_request_partition_data *pd, int32_t *isr, int *n_isr)
{
	if (p->leader != broker_id)
		return TM_ERR_NOT_LEADER_OR_FOLLOWER;
	if (pd->leader_epoch != p->leader_epoch)
		return TM_ERR_FENCED_LEADER_EPOCH;
	if (pd->partition_epoch != p->partition_epoch)
		return TM_ERR_INVALID_UPDATE_VERSION;
	*n_isr = 0;
	bool has_leader = false;
	int32_t n = pd->new_isr_count;
	bool with_epochs = n < 0;
	if (with_epochs)
		n = pd->new_isr_with_epochs_count;
	if (n <= 0 || n > MD_REPLICAS_MAX)
		return TM_ERR_INELIGIBLE_REPLICA;
	for (int32_t i = 0; i < n; i++) {
		int32_t id = with_epochs ? pd->new_isr_with_epochs[i].broker_id : pd->new_isr[i];
		struct md_broker *br = md_broker(&b->md, id);
		if (!md_replica_in(p->replicas, p->n_replicas, id) || !br || br->fenced || br->in_controlled_shutdown ||
		    md_replica_in(isr, *n_isr, id))
			return TM_ERR_INELIGIBLE_REPLICA;
		if (with_epochs && pd->new_isr_with_epochs[i].broker_epoch >= 0 &&
		    pd->new_isr_with_epochs[i].broker_epoch != br->epoch)
			return TM_ERR_INELIGIBLE_REPLICA;
		has_leader |= id == broker_id;
		isr[(*n_isr)++] = id;
	}
	return has_leader ? TM_ERR_NONE : TM_ERR_INELIGIBLE_REPLICA;
}

static struct md_topic *ap_topic(struct tm_broker *b, int16_t version,
				 const struct kafka_alter_partition_request_topic_data *td)
{
	if (version >= 2)
		return md_topic_by_id(&b->md, &td->topic_id);
	if (td->topic_name.len <= 0)
		return NULL;
	return md_topic_by_name(&b->md, td->topic_name.ptr, (size_t)td->topic_name.len);
}

/* Fills every partition's answer from the image (after commit, the new state). */
static void ap_fill(struct ap_op *op)
{
	struct tm_broker *b = op->b;
	for (int32_t t = 0; t < op->out.topics_count; t++) {
		struct kafka_alter_partition_response_topic_data *tr = &op->out.topics[t];
		struct md_topic *mt = ap_topic(b, op->version, &op->in.topics[t]);
		for (int32_t i = 0; i < tr->partitions_count; i++) {
			struct kafka_alter_partition_response_partition_data *r = &tr->partitions[i];
			if (r->error_code || !mt || r->partition_index < 0 || r->partition_index >= mt->n_partitions)
				continue;
			const struct md_partition *p = &mt->parts[r->partition_index];
			r->leader_id = p->leader;
			r->leader_epoch = p->leader_epoch;
			r->partition_epoch = p->partition_epoch;
			r->isr = arena_alloc(&op->arena, sizeof(int32_t) * (size_t)(p->n_isr ? p->n_isr : 1));
			if (r->isr) {
				memcpy(r->isr, p->isr, sizeof(int32_t) * (size_t)p->n_isr);
				r->isr_count = p->n_isr;
			}
		}
	}
}

static void ap_committed(struct tm_broker *b, void *arg, int err)
{
	struct ap_op *op = arg;
	(void)b;
	if (err) {
		op->out.error_code = TM_ERR_NOT_CONTROLLER;
		op->out.topics_count = 0;
	} else {
		ap_fill(op);
	}
	ap_finish(op);
}

static void ap_run(struct tm_broker *b, void *arg)
{
	struct ap_op *op = arg;
	kafka_alter_partition_response_init(&op->out);
	op->out.topics_count = 0;
	struct md_broker *br = md_broker(&b->md, op->in.broker_id);
	if (!quorum_is_leader(b)) {
		op->out.error_code = TM_ERR_NOT_CONTROLLER;
	} else if (!br || (op->in.broker_epoch >= 0 && op->in.broker_epoch != br->epoch)) {
		op->out.error_code = TM_ERR_STALE_BROKER_EPOCH;
	}
	if (op->out.error_code) {
		ap_finish(op);
		controller_done(b);
		return;
	}
	int32_t nt = op->in.topics_count > 0 ? op->in.topics_count : 0;
	op->out.topics = arena_alloc(&op->arena, sizeof(*op->out.topics) * (size_t)(nt ? nt : 1));
	if (!op->out.topics) {
		op->out.error_code = TM_ERR_UNKNOWN_SERVER_ERROR;
		ap_finish(op);
		controller_done(b);
		return;
	}
	op->out.topics_count = nt;
	struct ctl_txn txn;
	ctl_txn_init(&txn);
	int rc = 0;
	for (int32_t t = 0; t < nt && !rc; t++) {
		struct kafka_alter_partition_request_topic_data *td = &op->in.topics[t];
		struct kafka_alter_partition_response_topic_data *tr = &op->out.topics[t];
		tr->topic_name = td->topic_name;
		tr->topic_id = td->topic_id;
		int32_t np = td->partitions_count > 0 ? td->partitions_count : 0;
		tr->partitions = arena_alloc(&op->arena, sizeof(*tr->partitions) * (size_t)(np ? np : 1));
		tr->partitions_count = tr->partitions ? np : 0;
		struct md_topic *mt = ap_topic(b, op->version, td);
		for (int32_t i = 0; i < tr->partitions_count && !rc; i++) {
			struct kafka_alter_partition_request_partition_data *pd = &td->partitions[i];
			struct kafka_alter_partition_response_partition_data *r = &tr->partitions[i];
			memset(r, 0, sizeof(*r));
			r->partition_index = pd->partition_index;
			r->leader_id = -1;
			r->leader_epoch = -1;
			r->isr_count = 0;
			r->partition_epoch = -1;
			if (!mt || pd->partition_index < 0 || pd->partition_index >= mt->n_partitions) {
				r->error_code = op->version >= 2 && !mt ? TM_ERR_UNKNOWN_TOPIC_ID : TM_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
			const struct md_partition *p = &mt->parts[pd->partition_index];
			int32_t isr[MD_REPLICAS_MAX];
			int n_isr = 0;
			r->error_code = (int16_t)ap_check(b, op->in.broker_id, p, pd, isr, &n_isr);
			if (r->error_code) {
				tm_info("controller", "AlterPartition %s-%d from broker %d refused: error %d", mt->name,
					pd->partition_index, op->in.broker_id, r->error_code);
				continue;
			}
			struct kafka_partition_change_record cr;
			kafka_partition_change_record_init(&cr);
			cr.topic_id = mt->id;
			cr.partition_id = pd->partition_index;
			cr.isr = isr;
			cr.isr_count = n_isr;
			rc = ctl_txn_add(&txn, KAFKA_METADATA_PARTITION_CHANGE, 0, &cr);
		}
	}
	if (rc || txn.n == 0) {
		ctl_txn_deinit(&txn);
		if (rc) {
			op->out.error_code = TM_ERR_UNKNOWN_SERVER_ERROR;
			op->out.topics_count = 0;
		} else {
			ap_fill(op);
		}
		ap_finish(op);
		controller_done(b);
		return;
	}
	controller_commit(b, &txn, ap_committed, op);
}

void api_alter_partition(struct tm_req *req)
{
	struct ap_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	op->b = req->b;
	op->req = req;
	op->version = req->hdr.api_version;
	arena_init(&op->arena, 0);
	if (REQ_DECODE(req, alter_partition, &op->in)) {
		arena_deinit(&op->arena);
		free(op);
		return;
	}
	controller_run(req->b, ap_run, op);
}

int alter_partition_local(struct tm_broker *b, const uint8_t *body, size_t len, int16_t version, peer_resp_cb cb,
			  void *arg)
{
	struct ap_op *op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->b = b;
	op->local_cb = cb;
	op->local_arg = arg;
	op->version = version;
	arena_init(&op->arena, 0);
	op->copy = malloc(len ? len : 1);
	if (!op->copy) {
		free(op);
		return -ENOMEM;
	}
	memcpy(op->copy, body, len);
	struct tm_rd rd;
	rd_init(&rd, op->copy, len);
	if (kafka_alter_partition_request_decode(&rd, version, &op->in, &op->arena)) {
		arena_deinit(&op->arena);
		free(op->copy);
		free(op);
		return -EINVAL;
	}
	controller_run(b, ap_run, op);
	return 0;
}
