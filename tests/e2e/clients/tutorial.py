"""The kafka-python tutorial, as a user runs it, made bounded in time.

    python3 tutorial.py BOOTSTRAP TOPIC GROUP group|assign

Runs under the venv's kafka-python (PyPI) and under Debian's python3-kafka
2.0.2 alike.  Prints one JSON object per line:
  {"sent": i, "partition": p, "offset": o}        per acknowledged record
  {"read": value, "partition": p, "offset": o}    per record read back
  {"again": n}                                    (group mode) records a second
                                                  consumer of the same group got
Exits non-zero with a traceback when the client raised.
"""
import json
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

NAMES = ["vivek", "amit", "sara", "li", "noor"]


def out(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def main():
    bootstrap, topic, group, mode = sys.argv[1:5]
    producer = KafkaProducer(bootstrap_servers=[bootstrap],
                             value_serializer=lambda v: json.dumps(v).encode("utf-8"))
    futures = [producer.send(topic, {"name": n}) for n in NAMES]
    for i, f in enumerate(futures):
        md = f.get(timeout=60)
        out({"sent": i, "partition": md.partition, "offset": md.offset})
    producer.flush()
    producer.close()

    deser = lambda x: json.loads(x.decode("utf-8"))
    if mode == "group":
        consumer = KafkaConsumer(topic, bootstrap_servers=[bootstrap], auto_offset_reset="earliest",
                                 enable_auto_commit=True, group_id=group,
                                 value_deserializer=deser, consumer_timeout_ms=45000)
    else:
        consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None,
                                 enable_auto_commit=False, value_deserializer=deser,
                                 consumer_timeout_ms=30000)
        parts = consumer.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
    got = 0
    for message in consumer:
        out({"read": message.value, "partition": message.partition, "offset": message.offset})
        got += 1
        if got == len(NAMES):
            break
    consumer.close()  # commits the group's offsets (enable_auto_commit)

    if mode == "group":
        # Running the tutorial's consumer again reads nothing new: the
        # offsets were committed.
        again = KafkaConsumer(topic, bootstrap_servers=[bootstrap], auto_offset_reset="earliest",
                              enable_auto_commit=True, group_id=group,
                              value_deserializer=deser, consumer_timeout_ms=8000)
        n = sum(1 for _ in again)
        again.close()
        out({"again": n})


if __name__ == "__main__":
    main()
