"""vegw alarms: check rules, replay history through them.

Contracts (scripts and acceptance checks rely on them):

  vegw alarms check RULES_FILE
      exit 0 and a one-line summary on stdout when every rule parses;
      otherwise exit 2 and one line per bad rule on stderr,
      `line L, column C: reason` (1-based, C at the offending token).

  vegw alarms replay --rules RULES_FILE [--stale SECONDS] [INPUT|-]
      INPUT: JSON lines, each a decoded block as `vegw decode` prints it plus
      "t" (seconds) and "device"; in time order. Runs the firmware's engine
      (firmware/lib/alarm_engine.py) in simulated time: at each line, timers
      run at the line's t first, then the block is applied. Prints one JSON
      object per event, {"t", "rule", "event", "severity"}, t being the time
      of the line that caused it. Built-in rules (stale:DEV, error:DEV,
      device_alarm:DEV, device_warning:DEV) add events of their own.
      A line {"t": T, "ack": NAME} acknowledges a rule at T. The gateway's
      flapping limit is off unless --rate-limit is given.

RULES_FILE is a rules text file, or a config.json whose alarms.rules list is
used (L is then the 1-based index in that list, and the config's device names
and stale_timeout apply).
"""
import json
import sys

from . import LIB  # noqa: F401  (puts firmware/lib on sys.path)

import alarm_engine
import alarm_rules
import metrics

try:
    import ble_readout  # noqa: F401  registers the BLE-only field names rules may use
except ImportError:  # pragma: no cover
    pass


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    c = sub.add_parser("check", help="parse a rules file; report every bad rule with line, column and reason")
    c.add_argument("rules", metavar="RULES_FILE")
    c.add_argument("--devices", help="comma-separated device names rules may use (default: any)")
    r = sub.add_parser("replay", help="run history (JSON lines) through the rules in simulated time")
    r.add_argument("--rules", required=True, metavar="RULES_FILE")
    r.add_argument("input", nargs="?", default="-", metavar="INPUT", help="JSON lines file or - for stdin")
    r.add_argument("--stale", type=float, default=None, metavar="SECONDS",
                   help="stale timeout per device (default 60, or the config's alarms.stale_timeout)")
    r.add_argument("--devices", help="comma-separated device names rules may use (default: any)")
    r.add_argument("--no-builtin", action="store_true", help="switch off the built-in rules (stale, error, device alarms)")
    r.add_argument("--rate-limit", action="store_true",
                   help="suppress flapping rules as the gateway does (more than 10 raises an hour); off by default "
                        "so the output follows the rule semantics exactly")
    r.add_argument("--values", action="store_true", help="add the values that triggered each event")
    r.add_argument("--capacity", type=float, default=None, metavar="AH",
                   help="battery capacity for derived metrics (full_cycles, soh)")


def _err(msg):
    sys.stderr.write("vegw alarms: %s\n" % msg)
    return 2


def _load_rules(path, devices):
    """(rules, errors, cfg) or raises _Fail with a one-line message."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise _Fail("cannot read rules file '%s': %s" % (path, e.strerror or e))
    try:
        text = raw.decode("utf-8-sig")  # a BOM from a Windows editor is not a rule character
    except UnicodeDecodeError as e:
        raise _Fail("rules file '%s' is not UTF-8 text (byte %d)" % (path, e.start))
    cfg = None
    source = text
    if path.endswith(".json"):
        try:
            cfg = json.loads(text)
        except ValueError as e:
            raise _Fail("'%s' is not valid JSON: %s" % (path, e))
        al = cfg.get("alarms") if isinstance(cfg, dict) else None
        source = al.get("rules") if isinstance(al, dict) else None
        if not isinstance(source, list):
            raise _Fail("'%s' has no alarms.rules list" % path)
        if devices is None and isinstance(cfg.get("devices"), list):
            devices = [d.get("name") for d in cfg["devices"] if isinstance(d, dict) and isinstance(d.get("name"), str)]
    rules, errors = alarm_rules.parse_rules(source, alarm_rules.default_field_ok(devices))
    return rules, errors, cfg


class _Fail(Exception):
    pass


def _devices(arg):
    if not arg:
        return None
    return [d.strip() for d in arg.split(",") if d.strip()]


def _report(errors):
    for line, col, msg in errors:
        sys.stderr.write("line %d, column %d: %s\n" % (line, col, msg))


def run(args):
    if args.action not in ("check", "replay"):
        return _err("choose an action: check or replay (vegw alarms -h)")
    try:
        return _check(args) if args.action == "check" else _replay(args)
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as e:  # noqa: BLE001 - the contract: one line, exit 2, never a traceback
        return _err("%s failed: %s: %s" % (args.action, type(e).__name__, e))


def _check(args):
    try:
        rules, errors, _ = _load_rules(args.rules, _devices(args.devices))
    except _Fail as e:
        return _err(str(e))
    if errors:
        _report(errors)
        return 2
    counts = [0, 0, 0]
    for r in rules:
        counts[r[1]] += 1
    print("ok: %d rule%s (%d alarm, %d warning, %d info)" % (
        len(rules), "" if len(rules) == 1 else "s", counts[2], counts[1], counts[0]))
    return 0


def _metric_refs(rules):
    """Devices whose rules read a derived metric."""
    names = set(f[0] for f in metrics.battery_fields() + metrics.solar_fields())
    out = set()
    for r in rules:
        for dev, field in alarm_rules.refs(r):
            if field in names:
                out.add(dev)
    return out


def _replay(args):
    try:
        rules, errors, cfg = _load_rules(args.rules, _devices(args.devices))
    except _Fail as e:
        return _err(str(e))
    if errors:
        _report(errors)
        return 2
    stale = args.stale
    builtin = None
    al = cfg.get("alarms", {}) if isinstance(cfg, dict) else {}
    if stale is None:
        stale = al.get("stale_timeout", 60) if isinstance(al.get("stale_timeout", 60), (int, float)) else 60
    if stale <= 0:
        return _err("--stale must be positive")
    if stale == int(stale):
        stale = int(stale)
    if isinstance(al.get("builtin"), dict):
        builtin = al["builtin"]
    if args.no_builtin:
        builtin = {"stale": False, "error": False, "device_alarm": False}
    keys = ("t", "rule", "event", "severity", "values") if args.values else ("t", "rule", "event", "severity")
    out = sys.stdout

    def emit(ev):
        out.write(json.dumps({k: ev[k] for k in keys}) + "\n")

    devs = []
    for r in rules:
        for dev, _ in alarm_rules.refs(r):
            if dev not in devs:
                devs.append(dev)
    per_dev = {}
    if isinstance(cfg, dict) and isinstance(cfg.get("devices"), list) and args.stale is None:
        for d in cfg["devices"]:
            if isinstance(d, dict) and isinstance(d.get("stale_timeout"), (int, float)) and d["stale_timeout"] > 0:
                per_dev[str(d.get("name"))] = d["stale_timeout"]
    engine = alarm_engine.Engine(rules, on_event=emit, stale_s=stale, stale_by_device=per_dev, builtin=builtin,
                                 devices=devs, flap_max=10 if args.rate_limit else 0)
    want_metrics = _metric_refs(rules)
    mobjs = {}
    try:
        src = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8", errors="replace")
    except OSError as e:
        return _err("cannot read input '%s': %s" % (args.input, e.strerror or e))
    bad = 0
    first_bad = None
    n = 0
    last_t = None
    with src:
        for lineno, line in enumerate(src, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            t = obj.get("t") if isinstance(obj, dict) else None
            if not isinstance(t, (int, float)) or isinstance(t, bool) or t != t:
                bad += 1
                first_bad = first_bad or lineno
                continue
            if last_t is not None and t < last_t:
                bad += 1  # out of order: the engine's timers only run forward
                first_bad = first_bad or lineno
                continue
            last_t = t
            if "ack" in obj and "device" not in obj:
                engine.tick(t)
                engine.acknowledge(str(obj["ack"]), t)
                continue
            dev = obj.get("device")
            if not isinstance(dev, str):
                bad += 1
                first_bad = first_bad or lineno
                continue
            block = {k: v for k, v in obj.items() if k not in ("t", "device")}
            if dev in want_metrics:
                m = mobjs.get(dev)
                if m is None:
                    kw = {"max_gap_s": stale}
                    if args.capacity:
                        kw["capacity_ah"] = args.capacity
                    m = metrics.for_block(block, **kw)
                    if m is not None:
                        mobjs[dev] = m
                if m is not None:
                    m.update(block, t)
                    for k, v in m.values(t).items():
                        block.setdefault(k, v)
            engine.tick(t)
            engine.update(dev, block, t)
            n += 1
    out.flush()
    if bad:
        sys.stderr.write("vegw alarms: skipped %d input line%s without a number \"t\", a \"device\" or in time order "
                         "(first: line %d)\n" % (bad, "" if bad == 1 else "s", first_bad))
    if n == 0:  # nothing was replayed: "no events" would be a false all-clear
        return _err("no readings in %s: nothing replayed (expected JSON lines {\"t\": ..., \"device\": ..., FIELD: ...}, "
                    "as `vegw logs --format jsonl` writes)" % ("stdin" if args.input == "-" else args.input))
    return 0
