/*
 * producer_state.h — idempotent-producer state of one partition, the rules
 * of Kafka's ProducerStateManager / ProducerAppendInfo for non-transactional
 * producers.
 *
 * Per producer id: its current epoch and the metadata of its last five
 * batches (first/last sequence, first/last offset, max timestamp), oldest
 * first.  A batch from producer P with epoch E and sequences [s, t] is
 *   - INVALID_PRODUCER_EPOCH      when E < P's epoch;
 *   - OUT_OF_ORDER_SEQUENCE_NUMBER when E > P's epoch and s != 0 (a new epoch
 *                                  starts at 0), or E == P's epoch and s is
 *                                  not last sequence + 1 (INT32_MAX wraps to 0);
 *   - a duplicate                 when E == P's epoch and [s, t] equals one of
 *                                  the last five batches: the append answers
 *                                  with that batch's original offsets;
 *   - accepted with any s         when P is unknown (Kafka 2.5+: the log start
 *                                  may have moved past P's history).
 * Control batches and batches without a sequence (baseSequence -1) are not
 * checked.
 *
 * Snapshot file "<offset, 20 digits>.snapshot": the state after every batch
 * below <offset> was applied.  Written at clean close and at segment roll
 * (write to .tmp, rename); a torn or corrupt one fails its CRC and is
 * ignored (the state is then rebuilt by replaying the log).
 *
 * OFFSET SIZE DESCRIPTION (big-endian)
 *      0    4 magic "TMPS"
 *      4    2 version, 1
 *      6    4 CRC-32C of bytes 10..end
 *     10    8 snapshot offset (must match the file name)
 *     18    4 producer count N
 *     22  N*E producer entries, E = 20 + 5*32 = 180 bytes each:
 *               0    8 producer id
 *               8    2 producer epoch
 *              10    8 last timestamp (max timestamp of its last batch)
 *              18    1 batch count k, 0..5
 *              19    1 reserved, 0
 *              20  5*32 batch slots, the first k used (oldest first):
 *                      0 4 first sequence
 *                      4 4 last sequence
 *                      8 8 first offset
 *                     16 8 last offset
 *                     24 8 max timestamp
 */
#ifndef TM_STORAGE_PRODUCER_STATE_H
#define TM_STORAGE_PRODUCER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/batch.h"

#define PSTATE_BATCHES 5

struct pstate_batch {
	int32_t first_seq;
	int32_t last_seq;
	int64_t first_offset;
	int64_t last_offset;
	int64_t timestamp;
};

struct pstate_entry {
	int64_t producer_id;
	int16_t epoch;
	uint8_t nbatches;
	int64_t last_timestamp;
	struct pstate_batch batches[PSTATE_BATCHES]; /* oldest first */
};

struct pstate;

int pstate_new(struct pstate **out);
void pstate_free(struct pstate *ps);
void pstate_clear(struct pstate *ps);
size_t pstate_count(const struct pstate *ps);
/* The entry of a producer, or NULL. */
const struct pstate_entry *pstate_get(const struct pstate *ps, int64_t producer_id);

/* Checks one batch (header with producerId >= 0) against the state.
 * Returns a Kafka error code (TM_ERR_NONE when acceptable); *dup is set to
 * the original batch when it is a duplicate (then TM_ERR_NONE). */
int pstate_check(const struct pstate *ps, const struct sbatch_hdr *h,
		 const struct pstate_batch **dup);
/* Records a batch whose offsets are assigned.  0 or -ENOMEM. */
int pstate_update(struct pstate *ps, const struct sbatch_hdr *h);
/* Replaces (or removes, when e is NULL) a producer's entry: undo support. */
int pstate_restore(struct pstate *ps, int64_t producer_id, const struct pstate_entry *e);
/* Forgets producers whose last batch lies below log_start_offset. */
void pstate_truncate_head(struct pstate *ps, int64_t log_start_offset);
/* Forgets producers whose last timestamp is older than now_ms - expiration_ms. */
void pstate_expire(struct pstate *ps, int64_t now_ms, int64_t expiration_ms);

/* Writes dir/<offset>.snapshot; 0 or -errno. */
int pstate_snapshot_write(const struct pstate *ps, const char *dir, int64_t offset, bool durable);
/* Replaces the state with the snapshot at path; 0, -errno, or -EBADMSG when
 * the file is torn or corrupt. */
int pstate_snapshot_read(struct pstate *ps, const char *path, int64_t offset);

#endif
