"""Moving partition leadership and replicas on purpose, on a three-node
cluster, as a Kafka operator does it:

  - kafka-leader-election --election-type PREFERRED --all-topic-partitions
    moves leadership back to the preferred (first) replicas after a broker
    came back; a second run has nothing to do; UNCLEAN elects a live replica
    outside the ISR when no ISR member lives, and refuses partitions that
    have a leader (ElectLeaders, API 43).
  - with auto.leader.rebalance.enable the active controller does the same by
    itself every leader.imbalance.check.interval.seconds.
  - SIGTERM is a controlled shutdown: before the process exits, the
    controller has moved its leadership to other in-sync replicas and taken
    it out of the ISRs (the session timeout here is long, so fencing cannot
    be what moved them).
  - kafka-reassign-partitions --execute / --verify moves a partition's
    replicas online (AlterPartitionReassignments / ListPartitionReassignments,
    KIP-455): the new replica catches up, joins the ISR, the old one leaves,
    and every record is still there.

Tidemark-specific (multi-node Apache Kafka is out of scope): skipped when
TM_E2E_TARGET=kafka.
"""
import json
import re
import time

import pytest

import rawkafka
from cluster import clusters_for_a_test, create_replicated, isr_whole, partition_states, wait_isr_whole, wait_partitions
from conftest import KAFKA_TOOL_CLASSES, TARGET
from confluent_kafka.admin import AdminClient, NewTopic
from tmhelp import consume, kafka_tool, produce, unique_topic

pytestmark = pytest.mark.skipif(TARGET != "tidemark", reason="multi-node leadership tests run against Tidemark only")

# The two tools these tests drive, by their bin/ names.
KAFKA_TOOL_CLASSES.setdefault("kafka-leader-election", "org.apache.kafka.tools.LeaderElectionCommand")
KAFKA_TOOL_CLASSES.setdefault("kafka-reassign-partitions", "org.apache.kafka.tools.reassign.ReassignPartitionsCommand")

FAST = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "replica.lag.time.max.ms": "3000",
    "auto.leader.rebalance.enable": "false",
}
WAIT_S = 25


@pytest.fixture
def make_cluster():
    """Clusters for one test (cluster.clusters_for_a_test)."""
    yield from clusters_for_a_test(FAST)


def bootstrap(c):
    return ",".join(n.bootstrap for n in c.running())


def preferred_led(states):
    return all(s["leader"] == s["replicas"][0] for s in states.values())


def leader_election(c, *args, check=True):
    return kafka_tool("kafka-leader-election", "--bootstrap-server", bootstrap(c), *args, timeout=90, check=check)


def bounce(c, node_id, states_before, topic):
    """kill -9 node_id, wait until its partitions moved, restart it and wait
    for the ISR to be whole again.  Returns the states then."""
    c.node(node_id).kill9()
    led = [p for p, s in states_before.items() if s["leader"] == node_id]
    wait_partitions(c, topic, WAIT_S, lambda s: all(s[p]["leader"] not in (-1, node_id) for p in led),
                    "partitions %r led by another broker after node %d died" % (led, node_id))
    c.node(node_id).start()
    return wait_isr_whole(c, topic, WAIT_S)


# ---- raw requests to one node (Kafka's AdminClient sends these to the
# controller itself, which would hide whether a broker forwards them) ------------
API_ELECT_LEADERS = 43
API_ALTER_PARTITION_REASSIGNMENTS = 45
API_LIST_PARTITION_REASSIGNMENTS = 46
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_INVALID_REPLICA_ASSIGNMENT = 39
ERR_ELECTION_NOT_NEEDED = 84
ERR_NO_REASSIGNMENT_IN_PROGRESS = 85


def _i32s(w, xs):
    w.uvarint(len(xs) + 1)
    for x in xs:
        w.i32(x)
    return w


def _read_i32s(r):
    n = r.uvarint()
    return [r.i32() for _ in range(max(n - 1, 0))]


def elect_leaders_raw(node, election_type, topic_partitions):
    """ElectLeaders v2 to `node`; topic_partitions {topic: [partitions]} or
    None (all).  Returns (error_code, {(topic, partition): (error_code, message)})."""
    w = rawkafka.Writer().i8(election_type)
    if topic_partitions is None:
        w.uvarint(0)
    else:
        w.uvarint(len(topic_partitions) + 1)
        for t, parts in topic_partitions.items():
            _i32s(w.compact_string(t), parts).tags()
    w.i32(30000).tags()
    with rawkafka.Conn(node.host, node.port, timeout=30) as conn:
        r = conn.request(API_ELECT_LEADERS, 2, w.build(), flexible=True)
    r.i32()  # throttle_time_ms
    err, out = r.i16(), {}
    for _ in range(max(r.uvarint() - 1, 0)):
        t = r.compact_string()
        for _ in range(max(r.uvarint() - 1, 0)):
            part, perr, msg = r.i32(), r.i16(), r.compact_string()
            r.skip_tags()
            out[(t, part)] = (perr, msg)
        r.skip_tags()
    return err, out


def alter_reassignments_raw(node, topic, partition, replicas):
    """AlterPartitionReassignments v0 of one partition (replicas None:
    cancel).  Returns (error_code, message) of that partition."""
    w = rawkafka.Writer().i32(30000).uvarint(2).compact_string(topic).uvarint(2).i32(partition)
    if replicas is None:
        w.uvarint(0)
    else:
        _i32s(w, replicas)
    w.tags().tags().tags()
    with rawkafka.Conn(node.host, node.port, timeout=30) as conn:
        r = conn.request(API_ALTER_PARTITION_REASSIGNMENTS, 0, w.build(), flexible=True)
    r.i32()
    assert (r.i16(), r.compact_string()) == (0, None)
    assert r.uvarint() == 2 and r.compact_string() == topic and r.uvarint() == 2
    assert r.i32() == partition
    return r.i16(), r.compact_string()


def list_reassignments_raw(node):
    """ListPartitionReassignments v0 (all topics) to `node`:
    {(topic, partition): (replicas, adding, removing)}."""
    w = rawkafka.Writer().i32(30000).uvarint(0).tags()
    with rawkafka.Conn(node.host, node.port, timeout=30) as conn:
        r = conn.request(API_LIST_PARTITION_REASSIGNMENTS, 0, w.build(), flexible=True)
    r.i32()
    assert r.i16() == 0
    r.compact_string()
    out = {}
    for _ in range(max(r.uvarint() - 1, 0)):
        t = r.compact_string()
        for _ in range(max(r.uvarint() - 1, 0)):
            part = r.i32()
            out[(t, part)] = (_read_i32s(r), _read_i32s(r), _read_i32s(r))
            r.skip_tags()
        r.skip_tags()
    return out


def test_requests_to_a_broker_that_is_not_the_controller_are_forwarded(make_cluster):
    c = make_cluster()
    topic = unique_topic("elect-raw")
    create_replicated(c, topic, 2, 3)
    wait_isr_whole(c, topic, WAIT_S)
    controller, _ = c.wait_leader(10)
    node = c.node(next(i for i in c.ids() if i != controller))

    err, res = elect_leaders_raw(node, 0, {topic: [0, 1, 5], "no-such-topic": [0]})
    assert err == 0
    assert res[(topic, 0)][0] == ERR_ELECTION_NOT_NEEDED and res[(topic, 1)][0] == ERR_ELECTION_NOT_NEEDED, res
    assert res[(topic, 5)][0] == ERR_UNKNOWN_TOPIC_OR_PARTITION, res
    assert res[("no-such-topic", 0)] == (ERR_UNKNOWN_TOPIC_OR_PARTITION,
                                         "This server does not host this topic-partition."), res
    # All partitions, all preferred already: an empty answer.
    assert elect_leaders_raw(node, 0, None) == (0, {})

    assert alter_reassignments_raw(node, topic, 0, [1, 1]) == (
        ERR_INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes the broker 1 more than once.")
    assert alter_reassignments_raw(node, topic, 0, [1, 2, 9]) == (
        ERR_INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes broker 9, but no such broker is registered.")
    assert alter_reassignments_raw(node, topic, 0, None)[0] == ERR_NO_REASSIGNMENT_IN_PROGRESS
    assert alter_reassignments_raw(node, topic, 9, [1])[0] == ERR_UNKNOWN_TOPIC_OR_PARTITION
    assert list_reassignments_raw(node) == {}
    # A shrink to two replicas completes in one step.
    before = partition_states(node, topic)[1]
    target = before["replicas"][1:]
    assert alter_reassignments_raw(node, topic, 1, target) == (0, None)
    st = wait_partitions(c, topic, WAIT_S, lambda s: s[1]["replicas"] == target, "partition 1 on %r" % target)
    assert st[1]["isr"] == sorted(target) and st[1]["leader"] == target[0], st
    assert list_reassignments_raw(node) == {}


# ---- ElectLeaders -------------------------------------------------------------------
def test_preferred_election_moves_leadership_back(make_cluster):
    c = make_cluster()
    topic = unique_topic("elect-pref")
    create_replicated(c, topic, 3, 3)
    before = wait_isr_whole(c, topic, WAIT_S)
    assert preferred_led(before), before
    after = bounce(c, 1, before, topic)
    moved = [p for p, s in after.items() if s["leader"] != s["replicas"][0]]
    assert moved, "node 1 came back and still leads its partitions: %r" % after

    p = leader_election(c, "--election-type", "PREFERRED", "--all-topic-partitions")
    assert "Successfully completed leader election (PREFERRED) for partitions" in p.stdout, p.stdout + p.stderr
    for part in moved:
        assert "%s-%d" % (topic, part) in p.stdout, p.stdout
    final = wait_partitions(c, topic, WAIT_S, preferred_led, "every partition led by its preferred replica")
    for part in moved:
        assert final[part]["leader_epoch"] > after[part]["leader_epoch"], (part, after, final)
        assert final[part]["isr"] == [1, 2, 3], final

    # Nothing left to do: the tool reports no failure and no election.
    p = leader_election(c, "--election-type", "PREFERRED", "--all-topic-partitions")
    assert "Successfully completed" not in p.stdout, p.stdout
    # Named partitions that already have their preferred leader: ELECTION_NOT_NEEDED.
    p = leader_election(c, "--election-type", "PREFERRED", "--topic", topic, "--partition", "0")
    assert "Valid replica already elected for partitions %s-0" % topic in p.stdout, p.stdout + p.stderr
    assert partition_states(c.node(2), topic) == final


def test_election_errors_for_unknown_partitions_and_leaders_in_place(make_cluster):
    c = make_cluster()
    topic = unique_topic("elect-err")
    create_replicated(c, topic, 1, 3)
    wait_isr_whole(c, topic, WAIT_S)
    p = leader_election(c, "--election-type", "PREFERRED", "--topic", topic, "--partition", "7", check=False)
    assert p.returncode != 0, p.stdout
    assert "UnknownTopicOrPartitionException" in p.stdout + p.stderr, p.stdout + p.stderr
    # UNCLEAN on a partition that has a leader: nothing to elect.
    p = leader_election(c, "--election-type", "UNCLEAN", "--topic", topic, "--partition", "0")
    assert "Valid replica already elected for partitions %s-0" % topic in p.stdout, p.stdout + p.stderr


def test_unclean_election_picks_live_replica_outside_isr(make_cluster):
    # b leaves the ISR while paused (lag 2 s), a dies for good while b is
    # still paused; b comes back out of sync, so only an unclean election
    # gives the partition a leader.
    c = make_cluster(overrides={"replica.lag.time.max.ms": "2000", "broker.session.timeout.ms": "8000"})
    topic = unique_topic("elect-unclean")
    create_replicated(c, topic, 1, 2)
    st = wait_isr_whole(c, topic, WAIT_S)[0]
    a, b = st["replicas"]
    produce(bootstrap(c), topic, [{"value": b"v%d" % i, "partition": 0} for i in range(10)], config={"acks": "all"})
    c.node(b).sigstop()
    try:
        wait_partitions(c, topic, WAIT_S, lambda s: s[0]["isr"] == [a], "ISR shrunk to the leader %d" % a,
                        nodes=[n for n in c.running() if n.node_id != b])
        # Killed before b resumes, so b cannot catch up and rejoin the ISR.
        c.node(a).kill9()
    finally:
        c.node(b).sigcont()
    state = wait_partitions(c, topic, WAIT_S, lambda s: s[0]["leader"] == -1,
                            "partition 0 without a leader once %d is fenced" % a)[0]
    assert state["isr"] == [a], state

    p = leader_election(c, "--election-type", "PREFERRED", "--topic", topic, "--partition", "0", check=False)
    assert p.returncode != 0 and "PreferredLeaderNotAvailableException" in p.stdout + p.stderr, p.stdout + p.stderr
    p = leader_election(c, "--election-type", "UNCLEAN", "--topic", topic, "--partition", "0")
    assert "Successfully completed leader election (UNCLEAN) for partitions %s-0" % topic in p.stdout, p.stdout
    state = wait_partitions(c, topic, WAIT_S, lambda s: s[0]["leader"] == b, "partition 0 led by %d" % b)[0]
    assert state["isr"] == [b], state


# ---- automatic leader balance -------------------------------------------------------
def test_auto_rebalance_moves_leadership_back(make_cluster):
    c = make_cluster(overrides={"auto.leader.rebalance.enable": "true", "leader.imbalance.check.interval.seconds": "1"})
    topic = unique_topic("elect-auto")
    create_replicated(c, topic, 3, 3)
    before = wait_isr_whole(c, topic, WAIT_S)
    assert preferred_led(before), before
    c.node(2).kill9()
    wait_partitions(c, topic, WAIT_S, lambda s: all(v["leader"] not in (-1, 2) for v in s.values()),
                    "node 2's partitions led elsewhere")
    c.node(2).start()
    # Back in the ISR, then leader again within a few check intervals.
    wait_partitions(c, topic, WAIT_S, lambda s: isr_whole(s) and preferred_led(s),
                    "ISR whole and every partition led by its preferred replica again")
    text = "\n".join(n.log_text() for n in c.nodes.values())
    assert "leader balance:" in text, c.logs()


# ---- controlled shutdown ------------------------------------------------------------
@pytest.mark.parametrize("who", ["follower-of-the-quorum", "active-controller"])
def test_sigterm_moves_leadership_before_exit(make_cluster, who):
    # A long session: only the controlled shutdown can move leadership in time.
    c = make_cluster(overrides={"broker.session.timeout.ms": "60000"})
    topic = unique_topic("elect-shutdown")
    create_replicated(c, topic, 3, 3)
    wait_isr_whole(c, topic, WAIT_S)
    controller, _ = c.wait_leader(10)
    victim = controller if who == "active-controller" else next(i for i in c.ids() if i != controller)
    t0 = time.monotonic()
    rc = c.node(victim).stop()
    took = time.monotonic() - t0
    assert rc == 0, "node %d exit status %r\n%s" % (victim, rc, c.node(victim).log_tail())
    assert took < 15, "SIGTERM took %.1fs" % took
    log = c.node(victim).log_text()
    assert "controlled shutdown: the controller moved this node's leadership away" in log, c.node(victim).log_tail()
    c.wait_leader(15, not_id=victim)
    # Straight after the exit, well inside the 60 s session: nothing is led by
    # the stopped node, and it is in no ISR.
    st = wait_partitions(c, topic, 10, lambda s: all(v["leader"] not in (-1, victim) for v in s.values()),
                         "no partition led by the stopped node %d" % victim)
    for p, s in st.items():
        assert victim not in s["isr"], "partition %d: %r" % (p, s)
    # Back again: it catches up and rejoins every ISR.
    c.node(victim).start()
    wait_isr_whole(c, topic, WAIT_S)


def test_sigterm_without_an_answering_controller_stops_within_the_bound(make_cluster):
    c = make_cluster(overrides={"broker.session.timeout.ms": "60000"})
    topic = unique_topic("elect-shutdown-alone")
    create_replicated(c, topic, 1, 3)
    wait_isr_whole(c, topic, WAIT_S)
    victim, *others = c.ids()
    for i in others:
        c.node(i).sigstop()
    try:
        t0 = time.monotonic()
        rc = c.node(victim).stop()
        took = time.monotonic() - t0
    finally:
        for i in others:
            c.node(i).sigcont()
    assert rc == 0, c.node(victim).log_tail()
    # The 5 s bound of the controlled shutdown, then the usual stop.
    assert 4.5 < took < 12, "SIGTERM with no controller took %.1fs\n%s" % (took, c.node(victim).log_tail())
    assert "controlled shutdown: the controller did not confirm within 5000 ms; stopping anyway" in \
        c.node(victim).log_text(), c.node(victim).log_tail()
    c.node(victim).start()
    wait_isr_whole(c, topic, WAIT_S)


# ---- reassignment ---------------------------------------------------------------------
def reassign(c, tmp_path, mode, plan, *extra, check=True):
    f = tmp_path / "reassign.json"
    f.write_text(json.dumps(plan))
    return kafka_tool("kafka-reassign-partitions", "--bootstrap-server", bootstrap(c), mode,
                      "--reassignment-json-file", str(f), *extra, timeout=90, check=check)


def test_reassign_partitions_moves_replicas_online(make_cluster, tmp_path):
    c = make_cluster()
    topic = unique_topic("reassign")
    create_replicated(c, topic, 2, 2)
    st = wait_isr_whole(c, topic, WAIT_S)
    values = [b"r-%04d" % i for i in range(200)]
    produce(bootstrap(c), topic, [{"value": v, "partition": 0} for v in values], config={"acks": "all"})
    old = st[0]["replicas"]
    spare = next(i for i in c.ids() if i not in old)
    target = [spare, old[1]]  # the leader (preferred replica) leaves, a new broker joins
    plan = {"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": target}]}

    p = reassign(c, tmp_path, "--execute", plan)
    assert "Successfully started partition reassignment" in p.stdout, p.stdout + p.stderr
    assert "Current partition replica assignment" in p.stdout, p.stdout

    deadline = time.monotonic() + WAIT_S
    while True:
        p = reassign(c, tmp_path, "--verify", plan, "--preserve-throttles")
        if "Reassignment of partition %s-0 is completed" % topic in p.stdout:
            break
        assert "is still in progress" in p.stdout, p.stdout + p.stderr
        assert time.monotonic() < deadline, "reassignment not complete within %ds:\n%s\n%s" % (
            WAIT_S, p.stdout, c.logs())
        time.sleep(0.5)
    st = wait_partitions(c, topic, WAIT_S, lambda s: s[0]["replicas"] == target and s[0]["isr"] == sorted(target),
                         "partition 0 on %r, all in sync" % target)
    # The old leader left: the first in-sync replica of the target leads.
    assert st[0]["leader"] == spare, st
    assert st[1]["replicas"] == wait_isr_whole(c, topic, WAIT_S)[1]["replicas"]
    # Every record is there, at its offset, served by the new replica.
    got = consume(bootstrap(c), topic, [0], len(values), timeout=30)
    assert [r["value"] for r in got] == values
    assert [r["offset"] for r in got] == list(range(len(values)))
    # Nothing is listed as under way any more.  (--preserve-throttles: plain
    # --verify also deletes the replication-throttle configs of every broker
    # and topic, which Tidemark's IncrementalAlterConfigs refuses so far.)
    p = reassign(c, tmp_path, "--verify", plan, "--preserve-throttles")
    assert "Reassignment of partition %s-0 is completed" % topic in p.stdout, p.stdout


def test_reassign_refuses_unknown_broker(make_cluster, tmp_path):
    c = make_cluster()
    topic = unique_topic("reassign-bad")
    create_replicated(c, topic, 1, 2)
    wait_isr_whole(c, topic, WAIT_S)
    plan = {"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [1, 9]}]}
    p = reassign(c, tmp_path, "--execute", plan, check=False)
    assert p.returncode != 0, p.stdout
    out = p.stdout + p.stderr
    assert re.search(r"[Bb]roker.* 9", out), out
    assert partition_states(c.node(1), topic)[0]["replicas"] != [1, 9]
    # AlterPartitionReassignments v1 with allow_replication_factor_change=false.
    plan = {"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [1, 2, 3]}]}
    p = reassign(c, tmp_path, "--execute", plan, "--disallow-replication-factor-change", check=False)
    assert p.returncode != 0, p.stdout
    assert "%s-0: The replication factor is changed from 2 to 3" % topic in p.stdout + p.stderr, p.stdout + p.stderr
    assert len(partition_states(c.node(1), topic)[0]["replicas"]) == 2


def test_reassignment_in_progress_is_listed_and_can_be_cancelled(make_cluster, tmp_path):
    # The new replica is down (kill -9), so the reassignment stays under way.
    # A long session keeps it registered and unfenced: the tool checks the
    # target brokers against DescribeCluster first.  (A paused process would
    # do too, but clients then wait out their request timeouts on it.)
    c = make_cluster(overrides={"broker.session.timeout.ms": "60000"})
    topic = unique_topic("reassign-cancel")
    # Not the active controller, so the metadata quorum is untouched.
    controller, _ = c.wait_leader(10)
    spare = next(i for i in c.ids() if i != controller)
    old = [i for i in c.ids() if i != spare]
    admin = AdminClient({"log_level": 0, "bootstrap.servers": bootstrap(c)})
    admin.create_topics([NewTopic(topic, num_partitions=1,
                                  replica_assignment=[old])])[topic].result(timeout=30)
    st = wait_isr_whole(c, topic, WAIT_S)[0]
    assert st["replicas"] == old, st
    produce(bootstrap(c), topic, [{"value": b"x%d" % i, "partition": 0} for i in range(50)], config={"acks": "all"})
    plan = {"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [old[0], spare]}]}
    c.node(spare).kill9()
    others = c.running()
    p = reassign(c, tmp_path, "--execute", plan)
    assert "Successfully started partition reassignment" in p.stdout, p.stdout + p.stderr
    state = wait_partitions(c, topic, WAIT_S, lambda s: s[0]["replicas"] == [old[0], spare, old[1]],
                            "replicas = target + removing while under way", nodes=others)[0]
    assert state["isr"] == sorted(old), state
    p = reassign(c, tmp_path, "--verify", plan, "--preserve-throttles")
    assert "Reassignment of partition %s-0 is still in progress." % topic in p.stdout, p.stdout
    p = kafka_tool("kafka-reassign-partitions", "--bootstrap-server", ",".join(n.bootstrap for n in others),
                   "--list", timeout=90)
    assert "%s-0: replicas: %s. adding: %d. removing: %d." % (
        topic, ",".join(map(str, [old[0], spare, old[1]])), spare, old[1]) in p.stdout, p.stdout
    p = kafka_tool("kafka-topics", "--bootstrap-server", ",".join(n.bootstrap for n in others), "--describe",
                   "--topic", topic, timeout=90)
    assert "Adding Replicas: %d" % spare in p.stdout and "Removing Replicas: %d" % old[1] in p.stdout, p.stdout
    p = reassign(c, tmp_path, "--cancel", plan, "--preserve-throttles")
    assert "Successfully cancelled partition reassignment" in p.stdout, p.stdout + p.stderr
    state = wait_partitions(c, topic, WAIT_S, lambda s: sorted(s[0]["replicas"]) == sorted(old),
                            "original replicas back after the cancel", nodes=others)[0]
    assert state["isr"] == sorted(old) and state["leader"] == old[0], state
    c.node(spare).start()
    got = consume(bootstrap(c), topic, [0], 50, timeout=30)
    assert [r["value"] for r in got] == [b"x%d" % i for i in range(50)]
