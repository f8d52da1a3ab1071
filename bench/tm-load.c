/*
 * tm-load — the benchmark load generator: one librdkafka client program that
 * drives Tidemark and Apache Kafka the same way, so that a difference in the
 * figures is a difference between the brokers and not between the clients.
 *
 * It is not part of the broker (bench/run.sh builds it on its own, and the
 * broker's Makefile wildcards do not see bench/).
 *
 *   tm-load produce  -b HOST:PORT -t TOPIC -s BYTES (-n COUNT | -d SECONDS)
 *                    [-P PARTITIONS] [-a ACKS] [-r MSGS_PER_S] [-z CODEC]
 *                    [-l LINGER_MS] [-B BATCH_BYTES] [-w WARMUP_S] [-X k=v]...
 *   tm-load consume  -b ... -t TOPIC [-n COUNT] [-i IDLE_MS] [-d MAX_SECONDS]
 *   tm-load e2e      -b ... -t TOPIC -s BYTES -r MSGS_PER_S -d SECONDS
 *                    [-a ACKS] [-w WARMUP_S] [-l LINGER_MS] [-P PARTITIONS]
 *   tm-load create   -b ... -t TOPIC -P PARTITIONS [-R RF] [-C k=v]...
 *   tm-load delete   -b ... -t TOPIC
 *   tm-load probe    -b ... -t TOPIC [-d TIMEOUT_S]
 *   tm-load selftest
 *
 * Every mode prints exactly one JSON object on one line on stdout (what
 * bench/report.py parses); diagnostics go to stderr.  Exit status: 0 when the
 * run did what was asked (every record acknowledged / consumed), 1 when the
 * broker failed it (the JSON line says how), 2 on a usage error.
 *
 * Units: sizes in bytes, MB = 2^20 bytes (as Kafka's perf tools count),
 * latencies in microseconds.
 *
 * Latency histogram: HDR-like log buckets.  Values below 2^SUB_BITS are
 * counted exactly; above, each power of two [2^k, 2^(k+1)) is split into
 * 2^(SUB_BITS-1) equal sub-buckets, so a reported percentile is at most
 * 2^-(SUB_BITS-1) (1.6 % with SUB_BITS = 7) above the true value and never
 * below it.  The maximum is kept exactly.
 *
 * The e2e payload starts with a fixed header; the rest is incompressible
 * filler:
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    4 magic "TMLD"
 *        4    8 sequence number (little endian); UINT64_MAX marks a priming record
 *       12    8 intended send time, CLOCK_MONOTONIC ns (little endian)
 *
 * The intended send time (start + seq / rate), not the moment the client got
 * round to sending, is what latency is measured from, so a stalled producer
 * shows up as latency instead of hiding it (coordinated omission).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <librdkafka/rdkafka.h>

#define LOAD_RECORD_BYTES_MAX (16 * 1024 * 1024)
#define LOAD_EXTRA_CONF_MAX 32
#define LOAD_PAYLOAD_POOL 64
#define LOAD_CALL_RECORDS_MAX 100000
#define LOAD_HDR_BYTES 20
#define LOAD_MAGIC 0x444c4d54u /* "TMLD" little endian */

/* ---- histogram ---------------------------------------------------------- */

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_HALF (HIST_SUB / 2)
#define HIST_BUCKETS (64 - HIST_SUB_BITS + 1)
#define HIST_SLOTS (HIST_SUB + (HIST_BUCKETS - 1) * HIST_HALF)

struct hist {
	uint64_t counts[HIST_SLOTS];
	uint64_t total;
	uint64_t max;
	uint64_t min;
	double sum;
};

static void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static unsigned hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned b = msb - HIST_SUB_BITS + 1; /* >= 1 */
	unsigned sub = (unsigned)(v >> b);    /* in [HIST_HALF, HIST_SUB) */
	return HIST_SUB + (b - 1) * HIST_HALF + (sub - HIST_HALF);
}

/* The largest value that lands in slot idx (HdrHistogram's "highest
 * equivalent value"). */
static uint64_t hist_slot_high(unsigned idx)
{
	if (idx < HIST_SUB)
		return idx;
	unsigned b = (idx - HIST_SUB) / HIST_HALF + 1;
	uint64_t sub = (idx - HIST_SUB) % HIST_HALF + HIST_HALF;
	/* (sub + 1) << b wraps to 0 only for the last slot, whose bound is then
	 * UINT64_MAX, as it should be. */
	return ((sub + 1) << b) - 1;
}

static void hist_record(struct hist *h, uint64_t v)
{
	h->counts[hist_index(v)]++;
	h->total++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
	if (v < h->min)
		h->min = v;
}

/* Value at quantile q in [0, 1]: the smallest recorded slot whose cumulative
 * count reaches ceil(q * total), reported as that slot's upper bound clipped
 * to the exact maximum.  0 for an empty histogram. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	if (h->total == 0)
		return 0;
	double want = q * (double)h->total;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > h->total)
		rank = h->total;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_SLOTS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = hist_slot_high(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

static void hist_json(FILE *f, const char *name, const struct hist *h)
{
	fprintf(f,
		"\"%s\":{\"count\":%" PRIu64 ",\"min\":%" PRIu64 ",\"mean\":%.1f,\"p50\":%" PRIu64
		",\"p90\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "}",
		name, h->total, h->total ? h->min : 0, h->total ? h->sum / (double)h->total : 0.0,
		hist_quantile(h, 0.50), hist_quantile(h, 0.90), hist_quantile(h, 0.99),
		hist_quantile(h, 0.999), h->max);
}

/* ---- clocks, JSON strings ----------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000u), .tv_nsec = (long)(t % 1000000000u) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* xorshift64*: filler bytes that no codec can shrink, same on every run. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1;
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(rng_next(&s) >> 56);
}

/* ---- options -------------------------------------------------------------- */

struct opts {
	const char *mode;
	const char *brokers;
	const char *topic;
	long record_bytes;
	long long count;
	double duration_s;
	double warmup_s;
	int partitions;
	int replication;
	const char *acks;
	double rate;
	const char *compression;
	long linger_ms;
	long batch_bytes;
	long call_records; /* -m: records per rd_kafka_produce_batch call (0: one rd_kafka_producev each) */
	long idle_ms;
	const char *extra[LOAD_EXTRA_CONF_MAX]; /* -X: client properties */
	int extra_count;
	const char *topic_conf[LOAD_EXTRA_CONF_MAX]; /* -C: topic configs for create */
	int topic_conf_count;
	const char *stats_path; /* -S: librdkafka's statistics JSON, rewritten every second */
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* rd_kafka_flush that gives up within a second of SIGTERM/SIGINT, so that a
 * broker that died mid-run costs the harness seconds, not the message
 * timeout. */
static void flush_bounded(rd_kafka_t *rk, int timeout_ms)
{
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000u;
	uint64_t stop_deadline = 0;
	while (rd_kafka_outq_len(rk) > 0 && mono_ns() < deadline) {
		if (g_stop && !stop_deadline)
			stop_deadline = mono_ns() + 1000000000u;
		if (stop_deadline && mono_ns() > stop_deadline)
			break;
		rd_kafka_flush(rk, 100);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tm-load produce|consume|e2e|create|delete|probe|selftest -b HOST:PORT -t TOPIC\n"
		"  -s BYTES record size       -n COUNT records        -d SECONDS duration/timeout\n"
		"  -P PARTITIONS              -R REPLICATION_FACTOR   -a ACKS (0|1|all)\n"
		"  -r MSGS_PER_S (0 = unthrottled)                    -z none|gzip|snappy|lz4|zstd\n"
		"  -l LINGER_MS  -B BATCH_BYTES  -w WARMUP_S  -i IDLE_MS\n"
		"  -m RECORDS    produce: hand librdkafka this many records per call, each\n"
		"                call to the next partition in turn; only failures are\n"
		"                reported, so no send-to-ack latency (unthrottled runs only)\n"
		"  -S FILE       write librdkafka's statistics JSON there every second\n"
		"  -X key=value  librdkafka property (repeatable)\n"
		"  -C key=value  topic config for create (repeatable)\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->acks = "1";
	o->compression = "none";
	o->linger_ms = -1;
	o->batch_bytes = -1;
	o->idle_ms = 5000;
	o->replication = 1;
	if (argc < 2)
		return -EINVAL;
	o->mode = argv[1];
	int c;
	optind = 2;
	while ((c = getopt(argc, argv, "b:t:s:n:d:w:P:R:a:r:z:l:B:m:i:X:C:S:")) != -1) {
		switch (c) {
		case 'b': o->brokers = optarg; break;
		case 't': o->topic = optarg; break;
		case 's': o->record_bytes = atol(optarg); break;
		case 'n': o->count = atoll(optarg); break;
		case 'd': o->duration_s = atof(optarg); break;
		case 'w': o->warmup_s = atof(optarg); break;
		case 'P': o->partitions = atoi(optarg); break;
		case 'R': o->replication = atoi(optarg); break;
		case 'a': o->acks = optarg; break;
		case 'r': o->rate = atof(optarg); break;
		case 'z': o->compression = optarg; break;
		case 'l': o->linger_ms = atol(optarg); break;
		case 'B': o->batch_bytes = atol(optarg); break;
		case 'm': o->call_records = atol(optarg); break;
		case 'i': o->idle_ms = atol(optarg); break;
		case 'S': o->stats_path = optarg; break;
		case 'X':
			if (o->extra_count >= LOAD_EXTRA_CONF_MAX || !strchr(optarg, '='))
				return -EINVAL;
			o->extra[o->extra_count++] = optarg;
			break;
		case 'C':
			if (o->topic_conf_count >= LOAD_EXTRA_CONF_MAX || !strchr(optarg, '='))
				return -EINVAL;
			o->topic_conf[o->topic_conf_count++] = optarg;
			break;
		default: return -EINVAL;
		}
	}
	if (strcmp(o->mode, "selftest") == 0)
		return 0;
	if (!o->brokers || !o->topic)
		return -EINVAL;
	if (o->record_bytes < 0 || o->record_bytes > LOAD_RECORD_BYTES_MAX)
		return -EINVAL;
	if (o->count < 0 || o->duration_s < 0 || o->warmup_s < 0 || o->rate < 0)
		return -EINVAL;
	if (o->partitions < 0 || o->partitions > 100000 || o->replication < 1 || o->replication > 32)
		return -EINVAL;
	if (o->call_records < 0 || o->call_records > LOAD_CALL_RECORDS_MAX || (o->call_records > 0 && o->rate > 0))
		return -EINVAL;
	return 0;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
	char errstr[512];
	if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "tm-load: %s=%s: %s\n", k, v, errstr);
		return -EINVAL;
	}
	return 0;
}

static int conf_apply_extra(rd_kafka_conf_t *conf, const struct opts *o)
{
	for (int i = 0; i < o->extra_count; i++) {
		char kv[1024];
		if (strlen(o->extra[i]) >= sizeof(kv))
			return -EINVAL;
		strcpy(kv, o->extra[i]);
		char *eq = strchr(kv, '=');
		*eq = '\0';
		if (conf_set(conf, kv, eq + 1) < 0)
			return -EINVAL;
	}
	return 0;
}

/* The probe expects "connection refused" until the broker listens: quiet. */
static bool g_quiet;

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= 4 && !g_quiet) /* warnings and worse; the broker's own log says the rest */
		fprintf(stderr, "tm-load: rdkafka %s: %s\n", fac, buf);
}

static const char *g_stats_path;

/* Keeps the latest statistics (per broker: requests by API and bytes; per
 * partition: batches and their sizes), so a run can be read afterwards. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	(void)rk;
	(void)opaque;
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", g_stats_path);
	FILE *f = fopen(tmp, "w");
	if (f) {
		bool ok = fwrite(json, 1, len, f) == len;
		if (fclose(f) == 0 && ok)
			rename(tmp, g_stats_path);
	}
	return 0; /* librdkafka frees json */
}

static rd_kafka_t *client_new(const struct opts *o, rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
	char errstr[512];
	if (!conf)
		conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, on_log);
	if (o->stats_path) {
		g_stats_path = o->stats_path;
		rd_kafka_conf_set_stats_cb(conf, on_stats);
		if (conf_set(conf, "statistics.interval.ms", "1000") < 0) {
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	}
	if (conf_set(conf, "bootstrap.servers", o->brokers) < 0 || conf_apply_extra(conf, o) < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "tm-load: rd_kafka_new: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

/* Partition count of the topic from a metadata request, or -errno.  Also
 * reports the smallest replica and ISR counts over its partitions. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, int *replicas_min,
			    int *isr_min, char *err, size_t err_len)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (!rkt)
		return -ENOMEM;
	const struct rd_kafka_metadata *md = NULL;
	int rc = -EAGAIN;
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000u;
	while (!g_stop) {
		rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 2000);
		if (e) {
			snprintf(err, err_len, "metadata: %s", rd_kafka_err2str(e));
		} else if (md->topic_cnt < 1 || md->topics[0].err || md->topics[0].partition_cnt < 1) {
			snprintf(err, err_len, "metadata: %s",
				 md->topic_cnt < 1 ? "topic missing" : rd_kafka_err2str(md->topics[0].err));
		} else {
			const struct rd_kafka_metadata_topic *t = &md->topics[0];
			int rmin = INT_MAX, imin = INT_MAX;
			for (int i = 0; i < t->partition_cnt; i++) {
				if (t->partitions[i].replica_cnt < rmin)
					rmin = t->partitions[i].replica_cnt;
				if (t->partitions[i].isr_cnt < imin)
					imin = t->partitions[i].isr_cnt;
			}
			if (replicas_min)
				*replicas_min = rmin;
			if (isr_min)
				*isr_min = imin;
			rc = t->partition_cnt;
		}
		if (md)
			rd_kafka_metadata_destroy(md);
		md = NULL;
		if (rc > 0 || mono_ns() > deadline)
			break;
		usleep(100 * 1000);
	}
	rd_kafka_topic_destroy(rkt);
	return rc;
}

/* Admin requests: 10 s for the broker's operation, 15 s for the answer. */
static rd_kafka_AdminOptions_t *admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op)
{
	char errstr[512];
	rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, op);
	rd_kafka_AdminOptions_set_operation_timeout(ao, 10000, errstr, sizeof(errstr));
	rd_kafka_AdminOptions_set_request_timeout(ao, 15000, errstr, sizeof(errstr));
	return ao;
}

/* Reads a CreateTopics or DeleteTopics answer for one topic (ev NULL: none
 * came); `fine` is the topic error that counts as success.  Returns 0 or
 * -errno with what went wrong in err. */
static int admin_topic_answer(rd_kafka_event_t *ev, const char *api, rd_kafka_resp_err_t fine, char *err,
			      size_t err_len)
{
	if (!ev) {
		snprintf(err, err_len, "%s: no answer in 20 s", api);
		return -ETIMEDOUT;
	}
	if (rd_kafka_event_error(ev)) {
		snprintf(err, err_len, "%s: %s", api, rd_kafka_event_error_string(ev));
		return -EIO;
	}
	size_t n = 0;
	const rd_kafka_topic_result_t **res =
		rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATETOPICS_RESULT
			? rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n)
			: rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
	rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__FAIL;
	if (!e || e == fine)
		return 0;
	const char *m = n ? rd_kafka_topic_result_error_string(res[0]) : NULL;
	snprintf(err, err_len, "%s: %s%s%s", api, rd_kafka_err2name(e), m ? ": " : "", m ? m : "");
	return -EIO;
}

/* CreateTopics through the admin API; an existing topic counts as success.
 * Returns 0 or -errno with the broker's message in err. */
static int topic_create(rd_kafka_t *rk, const struct opts *o, int partitions, char *err,
			size_t err_len)
{
	char errstr[512];
	rd_kafka_NewTopic_t *nt =
		rd_kafka_NewTopic_new(o->topic, partitions, o->replication, errstr, sizeof(errstr));
	if (!nt) {
		snprintf(err, err_len, "%s", errstr);
		return -EINVAL;
	}
	for (int i = 0; i < o->topic_conf_count; i++) {
		char kv[512];
		if (strlen(o->topic_conf[i]) >= sizeof(kv)) {
			rd_kafka_NewTopic_destroy(nt);
			return -EINVAL;
		}
		strcpy(kv, o->topic_conf[i]);
		char *eq = strchr(kv, '=');
		*eq = '\0';
		rd_kafka_NewTopic_set_config(nt, kv, eq + 1);
	}
	rd_kafka_AdminOptions_t *ao = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
	int rc = admin_topic_answer(ev, "CreateTopics", RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS, err, err_len);
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	rd_kafka_AdminOptions_destroy(ao);
	rd_kafka_NewTopic_destroy(nt);
	return rc;
}

/* Makes sure the topic has the wanted partitions: CreateTopics first; when
 * the broker has no CreateTopics, auto-creation by metadata request (which
 * gives the broker's num.partitions).  Returns the partition count seen, or
 * -errno; a CreateTopics failure is left in create_err. */
static int topic_ensure(rd_kafka_t *rk, const struct opts *o, char *create_err, size_t len)
{
	char err[512] = "";
	create_err[0] = '\0';
	if (o->partitions > 0 && topic_create(rk, o, o->partitions, create_err, len) < 0)
		fprintf(stderr, "tm-load: %s (falling back to auto-creation)\n", create_err);
	int n = topic_partitions(rk, o->topic, 15000, NULL, NULL, err, sizeof(err));
	if (n < 0 && !create_err[0])
		snprintf(create_err, len, "%s", err);
	return n;
}

/* ---- produce -------------------------------------------------------------- */

struct prod_state {
	struct hist ack;     /* send -> acknowledgement, from librdkafka's own timestamps */
	uint64_t acked;
	uint64_t acked_bytes;
	uint64_t failed;
	uint64_t last_ack_ns;
	uint64_t warm_after; /* delivery reports before this many acks do not count */
	uint64_t seen;
	char first_error[256];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	struct prod_state *ps = opaque;
	ps->seen++;
	if (m->err) {
		ps->failed++;
		if (!ps->first_error[0])
			snprintf(ps->first_error, sizeof(ps->first_error), "%s", rd_kafka_err2str(m->err));
		return;
	}
	ps->acked++;
	ps->acked_bytes += m->len + m->key_len;
	ps->last_ack_ns = mono_ns();
	int64_t lat = rd_kafka_message_latency(m);
	if (lat >= 0)
		hist_record(&ps->ack, (uint64_t)lat);
}

/* With -m librdkafka reports failures only (a report per record was a
 * sixth of the client's CPU at two million records a second): after a
 * flush, every record sent that neither failed nor is still queued was
 * acknowledged, and the flush's end is when the last one was. */
static void acked_from_flush(struct prod_state *ps, rd_kafka_t *rk, uint64_t sent, size_t record_bytes)
{
	uint64_t left = (uint64_t)rd_kafka_outq_len(rk) + ps->failed;
	ps->acked = sent > left ? sent - left : 0;
	ps->acked_bytes = ps->acked * record_bytes;
	ps->last_ack_ns = mono_ns();
}

static rd_kafka_t *producer_new(const struct opts *o, struct prod_state *ps, long linger_default)
{
	char v[64];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, ps);
	int bad = conf_set(conf, "acks", o->acks) | conf_set(conf, "compression.type", o->compression) |
		  conf_set(conf, "queue.buffering.max.kbytes", "65536") |
		  conf_set(conf, "queue.buffering.max.messages", "1000000") |
		  conf_set(conf, "message.timeout.ms", "60000");
	long linger = o->linger_ms >= 0 ? o->linger_ms : linger_default;
	if (linger >= 0) {
		snprintf(v, sizeof(v), "%ld", linger);
		bad |= conf_set(conf, "linger.ms", v);
	}
	if (o->batch_bytes > 0) {
		snprintf(v, sizeof(v), "%ld", o->batch_bytes);
		bad |= conf_set(conf, "batch.size", v);
	}
	if (o->call_records > 0)
		bad |= conf_set(conf, "delivery.report.only.error", "true");
	if (bad) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return client_new(o, RD_KAFKA_PRODUCER, conf);
}

/* ---- the busiest thread ------------------------------------------------ */

static uint64_t g_start_ns; /* when main() began */

/* From one /proc/PID/task/TID/stat line: the thread's name (field 2, in
 * parentheses, which may itself hold spaces and parentheses) and its user +
 * system clock ticks (fields 14 and 15).  Returns false on a malformed line. */
static bool thread_stat_parse(const char *line, char *name, size_t name_len, uint64_t *ticks)
{
	const char *open = strchr(line, '('), *close = strrchr(line, ')');
	if (!open || !close || close < open || name_len == 0)
		return false;
	size_t n = (size_t)(close - open - 1);
	if (n >= name_len)
		n = name_len - 1;
	memcpy(name, open + 1, n);
	name[n] = 0;
	/* after ')': field 3 (state) onwards; utime is field 14, stime 15 */
	const char *p = close + 1;
	unsigned long long utime = 0, stime = 0;
	for (int field = 3; field <= 15; field++) {
		while (*p == ' ')
			p++;
		if (!*p)
			return false;
		char *end;
		unsigned long long v = strtoull(p, &end, 10);
		if (field == 14)
			utime = v;
		if (field == 15)
			stime = v;
		p = strchr(p, ' ');
		if (!p)
			p = end;
	}
	*ticks = utime + stime;
	return true;
}

/* The thread of this process that used the most CPU, as cores (its CPU
 * seconds over the seconds since main() began).  A client thread near 1.0
 * sets the pace whatever the broker does: librdkafka encrypts, writes and
 * parses a broker's traffic in one thread per broker. */
static void print_busiest_thread(FILE *f)
{
	char best[64] = "";
	uint64_t best_ticks = 0;
	char path[300], line[1024], name[64];
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
		FILE *st = fopen(path, "r");
		if (!st)
			continue;
		uint64_t ticks;
		if (fgets(line, sizeof(line), st) && thread_stat_parse(line, name, sizeof(name), &ticks) &&
		    ticks >= best_ticks) {
			best_ticks = ticks;
			snprintf(best, sizeof(best), "%s", name);
		}
		fclose(st);
	}
	if (d)
		closedir(d);
	double wall = (double)(mono_ns() - g_start_ns) / 1e9;
	long hz = sysconf(_SC_CLK_TCK);
	if (!best[0] || wall <= 0 || hz <= 0)
		return;
	fprintf(f, ",\"busiest_thread\":{\"name\":");
	json_str(f, best);
	fprintf(f, ",\"cores\":%.3f}", (double)best_ticks / (double)hz / wall);
}

static void print_common(FILE *f, const struct opts *o, int partitions)
{
	fprintf(f, "{\"tool\":\"tm-load\",\"mode\":");
	json_str(f, o->mode);
	fprintf(f, ",\"topic\":");
	json_str(f, o->topic);
	fprintf(f, ",\"partitions\":%d,\"record_bytes\":%ld", partitions, o->record_bytes);
	print_busiest_thread(f);
}

/* One rd_kafka_produce_batch call's worth (-m): want records from the
 * payload pool, all to partition part, so that librdkafka takes the
 * partition's lock and the clock once per call instead of once per record.
 * Records refused for a full queue are offered again after a poll; returns
 * how many were taken (fewer than want after another error or a stop). */
static size_t produce_call(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t part, rd_kafka_message_t *msgs,
			   size_t want, const unsigned char *pool, uint64_t first, size_t record_bytes,
			   struct prod_state *ps, uint64_t *queue_full)
{
	for (size_t i = 0; i < want; i++) {
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].payload = (void *)(pool + ((first + i) % LOAD_PAYLOAD_POOL) * record_bytes);
		msgs[i].len = record_bytes;
	}
	size_t left = want;
	while (left > 0 && !g_stop) {
		/* Each refused record has its err set; they move to the front. */
		rd_kafka_produce_batch(rkt, part, 0, msgs, (int)left);
		size_t refused = 0;
		for (size_t i = 0; i < left; i++) {
			if (!msgs[i].err)
				continue;
			if (msgs[i].err != RD_KAFKA_RESP_ERR__QUEUE_FULL && !ps->first_error[0])
				snprintf(ps->first_error, sizeof(ps->first_error), "produce: %s",
					 rd_kafka_err2str(msgs[i].err));
			msgs[refused] = msgs[i];
			msgs[refused].err = 0;
			refused++;
		}
		left = refused;
		if (!left || ps->first_error[0])
			break;
		(*queue_full)++;
		rd_kafka_poll(rk, 1);
	}
	return want - left;
}

static int run_produce(const struct opts *o)
{
	if (o->count == 0 && o->duration_s <= 0) {
		fprintf(stderr, "tm-load: produce needs -n COUNT or -d SECONDS\n");
		return 2;
	}
	static struct prod_state ps;
	hist_init(&ps.ack);
	rd_kafka_t *rk = producer_new(o, &ps, -1);
	if (!rk)
		return 2;
	char create_err[512];
	int partitions = topic_ensure(rk, o, create_err, sizeof(create_err));

	size_t n = (size_t)o->record_bytes;
	unsigned char *pool = malloc(n * LOAD_PAYLOAD_POOL + 1);
	if (!pool) {
		rd_kafka_destroy(rk);
		return 1;
	}
	fill_random(pool, n * LOAD_PAYLOAD_POOL + 1, 0x7469646d61726bull);

	/* Warm-up: records sent in the first warmup_s seconds are produced and
	 * acknowledged but not counted; the clock starts when they are all in. */
	uint64_t t_start = mono_ns();
	uint64_t warm_end = t_start + (uint64_t)(o->warmup_s * 1e9);
	uint64_t run_end = warm_end + (uint64_t)(o->duration_s * 1e9);
	uint64_t sent = 0, sent_measured = 0, queue_full = 0;
	bool warm = o->warmup_s <= 0;
	uint64_t t0 = t_start, base_acked = 0, base_bytes = 0, base_failed = 0;
	rd_kafka_message_t *batch = NULL;
	rd_kafka_topic_t *rkt = NULL;
	uint64_t calls = 0;
	if (o->call_records > 0 && partitions > 0) {
		batch = calloc((size_t)o->call_records, sizeof(*batch));
		rkt = rd_kafka_topic_new(rk, o->topic, NULL);
		if (!batch || !rkt) {
			snprintf(ps.first_error, sizeof(ps.first_error), "produce: cannot set up calls of %ld records",
				 o->call_records);
			partitions = -1;
		}
	}
	while (!g_stop && partitions > 0) {
		uint64_t now = mono_ns();
		if (!warm && now >= warm_end) {
			flush_bounded(rk, 30000);
			if (batch)
				acked_from_flush(&ps, rk, sent, n);
			warm = true;
			t0 = mono_ns();
			run_end = t0 + (uint64_t)(o->duration_s * 1e9);
			base_acked = ps.acked;
			base_bytes = ps.acked_bytes;
			base_failed = ps.failed;
			hist_init(&ps.ack);
		}
		if (warm) {
			if (o->count > 0 && sent_measured >= (uint64_t)o->count)
				break;
			if (o->count == 0 && now >= run_end)
				break;
			if (o->rate > 0)
				sleep_until_ns(t0 + (uint64_t)((double)sent_measured * 1e9 / o->rate));
		}
		if (batch) {
			size_t want = (size_t)o->call_records;
			if (warm && o->count > 0 && (uint64_t)o->count - sent_measured < want)
				want = (size_t)((uint64_t)o->count - sent_measured);
			int32_t part = (int32_t)(calls++ % (uint64_t)partitions);
			size_t done = produce_call(rk, rkt, part, batch, want, pool, sent, n, &ps, &queue_full);
			sent += done;
			if (warm)
				sent_measured += done;
			rd_kafka_poll(rk, 0);
			if (done < want)
				break;
			continue;
		}
		const unsigned char *payload = pool + (sent % LOAD_PAYLOAD_POOL) * n;
		rd_kafka_resp_err_t e = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_VALUE((void *)payload, n),
			RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			queue_full++;
			rd_kafka_poll(rk, 1);
			continue;
		}
		if (e) {
			snprintf(ps.first_error, sizeof(ps.first_error), "produce: %s", rd_kafka_err2str(e));
			break;
		}
		sent++;
		if (warm)
			sent_measured++;
		if ((sent & 1023) == 0)
			rd_kafka_poll(rk, 0);
	}
	uint64_t t_send_end = mono_ns();
	flush_bounded(rk, 60000);
	if (batch)
		acked_from_flush(&ps, rk, sent, n);
	uint64_t records = ps.acked - base_acked;
	uint64_t bytes = ps.acked_bytes - base_bytes;
	uint64_t failed = ps.failed - base_failed + (uint64_t)rd_kafka_outq_len(rk);
	uint64_t t_end = ps.last_ack_ns > t0 ? ps.last_ack_ns : t_send_end;
	double secs = (double)(t_end - t0) / 1e9;
	if (secs <= 0)
		secs = 1e-9;

	print_common(stdout, o, partitions);
	fprintf(stdout, ",\"acks\":");
	json_str(stdout, o->acks);
	fprintf(stdout, ",\"compression\":");
	json_str(stdout, o->compression);
	fprintf(stdout,
		",\"rate_target\":%.0f,\"sent\":%" PRIu64 ",\"records\":%" PRIu64 ",\"errors\":%" PRIu64
		",\"bytes\":%" PRIu64 ",\"seconds\":%.3f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,"
		"\"queue_full\":%" PRIu64 ",\"total_bytes\":%" PRIu64 ",",
		o->rate, sent_measured, records, failed, bytes, secs, (double)records / secs,
		(double)bytes / 1048576.0 / secs, queue_full, ps.acked_bytes);
	hist_json(stdout, "latency_us", &ps.ack);
	char unacked[128] = "";
	if (failed && !ps.first_error[0])
		snprintf(unacked, sizeof(unacked), "%" PRIu64 " records never acknowledged", failed);
	fprintf(stdout, ",\"error\":");
	json_str(stdout, ps.first_error[0] ? ps.first_error : partitions < 0 ? create_err : unacked);
	fprintf(stdout, "}\n");
	fflush(stdout);
	bool ok = partitions > 0 && failed == 0 && records > 0 && records == sent_measured;
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	free(batch);
	free(pool);
	rd_kafka_destroy(rk);
	return ok ? 0 : 1;
}

/* ---- consume -------------------------------------------------------------- */

#define CONSUME_BATCH 4096

struct consumer {
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	rd_kafka_queue_t *q;
	int partitions;
	int eof_count;
	bool *at_eof;
};

/* The plain (group-less) consumer: it fetches every partition from the
 * beginning, so a broker without a group coordinator still gets measured. */
static int consumer_open(struct consumer *c, const struct opts *o, char *err, size_t err_len)
{
	memset(c, 0, sizeof(*c));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (conf_set(conf, "enable.partition.eof", "true") < 0 ||
	    conf_set(conf, "queued.max.messages.kbytes", "262144") < 0) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	c->rk = client_new(o, RD_KAFKA_CONSUMER, conf);
	if (!c->rk)
		return -EINVAL;
	int n = topic_partitions(c->rk, o->topic, 15000, NULL, NULL, err, err_len);
	if (n < 0)
		return n;
	c->partitions = n;
	c->at_eof = calloc((size_t)n, sizeof(bool));
	c->rkt = rd_kafka_topic_new(c->rk, o->topic, NULL);
	c->q = rd_kafka_queue_new(c->rk);
	if (!c->at_eof || !c->rkt || !c->q)
		return -ENOMEM;
	/* Each partition starts at its first offset, asked for here rather
	 * than given as RD_KAFKA_OFFSET_BEGINNING: with a logical offset
	 * librdkafka sends its own ListOffsets, and when the partition joins
	 * its leader's thread while that answer is due it retries the query
	 * 500 ms later ("migrating to new broker"), which held a third of the
	 * 2-second cold reads here for half a second before the first
	 * record. */
	for (int p = 0; p < n; p++) {
		int64_t lo = 0, hi = 0;
		rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(c->rk, o->topic, p, &lo, &hi, 15000);
		if (e) {
			snprintf(err, err_len, "first offset of partition %d: %s", p, rd_kafka_err2str(e));
			return -EIO;
		}
		if (rd_kafka_consume_start_queue(c->rkt, p, lo, c->q) < 0) {
			snprintf(err, err_len, "consume_start: %s", rd_kafka_err2str(rd_kafka_last_error()));
			return -EIO;
		}
	}
	return 0;
}

static void consumer_close(struct consumer *c)
{
	if (c->rkt)
		for (int p = 0; p < c->partitions; p++)
			rd_kafka_consume_stop(c->rkt, p);
	if (c->q)
		rd_kafka_queue_destroy(c->q);
	if (c->rkt)
		rd_kafka_topic_destroy(c->rkt);
	if (c->rk)
		rd_kafka_destroy(c->rk);
	free(c->at_eof);
	memset(c, 0, sizeof(*c));
}

static int run_consume(const struct opts *o)
{
	struct consumer c;
	char err[512] = "";
	uint64_t t0 = mono_ns();
	int rc = consumer_open(&c, o, err, sizeof(err));
	uint64_t records = 0, bytes = 0, t_first = 0, t_last = 0;
	uint64_t deadline = o->duration_s > 0 ? t0 + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
	uint64_t idle_ns = (uint64_t)o->idle_ms * 1000000u;
	uint64_t last_progress = mono_ns();
	static rd_kafka_message_t *msgs[CONSUME_BATCH];
	bool done = false;
	while (rc == 0 && !g_stop && !done) {
		ssize_t got = rd_kafka_consume_batch_queue(c.q, 100, msgs, CONSUME_BATCH);
		uint64_t now = mono_ns();
		for (ssize_t i = 0; i < got; i++) {
			rd_kafka_message_t *m = msgs[i];
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				if (m->partition >= 0 && m->partition < c.partitions && !c.at_eof[m->partition]) {
					c.at_eof[m->partition] = true;
					c.eof_count++;
				}
			} else if (m->err) {
				if (!err[0])
					snprintf(err, sizeof(err), "fetch: %s", rd_kafka_message_errstr(m));
			} else {
				if (!t_first)
					t_first = now;
				t_last = now;
				records++;
				bytes += m->len + m->key_len;
				last_progress = now;
				if (m->partition >= 0 && m->partition < c.partitions && c.at_eof[m->partition]) {
					c.at_eof[m->partition] = false;
					c.eof_count--;
				}
			}
			rd_kafka_message_destroy(m);
		}
		if (o->stats_path)
			rd_kafka_poll(c.rk, 0); /* statistics arrive on the main queue */
		if (o->count > 0 && records >= (uint64_t)o->count)
			done = true;
		else if (o->count == 0 && c.eof_count == c.partitions && records > 0)
			done = true;
		else if (now - last_progress > idle_ns || now > deadline)
			break;
	}
	uint64_t t_end = t_last ? t_last : mono_ns();
	double secs = (double)(t_end - t0) / 1e9;
	double fetch_secs = t_first ? (double)(t_end - t_first) / 1e9 : 0;
	if (secs <= 0)
		secs = 1e-9;
	print_common(stdout, o, c.partitions);
	fprintf(stdout,
		",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.3f,\"msgs_per_s\":%.1f,"
		"\"mb_per_s\":%.3f,\"first_record_s\":%.3f,\"fetch_seconds\":%.3f,\"complete\":%s,"
		"\"error\":",
		records, bytes, secs, (double)records / secs, (double)bytes / 1048576.0 / secs,
		t_first ? (double)(t_first - t0) / 1e9 : -1.0, fetch_secs, done ? "true" : "false");
	json_str(stdout, !done && !err[0] ? "stopped before the wanted records arrived" : err);
	fprintf(stdout, "}\n");
	fflush(stdout);
	consumer_close(&c);
	return done && records > 0 ? 0 : 1;
}

/* ---- end-to-end latency --------------------------------------------------- */

struct e2e_shared {
	const struct opts *o;
	rd_kafka_t *prod;
	struct prod_state *ps;
	uint64_t t0;           /* schedule origin, CLOCK_MONOTONIC ns */
	uint64_t warm_end;     /* records intended before this are not measured */
	atomic_uint_fast64_t sent;
	atomic_int producer_done;
	char error[256];
};

static void *e2e_producer(void *arg)
{
	struct e2e_shared *sh = arg;
	const struct opts *o = sh->o;
	size_t n = (size_t)o->record_bytes;
	unsigned char *buf = malloc(n);
	if (!buf) {
		atomic_store(&sh->producer_done, 1);
		return NULL;
	}
	fill_random(buf, n, 0x65326530ull);
	uint64_t total = (uint64_t)((o->warmup_s + o->duration_s) * o->rate);
	bool measuring = false;
	for (uint64_t seq = 0; seq < total && !g_stop; seq++) {
		uint64_t intended = sh->t0 + (uint64_t)((double)seq * 1e9 / o->rate);
		sleep_until_ns(intended);
		if (!measuring && intended >= sh->warm_end) {
			/* Acknowledgements are delivered by rd_kafka_poll on this
			 * thread only, so the warm-up's can be dropped here. */
			hist_init(&sh->ps->ack);
			measuring = true;
		}
		uint32_t magic = LOAD_MAGIC;
		memcpy(buf, &magic, 4);
		put_le64(buf + 4, seq);
		put_le64(buf + 12, intended);
		rd_kafka_resp_err_t e;
		while ((e = rd_kafka_producev(sh->prod, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_VALUE(buf, n),
					      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
		       RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(sh->prod, 1);
		if (e) {
			snprintf(sh->error, sizeof(sh->error), "produce: %s", rd_kafka_err2str(e));
			break;
		}
		atomic_fetch_add(&sh->sent, 1);
		rd_kafka_poll(sh->prod, 0);
	}
	flush_bounded(sh->prod, 30000);
	free(buf);
	atomic_store(&sh->producer_done, 1);
	return NULL;
}

struct e2e_recv {
	uint64_t total;         /* records the producer will send, warm-up included */
	uint64_t warm_end;      /* intended send times before this are not measured */
	uint64_t received;
	uint64_t stray;         /* priming records, foreign or out-of-range payloads */
	uint64_t last_progress; /* CLOCK_MONOTONIC ns of the last record */
	struct hist *lat;
	char *err;
	size_t err_len;
};

static void e2e_on_record(rd_kafka_message_t *m, void *opaque)
{
	struct e2e_recv *rv = opaque;
	uint64_t now = mono_ns();
	if (m->err) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && !rv->err[0])
			snprintf(rv->err, rv->err_len, "fetch: %s", rd_kafka_message_errstr(m));
		return;
	}
	rv->last_progress = now;
	if (m->len < LOAD_HDR_BYTES) {
		rv->stray++;
		return;
	}
	const unsigned char *p = m->payload;
	uint32_t mg;
	memcpy(&mg, p, 4);
	uint64_t seq = get_le64(p + 4), sent_at = get_le64(p + 12);
	if (mg != LOAD_MAGIC || seq == UINT64_MAX || seq >= rv->total) {
		rv->stray++;
		return;
	}
	rv->received++;
	if (sent_at >= rv->warm_end)
		hist_record(rv->lat, now > sent_at ? (now - sent_at) / 1000u : 0);
}

static int run_e2e(const struct opts *o)
{
	if (o->rate <= 0 || o->duration_s <= 0 || o->record_bytes < LOAD_HDR_BYTES) {
		fprintf(stderr, "tm-load: e2e needs -r RATE, -d SECONDS and -s >= %d\n", LOAD_HDR_BYTES);
		return 2;
	}
	static struct prod_state ps;
	hist_init(&ps.ack);
	static struct hist lat;
	hist_init(&lat);
	char err[512] = "";
	rd_kafka_t *prod = producer_new(o, &ps, 0);
	if (!prod)
		return 2;
	int partitions = topic_ensure(prod, o, err, sizeof(err));
	/* A priming record makes sure the topic and its leader exist before the
	 * clock starts; the consumer skips it. */
	unsigned char prime[LOAD_HDR_BYTES];
	uint32_t magic = LOAD_MAGIC;
	memcpy(prime, &magic, 4);
	put_le64(prime + 4, UINT64_MAX);
	put_le64(prime + 12, 0);
	/* A topic just created may not be in every broker's metadata yet
	 * (librdkafka then fails the record with "Unknown partition"): retry
	 * for up to PRIME_TRIES x 0.5 s. */
	enum { PRIME_TRIES = 20 };
	for (int t = 0; partitions > 0 && t < PRIME_TRIES; t++) {
		ps.failed = 0;
		ps.first_error[0] = '\0';
		rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_VALUE(prime, sizeof(prime)),
				  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		flush_bounded(prod, 30000);
		if (!ps.failed)
			break;
		if (t + 1 == PRIME_TRIES)
			snprintf(err, sizeof(err), "priming record: %s", ps.first_error);
		else
			usleep(500 * 1000);
	}
	struct consumer c;
	memset(&c, 0, sizeof(c));
	int rc = -1;
	if (partitions > 0 && !ps.failed)
		rc = consumer_open(&c, o, err, sizeof(err));
	hist_init(&ps.ack);
	ps.acked = ps.failed = 0;

	static struct e2e_shared sh;
	sh.o = o;
	sh.prod = prod;
	sh.ps = &ps;
	pthread_t th;
	bool started = false;
	if (rc == 0) {
		/* Let the consumer reach the end of the priming record first. */
		uint64_t until = mono_ns() + 10ull * 1000000000u;
		static rd_kafka_message_t *pm[64];
		while (c.eof_count < c.partitions && mono_ns() < until && !g_stop) {
			ssize_t got = rd_kafka_consume_batch_queue(c.q, 100, pm, 64);
			for (ssize_t i = 0; i < got; i++) {
				if (pm[i]->err == RD_KAFKA_RESP_ERR__PARTITION_EOF &&
				    !c.at_eof[pm[i]->partition]) {
					c.at_eof[pm[i]->partition] = true;
					c.eof_count++;
				}
				rd_kafka_message_destroy(pm[i]);
			}
		}
		sh.t0 = mono_ns() + 10000000u;
		sh.warm_end = sh.t0 + (uint64_t)(o->warmup_s * 1e9);
		started = pthread_create(&th, NULL, e2e_producer, &sh) == 0;
	}
	static struct e2e_recv rv;
	rv.total = (uint64_t)((o->warmup_s + o->duration_s) * o->rate);
	rv.warm_end = sh.warm_end;
	rv.lat = &lat;
	rv.err = err;
	rv.err_len = sizeof(err);
	uint64_t idle_ns = (uint64_t)o->idle_ms * 1000000u;
	rv.last_progress = mono_ns();
	/* consume_callback_queue hands over whatever has arrived as soon as
	 * something has (consume_batch_queue would hold records back until its
	 * batch is full or its timeout passes, and that wait would be counted
	 * as latency). */
	while (started && !g_stop && rv.received < rv.total) {
		rd_kafka_consume_callback_queue(c.q, 20, e2e_on_record, &rv);
		if (atomic_load(&sh.producer_done) && mono_ns() - rv.last_progress > idle_ns)
			break;
	}
	if (started)
		pthread_join(th, NULL);
	uint64_t sent = atomic_load(&sh.sent);
	double secs = o->duration_s;

	print_common(stdout, o, partitions);
	fprintf(stdout, ",\"acks\":");
	json_str(stdout, o->acks);
	fprintf(stdout,
		",\"rate_target\":%.0f,\"sent\":%" PRIu64 ",\"records\":%" PRIu64 ",\"errors\":%" PRIu64
		",\"missing\":%" PRIu64 ",\"stray\":%" PRIu64 ",\"seconds\":%.3f,\"msgs_per_s\":%.1f,"
		"\"mb_per_s\":%.3f,",
		o->rate, sent, rv.received, ps.failed, sent > rv.received ? sent - rv.received : 0, rv.stray,
		secs, (double)lat.total / secs, (double)lat.total * (double)o->record_bytes / 1048576.0 / secs);
	hist_json(stdout, "latency_us", &lat);
	fputc(',', stdout);
	hist_json(stdout, "ack_latency_us", &ps.ack);
	fprintf(stdout, ",\"error\":");
	json_str(stdout, sh.error[0] ? sh.error : err[0] ? err : ps.first_error);
	fprintf(stdout, "}\n");
	fflush(stdout);
	bool ok = started && sent == rv.total && rv.received == rv.total && ps.failed == 0;
	consumer_close(&c);
	rd_kafka_destroy(prod);
	return ok ? 0 : 1;
}

/* ---- create, probe -------------------------------------------------------- */

static int run_create(const struct opts *o)
{
	rd_kafka_t *rk = client_new(o, RD_KAFKA_PRODUCER, NULL);
	if (!rk)
		return 2;
	char err[512] = "";
	int rc = topic_create(rk, o, o->partitions > 0 ? o->partitions : 1, err, sizeof(err));
	int replicas_min = 0, isr_min = 0, n = -1;
	if (rc == 0) {
		/* Metadata may lag CreateTopics briefly; wait until every replica is in sync. */
		uint64_t until = mono_ns() + 15ull * 1000000000u;
		do {
			n = topic_partitions(rk, o->topic, 5000, &replicas_min, &isr_min, err, sizeof(err));
			if (n > 0 && isr_min >= o->replication)
				break;
			usleep(200 * 1000);
		} while (mono_ns() < until && !g_stop);
	}
	bool ok = rc == 0 && n > 0 && replicas_min >= o->replication && isr_min >= o->replication;
	if (rc == 0 && n > 0 && !ok)
		snprintf(err, sizeof(err), "replicas %d, in sync %d, wanted %d", replicas_min, isr_min,
			 o->replication);
	print_common(stdout, o, n);
	fprintf(stdout, ",\"replication\":%d,\"replicas_min\":%d,\"isr_min\":%d,\"ok\":%s,\"error\":",
		o->replication, replicas_min, isr_min, ok ? "true" : "false");
	json_str(stdout, ok ? "" : err);
	fprintf(stdout, "}\n");
	rd_kafka_destroy(rk);
	return ok ? 0 : 1;
}

/* Deletes the topic (a benchmark's data, so the next run has the disk).  A
 * topic that does not exist is no error. */
static int run_delete(const struct opts *o)
{
	rd_kafka_t *rk = client_new(o, RD_KAFKA_PRODUCER, NULL);
	if (!rk)
		return 2;
	char err[512] = "";
	rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(o->topic);
	rd_kafka_AdminOptions_t *ao = admin_options(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_DeleteTopics(rk, &dt, 1, ao, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
	int rc = admin_topic_answer(ev, "DeleteTopics", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, err, sizeof(err));
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	rd_kafka_AdminOptions_destroy(ao);
	rd_kafka_DeleteTopic_destroy(dt);
	print_common(stdout, o, 0);
	fprintf(stdout, ",\"ok\":%s,\"error\":", rc ? "false" : "true");
	json_str(stdout, err);
	fprintf(stdout, "}\n");
	rd_kafka_destroy(rk);
	return rc ? 1 : 0;
}

/* Waits until the first bootstrap address (IPv4 "A.B.C.D:PORT") accepts a
 * TCP connection, trying every millisecond.  librdkafka backs off for about
 * a second after a refused first connection, which would otherwise be
 * counted against a broker that starts in less.  Returns 0 or -errno. */
static int wait_listening(const char *brokers, uint64_t deadline)
{
	char host[64];
	const char *colon = strchr(brokers, ':');
	if (!colon || (size_t)(colon - brokers) >= sizeof(host))
		return -EINVAL;
	memcpy(host, brokers, (size_t)(colon - brokers));
	host[colon - brokers] = '\0';
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	while (!g_stop && mono_ns() < deadline) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -errno;
		int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (rc == 0)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

/* Produces one record, retrying quickly, until a broker acknowledges it:
 * start the probe right after the broker process, and the acknowledgement
 * time minus the process start time is the broker's start-to-first-produce. */
static int run_probe(const struct opts *o)
{
	static struct prod_state ps;
	hist_init(&ps.ack);
	g_quiet = true;
	uint64_t start = mono_ns();
	double timeout_s = o->duration_s > 0 ? o->duration_s : 60;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, &ps);
	char tmo[32];
	snprintf(tmo, sizeof(tmo), "%.0f", timeout_s * 1000);
	if (conf_set(conf, "acks", o->acks) < 0 || conf_set(conf, "linger.ms", "0") < 0 ||
	    conf_set(conf, "reconnect.backoff.ms", "2") < 0 ||
	    conf_set(conf, "reconnect.backoff.max.ms", "20") < 0 ||
	    conf_set(conf, "retry.backoff.ms", "10") < 0 ||
	    conf_set(conf, "topic.metadata.refresh.fast.interval.ms", "10") < 0 ||
	    conf_set(conf, "message.timeout.ms", tmo) < 0) {
		rd_kafka_conf_destroy(conf);
		return 2;
	}
	uint64_t deadline = start + (uint64_t)(timeout_s * 1e9);
	int lrc = wait_listening(o->brokers, deadline);
	if (lrc == -EINVAL)
		fprintf(stderr, "tm-load: probe: %s is not IPv4:PORT; not waiting for it to listen\n", o->brokers);
	rd_kafka_t *rk = client_new(o, RD_KAFKA_PRODUCER, conf);
	if (!rk)
		return 2;
	int attempts = 0;
	uint64_t ack_real = 0, ack_mono = 0;
	while (!g_stop && !ack_real && mono_ns() < deadline) {
		const char v[] = "probe";
		attempts++;
		uint64_t failed_before = ps.failed;
		rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_VALUE((void *)v, sizeof(v) - 1),
				  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		while (!g_stop && ps.acked == 0 && ps.failed == failed_before && mono_ns() < deadline)
			rd_kafka_poll(rk, 1);
		if (ps.acked) {
			ack_real = real_ns();
			ack_mono = mono_ns();
		} else {
			usleep(5000);
		}
	}
	fprintf(stdout, "{\"tool\":\"tm-load\",\"mode\":\"probe\",\"topic\":");
	json_str(stdout, o->topic);
	fprintf(stdout,
		",\"ok\":%s,\"attempts\":%d,\"ack_unix_ns\":%" PRIu64 ",\"probe_seconds\":%.4f,\"error\":",
		ack_real ? "true" : "false", attempts, ack_real,
		ack_real ? (double)(ack_mono - start) / 1e9 : -1.0);
	json_str(stdout, ack_real ? "" : ps.first_error[0] ? ps.first_error : "no acknowledgement");
	fprintf(stdout, "}\n");
	rd_kafka_flush(rk, 1000);
	rd_kafka_destroy(rk);
	return ack_real ? 0 : 1;
}

/* ---- selftest: the histogram against known distributions ------------------ */

static int check(bool ok, const char *what, uint64_t got, uint64_t want, int *failed)
{
	if (!ok) {
		fprintf(stderr, "selftest FAILED: %s: got %" PRIu64 ", want %" PRIu64 "\n", what, got, want);
		(*failed)++;
	}
	return ok;
}

static int run_selftest(void)
{
	static struct hist h;
	int failed = 0, passed = 0;
	/* 1..100000 uniformly: each quantile within 1/64 above the exact one. */
	hist_init(&h);
	for (uint64_t v = 1; v <= 100000; v++)
		hist_record(&h, v);
	const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
	for (unsigned i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		uint64_t exact = (uint64_t)(qs[i] * 100000), got = hist_quantile(&h, qs[i]);
		passed += check(got >= exact && got <= exact + exact / 64, "uniform quantile", got, exact,
				&failed);
	}
	passed += check(h.max == 100000 && hist_quantile(&h, 1.0) == 100000, "max", h.max, 100000, &failed);
	/* Small values are exact. */
	hist_init(&h);
	for (uint64_t v = 0; v < 100; v++)
		hist_record(&h, v);
	passed += check(hist_quantile(&h, 0.5) == 49, "exact small p50", hist_quantile(&h, 0.5), 49, &failed);
	/* A 1 % tail: p99 stays in the body, p99.9 and max in the tail. */
	hist_init(&h);
	for (int i = 0; i < 9900; i++)
		hist_record(&h, 1000);
	for (int i = 0; i < 100; i++)
		hist_record(&h, 50000);
	uint64_t p99 = hist_quantile(&h, 0.99), p999 = hist_quantile(&h, 0.999);
	passed += check(p99 >= 1000 && p99 <= 1000 + 1000 / 64, "tail p99", p99, 1000, &failed);
	passed += check(p999 >= 50000 && p999 <= 50000 + 50000 / 64, "tail p999", p999, 50000, &failed);
	/* Every slot's bounds enclose the values that map to it, up to 2^62. */
	for (uint64_t v = 1; v < (1ull << 62); v = v * 3 + 1) {
		unsigned idx = hist_index(v);
		passed += check(hist_slot_high(idx) >= v && idx < HIST_SLOTS, "slot bound", hist_slot_high(idx),
				v, &failed);
	}
	hist_init(&h);
	passed += check(hist_quantile(&h, 0.99) == 0, "empty", hist_quantile(&h, 0.99), 0, &failed);
	/* A thread's stat line: the name may hold spaces and ')'. */
	char name[64];
	uint64_t ticks = 0;
	const char *line = "4242 (rdk:broker) 1) S 1 2 3 4 5 6 7 8 9 10 1234 56 0 0 20 0 9 0 100\n";
	bool parsed = thread_stat_parse(line, name, sizeof(name), &ticks);
	passed += check(parsed && !strcmp(name, "rdk:broker) 1"), "stat name", parsed, 1, &failed);
	passed += check(ticks == 1290, "stat utime + stime", ticks, 1290, &failed);
	passed += check(!thread_stat_parse("4242 (cut", name, sizeof(name), &ticks), "stat without ')'", 1, 0,
			&failed);
	passed += check(!thread_stat_parse("4242 (x) S 1 2", name, sizeof(name), &ticks), "stat cut short", 1,
			0, &failed);
	printf("tm-load selftest: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse_opts(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	g_start_ns = mono_ns();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(o.mode, "produce") == 0)
		return run_produce(&o);
	if (strcmp(o.mode, "consume") == 0)
		return run_consume(&o);
	if (strcmp(o.mode, "e2e") == 0)
		return run_e2e(&o);
	if (strcmp(o.mode, "create") == 0)
		return run_create(&o);
	if (strcmp(o.mode, "delete") == 0)
		return run_delete(&o);
	if (strcmp(o.mode, "probe") == 0)
		return run_probe(&o);
	if (strcmp(o.mode, "selftest") == 0)
		return run_selftest();
	usage();
	return 2;
}
