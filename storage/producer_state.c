/*
 * producer_state.c — see producer_state.h.  The table is open addressing
 * with linear probing on the producer id, power-of-two capacity, at most
 * half full; removal shifts later entries back (no tombstones).
 */
#include "storage/producer_state.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/kerr.h"
#include "storage/sys.h"

#define PSTATE_MAGIC "TMPS"
#define PSTATE_VERSION 1
#define PSTATE_HDR 22
#define PSTATE_ENTRY 180
#define PSTATE_PRODUCERS_MAX (1u << 24)

struct pstate {
	struct pstate_entry *slots;
	bool *used;
	size_t cap; /* power of two */
	size_t count;
};

static size_t slot_of(const struct pstate *ps, int64_t pid)
{
	uint64_t h = (uint64_t)pid * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 32) & (ps->cap - 1);
}

static int grow(struct pstate *ps, size_t cap)
{
	struct pstate_entry *slots = calloc(cap, sizeof(*slots));
	bool *used = calloc(cap, sizeof(*used));
	if (!slots || !used) {
		free(slots);
		free(used);
		return -ENOMEM;
	}
	struct pstate old = *ps;
	ps->slots = slots;
	ps->used = used;
	ps->cap = cap;
	for (size_t i = 0; i < old.cap; i++) {
		if (!old.used[i])
			continue;
		size_t j = slot_of(ps, old.slots[i].producer_id);
		while (ps->used[j])
			j = (j + 1) & (cap - 1);
		ps->used[j] = true;
		ps->slots[j] = old.slots[i];
	}
	free(old.slots);
	free(old.used);
	return 0;
}

int pstate_new(struct pstate **out)
{
	struct pstate *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	if (grow(ps, 16) < 0) {
		free(ps);
		return -ENOMEM;
	}
	*out = ps;
	return 0;
}

void pstate_free(struct pstate *ps)
{
	if (!ps)
		return;
	free(ps->slots);
	free(ps->used);
	free(ps);
}

void pstate_clear(struct pstate *ps)
{
	memset(ps->used, 0, ps->cap * sizeof(*ps->used));
	ps->count = 0;
}

size_t pstate_count(const struct pstate *ps)
{
	return ps->count;
}

static struct pstate_entry *find(const struct pstate *ps, int64_t pid)
{
	size_t i = slot_of(ps, pid);
	while (ps->used[i]) {
		if (ps->slots[i].producer_id == pid)
			return &ps->slots[i];
		i = (i + 1) & (ps->cap - 1);
	}
	return NULL;
}

const struct pstate_entry *pstate_get(const struct pstate *ps, int64_t producer_id)
{
	return find(ps, producer_id);
}

static struct pstate_entry *insert(struct pstate *ps, int64_t pid)
{
	struct pstate_entry *e = find(ps, pid);
	if (e)
		return e;
	if (ps->count >= PSTATE_PRODUCERS_MAX)
		return NULL;
	if ((ps->count + 1) * 2 > ps->cap && grow(ps, ps->cap * 2) < 0)
		return NULL;
	size_t i = slot_of(ps, pid);
	while (ps->used[i])
		i = (i + 1) & (ps->cap - 1);
	ps->used[i] = true;
	ps->count++;
	e = &ps->slots[i];
	memset(e, 0, sizeof(*e));
	e->producer_id = pid;
	e->epoch = -1;
	e->last_timestamp = -1;
	return e;
}

static void remove_slot(struct pstate *ps, size_t i)
{
	ps->used[i] = false;
	ps->count--;
	size_t j = i;
	for (;;) {
		j = (j + 1) & (ps->cap - 1);
		if (!ps->used[j])
			return;
		size_t home = slot_of(ps, ps->slots[j].producer_id);
		/* move j back into the hole at i unless its home lies in (i, j] */
		bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		ps->slots[i] = ps->slots[j];
		ps->used[i] = true;
		ps->used[j] = false;
		i = j;
	}
}

static bool in_sequence(int32_t last_seq, int32_t next_seq)
{
	return (int64_t)next_seq == (int64_t)last_seq + 1 ||
	       (next_seq == 0 && last_seq == INT32_MAX);
}

int pstate_check(const struct pstate *ps, const struct sbatch_hdr *h,
		 const struct pstate_batch **dup)
{
	*dup = NULL;
	if (h->producer_id < 0 || h->base_sequence < 0 || (h->attributes & SBATCH_ATTR_CONTROL))
		return TM_ERR_NONE;
	const struct pstate_entry *e = find(ps, h->producer_id);
	if (!e || e->epoch < 0)
		return TM_ERR_NONE;
	if (h->producer_epoch < e->epoch)
		return TM_ERR_INVALID_PRODUCER_EPOCH;
	if (h->producer_epoch > e->epoch)
		return h->base_sequence == 0 ? TM_ERR_NONE : TM_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
	int32_t last_seq = sbatch_last_sequence(h);
	for (int i = 0; i < e->nbatches; i++) {
		const struct pstate_batch *b = &e->batches[i];
		if (b->first_seq == h->base_sequence && b->last_seq == last_seq) {
			*dup = b;
			return TM_ERR_NONE;
		}
	}
	int32_t cur = e->nbatches ? e->batches[e->nbatches - 1].last_seq : -1;
	return in_sequence(cur, h->base_sequence) ? TM_ERR_NONE
						  : TM_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
}

int pstate_update(struct pstate *ps, const struct sbatch_hdr *h)
{
	if (h->producer_id < 0)
		return 0;
	struct pstate_entry *e = insert(ps, h->producer_id);
	if (!e)
		return -ENOMEM;
	if (h->producer_epoch != e->epoch) {
		e->epoch = h->producer_epoch;
		e->nbatches = 0;
	}
	e->last_timestamp = h->max_timestamp;
	if (h->base_sequence < 0 || (h->attributes & SBATCH_ATTR_CONTROL))
		return 0;
	if (e->nbatches == PSTATE_BATCHES) {
		memmove(&e->batches[0], &e->batches[1], sizeof(e->batches[0]) * (PSTATE_BATCHES - 1));
		e->nbatches--;
	}
	e->batches[e->nbatches++] = (struct pstate_batch){
		.first_seq = h->base_sequence,
		.last_seq = sbatch_last_sequence(h),
		.first_offset = h->base_offset,
		.last_offset = sbatch_last_offset(h),
		.timestamp = h->max_timestamp,
	};
	return 0;
}

int pstate_restore(struct pstate *ps, int64_t producer_id, const struct pstate_entry *e)
{
	if (!e) {
		struct pstate_entry *cur = find(ps, producer_id);
		if (cur)
			remove_slot(ps, (size_t)(cur - ps->slots));
		return 0;
	}
	struct pstate_entry *dst = insert(ps, producer_id);
	if (!dst)
		return -ENOMEM;
	*dst = *e;
	return 0;
}

static int64_t entry_last_offset(const struct pstate_entry *e)
{
	return e->nbatches ? e->batches[e->nbatches - 1].last_offset : -1;
}

void pstate_truncate_head(struct pstate *ps, int64_t log_start_offset)
{
	for (size_t i = 0; i < ps->cap;) {
		if (ps->used[i] && entry_last_offset(&ps->slots[i]) < log_start_offset) {
			remove_slot(ps, i); /* a later entry may have moved into i */
			continue;
		}
		i++;
	}
}

void pstate_expire(struct pstate *ps, int64_t now_ms, int64_t expiration_ms)
{
	if (expiration_ms < 0)
		return;
	for (size_t i = 0; i < ps->cap;) {
		if (ps->used[i] && ps->slots[i].last_timestamp < now_ms - expiration_ms) {
			remove_slot(ps, i);
			continue;
		}
		i++;
	}
}

int pstate_snapshot_write(const struct pstate *ps, const char *dir, int64_t offset, bool durable)
{
	size_t len = PSTATE_HDR + ps->count * PSTATE_ENTRY;
	uint8_t *buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, PSTATE_MAGIC, 4);
	tm_store_be16(buf + 4, PSTATE_VERSION);
	tm_store_be64(buf + 10, (uint64_t)offset);
	tm_store_be32(buf + 18, (uint32_t)ps->count);
	uint8_t *p = buf + PSTATE_HDR;
	for (size_t i = 0; i < ps->cap; i++) {
		if (!ps->used[i])
			continue;
		const struct pstate_entry *e = &ps->slots[i];
		tm_store_be64(p, (uint64_t)e->producer_id);
		tm_store_be16(p + 8, (uint16_t)e->epoch);
		tm_store_be64(p + 10, (uint64_t)e->last_timestamp);
		p[18] = e->nbatches;
		for (int b = 0; b < e->nbatches; b++) {
			uint8_t *q = p + 20 + b * 32;
			tm_store_be32(q, (uint32_t)e->batches[b].first_seq);
			tm_store_be32(q + 4, (uint32_t)e->batches[b].last_seq);
			tm_store_be64(q + 8, (uint64_t)e->batches[b].first_offset);
			tm_store_be64(q + 16, (uint64_t)e->batches[b].last_offset);
			tm_store_be64(q + 24, (uint64_t)e->batches[b].timestamp);
		}
		p += PSTATE_ENTRY;
	}
	tm_store_be32(buf + 6, crc32c(0, buf + 10, len - 10));
	char name[64];
	snprintf(name, sizeof(name), "%020lld.snapshot", (long long)offset);
	int err = sys_write_file_atomic(dir, name, buf, len, durable);
	free(buf);
	return err;
}

int pstate_snapshot_read(struct pstate *ps, const char *path, int64_t offset)
{
	uint8_t *buf;
	size_t len;
	int err = sys_read_file(path, PSTATE_HDR + (size_t)PSTATE_PRODUCERS_MAX * PSTATE_ENTRY, &buf,
				&len);
	if (err)
		return err;
	err = -EBADMSG;
	if (len < PSTATE_HDR || memcmp(buf, PSTATE_MAGIC, 4) != 0 ||
	    tm_load_be16(buf + 4) != PSTATE_VERSION ||
	    crc32c(0, buf + 10, len - 10) != tm_load_be32(buf + 6) ||
	    (int64_t)tm_load_be64(buf + 10) != offset)
		goto out;
	uint32_t n = tm_load_be32(buf + 18);
	if (n > PSTATE_PRODUCERS_MAX || len != PSTATE_HDR + (size_t)n * PSTATE_ENTRY)
		goto out;
	pstate_clear(ps);
	const uint8_t *p = buf + PSTATE_HDR;
	for (uint32_t i = 0; i < n; i++, p += PSTATE_ENTRY) {
		struct pstate_entry e = { 0 };
		e.producer_id = (int64_t)tm_load_be64(p);
		e.epoch = (int16_t)tm_load_be16(p + 8);
		e.last_timestamp = (int64_t)tm_load_be64(p + 10);
		e.nbatches = p[18];
		if (e.nbatches > PSTATE_BATCHES || e.producer_id < 0) {
			pstate_clear(ps);
			goto out;
		}
		for (int b = 0; b < e.nbatches; b++) {
			const uint8_t *q = p + 20 + b * 32;
			e.batches[b].first_seq = (int32_t)tm_load_be32(q);
			e.batches[b].last_seq = (int32_t)tm_load_be32(q + 4);
			e.batches[b].first_offset = (int64_t)tm_load_be64(q + 8);
			e.batches[b].last_offset = (int64_t)tm_load_be64(q + 16);
			e.batches[b].timestamp = (int64_t)tm_load_be64(q + 24);
		}
		if (pstate_restore(ps, e.producer_id, &e) < 0) {
			pstate_clear(ps);
			err = -ENOMEM;
			goto out;
		}
	}
	err = 0;
out:
	free(buf);
	return err;
}
