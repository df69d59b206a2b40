# VE.Direct text labels -> values in SI units (VE.Direct Protocol 3.29,
# Table I and p.5-11; MON, DC_IN_* from 3.33 via peer decoders).
#
# Two paths share one table:
# - update(block, raw): the gateway's hot path. Stores each field of a
#   verified block into the dict `raw` as the device sent it, scaled integer
#   (mV, mA, per-mille...), bool, None ("---"), or bytes (text). Keys are the
#   interned label strings of the table, values small ints: after the first
#   block a device's dict stops growing and an update allocates nothing but
#   changed text. Floats only appear at the edge (to_si), which also keeps
#   ESP32 single-precision rounding out of the stored data.
# - decode(block) -> dict: host tools (vegw decode), SI floats/ints/bools
#   (in vedirect_text.py with product names and enum texts: not resident).

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


import vedirect_kernel
from array import array


# kinds
_K_INT = const(0)  # decimal integer, scaled by 10**-decimals
_K_HEX = const(1)  # 0x... integer (PID, OR)
_K_ONOFF = const(2)  # ON/OFF (BMV-600: On/Off)
_K_TEXT = const(3)  # string as sent
_K_TTG = const(4)  # minutes; -1 = infinite -> None
_ST_WIDE = const(4)  # = vedirect_kernel._ST_WIDE: the kernel left the value to Python

# One entry per label, parallel constants (no tuple or bytes object per
# field: on a ~110 KB heap every import-time object counts):
#   NAMES   the label as interned str (dict keys; update() never builds a str)
#   _KD     kind << 4 | decimals; decimals: the device's unit is 10**-decimals
#           of the SI unit (mV: 3, per-mille of 100 percent: 1, 0.01 kWh: 2)
#   TABLE   the labels' bytes, lengths and a hash, for the parser's kernel
#           (built at import, below): labels are compared in place in the
#           block buffer
NAMES = (
    "V", "V2", "V3", "VS", "VM", "DM", "VPV", "PPV", "I", "I2", "I3", "IL", "LOAD", "T", "P",
    "CE", "SOC", "TTG", "Alarm", "Relay", "AR", "OR", "H1", "H2", "H3", "H4", "H5", "H6", "H7",
    "H8", "H9", "H10", "H11", "H12", "H13", "H14", "H15", "H16", "H17", "H18", "H19", "H20",
    "H21", "H22", "H23", "ERR", "CS", "BMV", "FW", "FWE", "PID", "SER#", "HSDS", "MODE",
    "AC_OUT_V", "AC_OUT_I", "AC_OUT_S", "WARN", "MPPT", "MON", "DC_IN_V", "DC_IN_I", "DC_IN_P",
    "CAP_BLE", "HC#",
)
_KD = (
    b"\x03\x03\x03\x03\x03\x01\x03\x00\x03\x03\x03\x03\x20\x00\x00\x03"
    b"\x01\x40\x20\x20\x00\x10\x03\x03\x03\x00\x00\x03\x03\x03\x00\x00"
    b"\x00\x00\x00\x00\x03\x03\x02\x02\x02\x02\x00\x02\x00\x00\x00\x30"
    b"\x30\x30\x10\x30\x00\x00\x02\x01\x00\x00\x00\x00\x02\x01\x00\x00"
    b"\x30"
)

_MISSING = object()

# The label table the parser's kernel reads (vedirect_kernel.py: layout
# there): a hash of each label to its index; per label its offset, length
# and kind byte; then the labels' bytes back to
# back. One bytearray, built at import (temporaries reuse a few names: each
# module-level name costs an interned string in RAM).
_HT_SLOTS = const(256)  # = vedirect_kernel._HT_SLOTS
_o = "".join(NAMES).encode()
TABLE = bytearray(_HT_SLOTS + 3 * len(NAMES) + len(_o))
TABLE[_HT_SLOTS + 3 * len(NAMES) :] = _o
_o = _HT_SLOTS + 3 * len(NAMES)  # where the next label's bytes are
for _k in range(len(NAMES)):
    TABLE[_HT_SLOTS + _k] = _o - _HT_SLOTS - 3 * len(NAMES)  # < 256: the labels total ~190 bytes
    TABLE[_HT_SLOTS + len(NAMES) + _k] = len(NAMES[_k])
    TABLE[_HT_SLOTS + 2 * len(NAMES) + _k] = _KD[_k]
    # the kernel's hash (vedirect_kernel.lookup): h = h * 31 + byte, 16 bits
    _h = 0
    for _c in TABLE[_o : _o + len(NAMES[_k])]:
        _h = (_h * 31 + _c) & 0xFFFF
    _o += len(NAMES[_k])
    _h = (_h ^ (_h >> 8)) & 0xFF
    while TABLE[_h]:
        _h = (_h + 1) & 0xFF  # linear probing, as the kernel looks
    TABLE[_h] = _k + 1
del _o, _k, _h, _c


_MAX_DIGITS = const(10)  # VE.Direct numbers are 32-bit: at most 10 digits
_MAX_KEYS = const(48)  # fields kept per device: real devices send <= 30 labels
# Counters over all devices (the gateway reports them):
# [0] unknown labels not stored because the device's dict is full
stats = [0]


def _parse_int(buf, s, e):
    # Decimal integer in buf[s:e] without allocating; None if not a number
    # ("---" for "not synchronised", empty, garbage).
    neg = False
    if s < e and buf[s] == 45:  # '-'
        neg = True
        s += 1
    if s >= e or e - s > _MAX_DIGITS:
        return None  # also bounds the int: no 300-digit numbers downstream
    v = 0
    while s < e:
        c = buf[s] - 48
        if c < 0 or c > 9:
            return None
        v = v * 10 + c
        s += 1
    return -v if neg else v


def _parse_hex(buf, s, e):
    if e - s < 3 or buf[s] != 48 or buf[s + 1] not in (120, 88):  # '0x'
        return _parse_int(buf, s, e)
    v = 0
    s += 2
    if e - s > 8:
        return None  # 32-bit at most
    while s < e:
        c = buf[s]
        if 48 <= c <= 57:
            c -= 48
        elif 65 <= c <= 70:
            c -= 55
        elif 97 <= c <= 102:
            c -= 87
        else:
            return None
        v = (v << 4) | c
        s += 1
    return v


def raw_value(block, i, k):
    """Field i of a block as stored in `raw`, for what the kernel leaves to
    Python (vedirect_kernel.ST_WIDE): text, and numbers wider than its word."""
    buf = block._buf
    o = block._offs
    s = o[3 * i + 1] + 1
    e = o[3 * i + 2]
    kind = _KD[k] >> 4
    if kind == _K_INT or kind == _K_TTG:
        return _parse_int(buf, s, e)
    if kind == _K_HEX:
        return _parse_hex(buf, s, e)
    return bytes(buf[s:e])


def update(block, raw, counts=None):
    """Merge a verified block into `raw` (dict name -> raw value). Devices
    split their fields over several blocks (BMV main + history block, newer
    MPPT firmware A + B), so fields are merged, never cleared. Returns the
    number of fields whose value changed. The parser's kernel has parsed
    numbers and ON/OFF (block._st, block._vals); vedirect_kernel.store()
    stores them, skipping fields equal to what the block's parser last
    stored in this same dict (block._cache, see cache(): valid while `raw`
    is written by update() only; any other dict, or a change in its size,
    starts it over). Text that changed is copied here. Unknown labels are
    kept as text while the dict holds fewer than _MAX_KEYS fields; the
    others are skipped (the rest of the block still counts) and counted in
    stats[0] and, if given, in counts["labels_dropped"]."""
    try:
        r = vedirect_kernel.store(block, raw, _CTX)
    except (KeyError, TypeError):
        # a text this parser stored was removed or replaced by another hand
        # while the dict kept its size: the cache starts over (a fresh cache
        # leaves text to Python and asks the dict for numbers: no raise).
        # The dict comes out right; numbers stored before the raise are not
        # counted as changed in this one block.
        forget(block._cache)
        r = vedirect_kernel.store(block, raw, _CTX)
    m = r & 63
    if not m:
        return r >> 6
    changed = r >> 6
    c = block._cache
    todo = c[4]
    j = 0
    while j < m:
        i = todo[j]
        j += 1
        k = block._ent[i]
        if k == 255:
            # Unknown label: kept as text under its own name, bounded
            name = block.label(i)
            if name not in raw and len(raw) >= _MAX_KEYS:
                stats[0] += 1
                if counts is not None:
                    counts["labels_dropped"] = counts.get("labels_dropped", 0) + 1
                continue
            val = block.value(i)
        else:  # text that changed or is new, or a number too wide for the kernel's word
            name = NAMES[k]
            val = raw_value(block, i, k)
            if _KD[k] >> 4 == _K_TEXT:
                c[2][k] = _ST_WIDE  # the dict holds this parser's bytes: store() compares them
        if raw.get(name, _MISSING) != val:
            raw[name] = val
            changed += 1
    c[1] = len(raw)
    return changed


# what vedirect_kernel.store() reads: the label table, the names, a value
# by status (vedirect_kernel._ST_*: [0] unused, a number; "---"; ON; OFF),
# the sentinel for a missing key, the number of labels
_CTX = (TABLE, NAMES, (None, None, True, False), _MISSING, len(NAMES))


def cache(todo):
    """What a parser last stored per label in one device's dict (update()),
    for the kernel to skip what did not change: [dict, its size, status per
    label (255: nothing), number per label, field indices left to
    update()]. A list, not a class: fewer names in RAM."""
    c = [None, 0, bytearray(len(NAMES)), array("i", bytes(4 * len(NAMES))), todo]
    forget(c)
    return c


def forget(c):
    st = c[2]
    for k in range(len(st)):
        st[k] = 255


def _index(name):
    try:
        return NAMES.index(name)
    except ValueError:
        return -1


def to_si(name, raw):
    """Stored raw value -> SI value for JSON (float, int, bool, str or None)."""
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            return bytes(raw).decode()
        except Exception:
            return None
    k = _index(name)
    if k < 0:
        return raw
    kind = _KD[k] >> 4
    if kind == _K_TTG:
        return None if raw == -1 else raw
    d = _KD[k] & 15
    if not isinstance(raw, int) or raw > 9999999999 or raw < -9999999999:
        return None  # not a VE.Direct number (they are 32-bit): no OverflowError
    if d == 0:
        return raw
    return round(raw / (10 ** d), d)


def decimals(name):
    k = _index(name)
    return _KD[k] & 15 if k >= 0 else 0
