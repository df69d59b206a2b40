# The gateway core (firmware/lib/gateway.py) in simulated time: decoded
# readings in, MQTT messages and flash-log records out.
import json
import sys

if "host_tools/vegw" not in sys.path:
    sys.path.append("host_tools/vegw")

import alarm_engine
import alarm_rules
import ble_encode
import ble_readout
import flashlog
import gateway
import records
import records_dec
import vedirect
from drivers.nor_sim import NorSim
from _util import read_fixture
from _util import ve_block as block

MP_HEAPSIZE = "1M"  # test data and fixtures; the app's own heap is checked by the sim tests

KEY = "00112233445566778899aabbccddeeff"
MAC = "C0:DE:00:00:00:01"


def make(rules=(), log_interval=60, heartbeat=60, stale=60):
    cfg = {
        "gateway": {"id": "gw1"},
        "mqtt": {"prefix": "vegw", "heartbeat": heartbeat, "discovery": True},
        "devices": [{"name": "house", "type": "vedirect"}, {"name": "shunt", "type": "ble", "mac": MAC, "key": KEY}],
        "alarms": {"stale_timeout": stale},
        "log": {"interval": log_interval},
    }
    parsed, errors = alarm_rules.parse_rules(list(rules), alarm_rules.default_field_ok(["house", "shunt"]))
    assert errors == [], errors
    engine = alarm_engine.Engine(parsed, stale_s=stale, devices=["house", "shunt"])
    tracker = ble_readout.Tracker([(MAC, KEY)])
    log = flashlog.FlashLog(NorSim(16))
    gw = gateway.Gateway(cfg, flashlog=log, engine=engine, tracker=tracker)
    return gw, log


def feeder(gw, name):
    now = [0]
    p = vedirect.Parser(lambda blk: gw.vedirect_block(name, blk, now[0]))

    def feed(data, t):
        now[0] = t
        p.feed(data)

    return feed


def drain(gw):
    out = []
    while len(gw.out):
        out.append(gw.out.pop())
    return out


def states(msgs, dev):
    return [json.loads(m[1]) for m in msgs if m[0] == "vegw/gw1/%s/state" % dev]


def test_first_block_publishes_whole_state_in_si_units_retained():
    gw, _ = make()
    feed = feeder(gw, "house")
    feed(read_fixture("faq_bmv700.bin"), 1000)
    msgs = drain(gw)
    st = states(msgs, "house")
    assert len(st) == 1
    s = st[0]
    assert s["V"] == 26.201 and s["SOC"] == 100.0 and s["TTG"] is None and s["PID"] == 0x203
    assert s["ts"] == 1000
    m = [m for m in msgs if m[0] == "vegw/gw1/house/state"][0]
    assert m[3] is True  # retained: a new subscriber sees the latest values


def test_report_by_exception_deadband_and_heartbeat():
    gw, _ = make(heartbeat=60)
    feed = feeder(gw, "house")
    feed(block([(b"V", b"12800"), (b"I", b"-3000")]), 0)
    assert len(states(drain(gw), "house")) == 1
    feed(block([(b"V", b"12810"), (b"I", b"-3010")]), 2)  # within deadbands
    gw.tick(2)
    assert states(drain(gw), "house") == []
    feed(block([(b"V", b"12900"), (b"I", b"-3010")]), 3)  # V moved 0.1 V
    st = states(drain(gw), "house")
    assert len(st) == 1 and st[0]["V"] == 12.9
    for t in range(4, 64):
        feed(block([(b"V", b"12900"), (b"I", b"-3010")]), t)
        gw.tick(t)
    st = states(drain(gw), "house")
    assert len(st) == 1 and st[0]["ts"] == 63  # heartbeat 60 s after the last publish


def test_stale_device_gets_no_heartbeat_of_frozen_values():
    gw, _ = make(heartbeat=30, stale=60)
    feed = feeder(gw, "house")
    feed(block([(b"V", b"12800")]), 0)
    drain(gw)
    for t in range(1, 200):
        gw.tick(t)
    st = states(drain(gw), "house")
    assert [s["ts"] for s in st] == [30]  # heartbeat while fresh, nothing once stale


def test_ble_advert_decoded_into_the_same_field_names():
    gw, _ = make()
    adv = ble_encode.encode("battery_monitor", {"V": 12.53, "I": -4.2, "SOC": 87.5, "CE": -23.4, "TTG": 600, "AR": 0},
                            bytes.fromhex(KEY), 0x1234, model_id=0xA389)
    gw.ble_advert(bytes.fromhex(MAC.replace(":", "")), adv, -71, 10)
    st = states(drain(gw), "shunt")
    assert len(st) == 1
    s = st[0]
    assert s["V"] == 12.53 and abs(s["I"] + 4.2) < 1e-9 and s["SOC"] == 87.5 and s["CE"] == -23.4
    assert s["rssi"] == -71
    # the same counter again is not republished
    gw.ble_advert(bytes.fromhex(MAC.replace(":", "")), adv, -71, 11)
    assert states(drain(gw), "shunt") == []


def test_wrong_ble_key_is_a_notice_not_values():
    gw, _ = make()
    adv = ble_encode.encode("battery_monitor", {"V": 12.5}, bytes.fromhex("ff" + KEY[2:]), 1, model_id=0xA389)
    gw.ble_advert(bytes.fromhex(MAC.replace(":", "")), adv, -70, 5)
    msgs = drain(gw)
    assert states(msgs, "shunt") == []
    notes = [json.loads(m[1])["notice"] for m in msgs if m[0] == "vegw/gw1/status/notice"]
    assert len(notes) == 1 and "key does not match device C0:DE:00:00:00:01" in notes[0]


def minutes(log):
    dec = records_dec.MinuteDecoder()
    out = []
    for seq, ty, p in log.read_from(1):
        if ty in (records.T_KEY, records.T_DELTA):
            out += dec.decode(ty, p)
    return out


def test_log_window_aggregates_go_to_flash_as_compact_blocks():
    gw, log = make(log_interval=60)
    feed = feeder(gw, "house")
    for t in range(0, 181):
        v = b"%d" % (12000 + t)
        feed(block([(b"V", v), (b"CS", b"3" if t < 30 else b"5"), (b"FW", b"0415")]), t)
        gw.tick(t)
    gw.close(181)  # the open window and block of minutes go to flash too
    ms = minutes(log)
    assert [m["t"] for m in ms] == [60, 120, 180, 240], ms
    m0 = ms[0]
    assert m0["t"] == 60
    house = m0["devices"]["house"]
    vmin, vavg, vmax = house["V"]
    assert vmin == 12.0 and vmax == 12.06 and abs(vavg - 12.03) < 0.006  # 0.01 V resolution
    assert house["CS"] == 5  # states: last value of the window
    assert "FW" not in house  # text is not logged
    assert ms[1]["devices"]["house"]["V"][0] == 12.06
    assert ms[2]["devices"]["house"]["V"][2] == 12.18
    assert ms[3]["devices"]["house"]["V"] == [12.18, 12.18, 12.18]  # the single sample at t=180
    assert "shunt" not in ms[0]["devices"] or ms[0]["devices"]["shunt"] is None


def test_alarm_event_goes_to_the_flash_log_with_a_sequence_number():
    gw, log = make(rules=["low: alarm: house.V < 12.0 for 30s clear 12.4"])
    feed = feeder(gw, "house")
    for t in range(0, 100):
        feed(block([(b"V", b"11900" if t < 50 else b"12500")]), t)
        gw.tick(t)
    evs = [json.loads(p) for s, ty, p in log.read_from(1) if ty == gateway.REC_EVENT]
    kinds = [(e["rule"], e["event"]) for e in evs]
    assert ("low", "raised") in kinds and ("low", "cleared") in kinds
    raised = [e for e in evs if e["event"] == "raised"][0]
    assert raised["t"] == 30 and raised["severity"] == "alarm"


def test_a_device_with_many_fields_is_aggregated_without_error():
    gw, log = make(log_interval=60)
    errors = []
    now = [0]

    def on_block(blk):
        try:
            gw.vedirect_block("house", blk, now[0])
        except Exception as e:  # the parser would count and hide it
            errors.append(repr(e))

    p = vedirect.Parser(on_block)
    fields = [(b"H%d" % i, b"%d" % (100 + i)) for i in range(1, 24)] + [(b"V", b"12800"), (b"I", b"-1000"),
                                                                        (b"SOC", b"900"), (b"CE", b"-2000")]
    for t in range(0, 130, 5):
        now[0] = t
        # at most 22 fields per block (VE.Direct 3.29): two blocks, one device
        p.feed(block(fields[:14]) + block(fields[14:]))
        gw.tick(t)
    gw.close(130)
    assert errors == [] and p.callback_errors == 0
    ms = minutes(log)
    assert ms and len(ms[0]["devices"]["house"]) == 27
    assert ms[0]["devices"]["house"]["H23"] == 123 and ms[0]["devices"]["house"]["SOC"] == 90.0


def test_commands_allow_list():
    gw, _ = make(rules=["hi: warning: house.V > 13 latch"])
    feed = feeder(gw, "house")
    feed(block([(b"V", b"13500")]), 1)
    drain(gw)
    assert gw.command(b'{"cmd": "rm -rf /"}', 2) is None
    assert gw.command(b"not json", 2) is None
    assert gw.command(b'{"cmd": "log_interval", "seconds": 0}', 2) is None
    # issue 23.6: 1 s would shrink 30 days of flash history to hours
    assert gw.command(b'{"cmd": "log_interval", "seconds": 1}', 2) is None and gw.log_interval == 60
    assert gw.command(b'{"cmd": "log_interval", "seconds": 120}', 2) is None and gw.log_interval == 120
    assert gw.command(b'{"cmd": "ack", "rule": "hi"}', 3) is None
    replies = [json.loads(m[1]) for m in drain(gw) if m[0] == "vegw/gw1/cmd/reply"]
    assert [r["ok"] for r in replies] == [False, False, False, False, True, True]
    assert "60..3600" in replies[3]["error"]
    assert replies[0]["error"] == "command not allowed"
    assert gw.counters["commands_refused"] == 2
    assert gw.command(b'{"cmd": "reboot"}', 4) is None and gw.reboot_requested
    assert gw.command(b'{"cmd": "logs", "from_seq": 1}', 5) == {"cmd": "logs", "from_seq": 1, "max": 200}
    # issue 23.6: arguments checked before the app starts an export
    for bad in (b'{"cmd": "logs", "from_seq": "x"}', b'{"cmd": "logs", "max": 100000}',
                b'{"cmd": "logs", "max": 1.5}', b'{"cmd": "logs", "from_seq": -1}'):
        assert gw.command(bad, 6) is None, bad
    replies = [json.loads(m[1]) for m in drain(gw) if m[0] == "vegw/gw1/cmd/reply"]
    assert [r["ok"] for r in replies] == [True, False, False, False, False]  # reboot, then the four
    # the modem's signal sampling: checked here, served by the board
    assert gw.command(b'{"cmd": "signal", "seconds": 30}', 7) == {"cmd": "signal", "seconds": 30}
    for bad in (b'{"cmd": "signal"}', b'{"cmd": "signal", "seconds": 4}', b'{"cmd": "signal", "seconds": 301}',
                b'{"cmd": "signal", "seconds": "30"}', b'{"cmd": "signal", "seconds": true}'):
        assert gw.command(bad, 8) is None, bad
    replies = [json.loads(m[1]) for m in drain(gw) if m[0] == "vegw/gw1/cmd/reply"]
    assert len(replies) == 5 and all(not r["ok"] and "5..300" in r["error"] for r in replies)


def test_discovery_again_on_ha_online_is_rate_limited():
    gw, _ = make()
    feed = feeder(gw, "house")
    feed(block([(b"V", b"13500")]), 1)
    gw.announce_gateway()
    full = len(list(gw.discovery_configs()))
    sent = 0
    for t in range(100, 100 + 20 * 30, 30):  # "online" every 30 s for 10 minutes
        gw.announce_gateway(again=True, now_s=t)
        sent += len(list(gw.discovery_configs()))
    assert full > 0 and sent == full  # one set, at t=100
    gw.announce_gateway(again=True, now_s=100 + 700)
    assert len(list(gw.discovery_configs())) > 0  # after the limit: again
    assert gw.counters["reannounce_limited"] == 19


def test_status_states_log_interval_and_history_days():
    gw, log = make()
    feed = feeder(gw, "house")
    for t in range(0, 7200, 10):
        feed(block([(b"V", b"12800"), (b"I", b"-1000")]), t)
        gw.tick(t)
    st = gw.status(7200)
    assert st["log"]["interval_s"] == 60
    days = st["log"]["history_days"]
    assert days is not None and days > 1, days


def test_outbox_is_bounded_and_coalesces_retained_states():
    ob = gateway.Outbox(4)
    for i in range(10):
        ob.put("a/state", b"%d" % i, 0, True)
    assert len(ob) == 1 and ob.pop()[1] == b"9" and ob.coalesced == 9
    for i in range(6):
        ob.put("t", b"%d" % i)
    assert len(ob) == 4 and ob.dropped == 2 and ob.pop()[1] == b"2"


def test_discovery_configs_paced_and_unique_per_gateway():
    gw, _ = make()
    feed = feeder(gw, "house")
    feed(read_fixture("faq_bmv700.bin") + block([(b"SER#", b"HQ1"), (b"V", b"12000")]), 1)
    drain(gw)
    gw.announce_gateway()
    topics = [t for t, p in gw.discovery_configs()]
    assert len(topics) >= 8
    assert len(set(topics)) == len(topics)
    assert all(t.startswith("homeassistant/") and "gw1" in t for t in topics)
    assert list(gw.discovery_configs()) == []  # nothing due twice


def test_discovery_dropped_half_way_is_sent_again_whole():
    # the link went down in the middle of a device's configs: the uplink
    # drops its generator; the next connect's one sends that device again
    gw, _ = make()
    feed = feeder(gw, "house")
    feed(read_fixture("faq_bmv700.bin") + block([(b"SER#", b"HQ1"), (b"V", b"12000")]), 1)
    drain(gw)
    gw.announce_gateway()
    gen = gw.discovery_configs()
    n_gw = 0
    first = []
    for topic, p in gen:
        first.append(topic)
        if "_HQ1_" in topic:  # the house's configs (named by its serial)
            n_gw += 1
        if n_gw == 3:
            break  # disconnected after three of the house's configs
    assert gw.discovery_due()
    again = [t for t, p in gw.discovery_configs()]
    house = [t for t in again if "_HQ1_" in t]
    assert len(house) > 3 and set(first) - set(again) <= set(t for t in first if t not in house)
    assert not gw.discovery_due() and list(gw.discovery_configs()) == []


def test_discovery_not_resent_at_reconnect_but_after_home_assistant_birth():
    gw, _ = make()
    feed = feeder(gw, "house")
    feed(read_fixture("faq_bmv700.bin") + block([(b"SER#", b"HQ1"), (b"V", b"12000")]), 1)
    drain(gw)
    gw.announce_gateway()  # first connect
    first = [t for t, p in gw.discovery_configs()]
    assert first
    gw.announce_gateway()  # reconnect: the configs are retained on the broker
    assert list(gw.discovery_configs()) == []
    gw.announce_gateway(again=True)  # homeassistant/status "online"
    assert [t for t, p in gw.discovery_configs()] == first


def test_state_json_is_compact_and_derived_metrics_rounded():
    import json
    import metrics

    cfg = {"gateway": {"id": "gw1"}, "mqtt": {"heartbeat": 60},
           "devices": [{"name": "house", "type": "vedirect", "capacity_ah": 200}], "log": {"interval": 60}}
    gw = gateway.Gateway(cfg, metrics=metrics.MetricSet())
    feed = feeder(gw, "house")
    for t in range(0, 700, 5):
        feed(block([(b"V", b"12500"), (b"I", b"-10333"), (b"P", b"-129"), (b"SOC", b"500"), (b"CE", b"-100000")]), t)
        gw.tick(t)
    payload = [p for t, p, q, r in drain(gw) if t.endswith("/house/state")][-1]
    assert b", " not in payload and b": " not in payload
    st = json.loads(payload)
    assert 0 < st["ah_out_today"] and st["ah_out_today"] == round(st["ah_out_today"], 2)
    assert None not in st.values()  # metrics not known yet are left out


def test_status_has_counters_and_devices():
    gw, _ = make()
    feed = feeder(gw, "house")
    feed(read_fixture("faq_bmv700.bin"), 5)
    st = gw.status(70)
    assert st["devices"]["house"]["readings"] == 1 and st["devices"]["house"]["stale"] is True
    assert st["devices"]["shunt"]["stale"] is True and st["blocks"] == 1


def test_derived_metrics_published_and_restored_after_reboot():
    import metrics

    def gw_with(ms):
        cfg = {"gateway": {"id": "gw1"}, "mqtt": {"heartbeat": 60},
               "devices": [{"name": "house", "type": "vedirect", "capacity_ah": 200}], "log": {"interval": 60}}
        return gateway.Gateway(cfg, metrics=ms)

    ms = metrics.MetricSet()
    gw = gw_with(ms)
    feed = feeder(gw, "house")
    for t in range(0, 3600, 5):  # an hour drawing 10 A at 50 % SOC
        feed(block([(b"V", b"12500"), (b"I", b"-10000"), (b"P", b"-125"), (b"SOC", b"500"), (b"CE", b"-100000")]), t)
        gw.tick(t)
    st = states(drain(gw), "house")[-1]
    assert abs(st["ah_out_today"] - 10.0) < 0.2, st["ah_out_today"]
    assert abs(st["soc_avg_1d"] - 50.0) < 0.5
    saved = ms.to_bytes()
    # reboot: a new gateway restores the saved blob and keeps counting
    ms2 = metrics.MetricSet()
    assert ms2.from_bytes(saved)
    gw2 = gw_with(ms2)
    feed2 = feeder(gw2, "house")
    for t in range(3600, 3700, 5):
        feed2(block([(b"V", b"12500"), (b"I", b"-10000"), (b"P", b"-125"), (b"SOC", b"500"), (b"CE", b"-100000")]), t)
        gw2.tick(t)
    st2 = states(drain(gw2), "house")[-1]
    assert st2["ah_out_today"] >= st["ah_out_today"]  # not reset by the reboot


def test_per_value_topics_option_publishes_changed_values():
    cfg = {"gateway": {"id": "gw1"}, "mqtt": {"per_value_topics": True},
           "devices": [{"name": "house", "type": "vedirect"}]}
    gw = gateway.Gateway(cfg)
    feed = feeder(gw, "house")
    feed(block([(b"V", b"12800"), (b"I", b"1000")]), 0)
    msgs = drain(gw)
    per = dict((m[0], json.loads(m[1])) for m in msgs if m[0].count("/") == 3 and not m[0].endswith(("/state", "/availability")))
    assert per == {"vegw/gw1/house/V": 12.8, "vegw/gw1/house/I": 1.0}
    feed(block([(b"V", b"13800"), (b"I", b"1000")]), 5)
    msgs = drain(gw)
    per = [m[0] for m in msgs if m[0].count("/") == 3 and not m[0].endswith(("/state", "/availability"))]
    assert per == ["vegw/gw1/house/V"]


def make_thin(rules=(), heartbeat=3600):
    cfg = {
        "gateway": {"id": "gw1"},
        "mqtt": {"prefix": "vegw", "heartbeat": heartbeat, "min_interval": 60, "uplink": "thin",
                 "discovery": "bridge"},
        "devices": [{"name": "house", "type": "vedirect"}],
        "log": {"interval": 60},
    }
    parsed, errors = alarm_rules.parse_rules(list(rules), alarm_rules.default_field_ok(["house"]))
    assert errors == [], errors
    engine = alarm_engine.Engine(parsed, stale_s=60, devices=["house"])
    return gateway.Gateway(cfg, flashlog=flashlog.FlashLog(NorSim(16)), engine=engine)


def test_thin_uplink_state_only_on_a_change_that_matters():
    gw = make_thin(rules=["low: alarm: house.I < -30"])
    feed = feeder(gw, "house")
    feed(block([(b"V", b"25000"), (b"I", b"-1000"), (b"VS", b"12000"), (b"Relay", b"OFF")]), 1000)
    gw.tick(1000)
    assert len(states(drain(gw), "house")) == 1  # the first state
    # V moves far beyond its deadband, VS too: analog values travel in the log, no state
    for t in range(1001, 1400):
        feed(block([(b"V", b"%d" % (25000 + (t % 2) * 900)), (b"I", b"-1000"), (b"VS", b"12500"),
                    (b"Relay", b"OFF")]), t)
        gw.tick(t)
    assert states(drain(gw), "house") == []
    # I is read by an alarm rule: beyond its deadband it is published (within min_interval)
    for t in range(1400, 1470):
        feed(block([(b"V", b"25000"), (b"I", b"-5000"), (b"VS", b"12500"), (b"Relay", b"OFF")]), t)
        gw.tick(t)
    st = states(drain(gw), "house")
    assert len(st) == 1 and st[0]["I"] == -5.0
    # a state flag flips: published
    for t in range(1470, 1540):
        feed(block([(b"V", b"25000"), (b"I", b"-5000"), (b"VS", b"12500"), (b"Relay", b"ON")]), t)
        gw.tick(t)
    st = states(drain(gw), "house")
    assert len(st) == 1 and st[0]["Relay"] is True
    # and the slow heartbeat
    for t in range(1540, 1000 + 3600 + 600):
        if t % 5 == 0:
            feed(block([(b"V", b"25100"), (b"I", b"-5000"), (b"VS", b"12500"), (b"Relay", b"ON")]), t)
        gw.tick(t)
    assert len(states(drain(gw), "house")) == 1


def test_thin_uplink_status_is_incremental_and_no_discovery():
    gw = make_thin()
    feed = feeder(gw, "house")
    feed(block([(b"V", b"25000"), (b"I", b"-1000")]), 1000)
    gw.tick(1000)
    gw.announce_gateway()
    assert not gw.discovery and not gw.discovery_pending and list(gw.discovery_configs()) == []
    drain(gw)
    gw.publish_status(1000, full=True)
    gw.publish_status(1100)
    gw.publish_status(1200)
    msgs = drain(gw)
    assert [m[0] for m in msgs] == ["vegw/gw1/status", "vegw/gw1/status/delta", "vegw/gw1/status/delta"]
    full = json.loads(msgs[0][1])
    d1 = json.loads(msgs[1][1])
    assert msgs[0][3] is True and msgs[1][3] is False  # the whole status retained, deltas not
    assert "fw" in full and "fw" not in d1 and d1["ts"] == 1100 and d1["uptime_s"] == 100
    assert len(msgs[1][1]) < len(msgs[0][1]) // 2
    merged = dict(full)
    merged.update(d1)
    merged.update(json.loads(msgs[2][1]))
    assert merged == json.loads(json.dumps(gw.status(1200)))  # full + deltas = the whole status
    gw.command(b'{"cmd":"status"}', 1300)  # the status command answers with the whole status
    msgs = drain(gw)
    assert [m[0] for m in msgs if "status" in m[0]] == ["vegw/gw1/status"]


def avail(msgs):
    return [(m[0].split("/")[2], m[1].decode(), m[3]) for m in msgs if m[0].endswith("/availability")]


def test_device_availability_follows_staleness_and_never_heard():
    # HA reads a stale device as unavailable: the gateway says so per device
    gw, log = make(heartbeat=300, stale=60)
    feed = feeder(gw, "house")
    gw.tick(0)
    feed(block([(b"V", b"12800")]), 1)
    assert avail(drain(gw)) == [("house", "online", True)]
    for t in range(2, 60):
        gw.tick(t)
    assert avail(drain(gw)) == []  # shunt never heard, but its 60 s have not passed
    gw.tick(60)
    assert avail(drain(gw)) == [("shunt", "offline", True)]  # never heard within its timeout
    for t in range(61, 130):
        gw.tick(t)
    assert avail(drain(gw)) == [("house", "offline", True)]  # silent since 1: stale at 61
    feed(block([(b"V", b"12810")]), 130)
    gw.tick(130)
    assert avail(drain(gw)) == [("house", "online", True)]
    # the built-in stale alarm fired for the device never heard, in the log
    evs = [json.loads(p) for s, ty, p in log.read_from(1) if ty == gateway.REC_EVENT]
    assert [(e["rule"], e["event"]) for e in evs if e["rule"] == "stale:shunt"] == [("stale:shunt", "raised")]
    assert gw.engine.active() == ["stale:shunt"]


def test_never_heard_device_stale_alarm_uses_its_own_timeout():
    # a per-device stale_timeout counts from boot for a device never heard;
    # the gateway registers its configured devices with the engine itself
    cfg = {"gateway": {"id": "gw1"}, "alarms": {"stale_timeout": 60},
           "devices": [{"name": "house", "type": "vedirect"}, {"name": "pump", "type": "vedirect", "stale_timeout": 600}]}
    engine = alarm_engine.Engine([], stale_s=60, stale_by_device={"pump": 600})
    gw = gateway.Gateway(cfg, engine=engine, flashlog=flashlog.FlashLog(NorSim(16)))
    feed = feeder(gw, "house")
    for t in range(1000, 1700):
        if t % 10 == 0:
            feed(block([(b"V", b"12800")]), t)
        gw.tick(t)
        if t == 1599:
            assert engine.active() == []
    assert engine.active() == ["stale:pump"]
    assert avail(drain(gw))[-1] == ("pump", "offline", True)


def test_status_declares_heartbeat():
    gw, _ = make(heartbeat=900)
    assert gw.status(10)["heartbeat_s"] == 900


def test_state_values_published_at_their_resolution():
    # MicroPython's JSON printed "SOC":84.90000000000001 for 84.9
    cfg = {"gateway": {"id": "gw1"}, "mqtt": {"per_value_topics": True},
           "devices": [{"name": "house", "type": "vedirect"}]}
    gw = gateway.Gateway(cfg)
    feed = feeder(gw, "house")
    feed(block([(b"V", b"8200"), (b"SOC", b"849"), (b"I", b"-8300"), (b"P", b"0"), (b"T", b"---")]), 0)
    msgs = drain(gw)
    text = [m[1] for m in msgs if m[0] == "vegw/gw1/house/state"][0].decode()
    for good in ('"SOC":84.9', '"V":8.2', '"I":-8.3', '"P":0'):
        assert good in text, text
    assert "0000" not in text and "9999" not in text, text
    st = json.loads(text)
    assert st["SOC"] == 84.9 and st["V"] == 8.2 and type(st["V"]) is float
    per = dict((m[0], m[1]) for m in msgs if m[0].startswith("vegw/gw1/house/") and m[0].count("/") == 3)
    assert per["vegw/gw1/house/SOC"] == b"84.9" and per["vegw/gw1/house/V"] == b"8.2"
    assert gateway._num_text(12.0) == "12.0" and gateway._num_text(float("nan")) == "null"
    assert gateway._num_text(1e-7) == "1e-07"


def test_device_availability_sent_again_after_a_connect():
    # a broker restarted without persistence forgot the retained availability;
    # HA (availability_mode all) would show the devices unavailable for good
    gw, _ = make(heartbeat=300, stale=60)
    feed = feeder(gw, "house")
    for t in range(0, 70):
        feed(block([(b"V", b"12800")]), t)
        gw.tick(t)
    assert sorted(avail(drain(gw))) == [("house", "online", True), ("shunt", "offline", True)]
    gw.announce_gateway()  # the app calls this after every connect
    feed(block([(b"V", b"12800")]), 70)
    gw.tick(70)
    assert sorted(avail(drain(gw))) == [("house", "online", True), ("shunt", "offline", True)]
