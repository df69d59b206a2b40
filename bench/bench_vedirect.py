"""VE.Direct parse + decode: MicroPython (vegw) vs a byte-at-a-time state
machine, on the same stream, in one run. Targets (issue 2): vegw under
MicroPython >= 5x faster per byte than the naive parser under CPython;
<= 512 B allocated per decoded block; zero allocation per byte fed while no
block completes; parser + decoder heap < 4 KB at -X heapsize=111wK."""
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))
from vegw import vestream  # noqa: E402
from vegw.runtime import micropython_cmd, micropython_env  # noqa: E402

os.makedirs(ROOT / "build", exist_ok=True)
devs = [vestream.make("bmv712", seed=1), vestream.make("mppt", seed=2), vestream.make("inverter", seed=3)]
seconds = [[d.second() for _ in range(60)] for d in devs]
for j, secs in enumerate(seconds):  # one stream per device, as on its UART
    (ROOT / "build" / ("bench_dev%d.bin" % j)).write_bytes(b"".join(secs))
# the same bytes as one stream (one parser and one dict for all three)
stream = b"".join(seconds[j][t] for t in range(60) for j in range(len(devs)))
(ROOT / "build" / "bench_stream.bin").write_bytes(stream)
script = ROOT / "bench" / "mp" / "vedirect_bench.py"
env = micropython_env(ROOT / "bench" / "mp")
cenv = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "firmware" / "lib"), str(ROOT / "bench" / "mp")]))


def res(out):
    m = re.search(r"RESULT (\S+) (.*)", out)
    return dict(kv.split("=") for kv in m.group(2).split()) if m else {}


def mp(*args):
    return res(subprocess.run(micropython_cmd(script, args=args), env=env, cwd=ROOT, capture_output=True, text=True).stdout)


def cp(*args):
    return res(subprocess.run([sys.executable, str(script)] + list(args), env=cenv, cwd=ROOT, capture_output=True,
                              text=True).stdout)


mp_vegw, mp_naive, cp_naive, cp_vegw = mp("vegw"), mp("naive"), cp("naive"), cp("vegw")
mp_shared, cp_naive_shared = mp("vegw", "shared"), cp("naive", "shared")

print("streams: %d bytes from a BMV-712, an MPPT with HEX frames and a Phoenix (60 s), %s blocks;"
      % (len(stream), mp_vegw.get("blocks")))
print("one parser and one dict per device, read 128 bytes at a time in turn, as the gateway runs")
print("%-44s %12s" % ("", "ns/byte"))
print("%-44s %12s" % ("vegw parser+decoder, MicroPython 111wK", mp_vegw.get("ns_per_byte")))
print("%-44s %12s" % ("naive byte-at-a-time, MicroPython", mp_naive.get("ns_per_byte")))
print("%-44s %12s" % ("vegw parser+decoder, CPython", cp_vegw.get("ns_per_byte")))
print("%-44s %12s" % ("naive byte-at-a-time, CPython", cp_naive.get("ns_per_byte")))
try:
    ratio = float(cp_naive["ns_per_byte"]) / float(mp_vegw["ns_per_byte"])
    print("speed-up, vegw on MicroPython vs naive on CPython: %.1fx (target >= 5x: %s)" % (ratio, "met" if ratio >= 5 else "NOT met"))
except (KeyError, ZeroDivisionError, ValueError):
    print("speed-up: could not be computed", mp_vegw, cp_naive)
try:
    ratio = float(cp_naive_shared["ns_per_byte"]) / float(mp_shared["ns_per_byte"])
    print("the same bytes as one stream into one parser and one dict (each device's FW text overwrites the last:")
    print("  a text change every block): vegw %s ns/byte, naive CPython %s, %.1fx"
          % (mp_shared["ns_per_byte"], cp_naive_shared["ns_per_byte"], ratio))
except (KeyError, ZeroDivisionError, ValueError):
    print("one-stream figure: could not be computed", mp_shared, cp_naive_shared)
a = float(mp_vegw.get("alloc_per_block", -1))
print("bytes allocated per decoded block (MicroPython, gc off): %.0f (target <= 512: %s)" % (a, "met" if 0 <= a <= 512 else "NOT met"))
b = float(mp_vegw.get("alloc_per_byte_no_block", -1))
print("bytes allocated per byte fed, no block completing: %.3f (target 0: %s)" % (b, "met" if b == 0 else "NOT met"))
h = int(mp_vegw.get("parser_heap", -1))
print("heap held by parser + decoder state, per device: %d B (target < 4096: %s)" % (h, "met" if 0 <= h < 4096 else "NOT met"))
print("note: machine shared with other jobs; ns/byte varies run to run. The per-byte work is viper")
print("machine code (vedirect_kernel.py); what is left is per chunk and per block: the calls into it,")
print("the block callback and the dict stores of changed fields (README, 'Figures').")
