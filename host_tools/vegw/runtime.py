"""Where the MicroPython unix port is and how to start it on shared code."""
import os
import shutil
import sys

from . import ROOT

ESP32_HEAP = "111wK"  # object capacity of an ESP32 without PSRAM


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
