/*
 * replica.h — this node as a follower: one fetcher per source leader pulls
 * the partitions this node follows with Fetch (replica_state.replica_id =
 * this node), appends what arrives with log_append_replica_inplace
 * (written from the response's frame, no copy), takes the leader's high
 * watermark, and truncates a divergent suffix when the leader
 * answers with a DivergingEpoch (KIP-595 style truncation, replacing the
 * older OffsetsForLeaderEpoch round trip).  Also the leader's side of
 * AlterPartition: sending an ISR change to the active controller.
 *
 * One fetch is out per fetcher at a time.  The next is sent once every
 * append of the previous answer is in the file, so the offset a follower
 * reports (its fetch offset) never covers bytes it has not written.  The
 * leader long-polls (replica.fetch.wait.max.ms), so an idle follower costs
 * two requests a second.  After an error a partition (or the whole fetcher)
 * waits replica.fetch.backoff.ms, or until the metadata moves it.
 *
 * Wire: Fetch v15 (topic ids, ReplicaState, last_fetched_epoch), on the
 * leader's inter-broker listener (inter.broker.listener.name, else its first
 * PLAINTEXT listener).  AlterPartition v2 on the controller listener.
 */
#ifndef TM_BROKER_REPLICA_H
#define TM_BROKER_REPLICA_H

#include <stdint.h>

#include "broker/broker.h"

struct tm_partition;

/* Starts fetches for partitions this node follows; frees idle fetchers. */
void replication_tick(struct tm_broker *b, int64_t now_ms);
/* Frees every fetcher (shutdown); their fetch callbacks end with -ECANCELED. */
void replication_stop(struct tm_broker *b);
/* Sends AlterPartition for p with the proposed ISR; partition_alter_done()
 * runs with the answer.  0, or -errno when nothing was sent. */
int replica_alter_partition(struct tm_partition *p, const int32_t *isr, int n);

#endif
