"""Connections from this host: Tidemark gives them
tidemark.loopback.congestion.control (reno unless set), because a pacing
congestion control such as bbr spaces a Fetch answer out on the loopback
device, where there is no queue to protect (docs/benchmarks.md).  `ss -ti`
shows each socket's congestion control; these tests read the broker's side
of their own connection."""
import shutil
import subprocess

import pytest

import rawkafka
from rawkafka import Conn
from conftest import Broker, TARGET

pytestmark = pytest.mark.skipif(TARGET != "tidemark", reason="a Tidemark setting")


def system_congestion_control():
    with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
        return f.read().strip()


def broker_side_congestion_control(broker, client):
    """The congestion control of the broker's end of client's connection."""
    if not shutil.which("ss"):
        pytest.skip("ss (iproute2) is not installed")
    client_port = client.sock.getsockname()[1]
    out = subprocess.run(["ss", "-tinH", "state", "established",
                          "( sport = :%d and dport = :%d )" % (broker.port, client_port)],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 2, "ss found no single broker-side socket for port %d:\n%s" % (client_port, out)
    return set(lines[1].split())


def api_versions_answered(conn):
    err, keys = rawkafka.api_versions(conn, 0)  # the connection is accepted and served
    assert err == 0 and keys, "ApiVersions v0: error %d, %d api keys" % (err, len(keys))


def test_loopback_connection_uses_reno_by_default(broker):
    with Conn(broker.host, broker.port, timeout=10.0) as c:
        api_versions_answered(c)
        info = broker_side_congestion_control(broker, c)
    assert "reno" in info, "broker's socket: %s" % " ".join(sorted(info))


def test_empty_setting_keeps_the_systems_congestion_control():
    b = Broker(TARGET, {"tidemark.loopback.congestion.control": ""})
    try:
        b.start()
        with Conn(b.host, b.port, timeout=10.0) as c:
            api_versions_answered(c)
            info = broker_side_congestion_control(b, c)
        want = system_congestion_control()
        assert want in info, "system's %s, broker's socket: %s" % (want, " ".join(sorted(info)))
    finally:
        b.cleanup()


def test_unknown_congestion_control_refuses_to_start():
    b = Broker(TARGET, {"tidemark.loopback.congestion.control": "nosuchcc"})
    try:
        p = subprocess.run(b.command(), capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL)
        out = p.stdout + p.stderr
        assert p.returncode != 0, "started with an unknown congestion control:\n%s" % out
        assert "tidemark.loopback.congestion.control=nosuchcc" in out, out
    finally:
        b.cleanup()
