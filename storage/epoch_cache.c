/*
 * epoch_cache.c — see epoch_cache.h.  The rules follow Kafka's
 * LeaderEpochFileCache (assign, truncateFromEnd, truncateFromStart,
 * endOffsetFor).
 */
#include "storage/epoch_cache.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sys.h"

void epoch_cache_init(struct epoch_cache *c)
{
	memset(c, 0, sizeof(*c));
}

void epoch_cache_deinit(struct epoch_cache *c)
{
	free(c->v);
	memset(c, 0, sizeof(*c));
}

void epoch_cache_clear(struct epoch_cache *c)
{
	c->n = 0;
}

static int push(struct epoch_cache *c, int32_t epoch, int64_t start)
{
	if (c->n == c->cap) {
		if (c->cap >= EPOCH_CACHE_ENTRIES_MAX)
			return -ENOSPC;
		size_t cap = c->cap ? c->cap * 2 : 8;
		struct epoch_entry *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = (struct epoch_entry){ epoch, start };
	return 0;
}

static const char *parse_i64(const char *p, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(p, &end, 10);
	if (errno || end == p)
		return NULL;
	*out = v;
	return end;
}

int epoch_cache_load(struct epoch_cache *c, const char *dir)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", dir, EPOCH_CACHE_FILE) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	epoch_cache_clear(c);
	uint8_t *buf;
	size_t len;
	int err = sys_read_file(path, (size_t)EPOCH_CACHE_ENTRIES_MAX * 40 + 64, &buf, &len);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	const char *p = (const char *)buf;
	int64_t version, n;
	err = -EBADMSG;
	if (!(p = parse_i64(p, &version)) || version != 0)
		goto out;
	if (!(p = parse_i64(p, &n)) || n < 0 || n > EPOCH_CACHE_ENTRIES_MAX)
		goto out;
	for (int64_t i = 0; i < n; i++) {
		int64_t epoch, start;
		if (!(p = parse_i64(p, &epoch)) || !(p = parse_i64(p, &start)))
			goto out;
		if (epoch < 0 || epoch > INT32_MAX || start < 0)
			goto out;
		if (c->n > 0 && (epoch <= c->v[c->n - 1].epoch || start < c->v[c->n - 1].start_offset))
			goto out;
		if (push(c, (int32_t)epoch, start) < 0) {
			err = -ENOMEM;
			goto out;
		}
	}
	err = 0;
out:
	if (err)
		epoch_cache_clear(c);
	free(buf);
	return err;
}

int epoch_cache_save(const struct epoch_cache *c, const char *dir)
{
	size_t cap = 32 + c->n * 34;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	size_t len = (size_t)snprintf(buf, cap, "0\n%zu\n", c->n);
	for (size_t i = 0; i < c->n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%" PRId32 " %" PRId64 "\n", c->v[i].epoch,
					c->v[i].start_offset);
	int err = sys_write_file_atomic(dir, EPOCH_CACHE_FILE, buf, len, 1);
	free(buf);
	return err;
}

int32_t epoch_cache_latest(const struct epoch_cache *c)
{
	return c->n ? c->v[c->n - 1].epoch : -1;
}

int epoch_cache_assign(struct epoch_cache *c, int32_t epoch, int64_t start_offset)
{
	if (epoch < 0 || start_offset < 0)
		return -EINVAL;
	if (c->n > 0) {
		const struct epoch_entry *last = &c->v[c->n - 1];
		if (epoch == last->epoch && start_offset >= last->start_offset)
			return 0;
	}
	while (c->n > 0 && (c->v[c->n - 1].epoch >= epoch || c->v[c->n - 1].start_offset >= start_offset))
		c->n--;
	int err = push(c, epoch, start_offset);
	return err < 0 ? err : 1;
}

bool epoch_cache_truncate_from_end(struct epoch_cache *c, int64_t end_offset)
{
	size_t n = c->n;
	while (c->n > 0 && c->v[c->n - 1].start_offset >= end_offset)
		c->n--;
	return n != c->n;
}

bool epoch_cache_truncate_from_start(struct epoch_cache *c, int64_t start_offset)
{
	size_t drop = 0;
	while (drop < c->n && c->v[drop].start_offset <= start_offset)
		drop++;
	if (drop == 0)
		return false;
	/* keep the last entry at or below start_offset, moved up to it */
	drop--;
	bool changed = drop > 0 || c->v[drop].start_offset != start_offset;
	memmove(c->v, c->v + drop, (c->n - drop) * sizeof(*c->v));
	c->n -= drop;
	c->v[0].start_offset = start_offset;
	return changed;
}

void epoch_cache_end_offset_for(const struct epoch_cache *c, int32_t requested, int64_t leo,
				int32_t *epoch_out, int64_t *offset_out)
{
	*epoch_out = -1;
	*offset_out = -1;
	if (requested < 0 || c->n == 0)
		return;
	if (requested == c->v[c->n - 1].epoch) {
		*epoch_out = requested;
		*offset_out = leo;
		return;
	}
	/* higher: first entry with epoch > requested; floor: last with epoch <= requested */
	size_t i = 0;
	while (i < c->n && c->v[i].epoch <= requested)
		i++;
	if (i == c->n)
		return; /* requested is beyond every known epoch */
	*offset_out = c->v[i].start_offset;
	*epoch_out = i == 0 ? requested : c->v[i - 1].epoch;
}
