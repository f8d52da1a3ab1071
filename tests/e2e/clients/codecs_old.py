"""Debian's python3-confluent-kafka (librdkafka 2.0.2): produce and read back
with every compression codec.

    /usr/bin/python3 codecs_old.py BOOTSTRAP TOPIC_PREFIX COUNT

For each codec, produces COUNT keyed records with headers to
TOPIC_PREFIX-CODEC (auto-created), reads them back with assign(), and prints
one JSON line per codec:
  {"codec": c, "sent": [[offset, key, value, headers]...], "read": [...]}
Exits non-zero with a traceback when the client reported an error.
"""
import json
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def record(i):
    key = ("key-%d" % i).encode()
    value = (("value %d " % i) * (1 + i % 7)).encode()
    headers = [("seq", str(i).encode()), ("codec-test", b"\x00\x01\xff")]
    return key, value, headers


def norm(key, value, headers):
    return [key.decode() if key is not None else None,
            value.decode() if value is not None else None,
            [[k, v.hex() if v is not None else None] for k, v in (headers or [])]]


def main():
    bootstrap, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for codec in CODECS:
        topic = "%s-%s" % (prefix, codec)
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                      "linger.ms": 20, "acks": "all"})
        sent = []
        errors = []

        def done_for(i):
            # A delivery report carries no headers: compare against what was sent.
            def done(err, msg):
                if err is not None:
                    errors.append(str(err))
                else:
                    sent.append([msg.offset()] + norm(*record(i)))
            return done

        for i in range(count):
            k, v, h = record(i)
            p.produce(topic, v, key=k, headers=h, on_delivery=done_for(i))
        left = p.flush(60)
        if errors or left:
            raise SystemExit("%s: delivery errors %r, %d undelivered" % (codec, errors[:3], left))

        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tm-e2e-old-" + codec,
                      "enable.auto.commit": False})
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        read = []
        deadline = time.time() + 60
        while len(read) < count and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise SystemExit("%s: consume error %s" % (codec, m.error()))
            read.append([m.offset()] + norm(m.key(), m.value(), m.headers()))
        c.close()
        sent.sort()
        print(json.dumps({"codec": codec, "sent": sent, "read": read}), flush=True)


if __name__ == "__main__":
    main()
