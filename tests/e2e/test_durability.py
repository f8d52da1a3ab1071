"""Acknowledged records survive kill -9: produce with acks=all and acks=1,
kill the broker with SIGKILL, start it again on the same directory, and every
acknowledged record is there at the offset it was acknowledged with; offsets
are contiguous and new records continue after them."""
import os
import random

import pytest

import rawkafka
from conftest import SEED, TARGET, Broker
from tmhelp import (consume, create_topic, produce, small_tmpfs, unique_topic, wait_for, watermarks,
                    wait_for_metadata)


def produce_batch(bootstrap, topic, partitions, acks, start, n, rnd):
    records = [{"partition": i % partitions, "key": b"k%d" % (start + i),
                "value": b"%d:" % (start + i) + bytes(rnd.randrange(256) for _ in range(rnd.randrange(200)))}
               for i in range(n)]
    acked = produce(bootstrap, topic, records, {"acks": acks, "linger.ms": 10,
                                                "compression.type": rnd.choice(["none", "lz4", "zstd"])})
    return {pos: r for pos, r in zip(acked, records)}


def check_log(bootstrap, topic, partitions, expected):
    """expected: {(partition, offset): record}.  Each partition holds exactly
    these records at these offsets, from offset 0 up."""
    for p in range(partitions):
        want = {o: r for (pp, o), r in expected.items() if pp == p}
        lo, hi = watermarks(bootstrap, topic, p)
        assert (lo, hi) == (0, len(want)), "seed %d: partition %d watermarks %r, expected (0, %d)" % (
            SEED, p, (lo, hi), len(want))
        got = consume(bootstrap, topic, [p], len(want), timeout=60)
        assert [m["offset"] for m in got] == sorted(want), "seed %d: partition %d offsets" % (SEED, p)
        for m in got:
            r = want[m["offset"]]
            assert (m["key"], m["value"]) == (r["key"], r["value"]), "seed %d: %s-%d@%d" % (
                SEED, topic, p, m["offset"])


def test_acked_records_survive_kill_9_and_offsets_continue(fresh_broker):
    """One topic produced with acks=all, one with acks=1, on one broker."""
    b = fresh_broker
    rnd = random.Random(SEED)
    partitions = 3
    topics = {acks: unique_topic("durable-acks%s" % acks) for acks in ("all", "1")}
    expected = {}
    for acks, topic in topics.items():
        create_topic(b.bootstrap, topic, partitions)
        expected[acks] = produce_batch(b.bootstrap, topic, partitions, acks, 0, 600, rnd)

    b.restart(hard=True)
    for acks, topic in topics.items():
        wait_for_metadata(b.bootstrap, topic, partitions)
        check_log(b.bootstrap, topic, partitions, expected[acks])

    for acks, topic in topics.items():
        more = produce_batch(b.bootstrap, topic, partitions, acks, 600, 300, rnd)
        for p in range(partitions):
            first_new = min(o for (pp, o) in more if pp == p)
            old_end = max(o for (pp, o) in expected[acks] if pp == p) + 1
            assert first_new == old_end, "seed %d: acks=%s partition %d continued at %d, not %d" % (
                SEED, acks, p, first_new, old_end)
        expected[acks].update(more)

    # A second crash right after the new appends, then a clean restart.
    b.restart(hard=True)
    b.restart()
    for acks, topic in topics.items():
        wait_for_metadata(b.bootstrap, topic, partitions)
        check_log(b.bootstrap, topic, partitions, expected[acks])


def test_topics_and_configs_survive_restart(fresh_broker):
    b = fresh_broker
    topic = unique_topic("persist-meta")
    create_topic(b.bootstrap, topic, 4, config={"retention.ms": "7200000"})
    b.restart(hard=True)
    wait_for_metadata(b.bootstrap, topic, 4)
    from tmhelp import admin
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    a = admin(b.bootstrap)
    cfg = a.describe_configs([res])[res].result(timeout=30)
    assert cfg["retention.ms"].value == "7200000"


def test_deleted_topic_stays_deleted_across_kill_9(fresh_broker):
    from tmhelp import admin, wait_for
    b = fresh_broker
    keep, gone = unique_topic("persist-keep"), unique_topic("persist-gone")
    create_topic(b.bootstrap, keep)
    create_topic(b.bootstrap, gone)
    produce(b.bootstrap, keep, [{"value": b"k%d" % i} for i in range(5)])
    produce(b.bootstrap, gone, [{"value": b"g%d" % i} for i in range(5)])
    a = admin(b.bootstrap)
    a.delete_topics([gone], operation_timeout=30)[gone].result(timeout=30)
    wait_for(lambda: gone not in a.list_topics(timeout=10).topics, 30, "topic deleted")
    b.restart(hard=True)
    wait_for_metadata(b.bootstrap, keep, 1)
    a = admin(b.bootstrap)
    # Ask for the deleted topic by name without creating it.
    md = a.list_topics(timeout=10)
    assert gone not in md.topics, "deleted topic %s came back after restart" % gone
    assert watermarks(b.bootstrap, keep, 0) == (0, 5)
    assert not os.path.exists(b.data_dir / ("%s-0" % gone)) or wait_for(
        lambda: not os.path.exists(b.data_dir / ("%s-0" % gone)), 90, "old partition directory removed")


def test_delete_records_start_offset_survives_restart(fresh_broker):
    """DeleteRecords moves the log start offset; after a clean restart the
    earliest offset is still there and reading starts from it."""
    from confluent_kafka import TopicPartition
    from tmhelp import admin
    b = fresh_broker
    topic = unique_topic("persist-delrec")
    create_topic(b.bootstrap, topic)
    produce(b.bootstrap, topic, [{"value": b"v%d" % i} for i in range(30)])
    a = admin(b.bootstrap)
    res = a.delete_records([TopicPartition(topic, 0, 17)], request_timeout=20)
    assert list(res.values())[0].result(timeout=30).low_watermark == 17
    b.restart()
    wait_for_metadata(b.bootstrap, topic, 1)
    assert watermarks(b.bootstrap, topic, 0) == (17, 30)
    got = consume(b.bootstrap, topic, [0], 13)
    assert [m["offset"] for m in got] == list(range(17, 30))


KAFKA_STORAGE_ERROR = 56


def test_full_disk_answers_storage_error_and_loses_nothing():
    """The data directory on a 12 MiB tmpfs: acks=all Produce requests of
    64 KiB until the disk is full.  The broker stays up and answers
    KAFKA_STORAGE_ERROR (alone, it has no broker to hand its partitions to);
    once there is room again and it is restarted, every acknowledged record
    is there at its offset and new ones follow them."""
    if TARGET != "tidemark":
        pytest.skip("Apache Kafka stops the broker when its only log directory fails")
    b = Broker(TARGET, {"log.segment.bytes": str(1 << 20)})
    try:
        with small_tmpfs(b.data_dir, "12m") as resize:
            try:
                fill_the_disk_then_read_back(b, resize)
            finally:
                b.stop()
    finally:
        b.cleanup()


def fill_the_disk_then_read_back(b, resize):
    b.start()
    topic = unique_topic("full-disk")
    create_topic(b.bootstrap, topic)
    acked, errors = {}, []
    filler = bytes(1000)
    with rawkafka.Conn(b.host, b.port, timeout=20) as c:
        for i in range(1000):  # 64 MiB offered to a 12 MiB disk
            values = [b"%d.%d:" % (i, j) + filler for j in range(64)]
            err, base = rawkafka.produce_v7(c, topic, 0, rawkafka.record_batch(
                [(None, v, []) for v in values]), acks=-1)
            if err:
                errors.append(err)
                if len(errors) == 3:
                    break
                continue
            assert not errors, "an append was acknowledged after the disk had failed"
            acked.update((base + j, v) for j, v in enumerate(values))
    assert errors == [KAFKA_STORAGE_ERROR] * 3, "errors once the disk was full: %r" % errors
    assert len(acked) > 1000, "only %d records fitted on a 12 MiB disk" % len(acked)
    assert b.died() is None, "the broker died when its disk filled:\n%s" % b.log_tail()
    with rawkafka.Conn(b.host, b.port, timeout=10) as c:
        assert rawkafka.api_versions(c, 0)[0] == 0, "ApiVersions after the disk filled"
    assert "No space left on device" in b.log_tail(200), "the log does not say why"
    wait_for(lambda: "no other live broker can take over" in b.log_tail(200), 10,
             "the log to say what the broker does about it")

    assert b.stop() == 1, "the exit status of a broker whose log directory failed"
    resize("128m")
    b.start()
    wait_for_metadata(b.bootstrap, topic, 1)
    assert watermarks(b.bootstrap, topic, 0) == (0, len(acked))
    got = consume(b.bootstrap, topic, [0], len(acked), timeout=90)
    assert [(m["offset"], m["value"]) for m in got] == sorted(acked.items())
    more = produce(b.bootstrap, topic, [{"value": b"after"}])
    assert more == [(0, len(acked))], "the next record after the full disk: %r" % more
