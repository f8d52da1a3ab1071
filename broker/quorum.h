/*
 * quorum.h — the driver of the Raft core (raft/) for the metadata log.
 *
 * raft/ decides; this module does: it keeps the metadata log
 * (`__cluster_metadata-0`, a storage log of record batches, one batch per
 * Raft entry), the quorum-state file, the connections to the other voters,
 * and it translates the core's messages to and from Kafka's RPCs (Vote,
 * BeginQuorumEpoch, EndQuorumEpoch, Fetch on __cluster_metadata-0,
 * FetchSnapshot) on the CONTROLLER listener.  Entries below the quorum's
 * high watermark are applied, in order, to the metadata image on every
 * node; the active controller is the Raft leader.
 */
#ifndef TM_BROKER_QUORUM_H
#define TM_BROKER_QUORUM_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"

/* Runs once the proposal is applied to the image (err 0), or with
 * -ENOTCONN when leadership was lost before it committed. */
typedef void (*quorum_commit_cb)(struct tm_broker *b, void *arg, int err);

int quorum_start(struct tm_broker *b);
/* Graceful: a leader hands over with EndQuorumEpoch first. */
void quorum_shutdown(struct tm_broker *b);
void quorum_stop(struct tm_broker *b);
void quorum_tick(struct tm_broker *b, int64_t now_ms);

bool quorum_is_leader(const struct tm_broker *b);
/* Whether the metadata log is offline (a write or fsync failed). */
bool quorum_log_offline(const struct tm_broker *b);
int32_t quorum_leader_id(const struct tm_broker *b);
int32_t quorum_epoch(const struct tm_broker *b);
/* True once the image holds everything below the high watermark the node
 * learned after start-up: safe to serve clients from it. */
bool quorum_caught_up(const struct tm_broker *b);
/* The offset after the last metadata entry applied to the image. */
int64_t quorum_applied_offset(const struct tm_broker *b);
/* Host and port of voter `id`'s CONTROLLER listener; false if not a voter. */
bool quorum_voter_endpoint(const struct tm_broker *b, int32_t id, const char **host, int *port);
/* The connection to the active controller, or NULL (no leader / self). */
struct tm_peer *quorum_leader_peer(struct tm_broker *b);

/* Proposes one record batch of `count` records (built with base offset 0).
 * 0 with cb pending, or -ENOTCONN when this node is not the leader. */
int quorum_propose(struct tm_broker *b, const uint8_t *batch, size_t len, uint32_t count, quorum_commit_cb cb,
		   void *arg);

/* Controller-listener handlers. */
void api_vote(struct tm_req *req);
void api_begin_quorum_epoch(struct tm_req *req);
void api_end_quorum_epoch(struct tm_req *req);
void api_describe_quorum(struct tm_req *req);
void api_fetch_snapshot(struct tm_req *req);
/* Fetch for __cluster_metadata-0 (a follower or observer of the quorum). */
void quorum_handle_fetch(struct tm_req *req, struct kafka_fetch_request *in);

#endif
