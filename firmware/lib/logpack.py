# Thin uplink: flash-log records as one binary MQTT payload (no hex, no
# JSON wrapper), several records per publish. The bridge (host_tools/vegw/
# bridge*.py) and `vegw logs` unpack it; the full uplink keeps the JSON/hex
# message of app._log_message.
#
# Payload on <prefix>/<gw>/log (QoS 1):
#   +0 u8 MAGIC 0xB1 (never "{": a consumer tells binary from JSON by byte 0)
#   +1 u8 VERSION 1
#   +2 u32 seq of the first record, little endian
#   then per record: u8 type | varint seq - previous seq (0 for the first) |
#                    varint n | payload[n]   (records.py / gateway.py bytes)
# Overhead: 6 B per publish + 3-4 B per record, instead of ~35 B of JSON and
# twice the payload as hex.
import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


MAGIC = const(0xB1)
VERSION = const(1)
MAX_PAYLOAD = const(1800)  # fits mqtt_async's 2048 B tx buffer with the topic
MAX_RECORDS = const(32)


def _varint(u):
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return out


def size(n):
    """Bytes a record of payload length n adds to a batch (worst case)."""
    return 1 + 5 + len(_varint(n)) + n


def pack(records):
    """records: list of (seq, rtype, payload), in seq order -> bytes."""
    first = records[0][0]
    out = bytearray(6)
    out[0] = MAGIC
    out[1] = VERSION
    struct.pack_into("<I", out, 2, first)
    prev = first
    for seq, rtype, payload in records:
        out.append(rtype & 0xFF)
        out.extend(_varint((seq - prev) & 0xFFFFFFFF))
        out.extend(_varint(len(payload)))
        out.extend(payload)
        prev = seq
    return bytes(out)


def is_batch(payload):
    return len(payload) >= 6 and payload[0] == MAGIC


def unpack(payload):
    """[(seq, rtype, payload bytes)] or None if malformed (never raises)."""
    try:
        b = bytes(payload)
        if len(b) < 6 or b[0] != MAGIC or b[1] != VERSION:
            return None
        seq = struct.unpack_from("<I", b, 2)[0]
        o = 6
        out = []
        while o < len(b):
            rtype = b[o]
            o += 1
            d, o = _get_varint(b, o)
            n, o = _get_varint(b, o)
            if o + n > len(b):
                return None
            seq = (seq + d) & 0xFFFFFFFF
            out.append((seq, rtype, b[o : o + n]))
            o += n
        return out if out else None
    except Exception:  # noqa: BLE001 - bytes from the network
        return None


def _get_varint(b, o):
    u = 0
    sh = 0
    while True:
        x = b[o]
        o += 1
        u |= (x & 0x7F) << sh
        if not x & 0x80:
            return u, o
        sh += 7
        if sh > 35:
            raise ValueError("varint")
