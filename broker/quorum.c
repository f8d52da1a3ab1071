/*
 * quorum.c — drives raft/ for the metadata log.  See quorum.h.
 *
 * Files under <log.dirs>/__cluster_metadata-0/:
 *   *.log, *.index ...   the metadata log (storage/), one batch per entry
 *   quorum-state         Kafka's JSON: {"clusterId":"..","leaderId":1,
 *                        "leaderEpoch":3,"votedId":-1,"appliedOffset":0,
 *                        "currentVoters":[{"voterId":1},..],"data_version":0}
 *                        written to a temporary file, fsynced, renamed.
 *   <20-digit end offset>-<10-digit epoch>.checkpoint
 *                        a metadata snapshot (KIP-630, broker/md_snapshot.h):
 *                        the image after every entry below end offset.
 *                        Written whole to "<name>.part", fsynced, renamed,
 *                        directory fsynced; only the newest is kept.
 *
 * Re-entrancy: answering a request can make its connection dispatch the
 * next one, which may step the core again.  So answers to inbound requests
 * are collected while actions run and sent after the outermost step.
 *
 * Snapshots.  Every node snapshots its own image once the batches applied
 * since its last snapshot exceed metadata.log.max.record.bytes.between.
 * snapshots, or metadata.log.max.snapshot.interval.ms passed with anything
 * new; it then tells the core (RAFT_EV_SNAPSHOT_TAKEN), raises the metadata
 * log's start offset to the snapshot (whole segments below it go) and
 * deletes older snapshots.  A follower whose fetch offset the leader no
 * longer has is told the snapshot id and fetches it with FetchSnapshot,
 * which the leader answers from the file; once the last chunk is in, the
 * follower checks it, empties its log to restart at the snapshot's end
 * offset, renames it into place and swaps its image for the snapshot's.
 * The order makes every crash recoverable: a ".part" whose end offset is
 * the log start offset is a fetched snapshot whose rename was cut short
 * (start-up finishes it); any other ".part" is deleted.
 *
 * Start-up loads the newest snapshot that reads back whole (every CRC, the
 * header and the footer), falls back to an older one when the log still
 * continues from it (saying so), and refuses to start when the log starts
 * past every usable snapshot.  Then the log after it is replayed.
 */
#include "broker/quorum.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/api.h"
#include "broker/controller.h"
#include "broker/md_snapshot.h"
#include "broker/partition.h"
#include "broker/peer.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"
#include "common/tm_time.h"
#include "protocol/records.h"
#include "raft/raft.h"
#include "storage/io.h"
#include "storage/log.h"

/* The metadata log's disk failed where Raft cannot go on without it: a vote
 * or a truncation that is not durable, a snapshot that cannot be written
 * (or, fetched from the leader, does not load).
 * The node stops at once, before any message that relies on it leaves, with
 * exit status 1 (Kafka halts on a failed metadata log directory too); a
 * restart with the disk fixed rejoins the quorum.  Internal inconsistencies
 * still abort(). */
static _Noreturn void q_halt(void)
{
	_exit(1);
}

#define Q_TOPIC "__cluster_metadata"
#define Q_APPLY_CHUNK_BYTES (4u << 20)
#define Q_RPC_TIMEOUT_MS 5000
#define Q_FETCH_VERSION 16
#define Q_VOTE_VERSION 2
#define Q_EPOCH_RPC_VERSION 0
#define Q_SNAPSHOT_VERSION 0
#define Q_ATTR_CONTROL 0x20
#define Q_SNAPSHOT_BYTES_MAX (1ll << 30) /* largest snapshot read, served or fetched */
#define Q_SNAPSHOTS_MAX 64                /* snapshot files looked at on start-up */

static const struct kuuid q_topic_id = { { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 } };

struct q_waiter {
	struct q_waiter *next;
	int64_t last_offset;        /* applied once applied > last_offset */
	quorum_commit_cb cb;
	void *arg;
};

struct q_parked {
	struct q_parked *next;
	struct tm_req *req;
	int32_t from;
	int64_t fetch_offset;
	int32_t last_fetched_epoch;
};

struct q_answer {
	struct q_answer *next;
	struct tm_req *req;
};

struct tm_quorum {
	struct tm_broker *b;
	struct raft raft;
	struct raft_actions acts;
	struct log *mlog;
	char dir[1200];
	struct tm_peer *peers[RAFT_VOTERS_MAX];     /* Raft RPCs only */
	struct tm_peer *ctl_peers[RAFT_VOTERS_MAX]; /* registration, forwarded requests */
	int32_t peer_ids[RAFT_VOTERS_MAX];
	int n_peers;
	int depth;                  /* nesting of q_step */
	/* the inbound request whose answer the current step may produce */
	struct tm_req *answering;
	enum raft_msg_type answer_type;
	int32_t answer_to;
	bool answer_pre_vote;
	struct q_answer *answers, *answers_tail;
	struct q_parked *parked;    /* inbound Fetches the core has not answered */
	/* applying */
	int64_t applied;            /* next offset to apply */
	bool applying;
	int64_t hw;
	int64_t catch_up_target;    /* -1 until the first high watermark is known */
	struct q_waiter *waiters, *waiters_tail;
	int appends_inflight;
	bool stopping;
	int64_t foreign_warned_ms;
	/* snapshots */
	struct md_snapshot_id snap;  /* newest on disk; end_offset 0: none */
	int32_t applied_epoch;       /* leader epoch of the entry at applied - 1 */
	int64_t applied_ts;          /* its max timestamp (the header's) */
	int64_t snap_bytes_since;    /* batch bytes applied since the snapshot */
	int64_t snap_last_ms;        /* when it was taken or loaded (monotonic) */
	int snap_in_fd;              /* the ".part" being fetched, or -1 */
	struct md_snapshot_id snap_in;
	bool installing;             /* swapping the image: no applying */
	int64_t apply_from;          /* where the read in flight for applying starts */
	bool sync_pending;           /* a loaded image awaits partitions_sync */
	bool snap_due;               /* the byte threshold passed: snapshot on the next tick */
};

static struct tm_quorum *Q(const struct tm_broker *b)
{
	return b->quorum;
}

static void q_step(struct tm_quorum *q, const struct raft_event *ev);
static void q_apply(struct tm_quorum *q);

/* ---- quorum-state ------------------------------------------------------------- */

static int json_int(const char *text, const char *key, long long *out)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(text, pat);
	if (!p)
		return -ENOENT;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	char *end;
	long long v = strtoll(p, &end, 10);
	if (end == p)
		return -EBADMSG;
	*out = v;
	return 0;
}

static int q_state_read(struct tm_quorum *q, struct raft_persisted *st)
{
	char path[1300];
	snprintf(path, sizeof(path), "%s/quorum-state", q->dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	char text[4096];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	long long epoch, voted, leader;
	if (json_int(text, "leaderEpoch", &epoch) || json_int(text, "votedId", &voted) ||
	    json_int(text, "leaderId", &leader) || epoch < 0 || epoch > INT32_MAX) {
		tm_error("quorum", "%s is not a valid quorum-state file; move it away only if this node's vote "
			 "can be forgotten safely", path);
		return -EBADMSG;
	}
	st->epoch = (int32_t)epoch;
	st->voted_id = (int32_t)voted;
	st->leader_id = (int32_t)leader;
	return 0;
}

static int q_state_write(struct tm_quorum *q, int32_t epoch, int32_t voted, int32_t leader)
{
	struct tm_broker *b = q->b;
	char path[1300], tmp[1300], text[4096];
	snprintf(path, sizeof(path), "%s/quorum-state", q->dir);
	snprintf(tmp, sizeof(tmp), "%s/quorum-state.tmp", q->dir);
	int n = snprintf(text, sizeof(text), "{\"clusterId\":\"%s\",\"leaderId\":%d,\"leaderEpoch\":%d,\"votedId\":%d,"
			 "\"appliedOffset\":0,\"currentVoters\":[", b->cluster_id, leader, epoch, voted);
	for (int i = 0; i < b->cfg.voter_count && n < (int)sizeof(text) - 64; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s{\"voterId\":%d}", i ? "," : "", b->cfg.voters[i].id);
	n += snprintf(text + n, sizeof(text) - (size_t)n, "],\"data_version\":0}\n");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (write(fd, text, (size_t)n) != n || fsync(fd))
		rc = -errno ? -errno : -EIO;
	close(fd);
	if (!rc && rename(tmp, path))
		rc = -errno;
	return rc;
}

/* ---- snapshot files ------------------------------------------------------------ */

static void q_snap_path(const struct tm_quorum *q, struct md_snapshot_id id, bool part, char *out, size_t n)
{
	char name[MD_SNAPSHOT_NAME_MAX];
	md_snapshot_name(name, sizeof(name), id);
	snprintf(out, n, "%s/%s%s", q->dir, name, part ? ".part" : "");
}

static int q_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

static int q_pwrite_all(int fd, const uint8_t *p, size_t n, int64_t at)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
		at += w;
	}
	return 0;
}

static int q_pread_all(int fd, uint8_t *p, size_t n, int64_t at)
{
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)at);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		p += r;
		n -= (size_t)r;
		at += r;
	}
	return 0;
}

/* Reads a whole snapshot file; the caller frees *out. */
static int q_read_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = fstat(fd, &st) ? -errno : 0;
	if (!rc && (st.st_size < 0 || st.st_size > Q_SNAPSHOT_BYTES_MAX))
		rc = -EFBIG;
	uint8_t *buf = NULL;
	if (!rc) {
		buf = malloc(st.st_size ? (size_t)st.st_size : 1);
		rc = buf ? q_pread_all(fd, buf, (size_t)st.st_size, 0) : -ENOMEM;
	}
	close(fd);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = (size_t)st.st_size;
	return 0;
}

/* Loads the snapshot at `path` into img (initialised here; deinitialised
 * again on error).  Says what is wrong, naming the file. */
static int q_snap_load_file(const char *path, struct md_image *img, int64_t *ts)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = q_read_file(path, &buf, &len);
	if (rc) {
		tm_error("quorum", "cannot read metadata snapshot %s: %s", path, strerror(-rc));
		return rc;
	}
	md_image_init(img);
	char why[256] = "";
	rc = md_snapshot_read(buf, len, img, ts, why, sizeof(why));
	free(buf);
	if (rc) {
		tm_error("quorum", "metadata snapshot %s is corrupt: %s", path, why);
		md_image_deinit(img);
	}
	return rc;
}

static int q_snap_cmp_newest_first(const void *a, const void *b)
{
	const struct md_snapshot_id *x = a, *y = b;
	if (x->end_offset != y->end_offset)
		return x->end_offset > y->end_offset ? -1 : 1;
	return x->epoch > y->epoch ? -1 : x->epoch < y->epoch;
}

/* The snapshot files in the directory, newest first (at most max). */
static int q_snap_list(struct tm_quorum *q, struct md_snapshot_id *ids, int max)
{
	DIR *d = opendir(q->dir);
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		struct md_snapshot_id id;
		if (md_snapshot_parse_name(e->d_name, &id))
			continue;
		if (n < max) {
			ids[n++] = id;
			continue;
		}
		/* Too many: keep the newest. */
		qsort(ids, (size_t)n, sizeof(*ids), q_snap_cmp_newest_first);
		if (q_snap_cmp_newest_first(&id, &ids[n - 1]) < 0)
			ids[n - 1] = id;
	}
	closedir(d);
	qsort(ids, (size_t)n, sizeof(*ids), q_snap_cmp_newest_first);
	return n;
}

/* Deletes every snapshot but q->snap. */
static void q_snap_prune(struct tm_quorum *q)
{
	struct md_snapshot_id ids[Q_SNAPSHOTS_MAX];
	int n = q_snap_list(q, ids, Q_SNAPSHOTS_MAX);
	for (int i = 0; i < n; i++) {
		if (ids[i].end_offset == q->snap.end_offset && ids[i].epoch == q->snap.epoch)
			continue;
		char path[1300];
		q_snap_path(q, ids[i], false, path, sizeof(path));
		if (unlink(path) == 0)
			tm_info("quorum", "deleted metadata snapshot %s (superseded)", path);
	}
}

/* Start-up: a ".part" is a snapshot cut short.  One whose end offset is the
 * log start was fetched whole and the log already restarted there: finish
 * the rename.  Any other is deleted. */
static void q_snap_finish_parts(struct tm_quorum *q)
{
	DIR *d = opendir(q->dir);
	if (!d)
		return;
	char names[Q_SNAPSHOTS_MAX][MD_SNAPSHOT_NAME_MAX + 8];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < Q_SNAPSHOTS_MAX) {
		size_t l = strlen(e->d_name);
		if (l > 5 && l < sizeof(names[0]) && !strcmp(e->d_name + l - 5, ".part") &&
		    strstr(e->d_name, MD_SNAPSHOT_SUFFIX))
			memcpy(names[n++], e->d_name, l + 1);
	}
	closedir(d);
	for (int i = 0; i < n; i++) {
		char path[1300], final[1300], base[MD_SNAPSHOT_NAME_MAX + 8];
		snprintf(base, sizeof(base), "%.*s", (int)(strlen(names[i]) - 5), names[i]);
		snprintf(path, sizeof(path), "%s/%s", q->dir, names[i]);
		snprintf(final, sizeof(final), "%s/%s", q->dir, base);
		struct md_snapshot_id id;
		struct md_image img;
		if (!md_snapshot_parse_name(base, &id) && id.end_offset > 0 &&
		    id.end_offset == log_start_offset(q->mlog) && !q_snap_load_file(path, &img, NULL)) {
			md_image_deinit(&img);
			if (!rename(path, final) && !q_fsync_dir(q->dir)) {
				tm_info("quorum", "finished installing metadata snapshot %s (interrupted before)", final);
				continue;
			}
		}
		if (unlink(path) == 0)
			tm_info("quorum", "deleted unfinished metadata snapshot %s", path);
	}
}

/*
 * Start-up: loads the newest usable snapshot into b->md and moves the log's
 * start to it.  Usable: it reads back whole and the log continues from it
 * (its end offset is not below the log start).  0 (with or without one), or
 * -EBADMSG when the log starts past every usable snapshot: the metadata
 * below the log start would be missing.
 */
static int q_snap_restore(struct tm_quorum *q)
{
	struct tm_broker *b = q->b;
	q_snap_finish_parts(q);
	struct md_snapshot_id ids[Q_SNAPSHOTS_MAX];
	int n = q_snap_list(q, ids, Q_SNAPSHOTS_MAX);
	if (n < 0) {
		tm_error("quorum", "cannot list %s: %s", q->dir, strerror(-n));
		return n;
	}
	int64_t log_start = log_start_offset(q->mlog);
	int bad = 0;
	for (int i = 0; i < n; i++) {
		char path[1300];
		q_snap_path(q, ids[i], false, path, sizeof(path));
		if (ids[i].end_offset < log_start) {
			tm_error("quorum", "metadata snapshot %s ends below the metadata log's start offset %" PRId64
				 "; it cannot be used", path, log_start);
			break;
		}
		if (ids[i].end_offset <= 0 || ids[i].epoch <= 0) {
			tm_error("quorum", "metadata snapshot %s has an impossible id; ignoring it", path);
			bad++;
			continue;
		}
		struct md_image img;
		int64_t ts = -1;
		int rc = q_snap_load_file(path, &img, &ts);
		if (rc == -ENOMEM)
			return rc;
		if (rc) {
			bad++;
			if (i + 1 < n)
				tm_warn("quorum", "falling back to the older metadata snapshot before %s", path);
			continue;
		}
		/* The log continues from the snapshot. */
		int64_t end = ids[i].end_offset;
		if (end > log_end_offset(q->mlog))
			rc = log_truncate_fully_and_start_at(q->mlog, end);
		else
			rc = log_delete_records(q->mlog, end);
		if (rc) {
			md_image_deinit(&img);
			tm_error("quorum", "cannot start the metadata log at snapshot %s: %s", path, strerror(-rc));
			return rc;
		}
		uint64_t seq = b->md.change_seq;
		md_image_deinit(&b->md);
		b->md = img;
		b->md.change_seq += seq + 1;
		b->md.applied_offset = end - 1;
		q->snap = ids[i];
		q->applied = end;
		q->applied_epoch = ids[i].epoch;
		q->applied_ts = ts;
		q->sync_pending = true;
		tm_info("quorum", "loaded metadata snapshot %s: %zu topics, %d brokers%s", path, b->md.topics.count,
			b->md.n_brokers, bad ? " (a newer snapshot is corrupt, see above)" : "");
		return 0;
	}
	if (log_start > 0) {
		tm_error("quorum", "the metadata log %s starts at offset %" PRId64 " but no usable snapshot covers "
			 "the offsets below it; refusing to start rather than serve a partial picture of the "
			 "cluster (restore the snapshot, or empty %s so this node fetches everything again)",
			 q->dir, log_start, q->dir);
		return -EBADMSG;
	}
	if (bad)
		tm_warn("quorum", "no usable metadata snapshot; replaying the whole metadata log from offset 0");
	return 0;
}

/* Writes the snapshot bytes to path (created, fsynced). */
static int q_write_file(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = q_pwrite_all(fd, p, n, 0);
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * Snapshots the image at the applied offset, hands the snapshot to the core
 * (the log's start moves there) and drops what it covers: log segments
 * wholly below it, older snapshots.  Writes synchronously: the image is
 * much smaller than the log bytes that trigger it.  On failure the log is
 * kept whole and the next threshold tries again.
 */
static void q_snap_take(struct tm_quorum *q, const char *reason)
{
	struct tm_broker *b = q->b;
	if (q->installing || q->stopping || q->applied <= q->snap.end_offset || q->applied_epoch <= 0 ||
	    q->applied > q->hw)
		return;
	struct md_snapshot_id id = { q->applied, q->applied_epoch };
	int64_t t0 = tm_mono_ms();
	q->snap_due = false;
	q->snap_bytes_since = 0;
	q->snap_last_ms = t0;
	char part[1300], path[1300];
	q_snap_path(q, id, true, part, sizeof(part));
	q_snap_path(q, id, false, path, sizeof(path));
	struct tm_wbuf w;
	wbuf_init(&w);
	int rc = md_snapshot_write(&b->md, id.epoch, q->applied_ts, tm_wall_ms(), &w);
	if (!rc && w.len > (size_t)Q_SNAPSHOT_BYTES_MAX)
		rc = -EFBIG;
	if (!rc)
		rc = q_write_file(part, w.buf, w.len);
	if (!rc && rename(part, path))
		rc = -errno;
	if (!rc)
		rc = q_fsync_dir(q->dir);
	size_t bytes = w.len;
	wbuf_deinit(&w);
	if (rc) {
		unlink(part);
		tm_error("quorum", "cannot write metadata snapshot %s: %s; the metadata log is kept whole", path,
			 strerror(-rc));
		return;
	}
	struct raft_event ev = { .type = RAFT_EV_SNAPSHOT_TAKEN, .now_ms = tm_mono_ms() };
	ev.u.snapshot.offset = id.end_offset;
	ev.u.snapshot.epoch = id.epoch;
	struct raft_actions acts;
	raft_actions_init(&acts);
	rc = raft_step(&q->raft, &ev, &acts); /* no actions: only the log start moves */
	raft_actions_deinit(&acts);
	if (rc) {
		unlink(path);
		tm_error("quorum", "the Raft core refused metadata snapshot %s (%s); it is deleted, the log kept whole",
			 path, strerror(-rc));
		return;
	}
	q->snap = id;
	rc = log_delete_records(q->mlog, id.end_offset);
	if (rc)
		tm_warn("quorum", "cannot delete metadata log segments below %" PRId64 ": %s", id.end_offset,
			strerror(-rc));
	q_snap_prune(q);
	tm_info("quorum", "metadata snapshot %s: %zu bytes, %zu topics, written in %" PRId64 " ms (%s)", path, bytes,
		b->md.topics.count, tm_mono_ms() - t0, reason);
}

/* Notes what a read of the log applied: the last batch's epoch and time,
 * and the bytes towards the next snapshot.  Batches ending at or below
 * `from` were applied before; those past `to` not yet. */
static void q_note_applied(struct tm_quorum *q, const uint8_t *data, size_t len, int64_t from, int64_t to)
{
	size_t at = 0;
	while (at + RECORDS_BATCH_HEADER_BYTES <= len) {
		struct tm_batch_hdr h;
		if (records_batch_header_parse(data + at, len - at, &h) || h.batch_length < 0)
			break;
		size_t size = (size_t)h.batch_length + RECORDS_BATCH_OVERHEAD_BYTES;
		int64_t end = h.base_offset + h.last_offset_delta + 1;
		if (end > to || size > len - at)
			break;
		if (end > from) {
			q->applied_epoch = h.partition_leader_epoch;
			q->applied_ts = h.max_timestamp;
			q->snap_bytes_since += (int64_t)size;
		}
		at += size;
	}
}

/* FetchSnapshot on the leader: the chunk [position, position + max) of the
 * snapshot file.  A Kafka error code; *buf (malloc'd) and *len on success. */
static int16_t q_snap_read_chunk(struct tm_quorum *q, const struct raft_fetch_snapshot_resp *r, uint8_t **buf,
				 size_t *len, int64_t *size)
{
	struct md_snapshot_id id = { r->snapshot_offset, r->snapshot_epoch };
	char path[1300];
	q_snap_path(q, id, false, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return TM_ERR_SNAPSHOT_NOT_FOUND;
	struct stat st;
	int16_t err = TM_ERR_NONE;
	if (fstat(fd, &st) || st.st_size > Q_SNAPSHOT_BYTES_MAX)
		err = TM_ERR_SNAPSHOT_NOT_FOUND;
	else if (r->position < 0 || r->position > st.st_size)
		err = TM_ERR_POSITION_OUT_OF_RANGE;
	if (!err) {
		int64_t n = st.st_size - r->position;
		if (r->max_bytes > 0 && n > r->max_bytes)
			n = r->max_bytes;
		*buf = malloc(n ? (size_t)n : 1);
		if (!*buf || q_pread_all(fd, *buf, (size_t)n, r->position)) {
			free(*buf);
			*buf = NULL;
			err = TM_ERR_SNAPSHOT_NOT_FOUND;
		} else {
			*len = (size_t)n;
			*size = st.st_size;
		}
	}
	close(fd);
	return err;
}

/* A follower: a fetched snapshot is whole in `part`.  Check it, restart the
 * log at its end offset, rename it into place, swap the image.  The core
 * already counts the snapshot as installed, so a snapshot that does not
 * load stops this node (a restart fetches it again) rather than leave its
 * picture of the cluster behind its log. */
static void q_snap_install(struct tm_quorum *q, struct md_snapshot_id id, const char *part)
{
	struct tm_broker *b = q->b;
	char path[1300];
	q_snap_path(q, id, false, path, sizeof(path));
	struct md_image img;
	int64_t ts = -1;
	if (q_snap_load_file(part, &img, &ts)) {
		unlink(part);
		tm_error("quorum", "the metadata snapshot fetched from node %d does not load; stopping (a restart "
			 "fetches it again)", raft_leader_id(&q->raft));
		q_halt();
	}
	q->installing = true;
	int rc = log_truncate_fully_and_start_at(q->mlog, id.end_offset);
	if (!rc && rename(part, path))
		rc = -errno;
	if (!rc)
		rc = q_fsync_dir(q->dir);
	if (rc) {
		tm_error("quorum", "cannot install metadata snapshot %s: %s; stopping", path, strerror(-rc));
		q_halt();
	}
	uint64_t seq = b->md.change_seq;
	md_image_deinit(&b->md);
	b->md = img;
	b->md.change_seq += seq + 1;
	b->md.applied_offset = id.end_offset - 1;
	q->applied = id.end_offset;
	q->applied_epoch = id.epoch;
	q->applied_ts = ts;
	q->snap = id;
	q->snap_bytes_since = 0;
	q->snap_due = false;
	q->snap_last_ms = tm_mono_ms();
	q->installing = false;
	tm_info("quorum", "installed metadata snapshot %s from node %d: %zu topics, %d brokers", path,
		raft_leader_id(&q->raft), b->md.topics.count, b->md.n_brokers);
	partitions_sync(b);
	q_snap_prune(q);
}

/* RAFT_ACT_SNAPSHOT_CHUNK: the core orders chunks by position from 0. */
static void q_snap_chunk(struct tm_quorum *q, const struct raft_action *a)
{
	struct md_snapshot_id id = { a->u.chunk.snapshot_offset, a->u.chunk.snapshot_epoch };
	char part[1300];
	q_snap_path(q, id, true, part, sizeof(part));
	if (a->u.chunk.position == 0) {
		if (q->snap_in_fd >= 0) {
			/* An earlier fetch was abandoned (leader change, snapshot replaced). */
			char old[1300];
			q_snap_path(q, q->snap_in, true, old, sizeof(old));
			close(q->snap_in_fd);
			unlink(old);
		}
		q->snap_in = id;
		q->snap_in_fd = a->u.chunk.size > Q_SNAPSHOT_BYTES_MAX
					? -EFBIG
					: open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (q->snap_in_fd < 0) {
			tm_error("quorum", "cannot write metadata snapshot %s: %s; stopping", part,
				 q->snap_in_fd == -EFBIG ? "larger than 1 GiB" : strerror(errno));
			q_halt();
		}
		tm_info("quorum", "fetching metadata snapshot %s (%" PRId64 " bytes) from node %d: this node's log "
			"is behind the leader's log start", part, a->u.chunk.size, raft_leader_id(&q->raft));
	}
	if (q->snap_in_fd < 0 || q->snap_in.end_offset != id.end_offset || q->snap_in.epoch != id.epoch) {
		tm_error("quorum", "snapshot chunk at position %" PRId64 " of %s without its start; stopping",
			 a->u.chunk.position, part);
		abort();
	}
	int rc = q_pwrite_all(q->snap_in_fd, a->u.chunk.bytes, a->u.chunk.len, a->u.chunk.position);
	if (!rc && a->u.chunk.done && fsync(q->snap_in_fd))
		rc = -errno;
	if (rc) {
		tm_error("quorum", "cannot write metadata snapshot %s: %s; stopping", part, strerror(-rc));
		q_halt();
	}
	if (!a->u.chunk.done)
		return;
	close(q->snap_in_fd);
	q->snap_in_fd = -1;
	q_snap_install(q, id, part);
}

/* ---- restoring the log's epoch list ------------------------------------------ */

struct q_scan {
	bool done;
	int err;
	uint8_t *data;
	size_t len;
};

static void q_scan_cb(void *arg, int err, uint8_t *data, size_t len)
{
	struct q_scan *s = arg;
	s->done = true;
	s->err = err;
	s->data = data;
	s->len = len;
}

/* Reads the whole log's batch headers synchronously (start-up only) and
 * collects where each leader epoch begins. */
static int q_scan_epochs(struct tm_quorum *q, struct raft_epoch_start **out, uint32_t *n_out)
{
	struct tm_broker *b = q->b;
	int64_t off = log_start_offset(q->mlog), end = log_end_offset(q->mlog);
	struct raft_epoch_start *v = NULL;
	uint32_t n = 0, cap = 0;
	while (off < end) {
		struct q_scan s = { 0 };
		int rc = log_read(q->mlog, off, end, Q_APPLY_CHUNK_BYTES, q_scan_cb, &s);
		if (rc)
			return rc;
		io_flush(b->io);
		while (!s.done) {
			io_wait(b->io, 1000);
			io_process_completions(b->io);
		}
		if (s.err || !s.len) {
			free(s.data);
			free(v);
			return s.err ? s.err : -EBADMSG;
		}
		size_t at = 0;
		while (at + 61 <= s.len) {
			struct tm_batch_hdr h;
			if (records_batch_header_parse(s.data + at, s.len - at, &h))
				break;
			size_t size = (size_t)h.batch_length + 12;
			if (at + size > s.len)
				break;
			if (!n || v[n - 1].epoch != h.partition_leader_epoch) {
				if (n && h.partition_leader_epoch < v[n - 1].epoch) {
					free(s.data);
					free(v);
					tm_error("quorum", "metadata log epochs go backwards at offset %" PRId64, h.base_offset);
					return -EBADMSG;
				}
				if (n == cap) {
					cap = cap ? cap * 2 : 16;
					struct raft_epoch_start *nv = realloc(v, sizeof(*nv) * cap);
					if (!nv) {
						free(s.data);
						free(v);
						return -ENOMEM;
					}
					v = nv;
				}
				v[n].epoch = h.partition_leader_epoch;
				v[n].start_offset = h.base_offset;
				n++;
			}
			off = h.base_offset + h.last_offset_delta + 1;
			at += size;
		}
		free(s.data);
	}
	*out = v;
	*n_out = n;
	return 0;
}

/* ---- answering inbound requests -------------------------------------------------- */

static void q_defer_finish(struct tm_quorum *q, struct tm_req *req)
{
	struct q_answer *a = calloc(1, sizeof(*a));
	TM_ASSERT(a != NULL);
	a->req = req;
	if (q->answers_tail)
		q->answers_tail->next = a;
	else
		q->answers = a;
	q->answers_tail = a;
}

static void q_flush_answers(struct tm_quorum *q)
{
	while (q->answers) {
		struct q_answer *a = q->answers;
		q->answers = a->next;
		if (!q->answers)
			q->answers_tail = NULL;
		struct tm_req *req = a->req;
		free(a);
		req_finish(req);
	}
}

/* ---- the log: appends and durability ------------------------------------------------ */

static void q_append_done(void *arg, int err)
{
	struct tm_quorum *q = arg;
	q->appends_inflight--;
	if (err) {
		tm_error("quorum", "metadata log write failed: %s; this node stops taking part in the quorum",
			 strerror(-err));
		return;
	}
	if (q->stopping)
		return;
	struct raft_event ev = { .type = RAFT_EV_PERSISTED, .now_ms = tm_mono_ms() };
	ev.u.persisted_end = log_flushed_offset(q->mlog);
	q_step(q, &ev);
	q_apply(q); /* entries below a known high watermark may just have arrived */
}

/* Builds the leader-change control batch for an entry without payload. */
static int q_control_batch(struct tm_quorum *q, const struct raft_entry *e, struct tm_wbuf *w)
{
	struct tm_broker *b = q->b;
	struct records_batch_opts o;
	records_batch_opts_init(&o);
	o.base_offset = e->offset;
	o.partition_leader_epoch = e->epoch;
	o.attributes = Q_ATTR_CONTROL;
	struct records_builder rb;
	records_builder_init(&rb, w, &o);
	uint8_t key[4] = { 0, 0, 0, 2 }; /* ControlRecordType v0, LEADER_CHANGE */
	struct kafka_leader_change_message m;
	memset(&m, 0, sizeof(m));
	struct kafka_leader_change_message_voter voters[TM_MAX_VOTERS];
	for (int i = 0; i < b->cfg.voter_count; i++) {
		memset(&voters[i], 0, sizeof(voters[i]));
		voters[i].voter_id = b->cfg.voters[i].id;
	}
	m.version = 0;
	m.leader_id = b->cfg.node_id;
	m.voters = voters;
	m.voters_count = b->cfg.voter_count;
	m.granting_voters = voters;
	m.granting_voters_count = b->cfg.voter_count;
	struct tm_wbuf v;
	wbuf_init(&v);
	/* The message's own Version field leads the value (Kafka writes no
	 * other version prefix for control records). */
	kafka_leader_change_message_encode(&v, 0, &m);
	int rc = records_builder_add(&rb, tm_wall_ms(), kbytes_make(key, 4), kbytes_make(v.buf, v.len), NULL, 0);
	wbuf_deinit(&v);
	if (!rc)
		rc = records_builder_finish(&rb);
	return rc;
}

static void q_do_append(struct tm_quorum *q, const struct raft_entry *e)
{
	struct tm_wbuf w;
	wbuf_init(&w);
	int rc;
	if (e->control && !e->len) {
		rc = q_control_batch(q, e, &w);
	} else {
		wr_bytes(&w, e->payload, e->len);
		rc = w.err;
		if (!rc)
			rc = records_set_base_offset(w.buf, w.len, e->offset);
		if (!rc)
			rc = records_set_partition_leader_epoch(w.buf, w.len, e->epoch);
	}
	if (!rc) {
		/* The metadata log fsyncs every append (flush.messages=1), so the
		 * callback means durable: what the core needs to count it. */
		q->appends_inflight++;
		rc = log_append_replica(q->mlog, w.buf, w.len, tm_wall_ms(), q_append_done, q);
		if (rc)
			q->appends_inflight--;
	}
	wbuf_deinit(&w);
	if (rc)
		tm_error("quorum", "cannot append entry at offset %" PRId64 " to the metadata log: %s", e->offset,
			 strerror(-rc));
}

/* ---- outbound requests --------------------------------------------------------- */

struct q_call {
	struct tm_quorum *q;
	int32_t to;
	struct raft_msg req;
};

static struct tm_peer *q_peer(struct tm_quorum *q, int32_t id)
{
	for (int i = 0; i < q->n_peers; i++)
		if (q->peer_ids[i] == id)
			return q->peers[i];
	return NULL;
}

static const char *const q_msg_names[] = { "?", "Vote", "VoteResponse", "BeginQuorumEpoch",
					   "BeginQuorumEpochResponse", "EndQuorumEpoch", "EndQuorumEpochResponse",
					   "Fetch", "FetchResponse", "FetchSnapshot", "FetchSnapshotResponse" };

static void q_recv(struct tm_quorum *q, struct raft_msg *m)
{
	if (q->stopping)
		return;
	if (tm_log_min_level <= TM_LOG_DEBUG) {
		if (m->type == RAFT_MSG_FETCH_RESP)
			tm_debug("quorum", "recv FetchResponse from %d: error %d hw %" PRId64 " entries %u diverging %d",
				 m->from, m->u.fetch_resp.error, m->u.fetch_resp.high_watermark, m->u.fetch_resp.n_entries,
				 m->u.fetch_resp.diverging_epoch);
		else if (m->type == RAFT_MSG_FETCH_REQ)
			tm_debug("quorum", "recv Fetch from %d: offset %" PRId64 " epoch %d", m->from,
				 m->u.fetch_req.fetch_offset, m->u.fetch_req.last_fetched_epoch);
		else
			tm_debug("quorum", "recv %s from %d", q_msg_names[m->type], m->from);
	}
	struct raft_event ev = { .type = RAFT_EV_RECV, .now_ms = tm_mono_ms() };
	ev.u.recv = m;
	q_step(q, &ev);
}

/* Splits a records blob into entries (one per batch). */
static uint32_t q_entries(const uint8_t *buf, size_t len, struct raft_entry *out, uint32_t max)
{
	uint32_t n = 0;
	size_t at = 0;
	while (n < max && at + 61 <= len) {
		struct tm_batch_hdr h;
		if (records_batch_header_parse(buf + at, len - at, &h))
			break;
		size_t size = (size_t)h.batch_length + 12;
		if (h.batch_length < 49 || at + size > len || h.last_offset_delta < 0)
			break; /* a partial batch ends the response */
		out[n].offset = h.base_offset;
		out[n].epoch = h.partition_leader_epoch;
		out[n].count = (uint32_t)h.last_offset_delta + 1;
		out[n].control = (h.attributes & Q_ATTR_CONTROL) != 0;
		out[n].payload = buf + at;
		out[n].len = (uint32_t)size;
		n++;
		at += size;
	}
	return n;
}

#define Q_ENTRIES_MAX 4096
#define Q_FOREIGN_WARN_MS 10000

/* Says, now and then, that a voter answers for another cluster. */
static void q_warn_foreign(struct tm_quorum *q, int32_t node)
{
	int64_t now = tm_mono_ms();
	if (now - q->foreign_warned_ms < Q_FOREIGN_WARN_MS)
		return;
	q->foreign_warned_ms = now;
	tm_warn("quorum", "node %d answers with INCONSISTENT_CLUSTER_ID: it belongs to another cluster than %s; "
		"check controller.quorum.voters, cluster.id and that node's log.dirs", node, q->b->cluster_id);
}

static void q_call_done(void *arg, int err, struct tm_rd *body)
{
	struct q_call *c = arg;
	struct tm_quorum *q = c->q;
	if (err || q->stopping) {
		free(c);
		return; /* the core resends after its request timeout */
	}
	struct tm_arena a;
	arena_init(&a, 0);
	struct raft_msg m;
	memset(&m, 0, sizeof(m));
	m.from = c->to;
	m.cluster_id = q->b->cluster_id;
	int rc = -EBADMSG;
	switch (c->req.type) {
	case RAFT_MSG_VOTE_REQ: {
		struct kafka_vote_response r;
		rc = kafka_vote_response_decode(body, Q_VOTE_VERSION, &r, &a);
		if (rc || r.topics_count != 1 || r.topics[0].partitions_count != 1)
			break;
		const struct kafka_vote_response_partition_data *p = &r.topics[0].partitions[0];
		m.type = RAFT_MSG_VOTE_RESP;
		m.u.vote_resp.error = r.error_code ? r.error_code : p->error_code;
		m.u.vote_resp.leader_id = p->leader_id;
		m.u.vote_resp.leader_epoch = p->leader_epoch;
		m.u.vote_resp.vote_granted = p->vote_granted;
		m.u.vote_resp.pre_vote = c->req.u.vote_req.pre_vote;
		break;
	}
	case RAFT_MSG_BEGIN_EPOCH_REQ:
	case RAFT_MSG_END_EPOCH_REQ: {
		int16_t top, perr;
		int32_t lid, lep;
		if (c->req.type == RAFT_MSG_BEGIN_EPOCH_REQ) {
			struct kafka_begin_quorum_epoch_response r;
			rc = kafka_begin_quorum_epoch_response_decode(body, Q_EPOCH_RPC_VERSION, &r, &a);
			if (rc || r.topics_count != 1 || r.topics[0].partitions_count != 1) {
				rc = -EBADMSG;
				break;
			}
			top = r.error_code;
			perr = r.topics[0].partitions[0].error_code;
			lid = r.topics[0].partitions[0].leader_id;
			lep = r.topics[0].partitions[0].leader_epoch;
			m.type = RAFT_MSG_BEGIN_EPOCH_RESP;
		} else {
			struct kafka_end_quorum_epoch_response r;
			rc = kafka_end_quorum_epoch_response_decode(body, Q_EPOCH_RPC_VERSION, &r, &a);
			if (rc || r.topics_count != 1 || r.topics[0].partitions_count != 1) {
				rc = -EBADMSG;
				break;
			}
			top = r.error_code;
			perr = r.topics[0].partitions[0].error_code;
			lid = r.topics[0].partitions[0].leader_id;
			lep = r.topics[0].partitions[0].leader_epoch;
			m.type = RAFT_MSG_END_EPOCH_RESP;
		}
		m.u.epoch_resp.error = top ? top : perr;
		m.u.epoch_resp.leader_id = lid;
		m.u.epoch_resp.leader_epoch = lep;
		break;
	}
	case RAFT_MSG_FETCH_REQ: {
		struct kafka_fetch_response r;
		rc = kafka_fetch_response_decode(body, Q_FETCH_VERSION, &r, &a);
		if (rc || r.responses_count != 1 || r.responses[0].partitions_count != 1) {
			rc = rc ? rc : -EBADMSG;
			if (!rc || r.error_code)
				rc = -EBADMSG;
			break;
		}
		const struct kafka_fetch_response_partition_data *p = &r.responses[0].partitions[0];
		struct raft_fetch_resp *f = &m.u.fetch_resp;
		m.type = RAFT_MSG_FETCH_RESP;
		f->error = r.error_code ? r.error_code : p->error_code;
		f->leader_id = p->current_leader.leader_id;
		f->leader_epoch = p->current_leader.leader_epoch;
		f->high_watermark = p->high_watermark;
		f->log_start_offset = p->log_start_offset;
		f->diverging_epoch = p->diverging_epoch.epoch;
		f->diverging_end_offset = p->diverging_epoch.end_offset;
		f->snapshot_offset = p->snapshot_id.end_offset;
		f->snapshot_epoch = p->snapshot_id.epoch;
		f->fetch_offset = c->req.u.fetch_req.fetch_offset;
		f->last_fetched_epoch = c->req.u.fetch_req.last_fetched_epoch;
		struct raft_entry *ents = arena_alloc(&a, sizeof(*ents) * Q_ENTRIES_MAX);
		if (ents && p->records.len > 0) {
			f->entries = ents;
			f->n_entries = q_entries(p->records.ptr, (size_t)p->records.len, ents, Q_ENTRIES_MAX);
		}
		break;
	}
	case RAFT_MSG_FETCH_SNAPSHOT_REQ: {
		struct kafka_fetch_snapshot_response r;
		rc = kafka_fetch_snapshot_response_decode(body, Q_SNAPSHOT_VERSION, &r, &a);
		if (rc || r.topics_count != 1 || r.topics[0].partitions_count != 1) {
			rc = -EBADMSG;
			break;
		}
		const struct kafka_fetch_snapshot_response_partition_snapshot *p = &r.topics[0].partitions[0];
		struct raft_fetch_snapshot_resp *s = &m.u.snap_resp;
		m.type = RAFT_MSG_FETCH_SNAPSHOT_RESP;
		s->error = r.error_code ? r.error_code : p->error_code;
		s->leader_id = p->current_leader.leader_id;
		s->leader_epoch = p->current_leader.leader_epoch;
		s->snapshot_offset = p->snapshot_id.end_offset;
		s->snapshot_epoch = p->snapshot_id.epoch;
		s->position = p->position;
		s->size = p->size;
		s->bytes = p->unaligned_records.ptr;
		s->len = p->unaligned_records.len > 0 ? (uint32_t)p->unaligned_records.len : 0;
		break;
	}
	default:
		break;
	}
	if (!rc && m.u.epoch_resp.error == TM_ERR_INCONSISTENT_CLUSTER_ID && m.type != RAFT_MSG_VOTE_RESP &&
	    m.type != RAFT_MSG_FETCH_RESP && m.type != RAFT_MSG_FETCH_SNAPSHOT_RESP)
		q_warn_foreign(q, c->to);
	else if (!rc && ((m.type == RAFT_MSG_VOTE_RESP && m.u.vote_resp.error == TM_ERR_INCONSISTENT_CLUSTER_ID) ||
			 (m.type == RAFT_MSG_FETCH_RESP && m.u.fetch_resp.error == TM_ERR_INCONSISTENT_CLUSTER_ID) ||
			 (m.type == RAFT_MSG_FETCH_SNAPSHOT_RESP && m.u.snap_resp.error == TM_ERR_INCONSISTENT_CLUSTER_ID)))
		q_warn_foreign(q, c->to);
	if (!rc)
		q_recv(q, &m);
	else
		tm_warn("quorum", "malformed response from node %d to %d; ignored", c->to, c->req.type);
	arena_deinit(&a);
	free(c);
}

static void q_send_request(struct tm_quorum *q, int32_t to, const struct raft_msg *m)
{
	struct tm_broker *b = q->b;
	struct tm_peer *peer = q_peer(q, to);
	if (!peer)
		return;
	struct tm_wbuf w;
	wbuf_init(&w);
	int16_t key, ver;
	struct kstr cid = kstr_c(b->cluster_id);
	switch (m->type) {
	case RAFT_MSG_VOTE_REQ: {
		struct kafka_vote_request r;
		struct kafka_vote_request_topic_data t;
		struct kafka_vote_request_partition_data p;
		kafka_vote_request_init(&r);
		memset(&t, 0, sizeof(t));
		memset(&p, 0, sizeof(p));
		r.cluster_id = cid;
		r.voter_id = to;
		r.topics = &t;
		r.topics_count = 1;
		t.topic_name = kstr_c(Q_TOPIC);
		t.partitions = &p;
		t.partitions_count = 1;
		p.replica_epoch = m->u.vote_req.candidate_epoch;
		p.replica_id = m->u.vote_req.candidate_id;
		p.last_offset_epoch = m->u.vote_req.last_offset_epoch;
		p.last_offset = m->u.vote_req.last_offset;
		p.pre_vote = m->u.vote_req.pre_vote;
		key = KAFKA_API_VOTE;
		ver = Q_VOTE_VERSION;
		kafka_vote_request_encode(&w, ver, &r);
		break;
	}
	case RAFT_MSG_BEGIN_EPOCH_REQ: {
		struct kafka_begin_quorum_epoch_request r;
		struct kafka_begin_quorum_epoch_request_topic_data t;
		struct kafka_begin_quorum_epoch_request_partition_data p;
		kafka_begin_quorum_epoch_request_init(&r);
		memset(&t, 0, sizeof(t));
		memset(&p, 0, sizeof(p));
		r.cluster_id = cid;
		r.topics = &t;
		r.topics_count = 1;
		r.leader_endpoints_count = 0;
		t.topic_name = kstr_c(Q_TOPIC);
		t.partitions = &p;
		t.partitions_count = 1;
		p.leader_id = m->u.begin_req.leader_id;
		p.leader_epoch = m->u.begin_req.leader_epoch;
		key = KAFKA_API_BEGIN_QUORUM_EPOCH;
		ver = Q_EPOCH_RPC_VERSION;
		kafka_begin_quorum_epoch_request_encode(&w, ver, &r);
		break;
	}
	case RAFT_MSG_END_EPOCH_REQ: {
		struct kafka_end_quorum_epoch_request r;
		struct kafka_end_quorum_epoch_request_topic_data t;
		struct kafka_end_quorum_epoch_request_partition_data p;
		int32_t succ[RAFT_VOTERS_MAX];
		kafka_end_quorum_epoch_request_init(&r);
		memset(&t, 0, sizeof(t));
		memset(&p, 0, sizeof(p));
		r.cluster_id = cid;
		r.topics = &t;
		r.topics_count = 1;
		r.leader_endpoints_count = 0;
		t.topic_name = kstr_c(Q_TOPIC);
		t.partitions = &p;
		t.partitions_count = 1;
		p.leader_id = m->u.end_req.leader_id;
		p.leader_epoch = m->u.end_req.leader_epoch;
		for (uint32_t i = 0; i < m->u.end_req.n_preferred && i < RAFT_VOTERS_MAX; i++)
			succ[i] = m->u.end_req.preferred[i];
		p.preferred_successors = succ;
		p.preferred_successors_count = (int32_t)m->u.end_req.n_preferred;
		p.preferred_candidates_count = 0;
		key = KAFKA_API_END_QUORUM_EPOCH;
		ver = Q_EPOCH_RPC_VERSION;
		kafka_end_quorum_epoch_request_encode(&w, ver, &r);
		break;
	}
	case RAFT_MSG_FETCH_REQ: {
		struct kafka_fetch_request r;
		struct kafka_fetch_request_fetch_topic t;
		struct kafka_fetch_request_fetch_partition p;
		kafka_fetch_request_init(&r);
		memset(&t, 0, sizeof(t));
		memset(&p, 0, sizeof(p));
		r.cluster_id = cid;
		r.replica_state.replica_id = m->u.fetch_req.replica_id;
		r.replica_state.replica_epoch = -1;
		r.max_wait_ms = m->u.fetch_req.max_wait_ms;
		r.min_bytes = 0;
		r.max_bytes = m->u.fetch_req.max_bytes;
		r.session_epoch = -1;
		r.topics = &t;
		r.topics_count = 1;
		r.forgotten_topics_data_count = 0;
		r.rack_id = kstr_c("");
		t.topic_id = q_topic_id;
		t.topic = kstr_c(Q_TOPIC);
		t.partitions = &p;
		t.partitions_count = 1;
		p.partition = 0;
		p.current_leader_epoch = m->u.fetch_req.current_leader_epoch;
		p.fetch_offset = m->u.fetch_req.fetch_offset;
		p.last_fetched_epoch = m->u.fetch_req.last_fetched_epoch;
		p.log_start_offset = -1;
		p.partition_max_bytes = m->u.fetch_req.max_bytes;
		key = KAFKA_API_FETCH;
		ver = Q_FETCH_VERSION;
		kafka_fetch_request_encode(&w, ver, &r);
		break;
	}
	case RAFT_MSG_FETCH_SNAPSHOT_REQ: {
		struct kafka_fetch_snapshot_request r;
		struct kafka_fetch_snapshot_request_topic_snapshot t;
		struct kafka_fetch_snapshot_request_partition_snapshot p;
		kafka_fetch_snapshot_request_init(&r);
		memset(&t, 0, sizeof(t));
		memset(&p, 0, sizeof(p));
		r.cluster_id = cid;
		r.replica_id = m->u.snap_req.replica_id;
		r.max_bytes = m->u.snap_req.max_bytes;
		r.topics = &t;
		r.topics_count = 1;
		t.name = kstr_c(Q_TOPIC);
		t.partitions = &p;
		t.partitions_count = 1;
		p.current_leader_epoch = m->u.snap_req.current_leader_epoch;
		p.snapshot_id.end_offset = m->u.snap_req.snapshot_offset;
		p.snapshot_id.epoch = m->u.snap_req.snapshot_epoch;
		p.position = m->u.snap_req.position;
		key = KAFKA_API_FETCH_SNAPSHOT;
		ver = Q_SNAPSHOT_VERSION;
		kafka_fetch_snapshot_request_encode(&w, ver, &r);
		break;
	}
	default:
		wbuf_deinit(&w);
		return;
	}
	struct q_call *c = calloc(1, sizeof(*c));
	TM_ASSERT(c != NULL);
	c->q = q;
	c->to = to;
	c->req = *m;
	int timeout = m->type == RAFT_MSG_FETCH_REQ ? m->u.fetch_req.max_wait_ms + Q_RPC_TIMEOUT_MS : Q_RPC_TIMEOUT_MS;
	if (peer_send(peer, key, ver, &w, timeout, q_call_done, c))
		free(c);
	wbuf_deinit(&w);
}

/* ---- answers to inbound requests ----------------------------------------------- */

struct q_fetch_answer {
	struct tm_quorum *q;
	struct tm_req *req;
	struct raft_fetch_resp resp;
};

static void q_encode_fetch_response(struct tm_req *req, const struct raft_fetch_resp *f, const uint8_t *data,
				    size_t len)
{
	struct kafka_fetch_response r;
	struct kafka_fetch_response_fetchable_topic_response t;
	struct kafka_fetch_response_partition_data p;
	kafka_fetch_response_init(&r);
	memset(&t, 0, sizeof(t));
	memset(&p, 0, sizeof(p));
	r.responses = &t;
	r.responses_count = 1;
	t.topic = kstr_c(Q_TOPIC);
	t.topic_id = q_topic_id;
	t.partitions = &p;
	t.partitions_count = 1;
	p.error_code = f->error;
	p.high_watermark = f->high_watermark;
	p.last_stable_offset = f->high_watermark;
	p.log_start_offset = f->log_start_offset;
	p.diverging_epoch.epoch = f->diverging_epoch;
	p.diverging_epoch.end_offset = f->diverging_end_offset;
	p.current_leader.leader_id = f->leader_id;
	p.current_leader.leader_epoch = f->leader_epoch;
	p.snapshot_id.end_offset = f->snapshot_offset;
	p.snapshot_id.epoch = f->snapshot_epoch;
	p.aborted_transactions_count = -1;
	p.preferred_read_replica = -1;
	p.records = kbytes_make(data ? (const void *)data : "", len);
	kafka_fetch_response_encode(&req->resp, req->hdr.api_version, &r);
}

static void q_fetch_read_done(void *arg, int err, uint8_t *data, size_t len)
{
	struct q_fetch_answer *fa = arg;
	if (err) {
		free(data);
		data = NULL;
		len = 0;
	}
	q_encode_fetch_response(fa->req, &fa->resp, data, len);
	free(data);
	req_finish(fa->req);
	free(fa);
}

static void q_send_response(struct tm_quorum *q, int32_t to, const struct raft_msg *m)
{
	if (m->type == RAFT_MSG_FETCH_RESP) {
		struct q_parked **pp = &q->parked;
		while (*pp && (*pp)->from != to)
			pp = &(*pp)->next;
		if (!*pp)
			return;
		struct q_parked *pk = *pp;
		*pp = pk->next;
		struct tm_req *req = pk->req;
		free(pk);
		const struct raft_fetch_resp *f = &m->u.fetch_resp;
		if (f->records_end > f->records_from && !f->error) {
			struct q_fetch_answer *fa = calloc(1, sizeof(*fa));
			TM_ASSERT(fa != NULL);
			fa->q = q;
			fa->req = req;
			fa->resp = *f;
			size_t max = f->max_bytes > 0 ? (size_t)f->max_bytes : 1;
			if (log_read(q->mlog, f->records_from, f->records_end, max, q_fetch_read_done, fa) == 0)
				return;
			free(fa);
		}
		q_encode_fetch_response(req, f, NULL, 0);
		q_defer_finish(q, req);
		return;
	}
	if (!q->answering || to != q->answer_to || m->type != q->answer_type)
		return;
	struct tm_req *req = q->answering;
	q->answering = NULL;
	switch (m->type) {
	case RAFT_MSG_VOTE_RESP: {
		struct kafka_vote_response r;
		struct kafka_vote_response_topic_data t;
		struct kafka_vote_response_partition_data p;
		kafka_vote_response_init(&r);
		memset(&t, 0, sizeof(t));
		memset(&p, 0, sizeof(p));
		r.topics = &t;
		r.topics_count = 1;
		r.node_endpoints_count = -1;
		t.topic_name = kstr_c(Q_TOPIC);
		t.partitions = &p;
		t.partitions_count = 1;
		p.error_code = m->u.vote_resp.error;
		p.leader_id = m->u.vote_resp.leader_id;
		p.leader_epoch = m->u.vote_resp.leader_epoch;
		p.vote_granted = m->u.vote_resp.vote_granted;
		kafka_vote_response_encode(&req->resp, req->hdr.api_version, &r);
		break;
	}
	case RAFT_MSG_BEGIN_EPOCH_RESP: {
		struct kafka_begin_quorum_epoch_response r;
		struct kafka_begin_quorum_epoch_response_topic_data t;
		struct kafka_begin_quorum_epoch_response_partition_data p;
		kafka_begin_quorum_epoch_response_init(&r);
		memset(&t, 0, sizeof(t));
		memset(&p, 0, sizeof(p));
		r.topics = &t;
		r.topics_count = 1;
		r.node_endpoints_count = -1;
		t.topic_name = kstr_c(Q_TOPIC);
		t.partitions = &p;
		t.partitions_count = 1;
		p.error_code = m->u.epoch_resp.error;
		p.leader_id = m->u.epoch_resp.leader_id;
		p.leader_epoch = m->u.epoch_resp.leader_epoch;
		kafka_begin_quorum_epoch_response_encode(&req->resp, req->hdr.api_version, &r);
		break;
	}
	case RAFT_MSG_END_EPOCH_RESP: {
		struct kafka_end_quorum_epoch_response r;
		struct kafka_end_quorum_epoch_response_topic_data t;
		struct kafka_end_quorum_epoch_response_partition_data p;
		kafka_end_quorum_epoch_response_init(&r);
		memset(&t, 0, sizeof(t));
		memset(&p, 0, sizeof(p));
		r.topics = &t;
		r.topics_count = 1;
		r.node_endpoints_count = -1;
		t.topic_name = kstr_c(Q_TOPIC);
		t.partitions = &p;
		t.partitions_count = 1;
		p.error_code = m->u.epoch_resp.error;
		p.leader_id = m->u.epoch_resp.leader_id;
		p.leader_epoch = m->u.epoch_resp.leader_epoch;
		kafka_end_quorum_epoch_response_encode(&req->resp, req->hdr.api_version, &r);
		break;
	}
	case RAFT_MSG_FETCH_SNAPSHOT_RESP: {
		struct kafka_fetch_snapshot_response r;
		struct kafka_fetch_snapshot_response_topic_snapshot t;
		struct kafka_fetch_snapshot_response_partition_snapshot p;
		kafka_fetch_snapshot_response_init(&r);
		memset(&t, 0, sizeof(t));
		memset(&p, 0, sizeof(p));
		r.topics = &t;
		r.topics_count = 1;
		r.node_endpoints_count = -1;
		t.name = kstr_c(Q_TOPIC);
		t.partitions = &p;
		t.partitions_count = 1;
		uint8_t *chunk = NULL;
		size_t chunk_len = 0;
		int64_t size = -1;
		int16_t err = m->u.snap_resp.error;
		if (!err)
			err = q_snap_read_chunk(q, &m->u.snap_resp, &chunk, &chunk_len, &size);
		p.error_code = err;
		p.snapshot_id.end_offset = m->u.snap_resp.snapshot_offset;
		p.snapshot_id.epoch = m->u.snap_resp.snapshot_epoch;
		p.current_leader.leader_id = m->u.snap_resp.leader_id;
		p.current_leader.leader_epoch = m->u.snap_resp.leader_epoch;
		p.position = m->u.snap_resp.position;
		p.size = err ? -1 : size;
		p.unaligned_records = kbytes_make(chunk ? (const void *)chunk : "", chunk_len);
		kafka_fetch_snapshot_response_encode(&req->resp, req->hdr.api_version, &r);
		free(chunk);
		break;
	}
	default:
		break;
	}
	q_defer_finish(q, req);
}

/* ---- applying committed entries to the image ------------------------------------------ */

static void q_notify_waiters(struct tm_quorum *q, int err)
{
	while (q->waiters && (err || q->waiters->last_offset < q->applied)) {
		struct q_waiter *w = q->waiters;
		q->waiters = w->next;
		if (!q->waiters)
			q->waiters_tail = NULL;
		w->cb(q->b, w->arg, err);
		free(w);
	}
}

static void q_apply_done(void *arg, int err, uint8_t *data, size_t len)
{
	struct tm_quorum *q = arg;
	struct tm_broker *b = q->b;
	q->applying = false;
	if (q->stopping || q->installing || q->apply_from != q->applied) {
		/* A snapshot was installed meanwhile: it replaces what this read held. */
		free(data);
		if (!q->stopping && !q->installing)
			q_apply(q);
		return;
	}
	if (err || !len) {
		free(data);
		tm_error("quorum", "cannot read committed metadata at offset %" PRId64 ": %s", q->applied,
			 err ? strerror(-err) : "no data");
		return;
	}
	int64_t next = q->applied;
	int64_t limit = q->hw < log_written_offset(q->mlog) ? q->hw : log_written_offset(q->mlog);
	int rc = controller_apply_batches(b, data, len, limit, &next);
	if (rc) {
		free(data);
		tm_error("quorum", "committed metadata at offset %" PRId64 " does not apply; this node stops applying "
			 "metadata (its picture of the cluster would be wrong)", q->applied);
		return;
	}
	if (next > q->applied) {
		q_note_applied(q, data, len, q->applied, next);
		q->applied = next;
		b->md.applied_offset = next - 1;
		partitions_sync(b);
	}
	free(data);
	q_notify_waiters(q, 0);
	/* Taken from the tick, never from inside a log callback (this one may
	 * run while the log drains for a truncation). */
	if (q->snap_bytes_since >= b->cfg.metadata_log_max_record_bytes_between_snapshots)
		q->snap_due = true;
	q_apply(q);
	broker_kick_io(b);
}

/* Applies what is both committed and in the local log: a follower may learn
 * a high watermark before the entries below it are written here. */
static void q_apply(struct tm_quorum *q)
{
	int64_t limit = q->hw;
	if (limit > log_written_offset(q->mlog))
		limit = log_written_offset(q->mlog);
	if (q->applying || q->applied >= limit || q->stopping || q->installing)
		return;
	if (log_read(q->mlog, q->applied, limit, Q_APPLY_CHUNK_BYTES, q_apply_done, q) == 0) {
		q->applying = true;
		q->apply_from = q->applied;
	}
}

/* ---- stepping the core ------------------------------------------------------------------ */

static void q_perform(struct tm_quorum *q, const struct raft_action *a)
{
	struct tm_broker *b = q->b;
	switch (a->type) {
	case RAFT_ACT_PERSIST_STATE: {
		int rc = q_state_write(q, a->u.persist.epoch, a->u.persist.voted_id, a->u.persist.leader_id);
		if (rc) {
			tm_error("quorum", "cannot write %s/quorum-state: %s; stopping, a vote must never be forgotten",
				 q->dir, strerror(-rc));
			q_halt();
		}
		break;
	}
	case RAFT_ACT_APPEND:
		q_do_append(q, &a->u.append);
		break;
	case RAFT_ACT_TRUNCATE: {
		int rc = log_truncate_to(q->mlog, a->u.truncate_offset);
		if (rc) {
			tm_error("quorum", "cannot truncate the metadata log to %" PRId64 ": %s", a->u.truncate_offset,
				 strerror(-rc));
			q_halt();
		}
		break;
	}
	case RAFT_ACT_COMMIT:
		q->hw = a->u.commit_offset;
		if (q->catch_up_target < 0)
			q->catch_up_target = q->hw;
		q_apply(q);
		break;
	case RAFT_ACT_SEND:
		tm_debug("quorum", "send %s to %d", q_msg_names[a->u.send.msg.type], a->u.send.to);
		switch (a->u.send.msg.type) {
		case RAFT_MSG_VOTE_RESP:
		case RAFT_MSG_BEGIN_EPOCH_RESP:
		case RAFT_MSG_END_EPOCH_RESP:
		case RAFT_MSG_FETCH_RESP:
		case RAFT_MSG_FETCH_SNAPSHOT_RESP:
			q_send_response(q, a->u.send.to, &a->u.send.msg);
			break;
		default:
			q_send_request(q, a->u.send.to, &a->u.send.msg);
			break;
		}
		break;
	case RAFT_ACT_SNAPSHOT_CHUNK:
		q_snap_chunk(q, a);
		break;
	case RAFT_ACT_ROLE:
		tm_info("quorum", "node %d is %s in epoch %d (leader %d)", b->cfg.node_id,
			raft_role_name(a->u.role.role), a->u.role.epoch, a->u.role.leader_id);
		if (a->u.role.role != RAFT_LEADER)
			q_notify_waiters(q, -ENOTCONN); /* proposals may never commit */
		controller_role_changed(b, a->u.role.role == RAFT_LEADER);
		break;
	}
}

static void q_step_ex(struct tm_quorum *q, const struct raft_event *ev, int64_t *propose_offset,
		      int16_t *propose_error)
{
	q->depth++;
	struct raft_actions acts;
	raft_actions_init(&acts);
	int rc = raft_step(&q->raft, ev, &acts);
	if (propose_offset) {
		*propose_offset = acts.propose_offset;
		*propose_error = acts.propose_error;
	}
	if (rc) {
		tm_error("quorum", "the Raft core refused an event (%s); stopping rather than diverge", strerror(-rc));
		abort();
	}
	for (size_t i = 0; i < acts.n; i++)
		q_perform(q, &acts.v[i]);
	raft_actions_deinit(&acts);
	q->depth--;
	if (!q->depth) {
		q_flush_answers(q);
		broker_kick_io(q->b);
	}
}

static void q_step(struct tm_quorum *q, const struct raft_event *ev)
{
	q_step_ex(q, ev, NULL, NULL);
}

/* ---- inbound RPCs on the controller listener ------------------------------------------- */

/* The request's cluster id as a C string for the core ("" when null). */
static void q_cluster_id(char out[64], struct kstr id)
{
	/* Truncated, never emptied: an over-long foreign id must still mismatch. */
	int n = id.len <= 0 ? 0 : id.len > 63 ? 63 : id.len;
	if (n)
		memcpy(out, id.ptr, (size_t)n);
	out[n] = 0;
}

/* Steps an inbound request; answers it with `fallback` when the core did not. */
static void q_step_request(struct tm_quorum *q, struct tm_req *req, struct raft_msg *m, enum raft_msg_type answer)
{
	q->answering = req;
	q->answer_type = answer;
	q->answer_to = m->from;
	q_recv(q, m);
	if (q->answering == req) {
		/* The core drops what it cannot use (e.g. a stale epoch): answer with
		 * an error so the sender's request does not hang. */
		q->answering = NULL;
		struct raft_msg r;
		memset(&r, 0, sizeof(r));
		r.type = answer;
		r.u.epoch_resp.error = TM_ERR_INVALID_REQUEST;
		r.u.epoch_resp.leader_id = raft_leader_id(&q->raft);
		r.u.epoch_resp.leader_epoch = raft_epoch(&q->raft);
		if (answer == RAFT_MSG_VOTE_RESP) {
			r.u.vote_resp.error = TM_ERR_INVALID_REQUEST;
			r.u.vote_resp.leader_id = raft_leader_id(&q->raft);
			r.u.vote_resp.leader_epoch = raft_epoch(&q->raft);
		}
		q->answering = req;
		q->depth++;
		q_send_response(q, m->from, &r);
		q->depth--;
		if (!q->depth)
			q_flush_answers(q);
	}
}

void api_vote(struct tm_req *req)
{
	struct tm_quorum *q = Q(req->b);
	struct kafka_vote_request in;
	if (REQ_DECODE(req, vote, &in))
		return;
	if (in.topics_count != 1 || in.topics[0].partitions_count != 1) {
		req_fail_decode(req);
		return;
	}
	const struct kafka_vote_request_partition_data *p = &in.topics[0].partitions[0];
	struct raft_msg m;
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_VOTE_REQ;
	m.from = p->replica_id;
	char cid[64];
	q_cluster_id(cid, in.cluster_id);
	m.cluster_id = cid;
	m.u.vote_req.candidate_epoch = p->replica_epoch;
	m.u.vote_req.candidate_id = p->replica_id;
	m.u.vote_req.voter_id = in.voter_id;
	m.u.vote_req.last_offset_epoch = p->last_offset_epoch;
	m.u.vote_req.last_offset = p->last_offset;
	m.u.vote_req.pre_vote = p->pre_vote;
	q_step_request(q, req, &m, RAFT_MSG_VOTE_RESP);
}

void api_begin_quorum_epoch(struct tm_req *req)
{
	struct tm_quorum *q = Q(req->b);
	struct kafka_begin_quorum_epoch_request in;
	if (REQ_DECODE(req, begin_quorum_epoch, &in))
		return;
	if (in.topics_count != 1 || in.topics[0].partitions_count != 1) {
		req_fail_decode(req);
		return;
	}
	const struct kafka_begin_quorum_epoch_request_partition_data *p = &in.topics[0].partitions[0];
	struct raft_msg m;
	memset(&m, 0, sizeof(m));
	char cid[64];
	q_cluster_id(cid, in.cluster_id);
	m.cluster_id = cid;
	m.type = RAFT_MSG_BEGIN_EPOCH_REQ;
	m.from = p->leader_id;
	m.u.begin_req.leader_id = p->leader_id;
	m.u.begin_req.leader_epoch = p->leader_epoch;
	m.u.begin_req.voter_id = req->b->cfg.node_id;
	q_step_request(q, req, &m, RAFT_MSG_BEGIN_EPOCH_RESP);
}

void api_end_quorum_epoch(struct tm_req *req)
{
	struct tm_quorum *q = Q(req->b);
	struct kafka_end_quorum_epoch_request in;
	if (REQ_DECODE(req, end_quorum_epoch, &in))
		return;
	if (in.topics_count != 1 || in.topics[0].partitions_count != 1) {
		req_fail_decode(req);
		return;
	}
	const struct kafka_end_quorum_epoch_request_partition_data *p = &in.topics[0].partitions[0];
	struct raft_msg m;
	memset(&m, 0, sizeof(m));
	char cid[64];
	q_cluster_id(cid, in.cluster_id);
	m.cluster_id = cid;
	m.type = RAFT_MSG_END_EPOCH_REQ;
	m.from = p->leader_id;
	m.u.end_req.leader_id = p->leader_id;
	m.u.end_req.leader_epoch = p->leader_epoch;
	for (int32_t i = 0; i < p->preferred_successors_count && i < RAFT_VOTERS_MAX; i++)
		m.u.end_req.preferred[m.u.end_req.n_preferred++] = p->preferred_successors[i];
	for (int32_t i = 0; i < p->preferred_candidates_count && m.u.end_req.n_preferred < RAFT_VOTERS_MAX; i++)
		m.u.end_req.preferred[m.u.end_req.n_preferred++] = p->preferred_candidates[i].candidate_id;
	q_step_request(q, req, &m, RAFT_MSG_END_EPOCH_RESP);
}

void api_fetch_snapshot(struct tm_req *req)
{
	struct tm_quorum *q = Q(req->b);
	struct kafka_fetch_snapshot_request in;
	if (REQ_DECODE(req, fetch_snapshot, &in))
		return;
	if (in.topics_count != 1 || in.topics[0].partitions_count != 1) {
		req_fail_decode(req);
		return;
	}
	const struct kafka_fetch_snapshot_request_partition_snapshot *p = &in.topics[0].partitions[0];
	struct raft_msg m;
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_FETCH_SNAPSHOT_REQ;
	m.from = in.replica_id;
	char cid[64];
	q_cluster_id(cid, in.cluster_id); /* a snapshot goes only to this cluster's nodes */
	m.cluster_id = cid;
	m.u.snap_req.replica_id = in.replica_id;
	m.u.snap_req.current_leader_epoch = p->current_leader_epoch;
	m.u.snap_req.snapshot_offset = p->snapshot_id.end_offset;
	m.u.snap_req.snapshot_epoch = p->snapshot_id.epoch;
	m.u.snap_req.position = p->position;
	m.u.snap_req.max_bytes = in.max_bytes;
	q_step_request(q, req, &m, RAFT_MSG_FETCH_SNAPSHOT_RESP);
}

void quorum_handle_fetch(struct tm_req *req, struct kafka_fetch_request *in)
{
	struct tm_quorum *q = Q(req->b);
	int32_t replica = req->hdr.api_version >= 15 ? in->replica_state.replica_id : in->replica_id;
	if (in->topics_count != 1 || in->topics[0].partitions_count != 1 || replica < 0) {
		req_fail_decode(req);
		return;
	}
	const struct kafka_fetch_request_fetch_partition *p = &in->topics[0].partitions[0];
	struct q_parked *pk = calloc(1, sizeof(*pk));
	TM_ASSERT(pk != NULL);
	pk->req = req;
	pk->from = replica;
	pk->fetch_offset = p->fetch_offset;
	pk->last_fetched_epoch = p->last_fetched_epoch;
	struct q_parked **tail = &q->parked;
	while (*tail)
		tail = &(*tail)->next;
	*tail = pk;
	struct raft_msg m;
	memset(&m, 0, sizeof(m));
	char cid[64];
	q_cluster_id(cid, in->cluster_id);
	m.cluster_id = cid;
	m.type = RAFT_MSG_FETCH_REQ;
	m.from = replica;
	m.u.fetch_req.replica_id = replica;
	m.u.fetch_req.current_leader_epoch = p->current_leader_epoch;
	m.u.fetch_req.fetch_offset = p->fetch_offset;
	m.u.fetch_req.last_fetched_epoch = p->last_fetched_epoch;
	m.u.fetch_req.max_wait_ms = in->max_wait_ms;
	m.u.fetch_req.max_bytes = p->partition_max_bytes;
	q_recv(q, &m);
}

/* ---- DescribeQuorum ------------------------------------------------------------------ */

static void q_fill_replica(struct kafka_describe_quorum_response_replica_state *o, const struct raft_replica_info *i,
			   int64_t mono_now, int64_t wall_now)
{
	memset(o, 0, sizeof(*o));
	o->replica_id = i->replica_id;
	o->log_end_offset = i->log_end_offset;
	o->last_fetch_timestamp = i->last_fetch_ms < 0 ? -1 : wall_now - (mono_now - i->last_fetch_ms);
	o->last_caught_up_timestamp = i->last_caught_up_ms < 0 ? -1 : wall_now - (mono_now - i->last_caught_up_ms);
}

static void q_describe_forwarded(void *arg, int err, struct tm_rd *body)
{
	struct tm_req *req = arg;
	if (err) {
		req_fail_decode(req); /* the client retries on the closed connection */
		return;
	}
	wr_bytes(&req->resp, body->buf + body->pos, rd_remaining(body));
	req_finish(req);
}

void api_describe_quorum(struct tm_req *req)
{
	struct tm_broker *b = req->b;
	struct tm_quorum *q = Q(b);
	struct tm_rd raw = req->body; /* forwarded as received */
	struct kafka_describe_quorum_request in;
	if (REQ_DECODE(req, describe_quorum, &in))
		return;
	if (!quorum_is_leader(b)) {
		/* Brokers forward DescribeQuorum to the active controller. */
		struct tm_peer *leader = quorum_leader_peer(b);
		if (leader) {
			struct tm_wbuf w;
			wbuf_init(&w);
			wr_bytes(&w, raw.buf + raw.pos, rd_remaining(&raw));
			int rc = peer_send(leader, KAFKA_API_DESCRIBE_QUORUM, req->hdr.api_version, &w, Q_RPC_TIMEOUT_MS,
					   q_describe_forwarded, req);
			wbuf_deinit(&w);
			if (!rc)
				return;
		}
	}
	struct raft_quorum_info info;
	raft_describe_quorum(&q->raft, &info);
	struct kafka_describe_quorum_response r;
	struct kafka_describe_quorum_response_topic_data t;
	struct kafka_describe_quorum_response_partition_data p;
	kafka_describe_quorum_response_init(&r);
	memset(&t, 0, sizeof(t));
	memset(&p, 0, sizeof(p));
	r.topics = &t;
	r.topics_count = 1;
	t.topic_name = kstr_c(Q_TOPIC);
	t.partitions = &p;
	t.partitions_count = 1;
	p.error_code = info.error;
	p.error_message = kstr_null();
	p.leader_id = info.leader_id;
	p.leader_epoch = info.leader_epoch;
	p.high_watermark = info.high_watermark;
	int64_t mono = tm_mono_ms(), wall = tm_wall_ms();
	p.current_voters = arena_alloc(&req->arena, sizeof(*p.current_voters) * (info.n_voters + 1));
	p.observers = arena_alloc(&req->arena, sizeof(*p.observers) * (info.n_observers + 1));
	p.current_voters_count = (int32_t)info.n_voters;
	p.observers_count = (int32_t)info.n_observers;
	for (uint32_t i = 0; p.current_voters && i < info.n_voters; i++)
		q_fill_replica(&p.current_voters[i], &info.voters[i], mono, wall);
	for (uint32_t i = 0; p.observers && i < info.n_observers; i++)
		q_fill_replica(&p.observers[i], &info.observers[i], mono, wall);
	/* v2: every voter's controller endpoint. */
	r.error_message = kstr_null();
	r.nodes = arena_alloc(&req->arena, sizeof(*r.nodes) * (size_t)b->cfg.voter_count);
	r.nodes_count = r.nodes ? b->cfg.voter_count : 0;
	for (int i = 0; i < r.nodes_count; i++) {
		r.nodes[i].node_id = b->cfg.voters[i].id;
		r.nodes[i].listeners = arena_alloc(&req->arena, sizeof(*r.nodes[i].listeners));
		r.nodes[i].listeners_count = r.nodes[i].listeners ? 1 : 0;
		if (r.nodes[i].listeners) {
			const char *name = b->cfg.controller_listener_names;
			size_t nl = strcspn(name, ",");
			r.nodes[i].listeners[0].name = (struct kstr){ name, (int32_t)nl };
			r.nodes[i].listeners[0].host = kstr_c(b->cfg.voters[i].host);
			r.nodes[i].listeners[0].port = (uint16_t)b->cfg.voters[i].port;
		}
	}
	REQ_RESPOND(req, describe_quorum, &r);
}

/* ---- proposals ------------------------------------------------------------------------ */

int quorum_propose(struct tm_broker *b, const uint8_t *batch, size_t len, uint32_t count, quorum_commit_cb cb,
		   void *arg)
{
	struct tm_quorum *q = Q(b);
	if (!quorum_is_leader(b) || q->stopping)
		return -ENOTCONN;
	struct q_waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	struct raft_event ev = { .type = RAFT_EV_PROPOSE, .now_ms = tm_mono_ms() };
	ev.u.propose.payload = batch;
	ev.u.propose.len = (uint32_t)len;
	ev.u.propose.count = count;
	int64_t off = -1;
	int16_t perr = 0;
	q_step_ex(q, &ev, &off, &perr);
	if (off < 0 || perr) {
		free(w);
		return perr == TM_ERR_MESSAGE_TOO_LARGE ? -EMSGSIZE : -ENOTCONN;
	}
	w->last_offset = off + count - 1;
	w->cb = cb;
	w->arg = arg;
	if (q->waiters_tail)
		q->waiters_tail->next = w;
	else
		q->waiters = w;
	q->waiters_tail = w;
	return 0;
}

/* ---- queries ---------------------------------------------------------------------------- */

bool quorum_log_offline(const struct tm_broker *b)
{
	const struct tm_quorum *q = Q(b);
	return q && q->mlog && log_dir_offline(q->mlog);
}

bool quorum_is_leader(const struct tm_broker *b)
{
	return Q(b) && raft_role(&Q(b)->raft) == RAFT_LEADER;
}

int32_t quorum_leader_id(const struct tm_broker *b)
{
	return Q(b) ? raft_leader_id(&Q(b)->raft) : -1;
}

int32_t quorum_epoch(const struct tm_broker *b)
{
	return Q(b) ? raft_epoch(&Q(b)->raft) : -1;
}

bool quorum_caught_up(const struct tm_broker *b)
{
	const struct tm_quorum *q = Q(b);
	return q && q->catch_up_target >= 0 && q->applied >= q->catch_up_target;
}

int64_t quorum_applied_offset(const struct tm_broker *b)
{
	return Q(b) ? Q(b)->applied : 0;
}

bool quorum_voter_endpoint(const struct tm_broker *b, int32_t id, const char **host, int *port)
{
	for (int i = 0; i < b->cfg.voter_count; i++)
		if (b->cfg.voters[i].id == id) {
			*host = b->cfg.voters[i].host;
			*port = b->cfg.voters[i].port;
			return true;
		}
	return false;
}

/* A separate connection from the Raft one: a request that waits for a
 * commit (a registration, a forwarded CreateTopics) must not hold back, in
 * the same connection's in-order responses, the Fetch answers the commit
 * itself depends on. */
struct tm_peer *quorum_leader_peer(struct tm_broker *b)
{
	struct tm_quorum *q = Q(b);
	int32_t leader = quorum_leader_id(b);
	if (!q || leader < 0 || leader == b->cfg.node_id)
		return NULL;
	for (int i = 0; i < q->n_peers; i++)
		if (q->peer_ids[i] == leader)
			return q->ctl_peers[i];
	return NULL;
}

/* ---- start, tick, stop ------------------------------------------------------------------- */

int quorum_start(struct tm_broker *b)
{
	struct tm_quorum *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->b = b;
	q->catch_up_target = -1;
	q->snap_in_fd = -1;
	q->snap_last_ms = tm_mono_ms();
	b->quorum = q;
	snprintf(q->dir, sizeof(q->dir), "%s/__cluster_metadata-0", b->cfg.log_dir);
	struct log_config lc;
	log_config_defaults(&lc);
	lc.flush_interval_messages = 1;
	lc.retention_ms = -1;
	lc.retention_bytes = -1;
	lc.segment_bytes = b->cfg.metadata_log_segment_bytes;
	int rc = log_open(b->io, q->dir, &lc, tm_wall_ms(), &q->mlog);
	if (rc) {
		tm_error("quorum", "cannot open the metadata log %s: %s", q->dir, strerror(-rc));
		goto err;
	}
	rc = q_snap_restore(q);
	if (rc)
		goto err;
	struct raft_persisted st;
	memset(&st, 0, sizeof(st));
	st.voted_id = RAFT_NODE_NONE;
	st.leader_id = RAFT_NODE_NONE;
	rc = q_state_read(q, &st);
	if (rc)
		goto err;
	struct raft_epoch_start *epochs = NULL;
	uint32_t n_epochs = 0;
	rc = q_scan_epochs(q, &epochs, &n_epochs);
	if (rc) {
		tm_error("quorum", "cannot read the metadata log %s: %s; refusing to start rather than serve a wrong "
			 "picture of the cluster", q->dir, strerror(-rc));
		goto err;
	}
	st.log_start_offset = log_start_offset(q->mlog);
	st.log_end_offset = log_end_offset(q->mlog);
	st.snapshot_epoch = q->snap.end_offset > 0 ? q->snap.epoch : 0;
	if (st.epoch < st.snapshot_epoch)
		st.epoch = st.snapshot_epoch;
	st.epochs = epochs;
	st.n_epochs = n_epochs;
	if (n_epochs && st.epoch < epochs[n_epochs - 1].epoch) {
		/* The log knows a later epoch than quorum-state: trust the log. */
		st.epoch = epochs[n_epochs - 1].epoch;
	}
	if (q->applied != st.log_start_offset) {
		tm_error("quorum", "the metadata log %s starts at %" PRId64 ", its snapshot ends at %" PRId64, q->dir,
			 st.log_start_offset, q->applied);
		free(epochs);
		rc = -EBADMSG;
		goto err;
	}

	struct raft_config rc_cfg;
	raft_config_defaults(&rc_cfg);
	rc_cfg.node_id = b->cfg.node_id;
	snprintf(rc_cfg.cluster_id, sizeof(rc_cfg.cluster_id), "%s", b->cluster_id);
	for (int i = 0; i < b->cfg.voter_count && i < RAFT_VOTERS_MAX; i++)
		rc_cfg.voters[rc_cfg.n_voters++] = b->cfg.voters[i].id;
	rc_cfg.election_timeout_ms = b->cfg.controller_quorum_election_timeout_ms;
	rc_cfg.fetch_timeout_ms = b->cfg.controller_quorum_fetch_timeout_ms;
	uint64_t seed;
	RAND_bytes((unsigned char *)&seed, sizeof(seed));
	rc = raft_init(&q->raft, &rc_cfg, seed, &st, tm_mono_ms());
	free(epochs);
	if (rc) {
		tm_error("quorum", "the stored quorum state does not fit this configuration (%s): check node.id and "
			 "controller.quorum.voters", strerror(-rc));
		goto err;
	}
	for (int i = 0; i < b->cfg.voter_count; i++) {
		const struct tm_voter *v = &b->cfg.voters[i];
		if (v->id == b->cfg.node_id)
			continue;
		q->peers[q->n_peers] = peer_new(b, v->id, v->host, v->port);
		q->ctl_peers[q->n_peers] = peer_new(b, v->id, v->host, v->port);
		q->peer_ids[q->n_peers] = v->id;
		q->n_peers++;
	}
	tm_info("quorum", "metadata log %s: offsets %" PRId64 "..%" PRId64 ", epoch %d, %d voter(s)", q->dir,
		st.log_start_offset, st.log_end_offset, st.epoch, b->cfg.voter_count);
	/* A single voter elects itself on the first tick. */
	bool sync = q->sync_pending;
	q->sync_pending = false;
	quorum_tick(b, tm_mono_ms());
	q->sync_pending = sync; /* the partitions follow a loaded snapshot once the node runs */
	return 0;
err:
	quorum_stop(b);
	return rc;
}

void quorum_tick(struct tm_broker *b, int64_t now_ms)
{
	struct tm_quorum *q = Q(b);
	if (!q || q->stopping)
		return;
	for (int i = 0; i < q->n_peers; i++) {
		peer_tick(q->peers[i], now_ms);
		peer_tick(q->ctl_peers[i], now_ms);
	}
	struct raft_event ev = { .type = RAFT_EV_TICK, .now_ms = now_ms };
	q_step(q, &ev);
	if (q->sync_pending) {
		q->sync_pending = false;
		partitions_sync(b);
	}
	int64_t interval = b->cfg.metadata_log_max_snapshot_interval_ms;
	if (q->snap_due)
		q_snap_take(q, "metadata.log.max.record.bytes.between.snapshots reached");
	else if (interval > 0 && now_ms - q->snap_last_ms >= interval && q->applied > q->snap.end_offset)
		q_snap_take(q, "metadata.log.max.snapshot.interval.ms passed");
}

void quorum_shutdown(struct tm_broker *b)
{
	struct tm_quorum *q = Q(b);
	if (!q || q->stopping)
		return;
	struct raft_event ev = { .type = RAFT_EV_SHUTDOWN, .now_ms = tm_mono_ms() };
	q_step(q, &ev);
}

void quorum_stop(struct tm_broker *b)
{
	struct tm_quorum *q = Q(b);
	if (!q)
		return;
	q->stopping = true;
	q_notify_waiters(q, -ENOTCONN);
	while (q->parked) {
		struct q_parked *pk = q->parked;
		q->parked = pk->next;
		pk->req->no_response = true;
		req_finish(pk->req);
		free(pk);
	}
	for (int i = 0; i < q->n_peers; i++) {
		peer_free(q->peers[i]);
		peer_free(q->ctl_peers[i]);
	}
	/* Let in-flight appends and reads finish before the log goes. */
	while (b->io && (q->appends_inflight > 0 || q->applying)) {
		io_flush(b->io);
		io_wait(b->io, 1000);
		io_process_completions(b->io);
	}
	if (q->snap_in_fd >= 0)
		close(q->snap_in_fd); /* a ".part": deleted on the next start */
	if (q->mlog)
		log_close(q->mlog);
	raft_deinit(&q->raft);
	free(q);
	b->quorum = NULL;
}
