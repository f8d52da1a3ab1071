/*
 * metrics.h — counters the broker keeps and the HTTP endpoint that serves
 * them: Prometheus text at /metrics, liveness at /healthz, readiness at
 * /readyz (200 once the node serves clients, 503 before and while stopping).
 * Enabled by tidemark.http.port (off by default).
 */
#ifndef TM_BROKER_METRICS_H
#define TM_BROKER_METRICS_H

#include <stdint.h>

#include "protocol/kafka_msgs.h"

struct tm_broker;

struct tm_metrics {
	uint64_t requests[KAFKA_API_KEY_MAX + 1];
	uint64_t request_bytes;
	uint64_t response_bytes;
	uint64_t connections_accepted;
	uint64_t connections_closed_protocol_error;
	uint64_t produce_records_bytes;
	uint64_t fetch_records_bytes;   /* records answered to Fetch (consumers and followers) */
	uint64_t fetch_sendfile_bytes;  /* the part of them sent from the file (zero copy) */
};

int metrics_http_start(struct tm_broker *b);
void metrics_http_stop(struct tm_broker *b);

#endif
