/*
 * records.h — Kafka record batches, magic v2: parse, validate, patch in
 * place, iterate, build.  Pure: no I/O.
 *
 * A produce request's `records` field, a fetch response's and a log segment
 * are all a plain concatenation of batches.  A batch (all big-endian):
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    8 base_offset              set by the broker on append
 *        8    4 batch_length             bytes after this field (total = 12 + batch_length)
 *       12    4 partition_leader_epoch   set by the broker on append (not under the CRC)
 *       16    1 magic                    2 (0 and 1 are the old message sets; same offset)
 *       17    4 crc                      CRC-32C of bytes 21 .. end of batch
 *       21    2 attributes               bits 0-2 compression (0 none, 1 gzip, 2 snappy,
 *                                        3 lz4, 4 zstd), bit 3 timestamp type (1 =
 *                                        LogAppendTime), bit 4 transactional, bit 5
 *                                        control, bit 6 has delete horizon
 *       23    4 last_offset_delta        record_count - 1 for a batch as produced
 *       27    8 base_timestamp           first record's timestamp (ms)
 *       35    8 max_timestamp
 *       43    8 producer_id              -1: not idempotent
 *       51    2 producer_epoch
 *       53    4 base_sequence
 *       57    4 record_count
 *       61    - records (compressed as a whole when bits 0-2 are set)
 *
 * A record (varints are zig-zag, as in protobuf):
 *
 *   varint length (of the rest of the record), int8 attributes (unused, 0),
 *   varlong timestamp_delta, varint offset_delta, varint key_length (-1 null),
 *   key, varint value_length (-1 null), value, varint header_count, then per
 *   header: varint key_length, key (string), varint value_length (-1 null), value.
 *
 * Invariants kept here: nothing is read outside [buf, buf + len); every
 * length is checked before use; functions return 0 or a negative errno and
 * never assert on input.
 */
#ifndef TM_RECORDS_H
#define TM_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "protocol/kafka_types.h"

#define RECORDS_BATCH_HEADER_BYTES 61
#define RECORDS_BATCH_OVERHEAD_BYTES 12 /* base_offset + batch_length */
#define RECORDS_MAGIC_V2 2

#define RECORDS_OFF_BASE_OFFSET 0
#define RECORDS_OFF_BATCH_LENGTH 8
#define RECORDS_OFF_LEADER_EPOCH 12
#define RECORDS_OFF_MAGIC 16
#define RECORDS_OFF_CRC 17
#define RECORDS_OFF_ATTRIBUTES 21
#define RECORDS_OFF_LAST_OFFSET_DELTA 23
#define RECORDS_OFF_BASE_TIMESTAMP 27
#define RECORDS_OFF_MAX_TIMESTAMP 35
#define RECORDS_OFF_PRODUCER_ID 43
#define RECORDS_OFF_PRODUCER_EPOCH 51
#define RECORDS_OFF_BASE_SEQUENCE 53
#define RECORDS_OFF_RECORD_COUNT 57

#define RECORDS_ATTR_COMPRESSION_MASK 0x07
#define RECORDS_ATTR_LOG_APPEND_TIME 0x08
#define RECORDS_ATTR_TRANSACTIONAL 0x10
#define RECORDS_ATTR_CONTROL 0x20
#define RECORDS_ATTR_DELETE_HORIZON 0x40

enum records_compression {
	RECORDS_COMPRESSION_NONE = 0,
	RECORDS_COMPRESSION_GZIP = 1,
	RECORDS_COMPRESSION_SNAPPY = 2,
	RECORDS_COMPRESSION_LZ4 = 3,
	RECORDS_COMPRESSION_ZSTD = 4,
};

struct tm_batch_hdr {
	int64_t base_offset;
	int32_t batch_length;
	int32_t partition_leader_epoch;
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

/* Reads the 61-byte header at p.  0, or -EBADMSG when len < 61.  Does not
 * check the magic, the length or the CRC (records_validate does). */
int records_batch_header_parse(const uint8_t *p, size_t len, struct tm_batch_hdr *h);

/* Total bytes of the batch at p (12 + batch_length), or -EBADMSG when
 * fewer than 12 bytes or a negative length. */
int64_t records_batch_size(const uint8_t *p, size_t len);

struct records_producer {
	int64_t producer_id;
	int16_t producer_epoch;
	int32_t base_sequence;
	int32_t last_offset_delta;
};

struct records_summary {
	int32_t batch_count;
	int64_t record_count;   /* sum of record_count */
	int64_t offset_count;   /* sum of last_offset_delta + 1: offsets the blob takes */
	int64_t max_timestamp;  /* largest max_timestamp; -1 when no batch */
	int8_t compression;     /* codec of the first batch (enum records_compression) */
	bool transactional;     /* some batch has the transactional bit */
	bool control;           /* some batch is a control batch */
	struct records_producer first, last; /* of the first and the last batch */
};

/*
 * Walks every batch of a records blob (a produce request's `records`).
 * Checks: each batch is whole (no trailing partial batch), batch_length >=
 * 49, magic == 2, CRC-32C, record_count >= 0, last_offset_delta ==
 * record_count - 1 when record_count > 0, compression codec 0-4, and for
 * uncompressed batches that the records parse and their number matches
 * record_count.  max_batch_bytes > 0 bounds each batch's total size.
 * Returns
 *   0          valid (sum may describe zero batches when len == 0)
 *   -EBADMSG   corrupt: answer CORRUPT_MESSAGE
 *   -EMSGSIZE  a batch larger than max_batch_bytes: MESSAGE_TOO_LARGE
 *   -EPROTO    magic 0 or 1 (old message format): UNSUPPORTED_FOR_MESSAGE_FORMAT
 * sum may be NULL.
 */
int records_validate(const uint8_t *buf, size_t len, int32_t max_batch_bytes,
		     struct records_summary *sum);

/*
 * In-place setters on one batch starting at batch (len bytes available).
 * base_offset and partition_leader_epoch precede the CRC, so they need no
 * CRC update.  records_set_log_append_time() sets the timestamp-type bit
 * and max_timestamp, then recomputes the CRC.  0 or -EBADMSG when the
 * batch does not fit in len.
 */
int records_set_base_offset(uint8_t *batch, size_t len, int64_t base_offset);
int records_set_partition_leader_epoch(uint8_t *batch, size_t len, int32_t epoch);
int records_set_log_append_time(uint8_t *batch, size_t len, int64_t timestamp_ms);

/*
 * For every batch of a (validated) blob: base_offset = next, next +=
 * last_offset_delta + 1, partition_leader_epoch = epoch.  *next_offset
 * returns the offset after the last batch.  0 or -EBADMSG.
 */
int records_assign_offsets(uint8_t *buf, size_t len, int64_t base_offset, int32_t epoch,
			   int64_t *next_offset);

/* ---- iterating records of uncompressed batches ---- */

struct records_record {
	int64_t offset;      /* base_offset + offset_delta */
	int64_t timestamp;   /* base_timestamp + timestamp_delta (CreateTime) */
	struct kbytes key;   /* len -1: null */
	struct kbytes value; /* len -1: null */
	int32_t header_count;
	struct kbytes headers; /* the raw header bytes; walk with records_header_next */
};

struct records_iter {
	const uint8_t *buf;
	size_t len;
	size_t next_batch;     /* offset of the batch after the current one */
	struct tm_batch_hdr hdr; /* header of the batch of the last record returned */
	struct tm_rd rec;      /* cursor over the current batch's records */
	int32_t records_left;
};

void records_iter_init(struct records_iter *it, const uint8_t *buf, size_t len);
/*
 * 1: *out holds the next record (it->hdr its batch); 0: no more records;
 * -EBADMSG: corrupt (bad length, magic != 2, record overruns its batch);
 * -ENOTSUP: a compressed batch (Tidemark does not decompress here).
 * A trailing partial batch (as in a fetch response) ends the iteration.
 * CRCs are not checked here: call records_validate first on untrusted data.
 */
int records_iter_next(struct records_iter *it, struct records_record *out);

/* Reads the next header from a record's headers; hr starts over
 * rec->headers.  1: header read; 0: none left; -EBADMSG. */
int records_header_next(struct tm_rd *hr, struct kstr *key, struct kbytes *value);

/* ---- building a batch ---- */

struct records_header {
	struct kstr key;
	struct kbytes value; /* len -1: null */
};

struct records_batch_opts {
	int64_t base_offset;
	int32_t partition_leader_epoch;
	int16_t attributes;     /* transactional / control / timestamp type; compression must be 0 */
	int64_t producer_id;    /* -1 when not idempotent */
	int16_t producer_epoch; /* -1 when not idempotent */
	int32_t base_sequence;  /* -1 when not idempotent */
};

/* Defaults: offset 0, epoch -1, attributes 0, producer id/epoch/sequence -1. */
void records_batch_opts_init(struct records_batch_opts *o);

struct records_builder {
	struct tm_wbuf *w;
	size_t start;          /* where the batch starts in w */
	struct records_batch_opts opts;
	int64_t base_timestamp;
	int64_t max_timestamp;
	int32_t count;
};

/* Starts a batch at the end of w (w keeps ownership of its bytes). */
void records_builder_init(struct records_builder *b, struct tm_wbuf *w,
			  const struct records_batch_opts *opts);
/* Appends a record; headers may be NULL when nheaders == 0.  0, -EINVAL
 * (negative nheaders), or -ENOMEM (w->err). */
int records_builder_add(struct records_builder *b, int64_t timestamp_ms, struct kbytes key,
			struct kbytes value, const struct records_header *headers, int32_t nheaders);
/* Fills in the header (length, counts, timestamps, CRC).  0 or -ENOMEM. */
int records_builder_finish(struct records_builder *b);

#endif
