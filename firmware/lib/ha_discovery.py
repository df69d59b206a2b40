# Home Assistant MQTT discovery payloads for vegw (pure functions, no I/O).
#
# One HA device per Victron device, linked (via_device) to one HA device for
# the gateway. For every field in a device's state JSON one entity:
#
#   topic   <discovery_prefix>/sensor/<uid>/config   (binary_sensor for ON/OFF)
#   uid     vegw_<gateway>_<identity>_<field>         sanitised to [A-Za-z0-9_-]
#   state   <prefix>/<gateway>/<device>/state, value_template reads the field
#   avail   all of: <prefix>/<gateway>/availability (the gateway's retained last
#           will) and <prefix>/<gateway>/<device>/availability (retained
#           online/offline from the gateway: offline while the device is stale
#           or was never heard), so a stale device reads "unavailable" under an
#           online gateway. Plain topics, no templates: nothing HA can warn on.
#
# Numbers carry unit, device_class, state_class (field_names.py says why each)
# and suggested_display_precision (the log's resolution, records.res). Enum
# codes (CS, ERR, MODE, ...) are HA "enum" sensors: the template maps the
# integer to a text listed in `options`; the state JSON keeps the integer.
# Templates read value_json.get(FIELD): a field that is missing or null gives
# "None", which HA shows as unknown, never a template warning.
#
# identity is the device serial (VE.Direct SER#), else the BLE MAC, else the
# user's device name. The gateway id is part of every unique id, so two
# gateways on one broker never collide, even when both hear the same BLE
# device; a device moved to another gateway gets new entities instead of
# fighting over the old ones (peers.md item 11: OpenDTU #1587, ha-victron-mqtt
# #269/#450). Entity names never start with the device name (HA 2023.8 rule).
#
# The payloads are retained by the caller: publish them once per boot or when
# HA announces itself on <discovery_prefix>/status, not on every reconnect.
# iter_configs() yields one (topic, dict) at a time so the caller can json.dumps
# and publish each without holding all of them in RAM. An enum config with its
# texts is up to ~4 KB (ERR): mqtt_async streams QoS 0 payloads past its buffer.
#
# Length: one payload family (HA discovery of a device's entities, enum
# templates streamed in pieces); a sixth of it documents the topics.
import json

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


import field_names
import records
import ve_enums

# the gateway's status JSON carries uptime even when no BLE device does
field_names.register("uptime", "s", "duration", "m")

MANUFACTURER = "Victron Energy"

# Fields that are device identity or bookkeeping, not entities.
_NOT_ENTITIES = ("SER#", "PID", "BMV", "FW", "FWE", "HSDS", "CAP_BLE", "HC#")
# ON/OFF labels, decoded to JSON booleans (docs/CONTRACTS.md).
_BINARY = ("LOAD", "Alarm", "Relay")
# Enum codes: field, ve_enums table, text for 0 of a bit mask (None: not a mask)
_ENUMS = (
    ("CS", "DEVICE_STATE", None), ("ERR", "CHARGER_ERROR", None), ("MPPT", "TRACKER_MODE", None),
    ("MODE", "DEVICE_MODE", None), ("MON", "MONITOR_MODE", None), ("OR", "OFF_REASON_BITS", "Not off"),
    ("AR", "ALARM_REASON_BITS", "No alarm"), ("WARN", "ALARM_REASON_BITS", "No warning"),
    # BLE-only codes (Instant Readout)
    ("vebus_error", "VEBUS_ERROR", None), ("output_state", "OUTPUT_STATE", None),
    ("ac_in_active", "AC_IN_ACTIVE", None), ("alarm_state", "ALARM_STATE", None),
    ("balancer_status", "BALANCER_STATUS", None), ("bms_flags", "BMS_FLAG_BITS", "No flags"),
)
OTHER = "Other"  # a code newer than our tables
MULTIPLE = "Multiple"  # more than one bit of a mask set
_DIAGNOSTIC = ("AR", "OR", "WARN", "ERR", "MODE", "MPPT", "MON", "vebus_error", "bms_flags")
# words shown in capitals in enum texts
_ACRONYMS = ("ac", "dc", "pv", "bms", "cpu", "mppt", "v", "soc")

# Friendly names, "|FIELD=Name|...": one string object rather than ~100
# tuples built at import (RAM on a ~110 KB heap). cell_N is named by rule.
_NAMES = (
    "|"
    "V=Voltage|V2=Voltage 2|V3=Voltage 3|VS=Starter voltage|VM=Midpoint voltage|"
    "DM=Midpoint deviation|VPV=PV voltage|PPV=PV power|I=Current|I2=Current 2|"
    "I3=Current 3|IL=Load current|LOAD=Load output|T=Temperature|P=Power|CE=Consumed Ah|"
    "SOC=State of charge|TTG=Time to go|Alarm=Alarm|Relay=Relay|AR=Alarm reason|"
    "OR=Off reason|WARN=Warning reason|H1=Deepest discharge|H2=Last discharge|"
    "H3=Average discharge|H4=Charge cycles|H5=Full discharges|H6=Cumulative Ah drawn|"
    "H7=Minimum voltage|H8=Maximum voltage|H9=Time since full charge|"
    "H10=Automatic synchronisations|H11=Low voltage alarms|H12=High voltage alarms|"
    "H13=Low starter voltage alarms|H14=High starter voltage alarms|"
    "H15=Minimum starter voltage|H16=Maximum starter voltage|H17=Energy discharged|"
    "H18=Energy charged|H19=Yield total|H20=Yield today|H21=Maximum power today|"
    "H22=Yield yesterday|H23=Maximum power yesterday|ERR=Error|CS=State|MODE=Device mode|"
    "AC_OUT_V=AC output voltage|AC_OUT_I=AC output current|"
    "AC_OUT_S=AC output apparent power|MPPT=Tracker mode|MON=Monitor mode|"
    "DC_IN_V=Input voltage|DC_IN_I=Input current|DC_IN_P=Input power|uptime=Uptime|"
    "ac_out_power=AC output power|ac_in_power=AC input power|"
    "ac_in_active=Active AC input|dc_power=DC power|ac_current=AC current|"
    "bms_flags=BMS flags|error_flags=Error flags|balancer_status=Balancer status|"
    "output_state=Output state|bms_error=BMS error|io_status=I/O status|"
    "warnings_alarms=Warnings and alarms|vebus_error=VE.Bus error|alarm_state=Alarm state|"
    "error_code=Error code|installation_power=Installation power|irradiance=Irradiance|"
    "cell_temperature=Cell temperature|sensor_battery_voltage=Sensor battery voltage|"
    "tx_power=Transmit power|time_since_sun=Time since sunlight|rssi=Signal strength|"
    "full_cycles=Full cycles|soc_avg_1d=Average state of charge 1 day|"
    "soc_avg_7d=Average state of charge 7 days|soc_avg_30d=Average state of charge 30 days|"
    "soc_avg_90d=Average state of charge 90 days|ah_in_today=Charge in today|"
    "ah_out_today=Charge out today|ah_in_yesterday=Charge in yesterday|"
    "ah_out_yesterday=Charge out yesterday|kwh_in_today=Energy in today|"
    "kwh_out_today=Energy out today|kwh_in_yesterday=Energy in yesterday|"
    "kwh_out_yesterday=Energy out yesterday|since_full=Time since full|"
    "mid_dev=Midpoint deviation (computed)|mid_dev_abs=Midpoint deviation magnitude|"
    "capacity_est=Estimated capacity|capacity_conf=Capacity estimate confidence|"
    "soh=State of health|pv_kwh_today=PV energy today|pv_kwh_yesterday=PV energy yesterday|"
    "load_power=Load power|load_kwh_today=Load energy today|"
    "load_kwh_yesterday=Load energy yesterday|charge_power=Charge power|"
    "charge_kwh_today=Charge energy today|"
)

_PIECE = const(256)  # bytes per piece of an enum config sent in pieces

_CLASSES = (("m", "measurement"), ("t", "total"), ("ti", "total_increasing"))

def _sanitize(s):
    out = []
    for ch in str(s):
        if ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9") or ch in "_-":
            out.append(ch)
        else:
            out.append("_")
    return "".join(out)


def identity(gateway, device_name, serial=None, mac=None):
    """Stable identity of a Victron device: its serial, else its BLE MAC
    (lower-case hex, no colons), else "<gateway>_<device name>"."""
    if serial:
        return _sanitize(str(serial).strip())
    if mac:
        m = "".join(ch for ch in str(mac).lower() if ch in "0123456789abcdef")
        if len(m) == 12:
            return m
    return _sanitize("%s_%s" % (gateway, device_name))


def gateway_ident(gateway):
    return "vegw_" + _sanitize(gateway)


def friendly_name(field):
    i = _NAMES.find("|" + field + "=")
    if i >= 0:
        i += len(field) + 2
        return _NAMES[i : _NAMES.find("|", i)]
    if field.startswith("cell_"):
        return "Cell " + field[5:] + " voltage"
    t = field.replace("_", " ")
    return t[:1].upper() + t[1:]


def entity_name(device_label, field):
    """The entity's name: the friendly name, unless it would start with the
    device's name (HA 2023.8 strips or rejects those); then "(FIELD) name"."""
    name = friendly_name(field)
    dev = (device_label or "").lower()
    if dev and name.lower().startswith(dev):
        name = "(%s) %s" % (field, name)
    return name


def device_block(gateway, device_label, ident, model=None, sw_version=None, serial=None):
    d = {
        "identifiers": ["%s_%s" % (gateway_ident(gateway), ident)],
        "name": device_label,
        "manufacturer": MANUFACTURER,
        "via_device": gateway_ident(gateway),
    }
    if model:
        d["model"] = model
    if sw_version:
        d["sw_version"] = str(sw_version)
    if serial:
        d["serial_number"] = str(serial)
    return d


def enum_text(name):
    """ve_enums name -> the text HA shows ("low_power" -> "Low power")."""
    words = name.split("_")
    for i in range(len(words)):
        if words[i] in _ACRONYMS:
            words[i] = words[i].upper()
    t = " ".join(words)
    return t[:1].upper() + t[1:]


def _enum_entry(field):
    # (ve_enums table name, text for 0 or None) of an enum field, or None
    for f, table, zero in _ENUMS:
        if f == field:
            return table, zero
    return None


def _enum_items(field):
    # (key, text) of an enum field one at a time: the tables are long
    # ",code=name,..." strings, and a split() would need one large list on
    # a fragmented heap. For a bit mask the keys are the single-bit values.
    table, zero = _enum_entry(field)
    s = getattr(ve_enums, table)
    i = 0
    while True:
        while i < len(s) and s[i] == ",":
            i += 1
        j = s.find(",", i)
        if j < 0:
            j = len(s)
        if i >= j:
            return
        eq = s.find("=", i, j)
        code = int(s[i:eq])
        yield (1 << code if zero else code), enum_text(s[eq + 1 : j])
        i = j


def enum_map(field):
    """(list of (key, text), text for 0 or None) of an enum field, None if the
    field is no enum. For a bit mask the keys are the single-bit values."""
    e = _enum_entry(field)
    if e is None:
        return None
    return list(_enum_items(field)), e[1]


def enum_options(field):
    """Every text the field's template can render, in table order, once."""
    zero = _enum_entry(field)[1]
    out = [zero] if zero else []
    for _, t in _enum_items(field):
        if t not in out:
            out.append(t)
    out.append(MULTIPLE if zero else OTHER)
    return out


def _enum_template_parts(field):
    """The enum's value_template in short pieces (one per code): the gateway
    sends them one after the other instead of building one block of ~2 KB on
    a fragmented heap. The template maps the integer to its text; null (not
    available) renders "None", which HA shows as unknown."""
    zero = _enum_entry(field)[1]
    yield "{%% set v = value_json.get('%s') %%}{{ none if v is none else " % field
    if zero:
        yield "'%s' if v == 0 else " % zero
    yield "{"
    first = True
    for key, text in _enum_items(field):
        yield "%s%d:'%s'" % ("" if first else ",", key, text)
        first = False
    yield "}.get(v, '%s') }}" % (MULTIPLE if zero else OTHER)


def _enum_template(field):
    return "".join(_enum_template_parts(field))


def _precision(field, unit):
    if unit == "dBm":
        return 0
    return records.res(field)[0]


def entity_config(gateway, device_name, ident, field, device, prefix="vegw",
                  discovery_prefix="homeassistant", expire_after=None, lean=False):
    """(topic, payload dict) for one field, or None for identity fields.
    lean: an enum's options and value_template left out (payload() adds them)."""
    if field in _NOT_ENTITIES:
        return None
    uid = "%s_%s_%s" % (gateway_ident(gateway), ident, _sanitize(field))
    p = {
        "name": entity_name(device.get("name"), field),
        "unique_id": uid,
        "state_topic": "%s/%s/%s/state" % (prefix, gateway, device_name),
        "availability": [{"topic": "%s/%s/availability" % (prefix, gateway)},
                         {"topic": "%s/%s/%s/availability" % (prefix, gateway, device_name)}],
        "availability_mode": "all",
        "device": device,
    }
    if field in _BINARY:
        p["value_template"] = "{{ 'ON' if value_json.get('%s') else 'OFF' }}" % field
        component = "binary_sensor"
    else:
        component = "sensor"
        if _enum_entry(field) is not None:
            p["device_class"] = "enum"
            if not lean:
                p["options"] = enum_options(field)
                p["value_template"] = _enum_template(field)
        else:
            p["value_template"] = "{{ value_json.get('%s') }}" % field
            inf = field_names.info(field)
            unit = inf[1] if inf is not None else ""
            if unit:
                p["unit_of_measurement"] = unit
            if inf is not None and inf[2]:
                p["device_class"] = inf[2]
            if inf is not None:
                for short, full in _CLASSES:
                    if inf[3] == short:
                        p["state_class"] = full
            p["suggested_display_precision"] = _precision(field, unit)
        if field in _DIAGNOSTIC:
            p["entity_category"] = "diagnostic"
    if expire_after:
        p["expire_after"] = int(expire_after)
    return "%s/%s/%s/config" % (discovery_prefix, component, uid), p


def iter_configs(gateway, device_name, fields, serial=None, mac=None, model=None,
                 prefix="vegw", discovery_prefix="homeassistant", sw_version=None,
                 device_label=None, expire_after=None):
    """Yield (topic, payload dict) for every entity of one Victron device.
    fields: the field names present in its state JSON. device_label: the name
    HA shows (default "<device name> <gateway>", so two gateways' "house"
    devices stay apart in entity ids)."""
    ident = identity(gateway, device_name, serial, mac)
    label = device_label or "%s %s" % (device_name, gateway)
    dev = device_block(gateway, label, ident, model, sw_version, serial)
    for f in fields:
        c = entity_config(gateway, device_name, ident, f, dev, prefix, discovery_prefix, expire_after)
        if c is not None:
            yield c


def _compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def _enum_json_parts(field):
    # the "options" list and "value_template" of an enum config, in pieces
    opts = enum_options(field)
    yield ',"options":['
    for i in range(len(opts)):
        yield '%s"%s"' % ("," if i else "", opts[i])
    yield '],"value_template":"'
    for part in _enum_template_parts(field):
        yield part
    yield '"}'


def payload(p, field=None):
    """What the gateway publishes for config p (from entity_config(lean=True)):
    compact JSON bytes, or for an enum a tuple of short byte strings whose
    concatenation is that JSON with its options and value_template (~4 KB for
    ERR; mqtt_async writes the pieces one by one)."""
    if field is None or p.get("device_class") != "enum" or "options" in p:
        return _compact(p).encode()
    out = [_compact(p)[:-1].encode()]
    acc = []
    n = 0
    # no " nor a backslash in texts or template: nothing to escape. Pieces of
    # about _PIECE bytes: few objects, none large
    for part in _enum_json_parts(field):
        acc.append(part)
        n += len(part)
        if n >= _PIECE:
            out.append("".join(acc).encode())
            acc = []
            n = 0
    if acc:
        out.append("".join(acc).encode())
    return tuple(out)


def iter_payloads(gateway, device_name, fields, serial=None, mac=None, model=None,
                  prefix="vegw", discovery_prefix="homeassistant", sw_version=None,
                  device_label=None, expire_after=None):
    """As iter_configs, but (topic, payload()) ready to publish, built one at
    a time with no large block (the gateway's heap is small and fragmented)."""
    ident = identity(gateway, device_name, serial, mac)
    label = device_label or "%s %s" % (device_name, gateway)
    dev = device_block(gateway, label, ident, model, sw_version, serial)
    for f in fields:
        c = entity_config(gateway, device_name, ident, f, dev, prefix, discovery_prefix, expire_after, lean=True)
        if c is not None:
            yield c[0], payload(c[1], f)


def configs(gateway, device_name, fields, **kw):
    return list(iter_configs(gateway, device_name, fields, **kw))


# The gateway's status sensors: (key in <prefix>/<gw>/status, unique-id
# suffix, name, unit, device_class, state_class). Uptime restarts from 0 at a
# reboot: a total_increasing, like the daily counters.
_STATUS_SENSORS = (("uptime_s", "uptime", "Uptime", "s", "duration", "total_increasing"),)


def gateway_configs(gateway, prefix="vegw", discovery_prefix="homeassistant", sw_version=None):
    """The gateway's own HA device: a connectivity binary sensor on the
    availability topic (it shows "disconnected", not "unavailable", when the
    will fires) and sensors for fields of <prefix>/<gateway>/status."""
    gid = gateway_ident(gateway)
    dev = {"identifiers": [gid], "name": "vegw %s" % gateway, "manufacturer": "vegw",
           "model": "Victron MQTT gateway"}
    if sw_version:
        dev["sw_version"] = str(sw_version)
    uid = gid + "_online"
    out = [("%s/binary_sensor/%s/config" % (discovery_prefix, uid), {
        "name": "Connectivity", "unique_id": uid,
        "state_topic": "%s/%s/availability" % (prefix, gateway),
        "payload_on": "online", "payload_off": "offline",
        "device_class": "connectivity", "entity_category": "diagnostic", "device": dev,
    })]
    for key, suffix, name, unit, dclass, sclass in _STATUS_SENSORS:
        uid = "%s_%s" % (gid, suffix)
        out.append(("%s/sensor/%s/config" % (discovery_prefix, uid), {
            "name": name, "unique_id": uid,
            "state_topic": "%s/%s/status" % (prefix, gateway),
            "value_template": "{{ value_json.get('%s') }}" % key,
            "availability_topic": "%s/%s/availability" % (prefix, gateway),
            "unit_of_measurement": unit, "device_class": dclass, "state_class": sclass,
            "suggested_display_precision": 0, "entity_category": "diagnostic", "device": dev}))
    return out
