/*
 * batch.c — reading and patching record batch v2 headers (see batch.h).
 */
#include "storage/batch.h"

#include <errno.h>

#include "common/bytes.h"
#include "common/crc32c.h"

int sbatch_parse(const uint8_t *p, size_t avail, struct sbatch_hdr *h)
{
	if (avail < SBATCH_HDR_SIZE)
		return -EBADMSG;
	h->base_offset = (int64_t)tm_load_be64(p);
	h->length = (int32_t)tm_load_be32(p + 8);
	h->leader_epoch = (int32_t)tm_load_be32(p + 12);
	h->magic = (int8_t)p[16];
	h->crc = tm_load_be32(p + 17);
	h->attributes = (int16_t)tm_load_be16(p + 21);
	h->last_offset_delta = (int32_t)tm_load_be32(p + 23);
	h->base_timestamp = (int64_t)tm_load_be64(p + 27);
	h->max_timestamp = (int64_t)tm_load_be64(p + 35);
	h->producer_id = (int64_t)tm_load_be64(p + 43);
	h->producer_epoch = (int16_t)tm_load_be16(p + 51);
	h->base_sequence = (int32_t)tm_load_be32(p + 53);
	h->record_count = (int32_t)tm_load_be32(p + 57);
	if (h->magic != SBATCH_MAGIC_V2)
		return -EBADMSG;
	if (h->length < SBATCH_HDR_SIZE - SBATCH_LOG_OVERHEAD || h->length > SBATCH_SIZE_MAX)
		return -EBADMSG;
	if (h->last_offset_delta < 0 || h->base_offset < 0)
		return -EBADMSG;
	return 0;
}

int32_t sbatch_last_sequence(const struct sbatch_hdr *h)
{
	if (h->base_sequence < 0)
		return -1;
	int64_t s = (int64_t)h->base_sequence + h->last_offset_delta;
	if (s > INT32_MAX)
		s -= (int64_t)INT32_MAX + 1;
	return (int32_t)s;
}

bool sbatch_crc_ok(const uint8_t *batch, size_t size)
{
	if (size < SBATCH_HDR_SIZE)
		return false;
	return crc32c(0, batch + 21, size - 21) == tm_load_be32(batch + 17);
}

void sbatch_set_base(uint8_t *batch, int64_t base_offset, int32_t leader_epoch)
{
	tm_store_be64(batch, (uint64_t)base_offset);
	tm_store_be32(batch + 12, (uint32_t)leader_epoch);
}

void sbatch_set_log_append_time(uint8_t *batch, size_t size, int64_t ts)
{
	uint16_t attr = tm_load_be16(batch + 21);
	tm_store_be16(batch + 21, (uint16_t)(attr | SBATCH_ATTR_LOG_APPEND_TIME));
	tm_store_be64(batch + 35, (uint64_t)ts);
	tm_store_be32(batch + 17, crc32c(0, batch + 21, size - 21));
}

int sbatch_count(const uint8_t *buf, size_t len)
{
	size_t pos = 0;
	int n = 0;
	while (pos < len) {
		struct sbatch_hdr h;
		if (sbatch_parse(buf + pos, len - pos, &h) < 0)
			return -EBADMSG;
		size_t size = sbatch_total_size(&h);
		if (size > len - pos)
			return -EBADMSG;
		pos += size;
		if (++n == INT32_MAX)
			return -EBADMSG;
	}
	return n > 0 ? n : -EBADMSG;
}

int sbatch_find_timestamp(const uint8_t *batch, size_t size, int64_t ts, int64_t *offset_out,
			  int64_t *ts_out)
{
	struct sbatch_hdr h;
	if (sbatch_parse(batch, size, &h) < 0 || sbatch_total_size(&h) > size)
		return -EBADMSG;
	if (h.max_timestamp < ts)
		return -ENOENT;
	bool lat = h.attributes & SBATCH_ATTR_LOG_APPEND_TIME;
	if ((h.attributes & SBATCH_ATTR_COMPRESSION_MASK) != 0 || lat) {
		/* compressed: the records are not decoded here; with
		 * LogAppendTime every record carries the batch's max timestamp */
		*offset_out = h.base_offset;
		*ts_out = h.max_timestamp;
		return 0;
	}
	struct tm_rd r;
	rd_init(&r, batch + SBATCH_HDR_SIZE, sbatch_total_size(&h) - SBATCH_HDR_SIZE);
	for (int32_t i = 0; i < h.record_count && !r.err; i++) {
		int32_t len = rd_varint(&r);
		if (r.err || len < 0 || (size_t)len > rd_remaining(&r))
			return -EBADMSG;
		size_t end = r.pos + (size_t)len;
		(void)rd_i8(&r); /* record attributes */
		int64_t ts_delta = rd_varlong(&r);
		int32_t off_delta = rd_varint(&r);
		if (r.err)
			return -EBADMSG;
		if (h.base_timestamp + ts_delta >= ts) {
			*offset_out = h.base_offset + off_delta;
			*ts_out = h.base_timestamp + ts_delta;
			return 0;
		}
		r.pos = end;
	}
	if (r.err)
		return -EBADMSG;
	/* max timestamp said yes but no record did: trust the header */
	*offset_out = sbatch_last_offset(&h);
	*ts_out = h.max_timestamp;
	return 0;
}
