"""Partition replication on a three-node cluster (issue 5), as a Kafka user
sees it: kafka-topics places replicas on distinct brokers with leaders
spread and shows the ISR; acks=all produce is read back from every
partition and survives the loss of a leader (the new leader, a former
follower, serves it); min.insync.replicas refuses acks=all with
NOT_ENOUGH_REPLICAS while a follower is paused, and the ISR becomes whole
again when it resumes; consumers never see records above the high
watermark; stale and future leader epochs in a Fetch, and a produce to a
follower, get Kafka's errors.

Tidemark-specific (multi-node Apache Kafka is out of scope): skipped when
TM_E2E_TARGET=kafka.

Timing: brokers heartbeat every 500 ms and are fenced after 3 s; a follower
leaves the ISR after 3 s without catching up, so every wait here is a few
seconds and each test ends well within a minute.
"""
import re
import threading
import time

import pytest

import rawkafka
from cluster import (clusters_for_a_test, ERR_FENCED_LEADER_EPOCH, ERR_NOT_ENOUGH_REPLICAS, ERR_NOT_LEADER_OR_FOLLOWER,
                     ERR_REQUEST_TIMED_OUT, ERR_UNKNOWN_LEADER_EPOCH, Cluster, create_replicated, create_topic,
                     fetch_v11, isr_whole, partition_states, produce_raw, wait_isr_whole, wait_leader_moved,
                     wait_partitions)
from conftest import TARGET
from tmhelp import QUIET, consume, kafka_tool, produce, small_tmpfs, unique_topic, watermarks
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

pytestmark = pytest.mark.skipif(TARGET != "tidemark", reason="multi-node replication tests run against Tidemark only")

FAST = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "replica.lag.time.max.ms": "3000",
}
ISR_WAIT_S = 20  # bound for an ISR to become whole (catch up, AlterPartition, metadata)


@pytest.fixture
def make_cluster():
    """Clusters for one test (cluster.clusters_for_a_test)."""
    yield from clusters_for_a_test(FAST)


@pytest.fixture(scope="module")
def shared_cluster():
    c = Cluster(3, FAST)
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


# ---- helpers ------------------------------------------------------------------------
def bootstrap(c, nodes=None):
    return ",".join(n.bootstrap for n in (nodes or c.nodes.values()))


_DESCRIBE_RE = re.compile(r"Topic: (\S+)\s+Partition: (\d+)\s+Leader: (-?\d+|none)\s+"
                          r"Replicas: ([\d,]*)\s+Isr: ([\d,]*)")


def describe(bootstrap_server, topic=None, *flags):
    """kafka-topics --describe [--topic T] [flags] as
    ([(topic, partition, leader or None, [replicas], [isr])], stdout)."""
    args = ["--bootstrap-server", bootstrap_server, "--describe"]
    if topic:
        args += ["--topic", topic]
    p = kafka_tool("kafka-topics", *(args + list(flags)), timeout=60)
    rows = []
    for m in _DESCRIBE_RE.finditer(p.stdout):
        ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
        leader = None if m.group(3) == "none" else int(m.group(3))
        rows.append((m.group(1), int(m.group(2)), leader, ints(m.group(4)), ints(m.group(5))))
    return rows, p.stdout


def create_rf3(c, name, partitions, config=None):
    return create_replicated(c, name, partitions, 3, config)


def values_for(tag, partition, n):
    return [b"%s-p%d-%05d" % (tag.encode(), partition, i) for i in range(n)]


def produce_all(c, topic, partitions, per_partition, tag, acks="all"):
    """acks=all (or `acks`) produce of per_partition records to each
    partition; returns {partition: [values]} after checking every record
    landed at the next offset of its partition, in order."""
    recs, want = [], {}
    for p in partitions:
        want[p] = values_for(tag, p, per_partition)
        recs += [{"value": v, "partition": p} for v in want[p]]
    got = produce(bootstrap(c), topic, recs, config={"acks": acks, "enable.idempotence": acks == "all"})
    offsets = {}
    for r, (p, off) in zip(recs, got):
        offsets.setdefault(p, []).append(off)
    for p, offs in offsets.items():
        assert offs == list(range(offs[0], offs[0] + len(offs))), "partition %d: offsets %r" % (p, offs[:10])
    return want


def read_values(bootstrap_server, topic, partition, count, timeout=30):
    recs = consume(bootstrap_server, topic, [partition], count, timeout=timeout)
    return [(r["offset"], r["value"]) for r in recs]


def offsets_read_within(bootstrap_server, topic, partition, seconds):
    """Every offset a consumer reads from the start of `partition` in
    `seconds` (it keeps polling after the last record)."""
    conf = dict(QUIET, **{"bootstrap.servers": bootstrap_server, "group.id": unique_topic("repl-hw-reader"),
                          "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    cons = Consumer(conf)
    try:
        cons.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            m = cons.poll(0.2)
            if m is not None and not m.error():
                out.append(m.offset())
        return out
    finally:
        cons.close()


# ---- 1. placement and kafka-topics ------------------------------------------------------
def test_create_rf3_places_replicas_on_distinct_brokers_leaders_spread(cluster):
    c = cluster
    b = c.node(2).bootstrap
    topic = unique_topic("repl-place")
    p = kafka_tool("kafka-topics", "--bootstrap-server", b, "--create", "--topic", topic,
                   "--partitions", "6", "--replication-factor", "3", timeout=60)
    assert "Created topic %s." % topic in p.stdout, p.stdout + p.stderr
    # A new topic's logs are empty, so Kafka starts it with ISR = all replicas.
    wait_partitions(c, topic, ISR_WAIT_S, lambda s: len(s) == 6 and isr_whole(s), "6 partitions, ISR whole")

    rows, text = describe(b, topic)
    assert "PartitionCount: 6" in text and "ReplicationFactor: 3" in text, text
    assert sorted(r[1] for r in rows) == list(range(6)), text
    leaders = {}
    for _, part, leader, replicas, isr in rows:
        assert sorted(replicas) == [1, 2, 3], "partition %d replicas %r not on 3 distinct brokers:\n%s" % (
            part, replicas, text)
        assert leader == replicas[0], "partition %d: leader %r is not the first (preferred) replica %r:\n%s" % (
            part, leader, replicas, text)
        assert sorted(isr) == [1, 2, 3], "partition %d: Isr %r:\n%s" % (part, isr, text)
        leaders[leader] = leaders.get(leader, 0) + 1
    assert leaders == {1: 2, 2: 2, 3: 2}, "leaders not spread two per broker: %r\n%s" % (leaders, text)

    # Nothing is under-replicated or unavailable.
    rows, text = describe(b, topic, "--under-replicated-partitions")
    assert rows == [], "--under-replicated-partitions on a healthy topic:\n%s" % text
    rows, text = describe(b, topic, "--unavailable-partitions")
    assert rows == [], "--unavailable-partitions on a healthy topic:\n%s" % text


def test_replication_factor_above_live_brokers_is_refused(cluster):
    c = cluster
    topic = unique_topic("repl-rf4")
    p = kafka_tool("kafka-topics", "--bootstrap-server", c.node(1).bootstrap, "--create", "--topic", topic,
                   "--partitions", "1", "--replication-factor", "4", timeout=60, check=False)
    assert p.returncode != 0, "RF 4 on 3 brokers was accepted:\n%s%s" % (p.stdout, p.stderr)
    assert "InvalidReplicationFactorException" in p.stdout + p.stderr, p.stdout + p.stderr
    # The same through every node, raw: INVALID_REPLICATION_FACTOR (38).
    for n in c.nodes.values():
        err, msg = create_topic(n, topic, 1, 4)
        assert err == rawkafka.ERR_INVALID_REPLICATION_FACTOR, "CreateTopics RF 4 via node %d: %r" % (
            n.node_id, (err, msg))
    assert partition_states(c.node(1), topic) == {}, "refused topic %s exists" % topic


# ---- 2. acks=all round trip -----------------------------------------------------------
def test_acks_all_produce_reads_back_from_every_partition(cluster):
    c = cluster
    topic = unique_topic("repl-rt")
    create_rf3(c, topic, 6)
    want = produce_all(c, topic, range(6), 40, "rt")
    for p in range(6):
        got = read_values(bootstrap(c), topic, p, 40)
        assert [v for _, v in got] == want[p], "partition %d read back %r" % (p, got[:5])
        assert [o for o, _ in got] == list(range(40)), "partition %d offsets %r" % (p, [o for o, _ in got])
        # ListOffsets latest (the high watermark) is what a consumer can read.
        assert watermarks(bootstrap(c), topic, p) == (0, 40)


def test_produce_to_a_follower_is_not_leader_or_follower(cluster):
    c = cluster
    topic = unique_topic("repl-follower")
    states = create_rf3(c, topic, 3)
    for part, s in states.items():
        for nid in s["replicas"]:
            err, _ = produce_raw(c.node(nid), topic, part, [b"to-node-%d" % nid], acks=-1)
            if nid == s["leader"]:
                assert err == 0, "produce to leader %d of partition %d: error %d" % (nid, part, err)
            else:
                assert err == ERR_NOT_LEADER_OR_FOLLOWER, (
                    "produce to follower %d of partition %d (leader %d): error %d, want NOT_LEADER_OR_FOLLOWER"
                    % (nid, part, s["leader"], err))
    # A client that only knows a follower's address still gets there.
    only = [c.node(nid) for nid in states[0]["replicas"] if nid != states[0]["leader"]][:1]
    got = produce(bootstrap(c, only), topic, [{"value": b"via-follower", "partition": 0}],
                  config={"acks": "all"})
    assert got == [(0, 1)], got


def test_fetch_with_a_newer_leader_epoch_is_unknown_leader_epoch(cluster):
    c = cluster
    topic = unique_topic("repl-epoch")
    states = create_rf3(c, topic, 1)
    leader, epoch = states[0]["leader"], states[0]["leader_epoch"]
    produce_all(c, topic, [0], 3, "ep")
    err, hw, recs = fetch_v11(c.node(leader), topic, 0, 0, current_leader_epoch=epoch)
    assert (err, hw) == (0, 3) and len(rawkafka.batches(recs)) >= 1, (err, hw, len(recs))
    err, _, _ = fetch_v11(c.node(leader), topic, 0, 0, current_leader_epoch=epoch + 1)
    assert err == ERR_UNKNOWN_LEADER_EPOCH, "Fetch with leader epoch %d at a leader in epoch %d: error %d" % (
        epoch + 1, epoch, err)
    err, _, _ = fetch_v11(c.node(leader), topic, 0, 0, current_leader_epoch=-1)
    assert err == 0, "Fetch without a leader epoch: error %d" % err


# ---- 3. the loss of a leader --------------------------------------------------------------
def test_leader_kill_new_leader_serves_acknowledged_records(make_cluster):
    c = make_cluster()
    topic = unique_topic("repl-kill")
    create_rf3(c, topic, 3)
    wait_isr_whole(c, topic, ISR_WAIT_S)
    want = produce_all(c, topic, range(3), 100, "kill")
    before = wait_isr_whole(c, topic, ISR_WAIT_S)
    # A one-replica topic with a partition on every broker: the killed
    # broker's one has no other replica and must show as unavailable.
    solo = unique_topic("repl-solo")
    assert create_topic(c.node(1), solo, 3, 1) == (0, None)
    solo_states = wait_partitions(c, solo, 15, lambda s: len(s) == 3 and all(v["leader"] >= 0 for v in s.values()),
                                  "%s with leaders" % solo)

    victim = before[0]["leader"]
    led = sorted(p for p, s in before.items() if s["leader"] == victim)
    c.node(victim).kill9()
    survivors = [n for n in c.nodes.values() if n.node_id != victim]
    for p in led:
        s = wait_leader_moved(c, topic, p, victim, 20, survivors)
        assert s["leader_epoch"] > before[p]["leader_epoch"], "partition %d: leader %d -> %d but epoch %d -> %d" % (
            p, victim, s["leader"], before[p]["leader_epoch"], s["leader_epoch"])
        assert victim not in s["isr"], "partition %d: fenced broker %d still in ISR %r" % (p, victim, s["isr"])

    # Every acknowledged record is served by the new leaders, at its offset.
    bs = bootstrap(c, survivors)
    for p in range(3):
        got = read_values(bs, topic, p, 100)
        assert [v for _, v in got] == want[p] and [o for o, _ in got] == list(range(100)), (
            "partition %d after killing leader %d: read %d records, first %r" % (p, victim, len(got), got[:3]))

    # Fetch leader-epoch checks at a new leader: the old epoch is fenced.
    p = led[0]
    now = partition_states(survivors[0], topic)[p]
    new_leader = c.node(now["leader"])
    err, hw, _ = fetch_v11(new_leader, topic, p, 0, current_leader_epoch=before[p]["leader_epoch"])
    assert err == ERR_FENCED_LEADER_EPOCH, "Fetch with stale epoch %d at leader %d (epoch %d): error %d" % (
        before[p]["leader_epoch"], now["leader"], now["leader_epoch"], err)
    err, _, _ = fetch_v11(new_leader, topic, p, 0, current_leader_epoch=now["leader_epoch"] + 1)
    assert err == ERR_UNKNOWN_LEADER_EPOCH, "Fetch with future epoch at leader %d: error %d" % (now["leader"], err)
    err, hw, _ = fetch_v11(new_leader, topic, p, 0, current_leader_epoch=now["leader_epoch"])
    assert (err, hw) == (0, 100), (err, hw)

    # kafka-topics tells the truth about the dead broker.
    rows, text = describe(bs, solo, "--unavailable-partitions")
    dead = [part for part, s in solo_states.items() if s["leader"] == victim]
    assert [r[1] for r in rows] == dead, "--unavailable-partitions with broker %d dead:\n%s" % (victim, text)
    rows, text = describe(bs, topic, "--under-replicated-partitions")
    assert sorted(r[1] for r in rows) == [0, 1, 2], "--under-replicated-partitions with broker %d dead:\n%s" % (
        victim, text)

    # acks=all keeps working on two replicas; the old leader comes back,
    # catches up and rejoins every ISR.
    more = produce_all(c, topic, range(3), 20, "after")
    c.node(victim).start()
    wait_isr_whole(c, topic, ISR_WAIT_S)
    rows, text = describe(bootstrap(c), topic, "--under-replicated-partitions")
    assert rows == [], "--under-replicated-partitions after broker %d rejoined:\n%s" % (victim, text)
    for p in range(3):
        got = read_values(bootstrap(c), topic, p, 120)
        assert [v for _, v in got] == want[p] + more[p], "partition %d after rejoin: %d records" % (p, len(got))


# ---- 4. min.insync.replicas -----------------------------------------------------------------
def test_min_insync_replicas_refuses_acks_all_while_a_follower_is_paused(make_cluster):
    c = make_cluster()
    topic = unique_topic("repl-minisr")
    create_rf3(c, topic, 2, config={"min.insync.replicas": "3"})
    states = wait_isr_whole(c, topic, ISR_WAIT_S)
    leaders = {s["leader"] for s in states.values()}
    paused = next(nid for nid in c.ids() if nid not in leaders)
    for p, s in states.items():
        err, _ = produce_raw(c.node(s["leader"]), topic, p, [b"before-pause"], acks=-1)
        assert err == 0, "acks=all with the whole ISR, partition %d: error %d" % (p, err)

    c.node(paused).sigstop()
    live = [n for n in c.nodes.values() if n.node_id != paused]
    shrunk = wait_partitions(c, topic, 20, lambda s: all(paused not in v["isr"] for v in s.values()),
                             "broker %d (SIGSTOP) out of every ISR" % paused, live)
    for p, s in shrunk.items():
        assert s["leader"] in leaders and len(s["isr"]) == 2, "partition %d: %r" % (p, s)
        leader = c.node(s["leader"])
        err, _ = produce_raw(leader, topic, p, [b"acks-all-short-isr"], acks=-1)
        assert err == ERR_NOT_ENOUGH_REPLICAS, (
            "acks=all with ISR %r < min.insync.replicas 3, partition %d: error %d, want NOT_ENOUGH_REPLICAS"
            % (s["isr"], p, err))
        err, base = produce_raw(leader, topic, p, [b"acks-1-short-isr"], acks=1)
        assert (err, base) == (0, 1), "acks=1 with ISR %r, partition %d: %r" % (s["isr"], p, (err, base))

    rows, text = describe(bootstrap(c, live), topic, "--under-replicated-partitions")
    assert sorted(r[1] for r in rows) == [0, 1], "--under-replicated-partitions with %d paused:\n%s" % (paused, text)
    for r in rows:
        assert paused not in r[4] and len(r[3]) == 3, text
    # Two in-sync replicas against min.insync.replicas=3 (read from the
    # topic's config by the tool).
    rows, text = describe(bootstrap(c, live), topic, "--under-min-isr-partitions")
    assert sorted(r[1] for r in rows) == [0, 1], "--under-min-isr-partitions with %d paused:\n%s" % (paused, text)

    c.node(paused).sigcont()
    whole = wait_isr_whole(c, topic, ISR_WAIT_S)
    rows, text = describe(bootstrap(c), topic, "--under-replicated-partitions")
    assert rows == [], "--under-replicated-partitions after SIGCONT:\n%s" % text
    for p, s in whole.items():
        err, base = produce_raw(c.node(s["leader"]), topic, p, [b"acks-all-whole-again"], acks=-1)
        assert (err, base) == (0, 2), "acks=all with the ISR whole again, partition %d: %r" % (p, (err, base))
        # The resumed follower holds the record acknowledged while it was out.
        err, hw, recs = fetch_v11(c.node(s["leader"]), topic, p, 0)
        assert (err, hw) == (0, 3), (err, hw)


# ---- 5. the high watermark ---------------------------------------------------------------------
def test_consumers_never_read_above_the_high_watermark(make_cluster):
    """A paused follower stays in the ISR (long lag and session bounds), so
    records written with acks=1 sit above the high watermark: ListOffsets
    latest, a Fetch and a consumer all stop at the watermark until the
    follower resumes and copies them."""
    c = make_cluster(overrides={"replica.lag.time.max.ms": "60000", "broker.session.timeout.ms": "60000"})
    topic = unique_topic("repl-hw")
    states = create_rf3(c, topic, 1)
    wait_isr_whole(c, topic, ISR_WAIT_S)
    leader_id = states[0]["leader"]
    leader = c.node(leader_id)
    produce_all(c, topic, [0], 10, "hw")
    assert watermarks(bootstrap(c), topic, 0) == (0, 10)

    follower = next(nid for nid in states[0]["replicas"] if nid != leader_id)
    c.node(follower).sigstop()
    time.sleep(1)  # let any fetch in flight from the follower finish
    for i in range(5):
        err, base = produce_raw(leader, topic, 0, [b"above-hw-%d" % i], acks=1)
        assert (err, base) == (0, 10 + i), "acks=1 produce %d: %r" % (i, (err, base))

    live = bootstrap(c, [n for n in c.nodes.values() if n.node_id != follower])
    assert watermarks(live, topic, 0) == (0, 10), "ListOffsets latest while follower %d is paused" % follower
    err, hw, recs = fetch_v11(leader, topic, 0, 0)
    assert err == 0 and hw == 10, (err, hw)
    last = max((base + count - 1 for base, count, _ in rawkafka.batches(recs)), default=-1)
    assert last == 9, "Fetch returned records up to offset %d with the high watermark at 10" % last
    err, hw, recs = fetch_v11(leader, topic, 0, 10)
    assert (err, hw, recs) == (0, 10, b""), "Fetch at the high watermark: %r" % ((err, hw, len(recs)),)
    offs = offsets_read_within(live, topic, 0, 3.0)
    assert offs == list(range(10)), "a consumer read offsets %r with the high watermark at 10" % offs

    c.node(follower).sigcont()
    deadline = time.monotonic() + 20
    while watermarks(bootstrap(c), topic, 0) != (0, 15):
        assert time.monotonic() < deadline, "high watermark never reached 15 after SIGCONT"
        time.sleep(0.2)
    got = consume(bootstrap(c), topic, [0], 15, timeout=20)
    assert [r["value"] for r in got[10:]] == [b"above-hw-%d" % i for i in range(5)]


# ---- 6. idempotent retries and acks=all ------------------------------------------------------
def test_acks_all_retry_of_an_appended_batch_still_waits_for_the_isr(make_cluster):
    """An idempotent producer's acks=all batch times out while both
    followers are paused (they stay in the ISR: long lag and session
    bounds), so the leader holds it above the high watermark.  Its retry
    (same producer id and sequence) is a duplicate, but still not on every
    ISR member: Kafka answers REQUEST_TIMED_OUT again, never success; once
    the followers resume, the retry succeeds at the first attempt's offset
    and the record is in the log once."""
    c = make_cluster(overrides={"replica.lag.time.max.ms": "60000", "broker.session.timeout.ms": "60000"})
    topic = unique_topic("repl-dup")
    states = create_rf3(c, topic, 1)
    wait_isr_whole(c, topic, ISR_WAIT_S)
    leader = c.node(states[0]["leader"])
    followers = [c.node(nid) for nid in states[0]["replicas"] if nid != leader.node_id]
    with rawkafka.Conn(leader.host, leader.port, timeout=30) as conn:
        err, pid, epoch = rawkafka.init_producer_id_v1(conn)
        assert err == 0, "InitProducerId: error %d" % err
        first = rawkafka.record_batch([(None, b"seq-0", [])], producer_id=pid, producer_epoch=epoch, base_sequence=0)
        assert rawkafka.produce_v7(conn, topic, 0, first, acks=-1, timeout_ms=10000) == (0, 0)

        for f in followers:
            f.sigstop()
        try:
            second = rawkafka.record_batch([(None, b"seq-1", [])], producer_id=pid, producer_epoch=epoch,
                                           base_sequence=1)
            got = rawkafka.produce_v7(conn, topic, 0, second, acks=-1, timeout_ms=1500)
            assert got == (ERR_REQUEST_TIMED_OUT, -1), (
                "acks=all with both ISR followers paused: %r, want REQUEST_TIMED_OUT" % (got,))
            got = rawkafka.produce_v7(conn, topic, 0, second, acks=-1, timeout_ms=1500)
            err, hw, _ = fetch_v11(leader, topic, 0, 0)
            assert got[0] == ERR_REQUEST_TIMED_OUT, (
                "the retry of a batch the ISR does not hold was answered %r (high watermark %d): an "
                "acknowledgement for a record a new leader may not have" % (got, hw))
            # The next batch (offset 2) waits first; then the retry of seq-1,
            # which needs less of the HW, joins the waiting queue before it.
            third = rawkafka.record_batch([(None, b"seq-2", [])], producer_id=pid, producer_epoch=epoch,
                                          base_sequence=2)
            answers = {}

            def send(name, c2, batch):
                answers[name] = rawkafka.produce_v7(c2, topic, 0, batch, acks=-1, timeout_ms=30000)
            conn2 = rawkafka.Conn(leader.host, leader.port, timeout=40)
            t3 = threading.Thread(target=send, args=("third", conn2, third))
            t3.start()
            time.sleep(0.5)
            t2 = threading.Thread(target=send, args=("retry", conn, second))
            t2.start()
            time.sleep(0.5)
        finally:
            for f in followers:
                f.sigcont()
        t2.join(40)
        t3.join(40)
        conn2.close()
        assert answers.get("retry") == (0, 1), "the retry once the followers resumed: %r" % (answers,)
        assert answers.get("third") == (0, 2), "the next batch once the followers resumed: %r" % (answers,)
    got = read_values(bootstrap(c), topic, 0, 3)
    assert got == [(0, b"seq-0"), (1, b"seq-1"), (2, b"seq-2")], got


# ---- 7. leadership moving with no writes in between ------------------------------------------
def test_replicas_rejoin_after_two_failovers_without_writes(make_cluster):
    """Leadership moves twice (kill -9 of the leader, then of the next one)
    while nobody produces, so the later leader epochs hold no records.
    Each killed broker, restarted, holds exactly the records of epoch 0 and
    must be seen as caught up (nothing diverges) and rejoin the ISR."""
    c = make_cluster()
    topic = unique_topic("repl-quiet")
    create_rf3(c, topic, 1)
    wait_isr_whole(c, topic, ISR_WAIT_S)
    want = produce_all(c, topic, [0], 10, "quiet")[0]
    for _ in range(2):
        s = wait_isr_whole(c, topic, ISR_WAIT_S)[0]
        victim = c.node(s["leader"])
        victim.kill9()
        moved = wait_leader_moved(c, topic, 0, victim.node_id, 20,
                                  [n for n in c.nodes.values() if n.node_id != victim.node_id])
        assert moved["leader_epoch"] > s["leader_epoch"], (s, moved)
        victim.start()
    wait_isr_whole(c, topic, ISR_WAIT_S)
    for n in c.nodes.values():
        text = n.log_text()
        loops = text.count("truncating from 10 to 10")
        assert loops < 5, "node %d truncated its log to its own end %d times:\n%s" % (
            n.node_id, loops, "\n".join(line for line in text.splitlines() if "truncating" in line)[-1500:])
    assert [v for _, v in read_values(bootstrap(c), topic, 0, 10)] == want


# ---- 8. a leader's disk fills ------------------------------------------------------------------
def test_leader_whose_disk_fills_hands_over_and_loses_nothing(make_cluster):
    """Node 1's data directory is a 12 MiB tmpfs and node 1 leads an RF=3
    partition (min.insync.replicas=2).  An idempotent acks=all producer
    offers it 24 MiB.  When node 1's disk is full it moves its leadership to
    the other replicas and stops with status 1, as Kafka stops a broker whose
    log directories have all failed; the producer carries on against the new
    leader, and every record it was told was written is there, at its offset."""
    c = make_cluster(start=False)
    victim = c.node(1)
    with small_tmpfs(victim.data_dir, "12m"):
        try:
            fill_the_leaders_disk(c, victim)
        finally:
            victim.stop()
            victim.stopping = True


def fill_the_leaders_disk(c, victim):
    c.start()
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = unique_topic("repl-full-disk")
    a = AdminClient(dict(QUIET, **{"bootstrap.servers": bootstrap(c)}))
    a.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2, 3]],
                              config={"min.insync.replicas": "2"})])[topic].result(timeout=30)
    before = wait_isr_whole(c, topic, ISR_WAIT_S)
    assert before[0]["leader"] == 1, "node 1 should lead: %r" % before

    values = [b"%06d:" % i + bytes(1000) for i in range(24 * 1024)]
    got = produce(bootstrap(c), topic, [{"value": v, "partition": 0} for v in values],
                  config={"acks": "all", "enable.idempotence": True, "message.timeout.ms": 90000},
                  timeout=120)
    assert [o for _, o in got] == list(range(len(values))), "offsets not contiguous from 0"

    assert victim.proc.wait(timeout=30) == 1, "node 1's exit status after its disk filled"
    victim.stopping = True  # its exit was the test's doing
    text = victim.log_text()
    assert "No space left on device" in text and "has failed" in text, victim.log_tail()
    # The handover is confirmed by the controller, unless node 1 was the
    # active controller and its metadata log failed too: then it stops at
    # once and the next controller fences it.
    assert ("moved this node's leadership away" in text
            or "the metadata log cannot be written on the active controller" in text), (
        "node 1 stopped without handing over:\n%s" % victim.log_tail())
    survivors = [c.node(2), c.node(3)]
    after = wait_partitions(c, topic, 20, lambda s: s.get(0, {}).get("leader", -1) in (2, 3)
                            and 1 not in s[0]["isr"], "a new leader without node 1", survivors)
    assert after[0]["leader_epoch"] > before[0]["leader_epoch"]
    bs = bootstrap(c, survivors)
    assert watermarks(bs, topic, 0) == (0, len(values))
    read = read_values(bs, topic, 0, len(values), timeout=90)
    assert read == list(enumerate(values)), "the records read back differ from those acknowledged"
