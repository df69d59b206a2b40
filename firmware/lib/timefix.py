# Time stamps made before the clock was set (issue 17.1).
#
# After power-on a board's RTC counts from 2000-01-01 until NTP or the modem
# sets it. The gateway keeps collecting meanwhile: its records go to flash
# stamped on that unset clock, i.e. boot time plus uptime, far before
# CLOCK_VALID. When the clock is set, the jump (delta) is known exactly, and
# every record of this boot stamped before CLOCK_VALID is that delta away
# from its true time: the uplink holds such records until then and converts
# them as it publishes them (fix_record); the jump itself goes into the log
# (a REC_CLOCK record: {"delta", "from_seq"}) for readers of the raw flash.
# A record of an earlier boot that never learnt the time stays unconvertible:
# readers show its time as unknown, never as a date in 2000.
import json
import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


CLOCK_VALID = const(1704067200)  # 2024-01-01: a stamp before it was made by an unset clock
UNSET_EPOCH = const(946684800)  # 2000-01-01: where an unset ESP32 RTC starts

REC_EVENT = const(2)  # gateway.REC_EVENT: JSON with "ts"
REC_CLOCK = const(3)  # JSON {"delta", "from_seq", "ts"}: the clock was set
T_KEY = const(16)  # records.T_KEY: u32 t first; delta blocks carry no absolute time


def valid(t):
    return t is not None and t >= CLOCK_VALID


def record_time(rtype, payload):
    """The absolute time a record carries, or None (no time in it)."""
    try:
        if rtype == T_KEY and len(payload) >= 4:
            return struct.unpack_from("<I", payload, 0)[0]
        if (rtype == REC_EVENT or rtype == REC_CLOCK) and payload[:1] == b"{":
            t = json.loads(payload).get("ts")
            return t if isinstance(t, (int, float)) else None
    except (ValueError, TypeError, AttributeError):
        pass
    return None


def fix_record(rtype, payload, delta):
    """payload with its unset-clock time moved by delta (the clock's jump);
    the same object when it holds no such time. Never raises: a record it
    cannot read goes out as it was."""
    try:
        if rtype == T_KEY and len(payload) >= 4:
            t = struct.unpack_from("<I", payload, 0)[0]
            if t >= CLOCK_VALID:
                return payload
            b = bytearray(payload)
            struct.pack_into("<I", b, 0, (t + delta) & 0xFFFFFFFF)
            return bytes(b)
        if rtype == REC_EVENT and payload[:1] == b"{":
            d = json.loads(payload)
            moved = False
            for k in ("ts", "t"):  # the record's stamp, the engine's event time
                t = d.get(k)
                if isinstance(t, (int, float)) and t < CLOCK_VALID:
                    d[k] = t + delta
                    moved = True
            return json.dumps(d).encode() if moved else payload
    except (ValueError, TypeError, AttributeError):
        pass
    return payload


def shift(t, delta):
    """A time held in RAM after the jump: moved when it was on the unset clock."""
    if t is None or t >= CLOCK_VALID:
        return t
    return t + delta
