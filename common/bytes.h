/*
 * bytes.h — bounds-checked big-endian byte cursors and a growable write buffer.
 *
 * Every byte Tidemark reads from the network or the disk goes through a
 * struct tm_rd.  A read past the end (or a malformed varint) sets r->err and
 * returns 0; the error sticks, so a decoder may read a whole structure and
 * check r->err once at the end:
 *
 *     int32_t n = rd_i32(&r);
 *     if (r.err) return -EBADMSG;
 *
 * Writes go to a struct tm_wbuf, which grows on the heap.  An allocation
 * failure sets w->err and later writes are dropped; check w->err before
 * using the bytes.  Integers are big-endian (Kafka's network order);
 * varints are the protobuf/Kafka unsigned LEB128 form, with zig-zag for
 * the signed ones.
 */
#ifndef TM_BYTES_H
#define TM_BYTES_H

#include <stddef.h>
#include <stdint.h>

struct tm_rd {
	const uint8_t *buf;
	size_t len;
	size_t pos;
	int err; /* 0, or -EBADMSG once any read failed */
};

static inline void rd_init(struct tm_rd *r, const void *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->pos = 0;
	r->err = 0;
}

static inline size_t rd_remaining(const struct tm_rd *r)
{
	return r->err ? 0 : r->len - r->pos;
}

/* Marks the cursor failed; every later read returns zero. */
void rd_fail(struct tm_rd *r);

int8_t rd_i8(struct tm_rd *r);
int16_t rd_i16(struct tm_rd *r);
int32_t rd_i32(struct tm_rd *r);
int64_t rd_i64(struct tm_rd *r);
uint16_t rd_u16(struct tm_rd *r);
uint32_t rd_u32(struct tm_rd *r);
double rd_f64(struct tm_rd *r);
uint32_t rd_uvarint(struct tm_rd *r);  /* at most 5 bytes */
int32_t rd_varint(struct tm_rd *r);    /* zig-zag, at most 5 bytes */
int64_t rd_varlong(struct tm_rd *r);   /* zig-zag, at most 10 bytes */
uint64_t rd_uvarlong(struct tm_rd *r); /* at most 10 bytes */
/* Returns a pointer to the next n bytes and advances, or NULL (and fails). */
const uint8_t *rd_take(struct tm_rd *r, size_t n);
void rd_skip(struct tm_rd *r, size_t n);

/* A hole: `len` bytes that belong at position `at` of the buffer but are
 * not in it.  The sender fills them from elsewhere (a Fetch answer's
 * records go from the segment file to the socket with sendfile); `tag` is
 * the writer's handle on where they come from. */
struct tm_wbuf_hole {
	size_t at;
	size_t len;
	void *tag;
};

struct tm_wbuf {
	uint8_t *buf;
	size_t len;          /* bytes in buf, holes not counted */
	size_t cap;
	int err;             /* 0, or -ENOMEM once a grow failed */
	struct tm_wbuf_hole *holes; /* in position order */
	size_t n_holes, cap_holes;
	size_t hole_bytes;   /* sum of the holes' lengths */
};

void wbuf_init(struct tm_wbuf *w);
void wbuf_deinit(struct tm_wbuf *w);
void wbuf_reset(struct tm_wbuf *w);
/* Makes room for n more bytes; returns 0 or -ENOMEM (also stored in w->err). */
int wbuf_reserve(struct tm_wbuf *w, size_t n);
/* Hands the buffer to the caller (who frees it) and leaves w empty; the
 * list of holes is dropped (take what it says first). */
uint8_t *wbuf_steal(struct tm_wbuf *w, size_t *len_out);
/* Records a hole of len bytes at the current end (see struct tm_wbuf_hole). */
void wr_hole(struct tm_wbuf *w, size_t len, void *tag);

void wr_bytes(struct tm_wbuf *w, const void *p, size_t n);
void wr_i8(struct tm_wbuf *w, int8_t v);
void wr_i16(struct tm_wbuf *w, int16_t v);
void wr_i32(struct tm_wbuf *w, int32_t v);
void wr_i64(struct tm_wbuf *w, int64_t v);
void wr_u32(struct tm_wbuf *w, uint32_t v);
void wr_f64(struct tm_wbuf *w, double v);
void wr_uvarint(struct tm_wbuf *w, uint32_t v);
void wr_varint(struct tm_wbuf *w, int32_t v);
void wr_varlong(struct tm_wbuf *w, int64_t v);
void wr_uvarlong(struct tm_wbuf *w, uint64_t v);
/* Overwrites 4 bytes at an earlier position (length prefixes, CRCs). */
void wr_patch_i32(struct tm_wbuf *w, size_t at, int32_t v);

/* Plain big-endian loads/stores on memory the caller has bounds-checked. */
static inline uint16_t tm_load_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t tm_load_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t tm_load_be64(const uint8_t *p)
{
	return ((uint64_t)tm_load_be32(p) << 32) | tm_load_be32(p + 4);
}
static inline void tm_store_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void tm_store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void tm_store_be64(uint8_t *p, uint64_t v)
{
	tm_store_be32(p, (uint32_t)(v >> 32));
	tm_store_be32(p + 4, (uint32_t)v);
}

#endif
