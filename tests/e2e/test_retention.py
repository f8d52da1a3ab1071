"""Retention: with small segments and a small retention.bytes (or a short
retention.ms), old segments go away, the earliest offset advances, and the
partition's disk usage stays bounded.  Both targets run with
log.retention.check.interval.ms=1000 (conftest)."""
import os
import random

from conftest import SEED
from tmhelp import consume, create_topic, produce, unique_topic, wait_for, watermarks

MiB = 1024 * 1024
SEGMENT_BYTES = 1 * MiB   # Kafka 4 refuses segment.bytes below 1 MiB
RETENTION_BYTES = 2 * MiB


def disk_usage(path):
    """Bytes allocated under path, like du (sparse preallocated index files
    count for what they use).  Kafka renames a segment to *.deleted and
    removes it file.delete.delay.ms later; those are on their way out and
    are not counted."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            if f.endswith(".deleted"):
                continue
            try:
                total += os.stat(os.path.join(dirpath, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def segment_files(path):
    return sorted(f for f in os.listdir(path) if f.endswith(".log"))


def fill(bootstrap, topic, total_bytes, record_bytes, seed):
    rnd = random.Random(seed)
    n = total_bytes // record_bytes
    # Random bytes: incompressible, so the log really grows by total_bytes.
    records = [{"value": rnd.randbytes(record_bytes)} for _ in range(n)]
    for i in range(0, n, 200):
        produce(bootstrap, topic, records[i:i + 200], {"linger.ms": 5, "acks": "all"})
    return n


def test_retention_bytes_bounds_disk_and_advances_earliest(broker):
    topic = unique_topic("ret-bytes")
    create_topic(broker.bootstrap, topic, config={"segment.bytes": str(SEGMENT_BYTES),
                                                  "retention.bytes": str(RETENTION_BYTES)})
    n = fill(broker.bootstrap, topic, 12 * MiB, 10 * 1024, SEED)
    pdir = broker.data_dir / ("%s-0" % topic)
    bound = RETENTION_BYTES + 2 * SEGMENT_BYTES + MiB

    def settled():
        lo, hi = watermarks(broker.bootstrap, topic, 0)
        used = disk_usage(pdir)
        return (lo, hi, used, segment_files(pdir)) if lo > 0 and used <= bound else None

    state = wait_for(settled, 60,
                     "seed %d: retention.bytes never bounded %s (bound %d)" % (SEED, pdir, bound))
    lo, hi, used, segs = state
    assert hi == n, "high watermark %d after %d records" % (hi, n)
    # What is left is a suffix of the log, readable from the new start.
    kept = hi - lo
    assert kept * 10 * 1024 >= RETENTION_BYTES - SEGMENT_BYTES, "kept only %d records" % kept
    got = consume(broker.bootstrap, topic, [0], kept, timeout=60)
    assert got[0]["offset"] == lo and got[-1]["offset"] == hi - 1
    assert [m["offset"] for m in got] == list(range(lo, hi))


def test_retention_ms_removes_old_closed_segments(broker):
    topic = unique_topic("ret-ms")
    create_topic(broker.bootstrap, topic, config={"segment.bytes": str(SEGMENT_BYTES),
                                                  "retention.ms": "3000"})
    n = fill(broker.bootstrap, topic, 4 * MiB, 10 * 1024, SEED + 1)
    pdir = broker.data_dir / ("%s-0" % topic)
    lo = wait_for(lambda: watermarks(broker.bootstrap, topic, 0)[0], 60,
                  "seed %d: earliest offset of %s never moved past 0 (segments %r)" % (
                      SEED, topic, segment_files(pdir)))
    assert 0 < lo <= n
    # The active segment stays; the closed ones past retention.ms all go
    # (a retention pass may take them a few at a time).
    try:
        wait_for(lambda: len(segment_files(pdir)) <= 2, 60, "closed segments removed")
    except AssertionError:
        raise AssertionError("seed %d: closed segments past retention.ms still there after 60 s: %r"
                             % (SEED, segment_files(pdir)))
