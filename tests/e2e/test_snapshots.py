"""Metadata snapshots (KIP-630, issue 4): with a tiny
metadata.log.max.record.bytes.between.snapshots every node of a three-node
quorum writes Kafka's <20-digit offset>-<10-digit epoch>.checkpoint files
(a SnapshotHeader control batch, the metadata records, a SnapshotFooter
control batch) and drops the metadata log segments below them; a node
killed with kill -9 while the leader's log start moves past it comes back
through FetchSnapshot and agrees with the others; a restarted node starts
from its own snapshot; a killed leader comes back through its successor's
snapshot; a corrupt snapshot is reported by name at start-up and skipped for
an older good one, or, when none is left, stops the node.  Kafka's
kafka-dump-log reads the snapshots and the metadata log; kafka-metadata-quorum
keeps answering.

Tidemark-specific (multi-node): skipped when TM_E2E_TARGET=kafka.

Snapshot file layout read here (v2 record batches, big-endian):

    OFFSET SIZE FIELD
    0      8    base_offset            0, 1, 2, ... across the file
    8      4    batch_length           bytes after this field
    12     4    partition_leader_epoch the snapshot's epoch
    21     2    attributes             0x20: control batch
    57     4    record_count
    61     -    records; a control record's key is ControlRecordType
                {version int16 0, type int16}: 3 SnapshotHeader, 4 SnapshotFooter
"""
import re
import shutil
import struct
import time

import pytest

import rawkafka
from cluster import clusters_for_a_test, METADATA_TOPIC, create_topic, describe_quorum, metadata
from conftest import TARGET
from tmhelp import kafka_tool, unique_topic

pytestmark = pytest.mark.skipif(TARGET != "tidemark", reason="multi-node quorum tests run against Tidemark only")

METADATA_DIR = "__cluster_metadata-0"
API_FETCH_SNAPSHOT = 59
ERR_SNAPSHOT_NOT_FOUND = 98
ERR_POSITION_OUT_OF_RANGE = 99
CHECKPOINT_RE = re.compile(r"^(\d{20})-(\d{10})\.checkpoint$")
# Snapshot after ~4 KiB of metadata records; 8 KiB metadata log segments so
# whole segments fall below a snapshot and are deleted.
SNAPSHOT_SETTINGS = {
    "metadata.log.max.record.bytes.between.snapshots": "4096",
    "metadata.log.segment.bytes": "8192",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "4000",
}


@pytest.fixture
def make_cluster():
    """Clusters for one test (cluster.clusters_for_a_test)."""
    yield from clusters_for_a_test()


# ---- helpers ----------------------------------------------------------------------
def checkpoints(node):
    """[(end offset, epoch, path)] of the node's snapshot files, newest last."""
    out = []
    for p in (node.data_dir / METADATA_DIR).iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(out)


def wait_checkpoint(node, timeout_s, above=0):
    """Waits for a snapshot of `node` ending past offset `above`; returns it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cps = checkpoints(node)
        if cps and cps[-1][0] > above:
            return cps[-1]
        time.sleep(0.1)
    raise AssertionError("node %d wrote no snapshot past offset %d within %ss; files: %r\n%s"
                         % (node.node_id, above, timeout_s,
                            sorted(p.name for p in (node.data_dir / METADATA_DIR).iterdir()), node.log_tail()))


def snapshot_batches(path):
    """[(base_offset, epoch, control, record_count, control_type or None)]."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        assert pos + 61 <= len(data), "%s: torn batch header at byte %d" % (path, pos)
        base, length, epoch, magic = struct.unpack_from(">qiib", data, pos)
        (attrs,) = struct.unpack_from(">h", data, pos + 21)
        (count,) = struct.unpack_from(">i", data, pos + 57)
        assert magic == 2 and pos + 12 + length <= len(data), "%s: bad batch at byte %d" % (path, pos)
        ctype = None
        if attrs & 0x20:
            # one record: varint length, attributes, varlong ts delta, varint
            # offset delta, varint key length (4 -> zig-zag 8), key
            rec = data[pos + 61:pos + 12 + length]
            i = 0
            for _ in range(4):  # length, attributes (1 byte), ts delta, offset delta
                if _ == 1:
                    i += 1
                    continue
                while rec[i] & 0x80:
                    i += 1
                i += 1
            assert rec[i] == 8, "%s: control key length %d" % (path, rec[i])
            (_, ctype) = struct.unpack_from(">hh", rec, i + 1)
        out.append((base, epoch, bool(attrs & 0x20), count, ctype))
        pos += 12 + length
    return out


def segment_bases(node):
    return sorted(int(p.stem) for p in (node.data_dir / METADATA_DIR).glob("*.log"))


def create_many(node, prefix, n, rf=3):
    names = []
    for _ in range(n):
        name = unique_topic(prefix)
        assert create_topic(node, name, 2, rf) == (0, None), "CreateTopics %s via node %d" % (name, node.node_id)
        names.append(name)
    return names


def fetch_snapshot(node, end, epoch, leader_epoch, position, max_bytes=1 << 20):
    """FetchSnapshot v0 to `node`'s CONTROLLER listener, as replica 1000 (an
    observer id).  Returns (error, size, position, bytes)."""
    w = (rawkafka.Writer().i32(1000).i32(max_bytes)
         .uvarint(2).compact_string(METADATA_TOPIC)
         .uvarint(2).i32(0).i32(leader_epoch).i64(end).i32(epoch).tags().i64(position).tags()
         .tags().tags())
    with rawkafka.Conn(node.host, node.cport, timeout=5) as conn:
        r = conn.request(API_FETCH_SNAPSHOT, 0, w.build(), flexible=True)
    r.i32()  # throttle
    err = r.i16()
    out = (err, -1, -1, b"")
    for _ in range(r.uvarint() - 1):
        r.compact_string()
        for _ in range(r.uvarint() - 1):
            r.i32()
            perr = r.i16()
            r.i64(), r.i32()
            r.skip_tags()
            size, pos = r.i64(), r.i64()
            n = r.uvarint() - 1
            data = r.take(n) if n > 0 else b""
            r.skip_tags()
            out = (err or perr, size, pos, data)
        r.skip_tags()
    return out


def quorum_status(bootstrap):
    p = kafka_tool("kafka-metadata-quorum", "--bootstrap-server", bootstrap, "describe", "--status", timeout=60)
    out = {}
    for line in p.stdout.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out, p.stdout


# ---- tests ------------------------------------------------------------------------
def test_snapshots_written_and_a_lagging_node_catches_up_through_one(make_cluster):
    c = make_cluster(3, SNAPSHOT_SETTINGS)
    leader_id, _ = c.wait_leader(10)
    leader = c.node(leader_id)
    first = create_many(leader, "snap-a", 25)
    c.wait_agree(20, check=lambda v: all(t in v for t in first))

    # Every node snapshots its own image.
    for n in c.nodes.values():
        end, epoch, path = wait_checkpoint(n, 20)
        batches = snapshot_batches(path)
        assert batches[0][2] and batches[0][4] == 3, "%s does not start with a SnapshotHeader: %r" % (path, batches[:2])
        assert batches[-1][2] and batches[-1][4] == 4, "%s does not end with a SnapshotFooter: %r" % (path, batches[-2:])
        assert all(not b[2] for b in batches[1:-1]) and len(batches) >= 3, batches
        assert all(b[1] == epoch for b in batches), "batch epochs %r, file epoch %d" % (batches, epoch)
        assert [b[0] for b in batches] == [sum(x[3] for x in batches[:i]) for i in range(len(batches))], batches

    # Kafka's own tool reads the snapshot as a cluster metadata snapshot.
    _, _, path = checkpoints(leader)[-1]
    dump = kafka_tool("kafka-dump-log", "--cluster-metadata-decoder", "--files", path, timeout=60).stdout
    for want in ("SnapshotHeader", "SnapshotFooter", '"type":"TOPIC_RECORD"', '"type":"PARTITION_RECORD"',
                 '"type":"REGISTER_BROKER_RECORD"', '"type":"FEATURE_LEVEL_RECORD"'):
        assert want in dump, "kafka-dump-log shows no %s in %s:\n%s" % (want, path, dump[-3000:])
    assert any(t in dump for t in first), dump[-3000:]
    # ... and the metadata log, leader-change control records included.
    seg = sorted((leader.data_dir / METADATA_DIR).glob("*.log"))[-1]
    dump = kafka_tool("kafka-dump-log", "--cluster-metadata-decoder", "--files", seg, timeout=60).stdout
    assert "LeaderChange" in dump or '"type":"' in dump, dump[-3000:]

    # FetchSnapshot is answered from the file, in chunks by position.
    end, epoch, path = checkpoints(leader)[-1]
    q = describe_quorum(leader)
    assert q["leader"] == leader_id, q
    data = path.read_bytes()
    assert len(data) > 1000
    got = fetch_snapshot(leader, end, epoch, q["epoch"], 0, max_bytes=1000)
    assert got == (0, len(data), 0, data[:1000]), got[:3]
    got = fetch_snapshot(leader, end, epoch, q["epoch"], 1000)
    assert got == (0, len(data), 1000, data[1000:]), got[:3]
    assert fetch_snapshot(leader, end, epoch, q["epoch"], len(data) + 1)[0] == ERR_POSITION_OUT_OF_RANGE
    assert fetch_snapshot(leader, end + 1, epoch, q["epoch"], 0)[0] == ERR_SNAPSHOT_NOT_FOUND

    # A follower goes away; the others move their log start past it.
    follower = next(n for n in c.nodes.values() if n.node_id != leader_id)
    q = describe_quorum(leader)
    behind = q["voters"][follower.node_id]
    follower.kill9()
    survivors = [n for n in c.nodes.values() if n is not follower]
    leader_id, _ = c.wait_leader(10, via=survivors[0])
    leader = c.node(leader_id)
    second = create_many(leader, "snap-b", 40, rf=2)  # the killed node gets fenced meanwhile
    c.wait_agree(20, survivors, check=lambda v: all(t in v for t in second))
    end, _, _ = wait_checkpoint(leader, 20, above=behind)
    assert end > behind
    # Old snapshots are gone, and the log segments wholly below the newest.  A
    # survivor may be taking its own snapshot right now (the new file is
    # renamed into place a moment before the old one is deleted), so each
    # gets a few seconds to get down to one.
    for n in survivors:
        deadline = time.monotonic() + 10
        cps = checkpoints(n)
        while len(cps) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            cps = checkpoints(n)
        assert len(cps) == 1, "node %d keeps %r" % (n.node_id, [p.name for _, _, p in cps])
        bases = segment_bases(n)
        assert bases and bases[0] > 0, "node %d still has metadata segment 0: %r" % (n.node_id, bases)
        assert bases[0] <= cps[-1][0], (bases, cps[-1][0])

    follower.start()
    follower.wait_serving(40, brokers=[1, 2, 3])
    view = c.wait_agree(30, check=lambda v: all(t in v for t in first + second))
    assert len(view) >= len(first) + len(second)
    log = follower.log_text().split("==== start #")[-1]  # this start's lines only
    assert "installed metadata snapshot" in log, "node %d did not install a snapshot:\n%s" % (
        follower.node_id, follower.log_tail(60))
    md = metadata(follower)
    assert {t["name"] for t in md["topics"]} >= set(first + second)

    # More changes reach it through the log after the snapshot.
    third = create_many(follower, "snap-c", 3)
    c.wait_agree(20, check=lambda v: all(t in v for t in third))

    status, text = quorum_status(follower.bootstrap)
    assert status.get("LeaderId") == str(c.wait_leader(10)[0]), text
    assert "CurrentVoters" in status, text

    # A restart starts from the node's own snapshot, then replays the rest.
    follower.kill9()
    follower.start()
    follower.wait_serving(40, brokers=[1, 2, 3])
    assert re.search(r"loaded metadata snapshot \S+\.checkpoint", follower.log_text().split("==== start #")[-1]), \
        follower.log_tail(60)
    c.wait_agree(30, check=lambda v: all(t in v for t in first + second + third))


def test_killed_leader_comes_back_through_the_new_leaders_snapshot(make_cluster):
    c = make_cluster(3, SNAPSHOT_SETTINGS)
    leader_id, epoch = c.wait_leader(10)
    old = c.node(leader_id)
    first = create_many(old, "snap-l", 10)
    c.wait_agree(20, check=lambda v: all(t in v for t in first))
    behind = describe_quorum(old)["voters"][leader_id]
    old.kill9()
    new_id, new_epoch = c.wait_leader(20, not_id=leader_id, min_epoch=epoch + 1)
    new = c.node(new_id)
    survivors = [n for n in c.nodes.values() if n is not old]
    second = create_many(new, "snap-m", 40, rf=2)
    c.wait_agree(20, survivors, check=lambda v: all(t in v for t in second))
    end, snap_epoch, _ = wait_checkpoint(new, 20, above=behind)
    assert snap_epoch == new_epoch, (end, snap_epoch, new_epoch)

    old.start()
    old.wait_serving(40, brokers=[1, 2, 3])
    c.wait_agree(30, check=lambda v: all(t in v for t in first + second))
    log = old.log_text().split("==== start #")[-1]
    assert re.search(r"installed metadata snapshot \S+-%010d\.checkpoint from node %d" % (new_epoch, new_id), log), \
        old.log_tail(60)
    assert c.wait_leader(10)[0] == new_id


def test_corrupt_snapshot_falls_back_or_stops_start_up_naming_the_file(make_cluster):
    c = make_cluster(3, SNAPSHOT_SETTINGS)
    leader_id, _ = c.wait_leader(10)
    names = create_many(c.node(leader_id), "snap-bad", 25)
    c.wait_agree(20, check=lambda v: all(t in v for t in names))
    victim = next(n for n in c.nodes.values() if n.node_id != leader_id)
    wait_checkpoint(victim, 20)
    victim.stop()
    end, epoch, path = checkpoints(victim)[-1]
    good = path.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x40

    # A corrupt newer snapshot beside a good one the log continues from:
    # the node says so and starts from the good one.
    newer = path.with_name("%020d-%010d.checkpoint" % (end, epoch + 1))
    newer.write_bytes(bytes(bad))
    victim.start()
    victim.wait_serving(40, brokers=[1, 2, 3])
    log = victim.log_text().split("==== start #")[-1]
    assert re.search(r"metadata snapshot \S*%s is corrupt: .*CRC" % re.escape(newer.name), log), victim.log_tail(60)
    assert "falling back to the older metadata snapshot" in log, victim.log_tail(60)
    assert "loaded metadata snapshot %s" % path in log, victim.log_tail(60)
    c.wait_agree(30, check=lambda v: all(t in v for t in names))
    victim.stop()
    newer.unlink(missing_ok=True)  # a later snapshot may have pruned it already

    # The only snapshot corrupt and the log starting at its end: no start.
    end, epoch, path = checkpoints(victim)[-1]
    good = path.read_bytes()
    saved = path.with_name("saved-" + path.name)
    shutil.copyfile(path, saved)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x40
    path.write_bytes(bytes(bad))
    status, out = victim.run_to_exit({})
    assert status != 0, out
    assert path.name in out and "corrupt" in out and "refusing to start" in out, out

    # The good file back: the node starts and agrees again.
    saved.replace(path)
    victim.start()
    victim.wait_serving(40, brokers=[1, 2, 3])
    c.wait_agree(30, check=lambda v: all(t in v for t in names))


def test_single_node_snapshots_by_age_and_restarts_from_it(make_cluster):
    # A byte threshold that is never reached: only the interval triggers.
    c = make_cluster(1, {"metadata.log.max.record.bytes.between.snapshots": str(1 << 40),
                         "metadata.log.max.snapshot.interval.ms": "1000"})
    node = c.node(1)
    name = unique_topic("snap-age")
    assert create_topic(node, name, 3, 1) == (0, None)
    end, _, _ = wait_checkpoint(node, 15)
    deadline = time.monotonic() + 5  # the line follows the file's rename
    while "metadata.log.max.snapshot.interval.ms passed" not in node.log_text():
        assert time.monotonic() < deadline, node.log_tail()
        time.sleep(0.1)
    # Nothing new: no further snapshot however long it waits.
    time.sleep(2.5)
    assert checkpoints(node)[-1][0] == end, [p.name for _, _, p in checkpoints(node)]

    node.kill9()
    node.start()
    assert re.search(r"loaded metadata snapshot \S+\.checkpoint", node.log_text().split("==== start #")[-1]), \
        node.log_tail(60)
    view = c.wait_agree(20, check=lambda v: name in v)
    assert len(view[name][1]) == 3
