/*
 * groups.h — the group coordinator (classic consumer-group protocol) and
 * committed offsets, kept in the internal __consumer_offsets topic.
 */
#ifndef TM_BROKER_GROUPS_H
#define TM_BROKER_GROUPS_H

#include <stdint.h>

#include "broker/broker.h"

int groups_start(struct tm_broker *b);
void groups_stop(struct tm_broker *b);
/* Timers: session timeouts, rebalance timeouts, offset expiry. now_ms is monotonic. */
void groups_tick(struct tm_broker *b, int64_t now_ms);

#endif
