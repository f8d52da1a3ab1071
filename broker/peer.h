/*
 * peer.h — an outbound Kafka-protocol connection from this node to another
 * node: controller-to-controller Raft RPCs, broker registration and
 * heartbeats, follower fetches.
 *
 * A peer connects lazily, reconnects with backoff after a failure, sends
 * requests with fresh correlation ids and hands each response body to its
 * callback.  Every request ends exactly once: with its response (err 0), or
 * with -ECONNRESET when the connection drops, -ETIMEDOUT past its deadline,
 * -ECANCELED when the peer is freed.  Runs on the broker's loop thread.
 */
#ifndef TM_BROKER_PEER_H
#define TM_BROKER_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/bytes.h"

struct tm_broker;
struct tm_peer;

/* body: the response body (after the response header), valid during the
 * call, or for as long as the callback holds its frame (peer_frame_hold). */
typedef void (*peer_resp_cb)(void *arg, int err, struct tm_rd *body);

/* Inside a response callback: a reference to the frame that holds `body`,
 * which stays valid until peer_frame_release (a follower writes fetched
 * records to its log from it, without a copy).  NULL outside a callback. */
struct peer_frame;
struct peer_frame *peer_frame_hold(struct tm_peer *p);
void peer_frame_release(struct peer_frame *f); /* NULL is a no-op */

struct tm_peer *peer_new(struct tm_broker *b, int32_t node_id, const char *host, int port);
void peer_free(struct tm_peer *p);
/* Copies body (the request body, without header).  0, or -ENOMEM. */
int peer_send(struct tm_peer *p, int16_t api_key, int16_t api_version, const struct tm_wbuf *body, int timeout_ms,
	      peer_resp_cb cb, void *arg);
bool peer_connected(const struct tm_peer *p);
int peer_inflight(const struct tm_peer *p);
int32_t peer_node_id(const struct tm_peer *p);
/* Expires requests past their deadline; the broker calls it from its tick. */
void peer_tick(struct tm_peer *p, int64_t now_ms);

#endif
