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
# - decode(block) -> dict: host tools (vegw decode), SI floats/ints/bools.

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


import ve_enums

# kinds
_K_INT = const(0)  # decimal integer, scaled by 10**-decimals
_K_HEX = const(1)  # 0x... integer (PID, OR)
_K_ONOFF = const(2)  # ON/OFF (BMV-600: On/Off)
_K_TEXT = const(3)  # string as sent
_K_TTG = const(4)  # minutes; -1 = infinite -> None

# One entry per label, three parallel constants (no tuple per field: on a
# ~110 KB heap every import-time object counts):
#   LABELS  the label as sent (bytes, compared in place in the block buffer)
#   NAMES   the same as interned str (dict keys; update() never builds a str)
#   _KD     kind << 4 | decimals; decimals: the device's unit is 10**-decimals
#           of the SI unit (mV: 3, per-mille of 100 percent: 1, 0.01 kWh: 2)
LABELS = (
    b"V", b"V2", b"V3", b"VS", b"VM", b"DM", b"VPV", b"PPV", b"I", b"I2", b"I3", b"IL", b"LOAD",
    b"T", b"P", b"CE", b"SOC", b"TTG", b"Alarm", b"Relay", b"AR", b"OR", b"H1", b"H2", b"H3",
    b"H4", b"H5", b"H6", b"H7", b"H8", b"H9", b"H10", b"H11", b"H12", b"H13", b"H14", b"H15",
    b"H16", b"H17", b"H18", b"H19", b"H20", b"H21", b"H22", b"H23", b"ERR", b"CS", b"BMV",
    b"FW", b"FWE", b"PID", b"SER#", b"HSDS", b"MODE", b"AC_OUT_V", b"AC_OUT_I", b"AC_OUT_S",
    b"WARN", b"MPPT", b"MON", b"DC_IN_V", b"DC_IN_I", b"DC_IN_P", b"CAP_BLE", b"HC#",
)
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

# Lookup key per entry: first byte * 64 + length. Equal keys are resolved by
# comparing the label bytes (H1/H2/..., V2/V3/VS/VM).
_KEYS = tuple(lab[0] * 64 + len(lab) for lab in LABELS)

# Enumerated labels -> ve_enums table, and bit-mask labels -> bit table.
ENUMS = (("CS", ve_enums.DEVICE_STATE), ("ERR", ve_enums.CHARGER_ERROR),
         ("MPPT", ve_enums.TRACKER_MODE), ("MODE", ve_enums.DEVICE_MODE),
         ("MON", ve_enums.MONITOR_MODE))
BITS = (("AR", ve_enums.ALARM_REASON_BITS), ("WARN", ve_enums.ALARM_REASON_BITS),
        ("OR", ve_enums.OFF_REASON_BITS))


def entry(block, i):
    """Index into LABELS/NAMES of field i of a Block, or -1 for an unknown label."""
    o = block._offs  # direct reads: a (start, end) tuple would allocate
    s = o[3 * i]
    e = o[3 * i + 1]
    n = e - s
    if n < 1:
        return -1
    key = block._buf[s] * 64 + n
    k = 0
    keys = _KEYS
    while True:
        try:
            k = keys.index(key, k)
        except ValueError:
            return -1
        if block._buf.find(LABELS[k], s, e) == s:
            return k
        k += 1


def _parse_int(buf, s, e):
    # Decimal integer in buf[s:e] without allocating; None if not a number
    # ("---" for "not synchronised", empty, garbage).
    neg = False
    if s < e and buf[s] == 45:  # '-'
        neg = True
        s += 1
    if s >= e:
        return None
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


def _onoff(buf, s, e):
    # ON/OFF; BMV-600 firmware <= 2.09 sends On/Off
    n = e - s
    if n == 2 and buf[s + 1] in (78, 110):  # 'N' / 'n'
        return True
    if n == 3 and buf[s + 1] in (70, 102):  # 'F' / 'f'
        return False
    return None


def raw_value(block, i, k):
    """Field i of a block as stored in `raw` (see module docstring)."""
    buf = block._buf
    o = block._offs
    s = o[3 * i + 1] + 1
    e = o[3 * i + 2]
    kind = _KD[k] >> 4
    if kind == _K_INT or kind == _K_TTG:
        return _parse_int(buf, s, e)
    if kind == _K_HEX:
        return _parse_hex(buf, s, e)
    if kind == _K_ONOFF:
        return _onoff(buf, s, e)
    return bytes(buf[s:e])


def update(block, raw):
    """Merge a verified block into `raw` (dict name -> raw value). Devices
    split their fields over several blocks (BMV main + history block, newer
    MPPT firmware A + B), so fields are merged, never cleared. Returns the
    number of fields whose value changed."""
    changed = 0
    buf = block._buf
    i = 0
    n = block.count
    while i < n:
        k = entry(block, i)
        if k < 0:
            # Unknown label: kept as text under its own name
            name = block.label(i)
            val = block.value(i)
        else:
            name = NAMES[k]
            if _KD[k] >> 4 == _K_TEXT:
                old = raw.get(name)
                s = block._offs[3 * i + 1] + 1
                e = block._offs[3 * i + 2]
                if old is not None and len(old) == e - s and buf.find(old, s, e) == s:
                    i += 1
                    continue
            val = raw_value(block, i, k)
        if raw.get(name, _MISSING) != val:
            raw[name] = val
            changed += 1
        i += 1
    return changed


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
    if d == 0:
        return raw
    return round(raw / (10 ** d), d)


def decode(block):
    """A verified Block -> dict label -> SI value (allocates; host side)."""
    raw = {}
    update(block, raw)
    return {name: to_si(name, v) for name, v in raw.items()}


def decimals(name):
    k = _index(name)
    return _KD[k] & 15 if k >= 0 else 0


def enum_table(name):
    for n, t in ENUMS:
        if n == name:
            return t
    return None


def bits_table(name):
    for n, t in BITS:
        if n == name:
            return t
    return None


def text(name, value):
    """Human text for an enum or bit-mask field value (None if not an enum)."""
    t = enum_table(name)
    if t is not None:
        return ve_enums.name(t, value)
    t = bits_table(name)
    if t is not None:
        names = ve_enums.bit_names(t, value)
        return None if names is None else ",".join(names)
    return None


# -- PID -> product name ------------------------------------------------------
# VE.Direct Protocol 3.29 pp.8-10, plus later ids from BlueSolar HEX rev 10 and
# the 3.33 list as carried by peer decoders (../shared/reference/vedirect.md
# s.4.8). Names of regular families (MPPT ranges, Phoenix inverters) are
# built from short pattern tables instead of one string per id.

# one string ",pid=name,...," (decimal pid): a single object, see ve_enums
_PID_NAMES = (
    ","
    "515=BMV-700,516=BMV-702,517=BMV-700H,768=BlueSolar MPPT 70/15,41856=BMV-710 Smart,"
    "41857=BMV-712 Smart,41858=BMV-710H Smart,41859=BMV-712 Smart Rev2,"
    "41865=SmartShunt 500A/50mV,41866=SmartShunt 1000A/50mV,41867=SmartShunt 2000A/50mV,"
    "41868=SmartShunt IP67 500A/50mV,41869=SmartShunt IP67 1000A/50mV,"
    "41870=SmartShunt IP67 2000A/50mV,49208=SmartShunt 300A/50mV,49204=BMV-800 Smart,"
    "41968=Orion XS 12V/12V-50A,41232=SmartSolar MPPT RS 450/100,"
    "41233=SmartSolar MPPT RS 450/200,41086=SmartSolar MPPT 100/30 12V,"
    "41087=All-In-1 SmartSolar MPPT 75/15 12V,41792=Phoenix Smart IP43 Charger 12/50 (1+1),"
    "41793=Phoenix Smart IP43 Charger 12/50 (3),41794=Phoenix Smart IP43 Charger 24/25 (1+1),"
    "41795=Phoenix Smart IP43 Charger 24/25 (3),41796=Phoenix Smart IP43 Charger 12/30 (1+1),"
    "41797=Phoenix Smart IP43 Charger 12/30 (3),41798=Phoenix Smart IP43 Charger 24/16 (1+1),"
    "41799=Phoenix Smart IP43 Charger 24/16 (3),41985=Inverter RS Solar 48V/6000VA,"
    "41986=Inverter RS 48V/6000VA,42049=Multi RS Solar 48V/6000VA,"
    "42050=Multi RS Solar 48V/6000VA,"
)

# MPPT families: (first pid, brand, ratings separated by ',')
_MPPT_RUNS = (
    (0xA040, "BlueSolar", "75/50,150/35,75/15,100/15,100/30,100/50,150/70,150/100,75/50 rev2,"
     "100/50 rev2,100/30 rev2,150/35 rev2,75/10,150/45,150/60,150/85"),
    (0xA050, "SmartSolar", "250/100,150/100,150/85,75/15,75/10,100/15,100/30,100/50,150/35,"
     "150/100 rev2,150/85 rev2,250/70,250/85,250/60,250/45,100/20,100/20 48V,150/45,150/60,"
     "150/70,250/85 rev2,250/100 rev2"),
    (0xA066, "BlueSolar", "100/20,100/20 48V"),
    (0xA068, "SmartSolar", "250/60 rev2,250/70 rev2,150/45 rev2,150/60 rev2,150/70 rev2,"
     "150/85 rev3,150/100 rev3"),
    (0xA06F, "BlueSolar", "150/45 rev2,150/60 rev2,150/70 rev2"),
    (0xA072, "BlueSolar", "150/45 rev3"),
    (0xA073, "SmartSolar", "150/45 rev3,75/10 rev2,75/15 rev2"),
    (0xA076, "BlueSolar", "100/30 rev3,100/50 rev3,150/35 rev3,75/10 rev2,75/15 rev2,100/15 rev2,"
     "75/10 rev3,75/15 rev3"),
    (0xA102, "SmartSolar", "VE.Can 150/70,VE.Can 150/45,VE.Can 150/60,VE.Can 150/85,"
     "VE.Can 150/100,VE.Can 250/45,VE.Can 250/60,VE.Can 250/70,VE.Can 250/85,VE.Can 250/100,"
     "VE.Can 150/70 rev2,VE.Can 150/85 rev2,VE.Can 150/100 rev2"),
    (0xA10F, "BlueSolar", "VE.Can 150/100"),
    (0xA112, "BlueSolar", "VE.Can 250/70,VE.Can 250/100"),
    (0xA114, "SmartSolar", "VE.Can 250/70 rev2,VE.Can 250/100 rev2,VE.Can 250/85 rev2"),
    (0xA117, "BlueSolar", "VE.Can 150/100 rev2"),
)

# Phoenix inverters 0xA2<r><v>: r = rating row, v = 1/2/4 (12/24/48 V)
# for 230 V and 9/A/C for 120 V.
_INV_RATINGS = ",0=250VA,1=375VA,2=500VA,3=250VA,4=375VA,5=500VA,6=800VA,7=1200VA,8=1600VA,9=2000VA,10=3000VA,11=5000VA,14=800VA,15=1200VA,"


def product_name(pid):
    """Product name for a PID (int), or None if unknown. Never raises."""
    if pid is None:
        return None
    n = ve_enums.name(_PID_NAMES, pid)
    if n != ve_enums.UNKNOWN:
        return n
    for first, brand, ratings in _MPPT_RUNS:
        parts = ratings.split(",")
        if first <= pid < first + len(parts):
            return brand + " MPPT " + parts[pid - first]
    if 0xA200 <= pid <= 0xA2FF:
        row = (pid >> 4) & 0xF
        v = pid & 0xF
        volts = {1: "12V", 2: "24V", 4: "48V", 9: "12V", 10: "24V", 12: "48V"}.get(v)
        rating = ve_enums.name(_INV_RATINGS, row)
        if volts and rating != ve_enums.UNKNOWN:
            ac = "120V" if v & 8 else "230V"
            smart = "Smart " if row >= 0xB else ""
            return "Phoenix Inverter %s%s %s %s" % (smart, volts, rating, ac)
    if 0xA300 <= pid <= 0xA30F or 0xA338 <= pid <= 0xA33C:
        return "Blue Smart IP65 Charger"
    if 0xA310 <= pid <= 0xA31D:
        return "Blue Smart IP67 Charger"
    if 0xA320 <= pid <= 0xA337:
        return "Blue Smart IP22 Charger"
    if 0xA350 <= pid <= 0xA357:
        return "Phoenix Smart IP43 Charger 120-240V"
    if 0xA3C0 <= pid <= 0xA3D3:
        return "Orion Smart DC-DC"
    if 0xA0E0 <= pid <= 0xA0F2:
        return "Smart Lithium battery"
    return None
