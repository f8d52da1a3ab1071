"""bench.py - runs Tidemark and Apache Kafka side by side and reports both.

Started by bench/run.sh (which installs what is needed and builds
the broker and build/bench/tm-load).  It starts each broker on free
loopback ports with the same settings, drives both with the same client
(tm-load) and Kafka's Java perf tools, interleaving the repetitions
(Tidemark, Kafka, Tidemark, Kafka ...) so that background load on a shared
machine hits both alike, stops every process it started by its pid, and
writes the table (stdout), bench/results/<stamp>-<mode>.json and .png, and
in full mode docs/benchmarks.md.

Environment (defaults for full / QUICK=1):
  QUICK=1             every workload for a few seconds, Tidemark only
  BENCH_SYSTEMS       tidemark,kafka / tidemark
  BENCH_REPS          5 / 1        repetitions, the median is reported
  BENCH_SECONDS       10 / 2       measured seconds of a timed workload
  BENCH_WARMUP        2 / 0.5      warm-up seconds before each timed run
  BENCH_BACKLOG_MB    2048 / 64    workload 3's backlog (MB = 2^20 bytes)
  BENCH_E2E_RATE      5000         workload 4's messages per second
  BENCH_E2E_LINGER_MS 1            producer linger in the latency workloads (workload
                                   4 also reports p99 at the other of 0 and 1)
  BENCH_W5_WARM_SECONDS 50 / 2    workload 5's unmeasured latency run per system (a
                                   three-node Kafka's p50 was 130-540 ms for its first
                                   36 s of it, then 1.5-2 ms)
  BENCH_JAVA          1            run Kafka's ProducerPerformance / ConsumerPerformance
  BENCH_W2_CLIENTS    2            tm-load processes at once in workload 2
  BENCH_W2_CALL_RECORDS 1000       records per produce call in workload 2 (0: one per call)
  BENCH_ONLY          ""           comma list of workload ids to run (1..7)
  BENCH_DATA_DIR      build/bench/data   broker data directories (removed at the end)
  TIDEMARK_BIN, TM_LOAD, KAFKA_LIBS  where the programs are

Exit status: 0 when every figure of every system that ran was measured
(n/a ones excepted: features not built yet, cache drops not permitted);
1 when a workload failed; 2 when the harness itself could not start.
"""

import datetime
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
QUICK = os.environ.get("QUICK", "") not in ("", "0")
MODE = "quick" if QUICK else "full"


def env_num(name, full, quick, cast=float):
    v = os.environ.get(name)
    if v not in (None, ""):
        return cast(v)
    return cast(quick if QUICK else full)


SYSTEMS = [s for s in os.environ.get("BENCH_SYSTEMS", "tidemark" if QUICK else "tidemark,kafka")
           .split(",") if s]
REPS = env_num("BENCH_REPS", 5, 1, int)
SECONDS = env_num("BENCH_SECONDS", 10, 2)
WARMUP = env_num("BENCH_WARMUP", 2, 0.5)
BACKLOG_MB = env_num("BENCH_BACKLOG_MB", 2048, 64, int)
E2E_RATE = env_num("BENCH_E2E_RATE", 5000, 5000, int)
E2E_LINGER_MS = env_num("BENCH_E2E_LINGER_MS", 1, 1, int)
W5_WARM_S = env_num("BENCH_W5_WARM_SECONDS", 50, 2)
JAVA = os.environ.get("BENCH_JAVA", "1") != "0"
ONLY = set(x for x in os.environ.get("BENCH_ONLY", "").split(",") if x)
DATA = os.path.abspath(os.environ.get("BENCH_DATA_DIR", os.path.join(ROOT, "build", "bench", "data")))
TIDEMARK_BIN = os.environ.get("TIDEMARK_BIN", os.path.join(ROOT, "bin", "tidemark"))
TM_LOAD = os.environ.get("TM_LOAD", os.path.join(ROOT, "build", "bench", "tm-load"))
KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.1.1")
KAFKA_LIBS = os.environ.get("KAFKA_LIBS", os.path.expanduser(
    "~/.cache/tidemark/kafka-%s/libs" % KAFKA_VERSION))
LOG4J = os.path.join(BENCH, "log4j2.xml")
RESULTS = os.path.join(BENCH, "results")

# The JVM flags of Kafka's own bin/kafka-server-start.sh and kafka-run-class.sh.
KAFKA_JVM = ["-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
             "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true"]
TOOLS_JVM = ["-Xmx512M", "-Djava.awt.headless=true"]

START_TIMEOUT = {"tidemark": 20 if QUICK else 30, "kafka": 120}
RUN_ID = uuid.uuid4().hex[:6]


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def wanted(wid):
    return not ONLY or wid in ONLY


# ---- processes -------------------------------------------------------------

MAIN_START_FAILED = set()  # systems whose plain single node did not start
STARTED = []  # every broker Popen, so that a crash or ^C still stops them
STEAL = {}  # {system: [share of CPU time stolen by the host during each measured run]}
# settle(): wait at most SETTLE_MAX_S for the other brokers to use at most
# SETTLE_QUIET_SHARE of a core over a SETTLE_WINDOW_S window
W2_CLIENTS = int(os.environ.get("BENCH_W2_CLIENTS", "2"))
W2_CALL_RECORDS = int(os.environ.get("BENCH_W2_CALL_RECORDS", "1000"))
W2_CALL = ["-m", str(W2_CALL_RECORDS)] if W2_CALL_RECORDS > 0 else []
SETTLE_MAX_S, SETTLE_WINDOW_S, SETTLE_QUIET_SHARE = (2, 0.2, 0.05) if QUICK else (20, 0.5, 0.03)


def stop_pid(proc, grace_s=20):
    """SIGTERM to the one process we started, SIGKILL after grace_s."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.kill(proc.pid, signal.SIGTERM)
        return proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(10)
    except ProcessLookupError:
        return proc.wait(1)


def stop_all():
    for p in STARTED:
        stop_pid(p, 10)


def free_ports(n):
    """n distinct loopback ports that were free a moment ago."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def tail(path_or_text, n=8, is_path=True):
    try:
        if is_path:
            with open(path_or_text, errors="replace") as f:
                text = f.read()[-20000:]
        else:
            text = path_or_text or ""
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " / ".join(lines[-n:])


def read_proc(pid, name):
    """/proc/PID/NAME, or /proc/NAME when pid is None; '' when unreadable."""
    try:
        with open("/proc/%s" % name if pid is None else "/proc/%d/%s" % (pid, name)) as f:
            return f.read()
    except OSError:
        return ""


def cpu_seconds(pid):
    ticks = report.parse_proc_stat_cpu_ticks(read_proc(pid, "stat"))
    return None if ticks is None else ticks / float(os.sysconf("SC_CLK_TCK"))


def disk_read_bytes(cluster):
    """Bytes the cluster's brokers have read from storage (/proc/PID/io
    read_bytes, summed), or None when one is unreadable."""
    vals = [report.parse_proc_io_read_bytes(read_proc(n.pid, "io")) for n in cluster.nodes]
    return None if any(v is None for v in vals) else sum(vals)


class RssSampler(threading.Thread):
    """Peak VmRSS of one process, sampled every 100 ms while running."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.halt = pid, 0, threading.Event()

    def run(self):
        while not self.halt.is_set():
            rss = report.parse_proc_status(read_proc(self.pid, "status")).get("VmRSS", 0)
            self.peak = max(self.peak, rss)
            self.halt.wait(0.1)

    def stop(self):
        self.halt.set()
        self.join(2)
        return self.peak


# ---- TLS material ----------------------------------------------------------

def tls_material():
    """A self-signed certificate for 127.0.0.1 and its key in one PEM file
    (the keystore of both brokers) and the certificate alone (the clients'
    CA).  None when openssl is missing."""
    d = os.path.join(DATA, "tls")
    pem, ca = os.path.join(d, "server.pem"), os.path.join(d, "ca.pem")
    if os.path.exists(pem):
        return pem, ca
    os.makedirs(d, exist_ok=True)
    key = os.path.join(d, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", ca, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    with open(pem, "w") as out:
        out.write(open(key).read())
        out.write(open(ca).read())
    return pem, ca


# ---- clusters --------------------------------------------------------------

class StartError(Exception):
    pass


class Node:
    def __init__(self, system, node_id, base):
        self.system, self.node_id = system, node_id
        self.port, self.cport, self.sport = free_ports(3)
        self.dir = os.path.join(base, "node%d" % node_id)
        self.data = os.path.join(self.dir, "data")
        self.props = os.path.join(self.dir, "server.properties")
        self.log = os.path.join(self.dir, "broker.log")
        self.proc, self.t0_ns = None, 0

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """One to three nodes of one system, with the settings both share."""

    def __init__(self, system, label, nodes=1, tls=False, flush_messages=None):
        self.system, self.label, self.tls = system, label, tls
        self.flush_messages = flush_messages
        self.base = os.path.join(DATA, "%s-%s-%s" % (label, system, RUN_ID))
        self.nodes = [Node(system, i + 1, self.base) for i in range(nodes)]
        self.start_to_first_produce_s = None
        self.probe = {}  # tm-load probe's own view: attempts, seconds from its start
        self.tls_files = None
        self.broken = None  # why it could not be (re)started

    # -- configuration --
    def properties(self, node):
        n = len(self.nodes)
        voters = ",".join("%d@127.0.0.1:%d" % (x.node_id, x.cport) for x in self.nodes)
        listeners = ["PLAINTEXT://127.0.0.1:%d" % node.port, "CONTROLLER://127.0.0.1:%d" % node.cport]
        advertised = ["PLAINTEXT://127.0.0.1:%d" % node.port]
        if self.tls:
            listeners.append("SSL://127.0.0.1:%d" % node.sport)
            advertised.append("SSL://127.0.0.1:%d" % node.sport)
        rf = 3 if n >= 3 else 1
        p = [("process.roles", "broker,controller"), ("node.id", node.node_id),
             ("controller.quorum.voters", voters), ("listeners", ",".join(listeners)),
             ("advertised.listeners", ",".join(advertised)),
             ("controller.listener.names", "CONTROLLER"),
             ("inter.broker.listener.name", "PLAINTEXT"),
             ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL"),
             ("log.dirs", node.data), ("num.partitions", 1), ("auto.create.topics.enable", "true"),
             ("default.replication.factor", rf), ("min.insync.replicas", 2 if n >= 3 else 1),
             ("offsets.topic.replication.factor", rf), ("group.initial.rebalance.delay.ms", 0)]
        if self.flush_messages is not None:
            p.append(("log.flush.interval.messages", self.flush_messages))
        if self.tls:
            p += [("ssl.keystore.type", "PEM"), ("ssl.keystore.location", self.tls_files[0])]
        if self.system == "kafka":
            p += [("transaction.state.log.replication.factor", rf),
                  ("transaction.state.log.min.isr", 2 if n >= 3 else 1),
                  ("share.coordinator.state.topic.replication.factor", rf),
                  ("share.coordinator.state.topic.min.isr", 2 if n >= 3 else 1)]
        return "".join("%s=%s\n" % kv for kv in p)

    def bootstrap(self, tls=None):
        tls = self.tls if tls is None else tls
        return ",".join("127.0.0.1:%d" % (n.sport if tls else n.port) for n in self.nodes)

    def client_args(self, tls=None):
        tls = self.tls if tls is None else tls
        args = ["-b", self.bootstrap(tls)]
        if tls:
            args += ["-X", "security.protocol=ssl", "-X", "ssl.ca.location=%s" % self.tls_files[1]]
        return args

    def node_cmd(self, node):
        if self.system == "tidemark":
            return [TIDEMARK_BIN, node.props]
        return (["java"] + KAFKA_JVM + ["-Dlog4j2.configurationFile=" + LOG4J,
                                        "-cp", os.path.join(KAFKA_LIBS, "*"), "kafka.Kafka", node.props])

    # -- life cycle --
    def start(self):
        """Starts every node on fresh data, then produces one record and
        records the time from the first process start to its
        acknowledgement.  Raises StartError with the reason."""
        if self.tls:
            self.tls_files = tls_material()
            if not self.tls_files:
                raise StartError("openssl could not make a certificate")
        shutil.rmtree(self.base, ignore_errors=True)
        for node in self.nodes:
            os.makedirs(node.data, exist_ok=True)
            with open(node.props, "w") as f:
                f.write(self.properties(node))
        if self.system == "kafka":
            self._kafka_format()
        elif not os.access(TIDEMARK_BIN, os.X_OK):
            raise StartError("%s was not built" % os.path.relpath(TIDEMARK_BIN, ROOT))
        t0 = None
        for node in self.nodes:
            logf = open(node.log, "w")
            node.t0_ns = time.time_ns()
            t0 = t0 or node.t0_ns
            node.proc = subprocess.Popen(self.node_cmd(node), stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            logf.close()
            STARTED.append(node.proc)
        timeout = START_TIMEOUT[self.system] * (2 if len(self.nodes) > 1 and not QUICK else 1)
        r = run_tm_load(self, "probe", ["-t", "bench-probe", "-d", str(timeout)], timeout + 15)
        if isinstance(r, str):
            self.stop()
            raise StartError(r)
        self.start_to_first_produce_s = (r["ack_unix_ns"] - t0) / 1e9
        self.probe = {"probe_attempts": r.get("attempts"), "probe_seconds": r.get("probe_seconds")}

    def _kafka_format(self):
        cp = os.path.join(KAFKA_LIBS, "*")
        if not os.path.isdir(KAFKA_LIBS):
            raise StartError("Kafka's jars are not in %s (deploy/install-deps.sh test)" % KAFKA_LIBS)
        cluster_id = subprocess.run(["java", "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
                                    capture_output=True, text=True, timeout=60).stdout.strip().split()[-1]
        procs = [subprocess.Popen(["java", "-Xmx256M", "-cp", cp, "kafka.tools.StorageTool", "format",
                                   "-t", cluster_id, "-c", n.props],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for n in self.nodes]
        for p in procs:
            out, _ = p.communicate(timeout=120)
            if p.returncode != 0:
                raise StartError("kafka-storage format: %s" % tail(out, 3, False))

    def alive(self):
        return all(n.alive() for n in self.nodes)

    def death_note(self):
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is not None:
                rc = n.proc.returncode
                how = ("was killed by %s" % signal.Signals(-rc).name if rc < 0 and -rc in
                       signal.valid_signals() else "exited with status %s" % rc)
                return "%s node %d %s (its log, %s, ends: %s)" % (
                    self.system, n.node_id, how, os.path.relpath(n.log, ROOT), tail(n.log, 1))
        return ""

    def stop(self):
        """SIGTERM to every node at once (a KRaft quorum whose peers leave
        one by one waits for them), then waits for each by pid."""
        notes = []
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                try:
                    os.kill(n.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for n in self.nodes:
            if n.proc is not None:
                rc = stop_pid(n.proc)
                if n.proc in STARTED:
                    STARTED.remove(n.proc)
                if rc not in (0, -signal.SIGTERM, 143):
                    notes.append("node %d stopped with status %s" % (n.node_id, rc))
        return notes

    def ensure(self):
        """Restarts a cluster whose process died (fresh data), once."""
        if self.alive():
            return None
        if self.broken:
            return self.broken
        why = self.death_note() if any(n.proc for n in self.nodes) else ""
        try:
            self.stop()
            self.start()
            if why:
                log("%s restarted after: %s" % (self.system, why))
            return None
        except StartError as e:
            self.broken = "could not start %s: %s" % (self.system, e)
            return self.broken

    def destroy(self):
        """Stops the nodes and removes their data; their logs and settings
        stay (under BENCH_DATA_DIR) for a person to read."""
        self.stop()
        for n in self.nodes:
            shutil.rmtree(n.data, ignore_errors=True)


# ---- tools -----------------------------------------------------------------

def run_watched(cmd, timeout, cluster):
    """Runs a client program against cluster: (status, stdout, stderr,
    note).  When a broker process dies under it, the client gets SIGTERM
    after 2 s and SIGKILL after 5 s more, so a crash costs seconds, not the
    client's retry timeouts; note says what happened.  status is None when
    the client had to be killed."""
    import tempfile
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline, note, died_at, termed = time.time() + timeout, "", None, False
        while p.poll() is None:
            now = time.time()
            if died_at is None and not cluster.alive():
                died_at, note = now, cluster.death_note()
            if now > deadline and not note:
                note = "timed out after %ds" % timeout
            if (note and (died_at is None or now - died_at > 2)) and not termed:
                p.send_signal(signal.SIGTERM)
                termed, deadline = True, now + 5
            elif termed and now > deadline:
                p.kill()
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        return (None if termed else p.returncode), out.read(), err.read(), note


def run_tm_load(cluster, mode, args, timeout, tls=None):
    """Runs tm-load against the cluster: its JSON dict, or a string saying
    why it failed."""
    cmd = [TM_LOAD, mode] + cluster.client_args(tls) + args
    rc, out, err, note = run_watched(cmd, timeout, cluster)
    obj = report.parse_tm_load(out)
    if rc == 0 and obj:
        return obj
    why = (obj or {}).get("error") or tail(err, 3, False) or "exit status %s" % rc
    if obj and mode in ("produce", "e2e") and obj.get("errors") and "acknowledged" not in why:
        why = "%d records not acknowledged: %s" % (obj["errors"], why)
    if note:
        why = note + "; " + why
    return "tm-load %s: %s" % (mode, why)


def run_java(cluster, main_class, args, timeout):
    """A Kafka perf tool: (stdout, None), or (None, why it failed)."""
    cmd = (["java"] + TOOLS_JVM + ["-Dlog4j2.configurationFile=" + LOG4J, "-cp",
                                   os.path.join(KAFKA_LIBS, "*"), main_class] + args)
    name = main_class.rsplit(".", 1)[-1]
    rc, out, err, note = run_watched(cmd, timeout, cluster)
    if note:
        return None, "%s: %s" % (name, note)
    if rc != 0:
        return None, "%s exit %s: %s" % (name, rc, tail(err + out, 3, False))
    return out, None


def drop_caches():
    """Empties the page cache; returns None or why it could not."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return None
    except OSError as e:
        return "drop_caches not permitted here (%s): cold page cache not measured, warm only" % e.strerror


def topic(name, system, rep=0):
    return "%s-%s-r%d-%s" % (name, system, rep, RUN_ID)


# ---- workloads -------------------------------------------------------------

def settle(cluster):
    """Before a measured run: the dirty pages of earlier runs are written
    back (sync), and every other broker still up (the other system's, idle
    between its runs) has gone quiet, so that neither writeback nor the
    other broker's background work (GC and JIT after a run, flushes) lands
    on this run.  The interleaved runs showed it: without this step each
    Tidemark run of workload 2 was slower than the one before (1.82, 1.57,
    1.35 M msg/s) while Kafka's, run right after an idle Tidemark, rose."""
    os.sync()
    mine = set(n.pid for n in cluster.nodes)
    others = [p.pid for p in STARTED if p.poll() is None and p.pid not in mine]
    deadline = time.time() + SETTLE_MAX_S
    while others and time.time() < deadline:
        before = [cpu_seconds(p) or 0.0 for p in others]
        time.sleep(SETTLE_WINDOW_S)
        used = sum((cpu_seconds(p) or 0.0) - b for p, b in zip(others, before))
        if used <= SETTLE_QUIET_SHARE * SETTLE_WINDOW_S:
            break


def fresh(clusters):
    """Restarts each cluster on empty data directories between workloads:
    workloads 1 and 2 write tens of GB over their runs (after workload 1 the
    disk had 25 GB of 60 free, and in workload 3 Kafka stopped: "all log
    dirs ... have failed"), and that data would otherwise still be written
    back during the next workload."""
    for c in clusters.values():
        if c.broken:
            continue
        c.stop()
        try:
            c.start()
        except StartError as e:
            c.broken = "could not restart %s: %s" % (c.system, e)


def cpu_use(cluster):
    """(monotonic seconds, CPU seconds of the harness's reaped children, CPU
    seconds of the cluster's brokers or None when one is down).  Between two
    of these around a run, the children are that run's clients (tm-load, the
    Java tools): the brokers stay up, so none of them is reaped inside it."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    broker = [cpu_seconds(n.pid) if n.alive() else None for n in cluster.nodes]
    return (time.monotonic(), ru.ru_utime + ru.ru_stime,
            None if any(b is None for b in broker) else sum(broker))


def for_each(clusters, fn):
    """fn(system, cluster) per system, each after settle(); a cluster that
    cannot be (re)started gives its reason instead.  Each result dict gets
    the run's CPU steal and its clients' and brokers' CPU (report.cpu_between)."""
    out = {}
    for s, c in clusters.items():
        why = c.ensure()
        if not why:
            settle(c)
            before = report.parse_proc_stat_cpu(read_proc(None, "stat"))
            cpu0 = cpu_use(c)
            out[s] = fn(s, c)
            cpu1 = cpu_use(c)
            share = report.steal_share(before, report.parse_proc_stat_cpu(read_proc(None, "stat")))
            STEAL.setdefault(s, []).append(share)
            if isinstance(out[s], dict):
                out[s]["steal"] = share  # kept per repetition in the JSON (from_runs)
                out[s]["cpu"] = report.cpu_between(cpu0, cpu1, out[s].get("busiest_thread"))
        else:
            out[s] = why
    return out


def warm_up(clusters, fn, what):
    """One unmeasured fn(system, cluster) per system, after settle(), before
    the measured runs (Kafka's JIT, the last writeback); a failure is
    logged, and the measured runs then report their own."""
    for s, c in clusters.items():
        if not c.ensure():
            settle(c)
            r = fn(s, c)
            if isinstance(r, str):
                log("%s: warm-up %s: %s" % (s, what, r))


def drop_topics(clusters, names):
    """Deletes topics once they are measured ({system: [topic, ...]}), so a
    full run fits its disk: workload 1 alone writes 5-12 GB per repetition
    per system.  Runs outside the measured window; a failure is logged."""
    for s, c in clusters.items():
        for t in names.get(s, []):
            r = run_tm_load(c, "delete", ["-t", t], 60)
            if isinstance(r, str):
                log("%s: deleting %s: %s" % (s, t, r))


def figures(runs_by_system, key, scale=1.0):
    """{system: FIGURE} from {system: [run dict | error string, ...]}."""
    out = {}
    for s, runs in runs_by_system.items():
        fig = report.from_runs(runs, key)
        if fig["status"] == "ok":
            fig["value"] *= scale
            fig["runs"] = [v * scale for v in fig["runs"]]
        out[s] = fig
    return out


def fill(figs, reason=None):
    """Both systems present: a system that did not run is 'skipped'."""
    for s in ("tidemark", "kafka"):
        if s not in figs:
            figs[s] = report.skipped(reason or ("not run in %s mode" % MODE))
    return figs


def W(wid, title, metrics):
    return {"id": wid, "title": title, "metrics": metrics}


def M(name, unit, better, target, figs, bound=None):
    figs = fill(dict(figs))
    return report.metric(name, unit, better, target, figs["tidemark"], figs["kafka"], bound)


# The machine limits on a workload's path, for the share-of-the-machine table:
# (limit key, times each measured byte crosses it).
# A client's bytes cross loopback at the pace of the client's socket (the
# system's congestion control), a broker's answers at the broker's
# (report.BROKER_SEND: reno for Tidemark, the system's for Kafka).
PRODUCE_PATH = [("loopback_mb_per_s", 1), ("disk_page_cache_write_mb_per_s", 1)]
# Tidemark runs with its default tidemark.loopback.congestion.control.
TIDEMARK_LOOPBACK_CC = "reno"
FSYNC_PATH = [("loopback_mb_per_s", 1), ("disk_seq_write_fdatasync_mb_per_s", 1)]
WARM_READ_PATH = [(report.BROKER_SEND, 1)]
COLD_READ_PATH = [(report.BROKER_SEND, 1), ("disk_seq_read_cold_mb_per_s", 1)]
# RF=3 on one machine: client -> leader and leader -> two followers on
# loopback (counted at the system's pace: the lower bound), and three copies
# on the one disk.
RF3_PATH = [("loopback_mb_per_s", 3), ("disk_page_cache_write_mb_per_s", 3)]


def produce_args(t, size, partitions, acks, seconds=None, count=None, warmup=0, linger=None):
    a = ["-t", t, "-s", str(size), "-P", str(partitions), "-a", str(acks)]
    if count:
        a += ["-n", str(count)]
    else:
        a += ["-d", str(seconds), "-w", str(warmup)]
    if linger is not None:
        a += ["-l", str(linger)]
    return a


def timed_limit(seconds):
    return int(WARMUP + seconds + 90)


def workload_1(clusters, w6):
    """Produce throughput; also feeds workload 6 (RSS under load, CPU/GiB)."""
    runs = {s: [] for s in clusters}
    rss_peak = {s: 0 for s in clusters}
    cpu = {s: [0.0, 0] for s in clusters}  # CPU seconds, bytes
    for rep in range(REPS):
        def one(s, c):
            pid = c.nodes[0].pid
            sampler = RssSampler(pid)
            sampler.start()
            cpu0 = cpu_seconds(pid)
            r = run_tm_load(c, "produce", produce_args(topic("w1", s, rep), 1024, 1, 1, SECONDS,
                                                        warmup=WARMUP), timed_limit(SECONDS))
            cpu1 = cpu_seconds(pid)
            peak = sampler.stop()
            hwm = report.parse_proc_status(read_proc(pid, "status")).get("VmHWM", 0)
            if not isinstance(r, str):
                rss_peak[s] = max(rss_peak[s], peak, hwm)
                if cpu0 is not None and cpu1 is not None:
                    cpu[s][0] += cpu1 - cpu0
                    cpu[s][1] += r.get("total_bytes", r["bytes"])
            return r
        for s, r in for_each(clusters, one).items():
            runs[s].append(r)
        drop_topics(clusters, {s: [topic("w1", s, rep)] for s in clusters})
    w6["rss_load"] = {}
    w6["cpu_per_gib"] = {}
    for s in clusters:
        bad = [r for r in runs[s] if isinstance(r, str)]
        if bad:
            w6["rss_load"][s] = w6["cpu_per_gib"][s] = report.failed("workload 1 failed: " + bad[0])
            continue
        w6["rss_load"][s] = report.ok(rss_peak[s] / report.MB)
        gib = cpu[s][1] / (1024.0 ** 3)
        w6["cpu_per_gib"][s] = (report.ok(cpu[s][0] / gib, cpu_seconds=cpu[s][0], gib=gib)
                                if gib > 0 else report.failed("nothing produced"))
    return [M("throughput", "MB/s", "higher", 1.5, figures(runs, "mb_per_s"), PRODUCE_PATH),
            M("records", "msgs/s", "higher", 1.5, figures(runs, "msgs_per_s")),
            M("p99 send-to-ack", "ms", "lower", None, figures(runs, "latency_us.p99", 1e-3))]


JAVA_WARMUP_S = 10  # ProducerPerformance's progress windows before this are its warm-up


def workload_1_java(clusters):
    """Kafka's ProducerPerformance (the Java client).  Its JVM starts cold
    every run and compiles its hot paths over the first seconds, so the
    throughput is taken over the progress windows after JAVA_WARMUP_S
    (report.producer_performance_after); the p99 is the tool's own, over the
    whole run.  Up to 3 interleaved repetitions, each on its own topic."""
    count = 20000 if QUICK else 5000000  # 25-60 s here: windows enough after the warm-up
    reps = 1 if QUICK else max(1, min(REPS, 3))
    runs = {s: [] for s in clusters}

    def one(s, c, rep):
        t = topic("w1java", s, rep)
        made = run_tm_load(c, "create", ["-t", t, "-P", "1"], 60)
        if isinstance(made, str):
            return made
        out, err = run_java(c, "org.apache.kafka.tools.ProducerPerformance",
                            ["--topic", t, "--num-records", str(count), "--record-size", "1024",
                             "--throughput", "-1", "--producer-props", "bootstrap.servers=" + c.bootstrap(),
                             "acks=1"], 60 if QUICK else 300)
        if err:
            return err
        parsed = report.parse_producer_performance(out)
        if not parsed:
            return "ProducerPerformance printed no summary: " + tail(out, 2, False)
        after = report.producer_performance_after(parsed, 0 if QUICK else JAVA_WARMUP_S)
        if after is None:
            if not QUICK:
                return "ProducerPerformance's run ended within its %d s warm-up" % JAVA_WARMUP_S
            after = {"mb_per_s": parsed["mb_per_s"], "msgs_per_s": parsed["msgs_per_s"]}
        parsed["after_warmup"] = after
        return parsed

    for rep in range(reps):
        for s, r in for_each(clusters, lambda s, c: one(s, c, rep)).items():
            runs[s].append(r)
        drop_topics(clusters, {s: [topic("w1java", s, rep)] for s in clusters})
    label = "throughput (Java client)" if QUICK else "throughput after a %d s warm-up (Java client)" % JAVA_WARMUP_S
    return [M(label, "MB/s", "higher", 1.5,
              figures(runs, "after_warmup.mb_per_s"), PRODUCE_PATH),
            M("throughput, whole run (Java client)", "MB/s", "higher", None, figures(runs, "mb_per_s")),
            M("p99 send-to-ack, whole run (Java client)", "ms", "lower", None, figures(runs, "latency_ms.p99"))]


def workload_1_fsync():
    """Workload 1 with an fsync after every append on both brokers."""
    clusters, figs_err = start_clusters("w1fsync", flush_messages=1)
    runs = {s: [] for s in clusters}
    reps = max(1, min(REPS, 2))
    for rep in range(reps):
        for s, r in for_each(clusters, lambda s, c: run_tm_load(
                c, "produce", produce_args(topic("w1f", s, rep), 1024, 1, 1, SECONDS, warmup=WARMUP),
                timed_limit(SECONDS))).items():
            runs[s].append(r)
        drop_topics(clusters, {s: [topic("w1f", s, rep)] for s in clusters})
    stop_clusters(clusters)
    figs = figures(runs, "mb_per_s")
    figs.update(figs_err)
    return [M("throughput, log.flush.interval.messages=1", "MB/s", "higher", None, figs, FSYNC_PATH)]


def run_tm_load_many(cluster, n, mode, args_of, timeout):
    """n tm-load processes at once (args_of(i) gives each its arguments):
    one dict with their summed rates and the worst of their percentiles, or
    the first reason one of them failed."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        rs = list(ex.map(lambda i: run_tm_load(cluster, mode, args_of(i), timeout), range(n)))
    return report.merge_clients(rs)


def workload_2(clusters):
    """Message rate.  The clients share the broker's 2 cores and cost more
    per record than either broker, so tm-load hands librdkafka
    W2_CALL_RECORDS records per call (rd_kafka_produce_batch, each call to
    the next partition: one lock and one clock read per call), which
    halves the client's CPU per record, and the run uses W2_CLIENTS
    processes at once, all on one topic of 6 partitions (made before the
    run, so that they do not race to make it).  It also reports one
    client."""
    runs = {s: [] for s in clusters}
    one = {s: [] for s in clusters}

    def check(r):
        if not isinstance(r, str) and r.get("partitions") != 6:
            r = "wanted 6 partitions, the topic has %s (%s)" % (r.get("partitions"), r.get("error"))
        return r

    def many(s, c, rep):
        made = run_tm_load(c, "create", ["-t", topic("w2c", s, rep), "-P", "6"], 60)
        if isinstance(made, str):
            return made
        pid = c.nodes[0].pid
        cpu0 = cpu_seconds(pid)
        r = run_tm_load_many(
            c, W2_CLIENTS, "produce",
            lambda i: produce_args(topic("w2c", s, rep), 100, 6, 1, SECONDS, warmup=WARMUP) + W2_CALL,
            timed_limit(SECONDS))
        cpu1 = cpu_seconds(pid)
        if not isinstance(r, str) and cpu0 is not None and cpu1 is not None and r.get("total_bytes"):
            # the broker's CPU for every record it took, warm-up included
            r["broker_cpu_s_per_m_records"] = (cpu1 - cpu0) / (r["total_bytes"] / 100.0 / 1e6)
        return r

    for rep in range(REPS):
        for s, r in for_each(clusters, lambda s, c: many(s, c, rep)).items():
            runs[s].append(check(r))
        for s, r in for_each(clusters, lambda s, c: run_tm_load(
                c, "produce", produce_args(topic("w2", s, rep), 100, 6, 1, SECONDS, warmup=WARMUP) + W2_CALL,
                timed_limit(SECONDS))).items():
            one[s].append(check(r))
        drop_topics(clusters, {s: [topic("w2c", s, rep), topic("w2", s, rep)] for s in clusters})
    return [M("record rate, %d clients" % W2_CLIENTS, "msgs/s", "higher", 1.5, figures(runs, "msgs_per_s")),
            M("throughput, %d clients" % W2_CLIENTS, "MB/s", "higher", None, figures(runs, "mb_per_s"),
              PRODUCE_PATH),
            M("record rate, one client", "msgs/s", "higher", None, figures(one, "msgs_per_s")),
            M("broker CPU per million records, %d clients" % W2_CLIENTS, "CPU s", "lower", None,
              figures(runs, "broker_cpu_s_per_m_records"))]


def workload_3(clusters):
    records = BACKLOG_MB * 1024
    made, topics = {}, {}  # made: None when the backlog is there, else why not
    for s, c in clusters.items():
        why = c.ensure()
        if why:
            made[s] = why
            continue
        t = topic("w3", s)
        r = run_tm_load(c, "produce", ["-t", t, "-s", "1024", "-P", "1", "-a", "1", "-n", str(records)],
                        int(120 + BACKLOG_MB / 10))
        made[s] = r if isinstance(r, str) else None
        topics[s] = t
        log("%s: backlog of %d MB in %s" % (s, BACKLOG_MB, t) if not isinstance(r, str) else r)

    def consume(s, c):
        if not made[s]:
            return run_tm_load(c, "consume", ["-t", topics[s], "-n", str(records), "-i", "15000"],
                               int(120 + BACKLOG_MB / 10))
        return made[s]

    # One unmeasured pass per system first: the backlog's last pages are
    # written back, and Kafka's fetch path (restarted by fresh()) is
    # compiled, before the warm repetitions count.  Its first measured
    # consume ran at 0.6x its later ones without this.
    warm_up({s: c for s, c in clusters.items() if not made[s]}, consume, "consume")
    warm = {s: [] for s in clusters}
    consume_all = lambda: for_each(clusters, consume)  # noqa: E731
    for _ in range(REPS):
        for s, r in consume_all().items():
            warm[s].append(r)

    def cold_consume(s, c):
        # The cache is dropped after settle() (for_each), right before the
        # read, and the brokers' read_bytes show that the backlog came
        # from the disk.
        why = drop_caches()
        if why:
            return why
        read0 = disk_read_bytes(c)
        r = consume(s, c)
        read1 = disk_read_bytes(c)
        if isinstance(r, dict) and read0 is not None and read1 is not None:
            r["disk_read_mb"] = (read1 - read0) / 1048576.0
        return r

    cold = {s: [] for s in clusters}
    cold_na = drop_caches()
    for _ in range(REPS if not cold_na else 0):
        for s, r in for_each(clusters, cold_consume).items():
            cold[s].append(r)
    java = {}
    if JAVA:
        def jc(s, c):
            if made[s]:
                return made[s]
            out, err = run_java(c, "org.apache.kafka.tools.ConsumerPerformance",
                                ["--bootstrap-server", c.bootstrap(), "--topic", topics[s],
                                 "--messages", str(records), "--timeout", "30000"],
                                int(120 + BACKLOG_MB / 10))
            if err:
                return err
            parsed = report.parse_consumer_performance(out)
            if parsed and parsed["records"] < records:
                return "ConsumerPerformance read %d of %d records" % (parsed["records"], records)
            return parsed or "ConsumerPerformance printed no result: " + tail(out, 2, False)
        java = {s: [] for s in clusters}
        for _ in range(REPS):  # one run swings with the JIT; the median of REPS
            for s, r in for_each(clusters, jc).items():
                java[s].append(r)
    drop_topics(clusters, {s: [topics[s]] for s in topics})
    cold_figs = ({s: report.not_available(cold_na) for s in clusters} if cold_na
                 else figures(cold, "mb_per_s"))
    out = [M("warm page cache", "MB/s", "higher", 1.5, figures(warm, "mb_per_s"), WARM_READ_PATH),
           M("cold page cache", "MB/s", "higher", 1.5, cold_figs, COLD_READ_PATH)]
    if JAVA:
        out.append(M("warm, Java ConsumerPerformance", "MB/s", "higher", 1.5, figures(java, "mb_per_s"),
                     WARM_READ_PATH))
    return out


def e2e_args(t, acks="all", partitions=1, linger=None, seconds=None):
    return ["-t", t, "-s", "1024", "-P", str(partitions), "-a", acks, "-r", str(E2E_RATE),
            "-d", str(seconds or SECONDS), "-w", str(max(WARMUP, 1)),
            "-l", str(E2E_LINGER_MS if linger is None else linger), "-i", "10000"]


def latency_metrics(runs, prefix="", p99_name=None, na=None):
    """p50, p99 (the target), p99.9 and max rows from e2e runs; na: figures
    of systems that could not run, in place of theirs."""
    out = []
    for label, key, target in (("p50", "p50", None), ("p99", "p99", 0.5), ("p99.9", "p999", None),
                               ("max", "max", None)):
        figs = figures(runs, "latency_us." + key, 1e-3)
        figs.update(na or {})
        name = p99_name if key == "p99" and p99_name else prefix + label
        out.append(M(name, "ms", "lower", target, figs))
    return out


def workload_4(clusters, tls=None, linger=None, name="w4", warm=True):
    """End-to-end latency at E2E_RATE; linger: the producer's linger.ms
    (E2E_LINGER_MS unless given).  With warm, each system first runs the
    workload once, unmeasured, for twice the measured time: Kafka's first
    runs after a start are its JIT compiling the request path (at
    linger.ms=0 its first two 12-second runs had a p50 of 504 and 324 ms,
    its later ones 0.3 ms; docs/benchmarks.md item 43)."""
    if warm:
        warm_up(clusters, lambda s, c: run_tm_load(
            c, "e2e", e2e_args(topic(name + "warm", s, 0), linger=linger, seconds=2 * SECONDS),
            timed_limit(2 * SECONDS), tls), "end-to-end run")
    runs = {s: [] for s in clusters}
    for rep in range(REPS):
        for s, r in for_each(clusters, lambda s, c: run_tm_load(
                c, "e2e", e2e_args(topic(name, s, rep), linger=linger), timed_limit(SECONDS), tls)).items():
            runs[s].append(r)
    return runs


def workload_5():
    """Three nodes, RF=3, min.insync.replicas=2, acks=all."""
    clusters, na = start_clusters("w5", nodes=3, feature="replication")
    thr = {s: [] for s in clusters}
    lat = {s: [] for s in clusters}
    create = ["-P", "1", "-R", "3", "-C", "min.insync.replicas=2"]
    for s, c in clusters.items():
        r = run_tm_load(c, "create", ["-t", topic("w5", s, 0)] + create, 60)
        if isinstance(r, str):
            if s == "tidemark":
                na[s] = report.not_available("replication not available yet: " + r)
            else:
                na[s] = report.failed(r)
    live = {s: c for s, c in clusters.items() if s not in na}

    def produce(s, c, rep):
        # A topic per repetition, deleted after it: three copies of
        # every repetition would not fit the disk.
        if rep > 0:
            r = run_tm_load(c, "create", ["-t", topic("w5", s, rep)] + create, 60)
            if isinstance(r, str):
                return r
        return run_tm_load(c, "produce", produce_args(topic("w5", s, rep), 1024, 1, "all", SECONDS,
                                                      warmup=WARMUP), timed_limit(SECONDS))

    def e2e(s, c, name, seconds=SECONDS):
        # Each latency topic is made first, RF=3 with min.insync.replicas=2
        # and every replica in sync (tm-load create checks it); left to the
        # e2e run, it would get tm-load's default RF of 1.
        r = run_tm_load(c, "create", ["-t", name] + create, 60)
        if isinstance(r, str):
            return r
        return run_tm_load(c, "e2e", e2e_args(name, seconds=seconds), timed_limit(seconds))

    # One unmeasured latency run per system first, as in workload 4, but
    # longer: three Kafka JVMs compile their replicated produce and fetch
    # paths before they count.  Ten 12-second runs in a row on a fresh
    # three-node Kafka had a p50 of 541, 532, 389 ms, then 1.5-2.2 ms.
    warm_up(live, lambda s, c: e2e(s, c, topic("w5warm", s), W5_WARM_S), "end-to-end run")
    drop_topics(live, {s: [topic("w5warm", s)] for s in live})
    for rep in range(REPS):
        for s, r in for_each(live, lambda s, c: produce(s, c, rep)).items():
            thr[s].append(r)
        for s, r in for_each(live, lambda s, c: e2e(s, c, topic("w5e2e", s, rep))).items():
            lat[s].append(r)
        drop_topics(live, {s: [topic("w5", s, rep), topic("w5e2e", s, rep)] for s in live})
    stop_clusters(clusters)
    tf = figures({s: thr[s] for s in live}, "mb_per_s")
    tf.update(na)
    return ([M("acks=all throughput", "MB/s", "higher", 1.5, tf, RF3_PATH)] +
            latency_metrics({s: lat[s] for s in live}, "e2e ", "e2e p99 at %d msg/s" % E2E_RATE, na))


def workload_7():
    """Workloads 1 and 4 over TLS."""
    clusters, na = start_clusters("w7", tls=True, feature="TLS")
    thr = {s: [] for s in clusters}
    for rep in range(REPS):
        for s, r in for_each(clusters, lambda s, c: run_tm_load(
                c, "produce", produce_args(topic("w7", s, rep), 1024, 1, 1, SECONDS, warmup=WARMUP),
                timed_limit(SECONDS))).items():
            thr[s].append(r)
        drop_topics(clusters, {s: [topic("w7", s, rep)] for s in clusters})
    lat = workload_4(clusters)
    stop_clusters(clusters)
    tf = figures(thr, "mb_per_s")
    lf = figures(lat, "latency_us.p99", 1e-3)
    tf.update(na)
    lf.update(na)
    return [M("TLS produce throughput", "MB/s", "higher", 1.5, tf, PRODUCE_PATH),
            M("TLS e2e p99 at %d msg/s" % E2E_RATE, "ms", "lower", 0.5, lf)]


def start_clusters(label, nodes=1, tls=False, flush_messages=None, feature=None):
    """Starts one cluster per system; ({system: Cluster}, {system: FIGURE})
    where the second holds why a system could not start: for Tidemark and a
    named feature that has not landed, 'n/a'; otherwise 'failed'."""
    clusters, errs = {}, {}
    for s in SYSTEMS:
        c = Cluster(s, label, nodes, tls, flush_messages)
        try:
            c.start()
            clusters[s] = c
            log("%s %s: up in %.2fs" % (s, label, c.start_to_first_produce_s))
        except StartError as e:
            c.destroy()
            if s == "tidemark" and feature and s not in MAIN_START_FAILED:
                errs[s] = report.not_available("%s not available yet: %s" % (feature, e))
            else:
                errs[s] = report.failed("could not start: %s" % e)
    return clusters, errs


def stop_clusters(clusters):
    for c in clusters.values():
        for note in c.stop():
            log("%s: %s" % (c.system, note))
        c.destroy()


# ---- machine ---------------------------------------------------------------

def machine_info():
    info = {"nproc": os.cpu_count(), "kernel": os.uname().release}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024.0 / 1024.0, 1)
    except OSError:
        pass
    try:
        df = subprocess.run(["df", "-P", "-T", DATA], capture_output=True, text=True).stdout.splitlines()[-1].split()
        dev, fstype, size_k = df[0], df[1], int(df[2])
        name = os.path.basename(dev)
        rot = open("/sys/block/%s/queue/rotational" % name).read().strip() if os.path.exists(
            "/sys/block/%s/queue/rotational" % name) else "?"
        kind = "queue/rotational=%s" % rot
        info["disk"] = "%s (%s, %s, %.0f GiB)" % (dev, fstype, kind, size_k / 1024.0 / 1024.0)
    except (OSError, IndexError, ValueError):
        info["disk"] = "?"
    return info


def physical_limits():
    """iperf3 single-stream loopback; fio sequential writes in DATA, and a
    sequential read of the first write's file with the page cache dropped
    (what a cold consume could read at most), each disk figure the best of
    DISK_SAMPLES runs."""
    out = {"tcp_congestion_control": system_congestion_control()}
    out["tidemark_loopback_cc"] = TIDEMARK_LOOPBACK_CC
    for key, extra in (("loopback_mb_per_s", []), ("loopback_tidemark_mb_per_s", ["-C", TIDEMARK_LOOPBACK_CC])):
        v = iperf3_loopback(extra)
        out[key if report.is_finite(v) else key + "_error"] = v
    if shutil.which("fio"):
        d = os.path.join(DATA, "fio")
        for _ in range(DISK_SAMPLES):
            os.makedirs(d, exist_ok=True)
            disk_sample(d, out)
            shutil.rmtree(d, ignore_errors=True)
        for key in DISK_LIMITS:
            got = [v for v in out.get(key + "_samples", []) if report.is_finite(v)]
            if got:
                out[key] = max(got)
                out.pop(key + "_error", None)
    else:
        out["disk_page_cache_write_mb_per_s_error"] = "fio not installed"
    return out


# This VM's disk swings between identical runs (three fio cold reads of one
# file in a row: 1705, 767, 1990 MB/s), so each disk limit is the best of
# DISK_SAMPLES runs, all of them kept in the JSON (<key>_samples).
DISK_SAMPLES = 3
DISK_LIMITS = ("disk_page_cache_write_mb_per_s", "disk_direct_write_mb_per_s",
               "disk_seq_write_fdatasync_mb_per_s", "disk_seq_read_cold_mb_per_s")
# One repetition of workload 1 writes several GiB of new data; the page-cache
# write limit writes 4 GiB.  On this VM the pace of a buffered write is the
# pace at which the guest gets memory for new page-cache pages: memory the
# host has taken back (freed for a few seconds) costs a host fault on first
# touch.  fio, 5 s apart: 1 GiB 781-979 MB/s, 4 and 8 GiB 412, one core busy
# in the copy; back to back (the last sample's pages still backed): 702-718.
# A 1 GiB job measured a pace no broker keeps up for a whole repetition.
DISK_PAGE_CACHE_WRITE_SIZE = "4G"


def disk_sample(d, out):
    """One fio run of each disk job in the empty directory d, appended to
    out[<key>_samples]; a failure goes to out[<key>_error].

    - page-cache write: DISK_PAGE_CACHE_WRITE_SIZE of new data, buffered, no
      fsync, as both brokers write at acks=1 with no flush policy; fio's own
      CPU (user + system, in cores) goes to
      disk_page_cache_write_cpu_cores_samples, to show whether the kernel's
      copy into the page cache or the device binds it;
    - direct write: the same size with O_DIRECT, 8 MiB in flight through
      io_uring, the device's own pace with no page cache;
    - fdatasync write: 1 GiB with an fdatasync after each MiB.
    Each write job appends to a new file of its own (fio names it after the
    job), as a broker's log does: an fdatasync after overwriting blocks an
    earlier job allocated needs no journal commit (with one per MiB,
    overwriting measured 1333 MB/s here, appending 333).  The cold read
    reads the first GiB of the page-cache job's file back after
    drop_caches, buffered as the brokers read."""
    def fio(key, args, kind="write"):
        try:
            r = subprocess.run(["fio", "--directory=" + d, "--bs=1M", "--ioengine=psync",
                                "--output-format=json"] + args, capture_output=True, text=True, timeout=300)
            v = report.parse_fio(r.stdout, kind)
            if v is None:
                out[key + "_error"] = "fio failed: %s" % r.stderr.strip()[-200:]
                return None
            out.setdefault(key + "_samples", []).append(v)
            return r.stdout
        except subprocess.TimeoutExpired:
            out[key + "_error"] = "fio timed out"
            return None

    text = fio("disk_page_cache_write_mb_per_s",
               ["--name=seqwrite", "--rw=write", "--size=" + DISK_PAGE_CACHE_WRITE_SIZE])
    if text:
        out.setdefault("disk_page_cache_write_cpu_cores_samples", []).append(report.parse_fio_cpu(text))
    why = drop_caches()
    if why:
        out["disk_seq_read_cold_mb_per_s_error"] = why
    else:
        fio("disk_seq_read_cold_mb_per_s", ["--name=seqwrite", "--rw=read", "--size=1G"], "read")
    fio("disk_direct_write_mb_per_s", ["--name=seqwrite-direct", "--rw=write", "--direct=1",
                                       "--ioengine=io_uring", "--iodepth=8",
                                       "--size=" + DISK_PAGE_CACHE_WRITE_SIZE])
    fio("disk_seq_write_fdatasync_mb_per_s", ["--name=seqwrite-fdatasync", "--rw=write", "--size=1G",
                                              "--fdatasync=1"])


def system_congestion_control():
    try:
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            return f.read().strip()
    except OSError:
        return None


def iperf3_loopback(extra):
    """MB/s of one iperf3 stream over loopback for 5 s (extra: its client's
    options, e.g. -C reno), or why there is no figure."""
    if not shutil.which("iperf3"):
        return "iperf3 not installed"
    port = free_ports(1)[0]
    srv = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        r = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "5", "-J"] + extra,
                           capture_output=True, text=True, timeout=30)
        v = report.parse_iperf3(r.stdout)
        return v if v is not None else "iperf3 %s failed: %s" % (" ".join(extra), r.stderr.strip()[-200:])
    except subprocess.TimeoutExpired:
        return "iperf3 timed out"
    finally:
        stop_pid(srv, 5)


def tidemark_flush_policy():
    """Tidemark's default flush policy, read from the defaults in
    broker/config.c (the broker is started with the flush keys unset, so
    these are what ran)."""
    import re
    try:
        src = open(os.path.join(ROOT, "broker", "config.c"), errors="replace").read()
    except OSError:
        return "unknown (broker/config.c not found)"
    found = []
    for key, field in (("log.flush.interval.messages", "log_flush_interval_messages"),
                       ("log.flush.interval.ms", "log_flush_interval_ms")):
        m = re.search(r"->%s\s*=\s*([^;]+);" % field, src)
        found.append("%s=%s" % (key, m.group(1).strip() if m else "?"))
    never = all(f.endswith("INT64_MAX") for f in found)
    return ", ".join(found) + (" (never forced: no fsync per write, like Kafka)" if never else "")


def librdkafka_version():
    r = subprocess.run(["pkg-config", "--modversion", "rdkafka"], capture_output=True, text=True)
    return r.stdout.strip() or "?"


# ---- main ------------------------------------------------------------------

def main():
    started = datetime.datetime.now()
    stamp = started.strftime("%Y-%m-%d-%H%M%S")
    os.makedirs(DATA, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    if not os.access(TM_LOAD, os.X_OK):
        log("%s is missing (bench/run.sh builds it)" % TM_LOAD)
        return 2
    result = {"mode": MODE, "started": started.isoformat(timespec="seconds"), "machine": machine_info(),
              "systems": SYSTEMS, "settings": {}, "workloads": []}
    log("%s run of %s: %d reps, %gs each after %gs warm-up" % (MODE, ",".join(SYSTEMS), REPS, SECONDS, WARMUP))
    st = os.statvfs(DATA)
    free_gib = st.f_bavail * st.f_frsize / 1024.0 ** 3
    log("%.0f GiB free under %s%s" % (free_gib, DATA, "" if QUICK or free_gib >= 40 else
                                      ": a full run keeps up to about 40 GiB at once; expect disk-full failures"))
    if not QUICK:
        result["limits"] = physical_limits()
    w6 = {}
    ws = result["workloads"]

    clusters, start_errs = start_clusters("main")
    MAIN_START_FAILED.update(start_errs)
    w6["start"] = {s: report.ok(c.start_to_first_produce_s, **c.probe) for s, c in clusters.items()}
    w6["start"].update(start_errs)
    time.sleep(2 if QUICK else 5)
    w6["rss_idle"] = {s: report.ok(report.parse_proc_status(read_proc(c.nodes[0].pid, "status"))
                                   .get("VmRSS", 0) / report.MB) for s, c in clusters.items()}
    w6["rss_idle"].update(start_errs)
    tidemark_bin = os.path.relpath(TIDEMARK_BIN, ROOT)
    result["settings"] = {
        "kafka_version": KAFKA_VERSION, "librdkafka": librdkafka_version(), "reps": REPS,
        "seconds": SECONDS, "warmup_s": WARMUP, "backlog_mb": BACKLOG_MB, "e2e_rate": E2E_RATE,
        "e2e_linger_ms": E2E_LINGER_MS, "kafka_jvm": " ".join(KAFKA_JVM),
        "tidemark_flush_default": tidemark_flush_policy(),
        "tidemark_bin": tidemark_bin,
        "notes": [
            "Tidemark: %s" % tidemark_bin,
            "one node (KRaft, broker and controller roles) unless stated, num.partitions=1, "
            "topics made by CreateTopics with the partitions each workload names",
            "log.flush.interval.messages and log.flush.interval.ms unset: each broker's default flush "
            "policy (Kafka: no fsync per write, the OS writes back). Tidemark's: %s" %
            tidemark_flush_policy(),
            "row 1-fsync sets log.flush.interval.messages=1 on both",
            "TCP: Kafka's sockets use the system's congestion control (%s); Tidemark's connections "
            "with this host use tidemark.loopback.congestion.control (its default, %s: no pacing "
            "on loopback), so a Fetch's answer leaves Tidemark at %s's pace and Kafka at the "
            "system's; the clients' sockets use the system's"
            % (system_congestion_control() or "?", TIDEMARK_LOOPBACK_CC, TIDEMARK_LOOPBACK_CC),
            "data directories on the same disk (%s)" % DATA,
            "Kafka JVM: %s" % " ".join(KAFKA_JVM),
            "tm-load: librdkafka %s defaults unless stated; latency workloads use linger.ms=%d "
            "and the consumer's default long poll (fetch.min.bytes=1, fetch.wait.max.ms=500: "
            "answered as soon as a record is there)"
            % (librdkafka_version(), E2E_LINGER_MS),
            "workload 2: %d tm-load processes, each handing librdkafka %s records per call"
            % (W2_CLIENTS, W2_CALL_RECORDS or 1),
        ]}
    for s, fig in start_errs.items():
        log("%s: %s" % (s, fig.get("error")))

    def add(wid, title, metrics):
        # A system that could not start has its reason in every row.
        for mm in metrics:
            for s, fig in start_errs.items():
                mm[s] = fig
        ws.append(W(wid, title, metrics))

    if wanted("1"):
        log("workload 1: produce throughput")
        add("1", "produce, 1 KiB, 1 partition, acks=1", workload_1(clusters, w6))
        if JAVA:
            add("1-java", "ProducerPerformance, 1 KiB, acks=1", workload_1_java(clusters))
    if wanted("2"):
        fresh(clusters)
        log("workload 2: produce message rate")
        add("2", "produce, 100 B, 6 partitions, acks=1", workload_2(clusters))
    if wanted("3"):
        fresh(clusters)
        log("workload 3: consume a %d MB backlog" % BACKLOG_MB)
        size = "%d GiB" % (BACKLOG_MB // 1024) if BACKLOG_MB % 1024 == 0 else "%d MB" % BACKLOG_MB
        add("3", "consume a %s backlog" % size, workload_3(clusters))
    if wanted("4"):
        fresh(clusters)
        log("workload 4: end-to-end latency at %d msg/s" % E2E_RATE)
        m = latency_metrics(workload_4(clusters))
        # The other linger: at 1 ms the client's wait is most of either
        # broker's latency; at 0 (Kafka's EndToEndLatency tool) every
        # record is a request, and on 2 shared cores Kafka falls behind
        # the rate (item 44), so it is reported without a target.
        other = 0 if E2E_LINGER_MS else 1
        lo = workload_4(clusters, linger=other, name="w4l%d" % other)
        m.append(M("p99 with the producer's linger.ms=%d" % other, "ms", "lower", None,
                   figures(lo, "latency_us.p99", 1e-3)))
        add("4", "end-to-end, %d msg/s, 1 KiB, acks=all" % E2E_RATE, m)
    if wanted("6"):
        m = [M("RSS idle", "MiB", "lower", 0.1, w6["rss_idle"])]
        if "rss_load" in w6:
            m.append(M("RSS peak under workload 1", "MiB", "lower", 0.1, w6["rss_load"]))
        m.append(M("start to first acknowledged produce", "s", "lower", 0.05, w6["start"]))
        if "cpu_per_gib" in w6:
            m.append(M("broker CPU per GiB produced", "CPU s/GiB", "lower", None, w6["cpu_per_gib"]))
        add("6", "footprint", m)
    stop_clusters(clusters)

    if wanted("1") and not QUICK:
        log("workload 1-fsync: log.flush.interval.messages=1")
        ws.append(W("1-fsync", "produce, 1 KiB, fsync per append", workload_1_fsync()))
    if wanted("5"):
        log("workload 5: three nodes, RF=3")
        ws.append(W("5", "3 nodes, RF=3, min.insync.replicas=2, acks=all", workload_5()))
    if wanted("7"):
        log("workload 7: TLS")
        ws.append(W("7", "TLS: produce (1) and end-to-end (4)", workload_7()))

    # Order rows as the issue numbers them.
    order = ["1", "1-java", "1-fsync", "2", "3", "4", "5", "6", "7"]
    ws.sort(key=lambda w: order.index(w["id"]) if w["id"] in order else 99)

    result["steal"] = STEAL
    table = report.render_markdown(result)
    print("\n## Tidemark / Apache Kafka, %s run, %s\n" % (MODE, result["started"]))
    print(table)
    path = os.path.join(RESULTS, "%s-%s.json" % (stamp, MODE))
    chart = report.write_chart(result, path[:-5] + ".png")
    result["chart"] = os.path.relpath(chart, ROOT) if chart else None
    report.write_json(result, path)
    log("results: %s%s" % (os.path.relpath(path, ROOT), (", chart: " + result["chart"]) if chart else
                           " (no chart: %s)" % report.chart_unavailable(result)))
    if not QUICK and not ONLY:
        report.update_doc(result, os.path.join(ROOT, "docs", "benchmarks.md"), chart)
        log("docs/benchmarks.md updated")

    bad = []
    for s in SYSTEMS:
        bad += [(s,) + f for f in report.failures(result, s)]
    if bad:
        said = set()
        for s, wid, name, err in bad:
            if (s, wid, err) not in said:
                said.add((s, wid, err))
                log("FAILED: %s workload %s (%s): %s" % (s, wid, name, err))
        return 1
    log("every workload ran")
    return 0


def _on_signal(sig, frame):
    log("stopped by %s: stopping the brokers" % signal.Signals(sig).name)
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        rc = main()
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    finally:
        stop_all()
    sys.exit(rc)
