# Victron BLE "Instant Readout": envelope, AES-128-CTR built from ECB, record
# decoding, per-device de-duplication and wrong-key reporting.
# Facts: ../shared/reference/ble.md (Victron "extra manufacturer data" PDF,
# Victron's dbus-ble-sensors, real captures). Shared by MicroPython and CPython.
#
# Manufacturer data (AD type 0xFF, company id 0x02E1 sent as E1 02; the id is
# optional in our input):
#
#   byte  0     1      2..3       4        5..6         7          8..23
#        +----+------+----------+--------+------------+----------+----------------+
#        |0x10|  ??  | model id | record | data ctr   | key[0]   | AES-CTR cipher |
#        |    |      |   (LE)   |  type  | (nonce,LE) | (check)  | text, 1..16 B  |
#        +----+------+----------+--------+------------+----------+----------------+
#   Counter block = ctr_lo, ctr_hi, 14 x 0x00; keystream = AES_ECB(key, block);
#   plain[i] = cipher[i] ^ keystream[i]. Record type 0xFF is unencrypted and
#   byte 7 is a second type byte (0x01 = SolarSense).
#
# Payload bit fields: the plaintext read as one little-endian integer, a field
# at bit `off`, `w` bits wide. "Not available" is judged on the raw field
# before sign extension and scaling, and comes out as None (JSON null).
#
# Field names (VE.Direct labels where one exists, see docs/CONTRACTS.md):
#   test (0x00)              uptime T
#   solar_charger (0x01)     CS ERR V I H20 PPV IL
#   battery_monitor (0x02)   TTG V AR I CE SOC + VS | VM | T (by aux input)
#   inverter (0x03)          CS AR V AC_OUT_S AC_OUT_V AC_OUT_I
#   dcdc_converter (0x04)    CS ERR DC_IN_V V OR
#   smart_lithium (0x05)     bms_flags error_flags cell_1..cell_8 V balancer_status T
#   inverter_rs (0x06)       CS ERR V I PPV H20 ac_out_power
#   gx_device (0x07)         V PPV SOC P dc_power
#   ac_charger (0x08)        CS ERR V I V2 I2 V3 I3 T ac_current
#   smart_battery_protect (0x09)  CS output_state ERR AR WARN DC_IN_V V OR
#   lynx_smart_bms (0x0A)    bms_error TTG V I io_status warnings_alarms SOC CE T
#   multi_rs (0x0B)          CS ERR I V ac_in_active ac_in_power ac_out_power PPV H20
#   vebus (0x0C)             CS vebus_error I V ac_in_active ac_in_power ac_out_power
#                            alarm_state T SOC
#   dc_energy_meter (0x0D)   MON V AR I + VS | T (by aux input)
#   orion_xs (0x0F)          CS ERR V I DC_IN_V DC_IN_I OR
#   solarsense (0xFF/0x01)   error_code ERR installation_power H20 irradiance
#                            cell_temperature sensor_battery_voltage tx_power
#                            time_since_sun
# Units: V, A, W, VA, Ah (CE negative = consumed), %, kWh, degC, minutes
# (TTG, time_since_sun), seconds (uptime), W/m2, dBm. Enums and bit masks are
# integer codes; ble_tables.code_name() gives their names (ve_enums tables, plus the few
# BLE-only tables in ble_tables.py).
#
# Layouts: the readable text table is in ble_tables.py; here it is packed
# into 5 bytes per field as constants (_REC_TEXT, _REC_LAYOUT); record_spec() expands a
# record back into tuples. RAM: what the gateway never calls (record_spec,
# record_types, code_name, the enum tables, one-shot decode) lives in
# ble_tables.py, and the key/MAC text checks in ble_keys.py: callers import
# those modules themselves; the BLE-only field names are in field_names' table.
# Allocation: Decoder.decode() works in preallocated buffers and keeps the raw
# integers in a preallocated list; it allocates nothing on MicroPython for
# fields up to 30 bits (wider fields become long ints on a 32-bit ESP32).
# values() builds the SI dict (floats allocate), run once per new reading.
#
# Length: one advert's path (envelope, AES-CTR from ECB, record layouts, the
# per-device tracker that de-duplicates and reports wrong keys); the
# readable tables are in ble_tables.py.
import aes_ecb
import ble_keys

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_COMPANY_LO = const(0xE1)
_COMPANY_HI = const(0x02)
_PRODUCT_ADV = const(0x10)  # manufacturer record type "product advertisement"
_HDR = const(8)  # bytes before the cipher text (company id not counted)
_MAX_PAYLOAD = const(16)  # one AES block: longer adverts are dropped
_MAX_FIELDS = const(14)  # largest record (SmartLithium) has 13 fields
# Data counter (16 bits, steps when the data changes, at most about once a
# second): a new advert must be ahead of the last accepted one by at most
# _AHEAD (4.5 h of steps at one a second); anything else (behind: a replay)
# is refused, unless _RESYNC adverts in a row climb among themselves, which
# is a device that rebooted and started its counter again.
_AHEAD = const(16384)
_RESYNC = const(5)
# Values outside these limits mean the key is wrong even though its first
# byte matched (Instant Readout has no MAC: a wrong key decodes to garbage).
# (field, low, high); a field not listed is not checked.
_LIMITS = (
    ("V", -5, 80), ("VS", -5, 80), ("VM", -5, 80), ("SOC", 0, 100), ("T", -60, 120),
    ("CS", 0, 252), ("PPV", 0, 30000), ("AC_OUT_V", 0, 300), ("DC_IN_V", -5, 100),
    ("cell_1", 0, 6), ("cell_2", 0, 6), ("cell_3", 0, 6), ("cell_4", 0, 6),
    ("cell_5", 0, 6), ("cell_6", 0, 6), ("cell_7", 0, 6), ("cell_8", 0, 6),
)
_CS_OK = b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\xf4\xf5\xf6\xf7\xfc"  # VE.Direct CS codes
_IMPLAUSIBLE_NOTICE = const(3)  # implausible decodes in a row before the wrong-key notice
_MAX_DEVICES = const(16)  # configured BLE devices tracked; more are refused

# statuses
OK = "ok"
WRONG_KEY = "wrong_key"
MALFORMED = "malformed"
UNKNOWN_RECORD = "unknown_record"
NOT_READOUT = "not_readout"
REPEAT = "repeat"  # Tracker only: same data counter
REPLAY = "replay"  # Tracker only: counter behind the last one (or too far ahead)
IMPLAUSIBLE = "implausible"  # Tracker only: values out of range (a wrong key)
UNKNOWN_DEVICE = "unknown_device"  # Tracker only: MAC not configured
STATUSES = (OK, WRONG_KEY, MALFORMED, UNKNOWN_RECORD, NOT_READOUT, REPEAT, REPLAY, IMPLAUSIBLE, UNKNOWN_DEVICE)

# field flags
_S = const(1)  # signed (two's complement of the width)
_NA2 = const(2)  # the max positive value is "not available" too (22-bit current)
_SEL = const(4)  # aux input selector: used by the aux value, not published
_AUX = const(8)  # aux value: name and scale chosen by the selector
_TIER = const(16)  # SolarSense "time since last sun" tiers
_TX = const(32)  # SolarSense tx power: 0 -> 0 dBm, 1 -> 6 dBm
_NONE = const(-1)  # no "not available" raw value
# public copies for the encoder (underscore consts are invisible on MicroPython)
F_SIGNED = _S
F_NA2 = _NA2
F_SEL = _SEL
F_AUX = _AUX
F_TIER = _TIER
F_TX = _TX
NO_NA = _NONE


# Conversions (divisor, addend) a packed field refers to by index.
_CONVS = ((1, 0), (10, 0), (100, 0), (1000, 0), (-10, 0), (1, -40), (100, 2.6), (10, -60), (100, 1.7))
_FW = const(5)  # bytes per packed field: offset, width, flags, conversion, NA kind
# NA kind: bit 0 = all ones is NA, bit 1 = max positive (signed) is NA


RECORD_UNENCRYPTED = const(0xFF)
SUBTYPE_SOLARSENSE = const(0x01)

# Packed layouts. _REC_TEXT: one entry per record type 0x00..0x0F, then
# SolarSense (0xFF/0x01), separated by "|": the record name and its field
# names ("" = unknown type). _REC_LAYOUT: 5 bytes per field (offset, width,
# flags, conversion index into _CONVS, NA kind), all records back to back in
# the same order. Generated from the readable table in ble_tables.py by its
# gen_records() (test_ram checks they agree). Two constants instead of a
# tuple, a names tuple and a bytes object per record (6 KB of heap on the
# unix port); a record is unpacked on first use (_packed) and cached.
_REC_TEXT = (
    "test uptime T|solar_charger CS ERR V I H20 PPV IL|battery_monitor TTG V AR aux "
    "aux_input I CE SOC|inverter CS AR V AC_OUT_S AC_OUT_V AC_OUT_I|dcdc_converter "
    "CS ERR DC_IN_V V OR|smart_lithium bms_flags error_flags cell_1 cell_2 cell_3 "
    "cell_4 cell_5 cell_6 cell_7 cell_8 V balancer_status T|inverter_rs CS ERR V I "
    "PPV H20 ac_out_power|gx_device V PPV SOC P dc_power|ac_charger CS ERR V I V2 I2 "
    "V3 I3 T ac_current|smart_battery_protect CS output_state ERR AR WARN DC_IN_V V "
    "OR|lynx_smart_bms bms_error TTG V I io_status warnings_alarms SOC CE T|multi_rs "
    "CS ERR I V ac_in_active ac_in_power ac_out_power PPV H20|vebus CS vebus_error I "
    "V ac_in_active ac_in_power ac_out_power alarm_state T SOC|dc_energy_meter MON V "
    "AR aux aux_input I||orion_xs CS ERR V I DC_IN_V DC_IN_I OR|solarsense "
    "error_code ERR installation_power H20 irradiance cell_temperature "
    "sensor_battery_voltage tx_power time_since_sun"
)
_REC_LAYOUT = (
    b"\x00\x1e\x00\x00\x01\x1e\x07\x00\x05\x01\x00\x08\x00\x00\x01\x08"
    b"\x08\x00\x00\x01\x10\x10\x01\x02\x02\x20\x10\x01\x01\x02\x30\x10"
    b"\x00\x02\x01\x40\x10\x00\x00\x01\x50\x09\x00\x01\x01\x00\x10\x00"
    b"\x00\x01\x10\x10\x01\x02\x02\x20\x10\x00\x00\x00\x30\x10\x08\x00"
    b"\x00\x40\x02\x04\x00\x00\x42\x16\x03\x03\x03\x58\x14\x00\x04\x01"
    b"\x6c\x0a\x00\x01\x01\x00\x08\x00\x00\x01\x08\x10\x00\x00\x00\x18"
    b"\x10\x01\x02\x02\x28\x10\x00\x00\x01\x38\x0f\x00\x02\x01\x47\x0b"
    b"\x00\x01\x01\x00\x08\x00\x00\x01\x08\x08\x00\x00\x01\x10\x10\x00"
    b"\x02\x01\x20\x10\x01\x02\x02\x30\x20\x00\x00\x00\x00\x20\x00\x00"
    b"\x00\x20\x10\x00\x00\x00\x30\x07\x00\x06\x01\x37\x07\x00\x06\x01"
    b"\x3e\x07\x00\x06\x01\x45\x07\x00\x06\x01\x4c\x07\x00\x06\x01\x53"
    b"\x07\x00\x06\x01\x5a\x07\x00\x06\x01\x61\x07\x00\x06\x01\x68\x0c"
    b"\x00\x02\x01\x74\x04\x00\x00\x01\x78\x07\x00\x05\x01\x00\x08\x00"
    b"\x00\x01\x08\x08\x00\x00\x01\x10\x10\x01\x02\x02\x20\x10\x01\x01"
    b"\x02\x30\x10\x00\x00\x01\x40\x10\x00\x02\x01\x50\x10\x01\x00\x02"
    b"\x00\x10\x00\x02\x01\x10\x14\x00\x00\x01\x24\x07\x00\x00\x01\x2b"
    b"\x15\x01\x00\x02\x40\x15\x01\x00\x02\x00\x08\x00\x00\x01\x08\x08"
    b"\x00\x00\x01\x10\x0d\x00\x02\x01\x1d\x0b\x00\x01\x01\x28\x0d\x00"
    b"\x02\x01\x35\x0b\x00\x01\x01\x40\x0d\x00\x02\x01\x4d\x0b\x00\x01"
    b"\x01\x58\x07\x00\x05\x01\x5f\x09\x00\x01\x01\x00\x08\x00\x00\x01"
    b"\x08\x08\x00\x00\x01\x10\x08\x00\x00\x01\x18\x10\x00\x00\x00\x28"
    b"\x10\x00\x00\x00\x38\x10\x01\x02\x02\x48\x10\x00\x02\x01\x58\x20"
    b"\x00\x00\x00\x00\x08\x00\x00\x00\x08\x10\x00\x00\x01\x18\x10\x01"
    b"\x02\x02\x28\x10\x01\x01\x02\x38\x10\x00\x00\x00\x48\x12\x00\x00"
    b"\x00\x5a\x0a\x00\x01\x01\x64\x14\x00\x04\x01\x78\x07\x00\x05\x01"
    b"\x00\x08\x00\x00\x01\x08\x08\x00\x00\x01\x10\x10\x01\x01\x02\x20"
    b"\x0e\x00\x02\x01\x2e\x02\x00\x00\x01\x30\x10\x01\x00\x02\x40\x10"
    b"\x01\x00\x02\x50\x10\x00\x00\x01\x60\x10\x00\x02\x01\x00\x08\x00"
    b"\x00\x01\x08\x08\x00\x00\x01\x10\x10\x01\x01\x02\x20\x0e\x00\x02"
    b"\x01\x2e\x02\x00\x00\x01\x30\x13\x01\x00\x02\x43\x13\x01\x00\x02"
    b"\x56\x02\x00\x00\x01\x58\x07\x00\x05\x01\x5f\x07\x00\x00\x01\x00"
    b"\x10\x01\x00\x00\x10\x10\x01\x02\x02\x20\x10\x00\x00\x00\x30\x10"
    b"\x08\x00\x00\x40\x02\x04\x00\x00\x42\x16\x03\x03\x03\x00\x08\x00"
    b"\x00\x01\x08\x08\x00\x00\x01\x10\x10\x00\x02\x01\x20\x10\x00\x01"
    b"\x01\x30\x10\x00\x02\x01\x40\x10\x00\x01\x01\x50\x20\x00\x00\x00"
    b"\x00\x20\x00\x00\x00\x20\x08\x00\x00\x01\x28\x14\x00\x00\x01\x3c"
    b"\x14\x00\x02\x01\x50\x0e\x00\x01\x01\x5e\x0b\x00\x07\x01\x6a\x08"
    b"\x00\x08\x01\x72\x01\x20\x00\x00\x73\x07\x10\x00\x01"
)
_NREC = const(17)  # 16 record types + SolarSense
_unpacked = [None] * _NREC  # (name, field names, layout bytes) | 0 = unknown

# Aux input (battery monitor, DC energy meter): selector -> (name, signed,
# divisor, addend, NA raw). 3 = none; the DC meter has no midpoint (1 invalid).
AUX_MODES = (
    ("VS", True, 100, 0, 0x7FFF),
    ("VM", False, 100, 0, 0xFFFF),
    ("T", False, 100, -273.15, 0xFFFF),  # 0.01 K; 0xFFFF = no sensor fitted
)

def _packed(rtype, subtype=0):
    """(record name, field names, packed layout) of a record type or None;
    unpacked from the constants on first use, then cached (at most _NREC)."""
    if rtype == RECORD_UNENCRYPTED:
        if subtype != SUBTYPE_SOLARSENSE:
            return None
        i = _NREC - 1
    elif 0 <= rtype < _NREC - 1:
        i = rtype
    else:
        return None
    rec = _unpacked[i]
    if rec is None:
        rec = 0
        off = 0
        k = 0
        for seg in _REC_TEXT.split("|"):
            parts = seg.split(" ") if seg else ()
            n = len(parts) - 1 if parts else 0
            if k == i:
                if n > 0:
                    rec = (parts[0], tuple(parts[1:]), _REC_LAYOUT[off:off + n * _FW])
                break
            off += n * _FW
            k += 1
        _unpacked[i] = rec
    return rec or None


def mac_text(mac):
    return ":".join("%02X" % b for b in mac)


def _start(data):
    """Index of the 0x10 byte: skips a leading company id E1 02."""
    if len(data) >= 2 and data[0] == _COMPANY_LO and data[1] == _COMPANY_HI:
        return 2
    return 0


def parse_mfr(data):
    """Envelope of Victron manufacturer data, with or without the company id:
    (model_id, record_type, counter, key_check, payload_start, payload_len),
    or None when it is not a well-formed instant-readout advert."""
    s = _start(data)
    n = len(data) - s
    if n < _HDR + 1 or n > _HDR + _MAX_PAYLOAD or data[s] != _PRODUCT_ADV:
        return None
    return (
        data[s + 2] | (data[s + 3] << 8),
        data[s + 4],
        data[s + 5] | (data[s + 6] << 8),
        data[s + 7],
        s + _HDR,
        n - _HDR,
    )


class Decoder:
    """Decrypts and decodes adverts into preallocated buffers.

    decode() returns a status; after OK the envelope is in model_id,
    record_type, subtype, counter, record (name) and the raw field values in
    raw[0:nfields] (None = not available or not received). values() turns
    them into a fresh SI dict.
    """

    def __init__(self):
        self._ctr = bytearray(16)  # AES-CTR counter block
        self._ks = bytearray(16)  # keystream
        self.plain = bytearray(_MAX_PAYLOAD)
        self.raw = [None] * _MAX_FIELDS
        self.nfields = 0
        self.names = None  # field names of the record decoded last
        self.layout = None  # its packed layout
        self.record = None
        self.model_id = 0
        self.record_type = 0
        self.subtype = 0
        self.counter = 0
        self.payload_len = 0
        self.key_check = 0

    def envelope(self, data):
        """Read the clear header; returns None if usable, else a status."""
        s = _start(data)
        n = len(data) - s
        if n < 1:
            return MALFORMED
        if data[s] != _PRODUCT_ADV:
            return NOT_READOUT
        if n < _HDR + 1 or n > _HDR + _MAX_PAYLOAD:
            return MALFORMED
        self.model_id = data[s + 2] | (data[s + 3] << 8)
        rt = data[s + 4]
        self.record_type = rt
        self.counter = data[s + 5] | (data[s + 6] << 8)
        self.key_check = data[s + 7]
        self.payload_len = n - _HDR
        self.subtype = self.key_check if rt == RECORD_UNENCRYPTED else 0
        rec = _packed(rt, self.subtype)
        if rec is None:
            return UNKNOWN_RECORD
        self.record = rec[0]
        self.names = rec[1]
        self.layout = rec[2]
        return None

    def decrypt(self, data, key, aes):
        """Key check and AES-CTR into self.plain (after envelope())."""
        s = _start(data) + _HDR
        n = self.payload_len
        plain = self.plain
        if self.record_type == RECORD_UNENCRYPTED:
            for i in range(n):
                plain[i] = data[s + i]
            return None
        if key is None or len(key) != 16 or aes is None or self.key_check != key[0]:
            return WRONG_KEY
        ctr = self._ctr
        ctr[0] = data[s - 3]
        ctr[1] = data[s - 2]
        ks = self._ks
        aes.encrypt(ctr, ks)
        for i in range(n):
            plain[i] = data[s + i] ^ ks[i]
        return None

    def fill(self):
        """Raw field values from self.plain (after decrypt())."""
        plain = self.plain
        nbits = self.payload_len << 3
        raw = self.raw
        lay = self.layout
        n = len(self.names)
        for k in range(n):
            j = k * _FW
            off = lay[j]
            w = lay[j + 1]
            end = off + w
            if end > nbits:
                raw[k] = None  # not in the received payload
                continue
            i = (end - 1) >> 3
            lo = off >> 3
            v = 0
            while i >= lo:
                v = (v << 8) | plain[i]
                i -= 1
            mask = (1 << w) - 1
            v = (v >> (off & 7)) & mask
            nak = lay[j + 4]
            if nak & 1 and v == mask:
                v = None
            elif lay[j + 2] & _S:
                half = (mask >> 1) + 1
                if nak & 2 and v == half - 1:
                    v = None
                elif v >= half:
                    v -= mask + 1
            raw[k] = v
        self.nfields = n

    def decode(self, data, key, aes=None):
        """Whole path for one advert: status string; see class docstring."""
        st = self.envelope(data)
        if st is not None:
            return st
        if aes is None and self.record_type != RECORD_UNENCRYPTED and key is not None and len(key) == 16:
            aes = aes_ecb.new(key)
        st = self.decrypt(data, key, aes)
        if st is not None:
            return st
        self.fill()
        return OK

    def values(self):
        """The last OK decode as a new dict {field: SI value or None}."""
        out = {}
        names = self.names
        lay = self.layout
        raw = self.raw
        sel = 3
        for k in range(self.nfields):
            if lay[k * _FW + 2] & _SEL:
                sel = raw[k]
        for k in range(self.nfields):
            j = k * _FW
            fl = lay[j + 2]
            v = raw[k]
            if fl & _SEL:
                continue
            if fl & _AUX:
                if sel is None or sel > 2 or (sel == 1 and self.record_type == 0x0D):
                    continue
                m = AUX_MODES[sel]
                if v is not None:
                    if v == m[4]:
                        v = None
                    elif m[1] and v >= 0x8000:
                        v -= 0x10000
                out[m[0]] = _scale(v, m[2], m[3])
                continue
            if v is not None:
                if fl & _TIER:
                    v = _tier(v)
                elif fl & _TX:
                    v = 6 * v
                else:
                    c = _CONVS[lay[j + 3]]
                    v = _scale(v, c[0], c[1])
            out[names[k]] = v
        return out


def _scale(v, div, add):
    if v is None:
        return None
    if div == 1:
        return v + add
    x = v / div
    if add:
        x = round(x + add, 2)
    if x == 0:
        x = 0.0  # never -0.0 (consumed Ah of 0)
    return x


def _tier(raw):
    # SolarSense minutes since last sun: 2-minute steps to 58, then 10-minute
    # steps to 710, then 30-minute steps.
    if raw <= 29:
        return 2 * raw
    if raw <= 95:
        return 60 + 10 * (raw - 30)
    return 720 + 30 * (raw - 96)


class _Device:
    def __init__(self, mac, key):
        self.mac = mac
        self.key = key
        self.aes = aes_ecb.new(key)
        self.last = -1  # last accepted data counter, -1 = none yet
        self.cand = -1  # last refused counter (a rebooted device's new sequence?)
        self.climb = 0  # refused counters in a row that climbed among themselves
        self.odd = 0  # implausible decodes in a row
        self.key_reported = False
        self.updates = 0
        self.repeats = 0
        self.replays = 0
        self.wrong_key = 0


class Tracker:
    """Per-MAC keys, de-duplication by data counter and wrong-key notices.

    feed(mac, data) returns a status (OK, REPEAT, WRONG_KEY, ...). After OK,
    `decoder` holds the reading: values(), decoder.record, decoder.model_id.
    `notice` is a message to report now (first wrong key of a device, once
    until the key matches again), else None. `counts` counts every status.
    """

    def __init__(self, devices=()):
        self.decoder = Decoder()
        self._devs = {}
        self.refused = 0  # configured devices beyond _MAX_DEVICES
        self.notice = None
        self._dev = None  # the device of the last OK advert
        self.counts = {}
        for s in STATUSES:
            self.counts[s] = 0
        for mac, key in devices:
            self.add(mac, key)

    def add(self, mac, key):
        """Add a device: mac as text or 6 bytes, key as text or 16 bytes.
        Returns None or the reason it was refused."""
        # text from the config: the parsers are in ble_keys.py (imported with
        # this module; loading it for the call and dropping it again would
        # free ~0.5 KB, bench/bench_ondemand.py: not worth the dance)
        if isinstance(mac, str):
            p = ble_keys.mac_problem(mac)
            if p:
                return p
            mac = ble_keys.mac_bytes(mac)
        if isinstance(key, str):
            p = ble_keys.key_problem(key)
            if p:
                return p
            key = ble_keys.key_bytes(key)
        if len(mac) != 6 or len(key) != 16:
            return "mac must be 6 bytes and key 16 bytes"
        if bytes(mac) not in self._devs and len(self._devs) >= _MAX_DEVICES:
            self.refused += 1
            return "too many BLE devices (max %d)" % _MAX_DEVICES
        self._devs[bytes(mac)] = _Device(bytes(mac), bytes(key))
        return None

    def device(self, mac):
        return self._devs.get(bytes(mac))

    def feed(self, mac, data):
        """mac: 6 bytes (a memoryview is copied); data: manufacturer data."""
        self.notice = None
        if not isinstance(mac, bytes):
            mac = bytes(mac)
        st = self._feed(mac, data)
        self.counts[st] += 1
        return st

    def _feed(self, mac, data):
        dev = self._devs.get(mac)
        if dev is None:
            return UNKNOWN_DEVICE
        d = self.decoder
        st = d.envelope(data)
        if st is not None:
            return st
        if d.record_type != RECORD_UNENCRYPTED and d.key_check != dev.key[0]:
            dev.wrong_key += 1
            if not dev.key_reported:
                dev.key_reported = True
                self.notice = "key does not match device %s (advert key byte %02x, configured key starts %02x)" % (
                    mac_text(mac), d.key_check, dev.key[0])
            return WRONG_KEY
        if dev.odd == 0:
            dev.key_reported = False  # the key matches again: re-arm the notice
        c = d.counter
        if dev.last >= 0:
            ahead = (c - dev.last) & 0xFFFF
            if ahead == 0:
                dev.repeats += 1
                return REPEAT
            if ahead > _AHEAD:
                step = (c - dev.cand) & 0xFFFF
                dev.climb = dev.climb + 1 if dev.cand >= 0 and 0 < step <= _AHEAD else 1
                dev.cand = c
                if dev.climb < _RESYNC:
                    dev.replays += 1
                    return REPLAY
        st = d.decrypt(data, dev.key, dev.aes)
        if st is not None:
            return st
        d.fill()
        dev.last = c
        dev.cand = -1
        dev.climb = 0
        dev.updates += 1
        self._dev = dev
        return OK

    def values(self):
        """The last OK advert's values as a new dict, or None when they are out
        of range (a wrong key whose first byte matched: counted as
        IMPLAUSIBLE, and after a few in a row `notice` says so). Kept out of
        feed(), which allocates nothing; the caller builds the dict anyway."""
        vals = self.decoder.values()
        dev = self._dev
        if _plausible(vals):
            if dev is not None:
                dev.odd = 0
            return vals
        self.counts[OK] -= 1
        self.counts[IMPLAUSIBLE] += 1
        if dev is not None:
            dev.updates -= 1
            dev.odd += 1
            if dev.odd >= _IMPLAUSIBLE_NOTICE and not dev.key_reported:
                dev.key_reported = True
                self.notice = ("key does not match device %s: its key byte matches but %d adverts in a row decode "
                               "to values out of range" % (mac_text(dev.mac), dev.odd))
        return None


def _plausible(vals):
    for name, lo, hi in _LIMITS:
        v = vals.get(name)
        if v is not None and (v < lo or v > hi):
            return False
    cs = vals.get("CS")
    return cs is None or (0 <= cs < 256 and _CS_OK.find(bytes((cs,))) >= 0)
