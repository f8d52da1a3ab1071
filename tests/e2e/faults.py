"""Fault-injection toolkit for the replication tests: a producer that writes
continuously with acks=all and records every acknowledgement, a consumer
that tails the topic meanwhile, a reader that reads a topic back to its high
watermarks, checkers that compare them, and network cuts (NetCut, below).

    w = AckedWriter(bootstrap, topic, partitions=3, run_id="seed-7")
    t = TailReader(bootstrap, topic, range(3))
    w.start(); t.start()           # background threads
    ... kill -9 / SIGSTOP / restart nodes ...
    w.stop(); t.stop()             # stops producing (flushes) and tailing
    log = read_back(bootstrap, topic, range(3))
    problems = check(w.acks, log) + check_reads(t.reads, log)   # [] when all is well

What the checker holds a broker to (Kafka's promise for acks=all with an
idempotent producer and no unclean election):

  - every acknowledged record is read back, at exactly the partition and
    offset its acknowledgement named, with its value;
  - no value appears twice in a partition's log (an idempotent producer's
    retries are never appended twice);
  - offsets read from each partition are contiguous from its first offset
    (no holes: there are no transactions and no compaction here);
  - the offsets of one partition's acknowledgements grow in the order the
    acknowledgements arrived (librdkafka reports a partition's deliveries in
    order, so a smaller offset after a larger one means the log was rewritten);
  - every value read was written by this writer (nothing invented).

Records that were written but never acknowledged (in flight at a fault, or
failed after their timeout) may or may not be in the log: Kafka promises
nothing about them, so they are counted, not judged.

Value layout: b"<run_id>:<sequence, 8 decimal digits>:<padding>", unique per
record, so a value identifies the record it came from.
"""
import ctypes
import os
import shutil
import subprocess
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

QUIET = {"log_level": 0}


class Ack:
    """One acknowledged record: where the broker said it put it, and when
    (time.time() when the delivery report ran)."""
    __slots__ = ("partition", "offset", "value", "t")

    def __init__(self, partition, offset, value, t):
        self.partition, self.offset, self.value, self.t = partition, offset, value, t

    def __repr__(self):
        return "Ack(p%d@%d %r)" % (self.partition, self.offset, self.value[:24])


class AckedWriter:
    """An idempotent acks=all confluent-kafka producer in a background
    thread.  Writes record i to partition i % partitions, one every
    interval_s, and keeps every acknowledgement (self.acks, in arrival
    order), every failed delivery (self.failed: (value, error)) and any
    fatal producer error (self.fatal)."""

    def __init__(self, bootstrap, topic, partitions, run_id=None, interval_s=0.002, value_bytes=64,
                 config=None):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.run_id = (run_id or uuid.uuid4().hex[:8]).encode()
        self.interval_s = interval_s
        self.pad = b"x" * max(0, value_bytes - len(self.run_id) - 10)
        self.conf = dict(QUIET, **{
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            # A paused leader holds requests until these expire; the
            # producer then retries them on the new leader.
            "request.timeout.ms": 5000,
            "socket.timeout.ms": 5000,
            "retry.backoff.ms": 50,
            "retry.backoff.max.ms": 500,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 1000,
        })
        self.conf.update(config or {})
        self.acks = []
        self.failed = []
        self.fatal = None
        self.sent = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = None
        self.producer = None
        self.unflushed = 0

    def value(self, i):
        return b"%s:%08d:%s" % (self.run_id, i, self.pad)

    def _on_delivery(self, err, msg):
        # An exception here would surface inside librdkafka's poll(): keep
        # the callback to plain bookkeeping.
        now = time.time()
        with self.lock:
            if err is not None:
                if err.fatal():
                    self.fatal = self.fatal or "%s (%s)" % (err.str(), err.name())
                self.failed.append((msg.value(), "%s (%s)" % (err.str(), err.name())))
            else:
                self.acks.append(Ack(msg.partition(), msg.offset(), msg.value(), now))

    def _on_error(self, err):
        if err.fatal():
            with self.lock:
                self.fatal = self.fatal or "%s (%s)" % (err.str(), err.name())

    def start(self):
        conf = dict(self.conf, error_cb=self._on_error)
        self.producer = Producer(conf)
        self.thread = threading.Thread(target=self._run, name="acked-writer", daemon=True)
        self.thread.start()

    def _run(self):
        p = self.producer
        i = 0
        while not self.stopping.is_set() and self.fatal is None:
            try:
                p.produce(self.topic, self.value(i), partition=i % self.partitions, on_delivery=self._on_delivery)
                i += 1
                self.sent = i
            except BufferError:
                p.poll(0.05)
                continue
            except KafkaException as e:
                with self.lock:
                    self.fatal = self.fatal or "produce(): %s" % e
                break
            p.poll(0)
            time.sleep(self.interval_s)

    def ack_count(self):
        with self.lock:
            return len(self.acks)

    def wait_acks(self, more, timeout_s, partition=None):
        """Waits until `more` acknowledgements (for `partition` when given)
        arrive after this call.  Returns the last of them; raises
        AssertionError quoting the counts when they do not."""
        def count():
            with self.lock:
                if partition is None:
                    return len(self.acks)
                return sum(1 for a in self.acks if a.partition == partition)
        start = count()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if count() >= start + more:
                with self.lock:
                    return self.acks[-1]
            if self.fatal:
                break
            time.sleep(0.05)
        raise AssertionError("writer: %d more acks%s not within %ss (had %d, now %d; sent %d, failed %d, fatal %r)"
                             % (more, "" if partition is None else " on partition %d" % partition, timeout_s,
                                start, count(), self.sent, len(self.failed), self.fatal))

    def stop(self, flush_timeout_s=60):
        """Stops producing and waits for every outstanding record's
        delivery report (acknowledged or failed).  Returns the number still
        undelivered after flush_timeout_s (0 when all reported)."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        if self.producer is None:
            return 0
        try:
            self.unflushed = self.producer.flush(flush_timeout_s)
        except (KafkaException, SystemError) as e:
            # After a fatal error confluent-kafka raises it from flush(),
            # sometimes while running a delivery callback (SystemError).
            with self.lock:
                self.fatal = self.fatal or "flush(): %s" % e
            self.unflushed = len(self.producer)
        return self.unflushed

    def unavailability(self, partition, t_fault, until):
        """longest_silence() of `partition`'s acknowledgements."""
        with self.lock:
            times = [a.t for a in self.acks if a.partition == partition]
        return longest_silence(times, t_fault, until)

    def summary(self):
        with self.lock:
            return "sent %d, acknowledged %d, failed %d%s, unflushed %d" % (
                self.sent, len(self.acks), len(self.failed),
                " (first: %s)" % self.failed[0][1] if self.failed else "", self.unflushed)


def longest_silence(times, t_fault, until):
    """The longest gap between acknowledgement times from the last one
    before t_fault up to `until` (a time by which they had resumed): (last
    ack before the gap, first ack after it), or None when there was no ack
    on one side.  Acknowledgements the old leader sent just before a fault
    may be reported just after it, so the gap, not the first ack after the
    fault, marks when the new leader began acknowledging."""
    times = sorted(t for t in times if t <= until)
    before = [t for t in times if t <= t_fault]
    if not before or len(times) == len(before):
        return None
    times = times[len(before) - 1:]
    return max(zip(times, times[1:]), key=lambda ab: ab[1] - ab[0])


class Rec:
    __slots__ = ("partition", "offset", "value")

    def __init__(self, partition, offset, value):
        self.partition, self.offset, self.value = partition, offset, value


def read_back(bootstrap, topic, partitions, timeout_s=60):
    """Reads `partitions` of `topic` from the beginning up to the high
    watermark each had when the read began (ListOffsets latest).  Returns
    {partition: [Rec in offset order]}; raises AssertionError when a
    partition cannot be read to its watermark within timeout_s."""
    conf = dict(QUIET, **{"bootstrap.servers": bootstrap, "group.id": "tm-e2e-faults-" + uuid.uuid4().hex[:6],
                          "enable.auto.commit": False, "enable.partition.eof": False,
                          "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100,
                          "topic.metadata.refresh.interval.ms": 1000})
    c = Consumer(conf)
    try:
        ends = {}
        starts = {}
        for p in partitions:
            lo, hi = _watermarks(c, topic, p, timeout_s)
            starts[p], ends[p] = lo, hi
        out = {p: [] for p in partitions}
        unread = [p for p in partitions if ends[p] > starts[p]]
        if not unread:
            return out
        c.assign([TopicPartition(topic, p, starts[p]) for p in unread])
        deadline = time.monotonic() + timeout_s
        pending = set(unread)
        while pending and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError("read_back %s: consume error %s" % (topic, m.error()))
                p = m.partition()
                if m.offset() < ends[p]:
                    out[p].append(Rec(p, m.offset(), m.value()))
                if m.offset() >= ends[p] - 1:
                    pending.discard(p)
        if pending:
            got = {p: (out[p][-1].offset if out[p] else None) for p in pending}
            raise AssertionError("read_back %s: partitions %r not read to their watermarks %r within %ss "
                                 "(last offsets read %r)" % (topic, sorted(pending),
                                                             {p: ends[p] for p in pending}, timeout_s, got))
        return out
    finally:
        c.close()


def _watermarks(consumer, topic, partition, timeout_s):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
        except Exception as e:  # KafkaException while leadership moves
            last = e
            time.sleep(0.5)
    raise AssertionError("ListOffsets %s-%d: no answer within %ss (last: %s)" % (topic, partition, timeout_s, last))


class TailReader:
    """A consumer reading every partition from offset 0 in a background
    thread while the faults happen (assign(), no group, no seeks), keeping
    every record it is given (self.reads) and every error (self.errors).
    auto.offset.reset=error: a position a new leader calls out of range is
    reported, not silently restarted."""

    def __init__(self, bootstrap, topic, partitions):
        self.conf = dict(QUIET, **{"bootstrap.servers": bootstrap, "group.id": "tm-e2e-tail-" + uuid.uuid4().hex[:6],
                                   "enable.auto.commit": False, "auto.offset.reset": "error",
                                   "fetch.wait.max.ms": 100, "topic.metadata.refresh.interval.ms": 1000,
                                   "socket.timeout.ms": 5000})
        self.topic = topic
        self.partitions = list(partitions)
        self.reads = []
        self.errors = []
        self.stopping = threading.Event()
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self._run, name="tail-reader", daemon=True)
        self.thread.start()

    def _run(self):
        c = Consumer(self.conf)
        try:
            c.assign([TopicPartition(self.topic, p, 0) for p in self.partitions])
            while not self.stopping.is_set():
                for m in c.consume(500, 0.2):
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            self.errors.append("%s (%s)" % (m.error().str(), m.error().name()))
                        continue
                    self.reads.append(Rec(m.partition(), m.offset(), m.value()))
        finally:
            c.close()

    def stop(self):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=20)


def check_reads(reads, log):
    """What a consumer saw while the faults happened, against the final
    log: every record it read is in the log at that offset (it never read
    above a high watermark, where records may still be truncated), and per
    partition it read offsets 0, 1, 2, ... with no gap and no repeat.
    Returns a list of problems."""
    problems = []
    at = {(p, r.offset): r.value for p, recs in log.items() for r in recs}
    phantom = ["p%d@%d %r (log has %r)" % (r.partition, r.offset, r.value[:24],
                                           (at.get((r.partition, r.offset)) or b"")[:24])
               for r in reads if at.get((r.partition, r.offset)) != r.value]
    if phantom:
        problems.append("records a consumer read that the log does not keep: %d, first %s"
                        % (len(phantom), "; ".join(phantom[:5])))
    nxt, order = {}, []
    for r in reads:
        want = nxt.get(r.partition, 0)
        if r.offset != want:
            order.append("p%d: read %d, expected %d" % (r.partition, r.offset, want))
        nxt[r.partition] = r.offset + 1
    if order:
        problems.append("a consumer's offsets jumped or repeated: %d, first %s" % (len(order), "; ".join(order[:5])))
    return problems


def utc(t):
    """time.time() as the broker logs print it (UTC, milliseconds)."""
    return time.strftime("%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def check(acks, log, run_id=None):
    """Compares acknowledgements with the records read back.  acks: [Ack]
    in arrival order; log: {partition: [Rec]} from read_back.  Returns a
    list of problems (strings), at most a few per kind; [] means the log
    keeps every acknowledged record exactly once, at its offset."""
    problems = []

    def report(kind, items):
        if items:
            problems.append("%s: %d, first %s" % (kind, len(items), "; ".join(map(str, items[:5]))))

    at = {}
    for p, recs in log.items():
        for r in recs:
            at[(p, r.offset)] = r.value

    lost, moved = [], []
    for a in acks:
        got = at.get((a.partition, a.offset))
        if got != a.value:
            (moved if got is not None else lost).append(
                "p%d@%d %r acknowledged at %s (log has %r)" % (a.partition, a.offset, a.value[:24], utc(a.t),
                                                              got and got[:24]))
    report("acknowledged records missing from the log", lost)
    report("acknowledged offsets holding another record", moved)

    dups, holes, alien = [], [], []
    for p, recs in sorted(log.items()):
        seen = {}
        for r in recs:
            if r.value in seen:
                dups.append("p%d %r at %d and %d" % (p, r.value[:24], seen[r.value], r.offset))
            seen[r.value] = r.offset
            if run_id is not None and not r.value.startswith(run_id + b":"):
                alien.append("p%d@%d %r" % (p, r.offset, r.value[:24]))
        for prev, cur in zip(recs, recs[1:]):
            if cur.offset != prev.offset + 1:
                holes.append("p%d: %d then %d" % (p, prev.offset, cur.offset))
    report("records duplicated in a partition", dups)
    report("holes in a partition's offsets", holes)
    report("records this writer never wrote", alien)

    order = []
    last = {}
    for a in acks:
        if a.partition in last and a.offset <= last[a.partition]:
            order.append("p%d: ack for %d after ack for %d" % (a.partition, a.offset, last[a.partition]))
        last[a.partition] = max(a.offset, last.get(a.partition, -1))
    report("acknowledgements out of offset order", order)
    return problems


# ---- network cuts: a private network namespace and per-node cgroups ------------
#
# A cut must stay on 127.0.0.1 and must not touch the host's firewall, so the
# test enters a network namespace of its own (setns on the calling thread;
# broker processes and client threads started afterwards inherit it), where
# it may add iptables rules freely: they vanish with the namespace.  Each
# broker runs in a cgroup (v2) of its own, so a rule can name the process a
# packet comes from:
#
#     OUTPUT -o lo -p tcp -m cgroup --path /<victim's cgroup> --dport <peer ports>  DROP
#     OUTPUT -o lo -p tcp -m cgroup --path /<peer's cgroup>   --dport <victim ports> DROP
#
# cuts the victim off from its peers in both directions (neither side's
# connections reach the other's listeners) while clients, in no such
# cgroup, still reach every broker.  Needs root, ip, iptables with the
# cgroup match, and a writable cgroup2 mount.

CLONE_NEWNET = 0x40000000
CGROUP2_CANDIDATES = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
CUT_CHAIN = "TM-CUT"


def _cgroup2_root():
    for d in CGROUP2_CANDIDATES:
        if all(os.path.exists(os.path.join(d, f)) for f in ("cgroup.procs", "cgroup.subtree_control")):
            return d
    return None


def netns_unavailable():
    """Why network cuts cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return "%s not installed" % tool
    if _cgroup2_root() is None:
        return "no cgroup2 mount"
    return None


def _run(*cmd):
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20)
    if p.returncode != 0:
        raise AssertionError("%s exited %d: %s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p.stdout


class NetCut:
    """A private network namespace the calling thread enters on enter() and
    leaves on leave(); cgroups for brokers; cut() and heal()."""

    def __init__(self, tag):
        self.name = "tm-e2e-%d-%s" % (os.getpid(), tag)
        self.cg_root = _cgroup2_root()
        self.cgroups = []
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.home_fd = None

    def _setns(self, fd):
        if self.libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns: %s" % os.strerror(e))

    def enter(self):
        _run("ip", "netns", "add", self.name)
        self.home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/%s" % self.name, os.O_RDONLY)
        try:
            self._setns(fd)
        finally:
            os.close(fd)
        _run("ip", "link", "set", "lo", "up")
        _run("iptables", "-N", CUT_CHAIN)
        _run("iptables", "-A", "OUTPUT", "-o", "lo", "-p", "tcp", "-j", CUT_CHAIN)

    def probe(self):
        """None when iptables here has the cgroup match, else why not."""
        p = subprocess.run(["iptables", "-A", CUT_CHAIN, "-m", "cgroup", "--path", "/", "-j", "RETURN"],
                           capture_output=True, text=True, timeout=20)
        if p.returncode != 0:
            return "iptables has no cgroup match: %s" % p.stderr.strip()
        self.heal()
        return None

    def cgroup(self, label):
        """Creates a cgroup; returns its path relative to the cgroup2 root."""
        rel = "/%s-%s" % (self.name, label)
        os.mkdir(self.cg_root + rel)
        self.cgroups.append(rel)
        return rel

    def wrap(self, cmd, rel):
        """The command line that joins cgroup `rel`, then execs cmd (same
        pid, so signals reach the broker)."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cg_root + rel] + list(cmd)

    def cut(self, victim_cg, victim_ports, peers):
        """peers: [(cgroup, ports)].  Drops every TCP packet from the victim
        to a peer's listeners and from a peer to the victim's."""
        vports = ",".join(map(str, victim_ports))
        for cg, ports in peers:
            _run("iptables", "-A", CUT_CHAIN, "-p", "tcp", "-m", "cgroup", "--path", victim_cg,
                 "-m", "multiport", "--dports", ",".join(map(str, ports)), "-j", "DROP")
            _run("iptables", "-A", CUT_CHAIN, "-p", "tcp", "-m", "cgroup", "--path", cg,
                 "-m", "multiport", "--dports", vports, "-j", "DROP")

    def heal(self):
        _run("iptables", "-F", CUT_CHAIN)

    def leave(self):
        """Back to the thread's own namespace; ends processes still in the
        private one (brokers this test started), deletes it and the cgroups."""
        if self.home_fd is not None:
            self._setns(self.home_fd)
            os.close(self.home_fd)
            self.home_fd = None
        try:
            pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True,
                                  timeout=20).stdout.split()
        except (OSError, subprocess.SubprocessError):
            pids = []
        for pid in pids:
            if pid == str(os.getpid()):
                continue
            try:
                os.kill(int(pid), 9)
            except (ValueError, OSError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
        for rel in self.cgroups:
            for _ in range(50):
                try:
                    os.rmdir(self.cg_root + rel)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # its last process is still exiting
