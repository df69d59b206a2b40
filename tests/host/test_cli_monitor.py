"""`vegw monitor` against a real Mosquitto on a free loopback port, including the
1,000 gateways x 3 devices load test (bounded time)."""
import json
import pathlib
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VEGW = str(ROOT / ".venv" / "bin" / "vegw")
PY = str(ROOT / ".venv" / "bin" / "python")

from vegw import loadgen  # noqa: E402
from vegw.broker import free_port  # noqa: E402
from vegw.cmd_monitor import Fleet, render  # noqa: E402


def monitor_json(broker, *extra, prefix="vegw", wait=2):
    t0 = time.monotonic()
    r = subprocess.run([VEGW, "monitor", "--broker", broker, "--prefix", prefix, "--once", "--json", "--wait", str(wait)]
                       + list(extra), capture_output=True, text=True, timeout=wait + 30)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), elapsed


def run_loadgen(broker, *args):
    r = subprocess.run([PY, "-m", "vegw.loadgen", "--broker", broker] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def nulls_last_sorted(rows, key):
    vals = [r[key] for r in rows]
    nn = [v for v in vals if v is not None]
    first_null = next((i for i, v in enumerate(vals) if v is None), len(vals))
    return nn == sorted(nn) and all(v is None for v in vals[first_null:])


def test_load_1000_gateways_retained_contract(broker):
    # 1,000 gateways x 3 devices; the last 10 gateways offline, the last 20 silent (old ts)
    run_loadgen(broker, "--prefix", "load", "--gateways", 1000, "--devices", 3, "--duration", 0,
                "--offline", 10, "--silent", 20)
    wait = 3
    rows, elapsed = monitor_json(broker, "--sort", "voltage", prefix="load", wait=wait)
    print("monitor --once with 3000 retained devices: %.2f s (wait %d s)" % (elapsed, wait))
    assert elapsed < wait + 10
    assert len(rows) == 3000
    assert len({(r["gateway"], r["device"]) for r in rows}) == 3000
    for r in rows:
        for k in ("gateway", "device", "soc", "voltage", "current", "last_seen", "stale"):
            assert k in r
        assert isinstance(r["stale"], bool)
    assert nulls_last_sorted(rows, "voltage")
    byname = {(r["gateway"], r["device"]): r for r in rows}
    for g in (0, 1, 500, 979):
        for d, name in enumerate(("bmv", "mppt", "inverter")):
            r = byname[(loadgen.gw_name(g), name)]
            v = loadgen.values(g, d, 0)
            assert r["voltage"] == v["V"] and r["current"] == v["I"]
            assert r["soc"] == v.get("SOC")  # the MPPT has no SOC -> null
            assert r["stale"] is False and 0 <= r["last_seen"] < 60
    stale = {r["gateway"] for r in rows if r["stale"]}
    assert stale == {loadgen.gw_name(g) for g in range(980, 1000)}
    assert byname[(loadgen.gw_name(999), "bmv")]["last_seen"] > 3000  # old ts used, not arrival time
    rows, _ = monitor_json(broker, "--sort", "soc", prefix="load", wait=1)
    assert nulls_last_sorted(rows, "soc")
    assert rows[-1]["soc"] is None and rows[0]["soc"] is not None


def test_load_1000_gateways_live_publishing(broker):
    # gateways keep publishing (not retained, every second) while the monitor listens
    gen = subprocess.Popen([PY, "-m", "vegw.loadgen", "--broker", broker, "--prefix", "live", "--gateways", "1000",
                            "--devices", "3", "--interval", "1", "--duration", "7", "--no-retain"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        rows, elapsed = monitor_json(broker, prefix="live", wait=4)
        assert elapsed < 4 + 10
        assert len(rows) == 3000
        assert sum(r["stale"] for r in rows) == 0
        assert max(r["last_seen"] for r in rows) < 5
    finally:
        gen.wait(60)


def test_live_view_redraws_at_most_refresh_rate(broker, tmp_path):
    gen = subprocess.Popen([PY, "-m", "vegw.loadgen", "--broker", broker, "--prefix", "view", "--gateways", "1000",
                            "--devices", "3", "--interval", "0.5", "--duration", "6", "--no-retain"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    outf = open(tmp_path / "view.txt", "w+")  # a file, not a pipe: a full pipe would stall the writer
    mon = subprocess.Popen([VEGW, "monitor", "--broker", broker, "--prefix", "view", "--refresh", "2"],
                           stdout=outf, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    mon.send_signal(signal.SIGINT)
    _, err = mon.communicate(timeout=20)
    outf.seek(0)
    out = outf.read()
    outf.close()
    gen.wait(60)
    frames = out.count("vegw monitor ")
    assert mon.returncode == 0, err
    assert 2 <= frames <= 4 * 2 + 2, frames  # ~6000 messages/s, yet at most 2 redraws a second
    frames_text = out.strip().split("\n\n")
    print("live view: %d frames in 4 s; last full header: %s" % (frames, frames_text[-2].splitlines()[0]))
    last = frames_text[-2].splitlines()  # the final frame may be cut by the SIGINT
    assert "1000 gateways, 3000 devices" in last[0]
    assert last[1].split()[:3] == ["GATEWAY", "DEVICE", "SOC%"]
    assert len(last) == 2 + 3000  # not a tty: every row


def test_status_events_availability_and_bad_payloads(broker):
    import paho.mqtt.client as mqtt

    host, port = broker.split(":")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect(host, int(port))
    c.loop_start()
    now = time.time()
    pubs = [
        ("t/a/availability", "online", True),
        ("t/a/status", json.dumps({"link": "cellular", "rssi_dbm": -87, "uptime_s": 5}), True),
        ("t/a/house/state", json.dumps({"V": 25.31, "I": -3.2, "SOC": 81.5, "ts": now - 10}), True),
        ("t/a/solar/state", json.dumps({"V": 25.3, "PPV": 412, "VPV": 60.1}), True),  # retained, no ts
        ("t/b/availability", "offline", True),
        ("t/b/pump/state", json.dumps({"V": 12.0, "ts": now}), True),
        ("t/c/x/state", "not json {", True),
        ("t/c/y/state", "[1,2]", True),
        ("t/c/z/state", json.dumps({"V": "12.0", "SOC": True, "I": None}), True),
    ]
    for topic, payload, retain in pubs:
        c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    mon = subprocess.Popen([VEGW, "monitor", "--broker", broker, "--prefix", "t", "--once", "--json", "--wait", "2",
                            "--stale", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    for ev in ({"rule": "low", "event": "raise"}, {"rule": "hot", "event": "raise"}, {"rule": "hot", "event": "clear"},
               {"rule": "pv", "event": "raise"}):
        ev.update({"t": now, "severity": "alarm"})
        c.publish("t/a/event", json.dumps(ev), qos=1).wait_for_publish(5)
    c.publish("t/a/live/state", json.dumps({"V": 13.1}), qos=1).wait_for_publish(5)  # live, no ts: arrival time
    out, err = mon.communicate(timeout=30)
    c.loop_stop()
    c.disconnect()
    assert mon.returncode == 0, err
    rows = {(r["gateway"], r["device"]): r for r in json.loads(out)}
    assert set(rows) == {("a", "house"), ("a", "solar"), ("a", "live"), ("b", "pump"), ("c", "z")}
    h = rows[("a", "house")]
    assert (h["soc"], h["voltage"], h["current"], h["link"], h["rssi_dbm"]) == (81.5, 25.31, -3.2, "cellular", -87)
    assert 9 <= h["last_seen"] < 20 and h["stale"] is False
    assert h["alarms"] == 2
    s = rows[("a", "solar")]
    assert s["last_seen"] is None and s["stale"] is True and s["pv_power"] == 412
    assert rows[("a", "live")]["stale"] is False and rows[("a", "live")]["last_seen"] < 5
    assert rows[("b", "pump")]["stale"] is True  # gateway offline
    z = rows[("c", "z")]
    assert z["voltage"] is None and z["soc"] is None and z["current"] is None


def test_unreachable_broker_one_line_exit_2():
    port = free_port()  # nothing listens there
    r = subprocess.run([VEGW, "monitor", "--broker", "127.0.0.1:%d" % port, "--once", "--json", "--wait", "1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "cannot connect" in r.stderr
    r = subprocess.run([VEGW, "monitor", "--broker", "nohostport:x", "--once"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_fleet_sorting_unit():
    f = Fleet("p", stale_s=100, clock=lambda: 1000.0)
    f.handle("p/g1/d/state", b'{"SOC": 50, "V": 12.5, "ts": 990}')
    f.handle("p/g2/d/state", b'{"V": 11.0, "ts": 800}')
    f.handle("p/g3/d/state", b'{"SOC": 20, "ts": 1100}')  # clock skew: clamped to 0
    f.handle("p/g4/d/state", b'\xff\xfe')
    f.handle("other/g5/d/state", b'{"SOC": 1}')
    rows = f.rows("soc")
    assert [r["gateway"] for r in rows] == ["g3", "g1", "g2"]
    assert [r["stale"] for r in rows] == [False, False, True]
    assert rows[0]["last_seen"] == 0
    assert [r["gateway"] for r in f.rows("voltage")] == ["g2", "g1", "g3"]
    assert f.bad == 1


def test_status_alarms_active_and_filter(broker):
    import paho.mqtt.client as mqtt

    host, port = broker.split(":")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect(host, int(port))
    c.loop_start()
    now = time.time()
    for gw in ("north-1", "north-2", "south-1"):
        c.publish("f/%s/bank/state" % gw, json.dumps({"V": 12.7, "SOC": 90, "ts": now}), qos=1, retain=True).wait_for_publish(5)
    c.publish("f/north-1/status", json.dumps({"link": "wifi", "rssi_dbm": -60, "alarms_active": ["low_soc", "stale:pv"]}),
              qos=1, retain=True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()
    rows, _ = monitor_json(broker, "--filter", "north-*", prefix="f", wait=1)
    assert sorted(r["gateway"] for r in rows) == ["north-1", "north-2"]
    assert {r["gateway"]: r["alarms"] for r in rows} == {"north-1": 2, "north-2": 0}


def test_tty_keys_sort_and_quit(broker):
    import os
    import pty

    run_loadgen(broker, "--prefix", "tty", "--gateways", 50, "--devices", 3, "--duration", 0)
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="100", LINES="15", TERM="xterm")
    mon = subprocess.Popen([VEGW, "monitor", "--broker", broker, "--prefix", "tty", "--refresh", "5"],
                           stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = b""

    def pump(seconds):
        nonlocal out
        import select

        end = time.time() + seconds
        while time.time() < end:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    return

    try:
        pump(1.5)
        os.write(master, b"s")  # soc -> voltage
        pump(1.0)
        os.write(master, b"n")
        pump(1.0)
        os.write(master, b"q")
        pump(1.0)
        assert mon.wait(10) == 0
    finally:
        if mon.poll() is None:
            mon.kill()
        os.close(master)
    text = out.decode("utf-8", "replace")
    assert "sort soc" in text and "sort voltage" in text
    assert "page 2/" in text
    assert "\x1b[?25h" in text  # cursor restored


def _by_key(rows):
    return {(r["gateway"], r["device"]): r for r in rows}


def test_quiet_device_is_not_stale_before_its_heartbeat():
    # a device whose values do not move re-sends its state every heartbeat
    # (300 s; 900 s on cellular): the monitor must not call it stale at 120 s
    now = 10000.0
    f = Fleet("p", clock=lambda: now)
    f.handle("p/wifi/house/state", b'{"V": 25.1, "ts": 9750}')  # 250 s ago, as the status says:
    f.handle("p/wifi/status", json.dumps({"ts": 9995, "heartbeat_s": 300, "devices": {
        "house": {"readings": 900, "age_s": 4, "stale": False}}}).encode())
    f.handle("p/lte/pump/state", b'{"V": 12.6, "ts": 9300}')  # 700 s ago, heartbeat 900
    f.handle("p/lte/status", json.dumps({"ts": 9200, "heartbeat_s": 900}).encode())
    f.handle("p/old/x/state", b'{"V": 12.6, "ts": 9500}')  # declares nothing: 2 x 300 s
    rows = _by_key(f.rows("name"))
    assert rows[("wifi", "house")]["stale"] is False and rows[("wifi", "house")]["last_seen"] == 9
    assert rows[("lte", "pump")]["stale"] is False and rows[("lte", "pump")]["heartbeat_s"] == 900
    assert rows[("old", "x")]["stale"] is False
    now = 11901.0  # pump unheard for 2601 s > 2 x 900
    rows = _by_key(f.rows("name"))
    assert rows[("lte", "pump")]["stale"] is True and rows[("old", "x")]["stale"] is True
    # an explicit --stale still rules
    f.stale_s = 60.0
    now = 10000.0
    assert _by_key(f.rows("name"))[("lte", "pump")]["stale"] is True


def test_gateway_verdict_and_devices_that_never_reported():
    now = 5000.0
    f = Fleet("p", clock=lambda: now)
    f.handle("p/gw/house/state", b'{"V": 25.1, "ts": 4900}')
    f.handle("p/gw/status", json.dumps({"ts": 4990, "heartbeat_s": 300, "devices": {
        "house": {"readings": 12, "age_s": 90, "stale": True},  # the gateway's own timeout passed
        "shunt": {"readings": 0, "age_s": None, "stale": True}}}).encode())
    rows = _by_key(f.rows("name"))
    assert rows[("gw", "house")]["stale"] is True and rows[("gw", "house")]["never_heard"] is False
    shunt = rows[("gw", "shunt")]
    assert shunt["never_heard"] is True and shunt["stale"] is True and shunt["last_seen"] is None
    # a state newer than that status: fresh again
    f.handle("p/gw/house/state", b'{"V": 25.2, "ts": 4999}')
    assert _by_key(f.rows("name"))[("gw", "house")]["stale"] is False

    class A:
        broker, prefix, sort = "b:1", "p", "name"
    text = "\n".join(render(f.rows("name"), f, A(), color=False))
    line = [ln for ln in text.splitlines() if ln.startswith("gw") and "shunt" in ln][0]
    assert "never" in line and "NEVER" in line
