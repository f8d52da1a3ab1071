/*
 * broker.h — the process: one libevent loop thread that owns every piece of
 * broker state (connections, partitions, groups, the metadata image).  No
 * locks: anything that completes elsewhere (io_uring) reports back through an
 * eventfd on this loop.
 *
 * Path of one produce request, socket to disk:
 *   server.c    conn_read_cb: frame (length-checked) -> struct tm_req
 *   dispatch.c  header decoded, version checked, handler looked up
 *   produce.c   body decoded, batches validated (protocol/records.c),
 *               partition_append()
 *   partition.c leader checks, log_append() (storage/log.c, io_uring write
 *               + linked fsync per flush policy), high watermark advanced on
 *               completion, waiting fetches woken
 *   server.c    req_finish(): response framed and queued in request order
 */
#ifndef TM_BROKER_H
#define TM_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#define TM_VERSION "0.1.0"

#include "broker/config.h"
#include "broker/metadata.h"
#include "broker/metrics.h"
#include "common/arena.h"
#include "common/bytes.h"
#include "common/tm_map.h"
#include "protocol/kafka_codec.h"
#include "protocol/kafka_msgs.h"

struct event_base;
struct event;
struct evconnlistener;
struct bufferevent;
struct evbuffer;
struct tm_io;
struct tm_conn;
struct tm_group_coordinator;
struct replica_fetcher;
struct tm_controller;
struct fetch_op;
struct tm_quorum;
struct evhttp;
struct evdns_base;
struct ssl_ctx_st;

/* One request from arrival to response.  Lives until its response is queued
 * (or dropped, when the connection closed while it was pending). */
/* A part of a response body that is a range of a file (Fetch records): the
 * response's wbuf has a hole tagged with it, and the connection sends it
 * with sendfile.  Lives in the request's arena; fd belongs to the request
 * until the connection takes it (then -1), and req_free closes what is left. */
struct tm_file_range {
	struct tm_file_range *next; /* the request's list */
	int fd;
	int64_t pos;
};

struct tm_req {
	struct tm_broker *b;
	struct tm_conn *conn;       /* NULL once the connection is gone */
	struct tm_req *next;        /* the connection's in-order queue */
	struct kafka_request_header hdr;
	struct tm_rd body;          /* the request body, after the header */
	uint8_t *frame;             /* owned copy of the request bytes; kstr fields point into it */
	size_t frame_len;
	struct tm_arena arena;      /* dies with the request */
	struct tm_wbuf resp;        /* the response body, without header */
	int64_t arrival_ms;
	bool done;
	bool no_response;           /* Produce acks=0 */
	bool zero_copy;             /* the connection can send file ranges (plaintext) */
	struct tm_file_range *files; /* file ranges the response refers to */
	const char *listener_name;
	bool on_controller;         /* came on a controller.listener.names listener */
	char peer_host[48];         /* the client's address, as Kafka shows it: "/127.0.0.1" */
};

struct tm_broker {
	struct tm_config cfg;
	struct event_base *base;
	struct tm_io *io;
	struct event *io_ev;
	struct event *tick_ev;
	struct event *start_ev;     /* start-up polling, until serving */
	struct event *sigint_ev, *sigterm_ev;
	struct evconnlistener *listeners[TM_MAX_LISTENERS];
	const struct tm_listener *listener_cfg[TM_MAX_LISTENERS];
	int listener_count;
	int conn_count;
	struct tm_conn *conns;      /* every open client connection */
	bool stopping;
	bool serving;                /* listeners up, registration committed */
	bool log_dir_failed;         /* a log went offline: node.c log_dir_tick */
	bool log_dir_handover;       /* its controlled shutdown has begun */
	bool log_dir_alone_said;
	struct tm_metrics metrics;
	struct evhttp *http;
	struct evdns_base *dns;      /* peers' name resolution (peer.c), made on first use */
	struct ssl_ctx_st *tls_ctx;  /* for SSL listeners */

	char cluster_id[32];        /* base64url of 16 bytes, 22 chars */
	int64_t started_ms;
	int64_t last_retention_ms;

	struct md_image md;         /* the cluster metadata, as committed */
	struct tm_map topics;       /* name -> struct tm_topic (live partitions) */
	struct tm_map topic_ids;    /* 16-byte id -> struct tm_topic */
	int64_t registered_epoch;   /* broker epoch of this process's registration, -1 before */
	bool registering_remote;
	bool heartbeat_inflight;
	int32_t heartbeat_leader;   /* the controller the heartbeat in flight went to */
	int64_t last_heartbeat_ms;
	int64_t pid_next, pid_end;  /* this node's current producer-id block */
	struct fetch_op *fetch_ops;  /* fetches waiting for data (api_fetch.c) */
	struct tm_controller *controller;
	struct tm_quorum *quorum;
	struct tm_group_coordinator *groups;
	struct replica_fetcher *fetchers; /* follower fetchers, one per source leader (replica.c) */
};

/* ---- server.c ---- */
/* Binds the controller listeners, or the client (broker) listeners. */
int server_start(struct tm_broker *b, bool controller_listeners);
void server_stop(struct tm_broker *b);
/* Moves up to `need` bytes of a frame into dst: first what the input
 * evbuffer `in` holds (NULL: none), then one readv(2) of the socket `fd` for
 * the rest, as much as it holds; that readv also reads up to
 * SERVER_READ_AHEAD bytes past the frame into `in` (the start of the next
 * frame, when one is there).  `in` is a bufferevent's input, frozen at its
 * end, and is so again on return.  Returns the bytes moved into dst; end of
 * file and errors are left for libevent's next read to report.  Frames of a
 * megabyte arrive in a few calls instead of libevent's 4 KiB steps. */
#define SERVER_READ_AHEAD 4096  /* libevent's own read size: a request header */
size_t server_read_into(struct evbuffer *in, int fd, uint8_t *dst, size_t need);
void server_free_tls(struct tm_broker *b);
/* Connections with this same host (a loopback peer, or the same address at
 * both ends) use tidemark.loopback.congestion.control instead of the
 * system's: a pacing one (bbr) halves a Fetch's speed on loopback
 * (docs/benchmarks.md).  server_cc_before_connect() gives it to a socket
 * before it connects or listens; server_cc_connected() puts a connection
 * with another host back on the system's. */
void server_cc_before_connect(const struct tm_broker *b, int fd);
void server_cc_connected(const struct tm_broker *b, int fd);
/* 0, or -EINVAL with why in err when this kernel lacks that congestion
 * control or will not let this process pick it; also reads the system's. */
int server_check_loopback_cc(const struct tm_config *cfg, char *err, size_t err_len);
/* Closes every client connection (shutdown); pending requests finish unanswered. */
void server_close_connections(struct tm_broker *b);
/* Queues req's response (req->resp holds the body) in request order and frees
 * req once written; with req->no_response only frees it. */
void req_finish(struct tm_req *req);
/* Submits queued io_uring work; call after anything that may have queued some. */
void broker_kick_io(struct tm_broker *b);

/* ---- dispatch.c ---- */
struct tm_api_handler {
	int16_t api_key;
	int16_t min_version, max_version;
	void (*handle)(struct tm_req *req);
	bool controller_listener;   /* also served on the CONTROLLER listener */
	bool forward;               /* a controller operation: other nodes forward it to the active controller */
};
const struct tm_api_handler *dispatch_lookup(int16_t api_key);
/* Handles a fully framed request (header not yet decoded). Returns 0, or
 * -EBADMSG / -EPROTO when the connection must close (logged by the caller). */
int dispatch_request(struct tm_req *req);
/* For ApiVersions: every implemented API with its version range. */
int dispatch_api_count(void);
const struct tm_api_handler *dispatch_api_at(int i);

/* A handler that could not decode its body calls this: logs and closes. */
void req_fail_decode(struct tm_req *req);

#endif
