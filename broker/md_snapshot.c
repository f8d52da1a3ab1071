/*
 * md_snapshot.c — the metadata image as a KRaft snapshot and back.  Pure:
 * no I/O, no clock.  See md_snapshot.h for the layout.
 */
#include "broker/md_snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "protocol/kafka_msgs.h"
#include "protocol/records.h"

/* Record versions written (the newest whose fields the image fills). */
#define MS_V_FEATURE_LEVEL 0
#define MS_V_REGISTER_BROKER 1   /* v1 adds InControlledShutdown */
#define MS_V_CONFIG 0
#define MS_V_TOPIC 0
#define MS_V_PARTITION 0
#define MS_V_PRODUCER_IDS 0

/* ---- file names ------------------------------------------------------------ */

void md_snapshot_name(char *out, size_t out_len, struct md_snapshot_id id)
{
	snprintf(out, out_len, "%020" PRId64 "-%010" PRId32 MD_SNAPSHOT_SUFFIX, id.end_offset, id.epoch);
}

static int ms_digits(const char *p, size_t n, int64_t max, int64_t *out)
{
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		if (v > (max - (p[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return 0;
}

int md_snapshot_parse_name(const char *name, struct md_snapshot_id *id)
{
	size_t sl = strlen(MD_SNAPSHOT_SUFFIX);
	if (strlen(name) != 20 + 1 + 10 + sl || name[20] != '-' || strcmp(name + 31, MD_SNAPSHOT_SUFFIX))
		return -EINVAL;
	int64_t off, epoch;
	if (ms_digits(name, 20, INT64_MAX, &off) || ms_digits(name + 21, 10, INT32_MAX, &epoch))
		return -EINVAL;
	id->end_offset = off;
	id->epoch = (int32_t)epoch;
	return 0;
}

/* ---- writing ----------------------------------------------------------------- */

struct ms_writer {
	struct tm_wbuf *out;
	int32_t epoch;
	int64_t now_ms;
	int64_t next_offset;        /* offsets count from 0 inside the snapshot */
	bool open;                  /* a data batch is being built */
	struct records_builder rb;
	struct tm_wbuf value;       /* scratch for one record value */
};

static void ms_batch_opts(struct ms_writer *w, struct records_batch_opts *o, bool control)
{
	records_batch_opts_init(o);
	o->base_offset = w->next_offset;
	o->partition_leader_epoch = w->epoch;
	o->attributes = control ? RECORDS_ATTR_CONTROL : 0;
}

static int ms_close_batch(struct ms_writer *w)
{
	if (!w->open)
		return 0;
	w->open = false;
	w->next_offset += w->rb.count;
	return records_builder_finish(&w->rb);
}

/* One control batch holding a single record (header or footer). */
static int ms_control(struct ms_writer *w, int16_t type, const struct tm_wbuf *value)
{
	int rc = ms_close_batch(w);
	if (rc)
		return rc;
	struct records_batch_opts o;
	ms_batch_opts(w, &o, true);
	struct records_builder rb;
	records_builder_init(&rb, w->out, &o);
	uint8_t key[4] = { 0, 0, (uint8_t)(type >> 8), (uint8_t)type }; /* ControlRecordType v0 */
	rc = records_builder_add(&rb, w->now_ms, kbytes_make(key, sizeof(key)), kbytes_make(value->buf, value->len),
				 NULL, 0);
	if (!rc)
		rc = records_builder_finish(&rb);
	w->next_offset++;
	return rc ? rc : w->out->err ? -ENOMEM : 0;
}

static int ms_emit(struct ms_writer *w, int16_t type, int16_t version, const void *record)
{
	wbuf_reset(&w->value);
	wr_uvarint(&w->value, MD_SNAPSHOT_FRAME_VERSION);
	wr_uvarint(&w->value, (uint32_t)type);
	wr_uvarint(&w->value, (uint32_t)version);
	int rc = kafka_metadata_record_encode(type, version, &w->value, record);
	if (rc)
		return rc;
	if (w->value.err)
		return -ENOMEM;
	if (w->open && (w->rb.count >= MD_SNAPSHOT_BATCH_RECORDS ||
			w->out->len - w->rb.start + w->value.len > MD_SNAPSHOT_BATCH_BYTES)) {
		rc = ms_close_batch(w);
		if (rc)
			return rc;
	}
	if (!w->open) {
		struct records_batch_opts o;
		ms_batch_opts(w, &o, false);
		records_builder_init(&w->rb, w->out, &o);
		w->open = true;
	}
	return records_builder_add(&w->rb, w->now_ms, kbytes_null(), kbytes_make(w->value.buf, w->value.len),
				   NULL, 0);
}

static int ms_config(struct ms_writer *w, int8_t resource_type, const char *resource_name, const struct md_config *c)
{
	struct kafka_config_record r;
	kafka_config_record_init(&r);
	r.resource_type = resource_type;
	r.resource_name = kstr_c(resource_name);
	r.name = kstr_c(c->key);
	r.value = kstr_c(c->value);
	return ms_emit(w, KAFKA_METADATA_CONFIG, MS_V_CONFIG, &r);
}

static int ms_broker(struct ms_writer *w, const struct md_broker *b)
{
	struct kafka_register_broker_record r;
	struct kafka_register_broker_record_broker_endpoint eps[MD_ENDPOINTS_MAX];
	kafka_register_broker_record_init(&r);
	if (b->n_eps < 0 || b->n_eps > MD_ENDPOINTS_MAX)
		return -EINVAL;
	for (int i = 0; i < b->n_eps; i++) {
		memset(&eps[i], 0, sizeof(eps[i]));
		eps[i].name = kstr_c(b->eps[i].name);
		eps[i].host = kstr_c(b->eps[i].host);
		eps[i].port = (uint16_t)b->eps[i].port;
		eps[i].security_protocol = b->eps[i].security_protocol;
	}
	r.broker_id = b->id;
	r.broker_epoch = b->epoch;
	r.end_points = eps;
	r.end_points_count = b->n_eps;
	r.features_count = 0;
	r.rack = b->rack[0] ? kstr_c(b->rack) : kstr_null();
	r.fenced = b->fenced;
	r.in_controlled_shutdown = b->in_controlled_shutdown;
	return ms_emit(w, KAFKA_METADATA_REGISTER_BROKER, MS_V_REGISTER_BROKER, &r);
}

static int ms_topic(struct ms_writer *w, const struct md_topic *t)
{
	struct kafka_topic_record tr;
	kafka_topic_record_init(&tr);
	tr.name = kstr_c(t->name);
	tr.topic_id = t->id;
	int rc = ms_emit(w, KAFKA_METADATA_TOPIC, MS_V_TOPIC, &tr);
	for (int i = 0; i < t->n_configs && !rc; i++)
		rc = ms_config(w, MD_RESOURCE_TOPIC, t->name, &t->configs[i]);
	for (int32_t p = 0; p < t->n_partitions && !rc; p++) {
		const struct md_partition *mp = &t->parts[p];
		if (mp->n_replicas < 0 || mp->n_replicas > MD_REPLICAS_MAX || mp->n_isr < 0 || mp->n_isr > MD_REPLICAS_MAX ||
		    mp->n_adding < 0 || mp->n_adding > MD_REPLICAS_MAX || mp->n_removing < 0 ||
		    mp->n_removing > MD_REPLICAS_MAX)
			return -EINVAL;
		struct kafka_partition_record pr;
		kafka_partition_record_init(&pr);
		pr.partition_id = p;
		pr.topic_id = t->id;
		pr.replicas = (int32_t *)mp->replicas;
		pr.replicas_count = mp->n_replicas;
		pr.isr = (int32_t *)mp->isr;
		pr.isr_count = mp->n_isr;
		pr.removing_replicas = (int32_t *)mp->removing;
		pr.removing_replicas_count = mp->n_removing;
		pr.adding_replicas = (int32_t *)mp->adding;
		pr.adding_replicas_count = mp->n_adding;
		pr.leader = mp->leader;
		pr.leader_epoch = mp->leader_epoch;
		pr.partition_epoch = mp->partition_epoch;
		rc = ms_emit(w, KAFKA_METADATA_PARTITION, MS_V_PARTITION, &pr);
	}
	return rc;
}

static int ms_records(struct ms_writer *w, const struct md_image *img)
{
	int rc = 0;
	if (img->metadata_version) {
		struct kafka_feature_level_record f;
		kafka_feature_level_record_init(&f);
		f.name = kstr_c("metadata.version");
		f.feature_level = img->metadata_version;
		rc = ms_emit(w, KAFKA_METADATA_FEATURE_LEVEL, MS_V_FEATURE_LEVEL, &f);
	}
	if (img->n_brokers < 0 || img->n_brokers > MD_BROKERS_MAX)
		return -EINVAL;
	for (int i = 0; i < img->n_brokers && !rc; i++)
		rc = ms_broker(w, &img->brokers[i]);
	for (int i = 0; i < img->n_broker_configs && !rc; i++)
		rc = ms_config(w, MD_RESOURCE_BROKER, "", &img->broker_configs[i]);
	for (size_t i = 0; i < img->topics.cap && !rc; i++)
		if (img->topics.slots[i].key)
			rc = ms_topic(w, img->topics.slots[i].value);
	if (!rc && img->next_producer_id > 0) {
		struct kafka_producer_ids_record r;
		kafka_producer_ids_record_init(&r);
		r.broker_id = -1;
		r.broker_epoch = -1;
		r.next_producer_id = img->next_producer_id;
		rc = ms_emit(w, KAFKA_METADATA_PRODUCER_IDS, MS_V_PRODUCER_IDS, &r);
	}
	return rc;
}

int md_snapshot_write(const struct md_image *img, int32_t epoch, int64_t last_log_timestamp_ms, int64_t now_ms,
		      struct tm_wbuf *out)
{
	struct ms_writer w;
	memset(&w, 0, sizeof(w));
	w.out = out;
	w.epoch = epoch;
	w.now_ms = now_ms;
	wbuf_init(&w.value);

	struct kafka_snapshot_header_record h;
	kafka_snapshot_header_record_init(&h);
	h.version = 0;
	h.last_contained_log_timestamp = last_log_timestamp_ms;
	kafka_snapshot_header_record_encode(&w.value, 0, &h);
	int rc = w.value.err ? -ENOMEM : ms_control(&w, MD_CONTROL_SNAPSHOT_HEADER, &w.value);
	if (!rc)
		rc = ms_records(&w, img);
	if (!rc)
		rc = ms_close_batch(&w);
	if (!rc) {
		struct kafka_snapshot_footer_record f;
		kafka_snapshot_footer_record_init(&f);
		f.version = 0;
		wbuf_reset(&w.value);
		kafka_snapshot_footer_record_encode(&w.value, 0, &f);
		rc = w.value.err ? -ENOMEM : ms_control(&w, MD_CONTROL_SNAPSHOT_FOOTER, &w.value);
	}
	wbuf_deinit(&w.value);
	if (!rc && out->err)
		rc = -ENOMEM;
	return rc;
}

/* ---- reading ----------------------------------------------------------------- */

int md_snapshot_apply_value(struct md_image *img, const uint8_t *p, size_t len)
{
	struct tm_rd r;
	rd_init(&r, p, len);
	uint32_t frame = rd_uvarint(&r);
	uint32_t type = rd_uvarint(&r);
	uint32_t version = rd_uvarint(&r);
	if (r.err || frame != MD_SNAPSHOT_FRAME_VERSION || type > INT16_MAX || version > INT16_MAX)
		return -EBADMSG;
	const struct kafka_metadata_record_desc *d = kafka_metadata_record_lookup((int16_t)type);
	if (!d)
		return 0;
	struct tm_arena a;
	arena_init(&a, 0);
	void *rec = arena_alloc(&a, d->struct_size);
	int rc = -ENOMEM;
	if (rec) {
		rc = kafka_metadata_record_decode((int16_t)type, (int16_t)version, &r, rec, &a);
		if (rc)
			rc = -EBADMSG;
		else
			rc = md_apply(img, (int16_t)type, rec);
	}
	arena_deinit(&a);
	return rc;
}

static int ms_fail(char *why, size_t why_len, int rc, const char *fmt, ...)
{
	if (why && why_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* The ControlRecordType of a control record's key, or -1. */
static int ms_control_type(const struct records_record *rec)
{
	if (rec->key.len != 4)
		return -1;
	const uint8_t *k = rec->key.ptr;
	if (k[0] || k[1])
		return -1; /* ControlRecordType version 0 only */
	return (k[2] << 8) | k[3];
}

int md_snapshot_read(const uint8_t *buf, size_t len, struct md_image *img, int64_t *last_log_timestamp_ms,
		     char *why, size_t why_len)
{
	int rc = records_validate(buf, len, 0, NULL);
	if (rc == -EBADMSG)
		return ms_fail(why, why_len, rc, "a record batch is torn or fails its CRC");
	if (rc)
		return ms_fail(why, why_len, -EBADMSG, "not a v2 record batch file (%s)", strerror(-rc));
	struct records_iter it;
	struct records_record rec;
	records_iter_init(&it, buf, len);
	bool header = false, footer = false;
	int64_t n = 0;
	while ((rc = records_iter_next(&it, &rec)) == 1) {
		n++;
		if (footer)
			return ms_fail(why, why_len, -EBADMSG, "record at offset %" PRId64 " after the footer",
				       rec.offset);
		bool control = it.hdr.attributes & RECORDS_ATTR_CONTROL;
		if (!header) {
			if (!control || ms_control_type(&rec) != MD_CONTROL_SNAPSHOT_HEADER)
				return ms_fail(why, why_len, -EBADMSG, "does not start with a SnapshotHeader record");
			struct tm_rd r;
			struct kafka_snapshot_header_record h;
			struct tm_arena a;
			arena_init(&a, 0);
			rd_init(&r, rec.value.ptr, rec.value.len > 0 ? (size_t)rec.value.len : 0);
			rc = rec.value.len > 0 ? kafka_snapshot_header_record_decode(&r, 0, &h, &a) : -EBADMSG;
			arena_deinit(&a);
			if (rc || h.version != 0)
				return ms_fail(why, why_len, -EBADMSG, "the SnapshotHeader record does not decode");
			if (last_log_timestamp_ms)
				*last_log_timestamp_ms = h.last_contained_log_timestamp;
			header = true;
			continue;
		}
		if (control) {
			int ct = ms_control_type(&rec);
			if (ct == MD_CONTROL_SNAPSHOT_HEADER)
				return ms_fail(why, why_len, -EBADMSG, "a second SnapshotHeader at offset %" PRId64,
					       rec.offset);
			if (ct == MD_CONTROL_SNAPSHOT_FOOTER)
				footer = true;
			continue; /* KRaftVersion / KRaftVoters (dynamic quorums) do not concern the image */
		}
		if (rec.value.len <= 0)
			return ms_fail(why, why_len, -EBADMSG, "record at offset %" PRId64 " has no value", rec.offset);
		rc = md_snapshot_apply_value(img, rec.value.ptr, (size_t)rec.value.len);
		if (rc == -ENOMEM)
			return rc;
		if (rc)
			return ms_fail(why, why_len, -EBADMSG, "metadata record at offset %" PRId64 " %s", rec.offset,
				       rc == -EBADMSG ? "does not decode" : "contradicts the records before it");
	}
	if (rc == -ENOTSUP)
		return ms_fail(why, why_len, rc, "a compressed batch (Tidemark writes and reads uncompressed snapshots)");
	if (rc < 0)
		return ms_fail(why, why_len, -EBADMSG, "a record batch does not parse");
	if (!header)
		return ms_fail(why, why_len, -EBADMSG, n ? "no SnapshotHeader record" : "empty file");
	if (!footer)
		return ms_fail(why, why_len, -EBADMSG, "no SnapshotFooter record: the file is incomplete");
	return 0;
}
