"""vegw flash: put the vegw image on a board, then its files.

    vegw flash --port /dev/ttyUSB0 --board esp32-devkit --config site.json [--image FILE]

Steps: read the board (boards/NAME) and check the image: an ESP image for
that board's chip (first byte 0xE9, chip id in its header), and its sha256
when a .sha256 file sits beside it; validate the config against the board
(before touching the board); erase the whole flash with esptool (a smaller
vfs left by an older layout otherwise makes MicroPython loop in
fs_corrupted()); write the merged image at the chip's bootloader offset
(0x1000 on the ESP32, 0x0 on the S3 and C3); wait for the first boot (it
creates the filesystem), then upload over the raw REPL (mpremote's
transport) boot.py, main.py, config.json, board.json and the mqtt.ca file,
and soft-reset, waiting for the firmware's first "vegw: status" line.
`--upload-only` skips esptool (new config on a board that has the image).
Exit 0 when done, 2 on any error (one line on stderr).
"""
import argparse
import hashlib
import os
import pathlib
import subprocess
import sys
import time

from . import ROOT, FIRMWARE
from . import firmware_build as fwb

STATUS_MARKER = "vegw: status"
# Chip id in an ESP image's extended header (bytes 12-13, little endian).
CHIP_IDS = {"esp32": 0x0000, "esp32s3": 0x0009, "esp32c3": 0x0005}
IMAGE_MAGIC = 0xE9
FILES_KEPT_AS_SOURCE = ("boot.py", "main.py")  # the image freezes the rest


class FlashError(Exception):
    pass


def add_arguments(p):
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("Needs esptool and mpremote (pip install esptool mpremote, both in requirements-dev.txt).\n"
                "Exit status: 0 flashed (and status seen with --config), 2 any error (one line on stderr).")
    p.add_argument("--port", required=True, help="serial port of the board (e.g. /dev/ttyUSB0, COM5)")
    p.add_argument("--board", required=True, metavar="NAME", help="board: " + ", ".join(fwb.board_names()))
    p.add_argument("--image", metavar="FILE", help="merged image (default: build/firmware/vegw-NAME-<release>.bin "
                   "from `make firmware` or the release download)")
    p.add_argument("--config", metavar="FILE", help="config.json to validate and upload (and its mqtt.ca file)")
    p.add_argument("--baud", type=int, default=460800, help="esptool baud rate (default 460800; 115200 for long cables)")
    p.add_argument("--upload-only", action="store_true", help="skip erase and write: upload the files only")
    p.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for the first status after the upload (default 30; 0: do not wait)")


def _err(msg):
    sys.stderr.write("vegw flash: %s\n" % msg)
    return 2


def run(args):
    try:
        return _run(args)
    except FlashError as e:
        return _err(str(e))
    except fwb.BuildError as e:
        return _err(str(e))


def default_image(name):
    return ROOT / "build" / "firmware" / ("vegw-%s-%s.bin" % (name, fwb.toolchain()["MICROPYTHON_VERSION"]))


def check_image(path, mcu, rows=None, offset=0):
    """Raise FlashError unless `path` is an ESP image for `mcu` (and matches its
    .sha256) that ends inside the board's app slot (rows: its partition table)."""
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        hint = " (build it with `make firmware BOARD=...` or download it from the release)" if not path.exists() else ""
        raise FlashError("image %s: %s%s" % (path, e.strerror or e, hint))
    if len(data) < 24 or data[0] != IMAGE_MAGIC:
        raise FlashError("%s is not an ESP32 flash image (it must start with the bootloader, byte 0xE9)" % path)
    chip = data[12] | data[13] << 8
    if chip != CHIP_IDS[mcu]:
        names = dict((v, k) for k, v in CHIP_IDS.items())
        raise FlashError("%s is an image for %s, the board is %s" % (path, names.get(chip, "chip id %d" % chip), mcu))
    if rows:
        app = [r for r in rows if r[1] == "app"][0]
        if offset + len(data) > app[3] + app[4]:
            raise FlashError("%s (%d B at 0x%x) runs past the app slot, which ends at 0x%x: an image for another "
                             "partition table" % (path, len(data), offset, app[3] + app[4]))
    sha = path.with_name(path.name + ".sha256")
    if sha.exists():
        want = sha.read_text().split()[0].lower() if sha.read_text().split() else ""
        if hashlib.sha256(data).hexdigest() != want:
            raise FlashError("%s does not match %s: download it again" % (path, sha.name))
    return data


def _port_problem(port):
    if port.startswith("/") and not os.path.exists(port):
        return "no serial port %s (is the board plugged in? `ls /dev/ttyUSB* /dev/ttyACM*`)" % port
    return None


def _esptool(mcu, port, baud, *command):
    cmd = [sys.executable, "-m", "esptool", "--chip", mcu, "--port", port, "--baud", str(baud)] + list(command)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except OSError as e:
        raise FlashError("cannot run esptool: %s" % e)
    if r.returncode != 0:
        if "No module named esptool" in r.stderr:
            raise FlashError("esptool is not installed (pip install esptool)")
        lines = [l.strip() for l in (r.stderr + "\n" + r.stdout).splitlines() if l.strip()]
        err = [l for l in lines if "error" in l.lower() or "fatal" in l.lower() or "failed" in l.lower()]
        raise FlashError("esptool %s failed: %s" % (command[0], (err or lines or ["exit %d" % r.returncode])[-1]))
    return r.stdout


def _files(args, board_name):
    """[(device path, bytes)] to upload, config validated; before touching the board."""
    from .deploy_site import local_extras, DeployError

    ns = argparse.Namespace(board=board_name, config=args.config)
    try:
        extras, _ = local_extras(ns)
    except DeployError as e:
        raise FlashError(str(e))
    out = [("/" + n, (FIRMWARE / n).read_bytes()) for n in FILES_KEPT_AS_SOURCE]
    return out + extras


def _upload(port, files, wait):
    from .deploy_link import DeviceLink, LinkError

    link = None
    err = None
    for _ in range(20):  # the first boot formats the filesystem: give it time
        try:
            link = DeviceLink(port)
            break
        except LinkError as e:
            err = e
            time.sleep(1)
    if link is None:
        raise FlashError("the board did not come up after flashing: %s" % err)
    try:
        info = link.info()
        dirs = set()
        for dev, _ in files:  # e.g. a CA file under certs/
            parts = dev.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/" + "/".join(parts[:i]))
        link.mkdirs(dirs)
        for dev, data in files:
            link.write(dev, data)
        check = link.hashes([dev for dev, _ in files])
        bad = [dev for dev, data in files if check.get(dev) != hashlib.sha256(data).hexdigest()]
        if bad:
            raise FlashError("%s differs on the board after the upload; run vegw flash --upload-only again" % bad[0])
        line = None
        if wait > 0:
            line, _ = link.soft_reset_and_watch(STATUS_MARKER, wait)
    except LinkError as e:
        raise FlashError(str(e))
    finally:
        link.close()
    return info, line


def _run(args):
    bdir = fwb.board_dir(args.board)  # BuildError for an unknown board
    import json

    board = json.loads((bdir / "board.json").read_text())
    mcu = board["mcu"]
    offset = fwb.FLASH_OFFSET[mcu]
    image = pathlib.Path(args.image) if args.image else default_image(args.board)
    if not args.upload_only:
        check_image(image, mcu, fwb.partitions(bdir / "partitions.csv"), offset)
    files = _files(args, args.board)
    why = _port_problem(args.port)
    if why:
        raise FlashError(why)
    if not args.upload_only:
        sys.stderr.write("vegw flash: erasing %s (%s)\n" % (args.port, mcu))
        _esptool(mcu, args.port, args.baud, "erase-flash")
        sys.stderr.write("vegw flash: writing %s at 0x%x\n" % (image.name, offset))
        _esptool(mcu, args.port, args.baud, "write-flash", "0x%x" % offset, str(image))
    names = ", ".join(dev for dev, _ in files)
    sys.stderr.write("vegw flash: uploading %s\n" % names)
    info, line = _upload(args.port, files, args.wait if args.config else 0)
    machine = info.get("machine", "")
    if "vegw " + args.board not in machine:
        sys.stderr.write("vegw flash: warning: the board reports %r, not the vegw %s image\n" % (machine, args.board))
    sys.stdout.write("flashed %s: %s\n" % (args.board, names))
    if args.config and args.wait > 0:
        if line is None:
            raise FlashError("no %r line within %g s after the reset: run `vegw doctor --port %s`" % (
                STATUS_MARKER, args.wait, args.port))
        sys.stdout.write("first status: %s\n" % line)
    return 0
