"""Multi-node Tidemark clusters for the end-to-end tests: N processes of
bin/tidemark forming one KRaft metadata quorum on 127.0.0.1, each with its
own data directory, client port and controller port.

    c = Cluster(3, overrides={"broker.session.timeout.ms": "4000"})
    c.start()                       # all nodes, then waits until each serves clients
    c.node(2).kill9(); c.node(2).start()
    md = metadata(c.node(1))        # that node's own Metadata v12 answer
    dq = describe_quorum(c.node(3)) # DescribeQuorum (answered by the active controller)
    c.cleanup()                     # SIGCONT, SIGTERM (SIGKILL after a bound), rm -r

Invariants:
  - A node keeps its ports and directory for the cluster's life, so a
    restarted node comes back with the same identity.
  - Processes are signalled by pid only (never by name); cleanup() resumes a
    SIGSTOPped node before stopping it, so nothing is left frozen.
  - Every wait has a bound and fails quoting the last observation and the
    node's log tail.
  - The raw requests here talk to exactly one node: clients such as
    librdkafka or Kafka's AdminClient route admin requests to the controller
    themselves, which would hide whether a broker forwards them.

Raw requests (rawkafka framing; flexible versions use header v2):

    API              VERSION  USED FOR
    Metadata         12       brokers, cluster id, controller id, topics with ids
    DescribeQuorum   1        leader, epoch, high watermark, voter log end offsets
    CreateTopics     4        (rawkafka.create_topics_v4)
    DeleteTopics     3        topic_names [string], timeout_ms
    CreatePartitions 1        topics [name, count, assignments=null], timeout_ms
    DescribeConfigs  1        one topic's configs (value, source)
    IncrementalAlterConfigs 0 SET one topic config

Broker log lines this module reads (common/tm_log.h format):

    2026-11-25T10:08:17.931Z INFO quorum: node 2 is leader in epoch 1 (leader 2)
"""
import base64
import datetime
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import rawkafka
from conftest import TIDEMARK_BIN, STOP_TIMEOUT_S, free_port

API_DELETE_TOPICS = 20
API_DESCRIBE_CONFIGS = 32
API_INCREMENTAL_ALTER_CONFIGS = 44
API_CREATE_PARTITIONS = 37
API_DESCRIBE_QUORUM = 55
METADATA_TOPIC = "__cluster_metadata"

# Every node gets these unless the cluster's overrides say otherwise.
CLUSTER_SETTINGS = {
    "process.roles": "broker,controller",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "offsets.topic.replication.factor": "1",
    "group.initial.rebalance.delay.ms": "0",
}

_ROLE_RE = re.compile(r"^(\S+Z) \S+ quorum: node (\d+) is (\S+) in epoch (\d+) \(leader (-?\d+)\)")


def _free_ports(n):
    out = []
    while len(out) < n:
        p = free_port()
        if p not in out:
            out.append(p)
    return out


def log_time(stamp):
    """Seconds since the epoch of a broker log timestamp (UTC, ms)."""
    dt = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def topic_id_str(raw16):
    """A topic id as Kafka's tools print it (base64url, no padding)."""
    return base64.urlsafe_b64encode(raw16).decode().rstrip("=")


class Node:
    """One bin/tidemark process of a Cluster."""

    def __init__(self, cluster, node_id, port, cport):
        self.cluster = cluster
        self.node_id = node_id
        self.host = "127.0.0.1"
        self.port = port
        self.cport = cport
        self.data_dir = cluster.root / ("node%d" % node_id)
        self.data_dir.mkdir()
        self.log_path = cluster.root / ("node%d.log" % node_id)
        self.overrides = {}
        self.proc = None
        self.starts = 0
        self.stopping = False
        self.frozen = False

    @property
    def bootstrap(self):
        return "%s:%d" % (self.host, self.port)

    def settings(self, extra=None):
        s = dict(CLUSTER_SETTINGS)
        s.update({
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.cluster.voters,
            "listeners": "PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d" % (self.port, self.cport),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d" % self.port,
            "log.dirs": str(self.data_dir),
        })
        s.update(self.cluster.overrides)
        s.update(self.overrides)
        s.update(extra or {})
        return s

    def command(self, extra=None):
        if not os.access(TIDEMARK_BIN, os.X_OK):
            pytest.fail("%s is not built: run `make bin/tidemark`" % TIDEMARK_BIN)
        cmd = [str(TIDEMARK_BIN)]
        for k, v in self.settings(extra).items():
            cmd += ["--override", "%s=%s" % (k, v)]
        return cmd

    def start(self, wait=True):
        """Starts the process; with wait, returns once it serves clients."""
        assert not self.running(), "node %d already running" % self.node_id
        cmd = self.command()
        self.starts += 1
        self.stopping = False
        self.frozen = False
        with open(self.log_path, "ab") as log:
            log.write(("\n==== start #%d: %s\n" % (self.starts, " ".join(cmd))).encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=str(self.cluster.root),
                                         start_new_session=True)
        if wait:
            self.wait_serving()

    def run_to_exit(self, extra, timeout_s=20):
        """Runs the node in the foreground with extra overrides, expecting it
        to refuse to start.  Returns (exit status, output).  Fails when it is
        still running after timeout_s."""
        assert not self.running(), "node %d is running" % self.node_id
        cmd = self.command(extra)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                               stdin=subprocess.DEVNULL, cwd=str(self.cluster.root))
        except subprocess.TimeoutExpired as e:
            raise AssertionError("%s was still running after %ds; expected it to refuse to start\n%s%s"
                                 % (" ".join(cmd), timeout_s, e.stdout or "", e.stderr or ""))
        return p.returncode, p.stdout + p.stderr

    def wait_serving(self, timeout_s=30, brokers=None):
        """Waits until the client port answers ApiVersions and Metadata lists
        this node (and, when given, exactly the broker ids `brokers`)."""
        deadline = time.monotonic() + timeout_s
        last = "no attempt yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail("node %d exited with status %d during start-up; log tail:\n%s"
                            % (self.node_id, rc, self.log_tail()))
            try:
                with rawkafka.Conn(self.host, self.port, timeout=5) as c:
                    err, keys = rawkafka.api_versions(c, 0)
                    if err == 0 and keys:
                        ids = sorted(n for n, _, _ in rawkafka.metadata_brokers(c))
                        if self.node_id in ids and (brokers is None or ids == sorted(brokers)):
                            return
                        last = "Metadata lists brokers %r" % ids
                    else:
                        last = "ApiVersions error %d" % err
            except (OSError, rawkafka.ShortRead, ConnectionError) as e:
                last = "%s: %s" % (type(e).__name__, e)
            time.sleep(0.1)
        pytest.fail("node %d not serving clients on %s within %ds (last: %s); log tail:\n%s"
                    % (self.node_id, self.bootstrap, timeout_s, last, self.log_tail()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def died(self):
        """The exit status when the process ended without the harness
        stopping it, else None."""
        if self.proc is None or self.stopping:
            return None
        return self.proc.poll()

    def kill9(self):
        """SIGKILL by pid; returns the time.time() of the signal."""
        assert self.running(), "node %d is not running" % self.node_id
        self.stopping = True
        t = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.frozen = False
        return t

    def sigstop(self):
        assert self.running(), "node %d is not running" % self.node_id
        t = time.time()
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True
        return t

    def sigcont(self):
        if self.running():
            self.proc.send_signal(signal.SIGCONT)
        self.frozen = False
        return time.time()

    def stop(self, timeout_s=STOP_TIMEOUT_S):
        """SIGTERM (after SIGCONT), SIGKILL when it outlives timeout_s.
        Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.stopping = True
            if self.frozen:
                self.sigcont()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def roles(self):
        """[(time, role, epoch, leader)] from this node's quorum role lines,
        all starts included, oldest first."""
        out = []
        for line in self.log_text().splitlines():
            m = _ROLE_RE.match(line)
            if m and int(m.group(2)) == self.node_id:
                out.append((log_time(m.group(1)), m.group(3), int(m.group(4)), int(m.group(5))))
        return out


class Cluster:
    """N nodes, voters 1..N, all with both roles."""

    def __init__(self, size=3, overrides=None):
        self.root = Path(tempfile.mkdtemp(prefix="tm-e2e-cluster-"))
        ports = _free_ports(2 * size)
        self.overrides = dict(overrides or {})
        self.nodes = {}
        for i in range(size):
            nid = i + 1
            self.nodes[nid] = Node(self, nid, ports[2 * i], ports[2 * i + 1])
        self.voters = ",".join("%d@127.0.0.1:%d" % (n.node_id, n.cport) for n in self.nodes.values())

    def node(self, node_id):
        return self.nodes[node_id]

    def ids(self):
        return sorted(self.nodes)

    def running(self):
        return [n for n in self.nodes.values() if n.running() and not n.frozen]

    def start(self, timeout_s=40):
        """Starts every node, then waits until each serves clients and
        lists all brokers."""
        for n in self.nodes.values():
            n.start(wait=False)
        for n in self.nodes.values():
            n.wait_serving(timeout_s, brokers=self.ids())

    def crash_report(self):
        msgs = []
        for n in self.nodes.values():
            rc = n.died()
            if rc is not None:
                how = "killed by signal %d" % -rc if rc < 0 else "exited with status %d" % rc
                msgs.append("node %d %s; log tail:\n%s" % (n.node_id, how, n.log_tail()))
        return "\n\n".join(msgs) or None

    def logs(self, lines=30):
        return "\n\n".join("---- node %d (%s)\n%s" % (n.node_id, n.log_path, n.log_tail(lines))
                           for n in self.nodes.values())

    def cleanup(self):
        for n in self.nodes.values():
            n.stop()
        if os.environ.get("TM_E2E_KEEP"):
            print("kept cluster dir %s" % self.root)
            return
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- views -------------------------------------------------------------
    def leader(self, via):
        """(leader id, epoch) as DescribeQuorum through node `via` reports
        it, or None when there is no answer or no leader."""
        try:
            q = describe_quorum(via, timeout=3)
        except (OSError, rawkafka.ShortRead, ConnectionError):
            return None
        if q["error"] or q["leader"] < 0:
            return None
        return q["leader"], q["epoch"]

    def wait_leader(self, timeout_s, not_id=None, min_epoch=0, via=None):
        """Waits until DescribeQuorum through a live node (or `via`) names a
        leader other than not_id in an epoch >= min_epoch.  Returns
        (leader, epoch)."""
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            for n in ([via] if via else self.running()):
                got = self.leader(n)
                if got and got[0] != not_id and got[1] >= min_epoch:
                    return got
                last = (n.node_id, got)
            time.sleep(0.05)
        raise AssertionError("no leader other than %r in epoch >= %d within %ss (last %r)\n%s"
                             % (not_id, min_epoch, timeout_s, last, self.logs()))

    def metadata_views(self, nodes=None):
        """{node id: topics view} from each node's own Metadata answer; a
        topics view maps name -> (topic id, ((partition, leader, replicas, isr), ...))."""
        out = {}
        for n in nodes or self.running():
            try:
                md = metadata(n, timeout=3)
            except (OSError, rawkafka.ShortRead, ConnectionError) as e:
                out[n.node_id] = "%s: %s" % (type(e).__name__, e)
                continue
            out[n.node_id] = topics_view(md)
        return out

    def wait_agree(self, timeout_s, nodes=None, check=None):
        """Waits until every node's topics view is the same (and check(view)
        holds when given).  Returns the common view."""
        deadline = time.monotonic() + timeout_s
        views = None
        while time.monotonic() < deadline:
            views = self.metadata_views(nodes)
            vals = list(views.values())
            if vals and all(isinstance(v, dict) for v in vals) and all(v == vals[0] for v in vals) \
                    and (check is None or check(vals[0])):
                return vals[0]
            time.sleep(0.1)
        raise AssertionError("nodes' Metadata did not agree within %ss; last views:\n%s\n%s"
                             % (timeout_s, _fmt_views(views), self.logs()))


def _fmt_views(views):
    return "\n".join("  node %s: %r" % (k, v) for k, v in sorted((views or {}).items()))


def topics_view(md, internal=False):
    out = {}
    for t in md["topics"]:
        if t["error"] or (t["internal"] and not internal):
            continue
        parts = tuple(sorted((p["index"], p["leader"], tuple(p["replicas"]), tuple(sorted(p["isr"])))
                             for p in t["partitions"]))
        out[t["name"]] = (t["id"], parts)
    return out


# ---- raw requests -------------------------------------------------------------
def _conn(node, timeout):
    return rawkafka.Conn(node.host, node.port, timeout=timeout)


def _compact_array_len(r):
    n = r.uvarint()
    return -1 if n == 0 else n - 1


def _i32_compact_array(r):
    return [r.i32() for _ in range(max(_compact_array_len(r), 0))]


def metadata(node, topics=None, timeout=5, auto_create=False):
    """Metadata v12 answered by `node` itself.  topics None: all topics;
    auto_create asks the broker to create missing ones.
    Returns {brokers: [(id, host, port)], cluster_id, controller_id,
    topics: [{error, name, id, internal, partitions: [{error, index, leader,
    leader_epoch, replicas, isr, offline}]}]}."""
    w = rawkafka.Writer()
    if topics is None:
        w.uvarint(0)
    else:
        w.uvarint(len(topics) + 1)
        for t in topics:
            w.raw(b"\0" * 16).compact_string(t).tags()
    w.i8(1 if auto_create else 0).i8(0).tags()
    with _conn(node, timeout) as c:
        r = c.request(rawkafka.API_METADATA, 12, w.build(), flexible=True)
    r.i32()  # throttle_time_ms
    brokers = []
    for _ in range(max(_compact_array_len(r), 0)):
        bid, host, port = r.i32(), r.compact_string(), r.i32()
        r.compact_string()  # rack
        r.skip_tags()
        brokers.append((bid, host, port))
    cluster_id = r.compact_string()
    controller_id = r.i32()
    out_topics = []
    for _ in range(max(_compact_array_len(r), 0)):
        t = {"error": r.i16(), "name": r.compact_string(), "id": topic_id_str(r.take(16)),
             "internal": r.i8() != 0, "partitions": []}
        for _ in range(max(_compact_array_len(r), 0)):
            p = {"error": r.i16(), "index": r.i32(), "leader": r.i32(), "leader_epoch": r.i32()}
            p["replicas"] = _i32_compact_array(r)
            p["isr"] = _i32_compact_array(r)
            p["offline"] = _i32_compact_array(r)
            r.skip_tags()
            t["partitions"].append(p)
        r.i32()  # topic_authorized_operations
        r.skip_tags()
        out_topics.append(t)
    r.skip_tags()
    return {"brokers": sorted(brokers), "cluster_id": cluster_id, "controller_id": controller_id,
            "topics": out_topics}


def describe_quorum(node, timeout=5):
    """DescribeQuorum v1 for __cluster_metadata-0 sent to `node` (a broker
    forwards it to the active controller).  Returns {error, leader, epoch,
    high_watermark, voters: {id: log_end_offset}, observers: {...}}."""
    w = (rawkafka.Writer().uvarint(2).compact_string(METADATA_TOPIC)
         .uvarint(2).i32(0).tags().tags().tags())
    with _conn(node, timeout) as c:
        r = c.request(API_DESCRIBE_QUORUM, 1, w.build(), flexible=True)
    out = {"error": r.i16(), "leader": -1, "epoch": -1, "high_watermark": -1, "voters": {}, "observers": {}}
    for _ in range(max(_compact_array_len(r), 0)):
        r.compact_string()
        for _ in range(max(_compact_array_len(r), 0)):
            r.i32()
            perr = r.i16()
            out["error"] = out["error"] or perr
            out["leader"], out["epoch"], out["high_watermark"] = r.i32(), r.i32(), r.i64()
            for key in ("voters", "observers"):
                for _ in range(max(_compact_array_len(r), 0)):
                    rid, leo = r.i32(), r.i64()
                    r.i64()  # last_fetch_timestamp
                    r.i64()  # last_caught_up_timestamp
                    r.skip_tags()
                    out[key][rid] = leo
            r.skip_tags()
        r.skip_tags()
    r.skip_tags()
    return out


def create_topic(node, name, partitions, replication, timeout=20):
    """CreateTopics v4 sent to `node`.  Returns (error_code, message)."""
    with _conn(node, timeout) as c:
        return rawkafka.create_topics_v4(c, [name], partitions, replication, timeout_ms=(timeout - 2) * 1000)[name]


def delete_topic(node, name, timeout=20):
    """DeleteTopics v3 sent to `node`.  Returns the error code."""
    w = rawkafka.Writer().i32(1).string(name).i32((timeout - 2) * 1000)
    with _conn(node, timeout) as c:
        r = c.request(API_DELETE_TOPICS, 3, w.build())
    r.i32()  # throttle_time_ms
    res = {}
    for _ in range(r.i32()):
        n = r.string()
        res[n] = r.i16()
    return res[name]


def create_partitions(node, name, count, timeout=20):
    """CreatePartitions v1 (total count, broker-chosen assignment) sent to
    `node`.  Returns (error_code, message)."""
    w = rawkafka.Writer().i32(1).string(name).i32(count).i32(-1).i32((timeout - 2) * 1000).i8(0)
    with _conn(node, timeout) as c:
        r = c.request(API_CREATE_PARTITIONS, 1, w.build())
    r.i32()  # throttle_time_ms
    res = {}
    for _ in range(r.i32()):
        n = r.string()
        res[n] = (r.i16(), r.string())
    return res[name]


def set_topic_config(node, name, key, value, timeout=20):
    """IncrementalAlterConfigs v0 (SET key=value on topic `name`) sent to
    `node`.  Returns (error_code, message)."""
    w = (rawkafka.Writer().i32(1).i8(2).string(name).i32(1).string(key).i8(0).string(value).i8(0))
    with _conn(node, timeout) as c:
        r = c.request(API_INCREMENTAL_ALTER_CONFIGS, 0, w.build())
    r.i32()  # throttle_time_ms
    assert r.i32() == 1, "one resource in the IncrementalAlterConfigs response"
    err, msg = r.i16(), r.string()
    return err, msg


def topic_configs(node, name, timeout=10):
    """DescribeConfigs v1 for topic `name`, answered by `node`.  Returns
    (error_code, {key: (value, config_source)})."""
    w = rawkafka.Writer().i32(1).i8(2).string(name).i32(-1).i8(0)
    with _conn(node, timeout) as c:
        r = c.request(API_DESCRIBE_CONFIGS, 1, w.build())
    r.i32()  # throttle_time_ms
    assert r.i32() == 1, "one resource in the DescribeConfigs response"
    err = r.i16()
    r.string()  # error_message
    r.i8()
    r.string()
    out = {}
    for _ in range(max(r.i32(), 0)):
        key, value = r.string(), r.string()
        r.i8()  # read_only
        source = r.i8()
        r.i8()  # is_sensitive
        for _ in range(max(r.i32(), 0)):
            r.string(), r.string(), r.i8()
        out[key] = (value, source)
    return err, out


# ---- the metadata log on disk --------------------------------------------------
def metadata_log_batches(node):
    """[(base_offset, last_offset, partition_leader_epoch, crc)] of every
    record batch in the node's __cluster_metadata-0 segments, in offset
    order.  Read only while the node is stopped.  Batch header:

        OFFSET SIZE FIELD
        0      8    base_offset
        8      4    batch_length (bytes after this field)
        12     4    partition_leader_epoch
        16     1    magic (2)
        17     4    crc
        21     2    attributes
        23     4    last_offset_delta
    """
    d = node.data_dir / (METADATA_TOPIC + "-0")
    out = []
    for seg in sorted(d.glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 27 <= len(data):
            base, length, epoch, magic, crc = struct.unpack_from(">qiibI", data, pos)
            if length <= 0 or pos + 12 + length > len(data):
                break  # a torn tail or preallocated zeros
            (delta,) = struct.unpack_from(">i", data, pos + 23)
            out.append((base, base + delta, epoch, crc))
            pos += 12 + length
    return out


# ---- partition replication (issue 5) --------------------------------------------
ERR_NOT_LEADER_OR_FOLLOWER = 6
ERR_REQUEST_TIMED_OUT = 7
ERR_NOT_ENOUGH_REPLICAS = 19
ERR_FENCED_LEADER_EPOCH = 74
ERR_UNKNOWN_LEADER_EPOCH = 75


def partition_states(node, topic, timeout=5):
    """{partition: {leader, leader_epoch, replicas, isr}} for `topic` from
    `node`'s own Metadata v12 answer ({} when the node does not know it)."""
    for t in metadata(node, [topic], timeout=timeout)["topics"]:
        if t["name"] == topic and t["error"] == 0:
            return {p["index"]: {"leader": p["leader"], "leader_epoch": p["leader_epoch"],
                                 "replicas": list(p["replicas"]), "isr": sorted(p["isr"])}
                    for p in t["partitions"]}
    return {}


def _states_or_error(node, topic):
    try:
        return partition_states(node, topic, timeout=3)
    except (OSError, rawkafka.ShortRead, ConnectionError) as e:
        return "%s: %s" % (type(e).__name__, e)


def wait_partitions(c, topic, timeout_s, check, what, nodes=None):
    """Polls every running node (or `nodes`) until all answer the same
    partition states for `topic` and check(states) holds.  Returns the
    states; fails quoting each node's last answer and the logs."""
    deadline = time.monotonic() + timeout_s
    views = {}
    while time.monotonic() < deadline:
        views = {n.node_id: _states_or_error(n, topic) for n in (nodes or c.running())}
        vals = list(views.values())
        if vals and all(isinstance(v, dict) and v for v in vals) and all(v == vals[0] for v in vals) \
                and check(vals[0]):
            return vals[0]
        time.sleep(0.1)
    raise AssertionError("%s: not within %ss; last partition states of %s per node:\n%s\n%s"
                         % (what, timeout_s, topic, _fmt_views(views), c.logs()))


def isr_whole(states):
    """Every partition has a leader and its ISR is all of its replicas."""
    return bool(states) and all(s["leader"] >= 0 and s["isr"] == sorted(s["replicas"]) for s in states.values())


def wait_isr_whole(c, topic, timeout_s, nodes=None):
    """Waits until every node agrees that each partition of `topic` has a
    leader and a whole ISR.  Returns the states."""
    return wait_partitions(c, topic, timeout_s, isr_whole, "ISR of every partition whole", nodes)


def wait_leader_moved(c, topic, partition, old_leader, timeout_s, nodes=None):
    """Waits until the live nodes agree that `partition` is led by a broker
    other than old_leader.  Returns its state."""
    states = wait_partitions(c, topic, timeout_s,
                             lambda s: s[partition]["leader"] not in (-1, old_leader),
                             "partition %d led by a broker other than %d" % (partition, old_leader), nodes)
    return states[partition]


def fetch_v11(node, topic, partition, offset, current_leader_epoch=-1, replica_id=-1, max_wait_ms=0,
              timeout=10):
    """Fetch v11 (non-flexible; the first versions with current_leader_epoch
    are 9+) for one partition, sent to `node`.  Returns (partition
    error_code, high_watermark, records bytes)."""
    w = (rawkafka.Writer().i32(replica_id).i32(max_wait_ms).i32(1).i32(1 << 20).i8(0)
         .i32(0).i32(-1)  # session_id 0, session_epoch -1: a full fetch without a session
         .i32(1).string(topic).i32(1)
         .i32(partition).i32(current_leader_epoch).i64(offset).i64(-1).i32(1 << 20)
         .i32(0)  # forgotten_topics_data
         .string(""))  # rack_id
    with _conn(node, timeout) as c:
        r = c.request(rawkafka.API_FETCH, 11, w.build())
    r.i32()  # throttle_time_ms
    top_err = r.i16()
    r.i32()  # session_id
    assert r.i32() == 1, "one topic in the fetch response"
    r.string()
    assert r.i32() == 1, "one partition in the fetch response"
    r.i32()
    err = r.i16()
    hw = r.i64()
    r.i64()  # last_stable_offset
    r.i64()  # log_start_offset
    for _ in range(max(r.i32(), 0)):
        r.i64()
        r.i64()
    r.i32()  # preferred_read_replica
    n = r.i32()
    records = b"" if n < 0 else r.take(n)
    return (err or top_err), hw, records


def produce_raw(node, topic, partition, values, acks=-1, timeout_ms=5000, timeout=15):
    """Produce v7 of one uncompressed batch of `values` sent to `node`.
    Returns (error_code, base_offset)."""
    batch = rawkafka.record_batch([(None, v, []) for v in values])
    with _conn(node, timeout) as c:
        return rawkafka.produce_v7(c, topic, partition, batch, acks=acks, timeout_ms=timeout_ms)


def create_replicated(c, name, partitions, replication, config=None, timeout_s=15):
    """CreateTopics with topic configs through confluent-kafka's AdminClient
    (bootstrapped with every node), then waits until every running node
    shows each partition with a leader.  Returns the partition states."""
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"log_level": 0, "bootstrap.servers": ",".join(n.bootstrap for n in c.nodes.values())})
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=replication,
                                   config=config or {})], operation_timeout=timeout_s)
    fs[name].result(timeout=timeout_s + 10)
    return wait_partitions(c, name, timeout_s,
                           lambda s: len(s) == partitions and all(v["leader"] >= 0 for v in s.values()),
                           "%s: %d partitions with leaders" % (name, partitions))


def clusters_for_a_test(defaults=None):
    """The generator behind the tests' make_cluster fixtures:

        @pytest.fixture
        def make_cluster():
            yield from clusters_for_a_test(FAST)

    make(size=3, overrides=None, start=True) builds a Cluster whose settings
    are `defaults` updated by `overrides`.  Afterwards a node that died on its
    own fails the test with its log tail, and every cluster is stopped and
    removed."""
    made = []

    def make(size=3, overrides=None, start=True):
        c = Cluster(size, dict(defaults or {}, **(overrides or {})))
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    reports = [c.crash_report() for c in made]
    for c in made:
        c.cleanup()
    reports = [r for r in reports if r]
    if reports:
        pytest.fail("\n\n".join(reports), pytrace=False)
