"""Tests of bench/report.py: what the load tools print is read right, the
ratio always means Tidemark / Kafka, a failed run is never hidden by a
median, and the table says why a figure is missing.  Run by bench/run.sh in
QUICK mode (python -m pytest bench/test_report.py); plain unittest works too.
"""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

TM_LOAD_PRODUCE = (
    '{"tool":"tm-load","mode":"produce","topic":"w1","partitions":1,"record_bytes":1024,'
    '"acks":"1","compression":"none","rate_target":0,"sent":1027041,"records":1027041,"errors":0,'
    '"bytes":1051689984,"seconds":6.966,"msgs_per_s":147443.5,"mb_per_s":143.988,"queue_full":3909,'
    '"total_bytes":1051689984,"latency_us":{"count":1027041,"min":41904,"mean":1538055.1,'
    '"p50":1523711,"p90":2080767,"p99":2242884,"p999":2242884,"max":2242884},"error":""}')

PRODUCER_PERFORMANCE = """\
09:30:39.969 WARN  NetworkClient: metadata ... UNKNOWN_TOPIC_OR_PARTITION}
26907 records sent, 5373.9 records/sec (5.25 MB/sec), 1914.1 ms avg latency, 2333.0 ms max latency.
300000 records sent, 17160.5 records/sec (16.76 MB/sec), 1496.37 ms avg latency, 2497.00 ms max \
latency, 1420 ms 50th, 2296 ms 95th, 2407 ms 99th, 2478 ms 99.9th.
"""

PRODUCER_PERFORMANCE_LONG = """\
100000 records sent, 20000.0 records/sec (19.53 MB/sec), 900.0 ms avg latency, 1100.0 ms max latency.
400000 records sent, 80000.0 records/sec (78.13 MB/sec), 8.0 ms avg latency, 60.0 ms max latency.
300000 records sent, 75000.0 records/sec (73.24 MB/sec), 12.0 ms avg latency, 90.0 ms max latency.
900000 records sent, 56000.0 records/sec (54.69 MB/sec), 140.00 ms avg latency, 1100.00 ms max \
latency, 9 ms 50th, 700 ms 95th, 1000 ms 99th, 1090 ms 99.9th.
"""

CONSUMER_PERFORMANCE = """\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-25 09:30:59:711, 2026-11-25 09:31:04:118, 292.9688, 66.4780, 300000, 68073.5194, 2257, \
2150, 136.2645, 139534.8837
"""

PROC_STATUS = "Name:\tjava\nVmPeak:\t 8392768 kB\nVmHWM:\t  1258000 kB\nVmRSS:\t  102716 kB\n"
PROC_STAT = "4242 (tide mark) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 100 1 2"


class ParseTest(unittest.TestCase):
    def test_tm_load_line_is_found_among_diagnostics(self):
        text = "tm-load: rdkafka FAIL: connection refused\n" + TM_LOAD_PRODUCE + "\n"
        obj = report.parse_tm_load(text)
        self.assertEqual(obj["mb_per_s"], 143.988)
        self.assertEqual(obj["latency_us"]["p99"], 2242884)

    def test_tm_load_nothing_printed_is_none(self):
        self.assertIsNone(report.parse_tm_load(""))
        self.assertIsNone(report.parse_tm_load('{"other":1}\nnot json {'))

    def test_producer_performance_summary_not_progress_line(self):
        pp = report.parse_producer_performance(PRODUCER_PERFORMANCE)
        self.assertEqual(pp["records"], 300000)
        self.assertEqual(pp["mb_per_s"], 16.76)
        self.assertEqual(pp["msgs_per_s"], 17160.5)
        self.assertEqual(pp["latency_ms"]["p99"], 2407.0)
        self.assertEqual(pp["latency_ms"]["p999"], 2478.0)

    def test_producer_performance_keeps_progress_windows(self):
        pp = report.parse_producer_performance(PRODUCER_PERFORMANCE_LONG)
        self.assertEqual([w["records"] for w in pp["windows"]], [100000, 400000, 300000])
        self.assertEqual(pp["windows"][1]["mb_per_s"], 78.13)
        self.assertEqual(pp["windows"][2]["max_ms"], 90.0)

    def test_producer_performance_after_warmup_skips_first_window(self):
        pp = report.parse_producer_performance(PRODUCER_PERFORMANCE_LONG)
        after = report.producer_performance_after(pp, 5.0)
        # windows of 5.0 s (skipped), 5.0 s and 4.0 s (kept)
        self.assertAlmostEqual(after["skipped_s"], 5.0)
        self.assertAlmostEqual(after["seconds"], 9.0)
        self.assertEqual(after["records"], 700000)
        self.assertAlmostEqual(after["msgs_per_s"], 700000 / 9.0)
        self.assertAlmostEqual(after["mb_per_s"], (78.13 * 5.0 + 73.24 * 4.0) / 9.0)
        self.assertAlmostEqual(after["avg_ms"], (8.0 * 400000 + 12.0 * 300000) / 700000)
        self.assertEqual(after["max_ms"], 90.0)

    def test_producer_performance_after_warmup_longer_than_run_is_none(self):
        pp = report.parse_producer_performance(PRODUCER_PERFORMANCE_LONG)
        self.assertIsNone(report.producer_performance_after(pp, 14.5))
        self.assertIsNone(report.producer_performance_after(
            report.parse_producer_performance(PRODUCER_PERFORMANCE.splitlines()[-1]), 0))

    def test_producer_performance_without_summary_is_none(self):
        self.assertIsNone(report.parse_producer_performance(PRODUCER_PERFORMANCE.splitlines()[1]))

    def test_consumer_performance_row(self):
        cp = report.parse_consumer_performance(CONSUMER_PERFORMANCE)
        self.assertEqual(cp["records"], 300000)
        self.assertAlmostEqual(cp["mb_per_s"], 66.478)
        self.assertAlmostEqual(cp["fetch_mb_per_s"], 136.2645)
        self.assertEqual(cp["rebalance_ms"], 2257.0)

    def test_consumer_performance_header_only_is_none(self):
        self.assertIsNone(report.parse_consumer_performance(CONSUMER_PERFORMANCE.splitlines()[0]))

    def test_proc_status_in_bytes(self):
        st = report.parse_proc_status(PROC_STATUS)
        self.assertEqual(st["VmRSS"], 102716 * 1024)
        self.assertEqual(st["VmHWM"], 1258000 * 1024)

    def test_proc_stat_with_parentheses_in_name(self):
        self.assertEqual(report.parse_proc_stat_cpu_ticks(PROC_STAT), 325)
        self.assertIsNone(report.parse_proc_stat_cpu_ticks(""))

    def test_proc_io_read_bytes(self):
        io = "rchar: 2147500000\nwchar: 120\nsyscr: 40\nsyscw: 2\nread_bytes: 2147483648\n" \
             "write_bytes: 0\ncancelled_write_bytes: 0\n"
        self.assertEqual(report.parse_proc_io_read_bytes(io), 2147483648)
        self.assertIsNone(report.parse_proc_io_read_bytes("rchar: 5\n"))
        self.assertIsNone(report.parse_proc_io_read_bytes(""))

    def test_from_runs_keeps_disk_reads(self):
        fig = report.from_runs([{"mb_per_s": 900.0, "disk_read_mb": 2048.0},
                                {"mb_per_s": 1000.0, "disk_read_mb": 1.5},
                                {"mb_per_s": 800.0}], "mb_per_s")
        self.assertEqual(fig["value"], 900.0)
        self.assertEqual(fig["detail"]["disk_read_mb"], [2048.0, 1.5, None])
        self.assertNotIn("disk_read_mb", report.from_runs([{"mb_per_s": 1.0}], "mb_per_s").get("detail", {}))

    def test_iperf3_and_fio(self):
        iperf = json.dumps({"end": {"sum_received": {"bits_per_second": 8.0 * 1048576 * 3000}}})
        self.assertAlmostEqual(report.parse_iperf3(iperf), 3000.0)
        fio = "note: both iodepth\n" + json.dumps({"jobs": [{"write": {"bw": 512000}}]})
        self.assertAlmostEqual(report.parse_fio(fio), 500.0)
        self.assertIsNone(report.parse_fio("fio: error"))
        fio = json.dumps({"jobs": [{"read": {"bw": 1048576}, "write": {"bw": 0}}]})
        self.assertAlmostEqual(report.parse_fio(fio, "read"), 1024.0)
        fio = "fio-3.33\n" + json.dumps({"jobs": [{"write": {"bw": 1}, "usr_cpu": 0.5, "sys_cpu": 99.0}]})
        self.assertAlmostEqual(report.parse_fio_cpu(fio), 0.995)
        self.assertIsNone(report.parse_fio_cpu("fio: error"))
        self.assertIsNone(report.parse_fio_cpu(json.dumps({"jobs": [{"write": {"bw": 1}}]})))


class ArithmeticTest(unittest.TestCase):
    def test_median_odd_even_and_empty(self):
        self.assertEqual(report.median([3, 1, 2]), 2)
        self.assertEqual(report.median([4, 1, 3, 2]), 2.5)
        self.assertIsNone(report.median([]))

    def test_ratio_is_tidemark_over_kafka(self):
        self.assertAlmostEqual(report.ratio(300.0, 200.0), 1.5)
        self.assertIsNone(report.ratio(None, 200.0))
        self.assertIsNone(report.ratio(1.0, 0))

    def test_verdict_direction(self):
        self.assertEqual(report.verdict(1.6, "higher", 1.5), "met")
        self.assertEqual(report.verdict(1.4, "higher", 1.5), "missed")
        self.assertEqual(report.verdict(0.4, "lower", 0.5), "met")
        self.assertEqual(report.verdict(0.6, "lower", 0.5), "missed")
        self.assertEqual(report.verdict(None, "lower", 0.5), "")
        self.assertEqual(report.verdict(2.0, "higher", None), "")

    def test_one_failed_run_fails_the_figure(self):
        runs = [{"mb_per_s": 100.0}, "tm-load produce: broker exited", {"mb_per_s": 120.0}]
        fig = report.from_runs(runs, "mb_per_s")
        self.assertEqual(fig["status"], "failed")
        self.assertIn("broker exited", fig["error"])

    def test_median_of_runs_and_nested_key(self):
        runs = [{"latency_us": {"p99": 3000}}, {"latency_us": {"p99": 1000}},
                {"latency_us": {"p99": 2000}}]
        fig = report.from_runs(runs, "latency_us.p99")
        self.assertEqual(fig["status"], "ok")
        self.assertEqual(fig["value"], 2000)
        self.assertEqual(fig["runs"], [3000, 1000, 2000])

    def test_each_runs_steal_is_kept_beside_its_figure(self):
        runs = [{"mb_per_s": 100.0, "steal": 0.01}, {"mb_per_s": 90.0},
                {"mb_per_s": 80.0, "steal": 0.2}]
        fig = report.from_runs(runs, "mb_per_s")
        self.assertEqual(fig["runs"], [100.0, 90.0, 80.0])
        self.assertEqual(fig["detail"]["steal"], [0.01, None, 0.2])
        self.assertNotIn("steal", report.from_runs([{"mb_per_s": 1.0}], "mb_per_s")["detail"])

    def test_each_runs_cpu_is_kept_beside_its_figure(self):
        a = report.cpu_between((10.0, 5.0, 2.0), (14.0, 9.0, 3.0))
        self.assertEqual(a, {"wall_s": 4.0, "client_s": 4.0, "broker_s": 1.0})
        self.assertIsNone(report.cpu_between((10.0, 5.0, None), (14.0, 9.0, 3.0)))  # a broker down
        self.assertIsNone(report.cpu_between((10.0, 5.0, 2.0), (10.0, 5.0, 2.0)))  # no time passed
        fig = report.from_runs([{"mb_per_s": 1.0, "cpu": a}, {"mb_per_s": 2.0, "cpu": None}], "mb_per_s")
        self.assertEqual(fig["detail"]["cpu"], [a, None])
        self.assertNotIn("cpu", report.from_runs([{"mb_per_s": 1.0}], "mb_per_s")["detail"])

    def test_a_free_broker_gives_its_cores_to_the_client(self):
        def fig(value, client, broker, steal=0.0, n=3):
            cpu = {"wall_s": 10.0, "client_s": 10.0 * client, "broker_s": 10.0 * broker}
            return report.ok(value, [value] * n, cpu=[cpu] * n, steal=[steal] * n)
        # Tidemark: 1.6 client cores + 0.4 broker on 2 cores; Kafka slower.
        t, k = fig(250.0, 1.6, 0.4), fig(200.0, 1.0, 0.95)
        split = report.cpu_split(t, 2)
        self.assertAlmostEqual(split["client"], 1.6)
        self.assertAlmostEqual(split["busy"], 1.0)
        self.assertTrue(split["bound"])
        # its rate would grow by (1.6 + 0.4) / 1.6 with the broker free
        self.assertEqual(report.free_broker_ratio(1.25, split), {"ratio": 1.25 * 2.0 / 1.6, "by": "cores"})
        # under steal the host leaves fewer cores: 1.5 busy of 2 * 0.75 is bound
        self.assertTrue(report.cpu_split(fig(1.0, 1.2, 0.3, steal=0.25), 2)["bound"])
        # not CPU-bound and no thread reported (the Java tools): no ceiling
        idle = report.cpu_split(fig(1.0, 1.0, 0.3), 2)
        self.assertFalse(idle["bound"])
        self.assertIsNone(report.free_broker_ratio(1.25, idle))
        # not CPU-bound, the client's thread waiting a fifth of the time on answers
        waits = [{"wall_s": 10.0, "client_s": 10.0, "broker_s": 2.0, "thread": {"name": "rdk:broker1", "cores": 0.8}}]
        split = report.cpu_split(report.ok(1.0, [1.0], cpu=waits), 2)
        self.assertFalse(split["bound"])
        free = report.free_broker_ratio(1.2, split)
        self.assertEqual(free["by"], "thread")
        self.assertAlmostEqual(free["ratio"], 1.5)
        # the client's busiest thread at 0.8 of a core: freed cores lift it to 1.0 only
        runs = [report.cpu_between((0.0, 0.0, 0.0), (10.0, 10.0, 7.0), {"name": "rdk:broker1", "cores": c})
                for c in (0.78, 0.8, 0.82)]
        tls = report.cpu_split(report.ok(1.0, [1.0] * 3, cpu=runs), 2)
        self.assertTrue(tls["bound"])
        self.assertEqual(tls["thread"], {"name": "rdk:broker1", "cores": 0.8})
        self.assertEqual(report.free_broker_ratio(1.3, tls), {"ratio": 1.3 / 0.8, "by": "thread"})
        # a thread far from a full core leaves the cores to decide
        runs2 = [dict(c, thread={"name": "x", "cores": 0.2}) for c in runs]
        self.assertEqual(report.free_broker_ratio(1.3, report.cpu_split(report.ok(1.0, [1.0] * 3, cpu=runs2), 2)),
                         {"ratio": 1.3 * 1.7, "by": "cores"})
        # the machine's limit caps it too: here the disk allows 1.1x Tidemark's rate
        self.assertEqual(report.free_broker_ratio(1.3, tls, ("disk_seq_write_mb_per_s", 1.1))["by"],
                         "disk_seq_write_mb_per_s")
        self.assertEqual(report.free_broker_ratio(1.3, tls, ("disk_seq_write_mb_per_s", 0.9))["ratio"], 1.3)
        # a run without readings: no split
        self.assertIsNone(report.cpu_split(report.ok(1.0, [1.0, 2.0], cpu=[None, None]), 2))
        self.assertIsNone(report.cpu_split(report.failed("x"), 2))
        result = {"machine": {"nproc": 2}, "workloads": [{"id": "2", "metrics": [
            report.metric("msgs", "msgs/s", "higher", 1.5, t, k),
            report.metric("MB", "MB/s", "higher", None, t, k),  # the same runs: one row
            report.metric("p99", "ms", "lower", None, t, k)]}]}
        rows = report.cpu_rows(result)
        self.assertEqual([(r["id"], r["metric"]) for r in rows], [("2", "msgs")])
        self.assertAlmostEqual(rows[0]["free_broker"]["ratio"], 1.25 * 2.0 / 1.6)
        md = report.cpu_markdown(result)
        self.assertIn("| 2 | msgs | 1.60 + 0.40 | 1.00 + 0.95 | 100 % / 98 % | 1.25x | "
                      "1.56x: the broker's cores to the client |", md)
        result["workloads"].append({"id": "7", "metrics": [
            report.metric("tls", "MB/s", "higher", 1.5, report.ok(260.0, [260.0] * 3, cpu=runs), k)]})
        md = report.cpu_markdown(result)
        self.assertIn("| 7 | tls | 1.00 + 0.70 | 1.00 + 0.95 | 85 % / 98 % | 1.30x | "
                      "1.62x: its thread rdk:broker1 at a full core (0.80 now) |", md)

    def test_missing_key_is_a_failure(self):
        self.assertEqual(report.from_runs([{"x": 1}], "mb_per_s")["status"], "failed")
        self.assertEqual(report.from_runs([], "mb_per_s")["status"], "failed")

    def test_clients_at_once_sum_rates_and_keep_the_worst_latency(self):
        a = {"msgs_per_s": 1000.0, "mb_per_s": 1.0, "records": 10, "total_bytes": 100,
             "partitions": 6, "latency_us": {"p50": 5, "p99": 50, "p999": 70, "max": 90}}
        b = {"msgs_per_s": 3000.0, "mb_per_s": 3.0, "records": 30, "total_bytes": 300,
             "partitions": 6, "latency_us": {"p50": 7, "p99": 40, "p999": 80, "max": 85}}
        m = report.merge_clients([a, b])
        self.assertEqual((m["msgs_per_s"], m["mb_per_s"], m["records"], m["total_bytes"]),
                         (4000.0, 4.0, 40, 400))
        self.assertEqual(m["latency_us"], {"p50": 7, "p99": 50, "p999": 80, "max": 90})
        self.assertEqual((m["clients"], m["partitions"]), (2, 6))
        self.assertNotIn("busiest_thread", m)  # not reported by every client
        a["busiest_thread"], b["busiest_thread"] = {"name": "x", "cores": 0.5}, {"name": "y", "cores": 0.7}
        self.assertEqual(report.merge_clients([a, b])["busiest_thread"], {"name": "y", "cores": 0.7})
        self.assertEqual(report.merge_clients([a, "tm-load produce: timed out"]),
                         "tm-load produce: timed out")
        self.assertIsInstance(report.merge_clients([]), str)

    def test_metric_ratio_only_from_ok_figures(self):
        m = report.metric("t", "MB/s", "higher", 1.5, report.ok(150.0), report.ok(100.0))
        self.assertAlmostEqual(m["ratio"], 1.5)
        m = report.metric("t", "MB/s", "higher", 1.5, report.not_available("TLS not yet"),
                          report.ok(100.0))
        self.assertIsNone(m["ratio"])

    def test_pair_ratios_follow_the_repetitions(self):
        # Both systems slow in repetition 1, fast in 2: the pairs agree
        # where the ratio of medians would mix the two phases.
        t = report.ok(200.0, [100.0, 400.0, 200.0])
        k = report.ok(150.0, [50.0, 300.0, 150.0])
        m = report.metric("t", "MB/s", "higher", 1.5, t, k)
        self.assertEqual([round(x, 3) for x in m["pair_ratios"]], [2.0, 1.333, 1.333])
        self.assertEqual(report.fmt_pairs(m["pair_ratios"]), "1.33x (1.33-2.00x)")
        # unequal counts or a figure that is not ok: no pairs
        self.assertEqual(report.pair_ratios(report.ok(1.0, [1.0, 2.0]), report.ok(1.0, [1.0])), [])
        self.assertEqual(report.pair_ratios(report.failed("x"), k), [])
        self.assertEqual(report.fmt_pairs([1.5]), "")

    def test_steal_from_proc_stat(self):
        a = report.parse_proc_stat_cpu("cpu  100 0 50 800 10 0 5 35 7 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
        b = report.parse_proc_stat_cpu("cpu  200 0 100 900 10 0 5 85 9 0\n")
        self.assertEqual(a, (1000, 35))
        self.assertEqual(b, (1300, 85))
        self.assertAlmostEqual(report.steal_share(a, b), 50 / 300.0)
        self.assertIsNone(report.steal_share(a, a))  # no time passed
        self.assertIsNone(report.steal_share(None, b))
        self.assertIsNone(report.parse_proc_stat_cpu("intr 1 2 3\n"))
        self.assertEqual(report.fmt_steal({"tidemark": [0.1, 0.3, 0.2], "kafka": [None]}),
                         "Tidemark 20 % (max 30 %)")


def sample_result():
    return {
        "mode": "full", "started": "2026-01-01T00:00:00",
        "machine": {"nproc": 2, "cpu": "Test CPU", "memory_gib": 24.0, "disk": "/dev/vda", "kernel": "6"},
        "settings": {"kafka_version": "4.1.1", "librdkafka": "2.0.2", "reps": 3, "notes": ["flush unset"]},
        "workloads": [
            {"id": "1", "title": "produce", "metrics": [
                report.metric("throughput", "MB/s", "higher", 1.5, report.ok(300.0), report.ok(200.0))]},
            {"id": "4", "title": "e2e", "metrics": [
                report.metric("p99", "ms", "lower", 0.5, report.ok(1.0), report.ok(4.0))]},
            {"id": "7", "title": "TLS", "metrics": [
                report.metric("TLS | throughput", "MB/s", "higher", 1.5,
                              report.not_available("TLS not available yet: unknown listener SSL"),
                              report.ok(150.0))]},
            {"id": "3", "title": "consume", "metrics": [
                report.metric("cold", "MB/s", "higher", 1.5, report.failed("consume timed out"),
                              report.skipped("quick"))]},
        ]}


class LimitTest(unittest.TestCase):
    LIMITS = {"loopback_mb_per_s": 3000.0, "disk_seq_write_mb_per_s": 1000.0,
              "disk_seq_read_cold_mb_per_s_error": "drop_caches not permitted"}

    def test_the_tightest_measured_limit_binds(self):
        path = [["loopback_mb_per_s", 1], ["disk_seq_write_mb_per_s", 1]]
        self.assertEqual(report.binding_limit(self.LIMITS, path), ("disk_seq_write_mb_per_s", 1, 1000.0))
        # each byte crossing loopback 4 times: loopback allows 750 of them
        path = [["loopback_mb_per_s", 4], ["disk_seq_write_mb_per_s", 1]]
        self.assertEqual(report.binding_limit(self.LIMITS, path), ("loopback_mb_per_s", 4, 750.0))
        # a limit that was not measured does not bind
        path = [["loopback_mb_per_s", 1], ["disk_seq_read_cold_mb_per_s", 1]]
        self.assertEqual(report.binding_limit(self.LIMITS, path), ("loopback_mb_per_s", 1, 3000.0))
        self.assertIsNone(report.binding_limit({}, path))
        self.assertIsNone(report.binding_limit(self.LIMITS, None))

    def test_shares_of_the_machine(self):
        produce = report.metric("throughput", "MB/s", "higher", 1.5, report.ok(500.0),
                                report.failed("boom"), [("loopback_mb_per_s", 1), ("disk_seq_write_mb_per_s", 1)])
        rf3 = report.metric("acks=all", "MB/s", "higher", 1.5, report.ok(300.0), report.ok(100.0),
                            [("loopback_mb_per_s", 3), ("disk_seq_write_mb_per_s", 3)])
        p99 = report.metric("p99", "ms", "lower", 0.5, report.ok(1.0), report.ok(2.0))
        result = {"limits": self.LIMITS,
                  "workloads": [{"id": "1", "title": "produce", "metrics": [produce, p99]},
                                {"id": "5", "title": "rf3", "metrics": [rf3]}]}
        rows = report.limit_shares(result)
        self.assertEqual([(r["id"], r["limit"]) for r in rows],
                         [("1", "disk_seq_write_mb_per_s"), ("5", "disk_seq_write_mb_per_s")])
        self.assertAlmostEqual(rows[0]["tidemark"], 0.5)
        self.assertIsNone(rows[0]["kafka"])
        self.assertAlmostEqual(rows[1]["allowed"], 1000.0 / 3)
        self.assertAlmostEqual(rows[1]["tidemark"], 0.9)
        md = report.shares_markdown(result)
        self.assertIn("| 1 | throughput | disk write: 1000 MB/s | 50 % |  |", md)
        self.assertIn("| 5 | acks=all | disk write / 3 (each byte crosses it 3 times): 333 MB/s | 90 % | 30 % |", md)
        self.assertEqual(report.shares_markdown({"limits": {}, "workloads": result["workloads"]}), "")
        self.assertIn("fio sequential read, 1 MiB blocks, page cache dropped first | drop_caches not permitted",
                      report.limits_markdown(self.LIMITS))
        # runs from before the reno figure was measured show no row for it
        self.assertNotIn("reno", report.limits_markdown(self.LIMITS))
        # a disk limit taken as the best of several runs names them all
        sampled = dict(self.LIMITS, disk_seq_write_mb_per_s=1000.0,
                       disk_seq_write_mb_per_s_samples=[438.0, 1000.0, 910.0])
        self.assertIn("| fio sequential write, 1 MiB blocks, fsync at end (best of 3: 438, 1000, 910 MB/s) "
                      "| 1000 MB/s |", report.limits_markdown(sampled))
        # the page-cache write names fio's own CPU beside its samples; runs
        # without it (or without the old 1 GiB write) show no row for it
        self.assertNotIn("through the page cache", report.limits_markdown(self.LIMITS))
        paced = {"disk_page_cache_write_mb_per_s": 718.0, "disk_page_cache_write_mb_per_s_samples": [422.0, 718.0],
                 "disk_page_cache_write_cpu_cores_samples": [0.996, 1.0]}
        md = report.limits_markdown(paced)
        self.assertIn("(best of 2: 422, 718 MB/s); fio itself busy 100 %, 100 % of a core | 718 MB/s |", md)
        self.assertNotIn("fsync at end", md)
        self.assertNotIn("O_DIRECT", md)

    def test_a_brokers_sends_go_at_its_own_congestion_controls_pace(self):
        limits = dict(self.LIMITS, loopback_mb_per_s=2000.0, loopback_tidemark_mb_per_s=6000.0, tidemark_loopback_cc="reno",
                      disk_seq_read_cold_mb_per_s=800.0, tcp_congestion_control="bbr")
        warm = [(report.BROKER_SEND, 1)]
        self.assertEqual(report.binding_limit(limits, warm, "tidemark"), ("loopback_tidemark_mb_per_s", 1, 6000.0))
        self.assertEqual(report.binding_limit(limits, warm, "kafka"), ("loopback_mb_per_s", 1, 2000.0))
        self.assertEqual(report.binding_limit(limits, warm), ("loopback_mb_per_s", 1, 2000.0))
        # without a reno figure Tidemark's sends are bound like Kafka's
        self.assertEqual(report.binding_limit(self.LIMITS, warm, "tidemark"), ("loopback_mb_per_s", 1, 3000.0))

        m = report.metric("warm", "MB/s", "higher", 1.5, report.ok(1800.0), report.ok(1000.0), warm)
        cold = report.metric("cold", "MB/s", "higher", 1.5, report.ok(400.0), report.ok(400.0),
                             [(report.BROKER_SEND, 1), ("disk_seq_read_cold_mb_per_s", 1)])
        result = {"limits": limits, "workloads": [{"id": "3", "title": "consume", "metrics": [m, cold]}]}
        rows = report.limit_shares(result)
        self.assertEqual(rows[0]["limit"], "loopback_mb_per_s")
        self.assertEqual(rows[0]["tidemark_limit"], ("loopback_tidemark_mb_per_s", 1, 6000.0))
        self.assertAlmostEqual(rows[0]["tidemark"], 0.3)
        self.assertAlmostEqual(rows[0]["kafka"], 0.5)
        self.assertNotIn("tidemark_limit", rows[1])  # the disk binds both
        md = report.shares_markdown(result)
        self.assertIn("| 3 | warm | Tidemark: loopback, its own congestion control: 6000 MB/s; "
                      "Kafka: loopback: 2000 MB/s | 30 % | 50 % |", md)
        self.assertIn("| 3 | cold | disk read, cold: 800 MB/s | 50 % | 50 % |", md)
        lm = report.limits_markdown(limits)
        self.assertIn("| iperf3 single-stream loopback, the system's congestion control (bbr) | 2000 MB/s |", lm)
        self.assertIn("| iperf3 single-stream loopback, reno (Tidemark's tidemark.loopback.congestion.control) "
                      "| 6000 MB/s |", lm)
        # a figure of 0 binds nothing; Tidemark's sends are then bound like Kafka's
        zero = dict(limits, loopback_tidemark_mb_per_s=0.0)
        self.assertEqual(report.binding_limit(zero, warm, "tidemark"), ("loopback_mb_per_s", 1, 2000.0))
        # only Tidemark's limit measured: the row stays, Kafka's share is empty
        only = {"loopback_tidemark_mb_per_s": 6000.0}
        rows = report.limit_shares({"limits": only, "workloads": result["workloads"]})
        self.assertEqual([(r["limit"], r["kafka"]) for r in rows], [("loopback_tidemark_mb_per_s", None)] * 2)


class PresentationTest(unittest.TestCase):
    def test_table_rows_ratios_and_reasons(self):
        md = report.render_markdown(sample_result())
        lines = md.splitlines()
        self.assertTrue(lines[0].startswith("| # | workload"))
        row1 = [ln for ln in lines if ln.startswith("| 1 |")][0]
        self.assertIn("| 300 |", row1)
        self.assertIn("1.50x", row1)
        self.assertIn("met", row1)
        row4 = [ln for ln in lines if ln.startswith("| 4 |")][0]
        self.assertIn("0.25x", row4)
        self.assertIn("\u2264 0.5x", row4)
        row7 = [ln for ln in lines if ln.startswith("| 7 |")][0]
        self.assertIn("TLS \\| throughput", row7)  # a pipe in a name does not break the table
        self.assertIn("| n/a |", row7)
        self.assertIn("- 7 Tidemark n/a: TLS not available yet: unknown listener SSL", md)
        self.assertIn("- 3 Tidemark failed: consume timed out", md)
        self.assertNotIn("CPU steal", md)
        r = sample_result()
        r["steal"] = {"tidemark": [0.12], "kafka": [0.2, 0.1]}
        md = report.render_markdown(r)
        self.assertIn("median: Tidemark 12 % (max 12 %), Kafka 15 % (max 20 %).", md)

    def test_failures_lists_only_failed_figures(self):
        self.assertEqual(report.failures(sample_result()), [("3", "cold", "consume timed out")])
        self.assertEqual(report.failures(sample_result(), "kafka"), [])

    def test_json_round_trip_and_doc(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "r.json")
            report.write_json(sample_result(), path)
            with open(path) as f:
                self.assertEqual(json.load(f)["workloads"][0]["metrics"][0]["ratio"], 1.5)
            doc = os.path.join(d, "benchmarks.md")
            text = report.update_doc(sample_result(), doc, os.path.join(d, "chart.png"))
            self.assertIn("Test CPU", text)
            self.assertIn("![throughput and latency](chart.png)", text)
            self.assertIn("| 1 | produce |", text)

    def test_doc_keeps_the_hand_written_notes(self):
        with tempfile.TemporaryDirectory() as d:
            doc = os.path.join(d, "benchmarks.md")
            notes = report.NOTES_MARKER + "\n\n## Profiles\n\nperf says crc_hw 5.4%\n"
            with open(doc, "w") as f:
                f.write("# old generated part\n\n| 1 | stale |\n\n" + notes)
            text = report.update_doc(sample_result(), doc, None)
            self.assertNotIn("stale", text)
            self.assertIn("| 1 | produce |", text)
            self.assertTrue(text.endswith(notes), text[-200:])
            self.assertEqual(text.count(report.NOTES_MARKER), 1)
            # twice in a row: still one copy of the notes
            text = report.update_doc(sample_result(), doc, None)
            self.assertEqual(text.count("perf says crc_hw"), 1)
            with open(doc) as f:
                self.assertEqual(f.read(), text)

    def test_value_formatting(self):
        self.assertEqual(report.fmt_value(147443.5, "msgs/s"), "147,444")
        self.assertEqual(report.fmt_value(1.234, "ms"), "1.23")
        self.assertEqual(report.fmt_value(0.0123, "s"), "0.012")
        self.assertEqual(report.fmt_figure(report.skipped("x"), "MB/s"), "-")


if __name__ == "__main__":
    unittest.main()
