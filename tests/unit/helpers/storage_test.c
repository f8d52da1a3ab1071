/*
 * storage_test.c — see storage_test.h.
 */
#include "tests/unit/helpers/storage_test.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "storage/io.h"

struct sth_batch_spec sth_spec(int nrecords, int64_t base_ts)
{
	struct sth_batch_spec s = {
		.nrecords = nrecords,
		.base_ts = base_ts,
		.producer_id = -1,
		.producer_epoch = -1,
		.base_seq = -1,
		.value_bytes = 16,
		.fill = 'v',
	};
	return s;
}

static size_t varint_len(int64_t v)
{
	uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	size_t n = 1;
	while (u >= 0x80) {
		u >>= 7;
		n++;
	}
	return n;
}

void sth_build_batch(struct tm_wbuf *w, const struct sth_batch_spec *s)
{
	size_t start = w->len;
	wr_i64(w, 0);          /* baseOffset */
	wr_i32(w, 0);          /* batchLength, patched */
	wr_i32(w, -1);         /* partitionLeaderEpoch */
	wr_i8(w, 2);           /* magic */
	wr_u32(w, 0);          /* crc, patched */
	wr_i16(w, 0);          /* attributes */
	wr_i32(w, s->nrecords - 1);
	wr_i64(w, s->base_ts);
	wr_i64(w, s->base_ts + s->nrecords - 1);
	wr_i64(w, s->producer_id);
	wr_i16(w, s->producer_epoch);
	wr_i32(w, s->base_seq);
	wr_i32(w, s->nrecords);
	uint8_t *val = malloc(s->value_bytes + 1);
	memset(val, s->fill, s->value_bytes);
	for (int i = 0; i < s->nrecords; i++) {
		size_t body = 1 + varint_len(i) + varint_len(i) + varint_len(-1) +
			      varint_len((int64_t)s->value_bytes) + s->value_bytes + varint_len(0);
		wr_varint(w, (int32_t)body);
		wr_i8(w, 0);
		wr_varlong(w, i);  /* timestamp delta */
		wr_varint(w, i);   /* offset delta */
		wr_varint(w, -1);  /* key: null */
		wr_varint(w, (int32_t)s->value_bytes);
		wr_bytes(w, val, s->value_bytes);
		wr_varint(w, 0);   /* headers */
	}
	free(val);
	wr_patch_i32(w, start + 8, (int32_t)(w->len - start - 12));
	uint32_t crc = crc32c(0, w->buf + start + 21, w->len - start - 21);
	wr_patch_i32(w, start + 17, (int32_t)crc);
}

bool sth_run_until(struct tm_io *io, const bool *flag)
{
	for (int i = 0; i < 10000 && !*flag; i++) {
		io_flush(io);
		if (io_wait(io, 1) == -EALREADY && !*flag)
			io_process_completions(io);
	}
	return *flag;
}

void sth_drain(struct tm_io *io)
{
	for (int i = 0; i < 10000 && io_inflight(io) > 0; i++)
		(void)io_wait(io, 1);
}

void sth_tmpdir(char *buf, size_t cap)
{
	snprintf(buf, cap, "/tmp/tidemark-storage-XXXXXX");
	if (!mkdtemp(buf)) {
		perror("mkdtemp");
		abort();
	}
}

void sth_rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char p[4096];
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			sth_rmtree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}
