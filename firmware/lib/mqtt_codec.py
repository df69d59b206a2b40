# MQTT 3.1.1 packets for mqtt_async's client, shared by MicroPython and
# CPython: coders (pure functions on a caller's bytearray, tested against
# exact bytes in tests/shared/test_mqtt_codec.py) and Framer (splits the byte
# stream into packets in one preallocated buffer). No I/O, no clock.
try:
    from micropython import const
except ImportError:

    def const(x):
        return x


# Packet types (first byte, high nibble)
CONNECT = const(0x10)
CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBSCRIBE = const(0x82)  # with the reserved flags 0b0010
SUBACK = const(0x90)
UNSUBACK = const(0xB0)
PINGREQ = const(0xC0)
PINGRESP = const(0xD0)
DISCONNECT = const(0xE0)


# connect() error codes (positive values are CONNACK return codes 1..5)
ERR_TIMEOUT = const(-1)
ERR_NET = const(-2)
ERR_DNS = const(-3)
ERR_PROTO = const(-4)


# ---------------------------------------------------------------- coders
def _b(s):
    if isinstance(s, str):
        return s.encode()
    return s


def rl_size(n):
    """Bytes the remaining-length varint of n takes (1..4)."""
    if n < 128:
        return 1
    if n < 16384:
        return 2
    if n < 2097152:
        return 3
    return 4


def enc_rl(buf, off, n):
    """Write remaining length n (7 bits per byte, low first, bit 7 = more) at off.
    Returns the offset after it."""
    while True:
        d = n & 0x7F
        n >>= 7
        if n:
            buf[off] = d | 0x80
            off += 1
        else:
            buf[off] = d
            return off + 1


def dec_rl(buf, off, end):
    """Decode a remaining length starting at off, reading no further than end.
    Returns (value, offset after it); value -1 = incomplete, -2 = malformed
    (a fifth length byte)."""
    val = 0
    shift = 0
    for i in range(4):
        if off + i >= end:
            return -1, off
        d = buf[off + i]
        val |= (d & 0x7F) << shift
        if not d & 0x80:
            return val, off + i + 1
        shift += 7
    return -2, off


def _put_str(buf, off, s):
    n = len(s)
    buf[off] = n >> 8
    buf[off + 1] = n & 0xFF
    buf[off + 2 : off + 2 + n] = s
    return off + 2 + n


def _fits(buf, rl):
    return 1 + rl_size(rl) + rl <= len(buf)


def enc_connect(buf, client_id, keepalive=60, clean=True, user=None, password=None,
                will_topic=None, will_msg=None, will_retain=False, will_qos=0):
    """CONNECT into buf; returns its length, 0 if it does not fit."""
    cid = _b(client_id)
    rl = 10 + 2 + len(cid)
    flags = 0x02 if clean else 0
    if will_topic:
        will_topic = _b(will_topic)
        will_msg = _b(will_msg or b"")
        rl += 4 + len(will_topic) + len(will_msg)
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
    if user is not None:
        user = _b(user)
        rl += 2 + len(user)
        flags |= 0x80
        if password is not None:
            password = _b(password)
            rl += 2 + len(password)
            flags |= 0x40
    if not _fits(buf, rl):
        return 0
    buf[0] = CONNECT
    off = enc_rl(buf, 1, rl)
    off = _put_str(buf, off, b"MQTT")
    buf[off] = 4  # protocol level 3.1.1
    buf[off + 1] = flags
    buf[off + 2] = keepalive >> 8
    buf[off + 3] = keepalive & 0xFF
    off = _put_str(buf, off + 4, cid)
    if will_topic:
        off = _put_str(buf, off, will_topic)
        off = _put_str(buf, off, will_msg)
    if user is not None:
        off = _put_str(buf, off, user)
        if password is not None:
            off = _put_str(buf, off, password)
    return off


def enc_publish(buf, topic, payload, qos=0, retain=False, pid=0, dup=False):
    """PUBLISH into buf; returns its length, 0 if it does not fit."""
    topic = _b(topic)
    payload = _b(payload)
    rl = 2 + len(topic) + len(payload) + (2 if qos else 0)
    if not _fits(buf, rl):
        return 0
    buf[0] = PUBLISH | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    off = enc_rl(buf, 1, rl)
    off = _put_str(buf, off, topic)
    if qos:
        buf[off] = pid >> 8
        buf[off + 1] = pid & 0xFF
        off += 2
    buf[off : off + len(payload)] = payload
    return off + len(payload)


# socket errors a user meets, in words (errno names: the port's own numbers)
_ERRNO_TEXT = (("ECONNREFUSED", "connection refused"), ("ECONNRESET", "connection reset"),
               ("EHOSTUNREACH", "host unreachable"), ("ENETUNREACH", "network unreachable"),
               ("ETIMEDOUT", "timed out"), ("ECONNABORTED", "connection aborted"))


def err_text(e):
    """'connection refused (errno 111)' for the OSError a refused connect
    raises (a log line says what happened, not OSError(111,)); repr(e) for
    anything else."""
    import errno

    n = e.args[0] if isinstance(e, OSError) and e.args and type(e.args[0]) is int else None
    if n is not None:
        for name, text in _ERRNO_TEXT:
            if n == getattr(errno, name, None):
                return "%s (errno %d)" % (text, n)
    return repr(e)


def enc_publish_head(buf, topic, plen, retain=False):
    """Fixed header and topic of a QoS 0 PUBLISH whose `plen`-byte payload is
    written separately; returns the head's length, 0 if it does not fit."""
    topic = _b(topic)
    rl = 2 + len(topic) + plen
    if 5 + 2 + len(topic) > len(buf):
        return 0
    buf[0] = PUBLISH | (1 if retain else 0)
    off = enc_rl(buf, 1, rl)
    return _put_str(buf, off, topic)


def enc_subscribe(buf, pid, topic, qos=0):
    topic = _b(topic)
    rl = 2 + 2 + len(topic) + 1
    if not _fits(buf, rl):
        return 0
    buf[0] = SUBSCRIBE
    off = enc_rl(buf, 1, rl)
    buf[off] = pid >> 8
    buf[off + 1] = pid & 0xFF
    off = _put_str(buf, off + 2, topic)
    buf[off] = qos
    return off + 1


def enc_puback(buf, pid):
    buf[0] = PUBACK
    buf[1] = 2
    buf[2] = pid >> 8
    buf[3] = pid & 0xFF
    return 4


def dec_publish(first, body):
    """Body of an incoming PUBLISH -> (topic, payload, qos, retain, pid) as
    bytes/ints, or None when malformed (never raises)."""
    qos = (first >> 1) & 3
    n = len(body)
    if n < 2 or qos == 3:
        return None
    tl = (body[0] << 8) | body[1]
    off = 2 + tl
    pid = 0
    if qos:
        if off + 2 > n:
            return None
        pid = (body[off] << 8) | body[off + 1]
        off += 2
    if off > n:
        return None
    return bytes(body[2 : 2 + tl]), bytes(body[off:]), qos, first & 1, pid


class Framer:
    """Cuts an MQTT byte stream into packets inside one preallocated buffer.
    feed(data, handler) calls handler(first_byte, body_memoryview) for each
    complete packet (the view is only valid during the call). A packet larger
    than the buffer is skipped and counted in `dropped`; for a QoS 1 PUBLISH
    its packet id is read first and handed to on_skip(pid), so the client
    still acknowledges it (unacknowledged, they fill the broker's in-flight
    window and nothing QoS 1 gets through any more). A malformed length
    makes feed return False (the link must be dropped)."""

    def __init__(self, size=512):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.n = 0  # bytes held
        self.skip = 0  # bytes of an oversized packet still to discard
        self.dropped = 0
        self.malformed = 0
        self.on_skip = None  # on_skip(pid): an oversized QoS 1 PUBLISH skipped
        self.unacked = 0  # oversized QoS 1 PUBLISHes whose id could not be read

    def reset(self):
        self.n = 0
        self.skip = 0

    def feed(self, data, handler):
        pos = 0
        end = len(data)
        size = len(self.buf)
        while pos < end:
            if self.skip:
                k = min(self.skip, end - pos)
                self.skip -= k
                pos += k
                continue
            k = min(size - self.n, end - pos)
            self.buf[self.n : self.n + k] = data[pos : pos + k]
            self.n += k
            pos += k
            if not self._split(handler):
                return False
        return True

    def _split(self, handler):
        buf = self.buf
        off = 0
        while self.n - off >= 2:
            rl, p = dec_rl(buf, off + 1, self.n)
            if rl == -2:
                self.malformed += 1
                self.n = 0
                return False
            if rl == -1:
                break
            total = p - off + rl
            if total > len(buf):
                first = buf[off]
                pid = -1
                if first & 0xF0 == PUBLISH and first & 0x06:
                    # the packet id follows the topic: wait until it is held
                    # (it always fits unless the topic alone outgrows the buffer)
                    need = p + 2
                    if self.n >= need:
                        need += ((buf[p] << 8) | buf[p + 1]) + 2
                    if need - off <= len(buf):
                        if self.n < need:
                            break
                        pid = (buf[need - 2] << 8) | buf[need - 1]
                    else:
                        self.unacked += 1
                # every byte held from off on belongs to this packet
                self.dropped += 1
                self.skip = total - (self.n - off)
                self.n = 0
                if pid >= 0 and self.on_skip is not None:
                    self.on_skip(pid)
                return True
            if self.n - off < total:
                break
            handler(buf[off], self.mv[p : p + rl])
            off += total
        if off:
            rest = self.n - off
            if rest:
                buf[0:rest] = bytes(self.mv[off : self.n])
            self.n = rest
        return True




def _enc_fixed(buf, first):
    # PINGREQ, DISCONNECT: a first byte and a zero remaining length
    buf[0] = first
    buf[1] = 0
    return 2
