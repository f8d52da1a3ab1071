/*
 * kafka_types.h — the value types every generated Kafka message struct is
 * made of.  Types only; the codec lives in kafka_msgs.h (generated) and
 * kafka_wire.h (the primitives it is built from).
 *
 * Ownership: a decoded struct kstr / kbytes points straight into the buffer
 * the decoder read (zero copy) or into the request arena; neither is
 * NUL-terminated and neither is freed on its own.  Keep the request buffer
 * and the arena alive as long as the decoded struct is used.
 *
 *   struct kstr   len == -1: null string, ptr unused
 *   struct kbytes len == -1: null bytes; also carries `records` fields
 *                 (one or more raw record batches, see records.h)
 *   struct kuuid  16 raw bytes in network order; all zero is Kafka's
 *                 Uuid.ZERO_UUID ("no id")
 */
#ifndef TM_KAFKA_TYPES_H
#define TM_KAFKA_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct kstr {
	const char *ptr;
	int32_t len; /* -1: null */
};

struct kbytes {
	const uint8_t *ptr;
	int32_t len; /* -1: null */
	/* Encoding only: the len bytes are not at ptr but elsewhere; the
	 * encoder writes the length and a hole tagged ptr (struct tm_wbuf_hole)
	 * for the sender to fill. */
	bool hole;
};

struct kuuid {
	uint8_t b[16];
};

/* A kstr viewing a C string; NULL gives the null string. */
static inline struct kstr kstr_c(const char *s)
{
	struct kstr k;
	k.ptr = s;
	k.len = s ? (int32_t)strlen(s) : -1;
	return k;
}

static inline struct kstr kstr_null(void)
{
	struct kstr k = { NULL, -1 };
	return k;
}

static inline bool kstr_is_null(struct kstr s)
{
	return s.len < 0;
}

static inline struct kbytes kbytes_make(const void *p, size_t len)
{
	struct kbytes b;
	b.ptr = p;
	b.len = (int32_t)len;
	b.hole = false;
	return b;
}

/* len bytes the sender splices in at this place; tag says from where. */
static inline struct kbytes kbytes_hole(void *tag, size_t len)
{
	struct kbytes b;
	b.ptr = tag;
	b.len = (int32_t)len;
	b.hole = true;
	return b;
}

static inline struct kbytes kbytes_null(void)
{
	struct kbytes b = { NULL, -1, false };
	return b;
}

/* True when a is not null and holds exactly the bytes of C string s
 * (s NULL matches only the null string). */
bool kstr_eq(struct kstr a, const char *s);
/* True when both are null or both hold the same bytes. */
bool kstr_equal(struct kstr a, struct kstr b);
bool kbytes_equal(struct kbytes a, struct kbytes b);

static inline bool kuuid_is_zero(const struct kuuid *u)
{
	static const struct kuuid zero;
	return memcmp(u->b, zero.b, sizeof(u->b)) == 0;
}

static inline bool kuuid_equal(const struct kuuid *a, const struct kuuid *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

#endif
