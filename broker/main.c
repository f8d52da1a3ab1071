/*
 * main.c — `tidemark [server.properties] [--override key=value ...]`.
 *
 * With no arguments: a single-node cluster (broker + controller) on
 * localhost:9092 / 9093 with data under ./data, storage formatted on first
 * start.  `tidemark format --config FILE [--cluster-id ID]` formats storage
 * explicitly for operators who want that step.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/node.h"
#include "common/tm_log.h"

extern char **environ;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tidemark [server.properties] [--override key=value ...]\n"
		"       tidemark format [server.properties] [--override key=value ...] [--cluster-id ID]\n"
		"       tidemark --version\n"
		"Settings use Apache Kafka's names (node.id, process.roles, listeners, log.dirs ...);\n"
		"KAFKA_* environment variables override the file, --override overrides both.\n");
}

int main(int argc, char **argv)
{
	struct tm_config cfg;
	char err[512] = "";
	const char *config_path = NULL;
	const char *cluster_id = NULL;
	bool format = false;
	int first = 1;

	config_defaults(&cfg);
	if (argc > 1 && !strcmp(argv[1], "format")) {
		format = true;
		first = 2;
	}
	/* First pass: the file, so that env and overrides win over it. */
	for (int i = first; i < argc; i++) {
		if (!strcmp(argv[i], "--override") || !strcmp(argv[i], "--cluster-id")) {
			i++;
		} else if (!strcmp(argv[i], "--version")) {
			printf("tidemark %s\n", TM_VERSION);
			return 0;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
			config_path = argv[++i];
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "tidemark: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		} else if (!config_path) {
			config_path = argv[i];
		} else {
			fprintf(stderr, "tidemark: more than one config file given (%s, %s)\n", config_path, argv[i]);
			return 2;
		}
	}
	if (config_path && config_load_file(&cfg, config_path, err, sizeof(err))) {
		fprintf(stderr, "tidemark: %s\n", err);
		return 2;
	}
	if (config_load_env(&cfg, environ, err, sizeof(err))) {
		fprintf(stderr, "tidemark: %s (from the environment)\n", err);
		return 2;
	}
	for (int i = first; i < argc; i++) {
		if (!strcmp(argv[i], "--cluster-id")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "tidemark: --cluster-id needs a value\n");
				return 2;
			}
			cluster_id = argv[++i];
			continue;
		}
		if (strcmp(argv[i], "--override"))
			continue;
		if (i + 1 >= argc || !strchr(argv[i + 1], '=')) {
			fprintf(stderr, "tidemark: --override needs key=value\n");
			return 2;
		}
		char kv[4096];
		snprintf(kv, sizeof(kv), "%s", argv[++i]);
		char *eq = strchr(kv, '=');
		*eq = 0;
		if (config_set(&cfg, kv, eq + 1, err, sizeof(err))) {
			fprintf(stderr, "tidemark: %s (from --override)\n", err);
			return 2;
		}
	}
	if (config_validate(&cfg, err, sizeof(err))) {
		fprintf(stderr, "tidemark: %s\n", err);
		return 2;
	}
	if (format)
		return node_format(&cfg, cluster_id) ? 1 : 0;
	if (server_check_loopback_cc(&cfg, err, sizeof(err))) {
		fprintf(stderr, "tidemark: %s\n", err);
		return 2;
	}
	return node_run(&cfg) ? 1 : 0;
}
