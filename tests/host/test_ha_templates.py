"""Home Assistant discovery checked as far as it can be without Home
Assistant: a gateway (firmware/lib/gateway.py, CPython) hears a BMV, an MPPT
and a BLE SmartShunt; every discovery payload it publishes is rendered with
Jinja2 in a sandbox as HA renders value templates, against the very state or
status payload on its state_topic. A template that reads a key the payload
lacks would make HA log a warning at every message: StrictUndefined turns
that into a failure here."""
import json
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
for p in ("firmware/lib", "firmware", "host_tools/vegw", "tests/shared"):
    if str(ROOT / p) not in sys.path:
        sys.path.insert(0, str(ROOT / p))

jinja2 = pytest.importorskip("jinja2")
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

import alarm_engine  # noqa: E402
import ble_encode  # noqa: E402
import ble_readout  # noqa: E402
import gateway  # noqa: E402
import ha_discovery as H  # noqa: E402
import metrics  # noqa: E402
import ve_enums  # noqa: E402
import vedirect  # noqa: E402

KEY = "00112233445566778899aabbccddeeff"
MAC = "C0:DE:00:00:00:01"
ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)


def render(template, payload_text):
    """What HA shows for a message: the template over value_json."""
    return ENV.from_string(template).render(value_json=json.loads(payload_text), value=payload_text)


def run_site():
    cfg = {"gateway": {"id": "site-9"}, "mqtt": {"heartbeat": 60},
           "devices": [{"name": "house", "type": "vedirect"}, {"name": "solar", "type": "vedirect"},
                       {"name": "shunt", "type": "ble", "mac": MAC, "key": KEY},
                       {"name": "spare", "type": "vedirect"}]}
    names = [d["name"] for d in cfg["devices"]]
    engine = alarm_engine.Engine([], stale_s=60, devices=names)
    gw = gateway.Gateway(cfg, engine=engine, tracker=ble_readout.Tracker([(MAC, KEY)]),
                         metrics=metrics.MetricSet())
    msgs = {"vegw/site-9/availability": "online"}  # the app's birth message (its will says offline)
    parsers = {}
    for name, fixture in (("house", "gen_bmv712.bin"), ("solar", "gen_mppt.bin")):
        data = (ROOT / "tests" / "fixtures" / fixture).read_bytes()
        parsers[name] = (vedirect.Parser(lambda blk, n=name: gw.vedirect_block(n, blk, now[0])), data)
    now = [0]
    gw.announce_gateway()
    for t in range(0, 200):
        now[0] = 1795824000 + t
        for p, data in parsers.values():
            p.feed(data[(t * 400) % len(data):(t * 400) % len(data) + 400])
        adv = ble_encode.encode("battery_monitor", {"V": 12.9, "I": -4.2, "CE": -23.4, "SOC": 87.5, "TTG": 1440,
                                                    "AR": 0, "T": 21.5}, bytes.fromhex(KEY), t, model_id=0xA389)
        gw.ble_advert(bytes.fromhex(MAC.replace(":", "")), adv, -70, now[0])
        gw.tick(now[0])
        while len(gw.out):
            topic, payload, qos, retain = gw.out.pop()
            msgs[topic] = payload.decode()
    gw.publish_status(now[0])
    while len(gw.out):
        topic, payload, qos, retain = gw.out.pop()
        msgs[topic] = payload.decode()
    configs = []
    for topic, payload in gw.discovery_configs():
        if type(payload) is tuple:
            payload = b"".join(payload)
        configs.append((topic, json.loads(payload)))
    return msgs, configs


def test_every_template_renders_against_its_own_payload():
    msgs, configs = run_site()
    assert len(configs) > 40
    components = {t.split("/")[1] for t, _ in configs}
    assert components == {"sensor", "binary_sensor"}
    enums = 0
    for topic, p in configs:
        state = msgs.get(p["state_topic"])
        assert state is not None, (p["unique_id"], p["state_topic"])
        if "value_template" not in p:
            assert p["state_topic"].endswith("/availability")  # the connectivity sensor reads the plain will
            continue
        # the keys a template reads exist in the payload it reads
        for key in re.findall(r"value_json\.get\('([^']+)'\)", p["value_template"]):
            assert key in json.loads(state), (p["unique_id"], key)
        shown = render(p["value_template"], state)
        if "/binary_sensor/" in topic:
            assert shown in ("ON", "OFF")
        elif p.get("device_class") == "enum":
            enums += 1
            assert shown in p["options"] or shown == "None", (p["unique_id"], shown)
        elif shown != "None":
            float(shown)  # a number sensor gets a number
        # every availability topic is one the gateway publishes
        for a in p.get("availability", ()):
            assert a["topic"] in msgs, a
    assert enums >= 4
    # the gateway's Uptime reads a key its status carries
    up = [p for t, p in configs if p["unique_id"] == "vegw_site-9_uptime"][0]
    assert render(up["value_template"], msgs["vegw/site-9/status"]) == str(json.loads(msgs["vegw/site-9/status"])["uptime_s"])
    # a configured device never heard is unavailable, the heard ones available
    assert msgs["vegw/site-9/spare/availability"] == "offline"
    assert msgs["vegw/site-9/house/availability"] == "online"


def test_enum_templates_give_a_listed_text_for_every_code():
    # VE.Direct codes, and the BLE-only ones (issue 19: "State 3" is no answer)
    for field in ("CS", "ERR", "MPPT", "MODE", "MON", "vebus_error", "output_state", "ac_in_active",
                  "alarm_state", "balancer_status"):
        (_, p), = H.configs("gw", "d", (field,))
        assert p["device_class"] == "enum"
        table = getattr(ve_enums, [e[1] for e in H._ENUMS if e[0] == field][0])
        for item in table.strip(",").split(","):
            code, name = item.split("=")
            shown = render(p["value_template"], json.dumps({field: int(code)}))
            assert shown == H.enum_text(name) and shown in p["options"], (field, code, shown)
        assert render(p["value_template"], json.dumps({field: 9999})) == H.OTHER
        assert render(p["value_template"], json.dumps({field: None})) == "None"  # HA: unknown
    (_, p), = H.configs("gw", "d", ("AR",))
    assert render(p["value_template"], '{"AR": 0}') == "No alarm"
    assert render(p["value_template"], '{"AR": 4}') == "Low SOC"
    assert render(p["value_template"], '{"AR": 5}') == H.MULTIPLE
    for bit in range(14):
        assert render(p["value_template"], json.dumps({"AR": 1 << bit})) in p["options"]
    (_, p), = H.configs("gw", "d", ("bms_flags",))
    assert render(p["value_template"], '{"bms_flags": 0}') == "No flags"
    assert render(p["value_template"], '{"bms_flags": 16}') == "Charging"
    assert render(p["value_template"], '{"bms_flags": 17}') == H.MULTIPLE
    (_, p), = H.configs("gw", "d", ("vebus_error",))
    assert render(p["value_template"], '{"vebus_error": 2}') == "Mk2 mixed"
