/*
 * metrics.c — the HTTP endpoint on the broker's own loop (libevent evhttp).
 */
#include "broker/metrics.h"

#include <inttypes.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "broker/broker.h"
#include "broker/partition.h"
#include "common/tm_log.h"
#include "common/tm_time.h"
#include "storage/log.h"

static void reply_text(struct evhttp_request *r, int code, const char *reason, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(r), "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(r, code, reason, body);
}

static void metrics_cb(struct evhttp_request *r, void *arg)
{
	struct tm_broker *b = arg;
	struct evbuffer *o = evbuffer_new();
	if (!o) {
		evhttp_send_error(r, 500, "out of memory");
		return;
	}
	const struct tm_metrics *m = &b->metrics;
	evbuffer_add_printf(o, "# HELP tidemark_requests_total Requests received, by Kafka API.\n# TYPE tidemark_requests_total counter\n");
	for (int k = 0; k <= KAFKA_API_KEY_MAX; k++) {
		if (!m->requests[k])
			continue;
		const struct kafka_api_desc *d = kafka_api_lookup((int16_t)k);
		evbuffer_add_printf(o, "tidemark_requests_total{api=\"%s\"} %" PRIu64 "\n", d ? d->name : "unknown", m->requests[k]);
	}
	evbuffer_add_printf(o, "# TYPE tidemark_request_bytes_total counter\ntidemark_request_bytes_total %" PRIu64 "\n", m->request_bytes);
	evbuffer_add_printf(o, "# TYPE tidemark_response_bytes_total counter\ntidemark_response_bytes_total %" PRIu64 "\n", m->response_bytes);
	evbuffer_add_printf(o, "# TYPE tidemark_fetch_records_bytes_total counter\ntidemark_fetch_records_bytes_total %" PRIu64 "\n",
			    m->fetch_records_bytes);
	evbuffer_add_printf(o, "# TYPE tidemark_fetch_sendfile_bytes_total counter\ntidemark_fetch_sendfile_bytes_total %" PRIu64 "\n",
			    m->fetch_sendfile_bytes);
	evbuffer_add_printf(o, "# TYPE tidemark_connections_accepted_total counter\ntidemark_connections_accepted_total %" PRIu64 "\n",
			    m->connections_accepted);
	evbuffer_add_printf(o, "# TYPE tidemark_connections_closed_protocol_error_total counter\ntidemark_connections_closed_protocol_error_total %" PRIu64 "\n",
			    m->connections_closed_protocol_error);
	evbuffer_add_printf(o, "# TYPE tidemark_connections gauge\ntidemark_connections %d\n", b->conn_count);
	evbuffer_add_printf(o, "# TYPE tidemark_uptime_seconds gauge\ntidemark_uptime_seconds %.3f\n",
			    (double)(tm_mono_ms() - b->started_ms) / 1000.0);
	evbuffer_add_printf(o, "# HELP tidemark_partition_log_end_offset Next offset of each partition led here.\n# TYPE tidemark_partition_log_end_offset gauge\n");
	int64_t bytes = 0;
	int led = 0, under = 0, below_min = 0;
	for (size_t i = 0; i < b->topics.cap; i++) {
		if (!b->topics.slots[i].key)
			continue;
		struct tm_topic *t = b->topics.slots[i].value;
		for (int32_t p = 0; p < t->n_parts; p++) {
			struct tm_partition *pp = t->parts[p];
			if (!pp || !pp->log)
				continue;
			bytes += log_size_bytes(pp->log);
			evbuffer_add_printf(o, "tidemark_partition_log_end_offset{topic=\"%s\",partition=\"%d\"} %" PRId64 "\n",
					    t->name, p, log_end_offset(pp->log));
			evbuffer_add_printf(o, "tidemark_partition_high_watermark{topic=\"%s\",partition=\"%d\"} %" PRId64 "\n",
					    t->name, p, pp->high_watermark);
			if (!pp->is_leader)
				continue;
			/* Replication, as the leader sees it (Kafka's UnderReplicatedPartitions). */
			led++;
			int isr = partition_isr_size(pp);
			under += isr < pp->isr.n_f + 1;
			below_min += isr < partition_min_isr(pp);
			evbuffer_add_printf(o, "tidemark_partition_isr_size{topic=\"%s\",partition=\"%d\"} %d\n", t->name, p, isr);
			for (int f = 0; f < pp->isr.n_f; f++) {
				const struct isr_follower *fo = &pp->isr.f[f];
				int64_t lag = fo->leo < 0 ? -1 : log_written_offset(pp->log) - fo->leo;
				evbuffer_add_printf(o, "tidemark_partition_follower_lag_records{topic=\"%s\",partition=\"%d\",replica=\"%d\"} %" PRId64 "\n",
						    t->name, p, fo->id, lag);
			}
		}
	}
	evbuffer_add_printf(o, "# TYPE tidemark_log_size_bytes gauge\ntidemark_log_size_bytes %" PRId64 "\n", bytes);
	evbuffer_add_printf(o, "# TYPE tidemark_leader_partitions gauge\ntidemark_leader_partitions %d\n", led);
	evbuffer_add_printf(o, "# HELP tidemark_under_replicated_partitions Partitions led here whose ISR is smaller than their replica set.\n"
			       "# TYPE tidemark_under_replicated_partitions gauge\ntidemark_under_replicated_partitions %d\n", under);
	evbuffer_add_printf(o, "# TYPE tidemark_under_min_isr_partitions gauge\ntidemark_under_min_isr_partitions %d\n", below_min);
	reply_text(r, 200, "OK", o);
	evbuffer_free(o);
}

static void health_cb(struct evhttp_request *r, void *arg)
{
	(void)arg;
	struct evbuffer *o = evbuffer_new();
	evbuffer_add_printf(o, "ok\n");
	reply_text(r, 200, "OK", o);
	evbuffer_free(o);
}

static void ready_cb(struct evhttp_request *r, void *arg)
{
	struct tm_broker *b = arg;
	struct evbuffer *o = evbuffer_new();
	bool ready = b->serving && !b->stopping;
	evbuffer_add_printf(o, ready ? "ready\n" : "not ready\n");
	reply_text(r, ready ? 200 : 503, ready ? "OK" : "Service Unavailable", o);
	evbuffer_free(o);
}

int metrics_http_start(struct tm_broker *b)
{
	if (b->cfg.http_port < 0)
		return 0;
	b->http = evhttp_new(b->base);
	if (!b->http)
		return -1;
	evhttp_set_cb(b->http, "/metrics", metrics_cb, b);
	evhttp_set_cb(b->http, "/healthz", health_cb, b);
	evhttp_set_cb(b->http, "/readyz", ready_cb, b);
	if (evhttp_bind_socket(b->http, "0.0.0.0", (uint16_t)b->cfg.http_port)) {
		tm_error("metrics", "cannot listen for HTTP on port %d; change tidemark.http.port", b->cfg.http_port);
		evhttp_free(b->http);
		b->http = NULL;
		return -1;
	}
	tm_info("metrics", "serving /metrics, /healthz and /readyz on port %d", b->cfg.http_port);
	return 0;
}

void metrics_http_stop(struct tm_broker *b)
{
	if (b->http)
		evhttp_free(b->http);
	b->http = NULL;
}
