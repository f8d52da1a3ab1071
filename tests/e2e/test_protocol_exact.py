"""Exact protocol behaviour that clients depend on, checked with raw
requests: acks=0 gets no response, ApiVersions v3 answers with response
header v0, idempotent duplicates get their original offset and gaps
OUT_OF_ORDER_SEQUENCE_NUMBER, Fetch returns a first batch larger than
max_bytes (KIP-74), OFFSET_OUT_OF_RANGE past the log end, and Produce to an
unknown topic or partition fails without creating anything; the
controller listener serves only the quorum's and the controller's APIs."""
import struct
import time

import rawkafka
from rawkafka import Conn, Reader, Writer
from tmhelp import create_topic, unique_topic


def conn(broker):
    return Conn(broker.host, broker.port, timeout=15)


API_VERSIONS_V3 = Writer().compact_string("tm-e2e").compact_string("1.0").tags().build()


def read_api_keys(r):
    """An ApiVersions v3 body's error code (asserted 0) and api_keys array,
    from Reader r: {api_key: (min, max)}."""
    assert r.i16() == 0, "error code"
    keys = {}
    for _ in range(r.uvarint() - 1):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        r.skip_tags()
        keys[k] = (lo, hi)
    return keys


def test_api_versions_v3_has_response_header_v0_and_parses_exactly(broker):
    with conn(broker) as c:
        corr = c.send(rawkafka.API_API_VERSIONS, 3, API_VERSIONS_V3, flexible=True)
        frame = c.recv_frame()
    r = Reader(frame)
    assert r.i32() == corr
    # No tagged-field byte after the correlation id: the body starts here.
    keys = read_api_keys(r)
    r.i32()  # throttle_time_ms
    r.skip_tags()
    assert r.remaining() == 0, "%d bytes left after the ApiVersions v3 body" % r.remaining()
    assert keys[rawkafka.API_API_VERSIONS][1] >= 3
    assert keys[rawkafka.API_PRODUCE][0] <= 3 <= keys[rawkafka.API_PRODUCE][1]


def api_versions(conn):
    """ApiVersions v3 on `conn`: {api_key: (min, max)}."""
    return read_api_keys(conn.request(rawkafka.API_API_VERSIONS, 3, API_VERSIONS_V3, flexible=True))


def test_controller_listener_serves_only_the_quorums_apis(broker):
    """As Kafka's controller listener: ApiVersions there lists the quorum's
    and the controller's APIs but not the clients', a client API sent there
    closes the connection, and the client listener lists them all."""
    vote, describe_quorum = 52, 55
    with Conn(broker.host, broker.cport, timeout=15) as c:
        keys = api_versions(c)
        for k in (vote, describe_quorum, rawkafka.API_FETCH, rawkafka.API_CREATE_TOPICS):
            assert k in keys, "api %d missing on the controller listener: %s" % (k, sorted(keys))
        for k in (rawkafka.API_PRODUCE, rawkafka.API_METADATA, rawkafka.API_LIST_OFFSETS):
            assert k not in keys, "client api %d listed on the controller listener" % k
        c.send(rawkafka.API_METADATA, 9, Writer().uvarint(1).i8(1).i8(0).i8(0).tags().build(), flexible=True)
        assert c.closed_by_peer(10), "Metadata on the controller listener was answered"
    with conn(broker) as c:
        keys = api_versions(c)
    for k in (rawkafka.API_PRODUCE, rawkafka.API_METADATA, rawkafka.API_FETCH):
        assert k in keys, "api %d missing on the client listener" % k


def test_acks_0_produce_gets_no_response(broker):
    topic = unique_topic("acks0")
    create_topic(broker.bootstrap, topic)
    with conn(broker) as c:
        rawkafka.produce_v7(c, topic, 0, rawkafka.record_batch([(None, b"fire-and-forget", [])]), acks=0)
        corr = c.send(rawkafka.API_API_VERSIONS, 0, b"")
        frame = c.recv_frame()
        got = struct.unpack(">i", frame[:4])[0]
        assert got == corr, "first response has correlation id %d: the acks=0 produce (id %d) was answered" % (
            got, corr - 1)
        err, hw, records = rawkafka.fetch_v4(c, topic, 0, 0, max_wait_ms=2000)
    assert (err, hw) == (0, 1)
    assert [(b, n) for b, n, _ in rawkafka.batches(records)] == [(0, 1)]


def test_idempotent_duplicate_gets_original_offset_and_gap_is_out_of_order(broker):
    topic = unique_topic("idem-raw")
    create_topic(broker.bootstrap, topic)
    recs = [(b"k%d" % i, b"v%d" % i, []) for i in range(3)]
    with conn(broker) as c:
        # Retriable while the producer-id manager starts (COORDINATOR_LOAD_IN_PROGRESS,
        # COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR): clients retry, so do we.
        deadline = time.monotonic() + 20
        while True:
            err, pid, epoch = rawkafka.init_producer_id_v1(c)
            if err not in (14, 15, 16) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert err == 0 and pid >= 0 and epoch >= 0, (err, pid, epoch)
        first = rawkafka.record_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=0)
        assert rawkafka.produce_v7(c, topic, 0, first) == (0, 0)
        # The same batch again (a retry): answered with its original offset, not stored twice.
        assert rawkafka.produce_v7(c, topic, 0, first) == (0, 0), "duplicate batch"
        second = rawkafka.record_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=3)
        assert rawkafka.produce_v7(c, topic, 0, second) == (0, 3)
        gap = rawkafka.record_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=10)
        err, _ = rawkafka.produce_v7(c, topic, 0, gap)
        assert err == rawkafka.ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence gap: error %d, expected 45" % err
        err, hw, records = rawkafka.fetch_v4(c, topic, 0, 0)
    assert (err, hw) == (0, 6)
    assert [(b, n) for b, n, _ in rawkafka.batches(records)] == [(0, 3), (3, 3)]


def test_fetch_returns_first_batch_even_if_larger_than_max_bytes(broker):
    topic = unique_topic("kip74")
    create_topic(broker.bootstrap, topic)
    big = bytes(range(256)) * 400  # 100 KiB
    with conn(broker) as c:
        assert rawkafka.produce_v7(c, topic, 0, rawkafka.record_batch([(b"big", big, [])])) == (0, 0)
        assert rawkafka.produce_v7(c, topic, 0, rawkafka.record_batch([(b"small", b"s", [])])) == (0, 1)
        err, hw, records = rawkafka.fetch_v4(c, topic, 0, 0, max_bytes=1000, partition_max_bytes=1000)
    assert (err, hw) == (0, 2)
    got = rawkafka.batches(records)
    assert got and got[0][:2] == (0, 1), "no complete first batch in %d bytes" % len(records)
    assert big in got[0][2]


def test_fetch_naming_no_partition_is_answered_at_once(broker):
    """Nothing to wait for, so no long poll: Kafka answers at once, and the
    Java consumer sends such a fetch while it closes.  Held for max_wait_ms
    (60 s here), the answer would miss the connection's 10-second timeout."""
    with Conn(broker.host, broker.port, timeout=10) as c:
        body = Writer().i32(-1).i32(60000).i32(1).i32(1 << 20).i8(0).i32(0).build()
        r = c.request(rawkafka.API_FETCH, 4, body)
        r.i32()  # throttle_time_ms
        assert r.i32() == 0, "topics in the answer to a fetch naming none"


def test_fetch_past_log_end_is_offset_out_of_range(broker):
    topic = unique_topic("oor")
    create_topic(broker.bootstrap, topic)
    with conn(broker) as c:
        for i in range(3):
            assert rawkafka.produce_v7(c, topic, 0, rawkafka.record_batch([(None, b"x", [])]))[0] == 0
        err, hw, records = rawkafka.fetch_v4(c, topic, 0, 3, max_wait_ms=10)
        assert (err, hw, records) == (0, 3, b""), "fetch at the log end"
        err, hw, _ = rawkafka.fetch_v4(c, topic, 0, 1000, max_wait_ms=10)
        assert err == rawkafka.ERR_OFFSET_OUT_OF_RANGE, "fetch at 1000 of 3: error %d" % err
        err, hw, _ = rawkafka.fetch_v4(c, topic, 0, -5, max_wait_ms=10)
        assert err == rawkafka.ERR_OFFSET_OUT_OF_RANGE, "fetch at -5: error %d" % err


def test_produce_to_unknown_topic_or_partition(broker):
    topic = unique_topic("exists")
    create_topic(broker.bootstrap, topic)
    batch = rawkafka.record_batch([(None, b"x", [])])
    ghost = unique_topic("ghost")
    with conn(broker) as c:
        err, _ = rawkafka.produce_v7(c, topic, 7, batch)
        assert err == rawkafka.ERR_UNKNOWN_TOPIC_OR_PARTITION, "partition 7 of 1: error %d" % err
        err, _ = rawkafka.produce_v7(c, ghost, 0, batch)
        assert err == rawkafka.ERR_UNKNOWN_TOPIC_OR_PARTITION, "unknown topic: error %d" % err
        # Produce does not create topics (only Metadata does, when allowed).
        r = c.request(rawkafka.API_METADATA, 4, Writer().i32(1).string(ghost).i8(0).build())
        r.i32()
        for _ in range(r.i32()):
            r.i32(), r.string(), r.i32(), r.string()
        r.string()
        r.i32()
        assert r.i32() == 1
        assert r.i16() == rawkafka.ERR_UNKNOWN_TOPIC_OR_PARTITION, "ghost topic was created by Produce"


def test_batch_over_max_message_bytes_is_message_too_large(broker):
    topic = unique_topic("too-large")
    create_topic(broker.bootstrap, topic, config={"max.message.bytes": "100000"})
    with conn(broker) as c:
        big = rawkafka.record_batch([(None, b"x" * 150000, [])])
        err, _ = rawkafka.produce_v7(c, topic, 0, big)
        assert err == 10, "150 kB batch with max.message.bytes=100000: error %d, expected MESSAGE_TOO_LARGE (10)" % err
        ok = rawkafka.record_batch([(None, b"x" * 50000, [])])
        assert rawkafka.produce_v7(c, topic, 0, ok) == (0, 0)


def test_min_insync_replicas_above_replication_factor_is_capped(broker):
    """Kafka 4 (KIP-966) takes min(min.insync.replicas, replication factor)
    as the effective minimum ISR: on a one-replica topic with
    min.insync.replicas=2, acks=all still succeeds.  (A cluster-wide
    min.insync.replicas=2 must not break acks=all producers on RF 1 topics.)"""
    topic = unique_topic("min-isr")
    create_topic(broker.bootstrap, topic, config={"min.insync.replicas": "2"})
    with conn(broker) as c:
        res = rawkafka.produce_v7(c, topic, 0, rawkafka.record_batch([(None, b"all", [])]), acks=-1)
        assert res == (0, 0), "acks=all, RF 1, min.insync.replicas 2: (error, offset) %r; Kafka 4.1 gives (0, 0)" % (
            res,)
        assert rawkafka.produce_v7(c, topic, 0, rawkafka.record_batch([(None, b"one", [])]), acks=1) == (0, 1)
        err, hw, records = rawkafka.fetch_v4(c, topic, 0, 0)
    assert (err, hw) == (0, 2)
