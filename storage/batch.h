/*
 * batch.h — the 61-byte header of a Kafka record batch (magic v2), as the
 * storage engine reads and rewrites it.  Batches are stored exactly as they
 * travel on the wire; storage only fills in the base offset, the partition
 * leader epoch and, for LogAppendTime, the max timestamp.
 *
 * OFFSET SIZE DESCRIPTION (big-endian)
 *      0    8 baseOffset            first offset of the batch
 *      8    4 batchLength           bytes after this field (total = batchLength + 12)
 *     12    4 partitionLeaderEpoch
 *     16    1 magic                 2
 *     17    4 crc                   CRC-32C of bytes 21..end (unsigned)
 *     21    2 attributes            bits 0-2 compression, 3 timestamp type
 *                                   (1 = LogAppendTime), 4 transactional, 5 control
 *     23    4 lastOffsetDelta
 *     27    8 baseTimestamp
 *     35    8 maxTimestamp
 *     43    8 producerId            -1 when not idempotent
 *     51    2 producerEpoch
 *     53    4 baseSequence
 *     57    4 recordCount
 *     61    . records
 *
 * baseOffset and partitionLeaderEpoch lie outside the CRC, so assigning
 * offsets never invalidates it; LogAppendTime changes covered bytes and the
 * CRC is recomputed.
 */
#ifndef TM_STORAGE_BATCH_H
#define TM_STORAGE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBATCH_HDR_SIZE 61
#define SBATCH_LOG_OVERHEAD 12 /* baseOffset + batchLength */
#define SBATCH_MAGIC_V2 2
#define SBATCH_ATTR_COMPRESSION_MASK 0x07
#define SBATCH_ATTR_LOG_APPEND_TIME 0x08
#define SBATCH_ATTR_TRANSACTIONAL 0x10
#define SBATCH_ATTR_CONTROL 0x20
/* The largest batch storage accepts or believes when reading the disk. */
#define SBATCH_SIZE_MAX (256 * 1024 * 1024)

struct sbatch_hdr {
	int64_t base_offset;
	int32_t length; /* batchLength field */
	int32_t leader_epoch;
	int8_t magic;
	uint32_t crc;
	int16_t attributes;
	int32_t last_offset_delta;
	int64_t base_timestamp;
	int64_t max_timestamp;
	int64_t producer_id;
	int16_t producer_epoch;
	int32_t base_sequence;
	int32_t record_count;
};

/* Parses the header at p (avail bytes there).  0, or -EBADMSG when avail is
 * under 61 bytes, magic is not 2, the length is below the header size or
 * above SBATCH_SIZE_MAX, or lastOffsetDelta is negative. */
int sbatch_parse(const uint8_t *p, size_t avail, struct sbatch_hdr *h);

static inline size_t sbatch_total_size(const struct sbatch_hdr *h)
{
	return (size_t)h->length + SBATCH_LOG_OVERHEAD;
}

static inline int64_t sbatch_last_offset(const struct sbatch_hdr *h)
{
	return h->base_offset + h->last_offset_delta;
}

/* Sequence of the last record, wrapping at INT32_MAX like Kafka. */
int32_t sbatch_last_sequence(const struct sbatch_hdr *h);

/* True when the CRC-32C over bytes 21..size matches the header's. */
bool sbatch_crc_ok(const uint8_t *batch, size_t size);

/* Rewrites baseOffset and partitionLeaderEpoch in place. */
void sbatch_set_base(uint8_t *batch, int64_t base_offset, int32_t leader_epoch);

/* Sets maxTimestamp = ts, the LogAppendTime attribute bit, and the CRC. */
void sbatch_set_log_append_time(uint8_t *batch, size_t size, int64_t ts);

/* Checks that buf holds one or more whole v2 batches back to back; returns
 * the number of batches (> 0) or -EBADMSG. */
int sbatch_count(const uint8_t *buf, size_t len);

/* For an uncompressed batch, the offset of the first record whose timestamp
 * is >= ts (and that timestamp); for a compressed one, the base offset and
 * the batch's max timestamp.  -EBADMSG on malformed records, -ENOENT when no
 * record qualifies. */
int sbatch_find_timestamp(const uint8_t *batch, size_t size, int64_t ts, int64_t *offset_out,
			  int64_t *ts_out);

#endif
