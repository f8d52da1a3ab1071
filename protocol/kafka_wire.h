/*
 * kafka_wire.h — Kafka's primitive wire types, the building blocks of the
 * generated codec (kafka_msgs_*.c) and of the request/response headers.
 *
 * Every decoder here returns 0, -EBADMSG (truncated or malformed input) or
 * -ENOMEM (the arena refused).  Lengths and counts are checked against the
 * bytes actually remaining BEFORE anything is allocated, so a hostile count
 * of 2^31 costs nothing.  Encoders write into a struct tm_wbuf whose error
 * sticks (check w->err once at the end).
 *
 *   type            classic (non-flexible)        flexible (KIP-482)
 *   string          int16 len, -1 null            uvarint len+1, 0 null
 *   bytes/records   int32 len, -1 null            uvarint len+1, 0 null
 *   array           int32 count, -1 null          uvarint count+1, 0 null
 *   tagged fields   (none)                        uvarint n, then n x
 *                                                 (uvarint tag, uvarint size, data)
 *
 * "nullable" says whether the schema allows null at the version being
 * coded.  Decoding a null where it is not allowed is -EBADMSG (Kafka
 * rejects it too); encoding one writes the empty value instead.  Strings
 * longer than 32767 bytes are rejected on decode and cut on encode, as in
 * Kafka.
 */
#ifndef TM_KAFKA_WIRE_H
#define TM_KAFKA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/bytes.h"
#include "protocol/kafka_types.h"

#define KAFKA_STRING_LEN_MAX 0x7fff

int kafka_rd_string(struct tm_rd *r, bool flex, bool nullable, struct kstr *out);
int kafka_rd_bytes(struct tm_rd *r, bool flex, bool nullable, struct kbytes *out);
void kafka_rd_uuid(struct tm_rd *r, struct kuuid *out);
/*
 * Reads an array count.  *count is -1 for null.  Fails unless
 * count * max(min_elem_bytes, 1) fits in the bytes remaining.
 */
int kafka_rd_array_len(struct tm_rd *r, bool flex, bool nullable, size_t min_elem_bytes,
		       int32_t *count);
/* Skips a whole tagged-field section (unknown tags are ignored). */
int kafka_rd_skip_tagged(struct tm_rd *r);

/* Arrays of primitives, allocated in the arena (NULL when count <= 0). */
int kafka_rd_array_i8(struct tm_rd *r, bool flex, bool nullable, struct tm_arena *a,
		      int8_t **out, int32_t *count);
int kafka_rd_array_i16(struct tm_rd *r, bool flex, bool nullable, struct tm_arena *a,
		       int16_t **out, int32_t *count);
int kafka_rd_array_i32(struct tm_rd *r, bool flex, bool nullable, struct tm_arena *a,
		       int32_t **out, int32_t *count);
int kafka_rd_array_i64(struct tm_rd *r, bool flex, bool nullable, struct tm_arena *a,
		       int64_t **out, int32_t *count);
int kafka_rd_array_uuid(struct tm_rd *r, bool flex, bool nullable, struct tm_arena *a,
			struct kuuid **out, int32_t *count);
int kafka_rd_array_string(struct tm_rd *r, bool flex, bool nullable, struct tm_arena *a,
			  struct kstr **out, int32_t *count);

void kafka_wr_string(struct tm_wbuf *w, bool flex, bool nullable, struct kstr s);
void kafka_wr_bytes(struct tm_wbuf *w, bool flex, bool nullable, struct kbytes b);
void kafka_wr_uuid(struct tm_wbuf *w, const struct kuuid *u);
/* Writes an array count; count < 0 is null (empty when not nullable). */
void kafka_wr_array_len(struct tm_wbuf *w, bool flex, bool nullable, int32_t count);
void kafka_wr_array_i8(struct tm_wbuf *w, bool flex, bool nullable, const int8_t *p, int32_t count);
void kafka_wr_array_i16(struct tm_wbuf *w, bool flex, bool nullable, const int16_t *p,
			int32_t count);
void kafka_wr_array_i32(struct tm_wbuf *w, bool flex, bool nullable, const int32_t *p,
			int32_t count);
void kafka_wr_array_i64(struct tm_wbuf *w, bool flex, bool nullable, const int64_t *p,
			int32_t count);
void kafka_wr_array_uuid(struct tm_wbuf *w, bool flex, bool nullable, const struct kuuid *p,
			 int32_t count);
void kafka_wr_array_string(struct tm_wbuf *w, bool flex, bool nullable, const struct kstr *p,
			   int32_t count);

/*
 * Tagged field framing: kafka_wr_tag_begin() writes the tag and returns the
 * position where the field's data starts; after writing the data,
 * kafka_wr_tag_end() slides it forward to insert its uvarint size.  This
 * avoids a second sizing pass over the field.
 */
size_t kafka_wr_tag_begin(struct tm_wbuf *w, uint32_t tag);
void kafka_wr_tag_end(struct tm_wbuf *w, size_t data_at);

#endif
