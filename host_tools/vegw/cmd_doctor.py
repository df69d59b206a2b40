"""vegw doctor: first contact with a board on a USB cable.

    vegw doctor --port /dev/ttyUSB0

Stops the gateway (a soft reset into the raw REPL: boot.py runs, main.py
does not), sends the device-side probe
(host_tools/vegw/doctor_probe.py) and runs its checks one by one, printing
one line per check with what to do when it fails; then connects to the
config's MQTT broker from this computer, and soft-resets the board so the
gateway starts again. The probe reads the board's own /config.json and
/board.json: it checks what the gateway will use.

Exit status: 0 nothing failed (warnings allowed), 1 a check failed,
2 the board could not be reached (one line on stderr).
"""
import argparse
import ast
import json
import os
import pathlib
import sys
import tempfile

from . import firmware_build as fwb

PROBE = pathlib.Path(__file__).with_name("doctor_probe.py")
CHECKS = ("firmware", "memory", "partitions", "clock", "uart", "ble", "wifi", "broker", "modem", "flashlog")
MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def add_arguments(p):
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("checks, in order: %s, mqtt (from this computer)\n"
                "Exit status: 0 nothing failed, 1 a check failed, 2 board not reachable." % ", ".join(CHECKS))
    p.add_argument("--port", required=True, help="serial port of the board (e.g. /dev/ttyUSB0, COM5)")
    p.add_argument("--only", metavar="CHECK[,CHECK]", help="run only these checks (names below)")
    p.add_argument("--listen", type=float, default=2.5, metavar="SECONDS", help="time to listen on each VE.Direct UART (default 2.5)")
    p.add_argument("--scan", type=float, default=5.0, metavar="SECONDS", help="BLE scan time (default 5)")
    p.add_argument("--no-reset", action="store_true", help="leave the board in the REPL afterwards (no soft reset)")
    p.add_argument("--baud", type=int, default=115200, help=argparse.SUPPRESS)
    # tests: "esp32=standin_esp32,machine=standin_machine" (the unix port has no ESP32 modules)
    p.add_argument("--standin-modules", default="", help=argparse.SUPPRESS)


def _err(msg):
    sys.stderr.write("vegw doctor: %s\n" % msg)
    return 2


def probe_source():
    """The probe without comment lines: less for the board's compiler to chew."""
    lines = [l for l in PROBE.read_text().splitlines() if l.strip() and not l.lstrip().startswith("#")]
    return "\n".join(lines) + "\n"


def expected_table(board_name):
    """[(label, offset, size)] of boards/NAME/partitions.csv, [] for an unknown board."""
    try:
        rows = fwb.partitions(fwb.BOARDS / board_name / "partitions.csv")
    except (OSError, fwb.BuildError, TypeError):
        return []
    return [(r[0], r[3], r[4]) for r in rows]


def format_line(name, status, detail, hint):
    line = "%-4s  %-12s %s" % (MARK.get(status, status), name, detail)
    if hint and status in ("fail", "warn"):
        line += " -> " + hint
    return line


class Printer:
    """Turns the probe's output stream into result lines as they arrive."""

    def __init__(self, out):
        self.out = out
        self.buf = b""
        self.results = []

    def feed(self, data):
        self.buf += data
        while b"\n" in self.buf:
            raw, self.buf = self.buf.split(b"\n", 1)
            self.line(raw.decode(errors="replace").strip("\r\n\x04 "))

    def line(self, text):
        if not text:
            return
        try:
            r = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            r = None
        if not (isinstance(r, tuple) and len(r) == 4):
            self.out.write("      %s\n" % text)  # anything else the board printed
            return
        self.add(*r)

    def add(self, name, status, detail, hint=""):
        self.results.append((name, status))
        self.out.write(format_line(name, status, detail, hint) + "\n")
        self.out.flush()


def mqtt_check(cfg, ca_text):
    """(status, detail, hint): the config's broker and credentials, from this computer."""
    from . import mqtt_link

    m = cfg.get("mqtt") if isinstance(cfg, dict) else None
    if not isinstance(m, dict) or not m.get("host"):
        return "skip", "no mqtt.host in config.json", ""
    tls = bool(m.get("tls"))
    port = m.get("port") or (8883 if tls else 1883)
    ca_file = None
    if tls and ca_text:
        fd, ca_file = tempfile.mkstemp(suffix=".pem")
        os.write(fd, ca_text.encode())
        os.close(fd)
    args = argparse.Namespace(broker="%s:%d" % (m["host"], port), username=m.get("username") or None,
                              password=m.get("password") or None, tls=tls, ca=ca_file, insecure=False)
    try:
        c = mqtt_link.connect(args, "vegw-doctor", timeout=10)
        mqtt_link.close(c)
    except mqtt_link.LinkError as e:
        return "fail", str(e), "check mqtt.host/port/username/password/tls/ca in config.json, or the broker"
    finally:
        if ca_file:
            os.unlink(ca_file)
    return "ok", "connected to %s:%d%s%s" % (m["host"], port, " with TLS" if tls else "",
                                             " as " + m["username"] if m.get("username") else ""), ""


_DUMP = (
    "import json\n"
    "def _r(p, n):\n"
    " try:\n"
    "  with open(p) as f:\n"
    "   return f.read(n)\n"
    " except OSError:\n"
    "  return None\n"
    "_c = _r('config.json', 16384)\n"
    "_ca = None\n"
    "try:\n"
    " _m = json.loads(_c).get('mqtt') or {}\n"
    " _ca = _r(_m.get('ca'), 8192) if _m.get('ca') else None\n"
    "except (ValueError, TypeError, AttributeError):\n"
    " pass\n"
    "print(repr((_c, _r('board.json', 16384), _ca)))\n"
)


def run(args):
    from .deploy_link import DeviceLink, LinkError

    only = set(s.strip() for s in args.only.split(",")) if args.only else None
    if only is not None:
        bad = only - set(CHECKS) - {"mqtt"}
        if bad:
            return _err("unknown check %s (checks: %s, mqtt)" % (", ".join(sorted(bad)), ", ".join(CHECKS)))
    if args.port.startswith("/") and not os.path.exists(args.port):
        return _err("no serial port %s (is the board plugged in? `ls /dev/ttyUSB* /dev/ttyACM*`)" % args.port)
    modules = {}
    for pair in filter(None, args.standin_modules.split(",")):
        k, _, v = pair.partition("=")
        modules[k.strip()] = v.strip()
    try:
        # a soft reset into the raw REPL: the gateway's objects leave the heap
        # (the probe compiles there, and the memory check sees a clean heap)
        link = DeviceLink(args.port, args.baud, soft_reset=True)
    except LinkError as e:
        return _err(str(e))
    out = sys.stdout
    printer = Printer(out)
    try:
        try:
            info = link.info()
            raw = link.run(_DUMP, "reading config.json and board.json").decode(errors="replace").strip()
            cfg_text, board_text, ca_text = ast.literal_eval(raw.splitlines()[-1])
            board = _json(board_text) or {}
            cfg = _json(cfg_text) or {}
            out.write("vegw doctor %s: %s, board %s\n" % (args.port, info.get("machine"), board.get("name", "unknown")))
            opts = {"min_version": (1, 27), "listen_ms": int(args.listen * 1000), "scan_ms": int(args.scan * 1000),
                    "table": expected_table(board.get("name")), "modules": modules}
            link.run(probe_source(), "loading the doctor's probe")
            link.run("setup(%r)" % (opts,), "starting the probe")
            for name in CHECKS:
                if only is None or name in only:
                    link.run("check(%r)" % name, "checking " + name, timeout=30, on_output=printer.feed)
                    printer.feed(b"\n")
        except LinkError as e:
            return _err(str(e))
        except (ValueError, SyntaxError, IndexError):
            return _err("unexpected answer from the board while reading its files")
        if only is None or "mqtt" in only:
            printer.add("mqtt", *mqtt_check(cfg, ca_text))
        if not args.no_reset:
            try:
                link.soft_reset_and_watch("vegw: status", 0)  # the gateway starts again
            except LinkError:
                pass
    finally:
        link.close()
    counts = {}
    for _, status in printer.results:
        counts[status] = counts.get(status, 0) + 1
    out.write("summary: %d ok, %d warnings, %d failed, %d skipped\n" % (
        counts.get("ok", 0), counts.get("warn", 0), counts.get("fail", 0), counts.get("skip", 0)))
    return 1 if counts.get("fail") else 0


def _json(text):
    if not text:
        return None
    try:
        v = json.loads(text)
    except ValueError:
        return None
    return v if isinstance(v, dict) else None
