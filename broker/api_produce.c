/*
 * api_produce.c — Produce: from decoded request to partition_append().
 *
 * Each partition's records are validated first (protocol/records.c: whole v2
 * batches, CRC-32C, sizes); a bad partition gets its own error code and the
 * others still append.  The response waits for every append's durability
 * callback (and, with acks=all, for the high watermark to cover it: every
 * in-sync replica has the batch, or timeout_ms passed).
 * acks=0 gets no response at all, as in Kafka.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/partition.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"
#include "protocol/records.h"

struct produce_op {
	struct tm_req *req;
	struct kafka_produce_response out;
	int pending;
};

struct produce_part {
	struct produce_op *op;
	struct kafka_produce_response_partition_produce_response *r;
	struct tm_partition *p;
};

static void produce_maybe_finish(struct produce_op *op)
{
	if (--op->pending > 0)
		return;
	struct tm_req *req = op->req;
	if (req->no_response)
		req_finish(req);
	else
		REQ_RESPOND(req, produce, &op->out);
	free(op);
}

static void produce_part_done(void *arg, int kerr, const struct log_append_result *res)
{
	struct produce_part *pp = arg;
	struct kafka_produce_response_partition_produce_response *r = pp->r;
	r->error_code = (int16_t)kerr;
	if (kerr == TM_ERR_NONE) {
		r->base_offset = res->base_offset;
		r->log_append_time_ms = res->log_append_time_ms;
		r->log_start_offset = res->log_start_offset;
	} else {
		r->base_offset = -1;
		if (kerr == TM_ERR_NOT_LEADER_OR_FOLLOWER && pp->p) {
			r->current_leader.leader_id = pp->p->leader_id;
			r->current_leader.leader_epoch = pp->p->leader_epoch;
		}
	}
	produce_maybe_finish(pp->op);
}

static int16_t records_error(int rc)
{
	switch (rc) {
	case -EMSGSIZE:
		return TM_ERR_MESSAGE_TOO_LARGE;
	case -EPROTO:
		return TM_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
	default:
		return TM_ERR_CORRUPT_MESSAGE;
	}
}

void api_produce(struct tm_req *req)
{
	struct tm_broker *b = req->b;
	struct kafka_produce_request in;
	if (REQ_DECODE(req, produce, &in))
		return;
	struct produce_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	op->req = req;
	op->pending = 1; /* released below, after every partition was started */
	kafka_produce_response_init(&op->out);
	req->no_response = in.acks == 0;
	bool acks_ok = in.acks == 0 || in.acks == 1 || in.acks == -1;

	int32_t nt = in.topic_data_count > 0 ? in.topic_data_count : 0;
	op->out.responses = arena_alloc(&req->arena, sizeof(*op->out.responses) * (size_t)(nt ? nt : 1));
	op->out.responses_count = op->out.responses ? nt : 0;
	for (int32_t t = 0; t < op->out.responses_count; t++) {
		struct kafka_produce_request_topic_produce_data *td = &in.topic_data[t];
		struct kafka_produce_response_topic_produce_response *tr = &op->out.responses[t];
		tr->name = td->name;
		int32_t np = td->partition_data_count > 0 ? td->partition_data_count : 0;
		tr->partition_responses = arena_alloc(&req->arena, sizeof(*tr->partition_responses) * (size_t)(np ? np : 1));
		tr->partition_responses_count = tr->partition_responses ? np : 0;
		struct produce_part *parts = arena_alloc(&req->arena, sizeof(*parts) * (size_t)(np ? np : 1));
		for (int32_t i = 0; i < tr->partition_responses_count && parts; i++) {
			struct kafka_produce_request_partition_produce_data *pd = &td->partition_data[i];
			struct kafka_produce_response_partition_produce_response *r = &tr->partition_responses[i];
			r->current_leader.leader_id = -1;
			r->current_leader.leader_epoch = -1;
			r->error_message = kstr_null();
			r->index = pd->index;
			r->base_offset = -1;
			r->log_append_time_ms = -1;
			r->log_start_offset = -1;
			r->record_errors_count = 0;
			struct tm_partition *p = partition_get(b, td->name, pd->index);
			if (!acks_ok) {
				r->error_code = TM_ERR_INVALID_REQUIRED_ACKS;
				continue;
			}
			if (!p) {
				r->error_code = TM_ERR_UNKNOWN_TOPIC_OR_PARTITION;
				continue;
			}
			if (p->topic->internal) {
				r->error_code = TM_ERR_INVALID_TOPIC_EXCEPTION; /* clients may not write __consumer_offsets */
				continue;
			}
			int kerr = partition_leader_error(p);
			if (kerr) {
				r->error_code = (int16_t)kerr;
				r->current_leader.leader_id = p->leader_id;
				r->current_leader.leader_epoch = p->leader_epoch;
				continue;
			}
			if (pd->records.len <= 0) {
				r->error_code = TM_ERR_CORRUPT_MESSAGE;
				continue;
			}
			struct records_summary sum;
			int rc = records_validate(pd->records.ptr, (size_t)pd->records.len, p->topic->max_message_bytes, &sum);
			if (rc) {
				r->error_code = records_error(rc);
				tm_debug("produce", "%.*s-%d: rejected records (%s)", td->name.len, td->name.ptr, pd->index,
					 strerror(-rc));
				continue;
			}
			if (sum.transactional || sum.control) {
				/* Transactions are not supported yet; refuse rather than store half of one. */
				r->error_code = TM_ERR_INVALID_RECORD;
				r->error_message = kstr_c("Transactional produce is not supported by this broker");
				continue;
			}
			if (in.acks == -1 && partition_isr_size(p) < partition_min_isr(p)) {
				r->error_code = TM_ERR_NOT_ENOUGH_REPLICAS;
				continue;
			}
			struct produce_part *pp = &parts[i];
			pp->op = op;
			pp->r = r;
			pp->p = p;
			op->pending++;
			/* The request frame outlives every partition's callback (the
			 * response waits for them all), so the log writes it in place. */
			partition_append_inplace(p, (uint8_t *)pd->records.ptr, (size_t)pd->records.len,
						 in.acks == -1 ? -1 : 1, in.timeout_ms, produce_part_done, pp);
		}
	}
	produce_maybe_finish(op);
}
