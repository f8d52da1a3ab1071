/*
 * bytes.c — see bytes.h.  All reads check the remaining length first; a
 * failed cursor stays failed.
 */
#include "bytes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void rd_fail(struct tm_rd *r)
{
	r->err = -EBADMSG;
	r->pos = r->len;
}

const uint8_t *rd_take(struct tm_rd *r, size_t n)
{
	if (r->err || n > r->len - r->pos) {
		rd_fail(r);
		return NULL;
	}
	const uint8_t *p = r->buf + r->pos;
	r->pos += n;
	return p;
}

void rd_skip(struct tm_rd *r, size_t n)
{
	(void)rd_take(r, n);
}

int8_t rd_i8(struct tm_rd *r)
{
	const uint8_t *p = rd_take(r, 1);
	return p ? (int8_t)p[0] : 0;
}

int16_t rd_i16(struct tm_rd *r)
{
	const uint8_t *p = rd_take(r, 2);
	return p ? (int16_t)tm_load_be16(p) : 0;
}

uint16_t rd_u16(struct tm_rd *r)
{
	const uint8_t *p = rd_take(r, 2);
	return p ? tm_load_be16(p) : 0;
}

int32_t rd_i32(struct tm_rd *r)
{
	const uint8_t *p = rd_take(r, 4);
	return p ? (int32_t)tm_load_be32(p) : 0;
}

uint32_t rd_u32(struct tm_rd *r)
{
	const uint8_t *p = rd_take(r, 4);
	return p ? tm_load_be32(p) : 0;
}

int64_t rd_i64(struct tm_rd *r)
{
	const uint8_t *p = rd_take(r, 8);
	return p ? (int64_t)tm_load_be64(p) : 0;
}

double rd_f64(struct tm_rd *r)
{
	uint64_t bits = (uint64_t)rd_i64(r);
	double d;
	memcpy(&d, &bits, sizeof(d));
	return d;
}

uint64_t rd_uvarlong(struct tm_rd *r)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 70; shift += 7) {
		const uint8_t *p = rd_take(r, 1);
		if (!p)
			return 0;
		v |= (uint64_t)(p[0] & 0x7f) << shift;
		if (!(p[0] & 0x80))
			return v;
	}
	rd_fail(r); /* more than 10 bytes: not a varint */
	return 0;
}

uint32_t rd_uvarint(struct tm_rd *r)
{
	uint32_t v = 0;
	for (int shift = 0; shift < 35; shift += 7) {
		const uint8_t *p = rd_take(r, 1);
		if (!p)
			return 0;
		v |= (uint32_t)(p[0] & 0x7f) << shift;
		if (!(p[0] & 0x80))
			return v;
	}
	rd_fail(r);
	return 0;
}

int32_t rd_varint(struct tm_rd *r)
{
	uint32_t u = rd_uvarint(r);
	return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

int64_t rd_varlong(struct tm_rd *r)
{
	uint64_t u = rd_uvarlong(r);
	return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

void wbuf_init(struct tm_wbuf *w)
{
	memset(w, 0, sizeof(*w));
}

void wbuf_deinit(struct tm_wbuf *w)
{
	free(w->buf);
	free(w->holes);
	memset(w, 0, sizeof(*w));
}

void wbuf_reset(struct tm_wbuf *w)
{
	w->len = 0;
	w->err = 0;
	w->n_holes = 0;
	w->hole_bytes = 0;
}

int wbuf_reserve(struct tm_wbuf *w, size_t n)
{
	if (w->err)
		return w->err;
	if (n <= w->cap - w->len)
		return 0;
	size_t cap = w->cap ? w->cap : 256;
	while (cap - w->len < n) {
		if (cap > SIZE_MAX / 2) {
			w->err = -ENOMEM;
			return w->err;
		}
		cap *= 2;
	}
	uint8_t *nb = realloc(w->buf, cap);
	if (!nb) {
		w->err = -ENOMEM;
		return w->err;
	}
	w->buf = nb;
	w->cap = cap;
	return 0;
}

uint8_t *wbuf_steal(struct tm_wbuf *w, size_t *len_out)
{
	uint8_t *b = w->buf;
	*len_out = w->len;
	free(w->holes);
	memset(w, 0, sizeof(*w));
	return b;
}

void wr_hole(struct tm_wbuf *w, size_t len, void *tag)
{
	if (w->err)
		return;
	if (w->n_holes == w->cap_holes) {
		size_t cap = w->cap_holes ? w->cap_holes * 2 : 4;
		struct tm_wbuf_hole *h = realloc(w->holes, cap * sizeof(*h));
		if (!h) {
			w->err = -ENOMEM;
			return;
		}
		w->holes = h;
		w->cap_holes = cap;
	}
	w->holes[w->n_holes++] = (struct tm_wbuf_hole){ w->len, len, tag };
	w->hole_bytes += len;
}

void wr_bytes(struct tm_wbuf *w, const void *p, size_t n)
{
	if (n == 0 || wbuf_reserve(w, n))
		return;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void wr_i8(struct tm_wbuf *w, int8_t v)
{
	uint8_t b = (uint8_t)v;
	wr_bytes(w, &b, 1);
}

void wr_i16(struct tm_wbuf *w, int16_t v)
{
	uint8_t b[2];
	tm_store_be16(b, (uint16_t)v);
	wr_bytes(w, b, 2);
}

void wr_i32(struct tm_wbuf *w, int32_t v)
{
	uint8_t b[4];
	tm_store_be32(b, (uint32_t)v);
	wr_bytes(w, b, 4);
}

void wr_u32(struct tm_wbuf *w, uint32_t v)
{
	wr_i32(w, (int32_t)v);
}

void wr_i64(struct tm_wbuf *w, int64_t v)
{
	uint8_t b[8];
	tm_store_be64(b, (uint64_t)v);
	wr_bytes(w, b, 8);
}

void wr_f64(struct tm_wbuf *w, double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof(bits));
	wr_i64(w, (int64_t)bits);
}

void wr_uvarlong(struct tm_wbuf *w, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;
	while (v >= 0x80) {
		b[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b[n++] = (uint8_t)v;
	wr_bytes(w, b, n);
}

void wr_uvarint(struct tm_wbuf *w, uint32_t v)
{
	wr_uvarlong(w, v);
}

void wr_varint(struct tm_wbuf *w, int32_t v)
{
	wr_uvarlong(w, (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)));
}

void wr_varlong(struct tm_wbuf *w, int64_t v)
{
	wr_uvarlong(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void wr_patch_i32(struct tm_wbuf *w, size_t at, int32_t v)
{
	if (w->err || at + 4 > w->len)
		return;
	tm_store_be32(w->buf + at, (uint32_t)v);
}
