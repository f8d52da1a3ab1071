"""Consumer groups survive the loss of their coordinator (issue 5):
`__consumer_offsets` is replicated, so when the broker leading a group's
offsets partition is killed, the new leader of that partition loads the
group's committed offsets and a consumer of the same group resumes exactly
where the group left off — no record skipped, none read twice.

Tidemark-specific (multi-node): skipped when TM_E2E_TARGET=kafka.
"""
import time

import pytest

from cluster import Cluster, create_replicated, partition_states, wait_leader_moved
from conftest import TARGET
from confluent_kafka import Consumer, Producer

pytestmark = pytest.mark.skipif(TARGET != "tidemark", reason="multi-node tests run against Tidemark only")

FAST = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "replica.lag.time.max.ms": "3000",
    "offsets.topic.num.partitions": "5",
    "offsets.topic.replication.factor": "3",
    "group.initial.rebalance.delay.ms": "0",
}


def java_hash(s):
    h = 0
    for ch in s.encode("utf-16-be").decode("utf-16-be"):
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group, n):
    h = java_hash(group)
    return 0 if h == -(1 << 31) else abs(h) % n


def consume_n(bootstrap, topic, group, n, timeout_s=60):
    """Reads n records with a group consumer, committing each synchronously."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "log_level": 0})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            got.append(m.value().decode())
            c.commit(message=m, asynchronous=False)
    finally:
        c.close()
    return got


def test_group_offsets_survive_the_coordinators_death():
    c = Cluster(3, FAST)
    try:
        c.start()
        boot = ",".join(n.bootstrap for n in c.nodes.values())
        create_replicated(c, "cf", 1, 3)
        p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True, "log_level": 0})
        for i in range(200):
            p.produce("cf", value=b"v%d" % i, partition=0)
        assert p.flush(30) == 0
        first = consume_n(boot, "cf", "g-failover", 120)
        assert first == ["v%d" % i for i in range(120)]

        # The group's coordinator: the leader of its __consumer_offsets partition.
        op = offsets_partition("g-failover", 5)
        states = partition_states(c.node(1), "__consumer_offsets")
        assert states, "__consumer_offsets was not created"
        assert len(states[op]["isr"]) == 3, "offsets partition not replicated: %r" % states[op]
        coord = states[op]["leader"]
        c.node(coord).kill9()
        survivors = [n for n in c.ids() if n != coord]
        wait_leader_moved(c, "__consumer_offsets", op, coord, 30, nodes=[c.node(n) for n in survivors])

        boot2 = ",".join(c.node(n).bootstrap for n in survivors)
        rest = consume_n(boot2, "cf", "g-failover", 80)
        assert rest == ["v%d" % i for i in range(120, 200)], \
            "after the coordinator died the group resumed at %r" % rest[:3]
    finally:
        report = c.crash_report()
        c.cleanup()
    assert report is None, report
