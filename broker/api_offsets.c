/*
 * api_offsets.c — ListOffsets, DeleteRecords and OffsetForLeaderEpoch: the
 * questions about where a partition's log begins and ends.
 */
#include <errno.h>
#include <string.h>

#include "broker/api.h"
#include "broker/partition.h"
#include "common/kerr.h"
#include "common/tm_log.h"

enum {
	LIST_LATEST = -1,
	LIST_EARLIEST = -2,
	LIST_MAX_TIMESTAMP = -3,
	LIST_EARLIEST_LOCAL = -4,
	LIST_LATEST_TIERED = -5,
};

/* Leader and epoch checks shared by the three APIs. */
static int16_t leader_check(const struct tm_partition *p, int32_t current_leader_epoch)
{
	if (!p)
		return TM_ERR_UNKNOWN_TOPIC_OR_PARTITION;
	int kerr = partition_leader_error(p);
	if (kerr)
		return (int16_t)kerr;
	if (current_leader_epoch >= 0 && current_leader_epoch > p->leader_epoch)
		return TM_ERR_UNKNOWN_LEADER_EPOCH;
	if (current_leader_epoch >= 0 && current_leader_epoch < p->leader_epoch)
		return TM_ERR_FENCED_LEADER_EPOCH;
	return TM_ERR_NONE;
}

static void list_one(struct tm_partition *p, int64_t ts, struct kafka_list_offsets_response_list_offsets_partition_response *r)
{
	r->timestamp = -1;
	r->offset = -1;
	r->leader_epoch = -1;
	switch (ts) {
	case LIST_LATEST:
		r->offset = p->high_watermark;
		r->leader_epoch = p->leader_epoch;
		return;
	case LIST_EARLIEST:
	case LIST_EARLIEST_LOCAL:
		r->offset = log_start_offset(p->log);
		r->leader_epoch = p->leader_epoch;
		return;
	case LIST_LATEST_TIERED:
		return; /* no tiered storage: no offset */
	case LIST_MAX_TIMESTAMP: {
		int64_t mts, moff;
		log_max_timestamp(p->log, &mts, &moff);
		if (moff >= 0 && moff < p->high_watermark) {
			r->timestamp = mts;
			r->offset = moff;
			r->leader_epoch = p->leader_epoch;
		}
		return;
	}
	default:
		break;
	}
	if (ts < 0) {
		r->error_code = TM_ERR_INVALID_REQUEST;
		return;
	}
	int64_t off, found_ts;
	int rc = log_offset_for_timestamp(p->log, ts, &off, &found_ts);
	if (rc) {
		r->error_code = TM_ERR_KAFKA_STORAGE_ERROR;
		return;
	}
	if (off >= 0 && off < p->high_watermark) {
		r->offset = off;
		r->timestamp = found_ts;
		r->leader_epoch = p->leader_epoch;
	}
}

void api_list_offsets(struct tm_req *req)
{
	struct kafka_list_offsets_request in;
	if (REQ_DECODE(req, list_offsets, &in))
		return;
	struct kafka_list_offsets_response out;
	kafka_list_offsets_response_init(&out);
	int32_t nt = in.topics_count > 0 ? in.topics_count : 0;
	out.topics = arena_alloc(&req->arena, sizeof(*out.topics) * (size_t)(nt ? nt : 1));
	out.topics_count = out.topics ? nt : 0;
	for (int32_t t = 0; t < out.topics_count; t++) {
		struct kafka_list_offsets_request_list_offsets_topic *qt = &in.topics[t];
		struct kafka_list_offsets_response_list_offsets_topic_response *rt = &out.topics[t];
		rt->name = qt->name;
		int32_t np = qt->partitions_count > 0 ? qt->partitions_count : 0;
		rt->partitions = arena_alloc(&req->arena, sizeof(*rt->partitions) * (size_t)(np ? np : 1));
		rt->partitions_count = rt->partitions ? np : 0;
		for (int32_t i = 0; i < rt->partitions_count; i++) {
			struct kafka_list_offsets_request_list_offsets_partition *qp = &qt->partitions[i];
			struct kafka_list_offsets_response_list_offsets_partition_response *r = &rt->partitions[i];
			r->partition_index = qp->partition_index;
			r->timestamp = -1;
			r->offset = -1;
			r->leader_epoch = -1;
			r->old_style_offsets_count = 0;
			struct tm_partition *p = partition_get(req->b, qt->name, qp->partition_index);
			r->error_code = leader_check(p, qp->current_leader_epoch);
			if (!r->error_code)
				list_one(p, qp->timestamp, r);
		}
	}
	REQ_RESPOND(req, list_offsets, &out);
}

void api_delete_records(struct tm_req *req)
{
	struct kafka_delete_records_request in;
	if (REQ_DECODE(req, delete_records, &in))
		return;
	struct kafka_delete_records_response out;
	kafka_delete_records_response_init(&out);
	int32_t nt = in.topics_count > 0 ? in.topics_count : 0;
	out.topics = arena_alloc(&req->arena, sizeof(*out.topics) * (size_t)(nt ? nt : 1));
	out.topics_count = out.topics ? nt : 0;
	for (int32_t t = 0; t < out.topics_count; t++) {
		struct kafka_delete_records_request_delete_records_topic *qt = &in.topics[t];
		struct kafka_delete_records_response_delete_records_topic_result *rt = &out.topics[t];
		rt->name = qt->name;
		int32_t np = qt->partitions_count > 0 ? qt->partitions_count : 0;
		rt->partitions = arena_alloc(&req->arena, sizeof(*rt->partitions) * (size_t)(np ? np : 1));
		rt->partitions_count = rt->partitions ? np : 0;
		for (int32_t i = 0; i < rt->partitions_count; i++) {
			struct kafka_delete_records_request_delete_records_partition *qp = &qt->partitions[i];
			struct kafka_delete_records_response_delete_records_partition_result *r = &rt->partitions[i];
			r->partition_index = qp->partition_index;
			r->low_watermark = -1;
			struct tm_partition *p = partition_get(req->b, qt->name, qp->partition_index);
			r->error_code = leader_check(p, -1);
			if (r->error_code)
				continue;
			int64_t before = qp->offset == -1 ? p->high_watermark : qp->offset;
			if (before < 0 || before > p->high_watermark) {
				r->error_code = TM_ERR_OFFSET_OUT_OF_RANGE;
				continue;
			}
			if (before > log_start_offset(p->log)) {
				int rc = log_delete_records(p->log, before);
				if (rc) {
					r->error_code = TM_ERR_KAFKA_STORAGE_ERROR;
					continue;
				}
				tm_info("partition", "%s-%d: records before offset %lld deleted", p->topic->name, p->index,
					(long long)before);
			}
			r->low_watermark = log_start_offset(p->log);
		}
	}
	REQ_RESPOND(req, delete_records, &out);
}

void api_offsets_for_leader_epoch(struct tm_req *req)
{
	struct kafka_offset_for_leader_epoch_request in;
	if (REQ_DECODE(req, offset_for_leader_epoch, &in))
		return;
	struct kafka_offset_for_leader_epoch_response out;
	kafka_offset_for_leader_epoch_response_init(&out);
	int32_t nt = in.topics_count > 0 ? in.topics_count : 0;
	out.topics = arena_alloc(&req->arena, sizeof(*out.topics) * (size_t)(nt ? nt : 1));
	out.topics_count = out.topics ? nt : 0;
	for (int32_t t = 0; t < out.topics_count; t++) {
		struct kafka_offset_for_leader_epoch_request_offset_for_leader_topic *qt = &in.topics[t];
		struct kafka_offset_for_leader_epoch_response_offset_for_leader_topic_result *rt = &out.topics[t];
		rt->topic = qt->topic;
		int32_t np = qt->partitions_count > 0 ? qt->partitions_count : 0;
		rt->partitions = arena_alloc(&req->arena, sizeof(*rt->partitions) * (size_t)(np ? np : 1));
		rt->partitions_count = rt->partitions ? np : 0;
		for (int32_t i = 0; i < rt->partitions_count; i++) {
			struct kafka_offset_for_leader_epoch_request_offset_for_leader_partition *qp = &qt->partitions[i];
			struct kafka_offset_for_leader_epoch_response_epoch_end_offset *r = &rt->partitions[i];
			r->partition = qp->partition;
			r->leader_epoch = -1;
			r->end_offset = -1;
			struct tm_partition *p = partition_get(req->b, qt->topic, qp->partition);
			r->error_code = leader_check(p, qp->current_leader_epoch);
			if (r->error_code)
				continue;
			int32_t epoch;
			int64_t end;
			if (log_end_offset_for_epoch(p->log, qp->leader_epoch, &epoch, &end) == 0) {
				r->leader_epoch = epoch;
				r->end_offset = end;
			}
		}
	}
	REQ_RESPOND(req, offset_for_leader_epoch, &out);
}
