"""Three Tidemark nodes form one KRaft metadata quorum (issue 4): they agree
on a cluster id and a leader; topic metadata and configs made through any
node (followers forward to the active controller) reach every node; the
quorum survives kill -9 and SIGSTOP of its leader, the loss of its majority
and a whole-cluster kill -9; acknowledged changes are never lost and an
isolated leader's unacknowledged ones never survive (the nodes' metadata
logs are compared on disk); a node whose storage belongs to another cluster
cannot disturb it; and bad identity settings stop a node before it joins.

Tidemark-specific (multi-node Apache Kafka is out of scope): skipped when
TM_E2E_TARGET=kafka.  Partition data is not replicated yet (issue 5), so only
metadata is checked across nodes, never records.

Measurements (failover and propagation times) are printed, not asserted:
    sh tests/e2e/run.sh tests/e2e/test_quorum.py -k measure -s
"""
import statistics
import threading
import time

import pytest

import rawkafka
from cluster import (clusters_for_a_test, Cluster, create_partitions, create_topic, delete_topic, describe_quorum, metadata,
                     metadata_log_batches, set_topic_config, topic_configs)
from conftest import TARGET
from tmhelp import admin, kafka_tool, unique_topic

pytestmark = pytest.mark.skipif(TARGET != "tidemark", reason="multi-node quorum tests run against Tidemark only")

# Tighter broker liveness than the defaults (heartbeat 2000 ms, session 9000 ms)
# so a killed node is fenced within the test bound.
FAST_FENCING = {"broker.heartbeat.interval.ms": "500", "broker.session.timeout.ms": "4000"}
FETCH_TIMEOUT_MS = 2000  # controller.quorum.fetch.timeout.ms default


@pytest.fixture
def make_cluster():
    """Clusters for one test (cluster.clusters_for_a_test)."""
    yield from clusters_for_a_test()


@pytest.fixture(scope="module")
def shared_cluster():
    c = Cluster(3)
    try:
        c.start()
        yield c
    finally:
        report = c.crash_report()
        c.cleanup()
        assert report is None, report


@pytest.fixture
def cluster(shared_cluster):
    yield shared_cluster
    report = shared_cluster.crash_report()
    assert report is None, report


# ---- helpers ----------------------------------------------------------------------
def quorum_status(bootstrap):
    """kafka-metadata-quorum describe --status as {key: value}."""
    p = kafka_tool("kafka-metadata-quorum", "--bootstrap-server", bootstrap, "describe", "--status", timeout=60)
    out = {}
    for line in p.stdout.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out, p.stdout


def quorum_replication(bootstrap):
    """kafka-metadata-quorum describe --replication as {node id: (log end
    offset, lag, status)}."""
    p = kafka_tool("kafka-metadata-quorum", "--bootstrap-server", bootstrap, "describe", "--replication",
                   timeout=60)
    rows = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 7 and f[0].isdigit():
            rows[int(f[0])] = (int(f[2]), int(f[3]), f[6])
    return rows, p.stdout


def wait_replication_caught_up(bootstrap, voters, timeout_s):
    """Polls describe --replication until it lists exactly `voters`, each
    with lag 0."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows, text = quorum_replication(bootstrap)
        if sorted(rows) == sorted(voters) and all(lag == 0 for _, lag, _ in rows.values()):
            return rows
        if time.monotonic() >= deadline:
            raise AssertionError("describe --replication via %s never showed voters %r with lag 0 within %ss:\n%s"
                                 % (bootstrap, voters, timeout_s, text))
        time.sleep(0.5)


def wait_voters_caught_up(c, voters, timeout_s):
    """Polls DescribeQuorum on the leader until every voter's log end offset
    equals the leader's and the high watermark reaches it.  Returns the
    answer."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        leader, _ = c.wait_leader(max(1.0, deadline - time.monotonic()))
        try:
            q = describe_quorum(c.node(leader), timeout=3)
        except (OSError, rawkafka.ShortRead, ConnectionError) as e:
            q = {"error": "%s: %s" % (type(e).__name__, e)}
        last = q
        if not q["error"] and sorted(q["voters"]) == sorted(voters):
            leo = q["voters"].get(q["leader"])
            if all(v == leo for v in q["voters"].values()) and q["high_watermark"] == leo:
                return q
        time.sleep(0.1)
    raise AssertionError("voters %r not caught up within %ss (last DescribeQuorum %r)\n%s"
                         % (voters, timeout_s, last, c.logs()))


def others(c, *exclude):
    return [n for n in c.nodes.values() if n.node_id not in exclude]


def wait_topic_everywhere(c, name, partitions, timeout_s, nodes=None):
    """Waits until every node's Metadata shows `name` with `partitions`
    partitions, identically.  Returns (topic id, partitions tuple)."""
    view = c.wait_agree(timeout_s, nodes,
                        check=lambda v: name in v and len(v[name][1]) == partitions)
    return view[name]


def assert_metadata_logs_agree(c, hw):
    """With every node stopped: all nodes hold the same record batches
    (offset, epoch, CRC) below the high watermark `hw`, none missing."""
    for n in c.nodes.values():
        assert not n.running(), "node %d still running" % n.node_id
    logs = {n.node_id: [b for b in metadata_log_batches(n) if b[0] < hw] for n in c.nodes.values()}
    ref_id = min(logs)
    ref = logs[ref_id]
    assert ref and ref[-1][1] == hw - 1, "node %d's metadata log ends at %r below hw %d" % (
        ref_id, ref[-1] if ref else None, hw)
    for nid, batches in logs.items():
        if batches != ref:
            diff = next((i for i, (a, b) in enumerate(zip(batches, ref)) if a != b), min(len(batches), len(ref)))
            raise AssertionError("metadata logs diverge below hw %d: node %d has %r at batch %d, node %d has %r"
                                 % (hw, nid, batches[diff:diff + 3], diff, ref_id, ref[diff:diff + 3]))


def leader_lines(c):
    """{epoch: set of node ids that logged becoming leader in it}."""
    out = {}
    for n in c.nodes.values():
        for _, role, epoch, _ in n.roles():
            if role == "leader":
                out.setdefault(epoch, set()).add(n.node_id)
    return out


# ---- 1. one cluster ------------------------------------------------------------------
def test_three_nodes_form_one_cluster(cluster):
    c = cluster
    ids = {}
    for n in c.nodes.values():
        md = metadata(n)
        ids[n.node_id] = md["cluster_id"]
        assert [b[0] for b in md["brokers"]] == [1, 2, 3], "node %d lists brokers %r" % (n.node_id, md["brokers"])
        stored = (n.data_dir / "meta.properties").read_text()
        assert "cluster.id=%s\n" % md["cluster_id"] in stored, "node %d: meta.properties:\n%s" % (n.node_id, stored)
        assert "node.id=%d\n" % n.node_id in stored, "node %d: meta.properties:\n%s" % (n.node_id, stored)
    assert len(set(ids.values())) == 1 and None not in ids.values(), "cluster ids differ: %r" % ids

    # The same through a client's DescribeCluster.
    a = admin(c.node(3).bootstrap)  # kept referenced until the answer is in
    desc = a.describe_cluster(request_timeout=15).result(timeout=20)
    assert desc.cluster_id == ids[1]
    assert sorted(nd.id for nd in desc.nodes) == [1, 2, 3]

    leader, epoch = c.wait_leader(10)
    status, text = quorum_status(c.node(1).bootstrap)
    assert status.get("ClusterId") == ids[1], text
    assert int(status["LeaderId"]) == leader, text
    assert int(status["LeaderEpoch"]) == epoch >= 1, text
    assert int(status["HighWatermark"]) > 0, text
    assert status["CurrentVoters"].count('"id"') == 3, text
    for i in (1, 2, 3):
        assert '"id": %d' % i in status["CurrentVoters"], text

    rows = wait_replication_caught_up(c.node(2).bootstrap, [1, 2, 3], 15)
    assert rows[leader][2] == "Leader", rows
    assert sorted(s for _, _, s in rows.values()) == ["Follower", "Follower", "Leader"], rows

    # Every node names the same active controller in Metadata.
    assert {metadata(n)["controller_id"] for n in c.nodes.values()} == {leader}


def test_describe_quorum_answers_through_every_node(cluster):
    """A DescribeQuorum sent to a follower is forwarded to the active
    controller and answered, as Kafka's brokers do."""
    c = cluster
    leader, epoch = c.wait_leader(10)
    for n in c.nodes.values():
        try:
            q = describe_quorum(n)
        except (OSError, rawkafka.ShortRead, ConnectionError) as e:
            raise AssertionError("DescribeQuorum v1 sent to node %d (leader is %d): %s: %s; its log:\n%s"
                                 % (n.node_id, leader, type(e).__name__, e, n.log_tail(5)))
        assert (q["error"], q["leader"], q["epoch"]) == (0, leader, epoch), "via node %d: %r" % (n.node_id, q)
        assert sorted(q["voters"]) == [1, 2, 3], "via node %d: %r" % (n.node_id, q)


# ---- 2. topic metadata through the quorum ------------------------------------------------
def test_topic_changes_through_followers_reach_every_node(cluster):
    c = cluster
    leader, _ = c.wait_leader(10)
    f1, f2 = others(c, leader)
    a, b = unique_topic("quorum-a"), unique_topic("quorum-b")

    assert create_topic(f1, a, 6, 3) == (0, None), "CreateTopics %s via follower %d" % (a, f1.node_id)
    tid, parts = wait_topic_everywhere(c, a, 6, 10)
    assert tid != "AAAAAAAAAAAAAAAAAAAAAA", "topic %s has a zero topic id" % a
    assert [p[0] for p in parts] == list(range(6))
    for idx, lead, replicas, isr in parts:
        assert sorted(replicas) == [1, 2, 3] and lead in replicas, "partition %d: %r" % (idx, (lead, replicas))
    assert {p[1] for p in parts} == {1, 2, 3}, "leaders not spread over the brokers: %r" % (parts,)

    # Kafka's own tool shows the same topic id.
    p = kafka_tool("kafka-topics", "--bootstrap-server", f2.bootstrap, "--describe", "--topic", a, timeout=60)
    assert "TopicId: %s" % tid in p.stdout, p.stdout
    assert "PartitionCount: 6" in p.stdout and "ReplicationFactor: 3" in p.stdout, p.stdout

    # A second create of the same name, through the other follower, is refused.
    err, _ = create_topic(f2, a, 6, 3)
    assert err == rawkafka.ERR_TOPIC_ALREADY_EXISTS, "second CreateTopics %s via node %d: error %d" % (
        a, f2.node_id, err)

    assert create_topic(f2, b, 2, 3) == (0, None)
    wait_topic_everywhere(c, b, 2, 10)
    assert create_partitions(f1, b, 5) == (0, None), "CreatePartitions %s -> 5 via node %d" % (b, f1.node_id)
    view = c.wait_agree(10, check=lambda v: b in v and len(v[b][1]) == 5)
    assert [p[0] for p in view[b][1]] == list(range(5))
    assert all(sorted(p[2]) == [1, 2, 3] for p in view[b][1]), view[b]

    assert delete_topic(f2, a) == 0, "DeleteTopics %s via node %d" % (a, f2.node_id)
    view = c.wait_agree(10, check=lambda v: a not in v)
    assert b in view
    for n in c.nodes.values():
        t = metadata(n, [a])["topics"]
        assert len(t) == 1 and t[0]["error"] == 3, "node %d: Metadata for deleted %s: %r" % (n.node_id, a, t)

    assert delete_topic(c.node(leader), b) == 0
    c.wait_agree(10, check=lambda v: b not in v)


def test_topic_config_through_a_follower_reaches_every_node(cluster):
    """A topic config set through one follower is shown by every node's
    DescribeConfigs."""
    c = cluster
    leader, _ = c.wait_leader(10)
    f1, f2 = others(c, leader)
    t = unique_topic("quorum-cfg")
    assert create_topic(f1, t, 2, 3) == (0, None)
    wait_topic_everywhere(c, t, 2, 10)
    assert set_topic_config(f2, t, "retention.ms", "123456") == (0, None), "IncrementalAlterConfigs via node %d" % (
        f2.node_id)
    deadline = time.monotonic() + 10
    pending = set(c.ids())
    while pending:
        for nid in sorted(pending):
            err, cfg = topic_configs(c.node(nid), t)
            if err == 0 and cfg.get("retention.ms") == ("123456", 1):  # 1: DYNAMIC_TOPIC_CONFIG
                pending.discard(nid)
        assert time.monotonic() < deadline, "retention.ms=123456 not shown by nodes %r within 10 s (node %d: %r)" % (
            sorted(pending), nid, cfg.get("retention.ms"))
        time.sleep(0.1)


def test_auto_create_through_a_follower_answers_with_the_topic(cluster):
    """Metadata with allow_auto_topic_creation sent to a follower: the
    answer has the new topic (error 0, a topic id, its partition) or, as
    Kafka answers while a creation is under way, LEADER_NOT_AVAILABLE (5);
    never UNKNOWN_TOPIC_OR_PARTITION for a topic that now exists.  Ten
    topics, since whether the follower has applied the creation when it
    answers is a race."""
    c = cluster
    leader, _ = c.wait_leader(10)
    f1 = others(c, leader)[0]
    answers = {}
    for _ in range(10):
        name = unique_topic("quorum-auto")
        t = metadata(f1, [name], auto_create=True)["topics"]
        assert len(t) == 1 and t[0]["name"] == name, t
        answers[name] = (t[0]["error"], t[0]["id"], len(t[0]["partitions"]))
    for name in answers:
        _, parts = wait_topic_everywhere(c, name, 1, 10)
        assert parts[0][2] == (parts[0][1],), "auto-created %s: default.replication.factor=1: %r" % (name, parts)
    bad = {n: a for n, a in answers.items()
           if not (a[0] == 5 or (a[0] == 0 and a[1] != "AAAAAAAAAAAAAAAAAAAAAA" and a[2] == 1))}
    assert not bad, ("%d of %d auto-creating Metadata answers from follower %d were wrong (error, topic id, "
                     "partitions): %r" % (len(bad), len(answers), f1.node_id, bad))


def test_node_of_another_cluster_cannot_depose_the_leader(make_cluster):
    """Node 3's storage belongs to another cluster (a one-node cluster it
    ran in, up to epoch >= 3).  Started with this cluster's voters, its
    answers carry INCONSISTENT_CLUSTER_ID; nodes 1 and 2 must not take the
    epoch or leader those answers name: their leader stays, in its epoch,
    and node 3 never serves clients."""
    c = make_cluster(3, start=False)
    n3 = c.node(3)
    n3.overrides = {"controller.quorum.voters": "3@127.0.0.1:%d" % n3.cport}
    for _ in range(3):
        n3.start()
        n3.stop()
    foreign_epoch = max(e for _, _, e, _ in n3.roles())
    n3.overrides = {}
    for i in (1, 2):
        c.node(i).start(wait=False)
    for i in (1, 2):
        c.node(i).wait_serving(30, brokers=[1, 2])
    leader, epoch = c.wait_leader(10)
    assert epoch < foreign_epoch, "this cluster's epoch %d, node 3's %d: no test" % (epoch, foreign_epoch)
    roles_before = {i: len(c.node(i).roles()) for i in (1, 2)}

    n3.start(wait=False)
    time.sleep(3 * FETCH_TIMEOUT_MS / 1000)
    assert n3.running(), "node 3 exited:\n%s" % n3.log_tail()
    changes = {i: c.node(i).roles()[roles_before[i]:] for i in (1, 2)}
    assert not any(changes.values()), ("a node of another cluster (epoch %d) changed the roles of this cluster's "
                                       "nodes (leader %d, epoch %d): %r" % (foreign_epoch, leader, epoch, changes))
    assert c.wait_leader(5) == (leader, epoch)
    for i in (1, 2):
        assert [b[0] for b in metadata(c.node(i))["brokers"]] == [1, 2]
    try:
        with rawkafka.Conn(n3.host, n3.port, timeout=2):
            serving = True
    except OSError:
        serving = False
    assert not serving, "node 3, of another cluster, opened its client port"


# ---- 3. kill -9 of the active controller ----------------------------------------------
def test_kill_9_leader_fails_over_and_rejoins(make_cluster):
    c = make_cluster(3, FAST_FENCING)
    leader, epoch = c.wait_leader(10)
    old = c.node(leader)
    before = unique_topic("before-kill")
    assert create_topic(old, before, 3, 3) == (0, None)
    before_id, _ = wait_topic_everywhere(c, before, 3, 10)

    t_kill = old.kill9()
    new_leader, new_epoch = c.wait_leader(20, not_id=leader, min_epoch=epoch + 1)
    t_seen = time.time()
    assert new_leader != leader and new_epoch > epoch
    logged = [t for n in others(c, leader) for t, role, e, _ in n.roles() if role == "leader" and e == new_epoch]
    print("\nfailover after kill -9 of leader %d (epoch %d): node %d leads epoch %d; elected %.0f ms after the "
          "kill (log), seen by DescribeQuorum %.0f ms after" % (leader, epoch, new_leader, new_epoch,
                                                                  (logged[0] - t_kill) * 1000 if logged else -1,
                                                                  (t_seen - t_kill) * 1000))

    survivors = others(c, leader)
    view = c.wait_agree(10, survivors, check=lambda v: before in v)
    assert view[before][0] == before_id

    after = unique_topic("after-kill")
    follower = next(n for n in survivors if n.node_id != new_leader)
    assert create_topic(follower, after, 3, 3) == (0, None), "CreateTopics via node %d after failover" % (
        follower.node_id)
    wait_topic_everywhere(c, after, 3, 10, survivors)

    # The killed broker is fenced: it leaves Metadata and leads no partition.
    def fenced(v):
        return all(leader not in (p[1] for p in t[1]) for t in v.values())
    c.wait_agree(15, survivors, check=fenced)
    for n in survivors:
        ids = [b[0] for b in metadata(n)["brokers"]]
        assert leader not in ids, "node %d still lists killed broker %d: %r" % (n.node_id, leader, ids)

    old.start()
    old.wait_serving(30, brokers=[1, 2, 3])
    wait_voters_caught_up(c, [1, 2, 3], 15)
    rows = wait_replication_caught_up(old.bootstrap, [1, 2, 3], 15)
    assert rows[leader][2] == "Follower", rows
    view = c.wait_agree(15, check=lambda v: before in v and after in v)
    assert view[before][0] == before_id
    md = metadata(old)
    assert {t["name"] for t in md["topics"]} >= {before, after}
    assert md["controller_id"] == new_leader


def test_majority_loss_stops_changes_and_recovers(make_cluster):
    """One follower down: the quorum goes on.  Two nodes down: the survivor
    still answers Metadata from what it has, refuses changes with an error
    in bounded time, and the quorum resumes when a second node returns."""
    c = make_cluster(3, FAST_FENCING)
    leader, epoch = c.wait_leader(10)
    fa, fb = others(c, leader)
    fa.kill9()
    t1 = unique_topic("one-down")
    assert create_topic(fb, t1, 3, 3) == (0, None), "CreateTopics via node %d with node %d down" % (
        fb.node_id, fa.node_id)
    wait_topic_everywhere(c, t1, 3, 10, [fb, c.node(leader)])
    assert c.wait_leader(5) == (leader, epoch), "the leader changed when a follower died"

    c.node(leader).kill9()
    t2 = unique_topic("two-down")
    t0 = time.monotonic()
    try:
        err = create_topic(fb, t2, 1, 1, timeout=20)[0]
    except (OSError, rawkafka.ShortRead, ConnectionError) as e:
        err = "%s: %s" % (type(e).__name__, e)
    took = time.monotonic() - t0
    print("\nCreateTopics on the last node of 3: %r after %.1f s" % (err, took))
    assert err != 0, "CreateTopics succeeded with 2 of 3 voters down"
    md = metadata(fb, [t1])
    assert md["topics"][0]["name"] == t1 and md["topics"][0]["error"] == 0, md["topics"]

    fa.start(wait=False)
    new_leader, new_epoch = c.wait_leader(20, min_epoch=epoch + 1)
    assert new_leader in (fa.node_id, fb.node_id)
    fa.wait_serving(30)
    assert create_topic(fb, t2, 1, 1) == (0, None)
    wait_topic_everywhere(c, t2, 1, 10, [fa, fb])
    c.node(leader).start()
    wait_voters_caught_up(c, [1, 2, 3], 15)
    c.wait_agree(15, check=lambda v: t1 in v and t2 in v)


def test_whole_cluster_kill_9_keeps_metadata(make_cluster):
    """Every node killed at once and started again: same cluster id, same
    topics and topic ids, same configs, and a new leader epoch."""
    c = make_cluster(3)
    leader, epoch = c.wait_leader(10)
    names = [unique_topic("whole-%d" % i) for i in range(3)]
    for i, name in enumerate(names):
        assert create_topic(c.node(i + 1), name, i + 1, 3) == (0, None)
    assert set_topic_config(c.node(1), names[0], "cleanup.policy", "compact") == (0, None)
    before = c.wait_agree(10, check=lambda v: all(n in v for n in names))
    cid = metadata(c.node(1))["cluster_id"]
    q = wait_voters_caught_up(c, [1, 2, 3], 15)

    for n in c.nodes.values():
        n.kill9()
    c.start()
    after = c.wait_agree(15, check=lambda v: all(n in v for n in names))
    for name in names:
        assert after[name][0] == before[name][0], "topic %s: id %s before, %s after" % (
            name, before[name][0], after[name][0])
        assert [p[0] for p in after[name][1]] == [p[0] for p in before[name][1]]
    assert {metadata(n)["cluster_id"] for n in c.nodes.values()} == {cid}
    new_leader, new_epoch = c.wait_leader(10)
    assert new_epoch > q["epoch"]
    for n in c.nodes.values():
        err, cfg = topic_configs(n, names[0])
        assert err == 0 and cfg.get("cleanup.policy", (None,))[0] == "compact", "node %d: %r" % (
            n.node_id, cfg.get("cleanup.policy"))
    q = wait_voters_caught_up(c, [1, 2, 3], 15)
    for n in c.nodes.values():
        n.stop()
    assert_metadata_logs_agree(c, q["high_watermark"])


def test_acknowledged_creates_survive_leader_kills(make_cluster):
    """A client creates topics through every node in turn while the leader
    is killed twice and restarted: every CreateTopics that was acknowledged
    is on every node afterwards, and the nodes' metadata logs agree."""
    c = make_cluster(3)
    acked, failed = [], []
    stop = threading.Event()

    def client():
        i = 0
        while not stop.is_set():
            n = c.node(i % 3 + 1)
            i += 1
            name = unique_topic("churn")
            try:
                err = create_topic(n, name, 1, 3, timeout=10)[0]
            except (OSError, rawkafka.ShortRead, ConnectionError) as e:
                err = type(e).__name__
            (acked if err == 0 else failed).append((name, n.node_id, err))
            if err != 0:
                time.sleep(0.05)

    th = threading.Thread(target=client, daemon=True)
    th.start()
    try:
        for _ in range(2):
            time.sleep(0.5)
            leader, epoch = c.wait_leader(10)
            c.node(leader).kill9()
            c.wait_leader(20, not_id=leader, min_epoch=epoch + 1)
            time.sleep(0.5)
            c.node(leader).start()
        time.sleep(0.5)
    finally:
        stop.set()
        th.join(30)
    assert not th.is_alive(), "the client thread did not stop"
    print("\n%d CreateTopics acknowledged, %d not (e.g. %r)" % (len(acked), len(failed), failed[:3]))
    assert len(acked) >= 5, "too few acknowledged creates to check anything: %d (failed %r)" % (len(acked), failed[:5])
    names = {a[0] for a in acked}
    q = wait_voters_caught_up(c, [1, 2, 3], 15)
    view = c.wait_agree(15, check=lambda v: names <= set(v))
    missing = sorted(names - set(view))
    assert not missing, "acknowledged but missing: %r" % missing
    for n in c.nodes.values():
        n.stop()
    assert_metadata_logs_agree(c, q["high_watermark"])


def test_same_topic_through_two_followers_at_once(cluster):
    """The same new topic created at the same moment through both
    followers: exactly one creation succeeds, the other is told
    TOPIC_ALREADY_EXISTS, and one topic id is everywhere."""
    c = cluster
    leader, _ = c.wait_leader(10)
    f1, f2 = others(c, leader)
    for _ in range(5):
        name = unique_topic("quorum-dup")
        results = {}
        barrier = threading.Barrier(2)

        def go(n):
            barrier.wait(5)
            results[n.node_id] = create_topic(n, name, 2, 3)[0]
        ts = [threading.Thread(target=go, args=(n,)) for n in (f1, f2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert sorted(results.values()) == [0, rawkafka.ERR_TOPIC_ALREADY_EXISTS], "topic %s: %r" % (name, results)
        wait_topic_everywhere(c, name, 2, 10)


# ---- 4. SIGSTOP of the leader ---------------------------------------------------------
def test_sigstopped_leader_steps_down_without_divergence(make_cluster):
    c = make_cluster(3)
    leader, epoch = c.wait_leader(10)
    old = c.node(leader)
    before = unique_topic("before-stop")
    assert create_topic(old, before, 3, 3) == (0, None)
    wait_topic_everywhere(c, before, 3, 10)

    t_stop = old.sigstop()
    new_leader, new_epoch = c.wait_leader(20, not_id=leader, min_epoch=epoch + 1)
    survivors = others(c, leader)
    during = unique_topic("during-stop")
    follower = next(n for n in survivors if n.node_id != new_leader)
    assert create_topic(follower, during, 3, 3) == (0, None)
    wait_topic_everywhere(c, during, 3, 10, survivors)
    # Frozen for at least twice the fetch timeout in all.
    time.sleep(max(0.0, 2 * FETCH_TIMEOUT_MS / 1000 - (time.time() - t_stop)))
    assert old.running(), "stopped node %d exited" % leader

    old.sigcont()
    # A client reaching the old leader right after it wakes: whatever it is
    # told, every node must end up with the same metadata.
    race = unique_topic("race")
    try:
        race_err = create_topic(old, race, 1, 3, timeout=15)[0]
    except (OSError, rawkafka.ShortRead, ConnectionError) as e:
        race_err = "%s: %s" % (type(e).__name__, e)
    print("\nCreateTopics sent to node %d right after SIGCONT: %r" % (leader, race_err))

    # It steps down: its last role is follower of the new leader, in the
    # newest epoch, and that epoch has exactly one leader.
    def stepped_down():
        r = old.roles()
        return r and r[-1][1] != "leader" and r[-1][2] >= new_epoch and r[-1][3] >= 0
    deadline = time.monotonic() + 15
    while not stepped_down():
        assert time.monotonic() < deadline, "node %d did not step down within 15 s; roles %r\n%s" % (
            leader, old.roles()[-4:], c.logs())
        time.sleep(0.1)
    leads = leader_lines(c)
    top = max(leads)
    assert len(leads[top]) == 1, "epoch %d has leaders %r" % (top, leads[top])
    final_leader = next(iter(leads[top]))
    for n in c.nodes.values():
        last = n.roles()[-1]
        assert (last[2], last[3]) == (top, final_leader), "node %d's last role %r, epoch %d leader %d" % (
            n.node_id, last, top, final_leader)

    q = wait_voters_caught_up(c, [1, 2, 3], 15)
    view = c.wait_agree(15, check=lambda v: before in v and during in v)
    if race_err == 0:
        assert race in view, "CreateTopics %s succeeded via node %d but no node shows it" % (race, leader)
    for n in c.nodes.values():
        assert metadata(n)["controller_id"] == final_leader

    hw = q["high_watermark"]
    for n in c.nodes.values():
        n.stop()
    assert_metadata_logs_agree(c, hw)


def test_isolated_leader_truncates_what_it_appended_alone(make_cluster):
    """Both followers frozen: a CreateTopics reaches the leader, which can
    append it but never commit it.  Then the leader is frozen and the
    followers resumed: they elect a new leader and commit another topic.
    When the old leader resumes, it must drop its uncommitted entry: the
    first topic was never acknowledged and exists nowhere, the second is
    everywhere, and the metadata logs agree."""
    c = make_cluster(3)
    leader, epoch = c.wait_leader(10)
    old = c.node(leader)
    fa, fb = others(c, leader)
    fa.sigstop()
    fb.sigstop()
    lost = unique_topic("alone")
    result = {}

    def send():
        try:
            result["err"] = create_topic(old, lost, 1, 3, timeout=6)[0]
        except (OSError, rawkafka.ShortRead, ConnectionError) as e:
            result["err"] = "%s: %s" % (type(e).__name__, e)
    th = threading.Thread(target=send, daemon=True)
    th.start()
    time.sleep(1.0)
    old.sigstop()
    fa.sigcont()
    fb.sigcont()
    new_leader, new_epoch = c.wait_leader(20, not_id=leader, min_epoch=epoch + 1)
    kept = unique_topic("majority")
    assert create_topic(fa, kept, 1, 3) == (0, None)
    old.sigcont()
    th.join(20)
    assert not th.is_alive(), "CreateTopics to the isolated leader never returned"
    err = result.get("err")
    print("\nCreateTopics to the isolated leader %d: %r" % (leader, err))
    assert err != 0, "the isolated leader acknowledged %s without a majority" % lost

    q = wait_voters_caught_up(c, [1, 2, 3], 20)
    view = c.wait_agree(15, check=lambda v: kept in v and lost not in v)
    assert lost not in view
    for n in c.nodes.values():
        n.stop()
    assert_metadata_logs_agree(c, q["high_watermark"])
    # What the client was told must let it retry: NOT_CONTROLLER (41) or
    # REQUEST_TIMED_OUT (7), as Kafka answers, or a closed connection.
    assert err in (7, 41) or isinstance(err, str), (
        "CreateTopics whose entry the isolated leader %d later dropped was answered with error %r; a client "
        "does not retry that" % (leader, err))


# ---- 5. identity checks -----------------------------------------------------------------
def test_bad_identity_refuses_to_start(make_cluster):
    c = make_cluster(3, start=False)
    n1, n2 = c.node(1), c.node(2)

    rc, out = n1.run_to_exit({"node.id": "4"})
    assert rc != 0, out
    assert "controller.quorum.voters" in out, "node.id 4 outside the voters: %s" % out

    # Node 1 alone: it writes meta.properties on start (no quorum needed).
    n1.start(wait=False)
    meta = n1.data_dir / "meta.properties"
    deadline = time.monotonic() + 20
    while "cluster.id=" not in (meta.read_text() if meta.exists() else ""):
        assert time.monotonic() < deadline and n1.running(), "no meta.properties from node 1:\n%s" % n1.log_tail()
        time.sleep(0.1)
    assert n1.stop() == 0, n1.log_tail()
    stored = meta.read_text()

    rc, out = n1.run_to_exit({"cluster.id": "OtherClusterIdAAAAAAAAA"})
    assert rc != 0, out
    assert "cluster.id" in out and "OtherClusterIdAAAAAAAAA" in out, out

    rc, out = n2.run_to_exit({"log.dirs": str(n1.data_dir)})
    assert rc != 0, out
    assert "node.id" in out and "meta.properties" in out, out

    assert meta.read_text() == stored, "a refused start changed meta.properties"


# ---- 6. measurements -----------------------------------------------------------------------
def test_measure_failover_and_propagation(make_cluster):
    """Prints: kill -9 (and SIGTERM) of the leader -> new leader (from the
    log lines and from polling DescribeQuorum), and CreateTopics -> visible
    in all three nodes' Metadata.  Nothing here is asserted about time."""
    c = make_cluster(3)
    nodes = list(c.nodes.values())

    prop = []
    for i in range(8):
        name = unique_topic("prop")
        via = nodes[i % 3]
        t0 = time.monotonic()
        assert create_topic(via, name, 3, 3) == (0, None)
        t_ack = time.monotonic()
        seen = set()
        while len(seen) < 3:
            for n in nodes:
                if n.node_id not in seen and any(t["name"] == name and not t["error"]
                                                 for t in metadata(n, [name])["topics"]):
                    seen.add(n.node_id)
            assert time.monotonic() - t0 < 10, "topic %s not on every node within 10 s" % name
            time.sleep(0.002)
        prop.append(((t_ack - t0) * 1000, (time.monotonic() - t0) * 1000))

    failover = []
    graceful = []
    for cycle in range(6):
        leader, epoch = c.wait_leader(10)
        wait_voters_caught_up(c, [1, 2, 3], 15)
        if cycle % 2 == 0:
            t_kill = c.node(leader).kill9()
        else:
            t_kill = time.time()
            c.node(leader).stop()
        new_leader, new_epoch = c.wait_leader(20, not_id=leader, min_epoch=epoch + 1)
        t_seen = time.time()
        logged = min(t for n in others(c, leader) for t, role, e, _ in n.roles()
                     if role == "leader" and e == new_epoch)
        (failover if cycle % 2 == 0 else graceful).append(((logged - t_kill) * 1000, (t_seen - t_kill) * 1000))
        c.node(leader).start()

    def fmt(xs):
        return "min %.0f / median %.0f / max %.0f ms" % (min(xs), statistics.median(xs), max(xs))
    print("\nCreateTopics (3 partitions, RF 3) acknowledged: %s (n=%d)" % (fmt([a for a, _ in prop]), len(prop)))
    print("CreateTopics visible in all 3 nodes' Metadata: %s (n=%d)" % (fmt([b for _, b in prop]), len(prop)))
    print("kill -9 of the leader -> new leader elected (log): %s (n=%d)" % (fmt([a for a, _ in failover]),
                                                                          len(failover)))
    print("kill -9 of the leader -> new leader seen by DescribeQuorum: %s (n=%d)" % (
        fmt([b for _, b in failover]), len(failover)))
    print("SIGTERM of the leader -> new leader elected (log): %s (n=%d)" % (fmt([a for a, _ in graceful]),
                                                                          len(graceful)))
