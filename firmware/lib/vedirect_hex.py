# VE.Direct HEX protocol frame structure (BlueSolar HEX protocol rev 10, s.1).
#
#   ':' <command nibble> <payload as uppercase hex pairs> <check pair> '\n'
#   nibble + sum(payload bytes) + check == 0x55 (mod 256)
#
# Get/Set/Async replies (responses 7, 8, A) carry: register id (un16, little
# endian), flags (un8), value (little endian, width given by the register).
# Example async frame ':A0102000543\n': register 0x0201 (device state),
# flags 0, value 0x05 (float).
#
# Reading and writing registers on a device comes later; this module only
# decodes and encodes frames. Functions take the frame bytes (':' .. '\n').

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


CMD_ENTER_BOOT = const(0x0)
CMD_PING = const(0x1)
CMD_APP_VERSION = const(0x3)
CMD_PRODUCT_ID = const(0x4)
CMD_RESTART = const(0x6)
CMD_GET = const(0x7)
CMD_SET = const(0x8)
CMD_ASYNC = const(0xA)

RSP_DONE = const(0x1)
RSP_UNKNOWN = const(0x3)
RSP_ERROR = const(0x4)
RSP_PING = const(0x5)
RSP_GET = const(0x7)
RSP_SET = const(0x8)
RSP_ASYNC = const(0xA)

FLAG_UNKNOWN_ID = const(0x01)
FLAG_NOT_SUPPORTED = const(0x02)
FLAG_PARAMETER_ERROR = const(0x04)

_MAX_PAYLOAD = const(78)  # bytes; a 160-char frame holds at most 78 payload bytes


def _nib(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    return -1


class Frame:
    """A decoded HEX frame. `payload` excludes the check byte.
    For register frames (Get/Set/Async) `register`, `flags` and `value`
    (bytes, little endian) are set; otherwise register is None."""

    def __init__(self, command, payload):
        self.command = command
        self.payload = payload
        self.register = None
        self.flags = None
        self.value = b""
        if command in (RSP_GET, RSP_SET, RSP_ASYNC) and len(payload) >= 3:
            self.register = payload[0] | (payload[1] << 8)
            self.flags = payload[2]
            self.value = payload[3:]

    def value_uint(self):
        """Value as an unsigned little-endian integer (None if empty)."""
        if not self.value:
            return None
        v = 0
        for i in range(len(self.value) - 1, -1, -1):
            v = (v << 8) | self.value[i]
        return v

    def value_int(self):
        """Value as a signed little-endian integer of its own width."""
        v = self.value_uint()
        if v is None:
            return None
        bits = 8 * len(self.value)
        if v >= 1 << (bits - 1):
            v -= 1 << bits
        return v

    def ok(self):
        return self.flags == 0 if self.register is not None else self.command not in (RSP_UNKNOWN, RSP_ERROR)


def decode(frame):
    """Frame bytes (':' .. '\\n', or without the '\\n') -> Frame, or None if
    the structure or the check byte is wrong. Never raises."""
    try:
        n = len(frame)
        if n and frame[n - 1] == 10:
            n -= 1
        if n < 4 or frame[0] != 58 or (n - 2) & 1:
            return None
        cmd = _nib(frame[1])
        if cmd < 0:
            return None
        count = (n - 2) // 2
        if count - 1 > _MAX_PAYLOAD:
            return None
        data = bytearray(count)
        total = cmd
        for k in range(count):
            hi = _nib(frame[2 + 2 * k])
            lo = _nib(frame[3 + 2 * k])
            if hi < 0 or lo < 0:
                return None
            b = (hi << 4) | lo
            data[k] = b
            total += b
        if total & 0xFF != 0x55:
            return None
        return Frame(cmd, bytes(data[: count - 1]))
    except Exception:
        return None


def encode(command, payload=b""):
    """Frame bytes for a command nibble and payload, check byte and '\\n' added."""
    check = (0x55 - command - sum(payload)) & 0xFF
    out = ":%X" % command
    for b in payload:
        out += "%02X" % b
    out += "%02X\n" % check
    return out.encode()


def get_register(register, flags=0):
    return encode(CMD_GET, bytes((register & 0xFF, register >> 8, flags)))


def set_register(register, value_bytes, flags=0):
    return encode(CMD_SET, bytes((register & 0xFF, register >> 8, flags)) + bytes(value_bytes))


def register_frame(command, register, value_bytes, flags=0):
    """A Get/Set reply or Async frame as a device would send it."""
    return encode(command, bytes((register & 0xFF, register >> 8, flags)) + bytes(value_bytes))
