/*
 * records.c — Kafka record batches v2 (layout in records.h).
 *
 * Every walk over a blob checks each batch's length against the bytes left
 * before looking inside it, and every record's length against its batch, so
 * a hostile blob can at worst be reported corrupt.  Offset and timestamp
 * arithmetic on values read from the wire is done in unsigned 64-bit so
 * that it wraps instead of overflowing.
 */
#include "protocol/records.h"

#include <errno.h>
#include <string.h>

#include "common/crc32c.h"

#define BATCH_LENGTH_MIN (RECORDS_BATCH_HEADER_BYTES - RECORDS_BATCH_OVERHEAD_BYTES)

static int64_t add_wrap(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a + (uint64_t)b);
}

int records_batch_header_parse(const uint8_t *p, size_t len, struct tm_batch_hdr *h)
{
	if (len < RECORDS_BATCH_HEADER_BYTES)
		return -EBADMSG;
	h->base_offset = (int64_t)tm_load_be64(p + RECORDS_OFF_BASE_OFFSET);
	h->batch_length = (int32_t)tm_load_be32(p + RECORDS_OFF_BATCH_LENGTH);
	h->partition_leader_epoch = (int32_t)tm_load_be32(p + RECORDS_OFF_LEADER_EPOCH);
	h->magic = (int8_t)p[RECORDS_OFF_MAGIC];
	h->crc = tm_load_be32(p + RECORDS_OFF_CRC);
	h->attributes = (int16_t)tm_load_be16(p + RECORDS_OFF_ATTRIBUTES);
	h->last_offset_delta = (int32_t)tm_load_be32(p + RECORDS_OFF_LAST_OFFSET_DELTA);
	h->base_timestamp = (int64_t)tm_load_be64(p + RECORDS_OFF_BASE_TIMESTAMP);
	h->max_timestamp = (int64_t)tm_load_be64(p + RECORDS_OFF_MAX_TIMESTAMP);
	h->producer_id = (int64_t)tm_load_be64(p + RECORDS_OFF_PRODUCER_ID);
	h->producer_epoch = (int16_t)tm_load_be16(p + RECORDS_OFF_PRODUCER_EPOCH);
	h->base_sequence = (int32_t)tm_load_be32(p + RECORDS_OFF_BASE_SEQUENCE);
	h->record_count = (int32_t)tm_load_be32(p + RECORDS_OFF_RECORD_COUNT);
	return 0;
}

int64_t records_batch_size(const uint8_t *p, size_t len)
{
	if (len < RECORDS_BATCH_OVERHEAD_BYTES)
		return -EBADMSG;
	int32_t bl = (int32_t)tm_load_be32(p + RECORDS_OFF_BATCH_LENGTH);
	if (bl < 0)
		return -EBADMSG;
	return RECORDS_BATCH_OVERHEAD_BYTES + (int64_t)bl;
}

/* Checks that a whole v2 batch starts at p: 0 and *total, or -errno. */
static int batch_bounds(const uint8_t *p, size_t left, size_t *total)
{
	if (left < RECORDS_OFF_MAGIC + 1)
		return -EBADMSG;
	int8_t magic = (int8_t)p[RECORDS_OFF_MAGIC];
	if (magic != RECORDS_MAGIC_V2)
		return (magic == 0 || magic == 1) ? -EPROTO : -EBADMSG;
	int32_t bl = (int32_t)tm_load_be32(p + RECORDS_OFF_BATCH_LENGTH);
	if (bl < BATCH_LENGTH_MIN)
		return -EBADMSG;
	uint64_t t = RECORDS_BATCH_OVERHEAD_BYTES + (uint64_t)bl;
	if (t > left)
		return -EBADMSG;
	*total = (size_t)t;
	return 0;
}

/*
 * The record walk below runs once per record of every produce request, so
 * it decodes on raw pointers with the varint loop inlined, instead of going
 * through the tm_rd cursor one byte at a time.  The values are exactly
 * rd_uvarint's and rd_uvarlong's: a 32-bit varint keeps the low 32 bits of
 * its (at most 5) groups, a 64-bit one takes at most 10 groups, and a
 * longer or unterminated varint fails.
 */
static inline bool get_uvar(const uint8_t **pp, const uint8_t *end, int max_groups, uint64_t *out)
{
	const uint8_t *p = *pp;
	if (p < end && !(*p & 0x80)) { /* one byte: almost every length and delta */
		*out = *p;
		*pp = p + 1;
		return true;
	}
	uint64_t v = 0;
	for (int i = 0; i < max_groups && p < end; i++) {
		uint8_t b = *p++;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*out = v;
			*pp = p;
			return true;
		}
	}
	return false;
}

static inline bool get_varint(const uint8_t **pp, const uint8_t *end, int32_t *out)
{
	uint64_t v;
	if (!get_uvar(pp, end, 5, &v))
		return false;
	uint32_t u = (uint32_t)v;
	*out = (int32_t)((u >> 1) ^ (~(u & 1) + 1));
	return true;
}

static inline bool get_varlong(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
	uint64_t u;
	if (!get_uvar(pp, end, 10, &u))
		return false;
	*out = (int64_t)((u >> 1) ^ (~(u & 1) + 1));
	return true;
}

/* A length-prefixed byte string (-1: null). */
static inline bool get_varbytes(const uint8_t **pp, const uint8_t *end, struct kbytes *out)
{
	int32_t n;
	if (!get_varint(pp, end, &n) || n < -1)
		return false;
	if (n == -1) {
		*out = kbytes_null();
		return true;
	}
	if ((size_t)n > (size_t)(end - *pp))
		return false;
	*out = kbytes_make(*pp, (size_t)n);
	*pp += n;
	return true;
}

static int rd_varbytes(struct tm_rd *r, struct kbytes *out)
{
	const uint8_t *p = r->buf + r->pos;
	if (r->err || !get_varbytes(&p, r->buf + r->len, out)) {
		rd_fail(r);
		return -EBADMSG;
	}
	r->pos = (size_t)(p - r->buf);
	return 0;
}

/* Parses one record from r (the batch's record area) into out; on a
 * malformed record fails r and returns -EBADMSG. */
static int record_parse(struct tm_rd *r, const struct tm_batch_hdr *h, struct records_record *out)
{
	if (r->err)
		return -EBADMSG;
	const uint8_t *p = r->buf + r->pos, *end = r->buf + r->len;
	int32_t len;
	if (!get_varint(&p, end, &len) || len < 0 || (size_t)len > (size_t)(end - p))
		goto bad;
	const uint8_t *rend = p + len;
	int64_t ts_delta;
	int32_t off_delta, nh;
	if (p == rend) /* record attributes: unused by Kafka */
		goto bad;
	p++;
	if (!get_varlong(&p, rend, &ts_delta) || !get_varint(&p, rend, &off_delta) ||
	    !get_varbytes(&p, rend, &out->key) || !get_varbytes(&p, rend, &out->value) ||
	    !get_varint(&p, rend, &nh) || nh < 0)
		goto bad;
	const uint8_t *hstart = p;
	for (int32_t i = 0; i < nh; i++) {
		struct kbytes k, v;
		if (!get_varbytes(&p, rend, &k) || k.len < 0 || !get_varbytes(&p, rend, &v))
			goto bad;
	}
	if (p != rend) /* the record's length must match its fields */
		goto bad;
	r->pos = (size_t)(rend - r->buf);
	out->offset = add_wrap(h->base_offset, off_delta);
	out->timestamp = add_wrap(h->base_timestamp, ts_delta);
	out->header_count = nh;
	out->headers = kbytes_make(hstart, (size_t)(rend - hstart));
	return 0;
bad:
	rd_fail(r);
	return -EBADMSG;
}

int records_header_next(struct tm_rd *hr, struct kstr *key, struct kbytes *value)
{
	if (rd_remaining(hr) == 0)
		return hr->err ? -EBADMSG : 0;
	struct kbytes k;
	if (rd_varbytes(hr, &k) || k.len < 0 || rd_varbytes(hr, value))
		return -EBADMSG;
	key->ptr = (const char *)k.ptr;
	key->len = k.len;
	return 1;
}

static void summary_add(struct records_summary *s, const struct tm_batch_hdr *h)
{
	struct records_producer pr = {
		.producer_id = h->producer_id,
		.producer_epoch = h->producer_epoch,
		.base_sequence = h->base_sequence,
		.last_offset_delta = h->last_offset_delta,
	};
	if (s->batch_count == 0) {
		s->first = pr;
		s->compression = (int8_t)(h->attributes & RECORDS_ATTR_COMPRESSION_MASK);
	}
	s->last = pr;
	s->batch_count++;
	s->record_count += h->record_count;
	s->offset_count += (int64_t)h->last_offset_delta + 1;
	if (h->max_timestamp > s->max_timestamp)
		s->max_timestamp = h->max_timestamp;
	if (h->attributes & RECORDS_ATTR_TRANSACTIONAL)
		s->transactional = true;
	if (h->attributes & RECORDS_ATTR_CONTROL)
		s->control = true;
}

static int validate_batch(const uint8_t *p, size_t total, struct tm_batch_hdr *h)
{
	if (records_batch_header_parse(p, total, h))
		return -EBADMSG;
	if (crc32c(0, p + RECORDS_OFF_ATTRIBUTES, total - RECORDS_OFF_ATTRIBUTES) != h->crc)
		return -EBADMSG;
	/* as Kafka's LogValidator: a batch holds at least one record and its
	 * offset range matches its count */
	if (h->record_count <= 0 || h->last_offset_delta != h->record_count - 1)
		return -EBADMSG;
	int codec = h->attributes & RECORDS_ATTR_COMPRESSION_MASK;
	if (codec > RECORDS_COMPRESSION_ZSTD)
		return -EBADMSG;
	if (codec != RECORDS_COMPRESSION_NONE)
		return 0; /* compressed payload: checked by the CRC only */
	struct tm_rd r;
	rd_init(&r, p + RECORDS_BATCH_HEADER_BYTES, total - RECORDS_BATCH_HEADER_BYTES);
	for (int32_t i = 0; i < h->record_count; i++) {
		struct records_record rec;
		if (record_parse(&r, h, &rec))
			return -EBADMSG;
	}
	return rd_remaining(&r) == 0 ? 0 : -EBADMSG;
}

int records_validate(const uint8_t *buf, size_t len, int32_t max_batch_bytes,
		     struct records_summary *sum)
{
	struct records_summary local;
	if (!sum)
		sum = &local;
	memset(sum, 0, sizeof(*sum));
	sum->max_timestamp = -1;
	size_t pos = 0;
	while (pos < len) {
		size_t total;
		int rc = batch_bounds(buf + pos, len - pos, &total);
		if (rc)
			return rc;
		if (max_batch_bytes > 0 && total > (size_t)max_batch_bytes)
			return -EMSGSIZE;
		struct tm_batch_hdr h;
		rc = validate_batch(buf + pos, total, &h);
		if (rc)
			return rc;
		summary_add(sum, &h);
		pos += total;
	}
	return 0;
}

/* Checks that a whole batch of at least the header's size is at p. */
static int batch_fits(const uint8_t *p, size_t len, size_t *total)
{
	int64_t t = records_batch_size(p, len);
	if (t < RECORDS_BATCH_HEADER_BYTES || (uint64_t)t > len)
		return -EBADMSG;
	if (total)
		*total = (size_t)t;
	return 0;
}

int records_set_base_offset(uint8_t *batch, size_t len, int64_t base_offset)
{
	if (batch_fits(batch, len, NULL))
		return -EBADMSG;
	tm_store_be64(batch + RECORDS_OFF_BASE_OFFSET, (uint64_t)base_offset);
	return 0;
}

int records_set_partition_leader_epoch(uint8_t *batch, size_t len, int32_t epoch)
{
	if (batch_fits(batch, len, NULL))
		return -EBADMSG;
	tm_store_be32(batch + RECORDS_OFF_LEADER_EPOCH, (uint32_t)epoch);
	return 0;
}

int records_set_log_append_time(uint8_t *batch, size_t len, int64_t timestamp_ms)
{
	size_t total;
	if (batch_fits(batch, len, &total))
		return -EBADMSG;
	uint16_t attr = tm_load_be16(batch + RECORDS_OFF_ATTRIBUTES);
	tm_store_be16(batch + RECORDS_OFF_ATTRIBUTES, (uint16_t)(attr | RECORDS_ATTR_LOG_APPEND_TIME));
	tm_store_be64(batch + RECORDS_OFF_MAX_TIMESTAMP, (uint64_t)timestamp_ms);
	uint32_t crc = crc32c(0, batch + RECORDS_OFF_ATTRIBUTES, total - RECORDS_OFF_ATTRIBUTES);
	tm_store_be32(batch + RECORDS_OFF_CRC, crc);
	return 0;
}

int records_assign_offsets(uint8_t *buf, size_t len, int64_t base_offset, int32_t epoch,
			   int64_t *next_offset)
{
	size_t pos = 0;
	int64_t next = base_offset;
	while (pos < len) {
		size_t total;
		if (batch_fits(buf + pos, len - pos, &total))
			return -EBADMSG;
		int32_t lod = (int32_t)tm_load_be32(buf + pos + RECORDS_OFF_LAST_OFFSET_DELTA);
		if (lod < -1)
			return -EBADMSG;
		tm_store_be64(buf + pos + RECORDS_OFF_BASE_OFFSET, (uint64_t)next);
		tm_store_be32(buf + pos + RECORDS_OFF_LEADER_EPOCH, (uint32_t)epoch);
		next = add_wrap(next, (int64_t)lod + 1);
		pos += total;
	}
	if (next_offset)
		*next_offset = next;
	return 0;
}

void records_iter_init(struct records_iter *it, const uint8_t *buf, size_t len)
{
	memset(it, 0, sizeof(*it));
	it->buf = buf;
	it->len = len;
}

int records_iter_next(struct records_iter *it, struct records_record *out)
{
	for (;;) {
		if (it->records_left > 0) {
			if (record_parse(&it->rec, &it->hdr, out))
				return -EBADMSG;
			it->records_left--;
			return 1;
		}
		if (it->next_batch >= it->len)
			return 0;
		const uint8_t *p = it->buf + it->next_batch;
		size_t left = it->len - it->next_batch;
		if (left < RECORDS_BATCH_HEADER_BYTES)
			return 0; /* partial batch at the end, as fetch may return */
		records_batch_header_parse(p, left, &it->hdr);
		if (it->hdr.magic != RECORDS_MAGIC_V2 || it->hdr.batch_length < BATCH_LENGTH_MIN ||
		    it->hdr.record_count < 0)
			return -EBADMSG;
		uint64_t total = RECORDS_BATCH_OVERHEAD_BYTES + (uint64_t)it->hdr.batch_length;
		if (total > left)
			return 0; /* partial batch at the end */
		it->next_batch += (size_t)total;
		if (it->hdr.attributes & RECORDS_ATTR_COMPRESSION_MASK)
			return -ENOTSUP; /* the next call goes on with the following batch */
		rd_init(&it->rec, p + RECORDS_BATCH_HEADER_BYTES,
			(size_t)total - RECORDS_BATCH_HEADER_BYTES);
		it->records_left = it->hdr.record_count;
	}
}

void records_batch_opts_init(struct records_batch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->partition_leader_epoch = -1;
	o->producer_id = -1;
	o->producer_epoch = -1;
	o->base_sequence = -1;
}

void records_builder_init(struct records_builder *b, struct tm_wbuf *w,
			  const struct records_batch_opts *opts)
{
	static const uint8_t zero[RECORDS_BATCH_HEADER_BYTES];
	memset(b, 0, sizeof(*b));
	b->w = w;
	b->start = w->len;
	b->opts = *opts;
	b->opts.attributes &= (int16_t)~RECORDS_ATTR_COMPRESSION_MASK; /* never compresses */
	wr_bytes(w, zero, sizeof(zero));
}

static size_t varint_size(int64_t v)
{
	uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	size_t n = 1;
	while (u >= 0x80) {
		u >>= 7;
		n++;
	}
	return n;
}

static size_t varbytes_size(int32_t len)
{
	return varint_size(len < 0 ? -1 : len) + (len > 0 ? (size_t)len : 0);
}

static void wr_varbytes(struct tm_wbuf *w, const void *p, int32_t len)
{
	wr_varint(w, len < 0 ? -1 : len);
	if (len > 0)
		wr_bytes(w, p, (size_t)len);
}

int records_builder_add(struct records_builder *b, int64_t timestamp_ms, struct kbytes key,
			struct kbytes value, const struct records_header *headers, int32_t nheaders)
{
	if (nheaders < 0)
		return -EINVAL;
	if (b->count == 0) {
		b->base_timestamp = timestamp_ms;
		b->max_timestamp = timestamp_ms;
	}
	if (timestamp_ms > b->max_timestamp)
		b->max_timestamp = timestamp_ms;
	int64_t ts_delta = (int64_t)((uint64_t)timestamp_ms - (uint64_t)b->base_timestamp);
	size_t body = 1 + varint_size(ts_delta) + varint_size(b->count) + varbytes_size(key.len) +
		      varbytes_size(value.len) + varint_size(nheaders);
	for (int32_t i = 0; i < nheaders; i++)
		body += varbytes_size(headers[i].key.len < 0 ? 0 : headers[i].key.len) +
			varbytes_size(headers[i].value.len);
	if (body > INT32_MAX)
		return -EINVAL;
	struct tm_wbuf *w = b->w;
	wr_varint(w, (int32_t)body);
	wr_i8(w, 0);
	wr_varlong(w, ts_delta);
	wr_varint(w, b->count);
	wr_varbytes(w, key.ptr, key.len);
	wr_varbytes(w, value.ptr, value.len);
	wr_varint(w, nheaders);
	for (int32_t i = 0; i < nheaders; i++) {
		wr_varbytes(w, headers[i].key.ptr, headers[i].key.len < 0 ? 0 : headers[i].key.len);
		wr_varbytes(w, headers[i].value.ptr, headers[i].value.len);
	}
	b->count++;
	return w->err ? -ENOMEM : 0;
}

int records_builder_finish(struct records_builder *b)
{
	struct tm_wbuf *w = b->w;
	if (w->err)
		return -ENOMEM;
	if (b->count == 0) {
		w->len = b->start; /* Kafka has no use for an empty batch */
		return -EINVAL;
	}
	size_t total = w->len - b->start;
	if (total - RECORDS_BATCH_OVERHEAD_BYTES > INT32_MAX)
		return -EMSGSIZE;
	uint8_t *p = w->buf + b->start;
	tm_store_be64(p + RECORDS_OFF_BASE_OFFSET, (uint64_t)b->opts.base_offset);
	tm_store_be32(p + RECORDS_OFF_BATCH_LENGTH, (uint32_t)(total - RECORDS_BATCH_OVERHEAD_BYTES));
	tm_store_be32(p + RECORDS_OFF_LEADER_EPOCH, (uint32_t)b->opts.partition_leader_epoch);
	p[RECORDS_OFF_MAGIC] = RECORDS_MAGIC_V2;
	tm_store_be16(p + RECORDS_OFF_ATTRIBUTES, (uint16_t)b->opts.attributes);
	tm_store_be32(p + RECORDS_OFF_LAST_OFFSET_DELTA, (uint32_t)(b->count - 1));
	tm_store_be64(p + RECORDS_OFF_BASE_TIMESTAMP, (uint64_t)b->base_timestamp);
	tm_store_be64(p + RECORDS_OFF_MAX_TIMESTAMP, (uint64_t)b->max_timestamp);
	tm_store_be64(p + RECORDS_OFF_PRODUCER_ID, (uint64_t)b->opts.producer_id);
	tm_store_be16(p + RECORDS_OFF_PRODUCER_EPOCH, (uint16_t)b->opts.producer_epoch);
	tm_store_be32(p + RECORDS_OFF_BASE_SEQUENCE, (uint32_t)b->opts.base_sequence);
	tm_store_be32(p + RECORDS_OFF_RECORD_COUNT, (uint32_t)b->count);
	tm_store_be32(p + RECORDS_OFF_CRC,
		      crc32c(0, p + RECORDS_OFF_ATTRIBUTES, total - RECORDS_OFF_ATTRIBUTES));
	return 0;
}
