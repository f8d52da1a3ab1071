"""ListOffsets (earliest, latest, by timestamp, max timestamp) through
confluent-kafka's AdminClient and kafka-python's consumer, and DeleteRecords
moving the earliest offset."""
import time

import pytest
from confluent_kafka import TopicPartition, KafkaException
from confluent_kafka.admin import OffsetSpec
import kafka.errors
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KTP

from tmhelp import admin, consume, create_topic, produce, unique_topic

N = 10
# Timestamps an hour ago, one second apart, except record 6 which carries the
# largest one (so max-timestamp is not simply the last record).
BASE_TS = int(time.time() * 1000) - 3600 * 1000


def ts_of(i):
    return BASE_TS + (N + 5) * 1000 if i == 6 else BASE_TS + i * 1000


def list_offsets(bootstrap, topic, spec):
    a = admin(bootstrap)
    tp = TopicPartition(topic, 0)
    fut = a.list_offsets({tp: spec}, request_timeout=20)
    return fut[tp].result(timeout=30)


@pytest.fixture(scope="module")
def timed_topic(broker):
    from confluent_kafka import Producer
    topic = unique_topic("ts")
    create_topic(broker.bootstrap, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "acks": "all"})
    errors = []
    for i in range(N):
        p.produce(topic, b"r%d" % i, key=b"%d" % i, timestamp=ts_of(i),
                  on_delivery=lambda err, msg: err and errors.append(err))
        p.flush(30)
    assert not errors, errors
    return topic


def test_list_offsets_earliest_and_latest(broker, timed_topic):
    assert list_offsets(broker.bootstrap, timed_topic, OffsetSpec.earliest()).offset == 0
    assert list_offsets(broker.bootstrap, timed_topic, OffsetSpec.latest()).offset == N


def test_list_offsets_by_timestamp_finds_first_record_at_or_after(broker, timed_topic):
    r = list_offsets(broker.bootstrap, timed_topic, OffsetSpec.for_timestamp(ts_of(3) + 500))
    assert (r.offset, r.timestamp) == (4, ts_of(4))
    r = list_offsets(broker.bootstrap, timed_topic, OffsetSpec.for_timestamp(ts_of(0)))
    assert (r.offset, r.timestamp) == (0, ts_of(0))
    # Later than every record: no offset.
    r = list_offsets(broker.bootstrap, timed_topic, OffsetSpec.for_timestamp(ts_of(6) + 1))
    assert r.offset == -1


def test_list_offsets_max_timestamp_points_at_that_record(broker, timed_topic):
    r = list_offsets(broker.bootstrap, timed_topic, OffsetSpec.max_timestamp())
    assert (r.offset, r.timestamp) == (6, ts_of(6))


def test_kafka_python_offsets_for_times_and_end_offsets(broker, timed_topic):
    c = KafkaConsumer(bootstrap_servers=[broker.bootstrap], group_id=None,
                      request_timeout_ms=20000)
    try:
        tp = KTP(timed_topic, 0)
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: N}
        got = c.offsets_for_times({tp: ts_of(2) - 1})
        assert (got[tp].offset, got[tp].timestamp) == (2, ts_of(2))
        # The first offset whose timestamp is at or after the target: record
        # 6 carries a later timestamp than record 7.
        got = c.offsets_for_times({tp: ts_of(7) - 1})
        assert (got[tp].offset, got[tp].timestamp) == (6, ts_of(6))
        assert c.offsets_for_times({tp: ts_of(6) + 1}) == {tp: None}
    finally:
        c.close()


def test_delete_records_moves_earliest_offset(broker):
    b = broker.bootstrap
    topic = unique_topic("delrec")
    create_topic(b, topic)
    produce(b, topic, [{"value": b"v%d" % i} for i in range(20)])
    a = admin(b)
    res = a.delete_records([TopicPartition(topic, 0, 12)], request_timeout=20)
    for tp, fut in res.items():
        r = fut.result(timeout=30)
        assert r.low_watermark == 12, "low watermark after DeleteRecords: %r" % r
    assert list_offsets(b, topic, OffsetSpec.earliest()).offset == 12
    assert list_offsets(b, topic, OffsetSpec.latest()).offset == 20
    got = consume(b, topic, [0], 8)
    assert [m["offset"] for m in got] == list(range(12, 20))
    assert got[0]["value"] == b"v12"


def test_delete_records_beyond_high_watermark_is_offset_out_of_range(broker):
    b = broker.bootstrap
    topic = unique_topic("delrec-oor")
    create_topic(b, topic)
    produce(b, topic, [{"value": b"v%d" % i} for i in range(3)])
    ka = KafkaAdminClient(bootstrap_servers=[b], request_timeout_ms=20000)
    try:
        with pytest.raises(kafka.errors.OffsetOutOfRangeError):
            ka.delete_records({KTP(topic, 0): 10}, timeout_ms=20000)
    finally:
        ka.close()
    assert list_offsets(b, topic, OffsetSpec.earliest()).offset == 0
