"""Fault injection under load (issue 5): a three-node cluster, a topic of 3
partitions with replication factor 3 and min.insync.replicas=2, and an
idempotent acks=all producer writing continuously in a background thread
(faults.AckedWriter) while a seeded plan kills and pauses brokers:

    kill_leader    kill -9 the leader of a partition, wait until its
                   partitions have a new leader and acknowledgements resume
                   there, then restart it
    pause_leader   SIGSTOP the leader of a partition for longer than the
                   broker session timeout (it is fenced and replaced), then
                   SIGCONT: it must step down and become a follower
    kill_follower  kill -9 a follower of a partition; acks=all continues on
                   the two others (ISR 2 >= min.insync.replicas 2); restart it

After each fault the ISR of every partition must become whole again before
the next.  Then the producer stops, everything is read back and
faults.check holds: no acknowledged record lost or moved, none duplicated,
offsets contiguous, acknowledgements in offset order.

Seeds: TM_FAULT_SEED=N runs one plan; otherwise a fixed list that covers
every fault at least twice.  A failure names its seed and plan.

The unavailability window of each leader fault (per partition the victim
led: last acknowledgement before the fault to the first after it) is
printed, not asserted:
    sh tests/e2e/run.sh tests/e2e/test_faults.py -s
"""
import os
import random
import time

import pytest

from cluster import Cluster, create_replicated, describe_quorum, partition_states, wait_isr_whole, wait_partitions
from conftest import TARGET
from faults import AckedWriter, check, read_back

pytestmark = pytest.mark.skipif(TARGET != "tidemark", reason="multi-node fault tests run against Tidemark only")

SESSION_MS = 3000
SETTINGS = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": str(SESSION_MS),
    "replica.lag.time.max.ms": "3000",
}
PARTITIONS = 3
FAULTS = ("kill_leader", "pause_leader", "kill_follower")
FAULTS_PER_PLAN = 2
SEEDS = [int(os.environ["TM_FAULT_SEED"])] if os.environ.get("TM_FAULT_SEED") else [11, 12, 13, 14]
RECOVER_S = 30  # bound for leadership to move or the ISR to heal after a fault


def plan_for(seed):
    """[(fault, partition)] for a seed: FAULTS_PER_PLAN different faults,
    each aimed at a partition chosen by the seed."""
    rng = random.Random(seed)
    return [(f, rng.randrange(PARTITIONS)) for f in rng.sample(FAULTS, FAULTS_PER_PLAN)], rng


@pytest.fixture
def cluster():
    c = Cluster(3, SETTINGS)
    try:
        c.start()
        yield c
    finally:
        report = c.crash_report()
        c.cleanup()
    if report:
        pytest.fail(report, pytrace=False)


class Scenario:
    """One seeded run: the cluster, the writer, and what happened (a log of
    steps, quoted on failure)."""

    def __init__(self, c, topic, writer, seed, rng):
        self.c, self.topic, self.w, self.seed, self.rng = c, topic, writer, seed, rng
        self.steps = []
        self.windows = []

    def note(self, fmt, *args):
        line = "%8.3f %s" % (time.time() % 1000, fmt % args)
        self.steps.append(line)

    def states(self, nodes=None):
        for n in nodes or self.c.running():
            try:
                s = partition_states(n, self.topic, timeout=3)
            except (OSError, ConnectionError):
                continue
            if s:
                return s
        raise AssertionError("no running node answers Metadata for %s" % self.topic)

    def controller(self):
        for n in self.c.running():
            try:
                q = describe_quorum(n, timeout=3)
            except (OSError, ConnectionError):
                continue
            if not q["error"]:
                return q["leader"]
        return -1

    def others(self, nid):
        return [n for n in self.c.nodes.values() if n.node_id != nid]

    def wait_led_elsewhere(self, victim, partitions):
        live = self.others(victim)
        return wait_partitions(self.c, self.topic, RECOVER_S,
                               lambda s: all(s[p]["leader"] not in (-1, victim) for p in partitions),
                               "partitions %r led by a broker other than %d" % (partitions, victim), live)

    def measure(self, what, victim, led, t_fault):
        """Called once acknowledgements resumed on every partition in `led`."""
        until = time.time()
        for p in led:
            gap = self.w.unavailability(p, t_fault, until)
            if gap is None:
                continue
            before, after = gap
            ms = (after - before) * 1000
            self.windows.append((what, p, ms))
            self.note("unavailability %s of broker %d, partition %d: %.0f ms (last ack %.0f ms before, first ack "
                      "%.0f ms after the fault)", what, victim, p, ms,
                      (t_fault - before) * 1000, (after - t_fault) * 1000)

    # ---- the faults ------------------------------------------------------------------
    def kill_leader(self, partition):
        s = self.states()
        victim = s[partition]["leader"]
        led = sorted(p for p, v in s.items() if v["leader"] == victim)
        ctrl = self.controller()
        node = self.c.node(victim)
        t = node.kill9()
        self.note("kill -9 broker %d (leader of %r%s)", victim, led, ", active controller" if ctrl == victim else "")
        after = self.wait_led_elsewhere(victim, led)
        self.note("new leaders %r", {p: (after[p]["leader"], after[p]["leader_epoch"]) for p in led})
        for p in led:
            assert after[p]["leader_epoch"] > s[p]["leader_epoch"], "partition %d: epoch %d -> %d" % (
                p, s[p]["leader_epoch"], after[p]["leader_epoch"])
            self.w.wait_acks(20, RECOVER_S, partition=p)
        self.measure("kill -9", victim, led, t)
        time.sleep(self.rng.uniform(0.2, 1.5))
        node.start()
        self.note("restarted broker %d", victim)

    def pause_leader(self, partition):
        s = self.states()
        victim = s[partition]["leader"]
        led = sorted(p for p, v in s.items() if v["leader"] == victim)
        ctrl = self.controller()
        node = self.c.node(victim)
        t = node.sigstop()
        self.note("SIGSTOP broker %d (leader of %r%s)", victim, led, ", active controller" if ctrl == victim else "")
        after = self.wait_led_elsewhere(victim, led)
        self.note("new leaders %r", {p: (after[p]["leader"], after[p]["leader_epoch"]) for p in led})
        for p in led:
            self.w.wait_acks(20, RECOVER_S, partition=p)
        self.measure("SIGSTOP", victim, led, t)
        hold = SESSION_MS / 1000 + self.rng.uniform(0.5, 2.0)
        time.sleep(max(0.0, t + hold - time.time()))
        node.sigcont()
        self.note("SIGCONT broker %d after %.1f s", victim, time.time() - t)

    def kill_follower(self, partition):
        s = self.states()
        followers = [r for r in s[partition]["replicas"] if r != s[partition]["leader"]]
        victim = self.rng.choice(followers)
        node = self.c.node(victim)
        node.kill9()
        self.note("kill -9 broker %d (follower of partition %d)", victim, partition)
        # Producing goes on: two in-sync replicas meet min.insync.replicas=2.
        live = self.others(victim)
        wait_partitions(self.c, self.topic, RECOVER_S,
                        lambda st: all(victim not in v["isr"] and v["leader"] >= 0 for v in st.values()),
                        "broker %d out of every ISR" % victim, live)
        self.note("broker %d out of every ISR", victim)
        for p in range(PARTITIONS):
            self.w.wait_acks(20, RECOVER_S, partition=p)
        time.sleep(self.rng.uniform(0.2, 1.5))
        node.start()
        self.note("restarted broker %d", victim)


@pytest.mark.parametrize("seed", SEEDS)
def test_acknowledged_records_survive_faults(cluster, seed):
    c = cluster
    plan, rng = plan_for(seed)
    topic = "faults-%d-%s" % (seed, os.urandom(3).hex())
    create_replicated(c, topic, PARTITIONS, 3, config={"min.insync.replicas": "2"})
    wait_isr_whole(c, topic, RECOVER_S)
    w = AckedWriter(",".join(n.bootstrap for n in c.nodes.values()), topic, PARTITIONS, run_id="seed%d" % seed)
    sc = Scenario(c, topic, w, seed, rng)
    sc.note("seed %d plan %r", seed, plan)
    w.start()
    try:
        try:
            w.wait_acks(200, 20)
            for fault, partition in plan:
                getattr(sc, fault)(partition)
                wait_isr_whole(c, topic, RECOVER_S)
                sc.note("ISR whole again: %r", {p: (v["leader"], v["isr"]) for p, v in sc.states().items()})
                w.wait_acks(100, RECOVER_S)
        except Exception:
            w.stop(flush_timeout_s=5)
            raise
        left = w.stop(flush_timeout_s=60)
        sc.note("writer stopped: %s", w.summary())
        assert w.fatal is None, "the idempotent producer hit a fatal error: %s" % w.fatal
        assert left == 0, "%d records were never reported delivered or failed" % left
        assert not w.failed, "%d records failed delivery (first: %r)" % (len(w.failed), w.failed[0])

        log = read_back(",".join(n.bootstrap for n in c.nodes.values()), topic, range(PARTITIONS))
        sc.note("read back %r records per partition", {p: len(r) for p, r in log.items()})
        problems = check(w.acks, log, run_id=w.run_id)
        assert not problems, "\n".join(problems)
        extra = sum(len(r) for r in log.values()) - len(w.acks)
        sc.note("%d acknowledged, %d more in the log (written, unacknowledged)", len(w.acks), extra)
        wait_isr_whole(c, topic, RECOVER_S)
    except Exception as e:
        raise AssertionError("seed %d (rerun: TM_FAULT_SEED=%d), plan %r: %s\nsteps:\n%s\n%s"
                             % (seed, seed, plan, e, "\n".join(sc.steps), c.logs(20))) from e
    print("\nseed %d plan %r: %s" % (seed, plan, w.summary()))
    for line in sc.steps:
        print("  " + line)
