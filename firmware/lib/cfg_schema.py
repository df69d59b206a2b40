# Config schema shared by the firmware (config.json on the device) and the
# host CLI (`vegw config validate`, `vegw provision`). Written as data plus
# small checks so it runs unchanged on MicroPython and CPython.
#
#   check(cfg, board=None)    -> (normalized, errors, warnings)
#   validate(cfg, board=None) -> (normalized, errors)
#   masked(cfg)               -> copy with secrets replaced by "***"
#
# errors/warnings are lists of (path, message), e.g.
#   ("devices[2].key", "must be 32 hex characters, got 31")
# Every problem is reported (up to _MAX_ERRORS, then one summary entry), never
# raised: the config is outside input. `normalized` has every default filled
# in and "_comment" keys removed, and is returned even when there are errors
# (best effort, so a caller can still show what it understood).
#
# `board` is the parsed boards/<name>/board.json (a dict) or None to skip pin
# checks. Pin, BLE key/MAC and alarm-rule checks are boardinfo's, ble_keys'
# and alarm_rules' own (imported when needed; no second copy here).
#
# Length: the schema is data (a third of the file: one table per section)
# and the walker that reads it; the checks across fields and against the
# board are cfg_cross.py, those of pins, keys and rules boardinfo's,
# ble_keys' and alarm_rules' own.
import cfg_cross
from cfg_cross import chars_ok, nbytes

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_MAX_ERRORS = const(64)  # errors kept per check(); the rest are counted
_MAX_DEVICES = const(16)  # VE.Direct + BLE devices per gateway
_MAX_WIFI = const(4)  # networks tried in order
_MAX_RULES = const(32)  # alarm rules (each compiled rule costs heap)

REQUIRED = "\x00required"  # sentinel default: key must be present
MASK = "***"

_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_TOPIC = _LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ/"
_SECRETS = ("password", "key", "pin")

DEVICE_TYPES = ("vedirect", "ble")
MODEM_MODELS = ("sim7600", "sim7080", "sim7000", "sim800", "a7670", "bg95", "bg96", "generic")

# Field spec: (key, kind, default, a, b)
#   kinds: "str" (a..b characters), "name" ([a-z0-9_-], a..b chars),
#   "topic" (MQTT topic prefix, a..b chars), "int" (a..b), "num" (a..b),
#   "bool", "enum" (a = choices), "pin" (GPIO number or null),
#   "mac", "key" (checked by ble_keys), "strs" (list of strings, b max)
#   A default of None means null is accepted.
_GATEWAY = (
    ("id", "ident", REQUIRED, 1, 32),
    ("board", "str", "esp32-devkit", 1, 32),
)
_WIFI = (
    ("ssid", "str", REQUIRED, 1, 32),
    ("password", "str", "", 0, 63),
)
_MODEM = (
    ("model", "enum", "sim7600", MODEM_MODELS, 0),
    ("apn", "str", REQUIRED, 1, 63),
    ("user", "str", "", 0, 63),
    ("password", "str", "", 0, 63),
    ("pin", "str", "", 0, 8),
)
_MQTT = (
    ("host", "str", REQUIRED, 1, 253),
    ("port", "int", None, 1, 65535),  # null -> 8883 with TLS, 1883 without
    ("username", "str", "", 0, 64),
    ("password", "str", "", 0, 128),
    ("tls", "bool", False, 0, 0),
    ("ca", "str", "", 0, 64),
    ("prefix", "topic", "vegw", 1, 32),
    ("discovery", "disc", True, 0, 0),  # true | false | "bridge" (vegw bridge serves it)
    ("discovery_prefix", "topic", "homeassistant", 1, 32),
    ("keepalive", "int", 60, 10, 3600),
    ("heartbeat", "int", 300, 10, 86400),
    ("min_interval", "int", 10, 0, 3600),  # s between state messages of a device (cellular: 60)
    ("status_interval", "int", 300, 10, 86400),  # s between status messages (cellular: 900)
    ("per_value_topics", "bool", False, 0, 0),
    # "thin": log records as binary batches, state on changes that matter,
    # status deltas, no HA discovery (a `vegw bridge` expands them, docs/bridge.md);
    # null -> thin with a modem, full without
    ("uplink", "enum", None, ("full", "thin"), 0),
    ("log_hold", "int", None, 0, 3600),  # s a log record may wait to share a publish (thin: 900)
)
_CELLULAR = (("min_interval", 300), ("heartbeat", 900), ("status_interval", 900))
# thin uplink (bench/bench_uplink.py: ~0.2 MB/day for BMV + MPPT + inverter).
# keepalive 240 s: carrier-grade NATs drop idle TCP far sooner than RFC 5382's
# 2 h 4 min; one European operator's CGN needed a keepalive of 270 s or less
# (blog.wirelessmoves.com, 2020-09, "Carrier Grade NAT timeouts"), so 240 s
# keeps a margin below the shortest timeout we found documented.
_THIN = (("min_interval", 60), ("heartbeat", 3600), ("status_interval", 3600), ("keepalive", 240),
         ("log_hold", 900), ("discovery", "bridge"))
_DEVICE = (
    ("name", "name", REQUIRED, 1, 24),
    ("type", "enum", REQUIRED, DEVICE_TYPES, 0),
    ("stale_timeout", "int", None, 5, 86400),  # null -> alarms.stale_timeout
    ("capacity_ah", "num", None, 1, 100000),  # battery capacity for derived metrics
)
_VEDIRECT = (
    ("uart", "int", REQUIRED, 1, 2),  # UART0 carries the REPL on stock firmware
    ("rx", "pin", REQUIRED, 0, 48),
    ("tx", "pin", None, 0, 48),  # optional: text protocol is receive-only
)
_BLE_DEV = (
    ("mac", "mac", REQUIRED, 0, 0),
    ("key", "key", REQUIRED, 0, 0),
)
_BLE = (
    ("scan_window_ms", "int", 100, 10, 10240),
    ("scan_interval_ms", "int", 100, 10, 10240),
)
_ALARMS = (
    ("rules", "strs", (), 1, _MAX_RULES),
    ("stale_timeout", "int", 60, 5, 86400),
)
_BUILTIN = (
    ("stale", "bool", True, 0, 0),
    ("error", "bool", True, 0, 0),
    ("device_alarm", "bool", True, 0, 0),
)
_LOG = (("interval", "int", 60, 1, 3600),)
# OTA: the gateway's own key (vegw provision --fleet-key derives it from the
# operator's fleet key and the gateway id). Without it, OTA is refused.
_OTA = (("key", "hexkey", None, 32, 128),)

# Names people reach for (other gateways, older drafts) -> ours.
_RENAMED = (
    ("ble_key", "key"), ("bindkey", "key"), ("bind_key", "key"), ("encryption_key", "key"),
    ("advertisement_key", "key"), ("address", "mac"), ("mac_address", "mac"),
    ("user", "username"), ("pass", "password"), ("broker", "host"), ("server", "host"),
    ("ssl", "tls"), ("topic_prefix", "prefix"), ("base_topic", "prefix"),
    ("rx_pin", "rx"), ("tx_pin", "tx"), ("uart_num", "uart"), ("psk", "password"),
    ("sim_pin", "pin"), ("ca_cert", "ca"), ("cafile", "ca"), ("client_id", None),
)


def _typename(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _distance(a, b):
    # Levenshtein, two rows; names are short (< 30 chars).
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            c = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + c)
        prev = cur
    return prev[len(b)]


def _hint(key, known):
    if len(key) > 40:
        return "unknown key (known: %s)" % ", ".join(sorted(known))
    low = key.lower()
    for old, new in _RENAMED:
        if old == low:
            if new is None:
                return "unknown key, not configurable here"
            if new in known:
                return "unknown key; use '%s' instead" % new
    best = None
    for k in known:
        d = _distance(low, k)
        if len(k) > 2 and (low.startswith(k) or k.startswith(low)):
            d = 1  # "logging" -> "log", "dev" -> "devices"
        if d <= 2 and (best is None or d < best[0]):
            best = (d, k)
    if best is not None:
        return "unknown key; did you mean '%s'?" % best[1]
    known = sorted(known)
    return "unknown key (known: %s)" % ", ".join(known)


def _unprefix(msg):
    # ble_readout says "ble key must be ..."; our path already names the field
    if msg and (msg.startswith("ble key ") or msg.startswith("ble mac ")):
        return msg[8:]
    return msg


def _mac_problem(text):
    if not isinstance(text, str):
        return "must be a string like AA:BB:CC:DD:EE:FF, got " + _typename(text)
    import ble_keys

    return _unprefix(ble_keys.mac_problem(text))


def _key_problem(text):
    if not isinstance(text, str):
        return "must be a string of 32 hex characters, got " + _typename(text)
    import ble_keys

    return _unprefix(ble_keys.key_problem(text))


class _Ctx:
    def __init__(self):
        self.errors = []
        self.warnings = []
        self.dropped = 0  # errors beyond _MAX_ERRORS

    def err(self, path, msg):
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append((path, msg))
        else:
            self.dropped += 1

    def warn(self, path, msg):
        if len(self.warnings) < _MAX_ERRORS:
            self.warnings.append((path, msg))


def _value(ctx, path, kind, v, a, b, nullable):
    """Check one value; return the normalized value (or None when wrong)."""
    if v is None:
        if nullable:
            return None
        ctx.err(path, "must not be null")
        return None
    if kind == "bool":
        if not isinstance(v, bool):
            ctx.err(path, "must be true or false, got " + _typename(v))
            return None
        return v
    if kind == "disc":
        if not isinstance(v, bool) and v != "bridge":
            ctx.err(path, 'must be true, false or "bridge", got ' + _show(v))
            return None
        return v
    if kind == "int" or kind == "pin":
        if isinstance(v, bool) or not isinstance(v, int):
            ctx.err(path, "must be an integer, got " + _typename(v))
            return None
        if v < a or v > b:
            if v == 0 and path.endswith(".uart"):
                ctx.err(path, "UART0 carries the REPL and the boot log; use UART1 or UART2")
            else:
                ctx.err(path, "must be between %d and %d, got %s" % (a, b, _clip(str(v))))
            return None
        return v
    if kind == "num":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            ctx.err(path, "must be a number, got " + _typename(v))
            return None
        if v < a or v > b:
            ctx.err(path, "must be between %s and %s, got %s" % (a, b, _clip(str(v))))
            return None
        return v
    if kind == "obj":
        if not isinstance(v, dict):
            ctx.err(path, "must be an object, got " + _typename(v))
            return None
        return v
    if kind == "enum":
        if v not in a:
            ctx.err(path, "must be one of %s, got %s" % (", ".join(a), _show(v)))
            return None
        return v
    if kind == "mac":
        p = _mac_problem(v)
        if p:
            ctx.err(path, p)
            return None
        return v.strip().upper().replace("-", ":")
    if kind == "key":
        p = _key_problem(v)
        if p:
            ctx.err(path, p)
            return None
        return v.strip().lower()
    if kind == "hexkey":
        if not isinstance(v, str):
            ctx.err(path, "must be a string of hex digits, got " + _typename(v))
            return None
        t = v.strip().lower()
        if not a <= len(t) <= b or len(t) % 2:
            ctx.err(path, "must be %d to %d hex characters (an even number), got %d" % (a, b, len(t)))
            return None
        bad = chars_ok(t, "0123456789abcdef")
        if bad is not None:
            ctx.err(path, "must be hex, found %r" % bad)
            return None
        return t
    if kind == "strs":
        if not isinstance(v, list):
            ctx.err(path, "must be a list of strings, got " + _typename(v))
            return None
        if len(v) > b:
            ctx.err(path, "at most %d entries, got %d" % (b, len(v)))
        out = []
        for i in range(len(v)):
            s = v[i]
            if not isinstance(s, str):
                ctx.err("%s[%d]" % (path, i), "must be a string, got " + _typename(s))
                s = ""  # keeps positions, so later errors name the right index
            elif len(s.strip()) < a:
                ctx.err("%s[%d]" % (path, i), "must not be empty")
            out.append(s)
        return out
    # string kinds
    if not isinstance(v, str):
        ctx.err(path, "must be a string, got " + _typename(v))
        return None
    n = nbytes(v)
    if n < a or n > b:
        if a == 1 and not v:
            ctx.err(path, "must not be empty")
        elif n != len(v):
            ctx.err(path, "must be %d to %d bytes of UTF-8, got %d (%d characters)" % (a, b, n, len(v)))
        else:
            ctx.err(path, "must be %d to %d characters, got %d" % (a, b, n))
        return None
    if kind == "ident":  # the gateway id: one MQTT topic level, any case
        bad = chars_ok(v, _LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        if bad is not None:
            ctx.err(path, "only A-Z, a-z, 0-9, '_' and '-' allowed (one MQTT topic level), got %r" % bad)
            return None
    elif kind == "name":
        bad = chars_ok(v, _LOWER)
        if bad is not None:
            ctx.err(path, "only a-z, 0-9, '_' and '-' allowed (used in MQTT topics and rules), got %r" % bad)
            return None
    elif kind == "topic":
        bad = chars_ok(v, _TOPIC)
        if bad is not None or v[0] == "/" or v[-1] == "/" or "//" in v:
            ctx.err(path, "must be topic levels of A-Z, a-z, 0-9, '_', '-' joined by '/', got '%s'" % v)
            return None
    return v


def _clip(text, n=40):
    # what a message echoes of the input: a 5,000-character value (or number)
    # must not make a 5,000-character error line
    return text if len(text) <= n else text[: n - 3] + "..."


def _show(v):
    return ("'%s'" % _clip(v)) if isinstance(v, str) else _clip(str(v))


def _object(ctx, path, obj, specs, extra=None, other=None):
    """Check a JSON object against specs (+ extra specs); return normalized dict.
    `other` names keys that are valid elsewhere, for a better message."""
    if not isinstance(obj, dict):
        ctx.err(path or "(top)", "must be an object, got " + _typename(obj))
        obj = {}
    allspecs = specs + (extra or ())
    known = [s[0] for s in allspecs]
    out = {}
    for k in obj:
        if k in known or (isinstance(k, str) and k.startswith("_comment")):
            continue
        kp = _join(path, k)
        if other and k in other[0]:
            if other[1]:
                ctx.err(kp, other[1])
        elif len(ctx.errors) < _MAX_ERRORS:  # no hint work for errors not shown
            ctx.err(kp, _hint(str(k), known))
        else:
            ctx.dropped += 1
    for key, kind, default, a, b in allspecs:
        kp = _join(path, key)
        if key not in obj:
            if default is REQUIRED:
                ctx.err(kp, "required")
                out[key] = None
            else:
                out[key] = list(default) if isinstance(default, tuple) else default
            continue
        out[key] = _value(ctx, kp, kind, obj[key], a, b, default is None)
    return out


def _join(path, key):
    key = _clip(str(key))
    return ("%s.%s" % (path, key)) if path else key


def _list(ctx, path, v, maxn):
    if v is None:
        return []
    if not isinstance(v, list):
        ctx.err(path, "must be a list, got " + _typename(v))
        return []
    if len(v) > maxn:
        ctx.err(path, "at most %d entries, got %d" % (maxn, len(v)))
    return v


_TOP = ("gateway", "wifi", "modem", "mqtt", "devices", "ble", "alarms", "log", "ota")


def check(cfg, board=None):
    ctx = _Ctx()
    if not isinstance(cfg, dict):
        ctx.err("(top)", "config must be a JSON object, got " + _typename(cfg))
        return {}, ctx.errors, ctx.warnings
    for k in cfg:
        if k not in _TOP and not (isinstance(k, str) and k.startswith("_comment")):
            if len(ctx.errors) < _MAX_ERRORS:  # no hint work for errors not shown
                ctx.err(_join("", k), _hint(str(k), _TOP))
            else:
                ctx.dropped += 1
    out = {}
    out["gateway"] = _object(ctx, "gateway", cfg.get("gateway", {}), _GATEWAY)
    out["mqtt"] = _object(ctx, "mqtt", cfg.get("mqtt", {}), _MQTT)
    wifi = _list(ctx, "wifi", cfg.get("wifi"), _MAX_WIFI)
    out["wifi"] = [_object(ctx, "wifi[%d]" % i, wifi[i], _WIFI) for i in range(len(wifi))]
    modem = cfg.get("modem")
    out["modem"] = None if modem is None else _object(ctx, "modem", modem, _MODEM)
    out["ble"] = _object(ctx, "ble", cfg.get("ble", {}), _BLE)
    alarms = _object(ctx, "alarms", cfg.get("alarms", {}), _ALARMS, (("builtin", "obj", None, 0, 0),))
    alarms["builtin"] = _object(ctx, "alarms.builtin", alarms["builtin"] or {}, _BUILTIN)
    out["alarms"] = alarms
    out["log"] = _object(ctx, "log", cfg.get("log", {}), _LOG)
    out["ota"] = _object(ctx, "ota", cfg.get("ota", {}), _OTA)
    devs = _list(ctx, "devices", cfg.get("devices"), _MAX_DEVICES)
    out["devices"] = [_device(ctx, i, devs[i]) for i in range(len(devs))]
    cfg_cross.check(ctx, out, board)
    if out["modem"] is not None and isinstance(cfg.get("mqtt"), dict):
        # data may go over cellular, paid per MB: what is not set explicitly
        # takes the cellular profile (~0.8 MB/day for BMV + MPPT + inverter
        # with the log's 1-minute records, bench/bench_uplink.py)
        if out["mqtt"].get("uplink") is None:
            out["mqtt"]["uplink"] = "thin"
        for k, v in (_THIN if out["mqtt"]["uplink"] == "thin" else _CELLULAR):
            if k not in cfg["mqtt"]:
                out["mqtt"][k] = v
    elif out["mqtt"].get("uplink") == "thin" and isinstance(cfg.get("mqtt"), dict):
        for k, v in _THIN:  # thin on Wi-Fi: the same profile unless set
            if k not in cfg["mqtt"]:
                out["mqtt"][k] = v
    if out["mqtt"].get("uplink") is None:
        out["mqtt"]["uplink"] = "full"
    if out["mqtt"].get("log_hold") is None:
        out["mqtt"]["log_hold"] = 0
    if ctx.dropped:
        ctx.errors.append(("(more)", "%d more errors not shown" % ctx.dropped))
    return out, ctx.errors, ctx.warnings


def validate(cfg, board=None):
    out, errors, _ = check(cfg, board)
    return out, errors


_VE_KEYS = ("uart", "rx", "tx")
_BLE_KEYS = ("mac", "key")


def _device(ctx, i, d):
    path = "devices[%d]" % i
    t = d.get("type") if isinstance(d, dict) else None
    if t == "vedirect":
        return _object(ctx, path, d, _DEVICE, _VEDIRECT, (_BLE_KEYS, "only for type 'ble' devices; this one is 'vedirect'"))
    if t == "ble":
        return _object(ctx, path, d, _DEVICE, _BLE_DEV, (_VE_KEYS, "only for type 'vedirect' devices; this one is 'ble'"))
    # unknown or missing type (already reported): accept either type's keys
    return _object(ctx, path, d, _DEVICE, (), (_VE_KEYS + _BLE_KEYS, None))


def masked(cfg):
    """Deep copy of cfg with every non-empty secret (password, key, pin) as "***"."""
    if isinstance(cfg, dict):
        out = {}
        for k in cfg:
            v = cfg[k]
            if k in _SECRETS and isinstance(v, str) and v:
                out[k] = MASK
            else:
                out[k] = masked(v)
        return out
    if isinstance(cfg, list):
        return [masked(v) for v in cfg]
    return cfg
