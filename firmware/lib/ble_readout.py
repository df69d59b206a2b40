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

# One field: (name, bit offset, width, flags, divisor, addend, NA raw).
# value = raw / divisor + addend; divisor 1 and an integer addend give an int.
_TEST = (
    ("uptime", 0, 30, 0, 1, 0, 0x3FFFFFFF),
    ("T", 30, 7, 0, 1, -40, 0x7F),
)
_SOLAR = (
    ("CS", 0, 8, 0, 1, 0, 0xFF),
    ("ERR", 8, 8, 0, 1, 0, 0xFF),
    ("V", 16, 16, _S, 100, 0, 0x7FFF),
    ("I", 32, 16, _S, 10, 0, 0x7FFF),
    ("H20", 48, 16, 0, 100, 0, 0xFFFF),
    ("PPV", 64, 16, 0, 1, 0, 0xFFFF),
    ("IL", 80, 9, 0, 10, 0, 0x1FF),
)
_BM = (
    ("TTG", 0, 16, 0, 1, 0, 0xFFFF),
    ("V", 16, 16, _S, 100, 0, 0x7FFF),
    ("AR", 32, 16, 0, 1, 0, _NONE),
    ("aux", 48, 16, _AUX, 1, 0, _NONE),
    ("aux_input", 64, 2, _SEL, 1, 0, _NONE),
    ("I", 66, 22, _S | _NA2, 1000, 0, 0x3FFFFF),
    ("CE", 88, 20, 0, -10, 0, 0xFFFFF),
    ("SOC", 108, 10, 0, 10, 0, 0x3FF),
)
_INVERTER = (
    ("CS", 0, 8, 0, 1, 0, 0xFF),
    ("AR", 8, 16, 0, 1, 0, _NONE),
    ("V", 24, 16, _S, 100, 0, 0x7FFF),
    ("AC_OUT_S", 40, 16, 0, 1, 0, 0xFFFF),
    ("AC_OUT_V", 56, 15, 0, 100, 0, 0x7FFF),
    ("AC_OUT_I", 71, 11, 0, 10, 0, 0x7FF),
)
_DCDC = (
    ("CS", 0, 8, 0, 1, 0, 0xFF),
    ("ERR", 8, 8, 0, 1, 0, 0xFF),
    ("DC_IN_V", 16, 16, 0, 100, 0, 0xFFFF),
    ("V", 32, 16, _S, 100, 0, 0x7FFF),
    ("OR", 48, 32, 0, 1, 0, _NONE),
)
_LITHIUM = (
    ("bms_flags", 0, 32, 0, 1, 0, _NONE),
    ("error_flags", 32, 16, 0, 1, 0, _NONE),
    ("cell_1", 48, 7, 0, 100, 2.6, 0x7F),
    ("cell_2", 55, 7, 0, 100, 2.6, 0x7F),
    ("cell_3", 62, 7, 0, 100, 2.6, 0x7F),
    ("cell_4", 69, 7, 0, 100, 2.6, 0x7F),
    ("cell_5", 76, 7, 0, 100, 2.6, 0x7F),
    ("cell_6", 83, 7, 0, 100, 2.6, 0x7F),
    ("cell_7", 90, 7, 0, 100, 2.6, 0x7F),
    ("cell_8", 97, 7, 0, 100, 2.6, 0x7F),
    ("V", 104, 12, 0, 100, 0, 0xFFF),
    ("balancer_status", 116, 4, 0, 1, 0, 0xF),
    ("T", 120, 7, 0, 1, -40, 0x7F),
)
_INVERTER_RS = (
    ("CS", 0, 8, 0, 1, 0, 0xFF),
    ("ERR", 8, 8, 0, 1, 0, 0xFF),
    ("V", 16, 16, _S, 100, 0, 0x7FFF),
    ("I", 32, 16, _S, 10, 0, 0x7FFF),
    ("PPV", 48, 16, 0, 1, 0, 0xFFFF),
    ("H20", 64, 16, 0, 100, 0, 0xFFFF),
    ("ac_out_power", 80, 16, _S, 1, 0, 0x7FFF),
)
_GX = (
    ("V", 0, 16, 0, 100, 0, 0xFFFF),
    ("PPV", 16, 20, 0, 1, 0, 0xFFFFF),
    ("SOC", 36, 7, 0, 1, 0, 0x7F),
    ("P", 43, 21, _S, 1, 0, 0xFFFFF),
    ("dc_power", 64, 21, _S, 1, 0, 0xFFFFF),
)
_AC_CHARGER = (
    ("CS", 0, 8, 0, 1, 0, 0xFF),
    ("ERR", 8, 8, 0, 1, 0, 0xFF),
    ("V", 16, 13, 0, 100, 0, 0x1FFF),
    ("I", 29, 11, 0, 10, 0, 0x7FF),
    ("V2", 40, 13, 0, 100, 0, 0x1FFF),
    ("I2", 53, 11, 0, 10, 0, 0x7FF),
    ("V3", 64, 13, 0, 100, 0, 0x1FFF),
    ("I3", 77, 11, 0, 10, 0, 0x7FF),
    ("T", 88, 7, 0, 1, -40, 0x7F),
    ("ac_current", 95, 9, 0, 10, 0, 0x1FF),
)
# Smart BatteryProtect: consecutive fields from bit 0 (the PDF's start bits are
# misprinted; real captures and every decoder agree on this layout).
_SBP = (
    ("CS", 0, 8, 0, 1, 0, 0xFF),
    ("output_state", 8, 8, 0, 1, 0, 0xFF),
    ("ERR", 16, 8, 0, 1, 0, 0xFF),
    ("AR", 24, 16, 0, 1, 0, _NONE),
    ("WARN", 40, 16, 0, 1, 0, _NONE),
    ("DC_IN_V", 56, 16, _S, 100, 0, 0x7FFF),
    ("V", 72, 16, 0, 100, 0, 0xFFFF),
    ("OR", 88, 32, 0, 1, 0, _NONE),
)
_LYNX = (
    ("bms_error", 0, 8, 0, 1, 0, _NONE),
    ("TTG", 8, 16, 0, 1, 0, 0xFFFF),
    ("V", 24, 16, _S, 100, 0, 0x7FFF),
    ("I", 40, 16, _S, 10, 0, 0x7FFF),
    ("io_status", 56, 16, 0, 1, 0, _NONE),
    ("warnings_alarms", 72, 18, 0, 1, 0, _NONE),
    ("SOC", 90, 10, 0, 10, 0, 0x3FF),
    ("CE", 100, 20, 0, -10, 0, 0xFFFFF),
    ("T", 120, 7, 0, 1, -40, 0x7F),
)
_MULTI_RS = (
    ("CS", 0, 8, 0, 1, 0, 0xFF),
    ("ERR", 8, 8, 0, 1, 0, 0xFF),
    ("I", 16, 16, _S, 10, 0, 0x7FFF),
    ("V", 32, 14, 0, 100, 0, 0x3FFF),
    ("ac_in_active", 46, 2, 0, 1, 0, 3),
    ("ac_in_power", 48, 16, _S, 1, 0, 0x7FFF),
    ("ac_out_power", 64, 16, _S, 1, 0, 0x7FFF),
    ("PPV", 80, 16, 0, 1, 0, 0xFFFF),
    ("H20", 96, 16, 0, 100, 0, 0xFFFF),
)
_VEBUS = (
    ("CS", 0, 8, 0, 1, 0, 0xFF),
    ("vebus_error", 8, 8, 0, 1, 0, 0xFF),
    ("I", 16, 16, _S, 10, 0, 0x7FFF),
    ("V", 32, 14, 0, 100, 0, 0x3FFF),
    ("ac_in_active", 46, 2, 0, 1, 0, 3),
    ("ac_in_power", 48, 19, _S, 1, 0, 0x3FFFF),
    ("ac_out_power", 67, 19, _S, 1, 0, 0x3FFFF),
    ("alarm_state", 86, 2, 0, 1, 0, 3),
    ("T", 88, 7, 0, 1, -40, 0x7F),
    ("SOC", 95, 7, 0, 1, 0, 0x7F),
)
_DEM = (
    ("MON", 0, 16, _S, 1, 0, _NONE),
    ("V", 16, 16, _S, 100, 0, 0x7FFF),
    ("AR", 32, 16, 0, 1, 0, _NONE),
    ("aux", 48, 16, _AUX, 1, 0, _NONE),
    ("aux_input", 64, 2, _SEL, 1, 0, _NONE),
    ("I", 66, 22, _S | _NA2, 1000, 0, 0x3FFFFF),
)
# Orion XS: not in Victron's document; reverse-engineered layout (ESPHome
# victron_ble), signedness and NA values unverified.
_ORION_XS = (
    ("CS", 0, 8, 0, 1, 0, 0xFF),
    ("ERR", 8, 8, 0, 1, 0, 0xFF),
    ("V", 16, 16, 0, 100, 0, 0xFFFF),
    ("I", 32, 16, 0, 10, 0, 0xFFFF),
    ("DC_IN_V", 48, 16, 0, 100, 0, 0xFFFF),
    ("DC_IN_I", 64, 16, 0, 10, 0, 0xFFFF),
    ("OR", 80, 32, 0, 1, 0, _NONE),
)
_SOLARSENSE = (
    ("error_code", 0, 32, 0, 1, 0, _NONE),
    ("ERR", 32, 8, 0, 1, 0, 0xFF),
    ("installation_power", 40, 20, 0, 1, 0, 0xFFFFF),
    ("H20", 60, 20, 0, 100, 0, 0xFFFFF),
    ("irradiance", 80, 14, 0, 10, 0, 0x3FFF),
    ("cell_temperature", 94, 11, 0, 10, -60, 0x7FF),
    ("sensor_battery_voltage", 106, 8, 0, 100, 1.7, 0xFF),
    ("tx_power", 114, 1, _TX, 1, 0, _NONE),
    ("time_since_sun", 115, 7, _TIER, 1, 0, 0x7F),
)

# Indexed by record type 0x00..0x0F: (name, fields) or None (0x0E Smart BMS:
# layout unknown, counted as unknown_record).
_RECORDS = (
    ("test", _TEST),
    ("solar_charger", _SOLAR),
    ("battery_monitor", _BM),
    ("inverter", _INVERTER),
    ("dcdc_converter", _DCDC),
    ("smart_lithium", _LITHIUM),
    ("inverter_rs", _INVERTER_RS),
    ("gx_device", _GX),
    ("ac_charger", _AC_CHARGER),
    ("smart_battery_protect", _SBP),
    ("lynx_smart_bms", _LYNX),
    ("multi_rs", _MULTI_RS),
    ("vebus", _VEBUS),
    ("dc_energy_meter", _DEM),
    None,
    ("orion_xs", _ORION_XS),
)
_SOLARSENSE_REC = ("solarsense", _SOLARSENSE)
RECORD_UNENCRYPTED = const(0xFF)
SUBTYPE_SOLARSENSE = const(0x01)

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

# Fields with no VE.Direct label: (name, unit, HA device_class, state_class).
for _f in (
    ("uptime", "s", "duration", "m"), ("ac_out_power", "W", "power", "m"),
    ("ac_in_power", "W", "power", "m"), ("ac_in_active", "", "", ""),
    ("dc_power", "W", "power", "m"), ("ac_current", "A", "current", "m"),
    ("bms_flags", "", "", ""), ("error_flags", "", "", ""),
    ("cell_1", "V", "voltage", "m"), ("cell_2", "V", "voltage", "m"),
    ("cell_3", "V", "voltage", "m"), ("cell_4", "V", "voltage", "m"),
    ("cell_5", "V", "voltage", "m"), ("cell_6", "V", "voltage", "m"),
    ("cell_7", "V", "voltage", "m"), ("cell_8", "V", "voltage", "m"),
    ("balancer_status", "", "", ""), ("output_state", "", "", ""),
    ("bms_error", "", "", ""), ("io_status", "", "", ""),
    ("warnings_alarms", "", "", ""), ("vebus_error", "", "", ""),
    ("alarm_state", "", "", ""), ("error_code", "", "", ""),
    ("installation_power", "W", "power", "m"), ("irradiance", "W/m²", "irradiance", "m"),
    ("cell_temperature", "°C", "temperature", "m"),
    ("sensor_battery_voltage", "V", "voltage", "m"),
    ("tx_power", "dBm", "signal_strength", "m"), ("time_since_sun", "min", "duration", "m"),
):
    field_names.register(_f[0], _f[1], _f[2], _f[3])


def record_spec(rtype, subtype=0):
    """(record name, field table) for a record type, or None if unknown."""
    if rtype == RECORD_UNENCRYPTED:
        return _SOLARSENSE_REC if subtype == SUBTYPE_SOLARSENSE else None
    if 0 <= rtype < len(_RECORDS):
        return _RECORDS[rtype]
    return None


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
        self.fields = None
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
        spec = record_spec(rt, self.subtype)
        if spec is None:
            return UNKNOWN_RECORD
        self.record = spec[0]
        self.fields = spec[1]
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
        if key is None or self.key_check != key[0]:
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
        k = 0
        for f in self.fields:
            off = f[1]
            w = f[2]
            end = off + w
            if end > nbits:
                raw[k] = None
                k += 1
                continue
            i = (end - 1) >> 3
            lo = off >> 3
            v = 0
            while i >= lo:
                v = (v << 8) | plain[i]
                i -= 1
            v = (v >> (off & 7)) & ((1 << w) - 1)
            na = f[6]
            fl = f[3]
            if v == na:
                v = None
            elif fl & _S:
                half = 1 << (w - 1)
                if fl & _NA2 and v == half - 1:
                    v = None
                elif v >= half:
                    v -= half << 1
            raw[k] = v
            k += 1
        self.nfields = k

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
        fields = self.fields
        raw = self.raw
        sel = 3
        for k in range(self.nfields):
            if fields[k][3] & _SEL:
                sel = raw[k]
        for k in range(self.nfields):
            f = fields[k]
            fl = f[3]
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
                    v = _scale(v, f[4], f[5])
            out[f[0]] = v
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
        self.notice = None
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
