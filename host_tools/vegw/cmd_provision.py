"""`vegw provision`: first setup, from flags or by answering prompts, producing
a config that passed the firmware's schema (cfg_schema). An invalid config is
never written: every problem is listed with its config path and the flag it
came from, and the exit status is 2.

Flag-driven:
  vegw provision --gateway-id cabin-7 --wifi 'cabin:secret123' \
      --broker mqtt.example.com:8883 --tls --ca ca.pem --mqtt-user cabin-7 --mqtt-password ... \
      --vedirect house:1:16:17 --ble shunt:AA:BB:CC:DD:EE:FF:<32 hex key> --out config.json

Interactive: `vegw provision` with no setting flags (or -i) asks for each value;
pasted BLE keys are checked at once, so a 31-character key from VictronConnect
is caught while the installer is still on site.
"""
# Length: one command with two front ends (flags, prompts) over one config
# builder; a fifth of it is its help text.
import getpass
import json
import os
import sys

from .cmd_config import check_config, summary


def add_arguments(parser):
    a = parser.add_argument
    a("-i", "--interactive", action="store_true", help="ask for every value (default when no setting flags are given)")
    a("--gateway-id", metavar="ID", help="a-z 0-9 _ - ; used in MQTT topics")
    a("--board", metavar="NAME", help="board under boards/ (default esp32-devkit)")
    a("--wifi", action="append", default=[], metavar="SSID:PASS", help="repeatable; split at the first ':'")
    a("--apn", help="cellular APN (adds a modem section)")
    a("--modem", metavar="MODEL", help="modem model (default sim7600)")
    a("--sim-pin", metavar="PIN")
    a("--broker", metavar="HOST:PORT", help="MQTT broker; port defaults to 8883 with --tls, else 1883")
    a("--mqtt-user", metavar="USER")
    a("--mqtt-password", metavar="PASS")
    a("--tls", action="store_true", help="MQTT over TLS")
    a("--ca", metavar="FILE", help="CA certificate file on the device (implies --tls)")
    a("--prefix", help="topic prefix (default vegw)")
    a("--vedirect", action="append", default=[], metavar="NAME:UART:RX[:TX]", help="repeatable")
    a("--ble", action="append", default=[], metavar="NAME:MAC:KEY", help="repeatable; MAC as AA:BB:CC:DD:EE:FF")
    a("--rule", action="append", default=[], metavar="RULE", help="alarm rule, repeatable")
    a("--fleet-key", metavar="HEX", default=os.environ.get("VEGW_FLEET_KEY"),
      help="the operator's fleet key (default: $VEGW_FLEET_KEY): writes this gateway's own OTA key, "
           "derived from it and the gateway id, into ota.key (without one the gateway refuses OTA)")
    a("--out", metavar="FILE", default="config.json", help="where to write (default config.json; '-' for stdout)")
    a("--force", action="store_true", help="overwrite --out if it exists")


_SETTING_FLAGS = ("gateway_id", "wifi", "apn", "broker", "mqtt_user", "mqtt_password", "vedirect", "ble", "ca",
                  "rule", "board", "prefix", "modem", "sim_pin")


def _err(msg):
    sys.stderr.write("vegw provision: %s\n" % msg)
    return 2


class Bad(Exception):
    pass


def parse_broker(text):
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, None
    if not host or not port.isdigit():
        raise Bad("--broker %r: expected HOST:PORT" % text)
    return host.strip("[]"), int(port)


def parse_wifi(text):
    ssid, sep, pw = text.partition(":")
    if not sep:
        raise Bad("--wifi %r: expected SSID:PASSWORD (use 'SSID:' for an open network)" % text)
    return {"ssid": ssid, "password": pw}


def parse_vedirect(text):
    parts = text.split(":")
    if len(parts) not in (3, 4) or not all(p.strip().lstrip("-").isdigit() for p in parts[1:]):
        raise Bad("--vedirect %r: expected NAME:UART:RX[:TX] with numbers, e.g. house:1:16:17" % text)
    d = {"name": parts[0], "type": "vedirect", "uart": int(parts[1]), "rx": int(parts[2])}
    if len(parts) == 4:
        d["tx"] = int(parts[3])
    return d


def parse_ble(text):
    # NAME:MAC:KEY where the MAC itself holds ':' -> name before the first ':', key after the last
    first, last = text.find(":"), text.rfind(":")
    if first < 0 or last == first:
        raise Bad("--ble %r: expected NAME:MAC:KEY, e.g. shunt:AA:BB:CC:DD:EE:FF:0123...(32 hex)" % text)
    return {"name": text[:first], "type": "ble", "mac": text[first + 1:last], "key": text[last + 1:]}


def from_flags(args):
    """Config dict and {config path prefix: flag text} for error messages."""
    cfg = {"gateway": {}, "mqtt": {}, "devices": []}
    origin = {}
    if args.gateway_id is not None:
        cfg["gateway"]["id"] = args.gateway_id
    if args.board:
        cfg["gateway"]["board"] = args.board
    if args.wifi:
        cfg["wifi"] = []
        for i, w in enumerate(args.wifi):
            cfg["wifi"].append(parse_wifi(w))
            origin["wifi[%d]" % i] = "--wifi %s" % w.partition(":")[0]
    if args.apn is not None or args.modem or args.sim_pin:
        m = cfg["modem"] = {}
        if args.apn is not None:
            m["apn"] = args.apn
        if args.modem:
            m["model"] = args.modem
        if args.sim_pin:
            m["pin"] = args.sim_pin
    if args.broker:
        host, port = parse_broker(args.broker)
        cfg["mqtt"]["host"] = host
        if port is not None:
            cfg["mqtt"]["port"] = port
    if args.mqtt_user is not None:
        cfg["mqtt"]["username"] = args.mqtt_user
    if args.mqtt_password is not None:
        cfg["mqtt"]["password"] = args.mqtt_password
    if args.tls or args.ca:
        cfg["mqtt"]["tls"] = True
    if args.ca:
        cfg["mqtt"]["ca"] = args.ca
    if args.prefix:
        cfg["mqtt"]["prefix"] = args.prefix
    for v in args.vedirect:
        origin["devices[%d]" % len(cfg["devices"])] = "--vedirect %s" % v.split(":")[0]
        cfg["devices"].append(parse_vedirect(v))
    for b in args.ble:
        origin["devices[%d]" % len(cfg["devices"])] = "--ble %s" % b.split(":")[0]
        cfg["devices"].append(parse_ble(b))
    if args.rule:
        cfg["alarms"] = {"rules": list(args.rule)}
        for i, r in enumerate(args.rule):
            origin["alarms.rules[%d]" % i] = "--rule"
    return cfg, origin


def _flag_for(path, origin):
    for prefix, flag in origin.items():
        if path == prefix or path.startswith(prefix + "."):
            return flag
    simple = {"gateway.id": "--gateway-id", "gateway.board": "--board", "mqtt.host": "--broker",
              "mqtt.port": "--broker", "mqtt.username": "--mqtt-user", "mqtt.password": "--mqtt-password",
              "mqtt.tls": "--tls", "mqtt.ca": "--ca", "mqtt.prefix": "--prefix", "modem.apn": "--apn",
              "modem.model": "--modem", "modem.pin": "--sim-pin"}
    return simple.get(path)


# ---------------------------------------------------------------- prompts

class Prompter:
    def __init__(self, inp=None, out=None):
        self.inp = inp or sys.stdin
        self.out = out or sys.stderr  # prompts on stderr keep stdout for `--out -`
        self.tty = hasattr(self.inp, "isatty") and self.inp.isatty()

    def ask(self, question, default=None, secret=False):
        suffix = " [%s]" % ("***" if secret else default) if default not in (None, "") else ""
        if secret and self.tty:
            ans = getpass.getpass("%s%s: " % (question, suffix), stream=self.out)
        else:
            self.out.write("%s%s: " % (question, suffix))
            self.out.flush()
            line = self.inp.readline()
            if not line:
                raise EOFError
            ans = line.rstrip("\r\n")
        ans = ans.strip()
        return ans if ans else (default if default is not None else "")

    def yes(self, question, default=False):
        while True:
            a = self.ask(question + " (y/n)", "y" if default else "n").lower()
            if a in ("y", "yes", "n", "no"):
                return a.startswith("y")
            self.out.write("  answer y or n\n")

    def checked(self, question, problem, default=None, secret=False):
        """Ask until problem(answer) is None."""
        for _ in range(5):
            a = self.ask(question, default, secret)
            p = problem(a)
            if p is None:
                return a
            self.out.write("  %s\n" % p)
        raise Bad("%s: too many invalid answers" % question)


def _field_problem(section_specs, key):
    import cfg_schema

    def problem(value, _k=key):
        cfg = {"gateway": {"id": "x"}, "mqtt": {"host": "h"}}
        if section_specs == "gateway":
            cfg["gateway"][_k] = value
        errs = [m for p, m in cfg_schema.validate(cfg)[1] if p == "gateway." + _k]
        return errs[0] if errs else None

    return problem


def _key_problem(text):
    import cfg_schema

    return cfg_schema._key_problem(text)


def _mac_problem(text):
    import cfg_schema

    return cfg_schema._mac_problem(text)


def _int_problem(lo, hi):
    def problem(text):
        if not text.strip().isdigit() or not lo <= int(text) <= hi:
            return "a number from %d to %d" % (lo, hi)
        return None

    return problem


def interactive(pr, base):
    """Fill `base` (from flags, maybe empty) by asking."""
    cfg = base
    g = cfg.setdefault("gateway", {})
    g["id"] = pr.checked("Gateway id (a-z 0-9 _ -, used in MQTT topics)", _field_problem("gateway", "id"), g.get("id"))
    g["board"] = pr.ask("Board", g.get("board", "esp32-devkit"))
    if not cfg.get("wifi"):
        cfg["wifi"] = []
        while len(cfg["wifi"]) < 4:
            ssid = pr.ask("Wi-Fi network name (empty to stop)" if cfg["wifi"] else "Wi-Fi network name (empty for none)")
            if not ssid:
                break
            pw = pr.checked("Wi-Fi password for %s (empty for an open network)" % ssid,
                            lambda t: None if t == "" or 8 <= len(t) <= 63 else "WPA needs 8 to 63 characters",
                            secret=True)
            cfg["wifi"].append({"ssid": ssid, "password": pw})
    if "modem" not in cfg and pr.yes("Cellular modem (LTE)?", not cfg["wifi"]):
        apn = pr.checked("APN", lambda t: None if t else "required")
        cfg["modem"] = {"apn": apn, "model": pr.ask("Modem model", "sim7600")}
        pin = pr.ask("SIM PIN (empty for none)", secret=True)
        if pin:
            cfg["modem"]["pin"] = pin
    m = cfg.setdefault("mqtt", {})
    if "host" not in m:
        host, port = parse_broker(pr.checked("MQTT broker HOST[:PORT]", lambda t: None if t else "required"))
        m["host"] = host
        if port is not None:
            m["port"] = port
    if "tls" not in m:
        m["tls"] = pr.yes("Use TLS?", m.get("port") == 8883)
        if m["tls"]:
            ca = pr.ask("CA file on the device (empty: do not check the server certificate)")
            if ca:
                m["ca"] = ca
    if "username" not in m:
        user = pr.ask("MQTT username (empty for anonymous)")
        if user:
            m["username"] = user
            m["password"] = pr.checked("MQTT password", lambda t: None if t else "required with a username",
                                       secret=True)
    devs = cfg.setdefault("devices", [])
    names = {d.get("name") for d in devs}

    def name_problem(t):
        if t in names:
            return "already used"
        p = _field_problem("gateway", "id")(t)
        return p

    while pr.yes("Add a VE.Direct device?", not devs):
        n = pr.checked("  name (e.g. house, solar1)", name_problem)
        names.add(n)
        d = {"name": n, "type": "vedirect",
             "uart": int(pr.checked("  UART (1 or 2)", _int_problem(1, 2), "1")),
             "rx": int(pr.checked("  RX GPIO (wired to the device's TX)", _int_problem(0, 48)))}
        tx = pr.ask("  TX GPIO (empty for none)")
        if tx:
            d["tx"] = int(tx) if tx.isdigit() else tx
        devs.append(d)
    while pr.yes("Add a BLE device (key from VictronConnect)?", False):
        n = pr.checked("  name (e.g. shunt)", name_problem)
        names.add(n)
        mac = pr.checked("  MAC address (AA:BB:CC:DD:EE:FF)", _mac_problem)
        key = pr.checked("  encryption key (32 hex, Product info > Instant readout)", _key_problem, secret=True)
        devs.append({"name": n, "type": "ble", "mac": mac, "key": key})
    return cfg


def write_config(path, cfg, force):
    # UTF-8, not \\u escapes: MicroPython's json turns an escaped surrogate
    # pair (any emoji) into the wrong bytes, and an SSID with one never connects
    text = json.dumps(cfg, indent=2, ensure_ascii=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return None
    if os.path.exists(path) and not force:
        return "%s exists; use --force to overwrite" % path
    tmp = path + ".tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds passwords and keys
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        return "cannot write %s: %s" % (path, e.strerror or e)
    return None


def _compact(cfg):
    """Drop empty optional sections the flags did not set."""
    order = ("gateway", "wifi", "modem", "mqtt", "devices", "ble", "alarms", "log")
    keep = [k for k in cfg if cfg[k] not in ({}, [], None) or k in ("gateway", "mqtt", "devices")]
    return {k: cfg[k] for k in sorted(keep, key=lambda k: order.index(k) if k in order else 99)}


def run(args):
    try:
        base, origin = from_flags(args)
    except Bad as e:
        return _err(str(e))
    flags_given = any(getattr(args, f) for f in _SETTING_FLAGS) or args.tls
    if args.interactive or not flags_given:
        try:
            base = interactive(Prompter(), base)
        except Bad as e:
            return _err(str(e))
        except EOFError:
            sys.stderr.write("\n")
            return _err("input ended before the setup was complete; nothing written")
    cfg = _compact(base)
    if args.fleet_key:
        try:
            fleet = bytes.fromhex(args.fleet_key.strip())
        except ValueError:
            return _err("--fleet-key must be hex")
        if len(fleet) < 16:
            return _err("--fleet-key must be at least 16 bytes (32 hex characters)")
        gid = cfg.get("gateway", {}).get("id")
        if isinstance(gid, str) and gid:
            import proof

            cfg["ota"] = {"key": proof.derive_key(fleet, gid).hex()}
    normalized, errors, warnings, notes = check_config(cfg, cfg.get("gateway", {}).get("board"))
    if not (cfg.get("ota") or {}).get("key"):
        sys.stderr.write("warning: ota.key: no OTA key (--fleet-key): this gateway will refuse every update\n")
    for n in notes:
        sys.stderr.write("note: %s\n" % n)
    for p, m in warnings:
        sys.stderr.write("warning: %s: %s\n" % (p, m))
    if errors:
        for p, m in errors:
            flag = _flag_for(p, origin)
            sys.stderr.write("%s%s: %s\n" % (p, " (%s)" % flag if flag else "", m))
        sys.stderr.write("vegw provision: %d error%s; nothing written\n" % (len(errors), "" if len(errors) == 1 else "s"))
        return 2
    werr = write_config(args.out, cfg, args.force)
    if werr:
        return _err(werr)
    if args.out != "-":
        print("wrote %s: %s" % (args.out, summary(normalized)))
    return 0
