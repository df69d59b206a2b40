# Home Assistant MQTT discovery payloads for vegw (pure functions, no I/O).
#
# One HA device per Victron device, linked (via_device) to one HA device for
# the gateway. For every field in a device's state JSON one entity:
#
#   topic   <discovery_prefix>/sensor/<uid>/config   (binary_sensor for ON/OFF)
#   uid     vegw_<gateway>_<identity>_<field>         sanitised to [A-Za-z0-9_-]
#   state   <prefix>/<gateway>/<device>/state, value_template reads the field
#   avail   <prefix>/<gateway>/availability (the gateway's retained last will)
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
# and publish each without holding all of them in RAM.
import field_names

# the gateway's status JSON carries uptime even when no BLE device does
field_names.register("uptime", "s", "duration", "m")

MANUFACTURER = "Victron Energy"

# Fields that are device identity or bookkeeping, not entities.
_NOT_ENTITIES = ("SER#", "PID", "BMV", "FW", "FWE", "HSDS", "CAP_BLE", "HC#")
# ON/OFF labels, decoded to JSON booleans (docs/CONTRACTS.md).
_BINARY = ("LOAD", "Alarm", "Relay")

# Friendly names, "|FIELD=Name|...": one string object rather than ~70
# tuples built at import (RAM on a ~110 KB heap). A field not listed is
# named by its own label.
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
)

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
    return field.replace("_", " ")


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


def entity_config(gateway, device_name, ident, field, device, prefix="vegw",
                  discovery_prefix="homeassistant", expire_after=None):
    """(topic, payload dict) for one field, or None for identity fields."""
    if field in _NOT_ENTITIES:
        return None
    uid = "%s_%s_%s" % (gateway_ident(gateway), ident, _sanitize(field))
    binary = field in _BINARY
    p = {
        "name": entity_name(device.get("name"), field),
        "unique_id": uid,
        "state_topic": "%s/%s/%s/state" % (prefix, gateway, device_name),
        "availability_topic": "%s/%s/availability" % (prefix, gateway),
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
    }
    if binary:
        p["value_template"] = "{{ 'ON' if value_json['%s'] else 'OFF' }}" % field
        component = "binary_sensor"
    else:
        p["value_template"] = "{{ value_json['%s'] }}" % field
        component = "sensor"
        inf = field_names.info(field)
        if inf is not None:
            if inf[1]:
                p["unit_of_measurement"] = inf[1]
            if inf[2]:
                p["device_class"] = inf[2]
            for short, full in _CLASSES:
                if inf[3] == short:
                    p["state_class"] = full
            if inf[2] == "energy" and inf[3] == "m":
                # HA rejects energy + measurement (metrics registers yesterday's
                # kWh that way): a value that may go down is a "total"
                p["state_class"] = "total"
        if field in ("AR", "OR", "WARN", "ERR", "MODE", "MPPT", "MON"):
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


def configs(gateway, device_name, fields, **kw):
    return list(iter_configs(gateway, device_name, fields, **kw))


def gateway_configs(gateway, prefix="vegw", discovery_prefix="homeassistant", sw_version=None,
                    status_fields=("uptime",)):
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
        "device_class": "connectivity", "device": dev,
    })]
    for f in status_fields:
        uid = "%s_%s" % (gid, _sanitize(f))
        p = {"name": friendly_name(f), "unique_id": uid,
             "state_topic": "%s/%s/status" % (prefix, gateway),
             "value_template": "{{ value_json['%s'] }}" % f,
             "availability_topic": "%s/%s/availability" % (prefix, gateway),
             "entity_category": "diagnostic", "device": dev}
        inf = field_names.info(f)
        if inf is not None:
            if inf[1]:
                p["unit_of_measurement"] = inf[1]
            if inf[2]:
                p["device_class"] = inf[2]
        out.append(("%s/sensor/%s/config" % (discovery_prefix, uid), p))
    return out
