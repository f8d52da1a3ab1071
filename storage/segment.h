/*
 * segment.h — one log segment: the .log file of raw record batches and its
 * two sparse indexes, named by base offset in Kafka's layout:
 *
 *   00000000000000000000.log        record batches v2, back to back, exactly
 *                                   as stored (see batch.h)
 *   00000000000000000000.index      offset index
 *   00000000000000000000.timeindex  time index
 *
 * .index, OFFSET SIZE DESCRIPTION per 8-byte entry (big-endian, Kafka's OffsetIndex)
 *      0    4 relative offset: the LAST offset of the indexed batch - base offset
 *      4    4 position of that batch in the .log file
 * .timeindex, per 12-byte entry (Kafka's TimeIndex)
 *      0    8 timestamp: the largest batch max timestamp seen so far in the segment
 *      8    4 relative offset of the batch that carried it (its last offset - base)
 *
 * Index rule (Kafka's LogSegment.append and .recover): a batch at position p
 * gets an offset-index entry when p - (position of the last indexed batch,
 * initially 0) > index.interval.bytes; a time-index entry is added at the same
 * moment when the max timestamp so far grew, and once more when the segment
 * stops being active, so the last time-index entry holds the segment's max
 * timestamp.  Entries are strictly increasing.
 *
 * The indexes live in memory (arrays) and are written to their files behind
 * the data: entries are appended with pwrite once the batches they point at
 * are written, and the files are cut to exactly their entries (Kafka trims
 * preallocated indexes on roll; Tidemark never preallocates).  An index file
 * that fails the load-time sanity check is rebuilt from the .log.
 * At most segment.index.bytes / 8 (resp. / 12) entries: a full index rolls
 * the segment.
 */
#ifndef TM_STORAGE_SEGMENT_H
#define TM_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/batch.h"

struct oidx_entry {
	int32_t rel;
	int32_t pos;
};

struct tidx_entry {
	int64_t ts;
	int32_t rel;
};

struct segment {
	int64_t base;
	int fd;             /* .log, read-write */
	int idx_fd;         /* .index while active, else -1 */
	int tidx_fd;        /* .timeindex while active, else -1 */
	int64_t size;       /* bytes assigned, including writes in flight */
	int64_t written;    /* bytes known to be in the file */
	int64_t next_offset;   /* offset after the last batch assigned here */
	int64_t max_ts;        /* -1 when no batch carries a timestamp */
	int64_t max_ts_offset; /* last offset of the batch with max_ts */
	int64_t first_ts;      /* first batch's max timestamp, -1 when none: time roll */
	int64_t created_ms;
	int64_t last_index_pos;
	struct oidx_entry *oidx;
	uint32_t noidx, oidx_cap, oidx_persisted;
	struct tidx_entry *tidx;
	uint32_t ntidx, tidx_cap, tidx_persisted;
	bool idx_truncated; /* the index files may hold entries past n: cut them */
	bool dirty;         /* written bytes not yet fsynced */
	int refs;           /* in-flight I/O holding the fd */
	bool dead;          /* removed from the log; freed when refs drop to 0 */
};

/* dir/<base, 20 digits><ext> into buf; -ENAMETOOLONG when it does not fit. */
int seg_path(char *buf, size_t cap, const char *dir, int64_t base, const char *ext);

/* Creates (truncating any leftovers) the three files of a new, empty segment. */
int seg_create(const char *dir, int64_t base, int64_t now_ms, struct segment **out);
/* Opens an existing segment and loads its indexes; *index_ok is false when
 * an index file was missing or failed the sanity check (rebuild it). */
int seg_open(const char *dir, int64_t base, int64_t now_ms, struct segment **out, bool *index_ok);
/* Drops a reference (or the owner's); closes and frees at zero when dead. */
void seg_put(struct segment *s);
/* Marks the segment dead and drops the owner's reference. */
void seg_release(struct segment *s);
/* Unlinks the segment's files. */
void seg_unlink_files(const char *dir, int64_t base);

/* Opens the index files for appending (active segment). */
int seg_open_index_fds(const char *dir, struct segment *s);
void seg_close_index_fds(struct segment *s);

/* Records a batch about to sit at position pos (updates indexes, max
 * timestamp, next offset).  -ENOMEM. */
int seg_index_batch(struct segment *s, const struct sbatch_hdr *h, int64_t pos,
		    int32_t index_interval_bytes);
/* The final time-index entry of a segment that stops being active. */
int seg_finish_time_index(struct segment *s);
/* Would `nbatches` more index entries overflow segment.index.bytes? */
bool seg_index_full(const struct segment *s, int32_t segment_index_bytes, int nbatches);
/* Writes the index entries not yet in the files (and cuts stale tails). */
int seg_persist_indexes(const char *dir, struct segment *s);
/* Forgets every index entry (before a rebuild) and the file contents. */
void seg_reset_indexes(struct segment *s);
/* Drops index entries for positions >= size or offsets >= end_offset. */
void seg_truncate_indexes(struct segment *s, int64_t size, int64_t end_offset);
/* Position of the last indexed batch whose last offset <= offset, else 0. */
int64_t seg_lookup(const struct segment *s, int64_t offset);
/* Offset to start a scan from for timestamp ts (time index), else base. */
int64_t seg_time_lookup(const struct segment *s, int64_t ts);

/* Buffered forward reader over a segment's batches (recovery, replay). */
struct seg_scan {
	int fd;
	int64_t pos; /* next batch position */
	int64_t end; /* file bytes to read up to */
	uint8_t *buf;
	size_t cap;
	size_t len;
	int64_t buf_off;
};
void seg_scan_init(struct seg_scan *sc, int fd, int64_t pos, int64_t end);
void seg_scan_deinit(struct seg_scan *sc);
/* Next batch at sc->pos: 1 with *h, *pos and (when want_body) *body pointing
 * at the whole batch, CRC checked; 0 at a clean end; -EBADMSG when the batch
 * at sc->pos is torn or corrupt (sc->pos stays on it); -errno on I/O error. */
int seg_scan_next(struct seg_scan *sc, bool want_body, struct sbatch_hdr *h, int64_t *pos,
		  const uint8_t **body);

/* Reads the batch header at pos (sync, through the sys table). */
int seg_read_header(const struct segment *s, int64_t pos, struct sbatch_hdr *h);

#endif
