/*
 * kafka_wire.c — Kafka's primitive wire types (see kafka_wire.h for the
 * table of encodings).  Pure: no I/O; memory only from the caller's arena.
 */
#include "protocol/kafka_wire.h"

#include <errno.h>
#include <string.h>

bool kstr_eq(struct kstr a, const char *s)
{
	if (!s)
		return a.len < 0;
	if (a.len < 0)
		return false;
	size_t n = strlen(s);
	return (size_t)a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

bool kstr_equal(struct kstr a, struct kstr b)
{
	if (a.len < 0 || b.len < 0)
		return a.len < 0 && b.len < 0;
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

bool kbytes_equal(struct kbytes a, struct kbytes b)
{
	if (a.len < 0 || b.len < 0)
		return a.len < 0 && b.len < 0;
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

/* Reads a length prefix: -1 for null, else 0..INT32_MAX; -2 on error. */
static int64_t rd_len(struct tm_rd *r, bool flex, bool wide)
{
	int64_t n;
	if (flex) {
		n = (int64_t)rd_uvarint(r) - 1;
	} else if (wide) {
		n = rd_i32(r);
	} else {
		n = rd_i16(r);
	}
	if (r->err || n < -1)
		return -2;
	return n;
}

int kafka_rd_string(struct tm_rd *r, bool flex, bool nullable, struct kstr *out)
{
	int64_t n = rd_len(r, flex, false);
	if (n == -2 || (n == -1 && !nullable) || n > KAFKA_STRING_LEN_MAX)
		return -EBADMSG;
	if (n == -1) {
		*out = kstr_null();
		return 0;
	}
	const uint8_t *p = rd_take(r, (size_t)n);
	if (!p)
		return -EBADMSG;
	out->ptr = (const char *)p;
	out->len = (int32_t)n;
	return 0;
}

int kafka_rd_bytes(struct tm_rd *r, bool flex, bool nullable, struct kbytes *out)
{
	int64_t n = rd_len(r, flex, true);
	if (n == -2 || (n == -1 && !nullable) || n > INT32_MAX)
		return -EBADMSG;
	if (n == -1) {
		*out = kbytes_null();
		return 0;
	}
	const uint8_t *p = rd_take(r, (size_t)n);
	if (!p)
		return -EBADMSG;
	*out = kbytes_make(p, (size_t)n);
	return 0;
}

void kafka_rd_uuid(struct tm_rd *r, struct kuuid *out)
{
	const uint8_t *p = rd_take(r, sizeof(out->b));
	if (p)
		memcpy(out->b, p, sizeof(out->b));
	else
		memset(out->b, 0, sizeof(out->b));
}

int kafka_rd_array_len(struct tm_rd *r, bool flex, bool nullable, size_t min_elem_bytes,
		       int32_t *count)
{
	int64_t n = rd_len(r, flex, true);
	if (n == -2 || (n == -1 && !nullable) || n > INT32_MAX)
		return -EBADMSG;
	if (min_elem_bytes == 0)
		min_elem_bytes = 1;
	/* n <= 2^31 and min_elem_bytes is a small schema constant: no overflow */
	if (n > 0 && (uint64_t)n * min_elem_bytes > rd_remaining(r))
		return -EBADMSG;
	*count = (int32_t)n;
	return 0;
}

int kafka_rd_skip_tagged(struct tm_rd *r)
{
	uint32_t n = rd_uvarint(r);
	for (uint32_t i = 0; i < n && !r->err; i++) {
		(void)rd_uvarint(r); /* tag */
		uint32_t size = rd_uvarint(r);
		rd_skip(r, size);
	}
	return r->err ? -EBADMSG : 0;
}

static int rd_array_alloc(struct tm_rd *r, bool flex, bool nullable, struct tm_arena *a,
			  size_t elem_wire, size_t elem_mem, void **out, int32_t *count)
{
	int rc = kafka_rd_array_len(r, flex, nullable, elem_wire, count);
	if (rc)
		return rc;
	*out = NULL;
	if (*count <= 0)
		return 0;
	*out = arena_alloc(a, (size_t)*count * elem_mem);
	return *out ? 0 : -ENOMEM;
}

#define KAFKA_RD_ARRAY_FIXED(suffix, ctype, reader)                                           \
	int kafka_rd_array_##suffix(struct tm_rd *r, bool flex, bool nullable,                \
				    struct tm_arena *a, ctype **out, int32_t *count)          \
	{                                                                                     \
		void *p;                                                                      \
		int rc = rd_array_alloc(r, flex, nullable, a, sizeof(ctype), sizeof(ctype),   \
					&p, count);                                           \
		if (rc)                                                                       \
			return rc;                                                            \
		ctype *v = p;                                                                 \
		for (int32_t i = 0; i < *count; i++)                                          \
			v[i] = (ctype)reader(r);                                              \
		*out = v;                                                                     \
		return r->err ? -EBADMSG : 0;                                                 \
	}

KAFKA_RD_ARRAY_FIXED(i8, int8_t, rd_i8)
KAFKA_RD_ARRAY_FIXED(i16, int16_t, rd_i16)
KAFKA_RD_ARRAY_FIXED(i32, int32_t, rd_i32)
KAFKA_RD_ARRAY_FIXED(i64, int64_t, rd_i64)

int kafka_rd_array_uuid(struct tm_rd *r, bool flex, bool nullable, struct tm_arena *a,
			struct kuuid **out, int32_t *count)
{
	void *p;
	int rc = rd_array_alloc(r, flex, nullable, a, 16, sizeof(struct kuuid), &p, count);
	if (rc)
		return rc;
	struct kuuid *v = p;
	for (int32_t i = 0; i < *count; i++)
		kafka_rd_uuid(r, &v[i]);
	*out = v;
	return r->err ? -EBADMSG : 0;
}

int kafka_rd_array_string(struct tm_rd *r, bool flex, bool nullable, struct tm_arena *a,
			  struct kstr **out, int32_t *count)
{
	void *p;
	int rc = rd_array_alloc(r, flex, nullable, a, flex ? 1 : 2, sizeof(struct kstr), &p,
				count);
	if (rc)
		return rc;
	struct kstr *v = p;
	for (int32_t i = 0; i < *count; i++) {
		rc = kafka_rd_string(r, flex, false, &v[i]);
		if (rc)
			return rc;
	}
	*out = v;
	return 0;
}

static void wr_len(struct tm_wbuf *w, bool flex, bool wide, int32_t n)
{
	if (flex)
		wr_uvarint(w, (uint32_t)(n + 1));
	else if (wide)
		wr_i32(w, n);
	else
		wr_i16(w, (int16_t)n);
}

void kafka_wr_string(struct tm_wbuf *w, bool flex, bool nullable, struct kstr s)
{
	if (s.len < 0) {
		wr_len(w, flex, false, nullable ? -1 : 0);
		return;
	}
	int32_t n = s.len > KAFKA_STRING_LEN_MAX ? KAFKA_STRING_LEN_MAX : s.len;
	wr_len(w, flex, false, n);
	wr_bytes(w, s.ptr, (size_t)n);
}

void kafka_wr_bytes(struct tm_wbuf *w, bool flex, bool nullable, struct kbytes b)
{
	if (b.len < 0) {
		wr_len(w, flex, true, nullable ? -1 : 0);
		return;
	}
	wr_len(w, flex, true, b.len);
	if (b.hole)
		wr_hole(w, (size_t)b.len, (void *)b.ptr);
	else
		wr_bytes(w, b.ptr, (size_t)b.len);
}

void kafka_wr_uuid(struct tm_wbuf *w, const struct kuuid *u)
{
	wr_bytes(w, u->b, sizeof(u->b));
}

void kafka_wr_array_len(struct tm_wbuf *w, bool flex, bool nullable, int32_t count)
{
	if (count < 0)
		count = nullable ? -1 : 0;
	wr_len(w, flex, true, count);
}

#define KAFKA_WR_ARRAY(suffix, ctype, writer)                                                  \
	void kafka_wr_array_##suffix(struct tm_wbuf *w, bool flex, bool nullable,              \
				     const ctype *p, int32_t count)                            \
	{                                                                                      \
		kafka_wr_array_len(w, flex, nullable, count);                                  \
		for (int32_t i = 0; i < count; i++)                                            \
			writer;                                                                \
	}

KAFKA_WR_ARRAY(i8, int8_t, wr_i8(w, p[i]))
KAFKA_WR_ARRAY(i16, int16_t, wr_i16(w, p[i]))
KAFKA_WR_ARRAY(i32, int32_t, wr_i32(w, p[i]))
KAFKA_WR_ARRAY(i64, int64_t, wr_i64(w, p[i]))
KAFKA_WR_ARRAY(uuid, struct kuuid, kafka_wr_uuid(w, &p[i]))
KAFKA_WR_ARRAY(string, struct kstr, kafka_wr_string(w, flex, false, p[i]))

size_t kafka_wr_tag_begin(struct tm_wbuf *w, uint32_t tag)
{
	wr_uvarint(w, tag);
	return w->len;
}

void kafka_wr_tag_end(struct tm_wbuf *w, size_t data_at)
{
	if (w->err)
		return;
	/* Holes inside the field count in its size and move with its bytes. */
	size_t holes_from = w->n_holes, hole_bytes = 0;
	while (holes_from > 0 && w->holes[holes_from - 1].at >= data_at)
		hole_bytes += w->holes[--holes_from].len;
	size_t n = w->len - data_at;
	size_t size = n + hole_bytes;
	uint8_t var[5];
	size_t k = 0;
	uint32_t v = (uint32_t)size;
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		var[k++] = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	if (wbuf_reserve(w, k))
		return;
	memmove(w->buf + data_at + k, w->buf + data_at, n);
	memcpy(w->buf + data_at, var, k);
	w->len += k;
	for (size_t i = holes_from; i < w->n_holes; i++)
		w->holes[i].at += k;
}
