"""`vegw monitor`: live table of every gateway and device on a broker.

Subscribes (prefix default "vegw") to
  <prefix>/+/+/state         JSON: SOC (%), V (V), I (A), PPV (W), optional ts, seq
  <prefix>/+/status          JSON: link "wifi"|"cellular", rssi_dbm, alarms_active, uptime_s, ...
  <prefix>/+/availability    retained "online" / "offline" (the gateway's last will)
  <prefix>/+/event           JSON {"t", "rule", "event", "severity"}

The model (vegw/fleet.py, shared with `vegw dashboard`) is updated under a
lock by paho's network thread; the screen is redrawn by the main thread at
most --refresh times a second, with one
O(n log n) sort per redraw and only the rows that fit formatted, so 1,000
gateways x 3 devices publishing every second stay smooth.

last_seen and staleness are the fleet model's (vegw/fleet.py says how they
are taken); --stale overrides its limit (default: twice the heartbeat the
gateway declares). A device the gateway's status lists but that never reported (no state,
`age_s` null) is shown too: last_seen null, never_heard true, stale.

`--once --json` is the scripting contract: listen --wait seconds, print one
JSON array (one object per gateway+device) sorted ascending by --sort with
nulls last, exit 0.
"""
import json
import os
import select
import shutil
import sys
import time

from . import mqtt_link

# the model (topics, staleness, sorting) is shared with `vegw dashboard`
from .fleet import SORT_KEYS, Fleet, sort_key  # noqa: E402,F401


def add_arguments(parser):
    parser.add_argument("--prefix", default="vegw", help="topic prefix (default vegw)")
    parser.add_argument("--sort", default="soc", choices=SORT_KEYS, help="ascending, nulls last (default soc)")
    parser.add_argument("--stale", type=float, default=None, metavar="SECONDS",
                        help="a device is stale after this long unheard (default: twice the heartbeat its gateway "
                        "declares, 600 s if none)")
    parser.add_argument("--filter", metavar="GLOB", help="only gateways whose id matches, e.g. 'site-1*'")
    parser.add_argument("--once", action="store_true", help="listen --wait seconds, print once, exit")
    parser.add_argument("--json", action="store_true", help="with --once: print one JSON array")
    parser.add_argument("--wait", type=float, default=5.0, metavar="SECONDS", help="with --once (default 5)")
    parser.add_argument("--refresh", type=float, default=2.0, metavar="HZ", help="redraws per second at most (default 2)")
    mqtt_link.add_arguments(parser, default="127.0.0.1:1883")


def _err(msg):
    sys.stderr.write("vegw monitor: %s\n" % msg)
    return 2


def connect(args, fleet):
    """Connected paho client (mqtt_link: auth, TLS, CONNACK), its network
    loop running, subscribed to the fleet's topics (again on a reconnect)."""

    def on_message(client, userdata, msg):
        fleet.handle(msg.topic, msg.payload, msg.retain)

    return mqtt_link.connect(args, "vegw-monitor",
                             on_connect=lambda c: c.subscribe([(t, 0) for t in fleet.topics()]),
                             on_message=on_message)


def _run(args):
    if args.json and not args.once:
        return _err("--json needs --once (the live view is a table)")
    if args.wait < 0 or (args.stale is not None and args.stale <= 0) or args.refresh <= 0:
        return _err("--wait, --stale and --refresh must be positive")
    fleet = Fleet(args.prefix, args.stale)
    errors = []
    try:
        client = connect(args, fleet)
    except mqtt_link.LinkError as e:
        return _err(str(e))
    try:
        if args.once:
            return _once(args, fleet, errors)
        return _live(args, fleet, errors)
    finally:
        try:
            mqtt_link.close(client)
        except Exception:  # noqa: BLE001 - already gone
            pass


def _once(args, fleet, errors):
    time.sleep(args.wait)
    if errors:
        return _err(errors[0])
    rows = fleet.rows(args.sort, match=args.filter)
    if args.json:
        sys.stdout.write(json.dumps(rows) + "\n")
    else:
        sys.stdout.write("\n".join(render(rows, fleet, args, height=None, color=False)) + "\n")
    return 0


def _fmt(v, spec, width):
    s = "-" if v is None else spec % v
    return " " * (width - len(s)) + s


_COLS = (("GATEWAY", 16), ("DEVICE", 12), ("SOC%", 6), ("V", 7), ("A", 7), ("PV W", 6), ("ALRM", 4),
         ("LINK", 8), ("RSSI", 5), ("SEEN", 7), ("", 7))


def _age(s):
    if s is None:
        return "?"
    if s < 100:
        return "%.0fs" % s
    if s < 6000:
        return "%.0fm" % (s / 60)
    if s < 360000:
        return "%.0fh" % (s / 3600)
    return "%.0fd" % (s / 86400)


def render(rows, fleet, args, height=None, color=True, total=None):
    """Lines of the table; only the first `height` rows are formatted.
    `total` is the whole row list when `rows` is one page of it."""
    allrows = rows if total is None else total
    nstale = sum(1 for r in allrows if r["stale"])
    ngw = len({r["gateway"] for r in allrows})
    head = "vegw monitor  %s  prefix %s  %d gateways, %d devices, %d stale  sort %s  msgs %d%s" % (
        args.broker, args.prefix, ngw, len(allrows), nstale, args.sort, fleet.messages,
        ("  bad %d" % fleet.bad) if fleet.bad else "")
    cols = "".join((n + " " * (w - len(n))) if i < 2 else (" " * (w - len(n)) + n) + " " for i, (n, w) in
                   enumerate(_COLS))
    lines = [head, cols]
    shown = rows if height is None else rows[: max(0, height - 3)]
    for r in shown:
        gw = r["gateway"][:15]
        dev = r["device"][:11]
        state = "OFFLINE" if r["availability"] == "offline" else (
            "NEVER" if r.get("never_heard") else ("STALE" if r["stale"] else ""))
        line = "".join((
            gw + " " * (16 - len(gw)), dev + " " * (12 - len(dev)),
            _fmt(r["soc"], "%.1f", 6), " ", _fmt(r["voltage"], "%.2f", 7), " ", _fmt(r["current"], "%.1f", 7), " ",
            _fmt(r["pv_power"], "%.0f", 6), " ", _fmt(r["alarms"] or None, "%d", 4), " ",
            _fmt(r["link"], "%s", 8), " ", _fmt(r["rssi_dbm"], "%.0f", 5), " ",
            _fmt("never" if r.get("never_heard") else _age(r["last_seen"]), "%s", 7), " ",
            state))
        if color and (r["stale"] or r["alarms"]):
            line = ("\x1b[7;31m" if r["stale"] else "\x1b[33m") + line + "\x1b[0m"
        lines.append(line)
    if height is not None and len(rows) > len(shown):
        lines.append("... %d more rows" % (len(rows) - len(shown)))
    return lines


_KEYS_HELP = "keys: s sort  n/p page  q quit"


class _Keys:
    """Single keypresses from a terminal (cbreak mode), restored on exit."""

    def __init__(self):
        self.fd = None
        try:
            import termios
            import tty

            if sys.stdin.isatty():
                self.fd = sys.stdin.fileno()
                self.saved = termios.tcgetattr(self.fd)
                tty.setcbreak(self.fd)
        except (ImportError, OSError):
            self.fd = None

    def read(self, timeout):
        if self.fd is None:
            time.sleep(timeout)
            return ""
        r, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 16).decode("utf-8", "replace") if r else ""

    def close(self):
        if self.fd is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def _live(args, fleet, errors):
    tty = sys.stdout.isatty()
    period = 1.0 / args.refresh
    drawn = -1
    last_draw = 0.0
    page = 0
    keys = _Keys() if tty else None
    if tty:
        sys.stdout.write("\x1b[?25l")  # hide the cursor while drawing
    try:
        while True:
            if errors:
                return _err(errors[0])
            now = time.monotonic()
            # redraw on change, and at least every 5 s so ages move on
            if fleet.version != drawn or now - last_draw > 5:
                drawn = fleet.version
                last_draw = now
                rows = fleet.rows(args.sort, match=args.filter)
                if tty:
                    size = shutil.get_terminal_size((120, 40))
                    per = max(1, size.lines - 4)
                    page = min(page, max(0, (len(rows) - 1) // per))
                    lines = render(rows[page * per:], fleet, args, height=size.lines - 1, color=True, total=rows)
                    lines.append(_KEYS_HELP + "  page %d/%d" % (page + 1, max(1, (len(rows) + per - 1) // per)))
                    sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(ln[: size.columns + 12] for ln in lines))
                else:
                    sys.stdout.write("\n".join(render(rows, fleet, args, height=None, color=False)) + "\n\n")
                sys.stdout.flush()
            key = keys.read(period) if keys is not None else (time.sleep(period) or "")
            if "q" in key:
                return 0
            if "s" in key:
                args.sort = SORT_KEYS[(SORT_KEYS.index(args.sort) + 1) % len(SORT_KEYS)]
                page, drawn = 0, -1
            if "n" in key or " " in key:
                page, drawn = page + 1, -1
            if "p" in key or "b" in key:
                page, drawn = max(0, page - 1), -1
    except KeyboardInterrupt:
        return 0
    finally:
        if keys is not None:
            keys.close()
        if tty:
            sys.stdout.write("\x1b[?25h\n")
            sys.stdout.flush()


def run(args):
    # Never a traceback for the user: an unexpected failure is one line (VEGW_DEBUG=1 shows it).
    try:
        return _run(args)
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as e:  # noqa: BLE001
        import os

        if os.environ.get("VEGW_DEBUG"):
            raise
        return _err("unexpected %s: %s (VEGW_DEBUG=1 for details)" % (type(e).__name__, e))
