/*
 * kafka_codec.h — Kafka request and response headers.  Included by the
 * generated kafka_msgs.h, so including kafka_msgs.h gives the whole codec.
 *
 * A Kafka frame is `int32 size` + header + body; the size is the broker's
 * business (framing), this module starts at the header.
 *
 *   Request header v1 (classic)            Request header v2 (flexible API version)
 *   int16  api_key                         int16  api_key
 *   int16  api_version                     int16  api_version
 *   int32  correlation_id                  int32  correlation_id
 *   string client_id (int16 len, -1 null)  string client_id (int16 len, NOT compact)
 *                                          tagged fields
 *
 *   Response header v0: int32 correlation_id
 *   Response header v1: int32 correlation_id, tagged fields (flexible responses)
 *
 * ApiVersions (key 18) responses always use header v0 (KIP-511), so a client
 * can read the answer before it knows what the broker speaks.  The header
 * version follows the API's flexibleVersions even for an api_version above
 * the schema's maximum, so an ApiVersions request from a newer client still
 * parses.  ControlledShutdown v0 is the one request with header v0 (no
 * client_id).
 *
 * Decoders return 0 or -EBADMSG; client_id points into r's buffer.
 */
#ifndef TM_KAFKA_CODEC_H
#define TM_KAFKA_CODEC_H

#include <stdbool.h>
#include <stdint.h>

#include "common/bytes.h"
#include "protocol/kafka_types.h"

struct kafka_request_header {
	int16_t api_key;
	int16_t api_version;
	int32_t correlation_id;
	struct kstr client_id; /* len -1: null */
};

/* True when api_key's request/response at api_version uses flexible
 * encodings (and so header v2 / v1).  False for unknown keys. */
bool kafka_api_is_flexible(int16_t api_key, int16_t api_version);

int kafka_request_header_decode(struct tm_rd *r, struct kafka_request_header *h);
void kafka_request_header_encode(struct tm_wbuf *w, const struct kafka_request_header *h);

void kafka_response_header_encode(struct tm_wbuf *w, int16_t api_key, int16_t api_version,
				  int32_t correlation_id);
int kafka_response_header_decode(struct tm_rd *r, int16_t api_key, int16_t api_version,
				 int32_t *correlation_id);

#endif
