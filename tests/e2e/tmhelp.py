"""Helpers shared by the end-to-end tests: run Kafka's Java CLI tools, kcat,
and scenario scripts under Debian's /usr/bin/python3 (old kafka-python 2.0.2
and old confluent-kafka); create topics, produce and read back with
confluent-kafka (PyPI).

Every runner has a timeout and, on failure, raises AssertionError quoting the
command, its exit status and its output, so a failing test shows what the
user would have seen.
"""
import contextlib
import json
import os
import subprocess
import time
import uuid

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING, KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import E2E_DIR, JAVA_CLI_OPTS, KAFKA_TOOL_CLASSES, java_classpath

OLD_PYTHON = "/usr/bin/python3"


def unique_topic(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def _run(cmd, input=None, timeout=90, check=True, what=None):
    try:
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("%s timed out after %ss\nstdout:\n%s\nstderr:\n%s" % (
            what or " ".join(cmd), timeout, e.stdout, e.stderr))
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s" % (
            what or " ".join(cmd), p.returncode, p.stdout[-4000:], p.stderr[-4000:]))
    return p


def kafka_tool(name, *args, input=None, timeout=90, check=True):
    """Runs one of Kafka's bin/ scripts by name, e.g.
    kafka_tool("kafka-topics", "--bootstrap-server", b, "--list")."""
    cls = KAFKA_TOOL_CLASSES[name]
    cmd = ["java"] + JAVA_CLI_OPTS + ["-cp", java_classpath(), cls] + [str(a) for a in args]
    return _run(cmd, input=input, timeout=timeout, check=check, what="%s %s" % (name, " ".join(map(str, args))))


def kcat(*args, input=None, timeout=60, check=True):
    return _run(["kcat"] + [str(a) for a in args], input=input, timeout=timeout, check=check)


def old_python(script, *args, timeout=120, check=True):
    """Runs tests/e2e/clients/SCRIPT with Debian's python3 (python3-kafka
    2.0.2, python3-confluent-kafka with librdkafka 2.0.2)."""
    return _run([OLD_PYTHON, str(E2E_DIR / "clients" / script)] + [str(a) for a in args],
                timeout=timeout, check=check)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# librdkafka logs connection failures on stderr from its own threads, also
# after a test ended; the tests report what failed, so keep it quiet.
QUIET = {"log_level": 0}


def admin(bootstrap):
    return AdminClient(dict(QUIET, **{"bootstrap.servers": bootstrap}))


def create_topic(bootstrap, name, partitions=1, config=None, timeout=30):
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                   config=config or {})], operation_timeout=timeout)
    fs[name].result(timeout=timeout)
    wait_for_metadata(bootstrap, name, partitions)


def wait_for_metadata(bootstrap, name, partitions, timeout=30):
    """Waits until Metadata shows the topic with its partitions and a leader
    for each."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions \
                and all(p.leader >= 0 for p in t.partitions.values()):
            return
        last = t and (t.error, {p: v.leader for p, v in t.partitions.items()})
        time.sleep(0.2)
    raise AssertionError("topic %s: metadata never showed %d partitions with leaders (last %r)"
                         % (name, partitions, last))


def produce(bootstrap, topic, records, config=None, timeout=60):
    """records: list of dicts with value, and optional key, partition, headers.
    Returns the delivered (partition, offset) per record, in order."""
    conf = dict(QUIET, **{"bootstrap.servers": bootstrap, "linger.ms": 5})
    conf.update(config or {})
    p = Producer(conf)
    results = [None] * len(records)
    errors = []

    def cb(i):
        def done(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                results[i] = (msg.partition(), msg.offset())
        return done

    for i, r in enumerate(records):
        kw = {k: r[k] for k in ("key", "headers", "partition") if k in r}
        while True:
            try:
                p.produce(topic, r.get("value"), on_delivery=cb(i), **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(timeout)
    assert not errors, "delivery errors: %r" % errors[:5]
    assert left == 0, "%d records not delivered within %ss" % (left, timeout)
    return results


def consume(bootstrap, topic, partitions, count, timeout=60, config=None):
    """Reads `count` records from the beginning of the given partitions with
    assign() (no group membership).  Returns dicts: partition, offset, key,
    value, headers, timestamp."""
    conf = dict(QUIET, **{"bootstrap.servers": bootstrap, "group.id": "tm-e2e-reader-" + uuid.uuid4().hex[:6],
                          "enable.auto.commit": False, "enable.partition.eof": False})
    conf.update(config or {})
    c = Consumer(conf)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError("consume error: %s" % m.error())
            out.append({"partition": m.partition(), "offset": m.offset(), "key": m.key(),
                        "value": m.value(), "headers": m.headers() or [],
                        "timestamp": m.timestamp()[1], "timestamp_type": m.timestamp()[0]})
        assert len(out) >= count, "read %d of %d records from %s within %ss" % (
            len(out), count, topic, timeout)
        return out
    finally:
        c.close()


def watermarks(bootstrap, topic, partition, timeout=20):
    c = Consumer(dict(QUIET, **{"bootstrap.servers": bootstrap, "group.id": "tm-e2e-wm"}))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
    finally:
        c.close()


def assert_broker_serves(broker, label=""):
    """A normal produce and read-back still works (used after bad input)."""
    assert broker.running(), "broker process exited %s; log tail:\n%s" % (label, broker.log_tail())
    topic = unique_topic("health")
    create_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, [{"key": b"k", "value": b"still-alive"}])
    got = consume(broker.bootstrap, topic, [0], 1, timeout=30)
    assert got[0]["value"] == b"still-alive"


def wait_for(cond, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("%s: not within %ss (last: %r)" % (what, timeout, last))


def wait_for_value(fn, want, timeout, what, interval=0.5):
    """Polls fn() until it returns want; fails quoting the last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == want:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError("%s: wanted %r within %ss, last %r" % (what, want, timeout, got))
        time.sleep(interval)


@contextlib.contextmanager
def small_tmpfs(path, size):
    """A tmpfs of `size` (mount's notation, e.g. "12m") mounted on `path` for
    the with-block, unmounted after it: a disk that fills.  Skips the test
    without root or when mount refuses.  Yields resize(size), which remounts
    it larger or smaller in place."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("mount -t tmpfs: %s" % p.stderr.strip())

    def resize(new_size):
        subprocess.run(["mount", "-o", "remount,size=" + new_size, str(path)], check=True)
    try:
        yield resize
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)
