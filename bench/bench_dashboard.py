"""`vegw dashboard` with 1,000 gateways: first paint, update latency, memory, CPU.

Run with CPython (`make bench` or `.venv/bin/python bench/bench_dashboard.py`).
A real Mosquitto on loopback; 1,000 simulated gateways x 3 devices
(vegw/dashboard/simfleet.py, its own process) publishing every state every
5 s (600 messages/s, far more than the firmware's defaults: state on change
at most every 10 s, heartbeat 300 s); `vegw dashboard` as the operator runs
it; Debian's headless Chromium (playwright, executable_path) as the browser.

Targets (issue 20): first paint of the list under 2 s; an update reaches the
page within 2 s. Figures:
  first paint  navigation start -> the 1,000-row table drawn (the page's own
               performance mark), and the wall time from goto() to the rows
  update       a state published for a probe gateway -> its SoC cell shows
               the new value (checked in the page every 10 ms; same clock)
  memory       the dashboard's RSS with the fleet, then with month-long
               histories cached
  CPU          the dashboard's share of one core while the fleet publishes
"""
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

from vegw.broker import Broker, free_port, mosquitto_binary  # noqa: E402

N = 1000
INTERVAL = 5
TARGET_PAINT_S = 2.0
TARGET_UPDATE_S = 2.0
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
VEGW = str(ROOT / ".venv" / "bin" / "vegw")
PY = sys.executable


def get_json(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.loads(r.read())


def proc_status(pid):
    """(RSS bytes, CPU seconds) of a process."""
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmRSS:"))
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


def wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.2)
    raise SystemExit("bench_dashboard: timed out waiting for %s" % what)


def main():
    if mosquitto_binary() is None:
        print("skipped: Debian's mosquitto is not installed (make mosquitto)")
        return 0
    try:
        import aiohttp  # noqa: F401
        import paho.mqtt.client as mqtt
    except ImportError as e:
        print("skipped: %s (make deps)" % e)
        return 0
    with Broker() as b:
        broker = "127.0.0.1:%d" % b.port
        sim = subprocess.Popen([PY, "-m", "vegw.dashboard.simfleet", "--broker", broker, "--gateways", str(N),
                                "--interval", str(INTERVAL), "--duration", "900", "--history-days", "30"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(ROOT))
        port = free_port()
        url = "http://127.0.0.1:%d" % port
        dash = subprocess.Popen([VEGW, "dashboard", "--broker", broker, "--listen", "127.0.0.1:%d" % port,
                                 "--history-timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-probe")
        probe.connect("127.0.0.1", b.port)
        probe.loop_start()
        try:
            dash.stdout.readline()
            t0 = time.monotonic()
            wait(lambda: get_json(url + "/api/stats")["gateways"] >= N, 60, "%d gateways" % N)
            print("%d gateways x 3 devices, every state every %d s; dashboard has them all %.1f s after start"
                  % (N, INTERVAL, time.monotonic() - t0))
            probe.publish("vegw/probe/bmv/state", json.dumps({"V": 25.0, "SOC": 50.0, "ts": time.time()}),
                          qos=1, retain=True).wait_for_publish(10)
            time.sleep(2 * INTERVAL)  # steady state
            st = get_json(url + "/api/stats")
            rss0, cpu0 = proc_status(dash.pid)
            time.sleep(10)
            rss1, cpu1 = proc_status(dash.pid)
            st1 = get_json(url + "/api/stats")
            print("dashboard: %.1f MB RSS with %d gateways / %d devices; %.0f%% of one core while they publish "
                  "(%.0f messages/s)" % (rss1 / 1e6, st["gateways"], st["devices"], 100 * (cpu1 - cpu0) / 10,
                                         (st1["messages"] - st["messages"]) / 10))
            t = time.monotonic()
            snap = urllib.request.urlopen(url + "/", timeout=30).read()
            print("page with %d rows: %.0f kB of HTML+data, served in %.0f ms (%.0f kB gzipped on the wire)"
                  % (N + 1, len(snap) / 1e3, 1000 * (time.monotonic() - t), _gz(url + "/") / 1e3))
            browser_figures(url, probe)
            history_figures(url, dash.pid)
        finally:
            probe.loop_stop()
            probe.disconnect()
            dash.terminate()
            sim.terminate()
            dash.wait(30)
            sim.wait(30)
    return 0


def _gz(url):
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return len(r.read())


def browser_figures(url, probe):
    if CHROMIUM is None:
        print("browser figures skipped: Debian's chromium is not installed (make chromium)")
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("browser figures skipped: the playwright package is not installed (make deps)")
        return
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        paints, walls = [], []
        for _ in range(3):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            t = time.monotonic()
            page.goto(url + "/")
            while page.evaluate("document.querySelectorAll('#rows tr').length") < N + 1:
                time.sleep(0.01)
            walls.append(time.monotonic() - t)
            paints.append(page.evaluate("performance.getEntriesByName('vegw-first-paint')[0].startTime") / 1000)
            page.close()
        print("first paint of %d rows: %.2f s (median of 3; max %.2f) in the page, %.2f s from goto()   target < %.1f s  %s"
              % (N + 1, statistics.median(paints), max(paints), statistics.median(walls), TARGET_PAINT_S,
                 "met" if max(paints) < TARGET_PAINT_S else "NOT met"))
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/")
        while page.evaluate("document.querySelectorAll('#rows tr').length") < N + 1:
            time.sleep(0.01)
        # watch the probe's SoC cell from inside the page: Date.now() when a value first shows
        page.evaluate("""() => { window.seenAt = {}; setInterval(() => {
            const r = document.querySelector('tr[data-id=probe]'); if (!r) return;
            const v = r.children[2].textContent; if (!(v in window.seenAt)) window.seenAt[v] = Date.now(); }, 10); }""")
        lat = []
        for k in range(20):
            soc = 10.0 + k + 0.1 * (k % 9 + 1)
            sent = time.time()
            probe.publish("vegw/probe/bmv/state", json.dumps({"V": 25.0, "SOC": soc, "ts": sent}), qos=1,
                          retain=True).wait_for_publish(10)
            key = "%.1f" % soc
            end = time.time() + 10
            while time.time() < end and not page.evaluate("(k) => k in window.seenAt", key):
                time.sleep(0.02)
            seen = page.evaluate("(k) => window.seenAt[k]", key)
            lat.append((seen / 1000 - sent) if seen else float("inf"))
            time.sleep(0.3)
        lat.sort()
        print("update reaches the page: median %.2f s, p95 %.2f s, max %.2f s (20 probes)   target < %.1f s  %s"
              % (statistics.median(lat), lat[int(0.95 * len(lat)) - 1], lat[-1], TARGET_UPDATE_S,
                 "met" if lat[-1] < TARGET_UPDATE_S else "NOT met"))
        browser.close()


def history_figures(url, pid):
    rss0, _ = proc_status(pid)
    times = []
    recs = 0
    for g in range(4):
        t = time.monotonic()
        h = get_json(url + "/api/site/site%04d/history?span=month" % (g * 100))
        times.append(time.monotonic() - t)
        recs = h["records"]
        if h["error"]:
            print("history: %s" % h["error"])
    rss1, _ = proc_status(pid)
    t = time.monotonic()
    get_json(url + "/api/site/site0000/history?span=week")
    cached = time.monotonic() - t
    print("history: a month (%d log records, 3 devices) fetched over MQTT and decoded in %.1f s a site "
          "(median of 4); from the cache %.0f ms; RSS +%.1f MB for 4 sites' months (~%.1f MB a site)"
          % (recs, statistics.median(times), 1000 * cached, (rss1 - rss0) / 1e6, (rss1 - rss0) / 4e6))


if __name__ == "__main__":
    sys.exit(main())
