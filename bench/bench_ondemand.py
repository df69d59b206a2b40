"""The "import for one call, then drop" trick, re-measured with the code in
flash (issue 21). The firmware's .mpy files run from the simulator's ROMFS
image (vegw.sim_image.build_rom), mounted exactly as firmware/host_boot.py
does, under the MicroPython unix port at -X heapsize = 111wK plus the image's
block (sim_image.heap_with_rom): bytecode and constants stay in the image, as
in a frozen board build, so an import costs only the objects it creates
(module, globals dict, function and class objects, tables built at import)
and its interned names.

For each module the firmware loads on demand (and the ones it loads and then
drops: `sys.modules.pop`), in a fresh process with the gateway's resident
modules already imported (tests/host/test_ram_budget.RESIDENT, the app's
order): heap held after importing it (gc.collect(); gc.mem_alloc() before and
after; what it pulls in with it included), and heap freed when it and what
it pulled in are dropped again. The difference is mostly interned names
(qstrs), which never leave the heap; a frozen board keeps those in flash too.
64-bit heap bytes, about twice an ESP32's. Figures, not pass/fail: a drop is
worth its code where it frees more than KEEP_DROP_ABOVE."""
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))
sys.path.insert(0, str(ROOT / "tests" / "host"))

from vegw.runtime import ESP32_HEAP, micropython_binary  # noqa: E402
from vegw.sim_image import FLASH_NAMES, build_mpy, build_rom, heap_with_rom, rom_mount_source  # noqa: E402
from test_ram_budget import RESIDENT  # noqa: E402

# on-demand halves, boot-only modules and everything the firmware drops with
# sys.modules.pop (firmware/app.py, lib/boot_config.py, lib/gateway.py,
# lib/alarm_engine.py, lib/ble_readout.py, startup.py)
MODULES = ["field_aliases", "ble_tables", "records_dec", "vedirect_text", "ve_enums", "flashlog_crc", "commands",
           "ble_keys", "ha_discovery", "alarm_rules", "cfg_schema", "boardinfo", "boot_config", "ota_journal", "ota_rx", "cfg_push",
           "drivers.ble_hood"]
KEEP_DROP_ABOVE = 1024  # bytes freed by the drop (64-bit heap) for a load-then-drop to pay

# after host_boot.py's own mount lines (sim_image.rom_mount_source): the
# resident set, then one module
_PROBE = """
import gc, json, micropython
for _m in %(resident)r:
    __import__(_m)
# a module the resident set imported already: dropped first (its names stay
# interned, so "held" is then without them; "freed" is exact)
_was = %(module)r in sys.modules
sys.modules.pop(%(module)r, None)
_before = set(sys.modules)
_res = [0, 0]  # allocated before: nothing of the probe's made after the import is alive at the end
_p = _m = _new = None
print("@@q0"); micropython.qstr_info()
gc.collect(); _a = gc.mem_alloc()
__import__(%(module)r)
gc.collect(); _b = gc.mem_alloc()
_res[0] = _b - _a
print("@@q1"); micropython.qstr_info()
_new = [m for m in sys.modules if m not in _before]
print("@@new " + " ".join(_new))
for _m in _new:
    sys.modules.pop(_m)
for _m in _new:  # a package keeps its submodule as an attribute
    _p = _m.rpartition(".")
    if _p[0] and _p[0] in sys.modules:
        try:
            delattr(sys.modules[_p[0]], _p[2])
        except AttributeError:
            pass
_new = _p = _m = None
gc.collect(); _c = gc.mem_alloc()
_res[1] = _b - _c
print("@@" + json.dumps({"held": _res[0], "freed": _res[1], "was": _was}))
"""

_QSTR = re.compile(r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)")


def measure(module, rom, heap, cwd):
    script = os.path.join(cwd, "probe.py")
    with open(script, "w") as f:
        f.write(rom_mount_source() + _PROBE % {"resident": RESIDENT, "module": module})
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s/lib" % (cwd, cwd))
    r = subprocess.run([micropython_binary(), "-X", "heapsize=%d" % heap, script, "--rom", str(rom)], cwd=cwd,
                       env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout
    line = [x for x in out.splitlines() if x.startswith("@@{")]
    if not line:
        return {"error": (out + r.stderr).strip().splitlines()[-1:]}
    res = json.loads(line[0][2:])
    res["new"] = [x for x in out.split("@@new ", 1)[1].splitlines()[0].split() if x != module]
    q0 = _QSTR.search(out[out.index("@@q0"):])
    q1 = _QSTR.search(out[out.index("@@q1"):])
    res["qstrs"] = int(q1.group(1)) - int(q0.group(1))
    res["qstr_bytes"] = int(q1.group(3)) - int(q0.group(3))
    return res


def main():
    build = build_mpy()
    rom = build_rom(build)
    heap = heap_with_rom(ESP32_HEAP, os.path.getsize(str(rom)))
    print("ROM image %s: %d B; -X heapsize=%d (%s + image block + FLASH_NAMES %d); resident set imported first"
          % (rom.name, os.path.getsize(str(rom)), heap, ESP32_HEAP, FLASH_NAMES))
    print("%-17s %7s %7s %6s %8s  %-5s %s" % ("module", "held", "freed", "qstrs", "qstr_B", "drop?", "pulled in"))
    with tempfile.TemporaryDirectory(prefix="vegw-ondemand-") as cwd:
        for m in MODULES:
            res = measure(m, rom, heap, cwd)
            if "error" in res:
                print("%-17s failed: %s" % (m, res["error"]))
                continue
            pays = "pays" if res["freed"] > KEEP_DROP_ABOVE else "no"
            print("%-17s %7d %7d %6d %8d  %-5s %s%s" % (
                m, res["held"], res["freed"], res["qstrs"], res["qstr_bytes"], pays,
                "(resident: imported by the set) " if res["was"] else "", " ".join(res["new"])))
    print("held: heap after import minus before; freed: returned when the module (and what it pulled in) is "
          "dropped; qstrs: names interned by the import (never freed; in flash on a frozen board). "
          "drop? = freed > %d B" % KEEP_DROP_ABOVE)


if __name__ == "__main__":
    main()
