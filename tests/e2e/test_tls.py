"""TLS listeners: clients connect over SSL with the broker's PEM keystore,
the same settings Apache Kafka takes (ssl.keystore.type=PEM)."""
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import Broker, TARGET, free_port

CERT_DIR = Path(tempfile.mkdtemp(prefix="tm-e2e-tls-"))


def make_keystore():
    key, cert = CERT_DIR / "key.pem", CERT_DIR / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    keystore = CERT_DIR / "keystore.pem"
    keystore.write_bytes(key.read_bytes() + cert.read_bytes())
    return keystore, cert


@pytest.fixture(scope="module")
def tls_broker():
    keystore, cert = make_keystore()
    ssl_port = free_port()
    b = Broker(TARGET)
    b.overrides.update({
        "listeners": "PLAINTEXT://127.0.0.1:%d,SSL://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d" % (b.port, ssl_port, b.cport),
        "advertised.listeners": "PLAINTEXT://127.0.0.1:%d,SSL://127.0.0.1:%d" % (b.port, ssl_port),
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
    })
    try:
        b.start()
        yield b, "127.0.0.1:%d" % ssl_port, cert
    finally:
        b.cleanup()


def ssl_conf(bootstrap, cert):
    return {"bootstrap.servers": bootstrap, "security.protocol": "ssl", "ssl.ca.location": str(cert)}


def test_produce_and_consume_over_tls(tls_broker):
    b, ssl_bootstrap, cert = tls_broker
    topic = "tls-roundtrip"
    p = Producer(dict(ssl_conf(ssl_bootstrap, cert), **{"acks": "all"}))
    errors = []
    for i in range(200):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(30) == 0
    assert errors == []
    c = Consumer(dict(ssl_conf(ssl_bootstrap, cert), **{"group.id": "tls-g", "auto.offset.reset": "earliest"}))
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < 200 and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append((m.key(), m.value(), m.offset()))
    c.close()
    assert [g[2] for g in got] == list(range(200))
    assert got[17][:2] == (b"k17", b"v17")


def test_large_pipelined_requests_over_tls(tls_broker):
    """Requests larger than one socket read, many in flight: the broker reads
    TLS records ahead into OpenSSL's buffer, pauses reading at its in-flight
    limit and resumes; every record must still arrive, whole and in order."""
    b, ssl_bootstrap, cert = tls_broker
    topic = "tls-large"
    p = Producer(dict(ssl_conf(ssl_bootstrap, cert), **{
        "acks": "1", "linger.ms": 5, "message.max.bytes": 4 * 1024 * 1024,
        "batch.size": 1000000}))  # one record per batch: under message.max.bytes
    values = [bytes([i]) * (900 * 1024 - i) for i in range(48)]  # ~42 MiB in all
    errors = []
    for v in values:
        p.produce(topic, value=v, on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(120) == 0
    assert errors == []
    c = Consumer(dict(ssl_conf(ssl_bootstrap, cert), **{"group.id": "tls-large-g",
                                                          "fetch.max.bytes": 8 * 1024 * 1024}))
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 60
    while len(got) < len(values) and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    assert len(got) == len(values)
    assert got == values


def test_tls_metadata_advertises_the_ssl_listener(tls_broker):
    b, ssl_bootstrap, cert = tls_broker
    p = Producer(ssl_conf(ssl_bootstrap, cert))
    md = p.list_topics(timeout=20)
    ports = sorted(br.port for br in md.brokers.values())
    assert ports == [int(ssl_bootstrap.rsplit(":", 1)[1])]


def test_plaintext_bytes_on_the_tls_port_do_not_hurt_the_broker(tls_broker):
    b, ssl_bootstrap, cert = tls_broker
    host, port = ssl_bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\x00\x00")
        s.settimeout(5)
        try:
            s.recv(100)
        except (socket.timeout, ConnectionResetError):
            pass
    # still serving TLS clients
    md = Producer(ssl_conf(ssl_bootstrap, cert)).list_topics(timeout=20)
    assert md.brokers
    assert b.died() is None
