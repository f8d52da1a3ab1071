"""report.py - the benchmark's arithmetic and presentation, kept apart from
the process handling in bench.py so that it can be unit tested
(bench/test_report.py): parsing what the load tools print, medians, the
Tidemark/Kafka ratio and whether it meets the target, the Markdown table,
the results JSON, the PNG chart and docs/benchmarks.md.

Standard library only; matplotlib is used for the chart when importable.

A result is a dict:
  {"mode": "quick"|"full", "started": ISO time, "machine": {...},
   "settings": {...}, "workloads": [WORKLOAD, ...]}
WORKLOAD:
  {"id": "1", "title": "...", "metrics": [METRIC, ...]}
METRIC:
  {"name": "throughput", "unit": "MB/s", "better": "higher"|"lower",
   "target": 1.5 or None,     # the ratio Tidemark/Kafka should reach
   "tidemark": FIGURE, "kafka": FIGURE, "ratio": float or None}
FIGURE:
  {"status": "ok", "value": float, "runs": [float, ...], "detail": {...}}
  {"status": "failed", "error": "..."}      # the workload ran and broke
  {"status": "n/a", "reason": "..."}        # not available yet / not permitted
  {"status": "skipped", "reason": "..."}    # not part of this mode

The ratio is always Tidemark / Kafka.  For "higher" metrics the target is met
when ratio >= target; for "lower" metrics when ratio <= target (a target of
0.5 for latency means "at most half of Kafka's").  The verdict is reported,
never asserted: numbers live in reports.
"""

import json
import math
import os
import re

MB = 1048576.0  # MB = 2^20 bytes, as Kafka's perf tools count


# ---- parsing ---------------------------------------------------------------

def parse_tm_load(text):
    """The last JSON object printed by tm-load in text, or None."""
    found = None
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("tool") == "tm-load":
            found = obj
    return found


_PP_FINAL = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>[\d.]+) ms 50th, (?P<p95>[\d.]+) ms 95th, (?P<p99>[\d.]+) ms 99th, "
    r"(?P<p999>[\d.]+) ms 99.9th")


_PP_WINDOW = re.compile(
    r"^(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency\.$")


def parse_producer_performance(text):
    """The summary line of Kafka's ProducerPerformance, or None.

    '300000 records sent, 17160.5 records/sec (16.76 MB/sec), 1496.37 ms avg
    latency, 2497.00 ms max latency, 1420 ms 50th, 2296 ms 95th, 2407 ms 99th,
    2478 ms 99.9th.'  (its MB is 2^20 bytes, like ours)

    The progress lines before it ('26907 records sent, 5373.9 records/sec
    (5.25 MB/sec), 1914.1 ms avg latency, 2333.0 ms max latency.', one per
    ~5 s window) are kept in "windows", oldest first."""
    found = None
    windows = []
    for line in (text or "").splitlines():
        line = line.strip()
        w = _PP_WINDOW.match(line)
        if w:
            windows.append({"records": int(w.group("records")), "msgs_per_s": float(w.group("rps")),
                            "mb_per_s": float(w.group("mbps")), "avg_ms": float(w.group("avg")),
                            "max_ms": float(w.group("max"))})
            continue
        m = _PP_FINAL.search(line)
        if m:
            found = {
                "records": int(m.group("records")),
                "msgs_per_s": float(m.group("rps")),
                "mb_per_s": float(m.group("mbps")),
                "latency_ms": {k: float(m.group(k)) for k in ("avg", "max", "p50", "p95", "p99", "p999")},
                "windows": windows,
            }
    return found


def producer_performance_after(pp, warmup_s):
    """ProducerPerformance's figures over its progress windows that start at
    or after warmup_s seconds into the run, or None when no window does.

    The whole-run summary counts the first seconds, in which the client's
    JVM is still compiling its hot paths (its 5 s windows against an idle
    Tidemark: 49, 118, 163, 181 MB/s), so it measures the client's warm-up
    as much as the broker.  A window lasts records /
    rate seconds; the result weights each by its length: mb_per_s and
    msgs_per_s over the kept windows, their record-weighted average latency
    and their worst maximum."""
    t = 0.0
    kept = []
    for w in pp.get("windows", []):
        length = w["records"] / w["msgs_per_s"] if w["msgs_per_s"] > 0 else 0.0
        if t >= warmup_s - 1e-9 and length > 0:
            kept.append((w, length))
        t += length
    if not kept:
        return None
    seconds = sum(length for _, length in kept)
    records = sum(w["records"] for w, _ in kept)
    return {
        "mb_per_s": sum(w["mb_per_s"] * length for w, length in kept) / seconds,
        "msgs_per_s": records / seconds,
        "records": records,
        "seconds": seconds,
        "skipped_s": t - seconds,
        "avg_ms": sum(w["avg_ms"] * w["records"] for w, _ in kept) / records,
        "max_ms": max(w["max_ms"] for w, _ in kept),
    }


_CP_HEADER = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec"


def parse_consumer_performance(text):
    """The data row under ConsumerPerformance's CSV header, or None.

    header: start.time, end.time, data.consumed.in.MB, MB.sec,
            data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms,
            fetch.MB.sec, fetch.nMsg.sec"""
    lines = (text or "").splitlines()
    for i, line in enumerate(lines):
        if not line.strip().startswith(_CP_HEADER):
            continue
        names = [n.strip() for n in line.split(",")]
        for row in lines[i + 1:]:
            cells = [c.strip() for c in row.split(",")]
            if len(cells) != len(names):
                continue
            rec = dict(zip(names, cells))
            try:
                out = {
                    "mb": float(rec["data.consumed.in.MB"]),
                    "mb_per_s": float(rec["MB.sec"]),
                    "records": int(float(rec["data.consumed.in.nMsg"])),
                    "msgs_per_s": float(rec["nMsg.sec"]),
                }
                if "fetch.MB.sec" in rec:
                    out["fetch_mb_per_s"] = float(rec["fetch.MB.sec"])
                    out["fetch_msgs_per_s"] = float(rec["fetch.nMsg.sec"])
                    out["rebalance_ms"] = float(rec["rebalance.time.ms"])
                return out
            except (KeyError, ValueError):
                continue
    return None


def parse_proc_status(text):
    """VmRSS and VmHWM in bytes from /proc/PID/status text."""
    out = {}
    for line in (text or "").splitlines():
        for key in ("VmRSS", "VmHWM"):
            if line.startswith(key + ":"):
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    out[key] = int(parts[1]) * 1024  # the kernel says kB = 1024 bytes
    return out


def parse_proc_stat_cpu_ticks(text):
    """utime + stime (clock ticks) from /proc/PID/stat; the command name may
    hold spaces and parentheses, so fields are counted after the last ')'."""
    if not text or ")" not in text:
        return None
    rest = text[text.rindex(")") + 1:].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    if len(rest) < 13:
        return None
    return int(rest[11]) + int(rest[12])


def parse_proc_io_read_bytes(text):
    """read_bytes from /proc/PID/io: what the process made the storage
    layer fetch (page cache misses); None when it is not there."""
    for line in (text or "").splitlines():
        k, _, v = line.partition(":")
        if k.strip() == "read_bytes":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def parse_proc_stat_cpu(text):
    """(total ticks, steal ticks) of the machine from /proc/stat's first
    line ("cpu user nice system idle iowait irq softirq steal ..."); None
    when it is not there.  Steal is time the host ran something else while
    this guest wanted the CPU."""
    for line in (text or "").splitlines():
        f = line.split()
        if f and f[0] == "cpu" and len(f) >= 9:
            try:
                ticks = [int(x) for x in f[1:]]
            except ValueError:
                return None
            # guest and guest_nice (fields 10, 11) are already inside user and nice
            return sum(ticks[:8]), ticks[7]
    return None


def steal_share(before, after):
    """Share (0..1) of the machine's CPU time stolen between two
    parse_proc_stat_cpu readings; None when either is missing or no time
    passed."""
    if not before or not after:
        return None
    total, steal = after[0] - before[0], after[1] - before[1]
    if total <= 0 or steal < 0:
        return None
    return steal / float(total)


def cpu_between(before, after, thread=None):
    """A run's CPU from two (monotonic s, children's CPU s, brokers' CPU s)
    readings (bench.cpu_use): {"wall_s", "client_s", "broker_s"}, with
    "thread" the client's busiest thread when tm-load reported it
    ({"name", "cores"}); None when a reading is missing, a broker was down,
    or no time passed."""
    if not before or not after or before[2] is None or after[2] is None:
        return None
    wall = after[0] - before[0]
    if wall <= 0:
        return None
    out = {"wall_s": wall, "client_s": max(0.0, after[1] - before[1]),
           "broker_s": max(0.0, after[2] - before[2])}
    if thread:
        out["thread"] = thread
    return out


# A run counts as CPU-bound when client and broker together kept at least
# this share of the cores the host left it (nproc less the steal) busy.
CPU_BOUND_SHARE = 0.85


def cpu_split(fig, nproc):
    """How one figure's runs used the machine, from their detail.cpu and
    detail.steal: {"client": cores, "broker": cores, "busy": share of the
    cores the host left, "bound": CPU-bound, "thread": the client's busiest
    thread {"name", "cores"} or None}, medians over the runs; None without
    CPU readings for every run."""
    d = (fig or {}).get("detail") or {}
    cpu = d.get("cpu") or []
    if fig.get("status") != "ok" or not cpu or any(not c for c in cpu) or not nproc:
        return None
    steal = [x for x in (d.get("steal") or []) if x is not None]
    left = nproc * (1.0 - (median(steal) if steal else 0.0))
    client = median([c["client_s"] / c["wall_s"] for c in cpu])
    broker = median([c["broker_s"] / c["wall_s"] for c in cpu])
    busy = (client + broker) / left if left > 0 else None
    threads = [c.get("thread") for c in cpu]
    thread = None
    if all(t and is_finite(t.get("cores")) and t["cores"] > 0 for t in threads):
        thread = {"name": threads[0].get("name"), "cores": median([t["cores"] for t in threads])}
    return {"client": client, "broker": broker, "busy": busy, "thread": thread,
            "bound": busy is not None and busy >= CPU_BOUND_SHARE}


def free_broker_ratio(r, tidemark_split, limit=None):
    """The ratio a throughput could show if Tidemark's broker cost no CPU
    and answered at once, as {"ratio", "by"}.  The client's busiest thread
    could then run a full core: Tidemark's rate grows by 1 / its cores
    ("by": "thread"; librdkafka does a broker's I/O in one thread, so that
    thread is what waits on the broker's answers).  Where the run was
    CPU-bound, the client can only have the broker's cores on top of its
    own, a gain of (client + broker) / client ("by": "cores"), whichever is
    less.  limit, (limit key, gain) from the machine's limits (the disk,
    loopback: binding_limit over Tidemark's figure), caps it too ("by": the
    key).  None when neither the thread nor the cores bound it (no thread
    reported and the run not CPU-bound: the Java tools on a partly idle
    machine)."""
    t = tidemark_split
    if r is None or not t or t["client"] <= 0:
        return None
    gains = []
    if t.get("thread"):
        gains.append((1.0 / t["thread"]["cores"], "thread"))
    if t["bound"]:
        gains.append(((t["client"] + t["broker"]) / t["client"], "cores"))
    if not gains:
        return None
    if limit and is_finite(limit[1]) and limit[1] > 0:
        gains.append((max(1.0, limit[1]), limit[0]))
    gain, by = min(gains)
    return {"ratio": r * gain, "by": by}


def cpu_rows(result):
    """Per throughput whose runs carry CPU readings on both systems: each
    system's cpu_split, the ratio, and free_broker_ratio.  Metrics of one
    workload taken from the same runs (MB/s and msgs/s) give one row."""
    nproc = (result.get("machine") or {}).get("nproc")
    out, seen = [], set()
    for w in result.get("workloads", []):
        for m in w.get("metrics", []):
            if m.get("better") != "higher":
                continue
            t, k = cpu_split(m.get("tidemark") or {}, nproc), cpu_split(m.get("kafka") or {}, nproc)
            if not t or not k:
                continue
            runs = json.dumps([w["id"], m["tidemark"]["detail"]["cpu"], m["kafka"]["detail"]["cpu"]],
                              sort_keys=True)
            if runs in seen:
                continue
            seen.add(runs)
            b = binding_limit(result.get("limits"), m.get("bound"), "tidemark")
            tv = m["tidemark"].get("value")
            limit = (b[0], b[2] / tv) if b and is_finite(tv) and tv > 0 else None
            out.append({"id": w["id"], "metric": m["name"], "target": m.get("target"),
                        "tidemark": t, "kafka": k, "ratio": m.get("ratio"),
                        "free_broker": free_broker_ratio(m.get("ratio"), t, limit)})
    return out


def parse_iperf3(text):
    """Receiver throughput of an iperf3 -J run, in MB/s (2^20 bytes)."""
    try:
        obj = json.loads(text)
        bps = obj["end"]["sum_received"]["bits_per_second"]
    except (ValueError, KeyError, TypeError):
        return None
    return bps / 8.0 / MB


def _fio_field(text, get):
    """get(first job) of a fio --output-format=json run (fio may print
    notes before the JSON), or None when the run printed no such field."""
    start = (text or "").find("{")
    if start < 0:
        return None
    try:
        return get(json.loads(text[start:])["jobs"][0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def parse_fio(text, direction="write"):
    """Bandwidth of a fio --output-format=json run, in MB/s (2^20)."""
    return _fio_field(text, lambda job: job[direction]["bw"] / 1024.0)  # fio's bw is KiB/s


def parse_fio_cpu(text):
    """Cores fio's job kept busy (user + system) in a --output-format=json
    run, or None."""
    return _fio_field(text, lambda job: (float(job["usr_cpu"]) + float(job["sys_cpu"])) / 100.0)


# ---- arithmetic ------------------------------------------------------------

def median(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    n = len(vals)
    mid = n // 2
    return float(vals[mid]) if n % 2 else (vals[mid - 1] + vals[mid]) / 2.0


def ratio(tidemark, kafka):
    """Tidemark / Kafka, or None when either is missing or Kafka's is 0."""
    if tidemark is None or kafka is None:
        return None
    if kafka == 0:
        return None
    return float(tidemark) / float(kafka)


def pair_ratios(tidemark, kafka):
    """Tidemark / Kafka of each repetition: the harness runs them
    interleaved (Tidemark, Kafka, Tidemark, ...), so run i of each system
    happened minutes apart, and a machine that changes speed between
    repetitions moves both of a pair.  Empty unless both figures are ok and
    have the same number of runs."""
    if tidemark.get("status") != "ok" or kafka.get("status") != "ok":
        return []
    t, k = tidemark.get("runs") or [], kafka.get("runs") or []
    if len(t) != len(k):
        return []
    return [ratio(a, b) for a, b in zip(t, k) if ratio(a, b) is not None]


def verdict(r, better, target):
    """'met', 'missed', or '' when there is no ratio or no target."""
    if r is None or target is None:
        return ""
    if better == "higher":
        return "met" if r >= target else "missed"
    return "met" if r <= target else "missed"


def merge_clients(results):
    """Several tm-load processes that ran at once, as one result: rates and
    counts summed, each latency percentile the worst of them; a string (why
    one failed) if any did."""
    bad = [r for r in results if isinstance(r, str)]
    if bad or not results:
        return bad[0] if bad else "no client ran"
    out = dict(results[0])
    for k in ("msgs_per_s", "mb_per_s", "records", "bytes", "errors", "total_bytes"):
        out[k] = sum(r.get(k, 0) for r in results)
    out["latency_us"] = {k: max(r.get("latency_us", {}).get(k, 0) for r in results)
                         for k in ("p50", "p99", "p999", "max")}
    out["clients"] = len(results)
    threads = [r.get("busiest_thread") for r in results]
    if all(t and is_finite(t.get("cores")) for t in threads):
        out["busiest_thread"] = max(threads, key=lambda t: t["cores"])
    else:
        out.pop("busiest_thread", None)
    return out


def ok(value, runs=None, **detail):
    return {"status": "ok", "value": value, "runs": list(runs or [value]), "detail": detail}


def failed(error):
    return {"status": "failed", "error": str(error)[:500]}


def not_available(reason):
    return {"status": "n/a", "reason": reason}


def skipped(reason):
    return {"status": "skipped", "reason": reason}


def from_runs(runs, key, **detail):
    """A figure from repeated runs (dicts from tm-load or the Java tools):
    the median of run[key]; failed when any run failed, since a median over
    the runs that happened to work would flatter the broker."""
    bad = [r for r in runs if isinstance(r, str)]
    if bad:
        return failed(bad[0])
    vals = [r.get(key) if key in r else _dig(r, key) for r in runs]
    if not vals or any(v is None for v in vals):
        return failed("no value for %s" % key)
    steal = [r.get("steal") for r in runs]
    if any(v is not None for v in steal):
        detail["steal"] = steal  # the host's share of each repetition
    cpu = [r.get("cpu") for r in runs]
    if any(cpu):
        detail["cpu"] = cpu  # each repetition's clients' and brokers' CPU (cpu_between)
    disk = [r.get("disk_read_mb") for r in runs]
    if any(v is not None for v in disk):
        detail["disk_read_mb"] = disk  # what the brokers read from the disk in each repetition
    return ok(median(vals), vals, **detail)


def _dig(obj, dotted):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def metric(name, unit, better, target, tidemark, kafka, bound=None):
    """bound: the machine limits a throughput is held against, as
    [(limit key, times each measured byte crosses it), ...]."""
    t = tidemark.get("value") if tidemark.get("status") == "ok" else None
    k = kafka.get("value") if kafka.get("status") == "ok" else None
    m = {"name": name, "unit": unit, "better": better, "target": target,
         "tidemark": tidemark, "kafka": kafka, "ratio": ratio(t, k),
         "pair_ratios": pair_ratios(tidemark, kafka)}
    if bound:
        m["bound"] = [[key, times] for key, times in bound]
    return m


# A path key for the bytes a broker sends over loopback (a Fetch's answer):
# their pace is set by the sending socket's congestion control, which for
# Tidemark is tidemark.loopback.congestion.control (loopback_tidemark_mb_per_s,
# measured with iperf3 -C) and for Kafka the system's (loopback_mb_per_s).
BROKER_SEND = "loopback_broker_send"


def limit_key(limits, key, system):
    """The measured limit a path key stands for on system's path."""
    if key != BROKER_SEND:
        return key
    v = (limits or {}).get("loopback_tidemark_mb_per_s")
    if system == "tidemark" and is_finite(v) and v > 0:
        return "loopback_tidemark_mb_per_s"
    return "loopback_mb_per_s"


def binding_limit(limits, bound, system="kafka"):
    """(limit key, times crossed, MB/s of measured bytes it allows) of the
    tightest limit in bound on system's path, or None when none of them was
    measured."""
    best = None
    for key, times in bound or []:
        key = limit_key(limits, key, system)
        v = (limits or {}).get(key)
        if not is_finite(v) or v <= 0 or not times:
            continue
        allowed = v / float(times)
        if best is None or allowed < best[2]:
            best = (key, times, allowed)
    return best


def limit_shares(result):
    """Every bounded throughput as a share of what the machine can move:
    [{"id", "metric", "limit", "times", "allowed", "tidemark", "kafka"}],
    the shares as fractions (None where a figure is missing).  limit, times
    and allowed are Kafka's (Tidemark's when Kafka's path has no measured
    limit); where Tidemark's path is bound elsewhere (its loopback sends,
    BROKER_SEND), "tidemark_limit" holds its (limit, times, allowed)."""
    out = []
    limits = result.get("limits") or {}
    for w in result.get("workloads", []):
        for m in w.get("metrics", []):
            b = {s: binding_limit(limits, m.get("bound"), s) for s in ("tidemark", "kafka")}
            main = b["kafka"] or b["tidemark"]
            if not main:
                continue
            key, times, allowed = main
            row = {"id": w["id"], "metric": m["name"], "limit": key, "times": times, "allowed": allowed}
            if b["tidemark"] and b["tidemark"] != main:
                row["tidemark_limit"] = b["tidemark"]
            for system in ("tidemark", "kafka"):
                fig = m.get(system, {})
                v = fig.get("value") if fig.get("status") == "ok" else None
                row[system] = v / b[system][2] if is_finite(v) and b[system] else None
            out.append(row)
    return out


def failures(result, system="tidemark"):
    """(workload id, metric name, error) for every failed figure of system."""
    out = []
    for w in result.get("workloads", []):
        for m in w.get("metrics", []):
            fig = m.get(system, {})
            if fig.get("status") == "failed":
                out.append((w["id"], m["name"], fig.get("error", "")))
    return out


# ---- presentation ----------------------------------------------------------

def fmt_value(value, unit):
    if value is None:
        return ""
    if unit in ("msgs/s",):
        return "{:,.0f}".format(value)
    if unit == "ms":
        return "%.2f" % value if value < 100 else "%.0f" % value
    if unit in ("MB/s", "MiB", "s", "CPU s/GiB"):
        if value >= 100:
            return "%.0f" % value
        return "%.1f" % value if value >= 10 else "%.2f" % value if value >= 0.1 else "%.3f" % value
    return "%.3g" % value


def fmt_figure(fig, unit):
    st = fig.get("status")
    if st == "ok":
        return fmt_value(fig["value"], unit)
    if st == "failed":
        return "failed"
    if st == "n/a":
        return "n/a"
    return "-"


def fmt_ratio(r):
    if r is None:
        return ""
    return "%.2fx" % r if r >= 0.01 else "%.4fx" % r


def fmt_pairs(pairs):
    """'1.52x (0.57-2.56x)': the median of the per-repetition ratios and
    their spread; '' for fewer than two."""
    if not pairs or len(pairs) < 2:
        return ""
    return "%s (%s-%s)" % (fmt_ratio(median(pairs)), fmt_ratio(min(pairs))[:-1], fmt_ratio(max(pairs)))


def fmt_steal(steal):
    """'Tidemark 12 % (max 30 %), Kafka 15 % (max 22 %)' from {system: [share, ...]}."""
    parts = []
    for system in ("tidemark", "kafka"):
        vals = [v for v in (steal or {}).get(system, []) if v is not None]
        if vals:
            parts.append("%s %.0f %% (max %.0f %%)" % (system.capitalize(), 100 * median(vals), 100 * max(vals)))
    return ", ".join(parts)


def fmt_target(better, target):
    if target is None:
        return ""
    return ("\u2265 %gx" if better == "higher" else "\u2264 %gx") % target


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(result):
    """The results table, one row per metric, then the notes that explain
    every failed / n/a figure."""
    lines = ["| # | workload | metric | Tidemark | Kafka | Tidemark/Kafka | per pair (spread) | target | |",
             "|---|---|---|---:|---:|---:|---:|---|---|"]
    notes = []
    for w in result.get("workloads", []):
        for m in w["metrics"]:
            unit = m["unit"]
            row = [w["id"], w["title"], "%s (%s)" % (m["name"], unit),
                   fmt_figure(m["tidemark"], unit), fmt_figure(m["kafka"], unit),
                   fmt_ratio(m.get("ratio")), fmt_pairs(m.get("pair_ratios")),
                   fmt_target(m["better"], m.get("target")),
                   verdict(m.get("ratio"), m["better"], m.get("target"))]
            lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
            for system in ("tidemark", "kafka"):
                fig = m[system]
                why = fig.get("error") or fig.get("reason")
                if fig.get("status") in ("failed", "n/a") and why:
                    note = "%s %s %s: %s" % (w["id"], system.capitalize(), fig["status"], why)
                    if note not in notes:
                        notes.append(note)
    out = "\n".join(lines) + "\n"
    if notes:
        out += "\n" + "\n".join("- " + _cell(n) for n in notes) + "\n"
    steal = fmt_steal(result.get("steal"))
    if steal:
        out += ("\nCPU steal during the measured runs (time the host gave this machine's cores "
                "to something else), median: %s.\n" % steal)
    return out


def machine_markdown(machine):
    keys = [("cpu", "CPU"), ("nproc", "cores (nproc)"), ("memory_gib", "memory (GiB)"),
            ("disk", "disk of the data directories"), ("kernel", "kernel")]
    return "\n".join("- %s: %s" % (label, machine.get(k, "?")) for k, label in keys) + "\n"


def limits_markdown(limits):
    if not limits:
        return ""
    rows = []
    cc = limits.get("tcp_congestion_control")
    for key, label in (("loopback_mb_per_s", "iperf3 single-stream loopback" +
                        (", the system's congestion control (%s)" % cc if cc else "")),
                       ("loopback_tidemark_mb_per_s", "iperf3 single-stream loopback, %s (Tidemark's "
                        "tidemark.loopback.congestion.control)" % limits.get("tidemark_loopback_cc", "?")),
                       ("disk_page_cache_write_mb_per_s", "fio sequential write of new data through the "
                        "page cache, 1 MiB blocks, no fsync (as the brokers write at acks=1)"),
                       ("disk_direct_write_mb_per_s", "fio sequential write, O_DIRECT, 1 MiB blocks, "
                        "8 in flight (the device, no page cache)"),
                       ("disk_seq_write_mb_per_s", "fio sequential write, 1 MiB blocks, fsync at end"),
                       ("disk_seq_write_fdatasync_mb_per_s",
                        "fio sequential write, 1 MiB blocks, fdatasync after each"),
                       ("disk_seq_read_cold_mb_per_s",
                        "fio sequential read, 1 MiB blocks, page cache dropped first")):
        v = limits.get(key)
        if v is None and key + "_error" not in limits and key in LIMITS_NOT_IN_EVERY_RUN:
            continue  # a run before it was measured, or after it was replaced
        samples = [x for x in limits.get(key + "_samples", []) if is_finite(x)]
        if len(samples) > 1:
            label += " (best of %d: %s MB/s)" % (len(samples), ", ".join(fmt_value(x, "MB/s") for x in samples))
        cpu = [x for x in limits.get(key.replace("_mb_per_s", "_cpu_cores_samples"), []) if is_finite(x)]
        if cpu:
            label += "; fio itself busy %s of a core" % ", ".join(fmt_share(x) for x in cpu)
        rows.append("| %s | %s |" % (label, fmt_value(v, "MB/s") + " MB/s" if v is not None
                                     else limits.get(key + "_error", "not measured")))
    return "| machine limit | |\n|---|---:|\n" + "\n".join(rows) + "\n"


# Limits a run may lack: measured only since a later run, or no longer
# (disk_seq_write_mb_per_s, a 1 GiB write with an fsync at its end, became
# the page-cache write of as much new data as workload 1 writes).
LIMITS_NOT_IN_EVERY_RUN = ("loopback_tidemark_mb_per_s", "disk_page_cache_write_mb_per_s",
                           "disk_direct_write_mb_per_s", "disk_seq_write_mb_per_s")

LIMIT_NAMES = {"loopback_mb_per_s": "loopback",
               "disk_page_cache_write_mb_per_s": "disk write through the page cache",
               "disk_direct_write_mb_per_s": "disk write, O_DIRECT",
               "loopback_tidemark_mb_per_s": "loopback, its own congestion control",
               "disk_seq_write_mb_per_s": "disk write",
               "disk_seq_write_fdatasync_mb_per_s": "disk write, fdatasync per MiB",
               "disk_seq_read_cold_mb_per_s": "disk read, cold"}


def fmt_share(x):
    return "" if x is None else "%.0f %%" % (100.0 * x)


def limit_cell(key, times, allowed):
    name = LIMIT_NAMES.get(key, key)
    if times != 1:
        name = "%s / %s (each byte crosses it %s times)" % (name, _num(times), _num(times))
    return "%s: %s MB/s" % (name, fmt_value(allowed, "MB/s"))


def shares_markdown(result):
    """Each throughput as a share of the tightest machine limit on its path."""
    rows = limit_shares(result)
    if not rows:
        return ""
    lines = ["| # | metric | binding limit | Tidemark | Kafka |", "|---|---|---|---:|---:|"]
    for r in rows:
        cell = limit_cell(r["limit"], r["times"], r["allowed"])
        if r.get("tidemark_limit"):
            cell = "Tidemark: %s; Kafka: %s" % (limit_cell(*r["tidemark_limit"]), cell)
        lines.append("| %s | %s | %s | %s | %s |" % (
            _cell(r["id"]), _cell(r["metric"]), _cell(cell), fmt_share(r["tidemark"]), fmt_share(r["kafka"])))
    return "\n".join(lines) + "\n"


def cpu_markdown(result):
    """Where each throughput's CPU went, and what a free broker would give."""
    rows = cpu_rows(result)
    if not rows:
        return ""
    lines = ["| # | metric | Tidemark: client + broker (cores) | Kafka: client + broker (cores) "
             "| busy, T / K | Tidemark/Kafka | with Tidemark's broker at no cost |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        t, k = r["tidemark"], r["kafka"]
        free = r["free_broker"]
        if free is None:
            last = "n/a: not CPU-bound, no client thread reported"
        elif free["by"] == "thread":
            last = "%s: its thread %s at a full core (%.2f now)" % (
                fmt_ratio(free["ratio"]), t["thread"]["name"], t["thread"]["cores"])
        elif free["by"] == "cores":
            last = "%s: the broker's cores to the client" % fmt_ratio(free["ratio"])
        else:
            last = "%s: the machine's %s" % (fmt_ratio(free["ratio"]), LIMIT_NAMES.get(free["by"], free["by"]))
        lines.append("| %s | %s | %.2f + %.2f | %.2f + %.2f | %s / %s | %s | %s |" % (
            _cell(r["id"]), _cell(r["metric"]), t["client"], t["broker"], k["client"], k["broker"],
            fmt_share(t["busy"]), fmt_share(k["busy"]), fmt_ratio(r["ratio"]), _cell(last)))
    return "\n".join(lines) + "\n"


def _num(x):
    return ("%d" % x) if float(x).is_integer() else ("%g" % x)


def write_json(result, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def chart_unavailable(result):
    """Why write_chart drew nothing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed"
    return "no throughput or latency figure was measured"


def write_chart(result, path):
    """Throughput (MB/s) and latency percentiles side by side; returns the
    path, or None when matplotlib is missing or there is nothing to draw."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    thr, lat = [], []
    for w in result.get("workloads", []):
        for m in w["metrics"]:
            t = m["tidemark"].get("value") if m["tidemark"].get("status") == "ok" else None
            k = m["kafka"].get("value") if m["kafka"].get("status") == "ok" else None
            if t is None and k is None:
                continue
            label = "%s %s" % (w["id"], m["name"])
            if m["unit"] == "MB/s":
                thr.append((label, t, k))
            elif m["unit"] == "ms" and w["id"].startswith("4"):
                lat.append((label, t, k))
    if not thr and not lat:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, rows, title, ylabel in ((axes[0], thr, "Throughput (higher is better)", "MB/s"),
                                   (axes[1], lat, "End-to-end latency (lower is better)", "ms")):
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if not rows:
            ax.text(0.5, 0.5, "no figures", ha="center", va="center", transform=ax.transAxes)
            continue
        xs = list(range(len(rows)))
        width = 0.4
        tv = [r[1] if r[1] is not None else 0 for r in rows]
        kv = [r[2] if r[2] is not None else 0 for r in rows]
        ax.bar([x - width / 2 for x in xs], tv, width, label="Tidemark", color="#1f77b4")
        ax.bar([x + width / 2 for x in xs], kv, width, label="Apache Kafka", color="#ff7f0e")
        ax.set_xticks(xs)
        ax.set_xticklabels([r[0] for r in rows], rotation=30, ha="right", fontsize=8)
        if rows is lat and max(tv + kv) > 0 and min(v for v in tv + kv if v > 0) * 50 < max(tv + kv):
            ax.set_yscale("log")
        ax.legend()
    fig.suptitle("Tidemark vs Apache Kafka (%s run, %s)" % (result.get("mode"), result.get("started", "")))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


DOC_HEADER = """# Benchmarks: Tidemark beside Apache Kafka

`make bench` runs `bench/run.sh`: it builds Tidemark with `-O3`, starts Tidemark and
Apache Kafka {kafka_version} side by side on free loopback ports with the same settings, and
drives both with the same client, `bench/tm-load` (librdkafka {librdkafka}), plus Kafka's own
Java `ProducerPerformance` and `ConsumerPerformance` for workloads 1 and 3. Each figure is the
median of {reps} runs after a warm-up; the ratio is always Tidemark / Kafka. `make bench-quick`
(part of `make test`) runs every workload for a few seconds against Tidemark alone: it proves
the harness, not the numbers.

Settings on both brokers: {settings}

The results of every run are kept in `bench/results/` (JSON with every run's raw figures,
and the chart).
"""


def render_doc(result, chart_rel):
    s = result.get("settings", {})
    settings = "; ".join("%s" % v for v in s.get("notes", []))
    out = [DOC_HEADER.format(kafka_version=s.get("kafka_version", "?"),
                             librdkafka=s.get("librdkafka", "?"), reps=s.get("reps", "?"),
                             settings=settings or "see bench/bench.py")]
    out.append("## Latest full run: %s\n" % result.get("started", "?"))
    out.append("Machine:\n\n" + machine_markdown(result.get("machine", {})))
    lim = limits_markdown(result.get("limits"))
    if lim:
        out.append("Physical limits of this machine (what no broker can beat):\n\n" + lim)
    out.append(render_markdown(result))
    shares = shares_markdown(result)
    if shares:
        out.append("Each throughput as a share of the tightest of these limits on its path:\n\n" + shares)
    cpu = cpu_markdown(result)
    if cpu:
        out.append(CPU_INTRO % int(100 * CPU_BOUND_SHARE) + cpu)
    if chart_rel:
        out.append("![throughput and latency](%s)\n" % chart_rel)
    out.append(DOC_FOOTER)
    return "\n".join(out)


CPU_INTRO = """Where the CPU went in each throughput's measured runs (medians; cores = CPU
seconds per second of the run, clients and brokers apart; *busy* = both together, as a
share of the cores the host left the machine after steal). The last column is the ratio
Tidemark would show if its broker cost no CPU and answered at once, all else the same:
the most any broker could show against Kafka here with this client. Three things cap it.
`tm-load`'s busiest thread (librdkafka's thread for the broker, which does that
connection's I/O, parsing and, over TLS, encryption, and waits on the broker's answers)
cannot pass a full core. Where a run is CPU-bound (busy %d %% or more; client and
broker share the 2 cores), the client can have only the broker's cores on top of its own.
And no throughput passes the machine's limit on its path (the table above).

"""


DOC_FOOTER = """## Reading the table

- **1**: `tm-load produce`, 1 KiB records, one partition, acks=1, no rate limit; MB/s of
  acknowledged records (MB = 2^20 bytes, as Kafka's tools count) and the p99 of
  send-to-acknowledgement latency, which in an unthrottled run is mostly the record's wait
  in the client's full queue (64 MiB), so it falls as throughput rises. **1-java** is
  Kafka's `ProducerPerformance` with the same settings, 5 M records, up to 3 runs: its JVM
  starts cold each run and needs 10-15 s to reach its pace, so the throughput is taken over
  its 5-second progress windows after the first 10 s; the whole run's throughput and p99
  are rows of their own.
  **1-fsync** repeats 1 with `log.flush.interval.messages=1` on both brokers.
- **2**: 100-byte records over 6 partitions, acks=1, no rate limit; messages per second of
  two `tm-load` processes at once (on one topic of 6 partitions), of one alone, and the broker's
  CPU seconds per million records taken with two. The clients share the 2 cores with the
  broker and cost more per record than either broker, so each hands librdkafka 1,000
  records per call (`rd_kafka_produce_batch`, each call to the next partition) and is told
  of failed records only (`delivery.report.only.error`): half the client CPU per record of
  one call and one report per record, for both brokers alike.
- **3**: a backlog (2 GiB by default) is produced once, read once unmeasured per system,
  then read from the beginning by
  `tm-load consume`: *warm* with the backlog in the page cache, *cold* after
  `echo 3 > /proc/sys/vm/drop_caches` right before each read (reported n/a where the kernel
  refuses it); the JSON keeps what the broker read from the disk in each cold read
  (`/proc/PID/io` read_bytes), which shows whether it was cold.
  **3-java** is Kafka's `ConsumerPerformance` (a consumer group) on the warm backlog.
- **4**: 5,000 msg/s of 1 KiB records with acks=all, produced and consumed at once by one
  process; latency is consume time minus the *intended* send time (a stalled producer
  counts against the broker, no coordinated omission). Percentiles come from a log-bucket
  histogram (at most 1.6 % above the true value). Each system first runs it once,
  unmeasured (Kafka's JIT). The producer lingers 1 ms (`linger.ms=1`, also in 5 and 7);
  the last row repeats the workload with `linger.ms=0`, a request per record, as Kafka's
  `EndToEndLatency` tool does: on these 2 shared cores Kafka falls behind that request
  rate, so the row has no target. The JSON keeps each repetition's CPU steal beside it.
- **5**: three nodes, replication factor 3, `min.insync.replicas=2`, acks=all: throughput as
  in 1, then latency as in 4 (after one unmeasured run), each on a topic made with those
  settings and every replica in sync before the run.
- **6**: resident memory (VmRSS) idle and the peak under workload 1; time from the broker
  process's start to the first acknowledged produce (Kafka's `kafka-storage format` step is
  not counted; the probe polls the port every millisecond until it accepts a connection,
  then produces one record with librdkafka and waits for its acknowledgement); CPU seconds
  (user + system) of the broker process per GiB produced in workload 1.
- **7**: workloads 1 and 4 over TLS.
- *per pair* is the median of Tidemark / Kafka taken repetition by repetition, with the
  lowest and highest pair. The repetitions run interleaved (Tidemark, Kafka, Tidemark,
  ...), so a pair ran minutes apart; a wide spread means the machine changed speed during
  the run, and the ratio of medians should then be read with care. The line under the
  table gives the CPU steal (time the virtual machine's host gave its cores to others)
  measured across each system's runs.
- *Share of the machine*: each throughput divided by the tightest machine limit on its path
  (which one binds is named): produce, loopback and the sequential write of 4 GiB of new
  data through the page cache, as both brokers write (on this VM that write is bound by the
  kernel's copy into memory the guest has not touched lately, not by the device: the
  O_DIRECT row shows the device's own pace); 1-fsync, the
  write with an fdatasync per MiB; warm consume, loopback; cold consume, loopback and the
  disk's sequential read after `drop_caches`; workload 5, loopback and the disk divided by
  three (the client's bytes reach the leader and two followers over loopback, and three
  copies land on the one disk). Loopback is measured twice: bytes a client sends go at the
  pace of the system's congestion control (bbr paces them even on loopback), a consumer's
  bytes at the broker's: the system's for Kafka, `tidemark.loopback.congestion.control`
  (reno) for Tidemark; where the two differ the cell names both.
  Workload 5 counts all three crossings at the system's pace, the lower bound. iperf3 measures one stream on one core, so a loopback share near
  100 % means the broker's path costs about as much as a bare TCP copy.
- *n/a* for Tidemark means the feature has not landed yet (the harness probes for it and
  runs the workload as soon as it works); *failed* means the run broke, with the reason
  below the table. Targets are the project's goals; the last column only reports them.
- The machine has 2 cores shared by broker and client, so client CPU competes with the
  broker; both brokers get the same treatment. Before every measured run the harness
  calls `sync` (earlier runs' dirty pages are written back first) and waits until the
  other system's idle broker uses under 3 % of a core, so neither's leftovers (writeback,
  GC, JIT) land on the other's run.
"""


# Everything in docs/benchmarks.md from this line on is written by hand
# (profiles, what was changed and why) and kept when a run rewrites the rest.
NOTES_MARKER = "<!-- notes: written by hand, kept by make bench -->"


def kept_notes(old_text):
    """The hand-written tail of a previous docs/benchmarks.md ('' if none)."""
    i = old_text.find(NOTES_MARKER) if old_text else -1
    return old_text[i:] if i >= 0 else ""


def update_doc(result, doc_path, chart_path):
    chart_rel = None
    if chart_path:
        chart_rel = os.path.relpath(chart_path, os.path.dirname(os.path.abspath(doc_path)))
    text = render_doc(result, chart_rel)
    try:
        with open(doc_path) as f:
            notes = kept_notes(f.read())
    except OSError:
        notes = ""
    if notes:
        text = text.rstrip("\n") + "\n\n" + notes
    tmp = doc_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, doc_path)
    return text


def is_finite(x):
    return isinstance(x, (int, float)) and not math.isnan(x) and not math.isinf(x)


def main(argv):
    """python3 bench/report.py RESULTS.json [--doc]: prints the table of a
    past run; --doc also rewrites docs/benchmarks.md from it."""
    if len(argv) < 2 or argv[1].startswith("-"):
        print("usage: report.py RESULTS.json [--doc]")
        return 2
    with open(argv[1]) as f:
        result = json.load(f)
    print(render_markdown(result))
    if "--doc" in argv[2:]:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        chart = result.get("chart")
        update_doc(result, os.path.join(root, "docs", "benchmarks.md"),
                   os.path.join(root, chart) if chart else None)
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv))
