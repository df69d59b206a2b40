"""Where the MicroPython unix port is and how to start it on shared code."""
import os
import shutil
import sys

from . import ROOT

ESP32_HEAP = "111wK"  # object capacity of an ESP32 without PSRAM

# The whole gateway in the simulator. It runs mpy-cross bytecode, which the
# unix port loads into the heap; a board build freezes the modules into flash
# (boards/*/manifest.py), where they cost no heap. As .mpy the demo site needs
# ~240 KB live on this 64-bit port (docs/ram.md), more than 111wK (224 KB):
# the simulator therefore runs at 170wK (~90 KB free at steady state), and
# every shared module's tests run at 111wK. Closing that gap is open work.
SIM_HEAP = "170wK"


def micropython_binary():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(exe):
        return exe
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not found: run `make test` once to create .venv")
    return found


def micropython_path(*extra):
    parts = [".frozen"] + [str(p) for p in extra]
    parts += [str(ROOT / "firmware" / "lib"), str(ROOT / "firmware")]
    return ":".join(parts)


def micropython_env(*extra):
    env = dict(os.environ)
    env["MICROPYPATH"] = micropython_path(*extra)
    return env


def micropython_cmd(script, heap=ESP32_HEAP, args=()):
    return [micropython_binary(), "-X", "heapsize=" + heap, str(script)] + [str(a) for a in args]
