"""Consumer groups end to end: several real consumers (confluent-kafka,
kafka-python from PyPI, Debian's kafka-python 2.0.2) sharing a topic's
partitions and rebalancing when one joins, leaves or is killed; committed
offsets surviving consumer and broker restarts; auto.offset.reset; static
membership; Kafka's kafka-consumer-groups and kafka-console-consumer.

Each consumer runs as its own process (the WORKER script below) so a test
can kill it with SIGKILL like a crashed application.  A worker writes its
current assignment, the number of assignments it received and how many
records it read to a JSON file after every change; tests poll that file.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from conftest import SEED
from tmhelp import OLD_PYTHON, create_topic, kafka_tool, produce, unique_topic, wait_for

BROKER_OVERRIDES = {"group.min.session.timeout.ms": "6000"}

WORKER = r'''
import json, os, signal, sys, time
lib, bootstrap, topic, group, assignor, instance, state_path = sys.argv[1:8]
stop = False
def on_term(*a):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
state = {"assigned": [], "assignments": 0, "read": 0, "emptied": 0, "pid": os.getpid()}
def save():
    tmp = state_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, state_path)
save()
if lib == "confluent":
    from confluent_kafka import Consumer
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": assignor, "enable.auto.commit": True,
            "auto.commit.interval.ms": 500}
    if instance != "-":
        conf["group.instance.id"] = instance
    c = Consumer(conf)
    cooperative = assignor == "cooperative-sticky"
    current = set()
    def on_assign(cons, parts):
        current.update(p.partition for p in parts)
        state["assigned"] = sorted(current)
        state["assignments"] += 1
        if cooperative:
            cons.incremental_assign(parts)
        save()
    def on_revoke(cons, parts):
        had = bool(current)
        for p in parts:
            current.discard(p.partition)
        if had and not current:
            state["emptied"] += 1
        state["assigned"] = sorted(current)
        if cooperative:
            cons.incremental_unassign(parts)
        save()
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while not stop:
        m = c.poll(0.2)
        if m is not None and not m.error():
            state["read"] += 1
            save()
    c.close()
else:
    import logging
    # Joins, assignments and metadata trouble go to the worker's log, which a
    # failing test prints.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("kafka.coordinator").setLevel(logging.INFO)
    logging.getLogger("kafka.cluster").setLevel(logging.INFO)
    from kafka import KafkaConsumer, ConsumerRebalanceListener
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    strategies = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}
    kw = dict(bootstrap_servers=[bootstrap], group_id=group, auto_offset_reset="earliest",
              session_timeout_ms=6000, heartbeat_interval_ms=500,
              partition_assignment_strategy=[strategies[assignor]], enable_auto_commit=True,
              auto_commit_interval_ms=500)
    c = KafkaConsumer(**kw)
    class L(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            if state["assigned"]:
                state["emptied"] += 1
            state["assigned"] = []
            save()
        def on_partitions_assigned(self, assigned):
            state["assigned"] = sorted(p.partition for p in assigned)
            state["assignments"] += 1
            save()
    c.subscribe([topic], listener=L())
    while not stop:
        recs = c.poll(timeout_ms=200)
        n = sum(len(v) for v in recs.values())
        if n:
            state["read"] += n
            save()
    c.close()
'''

CLIENTS = {
    # name: (python, lib)
    "confluent": (sys.executable, "confluent"),
    "kafka-python": (sys.executable, "kafka-python"),
    "kafka-python-2.0.2": (OLD_PYTHON, "kafka-python"),
}


class Worker:
    def __init__(self, tmpdir, python, lib, bootstrap, topic, group, assignor, instance=None):
        self.state_path = os.path.join(tmpdir, "w-%s.json" % uuid.uuid4().hex[:8])
        self.log_path = self.state_path + ".log"
        script = os.path.join(tmpdir, "worker.py")
        if not os.path.exists(script):
            with open(script, "w") as f:
                f.write(WORKER)
        self.args = [python, script, lib, bootstrap, topic, group, assignor, instance or "-", self.state_path]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def state(self):
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {"assigned": [], "assignments": 0, "read": 0}

    def assigned(self):
        if self.proc.poll() is not None:
            raise AssertionError("consumer %s exited with %s:\n%s" % (self.args[2], self.proc.returncode,
                                                                     self.output()))
        return self.state()["assigned"]

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self, timeout=30):
        """Graceful: close() sends LeaveGroup."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self):
        self.kill9()
        self.log.close()


@pytest.fixture
def workers():
    tmpdir = tempfile.mkdtemp(prefix="tm-groups-")
    made = []

    def start(*args, **kw):
        w = Worker(tmpdir, *args, **kw)
        made.append(w)
        return w
    yield start
    for w in made:
        w.close()


def wait_split(ws, n_parts, timeout=90, what="partitions split"):
    """Waits until the workers' assignments are disjoint, cover 0..n_parts-1
    and are as even as the assignors make them; returns them."""
    want = list(range(n_parts))

    def check():
        got = [w.assigned() for w in ws]
        flat = sorted(p for a in got for p in a)
        sizes = sorted(len(a) for a in got)
        if flat == want and sizes[-1] - sizes[0] <= 1:
            return got
        return None
    try:
        return wait_for(check, timeout, what, interval=0.25)
    except AssertionError as e:
        logs = "\n".join("--- worker %d:\n%s" % (i, w.output()) for i, w in enumerate(ws))
        raise AssertionError("%s\nassignments: %r\n%s" % (e, [w.state() for w in ws], logs))


@pytest.mark.parametrize("client,assignor", [
    ("confluent", "range"),
    ("confluent", "cooperative-sticky"),
    ("kafka-python", "roundrobin"),
    ("kafka-python-2.0.2", "range"),
])
def test_consumers_split_partitions_and_rebalance_on_join_leave_crash(broker, workers, client, assignor):
    b = broker.bootstrap
    topic = unique_topic("grp-split")
    group = "g-split-" + uuid.uuid4().hex[:6]
    create_topic(b, topic, partitions=6)
    python, lib = CLIENTS[client]

    a = workers(python, lib, b, topic, group, assignor)
    wait_split([a], 6, what="the only consumer owns all 6 partitions")
    c2 = workers(python, lib, b, topic, group, assignor)
    got = wait_split([a, c2], 6, what="two consumers split 6 partitions")
    assert sorted(len(x) for x in got) == [3, 3]
    c3 = workers(python, lib, b, topic, group, assignor)
    got = wait_split([a, c2, c3], 6, what="three consumers split 6 partitions")
    assert sorted(len(x) for x in got) == [2, 2, 2]
    if assignor == "cooperative-sticky":
        # Incremental rebalancing: the first consumer went through more than
        # one assignment but never gave up all its partitions, while the
        # newcomers got theirs in a later rebalance than the revocation.
        assert a.state()["assignments"] >= 2 and a.state()["emptied"] == 0, a.state()
    else:
        # Eager protocols revoke everything at each rebalance.
        assert a.state()["emptied"] >= 2, a.state()

    c2.stop()  # LeaveGroup: the others take its partitions at once
    wait_split([a, c3], 6, timeout=30, what="after a graceful leave")
    c3.kill9()  # crash: the session timeout (6 s) removes it
    wait_split([a], 6, timeout=60, what="after a consumer was killed")


def _consume_n(bootstrap, topic, group, n, reset="earliest", timeout=60, extra=None):
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": reset,
            "enable.auto.commit": False, "session.timeout.ms": 6000}
    conf.update(extra or {})
    c = Consumer(conf)
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            got.append((m.partition(), m.offset(), m.value()))
            c.commit(message=m, asynchronous=False)
    finally:
        c.close()
    return got


def _committed_after_restart(bootstrap, group, tps, timeout=60):
    """Consumer.committed(), retried while the restarted coordinator is still
    loading (NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS), as an
    application would."""
    deadline = time.monotonic() + timeout
    while True:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            return c.committed(tps, timeout=20)
        except KafkaException as e:
            code = e.args[0].code()
            if code not in (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                            KafkaError.COORDINATOR_NOT_AVAILABLE) or time.monotonic() > deadline:
                raise
        finally:
            c.close()
        time.sleep(0.5)


def test_committed_offsets_survive_consumer_and_broker_restart(fresh_broker):
    b = fresh_broker.bootstrap
    topic = unique_topic("grp-resume")
    group = "g-resume-" + uuid.uuid4().hex[:6]
    create_topic(b, topic, partitions=3)
    values = [("v%d-%d" % (SEED, i)).encode() for i in range(90)]
    produce(b, topic, [{"value": v, "partition": i % 3} for i, v in enumerate(values)])

    first = _consume_n(b, topic, group, 30)
    assert len(first) == 30
    second = _consume_n(b, topic, group, 20)  # consumer restart: continues
    assert not set(first) & set(second), "records read twice after a consumer restart"

    fresh_broker.restart()
    rest = _consume_n(b, topic, group, 40)
    seen = [x[2] for x in first + second + rest]
    assert sorted(seen) == sorted(values), "after a broker restart the group resumed at the wrong place"

    fresh_broker.restart(hard=True)  # kill -9: committed offsets were acknowledged, so they stay
    committed = _committed_after_restart(b, group, [TopicPartition(topic, p) for p in range(3)])
    assert [tp.offset for tp in committed] == [30, 30, 30], committed


def test_auto_offset_reset_latest_and_none(broker):
    b = broker.bootstrap
    topic = unique_topic("grp-reset")
    create_topic(b, topic, partitions=1)
    produce(b, topic, [{"value": b"old-%d" % i} for i in range(5)])

    c = Consumer({"bootstrap.servers": b, "group.id": "g-none-" + uuid.uuid4().hex[:6],
                  "auto.offset.reset": "error"})
    c.subscribe([topic])
    err = None
    deadline = time.monotonic() + 30
    while err is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error():
            err = m.error()
    c.close()
    assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err

    group = "g-latest-" + uuid.uuid4().hex[:6]
    stats = {}

    def on_stats(js):
        st = json.loads(js)
        p0 = st.get("topics", {}).get(topic, {}).get("partitions", {}).get("0", {})
        stats.update(fetch_state=p0.get("fetch_state"), next_offset=p0.get("next_offset"))
    c = Consumer({"bootstrap.servers": b, "group.id": group, "auto.offset.reset": "latest",
                  "statistics.interval.ms": 100, "stats_cb": on_stats})
    c.subscribe([topic])

    def at_end():
        m = c.poll(0.2)
        assert m is None or m.error(), "auto.offset.reset=latest read an old record: %r" % m.value()
        return stats.get("fetch_state") == "active" and stats.get("next_offset") == 5
    wait_for(at_end, 30, "fetch position reset to the end of the log (5)", interval=0.05)
    produce(b, topic, [{"value": b"new"}])
    got = []
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    assert got == [b"new"]


def test_static_member_restart_keeps_partitions_without_rebalance(broker, workers):
    b = broker.bootstrap
    topic = unique_topic("grp-static")
    group = "g-static-" + uuid.uuid4().hex[:6]
    create_topic(b, topic, partitions=4)
    python, lib = CLIENTS["confluent"]
    a = workers(python, lib, b, topic, group, "range", instance="inst-a")
    bb = workers(python, lib, b, topic, group, "range", instance="inst-b")
    before = wait_split([a, bb], 4, what="two static members split 4 partitions")
    n_assign = a.state()["assignments"]
    bb.kill9()
    b2 = workers(python, lib, b, topic, group, "range", instance="inst-b")
    got = wait_split([a, b2], 4, timeout=30, what="the restarted static member gets its partitions back")
    assert got[1] == before[1], "static member came back with different partitions"
    time.sleep(2)
    assert a.state()["assignments"] == n_assign, "the other member went through a rebalance"


def _groups_tool(b, *args, check=True):
    return kafka_tool("kafka-consumer-groups", "--bootstrap-server", b, *args, check=check)


def _describe_offsets(b, group):
    """{partition: (current_offset, log_end, lag)} from --describe --offsets."""
    p = _groups_tool(b, "--describe", "--group", group, "--offsets")
    rows = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] == group and f[2].isdigit():
            cur = int(f[3]) if f[3] != "-" else None
            rows[int(f[2])] = (cur, int(f[4]), f[5])
    return rows, p.stdout


def test_kafka_consumer_groups_tool(broker):
    b = broker.bootstrap
    topic = unique_topic("grp-cli")
    group = "g-cli-" + uuid.uuid4().hex[:6]
    create_topic(b, topic, partitions=2)
    produce(b, topic, [{"value": b"x%d" % i, "partition": i % 2} for i in range(20)])
    c = Consumer({"bootstrap.servers": b, "group.id": group})
    c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 3)], asynchronous=False)
    c.close()

    # an active member shows up in --describe --members and --state
    c = Consumer({"bootstrap.servers": b, "group.id": group, "client.id": "cli-member",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    wait_for(lambda: c.poll(0.2) is None and len(c.assignment()) == 2, 30, "member assignment")
    p = _groups_tool(b, "--describe", "--group", group, "--members")
    assert "cli-member" in p.stdout and re.search(r"\s2\s", p.stdout), p.stdout
    assert "/127.0.0.1" in p.stdout, p.stdout  # HOST column: the member's address
    p = _groups_tool(b, "--describe", "--group", group, "--state")
    assert "Stable" in p.stdout, p.stdout
    # resetting offsets of an active group is refused
    p = _groups_tool(b, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest",
                     "--execute", check=False)
    assert "inactive" in (p.stdout + p.stderr).lower() or p.returncode != 0, p.stdout + p.stderr
    c.close()

    assert group in _groups_tool(b, "--list").stdout.split()
    rows, out = _describe_offsets(b, group)
    assert sum(r[0] for r in rows.values()) == 6 and all(r[1] == 10 for r in rows.values()), out
    assert sum(int(r[2]) for r in rows.values()) == 14, out

    def reset(*how):
        _groups_tool(b, "--reset-offsets", "--group", group, "--topic", topic, *how, "--execute")
        return {p: r[0] for p, r in _describe_offsets(b, group)[0].items()}

    assert reset("--to-earliest") == {0: 0, 1: 0}
    assert reset("--to-latest") == {0: 10, 1: 10}
    assert reset("--to-offset", "4") == {0: 4, 1: 4}
    assert reset("--shift-by", "3") == {0: 7, 1: 7}
    assert reset("--shift-by", "-10") == {0: 0, 1: 0}
    assert reset("--to-datetime", "2000-01-01T00:00:00.000") == {0: 0, 1: 0}
    assert reset("--to-datetime", "2999-01-01T00:00:00.000") == {0: 10, 1: 10}

    p = _groups_tool(b, "--delete-offsets", "--group", group, "--topic", "%s:0" % topic)
    assert "Successful" in p.stdout or "deleted" in p.stdout.lower(), p.stdout
    rows, out = _describe_offsets(b, group)
    assert rows.get(0, (None,))[0] is None and rows[1][0] == 10, out

    p = _groups_tool(b, "--delete", "--group", group)
    assert "was successful" in p.stdout, p.stdout
    assert group not in _groups_tool(b, "--list").stdout.split()
    p = _groups_tool(b, "--delete", "--group", group, check=False)
    assert "does not exist" in (p.stdout + p.stderr), p.stdout + p.stderr


def test_console_consumer_with_group(broker):
    b = broker.bootstrap
    topic = unique_topic("grp-console")
    group = "g-console-" + uuid.uuid4().hex[:6]
    create_topic(b, topic, partitions=1)
    produce(b, topic, [{"value": b"line-%d" % i} for i in range(10)])
    p = kafka_tool("kafka-console-consumer", "--bootstrap-server", b, "--topic", topic, "--group", group,
                   "--from-beginning", "--max-messages", "10", "--timeout-ms", "30000")
    assert [l for l in p.stdout.splitlines() if l.startswith("line-")] == ["line-%d" % i for i in range(10)]
    rows, out = _describe_offsets(b, group)
    assert rows == {0: (10, 10, "0")}, out
    # a second run of the same group finds nothing new
    produce(b, topic, [{"value": b"line-10"}])
    p = kafka_tool("kafka-console-consumer", "--bootstrap-server", b, "--topic", topic, "--group", group,
                   "--max-messages", "1", "--timeout-ms", "30000")
    assert [l for l in p.stdout.splitlines() if l.startswith("line-")] == ["line-10"]


def test_group_errors_for_bad_input(broker):
    """Wrong generations, unknown members and unknown groups get Kafka's
    error codes, and the broker keeps serving."""
    b = broker.bootstrap
    topic = unique_topic("grp-bad")
    create_topic(b, topic, partitions=1)
    c = Consumer({"bootstrap.servers": b, "group.id": "g-bad-" + uuid.uuid4().hex[:6]})
    try:
        # committing for a topic that does not exist
        with pytest.raises(KafkaException) as ei:
            c.commit(offsets=[TopicPartition("no-such-topic-" + uuid.uuid4().hex[:6], 0, 5)],
                     asynchronous=False)
        assert "UNKNOWN_TOPIC_OR_PART" in str(ei.value) or "Unknown topic" in str(ei.value), ei.value
        # an ordinary commit and read back from a simple (assign) consumer
        c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        assert c.committed([TopicPartition(topic, 0)], timeout=20)[0].offset == 0
    finally:
        c.close()
    p = _groups_tool(b, "--describe", "--group", "no-such-group-" + uuid.uuid4().hex[:6], check=False)
    # Kafka 4.1 answers through ConsumerGroupDescribe (GroupIdNotFoundException:
    # "... not found"); the tool's DescribeGroups path says "does not exist".
    out = p.stdout + p.stderr
    assert "does not exist" in out or re.search(r"Group \S+ not found", out), out


def test_rebalance_time_three_members_twelve_partitions(broker, workers):
    """Measures (prints, does not assert) how long a third member's join
    takes to settle: from its start until the three confluent-kafka
    consumers (range, heartbeat.interval.ms 500) each own 4 of 12
    partitions.  Run with -s to see the numbers."""
    b = broker.bootstrap
    topic = unique_topic("grp-time")
    create_topic(b, topic, partitions=12)
    python, lib = CLIENTS["confluent"]
    times = []
    for round_ in range(3):
        group = "g-time-%d-%s" % (round_, uuid.uuid4().hex[:6])
        ws = [workers(python, lib, b, topic, group, "range") for _ in range(2)]
        wait_split(ws, 12, what="two members split 12 partitions")
        t0 = time.monotonic()
        ws.append(workers(python, lib, b, topic, group, "range"))
        got = wait_split(ws, 12, what="three members split 12 partitions")
        times.append(time.monotonic() - t0)
        assert sorted(len(x) for x in got) == [4, 4, 4]
        for w in ws:
            w.stop()
    print("\nrebalance of a 3-member group on 12 partitions (third member start -> all assigned), "
          "target %s: %s s" % (broker.target, ", ".join("%.2f" % t for t in times)))


def test_offsets_retention_and_deleted_topics(request):
    """offsets.retention.minutes=1: a group that only stores offsets loses
    them (and disappears from --list) a minute after the commit; offsets of
    a deleted topic go right away.  Uses a broker of its own."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from conftest import TARGET, Broker
    from tmhelp import admin

    br = Broker(TARGET, {"offsets.retention.minutes": "1", "offsets.retention.check.interval.ms": "1000"})
    request.addfinalizer(br.cleanup)
    br.start()
    b = br.bootstrap
    keep, gone = unique_topic("grp-ret"), unique_topic("grp-del")
    create_topic(b, keep, partitions=1)
    create_topic(b, gone, partitions=1)
    g_old = "g-ret-" + uuid.uuid4().hex[:6]
    g_del = "g-del-" + uuid.uuid4().hex[:6]
    for g, t in ((g_old, keep), (g_del, keep), (g_del, gone)):
        c = Consumer({"bootstrap.servers": b, "group.id": g})
        c.commit(offsets=[TopicPartition(t, 0, 7)], asynchronous=False)
        c.close()
    a = admin(b)

    def offsets(g):
        f = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])
        res = f[g].result(timeout=30)
        return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions if tp.offset >= 0}

    assert offsets(g_del) == {(keep, 0): 7, (gone, 0): 7}
    a.delete_topics([gone], operation_timeout=30)[gone].result(timeout=30)
    wait_for(lambda: offsets(g_del) == {(keep, 0): 7}, 30, "offsets of the deleted topic removed")

    def listed():
        return {g.group_id for g in a.list_consumer_groups().result(timeout=30).valid}
    assert g_old in listed()
    wait_for(lambda: not offsets(g_old), 100, "offsets expired after offsets.retention.minutes", interval=2)
    wait_for(lambda: g_old not in listed(), 30, "expired group gone from the group list")


# ---- the protocol as a client library sees it (raw requests) ----------------

def _find_coordinator(conn, group):
    """FindCoordinator v1 until it answers; returns (host, port)."""
    from rawkafka import Writer
    deadline = time.monotonic() + 30
    while True:
        r = conn.request(10, 1, Writer().string(group).i8(0).build())
        r.i32()
        err = r.i16()
        r.string()
        node, host, port = r.i32(), r.string(), r.i32()
        if err == 0:
            return host, port
        assert err == 15, "FindCoordinator error %d" % err  # COORDINATOR_NOT_AVAILABLE: retry
        assert time.monotonic() < deadline, "no coordinator within 30 s"
        time.sleep(0.2)


def _join(conn, group, member_id, session_ms=10000, instance=None, protocols=(("range", b"meta"),)):
    """JoinGroup v5; returns (error, generation, protocol, leader, member_id, [member ids])."""
    from rawkafka import Writer
    w = Writer().string(group).i32(session_ms).i32(10000).string(member_id).string(instance).string("consumer")
    w.i32(len(protocols))
    for name, meta in protocols:
        w.string(name).bytes_(meta)
    r = conn.request(11, 5, w.build())
    r.i32()
    err, gen, proto, leader, mid = r.i16(), r.i32(), r.string(), r.string(), r.string()
    members = []
    for _ in range(r.i32()):
        members.append(r.string())
        r.string()
        r.take(r.i32())
    return err, gen, proto, leader, mid, members


def _join_first(conn, group, **kw):
    """The first JoinGroup of a group, retried while the coordinator is
    still starting (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
    COORDINATOR_NOT_AVAILABLE), as client libraries do."""
    deadline = time.monotonic() + 30
    while True:
        res = _join(conn, group, "", **kw)
        if res[0] not in (14, 15, 16) or time.monotonic() > deadline:
            return res
        time.sleep(0.2)


def _heartbeat(conn, group, gen, member_id):
    from rawkafka import Writer
    r = conn.request(12, 3, Writer().string(group).i32(gen).string(member_id).string(None).build())
    r.i32()
    return r.i16()


def _sync(conn, group, gen, member_id, assignments):
    from rawkafka import Writer
    w = Writer().string(group).i32(gen).string(member_id).string(None).i32(len(assignments))
    for m, a in assignments:
        w.string(m).bytes_(a)
    r = conn.request(14, 3, w.build())
    r.i32()
    err = r.i16()
    n = r.i32()
    return err, (r.take(n) if n >= 0 else None)


def _leave(conn, group, members):
    """LeaveGroup v3 (batched); returns (top error, [member errors])."""
    from rawkafka import Writer
    w = Writer().string(group).i32(len(members))
    for m, inst in members:
        w.string(m).string(inst)
    r = conn.request(13, 3, w.build())
    r.i32()
    top = r.i16()
    errs = []
    for _ in range(r.i32()):
        r.string()
        r.string()
        errs.append(r.i16())
    return top, errs


def test_group_protocol_error_codes(broker):
    """What a client library sees at each step, with Kafka's error codes:
    the MEMBER_ID_REQUIRED handshake, generations, unknown members, session
    timeout bounds, static member fencing and batched LeaveGroup."""
    import rawkafka
    b = broker
    group = "g-raw-" + uuid.uuid4().hex[:6]
    with rawkafka.Conn(b.host, b.port) as boot:
        host, port = _find_coordinator(boot, group)
    with rawkafka.Conn(host, port, timeout=30) as c:
        err, gen, _, _, mid, _ = _join_first(c, group)
        assert err == 79 and mid.startswith("tm-e2e-raw-") and gen == -1, (err, mid, gen)  # MEMBER_ID_REQUIRED
        err, gen, proto, leader, mid2, members = _join(c, group, mid)
        assert (err, proto, leader, mid2, members) == (0, "range", mid, mid, [mid]) and gen >= 1
        assert _heartbeat(c, group, gen, mid) == 0
        assert _heartbeat(c, group, gen + 5, mid) == 22          # ILLEGAL_GENERATION
        assert _heartbeat(c, group, gen, "nobody") == 25         # UNKNOWN_MEMBER_ID
        assert _sync(c, group, gen + 1, mid, []) == (22, b"")
        assert _sync(c, group, gen, mid, [(mid, b"assign-1")]) == (0, b"assign-1")
        assert _join(c, group, "", session_ms=1000)[0] == 26      # INVALID_SESSION_TIMEOUT
        assert _join(c, group, "", protocols=(("sticky", b""),))[0] == 23  # INCONSISTENT_GROUP_PROTOCOL
        assert _join(c, group, "someone-else")[0] == 25
        assert _heartbeat(c, "no-group-" + uuid.uuid4().hex[:6], 1, "x") in (25, 69)
        top, errs = _leave(c, group, [(mid, None), ("nobody", None)])
        assert (top, errs) == (0, [0, 25])
        assert _heartbeat(c, group, gen, mid) == 25

    # static members: a second process with the same instance id fences the first
    sgroup = "g-rawstatic-" + uuid.uuid4().hex[:6]
    with rawkafka.Conn(b.host, b.port) as boot:
        host, port = _find_coordinator(boot, sgroup)
    with rawkafka.Conn(host, port, timeout=30) as c:
        err, gen, _, _, first, _ = _join_first(c, sgroup, instance="inst-1")
        assert err == 0 and first.startswith("inst-1-")
        assert _sync(c, sgroup, gen, first, [(first, b"a")])[0] == 0
        err, gen2, _, _, second, _ = _join(c, sgroup, "", instance="inst-1")
        assert err == 0 and second != first and gen2 == gen
        from rawkafka import Writer
        r = c.request(12, 3, Writer().string(sgroup).i32(gen).string(first).string("inst-1").build())
        r.i32()
        assert r.i16() == 82  # FENCED_INSTANCE_ID
        assert _leave(c, sgroup, [("", "inst-1")]) == (0, [0])


def _java_hash(s):
    h = 0
    for unit in s.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def test_many_commits_stay_bounded_and_survive_restart(fresh_broker):
    """80 000 pipelined async commits from one consumer (4 000 on Kafka): the broker keeps
    up, the last ones win after a restart, and on Tidemark the group's
    __consumer_offsets partition was rewritten so its log start moved up
    (docs/groups.md: keeping the log bounded)."""
    b = fresh_broker.bootstrap
    topic = unique_topic("grp-many")
    create_topic(b, topic, partitions=4)
    group = "g-many-" + uuid.uuid4().hex[:6]
    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False})
    # Apache Kafka takes minutes for this many pipelined commits; there it
    # only checks that the last ones win.
    n = 80000 if fresh_broker.target == "tidemark" else 4000
    for i in range(n):
        c.commit(offsets=[TopicPartition(topic, i % 4, i)], asynchronous=(i % 2000 != 0))
        if i % 100 == 0:
            c.poll(0)
    final = [TopicPartition(topic, p, n + p) for p in range(4)]
    c.commit(offsets=final, asynchronous=False)
    c.close()

    fresh_broker.restart()
    got = _committed_after_restart(b, group, [TopicPartition(topic, p) for p in range(4)])
    assert [tp.offset for tp in got] == [n + p for p in range(4)], got
    c = Consumer({"bootstrap.servers": b, "group.id": group})
    try:
        if fresh_broker.target == "tidemark":
            md = c.list_topics("__consumer_offsets", timeout=20).topics["__consumer_offsets"]
            part = (abs(_java_hash(group)) if _java_hash(group) != -(1 << 31) else 0) % len(md.partitions)
            low, high = c.get_watermark_offsets(TopicPartition("__consumer_offsets", part), timeout=20)
            assert low > 0 and high - low < n, "log of __consumer_offsets-%d not trimmed: %d..%d" % (part, low, high)
    finally:
        c.close()


def test_groups_on_a_three_node_cluster(request, workers):
    """Three Tidemark nodes (partition data not replicated yet: RF 1): each
    group's coordinator is the leader of its __consumer_offsets partition,
    which may be any node; clients bootstrapped through one node find it,
    share partitions and commit, and kafka-consumer-groups sees the group
    through another node."""
    from conftest import TARGET
    if TARGET != "tidemark":
        pytest.skip("multi-node clusters are started with bin/tidemark only")
    from cluster import Cluster
    from tmhelp import admin
    c = Cluster(3, {"offsets.topic.num.partitions": "6", "default.replication.factor": "1"})
    request.addfinalizer(c.cleanup)
    c.start()
    b1, b3 = c.node(1).bootstrap, c.node(3).bootstrap
    topic = unique_topic("grp-3n")
    create_topic(b1, topic, partitions=6)
    produce(b1, topic, [{"value": b"r%d" % i, "partition": i % 6} for i in range(60)])
    python, lib = CLIENTS["confluent"]
    # one group per __consumer_offsets partition 0, 1, 2, whose leaders the
    # round-robin placement puts on three different nodes
    by_part = {}
    suffix = uuid.uuid4().hex[:4]
    for i in range(1000):
        g = "g-3n-%s-%d" % (suffix, i)
        h = _java_hash(g)
        by_part.setdefault((abs(h) if h != -(1 << 31) else 0) % 6, g)
    groups = [by_part[p] for p in (0, 1, 2)]
    coordinators = set()
    for g in groups:
        ws = [workers(python, lib, b1, topic, g, "range") for _ in range(2)]
        wait_split(ws, 6, what="two consumers of %s split 6 partitions on a 3-node cluster" % g)
        wait_for(lambda: sum(w.state()["read"] for w in ws) >= 60, 60, "all 60 records read")
        for w in ws:
            w.stop()  # close() commits (auto-commit) and leaves
        rows, out = _describe_offsets(b3, g)
        assert sorted(rows) == list(range(6)) and all(r[0] == 10 for r in rows.values()), out
        a3 = admin(b3)  # keep a reference: the handle must outlive the future
        d = a3.describe_consumer_groups([g])[g].result(timeout=30)
        coordinators.add(d.coordinator.id)
    assert coordinators == {1, 2, 3}, "groups were coordinated by nodes %r" % coordinators
