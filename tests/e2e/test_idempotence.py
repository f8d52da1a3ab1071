"""Idempotent producers: the Java producer (idempotent by default since
Kafka 3.0, here kafka-verifiable-producer) and confluent-kafka with
enable.idempotence=true.  Every acknowledged record is stored exactly once,
also when the broker restarts while they produce."""
import json
import subprocess
import threading
import time

import pytest
from confluent_kafka import Producer

from conftest import JAVA_CLI_OPTS, KAFKA_TOOL_CLASSES, java_classpath
from tmhelp import consume, create_topic, kafka_tool, unique_topic, watermarks


def stored_values(bootstrap, topic):
    """Every record of partition 0, as decoded values, with the count from
    the high watermark so nothing extra can hide."""
    lo, hi = watermarks(bootstrap, topic, 0)
    assert lo == 0
    got = consume(bootstrap, topic, [0], hi, timeout=90)
    offsets = [m["offset"] for m in got]
    assert offsets == list(range(hi)), "offsets not contiguous: %r" % offsets[:20]
    return [m["value"].decode() for m in got]


def check_exactly_once(values, acked, label):
    dupes = sorted({v for v in values if values.count(v) > 1}) if len(set(values)) != len(values) else []
    assert not dupes, "%s: duplicated records %r" % (label, dupes[:20])
    missing = sorted(set(acked) - set(values), key=lambda v: int(v) if v.isdigit() else v)
    assert not missing, "%s: acknowledged but missing %r" % (label, missing[:20])


def idempotent_config(tmp_path):
    """kafka-verifiable-producer sets retries=0, which turns the Java
    producer's idempotence off; this file turns it back on."""
    path = tmp_path / "idempotent-producer.properties"
    path.write_text("enable.idempotence=true\nretries=2147483647\nacks=all\n")
    return str(path)


def verifiable_producer(bootstrap, topic, count, throughput, config):
    cmd = (["java"] + JAVA_CLI_OPTS + ["-cp", java_classpath(), KAFKA_TOOL_CLASSES["kafka-verifiable-producer"],
                                        "--bootstrap-server", bootstrap, "--topic", topic,
                                        "--max-messages", str(count), "--throughput", str(throughput),
                                        "--acks", "-1", "--producer.config", config])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def acked_values(stdout):
    acked, failed = [], []
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        ev = json.loads(line)
        if ev.get("name") == "producer_send_success":
            acked.append(ev["value"])
        elif ev.get("name") == "producer_send_error":
            failed.append(ev)
    return acked, failed


def test_java_idempotent_producer_writes_each_record_once(broker, tmp_path):
    topic = unique_topic("idem-java")
    create_topic(broker.bootstrap, topic)
    p = kafka_tool("kafka-verifiable-producer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                   "--max-messages", "500", "--acks", "-1", "--producer.config", idempotent_config(tmp_path))
    acked, failed = acked_values(p.stdout)
    assert not failed and len(acked) == 500, p.stdout[-2000:]
    values = stored_values(broker.bootstrap, topic)
    assert len(values) == 500
    check_exactly_once(values, acked, "java")


def test_confluent_idempotent_producer_writes_each_record_once(broker):
    topic = unique_topic("idem-rdk")
    create_topic(broker.bootstrap, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                  "linger.ms": 2, "batch.num.messages": 50})
    acked, errors = [], []
    for i in range(1000):
        p.produce(topic, str(i).encode(), partition=0,
                  on_delivery=lambda err, msg: errors.append(err) if err else acked.append(msg.value().decode()))
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:5]
    values = stored_values(broker.bootstrap, topic)
    assert values == [str(i) for i in range(1000)], "order or content differs"
    check_exactly_once(values, acked, "confluent")


def test_java_idempotent_producer_across_broker_restart(fresh_broker, tmp_path):
    b = fresh_broker
    topic = unique_topic("idem-java-restart")
    create_topic(b.bootstrap, topic)
    proc = verifiable_producer(b.bootstrap, topic, 3000, 500, idempotent_config(tmp_path))
    try:
        time.sleep(3)
        b.restart()
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    acked, failed = acked_values(out)
    assert len(acked) > 0, "nothing acknowledged:\n%s\n%s" % (out[-2000:], err[-2000:])
    values = stored_values(b.bootstrap, topic)
    check_exactly_once(values, acked, "java across restart (%d acked, %d failed: %r)" % (
        len(acked), len(failed), failed[:3]))


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_confluent_idempotent_producer_across_broker_restart(fresh_broker, how):
    """After kill -9 the broker has no producer-state snapshot of the last
    moments: it must rebuild sequences from the log, or the producer's
    retries come back as duplicates or OUT_OF_ORDER_SEQUENCE_NUMBER."""
    b = fresh_broker
    topic = unique_topic("idem-rdk-restart")
    create_topic(b.bootstrap, topic)
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "message.timeout.ms": 120000})
    acked, errors = [], []
    stop = threading.Event()

    def on_delivery(err, msg):
        if err:
            errors.append(err)
        else:
            acked.append(msg.value().decode())

    def producing():
        for i in range(3000):
            if stop.is_set():
                return
            p.produce(topic, str(i).encode(), partition=0, on_delivery=on_delivery)
            p.poll(0)
            if i % 100 == 99:
                time.sleep(0.15)

    t = threading.Thread(target=producing)
    t.start()
    try:
        time.sleep(1.5)
        b.restart(hard=(how == "kill-9"))
    finally:
        t.join(timeout=120)
        stop.set()
    left = p.flush(150)
    assert left == 0, "%d records never delivered after the restart" % left
    assert not errors, "delivery errors after restart: %r" % errors[:5]
    values = stored_values(b.bootstrap, topic)
    check_exactly_once(values, acked, "confluent across restart")
    assert len(acked) == 3000


def test_kcat_idempotent_producer_writes_each_record_once(broker):
    """librdkafka 2.0.2 (kcat) with enable.idempotence=true."""
    from tmhelp import kcat
    topic = unique_topic("idem-kcat")
    create_topic(broker.bootstrap, topic)
    lines = [str(i) for i in range(300)]
    kcat("-P", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-X", "enable.idempotence=true",
         "-X", "linger.ms=5", input="\n".join(lines) + "\n")
    values = stored_values(broker.bootstrap, topic)
    assert values == lines
