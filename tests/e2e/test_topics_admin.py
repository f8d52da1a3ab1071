"""Topic administration through confluent-kafka's AdminClient: create,
delete, add partitions, describe and alter configs, describe the cluster, and
the error codes a client sees for what a one-node cluster refuses."""
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic)

from tmhelp import admin, unique_topic, wait_for, wait_for_metadata, wait_for_value

T = 30


def topic_error(fut):
    """The KafkaError code a create/delete future failed with (None if it
    succeeded)."""
    try:
        fut.result(timeout=T)
        return None
    except KafkaException as e:
        return e.args[0].code()


def topic_config(a, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return a.describe_configs([res], request_timeout=T)[res].result(timeout=T)


def config_values(a, topic, keys):
    cfg = topic_config(a, topic)
    return {k: cfg[k].value if k in cfg else None for k in keys}


def partition_count(a, topic):
    t = a.list_topics(topic=topic, timeout=10).topics.get(topic)
    return -1 if t is None or t.error is not None else len(t.partitions)


def test_create_describe_and_delete_topics(broker):
    a = admin(broker.bootstrap)
    names = [unique_topic("adm-a"), unique_topic("adm-b")]
    fs = a.create_topics([NewTopic(names[0], 3, 1), NewTopic(names[1], 1, 1, config={"cleanup.policy": "compact"})],
                         operation_timeout=T)
    for n in names:
        assert topic_error(fs[n]) is None
    wait_for_metadata(broker.bootstrap, names[0], 3)
    wait_for_metadata(broker.bootstrap, names[1], 1)
    md = a.list_topics(timeout=10)
    t = md.topics[names[0]]
    assert sorted(t.partitions) == [0, 1, 2]
    assert all(p.leader == 1 and p.replicas == [1] and p.isrs == [1] for p in t.partitions.values())
    assert topic_config(a, names[1])["cleanup.policy"].value == "compact"

    fs = a.delete_topics(names, operation_timeout=T)
    for n in names:
        assert topic_error(fs[n]) is None
    wait_for(lambda: not set(names) & set(a.list_topics(timeout=10).topics), T, "topics deleted")


def test_create_existing_topic_is_topic_already_exists(broker):
    a = admin(broker.bootstrap)
    name = unique_topic("adm-dup")
    assert topic_error(a.create_topics([NewTopic(name, 1, 1)])[name]) is None
    code = topic_error(a.create_topics([NewTopic(name, 2, 1)])[name])
    assert code == KafkaError.TOPIC_ALREADY_EXISTS, "second CreateTopics: %r" % code
    assert partition_count(a, name) == 1


def test_replication_factor_above_broker_count_is_invalid_replication_factor(broker):
    a = admin(broker.bootstrap)
    name = unique_topic("adm-rf3")
    code = topic_error(a.create_topics([NewTopic(name, 1, 3)])[name])
    assert code == KafkaError.INVALID_REPLICATION_FACTOR, "RF 3 on one node: %r" % code
    assert name not in a.list_topics(timeout=10).topics


def test_validate_only_does_not_create(broker):
    a = admin(broker.bootstrap)
    name = unique_topic("adm-validate")
    assert topic_error(a.create_topics([NewTopic(name, 2, 1)], validate_only=True)[name]) is None
    assert name not in a.list_topics(timeout=10).topics


def test_invalid_config_value_is_invalid_config(broker):
    a = admin(broker.bootstrap)
    name = unique_topic("adm-badcfg")
    code = topic_error(a.create_topics([NewTopic(name, 1, 1, config={"retention.ms": "soon"})])[name])
    assert code == KafkaError.INVALID_CONFIG, "retention.ms=soon: %r" % code


def test_delete_unknown_topic_is_unknown_topic(broker):
    a = admin(broker.bootstrap)
    name = unique_topic("adm-nosuch")
    code = topic_error(a.delete_topics([name], operation_timeout=T)[name])
    assert code == KafkaError.UNKNOWN_TOPIC_OR_PART, "DeleteTopics of unknown topic: %r" % code


def test_create_partitions_grows_and_refuses_shrink(broker):
    a = admin(broker.bootstrap)
    name = unique_topic("adm-parts")
    assert topic_error(a.create_topics([NewTopic(name, 2, 1)])[name]) is None
    wait_for_metadata(broker.bootstrap, name, 2)
    assert topic_error(a.create_partitions([NewPartitions(name, 4)], operation_timeout=T)[name]) is None
    wait_for(lambda: partition_count(a, name) == 4, T, "4 partitions")
    code = topic_error(a.create_partitions([NewPartitions(name, 3)], operation_timeout=T)[name])
    assert code == KafkaError.INVALID_PARTITIONS, "shrinking to 3: %r" % code
    assert partition_count(a, name) == 4


def test_describe_configs_shows_kafka_defaults(broker):
    a = admin(broker.bootstrap)
    name = unique_topic("adm-defaults")
    assert topic_error(a.create_topics([NewTopic(name, 1, 1)])[name]) is None
    wait_for_metadata(broker.bootstrap, name, 1)
    cfg = topic_config(a, name)
    want = {"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1",
            "segment.bytes": "1073741824", "compression.type": "producer",
            "message.timestamp.type": "CreateTime", "min.insync.replicas": "1",
            "max.message.bytes": "1048588"}
    got = {k: cfg[k].value if k in cfg else None for k in want}
    assert got == want
    # Not set on the topic: a default, not a topic override.
    assert cfg["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value, cfg["retention.ms"]
    assert cfg["retention.ms"].is_default


def test_incremental_alter_configs_set_and_delete(broker):
    a = admin(broker.bootstrap)
    name = unique_topic("adm-alter")
    assert topic_error(a.create_topics([NewTopic(name, 1, 1)])[name]) is None
    wait_for_metadata(broker.bootstrap, name, 1)
    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "2000000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(timeout=T)
    # The change reaches DescribeConfigs through the metadata log: allow it
    # a moment, as a client polling would.
    want = {"retention.ms": "3600000", "max.message.bytes": "2000000"}
    wait_for_value(lambda: config_values(a, name, want), want, 10, "altered configs")
    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([res])[res].result(timeout=T)
    want = {"retention.ms": "604800000", "max.message.bytes": "2000000"}
    wait_for_value(lambda: config_values(a, name, want), want, 10, "retention.ms back to default")


def test_describe_cluster_shows_this_node(broker):
    a = admin(broker.bootstrap)
    d = a.describe_cluster(request_timeout=T).result(timeout=T)
    assert d.cluster_id, "empty cluster id"
    assert [(n.id, n.host, n.port) for n in d.nodes] == [(1, "127.0.0.1", broker.port)]
    assert d.controller is not None and d.controller.id == 1


def test_kafka_python_admin_client_create_describe_delete(broker):
    """kafka-python's own admin client (PyPI) picks other request versions
    than librdkafka; the same operations work and fail the same way."""
    import kafka.errors
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic
    ka = KafkaAdminClient(bootstrap_servers=[broker.bootstrap], request_timeout_ms=20000)
    try:
        name = unique_topic("kpy-admin")
        ka.create_topics([KNewTopic(name, 2, 1, topic_configs={"retention.ms": "123456789"})])
        wait_for_metadata(broker.bootstrap, name, 2)
        assert name in ka.list_topics()
        with pytest.raises(kafka.errors.TopicAlreadyExistsError):
            ka.create_topics([KNewTopic(name, 2, 1)])
        with pytest.raises(kafka.errors.InvalidReplicationFactorError):
            ka.create_topics([KNewTopic(unique_topic("kpy-rf3"), 1, 3)])
        desc = ka.describe_configs([KConfigResource(ConfigResourceType.TOPIC, name)])
        text = repr(desc)
        assert "123456789" in text, text[:2000]
        ka.delete_topics([name])
        wait_for(lambda: name not in ka.list_topics(), T, "kafka-python: topic deleted")
    finally:
        ka.close()


def test_recreated_topic_starts_empty_with_a_new_id(broker):
    """Delete a topic with records and create one of the same name: the new
    topic has a new id and none of the old records."""
    from tmhelp import consume, produce, watermarks
    a = admin(broker.bootstrap)
    name = unique_topic("adm-recreate")
    assert topic_error(a.create_topics([NewTopic(name, 1, 1)])[name]) is None
    wait_for_metadata(broker.bootstrap, name, 1)
    produce(broker.bootstrap, name, [{"value": b"old-%d" % i} for i in range(10)])
    old_id = a.describe_topics(_topic_collection([name]))[name].result(timeout=T).topic_id
    assert topic_error(a.delete_topics([name], operation_timeout=T)[name]) is None
    wait_for(lambda: name not in a.list_topics(timeout=10).topics, T, "topic deleted")

    def recreate():
        code = topic_error(a.create_topics([NewTopic(name, 1, 1)])[name])
        # Kafka may still be removing the old one for a moment.
        return code is None or (code != KafkaError.TOPIC_ALREADY_EXISTS and code)
    assert wait_for(recreate, T, "topic created again") is True
    wait_for_metadata(broker.bootstrap, name, 1)
    new_id = a.describe_topics(_topic_collection([name]))[name].result(timeout=T).topic_id
    assert str(new_id) != str(old_id), "the recreated topic kept id %s" % old_id
    assert watermarks(broker.bootstrap, name, 0) == (0, 0)
    produce(broker.bootstrap, name, [{"value": b"new"}])
    got = consume(broker.bootstrap, name, [0], 1)
    assert [(m["offset"], m["value"]) for m in got] == [(0, b"new")]


def _topic_collection(names):
    from confluent_kafka import TopicCollection
    return TopicCollection(names)
