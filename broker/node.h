/*
 * node.h — one Tidemark process from start to stop: storage directory and
 * meta.properties, the event loop, the io_uring ring, the controller, the
 * listeners, signals, and a clean shutdown.
 */
#ifndef TM_BROKER_NODE_H
#define TM_BROKER_NODE_H

#include "broker/config.h"

/* Runs until SIGINT/SIGTERM; returns 0 after a clean stop, -errno when the
 * node could not start or stopped because its log directory failed (the
 * reason is logged). */
int node_run(const struct tm_config *cfg);
/* Formats empty storage with a cluster id (given, configured or derived). */
int node_format(const struct tm_config *cfg, const char *cluster_id);

#endif
