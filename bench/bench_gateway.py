"""The whole gateway: heap high-water of the firmware under the MicroPython
unix port at an ESP32's heap (demo site: 3 VE.Direct + 2 BLE devices, flash
log, MQTT to a real Mosquitto, HA discovery), and the CPU time of a day of
traffic in simulated time. Figures, not pass/fail."""
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))
sys.path.insert(0, str(ROOT / "tests" / "soak"))

import paho.mqtt.client as mqtt  # noqa: E402

from vegw.broker import Broker  # noqa: E402
from vegw.runtime import SIM_HEAP, micropython_binary  # noqa: E402
from vegw.sim_image import build_mpy  # noqa: E402
from vegw.simulator import Site  # noqa: E402
import mkfeed  # noqa: E402

RUN_S = 75
with Broker() as b:
    got = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    c.connect("127.0.0.1", b.port)
    c.subscribe("vegw/+/status")
    c.loop_start()
    site = Site(gateway="bench", broker=("127.0.0.1", b.port), duration=RUN_S, heartbeat=60)
    site.fw.wait(RUN_S + 60)
    out = site.fw.proc.stdout.read()
    site.stop()
    c.loop_stop()
boot = re.search(r"heap_alloc=(\d+) heap_free=(\d+)", out)
total = None
if boot:
    total = int(boot.group(1)) + int(boot.group(2))
print("firmware objects' heap: %s B (%s = an ESP32 without PSRAM, on this 64-bit host); code in a ROM image of %d B "
      "(flash on a board; -X heapsize=%d in all)" % (total, SIM_HEAP, os.path.getsize(site.fw.rom), site.fw.heap))
if boot:
    print("  after boot (modules loaded, objects built): %s B live, %s B free" % boot.groups())
live = [s.get("heap_alloc") for s in got if s.get("heap_alloc")]
if live:
    print("  live heap in status messages over %d s: max %d B, min free %d B" % (
        RUN_S, max(live), min(s.get("heap_free") for s in got if s.get("heap_free") is not None)))
print("  MemoryError seen: %s" % ("yes" if "MemoryError" in out else "no"))

with tempfile.TemporaryDirectory() as d:
    feed = os.path.join(d, "feed.bin")
    mkfeed.make(feed)
    build = build_mpy()
    t0 = time.time()
    r = subprocess.run([micropython_binary(), "-X", "heapsize=1M", str(ROOT / "tests" / "soak" / "gateway_soak.py"),
                        feed, "24", "5", os.path.join(d, "flash.bin")], cwd=str(build),
                       env=dict(os.environ, MICROPYPATH=".frozen:%s:%s/lib" % (build, build)),
                       capture_output=True, text=True)
    m = re.search(r"RESULT (.*)", r.stdout)
    heap = re.search(r"HEAP (.*)", r.stdout)
    if m:
        res = dict(kv.split("=") for kv in m.group(1).split())
        hs = [int(x) for x in heap.group(1).split()]
        print("24 h of a site in simulated time (blocks every 5 s, python -m pytest tests/host/test_gateway_soak.py):")
        print("  CPU: %.1f s on this host for 24 h of traffic (%.2f ms per simulated minute)" % (
            int(res["wall_ms"]) / 1000, int(res["wall_ms"]) / 1440))
        print("  live heap hour 1 .. 24: %d .. %d B (growth %d B)" % (hs[1], max(hs[1:-1]), max(hs[1:-1]) - hs[1]))
        print("  outbox drops %s, log records %s, unsent overwritten %s" % (
            res["outbox_dropped"], res["log_written"], res["overwritten_unsent"]))
    else:
        print("soak failed:", r.stdout[-500:], r.stderr[-500:])
