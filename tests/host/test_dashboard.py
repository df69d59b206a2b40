"""`vegw dashboard` without a browser: the site model (vegw/fleet.py), alert
rate limits, and the server against a real Mosquitto with simulated
gateways (vegw/dashboard/simfleet.py): API, live event stream, history over
the `logs` command, alert hooks to a local receiver, login, refusals.
The browser run is test_dashboard_browser.py."""
import asyncio
import base64
import http.client
import http.server
import json
import pathlib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from hypothesis import given, settings, strategies as st

ROOT = pathlib.Path(__file__).resolve().parents[2]
VEGW = str(ROOT / ".venv" / "bin" / "vegw")

from vegw.broker import free_port  # noqa: E402
from vegw.fleet import Fleet  # noqa: E402

aiohttp = pytest.importorskip("aiohttp", reason="vegw[dashboard] (aiohttp) not installed: make deps")

from vegw.dashboard import simfleet  # noqa: E402
from vegw.dashboard.alerts import Alerts  # noqa: E402


# ------------------------------------------------------------------ the model

def _site(f, gw, now=None):
    return f.sites([gw], now=now)[0]


def test_site_row_folds_devices_and_says_its_state():
    now = 100000.0
    f = Fleet("p", clock=lambda: now)
    f.handle("p/s1/availability", b"online", retained=True)
    f.handle("p/s1/status", json.dumps({"ts": now, "heartbeat_s": 300, "link": "cellular", "rssi_dbm": -91,
                                        "fw": "1.2", "alarms_active": []}).encode(), retained=True)
    f.handle("p/s1/bmv/state", json.dumps({"V": 25.31, "I": -3.2, "SOC": 81.5, "ts": now - 5}).encode())
    f.handle("p/s1/shunt2/state", json.dumps({"V": 12.6, "I": 1.0, "SOC": 40.0, "ts": now - 5}).encode())
    f.handle("p/s1/mppt/state", json.dumps({"V": 25.3, "PPV": 412, "IL": 2.0, "H20": 1.25, "ts": now - 3}).encode())
    f.handle("p/s1/mppt2/state", json.dumps({"V": 25.3, "PPV": 100, "pv_kwh_today": 0.5, "H20": 9.0,
                                             "ts": now - 3}).encode())
    f.handle("p/s1/inv/state", json.dumps({"V": 25.3, "AC_OUT_S": 300, "ts": now - 3}).encode())
    s = _site(f, "s1")
    # the weakest bank speaks for the site; PV and yield add up (pv_kwh_today before H20); load = V*IL + AC VA
    assert (s["soc"], s["v"], s["i"]) == (40.0, 12.6, 1.0)
    assert s["pv_w"] == 512 and s["pv_kwh"] == pytest.approx(1.75)
    assert s["load_w"] == pytest.approx(25.3 * 2.0 + 300, abs=0.05)
    assert (s["link"], s["rssi"], s["fw"], s["ndev"], s["state"]) == ("cellular", -91, "1.2", 5, "ok")
    assert s["seen"] == now  # the status is the newest thing heard

    f.handle("p/s1/event", json.dumps({"seq": 7, "t": now, "rule": "low_soc", "event": "raised",
                                       "severity": "warning"}).encode())
    assert _site(f, "s1")["state"] == "warning"
    f.handle("p/s1/event", json.dumps({"seq": 8, "t": now + 1, "rule": "low_bank", "event": "raised",
                                       "severity": "alarm"}).encode())
    s = _site(f, "s1")
    assert s["state"] == "alarm" and [a[:2] for a in s["alarms"]] == [["low_bank", "alarm"], ["low_soc", "warning"]]
    f.handle("p/s1/availability", b"offline")
    assert _site(f, "s1")["state"] == "offline"
    f.handle("p/s1/availability", b"online")
    for seq, rule in ((9, "low_bank"), (10, "low_soc")):
        f.handle("p/s1/event", json.dumps({"seq": seq, "t": now + 2, "rule": rule, "event": "cleared"}).encode())
    assert _site(f, "s1")["state"] == "ok"
    # twice the declared heartbeat without a word: stale, though online
    now += 700
    s = _site(f, "s1")
    assert s["state"] == "stale" and s["nstale"] == 5


def test_alarm_history_raise_clear_repeats_and_late_replays():
    now = 5000.0
    f = Fleet("p", clock=lambda: now)

    def ev(seq, t, event, rule="low"):
        f.handle("p/g/event", json.dumps({"seq": seq, "t": t, "rule": rule, "event": event,
                                          "severity": "alarm"}).encode())

    ev(1, 1000, "raised")
    ev(1, 1000, "raised")  # a QoS 1 repeat
    ev(2, 1300, "cleared")
    ev(3, 2000, "raised")
    ev(4, 2500, "acknowledged")
    d = f.site_detail("g")
    assert d["history"] == [["low", "alarm", 1000, 1300], ["low", "alarm", 2000, None]]
    assert d["site"]["alarms"] == [["low", "alarm", 2000, True]]
    ev(5, 1500, "cleared", rule="low")  # replayed late, older than the raise at 2000: does not clear it
    assert f.site_detail("g")["site"]["state"] == "alarm"
    # raise/clear times from before we listened, read back from the gateway's log
    f.merge_alarm_history("g", [{"t": 100, "rule": "hot", "event": "raised", "severity": "warning"},
                                {"t": 200, "rule": "hot", "event": "cleared"},
                                {"t": 1000, "rule": "low", "event": "raised"}])  # known already
    hist = f.site_detail("g")["history"]
    assert hist[0] == ["hot", "warning", 100, 200] and len(hist) == 4
    assert sum(1 for h in hist if h[:3] == ["low", "alarm", 1000]) == 1


def test_transitions_only_for_live_news_and_status_delta():
    got = []
    f = Fleet("p", clock=lambda: 10.0, on_transition=got.append)
    f.handle("p/a/availability", b"offline", retained=True)  # the past, replayed at subscribe
    f.handle("p/b/availability", b"online", retained=True)
    f.handle("p/a/event", b'{"seq":1,"t":5,"rule":"x","event":"raised"}', retained=True)
    assert got == []
    f.handle("p/b/availability", b"offline")
    f.handle("p/b/availability", b"offline")  # no change, no news
    f.handle("p/b/availability", b"online")
    f.handle("p/b/event", b'{"seq":2,"t":6,"rule":"pump","event":"raised","severity":"warning"}')
    assert [(a["kind"], a["gateway"], a.get("rule")) for a in got] == [
        ("offline", "b", None), ("online", "b", None), ("alarm_raised", "b", "pump")]
    # thin uplink: a status delta changes only the keys it carries
    f.handle("p/b/status", b'{"link":"wifi","rssi_dbm":-60,"fw":"1"}', retained=True)
    f.handle("p/b/status/delta", b'{"rssi_dbm":-75}')
    s = _site(f, "b")
    assert (s["link"], s["rssi"], s["fw"]) == ("wifi", -75, "1")
    for bad in (b"\xff", b"[]", b"{", b"null"):
        f.handle("p/b/status", bad)
        f.handle("p/b/event", bad)
    f.handle("p/b", b"x")
    assert f.bad == 8 and _site(f, "b")["rssi"] == -75


_json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


def test_bad_payloads_never_raise_and_sites_still_build():
    keys = st.sampled_from(["SOC", "V", "I", "PPV", "ts", "seq", "devices", "alarms_active", "heartbeat_s", "link",
                            "rssi_dbm", "rule", "event", "severity", "t", "age_s", "stale", "IL", "H20",
                            "AC_OUT_S"])
    payloads = st.one_of(st.binary(max_size=40), st.dictionaries(keys, _json_values, max_size=6).map(
        lambda d: json.dumps(d, allow_nan=True).encode()))
    topics = st.sampled_from(["p/g/d/state", "p/g/status", "p/g/status/delta", "p/g/availability", "p/g/event",
                              "p/g", "p//state", "p/g/d/x/state", "q/g/d/state"])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(topics, payloads, st.booleans()), max_size=8))
    def run(msgs):
        f = Fleet("p", clock=lambda: 1000.0)
        for topic, payload, retained in msgs:
            f.handle(topic, payload, retained)
        for row in f.sites():
            json.dumps(row)  # what the server sends
            assert row["state"] in ("offline", "alarm", "stale", "warning", "ok")
        for gw in f.site_ids():
            json.dumps(f.site_detail(gw))
        f.rows("soc")

    run()


# ------------------------------------------------------------------ alert limits

class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_alert_rate_limit_flaps_and_summary():
    clock = _Clock()
    sent = []

    async def post(url, body, headers):
        sent.append((url, body, headers))
        return 200

    al = Alerts(["http://hook/x?token=s3cret"], ["http://ntfy/topic"], post=post, per_minute=5, min_gap_s=300,
                clock=clock, public_url="http://noc:8080/")
    for g in range(12):  # a broker restart: 12 gateways offline at once
        al.offer({"kind": "offline", "gateway": "gw%d" % g, "t": 1000})
    assert al.counters["held_back"] == 7 and len(al.queue) == 5
    asyncio.run(al.deliver())
    assert len(sent) == 10  # 5 alerts x (webhook + ntfy)
    js = json.loads(sent[0][1])
    assert js["kind"] == "offline" and js["gateway"] == "gw0" and js["url"] == "http://noc:8080/site/gw0"
    nt = sent[1]
    assert nt[0] == "http://ntfy/topic" and nt[2]["Title"] == "gw0 is offline" and nt[2]["Priority"] == "high"
    assert nt[2]["Click"] == "http://noc:8080/site/gw0" and nt[1].startswith(b"gw0 is offline at ")
    # the bucket refills: one summary of what was held back, then news again
    clock.t += 60
    al.tick()
    asyncio.run(al.deliver())
    summary = json.loads(sent[10][1])
    assert summary["kind"] == "summary" and summary["held_back"] == 7
    assert al.offer({"kind": "online", "gateway": "gw0", "t": 1060})
    # a flapping alarm: raise, clear, raise again inside the gap -> the second raise is held
    assert al.offer({"kind": "alarm_raised", "gateway": "gw1", "rule": "low", "severity": "alarm", "t": 1})
    assert al.offer({"kind": "alarm_cleared", "gateway": "gw1", "rule": "low", "severity": "alarm", "t": 2})
    assert not al.offer({"kind": "alarm_raised", "gateway": "gw1", "rule": "low", "severity": "alarm", "t": 3})
    # below the severity asked for: never offered
    assert not al.offer({"kind": "alarm_raised", "gateway": "gw1", "rule": "i", "severity": "info", "t": 3})
    # a failing hook is counted and logged without its token
    lines = []

    async def broken(url, body, headers):
        raise OSError("refused")

    al2 = Alerts(["http://hook.example/x?token=s3cret"], post=broken, log=lines.append)
    al2.offer({"kind": "offline", "gateway": "g", "t": 1})
    asyncio.run(al2.deliver())
    assert al2.counters["failed"] == 1 and "hook.example" in lines[0] and "s3cret" not in lines[0]


# ------------------------------------------------------------------ the server, end to end

class _Receiver:
    """A webhook/ntfy endpoint on loopback that records what it gets."""

    def __init__(self):
        self.got = []
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                rec.got.append((self.path, dict(self.headers), self.rfile.read(n)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait(self, pred, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            hits = [g for g in self.got if pred(g)]
            if hits:
                return hits
            time.sleep(0.1)
        raise AssertionError("receiver got %r" % self.got)


def start_dashboard(broker, *extra):
    port = free_port()
    p = subprocess.Popen([VEGW, "dashboard", "--broker", broker, "--listen", "127.0.0.1:%d" % port] + list(extra),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert "vegw dashboard: http://127.0.0.1:%d/" % port in line, (line, p.stderr.read() if p.poll() else "")
    return p, "http://127.0.0.1:%d" % port


def stop(p):
    p.terminate()
    try:
        out, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    assert p.returncode == 0, err
    assert "Traceback" not in err, err


def get(url, auth=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.headers, r.read()


def get_json(url):
    return json.loads(get(url)[2])


def wait_for(pred, timeout=15, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture(scope="module")
def served(broker):
    """12 simulated gateways (2 days of log each), a dashboard with alert hooks."""
    sim = simfleet.SimFleet(broker, 12, prefix="dash", history_minutes=2 * 1440).start()
    rx = _Receiver()
    hook = "http://127.0.0.1:%d" % rx.port
    p, url = start_dashboard(broker, "--prefix", "dash", "--webhook", hook + "/hook?token=t0ken",
                             "--ntfy", hook + "/vegw-noc", "--history-timeout", "1", "--public-url",
                             "http://noc.example:8080")
    try:
        wait_for(lambda: get_json(url + "/api/stats")["gateways"] == 12, what="12 gateways")
        yield sim, rx, url
    finally:
        stop(p)
        sim.stop()


def test_api_sites_match_what_gateways_sent(served):
    sim, rx, url = served
    snap = wait_for(lambda: (lambda s: s if len(s["rows"]) == 12 else None)(get_json(url + "/api/sites")),
                    what="12 rows")
    rows = {r["id"]: r for r in snap["rows"]}
    for g in (0, 5, 11):
        r = rows[simfleet.gw_name(g)]
        seen_states = [simfleet.states(g, t) for t in range(int(r["seen"]) - 10, int(r["seen"]) + 2)]
        assert any(r["soc"] == s["bmv"]["SOC"] and r["v"] == s["bmv"]["V"] and r["pv_w"] == s["mppt"]["PPV"]
                   for s in seen_states), r
        assert r["link"] == ("cellular" if g % 4 == 3 else "wifi") and r["state"] == "ok" and r["ndev"] == 3
    st, headers, body = get(url + "/")
    assert st == 200 and b'id="boot"' in body and b"site0005" in body
    assert "script-src" not in headers["Content-Security-Policy"] and "default-src 'self'" in \
        headers["Content-Security-Policy"]  # no inline script allowed anywhere
    for asset in ("fleet.js", "site.js", "chart.js", "common.js", "dashboard.css"):
        assert get(url + "/static/" + asset)[0] == 200
    st, _, body = get(url + "/site/site0003")
    assert st == 200 and b"site0003" in body
    with pytest.raises(urllib.error.HTTPError) as e:
        get(url + "/site/nosuch")
    assert e.value.code == 404
    # read-only: nothing but GET
    req = urllib.request.Request(url + "/api/sites", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


def _sse(url, path):
    """(connection, response) of an event stream."""
    host, port = url[7:].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=20)
    c.request("GET", path)
    r = c.getresponse()
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    return c, r


def _next_rows(r, pred, timeout=15):
    """Read events until one carries a row with pred(row)."""
    end = time.time() + timeout
    data = None
    while time.time() < end:
        line = r.readline().decode()
        if line.startswith("data: "):
            data = json.loads(line[6:])
            for row in data.get("rows", ()):
                if pred(row):
                    return row
    raise AssertionError("no such row on the stream; last data %r" % data)


def test_live_stream_offline_alarm_and_alert_hooks(served):
    sim, rx, url = served
    seq = get_json(url + "/api/sites")["seq"]
    c, r = _sse(url, "/events?since=%d" % seq)
    try:
        sim.go_offline(2)
        row = _next_rows(r, lambda x: x["id"] == "site0002" and x["state"] == "offline")
        assert row["avail"] == "offline" and row["avail_since"] is not None
        sim.alarm(7, "low_bank", "alarm")
        row = _next_rows(r, lambda x: x["id"] == "site0007" and x["alarms"])
        assert row["state"] == "alarm" and row["alarms"][0][:2] == ["low_bank", "alarm"]
    finally:
        c.close()
    hooks = rx.wait(lambda g: g[0].startswith("/hook") and b'"offline"' in g[2])
    js = json.loads(hooks[0][2])
    assert js["gateway"] == "site0002" and js["url"] == "http://noc.example:8080/site/site0002"
    nt = rx.wait(lambda g: g[0] == "/vegw-noc" and b"low_bank" in g[2])
    assert nt[0][1]["Title"] == "site0007: alarm low_bank raised" and nt[0][1]["Priority"] == "high"
    sim.come_back(2)
    rx.wait(lambda g: g[0].startswith("/hook") and b'"online"' in g[2])
    sim.alarm(7, "low_bank", "alarm", raised=False)
    rx.wait(lambda g: g[0].startswith("/hook") and b'"alarm_cleared"' in g[2])
    d = wait_for(lambda: (lambda d: d if not d["site"]["alarms"] else None)(get_json(url + "/api/site/site0007")),
                 what="alarm cleared")
    (h,) = [h for h in d["history"] if h[0] == "low_bank"]
    assert h[2] is not None and h[3] is not None and h[3] >= h[2]  # raised and cleared times
    # a stream opened later with an old seq gets what changed since, nothing else
    c, r = _sse(url, "/events?since=%d" % seq)
    try:
        line = ""
        while not line.startswith("data: "):
            line = r.readline().decode()
        ids = {x["id"] for x in json.loads(line[6:])["rows"]}
        assert {"site0002", "site0007"} <= ids
    finally:
        c.close()
    # ... and one opened with the latest seq gets nothing old
    seq = get_json(url + "/api/sites")["seq"]
    c, r = _sse(url, "/events?since=%d" % seq)
    try:
        line = ""
        while not line.startswith("data: "):
            line = r.readline().decode()
        assert json.loads(line[6:])["rows"] == []
    finally:
        c.close()


def test_history_from_the_gateways_log_cached(served):
    sim, rx, url = served
    t0 = time.time()
    h = get_json(url + "/api/site/site0004/history?span=day")
    assert h["error"] is None and h["records"] > 500
    assert h["fields"]["V"] == {"unit": "V", "decimals": 2} and h["fields"]["SOC"]["decimals"] == 1
    bmv = h["devices"]["bmv"]
    assert len(bmv["t"]) > 600 and h["from"] <= bmv["t"][0] and bmv["t"][-1] <= h["to"]
    # the values are the simulated day's, through the firmware's encoder and back
    i = len(bmv["t"]) // 2
    t = bmv["t"][i]
    assert abs(bmv["SOC"][i] - simfleet.site_values(4, t)["soc"]) < 0.5
    assert all(v is None or round(v, 2) == v for v in bmv["V"])  # the field's decimals, no more
    requests = sim.log_requests[4]
    w = get_json(url + "/api/site/site0004/history?span=week")
    assert sim.log_requests[4] == requests  # served from the cache
    assert w["bucket_s"] > h["bucket_s"] and len(w["devices"]["mppt"]["t"]) < len(bmv["t"])
    print("history of one site (2 days, %d records): %.2f s" % (h["records"], time.time() - t0))
    # a gateway that does not answer: the page says why, the server stays up
    sim.client.publish("dash/mute/availability", "online", qos=1, retain=True).wait_for_publish(5)
    sim.client.publish("dash/mute/bmv/state", '{"V": 12.5}', qos=1, retain=True).wait_for_publish(5)
    wait_for(lambda: get_json(url + "/api/site/mute")["devices"], what="gateway mute")
    e = get_json(url + "/api/site/mute/history?span=day")
    assert "no reply from mute" in e["error"] and e["devices"] == {}
    # an offline gateway is not asked (its cache, if any, is shown)
    sim.go_offline(9)
    wait_for(lambda: get_json(url + "/api/site/site0009")["site"]["state"] == "offline", what="offline")
    requests = sum(sim.log_requests.values())
    e = get_json(url + "/api/site/site0009/history?span=day")
    assert "site0009 is offline" in e["error"] and sum(sim.log_requests.values()) == requests
    sim.come_back(9)
    with pytest.raises(urllib.error.HTTPError) as err:
        get(url + "/api/site/site0004/history?span=year")
    assert err.value.code == 400


def test_history_fetch_protocol_shapes_and_increments():
    """History over a fake link: the firmware's stream shape, the batch shape,
    an error answer, and a later fetch that asks only for what is new."""
    from vegw.dashboard import history as H

    T_NOW = 1_767_225_600.0  # 2026: a time before 2024 is an unset board clock's (shown as unknown)

    sent = []
    hist = None
    answers = []  # what the "gateway" says to the next requests

    def publish(topic, payload, qos):
        req = json.loads(payload)
        sent.append(req)
        for msg in answers.pop(0) if answers else ():
            hist.on_message("p/gw/logs", msg(req) if callable(msg) else msg)

    frames = simfleet.history_frames(1, T_NOW, 120)  # two hours of minute blocks
    assert len(frames) == 24
    stream = [json.dumps({"seq": s, "type": t, "hex": p.hex()}).encode() for s, t, p in frames[:20]]
    event = json.dumps({"seq": 21, "t": T_NOW - 1000, "rule": "low", "event": "raised", "severity": "alarm"}).encode()
    got_events = []

    async def go():
        nonlocal hist
        hist = H.History(publish, "p", on_events=lambda gw, evs: got_events.extend(evs), batch=50, timeout=0.3,
                         retries=1, ttl=0, clock=lambda: T_NOW)
        hist.bind(asyncio.get_running_loop())
        answers.append(stream + [event, b'{"done":true,"count":21}'])
        h1 = await hist.get("gw", "day")
        rest = [{"seq": s, "t": 0, "device": "x", "V": 1.0} for s in (22, 23)]
        answers.append([lambda req: json.dumps({"id": req["id"], "records": rest, "next_seq": 24,
                                                "more": False}).encode()])
        h2 = await hist.get("gw", "day")
        answers.append([lambda req: json.dumps({"id": req["id"], "error": "busy"}).encode()])
        h3 = await hist.get("gw", "day")
        h4 = await hist.get("gw", "day")  # no answer at all: retried, then said
        return h1, h2, h3, h4

    h1, h2, h3, h4 = asyncio.run(go())
    assert sent[0]["from_seq"] == 0 and sent[0]["max"] == 50 and sent[0]["cmd"] == "logs"
    assert h1["error"] is None and h1["records"] == 21 and set(h1["devices"]) == {"bmv", "mppt", "inverter"}
    assert [e["rule"] for e in got_events] == ["low"]
    bmv = h1["devices"]["bmv"]
    assert 40 <= len(bmv["t"]) <= 100 and bmv["t"][-1] <= T_NOW
    assert sent[1]["from_seq"] == 22  # only what is new
    assert h2["records"] == 23 and h2["error"] is None
    assert sent[2]["from_seq"] == 24 and h3["error"] == "gateway gw: busy"
    assert len(sent) == 5 and "no reply from gw" in h4["error"]  # the last fetch: 1 request + 1 retry
    assert H.History(publish, "p").stats()["requests"] == 0


def test_login_required_when_given_and_off_loopback(broker):
    r = subprocess.run([VEGW, "dashboard", "--broker", broker, "--listen", "0.0.0.0:%d" % free_port()],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "password" in r.stderr and "Traceback" not in r.stderr
    for bad in (["--listen", "127.0.0.1"], ["--web-password", "short"], ["--cert", "x.pem"],
                ["--webhook", "ftp://x"], ["--alert-rate", "0"]):
        r = subprocess.run([VEGW, "dashboard", "--broker", broker] + bad, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (bad, r.stderr)
    r = subprocess.run([VEGW, "dashboard", "--broker", "127.0.0.1:%d" % free_port()], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "cannot connect" in r.stderr and r.stderr.count("\n") == 1
    import os

    env = dict(os.environ, VEGW_DASHBOARD_PASSWORD="correct horse")
    port = free_port()
    p = subprocess.Popen([VEGW, "dashboard", "--broker", broker, "--listen", "127.0.0.1:%d" % port, "--no-history"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = "http://127.0.0.1:%d" % port
    try:
        assert "login required" in p.stdout.readline()
        for path in ("/", "/api/sites", "/events", "/static/fleet.js"):
            with pytest.raises(urllib.error.HTTPError) as e:
                get(url + path)
            assert e.value.code == 401 and "Basic" in e.value.headers["WWW-Authenticate"]
        with pytest.raises(urllib.error.HTTPError) as e:
            get(url + "/api/sites", auth="vegw:wrong")
        assert e.value.code == 401
        assert get(url + "/api/sites", auth="vegw:correct horse")[0] == 200
        assert get(url + "/healthz")[0] == 200  # for the proxy's health check: says nothing else
    finally:
        stop(p)


def test_missing_dashboard_extra_named(monkeypatch, capsys):
    from vegw import cli

    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if not installed
    rc = cli.main(["dashboard", "--broker", "127.0.0.1:%d" % free_port()])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "vegw[dashboard]" in err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
