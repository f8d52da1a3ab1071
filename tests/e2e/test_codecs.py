"""Compression codecs end to end: confluent-kafka (PyPI, current librdkafka),
kcat and Debian's confluent-kafka (librdkafka 2.0.2) produce with none, gzip,
snappy, lz4 and zstd; keys, headers and values come back byte for byte at
contiguous offsets, and the stored batches keep their codec."""
import json
import random

import pytest

from conftest import SEED
from tmhelp import (consume, create_topic, json_lines, kafka_tool, kcat, old_python, produce,
                    unique_topic)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def make_records(rnd, n):
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            value = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300)))
        elif kind == 1:
            value = (("record %d is compressible " % i) * rnd.randrange(1, 200)).encode()
        elif kind == 2:
            value = b""
        else:
            value = None
        key = None if i % 5 == 3 else ("k%05d" % i).encode()
        headers = [("idx", str(i).encode()), ("bin", bytes([i % 256, 0, 255]))]
        if i % 3 == 0:
            headers.append(("idx", b"duplicate-key"))
        if i % 7 == 0:
            headers.append(("nullval", None))
        out.append({"key": key, "value": value, "headers": headers})
    return out


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_round_trips_records_with_codec(broker, codec):
    rnd = random.Random(SEED + CODECS.index(codec))
    topic = unique_topic("codec-" + codec)
    create_topic(broker.bootstrap, topic)
    records = make_records(rnd, 200)
    acks = produce(broker.bootstrap, topic, records,
                   {"compression.type": codec, "acks": "all", "linger.ms": 20})
    assert sorted(o for _, o in acks) == list(range(len(records))), "seed %d: acked offsets" % SEED
    got = consume(broker.bootstrap, topic, [0], len(records))
    assert [m["offset"] for m in got] == list(range(len(records))), "seed %d" % SEED
    by_offset = {o: r for (_, o), r in zip(acks, records)}
    for m in got:
        r = by_offset[m["offset"]]
        assert m["key"] == r["key"], "seed %d offset %d key" % (SEED, m["offset"])
        assert m["value"] == r["value"], "seed %d offset %d value" % (SEED, m["offset"])
        assert [tuple(h) for h in m["headers"]] == r["headers"], "seed %d offset %d headers" % (
            SEED, m["offset"])


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_round_trips_keys_headers_values_with_codec(broker, codec):
    topic = unique_topic("kcat-" + codec)
    create_topic(broker.bootstrap, topic)
    n = 60
    lines = ["key-%d\tvalue %d %s" % (i, i, "z" * (i * 13 % 97)) for i in range(n)]
    kcat("-P", "-b", broker.bootstrap, "-t", topic, "-z", codec, "-K", "\t", "-X", "acks=all",
         "-H", "source=kcat", "-H", "codec=" + codec, input="\n".join(lines) + "\n")
    p = kcat("-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q")
    msgs = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    assert [m["offset"] for m in msgs] == list(range(n)), p.stdout[-2000:]
    for i, m in enumerate(msgs):
        assert m["key"] == "key-%d" % i
        assert m["payload"] == lines[i].split("\t", 1)[1]
        assert m["headers"] == ["source", "kcat", "codec", codec]


def test_old_confluent_kafka_round_trips_every_codec(broker):
    p = old_python("codecs_old.py", broker.bootstrap, unique_topic("oldrdk"), 40, timeout=200)
    results = {r["codec"]: r for r in json_lines(p.stdout)}
    assert sorted(results) == sorted(CODECS), p.stdout + p.stderr
    for codec, r in results.items():
        assert [x[0] for x in r["sent"]] == list(range(40)), codec
        assert r["read"] == r["sent"], codec


def test_stored_batches_keep_their_codec(broker):
    """kafka-dump-log reads the partition's first segment: each topic's
    batches are stored with the codec the producer used."""
    topics = {}
    for codec in CODECS:
        t = unique_topic("dump-" + codec)
        create_topic(broker.bootstrap, t)
        produce(broker.bootstrap, t, [{"value": b"x" * 100, "key": b"k"}] * 10,
                {"compression.type": codec, "linger.ms": 50})
        topics[codec] = t
    files = [str(broker.data_dir / ("%s-0" % t) / ("0" * 20 + ".log")) for t in topics.values()]
    p = kafka_tool("kafka-dump-log", "--files", ",".join(files))
    sections = p.stdout.split("Dumping ")[1:]
    assert len(sections) == len(files), p.stdout[-3000:] + p.stderr[-2000:]
    for codec, section in zip(topics, sections):
        batches = [line for line in section.splitlines() if "baseOffset:" in line]
        assert batches, "no batches in %s" % section[:500]
        want = "compresscodec: %s" % codec
        assert all(want in line.lower() for line in batches), "%s:\n%s" % (codec, section[:1500])


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_log_append_time_topic_stamps_broker_time(broker, codec):
    """message.timestamp.type=LogAppendTime: consumers see the broker's
    append time, not the producer's (an hour ago here), and the batch still
    passes the client's CRC check."""
    import time
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Producer
    topic = unique_topic("lat-" + codec)
    create_topic(broker.bootstrap, topic, config={"message.timestamp.type": "LogAppendTime"})
    old = int(time.time() * 1000) - 3600 * 1000
    before = int(time.time() * 1000) - 1000
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 20,
                  "log_level": 0})
    for i in range(5):
        p.produce(topic, b"v%d" % i, timestamp=old + i)
    assert p.flush(30) == 0
    after = int(time.time() * 1000) + 1000
    got = consume(broker.bootstrap, topic, [0], 5, config={"check.crcs": True})
    stamps = [(m["timestamp_type"], m["timestamp"]) for m in got]
    assert [m["value"] for m in got] == [b"v%d" % i for i in range(5)]
    for ttype, ts in stamps:
        assert ttype == TIMESTAMP_LOG_APPEND_TIME, stamps
        assert before <= ts <= after, "append time %d not within [%d, %d]" % (ts, before, after)


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_java_producer_bulk_batches_are_all_readable(broker, codec):
    """kafka-producer-perf-test sends full 16 kB+ batches, several in flight
    per connection (bounded: 20000 records of 512 bytes); every record is
    stored at contiguous offsets and reads back."""
    topic = unique_topic("bulk-" + codec)
    create_topic(broker.bootstrap, topic, 2)
    n = 20000
    p = kafka_tool("kafka-producer-perf-test", "--topic", topic, "--num-records", n, "--record-size", 512,
                   "--throughput", -1, "--producer-props", "bootstrap.servers=" + broker.bootstrap,
                   "acks=all", "compression.type=" + codec, "linger.ms=5", "batch.size=65536",
                   timeout=150)
    assert "%d records sent" % n in p.stdout, p.stdout[-2000:] + p.stderr[-2000:]
    from tmhelp import watermarks
    ends = [watermarks(broker.bootstrap, topic, part) for part in (0, 1)]
    assert all(lo == 0 for lo, _ in ends) and sum(hi for _, hi in ends) == n, ends
    for part, (_, hi) in enumerate(ends):
        got = consume(broker.bootstrap, topic, [part], hi, timeout=90)
        assert [m["offset"] for m in got] == list(range(hi)), "partition %d" % part
        assert all(len(m["value"]) == 512 for m in got)
