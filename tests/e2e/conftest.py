"""End-to-end test harness: starts a real broker process and hands tests its
address.

TM_E2E_TARGET picks the broker:
  tidemark (default)  bin/tidemark CONFIG --override key=value ...
  kafka               Apache Kafka 4.1 (kafka.Kafka, jars from install-deps.sh),
                      with the same settings, for differential testing.

Fixtures:
  broker        one broker per test module (modules may set BROKER_OVERRIDES)
  fresh_broker  one broker per test, for restart and kill -9 tests
Both yield a `Broker`: .bootstrap ("127.0.0.1:PORT"), .host, .port, .data_dir,
.restart(), .kill9(), .start(), .stop(), .log_tail().

Every test runs under a wall-clock bound (TM_E2E_TEST_TIMEOUT seconds, default
240) covering setup, call and teardown; a hung test fails with its traceback.
"""
import faulthandler
import os
import random
import signal
import base64
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import rawkafka

E2E_DIR = Path(__file__).resolve().parent
ROOT = E2E_DIR.parents[1]
TARGET = os.environ.get("TM_E2E_TARGET", "tidemark")
TM_CACHE = Path(os.environ.get("TM_CACHE", Path.home() / ".cache" / "tidemark"))
KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.1.1")
KAFKA_LIBS = TM_CACHE / ("kafka-%s" % KAFKA_VERSION) / "libs"
TIDEMARK_BIN = Path(os.environ.get("TM_E2E_TIDEMARK", ROOT / "bin" / "tidemark"))
TEST_TIMEOUT_S = int(os.environ.get("TM_E2E_TEST_TIMEOUT", "240"))
START_TIMEOUT_S = int(os.environ.get("TM_E2E_START_TIMEOUT", "120" if TARGET == "kafka" else "60"))
STOP_TIMEOUT_S = 20

# Settings both targets get; per-instance ones (ports, directory) are added
# as --override arguments by Broker.start.
COMMON_SETTINGS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "offsets.topic.replication.factor": "1",
    "auto.create.topics.enable": "true",
    "log.retention.check.interval.ms": "1000",
    "group.initial.rebalance.delay.ms": "0",
}

# Apache Kafka needs these too to run as one node.
KAFKA_ONLY_SETTINGS = {
    "inter.broker.listener.name": "PLAINTEXT",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "offsets.topic.num.partitions": "1",
}

JAVA_CLI_OPTS = [
    "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto",
    "-Dlog4j2.configurationFile=%s" % (E2E_DIR / "log4j2-tools.xml"),
]

KAFKA_TOOL_CLASSES = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-configs": "kafka.admin.ConfigCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-verifiable-producer": "org.apache.kafka.tools.VerifiableProducer",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-verifiable-consumer": "org.apache.kafka.tools.VerifiableConsumer",
    "kafka-dump-log": "kafka.tools.DumpLogSegments",
    "kafka-storage": "kafka.tools.StorageTool",
}


def free_port():
    """A port on 127.0.0.1 that was free a moment ago (bound to 0, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def java_classpath():
    if not (KAFKA_LIBS / ".complete").exists():
        pytest.fail("Kafka jars missing at %s: run `sh deploy/install-deps.sh test`" % KAFKA_LIBS)
    return str(KAFKA_LIBS / "*")


def kafka_cluster_id():
    """A random cluster id as Kafka writes them (base64url of 16 bytes)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _write_properties(path, settings):
    with open(path, "w") as f:
        f.write("# written by tests/e2e/conftest.py\n")
        for k, v in settings.items():
            f.write("%s=%s\n" % (k, v))


class Broker:
    """One broker process (Tidemark or Apache Kafka) with its own directory
    and ports, which stay the same across restarts."""

    def __init__(self, target=TARGET, overrides=None):
        self.target = target
        self.root = Path(tempfile.mkdtemp(prefix="tm-e2e-"))
        self.data_dir = self.root / "data"
        self.data_dir.mkdir()
        self.log_path = self.root / "broker.log"
        self.config_path = self.root / "server.properties"
        self.host = "127.0.0.1"
        self.port = free_port()
        self.cport = free_port()
        while self.cport == self.port:
            self.cport = free_port()
        self.overrides = dict(overrides or {})
        self.proc = None
        self.starts = 0
        self.formatted = False
        self.stopping = False  # set while the harness itself stops or kills it

    @property
    def bootstrap(self):
        return "%s:%d" % (self.host, self.port)

    def instance_settings(self):
        s = {
            "controller.quorum.voters": "1@127.0.0.1:%d" % self.cport,
            "listeners": "PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d" % (self.port, self.cport),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d" % self.port,
            "log.dirs": str(self.data_dir),
        }
        s.update(self.overrides)
        return s

    def command(self):
        static = dict(COMMON_SETTINGS)
        if self.target == "kafka":
            static.update(KAFKA_ONLY_SETTINGS)
        _write_properties(self.config_path, static)
        overrides = []
        for k, v in self.instance_settings().items():
            overrides += ["--override", "%s=%s" % (k, v)]
        if self.target == "tidemark":
            if not os.access(TIDEMARK_BIN, os.X_OK):
                pytest.fail("%s is not built: run `make bin/tidemark` (or TM_E2E_TARGET=kafka)" % TIDEMARK_BIN)
            return [str(TIDEMARK_BIN), str(self.config_path)] + overrides
        if self.target == "kafka":
            self._kafka_format()
            return (["java", "-Xmx1G", "-Xms256m", "-Xshare:auto",
                     "-Dlog4j2.configurationFile=%s" % (E2E_DIR / "log4j2-broker.xml"),
                     "-cp", java_classpath(), "kafka.Kafka", str(self.config_path)] + overrides)
        pytest.fail("TM_E2E_TARGET=%r: expected tidemark or kafka" % self.target)

    def _kafka_format(self):
        """Kafka 4 refuses to start on unformatted storage: StorageTool format
        once, with the full settings in a file of its own."""
        if self.formatted:
            return
        full = dict(COMMON_SETTINGS)
        full.update(KAFKA_ONLY_SETTINGS)
        full.update(self.instance_settings())
        fmt = self.root / "format.properties"
        _write_properties(fmt, full)
        cmd = (["java"] + JAVA_CLI_OPTS + ["-cp", java_classpath(), "kafka.tools.StorageTool",
                                            "format", "-t", kafka_cluster_id(), "-c", str(fmt)])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            pytest.fail("kafka-storage format failed (%d):\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
        self.formatted = True

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        cmd = self.command()
        self.starts += 1
        self.stopping = False
        with open(self.log_path, "ab") as log:
            log.write(("\n==== start #%d: %s\n" % (self.starts, " ".join(cmd))).encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=str(self.root),
                                         start_new_session=True)
        self.wait_ready()

    def wait_ready(self):
        """Bounded wait until the port accepts, ApiVersions answers without
        error and Metadata lists this broker."""
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "no attempt yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail("%s exited with status %d during start-up; log tail:\n%s"
                            % (self.target, rc, self.log_tail()))
            try:
                with rawkafka.Conn(self.host, self.port, timeout=5) as c:
                    err, keys = rawkafka.api_versions(c, 0)
                    if err != 0 or not keys:
                        last = "ApiVersions v0 error %d, %d api keys" % (err, len(keys))
                    else:
                        brokers = rawkafka.metadata_brokers(c)
                        if any(p == self.port for _, _, p in brokers):
                            return
                        last = "Metadata v4 lists brokers %r" % (brokers,)
            except (OSError, rawkafka.ShortRead, ConnectionError) as e:
                last = "%s: %s" % (type(e).__name__, e)
            time.sleep(0.25)
        pytest.fail("%s not ready on %s within %ds (last: %s); log tail:\n%s"
                    % (self.target, self.bootstrap, START_TIMEOUT_S, last, self.log_tail()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s=STOP_TIMEOUT_S):
        """SIGTERM, then SIGKILL after timeout_s.  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.stopping = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def kill9(self):
        """Kills the broker with SIGKILL: no chance to flush or close."""
        if self.proc is not None and self.proc.poll() is None:
            self.stopping = True
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self, hard=False):
        """Stops (kill -9 when hard) and starts again: same dir, same ports."""
        if hard:
            self.kill9()
        else:
            self.stop()
        self.start()

    def died(self):
        """The exit status when the process ended without the harness
        stopping it (a crash), else None."""
        if self.proc is None or self.stopping:
            return None
        return self.proc.poll()

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def cleanup(self):
        self.stop()
        if os.environ.get("TM_E2E_KEEP"):
            print("kept broker dir %s" % self.root)
            return
        shutil.rmtree(self.root, ignore_errors=True)


def _start_broker(request):
    overrides = getattr(request.module, "BROKER_OVERRIDES", None)
    b = Broker(TARGET, overrides)
    try:
        b.start()
    except BaseException:
        b.cleanup()
        raise
    return b


_LIVE_BROKERS = []


def _crash_report(b):
    rc = b.died()
    if rc is None:
        return None
    how = "killed by signal %d" % -rc if rc < 0 else "exited with status %d" % rc
    return "the broker (%s) %s during this test; log tail:\n%s" % (b.target, how, b.log_tail())


@pytest.fixture(scope="module")
def broker(request):
    b = _start_broker(request)
    _LIVE_BROKERS.append(b)
    yield b
    _LIVE_BROKERS.remove(b)
    b.cleanup()


@pytest.fixture
def fresh_broker(request):
    b = _start_broker(request)
    yield b
    msg = _crash_report(b)
    b.cleanup()
    if msg:
        pytest.fail(msg, pytrace=False)


@pytest.fixture(autouse=True)
def _no_broker_crash():
    """After each test: a broker that crashed is reported as an error of
    that test, and a module's shared broker is started again so the next
    tests of the module still run."""
    yield
    reports = []
    for b in list(_LIVE_BROKERS):
        msg = _crash_report(b)
        if msg:
            reports.append(msg)
            b.start()
    if reports:
        pytest.fail("\n\n".join(reports), pytrace=False)


@pytest.fixture
def target():
    return TARGET


# ---- per-test wall-clock bound ----------------------------------------------
class TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded TM_E2E_TEST_TIMEOUT=%ds" % TEST_TIMEOUT_S)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(TEST_TIMEOUT_S)
    # Backstop for a hang inside C code where the alarm cannot interrupt:
    # dump every thread's stack and exit.
    faulthandler.dump_traceback_later(TEST_TIMEOUT_S + 60, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def pytest_report_header(config):
    return "tidemark e2e: TM_E2E_TARGET=%s, per-test bound %ds, seed %d" % (
        TARGET, TEST_TIMEOUT_S, SEED)


SEED = int(os.environ.get("TM_E2E_SEED", str(random.SystemRandom().randrange(1 << 30))))
