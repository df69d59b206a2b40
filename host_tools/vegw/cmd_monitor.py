"""`vegw monitor`: live table of every gateway and device on a broker.

Subscribes (prefix default "vegw") to
  <prefix>/+/+/state         JSON: SOC (%), V (V), I (A), PPV (W), optional ts, seq
  <prefix>/+/status          JSON: link "wifi"|"cellular", rssi_dbm, alarms_active, uptime_s, ...
  <prefix>/+/availability    retained "online" / "offline" (the gateway's last will)
  <prefix>/+/event           JSON {"t", "rule", "event", "severity"}

Messages only update a table under a lock (paho's network thread); the screen
is redrawn by the main thread at most --refresh times a second, with one
O(n log n) sort per redraw and only the rows that fit formatted, so 1,000
gateways x 3 devices publishing every second stay smooth.

last_seen: the newer of the state's "ts" (unix seconds; else the time the
message arrived; a retained state without "ts" has an unknown age) and what
the gateway's status says of the device (`devices.NAME.age_s` at the status's
"ts"): a quiet device re-sends its state only every heartbeat, but the status
still tells how long ago the gateway last heard it.

A device is stale when its gateway is "offline", when the gateway's latest
status (newer than the device's state) calls it stale, or when last_seen is
unknown or older than --stale seconds (default: twice the heartbeat the
gateway declares in its status, `heartbeat_s`; 600 s if it declares none).
A device the gateway's status lists but that never reported (no state,
`age_s` null) is shown too: last_seen null, never_heard true, stale.

`--once --json` is the scripting contract: listen --wait seconds, print one
JSON array (one object per gateway+device) sorted ascending by --sort with
nulls last, exit 0.
"""
import fnmatch
import json
import os
import select
import shutil
import sys
import threading
import time

from . import mqtt_link

_MAX_ROWS = 200000  # gateway+device pairs tracked; beyond this new pairs are dropped (counted)
_DEFAULT_HEARTBEAT = 300  # the firmware's default, for a gateway that declares none

# event names that raise / clear an alarm (the alarm engine's vocabulary plus common synonyms)
_RAISE = ("raise", "raised", "alarm", "active", "set", "on", "trigger", "triggered", "warning")
_CLEAR = ("clear", "cleared", "ok", "off", "resolved", "reset", "end")

SORT_KEYS = ("soc", "voltage", "current", "pv_power", "last_seen", "name")


def _num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if v != v or v in (float("inf"), float("-inf")):
        return None
    return v


class Fleet:
    """What the broker told us, keyed by gateway and (gateway, device)."""

    def __init__(self, prefix="vegw", stale_s=None, clock=time.time):
        self.prefix = prefix.rstrip("/") + "/"
        self.stale_s = stale_s  # None: twice each gateway's declared heartbeat
        self.clock = clock
        self.lock = threading.Lock()
        # (gw, dev) -> [soc, voltage, current, pv, seen by state or None,
        #               seen by status or None, stale by status, status time or None, state time or None]
        self.devices = {}
        self.gateways = {}  # gw -> {"availability", "link", "rssi", "alarms": set, "fw"}
        self.messages = 0
        self.bad = 0  # payloads that were not what the topic promises
        self.dropped = 0  # new pairs refused beyond _MAX_ROWS
        self.version = 0  # bumps on every change: the redraw loop skips idle frames

    def topics(self):
        p = self.prefix
        return [p + "+/+/state", p + "+/status", p + "+/availability", p + "+/event"]

    def _gw(self, gw):
        g = self.gateways.get(gw)
        if g is None:
            g = self.gateways[gw] = {"availability": None, "link": None, "rssi": None, "alarms": set(), "fw": None,
                                     "heartbeat": None}
        return g

    def _row(self, gw, dev):
        key = (gw, dev)
        row = self.devices.get(key)
        if row is None:
            if len(self.devices) >= _MAX_ROWS:
                self.dropped += 1
                return None
            row = self.devices[key] = [None, None, None, None, None, None, False, None, None]
            self._gw(gw)
        return row

    def _status_devices(self, gw, d, retained, now):
        """The gateway's own view of its devices: age of the last reading,
        stale flag, and devices that never reported."""
        devs = d.get("devices")
        if isinstance(devs, list):  # tolerate [{"name": ..., ...}]
            devs = {x.get("name"): x for x in devs if isinstance(x, dict) and isinstance(x.get("name"), str)}
        if not isinstance(devs, dict):
            return
        ts = _num(d.get("ts"))
        at = ts if ts is not None else (None if retained else now)
        for name, info in devs.items():
            if not isinstance(name, str) or not isinstance(info, dict):
                continue
            row = self._row(gw, name)
            if row is None:
                continue
            age = _num(info.get("age_s"))
            row[5] = (at - age) if (at is not None and age is not None) else row[5]
            row[6] = info.get("stale") is True
            row[7] = at

    def handle(self, topic, payload, retained=False, now=None):
        """Feed one message. Never raises on bad input."""
        now = self.clock() if now is None else now
        self.messages += 1
        if not topic.startswith(self.prefix):
            return
        parts = topic[len(self.prefix):].split("/")
        try:
            text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else str(payload)
        except UnicodeDecodeError:
            self.bad += 1
            return
        with self.lock:
            self.version += 1
            if len(parts) == 3 and parts[2] == "state":
                self._state(parts[0], parts[1], text, retained, now)
            elif len(parts) == 2 and parts[1] == "availability":
                self._gw(parts[0])["availability"] = text.strip().lower() or None
            elif len(parts) == 2 and parts[1] == "status":
                d = self._json(text)
                if d is not None:
                    g = self._gw(parts[0])
                    if isinstance(d.get("link"), str):
                        g["link"] = d["link"]
                    g["rssi"] = _num(d.get("rssi_dbm"))
                    if isinstance(d.get("fw"), str):
                        g["fw"] = d["fw"]
                    act = d.get("alarms_active")
                    if isinstance(act, list):  # the engine's own list beats counting events
                        g["alarms"] = set(str(a) for a in act)
                    hb = _num(d.get("heartbeat_s"))
                    if hb is not None and hb > 0:
                        g["heartbeat"] = hb
                    self._status_devices(parts[0], d, retained, now)
            elif len(parts) == 2 and parts[1] == "event":
                d = self._json(text)
                if d is not None:
                    ev = str(d.get("event", "")).lower()
                    rule = str(d.get("rule", "?"))
                    alarms = self._gw(parts[0])["alarms"]
                    if ev in _RAISE:
                        alarms.add(rule)
                    elif ev in _CLEAR:
                        alarms.discard(rule)

    def _json(self, text):
        try:
            d = json.loads(text)
        except ValueError:
            d = None
        if not isinstance(d, dict):
            self.bad += 1
            return None
        return d

    def _state(self, gw, dev, text, retained, now):
        d = self._json(text)
        if d is None:
            return
        row = self._row(gw, dev)
        if row is None:
            return
        ts = _num(d.get("ts"))
        if ts is not None:
            row[4] = ts
        elif not retained:
            row[4] = now
        elif row[4] is None:
            row[4] = None  # retained, no ts: age unknown
        row[8] = row[4] if row[4] is not None else now
        # a state message is the device's whole latest state: missing -> null
        row[0] = _num(d.get("SOC"))
        row[1] = _num(d.get("V"))
        row[2] = _num(d.get("I"))
        row[3] = _num(d.get("PPV"))

    def rows(self, sort="soc", now=None, match=None):
        """List of row dicts sorted ascending by `sort`, nulls last; `match`
        (a glob) keeps only gateways whose id matches."""
        now = self.clock() if now is None else now
        with self.lock:  # copy under the lock: rows are updated in place by the network thread
            items = [(k, tuple(v)) for k, v in self.devices.items()]
            gws = {k: (v["availability"], v["link"], v["rssi"], len(v["alarms"]), v["heartbeat"])
                   for k, v in self.gateways.items()}
        if match:
            items = [it for it in items if fnmatch.fnmatchcase(it[0][0], match)]
        out = []
        for (gw, dev), r in items:
            avail, link, rssi, nalarms, hb = gws.get(gw, (None, None, None, 0, None))
            seens = [x for x in (r[4], r[5]) if x is not None]
            seen = max(seens) if seens else None
            last = None if seen is None else round(max(0.0, now - seen), 1)
            limit = self.stale_s if self.stale_s is not None else 2 * (hb or _DEFAULT_HEARTBEAT)
            # the gateway's verdict counts unless a state came after that status
            by_status = r[6] and r[7] is not None and (r[8] is None or r[8] <= r[7])
            never = r[4] is None and r[5] is None and r[7] is not None and r[8] is None
            stale = last is None or last > limit or avail == "offline" or by_status
            out.append({"gateway": gw, "device": dev, "soc": r[0], "voltage": r[1], "current": r[2],
                        "pv_power": r[3], "alarms": nalarms, "link": link, "rssi_dbm": rssi,
                        "availability": avail, "last_seen": last, "stale": stale, "never_heard": never,
                        "heartbeat_s": hb})
        out.sort(key=sort_key(sort))
        return out


def sort_key(sort):
    if sort == "name":
        return lambda r: (r["gateway"], r["device"])
    field = sort

    def key(r):
        v = r[field]
        return (v is None, v if v is not None else 0, r["gateway"], r["device"])

    return key


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
