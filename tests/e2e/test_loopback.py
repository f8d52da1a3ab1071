"""Connections with this same host: Tidemark gives them
tidemark.loopback.congestion.control (reno unless set), because a pacing
congestion control such as bbr spaces a Fetch answer out on the loopback
device, where there is no queue to protect (docs/benchmarks.md, item 49).
Connections with other hosts keep the system's.  `ss -ti` shows each
socket's congestion control; these tests read the broker's sockets."""
import os
import shutil
import subprocess
import sys

import pytest

import rawkafka
from rawkafka import Conn
from cluster import Cluster
from conftest import Broker, TARGET

pytestmark = pytest.mark.skipif(TARGET != "tidemark", reason="a Tidemark setting")
KEY = "tidemark.loopback.congestion.control"


def system_cc():
    with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
        return f.read().strip()


def other_cc():
    """A congestion control this process may pick that is not the system's:
    reno unless that is the system's.  Skips when there is none."""
    with open("/proc/sys/net/ipv4/tcp_allowed_congestion_control") as f:
        allowed = f.read().split()
    sysc = system_cc()
    for cc in ["reno"] + allowed:  # reno may always be picked
        if cc != sysc:
            return cc
    pytest.skip("no congestion control other than the system's (%s) is allowed here" % sysc)


def sockets(filter_expr):
    """[(socket line, set of info tokens)] of the established TCP sockets
    matching an ss filter."""
    if not shutil.which("ss"):
        pytest.skip("ss (iproute2) is not installed")
    out = subprocess.run(["ss", "-tinH", "state", "established", filter_expr],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    lines = [l for l in out.splitlines() if l.strip()]
    return [(lines[i], set(lines[i + 1].split())) for i in range(0, len(lines) - 1, 2)]


def broker_side_cc(port, client_port, want):
    found = sockets("( sport = :%d and dport = :%d )" % (port, client_port))
    assert len(found) == 1, "ss found %d broker-side sockets for client port %d" % (len(found), client_port)
    info = found[0][1]
    assert want in info, "broker's socket should use %s: %s" % (want, " ".join(sorted(info)))


def served(conn):
    err, keys = rawkafka.api_versions(conn, 0)  # the connection is accepted and served
    assert err == 0 and keys, "ApiVersions v0: error %d, %d api keys" % (err, len(keys))


@pytest.fixture
def make_broker():
    made = []

    def make(overrides):
        b = Broker(TARGET, overrides)
        made.append(b)
        b.start()
        return b
    yield make
    for b in made:
        b.cleanup()


def test_loopback_connection_uses_the_configured_congestion_control(make_broker):
    cc = other_cc()
    b = make_broker({KEY: cc})
    with Conn(b.host, b.port, timeout=10.0) as c:
        served(c)
        broker_side_cc(b.port, c.sock.getsockname()[1], cc)


def test_default_is_reno(broker):
    if system_cc() == "reno":
        pytest.skip("the system's congestion control is reno already")
    with Conn(broker.host, broker.port, timeout=10.0) as c:
        served(c)
        broker_side_cc(broker.port, c.sock.getsockname()[1], "reno")


def test_empty_setting_keeps_the_systems(make_broker):
    b = make_broker({KEY: ""})
    with Conn(b.host, b.port, timeout=10.0) as c:
        served(c)
        broker_side_cc(b.port, c.sock.getsockname()[1], system_cc())


def test_connections_between_nodes_use_it_both_ways():
    """Accepted sockets inherit it from the listener; a node's own outgoing
    connections (Raft, replication, heartbeats) get it before connecting."""
    cc = other_cc()
    c = Cluster(2, {KEY: cc})
    try:
        c.start()
        ports = [p for n in c.nodes.values() for p in (n.port, n.cport)]
        expr = "( " + " or ".join("sport = :%d or dport = :%d" % (p, p) for p in ports) + " )"
        found = sockets(expr)
        assert found, "no connection between the nodes"
        wrong = [line for line, info in found if cc not in info]
        assert not wrong, "sockets without %s:\n%s" % (cc, "\n".join(wrong))
    finally:
        c.cleanup()


CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_connection_from_another_host_keeps_the_systems(make_broker):
    """A client in a network namespace of its own, over a veth pair: another
    host as far as the broker can tell."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and ip(8) for a network namespace")
    cc = other_cc()
    ns = "tm-e2e-%d-cc" % os.getpid()
    net = 4 * (os.getpid() % 64)  # a /30 in TEST-NET-1 (192.0.2.0/24), never routed
    host_ip, ns_ip = "192.0.2.%d" % (net + 1), "192.0.2.%d" % (net + 2)
    veth = "tmcc%d" % (os.getpid() % 100000)

    def ip(*args):
        subprocess.run(["ip"] + list(args), check=True, capture_output=True, timeout=20)

    try:
        ip("netns", "add", ns)
        ip("link", "add", veth, "type", "veth", "peer", "name", veth + "p")
        ip("link", "set", veth + "p", "netns", ns)
        ip("addr", "add", host_ip + "/30", "dev", veth)
        ip("link", "set", veth, "up")
        ip("-n", ns, "addr", "add", ns_ip + "/30", "dev", veth + "p")
        ip("-n", ns, "link", "set", veth + "p", "up")
        ip("-n", ns, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as e:
        subprocess.run(["ip", "link", "del", veth], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        pytest.skip("cannot make a network namespace: %s" % (e.stderr or b"").decode().strip())
    try:
        b = Broker(TARGET, {KEY: cc})
        # The broker listens on the veth address only; the harness reaches it
        # there from this host (the same address at both ends: local).
        b.host = host_ip
        b.overrides.update({
            "listeners": "PLAINTEXT://%s:%d,CONTROLLER://127.0.0.1:%d" % (host_ip, b.port, b.cport),
            "advertised.listeners": "PLAINTEXT://%s:%d" % (host_ip, b.port)})
        try:
            b.start()
            with Conn(host_ip, b.port, timeout=10.0) as c:
                served(c)
                broker_side_cc(b.port, c.sock.getsockname()[1], cc)
            p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, host_ip, str(b.port)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                client_port = int(p.stdout.readline())
                broker_side_cc(b.port, client_port, system_cc())
            finally:
                p.stdin.close()
                p.wait(timeout=20)
        finally:
            b.cleanup()
    finally:
        subprocess.run(["ip", "link", "del", veth], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def test_unknown_congestion_control_refuses_to_start():
    b = Broker(TARGET, {KEY: "nosuchcc"})
    try:
        p = subprocess.run(b.command(), capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL)
        out = p.stdout + p.stderr
        assert p.returncode != 0, "started with an unknown congestion control:\n%s" % out
        assert "tidemark.loopback.congestion.control=nosuchcc" in out, out
    finally:
        b.cleanup()
