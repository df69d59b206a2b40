# The readable side of ble_readout: the record layout table as text, its
# parser, record_spec()/record_types(), enum names (code_name) and the
# one-shot decode(). Host tools, the encoder and tests use these; the
# gateway does not, so they stay out of its heap: whoever needs them imports
# this module (ble_readout does not import it, so there is no cycle).
import ve_enums
import field_names
import ble_readout
from ble_readout import (  # noqa: F401
    OK, WRONG_KEY, RECORD_UNENCRYPTED, SUBTYPE_SOLARSENSE, NO_NA, F_SIGNED, F_NA2, _CONVS,
    _packed,
)

# same values as ble_readout's flag consts (not module attributes on MicroPython)
_S = F_SIGNED
_NA2 = F_NA2
_NONE = NO_NA
_FW = 5

# The record layouts. One record per header line "type name", then one line
# per field: name, bit offset, width, flags, divisor, addend, NA raw (hex, or
# - for none). value = raw / divisor + addend (divisor 1 and an integer addend
# give an int). Flags: s signed (two's complement of the width), n the max
# positive value is NA too, x aux input selector (not published), a aux value
# (name and scale from the selector), t SolarSense tiered minutes, p tx power
# (raw * 6 dBm), - none. parse_table() packs it into 5 bytes per field: the
# result is written out as constants in ble_readout._REC_TEXT and
# _REC_LAYOUT (the gateway
# never parses text at boot) and test_ble_readout checks the two agree.
# Edit this table, then regenerate ble_readout's constants with
# gen_records() below.
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


def parse_table(text=None):
    """Packed records from _TABLE (or `text`): (records indexed by type 0x00..0x0F with
    None for unknown types, the 0xFF/0x01 SolarSense record)."""
    if text is None:
        text = _TABLE
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


# The BLE-only enum tables are in ve_enums.py with the others (one shape,
# and Home Assistant's enum sensors read them there); their names stay
# reachable here.
VEBUS_ERROR = ve_enums.VEBUS_ERROR
OUTPUT_STATE = ve_enums.OUTPUT_STATE
AC_IN_ACTIVE = ve_enums.AC_IN_ACTIVE
ALARM_STATE = ve_enums.ALARM_STATE
BALANCER_STATUS = ve_enums.BALANCER_STATUS
BMS_FLAG_BITS = ve_enums.BMS_FLAG_BITS
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
    for i in range(16):
        rec = _packed(i)
        if rec is not None:
            out.append((i, 0, rec[0]))
    out.append((RECORD_UNENCRYPTED, SUBTYPE_SOLARSENSE, _packed(RECORD_UNENCRYPTED, SUBTYPE_SOLARSENSE)[0]))
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


def decode(data, key16, aes=None):
    """One-shot decode: (status, record name or None, values dict or None)."""
    d = ble_readout.Decoder()
    st = d.decode(data, key16, aes)
    if st != OK:
        return st, (d.record if st == WRONG_KEY else None), None
    return st, d.record, d.values()


def gen_records():
    """ble_readout's _REC_TEXT / _REC_LAYOUT constants as source text, from
    the table (run under CPython after editing _TABLE)."""
    recs, sol = parse_table()
    text = []
    lay = b""
    for r in list(recs) + [sol]:
        if r is None:
            text.append("")
        else:
            text.append(" ".join((r[0],) + tuple(r[1])))
            lay += r[2]
    out = ["_REC_TEXT = ("]
    line = ""
    for tok in "|".join(text).replace("|", "| ").split(" "):
        tok = tok + ("" if tok.endswith("|") else " ")
        if len(line) + len(tok) > 80:
            out.append('    "%s"' % line)
            line = ""
        line += tok
    out.append('    "%s"' % line.rstrip(" "))
    out.append(")")
    out.append("_REC_LAYOUT = (")
    for i in range(0, len(lay), 16):
        out.append('    b"' + "".join("\\x%02x" % x for x in lay[i:i + 16]) + '"')
    out.append(")")
    return "\n".join(out)
