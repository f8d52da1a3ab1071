/*
 * server.c — listeners, connections and request framing on the libevent loop.
 *
 * Frame:  | length i32 | request header | request body |   (length excludes itself)
 *
 * A length below 8 or above socket.request.max.bytes closes the connection
 * with a log line before any byte of the body is buffered.  Requests on one
 * connection are dispatched in arrival order and answered in that order:
 * each gets a slot in conn->queue, and only the done prefix of the queue is
 * written.  At most CONN_INFLIGHT_MAX requests per connection are in progress,
 * and while their frames add up to CONN_INFLIGHT_BYTES_MAX or more no further
 * one is started; beyond that the connection stops reading (TCP pushes back
 * on the client), as does an output buffer above CONN_OUTPUT_HIGH_BYTES.
 *
 * Buffers: a frame is copied once out of the input evbuffer into its own
 * allocation (the request's decoded fields point into it); a response body
 * of CONN_BODY_REF_MIN_BYTES or more is handed to the output evbuffer by
 * reference, not copied.  One read or write callback moves up to
 * CONN_IO_MAX_SINGLE bytes; a large frame is read from the socket (with
 * SSL_read on TLS) straight into its own buffer (conn_fill_pending), not in
 * libevent's steps through the input evbuffer.  server_start() fixes glibc's heap thresholds
 * so these large buffers reuse freed heap instead of faulting in fresh pages
 * (server_tune_heap, docs/benchmarks.md).
 */
#include "broker/broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <limits.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "broker/tls.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"
#include "common/tm_time.h"
#include "storage/io.h"

#define CONN_INFLIGHT_MAX 32
#define CONN_OUTPUT_HIGH_BYTES (8u << 20)
/* Frame bytes of one connection's requests in progress above which it stops
 * reading: each in-flight produce holds its frame and the log's copy, so
 * this bounds a producer's share of the broker's memory (32 requests of
 * 1 MiB were 70 MiB of RSS). */
#define CONN_INFLIGHT_BYTES_MAX ((size_t)16 << 20)
/* Response bodies from this size on are handed to the output evbuffer by
 * reference instead of copied. */
#define CONN_BODY_REF_MIN_BYTES 4096
/* Bytes one read or write callback of a connection moves at most (libevent's
 * default is 16 KiB: a 1 MiB produce or fetch took 64 loop turns). */
#define CONN_IO_MAX_SINGLE (1 << 20)
/* What libevent reads of a TLS connection per callback: small requests fit,
 * the rest of a large frame is read by conn_fill_pending into the frame. */
#define CONN_TLS_MAX_SINGLE_READ (16 * 1024)
/* A frame with at least this much still to come is read into its
 * own buffer (conn_fill_pending); a smaller one through the input evbuffer. */
#define CONN_READ_DIRECT_MIN 4096
struct tm_conn {
	struct tm_conn *prev, *next;  /* the broker's connections */
	struct tm_broker *b;
	struct bufferevent *bev;
	const struct tm_listener *listener;
	bool on_controller;           /* listener is in controller.listener.names */
	struct tm_req *head, *tail;   /* in-order queue of requests */
	int inflight;
	size_t inflight_bytes;        /* frame bytes of the requests in the queue */
	uint8_t *pend;                /* a frame being read into its own buffer, or NULL */
	size_t pend_len, pend_have;
	int busy;                     /* >0 while conn_read_cb runs: frees are deferred */
	bool closing;                 /* close once the queue's output is written */
	bool broken;                  /* the output ends inside a frame: write nothing more */
	bool dead;                    /* free as soon as not busy */
	bool read_paused;
	bool out_tail_big;            /* the output's last chain is a file range or a large reference */
	struct evbuffer *scratch;     /* see conn_out_copy; NULL until first needed */
	char peer[160];
	char peer_host[48];           /* "/" + address */
};

struct tm_listen_ctx {
	struct tm_broker *b;
	const struct tm_listener *l;
	bool controller; /* l is in controller.listener.names */
};

static struct tm_listen_ctx listen_ctx[TM_MAX_LISTENERS];

static void req_free(struct tm_req *r)
{
	for (struct tm_file_range *f = r->files; f; f = f->next)
		if (f->fd >= 0)
			close(f->fd);
	arena_deinit(&r->arena);
	wbuf_deinit(&r->resp);
	free(r->frame);
	free(r);
}

static void conn_free(struct tm_conn *c)
{
	for (struct tm_req *r = c->head; r;) {
		struct tm_req *next = r->next;
		r->next = NULL;
		if (r->done)
			req_free(r);
		else
			r->conn = NULL; /* its handler finishes and frees it later */
		r = next;
	}
	c->head = c->tail = NULL;
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->b->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->b->conn_count--;
	if (c->scratch)
		evbuffer_free(c->scratch);
	free(c->pend);
	free(c);
}

/* Frees c now, or when the read loop that is running on it returns. */
static void conn_kill(struct tm_conn *c, const char *why)
{
	if (why)
		tm_info("server", "connection %s closed: %s", c->peer, why);
	c->dead = true;
	if (!c->busy)
		conn_free(c);
}

/* Room for one more request: fewer than CONN_INFLIGHT_MAX in progress and
 * their frames under CONN_INFLIGHT_BYTES_MAX (one request always fits). */
static bool conn_may_take(const struct tm_conn *c)
{
	return c->inflight < CONN_INFLIGHT_MAX &&
	       (c->inflight == 0 || c->inflight_bytes < CONN_INFLIGHT_BYTES_MAX);
}

static bool conn_is_tls(const struct tm_conn *c)
{
	return c->listener->security == TM_SEC_SSL;
}

/* TLS connections read ahead (tls.c): OpenSSL pulls whole socket reads into
 * its buffer, so records can sit there while the socket is empty.  libevent
 * reads them only on a socket event, and it stops short of them after a
 * handshake, after max_single_read bytes and while reading was paused; so
 * whenever that may have happened and reading is on, its read event is run
 * once more (it reads what is buffered, or finds the socket empty and waits). */
static void conn_tls_pump(struct tm_conn *c)
{
	if (!conn_is_tls(c) || c->read_paused || c->closing || c->dead)
		return;
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	if (ssl && SSL_has_pending(ssl))
		event_active(&c->bev->ev_read, EV_READ, 1);
}

static void conn_update_reading(struct tm_conn *c)
{
	size_t out = evbuffer_get_length(bufferevent_get_output(c->bev));
	bool pause = !conn_may_take(c) || out > CONN_OUTPUT_HIGH_BYTES || c->closing;
	if (pause && !c->read_paused) {
		bufferevent_disable(c->bev, EV_READ);
		c->read_paused = true;
	} else if (!pause && c->read_paused) {
		bufferevent_enable(c->bev, EV_READ);
		c->read_paused = false;
		conn_tls_pump(c);
	}
}

static void conn_read_cb(struct bufferevent *bev, void *arg);

static void body_release(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

/* Copies a few bytes to the end of the output.  evbuffer_add sizes a new
 * chain after the last one's buffer: after a file range at position P that
 * is P plus its length (a response header after a fetch 56 MB into a segment
 * was a 64 MiB malloc, an mmap and a munmap), after a 1 MiB reference 1 MiB.
 * So bytes that follow such a chain go through the connection's scratch
 * evbuffer, which makes a chain of their own size, and are moved over.
 * 0, or -ENOMEM. */
static int conn_out_copy(struct tm_conn *c, struct evbuffer *out, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (!c->out_tail_big)
		return evbuffer_add(out, data, len) == 0 ? 0 : -ENOMEM;
	if (!c->scratch && !(c->scratch = evbuffer_new()))
		return -ENOMEM;
	if (evbuffer_add(c->scratch, data, len) != 0 || evbuffer_add_buffer(out, c->scratch) != 0) {
		evbuffer_drain(c->scratch, evbuffer_get_length(c->scratch));
		return -ENOMEM;
	}
	c->out_tail_big = false;
	return 0;
}

/* Appends a response body to the output.  A large one (a Fetch answer)
 * moves into the evbuffer without a copy: the buffer is taken from the
 * wbuf and freed by libevent once written.  0, or -ENOMEM. */
static int conn_add_body(struct tm_conn *c, struct evbuffer *out, struct tm_wbuf *body)
{
	if (body->len < CONN_BODY_REF_MIN_BYTES)
		return conn_out_copy(c, out, body->buf, body->len);
	size_t len;
	uint8_t *buf = wbuf_steal(body, &len);
	if (evbuffer_add_reference(out, buf, len, body_release, NULL) != 0) {
		int rc = conn_out_copy(c, out, buf, len);
		free(buf);
		return rc;
	}
	c->out_tail_big = true;
	return 0;
}

/* A body with holes (struct tm_wbuf_hole): the encoded bytes between them
 * are copied, each hole is its file range, sent with sendfile when the
 * output drains to the socket.  The range's descriptor moves to libevent.
 * 0, or -ENOMEM (the connection must close: the frame is incomplete). */
static int conn_add_body_with_holes(struct tm_conn *c, struct evbuffer *out, struct tm_wbuf *body)
{
	size_t at = 0;
	for (size_t i = 0; i < body->n_holes; i++) {
		const struct tm_wbuf_hole *h = &body->holes[i];
		struct tm_file_range *f = h->tag;
		TM_ASSERT(h->at >= at);
		TM_ASSERT(f->fd >= 0);
		if (conn_out_copy(c, out, body->buf + at, h->at - at) != 0)
			return -ENOMEM;
		at = h->at;
		struct evbuffer_file_segment *seg =
			evbuffer_file_segment_new(f->fd, f->pos, (ev_off_t)h->len, EVBUF_FS_CLOSE_ON_FREE);
		if (!seg)
			return -ENOMEM;
		f->fd = -1;
		int rc = evbuffer_add_file_segment(out, seg, 0, (ev_off_t)h->len);
		evbuffer_file_segment_free(seg); /* the evbuffer holds its own reference */
		if (rc != 0)
			return -ENOMEM;
		c->out_tail_big = true;
	}
	return conn_out_copy(c, out, body->buf + at, body->len - at);
}

/* Has libevent write the output once this loop turn's callbacks are done
 * (plaintext: the socket bufferevent's write callback), rather than first
 * asking epoll whether the socket is writable.  That would cost two
 * epoll_ctl calls (EPOLLOUT on, then off once the output is empty) and one
 * more turn of the loop per response.  The event is added as well as made
 * active: if the socket takes everything, libevent's removal of the event
 * cancels the addition before either reaches epoll; if not, the event stays
 * added and epoll says when to go on. */
static void conn_write_soon(struct tm_conn *c)
{
	if (conn_is_tls(c) || !(bufferevent_get_enabled(c->bev) & EV_WRITE))
		return;
	event_add(&c->bev->ev_write, NULL);
	event_active(&c->bev->ev_write, EV_WRITE, 1);
}

/* Writes the done prefix of the queue. */
static void conn_flush_queue(struct tm_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t out_before = evbuffer_get_length(out);
	while (c->head && c->head->done) {
		struct tm_req *r = c->head;
		c->head = r->next;
		if (!c->head)
			c->tail = NULL;
		c->inflight--;
		c->inflight_bytes -= r->frame_len;
		if (!r->no_response && !c->broken) {
			struct tm_wbuf hdr;
			wbuf_init(&hdr);
			wr_i32(&hdr, 0);
			kafka_response_header_encode(&hdr, r->hdr.api_key, r->hdr.api_version, r->hdr.correlation_id);
			size_t body_len = r->resp.len + r->resp.hole_bytes;
			if (hdr.err || r->resp.err || body_len > INT32_MAX / 2) {
				tm_error("server", "connection %s: could not encode a response (out of memory); closing", c->peer);
				c->closing = true;
			} else {
				wr_patch_i32(&hdr, 0, (int32_t)(hdr.len - 4 + body_len));
				c->b->metrics.response_bytes += hdr.len + body_len;
				int rc = conn_out_copy(c, out, hdr.buf, hdr.len);
				if (!rc)
					rc = r->resp.n_holes == 0 ? conn_add_body(c, out, &r->resp)
								  : conn_add_body_with_holes(c, out, &r->resp);
				if (rc) {
					/* Part of the frame is queued: nothing after it could
					 * be read right, so nothing more is written. */
					tm_error("server", "connection %s: could not queue a response (out of memory); closing",
						 c->peer);
					c->closing = true;
					c->broken = true;
				}
			}
			wbuf_deinit(&hdr);
		}
		req_free(r);
	}
	if (evbuffer_get_length(out) > out_before)
		conn_write_soon(c);
}

/* True when the input holds a whole frame (or a length the read callback
 * will refuse): worth running the read loop for without new bytes. */
static bool conn_has_frame(struct tm_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	if (c->pend)
		return evbuffer_get_length(in) > 0; /* more of the frame being read */
	uint8_t lenb[4];
	if (evbuffer_copyout(in, lenb, 4) < 4)
		return false;
	int32_t len = (int32_t)tm_load_be32(lenb);
	return len < 8 || len > c->b->cfg.socket_request_max_bytes || evbuffer_get_length(in) >= (size_t)len + 4;
}

/* After the queue moved: close a closing connection whose output is out,
 * else update back-pressure.  With `resume`, also process frames that were
 * already buffered while the connection had no free request slot (libevent
 * will not call the read callback again for bytes it already delivered). */
static void conn_progress(struct tm_conn *c, bool resume)
{
	conn_flush_queue(c);
	if (c->closing) {
		if (!c->head && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_kill(c, NULL);
		else
			conn_update_reading(c);
		return;
	}
	conn_update_reading(c);
	if (resume && !c->busy && !c->read_paused && conn_has_frame(c))
		conn_read_cb(c->bev, c);
}

void req_finish(struct tm_req *req)
{
	struct tm_conn *c = req->conn;
	req->done = true;
	if (!c) {
		req_free(req);
		return;
	}
	conn_progress(c, true);
}

void req_fail_decode(struct tm_req *req)
{
	if (req->conn) {
		const struct kafka_api_desc *d = kafka_api_lookup(req->hdr.api_key);
		tm_warn("server", "connection %s: malformed %s v%d request (correlation id %d); closing the connection",
			req->conn->peer, d ? d->name : "?", req->hdr.api_version, req->hdr.correlation_id);
		req->conn->closing = true;
	}
	req->no_response = true;
	req_finish(req);
}

/* libevent 2.1 reads a socket at most 4 KiB per readv (EVBUFFER_MAX_READ,
 * whatever the bufferevent's read limit), with a FIONREAD ioctl before each:
 * a 1 MiB produce was 256 readv, 256 ioctl and 256 loop turns, and then one
 * more copy out of the evbuffer.  So a frame with at least
 * CONN_READ_DIRECT_MIN bytes still to come gets its own buffer at once
 * (c->pend): what the input evbuffer holds of it is moved there, and the rest
 * is read from the socket straight into it, as much as the socket holds per
 * call.  On TLS libevent would decrypt all of it into the evbuffer first (one
 * more copy of every byte), so its reads stop at CONN_TLS_MAX_SINGLE_READ and
 * the rest is decrypted by SSL_read straight into the frame.  End of file
 * and errors are left for libevent's next read to report.  Returns true when
 * the frame is whole. */
static bool conn_fill_pending(struct tm_conn *c, struct evbuffer *in)
{
	size_t need = c->pend_len - c->pend_have;
	size_t avail = evbuffer_get_length(in);
	if (avail > 0) {
		size_t n = avail < need ? avail : need;
		evbuffer_remove(in, c->pend + c->pend_have, n);
		c->pend_have += n;
		need -= n;
	}
	if (need > 0 && conn_is_tls(c)) {
		/* TLS: decrypt into the frame; OpenSSL's errors and end of stream
		 * are left for libevent's next read to report. */
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
		while (ssl && need > 0) {
			int got = SSL_read(ssl, c->pend + c->pend_have, need > INT_MAX ? INT_MAX : (int)need);
			if (got <= 0) {
				ERR_clear_error();
				break;
			}
			c->pend_have += (size_t)got;
			need -= (size_t)got;
		}
	} else if (need > 0) {
		size_t got = server_read_into(in, bufferevent_getfd(c->bev), c->pend + c->pend_have, need);
		c->pend_have += got;
		need -= got;
	}
	return need == 0;
}

size_t server_read_into(struct evbuffer *in, int fd, uint8_t *dst, size_t need)
{
	size_t got = 0;
	int moved = in ? evbuffer_remove(in, dst, need) : 0;
	if (moved > 0)
		got = (size_t)moved;
	if (got >= need)
		return got;
	/* in is empty now: what the socket holds after this frame (the next
	 * request of a client that pipelines them) goes there in the same
	 * call, instead of waiting for the next loop turn's epoll_wait, FIONREAD
	 * and readv */
	struct iovec iov[2] = { { dst + got, need - got }, { NULL, 0 } };
	struct evbuffer_iovec ahead;
	int nv = 1;
	/* a bufferevent's input is frozen at its end but while libevent reads
	 * into it; so is it here, for the same purpose */
	if (in)
		evbuffer_unfreeze(in, 0);
	if (in && evbuffer_reserve_space(in, SERVER_READ_AHEAD, &ahead, 1) == 1) {
		iov[1].iov_base = ahead.iov_base;
		iov[1].iov_len = ahead.iov_len < SERVER_READ_AHEAD ? ahead.iov_len : SERVER_READ_AHEAD;
		nv = 2;
	}
	ssize_t n = readv(fd, iov, nv);
	if (n > 0 && (size_t)n > need - got) {
		ahead.iov_len = (size_t)n - (need - got);
		evbuffer_commit_space(in, &ahead, 1);
		got = need;
	} else if (n > 0) {
		got += (size_t)n;
	}
	if (in)
		evbuffer_freeze(in, 0);
	return got;
}

/* A client with Nagle's algorithm on (librdkafka's default) holds the rest
 * of a request back until what it already sent is acknowledged, and on a
 * connection that answers requests Linux delays its ACKs (tens of ms).  Over
 * TLS a request leaves the client as several records, so every produce waited
 * for that timer: ack latency p50 7.7 ms at 5,000 msg/s and 30 ms at 100
 * msg/s instead of 1 ms.  So on TLS connections, and whenever a frame is
 * only partly here, the data read so far is acknowledged at once. */
static void conn_ack_now(struct tm_conn *c)
{
	int one = 1;
	(void)setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct tm_conn *c = arg;
	struct tm_broker *b = c->b;
	struct evbuffer *in = bufferevent_get_input(bev);
	c->busy++;
	while (!c->closing && !c->dead && conn_may_take(c)) {
		uint8_t *frame;
		size_t len;
		if (c->pend) {
			if (!conn_fill_pending(c, in))
				break;
			frame = c->pend;
			len = c->pend_len;
			c->pend = NULL;
		} else {
			uint8_t lenb[4];
			if (evbuffer_copyout(in, lenb, 4) < 4)
				break;
			int32_t l32 = (int32_t)tm_load_be32(lenb);
			if (l32 < 8 || l32 > b->cfg.socket_request_max_bytes) {
				tm_warn("server", "connection %s: request frame of %d bytes is outside [8, socket.request.max.bytes=%d]; closing",
					c->peer, l32, b->cfg.socket_request_max_bytes);
				c->dead = true;
				break;
			}
			len = (size_t)l32;
			size_t have = evbuffer_get_length(in);
			if (have < len + 4 && len + 4 - have >= CONN_READ_DIRECT_MIN) {
				if (!(c->pend = malloc(len))) {
					tm_error("server", "connection %s: out of memory for a %zu-byte request; closing", c->peer, len);
					c->dead = true;
					break;
				}
				c->pend_len = len;
				c->pend_have = 0;
				evbuffer_drain(in, 4);
				continue;
			}
			if (have < len + 4)
				break;
			if (!(frame = malloc(len))) {
				tm_error("server", "connection %s: out of memory for a %zu-byte request; closing", c->peer, len);
				c->dead = true;
				break;
			}
			evbuffer_drain(in, 4);
			evbuffer_remove(in, frame, len);
		}
		struct tm_req *r = calloc(1, sizeof(*r));
		if (!r) {
			free(frame);
			tm_error("server", "connection %s: out of memory for a %zu-byte request; closing", c->peer, len);
			c->dead = true;
			break;
		}
		b->metrics.request_bytes += (uint64_t)len + 4;
		r->b = b;
		r->conn = c;
		r->frame = frame;
		r->frame_len = len;
		r->arrival_ms = tm_mono_ms();
		r->listener_name = c->listener->name;
		r->on_controller = c->on_controller;
		r->zero_copy = !conn_is_tls(c);
		memcpy(r->peer_host, c->peer_host, sizeof(r->peer_host));
		arena_init(&r->arena, 0);
		wbuf_init(&r->resp);
		if (c->tail)
			c->tail->next = r;
		else
			c->head = r;
		c->tail = r;
		c->inflight++;
		c->inflight_bytes += r->frame_len;
		if (dispatch_request(r)) {
			/* dispatch logged why; answer nothing and close after earlier responses. */
			c->closing = true;
			r->no_response = true;
			req_finish(r);
		}
	}
	if (!c->dead && (conn_is_tls(c) || c->pend || evbuffer_get_length(in) > 0))
		conn_ack_now(c);
	conn_tls_pump(c);
	c->busy--;
	if (c->dead) {
		b->metrics.connections_closed_protocol_error++;
		conn_kill(c, "protocol error");
	} else {
		conn_progress(c, false);
	}
	broker_kick_io(b);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct tm_conn *c = arg;
	(void)bev;
	conn_progress(c, true);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tm_conn *c = arg;
	(void)bev;
	if (what & BEV_EVENT_CONNECTED) { /* TLS handshake done */
		conn_tls_pump(c); /* the first request may have come with it */
		return;
	}
	if (what & BEV_EVENT_EOF)
		tm_debug("server", "connection %s closed by peer", c->peer);
	else if (what & BEV_EVENT_ERROR)
		tm_debug("server", "connection %s: %s", c->peer, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	conn_kill(c, NULL);
}

/*
 * Connections with this same host.  The loopback device has no queue to keep
 * short, yet a pacing congestion control (bbr, when no fq qdisc paces for
 * it) still spaces a 1 MiB Fetch answer out with a timer per burst there:
 * loopback moved a third as much under bbr as under reno, and a Fetch's
 * sendfile cost several times the CPU (docs/benchmarks.md, item 49).  So
 * every socket gets tidemark.loopback.congestion.control before it connects
 * (a listener's accepted sockets inherit it): the pacing that bbr switches
 * on when it starts on a socket, and that no later switch turns off, never
 * starts.  A connection that turns out to be with another host goes back to
 * the system's congestion control, which then starts as it always would.
 */
static char system_cc[16]; /* TCP_CA_NAME_MAX; "" until read */

static bool sock_is_local(int fd)
{
	struct sockaddr_storage peer, self;
	socklen_t pl = sizeof(peer), sl = sizeof(self);
	if (getpeername(fd, (struct sockaddr *)&peer, &pl) || getsockname(fd, (struct sockaddr *)&self, &sl) ||
	    peer.ss_family != self.ss_family)
		return false;
	if (peer.ss_family == AF_INET) {
		const struct in_addr *p = &((const struct sockaddr_in *)&peer)->sin_addr;
		const struct in_addr *s = &((const struct sockaddr_in *)&self)->sin_addr;
		return (ntohl(p->s_addr) >> 24) == 127 || p->s_addr == s->s_addr;
	}
	if (peer.ss_family == AF_INET6) {
		const struct in6_addr *p = &((const struct sockaddr_in6 *)&peer)->sin6_addr;
		const struct in6_addr *s = &((const struct sockaddr_in6 *)&self)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(p) || (IN6_IS_ADDR_V4MAPPED(p) && p->s6_addr[12] == 127) ||
		       IN6_ARE_ADDR_EQUAL(p, s);
	}
	return false;
}

static bool cc_differs(const struct tm_config *cfg)
{
	return cfg->loopback_congestion_control[0] && system_cc[0] &&
	       strcmp(cfg->loopback_congestion_control, system_cc) != 0;
}

static int set_cc(int fd, const char *cc)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc)) ? -errno : 0;
}

void server_cc_before_connect(const struct tm_broker *b, int fd)
{
	if (!cc_differs(&b->cfg))
		return;
	int rc = set_cc(fd, b->cfg.loopback_congestion_control);
	if (rc)
		tm_debug("server", "TCP_CONGESTION %s: %s", b->cfg.loopback_congestion_control, strerror(-rc));
}

void server_cc_connected(const struct tm_broker *b, int fd)
{
	if (!cc_differs(&b->cfg) || sock_is_local(fd))
		return;
	int rc = set_cc(fd, system_cc);
	if (rc)
		tm_debug("server", "TCP_CONGESTION %s: %s", system_cc, strerror(-rc));
}

/* The congestion control a new socket gets: the system's. */
static void read_system_cc(int fd)
{
	socklen_t len = sizeof(system_cc) - 1;
	if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, system_cc, &len))
		len = 0;
	system_cc[len] = 0;
}

int server_check_loopback_cc(const struct tm_config *cfg, char *err, size_t err_len)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0; /* no socket to try it on: the listeners will say why */
	read_system_cc(fd);
	const char *cc = cfg->loopback_congestion_control;
	int rc = cc[0] ? set_cc(fd, cc) : 0;
	close(fd);
	if (!rc)
		return 0;
	snprintf(err, err_len,
		 "config tidemark.loopback.congestion.control=%s: %s; see /proc/sys/net/ipv4/tcp_available_congestion_control "
		 "(a module may need loading: modprobe tcp_%s) and tcp_allowed_congestion_control, or set it empty to keep "
		 "the system's",
		 cc, strerror(-rc), cc);
	return -EINVAL;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct tm_listen_ctx *ctx = arg;
	struct tm_broker *b = ctx->b;
	(void)l;
	(void)salen;
	struct tm_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->b = b;
	c->listener = ctx->l;
	c->on_controller = ctx->controller;
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
		port = ntohs(in4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(c->peer, sizeof(c->peer), "%s:%d/%s", host, port, ctx->l->name);
	snprintf(c->peer_host, sizeof(c->peer_host), "/%s", host);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	server_cc_connected(b, fd);
	if (ctx->l->security == TM_SEC_SSL) {
		SSL *ssl = b->tls_ctx ? SSL_new(b->tls_ctx) : NULL;
		c->bev = ssl ? bufferevent_openssl_socket_new(b->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
							     BEV_OPT_CLOSE_ON_FREE)
			     : NULL;
		if (!c->bev && ssl)
			SSL_free(ssl);
	} else {
		c->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!c->bev) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	b->conn_count++;
	b->metrics.connections_accepted++;
	c->next = b->conns;
	if (c->next)
		c->next->prev = c;
	b->conns = c;
	bufferevent_set_max_single_read(c->bev, ctx->l->security == TM_SEC_SSL ? CONN_TLS_MAX_SINGLE_READ
									 : CONN_IO_MAX_SINGLE);
	bufferevent_set_max_single_write(c->bev, CONN_IO_MAX_SINGLE);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	tm_debug("server", "connection %s accepted", c->peer);
}

static int listen_on(struct tm_broker *b, const struct tm_listener *l, int idx)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	char port[16];
	snprintf(port, sizeof(port), "%d", l->port);
	const char *host = (l->host[0] && strcmp(l->host, "0.0.0.0")) ? l->host : NULL;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		tm_error("server", "listener %s: cannot resolve %s: %s; check listeners=", l->name, l->host, gai_strerror(rc));
		return -EINVAL;
	}
	/* Prefer IPv4 for "localhost" so kafka clients resolving to 127.0.0.1 connect. */
	struct addrinfo *pick = res;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
		if (ai->ai_family == AF_INET) {
			pick = ai;
			break;
		}
	if (!host && pick->ai_family == AF_INET) {
		/* Unspecified host: all interfaces. */
		((struct sockaddr_in *)pick->ai_addr)->sin_addr.s_addr = htonl(INADDR_ANY);
	}
	listen_ctx[idx].b = b;
	listen_ctx[idx].l = l;
	listen_ctx[idx].controller = config_is_controller_listener(&b->cfg, l->name);
	struct evconnlistener *el = evconnlistener_new_bind(
		b->base, accept_cb, &listen_ctx[idx], LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 512,
		pick->ai_addr, (int)pick->ai_addrlen);
	int err = errno;
	freeaddrinfo(res);
	if (!el) {
		tm_error("server", "listener %s: cannot listen on %s:%d: %s; is another process using the port?",
			 l->name, l->host[0] ? l->host : "*", l->port, strerror(err));
		return -err;
	}
	server_cc_before_connect(b, evconnlistener_get_fd(el));
	b->listeners[idx] = el;
	b->listener_cfg[idx] = l;
	tm_info("server", "listening on %s://%s:%d", l->name, l->host[0] ? l->host : "0.0.0.0", l->port);
	return 0;
}

/* Request frames, produce copies, fetch reads and responses are buffers of
 * up to a MiB or more, allocated and freed at the traffic's rate.  glibc's
 * defaults serve them from fresh mmap()s or trim the heap under them, so
 * every buffer comes back as new zeroed pages: a page fault per 4 KiB moved
 * (measured: 255,000 faults and a third of the broker's CPU per GiB
 * produced; see docs/benchmarks.md).  Fixing the thresholds keeps up to
 * SERVER_HEAP_KEEP_BYTES of freed heap for the next buffers; beyond it the
 * heap shrinks as before, and only buffers above SERVER_MMAP_MIN_BYTES get
 * their own mapping. */
#define SERVER_MMAP_MIN_BYTES (32 << 20)
#define SERVER_HEAP_KEEP_BYTES (64 << 20)

static void server_tune_heap(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	if (!mallopt(M_MMAP_THRESHOLD, SERVER_MMAP_MIN_BYTES) || !mallopt(M_TRIM_THRESHOLD, SERVER_HEAP_KEEP_BYTES))
		tm_warn("server", "mallopt refused the heap thresholds; large buffers will page-fault");
}

int server_start(struct tm_broker *b, bool controller_listeners)
{
	server_tune_heap();
	int probe = system_cc[0] ? -1 : socket(AF_INET, SOCK_STREAM, 0);
	if (probe >= 0) { /* main() read it already, unless this is a test */
		read_system_cc(probe);
		close(probe);
	}
	for (int i = 0; i < b->cfg.listener_count && !b->tls_ctx; i++) {
		if (b->cfg.listeners[i].security != TM_SEC_SSL)
			continue;
		b->tls_ctx = tls_server_ctx_new(&b->cfg);
		if (!b->tls_ctx)
			return -EINVAL;
	}
	for (int i = 0; i < b->cfg.listener_count; i++) {
		const struct tm_listener *l = &b->cfg.listeners[i];
		if (config_is_controller_listener(&b->cfg, l->name) != controller_listeners || b->listeners[i])
			continue;
		int rc = listen_on(b, l, i);
		if (rc)
			return rc;
	}
	b->listener_count = b->cfg.listener_count;
	return 0;
}

void server_stop(struct tm_broker *b)
{
	for (int i = 0; i < b->listener_count; i++) {
		if (b->listeners[i])
			evconnlistener_free(b->listeners[i]);
		b->listeners[i] = NULL;
	}
	b->listener_count = 0;
}

void server_close_connections(struct tm_broker *b)
{
	while (b->conns)
		conn_free(b->conns);
}

void server_free_tls(struct tm_broker *b)
{
	if (b->tls_ctx)
		SSL_CTX_free(b->tls_ctx);
	b->tls_ctx = NULL;
}

void broker_kick_io(struct tm_broker *b)
{
	if (b->io)
		io_flush(b->io);
}
