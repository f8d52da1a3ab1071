"""Kafka's own command-line tools (Java, 4.1) against the broker: what an
operator types and reads.  JVM starts dominate the time, so each tool runs
only as often as the behaviour needs; confluent-kafka checks results where a
second JVM would add nothing."""
import re

from tmhelp import admin, consume, kafka_tool, unique_topic, wait_for, watermarks


def topics_list(bootstrap):
    p = kafka_tool("kafka-topics", "--bootstrap-server", bootstrap, "--list")
    return p.stdout.split()


def partition_count(bootstrap, topic):
    md = admin(bootstrap).list_topics(topic=topic, timeout=10)
    t = md.topics.get(topic)
    return 0 if t is None or t.error is not None else len(t.partitions)


def test_kafka_topics_create_list_describe_alter_delete(broker):
    b = broker.bootstrap
    topic = unique_topic("cli")
    p = kafka_tool("kafka-topics", "--bootstrap-server", b, "--create", "--topic", topic,
                   "--partitions", "3", "--replication-factor", "1", "--config", "retention.ms=1000000")
    assert "Created topic %s." % topic in p.stdout, p.stdout + p.stderr
    assert topic in topics_list(b)

    p = kafka_tool("kafka-topics", "--bootstrap-server", b, "--describe", "--topic", topic)
    head = [line for line in p.stdout.splitlines() if line.startswith("Topic: %s\t" % topic)]
    assert head and "PartitionCount: 3" in head[0] and "ReplicationFactor: 1" in head[0], p.stdout
    assert re.search(r"TopicId: \S{22}", head[0]), "no topic id in: %s" % head[0]
    # Kafka 4 also lists min.insync.replicas, which its storage format sets
    # as a cluster-level config; the topic's own override must be there.
    configs = head[0].split("Configs:", 1)[1].strip().split(",") if "Configs:" in head[0] else []
    assert "retention.ms=1000000" in configs, head[0]
    parts = re.findall(r"Partition: (\d+)\s+Leader: (\d+)\s+Replicas: (\d+)\s+Isr: (\d+)", p.stdout)
    assert sorted(x[0] for x in parts) == ["0", "1", "2"], p.stdout
    assert all(x[1:] == ("1", "1", "1") for x in parts), p.stdout

    kafka_tool("kafka-topics", "--bootstrap-server", b, "--alter", "--topic", topic, "--partitions", "5")
    wait_for(lambda: partition_count(b, topic) == 5, 20, "5 partitions after --alter")

    kafka_tool("kafka-topics", "--bootstrap-server", b, "--delete", "--topic", topic)
    wait_for(lambda: topic not in topics_list(b), 30, "topic gone from --list after --delete",
             interval=1)


def test_console_producer_then_console_consumer(broker):
    b = broker.bootstrap
    topic = unique_topic("console")  # created on first use (auto.create.topics.enable)
    lines = ["k%d:line %d of the console producer" % (i, i) for i in range(25)]
    kafka_tool("kafka-console-producer", "--bootstrap-server", b, "--topic", topic,
               "--property", "parse.key=true", "--property", "key.separator=:",
               input="\n".join(lines) + "\n")
    p = kafka_tool("kafka-console-consumer", "--bootstrap-server", b, "--topic", topic,
                   "--partition", "0", "--offset", "earliest", "--max-messages", str(len(lines)),
                   "--property", "print.key=true", "--property", "print.offset=true",
                   "--timeout-ms", "30000")
    got = [line for line in p.stdout.splitlines() if line.startswith("Offset:")]
    want = ["Offset:%d\tk%d\tline %d of the console producer" % (i, i, i) for i in range(len(lines))]
    assert got == want, "stdout:\n%s\nstderr:\n%s" % (p.stdout[-2000:], p.stderr[-2000:])
    assert "Processed a total of %d messages" % len(lines) in p.stderr + p.stdout


def test_kafka_configs_alter_and_describe_topic_retention(broker):
    b = broker.bootstrap
    topic = unique_topic("cfg")
    kafka_tool("kafka-topics", "--bootstrap-server", b, "--create", "--topic", topic,
               "--partitions", "1", "--replication-factor", "1")
    before = kafka_tool("kafka-configs", "--bootstrap-server", b, "--describe",
                        "--entity-type", "topics", "--entity-name", topic)
    assert "Dynamic configs for topic %s are:" % topic in before.stdout, before.stdout
    assert "retention.ms=" not in before.stdout
    p = kafka_tool("kafka-configs", "--bootstrap-server", b, "--alter", "--entity-type", "topics",
                   "--entity-name", topic, "--add-config", "retention.ms=86400000,segment.bytes=1048576")
    assert "Completed updating config for topic %s." % topic in p.stdout, p.stdout + p.stderr
    after = kafka_tool("kafka-configs", "--bootstrap-server", b, "--describe",
                       "--entity-type", "topics", "--entity-name", topic)
    assert re.search(r"^\s*retention\.ms=86400000 sensitive=false", after.stdout, re.M), after.stdout
    assert re.search(r"^\s*segment\.bytes=1048576 sensitive=false", after.stdout, re.M), after.stdout


def test_kafka_get_offsets_shows_earliest_and_latest(broker):
    b = broker.bootstrap
    topic = unique_topic("getoff")
    kafka_tool("kafka-topics", "--bootstrap-server", b, "--create", "--topic", topic,
               "--partitions", "2", "--replication-factor", "1")
    from tmhelp import produce
    produce(b, topic, [{"value": b"a%d" % i, "partition": 0} for i in range(7)]
            + [{"value": b"b%d" % i, "partition": 1} for i in range(3)])
    p = kafka_tool("kafka-get-offsets", "--bootstrap-server", b, "--topic", topic)
    assert sorted(p.stdout.split()) == ["%s:0:7" % topic, "%s:1:3" % topic], p.stdout + p.stderr
    p = kafka_tool("kafka-get-offsets", "--bootstrap-server", b, "--topic", topic, "--time", "-2")
    assert sorted(p.stdout.split()) == ["%s:0:0" % topic, "%s:1:0" % topic], p.stdout + p.stderr
    assert watermarks(b, topic, 0) == (0, 7)


def test_kafka_broker_api_versions_lists_usable_apis(broker):
    p = kafka_tool("kafka-broker-api-versions", "--bootstrap-server", broker.bootstrap)
    first = p.stdout.splitlines()[0]
    assert first.startswith("%s (id: 1 rack: null" % broker.bootstrap), p.stdout[:500]
    for api in ("Produce(0)", "Fetch(1)", "ListOffsets(2)", "Metadata(3)", "ApiVersions(18)",
                "CreateTopics(19)", "DeleteTopics(20)", "InitProducerId(22)", "DescribeConfigs(32)"):
        line = [x for x in p.stdout.splitlines() if x.strip().startswith(api + ":")]
        assert line, "%s missing:\n%s" % (api, p.stdout)
        assert "usable:" in line[0], "%s not usable by the 4.1 client: %s" % (api, line[0])


def test_console_consumer_reads_every_partition_while_producing(broker):
    """The Java consumer (fetch sessions, KIP-227) follows six partitions
    while records keep arriving; it reads each record exactly once."""
    import subprocess
    import time
    from conftest import JAVA_CLI_OPTS, KAFKA_TOOL_CLASSES, java_classpath
    from tmhelp import create_topic, produce
    b = broker.bootstrap
    topic = unique_topic("console-many")
    create_topic(b, topic, 6)
    rounds, per_round = 4, 60
    cmd = (["java"] + JAVA_CLI_OPTS + ["-cp", java_classpath(), KAFKA_TOOL_CLASSES["kafka-console-consumer"],
                                        "--bootstrap-server", b, "--topic", topic, "--from-beginning",
                                        "--max-messages", str(rounds * per_round), "--timeout-ms", "30000"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for r in range(rounds):
            produce(b, topic, [{"value": b"r%d-%d" % (r, i), "partition": i % 6} for i in range(per_round)])
            time.sleep(1.0)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    got = sorted(out.split())
    want = sorted("r%d-%d" % (r, i) for r in range(rounds) for i in range(per_round))
    assert got == want, "read %d of %d; missing %r; stderr:\n%s" % (
        len(got), len(want), sorted(set(want) - set(got))[:10], err[-2000:])


def test_kafka_configs_describe_broker_shows_its_settings(broker):
    p = kafka_tool("kafka-configs", "--bootstrap-server", broker.bootstrap, "--describe",
                   "--entity-type", "brokers", "--entity-name", "1", "--all")
    assert "All configs for broker 1 are:" in p.stdout, p.stdout[:1000] + p.stderr[-1000:]
    for setting in ("num.partitions=1", "log.retention.check.interval.ms=1000",
                    "auto.create.topics.enable=true", "default.replication.factor=1"):
        assert re.search(r"^\s*%s sensitive=false" % re.escape(setting), p.stdout, re.M), \
            "%s missing from:\n%s" % (setting, p.stdout[:3000])
    # A setting nobody set is reported as Kafka's default, not as set in the file.
    line = [x for x in p.stdout.splitlines() if x.strip().startswith("log.segment.bytes=")]
    assert line and line[0].strip() == ("log.segment.bytes=1073741824 sensitive=false "
                                        "synonyms={DEFAULT_CONFIG:log.segment.bytes=1073741824}"), line


def test_kcat_metadata_lists_broker_topic_leaders(broker):
    import json
    from tmhelp import create_topic, kcat
    topic = unique_topic("kcat-meta")
    create_topic(broker.bootstrap, topic, 3)
    p = kcat("-L", "-J", "-b", broker.bootstrap, "-t", topic)
    md = json.loads(p.stdout)
    assert [(x["id"], x["name"]) for x in md["brokers"]] == [(1, broker.bootstrap)], md["brokers"]
    (t,) = md["topics"]
    assert t["topic"] == topic and "error" not in t, t
    assert sorted((x["partition"], x["leader"], [r["id"] for r in x["replicas"]], [r["id"] for r in x["isrs"]])
                  for x in t["partitions"]) == [(i, 1, [1], [1]) for i in range(3)], t
