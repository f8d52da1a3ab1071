"""Fault-injection toolkit for the replication tests: a producer that writes
continuously with acks=all and records every acknowledgement, a reader that
reads a topic back to its high watermarks, and a checker that compares the two.

    w = AckedWriter(bootstrap, topic, partitions=3, run_id="seed-7")
    w.start()                      # background thread, a record every interval_s
    ... kill -9 / SIGSTOP / restart nodes ...
    w.stop()                       # stops producing, flushes, joins the thread
    log = read_back(bootstrap, topic, range(3))
    problems = check(w.acks, log)  # [] when nothing acknowledged was lost or doubled

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
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

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
            "request.timeout.ms": 10000,
            "socket.timeout.ms": 10000,
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
        now = time.time()
        with self.lock:
            if err is not None:
                if err.fatal():
                    self.fatal = self.fatal or str(err)
                self.failed.append((msg.value(), str(err)))
            else:
                self.acks.append(Ack(msg.partition(), msg.offset(), msg.value(), now))

    def _on_error(self, err):
        if err.fatal():
            with self.lock:
                self.fatal = self.fatal or str(err)

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
        self.unflushed = self.producer.flush(flush_timeout_s)
        return self.unflushed

    def unavailability(self, partition, t_fault, until):
        """The longest silence in `partition`'s acknowledgements between
        the last one before t_fault and `until` (a time by which they had
        resumed): (last ack before the gap, first ack after it), or None
        when there was no ack on one side.  Acknowledgements the old leader
        sent just before a fault may be reported just after it, so the gap,
        not the first ack after the fault, marks when the new leader began
        acknowledging."""
        with self.lock:
            times = sorted(a.t for a in self.acks if a.partition == partition and a.t <= until)
        before = [t for t in times if t <= t_fault]
        if not before or len(times) == len(before):
            return None
        times = times[len(before) - 1:]
        gap = max(zip(times, times[1:]), key=lambda ab: ab[1] - ab[0])
        return gap

    def summary(self):
        with self.lock:
            return "sent %d, acknowledged %d, failed %d%s, unflushed %d" % (
                self.sent, len(self.acks), len(self.failed),
                " (first: %s)" % self.failed[0][1] if self.failed else "", self.unflushed)


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
        todo = [p for p in partitions if ends[p] > starts[p]]
        if not todo:
            return out
        c.assign([TopicPartition(topic, p, starts[p]) for p in todo])
        deadline = time.monotonic() + timeout_s
        pending = set(todo)
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
                "p%d@%d %r (log has %r)" % (a.partition, a.offset, a.value[:20], got and got[:20]))
    report("acknowledged records missing from the log", lost)
    report("acknowledged offsets holding another record", moved)

    dups, holes, alien = [], [], []
    for p, recs in sorted(log.items()):
        seen = {}
        for r in recs:
            if r.value in seen:
                dups.append("p%d %r at %d and %d" % (p, r.value[:20], seen[r.value], r.offset))
            seen[r.value] = r.offset
            if run_id is not None and not r.value.startswith(run_id + b":"):
                alien.append("p%d@%d %r" % (p, r.offset, r.value[:20]))
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
