/*
 * log.h — one partition's log: Kafka's on-disk layout driven through
 * io_uring.  See docs/storage.md for the whole design.
 *
 * Directory <log.dir>/<topic>-<partition>/:
 *   <base>.log / .index / .timeindex   segments (storage/segment.h)
 *   <offset>.snapshot                  producer state (storage/producer_state.h)
 *   leader-epoch-checkpoint            epoch cache (storage/epoch_cache.h)
 *   partition.metadata                 "version: 0\ntopic_id: <base64 uuid>\n" (Kafka's)
 *   tidemark-checkpoint                recovery point + log start offset (below)
 *   .tidemark_cleanshutdown            present only after a clean close
 *
 * tidemark-checkpoint, OFFSET SIZE DESCRIPTION (big-endian)
 *      0    4 magic "TMCK"
 *      4    2 version, 1
 *      6    2 reserved, 0
 *      8    8 recovery point: every offset below it was fsynced
 *     16    8 log start offset
 *     24    4 CRC-32C of bytes 0..23
 *
 * Offsets: log_start <= flushed <= written <= end (LEO).  log_append
 * assigns offsets and file positions synchronously, so LEO moves at once;
 * "written" moves when the ring reports the bytes in the file (fetch may read
 * below it), "flushed" when an fsync covering them completed (the recovery
 * point).  Append callbacks run in offset order.
 *
 * Single-threaded: every call from the thread that owns the ring.  Do not
 * close or delete a log from inside one of its own callbacks.
 */
#ifndef TM_STORAGE_LOG_H
#define TM_STORAGE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/io.h"

struct log_config {
	int64_t segment_bytes;           /* log.segment.bytes, default 1 GiB */
	int64_t segment_ms;              /* log.roll.ms, default 7 days */
	int64_t retention_bytes;         /* -1 unlimited */
	int64_t retention_ms;            /* default 7 days, -1 unlimited */
	int64_t flush_interval_messages; /* INT64_MAX = never force; 1 = fsync every append */
	int64_t flush_interval_ms;       /* INT64_MAX = never */
	int32_t index_interval_bytes;    /* 4096 */
	int32_t segment_index_bytes;     /* 10 MiB: at most this many index bytes per segment */
	int64_t producer_id_expiration_ms; /* producer.id.expiration.ms, default 1 day; -1 never */
};

void log_config_defaults(struct log_config *c);

struct log;

/* Opens (creating, or recovering after a crash) the log in `dir`; cfg NULL
 * means defaults.  0 or -errno, with a tm_error line naming the file. */
int log_open(struct tm_io *io, const char *dir, const struct log_config *cfg, int64_t now_ms,
	     struct log **out);
/* Waits for in-flight I/O (callbacks run), flushes, writes indexes,
 * checkpoints and a producer snapshot, marks the shutdown clean, frees. */
void log_close(struct log *l);
/* Waits for in-flight I/O, frees, removes the directory.  0 or -errno. */
int log_delete(struct log *l);
void log_set_config(struct log *l, const struct log_config *cfg);
const char *log_dir(const struct log *l);

int64_t log_start_offset(const struct log *l);
int64_t log_end_offset(const struct log *l);
int64_t log_written_offset(const struct log *l);
int64_t log_flushed_offset(const struct log *l);
/* Largest batch max timestamp in the log and the last offset of its batch;
 * (-1, -1) when the log is empty. */
void log_max_timestamp(const struct log *l, int64_t *ts, int64_t *offset);
/* Bytes in all segments. */
int64_t log_size_bytes(const struct log *l);
int log_segment_count(const struct log *l);

struct log_append_result {
	int kerr;                   /* TM_ERR_NONE, OUT_OF_ORDER_SEQUENCE_NUMBER,
				       INVALID_PRODUCER_EPOCH, RECORD_LIST_TOO_LARGE */
	int64_t base_offset;        /* first offset assigned (original one for a duplicate) */
	int64_t last_offset;
	int64_t log_append_time_ms; /* -1 unless LogAppendTime */
	int64_t log_start_offset;
	bool duplicate;
};

/* Runs once the append is in the file (and fsynced when the flush policy
 * asked for it): err 0 or -errno (answer KAFKA_STORAGE_ERROR). */
typedef void (*log_append_cb)(void *arg, int err);

/* Appends one or more v2 batches (CRC-checked by the caller).  Copies the
 * bytes.  Assigns offsets from LEO, sets partitionLeaderEpoch, and with
 * log_append_time_ms >= 0 sets maxTimestamp and the LogAppendTime bit (CRC
 * recomputed).  Idempotent producers are checked first (producer_state.h).
 * Returns 0 with *res filled and cb scheduled — always, also for a duplicate
 * (original offsets, duplicate = true, nothing appended) and for a Kafka
 * error in res->kerr (nothing appended); the callback then runs after every
 * earlier append, with err 0.  Returns -errno with cb not called when the
 * log is offline (the errno that took it offline), -EBADMSG for bytes that
 * are not whole v2 batches, -EINVAL for bad arguments. */
int log_append(struct log *l, const uint8_t *batches, size_t len, int32_t leader_epoch,
	       int64_t log_append_time_ms, int64_t now_ms, struct log_append_result *res,
	       log_append_cb cb, void *arg);

/* log_append without the copy, for a caller whose bytes outlive the append
 * (a produce request's frame lives until its answer): the offsets, leader
 * epoch and LogAppendTime (with the CRC) are set in `batches` itself, and the
 * file is written from it, so the bytes must stay valid and untouched until
 * cb has run.  Results, errors and callback exactly as log_append; when it
 * returns -errno the bytes may already have been rewritten. */
int log_append_inplace(struct log *l, uint8_t *batches, size_t len, int32_t leader_epoch,
		       int64_t log_append_time_ms, int64_t now_ms, struct log_append_result *res,
		       log_append_cb cb, void *arg);

/* Follower/replica append: the batches keep the offsets and leader epochs
 * the leader gave them; the first must start at LEO and offsets must
 * increase.  Producer state and the epoch cache are updated, not checked.
 * 0 with cb scheduled, -EINVAL when offsets do not line up, -EBADMSG, or
 * the offline errno. */
int log_append_replica(struct log *l, const uint8_t *batches, size_t len, int64_t now_ms,
		       log_append_cb cb, void *arg);

/* log_append_replica without the copy: the file is written from `batches`
 * itself (never modified), so the bytes must stay valid until cb has run
 * (a follower keeps the fetch response's frame until then). */
int log_append_replica_inplace(struct log *l, const uint8_t *batches, size_t len, int64_t now_ms,
			       log_append_cb cb, void *arg);

/* Asks for an fsync of everything written so far; cb (may be NULL) runs
 * when it is done. */
int log_flush(struct log *l, log_append_cb cb, void *arg);

/* The callback owns `data` (free() it); NULL when len is 0.
 * err: 0; -ERANGE when offset < log start or offset > LEO (OFFSET_OUT_OF_RANGE);
 * -errno on an I/O error; -EBADMSG when the file holds a corrupt batch. */
typedef void (*log_read_cb)(void *arg, int err, uint8_t *data, size_t len);

/* Reads whole batches from the one containing `offset`, within one segment,
 * up to max_bytes, only batches whose last offset is below max_offset (the
 * high watermark) and below the written offset; the first batch is returned
 * whole even when larger than max_bytes (KIP-74).  Returns 0 and the callback
 * runs later (always, also for -ERANGE and empty answers), or -errno
 * (offline, -EINVAL, -ENOMEM) with the callback not called. */
int log_read(struct log *l, int64_t offset, int64_t max_offset, size_t max_bytes,
	     log_read_cb cb, void *arg);

/* Where log_read's bytes lie in a segment file, for a sender that moves
 * them to the socket itself (sendfile).  fd is the caller's: a dup of the
 * segment's descriptor, so the range stays readable after the segment is
 * deleted; close it (or hand it on).  len 0: nothing to read (fd -1). */
struct log_range {
	int fd;
	int64_t pos;
	size_t len;
	/* sending it will not wait for the disk: its middle and last pages
	 * were in the page cache (the first was just read for its header) */
	bool cached;
};

/* log_read's batches without reading them: whole batches from the one
 * holding `offset`, within one segment, below max_offset and the written
 * offset, the first whole even when larger than max_bytes (KIP-74), and then
 * up to max_bytes — ending at an index entry or a batch header read nearby,
 * so it may stop a few KiB short of what log_read returns.  Synchronous: the
 * offset index is in memory, and the few batch headers it needs are read
 * with pread.  0 (out->len 0 when there is nothing below max_offset),
 * -ERANGE (offset outside [log start, LEO]), -EBADMSG, or -errno (offline,
 * out of descriptors). */
int log_read_range(struct log *l, int64_t offset, int64_t max_offset, size_t max_bytes,
		   struct log_range *out);

/* ListOffsets by timestamp: the offset of the first record with timestamp
 * >= ts (for a compressed batch: its base offset) and that timestamp;
 * *offset_out = -1 when none.  Synchronous.  0 or -errno. */
int log_offset_for_timestamp(struct log *l, int64_t ts, int64_t *offset_out, int64_t *ts_out);
/* DeleteRecords: raises the log start offset to before_offset (persisted)
 * and deletes whole segments below it.  -ERANGE when beyond LEO. */
int log_delete_records(struct log *l, int64_t before_offset);
/* Replication: drops every batch with offsets >= offset (a batch containing
 * it goes whole, so LEO may end below offset), and the leader-epoch entries
 * starting at or after the new end (also when offset >= LEO: epochs without
 * records). */
int log_truncate_to(struct log *l, int64_t offset);
/* Drops everything; the log restarts empty at offset (log start = LEO = offset). */
int log_truncate_fully_and_start_at(struct log *l, int64_t offset);
/* Periodic work: time and size retention by whole segments (never the
 * active one), roll by segment_ms, flush by flush_interval_ms, producer id
 * expiration, recovery-point checkpoint.  Returns segments deleted or -errno. */
int log_enforce_retention(struct log *l, int64_t now_ms);

/* Leader epochs (KIP-101), persisted in leader-epoch-checkpoint. */
int log_assign_epoch(struct log *l, int32_t epoch, int64_t start_offset);
/* OffsetsForLeaderEpoch: (-1, -1) when unknown. */
int log_end_offset_for_epoch(const struct log *l, int32_t epoch, int32_t *epoch_out,
			     int64_t *end_offset_out);
int32_t log_latest_epoch(const struct log *l);

/* partition.metadata.  read: -ENOENT when none was written. */
int log_write_topic_id(struct log *l, const uint8_t uuid[16]);
int log_read_topic_id(struct log *l, uint8_t uuid[16]);

bool log_dir_offline(const struct log *l);

/* Kafka's Uuid text form: URL-safe base64 without padding, 22 characters. */
void log_uuid_to_base64(const uint8_t uuid[16], char out[23]);
int log_uuid_from_base64(const char *s, size_t len, uint8_t uuid[16]);

#endif
