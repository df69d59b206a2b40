# Home Assistant discovery payloads (firmware/lib/ha_discovery.py), both runtimes.
import json

import field_aliases
import ha_discovery as H

MP_HEAPSIZE = "512K"  # the tests hold whole lists of configs; the gateway builds one at a time

BMV_FIELDS = ("V", "VS", "I", "P", "CE", "SOC", "TTG", "Alarm", "Relay", "AR", "BMV", "FW",
              "PID", "SER#", "H1", "H4", "H17", "H18", "MON")
MPPT_FIELDS = ("V", "I", "VPV", "PPV", "CS", "MPPT", "OR", "ERR", "LOAD", "IL", "H19", "H20",
               "H21", "H22", "H23", "HSDS", "SER#", "PID", "FW")

# What HA accepts per device_class (units from HA's sensor docs); energy must
# not be a "measurement".
_UNITS = {
    "voltage": ("V", "mV"), "current": ("A", "mA"), "power": ("W", "kW"),
    "energy": ("Wh", "kWh"), "battery": ("%",), "temperature": ("°C", "°F"),
    "duration": ("s", "min", "h", "d"), "apparent_power": ("VA",),
    "irradiance": ("W/m²",), "signal_strength": ("dB", "dBm"),
}
# Keys of HA's MQTT sensor / binary_sensor discovery schema that we use
# (home-assistant.io/integrations/sensor.mqtt, binary_sensor.mqtt): anything
# else is a typo HA would reject.
_SENSOR_KEYS = ("name", "unique_id", "state_topic", "availability", "availability_mode", "device",
                "value_template", "unit_of_measurement", "device_class", "state_class", "entity_category",
                "expire_after", "options", "suggested_display_precision")
_BINARY_KEYS = ("name", "unique_id", "state_topic", "availability", "availability_mode", "device",
                "value_template", "device_class", "entity_category", "expire_after", "payload_on", "payload_off")
# HA's sensor device classes for which a display precision makes no sense
_NON_NUMERIC = ("enum", "timestamp", "date")


def _field(p):
    """The state key a template reads."""
    return p["value_template"].split("value_json.get('")[1].split("')")[0]


def _by_field(cfgs):
    out = {}
    for topic, p in cfgs:
        out[_field(p)] = (topic, p)
    return out


def test_bmv_topics_unique_ids_and_classes():
    cfgs = H.configs("site-042", "house", BMV_FIELDS, serial="HQ2132ABCDE", model="BMV-712 Smart")
    by = _by_field(cfgs)
    # identity fields are not entities
    for f in ("SER#", "PID", "BMV", "FW"):
        assert f not in by
    assert len(cfgs) == len(BMV_FIELDS) - 4
    topic, p = by["V"]
    assert topic == "homeassistant/sensor/vegw_site-042_HQ2132ABCDE_V/config"
    assert p["unique_id"] == "vegw_site-042_HQ2132ABCDE_V"
    assert p["state_topic"] == "vegw/site-042/house/state"
    # unavailable when the gateway is offline OR this device is stale
    assert p["availability"] == [{"topic": "vegw/site-042/availability"},
                                 {"topic": "vegw/site-042/house/availability"}]
    assert p["availability_mode"] == "all"
    assert p["value_template"] == "{{ value_json.get('V') }}"
    assert (p["unit_of_measurement"], p["device_class"], p["state_class"]) == ("V", "voltage", "measurement")
    assert p["suggested_display_precision"] == 2
    assert p["name"] == "Voltage"
    d = p["device"]
    assert d["identifiers"] == ["vegw_site-042_HQ2132ABCDE"]
    assert d["manufacturer"] == "Victron Energy" and d["model"] == "BMV-712 Smart"
    assert d["via_device"] == "vegw_site-042"
    assert d["serial_number"] == "HQ2132ABCDE"
    soc = by["SOC"][1]
    assert (soc["unit_of_measurement"], soc["device_class"]) == ("%", "battery")
    h17 = by["H17"][1]
    assert (h17["unit_of_measurement"], h17["device_class"], h17["state_class"]) == ("kWh", "energy", "total_increasing")
    ttg = by["TTG"][1]
    assert (ttg["unit_of_measurement"], ttg["device_class"]) == ("min", "duration")
    # ON/OFF labels are binary sensors reading the JSON boolean
    topic, alarm = by["Alarm"]
    assert topic.startswith("homeassistant/binary_sensor/") and topic.endswith("_Alarm/config")
    assert alarm["value_template"] == "{{ 'ON' if value_json.get('Alarm') else 'OFF' }}"
    assert "unit_of_measurement" not in alarm
    # enum / bit mask codes: HA enums with texts, no unit, no state class, diagnostic
    ar = by["AR"][1]
    assert "unit_of_measurement" not in ar and "state_class" not in ar
    assert ar["device_class"] == "enum" and "Low voltage" in ar["options"] and "No alarm" in ar["options"]
    assert ar["entity_category"] == "diagnostic"
    # every entity belongs to the same device block
    assert all(p["device"]["identifiers"] == d["identifiers"] for _, p in cfgs)


def test_two_gateways_same_device_never_collide():
    a = H.configs("gw-a", "house", MPPT_FIELDS, serial="HQ1")
    b = H.configs("gw-b", "house", MPPT_FIELDS, serial="HQ1")
    ua = set(p["unique_id"] for _, p in a)
    ub = set(p["unique_id"] for _, p in b)
    assert len(ua) == len(a) and not (ua & ub)
    assert not (set(t for t, _ in a) & set(t for t, _ in b))
    ida = a[0][1]["device"]["identifiers"][0]
    idb = b[0][1]["device"]["identifiers"][0]
    assert ida != idb
    # HA display names differ too (entity ids derive from them)
    assert a[0][1]["device"]["name"] == "house gw-a" and b[0][1]["device"]["name"] == "house gw-b"


def test_two_devices_with_same_name_on_two_gateways_and_same_gateway():
    a = H.configs("gw", "solar1", ("V",), serial="HQA")
    b = H.configs("gw", "solar2", ("V",), serial="HQB")
    assert a[0][1]["unique_id"] != b[0][1]["unique_id"]
    # renaming a device keeps its identity (serial based)
    c = H.configs("gw", "roof", ("V",), serial="HQA")
    assert c[0][1]["unique_id"] == a[0][1]["unique_id"]
    assert c[0][1]["state_topic"] == "vegw/gw/roof/state"


def test_identity_fallbacks():
    assert H.identity("gw", "shunt", None, "AA:BB:CC:DD:EE:0F") == "aabbccddee0f"
    assert H.identity("gw", "shunt", "", "aa-bb-cc-dd-ee-0f") == "aabbccddee0f"
    assert H.identity("gw", "shunt", "HQ 99#") == "HQ_99_"
    # neither serial nor valid MAC: gateway + device name
    assert H.identity("gw", "pump inverter", None, "xx") == "gw_pump_inverter"
    cfg = H.configs("site/1", "pump", ("P",))
    assert cfg[0][1]["unique_id"] == "vegw_site_1_site_1_pump_P"
    assert "/" not in cfg[0][0].split("/", 2)[2][:-len("/config")]


def test_entity_names_never_start_with_device_name():
    # devices named like a quantity: HA 2023.8 would strip "Voltage" from "Voltage"
    for label in ("Voltage", "voltage", "PV", "Load", "State", "Cell"):
        for f in ("V", "VPV", "PPV", "LOAD", "IL", "CS", "SOC", "cell_3"):
            (_, p), = H.configs("gw", "x", (f,), device_label=label)
            assert not p["name"].lower().startswith(label.lower()), (label, p["name"])
            assert p["device"]["name"] == label
    (_, p), = H.configs("gw", "x", ("VPV",), device_label="PV")
    assert p["name"] == "(VPV) PV voltage"


def test_unknown_field_and_expire_after():
    (topic, p), = H.configs("gw", "dev", ("mystery_value",), expire_after=300)
    assert topic == "homeassistant/sensor/vegw_gw_gw_dev_mystery_value/config"
    assert p["name"] == "Mystery value"
    assert "unit_of_measurement" not in p and p["expire_after"] == 300


def test_custom_prefixes():
    (topic, p), = H.configs("gw", "dev", ("V",), prefix="victron", discovery_prefix="ha")
    assert topic.startswith("ha/sensor/")
    assert p["state_topic"] == "victron/gw/dev/state"
    assert p["availability"] == [{"topic": "victron/gw/availability"}, {"topic": "victron/gw/dev/availability"}]


def test_every_registered_field_is_valid_for_ha():
    # the BLE decoder and the metrics register their own field names
    import ble_readout  # noqa: F401
    import metrics  # noqa: F401

    names = [f[0] for f in field_aliases.fields()]
    n = 0
    for topic, p in H.iter_configs("gw", "dev", names, serial="S1"):
        n += 1
        binary = "/binary_sensor/" in topic
        for k in p:
            assert k in (_BINARY_KEYS if binary else _SENSOR_KEYS), (p["unique_id"], k)
        dc = p.get("device_class")
        if dc in _UNITS:
            assert p.get("unit_of_measurement") in _UNITS[dc], (p["unique_id"], p.get("unit_of_measurement"))
        if dc == "energy":
            # HA: energy is total/total_increasing, or no state class (a closed period)
            assert p.get("state_class") in ("total", "total_increasing", None), p["unique_id"]
        assert p.get("state_class") != "total" or "last_reset_value_template" in p, p["unique_id"]
        if dc == "enum":
            assert "unit_of_measurement" not in p and "state_class" not in p and p["options"]
        if not binary and dc not in _NON_NUMERIC:
            assert type(p["suggested_display_precision"]) is int, p["unique_id"]
        # a proper name, never the raw field label
        f = _field(p)
        assert p["name"] and p["name"][0] != " " and p["name"][0] == p["name"][0].upper(), p["name"]
        assert H._NAMES.find("|" + f + "=") >= 0 or f.startswith("cell_"), f
        # payload fits what the MQTT client sends (QoS 0 streamed up to 8 KB;
        # anything but an enum well inside the 2048-byte tx buffer)
        text = json.dumps(p)
        assert len(topic) + len(text) < (4096 if dc == "enum" else 1200), (topic, len(text))
        assert json.loads(text) == p
        # object ids use only the characters HA allows
        oid = topic.split("/")[2]
        for ch in oid:
            assert ch.isalpha() or ch.isdigit() or ch in "_-", oid
    assert n == len(names) - 8  # all but the eight identity/bookkeeping labels
    assert n > 90


def test_gateway_device():
    cfgs = H.gateway_configs("site-042", sw_version="0.1.0")
    topic, conn = cfgs[0]
    assert topic == "homeassistant/binary_sensor/vegw_site-042_online/config"
    assert conn["state_topic"] == "vegw/site-042/availability"
    assert (conn["payload_on"], conn["payload_off"], conn["device_class"]) == ("online", "offline", "connectivity")
    assert "availability_topic" not in conn  # it must show "disconnected", not "unavailable"
    assert conn["device"]["identifiers"] == ["vegw_site-042"]
    topic, up = cfgs[1]
    assert up["state_topic"] == "vegw/site-042/status"
    # the status carries uptime_s (an "uptime" key would be unknown at every status)
    assert up["value_template"] == "{{ value_json.get('uptime_s') }}"
    assert up["unique_id"] == "vegw_site-042_uptime"  # kept: existing HA entities stay
    assert (up["unit_of_measurement"], up["device_class"], up["state_class"]) == ("s", "duration", "total_increasing")
    # the Victron devices point at this gateway device
    (_, p), = H.configs("site-042", "house", ("V",), serial="HQ1")
    assert p["device"]["via_device"] == conn["device"]["identifiers"][0]


def test_gateway_payloads_equal_the_configs():
    # the gateway sends enum configs as short pieces (no ~4 KB block on its
    # heap): joined, they are exactly the config
    fields = ("V", "CS", "ERR", "OR", "LOAD", "H20")
    want = H.configs("gw", "solar", fields, serial="HQ1")
    got = list(H.iter_payloads("gw", "solar", fields, serial="HQ1"))
    assert [t for t, _ in got] == [t for t, _ in want]
    for (topic, payload), (_, p) in zip(got, want):
        if p.get("device_class") == "enum":
            assert type(payload) is tuple and max(len(x) for x in payload) < 600
            payload = b"".join(payload)
        assert json.loads(payload) == p, topic


def test_enum_options_cover_every_code():
    import ve_enums

    tables = (("CS", "DEVICE_STATE"), ("ERR", "CHARGER_ERROR"), ("MPPT", "TRACKER_MODE"),
              ("MODE", "DEVICE_MODE"), ("MON", "MONITOR_MODE"))
    for field, table in tables:
        (_, p), = H.configs("gw", "d", (field,))
        assert p["device_class"] == "enum" and "unit_of_measurement" not in p and "state_class" not in p
        opts = p["options"]
        assert len(set(opts)) == len(opts) and H.OTHER in opts
        for item in getattr(ve_enums, table).strip(",").split(","):
            code, name = item.split("=")
            text = H.enum_text(name)
            assert text in opts, (field, code, text)
            assert "%s:'%s'" % (code, text) in p["value_template"], (field, code)
    # bit masks: one text per bit, keyed by the bit's value; 0 and several bits too
    (_, p), = H.configs("gw", "d", ("OR",))
    assert "'Not off' if v == 0" in p["value_template"] and "1:'No input power'" in p["value_template"]
    assert "16:'Protection active'" in p["value_template"] and H.MULTIPLE in p["options"]
    # a user sees words, with acronyms as such
    assert H.enum_text("bulk") == "Bulk" and H.enum_text("mppt_active") == "MPPT active"
    assert H.enum_text("low_v_ac_out") == "Low V AC out"


def test_daily_counters_follow_ha_state_classes():
    # HA: a counter that restarts from 0 each day is total_increasing; a
    # closed period (yesterday) has no state class
    import metrics  # noqa: F401

    by = _by_field(H.configs("gw", "d", ("H19", "H20", "H22", "H23", "kwh_in_today", "kwh_in_yesterday",
                                         "pv_kwh_today", "pv_kwh_yesterday", "ah_out_today", "ah_out_yesterday")))
    for f in ("H19", "H20", "kwh_in_today", "pv_kwh_today", "ah_out_today"):
        assert by[f][1]["state_class"] == "total_increasing", f
    for f in ("H22", "H23", "kwh_in_yesterday", "pv_kwh_yesterday", "ah_out_yesterday"):
        assert "state_class" not in by[f][1], f
    assert (by["H22"][1]["device_class"], by["H22"][1]["unit_of_measurement"]) == ("energy", "kWh")
    assert by["kwh_in_today"][1]["name"] == "Energy in today"
    assert by["H20"][1]["suggested_display_precision"] == 2
