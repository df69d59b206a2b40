"""`vegw logs` and `vegw plot` through the real CLI: file round trips (JSON lines,
CSV, Parquet), the MQTT request/response against a fake gateway on a real
Mosquitto, replay through `vegw alarms`, and PNGs with one panel per quantity."""
import json
import math
import pathlib
import subprocess
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VEGW = str(ROOT / ".venv" / "bin" / "vegw")
T0 = 1795824000  # 2026-11-28T00:00:00Z


def vegw(*args, timeout=60):
    return subprocess.run([VEGW] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def history(minutes=24 * 60, step=5):
    """A day of per-5-minute records: a BMV ('house') and an MPPT ('solar'), plus events."""
    out = []
    seq = 1
    for m in range(0, minutes, step):
        t = T0 + m * 60
        h = m / 60.0
        sun = max(0.0, math.sin((h - 6) / 12 * math.pi))
        soc = round(min(100.0, 55 + 4 * max(0.0, h - 7)) if h < 17 else 95 - (h - 17) * 3, 1)
        v = round(12.2 + soc / 100 * 1.2 + sun * 0.4, 2)
        out.append({"seq": seq, "t": t, "device": "house", "V": v, "V_min": round(v - 0.05, 2), "V_max": round(v + 0.04, 2),
                    "I": round(420 * sun / 13.5 - 4.2, 1), "SOC": soc, "CS": 3, "TTG": None})
        out.append({"seq": seq + 1, "t": t, "device": "solar", "V": round(v + 0.02, 2), "PPV": round(420 * sun),
                    "LOAD": True})
        seq += 2
        if m % 60 == 0:
            out.append({"seq": seq, "t": t, "event": "counters", "drops": 0})
            seq += 1
    return out


def write_jsonl(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def read_jsonl(text):
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def test_jsonl_is_replay_input_and_csv_round_trip(tmp_path):
    recs = history()
    src = tmp_path / "pulled.jsonl"
    write_jsonl(src, list(reversed(recs)))  # out of order on purpose
    r = vegw("logs", "--from-file", src, "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    lines = read_jsonl(r.stdout)
    samples = [x for x in recs if "device" in x]
    assert len(lines) == len(samples)  # event records left out of replay input
    assert [x["t"] for x in lines] == sorted(x["t"] for x in lines)
    assert all(set(x) >= {"t", "device"} and "seq" not in x for x in lines)
    assert lines[0] == {"t": T0, "device": "house", "V": samples[0]["V"], "V_min": samples[0]["V_min"],
                        "V_max": samples[0]["V_max"], "I": samples[0]["I"], "SOC": 55.0, "CS": 3, "TTG": None}
    csv_path = tmp_path / "h.csv"
    r = vegw("logs", "--from-file", src, "--out", csv_path)
    assert r.returncode == 0 and "wrote" in r.stdout and "(csv)" in r.stdout
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header[:9] == ["t", "time_utc", "gateway", "device", "seq", "V", "I", "SOC", "PPV"]
    assert csv_path.read_text().splitlines()[1].split(",")[1] == "2026-11-28T00:00:00Z"
    r2 = vegw("logs", "--from-file", csv_path, "--format", "jsonl")
    assert r2.returncode == 0
    back = read_jsonl(r2.stdout)
    for a, b in zip(lines, back):  # TTG null is lost in CSV (empty cell): everything else survives
        a = {k: v for k, v in a.items() if v is not None}
        assert a == b


def test_unknown_out_extension_refused(tmp_path):
    src = tmp_path / "pulled.jsonl"
    write_jsonl(src, history(60))
    r = vegw("logs", "--from-file", src, "--out", tmp_path / "x.xlsx")
    assert r.returncode == 2 and "unknown extension '.xlsx'" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "x.xlsx").exists()
    # an explicit --format names what is written, whatever the name
    assert vegw("logs", "--from-file", src, "--out", tmp_path / "x.txt", "--format", "jsonl").returncode == 0
    assert vegw("logs", "--from-file", src, "--out", tmp_path / "x.jsonl").returncode == 0
    assert read_jsonl((tmp_path / "x.jsonl").read_text())


def test_replay_through_alarm_rules(tmp_path):
    src = tmp_path / "pulled.jsonl"
    write_jsonl(src, history())
    out = tmp_path / "h.jsonl"
    assert vegw("logs", "--from-file", src, "--out", out).returncode == 0
    rules = tmp_path / "rules.txt"
    rules.write_text("low_soc: alarm: house.SOC < 60 for 10m clear 62\n")
    r = vegw("alarms", "replay", "--rules", rules, "--no-builtin", "--stale", "900", out)  # 5-min samples
    if r.returncode != 0 and "invalid choice" in r.stderr:
        pytest.skip("vegw alarms not available")
    assert r.returncode == 0, r.stderr
    ev = [e for e in read_jsonl(r.stdout) if e["rule"] == "low_soc"]
    assert ev and ev[0]["event"] == "raised" and ev[0]["t"] == T0 + 600


def test_parquet_types_and_round_trip(tmp_path):
    import pyarrow.parquet as pq

    src = tmp_path / "pulled.jsonl"
    write_jsonl(src, history())
    pqf = tmp_path / "h.parquet"
    r = vegw("logs", "--from-file", src, "--out", pqf, "--all")
    assert r.returncode == 0, r.stderr
    table = pq.read_table(pqf)
    types = {f.name: str(f.type) for f in table.schema}
    assert types["V"] == "double" and types["SOC"] == "double" and types["CS"] == "int64"
    assert types["LOAD"] == "bool" and types["device"] == "string" and types["time_utc"].startswith("timestamp")
    assert table.num_rows == len(history())  # --all keeps the event records
    r = vegw("logs", "--from-file", pqf, "--format", "jsonl", "--device", "solar")
    lines = read_jsonl(r.stdout)
    assert {x["device"] for x in lines} == {"solar"} and len(lines) == 288
    assert vegw("logs", "--from-file", src, "--format", "parquet").returncode == 2  # needs --out


def test_time_window_and_bad_inputs(tmp_path):
    src = tmp_path / "pulled.jsonl"
    write_jsonl(src, history())
    r = vegw("logs", "--from-file", src, "--from", "2026-11-28T06:00", "--to", str(T0 + 6 * 3600 + 600))
    ts = {x["t"] for x in read_jsonl(r.stdout)}
    assert ts == {T0 + 6 * 3600, T0 + 6 * 3600 + 300, T0 + 6 * 3600 + 600}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 1, "device": "a"}\n{"t": 2, \n')
    cases = [("logs", "--from-file", bad), ("logs", "--from-file", tmp_path / "none.jsonl"),
             ("logs", "--from-file", src, "--from", "yesterday"), ("logs", "--port", "/dev/ttyUSB0"),
             ("logs",), ("logs", "--broker", "127.0.0.1:1"), ("logs", "--from-file", src, "--broker", "x:1")]
    for c in cases:
        r = vegw(*c)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (c, r.stderr)
    assert "bad.jsonl:2" in vegw("logs", "--from-file", bad).stderr
    assert "/dev/ttyUSB0" in vegw("logs", "--port", "/dev/ttyUSB0").stderr
    binf = tmp_path / "flash.bin"
    binf.write_bytes(bytes(range(256)) * 4)
    r = vegw("logs", "--from-file", binf)
    assert r.returncode == 2 and "binary" in r.stderr and r.stderr.count("\n") == 1
    binf.write_bytes(bytes(range(256)) * 16 * 4)  # right size, no log in it
    r = vegw("logs", "--from-file", binf)
    assert r.returncode == 2 and "no flash-log records" in r.stderr and r.stderr.count("\n") == 1


# ---------------------------------------------------------------- MQTT

class FakeGateway:
    """Answers {"cmd": "logs"} like the firmware should (docs/cli.md), with
    faults: drops the first request, repeats one batch, caps batches at 37."""

    def __init__(self, broker, gw, records, drop_first=True, error=None, stream=False):
        import paho.mqtt.client as mqtt

        self.records = records
        self.gw = gw
        self.requests = []
        self.drop_first = drop_first
        self.error = error
        self.stream = stream
        host, port = broker.split(":")
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = self.on_message
        self.c.connect(host, int(port))
        self.c.subscribe("vegw/%s/cmd" % gw, qos=1)
        self.c.loop_start()
        time.sleep(0.3)

    def on_message(self, c, u, msg):
        req = json.loads(msg.payload)
        self.requests.append(req)
        if req.get("cmd") != "logs":
            return
        if self.drop_first and len(self.requests) == 1:
            return  # lost: the CLI must re-request
        if self.error == "firmware busy":  # firmware/app.py's refusal: on cmd/reply
            c.publish("vegw/%s/cmd/reply" % self.gw, json.dumps({"ok": True, "cmd": "status"}), qos=1)  # not ours
            c.publish("vegw/%s/cmd/reply" % self.gw,
                      json.dumps({"ok": False, "cmd": "logs", "error": "busy: an export is running"}), qos=1)
            return
        if self.error:
            c.publish("vegw/%s/logs" % self.gw, json.dumps({"id": req["id"], "error": self.error}), qos=1)
            return
        if self.stream:  # firmware/app.py's shape: one message per record, then done
            recs = [r for r in self.records if r["seq"] >= (req.get("from_seq") or 1)][:req["max"]]
            for r in recs:
                c.publish("vegw/%s/logs" % self.gw, json.dumps(r), qos=1)
            c.publish("vegw/%s/logs" % self.gw, json.dumps({"done": True, "count": len(recs)}), qos=1)
            return
        n = min(req["max"], 37)
        batch = [r for r in self.records if r["seq"] >= req["from_seq"]][:n]
        nxt = batch[-1]["seq"] + 1 if batch else req["from_seq"]
        more = any(r["seq"] >= nxt for r in self.records)
        reply = json.dumps({"id": req["id"], "records": batch, "next_seq": nxt, "more": more})
        c.publish("vegw/%s/logs" % self.gw, reply, qos=1)
        if len(self.requests) == 3:
            c.publish("vegw/%s/logs" % self.gw, reply, qos=1)  # duplicate delivery

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_mqtt_request_response(broker, tmp_path):
    recs = history(minutes=12 * 60)
    gw = FakeGateway(broker, "site-1", recs)
    try:
        out = tmp_path / "site.jsonl"
        r = vegw("logs", "--broker", broker, "--gateway", "site-1", "--from-seq", "1", "--batch", "50",
                 "--timeout", "1", "--out", out)
        assert r.returncode == 0, r.stderr
        lines = read_jsonl(out.read_text())
        assert len(lines) == sum(1 for x in recs if "device" in x)
        assert len({(x["t"], x["device"]) for x in lines}) == len(lines)  # no duplicates
        reqs = [q for q in gw.requests if q.get("cmd") == "logs"]
        assert reqs[0]["from_seq"] == 1 and reqs[0]["max"] == 50
        assert reqs[1]["from_seq"] == reqs[0]["from_seq"]  # a lost request is repeated
        assert reqs[-1]["from_seq"] > reqs[2]["from_seq"]
        # the same records as CSV carry the gateway and seq
        csvf = tmp_path / "site.csv"
        gw.drop_first = False
        assert vegw("logs", "--broker", broker, "--gateway", "site-1", "--out", csvf, "--all").returncode == 0
        rows = csvf.read_text().splitlines()
        assert len(rows) == 1 + len(recs) and rows[1].split(",")[2] == "site-1"
    finally:
        gw.close()


def test_mqtt_errors(broker):
    gw = FakeGateway(broker, "site-2", [], drop_first=False, error="log busy")
    try:
        r = vegw("logs", "--broker", broker, "--gateway", "site-2", "--timeout", "2")
        assert r.returncode == 2 and r.stderr.strip() == "vegw logs: gateway site-2: log busy"
    finally:
        gw.close()
    gw = FakeGateway(broker, "site-3", [], drop_first=False, error="firmware busy")
    try:
        t0 = time.monotonic()
        r = vegw("logs", "--broker", broker, "--gateway", "site-3", "--timeout", "20")
        assert r.returncode == 2 and r.stderr.strip() == "vegw logs: gateway site-3: busy: an export is running"
        assert time.monotonic() - t0 < 15  # said at once, not after --timeout
    finally:
        gw.close()
    t0 = time.monotonic()
    r = vegw("logs", "--broker", broker, "--gateway", "nobody", "--timeout", "0.5", "--retries", "1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no reply from gateway nobody" in r.stderr
    assert time.monotonic() - t0 < 15


# ---------------------------------------------------------------- plot

def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plot_panels_per_quantity(tmp_path):
    src = tmp_path / "h.jsonl"
    write_jsonl(src, history())
    png = tmp_path / "all.png"
    r = vegw("plot", src, "--out", png)
    assert r.returncode == 0, r.stderr
    assert "V, I, SOC, PPV" in r.stdout
    w4, h4 = png_size(png)
    # only the MPPT in a 2-hour window: voltage and PV power, no current or SoC panel
    csvf = tmp_path / "h.csv"
    assert vegw("logs", "--from-file", src, "--out", csvf).returncode == 0
    png2 = tmp_path / "solar.png"
    r = vegw("plot", csvf, "--out", png2, "--device", "solar", "--from", "2026-11-28T10:00", "--to", "2026-11-28T12:00")
    assert r.returncode == 0, r.stderr
    assert "wrote %s: V, PPV; 25 samples, 1 device" % png2 in r.stdout
    w2, h2 = png_size(png2)
    assert w2 == w4 and h2 < h4 * 0.7


def test_plot_errors(tmp_path):
    src = tmp_path / "h.jsonl"
    write_jsonl(src, history())
    only_events = tmp_path / "ev.jsonl"
    write_jsonl(only_events, [{"t": T0, "device": "x", "CS": 3}])
    for args in ((src, "--out", tmp_path / "x.png", "--from", "2030-01-01"),
                 (only_events, "--out", tmp_path / "x.png"),
                 (tmp_path / "missing.jsonl", "--out", tmp_path / "x.png"),
                 (src, "--out", tmp_path / "nodir" / "x.png"),
                 (src, "--out", tmp_path / "x.png", "--from", "2026-11-28T12:00", "--to", "2026-11-28T11:00")):
        r = vegw("plot", *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    assert not (tmp_path / "x.png").exists()


def firmware_records():
    """Records as the firmware logs them (gateway.py _log_window) and app.py streams them."""
    out = []
    seq = 100
    for m in range(30):
        t0 = T0 + m * 60
        out.append({"seq": seq, "type": 1, "device": "house", "t0": t0, "ts": t0 + 60,
                    "values": {"V": [25.1, 25.2 + m / 100, 25.4], "I": [-3.0, -2.5, -2.0], "SOC": 80 - m / 10, "CS": 3}})
        seq += 1
        if m == 10:
            out.append({"seq": seq, "type": 2, "t": t0 + 30, "rule": "low", "event": "raised", "severity": "alarm",
                        "ts": t0 + 30})
            seq += 1
    return out


def test_mqtt_stream_shape_of_the_firmware(broker, tmp_path):
    recs = firmware_records()
    gw = FakeGateway(broker, "site-3", recs, drop_first=False, stream=True)
    try:
        out = tmp_path / "fw.jsonl"
        r = vegw("logs", "--broker", broker, "--gateway", "site-3", "--batch", "8", "--timeout", "2", "--out", out)
        assert r.returncode == 0, r.stderr
        lines = read_jsonl(out.read_text())
        assert len(lines) == 30
        assert lines[0] == {"t": T0 + 60, "device": "house", "V": 25.2, "V_min": 25.1, "V_max": 25.4,
                            "I": -2.5, "I_min": -3.0, "I_max": -2.0, "SOC": 80, "CS": 3}
        reqs = [q for q in gw.requests if q.get("cmd") == "logs"]
        assert reqs[0]["from_seq"] == 0 and reqs[1]["from_seq"] == 108  # continues after a full batch
        csvf = tmp_path / "fw.csv"
        r = vegw("logs", "--broker", broker, "--gateway", "site-3", "--timeout", "2", "--out", csvf, "--all")
        assert r.returncode == 0, r.stderr
        rows = csvf.read_text().splitlines()
        assert len(rows) == 1 + 31 and any(",low," in ln or "raised" in ln for ln in rows)
        png = tmp_path / "fw.png"
        r = vegw("plot", "--broker", broker, "--gateway", "site-3", "--timeout", "2", "--out", png)
        assert r.returncode == 0 and "V, I, SOC" in r.stdout, r.stderr
    finally:
        gw.close()


# ---------------------------------------------------------------- flash image and USB

def make_flash(path, minutes=300):
    """A flash-log image as the firmware writes it (gateway.append_log: JSON payloads)."""
    import sys

    sys.path[:0] = [str(ROOT / "firmware" / "lib"), str(ROOT / "firmware")]
    import flashlog
    from drivers import nor_sim

    bd = nor_sim.NorSim(16, 4096, path=str(path))
    log = flashlog.FlashLog(bd)
    for m in range(minutes):
        rec = {"device": "house", "t0": T0 + m * 60, "ts": T0 + 60 + m * 60,
               "values": {"V": [25.1, round(25.2 + m / 1000, 3), 25.4], "SOC": 80}}
        assert log.append(1, json.dumps(rec).encode())
        if m == 5:
            log.append(2, json.dumps({"t": T0 + 330, "rule": "low", "event": "raised", "severity": "alarm",
                                      "ts": T0 + 330}).encode())
    log.flush()
    bd.close()


def test_flash_image_from_file_is_read_from_a_copy(tmp_path):
    img = tmp_path / "flash.bin"
    make_flash(img)
    before = img.read_bytes()
    r = vegw("logs", "--from-file", img, "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    lines = read_jsonl(r.stdout)
    assert len(lines) == 300 and lines[0] == {"t": T0 + 60, "device": "house", "V": 25.2, "V_min": 25.1,
                                              "V_max": 25.4, "SOC": 80}
    assert img.read_bytes() == before  # opening a log writes a boot marker: never into the user's file


def make_binary_flash(path, minutes=100):
    """A flash-log image of lib/records.py minute frames (key every 30 min)."""
    import sys

    sys.path[:0] = [str(ROOT / "firmware" / "lib"), str(ROOT / "firmware")]
    import flashlog
    import records
    import records_dec
    from drivers import nor_sim

    bd = nor_sim.NorSim(16, 4096, path=str(path))
    log = flashlog.FlashLog(bd)
    enc = records.MinuteEncoder([("house", ["V", "SOC"]), ("solar", ["PPV"])], key_every=30, per_record=5)
    for m in range(minutes):
        rows = [[(2510, 2520 + m, 2530 + m), 800 - m], [(0, 100 + m, 200 + m)] if m % 2 == 0 else None]
        for rt, p in enc.add(T0 + m * 60, rows):
            assert log.append(rt, bytes(p))
    last = enc.take()
    if last:
        log.append(last[0], bytes(last[1]))
    log.append(records.T_EVENT, bytes(records_dec.encode_event(T0 + 90, "house", "low_soc", 1)))
    log.flush()
    bd.close()


def check_binary_export(lines, first_minute=0):
    house = [x for x in lines if x["device"] == "house"]
    solar = [x for x in lines if x["device"] == "solar"]
    assert len(house) == 100 - first_minute and len(solar) == (100 - first_minute + 1) // 2
    m = first_minute
    assert house[0] == {"t": T0 + m * 60, "device": "house", "V_min": 25.1, "V": round(25.2 + m / 100, 2),
                        "V_max": round(25.3 + m / 100, 2), "SOC": round(80.0 - m / 10, 1)}
    assert house[-1]["V"] == 26.19 and solar[-1]["PPV"] == 198


def test_flash_image_of_binary_minute_frames(tmp_path):
    img = tmp_path / "bin.img"
    make_binary_flash(img)
    r = vegw("logs", "--from-file", img, "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    check_binary_export(read_jsonl(r.stdout))
    r = vegw("logs", "--from-file", img, "--format", "csv", "--all")
    assert sum(1 for ln in r.stdout.splitlines() if "low_soc" in ln) == 1


def flash_records(img):
    import flashlog
    from drivers import nor_sim

    bd = nor_sim.NorSim(16, 4096, path=str(img), strict=False)
    log = flashlog.FlashLog(bd)
    recs = [(s, t, bytes(p)) for s, t, p in log.read_from(log.oldest_seq() or 1) if t]
    bd.close()
    return recs


def test_log_messages_of_both_uplinks_from_file(tmp_path):
    """Captured <prefix>/<gw>/log messages decode like the flash they came
    from: the thin uplink's binary batches (a raw payload, or hex lines as
    `mosquitto_sub -F %x` prints them, out of order and repeated) and the full
    uplink's {"seq","type","hex"} JSON lines."""
    import json as _json

    import logpack

    img = tmp_path / "bin.img"
    make_binary_flash(img)
    recs = flash_records(tmp_path / "bin.img")
    batches = [logpack.pack(recs[i:i + 3]) for i in range(0, len(recs), 3)]
    hexfile = tmp_path / "thin.hex"
    hexfile.write_text("\n".join(b.hex() for b in batches[1:] + batches[:2]) + "\n")  # reordered, repeated
    r = vegw("logs", "--from-file", hexfile, "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    check_binary_export(read_jsonl(r.stdout))
    full = tmp_path / "full.jsonl"
    full.write_text("".join(_json.dumps({"seq": s, "type": t, "hex": p.hex()}) + "\n" for s, t, p in recs))
    r = vegw("logs", "--from-file", full, "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    check_binary_export(read_jsonl(r.stdout))
    one = tmp_path / "one.bin"  # a single raw batch: the first three blocks (a key frame first)
    one.write_bytes(batches[0])
    r = vegw("logs", "--from-file", one, "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    assert len([x for x in read_jsonl(r.stdout) if x["device"] == "house"]) == 15


def standin_root(tmp_path, with_log=True, binary=False):
    root = tmp_path / "board"
    (root / "lib").mkdir(parents=True)
    (root / "drivers").mkdir()
    if with_log:
        for m in ("flashlog.py", "blockdev.py"):
            (root / "lib" / m).write_bytes((ROOT / "firmware" / "lib" / m).read_bytes())
        (root / "drivers" / "nor_sim.py").write_bytes((ROOT / "firmware" / "drivers" / "nor_sim.py").read_bytes())
        (root / "drivers" / "__init__.py").write_text("")
        (root / "drivers" / "flash_esp32.py").write_text(
            "from drivers import nor_sim\n\ndef open_default():\n    return nor_sim.NorSim(16, 4096, path='/flash.img')\n")
        (make_binary_flash if binary else make_flash)(root / "flash.img")
    return root


def test_usb_port_against_standin_board(tmp_path):
    import sys

    standin = ROOT / "tests" / "standin"
    if not (standin / "board.py").exists():
        pytest.skip("no stand-in board")
    sys.path.insert(0, str(standin))
    from board import StandinBoard

    with StandinBoard(standin_root(tmp_path)) as b:
        out = tmp_path / "usb.csv"
        r = vegw("logs", "--port", b.port, "--batch", "70", "--out", out, "--all", timeout=120)
        assert r.returncode == 0, r.stderr
        rows = out.read_text().splitlines()
        assert len(rows) == 1 + 301  # 300 samples + 1 event, across 5 raw-REPL batches
        assert rows[1].split(",")[3:5] == ["house", "2"]
        r = vegw("logs", "--port", b.port, "--from-seq", "290", timeout=120)
        assert r.returncode == 0 and len(read_jsonl(r.stdout)) == 302 - 290 + 1  # seq 1 boot marker, 8 event
    with StandinBoard(standin_root(tmp_path / "binary", binary=True)) as b:
        r = vegw("logs", "--port", b.port, "--batch", "7", timeout=120)
        assert r.returncode == 0, r.stderr
        check_binary_export(read_jsonl(r.stdout))
        # from a seq in the middle: the board starts at the key frame before it
        r = vegw("logs", "--port", b.port, "--from-seq", "12", timeout=120)
        assert r.returncode == 0, r.stderr
        lines = read_jsonl(r.stdout)
        assert lines and lines[0]["t"] > T0 + 30 * 60 and lines[-1]["V"] == 26.19
        png = tmp_path / "usb.png"
        r = vegw("plot", "--port", b.port, "--out", png, timeout=120)
        assert r.returncode == 0 and "V, SOC, PPV; 150 samples, 2 devices" in r.stdout, r.stderr
    with StandinBoard(standin_root(tmp_path / "bare", with_log=False)) as b:
        r = vegw("logs", "--port", b.port, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no flash log on this firmware" in r.stderr


def test_mqtt_binary_frames_as_hex(broker, tmp_path):
    import sys

    img = tmp_path / "bin.img"
    make_binary_flash(img)
    sys.path[:0] = [str(ROOT / "firmware" / "lib"), str(ROOT / "firmware")]
    import flashlog
    from drivers import nor_sim

    log = flashlog.FlashLog(nor_sim.NorSim(16, 4096, path=str(img)))
    recs = [{"seq": s_, "type": t, "hex": bytes(p).hex()} for s_, t, p in log.read_from(log.oldest_seq()) if t]
    gw = FakeGateway(broker, "site-4", recs, drop_first=False, stream=True)
    try:
        r = vegw("logs", "--broker", broker, "--gateway", "site-4", "--timeout", "2", "--batch", "9")
        assert r.returncode == 0, r.stderr
        check_binary_export(read_jsonl(r.stdout))
    finally:
        gw.close()


def _site_records():
    """A day of history plus an inverter and an Orion DC-DC beside the BMV and MPPT."""
    recs = history()
    for m in range(0, 24 * 60, 5):
        t = T0 + m * 60
        recs.append({"t": t, "device": "inverter", "V": 12.9 + (m % 50) / 1000, "AC_OUT_V": 230.0})
        recs.append({"t": t, "device": "orion", "V": 13.6, "I": 12.3, "DC_IN_V": 12.8})
    recs.sort(key=lambda r: r["t"])
    return [r for r in recs if "device" in r and r["device"] != "x"]


def test_plot_panels_per_role_ticks_legend_and_local_time(tmp_path, monkeypatch):
    import os
    import time as _time

    from vegw import cmd_plot

    monkeypatch.setenv("TZ", "Europe/Berlin")
    _time.tzset()
    try:
        recs = [r for r in _site_records() if "event" not in r]
        panels = cmd_plot.plot(recs, str(tmp_path / "a.png"))
        # the BMV's, the MPPT's, the Orion's and the inverter's voltages on their own axes
        assert [(f, role) for f, role, _ in panels if f == "V"] == [
            ("V", "battery monitor"), ("V", "solar charger"), ("V", "DC-DC charger"), ("V", "inverter")]
        assert ("I", "DC-DC charger") in [(f, role) for f, role, _ in panels]
        for field, role, labels in panels:
            assert len(labels) >= 3 and len(set(labels)) == len(labels), (field, role, labels)
            assert not any(lb.startswith("-0") and float(lb) == 0 for lb in labels), labels
        # flat and zero data: the night, PV at 0 and a flat SoC
        night = [r for r in recs if r["t"] < T0 + 4 * 3600 and r["device"] in ("house", "solar")]
        panels = cmd_plot.plot(night, str(tmp_path / "n.png"))
        got = dict(((f, role), labels) for f, role, labels in panels)
        assert got[("PPV", "solar charger")][0] == "0" and "-0" not in got[("PPV", "solar charger")]
        for labels in got.values():
            assert len(set(labels)) == len(labels) >= 3, labels
    finally:
        monkeypatch.delenv("TZ")
        _time.tzset()
    # local time by default, the zone named; --utc on request
    src = tmp_path / "h.jsonl"
    write_jsonl(src, recs)
    env = dict(os.environ, TZ="Europe/Berlin")
    import subprocess as sp

    r = sp.run([VEGW, "plot", str(src), "--out", str(tmp_path / "l.png")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert b"time (CET, UTC+01:00)" in _axis_labels(tmp_path / "l.png", src, env, utc=False)
    assert b"time (UTC)" in _axis_labels(tmp_path / "u.png", src, env, utc=True)


def _axis_labels(png, src, env, utc):
    """The x label the CLI drew, read back from an SVG rendering of the same plot."""
    import subprocess as sp

    svg = png.with_suffix(".svg")
    args = [VEGW, "plot", str(src), "--out", str(svg)] + (["--utc"] if utc else [])
    r = sp.run(args, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return svg.read_bytes()


def test_plot_legend_outside_the_data(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vegw import cmd_plot

    seen = []
    real_savefig = plt.Figure.savefig

    def spy(fig, *a, **kw):
        real_savefig(fig, *a, **kw)
        r = fig.canvas.get_renderer()
        for ax in fig.axes:
            leg = ax.get_legend()
            seen.append((leg.get_window_extent(r), ax.get_window_extent(r)))

    plt.Figure.savefig = spy
    try:
        cmd_plot.plot(_site_records(), str(tmp_path / "a.png"))
    finally:
        plt.Figure.savefig = real_savefig
    assert seen
    for leg, ax in seen:
        assert leg.x0 >= ax.x1, (leg, ax)  # right of the data, never over the lines


def test_device_program_takes_ints_only():
    # the program `vegw logs --port` runs on the board is a file of its own
    # (vegw/device/logs_dump.py) that compiles; its parameters are prepended
    # as int assignments, so nothing from the command line becomes code there
    from vegw.device import program

    code = program("logs_dump", _v_from=12, _v_first=1, _v_max=70)
    assert code.startswith("_v_first = 1\n_v_from = 12\n_v_max = 70\n")
    compile(code, "logs_dump.py", "exec")
    for bad in ("1; import os", 1.5, True, None):
        with pytest.raises(TypeError):
            program("logs_dump", _v_from=bad, _v_first=1, _v_max=70)
