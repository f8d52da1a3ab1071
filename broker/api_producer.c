/*
 * api_producer.c — InitProducerId for idempotent producers.
 *
 * Producer ids come in blocks of PRODUCER_ID_BLOCK committed to the metadata
 * log (ProducerIdsRecord), so an id is never handed out twice, across
 * restarts too: a restarted node abandons the rest of its block and takes a
 * fresh one.  Without a transactional id, Kafka hands every call a new
 * producer id at epoch 0, and so does Tidemark.  Transactions are not
 * supported: a transactional id is refused.
 */
#include <stdlib.h>

#include "broker/api.h"
#include "broker/controller.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"

#define PRODUCER_ID_BLOCK 1000

static void pid_answer(struct tm_req *req, int16_t err, int64_t pid)
{
	struct kafka_init_producer_id_response out;
	kafka_init_producer_id_response_init(&out);
	out.error_code = err;
	out.producer_id = err ? -1 : pid;
	out.producer_epoch = err ? -1 : 0;
	REQ_RESPOND(req, init_producer_id, &out);
}

static void pid_block_committed(struct tm_broker *b, void *arg, int err)
{
	struct tm_req *req = arg;
	if (err) {
		pid_answer(req, TM_ERR_COORDINATOR_NOT_AVAILABLE, -1);
		return;
	}
	b->pid_end = b->md.next_producer_id;
	b->pid_next = b->pid_end - PRODUCER_ID_BLOCK;
	pid_answer(req, TM_ERR_NONE, b->pid_next++);
}

static void pid_run(struct tm_broker *b, void *arg)
{
	struct tm_req *req = arg;
	if (b->pid_next < b->pid_end) {
		pid_answer(req, TM_ERR_NONE, b->pid_next++);
		controller_done(b);
		return;
	}
	struct ctl_txn t;
	ctl_txn_init(&t);
	struct kafka_producer_ids_record r;
	kafka_producer_ids_record_init(&r);
	r.broker_id = b->cfg.node_id;
	struct md_broker *me = md_broker(&b->md, b->cfg.node_id);
	r.broker_epoch = me ? me->epoch : -1;
	r.next_producer_id = b->md.next_producer_id + PRODUCER_ID_BLOCK;
	if (ctl_txn_add(&t, KAFKA_METADATA_PRODUCER_IDS, 0, &r)) {
		ctl_txn_deinit(&t);
		pid_answer(req, TM_ERR_UNKNOWN_SERVER_ERROR, -1);
		controller_done(b);
		return;
	}
	controller_commit(b, &t, pid_block_committed, req);
}

void api_init_producer_id(struct tm_req *req)
{
	struct kafka_init_producer_id_request in;
	if (REQ_DECODE(req, init_producer_id, &in))
		return;
	if (in.transactional_id.len >= 0) {
		tm_warn("producer", "InitProducerId with transactional.id '%.*s' refused: transactions are not supported",
			in.transactional_id.len, in.transactional_id.ptr);
		pid_answer(req, TM_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1);
		return;
	}
	controller_run(req->b, pid_run, req);
}
