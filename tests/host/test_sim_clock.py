"""Issue 17.1 in the simulator: the simulated board's clock starts at
2000-01-01, as a board's after power-on, and is set by the firmware's own
SNTP client from the simulator's server. No message carries a year-2000
time: states go out without "ts" until the clock is set, log records made
meanwhile wait in flash and go out converted by the clock's jump."""
import json
import pathlib
import struct
import sys
import time

import paho.mqtt.client as mqtt
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "host_tools"))

from vegw.broker import Broker, mosquitto_binary  # noqa: E402
from vegw.simulator import Site  # noqa: E402

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="Debian mosquitto not installed (make mosquitto)")
VALID = 1704067200  # 2024-01-01
T_KEY = 16


class Sub:
    def __init__(self, port, gw):
        self.msgs = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = lambda cl, u, m: self.msgs.append((m.topic, m.payload, time.time()))
        self.c.connect("127.0.0.1", port)
        self.c.subscribe("vegw/%s/#" % gw, 1)
        self.c.loop_start()

    def json(self, suffix):
        return [(json.loads(p), t) for topic, p, t in list(self.msgs) if topic.endswith(suffix)]

    def stop(self):
        self.c.loop_stop()


def _run(gw, ntp_first, seconds):
    rules = ["always: warning: house.V > 0"]  # raised at the first block: an event record
    with Broker() as b:
        sub = Sub(b.port, gw)
        t0 = time.time()
        site = Site(gateway=gw, broker=("127.0.0.1", b.port), duration=seconds, ble=False, log_interval=2,
                    rules=rules, ntp=ntp_first)
        try:
            if not ntp_first:
                time.sleep(seconds / 2)
                held = (sub.json("/log"), sub.json("/event"), sub.json("/status"), sub.json("/state"))
                site.fw.ntp.answering = True  # the network's time comes back
            site.fw.wait(seconds + 60)
            out = site.fw.proc.stdout.read()
        finally:
            site.stop()
        sub.stop()
    return sub, t0, out, (held if not ntp_first else None)


def _check_times(sub, t0):
    now = time.time()
    states = [m for topic, p, t in sub.msgs if topic.endswith("/state") for m in [json.loads(p)]]
    assert states and all(s["ts"] >= t0 - 5 for s in states if "ts" in s)
    keys = []
    for m, _ in sub.json("/log"):
        if m.get("type") == T_KEY:
            keys.append(struct.unpack_from("<I", bytes.fromhex(m["hex"]), 0)[0])
    assert keys, "no minute block published"
    assert all(t0 - 5 <= t <= now + 5 for t in keys), (keys, t0)
    events = [e for e, _ in sub.json("/event")]
    assert events and all(t0 - 5 <= e["ts"] <= now + 5 and t0 - 5 <= e["t"] <= now + 5 for e in events), events
    return keys, events


def test_clock_from_sntp_and_no_year_2000_anywhere():
    sub, t0, out, _ = _run("clk1", True, 12)
    assert "clock set from ntp" in out, out[-3000:]
    _check_times(sub, t0)
    st = [s for s, _ in sub.json("/status") if "clock" in s]
    assert st and st[-1]["clock"] == "ntp" and st[-1]["ts"] >= t0


def test_records_made_before_the_clock_is_set_wait_and_are_converted():
    sub, t0, out, held = _run("clk2", False, 16)
    logs, events, statuses, states = held
    # while no time: nothing from the log went out, no state or status had a ts
    assert logs == [] and events == [], (logs, events)
    assert states and all("ts" not in s for s, _ in states)
    assert statuses and all("ts" not in s and s["clock"] == "unset" for s, _ in statuses)
    assert "clock not set yet" in out and "records of this boot move by" in out, out[-3000:]
    keys, events = _check_times(sub, t0)
    # the records of the first half were stamped on the 2000 clock, and came
    # out at their true times: the earliest block is from the first seconds
    assert min(keys) <= t0 + 16 / 2 + 5
    jumps = [m for m, _ in sub.json("/log") if m.get("type") == 3]
    assert jumps and json.loads(bytes.fromhex(jumps[0]["hex"]))["delta"] > VALID - 946684800 - 86400


def test_raw_flash_readers_convert_or_mark_unknown():
    # `vegw logs` / the bridge on records straight from flash: a boot that
    # learnt the time later is converted by its REC_CLOCK record; a boot
    # that never did shows no time (never 2000-01-01) and its uptime
    import records
    from vegw.cmd_logs import LogDecoder, convert_clock

    def key_block(t):
        enc = records.MinuteEncoder([("house", ["V"])])
        enc.add(t, [[(1250, 1260, 1270)]])  # scaled (min, avg, max)
        return enc.take()

    unset, delta = 946684800, 1767225600 - 946684800
    rt, p1 = key_block(unset + 60)
    clock = json.dumps({"delta": delta, "from_seq": 1, "ts": 1767225700}).encode()
    rt2, p2 = key_block(unset + 120)  # a later boot that never learnt the time
    recs = [(1, rt, p1), (2, 3, clock), (5, rt2, p2)]
    dec = LogDecoder()
    out = [r for s, t, p in convert_clock(recs) for r in dec.feed(s, t, p)]
    assert [r["t"] for r in out] == [1767225660, None], out
    assert out[1]["clock"] == "unset" and out[1]["uptime_s"] == 120 and dec.clock_marks == 1
