/*
 * peer.c — see peer.h.  Responses arrive in request order on one connection
 * (Kafka's rule), so in-flight requests are a FIFO and a response whose
 * correlation id is not the head's is a protocol error that resets the
 * connection.
 */
#include "broker/peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"
#include "common/tm_time.h"

#define PEER_BACKOFF_MS_MIN 50
#define PEER_BACKOFF_MS_MAX 1000
#define PEER_RESPONSE_BYTES_MAX (256 << 20)
/* A response with at least this much still to come is read from the socket
 * straight into its frame (as server.c does with requests), not in
 * libevent's 4 KiB steps through the input evbuffer and then copied out. */
#define PEER_READ_DIRECT_MIN 4096

/* A response frame; callbacks may keep it past their return with
 * peer_frame_hold (a follower writes fetched records from it). */
struct peer_frame {
	unsigned refs;
	size_t len;
	uint8_t data[];
};

struct peer_call {
	struct peer_call *next;
	int32_t correlation_id;
	int16_t api_key, api_version;
	int64_t deadline_ms;
	peer_resp_cb cb;
	void *arg;
};

struct tm_peer {
	struct tm_broker *b;
	int32_t node_id;
	char host[256];
	int port;
	struct bufferevent *bev;
	bool connected;
	struct event *retry_ev;
	int backoff_ms;
	int32_t next_corr;
	struct peer_call *head, *tail;
	int inflight;
	char client_id[32];
	struct peer_frame *pend;  /* a frame being read straight from the socket, or NULL */
	size_t pend_have;
	struct peer_frame *cur;   /* the frame whose response a callback is handling */
};

static struct peer_frame *frame_new(size_t len)
{
	struct peer_frame *f = malloc(sizeof(*f) + len);
	if (f) {
		f->refs = 1;
		f->len = len;
	}
	return f;
}

void peer_frame_release(struct peer_frame *f)
{
	if (f && --f->refs == 0)
		free(f);
}

struct peer_frame *peer_frame_hold(struct tm_peer *p)
{
	if (!p->cur)
		return NULL;
	p->cur->refs++;
	return p->cur;
}

static void peer_fail_all(struct tm_peer *p, int err)
{
	/* These callbacks get no frame, whatever response is being handled. */
	struct peer_frame *cur = p->cur;
	p->cur = NULL;
	while (p->head) {
		struct peer_call *c = p->head;
		p->head = c->next;
		if (!p->head)
			p->tail = NULL;
		p->inflight--;
		c->cb(c->arg, err, NULL);
		free(c);
	}
	p->cur = cur;
}

static void peer_connect(struct tm_peer *p);

/* Tries again after the current backoff (no socket, or a name that failed
 * to resolve at once). */
static void peer_retry_later(struct tm_peer *p)
{
	struct timeval tv = { p->backoff_ms / 1000, (p->backoff_ms % 1000) * 1000 };
	evtimer_add(p->retry_ev, &tv);
}

static void peer_drop(struct tm_peer *p, const char *why)
{
	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
	peer_frame_release(p->pend);
	p->pend = NULL;
	if (p->connected)
		tm_info("peer", "connection to node %d (%s:%d) lost: %s", p->node_id, p->host, p->port, why);
	p->connected = false;
	peer_fail_all(p, -ECONNRESET);
	peer_retry_later(p);
	p->backoff_ms = p->backoff_ms * 2 > PEER_BACKOFF_MS_MAX ? PEER_BACKOFF_MS_MAX : p->backoff_ms * 2;
}

/* Hands one whole response frame, read from bev, to the oldest request's
 * callback.  False when that connection is gone: the callback may have
 * dropped it, and a request it sent may already have opened another, whose
 * input is not the buffer the caller is reading. */
static bool peer_deliver(struct tm_peer *p, struct bufferevent *bev, struct peer_frame *frame)
{
	struct peer_call *c = p->head;
	struct tm_rd r;
	rd_init(&r, frame->data, frame->len);
	int32_t corr = 0;
	if (!c || kafka_response_header_decode(&r, c->api_key, c->api_version, &corr) || corr != c->correlation_id) {
		peer_frame_release(frame);
		peer_drop(p, "response does not match the oldest request");
		return false;
	}
	p->head = c->next;
	if (!p->head)
		p->tail = NULL;
	p->inflight--;
	p->cur = frame;
	c->cb(c->arg, 0, &r);
	p->cur = NULL;
	free(c);
	peer_frame_release(frame);
	return p->bev == bev;
}

static void peer_read_cb(struct bufferevent *bev, void *arg)
{
	struct tm_peer *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		struct peer_frame *frame;
		if (p->pend) {
			p->pend_have += server_read_into(in, bufferevent_getfd(bev), p->pend->data + p->pend_have,
							 p->pend->len - p->pend_have);
			if (p->pend_have < p->pend->len)
				return;
			frame = p->pend;
			p->pend = NULL;
		} else {
			uint8_t lenb[4];
			if (evbuffer_copyout(in, lenb, 4) < 4)
				return;
			int32_t len = (int32_t)tm_load_be32(lenb);
			if (len < 4 || len > PEER_RESPONSE_BYTES_MAX) {
				peer_drop(p, "bad response frame length");
				return;
			}
			size_t have = evbuffer_get_length(in);
			bool direct = have < (size_t)len + 4 && (size_t)len + 4 - have >= PEER_READ_DIRECT_MIN;
			if (!direct && have < (size_t)len + 4)
				return;
			if (!(frame = frame_new((size_t)len))) {
				peer_drop(p, "out of memory");
				return;
			}
			evbuffer_drain(in, 4);
			if (direct) {
				p->pend = frame;
				p->pend_have = 0;
				continue;
			}
			evbuffer_remove(in, frame->data, (size_t)len);
		}
		if (!peer_deliver(p, bev, frame))
			return;
	}
}

static void peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tm_peer *p = arg;
	if (what & BEV_EVENT_CONNECTED) {
		p->connected = true;
		p->backoff_ms = PEER_BACKOFF_MS_MIN;
		server_cc_connected(p->b, bufferevent_getfd(bev));
		tm_debug("peer", "connected to node %d (%s:%d)", p->node_id, p->host, p->port);
		return;
	}
	peer_drop(p, what & BEV_EVENT_EOF ? "closed by peer" : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void peer_connect(struct tm_peer *p)
{
	if (p->bev)
		return;
	/* The socket is made here, not by libevent's connect, so that it has its
	 * congestion control before it connects (server_cc_before_connect). */
	evutil_socket_t fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		server_cc_before_connect(p->b, fd);
		p->bev = bufferevent_socket_new(p->b->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (!p->bev)
			evutil_closesocket(fd);
	}
	if (!p->bev) {
		peer_retry_later(p);
		return;
	}
	bufferevent_setcb(p->bev, peer_read_cb, NULL, peer_event_cb, p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
	/* Names resolve asynchronously on the loop (resolv.conf and /etc/hosts),
	 * never with a blocking getaddrinfo: a peer's name whose DNS server is
	 * unreachable (a stopped container) must not freeze this node. */
	if (!p->b->dns)
		p->b->dns = evdns_base_new(p->b->base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (bufferevent_socket_connect_hostname(p->bev, p->b->dns, AF_INET, p->host, p->port)) {
		/* Resolution failed at once: retry later. */
		bufferevent_free(p->bev);
		p->bev = NULL;
		peer_retry_later(p);
	}
}

static void peer_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	peer_connect(arg);
}

struct tm_peer *peer_new(struct tm_broker *b, int32_t node_id, const char *host, int port)
{
	struct tm_peer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->b = b;
	p->node_id = node_id;
	snprintf(p->host, sizeof(p->host), "%s", host);
	p->port = port;
	p->backoff_ms = PEER_BACKOFF_MS_MIN;
	p->next_corr = 1;
	snprintf(p->client_id, sizeof(p->client_id), "tidemark-%d", b->cfg.node_id);
	p->retry_ev = evtimer_new(b->base, peer_retry_cb, p);
	TM_ASSERT(p->retry_ev != NULL);
	return p;
}

void peer_free(struct tm_peer *p)
{
	if (!p)
		return;
	if (p->bev)
		bufferevent_free(p->bev);
	p->bev = NULL;
	peer_frame_release(p->pend);
	peer_fail_all(p, -ECANCELED);
	event_free(p->retry_ev);
	free(p);
}

int peer_send(struct tm_peer *p, int16_t api_key, int16_t api_version, const struct tm_wbuf *body, int timeout_ms,
	      peer_resp_cb cb, void *arg)
{
	if (body->err)
		return -ENOMEM;
	struct peer_call *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	peer_connect(p);
	if (!p->bev) {
		free(c);
		return -ECONNRESET;
	}
	c->correlation_id = p->next_corr++;
	if (p->next_corr == INT32_MAX)
		p->next_corr = 1;
	c->api_key = api_key;
	c->api_version = api_version;
	c->deadline_ms = tm_mono_ms() + timeout_ms;
	c->cb = cb;
	c->arg = arg;
	struct kafka_request_header h = { api_key, api_version, c->correlation_id, kstr_c(p->client_id) };
	struct tm_wbuf w;
	wbuf_init(&w);
	wr_i32(&w, 0);
	kafka_request_header_encode(&w, &h);
	wr_bytes(&w, body->buf, body->len);
	if (w.err) {
		wbuf_deinit(&w);
		free(c);
		return -ENOMEM;
	}
	wr_patch_i32(&w, 0, (int32_t)(w.len - 4));
	/* Buffered until the connection is up; libevent writes it then. */
	bufferevent_write(p->bev, w.buf, w.len);
	wbuf_deinit(&w);
	if (p->tail)
		p->tail->next = c;
	else
		p->head = c;
	p->tail = c;
	p->inflight++;
	return 0;
}

bool peer_connected(const struct tm_peer *p)
{
	return p->connected;
}

int peer_inflight(const struct tm_peer *p)
{
	return p->inflight;
}

int32_t peer_node_id(const struct tm_peer *p)
{
	return p->node_id;
}

void peer_tick(struct tm_peer *p, int64_t now_ms)
{
	/* Responses come in order, so a late head means the connection is stuck:
	 * reset it, failing everything in flight. */
	if (p->head && now_ms > p->head->deadline_ms && p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
		peer_frame_release(p->pend);
		p->pend = NULL;
		p->connected = false;
		peer_fail_all(p, -ETIMEDOUT);
		peer_connect(p);
	}
}
