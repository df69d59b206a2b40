"""RAM budget of the gateway's resident modules (docs/ram.md).

Compiles the firmware with mpy-cross as the simulator does, imports the
modules the running gateway keeps (in the app's order) under the MicroPython
unix port at the ESP32 heap, and checks that

- the rarely used halves of split modules (ble_tables, records_dec,
  vedirect_text) and the boot-only modules (cfg_schema, boardinfo,
  alarm_rules, ha_discovery, ve_enums) are not pulled in by any resident
  module's top-level imports, and
- the resident set stays within its budget.

Run with -s to see the per-module figures (64-bit heap bytes)."""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "host_tools"))

from vegw.runtime import ESP32_HEAP, micropython_binary  # noqa: E402
from vegw.simulator import build_mpy  # noqa: E402

# what the gateway keeps loaded on the host platform (app._load() and the
# drivers it asks for), in the order the app imports them
RESIDENT = ["asyncio", "drivers.platform_host", "app", "alarm_engine", "ble_readout", "flashlog", "gateway",
            "mqtt_async", "vedirect", "metrics", "drivers.nor_sim", "drivers.ble_host",
            "drivers.ble_scan", "drivers.state_store"]
ON_DEMAND = ["ble_tables", "records_dec", "vedirect_text", "ve_enums", "cfg_schema", "boardinfo",
             "alarm_rules", "ha_discovery", "ota", "flashlog_crc", "drivers.ble_hood", "ble_keys", "field_aliases"]
# 64-bit heap bytes after gc.collect() for the whole resident set, qstrs
# included (was ~175 KB before the RAM diet, ~140 KB after it; ~161 KB in
# December 2026 after the fault, OTA-signing, clock and thin-uplink work:
# bytecode in RAM, which a frozen board build keeps in flash)
BUDGET = 168 * 1024

_PROBE = """
import gc, sys, json
gc.collect(); base = gc.mem_alloc()
out = []
for m in %r:
    gc.collect(); a = gc.mem_alloc()
    try:
        __import__(m)
    except ImportError as e:
        out.append([m, -1])
        continue
    gc.collect(); out.append([m, gc.mem_alloc() - a])
gc.collect()
print("@@" + json.dumps({"mods": out, "total": gc.mem_alloc() - base, "loaded": list(sys.modules)}))
"""


def _measure(tmp_path):
    build = build_mpy(tmp_path / "sim")
    script = tmp_path / "probe.py"
    script.write_text(_PROBE % (RESIDENT,))
    env = {"MICROPYPATH": ".frozen:%s:%s/lib" % (build, build), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([micropython_binary(), "-X", "heapsize=" + ESP32_HEAP, str(script)], cwd=str(build),
                       env=env, capture_output=True, text=True, timeout=120)
    line = [x for x in r.stdout.splitlines() if x.startswith("@@")]
    assert line, r.stdout + r.stderr
    return json.loads(line[0][2:])


def test_resident_modules_fit_their_budget(tmp_path):
    res = _measure(tmp_path)
    for m, n in res["mods"]:
        print("%-20s %7d" % (m, n))
    print("%-20s %7d (budget %d)" % ("total", res["total"], BUDGET))
    assert all(n >= 0 for _, n in res["mods"]), res["mods"]
    pulled = [m for m in ON_DEMAND if m in res["loaded"]]
    assert not pulled, "resident modules import on-demand modules at top level: %s" % pulled
    assert res["total"] <= BUDGET, res["total"]
