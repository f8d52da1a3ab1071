"""The kafka-python tutorial, exactly as a new user runs it: a KafkaProducer
with a JSON value_serializer sends {'name': 'vivek'} and friends to 'demo1';
a KafkaConsumer in group 'demo' with auto_offset_reset='earliest' reads them
back.  Run with PyPI's kafka-python (in the venv) and Debian's kafka-python
2.0.2 (/usr/bin/python3), against auto-created and pre-created two-partition
topics, and without a group (assign + seek_to_beginning)."""
import sys

import pytest

from tmhelp import OLD_PYTHON, E2E_DIR, _run, json_lines, kafka_tool
from clients.tutorial import NAMES

CLIENTS = {"pypi": sys.executable, "debian-2.0.2": OLD_PYTHON}


def run_tutorial(broker, python, topic, group, mode):
    p = _run([python, str(E2E_DIR / "clients" / "tutorial.py"), broker.bootstrap, topic, group, mode],
             timeout=150, check=False)
    if p.returncode != 0:
        pytest.fail("tutorial (%s, %s) exited %d\nstdout:\n%s\nstderr:\n%s" % (
            python, mode, p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    return json_lines(p.stdout)


def check_round_trip(lines, partitions):
    sent = [x for x in lines if "sent" in x]
    read = [x for x in lines if "read" in x]
    assert len(sent) == len(NAMES), lines
    assert all(0 <= s["partition"] < partitions for s in sent), sent
    # Every acknowledged record is read back once, at its acknowledged offset.
    assert sorted((s["partition"], s["offset"], NAMES[s["sent"]]) for s in sent) == \
        sorted((r["partition"], r["offset"], r["read"]["name"]) for r in read), lines
    assert all(r["read"] == {"name": r["read"]["name"]} for r in read)
    # Offsets in each partition start at 0 and are contiguous.
    for p in range(partitions):
        offs = sorted(s["offset"] for s in sent if s["partition"] == p)
        assert offs == list(range(len(offs))), "partition %d offsets %r" % (p, offs)


@pytest.mark.parametrize("client", list(CLIENTS))
def test_tutorial_group_consumer_reads_json_records(fresh_broker, client):
    lines = run_tutorial(fresh_broker, CLIENTS[client], "demo1", "demo", "group")
    check_round_trip(lines, 1)
    again = [x["again"] for x in lines if "again" in x]
    assert again == [0], "a second run of the group's consumer re-read %r records" % again


@pytest.mark.parametrize("client", list(CLIENTS))
def test_tutorial_on_two_partition_topic(broker, client):
    topic = "demo2p-" + client.replace(".", "")
    kafka_tool("kafka-topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", topic,
               "--partitions", "2", "--replication-factor", "1")
    lines = run_tutorial(broker, CLIENTS[client], topic, "demo-" + client, "group")
    check_round_trip(lines, 2)


@pytest.mark.parametrize("client", list(CLIENTS))
def test_consumer_without_group_assign_and_seek_to_beginning(broker, client):
    lines = run_tutorial(broker, CLIENTS[client], "demo-assign-" + client.replace(".", ""), "", "assign")
    check_round_trip(lines, 1)
