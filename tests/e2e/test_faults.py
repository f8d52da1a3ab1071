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
offsets contiguous, acknowledgements in offset order.  A consumer tails the
topic throughout (faults.TailReader): it must never read a record the log
later loses, nor skip or repeat an offset.

Seeds: TM_FAULT_SEED=N runs one plan; otherwise a fixed list of four plans
that each hold all three faults.  A failure names its seed and plan and
quotes the steps taken, stamped in the brokers' log time (UTC).

Also here: a leader cut off from its peers by iptables rules inside a
private network namespace (faults.NetCut; skipped without root, iptables'
cgroup match or cgroup2), once when it is also the active controller and
once when it is not; and Kafka's Java producer across a leader kill.

The unavailability window of each leader fault (per partition the victim
led: the longest silence in its acknowledgements from the last one before
the fault until they resumed) is printed, not asserted:
    sh tests/e2e/run.sh tests/e2e/test_faults.py -s
"""
import json
import os
import random
import subprocess
import threading
import time

import pytest

from cluster import Cluster, create_replicated, describe_quorum, partition_states, wait_isr_whole, wait_partitions
from conftest import JAVA_CLI_OPTS, KAFKA_TOOL_CLASSES, TARGET, java_classpath
from faults import (Ack, AckedWriter, NetCut, TailReader, check, check_reads, longest_silence, netns_unavailable,
                    read_back, utc)

pytestmark = pytest.mark.skipif(TARGET != "tidemark", reason="multi-node fault tests run against Tidemark only")

SESSION_MS = 3000
SETTINGS = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": str(SESSION_MS),
    "replica.lag.time.max.ms": "3000",
}
PARTITIONS = 3
FAULTS = ("kill_leader", "pause_leader", "kill_follower")
FAULTS_PER_PLAN = 3
# Each of these plans has all three faults, in different orders and aimed at
# different partitions (printed with -s).
SEEDS = [int(os.environ["TM_FAULT_SEED"])] if os.environ.get("TM_FAULT_SEED") else [3, 6, 13, 18]
RECOVER_S = 30  # bound for leadership to move or the ISR to heal after a fault


def plan_for(seed):
    """[(fault, partition)] for a seed: FAULTS_PER_PLAN faults drawn from
    FAULTS, each aimed at a partition chosen by the seed; and the seeded
    generator that then picks followers and delays."""
    rng = random.Random(seed)
    return [(rng.choice(FAULTS), rng.randrange(PARTITIONS)) for _ in range(FAULTS_PER_PLAN)], rng


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

    def __init__(self, c, topic, writer, seed, rng, net=None):
        self.c, self.topic, self.w, self.seed, self.rng = c, topic, writer, seed, rng
        self.net = net  # (NetCut, {node id: cgroup}) for cut_node
        self.tail = TailReader(writer.bootstrap, topic, range(PARTITIONS))
        self.steps = []
        self.windows = []

    def note(self, fmt, *args):
        line = "%s %s" % (utc(time.time()), fmt % args)
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
                self.note("unavailability %s of broker %d, partition %d: not measured (no acknowledgement on one "
                          "side of the fault)", what, victim, p)
                continue
            before, after = gap
            ms = (after - before) * 1000
            self.windows.append((what, p, ms))
            self.note("unavailability %s of broker %d, partition %d: %.0f ms (no ack from %+.0f ms to %+.0f ms "
                      "of the fault)", what, victim, p, ms, (before - t_fault) * 1000, (after - t_fault) * 1000)

    def verdict(self, flush_timeout_s):
        """Stops the writer, reads the topic back from every node and checks
        it.  Returns the problems found ([] when none)."""
        w = self.w
        left = w.stop(flush_timeout_s)
        self.note("writer stopped: %s", w.summary())
        time.sleep(1.0)  # let the tail reader reach the end
        self.tail.stop()
        self.note("tail reader stopped: %d records read, %d errors%s", len(self.tail.reads), len(self.tail.errors),
                  " (first: %s)" % self.tail.errors[0] if self.tail.errors else "")
        problems = []
        if w.fatal:
            problems.append("the idempotent producer hit a fatal error: %s" % w.fatal)
        if left:
            problems.append("%d records were never reported delivered or failed" % left)
        if w.failed and not w.fatal:
            problems.append("%d records failed delivery (first: %r)" % (len(w.failed), w.failed[0]))
        try:
            log = read_back(",".join(n.bootstrap for n in self.c.nodes.values()), self.topic, range(PARTITIONS))
        except AssertionError as e:
            return problems + ["reading back: %s" % e]
        for p in range(PARTITIONS):
            acked = [a.offset for a in w.acks if a.partition == p]
            self.note("partition %d: %d acknowledged (last offset %s), %d read back (last offset %s)", p,
                      len(acked), max(acked) if acked else None, len(log[p]),
                      log[p][-1].offset if log[p] else None)
        problems += check(w.acks, log, run_id=w.run_id)
        problems += check_reads(self.tail.reads, log)
        if self.tail.errors:
            problems.append("the tail reader got %d errors, first: %s" % (len(self.tail.errors), self.tail.errors[0]))
        return problems

    def fail(self, what, problems):
        raise AssertionError("%s:\n  %s\nsteps:\n%s\n%s" % (what, "\n  ".join(problems), "\n".join(self.steps),
                                                           self.c.logs(20)))

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

    def cut_node(self, partition):
        """Cuts a replica of `partition` (chosen by the seed) off from its
        peers while clients still reach it, until it is fenced, leads
        nothing and acknowledgements flow on every partition; then heals."""
        netcut, cgroups = self.net
        s = self.states()
        victim = self.rng.choice(s[partition]["replicas"])
        led = sorted(p for p, v in s.items() if v["leader"] == victim)
        ctrl = self.controller()
        v = self.c.node(victim)
        peers = self.others(victim)
        t = time.time()
        netcut.cut(cgroups[victim], [v.port, v.cport], [(cgroups[n.node_id], [n.port, n.cport]) for n in peers])
        self.note("cut broker %d off from its peers (leader of %r%s)", victim, led,
                  ", active controller" if ctrl == victim else "")
        wait_partitions(self.c, self.topic, RECOVER_S,
                        lambda st: all(v2["leader"] not in (-1, victim) and victim not in v2["isr"]
                                       for v2 in st.values()),
                        "broker %d leads nothing and is out of every ISR" % victim, peers)
        self.note("broker %d leads nothing and is out of every ISR", victim)
        for p in range(PARTITIONS):
            self.w.wait_acks(20, RECOVER_S, partition=p)
        self.measure("cut", victim, led, t)
        time.sleep(self.rng.uniform(0.2, 1.5))
        netcut.heal()
        self.note("healed after %.1f s", time.time() - t)

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


def run_plan(c, seed, plan, rng, net=None):
    """Runs a plan against cluster c under the writer and the tail reader,
    then checks; fails naming the seed and plan."""
    topic = "faults-%d-%s" % (seed, os.urandom(3).hex())
    create_replicated(c, topic, PARTITIONS, 3, config={"min.insync.replicas": "2"})
    wait_isr_whole(c, topic, RECOVER_S)
    w = AckedWriter(",".join(n.bootstrap for n in c.nodes.values()), topic, PARTITIONS, run_id="seed%d" % seed)
    sc = Scenario(c, topic, w, seed, rng, net)
    sc.note("seed %d plan %r", seed, plan)
    w.start()
    sc.tail.start()
    problems = []
    try:
        for p in range(PARTITIONS):  # every partition acknowledges before the first fault
            w.wait_acks(50, 20, partition=p)
        for fault, partition in plan:
            getattr(sc, fault)(partition)
            wait_isr_whole(c, topic, RECOVER_S)
            sc.note("ISR whole again: %r", {p: (v["leader"], v["isr"]) for p, v in sc.states().items()})
            w.wait_acks(100, RECOVER_S)
    except AssertionError as e:
        problems.append("during the faults: %s" % "\n    ".join(str(e).split("\n")[:5]))
        sc.note("failed: %s", str(e).split("\n")[0])
        if net:
            net[0].heal()
    problems += sc.verdict(60 if not problems else 10)
    if not problems:
        try:
            wait_isr_whole(c, topic, RECOVER_S)
        except AssertionError as e:
            problems.append(str(e).split("\n")[0])
    if problems:
        sc.fail("seed %d (rerun: TM_FAULT_SEED=%d), plan %r" % (seed, seed, plan), problems)
    print("\nseed %d plan %r: %s; unavailability %s" % (
        seed, plan, w.summary(), ", ".join("%s p%d %.0f ms" % x for x in sc.windows) or "not measured"))
    for line in sc.steps:
        print("  " + line)


@pytest.mark.parametrize("seed", SEEDS)
def test_acknowledged_records_survive_faults(cluster, seed):
    plan, rng = plan_for(seed)
    run_plan(cluster, seed, plan, rng)


# ---- a leader cut off from its peers (network namespace) ---------------------------
@pytest.fixture
def netcut():
    why = netns_unavailable()
    if why:
        pytest.skip("network cuts need root, ip, iptables and cgroup2: %s" % why)
    nc = NetCut(os.urandom(3).hex())
    try:
        nc.enter()
        why = nc.probe()
    except (AssertionError, OSError) as e:
        why = "cannot set up a private network namespace: %s" % e
    if why:
        nc.leave()
        pytest.skip(why)
    yield nc
    nc.leave()


def cut_cluster(nc):
    """A three-node cluster inside the namespace, each node in a cgroup of
    its own."""
    c = Cluster(3, SETTINGS)
    cgroups = {}
    for n in c.nodes.values():
        cg = nc.cgroup("n%d" % n.node_id)
        cgroups[n.node_id] = cg
        plain = n.command
        n.command = lambda extra=None, plain=plain, cg=cg: nc.wrap(plain(extra), cg)
    return c, cgroups


@pytest.mark.parametrize("victim_role", ["controller", "broker"])
def test_leader_cut_off_from_its_peers_loses_nothing(netcut, victim_role):
    """The leader of a partition loses its links to the other two nodes
    (iptables in a private namespace) while clients still reach it: it is
    fenced, its partitions move, the writer follows them, and after the cut
    heals it rejoins every ISR.  victim_role says whether the victim is
    also the active controller (the metadata quorum then elects another) or
    not."""
    c, cgroups = cut_cluster(netcut)
    try:
        c.start()
        topic = "cut-%s-%s" % (victim_role, os.urandom(3).hex())
        create_replicated(c, topic, PARTITIONS, 3, config={"min.insync.replicas": "2"})
        states = wait_isr_whole(c, topic, RECOVER_S)
        ctrl = c.wait_leader(10)[0]
        leaders = {s["leader"] for s in states.values()}
        if victim_role == "controller":
            victim = ctrl
        else:
            victim = min(nid for nid in leaders if nid != ctrl)
        led = sorted(p for p, s in states.items() if s["leader"] == victim)
        assert led, "broker %d leads none of %r" % (victim, states)

        w = AckedWriter(",".join(n.bootstrap for n in c.nodes.values()), topic, PARTITIONS,
                        run_id="cut-%s" % victim_role)
        sc = Scenario(c, topic, w, 0, random.Random(0))
        w.start()
        sc.tail.start()
        problems = []
        try:
            for p in range(PARTITIONS):
                w.wait_acks(50, 20, partition=p)
            v = c.node(victim)
            peers = [n for n in c.nodes.values() if n.node_id != victim]
            t = time.time()
            sc.note("cut broker %d (%s; leader of %r) off from its peers", victim, victim_role, led)
            netcut.cut(cgroups[victim], [v.port, v.cport], [(cgroups[n.node_id], [n.port, n.cport]) for n in peers])
            after = sc.wait_led_elsewhere(victim, led)
            sc.note("new leaders %r", {p: (after[p]["leader"], after[p]["leader_epoch"]) for p in led})
            for p in led:
                w.wait_acks(20, RECOVER_S, partition=p)
            sc.measure("cut", victim, led, t)
            time.sleep(1.0)
            netcut.heal()
            sc.note("healed after %.1f s", time.time() - t)
            wait_isr_whole(c, topic, RECOVER_S)
            sc.note("ISR whole again")
            w.wait_acks(100, RECOVER_S)
        except AssertionError as e:
            problems.append("during the cut: %s" % "\n    ".join(str(e).split("\n")[:5]))
            sc.note("failed: %s", str(e).split("\n")[0])
            netcut.heal()
        problems += sc.verdict(60 if not problems else 10)
        if problems:
            sc.fail("cut of broker %d (%s)" % (victim, victim_role), problems)
        print("\ncut %s: %s; unavailability %s" % (
            victim_role, w.summary(), ", ".join("%s p%d %.0f ms" % x for x in sc.windows) or "not measured"))
        for line in sc.steps:
            print("  " + line)
    finally:
        report = c.crash_report()
        c.cleanup()
    assert report is None, report


NET_FAULTS = FAULTS + ("cut_node",)
# Plans drawn from NET_FAULTS that each hold a cut and two other faults.
NET_SEEDS = [int(os.environ["TM_FAULT_SEED"])] if os.environ.get("TM_FAULT_SEED") else [7, 9]


def net_plan_for(seed):
    rng = random.Random(seed)
    return [(rng.choice(NET_FAULTS), rng.randrange(PARTITIONS)) for _ in range(FAULTS_PER_PLAN)], rng


@pytest.mark.parametrize("seed", NET_SEEDS)
def test_acknowledged_records_survive_faults_and_cuts(netcut, seed):
    """Seeded plans as above, drawn also from cut_node (a replica cut off
    from its peers, then healed)."""
    plan, rng = net_plan_for(seed)
    c, cgroups = cut_cluster(netcut)
    try:
        c.start()
        run_plan(c, seed, plan, rng, (netcut, cgroups))
    finally:
        report = c.crash_report()
        c.cleanup()
    assert report is None, report


# ---- the Java producer (idempotent by default) across a leader kill -----------------------
def test_java_producer_acks_all_across_leader_kill(cluster):
    """kafka-verifiable-producer (Kafka 4.1's Java client, acks=all) writes
    while the leader of partition 0 is killed and later restarted; every
    record it reports sent is read back once at the partition and offset it
    reported.  The tool sets retries=0, which turns idempotence off, so a
    producer config gives back the Java client's defaults (idempotent,
    unlimited retries within delivery.timeout.ms): then no send fails."""
    c = cluster
    topic = "java-kill-%s" % os.urandom(3).hex()
    create_replicated(c, topic, PARTITIONS, 3, config={"min.insync.replicas": "2"})
    states = wait_isr_whole(c, topic, RECOVER_S)
    bs = ",".join(n.bootstrap for n in c.nodes.values())
    props = c.root / "java-producer.properties"
    props.write_text("enable.idempotence=true\nretries=2147483647\n")
    cmd = (["java"] + JAVA_CLI_OPTS + ["-cp", java_classpath(), KAFKA_TOOL_CLASSES["kafka-verifiable-producer"],
                                        "--bootstrap-server", bs, "--topic", topic, "--max-messages", "4000",
                                        "--throughput", "400", "--acks", "-1", "--producer.config", str(props)])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acks, failed, lines = [], [], []

    def pump():
        for line in proc.stdout:
            lines.append(line)
            if not line.startswith("{"):
                continue
            ev = json.loads(line)
            if ev.get("name") == "producer_send_success":
                acks.append(Ack(ev["partition"], ev["offset"], ev["value"].encode(), ev["timestamp"] / 1000.0))
            elif ev.get("name") == "producer_send_error":
                failed.append(ev)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    steps = []
    try:
        deadline = time.monotonic() + 60
        while len(acks) < 300:
            assert time.monotonic() < deadline and proc.poll() is None, (
                "the Java producer acknowledged %d records in 60 s:\n%s" % (len(acks), "".join(lines[-20:])))
            time.sleep(0.1)
        victim = states[0]["leader"]
        t = c.node(victim).kill9()
        steps.append("%s kill -9 broker %d (leader of partition 0) after %d acks" % (utc(t), victim, len(acks)))
        live = [n for n in c.nodes.values() if n.node_id != victim]
        moved = wait_partitions(c, topic, RECOVER_S, lambda s: s[0]["leader"] not in (-1, victim),
                                "partition 0 led elsewhere", live)
        steps.append("%s partition 0 led by %d" % (utc(time.time()), moved[0]["leader"]))
        time.sleep(2)
        c.node(victim).start()
        steps.append("%s restarted broker %d" % (utc(time.time()), victim))
        proc.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert not failed, "the Java producer reported %d send errors, first %r\nsteps:\n%s" % (
        len(failed), failed[0], "\n".join(steps))
    assert len(acks) == 4000, "%d of 4000 acknowledged\n%s\n%s" % (len(acks), "".join(lines[-10:]), err[-2000:])
    wait_isr_whole(c, topic, RECOVER_S)
    log = read_back(bs, topic, range(PARTITIONS))
    problems = check(acks, log)
    assert not problems, "\n".join(problems + ["steps:"] + steps)
    gaps = {p: longest_silence([a.t for a in acks if a.partition == p], t, time.time()) for p in range(PARTITIONS)}
    print("\nJava producer across kill -9 of broker %d (leader of partition 0): 4000 acknowledged; longest silence "
          "per partition around the kill: %s" % (victim, ", ".join(
              "p%d %s" % (p, "%.0f ms" % ((g[1] - g[0]) * 1000) if g else "-") for p, g in sorted(gaps.items()))))
