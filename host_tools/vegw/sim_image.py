"""The firmware as the simulated board holds it: the .mpy files mpy-cross
makes of firmware/ (what a board runs: bytecode, no on-device compile), the
ROMFS image of them (on a board the modules are in flash: frozen, or a ROMFS
partition) and the heap the simulated board needs beside it."""
import os
import pathlib
import subprocess

from mpremote import romfs

from . import ROOT
from .runtime import micropython_binary, parse_heap


def build_mpy(out_dir=None):
    """Compile the firmware with mpy-cross into build/sim/ (what a board runs:
    bytecode, no on-device compile), reusing files whose source is older."""
    out = pathlib.Path(out_dir or (ROOT / "build" / "sim"))
    fw = ROOT / "firmware"
    cross = os.path.join(os.path.dirname(micropython_binary()), "mpy-cross")
    # the device's layout: /app.mpy, /lib/*.mpy, /drivers/*.mpy
    jobs = [(fw / "app.py", out / "app.mpy"), (fw / "startup.py", out / "startup.mpy"),
            (fw / "host_main.py", out / "host_main.mpy"), (fw / "host_boot.py", out / "host_boot.mpy")]
    jobs += [(p, out / "lib" / (p.stem + ".mpy")) for p in sorted((fw / "lib").glob("*.py"))]
    jobs += [(p, out / "drivers" / (p.stem + ".mpy")) for p in sorted((fw / "drivers").glob("*.py"))]
    (out / "drivers").mkdir(parents=True, exist_ok=True)
    (out / "lib").mkdir(parents=True, exist_ok=True)
    for src, dst in jobs:
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        # -O3: no line numbers or asserts in the bytecode (less RAM, as deploy does).
        # Written beside and renamed: parallel test workers may build at once.
        tmp = "%s.%d.tmp" % (dst, os.getpid())
        # -s: the module's name as its source name: a traceback still names
        # the module, and the name is one the import interns anyway (a path
        # or "x.py" would be one more interned string in RAM per module; on
        # a board the frozen modules' names are in flash)
        # -march=host: the parser kernel (vedirect_kernel.py) is viper machine code
        subprocess.run([cross, "-O3", "-march=host", "-s", src.stem, "-o", tmp, str(src)], check=True,
                       cwd=str(src.parent))
        os.replace(tmp, str(dst))
    return out


def build_rom(build=None):
    """The firmware's ROMFS image (build/sim.rom): the device layout of
    build_mpy() except host_boot.mpy, which mounts it. On a board the modules
    are in flash (frozen, or a ROMFS partition); the simulator gives them the
    same place (host_boot.py)."""
    build = pathlib.Path(build or build_mpy())
    rom = build.parent / (build.name + ".rom")
    files = sorted(p for p in build.rglob("*.mpy") if p.name != "host_boot.mpy")
    if rom.exists() and all(p.stat().st_mtime <= rom.stat().st_mtime for p in files):
        return rom
    w = romfs.VfsRomWriter()

    def add(folder):
        for p in sorted(folder.iterdir()):
            if p.is_dir():
                w.opendir(p.name)
                add(p)
                w.closedir()
            elif p.suffix == ".mpy" and p.name != "host_boot.mpy":
                w.mkfile(p.name, p.read_bytes())

    add(build)
    tmp = "%s.%d.tmp" % (rom, os.getpid())
    with open(tmp, "wb") as f:
        f.write(w.finalise())
    os.replace(tmp, str(rom))
    return rom


# The unix port interns every module's names (qstrs) in RAM when it loads
# their .mpy files from the ROM image; a board build freezes the modules and
# keeps those names in flash. Since December 2026 the demo's names fill a
# seventh qstr pool (~15 KB on the 64-bit port, micropython.qstr_info()):
# that much is added to the heap and counted as flash, like the image.
FLASH_NAMES = 16 * 1024


def heap_with_rom(spec, rom_bytes):
    """-X heapsize for an object heap of `spec` ("111wK", "4M", ...) plus
    the ROM image's block and the allocation tables that block needs, plus
    FLASH_NAMES."""
    return parse_heap(spec) + rom_bytes + rom_bytes // 80 + FLASH_NAMES


def rom_mount_source():
    """The lines of firmware/host_boot.py that mount the ROM image (up to its
    first firmware import), as source: a probe that runs them first loads
    the firmware exactly as `vegw sim` does (tests/host/test_ram_budget.py,
    bench/bench_ondemand.py). Run with `--rom <image>` in sys.argv."""
    text = (ROOT / "firmware" / "host_boot.py").read_text()
    head = text[: text.index("from drivers import platform_host")]
    if "vfs.mount(" not in head:
        raise RuntimeError("host_boot.py no longer mounts the ROM image before its first import")
    return head
