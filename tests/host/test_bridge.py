"""`vegw bridge` end to end: a real Mosquitto, a real InfluxDB (Debian's
influxdb 1.x, started here on loopback with a temp config), two simulated
gateways (the real gateway core on a simulated NOR flash: one on the thin
uplink's binary batches, one on the full uplink's JSON/hex + events), two
bridge instances sharing the work through `$share/...`, one of them killed
(SIGKILL) mid-stream and restarted. Every record must land in InfluxDB once,
with the values `vegw logs` decodes from the gateways' flash images.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from vegw import LIB  # noqa: F401
from vegw.bridge_influx import InfluxWriter, line, points
from vegw.bridge_store import Store
from vegw.broker import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T0 = 1_800_000_000
VEGW = [sys.executable, "-m", "vegw.cli"]


def influxd_binary():
    for p in ("/usr/bin/influxd", shutil.which("influxd")):
        if p and os.path.exists(p):
            return p
    return None


@pytest.fixture(scope="module")
def influx(tmp_path_factory):
    """A throw-away InfluxDB 1.x on loopback: its base URL."""
    exe = influxd_binary()
    if exe is None:
        pytest.skip("Debian influxdb not installed (make influxdb)")
    d = tmp_path_factory.mktemp("influx")
    port, rpc = free_port(), free_port()
    conf = d / "influxdb.conf"
    conf.write_text(
        'reporting-disabled = true\nbind-address = "127.0.0.1:%d"\n'
        '[meta]\n  dir = "%s/meta"\n[data]\n  dir = "%s/data"\n  wal-dir = "%s/wal"\n  query-log-enabled = false\n'
        '[http]\n  bind-address = "127.0.0.1:%d"\n  log-enabled = false\n[monitor]\n  store-enabled = false\n'
        '[continuous_queries]\n  enabled = false\n' % (rpc, d, d, d, port))
    proc = subprocess.Popen([exe, "-config", str(conf)], stdout=subprocess.DEVNULL, stderr=open(d / "log", "w"))
    url = "http://127.0.0.1:%d" % port
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/ping", timeout=1)
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("influxd did not start: %s" % (d / "log").read_text()[-500:])
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


# ------------------------------------------------------------ gateways
def run_gateway(gw_id, img, minutes, uplink, seed):
    """The real gateway core for `minutes` simulated minutes on a flash image:
    BMV + MPPT blocks once a second, an alarm rule that fires and clears.
    Returns the flash log records [(seq, type, payload)]."""
    import alarm_engine
    import alarm_rules
    import flashlog
    import gateway
    import metrics
    import vedirect
    from drivers import nor_sim
    from vegw import vestream

    cfg = {"gateway": {"id": gw_id}, "mqtt": {"uplink": uplink, "discovery": "bridge" if uplink == "thin" else True},
           "devices": [{"name": "house", "type": "vedirect"}, {"name": "solar", "type": "vedirect"}],
           "log": {"interval": 60}}
    rules, errors = alarm_rules.parse_rules(["low_bank: alarm: house.V < 25.0 for 1m clear house.V > 25.2"],
                                            alarm_rules.default_field_ok(["house", "solar"]))
    assert not errors
    engine = alarm_engine.Engine(rules, stale_s=60, devices=["house", "solar"])
    bd = nor_sim.NorSim(32, 4096, path=str(img))
    log = flashlog.FlashLog(bd)
    gw = gateway.Gateway(cfg, flashlog=log, engine=engine, metrics=metrics.MetricSet())
    now = [T0]
    parsers = dict((n, vedirect.Parser((lambda n: lambda b: gw.vedirect_block(n, b, now[0]))(n)))
                   for n in ("house", "solar"))
    for t in range(minutes * 60):
        now[0] = T0 + t
        m = t // 60
        v = 25.5 + 0.12 * (((m // 2) * 7 + seed) % 11 - 5) + (t % 7) * 0.003  # under 25.0 for 2 min now and then
        parsers["house"].feed(vestream.block([("PID", "0xA381"), ("V", str(int(v * 1000))),
                                              ("I", str(-2000 - 100 * (t % 13))), ("SOC", str(900 - m)),
                                              ("Alarm", "OFF"), ("Relay", "OFF")]))
        parsers["solar"].feed(vestream.block([("PID", "0xA053"), ("SER#", "HQ%d" % seed), ("V", str(int(v * 1000))),
                                              ("PPV", str((m * 13 + t % 5) % 300)), ("CS", str(3 if m % 40 < 30 else 5)),
                                              ("LOAD", "ON" if m % 50 < 25 else "OFF")]))
        gw.tick(now[0])
        while len(gw.out):
            gw.out.pop()
    gw.close(now[0])
    recs = [(s, t, bytes(p)) for s, t, p in log.read_from(log.oldest_seq() or 1)]
    bd.close()
    return recs


def messages(gw_id, recs, uplink):
    """What the gateway's uplink publishes for its log, in order: (topic, payload)."""
    import logpack

    base = "vegw/%s/" % gw_id
    out = []
    if uplink == "thin":
        for i in range(0, len(recs), 3):  # three 5-minute blocks per publish (log_hold 900 s)
            out.append((base + "log", logpack.pack(recs[i:i + 3])))
    else:
        sys.path.insert(0, os.path.join(ROOT, "firmware"))
        import log_replay

        for seq, rtype, p in recs:
            out.append(log_replay.log_message(base, seq, rtype, p))
    return out


def vegw_logs(img):
    r = subprocess.run(VEGW + ["logs", "--from-file", str(img), "--format", "jsonl"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines()]


# ------------------------------------------------------------ bridges
def start_bridge(broker, influx, state, name, stdout=None):
    """A bridge instance; returns once it is connected and subscribed."""
    err = str(state) + "-" + name + ".err"
    n = os.path.getsize(err) if os.path.exists(err) else 0
    p = subprocess.Popen(VEGW + ["bridge", "--broker", broker, "--influx", influx, "--influx-db", "vegw",
                                 "--group", "g1", "--instance", name, "--state-dir", str(state),
                                 "--gap-timeout", "8", "--retry", "0.5"] + (["--stdout"] if stdout else []),
                         stdout=stdout or subprocess.DEVNULL, stderr=open(err, "a"))
    deadline = time.time() + 20
    while "running" not in open(err).read()[n:]:
        assert p.poll() is None and time.time() < deadline, open(err).read()
        time.sleep(0.05)
    time.sleep(0.3)  # its SUBSCRIBE follows the CONNACK
    return p


def test_two_gateways_two_bridges_one_killed(broker, influx, tmp_path):
    import paho.mqtt.client as mqtt

    minutes = 95
    imgs = {"gwA": tmp_path / "gwA.bin", "gwB": tmp_path / "gwB.bin"}
    recs = {"gwA": run_gateway("gwA", imgs["gwA"], minutes, "thin", 1),
            "gwB": run_gateway("gwB", imgs["gwB"], minutes, "full", 4)}
    msgs = messages("gwA", recs["gwA"], "thin") + messages("gwB", recs["gwB"], "full")
    assert any(t.endswith("/event") for t, _ in msgs), "the rule must fire for the event path to be tested"
    # interleave the two gateways as a broker would see them
    a = [m for m in msgs if "/gwA/" in m[0]]
    b = [m for m in msgs if "/gwB/" in m[0]]
    order = []
    while a or b:
        if a:
            order.append(a.pop(0))
        for _ in range(4):
            if b:
                order.append(b.pop(0))

    state = tmp_path / "state"
    out1 = open(tmp_path / "bridge1.out", "w")
    b1 = start_bridge(broker, influx, state, "one", stdout=out1)
    b2 = start_bridge(broker, influx, state, "two")
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-gateways")
    seen = {}
    watch = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-watch")
    watch.on_message = lambda c, u, m: seen.__setitem__(m.topic, m.payload)
    host, port = broker.split(":")
    try:
        for c in (pub, watch):
            c.connect(host, int(port))
            c.loop_start()
        watch.subscribe([("vegw/gwA/+/state", 0), ("vegw/gwA/event", 0), ("homeassistant/#", 0)])
        half = len(order) // 2
        for i, (topic, payload) in enumerate(order):
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
            if i == half:
                b2.send_signal(signal.SIGKILL)  # mid-stream: its unacknowledged share comes back to it
                b2.wait(10)
            if i == half + 8:
                b2 = start_bridge(broker, influx, state, "two")
            time.sleep(0.01)
        want = {}
        for gw in ("gwA", "gwB"):
            want[gw] = vegw_logs(imgs[gw])
        n_want = sum(len(v) for v in want.values())
        w = InfluxWriter(influx, "vegw")
        deadline = time.time() + 40
        while time.time() < deadline:
            rows = w.query("SELECT * FROM vegw")
            if len(rows) >= n_want:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # anything late (a double write would show as an extra point: none may come)
        rows = w.query("SELECT * FROM vegw")
        diag = dict((g, dict((k, v) for k, v in Store(str(state)).state(g).items() if k != "ctx"))
                    for g in ("gwA", "gwB"))
        diag["err"] = [open(str(state) + "-" + n + ".err").read()[-1500:] for n in ("one", "two")]
        assert len(rows) == n_want, (len(rows), n_want, diag, [(g, recs[g][0][0], recs[g][-1][0]) for g in recs])
        got = {}
        for r in rows:
            key = (r["gateway"], r["device"], r["time"])
            assert key not in got
            got[key] = r
        for gw, lines in want.items():
            for x in lines:
                r = got[(gw, x["device"], x["t"])]
                for k, v in x.items():
                    if k in ("t", "device"):
                        continue
                    assert r[k] == v or (not isinstance(v, bool) and r[k] == float(v)), (gw, x, k, r[k])
                fields = set(k for k in r if k not in ("time", "gateway", "device") and r[k] is not None)
                assert fields == set(x) - {"t", "device"}, (fields, x)
        # events: one point per event record of each gateway
        ev = w.query("SELECT * FROM vegw_event")
        n_events = sum(1 for g in recs for s, t, p in recs[g] if t == 2)
        assert len(ev) == n_events and n_events >= 2
        # high-water marks: every seq of both gateways written, nothing waiting
        st = Store(str(state))
        for gw in ("gwA", "gwB"):
            s = st.state(gw)
            assert s["hwm"] == recs[gw][-1][0] and not s["pending"], (gw, s["hwm"], s["pending"])
            assert s["counters"].get("undecodable", 0) == 0 and s["counters"].get("gaps", 0) == 0
        # republished for the thin gateway: state with the newest minute, events, HA discovery
        time.sleep(0.5)
        last_house = [x for x in want["gwA"] if x["device"] == "house"][-1]
        house = json.loads(seen["vegw/gwA/house/state"])
        assert house["ts"] == last_house["t"] and house["V"] == last_house["V"] and "V_min" not in house
        assert "vegw/gwA/event" in seen and json.loads(seen["vegw/gwA/event"])["rule"] == "low_bank"
        assert any(t.startswith("homeassistant/") and "gwA" in t for t in seen)
        assert not any(t.startswith("homeassistant/") and "gwB" in t for t in seen)  # full uplink: its own
        # instance one's stdout: line protocol for what it wrote
        out1.flush()
        lp = (tmp_path / "bridge1.out").read_text().splitlines()
        # (instance one may have been killed before its first write on a loaded
        # machine: InfluxDB above is the record-by-record check)
        assert all(x.startswith(("vegw,", "vegw_event,")) for x in lp)
    finally:
        for p in (b1, b2):
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        for c in (pub, watch):
            c.loop_stop()
            c.disconnect()


# ------------------------------------------------------------ units
def test_line_protocol_escaping_and_types():
    assert line("vegw", {"gateway": "a b", "device": "x,y"}, {"V": 25, "LOAD": True, "T": None}, 1800000060) == \
        "vegw,device=x\\,y,gateway=a\\ b LOAD=true,V=25.0 1800000060"
    assert line("vegw", {"gateway": "g"}, {"x": None}, 1) is None
    pts = points("g", [{"seq": 7, "t": 5, "event": "raised", "rule": "low", "severity": "alarm"}])
    assert pts == ['vegw_event,gateway=g,rule=low event="raised",seq=7i,severity="alarm" 5']


def test_store_waits_for_a_missing_seq_then_steps_over_it(tmp_path):
    import records

    enc = records.MinuteEncoder([("house", ["V"])], key_every=60, per_record=1)
    blocks = []
    for m in range(4):
        blocks.extend(enc.add(T0 + 60 * m, [[(2500 + m, 2500 + m, 2500 + m)]]))
    recs = [(10 + i, rt, bytes(p)) for i, (rt, p) in enumerate(blocks)]
    clock = [100.0]
    st = Store(str(tmp_path), gap_timeout=30, clock=lambda: clock[0])
    written = []
    # a gateway's first records: an older one may be in flight at another instance
    r = st.process("g", [recs[0]], written.extend)
    assert r.written == 0 and r.waiting == 1
    clock[0] += 20
    r = st.process("g", [recs[2]], written.extend)
    assert r.written == 0 and r.waiting == 2
    clock[0] += 10
    r = st.process("g", [], written.extend)  # then it starts at the oldest; 12 waits for 11
    assert r.written == 1 and r.waiting == 1 and [x["V"] for x in written] == [25.0]
    r = st.process("g", [recs[1], recs[0]], written.extend)  # 11 comes: 11 and 12 go; 10 again: a duplicate
    assert r.written == 2 and r.duplicates == 1 and [x["V"] for x in written] == [25.0, 25.01, 25.02]

    def broken(_):
        raise OSError("disk")

    # a failed write keeps the records pending (saved) and moves nothing
    try:
        st.process("g", [recs[3]], broken)
    except OSError:
        pass
    assert st.state("g")["hwm"] == 12 and "13" in st.state("g")["pending"]
    r = st.process("g", [], written.extend)
    assert r.written == 1 and written[-1]["V"] == 25.03
    # a gap: 15 without 14 waits gap_timeout, then goes (undecodable: its delta chain broke)
    more = list(enc.add(T0 + 240, [[(2504, 2504, 2504)]])) + list(enc.add(T0 + 300, [[(2505, 2505, 2505)]]))
    r = st.process("g", [(15, more[1][0], bytes(more[1][1]))], written.extend)
    assert r.written == 0 and r.waiting == 1
    clock[0] += 31
    r = st.process("g", [], written.extend)
    s = st.state("g")
    assert r.written == 1 and s["hwm"] == 15 and s["counters"]["gaps"] == 1 and s["counters"]["missing"] == 1
    assert s["counters"]["undecodable"] == 1


def test_store_never_drops_the_block_before_a_key_frame(tmp_path):
    """Hourly, a key frame follows a delta block. With two instances the key
    frame may reach the state first: it must wait for the block before it,
    not step over it (which dropped that block as a duplicate)."""
    import records

    enc = records.MinuteEncoder([("house", ["V"])], key_every=3, per_record=1)
    blocks = []
    for m in range(4):
        blocks.extend(enc.add(T0 + 60 * m, [[(2500 + m, 2500 + m, 2500 + m)]]))
    assert [rt for rt, _ in blocks] == [records.T_KEY, records.T_DELTA, records.T_DELTA, records.T_KEY]
    recs = [(20 + i, rt, bytes(p)) for i, (rt, p) in enumerate(blocks)]
    clock = [0.0]
    st = Store(str(tmp_path), gap_timeout=30, clock=lambda: clock[0])
    written = []
    st.process("g", recs[:2], written.extend)
    clock[0] += 30
    st.process("g", [], written.extend)
    assert st.state("g")["hwm"] == 21
    r = st.process("g", [recs[3]], written.extend)  # the key frame first (instance one)
    assert r.written == 0 and r.waiting == 1
    r = st.process("g", [recs[2]], written.extend)  # then the delta before it (instance two)
    assert r.written == 2 and r.duplicates == 0
    assert [x["V"] for x in written] == [25.0, 25.01, 25.02, 25.03]
    assert st.state("g")["counters"].get("gaps", 0) == 0


# ------------------------------------------------------------ the firmware's thin uplink
def test_firmware_thin_uplink_sends_binary_batches(tmp_path):
    """The firmware under the MicroPython unix port (vegw.simulator) on the
    thin uplink: every log message is a binary batch, several records share a
    publish, what arrives decodes to what `vegw logs` reads from its flash,
    no HA discovery from the device, the status as deltas after the first."""
    import paho.mqtt.client as mqtt

    from vegw.broker import Broker, mosquitto_binary
    from vegw.cmd_logs import decode_log_messages
    from vegw.sim_demo import demo_config
    from vegw.simulator import Site

    if mosquitto_binary() is None:
        pytest.skip("Debian mosquitto not installed (make mosquitto)")
    got = []
    with Broker() as b:
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="thin-sub")
        sub.on_message = lambda c, u, m: got.append((m.topic, bytes(m.payload)))
        sub.connect("127.0.0.1", b.port)
        sub.subscribe([("vegw/#", 1), ("homeassistant/#", 1)])
        sub.loop_start()
        time.sleep(0.3)
        cfg = demo_config("thin1", "127.0.0.1", b.port, [], ["house", "solar"], log_interval=1)
        cfg["mqtt"].update(uplink="thin", log_hold=4, status_interval=10, discovery="bridge")
        flash = tmp_path / "flash.bin"
        site = Site(gateway="thin1", broker=("127.0.0.1", b.port), vedirect=None, ble=False, config=cfg,
                    duration=16, flash_path=str(flash))
        try:
            rc = site.fw.wait(90)
            out = site.fw.proc.stdout.read()
        finally:
            site.stop()
        time.sleep(0.5)
        sub.loop_stop()
        sub.disconnect()
    assert rc == 0 and "Traceback" not in out, out[-3000:]
    logs = [p for t, p in got if t == "vegw/thin1/log"]
    assert logs and all(p[:1] == b"\xb1" for p in logs)
    import logpack

    sizes = [len(logpack.unpack(p)) for p in logs]
    assert max(sizes) >= 2, sizes  # records held up to log_hold share a publish
    assert not any(t.startswith("homeassistant/") for t, _ in got)
    assert any(t == "vegw/thin1/status" for t, _ in got)
    deltas = [json.loads(p) for t, p in got if t == "vegw/thin1/status/delta"]
    assert deltas and all("fw" not in d for d in deltas)  # unchanged keys left out
    mine = decode_log_messages(logs)
    want = vegw_logs(flash)
    mine = [dict((k, v) for k, v in r.items() if k != "seq") for r in mine if "device" in r]
    assert mine and mine == want[:len(mine)], (len(mine), len(want))
    assert len(want) - len(mine) <= 2 * 5  # at most the block still open at the stop
