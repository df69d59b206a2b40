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
# integer codes; code_name() gives their names (ve_enums tables, plus the few
# BLE-only tables below).
#
# Layouts: one readable text table below (_TABLE), packed at import into 5
# bytes per field; record_spec() expands a record back into tuples.
# Allocation: Decoder.decode() works in preallocated buffers and keeps the raw
# integers in a preallocated list; it allocates nothing on MicroPython for
# fields up to 30 bits (wider fields become long ints on a 32-bit ESP32).
# values() builds the SI dict (floats allocate), run once per new reading.
import ve_enums
import field_names
import aes_ecb

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
_STALE_WINDOW = const(60)  # a counter up to 60 behind the last one is stale
_STALE_RESYNC = const(3)  # ...unless it happens 3 times in a row (device reboot)
_MAX_DEVICES = const(16)  # configured BLE devices tracked; more are refused

# statuses
OK = "ok"
WRONG_KEY = "wrong_key"
MALFORMED = "malformed"
UNKNOWN_RECORD = "unknown_record"
NOT_READOUT = "not_readout"
REPEAT = "repeat"  # Tracker only: same (or stale) data counter
UNKNOWN_DEVICE = "unknown_device"  # Tracker only: MAC not configured
STATUSES = (OK, WRONG_KEY, MALFORMED, UNKNOWN_RECORD, NOT_READOUT, REPEAT, UNKNOWN_DEVICE)

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

# The record layouts. One record per header line "type name", then one line
# per field: name, bit offset, width, flags, divisor, addend, NA raw (hex, or
# - for none). value = raw / divisor + addend (divisor 1 and an integer addend
# give an int). Flags: s signed (two's complement of the width), n the max
# positive value is NA too, x aux input selector (not published), a aux value
# (name and scale from the selector), t SolarSense tiered minutes, p tx power
# (raw * 6 dBm), - none. Parsed once at import into 5 bytes per field; kept
# as unpadded text because MicroPython keeps a module's constants alive for
# good, and a 7-tuple costs about 75 bytes of heap on a 64-bit port.
_TABLE = """
# type name / field: name offset width flags divisor addend NA
00 test
 uptime 0 30 - 1 0 3fffffff
 T 30 7 - 1 -40 7f
01 solar_charger
 CS 0 8 - 1 0 ff
 ERR 8 8 - 1 0 ff
 V 16 16 s 100 0 7fff
 I 32 16 s 10 0 7fff
 H20 48 16 - 100 0 ffff
 PPV 64 16 - 1 0 ffff
 IL 80 9 - 10 0 1ff
02 battery_monitor  # aux: VS | VM | T by aux_input (see AUX_MODES); I: 0x1FFFFF is NA too
 TTG 0 16 - 1 0 ffff
 V 16 16 s 100 0 7fff
 AR 32 16 - 1 0 -
 aux 48 16 a 1 0 -
 aux_input 64 2 x 1 0 -
 I 66 22 sn 1000 0 3fffff
 CE 88 20 - -10 0 fffff
 SOC 108 10 - 10 0 3ff
03 inverter
 CS 0 8 - 1 0 ff
 AR 8 16 - 1 0 -
 V 24 16 s 100 0 7fff
 AC_OUT_S 40 16 - 1 0 ffff
 AC_OUT_V 56 15 - 100 0 7fff
 AC_OUT_I 71 11 - 10 0 7ff
04 dcdc_converter
 CS 0 8 - 1 0 ff
 ERR 8 8 - 1 0 ff
 DC_IN_V 16 16 - 100 0 ffff
 V 32 16 s 100 0 7fff
 OR 48 32 - 1 0 -
05 smart_lithium
 bms_flags 0 32 - 1 0 -
 error_flags 32 16 - 1 0 -
 cell_1 48 7 - 100 2.6 7f
 cell_2 55 7 - 100 2.6 7f
 cell_3 62 7 - 100 2.6 7f
 cell_4 69 7 - 100 2.6 7f
 cell_5 76 7 - 100 2.6 7f
 cell_6 83 7 - 100 2.6 7f
 cell_7 90 7 - 100 2.6 7f
 cell_8 97 7 - 100 2.6 7f
 V 104 12 - 100 0 fff
 balancer_status 116 4 - 1 0 f
 T 120 7 - 1 -40 7f
06 inverter_rs
 CS 0 8 - 1 0 ff
 ERR 8 8 - 1 0 ff
 V 16 16 s 100 0 7fff
 I 32 16 s 10 0 7fff
 PPV 48 16 - 1 0 ffff
 H20 64 16 - 100 0 ffff
 ac_out_power 80 16 s 1 0 7fff
07 gx_device  # PDF: layout TBD
 V 0 16 - 100 0 ffff
 PPV 16 20 - 1 0 fffff
 SOC 36 7 - 1 0 7f
 P 43 21 s 1 0 fffff
 dc_power 64 21 s 1 0 fffff
08 ac_charger  # PDF: layout TBD, matches real IP22/IP65/IP43 chargers
 CS 0 8 - 1 0 ff
 ERR 8 8 - 1 0 ff
 V 16 13 - 100 0 1fff
 I 29 11 - 10 0 7ff
 V2 40 13 - 100 0 1fff
 I2 53 11 - 10 0 7ff
 V3 64 13 - 100 0 1fff
 I3 77 11 - 10 0 7ff
 T 88 7 - 1 -40 7f
 ac_current 95 9 - 10 0 1ff
09 smart_battery_protect  # consecutive fields from bit 0 (the PDF's start bits are misprinted)
 CS 0 8 - 1 0 ff
 output_state 8 8 - 1 0 ff
 ERR 16 8 - 1 0 ff
 AR 24 16 - 1 0 -
 WARN 40 16 - 1 0 -
 DC_IN_V 56 16 s 100 0 7fff
 V 72 16 - 100 0 ffff
 OR 88 32 - 1 0 -
0a lynx_smart_bms  # CE = -raw/10 (Victron's GX code)
 bms_error 0 8 - 1 0 -
 TTG 8 16 - 1 0 ffff
 V 24 16 s 100 0 7fff
 I 40 16 s 10 0 7fff
 io_status 56 16 - 1 0 -
 warnings_alarms 72 18 - 1 0 -
 SOC 90 10 - 10 0 3ff
 CE 100 20 - -10 0 fffff
 T 120 7 - 1 -40 7f
0b multi_rs
 CS 0 8 - 1 0 ff
 ERR 8 8 - 1 0 ff
 I 16 16 s 10 0 7fff
 V 32 14 - 100 0 3fff
 ac_in_active 46 2 - 1 0 3
 ac_in_power 48 16 s 1 0 7fff
 ac_out_power 64 16 s 1 0 7fff
 PPV 80 16 - 1 0 ffff
 H20 96 16 - 100 0 ffff
0c vebus
 CS 0 8 - 1 0 ff
 vebus_error 8 8 - 1 0 ff
 I 16 16 s 10 0 7fff
 V 32 14 - 100 0 3fff
 ac_in_active 46 2 - 1 0 3
 ac_in_power 48 19 s 1 0 3ffff
 ac_out_power 67 19 s 1 0 3ffff
 alarm_state 86 2 - 1 0 3
 T 88 7 - 1 -40 7f
 SOC 95 7 - 1 0 7f
0d dc_energy_meter  # aux: VS | T by aux_input (1 is not valid here)
 MON 0 16 s 1 0 -
 V 16 16 s 100 0 7fff
 AR 32 16 - 1 0 -
 aux 48 16 a 1 0 -
 aux_input 64 2 x 1 0 -
 I 66 22 sn 1000 0 3fffff
0f orion_xs  # not in Victron's document: reverse-engineered (ESPHome), signedness/NA unverified
 CS 0 8 - 1 0 ff
 ERR 8 8 - 1 0 ff
 V 16 16 - 100 0 ffff
 I 32 16 - 10 0 ffff
 DC_IN_V 48 16 - 100 0 ffff
 DC_IN_I 64 16 - 10 0 ffff
 OR 80 32 - 1 0 -
ff solarsense  # 0xFF/0x01, unencrypted
 error_code 0 32 - 1 0 -
 ERR 32 8 - 1 0 ff
 installation_power 40 20 - 1 0 fffff
 H20 60 20 - 100 0 fffff
 irradiance 80 14 - 10 0 3fff
 cell_temperature 94 11 - 10 -60 7ff
 sensor_battery_voltage 106 8 - 100 1.7 ff
 tx_power 114 1 p 1 0 -
 time_since_sun 115 7 t 1 0 7f
"""
_FLAG_CHARS = "snxatp"  # bit 0 .. bit 5, in the order of the _S.._TX flags

# Conversions (divisor, addend) a packed field refers to by index.
_CONVS = ((1, 0), (10, 0), (100, 0), (1000, 0), (-10, 0), (1, -40), (100, 2.6), (10, -60), (100, 1.7))
_FW = const(5)  # bytes per packed field: offset, width, flags, conversion, NA kind
# NA kind: bit 0 = all ones is NA, bit 1 = max positive (signed) is NA


def _parse_table(text):
    """Packed records from _TABLE: (records indexed by type 0x00..0x0F with
    None for unknown types, the 0xFF/0x01 SolarSense record)."""
    recs = [None] * 16
    solarsense = None
    cur = None
    for line in text.split("\n"):
        h = line.find("#")
        if h >= 0:
            line = line[:h]
        parts = line.split()
        if not parts:
            continue
        if line[0] != " ":
            if cur is not None:
                done = (cur[1], tuple(cur[2]), bytes(cur[3]))
                if cur[0] == RECORD_UNENCRYPTED:
                    solarsense = done
                else:
                    recs[cur[0]] = done
            cur = [int(parts[0], 16), parts[1], [], bytearray()]
            continue
        name = parts[0]
        known = field_names.info(name)
        if known is not None:
            name = known[0]  # the registry's constant string: no heap copy per field
        off = int(parts[1])
        w = int(parts[2])
        fl = 0
        if parts[3] != "-":
            for ch in parts[3]:
                fl |= 1 << _FLAG_CHARS.index(ch)
        div = int(parts[4])
        add = float(parts[5]) if "." in parts[5] else int(parts[5])
        mask = (1 << w) - 1
        if parts[6] == "-":
            nak = 0
        else:
            na = int(parts[6], 16)
            if na == mask:
                nak = 3 if fl & _NA2 else 1
            elif fl & _S and na == mask >> 1:
                nak = 2
            else:
                raise ValueError("NA of " + name)
        cur[2].append(name)
        cur[3].extend(bytes((off, w, fl, _CONVS.index((div, add)), nak)))
    done = (cur[1], tuple(cur[2]), bytes(cur[3]))
    if cur[0] == RECORD_UNENCRYPTED:
        solarsense = done
    else:
        recs[cur[0]] = done
    return tuple(recs), solarsense


RECORD_UNENCRYPTED = const(0xFF)
SUBTYPE_SOLARSENSE = const(0x01)

# Fields with no VE.Direct label, flat: name, unit, HA device_class, state_class.
_REGISTER = (
    "uptime", "s", "duration", "m",
    "ac_out_power", "W", "power", "m",
    "ac_in_power", "W", "power", "m",
    "ac_in_active", "", "", "",
    "dc_power", "W", "power", "m",
    "ac_current", "A", "current", "m",
    "bms_flags", "", "", "",
    "error_flags", "", "", "",
    "cell_1", "V", "voltage", "m",
    "cell_2", "V", "voltage", "m",
    "cell_3", "V", "voltage", "m",
    "cell_4", "V", "voltage", "m",
    "cell_5", "V", "voltage", "m",
    "cell_6", "V", "voltage", "m",
    "cell_7", "V", "voltage", "m",
    "cell_8", "V", "voltage", "m",
    "balancer_status", "", "", "",
    "output_state", "", "", "",
    "bms_error", "", "", "",
    "io_status", "", "", "",
    "warnings_alarms", "", "", "",
    "vebus_error", "", "", "",
    "alarm_state", "", "", "",
    "error_code", "", "", "",
    "installation_power", "W", "power", "m",
    "irradiance", "W/m²", "irradiance", "m",
    "cell_temperature", "°C", "temperature", "m",
    "sensor_battery_voltage", "V", "voltage", "m",
    "tx_power", "dBm", "signal_strength", "m",
    "time_since_sun", "min", "duration", "m",
)
for _i in range(0, len(_REGISTER), 4):
    field_names.register(_REGISTER[_i], _REGISTER[_i + 1], _REGISTER[_i + 2], _REGISTER[_i + 3])

_RECORDS, _SOLARSENSE_REC = _parse_table(_TABLE)

# Aux input (battery monitor, DC energy meter): selector -> (name, signed,
# divisor, addend, NA raw). 3 = none; the DC meter has no midpoint (1 invalid).
AUX_MODES = (
    ("VS", True, 100, 0, 0x7FFF),
    ("VM", False, 100, 0, 0xFFFF),
    ("T", False, 100, -273.15, 0xFFFF),  # 0.01 K; 0xFFFF = no sensor fitted
)

# BLE-only enum tables (same (code, name, ...) shape as ve_enums).
# VE.Bus error: Venus OS /VebusError codes (assumed identical for BLE).
VEBUS_ERROR = (
    0, "none", 1, "phase_switched_off", 2, "mk2_mixed", 3, "devices_missing",
    4, "no_other_device", 5, "ac_out_overvoltage", 6, "ddc_program_error",
    7, "vebus_bms_without_assistant", 8, "ground_relay_test_failed",
    10, "time_sync_problem", 11, "relay_test_fault", 14, "cannot_transmit",
    16, "awaiting_configuration", 17, "phase_master_missing",
    18, "slave_ac_overvoltage", 22, "cannot_be_slave", 24, "switch_over_protection",
    25, "firmware_incompatible", 26, "internal_error", 255, "not_available",
)
# Smart BatteryProtect output state: only 0 and 1 are seen on real devices;
# victron-ble adds 4 = off. Other codes publish as "unknown".
OUTPUT_STATE = (0, "off", 1, "on", 4, "off")
AC_IN_ACTIVE = (0, "ac_in_1", 1, "ac_in_2", 2, "not_connected")
ALARM_STATE = (0, "none", 1, "warning", 2, "alarm")
BALANCER_STATUS = (0, "unknown", 1, "balanced", 2, "balancing", 3, "imbalance")
# SmartLithium BMS flags (bit number, name); from VE.Can register notes, uncertain.
BMS_FLAG_BITS = (
    0, "charged", 1, "almost_charged", 2, "discharged", 3, "almost_discharged",
    4, "charging", 5, "discharging", 6, "balancing", 7, "safety_contactor",
    9, "overvoltage_alarm", 10, "overvoltage_warning", 11, "undervoltage_alarm",
    12, "undervoltage_warning", 13, "overcurrent_charge_warning",
    14, "overcurrent_discharge_warning", 15, "overtemperature_alarm",
    16, "overtemperature_warning", 17, "undertemperature_charge_warning",
    18, "undertemperature_charge_alarm", 19, "undertemperature_discharge_warning",
    20, "undertemperature_discharge_alarm", 22, "undertemperature_alarm",
    24, "hardware_failure", 25, "allowed_to_charge", 26, "allowed_to_discharge",
)
_ENUMS = (
    "CS", ve_enums.DEVICE_STATE, "ERR", ve_enums.CHARGER_ERROR,
    "MON", ve_enums.MONITOR_MODE, "vebus_error", VEBUS_ERROR,
    "output_state", OUTPUT_STATE, "ac_in_active", AC_IN_ACTIVE,
    "alarm_state", ALARM_STATE, "balancer_status", BALANCER_STATUS,
)
_BITMASKS = (
    "AR", ve_enums.ALARM_REASON_BITS, "WARN", ve_enums.ALARM_REASON_BITS,
    "OR", ve_enums.OFF_REASON_BITS, "bms_flags", BMS_FLAG_BITS,
)



def _packed(rtype, subtype=0):
    if rtype == RECORD_UNENCRYPTED:
        return _SOLARSENSE_REC if subtype == SUBTYPE_SOLARSENSE else None
    if 0 <= rtype < len(_RECORDS):
        return _RECORDS[rtype]
    return None


def record_spec(rtype, subtype=0):
    """(record name, fields) for a record type, or None if unknown. Each field
    is (name, bit offset, width, flags, divisor, addend, NA raw or NO_NA);
    built on each call (for the encoder and tests, not the decoding path)."""
    rec = _packed(rtype, subtype)
    if rec is None:
        return None
    lay = rec[2]
    out = []
    for k in range(len(rec[1])):
        j = k * _FW
        w = lay[j + 1]
        fl = lay[j + 2]
        nak = lay[j + 4]
        mask = (1 << w) - 1
        na = mask if nak & 1 else ((mask >> 1) if nak & 2 else _NONE)
        c = _CONVS[lay[j + 3]]
        out.append((rec[1][k], lay[j], w, fl, c[0], c[1], na))
    return (rec[0], tuple(out))


def record_types():
    """Every decodable (record type, subtype, name)."""
    out = []
    for i in range(len(_RECORDS)):
        if _RECORDS[i] is not None:
            out.append((i, 0, _RECORDS[i][0]))
    out.append((RECORD_UNENCRYPTED, SUBTYPE_SOLARSENSE, _SOLARSENSE_REC[0]))
    return out


def code_name(field, code):
    """Name of an enum code, list of bit names of a bit mask, None otherwise."""
    if code is None:
        return None
    for i in range(0, len(_ENUMS), 2):
        if _ENUMS[i] == field:
            return ve_enums.name(_ENUMS[i + 1], code)
    for i in range(0, len(_BITMASKS), 2):
        if _BITMASKS[i] == field:
            return ve_enums.bit_names(_BITMASKS[i + 1], code)
    return None


def _hexval(c):
    o = ord(c)
    if 48 <= o <= 57:
        return o - 48
    o |= 0x20
    if 97 <= o <= 102:
        return o - 87
    return -1


def key_problem(key_text):
    """None if `key_text` is a usable 32-hex-character key, else the reason."""
    if not isinstance(key_text, str):
        return "ble key must be a string of 32 hex characters"
    k = key_text.strip()
    if len(k) != 32:
        return "ble key must be 32 hex characters, got %d" % len(k)
    for i in range(32):
        if _hexval(k[i]) < 0:
            return "ble key must be 32 hex characters, found %r at position %d" % (k[i], i + 1)
    return None


def key_bytes(key_text):
    """16 key bytes from a key that passed key_problem()."""
    k = key_text.strip()
    out = bytearray(16)
    for i in range(16):
        out[i] = (_hexval(k[2 * i]) << 4) | _hexval(k[2 * i + 1])
    return bytes(out)


def mac_problem(text):
    """None if `text` is a MAC address AA:BB:CC:DD:EE:FF (':' or '-'), else why."""
    if not isinstance(text, str):
        return "ble mac must be a string like AA:BB:CC:DD:EE:FF"
    m = text.strip()
    if len(m) != 17:
        return "ble mac must look like AA:BB:CC:DD:EE:FF, got %r" % text
    sep = m[2]
    if sep not in ":-":
        return "ble mac must look like AA:BB:CC:DD:EE:FF, got %r" % text
    for i in range(17):
        if i % 3 == 2:
            if m[i] != sep:
                return "ble mac must look like AA:BB:CC:DD:EE:FF, got %r" % text
        elif _hexval(m[i]) < 0:
            return "ble mac must look like AA:BB:CC:DD:EE:FF, got %r" % text
    return None


def mac_bytes(text):
    """6 address bytes, in display order, from a MAC that passed mac_problem()."""
    m = text.strip()
    out = bytearray(6)
    for i in range(6):
        out[i] = (_hexval(m[3 * i]) << 4) | _hexval(m[3 * i + 1])
    return bytes(out)


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


def decode(data, key16, aes=None):
    """One-shot decode: (status, record name or None, values dict or None)."""
    d = Decoder()
    st = d.decode(data, key16, aes)
    if st != OK:
        return st, (d.record if st == WRONG_KEY else None), None
    return st, d.record, d.values()


class _Device:
    def __init__(self, mac, key):
        self.mac = mac
        self.key = key
        self.aes = aes_ecb.new(key)
        self.last = -1  # last accepted data counter, -1 = none yet
        self.stale = 0  # stale counters in a row
        self.key_reported = False
        self.updates = 0
        self.repeats = 0
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
        self.counts = {}
        for s in STATUSES:
            self.counts[s] = 0
        for mac, key in devices:
            self.add(mac, key)

    def add(self, mac, key):
        """Add a device: mac as text or 6 bytes, key as text or 16 bytes.
        Returns None or the reason it was refused."""
        if isinstance(mac, str):
            p = mac_problem(mac)
            if p:
                return p
            mac = mac_bytes(mac)
        if isinstance(key, str):
            p = key_problem(key)
            if p:
                return p
            key = key_bytes(key)
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
        dev.key_reported = False
        c = d.counter
        if dev.last >= 0:
            back = (dev.last - c) & 0xFFFF
            if back == 0:
                dev.repeats += 1
                return REPEAT
            if back <= _STALE_WINDOW:
                dev.stale += 1
                if dev.stale < _STALE_RESYNC:
                    dev.repeats += 1
                    return REPEAT
        st = d.decrypt(data, dev.key, dev.aes)
        if st is not None:
            return st
        d.fill()
        dev.last = c
        dev.stale = 0
        dev.updates += 1
        return OK

    def values(self):
        return self.decoder.values()
