/*
 * kafka_codec.c — Kafka request and response headers (layouts in
 * kafka_codec.h).  Pure: no I/O.
 */
#include "protocol/kafka_codec.h"

#include <errno.h>

#include "protocol/kafka_msgs.h"
#include "protocol/kafka_wire.h"

bool kafka_api_is_flexible(int16_t api_key, int16_t api_version)
{
	const struct kafka_api_desc *d = kafka_api_lookup(api_key);
	return d && d->flexible_min >= 0 && api_version >= d->flexible_min;
}

static bool request_has_client_id(int16_t api_key, int16_t api_version)
{
	return !(api_key == KAFKA_API_CONTROLLED_SHUTDOWN && api_version == 0);
}

int kafka_request_header_decode(struct tm_rd *r, struct kafka_request_header *h)
{
	h->api_key = rd_i16(r);
	h->api_version = rd_i16(r);
	h->correlation_id = rd_i32(r);
	h->client_id = kstr_null();
	if (r->err)
		return -EBADMSG;
	if (request_has_client_id(h->api_key, h->api_version) &&
	    kafka_rd_string(r, false, true, &h->client_id))
		return -EBADMSG;
	if (kafka_api_is_flexible(h->api_key, h->api_version) && kafka_rd_skip_tagged(r))
		return -EBADMSG;
	return r->err ? -EBADMSG : 0;
}

void kafka_request_header_encode(struct tm_wbuf *w, const struct kafka_request_header *h)
{
	wr_i16(w, h->api_key);
	wr_i16(w, h->api_version);
	wr_i32(w, h->correlation_id);
	if (request_has_client_id(h->api_key, h->api_version))
		kafka_wr_string(w, false, true, h->client_id);
	if (kafka_api_is_flexible(h->api_key, h->api_version))
		wr_uvarint(w, 0);
}

static bool response_header_v1(int16_t api_key, int16_t api_version)
{
	return api_key != KAFKA_API_API_VERSIONS && kafka_api_is_flexible(api_key, api_version);
}

void kafka_response_header_encode(struct tm_wbuf *w, int16_t api_key, int16_t api_version,
				  int32_t correlation_id)
{
	wr_i32(w, correlation_id);
	if (response_header_v1(api_key, api_version))
		wr_uvarint(w, 0);
}

int kafka_response_header_decode(struct tm_rd *r, int16_t api_key, int16_t api_version,
				 int32_t *correlation_id)
{
	*correlation_id = rd_i32(r);
	if (r->err)
		return -EBADMSG;
	if (response_header_v1(api_key, api_version))
		return kafka_rd_skip_tagged(r);
	return 0;
}
