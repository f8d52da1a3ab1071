"""Bad input on the wire, sent with raw sockets: the broker closes or answers
that one connection with an error, never crashes, and keeps serving normal
clients afterwards."""
import os
import random
import socket
import struct

import pytest

import rawkafka
from rawkafka import Conn, Writer
from tmhelp import assert_broker_serves, create_topic, unique_topic, consume
from conftest import SEED


def conn(broker, timeout=10.0):
    return Conn(broker.host, broker.port, timeout=timeout)


def test_garbage_bytes_close_the_connection_only(broker):
    rnd = random.Random(SEED)
    junk = bytes(rnd.randrange(256) for _ in range(64))
    with conn(broker) as c:
        # A small plausible length, then noise where the header should be.
        c.send_raw(struct.pack(">i", len(junk)) + junk)
        assert c.closed_by_peer(10), "seed %d: connection still open after garbage" % SEED
    with conn(broker) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.closed_by_peer(10), "connection still open after an HTTP request"
    assert_broker_serves(broker, "after garbage")


def test_frame_over_socket_request_max_bytes_is_refused(broker):
    with conn(broker) as c:
        # 200 MiB announced, above the 100 MiB default; the bytes never come.
        c.send_raw(struct.pack(">i", 200 * 1024 * 1024) + b"\x00\x12\x00\x00")
        assert c.closed_by_peer(10), "broker kept waiting for a 200 MiB frame"
    with conn(broker) as c:
        c.send_raw(struct.pack(">i", -5))
        assert c.closed_by_peer(10), "broker kept a connection that sent a negative length"
    assert_broker_serves(broker, "after an oversized frame")


def test_truncated_frame_then_close(broker):
    with conn(broker) as c:
        c.send_raw(struct.pack(">i", 100) + b"\x00\x03\x00\x04\x00\x00\x00\x07\x00")
    with conn(broker) as c:
        # Only half of the length prefix.
        c.send_raw(b"\x00\x00")
    assert_broker_serves(broker, "after truncated frames")


def test_unknown_api_key_closes_or_answers_error(broker):
    with conn(broker) as c:
        c.send(999, 0, b"")
        try:
            frame = c.recv_frame()
        except socket.timeout:
            pytest.fail("no answer and no close within 10 s for api key 999")
        except ConnectionResetError:
            frame = None
        if frame is not None:
            # An answer must at least echo the correlation id and not be a success.
            r = rawkafka.Reader(frame)
            assert r.i32() == c.corr
    assert_broker_serves(broker, "after an unknown api key")


def test_api_versions_unsupported_version_gets_v0_error_35(broker):
    with conn(broker) as c:
        _, supported = rawkafka.api_versions(c, 0)
        assert rawkafka.API_API_VERSIONS in supported
        lo, hi = supported[rawkafka.API_API_VERSIONS]
        # v99 with a v2 header and a v3-shaped body; the broker must not parse it.
        body = Writer().compact_string("tm-e2e").compact_string("1.0").tags().build()
        corr = c.send(rawkafka.API_API_VERSIONS, 99, body, flexible=True)
        frame = c.recv_frame()
        assert frame is not None, "connection closed instead of answering ApiVersions v99"
        # Response header v0 + ApiVersions v0: error 35 and exactly the
        # versions of ApiVersions itself (KIP-511), nothing after.
        expected = (struct.pack(">i", corr) + struct.pack(">h", 35) + struct.pack(">i", 1)
                    + struct.pack(">hhh", 18, lo, hi))
        assert frame == expected, "ApiVersions v99 answer %s, expected %s" % (frame.hex(), expected.hex())
        # The same connection is still usable with a version it offered.
        err, keys = rawkafka.api_versions(c, min(hi, 3))
        assert err == 0 and rawkafka.API_PRODUCE in keys


def test_produce_with_corrupt_crc_is_corrupt_message(broker):
    topic = unique_topic("crc")
    create_topic(broker.bootstrap, topic)
    good = rawkafka.record_batch([(b"k1", b"v1", [("h", b"x")]), (b"k2", b"v2", [])])
    bad = rawkafka.corrupt_batch_payload(good)
    with conn(broker) as c:
        err, _ = rawkafka.produce_v7(c, topic, 0, bad)
        assert err == rawkafka.ERR_CORRUPT_MESSAGE, "corrupt CRC: error %d, expected 2" % err
        err, base = rawkafka.produce_v7(c, topic, 0, good)
        assert err == 0 and base == 0, "good batch after bad: error %d base %d" % (err, base)
    got = consume(broker.bootstrap, topic, [0], 2, timeout=30)
    assert [(m["offset"], m["key"], m["value"]) for m in got] == [(0, b"k1", b"v1"), (1, b"k2", b"v2")]
    assert got[0]["headers"] == [("h", b"x")]
    assert_broker_serves(broker, "after a corrupt batch")


@pytest.mark.parametrize("name", ["bad/name", "..", ".", "x" * 250, "", "sp ace"],
                         ids=["slash", "dotdot", "dot", "250chars", "empty", "space"])
def test_create_topics_invalid_name_is_invalid_topic_exception(broker, name):
    with conn(broker) as c:
        res = rawkafka.create_topics_v4(c, [name])
    assert name in res, "no result for %r: %r" % (name, res)
    err, msg = res[name]
    assert err == rawkafka.ERR_INVALID_TOPIC_EXCEPTION, "CreateTopics %r: error %d (%s), expected 17" % (
        name, err, msg)
    assert broker.running()


def test_broker_survives_all_bad_input(broker):
    assert_broker_serves(broker, "at the end of the bad input tests")
