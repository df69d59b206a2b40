"""24 hours of a site in simulated time under the MicroPython unix port
(tests/soak/gateway_soak.py): the live heap stays flat, no queue drops,
nothing unsent is overwritten, every block parses."""
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "host_tools"))
sys.path.insert(0, str(ROOT / "tests" / "soak"))

from vegw.runtime import micropython_binary  # noqa: E402
from vegw.sim_image import build_mpy  # noqa: E402
import mkfeed  # noqa: E402

# The soak holds its own input tables (a minute of traffic per device, 256
# adverts) beside the app, so it runs with a larger heap than a board; the
# app at an ESP32 heap is checked by test_gateway_e2e.py. What is checked here
# is that the live heap does not grow over a day.
HEAP = os.environ.get("VEGW_SOAK_HEAP", "1M")


def test_24_hours_heap_flat_no_drops(tmp_path):
    feed = tmp_path / "feed.bin"
    mkfeed.make(str(feed))
    build = build_mpy()
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s/lib" % (build, build))
    r = subprocess.run([micropython_binary(), "-X", "heapsize=" + HEAP, str(ROOT / "tests" / "soak" / "gateway_soak.py"),
                        str(feed), "24", "5", str(tmp_path / "flash.bin")],
                       cwd=str(build), env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    m = re.search(r"RESULT (.*)", r.stdout)
    res = dict(kv.split("=") for kv in m.group(1).split())
    res = {k: int(v) for k, v in res.items()}
    heap = [int(x) for x in re.search(r"HEAP (.*)", r.stdout).group(1).split()]
    print(r.stdout)
    assert res["hours"] == 24
    # flat: after the first hour (tables, dicts at full size) it stays within 2 KB
    assert max(heap[2:-1]) - heap[1] <= 2048, heap
    assert res["outbox_dropped"] == 0
    assert res["overwritten_unsent"] == 0
    assert res["parse_errors"] == 0 and res["ignored"] == 0
    assert res["blocks"] == 24 * 3600 // 5 * 4  # BMV 2 + MPPT 1 + inverter 1 blocks per step
    assert res["adverts"] == 24 * 3600 // 5
    assert res["acked"] >= res["log_written"] - 10  # the uplink kept up
