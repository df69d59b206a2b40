"""`vegw config new [FILE]` and `vegw config validate FILE [--board NAME]`.

Validation runs firmware/lib/cfg_schema.py, the very code the gateway runs on
its config.json at boot. Annotations in the starter file live in "_comment"
keys: JSON has no comments, and the schema accepts and drops any key that
starts with "_comment" (at any level).
"""
import json
import re
import os
import sys

from . import ROOT

# Strings in the starter config a user must replace; `validate` warns on them.
PLACEHOLDER = "CHANGE-ME"

EXAMPLE_KEY = "0123456789abcdef0123456789abcdef"


def starter_config():
    """The annotated starter config as a dict (valid against the schema)."""
    return {
        "_comment": "vegw gateway config. Keys starting with _comment are notes and are ignored. "
        "Check with: vegw config validate config.json --board esp32-devkit",
        "gateway": {
            "_comment": "id: a-z 0-9 _ - (max 32), used in MQTT topics vegw/<id>/...; board: a folder under boards/",
            "id": "site-001",
            "board": "esp32-devkit",
        },
        "wifi": [
            {"_comment": "networks tried in order (max 4); password 8-63 characters, \"\" for an open network",
             "ssid": PLACEHOLDER + "-ssid", "password": PLACEHOLDER + "-wifi-password"},
        ],
        "modem": None,
        "_comment_modem": "for LTE replace null with {\"model\": \"sim7600\", \"apn\": \"internet\", \"pin\": \"\"}",
        "mqtt": {
            "_comment": "port defaults to 8883 with tls, 1883 without; a username needs a password; "
            "ca is a file on the device and makes the server certificate checked",
            "host": "broker.example.com",
            "port": 8883,
            "tls": True,
            "ca": "ca.pem",
            "username": "site-001",
            "password": PLACEHOLDER + "-mqtt-password",
            "prefix": "vegw",
            "discovery": True,
            "discovery_prefix": "homeassistant",
            "keepalive": 60,
            "heartbeat": 300,
            "min_interval": 10,
            "status_interval": 300,
            "per_value_topics": False,
        },
        "devices": [
            {"_comment": "VE.Direct: UART 1 or 2 (UART0 is the REPL), rx = GPIO wired to the device's TX; "
             "tx optional (text protocol is receive-only)",
             "name": "house", "type": "vedirect", "uart": 1, "rx": 16, "tx": 17},
            {"_comment": "BLE instant readout: MAC and the 32-hex encryption key from VictronConnect "
             "(Product info > Instant readout > Show). This key is an example: replace it.",
             "name": "shunt", "type": "ble", "mac": "AA:BB:CC:DD:EE:FF", "key": EXAMPLE_KEY},
        ],
        "ble": {"_comment": "scan interval <= 160 ms keeps Wi-Fi and BLE coexisting", "scan_window_ms": 100,
                "scan_interval_ms": 100},
        "alarms": {
            "_comment": "rule language: see docs; builtin alarms for stale devices, device errors and device alarms",
            "rules": ["low_bank: alarm: house.V < 24.0 for 5m clear 24.4"],
            "builtin": {"stale": True, "error": True, "device_alarm": True},
            "stale_timeout": 60,
        },
        "log": {"_comment": "seconds per logged sample (min/avg/max aggregated)", "interval": 60},
    }


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    p = sub.add_parser("new", help="write an annotated starter config", description=(
        "Write an annotated starter config (notes in \"_comment\" keys) to FILE, or stdout when FILE is omitted or '-'."))
    p.add_argument("file", nargs="?", default="-", metavar="FILE")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p = sub.add_parser("validate", help="check a config against the firmware's schema", description=(
        "Report every error as 'path: message', one per line on stderr, exit 2 on any error; "
        "exit 0 with a one-line summary when valid."))
    p.add_argument("file", metavar="FILE")
    p.add_argument("--board", metavar="NAME", help="board under boards/ for pin checks (default: gateway.board)")
    p.add_argument("--show", action="store_true", help="print the normalized config (defaults filled, secrets masked)")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    from . import config_push

    p = sub.add_parser("push", help="send a config to a running gateway over MQTT (kept only if healthy)",
                       description=(config_push.__doc__ or "").split("\n\n")[2])
    config_push.add_arguments(p)


def _err(msg):
    sys.stderr.write("vegw config: %s\n" % msg)
    return 2


def load_json_file(path):
    """Return (obj, error_line). The error names the file, line and column."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        return None, "%s: cannot read: %s" % (path, e.strerror or e)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return None, "%s: not UTF-8 text (byte %d)" % (path, e.start)
    try:
        return json.loads(text), None
    except json.JSONDecodeError as e:
        return None, "%s:%d:%d: not valid JSON: %s" % (path, e.lineno, e.colno, e.msg)
    except RecursionError:
        return None, "%s: JSON nested too deeply" % path
    except ValueError as e:  # e.g. a number of more than 4300 digits
        return None, "%s: not valid JSON: %s" % (path, str(e).split(";")[0])


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")


def device_config_bytes(raw, cfg):
    """The bytes to put on the device for a config read from `raw`: as written,
    unless it holds \\uD8xx surrogate escapes (an emoji written as \\u escapes),
    which MicroPython's json decodes to the wrong bytes: then the same config
    as UTF-8."""
    if _SURROGATE_ESCAPE.search(raw):
        return (json.dumps(cfg, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return raw


def load_board(name):
    """Return (board dict or None, note or None)."""
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        return None, "no usable board name; pin checks skipped"
    path = ROOT / "boards" / name / "board.json"
    if not path.exists():
        return None, None
    board, err = load_json_file(str(path))
    if err:
        return None, "board file unusable (%s); pin checks skipped" % err
    if not isinstance(board, dict):
        return None, "boards/%s/board.json is not a JSON object; pin checks skipped" % name
    board.setdefault("name", name)
    try:
        import boardinfo

        problems = boardinfo.validate(board)
    except (ImportError, AttributeError):
        problems = []
    if problems:
        return None, "boards/%s/board.json has problems (%s); pin checks skipped" % (name, "; ".join(problems[:3]))
    return board, None


def known_boards():
    return sorted(d.name for d in (ROOT / "boards").glob("*") if (d / "board.json").is_file())


def unknown_board(name):
    """An error text when `name` is no board under boards/ (a typo must not
    silently skip the pin checks), else None."""
    if isinstance(name, str) and name in known_boards():
        return None
    shown = name if len(name) <= 40 else name[:37] + "..."
    return "unknown board %r; known boards: %s" % (shown, ", ".join(known_boards()) or "none")


def placeholders(cfg, path=""):
    """Paths of strings still holding a starter placeholder."""
    out = []
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            if not str(k).startswith("_comment"):
                out += placeholders(v, "%s.%s" % (path, k) if path else str(k))
    elif isinstance(cfg, list):
        for i, v in enumerate(cfg):
            out += placeholders(v, "%s[%d]" % (path, i))
    elif isinstance(cfg, str) and (PLACEHOLDER in cfg or cfg == EXAMPLE_KEY):
        out.append(path)
    return out


def check_config(cfg, board_name=None):
    """Run the schema. Returns (normalized, errors, warnings, notes)."""
    import cfg_schema

    notes = []
    board_path = "--board"
    gw = cfg.get("gateway") if isinstance(cfg, dict) and isinstance(cfg.get("gateway"), dict) else None
    if board_name is None and gw is not None:
        board_name = gw.get("board", "esp32-devkit")
    if gw is not None and board_name == gw.get("board"):
        board_path = "gateway.board"  # the config names it (provision passes it on)
    board = None
    board_error = None
    if board_name is not None:
        board_error = unknown_board(board_name)
        if board_error is None:
            board, note = load_board(board_name)
            if note:
                notes.append(note)
    normalized, errors, warnings = cfg_schema.check(cfg, board)
    if board_error:
        errors = list(errors) + [(board_path, board_error)]
    warnings = list(warnings) + [(p, "still the starter placeholder; replace it") for p in placeholders(cfg)]
    return normalized, errors, warnings, notes


def summary(cfg):
    devs = cfg.get("devices") or []
    ve = sum(1 for d in devs if d.get("type") == "vedirect")
    ble = sum(1 for d in devs if d.get("type") == "ble")
    rules = len(cfg.get("alarms", {}).get("rules") or [])
    m = cfg.get("mqtt", {})
    return "gateway %s, %d device%s (%d vedirect, %d ble), %d alarm rule%s, broker %s:%s%s" % (
        cfg["gateway"]["id"], len(devs), "" if len(devs) == 1 else "s", ve, ble, rules, "" if rules == 1 else "s",
        m.get("host"), m.get("port"), " (TLS)" if m.get("tls") else "")


def run(args):
    if args.action == "new":
        return _new(args)
    if args.action == "validate":
        return _validate(args)
    if args.action == "push":
        from . import config_push

        return config_push.run(args)
    return _err("give an action: new, validate or push (see vegw config --help)")


def _new(args):
    text = json.dumps(starter_config(), indent=2) + "\n"
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    if os.path.exists(args.file) and not args.force:
        return _err("%s exists; use --force to overwrite" % args.file)
    try:
        fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds secrets
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except OSError as e:
        return _err("cannot write %s: %s" % (args.file, e.strerror or e))
    print("wrote %s: edit the CHANGE-ME values and the BLE key, then run: vegw config validate %s" % (args.file, args.file))
    return 0


def _validate(args):
    cfg, err = load_json_file(args.file)
    if err:
        return _err(err)
    normalized, errors, warnings, notes = check_config(cfg, args.board)
    for n in notes:
        sys.stderr.write("note: %s\n" % n)
    for p, m in errors:
        sys.stderr.write("%s: %s\n" % (p, m))
    for p, m in warnings:
        sys.stderr.write("warning: %s: %s\n" % (p, m))
    if errors or (args.strict and warnings):
        n = len(errors) + (len(warnings) if args.strict else 0)
        sys.stderr.write("%s: %d error%s\n" % (args.file, n, "" if n == 1 else "s"))
        return 2
    if args.show:
        import cfg_schema

        print(json.dumps(cfg_schema.masked(normalized), indent=2, sort_keys=True))
    print("%s: valid: %s" % (args.file, summary(normalized)))
    return 0
