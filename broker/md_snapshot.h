/*
 * md_snapshot.h — KRaft metadata snapshots (KIP-630): the metadata image
 * written as the Kafka metadata records that rebuild it, and read back.
 * Pure: no I/O, no clock (timestamps are parameters).  broker/quorum.c owns
 * the files; this module owns their bytes.
 *
 * A snapshot is Kafka's `<log.dir>/__cluster_metadata-0/
 * <20-digit end offset>-<10-digit epoch>.checkpoint`: the image after every
 * metadata log entry below `end offset` was applied, the entry at end
 * offset - 1 having leader epoch `epoch`.  Its bytes are v2 record batches
 * (protocol/records.h), offsets counting from 0, every batch's partition
 * leader epoch = the snapshot epoch, no compression:
 *
 *   BATCH                      RECORDS
 *   control (attributes 0x20)  1: key ControlRecordType {version 0, type 3},
 *                                 value SnapshotHeaderRecord v0
 *                                 {Version 0, LastContainedLogTimestamp}
 *   data, 0..n batches         metadata records, value = the metadata frame
 *                              | frame version uvarint (1) | type uvarint |
 *                              | record version uvarint | record |
 *   control (attributes 0x20)  1: key ControlRecordType {version 0, type 4},
 *                                 value SnapshotFooterRecord v0 {Version 0}
 *
 * Records, in this order (each refers only to what came before it):
 *   FeatureLevelRecord        metadata.version, when the image has one
 *   RegisterBrokerRecord v1   per broker: id, epoch, endpoints, rack, and its
 *                             fenced / in-controlled-shutdown state in the
 *                             record's own fields
 *   ConfigRecord              per broker-level (cluster default) config
 *   per topic: TopicRecord, its ConfigRecords, PartitionRecord v0 per
 *                             partition (replicas, isr, removing/adding
 *                             replicas, leader, leader epoch, partition epoch)
 *   ProducerIdsRecord         next producer id, when any was handed out
 *
 * Invariant (tests/unit/test_md_snapshot.c): for every image I,
 * md_snapshot_read(md_snapshot_write(I)) builds an image equal to I in every
 * field Metadata, the controller and the producer-id allocator read.
 * Reading checks every batch's CRC, the header first, the footer last and
 * nothing after it; a snapshot that fails is -EBADMSG with a reason, never
 * half-applied to the caller's image (the caller loads into a fresh one).
 */
#ifndef TM_BROKER_MD_SNAPSHOT_H
#define TM_BROKER_MD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "broker/metadata.h"
#include "common/bytes.h"

#define MD_SNAPSHOT_SUFFIX ".checkpoint"
#define MD_SNAPSHOT_NAME_MAX 48           /* 20 + 1 + 10 + 11 + NUL, rounded */
#define MD_SNAPSHOT_BATCH_BYTES (1u << 20) /* a data batch closes past this */
#define MD_SNAPSHOT_BATCH_RECORDS 4096     /* ... or at this many records */
#define MD_SNAPSHOT_FRAME_VERSION 1
/* Kafka's ControlRecordType values used here. */
#define MD_CONTROL_SNAPSHOT_HEADER 3
#define MD_CONTROL_SNAPSHOT_FOOTER 4

struct md_snapshot_id {
	int64_t end_offset;  /* exclusive: the log continues here */
	int32_t epoch;       /* leader epoch of the entry at end_offset - 1 */
};

/* "<%020 end offset>-<%010 epoch>.checkpoint" into out (MD_SNAPSHOT_NAME_MAX). */
void md_snapshot_name(char *out, size_t out_len, struct md_snapshot_id id);
/* 0 and *id when `name` is exactly a snapshot file name (not ".part"),
 * -EINVAL otherwise. */
int md_snapshot_parse_name(const char *name, struct md_snapshot_id *id);

/*
 * md_snapshot_write — appends the snapshot of img to out: header, the
 * records above in batches of at most MD_SNAPSHOT_BATCH_RECORDS records,
 * footer.  `last_log_timestamp_ms` is the append time of the last log entry
 * the image contains (the header's LastContainedLogTimestamp); `now_ms`
 * stamps the records.  0, -EINVAL for an image the records cannot carry, or
 * -ENOMEM.
 */
int md_snapshot_write(const struct md_image *img, int32_t epoch, int64_t last_log_timestamp_ms, int64_t now_ms,
		      struct tm_wbuf *out);

/*
 * md_snapshot_read — checks the snapshot bytes and applies their records to
 * img (a freshly initialised image).  0; -EBADMSG with a reason in `why`
 * (bad CRC, torn batch, no header or footer, bytes after the footer, a
 * record that does not decode or contradicts the image); -ENOTSUP for a
 * compressed batch; -ENOMEM.  On error img holds a partial picture: discard
 * it.  *last_log_timestamp_ms (may be NULL) gets the header's timestamp.
 */
int md_snapshot_read(const uint8_t *buf, size_t len, struct md_image *img, int64_t *last_log_timestamp_ms,
		     char *why, size_t why_len);

/* Decodes one framed metadata record value and applies it to img (what the
 * metadata log and the snapshot both carry).  A record type this version
 * does not know is skipped.  0, -EBADMSG, -EINVAL (contradicts the image),
 * -ENOMEM. */
int md_snapshot_apply_value(struct md_image *img, const uint8_t *p, size_t len);

#endif
