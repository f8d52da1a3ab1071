"""rawkafka — a minimal Kafka wire client over a plain socket, for the tests
that need exact bytes: malformed frames, unsupported versions, corrupt CRCs.

Every request is framed as `int32 length | header | body`.  Header v1 is
`api_key i16 | api_version i16 | correlation_id i32 | client_id nullable
string(i16)`; header v2 (flexible request versions) appends an empty tagged
field section (one uvarint 0).  Responses start with `correlation_id i32`
and, for flexible versions other than ApiVersions, an empty tagged field
section (response header v1).  ApiVersions always answers with header v0
(KIP-511).

Record batch v2 (magic 2), as built by `record_batch`:

    OFFSET SIZE FIELD
    0      8    base_offset (0: the broker assigns)
    8      4    batch_length (bytes after this field)
    12     4    partition_leader_epoch (-1)
    16     1    magic (2)
    17     4    crc (CRC-32C of bytes 21..end)
    21     2    attributes (compression in bits 0-2)
    23     4    last_offset_delta
    27     8    base_timestamp
    35     8    max_timestamp
    43     8    producer_id (-1)
    51     2    producer_epoch (-1)
    53     4    base_sequence (-1)
    57     4    record_count
    61     ...  records

Only what the tests use is here; it is not a general client.
"""
import socket
import struct
import time

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_API_VERSIONS = 18
API_CREATE_TOPICS = 19

ERR_NONE = 0
ERR_CORRUPT_MESSAGE = 2
ERR_INVALID_TOPIC_EXCEPTION = 17
ERR_UNSUPPORTED_VERSION = 35
ERR_TOPIC_ALREADY_EXISTS = 36
ERR_INVALID_REPLICATION_FACTOR = 38


class ShortRead(Exception):
    pass


class Writer:
    def __init__(self):
        self.parts = []

    def raw(self, b):
        self.parts.append(bytes(b))
        return self

    def i8(self, v):
        return self.raw(struct.pack(">b", v))

    def i16(self, v):
        return self.raw(struct.pack(">h", v))

    def i32(self, v):
        return self.raw(struct.pack(">i", v))

    def u32(self, v):
        return self.raw(struct.pack(">I", v))

    def i64(self, v):
        return self.raw(struct.pack(">q", v))

    def uvarint(self, v):
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                out.append(b | 0x80)
            else:
                out.append(b)
                return self.raw(out)

    def varint(self, v):
        return self.uvarint((v << 1) ^ (v >> 63))

    def string(self, s):
        """Nullable string with an int16 length."""
        if s is None:
            return self.i16(-1)
        b = s.encode() if isinstance(s, str) else s
        return self.i16(len(b)).raw(b)

    def compact_string(self, s):
        if s is None:
            return self.uvarint(0)
        b = s.encode() if isinstance(s, str) else s
        return self.uvarint(len(b) + 1).raw(b)

    def bytes_(self, b):
        if b is None:
            return self.i32(-1)
        return self.i32(len(b)).raw(b)

    def tags(self):
        return self.uvarint(0)

    def build(self):
        return b"".join(self.parts)


class Reader:
    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ShortRead("need %d bytes at %d of %d" % (n, self.pos, len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        shift = 0
        v = 0
        while True:
            b = self.take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 63:
                raise ShortRead("varint too long")

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def compact_string(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def remaining(self):
        return len(self.data) - self.pos


# ---- CRC-32C (Castagnoli), reflected polynomial 0x82F63B78 ------------------
_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _record(offset_delta, ts_delta, key, value, headers):
    body = Writer().i8(0).varint(ts_delta).varint(offset_delta)
    for part in (key, value):
        if part is None:
            body.varint(-1)
        else:
            body.varint(len(part)).raw(part)
    body.varint(len(headers))
    for hk, hv in headers:
        hk = hk.encode()
        body.varint(len(hk)).raw(hk)
        if hv is None:
            body.varint(-1)
        else:
            body.varint(len(hv)).raw(hv)
    b = body.build()
    return Writer().varint(len(b)).raw(b).build()


def record_batch(records, base_ts_ms=None, producer_id=-1, producer_epoch=-1, base_sequence=-1):
    """records: list of (key bytes|None, value bytes|None, [(hkey, hval)]).
    Returns an uncompressed magic-2 batch with a correct CRC-32C; with a
    producer id it is an idempotent batch starting at base_sequence."""
    if base_ts_ms is None:
        base_ts_ms = int(time.time() * 1000)
    recs = b"".join(_record(i, 0, k, v, h) for i, (k, v, h) in enumerate(records))
    after_crc = (Writer().i16(0).i32(len(records) - 1).i64(base_ts_ms).i64(base_ts_ms)
                 .i64(producer_id).i16(producer_epoch).i32(base_sequence).i32(len(records))
                 .raw(recs).build())
    crc = crc32c(after_crc)
    tail = Writer().i32(-1).i8(2).u32(crc).raw(after_crc).build()
    return Writer().i64(0).i32(len(tail)).raw(tail).build()


def corrupt_batch_payload(batch):
    """Flip one bit in the last byte of the records, leaving the CRC field as
    it was: the batch is well formed but its CRC no longer matches."""
    b = bytearray(batch)
    b[-1] ^= 0x01
    return bytes(b)


# ---- connection -------------------------------------------------------------
class Conn:
    """One TCP connection to a broker.  `timeout` bounds every socket call."""

    def __init__(self, host, port, timeout=10.0, client_id="tm-e2e-raw"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.client_id = client_id
        self.corr = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def header(self, api_key, api_version, flexible, corr=None):
        if corr is None:
            self.corr += 1
            corr = self.corr
        w = Writer().i16(api_key).i16(api_version).i32(corr).string(self.client_id)
        if flexible:
            w.tags()
        return corr, w.build()

    def send(self, api_key, api_version, body, flexible=False):
        corr, hdr = self.header(api_key, api_version, flexible)
        payload = hdr + body
        self.send_raw(struct.pack(">i", len(payload)) + payload)
        return corr

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def recv_frame(self):
        """Returns the payload of the next response frame, or None when the
        broker closed the connection.  Raises socket.timeout when nothing
        arrives within the timeout."""
        head = self.recv_exact(4)
        if head is None:
            return None
        (n,) = struct.unpack(">i", head)
        if n < 0 or n > 64 * 1024 * 1024:
            raise ShortRead("response length %d" % n)
        return self.recv_exact(n)

    def request(self, api_key, api_version, body, flexible=False):
        """Sends one request and returns a Reader positioned at the response
        body (after the response header).  Raises ConnectionError if the
        broker closed the connection instead of answering."""
        corr = self.send(api_key, api_version, body, flexible)
        frame = self.recv_frame()
        if frame is None:
            raise ConnectionError("broker closed the connection (api %d v%d)" % (api_key, api_version))
        r = Reader(frame)
        got = r.i32()
        if got != corr:
            raise ShortRead("correlation id %d, expected %d" % (got, corr))
        if flexible and api_key != API_API_VERSIONS:
            r.skip_tags()
        return r

    def closed_by_peer(self, wait_s):
        """True when the broker closes the connection (EOF or reset) within
        wait_s seconds; False when it is still open then."""
        self.sock.settimeout(wait_s)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True


# ---- requests and responses -------------------------------------------------
def api_versions(conn, version=0):
    """ApiVersions v0..v3.  Returns (error_code, {api_key: (min, max)})."""
    flexible = version >= 3
    body = Writer()
    if flexible:
        body.compact_string("tm-e2e").compact_string("1.0").tags()
    r = conn.request(API_API_VERSIONS, version, body.build(), flexible)
    err = r.i16()
    keys = {}
    n = r.uvarint() - 1 if flexible else r.i32()
    for _ in range(max(n, 0)):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        if flexible:
            r.skip_tags()
        keys[k] = (lo, hi)
    return err, keys


def metadata_brokers(conn):
    """Metadata v4 for no topics; returns [(node_id, host, port)]."""
    r = conn.request(API_METADATA, 4, Writer().i32(0).i8(0).build())
    r.i32()  # throttle_time_ms
    brokers = []
    for _ in range(r.i32()):
        node, host, port = r.i32(), r.string(), r.i32()
        r.string()  # rack
        brokers.append((node, host, port))
    return brokers


def produce_v7(conn, topic, partition, batch, acks=-1, timeout_ms=10000):
    """Produce v7 (non-flexible).  Returns (error_code, base_offset); with
    acks=0 the broker sends no response, so this returns None after sending."""
    body = (Writer().string(None).i16(acks).i32(timeout_ms).i32(1).string(topic)
            .i32(1).i32(partition).bytes_(batch).build())
    if acks == 0:
        conn.send(API_PRODUCE, 7, body)
        return None
    r = conn.request(API_PRODUCE, 7, body)
    assert r.i32() == 1, "one topic in the produce response"
    r.string()
    assert r.i32() == 1, "one partition in the produce response"
    r.i32()
    err = r.i16()
    base = r.i64()
    return err, base


def create_topics_v4(conn, names, partitions=1, replication=1, timeout_ms=10000):
    """CreateTopics v4 (non-flexible).  Returns {name: (error_code, message)}."""
    w = Writer().i32(len(names))
    for n in names:
        w.string(n).i32(partitions).i16(replication).i32(0).i32(0)
    w.i32(timeout_ms).i8(0)
    r = conn.request(API_CREATE_TOPICS, 4, w.build())
    r.i32()  # throttle_time_ms
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        err = r.i16()
        msg = r.string()
        out[name] = (err, msg)
    return out


API_INIT_PRODUCER_ID = 22
ERR_OFFSET_OUT_OF_RANGE = 1
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45


def init_producer_id_v1(conn):
    """InitProducerId v1 (non-flexible) for an idempotent, non-transactional
    producer.  Returns (error_code, producer_id, producer_epoch)."""
    r = conn.request(API_INIT_PRODUCER_ID, 1, Writer().string(None).i32(60000).build())
    r.i32()  # throttle_time_ms
    return r.i16(), r.i64(), r.i16()


def fetch_v4(conn, topic, partition, offset, max_bytes=1 << 20, partition_max_bytes=1 << 20,
             max_wait_ms=100, min_bytes=1):
    """Fetch v4 (non-flexible, by topic name, read_uncommitted).  Returns
    (error_code, high_watermark, records bytes)."""
    body = (Writer().i32(-1).i32(max_wait_ms).i32(min_bytes).i32(max_bytes).i8(0)
            .i32(1).string(topic).i32(1).i32(partition).i64(offset).i32(partition_max_bytes).build())
    r = conn.request(API_FETCH, 4, body)
    r.i32()  # throttle_time_ms
    assert r.i32() == 1, "one topic in the fetch response"
    r.string()
    assert r.i32() == 1, "one partition in the fetch response"
    r.i32()
    err = r.i16()
    hw = r.i64()
    r.i64()  # last_stable_offset
    n_aborted = r.i32()
    for _ in range(max(n_aborted, 0)):
        r.i64()
        r.i64()
    n = r.i32()
    records = b"" if n < 0 else r.take(n)
    return err, hw, records


def batches(records):
    """Splits fetched bytes into (base_offset, record_count, batch bytes);
    a partial batch at the end is left out, as clients do."""
    out = []
    pos = 0
    while pos + 61 <= len(records):
        base, length = struct.unpack(">qi", records[pos:pos + 12])
        end = pos + 12 + length
        if end > len(records):
            break
        count = struct.unpack(">i", records[pos + 57:pos + 61])[0]
        out.append((base, count, records[pos:end]))
        pos = end
    return out
